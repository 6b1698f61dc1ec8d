"""The backbone: the Rust core and the pure-Python oracle (written from the spec, independently) give
identical observable results on generated machines and operation sequences, for every core policy.

The oracle runs each padata job's chunks in ascending order on one thread; the core does the same in its
deterministic mode (``page_alloc_init_late(threads=False)``), so those runs must match event for event. The
threaded mode (helpers taking chunks on real host threads) is compared on what does not depend on the
schedule: page states, zones, free pages per order, first_deferred_pfn and the set of chunks."""

import os
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgdefer import POLICIES, POLICY_FACTS, Machine
from pgdefer.oracle import OracleMachine
from pgdefer.testing import (
    DIAGNOSTICS,
    TIMING_KEYS,
    Deterministic,
    node_cpus,
    normalised,
    operations,
    replay,
    snapshot,
    topologies,
)

EXAMPLES = int(os.environ.get("PGDEFER_DIFF_EXAMPLES", "400"))
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
ON_DEMAND = tuple(p for p in POLICIES if POLICY_FACTS[p]["grows"])
PADATA = tuple(p for p in POLICIES if POLICY_FACTS[p]["padata"])


def schedule_free(snap):
    """What a threaded pass may not change: the snapshot with each free list as a sorted set (helpers free
    their chunks in any order) and the events as a multiset without the simulated worker of a chunk (which
    helper takes which chunk is the schedule)."""
    events = Counter(tuple(sorted((k, v) for k, v in e.items() if k not in TIMING_KEYS | {"worker"}))
                     for e in snap["events"] if e["kind"] not in DIAGNOSTICS)
    free_lists = {z: _sorted_lists(lists) for z, lists in snap["free_lists"].items()}
    return dict(snap, events=events, free_lists=free_lists)


def _sorted_lists(v):
    """Each innermost list of pfns sorted, the nesting (order, then migratetype) kept: helpers that really
    run at once (since the host pool, from a job's first chunk) interleave their frees on one list."""
    if v and all(isinstance(x, int) for x in v):
        return sorted(v)
    return [_sorted_lists(x) if isinstance(x, list) else x for x in v]


def assert_same(rust, oracle, when, view=normalised):
    a, b = view(snapshot(rust)), view(snapshot(oracle))
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], f"{key} differs {when}"


def machines(data, policies, max_nodes=3):
    topo = data.draw(topologies(max_nodes=max_nodes), label="topology")
    policy = data.draw(st.sampled_from(policies), label="policy")
    cpus = data.draw(node_cpus(topo), label="node_cpus")            # padata's max_threads per node
    rust = Machine(topo, policy=policy, node_cpus=cpus)
    oracle = OracleMachine(topo, policy=policy, node_cpus=cpus)
    rust.boot()
    oracle.boot()
    return topo, rust, oracle


def checked(m, op, out):
    m.check()


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_rust_core_matches_oracle(data):
    topo, rust, oracle = machines(data, POLICIES)
    assert_same(rust, oracle, "after boot")
    ops = data.draw(operations(topo, min_ops=6, max_ops=40), label="ops")
    assert replay(Deterministic(rust), ops, after_each=checked) == replay(oracle, ops, after_each=checked)
    assert_same(rust, oracle, "after the operations")
    if rust.phase == "booted":
        rust.page_alloc_init_late(threads=False)
        oracle.page_alloc_init_late()
        assert_same(rust, oracle, "after page_alloc_init_late")
    rust.check()
    assert (rust.pages.init_count == 1).all()


@settings(max_examples=max(EXAMPLES // 4, 25), **SETTINGS)
@given(data=st.data())
def test_threaded_passes_end_where_the_oracle_does(data):
    """The padata generations with helpers on real host threads: the end state the schedule cannot move."""
    topo, rust, oracle = machines(data, PADATA)
    ops = [op for op in data.draw(operations(topo, max_ops=20), label="ops") if op[0] != "late_init"]
    assert replay(rust, ops) == replay(oracle, ops)
    rust.page_alloc_init_late(threads=True)
    oracle.page_alloc_init_late()
    assert_same(rust, oracle, "after threaded passes", view=schedule_free)
    rust.check()
    assert (rust.pages.init_count == 1).all()


def test_normalised_sorts_only_pass_events():
    snap = {"events": [{"kind": "key_disable", "t_ns": 1}, {"kind": "deferred_init", "node": 2, "host_ns": 5},
                       {"kind": "deferred_init", "node": 0, "host_ns": 9}, {"kind": "grow", "cpu": 3}]}
    assert normalised(snap)["events"] == [{"kind": "key_disable"}, {"kind": "deferred_init", "node": 0},
                                          {"kind": "deferred_init", "node": 2}, {"kind": "grow"}]


def test_schedule_free_view_keeps_chunk_bounds_and_order_counts():
    """Only the worker and the order inside a free list are dropped: a chunk with other bounds, or one
    chunk more, still differs."""
    chunk = {"kind": "padata_chunk", "node": 0, "start": 0, "end": 64, "worker": 1, "t_ns": 3}
    snap = {"events": [chunk], "free_lists": {(0, "Normal"): [[8, 4], []]}}
    same = {"events": [dict(chunk, worker=0)], "free_lists": {(0, "Normal"): [[4, 8], []]}}
    assert schedule_free(snap) == schedule_free(same)
    assert schedule_free(snap) != schedule_free({**same, "events": [dict(chunk, end=32)]})
    assert schedule_free(snap) != schedule_free({**same, "events": [chunk, chunk]})
    assert schedule_free(snap) != schedule_free({**same, "free_lists": {(0, "Normal"): [[4], [8]]}})


def test_policy_lists_cover_the_core():
    """Every core policy is drawn by the main test, and the threaded test covers every padata one."""
    from pgdefer.oracle import POLICIES as ORACLE_POLICIES
    assert set(POLICIES) <= set(ORACLE_POLICIES)
    assert {"v5.8", "v5.10", "v6.4", "v6.11", "rework-2025"} <= set(PADATA)


@settings(max_examples=max(EXAMPLES // 4, 25), **SETTINGS)
@given(data=st.data())
def test_rust_core_matches_oracle_in_allocation_storms(data):
    """Storms that drain zones: every deferred section gets grown by the allocator's hooks."""
    topo, rust, oracle = machines(data, ON_DEMAND, max_nodes=2)
    pps = topo.geometry.pages_per_section
    orders = st.integers(0, topo.geometry.max_order)
    storm = st.tuples(st.just("alloc_n"), st.integers(pps, 40 * pps), orders,
                      st.one_of(st.none(), st.sampled_from(topo.nodes)), st.none())
    frees = st.tuples(st.just("free"), st.integers(0, 1 << 16))
    ops = data.draw(st.lists(st.one_of(storm, frees, frees), min_size=2, max_size=12), label="ops")
    assert replay(rust, ops) == replay(oracle, ops)
    assert_same(rust, oracle, "after the storm")
    rust.check()

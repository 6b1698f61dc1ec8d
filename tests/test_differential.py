"""The backbone: the Rust core and the pure-Python oracle (written from the spec, independently) give
identical observable results on generated machines and operation sequences, for every policy."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgdefer import POLICIES, Machine  # noqa: F401
from pgdefer.oracle import OracleMachine
from pgdefer.testing import operations, replay, snapshot, topologies

EXAMPLES = int(os.environ.get("PGDEFER_DIFF_EXAMPLES", "400"))
TIMING_KEYS = {"host_ns", "t_ns", "cpu"}
# Concurrency diagnostics (lockdep, sleeping-in-atomic warnings) come from the Rust core's CPU model,
# which the single-threaded oracle does not have; tests/test_concurrency.py pins them.
DIAGNOSTICS = {"warning", "lockdep"}


def normalised(snap):
    """Drop host timing and concurrency diagnostics; sort each run of per-node pass events by node (the
    Rust core runs the passes on one thread per node, so their order may vary)."""
    events = [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in snap["events"]
              if e["kind"] not in DIAGNOSTICS]
    out, run = [], []
    for e in events + [None]:
        if e is not None and e["kind"] == "deferred_init":
            run.append(e)
            continue
        out += sorted(run, key=lambda x: x["node"])
        run = []
        if e is not None:
            out.append(e)
    return dict(snap, events=out)


def assert_same(rust, oracle, when):
    a, b = normalised(snapshot(rust)), normalised(snapshot(oracle))
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], f"{key} differs {when}"


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_rust_core_matches_oracle(data):
    topo = data.draw(topologies(), label="topology")
    # Weighted towards the policies that defer and grow, where the interesting behaviour is.
    policy = data.draw(st.sampled_from(["v4.17"] * 4 + ["posting-v2"] * 3 + ["v4.2", "eager"]), label="policy")
    ops = data.draw(operations(topo, min_ops=6, max_ops=40), label="ops")
    rust, oracle = Machine(topo, policy=policy), OracleMachine(topo, policy=policy)
    rust.boot()
    oracle.boot()
    assert_same(rust, oracle, "after boot")

    def checked(m, op, out):
        m.check()

    out_rust = replay(rust, ops, after_each=checked)
    out_oracle = replay(oracle, ops, after_each=checked)
    assert out_rust == out_oracle
    assert_same(rust, oracle, "after the operations")
    if rust.phase == "booted":
        rust.page_alloc_init_late()
        oracle.page_alloc_init_late()
        assert_same(rust, oracle, "after page_alloc_init_late")
        rust.check()
        assert (rust.pages.init_count == 1).all()


def test_normalised_sorts_only_pass_events():
    snap = {"events": [{"kind": "key_disable", "t_ns": 1}, {"kind": "deferred_init", "node": 2, "host_ns": 5},
                       {"kind": "deferred_init", "node": 0, "host_ns": 9}, {"kind": "grow", "cpu": 3}]}
    assert normalised(snap)["events"] == [{"kind": "key_disable"}, {"kind": "deferred_init", "node": 0},
                                          {"kind": "deferred_init", "node": 2}, {"kind": "grow"}]


@settings(max_examples=max(EXAMPLES // 4, 25), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_rust_core_matches_oracle_in_allocation_storms(data):
    """Storms that drain zones: every deferred section gets grown by the allocator's hooks."""
    topo = data.draw(topologies(max_nodes=2), label="topology")
    policy = data.draw(st.sampled_from(["v4.17", "posting-v2"]), label="policy")
    pps = topo.geometry.pages_per_section
    orders = st.integers(0, topo.geometry.max_order)
    storm = st.tuples(st.just("alloc_n"), st.integers(pps, 40 * pps), orders,
                      st.one_of(st.none(), st.sampled_from(topo.nodes)), st.none())
    frees = st.tuples(st.just("free"), st.integers(0, 1 << 16))
    ops = data.draw(st.lists(st.one_of(storm, frees, frees), min_size=2, max_size=12), label="ops")
    rust, oracle = Machine(topo, policy=policy), OracleMachine(topo, policy=policy)
    rust.boot()
    oracle.boot()
    assert replay(rust, ops) == replay(oracle, ops)
    assert_same(rust, oracle, "after the storm")
    rust.check()

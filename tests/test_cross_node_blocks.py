"""Nodes that meet inside a MAX_ORDER block or pageblock (issue 15 finding 7): a kernel hazard the model
exposes (docs/model.md §5.3). Topology says so (a warning, or a TopologyError with strict=True), and the
Rust core matches the oracle on such maps with B-I2/B-I3 as the only problems."""

import re
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgdefer
from pgdefer import Geometry, Machine, Region, Topology
from pgdefer.oracle import OracleMachine
from pgdefer.testing import Deterministic, has_mixed_node_blocks, operations, replay, snapshot, topologies

PAGE = 4096
# 64-page sections, MAX_ORDER 4 (16-page blocks: [0x40, 0x50), ...), pageblock order 3 (8 pages).
SMALL = Geometry(section_size="256K", max_order=4, pageblock_order=3)


def two_nodes(end0, start1, end1=0x200):
    return dict(memory=[Region(0, end0 * PAGE, 0), Region(start1 * PAGE, end1 * PAGE, 1)], geometry=SMALL)


@pytest.mark.parametrize("end0,start1,expected", [
    # touching at 0x44: both in block [0x40, 0x50) and in pageblock [0x40, 0x48)
    (0x44, 0x44, ("nodes 0, 1 share the MAX_ORDER block [0x40, 0x50), and the pageblock at pfn 0x40: "
                 "node 0 pfns [0x40, 0x44) and node 1 pfns [0x44, 0x50)")),
    # a hole between them, still one block and one pageblock
    (0x42, 0x46, ("nodes 0, 1 share the MAX_ORDER block [0x40, 0x50), and the pageblock at pfn 0x40: "
                 "node 0 pfns [0x40, 0x42) and node 1 pfns [0x46, 0x50)")),
    # meeting on a pageblock boundary inside the block: the block only
    (0x48, 0x48, ("nodes 0, 1 share the MAX_ORDER block [0x40, 0x50): "
                 "node 0 pfns [0x40, 0x48) and node 1 pfns [0x48, 0x50)")),
])
def test_nodes_sharing_a_block_are_named_at_topology_time(end0, start1, expected):
    with pytest.warns(pgdefer.CrossNodeBlockWarning) as w:
        t = Topology(**two_nodes(end0, start1))
    (msg,) = [str(x.message) for x in w]
    assert msg.startswith(expected) and "model.md" in msg
    assert t.cross_node_blocks() == [expected]
    with pytest.raises(pgdefer.TopologyError, match=r"share the MAX_ORDER block \[0x40, 0x50\)"):
        Topology(**two_nodes(end0, start1), strict=True)


def test_nodes_meeting_on_a_block_boundary_are_accepted_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = Topology(**two_nodes(0x50, 0x50), strict=True)
        Topology(**two_nodes(0x40, 0x50), strict=True)  # a hole of one block between them
    assert t.cross_node_blocks() == []


def test_the_warning_counts_every_shared_block():
    mem = [Region(0, 0x44 * PAGE, 0), Region(0x44 * PAGE, 0x84 * PAGE, 1), Region(0x84 * PAGE, 0x200 * PAGE, 2)]
    with pytest.warns(pgdefer.CrossNodeBlockWarning, match=r"and 1 more such block"):
        t = Topology(memory=mem, geometry=SMALL)
    assert [s.split(":")[0] for s in t.cross_node_blocks()] == [
        "nodes 0, 1 share the MAX_ORDER block [0x40, 0x50), and the pageblock at pfn 0x40",
        "nodes 1, 2 share the MAX_ORDER block [0x80, 0x90), and the pageblock at pfn 0x80"]


def test_the_hazard_the_warning_announces_is_what_check_reports():
    """The v4.17 case of tests/core.rs: node 0 defers from 0x40, node 1's early 0x44 and 0x48 meet the
    uninitialised buddy 0x40 (B-I2 twice) and 0x44-0x47 are free in a pageblock with no type (B-I3)."""
    with pytest.warns(pgdefer.CrossNodeBlockWarning):
        m = Machine(Topology(**two_nodes(0x44, 0x44)), policy="v4.17")
    m.boot()
    with pytest.raises(pgdefer.InvariantViolation) as e:
        m.check()
    kinds = sorted(p.split(":")[0] for p in e.value.problems)
    assert kinds == ["B-I2"] * 2 + ["B-I3"] * 4


@pytest.mark.filterwarnings("ignore::pgdefer.CrossNodeBlockWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_rust_core_matches_oracle_on_nodes_sharing_blocks(data):
    topo = data.draw(topologies(mixed_node_blocks=True, max_nodes=3), label="topology")
    policy = data.draw(st.sampled_from(["v4.17", "v4.17", "posting-v2", "v5.8", "v6.4", "eager"]), label="policy")
    ops = data.draw(operations(topo, min_ops=4, max_ops=30), label="ops")
    mixed = has_mixed_node_blocks(topo)
    rust, oracle = Machine(topo, policy=policy), OracleMachine(topo, policy=policy)

    def hazards_only(m, *_):
        try:
            m.check()
        except pgdefer.InvariantViolation as e:
            assert mixed and all(p.startswith(("B-I2", "B-I3")) for p in e.problems), e.problems

    rust.boot()
    oracle.boot()
    hazards_only(rust)
    # a replayed late_init runs the passes in node order too: threaded passes free into a shared block in host order
    assert replay(Deterministic(rust), ops, after_each=hazards_only) == replay(oracle, ops)
    if rust.phase == "booted":
        rust.page_alloc_init_late(threads=False)  # passes in node order, as the oracle runs them
        oracle.page_alloc_init_late()
        hazards_only(rust)
    a, b = snapshot(rust), snapshot(oracle)
    for key in ("phase", "key", "fdp", "arrays", "migratetypes", "zones", "free_lists", "pcp"):
        assert a[key] == b[key], f"{key} differs"
    # The same refused merges, in the same order (each side words them its own way): block, order, buddy.
    assert [_merge(v) for v in a["violations"]] == [_merge(v) for v in b["violations"]]


def _merge(violation):
    return violation.split(":")[0], re.findall(r"0x[0-9a-f]+|order \d+", violation)

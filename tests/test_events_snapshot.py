"""pgdefer.testing.normalised (issue 14 finding 8): the documented core-vs-oracle example passes as written."""

import textwrap

import pytest

import pgdefer
import pgdefer.testing
from pgdefer import Region, Topology
from pgdefer.oracle import OracleMachine
from pgdefer.testing import normalised, snapshot


def documented_example():
    """The example test in pgdefer.testing's docstring, executed as it is printed there."""
    doc = pgdefer.testing.__doc__
    block = doc.split("runs this very example)::\n", 1)[1].split("\nFor the padata", 1)[0]
    namespace = {}
    exec(textwrap.dedent(block), namespace)  # noqa: S102 - our own docstring
    return namespace["test_core_matches_oracle"]


TOPOLOGY = Topology(memory=[Region("1M", "3G", 0), Region("4G", "5G", 0), Region("5G", "6G", 1)],
                    reserved=[Region("16M", "48M")])


@pytest.mark.parametrize("policy", ["v4.17", "posting-v2", "v4.2"])
def test_the_documented_example_passes(policy):
    documented_example()(TOPOLOGY, policy)


def test_raw_snapshots_differ_only_in_what_normalised_drops():
    core, oracle = pgdefer.Machine(TOPOLOGY), OracleMachine(TOPOLOGY)
    for m in (core, oracle):
        m.boot()
        m.page_alloc_init_late()
    a, b = snapshot(core), snapshot(oracle)
    assert a["events"] != b["events"]  # the core's carry host time and CPUs
    assert all("t_ns" in e and "cpu" in e for e in a["events"])
    assert {k: v for k, v in a.items() if k != "events"} == {k: v for k, v in b.items() if k != "events"}
    assert normalised(a) == normalised(b)


def test_normalised_orders_each_run_of_pass_events_by_node():
    snap = {"events": [{"kind": "key_disable", "t_ns": 1},
                       {"kind": "padata_chunk", "node": 1, "start": 8, "end": 9, "cpu": 3},
                       {"kind": "deferred_init", "node": 1, "pages": 5, "host_ns": 5},
                       {"kind": "padata_chunk", "node": 0, "start": 4, "end": 8},
                       {"kind": "padata_chunk", "node": 0, "start": 0, "end": 4},
                       {"kind": "warning", "message": "sleeping in atomic"},
                       {"kind": "deferred_init", "node": 0, "pages": 8},
                       {"kind": "grow", "cpu": 3}]}
    assert normalised(snap)["events"] == [
        {"kind": "key_disable"},
        {"kind": "padata_chunk", "node": 0, "start": 0, "end": 4},
        {"kind": "padata_chunk", "node": 0, "start": 4, "end": 8},
        {"kind": "deferred_init", "node": 0, "pages": 8},
        {"kind": "padata_chunk", "node": 1, "start": 8, "end": 9},
        {"kind": "deferred_init", "node": 1, "pages": 5},
        {"kind": "grow"}]


def test_normalised_refuses_what_is_not_a_snapshot():
    with pytest.raises(pgdefer.InvalidArgument, match="snapshot"):
        normalised([{"kind": "grow"}])

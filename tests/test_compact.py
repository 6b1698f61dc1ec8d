"""The compact memmap against the dense one, the reference (issue 12): on generated machines and operation
sequences, for every policy, both give the same observable state after every step (each struct page's state,
zone, node, order, init count and boot path, the free lists in order, zones, events, violations), and check()
finds the same (nothing) on both after every step. The oracle is compared with the dense core in
test_differential.py, so the compact core is held to the oracle too.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pgdefer import POLICIES, Machine, errors
from pgdefer.sources import presets
from pgdefer.testing import TIMING_KEYS, node_cpus, operations, replay, snapshot, topologies

EXAMPLES = int(os.environ.get("PGDEFER_DIFF_EXAMPLES", "400")) // 2
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


class Deterministic(Machine):
    """page_alloc_init_late in the deterministic mode (nodes in order, chunks ascending on this thread), so that
    two machines given the same operations build their free lists in the same order."""

    def page_alloc_init_late(self, threads=False):
        super().page_alloc_init_late(threads=False)


class Lockstep:
    """Both machines, each call made on both: the same result or the same exception class (raised again)."""

    def __init__(self, dense, compact):
        self.dense, self.compact = dense, compact

    def __getattr__(self, name):
        def both(*args, **kw):
            outcomes = []
            for m in (self.dense, self.compact):
                try:
                    outcomes.append((True, getattr(m, name)(*args, **kw)))
                except errors.PgdeferError as e:
                    outcomes.append((False, e))
            (ok, value), (ok2, value2) = outcomes
            assert ok == ok2 and (value == value2 if ok else type(value) is type(value2)), (name, args, outcomes)
            if not ok:
                raise value
            return value
        return both


def observed(m):
    snap = snapshot(m)
    snap["events"] = [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in snap["events"]]
    return snap


def assert_same(dense, compact, when):
    a, b = observed(dense), observed(compact)
    for key in a:
        assert a[key] == b[key], f"{key} differs {when}"
    problems = dense._core.check()
    assert problems == [], f"dense check() {when}: {problems}"
    assert compact._core.check() == problems, f"compact check() {when}"


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_compact_memmap_matches_dense_after_every_step(data):
    topo = data.draw(topologies(), label="topology")
    policy = data.draw(st.sampled_from(POLICIES), label="policy")
    cpus = data.draw(node_cpus(topo), label="node_cpus")
    dense = Deterministic(topo, policy=policy, node_cpus=cpus)
    compact = Deterministic(topo, policy=policy, node_cpus=cpus, memmap="compact")
    assert_same(dense, compact, "before boot")
    dense.boot()
    compact.boot()
    assert_same(dense, compact, "after boot")
    ops = data.draw(operations(topo, min_ops=4, max_ops=30), label="ops")
    pair = Lockstep(dense, compact)
    replay(pair, ops, after_each=lambda p, op, out: assert_same(dense, compact, f"after {op!r}"))
    if compact.phase == "booted":
        dense.page_alloc_init_late()
        compact.page_alloc_init_late()
    assert_same(dense, compact, "at the end")
    census = compact.memmap_census()
    event(f"free-run sections at the end: {'some' if census['free_run'] else 'none'}")
    event(f"summaries decoded again: {'some' if census['decoded'] else 'none'}")


def _two_nodes():
    return presets.get("default")  # 2 x 8 GiB: 2^21 struct pages per node, 128 MiB sections


# Boot frees link MAX_ORDER blocks ascending from 5.10 (tail placement) and descending before (the list head):
# both are summaries (docs/model.md §3.1).
@pytest.mark.parametrize("policy", ["eager", "v4.17", "v5.2", "v5.10", "v6.4", "rework-2025"])
def test_a_booted_machine_is_mostly_summaries_and_reads_as_the_dense_one(policy):
    topo = _two_nodes()
    dense = Deterministic(topo, policy=policy)
    compact = Deterministic(topo, policy=policy, memmap="compact")
    for m in (dense, compact):
        m.boot()
        m.page_alloc_init_late()
    census = compact.memmap_census()
    # 16 GiB / 128 MiB = 128 present sections (the topology's memory is section-aligned at the top); all
    # but those holding the early prefix, reservations or holes are one free run after the passes.
    decoded = census.pop("decoded")
    assert sum(census.values()) == len(compact.pages) // topo.geometry.pages_per_section
    assert census["free_run"] > sum(census.values()) // 2, census
    assert census["init"] == 0 and census["zero"] == 0  # every page was initialised and freed
    for k in ("state", "zone", "node", "order", "init_count", "init_by"):
        assert np.array_equal(np.asarray(getattr(dense.pages, k)), np.asarray(getattr(compact.pages, k))), k
    assert compact._core.check() == []
    # Allocations take the same blocks on both (the free lists' order is the dense one's); once one comes from
    # a summarised section, that section is dense again, and both machines still read the same.
    before, order = census["dense"], topo.geometry.max_order
    for _ in range(256):
        assert dense.alloc_pages(order) == compact.alloc_pages(order)
        if compact.memmap_census()["dense"] > before:
            break
    assert compact.memmap_census()["dense"] == before + 1
    assert compact.memmap_census()["decoded"] == decoded + 1
    for k in ("state", "order"):
        assert np.array_equal(np.asarray(getattr(dense.pages, k)), np.asarray(getattr(compact.pages, k))), k
    assert compact._core.check() == []


def test_windows_of_a_compact_memmap_decode_only_their_pages():
    topo = _two_nodes()
    m = Machine(topo, memmap="compact")
    m.boot()
    m.page_alloc_init_late()
    pps = topo.geometry.pages_per_section
    lo, hi = topo.node_span(1)
    s = (lo + hi) // 2 // pps * pps  # a section in the middle of node 1: deferred, a free run after the pass
    w = m.pages.window(s, s + pps)
    assert len(w) == pps and set(np.asarray(w.node).tolist()) == {1}
    # One MAX_ORDER head every 2^max_order pages, every page free.
    heads = np.flatnonzero(np.asarray(w.order) != np.asarray(w.order)[1])
    assert heads.tolist() == list(range(0, pps, 1 << topo.geometry.max_order))
    assert m.pages[s].state.name == "FREE"
    assert m.memmap == "compact" and Machine(topo).memmap == "dense"
    with pytest.raises(errors.InvalidArgument, match="memmap"):
        Machine(topo, memmap="sparse")


TiB, GiB = 1 << 40, 1 << 30


@pytest.mark.parametrize("policy", ["v4.17", "v5.10"])
def test_pages_beyond_dense_index_2_32_link_as_a_small_machine_of_that_node_does(policy):
    """More than 2^32 struct pages (issue 12: no index limit below the physical address space): node 3 starts at
    16 TiB, so its pages sit at dense indices >= 2^32. The same node alone, at the same pfns, is the oracle:
    the same allocations get the same pfns, and frees build the same free lists, pfn for pfn."""
    from pgdefer import Region, Topology

    big = Topology(memory=[Region(0, 6 * TiB, 0), Region(6 * TiB, 12 * TiB, 1), Region(12 * TiB, 16 * TiB, 2),
                           Region(16 * TiB, 16 * TiB + 4 * GiB, 3)])
    assert big.memmap_pages > 2**32
    alone = Topology(memory=[Region(16 * TiB, 16 * TiB + 4 * GiB, 0)])
    machines = [Machine(big, policy=policy, memmap="compact"), Machine(alone, policy=policy)]
    for m in machines:
        m.boot()
    got = []
    for m, node in zip(machines, (3, 0)):
        blocks = [(m.alloc_pages(order, node=node), order) for order in [10, 0, 0] * 700]
        for pfn, order in blocks[::2] + blocks[1::2]:
            m.free_pages(pfn, order)
        m.check()
        lists = [m.free_list(node, "Normal", o) for o in range(m.geometry.max_order + 1)]
        z = m.zone(node, "Normal")
        got.append(([p for p, _ in blocks], lists, (z.start_pfn, z.present, z.managed, z.free_pages, z.nr_free)))
    assert min(got[0][0]) >= 2**32 and got[0] == got[1]


def test_a_zone_beyond_a_links_reach_is_refused_naming_it():
    """A free-list link reaches 2^31 - 1 pages either way (it is stored as a signed 32-bit distance), so one
    zone may span no more: a 9 TiB single-node machine of 4 KiB pages is refused, naming the node and zone."""
    from pgdefer import Region, Topology
    from pgdefer._core import MAX_LINK_SPAN

    assert MAX_LINK_SPAN == 2**31 - 1
    with pytest.raises(errors.InvalidArgument, match=r"node 0 zone Normal spans \d+ pages.*split the node"):
        Machine(Topology(memory=[Region(0, 9 * TiB, 0)]), memmap="compact")
    Machine(Topology(memory=[Region(0, 4 * TiB, 0), Region(4 * TiB, 9 * TiB, 1)]), memmap="compact")


@pytest.mark.filterwarnings("ignore::pgdefer.CrossNodeBlockWarning")
@pytest.mark.parametrize("policy", ["v4.17", "v5.10"])
def test_check_finds_the_same_violations_on_both_memmaps(policy):
    """check() steps over a summarised section at once: it must still report what the dense sweep reports
    page by page (here the cross-node block hazard of test_cross_node_blocks.py, after boot and after the
    passes)."""
    from pgdefer import Topology
    from test_cross_node_blocks import two_nodes

    topo = Topology(**two_nodes(0x44, 0x44))
    dense, compact = Machine(topo, policy=policy), Machine(topo, policy=policy, memmap="compact")
    for step in ("boot", "page_alloc_init_late"):
        for m in (dense, compact):
            getattr(m, step)()
        problems = dense._core.check()
        assert problems and compact._core.check() == problems, step


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_compact_page_view_decodes_only_what_is_read():
    """len, runs, index, one page and a window of a 1 TB compact machine cost what they read (issue 12): the
    process grows by far less than the 1.3 GB that decoding all 268 M pages' five bytes takes (the decoded copies
    are the core's memory, so the resident size is what tells)."""
    m = Machine(presets.get("m2-4node-1t"), memmap="compact")
    m.boot()
    pps = m.geometry.pages_per_section
    lo = m.topology.node_span(2)[0]
    before = _rss_bytes()
    view = m.pages
    assert len(view) == m.topology.memmap_pages and view.runs
    assert view[lo + 5].state.name == "FREE" and view.index(lo + 5) >= 0
    window = view.window(lo, lo + pps)
    assert np.asarray(window.state).size == pps
    grown = _rss_bytes() - before
    assert grown < 128 << 20, f"{grown / 2**20:.0f} MiB more resident"
    del view, window

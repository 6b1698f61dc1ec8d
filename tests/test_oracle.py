"""Tests of the pure-Python reference oracle (pgdefer.oracle) and of the hypothesis strategies in pgdefer.testing.

Numbers in the hand-derived tests come from docs/model.md and the spec, worked out in the comments, not from
running the code.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cases import booted_acceptance_case
from pgdefer import (
    BadFree,
    Geometry,
    InvalidArgument,
    InvariantViolation,
    OrderError,
    OutOfMemory,
    PhaseError,
    Topology,
    UnknownNode,
    UnknownZone,
)
from pgdefer.oracle import ALLOCATED, FREE, INIT, NO_ORDER, POLICIES, RESERVED, UNINIT, OracleMachine
from pgdefer.testing import has_mixed_node_blocks, operations, replay, small_geometries, snapshot, topologies

K, M, G = 1 << 10, 1 << 20, 1 << 30
PAGE = 4096


def grow_events(m):
    return [e for e in m.events if e["kind"] == "grow"]


# ------------------------------------------------------------------------------------------------------------
# 1. the acceptance case
# ------------------------------------------------------------------------------------------------------------

def test_acceptance_x86_64_v417():
    # x86_64: 4 KiB pages, PAGES_PER_SECTION = 128M / 4K = 32768 = 0x8000, max_order 10, pageblock_order 9.
    # memory [1 MiB, 5 GiB) node 0  -> memory pfns [0x100, 0x140000)    (PFN_UP(1M) = 256, PFN_DOWN(5G) = 0x140000)
    # reserved [16 MiB, 48 MiB)    -> pfns [0x1000, 0x3000) = 8192 pages, all in DMA32
    # default zone limits DMA 16M (pfn 0x1000), DMA32 4G (pfn 0x100000); Normal unbounded.
    #   DMA    [0x100, 0x1000)      present 3840,    all free                               -> 3840 free
    #   DMA32  [0x1000, 0x100000)   present 1044480, 8192 reserved                          -> 1036288 free
    #   Normal [0x100000, 0x140000) present 262144 = 8 sections; D(0) = Normal
    # node_spanned = 0x140000 - 0x100 = 1310464, LIMIT (v4.17) = min(32768, 1310464) = 32768.
    # Counting Normal pfns from 0x100000: pfn p has k = p - 0x100000 + 1; the first p with k > 32768 and
    # p % 0x8000 == 0 is p = 0x108000 (k = 32769)  -> first_deferred_pfn = 0x108000, Normal has 32768 pages
    # initialised early, all free, released by memblock_free_all (32 order-10 chunks) -> Normal 32768 free.
    topo, m = booted_acceptance_case(OracleMachine)
    assert m.deferred_pages_enabled
    # 32768 order-0 GFP_KERNEL allocations are served from Normal's early section: no grow.
    for _ in range(32768):
        pfn = m.alloc_pages(0)
        assert 0x100000 <= pfn < 0x108000
    assert grow_events(m) == []
    assert m.zone(0, "Normal").free_pages == 0
    # The next one fails the watermark in Normal (free_pages 0) -> hook 1 grows Normal by one section:
    # need = round_up(1, 32768) = 32768; first = 0x108000; the free range [0x3000, 0x140000) gives
    # [0x108000, 0x110000) (t = ALIGN(0x108000 + 0x8000, 0x8000) = 0x110000) -> got 32768, fdp = 0x110000.
    pfn = m.alloc_pages(0)
    assert 0x108000 <= pfn < 0x110000
    assert grow_events(m) == [{"kind": "grow", "node": 0, "zone": "Normal", "order": 0, "hook": "watermark",
                               "pages": 32768, "first_deferred_pfn": 0x110000, "result": True}]
    assert m.first_deferred_pfn(0) == 0x110000
    m.page_alloc_init_late()
    assert m.first_deferred_pfn(0) is None
    assert not m.deferred_pages_enabled
    a = m.page_arrays()
    assert len(a["pfn"]) == 40 * 32768                   # sections 0..39 present
    assert (a["init_count"] == 1).all()
    # every Normal page released (262144), 32769 allocated
    assert m.zone(0, "Normal").free_pages == 262144 - 32769
    assert m.zone(0, "Normal").managed == 262144
    # the pass initialised [0x110000, 0x140000) = 196608 pages
    late = [e for e in m.events if e["kind"] == "deferred_init"]
    assert [(e["node"], e["pages"]) for e in late] == [(0, 196608)]
    assert m.events[-1] == {"kind": "key_disable"}
    m.check()


# ------------------------------------------------------------------------------------------------------------
# 2. per-policy behaviour
# ------------------------------------------------------------------------------------------------------------

# A tiny geometry: 16 pages per section (64 KiB), max_order 2 (4-page blocks), pageblock_order 1 (2 pages).
TINY = Geometry(page_size="4K", section_size="64K", pageblock_order=1, max_order=2)


def tiny_topology(**kw):
    # memory pfns [0, 64) node 0 (4 sections); DMA = [0, 16), Normal = [16, 64) (DMA32 empty).
    kw.setdefault("memory", [(0, 64 * PAGE, 0)])
    kw.setdefault("zone_limits", {"DMA": 16 * PAGE})
    return Topology(geometry=TINY, **kw)


def test_eager_defers_nothing():
    topo = Topology(memory=[(0, 40 * PAGE, 0), (48 * PAGE, 100 * PAGE, 1)], reserved=[(5 * PAGE, 7 * PAGE)],
                    zone_limits={"DMA": 16 * PAGE}, geometry=TINY)
    m = OracleMachine(topo, "eager")
    m.boot()
    assert m.first_deferred_pfn(0) is None and m.first_deferred_pfn(1) is None
    assert not m.deferred_pages_enabled
    assert [e["first_deferred_pfn"] for e in m.events if e["kind"] == "early_init"] == [None, None]
    # node 0 has 40 memory pfns, node 1 has 52: all initialised early
    assert [e["pages"] for e in m.events if e["kind"] == "early_init"] == [40, 52]
    assert m.events[-1] == {"kind": "memblock_free_all", "released": 90, "reserved": 2, "deferred": 0}
    a = m.page_arrays()
    assert (a["state"] != UNINIT).all() and (a["init_count"] == 1).all()
    assert m.deferred_grow_zone(0, "Normal") is False
    n = 0
    with pytest.raises(OutOfMemory):
        while True:
            m.alloc_pages(0)
            n += 1
    assert n == 90 and grow_events(m) == []
    m.page_alloc_init_late()
    assert [(e["node"], e["pages"]) for e in m.events if e["kind"] == "deferred_init"] == [(0, 0), (1, 0)]
    assert not any(e["kind"] == "key_disable" for e in m.events)
    m.check()


def test_v42_two_gib_prefix_and_never_grows():
    # 4 KiB pages, 1 MiB sections (256 pages), max_order 8 (1 MiB blocks), pageblock_order 6.
    # memory [0, 3 GiB): pfns [0, 786432). DMA [0, 16M), DMA32 [16M, 512M), Normal [512M, 3G) = pfns
    # [131072, 786432), 2.5 GiB = 655360 pages. v4.2 LIMIT = 2 GiB / 4 KiB = 524288 pages; counting from
    # pfn 131072, the first section-aligned pfn with k > 524288 is 131072 + 524288 = 655360 (k = 524289;
    # 655360 = 2560 * 256). So fdp = 655360, early init covers pfns [0, 655360) = 655360 pages and 131072
    # (512 MiB) stay deferred. Everything is free and order-8 aligned: 2560 order-8 blocks are released.
    g = Geometry(page_size="4K", section_size="1M", pageblock_order=6, max_order=8)
    topo = Topology(memory=[(0, 3 * G, 0)], zone_limits={"DMA": 16 * M, "DMA32": 512 * M}, geometry=g)
    m = OracleMachine(topo, "v4.2")
    m.boot()
    assert m.first_deferred_pfn(0) == 655360
    assert m.events[0] == {"kind": "early_init", "node": 0, "pages": 655360, "first_deferred_pfn": 655360}
    assert m.events[1] == {"kind": "memblock_free_all", "released": 655360, "reserved": 0, "deferred": 131072}
    assert not m.deferred_pages_enabled                  # v4.2 has no hook
    n = 0
    with pytest.raises(OutOfMemory):
        while True:
            m.alloc_pages(8)
            n += 1
    assert n == 2560                                     # OOM with 512 MiB still deferred: no growth
    assert grow_events(m) == [] and m.first_deferred_pfn(0) == 655360
    assert m.deferred_grow_zone(0, "Normal", 0) is False and grow_events(m) == []
    m.check()
    m.page_alloc_init_late()
    assert [e for e in m.events if e["kind"] == "deferred_init"][0]["pages"] == 131072
    # Before 5.10 the pass's frees follow __free_one_page's head rule (docs/model.md §11.7): it frees
    # [655360, 786432) as order-6 pageblocks, ascending; pairs merge to order 7 and pairs of those to order 8
    # (max_order), and a block of order >= max_order - 1 = 7 always goes to the head. So each completed
    # order-8 block goes to the head of free_area[8] and the last one, [786432 - 256, 786432) = 786176, heads it
    # (the 2560 early blocks are all allocated).
    assert m.alloc_pages(8) == 786176
    m.check()


def test_v417_grows_one_section_at_a_time():
    # tiny_topology: Normal [16, 64), LIMIT = min(16, spanned 64) = 16; counting from 16, pfn 32 has k = 17
    # and is section aligned -> fdp = 32. Each grow: need = round_up(1 << order, 16) = 16 -> one section.
    m = OracleMachine(tiny_topology(), "v4.17")
    m.boot()
    assert m.first_deferred_pfn(0) == 32
    assert m.deferred_grow_zone(0, "Normal", 0) is True
    assert m.first_deferred_pfn(0) == 48
    assert m.deferred_grow_zone(0, "Normal", 2) is True
    assert m.first_deferred_pfn(0) == 64
    assert m.deferred_grow_zone(0, "Normal", 0) is False   # first = 64 >= node end
    assert [(e["pages"], e["first_deferred_pfn"], e["result"], e["hook"]) for e in grow_events(m)] == [
        (16, 48, True, "explicit"), (16, 64, True, "explicit"), (0, 64, False, "explicit")]
    # DMA is not the node's last zone: rejected before the lock, no event
    assert m.deferred_grow_zone(0, "DMA", 0) is False
    assert len(grow_events(m)) == 3
    # The head rule (before 5.10, docs/model.md §11.7): with max_order 2 only an order-0 block can go to the
    # tail (k < max_order - 1 = 1); every order-1 and order-2 block goes to the head. Boot released DMA [0, 16)
    # and Normal [16, 32) as order-2 chunks in ascending order, each to the head: DMA [12, 8, 4, 0], Normal
    # [28, 24, 20, 16]. Each grow released its section as order-1 pageblocks ascending: 32 (head of
    # free_area[1]), then 34 merges with it into (32, 2), linked at the head of free_area[2]; likewise 36, 40,
    # 44, then (second grow) 48, 52, 56, 60: each new order-2 block goes in front of the previous ones.
    assert m.free_list(0, "Normal", 2) == [60, 56, 52, 48, 44, 40, 36, 32, 28, 24, 20, 16]
    assert m.free_list(0, "DMA", 2) == [12, 8, 4, 0]
    m.check()


def test_v417_grow_from_allocations_and_rmqueue_hook():
    # Boot linked Normal's order-2 chunks at the head (head rule): [28, 24, 20, 16]. Each order-2 block is
    # taken from the head and split (expand: the order-1 half at +2, then the order-0 half at +1, to the
    # heads), so its four pages come in order: 28, 29 (order-0 head), 30 (order-1 head, split: 31 left), 31;
    # then the block at 24, 20, 16. The 17th request fails the watermark and grows [32, 48): the order-1
    # pageblocks merge pairwise into 32, 36, 40, 44, each linked at the head, so the head is 44.
    m = OracleMachine(tiny_topology(), "v4.17")
    m.boot()
    pfns = [m.alloc_pages(0, zone="Normal") for _ in range(16)]
    assert pfns == [b + i for b in (28, 24, 20, 16) for i in range(4)] and grow_events(m) == []
    assert m.alloc_pages(0) == 44                        # watermark hook grew [32, 48)
    assert [(e["hook"], e["pages"]) for e in grow_events(m)] == [("watermark", 16)]
    m.check()


def posting_v2_topology():
    # tiny_topology plus reserved [36, 40) and [44, 64): Normal free ranges [16, 36) and [40, 44).
    # Early init: counting Normal memory pfns (reserved ones too) from 16 -> fdp = 32 as before.
    # A grow from fdp 32: range [16, 36) gives s = 32, e = 36, t = 48 -> new_first = 36, got 4; range [40, 44)
    # gives new_first = 44, got 8; no more ranges. got = 8 < need = 16. fdp := 44 (the end of a free range).
    return tiny_topology(reserved=[(36 * PAGE, 40 * PAGE), (44 * PAGE, 64 * PAGE)])


@pytest.mark.parametrize("policy, result", [("posting-v2", False), ("v4.17", True)])
def test_short_grow_result_posting_v2_vs_v417(policy, result):
    m = OracleMachine(posting_v2_topology(), policy)
    m.boot()
    assert m.first_deferred_pfn(0) == 32
    assert m.deferred_grow_zone(0, "Normal", 0) is result   # posting-v2: got >= need; v4.17: got > 0
    assert m.first_deferred_pfn(0) == 44
    assert grow_events(m)[-1]["pages"] == 8
    # the released pageblocks merged: [32, 36) and then [40, 44) became order-2 blocks, each linked at the
    # head (head rule, max_order 2), in front of boot's [28, 24, 20, 16]
    assert m.free_list(0, "Normal", 2) == [40, 32, 28, 24, 20, 16]
    # nothing left above 44: both policies now return False (and fdp stays 44 until page_alloc_init_late)
    assert m.deferred_grow_zone(0, "Normal", 0) is False
    assert m.first_deferred_pfn(0) == 44
    m.check()
    m.page_alloc_init_late()
    assert [e["pages"] for e in m.events if e["kind"] == "deferred_init"] == [0]
    m.check()


@pytest.mark.parametrize("policy, expected", [("posting-v2", 12), ("v4.17", 40)])
def test_short_grow_under_allocation(policy, expected):
    # Drain Normal's 16 early pages; the 17th GFP_KERNEL allocation fails the watermark in Normal and grows
    # it by 8 pages. posting-v2 returns False (8 < 16), so the allocator moves on down the zonelist (DMA32
    # is empty, then DMA: boot linked its order-2 chunks at the head, so [12, 8, 4, 0], and the head block 12
    # is split: pfn 12); v4.17 returns True and the retry in Normal takes the head of free_area[2]: the grow
    # linked 32 and then 40 at the head, so 40.
    m = OracleMachine(posting_v2_topology(), policy)
    m.boot()
    for _ in range(16):
        m.alloc_pages(0, zone="Normal")
    assert m.alloc_pages(0) == expected
    assert [(e["hook"], e["pages"], e["result"]) for e in grow_events(m)] == [("watermark", 8, policy == "v4.17")]
    m.check()


@pytest.mark.parametrize("policy", ["posting-v2", "v4.17"])
def test_key_disable_ordering(policy):
    m = OracleMachine(tiny_topology(), policy)
    m.boot()
    assert m.deferred_pages_enabled
    m.page_alloc_init_late()
    kinds = [e["kind"] for e in m.events]
    if policy == "posting-v2":                           # key off under the global lock, then the passes
        assert kinds[-2:] == ["key_disable", "deferred_init"]
    else:                                                # passes first, key off after all finished
        assert kinds[-2:] == ["deferred_init", "key_disable"]
    assert [e["pages"] for e in m.events if e["kind"] == "deferred_init"] == [32]
    # after the key is off, an explicit grow reaches the lock: v4.17 returns True (key re-check),
    # posting-v2 False; both log an event with 0 pages
    assert m.deferred_grow_zone(0, "Normal") is (policy == "v4.17")
    assert grow_events(m)[-1]["pages"] == 0
    m.check()


def test_free_list_discipline():
    # eager, memory [0, 16) all Normal: boot releases order-2 chunks 0, 4, 8, 12 in ascending order; eager is
    # a pre-5.10 generation, so each goes to the head (order 2 = max_order >= max_order - 1): [12, 8, 4, 0].
    topo = Topology(memory=[(0, 16 * PAGE, 0)], zone_limits={}, geometry=TINY)
    m = OracleMachine(topo, "eager")
    m.boot()
    assert m.free_list(0, "Normal", 2) == [12, 8, 4, 0]
    # alloc order 0: take 12 from free_area[2], split: 14 (order 1) then 13 (order 0) at the heads
    assert m.alloc_pages(0) == 12
    assert (m.free_list(0, "Normal", 1), m.free_list(0, "Normal", 0)) == ([14], [13])
    assert m.alloc_pages(0) == 13
    assert m.alloc_pages(0) == 14                        # splits 14 (order 1): 15 goes to free_area[0]
    assert m.free_list(0, "Normal", 0) == [15]
    m.free_pages(12)                                     # buddy 13 allocated: 12 goes to the head
    assert m.free_list(0, "Normal", 0) == [12, 15]
    m.free_pages(14)                                     # merges with 15 -> (14, 1); buddy 12 is order 0: stop
    assert (m.free_list(0, "Normal", 0), m.free_list(0, "Normal", 1)) == ([12], [14])
    m.free_pages(13)                                     # merges with 12, then (14, 1) -> (12, 2) at the head
    assert m.free_list(0, "Normal", 2) == [12, 8, 4, 0]
    assert m.zone(0, "Normal").nr_free == [0, 0, 4]
    m.check()


def test_holes_take_the_node_above_else_below():
    # node 1 at pfns [2, 6), node 0 at [10, 14), one section [0, 16). Holes: 0, 1 -> node 1 (nearest memory
    # above is 2); 6..9 -> node 0 (above: 10); 14, 15 -> none above, nearest below is 13 -> node 0.
    topo = Topology(memory=[(2 * PAGE, 6 * PAGE, 1), (10 * PAGE, 14 * PAGE, 0)], zone_limits={}, geometry=TINY)
    m = OracleMachine(topo, "v4.17")
    m.boot()
    a = m.page_arrays()
    assert a["pfn"].tolist() == list(range(16))
    assert a["node"].tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    holes = [0, 1, 6, 7, 8, 9, 14, 15]
    assert all(a["state"][p] == RESERVED and a["init_count"][p] == 1 for p in holes)
    assert m.nodes == [0, 1]
    assert m.pageblock_migratetypes() == {pb: "Movable" for pb in range(8)}
    m.check()


def test_unaligned_edges_and_partial_reserved_pages():
    # memory [0x800, 0x5800) -> pfns [1, 5); reserved [0x2800, 0x3001) -> pfns [2, 4) (PFN_DOWN / PFN_UP);
    # reserved [0x9000, 0xa000) covers no memory and is ignored. Free pfns: 1, 4.
    topo = Topology(memory=[(0x800, 0x5800, 0)], reserved=[(0x2800, 0x3001), (0x9000, 0xA000)], zone_limits={},
                    geometry=TINY)
    m = OracleMachine(topo, "eager")
    m.boot()
    st_ = m.page_arrays()["state"].tolist()
    assert st_[:6] == [RESERVED, FREE, RESERVED, RESERVED, FREE, RESERVED]
    assert m.events[-1] == {"kind": "memblock_free_all", "released": 2, "reserved": 2, "deferred": 0}
    z = m.zone(0, "Normal")
    assert (z.start_pfn, z.end_pfn, z.spanned, z.present, z.managed, z.free_pages) == (1, 5, 4, 4, 2, 2)
    m.check()


# ------------------------------------------------------------------------------------------------------------
# 3. invariants on generated machines, and the checker itself
# ------------------------------------------------------------------------------------------------------------

def hset(n):
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _check_each(m, op, out):
    m.check()


@pytest.mark.parametrize("policy", POLICIES)
@hset(80)
@given(data=st.data())
def test_check_holds_after_every_step(policy, data):
    topo = data.draw(topologies(), label="topology")
    ops = data.draw(operations(topo), label="ops")
    m = OracleMachine(topo, policy)
    m.check()
    m.boot()
    m.check()
    replay(m, ops, after_each=_check_each)
    assert m.violations == []                            # no MAX_ORDER block is shared by two nodes
    if m.phase != "late_init_done":
        m.page_alloc_init_late()
        m.check()
    assert (m.page_arrays()["init_count"] == 1).all()
    assert all(m.first_deferred_pfn(n) is None for n in m.nodes)
    assert sum(m.zone(n, z).managed for n in m.nodes for z in ("DMA", "DMA32", "Normal", "Movable")
               if _has_zone(m, n, z)) == m.totalram_pages


def _has_zone(m, n, z):
    try:
        m.zone(n, z)
        return True
    except UnknownZone:
        return False


@pytest.mark.filterwarnings("ignore::pgdefer.CrossNodeBlockWarning")  # such maps are the point here
@hset(60)
@given(data=st.data())
def test_mixed_node_blocks_only_expose_kernel_hazards(data):
    # When node boundaries share MAX_ORDER blocks, the model may record B-I2 (a free met another node's
    # UNINIT buddy) and check() may report B-I3 (a pageblock whose first pfn is another node's deferred pfn
    # holds FREE pages). Nothing else may go wrong, and neither happens without such a block.
    topo = data.draw(topologies(mixed_node_blocks=True), label="topology")
    ops = data.draw(operations(topo), label="ops")
    policy = data.draw(st.sampled_from(POLICIES), label="policy")
    mixed = has_mixed_node_blocks(topo)
    m = OracleMachine(topo, policy)
    m.boot()

    def after(m, op, out):
        try:
            m.check()
        except InvariantViolation as e:
            assert mixed and all(p.startswith("B-I3") for p in e.problems), e.problems

    after(m, None, None)
    replay(m, ops, after_each=after)
    assert not m.violations or (mixed and all(v.startswith("B-I2") for v in m.violations))


@hset(40)
@given(data=st.data())
def test_replay_is_deterministic(data):
    topo = data.draw(topologies(), label="topology")
    ops = data.draw(operations(topo), label="ops")
    policy = data.draw(st.sampled_from(POLICIES), label="policy")
    runs = []
    for _ in range(2):
        m = OracleMachine(topo, policy)
        m.boot()
        runs.append((replay(m, ops), snapshot(m)))
    assert runs[0] == runs[1]


@hset(60)
@given(data=st.data())
def test_check_catches_any_state_or_count_corruption(data):
    topo = data.draw(topologies(), label="topology")
    ops = data.draw(operations(topo, invalid=False), label="ops")
    m = OracleMachine(topo, data.draw(st.sampled_from(POLICIES), label="policy"))
    m.boot()
    replay(m, ops)
    m.check()
    i = data.draw(st.integers(0, len(m._st) - 1), label="page index")
    field = data.draw(st.sampled_from(["state", "init_count"]), label="field")
    arr = m._st if field == "state" else m._ic
    old = arr[i]
    arr[i] = data.draw(st.integers(0, 4).filter(lambda v: v != old), label="new value")
    with pytest.raises(InvariantViolation):
        m.check()


def booted_tiny(policy="v4.17"):
    # fdp = 32; Normal free ranges [16, 20) and [21, 64); boot released 16 (order 2), 21 (order 0),
    # 22 (order 1), 24 and 28 (order 2): Normal managed 15, every block on the MOVABLE lists. A MOVABLE
    # allocation needs no fallback and takes the smallest, the order-0 block 21.
    m = OracleMachine(tiny_topology(reserved=[(20 * PAGE, 21 * PAGE)]), policy)
    m.boot()
    assert m.alloc_pages(0, migratetype="Movable") == 21
    assert m.zone(0, "Normal").managed == 15 and m.zone(0, "Normal").free_pages == 14
    return m


def test_check_catches_targeted_corruptions():
    m = booted_tiny()
    m.check()
    cases = []

    def corrupt(name, fn, expect):
        mm = booted_tiny()
        fn(mm)
        with pytest.raises(InvariantViolation) as ei:
            mm.check()
        assert any(expect in p for p in ei.value.problems), (name, ei.value.problems)
        cases.append(name)

    corrupt("flip a free page to UNINIT", lambda mm: mm._st.__setitem__(mm._i(17), UNINIT), "I2")
    corrupt("initialise a deferred page", lambda mm: mm._st.__setitem__(mm._i(40), INIT), "I2")
    corrupt("double init", lambda mm: mm._ic.__setitem__(mm._i(2), 2), "I1")
    corrupt("unlink a free block", lambda mm: mm._zones[(0, 0)].lists[(2, 1)].popitem(last=False), "B-I1")
    corrupt("managed off by one", lambda mm: setattr(mm._zones[(0, 2)], "managed", 14), "B-I4")
    corrupt("free_pages off by one", lambda mm: setattr(mm._zones[(0, 2)], "free_pages", 13), "B-I4")
    corrupt("migratetype lost", lambda mm: mm._mt.pop(12, None), "B-I3")
    corrupt("fdp decreased", lambda mm: mm._set_fdp(mm._nodes[0], 16), "I4")
    corrupt("fdp unaligned", lambda mm: mm._set_fdp(mm._nodes[0], 33), "I3")
    corrupt("order mark lost", lambda mm: mm._od.__setitem__(mm._i(0), NO_ORDER), "not inside any block")
    corrupt("allocated page freed behind the allocator's back",
            lambda mm: mm._st.__setitem__(mm._i(21), FREE), "B-I1")
    corrupt("key turned off early", lambda mm: setattr(mm, "_key", False), "static key")
    assert len(cases) == 12


# ------------------------------------------------------------------------------------------------------------
# 4. bad inputs
# ------------------------------------------------------------------------------------------------------------

def test_unknown_policy():
    with pytest.raises(ValueError, match="v4.17"):
        OracleMachine(tiny_topology(), "v9.9")


def test_phase_errors():
    m = OracleMachine(tiny_topology())
    assert m.phase == "created"
    for call in (lambda: m.alloc_pages(0), lambda: m.free_pages(16), lambda: m.deferred_grow_zone(0, "Normal"),
                 m.page_alloc_init_late):
        with pytest.raises(PhaseError):
            call()
    assert m.first_deferred_pfn(0) is None and m.zone(0, "Normal").managed == 0
    m.check()
    m.boot()
    assert m.phase == "booted"
    with pytest.raises(PhaseError):
        m.boot()
    m.page_alloc_init_late()
    assert m.phase == "late_init_done"
    with pytest.raises(PhaseError):
        m.page_alloc_init_late()
    m.alloc_pages(0)                                     # allocation still works after late init
    m.check()


def test_bad_arguments_raise_typed_errors_and_change_nothing():
    m = OracleMachine(tiny_topology(reserved=[(20 * PAGE, 21 * PAGE)]), "v4.17")
    m.boot()
    pfn = m.alloc_pages(1, migratetype="Movable")        # 22: the order-1 block (see booted_tiny)
    assert pfn == 22
    before = snapshot(m)
    cases = [
        (lambda: m.alloc_pages(3), OrderError, "3"),
        (lambda: m.alloc_pages(-1), OrderError, "-1"),
        (lambda: m.alloc_pages("0"), OrderError, "'0'"),
        (lambda: m.alloc_pages(0, node=5), UnknownNode, "5"),
        (lambda: m.alloc_pages(0, migratetype="CMA"), InvalidArgument, "CMA"),
        (lambda: m.alloc_pages(0, migratetype="HighAtomic"), InvalidArgument, "HIGHATOMIC"),
        (lambda: m.alloc_pages(0, zone="HighMem"), UnknownZone, "HighMem"),
        (lambda: m.free_pages(pfn, 3), OrderError, "3"),
        (lambda: m.free_pages(pfn, 0), BadFree, "order 1"),
        (lambda: m.free_pages(pfn + 1, 0), BadFree, "0x17"),
        (lambda: m.free_pages(20, 0), BadFree, "0x14"),          # reserved
        (lambda: m.free_pages(40, 0), BadFree, "0x28"),          # UNINIT
        (lambda: m.free_pages(0x1000, 0), BadFree, "0x1000"),    # no struct page
        (lambda: m.free_pages(-1, 0), BadFree, "-1"),
        (lambda: m.deferred_grow_zone(0, "Normal", 9), OrderError, "9"),
        (lambda: m.deferred_grow_zone(3, "Normal"), UnknownNode, "3"),
        (lambda: m.deferred_grow_zone(0, "Movable"), UnknownZone, "Movable"),
        (lambda: m.deferred_grow_zone(0, "DMA32"), UnknownZone, "DMA32"),  # DMA32 is empty here
        (lambda: m.zone(0, "Highmem"), UnknownZone, "Highmem"),
        (lambda: m.zone(1, "DMA"), UnknownNode, "1"),
        (lambda: m.free_list(0, "Movable", 0), UnknownZone, "Movable"),
        (lambda: m.free_list(0, "Normal", 7), OrderError, "7"),
        (lambda: m.first_deferred_pfn(2), UnknownNode, "2"),
        (lambda: m.boot(), PhaseError, "boot"),
    ]
    for call, exc, text in cases:
        with pytest.raises(exc) as ei:
            call()
        assert text in str(ei.value), (exc, str(ei.value))
        assert snapshot(m) == before
    m.free_pages(pfn, 1)
    m.check()


def test_oom_lists_nothing_and_keeps_grows():
    # Exhaust everything: the failing allocation's grows (if any) are real and stay; the OOM itself changes
    # nothing else.
    m = OracleMachine(tiny_topology(), "v4.17")
    m.boot()
    n = 0
    with pytest.raises(OutOfMemory):
        while True:
            m.alloc_pages(0)
            n += 1
    assert n == 64                                       # DMA 16 + Normal 48 after two grows
    assert [e["pages"] for e in grow_events(m)][:2] == [16, 16]
    before = snapshot(m)
    with pytest.raises(OutOfMemory):
        m.alloc_pages(0)
    after = snapshot(m)
    # one more failed grow event (first >= node end), nothing else
    assert after["events"][:-1] == before["events"]
    assert after["events"][-1]["result"] is False
    after["events"] = before["events"]
    assert after == before
    m.check()


# ------------------------------------------------------------------------------------------------------------
# the strategies themselves
# ------------------------------------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(small_geometries())
def test_small_geometries_are_small_and_valid(g):
    assert g.page_size == 4096 and 16 <= g.pages_per_section <= 128
    assert g.pageblock_order <= g.max_order and (1 << g.max_order) <= g.pages_per_section


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topologies())
def test_topologies_are_small_valid_and_aligned_per_node(topo):
    g = topo.geometry
    assert max(r.end for r in topo.memory) <= 24 * g.section_size
    assert 1 <= len(topo.nodes) <= 3
    block = g.page_size << g.max_order
    assert all(v % block == 0 for v in topo.zone_limits.values())
    assert not has_mixed_node_blocks(topo)
    assert OracleMachine(topo).page_arrays()["pfn"].size <= 24 * g.pages_per_section


def test_topologies_cover_the_interesting_shapes():
    seen = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(topologies())
    def collect(topo):
        m = OracleMachine(topo)
        g = topo.geometry
        nodes = [r.node for r in topo.memory]
        seen.add(("nodes", len(m.nodes)))
        if min(m.nodes) > 0:
            seen.add("ids not from 0")
        if len(m.nodes) > 1 and nodes[0] > nodes[-1]:
            seen.add("descending")
        if any(nodes[i] == nodes[i + 2] != nodes[i + 1] for i in range(len(nodes) - 2)):
            seen.add("interleaved")
        if any(r.start % g.page_size or r.end % g.page_size for r in topo.memory):
            seen.add("unaligned edge")
        if len(m._sections) < (max(r.end for r in topo.memory) - 1) // g.section_size + 1:
            seen.add("absent section")
        if any(k == 0 for k in m._kind):
            seen.add("hole")
        if m._reserved_pieces:
            seen.add("reserved memory")
        if any(not any(r.start < rr.end and rr.start < r.end for r in topo.memory) for rr in topo.reserved):
            seen.add("reserved without memory")
        zones = {z for (_, z) in m._zones}
        if len(zones) >= 3:
            seen.add("3+ zones")
        if 3 in zones:
            seen.add("movable")

    collect()
    want = {("nodes", 1), ("nodes", 2), ("nodes", 3), "ids not from 0", "descending", "interleaved",
            "unaligned edge", "absent section", "hole", "reserved memory", "reserved without memory", "3+ zones",
            "movable"}
    assert want <= seen, want - seen


# ------------------------------------------------------------------------------------------------------------
# smaller API points
# ------------------------------------------------------------------------------------------------------------

def test_interleaved_node_has_a_spanned_but_unpopulated_zone():
    # node 0 at pfns [0, 16) and [48, 64), node 1 at [16, 48); DMA [0, 16), DMA32 [16, 48), Normal [48, ...).
    # Node 0 spans [0, 64): its DMA32 zone spans [16, 48) but has no memory of node 0 (present 0). It still
    # is a zone of node 0 (zone() works); it is not populated, so it is in no zonelist; D(0) = Normal.
    topo = Topology(memory=[(0, 16 * PAGE, 0), (16 * PAGE, 48 * PAGE, 1), (48 * PAGE, 64 * PAGE, 0)],
                    zone_limits={"DMA": 16 * PAGE, "DMA32": 48 * PAGE}, geometry=TINY)
    m = OracleMachine(topo, "v4.17")
    m.boot()
    z = m.zone(0, "DMA32")
    assert (z.start_pfn, z.end_pfn, z.spanned, z.present, z.managed, z.free_pages) == (16, 48, 32, 0, 0, 0)
    assert m.zone(1, "DMA32").present == 32
    with pytest.raises(UnknownZone):
        m.zone(1, "Normal")                              # node 1 ends at 48 where Normal starts
    assert m.deferred_grow_zone(0, "DMA32") is False and grow_events(m) == []
    # node 0: LIMIT = min(16, spanned 64) = 16 but Normal holds only 16 memory pfns -> nothing deferred;
    # node 1: D(1) = DMA32 [16, 48), LIMIT 16, pfn 32 has k = 17 -> fdp(1) = 32
    assert (m.first_deferred_pfn(0), m.first_deferred_pfn(1)) == (None, 32)
    # zone="DMA32" on node 0: the zonelist is node 0's DMA, then node 1's DMA32 (node 0's DMA32 is skipped);
    # DMA's order-2 chunks 0, 4, 8, 12 went to the head as boot released them (head rule): its head is 12
    assert m.alloc_pages(0, node=0, zone="DMA32") == 12
    m.check()


def test_numpy_integers_are_accepted():
    import numpy as np  # a dependency of pgdefer

    m = OracleMachine(tiny_topology(), "v4.17")
    m.boot()
    pfn = m.alloc_pages(np.int64(1), node=np.int32(0))
    arrays = m.page_arrays()
    head = arrays["pfn"][arrays["order"] == 1][0]
    assert isinstance(head, np.uint64) and int(head) == pfn
    m.free_pages(head, np.uint8(1))
    with pytest.raises(OrderError):
        m.alloc_pages(True)
    with pytest.raises(UnknownNode):
        m.first_deferred_pfn(False)
    m.check()


def test_page_arrays_and_migratetypes_shape():
    m = OracleMachine(tiny_topology(), "v4.17")
    before = m.page_arrays()
    assert {k: str(v.dtype) for k, v in before.items()} == {
        "pfn": "uint64", "state": "uint8", "zone": "uint8", "node": "uint16", "init_count": "uint8",
        "order": "uint8", "init_by": "uint8"}
    assert (before["state"] == UNINIT).all() and (before["order"] == NO_ORDER).all()
    assert m.pageblock_migratetypes() == {}
    m.boot()
    a = m.page_arrays()
    # pfns [32, 64) of Normal are deferred: UNINIT with zone/node 0, the rest initialised once
    assert (a["state"][32:] == UNINIT).all() and (a["zone"][32:] == 0).all() and (a["init_count"][32:] == 0).all()
    assert (a["init_count"][:32] == 1).all() and (a["zone"][:16] == 0).all() and (a["zone"][16:32] == 2).all()
    assert set(a["state"][:32].tolist()) == {FREE}
    assert a["order"][:32].tolist() == ([2, 255, 255, 255] * 8)
    assert m.pageblock_migratetypes() == {pb: "Movable" for pb in range(16)}   # pageblocks of [0, 32)
    # boot linked Normal's chunks 16, 20, 24, 28 at the head in turn (head rule): the first page handed out
    # is 28's
    m.alloc_pages(0)
    assert m.page_arrays()["state"][28] == ALLOCATED and m.page_arrays()["state"][16] == FREE


def test_grow_step_is_align_of_s_plus_a_section():
    # The chunk end in pass 1 is t = ALIGN(s + PAGES_PER_SECTION, PAGES_PER_SECTION), as in the seed and the
    # spec §3.2 formula (for an unaligned s this is the *second* boundary above s, not the next one).
    # TINY (16 pages per section); memory [0, 128) node 0, Normal [16, 128), reserved [47, 50) -> free
    # ranges [0, 47) and [50, 128); fdp = 32 (k = 17 at pfn 32).
    # Grow: [0, 47): s = 32, t = ALIGN(48, 16) = 48 -> new_first = min(48, 47) = 47, got 15 (< need 16);
    #       [50, 128): s = 50, t = ALIGN(66, 16) = 80 -> new_first = 80, got 15 + 30 = 45 -> stop.
    # (Reading "the next boundary strictly after s" would give t = 64, got 29, fdp 64.)
    topo = tiny_topology(memory=[(0, 128 * PAGE, 0)], reserved=[(47 * PAGE, 50 * PAGE)])
    for policy in ("v4.17", "posting-v2"):
        m = OracleMachine(topo, policy)
        m.boot()
        assert m.first_deferred_pfn(0) == 32
        assert m.deferred_grow_zone(0, "Normal") is True
        assert (grow_events(m)[0]["pages"], m.first_deferred_pfn(0)) == (45, 80)
        m.check()


def test_rmqueue_hook_grows_again_when_the_first_grow_is_fragmented():
    # memory [0, 96), Normal [16, 96), fdp 32; one reserved pfn in each 4-page block of [32, 64):
    # 33, 37, ..., 61. After Normal's early blocks 16..28 are taken, an order-2 request fails the watermark:
    # grow 1 (watermark) walks [32,33) [34,37) [38,41) [42,45) [46,49) [50,53): got 1+3+3+3+3+3 = 16 -> stop,
    # fdp 53, result True, but no order-2 block exists -> rmqueue fails -> grow 2 (rmqueue) walks [54,57)
    # [58,61) and [62,96) up to t = ALIGN(62 + 16, 16) = 80: got 3+3+18 = 24, fdp 80. [64, 80) gives the
    # order-2 blocks 64, 68, 72, 76 (order-1 pageblocks merged), each linked at the head (head rule, order 2 =
    # max_order) -> [76, 72, 68, 64] and the allocation returns 76. (Boot's early blocks were linked at the
    # head too, [28, 24, 20, 16], so the first four requests take 28, 24, 20, 16.)
    reserved = [(p * PAGE, (p + 1) * PAGE) for p in range(33, 64, 4)]
    m = OracleMachine(tiny_topology(memory=[(0, 96 * PAGE, 0)], reserved=reserved), "v4.17")
    m.boot()
    assert [m.alloc_pages(2, zone="Normal") for _ in range(4)] == [28, 24, 20, 16]
    assert m.alloc_pages(2) == 76
    assert [(e["hook"], e["pages"], e["first_deferred_pfn"], e["result"]) for e in grow_events(m)] == [
        ("watermark", 16, 53, True), ("rmqueue", 24, 80, True)]
    assert m.free_list(0, "Normal", 2) == [72, 68, 64]
    m.check()

"""Hand-derived tests of the oracle's kernel generations (docs/model.md §11).

Every expected number is worked out in the comments from the spec's loops (§3.2, §5.7, §5.9, §5.12) and the
contract, not taken from running the code. x86_64 numbers: 4 KiB pages, PAGES_PER_SECTION (PPS) = 32768 =
0x8000, MAX_ORDER_NR_PAGES = 1024 = 0x400, pageblock 512.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgdefer import Geometry, InvariantViolation, Topology
from pgdefer.oracle import ALLOCATED, FREE, GENERATIONS, POLICIES, RESERVED, UNINIT, OracleMachine, padata_chunks
from pgdefer.testing import node_cpus, operations, policies, replay, topologies

M, G = 1 << 20, 1 << 30
PAGE = 4096
BY_PASS = 5                     # init_by code of the per-node pass (docs/model.md §3)

MAXORDER_POLICIES = [p for p, g in GENERATIONS.items() if g.grow == "maxorder"]
PADATA_POLICIES = [p for p, g in GENERATIONS.items() if g.pass_loop.startswith("padata")]


def grows(m):
    return [(e["hook"], e["pages"], e["first_deferred_pfn"], e["result"]) for e in m.events if e["kind"] == "grow"]


def chunks(m, node=0):
    return [(e["start"], e["end"], e["worker"]) for e in m.events if e["kind"] == "padata_chunk" and e["node"] == node]


@given(name=policies(core_only=True))
def test_core_policy_strategy_draws_names_both_machines_accept(name):
    import pgdefer
    assert name in pgdefer.POLICIES and name in POLICIES


def test_the_table_names_every_agreed_policy():
    assert POLICIES == ("eager", "v4.2", "v4.6", "v4.13", "posting-v2", "v4.17", "v5.2", "v5.7", "v5.8", "v5.10",
                        "v6.4", "v6.11", "rework-2025")
    assert MAXORDER_POLICIES == ["v5.2", "v5.7", "v5.8", "v5.10", "v6.4", "v6.11"]


# ------------------------------------------------------------------------------------------------------------
# issue 8 acceptance 1: one grow across a reserved range that straddles a section boundary
# ------------------------------------------------------------------------------------------------------------

def acceptance_topology():
    # memory [1 MiB, 3 GiB) -> pfns [0x100, 0xc0000); [4 GiB, 12 GiB) -> pfns [0x100000, 0x300000); node 0.
    # reserved [0x10fff6, 0x11000a): 10 pages below the section boundary 0x110000 and 10 above.
    # Normal = [0x100000, 0x300000) = D(0), starting on a section boundary (0x100000 = 32 * 0x8000).
    return Topology(memory=[(1 * M, 3 * G, 0), (4 * G, 12 * G, 0)],
                    reserved=[(0x10fff6 * PAGE, 0x11000a * PAGE)])


# Early init: LIMIT = PPS; no holes in Normal's span, so with or without hole counting k = p - 0x100000 + 1 and
# the cut is the first aligned p with k > 32768: p = 0x108000. memblock_free_all releases Normal's
# [0x100000, 0x108000) as 32 order-10 chunks; 32 order-10 allocations empty Normal, then the order-0
# allocation fails the watermark in Normal and grows it once (need = round_up(1, 32768) = 32768).
#
# v4.17 (spec §3.2, first = 0x108000): free range [0x100000, 0x10fff6): t = ALIGN(0x108000 + 0x8000) =
#   0x110000, new_first = min(t, 0x10fff6) = 0x10fff6, got = 0x7ff6 = 32758 < need; next free range
#   [0x11000a, 0x300000): t = ALIGN(0x11000a + 0x8000, 0x8000) = 0x120000, got += 0x120000 - 0x11000a = 0xfff6
#   = 65526 -> 98284 >= need: fdp = 0x120000.
# 5.2+ (§5.7): MAX_ORDER steps from 0x108000 stay in section 0x108000 until the step from 0x10fc00 initialises
#   [0x10fc00, 0x10fff6) and lands on the next free range's start 0x11000a (another section) with got =
#   32758 < need: go on; steps [0x11000a, 0x110400), ... stay in section 0x110000 until the step from 0x117c00
#   lands on 0x118000 (crossed) with got = 32758 + (0x118000 - 0x11000a) = 32758 + 32758 = 65516 >= need:
#   fdp = 0x118000.
# 2025 (§5.12): chunk [0x108000, 0x110000) gives 0x10fff6 - 0x108000 = 32758 < need; chunk [0x110000,
#   0x118000) gives 0x118000 - 0x11000a = 32758 -> 65516 >= need; fdp = spfn = 0x118000.
ACCEPTANCE = [("v4.17", 98284, 0x120000)] + [(p, 65516, 0x118000) for p in MAXORDER_POLICIES] + [
    ("rework-2025", 65516, 0x118000)]


@pytest.mark.parametrize("policy, pages, fdp", ACCEPTANCE)
def test_acceptance_one_grow_across_a_straddling_reservation(policy, pages, fdp):
    m = OracleMachine(acceptance_topology(), policy)
    m.boot()
    assert m.first_deferred_pfn(0) == 0x108000
    assert m.zone(0, "Normal").free_pages == 32768
    for _ in range(32):
        assert 0x100000 <= m.alloc_pages(10) < 0x108000
    assert m.zone(0, "Normal").free_pages == 0 and grows(m) == []
    pfn = m.alloc_pages(0)
    assert grows(m) == [("watermark", pages, fdp, True)]
    assert m.first_deferred_pfn(0) == fdp
    assert 0x108000 <= pfn < fdp and not 0x10fff6 <= pfn < 0x11000a
    # the grow released every free pfn of [0x108000, fdp) into Normal: pages - 1 are left free
    assert m.zone(0, "Normal").free_pages == pages - 1
    # I2 around the new boundary, from the page array (check() walks 2.9 M pfns in Python: too slow here)
    a = m.page_arrays()
    pfn, state = a["pfn"], a["state"]
    free = ((pfn >= 0x100000) & (pfn < 0x300000)) & ~((pfn >= 0x10fff6) & (pfn < 0x11000a))
    grown = free & (pfn >= 0x108000) & (pfn < fdp)
    assert grown.sum() == pages and (a["init_by"][grown] == 4).all()
    assert ((state[grown] == FREE) | (state[grown] == ALLOCATED)).all()
    assert (state[free & (pfn >= fdp)] == UNINIT).all()
    assert (state[(pfn >= 0x10fff6) & (pfn < 0x11000a)] == RESERVED).all()
    m.page_alloc_init_late()
    # the pass initialises the rest of Normal's free pfns: 0x200000 Normal pfns - 20 reserved - 32768 early
    # - the grow's pages
    assert [e["pages"] for e in m.events if e["kind"] == "deferred_init"] == [0x200000 - 20 - 32768 - pages]
    assert (m.page_arrays()["init_count"] == 1).all()


# ------------------------------------------------------------------------------------------------------------
# sizing: v4.2 / v4.6 / v4.13 (and B4) on a 1 TiB node
# ------------------------------------------------------------------------------------------------------------

# 2 MiB pages keep a 1 TiB node small (524288 pfns): PPS = 128M / 2M = 64, MAX_ORDER block 8 pages (16 MiB, so
# the default DMA limit 16 MiB is a block multiple), pageblock 4 pages.
BIG = Geometry(page_size="2M", section_size="128M", pageblock_order=2, max_order=3)


def big_node(reserved=()):
    # memory [0, 1 TiB) node 0 -> pfns [0, 524288); DMA [0, 8), DMA32 [8, 2048), Normal [2048, 524288) = D(0)
    return Topology(memory=[(0, 1 << 40, 0)], reserved=list(reserved), geometry=BIG)


# base2g = 2 GiB / 2 MiB = 1024 pages; spanned = 524288, spanned >> 8 = 2048. Normal starts at 2048 (aligned:
# 2048 = 32 * 64), no holes, so the counted pfn p has k = p - 2048 + 1 and the cut is the first multiple of 64
# that is >= 2048 + LIMIT.
#   v4.2:  LIMIT 1024 -> p = 3072 (= 48 * 64)
#   v4.6:  LIMIT max(1024, 2048) = 2048 -> p = 4096
#   v4.17: LIMIT min(64, 524288) = 64 -> p = 2112
@pytest.mark.parametrize("policy, fdp", [("v4.2", 3072), ("v4.6", 4096), ("v4.13", 4096), ("v4.17", 2112)])
def test_sizing_on_a_large_node(policy, fdp):
    m = OracleMachine(big_node(), policy)
    m.boot()
    assert m.first_deferred_pfn(0) == fdp
    # early init covers every memory pfn below the cut (DMA, DMA32 and Normal's prefix)
    assert m.events[0] == {"kind": "early_init", "node": 0, "pages": fdp, "first_deferred_pfn": fdp}
    assert m.deferred_pages_enabled is (GENERATIONS[policy].grow != "none")


# v4.13 with reservations: [0, 1 MiB) (reserves pfn 0) and [4 GiB, 5 GiB) (pfns [2048, 2560)).
# m = 2048; the window is [0, (0 + 2048) * 2 MiB] = [0, 4 GiB]. Both regions count, whole: [0, 1M) lies inside,
# [4G, 5G) only touches the window's end (base 4G <= end 4G). R = 1 MiB + 1 GiB = 1074790400 bytes,
# R // 2 MiB = 512 (512.5 floored) -> LIMIT = min(2048 + 512, 524288) = 2560 -> cut at 2048 + 2560 = 4608 (72*64).
# B4 (bytes_as_pages): the window is [0, 0 + 2048] *bytes*: only [0, 1M) touches it; its 1048576 bytes are
# added as pages: LIMIT = min(2048 + 1048576, 524288) = 524288 = spanned. k never exceeds the 522240 counted
# Normal pfns, so nothing is deferred at all.
# Without the low reservation the B4 window misses [4G, 5G): LIMIT = 2048 -> 4096, while v4.13 gets 4608.
@pytest.mark.parametrize("reserved, faults, fdp", [
    ([(0, 1 * M), (4 * G, 5 * G)], (), 4608),
    ([(0, 1 * M), (4 * G, 5 * G)], ("bytes_as_pages",), None),
    ([(4 * G, 5 * G)], (), 4608),
    ([(4 * G, 5 * G)], ("bytes_as_pages",), 4096),
])
def test_v413_adds_reserved_regions_and_b4_mixes_bytes_and_pages(reserved, faults, fdp):
    # ([(4G, 5G)] alone: R = 1 GiB = 512 pages exactly -> LIMIT 2560 -> 4608 as with the low one.)
    m = OracleMachine(big_node(reserved), "v4.13", faults=faults)
    m.boot()
    assert m.first_deferred_pfn(0) == fdp
    m.check()


def test_faults_belong_to_their_policy():
    with pytest.raises(ValueError, match="v4.13"):
        OracleMachine(big_node(), "v4.17", faults=("bytes_as_pages",))
    with pytest.raises(ValueError, match="v5.2"):
        OracleMachine(big_node(), "v5.7", faults=("retry_forever",))
    with pytest.raises(ValueError, match="unknown fault"):
        OracleMachine(big_node(), "v5.2", faults=("no_such_bug",))


# ------------------------------------------------------------------------------------------------------------
# hole counting: up to v5.7 the early loop counts holes of present sections, from v5.8 only memory
# ------------------------------------------------------------------------------------------------------------

def test_holes_counted_up_to_v57_not_from_v58():
    # Review D1: node 0 [1M, 3G), [4G, 4G + 64M), [4G + 128M, 8G). Normal span [0x100000, 0x200000); memory
    # [0x100000, 0x104000) (0x4000 pages), hole [0x104000, 0x108000) in the present section 32, memory
    # [0x108000, 0x200000).
    # v5.7 (holes counted): [0x100000, 0x108000) counts 32768 -> p = 0x108000 has k = 32769: fdp 0x108000.
    # v5.8 (memory only): 16384 counted below 0x104000; p >= 0x108000 + (32768 - 16384) = 0x10c000, rounded up
    # to a section: fdp 0x110000.
    # early_init pages = memory pfns below the cut: DMA+DMA32 [0x100, 0xc0000) = 0xbff00 = 786176, plus
    # 16384 (v5.7), plus 16384 + 32768 (v5.8).
    topo = Topology(memory=[(1 * M, 3 * G, 0), (4 * G, 4 * G + 64 * M, 0), (4 * G + 128 * M, 8 * G, 0)])
    for policy, fdp, pages in (("v5.7", 0x108000, 786176 + 16384), ("v5.8", 0x110000, 786176 + 49152)):
        m = OracleMachine(topo, policy)
        m.boot()
        assert m.first_deferred_pfn(0) == fdp, policy
        assert m.events[0]["pages"] == pages, policy


# ------------------------------------------------------------------------------------------------------------
# a tiny machine for the protocol cases
# ------------------------------------------------------------------------------------------------------------

# 16 pages per section, MAX_ORDER block 4 pages, pageblock 2 pages.
TINY = Geometry(page_size="4K", section_size="64K", pageblock_order=1, max_order=2)


def tiny(pages=64, reserved=(), zone_limits=None):
    # memory pfns [0, pages) node 0; DMA = [0, 16), Normal = [16, pages) (DMA32 empty).
    return Topology(memory=[(0, pages * PAGE, 0)], reserved=[(a * PAGE, b * PAGE) for a, b in reserved],
                    zone_limits=zone_limits or {"DMA": 16 * PAGE}, geometry=TINY)


# fdp after early init on tiny(): LIMIT = 16, Normal starts at 16 (aligned), cut at the first aligned p with
# p - 16 + 1 > 16: p = 32.


def test_fdp_shape_maxorder_range_start_vs_2025_section():
    # tiny(96) with pfns [48, 50) reserved: D's free ranges [16, 48), [50, 96); fdp 32; one order-0 grow
    # (explicit), need = round_up(1, 16) = 16.
    # 5.2+: steps 32->36->40->44 (same section 2), the step from 44 initialises [44, 48) (got 16) and lands on
    #   next_free(48) = 50, section 3: crossed with got >= need: fdp = 50, a free range's start.
    # 2025: chunk [32, 48) gives 16 >= need: fdp = 48, a section boundary.
    # v4.17: [32, 48): t = ALIGN(32 + 16, 16) = 48 = the range end: got 16, fdp 48.
    for policy, fdp in (("v5.2", 50), ("v6.4", 50), ("rework-2025", 48), ("v4.17", 48)):
        m = OracleMachine(tiny(96, reserved=[(48, 50)]), policy)
        m.boot()
        assert m.first_deferred_pfn(0) == 32
        assert m.deferred_grow_zone(0, "Normal", 0) is True
        assert grows(m) == [("explicit", 16, fdp, True)], policy
        m.check()                                     # I3 accepts each generation's own shape


def test_i3_checker_follows_each_generation():
    # An fdp that is a free range's start is right for 5.2+ and wrong for 4.17 and 2025 (and vice versa for a
    # range end): the checker must say so.
    # tiny(96) with [47, 50) reserved: D's free ranges [16, 47), [50, 96).
    for policy, bad_fdp, ok in (("v5.2", 50, True), ("v4.17", 50, False), ("rework-2025", 50, False),
                                ("v4.17", 47, True), ("v5.2", 47, False), ("rework-2025", 47, False)):
        m = OracleMachine(tiny(96, reserved=[(47, 50)]), policy)
        m.boot()
        m._nodes[0].fdp = bad_fdp                    # white-box: only the I3 shape is under test
        m._nodes[0].fdp_history[-1] = bad_fdp
        problems = []
        try:
            m.check()
        except InvariantViolation as e:
            problems = [p for p in e.problems if p.startswith("I3")]
        assert (problems == []) is ok, (policy, problems)


# ------------------------------------------------------------------------------------------------------------
# 5.2: retry only once, and the shipped infinite loop (B12)
# ------------------------------------------------------------------------------------------------------------

def exhausted_tail():
    # tiny(64) with [32, 64) reserved: fdp = 32 (the count includes reserved memory pfns), Normal's only free
    # pfns [16, 32) are released at boot as 4 order-2 blocks; nothing free at or above fdp.
    return tiny(64, reserved=[(32, 64)])


@pytest.mark.parametrize("faults, second", [((), False), (("retry_forever",), True)])
def test_v52_retry_once_and_b12(faults, second):
    m = OracleMachine(exhausted_tail(), "v5.2", faults=faults)
    m.boot()
    for _ in range(4):
        assert 16 <= m.alloc_pages(2) < 32
    # Normal is empty: hook 1 grows: next_free(32) finds nothing -> fdp := None, returns snap != ULONG_MAX =
    # True; rmqueue still fails; hook 2 grows again with snap = ULONG_MAX -> False (fixed) or True (B12: the
    # model reports it and moves on instead of looping); either way the page comes from DMA.
    pfn = m.alloc_pages(0)
    assert pfn < 16
    assert grows(m) == [("watermark", 0, None, True), ("rmqueue", 0, None, second)]
    assert any(v.startswith("B12") for v in m.violations) is second
    m.check()


# ------------------------------------------------------------------------------------------------------------
# 5.7: the claim; no key re-check
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy, claims", [("v5.2", False), ("v5.7", True), ("v5.8", True), ("rework-2025", True)])
def test_claimed_node_cannot_grow_and_the_allocation_falls_back(policy, claims):
    m = OracleMachine(tiny(64), policy)
    m.boot()
    for _ in range(4):
        m.alloc_pages(2)                              # Normal's early [16, 32) is gone; fdp 32
    seen = []

    def at_claim(point, node, cpu):
        # the pass set fdp := None and dropped the lock: grow (hook 1) finds snap == fdp == ULONG_MAX and
        # nothing from next_free -> False; the allocation falls back to DMA
        assert m.first_deferred_pfn(0) is None
        seen.append(m.alloc_pages(0))
        m.check()                                     # I2 holds against the claimed pfn while the pass runs

    m.at("pass:claimed", at_claim, node=0)
    m.page_alloc_init_late()
    if claims:
        assert len(seen) == 1 and seen[0] < 16
        assert grows(m) == [("watermark", 0, None, False)]
    else:
        assert seen == [] and grows(m) == []          # no claim point: the pass holds the node lock
    # the pass still initialised all of [32, 64)
    assert [e["pages"] for e in m.events if e["kind"] == "deferred_init"] == [32]
    m.check()


@pytest.mark.parametrize("policy, result", [("v4.17", True), ("v5.2", True), ("v5.7", False), ("v6.11", False)])
def test_grow_after_late_init_key_recheck_only_up_to_v56(policy, result):
    # v4.17, v5.2: the key is off -> True ("deferred init finished while we waited"); 5.7+: no re-check:
    # next_free(ULONG_MAX) finds nothing -> snap != ULONG_MAX is False.
    m = OracleMachine(tiny(64), policy)
    m.boot()
    m.page_alloc_init_late()
    assert m.deferred_grow_zone(0, "Normal", 0) is result
    assert grows(m) == [("explicit", 0, None, result)]


# ------------------------------------------------------------------------------------------------------------
# 5.8: padata jobs and chunks
# ------------------------------------------------------------------------------------------------------------

def test_v58_padata_one_job_per_free_range():
    # tiny(1024) with pfns [500, 505) reserved, node 0 has 4 CPUs (max_threads 4). fdp 32; D's free ranges
    # [16, 500), [505, 1024).
    # Job 1: start 32, epfn 500, first = round_up(500, 16) = 512, size 480: nworks = min(480 // 16 = 30, 4) = 4;
    #   chunk = round_up(max(480 // 16 = 30, 16), 16) = 32: chunks [32, 64), [64, 96), ..., [480, 512) = 15,
    #   workers 0,1,2,3,0,...; the last one also covers [505, 512) of the next range.
    # Job 2: next_free(512) = 512, epfn 1024, size 512: nworks 4, chunk = round_up(max(512 // 16, 16), 16) = 32:
    #   [512, 544), ..., [992, 1024) = 16 chunks, workers restart at 0.
    m = OracleMachine(tiny(1024, reserved=[(500, 505)]), "v5.8", node_cpus={0: 4})
    m.boot()
    assert m.first_deferred_pfn(0) == 32
    m.page_alloc_init_late()
    job1 = [(s, s + 32, k % 4) for k, s in enumerate(range(32, 512, 32))]
    job2 = [(s, s + 32, k % 4) for k, s in enumerate(range(512, 1024, 32))]
    assert chunks(m) == job1 + job2
    # pages: free pfns of [32, 1024) = 992 - 5
    assert [e["pages"] for e in m.events if e["kind"] == "deferred_init"] == [987]
    kinds = [e["kind"] for e in m.events]
    assert kinds.index("deferred_init") > max(i for i, k in enumerate(kinds) if k == "padata_chunk")
    m.check()


def test_padata_inline_without_cpus_and_one_job_per_zone_in_2025():
    # No CPUs on the node: max_threads 1 -> each job runs inline as one chunk on worker 0.
    m = OracleMachine(tiny(1024, reserved=[(500, 505)]), "v5.10")
    m.boot()
    m.page_alloc_init_late()
    assert chunks(m) == [(32, 512, 0), (512, 1024, 0)]
    # 2025: one job [32, round_up(1024, 16) = 1024), size 992, 4 CPUs: nworks 4, chunk = round_up(max(992 // 16
    # = 62, 16), 16) = 64: [32, 64) then [64, 128), ..., [960, 1024): 16 chunks, workers k mod 4.
    m = OracleMachine(tiny(1024, reserved=[(500, 505)]), "rework-2025", node_cpus={0: 4})
    m.boot()
    m.page_alloc_init_late()
    assert chunks(m) == [(32, 64, 0)] + [(s, s + 64, (k + 1) % 4) for k, s in enumerate(range(64, 1024, 64))]
    assert [e["pages"] for e in m.events if e["kind"] == "deferred_init"] == [987]
    m.check()


@pytest.mark.parametrize("policy", ["v5.8", "v5.10", "v6.4", "rework-2025"])
def test_padata_end_state_equals_the_single_walk(policy):
    # Chunks run in ascending order, so the page array and the free lists equal those of the same policy
    # without CPUs (one inline chunk per job: one walk); only the padata_chunk events differ.
    topo = tiny(1024, reserved=[(500, 505), (700, 701)])
    a = OracleMachine(topo, policy, node_cpus={0: 3})
    b = OracleMachine(topo, policy)
    for m in (a, b):
        m.boot()
        m.page_alloc_init_late()
    assert a.free_list(0, "Normal", 2) == b.free_list(0, "Normal", 2)
    assert a.free_list(0, "Normal", 0) == b.free_list(0, "Normal", 0)
    pa, pb = a.page_arrays(), b.page_arrays()
    assert all((pa[k] == pb[k]).all() for k in pa)
    assert len(chunks(a)) > len(chunks(b))


# ------------------------------------------------------------------------------------------------------------
# free runs (6.4) and free-list placement (5.10)
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy, releases", [
    # [32, 36) is one aligned MAX_ORDER block of 2 pageblocks: 4.8-6.3 free it as two order-1 pageblocks,
    # 6.4+ as one order-2 block. The run [36, 39) holds the full pageblock [36, 38): 4.8-6.3 free it at order 1
    # and 38 at order 0; 6.4+ free the partial MAX_ORDER run page by page. [39, 40) is one page in both.
    ("v5.10", [(32, 1), (34, 1), (36, 1), (38, 0), (39, 0)]),
    ("v6.4", [(32, 2), (36, 0), (37, 0), (38, 0), (39, 0)]),
])
def test_free_runs_pageblock_before_64_max_order_from_64(policy, releases, monkeypatch):
    m = OracleMachine(tiny(64), policy)
    m.boot()
    seen = []
    real = m._release
    monkeypatch.setattr(m, "_release", lambda nid, z, pfn, order: (seen.append((pfn, order)), real(nid, z, pfn, order)))
    m._init_range(32, 40, 0, BY_PASS)               # white-box: the free rule alone
    m._deferred_free_pages(0, 2, 32, 36)
    m._deferred_free_pages(0, 2, 36, 39)
    m._deferred_free_pages(0, 2, 39, 40)
    assert seen == releases
    assert m.violations == []


@pytest.fixture
def head_rule():
    """v5.8, a generation with the head rule (docs/model.md §11.7): the last one before 5.10's FPI_TO_TAIL."""
    assert GENERATIONS["v5.8"].boot_to_tail is False
    return "v5.8"


def test_head_rule_before_510_tail_from_510(head_rule):
    # tiny(64), fdp 32: memblock_free_all releases Normal's [16, 32) as order-2 chunks 16, 20, 24, 28 (no merge
    # at max_order). Head rule: k = 2 >= max_order - 1 = 1 -> each at the head: list [28, 24, 20, 16]; the tail
    # (5.10+): [16, 20, 24, 28]. The first order-0 allocation takes the head of the order-2 list.
    for policy, order2, first in ((head_rule, [28, 24, 20, 16], 28), ("v5.10", [16, 20, 24, 28], 16)):
        m = OracleMachine(tiny(64), policy)
        m.boot()
        assert m.free_list(0, "Normal", 2) == order2
        assert m.alloc_pages(0) == first


def test_head_rule_puts_a_block_at_the_tail_when_its_parent_buddy_is_free(head_rule):
    # DMA [0, 16) with pfns 0, 6, 8 reserved: free ranges [1, 6), [7, 8), [9, 16). memblock_free_all chunks:
    # 1 (o0), 2 (o1), 4 (o1: 4 + 4 > 6), 7 (o0), 9 (o0), 10 (o1), 12 (o2). Order-0 releases under the head
    # rule (max_order 2: only k = 0 < 1 is eligible for the tail):
    #   1: buddy 0 reserved, k = 0; q = (1 & ~1) ^ 2 = 2 not yet free -> head: [1]
    #   7: buddy 6 reserved; q = 6 ^ 2 = 4, a FREE order-1 head (released before) -> tail: [1, 7]
    #   9: buddy 8 reserved; q = 8 ^ 2 = 10 not yet free -> head: [9, 1, 7]
    # Order 1 (k = 1, never eligible): heads 2, 4, 10 -> [10, 4, 2]. 5.10+ (tail): [1, 7, 9] and [2, 4, 10].
    topo = tiny(64, reserved=[(0, 1), (6, 7), (8, 9)])
    for policy, order0, order1 in ((head_rule, [9, 1, 7], [10, 4, 2]), ("v5.10", [1, 7, 9], [2, 4, 10])):
        m = OracleMachine(topo, policy)
        m.boot()
        assert m.free_list(0, "DMA", 0) == order0, policy
        assert m.free_list(0, "DMA", 1) == order1, policy


# ------------------------------------------------------------------------------------------------------------
# where the Memory: line is printed
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy, late", [("v6.4", False), ("v6.11", True), ("rework-2025", True),
                                          ("v4.17", False)])
def test_memory_line_print_point(policy, late):
    # tiny(64): after boot DMA has 16 free pages and Normal its early [16, 32): available 32 of physpages 64;
    # after the pass all 64 are free.
    m = OracleMachine(tiny(64), policy)
    m.boot()
    early = {"at": "memblock_free_all", "available": 32, "physpages": 64}
    assert m.memory_line == (None if late else early)
    m.page_alloc_init_late()
    assert m.memory_line == ({"at": "page_alloc_init_late", "available": 64, "physpages": 64} if late else early)


# ------------------------------------------------------------------------------------------------------------
# properties of the padata chunking (spec §5.9, C5)
# ------------------------------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 1 << 20), size=st.integers(0, 1 << 16), align_log=st.integers(0, 8),
       min_chunk=st.integers(0, 700), max_threads=st.integers(1, 64))
def test_padata_chunks_cover_the_job_once_and_end_on_chunk_multiples(start, size, align_log, min_chunk, max_threads):
    align = 1 << align_log
    out = padata_chunks(start, size, min_chunk, align, max_threads)
    if size == 0:
        assert out == []
        return
    # contiguous, ascending, covering [start, start + size) exactly once
    assert out[0][0] == start and out[-1][1] == start + size
    assert all(a[1] == b[0] for a, b in zip(out, out[1:])) and all(s < e for s, e, _ in out)
    nworks = min(max(size // max(min_chunk, align), 1), max_threads)
    if nworks == 1:
        assert out == [(start, start + size, 0)]
        return
    chunk = -(-max(size // (nworks * 4), min_chunk, 1) // align) * align
    # every end but the job's own is a multiple of the chunk size; chunks inside the job are exactly chunk long
    assert all(e % chunk == 0 for _, e, _ in out[:-1])
    assert all(e - s == chunk for s, e, _ in out[1:-1])
    assert [w for _, _, w in out] == [k % nworks for k in range(len(out))]


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 1 << 20), sections=st.integers(1, 400), pps_log=st.integers(4, 15),
       max_threads=st.integers(1, 64))
def test_padata_as_deferred_init_uses_it_takes_nworks_workers(start, sections, pps_log, max_threads):
    # deferred_init_memmap's jobs: align = min_chunk = PPS and a section-aligned end.
    pps = 1 << pps_log
    end = (start // pps + sections) * pps
    out = padata_chunks(start, end - start, pps, pps, max_threads)
    nworks = min(max((end - start) // pps, 1), max_threads)
    assert len({w for _, _, w in out}) == nworks       # the number of works follows the formula
    assert all(e % pps == 0 for _, e, _ in out)        # every chunk ends on a section boundary


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_padata_passes_on_generated_machines(data):
    """Over generated machines and workloads: each node's chunks are disjoint, every pfn the pass initialised
    lies in exactly one chunk of its node, no two chunks share a pageblock, and check() holds."""
    topo = data.draw(topologies(), label="topology")
    policy = data.draw(st.sampled_from(PADATA_POLICIES), label="policy")
    cpus = data.draw(node_cpus(topo), label="node_cpus")
    m = OracleMachine(topo, policy, node_cpus=cpus)
    m.boot()
    replay(m, data.draw(operations(topo, max_ops=12, invalid=False), label="ops"))
    if m.phase == "booted":
        m.page_alloc_init_late()
    m.check()
    pbo = topo.geometry.pageblock_order
    a = m.page_arrays()
    pass_pfns = a["pfn"][a["init_by"] == BY_PASS]
    pass_node = a["node"][a["init_by"] == BY_PASS]
    for nid in m.nodes:
        # (another node's job may span the same section, but each chunk function touches its own node's pfns
        # only, and these topologies keep nodes in separate MAX_ORDER blocks)
        all_blocks = set()
        cs = sorted(chunks(m, nid))
        assert all(x[1] <= y[0] for x, y in zip(cs, cs[1:]))
        blocks = [set(range(s >> pbo, ((e - 1) >> pbo) + 1)) for s, e, _ in cs]
        for b in blocks:
            assert not (b & all_blocks)
            all_blocks |= b
        for p in pass_pfns[pass_node == nid].tolist():
            assert sum(s <= p < e for s, e, _ in cs) == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_policy_strategy_name_builds_and_checks(data):
    topo = data.draw(topologies(max_nodes=2), label="topology")
    policy = data.draw(policies(), label="policy")
    m = OracleMachine(topo, policy, node_cpus=data.draw(node_cpus(topo), label="cpus"))
    m.boot()
    replay(m, data.draw(operations(topo, max_ops=10), label="ops"), after_each=lambda mm, op, out: mm.check())
    if m.phase == "booted":
        m.page_alloc_init_late()
    m.check()
    assert (m.page_arrays()["init_count"] == 1).all()

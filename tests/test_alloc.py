"""The allocator's migratetypes, fallback stealing and ALLOC_NOFRAGMENT (docs/model.md §5.1), in the Rust core and
the oracle, on hand-derived cases; and the GFP -> migratetype mapping against the real kernels' traces."""

import glob
import re
from pathlib import Path

import pytest

import pgdefer
from pgdefer import InvalidArgument, Machine, Region, Topology
from pgdefer.gfp import MIGRATETYPES, gfp_migratetype, migratetype
from pgdefer.oracle import GENERATIONS, OracleMachine

MiB, GiB = 1 << 20, 1 << 30
LAB = Path(__file__).resolve().parent.parent.parent / "shared" / "kernel-lab"


def grows(m):
    return [(e["hook"], e["result"]) for e in m.events if e["kind"] == "grow"]


def machines(policy):
    """Node 0 = [4 GiB, 4 GiB + 256 MiB): one zone, Normal, pfns [0x100000, 0x110000); pfn 0x100000 reserved.
    The defer rule cuts at 0x108000 (LIMIT = min(32768, 65536)). memblock_free_all releases [0x100001, 0x108000)
    by __free_pages_memory's alignment rule: 0x100001 (order 0), 0x100002 (1), 0x100004 (2), ... 0x100200 (9),
    then 31 order-10 blocks 0x100400 ... 0x107c00, every pageblock MOVABLE."""
    topo = Topology(memory=[Region(4 * GiB, 4 * GiB + 256 * MiB)], reserved=[Region(4 * GiB, 4 * GiB + 4096)])
    for m in (Machine(topo, policy=policy), OracleMachine(topo, policy)):
        m.boot()
        yield m


def order10_head(policy):
    """Head of the MOVABLE order-10 list after boot: with FPI_TO_TAIL (5.10+) the blocks were appended in
    ascending order: 0x100400; with __free_one_page's head rule (before 5.10: order MAX_ORDER-1 always to the
    head) the last one freed: 0x107c00."""
    return 0x100400 if pgdefer.POLICY_FACTS[policy]["boot_free"] == "tail" else 0x107C00


@pytest.mark.parametrize("policy", ["v4.17", "v5.10", "v6.11"])
def test_unmovable_request_steals_the_largest_movable_block(policy):
    """The first GFP_KERNEL (UNMOVABLE) page: no UNMOVABLE list has anything, so __rmqueue_fallback looks from
    order 10 down and takes the head of the MOVABLE order-10 list (smallest-first would give 0x100001). Order 10
    >= pageblock_order 9: both pageblocks of the block become UNMOVABLE; the block is split for the request
    (expand: halves +1 (o0), +2 (o1), ... +0x200 (o9) on the UNMOVABLE lists). A MOVABLE request then needs no
    fallback and takes the smallest MOVABLE block, 0x100001."""
    x = order10_head(policy)
    states = []
    for m in machines(policy):
        assert m.alloc_pages(0) == x
        mts = m.pageblock_migratetypes()
        assert (mts[x >> 9], mts[(x >> 9) + 1]) == ("Unmovable", "Unmovable")
        assert sum(v == "Unmovable" for v in mts.values()) == 2
        assert [m.free_list(0, "Normal", k, "Unmovable") for k in range(10)] == [[x + (1 << k)] for k in range(10)]
        assert len(m.free_list(0, "Normal", 10, "Movable")) == 30
        assert m.alloc_pages(0, migratetype="Movable") == 0x100001
        info = m.pagetypeinfo(0, "Normal")
        assert info["Unmovable"] == [1] * 10 + [0]
        assert info["Movable"] == [0] + [1] * 9 + [30]
        assert info["Reclaimable"] == info["HighAtomic"] == [0] * 11
        m.check()
        states.append((grows(m), mts, info))
    assert states[0] == states[1], "core and oracle"


@pytest.mark.parametrize("policy", ["v4.17", "v5.10", "v6.11"])
def test_nofragment_grows_while_fragments_remain(policy):
    """31 UNMOVABLE order-10 requests steal the 31 order-10 blocks whole; an order-9 one steals 0x100200 (no
    remainder is left on an UNMOVABLE list). Left free: the MOVABLE fragments 0x100001 (o0) ... 0x100100 (o8), 511
    pages of pageblock 0x800. The next UNMOVABLE order-0 request passes the watermark (511 free pages) and:
    v4.17 (no ALLOC_NOFRAGMENT): the largest fallback is the order-8 fragment; an UNMOVABLE request may take the
      pageblock: its 9 free blocks move to the UNMOVABLE lists, free 511 + alike 1 >= 256 claims it, and the
      smallest UNMOVABLE block is 0x100001. No grow.
    v5.10, v6.11 (one node, Normal preferred: ALLOC_NOFRAGMENT): fallback only from order 9 up finds nothing,
      rmqueue fails, hook 2 grows the zone (True), and the retried rmqueue steals the head of the new MOVABLE
      order-10 list, 0x108000 (the grow frees ascending, to the tail). The fragments stay MOVABLE and free."""
    nofrag = pgdefer.POLICY_FACTS[policy]["nofragment"]
    assert nofrag == (policy != "v4.17")
    x = order10_head(policy)
    step = 0x400 if x == 0x100400 else -0x400
    for m in machines(policy):
        assert [m.alloc_pages(10) for _ in range(31)] == [x + i * step for i in range(31)]
        assert m.alloc_pages(9) == 0x100200
        assert m.zone(0, "Normal").free_pages == 511
        assert grows(m) == []
        if nofrag:
            assert m.alloc_pages(0) == 0x108000
            assert grows(m) == [("rmqueue", True)]
            assert m.pageblock_migratetypes()[0x800] == "Movable"
            assert [m.free_list(0, "Normal", k, "Movable")[:1] for k in range(9)] == \
                [[0x100000 + (1 << k)] for k in range(9)]
        else:
            assert m.alloc_pages(0) == 0x100001
            assert grows(m) == []
            assert m.pageblock_migratetypes()[0x800] == "Unmovable"
            assert m.free_list(0, "Normal", 8, "Unmovable") == [0x100100]
        m.check()


def test_nofragment_needs_the_nodes_dma32_on_a_numa_machine():
    """alloc_flags_nofragment: with several nodes, a Normal request carries ALLOC_NOFRAGMENT only if its node
    also has a populated DMA32. Node 0 = [1 MiB, 2 GiB) (DMA + DMA32), node 1 = [4 GiB, 4 GiB + 256 MiB)
    (Normal only, pfn 0x100000 reserved, so node 1 boots like machines() above). On node 1, with only
    fragments below order 9 left, the request takes a fragment (0x100001, as v4.17 does above) instead of
    growing."""
    topo = Topology(memory=[Region(MiB, 2 * GiB, 0), Region(4 * GiB, 4 * GiB + 256 * MiB, 1)],
                    reserved=[Region(4 * GiB, 4 * GiB + 4096)])
    for m in (Machine(topo, policy="v6.11"), OracleMachine(topo, "v6.11")):
        m.boot()
        for _ in range(31):
            m.alloc_pages(10, node=1)
        assert m.alloc_pages(9, node=1) == 0x100200
        assert m.alloc_pages(0, node=1) == 0x100001
        assert grows(m) == []
        m.check()


def test_allocator_facts_agree_between_core_and_oracle():
    """Two independent tables (policy.rs and the oracle's GENERATIONS) name the same allocator per policy."""
    for p, g in GENERATIONS.items():
        f = pgdefer.POLICY_FACTS[p]
        assert (f["fallback"], f["nofragment"]) == (g.fallback, g.nofragment), p


def test_gfp_migratetype_matches_every_traced_allocation():
    """The kernel prints the migratetype it used next to the GFP flags: our mapping must give the same for every
    traced allocation of every kernel-lab log."""
    logs = sorted(glob.glob(str(LAB / "*.log")))
    assert logs, LAB
    seen = set()
    checked = 0
    line = re.compile(r"mm_page_alloc: page=\S+ pfn=0x[0-9a-f]+ order=\d+ migratetype=(\d+) gfp_flags=([\w|]+)")
    for log in logs:
        for mt, gfp in line.findall(Path(log).read_text(errors="replace")):
            assert gfp_migratetype(gfp) == MIGRATETYPES[int(mt)], (log, mt, gfp)
            seen.add(int(mt))
            checked += 1
    assert checked > 10000 and seen == {0, 1, 2}


def test_bad_migratetypes_are_typed_errors():
    topo = Topology(memory=[Region(4 * GiB, 4 * GiB + 256 * MiB)])
    m = Machine(topo, policy="v6.11")
    m.boot()
    o = OracleMachine(topo, "v6.11")
    o.boot()
    for mm in (m, o):
        for bad in ("CMA", "", 7, None, True):
            with pytest.raises(InvalidArgument, match="migratetype"):
                mm.alloc_pages(0, migratetype=bad)
        with pytest.raises(InvalidArgument, match="HIGHATOMIC"):
            mm.alloc_pages(0, migratetype="HighAtomic")
        with pytest.raises(InvalidArgument, match="migratetype"):
            mm.free_list(0, "Normal", 0, "Isolate")
    assert migratetype("migrate_movable") == "Movable" and migratetype(2) == "Reclaimable"
    assert m.stats["allocs"] == 0


def test_trace_replay_asks_for_the_kernels_migratetypes_and_counts_same_pfns():
    """A three-line page trace replayed on machines() (v5.10): the UNMOVABLE GFP_KERNEL page is the head of the
    stolen order-10 block, 0x100400 (as above: the kernel's pfn, counted); the GFP_HIGHUSER_MOVABLE page needs no
    fallback, 0x100001 (counted); the next UNMOVABLE page comes from the stolen block's remainders, 0x100401,
    where the trace says 0x100002 (not counted)."""
    from pgdefer.lab.trace import TraceWorkload

    log = "\n".join([
        "[    0.1] mm_page_alloc: page=(____ptrval____) pfn=0x100400 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
        ("[    0.2] mm_page_alloc: page=(____ptrval____) pfn=0x100001 order=0 migratetype=1 "
         "gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_COMP"),
        "[    0.3] mm_page_alloc: page=(____ptrval____) pfn=0x100002 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
    ])
    m = next(machines("v5.10"))
    r = TraceWorkload.from_log(log).replay(m)
    assert (r["allocs"], r["same_pfn"]) == (3, 2)
    got = {k: v[0] for k, v in r["state"]["blocks"].items()}
    assert got == {0x100400: 0x100400, 0x100001: 0x100001, 0x100002: 0x100401}
    mts = m.pageblock_migratetypes()
    assert (mts[0x100400 >> 9], mts[0x100001 >> 9]) == ("Unmovable", "Movable")

"""The Python API of the Rust core: the hand-derived acceptance case, policies, bad inputs, views."""

import numpy as np
import pytest

import pgdefer
from cases import booted_acceptance_case
from pgdefer import Geometry, Machine, Region, Topology, _core

MiB, GiB = 1 << 20, 1 << 30
SMALL = dict(section_size="256K", max_order=4, pageblock_order=3)  # 64-page sections


def grows(m):
    return [e for e in m.events if e["kind"] == "grow"]


def test_acceptance_case_v4_17():
    """Memory [1 MiB, 5 GiB) node 0, reserved [16 MiB, 48 MiB), x86_64 geometry, v4.17.

    Derivation (spec §1.1, §2.3, §2.5, §3.2; 4 KiB pages, PAGES_PER_SECTION = 32768):
    - memory pfns [0x100, 0x140000); reserved pfns [0x1000, 0x3000) = 8192 pages, inside DMA32.
    - zones: DMA [0x100, 0x1000) = 3840, DMA32 [0x1000, 0x100000) = 1044480,
      Normal [0x100000, 0x140000) = 262144 pages; Normal is the last zone.
    - defer rule: LIMIT = min(32768, spanned) = 32768. Normal's first pfn 0x100000 is count 1;
      pfn 0x108000 is count 32769 > LIMIT and section aligned, so first_deferred_pfn = 0x108000.
    - memblock_free_all frees DMA 3840, DMA32 1044480 - 8192 = 1036288, Normal 0x8000 = 32768.
    - 32768 order-0 allocations empty Normal (watermarks are 0, §1.4) without a grow; the next one
      fails the watermark, grows one section (need = round_up(1, 32768); the free range goes to the
      zone end, so new_first = 0x108000 + 0x8000 = 0x110000).
    - late init frees the rest: Normal free = 262144 - 32769 allocated pages.
    """
    t, m = booted_acceptance_case(Machine)
    for _ in range(32768):
        m.alloc_pages(0, zone="Normal")
    assert grows(m) == []
    m.alloc_pages(0, zone="Normal")
    assert len(grows(m)) == 1
    assert m.first_deferred_pfn(0) == 0x110000
    m.check()
    m.page_alloc_init_late()
    assert m.first_deferred_pfn(0) is None
    assert not m.deferred_pages_enabled
    present = np.zeros(len(m.pages), dtype=bool)
    for s, e, _ in t.memory_pfn_ranges():
        present[m.pages.index(s):m.pages.index(s) + e - s] = True
    assert (m.pages.init_count[present] == 1).all()
    assert m.zone(0, "Normal").free_pages == 262144 - 32769
    m.check()


def small(memory, reserved=(), policy="v4.17", **zl):
    t = Topology(memory=memory, reserved=reserved, geometry=Geometry(**SMALL),
                 zone_limits=zl or None)
    return Machine(t, policy=policy)


def test_eager_defers_nothing():
    m = small([Region(0, 16 * 64 * 4096, 0)], policy="eager")
    m.boot()
    assert m.first_deferred_pfn(0) is None
    assert not m.deferred_pages_enabled
    assert m.pages.counts()["uninit"] == 0
    m.page_alloc_init_late()
    assert [e["pages"] for e in m.events if e["kind"] == "deferred_init"] == [0]


def test_v4_2_defers_after_2g_and_never_grows():
    # Normal [4 GiB, 7 GiB): 2 GiB = 524288 pages initialised early, cut at pfn 0x100000 + 524288.
    m = Machine(Topology(memory=[Region(4 * GiB, 7 * GiB, 0)]), policy="v4.2")
    m.boot()
    assert m.first_deferred_pfn(0) == 0x100000 + 524288
    assert m.zone(0, "Normal").free_pages == 524288
    for _ in range(512):
        m.alloc_pages(10)
    with pytest.raises(pgdefer.OutOfMemory):
        m.alloc_pages(0)
    assert grows(m) == [] and not m.deferred_pages_enabled
    m.page_alloc_init_late()
    m.alloc_pages(0)
    m.check()


def test_v4_17_grows_a_section_at_a_time():
    # 16 sections of 64 pages, all DMA: 64 pages early, each grow adds exactly one section.
    m = small([Region(0, 16 * 64 * 4096, 0)])
    m.boot()
    assert m.first_deferred_pfn(0) == 64
    for _ in range(64):  # the early section, no grow
        m.alloc_pages(0, zone="DMA")
    assert grows(m) == []
    for k in range(1, 4):
        m.alloc_pages(0, zone="DMA")  # zone empty: grow exactly one more section
        assert m.first_deferred_pfn(0) == 64 * (k + 1)
        assert len(grows(m)) == k and grows(m)[-1]["pages"] == 64
        for _ in range(63):
            m.alloc_pages(0, zone="DMA")
        assert len(grows(m)) == k
    m.check()


def test_posting_v2_grow_needs_a_full_section():
    """A last zone with only 40 free pages above the cut: v4.17's grow adds them and returns True
    (got > 0); posting-v2 adds them too but returns got >= need = 64, i.e. False."""
    # memory: 2 sections (128 pages) + 40 pages; reserved covers nothing. cut at pfn 64.
    mem = [Region(0, (128 + 40) * 4096, 0)]
    for policy, expect in (("v4.17", True), ("posting-v2", False)):
        m = small(mem, policy=policy)
        m.boot()
        assert m.first_deferred_pfn(0) == 64
        assert m.deferred_grow_zone(0, "DMA", 0) is True  # a whole section
        assert m.deferred_grow_zone(0, "DMA", 0) is expect  # only 40 pages left
        assert grows(m)[-1]["pages"] == 40
        assert m.first_deferred_pfn(0) == 168
        m.check()


def test_posting_v2_disables_key_before_passes():
    m = small([Region(0, 8 * 64 * 4096, 0)], policy="posting-v2")
    m.boot()
    m.page_alloc_init_late()
    kinds = [e["kind"] for e in m.events]
    assert kinds.index("key_disable") < kinds.index("deferred_init")
    m = small([Region(0, 8 * 64 * 4096, 0)], policy="v4.17")
    m.boot()
    m.page_alloc_init_late()
    kinds = [e["kind"] for e in m.events]
    assert kinds.index("key_disable") > kinds.index("deferred_init")


def test_page_views_are_read_only_and_decoded():
    m = small([Region(0, 4 * 64 * 4096, 0)])
    m.boot()
    with pytest.raises(ValueError):
        m.pages.flags[0] = 1
    assert m.pages[0].state == 3 and m.pages[200].state == 0  # pfn 0 free head; 200 deferred
    assert m.pages[0].order == 4 and m.pages[1].order is None
    assert len(m.pages.pfn) == len(m.pages) == 256
    # An allocated block's head carries its order too, in the order byte with ALLOCATED_HEAD set (a merge
    # under zone->lock takes only a mark without it for a free buddy); both views decode it.
    pfn = m.alloc_pages(order=2)
    i = m.pages.index(pfn)
    assert int(m.pages.order_raw[i]) == _core.ALLOCATED_HEAD | (2 + _core.ORDER_BIAS)
    assert m.pages[pfn].order == 2 == int(m.pages.order[i]) and m.pages[pfn + 1].order is None
    m.free_pages(pfn, order=2)
    assert int(m.pages.order_raw[i]) & _core.ALLOCATED_HEAD == 0  # freed: a buddy head, or inside one
    assert "free" in repr(m.pages) and "v4.17" in repr(m)


def topo(memory, reserved=(), **kw):
    return lambda: Topology(memory=memory, reserved=reserved, **kw)


BAD_TOPOLOGIES = [
    ("overlap in one node", topo([Region(0, 2 * MiB, 0), Region(MiB, 3 * MiB, 0)]),
     pgdefer.TopologyError, ["0x0, 0x200000", "0x100000, 0x300000"]),
    ("overlap across nodes", topo([Region(0, 2 * MiB, 0), Region(MiB, 3 * MiB, 1)]),
     pgdefer.TopologyError, ["node 0", "node 1"]),
    ("end not above start", lambda: Region(2 * MiB, MiB), pgdefer.TopologyError, ["0x200000", "end"]),
    ("empty region", lambda: Region(MiB, MiB), pgdefer.TopologyError, ["empty"]),
    ("zone limits out of order", topo([Region(0, GiB, 0)], zone_limits={"DMA": "4G", "DMA32": "16M"}),
     pgdefer.TopologyError, ["out of order", "DMA32"]),
    ("unknown zone limit", topo([Region(0, GiB, 0)], zone_limits={"HighMem": "1G"}),
     pgdefer.TopologyError, ["HighMem"]),
    ("bad geometry: max order block above section",
     lambda: Geometry(section_size="256K", max_order=7), pgdefer.GeometryError, ["section"]),
    ("bad geometry: page size", lambda: Geometry(page_size=3000), pgdefer.GeometryError, ["page_size"]),
    ("no memory", topo([]), pgdefer.TopologyError, ["at least one"]),
]


@pytest.mark.parametrize("name,make,exc,words", BAD_TOPOLOGIES, ids=[b[0] for b in BAD_TOPOLOGIES])
def test_bad_topologies(name, make, exc, words):
    with pytest.raises(exc) as e:
        make()
    for w in words:
        assert w in str(e.value)


CORE_BAD = [  # the Rust core validates on its own too: straight to _core, bypassing Python checks
    ("overlap", dict(memory=[(0, 2 * MiB, 0), (MiB, 3 * MiB, 1)]), pgdefer.TopologyError),
    ("reversed", dict(memory=[(2 * MiB, MiB, 0)]), pgdefer.TopologyError),
    ("limits", dict(zone_limits=(4 * GiB, 16 * MiB, None)), pgdefer.TopologyError),
    ("geometry", dict(section_size=4096), pgdefer.GeometryError),
    ("policy", dict(policy="v9.9"), pgdefer.InvalidArgument),
    ("node id", dict(memory=[(0, MiB, 5000)]), pgdefer.TopologyError),
]


@pytest.mark.parametrize("name,kw,exc", CORE_BAD, ids=[c[0] for c in CORE_BAD])
def test_core_rejects_bad_input_with_typed_errors(name, kw, exc):
    args = dict(page_size=4096, section_size=128 * MiB, pageblock_order=9, max_order=10,
                memory=[(0, GiB, 0)], reserved=[], zone_limits=(16 * MiB, 4 * GiB, None), policy="v4.17")
    args.update(kw)
    policy = args.pop("policy")
    with pytest.raises(exc):
        _core.Machine(tuple(args.values()), policy)  # the layout tuple, then the policy


def test_reserved_ranges_without_memory_are_ignored():
    m = small([Region(0, 4 * 64 * 4096, 0)], reserved=[Region(GiB, 2 * GiB)])
    m.boot()
    assert m.zone(0, "DMA").free_pages == 64
    m.check()


def booted():
    m = small([Region(0, 4 * 64 * 4096, 0), Region(GiB, GiB + 4 * 64 * 4096, 1)])
    m.boot()
    return m


BAD_CALLS = [
    ("order above max", lambda m: m.alloc_pages(5), pgdefer.OrderError, "order 5"),
    ("negative order", lambda m: m.alloc_pages(-1), pgdefer.OrderError, "order -1"),
    ("unknown node", lambda m: m.alloc_pages(0, node=7), pgdefer.UnknownNode, "node 7"),
    ("unknown zone", lambda m: m.alloc_pages(0, zone="HighMem"), pgdefer.UnknownZone, "HighMem"),
    ("zone the node lacks", lambda m: m.zone(1, "DMA"), pgdefer.UnknownZone, "node 1 has no DMA"),
    ("free unallocated", lambda m: m.free_pages(3), pgdefer.BadFree, "0x3 is not allocated"),
    ("free uninitialised", lambda m: m.free_pages(200), pgdefer.BadFree, "0xc8"),
    ("free without memmap", lambda m: m.free_pages(100000), pgdefer.BadFree, "no struct page"),
    ("boot twice", lambda m: m.boot(), pgdefer.PhaseError, "twice"),
]


@pytest.mark.parametrize("name,call,exc,words", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_calls(name, call, exc, words):
    m = booted()
    before = m.page_arrays()
    with pytest.raises(exc) as e:
        call(m)
    assert words in str(e.value)
    after = m.page_arrays()
    assert all((before[k] == after[k]).all() for k in before), "a failing call changed the machine"
    m.check()


def test_free_wrong_order_and_twice():
    m = booted()
    pfn = m.alloc_pages(2)
    with pytest.raises(pgdefer.BadFree, match="allocated with order 2, not 1"):
        m.free_pages(pfn, 1)
    with pytest.raises(pgdefer.BadFree, match="not its head"):
        m.free_pages(pfn + 1, 0)
    m.free_pages(pfn, 2)
    with pytest.raises(pgdefer.BadFree, match="double free"):
        m.free_pages(pfn, 2)
    m.check()


def test_phase_errors():
    m = small([Region(0, 4 * 64 * 4096, 0)])
    with pytest.raises(pgdefer.PhaseError, match="before boot"):
        m.alloc_pages(0)
    with pytest.raises(pgdefer.PhaseError, match="before boot"):
        m.page_alloc_init_late()
    m.boot()
    m.page_alloc_init_late()
    with pytest.raises(pgdefer.PhaseError, match="twice"):
        m.page_alloc_init_late()
    m.alloc_pages(0)  # the allocator keeps working after deferred init


def test_errors_are_builtin_subclasses():
    assert issubclass(pgdefer.OutOfMemory, MemoryError)
    assert issubclass(pgdefer.TopologyError, ValueError)
    m = small([Region(0, 64 * 4096, 0)], policy="eager")
    m.boot()
    with pytest.raises(MemoryError):
        for _ in range(65):
            m.alloc_pages(0)


def test_host_bytes_per_page_matches_the_core():
    from pgdefer.config import HOST_BYTES_PER_PAGE

    assert _core.BYTES_PER_PAGE == HOST_BYTES_PER_PAGE <= 16


def test_init_by_says_which_path_initialised_each_page():
    """The acceptance machine's pages by path: holes [0, 0x100) (section 0 below 1 MiB); early: DMA +
    DMA32 + one Normal section = 3840 + 1044480 + 32768 minus nothing (reserved pages below the cut are
    initialised early too); one grow of a section; the pass the remaining 262144 - 2 * 32768 pages."""
    from pgdefer.machine import INIT_BY

    t = Topology(memory=[Region(MiB, 5 * GiB, node=0)], reserved=[Region(16 * MiB, 48 * MiB)])
    m = Machine(t)
    m.boot()
    m.deferred_grow_zone(0, "Normal")
    m.page_alloc_init_late()
    assert INIT_BY == ("none", "early", "hole", "memblock_free_all", "grow", "pass")
    assert m.pages.init_counts() == {"none": 0, "early": 3840 + 1044480 + 32768, "hole": 256,
                                      "memblock_free_all": 0, "grow": 32768, "pass": 262144 - 2 * 32768}
    by = m.pages.init_by
    assert (by[m.pages.index(0x108000):m.pages.index(0x108000) + 32768] == 4).all()
    # a reserved range above the cut is initialised by memblock_free_all
    t2 = Topology(memory=[Region(MiB, 5 * GiB, node=0)], reserved=[Region(4 * GiB + 256 * MiB, 4 * GiB + 260 * MiB)])
    m2 = Machine(t2)
    m2.boot()
    assert m2.pages.init_counts()["memblock_free_all"] == (4 * MiB) // 4096

"""Regression tests from the kernel's history (spec §8), each named after its case, plus topology
shapes that broke real kernels: descending node order, no node 0, memory near the top of the space."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pgdefer
from pgdefer import Geometry, Machine, Region, Topology

MiB, GiB = 1 << 20, 1 << 30
PAGE = 4096
SMALL = Geometry(section_size="256K", max_order=4, pageblock_order=3)  # 64-page sections
PPS = 64


def span(field, m, lo, hi):
    """m.pages.<field> of pfns [lo, hi), all of one run of present sections."""
    w = m.pages.window(lo, hi)
    assert w.runs == [(lo, hi)]
    return getattr(w, field)


def states(m, lo, hi):
    return span("state", m, lo, hi)


def test_B1_fixed_prefix_ooms_where_growth_succeeds():
    """24 TB DragonHawk (M4): a 2 GiB/node prefix could not hold the early demand. A node with only
    Normal memory [4 GiB, 7 GiB); early demand 2.5 GiB of 4 MiB blocks (640 order-10 allocations)."""
    topo = Topology(memory=[Region(4 * GiB, 7 * GiB, 0)])
    m = Machine(topo, policy="v4.2")
    m.boot()
    with pytest.raises(pgdefer.OutOfMemory):
        for _ in range(640):
            m.alloc_pages(10)
    m = Machine(topo, policy="v4.17")
    m.boot()
    for _ in range(640):
        m.alloc_pages(10)
    grows = [e for e in m.events if e["kind"] == "grow"]
    # 640 blocks = 655360 pages = 20 sections; one is the early prefix: 19 grows of a section each.
    assert len(grows) == 19 and all(g["pages"] == 32768 for g in grows)
    m.page_alloc_init_late()
    m.check()


def test_B6_every_pageblock_movable_and_no_free_page_leaked():
    """4.2–4.7 set MOVABLE on the first pageblock of each MAX_ORDER chunk only, and dropped the last
    partial run of each range. Ranges here end mid-pageblock."""
    mem = [Region(0, 4 * PPS * PAGE + 5 * PAGE, 0), Region(8 * PPS * PAGE, 12 * PPS * PAGE + 3 * PAGE, 0)]
    t = Topology(memory=mem, reserved=[Region(2 * PPS * PAGE + 3 * PAGE, 2 * PPS * PAGE + 7 * PAGE)],
                 geometry=SMALL)
    m = Machine(t)
    m.boot()
    m.page_alloc_init_late()
    free_pfns = sum(e - s for s, e, _ in t.memory_pfn_ranges()) - 4  # minus the 4 reserved pages
    assert m.pages.counts()["free"] == free_pfns
    mts = m.pageblock_migratetypes()
    st_ = m.pages.state
    for pb in {int(p) >> SMALL.pageblock_order for p in m.pages.pfn[st_ == 3]}:
        assert mts.get(pb) == "Movable", f"pageblock {pb}"
    m.check()


@settings(max_examples=60, deadline=None)
@given(section=st.integers(0, 15), offset=st.integers(0, PPS - 1))
def test_B8_early_read_of_a_deferred_descriptor_is_caught(section, offset):
    """trap_init() read per_cpu_ptr_to_phys() → virt_to_page() of an object KASLR placed beyond the
    first section. Any early read of a descriptor: fine below first_deferred_pfn, caught above it."""
    t = Topology(memory=[Region(0, 16 * PPS * PAGE, 0)], geometry=SMALL)
    m = Machine(t)
    m.boot()
    pfn = section * PPS + offset
    if pfn < m.first_deferred_pfn(0):
        state, zone, node = m.read_page(pfn)
        assert (state, zone, node) == (3, "DMA", 0)  # a free page of the early section
        assert m.violations == []
    else:
        with pytest.raises(pgdefer.UninitialisedAccess, match=hex(pfn)):
            m.read_page(pfn)
        with pytest.raises(pgdefer.InvariantViolation, match="I6"):
            m.check()


# B9 (static_branch_disable under a spinlock) and B10 (the allocation-failure window) are the review
# findings: tests/test_concurrency.py pins them.


@pytest.mark.parametrize("policy", ["v4.17", "posting-v2"])
def test_B12_grow_on_a_zone_with_nothing_left_terminates(policy):
    """Xen dom0, 5.2-rc: grow kept returning True for a zone with no free range left, and
    get_page_from_freelist looped forever. Here the whole deferred tail is reserved."""
    t = Topology(memory=[Region(0, 4 * PPS * PAGE, 0)], reserved=[Region(PPS * PAGE, 4 * PPS * PAGE)],
                 geometry=SMALL)
    m = Machine(t, policy=policy)
    m.boot()
    assert m.first_deferred_pfn(0) == PPS
    results = [m.deferred_grow_zone(0, "DMA") for _ in range(3)]
    assert results.count(True) <= 1 and results[-1] is False
    with pytest.raises(pgdefer.OutOfMemory):
        for _ in range(PPS + 1):
            m.alloc_pages(0)
    m.check()


def test_B15_prefix_is_one_section_of_the_zone_not_of_each_region():
    """5.8–5.10 initialised the whole first region of each memblock region; the prefix is one section
    of the zone in total, in its first region."""
    regions = [Region(4 * GiB, 4 * GiB + 3 * 128 * MiB, 0), Region(4 * GiB + 5 * 128 * MiB, 4 * GiB + 10 * 128 * MiB, 0)]
    m = Machine(Topology(memory=regions))
    m.boot()
    early = [e for e in m.events if e["kind"] == "early_init"][0]
    assert early["pages"] == 32768 and early["first_deferred_pfn"] == 0x108000
    s2 = (4 * GiB + 5 * 128 * MiB) // PAGE
    assert (states(m, s2, s2 + 5 * 32768) == 0).all(), "the second region is entirely deferred"


def test_B20_also_without_a_static_key():
    """v4.2 has no key, but its deferred pages are just as uninitialised."""
    t = Topology(memory=[Region(4 << 30, 7 << 30, 0)], reserved=[Region((4 << 30) + (2 << 30) + 4096 * 8,
                                                                         (4 << 30) + (2 << 30) + 4096 * 12)])
    m = Machine(t, policy="v4.2")
    m.boot()
    cut = m.first_deferred_pfn(0)
    with pytest.raises(pgdefer.PhaseError, match="B20"):
        m.free_reserved_area(cut + 8, cut + 12)
    assert m.violations == []


def test_B20_freeing_reserved_memory_next_to_deferred_memory_is_rejected():
    """2026, 6.12 on EC2: free_reserved_page() before page_alloc_init_late merged with an uninitialised
    buddy. Reserved pfns [64+8, 64+12) sit in the deferred section, next to deferred free pages."""
    t = Topology(memory=[Region(0, 4 * PPS * PAGE, 0)], reserved=[Region((PPS + 8) * PAGE, (PPS + 12) * PAGE)],
                 geometry=SMALL)
    m = Machine(t)
    m.boot()
    before = m.page_arrays()
    with pytest.raises(pgdefer.PhaseError, match="B20"):
        m.free_reserved_area(PPS + 8, PPS + 12)
    assert all((before[k] == m.page_arrays()[k]).all() for k in before), "nothing half-applied"
    m.page_alloc_init_late()
    assert m.free_reserved_area(PPS + 8, PPS + 12) == 4
    assert (states(m, PPS, 2 * PPS) == 3).all()
    m.check()


def test_B20_far_from_deferred_memory_is_fine_in_the_window():
    t = Topology(memory=[Region(0, 4 * PPS * PAGE, 0)], reserved=[Region(8 * PAGE, 12 * PAGE)], geometry=SMALL)
    m = Machine(t)
    m.boot()
    assert m.free_reserved_area(8, 12) == 4
    with pytest.raises(pgdefer.BadFree, match="not reserved"):
        m.free_reserved_area(8, 12)
    m.check()


def test_B21_interleaved_nodes_pass_never_touches_the_other_node():
    """N0 / N1 / N0 (CONFIG_NODES_SPAN_OTHER_NODES): node 0's zone spans node 1's pfns."""
    s = PPS * PAGE
    mem = [Region(0, 4 * s, 0), Region(4 * s, 8 * s, 1), Region(8 * s, 12 * s, 0)]
    t = Topology(memory=mem, geometry=SMALL)
    m = Machine(t, cpus=1)
    m.boot()
    fdp0, fdp1 = m.first_deferred_pfn(0), m.first_deferred_pfn(1)
    assert (fdp0, fdp1) == (PPS, 5 * PPS)
    m.page_alloc_init_late()
    passes = {e["node"]: e["pages"] for e in m.events if e["kind"] == "deferred_init"}
    assert passes == {0: 3 * PPS + 4 * PPS, 1: 3 * PPS}
    assert (span("node", m, 4 * PPS, 8 * PPS) == 1).all()
    assert (span("node", m, 8 * PPS, 12 * PPS) == 0).all()
    assert (m.pages.init_count == 1).all()
    m.check()


@pytest.mark.parametrize("end_mib", [4097, 4160])
def test_B22_holes_and_a_node_end_that_is_not_section_aligned(end_mib):
    """Partially populated last section: every hole descriptor must be initialised and reserved."""
    t = Topology(memory=[Region(MiB, 3 * GiB, 0), Region(4 * GiB, end_mib * MiB, 0)])
    m = Machine(t)
    m.boot()
    holes = [(0, 256),  # below 1 MiB, in the first section
             (end_mib * MiB // PAGE, 4224 * MiB // PAGE)]  # the tail of the last section [4096, 4224) MiB
    for lo, hi in holes:
        assert (states(m, lo, hi) == 2).all(), f"hole [{lo:#x}, {hi:#x})"
        assert (span("init_count", m, lo, hi) == 1).all()
    with pytest.raises(IndexError):  # [3 GiB, 4 GiB) holds no memory: its sections have no memmap
        m.pages.index(3 * GiB // PAGE)
    m.page_alloc_init_late()
    m.check()


def test_descending_node_order():
    """Node 1 below node 0 in physical memory."""
    t = Topology(memory=[Region(0, 8 * PPS * PAGE, 1), Region(8 * PPS * PAGE, 16 * PPS * PAGE, 0)], geometry=SMALL)
    m = Machine(t, cpus=2)
    m.boot()
    assert m.nodes == [0, 1]
    assert m.first_deferred_pfn(1) == PPS and m.first_deferred_pfn(0) == 9 * PPS
    pfn = m.alloc_pages(0)  # node None = lowest id = node 0
    assert 8 * PPS <= pfn < 16 * PPS
    m.page_alloc_init_late()
    m.check()


def test_topology_without_node_0():
    t = Topology(memory=[Region(0, 4 * PPS * PAGE, 2), Region(8 * PPS * PAGE, 12 * PPS * PAGE, 5)], geometry=SMALL)
    m = Machine(t)
    m.boot()
    assert m.nodes == [2, 5]
    assert m.alloc_pages(0) < 4 * PPS
    with pytest.raises(pgdefer.UnknownNode, match="node 0"):
        m.alloc_pages(0, node=0)
    m.page_alloc_init_late()
    m.check()


def test_memory_near_the_top_of_the_physical_address_space():
    top = 1 << 52  # x86-64's 52-bit physical address space
    t = Topology(memory=[Region(MiB, 64 * MiB, 0), Region(top - 512 * MiB, top, 1)])
    m = Machine(t)
    m.boot()
    assert m.first_deferred_pfn(1) == (top - 512 * MiB) // PAGE + 32768
    for _ in range(40000):
        m.alloc_pages(0, node=1)
    m.page_alloc_init_late()
    assert m.pages.pfn.max() == top // PAGE - 1
    m.check()
    with pytest.raises(pgdefer.TopologyError, match="beyond"):
        Topology(memory=[Region(top, top + GiB, 0)])

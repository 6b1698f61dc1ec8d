"""Struct pages by pfn (issue 14 finding 1, issue 12 windows): ``m.pages[pfn]`` is the page of that pfn, the
packed arrays refuse a pfn, the views are read-only, windows read only their part, decoded views are cached
until the machine changes."""

import numpy as np
import pytest

import pgdefer
from pgdefer import Region, Topology
from pgdefer.machine import InitBy, PageState, Zone

PAGE = 4096
GiB = 1 << 30
HOLE = (3 * GiB // PAGE, 4 * GiB // PAGE)  # [0xc0000, 0x100000): whole 128 MiB sections with no memory


@pytest.fixture(scope="module")
def booted():
    """[1 MiB, 3 GiB) + [4 GiB, 5 GiB) on node 0, as the default machine has its 3-4 GiB hole, booted v4.17."""
    m = pgdefer.Machine(Topology(memory=[Region("1M", "3G", 0), Region("4G", "5G", 0)]), policy="v4.17")
    m.boot()
    return m


def test_a_pfn_past_the_hole_reads_its_own_page(booted):
    m = booted
    # 4 GiB is the DMA32 limit, so pfn 0x100000 is the first of ZONE_NORMAL. v4.17 initialises one section of the
    # node's last zone early (spec §5: [0x100000, 0x108000), 128 MiB), and memblock_free_all frees it in
    # MAX_ORDER-aligned blocks: the pfn heads a free order-10 block, initialised once by memmap_init, in a
    # MOVABLE pageblock.
    assert m.pages[0x100000] == pgdefer.machine.Page(
        pfn=0x100000, state=PageState.FREE, zone=Zone.NORMAL, node=0, order=10, init_count=1,
        init_by=InitBy.EARLY, migratetype="Movable")
    assert m.first_deferred_pfn(0) == 0x108000
    # Above first_deferred_pfn the page is deferred: its descriptor is garbage, so no zone/node is claimed.
    p = m.pages[0x120000]
    assert (p.state, p.zone, p.node, p.order, p.init_count, p.init_by, p.migratetype) == \
        (PageState.UNINIT, None, None, None, 0, InitBy.NONE, None)
    assert repr(m.pages[0x100000]) == "<Page 0x100000 free Normal node 0 order 10 init_count 1 by early Movable>"


def test_packed_arrays_refuse_a_pfn_and_pfns_without_a_struct_page_are_refused(booted):
    m = booted
    # The arrays hold one entry per struct page: past the hole entry 0x100000 is pfn 0x140000, so indexing
    # them by pfn would read another page. They refuse it and say what to use.
    with pytest.raises(pgdefer.NoStructPage, match=r"m\.pages\[pfn\]"):
        m.pages.state[0x100000]
    with pytest.raises(IndexError):
        m.pages.node[0x100000:0x100010]
    with pytest.raises(pgdefer.NoStructPage, match="pfn 0xc0000 has no struct page"):
        m.pages[HOLE[0]]
    with pytest.raises(IndexError, match=r"\[0x100000, 0x140000\)"):
        m.pages[HOLE[1] - 1]
    assert HOLE[0] not in m.pages and HOLE[1] in m.pages and 0x140000 not in m.pages
    # Positions from index() are not pfns: they are accepted, and agree with the record.
    i = m.pages.index(0x100000)
    assert m.pages.state[i] == PageState.FREE and m.pages.pfn[i] == 0x100000
    assert (m.pages.order[i:i + 2] == [10, pgdefer.machine.NO_ORDER]).all()
    # Vectorised use is unchanged: masks, reductions, bincount.
    free = m.pages.state == PageState.FREE
    assert int(free.sum()) == m.pages.counts()["free"] == int(np.bincount(m.pages.state)[PageState.FREE])
    assert m.pages.pfn[free].min() == 0x100  # the first free pfn: 1 MiB, where memory starts


@pytest.mark.parametrize("name", ["state", "zone", "init_count", "order", "flags", "node", "order_raw", "init_by",
                                  "pfn", "migratetype"])
def test_page_arrays_are_read_only(booted, name):
    a = getattr(booted.pages, name)
    assert not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a[booted.pages.index(0x100000)] = 1


def test_a_window_holds_exactly_its_pfns_and_agrees_with_the_whole_view(booted):
    m = booted
    w = m.pages.window(0xFFFF0, 0x100010)  # 16 pfns of the hole, 16 of memory
    assert (w.start_pfn, w.end_pfn, w.runs, len(w)) == (0xFFFF0, 0x100010, [(0x100000, 0x100010)], 16)
    assert (w.pfn == np.arange(0x100000, 0x100010)).all()
    whole = (m.pages.pfn >= 0x100000) & (m.pages.pfn < 0x100010)
    for name in ("state", "zone", "node", "init_count", "order", "init_by", "migratetype"):
        assert (getattr(w, name) == getattr(m.pages, name)[whole]).all(), name
    assert w[0x100000] == m.pages[0x100000]
    with pytest.raises(pgdefer.NoStructPage, match="no struct page"):
        w[0xFFFF8]
    with pytest.raises(pgdefer.NoStructPage, match="outside this view"):
        w[0x100010]
    assert [p.pfn for p in w] == list(range(0x100000, 0x100010))
    s = m.pages[0xFFFF0:0x100010]
    assert (s.start_pfn, s.end_pfn, s.runs) == (w.start_pfn, w.end_pfn, w.runs)
    # A window is a view of the core's memory, not a copy; a window of a window is clipped to it.
    assert np.shares_memory(w.flags, m.pages.flags)
    assert w.window(0, 1 << 40).runs == w.runs
    assert "0xffff0" in repr(w) and "free 16" in repr(w)


def test_decoded_views_are_cached_until_the_machine_changes():
    m = pgdefer.Machine(Topology(memory=[Region("1M", "3G", 0), Region("4G", "5G", 0)]))
    m.boot()
    assert m.pages.pfn is m.pages.pfn  # the layout never changes
    state = m.pages.state
    assert m.pages.state is state  # nothing ran in between
    pfn = m.alloc_pages(0)
    assert m.pages.state is not state
    assert m.pages[pfn].state == PageState.ALLOCATED
    assert m.pages.state[m.pages.index(pfn)] == PageState.ALLOCATED
    assert m.pages.counts()["allocated"] == 1


@pytest.mark.parametrize("call, error", [
    (lambda p: p["0x100"], pgdefer.InvalidArgument),
    (lambda p: p[-1], pgdefer.NoStructPage),
    (lambda p: p[::2], pgdefer.InvalidArgument),
    (lambda p: p.window(5, 3), pgdefer.InvalidArgument),
    (lambda p: p.window(-1, 3), pgdefer.InvalidArgument),
    (lambda p: p.index(HOLE[0]), pgdefer.NoStructPage),
])
def test_bad_page_lookups_are_pgdefer_errors(booted, call, error):
    with pytest.raises(error) as e:
        call(booted.pages)
    assert isinstance(e.value, pgdefer.PgdeferError)

"""pgdefer._intervals against hand-worked cases and against sets of points (the definition of each operation)."""

from hypothesis import given
from hypothesis import strategies as st

from pgdefer._intervals import clip, intersect, length, merge, split_at, subtract


def test_hand_worked_cases():
    # [0,4) and [4,6) touch -> one; [8,9) apart; the empty [10,10) and reversed [12,11) vanish
    assert merge([(4, 6), (0, 4), (8, 9), (10, 10), (12, 11)]) == [(0, 6), (8, 9)]
    assert merge([(0, 10), (2, 3)]) == [(0, 10)]
    assert clip([(0, 10), (20, 30)], 5, 25) == [(5, 10), (20, 25)]
    assert clip([(0, 10)], 3) == [(3, 10)]
    # [0,10) minus [2,3) and [5,7): three pieces; the cut [9,20) takes the tail
    assert subtract([(0, 10)], [(5, 7), (2, 3), (9, 20)]) == [(0, 2), (3, 5), (7, 9)]
    # overlapping inputs stay two pieces (memblock=debug replays count the ranges)
    assert subtract([(0, 4), (2, 6)], [(3, 4)]) == [(0, 3), (2, 3), (4, 6)]
    assert intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    assert split_at([(0, 10), (10, 12)], [0, 4, 10, 11]) == [(0, 4), (4, 10), (10, 11), (11, 12)]
    assert length([(0, 4), (2, 6), (9, 8)]) == 8
    assert length(merge([(0, 4), (2, 6)])) == 6


ivs = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=6)


def points(intervals):
    return {p for s, e in intervals for p in range(s, e)}


@given(ivs, ivs, st.integers(0, 40), st.integers(0, 40))
def test_against_point_sets(a, b, lo, hi):
    m = merge(a)
    assert points(m) == points(a)
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(m, m[1:])), "merged intervals neither overlap nor touch"
    assert points(clip(a, lo, hi)) == {p for p in points(a) if lo <= p < hi}
    assert points(subtract(a, b)) == points(a) - points(b)
    assert points(intersect(a, b)) == points(a) & points(b)
    assert length(merge(a)) == len(points(a))
    pieces = split_at(a, [lo, hi])
    assert points(pieces) == points(a)
    assert not any(s < p < e for s, e in pieces for p in (lo, hi)), "no piece straddles a cut point"


def test_reserved_pages_counts_a_shared_page_once():
    """Topology.reserved_pages: the model marks each pfn once, however many reserved ranges touch it."""
    from pgdefer import Topology

    # memory pfns [1, 0x100); [0x1000, 0x1800) and [0x1900, 0x2000) do not touch, so they stay two ranges,
    # but both round out to pfn 1: one reserved page, not two. [0x5000, 0x7001) rounds out to pfns 5, 6, 7.
    t = Topology([(0x1000, 0x100000)], reserved=[(0x1000, 0x1800), (0x1900, 0x2000), (0x5000, 0x7001)])
    assert len(t.reserved) == 3
    assert t.reserved_pages == 1 + 3


def test_reserved_pages_of_an_imported_log_equal_the_core_s():
    """The kernel-lab logs place many small reservations that share pages; the count the import reports
    (placed_reserved_kib) must be the core's reserved memory pages (reserved state, not holes)."""
    from pathlib import Path

    import pytest

    from pgdefer import Machine, Topology
    from pgdefer.machine import INIT_BY, RESERVED

    log = Path(__file__).resolve().parents[2] / "shared" / "kernel-lab" / "lab01-612-1node-1g.log"
    if not log.exists():
        pytest.fail(f"{log} is missing: the kernel-lab logs are read in place from ../shared")
    t = Topology.from_dmesg(log)
    m = Machine(t, policy="eager")
    m.boot()
    p = m.pages
    core = int(((p.state == RESERVED) & (p.init_by != INIT_BY.index("hole"))).sum())
    assert t.reserved_pages == core
    assert t.source.placed_reserved_kib == core * t.geometry.page_size // 1024

"""Arithmetic on half-open intervals ``[start, end)`` given as ``(start, end)`` pairs of ints.

One copy for every place that cuts or merges ranges: memblock memory minus reserved, a memory map clipped to a
zone, the pages a reservation covers. Empty and reversed pairs count as nothing. ``merge`` sorts and coalesces
(touching intervals too, as memblock does); the other functions keep their input's order and overlaps and do
not merge, so that callers that count pieces see the pieces.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

Interval = tuple[int, int]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint and non-touching: overlapping or touching intervals become one."""
    out: list[Interval] = []
    for s, e in sorted(intervals):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def clip(intervals: Iterable[Interval], lo: int, hi: int | None = None) -> list[Interval]:
    """The non-empty parts of each interval inside ``[lo, hi)`` (``hi`` None = unbounded)."""
    out = []
    for s, e in intervals:
        a, z = max(s, lo), e if hi is None else min(e, hi)
        if a < z:
            out.append((a, z))
    return out


def subtract(intervals: Iterable[Interval], cuts: Iterable[Interval]) -> list[Interval]:
    """What is left of each interval once every cut is taken out (in the intervals' order).

    Each interval looks only at the cuts that reach into it (bisect on the merged cuts): O((n + m) log m),
    not n * m, so thousands of regions against thousands of reservations stay fast."""
    cuts = merge(cuts)
    return subtract_merged(intervals, cuts, [b for _, b in cuts])


def subtract_merged(intervals: Iterable[Interval], cuts: list, ends: list) -> list[Interval]:
    """:func:`subtract` with ``cuts`` already merged (:class:`MergedSet` keeps them so) and ``ends`` their ends."""
    out = []
    for s, e in intervals:
        cur = s
        i = bisect_right(ends, cur)  # the first cut that ends after cur
        while cur < e and i < len(cuts) and cuts[i][0] < e:
            a, b = cuts[i]
            if a > cur:
                out.append((cur, a))
            cur = max(cur, b)
            i += 1
        if cur < e:
            out.append((cur, e))
    return out


def intersect(intervals: Iterable[Interval], other: Iterable[Interval]) -> list[Interval]:
    """The points in both, merged (a sweep over both merged lists: linear after sorting)."""
    xs, ys = merge(intervals), merge(other)
    out, i, j = [], 0, 0
    while i < len(xs) and j < len(ys):
        a, z = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if a < z:
            out.append((a, z))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return merge(out)


class MergedSet:
    """A set of points kept as merged intervals, with O(log n) lookups per insertion (bisect; the list
    splice is one C call): for allocators that reserve and query in turn (memblock's top-down placement)
    without re-merging everything after each reservation."""

    def __init__(self):
        self.cuts: list[Interval] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, s: int, e: int) -> None:
        if e <= s:
            return
        i = bisect_left(self.ends, s)     # the first interval that ends at or after s (touching merges)
        j = bisect_right(self.starts, e)  # past the last interval that starts at or before e
        if i < j:
            s, e = min(s, self.starts[i]), max(e, self.ends[j - 1])
        self.cuts[i:j] = [(s, e)]
        self.starts[i:j] = [s]
        self.ends[i:j] = [e]

    def subtract_from(self, intervals: Iterable[Interval]) -> list[Interval]:
        return subtract_merged(intervals, self.cuts, self.ends)


def split_at(intervals: Iterable[Interval], points: Iterable[int]) -> list[Interval]:
    """Each interval cut at every point strictly inside it (in the intervals' order)."""
    points = sorted(set(points))
    out = []
    for s, e in intervals:
        cuts = [s, *points[bisect_right(points, s):bisect_left(points, e)], e]
        out += [(a, z) for a, z in zip(cuts, cuts[1:]) if a < z]
    return out


def length(intervals: Iterable[Interval]) -> int:
    """Total length (overlaps counted as often as they occur; ``merge`` first to count each point once)."""
    return sum(e - s for s, e in intervals if e > s)

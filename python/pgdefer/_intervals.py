"""Arithmetic on half-open intervals ``[start, end)`` given as ``(start, end)`` pairs of ints.

One copy for every place that cuts or merges ranges: memblock memory minus reserved, a memory map clipped to a
zone, the pages a reservation covers. Empty and reversed pairs count as nothing. ``merge`` sorts and coalesces
(touching intervals too, as memblock does); the other functions keep their input's order and overlaps and do
not merge, so that callers that count pieces see the pieces.
"""

from __future__ import annotations

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
    """What is left of each interval once every cut is taken out (in the intervals' order)."""
    cuts = merge(cuts)
    out = []
    for s, e in intervals:
        cur = s
        for a, b in cuts:
            if b <= cur or a >= e:
                continue
            if a > cur:
                out.append((cur, a))
            cur = max(cur, b)
            if cur >= e:
                break
        if cur < e:
            out.append((cur, e))
    return out


def intersect(intervals: Iterable[Interval], other: Iterable[Interval]) -> list[Interval]:
    """The points in both, merged."""
    intervals = list(intervals)
    out = []
    for a, b in merge(other):
        out += clip(intervals, a, b)
    return merge(out)


def split_at(intervals: Iterable[Interval], points: Iterable[int]) -> list[Interval]:
    """Each interval cut at every point strictly inside it (in the intervals' order)."""
    points = sorted(set(points))
    out = []
    for s, e in intervals:
        cuts = [s, *(p for p in points if s < p < e), e]
        out += [(a, z) for a, z in zip(cuts, cuts[1:]) if a < z]
    return out


def length(intervals: Iterable[Interval]) -> int:
    """Total length (overlaps counted as often as they occur; ``merge`` first to count each point once)."""
    return sum(e - s for s, e in intervals if e > s)

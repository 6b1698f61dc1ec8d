"""The x86_64 placement rules every source of a memory map shares.

A boot log prints the size of most early allocations but not where they went; /proc and the presets print
neither. The kernel puts them where memblock's top-down allocator finds room, so every source that builds a
:class:`~pgdefer.Topology` places them with the same rules, kept here once: memblock's top-down allocator
(:class:`MemblockPlacer`, ``memblock_find_in_range_node``), sparse_init's per-node memmap buffer
(:func:`place_memmaps`), the ``crashkernel=`` syntax (:func:`crashkernel_request`, ``parse_crashkernel``),
the fixed low-memory reservations (:func:`reserve_low_memory`) and the mapping of per-node ZONE_MOVABLE
starts onto the model's single Normal limit (:func:`movable_normal_limit`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._intervals import MergedSet
from ..config import Geometry, parse_size
from ..topology import DEFAULT_ZONE_LIMITS

__all__ = ["KiB", "MiB", "GiB", "STRUCT_PAGE_SIZE", "X86_64_PHYSICAL_START", "X86_64_MAX_DMA_ADDRESS",
           "X86_64_OLD_PAGE_OFFSET", "X86_64_DMA_END", "X86_64_DMA32_END", "SWIOTLB_DEFAULT_SIZE", "SWIOTLB_SLAB",
           "Reservation", "MemblockPlacer", "node_memmap_sections", "place_memmaps", "crashkernel_request",
           "reserve_low_memory", "movable_normal_limit", "X86_64_DMA_ZONES", "clamped_zone_limit"]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

#: sizeof(struct page) on x86_64 (spec section 1.1).
STRUCT_PAGE_SIZE = 64
#: CONFIG_PHYSICAL_START default on x86_64: where the kernel image is loaded without KASLR.
X86_64_PHYSICAL_START = 16 * MiB
#: MAX_DMA_ADDRESS on x86_64: the lowest address memblock_alloc() hands out by default.
X86_64_MAX_DMA_ADDRESS = 16 * MiB
#: x86_64 direct-map base before KASLR of the memory layout (CONFIG_RANDOMIZE_MEMORY, v4.8).
X86_64_OLD_PAGE_OFFSET = 0xFFFF880000000000
#: The zones x86_64 bounds by address, with their architectural ends (MAX_DMA_PFN, MAX_DMA32_PFN in bytes): the
#: core's default zone limits, which are x86_64's.
X86_64_DMA_END, X86_64_DMA32_END = DEFAULT_ZONE_LIMITS["DMA"], DEFAULT_ZONE_LIMITS["DMA32"]
X86_64_DMA_ZONES = (("DMA", X86_64_DMA_END), ("DMA32", X86_64_DMA32_END))
#: Default software IO TLB size (IO_TLB_DEFAULT_SIZE) and slab size (1 << IO_TLB_SHIFT).
SWIOTLB_DEFAULT_SIZE, SWIOTLB_SLAB = 64 * MiB, 2 * KiB


@dataclass
class Reservation:
    """A memblock.reserved range the topology carries, and how it was placed.

    ``how`` is ``"log"`` (address printed by the kernel), ``"rule"`` (a fixed kernel address or rule, e.g. the
    first 1 MiB, the kernel image at 16 MiB) or ``"top-down"`` (size from the log, position found the way
    memblock's top-down allocator would have found it).
    """

    label: str
    start: int
    end: int
    how: str
    detail: str = ""

    @property
    def size(self) -> int:
        return self.end - self.start



def movable_normal_limit(node_spans: dict, movable_start: dict):
    """The model's single Normal limit (bytes) equivalent to the kernel's per-node ZONE_MOVABLE starts.

    The kernel gives each node its own ``zone_movable_pfn``: ZONE_MOVABLE of node N is
    ``[movable_start[N], node_end)``. The model has one global Normal limit L (memory above L is Movable),
    which reproduces the kernel's zones exactly iff: every node without a movable start lies below L,
    every node whose movable start is at/below its start lies above L, and every node whose movable start
    falls inside it has L equal to that start. Returns L, or raises ValueError naming the conflict.
    ``node_spans``: node -> (start, end) bytes; ``movable_start``: node -> start address in bytes.
    """
    lo, lo_why = 0, None
    hi, hi_why = None, None
    exact = {}
    for n, (s, e) in sorted(node_spans.items()):
        ms = movable_start.get(n)
        if ms is None or ms >= e:
            if e > lo:
                lo, lo_why = e, f"node {n} has no Movable zone and ends at {e:#x}"
        elif ms <= s:
            if hi is None or s < hi:
                hi, hi_why = s, f"node {n} is all Movable from its start {s:#x}"
        else:
            exact[n] = ms
    values = sorted(set(exact.values()))
    if len(values) > 1:
        desc = ", ".join(f"node {n} at {v:#x}" for n, v in sorted(exact.items()))
        raise ValueError(f"the Movable zone starts inside several nodes at different addresses ({desc}); "
                         "pgdefer models one global Normal/Movable boundary")
    if values:
        limit = values[0]
        if limit < lo:
            raise ValueError(f"Movable start {limit:#x} is below the end of a node without Movable memory ({lo_why})")
        if hi is not None and limit > hi:
            raise ValueError(f"Movable start {limit:#x} is above the start of an all-Movable node ({hi_why})")
        return limit
    if hi is not None and lo > hi:
        raise ValueError(f"no single Normal/Movable boundary fits: {lo_why}, but {hi_why}")
    return hi if hi is not None else lo


def clamped_zone_limit(end: int, memory_end: int, arch: int, prev: int, block: int) -> int | None:
    """The model's limit for a DMA/DMA32 zone the kernel clamped to max_pfn, or None if it was not clamped.

    A zone that ends where memory ends was cut there by the kernel (zone_sizes_init clamps each zone to
    max_pfn); the model uses the architectural limit ``arch`` (16 MiB, 4 GiB) instead, rounded to a MAX_ORDER
    ``block`` and not below the previous zone's limit ``prev``, which gives the same zones because no memory lies
    above. A zone that ends before memory does ends at its own (printed) end."""
    if end < memory_end:
        return None
    return max(arch, -(-end // block) * block, prev)


# ------------------------------------------------------------------------------------------------------
# a small memblock: where the kernel's top-down allocations land
# ------------------------------------------------------------------------------------------------------

class MemblockPlacer:
    """memblock.memory + memblock.reserved with the top-down allocator's placement rule.

    ``alloc(size, align, node, lo, hi)`` returns the address ``memblock_find_in_range_node`` would pick:
    walk the free ranges (memory minus reserved) of the node from the top, clipped to ``[lo, hi)``, and take
    the first ``round_down(end - size, align)`` that still lies inside the range. Used to place memmaps,
    per-cpu areas and other early allocations whose size a boot log prints but whose address it does not.
    """

    def __init__(self, memory):
        merged: list[tuple[int, int, int]] = []
        for s, e, n in sorted((int(s), int(e), int(n)) for s, e, n in memory):
            if merged and merged[-1][1] == s and merged[-1][2] == n:  # memblock_add merges touching regions
                merged[-1] = (merged[-1][0], e, n)
            else:
                merged.append((s, e, n))
        self.memory = merged
        self._by_node: dict = {None: [(s, e) for s, e, _ in merged]}  # per node, once (no nodes x regions)
        for s, e, n in merged:
            self._by_node.setdefault(n, []).append((s, e))
        self.reservations: list[Reservation] = []
        self._res = MergedSet()  # memblock.reserved, merged as it grows: each find costs log(reservations)

    def reserve(self, label, start, end, how, detail=""):
        if end <= start:
            return None
        r = Reservation(label, int(start), int(end), how, detail)
        self.reservations.append(r)
        self._res.add(r.start, r.end)
        return r

    def free_ranges(self, node=None):
        """Free byte ranges (memory minus reserved), ascending."""
        return self._res.subtract_from(self._by_node.get(node, ()))

    def find(self, size, align=4096, node=None, lo=0, hi=None):
        for s, e in reversed(self.free_ranges(node)):
            s, e = max(s, lo), e if hi is None else min(e, hi)
            if e - s < size:
                continue
            cand = (e - size) // align * align
            if cand >= s:
                return cand
        return None

    def alloc(self, label, size, align=4096, node=None, lo=0, hi=None, detail=""):
        at = self.find(size, align, node, lo, hi)
        if at is None:
            return None
        return self.reserve(label, at, at + size, "top-down", detail)


def node_memmap_sections(memory_pfn_ranges, pages_per_section) -> dict:
    """node -> number of present sections whose memmap the node allocates.

    A section is present if it holds a memory pfn; a section shared by two nodes is counted once, for the
    node of its lowest memory pfn (sparse_init allocates each section's memmap once, on that node).
    """
    out: dict[int, int] = {}
    last = -1  # the highest section counted so far; ranges ascend and do not overlap (one pass, no per-section walk)
    for s, e, n in sorted(memory_pfn_ranges):
        first, end = max(s // pages_per_section, last + 1), (e - 1) // pages_per_section
        if first <= end:
            out[n] = out.get(n, 0) + end - first + 1
            last = end
    return dict(sorted(out.items()))


def place_memmaps(placer: MemblockPlacer, memory_pfn_ranges, geometry: Geometry, notes: list):
    """Reserve each node's memmap (64 B per pfn of its present sections) top-down at the end of the node.

    This is sparse_init's per-node buffer (``sparse_buffer_init``: one block of ``map_count * section memmap
    size``, aligned to the section memmap size (2 MiB on x86_64), from ``MAX_DMA_ADDRESS`` up, on the node). If
    no free range of the node can hold the block, sections are placed one by one (the kernel's fallback).
    """
    pps = geometry.pages_per_section
    per_section = pps * STRUCT_PAGE_SIZE
    for node, nsec in node_memmap_sections(memory_pfn_ranges, pps).items():
        size = nsec * per_section
        detail = f"{nsec} present section(s) x {pps} pages x {STRUCT_PAGE_SIZE} B"
        r = placer.alloc(f"memmap node {node}", size, per_section, node=node, lo=X86_64_MAX_DMA_ADDRESS,
                         detail=detail)
        if r is None:
            r = placer.alloc(f"memmap node {node}", size, per_section, node=node, detail=detail)
        if r is not None:
            continue
        placed = 0
        for _ in range(nsec):
            if placer.alloc(f"memmap node {node}", per_section, per_section, node=node,
                            detail="one section (the node has no free range for the whole memmap)") is None:
                break
            placed += 1
        notes.append(f"memmap of node {node}: no free range holds all {nsec} sections' memmap; placed "
                     f"{placed} section-sized block(s) separately" + ("" if placed == nsec else
                                                                       f", {nsec - placed} did not fit"))


def reserve_low_memory(placer: MemblockPlacer, version: tuple):
    """Reserve the low memory x86 setup_arch keeps from the allocator: since 5.13 the first 1 MiB
    ("x86/setup: always reserve the first 1M of RAM"), before that [0, 64K) (CONFIG_X86_RESERVE_LOW).
    ``version`` is (major, minor[, patch]); returns the :class:`Reservation`."""
    if tuple(version[:2]) >= (5, 13):
        return placer.reserve("first 1 MiB", 0, 1 * MiB, "rule", "x86 >= 5.13 reserves [0, 1M)")
    return placer.reserve("low 64 KiB", 0, 64 * KiB, "rule", "CONFIG_X86_RESERVE_LOW")


# ------------------------------------------------------------------------------------------------------
# crashkernel= on the command line
# ------------------------------------------------------------------------------------------------------

def _parse_size(s):
    return parse_size(s, "crashkernel size")


def crashkernel_request(value: str, system_ram: int):
    """(size, offset or None, high) from a ``crashkernel=`` value, evaluated for ``system_ram`` bytes.

    Forms: ``size[@offset]``, ``size,high``, ``size,low``, ``start-[end]:size[,start-[end]:size...][@offset]``
    (a range matches when ``start <= system_ram < end``). Returns None if no range matches.
    """
    v = value.strip()
    high = False
    if v.endswith(",high"):
        v, high = v[:-5], True
    elif v.endswith(",low"):
        v = v[:-4]
    offset = None
    if "@" in v:
        v, off = v.rsplit("@", 1)
        offset = _parse_size(off)
    if ":" in v:
        size = None
        for item in v.split(","):
            rng, sz = item.split(":", 1)
            a, _, z = rng.partition("-")
            start = _parse_size(a)
            end = _parse_size(z) if z else None
            if system_ram >= start and (end is None or system_ram < end):
                size = _parse_size(sz)
                break
        if size is None:
            return None
    else:
        size = _parse_size(v)
    return size, offset, high


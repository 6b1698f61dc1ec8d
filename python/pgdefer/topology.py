"""Machine memory maps: memblock memory and reserved ranges, NUMA nodes, zone limits.

A :class:`Topology` is plain, validated data (byte ranges, half-open). It computes node and zone sizes
the way ``free_area_init`` does (spec section 2.2) without building a page array, so it is cheap even
for multi-terabyte machines. Builders that read files, boot logs or this host live in other modules.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import _core
from ._intervals import clip, intersect, length, merge
from .config import ZONE_NAMES, Geometry, format_size, parse_size
from .errors import CrossNodeBlockWarning, InvalidType, TopologyError

_LIMITED_ZONES = ZONE_NAMES[:-1]  # zones that end at a zone_limits address; Movable lies above Normal's

MAX_NUMNODES = _core.MAX_NUMNODES
MAX_PHYSMEM_BITS = _core.MAX_PHYSMEM_BITS  # x86-64 with 5-level paging, arm64 with 52-bit PA
#: Largest address a range may end at: memblock's phys_addr_t is 64 bits (an inclusive end of ~0 made
#: half-open is 2^64). Memory must also end below 2^MAX_PHYSMEM_BITS (checked by Topology).
ADDRESS_LIMIT = 1 << 64
#: Most memory (or reserved) ranges a Topology takes. Real machines have tens to hundreds (memblock starts
#: with INIT_MEMBLOCK_REGIONS = 128); the bound keeps every builder and report within seconds.
MAX_REGIONS = 10_000


@dataclass(frozen=True, order=True)
class Region:
    """A byte range ``[start, end)``; for memory regions, ``node`` is the NUMA node id."""

    start: int
    end: int
    node: int = 0

    def __init__(self, start: int | str, end: int | str, node: int = 0) -> None:
        try:
            s, e = parse_size(start, "region start"), parse_size(end, "region end")
        except ValueError as err:
            raise TopologyError(str(err)) from None
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < MAX_NUMNODES:
            raise TopologyError(f"region [{s:#x}, {e:#x}): node must be an int in 0..{MAX_NUMNODES - 1}, got {node!r}")
        if e <= s:
            raise TopologyError(f"region [{s:#x}, {e:#x}) is empty or reversed: its end must be above its start")
        if e > ADDRESS_LIMIT:
            raise TopologyError(f"region [{s:#x}, {e:#x}) ends beyond the 64-bit address space")
        object.__setattr__(self, "start", s)
        object.__setattr__(self, "end", e)
        object.__setattr__(self, "node", node)

    @property
    def size(self) -> int:
        """Bytes in the region."""
        return self.end - self.start

    def __repr__(self) -> str:
        return f"Region({self.start:#x}, {self.end:#x}, node={self.node})"


@dataclass(frozen=True)
class ZoneSpan:
    """One zone of one node as free_area_init sizes it (pfns, half-open)."""

    node: int
    name: str
    start_pfn: int
    spanned: int
    present: int

    @property
    def end_pfn(self) -> int:
        """First pfn after the zone's span."""
        return self.start_pfn + self.spanned


#: Zone name -> end address where ``zone_limits`` is not given (x86_64: DMA below 16 MiB, DMA32 below 4 GiB): the
#: core's ``ZoneLimits::default``.
DEFAULT_ZONE_LIMITS = dict(_core.DEFAULT_ZONE_LIMITS)

#: The figures of a ``Memory: X/Y available (... R reserved, C cma-reserved)`` line a KernelInfo keeps (KiB).
MEMORY_LINE_KEYS = ("available_kib", "total_kib", "reserved_kib", "cma_reserved_kib")


@dataclass(frozen=True)
class KernelInfo:
    """What the kernel that booted a machine showed in its boot log: the ``kernel`` part of a Topology.

    Kept with the memory map (a topology file's ``[kernel]`` table) so that ``policy="auto"`` gives a file
    imported from a log the same answer as the log (:func:`pgdefer.generations.resolve`), and so that the
    5.8+ passes run with the kernel's thread count (padata's ``max_threads`` = the node's CPUs).

    ``version``: the ``Linux version`` release string (``"5.14.0-570.23.1.el9_6.x86_64"``). ``node_cpus``: CPUs
    per node with memory (node -> count; empty when the log does not show them). ``deferred_init_lines``:
    whether the log prints a per-node ``deferred pages initialised`` line (None: not known). ``memory_line``:
    the ``Memory:`` line's figures in KiB (:data:`MEMORY_LINE_KEYS`), None when the log prints none.
    """

    version: str | None = None
    node_cpus: dict[int, int] = field(default_factory=dict)
    deferred_init_lines: bool | None = None
    memory_line: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.version is not None and not isinstance(self.version, str):
            raise TopologyError(f"kernel.version must be a string, got {self.version!r}")
        if not hasattr(self.node_cpus, "items"):
            raise TopologyError(f"kernel.node_cpus must map node ids to CPU counts, got {self.node_cpus!r}")
        cpus = {}
        for nid, n in self.node_cpus.items():
            nid, n = _count(nid, "kernel.node_cpus node"), _count(n, "kernel.node_cpus CPUs")
            if nid >= MAX_NUMNODES or n > _core.MAX_CPUS:
                raise TopologyError(f"kernel.node_cpus: node {nid} with {n} CPUs is out of range (nodes "
                                    f"0..{MAX_NUMNODES - 1}, 0..{_core.MAX_CPUS} CPUs)")
            cpus[nid] = n
        object.__setattr__(self, "node_cpus", dict(sorted(cpus.items())))
        if self.deferred_init_lines is not None and not isinstance(self.deferred_init_lines, bool):
            raise TopologyError(f"kernel.deferred_init_lines must be true or false, got {self.deferred_init_lines!r}")
        if self.memory_line is not None:
            if not hasattr(self.memory_line, "items") or set(self.memory_line) - set(MEMORY_LINE_KEYS):
                raise TopologyError(f"kernel.memory_line takes the KiB figures {', '.join(MEMORY_LINE_KEYS)}, "
                                    f"got {self.memory_line!r}")
            line = {k: _count(v, f"kernel.memory_line.{k}") for k, v in self.memory_line.items()}
            object.__setattr__(self, "memory_line", {k: line[k] for k in MEMORY_LINE_KEYS if k in line})

    def to_dict(self) -> dict:
        """Plain data (a topology file's ``[kernel]`` table; node ids as strings, as TOML and JSON keys are)."""
        d: dict[str, Any] = {}
        if self.version is not None:
            d["version"] = self.version
        if self.node_cpus:
            d["node_cpus"] = {str(n): c for n, c in self.node_cpus.items()}
        if self.deferred_init_lines is not None:
            d["deferred_init_lines"] = self.deferred_init_lines
        if self.memory_line is not None:
            d["memory_line"] = dict(self.memory_line)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> KernelInfo:
        """Read :meth:`to_dict`'s data back (TopologyError naming a bad key or value)."""
        if not hasattr(d, "items"):
            raise TopologyError(f"kernel must be a table, got {d!r}")
        unknown = sorted(set(d) - {"version", "node_cpus", "deferred_init_lines", "memory_line"})
        if unknown:
            raise TopologyError(f"kernel: unknown key(s) {unknown}; allowed: deferred_init_lines, memory_line, "
                                "node_cpus, version")
        cpus = d.get("node_cpus", {})
        if not hasattr(cpus, "items"):
            raise TopologyError(f"kernel.node_cpus must map node ids to CPU counts, got {cpus!r}")
        return cls(version=d.get("version"), node_cpus={_count(n, "kernel.node_cpus node", text=True): c
                                                        for n, c in cpus.items()},
                   deferred_init_lines=d.get("deferred_init_lines"), memory_line=d.get("memory_line"))


def _count(v, what: str, text: bool = False) -> int:
    """A non-negative int (``text``: also its decimal spelling, as TOML/JSON keys hold node ids)."""
    if text and isinstance(v, str) and v.isdigit() and len(v) < 8:
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v >> 64:
        raise TopologyError(f"{what} must be a non-negative integer, got {v!r}")
    return v


def _as_region(r, what):
    if isinstance(r, Region):
        return r
    if isinstance(r, dict):
        missing = [k for k in ("start", "end") if k not in r]
        if missing:
            raise TopologyError(f"{what}: region {r!r} has no {' or '.join(missing)}")
        return Region(r["start"], r["end"], r.get("node", 0))
    if isinstance(r, (tuple, list)) and len(r) in (2, 3):
        return Region(*r)
    raise TopologyError(f"{what}: expected a Region, a (start, end[, node]) tuple or a dict, got {r!r}")


def _ranges(value, what):
    """``memory`` / ``reserved`` must be an iterable of ranges (not None, an int or a single string)."""
    if isinstance(value, (str, bytes, dict, Region)) or not hasattr(value, "__iter__"):
        raise InvalidType(f"{what} must be a list of regions ((start, end[, node]) tuples, dicts or Regions), "
                          f"got {value!r}")
    value = list(value)
    if len(value) > MAX_REGIONS:
        raise TopologyError(f"{len(value)} {what} regions; a topology takes at most {MAX_REGIONS}")
    return value


class Topology:
    """memblock.memory (with node ids), memblock.reserved, zone limits and a :class:`Geometry`.

    Memory regions must not overlap (``TopologyError`` names both in hex); touching regions of one node are
    merged, as ``memblock_add`` does. Reserved ranges may overlap each other and may cover no memory at all:
    such bytes are accepted and ignored, as memblock does. ``zone_limits`` gives the end address of DMA, DMA32
    and (optionally) Normal; with a Normal limit, memory above it is ZONE_MOVABLE.

    Two nodes whose memory meets inside one MAX_ORDER block (or pageblock) are a kernel hazard (docs/model.md,
    "Nodes that share a block"): a ``CrossNodeBlockWarning`` names the nodes and pfns; with ``strict=True``
    such a map is a ``TopologyError``.

    ``kernel``: what the kernel that booted the machine showed (:class:`KernelInfo`: version, CPUs per node),
    when the topology comes from a boot log; None otherwise.
    """

    def __init__(self, memory: Iterable[Region | tuple[int | str, ...] | dict[str, Any]],
                 reserved: Iterable[Region | tuple[int | str, ...] | dict[str, Any]] = (),
                 zone_limits: dict[str, int | str | None] | None = None, geometry: Geometry | None = None,
                 name: str | None = None, notes: Iterable[str] = (), strict: bool = False,
                 kernel: KernelInfo | None = None) -> None:
        self.geometry = geometry if geometry is not None else Geometry()
        if not isinstance(self.geometry, Geometry):
            raise TopologyError(f"geometry must be a pgdefer.Geometry, got {self.geometry!r}")
        mem = sorted((_as_region(r, "memory") for r in _ranges(memory, "memory")), key=lambda r: (r.start, r.end))
        if not mem:
            raise TopologyError("a topology needs at least one memory region")
        for a, b in zip(mem, mem[1:]):
            if b.start < a.end:
                raise TopologyError(
                    f"memory regions overlap: [{a.start:#x}, {a.end:#x}) node {a.node} and "
                    f"[{b.start:#x}, {b.end:#x}) node {b.node}")
        merged: list[Region] = []
        for r in mem:
            if merged and merged[-1].end == r.start and merged[-1].node == r.node:
                merged[-1] = Region(merged[-1].start, r.end, r.node)
            else:
                merged.append(r)
        self.memory: tuple[Region, ...] = tuple(merged)
        # validated one by one, then merged as memblock does
        res = [_as_region(r, "reserved") for r in _ranges(reserved, "reserved")]
        self.reserved: tuple[Region, ...] = tuple(Region(s, e) for s, e in merge((r.start, r.end) for r in res))
        self.zone_limits = self._normalise_zone_limits(zone_limits)
        self.name = name
        self.notes = tuple(notes)
        g = self.geometry
        self.kernel = self._check_kernel(kernel)
        if not any(g.pfn_up(r.start) < g.pfn_down(r.end) for r in self.memory):
            raise TopologyError("no memory region contains a whole page")
        top = max(r.end for r in self.memory)
        if top > 1 << MAX_PHYSMEM_BITS:
            raise TopologyError(f"memory ends at {top:#x}, beyond the {MAX_PHYSMEM_BITS}-bit physical address space")
        shared = self.cross_node_blocks()
        if shared:
            more = f" (and {len(shared) - 1} more such block(s))" if len(shared) > 1 else ""
            msg = (f"{shared[0]}{more}: the buddy allocator of one node then meets the other node's struct pages "
                   "as buddies, uninitialised while deferred (see docs/model.md, 'Nodes that share a block')")
            if strict:
                raise TopologyError(msg)
            warnings.warn(msg, CrossNodeBlockWarning, stacklevel=2)

    def _check_kernel(self, kernel):
        if kernel is None:
            return None
        if not isinstance(kernel, KernelInfo):
            raise InvalidType(f"kernel must be a pgdefer.KernelInfo or None, got {kernel!r}")
        stray = sorted(set(kernel.node_cpus) - set(self.nodes))
        if stray:
            raise TopologyError(f"kernel.node_cpus: node(s) {stray} have no memory in this topology "
                                f"(nodes: {self.nodes})")
        return kernel

    def cross_node_blocks(self) -> list[str]:
        """One sentence per MAX_ORDER block that holds memory pfns of two nodes, naming the nodes, where each
        one's memory in it starts and ends, and whether they also share a pageblock. Linear in the regions:
        only the first and last block of a region can hold another node's pfns."""
        g = self.geometry
        edges: dict[int, dict[int, list[int]]] = {}  # block -> node -> [first pfn, last pfn] in the block
        for s, e, nid in self.memory_pfn_ranges():
            for blk in {s >> g.max_order, (e - 1) >> g.max_order}:
                lo, hi = max(s, blk << g.max_order), min(e, (blk + 1) << g.max_order) - 1
                span = edges.setdefault(blk, {}).setdefault(nid, [lo, hi])
                span[0], span[1] = min(span[0], lo), max(span[1], hi)
        out = []
        for blk in sorted(edges):
            nodes = edges[blk]
            if len(nodes) < 2:
                continue
            by_pfn = sorted(nodes.items(), key=lambda x: x[1])
            parts = [f"node {n} pfns [{lo:#x}, {hi + 1:#x})" for n, (lo, hi) in by_pfn]
            pageblocks = {}
            for n, (lo, hi) in nodes.items():
                for pb in range(lo >> g.pageblock_order, (hi >> g.pageblock_order) + 1):
                    pageblocks.setdefault(pb, set()).add(n)
            pb_shared = [pb for pb, ns in pageblocks.items() if len(ns) > 1]
            pb_text = (f", and the pageblock at pfn {min(pb_shared) << g.pageblock_order:#x}" if pb_shared else "")
            start = blk << g.max_order
            out.append(f"nodes {', '.join(str(n) for n in sorted(nodes))} share the MAX_ORDER block "
                       f"[{start:#x}, {start + (1 << g.max_order):#x}){pb_text}: {' and '.join(parts)}")
        return out

    def _normalise_zone_limits(self, zone_limits):
        if zone_limits is not None and not hasattr(zone_limits, "items"):
            raise InvalidType(f"zone_limits must map zone names to end addresses, got {zone_limits!r}")
        given = dict(DEFAULT_ZONE_LIMITS if zone_limits is None else zone_limits)
        unknown = set(given) - set(_LIMITED_ZONES)
        if unknown:
            raise TopologyError(
                f"unknown zone limit(s) {sorted(unknown)}: zone_limits takes the end addresses of DMA, DMA32 and"
                " optionally Normal (memory above a Normal limit is Movable)")
        limits = {}
        prev, prev_name = 0, None
        block = self.geometry.page_size << self.geometry.max_order
        for name in _LIMITED_ZONES:
            if name not in given or given[name] is None:
                continue
            try:
                lim = parse_size(given[name], f"zone limit {name}")
            except ValueError as e:
                raise TopologyError(str(e)) from None
            if lim > 1 << MAX_PHYSMEM_BITS:
                raise TopologyError(f"zone limit {name} = {lim:#x} is beyond the {MAX_PHYSMEM_BITS}-bit physical "
                                    "address space")
            if lim < prev:
                raise TopologyError(
                    f"zone limits out of order: {name} ends at {lim:#x}, below {prev_name} which ends at {prev:#x}")
            if lim % block:
                raise TopologyError(
                    f"zone limit {name} = {lim:#x} is not a multiple of the MAX_ORDER block size {block:#x}")
            limits[name] = lim
            prev, prev_name = lim, name
        return limits

    # -- sizing (free_area_init) -------------------------------------------------------------

    def zone_pfn_ranges(self) -> dict[str, tuple[int, int | None]]:
        """Global pfn range of each zone that can exist, in zone order (end None = unbounded)."""
        g = self.geometry
        out, prev = {}, 0
        for name in _LIMITED_ZONES:
            lim = self.zone_limits.get(name)
            if lim is None:
                if name == "Normal":
                    out[name] = (prev, None)
                    return out
                end = prev
            else:
                end = g.pfn_down(lim)
            out[name] = (prev, end)
            prev = end
        out["Movable"] = (prev, None)
        return out

    def _pfn_ranges_by_node(self) -> dict:
        """{None: every (start_pfn, end_pfn, node), node: that node's}, computed once per memory map and
        geometry, so per-node questions cost the node's regions, not all of them (no nodes x regions loops)."""
        key = (self.memory, self.geometry)
        cache = self.__dict__.get("_pfn_cache")
        if cache is None or cache[0] is not key[0] or cache[1] is not key[1]:
            g = self.geometry
            ranges = [(g.pfn_up(r.start), g.pfn_down(r.end), r.node) for r in self.memory]
            by_node: dict = {None: [r for r in ranges if r[0] < r[1]]}
            for r in by_node[None]:
                by_node.setdefault(r[2], []).append(r)
            cache = (self.memory, self.geometry, by_node)
            self.__dict__["_pfn_cache"] = cache
        return cache[2]

    def memory_pfn_ranges(self, node=None) -> list[tuple[int, int, int]]:
        """(start_pfn, end_pfn, node) of each memory region with at least one whole page."""
        return list(self._pfn_ranges_by_node().get(node, ()))

    @property
    def nodes(self) -> list[int]:
        """Ids of the nodes that have memory (N_MEMORY), ascending."""
        return sorted(n for n in self._pfn_ranges_by_node() if n is not None)

    def node_span(self, node: int) -> tuple[int, int]:
        """(node_start_pfn, node_end_pfn)."""
        rs = self._pfn_ranges_by_node().get(node) if node is not None else None
        if not rs:
            raise TopologyError(f"node {node} has no memory")
        return rs[0][0], max(e for _, e, _ in rs)

    def zones(self, node=None) -> list[ZoneSpan]:
        """Every zone with spanned pages, per node (ascending) and zone index."""
        out = []
        for nid in ([node] if node is not None else self.nodes):
            ns, ne = self.node_span(nid)
            ranges = self.memory_pfn_ranges(nid)
            for name, (zs, ze) in self.zone_pfn_ranges().items():
                s, e = max(zs, ns), ne if ze is None else min(ze, ne)
                if s >= e:
                    continue
                present = length(clip([(rs, re) for rs, re, _ in ranges], s, e))
                out.append(ZoneSpan(nid, name, s, e - s, present))
        return out

    @property
    def present_pages(self) -> int:
        """Pages of memory (pfns inside memblock.memory), over all nodes."""
        return sum(e - s for s, e, _ in self.memory_pfn_ranges())

    @property
    def reserved_pages(self) -> int:
        """Memory pfns covered (even partly) by a reserved range: the pages the model marks PG_reserved
        (memmap_init_reserved_pages rounds each range out to whole pages)."""
        g = self.geometry
        reserved = merge((g.pfn_down(r.start), g.pfn_up(r.end)) for r in self.reserved)
        return length(intersect([(s, e) for s, e, _ in self.memory_pfn_ranges()], reserved))

    @property
    def memory_bytes(self) -> int:
        """Bytes of memblock.memory, over all nodes."""
        return sum(r.size for r in self.memory)

    @property
    def memmap_pages(self) -> int:
        """Pages that have a struct page: every pfn of every present sparsemem section."""
        pps = self.geometry.pages_per_section
        count, last = 0, -1  # ranges ascend and do not overlap: count each section once, in one pass
        for s, e, _ in self.memory_pfn_ranges():
            first, end = max(s // pps, last + 1), (e - 1) // pps
            if first <= end:
                count += end - first + 1
                last = end
        return count * pps

    # -- plain data --------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The topology as plain data (the layout of topology files; :meth:`from_dict` reads it back)."""
        d = {
            "geometry": self.geometry.to_dict(),
            "zone_limits": {k: format_size(v) for k, v in self.zone_limits.items()},
            "memory": [{"start": hex(r.start), "end": hex(r.end), "node": r.node} for r in self.memory],
            "reserved": [{"start": hex(r.start), "end": hex(r.end)} for r in self.reserved],
        }
        if self.name:
            d["name"] = self.name
        if self.notes:
            d["notes"] = list(self.notes)
        if self.kernel is not None:
            d["kernel"] = self.kernel.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Topology:
        """Build a topology from :meth:`to_dict`'s plain data (TopologyError naming what is wrong)."""
        try:
            g = Geometry(**d.get("geometry", {}))
            kernel = KernelInfo.from_dict(d["kernel"]) if "kernel" in d else None
            return cls(memory=d["memory"], reserved=d.get("reserved", ()), zone_limits=d.get("zone_limits"),
                       geometry=g, name=d.get("name"), notes=d.get("notes", ()), kernel=kernel)
        except KeyError as e:
            raise TopologyError(f"topology is missing the {e.args[0]!r} key") from None
        except TypeError as e:
            raise TopologyError(f"malformed topology: {e}") from None

    def __eq__(self, other):
        return isinstance(other, Topology) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        nodes = self.nodes
        label = f"{self.name!r}, " if self.name else ""
        return (f"<Topology {label}{format_size(self.memory_bytes)} in {len(self.memory)} region(s),"
                f" {len(nodes)} node(s) {nodes}, {len(self.reserved)} reserved range(s), {self.geometry!r}>")

    # -- entry points to the sources (pgdefer.sources; imported lazily: sources import topology) --

    #: What a topology was built from, when a builder knows: a ``pgdefer.sources.dmesg.DmesgBoot`` for
    #: :meth:`from_dmesg`, a ``pgdefer.sources.host.HostInfo`` for :meth:`from_host`, else None. Not saved to files.
    source = None

    @classmethod
    def from_file(cls, path) -> Topology:
        """Read a topology file (``.toml`` or ``.json``, see :mod:`pgdefer.sources.files`)."""
        from .sources.files import load
        return load(path)

    def to_file(self, path):
        """Write this topology to ``path`` (format by suffix: ``.toml`` or ``.json``); returns the path."""
        from .sources.files import save
        return save(self, path)

    @classmethod
    def from_dmesg(cls, path: str | os.PathLike[str], boot: int | None = None) -> Topology:
        """Build the memory map of a real machine from its boot log (see :mod:`pgdefer.sources.dmesg`): a path
        (``~`` expanded, ``"-"`` for standard input, ``.gz`` read) or the log's text. ``boot=N`` picks the N-th
        boot of a file holding several (1 = first, -1 = last); without it such a file is refused."""
        from .sources.dmesg import topology_from_dmesg
        return topology_from_dmesg(path, boot=boot)

    @classmethod
    def from_host(cls) -> Topology:
        """This machine's memory map from /proc/iomem, /proc/zoneinfo and sysfs (:mod:`pgdefer.sources.host`)."""
        from .sources.host import topology_from_host
        return topology_from_host()

"""This machine in: build a :class:`~pgdefer.Topology` of the host pgdefer runs on.

Sources (Linux):

* ``/proc/iomem`` — the ``System RAM`` ranges (memblock.memory as the kernel registered it; real addresses
  need root), and the ``Kernel code/rodata/data/bss`` and ``Crash kernel`` ranges nested in them, which become
  reservations;
* ``/sys/devices/system/node/node*/memory*`` with ``/sys/devices/system/memory/block_size_bytes`` — which
  node each memory block belongs to (``memory*/state`` says whether it is online);
* ``/proc/zoneinfo`` — per node and zone ``spanned``, ``present`` and ``start_pfn``: the zone limits (DMA and
  DMA32 ends, a Normal limit when a Movable zone exists) and the node spans when sysfs has no node
  directories; and the check that the topology's present pages are the kernel's.

Why iomem and zoneinfo can disagree, and what is done about it: ``present`` counts the pfns of memblock memory
inside the zone (``PFN_UP(start)``..``PFN_DOWN(end)`` of each ``System RAM`` range), which is exactly what
the model counts, so on an ordinary boot the two match. They differ when memory was **offlined** after boot
(the block stays ``System RAM`` in iomem but leaves ``present``): offline memory blocks are left out of the
topology. Hot-added memory that is online is in both. Any remaining difference is reported in the notes and
in ``HostInfo.mismatches``.

The memmap is reserved like the boot-log builder does it (64 B per pfn of each node's present sections,
top-down at the end of the node); other boot-time reservations of the host are not visible after boot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .._intervals import length, split_at, subtract
from ..config import ZONE_NAMES, Geometry
from ..errors import PgdeferError, TopologyError
from ..topology import Topology
from .x86 import X86_64_DMA_ZONES, MemblockPlacer, clamped_zone_limit, movable_normal_limit, place_memmaps

ZONES = ZONE_NAMES


class HostReadError(PgdeferError, OSError):
    """Something pgdefer needs to describe this host is missing or unreadable."""


@dataclass
class IomemEntry:
    """One /proc/iomem line: a half-open byte range, its name and nesting depth."""

    start: int
    end: int
    name: str
    depth: int


@dataclass
class ZoneInfo:
    """One ``Node N, zone Z`` block of /proc/zoneinfo."""

    node: int
    zone: str
    spanned: int
    present: int
    managed: int | None = None
    start_pfn: int | None = None

    @property
    def end_pfn(self) -> int | None:
        return None if self.start_pfn is None else self.start_pfn + self.spanned


@dataclass
class HostInfo:
    """What :func:`topology_from_host` read, attached to the topology as ``topology.source``."""

    kernel_release: str | None = None
    ram: list = field(default_factory=list)            # [(start, end)] System RAM, half-open
    iomem: list = field(default_factory=list)          # [IomemEntry]
    zoneinfo: list = field(default_factory=list)       # [ZoneInfo]
    block_size: int | None = None
    block_node: dict = field(default_factory=dict)     # memory block id -> node
    offline_blocks: list = field(default_factory=list)
    mismatches: list = field(default_factory=list)     # [(node, zone, model present, zoneinfo present)]
    notes: list = field(default_factory=list)

    @property
    def zoneinfo_present_pages(self) -> int:
        return sum(z.present for z in self.zoneinfo)


# ------------------------------------------------------------------------------------------------------
# readers
# ------------------------------------------------------------------------------------------------------

def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise HostReadError(f"{path}: not found; pgdefer needs {what} (is this Linux with /proc and /sys "
                            "mounted?)") from None
    except PermissionError:
        raise HostReadError(f"{path}: permission denied; pgdefer needs {what}") from None
    except OSError as e:
        raise HostReadError(f"{path}: cannot read {what}: {e.strerror or e}") from None


_IOMEM = re.compile(r"^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$")


def read_iomem(path="/proc/iomem") -> list:
    """Every /proc/iomem entry (half-open ranges). Raises HostReadError when addresses are hidden (not root)."""
    p = Path(path)
    entries = []
    for line in _read_text(p, "the physical memory map").splitlines():
        m = _IOMEM.match(line)
        if m:
            entries.append(IomemEntry(int(m.group(2), 16), int(m.group(3), 16) + 1, m.group(4).strip(),
                                      len(m.group(1)) // 2))
    ram = [e for e in entries if e.name.startswith("System RAM")]
    if not ram:
        raise HostReadError(f"{p}: no 'System RAM' range; cannot describe this host's memory")
    if all(e.start == 0 and e.end == 1 for e in ram):
        raise HostReadError(f"{p}: addresses are hidden (all zero); reading real addresses needs root "
                            "(CAP_SYS_ADMIN)")
    return entries


def system_ram(entries) -> list:
    """Top-most ``System RAM`` ranges (a ``System RAM`` nested in another one is not counted twice)."""
    out = []
    stack: list[IomemEntry] = []
    for e in entries:
        while stack and stack[-1].depth >= e.depth:
            stack.pop()
        if e.name.startswith("System RAM") and not any(a.name.startswith("System RAM") for a in stack):
            out.append((e.start, e.end))
        stack.append(e)
    return sorted(out)


_ZI_HDR = re.compile(r"^Node (\d+), zone\s+(\S+)")


def read_zoneinfo(path="/proc/zoneinfo") -> list:
    """Per node and zone spanned/present/managed/start_pfn from /proc/zoneinfo."""
    p = Path(path)
    out: list[ZoneInfo] = []
    cur = None
    for line in _read_text(p, "the zone sizes").splitlines():
        m = _ZI_HDR.match(line)
        if m:
            cur = ZoneInfo(int(m.group(1)), m.group(2), 0, 0)
            out.append(cur)
            continue
        if cur is None:
            continue
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("spanned", "present", "managed") and parts[1].isdigit():
            setattr(cur, parts[0], int(parts[1]))
        elif len(parts) >= 2 and parts[0] == "start_pfn:" and parts[1].isdigit():
            cur.start_pfn = int(parts[1])
    if not out:
        raise HostReadError(f"{p}: no 'Node N, zone Z' blocks; cannot read the zone sizes")
    return out


def read_memory_blocks(sys_root="/sys"):
    """(block_size, {block id: node}, [offline block ids]); (None, {}, []) if sysfs has no node/memory info."""
    sysd = Path(sys_root) / "devices" / "system"
    bs_file = sysd / "memory" / "block_size_bytes"
    if not bs_file.exists():
        return None, {}, []
    try:
        block_size = int(bs_file.read_text().strip(), 16)
    except (OSError, ValueError) as e:
        raise HostReadError(f"{bs_file}: cannot read the memory block size: {e}") from None
    block_node: dict[int, int] = {}
    node_dir = sysd / "node"
    if node_dir.is_dir():
        for nd in sorted(node_dir.glob("node[0-9]*")):
            node = int(nd.name[4:])
            for mb in nd.glob("memory[0-9]*"):
                block_node[int(mb.name[6:])] = node
    offline = []
    for mb in (sysd / "memory").glob("memory[0-9]*"):
        try:
            if (mb / "state").read_text().strip() == "offline":
                offline.append(int(mb.name[6:]))
        except OSError:
            pass
    return block_size, block_node, sorted(offline)


# ------------------------------------------------------------------------------------------------------
# building the topology
# ------------------------------------------------------------------------------------------------------

def _assign_nodes(ram, block_size, block_node, zoneinfo, page_size, notes):
    """Split RAM ranges into (start, end, node) pieces."""
    if block_size and block_node:
        out = []
        missing = 0
        for s, e in ram:
            a = s
            while a < e:
                blk = a // block_size
                z = min(e, (blk + 1) * block_size)
                node = block_node.get(blk)
                if node is None:
                    missing += z - a
                    node = _node_from_zoneinfo(a // page_size, zoneinfo)
                out.append((a, z, 0 if node is None else node))
                a = z
        notes.append(f"nodes: from sysfs memory block membership (block size {block_size >> 20} MiB)")
        if missing:
            notes.append(f"nodes: {missing >> 20} MiB of System RAM is in no node's memory blocks; its node "
                         "comes from /proc/zoneinfo spans (else node 0)")
        return out
    spans = _node_spans(zoneinfo)
    if len(spans) <= 1:
        node = next(iter(spans), 0)
        notes.append(f"nodes: a single node ({node}); sysfs has no memory block membership")
        return [(s, e, node) for s, e in ram]
    out = []
    for a, z in split_at(ram, [pfn * page_size for span in spans.values() for pfn in span]):
        node = _node_from_zoneinfo(a // page_size, zoneinfo)
        out.append((a, z, 0 if node is None else node))
    notes.append("nodes: from the node spans in /proc/zoneinfo (no sysfs memory block membership)")
    return out


def _node_spans(zoneinfo):
    spans: dict[int, tuple[int, int]] = {}
    for z in zoneinfo:
        if z.spanned and z.start_pfn is not None:
            a, b = spans.get(z.node, (z.start_pfn, z.end_pfn))
            spans[z.node] = (min(a, z.start_pfn), max(b, z.end_pfn))
    return spans


def _node_from_zoneinfo(pfn, zoneinfo):
    for n, (a, b) in sorted(_node_spans(zoneinfo).items()):
        if a <= pfn < b:
            return n
    return None


def zone_limits_from_zoneinfo(zoneinfo, memory_end_pfn, geometry: Geometry, notes: list) -> dict:
    """DMA/DMA32 limits from the zones' extents, a Normal limit if some node has a Movable zone.

    A zone's end is its limit unless the zone ends where memory ends (the kernel clamps zones to max_pfn);
    then the x86_64 limit (16 MiB, 4 GiB) is used, which gives the same zones.
    """
    ps = geometry.page_size
    block = ps << geometry.max_order
    limits = {}
    prev = 0
    for zone, arch in X86_64_DMA_ZONES:
        ends = [z.end_pfn for z in zoneinfo if z.zone == zone and z.spanned and z.start_pfn is not None]
        if not ends:
            limits[zone] = prev if any(z.zone == zone for z in zoneinfo) else max(prev, arch)
        else:
            end = max(ends) * ps
            lim = clamped_zone_limit(end, memory_end_pfn * ps, arch, prev, block)
            if lim is None:
                lim = end
            elif lim != end:
                notes.append(f"zone limits: {zone} ends at the end of memory ({end:#x}); using the x86_64 "
                             f"limit {lim:#x}")
            limits[zone] = lim
        prev = limits[zone]
    movable = {z.node: z.start_pfn * ps for z in zoneinfo
               if z.zone == "Movable" and z.spanned and z.start_pfn is not None}
    if movable:
        spans = {n: (a * ps, b * ps) for n, (a, b) in _node_spans(zoneinfo).items()}
        try:
            limits["Normal"] = max(prev, movable_normal_limit(spans, movable))
        except ValueError as e:
            raise HostReadError(f"/proc/zoneinfo: {e}") from None
        notes.append(f"zone limits: Movable zones on node(s) {sorted(movable)}; Normal limit {limits['Normal']:#x}")
    return limits


def topology_from_host(proc="/proc", sys="/sys", geometry: Geometry | None = None):
    """``Topology.from_host``: this machine's memory map (see the module docstring)."""
    g = geometry or Geometry()
    info = HostInfo()
    notes = info.notes
    try:
        info.kernel_release = (Path(proc) / "sys" / "kernel" / "osrelease").read_text().strip()
    except OSError:
        info.kernel_release = None
    info.iomem = read_iomem(Path(proc) / "iomem")
    info.zoneinfo = read_zoneinfo(Path(proc) / "zoneinfo")
    info.block_size, info.block_node, info.offline_blocks = read_memory_blocks(sys)
    ram = system_ram(info.iomem)
    notes.append(f"built from this host (kernel {info.kernel_release or 'unknown'}): System RAM of /proc/iomem")
    if info.offline_blocks and info.block_size:
        holes = [(b * info.block_size, (b + 1) * info.block_size) for b in info.offline_blocks]
        before = length(ram)
        ram = subtract(ram, holes)
        notes.append(f"left out {(before - length(ram)) >> 20} MiB of offline memory blocks "
                     f"{info.offline_blocks} (not present in /proc/zoneinfo)")
    info.ram = ram
    memory = _assign_nodes(ram, info.block_size, info.block_node, info.zoneinfo, g.page_size, notes)
    memory_end_pfn = max(e for _, e, _ in memory) // g.page_size
    zone_limits = zone_limits_from_zoneinfo(info.zoneinfo, memory_end_pfn, g, notes)
    try:
        probe = Topology(memory, (), zone_limits, g)
    except TopologyError as e:
        raise HostReadError(f"/proc/iomem: the host's memory map is not one memblock would accept: {e}") from None

    placer = MemblockPlacer(memory)
    for e in info.iomem:
        if e.name in ("Kernel code", "Kernel rodata", "Kernel data", "Kernel bss") or e.name == "Crash kernel":
            placer.reserve(e.name, e.start, e.end, "log", "/proc/iomem")
    kr = list(placer.reservations)
    if kr:
        notes.append("reserved " + ", ".join(f"{r.label} [{r.start:#x}, {r.end:#x})" for r in kr)
                     + " from /proc/iomem")
    place_memmaps(placer, probe.memory_pfn_ranges(), g, notes)
    notes.append("reserved each node's memmap (64 B per pfn of its present sections) top-down at the end of the "
                 "node; other boot-time reservations are not visible after boot")
    topo = Topology(memory, [(r.start, r.end) for r in placer.reservations], zone_limits, g,
                    name="host", notes=())

    # compare with the kernel's present pages
    zi = {(z.node, z.zone): z.present for z in info.zoneinfo if z.zone in ZONES}
    model = {(z.node, z.name): z.present for z in topo.zones()}
    for key in sorted(set(zi) | set(model)):
        a, b = model.get(key, 0), zi.get(key, 0)
        if a != b:
            info.mismatches.append((key[0], key[1], a, b))
    if info.mismatches:
        notes.append("present pages differ from /proc/zoneinfo: " + ", ".join(
            f"node {n} {z}: model {a} vs kernel {b}" for n, z, a, b in info.mismatches))
    else:
        notes.append(f"present pages per node and zone equal /proc/zoneinfo ({topo.present_pages} pages)")
    managed = sum(z.managed or 0 for z in info.zoneinfo)
    notes.append(f"now: {managed} pages managed by the buddy allocator of {info.zoneinfo_present_pages} present")
    topo.notes = tuple(notes)
    topo.source = info
    return topo

"""A kernel-lab log as a :class:`~pgdefer.Topology`: the boot log's memory map and zones (the ordinary
dmesg import), with memblock.reserved replaced by the exact map the memblock=debug lines give.

What the kernel applied is what the log shows: ``mem=`` and ``memmap=`` shape the e820 map and therefore the
``Early memory node ranges``; ``crashkernel=`` is a printed ``memblock_phys_alloc_range`` + reserve;
``movablecore=`` the ``Movable zone start`` lines. So memory, zones and reservations need no re-derivation from
the command line. The kernel image from ``/proc/iomem`` (KASLR moved it) is checked to lie inside the map.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DmesgError
from .sections import parse_lab_log, read_text

KiB = 1024


def lab_topology(text_or_path, geometry=None, name=None):
    """Import a kernel-lab log (path or text). Without memblock=debug lines this is the plain dmesg import.

    The topology carries ``source`` (the :class:`DmesgBoot`, whose ``reservations`` list the exact ranges),
    ``lab`` (the :class:`~pgdefer.lab.sections.LabLog`) and ``unplaced_reserved_kib`` (0 when the map is
    exact: the Memory: line's reserved figure is checked against it by :mod:`pgdefer.lab.compare`).
    """
    from ..sources.dmesg import Reservation, build_topology, parse_dmesg
    from ..topology import Topology

    text, path = read_text(text_or_path)
    path = path or name
    where = path or "<log>"
    panic = _panic_before_memory_init(text)
    if panic:
        raise DmesgError(f"{where}: the kernel panicked before memory init ({panic}); nothing to import")
    try:
        boot = parse_dmesg(text)
    except DmesgError as e:
        raise DmesgError(f"{where}: {e}".replace("<boot log>: ", "")) from None
    boot.path = path
    try:
        base = build_topology(boot, geometry)
    except DmesgError as e:
        raise DmesgError(str(e).replace("<boot log>", where)) from None
    lab = parse_lab_log(text)
    lab.path = path
    base.lab = lab
    if not lab.has_memblock_debug:
        return base
    reserved = lab.reserved_at_free_all()
    notes = [n for n in base.notes if not n.startswith(("reserved", "memmap of node", "kernel image", "memblock"))]
    notes.append(f"reserved: memblock.reserved exactly as memblock_free_all saw it: the last 'MEMBLOCK "
                 f"configuration' dump (line {lab.config_line}, {len(lab.config_reserved)} ranges) plus "
                 f"{sum(op.kind == 'reserve' for op in lab.memblock_ops)} memblock_reserve and "
                 f"{sum(op.kind == 'free' for op in lab.memblock_ops)} memblock_free lines after it "
                 f"({len(reserved)} merged ranges, {sum(e - s for s, e in reserved) // KiB} KiB)")
    kimg = lab.kernel_image()
    if kimg is not None:
        inside = any(s <= kimg[0] and kimg[1] <= e for s, e in reserved)
        if not inside:
            raise DmesgError(f"{where}: the kernel image {kimg[0]:#x}-{kimg[1]:#x} of /proc/iomem is not inside "
                             "the memblock.reserved map of the memblock=debug lines (a log of another boot?)")
        notes.append(f"kernel image [{kimg[0]:#x}, {kimg[1]:#x}) per /proc/iomem (KASLR), inside the reserved map")
    try:
        topo = Topology([(r.start, r.end, r.node) for r in base.memory], reserved, base.zone_limits,
                        base.geometry, name=base.name, notes=tuple(notes), kernel=base.kernel)
    except Exception as e:  # a TopologyError names the range
        raise DmesgError(f"{where}: the memblock=debug reserved map does not fit the memory map: {e}") from None
    boot.reservations = [Reservation("memblock.reserved", s, e, "log", "memblock=debug") for s, e in reserved]
    boot.assumptions = notes
    topo.source = boot
    topo.lab = lab
    boot.placed_reserved_kib = topo.reserved_pages * topo.geometry.page_size // KiB
    topo.unplaced_reserved_kib = boot.unplaced_reserved_kib = None  # decided by the comparison
    return topo


def _panic_before_memory_init(text: str):
    """The panic line of a log that panicked before printing its memory map ('Early memory node ranges')."""
    for line in text.splitlines():
        if "Early memory node ranges" in line or "Early memory PFN ranges" in line:
            return None
        if "Kernel panic - not syncing" in line:
            return line.split("] ", 1)[-1].strip()
    return None


def has_lab_sections(text: str) -> bool:
    """Does a log's text hold memblock=debug dumps (a kernel-lab or memblock=debug boot)?"""
    return "MEMBLOCK configuration:" in text and "memblock_reserve: [" in text


def log_name(path) -> str:
    return Path(path).name if path else "<log>"

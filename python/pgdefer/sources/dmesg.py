"""Real machines in: read a Linux boot log (``dmesg``) and build the :class:`~pgdefer.Topology` it describes.

:func:`parse_dmesg` turns the text of a boot log into a :class:`DmesgBoot` (with :class:`DmesgParser`, one
method per family of log lines) — plain data, everything the early boot prints about memory: kernel version,
command line, the e820 maps (BIOS, user-defined, extended), NUMA (SRAT, merges, faked node, ``NODE_DATA``),
``Zone ranges``, ``Movable zone start``, ``Early memory node ranges``, per-node/zone summaries of older kernels,
hole messages in all their wordings, the ``Memory:`` line, the per-node deferred-init lines (``node N
initialised, P pages in Mms`` and ``node N deferred pages initialised in Mms``), crash kernel, initrd, software
IO TLB, per-cpu areas, early hash tables, ...

:func:`topology_from_dmesg` (``Topology.from_dmesg``) builds the topology:

* **memory** = the ``Early memory node ranges`` (the kernel prints inclusive ends; they become half-open),
  which is exactly memblock.memory with node ids as ``free_area_init`` saw it;
* **zone limits** from ``Zone ranges`` (DMA and DMA32 ends; see :func:`zone_limits_from_log`) and a Normal
  limit only when ``Movable zone start`` lines are printed;
* **reserved** ranges: what the log places exactly (initrd, crash kernel, NODE_DATA, bounce buffer, ...)
  and what the kernel places by a fixed rule from sizes the log prints (kernel image at 16 MiB, each node's
  memmap top-down at the end of the node, per-cpu areas, early hash tables, ...), each recorded as a
  :class:`Reservation` with how it was placed. Whatever part of the ``Memory:`` line's ``reserved`` figure
  cannot be placed honestly is reported as ``unplaced_reserved_kib`` and not invented.

The :class:`DmesgBoot` (with ``reservations``, ``assumptions`` and the reserved-memory accounting) is attached
to the topology as ``topology.source``; the assumptions are also the topology's ``notes``.

User errors — a missing file, a file that is not a boot log, a log that stops before ``Early memory node
ranges`` — raise :class:`pgdefer.errors.DmesgError` with one line naming the file.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .._intervals import subtract
from ..config import Geometry
from ..errors import DmesgError, TopologyError
from ..topology import Topology
from ..userfile import read_user_file
from .x86 import (  # noqa: F401 - re-exported
    STRUCT_PAGE_SIZE,
    SWIOTLB_DEFAULT_SIZE,
    SWIOTLB_SLAB,
    X86_64_DMA32_END,
    X86_64_DMA_END,
    X86_64_DMA_ZONES,
    X86_64_MAX_DMA_ADDRESS,
    X86_64_OLD_PAGE_OFFSET,
    X86_64_PHYSICAL_START,
    GiB,
    KiB,
    MemblockPlacer,
    MiB,
    Reservation,
    clamped_zone_limit,
    crashkernel_request,
    movable_normal_limit,
    node_memmap_sections,
    place_memmaps,
    reserve_low_memory,
)

# ------------------------------------------------------------------------------------------------------
# parsed data
# ------------------------------------------------------------------------------------------------------

@dataclass
class E820Entry:
    """One e820 entry, as a half-open byte range."""

    start: int
    end: int
    type: str

    @property
    def size(self) -> int:
        """Bytes in the entry (its range is half-open)."""
        return self.end - self.start


@dataclass
class MemRange:
    """A memory range of one node (half-open bytes), e.g. a line of ``Early memory node ranges``."""

    node: int
    start: int
    end: int


@dataclass
class Hole:
    """A "pages in unavailable ranges" message (node and zone when the wording gives them)."""

    pages: int
    node: int | None = None
    zone: str | None = None
    wording: str = ""


@dataclass
class DeferredInit:
    """A per-node deferred struct page init line."""

    node: int
    ms: int
    pages: int | None = None
    timestamp: float | None = None
    wording: str = ""


@dataclass
class ZoneReport:
    """The per-zone lines older kernels print under ``On node N totalpages: T`` (KERN_DEBUG)."""

    node: int
    zone: str
    present: int | None = None
    memmap_pages: int | None = None
    reserved_pages: int | None = None


@dataclass
class MemoryLine:
    """``Memory: AK/TK available (... K kernel code, ... K reserved, ...)``; every figure in KiB."""

    available_kib: int
    total_kib: int
    parts: dict = field(default_factory=dict)

    @property
    def reserved_kib(self) -> int | None:
        """The ``reserved`` figure of the Memory: line in KiB (None when the line has none)."""
        return self.parts.get("reserved")

    @property
    def cma_reserved_kib(self) -> int:
        """The ``cma-reserved`` figure of the Memory: line in KiB (0 when absent)."""
        return self.parts.get("cma-reserved", 0)

    @property
    def kernel_image_kib(self) -> int | None:
        """code + rwdata + rodata + init + bss (what the kernel image occupies, without padding)."""
        keys = ("kernel code", "rwdata", "rodata", "init", "bss")
        if not all(k in self.parts for k in keys):
            return None
        return sum(self.parts[k] for k in keys)



@dataclass
class DmesgBoot:
    """Everything :func:`parse_dmesg` read from one boot in a log (addresses are half-open byte ranges)."""

    path: str | None = None
    kernel_version: str | None = None
    command_line: str | None = None
    dmi: str | None = None
    boots_in_file: int = 1
    boot_in_file: int = 1                               # which of them (1-based) this is
    e820: list = field(default_factory=list)            # BIOS-provided map (BIOS-e820:)
    e820_user: list = field(default_factory=list)       # user-defined map (memmap=, mem=)
    e820_extended: list = field(default_factory=list)   # "reserve setup_data:" map
    e820_updates: list = field(default_factory=list)    # (start, end, from_type, to_type or None = remove)
    srat: list = field(default_factory=list)            # (node, pxm, start, end, hotplug)
    numa_merges: list = field(default_factory=list)     # (node, [(start, end), ...], (start, end))
    numa_fake_node: tuple | None = None
    node_data: dict = field(default_factory=dict)       # node -> (start, end)
    initmem: dict = field(default_factory=dict)         # node -> (start, end)  ("Initmem setup node N")
    zone_ranges: dict = field(default_factory=dict)     # zone -> (start, end) or None ("empty")
    movable_zone_start_pfn: dict = field(default_factory=dict)  # node -> pfn
    early_node_ranges: list = field(default_factory=list)       # [MemRange]
    memory: MemoryLine | None = None
    holes: list = field(default_factory=list)           # [Hole]
    node_totalpages: dict = field(default_factory=dict)  # node -> "On node N totalpages: T"
    zone_reports: list = field(default_factory=list)     # [ZoneReport]
    deferred_init: list = field(default_factory=list)    # [DeferredInit]
    crashkernel: list = field(default_factory=list)      # [(start, end)] printed reservations
    ramdisk: tuple | None = None
    swiotlb: tuple | None = None                         # (start, end) when the log prints the address
    swiotlb_size: int | None = None                      # bytes, when only the size is printed
    swiotlb_initialised: bool = False                    # "software IO TLB: area num N." seen (5.19+)
    cma: list = field(default_factory=list)              # [(start, end)]
    percpu: dict | None = None                           # pages_per_cpu, unit, atom, groups, base
    nr_cpu_ids: int | None = None
    nr_node_ids: int | None = None
    possible_cpus: int | None = None
    present_cpus: int | None = None                      # "Allowing ..." (the two wordings count differently)
    srat_cpus: dict = field(default_factory=dict)        # node -> APIC ids of "SRAT: PXM p -> APIC a -> Node n"
    smp_cpus: dict = field(default_factory=dict)         # node -> CPUs announced in ".... node #N, CPUs: #a #b"
    smp_brought_up: int | None = None                    # CPUs of "smp: Brought up N nodes, M CPUs"
    early_hash_tables: list = field(default_factory=list)  # [(name, bytes)] printed before Memory:
    log_buf_bytes: int | None = None
    kfence_bytes: int | None = None
    brk: list = field(default_factory=list)              # [(start, end)]
    trampoline: tuple | None = None
    fixed_reservations: list = field(default_factory=list)  # [(label, start, end, line)]
    memblock_debug: list = field(default_factory=list)      # [("reserve"|"free", start, end)]
    zonelist_total_pages: int | None = None
    lines: int = 0
    # -- filled in by build_topology ---------------------------------------------------------------
    reservations: list = field(default_factory=list)     # [Reservation]
    assumptions: list = field(default_factory=list)      # [str]
    placed_reserved_kib: int | None = None
    unplaced_reserved_kib: int | None = None

    @property
    def version(self) -> tuple | None:
        """The kernel version as a tuple of ints, e.g. (5, 14, 0); None if the log does not print it."""
        if not self.kernel_version:
            return None
        try:
            return parse_version(self.kernel_version)
        except DmesgError:
            return None

    @property
    def policy(self) -> str | None:
        """The model policy matching this kernel version (:func:`kernel_policy`), or None."""
        v = self.version
        return kernel_policy(v) if v else None

    @property
    def nodes(self) -> list:
        """Ids of the nodes in ``Early memory node ranges``, ascending."""
        return sorted({r.node for r in self.early_node_ranges})

    def cmdline_option(self, name: str) -> list:
        """Every value of ``name=`` on the command line (``[]`` if absent; ``[""]`` for a bare flag)."""
        if not self.command_line:
            return []
        out = []
        for tok in self.command_line.split():
            if tok == name:
                out.append("")
            elif tok.startswith(name + "="):
                out.append(tok[len(name) + 1:])
        return out


# ------------------------------------------------------------------------------------------------------
# kernel versions and policies
# ------------------------------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^v?(\d{1,6})\.(\d{1,6})(?:\.(\d{1,6}))?")


def parse_version(version) -> tuple:
    """``"5.14.0-570.23.1.el9_6.x86_64"`` -> (5, 14, 0); ``"v4.17"`` -> (4, 17, 0); tuples pass through."""
    if isinstance(version, tuple):
        return tuple(int(x) for x in version) + (0,) * (3 - len(version))
    m = _VERSION_RE.match(str(version).strip())
    if not m:
        raise DmesgError(f"cannot read a kernel version from {version!r} (expected e.g. '5.14.0' or 'v4.17')")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def kernel_policy(version) -> str:
    """The pgdefer policy that matches a kernel version (for ``--policy auto``): the table of
    :mod:`pgdefer.generations` (docs/model.md §11.10)."""
    from ..generations import kernel_policy as policy_of

    return policy_of(version)


# ------------------------------------------------------------------------------------------------------
# line clean-up
# ------------------------------------------------------------------------------------------------------

_LEVEL = re.compile(r"^<\d+>")
_DMESG_X = re.compile(r"^[a-z]+\s*:\s*[a-z]+\s*: ")                      # dmesg -x: "kern  :info  : "
_TS = re.compile(r"^\[\s*(\d+\.\d+)\]\s?")                               # [    0.000000]
_CALLER = re.compile(r"^\[\s*[TC]\d+\]\s?")                                    # CONFIG_PRINTK_CALLER: [    T0]
_TS_HUMAN = re.compile(r"^\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\]\s?")  # dmesg -T
_SYSLOG = re.compile(
    r"^(?:(?:[A-Z][a-z]{2}\s+\d{1,2}(?:\s+\d{1,2}:\d\d:\d\d(?:\.\d+)?)?"      # Jan 01 [12:00:00]
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\S*)\s+)?"                          # 2023-01-01T02:48:04+0000
    r"[\w.\-]+\s+kernel:\s?")                                              # host kernel:


def clean_line(line: str):
    """Strip CR, log-level, syslog/journald host prefixes and the timestamp.

    Returns ``(message, timestamp)``; the message keeps its own leading indentation. Each pattern is tried
    only where its first character (or ``kernel:``) could match: a log of 200 000 lines is cleaned once per
    line, and the guards make the common ``[    0.000000] ...`` line cost one pattern instead of six.
    """
    s = line.rstrip("\r\n")
    if "\r" in s:
        s = s.replace("\r", "")
    if s[:1] == "<":
        s = _LEVEL.sub("", s, count=1)
    if s[:1].islower():
        s = _DMESG_X.sub("", s, count=1)
    ts = None
    m = _TS.match(s) if s[:1] == "[" else None
    if m:
        ts = float(m.group(1))
        s = s[m.end():]
        if s[:1] == "[":
            s = _CALLER.sub("", s, count=1)
    elif s[:1] == "[":
        s = _TS_HUMAN.sub("", s, count=1)
    m = _SYSLOG.match(s) if "kernel:" in s else None
    if m:
        s = s[m.end():]
        m = _TS.match(s)
        if m:
            ts = float(m.group(1))
            s = _CALLER.sub("", s[m.end():], count=1)
    return s, ts


# ------------------------------------------------------------------------------------------------------
# patterns
# ------------------------------------------------------------------------------------------------------

_H = r"(0x[0-9a-fA-F]+)"
_MEM = rf"\[mem {_H}-{_H}\]"                       # inclusive end
_ZONE = r"(DMA32|DMA|Normal|HighMem|Movable|Device)"

P = {
    "version": re.compile(r"^Linux version (\S+)"),
    "cmdline": re.compile(r"^(?:Kernel )?[Cc]ommand line: ?(.*)$"),
    "dmi": re.compile(r"^DMI: (.+)$"),
    "e820_hdr_bios": re.compile(r"BIOS-provided physical RAM map"),
    "e820_hdr_user": re.compile(r"user-defined physical RAM map"),
    "e820_hdr_ext": re.compile(r"extended physical RAM map"),
    "e820_entry": re.compile(rf"^(BIOS-e820|user|reserve setup_data): {_MEM} (.+?)\s*$"),
    "e820_entry_old": re.compile(r"^(BIOS-e820|user): ([0-9a-fA-F]{8,16}) - ([0-9a-fA-F]{8,16}) \((.+)\)\s*$"),
    "e820_update": re.compile(rf"^e820: update {_MEM} (.+?) ==> (.+?)\s*$"),
    "e820_remove": re.compile(rf"^e820: remove {_MEM} (.+?)\s*$"),
    "srat": re.compile(rf"SRAT: Node (\d+) PXM (\d+) {_MEM}(.*)$"),
    "numa_merge": re.compile(rf"^NUMA: Node (\d+) ((?:{_MEM.replace('(', '(?:')}(?: \+ )?)+) -> {_MEM}"),
    "fake_node": re.compile(rf"^Faking a node at {_MEM}"),
    "node_data": re.compile(rf"^NODE_DATA\((\d+)\) allocated {_MEM}"),
    "node_data_old": re.compile(rf"^NODE_DATA {_MEM}"),
    "initmem": re.compile(rf"^Initmem setup node (\d+) {_MEM}"),
    "initmem_old": re.compile(r"^Initmem setup node (\d+) ([0-9a-fA-F]{8,16})-([0-9a-fA-F]{8,16})"),
    "zone_hdr": re.compile(r"^Zone (?:PFN )?ranges:?\s*$"),
    "zone_line": re.compile(rf"^{_ZONE}\s+(?:{_MEM}|(empty))\s*$"),
    "zone_line_pfn": re.compile(rf"^{_ZONE}\s+{_H} -> {_H}\s*$"),
    "movable_hdr": re.compile(r"^Movable zone start (PFN )?for each node\s*$"),
    "movable_node": re.compile(r"^Node (\d+): (0x[0-9a-fA-F]+|\d+)\s*$"),
    "movable_one": re.compile(r"^Movable zone start for node (\d+): PFN (0x[0-9a-fA-F]+|\d+)"),
    "early_hdr": re.compile(r"^Early memory (?:node|PFN) ranges\s*$"),
    "early_hdr_old": re.compile(r"^early_node_map\[\d+\] active PFN ranges"),
    "early_line": re.compile(rf"^node\s+(\d+): {_MEM}\s*$"),
    "early_line_pfn": re.compile(rf"^(\d+): {_H} -> {_H}\s*$"),
    "totalpages": re.compile(r"^On node (\d+) totalpages: (\d+)"),
    "zone_memmap": re.compile(rf"^{_ZONE} zone: (\d+) pages used for memmap"),
    "zone_reserved": re.compile(rf"^{_ZONE} zone: (\d+) pages reserved"),
    "zone_present": re.compile(rf"^{_ZONE} zone: (\d+) pages, LIFO batch:\d+"),
    "hole_zone": re.compile(rf"^{_ZONE} zone: (\d+) pages in unavailable ranges"),
    "hole_node_zone": re.compile(rf"^On node (\d+), zone {_ZONE}: (\d+) pages in unavailable ranges"),
    "hole_zeroed": re.compile(r"^Zeroed struct page in unavailable ranges: (\d+) pages"),
    "hole_reserved": re.compile(r"^Reserved but unavailable: (\d+) pages"),
    "memory": re.compile(r"^Memory: (\d+)K/(\d+)K available(?: \((.*)\))?"),
    "deferred_new": re.compile(r"^node (\d+) deferred pages initialised in (\d+)ms"),
    "deferred_old": re.compile(r"^node (\d+) initialised, (\d+) pages in (\d+)ms"),
    "deferred_kswapd": re.compile(r"^kswapd (\d+) initialised,? (\d+) pages in (\d+)ms"),
    "crash_new": re.compile(r"^crashkernel(?: low memory)? reserved: (0x[0-9a-fA-F]+) - (0x[0-9a-fA-F]+)"),
    "crash_old": re.compile(r"^Reserving (\d+)MB of (?:low )?memory at (\d+)MB for crashkernel"),
    "ramdisk": re.compile(rf"^RAMDISK: {_MEM}"),
    "ramdisk_old": re.compile(r"^RAMDISK: ([0-9a-fA-F]{8,16}) - ([0-9a-fA-F]{8,16})"),
    "swiotlb_new": re.compile(rf"^software IO TLB: mapped {_MEM} \((\d+)MB\)"),
    "swiotlb_old": re.compile(rf"^software IO TLB {_MEM} \((\d+)MB\) mapped at"),
    "swiotlb_size": re.compile(r"^software IO TLB: (?:SWIOTLB bounce buffer size (?:roundup|adjusted) to) (\d+)MB"),
    "swiotlb_area": re.compile(r"^software IO TLB: area num \d+"),
    "cma": re.compile(r"^cma: Reserved (\d+) MiB at (0x[0-9a-fA-F]+)"),
    "percpu": re.compile(r"^(?:percpu|PERCPU): (?:Embedded|Remapped) (\d+) pages/cpu(?: @([0-9a-fA-F]+))? "
                         r"s(\d+) r(\d+) d(\d+) u(\d+)"),
    "percpu_page": re.compile(r"^(?:percpu|PERCPU): (\d+) 4K pages/cpu(?: @([0-9a-fA-F]+))? s(\d+) r(\d+) d(\d+)"),
    "pcpu_alloc_hdr": re.compile(r"^pcpu-alloc: s\d+ r\d+ d\d+ u\d+ alloc=(\d+)\*(\d+)"),
    "pcpu_alloc_grp": re.compile(r"^pcpu-alloc: (\[\d+\].*)$"),
    "setup_percpu": re.compile(r"^setup_percpu: NR_CPUS:\d+ nr_cpumask_bits:\d+ nr_cpu_ids:(\d+) nr_node_ids:(\d+)"),
    "allowing": re.compile(r"(?:smpboot|CPU topo): Allowing (\d+) (present )?CPUs,? (?:plus )?(\d+) hotplug"),
    "srat_cpu": re.compile(r"SRAT: PXM (\d+) -> APIC (0x[0-9a-fA-F]+) -> Node (\d+)\s*$"),
    "smp_node": re.compile(r"^\.\.\.\. node\s+#(\d+), CPUs:((?:\s*#\d+)*)\s*$"),
    "smp_cont": re.compile(r"^#\d+(?:\s+#\d+)*$"),   # the rest of an announce line, after other output
    "smp_up": re.compile(r"^(?:smp: )?Brought up (?:\d+ nodes?, )?(\d+) CPUs?\b"),
    "hash": re.compile(r"^(.+?) hash table entries: (\d+) \(order: -?\d+, (\d+) bytes(?:, ([^)]*))?\)"),
    "log_buf": re.compile(r"^(?:printk: )?log_buf_len: (\d+) bytes"),
    "kfence": re.compile(r"^kfence: initialized - using (\d+) bytes"),
    "brk": re.compile(r"^BRK \[(0x[0-9a-fA-F]+), (0x[0-9a-fA-F]+)\] PGTABLE"),
    "trampoline": re.compile(r"^Base memory trampoline at \[[0-9a-fA-F]+\] ([0-9a-fA-F]+) size (\d+)"),
    "mptable": re.compile(rf"^found SMP MP-table at {_MEM}"),
    "esrt": re.compile(r"^esrt: Reserving ESRT space from (0x[0-9a-fA-F]+) to (0x[0-9a-fA-F]+)"),
    "acpi_table": re.compile(rf"^ACPI: Reserving (\S+) table memory at {_MEM}"),
    "memblock_dbg": re.compile(r"^(memblock_reserve|memblock_free|memblock_phys_free|memblock_free_early): "
                               r"\[(0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+)\]"),
    "zonelists": re.compile(r"^Built \d+ zonelists.*Total pages: (\d+)"),
}

#: A literal that every line some family takes contains (at least one of them): a line with none of them
#: cannot change the parse, so it is skipped without trying ~50 patterns on it. Kept beside P; the fuzz test
#: checks that parsing with and without this filter gives the same DmesgBoot.
_KEYWORDS = re.compile("|".join(map(re.escape, (
    "Linux version", "ommand line", "DMI: ", "Built ", "physical RAM map", "BIOS-e820", "user", "setup_data",
    "e820: ", "SRAT: ", "NUMA: ", "Faking a node", "NODE_DATA", "Initmem setup", "Zone ", "DMA", "Normal",
    "HighMem", "Movable", "Device", "Node ", "node", "Early memory", "early_node_map", " -> ", "On node",
    "zone: ", "unavailable", "Memory: ", "initialised", "crashkernel", "RAMDISK: ", "software IO TLB",
    "cma: ", "percpu: ", "PERCPU: ", "pcpu-alloc: ", "setup_percpu: ", "Allowing ", "hash table entries",
    "log_buf_len", "kfence: ", "BRK [", "Base memory trampoline", "MP-table", "esrt: ", "ACPI: Reserving",
    "memblock_", "Brought up", "#",
))))

#: Lines read from one log: one boot prints a few thousand; a kern.log of a hundred boots a few 100 000.
#: Checked before parsing, so that no log makes the parser run for minutes.
MAX_LOG_LINES = 200_000
#: Lines of one boot that carry a family keyword (the real logs have at most ~650): each costs up to ~50
#: pattern tries, so beyond this many the log is refused rather than parsed for minutes.
MAX_KEYWORD_LINES = 20_000
#: The kernel prints at most LOG_LINE_MAX (1024 - 32) bytes per record; with a syslog prefix a line is
#: shorter than this. Longer lines are cut here (no pattern reads beyond it).
MAX_LINE_CHARS = 2048

_BOOT_MARKERS = ("version", "e820_entry", "e820_entry_old", "zone_hdr", "early_hdr", "early_hdr_old", "memory",
                 "initmem", "srat")


#: Largest nr_cpu_ids an x86_64 kernel can print (CONFIG_NR_CPUS_RANGE_END with MAXSMP, arch/x86/Kconfig).
X86_64_NR_CPUS_MAX = 8192


class _BadFigure(Exception):
    """A number in a log line that no kernel prints (beyond 64 bits, more CPUs than NR_CPUS): the parser
    turns it into a DmesgError naming the line, before any work depends on it."""


def _hex(s: str) -> int:
    v = int(s, 16)
    if v >> 64:
        raise _BadFigure(f"{s} does not fit in 64 bits")
    return v


def _dec(s: str) -> int:
    if len(s) > 20:  # 2^64 has 20 digits
        raise _BadFigure(f"{s[:24]}... ({len(s)} digits) does not fit in 64 bits")
    v = int(s)
    if v >> 64:
        raise _BadFigure(f"{s} does not fit in 64 bits")
    return v


def _num(s: str) -> int:
    return _hex(s) if s.lower().startswith("0x") else _dec(s)


def _cpus(n: int, what: str) -> int:
    if n > X86_64_NR_CPUS_MAX:
        raise _BadFigure(f"{what} {n} is more than an x86_64 kernel can have (NR_CPUS <= {X86_64_NR_CPUS_MAX})")
    return n


# ------------------------------------------------------------------------------------------------------
# parsing
# ------------------------------------------------------------------------------------------------------

STDIN = "-"  # the path that means "read the log from standard input" (``dmesg:-``)


def _read(text_or_path):
    """(text, path or None). A Path, or a str without a newline, is a file name (``~`` expanded; ``-`` is
    standard input); other str/bytes are text. A gzip-compressed file (``.gz``, or any gzip data) is
    decompressed."""
    if isinstance(text_or_path, bytes):
        text, path = _gunzip(text_or_path, "<boot log>").decode("utf-8", errors="replace"), None
    elif text_or_path == STDIN:
        path = "<stdin>"
        raw = sys.stdin.buffer.read()
        if not raw:
            raise DmesgError(f"{path}: empty: expected a boot log on standard input (dmesg | pgdefer ... dmesg:-)")
        text = _decode(raw, path)
    elif isinstance(text_or_path, os.PathLike) or (isinstance(text_or_path, str) and "\n" not in text_or_path):
        p = Path(os.fspath(text_or_path)).expanduser()
        path = str(p)
        text = _decode(read_user_file(p, "boot log file", DmesgError), path)
    elif isinstance(text_or_path, str):
        text, path = text_or_path, None
    else:
        raise DmesgError(
            f"parse_dmesg() takes the text of a boot log or a path, got {type(text_or_path).__name__}")
    lines = text.count("\n")
    if lines > MAX_LOG_LINES:
        raise DmesgError(f"{path or '<boot log>'}: {lines} lines; pgdefer reads at most {MAX_LOG_LINES} (one boot "
                         "prints a few thousand: keep the boot you want, e.g. journalctl -k -b)")
    return text, path


def _decode(raw: bytes, name: str) -> str:
    """The text of a file's bytes (gunzipped if gzip data); binary data is a DmesgError."""
    raw = _gunzip(raw, name)
    if b"\x00" in raw[:4096]:
        raise DmesgError(f"{name}: not a Linux boot log (binary file)")
    return raw.decode("utf-8", errors="replace")


def _gunzip(raw: bytes, name: str) -> bytes:
    """``raw`` decompressed if it is gzip data (its magic bytes, whatever the file is called)."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DmesgError(f"{name}: a damaged or truncated gzip file ({e})") from None


def _split_boots(msgs):
    """Indices where a new boot starts (each 'Linux version' line after the first)."""
    starts = [i for i, (m, _) in enumerate(msgs) if "Linux version" in m and P["version"].match(m.strip())]
    if len(starts) <= 1:
        return [(0, len(msgs))]
    bounds = [0] + starts[1:] + [len(msgs)]
    return list(zip(bounds, bounds[1:]))


def parse_dmesg(text_or_path, boot: int | None = None) -> DmesgBoot:
    """Parse a boot log (its text, or a path to it: ``~`` expanded, ``"-"`` for standard input, gzip
    read) into a :class:`DmesgBoot`.

    A log holding several boots (a concatenated ``kern.log``: one ``Linux version`` line each) needs
    ``boot=N``, the N-th boot of the file (1 = first, -1 = last), when more than one of them prints a
    memory map; otherwise :class:`~pgdefer.errors.DmesgError` lists them and says how to choose (never a
    silent pick). ``boots_in_file`` and ``boot_in_file`` say how many there were and which was read.
    Raises :class:`~pgdefer.errors.DmesgError` for a missing file or a text that is not a Linux boot log.
    """
    text, path = _read(text_or_path)
    return _parse_text(text, path, boot)[0]


def _has_memory_map(msgs) -> bool:
    return any(P["early_hdr"].match(m.strip()) or P["early_hdr_old"].match(m.strip())
               for m, _ in msgs if "arly" in m)  # both headers hold "arly"; the substring test is the cheap part


def _choose_boot(msgs, boots, boot, name) -> int:
    """Index in ``boots`` of the boot to read: ``boot`` (1-based, negative from the end) if given, else the
    only one with a memory map; several with one is a DmesgError saying how to choose."""
    n = len(boots)
    if boot is not None:
        if isinstance(boot, bool) or not isinstance(boot, int) or not (1 <= boot <= n or -n <= boot <= -1):
            raise DmesgError(f"{name}: boot={boot!r}: the file holds {n} boot(s); choose 1..{n} (or -1 for the last)")
        return boot - 1 if boot > 0 else n + boot
    mapped = [k for k, (lo, hi) in enumerate(boots) if _has_memory_map(msgs[lo:hi])]
    if len(mapped) <= 1:
        return mapped[0] if mapped else n - 1
    listing = "; ".join(f"{k + 1}: {_boot_title(msgs, boots[k])}" for k in range(n))
    where = name if name != "<boot log>" else "PATH"
    raise DmesgError(
        f"{name}: the file holds {n} boots ({listing}); {len(mapped)} of them print a memory map, so choose one: "
        f"--topology dmesg:{where}#N on the command line, boot=N in Python (Topology.from_dmesg(path, boot=N)); "
        f"N from 1, -1 for the last")


def _boot_title(msgs, bounds) -> str:
    lo, hi = bounds
    for i in range(lo, hi):
        m = P["version"].match(msgs[i][0].strip())
        if m:
            return f"Linux {m.group(1)} at line {i + 1}"
    return f"lines {lo + 1}-{hi}"


def _parse_text(text: str, path, boot):
    """(DmesgBoot, the text of the boot read) of one boot of a log's text."""
    name = path or "<boot log>"
    lines = text.splitlines()
    msgs = [clean_line(line[:MAX_LINE_CHARS]) for line in lines]
    boots = _split_boots(msgs)
    k = _choose_boot(msgs, boots, boot, name)
    chosen = boots[k]
    boot = DmesgParser(chosen[1] - chosen[0], name, chosen[0] + 1).parse(msgs[chosen[0]:chosen[1]])
    boot.path = path
    boot.boots_in_file = len(boots)
    boot.boot_in_file = k + 1
    if not _looks_like_boot(boot, msgs[chosen[0]:chosen[1]]):
        raise DmesgError(
            f"{name}: not a Linux boot log (no 'Linux version', e820 map, 'Zone ranges', "
            f"'Early memory node ranges' or 'Memory:' line)")
    return boot, "\n".join(lines[chosen[0]:chosen[1]]) + "\n"


def _looks_like_boot(boot, msgs) -> bool:
    if boot.kernel_version or boot.e820 or boot.zone_ranges or boot.early_node_ranges or boot.memory:
        return True
    return any(P[k].search(m.strip()) for m, _ in msgs if _KEYWORDS.search(m) for k in _BOOT_MARKERS)


class DmesgParser:
    """The messages of one boot -> a :class:`DmesgBoot`, one method per family of log lines.

    :meth:`feed` offers a message to each family in turn (the order matters only where two families' patterns
    could both match; it is the order the families were always tried in); a family method returns True when
    the line was one of its own. Some lines only mean something inside a section (``Zone ranges:``,
    ``Movable zone start for each node``, ``Early memory node ranges``), and some refer to the node of an
    earlier line (the 5.4-era per-zone lines, the old ``NODE_DATA [mem]`` line): that state lives here.
    """

    def __init__(self, lines: int = 0, name: str = "<boot log>", first_line: int = 1):
        self.boot = DmesgBoot(lines=lines)
        self.name, self.first_line = name, first_line
        self.section = None          # "zones", "movable", "early", "early_pfn", "e820_bios", "e820_user", "e820_ext"
        self.movable_is_pfn = False
        self.totalpages_node = None  # node of the last "On node N totalpages" (for the 5.4-era per-zone lines)
        self.initmem_node = None     # node of the last "Initmem setup node N" (for old "NODE_DATA [mem]" lines)
        self.seen_memory_line = False
        self.pcpu_groups: dict[int, int] = {}
        self.pcpu_atom = None
        self.smp_node = None         # node of the last ".... node #N, CPUs:" announce line, until "Brought up"
        self._zone_reports: dict[tuple, ZoneReport] = {}
        self._families = (self.identity, self.section_header, self.e820, self.numa, self.memory_map,
                          self.node_summaries, self.memory_line, self.deferred_init, self.placed_reservations,
                          self.percpu_and_cpus, self.smp_bringup, self.early_allocations, self.memblock_debug)

    def parse(self, msgs, prefilter: bool = True) -> DmesgBoot:
        """Feed every ``(message, timestamp)`` of one boot and return the finished :class:`DmesgBoot`
        (``prefilter``: skip lines without any of the families' keywords, which no family would take)."""
        # the lines to feed, counted before any is parsed: a log over the limit is refused at once
        kept = [i for i, (raw, _) in enumerate(msgs) if not prefilter or _KEYWORDS.search(raw)]
        if len(kept) > MAX_KEYWORD_LINES:
            raise DmesgError(f"{self.name}: more than {MAX_KEYWORD_LINES} lines of one boot look like memory-map "
                             f"lines (line {self.first_line + kept[MAX_KEYWORD_LINES]}); a real boot prints a few "
                             f"hundred")
        for i in kept:
            raw, ts = msgs[i]
            try:
                self.feed(raw.strip(), ts)
            except _BadFigure as e:
                raise DmesgError(f"{self.name}:{self.first_line + i}: {e}: {raw.strip()[:160]!r}") from None
        return self.finish()

    def feed(self, s: str, ts=None) -> bool:
        """Offer one stripped message to each family; True if one of them took it."""
        return bool(s) and any(family(s, ts) for family in self._families)

    def finish(self) -> DmesgBoot:
        """Complete the boot after the last message (per-cpu atom size, derived figures) and return it."""
        b = self.boot
        if b.percpu is not None:
            b.percpu["atom"] = self.pcpu_atom
            b.percpu["groups"] = dict(sorted(self.pcpu_groups.items()))
        return b

    # -- the families ------------------------------------------------------------------------------

    def identity(self, s, ts) -> bool:
        """``Linux version``, the command line, ``DMI:`` and the zonelists' total (first one of each wins)."""
        b = self.boot
        if m := P["version"].match(s):
            b.kernel_version = b.kernel_version or m.group(1)
        elif m := P["cmdline"].match(s):
            b.command_line = b.command_line or m.group(1).strip()
        elif m := P["dmi"].match(s):
            b.dmi = b.dmi or m.group(1)
        elif m := P["zonelists"].match(s):
            b.zonelist_total_pages = _dec(m.group(1))
        else:
            return False
        return True

    _HEADERS = (("e820_hdr_bios", "e820_bios"), ("e820_hdr_user", "e820_user"), ("e820_hdr_ext", "e820_ext"))

    def section_header(self, s, ts) -> bool:
        """The headers that open a section (e820 maps, ``Zone ranges``, ``Movable zone start``, ``Early memory``)."""
        for key, section in self._HEADERS:
            if P[key].search(s):
                self.section = section
                return True
        if P["zone_hdr"].match(s):
            self.section = "zones"
        elif m := P["movable_hdr"].match(s):
            self.section, self.movable_is_pfn = "movable", bool(m.group(1))
        elif P["early_hdr"].match(s):
            self.section = "early"
        elif P["early_hdr_old"].match(s):
            self.section = "early_pfn"
        else:
            return False
        return True

    def e820(self, s, ts) -> bool:
        """e820 entries (BIOS, user-defined, extended; new and old formats), updates and removals."""
        b = self.boot
        if m := P["e820_entry"].match(s):
            kind = m.group(1)
            e = E820Entry(_hex(m.group(2)), _hex(m.group(3)) + 1, m.group(4))
            {"BIOS-e820": b.e820, "user": b.e820_user, "reserve setup_data": b.e820_extended}[kind].append(e)
        elif m := P["e820_entry_old"].match(s):
            e = E820Entry(_hex(m.group(2)), _hex(m.group(3)), m.group(4))
            (b.e820 if m.group(1) == "BIOS-e820" else b.e820_user).append(e)
        elif m := P["e820_update"].match(s):
            b.e820_updates.append((_hex(m.group(1)), _hex(m.group(2)) + 1, m.group(3), m.group(4)))
        elif m := P["e820_remove"].match(s):
            b.e820_updates.append((_hex(m.group(1)), _hex(m.group(2)) + 1, m.group(3), None))
        else:
            return False
        return True

    def numa(self, s, ts) -> bool:
        """SRAT, NUMA merges, a faked node, ``NODE_DATA`` and ``Initmem setup node``."""
        b = self.boot
        if m := P["srat"].search(s):
            b.srat.append((_dec(m.group(1)), _dec(m.group(2)), _hex(m.group(3)), _hex(m.group(4)) + 1,
                           "hotplug" in m.group(5)))
        elif m := P["numa_merge"].match(s):
            parts = [(_hex(a), _hex(c) + 1) for a, c in re.findall(_MEM, m.group(2))]
            b.numa_merges.append((_dec(m.group(1)), parts, (_hex(m.group(3)), _hex(m.group(4)) + 1)))
        elif m := P["fake_node"].match(s):
            b.numa_fake_node = (_hex(m.group(1)), _hex(m.group(2)) + 1)
        elif m := P["node_data"].match(s):
            b.node_data[_dec(m.group(1))] = (_hex(m.group(2)), _hex(m.group(3)) + 1)
        elif (m := P["node_data_old"].match(s)) and self.initmem_node is not None:
            b.node_data[self.initmem_node] = (_hex(m.group(1)), _hex(m.group(2)) + 1)
        elif m := P["initmem"].match(s) or P["initmem_old"].match(s):
            self.initmem_node = _dec(m.group(1))
            inclusive = m.re is P["initmem"]  # the [mem a-b] form ends inclusively
            b.initmem[self.initmem_node] = (_hex(m.group(2)), _hex(m.group(3)) + (1 if inclusive else 0))
            self.section = None
        else:
            return False
        return True

    def memory_map(self, s, ts) -> bool:
        """The lines of ``Zone ranges``, ``Movable zone start`` and ``Early memory node ranges`` (old and new)."""
        b, section = self.boot, self.section
        if section == "zones":
            if m := P["zone_line"].match(s):
                b.zone_ranges[m.group(1)] = None if m.group(4) else (_hex(m.group(2)), _hex(m.group(3)) + 1)
                return True
            if m := P["zone_line_pfn"].match(s):
                b.zone_ranges[m.group(1)] = (_hex(m.group(2)) * 4096, _hex(m.group(3)) * 4096)
                return True
        if section == "movable" and (m := P["movable_node"].match(s)):
            v = _num(m.group(2))
            b.movable_zone_start_pfn[_dec(m.group(1))] = v if self.movable_is_pfn else v // 4096
            return True
        if m := P["movable_one"].match(s):
            b.movable_zone_start_pfn[_dec(m.group(1))] = _num(m.group(2))
            return True
        if section == "early" and (m := P["early_line"].match(s)):
            b.early_node_ranges.append(MemRange(_dec(m.group(1)), _hex(m.group(2)), _hex(m.group(3)) + 1))
            return True
        if section == "early_pfn" and (m := P["early_line_pfn"].match(s)):
            b.early_node_ranges.append(MemRange(_dec(m.group(1)), _hex(m.group(2)) * 4096, _hex(m.group(3)) * 4096))
            return True
        return False

    def _zone_report(self, zone) -> ZoneReport:
        key = (self.totalpages_node, zone)
        if key not in self._zone_reports:
            self._zone_reports[key] = ZoneReport(*key)
            self.boot.zone_reports.append(self._zone_reports[key])
        return self._zone_reports[key]

    _ZONE_FIGURES = (("zone_memmap", "memmap_pages"), ("zone_reserved", "reserved_pages"), ("zone_present", "present"))

    def node_summaries(self, s, ts) -> bool:
        """``On node N totalpages``, the per-zone lines under it, and the holes in all their wordings."""
        b = self.boot
        if m := P["totalpages"].match(s):
            self.totalpages_node = _dec(m.group(1))
            b.node_totalpages[self.totalpages_node] = _dec(m.group(2))
        elif m := P["hole_node_zone"].match(s):
            b.holes.append(Hole(_dec(m.group(3)), _dec(m.group(1)), m.group(2), s))
        elif m := P["hole_zone"].match(s):
            b.holes.append(Hole(_dec(m.group(2)), self.totalpages_node, m.group(1), s))
        elif m := P["hole_zeroed"].match(s) or P["hole_reserved"].match(s):
            b.holes.append(Hole(_dec(m.group(1)), None, None, s))
        else:
            for key, attr in self._ZONE_FIGURES:
                if m := P[key].match(s):
                    setattr(self._zone_report(m.group(1)), attr, _dec(m.group(2)))
                    return True
            return False
        return True

    def memory_line(self, s, ts) -> bool:
        """``Memory: AK/TK available (...)`` (the first one)."""
        m = P["memory"].match(s)
        if not m or self.boot.memory is not None:
            return False
        parts = {}
        for piece in (m.group(3) or "").split(","):
            if pm := re.match(r"\s*(\d+)K (.+?)\s*$", piece):
                parts[pm.group(2)] = _dec(pm.group(1))
        self.boot.memory = MemoryLine(_dec(m.group(1)), _dec(m.group(2)), parts)
        self.seen_memory_line = True
        return True

    def deferred_init(self, s, ts) -> bool:
        """The per-node deferred struct page init lines (4.x ``node N initialised, P pages in Mms``, kswapd's,
        and 5.x+ ``node N deferred pages initialised in Mms``)."""
        if m := P["deferred_new"].match(s):
            self.boot.deferred_init.append(DeferredInit(_dec(m.group(1)), _dec(m.group(2)), None, ts, s))
        elif m := P["deferred_old"].match(s) or P["deferred_kswapd"].match(s):
            self.boot.deferred_init.append(DeferredInit(_dec(m.group(1)), _dec(m.group(3)), _dec(m.group(2)), ts, s))
        else:
            return False
        return True

    def placed_reservations(self, s, ts) -> bool:
        """Reservations whose address the log prints: crash kernel, initrd, software IO TLB, CMA."""
        b = self.boot
        if m := P["crash_new"].match(s):
            b.crashkernel.append((_hex(m.group(1)), _hex(m.group(2))))
        elif m := P["crash_old"].match(s):
            size, at = _dec(m.group(1)) * MiB, _dec(m.group(2)) * MiB
            b.crashkernel.append((at, at + size))
        elif m := P["ramdisk"].match(s):
            b.ramdisk = (_hex(m.group(1)), _hex(m.group(2)) + 1)
        elif m := P["ramdisk_old"].match(s):
            b.ramdisk = (_hex(m.group(1)), _hex(m.group(2)))
        elif m := P["swiotlb_new"].match(s) or P["swiotlb_old"].match(s):
            start, last, mb = _hex(m.group(1)), _hex(m.group(2)), _dec(m.group(3))
            # 4.x and 5.x+ both print the exclusive end here (io_tlb_end / mem->end), unlike most [mem] prints
            b.swiotlb = (start, last if last - start == mb * MiB else last + 1)
            b.swiotlb_initialised = True
        elif m := P["swiotlb_size"].match(s):
            b.swiotlb_size = _dec(m.group(1)) * MiB
            b.swiotlb_initialised = True
        elif P["swiotlb_area"].match(s):
            b.swiotlb_initialised = True
        elif m := P["cma"].match(s):
            start = _hex(m.group(2))
            b.cma.append((start, start + _dec(m.group(1)) * MiB))
        else:
            return False
        return True

    def percpu_and_cpus(self, s, ts) -> bool:
        """The per-cpu first chunk (``percpu: Embedded ...``, ``pcpu-alloc:`` groups) and the CPU counts."""
        b = self.boot
        if m := P["percpu"].match(s):
            b.percpu = {"pages_per_cpu": _dec(m.group(1)), "unit": _dec(m.group(6)),
                        "base_virt": _hex(m.group(2)) if m.group(2) else None, "allocator": "embed"}
        elif m := P["percpu_page"].match(s):
            b.percpu = {"pages_per_cpu": _dec(m.group(1)), "unit": 4096 * _dec(m.group(1)),
                        "base_virt": None, "allocator": "page"}
        elif m := P["pcpu_alloc_hdr"].match(s):
            self.pcpu_atom = _dec(m.group(2))
        elif m := P["pcpu_alloc_grp"].match(s):
            for gm in re.finditer(r"\[(\d+)\]((?:\s+[\d-]+)*)", m.group(1)):
                cpus = [t for t in gm.group(2).split() if t.isdigit()]
                self.pcpu_groups[_dec(gm.group(1))] = self.pcpu_groups.get(_dec(gm.group(1)), 0) + len(cpus)
            _cpus(sum(self.pcpu_groups.values()), "pcpu-alloc: lines list")
        elif m := P["setup_percpu"].match(s):
            b.nr_cpu_ids, b.nr_node_ids = _cpus(_dec(m.group(1)), "nr_cpu_ids"), _dec(m.group(2))
        elif m := P["allowing"].search(s):
            # "Allowing P CPUs, H hotplug CPUs" (prefill_possible_map): P possible, of which H not present;
            # "Allowing A present CPUs plus D hotplug CPUs" (6.9+ topology_init_possible_cpus): A + D possible.
            first, hotplug = _dec(m.group(1)), _dec(m.group(3))
            if not m.group(2) and hotplug > first:
                raise _BadFigure(f"{hotplug} hotplug CPUs of only {first} possible ones")
            b.possible_cpus = _cpus(first + hotplug if m.group(2) else first, "possible CPUs")
            b.present_cpus = first if m.group(2) else first - hotplug
        else:
            return False
        return True

    def smp_bringup(self, s, ts) -> bool:
        """Which node each CPU is on: ``SRAT: PXM p -> APIC a -> Node n`` (an enabled processor's affinity; 6.x
        prints it at debug level only) and smp_init's ``.... node #N, CPUs: #a #b`` announce lines (every
        secondary CPU brought up, by node; a line cut by other output goes on in a line of ``#k`` alone), closed
        by ``smp: Brought up N nodes, M CPUs``."""
        b = self.boot
        if m := P["srat_cpu"].search(s):
            b.srat_cpus.setdefault(_dec(m.group(3)), set()).add(_hex(m.group(2)))
            _cpus(sum(map(len, b.srat_cpus.values())), "SRAT processor affinity lines list")
        elif m := P["smp_node"].match(s):
            self.smp_node = _dec(m.group(1))
            self._announce(m.group(2))
        elif self.smp_node is not None and P["smp_cont"].match(s):
            self._announce(s)
        elif m := P["smp_up"].match(s):
            b.smp_brought_up, self.smp_node = _cpus(_dec(m.group(1)), "CPUs brought up"), None
        else:
            return False
        return True

    def _announce(self, text):
        cpus = self.boot.smp_cpus.setdefault(self.smp_node, set())
        cpus.update(_dec(c) for c in re.findall(r"#(\d+)", text))
        _cpus(sum(map(len, self.boot.smp_cpus.values())), "announced CPUs")

    def early_allocations(self, s, ts) -> bool:
        """Sizes of early allocations (hash tables before ``Memory:``, log buffer, KFENCE) and the small ranges
        the log places (early page tables, the real-mode trampoline, firmware tables)."""
        b = self.boot
        if m := P["hash"].match(s):
            if not self.seen_memory_line and "vmalloc" not in (m.group(4) or ""):
                b.early_hash_tables.append((m.group(1), _dec(m.group(3))))
        elif m := P["log_buf"].match(s):
            b.log_buf_bytes = _dec(m.group(1))
        elif m := P["kfence"].match(s):
            b.kfence_bytes = _dec(m.group(1))
        elif m := P["brk"].match(s):
            b.brk.append((_hex(m.group(1)), _hex(m.group(2)) + 1))
        elif m := P["trampoline"].match(s):
            start = _hex(m.group(1))
            b.trampoline = (start, start + _dec(m.group(2)))
        elif m := P["mptable"].match(s):
            b.fixed_reservations.append(("MP table", _hex(m.group(1)), _hex(m.group(2)) + 1, s))
        elif m := P["esrt"].match(s):
            b.fixed_reservations.append(("EFI ESRT", _hex(m.group(1)), _hex(m.group(2)), s))
        elif m := P["acpi_table"].match(s):
            b.fixed_reservations.append((f"ACPI {m.group(1)}", _hex(m.group(2)), _hex(m.group(3)) + 1, s))
        else:
            return False
        return True

    def memblock_debug(self, s, ts) -> bool:
        """``memblock=debug``: every ``memblock_reserve`` / ``memblock_free`` before the ``Memory:`` line."""
        m = P["memblock_dbg"].match(s)
        if not m or self.seen_memory_line:
            return False
        kind = "reserve" if m.group(1) == "memblock_reserve" else "free"
        self.boot.memblock_debug.append((kind, _hex(m.group(2)), _hex(m.group(3)) + 1))
        return True


# ------------------------------------------------------------------------------------------------------
# zone limits
# ------------------------------------------------------------------------------------------------------

def _round_up(x, a):
    return -(-x // a) * a


def zone_limits_from_log(zone_ranges: dict, memory_end: int, movable_normal: int | None, geometry: Geometry,
                         notes: list) -> dict:
    """Map the kernel's ``Zone ranges`` onto the model's ``zone_limits`` (appends what it assumed to notes).

    x86_64 prints ``DMA`` as ``[0x1000, min(16M, max_pfn))`` and ``DMA32`` as ``[16M, min(4G, max_pfn))``;
    the printed Normal end is the end of memory, not a limit. So: the DMA and DMA32 limits are the printed
    ends, except that an end clamped by the end of memory (a machine with less than 4 GiB) becomes the
    architectural limit (16 MiB / 4 GiB), which gives the same zones because no memory lies above it; an
    ``empty`` zone gets the previous limit; Normal gets a limit only when Movable zone starts are printed.
    """
    block = geometry.page_size << geometry.max_order
    limits = {}
    prev = 0
    for zone, arch in X86_64_DMA_ZONES:
        if zone not in zone_ranges:
            if zone_ranges:  # the section is printed without this zone: the kernel has no such zone
                limits[zone] = prev
                notes.append(f"zone limits: 'Zone ranges' has no {zone} line (zone not configured); it is empty")
            else:
                limits[zone] = max(prev, arch)
            prev = limits[zone]
            continue
        rng = zone_ranges[zone]
        if rng is None:
            limits[zone] = prev
            notes.append(f"zone limits: {zone} is printed 'empty'; its limit is the previous one ({prev:#x})")
        else:
            end = rng[1]
            lim = clamped_zone_limit(end, memory_end, arch, prev, block)
            if lim is not None:
                if lim != end:
                    notes.append(f"zone limits: {zone} ends at {end:#x} = the end of memory (the kernel clamps the "
                                 f"zone to max_pfn); the model uses the architectural limit {lim:#x}, which gives "
                                 "the same zones")
            else:
                lim = end
                if lim % block:
                    lim = _round_up(lim, block)
                    notes.append(f"zone limits: {zone} end {end:#x} rounded up to the MAX_ORDER block ({lim:#x})")
            limits[zone] = lim
        prev = limits[zone]
    if movable_normal is not None:
        limits["Normal"] = max(movable_normal, prev)
    return limits


# ------------------------------------------------------------------------------------------------------
# building the topology
# ------------------------------------------------------------------------------------------------------

def topology_from_dmesg(text_or_path, geometry: Geometry | None = None, boot: int | None = None):
    """``Topology.from_dmesg``: parse a boot log and build its topology (see the module docstring and
    :func:`parse_dmesg` for the paths it reads and ``boot``)."""
    text, path = _read(text_or_path)  # read once: standard input cannot be read twice
    parsed, boot_text = _parse_text(text, path, boot)
    if parsed.memblock_debug:  # memblock=debug (a kernel-lab log): the exact reserved map, see pgdefer.lab.importer
        from ..lab.importer import lab_topology
        return lab_topology(boot_text, geometry, name=path)
    return build_topology(parsed, geometry)


def node_cpus_from_log(boot: DmesgBoot, nodes) -> tuple[dict, str]:
    """CPUs per node (node -> count, for each node with memory in ``nodes``) and the lines they were read from;
    ``({}, why)`` when the log does not show them.

    What padata's ``max_threads`` counts is ``cpumask_of_node()`` at ``page_alloc_init_late``, after smp_init: the
    CPUs brought up on the node. In order of preference:

    1. smp_init's announce lines, when ``smp: Brought up N nodes, M CPUs`` confirms that they list all but one
       of the M CPUs: that one is the boot CPU (CPU 0, never announced), counted on the first node;
    2. the ``SRAT: PXM p -> APIC a -> Node n`` lines (every enabled processor, with its node);
    3. one node: every present CPU is on it (``Allowing ...`` line, else ``nr_cpu_ids``).
    """
    nodes = sorted(nodes)
    announced = sum(map(len, boot.smp_cpus.values()))
    if nodes and boot.smp_brought_up is not None and announced + 1 == boot.smp_brought_up:
        counts = {n: len(boot.smp_cpus.get(n, ())) for n in nodes}
        counts[nodes[0]] += 1
        return counts, (f"smp_init's '.... node #N, CPUs:' lines ({announced} secondary CPUs) and the boot CPU on "
                        f"node {nodes[0]}, {boot.smp_brought_up} as 'smp: Brought up' counts")
    if boot.srat_cpus:
        return ({n: len(boot.srat_cpus.get(n, ())) for n in nodes},
                f"the 'SRAT: PXM p -> APIC a -> Node n' lines ({sum(map(len, boot.srat_cpus.values()))} CPUs)")
    if len(nodes) == 1:
        if boot.present_cpus:
            return {nodes[0]: boot.present_cpus}, f"the 'Allowing ...' line ({boot.present_cpus} present CPUs)"
        if boot.nr_cpu_ids:
            return {nodes[0]: boot.nr_cpu_ids}, f"nr_cpu_ids:{boot.nr_cpu_ids} (setup_percpu)"
    return {}, "the log shows no CPUs per node (no SRAT processor lines, no smp_init announce lines)"


def kernel_info(boot: DmesgBoot, nodes) -> tuple:
    """(:class:`~pgdefer.topology.KernelInfo`, how its CPUs per node were read) of a parsed boot."""
    from ..topology import MEMORY_LINE_KEYS, KernelInfo

    cpus, how = node_cpus_from_log(boot, nodes)
    mem = boot.memory
    line = None
    if mem is not None:
        figures = (mem.available_kib, mem.total_kib, mem.reserved_kib, mem.cma_reserved_kib)
        line = {k: v for k, v in zip(MEMORY_LINE_KEYS, figures) if v is not None}
    return KernelInfo(version=boot.kernel_version, node_cpus=cpus, deferred_init_lines=bool(boot.deferred_init),
                      memory_line=line), how


def _fmt_kib(nbytes):
    return f"{nbytes // KiB} KiB" if nbytes % KiB == 0 else f"{nbytes} B"


def build_topology(boot: DmesgBoot, geometry: Geometry | None = None):
    """Build a Topology from a parsed boot; fills ``boot.reservations``, ``boot.assumptions`` and the
    reserved-memory accounting, and attaches ``boot`` as ``topology.source``."""
    name = Path(boot.path).stem if boot.path else "dmesg"
    where = boot.path or "<boot log>"
    g = geometry or Geometry()
    if not boot.early_node_ranges:
        raise DmesgError(
            f"{where}: no 'Early memory node ranges' section: the log is truncated or starts after early boot "
            "(pgdefer needs the memory map free_area_init prints)")
    if "HighMem" in boot.zone_ranges:
        raise DmesgError(f"{where}: a 32-bit kernel's log (ZONE_HIGHMEM); pgdefer models x86_64 zones only")
    notes: list[str] = []
    ver = boot.version
    notes.append(f"built from boot log {Path(boot.path).name if boot.path else '<text>'}"
                 + (f" (kernel {boot.kernel_version})" if boot.kernel_version else " (kernel version not printed)"))
    if boot.boots_in_file > 1:
        notes.append(f"the file holds {boot.boots_in_file} boots; this is boot {boot.boot_in_file}")
    notes.append("memory = 'Early memory node ranges' (inclusive ends made half-open)")

    memory = [(r.start, r.end, r.node) for r in boot.early_node_ranges]
    memory_end = max(e for _, e, _ in memory)
    # -- zone limits -------------------------------------------------------------------------------
    movable_normal = None
    if boot.movable_zone_start_pfn:
        spans: dict[int, tuple[int, int]] = {}
        for s, e, n in memory:
            a, z = spans.get(n, (s, e))
            spans[n] = (min(a, s), max(z, e))
        starts = {n: pfn * g.page_size for n, pfn in boot.movable_zone_start_pfn.items()}
        try:
            movable_normal = movable_normal_limit(spans, starts)
        except ValueError as e:
            raise DmesgError(f"{where}: {e}") from None
        notes.append(f"zone limits: 'Movable zone start' printed for node(s) {sorted(starts)}; the model's "
                     f"Normal limit {movable_normal:#x} reproduces each node's ZONE_MOVABLE")
    if not boot.zone_ranges:
        notes.append("zone limits: the log has no 'Zone ranges'; using the x86_64 limits DMA=16M, DMA32=4G")
    zone_limits = zone_limits_from_log(boot.zone_ranges, memory_end, movable_normal, g, notes)

    # -- reservations ------------------------------------------------------------------------------
    placer = MemblockPlacer(memory)
    try:
        probe = Topology(memory, (), zone_limits, g)
    except TopologyError as e:
        raise DmesgError(f"{where}: the memory map in the log is not one memblock would accept: {e}") from None
    _place_reservations(boot, placer, probe, g, ver, notes)
    boot.reservations = list(placer.reservations)
    reserved = [(r.start, r.end) for r in placer.reservations]
    kernel, how = kernel_info(boot, probe.nodes)
    try:
        topo = Topology(memory, reserved, zone_limits, g, name=name, kernel=kernel)
    except TopologyError as e:  # pragma: no cover - probe above already validated memory and limits
        raise DmesgError(f"{where}: {e}") from None

    # -- accounting against the Memory: line ----------------------------------------------------------
    placed_pages = topo.reserved_pages
    boot.placed_reserved_kib = placed_pages * g.page_size // KiB
    if boot.memory is not None and boot.memory.reserved_kib is not None:
        target = boot.memory.reserved_kib + boot.memory.cma_reserved_kib
        boot.unplaced_reserved_kib = target - boot.placed_reserved_kib
        cma = f" + {boot.memory.cma_reserved_kib}K cma-reserved" if boot.memory.cma_reserved_kib else ""
        notes.append(f"reserved: placed {boot.placed_reserved_kib} KiB of the Memory: line's "
                     f"{boot.memory.reserved_kib} KiB reserved{cma}; unplaced {boot.unplaced_reserved_kib} KiB "
                     "(early allocations the log does not size or place: page tables, EFI/ACPI data, "
                     "boot-time slabs, ...)" if boot.unplaced_reserved_kib >= 0 else
                     f"reserved: placed {boot.placed_reserved_kib} KiB, MORE than the Memory: line's "
                     f"{target} KiB by {-boot.unplaced_reserved_kib} KiB (some placement rule over-reserves)")
        if boot.memory.total_kib != topo.present_pages * g.page_size // KiB:
            notes.append(f"WARNING: the Memory: line's total {boot.memory.total_kib} KiB differs from the present "
                         f"pages of 'Early memory node ranges' ({topo.present_pages * g.page_size // KiB} KiB)")
    else:
        notes.append("reserved: the log has no Memory: line; the reserved total cannot be checked")
    notes.append(f"CPUs per node {kernel.node_cpus}: from {how}" if kernel.node_cpus else how)
    boot.assumptions = notes
    topo.notes = tuple(notes)
    topo.source = boot
    topo.unplaced_reserved_kib = boot.unplaced_reserved_kib
    return topo


def _note(notes: list, r, text: str):
    """Say where a reservation went and why (nothing if it was not placed)."""
    if r is not None:
        notes.append(f"reserved {r.label} [{r.start:#x}, {r.end:#x}) {_fmt_kib(r.size)}: {text}")


def _place_reservations(boot: DmesgBoot, placer: MemblockPlacer, probe, g: Geometry, ver, notes: list):
    """memblock.reserved of the boot, in three steps: what the log places exactly, what the kernel places by
    a fixed rule, then (unless memblock=debug printed every reservation) the top-down allocations whose size
    the log prints, in kernel order."""
    percpu_placed = _place_from_log(boot, placer, g, ver, notes)
    _place_by_rule(boot, placer, ver, notes)
    if boot.memblock_debug:
        notes.append("memblock=debug lines replayed; size-only early allocations were not placed again")
        return
    _place_top_down(boot, placer, probe, g, ver, notes, percpu_placed)


def _place_from_log(boot: DmesgBoot, placer: MemblockPlacer, g: Geometry, ver, notes: list) -> bool:
    """Step 1: the ranges the log prints (initrd, crash kernel, NODE_DATA, bounce buffer, CMA, early page
    tables, trampoline, firmware tables, e820 updates inside memory, a pre-4.8 per-cpu address, memblock=debug).
    Returns whether the per-cpu first chunk was placed."""
    rsv = placer.reserve
    if boot.ramdisk:
        _note(notes, rsv("initrd", *boot.ramdisk, "log", "RAMDISK: line"), "from the 'RAMDISK:' line")
    for s, e in boot.crashkernel:
        _note(notes, rsv("crashkernel", s, e, "log", "crashkernel reservation line"),
              "from the crashkernel reservation line")
    for n, (s, e) in sorted(boot.node_data.items()):
        _note(notes, rsv(f"NODE_DATA({n})", s, e, "log", "NODE_DATA line"), "from the NODE_DATA line")
    if boot.swiotlb:
        _note(notes, rsv("swiotlb", *boot.swiotlb, "log", "software IO TLB line"), "bounce buffer, from its log line")
    for s, e in boot.cma:
        _note(notes, rsv("cma", s, e, "log", "cma: Reserved line"), "CMA area (counted as cma-reserved, not reserved)")
    if boot.brk:
        for s, e in boot.brk:
            rsv("brk", s, e, "log", "BRK ... PGTABLE line")
        notes.append(f"reserved {len(boot.brk)} early page-table page(s) from the 'BRK [...] PGTABLE' lines")
    if boot.trampoline:
        _note(notes, rsv("real-mode trampoline", *boot.trampoline, "log", "Base memory trampoline line"),
              "from the 'Base memory trampoline' line")
    fixed = [(lbl, s, e) for lbl, s, e, _ in boot.fixed_reservations]
    for lbl, s, e in fixed:
        rsv(lbl, s, e, "log", "reservation line")
    if fixed:
        notes.append(f"reserved {len(fixed)} firmware table range(s) from 'ACPI: Reserving ... table', "
                     "'esrt: Reserving' and 'found SMP MP-table' lines (ranges outside memory are ignored)")
    _place_e820_updates(boot, placer, notes)
    percpu_placed = _place_logged_percpu(boot, placer, g, ver, notes)
    if boot.memblock_debug:
        _replay_memblock_debug(boot, placer, notes)
    return percpu_placed


def _place_e820_updates(boot: DmesgBoot, placer: MemblockPlacer, notes: list):
    """'e820: update [mem ...] usable ==> reserved' inside memblock memory: efi_mem_reserve and friends
    reserve those in memblock too."""
    upd = [(s, e) for s, e, a, z in boot.e820_updates if z is not None and "usable" in a and "usable" not in z]
    upd_in_mem = [(s, e) for s, e in upd if any(s < me and e > ms for ms, me, _ in placer.memory)]
    for s, e in upd_in_mem:
        placer.reserve("e820 update", s, e, "log", "e820: update usable ==> reserved")
    if upd_in_mem:
        notes.append(f"reserved {len(upd_in_mem)} range(s) from 'e820: update [mem ...] usable ==> reserved' lines "
                     "that fall inside memblock memory (efi_mem_reserve and friends reserve them in memblock too; "
                     "updates outside memory only shaped the memory map)")


def _place_logged_percpu(boot: DmesgBoot, placer: MemblockPlacer, g: Geometry, ver, notes: list) -> bool:
    """The per-cpu first chunk at the physical address a pre-4.8 log prints (direct map without KASLR of the
    memory layout); False when the log does not give it."""
    pc = boot.percpu
    if not (pc and pc.get("base_virt") and ver and ver < (4, 8) and pc["base_virt"] >= X86_64_OLD_PAGE_OFFSET):
        return False
    ncpu = boot.nr_cpu_ids or sum(pc.get("groups", {}).values()) or None
    if not ncpu:
        return False
    base = pc["base_virt"] - X86_64_OLD_PAGE_OFFSET
    used = pc["pages_per_cpu"] * g.page_size
    for i in range(ncpu):
        placer.reserve("percpu", base + i * pc["unit"], base + i * pc["unit"] + used, "log", "PERCPU: ... @address")
    notes.append(f"reserved per-cpu first chunk: {ncpu} cpu(s) x {pc['pages_per_cpu']} pages at "
                 f"{base:#x} (the log prints its direct-map address; pre-4.8 direct map base "
                 f"{X86_64_OLD_PAGE_OFFSET:#x})")
    return True


def _place_by_rule(boot: DmesgBoot, placer: MemblockPlacer, ver, notes: list):
    """Step 2: the kernel image at the default load address, and the low memory x86 always reserves."""
    kimg = boot.memory.kernel_image_kib if boot.memory else None
    if kimg:
        _note(notes, placer.reserve("kernel image", X86_64_PHYSICAL_START, X86_64_PHYSICAL_START + kimg * KiB, "rule",
                                    "code+rwdata+rodata+init+bss from the Memory: line"),
              "size = code+rwdata+rodata+init+bss of the Memory: line, at the default x86_64 load address "
              "16 MiB (CONFIG_PHYSICAL_START; KASLR may have moved it; the real reservation [_text, _end) also "
              "holds alignment padding and brk)")
    else:
        notes.append("kernel image: not placed (no Memory: line with its section sizes)")
    if ver:
        _note(notes, reserve_low_memory(placer, ver),
              "x86 kernels since 5.13 always reserve the first 1 MiB ('x86/setup: always reserve the first 1M of "
              "RAM')" if ver >= (5, 13) else
              "x86 kernels before 5.13 reserve [0, 64K) (CONFIG_X86_RESERVE_LOW default; the BIOS/EBDA area near "
              "640K usually lies outside memory and is not modelled)")


def _place_top_down(boot: DmesgBoot, placer: MemblockPlacer, probe, g: Geometry, ver, notes: list,
                    percpu_placed: bool):
    """Step 3: allocations whose size the log prints, placed as memblock's top-down allocator would, in
    kernel order: crashkernel= (when no reservation line), memmaps, per-cpu areas, log buffer, early hash
    tables, KFENCE pool, software IO TLB."""
    if not boot.crashkernel:
        _place_cmdline_crashkernel(boot, placer, probe, ver, notes)
    place_memmaps(placer, probe.memory_pfn_ranges(), g, notes)
    memmap = [r for r in placer.reservations if r.label.startswith("memmap")]
    if memmap:
        total = sum(r.size for r in memmap)
        notes.append(f"reserved memmap {_fmt_kib(total)} in {len(memmap)} block(s): {STRUCT_PAGE_SIZE} B x pages of "
                     "each node's present sections, top-down at the end of the node, 2 MiB aligned, as "
                     "sparse_init's per-node buffer")
    if boot.percpu and not percpu_placed:
        _place_percpu(boot, placer, probe, g, notes)
    if boot.log_buf_bytes:
        _note(notes, placer.alloc("log_buf", boot.log_buf_bytes, g.page_size), "printk ring buffer text "
              "(log_buf_len line; its descriptor arrays are not sized in the log and stay unplaced), top-down")
    for hname, nbytes in boot.early_hash_tables:
        _note(notes, placer.alloc(f"{hname} hash", nbytes, g.page_size, lo=X86_64_MAX_DMA_ADDRESS),
              "early hash table printed before the Memory: line (memblock, top-down)")
    if boot.kfence_bytes and ver and ver >= (5, 12):
        _note(notes, placer.alloc("kfence pool", boot.kfence_bytes, g.page_size),
              "KFENCE pool (memblock-allocated before mem_init; size from the kfence line), top-down")
    if not boot.swiotlb and boot.swiotlb_initialised:
        _place_swiotlb(boot, placer, g, notes)


def _place_swiotlb(boot: DmesgBoot, placer: MemblockPlacer, g: Geometry, notes: list):
    """The software IO TLB the log says was set up but does not place: memblock_alloc_low, top-down below
    4 GiB, sized by the log, by swiotlb= or by the default."""
    size = boot.swiotlb_size
    how = "size from the 'bounce buffer size' line"
    if size is None:
        opt = [o for o in boot.cmdline_option("swiotlb") if o and o.split(",")[0].isdecimal()
               and len(o.split(",")[0]) <= 20]
        if opt:
            size = int(opt[-1].split(",")[0]) * SWIOTLB_SLAB
            how = "size from swiotlb= on the command line"
        else:
            size, how = SWIOTLB_DEFAULT_SIZE, "default size IO_TLB_DEFAULT_SIZE (64 MiB)"
    _note(notes, placer.alloc("swiotlb", size, g.page_size, hi=4 * GiB),
          f"software IO TLB allocated at boot ('area num' line); {how}; top-down below 4 GiB "
          "(memblock_alloc_low)")


def _replay_memblock_debug(boot, placer, notes):
    """memblock=debug logs print every reserve and free: replay them (reserve, then carve out frees)."""
    live: list[tuple[int, int]] = []
    for kind, s, e in boot.memblock_debug:
        live = [*live, (s, e)] if kind == "reserve" else subtract(live, [(s, e)])
    for s, e in live:
        placer.reserve("memblock_reserve", s, e, "log", "memblock=debug")
    notes.append(f"reserved {len(live)} range(s) from memblock=debug 'memblock_reserve:' lines minus "
                 "'memblock_free:' lines")


def _place_cmdline_crashkernel(boot, placer, probe, ver, notes):
    vals = boot.cmdline_option("crashkernel")
    if not vals:
        return
    system_ram = probe.memory_bytes
    main = [v for v in vals if not v.endswith(",low")]
    low = [v for v in vals if v.endswith(",low")]
    if not main:
        return
    try:
        req = crashkernel_request(main[-1], system_ram)
    except (ValueError, TypeError) as e:
        notes.append(f"crashkernel={main[-1]} on the command line could not be read ({e}); not placed")
        return
    if req is None:
        notes.append(f"crashkernel={main[-1]}: no range matches {system_ram >> 20} MiB of RAM; nothing reserved")
        return
    size, offset, high = req
    if offset:
        r = placer.reserve("crashkernel", offset, offset + size, "rule", "crashkernel=size@offset")
        notes.append(f"reserved crashkernel [{offset:#x}, {offset + size:#x}) from crashkernel={main[-1]} "
                     "(the log prints no reservation line)")
        return
    align = 16 * MiB  # CRASH_ALIGN
    low_max = 4 * GiB if ver is None or ver >= (5, 0) else 896 * MiB  # CRASH_ADDR_LOW_MAX (approximate by era)
    r = None
    if not high:
        r = placer.alloc("crashkernel", size, align, lo=align, hi=low_max,
                         detail=f"crashkernel={main[-1]}")
    if r is None:
        r = placer.alloc("crashkernel", size, align, lo=align, detail=f"crashkernel={main[-1]}")
        if r is not None and r.end > 4 * GiB:
            lsize = 256 * MiB
            if low:
                try:
                    lreq = crashkernel_request(low[-1], system_ram)
                    lsize = lreq[0] if lreq else 0
                except (ValueError, TypeError):
                    pass
            if lsize:
                placer.alloc("crashkernel low", lsize, align, lo=align, hi=4 * GiB, detail="crashkernel low part")
    if r is None:
        notes.append(f"crashkernel={main[-1]} ({size >> 20} MiB) does not fit anywhere; not placed")
        return
    notes.append(f"reserved crashkernel [{r.start:#x}, {r.end:#x}) {size >> 20} MiB: size from crashkernel="
                 f"{main[-1]} evaluated for {system_ram >> 20} MiB of RAM (the log prints no reservation line); "
                 f"placed top-down, 16 MiB aligned, below {low_max:#x} when possible (reserve_crashkernel)")


def _place_percpu(boot, placer, probe, g, notes):
    pc = boot.percpu
    groups = dict(pc.get("groups") or {})
    ncpu = boot.nr_cpu_ids or boot.possible_cpus
    if not groups:
        if not ncpu:
            notes.append("per-cpu areas: the number of possible CPUs is not printed; not placed")
            return
        groups = {0: ncpu}
    nodes = set(probe.nodes)
    used = pc["pages_per_cpu"] * g.page_size
    unit = pc["unit"] if pc["allocator"] == "embed" else used
    atom = pc.get("atom") or g.page_size
    placed = 0
    for grp, n in groups.items():
        node = grp if (len(nodes) > 1 and grp in nodes) else None
        at = placer.find(n * unit, atom, node=node, lo=X86_64_MAX_DMA_ADDRESS)
        if at is None:
            at = placer.find(n * unit, g.page_size, node=None)
        if at is None:
            continue
        for i in range(n):  # pcpu_embed_first_chunk frees each unit's tail beyond s+r+d
            placer.reserve("percpu", at + i * unit, at + i * unit + used, "top-down", f"group {grp}")
        placed += n
    notes.append(f"reserved per-cpu first chunk: {placed} cpu(s) x {pc['pages_per_cpu']} pages ('percpu: Embedded' "
                 f"line), group by group top-down ({'group g on node g' if len(nodes) > 1 else 'one node'}), "
                 f"{atom // KiB} KiB aligned; unit tails freed as pcpu_embed_first_chunk does")

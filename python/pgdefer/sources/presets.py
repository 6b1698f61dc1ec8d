"""Named machines: a small default server and the machines behind the published measurements.

``get(name)`` builds the :class:`~pgdefer.Topology`; ``PRESETS[name]`` is a :class:`Preset` that says what the
machine is, where its description comes from (``source``), the model policy matching the kernel that was
measured, and the published figures it is meant to be compared with (``published``, keyed by the anchor id
of spec section 6, e.g. ``"P3"``). Boot logs are not presets: import them with ``Topology.from_dmesg``.

None of the published machines printed its memory map, so their maps are **reconstructed** from what the
sources say (memory per node, VM or bare metal) with the conventional x86_64 layouts, each stated in the
preset's ``layout`` and in the topology's notes:

* bare metal: low memory ``[0x1000, 0x9f000)``, ``[1 MiB, lowmem_top)``, the PCI hole up to 4 GiB, then the
  rest of node 0 above 4 GiB and the other nodes one after another;
* KVM/QEMU (i440fx + SeaBIOS): ``[0x1000, 0x9fc00)``, ``[1 MiB, 0xbffdf000)`` (``0xdffdf000`` if the whole
  guest fits below 3.5 GiB) and the rest from 4 GiB.

Reservations (the same rule set for every preset): the first 1 MiB, the kernel image (32 MiB at 16 MiB),
a 48 MiB initrd top-down below the 4 GiB hole (where boot loaders put it), and each node's memmap
(64 B per pfn of its present sections) top-down at the end of the node, as sparse_init allocates it.

:func:`check_fits_host` refuses machines whose page array would not fit in this host's available memory
(``HOST_BYTES_PER_PAGE`` per simulated page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ..config import HOST_BYTES_PER_PAGE, Geometry, format_size
from ..errors import HostMemoryError, PgdeferError, did_you_mean
from ..topology import Topology
from .x86 import X86_64_PHYSICAL_START, GiB, MemblockPlacer, MiB, place_memmaps, reserve_low_memory

TiB = 1 << 40

#: The presets' kernel image: 32 MiB at the default load address (CONFIG_PHYSICAL_START).
KERNEL_IMAGE_START, KERNEL_IMAGE_SIZE = X86_64_PHYSICAL_START, 32 * MiB
INITRD_SIZE = 48 * MiB


class UnknownPreset(PgdeferError, LookupError):
    """A preset name that is not in :data:`PRESETS`."""


@dataclass(frozen=True)
class Preset:
    """A named machine: how to build it and what it is meant to be compared with."""

    name: str
    description: str
    source: str
    layout: str
    policy: str
    build: Callable = field(repr=False)
    kernel: str | None = None
    published: dict = field(default_factory=dict)
    #: The early allocations this machine's record calls for (``nodes -> [workload.Burst]``), which
    #: ``pgdefer boot --workload default`` replays instead of the generic storm; None: the generic one.
    workload: Callable | None = field(default=None, repr=False)

    def topology(self):
        """Build this preset's Topology (its ``source`` is this preset, which ``policy="auto"`` reads)."""
        topo = self.build(self)
        topo.source = self
        return topo

    @property
    def rules_kernel(self) -> str | None:
        """"major.minor" of :attr:`kernel`, which selects the low-memory reservation rule."""
        m = re.search(r"(\d+)\.(\d+)", self.kernel or "")
        return f"{m.group(1)}.{m.group(2)}" if m else None


# ------------------------------------------------------------------------------------------------------
# builders
# ------------------------------------------------------------------------------------------------------

def _x86_layout(node_sizes, kind="bare", lowmem_top=2 * GiB):
    """Memory regions (start, end, node) of an x86_64 machine with the given bytes of RAM per node.

    Node 0 holds the low memory and ``node_sizes[0] - lowmem`` from 4 GiB; later nodes follow contiguously.
    ``kind="qemu"`` uses the SeaBIOS map (``0x9fc00`` and ``0xbffdf000`` / ``0xdffdf000`` ends).
    """
    total = sum(node_sizes)
    if kind == "qemu":
        conv_end = 0x9FC00
        top = 0xDFFDF000 if total <= 0xE0000000 else 0xBFFDF000
    else:
        conv_end = 0x9F000
        top = lowmem_top
    regions = [(0x1000, conv_end, 0)]
    low = min(top, 1 * MiB + node_sizes[0])
    regions.append((1 * MiB, low, 0))
    cursor = 4 * GiB
    first_high = node_sizes[0] - (low - 1 * MiB) - (conv_end - 0x1000)
    # round node 0's high part to whole MiB (a DIMM size), never below zero
    first_high = max(0, first_high // MiB * MiB)
    if first_high:
        regions.append((cursor, cursor + first_high, 0))
        cursor += first_high
    for n, size in enumerate(node_sizes[1:], start=1):
        regions.append((cursor, cursor + size, n))
        cursor += size
    return regions


def _standard_reservations(memory, geometry, kernel_version, notes):
    """The preset reservation rules (see the module docstring); returns reserved (start, end) ranges."""
    placer = MemblockPlacer(memory)
    ver = tuple(int(x) for x in kernel_version.split(".")[:2]) if kernel_version else (6, 0)
    reserve_low_memory(placer, ver)
    notes.append("reserved [0, 1 MiB) (x86 >= 5.13 reserves the first 1 MiB)" if ver >= (5, 13) else
                 "reserved [0, 64 KiB) (x86 before 5.13: CONFIG_X86_RESERVE_LOW)")
    placer.reserve("kernel image", KERNEL_IMAGE_START, KERNEL_IMAGE_START + KERNEL_IMAGE_SIZE, "rule")
    notes.append(f"reserved kernel image [{KERNEL_IMAGE_START:#x}, {KERNEL_IMAGE_START + KERNEL_IMAGE_SIZE:#x}) "
                 "(32 MiB at the default load address 16 MiB)")
    r = placer.alloc("initrd", INITRD_SIZE, geometry.page_size, hi=4 * GiB)
    if r is not None:
        notes.append(f"reserved initrd [{r.start:#x}, {r.end:#x}) (48 MiB, top-down below 4 GiB as boot loaders "
                     "place it)")
    probe = Topology(memory, (), None, geometry)
    place_memmaps(placer, probe.memory_pfn_ranges(), geometry, notes)
    mm = [x for x in placer.reservations if x.label.startswith("memmap")]
    notes.append(f"reserved memmap {format_size(sum(x.size for x in mm))} in {len(mm)} block(s): 64 B per pfn of "
                 "each node's present sections, top-down at the end of the node (sparse_init)")
    return [(x.start, x.end) for x in placer.reservations]


def _build_x86(node_sizes, kind="bare", lowmem_top=2 * GiB):
    def build(preset: Preset):
        g = Geometry()
        memory = _x86_layout(node_sizes, kind, lowmem_top)
        notes = [preset.description, f"source: {preset.source}", f"memory map: {preset.layout}"]
        reserved = _standard_reservations(memory, g, preset.rules_kernel, notes)
        if preset.published:
            notes.append(f"published figures: {preset.published}")
        return Topology(memory, reserved, None, g, name=preset.name, notes=notes)

    return build


def _build_power(nodes, node_tib):
    """A ppc64 machine (64 KiB pages) of ``nodes`` equal nodes from address 0. The geometry is ppc64's with 64 KiB
    pages: SECTION_SIZE_BITS 24 (16 MiB sections), HUGETLB_PAGE_ORDER 8 (16 MiB pageblocks), FORCE_MAX_ZONEORDER
    9 (MAX_PAGE_ORDER 8). ppc64 puts all memory in ZONE_DMA (its boot logs print "Normal empty"), so DMA is the
    node's last zone, the one that defers. Reserved: the kernel image (32 MiB at 0) and each node's memmap
    (sparse_init, top-down at the end of the node); no x86 low-memory rules."""
    size = node_tib << 40

    def build(preset: Preset):
        g = Geometry(page_size="64K", section_size="16M", pageblock_order=8, max_order=8)
        memory = [(i * size, (i + 1) * size, i) for i in range(nodes)]
        notes = [preset.description, f"source: {preset.source}", f"memory map: {preset.layout}"]
        placer = MemblockPlacer(memory)
        placer.reserve("kernel image", 0, 32 * MiB, "rule")
        notes.append("reserved kernel image [0, 32 MiB)")
        place_memmaps(placer, Topology(memory, (), None, g).memory_pfn_ranges(), g, notes)
        if preset.published:
            notes.append(f"published figures: {preset.published}")
        top = nodes * size
        return Topology(memory, [(x.start, x.end) for x in placer.reservations], {"DMA": top, "DMA32": top}, g,
                        name=preset.name, notes=notes)

    return build


# ------------------------------------------------------------------------------------------------------
# the registry
# ------------------------------------------------------------------------------------------------------

_JORDAN_V3 = ("Daniel Jordan, \"[PATCH v3 6/8] mm: parallelize deferred_init_memmap()\", "
              "https://lore.kernel.org/r/20200527173608.2885243-7-daniel.m.jordan@oracle.com (spec section 6.2)")
_GORMAN_V4 = ("Mel Gorman, \"[PATCH 0/13] Parallel struct page initialisation v4\", "
              "https://lkml.iu.edu/hypermail/linux/kernel/1504.3/02589.html (spec section 6.1)")

_BARE = "bare-metal x86_64 layout reconstructed from the published memory per node: "
_QEMU = "KVM/QEMU (i440fx, SeaBIOS) guest layout reconstructed from the published guest size: "


def _p(name, description, source, layout, build, policy, kernel=None, published=None, workload=None):
    return Preset(name, description, source, layout, policy, build, kernel, published or {}, workload)


def _dragonhawk_workload(nodes) -> list:
    """M4's early demand per node, between memblock_free_all and do_basic_setup, where the real machine ran out
    of memory with a 2 GiB prefix per node and booted with 4 GiB.

    Derived: with ``hashdist`` (NUMA) the dentry and inode hash tables are vmalloc'd after memblock_free_all,
    interleaved over the nodes (boot's interleave policy), sized by ``alloc_large_system_hash`` from
    nr_kernel_pages, which counts the whole 24 TB (6.44 G pages): dentry (scale 13) 2^ilog2(pages / 2) = 2^31
    buckets, inode (scale 14) 2^30, 8 bytes each: 16 + 8 GiB, 1.5 GiB per node. Assumed: the rest of the demand
    up to do_basic_setup (slab caches, per-CPU areas, page tables, memory_dev_init's devices), which the record
    does not itemise, as 1 GiB per node, so that the total (2.5 GiB per node) lies between what a 2 GiB and a
    4 GiB prefix give, as the record says. Both as 4 MiB (order-10) blocks: the amount is what matters here."""
    from ..workload import Burst

    out = []
    for n in nodes:
        out.append(Burst(f"dentry + inode hash tables, node {n} (vmalloc, interleaved)", 384, 10, n))
        out.append(Burst(f"rest of the early demand, node {n} (assumed)", 256, 10, n))
    return out


def _bare(nodes, node_gib, lowmem_gib=2):
    """(layout, build) of a bare-metal machine of ``nodes`` equal nodes, ``lowmem_gib`` of node 0 below the hole."""
    return (_BARE + f"{nodes} x {node_gib} GiB, {lowmem_gib} GiB of node 0 below the 4 GiB hole",
            _build_x86([node_gib * GiB] * nodes, "bare", lowmem_gib * GiB))


def _qemu(gib):
    """(layout, build) of a one-node KVM/QEMU guest of ``gib`` GiB."""
    return _QEMU + f"{gib} GiB", _build_x86([gib * GiB], "qemu")


def _jordan_v3(cpus, one_thread_ms, threaded_ms, boot_before_ms, boot_after_ms, threads_per_node=None):
    """One machine's row of the v3 posting's table: deferred init with 1 and N threads (N = the threads per
    node where the posting gives them, else the CPUs) and the kernel boot before and after the series."""
    row = {"cpus": cpus} if threads_per_node is None else {"cpus": cpus, "threads_per_node": threads_per_node}
    row["deferred_init_ms"] = {"1 thread": one_thread_ms, f"{threads_per_node or cpus} threads": threaded_ms}
    row["kernel_boot_ms"] = {"before": boot_before_ms, "after": boot_after_ms}
    return row


_LIST = [
    _p("default",
       "two-node server, 2 x 8 GiB: small enough that a full simulated boot takes seconds",
       "synthetic (pgdefer); conventional x86_64 low-memory layout",
       "conventional bare-metal x86_64 layout: node 0: [0x1000, 0x9f000), [1 MiB, 3 GiB), hole to 4 GiB, "
       "[4 GiB, 9 GiB); node 1: [9 GiB, 17 GiB)",
       _build_x86([8 * GiB, 8 * GiB], "bare", 3 * GiB), "v4.17", kernel="6.8"),
    _p("p3-skylake-2x384g",
       "Xeon Platinum 8167M (Skylake), bare metal, 2 nodes x 384 GB = 768 GB, 2x26x2 = 104 CPUs",
       f"P3: {_JORDAN_V3}",
       *_bare(2, 384), "v4.17", kernel="5.7-rc7 + padata series v3",
       published={"P3": _jordan_v3(104, 1785.7, 138.0, 4089.7, 2443.7, threads_per_node=52)}),
    _p("p4-broadwell-192g",
       "Xeon E5-2699C v4 (Broadwell), 1 node, 192 GB, 32 CPUs (v3 of the posting says KVM guest, v2 bare metal)",
       f"P4: {_JORDAN_V3}",
       _QEMU + "192 GiB, following the v3 posting (KVM guest)",
       _build_x86([192 * GiB], "qemu"), "v4.17", kernel="5.7-rc7 + padata series v3",
       published={"P4": _jordan_v3(32, 1096.0, 125.7, 1988.7, 1004.0, threads_per_node=32)}),
    _p("p5-haswell-2x128g",
       "Xeon E5-2699 v3 (Haswell), bare metal, 2 nodes x 128 GB, 72 CPUs",
       f"P5: {_JORDAN_V3}",
       *_bare(2, 128), "v4.17", kernel="5.7-rc7 + padata series v3",
       published={"P5": _jordan_v3(72, 627.0, 90.0, 1680.0, 1142.3, threads_per_node=36)}),
    _p("p9-2node-192g",
       "Josh Triplett's system: 192 GB, 96 CPUs, 2 nodes",
       f"P9: {_JORDAN_V3}; v2 run: https://lore.kernel.org/r/20200520182645.1658949-6-daniel.m.jordan@oracle.com",
       _BARE + "2 x 96 GiB with 3 GiB of node 0 below the 4 GiB hole: node 1's deferred pages exceed node 0's "
       "by 790,316 pages (about 3.0 GiB), the part of node 0 that is not in its Normal zone",
       _build_x86([96 * GiB, 96 * GiB], "bare", 3 * GiB), "v4.17", kernel="5.7-rc7 + padata series v3",
       published={"P9": {"cpus": 96,
                         "deferred_pages": {"0": 23398907, "1": 24189223},
                         "deferred_init_ms": {"node 0": {"1 thread": 292, "padata": 36},
                                              "node 1": {"1 thread": 304, "padata": 32, "padata (v2 run)": 28}},
                         "run_init_s (v2)": {"before": 0.629, "after": 0.361}}}),
    _p("vm-64g",
       "KVM guest, 1 node, 64 GiB (AMD EPYC 7551 host for P6, 16 vCPUs; a single 64 GiB node for P11)",
       f"P6: {_JORDAN_V3}; P11: Mike Rapoport, \"[PATCH v2 0/4] mm/mm_init: simplify deferred init of struct "
       "pages\", https://lore.kernel.org/r/20250901083423.3061349-1-rppt@kernel.org",
       *_qemu(64), "v4.17", kernel="5.7-rc7 + padata series v3 (P6); ~6.17 (P11)",
       published={"P6": _jordan_v3(16, 240.7, 47.0, 1029.3, 813.7, threads_per_node=16),
                  "P11": {"deferred_init_ms": {"before the series": 58, "after the series": 55}}}),
    _p("vm-16g",
       "KVM guest on AMD EPYC 7551, 16 GB, 4 vCPUs",
       f"P7: {_JORDAN_V3}",
       *_qemu(16), "v4.17", kernel="5.7-rc7 + padata series v3",
       published={"P7": _jordan_v3(4, 49.7, 22.0, 716.0, 687.0)}),
    _p("vm-14g",
       "KVM guest on Xeon E5-2699 v3, 14 GB, 4 vCPUs",
       f"P8: {_JORDAN_V3}",
       *_qemu(14), "v4.17", kernel="5.7-rc7 + padata series v3",
       published={"P8": _jordan_v3(4, 122.3, 53.3, 787.7, 714.7)}),
    _p("vm-3.5g-dma32",
       "small KVM guest (the <= 4 GiB VM class): 3.5 GiB, all of it below the 4 GiB PCI hole, so DMA32 is the "
       "last (deferred) zone",
       "spec section 1.1 ('DMA32 on a <= 4 GiB VM'); a QEMU i440fx guest keeps all RAM below 4 GiB up to "
       "0xe0000000 (3.5 GiB), so a 4 GiB guest would already have 1 GiB of Normal above 4 GiB. No published "
       "measurement is for such a guest (M6's 4 GB box is POWER with 64 KiB pages)",
       _QEMU + "3.5 GiB: [0x1000, 0x9fc00), [1 MiB, 0xdffdf000)",
       _build_x86([3584 * MiB], "qemu"), "v4.17", kernel="6.8"),
    _p("m1-4node-64g",
       "Mel Gorman's test box, 64 GB, 4 nodes",
       f"M1: {_GORMAN_V4}",
       *_bare(4, 16), "v4.2", kernel="4.0 + series",
       published={"M1": {"deferred_init_ms_per_node": {"min": 188, "max": 216},
                         "boot": "saving negligible"}}),
    _p("m2-4node-1t",
       "Mel Gorman's test box, 1 TB, 4 nodes",
       f"M2: {_GORMAN_V4}",
       *_bare(4, 256), "v4.2", kernel="4.0 + series",
       published={"M2": {"deferred_init_ms_per_node": {"min": 1116, "max": 1148},
                         "boot_s_saved": 16}}),
    _p("m3-16node-12t",
       "HP 16-socket IvyBridge-EX, 12 TB, 16 nodes",
       "M3: Waiman Long, reply to the v4 series, https://lore.kernel.org/r/554030D1.8080509@hp.com "
       "(spec section 6.1)",
       *_bare(16, 768), "v4.2", kernel="4.0 + series",
       published={"M3": {"deferred_pages_per_node": 197655470,
                         "deferred_init_ms_per_node": {"min": 4390, "max": 4670},
                         "boot_s": {"before": 453, "after": 265}}}),
    _p("m4-16node-24t",
       "HP Superdome2 16-socket x86 (DragonHawk), 24 TB, 16 nodes of 1.5 TB",
       "M4/F3: Waiman Long, https://lore.kernel.org/r/554415B1.2050702@hp.com (spec sections 6.1, 6.3)",
       *_bare(16, 1536), "v4.2", kernel="4.0.1 + series",
       published={"M4": {"prefix_2GiB_per_node": "OOM panic in do_basic_setup (managed about 2 GB per node)",
                         "prefix_4GiB_per_node_boot_s": {"before": 694, "after": 346}}},
       workload=_dragonhawk_workload),
    _p("m6-power-16node-32t",
       "IBM Power, 64 KiB pages, 32 TB, 16 nodes, 1024 CPUs",
       "M6: Li Zhang, \"[PATCH 0/2] mm: enable page parallel initialisation for Power\", "
       "https://lore.kernel.org/r/1457409354-10867-1-git-send-email-zhlcindy@gmail.com (spec section 6.1); its "
       "sizing patch 987b3095c2a7 (4.6) is the v4.6 prefix rule",
       "ppc64 layout reconstructed from the published size: 16 x 2 TiB from address 0, all memory in ZONE_DMA "
       "(the record's per-node range of deferred pages says its nodes were uneven; 2 TiB nodes match its top)",
       _build_power(16, 2), "v4.6", kernel="4.4 + series",
       published={"M6": {"deferred_pages_per_node_range": {"min": 16_600_000, "max": 33_400_000},
                         "deferred_init_ms_per_node": {"min": 280, "max": 580},
                         "boot_s": "about 160 with and without the feature"}}),
    _p("m9-8node-4t",
       "Intel 8-socket 96-core IvyBridge, 4 TB",
       "M9: Waiman Long, \"mm/page_alloc.c: don't call kasan_free_pages() at deferred mem init\" (3c0c12cc8f00), "
       "https://lore.kernel.org/r/1544459388-8736-1-git-send-email-longman@redhat.com (spec section 6.1)",
       *_bare(8, 512), "v4.17", kernel="4.20-rc",
       published={"M9": {"deferred_pages": {"1": 132086516},
                         "deferred_init_ms": {"node 1": {"non-debug": 7027, "KASAN": 143052,
                                                         "KASAN, poisoning skipped": 18702}}}}),
    _p("m12-vm-4t",
       "Red Hat KVM guest with a single 4 TB node",
       "M12: Pavel Tatashin, \"mm: call cond_resched() from deferred_init_memmap()\" (3d060856adfc), "
       "https://lore.kernel.org/r/20200403140952.17177-4-pasha.tatashin@soleen.com (spec section 6.1)",
       _QEMU + "4 TiB",
       _build_x86([4 * TiB], "qemu"), "v4.17", kernel="4.18 (RHEL 8)",
       published={"M12": {"deferred_pages": {"0": 1055935372},
                          "deferred_init_ms": {"node 0": 88650}, "note": "RCU stall warnings"}}),
]

#: name -> :class:`Preset`
PRESETS: dict[str, Preset] = {p.name: p for p in _LIST}


def names() -> list:
    """Preset names, in registry order (``default`` first)."""
    return list(PRESETS)


def info(name: str) -> Preset:
    """The :class:`Preset` called ``name`` (raises :class:`UnknownPreset`)."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise UnknownPreset(f"unknown preset {name!r}{suggestion(name)} Known presets: {', '.join(PRESETS)}") from None


def suggestion(name) -> str:
    """``"; did you mean 'NAME'?"`` for the preset closest to a misspelt ``name`` (difflib), else ""."""
    return did_you_mean(name, PRESETS)


def get(name: str):
    """Build the topology of preset ``name``."""
    return info(name).topology()


# ------------------------------------------------------------------------------------------------------
# host budget
# ------------------------------------------------------------------------------------------------------

def host_bytes_needed(topology) -> int:
    """Host memory the Rust core needs for this machine's page array: memmap pages x HOST_BYTES_PER_PAGE."""
    return topology.memmap_pages * HOST_BYTES_PER_PAGE


def host_available_bytes(meminfo="/proc/meminfo"):
    """MemAvailable of this host in bytes, or None if it cannot be read."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    return int(parts[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _gib(n):
    return f"{n / GiB:.1f} GiB"


def check_fits_host(topology, available=None) -> int:
    """Raise :class:`~pgdefer.errors.HostMemoryError` if the machine's page array would not fit on this host.

    ``available`` (bytes) defaults to MemAvailable from /proc/meminfo; if that cannot be read the check
    passes (nothing to compare with). Returns the bytes needed.
    """
    need = host_bytes_needed(topology)
    have = host_available_bytes() if available is None else int(available)
    if have is not None and need > have:
        label = f"machine {topology.name!r}" if topology.name else "this machine"
        raise HostMemoryError(
            f"{label} needs {_gib(need)} of host memory for its page array ({topology.memmap_pages:,} struct pages "
            f"x {HOST_BYTES_PER_PAGE} B) but this host has {_gib(have)} available"
            + (" (MemAvailable in /proc/meminfo)" if available is None else ""))
    return need

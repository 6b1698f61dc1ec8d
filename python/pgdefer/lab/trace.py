"""The ``kmem:mm_page_alloc`` / ``kmem:mm_page_free`` trace of a kernel-lab log as a workload.

With ``trace_event=kmem:mm_page_alloc,kmem:mm_page_free tp_printk`` every buddy allocation and free from
``trace_init`` in ``start_kernel`` on is printed as one line::

    mm_page_alloc: page=(____ptrval____) pfn=0x12e1 order=0 migratetype=0 gfp_flags=GFP_KERNEL|__GFP_ZERO
    mm_page_free: page=(____ptrval____) pfn=0x10189a order=0

:class:`TraceWorkload` holds them in the kernel's order. The zone an allocation may use is the highest zone
its GFP flags allow (``gfp_zone``: ``__GFP_DMA`` -> DMA, ``__GFP_DMA32`` -> DMA32, ``__GFP_HIGHMEM`` with
``__GFP_MOVABLE`` -> Movable, else Normal); the preferred node is the node of the pfn the kernel returned.
:meth:`TraceWorkload.replay` runs them on a :class:`~pgdefer.Machine`: each allocation through
``alloc_pages``, each free of a traced allocation through ``free_pages`` of the model's own block, and each
free of a page the kernel's deferred init or grow freed (a pfn the model left uninitialised at boot) is
counted as ``deferred_frees`` (the model's own pass and grow do those), each free of a page that was
memblock-reserved (``free_reserved_area``: init sections, SMP alternatives, the
initrd) through ``free_reserved_area``. A free of a page the trace never allocated and the model does not
hold reserved (allocated before tracing began) is counted as ``untraced_frees``, not invented. Each allocation
asks for the migratetype the kernel printed; ``same_pfn`` counts those for which the model, choosing on its own,
handed out the kernel's pfn.

A trace record cut by other console output is a :class:`~pgdefer.errors.DmesgError` naming the line; a
complete record glued after other text (e.g. after a ``=== pgdefer-lab:`` marker) is recovered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .._core import MIGRATETYPES as CORE_MIGRATETYPES
from ..config import ZONE_NAMES
from ..errors import BadFree, DmesgError, OutOfMemory, PgdeferError
from ..gfp import gfp_migratetype
from ..workload import Workload
from .sections import read_text

RE_EVENT = re.compile(r"mm_page_(alloc|free): page=\S+ pfn=(0x[0-9a-fA-F]+) order=(\d+)"
                      r"(?: migratetype=(-?\d+) gfp_flags=(\S+))?")
RE_TOKEN = re.compile(r"mm_page_(?:alloc|free):")
RE_PCP_SETUP = re.compile(r"\bACPI: Core revision\b")
#: free_unref_page puts a free of at most this order on the per-CPU lists (pcp_allowed_order); the deferred
#: init's __free_pages_core goes straight to the buddy lists.
PAGE_ALLOC_COSTLY_ORDER = 3
#: A tracepoint's migratetype value -> name: the core's modelled ones (the kernel's values), then those the model
#: has not (CONFIG_CMA, MIGRATE_ISOLATE).
MIGRATETYPES = dict(enumerate([*CORE_MIGRATETYPES, "CMA", "Isolate"]))


def gfp_zone(flags: str) -> str:
    """The highest zone a GFP mask allows (include/linux/gfp.h gfp_zone() on x86_64)."""
    toks = set(flags.split("|"))
    if toks & {"GFP_DMA", "__GFP_DMA"}:
        return "DMA"
    if toks & {"GFP_DMA32", "__GFP_DMA32"}:
        return "DMA32"
    movable = bool(toks & {"__GFP_MOVABLE", "GFP_HIGHUSER_MOVABLE", "GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT"})
    highmem = bool(toks & {"__GFP_HIGHMEM", "GFP_HIGHUSER", "GFP_HIGHUSER_MOVABLE", "GFP_TRANSHUGE",
                           "GFP_TRANSHUGE_LIGHT"})
    return "Movable" if movable and highmem else "Normal"


@dataclass(frozen=True)
class TraceEvent:
    """One traced allocation or free (kernel pfn and order; for allocations, migratetype, GFP and zone)."""

    kind: str               # "alloc" | "free"
    pfn: int
    order: int
    line: int
    migratetype: int | None = None
    gfp: str | None = None
    zone: str | None = None

    @property
    def pages(self) -> int:
        return 1 << self.order


@dataclass
class TraceWorkload(Workload):
    """The page-allocation trace of one boot, in the kernel's order, split where the log says:
    ``phase`` "window" (before the first per-node deferred-init line), "passes" (from there up to the end of
    ``page_alloc_init_late``: the last per-node line, or the 6.12 ``Memory:`` line after it), "late"."""

    events: list = field(default_factory=list)
    phase_of: list = field(default_factory=list)   # parallel to events
    path: str | None = None
    #: The log line where the real per-CPU pagesets exist: start_kernel calls setup_per_cpu_pageset() right
    #: before acpi_early_init(), whose first line is "ACPI: Core revision" (None: not seen; replay then leaves
    #: it to page_alloc_init_late).
    pcp_setup_line: int | None = None

    @classmethod
    def from_log(cls, text_or_path, name=None) -> TraceWorkload:
        text, path = read_text(text_or_path)
        path = path or name
        name = path or "<log>"
        events, phases = [], []
        phase = "window"
        seen_deferred = False
        pcp_line = None
        for no, raw in enumerate(text.splitlines(), 1):
            if pcp_line is None and RE_PCP_SETUP.search(raw):
                pcp_line = no
            if "deferred pages initialised in" in raw or re.search(r"node \d+ initialised, \d+ pages in", raw):
                seen_deferred, phase = True, "passes"
            elif seen_deferred and "Memory: " in raw and "available" in raw:
                phase = "late_after_memory"   # 6.12: the line ends page_alloc_init_late
            ntok = len(RE_TOKEN.findall(raw))
            if not ntok:
                continue
            found = list(RE_EVENT.finditer(raw))
            whole = [m for m in found if m.group(1) == "free" or m.group(4) is not None]
            if len(whole) != ntok or (found and found[-1].group(1) == "alloc" and _cut(raw, found[-1])):
                raise DmesgError(f"{name}:{no}: a page-trace line mangled by interleaved console output: "
                                 f"{raw.strip()[:120]!r}")
            for m in whole:
                kind, pfn, order = m.group(1), int(m.group(2), 16), int(m.group(3))
                if kind == "alloc":
                    ev = TraceEvent(kind, pfn, order, no, int(m.group(4)), m.group(5), gfp_zone(m.group(5)))
                else:
                    ev = TraceEvent(kind, pfn, order, no)
                events.append(ev)
                phases.append(phase)
        # "passes" ends at the last per-node line (6.1) or at the Memory: line after them (6.12)
        last_deferred = max((i for i, line in enumerate(text.splitlines(), 1)
                             if "deferred pages initialised in" in line), default=None)
        # 6.1: no Memory: line after the per-node lines, so what follows the last one is "late" (asked once:
        # scanning the text per event made a 7000-event trace take 20 s)
        memory_after = last_deferred is not None and _memory_after(text, last_deferred)
        out_phase = []
        for ev, ph in zip(events, phases):
            if ph == "late_after_memory" or (ph == "passes" and last_deferred is not None
                                             and ev.line > last_deferred and not memory_after):
                ph = "late"
            out_phase.append(ph)
        return cls(events, out_phase, path, pcp_line)

    # -- counts -----------------------------------------------------------------------------------
    def counts(self) -> dict:
        a = [e for e in self.events if e.kind == "alloc"]
        f = [e for e in self.events if e.kind == "free"]
        return {"allocs": len(a), "frees": len(f), "alloc_pages": sum(e.pages for e in a),
                "free_pages": sum(e.pages for e in f)}

    def phase(self, name: str) -> list:
        return [e for e, p in zip(self.events, self.phase_of) if p == name]

    def __len__(self):
        return len(self.events)

    def __repr__(self):
        c = self.counts()
        return (f"TraceWorkload({c['allocs']} allocs / {c['alloc_pages']} pages, {c['frees']} frees / "
                f"{c['free_pages']} pages, from {self.path or '<log>'})")

    # -- replay -----------------------------------------------------------------------------------
    def replay(self, machine, phases=("window", "passes", "late"), state=None) -> dict:
        """Replay the events of ``phases`` on ``machine`` (see the module docstring). ``state`` carries the
        kernel-pfn -> model-block map between calls (pass the returned dict's ``state``). Returns counts:
        allocs, alloc_pages, frees (of traced blocks), reserved_frees (free_reserved_area), untraced_frees,
        and their pages; pcp_free_pages: the pages of those frees the kernel puts on a per-CPU list."""
        st = state if state is not None else {"blocks": {}}
        blocks = st["blocks"]
        topo = machine.topology
        out = {k: 0 for k in ("allocs", "alloc_pages", "frees", "free_pages", "reserved_frees",
                              "reserved_free_pages", "deferred_frees", "deferred_free_pages", "untraced_frees",
                              "untraced_free_pages", "pcp_free_pages", "same_pfn")}
        for ev, ph in zip(self.events, self.phase_of):
            if ph not in phases:
                continue
            self.setup_pcp_before(machine, st, ev)
            if ev.kind == "alloc":
                node = _node_of(topo, ev.pfn)
                try:
                    got = machine.alloc_pages(ev.order, node=node, zone=_zone_for(st, machine, ev.zone),
                                              migratetype=_migratetype_of(ev))
                except OutOfMemory as e:
                    raise OutOfMemory(f"trace line {ev.line}: the model could not replay an order-{ev.order} "
                                      f"allocation the kernel served at pfn {ev.pfn:#x}: {e}") from None
                blocks[ev.pfn] = (got, ev.order)
                out["same_pfn"] += got == ev.pfn
                out["allocs"] += 1
                out["alloc_pages"] += ev.pages
                continue
            held = blocks.get(ev.pfn)
            if held is not None and held[1] == ev.order:
                machine.free_pages(held[0], held[1])
                del blocks[ev.pfn]
                out["frees"] += 1
                out["free_pages"] += ev.pages
                if ev.order <= PAGE_ALLOC_COSTLY_ORDER:
                    out["pcp_free_pages"] += ev.pages
                continue
            try:  # a memblock-reserved page (init memory, SMP alternatives, initrd): free_reserved_area
                freed = machine.free_reserved_area(ev.pfn, ev.pfn + ev.pages)
            except (BadFree, PgdeferError, ValueError):
                freed = 0
            if freed == ev.pages:
                out["reserved_frees"] += 1
                out["reserved_free_pages"] += ev.pages
            elif _deferred_at_boot(machine, st, ev.pfn):
                # the kernel's own deferred_init_memmap / deferred_grow_zone freeing struct pages it has just
                # initialised: the model's pass and grow do that themselves (straight to the buddy lists)
                out["deferred_frees"] += 1
                out["deferred_free_pages"] += ev.pages
                continue
            else:
                out["untraced_frees"] += 1
                out["untraced_free_pages"] += ev.pages
            if ev.order <= PAGE_ALLOC_COSTLY_ORDER:   # free_unref_page: onto the freeing CPU's list
                out["pcp_free_pages"] += ev.pages
        out["state"] = st
        return out

    def setup_pcp_before(self, machine, state: dict, ev: TraceEvent) -> None:
        """Call ``machine.setup_per_cpu_pageset()`` once, before the first event after :attr:`pcp_setup_line`."""
        if (self.pcp_setup_line is not None and ev.line > self.pcp_setup_line and not state.get("pcp_ready")
                and machine.phase == "booted"):
            machine.setup_per_cpu_pageset()
            state["pcp_ready"] = True


def _migratetype_of(ev) -> str:
    """The migratetype the kernel printed for the allocation (gfp_migratetype of its flags if it printed none
    the model has)."""
    if ev.migratetype is not None and 0 <= ev.migratetype < 3:
        return MIGRATETYPES[ev.migratetype]
    return gfp_migratetype(ev.gfp or "")


def _cut(raw: str, m) -> bool:
    """True when text other than whitespace follows the gfp_flags of the line's last record (a record
    glued to the next printk)."""
    rest = raw[m.end():]
    return bool(rest.strip()) and not re.match(r"^\s*\[\s*\d+\.\d+\]", rest)


def _memory_after(text: str, line_no: int) -> bool:
    return any("Memory: " in line and "available" in line for line in text.splitlines()[line_no:])


def _deferred_at_boot(machine, st, pfn) -> bool:
    """Was ``pfn`` left uninitialised by the model's early memmap_init (at or above its node's
    first_deferred_pfn at boot, in the deferred zone)? Those pages reach the buddy allocator only through
    deferred_grow_zone or the per-node pass."""
    fdp = st.get("first_deferred")
    if fdp is None:
        fdp = {}
        for e in machine.events:
            if e["kind"] == "early_init" and e.get("first_deferred_pfn") is not None:
                fdp[e["node"]] = e["first_deferred_pfn"]
        st["first_deferred"] = fdp
    node = _node_of(machine.topology, pfn)
    if node not in fdp:
        return False
    end = max(e for s, e, n in machine.topology.memory_pfn_ranges() if n == node)
    return fdp[node] <= pfn < end


def _node_of(topo, pfn: int):
    for s, e, n in topo.memory_pfn_ranges():
        if s <= pfn < e:
            return n
    return None


def _zone_for(st, machine, zone):
    """The GFP zone, lowered to the highest zone the machine has (a GFP_KERNEL allocation on a machine
    without ZONE_NORMAL is served from DMA32, as the kernel's zonelist would)."""
    names = st.get("zones")
    if names is None:
        names = st["zones"] = {z.name for z in machine.zones() if z.present}
    order = list(ZONE_NAMES)  # lowest to highest
    i = order.index(zone)
    while i > 0 and order[i] not in names:
        i -= 1
    return order[i]

"""Predicted vs real for one kernel-lab log (``pgdefer lab compare LOG``).

The model boots the imported machine (:func:`pgdefer.lab.importer.lab_topology`: the exact reserved map) under
the policy of the log's kernel, replays what the log shows happened in the on-demand window, and reads its
``Memory:`` line where the log printed it:

* **early** (the line comes before the per-node deferred-init lines, as 6.1 prints it from ``mm_core_init``):
  X = the pages ``memblock_free_all`` released minus the allocations between it and the print. In x86_64
  ``mem_init`` that is ``preallocate_vmalloc_pages``: one pud page per PGD entry the vmalloc area touches
  (4-level paging: 32 TiB / 512 GiB = 64 entries, + 1 because KASLR's vmalloc_base is PUD- but not
  PGD-aligned) = 65 pages, a rule, shown as such. The trace starts later (``trace_init``).
* **late** (after them, as 6.12 prints it at the end of ``page_alloc_init_late``): X = free pages after the
  passes, with the traced allocations and frees up to that line replayed, minus what ``start_kernel``
  allocated before ``trace_init`` as far as the log states it (:func:`ftrace_pages`,
  :func:`tracer_alloc_buffers_pages`).
  The rest (SLUB's boot caches, ...; the pages on the per-CPU lists, which ``nr_free_pages()`` does not
  count) is printed as **unplaced**, with the per-CPU lists' content at the /proc dump and the vmstat drift
  bound beside it (:func:`_pcp_facts`).

Y (physpages) and the reserved figure (physpages - totalram) are compared as printed. Per-node deferred
lines: pages where printed (compared), times emulated (reported, not compared). Per zone: present, spanned
(must match) and managed after boot against ``/proc/zoneinfo``: the model's managed after the run, and on an
untraced log the ``Freeing ... memory`` lines counted in the zone of what they free (docs/model.md §12).
"""

from __future__ import annotations

import json
import re

from .errors import LabError

#: x86_64 4-level paging: VMALLOC_SIZE_TB (32 TiB) / PGDIR_SIZE (512 GiB) + 1 (KASLR start not PGD-aligned).
PREALLOCATE_VMALLOC_PAGES = 32 * 1024 // 512 + 1
#: struct buffer_data_page's header (u64 time_stamp + local_t commit): a ring-buffer sub-buffer holds
#: PAGE_SIZE - 16 bytes of events (kernel/trace/ring_buffer.c BUF_PAGE_HDR_SIZE).
BUF_PAGE_HDR_SIZE = 16

_RE_FTRACE = re.compile(r"ftrace: allocated (\d+) pages with (\d+) groups")
_RE_BUF_SIZE = re.compile(r"(?:^|\s)trace_buf_size=(\d+)([kKmMgG]?)(?=\s|$)")


def ftrace_pages(text: str) -> int | None:
    """The pages ``ftrace_init`` took from the buddy allocator for its records, as the kernel printed them
    ("ftrace: allocated N pages with M groups": N = the sum of ``1 << order`` over the groups
    ``ftrace_allocate_records`` got, net of any it gave back), or None when the log has no such line."""
    m = _RE_FTRACE.search(text)
    return int(m.group(1)) if m else None


_RE_HASH = re.compile(r"\] (.+?) hash table entries: \d+ \(order: \d+, (\d+) bytes, "
                      r"(linear|vmalloc hugepage|vmalloc)\)")


def untraced_hash_tables(text: str, traced: bool, page_size: int = 4096) -> list:
    """[(table, pages)] of the hash tables ``alloc_large_system_hash`` printed after ``kmem_cache_init`` (the
    "SLUB:" line: memblock_free_all is behind) and before the Memory: line whose pages no trace line shows.

    With a page trace: the plain ``vmalloc`` ones (NUMA hashdist: ``__vmalloc`` gets order-0 pages from the
    bulk allocator, ``alloc_pages_bulk``, which has no ``mm_page_alloc`` tracepoint; a ``vmalloc hugepage``
    table is order-9 allocations, which are traced). Without one: every such table (``linear`` =
    ``alloc_pages_exact``, whose unused tail goes back, so PAGE_ALIGN(size) pages; a huge vmalloc area is
    rounded up to 2 MiB)."""
    lines = text.splitlines()
    start = next((i for i, x in enumerate(lines) if "SLUB: HWalign=" in x), None)
    end = next((i for i, x in enumerate(lines) if "Memory: " in x and "K available" in x), len(lines))
    if start is None:
        return []
    out = []
    for line in lines[start:end]:
        m = _RE_HASH.search(line)
        if not m:
            continue
        size, how = int(m.group(2)), m.group(3)
        if traced and how != "vmalloc":
            continue
        if how == "vmalloc hugepage":
            size = -(-size // (2 << 20)) * (2 << 20)
        out.append((f"{m.group(1)} ({how})", -(-size // page_size)))
    return out


_RE_ZONE_LOCKED = re.compile(r"mm_page_alloc_zone_locked: page=\S+ pfn=0x[0-9a-fA-F]+ order=(\d+) "
                             r"migratetype=-?\d+ percpu_refill=(\d)")
_RE_PCPU_DRAIN = re.compile(r"mm_page_pcpu_drain: page=\S+ pfn=0x[0-9a-fA-F]+ order=(\d+)")


def buddy_flux(text: str, before_line: int) -> dict | None:
    """Pages that left the buddy lists (``mm_page_alloc_zone_locked``: rmqueue_bulk refills of the per-CPU
    lists, percpu_refill=1, and direct takes, 0) and came back from the per-CPU lists
    (``mm_page_pcpu_drain``: free_pcppages_bulk) before line ``before_line``; None when the log has no
    such events (a boot without ``--trace-pcp``)."""
    refill = direct = drain = 0
    seen = False
    for line in text.splitlines()[:before_line - 1]:
        if "mm_page_alloc_zone_locked:" in line:
            for m in _RE_ZONE_LOCKED.finditer(line):
                seen = True
                if m.group(2) == "1":
                    refill += 1 << int(m.group(1))
                else:
                    direct += 1 << int(m.group(1))
        if "mm_page_pcpu_drain:" in line:
            for m in _RE_PCPU_DRAIN.finditer(line):
                seen = True
                drain += 1 << int(m.group(1))
    return {"refill_pages": refill, "direct_pages": direct, "drain_pages": drain} if seen else None


#: TRACE_BUF_SIZE_DEFAULT, the global buffer's size when trace_event= is given without trace_buf_size=.
TRACE_BUF_SIZE_DEFAULT = 1441792
#: get_order(sizeof(struct saved_cmdlines_buffer)): 4 * (PID_MAX_DEFAULT + 1) = 131076 bytes > 128 KiB.
SAVEDCMD_ORDER = 6


def trace_buf_size(cmdline: str) -> int:
    """The global ring buffer's size in bytes: ``trace_buf_size=`` (the last one wins) when ``trace_event=`` is
    on the command line (it sets ring_buffer_expanded), else 1 byte."""
    if not re.search(r"(?:^|\s)trace_event=", cmdline):
        return 1
    size = TRACE_BUF_SIZE_DEFAULT
    for m in _RE_BUF_SIZE.finditer(cmdline):
        size = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    return size


def buffer_pages(size: int, page_size: int = 4096) -> int:
    """rb_allocate_cpu_buffer: the reader page plus ``max(2, DIV_ROUND_UP(size, PAGE_SIZE - 16))`` sub-buffers."""
    return 1 + max(2, -(-size // (page_size - BUF_PAGE_HDR_SIZE)))


def ring_buffer_pages(cmdline: str, page_size: int = 4096) -> int:
    """Pages of the boot CPU's two ring buffers ``early_trace_init`` -> ``tracer_alloc_buffers`` allocates (the
    only online CPU then; with CONFIG_HOTPLUG_CPU the other CPUs' buffers are allocated as they come up, after
    trace_init, so those are in the trace):

    * the global buffer of :func:`trace_buf_size` bytes;
    * the snapshot (max) buffer of CONFIG_TRACER_MAX_TRACE (Debian: y), 1 byte unless a snapshot is asked
      for at boot.

    Applied where the log has the ftrace line (CONFIG_FUNCTION_TRACER, which brings the ring buffer); a kernel
    built without CONFIG_TRACER_MAX_TRACE has 3 pages less. Checked on the 6.12 kernel of the kernel lab: with
    trace_buf_size=2M instead of 1M the Memory: X fell by the 257 extra sub-buffers plus 4 slab pages of their
    64-byte ``buffer_page`` descriptors (not counted here: they share kmalloc-64 slabs with other objects).
    """
    return buffer_pages(trace_buf_size(cmdline), page_size) + buffer_pages(1, page_size)


def tracer_alloc_buffers(cmdline: str, page_size: int = 4096) -> list[tuple[str, int, int]]:
    """[(what, order, count)] of what ``tracer_alloc_buffers`` takes before trace_init, in its order:
    ``temp_buffer`` (a ring buffer of one page), the ``saved_cmdlines_buffer`` (one order-:data:`SAVEDCMD_ORDER`
    block), then the boot CPU's global and snapshot buffers (:func:`ring_buffer_pages`)."""
    return [("tracer_alloc_buffers: temp_buffer", 0, buffer_pages(page_size, page_size)),
            ("tracer_alloc_buffers: savedcmd", SAVEDCMD_ORDER, 1),
            ("tracer_alloc_buffers: global buffer (boot CPU)", 0, buffer_pages(trace_buf_size(cmdline), page_size)),
            ("tracer_alloc_buffers: snapshot buffer (boot CPU)", 0, buffer_pages(1, page_size))]


def tracer_alloc_buffers_pages(cmdline: str, page_size: int = 4096) -> int:
    """All the pages of :func:`tracer_alloc_buffers`."""
    return sum(count << order for _, order, count in tracer_alloc_buffers(cmdline, page_size))


def _policy_for(topo):
    from ..cli import resolve_policy

    policy, note = resolve_policy("auto", topo)
    return policy, note


def memory_printed_late(boot) -> bool | None:
    """Where the log's Memory: line was printed: True after the per-node deferred lines (late), False before
    (early), None when the log has no per-node line or no Memory: line to tell."""
    if boot.memory is None or not boot.deferred_init:
        return None
    return getattr(boot, "memory_after_deferred", None)


def _line_order(text: str):
    """(line of Memory:, line of the last per-node deferred line) in the log text."""
    mem = last = None
    for no, line in enumerate(text.splitlines(), 1):
        if mem is None and "Memory: " in line and "K available" in line:
            mem = no
        if "deferred pages initialised in" in line or (" initialised, " in line and " pages in " in line):
            last = no
    return mem, last


def boot_comparison(topo, policy):
    """For ``pgdefer boot --topology dmesg:LOG``: the lab comparison when the log is a kernel-lab log
    (memblock=debug dumps), else None."""
    lab = getattr(topo, "lab", None)
    src = getattr(topo, "source", None)
    if lab is None or not lab.has_memblock_debug or src is None or not src.path:
        return None
    return compare_log(src.path, policy)


def compare_log(path, policy: str | None = None) -> dict:
    """Everything predicted vs real for one log, as plain data (see the module docstring)."""
    from ..machine import Machine
    from .importer import lab_topology
    from .sections import read_text
    from .trace import TraceWorkload

    text, p = read_text(path)
    topo = lab_topology(text, name=p)
    boot, lab = topo.source, topo.lab
    if boot.memory is None:
        raise LabError(f"{p or '<log>'}: no Memory: line (the boot stopped before mem_init, or it is not a whole "
                       "boot log)")
    note = ""
    if policy is None:
        policy, note = _policy_for(topo)
    g = topo.geometry
    k = g.page_size // 1024
    mem_no, last_def = _line_order(text)
    late = last_def is not None and mem_no > last_def
    trace = TraceWorkload.from_log(text, name=p)
    m = Machine(topo, policy=policy)
    m.boot()
    released = next(e for e in m.events if e["kind"] == "memblock_free_all")["released"]
    components = [("memblock_free_all released", released, "model")]
    # x86_64 mem_init: preallocate_vmalloc_pages, after memblock_free_all, before the early Memory: line
    for _ in range(PREALLOCATE_VMALLOC_PAGES):
        m.alloc_pages(0)
    components.append(("mem_init: preallocate_vmalloc_pages", -PREALLOCATE_VMALLOC_PAGES, "rule"))
    replay = {}
    state = flux = None
    if not late:
        x_pred = _free(m)
        total_pred, totalram = topo.present_pages, m.stats["totalram_pages"]
    if late:  # 6.12: what the log says the window allocated outside the trace (6.1 prints X before it)
        flux = buddy_flux(text, mem_no) if trace.events else None
        pre = _untraced_window(text, boot, trace, g.page_size, flux)
        for label, pages, how in pre:
            for _ in range(pages):
                m.alloc_pages(0)
            components.append((label, -pages, how))
    r1 = trace.replay(m, phases=("window",))
    state = r1["state"]
    m.page_alloc_init_late()
    r2 = trace.replay(m, phases=("passes",), state=state)
    if late:
        x_pred = _free(m)
        if flux:
            # nr_free_pages() counts the buddy lists only: the kernel's took (refills and direct takes) what
            # the traced allocations and bulk allocations used plus what still sits on the per-CPU lists, and
            # got back the drains; the model took the traced allocations and got back every traced free
            took = flux["refill_pages"] + flux["direct_pages"] - (r1["alloc_pages"] + r2["alloc_pages"])
            back = flux["drain_pages"] - (r1["pcp_free_pages"] + r2["pcp_free_pages"])
            x_pred -= took - back
            label = ("buddy/per-CPU moves beyond the traced allocs and frees "
                     "(zone_locked - allocs - pcpu_drain + to-pcp frees)")
            components.append((label, -(took - back), "trace"))
        # free_reserved_area() raises totalram_pages (adjust_managed_page_count); the core's counter is the
        # memblock_free_all figure only, so the replayed frees of reserved pages are added here
        totalram = m.stats["totalram_pages"] + r1["reserved_free_pages"] + r2["reserved_free_pages"]
        total_pred = topo.present_pages
        if not trace.events:
            # no trace: the "Freeing ... memory: NK" lines (free_init_pages -> free_reserved_area) before the
            # line still say how many reserved pages went to the buddy allocator; counted, not placed
            freed_kib = sum(kib for no, _, kib in _freeing_lines(text) if no < mem_no)
            if freed_kib:
                pages = freed_kib // k
                x_pred += pages
                totalram += pages
                components.append(("'Freeing ... memory' lines before the Memory: line", pages, "log, counted"))
        net = (r1["alloc_pages"] + r2["alloc_pages"]) - (r1["free_pages"] + r2["free_pages"]
                                                          + r1["reserved_free_pages"] + r2["reserved_free_pages"])
        if trace.events:
            components.append(("traced window allocations minus frees (replayed)", -net, "trace"))
    r3 = trace.replay(m, phases=("late",), state=state)
    for key in ("allocs", "alloc_pages", "frees", "free_pages", "reserved_frees", "reserved_free_pages",
                "deferred_frees", "deferred_free_pages", "untraced_frees", "untraced_free_pages", "pcp_free_pages"):
        replay[key] = r1[key] + r2[key] + r3[key]
    real = boot.memory
    x_pred_kib, y_pred_kib = x_pred * k, total_pred * k
    reserved_pred_kib = (total_pred - totalram) * k
    out = {
        "log": p, "kernel": boot.kernel_version, "policy": policy, "policy_note": note,
        "memory_printed": "late (after the per-node passes)" if late else "early (after memblock_free_all)",
        "memory": {
            "available_kib": {"real": real.available_kib, "predicted": x_pred_kib,
                              "diff": x_pred_kib - real.available_kib},
            "total_kib": {"real": real.total_kib, "predicted": y_pred_kib, "diff": y_pred_kib - real.total_kib},
            "reserved_kib": {"real": real.reserved_kib, "predicted": reserved_pred_kib,
                             "diff": reserved_pred_kib - (real.reserved_kib or 0)},
        },
        "components_pages": components,
        "unplaced_kib": real.available_kib - x_pred_kib,
        "trace": {**trace.counts(), "replayed": replay} if trace.events else None,
        "deferred": _deferred_rows(m, boot, trace),
    }
    # without a trace the free_reserved_area() calls after the window are not replayed; the log's "Freeing
    # ... memory: NK" lines still say how much each gave to managed_pages, and where: the initrd at its
    # RAMDISK line, the rest (init sections, SMP alternatives, bss_decrypted, image gaps) in the kernel image
    adjust, unzoned = ({}, []) if trace.events else _untraced_reserved_frees(text, boot, lab, m, k)
    out["zones"] = _zone_rows(m, lab, adjust)
    out["managed_counted_pages"] = {f"{n} {z}": v for (n, z), v in sorted(adjust.items())}
    out["managed_unzoned"] = unzoned
    out["pcp"] = _pcp_facts(lab, k)
    out["untraced_alloc_pages_by_dump"] = _untraced_by_dump(lab, trace)
    out["buddy_flux"] = flux if late else None
    out["unplaced_explained"] = _explain(out, late, bool(trace.events))
    # the policy's own fact (gens): where this generation prints the line; the log's order is what is compared
    ml = getattr(m, "memory_line", None)
    out["policy_memory_line_at"] = ml.get("at") if isinstance(ml, dict) else None
    return out


_RE_FREEING = re.compile(r"\] Freeing ([\w ()/]+?) memory: (\d+)K\s*$")


def _freeing_lines(text: str) -> list:
    """[(line number, what, KiB)] of the 'Freeing <what> memory: NK' lines (free_reserved_area callers)."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        mt = _RE_FREEING.search(line)
        if mt:
            out.append((no, mt.group(1), int(mt.group(2))))
    return out


def _zone_of(m, pfn):
    for z in m.zones():
        if z.start_pfn <= pfn < z.end_pfn and z.present:
            return (z.node, z.name)
    return None


def _untraced_reserved_frees(text, boot, lab, m, k):
    """({(node, zone): pages}, [lines it could not place in a zone]) of the 'Freeing' lines of an untraced
    log, each in the zone of the memory it frees (see compare_log)."""
    image = lab.kernel_image()
    adjust, unzoned = {}, []
    for no, what, kib in _freeing_lines(text):
        # the initrd is where its RAMDISK line says; everything else these lines free is in the kernel image
        span = boot.ramdisk if what == "initrd" else image
        where = span[0] if span else None
        key = _zone_of(m, where // (k * 1024)) if where is not None else None
        if key is None:
            unzoned.append(f"line {no}: Freeing {what} memory: {kib}K")
            continue
        adjust[key] = adjust.get(key, 0) + kib // k
    return adjust, unzoned


def _untraced_window(text, boot, trace, page_size, flux=None) -> list:
    """[(label, pages, how)] of what the log states was allocated in the window but is in no trace line (a
    late Memory: line only): start_kernel's allocations between memblock_free_all and trace_init (ftrace_init's
    records as its line prints them, early_trace_init's ring buffers from the command line) and the hash
    tables no trace line shows (:func:`untraced_hash_tables`)."""
    pre = []
    nft = ftrace_pages(text)
    if nft:
        pre.append(("ftrace_init: 'ftrace: allocated N pages'", nft, "log"))
    if nft is not None and boot.command_line is not None:   # a kernel with ftrace has the tracing ring buffer
        what = "early_trace_init: tracer_alloc_buffers (temp buffer, saved cmdlines, the boot CPU's ring buffers)"
        pre.append((what, tracer_alloc_buffers_pages(boot.command_line, page_size), "rule"))
    if not flux:   # with the buddy flux the bulk allocator's pages are in its refills
        for table, pages in untraced_hash_tables(text, bool(trace.events), page_size):
            pre.append((f"hash table {table}, not in the trace", pages, "log"))
    return pre


def _pcp_facts(lab, k) -> dict | None:
    """From /proc/zoneinfo (end of boot): the pages then on the per-CPU lists (nr_free_pages() does not count
    them) and the bound on vmstat drift: per populated zone, each CPU's NR_FREE_PAGES differential is at most
    its 'vm stats threshold' before it is folded into the global counter nr_free_pages() reads."""
    text = lab.proc.get("/proc/zoneinfo")
    if not text:
        return None
    count = bound = 0
    managed = 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("managed "):
            managed = int(s.split()[1])
        elif s.startswith("count:"):
            count += int(s.split()[1])
        elif s.startswith("vm stats threshold:") and managed:
            bound += int(s.split()[-1])
    return {"pcp_pages_at_dump": count, "vmstat_drift_bound_kib": bound * k}


def _untraced_by_dump(lab, trace) -> int | None:
    """Pages the kernel allocated by the time /init read /proc/vmstat (just before it stopped the trace
    printing) that no trace line shows: Σ pgalloc_* (every page handed out since boot, bulk allocations
    included) minus the traced allocations' pages. An upper bound on the window's untraced allocations;
    None for logs without the vmstat dump (made before it was added) or without a trace."""
    text = lab.proc.get("/proc/vmstat")
    if not text or not trace.events:
        return None
    total = sum(int(v) for v in re.findall(r"^pgalloc_\w+ (\d+)$", text, re.M))
    return total - trace.counts()["alloc_pages"]


def _free(m) -> int:
    return sum(z.free_pages for z in m.zones())


def _deferred_rows(m, boot, trace):
    passes = {e["node"]: e for e in m.events if e["kind"] == "deferred_init"}
    rows = []
    for d in sorted(boot.deferred_init, key=lambda d: d.node):
        e = passes.get(d.node)
        rows.append({"node": d.node, "real_pages": d.pages, "predicted_pages": e["pages"] if e else None,
                     "real_ms_emulated": d.ms, "line": d.wording.strip()})
    return rows


def _zone_rows(m, lab, adjust=None):
    real = {(z.node, z.zone): z for z in lab.zoneinfo()}
    adjust = adjust or {}
    rows = []
    for z in m.zones():
        r = real.get((z.node, z.name))
        rows.append({"node": z.node, "zone": z.name,
                     "present": (r.present if r else None, z.present),
                     "spanned": (r.spanned if r else None, z.spanned),
                     "managed": (r.managed if r else None, z.managed + adjust.get((z.node, z.name), 0))})
    for (n, zname), r in sorted(real.items()):
        if not any(row["node"] == n and row["zone"] == zname for row in rows) and (r.present or r.spanned):
            rows.append({"node": n, "zone": zname, "present": (r.present, 0), "spanned": (r.spanned, 0),
                         "managed": (r.managed, 0)})
    return rows


def _explain(out, late, traced) -> str:
    gap = out["unplaced_kib"]
    if gap == 0:
        return "none: the predicted Memory: available figure equals the kernel's"
    pcp = ("pages on the kernel's per-CPU lists beyond the model's (nr_free_pages() counts neither; the model's "
           "lists hold only what the traced allocations refilled)")
    if late and not traced:
        return ("the window's allocations (slab, page tables, per-cpu, ...) between memblock_free_all and the end "
                f"of page_alloc_init_late: this boot has no page trace to replay them; and {pcp}")
    if late and out.get("buddy_flux"):
        return ("what start_kernel allocated before trace_init and the log does not state (SLUB's boot caches, "
                "sched_init, workqueue and RCU init, the ring buffer's page descriptors), net of frees of pages the "
                "trace never allocated; and vmstat drift (the per-CPU lists and the bulk allocator are accounted "
                "from the zone_locked and pcpu_drain events)")
    if late:
        return ("what start_kernel allocated before trace_init and the log does not state (SLUB's boot caches, "
                "sched_init, workqueue and RCU init, the ring buffer's page descriptors), net of frees of pages the "
                "trace never allocated; vmalloc areas the log does not print (kernel thread stacks: their order-0 "
                f"pages come from the bulk allocator, which has no tracepoint); and {pcp}")
    return "early allocations between memblock_free_all and the Memory: line that the model does not know"


def format_compare(c: dict) -> str:
    from pathlib import Path

    name = Path(c["log"]).name if c["log"] else "<log>"
    lines = [f"{name}: kernel {c['kernel']}, policy {c['policy']}, Memory: line printed {c['memory_printed']}"]
    lines.append(f"  {'Memory:':<12}{'real':>12}{'predicted':>12}{'diff':>10}")
    for key, label in (("available_kib", "available"), ("total_kib", "total"), ("reserved_kib", "reserved")):
        r = c["memory"][key]
        lines.append(f"  {label:<12}{str(r['real']) + 'K':>12}{str(r['predicted']) + 'K':>12}{r['diff']:>+9}K")
    lines.append("  prediction of available, in pages: " + "; ".join(
        f"{label} {pages:+d} ({how})" for label, pages, how in c["components_pages"]))
    lines.append(f"  unplaced: {c['unplaced_kib']}K ({c['unplaced_explained']})")
    if c["unplaced_kib"] and c.get("pcp"):
        p = c["pcp"]
        lines.append(f"  (at the /proc dump the per-CPU lists held {p['pcp_pages_at_dump']} pages; vmstat drift in "
                     f"nr_free_pages() is at most {p['vmstat_drift_bound_kib']}K either way)")
    if c.get("untraced_alloc_pages_by_dump") is not None:
        lines.append(f"  by the /proc dump the kernel had allocated {c['untraced_alloc_pages_by_dump']} pages that no "
                     "trace line shows (/proc/vmstat pgalloc_* minus the trace; bulk and pre-trace allocations)")
    t = c["trace"]
    if t:
        r = t["replayed"]
        lines.append(f"  trace: {t['allocs']} allocs / {t['alloc_pages']} pages, {t['frees']} frees / "
                     f"{t['free_pages']} pages; replayed {r['allocs']} allocs / {r['alloc_pages']} pages, frees: "
                     f"{r['frees']} of traced blocks, {r['reserved_frees']} of reserved pages, "
                     f"{r['deferred_frees']} by the kernel's own deferred init, {r['untraced_frees']} of pages "
                     "allocated before tracing")
    for d in c["deferred"]:
        pages = "" if d["real_pages"] is None else f", real {d['real_pages']} pages"
        lines.append(f"  node {d['node']}: predicted pass {d['predicted_pages']} pages{pages}; real "
                     f"{d['real_ms_emulated']} ms emulated (TCG, reported, not compared)")
    lines.append(f"  {'zone':<14}{'present real/pred':>20}{'spanned real/pred':>20}{'managed real/pred':>20}")
    for z in c["zones"]:
        def pair(v):
            return f"{v[0]}/{v[1]}" + ("" if v[0] == v[1] else " *")
        lines.append(f"  {str(z['node']) + ' ' + z['zone']:<14}{pair(z['present']):>20}{pair(z['spanned']):>20}"
                     f"{pair(z['managed']):>20}")
    if c.get("managed_counted_pages"):
        lines.append("  (managed: the model's, plus the log's 'Freeing ... memory' lines counted in their zone: "
                     + ", ".join(f"{k} +{v}" for k, v in c["managed_counted_pages"].items()) + ")")
    for u in c.get("managed_unzoned") or ():
        lines.append(f"  (managed: not placed in a zone: {u})")
    lines.append("  (* differs)")
    return "\n".join(lines)


def cmd_compare_log(path, json_out=False, policy=None) -> int:
    c = compare_log(path, policy)
    if json_out:
        print(json.dumps(c, indent=2, default=str))
    else:
        print(format_compare(c))
    bad = [z for z in c["zones"] if z["present"][0] != z["present"][1] or z["spanned"][0] != z["spanned"][1]]
    return 1 if bad else 0

"""Reports: dmesg-style text and a JSON-able summary of a simulated boot, and the comparison of a
simulated boot with the real boot log it was imported from.

Figures in ms are *modelled* time (the cost model, spec §9.3) unless labelled "host".

The ``Memory: A/T available`` line is what ``mem_init()`` prints right after ``memblock_free_all``, before
the first early allocation: ``A`` = free pages at that moment (``nr_free_pages()``; with deferred init only the
pages initialised early), ``T`` = present pages, ``reserved`` = present - totalram. The model reproduces it
from the ``memblock_free_all`` event, so it can be reported whatever happened afterwards.
"""

from __future__ import annotations

from dataclasses import replace

from ._core import POLICY_FACTS
from .config import format_size
from .costmodel import DEFAULT_COST, FROZEN_JIFFY_MS, CostModel, Mechanics, machine_passes

#: Kernels from 5.8 on (padata, "mm: parallelize deferred_init_memmap()") print the per-node line as
#: "node N deferred pages initialised in Mms"; 4.2-5.7 print "node N initialised, P pages in Mms".
MODERN_DEFERRED_WORDING = (5, 8)


def _k(pages: int, page_size: int) -> int:
    return pages * page_size // 1024


def _pct(diff, real):
    return None if not real else 100.0 * diff / real


def _plan(pc) -> dict | None:
    if pc is None:
        return None
    return {"workers": pc.workers, "jobs": pc.jobs, "chunks": pc.chunks, "bound": pc.bound,
            "modelled_ms": pc.ms, "printed_ms_if_jiffies_frozen": pc.printed_ms}


def _pass_ms(plans, e, cost, threads, mech) -> float:
    """The modelled pass of a deferred_init event: the node's free ranges if known, else its page count."""
    pc = plans.get(e["node"])
    return pc.ms if pc is not None else cost.pass_ms(e["pages"], threads, mech)


def cost_model_info(cost: CostModel, mech, threads: int) -> dict:
    """Which machine class and generation the modelled times used (every report prints it)."""
    label = cost.label(mech.generation)
    if threads > 1 and not mech.padata:
        label += f" (no padata in this generation: one thread per pass, not {threads})"
    elif mech.padata:
        label += f", padata max_threads {threads} per node"
    return {"machine_class": cost.name, "class_reason": cost.class_reason, "generation": mech.generation,
            "label": label, "assumed_facts": list(mech.assumed), "constants": dict(cost.constants),
            "thread_gbps": cost.machine_class.thread_gbps}


def mem_init_line(machine) -> dict | None:
    """The ``Memory:`` line where the machine's generation prints it (docs/model.md §11.9): right after
    memblock_free_all (``mm_core_init``) up to 6.10, at the end of ``page_alloc_init_late`` (after the
    per-node passes) from 6.11. None before boot(); for a late-printing generation before
    page_alloc_init_late, the figures of the early point with ``printed_at`` None (not printed yet).
    ``deferred_pages`` counts the pages still deferred at the print point."""
    ev = next((e for e in machine.events if e["kind"] == "memblock_free_all"), None)
    if ev is None:
        return None
    g = machine.geometry
    present = machine.topology.present_pages
    totalram = machine.stats["totalram_pages"]
    line = getattr(machine, "memory_line", None)
    available, deferred = ev["released"], ev["deferred"]
    if line is not None and line["at"] == "page_alloc_init_late":
        available, deferred = line["available"], 0
    return {
        "available_kib": _k(available, g.page_size),
        "total_kib": _k(present, g.page_size),
        "reserved_kib": _k(present - totalram, g.page_size),
        "cma_reserved_kib": 0,
        "available_pages": available,
        "present_pages": present,
        "reserved_pages": present - totalram,
        "deferred_pages": deferred,
        "printed_at": line["at"] if line is not None else None,
    }


def format_memory_line(mi: dict) -> str:
    return (f"Memory: {mi['available_kib']}K/{mi['total_kib']}K available "
            f"({mi['reserved_kib']}K reserved, {mi['cma_reserved_kib']}K cma-reserved)")


def summary(machine, cost: CostModel = DEFAULT_COST, pass_threads: int = 1) -> dict:
    """Everything a script wants to know about the boot, as plain data.

    ``mem_init`` is the Memory: line the kernel prints after memblock_free_all; ``memory`` is the state now.
    ``pass_threads`` is the number of threads each per-node pass would use on the modelled kernel (padata,
    5.8+), used for the modelled time only.
    """
    g = machine.geometry
    events = machine.events
    mech = Mechanics.from_policy(machine.policy)
    plans = machine_passes(machine, cost, pass_threads)
    nodes = {}
    workers = machine.node_workers()
    for n in machine.node_info():
        nodes[n["node"]] = {
            "start_pfn": n["start_pfn"], "end_pfn": n["end_pfn"], "spanned_pages": n["spanned"],
            "present_pages": n["present"], "cpus": workers[n["node"]]["cpus"],
            "max_threads": workers[n["node"]]["max_threads"],
            "deferred_zone": n["deferred_zone"], "first_deferred_pfn": n["first_deferred_pfn"],
            "early_pages": 0, "early_first_deferred_pfn": None, "early_modelled_ms": 0.0,
            "grows": 0, "grow_pages": 0, "grow_modelled_ms": 0.0,
            "deferred_init_pages": None, "deferred_init_host_ms": None, "deferred_init_modelled_ms": None,
            "deferred_init_plan": _plan(plans.get(n["node"])),
        }
    for e in events:
        if e["kind"] == "early_init":
            nd = nodes[e["node"]]
            nd["early_pages"] = e["pages"]
            nd["early_first_deferred_pfn"] = e["first_deferred_pfn"]
            nd["early_modelled_ms"] = cost.early_ms(e["pages"])
        elif e["kind"] == "grow":
            nd = nodes[e["node"]]
            nd["grows"] += 1
            nd["grow_pages"] += e["pages"]
            nd["grow_modelled_ms"] += cost.grow_ms(e["pages"], mech)
        elif e["kind"] == "deferred_init":
            nd = nodes[e["node"]]
            nd["deferred_init_pages"] = e["pages"]
            nd["deferred_init_host_ms"] = e["host_ns"] / 1e6
            nd["deferred_init_modelled_ms"] = _pass_ms(plans, e, cost, pass_threads, mech)
    zones = [z.__dict__ | {"nr_free": list(z.nr_free)} for z in machine.zones()]
    present = sum(z["present"] for z in zones)
    free = sum(z["free_pages"] for z in zones)
    stats = machine.stats
    totalram = stats["totalram_pages"]
    grows = [e for e in events if e["kind"] == "grow"]
    return {
        "policy": machine.policy,
        "policy_title": POLICY_FACTS[machine.policy]["title"],
        "phase": machine.phase,
        "memmap": machine.memmap,
        "topology": machine.topology.name,
        "page_size": g.page_size,
        "deferred_pages_enabled": machine.deferred_pages_enabled,
        "time_units": "modelled ms unless the key says host",
        "pass_threads": pass_threads,
        "cost_model": cost_model_info(cost, mech, pass_threads),
        "nodes": nodes,
        "zones": zones,
        "mem_init": mem_init_line(machine),
        "memory": {
            "available_kib": _k(free, g.page_size), "total_kib": _k(present, g.page_size),
            "reserved_kib": _k(present - totalram, g.page_size) if totalram else None,
            "free_pages": free, "present_pages": present, "totalram_pages": totalram,
        },
        "grows": {"count": len(grows), "successful": sum(1 for e in grows if e["result"]),
                  "pages": sum(e["pages"] for e in grows)},
        "stats": stats,
        "violations": machine.violations,
    }


# --------------------------------------------------------------------------------------------------
# a simulated boot against the real log
# --------------------------------------------------------------------------------------------------

def log_comparison(machine, boot, cost: CostModel = DEFAULT_COST, pass_threads: int = 1) -> dict:
    """Real figures of the boot log (a ``pgdefer.dmesg.DmesgBoot``) beside the model's predictions.

    ``memory``: the Memory: line, real vs predicted, per figure (available, total, reserved) with the
    difference predicted - real in KiB and in % of the real figure. ``deferred_init``: per node line of the log,
    real ms (and pages when printed) vs the modelled pass. ``unplaced_reserved_kib``: the part of the log's
    reserved figure the import could not place (it is missing from the model's reserved memory).
    """
    mi = mem_init_line(machine)
    out = {
        "log": boot.path, "kernel_version": boot.kernel_version,
        "memory": None, "deferred_init": [],
        "placed_reserved_kib": getattr(boot, "placed_reserved_kib", None),
        "unplaced_reserved_kib": getattr(boot, "unplaced_reserved_kib", None),
        "pass_threads": pass_threads,
    }
    if boot.memory is not None and mi is not None:
        rows = {}
        for key, real in (("available_kib", boot.memory.available_kib), ("total_kib", boot.memory.total_kib),
                          ("reserved_kib", boot.memory.reserved_kib)):
            if real is None:
                continue
            pred = mi[key]
            rows[key] = {"real": real, "predicted": pred, "diff": pred - real, "diff_pct": _pct(pred - real, real)}
        out["memory"] = rows
    passes = {e["node"]: e for e in machine.events if e["kind"] == "deferred_init"}
    mech = Mechanics.from_policy(machine.policy)
    plans = machine_passes(machine, cost, pass_threads)
    out["cost_model"] = cost_model_info(cost, mech, pass_threads)
    for d in sorted(boot.deferred_init, key=lambda d: d.node):
        e = passes.get(d.node)
        row = {"node": d.node, "real_ms": d.ms, "real_pages": d.pages, "line": d.wording.strip(),
               "modelled_ms": None, "modelled_pages": None, "host_ms": None, "diff_ms": None, "diff_pct": None}
        if e is not None:
            row["modelled_pages"] = e["pages"]
            row["modelled_ms"] = _pass_ms(plans, e, cost, pass_threads, mech)
            row["printed_ms"] = (plans[d.node].printed_ms if d.node in plans else None)
            row["host_ms"] = e["host_ns"] / 1e6
        elif d.node in plans:   # the pass did not run here: predicted from the node's free ranges
            row["modelled_pages"] = plans[d.node].pages
            row["modelled_ms"] = plans[d.node].ms
            row["printed_ms"] = plans[d.node].printed_ms
            row["predicted_only"] = True
        if row["modelled_ms"] is not None:
            row["diff_ms"] = row["modelled_ms"] - d.ms
            row["diff_pct"] = _pct(row["diff_ms"], d.ms)
        out["deferred_init"].append(row)
    return out


def format_log_comparison(cmp: dict, policy_note: str = "") -> list:
    """Text lines: the real log's lines beside the predicted ones."""
    from pathlib import Path

    name = Path(cmp["log"]).name if cmp["log"] else "<boot log>"
    kv = f", kernel {cmp['kernel_version']}" if cmp["kernel_version"] else ""
    lines = ["", f"compared with the boot log {name}{kv}:"]
    if policy_note:
        import textwrap

        lines += textwrap.wrap(policy_note, 110, initial_indent="  ", subsequent_indent="    ")
    if cmp["memory"]:
        lines.append(f"  {'Memory: line':<22}{'real (log)':>16}{'predicted':>16}{'predicted - real':>20}")
        labels = {"available_kib": "available", "total_kib": "total", "reserved_kib": "reserved"}
        for key, r in cmp["memory"].items():
            pct = "" if r["diff_pct"] is None else f" ({r['diff_pct']:+.2f}%)"
            lines.append(f"  {labels[key]:<22}{r['real']:>15}K{r['predicted']:>15}K{r['diff']:>+12}K{pct}")
    else:
        lines.append("  the log has no Memory: line to compare with")
    if cmp["deferred_init"]:
        lines.append(f"  {'per-node deferred init':<22}{'real (log)':>16}{'modelled':>16}{'modelled - real':>20}")
        for r in cmp["deferred_init"]:
            label = f"node {r['node']}"
            real = f"{r['real_ms']} ms"
            if r["modelled_ms"] is None:
                lines.append(f"  {label:<22}{real:>16}{'not run':>16}   (stopped before page_alloc_init_late)")
                continue
            pct = "" if r["diff_pct"] is None else f" ({r['diff_pct']:+.1f}%)"
            pred = "   (predicted: the pass was not simulated)" if r.get("predicted_only") else ""
            lines.append(f"  {label:<22}{real:>16}{r['modelled_ms']:>13.0f} ms{r['diff_ms']:>+14.0f} ms{pct}{pred}")
        lines.append(f"  (modelled = cost model: {cmp['cost_model']['label']}; the log prints jiffies-based ms)")
        if any(r.get("printed_ms") for r in cmp["deferred_init"]):
            lines.append(f"  (this generation's pass runs with IRQs off: a log may print it as "
                         f"{FROZEN_JIFFY_MS:g} ms, jiffies frozen, spec §5.8 M11)")
    un = cmp["unplaced_reserved_kib"]
    if un is not None:
        if un >= 0:
            lines.append(f"  unplaced reserved memory: {un}K of the log's reserved figure could not be placed by the "
                         "import")
            lines.append("    (early allocations the log does not size or place); the model lacks them, so its "
                         "reserved is lower and")
            lines.append("    its available higher wherever they would have sat in early-initialised memory")
        else:
            lines.append(f"  over-placed reserved memory: the import reserved {-un}K MORE than the log's reserved "
                         "figure")
    return lines


# --------------------------------------------------------------------------------------------------
# dmesg-style text
# --------------------------------------------------------------------------------------------------

def _deferred_wording(version):
    return version is not None and tuple(version[:2]) >= MODERN_DEFERRED_WORDING


def dmesg_report(machine, cost: CostModel = DEFAULT_COST, workload_results=None, pass_threads: int = 1,
                 kernel_version=None, max_grows: int = 8) -> str:
    """The boot as dmesg would tell it, in boot order, plus a short summary. ms figures are modelled.

    ``kernel_version`` (a tuple) selects the wording of the per-node line (5.8+: "deferred pages initialised").
    """
    s = summary(machine, cost, pass_threads)
    mech = Mechanics.from_policy(machine.policy)
    g = machine.geometry
    t = machine.topology
    lines = [f"pgdefer: policy {s['policy']} ({POLICY_FACTS[s['policy']]['title']})",
             f"pgdefer: modelled times: {s['cost_model']['label']}"
             + (f" [{cost.class_reason}]" if cost.class_reason else ""),
             (f"pgdefer: {format_size(t.memory_bytes)} in {len(t.memory)} memblock region(s), "
              f"{len(s['nodes'])} node(s), {format_size(g.page_size)} pages, "
              f"PAGES_PER_SECTION {g.pages_per_section}, MAX_PAGE_ORDER {g.max_order}"),
             "Early memory node ranges"]
    for s_pfn, e_pfn, nid in t.memory_pfn_ranges():
        lines.append(f"  node {nid:3d}: [mem {s_pfn * g.page_size:#018x}-{e_pfn * g.page_size - 1:#018x}]")
    for z in s["zones"]:
        lines.append(f"On node {z['node']}, zone {z['name']}: {z['present']} present pages, "
                     f"{z['spanned']} spanned ({z['start_pfn']:#x}-{z['end_pfn']:#x})"
                     + (" [deferred zone]" if z["deferred"] else ""))
    for nid, n in s["nodes"].items():
        fdp = n.get("early_first_deferred_pfn")
        cut = f"first_deferred_pfn {fdp:#x}" if fdp is not None else "nothing deferred"
        lines.append(f"node {nid}: early init {n['early_pages']} pages in "
                     f"{n['early_modelled_ms']:.1f} ms (modelled), {cut}")
    mfa = next((e for e in machine.events if e["kind"] == "memblock_free_all"), None)
    if mfa is not None:
        lines.append(f"memblock_free_all: {mfa['released']} pages released, {mfa['reserved']} reserved, "
                     f"{mfa['deferred']} left deferred, in {cost.machine_memblock_free_all_ms(machine):.1f} ms "
                     "(modelled)")
    mi = s["mem_init"]
    if mi is not None:
        lines.append(format_memory_line(mi))
    grows = [e for e in machine.events if e["kind"] == "grow"]
    for e in grows[:max_grows]:
        fdp = "ULONG_MAX" if e["first_deferred_pfn"] is None else f"{e['first_deferred_pfn']:#x}"
        lines.append(f"deferred_grow_zone: node {e['node']} zone {e['zone']} order {e['order']} ({e['hook']}): "
                     f"+{e['pages']} pages in {cost.grow_ms(e['pages'], mech):.2f} ms (modelled) -> first_deferred_pfn "
                     f"{fdp}, returns {e['result']}")
    if len(grows) > max_grows:
        lines.append(f"deferred_grow_zone: ... {len(grows) - max_grows} more grow(s), "
                     f"{sum(e['pages'] for e in grows[max_grows:])} pages")
    if workload_results:
        for what, (ok, failed) in workload_results.items():
            lines.append(f"early allocations: {what}: {ok} ok" + (f", {failed} FAILED" if failed else ""))
    modern = _deferred_wording(kernel_version)
    if POLICY_FACTS[machine.policy]["defers"]:
        for e in sorted((e for e in machine.events if e["kind"] == "deferred_init"), key=lambda e: e["node"]):
            ms = s["nodes"][e["node"]]["deferred_init_modelled_ms"]
            plan = s["nodes"][e["node"]]["deferred_init_plan"]
            text = (f"node {e['node']} deferred pages initialised in {ms:.0f}ms" if modern else
                    f"node {e['node']} initialised, {e['pages']} pages in {ms:.0f}ms")
            how = f"{plan['workers']} worker(s), {plan['chunks']} chunk(s), {plan['bound']}-bound; " if plan else ""
            lines.append(f"{text:<52}[modelled: {how}host {e['host_ns'] / 1e6:.1f} ms, {e['pages']} pages]")
            if plan and plan["printed_ms_if_jiffies_frozen"] is not None:
                lines.append(f"{'':<52}[IRQs off: a log may print {plan['printed_ms_if_jiffies_frozen']:g}ms "
                             "(frozen jiffies, spec §5.8)]")
    if any(e["kind"] == "key_disable" for e in machine.events):
        lines.append("static key deferred_pages disabled")
    st = s["stats"]
    mem = s["memory"]
    lines += ["", "summary:",
              f"  phase {s['phase']}, static key {'on' if s['deferred_pages_enabled'] else 'off'}",
              (f"  early pages {st['early_pages']}, grows {len(grows)} (+{st['grow_pages']} pages), "
               f"per-node passes {st['deferred_pass_pages']} pages"),
              (f"  allocations {st['allocs']} ({st['alloc_pages']} pages), failures {st['alloc_failures']}, "
               f"frees {st['frees']}"),
              f"  free now {mem['available_kib']}K of {mem['total_kib']}K present",
              "  invariants: " + ("VIOLATED: " + "; ".join(s["violations"][:3]) if s["violations"]
                                  else "no violation recorded")]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# several policies side by side
# --------------------------------------------------------------------------------------------------

def compare_row(machine, cost: CostModel = DEFAULT_COST, workload_results=None, problems=None,
                pass_threads: int = 1) -> dict:
    """One policy's column of ``pgdefer compare``, as plain data."""
    s = summary(machine, cost, pass_threads)
    passes = {nid: {"pages": n["deferred_init_pages"], "modelled_ms": n["deferred_init_modelled_ms"],
                    "host_ms": n["deferred_init_host_ms"]} for nid, n in s["nodes"].items()}
    modelled = [p["modelled_ms"] for p in passes.values() if p["modelled_ms"] is not None]
    early_ms = sum(n["early_modelled_ms"] for n in s["nodes"].values())
    grow_ms = sum(n["grow_modelled_ms"] for n in s["nodes"].values())
    mfa_ms = cost.machine_memblock_free_all_ms(machine) or 0.0
    failed = sum(f for _, f in (workload_results or {}).values())
    events = machine.events
    grown = [e for e in events if e["kind"] == "grow" and e["pages"]]
    chunks = [e for e in events if e["kind"] == "padata_chunk"]
    workers = {}
    for e in chunks:
        workers[e["node"]] = max(workers.get(e["node"], 0), e["worker"] + 1)
    return {
        "policy": s["policy"], "title": s["policy_title"], "phase": s["phase"],
        "early_pages": s["stats"]["early_pages"],
        "early_modelled_ms": early_ms,
        "deferred_at_mem_init_pages": (s["mem_init"] or {}).get("deferred_pages"),
        "grows": s["grows"]["count"], "grows_successful": s["grows"]["successful"],
        "grown_pages": s["grows"]["pages"], "grow_modelled_ms": grow_ms,
        # what separates the generations (issue 8): each grow's pages and first_deferred_pfn after it
        "grow_steps": [{"node": e["node"], "pages": e["pages"], "first_deferred_pfn": e["first_deferred_pfn"]}
                       for e in grown],
        "padata_chunks": len(chunks), "pass_workers": workers,
        # allocations racing the passes: grows that spun on node_size_lock held by the pass (4.17-5.6),
        # and pages from another zone or node after a claimed node's grow said False (5.7+)
        "pass_waits": s["stats"]["pass_waits"], "pass_fallbacks": s["stats"]["pass_fallbacks"],
        "memory_printed_at": (s["mem_init"] or {}).get("printed_at"),
        "passes": passes,
        "pass_pages": s["stats"]["deferred_pass_pages"],
        "slowest_pass_modelled_ms": max(modelled) if modelled else None,
        "memblock_free_all_modelled_ms": mfa_ms,
        "boot_cpu_modelled_ms": early_ms + mfa_ms + grow_ms,
        "all_initialised_modelled_ms": early_ms + mfa_ms + grow_ms + (max(modelled) if modelled else 0.0),
        "allocations": s["stats"]["allocs"], "alloc_failures": s["stats"]["alloc_failures"],
        "workload_failed": failed,
        "mem_init": s["mem_init"],
        "cost_model": s["cost_model"],
        "key_on_at_end": s["deferred_pages_enabled"],
        "check": list(problems) if problems is not None else None,
        "violations": s["violations"],
    }


def _flat(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_flat(x)}" if not isinstance(x, dict) else f"{k}: ({_flat(x)})" for k, x in v.items())
    return str(v)


def published_comparison(machine, published: dict, cost: CostModel = DEFAULT_COST) -> dict:
    """A preset's published figures (spec §6) beside the modelled per-node passes at 1 thread and at each thread
    count the publication names (``threads_per_node``)."""
    from .calibration import anchor_mechanics
    from .costmodel import node_pass_ranges

    threads = {1}
    for anchor in published.values():
        if isinstance(anchor, dict) and isinstance(anchor.get("threads_per_node"), int):
            threads.add(anchor["threads_per_node"])
    # the measured kernel's per-page work (costdata/anchors.json), on this machine's free ranges
    mech = next((m for m in map(anchor_mechanics, published) if m is not None), Mechanics.from_policy(machine.policy))
    g = machine.geometry
    passes = sorted((e for e in machine.events if e["kind"] == "deferred_init"), key=lambda e: e["node"])
    modelled = {}
    for t in sorted(threads):
        m = replace(mech, padata=t > 1)
        modelled[t] = {e["node"]: {"pages": e["pages"], "modelled_ms": cost.pass_cost(
            node_pass_ranges(machine, e["node"]), t, m, 1, g.pages_per_section, g.pageblock_order,
            g.max_order).ms} for e in passes}
    return {"published": published, "modelled_pass_ms_by_threads": modelled,
            "cost_model": cost_model_info(cost, mech, max(threads))}


def format_published(cmp: dict, cost: CostModel = DEFAULT_COST) -> list:
    lines = ["", "published measurements of this machine (spec section 6):"]
    for anchor, figures in cmp["published"].items():
        lines.append(f"  {anchor}: {_flat(figures)}")
    mod = cmp["modelled_pass_ms_by_threads"]
    if any(mod.values()):
        lines.append(f"  modelled per-node passes (cost model: {cmp['cost_model']['label']}):")
        for t, nodes in mod.items():
            lines.append(f"    {t} thread(s) per node: " + ", ".join(
                f"node {n} {v['modelled_ms']:.0f} ms ({v['pages']} pages)" for n, v in nodes.items()))
    return lines


def format_compare(rows: list, topology_name: str = "", real_memory=None) -> str:
    """The policies side by side as a text table (one column per policy)."""
    names = [r["policy"] for r in rows]
    w = max(14, *(len(n) + 2 for n in names))

    def fmt(v, unit=""):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.1f}{unit}"
        return f"{v}{unit}"

    nodes = sorted({nid for r in rows for nid in r["passes"]})
    table = [("", names),
             ("early pages", [fmt(r["early_pages"]) for r in rows]),
             ("  early init (modelled)", [fmt(r["early_modelled_ms"], " ms") for r in rows]),
             ("deferred at mem_init", [fmt(r["deferred_at_mem_init_pages"]) for r in rows]),
             ("grows (successful)", [f"{r['grows']} ({r['grows_successful']})" for r in rows]),
             ("grown pages", [fmt(r["grown_pages"]) for r in rows]),
             ("  grow time (modelled)", [fmt(r["grow_modelled_ms"], " ms") for r in rows])]
    for nid in nodes:
        ps = [r["passes"].get(nid, {}) for r in rows]
        table.append((f"node {nid} pass pages", [fmt(p.get("pages")) for p in ps]))
        table.append(("  modelled", [fmt(p.get("modelled_ms"), " ms") for p in ps]))
        table.append(("  host", [fmt(p.get("host_ms"), " ms") for p in ps]))
    def fdp1(r):
        steps = r["grow_steps"]
        if not steps:
            return "-"
        f = steps[0]["first_deferred_pfn"]
        return "ULONG_MAX" if f is None else f"{f:#x}"

    table += [("fdp after first grow", [fdp1(r) for r in rows]),
              ("pages of first grow", [fmt(r["grow_steps"][0]["pages"]) if r["grow_steps"] else "-" for r in rows]),
              ("padata chunks (workers)", [f"{r['padata_chunks']} ({max(r['pass_workers'].values(), default=1)})"
                                           if r["padata_chunks"] else "-" for r in rows])]
    table += [("waited for a pass", [fmt(r["pass_waits"]) for r in rows]),
              ("fell back during a pass", [fmt(r["pass_fallbacks"]) for r in rows])]
    table += [("slowest pass (modelled)", [fmt(r["slowest_pass_modelled_ms"], " ms") for r in rows]),
              ("allocations", [fmt(r["allocations"]) for r in rows]),
              ("allocation failures", [fmt(r["alloc_failures"]) for r in rows]),
              ("Memory: printed at", [{"memblock_free_all": "mem_init", "page_alloc_init_late": "late init"}
                                      .get(r["memory_printed_at"], "-") for r in rows]),
              ("Memory: available", [fmt((r["mem_init"] or {}).get("available_kib"), "K") for r in rows]),
              ("Memory: total", [fmt((r["mem_init"] or {}).get("total_kib"), "K") for r in rows]),
              ("Memory: reserved", [fmt((r["mem_init"] or {}).get("reserved_kib"), "K") for r in rows]),
              ("static key at end", ["on" if r["key_on_at_end"] else "off" for r in rows]),
              ("invariant check", ["not run" if r["check"] is None else
                                   ("ok" if not r["check"] and not r["violations"] else
                                    f"{len(r['check']) + len(r['violations'])} VIOLATED") for r in rows])]
    lw = max(len(label) for label, _ in table) + 2
    title = f"policies compared on {topology_name}" if topology_name else "policies compared"
    out = [title + " (same workload; ms are modelled unless marked host)", ""]
    for label, cells in table:
        out.append(f"{label:<{lw}}" + "".join(f"{c:>{w}}" for c in cells))
    if rows and rows[0].get("cost_model"):
        out.append("")
        out += ["modelled times: " + r["cost_model"]["label"] for r in rows]
    if real_memory is not None:
        out.append("")
        out.append(f"the boot log's real Memory: line: {real_memory.available_kib}K/{real_memory.total_kib}K "
                   f"available ({real_memory.reserved_kib}K reserved)")
    for r in rows:
        if r["check"]:
            out.append(f"{r['policy']}: check(): " + "; ".join(r["check"][:5]))
        if r["violations"]:
            out.append(f"{r['policy']}: violations recorded: " + "; ".join(r["violations"][:5]))
    return "\n".join(out)

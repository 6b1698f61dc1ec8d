"""Reports: dmesg-style text and a JSON-able summary of a simulated boot.

Figures in ms are *modelled* time (the cost model, spec §9.3) unless labelled "host".
"""

from __future__ import annotations

from .config import format_size
from .costmodel import DEFAULT_COST, CostModel

POLICY_TITLES = {
    "eager": "no deferral (CONFIG_DEFERRED_STRUCT_PAGE_INIT=n)",
    "v4.2": "v4.2: fixed 2 GiB prefix per node, no on-demand growth",
    "posting-v2": "Feb 2018 v2 posting: global grow lock, key off before the per-node threads",
    "v4.17": "v4.17 as merged: per-node lock, key off after all passes",
}


def _k(pages: int, page_size: int) -> int:
    return pages * page_size // 1024


def summary(machine, cost: CostModel = DEFAULT_COST) -> dict:
    """Everything a script wants to know about the boot, as plain data."""
    g = machine.geometry
    events = machine.events
    nodes = {}
    for n in machine.node_info():
        nodes[n["node"]] = {
            "start_pfn": n["start_pfn"], "end_pfn": n["end_pfn"], "present_pages": n["present"],
            "deferred_zone": n["deferred_zone"], "first_deferred_pfn": n["first_deferred_pfn"],
            "early_pages": 0, "grows": 0, "grow_pages": 0, "deferred_init_pages": 0,
            "deferred_init_host_ms": None, "deferred_init_modelled_ms": None,
        }
    for e in events:
        if e["kind"] == "early_init":
            nodes[e["node"]]["early_pages"] = e["pages"]
            nodes[e["node"]]["early_first_deferred_pfn"] = e["first_deferred_pfn"]
        elif e["kind"] == "grow":
            nodes[e["node"]]["grows"] += 1
            nodes[e["node"]]["grow_pages"] += e["pages"]
        elif e["kind"] == "deferred_init":
            nd = nodes[e["node"]]
            nd["deferred_init_pages"] = e["pages"]
            nd["deferred_init_host_ms"] = e["host_ns"] / 1e6
            nd["deferred_init_modelled_ms"] = cost.pass_ms(e["pages"])
    zones = [z.__dict__ | {"nr_free": list(z.nr_free)} for z in machine.zones()]
    present = sum(z["present"] for z in zones)
    free = sum(z["free_pages"] for z in zones)
    stats = machine.stats
    totalram = stats["totalram_pages"]
    return {
        "policy": machine.policy,
        "phase": machine.phase,
        "topology": machine.topology.name,
        "page_size": g.page_size,
        "deferred_pages_enabled": machine.deferred_pages_enabled,
        "nodes": nodes,
        "zones": zones,
        "memory": {
            "available_kib": _k(free, g.page_size), "total_kib": _k(present, g.page_size),
            "reserved_kib": _k(present - totalram, g.page_size) if totalram else None,
            "free_pages": free, "present_pages": present, "totalram_pages": totalram,
        },
        "stats": stats,
        "violations": machine.violations,
    }


def dmesg_report(machine, cost: CostModel = DEFAULT_COST, workload_results=None) -> str:
    """The boot as dmesg would tell it, plus a short summary. ms figures are modelled."""
    s = summary(machine, cost)
    g = machine.geometry
    t = machine.topology
    lines = [f"pgdefer: policy {s['policy']} ({POLICY_TITLES.get(s['policy'], '')})",
             f"pgdefer: {format_size(t.memory_bytes)} in {len(t.memory)} memblock region(s), "
             f"{len(s['nodes'])} node(s), {format_size(g.page_size)} pages, "
             f"PAGES_PER_SECTION {g.pages_per_section}, MAX_PAGE_ORDER {g.max_order}",
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
                     f"{cost.early_ms(n['early_pages']):.1f} ms (modelled), {cut}")
    grows = [e for e in machine.events if e["kind"] == "grow"]
    for e in grows[:8]:
        fdp = "ULONG_MAX" if e["first_deferred_pfn"] is None else f"{e['first_deferred_pfn']:#x}"
        lines.append(f"deferred_grow_zone: node {e['node']} zone {e['zone']} order {e['order']} ({e['hook']}): "
                     f"+{e['pages']} pages -> first_deferred_pfn {fdp}, returns {e['result']}")
    if len(grows) > 8:
        lines.append(f"deferred_grow_zone: ... {len(grows) - 8} more grow(s), "
                     f"{sum(e['pages'] for e in grows[8:])} pages")
    if workload_results:
        for what, (ok, failed) in workload_results.items():
            lines.append(f"early allocations: {what}: {ok} ok" + (f", {failed} FAILED" if failed else ""))
    for nid, n in s["nodes"].items():
        if n["deferred_init_modelled_ms"] is not None:
            lines.append(f"node {nid} deferred pages initialised in {n['deferred_init_modelled_ms']:.0f}ms"
                         f"   [modelled; host {n['deferred_init_host_ms']:.1f} ms, {n['deferred_init_pages']} pages]")
    if any(e["kind"] == "key_disable" for e in machine.events):
        lines.append("static key deferred_pages disabled")
    mem = s["memory"]
    reserved = f", {mem['reserved_kib']}K reserved" if mem["reserved_kib"] is not None else ""
    lines.append(f"Memory: {mem['available_kib']}K/{mem['total_kib']}K available ({reserved.lstrip(', ')})"
                 if reserved else f"Memory: {mem['available_kib']}K/{mem['total_kib']}K available")
    st = s["stats"]
    lines += ["", "summary:",
              f"  phase {s['phase']}, static key {'on' if s['deferred_pages_enabled'] else 'off'}",
              f"  early pages {st['early_pages']}, grows {len(grows)} (+{st['grow_pages']} pages), "
              f"per-node passes {st['deferred_pass_pages']} pages",
              f"  allocations {st['allocs']} ({st['alloc_pages']} pages), failures {st['alloc_failures']}, "
              f"frees {st['frees']}",
              f"  invariants: {'VIOLATED: ' + '; '.join(s['violations'][:3]) if s['violations'] else 'no violation recorded'}"]
    return "\n".join(lines)

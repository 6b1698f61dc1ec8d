"""What a simulated boot did, as plain data: the numbers the pictures draw and reports can quote.

* :func:`boot_regions` - per node, the pfn regions initialised early, by each ``deferred_grow_zone`` call and
  by the per-node pass (or still uninitialised), holes and reserved memory, derived from the topology and
  the events;
* :func:`region_pages` - the pages of each kind in one node's regions, and how many grows there were;
* :func:`allocated_runs` - the runs of allocated pages, read from the page array;
* :func:`boot_schedule` - the boot laid out in **modelled** time (cost model, spec section 9.3);
* :func:`grow_calls` and :func:`working_passes` - the grow and per-node pass events that did some work;
* :func:`event_rows` - every event with its modelled time beside its host time (``Machine.events_frame``,
  ``pgdefer boot --events``).

No matplotlib here: :mod:`pgdefer.plot` draws what these functions return.
"""

from __future__ import annotations

from ._core import PAGE_FLAGS, POLICY_FACTS
from ._intervals import clip, intersect, merge, subtract
from .costmodel import DEFAULT_COST, CostModel, Mechanics, machine_passes


def grow_calls(machine) -> list:
    """The ``grow`` events (deferred_grow_zone calls) that initialised pages, in order."""
    return [e for e in machine.events if e["kind"] == "grow" and e["pages"]]


def working_passes(machine) -> list:
    """The ``deferred_init`` events (per-node deferred_init_memmap passes) that initialised pages, in order."""
    return [e for e in machine.events if e["kind"] == "deferred_init" and e["pages"]]


def boot_regions(machine) -> dict:
    """Per node, the pfn regions the memory map draws, derived from the topology and the events.

    Returns ``{node: {"span": (start_pfn, end_pfn), "zones": [(name, start, end)], "deferred_zone": name,
    "regions": [(kind, start_pfn, end_pfn, step)]}}`` with ``kind`` one of :data:`KINDS` and ``step`` the grow
    number (1, 2, ...) for ``"grow"`` regions, else 0. The early prefix is cut at the node's first
    ``first_deferred_pfn`` (event ``early_init``); grow ``k`` covers the free pfns from the previous
    ``first_deferred_pfn`` to the one it left (event ``grow``); the rest of the deferred zone is the per-node
    pass if the node's ``deferred_init`` event ran, else still uninitialised.
    """
    topo = machine.topology
    g = topo.geometry
    pps = g.pages_per_section
    events = machine.events
    early_fdp = {e["node"]: e["first_deferred_pfn"] for e in events if e["kind"] == "early_init"}
    grows = {}
    for e in events:
        if e["kind"] == "grow":
            grows.setdefault(e["node"], []).append(e)
    passed = {e["node"] for e in events if e["kind"] == "deferred_init"}
    all_mem = [(s, e) for s, e, _ in topo.memory_pfn_ranges()]
    sections = merge([((s // pps) * pps, ((e - 1) // pps + 1) * pps) for s, e in all_mem])
    reserved_all = merge([(g.pfn_down(r.start), g.pfn_up(r.end)) for r in topo.reserved])
    out = {}
    for nid in topo.nodes:
        ns, ne = topo.node_span(nid)
        mem = merge([(s, e) for s, e, _ in topo.memory_pfn_ranges(nid)])
        holes = subtract(intersect(clip(sections, ns, ne), [(ns, ne)]), all_mem)
        reserved = intersect(mem, reserved_all)
        free = subtract(mem, reserved)
        zones = [z for z in topo.zones(nid)]
        populated = [z for z in zones if z.present]
        dz = populated[-1] if populated else zones[-1]
        regions = [("hole", s, e, 0) for s, e in holes] + [("reserved", s, e, 0) for s, e in reserved]
        regions += [("early", s, e, 0) for s, e in clip(free, ns, dz.start_pfn)]
        dfree = clip(free, dz.start_pfn, ne)
        fdp = early_fdp.get(nid)
        if fdp is None:
            regions += [("early", s, e, 0) for s, e in dfree]
        else:
            regions += [("early", s, e, 0) for s, e in clip(dfree, dz.start_pfn, fdp)]
            cur, k = fdp, 0
            for ge in grows.get(nid, []):
                if not ge["pages"]:
                    continue
                new = ne if ge["first_deferred_pfn"] is None else ge["first_deferred_pfn"]
                if new <= cur:
                    continue
                k += 1
                regions += [("grow", s, e, k) for s, e in clip(dfree, cur, new)]
                cur = new
            rest = "pass" if nid in passed else "uninit"
            regions += [(rest, s, e, 0) for s, e in clip(dfree, cur, ne)]
        out[nid] = {"span": (ns, ne), "zones": [(z.name, z.start_pfn, z.end_pfn) for z in zones],
                    "deferred_zone": dz.name, "regions": sorted(regions, key=lambda r: r[1])}
    return out


def region_pages(info: dict) -> dict:
    """Pages of each region kind in one node's entry of :func:`boot_regions` (kinds absent = 0), and
    ``"grows"``: how many deferred_grow_zone calls initialised part of the node."""
    out = {kind: 0 for kind in ("early", "grow", "pass", "uninit", "reserved", "hole")}
    for kind, s, e, _ in info["regions"]:
        out[kind] += e - s
    out["grows"] = max((step for kind, _, _, step in info["regions"] if kind == "grow"), default=0)
    return out


def allocated_runs(machine, max_chunk: int = 1 << 23) -> list:
    """(start_pfn, end_pfn) runs of ALLOCATED pages, read from the page array in bounded chunks."""
    import numpy as np

    from .machine import ALLOCATED as ST_ALLOCATED

    p = machine.pages
    flags = np.asarray(p.flags)  # positional: base + offset, as the chunks say
    shift, mask = PAGE_FLAGS["state"]
    runs = []
    for s, e, base in p.chunks:
        for a in range(0, e - s, max_chunk):
            b = min(e - s, a + max_chunk)
            st = ((flags[base + a:base + b] >> shift) & mask) == ST_ALLOCATED
            if not st.any():
                continue
            edges = np.flatnonzero(np.diff(np.concatenate(([0], st.view(np.int8), [0]))))
            for i in range(0, len(edges), 2):
                rs, re_ = s + a + int(edges[i]), s + a + int(edges[i + 1])
                if runs and runs[-1][1] == rs:
                    runs[-1] = (runs[-1][0], re_)
                else:
                    runs.append((rs, re_))
    return runs


def boot_schedule(machine, cost: CostModel = DEFAULT_COST, pass_threads: int = 1) -> dict:
    """The boot laid out in modelled time (ms), as plain data.

    Boot CPU: early init node by node, memblock_free_all (its modelled duration; the Memory: line is printed at its
    end), then the grows back to back
    (the rest of the on-demand window - the allocations themselves, smp_init, ... - is not modelled).
    page_alloc_init_late: one pass per node, all starting together (one thread per node; ``pass_threads`` per node
    for padata kernels); the static key goes off after the slowest (v4.17) or before the passes (posting-v2).
    """
    ev = machine.events
    mech = Mechanics.from_policy(machine.policy)
    plans = machine_passes(machine, cost, pass_threads)
    t = 0.0
    boot_cpu = []
    for e in ev:
        if e["kind"] == "early_init":
            d = cost.early_ms(e["pages"])
            boot_cpu.append({"what": "early", "node": e["node"], "start": t, "ms": d, "pages": e["pages"]})
            t += d
    mfa = next((e for e in ev if e["kind"] == "memblock_free_all"), None)
    if mfa is not None:
        d = cost.machine_memblock_free_all_ms(machine)
        boot_cpu.append({"what": "memblock_free_all", "node": None, "start": t, "ms": d, "pages": mfa["released"],
                         "reserved": mfa["reserved"]})
        t += d
    mem_init_at = t if mfa is not None else None
    grows = []
    for e in ev:
        if e["kind"] == "grow":
            d = cost.grow_ms(e["pages"], mech)
            grows.append({"what": "grow", "node": e["node"], "start": t, "ms": d, "pages": e["pages"],
                          "result": e["result"], "zone": e["zone"], "order": e["order"]})
            t += d
    window_end = t
    passes = []
    key_off = None
    key = any(e["kind"] == "key_disable" for e in ev)
    pass_ev = sorted((e for e in ev if e["kind"] == "deferred_init"), key=lambda e: e["node"])
    if pass_ev:
        start = window_end
        if key and POLICY_FACTS[machine.policy]["key_disable"] == "before_passes":
            key_off = start
        for e in pass_ev:
            pc = plans.get(e["node"])
            ms = pc.ms if pc is not None else cost.pass_ms(e["pages"], pass_threads, mech)
            passes.append({"node": e["node"], "start": start, "ms": ms,
                           "pages": e["pages"], "host_ms": e["host_ns"] / 1e6})
        end = max(p["start"] + p["ms"] for p in passes)
        if key and key_off is None:
            key_off = end
    else:
        end = window_end
    return {"boot_cpu": boot_cpu, "mem_init_at": mem_init_at, "grows": grows, "window_end": window_end,
            "passes": passes, "key_off": key_off, "end": end, "pass_threads": pass_threads,
            "cost_model": cost.label(mech.generation)}


#: The event columns every row has, before the kind's own fields (``_core.EVENT_KINDS``).
EVENT_COLUMNS = ("seq", "kind", "cpu", "t_ns", "t_model_ms", "model_ms")


def event_rows(machine, cost: CostModel = DEFAULT_COST, pass_threads: int = 1) -> list:
    """Every event of ``machine`` as a flat dict, in order, with both kinds of time.

    ``t_ns`` is host time since the machine was created; ``t_model_ms`` the modelled time (ms, cost model) at
    which the event is logged and ``model_ms`` the modelled duration of the work it reports, both from
    :func:`boot_schedule`: early_init, memblock_free_all and grow at the end of their step on the boot CPU (the
    window opens when memblock_free_all ends), deferred_init at the end of its node's pass, key_disable when the
    key goes off; a padata_chunk at its node's pass start (chunks are not timed one by one) and a warning or
    lockdep report at the modelled time of the event before it (no duration). Fields a kind lacks are None."""
    from ._core import EVENT_KINDS

    sch = boot_schedule(machine, cost, pass_threads)
    early = iter(b for b in sch["boot_cpu"] if b["what"] == "early")
    grows = iter(sch["grows"])
    mfa = next((b for b in sch["boot_cpu"] if b["what"] == "memblock_free_all"), None)
    passes = {p["node"]: p for p in sch["passes"]}
    fields = [f for kind in EVENT_KINDS.values() for f in kind]
    fields = [f for i, f in enumerate(fields) if f not in fields[:i] and f not in EVENT_COLUMNS]
    rows, now = [], 0.0
    for seq, e in enumerate(machine.events):
        kind, dur = e["kind"], None
        if kind in ("early_init", "grow"):
            step = next(early if kind == "early_init" else grows)
            now, dur = step["start"] + step["ms"], step["ms"]
        elif kind == "memblock_free_all":
            now, dur = sch["mem_init_at"], mfa["ms"]
        elif kind == "deferred_init" and e["node"] in passes:
            p = passes[e["node"]]
            now, dur = p["start"] + p["ms"], p["ms"]
        elif kind == "key_disable" and sch["key_off"] is not None:
            now, dur = sch["key_off"], 0.0
        elif kind == "padata_chunk" and e["node"] in passes:
            now = passes[e["node"]]["start"]
        row = {"seq": seq, "kind": kind, "cpu": e.get("cpu"), "t_ns": e.get("t_ns"), "t_model_ms": now,
               "model_ms": dur}
        row.update({f: e.get(f) for f in fields})
        rows.append(row)
    return rows

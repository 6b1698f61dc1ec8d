"""Issue 10 acceptance 1 and 2: replay the traced allocations of every traced kernel-lab log and count the
allocations for which the model, choosing on its own, hands out the same pfn as the real kernel; then compare the
free pages per zone and migratetype after the whole trace with the log's /proc/pagetypeinfo.

The machine is the log's (``pgdefer.lab.importer.lab_topology``, policy ``auto``). Before the trace it makes the
allocations the kernel made before its first trace line as far as the log states them
(``pgdefer.lab.pretrace.pre_trace_allocations``: preallocate_vmalloc_pages, ftrace's record groups from its
"allocated P pages with G groups" line, tracer_alloc_buffers' ring buffers and saved-cmdlines block), or, with
``--vmalloc-only``, only the 65 vmalloc pages (the figures before the pre-trace model). The SLUB bootstrap has no
figure in the log and is not modelled: the offset between the kernel's first traced pfn and the model's first pick
says how much is left. The model's own rate has no resynchronisation: every pfn is its own choice. A second figure,
reported apart and never as the model's own, resynchronises once at the start: as many order-0 UNMOVABLE pages as
the model's first pick is still behind, taken where the SLUB bootstrap runs (after mem_init, before ftrace_init);
after that, again every pfn is the model's own. The real per-CPU pagesets are set up where the log says
(``TraceWorkload.pcp_setup_line``).

    python benches/replay_match.py [--vmalloc-only] [LOG ...]   (default: every traced log in ../shared/kernel-lab)
"""

import argparse
import collections
import re
import sys
from pathlib import Path

from pgdefer.lab.compare import PREALLOCATE_VMALLOC_PAGES, _policy_for
from pgdefer.lab.importer import lab_topology
from pgdefer.lab.pretrace import pre_trace_allocations
from pgdefer.lab.sections import read_text
from pgdefer.lab.trace import TraceWorkload
from pgdefer.machine import Machine

LAB = Path(__file__).resolve().parent.parent.parent / "shared" / "kernel-lab"
RE_PTI = re.compile(r"Node\s+(\d+), zone\s+(\w+), type\s+(\w+)((?:\s+\d+)+)")


def pagetypeinfo(text):
    """{(node, zone, type): [free blocks per order]} of the log's last /proc/pagetypeinfo dump."""
    out = {}
    for nid, zone, mt, counts in RE_PTI.findall(text):
        out[(int(nid), zone, mt)] = [int(c) for c in counts.split()]
    return out


def pre_trace(m, text, cmdline, behind, vmalloc_only):
    """The stated pre-trace allocations on ``m`` (module docstring), with ``behind`` order-0 pages after mem_init's."""
    steps = pre_trace_allocations(text, cmdline or "")
    if vmalloc_only:
        steps = [("mem_init: preallocate_vmalloc_pages", 0, PREALLOCATE_VMALLOC_PAGES)]
    steps = steps[:1] + [("resync: SLUB bootstrap stand-in", 0, behind)] + steps[1:]
    for _, order, count in steps:
        for _ in range(count):
            m.alloc_pages(order)
    return sum(c << k for _, k, c in steps)


def replay(path, behind=0, vmalloc_only=False):
    text, p = read_text(path)
    trace = TraceWorkload.from_log(text, name=p)
    if not trace.events:
        return None
    topo = lab_topology(text, name=p)
    policy, _ = _policy_for(topo)
    m = Machine(topo, policy=policy)
    m.boot()
    pre_pages = pre_trace(m, text, topo.source.command_line, behind, vmalloc_only)
    st = {"blocks": {}}
    window = [(e, ph) for e, ph in zip(trace.events, trace.phase_of) if ph == "window"]
    first_line = next((e.line for e, _ in window if e.kind == "alloc"), None)
    same = n = 0
    misses = collections.Counter()
    first = None
    for ev, ph in window:
        one = TraceWorkload([ev], [ph], p, trace.pcp_setup_line)
        r = one.replay(m, phases=("window",), state=st)
        if ev.kind == "alloc":
            n += 1
            same += r["same_pfn"]
            if not r["same_pfn"]:
                misses[(ev.order, ev.migratetype)] += 1
                if first is None:
                    first = (ev.line, ev.pfn, st["blocks"][ev.pfn][0], ev.order, ev.migratetype)
    m.page_alloc_init_late()
    rest = trace.replay(m, phases=("passes", "late"), state=st)
    real = pagetypeinfo(text)
    gap = collections.Counter()
    for (nid, zone, mt), counts in real.items():
        try:
            model = m.pagetypeinfo(nid, zone)[mt]
        except (LookupError, ValueError, KeyError):
            continue
        gap[(nid, zone, mt)] = (sum(c << k for k, c in enumerate(model)), sum(c << k for k, c in enumerate(counts)))
    return dict(log=Path(p).name, policy=policy, pre_pages=pre_pages,
                window_allocs=n, same=same, misses=misses, first=first,
                first_line=first_line,
                later_allocs=rest["allocs"], later_same=rest["same_pfn"], pagetypes=gap)


def main(argv):
    ap = argparse.ArgumentParser(prog="replay_match.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="*", metavar="LOG",
                    help="kernel-lab logs (default: every log in ../shared/kernel-lab)")
    ap.add_argument("--vmalloc-only", action="store_true",
                    help="before the trace, only the 65 preallocate_vmalloc_pages pages (the figures before the "
                         "pre-trace model)")
    args = ap.parse_args(argv)
    vmalloc_only = args.vmalloc_only
    logs = args.logs or sorted(str(x) for x in LAB.glob("*.log"))
    print("replay of the traced window allocations (the model's own pfn choice; no resync);"
          f" pre-trace: {'vmalloc pages only' if vmalloc_only else 'what the log states'}")
    for log in logs:
        r = replay(log, vmalloc_only=vmalloc_only)
        if r is None:
            print(f"  {Path(log).name}: no page trace")
            continue
        rate = 100 * r["same"] / max(r["window_allocs"], 1)
        print(f"  {r['log']:30s} {r['policy']:6s} pre-trace {r['pre_pages']} pages;"
              f" window: {r['same']:4d}/{r['window_allocs']:4d} = {rate:5.1f} %"
              f"   after the window: {r['later_same']}/{r['later_allocs']}")
        if r["first"]:
            line, k, got, order, mt = r["first"]
            print(f"    first mismatch: log line {line}, order {order} mt {mt}: kernel {k:#x}, model {got:#x}"
                  f" (offset {got - k:+d} pages)")
            if got < k and line == r["first_line"]:
                s = replay(log, behind=k - got, vmalloc_only=vmalloc_only)
                rate1 = 100 * s["same"] / max(s["window_allocs"], 1)
                print(f"    resynchronised once (+{k - got} untraced order-0 pages first; not the model's own rate):"
                      f" {s['same']:4d}/{s['window_allocs']:4d} = {rate1:5.1f} %")
        top = ", ".join(f"o{o}/mt{mt}: {c}" for (o, mt), c in r["misses"].most_common(4))
        print(f"    mismatches by order/migratetype: {top}")
        for (nid, zone, mt), (model, real) in sorted(r["pagetypes"].items()):
            if model or real:
                print(f"    end state node {nid} {zone:6s} {mt:11s} free pages model {model:7d}  /proc/pagetypeinfo"
                      f" {real:7d}")


if __name__ == "__main__":
    main(sys.argv[1:])

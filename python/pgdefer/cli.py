"""The ``pgdefer`` command line: ``boot``, ``compare``, ``topology list|show|import-dmesg``.

Every user error (missing file, not a boot log, unknown preset, bad TOML, unknown policy, ...) ends the
command with one line ``pgdefer: error: ...`` on stderr and exit status 2; an invariant violation found by the
model ends ``boot``/``compare`` with status 1; anything else (a bug) one line ``pgdefer: internal error: ...``
and status 3 (``PGDEFER_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

from .config import HOST_BYTES_PER_PAGE, human_size
from .errors import PgdeferError

DESCRIPTION = """\
Simulate a boot with deferred struct page initialisation and on-demand growth
(Linux "mm: initialize pages on demand during boot", v4.17) on a model machine,
and print what happened: per-node early pages, each grow, per-node passes and
the Memory: line. Times in ms are modelled (spec cost model) unless marked host.
For a machine imported from a boot log (dmesg:LOG), the real Memory: line and
per-node deferred-init lines are printed beside the predicted ones.
"""

TOPOLOGY_HELP = ("machine: a preset name (see `pgdefer topology list`), a .toml/.json topology file, "
                 "dmesg:PATH of a boot log (.gz read; dmesg:- reads stdin; dmesg:PATH#N the N-th boot of a file "
                 "holding several), or host (this machine) (default: %(default)s)")

STOP_PHASES = ("memblock_free_all", "workload", "page_alloc_init_late")

BOOT_EPILOG = """\
examples:
  pgdefer boot                                   the default machine, v4.17, default workload
  pgdefer boot -t dmesg:/var/log/dmesg.0         a real machine from its boot log, policy from its kernel
  pgdefer boot -t two-node.toml -p posting-v2 --plot boot.png
  pgdefer boot -t dmesg:big.log --stop-after memblock_free_all --no-check
                                                 only up to the Memory: line; fast on huge machines
                                                 only with --no-check (the check walks every struct page)
  pgdefer boot --json | jq .mem_init             the Memory: line as data

policies: eager (no deferral), v4.2 (2 GiB prefix, no growth), posting-v2 (Feb 2018
posting: global grow lock, key off first), v4.17 (as merged), auto (from the log,
the preset or the host kernel).
"""

COMPARE_EPILOG = """\
examples:
  pgdefer compare                                  all policies on the default machine
  pgdefer compare -t dmesg:boot.log --policies v4.2,v4.17
  pgdefer compare -t big.toml --json > policies.json

Every policy boots the same machine and replays the same early allocations; the
table shows early pages, grows, per-node passes (modelled and host time),
allocation failures, the Memory: line at mem_init and the invariant check.
"""

TOPOLOGY_EPILOG = """\
examples:
  pgdefer topology list
  pgdefer topology show default
  pgdefer topology show dmesg:/var/log/dmesg --json
  pgdefer topology show host --toml > this-host.toml
  pgdefer topology import-dmesg boot.log -o machine.toml
"""


class CliError(PgdeferError, ValueError):
    """A command-line usage error (bad argument, unknown name)."""


# --------------------------------------------------------------------------------------------------
# progress on stderr
# --------------------------------------------------------------------------------------------------

class Progress:
    """The current phase on stderr, only on a terminal (or with ``force``), once a run has taken over a second.

    A background ticker keeps the line moving while a long phase (a per-node pass over hundreds of millions
    of pages) runs in the Rust core, which releases the GIL. With a machine to ``watch``, the line shows the
    struct pages done by the core's long loop, the percentage of the memmap and an estimate of the time
    left. Use as a context manager so the line is cleared before any output or error message.
    """

    def __init__(self, enabled=True, stream=None, delay=1.0, force=False):
        self.stream = stream or sys.stderr
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.enabled = bool(enabled) and (force or (tty and os.environ.get("TERM") != "dumb"))
        self.delay = delay
        self.t0 = time.monotonic()
        self.what = None
        self.shown = False
        self._source = None
        self._stage = None  # (stage, t, pages) when the core's current stage was first seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.enabled:
            self._thread = threading.Thread(target=self._tick, name="pgdefer-progress", daemon=True)
            self._thread.start()

    def _pages(self, now):
        """`` N / M struct pages (P%), ~S s left`` of the watched core's long loop, or ""."""
        if self._source is None:
            return ""
        stage, done, total = self._source()
        if stage == "idle" or not total:
            self._stage = None
            return ""
        if self._stage is None or self._stage[0] != stage:
            self._stage = (stage, now, done)
        _, t, first = self._stage
        text = f": {done:,} / {total:,} struct pages ({100 * done / total:.0f}%)"
        rate = (done - first) / (now - t) if now > t else 0
        if rate > 0 and done < total:
            text += f", ~{(total - done) / rate:.0f} s left"
        return text

    def _draw(self):
        now = time.monotonic()
        if self.what and now - self.t0 > self.delay:
            self.shown = True
            self.stream.write(f"\r\x1b[K[{now - self.t0:6.1f}s] {self.what}{self._pages(now) or '...'}")
            self.stream.flush()

    def watch(self, progress):
        """Show the progress of a core's long loops: ``progress()`` returns (stage, pages done, memmap pages)
        (``_core.Machine.progress``)."""
        with self._lock:
            self._source = progress

    def _tick(self):
        while not self._stop.wait(0.2):
            with self._lock:
                self._draw()

    def step(self, what):
        """Enter a new phase (shown once the run is older than ``delay`` seconds)."""
        with self._lock:
            self.what = what
            if self.enabled:
                self._draw()

    def done(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self.shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self.shown = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.done()
        return False


def _progress(args):
    """The progress line of ``boot``/``compare``: on a terminal, or anywhere with ``--progress``; never with
    ``--quiet``, and not with ``--json`` unless ``--progress`` asks."""
    return Progress(not args.quiet and (args.progress or not args.json), force=args.progress)


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------

def _presets():
    try:
        from .sources import presets
    except ImportError as e:  # pragma: no cover - presets.py is part of the package
        raise CliError(f"the preset machines are not available in this installation ({e})") from None
    return presets


def preset_names() -> list:
    return list(_presets().names())


def load_topology(spec: str):
    """PRESET name, a .toml/.json FILE, dmesg:LOG or host; every failure is a one-line PgdeferError."""
    from .topology import Topology

    if not spec:
        raise CliError("empty --topology (expected a preset name, a .toml/.json file, dmesg:LOG or host)")
    if spec == "host":
        try:
            return Topology.from_host()
        except ImportError as e:
            raise CliError(f"reading this host's memory map is not available ({e})") from None
    if spec.startswith("dmesg:"):
        path = spec[len("dmesg:"):]
        if not path:
            raise CliError("dmesg: needs the path of a boot log, e.g. dmesg:/var/log/dmesg (dmesg:- reads stdin)")
        boot = None
        m = re.fullmatch(r"(.+)#(-?\d+)", path)  # dmesg:kern.log#2: the second boot of a file holding several
        if m and not Path(path).expanduser().exists():
            path, boot = m.group(1), int(m.group(2))
        return Topology.from_dmesg(path, boot=boot)
    p = Path(spec)
    if spec.lower().endswith((".toml", ".json")):
        return Topology.from_file(spec)
    if p.exists():
        if p.is_dir():
            raise CliError(f"{spec}: is a directory, not a topology file")
        raise CliError(f"{spec}: a topology file must end in .toml or .json (for a boot log, use dmesg:{spec})")
    names = preset_names()
    if spec not in names:
        looks_like_path = os.sep in spec or "." in spec
        raise CliError(f"unknown topology {spec!r}: " +
                       ("no such file; " if looks_like_path else "") +
                       f"not a preset (presets: {', '.join(names)}), nor dmesg:LOG or host"
                       + _presets().suggestion(spec))
    return _presets().get(spec)


def _dmesg_source(topo):
    """The DmesgBoot a topology was imported from, or None."""
    src = getattr(topo, "source", None)
    return src if src is not None and hasattr(src, "early_node_ranges") else None


def resolve_policy(requested: str, topo, preset=None) -> tuple:
    """(policy, note) for ``--policy``: :func:`pgdefer.generations.resolve`, the one resolver that topology files
    and ``Machine(t, policy="auto")`` use too (``auto`` reads the log's kernel, the preset or the host kernel)."""
    from .generations import resolve

    r = resolve(topo, requested, preset)
    return r.policy, r.note


def resolve_pass_threads(requested: str, topo, policy: str) -> tuple:
    """Threads per node pass for the modelled time: an int, or auto = the log's CPUs per node (the fewest of
    any node, from the topology's KernelInfo) for kernels with padata (5.8+), else 1."""
    from . import POLICY_FACTS
    from .generations import resolve

    if requested != "auto":
        try:
            n = int(requested)
        except ValueError:
            n = 0
        if n < 1:
            raise CliError(f"--pass-threads must be a positive integer or auto, got {requested!r}")
        return n, ""
    cpus = resolve(topo, policy).node_cpus
    if not POLICY_FACTS[policy]["padata"] or not cpus:
        return 1, ""
    n = max(1, min(cpus.values()))
    return n, (f"per-node passes modelled with {n} threads per node (padata on the node's CPUs, {policy}; CPUs per "
               f"node from the log: {', '.join(f'node {k}: {v}' for k, v in cpus.items())})")


def resolve_cost(args, topo, preset=None):
    """The cost model for ``--machine-class`` / ``--cost`` (class from the preset or the boot log otherwise)."""
    from .costmodel import class_for, cost_model

    name, reason = (args.machine_class, "--machine-class") if args.machine_class else class_for(topo, preset)
    return cost_model(name, args.cost or (), reason)


def host_memory_check(topo):
    """Refuse a machine whose page array would not fit in this host's available memory."""
    _presets().check_fits_host(topo)


def resolve_memmap(choice, topo, host_check=True):
    """``--memmap``: dense or compact as asked; auto = dense (the reference) when its page array fits this host's
    available memory (or MemAvailable is unknown), else compact (summarised sections: the 12 and 24 TB machines
    run here). A dense choice is
    refused up front when it does not fit (unless ``host_check`` is off)."""
    presets = _presets()
    if choice == "auto":
        have = presets.host_available_bytes()
        choice = "compact" if have is not None and presets.host_bytes_needed(topo) > have else "dense"
    if choice == "dense" and host_check:
        host_memory_check(topo)
    return choice


def _check_plot_target(path):
    if path is None:
        return
    from .plot import require_matplotlib

    require_matplotlib()
    p = Path(path)
    if p.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise CliError(f"--plot {path}: the file name must end in .png, .svg or .pdf")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"--plot {path}: directory {parent} does not exist")


def _check_events_target(path):
    """``--events FILE``: .csv (no extra needed) or .parquet (pandas + pyarrow), in an existing directory."""
    if path is None:
        return
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".parquet"):
        raise CliError(f"--events {path}: the file name must end in .csv or .parquet")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"--events {path}: directory {parent} does not exist")
    if p.suffix.lower() == ".parquet":
        try:
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError:
            raise CliError(f"--events {path}: parquet needs pandas and pyarrow: pip install 'pgdefer[sweep]'"
                           " (or write a .csv)") from None


def _write_events(m, path, cost, threads, progress):
    """``--events``: every event with host and modelled time (analysis.event_rows), one row each."""
    if path is None:
        return
    progress.step(f"writing {path}")
    if Path(path).suffix.lower() == ".parquet":
        m.events_frame(cost, pass_threads=threads).to_parquet(path, index=False)
        return
    import csv

    from .analysis import event_rows

    rows = event_rows(m, cost, threads)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["seq", "kind"])
        w.writeheader()
        w.writerows(rows)


# --------------------------------------------------------------------------------------------------
# running a machine
# --------------------------------------------------------------------------------------------------

def preset_workload(choice, topo):
    """``--workload``: "default" is the machine's preset's documented early demand when it has one (the 24 TB
    DragonHawk's, spec M4), else the generic storm ("default" again, for run_machine); "none" is none."""
    own = getattr(getattr(topo, "source", None), "workload", None)
    return own(topo.nodes) if choice == "default" and own is not None else choice


def run_machine(topo, policy, workload="default", stop_after="page_alloc_init_late", threads=True,
                check=True, progress=None, host_check=True, memmap="dense", early_prefix=None):
    """Build, boot, replay the workload, run page_alloc_init_late; returns (machine, results, problems).

    ``workload``: "default" (pgdefer.workload.default_workload), "none", or a list of workload Bursts.
    ``host_check=False`` builds a machine whose page array exceeds this host's available memory (its arrays
    are mapped lazily: a run that stops early touches only what it initialises)."""
    from .machine import Machine
    from .workload import default_workload, replay

    step = progress.step if progress else (lambda what: None)
    step(f"{policy}: building the memmap ({memmap})")
    m = Machine(topo, policy=policy, memmap=memmap, early_prefix=early_prefix,
                **({} if host_check else {"host_check": False}))
    if progress:
        progress.watch(m._core.progress)
    step(f"{policy}: boot (early init, memblock_free_all)")
    m.boot()
    results = None
    if stop_after != "memblock_free_all":
        if workload == "default":
            step(f"{policy}: early allocations")
            results = replay(m, default_workload(m.nodes))
        elif workload not in (None, "none"):
            step(f"{policy}: early allocations")
            results = replay(m, workload)
        if stop_after != "workload":
            step(f"{policy}: page_alloc_init_late (per-node passes)")
            m.page_alloc_init_late(threads=threads)
    problems = None
    if check:
        walk = (f"walks all {len(m.pages):,} struct pages" if memmap == "dense"
                else "walks every dense section and each summarised one in a step")
        step(f"{policy}: checking invariants ({walk}; --no-check skips it)")
        problems = m._core.check()
    return m, results, problems


def cmd_boot(args) -> int:
    from .report import (
        dmesg_report,
        format_log_comparison,
        format_published,
        log_comparison,
        published_comparison,
        summary,
    )

    _check_plot_target(args.plot)
    _check_events_target(args.events)
    with _progress(args) as progress:
        progress.step("loading topology")
        topo = load_topology(args.topology)
        progress.step("choosing the policy")
        preset = args.topology if args.topology in preset_names() else None
        policy, note = resolve_policy(args.policy, topo, preset)
        threads, tnote = resolve_pass_threads(args.pass_threads, topo, policy)
        cost = resolve_cost(args, topo, preset)
        memmap = resolve_memmap(args.memmap, topo, host_check=not args.no_host_check)
        m, results, problems = run_machine(topo, policy, preset_workload(args.workload, topo), args.stop_after,
                                           threads=not args.no_threads, check=not args.no_check,
                                           progress=progress, host_check=not args.no_host_check, memmap=memmap,
                                           early_prefix=args.early_prefix)
        boot_log = _dmesg_source(topo)
        version = boot_log.version if boot_log is not None else None
        cmp = log_comparison(m, boot_log, cost, pass_threads=threads) if boot_log is not None else None
        pub = None
        if preset is not None and _presets().info(preset).published:
            pub = published_comparison(m, _presets().info(preset).published, cost)
        from .lab.compare import boot_comparison, format_compare
        lab_cmp = boot_comparison(topo, policy)  # kernel-lab logs: predicted vs real as `pgdefer lab compare`
        if args.plot:
            progress.step(f"drawing {args.plot}")
            from .plot import save_boot_figure

            save_boot_figure(m, args.plot, cost, pass_threads=threads)
        _write_events(m, args.events, cost, threads, progress)
    if args.json:
        out = summary(m, cost, pass_threads=threads)
        out["policy_requested"] = args.policy
        out["policy_note"] = note or None
        out["pass_threads_note"] = tnote or None
        out["stopped_after"] = args.stop_after
        out["workload"] = {k: {"ok": a, "failed": f} for k, (a, f) in (results or {}).items()}
        out["check"] = problems
        out["log"] = cmp
        out["preset"] = preset
        out["published"] = pub
        out["topology_notes"] = list(topo.notes)
        out["lab"] = lab_cmp
        if args.plot:
            out["plot"] = str(args.plot)
        out["events"] = args.events
        print(json.dumps(out, indent=2, default=str))
    else:
        text = dmesg_report(m, cost, workload_results=results, pass_threads=threads, kernel_version=version)
        print(text)
        if note and cmp is None:
            print(f"  {note}")
        if tnote and cmp is None:
            print(f"  {tnote}")
        if args.stop_after != "page_alloc_init_late":
            print(f"  stopped after {args.stop_after} (--stop-after)")
        if problems is not None:
            print("  check(): " + ("all invariants hold" if not problems else
                                   f"{len(problems)} violation(s): " + "; ".join(problems[:5])))
        elif args.no_check:
            print("  check(): skipped (--no-check)")
        if cmp is not None:
            print("\n".join(format_log_comparison(cmp, "; ".join(x for x in (note, tnote) if x))))
        if pub is not None:
            print("\n".join(format_published(pub)))
        if lab_cmp is not None:
            print("\nkernel lab (exact reserved map, page trace replayed, Memory: line where the kernel printed it):")
            print(format_compare(lab_cmp))
        for path in filter(None, (args.plot, args.events)):
            print(f"\nwrote {path}")
    return 1 if (problems or m.violations) else 0


def parse_policies(text: str) -> list:
    from . import POLICIES

    if text.strip() == "all":
        return list(POLICIES)
    out = []
    for p in (x.strip() for x in text.split(",")):
        if not p:
            continue
        if p not in POLICIES:
            from .errors import did_you_mean

            raise CliError(f"unknown policy {p!r} in --policies (choose from {', '.join(POLICIES)}, or all)"
                           + did_you_mean(p, POLICIES))
        if p not in out:
            out.append(p)
    if not out:
        raise CliError("--policies is empty (e.g. --policies eager,v4.2,posting-v2,v4.17)")
    return out


def cmd_compare(args) -> int:
    from .report import compare_row, format_compare

    policies = parse_policies(args.policies)
    if args.early_prefix is not None:
        raise CliError("--early-prefix sets v4.2's prefix: use it with pgdefer boot -p v4.2")
    rows = []
    with _progress(args) as progress:
        progress.step("loading topology")
        topo = load_topology(args.topology)
        memmap = resolve_memmap(args.memmap, topo, host_check=not args.no_host_check)
        boot_log = _dmesg_source(topo)
        cost = resolve_cost(args, topo, args.topology if args.topology in preset_names() else None)
        for policy in policies:
            threads, _ = resolve_pass_threads(args.pass_threads, topo, policy)
            m, results, problems = run_machine(topo, policy, preset_workload(args.workload, topo),
                                               "page_alloc_init_late", threads=not args.no_threads,
                                               check=not args.no_check, progress=progress,
                                               host_check=not args.no_host_check, memmap=memmap)
            row = compare_row(m, cost, workload_results=results, problems=problems, pass_threads=threads)
            row["pass_threads"] = threads
            row["workload"] = {k: {"ok": a, "failed": f} for k, (a, f) in (results or {}).items()}
            rows.append(row)
            del m
    bad = any(r["check"] or r["violations"] for r in rows)
    name = topo.name or args.topology
    if args.json:
        out = {"topology": name, "topology_spec": args.topology, "workload": args.workload,
               "time_units": "modelled ms unless the key says host",
               "policies": {r["policy"]: r for r in rows}}
        if boot_log is not None and boot_log.memory is not None:
            out["log_memory"] = {"available_kib": boot_log.memory.available_kib,
                                 "total_kib": boot_log.memory.total_kib,
                                 "reserved_kib": boot_log.memory.reserved_kib}
        print(json.dumps(out, indent=2, default=str))
    else:
        print(format_compare(rows, name, boot_log.memory if boot_log is not None else None))
    return 1 if bad else 0


# --------------------------------------------------------------------------------------------------
# topology commands
# --------------------------------------------------------------------------------------------------

def _preset_meta(name, topo) -> dict:
    """description and source of a preset, from whatever the presets module offers."""
    p = _presets().info(name)
    return {"description": p.description, "source": p.source, "policy": p.policy, "kernel": p.kernel,
            "layout": p.layout, "published": p.published}


def cmd_topology_list(args) -> int:
    rows = []
    have = _presets().host_available_bytes()
    for name in preset_names():
        topo = _presets().get(name)
        meta = _preset_meta(name, topo)
        need = _presets().host_bytes_needed(topo)
        rows.append({"name": name, "memory_bytes": topo.memory_bytes, "size": human_size(topo.memory_bytes),
                     "nodes": len(topo.nodes), "present_pages": topo.present_pages,
                     "host_bytes_needed": need, "fits_host": None if have is None else need <= have,
                     **meta})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no presets")
        return 0
    nw = max(len("preset"), *(len(r["name"]) for r in rows))
    print(f"{'preset':<{nw}}  {'memory':>10}  {'nodes':>5}  description")
    for r in rows:
        big = "" if r["fits_host"] is not False else \
            f"  [needs {human_size(r['host_bytes_needed'])} of host memory, more than this host has]"
        print(f"{r['name']:<{nw}}  {r['size']:>10}  {r['nodes']:>5}  {r['description']}{big}")
        if r["source"]:
            print(f"{'':<{nw}}  {'':>10}  {'':>5}  source: {r['source']}")
    where = "MemAvailable unknown" if have is None else f"this host has {human_size(have)} available"
    print(f"\nhost memory: each preset's page array needs {HOST_BYTES_PER_PAGE} B per struct page ({where}; "
          "--no-host-check builds bigger ones, lazily mapped)")
    print("use one with: pgdefer boot --topology NAME   (details: pgdefer topology show NAME)")
    return 0


def topology_data(topo, spec) -> dict:
    """Plain data of ``pgdefer topology show``."""
    from .config import HOST_BYTES_PER_PAGE
    from .sources.x86 import STRUCT_PAGE_SIZE

    g = topo.geometry
    nodes = []
    zones_by_node = {}
    for z in topo.zones():
        zones_by_node.setdefault(z.node, []).append(z)
    present_by_node, bytes_by_node = {}, {}  # one pass over the regions, not one per node
    for a, b, n in topo.memory_pfn_ranges():
        present_by_node[n] = present_by_node.get(n, 0) + b - a
    for r in topo.memory:
        bytes_by_node[r.node] = bytes_by_node.get(r.node, 0) + r.size
    for nid in topo.nodes:
        s, e = topo.node_span(nid)
        zs = zones_by_node.get(nid, [])
        populated = [z for z in zs if z.present]
        dz = populated[-1].name if populated else None
        nodes.append({
            "node": nid, "start_pfn": s, "end_pfn": e, "spanned_pages": e - s,
            "present_pages": present_by_node.get(nid, 0),
            "memory_bytes": bytes_by_node.get(nid, 0),
            "deferred_zone": dz,
            "zones": [{"name": z.name, "start_pfn": z.start_pfn, "end_pfn": z.end_pfn, "spanned_pages": z.spanned,
                       "present_pages": z.present, "deferred_zone": z.name == dz} for z in zs],
        })
    reserved_pages = topo.reserved_pages
    out = {
        "spec": spec, "name": topo.name, "memory_bytes": topo.memory_bytes, "present_pages": topo.present_pages,
        "geometry": g.to_dict(), "zone_limits": dict(topo.zone_limits),
        "memory": [{"start": r.start, "end": r.end, "node": r.node} for r in topo.memory],
        "reserved": [{"start": r.start, "end": r.end} for r in topo.reserved],
        "reserved_pages": reserved_pages,
        "reserved_kib": reserved_pages * g.page_size // 1024,
        "nodes": nodes,
        "memmap": {"struct_pages": topo.memmap_pages,
                   "host_bytes": topo.memmap_pages * HOST_BYTES_PER_PAGE,
                   "host_bytes_per_page": HOST_BYTES_PER_PAGE,
                   "kernel_bytes": topo.memmap_pages * STRUCT_PAGE_SIZE},
        "notes": list(topo.notes),
        "kernel": None if topo.kernel is None else {**topo.kernel.to_dict(), "node_cpus": topo.kernel.node_cpus},
    }
    boot = _dmesg_source(topo)
    if boot is not None:
        out["log"] = {
            "path": boot.path, "kernel_version": boot.kernel_version,
            "policy_for_kernel": boot.policy,
            "memory_line": None if boot.memory is None else {
                "available_kib": boot.memory.available_kib, "total_kib": boot.memory.total_kib,
                "reserved_kib": boot.memory.reserved_kib},
            "deferred_init": [{"node": d.node, "ms": d.ms, "pages": d.pages} for d in boot.deferred_init],
            "placed_reserved_kib": boot.placed_reserved_kib,
            "unplaced_reserved_kib": boot.unplaced_reserved_kib,
            "reservations": [{"label": r.label, "start": r.start, "end": r.end, "how": r.how, "detail": r.detail}
                             for r in boot.reservations],
        }
    return out


def _first(rows: list, limit: int, line, more: str = "") -> list:
    """``line(row)`` for the first ``limit`` rows, then how many more there are."""
    out = [line(r) for r in rows[:limit]]
    if len(rows) > limit:
        out.append(f"  ... {len(rows) - limit} more{more} (--limit, or --json for all)")
    return out


def _mem_range(r) -> str:
    return f"[mem {r['start']:#018x}-{r['end'] - 1:#018x}]"


def _format_log(log: dict) -> list:
    out = ["", (f"boot log {log['path']} (kernel {log['kernel_version'] or 'not printed'}; policy for this kernel: "
                f"{log['policy_for_kernel'] or 'unknown'}):")]
    ml = log["memory_line"]
    if ml:
        out.append(f"  Memory: {ml['available_kib']}K/{ml['total_kib']}K available ({ml['reserved_kib']}K reserved)")
    for x in log["deferred_init"]:
        out.append(f"  node {x['node']} deferred pages initialised in {x['ms']}ms"
                   + (f" ({x['pages']} pages)" if x["pages"] else ""))
    if log["unplaced_reserved_kib"] is not None:
        out.append(f"  reserved placed by the import: {log['placed_reserved_kib']}K; unplaced: "
                   f"{log['unplaced_reserved_kib']}K (not in the model)")
    return out


def _format_kernel(kernel) -> list:
    """The ``kernel`` line of ``topology show``: what the boot log showed (kept in files written by import-dmesg)."""
    if not kernel:
        return []
    cpus = ", ".join(f"node {n}: {c}" for n, c in kernel.get("node_cpus", {}).items()) or "not shown"
    return [f"  kernel: {kernel.get('version') or 'version not printed'}; CPUs per node: {cpus}"]


def format_topology(d: dict, limit: int = 25) -> str:
    g = d["geometry"]
    title = d["name"] or d["spec"]
    zone_limits = ", ".join(f"{k} ends at {v:#x} ({human_size(v)})" for k, v in d["zone_limits"].items())
    out = [(f"topology {title}: {human_size(d['memory_bytes'])} in {len(d['memory'])} memblock region(s), "
            f"{len(d['nodes'])} node(s), {d['present_pages']} present pages"),
           (f"  geometry: {g['page_size']} pages, {g['section_size']} sections, pageblock_order "
            f"{g['pageblock_order']}, MAX_PAGE_ORDER {g['max_order']}"),
           "  zone limits: " + zone_limits + ("" if "Normal" in d["zone_limits"] else "; Normal unbounded"),
           *_format_kernel(d.get("kernel")),
           (f"  memmap: {d['memmap']['struct_pages']} struct pages (every pfn of each present section): "
            f"{human_size(d['memmap']['kernel_bytes'])} in the kernel (64 B each); simulating it needs "
            f"{human_size(d['memmap']['host_bytes'])} of host memory ({d['memmap']['host_bytes_per_page']} B/page)"),
           "", "nodes:",
           f"  {'node':>4}  {'start_pfn':>12}  {'end_pfn':>12}  {'spanned':>12}  {'present':>12}  {'memory':>10}"]
    for n in d["nodes"]:
        out.append(f"  {n['node']:>4}  {n['start_pfn']:>#12x}  {n['end_pfn']:>#12x}  {n['spanned_pages']:>12}  "
                   f"{n['present_pages']:>12}  {human_size(n['memory_bytes']):>10}")
    out += ["", "zones:",
            f"  {'node':>4}  {'zone':<8}{'start_pfn':>12}  {'end_pfn':>12}  {'spanned':>12}  {'present':>12}"]
    for n in d["nodes"]:
        for z in n["zones"]:
            out.append(f"  {n['node']:>4}  {z['name']:<8}{z['start_pfn']:>#12x}  {z['end_pfn']:>#12x}  "
                       f"{z['spanned_pages']:>12}  {z['present_pages']:>12}"
                       + ("  deferred zone (the node's last populated zone)" if z["deferred_zone"] else ""))
    out += ["", "memory (memblock.memory, half-open):"]
    out += _first(d["memory"], limit,
                  lambda r: f"  node {r['node']:>3}: {_mem_range(r)}  {human_size(r['end'] - r['start'])}")
    res_bytes = sum(r["end"] - r["start"] for r in d["reserved"])
    out += ["", (f"reserved: {len(d['reserved'])} merged range(s), {human_size(res_bytes)}; "
                 f"{d['reserved_pages']} memory pages reserved ({d['reserved_kib']}K)")]
    log = d.get("log")
    if log:
        out += _first(sorted(log["reservations"], key=lambda r: r["start"]), limit,
                      lambda r: (f"  {_mem_range(r)} {human_size(r['end'] - r['start']):>10}  "
                                 f"{r['label']} ({r['how']})"), " reservation(s)")
        out += _format_log(log)
    else:
        out += _first(d["reserved"], limit, lambda r: f"  {_mem_range(r)} {human_size(r['end'] - r['start']):>10}")
    if d["notes"]:
        out += ["", "notes:"]
        out += [f"  - {n}" for n in d["notes"]]
    return "\n".join(out)


def cmd_topology_show(args) -> int:
    with Progress(not (args.json or args.toml)) as progress:
        progress.step("loading topology")
        topo = load_topology(args.spec)
    if args.toml:
        from .sources.files import dumps

        sys.stdout.write(dumps(topo, ".toml"))
        return 0
    d = topology_data(topo, args.spec)
    if args.json:
        print(json.dumps(d, indent=2, default=str))
    else:
        print(format_topology(d, args.limit))
    return 0


def cmd_topology_import(args) -> int:
    from .sources.files import dumps
    from .topology import Topology

    if args.output and not args.output.lower().endswith((".toml", ".json")):
        raise CliError(f"-o {args.output}: the topology file name must end in .toml or .json")
    topo = Topology.from_dmesg(args.log)
    boot = _dmesg_source(topo)
    if not args.output or args.output == "-":
        sys.stdout.write(dumps(topo, ".toml"))
        return 0
    topo.to_file(args.output)
    un = boot.unplaced_reserved_kib if boot is not None else None
    print(f"wrote {args.output}: {human_size(topo.memory_bytes)}, {len(topo.nodes)} node(s), {len(topo.memory)} memory "
          f"region(s), {len(topo.reserved)} reserved range(s)"
          + (f"; {un}K of the log's reserved memory could not be placed" if un else ""), file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``pgdefer: error: <command>: <message> (see --help)``."""

    def error(self, message):
        cmd = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"pgdefer: error: {cmd}{message} (see {self.prog} --help)\n")


def _add_machine_args(p, workload=True):
    p.add_argument("--topology", "-t", default="default", metavar="PRESET|FILE|dmesg:LOG|host", help=TOPOLOGY_HELP)
    if workload:
        p.add_argument("--workload", choices=["default", "none"], default="default",
                       help="early allocations between memblock_free_all and page_alloc_init_late: the default "
                            "storm (hash tables, per-cpu areas, slab, page tables; a preset whose record documents "
                            "its own early demand, such as m4-16node-24t, replays that) or none (default: "
                            "%(default)s)")
    p.add_argument("--pass-threads", default="auto", metavar="N|auto",
                   help="threads per node pass in the modelled time (padata, 5.8+); auto = the log's CPUs per "
                        "node for kernels >= 5.8, else 1 (default: %(default)s)")
    p.add_argument("--machine-class", metavar="NAME",
                   help="machine class of the cost model (see `pgdefer calibrate`); default: from the preset or the "
                        "boot log's CPU line, else generic-x86_64")
    p.add_argument("--cost", action="append", metavar="KEY=VALUE",
                   help="override a cost-model parameter, e.g. --cost struct_page_bytes=80 --cost kasan=1 "
                        "(repeatable; docs/costmodel.md lists the keys)")
    p.add_argument("--no-threads", action="store_true",
                   help="run the per-node passes one after another on the host (modelled time is unaffected)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the invariant check at the end (it walks every struct page: on a huge machine "
                        "stopped early, most of the run time)")
    p.add_argument("--no-host-check", action="store_true",
                   help="do not refuse machines whose page array would not fit this host's available memory "
                        "(the arrays are mapped lazily: a run stopped early touches only what it initialises)")
    p.add_argument("--early-prefix", metavar="SIZE",
                   help="v4.2's fixed early prefix per node instead of 2 GiB, e.g. 4G (the 24 TB DragonHawk ran out "
                        "of memory with 2 GiB and booted with 4 GiB: spec M4); v4.2 only")
    p.add_argument("--memmap", choices=["auto", "dense", "compact"], default="auto",
                   help="page-array representation: dense (every struct page has its bytes: the reference), "
                        "compact (a sparsemem section whose pages are alike costs a summary: the 12 and 24 TB "
                        "presets run here; the same per-page state) or auto = dense when it fits this host's "
                        "available memory, else compact (default: %(default)s)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress indication on stderr")
    p.add_argument("--progress", action="store_true",
                   help="show progress on stderr even when it is not a terminal or with --json (pages done, "
                        "percent, time left); Ctrl-C stops a run within a second with status 130")


#: Commands that live in their own modules: each module has ``add_parser(subparsers, formatter_class)``, which
#: adds its command and sets ``func`` (see ``pgdefer.calibration``). A new command module is one line here.
COMMAND_MODULES = ["pgdefer.calibration", "pgdefer.sweep_cli", "pgdefer.lab.cli"]


def _add_boot(sub, fmt):
    from . import DEFAULT_POLICY, POLICIES

    b = sub.add_parser("boot", help="simulate a boot and print a dmesg-style report",
                       description=DESCRIPTION, epilog=BOOT_EPILOG, formatter_class=fmt)
    _add_machine_args(b)
    b.add_argument("--policy", "-p", default="auto", choices=[*POLICIES, "auto"], metavar="POLICY",
                   help=f"kernel generation to model: {', '.join(POLICIES)}, or auto = the generation of the kernel "
                        f"that the machine's boot log, preset or host ran ({DEFAULT_POLICY} when none is known) "
                        "(default: %(default)s)")
    b.add_argument("--stop-after", choices=STOP_PHASES, default="page_alloc_init_late",
                   help="stop after this phase: memblock_free_all (the Memory: line), workload (the early "
                        "allocations, window still open) or page_alloc_init_late (default: %(default)s); the "
                        "invariant check still runs at the end and walks every struct page, so a huge machine "
                        "stopped early is fast only with --no-check")
    b.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    b.add_argument("--plot", metavar="FILE.png",
                   help="also write a picture of the boot: memory map per node and timeline (.png, .svg or .pdf; "
                        "needs matplotlib: pip install 'pgdefer[plot]')")
    b.add_argument("--events", metavar="FILE.csv|FILE.parquet",
                   help="also write every event, one row each, with host time (t_ns) and modelled time "
                        "(t_model_ms, model_ms) (.parquet needs pandas and pyarrow: pip install 'pgdefer[sweep]')")
    b.set_defaults(func=cmd_boot)


def _add_compare(sub, fmt):
    from . import POLICIES

    c = sub.add_parser("compare", help="boot one machine under several policies and compare them side by side",
                       description="Boot one machine under several kernel policies with the same workload and "
                                   "print them side by side. Times are modelled unless marked host.",
                       epilog=COMPARE_EPILOG, formatter_class=fmt)
    _add_machine_args(c)
    c.add_argument("--policies", default=",".join(POLICIES), metavar="P1,P2,...",
                   help="comma-separated policies, or all (default: %(default)s)")
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.set_defaults(func=cmd_compare)


def _add_topology(sub, fmt):
    t = sub.add_parser("topology", help="list, show and import machine topologies",
                       description="Machine topologies: presets, topology files, boot logs, this host.",
                       epilog=TOPOLOGY_EPILOG, formatter_class=fmt)
    tsub = t.add_subparsers(dest="topology_command", metavar="SUBCOMMAND")
    tl = tsub.add_parser("list", help="the preset machines with size, nodes, description and source",
                         epilog="example:\n  pgdefer topology list --json", formatter_class=fmt)
    tl.add_argument("--json", action="store_true", help="print JSON")
    tl.set_defaults(func=cmd_topology_list)
    ts = tsub.add_parser("show", help="nodes, zones, reserved ranges and memmap size of a machine",
                         description="Show a machine: nodes, zones with spanned/present pages, reserved ranges, "
                                     "the memmap and the host memory needed to simulate it.",
                         epilog="examples:\n  pgdefer topology show default\n"
                                "  pgdefer topology show dmesg:boot.log --json\n"
                                "  pgdefer topology show host --toml > host.toml", formatter_class=fmt)
    ts.add_argument("spec", metavar="PRESET|FILE|dmesg:LOG|host")
    g = ts.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="print JSON")
    g.add_argument("--toml", action="store_true", help="print the topology file (TOML) instead")
    ts.add_argument("--limit", type=int, default=25, metavar="N",
                    help="show at most N memory/reserved ranges in the text (default: %(default)s)")
    ts.set_defaults(func=cmd_topology_show)
    ti = tsub.add_parser("import-dmesg", help="build a topology file from a boot log",
                         description="Read a boot log (dmesg) and write the machine as a topology file.",
                         epilog="examples:\n  pgdefer topology import-dmesg /var/log/dmesg -o machine.toml\n"
                                "  dmesg | tee boot.log; pgdefer topology import-dmesg boot.log -o m.json",
                         formatter_class=fmt)
    ti.add_argument("log", metavar="LOG", help="the boot log")
    ti.add_argument("-o", "--output", metavar="FILE",
                    help="the .toml or .json file to write (default: print TOML on stdout)")
    ti.set_defaults(func=cmd_topology_import)
    t.set_defaults(func=None, _help=t)


def build_parser() -> argparse.ArgumentParser:
    """The ``pgdefer`` parser: the built-in commands, then those of :data:`COMMAND_MODULES`."""
    import importlib

    try:
        from importlib.metadata import version

        ver = version("pgdefer")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        ver = "unknown"
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog="pgdefer", description=DESCRIPTION, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"pgdefer {ver}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_boot, _add_compare, _add_topology):
        add(sub, fmt)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub, fmt)
    names = [n if n != "topology" else "topology (list | show | import-dmesg)" for n in sub.choices]
    p.epilog = f"commands: {', '.join(names)}; `pgdefer COMMAND --help` for each"
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        (getattr(args, "_help", None) or parser).print_help()
        return 2
    try:
        return func(args)
    except BrokenPipeError:  # pragma: no cover - `pgdefer ... | head`
        sys.stderr.close()
        return 0
    except (PgdeferError, OSError, ValueError, MemoryError, ImportError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"pgdefer: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pgdefer: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a bug, not a user error: still one line, never a traceback
        if os.environ.get("PGDEFER_DEBUG"):
            raise
        msg = " ".join(str(e).split())[:300] or "no message"
        print(f"pgdefer: internal error: {type(e).__name__}: {msg} (a bug in pgdefer; PGDEFER_DEBUG=1 shows "
              "the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())

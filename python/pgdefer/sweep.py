"""Sweeps: many boots (topologies x policies x pass threads x geometries x workloads x machine classes) as one
pandas table.

``pgdefer.sweep(...)`` (this module is callable) and ``pgdefer sweep`` build the cells of a grid (or take an
explicit list, or add hypothesis-generated topologies), boot one machine per cell through the same path as
``pgdefer boot`` (:func:`pgdefer.cli.run_machine`, figures from :func:`pgdefer.report.compare_row`) and return
one row per cell (:data:`COLUMNS` says what each column means and which kind of time it is).

Engines: a ``dask.distributed`` cluster (by default a LocalCluster of worker processes sized to this host's
cores and memory; ``scheduler=ADDRESS`` or ``client=`` for an existing cluster), or, with ``scheduler="local"``
or without Dask, the cells one after another in this process. A cell that fails (bad topology, no memory, a
worker that died) becomes a row with its ``error``; a cell whose page array needs more host memory than any
worker has is refused with both figures before it starts.

The machine class axis selects the cost model's class (:mod:`pgdefer.costmodel`) for the modelled times only;
``auto`` is the class ``pgdefer boot`` chooses (from the preset or the boot log, else generic).

Needs the ``sweep`` extra: ``pip install 'pgdefer[sweep]'`` (pandas, pyarrow, dask[distributed], tqdm,
hypothesis). See docs/sweep.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import socket
import sys
import threading
import time
import types
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union

from ._core import DEFAULT_POLICY
from .errors import PgdeferError

#: One axis of a sweep: a list of values or one comma-separated string ("v4.2,v4.17").
Axis = Union[str, Sequence[str]]

__all__ = ["sweep", "Cell", "grid", "generated_topologies", "run_cell", "read", "write", "sweep_figure",
           "COLUMNS", "HOST_COLUMNS", "SweepError"]


class SweepError(PgdeferError, ValueError):
    """A sweep that cannot start: a malformed axis value, an unknown output format, a missing extra."""


# --------------------------------------------------------------------------------------------------
# the columns (one owner: docs/sweep.md, the file metadata and the plots' axis labels read this table)
# --------------------------------------------------------------------------------------------------

#: name -> (pandas dtype, kind of time or None, meaning). "host" time is what this host spent;
#: "modelled" time is the cost model's figure for the target machine (pgdefer.costmodel).
COLUMNS = {
    "key": ("string", None, ("stable cell key: topology|policy|pass_threads|geometry|workload|machine_class "
                             "(--resume matches it)")),
    "topology": ("string", None, ("the topology as given: preset name, .toml/.json file, dmesg:LOG, host, or "
                                  "gen:HASH (a generated topology, HASH of its memory map)")),
    "policy": ("string", None, "the policy asked for (a kernel generation, or auto)"),
    "policy_used": ("string", None, "the policy the cell ran (auto resolved from the log, preset or host)"),
    "pass_threads": ("string", None, "threads per node pass asked for (an integer, or auto)"),
    "pass_threads_used": ("Int64", None, "threads per node pass in the modelled time"),
    "geometry": ("string", None, "geometry override PAGE/SECTION/PAGEBLOCK_ORDER/MAX_ORDER, empty = the topology's"),
    "workload": ("string", None, ("early allocations: default, none or fill:P (P% of each node's present pages, "
                                  "order 0)")),
    "machine_class": ("string", None, "the cost model's machine class asked for, or auto"),
    "machine_class_used": ("string", None, ("the machine class of the modelled times (auto: from the preset or the "
                                            "boot log, else generic)")),
    "topology_name": ("string", None, "the topology's name, if it has one"),
    "nodes": ("Int64", None, "nodes with memory"),
    "memory_bytes": ("Int64", None, "bytes of memblock.memory"),
    "present_pages": ("Int64", None, "present pages"),
    "memmap_pages": ("Int64", None, "struct pages (every pfn of each present section)"),
    "host_bytes_needed": ("Int64", None, ("host memory of the cell's page array (memmap pages x the core's "
                                          "BYTES_PER_PAGE)")),
    "early_pages": ("Int64", None, "pages initialised before memblock_free_all (memmap_init's early prefix)"),
    "early_modelled_ms": ("float64", "modelled", "early memmap init on the boot CPU"),
    "mem_available_kib": ("Int64", None, "Memory: line at mem_init, available (K)"),
    "mem_total_kib": ("Int64", None, "Memory: line at mem_init, total (K)"),
    "mem_reserved_kib": ("Int64", None, "Memory: line at mem_init, reserved (K)"),
    "deferred_at_mem_init_pages": ("Int64", None, "pages still uninitialised at mem_init"),
    "grows": ("Int64", None, "deferred_grow_zone calls"),
    "grows_successful": ("Int64", None, "deferred_grow_zone calls that returned true"),
    "grown_pages": ("Int64", None, "pages initialised by deferred_grow_zone"),
    "grow_modelled_ms": ("float64", "modelled", "all grows together"),
    "pass_pages": ("Int64", None, "pages initialised by the per-node deferred_init_memmap passes"),
    "pass_pages_by_node": ("string", None, "JSON {node: pages of its pass}"),
    "pass_modelled_ms_by_node": ("string", "modelled", "JSON {node: ms of its pass}"),
    "pass_host_ms_by_node": ("string", "host", "JSON {node: ms its pass took on the host}"),
    "slowest_pass_modelled_ms": ("float64", "modelled", "the slowest node's pass"),
    "slowest_pass_host_ms": ("float64", "host", "the slowest node's pass on the host"),
    "all_initialised_modelled_ms": ("float64", "modelled", "early init + memblock_free_all + grows + the slowest pass"),
    "allocations": ("Int64", None, "successful alloc_pages calls"),
    "alloc_failures": ("Int64", None, "alloc_pages calls that failed (OutOfMemory)"),
    "violations": ("Int64", None, "invariant violations the model recorded while running"),
    "check_problems": ("Int64", None, "problems check() found at the end (spec section 7)"),
    "problems": ("string", None, "the first violations / check problems, '; '-separated"),
    "key_on_at_end": ("boolean", None, "static key deferred_pages still on at the end"),
    "phase": ("string", None, "the machine's phase at the end"),
    "ok": ("boolean", None, "the cell ran to the end (no error)"),
    "error_type": ("string", None, "the exception's type for a failed cell"),
    "error": ("string", None, "what went wrong, for a failed or refused cell"),
    "host_s": ("float64", "host", "seconds the cell took on its worker (build, boot, workload, passes, check)"),
    "peak_rss_bytes": ("Int64", None, "peak resident memory of the worker process while the cell ran"),
    "worker": ("string", None, "host:pid of the process that ran the cell"),
    "started_at": ("string", "host", "UTC time the cell started (ISO 8601)"),
    "sweep_run": ("string", None, "id of the sweep call that ran the cell (resumed rows keep theirs)"),
}

#: Columns that depend on the host or the run, not on the cell: leave them out to compare two engines.
HOST_COLUMNS = ("pass_host_ms_by_node", "slowest_pass_host_ms", "host_s", "peak_rss_bytes", "worker",
                "started_at", "sweep_run")

_WORKLOADS = ("default", "none", "fill:P")


# --------------------------------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """One boot of a sweep. ``topology`` is a spec (preset, file, dmesg:LOG, host, gen:HASH);
    ``geometry`` an override "PAGE/SECTION/PAGEBLOCK_ORDER/MAX_ORDER" or "" for the topology's own."""

    topology: str
    policy: str = DEFAULT_POLICY
    pass_threads: str = "1"
    geometry: str = ""
    workload: str = "default"
    machine_class: str = "auto"

    @property
    def key(self) -> str:
        """The cell's identity in a sweep table ("topology|policy|threads|geometry|workload|class")."""
        return "|".join((self.topology, self.policy, self.pass_threads, self.geometry or "-", self.workload,
                         self.machine_class))


def _as_list(v, what):
    if v is None:
        return []
    if isinstance(v, (str, int)):
        v = [x.strip() for x in str(v).split(",")] if isinstance(v, str) else [v]
    out = []
    for x in v:
        x = "" if x is None else str(x).strip()
        if x not in out:
            out.append(x)
    if what != "geometries" and "" in out:
        raise SweepError(f"empty value in {what}")
    return out


def parse_geometry(spec: str):
    """"PAGE/SECTION/PAGEBLOCK_ORDER/MAX_ORDER" (e.g. 4K/128M/9/10) -> Geometry; "" -> None."""
    from .config import Geometry

    if not spec:
        return None
    parts = spec.split("/")
    if len(parts) != 4:
        raise SweepError(f"geometry {spec!r}: expected PAGE/SECTION/PAGEBLOCK_ORDER/MAX_ORDER, e.g. 4K/128M/9/10")
    try:
        pbo, mo = int(parts[2]), int(parts[3])
    except ValueError:
        raise SweepError(f"geometry {spec!r}: pageblock_order and max_order must be integers") from None
    return Geometry(page_size=parts[0], section_size=parts[1], pageblock_order=pbo, max_order=mo)


def _check_axes(policies, threads, geometries, workloads, classes=("auto",)):
    from . import _core
    from .costmodel import machine_class_names

    for p in policies:
        if p != "auto" and p not in _core.POLICIES:
            raise SweepError(f"unknown policy {p!r} (choose from {', '.join(_core.POLICIES)}, auto)")
    for t in threads:
        if t != "auto" and not (t.isdigit() and int(t) >= 1):
            raise SweepError(f"pass threads must be positive integers or auto, got {t!r}")
    for g in geometries:
        parse_geometry(g)
    for w in workloads:
        _fill_percent(w)
    names = machine_class_names()
    for c in classes:
        if c != "auto" and c not in names:
            raise SweepError(f"unknown machine class {c!r} (choose from {', '.join(names)}, auto)")


def _fill_percent(w):
    if w in ("default", "none"):
        return None
    if w.startswith("fill:"):
        try:
            p = float(w[5:])
        except ValueError:
            p = -1
        if 0 < p <= 100:
            return p
    raise SweepError(f"unknown workload {w!r} (choose from {', '.join(_WORKLOADS)})")


def grid(topologies=("default",), policies=(DEFAULT_POLICY,), pass_threads=("1",), geometries=("",),
         workloads=("default",), machine_classes=("auto",)) -> list:
    """The cells of the product of the axes, topology-major (values may be lists or comma-separated strings)."""
    axes = [_as_list(topologies, "topologies"), _as_list(policies, "policies"), _as_list(pass_threads, "pass threads"),
            _as_list(geometries, "geometries") or [""], _as_list(workloads, "workloads"),
            _as_list(machine_classes, "machine classes")]
    _check_axes(*axes[1:])
    return [Cell(*c) for c in itertools.product(*axes)]


def _topology_hash(topo) -> str:
    d = topo.to_dict()
    d.pop("name", None)
    d.pop("notes", None)
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def generated_topologies(n: int, seed: int = 0, max_nodes: int = 3, max_sections: int = 24) -> list:
    """``n`` distinct small topologies drawn by :func:`pgdefer.testing.topologies` (tiny geometries, 1-3 nodes,
    holes, reserved ranges of every shape), the same for the same ``seed``: {"gen:HASH": Topology}."""
    try:
        from hypothesis import HealthCheck, Phase, Verbosity, given, settings
        from hypothesis import seed as hseed
    except ImportError:
        raise SweepError("generated topologies need hypothesis: pip install 'pgdefer[sweep]'") from None
    from .testing import topologies

    if n < 0:
        raise SweepError(f"the number of generated topologies must be >= 0, got {n}")
    out = {}

    class _Enough(Exception):
        pass

    # hypothesis draws (deterministically for a seed); the first n distinct maps are kept, then _Enough ends
    # the run early (generate phase only: nothing to shrink or replay)
    @hseed(seed)
    @settings(max_examples=max(1, 4 * n), database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False, verbosity=Verbosity.quiet)
    @given(topologies(max_nodes=max_nodes, max_sections=max_sections))
    def _collect(topo):
        out.setdefault(f"gen:{_topology_hash(topo)}", topo)
        if len(out) >= n:
            raise _Enough

    if n:
        with contextlib.suppress(_Enough):
            _collect()
    if len(out) < n:
        raise SweepError(f"could only generate {len(out)} distinct topologies of the {n} asked for")
    return out


# --------------------------------------------------------------------------------------------------
# running one cell (on a worker)
# --------------------------------------------------------------------------------------------------

class _PeakRSS:
    """Peak resident memory of this process while a cell runs: exact when the cell sets a new high-water mark
    (ru_maxrss), else the highest RSS sampled every 2 ms from /proc/self/statm."""

    def __init__(self):
        import resource

        self._resource = resource
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._statm = Path("/proc/self/statm")
        self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = None

    def _maxrss(self):
        r = self._resource.getrusage(self._resource.RUSAGE_SELF).ru_maxrss
        return r if sys.platform == "darwin" else r * 1024

    def _rss(self):
        try:
            return int(self._statm.read_text().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return 0

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self._before = self._maxrss()
        if self._statm.exists():
            self._thread = threading.Thread(target=self._sample, name="pgdefer-rss", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        after = self._maxrss()
        self.peak = max(self.peak, self._rss(), after if after > self._before else 0)
        return False


def _workload(spec, topo):
    """The early allocations of a workload spec, as pgdefer.workload Bursts (None for "default": run_machine's)."""
    from .workload import Burst

    if spec == "default":
        return "default"
    if spec == "none":
        return "none"
    pct = _fill_percent(spec)
    return [Burst(f"fill {pct:g}% node {nid}", int(sum(e - s for s, e, _ in topo.memory_pfn_ranges(nid)) * pct / 100),
                  0, nid) for nid in topo.nodes]


def _error_fields(e) -> dict:
    msg = " ".join(str(e).split()) or type(e).__name__
    return {"ok": False, "error_type": type(e).__name__, "error": msg}


def _flat_row(m, results, problems, threads, cost) -> dict:
    from .report import compare_row

    r = compare_row(m, cost, workload_results=results, problems=problems, pass_threads=threads)
    mi = r["mem_init"] or {}
    passes = {str(n): p for n, p in sorted(r["passes"].items()) if p["pages"] is not None}
    host = [p["host_ms"] for p in passes.values()]
    probs = list(r["violations"]) + list(r["check"] or [])
    return {
        "early_pages": r["early_pages"], "early_modelled_ms": r["early_modelled_ms"],
        "mem_available_kib": mi.get("available_kib"), "mem_total_kib": mi.get("total_kib"),
        "mem_reserved_kib": mi.get("reserved_kib"), "deferred_at_mem_init_pages": r["deferred_at_mem_init_pages"],
        "grows": r["grows"], "grows_successful": r["grows_successful"], "grown_pages": r["grown_pages"],
        "grow_modelled_ms": r["grow_modelled_ms"], "pass_pages": r["pass_pages"],
        "pass_pages_by_node": json.dumps({n: p["pages"] for n, p in passes.items()}),
        "pass_modelled_ms_by_node": json.dumps({n: p["modelled_ms"] for n, p in passes.items()}),
        "pass_host_ms_by_node": json.dumps({n: p["host_ms"] for n, p in passes.items()}),
        "slowest_pass_modelled_ms": r["slowest_pass_modelled_ms"],
        "slowest_pass_host_ms": max(host) if host else None,
        "all_initialised_modelled_ms": r["all_initialised_modelled_ms"],
        "allocations": r["allocations"], "alloc_failures": r["alloc_failures"],
        "violations": len(r["violations"]), "check_problems": len(r["check"] or []),
        "problems": "; ".join(probs[:5]) or None,
        "key_on_at_end": r["key_on_at_end"], "phase": r["phase"],
    }


def run_cell(task: dict) -> dict:
    """Boot one cell's machine and return its row (a dict). Runs on a worker; never raises for a cell that
    fails, the row carries the error. ``task``: the cell's fields, ``topology_dict`` (Topology.to_dict),
    ``policy_used``, ``pass_threads_used``, ``machine_class_used``, ``check``, ``sweep_run``."""
    from .cli import run_machine
    from .costmodel import cost_model
    from .topology import Topology

    row = {k: task.get(k) for k in ("key", "topology", "policy", "pass_threads", "geometry", "workload",
                                    "machine_class", "policy_used", "pass_threads_used", "machine_class_used",
                                    "sweep_run")}
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    row["started_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    t0 = time.perf_counter()
    m = None
    with _PeakRSS() as rss:
        try:
            topo = Topology.from_dict(task["topology_dict"])
            m, results, problems = run_machine(topo, task["policy_used"], _workload(task["workload"], topo),
                                               threads=True, check=task.get("check", True))
            cost = cost_model(task["machine_class_used"])
            row.update(_flat_row(m, results, problems, task["pass_threads_used"], cost))
            row["ok"] = True
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - a failing cell is a row (PanicException is a BaseException)
            row.update(_error_fields(e))
        finally:
            del m
    row["host_s"] = time.perf_counter() - t0
    row["peak_rss_bytes"] = rss.peak
    return row


# --------------------------------------------------------------------------------------------------
# planning on the client: load topologies, resolve auto, refuse what does not fit
# --------------------------------------------------------------------------------------------------

def _load(spec, objects, cache):
    if spec in objects:
        return objects[spec]
    if spec not in cache:
        from .cli import load_topology

        try:
            cache[spec] = load_topology(spec)
        except (PgdeferError, OSError, ValueError, ImportError) as e:
            cache[spec] = e
    return cache[spec]


def _plan(cell, objects, cache, sweep_run, check):
    """(task, None) for a cell to run, or (None, error row) for one that cannot start."""
    from .cli import preset_names, resolve_pass_threads, resolve_policy
    from .costmodel import class_for
    from .topology import Topology

    base = asdict(cell) | {"key": cell.key, "sweep_run": sweep_run}
    try:
        topo = _load(cell.topology, objects, cache)
        if isinstance(topo, Exception):
            raise topo
        g = parse_geometry(cell.geometry)
        if g is not None:
            topo = Topology(memory=[(r.start, r.end, r.node) for r in topo.memory],
                            reserved=[(r.start, r.end) for r in topo.reserved], zone_limits=topo.zone_limits,
                            geometry=g, name=topo.name, kernel=topo.kernel)
            topo.memmap_pages  # noqa: B018 - validates the map against the new sections
        preset = cell.topology if cell.topology in preset_names() else None
        policy, _ = resolve_policy(cell.policy, topo, preset)
        threads, _ = resolve_pass_threads(cell.pass_threads, topo, policy)
        mclass = class_for(topo, preset)[0] if cell.machine_class == "auto" else cell.machine_class
    except (PgdeferError, OSError, ValueError, ImportError) as e:
        return None, base | _error_fields(e)
    return base | {"policy_used": policy, "pass_threads_used": threads, "machine_class_used": mclass,
                   "topology_dict": topo.to_dict(),
                   "check": check, "_topo": topo}, None


def _refuse(task, limit, where):
    from . import _core
    from .config import format_size

    topo = task.pop("_topo")
    need = topo.memmap_pages * _core.BYTES_PER_PAGE
    info = {"topology_name": topo.name, "nodes": len(topo.nodes), "memory_bytes": topo.memory_bytes,
            "present_pages": topo.present_pages, "memmap_pages": topo.memmap_pages, "host_bytes_needed": need}
    task.update(info)
    if limit is not None and need > limit:
        from .errors import HostMemoryError

        e = HostMemoryError(f"refused: the page array needs {format_size(need)} of host memory "
                            f"({topo.memmap_pages:,} struct pages x {_core.BYTES_PER_PAGE} B) but {where} has "
                            f"{format_size(limit)}")
        return {k: task.get(k) for k in COLUMNS if k in task} | _error_fields(e)
    return None


# --------------------------------------------------------------------------------------------------
# engines
# --------------------------------------------------------------------------------------------------

def _have_dask():
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _host_memory():
    from .presets import host_available_bytes

    return host_available_bytes()


class _Local:
    """The cells one after another in this process."""

    name = "local"

    def limits(self):
        have = _host_memory()
        return have, "this host (MemAvailable)"

    def run(self, tasks, done):
        for t in tasks:
            done(t, run_cell(t))

    def close(self):
        pass


class _Dask:
    """A dask.distributed client: ours (LocalCluster or an address) or the caller's."""

    def __init__(self, client=None, scheduler=None, workers=None):
        import distributed

        self._own = []
        if client is None:
            if scheduler is None:
                import logging

                n = workers or _cpu_count()
                cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, silence_logs=logging.ERROR)
                self._own.append(cluster)
                client = distributed.Client(cluster)
                self.name = f"LocalCluster ({n} worker processes)"
            else:
                import dask

                try:  # how long to try: dask's distributed.comm.timeouts.connect (30 s unless configured)
                    client = distributed.Client(scheduler, timeout=dask.config.get("distributed.comm.timeouts.connect"))
                except (OSError, TimeoutError) as e:
                    raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
                self.name = f"Dask scheduler {scheduler}"
            self._own.insert(0, client)
            try:
                client.wait_for_workers(1, timeout=60)
            except (TimeoutError, OSError):
                self.close()
                raise SweepError(f"no Dask worker joined the scheduler at {scheduler or 'the local cluster'} "
                                 "within 60 s (start some: dask worker ADDRESS)") from None
        else:
            self.name = f"Dask client {client.scheduler.address}"
        self.client = client
        self._workers = {a: w.get("memory_limit") or None
                         for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}

    def limits(self):
        known = [v for v in self._workers.values() if v]
        if not known or len(known) < len(self._workers):
            return None, "the workers"
        return max(known), "the largest Dask worker (memory_limit)"

    def _fits(self, task):
        need = task["host_bytes_needed"]
        fit = [a for a, lim in self._workers.items() if lim is None or lim >= need]
        return None if len(fit) == len(self._workers) else fit

    def run(self, tasks, done):
        import distributed

        futures = {}
        for t in tasks:
            fut = self.client.submit(run_cell, t, key=f"pgdefer-cell-{t['sweep_run']}-{len(futures)}", pure=False,
                                     workers=self._fits(t), allow_other_workers=False)
            futures[fut] = t
        for fut in distributed.as_completed(futures):
            t = futures[fut]
            try:
                row = fut.result()
            except Exception as e:  # noqa: BLE001 - a worker that died (KilledWorker) or could not run the task
                row = {k: t.get(k) for k in COLUMNS if k in t} | _error_fields(e)
            done(t, row)
            fut.release()

    def close(self):
        for x in self._own:
            with contextlib.suppress(Exception):  # best effort at teardown
                x.close()
        self._own = []


def _cpu_count():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------------

META_KEY = "pgdefer.sweep"


def _pandas():
    try:
        import pandas
    except ImportError:
        raise SweepError("sweeps need pandas: pip install 'pgdefer[sweep]'") from None
    return pandas


def _frame(rows):
    pd = _pandas()
    df = pd.DataFrame([{k: r.get(k) for k in COLUMNS} for r in rows], columns=list(COLUMNS))
    return df.astype({k: v[0] for k, v in COLUMNS.items()})


def _format(path):
    s = str(path).lower()
    if s.endswith(".parquet"):
        return "parquet"
    if s.endswith(".csv"):
        return "csv"
    raise SweepError(f"{path}: the output file name must end in .parquet or .csv")


def _meta_path(path):
    return Path(str(path) + ".meta.json")


def write(df, path, meta: dict) -> None:
    """Write the table to .parquet (``meta`` as JSON under key-value metadata ``pgdefer.sweep``) or .csv
    (``meta`` in the sidecar ``FILE.csv.meta.json``); atomically (a temporary file renamed)."""
    path = Path(path)
    fmt = _format(path)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise SweepError("parquet output needs pyarrow: pip install 'pgdefer[sweep]'") from None
        table = pa.Table.from_pandas(df, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               META_KEY.encode(): json.dumps(meta).encode()})
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    else:
        df.to_csv(tmp, index=False)
        mtmp = _meta_path(tmp)
        mtmp.write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, path)
        os.replace(mtmp, _meta_path(path))


def read(path):
    """A sweep file (.parquet or .csv) as a DataFrame; its metadata in ``df.attrs["pgdefer.sweep"]``."""
    pd = _pandas()
    path = Path(path)
    fmt = _format(path)
    if not path.is_file():
        raise SweepError(f"{path}: no such sweep file")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(META_KEY.encode())
        df = table.to_pandas()
        meta = json.loads(raw) if raw else {}
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        for k, (dtype, _, _) in COLUMNS.items():
            if dtype == "boolean" and k in df.columns:
                df[k] = df[k].map({"True": True, "False": False})
        if "geometry" in df.columns:  # "" (the topology's own geometry) reads back as missing
            df["geometry"] = df["geometry"].fillna("")
        mp = _meta_path(path)
        meta = json.loads(mp.read_text()) if mp.is_file() else {}
    if "key" not in df.columns:
        raise SweepError(f"{path}: not a pgdefer sweep file (no key column)")
    df = df.reindex(columns=list(COLUMNS)).astype({k: v[0] for k, v in COLUMNS.items()})
    df.attrs[META_KEY] = meta
    return df


def _version():
    try:
        from importlib.metadata import version

        return version("pgdefer")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


# --------------------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------------------

def _progress(total, enabled):
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # disable=None: only on a terminal
    return tqdm(total=total, unit="cell", desc="sweep", file=sys.stderr, dynamic_ncols=True,
                disable=None if enabled else True)


def _topology_objects(topologies, generate, seed):
    """(topology specs with Topology objects replaced by gen:HASH labels, {label: Topology})."""
    objects = {}
    if topologies is not None and not isinstance(topologies, (str, bytes)):
        from .topology import Topology

        plain = []
        for t in topologies:
            if isinstance(t, Topology):
                objects[f"gen:{_topology_hash(t)}"] = t
                t = f"gen:{_topology_hash(t)}"
            plain.append(t)
        topologies = plain
    if generate:
        objects.update(generated_topologies(int(generate), seed))
    return topologies, objects


def _cell_list(topologies, objects, cells, axes):
    """(the cells in order, without duplicates; the topology axis when it is a grid)."""
    topo_specs = []
    if cells is not None:
        cell_list = [c if isinstance(c, Cell) else Cell(**{k: "" if v is None else str(v) for k, v in dict(c).items()})
                     for c in cells]
        for c in cell_list:
            _check_axes([c.policy], [c.pass_threads], [c.geometry], [c.workload], [c.machine_class])
        if objects:
            cell_list += grid(list(objects), *axes)
    else:
        if topologies is None and not objects:
            topologies = ["default"]
        topo_specs = _as_list(topologies, "topologies") + [k for k in objects if k not in (topologies or [])]
        if not topo_specs:
            raise SweepError("no topology to sweep over")
        cell_list = grid(topo_specs, *axes)
    seen = set()
    return [c for c in cell_list if not (c.key in seen or seen.add(c.key))], topo_specs


def _previous(out, resume, retry_failed):
    """The rows already in ``out`` that --resume keeps (None without --resume or without the file)."""
    if out is None:
        return None
    _format(out)
    if not (resume and Path(out).is_file()):
        return None
    old = read(out)
    return old[old["ok"].fillna(False).astype(bool)] if retry_failed else old


def _engine(client, scheduler, workers):
    if client is not None:
        return _Dask(client=client)
    if scheduler == "local" or (scheduler is None and not _have_dask()):
        return _Local()
    if not _have_dask():
        raise SweepError("--scheduler needs dask.distributed: pip install 'pgdefer[sweep]'")
    return _Dask(scheduler=scheduler, workers=workers)


class _Run:
    """The rows of one sweep call as they arrive: progress, checkpoints of ``out``, the table."""

    def __init__(self, cell_list, old, meta, out, progress, checkpoint_s, todo):
        self.order = {c.key: i for i, c in enumerate(cell_list)}
        self.old, self.meta, self.out, self.checkpoint_s = old, meta, out, checkpoint_s
        self.rows = {}
        self.failures = 0
        self.last_write = time.monotonic()
        self.bar = _progress(todo, progress)

    def table(self):
        pd = _pandas()
        new = _frame([self.rows[k] for k in sorted(self.rows, key=self.order.get)])
        old = self.old
        df = new if old is None or old.empty else pd.concat([old[~old["key"].isin(self.rows)], new],
                                                           ignore_index=True)
        pos = df["key"].map(self.order).fillna(len(self.order)).astype(int)
        df = df.iloc[pos.argsort(kind="stable")].reset_index(drop=True)
        df.attrs[META_KEY] = self.meta | {"executed": len(self.rows), "cells": len(self.order)}
        return df

    def save(self):
        df = self.table()
        write(df, self.out, df.attrs[META_KEY])
        self.last_write = time.monotonic()

    def done(self, task, row):
        if task is not None:  # figures of the topology the client already knows
            for k in ("topology_name", "nodes", "memory_bytes", "present_pages", "memmap_pages",
                      "host_bytes_needed"):
                row.setdefault(k, task.get(k))
        self.rows[row["key"]] = row
        self.failures += not row.get("ok")
        if self.bar is not None:
            self.bar.set_postfix(failed=self.failures, refresh=False)
            self.bar.update(1)
        if self.out is not None and time.monotonic() - self.last_write > self.checkpoint_s:
            self.save()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        if self.out is not None and (self.rows or self.old is None):
            self.save()


def sweep(topologies: Any = None, policies: Axis = (DEFAULT_POLICY,), pass_threads: Axis = ("1",),
          geometries: Axis = ("",), workloads: Axis = ("default",), machine_classes: Axis = ("auto",), *,
          cells: Any = None, generate: int = 0,
          seed: int = 0, client: Any = None, scheduler: str | None = None, workers: int | None = None,
          out: str | os.PathLike[str] | None = None, resume: bool = False, retry_failed: bool = False,
          check: bool = True, progress: bool = True, checkpoint_s: float = 30.0) -> Any:
    """Run a sweep and return its table (a pandas DataFrame, one row per cell, columns :data:`COLUMNS`).

    The cells are the product of the axes (lists or comma-separated strings; topologies default to the
    ``default`` preset unless ``generate`` or ``cells`` is given) unless ``cells`` (Cell objects or dicts with
    Cell's fields) is given; ``generate=N`` adds N hypothesis-generated topologies (``seed``) to the
    topology axis. ``topologies`` may also hold :class:`~pgdefer.Topology` objects (keyed gen:HASH).
    Engines: ``client`` (a dask.distributed Client), ``scheduler`` (an address, or "local" for this process
    without Dask), else a LocalCluster of ``workers`` processes (default: the host's cores) when Dask is
    installed, this process otherwise. ``out`` (.parquet or .csv) is written every ``checkpoint_s`` seconds
    and at the end; ``resume`` skips the cells already in ``out`` (``retry_failed``: except those with an
    error). ``df.attrs["pgdefer.sweep"]`` holds the sweep's parameters and pgdefer's version, as the file does.
    """
    _pandas()
    axes = (policies, pass_threads, geometries, workloads, machine_classes)
    topologies, objects = _topology_objects(topologies, generate, seed)
    cell_list, topo_specs = _cell_list(topologies, objects, cells, axes)
    sweep_run = uuid.uuid4().hex[:12]
    names = ("policies", "pass threads", "geometries", "workloads", "machine classes")
    params = {"topologies": topo_specs or None,
              **{n.replace(" ", "_"): _as_list(v, n) for n, v in zip(names, axes)},
              "cells": [asdict(c) for c in cell_list] if cells is not None else None,
              "generate": int(generate or 0), "seed": seed, "check": bool(check)}
    meta = {"pgdefer_version": _version(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sweep_run": sweep_run, "parameters": params,
            "columns": {k: {"dtype": v[0], "time": v[1], "meaning": v[2]} for k, v in COLUMNS.items()}}
    old = _previous(out, resume, retry_failed)
    if old is not None:
        meta["resumed_from"] = old.attrs.get(META_KEY, {}).get("sweep_run")
    done_keys = set(old["key"]) if old is not None else set()
    todo = [c for c in cell_list if c.key not in done_keys]

    run = _Run(cell_list, old, meta, out, progress, checkpoint_s, len(todo))
    engine = None
    try:
        cache = {}
        planned = [_plan(c, objects, cache, sweep_run, check) for c in todo]
        limit, where = None, ""
        if any(task is not None for task, _ in planned):
            engine = _engine(client, scheduler, workers)
            meta["engine"] = engine.name
            limit, where = engine.limits()
        tasks = []
        for task, err in planned:
            refused = err if err is not None else _refuse(task, limit, where)
            if refused is not None:
                run.done(None, refused)
            else:
                tasks.append(task)
        if tasks:
            engine.run(tasks, run.done)
    finally:
        if engine is not None:
            engine.close()
        run.close()
    return run.table()


# --------------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------------

def _label(col):
    spec = COLUMNS.get(col)
    if spec is None:
        return col
    return f"{col} ({spec[1]} time)" if spec[1] else col


def save_sweep_figure(df, path, x="memory_bytes", y="mem_available_kib", hue="policy", dpi=110):
    """Write :func:`sweep_figure` to ``path`` (PNG, SVG or PDF by suffix) with :func:`pgdefer.plot.save_figure`."""
    from .plot import save_figure

    return save_figure(sweep_figure(df, x=x, y=y, hue=hue), path, dpi)


def sweep_figure(df, x="memory_bytes", y="mem_available_kib", hue="policy", ax=None):
    """y against x for the cells that ran, one line (numeric x) or group of bars (other x) per ``hue`` value;
    axis labels say which kind of time a time column is. Returns the matplotlib Figure."""
    from .plot import require_matplotlib

    require_matplotlib()
    import numpy as np
    from matplotlib.figure import Figure

    for c in (x, y) + ((hue,) if hue else ()):
        if c not in df.columns:
            raise SweepError(f"no column {c!r} in the sweep table (columns: {', '.join(df.columns)})")
    ran = df[df["ok"].fillna(False).astype(bool)] if "ok" in df.columns else df
    failed = len(df) - len(ran)
    if ax is None:
        fig = Figure(figsize=(7.5, 4.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    groups = list(ran.groupby(hue, sort=False, dropna=False)) if hue else [(None, ran)]
    xs = ran[x]
    numeric = _numeric(xs)
    if numeric:
        for name, g in groups:
            g = g.sort_values(x)
            ax.plot(g[x].astype(float), g[y].astype(float), marker="o", label=None if hue is None else str(name))
    else:
        cats = list(dict.fromkeys(xs.astype(str)))
        width = 0.8 / max(1, len(groups))
        for i, (name, g) in enumerate(groups):
            vals = g.groupby(g[x].astype(str))[y].mean()
            pos = np.arange(len(cats)) + i * width - 0.4 + width / 2
            ax.bar(pos, [float(vals.get(c, np.nan)) for c in cats], width,
                   label=None if hue is None else str(name))
        ax.set_xticks(np.arange(len(cats)), cats, rotation=30 if len(cats) > 4 else 0, ha="right" if len(cats) > 4
                      else "center")
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(y))
    if _numeric(ran[y]):
        ax.ticklabel_format(useOffset=False, style="plain", axis="y")
    if hue:
        ax.legend(title=hue, fontsize="small")
    ax.set_title(f"{y} vs {x}: {len(ran)} cell(s)" + (f", {failed} failed (not shown)" if failed else ""))
    ax.grid(alpha=0.3)
    return fig


def _numeric(s):
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


# ``pgdefer.sweep(...)`` calls :func:`sweep`: the module is callable, so the name means the same thing whether
# it is reached as the package attribute or imported as a module (``from pgdefer import sweep``).
class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

"""``pgdefer sweep``: the command line of :mod:`pgdefer.sweep` (registered by :func:`add_parser`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SWEEP_DESCRIPTION = """\
Boot one machine per cell of a grid (topologies x policies x pass threads x
geometries x workloads x machine classes, comma-separated lists) and collect one row of figures
per cell: early pages, the Memory: line, grows, per-node passes, allocation
failures, violations, host seconds and peak host memory. Cells run on a local
Dask cluster sized to this host (or this process with --scheduler local, or an
existing cluster with --scheduler ADDRESS). A failing cell is a row with its
error. Time columns say whether they are modelled or host time (docs/sweep.md).
"""

SWEEP_EPILOG = """\
examples:
  pgdefer sweep -t default,vm-64g -p v4.17,eager --out r.parquet
  pgdefer sweep -t vm-64g -p all --pass-threads 1,4,16 --machine-class skylake-sp,epyc-zen4 \\
      --out r.csv --plot r.png --x pass_threads_used --y slowest_pass_modelled_ms --hue machine_class_used
  pgdefer sweep --generate 500 --seed 1 -p v4.17 --workload fill:50 --out gen.parquet
  pgdefer sweep ... --out r.parquet --resume           run only the cells not yet in r.parquet
  pgdefer sweep ... --scheduler tcp://10.0.0.5:8786    on a cluster (dask scheduler / dask worker)

workloads: default (the early-boot storm of `pgdefer boot`), none, fill:P
(P% of each node's present pages, order 0). Geometry: PAGE/SECTION/
PAGEBLOCK_ORDER/MAX_ORDER, e.g. 4K/128M/9/10 (empty = the topology's own).
--out FILE.parquet keeps the sweep's parameters and pgdefer's version in the
parquet key-value metadata (key pgdefer.sweep); FILE.csv keeps them in
FILE.csv.meta.json. Needs: pip install 'pgdefer[sweep]'.
"""

SUMMARY_COLUMNS = ("topology", "policy_used", "pass_threads_used", "geometry", "workload", "machine_class_used",
                   "early_pages",
                   "mem_available_kib", "grows", "grown_pages", "slowest_pass_modelled_ms", "alloc_failures",
                   "violations", "host_s", "error")


def _joined(values):
    return ",".join(v for v in (values or []) if v is not None)


def add_parser(sub, formatter_class):
    """Register ``sweep`` on the subparsers of ``pgdefer``."""
    from ._core import DEFAULT_POLICY

    p = sub.add_parser("sweep", help="many boots (topologies x policies x threads x geometries x workloads) "
                                     "as one table, on this host or a Dask cluster",
                       description=SWEEP_DESCRIPTION, epilog=SWEEP_EPILOG, formatter_class=formatter_class)
    p.add_argument("--topology", "-t", action="append", metavar="T1,T2,...",
                   help="topologies: preset names, .toml/.json files, dmesg:LOG, host (repeatable; default: "
                        "default, or none with --generate/--cells)")
    p.add_argument("--policy", "-p", action="append", metavar="P1,P2,...",
                   help=f"policies (kernel generations), all, or auto (default: {DEFAULT_POLICY})")
    p.add_argument("--pass-threads", action="append", metavar="N1,N2,...",
                   help="threads per node pass in the modelled time, or auto (default: 1)")
    p.add_argument("--geometry", action="append", metavar="G1,G2,...",
                   help="geometry overrides PAGE/SECTION/PAGEBLOCK_ORDER/MAX_ORDER (default: the topology's)")
    p.add_argument("--workload", action="append", metavar="W1,W2,...",
                   help="early allocations: default, none, fill:P (default: default)")
    p.add_argument("--machine-class", action="append", metavar="C1,C2,...",
                   help="machine classes of the cost model (modelled times only; see `pgdefer calibrate`), or "
                        "auto = from the preset or the boot log, else generic (default: auto)")
    p.add_argument("--generate", type=int, default=0, metavar="N",
                   help="add N generated small topologies (pgdefer.testing.topologies; needs hypothesis)")
    p.add_argument("--seed", type=int, default=0, help="seed of --generate (default: %(default)s)")
    p.add_argument("--cells", metavar="FILE.json",
                   help="an explicit list of cells: a JSON list of objects with topology, policy, pass_threads, "
                        "geometry, workload, machine_class (missing fields take Cell's defaults)")
    p.add_argument("--scheduler", metavar="local|ADDRESS",
                   help="local = this process, no Dask; ADDRESS = an existing Dask scheduler, e.g. "
                        "tcp://127.0.0.1:8786 (default: a local Dask cluster when Dask is installed)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of the local Dask cluster (default: this host's cores)")
    p.add_argument("--out", "-o", metavar="FILE.parquet|FILE.csv", help="write the table (and its metadata)")
    p.add_argument("--resume", action="store_true", help="skip the cells already in --out")
    p.add_argument("--retry-failed", action="store_true", help="with --resume: run again the cells that failed")
    p.add_argument("--plot", metavar="FILE.png", help="also draw --y against --x per --hue (.png, .svg, .pdf)")
    p.add_argument("--x", default="memory_bytes", help="x column of --plot (default: %(default)s)")
    p.add_argument("--y", default="mem_available_kib", help="y column of --plot (default: %(default)s)")
    p.add_argument("--hue", default="policy", help="one line per value of this column; none for one line "
                                                   "(default: %(default)s)")
    p.add_argument("--no-check", action="store_true", help="skip the invariant check at the end of each cell")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_sweep)
    return p


def _read_cells(path):
    from .cli import CliError

    p = Path(path)
    if not p.is_file():
        raise CliError(f"--cells {path}: no such file")
    try:
        cells = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise CliError(f"--cells {path}: not JSON ({e})") from None
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise CliError(f"--cells {path}: expected a JSON list of objects")
    fields = {"topology", "policy", "pass_threads", "geometry", "workload", "machine_class"}
    for i, c in enumerate(cells):
        bad = set(c) - fields
        if bad or "topology" not in c:
            raise CliError(f"--cells {path}: cell {i} " + (f"has unknown field(s) {sorted(bad)}" if bad else
                                                          "has no topology"))
    return cells


def cmd_sweep(args) -> int:
    from . import _core
    from .cli import CliError, _check_plot_target
    from .sweep import sweep

    if args.retry_failed and not args.resume:
        raise CliError("--retry-failed needs --resume")
    if args.resume and not args.out:
        raise CliError("--resume needs --out FILE (the cells already done are read from it)")
    _check_plot_target(args.plot)
    policies = _joined(args.policy) or _core.DEFAULT_POLICY
    if policies.strip() == "all":
        policies = ",".join(_core.POLICIES)
    cells = _read_cells(args.cells) if args.cells else None
    topologies = _joined(args.topology) or None
    df = sweep(topologies, policies, _joined(args.pass_threads) or "1", _joined(args.geometry) or "",
               _joined(args.workload) or "default", _joined(args.machine_class) or "auto", cells=cells,
               generate=args.generate, seed=args.seed,
               scheduler=args.scheduler, workers=args.workers, out=args.out, resume=args.resume,
               retry_failed=args.retry_failed, check=not args.no_check, progress=not args.quiet)
    meta = df.attrs["pgdefer.sweep"]
    failed = int((~df["ok"].fillna(False).astype(bool)).sum())
    if args.plot:
        from .sweep import save_sweep_figure

        save_sweep_figure(df, args.plot, x=args.x, y=args.y, hue=None if args.hue == "none" else args.hue)
    if args.out:
        print(f"wrote {args.out}: {len(df)} row(s), {len(df) - failed} ok, {failed} failed; ran {meta['executed']} "
              f"cell(s) of {meta['cells']}" + (f" on {meta['engine']}" if meta.get("engine") else ""))
    else:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 40):
            print(df[list(SUMMARY_COLUMNS)].to_string(index=False))
        print("(a few of the columns; --out FILE.parquet or FILE.csv keeps them all, see docs/sweep.md)")
    if failed:
        print(f"pgdefer: {failed} cell(s) failed: see the error column", file=sys.stderr)
    if args.plot:
        print(f"wrote {args.plot}")
    return 0

"""The ``pgdefer`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .errors import PgdeferError

DESCRIPTION = """\
Simulate a boot with deferred struct page initialisation and on-demand growth
(Linux "mm: initialize pages on demand during boot", v4.17) on a model machine,
and print what happened: per-node early pages, each grow, per-node passes and
the Memory: line. Times in ms are modelled (spec cost model) unless marked host.
"""


class Progress:
    """Phase names on stderr, only on a terminal and only once a run has taken over a second."""

    def __init__(self, enabled):
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.shown = False

    def step(self, what):
        if self.enabled and (self.shown or time.monotonic() - self.t0 > 1.0):
            self.shown = True
            print(f"\r\x1b[K[{time.monotonic() - self.t0:6.1f}s] {what}...", end="", file=sys.stderr, flush=True)

    def done(self):
        if self.shown:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)


def load_topology(spec: str):
    """PRESET name, a .toml/.json FILE, dmesg:LOG or host."""
    from pathlib import Path

    from .topology import Topology

    if spec == "host":
        return Topology.from_host()
    if spec.startswith("dmesg:"):
        return Topology.from_dmesg(spec[len("dmesg:"):])
    if spec.endswith((".toml", ".json")) or Path(spec).exists():
        return Topology.from_file(spec)
    from . import presets

    return presets.get(spec)


def cmd_boot(args) -> int:
    from .machine import Machine
    from .report import dmesg_report, summary
    from .workload import default_workload, replay

    progress = Progress(not args.json)
    progress.step("loading topology")
    topo = load_topology(args.topology)
    policy = args.policy
    if policy == "auto":
        from .dmesg import kernel_policy

        version = getattr(getattr(topo, "source", None), "kernel_version", None)
        policy = kernel_policy(version) if version else "v4.17"
    if args.check_host:
        from .presets import check_fits_host

        check_fits_host(topo)
    progress.step("building the memmap")
    m = Machine(topo, policy=policy)
    progress.step("boot: early init and memblock_free_all")
    m.boot()
    results = None
    if args.workload == "default":
        progress.step("early allocations")
        results = replay(m, default_workload(m.nodes))
    progress.step("page_alloc_init_late")
    m.page_alloc_init_late(threads=not args.no_threads)
    progress.step("checking invariants")
    problems = [] if args.no_check else m._core.check()
    progress.done()
    if args.json:
        out = summary(m)
        out["workload"] = {k: {"ok": a, "failed": f} for k, (a, f) in (results or {}).items()}
        out["check"] = problems
        print(json.dumps(out, indent=2, default=str))
    else:
        print(dmesg_report(m, workload_results=results))
        if not args.no_check:
            print("  check(): " + ("all invariants hold" if not problems else
                                   f"{len(problems)} violation(s): " + "; ".join(problems[:5])))
    if args.plot:
        from .plot import save_boot_figure

        save_boot_figure(m, args.plot)
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    from . import POLICIES

    p = argparse.ArgumentParser(prog="pgdefer", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("boot", help="simulate a boot and print a dmesg-style report",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--topology", "-t", default="default", metavar="PRESET|FILE|dmesg:LOG|host",
                   help="machine to boot: a preset name (see `pgdefer topology list`), a .toml/.json "
                        "topology file, dmesg:PATH of a boot log, or host (default: %(default)s)")
    b.add_argument("--policy", "-p", default="v4.17", choices=[*POLICIES, "auto"],
                   help="kernel generation to model; auto = from the boot log's kernel version "
                        "(default: %(default)s)")
    b.add_argument("--workload", choices=["default", "none"], default="default",
                   help="early allocations between memblock_free_all and page_alloc_init_late "
                        "(default: %(default)s)")
    b.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    b.add_argument("--no-threads", action="store_true", help="run the per-node passes one after another")
    b.add_argument("--no-check", action="store_true", help="skip the invariant check at the end")
    b.add_argument("--check-host", action="store_true",
                   help="refuse machines whose page array would not fit this host's free memory")
    b.add_argument("--plot", metavar="FILE.png", help="also write a picture of the boot (needs matplotlib)")
    b.set_defaults(func=cmd_boot)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (PgdeferError, OSError, ValueError) as e:
        print(f"pgdefer: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Full boot of a large preset from Python: boot() + page_alloc_init_late() (+ check() with --check), host
seconds and peak RSS.

Each run is a fresh subprocess (so peak RSS is that run's own); the figure is the median of the runs.
The reference measured in the same run is numpy writing 3 bytes per simulated page (the flags and
node bytes a deferred pass must write at least), so the ratio stays meaningful on a noisy host.

    python benches/bench_boot.py [PRESET] [RUNS] [--policy P] [--memmap dense|compact] [--check]
    (default p3-skylake-2x384g, 3 runs, v4.17, dense; the 24 TB one: m4-16node-24t 3 --memmap compact --check)

The reference writes at most 2^28 pages' bytes and is scaled to the machine's page count, so that a 24 TB
machine does not need 19 GB for it.
"""

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
import pgdefer
from pgdefer import presets
t = presets.get(sys.argv[1])
policy, memmap, check = sys.argv[2], sys.argv[3], sys.argv[4] == "1"
t0 = time.perf_counter()
m = pgdefer.Machine(t, policy=policy, cpus=2, memmap=memmap)
t1 = time.perf_counter()
m.boot()
t2 = time.perf_counter()
m.page_alloc_init_late()
if check:
    m.check()
t3 = time.perf_counter()
pages = len(m.pages)
passes = {e["node"]: e["host_ns"] / 1e9 for e in m.events if e["kind"] == "deferred_init"}
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
del m
n = min(pages, 1 << 28)
ref = np.empty(n, dtype=np.uint8); ref2 = np.empty(n, dtype=np.uint16)
ref.fill(1); ref2.fill(1)
r0 = time.perf_counter(); ref.fill(2); ref2.fill(3); r1 = r0 + (time.perf_counter() - r0) * pages / n
print(json.dumps(dict(pages=pages, build=t1 - t0, boot=t2 - t1, late=t3 - t2, total=t3 - t0, rss=rss,
                      passes=passes, ref=r1 - r0)))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("preset", nargs="?", default="p3-skylake-2x384g")
    ap.add_argument("runs", nargs="?", type=int, default=3)
    ap.add_argument("--policy", default="v4.17")
    ap.add_argument("--memmap", choices=["dense", "compact"], default="dense")
    ap.add_argument("--check", action="store_true", help="also time check()")
    args = ap.parse_args()
    preset, runs, rows = args.preset, args.runs, []
    for i in range(runs):
        out = subprocess.run([sys.executable, "-c", CHILD, preset, args.policy, args.memmap, str(int(args.check))],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout))
        r = rows[-1]
        print(f"run {i + 1}: build {r['build']:.2f}s boot {r['boot']:.2f}s late init {r['late']:.2f}s "
              f"total {r['total']:.2f}s, peak RSS {r['rss'] / 2**30:.2f} GiB", file=sys.stderr)
    med = {k: statistics.median(r[k] for r in rows) for k in ("build", "boot", "late", "total", "rss", "ref")}
    pages = rows[0]["pages"]
    late = "page_alloc_init_late() + check()" if args.check else "page_alloc_init_late()"
    print(f"{preset}: {pages} simulated pages ({pages * 4096 / 2**30:.0f} GiB of memmap coverage), "
          f"policy {args.policy}, {args.memmap} memmap, median of {runs} runs (host time)")
    print(f"  Machine() {med['build']:.2f} s, boot() {med['boot']:.2f} s, {late} {med['late']:.2f} s,"
          f" total {med['total']:.2f} s")
    print(f"  peak RSS {med['rss'] / 2**30:.2f} GiB = {med['rss'] / pages:.1f} bytes per simulated page (budget 16)")
    print(f"  reference (numpy writes 3 bytes/page): {med['ref']:.3f} s; "
          f"total / reference = {med['total'] / med['ref']:.1f}x")


if __name__ == "__main__":
    main()

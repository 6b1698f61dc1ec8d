"""Full boot of a large preset from Python: boot() + page_alloc_init_late(), host seconds and peak RSS.

Each run is a fresh subprocess (so peak RSS is that run's own); the figure is the median of the runs.
The reference measured in the same run is numpy writing 3 bytes per simulated page (the flags and
node bytes a deferred pass must write at least), so the ratio stays meaningful on a noisy host.

    python benches/bench_boot.py [PRESET] [RUNS]      (default p3-skylake-2x384g, 3 runs)
"""

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
t0 = time.perf_counter()
m = pgdefer.Machine(t, policy="v4.17", cpus=2)
t1 = time.perf_counter()
m.boot()
t2 = time.perf_counter()
m.page_alloc_init_late()
t3 = time.perf_counter()
pages = len(m.pages)
passes = {e["node"]: e["host_ns"] / 1e9 for e in m.events if e["kind"] == "deferred_init"}
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
del m
ref = np.empty(pages, dtype=np.uint8); ref2 = np.empty(pages, dtype=np.uint16)
ref.fill(1); ref2.fill(1)
r0 = time.perf_counter(); ref.fill(2); ref2.fill(3); r1 = time.perf_counter()
print(json.dumps(dict(pages=pages, build=t1 - t0, boot=t2 - t1, late=t3 - t2, total=t3 - t0, rss=rss,
                      passes=passes, ref=r1 - r0)))
"""


def main():
    preset = sys.argv[1] if len(sys.argv) > 1 else "p3-skylake-2x384g"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rows = []
    for i in range(runs):
        out = subprocess.run([sys.executable, "-c", CHILD, preset], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout))
        r = rows[-1]
        print(f"run {i + 1}: build {r['build']:.2f}s boot {r['boot']:.2f}s late init {r['late']:.2f}s "
              f"total {r['total']:.2f}s, peak RSS {r['rss'] / 2**30:.2f} GiB", file=sys.stderr)
    med = {k: statistics.median(r[k] for r in rows) for k in ("build", "boot", "late", "total", "rss", "ref")}
    pages = rows[0]["pages"]
    print(f"{preset}: {pages} simulated pages ({pages * 4096 / 2**30:.0f} GiB of memmap coverage), policy v4.17,"
          f" median of {runs} runs (host time)")
    print(f"  Machine() {med['build']:.2f} s, boot() {med['boot']:.2f} s, page_alloc_init_late() {med['late']:.2f} s,"
          f" total {med['total']:.2f} s")
    print(f"  peak RSS {med['rss'] / 2**30:.2f} GiB = {med['rss'] / pages:.1f} bytes per simulated page (budget 16)")
    print(f"  reference (numpy writes 3 bytes/page): {med['ref']:.3f} s; "
          f"total / reference = {med['total'] / med['ref']:.1f}x")


if __name__ == "__main__":
    main()

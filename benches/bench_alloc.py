"""Allocations per second in the on-demand window (grows included), 1/2/4/8 allocator threads, on one
node and on two nodes; Rust-side workload driver, host time. Median of RUNS runs; the ratio column is
against the 1-thread figure measured in the same run of the same machine (2 host cores here).
Per policy twice: with the boot pagesets (batch 1, high 0: every allocation and free takes zone->lock) and
after setup_per_cpu_pageset() (the real per-CPU lists, docs/model.md §5.3).

    python benches/bench_alloc.py [RUNS] [MAX_THREADS]
"""

import statistics
import sys

import pgdefer
from pgdefer import presets

ALLOCS = 400_000  # per configuration, split over the threads


def rate(preset, threads, seed, policy="v4.17", pcp=False):
    t = presets.get(preset)
    m = pgdefer.Machine(t, policy=policy, cpus=threads + 1)
    m.boot()
    if pcp:
        m.setup_per_cpu_pageset()
    nodes = m.nodes
    per = ALLOCS // threads
    streams = [dict(cpu=c, count=per, orders=[0, 0, 0, 0, 1, 2, 3], node=nodes[(c - 1) % len(nodes)], free_percent=30)
               for c in range(1, threads + 1)]
    r = m.run_workload(streams, seed=seed)
    grows = sum(1 for e in m.events if e["kind"] == "grow" and e["pages"])
    return r["allocs"] / (r["host_ns"] / 1e9), grows


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    most = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    print(f"allocations/s in the on-demand window (orders 0-3, 30% frees), median of {runs} runs, host time")
    for policy, pcp in (("v4.17", False), ("v4.17", True), ("v5.10", False), ("v5.10", True)):
        lists = "per-CPU lists" if pcp else "boot pagesets"
        for preset, label in (("vm-64g", "one node (vm-64g)"), ("default", "two nodes (default, 2 x 8 GiB)")):
            base = None
            for threads in (t for t in (1, 2, 4, 8) if t <= most):
                rates, grows = [], 0
                for seed in range(runs):
                    r, grows = rate(preset, threads, seed, policy, pcp)
                    rates.append(r)
                med = statistics.median(rates)
                base = base or med
                print(f"  {policy} {lists:13s} {label:32s} {threads} thread(s): {med / 1e6:6.2f} M allocs/s"
                      f"  ({med / base:4.2f}x of 1 thread; {grows} grows)")


if __name__ == "__main__":
    main()

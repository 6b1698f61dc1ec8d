"""Allocations per second in the on-demand window (grows included), 1/2/4/8 allocator threads, on one
node and on two nodes; Rust-side workload driver, host time. Median of RUNS runs; the ratio column is
against the 1-thread figure measured in the same run of the same machine (2 host cores here).

    python benches/bench_alloc.py [RUNS]
"""

import statistics
import sys

import pgdefer
from pgdefer import presets

ALLOCS = 400_000  # per configuration, split over the threads


def rate(preset, threads, seed):
    t = presets.get(preset)
    m = pgdefer.Machine(t, policy="v4.17", cpus=threads + 1)
    m.boot()
    nodes = m.nodes
    per = ALLOCS // threads
    streams = [dict(cpu=c, count=per, orders=[0, 0, 0, 0, 1, 2, 3], node=nodes[(c - 1) % len(nodes)], free_percent=30)
               for c in range(1, threads + 1)]
    r = m.run_workload(streams, seed=seed)
    grows = sum(1 for e in m.events if e["kind"] == "grow" and e["pages"])
    return r["allocs"] / (r["host_ns"] / 1e9), grows


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"allocations/s in the on-demand window (v4.17, orders 0-3, 30% frees), median of {runs} runs, host time")
    for preset, label in (("vm-64g", "one node (vm-64g)"), ("default", "two nodes (default, 2 x 8 GiB)")):
        base = None
        for threads in (1, 2, 4, 8):
            rates, grows = [], 0
            for seed in range(runs):
                r, grows = rate(preset, threads, seed)
                rates.append(r)
            med = statistics.median(rates)
            base = base or med
            print(f"  {label:32s} {threads} thread(s): {med / 1e6:6.2f} M allocs/s  ({med / base:4.2f}x of 1 thread;"
                  f" {grows} grows)")


if __name__ == "__main__":
    main()

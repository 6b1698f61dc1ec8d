"""The pure-Python oracle vs the Rust core on the same small machine and operation sequence: host
seconds (median of RUNS) and the speed ratio, measured in the same run.

    python benches/bench_oracle.py [RUNS]
"""

import statistics
import sys
import time

from pgdefer import Geometry, Machine, Region, Topology
from pgdefer.oracle import OracleMachine

MiB = 1 << 20


def workload(m):
    m.boot()
    held = []
    for i in range(20000):
        held.append((m.alloc_pages(i % 3), i % 3))
        if i % 3 == 0:
            pfn, order = held.pop(len(held) // 2)
            m.free_pages(pfn, order)
    m.page_alloc_init_late()


def bulk(m):
    m.boot()
    m.page_alloc_init_late()


def timed(cls, topo, work=workload):
    t = time.perf_counter()
    work(cls(topo, policy="v4.17"))
    return time.perf_counter() - t


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    topo = Topology(memory=[Region(MiB, 512 * MiB, 0), Region(512 * MiB, 1024 * MiB, 1)],
                    geometry=Geometry(section_size="4M"))
    rust = statistics.median(timed(Machine, topo) for _ in range(runs))
    oracle = statistics.median(timed(OracleMachine, topo) for _ in range(runs))
    print(f"2-node 1 GiB machine (262144 pages, 4 MiB sections), boot + 20000 allocations + 6667 frees + late init,"
          f" median of {runs}:")
    print(f"  Rust core {rust * 1e3:8.1f} ms   oracle {oracle * 1e3:8.1f} ms   oracle / Rust = {oracle / rust:.0f}x"
          "   (dominated by the per-call cost of Python driving both)")
    big = Topology(memory=[Region(MiB, 8192 * MiB, 0)], reserved=[Region(16 * MiB, 48 * MiB)],
                   geometry=Geometry(section_size="4M"))
    rust = statistics.median(timed(Machine, big, bulk) for _ in range(runs))
    oracle = statistics.median(timed(OracleMachine, big, bulk) for _ in range(runs))
    print(f"1-node 8 GiB machine (2 M pages, 4 MiB sections), boot + page_alloc_init_late, median of {runs}:")
    print(f"  Rust core {rust * 1e3:8.1f} ms   oracle {oracle * 1e3:8.1f} ms   oracle / Rust = {oracle / rust:.0f}x")


if __name__ == "__main__":
    main()

"""Host threads and simulated CPUs (issue 14 finding 7): a call without cpu= never races another thread for
CPU 0 — only the thread that created the machine runs there by default, every other thread gets an error that
says to pass cpu= — and allocations name workload CPUs only, with an error that says how many there are."""

import threading

import pytest

import pgdefer
from pgdefer import Geometry, Region, Topology

SMALL = Geometry(section_size="256K", max_order=4, pageblock_order=3)  # 64-page sections
PAGE = 4096


def machine(nodes=1, **kw):
    mem = [Region(n * 16 * 64 * PAGE, (n + 1) * 16 * 64 * PAGE, n) for n in range(nodes)]
    m = pgdefer.Machine(Topology(memory=mem, geometry=SMALL), **kw)
    m.boot()
    return m


def in_threads(n, work):
    """Run work(k) on n threads started together; returns each thread's result or exception."""
    out, start = [None] * n, threading.Barrier(n)

    def run(k):
        start.wait()
        try:
            out[k] = work(k)
        except Exception as e:  # noqa: BLE001 - reported to the test
            out[k] = e

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_threads_without_cpu_always_get_the_same_clear_error():
    m = machine(cpus=1)
    for _ in range(3):  # the same answer every time, however the threads interleave
        out = in_threads(4, lambda k: [m.alloc_pages(0) for _ in range(50)])
        assert all(isinstance(e, pgdefer.InvalidArgument) for e in out), out
        assert all("needs cpu=" in str(e) and "Machine(..., cpus=N)" in str(e) for e in out)
    assert m.pages.counts()["allocated"] == 0, "a refused call changed nothing"
    assert m.alloc_pages(0) >= 0  # the creating thread runs on CPU 0 without saying so
    m.check()


def test_threads_with_their_own_cpus_allocate_together():
    m = machine(cpus=5)
    out = in_threads(4, lambda k: [m.alloc_pages(0, cpu=k + 1) for _ in range(100)])
    assert all(isinstance(r, list) for r in out), out
    pfns = [p for r in out for p in r]
    assert len(set(pfns)) == 400 == m.pages.counts()["allocated"]
    m.check()


def test_a_callback_on_a_pass_thread_must_name_its_cpu():
    m = machine(nodes=2, cpus=2)
    m.at("pass:start", lambda point, node, cpu: m.alloc_pages(0, node=node), node=1)
    with pytest.raises(pgdefer.InvalidArgument, match="needs cpu="):
        m.page_alloc_init_late()


def test_cpu_must_be_a_workload_cpu():
    m = machine(nodes=1, cpus=1)
    # CPU 1 exists (node 0's pgdatinit thread runs on it) but is not one of the allocating CPUs.
    with pytest.raises(pgdefer.InvalidArgument, match=r"cpu 1 is a per-node pass CPU \(pgdatinit\): allocations run"
                                                      r" on the workload CPUs 0..0 of Machine\(cpus=1\)"):
        m.alloc_pages(0, cpu=1)
    with pytest.raises(pgdefer.InvalidArgument, match=r"cpu 2 does not exist: .*Machine\(\.\.\., cpus=3\) has CPU 2"):
        m.alloc_pages(0, cpu=2)
    with pytest.raises(pgdefer.InvalidArgument, match="cpu 1 is a per-node pass CPU"):
        m.free_pages(0, 0, cpu=1)
    assert m.pages.counts()["allocated"] == 0

"""Concurrency: the review findings on the 2018 posting, interrupts and the grow lock, fault injection
and stress with real threads. Every test here pins a behaviour that fails if it is removed."""

import contextlib
import threading

import pytest

import pgdefer
from pgdefer import Geometry, Machine, Region, Topology

PAGE = 4096
GiB = 1 << 30
PPS = 64  # pages per section in the small geometry
SMALL = Geometry(section_size="256K", max_order=4, pageblock_order=3)


def dma_only(sections=8, nodes=1, **kw):
    """Each node: `sections` sections of memory in ZONE_DMA (the node's only, hence deferred, zone)."""
    mem = [Region(n * sections * PPS * PAGE, (n + 1) * sections * PPS * PAGE, n) for n in range(nodes)]
    return Machine(Topology(memory=mem, geometry=SMALL), **kw)


def drain(m, node=0, zone="DMA", cpu=0, pages=PPS):
    """Allocate the early section of `node` so that the zone has no free page left."""
    for _ in range(pages):
        m.alloc_pages(0, node=node, zone=zone, cpu=cpu)
    assert m.zone(node, zone).free_pages == 0


# -- review finding 1 (B10): posting-v2 disables the key before the per-node passes run ---------------

@pytest.mark.parametrize("policy,succeeds", [("posting-v2", False), ("v4.17", True)])
def test_allocation_in_the_window_before_the_passes(policy, succeeds):
    m = dma_only(policy=policy, cpus=2)
    m.boot()
    drain(m)
    seen = {}

    def allocate_in_window(point, node, cpu):
        seen["key"] = m.deferred_pages_enabled
        try:
            seen["pfn"] = m.alloc_pages(0, zone="DMA", cpu=1)
        except pgdefer.OutOfMemory as e:
            seen["error"] = e

    m.at("pass:start", allocate_in_window, node=0)
    m.page_alloc_init_late()
    if succeeds:  # v4.17: the key is still on, the allocation grows the zone
        assert seen["key"] is True and "pfn" in seen
    else:  # posting-v2: key already off, nothing grows, the empty zone fails the allocation
        assert seen["key"] is False and isinstance(seen.get("error"), pgdefer.OutOfMemory)
    m.check()


# -- review finding 2 (B9): static_branch_disable under a spinlock ---------------------------------

@pytest.mark.parametrize("policy,warns", [("posting-v2", True), ("v4.17", False)])
def test_key_toggled_under_spinlock_is_reported(policy, warns):
    m = dma_only(policy=policy)
    m.boot()
    m.page_alloc_init_late()
    warnings = [e["message"] for e in m.events if e["kind"] == "warning"]
    if warns:
        assert len(warnings) == 1
        assert "sleeping function called from invalid context" in warnings[0]
        assert "static_branch_disable" in warnings[0]
    else:
        assert warnings == []


# -- review finding 3: the unlocked snapshot must be re-checked under the lock -----------------------

@pytest.mark.parametrize("faults", [(), ("trust_snapshot",)])
def test_stale_snapshot_is_revalidated(faults):
    """CPU 0 reads first_deferred_pfn unlocked; before it takes the lock, CPU 1 grows the same section.
    The correct protocol sees the change and retries; the broken one initialises the section again."""
    m = dma_only(policy="v4.17", cpus=2, faults=faults)
    m.boot()
    drain(m)

    def race(point, node, cpu):
        assert cpu == 0
        m.alloc_pages(0, zone="DMA", cpu=1)  # grows [64, 128) completely

    m.at("grow:snapshot", race, node=0)
    m.alloc_pages(0, zone="DMA", cpu=0)
    if not faults:
        m.check()
        grows = [e for e in m.events if e["kind"] == "grow"]
        assert [g["pages"] for g in grows] == [PPS, 0]  # the second found the snapshot stale
        assert m.first_deferred_pfn(0) == 2 * PPS
    else:
        with pytest.raises(pgdefer.InvariantViolation, match="initialised a second time"):
            m.check()
        assert m.pages.init_count.max() >= 2


# -- review finding 4: after free_initmem the __init grow code is gone ------------------------------

def test_free_initmem_makes_grow_unreachable():
    m = dma_only(policy="v4.17")
    m.boot()
    m.page_alloc_init_late()
    m.free_initmem()
    with pytest.raises(pgdefer.PhaseError, match="__init"):
        m.deferred_grow_zone(0, "DMA")
    warnings = [e for e in m.events if e["kind"] == "warning"]
    assert len(warnings) == 1 and "explicit" in warnings[0]["message"]
    # The allocator's hooks are behind the (now disabled) static key: exhausting memory is a plain OOM.
    with pytest.raises(pgdefer.OutOfMemory):
        for _ in range(8 * PPS + 1):
            m.alloc_pages(0)
    assert [e for e in m.events if e["kind"] == "warning"] == warnings


def test_free_initmem_with_the_key_left_on_is_caught():
    m = dma_only(policy="v4.17", faults=("keep_key",))
    m.boot()
    m.page_alloc_init_late()
    assert m.deferred_pages_enabled
    m.free_initmem()
    with pytest.raises(pgdefer.PhaseError, match="free_initmem"):
        for _ in range(8 * PPS + 1):
            m.alloc_pages(0)
    assert any("__init" in e["message"] for e in m.events if e["kind"] == "warning")


def test_free_initmem_needs_late_init():
    m = dma_only()
    m.boot()
    with pytest.raises(pgdefer.PhaseError):
        m.free_initmem()


# -- interrupts and the grow lock -----------------------------------------------------------------

@pytest.mark.parametrize("policy", ["v4.17", "posting-v2"])
def test_irqsave_holds_the_interrupt_off_until_unlock(policy):
    m = dma_only(policy=policy, cpus=2)
    m.boot()
    drain(m)
    handles = []
    m.at("grow:locked", lambda p, n, cpu: handles.append(m.raise_irq(cpu, 0, zone="DMA")))
    m.alloc_pages(0, zone="DMA", cpu=0)
    (h,) = handles
    assert h.done, "delivered when the lock was released"
    assert PPS <= h.result() < 2 * PPS  # from the section the interrupted grow just added
    assert not [e for e in m.events if e["kind"] == "lockdep"]
    assert all(owner is None for owner in m.lock_owners().values())
    m.check()


@pytest.mark.parametrize("policy,lock", [("v4.17", "node_size_lock"), ("posting-v2", "deferred_zone_grow_lock")])
def test_interrupt_needing_the_lock_its_cpu_holds_is_a_reported_deadlock(policy, lock):
    m = dma_only(policy=policy, cpus=2, grow_irqsave=False)
    m.boot()
    drain(m)
    handles = []
    m.at("grow:locked", lambda p, n, cpu: handles.append(m.raise_irq(cpu, 0, zone="DMA")))
    m.alloc_pages(0, zone="DMA", cpu=0)  # completes: the model does not hang
    (h,) = handles
    with pytest.raises(pgdefer.DeadlockDetected, match="DEADLOCK"):
        h.result()
    (rep,) = [e for e in m.events if e["kind"] == "lockdep"]
    assert lock in rep["lock"] and rep["lock_cpu"] == 0
    assert rep["held_at"] == "deferred_grow_zone" and rep["wanted_at"] == "deferred_grow_zone"
    assert all(owner is None for owner in m.lock_owners().values())
    m.check()


def test_interrupt_on_an_idle_cpu_and_pending_handles():
    m = dma_only(cpus=2)
    m.boot()
    h = m.raise_irq(1, 0)
    assert not h.done and "pending" in repr(h)
    with pytest.raises(pgdefer.PhaseError, match="not been delivered"):
        h.result()
    m.deliver_irqs(1)
    assert h.done and 0 <= h.result() < PPS


def test_points_validate_and_callback_errors_surface():
    m = dma_only()
    with pytest.raises(ValueError, match="unknown point"):
        m.at("nowhere", lambda *a: None)
    m.boot()

    def boom(point, node, cpu):
        raise KeyError("from the callback")

    m.at("pass:start", boom)
    with pytest.raises(KeyError, match="from the callback"):
        m.page_alloc_init_late()


# -- fault injection ------------------------------------------------------------------------------

def test_a_stream_on_the_boot_cpu_cannot_race_late_init():
    m = two_node_machine("v4.17")
    m.boot()
    with pytest.raises(pgdefer.InvalidArgument, match="boot CPU"):
        m.run_workload([dict(cpu=0, count=10)], late_init_after=5)


def test_failing_pass_gives_worker_failed_without_hang_or_double_init():
    m = dma_only(nodes=2, cpus=2, fail_pass=(1, 100))
    m.boot()
    with pytest.raises(pgdefer.WorkerFailed) as e:
        m.page_alloc_init_late()
    assert e.value.node == 1
    assert m.phase == "failed"
    assert all(owner is None for owner in m.lock_owners().values())
    assert m.pages.init_count.max() == 1
    with pytest.raises(pgdefer.PhaseError, match="failed"):
        m.alloc_pages(0)
    with pytest.raises(pgdefer.PhaseError):
        m.page_alloc_init_late()


def test_a_panicking_worker_is_a_typed_error_and_releases_its_lock():
    m = dma_only(nodes=2, cpus=2, panic_pass=0)
    m.boot()
    with pytest.raises(pgdefer.WorkerFailed, match="panicked") as e:
        m.page_alloc_init_late()
    assert e.value.node == 0 and m.phase == "failed"
    assert all(owner is None for owner in m.lock_owners().values())
    assert m.pages.init_count.max() == 1


def test_pass_points_bracket_the_locked_pass():
    m = dma_only(cpus=2)
    m.boot()
    seen = []
    for point in ("pass:start", "pass:finish", "pass:end"):
        m.at(point, lambda p, n, cpu: seen.append((p, m.lock_owners()["&pgdat->node_size_lock (node 0)"])))
    m.page_alloc_init_late()
    pass_cpu = m.cpus  # node 0's pgdatinit runs on the first CPU after the workload CPUs
    assert seen == [("pass:start", None), ("pass:finish", pass_cpu), ("pass:end", None)]


def _mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


def test_machine_larger_than_the_host_is_refused_with_the_figure():
    # Twice what this host has available, in whole GiB of memory (BYTES_PER_PAGE of page array per
    # 4 KiB page), on one node of at most 8 TiB (a zone's link reach): refused with the figure.
    want = min(2 * _mem_available() * 4096 // pgdefer._core.BYTES_PER_PAGE, 8 << 40) // GiB * GiB - GiB
    with pytest.raises(pgdefer.HostMemoryError, match=r"needs [0-9.]+ GiB"):
        Machine(Topology(memory=[Region(0, want + GiB, 0)]))


def test_phase_change_from_a_callback_is_an_error_not_a_hang():
    m = dma_only(nodes=2, cpus=2)
    m.boot()
    seen = []

    def again(point, node, cpu):
        for call in (m.page_alloc_init_late, m.boot):
            try:
                call()
            except pgdefer.PhaseError as e:
                seen.append(str(e))

    m.at("pass:start", again, node=0)
    m.page_alloc_init_late()
    assert len(seen) == 2 and all("called from a point callback" in s for s in seen)
    m.check()


def test_callback_waiting_for_the_lock_its_own_thread_holds_is_a_reported_deadlock():
    """A grow:locked callback (this thread is CPU 0 inside grow, holding the node lock) makes CPU 1 grow
    the same node: it would spin forever on a lock only this thread can release."""
    m = dma_only(cpus=2)
    m.boot()
    drain(m)
    errors = []

    def other_cpu_grows(point, node, cpu):
        try:
            m.deferred_grow_zone(0, "DMA", cpu=1)
        except pgdefer.DeadlockDetected as e:
            errors.append(str(e))

    m.at("grow:locked", other_cpu_grows)
    m.alloc_pages(0, zone="DMA", cpu=0)
    assert len(errors) == 1 and "CPU 1" in errors[0] and "CPU 0 holds it" in errors[0]
    assert all(owner is None for owner in m.lock_owners().values())
    m.check()


def test_one_host_thread_per_simulated_cpu():
    m = dma_only(cpus=2)
    m.boot()
    inside, release, seen = threading.Event(), threading.Event(), []

    def hold(point, node, cpu):
        inside.set()
        release.wait(10)

    m.at("grow:snapshot", hold)
    drain(m)
    t = threading.Thread(target=lambda: m.alloc_pages(0, cpu=0))
    t.start()
    assert inside.wait(10)
    try:
        m.alloc_pages(0, cpu=0)
    except pgdefer.PhaseError as e:
        seen.append(str(e))
    finally:
        release.set()
        t.join()
    assert len(seen) == 1 and "another host thread" in seen[0]
    m.alloc_pages(0, cpu=0)  # free again once the other thread is done
    m.check()


def test_workload_on_a_machine_that_fails_underneath_reports_instead_of_panicking():
    # 64 sections a node: the stream (node 1) cannot use up node 0 before node 0's pass fails.
    m = dma_only(sections=64, nodes=2, cpus=2, fail_pass=(0, 10))
    m.boot()
    r = m.run_workload([dict(cpu=1, node=1, count=3000, free_percent=30)], late_init_after=0)
    assert "failed" in r["late_init"]
    assert m.phase == "failed"
    assert r["allocs"] + r["failures"] <= 3000


def test_concurrent_free_reserved_area_of_one_range_frees_it_once():
    t = Topology(memory=[Region(0, 16 * PPS * PAGE, 0)], reserved=[Region(PPS * PAGE, 9 * PPS * PAGE)], geometry=SMALL)
    m = Machine(t, cpus=3)
    m.boot()
    m.page_alloc_init_late()
    results = []

    def free(cpu):
        try:
            results.append(m.free_reserved_area(PPS, 9 * PPS, cpu=cpu))
        except pgdefer.BadFree:
            results.append("BadFree")

    threads = [threading.Thread(target=free, args=(c,)) for c in (1, 2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results, key=str) == [8 * PPS, "BadFree"]
    m.check()


def test_posting_v2_trusting_its_snapshot_double_initialises():
    """The seed's v2 read first_deferred_pfn before taking the global lock and never re-read it."""
    m = dma_only(policy="posting-v2", cpus=2, faults=("trust_snapshot",))
    m.boot()
    drain(m)
    m.at("grow:snapshot", lambda p, n, cpu: m.alloc_pages(0, zone="DMA", cpu=1))
    m.alloc_pages(0, zone="DMA", cpu=0)
    with pytest.raises(pgdefer.InvariantViolation, match="initialised a second time"):
        m.check()


# -- stress ---------------------------------------------------------------------------------------

def two_node_machine(policy, cpus=9):
    # node 0: 16 MiB DMA + 48 MiB DMA32-less Normal-like layout kept small: x86 zones, small sections
    mem = [Region(0, 24 << 20, 0), Region(24 << 20, 48 << 20, 1)]
    g = Geometry(section_size="1M", max_order=6, pageblock_order=4)  # 256-page sections
    t = Topology(memory=mem, reserved=[Region(1 << 20, 2 << 20), Region(30 << 20, 31 << 20)], geometry=g,
                 zone_limits={"DMA": "8M", "DMA32": "16M"})
    return Machine(t, policy=policy, cpus=cpus)


def conservation(m, held_blocks):
    """Every pfn is in exactly one state, the per-zone totals match the machine's present pages, and
    the ALLOCATED pages are exactly the blocks the callers still hold: `held_blocks` is the list of
    (pfn, order) the test's callers kept, or, for a workload whose blocks stay in the core, their number.
    An allocated page that nobody holds (a lost page) fails here, whatever the machine's own ledger says."""
    counts = m.pages.counts()
    assert sum(counts.values()) == len(m.pages)
    zones = m.zones()
    # FREE pages are on the buddy lists (NR_FREE_PAGES) or on some CPU's per-CPU lists (docs/model.md §5.3)
    on_pcp = sum(m.pcp(z.node, z.name, cpu)["count"] for z in zones for cpu in range(len(m.cpu_states())))
    free = sum(z.free_pages for z in zones)
    assert counts["free"] == free + on_pcp
    present = sum(z.present for z in zones)
    holes = len(m.pages) - m.topology.present_pages
    assert counts["free"] + counts["allocated"] + counts["reserved"] + counts["uninit"] == present + holes
    ledger = m.allocations()
    if isinstance(held_blocks, int):
        assert len(ledger) == held_blocks, "the core's ledger holds the blocks the streams kept"
    else:
        assert sorted(held_blocks) == ledger, "the ledger is what the callers hold"
    assert counts["allocated"] == sum(1 << order for _, order in ledger), "no ALLOCATED page outside an allocation"


@pytest.mark.parametrize("policy", ["v4.17", "posting-v2"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stress_8_threads_100k_allocations_racing_late_init(policy, seed):
    m = two_node_machine(policy)
    m.boot()
    # CPU 0 runs page_alloc_init_late; the 8 allocator threads are CPUs 1..8.
    streams = [dict(cpu=c, count=12500, orders=[0, 0, 0, 1, 2, 3], node=c % 2, free_percent=45) for c in range(1, 9)]
    r = m.run_workload(streams, seed=seed, late_init_after=30000 + 7000 * seed)
    assert r["allocs"] + r["failures"] == 100000
    assert r["late_init"] == "ok"
    assert m.phase == "late_init_done"
    m.check()
    conservation(m, sum(held for _cpu, _allocs, _failures, _frees, held in r["streams"]))
    assert (m.pages.init_count == 1).all(), "every page initialised exactly once"


def test_python_threads_share_a_machine_safely():
    m = two_node_machine("v4.17", cpus=5)
    m.boot()
    m.setup_per_cpu_pageset()       # the real per-CPU lists: each thread's CPU keeps pages of its own
    errors, kept = [], []

    def worker(cpu):
        held = []
        kept.append(held)
        try:
            for i in range(3000):
                order = i % 3
                with contextlib.suppress(pgdefer.OutOfMemory):
                    held.append((m.alloc_pages(order, node=cpu % 2, cpu=cpu), order))
                if len(held) > 50:
                    pfn, order = held.pop(0)
                    m.free_pages(pfn, order, cpu=cpu)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(1, 5)]  # CPU 0 runs late init
    for t in threads:
        t.start()
    m.page_alloc_init_late()
    for t in threads:
        t.join()
    assert errors == []
    m.check()
    conservation(m, [b for held in kept for b in held])



# -- issue 15: a callback's exception belongs to its operation; no page lost; no hang ---------------

def run_bounded(code, timeout=120):
    """Run `code` in a fresh interpreter: a regression to a hang fails this test (with the code's
    output) instead of hanging the suite. Not a timing assertion: the bound is minutes, the run a second."""
    import subprocess
    import sys
    import textwrap

    prelude = textwrap.dedent("""
        import threading
        import pgdefer
        from pgdefer import Geometry, Machine, Region, Topology
        PAGE, PPS = 4096, 64
        SMALL = Geometry(section_size="256K", max_order=4, pageblock_order=3)
        def dma_only(sections=8, nodes=1, **kw):
            mem = [Region(n * sections * PPS * PAGE, (n + 1) * sections * PPS * PAGE, n) for n in range(nodes)]
            return Machine(Topology(memory=mem, geometry=SMALL), **kw)
        def drain(m, node=0, cpu=0):
            for _ in range(PPS):
                m.alloc_pages(0, node=node, zone="DMA", cpu=cpu)
    """)
    try:
        p = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"hung (no answer in {timeout} s): {e.stdout!r} {e.stderr!r}")
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_late_init_from_a_grow_callback_is_refused_not_a_hang():
    """Finding 1: CPU 0 stopped inside grow holds node 0's lock; page_alloc_init_late from there would
    start node 0's pass, which spins on that lock while this thread waits for the pass."""
    out = run_bounded("""
        m = dma_only(nodes=2, cpus=2, policy="v4.17")
        m.boot()
        drain(m)
        m.at("grow:locked", lambda *a: m.page_alloc_init_late(), node=0)
        try:
            m.alloc_pages(0, node=0, zone="DMA")
        except pgdefer.PhaseError as e:
            print("refused:", e)
        assert m.phase == "booted", m.phase
        assert len(m.allocations()) == PPS, "the drained section only: the refused call was rolled back"
        m.check()
        m.page_alloc_init_late()  # fine once no operation is stopped at a point
        m.check()
        print(m.phase)
    """)
    assert "refused:" in out and "called from a point callback" in out and "grow:locked" in out
    assert out.strip().endswith("late_init_done")


def test_late_init_from_another_thread_while_a_cpu_is_stopped_holding_a_lock_is_refused():
    m = dma_only(nodes=2, cpus=2, policy="v4.17")
    m.boot()
    drain(m)
    seen = []

    def from_a_thread(point, node, cpu):
        def late():
            try:
                m.page_alloc_init_late()
            except pgdefer.PhaseError as e:
                seen.append(str(e))
        t = threading.Thread(target=late)
        t.start()
        t.join(60)
        seen.append(t.is_alive())

    m.at("grow:locked", from_a_thread, node=0)
    m.alloc_pages(0, node=0, zone="DMA")
    assert seen[1:] == [False] and "holding a spinlock" in seen[0] and "CPU 0" in seen[0]
    m.page_alloc_init_late()
    m.check()


def test_a_stream_waiting_for_the_lock_of_the_callback_that_started_it_is_a_detected_deadlock():
    """Wait-for graph across host threads: the callback's thread (CPU 0, holding node 0's lock) joins a
    workload stream whose allocation must grow node 0: it spins on the lock its joiner holds."""
    out = run_bounded("""
        m = dma_only(cpus=2, policy="v4.17")
        m.boot()
        drain(m)
        results = []
        m.at("grow:locked", lambda *a: results.append(m.run_workload([dict(cpu=1, count=1, zone="DMA")])))
        m.alloc_pages(0, zone="DMA")
        (r,) = results
        print("failures", r["failures"])
        (rep,) = [e for e in m.events if e["kind"] == "lockdep"]
        print("lockdep cpu", rep["cpu"], rep["lock"])
        assert all(owner is None for owner in m.lock_owners().values())
        m.check()
        print("ok", len(m.allocations()))
    """)
    # The stream's one allocation fails (the zone is drained and its grow gave up on the cycle); the
    # caller's allocation, made once the lock is free again, succeeds.
    assert "failures 1" in out and "lockdep cpu 1 &pgdat->node_size_lock (node 0)" in out
    assert out.strip().endswith("ok 65")  # the 64 drained pages and the allocation that grew


def test_two_callbacks_each_wanting_the_other_threads_node_lock_is_a_detected_deadlock():
    """ABBA across host threads: thread A stops in node 0's grow (holding its lock) and grows node 1;
    thread B stops in node 1's grow and grows node 0. Some waiter sees the cycle and gives up."""
    out = run_bounded("""
        m = dma_only(nodes=2, cpus=4, policy="v4.17")
        m.boot()
        drain(m, node=0, cpu=0)
        drain(m, node=1, cpu=1)
        inside = {0: threading.Event(), 1: threading.Event()}
        seen = []

        def grow_the_other(point, node, cpu):
            inside[node].set()
            inside[1 - node].wait(30)
            try:
                m.deferred_grow_zone(1 - node, "DMA", cpu=2 + node)
                seen.append("grew")
            except pgdefer.DeadlockDetected as e:
                seen.append(str(e))

        for n in (0, 1):
            m.at("grow:locked", grow_the_other, node=n)
        ts = [threading.Thread(target=m.alloc_pages, args=(0, n, "DMA", n)) for n in (0, 1)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        print(len(seen), sum("wait for each other in a cycle" in s for s in seen))
        m.check()
        print("ok")
    """)
    n, cycles = map(int, out.split()[:2])
    assert n == 2 and cycles >= 1 and out.strip().endswith("ok")


def test_a_callback_error_is_raised_by_its_own_operation_not_another_threads():
    """Finding 2: CPU 0's allocation reaches a point whose callback raises; while it is still inside
    (stopped at a later point), CPU 1's allocation on another thread must return its pfn."""
    m = dma_only(nodes=2, cpus=2)
    m.boot()
    drain(m)
    other_done = threading.Event()
    got = {}

    def boom(point, node, cpu):
        raise KeyError("from CPU 0's callback")

    def other_thread_allocates(point, node, cpu):
        def other():
            try:
                got["pfn"] = m.alloc_pages(0, node=1, cpu=1)
            except BaseException as e:  # noqa: BLE001 - the finding: another thread gets the error
                got["error"] = e
            other_done.set()
        threading.Thread(target=other).start()
        assert other_done.wait(30)

    m.at("grow:snapshot", boom, node=0)
    m.at("grow:locked", other_thread_allocates, node=0)
    with pytest.raises(KeyError, match="CPU 0's callback"):
        m.alloc_pages(0, node=0, zone="DMA", cpu=0)
    assert "error" not in got and got["pfn"] >= 8 * PPS  # a page of node 1
    conservation(m, [(pfn, 0) for pfn in range(PPS)] + [(got["pfn"], 0)])
    m.check()


def test_a_raising_callback_loses_no_page():
    """Finding 3: the allocation whose callback raised is rolled back: the call hands out nothing,
    the zone got the section grow added, and every ALLOCATED page is one the caller holds."""
    m = dma_only()
    m.boot()
    drain(m)
    m.at("grow:section", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        m.alloc_pages(2, zone="DMA")
    assert m.pages.counts()["allocated"] == PPS  # the drained section only
    assert m.zone(0, "DMA").free_pages == PPS  # the grown section, whole again
    conservation(m, [(pfn, 0) for pfn in range(PPS)])
    m.check()


def test_a_pass_threads_callback_error_goes_to_page_alloc_init_late():
    m = dma_only(nodes=2, cpus=2)
    m.boot()
    m.at("pass:end", lambda p, node, cpu: (_ for _ in ()).throw(KeyError(f"pass of node {node}")), node=1)
    with pytest.raises(KeyError, match="pass of node 1"):
        m.page_alloc_init_late()
    assert m.phase == "late_init_done"  # the operation completed, then raised
    assert m.alloc_pages(0) >= 0  # and no later operation inherits the error
    m.check()


def test_free_initmem_from_a_grow_callback_is_refused():
    """free_initmem() from a callback would free the __init grow code the stopped CPU is running."""
    m = dma_only()
    m.boot()
    m.page_alloc_init_late()
    m.at("grow:snapshot", lambda *a: m.free_initmem())
    with pytest.raises(pgdefer.PhaseError, match=r"free_initmem\(\) called from a point callback"):
        m.deferred_grow_zone(0, "DMA")
    m.free_initmem()  # fine afterwards
    with pytest.raises(pgdefer.PhaseError, match="__init"):
        m.deferred_grow_zone(0, "DMA")

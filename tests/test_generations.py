"""Kernel generations through the Rust core (docs/model.md §11): the issue's hand-derived acceptance case,
one case per generation showing what it changed, and the 5.7 claim racing an allocation. Every expected
number is derived in a comment from the spec's loops (spec §2.3, §3.2, §5.7, §5.8), not from a run."""

import threading

import pytest

import pgdefer
from pgdefer import Geometry, Machine, Region, Topology
from shared_data import BOOTLOGS, KERNEL_LAB, need

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PPS = 32768  # PAGES_PER_SECTION of the default geometry (128 MiB of 4 KiB pages)


def grows(m):
    return [(e["hook"], e["pages"], e["first_deferred_pfn"], e["result"]) for e in m.events if e["kind"] == "grow"]


# -- acceptance 1 (review D2) ---------------------------------------------------------------------

def acceptance_machine(policy):
    """Node 0: memory [1 MiB, 3 GiB) + [4 GiB, 12 GiB); reserved the 20 pages [0x10fff6, 0x11000a) that
    straddle the section boundary 0x110000."""
    return Machine(Topology(memory=[Region(MiB, 3 * GiB), Region(4 * GiB, 12 * GiB)],
                            reserved=[Region(0x10fff6 << 12, 0x11000a << 12)]), policy=policy)


# Normal = [0x100000, 0x300000). Its first section holds no hole and no other node's pfn, so every
# generation's defer rule (LIMIT = 32768) cuts at pfn 0x108000 (count 32769, section aligned): Normal
# has 32768 free pages after boot. After 32768 order-0 allocations one more fails the zero watermark
# and grows once with need = ALIGN(1, PPS) = 32768. Free ranges from fdp: A = [0x108000, 0x10fff6)
# (0x7ff6 = 32758 pages) and B = [0x11000a, 0x300000).
#  v4.17 (§3.2): t = ALIGN(0x108000 + PPS, PPS) = 0x110000, clipped to A's end -> 32758 pages, A done,
#    got < need; B from 0x11000a: t = ALIGN(0x11800a, PPS) = 0x120000 -> 0x120000 - 0x11000a = 65526;
#    got = 98284, fdp = 0x120000.
#  v5.2+ (§5.7 deferred_init_maxorder loop): steps of MAX_ORDER_NR_PAGES = 1024 inside section 0x108000
#    continue; the step from 0x10fc00 initialises [0x10fc00, 0x10fff6) and leaves spfn at B's start
#    0x11000a: a section crossing, but got = 32758 < need. Steps inside section 0x110000 continue until
#    the one from 0x117c00 ends at 0x118000: crossing with got = 32758 + (0x118000 - 0x11000a) = 65516
#    >= need -> fdp = 0x118000.
#  rework-2025 (§5.12): chunk [0x108000, 0x110000) = A = 32758 < need; chunk [0x110000, 0x118000) holds
#    [0x11000a, 0x118000) = 32758 -> got 65516 >= need; fdp = 0x118000 (the next section).
ACCEPTANCE = {"v4.17": (98284, 0x120000), "v5.2": (65516, 0x118000), "v5.7": (65516, 0x118000),
              "v5.8": (65516, 0x118000), "v5.10": (65516, 0x118000), "v6.4": (65516, 0x118000),
              "v6.11": (65516, 0x118000), "rework-2025": (65516, 0x118000)}


@pytest.mark.parametrize("policy", sorted(ACCEPTANCE))
def test_acceptance_one_grow(policy):
    pages, fdp = ACCEPTANCE[policy]
    m = acceptance_machine(policy)
    m.boot()
    assert m.first_deferred_pfn(0) == 0x108000
    assert m.zone(0, "Normal").free_pages == PPS
    for _ in range(PPS):
        m.alloc_pages(0, node=0)
    assert grows(m) == []
    pfn = m.alloc_pages(0, node=0)
    assert 0x108000 <= pfn < fdp
    assert grows(m) == [("watermark", pages, fdp, True)]
    assert m.first_deferred_pfn(0) == fdp
    # The grown pages went to the buddy allocator: all but the one just allocated are free.
    assert m.zone(0, "Normal").free_pages == pages - 1
    m.check()
    m.page_alloc_init_late()
    m.check()
    assert (m.pages.init_count == 1).all()


# -- what each generation changed ----------------------------------------------------------------

def test_v4_6_sizes_the_prefix_by_node_span():
    """64 KiB pages keep a 1 TiB node small: node [4 GiB, 4 GiB + 1 TiB) = 2^24 pages, PPS = 8192
    (512 MiB sections). Normal starts at pfn 0x10000. v4.2: LIMIT = 2 GiB = 32768 pages -> cut at
    pfn 0x10000 + 32768 = 0x18000 (count 32769, aligned). v4.6: LIMIT = max(32768, 2^24 >> 8 = 65536)
    -> 0x20000. v4.17: LIMIT = 8192 -> 0x12000."""
    g = Geometry(page_size="64K", section_size="512M", pageblock_order=5, max_order=8)
    topo = Topology(memory=[Region(4 * GiB, 4 * GiB + 1024 * GiB)], geometry=g)
    cut = {}
    for p in ("v4.2", "v4.6", "v4.17"):
        m = Machine(topo, policy=p)
        m.boot()
        cut[p] = m.first_deferred_pfn(0)
    assert cut == {"v4.2": 0x18000, "v4.6": 0x20000, "v4.17": 0x12000}


def v4_13_machine(faults=()):
    """Node [4 GiB, 7 GiB) = pfns [0x100000, 0x1c0000), all Normal; 16 MiB reserved at 5 GiB."""
    return Machine(Topology(memory=[Region(4 * GiB, 7 * GiB)], reserved=[Region(5 * GiB, 5 * GiB + 16 * MiB)]),
                   policy="v4.13", faults=faults)


def test_v4_13_adds_reserved_memory_in_the_prefix_and_b4():
    """m = max(524288, 0xc0000 >> 8) = 524288 (2 GiB). The window [4 GiB, 6 GiB] holds the 16 MiB
    reservation: LIMIT = 524288 + 4096 = 528384 = 0x81000; counting from 0x100000 (every pfn counts, no
    holes) the first pfn over it is 0x181000, the next section boundary 0x188000. v4.6 would cut at
    0x180000. B4 (bytes_as_pages): the window is [0x100000, 0x180000] taken as bytes (~1 MiB), which
    misses the reservation at 5 GiB -> LIMIT 524288 -> 0x180000."""
    m = v4_13_machine()
    m.boot()
    assert m.first_deferred_pfn(0) == 0x188000
    assert not m.deferred_pages_enabled  # 4.13 has no on-demand growth
    b4 = v4_13_machine(faults=("bytes_as_pages",))
    b4.boot()
    assert b4.first_deferred_pfn(0) == 0x180000
    with pytest.raises(ValueError, match="bytes_as_pages"):
        Machine(Topology(memory=[Region(4 * GiB, 7 * GiB)]), policy="v4.17", faults=("bytes_as_pages",))


def test_v4_17_counts_holes_of_present_sections():
    """Review D1: memory [1 MiB, 3 GiB), [4 GiB, 4 GiB + 64 MiB), [4 GiB + 128 MiB, 8 GiB). Normal's first
    section [0x100000, 0x108000) is half memory, half hole. 4.x-5.7 count every valid pfn of the zone
    span: pfn 0x108000 is count 0x8001 -> fdp 0x108000. (Counting memory only, 5.8+, count 32769 falls
    on 0x10c000, not aligned: fdp 0x110000.)"""
    m = Machine(Topology(memory=[Region(MiB, 3 * GiB), Region(4 * GiB, 4 * GiB + 64 * MiB),
                                 Region(4 * GiB + 128 * MiB, 8 * GiB)]), policy="v4.17")
    m.boot()
    assert m.first_deferred_pfn(0) == 0x108000
    assert m.zone(0, "Normal").free_pages == 0x4000
    m.check()


def b12_machine(faults=()):
    """Node [4 GiB, 4 GiB + 256 MiB) (one zone, Normal; fdp = 0x108000); its second section reserved:
    no free page is deferred."""
    return Machine(Topology(memory=[Region(4 * GiB, 4 * GiB + 256 * MiB)],
                            reserved=[Region(4 * GiB + 128 * MiB, 4 * GiB + 256 * MiB)]),
                   policy="v5.2", faults=faults)


@pytest.mark.parametrize("faults", [(), ("retry_forever",)])
def test_v5_2_retries_only_once(faults):
    """Spec §8 B12. After the 32 MAX_ORDER blocks of the first section are taken, an order-0 allocation
    fails the watermark; grow finds no free range after 0x108000, sets fdp := ULONG_MAX and returns
    True (the snapshot was not ULONG_MAX); rmqueue fails again; the second grow (snapshot ULONG_MAX)
    returns False: the allocation fails cleanly. The 5.2 release returned True again: the model records
    the endless retry as a violation and the hook goes on to the next zone instead of hanging.
    The one-node Normal request carries ALLOC_NOFRAGMENT (5.0+), so get_page_from_freelist makes a second
    pass without it, and hook 1 asks once more: False (B12: True again)."""
    m = b12_machine(faults)
    m.boot()
    for _ in range(32):
        m.alloc_pages(10)
    with pytest.raises(pgdefer.OutOfMemory):
        m.alloc_pages(0)
    assert grows(m) == [("watermark", 0, None, True), ("rmqueue", 0, None, bool(faults)),
                        ("watermark", 0, None, bool(faults))]
    if faults:
        assert [v for v in m.violations if v.startswith("B12")]
    else:
        assert m.violations == []


def test_first_deferred_pfn_after_grow_range_end_vs_next_range_start():
    """The acceptance machine with a second reservation [0x117ff0, 0x118010) across the next section
    boundary. Free ranges: A = [0x108000, 0x10fff6) (32758), B = [0x11000a, 0x117ff0) (32742),
    C = [0x118010, ...). One order-0 grow (need 32768):
    v4.17: A gives 32758 (< need); in B, t = ALIGN(0x11800a, PPS) = 0x120000 clipped to B's end
      0x117ff0: got = 65500 >= need -> fdp = 0x117ff0, the end of a free range.
    v5.2: the step from 0x117c00 initialises [0x117c00, 0x117ff0) and leaves spfn at C's start 0x118010,
      a section crossing with got = 65500 >= need -> fdp = 0x118010, the start of the next free range."""
    for policy, fdp in (("v4.17", 0x117ff0), ("v5.2", 0x118010)):
        m = Machine(Topology(memory=[Region(MiB, 3 * GiB), Region(4 * GiB, 12 * GiB)],
                             reserved=[Region(0x10fff6 << 12, 0x11000a << 12),
                                       Region(0x117ff0 << 12, 0x118010 << 12)]), policy=policy)
        m.boot()
        for _ in range(32):
            m.alloc_pages(10, node=0)
        m.alloc_pages(0, node=0)
        assert grows(m) == [("watermark", 65500, fdp, True)], policy
        m.check()


# -- the 5.7 claim racing an allocation (issue 8 acceptance 3) ------------------------------------------

def claim_machine(policy):
    """Node 0: DMA32 [1 GiB, 4 GiB), Normal [4 GiB, 4 GiB + 256 MiB): fdp 0x108000, the second Normal
    section deferred. CPU 1 allocates while node 0's pass runs on its pgdatinit CPU."""
    m = Machine(Topology(memory=[Region(GiB, 4 * GiB + 256 * MiB)]), policy=policy, cpus=2)
    m.boot()
    for _ in range(32):  # empty Normal's early section (32 MAX_ORDER blocks)
        m.alloc_pages(10)
    assert m.zone(0, "Normal").free_pages == 0
    return m


def race_allocation(m, release_at):
    """At pass:start, an allocation on CPU 1 (another host thread) reads first_deferred_pfn unlocked and
    stops at grow:snapshot until the pass reaches `release_at`. Returns (result dict, thread)."""
    seen = {}
    at_snapshot, go = threading.Event(), threading.Event()

    def hold(point, node, cpu):
        at_snapshot.set()
        go.wait(10)

    def allocate():
        try:
            seen["pfn"] = m.alloc_pages(0, node=0, cpu=1)
        except pgdefer.PgdeferError as e:  # pragma: no cover - reported by the assertions
            seen["error"] = e

    t = threading.Thread(target=allocate)

    def start(point, node, cpu):
        m.at("grow:snapshot", hold, node=0)
        t.start()
        assert at_snapshot.wait(10)

    m.at("pass:start", start, node=0)
    return seen, t, go


def claimed_pass_race():
    """5.7: the pass claims node 0 (fdp := ULONG_MAX) and drops the lock; at pass:claimed nothing has been
    freed yet. The allocation's snapshot (0x108000) predates the claim: its grow returns True (snapshot
    changed) without initialising anything; rmqueue on Normal fails; the second grow sees ULONG_MAX twice,
    finds no range and returns False; the allocation falls back to DMA32 — while the pass is parked at
    pass:claimed, so it did not wait for it. A direct grow on the claimed node returns False as well."""
    m = claim_machine("v5.7")
    seen, t, go = race_allocation(m, "pass:claimed")
    direct = {}

    def claimed(point, node, cpu):
        go.set()
        t.join(10)  # the allocation completes while the pass is parked here
        direct["done"] = not t.is_alive()
        direct["grow"] = m.deferred_grow_zone(0, "Normal", cpu=1)
        direct["normal_free"] = m.zone(0, "Normal").free_pages

    m.at("pass:claimed", claimed, node=0)
    m.page_alloc_init_late(threads=False)
    assert direct == {"done": True, "grow": False, "normal_free": 0}
    assert 0x40000 <= seen["pfn"] < 0x100000  # DMA32
    assert grows(m)[:2] == [("watermark", 0, None, True), ("rmqueue", 0, None, False)]
    # one allocation fell back (the rmqueue grow's False on the claimed node, then DMA32); the lock was
    # free when its grows took it, so none waited; the direct grow is no allocation
    assert (m.stats["pass_fallbacks"], m.stats["pass_waits"]) == (1, 0)
    m.check()
    return m


def test_v5_7_allocation_racing_the_claim_falls_back():
    claimed_pass_race()


def locked_pass_race(policy):
    """The allocation of race_allocation let go at pass:finish, whose callback returns only once the
    allocation's grow spins on node_size_lock (the point grow:spin): it waits for the pass by construction."""
    m = claim_machine(policy)
    seen, t, go = race_allocation(m, "pass:finish")
    spinning = threading.Event()
    m.at("grow:spin", lambda *a: spinning.set(), node=0)

    def finish(point, node, cpu):
        go.set()
        assert spinning.wait(10)

    m.at("pass:finish", finish, node=0)
    m.page_alloc_init_late(threads=False)
    t.join(10)
    assert not t.is_alive()
    return m, seen


@pytest.mark.parametrize("policy", ["v4.17", "v5.2"])
def test_allocation_racing_a_locked_pass_waits(policy):
    """4.17-5.6: the pass holds node_size_lock (IRQs off) for the whole pass. The allocation is let go at
    pass:finish (all pages initialised and freed, lock still held): its grow spins until the pass drops
    the lock, then returns True (snapshot changed, or the key already off) and the retry takes a Normal
    page that the pass freed: it waited for the pass instead of falling back."""
    m, seen = locked_pass_race(policy)
    assert 0x108000 <= seen["pfn"] < 0x110000  # Normal, from the deferred section
    g = grows(m)
    assert len(g) == 1 and g[0][1] == 0 and g[0][3] is True
    # its one grow spun on the pass's lock; the page came from the preferred zone: no fallback
    assert (m.stats["pass_waits"], m.stats["pass_fallbacks"]) == (1, 0)
    m.check()


def test_compare_shows_allocations_that_waited_or_fell_back():
    """pgdefer compare's columns for the two races above, derived from them: under v4.17 the one racing
    allocation waited for the pass (1) and took a Normal page (0 fell back); under v5.7 it did not wait
    (0) and fell back to DMA32 (1). An explicit grow or an allocation outside the passes counts in neither."""
    from pgdefer.report import compare_row, format_compare

    waited, _ = locked_pass_race("v4.17")
    fell_back = claimed_pass_race()
    rows = [compare_row(waited), compare_row(fell_back)]
    assert [(r["pass_waits"], r["pass_fallbacks"]) for r in rows] == [(1, 0), (0, 1)]
    lines = {line.split("  ")[0]: line.split() for line in format_compare(rows).splitlines()}
    assert lines["waited for a pass"][-2:] == ["1", "0"]
    assert lines["fell back during a pass"][-2:] == ["0", "1"]


# -- where the Memory: line is printed (docs/model.md §11.9) ------------------------------------------

@pytest.mark.parametrize("policy,late", [("v5.10", False), ("v6.4", False), ("v6.11", True), ("rework-2025", True)])
def test_memory_line_print_point(policy, late):
    """The acceptance machine: present = [0x100, 0xc0000) + [0x100000, 0x300000) = 786176 + 2097152 =
    2883328 pages; 20 reserved. Early (mm_core_init, up to 6.10): available = the free pages released
    by memblock_free_all = DMA + DMA32 (786176, none reserved) + Normal's early section 32768 = 818944.
    Late (6.11+, end of page_alloc_init_late): every free page, 2883328 - 20 = 2883308."""
    from pgdefer.report import mem_init_line

    m = acceptance_machine(policy)
    m.boot()
    assert m.memory_line == (None if late else {"at": "memblock_free_all", "available": 818944,
                                                "physpages": 2883328})
    m.page_alloc_init_late()
    at = "page_alloc_init_late" if late else "memblock_free_all"
    available = 2883308 if late else 818944
    assert m.memory_line == {"at": at, "available": available, "physpages": 2883328}
    line = mem_init_line(m)
    assert line["printed_at"] == at and line["available_pages"] == available
    assert line["available_kib"] == available * 4
    assert pgdefer.POLICY_FACTS[policy]["mem_init_print"] == ("late" if late else "early")


def test_boot_frees_head_rule_before_5_10():
    """Review D3: memblock_free_all releases Normal's early section [0x100000, 0x108000) as 32 order-10
    blocks in ascending order. Before 5.10 __free_one_page links a max-order block at the head, so the
    first order-0 allocation splits the last one freed, 0x107c00; 5.10+ (FPI_TO_TAIL) get 0x100000. The
    pre-5.10 rule is exported as boot_free = merge_likely (docs/model.md §11.7)."""
    first = {}
    for policy in ("v5.8", "v5.10"):
        m = Machine(Topology(memory=[Region(MiB, 3 * GiB), Region(4 * GiB, 12 * GiB)]), policy=policy)
        m.boot()
        first[policy] = m.alloc_pages(0, node=0)
    assert first == {"v5.8": 0x107c00, "v5.10": 0x100000}
    assert pgdefer.POLICY_FACTS["v5.8"]["boot_free"] == "merge_likely"
    assert pgdefer.POLICY_FACTS["v5.10"]["boot_free"] == "tail"


def test_v5_8_counts_memory_pfns_only():
    """The D1 layout under 5.8+ (memmap_init over memblock regions): memory pfns of Normal's first section
    count 0x4000; pfn 0x10c000 is count 32769 but not section aligned; the cut is at 0x110000."""
    m = Machine(Topology(memory=[Region(MiB, 3 * GiB), Region(4 * GiB, 4 * GiB + 64 * MiB),
                                 Region(4 * GiB + 128 * MiB, 8 * GiB)]), policy="v5.8")
    m.boot()
    assert m.first_deferred_pfn(0) == 0x110000
    m.check()


# -- auto: every real log maps to the generation its kernel is (issue 8 acceptance 5) -----------------

REAL_LOGS = [p for p in sorted(BOOTLOGS.glob("*.log")) + sorted(KERNEL_LAB.glob("*.log"))]
# What each kernel really is, from the release in its *.facts.json / *.manifest.json and, for deferral, the
# log read by hand (the release line and whether it deferred):
#  supermicro-h13dsg: 5.14.0-570 (RHEL 9.6), prints "node N deferred pages initialised": upstream base
#    5.14 = padata (5.8+) with FPI_TO_TAIL (5.10), before the 6.4 MAX_ORDER frees -> v5.10.
#  hp-compaq (6.1.1-arch), gce (5.4.0-gcp), x8sie (4.4.0): Memory: available = total - reserved, no
#    per-node line: built without CONFIG_DEFERRED_STRUCT_PAGE_INIT -> eager.
#  kernel-lab 6.1.0-50 (Debian 12): v5.10 (Memory: printed early, from mm_core_init);
#  kernel-lab 6.12.117 (Debian 12 backports): v6.11 (Memory: printed after the per-node lines).
EXPECTED_AUTO = {"supermicro-h13dsg-epyc9004-2node-1536g": "v5.10", "hp-compaq-8000-1node-4g": "eager",
                 "gce-vm-1node-32g": "eager", "supermicro-x8sie-pmem-1node-16g": "eager"}
LAB_KERNELS = {"vmlinuz-6.1.0-50-amd64": "v5.10", "vmlinuz-6.12.117+deb12-amd64": "v6.11"}
# CPUs per node of the boot logs; their facts give only nr_cpu_ids and the nodes, so these are read by hand
# from the log lines (and checked against the facts below):
#  gce-vm (facts: nr_cpu_ids 8, 1 node): eight "SRAT: PXM 0 -> APIC 0x00..0x07 -> Node 0" lines -> {0: 8}.
#  hp-compaq (nr_cpu_ids 4, 1 node): "smpboot: Allowing 4 CPUs, 2 hotplug CPUs"; prefill_possible_map prints
#    possible = 4 and possible - num_processors = 2, so 4 - 2 = 2 CPUs present, all on the one node -> {0: 2}.
#  x8sie (nr_cpu_ids 8, 1 node): "Allowing 8 CPUs, 4 hotplug CPUs" -> 8 - 4 = 4 present -> {0: 4}.
#  supermicro-h13dsg (nr_cpu_ids 384, 2 nodes): 192 "SRAT: PXM 0 -> APIC .. -> Node 0" and 192 "PXM 1 ->
#    Node 1" lines; smp_init announces #1..#95 and #192..#287 on node 0 (95 + 96, + the boot CPU 0 = 192) and
#    #96..#191, #288..#383 on node 1 (96 + 96 = 192), "smp: Brought up 2 nodes, 384 CPUs" -> {0: 192, 1: 192}.
BOOTLOG_CPUS = {"gce-vm-1node-32g": {0: 8}, "hp-compaq-8000-1node-4g": {0: 2},
                "supermicro-x8sie-pmem-1node-16g": {0: 4}, "supermicro-h13dsg-epyc9004-2node-1536g": {0: 192, 1: 192}}


def truth(log):
    """(generation, CPUs per node) of a real log, from its facts or the lab manifest (QEMU's -smp and -numa
    cpus= options: "4096:0-1 6144:2-3" is node 0 with CPUs 0-1 and node 1 with CPUs 2-3; one node alone holds
    every CPU of -smp)."""
    import json

    if log.stem in EXPECTED_AUTO:
        facts = json.loads(log.with_suffix(".facts.json").read_text())
        cpus = BOOTLOG_CPUS[log.stem]
        assert len(cpus) == facts["numa"]["nodes_with_memory"] and sum(cpus.values()) <= facts["numa"]["nr_cpu_ids"]
        return EXPECTED_AUTO[log.stem], cpus
    manifest = json.loads(log.with_suffix(".manifest.json").read_text())
    cpus = {}
    for node, part in enumerate(manifest["nodes_mib_cpus"].split()):
        _, _, cpu_range = part.partition(":")
        lo, _, hi = cpu_range.partition("-")
        cpus[node] = int(hi or lo) - int(lo) + 1 if cpu_range else manifest["smp"]
    return LAB_KERNELS[manifest["kernel"]], cpus


def _booted(argv, capsys):
    """policy and CPUs per node of `pgdefer boot` (stopped at memblock_free_all: the choice is made by then)."""
    import json

    from pgdefer.testing import run_cli

    code, out, err = run_cli(["boot", "-q", "--json", "--stop-after", "memblock_free_all", "--no-check",
                              "--no-host-check", *argv], capsys)
    assert code == 0, err
    d = json.loads(out)
    return d["policy"], {int(n): v["cpus"] for n, v in d["nodes"].items()}


@pytest.mark.parametrize("log", REAL_LOGS, ids=[p.stem for p in REAL_LOGS])
def test_auto_agrees_for_a_log_its_topology_file_and_machine(log, tmp_path, capsys):
    """Issue 8 acceptance 5 and issue 14 finding 6: the CLI on the log, the CLI on the topology file
    import-dmesg writes from it, and Machine(t, policy="auto") run the same generation with the same CPUs per
    node (padata's max_threads), and those are what the kernel really is and had."""
    from pgdefer.sources.files import tomllib  # tomli before Python 3.11
    from pgdefer.testing import run_cli

    need(log)
    expected = truth(log)
    from_log = _booted(["-t", f"dmesg:{log}"], capsys)
    path = tmp_path / f"{log.stem}.toml"
    code, _, err = run_cli(["topology", "import-dmesg", str(log), "-o", str(path)], capsys)
    assert code == 0, err
    table = tomllib.loads(path.read_text())["kernel"]
    assert table["version"] in log.read_text(errors="replace")
    assert {int(n): c for n, c in table["node_cpus"].items()} == expected[1]
    from_file = _booted(["-t", str(path)], capsys)
    m = Machine(Topology.from_dmesg(log), policy="auto", host_check=False)
    from_api = m.policy, {n: w["cpus"] for n, w in m.node_workers().items()}
    assert from_log == from_file == from_api == expected
    if pgdefer.POLICY_FACTS[m.policy]["padata"]:
        assert {n: w["max_threads"] for n, w in m.node_workers().items()} == {n: max(c, 1) for n, c in expected[1].items()}


def test_auto_print_point_is_where_each_log_prints_memory():
    """The print point of the chosen generation is where each log prints its Memory: line."""
    need(BOOTLOGS, KERNEL_LAB)  # a missing ../shared fails here, it never skips
    from pgdefer.cli import load_topology, resolve_policy

    assert len(REAL_LOGS) == 12
    for log in REAL_LOGS:
        policy = resolve_policy("auto", load_topology(f"dmesg:{log}"))[0]
        assert policy == truth(log)[0], log
        text = log.read_text(errors="replace")
        if policy in ("v5.10", "v6.11") and "deferred pages initialised" in text:
            late = text.index("Memory: ") > text.index("deferred pages initialised")
            assert pgdefer.POLICY_FACTS[policy]["mem_init_print"] == ("late" if late else "early"), log


# -- pgdefer compare: what separates the generations on one machine --------------------------------

def test_compare_shows_what_separates_generations(capsys, tmp_path):
    """The acceptance machine as a topology file, no workload: nothing grows, so the rows that differ are
    the print point (v6.11/rework-2025 print Memory: after the passes, so 'available' is every free page,
    2883308 pages = 11533232K, against 818944 pages = 3275776K at mem_init) and the padata chunks (5.8+
    only; one node with no CPUs listed: max_threads 1, one chunk per job). Derivation of the figures:
    test_memory_line_print_point."""
    import json

    from pgdefer.cli import main

    path = tmp_path / "acceptance.json"
    acceptance_machine("v4.17").topology.to_file(path)
    code = main(["compare", "-q", "--json", "--workload", "none", "--policies", "v4.17,v5.2,v6.11,rework-2025",
                 "-t", str(path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    pol = out["policies"]
    assert {p: r["memory_printed_at"] for p, r in pol.items()} == {
        "v4.17": "memblock_free_all", "v5.2": "memblock_free_all",
        "v6.11": "page_alloc_init_late", "rework-2025": "page_alloc_init_late"}
    assert {p: r["mem_init"]["available_kib"] for p, r in pol.items()} == {
        "v4.17": 3275776, "v5.2": 3275776, "v6.11": 11533232, "rework-2025": 11533232}
    assert pol["v4.17"]["padata_chunks"] == pol["v5.2"]["padata_chunks"] == 0
    assert pol["v6.11"]["padata_chunks"] > 0 and pol["rework-2025"]["padata_chunks"] > 0
    assert all(r["grow_steps"] == [] for r in pol.values())

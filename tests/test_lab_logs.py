"""The recorded kernel-lab boots (../shared/kernel-lab, read in place) against the model.

Expected figures are the kernel's own (the Memory: line, /proc/zoneinfo, the trace lines counted here with a
regex of this file), never this program's output. Issue 9 acceptance: 1 (Memory: X and Y), 2 (per-zone
present and spanned), 3 (the trace replays with the trace's counts), 5 (bad input, one line each).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from pgdefer.errors import DmesgError
from pgdefer.testing import run_cli as run

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT.parent / "shared" / "kernel-lab"
# The eight boots ../shared/kernel-lab/README.md describes: (name, Memory: printed late?, traced?)
LOGS = {
    "lab01-612-1node-1g": (True, True), "lab02-61-1node-3g": (False, True),
    "lab03-612-2node-2g2g": (True, True), "lab04-61-2node-1g3g": (False, True),
    "lab05-612-4node-1g": (True, True), "lab06-61-1node-5g-crash": (False, True),
    "lab07-612-1node-6g-mem": (True, False), "lab08-61-2node-10g": (False, False),
}


def log_path(name: str) -> Path:
    p = LAB / f"{name}.log"
    if not p.is_file():
        pytest.fail(f"{p} is missing: these tests read the recorded kernel-lab boots in ../shared/kernel-lab "
                    "(relative to the project root)")
    return p


@cache
def compared(name: str) -> dict:
    from pgdefer.lab.compare import compare_log

    return compare_log(log_path(name))




# -- the log sections ---------------------------------------------------------------------------------

def test_memblock_dump_and_replay_hold_the_kernel_image_and_crashkernel():
    from pgdefer.dmesg import parse_dmesg
    from pgdefer.lab.sections import parse_lab_log

    p = log_path("lab06-61-1node-5g-crash")
    lab, boot = parse_lab_log(p), parse_dmesg(p)
    res = lab.reserved_at_free_all()
    ks, ke = lab.kernel_image()                       # /proc/iomem 'Kernel code' .. 'Kernel bss'
    assert any(s <= ks and ke <= e for s, e in res)
    (cs, ce), = boot.crashkernel                      # the "crashkernel reserved:" line
    assert ce - cs == 128 << 20                       # crashkernel=128M on its command line
    assert any(s <= cs and ce <= e for s, e in res)
    assert lab.complete and set(lab.proc) == {"/proc/zoneinfo", "/proc/buddyinfo", "/proc/pagetypeinfo",
                                              "/proc/iomem", "/proc/meminfo"}
    # /proc/meminfo's MemTotal is totalram_pages in kB: the sum of managed pages of /proc/zoneinfo
    assert lab.meminfo()["MemTotal"] == 4 * sum(z.managed for z in lab.zoneinfo())


def test_mem_cuts_the_map_by_physical_address():
    from pgdefer.lab.importer import lab_topology

    topo = lab_topology(log_path("lab07-612-1node-6g-mem"))
    # mem=5G: memory ends at physical 5 GiB; with QEMU's RAM split around the 32-bit PCI hole that leaves
    # less than 5 GiB present (the 6 GiB guest has 3 GiB below the hole and 2 GiB above 4 GiB kept)
    assert max(r.end for r in topo.memory) == 5 << 30
    assert topo.present_pages * 4096 < 5 << 30


def test_marker_with_a_glued_trace_line_still_opens_the_dump():
    from pgdefer.lab.sections import parse_lab_log

    lab = parse_lab_log(log_path("lab04-61-2node-1g3g"))  # "=== pgdefer-lab: /proc/zoneinfo[ 9.57] mm_page_free..."
    assert len(lab.zoneinfo()) == 10                        # 2 nodes x DMA, DMA32, Normal, Movable, Device


# -- acceptance 2: per-zone present and spanned ------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOGS))
def test_zone_present_and_spanned_match_proc_zoneinfo(name):
    from pgdefer.lab.importer import lab_topology

    topo = lab_topology(log_path(name))
    real = {(z.node, z.zone): z for z in topo.lab.zoneinfo()}
    assert real, "no /proc/zoneinfo dump"
    model = {(z.node, z.name): z for z in topo.zones()}
    for key, z in real.items():
        m = model.get(key)
        if m is None:   # zoneinfo lists empty zones too; the model has no such zone
            assert z.present == 0 and z.spanned == 0, key
            continue
        assert (m.present, m.spanned) == (z.present, z.spanned), key
    assert set(model) <= set(real)


# -- acceptance 1: the Memory: line --------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOGS))
def test_memory_line_total_and_reserved_exact(name):
    c = compared(name)
    late, _ = LOGS[name]
    assert c["memory_printed"].startswith("late" if late else "early")
    assert c["memory"]["total_kib"]["diff"] == 0
    assert c["memory"]["reserved_kib"]["diff"] == 0


@pytest.mark.parametrize("name", sorted(n for n, (late, _) in LOGS.items() if not late))
def test_memory_line_available_exact_where_printed_early(name):
    c = compared(name)
    assert c["memory"]["available_kib"]["predicted"] == c["memory"]["available_kib"]["real"]
    assert c["unplaced_kib"] == 0


@pytest.mark.parametrize("name", sorted(n for n, (late, _) in LOGS.items() if late))
def test_memory_line_late_gap_is_reported_as_unplaced(name):
    c = compared(name)
    a = c["memory"]["available_kib"]
    assert c["unplaced_kib"] == a["real"] - a["predicted"]
    # the kernel has less free memory than the model: allocations the log does not show (before tracing)
    assert c["unplaced_kib"] < 0
    assert "trace" in c["unplaced_explained"]


def test_ring_buffer_rule_hand_derived():
    from pgdefer.lab.compare import ring_buffer_pages

    # trace_buf_size=1M with trace_event=: ceil(1048576 / (4096 - 16)) = 258 sub-buffers + 1 reader page,
    # plus the 1-byte snapshot buffer: 2 sub-buffers (the minimum) + 1 reader page
    assert ring_buffer_pages("console=ttyS0 trace_event=kmem:mm_page_alloc tp_printk trace_buf_size=1M") == 262
    # no trace_event=: the global buffer is not expanded, 1 byte -> 2 + 1, and the snapshot buffer 2 + 1
    assert ring_buffer_pages("console=ttyS0 trace_buf_size=1M") == 6
    # trace_event= without a size: TRACE_BUF_SIZE_DEFAULT 1441792 bytes -> ceil(1441792 / 4080) = 354 + 1 + 3
    assert ring_buffer_pages("trace_event=kmem:mm_page_alloc") == 358
    # the last trace_buf_size= wins (the kernel parses them in order); 2M -> ceil(2097152 / 4080) = 515
    assert ring_buffer_pages("trace_event=x trace_buf_size=1M trace_buf_size=2M") == 515 + 1 + 3


@pytest.mark.parametrize("name", sorted(n for n, (late, _) in LOGS.items() if late))
def test_late_memory_line_subtracts_what_the_log_states(name):
    """6.12: ftrace_init's pages as its own line prints them, and early_trace_init's buffers (the ring buffers
    from the command line by the rule above, the temp buffer and the saved cmdlines) come off the predicted X."""
    text = log_path(name).read_text(errors="replace")
    ftrace = int(re.search(r"ftrace: allocated (\d+) pages with \d+ groups", text).group(1))
    cmd = re.search(r"Command line: (.*)", text).group(1)
    ring = 262 if "trace_buf_size=1M" in cmd and "trace_event=" in cmd else 6
    # plus tracer_alloc_buffers' temp_buffer (a one-page ring buffer: 2 sub-buffers + the reader page = 3) and
    # the saved-cmdlines block: 4 * (PID_MAX_DEFAULT 32768 + 1) = 131076 bytes > 128 KiB -> order 6 = 64 pages
    ring += 3 + 64
    comp = {label.split(":")[0]: pages for label, pages, _ in compared(name)["components_pages"]}
    assert comp["ftrace_init"] == -ftrace and comp["early_trace_init"] == -ring
    # alloc_large_system_hash tables after kmem_cache_init ('SLUB:') and before the Memory: line that no trace
    # line shows: with a trace the plain 'vmalloc' ones (order-0 pages from alloc_pages_bulk, untraced: the
    # log has no 512 order-0 allocations after lab03's 2 MiB Inode-cache line), without one all of them
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if "SLUB: HWalign" in x)
    end = next(i for i, x in enumerate(lines) if "Memory: " in x)
    traced = LOGS[name][1]
    want = {}
    for x in lines[start:end]:
        m = re.search(r"\] (.+?) hash table entries: \d+ \(order: \d+, (\d+) bytes, ([a-z ]+)\)", x)
        if m and (m.group(3) == "vmalloc" or not traced):
            want[f"hash table {m.group(1)} ({m.group(3)}), not in the trace"] = -(int(m.group(2)) // 4096)
    got = {label: pages for label, pages, _ in compared(name)["components_pages"] if label.startswith("hash")}
    assert got == want
    if name == "lab03-612-2node-2g2g":
        assert got["hash table Inode-cache (vmalloc), not in the trace"] == -512    # 2097152 bytes


def test_a_kernel_without_ftrace_gets_neither_ftrace_nor_ring_buffer_pages(tmp_path):
    """Without the ftrace line (a kernel built without the function tracer) nothing is taken off for ftrace
    or the tracing ring buffer: X predicted is higher by exactly those two components of the real log."""
    from pgdefer.lab.compare import compare_log

    src = log_path("lab07-612-1node-6g-mem")
    p = tmp_path / "noftrace.log"
    p.write_text("".join(x for x in src.read_text(errors="replace").splitlines(True) if "ftrace: " not in x))
    c = compare_log(p)
    labels = [label for label, _, _ in c["components_pages"]]
    assert not any(x.startswith(("ftrace_init", "early_trace_init")) for x in labels)
    full = compared("lab07-612-1node-6g-mem")
    taken = -sum(n for label, n, _ in full["components_pages"] if label.startswith(("ftrace_init", "early_trace")))
    # 'ftrace: allocated 180 pages'; the unexpanded buffers' 2 + 1 and 2 + 1, the temp buffer's 2 + 1, saved cmdlines 64
    assert taken == 180 + 6 + 3 + 64
    assert c["memory"]["available_kib"]["predicted"] - full["memory"]["available_kib"]["predicted"] == taken * 4


def _with_lines_before_memory(name, extra, tmp_path, tag):
    """The recorded log with ``extra`` lines inserted just before its Memory: line (a test input, in tmp)."""
    lines = log_path(name).read_text(errors="replace").splitlines(True)
    i = next(i for i, x in enumerate(lines) if "Memory: " in x and "K available" in x)
    p = tmp_path / f"{tag}.log"
    p.write_text("".join(lines[:i] + extra + lines[i:]))
    return p


def test_buddy_flux_accounts_per_cpu_moves_on_a_late_line(tmp_path):
    """--trace-pcp logs: every page rmqueue_bulk moves to a per-CPU list leaves nr_free_pages(), every page
    free_pcppages_bulk drains comes back. One more order-3 refill must lower the predicted X by 8 pages
    (32K), one more order-1 drain raise it by 2 pages (8K); with the flux present the hash tables are not
    taken off separately (their bulk pages are in the refills)."""
    from pgdefer.lab.compare import compare_log

    refill = "[    1.6] mm_page_alloc_zone_locked: page=(____ptrval____) pfn=0x5000 order=3 migratetype=0 percpu_refill=1\n"
    drain = "[    1.6] mm_page_pcpu_drain: page=(____ptrval____) pfn=0x6000 order=1 migratetype=0\n"
    name = "lab03-612-2node-2g2g"
    a = compare_log(_with_lines_before_memory(name, [refill], tmp_path, "a"))
    b = compare_log(_with_lines_before_memory(name, [refill, refill], tmp_path, "b"))
    c = compare_log(_with_lines_before_memory(name, [refill, refill, drain], tmp_path, "c"))
    x = [r["memory"]["available_kib"]["predicted"] for r in (a, b, c)]
    assert x[0] - x[1] == 8 * 4 and x[2] - x[1] == 2 * 4
    assert a["buddy_flux"] == {"refill_pages": 8, "direct_pages": 0, "drain_pages": 0}
    assert not any(label.startswith("hash table") for label, _, _ in a["components_pages"])
    assert any(label.startswith("hash table") for label, _, _ in compared(name)["components_pages"])
    assert compared(name)["buddy_flux"] is None


def test_trace_pcp_layout_adds_the_two_events_to_one_trace_event_list():
    from pgdefer.lab.qemu import LabNode, Layout

    cmd = Layout((LabNode(1024, 1),), trace_pcp=True).kernel_cmdline()
    assert cmd.count("trace_event=") == 1 and "trace_buf_size=1M" in cmd and "tp_printk" in cmd
    events = cmd.split("trace_event=")[1].split()[0].split(",")
    assert events == ["kmem:mm_page_alloc", "kmem:mm_page_free", "kmem:mm_page_alloc_zone_locked",
                      "kmem:mm_page_pcpu_drain"]


# -- acceptance 2: managed pages -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOGS))
def test_managed_pages_after_boot_match_proc_zoneinfo(name):
    """managed after the run (memblock_free_all + the passes + the replayed free_reserved_area frees, or on an
    untraced log the 'Freeing ... memory' lines in the zone of the memory they free) against /proc/zoneinfo."""
    c = compared(name)
    for z in c["zones"]:
        assert z["managed"][0] == z["managed"][1], (z["node"], z["zone"])
    assert c["managed_unzoned"] == []
    traced = LOGS[name][1]
    if not traced:   # the counted frees are exactly the log's Freeing lines, in KiB / 4
        text = log_path(name).read_text(errors="replace")
        kib = sum(int(x) for x in re.findall(r"\] Freeing [^\n]*? memory: (\d+)K", text))
        assert sum(c["managed_counted_pages"].values()) * 4 == kib


def test_pcp_and_vmstat_facts_from_proc_zoneinfo():
    c = compared("lab01-612-1node-1g")
    # its /proc/zoneinfo: DMA 'count: 0', 'vm stats threshold: 2'; DMA32 'count: 2602', threshold 8; 1 CPU
    assert c["pcp"] == {"pcp_pages_at_dump": 2602, "vmstat_drift_bound_kib": (2 + 8) * 4}


# -- acceptance 3: the page trace replays --------------------------------------------------------------------

RE_A = re.compile(r"mm_page_alloc: page=\S+ pfn=0x[0-9a-f]+ order=(\d+) ")
RE_F = re.compile(r"mm_page_free: page=\S+ pfn=0x[0-9a-f]+ order=(\d+)")


@pytest.mark.parametrize("name", sorted(n for n, (_, traced) in LOGS.items() if traced))
def test_trace_replays_with_the_traces_counts(name):
    text = log_path(name).read_text(errors="replace")
    allocs = [int(o) for o in RE_A.findall(text)]
    frees = [int(o) for o in RE_F.findall(text)]
    assert allocs and frees
    r = compared(name)["trace"]["replayed"]
    assert r["allocs"] == len(allocs) and r["alloc_pages"] == sum(1 << o for o in allocs)
    assert r["frees"] + r["reserved_frees"] + r["deferred_frees"] + r["untraced_frees"] == len(frees)
    assert (r["free_pages"] + r["reserved_free_pages"] + r["deferred_free_pages"] + r["untraced_free_pages"]
            == sum(1 << o for o in frees))
    assert r["frees"] > 0 and r["reserved_frees"] > 0


def test_workload_from_trace_reads_order_migratetype_and_zone():
    from pgdefer.workload import Workload

    w = Workload.from_trace(log_path("lab01-612-1node-1g"))
    first = w.events[0]          # line 232: pfn=0x12e1 order=0 migratetype=0 gfp_flags=__GFP_NOWARN|...
    assert (first.kind, first.pfn, first.order, first.migratetype, first.zone) == ("alloc", 0x12E1, 0, 0, "Normal")
    movable = [e for e in w.events if e.kind == "alloc" and e.gfp and "GFP_HIGHUSER_MOVABLE" in e.gfp]
    assert movable and all(e.zone == "Movable" for e in movable)
    assert "allocs" in repr(w)


# -- acceptance 5: bad input ---------------------------------------------------------------------------------

def _lines(name, n=None):
    return log_path(name).read_text(errors="replace").splitlines()[:n]


def _one_line_error(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and err.startswith("pgdefer: error: ") and err.strip().count("\n") == 0, err
    return err


def test_log_cut_off_before_the_memory_map(tmp_path, capsys):
    p = tmp_path / "cut.log"
    p.write_text("\n".join(_lines("lab01-612-1node-1g", 60)) + "\n")
    err = _one_line_error(["lab", "compare", str(p)], capsys)
    assert "truncated" in err and str(p) in err


def test_log_cut_off_before_the_memory_line(tmp_path, capsys):
    lines = _lines("lab02-61-1node-3g")
    cut = next(i for i, x in enumerate(lines) if "Memory: " in x)
    p = tmp_path / "cut2.log"
    p.write_text("\n".join(lines[:cut]) + "\n")
    err = _one_line_error(["lab", "compare", str(p)], capsys)
    assert "no Memory: line" in err


def test_panic_before_memory_init(tmp_path, capsys):
    lines = _lines("lab02-61-1node-3g", 30)
    lines.append("[    0.000000] Kernel panic - not syncing: Out of memory in early setup")
    p = tmp_path / "panic.log"
    p.write_text("\n".join(lines) + "\n")
    err = _one_line_error(["lab", "compare", str(p)], capsys)
    assert "panicked before memory init (Kernel panic - not syncing: Out of memory in early setup)" in err


def test_trace_line_mangled_by_interleaved_output(tmp_path, capsys):
    lines = _lines("lab01-612-1node-1g")
    i = next(i for i, x in enumerate(lines) if "mm_page_alloc:" in x)
    lines[i] = lines[i][:lines[i].index("order=")] + "[    0.28] random: crng init done"
    p = tmp_path / "mangled.log"
    p.write_text("\n".join(lines) + "\n")
    err = _one_line_error(["lab", "compare", str(p)], capsys)
    assert f"{p}:{i + 1}: a page-trace line mangled by interleaved console output" in err


def test_missing_log_file(tmp_path, capsys):
    err = _one_line_error(["lab", "compare", str(tmp_path / "nope.log")], capsys)
    assert "no such kernel-lab log" in err
    with pytest.raises(DmesgError):
        from pgdefer.lab.importer import lab_topology
        lab_topology(tmp_path / "nope.log")


def test_pgdefer_boot_on_a_lab_log_adds_the_lab_comparison(capsys):
    import json

    code, out, err = run(["boot", "-t", f"dmesg:{log_path('lab02-61-1node-3g')}", "--json", "-q",
                          "--stop-after", "memblock_free_all", "--no-check"], capsys)
    assert code == 0, err
    lab = json.loads(out)["lab"]
    # the kernel printed "Memory: 260860K/3145208K available" (6.1: early)
    assert lab["memory"]["available_kib"] == {"real": 260860, "predicted": 260860, "diff": 0}
    assert lab["memory"]["total_kib"]["real"] == 3145208 and lab["memory"]["total_kib"]["diff"] == 0

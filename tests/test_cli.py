"""The pgdefer command line: boot (with boot logs), compare, topology, user errors, help, progress.

Expected figures come from the boot logs' hand-checked ``*.facts.json`` files or from arithmetic written in
comments, never from this program's own output. The boot logs stay in ``../shared/bootlogs`` (or
``$PGDEFER_BOOTLOGS``); they are read, never copied.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pgdefer
from pgdefer import Topology, _core, presets
from pgdefer.cli import Progress
from pgdefer.testing import run_cli as run
from shared_data import BOOTLOGS, files, needs

ROOT = Path(__file__).resolve().parents[1]
LOGS = files(BOOTLOGS, "*.log")  # a missing directory fails the tests that need it (never a skip)
needs_logs = needs(*LOGS)

# A log whose machine has more present pages than this is only booted up to memblock_free_all (the Memory:
# line) in these tests, so the file stays fast: 16M pages = 64 GiB.
BIG_PAGES = 16 << 20


def facts_of(log: Path) -> dict:
    return json.loads(log.with_name(log.name[:-len(".log")] + ".facts.json").read_text())


# --------------------------------------------------------------------------------------------------
# boot with real boot logs
# --------------------------------------------------------------------------------------------------

def _table_row(out, label):
    """The numbers of one row of the 'compared with the boot log' Memory: table."""
    m = re.search(rf"^  {label}\s+(\d+)K\s+(\d+)K\s+([+-]\d+)K(?: \(([+-][\d.]+)%\))?$", out, re.M)
    assert m, f"no '{label}' row in:\n{out}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), (float(m.group(4)) if m.group(4) else None)


@needs_logs
@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_boot_dmesg_prints_real_beside_predicted(log, capsys):
    facts = facts_of(log)
    argv = ["boot", "-q", "--topology", f"dmesg:{log}"]
    if facts["total_present_pages"] > BIG_PAGES:
        argv += ["--stop-after", "memblock_free_all", "--no-check"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "compared with the boot log" in out
    real_avail, pred_avail, diff_avail, pct_avail = _table_row(out, "available")
    real_total, pred_total, diff_total, _ = _table_row(out, "total")
    # the real figures printed are the log's, as read by hand into the facts file
    assert real_avail == facts["memory_line"]["available_kib"]
    assert real_total == facts["memory_line"]["total_kib"]
    # predicted total = present pages x 4 KiB (facts: total_kib_div4_equals_total_present_pages)
    assert pred_total == facts["total_present_pages"] * 4
    # the differences are predicted - real, in KiB and in % of the real figure
    assert diff_avail == pred_avail - real_avail and diff_total == pred_total - real_total == 0
    assert pct_avail == pytest.approx(100 * (pred_avail - real_avail) / real_avail, abs=0.006)
    # the simulated dmesg line carries the same predicted figures
    assert f"Memory: {pred_avail}K/{pred_total}K available" in out
    # unplaced reserved memory reported by the import is shown
    assert re.search(r"unplaced reserved memory: \d+K|over-placed reserved memory", out)
    # per-node deferred-init lines of the log: real ms printed beside the modelled ones
    if facts["deferred_init"]:
        for d in facts["deferred_init"]["per_node"]:
            assert re.search(rf"^  node {d['node']}\s+{d['ms']} ms\s+", out, re.M), out
    # auto: the log's kernel decides, unless its Memory: line shows nothing was deferred
    # (available == total - reserved: 32796916 = 33550704 - 753788 (gce), 3912404 ~ 4087036 - 174372 - 260 (hp),
    # 8125048 = 8379572 - 254524 (x8sie)): those kernels ran without CONFIG_DEFERRED_STRUCT_PAGE_INIT.
    # The one log with deferral is the H13DSG's RHEL 9.6 5.14 kernel: a padata kernel with FPI_TO_TAIL (v5.10).
    expected = "v5.10" if facts["deferred_init"] else "eager"
    assert out.startswith(f"pgdefer: policy {expected} ")


@needs_logs
def test_boot_dmesg_json_has_the_comparison(capsys):
    log = min(LOGS, key=lambda p: facts_of(p)["total_present_pages"])
    facts = facts_of(log)
    code, out, _ = run(["boot", "-q", "-t", f"dmesg:{log}", "--json", "--workload", "none"], capsys)
    assert code == 0
    d = json.loads(out)
    mem = d["log"]["memory"]
    assert mem["available_kib"]["real"] == facts["memory_line"]["available_kib"]
    assert mem["total_kib"]["real"] == facts["memory_line"]["total_kib"]
    assert mem["available_kib"]["diff"] == mem["available_kib"]["predicted"] - mem["available_kib"]["real"]
    assert d["mem_init"]["available_kib"] == mem["available_kib"]["predicted"]
    assert d["policy"] in pgdefer.POLICIES and d["policy_requested"] == "auto"
    assert d["check"] == []


@needs_logs
def test_boot_dmesg_explicit_policy_is_kept(capsys):
    log = min(LOGS, key=lambda p: facts_of(p)["total_present_pages"])
    code, out, _ = run(["boot", "-q", "-t", f"dmesg:{log}", "-p", "v4.2", "--stop-after", "memblock_free_all"],
                       capsys)
    assert code == 0
    assert out.startswith("pgdefer: policy v4.2 ")


@pytest.mark.parametrize("policy", _core.POLICIES)
def test_boot_names_what_each_generation_changes(policy, capsys):
    # the first line says the policy and, in parentheses, its title from the core's policy table; a generation
    # without one printed "pgdefer: policy v5.8 ()"
    code, out, err = run(["boot", "-q", "-p", policy, "--stop-after", "memblock_free_all"], capsys)
    assert code == 0, err
    m = re.match(rf"pgdefer: policy {re.escape(policy)} \((.+)\)\n", out)
    assert m, out.splitlines()[0]
    assert m.group(1) == _core.POLICY_FACTS[policy]["title"]


def test_policy_titles_are_one_per_generation():
    titles = [_core.POLICY_FACTS[p]["title"] for p in _core.POLICIES]
    assert len(set(titles)) == len(titles) and all(titles)


def test_boot_default_text(capsys):
    code, out, err = run(["boot", "-q"], capsys)
    assert code == 0, err
    assert out.startswith("pgdefer: policy v4.17 ")   # the default preset was measured on a 6.8 kernel
    assert re.search(r"^Memory: \d+K/\d+K available", out, re.M)
    assert "deferred_grow_zone: node" in out
    assert "check(): all invariants hold" in out
    # the Memory: line is printed where mem_init prints it: before the grows and the per-node passes
    assert out.index("Memory: ") < out.index("deferred_grow_zone") < out.index("static key deferred_pages disabled")


def test_boot_stop_after_memblock_free_all_leaves_pages_uninitialised(capsys):
    code, out, _ = run(["boot", "-q", "--json", "--stop-after", "memblock_free_all"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["phase"] == "booted" and d["stats"]["allocs"] == 0 and d["stats"]["deferred_pass_pages"] == 0
    # at mem_init the free pages are exactly those released by memblock_free_all
    assert d["mem_init"]["available_pages"] == d["stats"]["memblock_released"]
    assert d["mem_init"]["deferred_pages"] > 0


# --------------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------------

def test_compare_json_all_policies(capsys):
    code, out, err = run(["compare", "-q", "--json"], capsys)
    assert code == 0, err
    d = json.loads(out)
    pol = d["policies"]
    assert list(pol) == list(pgdefer.POLICIES)
    assert list(pol)[:6] == ["eager", "v4.2", "v4.6", "v4.13", "posting-v2", "v4.17"]
    # eager: nothing deferred, so nothing to grow and nothing for the per-node passes
    assert pol["eager"]["deferred_at_mem_init_pages"] == 0
    assert pol["eager"]["grows"] == 0 and pol["eager"]["pass_pages"] == 0
    # v4.2, v4.6, v4.13: no on-demand growth
    for p in ("v4.2", "v4.6", "v4.13"):
        assert pol[p]["grows"] == 0 and pol[p]["grown_pages"] == 0
    # v4.17 on the default machine with the default workload: the one-section prefix is not enough
    assert pol["v4.17"]["grows"] > 0 and pol["v4.17"]["grown_pages"] > 0
    for name, r in pol.items():
        assert r["check"] == [], name
        assert r["alloc_failures"] == 0
        assert r["mem_init"]["total_kib"] == pol["eager"]["mem_init"]["total_kib"]
    # eager initialises every memory pfn early
    assert pol["eager"]["early_pages"] == presets.get("default").present_pages
    # with nothing deferred, the Memory: line shows total - reserved as available
    e = pol["eager"]["mem_init"]
    assert e["available_kib"] == e["total_kib"] - e["reserved_kib"]
    for r in pol.values():
        for p in r["passes"].values():
            assert set(p) == {"pages", "modelled_ms", "host_ms"}


def test_compare_subset_and_text_table(capsys):
    code, out, _ = run(["compare", "-q", "--policies", "v4.17,v4.2", "--workload", "none"], capsys)
    assert code == 0
    header = out.splitlines()[2].split()
    assert header == ["v4.17", "v4.2"]
    for label in ("early pages", "grows (successful)", "grown pages", "node 0 pass pages", "allocation failures",
                  "Memory: available", "invariant check"):
        assert re.search(rf"^{re.escape(label)}\s", out, re.M), label
    code, out, _ = run(["compare", "-q", "--policies", "v4.2", "--json", "--workload", "none"], capsys)
    assert list(json.loads(out)["policies"]) == ["v4.2"]


# --------------------------------------------------------------------------------------------------
# topology
# --------------------------------------------------------------------------------------------------

def test_topology_list(capsys):
    code, out, _ = run(["topology", "list"], capsys)
    assert code == 0
    for name in presets.names():
        assert re.search(rf"^{re.escape(name)}\s", out, re.M)
    code, out, _ = run(["topology", "list", "--json"], capsys)
    rows = json.loads(out)
    assert [r["name"] for r in rows] == presets.names()
    for r in rows:
        topo = presets.get(r["name"])
        assert r["nodes"] == len(topo.nodes) and r["memory_bytes"] == topo.memory_bytes
        assert r["description"] and r["source"]


def test_topology_show_default(capsys):
    code, out, _ = run(["topology", "show", "default", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    topo = presets.get("default")
    assert [n["node"] for n in d["nodes"]] == topo.nodes
    zones = [(n["node"], z["name"], z["spanned_pages"], z["present_pages"]) for n in d["nodes"] for z in n["zones"]]
    assert zones == [(z.node, z.name, z.spanned, z.present) for z in topo.zones()]
    # host memory to simulate = struct pages of the present sections x the core's BYTES_PER_PAGE
    assert d["memmap"]["host_bytes"] == topo.memmap_pages * _core.BYTES_PER_PAGE
    assert len(d["reserved"]) == len(topo.reserved)
    code, out, _ = run(["topology", "show", "default"], capsys)
    assert "deferred zone" in out and "host memory" in out and "reserved:" in out


def test_topology_show_toml_round_trips(capsys):
    from pgdefer.topofile import loads

    code, out, _ = run(["topology", "show", "default", "--toml"], capsys)
    assert code == 0
    assert loads(out, ".toml") == presets.get("default")


@needs_logs
def test_topology_show_dmesg_reports_unplaced(capsys):
    log = LOGS[0]
    code, out, _ = run(["topology", "show", f"dmesg:{log}"], capsys)
    assert code == 0
    assert "unplaced" in out and "Memory:" in out
    code, out, _ = run(["topology", "show", f"dmesg:{log}", "--json"], capsys)
    d = json.loads(out)
    assert d["log"]["memory_line"]["available_kib"] == facts_of(log)["memory_line"]["available_kib"]


@needs_logs
@pytest.mark.parametrize("suffix", [".toml", ".json"])
@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_import_dmesg_round_trip(log, suffix, tmp_path, capsys):
    out_file = tmp_path / f"machine{suffix}"
    code, _, err = run(["topology", "import-dmesg", str(log), "-o", str(out_file)], capsys)
    assert code == 0, err
    assert Topology.from_file(out_file) == Topology.from_dmesg(log)


# --------------------------------------------------------------------------------------------------
# user errors: one line, non-zero status, no traceback
# --------------------------------------------------------------------------------------------------

def _truncated_log(tmp_path):
    """A real log cut before 'Early memory node ranges' (or a synthetic start of a boot without logs)."""
    src = LOGS[0].read_text(errors="replace") if LOGS else (
        "[    0.000000] Linux version 6.1.0 (gcc)\n[    0.000000] BIOS-provided physical RAM map:\n"
        "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable\n")
    kept = []
    for line in src.splitlines(keepends=True):
        if "Early memory node ranges" in line:
            break
        kept.append(line)
    p = tmp_path / "truncated.log"
    p.write_text("".join(kept))
    return p


ERROR_CASES = {
    "missing topology file": lambda d: ["boot", "-t", str(d / "nope.toml")],
    "missing boot log": lambda d: ["boot", "-t", f"dmesg:{d / 'nope.log'}"],
    "missing log for import": lambda d: ["topology", "import-dmesg", str(d / "nope.log"), "-o", str(d / "x.toml")],
    "not a boot log": lambda d: ["boot", "-t", f"dmesg:{d / 'notes.log'}"],
    "binary file as log": lambda d: ["topology", "show", f"dmesg:{d / 'binary.log'}"],
    "truncated log": lambda d: ["boot", "-t", f"dmesg:{d / 'truncated.log'}"],
    "unknown preset": lambda d: ["boot", "-t", "no-such-machine"],
    "unknown preset (show)": lambda d: ["topology", "show", "no-such-machine"],
    "bad TOML": lambda d: ["boot", "-t", str(d / "bad.toml")],
    "bad JSON": lambda d: ["topology", "show", str(d / "bad.json")],
    "unknown policy": lambda d: ["boot", "--policy", "v9.9"],
    "unknown policy in --policies": lambda d: ["compare", "--policies", "eager,v9.9"],
    "empty dmesg:": lambda d: ["boot", "-t", "dmesg:"],
    "log without dmesg: prefix": lambda d: ["boot", "-t", str(d / "notes.log")],
    "bad --plot suffix": lambda d: ["boot", "--plot", str(d / "out.txt")],
    "--plot into a missing directory": lambda d: ["boot", "--plot", str(d / "no" / "dir" / "out.png")],
    "bad import output suffix": lambda d: ["topology", "import-dmesg", str(d / "notes.log"), "-o", str(d / "x.txt")],
    "bad --pass-threads": lambda d: ["boot", "--pass-threads", "0"],
    "unknown command": lambda d: ["frobnicate"],
    "unknown option": lambda d: ["boot", "--frobnicate"],
}


@pytest.fixture
def error_dir(tmp_path):
    (tmp_path / "notes.log").write_text("hello world\nthis is not a kernel log\n")
    (tmp_path / "binary.log").write_bytes(b"\x7fELF\x00\x00\x00binary")
    (tmp_path / "bad.toml").write_text("name = 'x'\nmemory = [\n")
    (tmp_path / "bad.json").write_text('{"memory": [}')
    _truncated_log(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_user_errors_are_one_line(case, error_dir, capsys):
    code, out, err = run(ERROR_CASES[case](error_dir), capsys)
    assert code not in (0, None), (case, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, (case, err)
    assert lines[0].startswith("pgdefer: error: "), (case, err)
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["boot", "-t", "no-such-machine"], ["boot", "-p", "nope"],
                                  ["topology", "show", "dmesg:/nonexistent/boot.log"]])
def test_user_errors_through_the_real_entry_point(argv):
    r = subprocess.run([sys.executable, "-m", "pgdefer", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("pgdefer: error: "), r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_preset_names_the_presets(capsys):
    _, _, err = run(["boot", "-t", "no-such-machine"], capsys)
    assert "default" in err


# --------------------------------------------------------------------------------------------------
# help and progress
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["boot"], ["compare"], ["topology"], ["topology", "list"],
                                  ["topology", "show"], ["topology", "import-dmesg"]])
def test_help_has_examples(argv, capsys):
    code, out, _ = run([*argv, "--help"], capsys)
    assert code == 0
    assert "example" in out


def test_no_command_prints_help(capsys):
    code, out, _ = run([], capsys)
    assert code == 2 and "boot" in out and "compare" in out and "topology" in out


class _FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_only_on_a_terminal_and_cleared():
    tty = _FakeTTY()
    with Progress(True, stream=tty, delay=0) as p:
        p.step("page_alloc_init_late")
    text = tty.getvalue()
    assert "page_alloc_init_late..." in text
    assert text.endswith("\r\x1b[K")            # the line is cleared before output follows
    pipe = io.StringIO()
    with Progress(True, stream=pipe, delay=0) as p:
        p.step("page_alloc_init_late")
    assert pipe.getvalue() == ""
    quick = _FakeTTY()
    with Progress(True, stream=quick, delay=3600) as p:  # a run shorter than the delay shows nothing
        p.step("boot")
    assert quick.getvalue() == ""


def test_boot_preset_shows_its_published_measurements(capsys):
    code, out, _ = run(["boot", "-q", "-t", "vm-16g", "--workload", "none", "--no-check"], capsys)
    assert code == 0
    assert "published measurements of this machine" in out
    for anchor in presets.info("vm-16g").published:
        assert re.search(rf"^  {anchor}: ", out, re.M)
    code, out, _ = run(["boot", "-q", "-t", "vm-16g", "--workload", "none", "--no-check", "--json"], capsys)
    d = json.loads(out)
    assert d["preset"] == "vm-16g" and d["published"]["published"] == presets.info("vm-16g").published


def test_pass_threads_change_the_modelled_pass_only(capsys):
    from pgdefer.costmodel import fitted_constants

    base = ["boot", "-q", "--json", "--workload", "none", "--no-check"]
    _, out1, _ = run(base + ["--pass-threads", "1"], capsys)
    _, out4, _ = run(base + ["--pass-threads", "4"], capsys)
    d1, d4 = json.loads(out1), json.loads(out4)
    n1, n4 = d1["nodes"], d4["nodes"]
    assert d1["cost_model"]["machine_class"] == "generic-x86_64"
    for nid in n1:
        pages = n1[nid]["deferred_init_pages"]
        assert pages == n4[nid]["deferred_init_pages"] > 0
        # docs/costmodel.md, one thread, worked from the formula for the default preset under v4.17 (auto: the
        # preset's kernel) and the constants of costdata/fitted.json (generic-x86_64 has no anchor: the fleet's
        # default rate): v4.17 initialises a whole range then frees it (two-pass: the free touches each struct
        # page again, cold), pays the 4.15-5.1 per-page extras and frees pageblock by pageblock (about
        # pages / 512 calls). Per page: (1 + cold_touch) x 64 B / rate + pfn_check_ns + free_call_ns / 512; plus
        # pass_overhead_ms per pass.
        fit = fitted_constants()
        c, rate = fit["constants"], fit["default_thread_gbps"]
        ns = (1 + c["cold_touch"]) * 64 / rate + c["pfn_check_ns"] + c["free_call_ns"] / 512
        assert d1["policy"] == "v4.17"
        assert n1[nid]["deferred_init_modelled_ms"] == pytest.approx(pages * ns / 1e6 + c["pass_overhead_ms"],
                                                                     rel=2e-3)
        plan1, plan4 = n1[nid]["deferred_init_plan"], n4[nid]["deferred_init_plan"]
        assert plan1["workers"] == 1
        # spec §9.4: one thread per node pass before 5.8 (no padata), whatever --pass-threads says
        assert plan4 == plan1
        assert "no padata" in d4["cost_model"]["label"]

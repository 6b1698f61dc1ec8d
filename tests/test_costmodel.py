"""The cost model's mechanics (docs/costmodel.md), not its fitted numbers: every expectation is derived from the
kernel's per-page work (spec §5.9, §9.4) or from an inequality that must hold for any constants."""

from __future__ import annotations

import json

import pytest

from pgdefer import Topology, calibration
from pgdefer.costmodel import (
    CostModelError,
    Mechanics,
    buddy_frees,
    class_for,
    class_for_cpu,
    class_from_log_text,
    cost_model,
    fitted_constants,
    machine_class,
    machine_class_names,
    machine_passes,
    node_pass_ranges,
    padata_plan,
)
from pgdefer.machine import Machine

PPS = 32768
EPYC_LOG = "../shared/bootlogs/supermicro-h13dsg-epyc9004-2node-1536g.log"

# the generations by what they do per page (spec §9.4)
V4_17 = Mechanics(generation="v4.17")                                          # two-pass, cold, one thread
V5_2 = Mechanics(generation="v5.2", hot_second_touch=True, pfn_checks=False)   # MAX_ORDER init+free, one thread
V5_8 = Mechanics(generation="v5.8", hot_second_touch=True, pfn_checks=False, padata=True, irqs_off=False)
V6_4 = Mechanics(generation="v6.4", hot_second_touch=True, pfn_checks=False, padata=True, irqs_off=False,
                 free_order="max_order")


def all_classes():
    return [cost_model(n) for n in machine_class_names()]


@pytest.mark.parametrize("cost", all_classes(), ids=lambda c: c.name)
def test_more_threads_never_slower_and_never_beyond_the_bandwidth_cap(cost):
    ranges = [(0x100000, 0x100000 + 400 * PPS)]
    pages = 400 * PPS
    times = [cost.pass_cost(ranges, n, V5_8).ms for n in (1, 2, 3, 4, 8, 16, 32, 52, 64, 128, 192, 256)]
    assert all(b <= a + 1e-9 for a, b in zip(times, times[1:]))
    # the ceiling: the node's share of the socket's bandwidth, DRAM bytes = one struct page per page (hot touch)
    m, c = cost.machine_class, cost.constants
    floor_ms = pages * m.struct_page_bytes / (c["bw_efficiency"] * m.dram_gbps) / 1e6 + c["pass_overhead_ms"]
    assert min(times) >= floor_ms * (1 - 1e-9)
    # two nodes on one socket share its bandwidth: never faster than one node alone
    assert cost.pass_cost(ranges, 256, V5_8, nodes_sharing=2).ms >= times[-1]


@pytest.mark.parametrize("cost", all_classes(), ids=lambda c: c.name)
def test_a_5_2_pass_is_cheaper_per_page_than_a_4_17_pass(cost):
    ranges = [(0x100000, 0x100000 + 64 * PPS)]
    assert cost.pass_cost(ranges, 1, V5_2).ms < cost.pass_cost(ranges, 1, V4_17).ms
    assert cost.grow_ms(PPS, V5_2) < cost.grow_ms(PPS, V4_17)


def test_one_section_free_range_uses_one_worker():
    cost = cost_model("epyc-zen4")
    pc = cost.pass_cost([(0x100000, 0x100000 + PPS)], 192, V5_8)
    assert (pc.workers, pc.jobs, pc.chunks) == (1, 1, 1)
    # spec §5.9: nworks = min(max(size // min_chunk, 1), max_threads) = min(1, 192) = 1 -> thread_fn inline
    assert padata_plan(PPS, PPS, 192) == (1, PPS)


def test_padata_plan_follows_the_formula():
    # 100 sections, 8 threads: nworks = min(100, 8) = 8; chunk = max(100*PPS // (8*4), PPS) = 102400 pages,
    # rounded up to a section: 4 * PPS = 131072; 100 sections / 4 per chunk = 25 chunks
    assert padata_plan(100 * PPS, PPS, 8) == (8, 4 * PPS)
    pc = cost_model("skylake-sp").pass_cost([(0, 100 * PPS)], 8, V5_8)
    assert (pc.workers, pc.chunks) == (8, 25)
    # 3 sections, 52 threads: nworks = 3 (small free ranges get fewer workers), chunk = max(0, PPS) = PPS
    assert padata_plan(3 * PPS, PPS, 52) == (3, PPS)
    # a free range's job ends rounded up to a section (spec §5.9): two ranges in one section make one job
    # for the first and the rest of the second from the next section on
    pc = cost_model("skylake-sp").pass_cost([(0, PPS // 2), (PPS // 2 + 10, 5 * PPS)], 8, V5_8)
    assert pc.jobs == 2


def test_pass_threads_change_structure_only_with_padata():
    cost = cost_model("skylake-sp")
    ranges = [(0, 200 * PPS)]
    assert cost.pass_cost(ranges, 16, V5_2) == cost.pass_cost(ranges, 1, V5_2)
    assert cost.pass_cost(ranges, 16, V5_8).workers == 16 and cost.pass_cost(ranges, 16, V5_8).ms < \
        cost.pass_cost(ranges, 1, V5_8).ms


def test_free_calls_per_order():
    cost = cost_model("skylake-sp")
    aligned = [(0, 64 * PPS)]
    # 6.4+: one free per MAX_ORDER block (1024 pages) instead of per pageblock (512): fewer calls, never slower
    assert buddy_frees(aligned, V6_4) * 2 == buddy_frees(aligned, V5_8) == 64 * PPS // 512
    assert cost.pass_cost(aligned, 1, V6_4).ms < cost.pass_cost(aligned, 1, V5_8).ms
    # partial blocks are freed page by page (order 0): [10, 1024 + 10) = 1014 + 10 order-0 frees (6.4 rule)
    assert buddy_frees([(10, 1034)], V6_4) == 1024


def test_switches_and_overrides():
    base = cost_model("skylake-sp")
    r = [(0, 64 * PPS)]
    assert base.with_overrides(["kasan=1"]).pass_cost(r, 1, V5_2).ms > base.pass_cost(r, 1, V5_2).ms
    assert base.with_overrides(["init_on_free=1"]).pass_cost(r, 1, V5_2).ms > base.pass_cost(r, 1, V5_2).ms
    big = base.with_overrides(["struct_page_bytes=80"])
    assert big.machine_class.struct_page_bytes == 80
    assert big.pass_cost(r, 1, V4_17).ms > base.pass_cost(r, 1, V4_17).ms
    assert base.with_overrides(["thread_gbps=8"]).machine_class.thread_gbps == 8
    for bad in (["struct_page_bytes=100"], ["nosuch=1"], ["thread_gbps=x"], ["kasan=2"], ["hot_touch"],
                ["thread_gbps=0"]):
        with pytest.raises(CostModelError):
            base.with_overrides(bad)
    with pytest.raises(CostModelError, match="unknown machine class"):
        cost_model("pdp-11")
    assert "skylake-sp" in repr(base) and "GB/s" in repr(base)


def test_irqs_off_passes_have_an_as_printed_figure():
    cost = cost_model("generic-x86_64")
    assert cost.pass_cost([(0, PPS * 8)], 1, V4_17).printed_ms == 1.0      # 4.17-5.6: frozen jiffies (M11)
    assert cost.pass_cost([(0, PPS * 8)], 1, V5_8).printed_ms is None
    # a core without the pass_lock fact: the v4.17 pass (IRQs off) is assumed and says so
    m = Mechanics.from_policy("v4.17")
    assert m.irqs_off and not m.hot_second_touch


def test_machine_class_from_cpuinfo(tmp_path):
    from pgdefer.costmodel import class_from_cpuinfo

    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\nflags\t\t: fpu vme sse2\n")
    assert class_from_cpuinfo(f)[0] == "epyc-zen4"
    f.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU E5-2699 v3 @ 2.30GHz\nflags\t: fpu hypervisor\n")
    assert class_from_cpuinfo(f)[0] == "haswell-ep-kvm"
    assert class_from_cpuinfo(tmp_path / "missing")[0] == "generic-x86_64"


def test_machine_class_choice():
    assert class_for_cpu("AMD EPYC 9654 96-Core Processor") == "epyc-zen4"
    assert class_for_cpu("Intel(R) Xeon(R) CPU E5-2699 v3 @ 2.30GHz") == "haswell-ep"
    assert class_for_cpu("Intel(R) Xeon(R) CPU E5-2699 v3 @ 2.30GHz", virtualised=True) == "haswell-ep-kvm"
    assert class_for_cpu("Intel(R) Xeon(R) Platinum 8167M CPU @ 2.00GHz") == "skylake-sp"
    assert class_for_cpu("VIA Nano") is None
    text = "[    0.0] Hypervisor detected: KVM\n[    0.3] smpboot: CPU0: VIA Nano (family: 0x6)\n"
    assert class_from_log_text(text)[0] == "generic-x86_64-kvm"
    assert class_for(Topology.from_dmesg(EPYC_LOG))[0] == "epyc-zen4"
    assert class_for(None, "p3-skylake-2x384g")[0] == "skylake-sp"
    assert class_for(None, "m12-vm-4t")[0] == "generic-x86_64-kvm"
    for name in machine_class_names():
        mc = machine_class(name)
        assert mc.thread_gbps > 0 and mc.dram_gbps > 0


def test_every_anchor_has_its_source_and_a_usable_class():
    names = set(machine_class_names())
    for a in calibration.anchors():
        assert a["source"] and a["machine_class"] in names and a["pages"] > 0 and a["published_ms"] > 0
        assert a["fit"] or a["note"], a["id"]        # an anchor left out of the fit says why


def test_epyc_9004_log_per_node_deferred_init_within_25_percent():
    """Acceptance 2 of issue 11: predicted from the machine class (EPYC 9004: DRAM peak, core-to-core latency)
    and the fitted constants, none of which was fitted on this log; compared with the log's own printed times."""
    topo = Topology.from_dmesg(EPYC_LOG)
    boot = topo.source
    assert boot.version[:2] == (5, 14)
    m = Machine(topo, policy="v4.17")
    m.boot()   # up to memblock_free_all: the pass's free ranges are known, the page array stays lazy
    cost = cost_model(class_for(topo)[0])
    # 5.14 is the 5.8-6.3 form (spec §9.4): padata over the node's CPUs, MAX_ORDER init+free, pageblock frees.
    # When the core exports a padata generation for this kernel, use its facts instead of this spelled-out one.
    facts = Mechanics.from_policy(boot.policy)
    mech = facts if facts.padata else V5_8
    threads = min(boot.percpu["groups"].values())              # max_threads = CPUs of the node (x86)
    assert threads == 192
    printed = {d.node: d.ms for d in boot.deferred_init}
    assert printed == {0: 178, 1: 172}
    for node, real in printed.items():
        pc = cost.pass_cost(node_pass_ranges(m, node), threads, mech, 1)
        assert abs(pc.ms / real - 1) <= 0.25, (node, pc.ms, real)
        assert pc.workers == 192


def test_machine_passes_predict_before_the_pass():
    topo = Topology([(0x100000, 0x100000000, 0), (0x100000000, 0x140000000, 0), (0x140000000, 0x180000000, 1)],
                    reserved=[(0x1000000, 0x3000000), (0x120000000, 0x120400000)])
    m = Machine(topo, policy="v4.17")
    m.boot()
    plans = machine_passes(m, cost_model("generic-x86_64"), 1)
    assert set(plans) == {0, 1}
    for n, pc in plans.items():
        assert pc.pages == sum(e - s for s, e in node_pass_ranges(m, n)) > 0
    m.page_alloc_init_late()
    ev = {e["node"]: e["pages"] for e in m.events if e["kind"] == "deferred_init"}
    assert ev == {n: pc.pages for n, pc in plans.items()}


def test_log_comparison_predicts_passes_that_were_not_simulated():
    from pgdefer.report import log_comparison

    topo = Topology.from_dmesg(EPYC_LOG)
    m = Machine(topo, policy="v4.17")
    m.boot()
    cmp = log_comparison(m, topo.source, cost_model("epyc-zen4"), pass_threads=192)
    assert cmp["cost_model"]["machine_class"] == "epyc-zen4"
    for r in cmp["deferred_init"]:
        assert r["predicted_only"] and r["host_ms"] is None
        assert r["modelled_pages"] == sum(e - s for s, e in node_pass_ranges(m, r["node"]))
        assert r["diff_ms"] == pytest.approx(r["modelled_ms"] - r["real_ms"])


def test_calibration_reproduces_its_own_data_file(tmp_path, capsys):
    """`pgdefer calibrate --write` on the package's anchors gives the package's fitted.json back."""
    from pgdefer.cli import main

    out_file = tmp_path / "fitted.json"
    assert main(["calibrate", "--no-loo", "-q", "--write", "-o", str(out_file)]) == 0
    out = capsys.readouterr().out
    for a in calibration.anchors():
        assert a["id"] in out
    assert "in-sample within 15 %" in out
    written, stored = json.loads(out_file.read_text()), fitted_constants()
    assert written["fit"]["anchors"] == stored["fit"]["anchors"]
    assert written["thread_gbps"].keys() == stored["thread_gbps"].keys()
    for k, v in stored["constants"].items():
        assert written["constants"][k] == pytest.approx(v, rel=1e-3), k
    for k, v in stored["thread_gbps"].items():
        assert written["thread_gbps"][k] == pytest.approx(v, rel=1e-3), k


def test_cli_cost_options(capsys):
    from pgdefer.cli import main

    assert main(["boot", "-q", "--workload", "none", "--no-check", "--machine-class", "skylake-sp",
                 "--cost", "struct_page_bytes=72", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["cost_model"]["machine_class"] == "skylake-sp" and d["cost_model"]["class_reason"] == "--machine-class"
    assert main(["boot", "-q", "--machine-class", "pdp-11"]) == 2
    assert "unknown machine class 'pdp-11'" in capsys.readouterr().err
    assert main(["boot", "-q", "--cost", "struct_page_bytes=200"]) == 2
    assert "struct_page_bytes must be in 56..80" in capsys.readouterr().err


@pytest.mark.parametrize("cpus", [1, 3, 8])
def test_modelled_padata_structure_is_the_simulated_passes(cpus):
    """The cost model's workers and chunks per node equal what the core's v5.8 pass ran (padata_chunk events)."""
    if "v5.8" not in _core_policies():
        pytest.fail("the core has no v5.8 generation")
    topo = Topology([(0x100000, 0x100000000, 0), (0x100000000, 0x240000000, 0), (0x240000000, 0x2c0000000, 1)],
                    reserved=[(0x1000000, 0x3000000), (0x120000000, 0x120400000), (0x260000000, 0x260001000)])
    m = Machine(topo, policy="v5.8", node_cpus={0: cpus, 1: cpus})
    m.boot()
    plans = machine_passes(m, cost_model("skylake-sp"), cpus)
    m.page_alloc_init_late(threads=False)
    for node, pc in plans.items():
        chunks = [e for e in m.events if e["kind"] == "padata_chunk" and e["node"] == node]
        assert pc.chunks == len(chunks)
        assert pc.workers == len({e["worker"] for e in chunks})
        assert pc.workers == min(cpus, max(1, pc.pages // PPS))   # small nodes get fewer workers


def _core_policies():
    from pgdefer import _core

    return _core.POLICIES


@pytest.fixture(scope="module")
def calibrated():
    """The whole calibration with its leave-one-out refits (about ten seconds)."""
    return calibration.calibrate(loo=True)


def test_every_anchor_is_within_its_bounds_or_says_why(calibrated):
    """Acceptance 1 of issue 11: each fitted anchor's prediction is within 15 % of the published figure and its
    leave-one-out prediction within 25 %, or the anchor carries a note saying why it cannot be; an anchor left
    out of the fit always says why."""
    rows = calibrated["rows"]
    assert [r["id"] for r in rows] == [a["id"] for a in calibration.anchors()]
    for r in rows:
        if r["in_fit"]:
            assert r["loo"] is not None and r["loo"] > 0, r["id"]
        assert calibration.within(r) or r["note"], (r["id"], r["error_pct"], r["loo_error_pct"])
    # the fitted constants printed are the ones the package loads
    assert calibrated["fitted_file"]["constants"] == pytest.approx(fitted_constants()["constants"], rel=1e-3)


def test_the_calibration_table_in_the_docs_is_what_the_code_produces(calibrated):
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "costmodel.md").read_text()
    assert calibration.DOC_BEGIN in doc and calibration.DOC_END in doc
    block = doc.split(calibration.DOC_BEGIN, 1)[1].split(calibration.DOC_END, 1)[0].strip()
    assert block == calibration.markdown_table(calibrated).strip(), "run: pgdefer calibrate --doc docs/costmodel.md"
    assert calibration.doc_with_table(doc, calibration.markdown_table(calibrated)) == doc
    with pytest.raises(CostModelError, match="markers"):
        calibration.doc_with_table("no table here", "x")


def test_the_epyc_9004_log_is_held_out_of_the_calibration(monkeypatch):
    """Acceptance 2 of issue 11 is a prediction: nothing from that log is fitted, and an anchors file that tried
    would be refused."""
    log = EPYC_LOG.rsplit("/", 1)[1]
    assert log in calibration.HELD_OUT_LOGS
    stored = fitted_constants()
    assert stored["fit"]["anchors"] == [a["id"] for a in calibration.anchors() if a["fit"]]
    assert not any(log.removesuffix(".log") in a["source"] for a in calibration.anchors())
    assert "epyc-zen4" not in stored["thread_gbps"]          # the log's class has no fitted rate of its own
    assert not machine_class("epyc-zen4").fitted
    bad = [dict(calibration.anchors()[0], source=f"/work/shared/bootlogs/{log}")]
    monkeypatch.setattr(calibration, "_load", lambda name: {"anchors": bad})
    calibration._anchors.cache_clear()
    try:
        with pytest.raises(CostModelError, match="held out"):
            calibration.anchors()
    finally:
        monkeypatch.undo()
        calibration._anchors.cache_clear()


def test_smt_siblings_add_a_fraction_of_a_thread():
    """padata's workers are all the node's CPUs: 4 threads on 2 cores x 2 siblings are 2 + 2 x smt_gain
    threads' worth. With no ceiling, no start-up and no overhead the fluid model is exact:
    T(1) / T(4) = 2 + 2 x 0.5 = 3 (and 4 on a machine without SMT)."""
    free = ["thread_start_us=0", "pass_overhead_ms=0", "dram_gbps=1e9", "line_ns=1e-6", "smt_gain=0.5"]
    r = [(0, 64 * PPS)]
    smt = cost_model("skylake-sp", [*free, "threads_per_core=2"])
    assert smt.pass_cost(r, 1, V5_8).ms / smt.pass_cost(r, 4, V5_8).ms == pytest.approx(3.0)
    no_smt = cost_model("skylake-sp", [*free, "threads_per_core=1"])
    assert no_smt.pass_cost(r, 1, V5_8).ms / no_smt.pass_cost(r, 4, V5_8).ms == pytest.approx(4.0)


def _drawn_costs(n=12, seed=11):
    """Cost models with constants drawn far from the fitted ones (log-uniform over two decades around each prior
    centre): the mechanics tests must hold for any valid constants, not for the fitted numbers."""
    import random

    rnd = random.Random(seed)
    out = []
    for i in range(n):
        c = {k: centre * 10 ** rnd.uniform(-1, 1) for k, (centre, _) in calibration.PRIORS.items()}
        c["bw_efficiency"] = min(c["bw_efficiency"], 1.0)
        c["smt_gain"] = min(c["smt_gain"], 1.0)
        c["cold_touch"] = max(c["cold_touch"], c["hot_touch"])
        name = machine_class_names()[i % len(machine_class_names())]
        out.append(cost_model(name, [f"{k}={v!r}" for k, v in c.items()]))
    return out


@pytest.mark.parametrize("cost", _drawn_costs(), ids=lambda c: c.name)
def test_mechanics_hold_for_any_constants(cost):
    test_more_threads_never_slower_and_never_beyond_the_bandwidth_cap(cost)
    test_a_5_2_pass_is_cheaper_per_page_than_a_4_17_pass(cost)


def test_a_cold_touch_cheaper_than_a_hot_one_is_refused():
    with pytest.raises(CostModelError, match="cold_touch"):
        cost_model("skylake-sp", ["hot_touch=0.5", "cold_touch=0.1"])


def test_cli_pass_threads_change_the_padata_structure(capsys):
    """`--pass-threads` under a padata generation: more workers and chunks per node, a shorter modelled pass."""
    from pgdefer.cli import main

    runs = {}
    for t in ("1", "4"):
        assert main(["boot", "-q", "-p", "v5.8", "--workload", "none", "--no-check", "--json",
                     "--pass-threads", t]) == 0
        runs[t] = json.loads(capsys.readouterr().out)
    for nid, n1 in runs["1"]["nodes"].items():
        n4 = runs["4"]["nodes"][nid]
        p1, p4 = n1["deferred_init_plan"], n4["deferred_init_plan"]
        assert p1["workers"] == 1 and p4["workers"] == 4       # the default preset's nodes have > 4 sections
        assert p4["chunks"] > p1["chunks"]
        assert n4["deferred_init_modelled_ms"] < n1["deferred_init_modelled_ms"]
    assert "padata max_threads 4" in runs["4"]["cost_model"]["label"]


def test_calibrate_doc_needs_the_leave_one_out_column(tmp_path, capsys):
    from pgdefer.cli import main

    doc = tmp_path / "costmodel.md"
    doc.write_text(f"before\n{calibration.DOC_BEGIN}\nold\n{calibration.DOC_END}\nafter\n")
    assert main(["calibrate", "-q", "--no-loo", "--doc", str(doc)]) == 2
    assert "--doc needs the leave-one-out column" in capsys.readouterr().err
    assert "old" in doc.read_text()                     # nothing half-written
    # checked before the fit: a missing file or one without the markers fails at once
    assert main(["calibrate", "-q", "--doc", str(tmp_path / "missing.md")]) == 2
    assert "missing.md" in capsys.readouterr().err
    (tmp_path / "plain.md").write_text("no table\n")
    assert main(["calibrate", "-q", "--doc", str(tmp_path / "plain.md")]) == 2
    assert "no calibration-table markers" in capsys.readouterr().err

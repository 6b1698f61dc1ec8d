"""pgdefer.analysis: the plain data the pictures draw, on hand-made inputs (expected figures worked by hand).

boot_regions, allocated_runs and boot_schedule are also checked against the page array and the events of real
boots in test_plot.py."""

from types import SimpleNamespace

from pgdefer.analysis import grow_calls, region_pages, working_passes


def test_region_pages_sums_each_kind_and_counts_grows():
    info = {"span": (0, 100), "zones": [], "deferred_zone": "Normal",
            "regions": [("hole", 0, 1, 0), ("reserved", 1, 5, 0), ("early", 5, 20, 0), ("grow", 20, 28, 1),
                        ("reserved", 28, 30, 0), ("grow", 30, 32, 1), ("grow", 32, 40, 2), ("uninit", 40, 100, 0)]}
    # early 15, grow 8 + 2 + 8 = 18 in two calls (steps 1 and 2), reserved 4 + 2, hole 1, uninit 60, no pass
    assert region_pages(info) == {"early": 15, "grow": 18, "pass": 0, "uninit": 60, "reserved": 6, "hole": 1,
                                  "grows": 2}
    assert region_pages({"regions": []})["grows"] == 0


def test_grow_calls_and_working_passes_keep_only_events_that_did_work():
    events = [{"kind": "early_init", "node": 0, "pages": 10},
              {"kind": "grow", "node": 0, "pages": 512},
              {"kind": "grow", "node": 1, "pages": 0},          # a grow that found nothing to do
              {"kind": "deferred_init", "node": 0, "pages": 0},  # a pass with nothing left
              {"kind": "deferred_init", "node": 1, "pages": 7},
              {"kind": "grow", "node": 1, "pages": 3}]
    m = SimpleNamespace(events=events)
    assert grow_calls(m) == [events[1], events[5]]
    assert working_passes(m) == [events[4]]


def test_memblock_free_all_has_its_modelled_duration_on_the_boot_cpu():
    """memblock_free_all is a step of the boot CPU between early init and the grows, not an instant: the
    Memory: line and the on-demand window come at its end (issue 11, the timeline)."""
    from pgdefer import Machine, presets
    from pgdefer.analysis import boot_schedule, event_rows
    from pgdefer.costmodel import cost_model
    from pgdefer.workload import default_workload, replay

    m = Machine(presets.get("default"), "v4.17")
    m.boot()
    replay(m, default_workload(m.nodes))
    cost = cost_model("skylake-sp")
    sch = boot_schedule(m, cost)
    mfa_ev = next(e for e in m.events if e["kind"] == "memblock_free_all")
    early = [b for b in sch["boot_cpu"] if b["what"] == "early"]
    (mfa,) = [b for b in sch["boot_cpu"] if b["what"] == "memblock_free_all"]
    assert mfa["pages"] == mfa_ev["released"] > 0 and mfa["reserved"] == mfa_ev["reserved"]
    assert mfa["ms"] == cost.memblock_free_all_ms(mfa_ev["released"], mfa_ev["reserved"]) > 0
    assert mfa["start"] == early[-1]["start"] + early[-1]["ms"]
    assert sch["mem_init_at"] == mfa["start"] + mfa["ms"]
    assert sch["grows"] and sch["grows"][0]["start"] == sch["mem_init_at"]
    row = next(r for r in event_rows(m, cost) if r["kind"] == "memblock_free_all")
    assert row["model_ms"] == mfa["ms"] and row["t_model_ms"] == sch["mem_init_at"]


def test_memblock_free_all_cost_per_page():
    from pgdefer.costmodel import cost_model

    cost = cost_model("skylake-sp", ["thread_gbps=4", "struct_page_bytes=64", "free_call_ns=200"])
    # a descriptor touch: 64 B / 4 GB/s = 16 ns. 1024 released pages: 1024 x 16 ns (cold re-touch) + one
    # MAX_ORDER free of 200 ns = 16584 ns; 10 reserved pages: 10 x 16 ns (SetPageReserved) = 160 ns
    assert abs(cost.memblock_free_all_ms(1024, 10) - 16744e-6) < 1e-12
    assert cost.memblock_free_all_ms(1024) < cost.memblock_free_all_ms(1024, 10)


def test_compare_row_boot_cpu_time_is_the_timeline_s_window_end():
    """pgdefer compare's boot-CPU figure is the timeline's: early init + memblock_free_all + the grows."""
    from pgdefer import Machine, presets
    from pgdefer.analysis import boot_schedule
    from pgdefer.costmodel import cost_model
    from pgdefer.report import compare_row
    from pgdefer.workload import default_workload, replay

    m = Machine(presets.get("default"), "v4.17")
    m.boot()
    replay(m, default_workload(m.nodes))
    cost = cost_model("haswell-ep")
    row, sch = compare_row(m, cost), boot_schedule(m, cost)
    assert abs(row["boot_cpu_modelled_ms"] - sch["window_end"]) < 1e-9
    assert row["memblock_free_all_modelled_ms"] > 0


def test_the_boot_report_prints_memblock_free_all_with_its_modelled_time():
    from pgdefer import Machine, presets
    from pgdefer.costmodel import cost_model
    from pgdefer.report import dmesg_report

    m = Machine(presets.get("default"), "v4.17")
    m.boot()
    cost = cost_model("skylake-sp")
    e = next(e for e in m.events if e["kind"] == "memblock_free_all")
    lines = dmesg_report(m, cost).splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("memblock_free_all: "))
    ms = cost.memblock_free_all_ms(e["released"], e["reserved"])
    assert lines[i] == (f"memblock_free_all: {e['released']} pages released, {e['reserved']} reserved, "
                        f"{e['deferred']} left deferred, in {ms:.1f} ms (modelled)")
    assert lines[i + 1].startswith("Memory: ")          # the kernel's line comes right after it
    assert cost.machine_memblock_free_all_ms(Machine(presets.get("default"), "v4.17")) is None

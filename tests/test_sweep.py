"""Sweeps (issue 13): grids of boots as one table, on the local executor, a Dask LocalCluster of two worker
processes and a scheduler plus two workers started as separate processes; failing cells, resume, files, plots.

Expected figures come from direct Machine runs of the same cell (events of the core, no sweep code) and from
the grid's product, never from a sweep's own output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

# The test extra installs pandas and distributed: a missing one is an error here, never a skip.
import dask
import distributed
import pandas as pd
import pytest

import pgdefer
from pgdefer import Machine, Topology, _core
from pgdefer import sweep as sw
from pgdefer.cli import main
from pgdefer.config import format_size
from pgdefer.errors import OutOfMemory
from pgdefer.workload import default_workload, replay

GiB = 1 << 30
NON_HOST = [c for c in sw.COLUMNS if c not in sw.HOST_COLUMNS]


def _same(a, b):
    """Two sweep tables agree on every column that does not depend on the host or the run."""
    pd.testing.assert_frame_equal(a[NON_HOST].reset_index(drop=True), b[NON_HOST].reset_index(drop=True))


# --------------------------------------------------------------------------------------------------
# engines: a LocalCluster of two processes, and a scheduler + two workers as separate processes
# --------------------------------------------------------------------------------------------------

WORKER_MEMORY = 400_000_000  # small, so that refusing and killing a worker can be shown with small machines


@pytest.fixture(scope="module")
def cluster():
    # allowed-failures 0: a task whose worker dies is reported at once (KilledWorker), not retried 3 times
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      memory_limit=WORKER_MEMORY, dashboard_address=None,
                                      silence_logs=logging.ERROR)
    try:
        client = distributed.Client(lc)
        try:
            client.wait_for_workers(2, timeout=120)
            yield client
        finally:
            client.close()
    finally:
        lc.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler_address(tmp_path_factory):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, each in its own process group, always
    torn down (SIGTERM to the group, SIGKILL after 15 s)."""
    logs = tmp_path_factory.mktemp("dask-logs")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = []

    def start(name, *args):
        log = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed at teardown, after its process
        p = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append((p, log))
        return p

    try:
        sched = start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        deadline = time.monotonic() + 90
        while True:
            assert sched.poll() is None, (logs / "scheduler.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the dask scheduler did not start listening"
                time.sleep(0.2)
        for i in range(2):
            start(f"worker{i}", "worker", addr, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                  "--memory-limit", "2GB")
        with distributed.Client(addr, timeout="30s") as c:
            c.wait_for_workers(2, timeout=120)
        yield addr
    finally:
        for p, _ in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p, log in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            log.close()


# --------------------------------------------------------------------------------------------------
# a direct run of one cell, without the sweep code
# --------------------------------------------------------------------------------------------------

def direct(topo, policy, workload="default"):
    """The figures a sweep row must carry, from a Machine run of the same cell and the core's events."""
    m = Machine(topo, policy=policy)
    m.boot()
    if workload == "default":
        replay(m, default_workload(m.nodes))
    elif workload.startswith("fill:"):
        pct = float(workload[5:])
        for nid in topo.nodes:
            present = sum(e - s for s, e, _ in topo.memory_pfn_ranges(nid))
            for _ in range(int(present * pct / 100)):
                with contextlib.suppress(OutOfMemory):
                    m.alloc_pages(0, node=nid)
    m.page_alloc_init_late()
    ev = m.events
    free_all = next(e for e in ev if e["kind"] == "memblock_free_all")
    grows = [e for e in ev if e["kind"] == "grow"]
    passes = {str(e["node"]): e["pages"] for e in ev if e["kind"] == "deferred_init"}
    return {"early_pages": sum(e["pages"] for e in ev if e["kind"] == "early_init"),
            "mem_available_kib": free_all["released"] * topo.geometry.page_size // 1024,
            "deferred_at_mem_init_pages": free_all["deferred"],
            "grows": len(grows), "grown_pages": sum(e["pages"] for e in grows),
            "pass_pages": sum(passes.values()), "pass_pages_by_node": passes,
            "alloc_failures": m.stats["alloc_failures"], "present_pages": topo.present_pages,
            "memmap_pages": topo.memmap_pages, "host_bytes_needed": topo.memmap_pages * _core.BYTES_PER_PAGE}


def assert_row_is(row, expected):
    for k, v in expected.items():
        got = json.loads(row[k]) if k == "pass_pages_by_node" else row[k]
        if k == "pass_pages_by_node":
            got = {n: p for n, p in got.items() if p}
            v = {n: p for n, p in v.items() if p}
        assert got == v, (row["key"], k, got, v)


# --------------------------------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------------------------------

def test_grid_is_the_product_of_the_axes_with_stable_keys():
    cells = sw.grid("default,vm-16g", ["v4.17", "eager", "v4.17"], "1,4", ["", "4K/2M/9/9"], "default,none,fill:10",
                    "auto,skylake-sp")
    assert len(cells) == 2 * 2 * 2 * 2 * 3 * 2      # duplicates within an axis count once
    assert len({c.key for c in cells}) == len(cells)
    assert sw.grid("default", "v4.17")[0].key == sw.Cell("default").key == "default|v4.17|1|-|default|auto"


@pytest.mark.parametrize("kwargs, words", [
    ({"policies": "v9.99"}, ["unknown policy 'v9.99'"]),
    ({"pass_threads": "0"}, ["pass threads", "'0'"]),
    ({"geometries": "4K/2M"}, ["geometry '4K/2M'", "PAGE/SECTION"]),
    ({"geometries": "4K/3M/9/9"}, []),               # Geometry's own error (not a power of two)
    ({"workloads": "fill:0"}, ["unknown workload 'fill:0'"]),
    ({"machine_classes": "cray-1"}, ["unknown machine class 'cray-1'", "generic-x86_64"]),
])
def test_bad_axis_values_are_refused_before_anything_runs(kwargs, words):
    with pytest.raises(ValueError) as e:
        sw.sweep("default", **kwargs, scheduler="local", progress=False)
    assert isinstance(e.value, pgdefer.PgdeferError)
    for w in words:
        assert w in str(e.value)


def test_generated_topologies_are_distinct_and_the_same_for_a_seed():
    a = sw.generated_topologies(12, seed=3)
    b = sw.generated_topologies(12, seed=3)
    assert list(a) == list(b) and len(a) == 12
    assert all(a[k] == b[k] for k in a)
    assert list(sw.generated_topologies(3, seed=4)) != list(a)[:3]


# --------------------------------------------------------------------------------------------------
# rows agree with direct runs; failing cells are rows; resume
# --------------------------------------------------------------------------------------------------

def test_local_rows_are_the_direct_runs_of_their_cells():
    from pgdefer import presets

    df = sw.sweep("default", "v4.17,eager", workloads="default,fill:1", scheduler="local", progress=False)
    assert len(df) == 1 * 2 * 2 and df["ok"].all()
    topo = presets.get("default")
    for _, row in df.iterrows():
        assert_row_is(row, direct(topo, row["policy"], row["workload"]))
    eager = df[df["policy"] == "eager"]
    # spec: without CONFIG_DEFERRED_STRUCT_PAGE_INIT every present page is initialised by memmap_init
    assert (eager["early_pages"] == topo.present_pages).all() and (eager["deferred_at_mem_init_pages"] == 0).all()


def test_a_bad_cell_is_a_row_and_resume_runs_only_what_is_missing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[memory]]\nstart = 0x2000\nend = 0x1000\n")
    out = tmp_path / "r.parquet"
    first = sw.sweep(["vm-3.5g-dma32", str(bad), "no-such-preset"], "v4.17", scheduler="local", out=out,
                     progress=False)
    assert len(first) == 3 and first["ok"].tolist() == [True, False, False]
    assert first.loc[1, "error_type"] == "TopologyError" and str(bad) in first.loc[1, "topology"]
    assert "no-such-preset" in first.loc[2, "error"]
    run1 = first.loc[0, "sweep_run"]

    # a second policy: only its 3 cells are new; the 3 rows already in the file (failed ones too) stay as they were
    second = sw.sweep(["vm-3.5g-dma32", str(bad), "no-such-preset"], "v4.17,eager", scheduler="local", out=out,
                      resume=True, progress=False)
    assert len(second) == 3 * 2
    assert second.attrs["pgdefer.sweep"]["executed"] == 3
    ran_now = second[second["sweep_run"] != run1]
    assert sorted(ran_now["policy"]) == ["eager"] * 3
    _same(second[second["policy"] == "v4.17"], first)
    assert_row_is(second[second["key"] == "vm-3.5g-dma32|eager|1|-|default|auto"].iloc[0],
                  direct(pgdefer.presets.get("vm-3.5g-dma32"), "eager"))

    # nothing left: resume runs no cell, and the file is unchanged
    third = sw.sweep(["vm-3.5g-dma32", str(bad), "no-such-preset"], "v4.17,eager", scheduler="local", out=out,
                     resume=True, progress=False)
    assert third.attrs["pgdefer.sweep"]["executed"] == 0
    pd.testing.assert_frame_equal(third, sw.read(out))
    assert set(third["sweep_run"]) == set(second["sweep_run"])

    # --retry-failed reruns the 4 failed cells only
    fourth = sw.sweep(["vm-3.5g-dma32", str(bad), "no-such-preset"], "v4.17,eager", scheduler="local", out=out,
                      resume=True, retry_failed=True, progress=False)
    assert fourth.attrs["pgdefer.sweep"]["executed"] == 4
    assert (fourth[fourth["ok"]]["sweep_run"].isin(second["sweep_run"])).all()


def test_a_cell_bigger_than_this_host_is_refused_with_the_figures():
    topo = Topology(memory=[(0, 64 << 40, 0)])        # 64 TiB: 17 G struct pages, far beyond this host
    need = topo.memmap_pages * _core.BYTES_PER_PAGE
    df = sw.sweep([topo], "v4.17", scheduler="local", progress=False)
    row = df.iloc[0]
    assert not row["ok"] and row["error_type"] == "HostMemoryError"
    assert row["host_bytes_needed"] == need and format_size(need) in row["error"]
    assert pd.isna(row["host_s"])                     # refused before it started


def test_csv_keeps_the_table_and_its_metadata(tmp_path):
    out = tmp_path / "r.csv"
    df = sw.sweep("vm-3.5g-dma32", "v4.17,eager", scheduler="local", out=out, progress=False)
    back = sw.read(out)
    pd.testing.assert_frame_equal(back, df, check_dtype=True)
    meta = json.loads((tmp_path / "r.csv.meta.json").read_text())
    from importlib.metadata import version

    assert meta["pgdefer_version"] == version("pgdefer")
    assert meta["parameters"]["policies"] == ["v4.17", "eager"]
    assert meta["columns"]["slowest_pass_host_ms"]["time"] == "host"
    assert meta["columns"]["slowest_pass_modelled_ms"]["time"] == "modelled"


# --------------------------------------------------------------------------------------------------
# Dask: a LocalCluster of two worker processes
# --------------------------------------------------------------------------------------------------

def test_two_hundred_generated_cells_on_the_local_cluster(cluster):
    n = 100
    policies = ("eager", "v4.17")
    df = pgdefer.sweep(generate=n, seed=7, policies=policies, workloads="fill:50", client=cluster, progress=False)
    assert len(df) == n * len(policies) == 200
    assert df["topology"].nunique() == n
    assert df["ok"].all(), df[~df["ok"]][["key", "error"]]
    assert len(set(df["worker"])) == 2                # both worker processes took cells
    # the model's own checks hold on every cell (generated maps never mix nodes in a MAX_ORDER block)
    assert (df["violations"] == 0).all() and (df["check_problems"] == 0).all()
    eager = df[df["policy"] == "eager"]
    assert (eager["grows"] == 0).all() and (eager["early_pages"] == eager["present_pages"]).all()
    # the same cells on the local executor: the same table
    local = pgdefer.sweep(generate=n, seed=7, policies=policies, workloads="fill:50", scheduler="local",
                          progress=False)
    _same(df, local)
    topos = sw.generated_topologies(n, seed=7)
    for _, row in df.iloc[::67].iterrows():
        assert_row_is(row, direct(topos[row["topology"]], row["policy"], "fill:50"))


def test_cluster_refuses_a_cell_larger_than_its_workers_and_survives_a_killed_worker(cluster):
    big = Topology(memory=[(0, 192 * GiB, 0)], name="too-big")          # 50 M struct pages: 650 MB > 400 MB
    # fits the 400 MB memory_limit by its page array alone (341 MB), but not with the worker's own memory:
    # the nanny kills the worker at 95 % of its limit while the cell runs
    killer = Topology(memory=[(0, 100 * GiB, 0)], name="killer")
    assert big.memmap_pages * _core.BYTES_PER_PAGE > WORKER_MEMORY > killer.memmap_pages * _core.BYTES_PER_PAGE
    df = sw.sweep([big, killer, "vm-3.5g-dma32"], "eager", workloads="none", client=cluster, progress=False)
    by_name = {r["topology_name"]: r for _, r in df.iterrows()}
    assert by_name["too-big"]["error_type"] == "HostMemoryError"
    assert format_size(WORKER_MEMORY) in by_name["too-big"]["error"]
    assert format_size(big.memmap_pages * _core.BYTES_PER_PAGE) in by_name["too-big"]["error"]
    assert by_name["killer"]["error_type"] == "KilledWorker", by_name["killer"]["error"]
    assert by_name["vm-3.5g-dma32"]["ok"]
    cluster.wait_for_workers(2, timeout=120)          # the nanny restarted the worker for the next tests


# --------------------------------------------------------------------------------------------------
# acceptance 1: the CLI on the default engine, --scheduler local and an external scheduler give the same rows
# --------------------------------------------------------------------------------------------------

def test_cli_the_same_rows_on_every_engine(tmp_path, scheduler_address, capsys):
    argv = ["sweep", "--topology", "default,vm-64g", "--policy", "v4.17,eager", "-q"]
    tables = {}
    # (the local executor gives the same table as a LocalCluster: test_two_hundred_generated_cells_...)
    for engine, extra in (("default", []), ("external", ["--scheduler", scheduler_address])):
        out = tmp_path / f"{engine}.parquet"
        assert main(argv + ["--out", str(out)] + extra) == 0
        tables[engine] = sw.read(out)
        text = capsys.readouterr().out
        assert f"wrote {out}: 4 row(s), 4 ok, 0 failed; ran 4 cell(s) of 4" in text
    assert len(tables["default"]) == 2 * 2
    assert tables["default"]["key"].tolist() == [c.key for c in sw.grid("default,vm-64g", "v4.17,eager")]
    assert tables["default"].attrs["pgdefer.sweep"]["engine"].startswith("LocalCluster")
    _same(tables["external"], tables["default"])
    meta = tables["external"].attrs["pgdefer.sweep"]
    assert meta["engine"] == f"Dask scheduler {scheduler_address}"
    assert meta["parameters"]["topologies"] == ["default", "vm-64g"]
    assert len(set(tables["external"]["worker"])) == 2
    from pgdefer import presets

    for _, row in tables["external"][tables["external"]["topology"] == "default"].iterrows():
        assert_row_is(row, direct(presets.get("default"), row["policy"]))

    # --resume: nothing is run again
    out = tmp_path / "external.parquet"
    assert main(argv + ["--out", str(out), "--resume", "--scheduler", scheduler_address]) == 0
    assert "ran 0 cell(s) of 4" in capsys.readouterr().out
    _same(sw.read(out), tables["external"])


# --------------------------------------------------------------------------------------------------
# the command line and plots
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, words", [
    (["sweep", "--policy", "v9", "--scheduler", "local"], ["unknown policy 'v9'"]),
    (["sweep", "--out", "r.txt", "--scheduler", "local"], [".parquet or .csv"]),
    (["sweep", "--resume", "--scheduler", "local"], ["--resume needs --out"]),
    (["sweep", "--cells", "/nonexistent/cells.json"], ["no such file"]),
    (["sweep", "--scheduler", "tcp://127.0.0.1:9", "-q"], ["cannot reach the Dask scheduler at tcp://127.0.0.1:9"]),
])
def test_cli_errors_are_one_line(argv, words, capsys):
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pgdefer: error:") and "\n" not in err
    for w in words:
        assert w in err


def test_cli_explicit_cells_and_plot(tmp_path, capsys):
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps([{"topology": "vm-3.5g-dma32", "policy": "eager"},
                                 {"topology": "vm-3.5g-dma32", "policy": "v4.17", "pass_threads": 4}]))
    png = tmp_path / "s.png"
    out = tmp_path / "s.csv"
    assert main(["sweep", "--cells", str(cells), "--scheduler", "local", "--out", str(out), "--plot", str(png),
                 "--x", "policy", "--y", "early_pages", "--hue", "none", "-q"]) == 0
    df = sw.read(out)
    assert df["key"].tolist() == ["vm-3.5g-dma32|eager|1|-|default|auto", "vm-3.5g-dma32|v4.17|4|-|default|auto"]
    assert df["pass_threads_used"].tolist() == [1, 4]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_figure_labels_say_which_time(tmp_path):
    from pgdefer.plot import sweep_figure

    df = sw.sweep("vm-3.5g-dma32", "v4.17", pass_threads="1,4,16", scheduler="local", progress=False)
    fig = sweep_figure(df, x="pass_threads_used", y="slowest_pass_modelled_ms", hue="policy")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "slowest_pass_modelled_ms (modelled time)"
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [1, 4, 16]
    # v4.17 runs each node's pass on one kthread (padata came in 5.8, spec section 0.2): threads change nothing
    ys = list(line.get_ydata())
    assert len(set(ys)) == 1 and ys[0] > 0
    with pytest.raises(ValueError, match="no column 'nope'"):
        sweep_figure(df, x="nope", y="early_pages")
    fig.savefig(tmp_path / "f.png")


def test_docs_name_every_column_and_its_kind_of_time():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "sweep.md").read_text()
    for name, (dtype, kind, _) in sw.COLUMNS.items():
        assert f"| `{name}` | {dtype} | {kind or ''} |" in doc, name
    assert "dask scheduler" in doc and "dask worker" in doc and "--scheduler" in doc


def test_a_geometry_override_boots_the_same_map_with_other_sections():
    from pgdefer import Geometry, presets

    base = presets.get("vm-3.5g-dma32")
    df = sw.sweep("vm-3.5g-dma32", "v4.17", geometries=",4K/32M/9/10", workloads="none", scheduler="local",
                  progress=False)
    assert df["ok"].all() and df["geometry"].tolist() == ["", "4K/32M/9/10"]
    g = Geometry(page_size="4K", section_size="32M", pageblock_order=9, max_order=10)
    regrown = Topology(memory=[(r.start, r.end, r.node) for r in base.memory],
                       reserved=[(r.start, r.end) for r in base.reserved], zone_limits=base.zone_limits, geometry=g)
    assert_row_is(df.iloc[0], direct(base, "v4.17", "none"))
    assert_row_is(df.iloc[1], direct(regrown, "v4.17", "none"))
    # v4.17 defers all but one section per node (spec §0.2): smaller sections, fewer early pages
    assert df.loc[1, "early_pages"] < df.loc[0, "early_pages"]


def test_machine_classes_change_the_modelled_times_only():
    from pgdefer import costmodel, presets

    classes = ["auto", "skylake-sp", "epyc-zen4"]
    df = sw.sweep("vm-3.5g-dma32", "v4.17", machine_classes=classes, workloads="none", scheduler="local",
                  progress=False)
    assert df["ok"].all() and df["machine_class"].tolist() == classes
    # auto: the preset's class, as `pgdefer boot` chooses it
    assert df.loc[0, "machine_class_used"] == (costmodel.class_for_preset("vm-3.5g-dma32") or "generic-x86_64")
    pages = ["early_pages", "mem_available_kib", "grown_pages", "pass_pages", "pass_pages_by_node"]
    assert (df[pages].nunique() == 1).all()
    m = Machine(presets.get("vm-3.5g-dma32"), policy="v4.17")
    m.boot()
    m.page_alloc_init_late()
    for _, row in df.iterrows():
        plans = costmodel.machine_passes(m, costmodel.cost_model(row["machine_class_used"]), 1)
        assert row["slowest_pass_modelled_ms"] == pytest.approx(max(p.ms for p in plans.values()))
    assert df["slowest_pass_modelled_ms"].nunique() == len(classes)

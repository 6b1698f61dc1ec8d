"""pytest-benchmark benches of the Python paths, each group with a reference measured in the same run:

* ``boot``: the CLI's boot of the ``default`` preset (build the memmap, boot, the default early workload,
  page_alloc_init_late, check) beside numpy writing the same number of page-array bytes;
* ``dmesg``: importing a real two-node boot log (``Topology.from_dmesg``) beside reading and splitting it;
* ``sweep``: one sweep cell (``pgdefer.sweep.run_cell``, what a Dask worker runs) beside the boot alone.

Run: ``pip install -e '.[bench]' && pytest benches/ --benchmark-only`` (not part of the test suite: the suite
stays fast, and timings are not assertions). Figures of the latest run: docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pgdefer import Topology, _core
from pgdefer.cli import run_machine
from pgdefer.sources import presets

LOG = Path(__file__).resolve().parents[2] / "shared" / "bootlogs" / "supermicro-h13dsg-epyc9004-2node-1536g.log"


def test_boot_reference_numpy_fill(benchmark):
    """numpy writing BYTES_PER_PAGE bytes for every struct page of the default preset."""
    n = presets.get("default").memmap_pages * _core.BYTES_PER_PAGE
    buf = np.ones(n, dtype=np.uint8)
    benchmark.group = "boot"
    benchmark(buf.fill, 0x53)


def test_boot_default_preset(benchmark):
    topo = presets.get("default")
    benchmark.group = "boot"
    m, _, problems = benchmark.pedantic(run_machine, args=(topo, "v4.17"), rounds=5, iterations=1)
    assert problems == []


def test_dmesg_reference_read_lines(benchmark):
    benchmark.group = "dmesg"
    benchmark(lambda: LOG.read_text().splitlines())


def test_dmesg_import(benchmark):
    benchmark.group = "dmesg"
    t = benchmark(Topology.from_dmesg, LOG)
    assert len(t.nodes) == 2


def _cell_task():
    from pgdefer.sweep import Cell, _plan  # the planning step of pgdefer.sweep, run on the client

    task, error = _plan(Cell("default"), {}, {}, "bench", True)
    assert error is None, error
    return task


def test_sweep_reference_boot_alone(benchmark):
    topo = presets.get("default")
    benchmark.group = "sweep"
    benchmark.pedantic(run_machine, args=(topo, "v4.17"), rounds=5, iterations=1)


def test_sweep_cell(benchmark):
    from pgdefer.sweep import run_cell

    task = _cell_task()
    benchmark.group = "sweep"
    row = benchmark.pedantic(run_cell, args=(task,), rounds=5, iterations=1)
    assert row["ok"], row

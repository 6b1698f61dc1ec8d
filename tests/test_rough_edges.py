"""The CLI's rough edges on big machines (issue 14, finding 9): what ``--stop-after memblock_free_all`` still
costs (the final check walks every struct page) said honestly and skippable, ``--no-host-check`` really
skipping the host-memory check (the core had its own), and ``topology list`` saying which presets need more
host memory than this host has."""

from __future__ import annotations

import json
import re

import pytest

import pgdefer
from pgdefer import Machine, Region, Topology, _core
from pgdefer.errors import HostMemoryError
from pgdefer.sources import presets
from pgdefer.testing import run_cli


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_stop_after_help_says_what_the_final_check_costs(capsys):
    code, out, _ = run_cli(["boot", "--help"], capsys)
    assert code == 0
    flat = _flat(out)
    stop = flat[flat.index("--stop-after {"):]
    stop = stop[:stop.index(" --json")]
    assert "--no-check" in stop and "every struct page" in stop
    # the epilog's "fast on huge machines" example is fast only without the check
    example = [line for line in out.splitlines() if "--stop-after memblock_free_all" in line]
    assert example and all("--no-check" in line for line in example)


def test_a_skipped_check_is_reported(capsys):
    code, out, err = run_cli(["boot", "--stop-after", "memblock_free_all", "--no-check", "-q"], capsys)
    assert code == 0, err
    assert "check(): skipped (--no-check)" in out
    code, out, err = run_cli(["boot", "--stop-after", "memblock_free_all", "-q"], capsys)
    assert "check(): all invariants hold" in out


def _meminfo_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


@pytest.fixture
def too_big_for_this_host():
    """A one-node machine whose page array needs 1 GiB more host memory than MemAvailable. Its arrays are
    mapped lazily (MAP_NORESERVE), so building it without booting costs no host memory."""
    need_pages = (_meminfo_available() + (1 << 30)) // _core.BYTES_PER_PAGE
    # One node, so its zone must stay within a free-list link's reach (2^31 pages: ~26 GiB of host memory).
    assert need_pages < _core.MAX_LINK_SPAN, "this test needs a host with less than ~26 GiB available"
    return Topology(memory=[Region("1M", need_pages * 4096)])


def test_host_check_false_builds_what_the_check_refuses(too_big_for_this_host):
    with pytest.raises(HostMemoryError, match="host memory"):
        Machine(too_big_for_this_host)
    m = Machine(too_big_for_this_host, host_check=False)
    assert m.phase == "created"
    del m


def test_no_host_check_reaches_the_core(monkeypatch, capsys):
    seen = []
    real = Machine.__init__

    def spy(self, *a, **kw):
        seen.append(kw.get("host_check", True))
        real(self, *a, **kw)

    monkeypatch.setattr(pgdefer.machine.Machine, "__init__", spy)
    code, _, err = run_cli(["boot", "--no-host-check", "--stop-after", "memblock_free_all", "-q"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["boot", "--stop-after", "memblock_free_all", "-q"], capsys)
    assert code == 0, err
    assert seen == [False, True]


def test_topology_list_marks_presets_too_big_for_this_host(monkeypatch, capsys):
    gib = 1 << 30
    monkeypatch.setattr(presets, "host_available_bytes", lambda *a, **k: gib)
    code, out, err = run_cli(["topology", "list", "--json"], capsys)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    for name, r in rows.items():
        need = presets.get(name).memmap_pages * _core.BYTES_PER_PAGE  # the page array: pages x bytes per page
        assert r["host_bytes_needed"] == need
        assert r["fits_host"] is (need <= gib), name
    big = [n for n, r in rows.items() if not r["fits_host"]]
    small = [n for n, r in rows.items() if r["fits_host"]]
    assert big and small  # 1 GiB splits the presets (the 768 GB Skylake needs ~2.4 GiB, default ~0.05 GiB)
    code, out, err = run_cli(["topology", "list"], capsys)
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    for n in big:
        assert "more than this host" in lines[n], lines[n]
    for n in small:
        assert "more than this host" not in lines[n]
    assert "1.0 GiB available" in out


def test_boot_memmap_auto_goes_compact_only_when_dense_would_not_fit(monkeypatch, capsys):
    """``--memmap auto`` (the default): the dense reference when its page array fits MemAvailable, else the compact
    memmap instead of a refusal; ``--memmap dense`` is still refused up front, with the figure."""
    argv = ["boot", "-q", "--json", "--stop-after", "memblock_free_all", "--no-check"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0 and json.loads(out)["memmap"] == "dense", err
    need = presets.get("default").memmap_pages * _core.BYTES_PER_PAGE
    monkeypatch.setattr(presets, "host_available_bytes", lambda *a, **k: need - 1)
    code, out, err = run_cli(argv, capsys)
    assert code == 0 and json.loads(out)["memmap"] == "compact", err
    code, out, err = run_cli([*argv, "--memmap", "dense"], capsys)
    assert code != 0 and "host memory" in err and "Traceback" not in err
    code, out, err = run_cli([*argv, "--memmap", "compact"], capsys)
    monkeypatch.undo()
    assert code == 0 and json.loads(out)["memmap"] == "compact", err

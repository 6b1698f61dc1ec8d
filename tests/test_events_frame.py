"""Events as data (issue 14 finding 5): ``m.events_frame()`` and ``pgdefer boot --events FILE.csv|.parquet``, each
event with modelled time beside host time; pfns in hex in event reprs."""

import csv

import pandas as pd
import pytest

import pgdefer
from pgdefer import Region, Topology
from pgdefer.costmodel import DEFAULT_COST
from pgdefer.testing import run_cli


@pytest.fixture(scope="module")
def booted():
    # One node [1 MiB, 5 GiB): v4.17 initialises DMA, DMA32 and one 128 MiB section of Normal early (fdp 0x108000).
    m = pgdefer.Machine(Topology(memory=[Region("1M", "5G", 0)], reserved=[Region("16M", "48M")]), policy="v4.17")
    m.boot()
    m.deferred_grow_zone(0, "Normal")
    m.page_alloc_init_late()
    return m


def test_events_frame_has_host_and_modelled_time(booted):
    df = booted.events_frame()
    assert list(df["kind"]) == [e["kind"] for e in booted.events] == \
        ["early_init", "memblock_free_all", "grow", "deferred_init", "key_disable"]
    assert list(df["t_ns"]) == [e["t_ns"] for e in booted.events]
    mc = DEFAULT_COST.machine_class
    early, mfa, grow, pas, key = df.itertuples(index=False)
    # The cost model writes each struct page once early: pages x struct_page_bytes / thread_gbps (B / (B/ns)),
    # so memmap_init's event is logged at that modelled time. memblock_free_all follows on the boot CPU: one
    # descriptor touch per reserved page, and per released page a touch again plus 1/1024 of a MAX_ORDER free.
    touch_ns = mc.struct_page_bytes / mc.thread_gbps
    free_ns = DEFAULT_COST.constants["free_call_ns"]
    mfa_ms = (mfa.released * (touch_ns + free_ns / 1024) + mfa.reserved * touch_ns) / 1e6
    assert early.t_model_ms == pytest.approx(early.pages * touch_ns / 1e6)
    assert mfa.model_ms == pytest.approx(mfa_ms) and mfa.model_ms > 0
    assert mfa.t_model_ms == pytest.approx(early.t_model_ms + mfa_ms)
    # The grow runs next on the boot CPU; the pass starts when the window closes and ends model_ms later; v4.17
    # disables the key after the slowest pass.
    assert grow.t_model_ms == pytest.approx(mfa.t_model_ms + grow.model_ms) and grow.model_ms > 0
    assert pas.t_model_ms == pytest.approx(grow.t_model_ms + pas.model_ms) and pas.model_ms > 0
    assert key.t_model_ms == pas.t_model_ms
    assert (early.first_deferred_pfn, grow.first_deferred_pfn) == (0x108000, 0x110000)
    assert pd.isna(pas.first_deferred_pfn)  # ULONG_MAX: nothing left deferred
    assert str(df["first_deferred_pfn"].dtype) == "Int64"  # ints with gaps stay ints


def test_event_reprs_print_pfns_in_hex(booted):
    early = booted.events[0]
    assert "'first_deferred_pfn': 0x108000" in repr(early)
    assert early["first_deferred_pfn"] == 0x108000 and isinstance(early, dict)


def test_events_frame_bad_arguments_are_pgdefer_errors(booted):
    with pytest.raises(pgdefer.InvalidArgument, match="pass_threads"):
        booted.events_frame(pass_threads=0)
    with pytest.raises(pgdefer.InvalidArgument, match="CostModel"):
        booted.events_frame(cost="fast")


def _topology_file(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[[memory]]\nstart = "1M"\nend = "5G"\nnode = 0\n')
    return str(path)


def test_boot_events_writes_csv_and_parquet_with_the_same_modelled_times(tmp_path, capsys):
    topo = _topology_file(tmp_path)
    code, out, err = run_cli(["boot", "--topology", topo, "--events", str(tmp_path / "ev.csv")], capsys)
    assert code == 0, err
    assert "wrote " + str(tmp_path / "ev.csv") in out
    with open(tmp_path / "ev.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    kinds = [r["kind"] for r in rows]
    assert kinds[:2] == ["early_init", "memblock_free_all"] and kinds[-1] == "key_disable"
    assert all(r["t_ns"] and r["t_model_ms"] for r in rows)
    code, out, err = run_cli(["boot", "--topology", topo, "--events", str(tmp_path / "ev.parquet")], capsys)
    assert code == 0, err
    df = pd.read_parquet(tmp_path / "ev.parquet")
    assert list(df["kind"]) == kinds
    # Modelled time is a function of what the boot did, host time is not: two runs agree on the first only.
    assert [float(r["t_model_ms"]) for r in rows] == pytest.approx(list(df["t_model_ms"]))


@pytest.mark.parametrize("name, match", [("ev.txt", "must end in .csv or .parquet"),
                                         ("nodir/ev.csv", "does not exist")])
def test_boot_events_refuses_bad_targets_before_booting(tmp_path, capsys, name, match):
    code, out, err = run_cli(["boot", "--topology", _topology_file(tmp_path), "--events", str(tmp_path / name)],
                             capsys)
    assert code != 0 and match in err and "early_init" not in out


def test_zone_and_deferral_reprs_print_pfns_in_hex(booted):
    z = booted.zone(0, "Normal")
    assert "start_pfn=0x100000, end_pfn=0x140000" in repr(z) and "managed=" in repr(z)  # counts stay decimal
    d = pgdefer.machine.deferral(booted.topology, "v4.17")  # deferred: [0x108000, 5 GiB = 0x140000) = 0x38000 pfns
    assert repr(d) == "[NodeDeferral(node=0, first_deferred_pfn=0x108000, deferred_pages=229376)]"
    assert d[0].first_deferred_pfn == 0x108000

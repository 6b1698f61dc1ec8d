"""Boot-log import gaps a new user hit (issue 14, finding 10), each on a real boot log from ../shared/bootlogs:
printk-caller prefixes, ``dmesg:-`` (stdin), ``~`` in the path, ``.gz`` logs, a file holding two boots (an
explicit choice, never a silent one), a suggestion for a misspelt preset in the CLI, and the LICENSE."""

from __future__ import annotations

import gzip
import io
import re
import sys
from pathlib import Path

import pytest

from pgdefer import Topology
from pgdefer.errors import DmesgError
from pgdefer.sources.dmesg import clean_line, parse_dmesg
from pgdefer.testing import run_cli

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT.parent / "shared" / "bootlogs"
GCE = LOGS / "gce-vm-1node-32g.log"               # 5.4.0-1092-gcp, one node
EPYC = LOGS / "supermicro-h13dsg-epyc9004-2node-1536g.log"  # 5.14.0 (el9), two nodes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _same(a: Topology, b: Topology) -> bool:
    return (a.memory, a.reserved, a.zone_limits) == (b.memory, b.reserved, b.zone_limits)


def _with_caller(text: str) -> str:
    """The log as a CONFIG_PRINTK_CALLER kernel prints it: ``[    0.000000][    T0] msg`` (task id; ``C1`` for
    a CPU context), after the timestamp."""
    out = []
    for i, line in enumerate(text.splitlines(keepends=True)):
        caller = "[    T0]" if i % 3 else "[     C1]"
        out.append(re.sub(r"^(\[\s*\d+\.\d+\])", lambda m, c=caller: m.group(1) + c, line))
    return "".join(out)


def test_printk_caller_prefix_is_stripped():
    assert clean_line("[    0.000000][    T0] Linux version 6.1.0") == ("Linux version 6.1.0", 0.0)
    assert clean_line("[    1.250000][   C12] node 0 deferred pages initialised in 4ms") == \
        ("node 0 deferred pages initialised in 4ms", 1.25)


def test_printk_caller_log_imports_like_the_plain_log():
    text = GCE.read_text()
    caller = _with_caller(text)
    assert "[    T0]" in caller
    plain, withc = Topology.from_dmesg(text), Topology.from_dmesg(caller)
    assert _same(plain, withc)
    assert parse_dmesg(caller).memory == parse_dmesg(text).memory


def test_gzipped_log(tmp_path):
    gz = tmp_path / "boot.log.gz"
    gz.write_bytes(gzip.compress(GCE.read_bytes()))
    t = Topology.from_dmesg(gz)
    assert _same(t, Topology.from_dmesg(GCE))
    assert t.name == "boot.log"


def test_corrupt_gzip_is_a_dmesg_error(tmp_path):
    gz = tmp_path / "boot.log.gz"
    gz.write_bytes(gzip.compress(GCE.read_bytes())[:200])
    with pytest.raises(DmesgError, match="boot.log.gz"):
        Topology.from_dmesg(gz)


def test_tilde_is_expanded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "boot.log").write_bytes(GCE.read_bytes())
    assert _same(Topology.from_dmesg("~/boot.log"), Topology.from_dmesg(GCE))
    code, out, err = run_cli(["topology", "show", "dmesg:~/boot.log", "--json"], capsys)
    assert code == 0, err


def _stdin(monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_dmesg_dash_reads_stdin(monkeypatch, capsys):
    code, from_file, err = run_cli(["topology", "show", f"dmesg:{GCE}", "--json"], capsys)
    assert code == 0, err
    _stdin(monkeypatch, GCE.read_bytes())
    code, from_stdin, err = run_cli(["topology", "show", "dmesg:-", "--json"], capsys)
    assert code == 0, err
    drop = re.compile(r'.*"(name|spec|source|path)".*\n|.*built from boot log.*\n')  # where it came from differs
    assert drop.sub("", from_stdin) == drop.sub("", from_file)


def test_dmesg_dash_gzip_on_stdin(monkeypatch):
    _stdin(monkeypatch, gzip.compress(GCE.read_bytes()))
    assert _same(Topology.from_dmesg("-"), Topology.from_dmesg(GCE))


def test_empty_stdin_is_a_dmesg_error(monkeypatch):
    _stdin(monkeypatch, b"")
    with pytest.raises(DmesgError, match="stdin"):
        Topology.from_dmesg("-")


# -- a file with two boots --------------------------------------------------------------------------

@pytest.fixture
def two_boots(tmp_path):
    p = tmp_path / "kern.log"
    p.write_text(GCE.read_text() + EPYC.read_text())
    return p


def test_two_boots_are_refused_with_how_to_choose(two_boots):
    with pytest.raises(DmesgError) as e:
        Topology.from_dmesg(two_boots)
    msg = str(e.value)
    assert "2 boots" in msg and "5.4.0-1092-gcp" in msg and "5.14.0-570" in msg
    assert "boot=" in msg and "#" in msg  # the Python and the command-line ways to choose
    with pytest.raises(DmesgError, match="2 boots"):
        parse_dmesg(two_boots)


@pytest.mark.parametrize(("boot", "log"), [(1, GCE), (2, EPYC), (-1, EPYC), (-2, GCE)])
def test_explicit_boot_choice(two_boots, boot, log):
    t = Topology.from_dmesg(two_boots, boot=boot)
    assert _same(t, Topology.from_dmesg(log))
    assert any("2 boots" in n for n in t.notes)
    assert parse_dmesg(two_boots, boot=boot).kernel_version == parse_dmesg(log).kernel_version


@pytest.mark.parametrize("boot", [0, 3, -3, True, "1"])
def test_bad_boot_choice_is_a_dmesg_error(two_boots, boot):
    with pytest.raises(DmesgError, match="boot"):
        Topology.from_dmesg(two_boots, boot=boot)


def test_boot_choice_on_the_command_line(two_boots, capsys):
    code, out, err = run_cli(["topology", "show", f"dmesg:{two_boots}"], capsys)
    assert code != 0 and "2 boots" in err and f"dmesg:{two_boots}#N" in err
    code, out, err = run_cli(["topology", "show", f"dmesg:{two_boots}#1", "--json"], capsys)
    assert code == 0, err
    code, single, err = run_cli(["topology", "show", f"dmesg:{GCE}", "--json"], capsys)
    assert out.count("0x") == single.count("0x") > 0


# -- a misspelt preset in the CLI, the LICENSE -----------------------------------------------------------

def test_misspelt_preset_gets_a_suggestion_in_the_cli(capsys):
    code, out, err = run_cli(["topology", "show", "p3-skylake-2x384"], capsys)
    assert code != 0
    assert "did you mean 'p3-skylake-2x384g'?" in err
    code, out, err = run_cli(["boot", "-t", "defualt", "-q"], capsys)
    assert code != 0 and "did you mean 'default'?" in err


def test_license_file_matches_the_declared_license():
    with open(ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["license"]
    with open(ROOT / "Cargo.toml", "rb") as f:
        cargo = tomllib.load(f)["package"]["license"]
    assert declared == {"text": "MIT"} and cargo == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    # the operative sentences of the MIT licence (https://opensource.org/license/mit)
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text

"""pgdefer lab corpus without booting: the corpus file, its errors, --dry-run, and --resume over the recorded
kernel-lab boots (linked into a temporary directory, never copied into the project). Real boots are in
test_lab_real.py."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from pgdefer.lab.corpus import KERNEL_LAB, parse_corpus
from pgdefer.lab.errors import LabError
from pgdefer.testing import run_cli as run

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT.parent / "shared" / "kernel-lab"


def _manifest(name):
    p = LAB / f"{name}.manifest.json"
    if not p.is_file():
        pytest.fail(f"{p} is missing: these tests read the recorded kernel-lab boots in ../shared/kernel-lab")
    return json.loads(p.read_text())


def test_the_example_is_the_kernel_lab_as_its_manifests_record_it():
    """Every boot of --example has the layout, CPU count and command line of the recorded boot's manifest
    (written by the lab at the time), and its kernel is the 6.1 or 6.12 package the log name says."""
    boots = parse_corpus(KERNEL_LAB)
    names = sorted(p.name[:-len(".manifest.json")] for p in LAB.glob("*.manifest.json"))
    assert [b.name for b in boots] == names and len(names) == 8
    for b in boots:
        man = _manifest(b.name)
        assert b.layout.nodes_mib_cpus() == man["nodes_mib_cpus"], b.name
        assert b.layout.cpus == man["smp"], b.name
        assert b.layout.cmdline_extra() == man["cmdline_extra"], b.name
        assert ("6.12" in b.kernel) == ("-612-" in b.name) == ("6.12" in man["kernel"]), b.name


def test_dry_run_prints_the_readmes_qemu_command(tmp_path, capsys):
    code, out, err = run(["lab", "corpus", "--example"], capsys)
    assert code == 0
    f = tmp_path / "kernel-lab.toml"
    f.write_text(out)
    code, out, err = run(["lab", "corpus", str(f), "--dry-run", "--only", "lab03-612-2node-2g2g", "-o", "d"],
                         capsys)
    assert code == 0, err
    cmd = shlex.split(out.splitlines()[1])
    # ../shared/kernel-lab/README.md: one memory-backend-ram per node, -numa node,nodeid=N,cpus=C,memdev=mN
    assert cmd[:7] == ["qemu-system-x86_64", "-accel", "tcg", "-smp", "2", "-m", "4096M"]
    assert "memory-backend-ram,id=m1,size=2048M" in cmd and "node,nodeid=1,cpus=1,memdev=m1" in cmd
    append = cmd[cmd.index("-append") + 1]
    assert append.startswith("console=ttyS0 panic=-1 memblock=debug ") and "trace_buf_size=1M" in append
    assert cmd[cmd.index("-serial") + 1] == "file:d/lab03-612-2node-2g2g.log"


@pytest.mark.parametrize("text, words", [
    ("[[boot]]\nname = 'a'\n", "'nodes' must be a list"),
    ("[[boot]]\nname = 'a'\nnodes = ['1G']\nsize = 3\n", "unknown key(s) size"),
    ("[[boot]]\nname = 'a'\nnodes = ['1G']\n[[boot]]\nname = 'a'\nnodes = ['1G']\n", "used twice"),
    ("[[boot]]\nname = 'a b'\nnodes = ['1G']\n", "'name' must be a file-name-safe"),
    ("[[boot]]\nname = 'a'\nnodes = ['lots']\n", "the size must be like 1024"),
    ("[[boot]]\nname = 'a'\nnodes = ['1G:0']\n", "at least one CPU"),
    ("[[boot]]\nname = 'a'\nnodes = ['1G']\ntimeout = -1\n", "'timeout' must be a positive"),
    ("[[boot]]\nname = 'a'\nnodes = ['1G']\ntrace = 'yes'\n", "'trace' and 'trace_pcp' must be true or false"),
    ("kernels = 'x'\n[[boot]]\nname = 'a'\nnodes = ['1G']\n", "unknown top-level key(s) kernels"),
    ("name = \n", "not a valid TOML corpus file"),
    ("kernel = 'x'\n", "no [[boot]] entries"),
])
def test_bad_corpus_files_name_what_is_wrong(text, words):
    with pytest.raises(LabError) as e:
        parse_corpus(text, "c.toml")
    assert words in str(e.value) and str(e.value).startswith("c.toml")


def test_missing_corpus_file_and_unknown_only_are_one_line_errors(tmp_path, capsys):
    code, out, err = run(["lab", "corpus", str(tmp_path / "none.toml")], capsys)
    assert code == 2 and "no such corpus file" in err and err.count("\n") == 1
    f = tmp_path / "c.toml"
    f.write_text("[[boot]]\nname = 'a'\nnodes = ['1G']\n")
    code, out, err = run(["lab", "corpus", str(f), "--only", "b"], capsys)
    assert code == 2 and "--only b: no such boot" in err


def test_resume_keeps_recorded_boots_and_indexes_their_comparison(tmp_path, capsys):
    """Two recorded boots linked in as if an earlier run had made them: --resume boots nothing (no QEMU
    needed) and the index carries lab compare's Memory: figures, the real ones being the kernel's line."""
    names = ["lab02-61-1node-3g", "lab07-612-1node-6g-mem"]
    out_dir = tmp_path / "corpus"
    out_dir.mkdir()
    for n in names:
        for suffix in (".log", ".manifest.json"):
            (out_dir / f"{n}{suffix}").symlink_to(LAB / f"{n}{suffix}")
    f = tmp_path / "c.toml"
    f.write_text(KERNEL_LAB)
    argv = ["lab", "corpus", str(f), "-o", str(out_dir), "--resume", "--compare", "-q"]
    code, out, err = run(argv + [x for n in names for x in ("--only", n)], capsys)
    assert code == 0, err
    rows = json.loads((out_dir / "corpus.json").read_text())["boots"]
    assert [r["name"] for r in rows] == names and all(r["status"] == "kept" for r in rows)
    for r in rows:
        text = (LAB / f"{r['name']}.log").read_text(errors="replace")
        avail, total = (int(x) for x in re.search(r"Memory: (\d+)K/(\d+)K available", text).groups())
        mem = r["compare"]["memory"]
        assert mem["available_kib"]["real"] == avail and mem["total_kib"]["real"] == total
        assert mem["total_kib"]["diff"] == 0 and r["compare"]["zones_differing"] == []
        assert r["compare"]["unplaced_kib"] == avail - mem["available_kib"]["predicted"]
    assert "lab02-61-1node-3g" in out and "kept" in out

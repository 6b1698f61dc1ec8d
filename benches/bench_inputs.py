"""How long and how much memory the loaders take on hostile inputs of up to 100 MB (issue 15, acceptance 4).

Each case runs in a fresh process (``python -c``), so its peak RSS (``ru_maxrss`` from ``os.wait4``) is its own;
wall time includes the interpreter start (the reference case shows that share). Run::

    python benches/bench_inputs.py            # all cases, 3 runs each, medians
    python benches/bench_inputs.py --runs 1

The answer may be an error (a file too large, too many lines, not a regular file): the point is that it comes
within seconds and a few hundred MB. Inputs are written to a temporary directory (sparse where possible) and
deleted afterwards; the real log is read in place from ../shared/bootlogs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_LOG = ROOT.parent / "shared" / "bootlogs" / "supermicro-h13dsg-epyc9004-2node-1536g.log"
MB = 1_000_000

CALL = {
    "from_dmesg": "import pgdefer, sys\ntry:\n    pgdefer.Topology.from_dmesg(sys.argv[1]); print('ok')\n"
                  "except pgdefer.PgdeferError as e:\n    print(type(e).__name__, str(e)[:100])",
    "from_file": "import pgdefer, sys\ntry:\n    pgdefer.Topology.from_file(sys.argv[1]); print('ok')\n"
                 "except pgdefer.PgdeferError as e:\n    print(type(e).__name__, str(e)[:100])",
    "topology show": "import sys\nfrom pgdefer.cli import main\nsys.exit(main(['topology', 'show', sys.argv[1]]))",
}


def _write(path: Path, chunk: bytes, size: int) -> Path:
    with open(path, "wb") as f:
        while f.tell() + len(chunk) <= size:
            f.write(chunk)
    return path


def cases(tmp: Path) -> list:
    """(name, kind, argument) of every case; the reference cases come first."""
    real = REAL_LOG.read_bytes()
    out = [("reference: real 1.5 TiB log (60 KB)", "from_dmesg", str(REAL_LOG)),
           ("reference: topology show of the real log", "topology show", f"dmesg:{REAL_LOG}")]
    sparse = tmp / "sparse-100MB.log"
    with open(sparse, "wb") as f:
        f.truncate(100 * MB)
    out.append(("100 MB sparse file (zeros)", "from_dmesg", str(sparse)))
    out.append(("/dev/zero", "from_dmesg", "/dev/zero"))
    fifo = tmp / "fifo.log"
    os.mkfifo(fifo)
    out.append(("a FIFO nobody writes", "from_dmesg", str(fifo)))
    out.append(("100 MB: the real log repeated", "from_dmesg", str(_write(tmp / "rep100.log", real, 100 * MB))))
    out.append(("60 MB: the real log repeated (under the size limit)", "from_dmesg",
                str(_write(tmp / "rep60.log", real, 60 * MB))))
    out.append(("60 MB: one line, no newline", "from_dmesg",
                str(_write(tmp / "oneline.log", b"node " * 1000, 60 * MB))))
    kw = b"[    0.000000] node   0: [mem 0x0000000000001000-0x000000000009efff] Normal DMA Memory: initialised\n"
    n = 199_000  # just under the line limit; every line carries keywords, so none is prefiltered
    out.append((f"{n} lines of parser keywords", "from_dmesg", str(_write(tmp / "kw.log", kw, n * len(kw)))))
    n = 19_900  # just under MAX_KEYWORD_LINES: the most pattern work an accepted log can ask for
    out.append((f"{n} lines of parser keywords", "from_dmesg", str(_write(tmp / "kw2.log", kw, n * len(kw)))))
    out.append(("60 MB of newlines", "from_dmesg", str(_write(tmp / "nl.log", b"\n" * 4096, 60 * MB))))
    big_json = tmp / "big.json"
    with open(big_json, "wb") as f:
        f.truncate(100 * MB)
    out.append(("100 MB .json (sparse)", "from_file", str(big_json)))
    regions = 10_000  # MAX_REGIONS: the most a Topology takes
    d = {"memory": [{"start": i << 30, "end": (i << 30) + (1 << 29), "node": i % 1024} for i in range(regions)],
         "reserved": [{"start": (i << 30) + 4096, "end": (i << 30) + 8192} for i in range(regions)]}
    many = tmp / "many.json"
    many.write_text(json.dumps(d))
    out.append((f"{regions} + {regions} regions, 1024 nodes (.json, {many.stat().st_size / MB:.1f} MB)",
                "from_file", str(many)))
    out.append((f"topology show of {regions} + {regions} regions", "topology show", str(many)))
    many_toml = tmp / "many.toml"
    many_toml.write_text("memory = [\n" + "".join(f'  {{ start = {i << 30}, end = {(i << 30) + (1 << 29)}, '
                                                  f'node = {i % 1024} }},\n' for i in range(regions)) + "]\n")
    out.append((f"{regions} regions (.toml, {many_toml.stat().st_size / MB:.1f} MB)", "from_file", str(many_toml)))
    toml_junk = tmp / "junk.toml"
    toml_junk.write_text("notes = [" + '"a",' * (2_000_000 // 4 - 4) + "]\n")
    out.append(("2 MB .toml of one-character notes", "from_file", str(toml_junk)))
    deep = tmp / "deep.json"
    deep.write_text("[" * (8 * MB))
    out.append(("8 MB of '[' (.json)", "from_file", str(deep)))
    return out


def run_once(kind: str, arg: str):
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", CALL[kind], arg], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.stdout.read(), p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    answer = (out.decode(errors="replace").strip().splitlines() or err.decode(errors="replace").strip().splitlines()
              or ["?"])[0 if out.strip() else -1]
    return wall, ru.ru_maxrss / 1024, answer  # ru_maxrss is KiB on Linux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per case (median reported; default 3)")
    args = ap.parse_args(argv)
    print(f"{'case':<52} {'call':<14} {'median s':>9} {'max RSS MB':>11}  answer")
    with tempfile.TemporaryDirectory(prefix="pgdefer-bench-") as d:
        for name, kind, arg in cases(Path(d)):
            runs = [run_once(kind, arg) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            print(f"{name:<52} {kind:<14} {wall:>9.2f} {rss:>11.0f}  {runs[-1][2][:70]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

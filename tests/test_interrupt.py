"""Ctrl-C during a long run (issue 12): a SIGINT stops a real ``pgdefer boot`` within a second with status
130 and one line, no traceback; in the API it raises the signal handler's exception out of the Rust call and
leaves the machine marked ``interrupted``; the progress line shows pages, percent and the time left.

The machines are big enough that their boot or pass takes seconds (1 TB, 2^28 struct pages), and the signal is
sent only once the core reports pages done in the phase under test, so it always lands inside the Rust loop.
Their page arrays are mapped lazily: an interrupted run touches only what it initialised.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import types

import pytest

from pgdefer import Machine, errors
from pgdefer.cli import Progress, _progress
from pgdefer.sources import presets

BIG = "m2-4node-1t"  # 1 TiB: 2^40 / 2^12 = 2^28 struct pages


def _interrupt_cli(marker, *args):
    """Run ``pgdefer boot`` with --progress, send SIGINT once stderr shows ``marker`` (a phase's progress
    with pages), return (exit status, seconds from the signal to the exit, stdout, stderr)."""
    cmd = [sys.executable, "-m", "pgdefer", "boot", "-t", BIG, "--workload", "none", "--no-check", "--progress",
           *args]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = bytearray()

    def read():
        while chunk := p.stderr.read1(4096):
            err.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while marker.encode() not in err:
        assert p.poll() is None, f"pgdefer ended before {marker!r}: {bytes(err[-500:])!r}"
        assert time.monotonic() < deadline, "no progress shown"
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    t = time.monotonic()
    try:
        out = p.stdout.read()
        p.wait(timeout=120)  # a hang guard, not a timing assertion
    finally:
        p.kill()
    waited = time.monotonic() - t
    reader.join(10)
    return p.returncode, waited, out.decode(), bytes(err).decode()


@pytest.mark.parametrize(("policy", "marker"), [
    ("v4.17", "page_alloc_init_late (per-node passes): "),  # four pgdatinit threads, the main thread joining
    ("eager", "boot (early init, memblock_free_all): "),     # memmap_init on the calling thread
])
def test_sigint_stops_a_real_boot_with_status_130_and_no_traceback(policy, marker):
    code, waited, out, err = _interrupt_cli(marker, "-p", policy)
    assert code == 130, err[-2000:]
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.endswith("pgdefer: interrupted"), err[-2000:]
    assert "Traceback" not in err
    assert out == ""  # no half report
    print(f"{policy}: exited {waited:.2f} s after SIGINT")  # the figure, for the log (no timing assertion)


class Stop(Exception):
    """What this test's SIGINT handler raises (Python's default handler would raise KeyboardInterrupt)."""


def _boot_interrupted(policy, phase):
    """Build BIG under ``policy``, send SIGINT from a thread once the core reports pages done in ``phase``
    ("boot" or "page_alloc_init_late"); return (machine, the exception the phase raised)."""
    m = Machine(presets.get(BIG), policy=policy)

    def signal_when_running():
        while m.progress()[0] != phase or m.progress()[1] == 0:
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGINT)

    def handler(signum, frame):
        raise Stop("SIGINT")

    old = signal.signal(signal.SIGINT, handler)
    try:
        if phase != "boot":
            m.boot()
        sender = threading.Thread(target=signal_when_running, daemon=True)
        sender.start()
        with pytest.raises(Stop) as e:
            m.boot() if phase == "boot" else m.page_alloc_init_late()
        sender.join(10)
    finally:
        signal.signal(signal.SIGINT, old)
    return m, e.value


@pytest.mark.parametrize(("policy", "phase"), [("eager", "boot"), ("v4.17", "page_alloc_init_late")])
def test_a_signal_raises_out_of_the_core_and_marks_the_machine_interrupted(policy, phase):
    m, exc = _boot_interrupted(policy, phase)
    # The handler's own exception, with the core's note on what it left.
    assert any("interrupted half way" in n and phase in n for n in getattr(exc, "__notes__", [])), exc
    assert m.phase == "interrupted"
    stage, done, total = m.progress()
    assert stage == "idle" and 0 < done < total  # stopped part way: some but not all pages initialised
    with pytest.raises(errors.PhaseError, match="interrupted"):
        m.alloc_pages(0)
    with pytest.raises(errors.PhaseError):
        m.page_alloc_init_late()


def test_without_a_signal_progress_ends_idle_with_every_page_initialised():
    m = Machine(presets.get("default"), policy="v4.17")
    assert m.progress() == ("idle", 0, len(m.pages))
    m.boot()
    stage, early, total = m.progress()
    assert stage == "idle" and 0 < early < total  # the early prefix only (the rest is deferred)
    m.page_alloc_init_late()
    # Every struct page of the memmap is initialised exactly once by then (holes, reserved, free).
    assert m.progress() == ("idle", total, total)


class _FakeTTY:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_line_shows_pages_percent_and_time_left():
    tty = _FakeTTY()
    readings = iter([("page_alloc_init_late", 50, 200), ("page_alloc_init_late", 100, 200)])
    p = Progress(True, stream=tty, delay=0)
    p.done()  # no ticker: this test draws by hand
    p.watch(lambda: next(readings))
    p.step("v4.17: page_alloc_init_late")
    assert "v4.17: page_alloc_init_late: 50 / 200 struct pages (25%)" in tty.text
    assert "left" not in tty.text  # no rate yet from one reading
    p.step("v4.17: page_alloc_init_late")
    # 50 more pages in the time since the first reading, 100 still to do: twice that time left.
    assert "100 / 200 struct pages (50%), ~" in tty.text and tty.text.endswith(" s left")


def test_progress_flags():
    def args(**kw):
        return types.SimpleNamespace(**{"quiet": False, "json": False, "progress": False, **kw})

    pipe = types.SimpleNamespace(isatty=lambda: False, write=None, flush=None)
    assert not Progress(True, stream=pipe).enabled
    assert Progress(True, stream=pipe, force=True).enabled  # --progress on a pipe
    # --quiet always wins; --json is quiet unless --progress asks.
    for kw, shown in [({"quiet": True, "progress": True}, False), ({"json": True, "progress": True}, True),
                      ({"json": True}, False)]:
        with _progress(args(**kw)) as p:
            assert p.enabled == shown, kw

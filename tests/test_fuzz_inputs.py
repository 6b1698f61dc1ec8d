"""Bounded fuzzing of the two loaders users feed files to, and the linear-work property (issue 15, finding 5,
acceptance 4).

* mangled real boot logs (``../shared/bootlogs`` and ``../shared/kernel-lab``, read in place): lines deleted,
  duplicated, swapped, cut, numbers made huge or garbage, bytes flipped. ``Topology.from_dmesg`` either builds a
  topology or raises a one-line ``DmesgError``; the keyword prefilter of the parser never changes the result.
* mangled topology files (every preset written as TOML and JSON): the loader either builds a topology or raises
  a one-line ``TopologyError``.
* work grows linearly with the input, counted as Python function calls (not wall time): 4x the regions or log
  lines cost at most ~4x the calls; a range 2^14 times larger costs the same.

Timing belongs to ``benches/bench_inputs.py`` (100 MB inputs), not here.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgdefer import Topology
from pgdefer.errors import DmesgError, PgdeferError, TopologyError
from pgdefer.sources import presets
from pgdefer.sources.dmesg import DmesgParser, clean_line
from pgdefer.sources.files import dumps, loads
from shared_data import BOOTLOGS, KERNEL_LAB, files, need

REAL_LOGS = [p for p in files(BOOTLOGS, "*.log") + files(KERNEL_LAB, "*.log")]
_TEXT: dict = {}


def _log_text(path) -> str:
    if path not in _TEXT:
        need(path)
        _TEXT[path] = path.read_text(errors="replace")
    return _TEXT[path]


_NASTY = ["0x" + "f" * 40, "9" * 30, "-1", "0x", "]", "[mem 0x0-0xffffffffffffffff]", "\x00", "é", "\ufffd",
          "node   0: [mem 0x0000000000000000-0x000fffffffffffff]", "nr_cpu_ids:99999999", ""]


@st.composite
def _mangled(draw, lines):
    lines = list(lines)
    for _ in range(draw(st.integers(1, 8))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "cut", "number", "nasty", "flip", "truncate"]))
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines[i:i] = [lines[i]] * draw(st.integers(1, 3))
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "cut":
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        elif kind == "number":
            import re

            nums = list(re.finditer(r"0x[0-9a-fA-F]+|\d+", lines[i]))
            if nums:
                m = nums[draw(st.integers(0, len(nums) - 1))]
                lines[i] = lines[i][:m.start()] + draw(st.sampled_from(_NASTY)) + lines[i][m.end():]
        elif kind == "nasty":
            lines.insert(i, draw(st.sampled_from(_NASTY)))
        elif kind == "flip":
            if lines[i]:
                k = draw(st.integers(0, len(lines[i]) - 1))
                lines[i] = lines[i][:k] + chr(ord(lines[i][k]) ^ draw(st.integers(1, 127))) + lines[i][k + 1:]
        else:
            del lines[i:]
    return lines


def _log_lines(path):
    """The lines of a real log that matter most (the early boot, up to the Memory: line, and the per-node
    deferred-init lines), so that mutations hit the memory map rather than driver noise."""
    text = _log_text(path)
    return text.splitlines()


def _parse(msgs, prefilter):
    try:
        return DmesgParser(len(msgs)).parse(msgs, prefilter=prefilter)
    except DmesgError as e:
        return str(e)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mangled_real_logs_give_a_topology_or_a_dmesg_error(data):
    path = data.draw(st.sampled_from(REAL_LOGS), label="log")
    lines = data.draw(_mangled(_log_lines(path)), label="mangled")
    text = "\n".join(lines) + "\n"
    msgs = [clean_line(line) for line in text.splitlines()]
    # the parser's keyword prefilter only skips lines no family would take: the same boot, or the same error
    assert _parse(msgs, True) == _parse(msgs, False)
    try:
        topo = Topology.from_dmesg(text)
    except PgdeferError as e:
        assert isinstance(e, (DmesgError, TopologyError)), repr(e)
        assert str(e) and "\n" not in str(e)
        return
    assert topo.present_pages > 0 and topo.memmap_pages >= topo.present_pages


def _topology_texts():
    out = []
    for name in presets.names():
        t = presets.get(name)
        out += [(dumps(t, ".toml"), ".toml"), (dumps(t, ".json"), ".json")]
    return out


TOPOLOGY_TEXTS = _topology_texts()
_CHARS = st.sampled_from(list('[]{}",=.-_0123456789xXeE \n#') + ["0x" + "f" * 30, "9" * 25, '"16M"', "null",
                                                                   "true", "[" * 50, "node", "start", "end"])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mangled_topology_files_give_a_topology_or_a_topology_error(data):
    text, fmt = data.draw(st.sampled_from(TOPOLOGY_TEXTS), label="file")
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(text)))
        kind = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(_CHARS)
        k = data.draw(st.integers(0, 40))
        text = (text[:i] + piece + text[i:] if kind == "insert" else
                text[:i] + text[i + k:] if kind == "delete" else text[:i] + piece + text[i + len(piece):])
    try:
        topo = loads(text, fmt)
    except TopologyError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert topo.present_pages > 0


# ------------------------------------------------------------------------------------------------------
# work grows linearly: Python calls counted with sys.setprofile (deterministic; no wall time)
# ------------------------------------------------------------------------------------------------------

def _calls(fn) -> int:
    n = 0

    def prof(frame, event, arg):
        nonlocal n
        if event in ("call", "c_call"):
            n += 1

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return n


def _topology_file(n: int) -> str:
    """n memory regions of 512 MiB, 1 GiB apart, on n / 4 nodes, each with a reserved page."""
    import json

    mem = [{"start": i << 30, "end": (i << 30) + (1 << 29), "node": i % max(1, n // 4)} for i in range(n)]
    res = [{"start": (i << 30) + 4096, "end": (i << 30) + 8192} for i in range(n)]
    return json.dumps({"memory": mem, "reserved": res})


def _show(text: str):
    from pgdefer.cli import format_topology, topology_data

    return format_topology(topology_data(loads(text, ".json"), "x"))


def _log(n: int) -> str:
    """A boot log with n memory ranges (n / 4 nodes), n placed reservations and n lines of noise."""
    lines = ["Linux version 6.1.0-test", "Early memory node ranges"]
    lines += [f"  node {i % max(1, n // 4):3d}: [mem {i << 30:#018x}-{(i << 30) + (1 << 29) - 1:#018x}]"
              for i in range(n)]
    lines += [f"BRK [{(i << 30) + 4096:#010x}, {(i << 30) + 8191:#010x}] PGTABLE" for i in range(n)]
    lines += [f"usb 1-{i}: new high-speed USB device number {i} using xhci_hcd" for i in range(n)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("what,make,run", [
    ("topology file", _topology_file, lambda t: loads(t, ".json")),
    ("topology show", _topology_file, _show),
    ("boot log", _log, Topology.from_dmesg),
], ids=["from_file", "topology show", "from_dmesg"])
def test_work_grows_linearly_with_the_input(what, make, run):
    small, large = make(64), make(256)
    c_small, c_large = _calls(lambda: run(small)), _calls(lambda: run(large))
    # 4x the input: at most 4.5x the calls (a quadratic loop would give ~16x)
    assert c_large <= 4.5 * c_small, f"{what}: {c_small} calls for 64, {c_large} for 256"


def test_work_does_not_grow_with_the_size_of_a_range():
    """One node range of 2^4 or of 2^18 sections: the same work (sections are counted per range)."""
    def topo(sections):
        return Topology([(0, sections << 27)])

    def sizes(t):
        from pgdefer.sources.x86 import node_memmap_sections

        return t.memmap_pages, node_memmap_sections(t.memory_pfn_ranges(), t.geometry.pages_per_section)

    small, large = topo(16), topo(1 << 18)
    assert sizes(small) == (16 * 32768, {0: 16})
    assert sizes(large) == (2**18 * 32768, {0: 2**18})  # 2^18 sections of 32768 pages
    assert _calls(lambda: sizes(large)) == _calls(lambda: sizes(small))  # both after a first call (cached)
    # and the boot-log import of such a range (memmaps placed per node, not per section)
    log = "Linux version 6.1.0\nEarly memory node ranges\n  node   0: [mem 0x0-{:#x}]\n"
    c_small = _calls(lambda: Topology.from_dmesg(log.format((16 << 27) - 1)))
    c_large = _calls(lambda: Topology.from_dmesg(log.format((1 << 45) - 1)))
    assert c_large <= 1.2 * c_small, (c_small, c_large)

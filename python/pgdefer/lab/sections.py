"""What a kernel-lab serial log holds beyond an ordinary boot log, read as plain data.

* **memblock=debug**: the last ``MEMBLOCK configuration:`` dump (``memblock_dump_all``: memblock.memory and
  memblock.reserved at that moment, including what was reserved before ``memblock=debug`` was parsed, such as
  the kernel image ``[_text, _end)``), then every ``memblock_reserve`` / ``memblock_phys_free`` /
  ``memblock_free`` with its range and every ``memblock_alloc*`` / ``memblock_phys_alloc*`` request (size,
  align, nid, limits, caller) printed after it. Replaying them gives memblock.reserved as
  ``memblock_free_all`` saw it — exactly, not estimated (:meth:`LabLog.reserved_at_free_all`).
* **the page-allocation trace** (``kmem:mm_page_alloc`` / ``kmem:mm_page_free`` with ``tp_printk``): see
  :mod:`pgdefer.lab.trace`.
* **the /proc dumps** between ``=== pgdefer-lab: <file>`` markers: ``/proc/zoneinfo`` (present, spanned,
  managed, free per zone), ``/proc/iomem`` (where KASLR put the kernel image), ``/proc/meminfo``,
  ``/proc/buddyinfo``, ``/proc/pagetypeinfo``.

Console output can interleave with these lines (a trace line glued to a marker line); complete records are
recovered wherever they sit in a line, and a record cut by other output is an error naming the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DmesgError
from ..userfile import read_user_file
from .initramfs import MARKER

_TS = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_GLUED = re.compile(r"\[\s*\d+\.\d+\] ")
_H = r"0x[0-9a-fA-F]+"
RE_RESERVE = re.compile(rf"(memblock_reserve|memblock_phys_free|memblock_free|memblock_free_late): "
                        rf"\[({_H})-({_H})\]\s*(\S*)")
RE_ALLOC = re.compile(rf"(memblock_alloc\w*|memblock_phys_alloc\w*): (\d+) bytes align=({_H}) "
                      rf"(?:nid=(-?\d+) )?from=({_H}) max_addr=({_H})\s*(\S*)")
RE_CONFIG_RES = re.compile(rf"^\s*reserved\[{_H}\]\s+\[({_H})-({_H})\], ({_H}) bytes")
RE_CONFIG_MEM = re.compile(rf"^\s*memory\[{_H}\]\s+\[({_H})-({_H})\], ({_H}) bytes(?: on node (\d+))?")


@dataclass(frozen=True)
class MemblockOp:
    """One memblock=debug line: ``kind`` is reserve, free (memblock_phys_free / memblock_free), free_late
    (memblock_free_late: straight to the buddy allocator) or alloc (a request; its reserve line follows)."""

    kind: str
    start: int
    end: int              # half-open; for alloc: start = 0, end = size
    caller: str
    line: int
    func: str = ""
    align: int = 0
    nid: int | None = None


@dataclass(frozen=True)
class ZoneFacts:
    """One zone of ``/proc/zoneinfo`` after boot."""

    node: int
    zone: str
    present: int
    spanned: int
    managed: int
    free: int
    start_pfn: int | None = None


@dataclass
class LabLog:
    """The kernel-lab sections of one serial log (see the module docstring)."""

    path: str | None
    config_memory: list = field(default_factory=list)    # [(start, end, node or None)] of the last dump
    config_reserved: list = field(default_factory=list)  # [(start, end)] of the last dump
    config_line: int | None = None
    memblock_ops: list = field(default_factory=list)     # [MemblockOp] after the last dump, before Memory:
    proc: dict = field(default_factory=dict)             # "/proc/zoneinfo" -> text
    complete: bool = False                               # the "end" marker was seen
    memory_line_no: int | None = None

    @property
    def has_memblock_debug(self) -> bool:
        return self.config_line is not None

    def reserved_at_free_all(self) -> list:
        """memblock.reserved when memblock_free_all runs: the last dump's reserved ranges, then every later
        reserve added and every free carved out, in log order (half-open byte ranges, merged, sorted)."""
        live = sorted(self.config_reserved)
        for op in self.memblock_ops:
            if op.kind == "reserve":
                live = _merge(live + [(op.start, op.end)])
            elif op.kind == "free":
                live = _carve(live, op.start, op.end)
        return live

    def zoneinfo(self) -> list:
        """[ZoneFacts] from the /proc/zoneinfo dump ([] when the log has none)."""
        return parse_zoneinfo(self.proc.get("/proc/zoneinfo", ""))

    def kernel_image(self) -> tuple | None:
        """(start, end) of the kernel image per /proc/iomem: 'Kernel code' start to 'Kernel bss' end."""
        return parse_iomem_kernel(self.proc.get("/proc/iomem", ""))

    def meminfo(self) -> dict:
        """/proc/meminfo as {field: kB}."""
        out = {}
        for line in self.proc.get("/proc/meminfo", "").splitlines():
            m = re.match(r"^(\w+(?:\(\w+\))?):\s+(\d+)", line)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out


def _merge(ranges):
    out = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _carve(ranges, s, e):
    out = []
    for a, z in ranges:
        if z <= s or a >= e:
            out.append((a, z))
            continue
        if a < s:
            out.append((a, s))
        if z > e:
            out.append((e, z))
    return out


def _message(line: str) -> str:
    return _TS.sub("", line.rstrip("\r\n"), count=1)


def read_text(text_or_path) -> tuple:
    """(text, path or None): a Path or a one-line str is a file name (missing file: one DmesgError line)."""
    if isinstance(text_or_path, bytes):
        return text_or_path.decode("utf-8", errors="replace"), None
    if isinstance(text_or_path, Path) or (isinstance(text_or_path, str) and "\n" not in text_or_path):
        p = Path(text_or_path)
        return read_user_file(p, "kernel-lab log", DmesgError).decode("utf-8", errors="replace"), str(p)
    return str(text_or_path), None


def parse_lab_log(text_or_path) -> LabLog:  # noqa: C901 - one pass over the log, one branch per section
    """Read the memblock=debug lines and the /proc dumps of a kernel-lab serial log."""
    text, path = read_text(text_or_path)
    lab = LabLog(path)
    current = None        # /proc file being dumped
    buf: list = []
    seen_memory = False
    in_config = False
    for no, raw in enumerate(text.splitlines(), 1):
        if MARKER in raw:
            head, _, rest = raw.partition(MARKER)
            name = _GLUED.split(rest, maxsplit=1)[0].strip()  # a printk glued to the marker
            if current is not None:
                lab.proc[current] = "\n".join(buf)
            buf = []
            if name == "end":
                lab.complete = True
                current = None
            else:
                current = name
            continue
        if current is not None:
            if _TS.match(raw):     # console output (a printk) inside a dump: not part of the file
                continue
            buf.append(_GLUED.split(raw.rstrip("\r\n"), maxsplit=1)[0])  # a printk glued to a dump line
            continue
        msg = _message(raw)
        if seen_memory:
            continue
        if msg.startswith("Memory: ") and "available" in msg:
            seen_memory = True
            lab.memory_line_no = no
            continue
        if msg.startswith("MEMBLOCK configuration:"):
            in_config = True
            lab.config_line = no
            lab.config_memory, lab.config_reserved, lab.memblock_ops = [], [], []
            continue
        if in_config:
            m = RE_CONFIG_RES.match(msg)
            if m:
                lab.config_reserved.append((int(m.group(1), 16), int(m.group(2), 16) + 1))
                continue
            m = RE_CONFIG_MEM.match(msg)
            if m:
                lab.config_memory.append((int(m.group(1), 16), int(m.group(2), 16) + 1,
                                          int(m.group(4)) if m.group(4) else None))
                continue
            if msg.startswith(" ") or msg.startswith("\t"):
                continue
            in_config = False
        if lab.config_line is None:
            continue
        m = RE_RESERVE.search(msg)
        if m:
            kind = {"memblock_reserve": "reserve", "memblock_free_late": "free_late"}.get(m.group(1), "free")
            lab.memblock_ops.append(MemblockOp(kind, int(m.group(2), 16), int(m.group(3), 16) + 1, m.group(4), no,
                                               m.group(1)))
            continue
        m = RE_ALLOC.search(msg)
        if m:
            lab.memblock_ops.append(MemblockOp("alloc", 0, int(m.group(2)), m.group(7), no, m.group(1),
                                               int(m.group(3), 16), int(m.group(4)) if m.group(4) else None))
    if current is not None:
        lab.proc[current] = "\n".join(buf)
    return lab


def parse_zoneinfo(text: str) -> list:
    out = []
    cur = None
    for line in text.splitlines():
        m = re.match(r"^Node (\d+), zone\s+(\w+)", line)
        if m:
            if cur:
                out.append(cur)
            cur = {"node": int(m.group(1)), "zone": m.group(2), "present": None, "spanned": None,
                   "managed": None, "free": None, "start_pfn": None}
            continue
        if cur is None:
            continue
        s = line.strip()
        m = re.match(r"^pages free\s+(\d+)", s)
        if m:
            cur["free"] = int(m.group(1))
            continue
        m = re.match(r"^(spanned|present|managed)\s+(\d+)$", s)
        if m:
            cur[m.group(1)] = int(m.group(2))
            continue
        m = re.match(r"^start_pfn:\s+(\d+)", s)
        if m:
            cur["start_pfn"] = int(m.group(1))
    if cur:
        out.append(cur)
    bad = [z for z in out if None in (z["present"], z["spanned"], z["managed"])]
    if bad:
        z = bad[0]
        raise DmesgError(f"/proc/zoneinfo dump: node {z['node']} zone {z['zone']} lacks present/spanned/managed "
                         "(the dump is cut off)")
    return [ZoneFacts(z["node"], z["zone"], z["present"], z["spanned"], z["managed"], z["free"] or 0,
                      z["start_pfn"]) for z in out]


def parse_iomem_kernel(text: str):
    spans = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([0-9a-fA-F]+)-([0-9a-fA-F]+) : Kernel (code|rodata|data|bss)\s*$", line)
        if m:
            spans[m.group(3)] = (int(m.group(1), 16), int(m.group(2), 16) + 1)
    if "code" not in spans:
        return None
    return min(s for s, _ in spans.values()), max(e for _, e in spans.values())

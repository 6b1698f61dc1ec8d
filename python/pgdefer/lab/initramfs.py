"""The lab's initramfs: Debian's static busybox and an ``/init`` that dumps ``/proc`` and powers off.

Written as a newc ("070701") cpio archive by :func:`write_newc` — no ``cpio`` binary needed and no device
node to create on the host (``/dev/console`` is an archive entry). ``/init`` mounts proc and sysfs, takes a
copy of ``/proc/vmstat`` while the trace still prints (its ``pgalloc_*`` counters against the trace say what
the trace never showed), stops the tracepoints printing to the console
(``/proc/sys/kernel/tracepoint_printk``; the dumps would otherwise be interleaved with trace lines), prints
each of :data:`PROC_FILES` and then that copy between ``=== pgdefer-lab: <file>`` marker lines, prints
``=== pgdefer-lab: end`` and runs ``poweroff -f``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: The /proc files the initramfs dumps, in order.
PROC_FILES = ("/proc/zoneinfo", "/proc/buddyinfo", "/proc/pagetypeinfo", "/proc/iomem", "/proc/meminfo")
#: Also dumped (after PROC_FILES), but read just before /init stops the trace printing: its pgalloc_* and
#: pgfree counters then cover the same allocations as the trace plus those it never showed.
VMSTAT = "/proc/vmstat"
MARKER = "=== pgdefer-lab: "

INIT_SCRIPT = """#!/bin/busybox sh
# pgdefer lab: dump the memory state the model is compared with, then power off.
/bin/busybox mkdir -p /proc /sys
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox cat /proc/vmstat > /vmstat
echo 0 > /proc/sys/kernel/tracepoint_printk 2>/dev/null
for f in {files}; do
  echo "{marker}$f"
  /bin/busybox cat "$f"
done
echo "{marker}/proc/vmstat"
/bin/busybox cat /vmstat
echo "{marker}end"
/bin/busybox sync
/bin/busybox poweroff -f
""".format(files=" ".join(PROC_FILES), marker=MARKER)

S_IFDIR, S_IFREG, S_IFCHR = 0o040000, 0o100000, 0o020000


def _entry(ino: int, name: str, mode: int, data: bytes = b"", rdev=(0, 0)) -> bytes:
    """One newc header + name + data, each padded to 4 bytes (the kernel's init/initramfs.c format)."""
    nameb = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 2 if mode & S_IFDIR else 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nameb), 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = hdr + nameb
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def write_newc(entries) -> bytes:
    """A newc archive of ``entries``: (name, mode, data bytes, (rdev major, minor)), ending in the trailer."""
    out = b""
    ino = 1
    for name, mode, data, rdev in entries:
        out += _entry(ino, name, mode, data, rdev)
        ino += 1
    out += _entry(ino, "TRAILER!!!", 0)
    return out + b"\0" * (-len(out) % 512)


def initramfs_bytes(busybox: bytes) -> bytes:
    """The archive: /bin/busybox, /init, /dev/console (char 5:1), empty /proc and /sys."""
    return write_newc([
        ("bin", S_IFDIR | 0o755, b"", (0, 0)),
        ("bin/busybox", S_IFREG | 0o755, busybox, (0, 0)),
        ("dev", S_IFDIR | 0o755, b"", (0, 0)),
        ("dev/console", S_IFCHR | 0o600, b"", (5, 1)),
        ("proc", S_IFDIR | 0o755, b"", (0, 0)),
        ("sys", S_IFDIR | 0o755, b"", (0, 0)),
        ("init", S_IFREG | 0o755, INIT_SCRIPT.encode(), (0, 0)),
    ])


def build_initramfs(busybox_path: Path, cache: Path) -> Path:
    """Write (once per busybox binary and /init script) ``CACHE/initramfs/initrd-<hash>.cpio``."""
    data = Path(busybox_path).read_bytes()
    digest = hashlib.sha256(data + INIT_SCRIPT.encode()).hexdigest()[:16]
    out = Path(cache) / "initramfs" / f"initrd-{digest}.cpio"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(initramfs_bytes(data))
        tmp.replace(out)
    return out

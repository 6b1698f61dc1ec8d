"""Layouts and the QEMU runner: one real boot of a real kernel, its serial log and a manifest.

The command line is the one of ``../shared/kernel-lab/README.md`` (one ``memory-backend-ram`` per NUMA node,
``-numa node,nodeid=N[,cpus=A-B],memdev=mN``; a single-node boot has no ``-numa`` options), always with
``memblock=debug``. QEMU runs in its own process group: a timeout or Ctrl-C kills the whole group, so no
QEMU is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LabError
from .initramfs import MARKER

QEMU = "qemu-system-x86_64"
TRACE_CMDLINE = "trace_event=kmem:mm_page_alloc,kmem:mm_page_free tp_printk trace_buf_size=1M"
#: --trace-pcp: also every move between the buddy lists and the per-CPU lists (rmqueue_bulk refills and
#: direct takes: mm_page_alloc_zone_locked; free_pcppages_bulk: mm_page_pcpu_drain), which nr_free_pages() sees
#: and mm_page_alloc/free do not.
TRACE_PCP_CMDLINE = ("trace_event=kmem:mm_page_alloc,kmem:mm_page_free,kmem:mm_page_alloc_zone_locked,"
                     "kmem:mm_page_pcpu_drain tp_printk trace_buf_size=1M")
BASE_CMDLINE = "console=ttyS0 panic=-1 memblock=debug"
#: QEMU's own overhead beyond guest RAM, for the host-memory check (TCG translation cache and friends).
QEMU_OVERHEAD_MIB = 512


@dataclass(frozen=True)
class LabNode:
    """One NUMA node of the guest: its memory in MiB and how many CPUs it has (0 = a CPU-less node)."""

    mib: int
    cpus: int = 1


@dataclass(frozen=True)
class Layout:
    """A guest: NUMA nodes, extra kernel command line, and whether the page-allocation trace is on."""

    nodes: tuple
    cmdline: tuple = ()
    trace: bool = False
    name: str = "lab"
    trace_pcp: bool = False     # the trace also has the per-CPU list refills and drains (implies trace)
    notes: tuple = field(default=(), compare=False)

    def __post_init__(self):
        if not self.nodes:
            raise LabError("a lab layout needs at least one node")
        for i, n in enumerate(self.nodes):
            if n.mib < 64:
                raise LabError(f"node {i}: {n.mib} MiB is too small to boot (at least 64 MiB per node)")
            if n.cpus < 0:
                raise LabError(f"node {i}: a negative CPU count ({n.cpus})")
        if self.cpus < 1:
            raise LabError("a lab layout needs at least one CPU (every node is CPU-less)")

    @property
    def cpus(self) -> int:
        return sum(n.cpus for n in self.nodes)

    @property
    def total_mib(self) -> int:
        return sum(n.mib for n in self.nodes)

    def cpu_lists(self) -> list:
        """Per node, its CPU ids as QEMU's ``cpus=`` value ("" for a CPU-less node)."""
        out, nxt = [], 0
        for n in self.nodes:
            if n.cpus == 0:
                out.append("")
            elif n.cpus == 1:
                out.append(str(nxt))
            else:
                out.append(f"{nxt}-{nxt + n.cpus - 1}")
            nxt += n.cpus
        return out

    def nodes_mib_cpus(self) -> str:
        """The manifest's ``nodes_mib_cpus``: "1024" for one node, else "MIB:CPUS ..." per node."""
        if len(self.nodes) == 1:
            return str(self.nodes[0].mib)
        return " ".join(f"{n.mib}:{c}" if c else f"{n.mib}:-" for n, c in zip(self.nodes, self.cpu_lists()))

    def cmdline_extra(self) -> str:
        trace = [TRACE_PCP_CMDLINE] if self.trace_pcp else [TRACE_CMDLINE] if self.trace else []
        return " ".join([*self.cmdline, *trace])

    def kernel_cmdline(self) -> str:
        return f"{BASE_CMDLINE} {self.cmdline_extra()}".rstrip()

    def qemu_args(self, kernel, initrd, log, accel="tcg") -> list:
        argv = [QEMU, "-accel", accel, "-smp", str(self.cpus), "-m", f"{self.total_mib}M"]
        if len(self.nodes) > 1:
            for i, (n, cpus) in enumerate(zip(self.nodes, self.cpu_lists())):
                argv += ["-object", f"memory-backend-ram,id=m{i},size={n.mib}M",
                         "-numa", f"node,nodeid={i}" + (f",cpus={cpus}" if cpus else "") + f",memdev=m{i}"]
        argv += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", self.kernel_cmdline(),
                 "-display", "none", "-no-reboot", "-serial", f"file:{log}", "-monitor", "none"]
        return argv


_SIZE = re.compile(r"^(\d+)([MmGg]?)(?:i?[Bb])?$")


def parse_node(spec: str) -> LabNode:
    """``SIZE[:CPUS]``: ``2G``, ``1024M:2``, ``512:0`` (a CPU-less node). Sizes in MiB unless suffixed."""
    size, _, cpus = spec.partition(":")
    m = _SIZE.match(size.strip())
    if not m:
        raise LabError(f"--node {spec!r}: the size must be like 1024, 1024M or 2G (then :CPUS, e.g. 2G:1)")
    mib = int(m.group(1)) * (1024 if m.group(2).lower() == "g" else 1)
    try:
        ncpu = int(cpus) if cpus else 1
    except ValueError:
        raise LabError(f"--node {spec!r}: CPUS must be a number (0 for a CPU-less node)") from None
    return LabNode(mib, ncpu)


def layout_from_topology(topo, cpus_per_node: int = 1, **kw) -> Layout:
    """A guest with the topology's nodes and their memory sizes (rounded up to MiB). QEMU decides the physical
    placement itself (below the PCI hole, then from 4 GiB), so only the per-node sizes carry over."""
    sizes: dict[int, int] = {}
    for s, e, n in topo.memory_pfn_ranges():
        sizes[n] = sizes.get(n, 0) + (e - s) * topo.geometry.page_size
    nodes = tuple(LabNode(max(64, -(-b // (1 << 20))), cpus_per_node) for _, b in sorted(sizes.items()))
    return Layout(nodes, name=topo.name or "lab", notes=(f"node sizes from topology {topo.name}",), **kw)


def qemu_version(qemu: str) -> str:
    try:
        out = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "unknown"


def kvm_usable(dev="/dev/kvm") -> bool:
    """True when /dev/kvm opens and KVM_CREATE_VM succeeds (a device node alone is not enough)."""
    import fcntl

    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, 0xAE00) != 12:  # KVM_GET_API_VERSION
            return False
        vm = fcntl.ioctl(fd, 0xAE01, 0)     # KVM_CREATE_VM
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def find_qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise LabError(f"{QEMU} not found on PATH: install QEMU (Debian: apt-get install qemu-system-x86)")
    return path


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def boot_outcome(text: str) -> str | None:
    """None when the serial log shows a complete lab boot (the ``end`` marker), else one line saying how it
    ended: a kernel panic (its line), or where the log stops."""
    if f"{MARKER}end" in text:
        return None
    for line in text.splitlines():
        if "Kernel panic" in line:
            return "the kernel panicked: " + line.split("] ", 1)[-1].strip()
    lines = [x for x in text.splitlines() if x.strip()]
    return "the log stops before the lab's end marker" + (f"; last line: {lines[-1].strip()[:160]}" if lines
                                                          else " (empty log)")


def run_boot(layout: Layout, kernel: Path, initrd: Path, out_log: Path, timeout: float = 600, accel="tcg",
             manifest_extra=None, progress=None) -> dict:
    """Boot ``kernel`` on ``layout`` under QEMU; write ``out_log`` and ``<stem>.manifest.json`` beside it.

    Returns the manifest. Raises :class:`LabError` when QEMU or the kernel is missing, QEMU fails, the boot
    does not power off within ``timeout`` seconds, or the log does not reach the lab's end marker.
    """
    qemu = find_qemu()
    kernel = Path(kernel)
    if not kernel.is_file():
        raise LabError(f"{kernel}: no such kernel image file")
    if accel == "auto":
        accel = "kvm" if kvm_usable() else "tcg"
    out_log = Path(out_log)
    out_log.parent.mkdir(parents=True, exist_ok=True)
    if out_log.exists():
        out_log.unlink()
    argv = layout.qemu_args(kernel, initrd, out_log, accel)
    if progress:
        progress(f"booting {kernel.name} on {layout.nodes_mib_cpus()} MiB ({accel}), log {out_log}")
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise LabError(f"the boot did not finish within {timeout:g} s (QEMU killed); the partial log is "
                       f"{out_log}") from None
    except BaseException:
        _kill_group(proc)
        raise
    elapsed = time.monotonic() - t0
    text = out_log.read_text(errors="replace") if out_log.exists() else ""
    if proc.returncode != 0 and f"{MARKER}end" not in text:
        last = (err.decode(errors="replace").strip().splitlines() or ["(no message)"])[-1]
        raise LabError(f"{QEMU} exited with status {proc.returncode}: {last}")
    problem = boot_outcome(text)
    if problem:
        raise LabError(f"{out_log}: {problem}")
    manifest = {
        "kernel": kernel.name, "smp": layout.cpus, "nodes_mib_cpus": layout.nodes_mib_cpus(),
        "total_mib": layout.total_mib, "cmdline_extra": layout.cmdline_extra(),
        "qemu": f"{QEMU} {'.'.join(qemu_version(qemu).split('.')[:2])} -accel {accel}",
        "qemu_version": qemu_version(qemu), "kernel_path": str(kernel), "trace": layout.trace or layout.trace_pcp,
        "trace_pcp": layout.trace_pcp,
        "layout": layout.name, "argv": argv, "boot_seconds": round(elapsed, 1),
    }
    manifest.update(manifest_extra or {})
    manifest_path(out_log).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def manifest_path(log: Path) -> Path:
    log = Path(log)
    return log.with_name(log.stem + ".manifest.json")

"""``pgdefer lab corpus``: boot a list of layouts and record them, a reference set of one's own.

A corpus file (TOML) lists the boots; top-level keys are defaults for every ``[[boot]]``::

    kernel = "linux-image-amd64"        # a kernel image (path, relative to this file) or a Debian package
    timeout = 600                       # seconds per boot

    [[boot]]
    name = "two-node-crash"             # the log is DIR/two-node-crash.log, beside it its .manifest.json
    nodes = ["2G:1", "2G:0"]            # SIZE[:CPUS] per NUMA node, as lab boot --node (0 = CPU-less)
    trace = true                        # the kmem page-allocation trace (trace_pcp = true: also pcp moves)
    crashkernel = "128M"                # also: mem, movablecore (strings), memmap (list), append (string)
    kernel = "/src/linux/arch/x86/boot/bzImage"   # per boot, overrides the default

Each boot is one :func:`pgdefer.lab.qemu.run_boot` (the same as ``pgdefer lab boot``); ``DIR/corpus.json``
indexes them (layout, kernel, status, boot time and, with ``--compare``, the Memory: line predicted vs real)
and is rewritten after every boot, so an interrupted run keeps what it has; ``--resume`` skips boots whose
log is already complete. A failed boot is a row with its one-line error; the rest still run.
:data:`KERNEL_LAB` is the file that made ``../shared/kernel-lab`` (``pgdefer lab corpus --example``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

try:  # Python 3.11+
    import tomllib
except ImportError:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib  # type: ignore[no-redef]

from ..errors import PgdeferError
from .errors import LabError

#: The eight boots of ../shared/kernel-lab (its README's table), as a corpus file.
KERNEL_LAB = """\
# The boots of the project's kernel lab (../shared/kernel-lab): Debian bookworm's 6.1 and 6.12 kernels.
# pgdefer lab corpus THIS_FILE -o DIR [--compare]
kernel = "linux-image-amd64"          # Debian's default kernel: 6.1 on bookworm
timeout = 900

[[boot]]
name = "lab01-612-1node-1g"
kernel = "linux-image-6.12-amd64"
nodes = ["1024M:1"]
trace = true

[[boot]]
name = "lab02-61-1node-3g"
nodes = ["3072M:2"]
trace = true

[[boot]]
name = "lab03-612-2node-2g2g"
kernel = "linux-image-6.12-amd64"
nodes = ["2048M:1", "2048M:1"]
trace = true

[[boot]]
name = "lab04-61-2node-1g3g"
nodes = ["1024M:1", "3072M:1"]
trace = true

[[boot]]
name = "lab05-612-4node-1g"
kernel = "linux-image-6.12-amd64"
nodes = ["1024M:1", "1024M:1", "1024M:1", "1024M:1"]
trace = true

[[boot]]
name = "lab06-61-1node-5g-crash"
nodes = ["5120M:2"]
crashkernel = "128M"
trace = true

[[boot]]
name = "lab07-612-1node-6g-mem"
kernel = "linux-image-6.12-amd64"
nodes = ["6144M:2"]
mem = "5G"

[[boot]]
name = "lab08-61-2node-10g"
nodes = ["4096M:2", "6144M:2"]
"""

_DEFAULT_KEYS = {"kernel", "timeout", "accel"}
_BOOT_KEYS = {"name", "nodes", "trace", "trace_pcp", "crashkernel", "mem", "memmap", "movablecore", "append", "kernel",
              "timeout", "accel"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class CorpusBoot:
    """One entry of a corpus file: the layout to boot, the kernel (path or package) and the time limit."""

    layout: object          # pgdefer.lab.qemu.Layout
    kernel: str
    timeout: float
    accel: str

    @property
    def name(self) -> str:
        return self.layout.name


def parse_corpus(text: str, where: str = "<corpus>", base: Path | None = None) -> list:
    """The boots of a corpus file's text, validated: a :class:`LabError` naming the file, the entry and the
    key for anything wrong (unknown key, missing ``nodes``, a bad size, a duplicate name)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LabError(f"{where}: not a valid TOML corpus file: {e}") from None
    top = set(doc) - {"boot"}
    if top - _DEFAULT_KEYS:
        raise LabError(f"{where}: unknown top-level key(s) {', '.join(sorted(top - _DEFAULT_KEYS))} (defaults "
                       f"allowed: {', '.join(sorted(_DEFAULT_KEYS))}; boots go in [[boot]] tables)")
    boots = doc.get("boot")
    if not isinstance(boots, list) or not boots:
        raise LabError(f"{where}: no [[boot]] entries")
    out, seen = [], set()
    for i, b in enumerate(boots, 1):
        cb = _boot(b, f"{where}: boot {i}", doc, base)
        if cb.name in seen:
            raise LabError(f"{where}: boot {cb.name!r}: the name is used twice (each boot writes DIR/NAME.log)")
        seen.add(cb.name)
        out.append(cb)
    return out


def _boot(b, tag: str, doc: dict, base) -> CorpusBoot:
    """One ``[[boot]]`` table, its defaults from the file's top level."""
    from .qemu import Layout, parse_node

    if not isinstance(b, dict):
        raise LabError(f"{tag}: must be a table")
    unknown = set(b) - _BOOT_KEYS
    if unknown:
        raise LabError(f"{tag}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_BOOT_KEYS))})")
    name = b.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise LabError(f"{tag}: 'name' must be a file-name-safe string (letters, digits, . _ -), got {name!r}")
    tag = f"{tag.rsplit(': boot', 1)[0]}: boot {name!r}"
    nodes = b.get("nodes")
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
        raise LabError(f"{tag}: 'nodes' must be a list of SIZE[:CPUS] strings, e.g. [\"2G:1\", \"2G:0\"]")
    trace, trace_pcp = b.get("trace", False), b.get("trace_pcp", False)
    if not isinstance(trace, bool) or not isinstance(trace_pcp, bool):
        raise LabError(f"{tag}: 'trace' and 'trace_pcp' must be true or false")
    try:
        layout = Layout(tuple(parse_node(n) for n in nodes), _cmdline(b, tag), trace, name=name,
                        trace_pcp=trace_pcp)
    except LabError as e:
        raise LabError(f"{tag}: {e}") from None
    kernel = b.get("kernel", doc.get("kernel", "linux-image-amd64"))
    if not isinstance(kernel, str):
        raise LabError(f"{tag}: 'kernel' must be a path or a Debian package name")
    if base is not None and ("/" in kernel or kernel.startswith(".")) and not Path(kernel).expanduser().is_absolute():
        kernel = str((base / kernel).resolve())      # a path relative to the corpus file
    timeout = b.get("timeout", doc.get("timeout", 600))
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise LabError(f"{tag}: 'timeout' must be a positive number of seconds")
    accel = b.get("accel", doc.get("accel", "tcg"))
    if accel not in ("tcg", "kvm", "auto"):
        raise LabError(f"{tag}: 'accel' must be tcg, kvm or auto")
    return CorpusBoot(layout, kernel, float(timeout), accel)


def _cmdline(b: dict, tag: str) -> tuple:
    """The extra kernel command line of a boot: crashkernel=, mem=, movablecore=, memmap=..., then append."""
    extra = []
    for key in ("crashkernel", "mem", "movablecore"):
        if key in b:
            if not isinstance(b[key], str):
                raise LabError(f"{tag}: '{key}' must be a string such as \"128M\"")
            extra.append(f"{key}={b[key]}")
    memmap = b.get("memmap", [])
    if not isinstance(memmap, list) or not all(isinstance(m, str) for m in memmap):
        raise LabError(f"{tag}: 'memmap' must be a list of strings")
    extra += [f"memmap={m}" for m in memmap]
    append = b.get("append", "")
    if not isinstance(append, str):
        raise LabError(f"{tag}: 'append' must be a string of kernel command-line words")
    return (*extra, *append.split())


def read_corpus(path) -> list:
    p = Path(path)
    if not p.is_file():
        raise LabError(f"{p}: no such corpus file (pgdefer lab corpus --example prints one)")
    return parse_corpus(p.read_text(), str(p), base=p.parent)


def _complete(log: Path) -> bool:
    from .qemu import boot_outcome, manifest_path

    return log.is_file() and manifest_path(log).is_file() and boot_outcome(log.read_text(errors="replace")) is None


def _summary(log: Path) -> dict:
    """The Memory: line predicted vs real and the unplaced figure of one recorded log (lab compare)."""
    from .compare import compare_log

    c = compare_log(log)
    bad = [f"{z['node']} {z['zone']}" for z in c["zones"]
           if z["present"][0] != z["present"][1] or z["spanned"][0] != z["spanned"][1]]
    return {"kernel": c["kernel"], "policy": c["policy"], "memory_printed": c["memory_printed"],
            "memory": c["memory"], "unplaced_kib": c["unplaced_kib"], "zones_differing": bad}


def run_corpus(boots, out_dir, *, resume=False, compare=False, host_check=True, progress=None) -> list:
    """Boot every entry of ``boots`` into ``out_dir`` (see the module docstring); returns the index rows."""
    from .cli import host_check as check_host
    from .cli import prepare_boot
    from .qemu import manifest_path, run_boot

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "corpus.json"
    rows, kernels = [], {}
    say = progress or (lambda what: None)
    for i, cb in enumerate(boots, 1):
        log = out_dir / f"{cb.name}.log"
        row = {"name": cb.name, "log": log.name, "nodes_mib_cpus": cb.layout.nodes_mib_cpus(),
               "smp": cb.layout.cpus, "cmdline_extra": cb.layout.cmdline_extra(), "kernel_spec": cb.kernel}
        try:
            if resume and _complete(log):
                say(f"[{i}/{len(boots)}] {cb.name}: already recorded, kept")
                row["status"] = "kept"
            else:
                say(f"[{i}/{len(boots)}] {cb.name}: booting")
                if host_check:
                    check_host(cb.layout)
                if cb.kernel not in kernels:
                    kernels[cb.kernel] = prepare_boot(cb.kernel, None, progress)
                kernel, extra, initrd = kernels[cb.kernel]
                run_boot(cb.layout, kernel, initrd, log, timeout=cb.timeout, accel=cb.accel,
                         manifest_extra={**extra, "corpus": str(index)}, progress=progress)
                row["status"] = "recorded"
            man = json.loads(manifest_path(log).read_text())
            row["kernel"], row["boot_seconds"] = man.get("kernel"), man.get("boot_seconds")
            if compare:
                row["compare"] = _summary(log)
        except PgdeferError as e:   # LabError from the boot, DmesgError from the import of its log
            row["status"], row["error"] = "failed", str(e)
            say(f"[{i}/{len(boots)}] {cb.name}: failed: {e}")
        rows.append(row)
        index.write_text(json.dumps({"boots": rows}, indent=1) + "\n")
    return rows


def format_rows(rows) -> str:
    lines = [f"{'boot':<28}{'status':<10}{'MiB:CPUs':<22}{'X real/pred (K)':>26}{'unplaced':>11}"]
    for r in rows:
        c = r.get("compare")
        if c:
            a = c["memory"]["available_kib"]
            xs, up = f"{a['real']}/{a['predicted']}", f"{c['unplaced_kib']}K"
        else:
            xs = up = "-"
        lines.append(f"{r['name']:<28}{r['status']:<10}{r['nodes_mib_cpus']:<22}{xs:>26}{up:>11}")
        if r.get("error"):
            lines.append(f"    {r['error']}")
    return "\n".join(lines)

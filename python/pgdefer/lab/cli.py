"""``pgdefer lab ...``: boot real kernels under QEMU and hold the model against them.

Registered into the main parser by ``add_parser(subparsers, fmt)``, listed in :data:`pgdefer.cli.COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .errors import LabError

LAB_EPILOG = """\
examples:
  pgdefer lab boot -o boot.log                       Debian's current kernel, 1 node x 1 GiB, 1 CPU
  pgdefer lab boot --node 2G:1 --node 2G:1 --trace -o two.log
  pgdefer lab boot --node 1G:1 --node 3G:0 --crashkernel 128M -o cpuless.log
  pgdefer lab boot --kernel arch/x86/boot/bzImage --mem 5G -o mine.log
  pgdefer lab boot --kernel linux-image-6.12-amd64 --topology two-node.toml -o t.log

The kernel is a file (--kernel PATH) or a Debian package name fetched with apt-get download +
dpkg-deb -x into $PGDEFER_CACHE (default ~/.cache/pgdefer); a metapackage such as
linux-image-amd64 is resolved with apt-cache depends. The initramfs is built at run time from
Debian's busybox-static. Every boot has memblock=debug; --trace adds the kmem:mm_page_alloc and
kmem:mm_page_free tracepoints.
"""


def _progress(quiet):
    if quiet:
        return None
    return lambda what: print(f"pgdefer lab: {what}", file=sys.stderr, flush=True)


def resolve_kernel(spec: str, progress=None) -> tuple:
    """(vmlinuz path, package or None, version or None) for ``--kernel``: an existing file, else a Debian
    package name. A spec that looks like a path (has a ``/``) but does not exist is an error, not a package."""
    from . import fetch

    p = Path(spec).expanduser()
    if p.is_file():
        return p, None, None
    if p.is_dir():
        raise LabError(f"--kernel {spec}: is a directory, not a kernel image (e.g. arch/x86/boot/bzImage)")
    if "/" in spec or spec.startswith(".") or spec.endswith(("bzImage", ".img")):
        raise LabError(f"--kernel {spec}: no such kernel image file")
    return fetch.kernel_from_package(spec, progress)


def layout_from_args(args):
    from .qemu import Layout, layout_from_topology, parse_node

    extra = []
    if args.crashkernel:
        extra.append(f"crashkernel={args.crashkernel}")
    if args.mem:
        extra.append(f"mem={args.mem}")
    for m in args.memmap or ():
        extra.append(f"memmap={m}")
    if args.movablecore:
        extra.append(f"movablecore={args.movablecore}")
    for a in args.append or ():
        extra += a.split()
    if args.topology and args.node:
        raise LabError("give the layout either as --topology or as --node options, not both")
    if args.topology:
        from ..cli import load_topology

        topo = load_topology(args.topology)
        return layout_from_topology(topo, args.cpus_per_node, cmdline=tuple(extra), trace=args.trace,
                                    trace_pcp=args.trace_pcp)
    nodes = tuple(parse_node(s) for s in (args.node or ["1G:1"]))
    return Layout(nodes, tuple(extra), args.trace, name=Path(args.out).stem, trace_pcp=args.trace_pcp)


def host_check(layout):
    """Refuse a guest that would not fit in this host's available memory (QEMU would be OOM-killed)."""
    from ..presets import host_available_bytes
    from .qemu import QEMU_OVERHEAD_MIB

    avail = host_available_bytes()
    need = (layout.total_mib + QEMU_OVERHEAD_MIB) << 20
    if avail is not None and need > avail:
        raise LabError(f"the guest needs about {need >> 20} MiB of host memory ({layout.total_mib} MiB RAM + QEMU); "
                       f"this host has {avail >> 20} MiB available")


def prepare(args, progress):
    """(kernel path, manifest extras, initrd path) for a boot: kernel and busybox fetched, initramfs built."""
    return prepare_boot(args.kernel, args.busybox, progress)


def prepare_boot(kernel_spec: str, busybox_path, progress):
    """:func:`prepare` for a kernel spec (a file or a Debian package) and an optional busybox path."""
    from . import fetch
    from .initramfs import build_initramfs
    from .qemu import find_qemu

    find_qemu()
    kernel, pkg, ver = resolve_kernel(kernel_spec, progress)
    busybox = Path(busybox_path) if busybox_path else fetch.busybox_from_package(progress)
    if not busybox.is_file():
        raise LabError(f"--busybox {busybox}: no such file")
    initrd = build_initramfs(busybox, fetch.cache_dir())
    extra = {"kernel_package": pkg, "kernel_package_version": ver}
    cfg = fetch.kernel_config(kernel)
    if cfg is not None:
        text = cfg.read_text(errors="replace")
        extra["deferred_struct_page_init"] = "CONFIG_DEFERRED_STRUCT_PAGE_INIT=y" in text
    return kernel, extra, initrd


def cmd_lab_boot(args) -> int:
    from .qemu import run_boot

    progress = _progress(args.quiet)
    layout = layout_from_args(args)
    if not args.no_host_check:
        host_check(layout)
    kernel, extra, initrd = prepare(args, progress)
    manifest = run_boot(layout, kernel, initrd, Path(args.out), timeout=args.timeout, accel=args.accel,
                        manifest_extra=extra, progress=progress)
    print(f"wrote {args.out} and {Path(args.out).stem}.manifest.json ({manifest['kernel']}, "
          f"{manifest['nodes_mib_cpus']} MiB, {manifest['boot_seconds']} s)")
    if args.compare:
        from .compare import cmd_compare_log

        return cmd_compare_log(args.out, json_out=False)
    return 0


def cmd_lab_compare(args) -> int:
    from .compare import cmd_compare_log

    if args.policy is not None:
        from .. import POLICIES

        if args.policy not in POLICIES:
            raise LabError(f"unknown policy {args.policy!r} (choose from {', '.join(POLICIES)})")
    return cmd_compare_log(args.log, json_out=args.json, policy=args.policy)


def cmd_lab_corpus(args) -> int:
    from . import corpus

    if args.example:
        print(corpus.KERNEL_LAB, end="")
        return 0
    if not args.file:
        raise LabError("lab corpus: give a corpus FILE (pgdefer lab corpus --example prints the kernel lab's)")
    boots = corpus.read_corpus(args.file)
    if args.only:
        names = {b.name for b in boots}
        missing = [n for n in args.only if n not in names]
        if missing:
            raise LabError(f"--only {', '.join(missing)}: no such boot in {args.file} (it has "
                           f"{', '.join(sorted(names))})")
        boots = [b for b in boots if b.name in args.only]
    if args.dry_run:
        for b in boots:
            log = Path(args.out) / f"{b.name}.log"
            print(f"{b.name}: kernel {b.kernel}, timeout {b.timeout:g} s")
            print("  " + shlex.join(b.layout.qemu_args("KERNEL", "INITRD", log, b.accel)))
        return 0
    rows = corpus.run_corpus(boots, args.out, resume=args.resume, compare=args.compare,
                             host_check=not args.no_host_check, progress=_progress(args.quiet))
    print(corpus.format_rows(rows))
    print(f"index: {Path(args.out) / 'corpus.json'}")
    return 1 if any(r["status"] == "failed" for r in rows) else 0


def cmd_lab_fetch(args) -> int:
    from . import fetch

    progress = _progress(args.quiet)
    kernel, pkg, ver = fetch.kernel_from_package(args.package, progress)
    fetch.busybox_from_package(progress)
    print(kernel)
    return 0


def _add_layout_args(p):
    p.add_argument("--node", action="append", metavar="SIZE[:CPUS]",
                   help="a NUMA node: memory (MiB, or with M/G suffix) and its CPUs (default 1; 0 = CPU-less "
                        "node); repeat for more nodes (default: one node 1G:1)")
    p.add_argument("--topology", "-t", metavar="PRESET|FILE",
                   help="take the node sizes from a preset or a topology file instead of --node")
    p.add_argument("--cpus-per-node", type=int, default=1, metavar="N",
                   help="CPUs per node for --topology layouts (default: %(default)s)")
    p.add_argument("--crashkernel", metavar="SIZE", help="add crashkernel=SIZE to the kernel command line")
    p.add_argument("--mem", metavar="SIZE", help="add mem=SIZE (cuts the memory map by physical address)")
    p.add_argument("--memmap", action="append", metavar="SPEC", help="add memmap=SPEC (repeatable)")
    p.add_argument("--movablecore", metavar="SIZE", help="add movablecore=SIZE")
    p.add_argument("--append", action="append", metavar="ARGS", help="more kernel command line (repeatable)")
    p.add_argument("--trace-pcp", action="store_true",
                   help="the trace, and also every move between the buddy and the per-CPU lists "
                        "(kmem:mm_page_alloc_zone_locked, kmem:mm_page_pcpu_drain): what nr_free_pages() counts, "
                        "so lab compare can account a late Memory: line's per-CPU pages from the log")
    p.add_argument("--trace", action="store_true",
                   help="enable the kmem:mm_page_alloc/mm_page_free tracepoints (tp_printk): the early "
                        "allocations of the boot, in order, in the log")


def _add_run_args(p):
    from .fetch import DEFAULT_KERNEL_PACKAGE

    p.add_argument("--kernel", "-k", default=DEFAULT_KERNEL_PACKAGE, metavar="PATH|PACKAGE",
                   help="a kernel image file (vmlinuz, arch/x86/boot/bzImage) or a Debian package name "
                        "(default: %(default)s, resolved to the current image package)")
    p.add_argument("--busybox", metavar="PATH",
                   help="a static busybox for the initramfs (default: Debian's busybox-static, fetched)")
    p.add_argument("--timeout", type=float, default=600, metavar="SECONDS",
                   help="kill QEMU if the boot has not powered off by then (default: %(default)s)")
    p.add_argument("--accel", choices=["tcg", "kvm", "auto"], default="tcg",
                   help="QEMU accelerator: tcg (pure emulation, as the recorded logs), kvm, or auto = kvm when "
                        "/dev/kvm works (default: %(default)s)")
    p.add_argument("--no-host-check", action="store_true",
                   help="do not refuse guests larger than this host's available memory")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")


def add_parser(sub, fmt=argparse.RawDescriptionHelpFormatter) -> None:
    """Add ``lab`` and its subcommands to the main parser's subparsers (pgdefer.cli.COMMAND_MODULES)."""
    lab = sub.add_parser("lab", help="boot real kernels under QEMU and compare them with the model",
                         description="The kernel lab: real, unmodified kernels booted under QEMU on chosen NUMA "
                                     "layouts are the oracle the model is held against.",
                         epilog=LAB_EPILOG, formatter_class=fmt)
    lsub = lab.add_subparsers(dest="lab_command", metavar="SUBCOMMAND")
    b = lsub.add_parser("boot", help="boot a kernel under QEMU and save its serial log and manifest",
                        description="Boot a kernel under QEMU (memblock=debug, a busybox initramfs that dumps "
                                    "/proc/zoneinfo, buddyinfo, pagetypeinfo, iomem and meminfo and powers off) "
                                    "and save the serial log and LOG's .manifest.json.",
                        epilog=LAB_EPILOG, formatter_class=fmt)
    _add_layout_args(b)
    _add_run_args(b)
    b.add_argument("--out", "-o", default="lab.log", metavar="LOG",
                   help="the serial log to write; the manifest goes beside it (default: %(default)s)")
    b.add_argument("--compare", action="store_true", help="then compare the log with the model (lab compare)")
    b.set_defaults(func=cmd_lab_boot)
    c = lsub.add_parser("compare", help="predicted vs real for a kernel-lab log: Memory: line, per-node passes, "
                                        "zones",
                        description="Import a kernel-lab log (the exact memblock.reserved map of memblock=debug, "
                                    "the page trace, the /proc dumps), boot the model on it under the log "
                                    "kernel's policy, replay the traced allocations, and print predicted vs real: "
                                    "the Memory: line where the kernel printed it (with what the model cannot "
                                    "place, as 'unplaced'), the per-node deferred lines (times are emulated, "
                                    "reported not compared) and per-zone present/spanned/managed against "
                                    "/proc/zoneinfo. Exit status 1 when present or spanned differ.",
                        epilog="examples:\n  pgdefer lab compare ../shared/kernel-lab/lab02-61-1node-3g.log\n"
                               "  pgdefer lab compare boot.log --json | jq .memory", formatter_class=fmt)
    c.add_argument("log", metavar="LOG", help="a serial log written by pgdefer lab boot (or the same recipe)")
    c.add_argument("--policy", "-p", default=None, metavar="POLICY",
                   help="model policy (default: from the log's kernel version, as boot --policy auto)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_lab_compare)
    k = lsub.add_parser("corpus", help="boot every layout of a corpus file and record the logs (a reference set)",
                        description="Boot every [[boot]] of a TOML corpus file (nodes, trace, crashkernel/mem/"
                                    "memmap/movablecore/append, kernel path or Debian package, timeout) with "
                                    "pgdefer lab boot, writing DIR/NAME.log and DIR/NAME.manifest.json for each "
                                    "and an index DIR/corpus.json (rewritten after every boot). A failed boot is "
                                    "recorded with its error and the rest still run; exit status 1 if any "
                                    "failed.",
                        epilog="examples:\n"
                               "  pgdefer lab corpus --example > kernel-lab.toml   the boots of ../shared/kernel-lab\n"
                               "  pgdefer lab corpus kernel-lab.toml -o mylab --compare\n"
                               "  pgdefer lab corpus mine.toml -o mylab --resume      keep the boots already recorded\n"
                               "  pgdefer lab corpus mine.toml -o mylab --dry-run     print the QEMU command lines\n"
                               "\nTo hold your own kernel build against the model, set kernel = \"/path/to/linux/"
                               "arch/x86/boot/bzImage\"\n(a path is relative to the corpus file) in the file or "
                               "per boot; see docs/lab.md.", formatter_class=fmt)
    k.add_argument("file", nargs="?", metavar="FILE", help="the corpus file (TOML)")
    k.add_argument("--out", "-o", default="corpus", metavar="DIR",
                   help="where the logs, manifests and corpus.json go (default: %(default)s)")
    k.add_argument("--only", action="append", metavar="NAME", help="boot only this entry (repeatable)")
    k.add_argument("--resume", action="store_true",
                   help="keep boots whose log in DIR is already complete (the lab's end marker) and has a manifest")
    k.add_argument("--compare", action="store_true",
                   help="compare each log with the model (lab compare) and put the Memory: figures in the index")
    k.add_argument("--dry-run", action="store_true", help="print each boot's QEMU command line and boot nothing")
    k.add_argument("--example", action="store_true",
                   help="print the corpus file of the project's kernel lab (../shared/kernel-lab) and exit")
    k.add_argument("--no-host-check", action="store_true",
                   help="do not refuse guests larger than this host's available memory")
    k.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    k.set_defaults(func=cmd_lab_corpus)
    f = lsub.add_parser("fetch", help="fetch a Debian kernel package (and busybox-static) into the cache",
                        description="Resolve a Debian kernel package (a metapackage such as linux-image-amd64 "
                                    "through apt-cache depends), apt-get download it and dpkg-deb -x it into "
                                    "the cache, with busybox-static for the initramfs; print the kernel's path.",
                        formatter_class=fmt)
    f.add_argument("package", nargs="?", default="linux-image-amd64", metavar="PACKAGE",
                   help="a Debian kernel package or metapackage (default: %(default)s)")
    f.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    f.set_defaults(func=cmd_lab_fetch)
    lab.set_defaults(func=None, _help=lab)

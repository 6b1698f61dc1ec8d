"""pgdefer lab boot without QEMU running: the guest command line, the initramfs archive, layouts from
options and topologies, and the one-line errors (QEMU missing, kernel missing, bad --node).

The real boots are in test_lab_real.py."""

from __future__ import annotations

import pytest

from pgdefer.lab.errors import LabError
from pgdefer.lab.initramfs import INIT_SCRIPT, PROC_FILES, initramfs_bytes, write_newc
from pgdefer.lab.qemu import LabNode, Layout, boot_outcome, layout_from_topology, parse_node
from pgdefer.testing import run_cli as run


def read_newc(data: bytes) -> list:
    """An independent reader of the newc format (init/initramfs.c): 110-byte ASCII header, name, data, each
    padded to 4 bytes; returns [(name, mode, rdevmajor, rdevminor, data)] up to the trailer."""
    out, off = [], 0
    while True:
        hdr = data[off:off + 110]
        assert hdr[:6] == b"070701", f"bad magic at {off}"
        f = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name = data[off + 110:off + 110 + namesize]
        assert name.endswith(b"\0")
        off += 110 + namesize
        off += -off % 4
        body = data[off:off + filesize]
        off += filesize
        off += -off % 4
        if name[:-1] == b"TRAILER!!!":
            return out
        out.append((name[:-1].decode(), mode, rmaj, rmin, body))


def test_initramfs_is_a_newc_archive_with_busybox_init_and_console():
    fake_busybox = b"\x7fELF" + bytes(range(256)) * 3 + b"x"   # odd length: exercises the padding
    entries = {e[0]: e for e in read_newc(initramfs_bytes(fake_busybox))}
    assert entries["bin/busybox"][4] == fake_busybox
    assert entries["bin/busybox"][1] == 0o100755
    assert entries["init"][4] == INIT_SCRIPT.encode() and entries["init"][1] == 0o100755
    # /dev/console must exist as char device 5:1, or /init has no stdout on the serial console
    assert entries["dev/console"][1] == 0o020600 and entries["dev/console"][2:4] == (5, 1)
    for d in ("bin", "dev", "proc", "sys"):
        assert entries[d][1] == 0o040755


def test_init_script_dumps_every_proc_file_between_markers_and_powers_off():
    for f in PROC_FILES:
        assert f in INIT_SCRIPT
    assert '"=== pgdefer-lab: $f"' in INIT_SCRIPT
    assert "=== pgdefer-lab: end" in INIT_SCRIPT
    assert INIT_SCRIPT.rstrip().endswith("poweroff -f")
    # /proc/vmstat is read while the trace still prints (its pgalloc counters then cover the traced
    # allocations) and dumped after the others, under its own marker
    read, stop = INIT_SCRIPT.index("cat /proc/vmstat >"), INIT_SCRIPT.index("tracepoint_printk")
    assert read < stop < INIT_SCRIPT.index("=== pgdefer-lab: /proc/vmstat") < INIT_SCRIPT.index("=== pgdefer-lab: end")


def test_newc_trailer_and_alignment():
    data = write_newc([("a", 0o100644, b"123", (0, 0))])
    assert len(data) % 512 == 0
    assert [e[0] for e in read_newc(data)] == ["a"]


def test_two_node_layout_has_one_backend_per_node_and_cpu_less_nodes_have_no_cpus():
    lay = Layout((LabNode(1024, 2), LabNode(3072, 0), LabNode(512, 1)), ("crashkernel=128M",), trace=True)
    argv = lay.qemu_args("vmlinuz", "initrd.cpio", "boot.log")
    assert argv[argv.index("-smp") + 1] == "3"
    assert argv[argv.index("-m") + 1] == f"{1024 + 3072 + 512}M"
    numa = [argv[i + 1] for i, a in enumerate(argv) if a == "-numa"]
    assert numa == ["node,nodeid=0,cpus=0-1,memdev=m0", "node,nodeid=1,memdev=m1", "node,nodeid=2,cpus=2,memdev=m2"]
    objs = [argv[i + 1] for i, a in enumerate(argv) if a == "-object"]
    assert objs[1] == "memory-backend-ram,id=m1,size=3072M"
    cmdline = argv[argv.index("-append") + 1]
    assert cmdline.startswith("console=ttyS0 panic=-1 memblock=debug crashkernel=128M trace_event=kmem:mm_page_alloc")
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert lay.nodes_mib_cpus() == "1024:0-1 3072:- 512:2"


def test_single_node_layout_has_no_numa_options():
    argv = Layout((LabNode(1024, 1),)).qemu_args("k", "i", "l")
    assert "-numa" not in argv and "-object" not in argv
    assert argv[argv.index("-append") + 1] == "console=ttyS0 panic=-1 memblock=debug"


@pytest.mark.parametrize("spec,mib,cpus", [("2G", 2048, 1), ("1024M:2", 1024, 2), ("512:0", 512, 0),
                                           ("3GiB:1", 3072, 1)])
def test_parse_node(spec, mib, cpus):
    assert parse_node(spec) == LabNode(mib, cpus)


@pytest.mark.parametrize("spec", ["big", "2T", "1G:x", ""])
def test_parse_node_rejects(spec):
    with pytest.raises(LabError, match="--node"):
        parse_node(spec)


def test_layout_rejects_no_cpu_and_tiny_nodes():
    with pytest.raises(LabError, match="at least one CPU"):
        Layout((LabNode(1024, 0),))
    with pytest.raises(LabError, match="too small"):
        Layout((LabNode(16, 1),))


def test_layout_from_a_preset_keeps_node_sizes():
    from pgdefer import presets

    name = next(n for n in presets.names() if len(presets.get(n).nodes) >= 2
                and presets.get(n).memory_bytes <= 64 << 30)
    topo = presets.get(name)
    lay = layout_from_topology(topo, 2)
    assert len(lay.nodes) == len(topo.nodes) and all(n.cpus == 2 for n in lay.nodes)
    for n, ln in zip(topo.nodes, lay.nodes):
        pages = sum(e - s for s, e, _ in topo.memory_pfn_ranges(n))
        assert ln.mib == -(-pages * topo.geometry.page_size // (1 << 20))


def test_missing_qemu_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))    # nothing on PATH: no qemu-system-x86_64
    code, out, err = run(["lab", "boot", "--kernel", __file__, "-o", str(tmp_path / "x.log")], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "qemu-system-x86_64 not found" in err and "apt-get install qemu-system-x86" in err


def test_missing_kernel_file_is_one_line(capsys, tmp_path):
    missing = tmp_path / "linux" / "arch/x86/boot/bzImage"
    code, out, err = run(["lab", "boot", "--kernel", str(missing), "-o", str(tmp_path / "x.log")], capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert f"--kernel {missing}: no such kernel image file" in err


def test_unknown_kernel_package_is_one_line(capsys, tmp_path):
    code, out, err = run(["lab", "boot", "--kernel", "linux-image-0.0.0-nosuch-amd64", "-o",
                          str(tmp_path / "x.log")], capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert "linux-image-0.0.0-nosuch-amd64" in err and "unknown to apt" in err


def test_boot_outcome_names_a_panic_and_a_cut_log():
    assert boot_outcome("x\n=== pgdefer-lab: end\n") is None
    msg = boot_outcome("[    1.0] Linux version 6.1\n[    2.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    assert msg == "the kernel panicked: Kernel panic - not syncing: VFS: Unable to mount root fs"
    assert "last line: [    1.0] Linux version 6.1" in boot_outcome("[    1.0] Linux version 6.1\n")
    assert "empty log" in boot_outcome("")

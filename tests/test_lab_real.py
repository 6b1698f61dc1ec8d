"""Real boots: an unmodified Debian kernel under QEMU (TCG), no mock of either.

The kernel is ``$PGDEFER_LAB_KERNEL`` (a file) or Debian's current ``linux-image-amd64`` fetched into the
lab cache (``pgdefer lab fetch``; .ci/run does it before the tests). Without QEMU or apt these tests fail
with a message saying what to install — they never skip. Kept small: one node, 1 GiB, 1 CPU.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pgdefer.cli import main
from pgdefer.lab.errors import LabError


@pytest.fixture(scope="module")
def kernel():
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed: apt-get install qemu-system-x86 (see .ci/run)")
    env = os.environ.get("PGDEFER_LAB_KERNEL")
    if env:
        if not Path(env).is_file():
            pytest.fail(f"PGDEFER_LAB_KERNEL={env}: no such file")
        return Path(env)
    from pgdefer.lab.fetch import kernel_from_package

    try:
        return kernel_from_package("linux-image-amd64")[0]
    except LabError as e:
        pytest.fail(f"cannot fetch Debian's kernel package for the real lab boot: {e}")


def _qemu_processes_for(path: Path) -> list:
    """PIDs of processes whose command line mentions ``path`` (our QEMU, if it were still alive)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmd and b"qemu-system" in cmd:
            out.append(int(p.name))
    return out


def test_real_boot_records_a_complete_log_and_manifest(kernel, tmp_path, capsys):
    log = tmp_path / "real.log"
    code = main(["lab", "boot", "--kernel", str(kernel), "--node", "1G:1", "-o", str(log), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    man = json.loads((tmp_path / "real.manifest.json").read_text())
    assert man["kernel"] == kernel.name and man["smp"] == 1 and man["total_mib"] == 1024
    assert man["argv"][0] == "qemu-system-x86_64" and "memblock=debug" in man["argv"][man["argv"].index("-append") + 1]
    assert man["qemu_version"] != "unknown"

    from pgdefer.dmesg import parse_dmesg
    from pgdefer.lab.sections import parse_lab_log

    lab = parse_lab_log(log)
    assert lab.complete and lab.has_memblock_debug
    boot = parse_dmesg(log)
    zones = lab.zoneinfo()
    # The Memory: line's total is get_num_physpages() = the present pages of all zones (4 KiB pages)
    assert sum(z.present for z in zones) * 4 == boot.memory.total_kib
    # and the kernel image /proc/iomem shows lies in the memblock.reserved map the import replays
    ks, ke = lab.kernel_image()
    assert any(s <= ks and ke <= e for s, e in lab.reserved_at_free_all())
    assert not _qemu_processes_for(log)


def test_a_hanging_boot_times_out_and_leaves_no_qemu(kernel, tmp_path):
    """panic=0 + an init that does not exist: the kernel panics and waits forever, a real hang."""
    from pgdefer.lab.fetch import busybox_from_package, cache_dir
    from pgdefer.lab.initramfs import build_initramfs
    from pgdefer.lab.qemu import LabNode, Layout, run_boot

    initrd = build_initramfs(busybox_from_package(), cache_dir())
    lay = Layout((LabNode(256, 1),), ("panic=0", "rdinit=/no-such-init"))
    log = tmp_path / "hang.log"
    with pytest.raises(LabError, match=r"did not finish within 5 s \(QEMU killed\)"):
        run_boot(lay, kernel, initrd, log, timeout=5)
    assert not _qemu_processes_for(log)
    assert not (tmp_path / "hang.manifest.json").exists()

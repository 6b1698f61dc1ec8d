"""Real boots: an unmodified Debian kernel under QEMU (TCG), no mock of either.

The kernel is ``$PGDEFER_LAB_KERNEL`` (a file) or Debian's current ``linux-image-amd64`` fetched into the
lab cache (``pgdefer lab fetch``; .ci/run does it before the tests). Without QEMU or apt these tests fail
with a message saying what to install — they never skip. Kept small: one node, 1 GiB, 1 CPU.
"""

from __future__ import annotations

import json
import os
import re
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


@pytest.fixture(scope="module")
def real_boot(kernel, tmp_path_factory):
    """One real boot for the module: ``pgdefer lab boot`` of ``kernel`` on one node, 1 GiB, 1 CPU."""
    log = tmp_path_factory.mktemp("real") / "real.log"
    code = main(["lab", "boot", "--kernel", str(kernel), "--node", "1G:1", "-o", str(log), "--quiet"])
    assert code == 0, f"pgdefer lab boot exited {code}"
    return log


def test_real_boot_records_a_complete_log_and_manifest(kernel, real_boot):
    log = real_boot
    man = json.loads((log.parent / "real.manifest.json").read_text())
    assert man["kernel"] == kernel.name and man["smp"] == 1 and man["total_mib"] == 1024
    assert man["argv"][0] == "qemu-system-x86_64" and "memblock=debug" in man["argv"][man["argv"].index("-append") + 1]
    assert man["qemu_version"] != "unknown"

    from pgdefer.dmesg import parse_dmesg
    from pgdefer.lab.sections import parse_lab_log

    lab = parse_lab_log(log)
    assert lab.complete and lab.has_memblock_debug
    assert re.search(r"^pgalloc_normal \d+$", lab.proc["/proc/vmstat"], re.M)   # the snapshot /init took
    boot = parse_dmesg(log)
    zones = lab.zoneinfo()
    # The Memory: line's total is get_num_physpages() = the present pages of all zones (4 KiB pages)
    assert sum(z.present for z in zones) * 4 == boot.memory.total_kib
    # and the kernel image /proc/iomem shows lies in the memblock.reserved map the import replays
    ks, ke = lab.kernel_image()
    assert any(s <= ks and ke <= e for s, e in lab.reserved_at_free_all())
    assert not _qemu_processes_for(log)


def test_real_boot_imports_and_compares(real_boot, capsys):
    """``pgdefer lab compare`` on the log just recorded. The expected figures are the kernel's: its
    Memory: line and its /proc/zoneinfo, read here without the importer."""
    from pgdefer.testing import run_cli

    log = real_boot
    code, out, err = run_cli(["lab", "compare", str(log), "--json"], capsys)
    assert code == 0, err                     # 0: every zone's present and spanned match /proc/zoneinfo
    c = json.loads(out)
    text = log.read_text(errors="replace")
    mt = re.search(r"Memory: (\d+)K/(\d+)K available \(.*?(\d+)K reserved", text)
    assert mt, "the boot printed no Memory: line"
    avail, total, reserved = (int(g) for g in mt.groups())
    # Y = get_num_physpages(): every present page, i.e. the sum of 'present' over /proc/zoneinfo's zones
    present = sum(int(n) for n in re.findall(r"^\s+present\s+(\d+)$", text, re.M))
    assert total == present * 4
    mem = c["memory"]
    assert mem["total_kib"] == {"real": total, "predicted": present * 4, "diff": 0}
    # reserved = physpages - totalram_pages when the line is printed: exact from the memblock.reserved map
    assert mem["reserved_kib"]["real"] == reserved and mem["reserved_kib"]["diff"] == 0
    if c["memory_printed"].startswith("early"):
        # printed from mm_core_init (6.1): the buddy allocator's free pages right after memblock_free_all
        # and preallocate_vmalloc_pages, which the model holds exactly
        assert mem["available_kib"] == {"real": avail, "predicted": avail, "diff": 0}
        assert c["unplaced_kib"] == 0
    else:
        # printed at the end of page_alloc_init_late (6.12): the window's allocations are not in an
        # untraced log, so the report carries the difference as unplaced
        assert c["unplaced_kib"] == avail - mem["available_kib"]["predicted"]
    real = {(int(n), z): (int(p), int(s), int(m)) for n, z, s, p, m in re.findall(
        r"^Node (\d+), zone\s+(\w+)\n(?:.*\n)*?\s+spanned\s+(\d+)\n\s+present\s+(\d+)\n\s+managed\s+(\d+)$",
        text, re.M)}
    assert real
    for z in c["zones"]:
        # managed after boot: memblock_free_all + the passes + the 'Freeing ... memory' frees (docs/model.md §12)
        assert (z["present"][1], z["spanned"][1], z["managed"][1]) == real[(z["node"], z["zone"])]


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

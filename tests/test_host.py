"""Topology.from_host(): this machine from /proc/iomem, sysfs and /proc/zoneinfo; plus fake /proc and /sys trees
for the cases this host does not have (several nodes, offline memory, Movable zones, no root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgdefer import PgdeferError, Topology
from pgdefer.host import HostInfo, HostReadError, read_iomem, read_zoneinfo, system_ram, topology_from_host

MiB, GiB = 1 << 20, 1 << 30


# -- this host ------------------------------------------------------------------------------------------

def _can_read_host():
    try:
        read_iomem()
        read_zoneinfo()
        return True
    except HostReadError:
        return False


@pytest.mark.skipif(not Path("/proc/zoneinfo").exists(), reason="not Linux")
def test_from_host_on_this_machine():
    if not _can_read_host():
        with pytest.raises(HostReadError):
            Topology.from_host()
        pytest.skip("this host hides /proc/iomem addresses (not root)")
    t = Topology.from_host()
    info = t.source
    assert isinstance(info, HostInfo)
    # the kernel's present pages, read independently of pgdefer
    present = {}
    node = zone = None
    for line in Path("/proc/zoneinfo").read_text().splitlines():
        if line.startswith("Node "):
            parts = line.replace(",", "").split()
            node, zone = int(parts[1]), parts[3]
        elif line.split()[:1] == ["present"]:
            present[(node, zone)] = int(line.split()[1])
    assert t.present_pages == sum(present.values())
    assert info.mismatches == []
    model = {(z.node, z.name): z.present for z in t.zones()}
    assert model == {k: v for k, v in present.items() if v and k[1] in ("DMA", "DMA32", "Normal", "Movable")}
    assert t.nodes == sorted({n for (n, _), v in present.items() if v})
    # the kernel image ranges of /proc/iomem are reserved
    kernel = [ln for ln in Path("/proc/iomem").read_text().splitlines() if ln.strip().endswith(": Kernel code")]
    if kernel:
        s = int(kernel[0].split("-")[0], 16)
        assert any(r.start <= s < r.end for r in t.reserved)
    # the topology can be saved and loaded
    assert Topology.from_dict(t.to_dict()) == t


# -- fake hosts -------------------------------------------------------------------------------------------

IOMEM_2NODE = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-000fffff : Reserved
00100000-7fffffff : System RAM
  01000000-01ffffff : Kernel code
  02000000-027fffff : Kernel rodata
  02800000-02bfffff : Kernel data
  02c00000-02ffffff : Kernel bss
  20000000-2fffffff : Crash kernel
80000000-febfffff : PCI Bus 0000:00
100000000-47fffffff : System RAM
"""


def _zone(node, name, spanned=0, present=0, start=None, managed=None):
    out = f"Node {node}, zone {name:>8}\n  pages free     100\n        spanned  {spanned}\n        present  {present}\n"
    out += f"        managed  {present if managed is None else managed}\n"
    if start is not None:
        out += f"  start_pfn:           {start}\n"
    return out


def _zoneinfo_2node(node1_normal=(0x200000, 0x200000, 0x280000), node1_movable=(0, 0, None)):
    return (_zone(0, "DMA", 4095, 3998, 1) + _zone(0, "DMA32", 0x100000 - 0x1000, 0x80000 - 0x1000, 0x1000)
            + _zone(0, "Normal", 0x180000, 0x180000, 0x100000) + _zone(0, "Movable") + _zone(0, "Device")
            + _zone(1, "DMA") + _zone(1, "DMA32") + _zone(1, "Normal", *node1_normal)
            + _zone(1, "Movable", *node1_movable) + _zone(1, "Device"))


def _fake(tmp_path, iomem, zoneinfo, blocks=None, offline=(), block_size=128 * MiB):
    proc, sysr = tmp_path / "proc", tmp_path / "sys"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "sys" / "kernel" / "osrelease").write_text("6.6.0-fake\n")
    (proc / "iomem").write_text(iomem)
    (proc / "zoneinfo").write_text(zoneinfo)
    if blocks is not None:
        mem = sysr / "devices" / "system" / "memory"
        mem.mkdir(parents=True)
        (mem / "block_size_bytes").write_text(f"{block_size:x}\n")
        for node, ids in blocks.items():
            nd = sysr / "devices" / "system" / "node" / f"node{node}"
            nd.mkdir(parents=True, exist_ok=True)
            for b in ids:
                (mem / f"memory{b}").mkdir()
                (mem / f"memory{b}" / "state").write_text("offline\n" if b in offline else "online\n")
                os.symlink(mem / f"memory{b}", nd / f"memory{b}")
    return str(proc), str(sysr)


# node 0: blocks [0, 16) = [0, 2G) and [32, 80) = [4G, 10G); node 1: [80, 144) = [10G, 18G)
BLOCKS_2NODE = {0: list(range(0, 16)) + list(range(32, 80)), 1: list(range(80, 144))}


def test_fake_two_nodes_from_memory_blocks(tmp_path):
    proc, sysr = _fake(tmp_path, IOMEM_2NODE, _zoneinfo_2node(), BLOCKS_2NODE)
    t = topology_from_host(proc, sysr)
    assert t.memory_pfn_ranges(0) == [(0x1, 0x9F, 0), (0x100, 0x80000, 0), (0x100000, 0x280000, 0)]
    assert t.memory_pfn_ranges(1) == [(0x280000, 0x480000, 1)]
    assert t.zone_limits == {"DMA": 16 * MiB, "DMA32": 4 * GiB}
    assert t.source.mismatches == []
    assert t.source.kernel_release == "6.6.0-fake"
    res = [(r.start, r.end) for r in t.reserved]
    # Kernel code..bss are contiguous here and merge into one range; the crash kernel is separate
    assert (0x1000000, 0x3000000) in res and (0x20000000, 0x30000000) in res
    # memmap: node 0 has 16 + 48 = 64 sections, node 1 64 sections: 128 MiB each at the end of the node
    assert (10 * GiB - 128 * MiB, 10 * GiB) in res and (18 * GiB - 128 * MiB, 18 * GiB) in res


def test_fake_without_sysfs_uses_zoneinfo_spans(tmp_path):
    proc, sysr = _fake(tmp_path, IOMEM_2NODE, _zoneinfo_2node(), blocks=None)
    t = topology_from_host(proc, sysr)
    assert t.memory_pfn_ranges(1) == [(0x280000, 0x480000, 1)]
    assert any("node spans in /proc/zoneinfo" in n for n in t.notes)
    assert t.source.mismatches == []


def test_fake_offline_block_is_left_out(tmp_path):
    # block 143 = [0x478000000, 0x480000000) offlined: the kernel drops it from present (and the span)
    zi = _zoneinfo_2node(node1_normal=(0x1F8000, 0x1F8000, 0x280000))
    proc, sysr = _fake(tmp_path, IOMEM_2NODE, zi, BLOCKS_2NODE, offline={143})
    t = topology_from_host(proc, sysr)
    assert t.memory_pfn_ranges(1) == [(0x280000, 0x478000, 1)]
    assert t.source.offline_blocks == [143]
    assert t.source.mismatches == []
    assert any("offline memory blocks [143]" in n for n in t.notes)


def test_fake_movable_node(tmp_path):
    zi = _zoneinfo_2node(node1_normal=(0, 0, None), node1_movable=(0x200000, 0x200000, 0x280000))
    proc, sysr = _fake(tmp_path, IOMEM_2NODE, zi, BLOCKS_2NODE)
    t = topology_from_host(proc, sysr)
    assert t.zone_limits["Normal"] == 10 * GiB            # node 1 all Movable from its start
    assert [(z.name, z.start_pfn, z.spanned) for z in t.zones(1)] == [("Movable", 0x280000, 0x200000)]
    assert t.source.mismatches == []


def test_fake_dma32_last_vm(tmp_path):
    iomem = "00001000-0009fbff : System RAM\n00100000-dffdefff : System RAM\n"
    zi = (_zone(0, "DMA", 4095, 3998, 1) + _zone(0, "DMA32", 0xDFFDF - 0x1000, 0xDFFDF - 0x1000, 0x1000)
          + _zone(0, "Normal") + _zone(0, "Movable"))
    proc, sysr = _fake(tmp_path, iomem, zi)
    t = topology_from_host(proc, sysr)
    # DMA32 ends where memory ends (clamped by the kernel): the model uses the 4 GiB limit
    assert t.zone_limits == {"DMA": 16 * MiB, "DMA32": 4 * GiB}
    assert [z.name for z in t.zones()] == ["DMA", "DMA32"]
    assert t.source.mismatches == []


def test_fake_mismatch_is_reported(tmp_path):
    zi = _zoneinfo_2node().replace("present  1572864", "present  1572000")
    proc, sysr = _fake(tmp_path, IOMEM_2NODE, zi, BLOCKS_2NODE)
    t = topology_from_host(proc, sysr)
    assert t.source.mismatches == [(0, "Normal", 0x180000, 1572000)]
    assert any("differ from /proc/zoneinfo" in n for n in t.notes)


def test_nested_system_ram_counted_once():
    from pgdefer.host import IomemEntry
    entries = [IomemEntry(0x100000000, 0x200000000, "System RAM", 0),
               IomemEntry(0x180000000, 0x190000000, "System RAM (kmem)", 1),
               IomemEntry(0x300000000, 0x400000000, "Persistent Memory", 0),
               IomemEntry(0x300000000, 0x400000000, "System RAM (kmem)", 1)]
    assert system_ram(entries) == [(0x100000000, 0x200000000), (0x300000000, 0x400000000)]


def test_hidden_addresses_need_root(tmp_path):
    iomem = "00000000-00000000 : System RAM\n00000000-00000000 : System RAM\n"
    proc, sysr = _fake(tmp_path, iomem, _zoneinfo_2node())
    with pytest.raises(HostReadError, match="addresses are hidden .* needs root") as ei:
        topology_from_host(proc, sysr)
    assert isinstance(ei.value, PgdeferError) and isinstance(ei.value, OSError)


def test_missing_files(tmp_path):
    proc, sysr = _fake(tmp_path, IOMEM_2NODE, _zoneinfo_2node())
    os.remove(Path(proc) / "zoneinfo")
    with pytest.raises(HostReadError, match=r"zoneinfo: not found"):
        topology_from_host(proc, sysr)
    with pytest.raises(HostReadError, match=r"iomem: not found"):
        topology_from_host(str(tmp_path / "nowhere"), sysr)
    (Path(proc) / "zoneinfo").write_text("nothing here\n")
    with pytest.raises(HostReadError, match=r"no 'Node N, zone Z' blocks"):
        topology_from_host(proc, sysr)

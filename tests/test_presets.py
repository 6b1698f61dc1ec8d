"""Presets: every one builds, is documented, matches its published figures where they constrain it, and the
host-memory check refuses machines this host cannot simulate."""

from __future__ import annotations

import pytest

import pgdefer
from pgdefer import HostMemoryError, PgdeferError, Topology, presets
from pgdefer.config import HOST_BYTES_PER_PAGE
from pgdefer.presets import UnknownPreset

MiB, GiB = 1 << 20, 1 << 30
PPS = 32768  # PAGES_PER_SECTION, x86_64


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_builds_and_is_documented(name, tmp_path):
    p = presets.info(name)
    t = presets.get(name)
    assert isinstance(t, Topology) and t.name == name
    assert p.description and p.source and p.layout
    assert p.policy in pgdefer.POLICIES
    assert any(p.source in n for n in t.notes), "the source is in the topology's notes"
    # reservations are inside memory and every node has its memmap at its end
    g = t.geometry
    for node in t.nodes:
        ns, ne = t.node_span(node)
        mm = [r for r in t.reserved if r.end == ne * g.page_size and r.start >= ns * g.page_size]
        assert mm, f"node {node}: a reserved block (its memmap) ends exactly at the end of the node"
        assert mm[0].size % (PPS * 64) == 0, "a whole number of sections' memmap (2 MiB each)"
    # presets save and load back exactly
    assert Topology.from_file(t.to_file(tmp_path / "p.toml")) == t


def test_names_and_unknown_preset():
    assert presets.names()[0] == "default"
    assert set(presets.names()) == set(presets.PRESETS)
    with pytest.raises(UnknownPreset, match=r"unknown preset 'defualt'; did you mean 'default'\? Known presets: default,"):
        presets.get("defualt")
    with pytest.raises(LookupError):
        presets.get("no-such-machine")
    with pytest.raises(PgdeferError) as ei:
        presets.info("no-such-machine")
    assert "\n" not in str(ei.value)


def test_default_layout():
    t = presets.get("default")
    assert t.nodes == [0, 1]
    mem = [(r.start, r.end, r.node) for r in t.memory]
    # node 0: [0x1000, 0x9f000), [1 MiB, 3 GiB), hole up to 4 GiB, then 5 GiB from 4 GiB; node 1: 8 GiB above it
    assert mem == [(0x1000, 0x9F000, 0), (1 * MiB, 3 * GiB, 0), (4 * GiB, 9 * GiB, 0), (9 * GiB, 17 * GiB, 1)]
    node0 = 0x9E000 + (3 * GiB - 1 * MiB) + 5 * GiB
    assert abs(node0 - 8 * GiB) < 1 * MiB
    res = [(r.start, r.end) for r in t.reserved]
    assert (16 * MiB, 48 * MiB) in res                               # kernel image
    assert (0, 1 * MiB) in res                                       # first 1 MiB
    assert (3 * GiB - 48 * MiB, 3 * GiB) in res                      # initrd, top of memory below 4 GiB
    # memmap: node 0 has sections [0, 24) (3 GiB) and [32, 72) (4..9 GiB) = 64 sections x 2 MiB = 128 MiB,
    # node 1 [72, 136) = 64 sections: both top-down at the end of the node
    assert (9 * GiB - 128 * MiB, 9 * GiB) in res
    assert (17 * GiB - 128 * MiB, 17 * GiB) in res
    # small: 2 x 8 GiB = 4 Mi pages of page array
    assert presets.host_bytes_needed(t) == t.memmap_pages * HOST_BYTES_PER_PAGE
    assert t.memmap_pages == (64 + 64) * PPS


def test_dma32_vm_last_zone_is_dma32():
    t = presets.get("vm-3.5g-dma32")
    zones = t.zones()
    assert [z.name for z in zones] == ["DMA", "DMA32"]
    # all RAM below 0xdffdf000: DMA32 = [0x1000, 0xdffdf)
    assert (zones[-1].start_pfn, zones[-1].end_pfn) == (0x1000, 0xDFFDF)


def test_published_machines_sizes():
    # memory per node as published
    assert [abs(sum(r.size for r in presets.get("p3-skylake-2x384g").memory if r.node == n) - 384 * GiB) < 2 * MiB
            for n in (0, 1)] == [True, True]
    p5 = presets.get("p5-haswell-2x128g")
    assert len(p5.nodes) == 2 and abs(p5.memory_bytes - 256 * GiB) < 2 * MiB
    assert abs(presets.get("vm-64g").memory_bytes - 64 * GiB) < 2 * MiB
    assert len(presets.get("m3-16node-12t").nodes) == 16
    assert presets.info("p3-skylake-2x384g").published["P3"]["threads_per_node"] == 52
    assert presets.info("p3-skylake-2x384g").published["P3"]["deferred_init_ms"] == \
        {"1 thread": 1785.7, "52 threads": 138.0}
    assert presets.info("m3-16node-12t").policy == "v4.2"


def _published_deferred(p):
    for anchor in p.published.values():
        if "deferred_pages" in anchor:
            yield from ((int(n), pages) for n, pages in anchor["deferred_pages"].items())
        if "deferred_pages_per_node" in anchor:
            yield 1, anchor["deferred_pages_per_node"]


@pytest.mark.parametrize("name", [n for n in presets.names() if any(_published_deferred(presets.info(n)))])
def test_published_deferred_pages_fit_the_reconstruction(name):
    """Pages a node's deferred pass initialised = last-zone present pages - early prefix - reserved pages there
    (the memmap alone is 1/64 = 1.6 %). So a faithful reconstruction has the published figure below the node's
    last-zone present pages, and not far below (within 5 %)."""
    p, t = presets.info(name), presets.get(name)
    for node, pages in _published_deferred(p):
        last = [z for z in t.zones(node) if z.present][-1]
        assert pages <= last.present, f"node {node}: more deferred pages than the zone has"
        assert pages >= 0.95 * last.present, f"node {node}: {pages} vs {last.present} present in {last.name}"


def test_768g_preset_fits_this_host():
    t = presets.get("p3-skylake-2x384g")
    # node 0: 2 GiB low = 16 sections, 382 GiB high = 3056 sections; node 1: 384 GiB = 3072 sections
    assert t.memmap_pages == (16 + 3056 + 3072) * PPS
    need = presets.host_bytes_needed(t)
    assert need == 6144 * 32768 * HOST_BYTES_PER_PAGE            # 6144 sections x 32768 pages x the core's B/page
    assert presets.check_fits_host(t, available=24 * GiB) == need
    have = presets.host_available_bytes()
    if have is not None and have >= need:
        assert presets.check_fits_host(t) == need


def test_too_large_presets_are_refused():
    t = presets.get("m3-16node-12t")
    # 16 x 768 GiB + low sections: 16 + (768 - 2) * 8 + 15 * 768 * 8 = 98304 sections (39 GiB at 13 B/page)
    need = 98304 * 32768 * HOST_BYTES_PER_PAGE
    assert presets.host_bytes_needed(t) == need
    with pytest.raises(HostMemoryError, match=rf"'m3-16node-12t' needs {need / GiB:.1f} GiB .* this host has 24\.0 GiB available") as ei:
        presets.check_fits_host(t, available=24 * GiB)
    assert isinstance(ei.value, MemoryError) and isinstance(ei.value, PgdeferError)
    assert "\n" not in str(ei.value)
    have = presets.host_available_bytes()
    if have is not None and have < 39 * GiB:  # the real host too (machines with more memory fit it)
        with pytest.raises(HostMemoryError, match=r"MemAvailable in /proc/meminfo"):
            presets.check_fits_host(t)


def test_host_available_bytes_reads_meminfo(tmp_path):
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:       24683656 kB\nMemFree:  100 kB\nMemAvailable:   24472652 kB\n")
    assert presets.host_available_bytes(str(f)) == 24472652 * 1024
    f.write_text("MemTotal:       24683656 kB\n")
    assert presets.host_available_bytes(str(f)) is None
    assert presets.host_available_bytes(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_boots_or_is_refused_with_the_figure(name):
    """Each preset boots (the early part: memory is mapped lazily, so even the 4 TB ones are quick) or,
    when its page array cannot fit this host, is refused with how much it needs. The smaller ones
    also run their per-node passes and pass check()."""
    from pgdefer import Machine

    t = presets.get(name)
    try:
        m = Machine(t, policy="v4.17")
    except HostMemoryError as e:
        assert "GiB" in str(e)
        assert presets.host_bytes_needed(t) > (presets.host_available_bytes() or 0)
        return
    m.boot()
    for n in m.nodes:
        assert m.first_deferred_pfn(n) is not None, "every preset's last zones are larger than a section"
        m.alloc_pages(0, node=n)
    if t.present_pages <= 64 * GiB // 4096:
        m.page_alloc_init_late()
        m.check()
        assert all(m.first_deferred_pfn(n) is None for n in m.nodes)

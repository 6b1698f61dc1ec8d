"""The biggest machines of the record end to end on this host (issue 12, spec §6.1 M3, M4, M6): the compact
memmap makes them fit, and the 24 TB DragonHawk's early-boot out-of-memory with a 2 GiB prefix is reproduced.
Host seconds and peak RSS are benchmarks (benches/bench_boot.py PRESET --memmap compact --check), not asserted
here."""

import pytest

from pgdefer import Machine, OutOfMemory
from pgdefer.sources import presets
from pgdefer.workload import replay

M4 = "m4-16node-24t"


def _booted(name, policy, **kw):
    m = Machine(presets.get(name), policy=policy, memmap="compact", **kw)
    m.boot()
    return m


def test_the_dragonhawk_workload_is_what_its_docstring_derives():
    """1.5 GiB of hash tables per node (dentry 2^31 + inode 2^30 buckets of 8 B over 16 nodes) plus the assumed
    1 GiB of the rest: 2.5 GiB per node, between a 2 GiB and a 4 GiB prefix."""
    t, w = presets.get(M4), presets.info(M4).workload
    bursts = w(t.nodes)
    per_node = {n: sum(b.pages for b in bursts if b.node == n) * t.geometry.page_size for n in t.nodes}
    hashes = sum(b.pages for b in bursts if "hash" in b.what) * t.geometry.page_size
    assert hashes == (2**31 + 2**30) * 8
    assert set(per_node.values()) == {5 << 29}  # 2.5 GiB


def test_a_2gib_prefix_runs_out_of_memory_in_early_boot_and_4gib_boots():
    """M4: with v4.2's fixed 2 GiB per node, the documented early demand cannot be met (no on-demand growth);
    with 4 GiB per node (the record's fix) and with growth (v4.17) it is."""
    demand = presets.info(M4).workload
    m = _booted(M4, "v4.2")
    with pytest.raises(OutOfMemory):
        replay(m, demand(m.nodes), on_failure="raise")
    for policy, kw in (("v4.2", {"early_prefix": "4G"}), ("v4.17", {})):
        m = _booted(M4, policy, **kw)
        results = replay(m, demand(m.nodes), on_failure="raise")
        assert all(failed == 0 for _, failed in results.values()), (policy, kw)
    # Where each generation cuts: v4.2's prefix is 2 GiB or the given size, rounded up to a section.
    node1 = presets.get(M4).node_span(1)[0]
    for kw, prefix in (({}, 2 << 30), ({"early_prefix": "4G"}, 4 << 30)):
        assert _booted(M4, "v4.2", **kw).first_deferred_pfn(1) == node1 + prefix // 4096


def test_early_prefix_is_v4_2s_alone_and_a_whole_number_of_pages():
    from pgdefer.errors import InvalidArgument

    t = presets.get("default")
    for bad in ({"policy": "v4.17", "early_prefix": "4G"}, {"policy": "v4.2", "early_prefix": 4097},
                {"policy": "v4.2", "early_prefix": 0}):
        with pytest.raises(InvalidArgument, match="early_prefix"):
            Machine(t, **bad)


@pytest.mark.parametrize("name,policy", [(M4, "v4.17"), (M4, "v5.10"), ("m3-16node-12t", "v4.2"),
                                         ("m6-power-16node-32t", "v4.6")])
def test_the_biggest_machines_boot_end_to_end(name, policy):
    """boot, the documented early demand, page_alloc_init_late and check() on 12, 24 and 32 TB (64 KiB pages):
    every page initialised once, none lost, and most sections left as summaries."""
    m = _booted(name, policy)
    own = presets.info(name).workload
    if own is not None:
        replay(m, own(m.nodes), on_failure="raise")
    m.page_alloc_init_late()
    m.check()
    assert all(m.first_deferred_pfn(n) is None for n in m.nodes)
    census = m.memmap_census()
    sections = len(m.pages) // m.geometry.pages_per_section
    assert census["free_run"] > 0.95 * sections, census

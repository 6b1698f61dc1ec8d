"""Facts the core owns and exports (policy table, defer rule, event kinds): Python reads them, never re-types
them."""

import numpy as np
import pytest

import pgdefer
from pgdefer import Machine, Region, Topology, _core
from pgdefer.machine import deferral
from pgdefer.testing import _need_hypothesis, topologies

MiB, GiB = 1 << 20, 1 << 30


def test_policy_table_is_the_core_s():
    assert pgdefer.POLICIES == tuple(_core.POLICIES) == tuple(pgdefer.POLICY_FACTS)
    # Release order starts without deferral and ends with the newest generation modelled.
    assert pgdefer.POLICIES[0] == "eager"
    facts = pgdefer.POLICY_FACTS
    # DESIGN.md's policy table: only eager never defers; v4.2 defers but has no on-demand hook.
    assert [p for p in facts if not facts[p]["defers"]] == ["eager"]
    assert not facts["v4.2"]["grows"] and not facts["v4.2"]["static_key"]
    assert facts["v4.2"]["key_disable"] == "no_key"
    # posting-v2: one global grow lock, key off under it before the passes; v4.17: per-node lock held
    # for the whole pass, key off after every pass.
    assert facts["posting-v2"]["grow_lock"] == "global"
    assert facts["posting-v2"]["key_disable"] == "before_passes"
    assert not facts["posting-v2"]["pass_holds_node_lock"]
    assert facts["v4.17"]["grow_lock"] == "per_node"
    assert facts["v4.17"]["key_disable"] == "after_passes"
    assert facts["v4.17"]["pass_holds_node_lock"]
    for name, f in facts.items():
        assert f["name"] == name
        assert not f["grows"] or f["static_key"]  # the hook is behind the key


def test_early_limit_is_callable_per_policy():
    g = pgdefer.Geometry()  # 4 KiB pages, 128 MiB sections: PAGES_PER_SECTION = 32768
    lim = {p: f["early_limit"] for p, f in pgdefer.POLICY_FACTS.items()}
    assert lim["eager"](g, 1 << 20) is None
    assert lim["v4.2"](g, 1 << 20) == (2 * GiB) // 4096  # the fixed 2 GiB prefix = 524288 pages
    assert lim["v4.17"](g, 1 << 20) == 32768  # min(PAGES_PER_SECTION, node_spanned)
    assert lim["v4.17"](g, 1000) == 1000
    with pytest.raises(TypeError):
        lim["v4.17"](g)


def test_deferral_without_a_page_array():
    """One node [0, 16 GiB), default zones: Normal = pfns [0x100000, 0x400000) is the deferred zone.

    v4.17: LIMIT 32768; pfn 0x100000 + 32768 = 0x108000 is the first over it and section aligned, so
    first_deferred_pfn = 0x108000 and 0x400000 - 0x108000 = 3112960 pages stay uninitialised.
    v4.2: LIMIT 524288 = 0x80000, cut 0x180000, 0x400000 - 0x180000 = 2621440 pages.
    eager: nothing."""
    t = Topology(memory=[Region(0, 16 * GiB, node=0)])
    assert [(n.node, n.first_deferred_pfn, n.deferred_pages) for n in deferral(t, "v4.17")] == [
        (0, 0x108000, 3112960)]
    assert deferral(t, "v4.2")[0].first_deferred_pfn == 0x180000
    assert deferral(t, "v4.2")[0].deferred_pages == 2621440
    assert deferral(t, "eager")[0].first_deferred_pfn is None
    assert deferral(t, "eager")[0].deferred_pages == 0


def test_deferral_is_what_the_machine_does():
    """The pure defer rule and a booted machine agree: same cut, and the pages at or above it are the
    uninitialised ones plus the reserved ones memblock_free_all initialised."""
    _need_hypothesis()
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None)
    @given(topologies(), st.sampled_from(pgdefer.POLICIES))
    def check(topo, policy):
        m = Machine(topo, policy=policy)
        m.boot()
        pages = m.pages
        pfn = pages.pfn
        init_by = pages.init_by
        mfa = pgdefer.machine.INIT_BY.index("memblock_free_all")
        ps = topo.geometry.page_size
        left = (pages.state == 0) | (init_by == mfa)  # uninitialised after boot, or only by memblock_free_all
        for n in deferral(topo, policy):
            assert n.first_deferred_pfn == m.first_deferred_pfn(n.node)
            # An uninitialised descriptor has no node yet: attribute pages by the node's memory regions.
            node_mem = np.zeros(len(pfn), dtype=bool)
            for r in topo.memory:
                if r.node == n.node:
                    node_mem |= (pfn >= r.start // ps) & (pfn < r.end // ps)
            mine = left & node_mem
            if n.first_deferred_pfn is not None:
                assert (pfn[mine] >= n.first_deferred_pfn).all()
            assert int(mine.sum()) == n.deferred_pages

    check()


def test_event_kinds_are_the_core_s():
    t = Topology(memory=[Region(MiB, 5 * GiB, node=0)], reserved=[Region(16 * MiB, 48 * MiB)])
    m = Machine(t, policy="v4.17")
    m.boot()
    m.deferred_grow_zone(0, "Normal", 0)
    m.page_alloc_init_late()
    seen = set()
    for e in m.events:
        assert set(e) == {"kind", "t_ns", "cpu", *_core.EVENT_KINDS[e["kind"]]}
        seen.add(e["kind"])
    assert {"early_init", "memblock_free_all", "grow", "deferred_init", "key_disable"} <= seen


def test_python_re_decides_no_policy_by_name():
    """Acceptance #3 of issue 7: policy facts come from POLICY_FACTS, never from comparing names (the oracle is
    independent on purpose and excepted)."""
    import pathlib
    import re

    pkg = pathlib.Path(pgdefer.__file__).parent
    bad = re.compile(r"policy\s*(==|!=)|policy\s+(not\s+)?in\s*\(")
    hits = [f"{f.name}:{i}: {line.strip()}" for f in sorted(pkg.rglob("*.py")) if f.name != "oracle.py"
            for i, line in enumerate(f.read_text().splitlines(), 1) if bad.search(line)]
    assert hits == []


def test_python_re_types_no_core_constant():
    """Acceptance #3 of issue 7: page states, init paths, zones, the flags layout, NO_ORDER, the host bytes per
    page and the policy names are the core's; Python derives them (the oracle is excepted)."""
    import pathlib
    import re

    pkg = pathlib.Path(pgdefer.__file__).parent
    retyped = re.compile("|".join([
        r"\(\s*\"uninit\",\s*\"init\"",          # the state names
        r"\(\s*\"none\",\s*\"early\"",           # the init_by names
        r"\"DMA\",\s*\"DMA32\"",                 # the zone names
        r"\"eager\",\s*\"v4\.2\"",               # the policy list
        r"NO_ORDER\s*=\s*\d", r"BYTES_PER_PAGE\s*=\s*\d",
        r"flags\s*(&|>>)\s*\d",                  # the flags bit layout
        r"=\s*range\(5\)",                       # state values by position
        r"MAX_NUMNODES\s*=\s*\d", r"MAX_PHYSMEM_BITS\s*=\s*\d",
    ]))
    hits = [f"{f.name}:{i}: {line.strip()}" for f in sorted(pkg.rglob("*.py")) if f.name != "oracle.py"
            for i, line in enumerate(f.read_text().splitlines(), 1) if retyped.search(line)]
    assert hits == []


def test_page_enums_are_the_core_s():
    from pgdefer import machine

    assert [s.name.lower() for s in machine.PageState] == list(_core.PAGE_STATES) == list(machine.STATE_NAMES)
    assert (machine.UNINIT, machine.ALLOCATED) == (machine.PageState.UNINIT, machine.PageState.ALLOCATED) == (0, 4)
    assert [z.name for z in machine.Zone] == ["DMA", "DMA32", "NORMAL", "MOVABLE"]
    assert machine.INIT_BY.index("memblock_free_all") == machine.InitBy.MEMBLOCK_FREE_ALL
    assert machine.NO_ORDER == 255 and _core.NO_ORDER == 255  # a u8 order byte with no head: (0 - 1) mod 256
    assert pgdefer.config.HOST_BYTES_PER_PAGE == _core.BYTES_PER_PAGE
    # The layout decodes what the core wrote: after boot every DMA page is in zone DMA, every pfn initialised once.
    t = Topology(memory=[Region(MiB, 5 * GiB, node=0)], reserved=[Region(16 * MiB, 48 * MiB)])
    m = Machine(t, policy="v4.17")
    m.boot()
    p = m.pages
    dma = (p.pfn >= 0x100) & (p.pfn < 0x1000)
    assert (p.zone[dma] == machine.Zone.DMA).all()
    assert (p.init_count[dma] == 1).all()
    assert int((p.state == machine.PageState.RESERVED).sum()) >= 8192  # the 32 MiB reserved range


# -- one validation owner per argument (issue 7) -------------------------------------------------------------

def _two_nodes():
    return Topology(memory=[Region(0, 256 * MiB, node=0), Region(256 * MiB, 512 * MiB, node=1)])


def _core_args(topo, policy="v4.17"):
    return pgdefer.machine._layout(topo), policy


MISUSE = [  # (name, Python Machine kwargs, the same request straight to _core.Machine or None if Python only)
    ("cpus zero", dict(cpus=0), dict(cpus=0)),
    ("cpus too many", dict(cpus=5000), dict(cpus=5000)),
    ("host_threads", dict(host_threads=0), dict(host_threads=0)),
    ("fail_pass node", dict(fail_pass=(7, 10)), dict(fail_pass=(7, 10))),
    ("panic_pass node", dict(panic_pass=7), dict(panic_pass=7)),
    ("node_cpus node", dict(node_cpus={7: 1}), dict(node_cpus=[(7, 1)])),
    ("node_cpus count", dict(node_cpus={1: 5000}), dict(node_cpus=[(1, 5000)])),
    ("unknown policy", dict(policy="v9.9"), dict(policy="v9.9")),
    ("unknown fault", dict(faults=("nope",)), None),
    ("fault of another policy", dict(faults=("retry_forever",)), None),
    ("negative cpus", dict(cpus=-1), None),
    ("negative fail_pass pages", dict(fail_pass=(0, -1)), None),
]


@pytest.mark.parametrize("name,kw,core_kw", MISUSE, ids=[m[0] for m in MISUSE])
def test_misuse_is_invalid_argument_with_one_message(name, kw, core_kw):
    topo = _two_nodes()
    with pytest.raises(pgdefer.InvalidArgument) as py_err:
        Machine(topo, **kw)
    assert isinstance(py_err.value, ValueError) and not isinstance(py_err.value, pgdefer.TopologyError)
    if core_kw is not None:
        policy = core_kw.pop("policy", "v4.17")
        with pytest.raises(pgdefer.InvalidArgument) as core_err:
            _core.Machine(*_core_args(topo, policy), **core_kw)
        assert str(core_err.value) == str(py_err.value)


def test_bad_cpu_and_point_are_invalid_argument_with_the_core_s_message():
    m = Machine(_two_nodes(), cpus=2)
    m.boot()
    slots = m._cpu_slots
    # Python's fast check and the core's check_cpu say the same thing about the first CPU that does not exist
    # (interrupts may target any CPU; allocations only the workload CPUs, tests/test_api_threads.py).
    with pytest.raises(pgdefer.InvalidArgument) as py_err:
        m.raise_irq(slots, 0)
    with pytest.raises(pgdefer.InvalidArgument) as core_err:
        m._core.alloc_pages(0, None, None, slots)
    assert str(py_err.value) == str(core_err.value)
    assert f"cpu {slots} does not exist" in str(py_err.value)
    with pytest.raises(pgdefer.InvalidArgument, match="cpu -1 does not exist"):
        m.alloc_pages(0, cpu=-1)
    m.raise_irq(slots - 1, 0)  # the last slot exists
    with pytest.raises(pgdefer.InvalidArgument, match='unknown point "nowhere"'):
        m.at("nowhere", lambda *a: None)
    with pytest.raises(pgdefer.InvalidArgument, match='unknown policy "v9.9"'):
        deferral(_two_nodes(), "v9.9")

"""Hypothesis strategies and a replay driver for testing pgdefer machines.

* :func:`small_geometries` - 4 KiB pages, 16..128 pages per section, any valid max/pageblock order;
* :func:`topologies` - small valid :class:`~pgdefer.Topology` objects (1-3 nodes, holes, unaligned region edges,
  reserved ranges of every shape, several zones);
* :func:`operations` - a plain-data list of operations for a given topology;
* :func:`replay` - run such a list on any machine with the pgdefer machine API (the Rust ``pgdefer.Machine`` or
  ``pgdefer.oracle.OracleMachine``) and return one outcome per operation, so two machines can be compared;
* :class:`Deterministic` - a core machine whose passes (also a replayed ``late_init``) run in the deterministic
  mode, so its free lists can be compared with the oracle's;
* :func:`snapshot` - the observable state of a machine as plain data (for equality checks);
* :func:`normalised` - a snapshot without what legitimately differs between the Rust core and the oracle (host
  time, simulated CPUs, the core's concurrency diagnostics, the order in which per-node pass threads log).

Comparing the core with the oracle on one machine (``tests/test_events_snapshot.py`` runs this very example)::

    from pgdefer import Machine
    from pgdefer.oracle import OracleMachine
    from pgdefer.testing import normalised, snapshot

    def test_core_matches_oracle(topology, policy="v4.17"):
        core, oracle = Machine(topology, policy=policy), OracleMachine(topology, policy=policy)
        for m in (core, oracle):
            m.boot()
            m.alloc_pages(order=0)
            m.page_alloc_init_late()
        assert normalised(snapshot(core)) == normalised(snapshot(oracle))

For the padata generations (5.8+) call ``page_alloc_init_late(threads=False)`` on the core: with threads, which
simulated worker takes which chunk depends on the host's scheduling.

``hypothesis`` is only needed by the strategies; importing this module without it still gives :func:`replay`
and :func:`snapshot`.
"""

from __future__ import annotations

from .config import ZONE_NAMES, Geometry
from .errors import InvalidArgument, PgdeferError
from .topology import Topology

try:
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    st = None

__all__ = ["small_geometries", "topologies", "operations", "replay", "snapshot", "normalised",
           "has_mixed_node_blocks", "policies", "node_cpus", "Deterministic", "TIMING_KEYS", "DIAGNOSTICS"]


def _need_hypothesis():
    if st is None:  # pragma: no cover
        raise ImportError("pgdefer.testing strategies need hypothesis (pip install pgdefer[test])")


# ----------------------------------------------------------------------------------------------------
# geometries
# ----------------------------------------------------------------------------------------------------

def small_geometries():
    """Geometries with 4 KiB pages and PAGES_PER_SECTION in 16..128 (max_order and pageblock_order valid)."""
    _need_hypothesis()

    @st.composite
    def _geo(draw):
        pps_log = draw(st.integers(4, 7))
        max_order = draw(st.integers(0, pps_log))
        pageblock_order = draw(st.integers(0, max_order))
        return Geometry(page_size="4K", section_size=4096 << pps_log, pageblock_order=pageblock_order,
                        max_order=max_order)

    return _geo()


# ----------------------------------------------------------------------------------------------------
# topologies
# ----------------------------------------------------------------------------------------------------

def topologies(geometry=None, max_nodes=3, max_sections=24, mixed_node_blocks=False):  # noqa: C901 - one draw per knob
    """Small valid topologies.

    Memory spans at most ``max_sections`` sections of address space (so at most that many present sections).
    Node ids are drawn from 0..7 (not necessarily starting at 0); the placement is ascending, descending (a
    higher node id below a lower one), interleaved (N0/N1/N0...) or random. Regions are separated by nothing
    (touching), by a few pages, or by whole sections (absent sections); region edges are sometimes not page
    aligned. Reserved ranges lie inside memory, straddle region edges, or cover no memory at all. Zone limits
    are multiples of the MAX_ORDER block size inside the memory span, so several zones exist; sometimes there
    is a Normal limit (so Movable exists), sometimes DMA or DMA32 is absent.

    With ``mixed_node_blocks=False`` (the default) no MAX_ORDER block holds memory pfns of two nodes (a region
    whose node differs from the previous region's starts in a new block). With ``True`` node boundaries may fall
    anywhere; then frees can meet another node's UNINIT buddy (recorded B-I2 violations) and a pageblock whose
    first pfn is another node's deferred pfn can hold FREE pages (``check()`` reports B-I3): kernel hazards the
    model exposes, not model bugs. See :func:`has_mixed_node_blocks`.
    """
    _need_hypothesis()
    if max_nodes < 1:
        raise ValueError("max_nodes must be >= 1")

    @st.composite
    def _topo(draw):  # noqa: C901 - a hypothesis strategy: one draw per knob of the machine
        g = geometry if geometry is not None else draw(small_geometries())
        ps, pps = g.page_size, g.pages_per_section
        limit = max_sections * g.section_size             # the whole map lies in [0, limit)

        n_nodes = draw(st.integers(1, max_nodes))
        ids = draw(st.lists(st.integers(0, 7), min_size=n_nodes, max_size=n_nodes, unique=True))
        layout = draw(st.sampled_from(["ascending", "descending", "interleaved", "random"]))
        n_regions = draw(st.integers(n_nodes, n_nodes + 3))
        if layout == "random":
            owners = ids + draw(st.lists(st.sampled_from(ids), min_size=n_regions - n_nodes,
                                         max_size=n_regions - n_nodes))
            owners = draw(st.permutations(owners))
        elif layout == "interleaved":
            if n_nodes > 1:
                n_regions = max(n_regions, n_nodes + 1)
            owners = [ids[i % n_nodes] for i in range(n_regions)]
        else:
            ordered = sorted(ids, reverse=(layout == "descending"))
            counts = [1] * n_nodes
            for _ in range(n_regions - n_nodes):
                counts[draw(st.integers(0, n_nodes - 1))] += 1
            owners = [nid for nid, c in zip(ordered, counts) for _ in range(c)]

        unaligned = st.sampled_from([0, 0, 0, 1, ps // 2, ps - 1])
        block = ps << g.max_order
        regions = []
        # the first region always holds a whole page: it starts at most ps-1 bytes after cursor and ends at
        # least 3 pages after it (minus at most ps-1 bytes)
        cursor = draw(st.integers(0, max(0, min(2 * pps, max_sections * pps - 4)))) * ps
        for idx, nid in enumerate(owners):
            if idx:
                gap_kind = draw(st.sampled_from(["touch", "pages", "sections"]))
                if gap_kind == "pages":
                    cursor += draw(st.integers(1, pps)) * ps
                elif gap_kind == "sections":
                    cursor += draw(st.integers(1, 3)) * pps * ps
                if nid != owners[idx - 1] and not mixed_node_blocks:
                    cursor = -(-cursor // block) * block
            length = draw(st.integers(3, 3 * pps)) * ps
            start = cursor + (draw(unaligned) if draw(st.booleans()) else 0)
            end = min(cursor + length, limit)
            if end - start < ps:
                break
            if draw(st.booleans()):
                end -= draw(unaligned)
            regions.append((start, end, nid))
            cursor = end
        top = regions[-1][1]

        # reserved ranges
        reserved = []
        for _ in range(draw(st.integers(0, 4))):
            shape = draw(st.sampled_from(["inside", "inside", "edge", "nomemory", "big"]))
            rs, re_, _n = regions[draw(st.integers(0, len(regions) - 1))]
            if shape == "inside":
                a = draw(st.integers(rs, re_ - 1))
                b = draw(st.integers(a + 1, min(re_, a + 2 * pps * ps)))
            elif shape == "edge":
                edge = draw(st.sampled_from([rs, re_]))
                a = max(0, edge - draw(st.integers(1, pps)) * ps - draw(unaligned))
                b = edge + draw(st.integers(1, pps)) * ps + draw(unaligned)
            elif shape == "nomemory":
                gaps = [(e1, s2) for (_, e1, _), (s2, _, _) in zip(regions, regions[1:]) if s2 > e1]
                gaps.append((top, top + 4 * pps * ps))
                ga, gb = draw(st.sampled_from(gaps))
                a = draw(st.integers(ga, gb - 1))
                b = draw(st.integers(a + 1, gb))
            else:
                a = draw(st.integers(0, top - 1))
                b = draw(st.integers(a + 1, top + ps))
            reserved.append((a, b))

        # zone limits: multiples of the MAX_ORDER block, non-decreasing, inside (or just above) the memory
        nblocks = -(-top // block)
        cuts = sorted(draw(st.lists(st.integers(0, nblocks), min_size=3, max_size=3)))
        mode = draw(st.sampled_from(["DMA+DMA32", "DMA+DMA32", "DMA+DMA32+Normal", "DMA32", "DMA", "Normal",
                                     "none"]))
        limits = {}
        if "DMA" in mode.split("+"):
            limits["DMA"] = cuts[0] * block
        if "DMA32" in mode.split("+"):
            limits["DMA32"] = cuts[1] * block
        if "Normal" in mode.split("+"):
            limits["Normal"] = cuts[2] * block
        return Topology(memory=regions, reserved=reserved, zone_limits=limits, geometry=g)

    return _topo()


def has_mixed_node_blocks(topology) -> bool:
    """True if some MAX_ORDER block holds memory pfns of two nodes.

    Only then can a free meet an UNINIT buddy (a B-I2 violation recorded by the model, spec §7): a buddy is in
    the freed block's MAX_ORDER block, and within one node the two-pass grow design keeps buddies initialised.
    """
    g = topology.geometry
    owner = {}
    for r in topology.memory:
        s, e = g.pfn_up(r.start), g.pfn_down(r.end)
        if s >= e:
            continue
        for blk in range(s >> g.max_order, ((e - 1) >> g.max_order) + 1):
            if owner.setdefault(blk, r.node) != r.node:
                return True
    return False


# ----------------------------------------------------------------------------------------------------
# policies and CPUs per node
# ----------------------------------------------------------------------------------------------------

def policies(core_only=False):
    """Policy names: every generation the oracle models (``pgdefer.oracle.POLICIES``), or with ``core_only``
    those the Rust core accepts (``pgdefer.POLICIES``, the core's own list: it grows as the core gains
    generations)."""
    _need_hypothesis()
    if core_only:
        from . import POLICIES
    else:
        from .oracle import POLICIES
    return st.sampled_from(tuple(POLICIES))


def node_cpus(topology, max_cpus=6):
    """A ``node_cpus`` mapping (node -> 0..max_cpus CPUs) for the topology's nodes; padata's max_threads."""
    _need_hypothesis()
    return st.fixed_dictionaries({n: st.integers(0, max_cpus) for n in topology.nodes})


# ----------------------------------------------------------------------------------------------------
# operations
# ----------------------------------------------------------------------------------------------------

def operations(topology, max_ops=30, invalid=True, min_ops=0):
    """Lists of operations for machines built from ``topology``:

    * ``("alloc", order, node_or_None, zone_or_None[, migratetype])`` (migratetype: Unmovable when left out)
    * ``("alloc_n", count, order, node_or_None, zone_or_None)`` - up to ``count`` allocations in a row (stops at
      the first error); drains zones so that grows happen
    * ``("free", i)`` - free the live allocation ``i % len(live)`` (skipped when there is none)
    * ``("free_wrong", i)`` - free live allocation ``i % len(live)`` with a wrong order (expect an error)
    * ``("grow", node, zone, order)`` - an explicit ``deferred_grow_zone``
    * ``("late_init",)`` - ``page_alloc_init_late()``

    With ``invalid=True`` some operations name an unknown node or zone or an order above max_order.
    """
    _need_hypothesis()
    nodes = topology.nodes
    max_order = topology.geometry.max_order
    orders = st.one_of(st.just(0), st.integers(0, max_order), st.integers(0, min(max_order, 2)))
    node_or_none = st.one_of(st.none(), st.sampled_from(nodes))
    zone_or_none = st.one_of(st.none(), st.sampled_from(ZONE_NAMES))
    # GFP_KERNEL (UNMOVABLE) most often; page cache (MOVABLE) and slab caches (RECLAIMABLE) too
    mts = st.sampled_from(["Unmovable", "Unmovable", "Movable", "Reclaimable"])
    alloc = st.tuples(st.just("alloc"), orders, node_or_none, zone_or_none, mts)
    alloc_n = st.tuples(st.just("alloc_n"), st.integers(1, 4 * topology.geometry.pages_per_section), orders,
                        node_or_none, zone_or_none, mts)
    free = st.tuples(st.just("free"), st.integers(0, 1 << 16))
    grow = st.tuples(st.just("grow"), st.sampled_from(nodes), st.sampled_from(ZONE_NAMES), orders)
    late = st.just(("late_init",))
    choices = [alloc, alloc, alloc, alloc_n, free, free, grow, late]
    if invalid:
        bad_node = max(nodes) + 1
        choices.append(st.sampled_from([
            ("alloc", max_order + 1, None, None),
            ("alloc", 0, bad_node, None),
            ("alloc", 0, None, "HighMem"),
            ("grow", bad_node, "Normal", 0),
            ("grow", nodes[0], "HighMem", 0),
            ("grow", nodes[0], "Normal", max_order + 1),
        ]))
        choices.append(st.tuples(st.just("free_wrong"), st.integers(0, 1 << 16)))
    return st.lists(st.one_of(*choices), min_size=min_ops, max_size=max_ops)


class Deterministic:
    """A core :class:`~pgdefer.Machine` whose ``page_alloc_init_late`` (also the one a replayed ``("late_init",)``
    runs) is the deterministic mode: nodes in order, each job's chunks in ascending order on the calling thread.
    With threads, the order in which racing passes free into a block two nodes share, and which padata worker
    takes which chunk, depend on the host's scheduling. Every other attribute is the machine's own."""

    def __init__(self, machine):
        self._machine = machine

    def __getattr__(self, name):
        return getattr(self._machine, name)

    def page_alloc_init_late(self):
        """The machine's passes with ``threads=False``."""
        self._machine.page_alloc_init_late(threads=False)


def replay(machine, ops, after_each=None):
    """Run ``ops`` (from :func:`operations`) on a booted ``machine``; return one outcome per operation.

    An outcome is the allocated pfn, the grow result, ``None``, or the name of the pgdefer exception raised;
    for ``alloc_n`` it is the list of those of each allocation.
    ``after_each(machine, op, outcome)`` is called after every operation (e.g. to run ``machine.check()``).
    """
    live = []                                             # (pfn, order) of live allocations, oldest first
    outcomes = []
    for op in ops:
        out = None
        try:
            kind = op[0]
            if kind == "alloc":
                _, order, node, zone, *mt = op
                out = machine.alloc_pages(order, node=node, zone=zone, migratetype=(mt or ["Unmovable"])[0])
                live.append((out, order))
            elif kind == "alloc_n":
                _, count, order, node, zone, *mt = op
                out = []
                for _ in range(count):
                    try:
                        pfn = machine.alloc_pages(order, node=node, zone=zone,
                                                  migratetype=(mt or ["Unmovable"])[0])
                    except PgdeferError as e:
                        out.append(type(e).__name__)
                        break
                    live.append((pfn, order))
                    out.append(pfn)
            elif kind == "free":
                if live:
                    pfn, order = live.pop(op[1] % len(live))
                    machine.free_pages(pfn, order)
                    out = pfn
            elif kind == "free_wrong":
                if live:
                    pfn, order = live[op[1] % len(live)]
                    machine.free_pages(pfn, order + 1 if order == 0 else order - 1)
                    out = pfn
            elif kind == "grow":
                _, node, zone, order = op
                out = machine.deferred_grow_zone(node, zone, order)
            elif kind == "late_init":
                machine.page_alloc_init_late()
            else:
                raise ValueError(f"unknown operation {op!r}")
        except PgdeferError as e:
            out = type(e).__name__
        outcomes.append(out)
        if after_each is not None:
            after_each(machine, op, out)
    return outcomes


def snapshot(machine) -> dict:
    """Everything observable about a machine as plain, comparable data (events without ``host_ns``)."""
    from .gfp import MIGRATETYPES

    arrays = {k: v.tolist() for k, v in machine.page_arrays().items()}
    zones = {}
    free_lists = {}
    pcp = {}
    for node in machine.nodes:
        for name in ZONE_NAMES:
            try:
                z = machine.zone(node, name)
            except LookupError:
                continue
            zones[(node, name)] = (z.start_pfn, z.end_pfn, z.spanned, z.present, z.managed, z.free_pages,
                                   list(z.nr_free))
            # per order, one list per migratetype (Unmovable, Movable, Reclaimable, HighAtomic), head first
            free_lists[(node, name)] = [[machine.free_list(node, name, k, mt) for mt in MIGRATETYPES]
                                        for k in range(len(z.nr_free))]
            pcp[(node, name)] = machine.pcp(node, name)          # CPU 0's per-CPU lists, head first
    events = [{k: v for k, v in e.items() if k != "host_ns"} for e in machine.events]
    return {
        "phase": machine.phase,
        "key": machine.deferred_pages_enabled,
        "fdp": {n: machine.first_deferred_pfn(n) for n in machine.nodes},
        "arrays": arrays,
        "migratetypes": dict(machine.pageblock_migratetypes()),
        "zones": zones,
        "free_lists": free_lists,
        "pcp": pcp,
        "events": events,
        "violations": list(machine.violations),
    }


#: Event fields only the Rust core has: host time and the simulated CPU that logged the event.
TIMING_KEYS = frozenset({"host_ns", "t_ns", "cpu"})
#: Event kinds from the core's CPU model (lockdep, sleeping-in-atomic warnings), which the single-threaded oracle
#: does not have; tests/test_concurrency.py pins them.
DIAGNOSTICS = frozenset({"warning", "lockdep"})
_PASS_EVENTS = ("padata_chunk", "deferred_init")


def normalised(snap: dict) -> dict:
    """``snap`` (from :func:`snapshot`) with events comparable between the core and the oracle: without
    TIMING_KEYS fields and DIAGNOSTICS events, and each run of per-node pass events (padata_chunk,
    deferred_init: one thread per node logs them, so nodes interleave at random) in node order, a node's chunks
    by start, its deferred_init last. Everything else is left as it is."""
    if not isinstance(snap, dict) or not isinstance(snap.get("events"), list):
        raise InvalidArgument("normalised() takes a snapshot(machine) dict (with its 'events' list)")
    events = [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in snap["events"]
              if e["kind"] not in DIAGNOSTICS]
    out, run = [], []
    for e in events + [None]:
        if e is not None and e["kind"] in _PASS_EVENTS:
            run.append(e)
            continue
        out += sorted(run, key=lambda x: (x["node"], _PASS_EVENTS.index(x["kind"]), x.get("start", 0)))
        run = []
        if e is not None:
            out.append(e)
    return dict(snap, events=out)


def run_cli(argv, capsys):
    """``pgdefer`` ``main(argv)`` in-process, for a pytest test with the ``capsys`` fixture: returns (exit
    status, stdout, stderr); argparse's ``SystemExit`` (``--help``, usage errors) becomes the status."""
    from .cli import main

    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err

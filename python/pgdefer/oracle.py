"""A pure-Python reference oracle for pgdefer.

:class:`OracleMachine` implements ``docs/model.md`` (the contract) directly from its text and from the spec
sections it cites (``shared/spec/kernel-deferred-init.md`` §2.3, §2.5, §3.1-3.3, §4, §7), simply and slowly, so
that the Rust core (``pgdefer.Machine``, same API) can be differential-tested against it. It deliberately shares
no code with the Rust core and does not use :class:`~pgdefer.Topology`'s derived sizing helpers: nodes, zones,
present sections, holes and free ranges are derived here from the raw validated data (``topology.memory``,
``topology.reserved``, ``topology.zone_limits``, ``topology.geometry``).

Representation (all plain Python):

* the page array: one entry per pfn of every present section, in ascending pfn order, stored column-wise in
  ``bytearray`` s (state, zone, init_count, order) and an ``array('H')`` (node); ``_i(pfn)`` maps a pfn to its
  index;
* pageblock migratetypes: a dict pageblock index -> migratetype number (0 UNMOVABLE, 1 MOVABLE, 2 RECLAIMABLE,
  3 HIGHATOMIC, the kernel's values); a pageblock not in it is unset (read as UNMOVABLE, like the kernel's zeroed
  bitmap);
* free lists: per zone of a node, per (order, migratetype), an ``OrderedDict`` of block-head pfns (keys, in list
  order), and per zone a dict free-block head -> (order, migratetype) saying which list holds it;
* ``first_deferred_pfn`` is kept as in the kernel (``ULONG_MAX`` = nothing deferred) and shown as ``None``.

Range-based loops (slice assignment per section) are used where a per-pfn loop would be slow on machines of a
few million pages; each of them is a literal transcription of a per-pfn rule, stated next to it.

Kernel generations (``docs/model.md`` §11): every per-generation decision reads one row of :data:`GENERATIONS`, a
table of facts (early LIMIT rule, hole counting, grow loop, pass loop, claim, free runs, list placement, where
the Memory: line is printed). The oracle never tests a policy name. Padata jobs run their chunks one after
another in ascending order (:func:`padata_chunks` says which simulated worker takes which chunk).
"""

from __future__ import annotations

import dataclasses
import operator
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional

from .config import ZONE_NAMES
from .errors import (BadFree, InvalidArgument, InvariantViolation, OrderError, OutOfMemory, PhaseError,
                     UnknownNode, UnknownZone)
from .topology import Topology

__all__ = ["OracleMachine", "OracleZone", "Generation", "GENERATIONS", "POLICIES", "FAULTS", "POINTS",
           "padata_chunks", "STATE_NAMES", "UNINIT", "INIT", "RESERVED", "FREE", "ALLOCATED", "NO_ORDER"]


@dataclass(frozen=True)
class Generation:
    """What one kernel generation does, as facts (docs/model.md §11.1). The oracle's own table, kept apart from
    the core's on purpose: both are written from the contract."""

    limit: str                  # early LIMIT rule (§11.2): none | 2g | 2g_spanned | 2g_spanned_reserved | section
    count_holes: bool           # the 4.x-5.7 memmap_init_zone loop counts holes of present sections (§11.2)
    grow: str                   # none | sections (4.17, §7) | maxorder (5.2+, §11.3) | sections2025 (§11.3)
    key_off_result: Optional[bool]  # what grow returns when it finds the key off under the lock; None: no check
    grow_needs_all: bool        # posting-v2 returns got >= need, the merged code got > 0
    key_off_first: bool         # posting-v2 disables the key before the per-node passes
    pass_loop: str              # two_pass | maxorder | padata_ranges | padata_zone (§11.5)
    claim: bool                 # 5.7+: the pass claims the node and drops the lock (§11.4)
    free_runs: str              # pageblock | max_order (§11.7)
    boot_to_tail: bool          # 5.10+ FPI_TO_TAIL; before: __free_one_page's head rule (§11.7)
    memory_line_late: bool      # mem_init_print_info() at the end of page_alloc_init_late (§11.9)
    faults: tuple = ()          # fault variants this generation accepts
    fallback: str = "move_head"  # how a stolen block is handed over (§5.1): move_head (list_move, < 5.10),
    #                              move_tail (move_to_free_list is list_move_tail, 5.10), claim (6.10 hygiene)
    nofragment: bool = False    # alloc_flags_nofragment() exists (5.0+)
    pcp: str = "v4.17"          # per-CPU lists (§5.3): v4.17 (order 0, high 6*batch) | v5.14 (orders 0-3, 4*batch)


def _gen(limit, holes, grow, pass_loop, free_runs="pageblock", tail=False, late=False, key_off=None,
         needs_all=False, key_first=False, claim=False, faults=()):
    return Generation(limit, holes, grow, key_off, needs_all, key_first, pass_loop, claim, free_runs, tail, late,
                      faults)


# Before 5.10 boot frees follow __free_one_page's head rule (tail=False, docs/model.md §11.7); 5.10+ FPI_TO_TAIL.
GENERATIONS = {
    "eager":       _gen("none", True, "none", "two_pass"),
    "v4.2":        _gen("2g", True, "none", "two_pass"),
    "v4.6":        _gen("2g_spanned", True, "none", "two_pass"),
    "v4.13":       _gen("2g_spanned_reserved", True, "none", "two_pass", faults=("bytes_as_pages",)),
    "posting-v2":  _gen("section", True, "sections", "two_pass", key_off=False, needs_all=True,
                        key_first=True),
    "v4.17":       _gen("section", True, "sections", "two_pass", key_off=True),
    "v5.2":        _gen("section", True, "maxorder", "maxorder", key_off=True, faults=("retry_forever",)),
    "v5.7":        _gen("section", True, "maxorder", "maxorder", claim=True),
    "v5.8":        _gen("section", False, "maxorder", "padata_ranges", claim=True),
    "v5.10":       _gen("section", False, "maxorder", "padata_ranges", claim=True, tail=True),
    "v6.4":        _gen("section", False, "maxorder", "padata_ranges", "max_order", claim=True, tail=True),
    "v6.11":       _gen("section", False, "maxorder", "padata_ranges", "max_order", claim=True, tail=True,
                        late=True),
    "rework-2025": _gen("section", False, "sections2025", "padata_zone", "max_order", claim=True, tail=True,
                        late=True),
}
# The allocator's facts (docs/model.md §5.1), per kernel release: ALLOC_NOFRAGMENT came with 5.0, list_move_tail in
# move_to_free_list with 5.10, the "freelist migratetype hygiene" steal with 6.10.
for _name, _g in list(GENERATIONS.items()):
    _since = {"v5.10": "move_tail", "v6.4": "move_tail", "v6.11": "claim", "rework-2025": "claim"}
    GENERATIONS[_name] = dataclasses.replace(
        _g, fallback=_since.get(_name, "move_head"),
        nofragment=_name not in ("eager", "v4.2", "v4.6", "v4.13", "posting-v2", "v4.17"),
        pcp="v5.14" if _g.boot_to_tail else "v4.17")       # the generations from 5.10 on take 5.14's rules
del _name, _g, _since
POLICIES = tuple(GENERATIONS)
ON_DEMAND_POLICIES = tuple(p for p, g in GENERATIONS.items() if g.grow != "none")
FAULTS = tuple(sorted({f for g in GENERATIONS.values() for f in g.faults}))
POINTS = ("pass:claimed",)          # the only named point of the single-threaded oracle (docs/model.md §11.4)


def padata_chunks(start: int, size: int, min_chunk: int, align: int, max_threads: int) -> list:
    """padata_do_multithreaded's split of one job [start, start + size) into chunks (docs/model.md §11.6, spec
    §5.9, kernel/padata.c with the 2024 divide-by-zero fix), as a list of (start, end, worker).

    Worker k mod nworks takes the k-th chunk (the deterministic model's round-robin rule); a job that needs
    one worker runs inline as one chunk on worker 0.
    """
    if size < 0 or start < 0 or min_chunk < 0 or align < 1 or max_threads < 1:
        raise ValueError(f"padata job start={start} size={size} min_chunk={min_chunk} align={align}"
                         f" max_threads={max_threads}: sizes must be >= 0, align and max_threads >= 1")
    if size == 0:
        return []
    nworks = min(max(size // max(min_chunk, align), 1), max_threads)
    if nworks == 1:
        return [(start, start + size, 0)]
    chunk = max(size // (nworks * 4), min_chunk, 1)      # load_balance_factor = 4
    chunk = _round_up(chunk, align)
    out = []
    s, end = start, start + size
    while s < end:
        e = min(_round_up(s + 1, chunk), end)            # chunk ends are multiples of chunk (absolute pfns)
        out.append((s, e, len(out) % nworks))
        s = e
    return out


# page states (docs/model.md §3)
UNINIT, INIT, RESERVED, FREE, ALLOCATED = 0, 1, 2, 3, 4
# Which boot path initialised a page (docs/model.md §3): none, memmap_init, a hole, memblock_free_all
# (reserved pages above the cut), deferred_grow_zone, the per-node pass.
BY_NONE, BY_EARLY, BY_HOLE, BY_MEMBLOCK_FREE_ALL, BY_GROW, BY_PASS = 0, 1, 2, 3, 4, 5
STATE_NAMES = ("UNINIT", "INIT", "RESERVED", "FREE", "ALLOCATED")
NO_ORDER = 255            # "order" of a pfn that is not the head of a FREE/ALLOCATED block
INIT_COUNT_MAX = 3        # init_count saturates here
ULONG_MAX = (1 << 64) - 1  # first_deferred_pfn sentinel: nothing deferred; also "no upper zone limit"

DMA, DMA32, NORMAL, MOVABLE = 0, 1, 2, 3
# enum migratetype (include/linux/mmzone.h); names as /proc/pagetypeinfo prints them
MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_HIGHATOMIC = 0, 1, 2, 3
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic")
# fallbacks[] of mm/page_alloc.c: where each type looks, in order, when its own lists are empty
FALLBACKS = {MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
             MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
             MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
             MIGRATE_HIGHATOMIC: ()}

# what kind of pfn a page-array entry is (fixed by the topology)
_HOLE, _FREE_MEM, _RESERVED_MEM = 0, 1, 2

# init_count += 1, saturating at INIT_COUNT_MAX, as a byte translation table
_INC = bytes(min(c + 1, INIT_COUNT_MAX) for c in range(256))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _as_int(x) -> Optional[int]:
    """x as a Python int if it is an integer (numpy integers included) but not a bool, else None."""
    if isinstance(x, bool):
        return None
    try:
        return operator.index(x)
    except TypeError:
        return None


def _round_up(x: int, m: int) -> int:
    """The least multiple of m that is >= x (m need not be a power of two)."""
    return _ceil_div(x, m) * m


def _lowest_set_bit(x: int) -> int:
    """__ffs(x) for x > 0."""
    return (x & -x).bit_length() - 1


@dataclass(frozen=True)
class OracleZone:
    """A snapshot of one zone of one node (what ``OracleMachine.zone()`` returns)."""

    node: int
    name: str
    start_pfn: int
    end_pfn: int
    spanned: int
    present: int
    managed: int
    free_pages: int
    nr_free: list


class _Zone:
    """One zone of one node: sizes (fixed) and its buddy allocator (mutable)."""

    def __init__(self, node: int, idx: int, start: int, end: int, present: int, max_order: int):
        self.node = node
        self.idx = idx
        self.name = ZONE_NAMES[idx]
        self.start = start
        self.end = end
        self.present = present
        self.managed = 0
        self.free_pages = 0
        # (order, migratetype) -> {head pfn: None}, head first
        self.lists = {(k, mt): OrderedDict() for k in range(max_order + 1) for mt in range(len(MIGRATETYPE_NAMES))}
        self.on_list = {}                                   # free block head -> (order, migratetype)
        self.nr_free = [0] * (max_order + 1)
        self.pcp = _Pcp()                                   # CPU 0's per-CPU lists (the oracle's only CPU)

    @property
    def populated(self) -> bool:
        return self.present > 0


class _Pcp:
    """struct per_cpu_pages of one zone: the boot pageset (batch 1, high 0) until setup_per_cpu_pageset."""

    def __init__(self):
        self.count = 0
        self.batch = 1
        self.high = 0
        self.free_factor = 0
        self.lists = {}                                     # (order, migratetype) -> [block pfn, ...], head first

    def list(self, order: int, mt: int) -> list:
        return self.lists.setdefault((order, mt), [])


class _Node:
    def __init__(self, nid: int):
        self.id = nid
        self.mem: list = []            # memory pfn ranges (start, end) of this node, ascending
        self.free_ranges: list = []    # free ranges (start, end) of this node, ascending
        self.start = 0
        self.end = 0
        self.present = 0
        self.zones: dict = {}          # zone index -> _Zone, for every zone with spanned pages
        self.deferred_zone = None      # D(N): index of the highest populated zone
        self.fdp = ULONG_MAX           # first_deferred_pfn
        self.fdp_history: list = []    # every value fdp took from early init on (I4)


class OracleMachine:
    """The pure-Python reference model. See the module docstring and ``docs/model.md``."""

    def __init__(self, topology, policy: str = "v4.17", faults=(), node_cpus=None):
        """``faults``: fault variants of the policy (docs/model.md §11.1: ``bytes_as_pages`` for v4.13,
        ``retry_forever`` for v5.2). ``node_cpus``: CPUs per node (a mapping node -> count) for padata's
        max_threads; default: the topology's ``node_cpus`` if it has one, else no CPUs (max_threads 1)."""
        if not isinstance(policy, str) or policy not in GENERATIONS:
            raise ValueError(f"unknown policy {policy!r}: valid policies are {', '.join(POLICIES)}")
        gen = GENERATIONS[policy]
        if isinstance(faults, str):
            faults = (faults,)
        faults = frozenset(faults)
        for f in sorted(faults):
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}: the oracle's faults are {', '.join(FAULTS)}")
            if f not in gen.faults:
                owners = [p for p, g in GENERATIONS.items() if f in g.faults]
                raise ValueError(f"fault {f!r} belongs to policy {', '.join(owners)}, not {policy}")
        if isinstance(topology, dict):
            topology = Topology.from_dict(topology)
        if not isinstance(topology, Topology):
            raise TypeError(f"OracleMachine needs a pgdefer.Topology, got {topology!r}")
        if node_cpus is None:
            node_cpus = getattr(topology, "node_cpus", None) or {}
        try:
            cpus = {_as_int(k): _as_int(v) for k, v in dict(node_cpus).items()}
        except (TypeError, ValueError):
            raise ValueError(f"node_cpus must map node ids to CPU counts, got {node_cpus!r}") from None
        bad = {k: v for k, v in cpus.items() if k is None or v is None or k < 0 or v < 0}
        if bad:
            raise ValueError(f"node_cpus must map node ids >= 0 to CPU counts >= 0, got {node_cpus!r}")
        self.topology = topology
        self.policy = policy
        self.generation = gen
        self.faults = faults
        self.node_cpus = cpus
        g = topology.geometry
        self._ps = g.page_size
        self._pps = g.section_size // g.page_size          # PAGES_PER_SECTION
        self._max_order = g.max_order
        self._pbo = g.pageblock_order
        self._pbn = 1 << g.pageblock_order                  # pageblock_nr_pages
        self._derive_layout()
        self._make_page_array()
        self.events: list = []
        self.violations: list = []
        self._key = False                                   # static key deferred_pages
        self._totalram = 0
        self.phase = "created"
        self.memory_line = None                             # the Memory: line, once printed (§11.9)
        self._points = []                                   # [point, callback, node, once] (§11.4)
        self._claimed = {}                                  # node -> claimed fdp, while its pass runs
        self._in_late_init = False
        self._grow_livelock = False                         # the last grow was B12's True without progress
        self._pcp_ready = False                             # setup_per_cpu_pageset() ran

    # ------------------------------------------------------------------------------------------------
    # layout: everything the topology fixes (docs/model.md §2)
    # ------------------------------------------------------------------------------------------------

    def _pfn_up(self, addr: int) -> int:
        return _ceil_div(addr, self._ps)

    def _pfn_down(self, addr: int) -> int:
        return addr // self._ps

    def _derive_layout(self) -> None:
        topo = self.topology
        pps = self._pps

        # memory regions: sort, merge touching regions of one node (memblock_add), convert to pfns and drop
        # the empty ones
        merged = []
        for r in sorted(topo.memory, key=lambda r: (r.start, r.end)):
            if merged and merged[-1][1] == r.start and merged[-1][2] == r.node:
                merged[-1] = (merged[-1][0], r.end, r.node)
            else:
                merged.append((r.start, r.end, r.node))
        self._mem = []                          # (start_pfn, end_pfn, node), ascending, disjoint
        for s, e, n in merged:
            ps, pe = self._pfn_up(s), self._pfn_down(e)
            if ps < pe:
                self._mem.append((ps, pe, n))

        # reserved pfn intervals: [PFN_DOWN(rs), PFN_UP(re)), union of all ranges
        res = sorted((self._pfn_down(r.start), self._pfn_up(r.end)) for r in topo.reserved)
        res_union = []
        for s, e in res:
            if res_union and s <= res_union[-1][1]:
                res_union[-1] = (res_union[-1][0], max(res_union[-1][1], e))
            else:
                res_union.append((s, e))

        # split every memory range into free and reserved pieces
        self._free_pieces = []                  # (s, e, node) ascending: the free ranges of all nodes
        self._reserved_pieces = []              # (s, e, node) ascending: the reserved memory pfns
        for ms, me, n in self._mem:
            cur = ms
            for rs, re in res_union:
                if re <= cur or rs >= me:
                    continue
                a, b = max(rs, cur), min(re, me)
                if cur < a:
                    self._free_pieces.append((cur, a, n))
                self._reserved_pieces.append((a, b, n))
                cur = b
            if cur < me:
                self._free_pieces.append((cur, me, n))

        # global zone ranges (docs/model.md §2 "zone_limits")
        limits = topo.zone_limits
        bounds = []
        prev = 0
        for name in ("DMA", "DMA32"):
            end = self._pfn_down(limits[name]) if limits.get(name) is not None else prev
            bounds.append((prev, end))
            prev = end
        if limits.get("Normal") is not None:
            end = self._pfn_down(limits["Normal"])
            bounds.append((prev, end))                    # Normal
            bounds.append((end, ULONG_MAX))               # Movable: everything above the Normal limit
        else:
            bounds.append((prev, ULONG_MAX))              # Normal extends to infinity
            bounds.append((ULONG_MAX, ULONG_MAX))         # no Movable
        self._zone_bounds = bounds

        # nodes
        self._nodes = {}
        for s, e, n in self._mem:
            node = self._nodes.setdefault(n, _Node(n))
            node.mem.append((s, e))
        for s, e, n in self._free_pieces:
            self._nodes[n].free_ranges.append((s, e))
        self._node_ids = sorted(self._nodes)
        self._zones = {}                                  # (node, zone index) -> _Zone
        for nid in self._node_ids:
            node = self._nodes[nid]
            node.start = min(s for s, _ in node.mem)
            node.end = max(e for _, e in node.mem)
            node.present = sum(e - s for s, e in node.mem)
            for z, (zs, ze) in enumerate(bounds):
                s, e = max(zs, node.start), min(ze, node.end)
                if s >= e:
                    continue
                present = sum(max(0, min(e, me) - max(s, ms)) for ms, me in node.mem)
                zone = _Zone(nid, z, s, e, present, self._max_order)
                node.zones[z] = zone
                self._zones[(nid, z)] = zone
            node.deferred_zone = max(z for z, zone in node.zones.items() if zone.populated)

        # present sections and the page-array index
        secs = set()
        for s, e, _ in self._mem:
            secs.update(range(s // pps, (e - 1) // pps + 1))
        self._sections = sorted(secs)
        self._slot = {sec: i for i, sec in enumerate(self._sections)}

    def _zone_of(self, pfn: int) -> int:
        """Index of the zone whose global pfn range contains pfn."""
        for z, (_, ze) in enumerate(self._zone_bounds):
            if pfn < ze:
                return z
        raise AssertionError(f"pfn {pfn:#x} is in no zone")

    def _i(self, pfn: int) -> int:
        """Index of pfn in the page array (KeyError if its section is not present)."""
        return self._slot[pfn // self._pps] * self._pps + pfn % self._pps

    def _has_page(self, pfn: int) -> bool:
        return pfn // self._pps in self._slot

    def _pieces(self, a: int, b: int):
        """Split [a, b) at section and zone boundaries: yields (p, q, index of p, zone index)."""
        pps = self._pps
        p = a
        while p < b:
            z = self._zone_of(p)
            q = min(b, (p // pps + 1) * pps, self._zone_bounds[z][1])
            yield p, q, self._i(p), z
            p = q

    def _make_page_array(self) -> None:
        pps = self._pps
        n = len(self._sections) * pps
        self._st = bytearray(n)                          # state (UNINIT = 0)
        self._zn = bytearray(n)                          # zone index
        self._nd = array("H", [0]) * n                   # node id
        self._ic = bytearray(n)                          # init_count
        self._by = bytearray(n)                          # which boot path initialised it (INIT_BY code)
        self._od = bytearray(b"\xff") * n                # order of a block head, NO_ORDER otherwise
        self._mt = {}                                    # pageblock index -> migratetype (unset: absent)
        # fixed per-pfn facts of the topology: kind (hole / free / reserved) and the node the pfn belongs to
        # (its memory node, or for a hole the node chosen by the hole rule)
        self._kind = bytearray(n)
        self._home = array("H", [0]) * n
        for pieces, kind in ((self._free_pieces, _FREE_MEM), (self._reserved_pieces, _RESERVED_MEM)):
            for s, e, nid in pieces:
                for p, q, i, _ in self._pieces(s, e):
                    self._kind[i:i + q - p] = bytes([kind]) * (q - p)
                    self._home[i:i + q - p] = array("H", [nid]) * (q - p)
        # holes (docs/model.md §4.1): the node of the nearest memory pfn above in the same section, or, if
        # there is none, of the nearest one below. Per section, walk its memory pieces in ascending order: a
        # hole run before a piece takes that piece's node; a run after the last piece takes the last one's.
        per_section = {}
        for s, e, nid in self._mem:
            p = s
            while p < e:
                q = min(e, (p // pps + 1) * pps)
                per_section.setdefault(p // pps, []).append((p, q, nid))
                p = q
        self._holes = []                                 # (s, e, node) ascending
        for sec in self._sections:
            cur = sec * pps
            pieces = per_section[sec]
            for s, e, nid in pieces:
                if cur < s:
                    self._holes.append((cur, s, nid))
                cur = e
            if cur < (sec + 1) * pps:
                self._holes.append((cur, (sec + 1) * pps, pieces[-1][2]))
        for s, e, nid in self._holes:
            for p, q, i, _ in self._pieces(s, e):
                self._home[i:i + q - p] = array("H", [nid]) * (q - p)

    # ------------------------------------------------------------------------------------------------
    # page-level primitives
    # ------------------------------------------------------------------------------------------------

    def _init_range(self, a: int, b: int, nid: int, by: int) -> None:
        """__init_single_page for every pfn of [a, b) (docs/model.md §3 ``init``): init_count += 1, state INIT,
        zone = the zone containing the pfn, node = nid, initialised by path ``by``; pageblock-aligned pfns set
        their pageblock MOVABLE."""
        for p, q, i, z in self._pieces(a, b):
            n = q - p
            self._ic[i:i + n] = self._ic[i:i + n].translate(_INC)
            self._by[i:i + n] = bytes([by]) * n
            self._st[i:i + n] = bytes([INIT]) * n
            self._zn[i:i + n] = bytes([z]) * n
            self._nd[i:i + n] = array("H", [nid]) * n
            for head in range(_ceil_div(p, self._pbn) * self._pbn, q, self._pbn):
                self._mt[head >> self._pbo] = MIGRATE_MOVABLE

    def _set_state_range(self, a: int, b: int, state: int) -> None:
        for p, q, i, _ in self._pieces(a, b):
            self._st[i:i + q - p] = bytes([state]) * (q - p)

    def _link(self, zone: _Zone, pfn: int, order: int, mt: int, at_head: bool) -> None:
        self._od[self._i(pfn)] = order
        lst = zone.lists[(order, mt)]
        lst[pfn] = None
        if at_head:
            lst.move_to_end(pfn, last=False)
        zone.on_list[pfn] = (order, mt)
        zone.nr_free[order] += 1

    def _unlink(self, zone: _Zone, pfn: int, order: int) -> int:
        """Take a free block off whichever list holds it; returns that list's migratetype."""
        k, mt = zone.on_list.pop(pfn)
        assert k == order
        del zone.lists[(order, mt)][pfn]
        zone.nr_free[order] -= 1
        self._od[self._i(pfn)] = NO_ORDER
        return mt

    def _pageblock_type(self, pfn: int) -> int:
        """get_pfnblock_migratetype: an unset pageblock reads UNMOVABLE (the kernel's bitmap starts zeroed)."""
        return self._mt.get(pfn >> self._pbo, MIGRATE_UNMOVABLE)

    def _set_pageblock_types(self, pfn: int, order: int, mt: int) -> None:
        """change_pageblock_range / set_pageblock_migratetype: every pageblock of the block (at least one)."""
        first = pfn >> self._pbo
        for pb in range(first, first + max(1, 1 << max(0, order - self._pbo))):
            self._mt[pb] = mt

    def _free_block(self, zone: _Zone, pfn: int, order: int, placement: str, mt: Optional[int] = None) -> None:
        """Free of block (pfn, order) into zone (docs/model.md §5), merging with free buddies; the merged block
        goes to the list of the freed page's pageblock type, at its "head", "tail", or ("merge_likely",
        docs/model.md §11.7) the tail iff the buddy of its order-(k+1) parent is a free block of order k+1.
        With the 6.10 rules ("claim") a HIGHATOMIC block merges only with its own type, and a buddy of another
        type is re-typed to the freed block's type."""
        n = 1 << order
        i = self._i(pfn)
        if mt is None:                                    # free_pcppages_bulk passes its list's type
            mt = self._pageblock_type(pfn)
        self._st[i:i + n] = bytes([FREE]) * n
        self._od[i:i + n] = bytes([NO_ORDER]) * n
        zone.free_pages += n
        p, k = pfn, order
        while k < self._max_order:
            b = p ^ (1 << k)
            ib = self._i(b)    # same MAX_ORDER block, hence same (present) section
            if self._st[ib] == UNINIT:
                self.violations.append(
                    f"B-I2: freeing block {p:#x} order {k} (node {zone.node} zone {zone.name}): "
                    f"buddy {b:#x} is UNINIT")
                break
            if not (self._st[ib] == FREE and self._od[ib] == k and self._nd[ib] == zone.node
                    and self._zn[ib] == zone.idx):
                break
            if self.generation.fallback == "claim" and self._pageblock_type(b) != mt:
                if MIGRATE_HIGHATOMIC in (mt, self._pageblock_type(b)):
                    break
                self._mt[b >> self._pbo] = mt
            self._unlink(zone, b, k)
            p = min(p, b)
            k += 1
        at_head = placement == "head"
        if placement == "merge_likely":
            at_head = True
            if k < self._max_order - 1:
                q = (p & ~(1 << k)) ^ (1 << (k + 1))     # same MAX_ORDER block, hence a page entry
                iq = self._i(q)
                if (self._st[iq] == FREE and self._od[iq] == k + 1 and self._nd[iq] == zone.node
                        and self._zn[iq] == zone.idx):
                    at_head = False
        self._link(zone, p, k, mt, at_head=at_head)

    def _release(self, nid: int, z: int, pfn: int, order: int) -> None:
        """__free_pages_core: managed += 2^order, then free to the tail (docs/model.md §5 "Release")."""
        zone = self._zones[(nid, z)]
        n = 1 << order
        i = self._i(pfn)
        block = self._st[i:i + n]
        if block.count(INIT) + block.count(RESERVED) != n:
            bad = sorted({STATE_NAMES[s] for s in block if s not in (INIT, RESERVED)})
            self.violations.append(
                f"release of block {pfn:#x} order {order} (node {nid} zone {zone.name}) with {'/'.join(bad)} pages")
        zone.managed += n
        self._free_block(zone, pfn, order, placement="tail" if self.generation.boot_to_tail else "merge_likely")

    # ---- __rmqueue (docs/model.md §5.1) -------------------------------------------------------------

    def _split(self, zone: _Zone, pfn: int, low: int, high: int, mt: int) -> None:
        """expand(): the upper halves of (pfn, high) down to order low go to the heads of mt's lists."""
        while high > low:
            high -= 1
            self._link(zone, pfn + (1 << high), high, mt, at_head=True)

    def _smallest(self, zone: _Zone, order: int, mt: int) -> Optional[int]:
        """__rmqueue_smallest: the head of the first non-empty list of mt from order up, split down to order."""
        for k in range(order, self._max_order + 1):
            lst = zone.lists[(k, mt)]
            if lst:
                pfn = next(iter(lst))
                self._unlink(zone, pfn, k)
                self._split(zone, pfn, order, k, mt)
                return pfn
        return None

    def _suitable_fallback(self, zone: _Zone, k: int, start: int):
        """find_suitable_fallback: (fallback type, can_steal) for order k, or None."""
        if zone.nr_free[k] == 0:
            return None
        for f in FALLBACKS[start]:
            if zone.lists[(k, f)]:
                # can_steal_fallback(k, start)
                can_steal = (k >= self._pbo // 2 or start in (MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE))
                return f, can_steal
        return None

    def _pageblock_free_blocks(self, zone: _Zone, pfn: int) -> list:
        """The zone's free blocks whose heads lie in pfn's pageblock, ascending."""
        start = pfn - pfn % self._pbn
        return [(p, zone.on_list[p][0]) for p in range(start, start + self._pbn) if p in zone.on_list]

    def _fallback(self, zone: _Zone, order: int, start: int, nofragment: bool):
        """__rmqueue_fallback + steal_suitable_fallback of the generation. Returns None (nothing to steal),
        True (lists changed: __rmqueue_smallest again) or the allocated block's pfn (6.10 rules)."""
        style = self.generation.fallback
        lowest = self._pbo if (nofragment and order < self._pbo) else order
        found = None
        for k in range(self._max_order, lowest - 1, -1):          # the largest block first
            hit = self._suitable_fallback(zone, k, start)
            if hit is not None:
                found = (k,) + hit
                break
        if found is None:
            return None
        k, f, whole = found
        if not whole and start == MIGRATE_MOVABLE and k > order:  # find_smallest
            for k in range(order, self._max_order + 1):
                hit = self._suitable_fallback(zone, k, start)
                if hit is not None:
                    found = (k,) + hit
                    break
            k, f, whole = found
        pfn = next(iter(zone.lists[(k, f)]))
        old = self._pageblock_type(pfn)
        to_head = style == "move_head"

        def claim_condition():
            free = sum(1 << o for _, o in self._pageblock_free_blocks(zone, pfn))
            # no page of the boot window is on an LRU list: movable_pages = 0; an UNMOVABLE/RECLAIMABLE request
            # counts every non-free page of a MOVABLE pageblock as alike
            alike = self._pbn - free if (start != MIGRATE_MOVABLE and old == MIGRATE_MOVABLE) else 0
            return free + alike >= self._pbn // 2

        def move_pageblock():
            for p, o in self._pageblock_free_blocks(zone, pfn):
                self._unlink(zone, p, o)
                self._link(zone, p, o, start, at_head=to_head)

        if style == "claim":
            if old != MIGRATE_HIGHATOMIC and k >= self._pbo:
                self._unlink(zone, pfn, k)
                self._set_pageblock_types(pfn, k, start)
                self._split(zone, pfn, order, k, start)
                return pfn
            if old != MIGRATE_HIGHATOMIC and whole and claim_condition():
                move_pageblock()
                self._set_pageblock_types(pfn, self._pbo, start)
                return True
            self._unlink(zone, pfn, k)                            # page_del_and_expand
            self._split(zone, pfn, order, k, old)
            return pfn
        if old != MIGRATE_HIGHATOMIC:
            if k >= self._pbo:
                self._set_pageblock_types(pfn, k, start)
            elif whole:
                claim = claim_condition()
                move_pageblock()
                if claim:
                    self._set_pageblock_types(pfn, self._pbo, start)
                return True
        self._unlink(zone, pfn, k)                                # single_page
        self._link(zone, pfn, k, start, at_head=to_head)
        return True

    def _rmqueue(self, zone: _Zone, order: int, mt: int = MIGRATE_UNMOVABLE, nofragment: bool = False
                 ) -> Optional[int]:
        """rmqueue: from the per-CPU lists for the orders that have them (§5.3), else __rmqueue; the block's
        pages become ALLOCATED."""
        if order <= self._pcp_max_order():
            b = self._pcp_alloc(zone, order, mt, nofragment)
        else:
            b = self._take(zone, order, mt, nofragment)
        if b is None:
            return None
        n = 1 << order
        i = self._i(b)
        self._st[i:i + n] = bytes([ALLOCATED]) * n
        self._od[i] = order
        return b

    def _take(self, zone: _Zone, order: int, mt: int, nofragment: bool) -> Optional[int]:
        """__rmqueue: the smallest block of mt's own lists, else a fallback, then the smallest again. The block
        leaves the free lists and free_pages; its pages stay FREE with no order mark."""
        while True:
            b = self._smallest(zone, order, mt)
            if b is not None:
                break
            r = self._fallback(zone, order, mt, nofragment)
            if r is None:
                return None
            if r is not True:
                b = r
                break
        self._od[self._i(b)] = NO_ORDER
        zone.free_pages -= 1 << order
        return b

    # ---- per-CPU page lists (docs/model.md §5.3, mm/page_alloc.c 4.17 and 6.1) --------------------------

    def _pcp_max_order(self) -> int:
        return 0 if self.generation.pcp == "v4.17" else 3          # PAGE_ALLOC_COSTLY_ORDER from 5.13

    def _pcp_batch_high(self, managed: int):
        """zone_batchsize and the high limit of the real pagesets: (batch, high)."""
        v417 = self.generation.pcp == "v4.17"
        cap = (512 if v417 else 1024) * 1024 // self._ps             # 512 KiB before 5.14, 1 MiB after
        b = max(min(managed // 1024, cap) // 4, 1)
        b = (1 << ((b + b // 2).bit_length() - 1)) - 1              # rounddown_pow_of_two(b + b/2) - 1
        return (max(b, 1), 6 * b) if v417 else (max(b, 1), 4 * max(b, 1))

    def _zone_pcp_update(self) -> None:
        for zone in self._zones.values():
            if zone.populated:
                zone.pcp.batch, zone.pcp.high = self._pcp_batch_high(zone.managed)

    def setup_per_cpu_pageset(self) -> None:
        """setup_per_cpu_pageset(): the real pagesets' batch and high from every populated zone's managed pages."""
        self._require_booted("setup_per_cpu_pageset")
        if self._pcp_ready:
            raise PhaseError("setup_per_cpu_pageset() called twice (start_kernel calls it once)")
        self._pcp_ready = True
        self._zone_pcp_update()

    def _pcp_alloc(self, zone: _Zone, order: int, mt: int, nofragment: bool) -> Optional[int]:
        """__rmqueue_pcplist: the head of the (order, mt) list, refilled with batch blocks (rmqueue_bulk, each
        to the tail) when empty; 5.13+ scale the batch by order unless it is 1."""
        pcp = zone.pcp
        lst = pcp.list(order, mt)
        if self.generation.pcp == "v5.14":
            pcp.free_factor >>= 1
        if not lst:
            n = pcp.batch
            if self.generation.pcp == "v5.14" and n > 1:
                n = max(n >> order, 2)
            for _ in range(n):
                b = self._take(zone, order, mt, nofragment)
                if b is None:
                    break
                lst.append(b)
                pcp.count += 1 << order
        if not lst:
            return None
        pcp.count -= 1 << order
        return lst.pop(0)

    def _pcp_free(self, zone: _Zone, pfn: int, order: int) -> None:
        """free_unref_page + free_unref_page_commit: to the head of the list of the pageblock's type
        (HIGHATOMIC: MOVABLE's), then a drain once count >= high."""
        n = 1 << order
        i = self._i(pfn)
        self._st[i:i + n] = bytes([FREE]) * n
        self._od[i] = NO_ORDER
        mt = self._pageblock_type(pfn)
        if mt == MIGRATE_HIGHATOMIC:
            mt = MIGRATE_MOVABLE
        pcp = zone.pcp
        pcp.list(order, mt).insert(0, pfn)
        pcp.count += n
        if self.generation.pcp == "v4.17":
            if pcp.count >= pcp.high:
                self._pcp_drain(zone, pcp.batch, 0)
            return
        free_high = pcp.free_factor > 0 and order > 0
        high = 0 if (pcp.high == 0 or free_high) else pcp.high     # nr_pcp_high
        if pcp.count < high:
            return
        if free_high:                                              # nr_pcp_free
            count = pcp.count
        elif high < pcp.batch:
            count = 1
        else:
            lo, hi = pcp.batch, high - pcp.batch
            b = pcp.batch << pcp.free_factor
            if b < hi:
                pcp.free_factor += 1
            count = min(max(b, lo), hi)
        self._pcp_drain(zone, count, 3 * order + mt)

    def _pcp_give_back(self, zone: _Zone, order: int, mt: int) -> None:
        """One block from the tail of the (order, mt) list to the buddy lists, merge-likely placement; before
        6.10 on the list of the pcp list's type, from 6.10 (fallback "claim") of its pageblock's."""
        pfn = zone.pcp.list(order, mt).pop()
        zone.pcp.count -= 1 << order
        to = self._pageblock_type(pfn) if self.generation.fallback == "claim" else mt
        self._free_block(zone, pfn, order, placement="merge_likely", mt=to)

    def _pcp_drain(self, zone: _Zone, count: int, pindex: int) -> None:
        """free_pcppages_bulk. 4.17: from lists 1, 2, 0, 1, ... (round-robin, batch_free blocks a list, all of
        the last non-empty one). 6.1: whole lists (pindex = 3 * order + type) from pindex on."""
        pcp = zone.pcp
        count = min(count, pcp.count)
        if self.generation.pcp == "v4.17":
            mt = batch_free = 0
            while count > 0:
                while True:
                    batch_free += 1
                    mt = (mt + 1) % 3
                    if pcp.list(0, mt):
                        break
                if batch_free == 3:
                    batch_free = count
                while True:
                    self._pcp_give_back(zone, 0, mt)
                    count -= 1
                    batch_free -= 1
                    if count == 0 or batch_free == 0 or not pcp.list(0, mt):
                        break
            return
        lo, hi = 0, 3 * (self._pcp_max_order() + 1) - 1
        p = pindex - 1
        while count > 0:
            while True:
                p += 1
                if p > hi:
                    p = lo
                if pcp.list(p // 3, p % 3):
                    break
                if p == hi:
                    hi -= 1
                if p == lo:
                    lo += 1
            while True:
                self._pcp_give_back(zone, p // 3, p % 3)
                count -= 1 << (p // 3)
                if count <= 0 or not pcp.list(p // 3, p % 3):
                    break

    def drain_all_pages(self) -> int:
        """drain_all_pages(NULL): every zone's per-CPU lists back to the buddy lists; returns the pages."""
        self._require_booted("drain_all_pages")
        total = 0
        for zone in self._zones.values():
            n = zone.pcp.count
            if n:
                self._pcp_drain(zone, n, 0)
                total += n
        return total

    def pcp(self, node: int, zone: str, cpu: int = 0) -> dict:
        """CPU 0's per-CPU lists of a zone (the oracle has one CPU): count, batch, high, lists per order and type."""
        z = self._node_zone(node, zone)
        if cpu != 0:
            raise InvalidArgument(f"cpu {cpu}: the oracle has only CPU 0")
        return {"count": z.pcp.count, "batch": z.pcp.batch, "high": z.pcp.high,
                "lists": [[list(z.pcp.list(k, t)) for t in range(3)] for k in range(self._pcp_max_order() + 1)]}

    def _watermark_ok(self, zone: _Zone, order: int) -> bool:
        return zone.free_pages >= (1 << order) and any(zone.nr_free[j] for j in range(order, self._max_order + 1))

    def _set_fdp(self, node: _Node, value: int) -> None:
        node.fdp = value
        node.fdp_history.append(value)

    # deferred_free_pages / deferred_free_range (spec §3.3, every pfn valid; docs/model.md §11.7)
    def _run_order(self) -> int:
        """Order of a full free run: pageblock_order (4.8-6.3) or max_order (6.4+)."""
        return self._max_order if self.generation.free_runs == "max_order" else self._pbo

    def _deferred_free_pages(self, nid: int, z: int, a: int, b: int) -> None:
        """Split [a, b) into runs bounded by run-size boundaries and free each run in ascending order.
        (Equivalent to §3.3's per-pfn loop: a run restarts at every run-aligned pfn.)"""
        n = 1 << self._run_order()
        p = a
        while p < b:
            q = min(b, (p // n + 1) * n)
            self._deferred_free_range(nid, z, p, q - p)
            p = q

    def _deferred_free_range(self, nid: int, z: int, pfn: int, n: int) -> None:
        if n == 0:
            return
        order = self._run_order()
        if n == 1 << order and pfn % n == 0:
            for head in range(pfn, pfn + n, self._pbn):  # every pageblock of the run MOVABLE
                self._mt[head >> self._pbo] = MIGRATE_MOVABLE
            self._release(nid, z, pfn, order)
            return
        for p in range(pfn, pfn + n):
            if p % self._pbn == 0:
                self._mt[p >> self._pbo] = MIGRATE_MOVABLE
            self._release(nid, z, p, 0)

    # ------------------------------------------------------------------------------------------------
    # argument checking
    # ------------------------------------------------------------------------------------------------

    def _require_booted(self, what: str) -> None:
        if self.phase == "created":
            raise PhaseError(f"{what}: the machine has not booted yet (call boot() first)")

    def _check_order(self, order) -> int:
        k = _as_int(order)
        if k is None or not 0 <= k <= self._max_order:
            raise OrderError(f"order {order!r} is out of range: orders are 0..{self._max_order} (max_order)")
        return k

    def _check_node(self, node) -> _Node:
        n = _as_int(node)
        if n is None or n not in self._nodes:
            raise UnknownNode(f"node {node!r} has no memory in this machine (nodes: {self._node_ids})")
        return self._nodes[n]

    @staticmethod
    def _check_zone_name(zone) -> int:
        if not isinstance(zone, str) or zone not in ZONE_NAMES:
            raise UnknownZone(f"unknown zone {zone!r}: zones are {', '.join(ZONE_NAMES)}")
        return ZONE_NAMES.index(zone)

    def _node_zone(self, node, zone) -> _Zone:
        """The zone named ``zone`` of ``node``; a node "has" a zone when the zone spans pages of the node."""
        n = self._check_node(node)
        z = self._check_zone_name(zone)
        if z not in n.zones:
            raise UnknownZone(f"node {n.id} has no zone {zone} (its zones: {[ZONE_NAMES[i] for i in sorted(n.zones)]})")
        return n.zones[z]

    # ------------------------------------------------------------------------------------------------
    # boot (docs/model.md §4)
    # ------------------------------------------------------------------------------------------------

    def _early_limit(self, node: _Node) -> Optional[int]:
        """The defer rule's LIMIT (docs/model.md §11.2): None = nothing deferred."""
        rule = self.generation.limit
        spanned = node.end - node.start
        if rule == "none":
            return None
        if rule == "section":
            return min(self._pps, spanned)             # static_init_pgcnt (4.17); PAGES_PER_SECTION (5.0+)
        base = (2 << 30) // self._ps                   # 2UL << (30 - PAGE_SHIFT)
        if rule == "2g":
            return base
        m = max(base, spanned >> 8)
        if rule == "2g_spanned":
            return m
        # 4.13 reset_deferred_meminit: + memblock_reserved_memory_within(start, start + m), whole regions
        if "bytes_as_pages" in self.faults:           # B4: pfns passed as addresses, bytes added as pages
            ws, we = node.start, node.start + m
            return min(m + self._reserved_bytes_within(ws, we), spanned)
        ws, we = node.start * self._ps, (node.start + m) * self._ps
        return min(m + self._reserved_bytes_within(ws, we) // self._ps, spanned)

    def _reserved_bytes_within(self, ws: int, we: int) -> int:
        """memblock_reserved_memory_within(ws, we) (4.13): the whole size of every memblock.reserved region
        (overlapping or touching ranges merged) with end >= ws and base <= we."""
        regions = []
        for r in sorted(self.topology.reserved, key=lambda r: (r.start, r.end)):
            if regions and r.start <= regions[-1][1]:
                regions[-1][1] = max(regions[-1][1], r.end)
            else:
                regions.append([r.start, r.end])
        return sum(re - rs for rs, re in regions if re >= ws and rs <= we)

    def _early_cut(self, node: _Node) -> int:
        """first_deferred_pfn set by memmap_init's defer rule (docs/model.md §4.2, §11.2), ULONG_MAX if none.

        The counted pfns of D(N)'s span, ascending: N's memory pfns, plus (4.x-5.7) the holes of present
        sections. The counted pfn p of an interval [s, e) with k pfns counted before it has count
        k + (p - s) + 1, so the cut is the first section-aligned p >= s + LIMIT - k inside the interval."""
        limit = self._early_limit(node)
        if limit is None:
            return ULONG_MAX
        dz = node.zones[node.deferred_zone]
        counted = list(node.mem)
        if self.generation.count_holes:
            counted += [(s, e) for s, e, _ in self._holes]
        k = 0
        for s, e in sorted(counted):
            s, e = max(s, dz.start), min(e, dz.end)
            if s >= e:
                continue
            p = _round_up(max(s, s + limit - k), self._pps)
            if p < e:
                return p
            k += e - s
        return ULONG_MAX

    def boot(self) -> None:
        """free_area_init + memmap_init + memblock_free_all."""
        if self.phase != "created":
            raise PhaseError("boot() was already called")

        # 1. holes: init, then RESERVED
        for s, e, nid in self._holes:
            self._init_range(s, e, nid, BY_HOLE)
            self._set_state_range(s, e, RESERVED)

        # 2. early init with the defer rule, per node in ascending id
        for nid in self._node_ids:
            node = self._nodes[nid]
            fdp = self._early_cut(node)
            # memory pfns below fdp are initialised (lower zones lie entirely below D(N), hence below fdp)
            pages = 0
            for s, e in node.mem:
                e = min(e, fdp)
                if s < e:
                    self._init_range(s, e, nid, BY_EARLY)
                    pages += e - s
            self._set_fdp(node, fdp)
            self.events.append({"kind": "early_init", "node": nid, "pages": pages,
                                "first_deferred_pfn": None if fdp == ULONG_MAX else fdp})

        # 3. memblock_free_all
        for zone in self._zones.values():
            zone.managed = 0
        reserved = 0
        for s, e, nid in self._reserved_pieces:         # a. reserved pfns, ascending
            for p in range(s, e):
                if self._st[self._i(p)] == UNINIT:      # at or above fdp: init it now
                    self._init_range(p, p + 1, nid, BY_MEMBLOCK_FREE_ALL)
            self._set_state_range(s, e, RESERVED)
            reserved += e - s
        released = deferred = 0
        for s, e, nid in self._free_pieces:             # b. free ranges, ascending, cut into aligned chunks
            fdp = self._nodes[nid].fdp
            p = s
            while p < e:
                order = self._max_order if p == 0 else min(self._max_order, _lowest_set_bit(p))
                while p + (1 << order) > e:
                    order -= 1
                if p >= fdp:
                    deferred += 1 << order
                else:
                    self._release(nid, self._zone_of(p), p, order)
                    released += 1 << order
                p += 1 << order
        self._totalram = sum(e - s for s, e, _ in self._free_pieces)   # c.
        self.events.append({"kind": "memblock_free_all", "released": released, "reserved": reserved,
                            "deferred": deferred})

        # 4. the static key; 5. mem_init_print_info() in mm_core_init (generations that print early)
        self._key = self.generation.grow != "none"
        self.phase = "booted"
        if not self.generation.memory_line_late:
            self._print_memory_line("memblock_free_all")

    def _print_memory_line(self, at: str) -> None:
        """mem_init_print_info(): nr_free_pages() and get_num_physpages() now (docs/model.md §11.9)."""
        self.memory_line = {"at": at, "available": sum(z.free_pages for z in self._zones.values()),
                            "physpages": sum(n.present for n in self._nodes.values())}

    # ------------------------------------------------------------------------------------------------
    # growth (docs/model.md §7, spec §3.2 and the 2018 v2 posting)
    # ------------------------------------------------------------------------------------------------

    def _grow_event(self, node: _Node, zone: _Zone, order: int, hook: str, got: int, result: bool) -> None:
        self.events.append({"kind": "grow", "node": node.id, "zone": zone.name, "order": order, "hook": hook,
                            "pages": got, "first_deferred_pfn": None if node.fdp == ULONG_MAX else node.fdp,
                            "result": result})

    def _grow_loops(self, node: _Node, zone: _Zone, first: int, snap: int, need: int):
        """The two passes shared by v4.17 and the v2 posting. Returns (got, new_first)."""
        got = 0
        new_first = snap
        # pass 1: initialise, a section at a time, over the node's free ranges, until got >= need
        for fs, fe in node.free_ranges:
            s = max(first, fs)
            e = min(zone.end, fe)
            while s < e and got < need:
                t = (s + self._pps + self._pps - 1) // self._pps * self._pps   # ALIGN(s + PPS, PPS)
                new_first = min(t, e)
                self._init_range(s, new_first, node.id, BY_GROW)
                got += new_first - s
                s = new_first
            if got >= need:
                break
        # pass 2: free [first, new_first) over the same free ranges
        for fs, fe in node.free_ranges:
            s = max(first, fs)
            e = min(new_first, fe)
            self._deferred_free_pages(node.id, zone.idx, s, e)
            if e == new_first:
                break
        return got, new_first

    def _grow_sections(self, node: _Node, zone: _Zone, order: int, hook: str) -> bool:
        """v4.17 (spec §3.2) and the v2 posting (docs/model.md §7): section steps, two passes."""
        gen = self.generation
        need = _round_up(1 << order, self._pps)
        snap = node.fdp                                   # read without the lock (the posting: under it)
        if zone.end != node.end:
            return False                                  # not the node's last zone: no event
        # --- node lock (posting-v2: the global deferred_zone_grow_lock) taken ---
        if not self._key:
            self._grow_event(node, zone, order, hook, 0, gen.key_off_result)
            return gen.key_off_result
        first = max(zone.start, snap)
        if first >= node.end:
            self._grow_event(node, zone, order, hook, 0, False)
            return False
        got, new_first = self._grow_loops(node, zone, first, snap, need)
        self._set_fdp(node, new_first)
        result = got >= need if gen.grow_needs_all else got > 0
        self._grow_event(node, zone, order, hook, got, result)
        return result

    def _grow_maxorder(self, node: _Node, zone: _Zone, order: int, hook: str) -> bool:
        """5.2-6.17 deferred_grow_zone (docs/model.md §11.3): MAX_ORDER steps, stop only after a step that
        crossed a section boundary with got >= need; fdp := the next unprocessed free pfn."""
        gen = self.generation
        need = _round_up(1 << order, self._pps)
        snap = node.fdp                                   # read without the lock
        if zone.end != node.end:
            return False                                  # not the node's last zone: no event
        # --- node lock taken (snap == fdp: single-threaded nobody changes it meanwhile) ---
        if gen.key_off_result is not None and not self._key:   # 5.2-5.6 only
            self._grow_event(node, zone, order, hook, 0, gen.key_off_result)
            return gen.key_off_result
        spfn = self._next_free(node, snap)
        if spfn == ULONG_MAX:                             # the zone has nothing left
            self._set_fdp(node, ULONG_MAX)
            result = snap != ULONG_MAX                    # "retry only once"
            if "retry_forever" in self.faults:            # the shipped 5.2: always True (B12)
                result = True
                if snap == ULONG_MAX:
                    self._grow_livelock = True
                    self.violations.append(
                        f"B12: deferred_grow_zone(node {node.id}, {zone.name}, order {order}) returned True"
                        f" without progress: get_page_from_freelist would retry this zone forever")
            self._grow_event(node, zone, order, hook, 0, result)
            return result
        got = 0
        while True:
            mark = spfn
            n, spfn = self._maxorder_step(node, spfn, BY_GROW)
            got += n
            if spfn == ULONG_MAX:
                break
            if mark // self._pps == spfn // self._pps:    # (mark ^ spfn) < PAGES_PER_SECTION
                continue
            if got >= need:
                break
        self._set_fdp(node, spfn)
        result = got > 0
        self._grow_event(node, zone, order, hook, got, result)
        return result

    def _grow_sections2025(self, node: _Node, zone: _Zone, order: int, hook: str) -> bool:
        """The 2025 rework's deferred_grow_zone (spec §5.12, docs/model.md §11.3): whole sections."""
        need = _round_up(1 << order, self._pps)
        snap = node.fdp
        if zone.end != node.end:
            return False                                  # not the node's last zone: no event
        # --- node lock taken ---
        spfn, got = snap, 0
        if spfn != ULONG_MAX:
            epfn = _round_up(spfn + 1, self._pps)
            while got < need and spfn < zone.end:
                got += self._chunk2025(node, spfn, epfn, BY_GROW)
                spfn, epfn = epfn, epfn + self._pps
        self._set_fdp(node, spfn if got > 0 else ULONG_MAX)
        result = got > 0
        self._grow_event(node, zone, order, hook, got, result)
        return result

    # the MAX_ORDER and 2025 building blocks (docs/model.md §11.3)
    def _deferred_free_ranges(self, node: _Node) -> list:
        """The node's free ranges clipped to its deferred zone (for_each_free_mem_pfn_range_in_zone)."""
        dz = node.zones[node.deferred_zone]
        return [(max(s, dz.start), min(e, dz.end)) for s, e in node.free_ranges
                if max(s, dz.start) < min(e, dz.end)]

    def _next_free(self, node: _Node, x: int) -> int:
        """The lowest free pfn of D(N) that is >= x, ULONG_MAX if none (deferred_init_mem_pfn_range_in_zone)."""
        for s, e in self._deferred_free_ranges(node):
            if e > x:
                return max(s, x)
        return ULONG_MAX

    def _maxorder_step(self, node: _Node, spfn: int, by: int):
        """deferred_init_maxorder: init, then free, the free pfns of D(N) in [spfn, mo); returns (pages,
        next_free(mo))."""
        mo = _round_up(spfn + 1, 1 << self._max_order)
        runs = [(max(s, spfn), min(e, mo)) for s, e in self._deferred_free_ranges(node) if e > spfn and s < mo]
        for s, e in runs:
            self._init_range(s, e, node.id, by)
        for s, e in runs:
            self._deferred_free_pages(node.id, node.deferred_zone, s, e)
        return sum(e - s for s, e in runs), self._next_free(node, mo)

    def _chunk2025(self, node: _Node, start: int, end: int, by: int) -> int:
        """The 2025 deferred_init_memmap_chunk: per free range, per MAX_ORDER piece, init then free."""
        count = 0
        for fs, fe in node.free_ranges:
            if fs >= end:
                break
            s, e = max(fs, start), min(fe, end)
            while s < e:
                c = min(_round_up(s + 1, 1 << self._max_order), e)
                self._init_range(s, c, node.id, by)
                self._deferred_free_pages(node.id, node.deferred_zone, s, c)
                count += c - s
                s = c
        return count

    def _grow(self, node: _Node, zone: _Zone, order: int, hook: str) -> bool:
        self._grow_livelock = False
        kind = self.generation.grow
        if kind == "none":
            return False                                  # eager, v4.2, v4.6, v4.13: no grow, no event
        return {"sections": self._grow_sections, "maxorder": self._grow_maxorder,
                "sections2025": self._grow_sections2025}[kind](node, zone, order, hook)

    def _hook_grow(self, node: _Node, zone: _Zone, order: int, hook: str) -> bool:
        """The allocator's hook: the key, then grow; B12's livelocking True counts as False (reported)."""
        return self._key and self._grow(node, zone, order, hook) and not self._grow_livelock

    def deferred_grow_zone(self, node: int, zone: str, order: int = 0) -> bool:
        """An explicit call of the policy's grow function (event hook "explicit"), whatever the key says."""
        self._require_booted("deferred_grow_zone")
        order = self._check_order(order)
        z = self._node_zone(node, zone)
        return self._grow(self._nodes[z.node], z, order, "explicit")

    # ------------------------------------------------------------------------------------------------
    # allocation (docs/model.md §6)
    # ------------------------------------------------------------------------------------------------

    def _zonelist(self, pref: int, high: int) -> List[_Zone]:
        order = [pref] + [n for n in self._node_ids if n > pref] + [n for n in self._node_ids if n < pref]
        out = []
        for nid in order:
            node = self._nodes[nid]
            for z in range(high, -1, -1):
                zone = node.zones.get(z)
                if zone is not None and zone.populated:
                    out.append(zone)
        return out

    @staticmethod
    def _check_migratetype(value) -> int:
        """A migratetype by name (any case, with or without MIGRATE_) or number -> its number."""
        if isinstance(value, str):
            key = value.lower().removeprefix("migrate_")
            for k, name in enumerate(MIGRATETYPE_NAMES):
                if name.lower() == key:
                    value = k
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(MIGRATETYPE_NAMES):
            raise InvalidArgument(f"unknown migratetype {value!r}: expected one of {', '.join(MIGRATETYPE_NAMES)}")
        return value

    def _nofragment(self, preferred: Optional[_Zone]) -> bool:
        """alloc_flags_nofragment(preferred zone) (5.0+): it is Normal, and on a machine of several nodes its node
        has a populated DMA32."""
        if not self.generation.nofragment or preferred is None or preferred.idx != NORMAL:
            return False
        dma32 = self._nodes[preferred.node].zones.get(DMA32)
        return len(self._node_ids) == 1 or (dma32 is not None and dma32.populated)

    def alloc_pages(self, order: int = 0, node: Optional[int] = None, zone: Optional[str] = None,
                    migratetype="Unmovable") -> int:
        """Allocate a 2^order block of ``migratetype`` (GFP_KERNEL: Unmovable); returns the pfn of its head.
        OutOfMemory if the zonelist has nothing (get_page_from_freelist, docs/model.md §6 and §5.1)."""
        self._require_booted("alloc_pages")
        order = self._check_order(order)
        mt = self._check_migratetype(migratetype)
        if mt == MIGRATE_HIGHATOMIC:
            raise InvalidArgument("no GFP mask asks for MIGRATE_HIGHATOMIC (use Unmovable, Movable or Reclaimable)")
        pref = self._node_ids[0] if node is None else self._check_node(node).id
        high = NORMAL if zone is None else self._check_zone_name(zone)
        zonelist = self._zonelist(pref, high)
        preferred = zonelist[0] if zonelist else None
        nofragment = self._nofragment(preferred)
        drained = False
        while True:
            restart = False
            for z in zonelist:
                if nofragment and len(self._node_ids) > 1 and z.node != preferred.node:
                    nofragment, restart = False, True      # remote node: locality before fragmentation
                    break
                n = self._nodes[z.node]
                if not self._watermark_ok(z, order):
                    if not self._hook_grow(n, z, order, "watermark"):
                        continue
                while True:                                   # try_this_zone
                    pfn = self._rmqueue(z, order, mt, nofragment)
                    if pfn is not None:
                        return pfn
                    if not self._hook_grow(n, z, order, "rmqueue"):
                        break
            if restart:
                continue
            if nofragment:
                nofragment = False                            # every zone refused to fragment: allow it
                continue
            if drained or not self.drain_all_pages():         # the slow path drains once, then tries again
                break
            drained = True
        raise OutOfMemory(
            f"alloc_pages(order={order}, node={node!r}, zone={zone!r}): no free block of order {order} in any zone"
            f" of the zonelist")

    def free_pages(self, pfn: int, order: int = 0) -> None:
        """Free an allocated block: orders with per-CPU lists to CPU 0's list (free_unref_page), the rest to the
        buddy lists with __free_one_page's merge-likely placement (docs/model.md §5.3)."""
        self._require_booted("free_pages")
        order = self._check_order(order)
        p = _as_int(pfn)
        if p is None or p < 0:
            raise BadFree(f"free_pages({pfn!r}, order={order}): not a pfn")
        pfn = p
        if not self._has_page(pfn):
            raise BadFree(f"free_pages({pfn:#x}, order={order}): pfn {pfn:#x} has no struct page")
        i = self._i(pfn)
        st, od = self._st[i], self._od[i]
        if st != ALLOCATED or od == NO_ORDER:
            raise BadFree(f"free_pages({pfn:#x}, order={order}): pfn {pfn:#x} is not the head of an allocated"
                          f" block (state {STATE_NAMES[st]})")
        if od != order:
            raise BadFree(f"free_pages({pfn:#x}, order={order}): pfn {pfn:#x} heads an allocated block of"
                          f" order {od}, not {order}")
        zone = self._zones[(self._nd[i], self._zn[i])]
        if order <= self._pcp_max_order():
            self._pcp_free(zone, pfn, order)
        else:
            self._free_block(zone, pfn, order, placement="merge_likely")

    # ------------------------------------------------------------------------------------------------
    # page_alloc_init_late (docs/model.md §8, spec §4)
    # ------------------------------------------------------------------------------------------------

    def _deferred_init_memmap(self, node: _Node) -> int:
        """deferred_init_memmap of one node (docs/model.md §8, §11.5); returns the pages it initialised."""
        gen = self.generation
        first = node.fdp
        if first == ULONG_MAX:
            return 0
        self._set_fdp(node, ULONG_MAX)                    # the claim
        dz = node.zones[node.deferred_zone]
        if gen.claim:                                     # 5.7+: the lock is dropped here
            self._claimed[node.id] = first
            try:
                self._run_points("pass:claimed", node.id)
                return self._pass_body(node, dz, first)
            finally:
                del self._claimed[node.id]
        return self._pass_body(node, dz, first)

    def _pass_body(self, node: _Node, dz: _Zone, first: int) -> int:
        loop = self.generation.pass_loop
        pages = 0
        if loop == "two_pass":                            # 4.15-5.1: init all, then free all
            lo, hi = max(first, dz.start), dz.end
            for fs, fe in node.free_ranges:
                s, e = max(lo, fs), min(hi, fe)
                if s < e:
                    self._init_range(s, e, node.id, BY_PASS)
                    pages += e - s
            for fs, fe in node.free_ranges:
                s, e = max(lo, fs), min(hi, fe)
                self._deferred_free_pages(node.id, dz.idx, s, e)
        elif loop == "maxorder":                          # 5.2-5.7: one walk of MAX_ORDER steps
            spfn = self._next_free(node, first)
            while spfn != ULONG_MAX:
                n, spfn = self._maxorder_step(node, spfn, BY_PASS)
                pages += n
        elif loop == "padata_ranges":                     # 5.8-6.17: one padata job per free range
            spfn = self._next_free(node, first)
            while spfn != ULONG_MAX:
                epfn = next(e for s, e in self._deferred_free_ranges(node) if s <= spfn < e)
                first = _round_up(epfn, self._pps)
                pages += self._padata(node, spfn, first - spfn, self._maxorder_chunk)
                spfn = self._next_free(node, first)
        else:                                             # padata_zone, the 2025 rework: one job per zone
            end = _round_up(dz.end, self._pps)
            if first < end:
                pages += self._padata(node, first, end - first, self._chunk2025)
        return pages

    def _maxorder_chunk(self, node: _Node, start: int, end: int, by: int) -> int:
        """5.8+ deferred_init_memmap_chunk: MAX_ORDER steps from next_free(start) while below end."""
        pages = 0
        spfn = self._next_free(node, start)
        while spfn < end:                                 # (ULONG_MAX ends it too)
            n, spfn = self._maxorder_step(node, spfn, by)
            pages += n
        return pages

    def _padata(self, node: _Node, start: int, size: int, chunk_fn) -> int:
        """padata_do_multithreaded with align = min_chunk = PAGES_PER_SECTION; chunks run in ascending order
        (the deterministic model), each logged as a padata_chunk event (docs/model.md §11.6)."""
        max_threads = max(self.node_cpus.get(node.id, 0), 1)
        pages = 0
        for s, e, worker in padata_chunks(start, size, self._pps, self._pps, max_threads):
            self.events.append({"kind": "padata_chunk", "node": node.id, "start": s, "end": e, "worker": worker})
            pages += chunk_fn(node, s, e, BY_PASS)
        return pages

    def page_alloc_init_late(self) -> None:
        """Per-node passes in ascending node order, then the key off (posting-v2: first), then, for the
        generations that print it late, the Memory: line."""
        if self.phase == "created":
            raise PhaseError("page_alloc_init_late(): the machine has not booted yet (call boot() first)")
        if self.phase == "late_init_done":
            raise PhaseError("page_alloc_init_late() was already called")
        if self._in_late_init:
            raise PhaseError("page_alloc_init_late() called from inside page_alloc_init_late (a pass:claimed"
                             " callback)")
        gen = self.generation
        has_key = gen.grow != "none"
        if not self._pcp_ready:                           # start_kernel set them up long before
            self._pcp_ready = True
            self._zone_pcp_update()
        self._in_late_init = True
        try:
            if has_key and gen.key_off_first:
                self._key = False
                self.events.append({"kind": "key_disable"})
            for nid in self._node_ids:
                t0 = time.perf_counter_ns()
                pages = self._deferred_init_memmap(self._nodes[nid])
                self.events.append({"kind": "deferred_init", "node": nid, "pages": pages,
                                    "host_ns": time.perf_counter_ns() - t0})
            if has_key and not gen.key_off_first:
                self._key = False
                self.events.append({"kind": "key_disable"})
            if gen.pcp == "v4.17":                        # zone_pcp_update after the passes (until 5.14)
                self._zone_pcp_update()
        finally:
            self._in_late_init = False
        self.phase = "late_init_done"
        if gen.memory_line_late:
            self._print_memory_line("page_alloc_init_late")

    # ------------------------------------------------------------------------------------------------
    # named points (docs/model.md §11.4): only pass:claimed, run on the same (only) thread
    # ------------------------------------------------------------------------------------------------

    def at(self, point: str, callback, node: Optional[int] = None, once: bool = True) -> None:
        """Run ``callback(point, node, None)`` when a claim policy's pass reaches ``point`` (on ``node``, or on
        any node when None). An exception in the callback propagates out of page_alloc_init_late()."""
        if point not in POINTS:
            raise ValueError(f"unknown point {point!r}: the single-threaded oracle has only {', '.join(POINTS)}")
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        nid = None if node is None else self._check_node(node).id
        self._points.append([point, callback, nid, bool(once)])

    def clear_points(self) -> None:
        self._points.clear()

    def _run_points(self, point: str, nid: int) -> None:
        for entry in list(self._points):
            p, cb, want, once = entry
            if p == point and want in (None, nid):
                if once:
                    self._points.remove(entry)
                cb(point, nid, None)

    # ------------------------------------------------------------------------------------------------
    # queries
    # ------------------------------------------------------------------------------------------------

    @property
    def nodes(self) -> List[int]:
        return list(self._node_ids)

    @property
    def deferred_pages_enabled(self) -> bool:
        return self._key

    @property
    def totalram_pages(self) -> int:
        return self._totalram

    def first_deferred_pfn(self, node: int) -> Optional[int]:
        """first_deferred_pfn of the node; None = ULONG_MAX (nothing deferred, or before boot)."""
        fdp = self._check_node(node).fdp
        return None if fdp == ULONG_MAX else fdp

    def zone(self, node: int, zone: str) -> OracleZone:
        z = self._node_zone(node, zone)
        return OracleZone(node=z.node, name=z.name, start_pfn=z.start, end_pfn=z.end, spanned=z.end - z.start,
                          present=z.present, managed=z.managed, free_pages=z.free_pages, nr_free=list(z.nr_free))

    def free_list(self, node: int, zone: str, order: int, migratetype=None) -> List[int]:
        """Block-head pfns of free_area[order].free_list[migratetype] of the zone, head first; without a
        migratetype, every type's list in turn (Unmovable, Movable, Reclaimable, HighAtomic)."""
        order = self._check_order(order)
        z = self._node_zone(node, zone)
        if migratetype is None:
            return [p for mt in range(len(MIGRATETYPE_NAMES)) for p in z.lists[(order, mt)]]
        return list(z.lists[(order, self._check_migratetype(migratetype))])

    def pagetypeinfo(self, node: int, zone: str) -> dict:
        """/proc/pagetypeinfo of one zone: {migratetype name: free blocks per order}."""
        z = self._node_zone(node, zone)
        return {name: [len(z.lists[(k, mt)]) for k in range(self._max_order + 1)]
                for mt, name in enumerate(MIGRATETYPE_NAMES)}

    def page_arrays(self) -> dict:
        import numpy as np
        pps = self._pps
        pfn = np.concatenate([np.arange(sec * pps, (sec + 1) * pps, dtype=np.uint64) for sec in self._sections])
        return {
            "pfn": pfn,
            "state": np.frombuffer(bytes(self._st), dtype=np.uint8).copy(),
            "zone": np.frombuffer(bytes(self._zn), dtype=np.uint8).copy(),
            "node": np.array(self._nd, dtype=np.uint16),
            "init_count": np.frombuffer(bytes(self._ic), dtype=np.uint8).copy(),
            "order": np.frombuffer(bytes(self._od), dtype=np.uint8).copy(),
            "init_by": np.frombuffer(bytes(self._by), dtype=np.uint8).copy(),
        }

    def pageblock_migratetypes(self) -> dict:
        return {pb: MIGRATETYPE_NAMES[self._mt[pb]] for pb in sorted(self._mt)}

    def __repr__(self) -> str:
        faults = f" faults={sorted(self.faults)}" if self.faults else ""
        return (f"<OracleMachine policy={self.policy!r}{faults} phase={self.phase!r} nodes={self._node_ids}"
                f" pages={len(self._st)}>")

    # ------------------------------------------------------------------------------------------------
    # invariants (docs/model.md §9, spec §7)
    # ------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise InvariantViolation listing every broken invariant; return None when all hold.

        Recorded run-time bugs (``violations``, e.g. a merge that met an UNINIT buddy) are history, not state,
        and are not re-reported here.
        """
        problems: list = []
        booted = self.phase != "created"
        late = self.phase == "late_init_done"
        pps, pbo, pbn, max_order = self._pps, self._pbo, self._pbn, self._max_order
        st, zn, nd, ic, od, kind, home, mt = (self._st, self._zn, self._nd, self._ic, self._od, self._kind,
                                              self._home, self._mt)
        # I2's threshold: fdp, or for a node whose claimed pass is running (a pass:claimed callback), the pfn
        # it claimed from
        fdp = {nid: self._claimed.get(nid, node.fdp) for nid, node in self._nodes.items()}
        dzone = {nid: node.deferred_zone for nid, node in self._nodes.items()}
        tally = {key: [0] * 5 for key in self._zones}     # (node, zone) -> count of its memory pfns per state
        free_heads = {}                                   # pfn -> (node, zone, order) of FREE block heads
        pcp_heads = {}                                    # pfn -> (node, zone, order) of per-CPU list blocks (B-I5)
        for (nid, z), zone in self._zones.items():
            held = 0
            for (k, _t), lst in zone.pcp.lists.items():
                for p in lst:
                    if p in pcp_heads:
                        problems.append(f"B-I5: block {p:#x} is on two per-CPU lists")
                    pcp_heads[p] = (nid, z, k)
                    held += 1 << k
                    if p % (1 << k):
                        problems.append(f"B-I5: per-CPU order-{k} block {p:#x} is misaligned")
            if held != zone.pcp.count:
                problems.append(f"B-I5: node {nid} {zone.name} per-CPU lists hold {held} pages, count says"
                                f" {zone.pcp.count}")
        bad_pageblocks = set()
        n_uninit = 0

        def bad(msg):
            if len(problems) < 1000:
                problems.append(msg)

        for slot, sec in enumerate(self._sections):
            cover_end = -1
            cover = None                                  # (state, node, zone, head) of the enclosing block
            for off in range(pps):
                i = slot * pps + off
                p = sec * pps + off
                s, c, o = st[i], ic[i], od[i]
                if s > ALLOCATED:
                    bad(f"pfn {p:#x}: invalid state {s}")
                    continue
                gz = self._zone_of(p)
                k_ = kind[i]
                h = home[i]
                # init counts (I1)
                if s == UNINIT:
                    n_uninit += 1
                    if c != 0:
                        bad(f"pfn {p:#x}: UNINIT with init_count {c}")
                    if zn[i] != 0 or nd[i] != 0:
                        bad(f"pfn {p:#x}: UNINIT with zone {zn[i]} node {nd[i]} (must be 0)")
                elif c != 1:
                    bad(f"I1: pfn {p:#x} ({STATE_NAMES[s]}) was initialised {c} times")
                # expected state from the topology and fdp (I2)
                if not booted:
                    if s != UNINIT:
                        bad(f"pfn {p:#x}: {STATE_NAMES[s]} before boot")
                elif k_ != _FREE_MEM:
                    if s != RESERVED:
                        what = "hole" if k_ == _HOLE else "reserved pfn"
                        bad(f"{what} {p:#x} is {STATE_NAMES[s]}, not RESERVED")
                else:
                    deferred = gz == dzone[h] and p >= fdp[h]
                    if deferred and s != UNINIT:
                        bad(f"I2: free pfn {p:#x} of node {h} is at/above fdp {fdp[h]:#x} in the deferred zone"
                            f" but {STATE_NAMES[s]}")
                    elif not deferred and s not in (FREE, ALLOCATED):
                        bad(f"I2: free pfn {p:#x} of node {h} below fdp (or in a lower zone) is"
                            f" {STATE_NAMES[s]}, not FREE/ALLOCATED")
                if s != UNINIT and (nd[i] != h or zn[i] != gz):
                    bad(f"pfn {p:#x}: node/zone {nd[i]}/{zn[i]}, expected {h}/{gz}")
                if k_ != _HOLE:
                    key = (h, gz)
                    if key in tally:
                        tally[key][s] += 1
                    else:
                        bad(f"pfn {p:#x}: memory pfn of node {h} in zone {gz} that the node does not have")
                # block structure: heads carry an order, the rest of a block has NO_ORDER and the same state
                if p < cover_end:
                    cs, cn, cz, chead = cover
                    if p in pcp_heads:
                        bad(f"B-I5: per-CPU block {p:#x} lies inside the block headed by {chead:#x}")
                    if s != cs or o != NO_ORDER or nd[i] != cn or zn[i] != cz:
                        bad(f"pfn {p:#x} ({STATE_NAMES[s]}, order mark {o}) inside the {STATE_NAMES[cs]} block"
                            f" headed by {chead:#x}")
                elif o != NO_ORDER:
                    if s not in (FREE, ALLOCATED):
                        bad(f"pfn {p:#x}: {STATE_NAMES[s]} page carries order mark {o}")
                    elif o > max_order or p % (1 << o):
                        bad(f"pfn {p:#x}: block of order {o} is misaligned or too large")
                    else:
                        cover_end = p + (1 << o)
                        cover = (s, nd[i], zn[i], p)
                        if s == FREE:
                            free_heads[p] = (nd[i], zn[i], o)
                elif p in pcp_heads:                      # a per-CPU block: FREE, no order mark, this zone
                    pn, pz, pk = pcp_heads[p]
                    if s != FREE or (nd[i], zn[i]) != (pn, pz):
                        bad(f"B-I5: per-CPU block {p:#x} of node {pn} {ZONE_NAMES[pz]} is {STATE_NAMES[s]} in node"
                            f" {nd[i]} zone {ZONE_NAMES[zn[i]]}")
                    cover_end = p + (1 << pk)
                    cover = (FREE, pn, pz, p)
                elif s in (FREE, ALLOCATED):
                    bad(f"pfn {p:#x}: {STATE_NAMES[s]} but not inside any block")
                # pageblock migratetypes: set iff the pageblock's first pfn was initialised (B-I3 and §3)
                if s == FREE and (p >> pbo) not in mt:
                    bad_pageblocks.add(p >> pbo)
                if p % pbn == 0 and (s != UNINIT) != ((p >> pbo) in mt):
                    bad(f"pageblock {p >> pbo} (pfn {p:#x}, {STATE_NAMES[s]}): migratetype"
                        f" {MIGRATETYPE_NAMES[mt[p >> pbo]] if (p >> pbo) in mt else 'unset'}")
        for pb in sorted(bad_pageblocks):
            bad(f"B-I3: pageblock {pb} (pfn {pb << pbo:#x}) holds FREE pages but has no migratetype")

        # free lists (B-I1) and counters (B-I4)
        listed = {}
        for (nid, z), zone in self._zones.items():
            total = 0
            for k in range(max_order + 1):
                lst = [p for t in range(len(MIGRATETYPE_NAMES)) for p in zone.lists[(k, t)]]
                if zone.nr_free[k] != len(lst):
                    bad(f"B-I4: node {nid} {zone.name} nr_free[{k}] = {zone.nr_free[k]} but the lists have"
                        f" {len(lst)}")
                for t in range(len(MIGRATETYPE_NAMES)):
                    for p in zone.lists[(k, t)]:
                        if zone.on_list.get(p) != (k, t):
                            bad(f"B-I1: node {nid} {zone.name} list ({k}, {MIGRATETYPE_NAMES[t]}) holds {p:#x},"
                                f" recorded as {zone.on_list.get(p)}")
                for p in lst:
                    if p in listed:
                        bad(f"B-I1: block {p:#x} is on two free lists")
                    listed[p] = (nid, z, k)
                    if free_heads.get(p) != (nid, z, k):
                        bad(f"B-I1: node {nid} {zone.name} free_area[{k}] holds {p:#x}, which is not a FREE head of"
                            f" order {k} of that zone")
                    total += 1 << k
            t = tally[(nid, z)]
            if zone.free_pages != total:
                bad(f"B-I4: node {nid} {zone.name} free_pages = {zone.free_pages}, lists hold {total}")
            if zone.free_pages + zone.pcp.count != t[FREE]:
                bad(f"B-I4: node {nid} {zone.name} free_pages = {zone.free_pages} + {zone.pcp.count} on the per-CPU"
                    f" lists, but {t[FREE]} pages are FREE")
            if zone.managed != t[FREE] + t[ALLOCATED]:
                bad(f"B-I4: node {nid} {zone.name} managed = {zone.managed}, but {t[FREE] + t[ALLOCATED]} pages"
                    f" were released (FREE + ALLOCATED)")
            if booted and t[INIT]:
                bad(f"node {nid} {zone.name}: {t[INIT]} pages left INIT (initialised but never released)")
            if booted and zone.present != t[FREE] + t[ALLOCATED] + t[RESERVED] + t[UNINIT]:
                bad(f"B-I4: node {nid} {zone.name} present = {zone.present} != free {t[FREE]} + allocated"
                    f" {t[ALLOCATED]} + reserved {t[RESERVED]} + uninit {t[UNINIT]}")
        for p, (nid, z, k) in free_heads.items():
            if p not in listed:
                bad(f"B-I1: FREE block {p:#x} order {k} (node {nid} {ZONE_NAMES[z]}) is on no free list")
        if booted:
            managed = sum(zone.managed for zone in self._zones.values())
            if managed + n_uninit != self._totalram:
                bad(f"B-I4: sum(managed) {managed} + uninit {n_uninit} != totalram {self._totalram}")

        # first_deferred_pfn: I3 shape, I4 monotonicity, final value
        for nid in self._node_ids:
            node = self._nodes[nid]
            hist = node.fdp_history
            if booted and (not hist or hist[-1] != node.fdp):
                bad(f"node {nid}: fdp {node.fdp:#x} does not match its history")
            for a, b in zip(hist, hist[1:]):
                if b < a:
                    bad(f"I4: node {nid} fdp decreased from {a:#x} to {b:#x}")
            f = node.fdp
            if f != ULONG_MAX:
                grow = self.generation.grow
                if grow == "sections":                    # 4.17: a section boundary or a free range's end
                    shape, also = "the end of a free range", {fe for _, fe in node.free_ranges}
                elif grow == "maxorder":                  # 5.2+: a section boundary or a free range's start
                    shape, also = "the start of a free range", {fs for fs, _ in self._deferred_free_ranges(node)}
                else:                                     # 2025 rework (and early init): section aligned
                    shape, also = None, set()
                if not booted:
                    bad(f"node {nid}: fdp {f:#x} set before boot")
                elif f % pps and f not in also:
                    what = f"neither section-aligned nor {shape}" if shape else "not section-aligned"
                    bad(f"I3: node {nid} fdp {f:#x} is {what} ({self.policy})")
            if late and f != ULONG_MAX:
                bad(f"node {nid}: fdp {f:#x} after page_alloc_init_late")

        # the static key
        want_key = self.phase == "booted" and self.generation.grow != "none"
        if self._key != want_key:
            bad(f"static key deferred_pages is {self._key} in phase {self.phase} under {self.policy}")

        if problems:
            raise InvariantViolation(problems)

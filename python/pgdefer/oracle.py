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
* pageblock migratetypes: the set of pageblock indices that are MOVABLE;
* free lists: per zone of a node, per order, an ``OrderedDict`` of block-head pfns (keys, in list order);
* ``first_deferred_pfn`` is kept as in the kernel (``ULONG_MAX`` = nothing deferred) and shown as ``None``.

Range-based loops (slice assignment per section) are used where a per-pfn loop would be slow on machines of a
few million pages; each of them is a literal transcription of a per-pfn rule, stated next to it.
"""

from __future__ import annotations

import operator
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional

from .config import ZONE_NAMES
from .errors import (BadFree, InvariantViolation, OrderError, OutOfMemory, PhaseError, UnknownNode,
                     UnknownZone)
from .topology import Topology

__all__ = ["OracleMachine", "OracleZone", "POLICIES", "STATE_NAMES",
           "UNINIT", "INIT", "RESERVED", "FREE", "ALLOCATED", "NO_ORDER"]

POLICIES = ("eager", "v4.2", "posting-v2", "v4.17")
ON_DEMAND_POLICIES = ("posting-v2", "v4.17")
HOLES_COUNTED = ("v4.2", "posting-v2", "v4.17")         # the defer rule's k counts holes too (§11.2)

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
        self.free_area = [OrderedDict() for _ in range(max_order + 1)]  # order -> {head pfn: None}, head first
        self.nr_free = [0] * (max_order + 1)

    @property
    def populated(self) -> bool:
        return self.present > 0


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

    def __init__(self, topology, policy: str = "v4.17"):
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}: valid policies are {', '.join(POLICIES)}")
        if isinstance(topology, dict):
            topology = Topology.from_dict(topology)
        if not isinstance(topology, Topology):
            raise TypeError(f"OracleMachine needs a pgdefer.Topology, got {topology!r}")
        self.topology = topology
        self.policy = policy
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
        self._mt = set()                                 # MOVABLE pageblock indices
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
                self._mt.add(head >> self._pbo)

    def _set_state_range(self, a: int, b: int, state: int) -> None:
        for p, q, i, _ in self._pieces(a, b):
            self._st[i:i + q - p] = bytes([state]) * (q - p)

    def _link(self, zone: _Zone, pfn: int, order: int, at_head: bool) -> None:
        self._od[self._i(pfn)] = order
        lst = zone.free_area[order]
        lst[pfn] = None
        if at_head:
            lst.move_to_end(pfn, last=False)
        zone.nr_free[order] += 1

    def _unlink(self, zone: _Zone, pfn: int, order: int) -> None:
        del zone.free_area[order][pfn]
        zone.nr_free[order] -= 1
        self._od[self._i(pfn)] = NO_ORDER

    def _free_block(self, zone: _Zone, pfn: int, order: int, to_tail: bool) -> None:
        """Free of block (pfn, order) into zone (docs/model.md §5), merging with free buddies."""
        n = 1 << order
        i = self._i(pfn)
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
            if (self._st[ib] == FREE and self._od[ib] == k and self._nd[ib] == zone.node
                    and self._zn[ib] == zone.idx):
                self._unlink(zone, b, k)
                p = min(p, b)
                k += 1
            else:
                break
        self._link(zone, p, k, at_head=not to_tail)

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
        self._free_block(zone, pfn, order, to_tail=True)

    def _rmqueue(self, zone: _Zone, order: int) -> Optional[int]:
        """docs/model.md §5 rmqueue: smallest sufficient order, take its head, split halves to the heads."""
        for j in range(order, self._max_order + 1):
            if zone.free_area[j]:
                break
        else:
            return None
        b = next(iter(zone.free_area[j]))
        self._unlink(zone, b, j)
        while j > order:
            j -= 1
            self._link(zone, b + (1 << j), j, at_head=True)
        n = 1 << order
        i = self._i(b)
        self._st[i:i + n] = bytes([ALLOCATED]) * n
        self._od[i] = order
        zone.free_pages -= n
        return b

    def _watermark_ok(self, zone: _Zone, order: int) -> bool:
        return zone.free_pages >= (1 << order) and any(zone.free_area[j] for j in range(order, self._max_order + 1))

    def _set_fdp(self, node: _Node, value: int) -> None:
        node.fdp = value
        node.fdp_history.append(value)

    # deferred_free_pages / deferred_free_range (spec §3.3, every pfn valid)
    def _deferred_free_pages(self, nid: int, z: int, a: int, b: int) -> None:
        """Split [a, b) into runs bounded by pageblock boundaries and free each run in ascending order.
        (Equivalent to §3.3's per-pfn loop: a run restarts at every pageblock-aligned pfn.)"""
        p = a
        while p < b:
            q = min(b, (p // self._pbn + 1) * self._pbn)
            self._deferred_free_range(nid, z, p, q - p)
            p = q

    def _deferred_free_range(self, nid: int, z: int, pfn: int, n: int) -> None:
        if n == 0:
            return
        if n == self._pbn and pfn % self._pbn == 0:
            self._mt.add(pfn >> self._pbo)
            self._release(nid, z, pfn, self._pbo)
            return
        for p in range(pfn, pfn + n):
            if p % self._pbn == 0:
                self._mt.add(p >> self._pbo)
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
        if self.policy == "eager":
            return None
        if self.policy == "v4.2":
            return (2 << 30) // self._ps
        return min(self._pps, node.end - node.start)       # posting-v2, v4.17: static_init_pgcnt

    def boot(self) -> None:
        """free_area_init + memmap_init + memblock_free_all."""
        if self.phase != "created":
            raise PhaseError("boot() was already called")
        pps = self._pps

        # 1. holes: init, then RESERVED
        for s, e, nid in self._holes:
            self._init_range(s, e, nid, BY_HOLE)
            self._set_state_range(s, e, RESERVED)

        # 2. early init with the defer rule, per node in ascending id
        for nid in self._node_ids:
            node = self._nodes[nid]
            dz = node.zones[node.deferred_zone]
            limit = self._early_limit(node)
            fdp = ULONG_MAX
            if limit is not None:
                k = 0
                counted = node.mem
                if self.policy in HOLES_COUNTED:         # docs/model.md §11.2: the 4.x-5.7 zone-span walk
                    counted = sorted(list(node.mem) + [(s, e) for s, e, _ in self._holes])
                for s, e in counted:
                    for p in range(max(s, dz.start), min(e, dz.end)):
                        k += 1
                        if k > limit and p % pps == 0:
                            fdp = p
                            break
                    if fdp != ULONG_MAX:
                        break
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

        # 4. the static key
        self._key = self.policy in ON_DEMAND_POLICIES
        self.phase = "booted"

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

    def _grow_v417(self, node: _Node, zone: _Zone, order: int, hook: str) -> bool:
        need = _ceil_div(1 << order, self._pps) * self._pps
        snap = node.fdp                                   # read without the lock
        if zone.end != node.end:
            return False                                  # not the node's last zone: no event
        # --- node lock taken ---
        if not self._key:
            self._grow_event(node, zone, order, hook, 0, True)
            return True
        if snap != node.fdp:                              # cannot happen single-threaded; kept for fidelity
            self._grow_event(node, zone, order, hook, 0, True)
            return True
        first = max(zone.start, snap)
        if first >= node.end:
            self._grow_event(node, zone, order, hook, 0, False)
            return False
        got, new_first = self._grow_loops(node, zone, first, snap, need)
        self._set_fdp(node, new_first)
        result = got > 0
        self._grow_event(node, zone, order, hook, got, result)
        return result

    def _grow_posting_v2(self, node: _Node, zone: _Zone, order: int, hook: str) -> bool:
        need = _ceil_div(1 << order, self._pps) * self._pps
        if zone.end != node.end:
            return False                                  # not the node's last zone: no event
        # --- global deferred_zone_grow_lock taken ---
        if not self._key:
            self._grow_event(node, zone, order, hook, 0, False)
            return False
        snap = node.fdp                                   # read under the lock (docs/model.md §7)
        first = max(zone.start, snap)
        if first >= node.end:
            self._grow_event(node, zone, order, hook, 0, False)
            return False
        got, new_first = self._grow_loops(node, zone, first, snap, need)
        self._set_fdp(node, new_first)
        result = got >= need
        self._grow_event(node, zone, order, hook, got, result)
        return result

    def _grow(self, node: _Node, zone: _Zone, order: int, hook: str) -> bool:
        if self.policy == "v4.17":
            return self._grow_v417(node, zone, order, hook)
        if self.policy == "posting-v2":
            return self._grow_posting_v2(node, zone, order, hook)
        return False                                      # eager, v4.2: no grow, no event

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

    def alloc_pages(self, order: int = 0, node: Optional[int] = None, zone: Optional[str] = None) -> int:
        """Allocate a 2^order block; returns the pfn of its head. OutOfMemory if the zonelist has nothing."""
        self._require_booted("alloc_pages")
        order = self._check_order(order)
        pref = self._node_ids[0] if node is None else self._check_node(node).id
        high = NORMAL if zone is None else self._check_zone_name(zone)
        for z in self._zonelist(pref, high):
            n = self._nodes[z.node]
            if not self._watermark_ok(z, order):
                if not (self._key and self._grow(n, z, order, "watermark")):
                    continue
            while True:                                   # try_this_zone
                pfn = self._rmqueue(z, order)
                if pfn is not None:
                    return pfn
                if not (self._key and self._grow(n, z, order, "rmqueue")):
                    break
        raise OutOfMemory(
            f"alloc_pages(order={order}, node={node!r}, zone={zone!r}): no free block of order {order} in any zone"
            f" of the zonelist")

    def free_pages(self, pfn: int, order: int = 0) -> None:
        """Free an allocated block (runtime free: merged block goes to the head of its list)."""
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
        self._free_block(zone, pfn, order, to_tail=False)

    # ------------------------------------------------------------------------------------------------
    # page_alloc_init_late (docs/model.md §8, spec §4)
    # ------------------------------------------------------------------------------------------------

    def _deferred_init_memmap(self, node: _Node) -> int:
        fdp = node.fdp
        if fdp == ULONG_MAX:
            return 0
        self._set_fdp(node, ULONG_MAX)
        dz = node.zones[node.deferred_zone]
        lo, hi = max(fdp, dz.start), dz.end
        pages = 0
        for fs, fe in node.free_ranges:                   # pass 1: init
            s, e = max(lo, fs), min(hi, fe)
            if s < e:
                self._init_range(s, e, node.id, BY_PASS)
                pages += e - s
        for fs, fe in node.free_ranges:                   # pass 2: free
            s, e = max(lo, fs), min(hi, fe)
            self._deferred_free_pages(node.id, dz.idx, s, e)
        return pages

    def page_alloc_init_late(self) -> None:
        """Per-node passes in ascending node order, then (v4.17) the key off; posting-v2 turns it off first."""
        if self.phase == "created":
            raise PhaseError("page_alloc_init_late(): the machine has not booted yet (call boot() first)")
        if self.phase == "late_init_done":
            raise PhaseError("page_alloc_init_late() was already called")
        if self.policy == "posting-v2":
            self._key = False
            self.events.append({"kind": "key_disable"})
        for nid in self._node_ids:
            t0 = time.perf_counter_ns()
            pages = self._deferred_init_memmap(self._nodes[nid])
            self.events.append({"kind": "deferred_init", "node": nid, "pages": pages,
                                "host_ns": time.perf_counter_ns() - t0})
        if self.policy == "v4.17":
            self._key = False
            self.events.append({"kind": "key_disable"})
        self.phase = "late_init_done"

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

    def free_list(self, node: int, zone: str, order: int) -> List[int]:
        """Block-head pfns of free_area[order] of the zone, head first."""
        order = self._check_order(order)
        z = self._node_zone(node, zone)
        return list(z.free_area[order])

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
        return {pb: "MOVABLE" for pb in sorted(self._mt)}

    def __repr__(self) -> str:
        return (f"<OracleMachine policy={self.policy!r} phase={self.phase!r} nodes={self._node_ids}"
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
        fdp = {nid: node.fdp for nid, node in self._nodes.items()}
        dzone = {nid: node.deferred_zone for nid, node in self._nodes.items()}
        tally = {key: [0] * 5 for key in self._zones}     # (node, zone) -> count of its memory pfns per state
        free_heads = {}                                   # pfn -> (node, zone, order) of FREE block heads
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
                elif s in (FREE, ALLOCATED):
                    bad(f"pfn {p:#x}: {STATE_NAMES[s]} but not inside any block")
                # pageblock migratetypes: MOVABLE iff the pageblock's first pfn was initialised (B-I3 and §3)
                if s == FREE and (p >> pbo) not in mt:
                    bad_pageblocks.add(p >> pbo)
                if p % pbn == 0 and (s != UNINIT) != ((p >> pbo) in mt):
                    bad(f"pageblock {p >> pbo} (pfn {p:#x}, {STATE_NAMES[s]}): migratetype"
                        f" {'MOVABLE' if (p >> pbo) in mt else 'UNSET'}")
        for pb in sorted(bad_pageblocks):
            bad(f"B-I3: pageblock {pb} (pfn {pb << pbo:#x}) holds FREE pages but is not MOVABLE")

        # free lists (B-I1) and counters (B-I4)
        listed = {}
        for (nid, z), zone in self._zones.items():
            total = 0
            for k in range(max_order + 1):
                lst = zone.free_area[k]
                if zone.nr_free[k] != len(lst):
                    bad(f"B-I4: node {nid} {zone.name} nr_free[{k}] = {zone.nr_free[k]} but the list has {len(lst)}")
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
            if zone.free_pages != t[FREE]:
                bad(f"B-I4: node {nid} {zone.name} free_pages = {zone.free_pages}, {t[FREE]} pages are FREE")
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
                if not booted:
                    bad(f"node {nid}: fdp {f:#x} set before boot")
                elif f % pps and f not in {fe for _, fe in node.free_ranges}:
                    bad(f"I3: node {nid} fdp {f:#x} is neither section-aligned nor the end of a free range")
            if late and f != ULONG_MAX:
                bad(f"node {nid}: fdp {f:#x} after page_alloc_init_late")

        # the static key
        want_key = self.phase == "booted" and self.policy in ON_DEMAND_POLICIES
        if self._key != want_key:
            bad(f"static key deferred_pages is {self._key} in phase {self.phase} under {self.policy}")

        if problems:
            raise InvariantViolation(problems)

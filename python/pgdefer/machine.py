"""The simulated machine: a thin, validating front to the Rust core (``pgdefer._core``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from . import _core
from .config import ZONE_NAMES
from .enums import InitBy, PageState, Zone  # noqa: F401 - re-exported: the enums' owner is pgdefer.enums
from .errors import InvalidArgument, InvalidType, NoStructPage, OrderError, PgdeferError, UnknownNode, UnknownZone
from .generations import resolve
from .gfp import MIGRATETYPES
from .gfp import migratetype as _migratetype_arg
from .topology import Topology

if TYPE_CHECKING:
    from .costmodel import CostModel

# Everything below is the core's (pgdefer._core), never re-typed here. PageState (Machine.pages.state),
# InitBy (Machine.pages.init_by) and Zone (Machine.pages.zone) are built from it in pgdefer.enums.
# Older names of the same values, kept for users that imported them.
UNINIT, INIT, RESERVED, FREE, ALLOCATED = PageState
STATE_NAMES = tuple(_core.PAGE_STATES)
INIT_BY = tuple(_core.INIT_BY)
NO_ORDER = _core.NO_ORDER  # order of a page that is not the head of a buddy block
_FLAGS = _core.PAGE_FLAGS  # field -> (shift, mask) in the flags byte


#: Event fields that hold pfns (printed in hex by Event's repr).
EVENT_PFN_FIELDS = frozenset({"first_deferred_pfn", "start", "end"})


class Event(dict):
    """One event: a plain dict (``e["kind"]``, ...) whose repr prints pfns in hex."""

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {v:#x}" if k in EVENT_PFN_FIELDS and isinstance(v, int) else f"{k!r}: {v!r}"
                               for k, v in self.items()) + "}"


def _repr_hex_pfns(self: Any) -> str:
    """A dataclass repr with its pfn fields (``*_pfn``) in hex, as the kernel prints them."""
    shown = (f"{f.name}={getattr(self, f.name):#x}" if f.name.endswith("pfn") and isinstance(getattr(self, f.name), int)
             else f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
    return f"{type(self).__name__}({', '.join(shown)})"


@dataclass(frozen=True, repr=False)
class ZoneInfo:
    """One zone of one node: span, counters and free blocks per order (``nr_free[order]``)."""

    __repr__ = _repr_hex_pfns

    node: int
    name: str
    start_pfn: int
    end_pfn: int
    spanned: int
    present: int
    managed: int
    free_pages: int
    nr_free: tuple
    deferred: bool


def _migratetype(code: int) -> str | None:
    """The name of a pageblock_mt byte (0: memmap_init has not set it yet; else the kernel's value + 1)."""
    return None if code == 0 else MIGRATETYPES[code - 1]


class PageIndex(int):
    """A position in the packed page arrays (``PageView.index(pfn)``), not a pfn: adding or subtracting an int
    keeps it a position, so ``a[i:i + n]`` works where ``a[pfn]`` is refused."""

    def __add__(self, other: int) -> int:
        return PageIndex(int(self) + other) if type(other) is int else int(self) + other

    __radd__ = __add__

    def __sub__(self, other: int) -> int:
        return PageIndex(int(self) - other) if type(other) is int else int(self) - other


def _positional(key: object) -> bool:
    """Whether ``key`` cannot be a pfn mistaken for a position: PageIndex, slices of them, masks, arrays."""
    if isinstance(key, PageIndex):
        return True
    if isinstance(key, slice):
        return all(k is None or isinstance(k, PageIndex) for k in (key.start, key.stop))
    return isinstance(key, bool) or not isinstance(key, (int, np.integer))


class PackedArray(np.ndarray):
    """A read-only per-page array of a :class:`PageView`: one entry per struct page, packed over the present
    sections in pfn order (entry ``i`` is the page of pfn ``view.pfn[i]``), so a pfn is *not* an index.

    Indexing it with an int or an int slice is refused (:class:`pgdefer.errors.NoStructPage` names the way by
    pfn: ``m.pages[pfn]``, ``m.pages.window(start, end)``); positions from ``view.index(pfn)`` (a
    :class:`PageIndex`) and everything vectorised work (``(a == 1).all()``, boolean masks, ``np.bincount``,
    ``a[np.flatnonzero(...)]``) and give plain arrays. ``np.asarray(a)`` is the plain positional array.
    """

    def __getitem__(self, key: Any) -> Any:
        if not _positional(key):
            raise NoStructPage(
                f"page arrays are packed over present sections, so [{key!r}] is not a pfn: use m.pages[pfn] "
                f"(a Page), m.pages.window(start_pfn, end_pfn) or a boolean mask with .pfn")
        return np.ndarray.__getitem__(self.view(np.ndarray), key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.view(np.ndarray))

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        arr = arr.view(np.ndarray)
        return arr[()] if return_scalar else arr


def _packed(a: np.ndarray) -> PackedArray:
    a = a.view(PackedArray)
    a.flags.writeable = False
    return a


_RAW_FIELDS = ("flags", "node", "order1", "init_by")


class _Window:
    """A decoded copy of packed indices ``[base, base + len)`` of a field of a compact memmap, indexed by packed
    index like the zero-copy view of a dense one."""

    def __init__(self, array: np.ndarray, base: int) -> None:
        self.array, self.base = array, base

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return self.array[key.start - self.base:key.stop - self.base]
        return self.array[key - self.base]


def _raw_arrays(core: Any, i0: int, i1: int) -> dict:
    """The page fields by packed index: zero-copy views of a dense memmap (all of it), or decoded copies of
    ``[i0, i1)`` of a compact one (its summary sections have no per-page bytes to view)."""
    raw = {"pageblock_mt": core.raw_view("pageblock_mt")}
    if core.memmap_census() is None:
        return raw | {k: core.raw_view(k) for k in _RAW_FIELDS} | {"compact": False}
    return raw | {k: _Window(core.raw_view(k, i0, i1), i0) for k in _RAW_FIELDS} | {"compact": True}


@dataclass(frozen=True)
class Page:
    """One struct page, read by pfn (``m.pages[pfn]``). ``zone``/``node`` are None while it is UNINIT (the
    descriptor is garbage then); ``order`` is the block order of a buddy head, None elsewhere;
    ``migratetype`` is its pageblock's (None until memmap_init sets it)."""

    pfn: int
    state: PageState
    zone: Zone | None
    node: int | None
    order: int | None
    init_count: int
    init_by: InitBy
    migratetype: str | None

    def __repr__(self) -> str:
        where = "" if self.zone is None else f" {self.zone.name.capitalize()} node {self.node}"
        order = "" if self.order is None else f" order {self.order}"
        mt = "" if self.migratetype is None else f" {self.migratetype}"
        return (f"<Page {self.pfn:#x} {self.state.name.lower()}{where}{order} init_count {self.init_count}"
                f" by {self.init_by.name.lower()}{mt}>")


class PageView:
    """The struct pages of pfns ``[start_pfn, end_pfn)`` (``m.pages``: all of them; ``m.pages.window(s, e)``
    or ``m.pages[s:e]``: a window, cheap on huge machines since only its part of the arrays is read).

    By pfn: ``view[pfn]`` is a :class:`Page` (names, not codes), ``pfn in view`` says whether it has a struct
    page, and a pfn without one (its section is not present: ``!pfn_valid``) or outside the window raises
    :class:`pgdefer.errors.NoStructPage`.

    As arrays (:class:`PackedArray`, read-only, one entry per struct page in pfn order, ``pfn`` the pfn of
    each): ``flags``, ``node``, ``order_raw``, ``init_by`` are zero-copy views of the core's memory (they
    follow the machine live; on a compact memmap, ``Machine(memmap="compact")``, they are copies of the window
    decoded when a per-page field is first read, and ``Machine.pages`` makes a new view after each change); ``state``,
    ``zone``, ``init_count``, ``order``, ``migratetype`` and ``pfn`` are decoded on first use and cached until
    the machine next changes. ``init_by`` names the boot path that initialised each page (``InitBy``); ``runs``
    lists the present pfn ranges.
    """

    def __init__(self, core: Any, pageblock_order: int, start_pfn: int | None = None, end_pfn: int | None = None,
                 _raw: dict | None = None) -> None:
        self._core = core
        self._pageblock_order = pageblock_order
        all_chunks = tuple(core.memmap_chunks())
        lo = 0 if start_pfn is None else start_pfn
        hi = (all_chunks[-1][1] if all_chunks else 0) if end_pfn is None else end_pfn
        self.start_pfn, self.end_pfn = lo, hi
        # The present runs clipped to the window, with their index into the packed arrays.
        self.chunks = tuple((max(s, lo), min(e, hi), base + max(s, lo) - s)
                            for s, e, base in all_chunks if s < hi and e > lo)
        self._i0 = self.chunks[0][2] if self.chunks else 0
        self._i1 = self.chunks[-1][2] + self.chunks[-1][1] - self.chunks[-1][0] if self.chunks else 0
        # A dense memmap's zero-copy views are shared with windows; a compact one is decoded on first read of a
        # per-page field (a 24 TB view costs nothing until then: len, runs, index and windows stay cheap).
        self._given = _raw if _raw is not None and not _raw["compact"] else None
        self._decoded = None
        self._fields = {}
        self._cache = {}
        self._pfn = None

    @property
    def _raw(self) -> dict:
        if self._decoded is None:
            self._decoded = self._given or _raw_arrays(self._core, self._i0, self._i1)
        return self._decoded

    def _raw_field(self, key: str) -> PackedArray:
        if key not in self._fields:
            self._fields[key] = _packed(self._raw[key][self._i0:self._i1])
        return self._fields[key]

    @property
    def flags(self) -> PackedArray:
        """The flags byte of each struct page (state, zone, init count)."""
        return self._raw_field("flags")

    @property
    def node(self) -> PackedArray:
        """The node id of each struct page."""
        return self._raw_field("node")

    @property
    def order_raw(self) -> PackedArray:
        """The order byte of each struct page: order + ORDER_BIAS at a free buddy head, that with
        ALLOCATED_HEAD set at an allocated block's head, else 0 (``order`` decodes both)."""
        return self._raw_field("order1")

    @property
    def init_by(self) -> PackedArray:
        """Which boot path initialised each struct page (InitBy codes)."""
        return self._raw_field("init_by")

    # -- by pfn ------------------------------------------------------------------------------------

    def _index(self, pfn: int) -> int | None:
        for s, e, i in self.chunks:
            if s <= pfn < e:
                return i + pfn - s
        return None

    def index(self, pfn: int) -> PageIndex:
        """Position of ``pfn`` in ``np.asarray(view.<field>)`` (NoStructPage if it has no struct page here)."""
        pfn = _pfn(pfn)
        i = self._index(pfn)
        if i is None:
            raise NoStructPage(self._missing(pfn))
        return PageIndex(i - self._i0)

    def _missing(self, pfn: int) -> str:
        if not self.start_pfn <= pfn < self.end_pfn:
            return f"pfn {pfn:#x} is outside this view [{self.start_pfn:#x}, {self.end_pfn:#x})"
        runs = ", ".join(f"[{s:#x}, {e:#x})" for s, e in self.runs[:8]) + (" ..." if len(self.runs) > 8 else "")
        return f"pfn {pfn:#x} has no struct page (its section is not present); present pfns: {runs or 'none'}"

    def __contains__(self, pfn: object) -> bool:
        return isinstance(pfn, (int, np.integer)) and not isinstance(pfn, bool) and self._index(int(pfn)) is not None

    @overload
    def __getitem__(self, key: int) -> Page: ...
    @overload
    def __getitem__(self, key: slice) -> PageView: ...

    def __getitem__(self, key: int | slice) -> Page | PageView:
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise InvalidArgument(f"a page window has no step, got {key!r}")
            return self.window(self.start_pfn if key.start is None else key.start,
                               self.end_pfn if key.stop is None else key.stop)
        pfn = _pfn(key)
        i = self._index(pfn)
        if i is None:
            raise NoStructPage(self._missing(pfn))
        return self._page(pfn, i)

    def _page(self, pfn: int, i: int, r: dict | None = None) -> Page:
        # one page of a compact memmap not decoded yet: decode just that page (iteration passes the whole window's)
        if r is None:
            r = self._raw if self._decoded is not None or self._given is not None else _raw_arrays(self._core, i, i + 1)
        f = int(r["flags"][i])
        field = {k: (f >> shift) & mask for k, (shift, mask) in _FLAGS.items()}
        state = PageState(field["state"])
        live = state is not PageState.UNINIT
        order = ((int(r["order1"][i]) & ~_core.ALLOCATED_HEAD) - _core.ORDER_BIAS) & 0xFF
        return Page(pfn=pfn, state=state, zone=Zone(field["zone"]) if live else None,
                    node=int(r["node"][i]) if live else None, order=None if order == NO_ORDER else order,
                    init_count=field["init_count"], init_by=InitBy(int(r["init_by"][i])),
                    # packed indices are section aligned, so index >> pageblock_order is the pageblock's slot
                    migratetype=_migratetype(int(r["pageblock_mt"][i >> self._pageblock_order])))

    def window(self, start_pfn: int, end_pfn: int) -> PageView:
        """The struct pages of pfns ``[start_pfn, end_pfn)`` (clipped to this view): only that part of the arrays
        is read or decoded, so a window of a 24 TB machine costs what the window holds."""
        start_pfn, end_pfn = _pfn(start_pfn, "start_pfn"), _pfn(end_pfn, "end_pfn")
        if not 0 <= start_pfn <= end_pfn:
            raise InvalidArgument(f"window({start_pfn:#x}, {end_pfn:#x}): needs 0 <= start_pfn <= end_pfn")
        lo = min(max(start_pfn, self.start_pfn), self.end_pfn)
        return PageView(self._core, self._pageblock_order, lo, max(min(end_pfn, self.end_pfn), lo), self._given)

    @property
    def runs(self) -> list[tuple[int, int]]:
        """The present pfn ranges ``[(start, end), ...]`` of this view (the memmap's sections)."""
        return [(s, e) for s, e, _ in self.chunks]

    def __len__(self) -> int:
        return self._i1 - self._i0

    def __iter__(self) -> Iterator[Page]:
        """Every :class:`Page` of the view, in pfn order (meant for windows: one Python object per page)."""
        raw = self._raw
        for s, e, i in self.chunks:
            for k in range(e - s):
                yield self._page(s + k, i + k, raw)

    # -- decoded arrays, cached until the machine changes ------------------------------------------

    def _cached(self, name: str, compute: Callable[[], Any]) -> Any:
        version = self._core.page_version
        hit = self._cache.get(name)
        if hit is not None and version is not None and hit[0] == version:
            return hit[1]
        value = compute()
        if version is not None and self._core.page_version == version:
            self._cache[name] = (version, value)
        return value

    def _field(self, name: str) -> PackedArray:
        shift, mask = _FLAGS[name]
        return self._cached(name, lambda: _packed((np.asarray(self.flags) >> shift) & mask))

    @property
    def state(self) -> PackedArray:
        """PageState values."""
        return self._field("state")

    @property
    def zone(self) -> PackedArray:
        """Zone indices (meaningless for UNINIT pages, whose descriptors are garbage)."""
        return self._field("zone")

    @property
    def init_count(self) -> PackedArray:
        """How many times each page was initialised (saturating; more than 1 is a double init, I1)."""
        return self._field("init_count")

    @property
    def order(self) -> PackedArray:
        """Block order of buddy heads (free or allocated), NO_ORDER elsewhere."""
        # uint8 wraps: 0 ("not a head") -> NO_ORDER
        strip = np.uint8(0xFF & ~_core.ALLOCATED_HEAD)
        return self._cached("order", lambda: _packed((np.asarray(self.order_raw) & strip) - np.uint8(_core.ORDER_BIAS)))

    @property
    def migratetype(self) -> PackedArray:
        """Each page's pageblock_mt byte (0: not set yet; ``Page.migratetype`` names it)."""
        shift = self._pageblock_order

        def run(mt, i, n):  # pages [i, i + n) of the packed arrays; pageblocks need not be whole
            first, last = i >> shift, (i + n - 1) >> shift
            off = i - (first << shift)
            return np.repeat(mt[first:last + 1], 1 << shift)[off:off + n]

        def compute():
            mt = np.asarray(self._raw["pageblock_mt"])
            return _packed(np.concatenate([run(mt, i, e - s) for s, e, i in self.chunks] or [np.zeros(0, np.uint8)]))

        return self._cached("migratetype", compute)

    @property
    def pfn(self) -> PackedArray:
        """The pfn of each entry (the layout never changes: computed once)."""
        if self._pfn is None:
            pfn, step = np.empty(len(self), dtype=np.uint64), 1 << 22  # filled in pieces: no second copy
            for s, e, i in self.chunks:
                for a in range(s, e, step):
                    b = min(a + step, e)
                    pfn[i - self._i0 + a - s:i - self._i0 + b - s] = np.arange(a, b, dtype=np.uint64)
            self._pfn = _packed(pfn)
        return self._pfn

    def _counts(self) -> tuple[list[int], list[int]]:
        return self._cached("counts", lambda: self._core.page_counts(self._i0, self._i1))  # one pass, in the core

    def counts(self) -> dict[str, int]:
        """Number of pages in each state."""
        return dict(zip(STATE_NAMES, self._counts()[0]))

    def init_counts(self) -> dict[str, int]:
        """Number of pages initialised by each boot path (and "none" for those not yet initialised)."""
        return dict(zip(INIT_BY, self._counts()[1]))

    def __repr__(self) -> str:
        c = ", ".join(f"{k} {v}" for k, v in self.counts().items() if v)
        return (f"<PageView pfns [{self.start_pfn:#x}, {self.end_pfn:#x}): {len(self)} struct pages in "
                f"{len(self.chunks)} run(s){': ' + c if c else ''}>")


def _int(value, what):
    if type(value) is int:  # the common case, first
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidType(f"{what} must be an int, got {value!r}")
    return int(value)


def _pfn(value: object, what: str = "pfn") -> int:
    """An int pfn for the page views; a wrong type is a pgdefer error too (InvalidArgument)."""
    try:
        return _int(value, what)
    except TypeError as e:
        if isinstance(e, PgdeferError):
            raise
        raise InvalidArgument(str(e)) from None


U64_MAX = 2**64 - 1


def _u64(value, what):
    """An int the core takes as u64 (a pfn, a count): checked here, so that a negative or >64-bit value is an
    InvalidArgument naming it, not the binding's OverflowError."""
    value = _int(value, what)
    if not 0 <= value <= U64_MAX:
        raise InvalidArgument(f"{what} must be in 0..2^64-1, got {value}")
    return value


def _str(value, what):
    if not isinstance(value, str):
        raise InvalidType(f"{what} must be a str, got {value!r}")
    return value


def _topology(value):
    if not isinstance(value, Topology):
        raise InvalidType(f"topology must be a pgdefer.Topology, got {type(value).__name__}")
    return value


def _layout(topology: Topology) -> tuple:
    """The topology as the core's Machine and deferral take it: one tuple (geometry's four sizes, memory, reserved,
    zone limits DMA/DMA32/Normal)."""
    g = topology.geometry
    zl = topology.zone_limits
    return (g.page_size, g.section_size, g.pageblock_order, g.max_order,
            [(r.start, r.end, r.node) for r in topology.memory],
            # a reserved end may be 2^64 (an inclusive end of ~0 made half-open); no memory lies that high
            [(r.start, min(r.end, U64_MAX)) for r in topology.reserved],
            (zl.get("DMA"), zl.get("DMA32"), zl.get("Normal")))


@dataclass(frozen=True, repr=False)
class NodeDeferral:
    """What memmap_init leaves to deferred init on one node."""

    __repr__ = _repr_hex_pfns

    node: int
    first_deferred_pfn: int | None  # None: nothing deferred (ULONG_MAX)
    deferred_pages: int  # memory pfns at or above first_deferred_pfn, reserved ones included


def deferral(topology: Topology, policy: str) -> list:
    """Per node, where ``policy``'s defer rule cuts (first_deferred_pfn) and how many struct pages memmap_init
    leaves uninitialised, computed by the core from the layout alone: no page array is allocated, so this
    answers for machines too large to build."""
    _topology(topology)
    return [NodeDeferral(*n) for n in _core.deferral(_layout(topology), _str(policy, "policy"))]


FAULTS = ("trust_snapshot", "keep_key", "bytes_as_pages", "retry_forever")
_STREAM_KEYS = frozenset({"cpu", "count", "orders", "node", "zone", "free_percent"})


def _faults(faults) -> tuple:
    if isinstance(faults, str):
        faults = (faults,)
    if not hasattr(faults, "__iter__"):
        raise InvalidType(f"faults must be a sequence of fault names ({', '.join(FAULTS)}), got {faults!r}")
    faults = tuple(faults)
    if not all(isinstance(f, str) for f in faults):
        raise InvalidType(f"faults must be a sequence of fault names ({', '.join(FAULTS)}), got {faults!r}")
    return faults
#: Faults that exist only in one generation's code.
FAULT_POLICIES = {"bytes_as_pages": ("v4.13",), "retry_forever": ("v5.2",)}


def _node_cpus(topology, node_cpus, default) -> dict:
    """Validate ``node_cpus`` (node id -> CPUs, each node with memory at most once, 0..4096 CPUs); None is
    ``default``, the machine's own (its boot log's, :func:`pgdefer.generations.resolve`)."""
    if node_cpus is None:
        node_cpus = default
    if not hasattr(node_cpus, "items"):
        raise InvalidArgument(f"node_cpus must map node ids to CPU counts, got {node_cpus!r}")
    out = {}
    for nid, cpus in list(node_cpus.items()):
        nid, cpus = _int(nid, "node_cpus node"), _int(cpus, "node_cpus CPUs")
        # Validated here because Python ints may be negative; the messages are the core's own (a test pins them).
        if nid not in topology.nodes:
            raise InvalidArgument(
                f"node_cpus: node {nid} has no memory in this topology (nodes: {sorted(topology.nodes)})")
        if not 0 <= cpus <= _core.MAX_CPUS:
            raise InvalidArgument(f"node_cpus: node {nid} needs 0..{_core.MAX_CPUS} CPUs, got {cpus}")
        out[nid] = cpus
    return out


class Machine:
    """A machine booting with deferred struct page init under one kernel ``policy``.

    >>> m = Machine(topology, policy="v4.17")
    >>> m.boot()                       # free_area_init .. memblock_free_all: the window opens
    >>> pfn = m.alloc_pages(order=0)   # may grow the deferred zone on demand
    >>> m.page_alloc_init_late()       # per-node passes on threads, then the static key goes off

    Host threads: the allocator calls (alloc_pages, free_pages, deferred_grow_zone, free_reserved_area,
    read_page) run on a simulated workload CPU, ``cpu=0..cpus-1``. Without ``cpu=`` a call runs on CPU 0,
    and only the host thread that created the machine may do that: any other thread (a ``threading.Thread``, a
    point callback on a pass thread) gets InvalidArgument until it says ``cpu=``, so that two threads never
    race for CPU 0. Give each thread its own CPU (``Machine(t, cpus=N)``); CPU 0 also runs boot() and
    page_alloc_init_late().
    """

    #: The deliberate bugs ``faults=`` accepts.
    FAULTS = FAULTS

    def __init__(self, topology: Topology, policy: str = _core.DEFAULT_POLICY, cpus: int = 1, grow_irqsave: bool = True,
                 faults=(), fail_pass=None, panic_pass=None, node_cpus=None, host_threads=None,
                 host_check: bool = True, memmap: str = "dense", early_prefix: int | str | None = None):
        """``cpus``: simulated CPUs that run allocations (0 is the boot CPU); each node's pgdatinit
        thread runs on a CPU of its own numbered after them. ``grow_irqsave=False`` takes the grow lock
        with plain spin_lock, as the first posting did. ``faults``: deliberate bugs to show the checks
        catch them — "trust_snapshot" (grow trusts its unlocked read of first_deferred_pfn),
        "keep_key" (the static key is never disabled), "bytes_as_pages" (v4.13's prefix compensation in the
        4.13/4.14 units: reserved bytes added to a page count, spec §8 B4), "retry_forever" (5.2+ grow as 5.2
        shipped: True with nothing left to grow; the endless retry raises DeadlockDetected, spec §8 B12).
        ``fail_pass=(node, after_pages)``: that node's per-node pass fails midway (page_alloc_init_late raises
        WorkerFailed); ``panic_pass=node``: that node's worker thread panics midway through its pass (also
        WorkerFailed, never a PanicException).
        ``policy``: a kernel generation (``pgdefer.POLICIES``) or ``"auto"``, the one the CLI defaults to: the
        generation of the kernel in the topology's boot log (``topology.kernel``, also kept in a topology file
        imported from a log), of its preset or of this host (:func:`pgdefer.generations.resolve`; v4.17 when
        none is known).
        ``node_cpus``: CPUs per node, a mapping node -> count (default: the CPUs per node of the topology's
        boot log, ``topology.kernel.node_cpus``, else none), which sets padata's ``max_threads = max(cpus, 1)``
        in the 5.8+ passes; worker k >= 1 of a node runs on a simulated helper CPU of its own (``node_workers()``).
        ``host_threads``: how many host threads the per-node passes may use at once (default: this
        host's CPUs); simulated padata workers beyond that share host threads.
        ``host_check=False`` builds a machine whose page array exceeds this host's MemAvailable (refused by
        default with HostMemoryError): the arrays are mapped lazily, so a run that stops early (boot() only)
        touches just what it initialises, while check() or the per-node passes touch every struct page.
        ``memmap``: "dense" (every struct page has its bytes: the reference) or "compact" (a sparsemem section
        whose pages are all untouched, all initialised by one boot path, or all free in a run of MAX_ORDER
        blocks costs a summary, and becomes dense when something touches it unevenly; docs/model.md). The
        per-page state is the same; a compact machine is not refused for host memory up front.
        ``early_prefix``: v4.2's fixed early prefix per node (bytes or a size such as "4G", a whole number of
        pages) instead of 2 GiB: the 24 TB DragonHawk ran out of memory with 2 GiB and booted with 4 GiB (spec
        §6.1 M4). Policy v4.2 only."""
        _topology(topology)
        # The policy name (and "auto") is the resolver's, which the CLI asks too; the core checks the name again.
        # Faults are Python's alone. The counts and node ids below are checked here because Python ints may be
        # negative or huge; the core checks them too, with the same class and messages (tests/test_core_facts.py
        # pins them equal).
        _str(policy, "policy")
        resolved = resolve(topology, policy)
        policy = resolved.policy
        faults = _faults(faults)
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise InvalidArgument(f"unknown fault(s) {sorted(unknown)}: expected {', '.join(FAULTS)}")
        for f in faults:
            if policy not in FAULT_POLICIES.get(f, (policy,)):
                raise InvalidArgument(
                    f"fault {f!r} is a bug of policy {' / '.join(FAULT_POLICIES[f])}, not of {policy!r}")
        cpus = _int(cpus, "cpus")
        if not 1 <= cpus <= _core.MAX_CPUS:
            raise InvalidArgument(f"cpus must be in 1..{_core.MAX_CPUS}, got {cpus}")
        if fail_pass is not None:
            if not isinstance(fail_pass, (tuple, list)) or len(fail_pass) != 2:
                raise InvalidArgument(f"fail_pass={fail_pass!r}: needs a pair (node, after_pages)")
            fail_pass = (_int(fail_pass[0], "fail_pass node"), _u64(fail_pass[1], "fail_pass pages"))
            if fail_pass[0] not in topology.nodes:
                raise InvalidArgument(f"fail_pass={fail_pass!r}: needs (a node with memory, pages >= 0)")
        if panic_pass is not None:
            panic_pass = _int(panic_pass, "panic_pass")
            if panic_pass not in topology.nodes:
                raise InvalidArgument(f"panic_pass={panic_pass!r}: not a node with memory")
        node_cpus = _node_cpus(topology, node_cpus, resolved.node_cpus)
        if host_threads is not None:
            host_threads = _int(host_threads, "host_threads")
            if not 1 <= host_threads <= _core.MAX_CPUS:
                raise InvalidArgument(f"host_threads must be in 1..{_core.MAX_CPUS}, got {host_threads}")
        if early_prefix is not None:
            from .config import parse_size

            size, page = parse_size(early_prefix, "early_prefix"), topology.geometry.page_size
            if size == 0 or size % page:  # the core refuses it for a policy without a fixed prefix
                raise InvalidArgument(f"early_prefix={early_prefix!r}: v4.2's fixed prefix must be a positive whole "
                                      f"number of {page}-byte pages")
            early_prefix = size // page
        if memmap not in ("dense", "compact"):
            raise InvalidArgument(f"memmap={memmap!r}: expected 'dense' or 'compact'")
        self._compact = memmap == "compact"
        self._pages_version = None
        self.topology = topology
        self._core = _core.Machine(
            _layout(topology), policy, cpus=cpus, grow_irqsave=bool(grow_irqsave),
            trust_snapshot="trust_snapshot" in faults,
            keep_key="keep_key" in faults, fail_pass=fail_pass, panic_pass=panic_pass,
            bytes_as_pages="bytes_as_pages" in faults, retry_forever="retry_forever" in faults,
            node_cpus=sorted(node_cpus.items()), host_threads=host_threads, host_check=bool(host_check),
            compact=self._compact, early_prefix=early_prefix,
        )
        self._pages = None
        # Fixed for the machine's life: cached so that argument checks stay cheap on hot paths.
        self._nodes = [n["node"] for n in self._core.nodes()]
        self._node_set = frozenset(self._nodes)
        self._cpu_slots = self._core.nr_cpu_slots
        self._nr_cpus = self._core.nr_cpus
        # cpu=None means CPU 0 on this thread only (Machine._cpu).
        self._owner_thread, self._owner_name = threading.get_ident(), threading.current_thread().name
        self._max_order = topology.geometry.max_order

    # -- boot phases -------------------------------------------------------------------------

    def boot(self) -> None:
        """free_area_init, memmap_init (the defer rule), memblock_free_all. The on-demand window opens.

        Ctrl-C (on the main thread) stops it within a second: KeyboardInterrupt is raised and the machine,
        half booted, is marked ``interrupted`` (every later boot phase or allocation is a PhaseError)."""
        self._core.boot()

    def progress(self) -> tuple:
        """(stage, pages done, memmap pages) of the long operation running now, readable from another
        thread: "boot" or "page_alloc_init_late" with the struct pages initialised so far, "check" with
        those checked, "idle" between operations."""
        return self._core.progress()

    def page_alloc_init_late(self, threads: bool = True) -> None:
        """Run each node's deferred_init_memmap pass (on one thread per node unless ``threads=False``),
        then disable the static key as the policy says. In the padata generations (5.8+) each pass's
        chunks run on real host threads too (at most ``host_threads`` at once); ``threads=False`` is the
        deterministic mode: nodes in order, each job's chunks in ascending order on the calling thread,
        chunk k of a job attributed to worker ``k % nworks`` (docs/model.md §11.6). Ctrl-C stops it as it
        stops ``boot``, leaving the machine ``interrupted``."""
        self._core.page_alloc_init_late(bool(threads))

    def node_workers(self) -> dict:
        """{node id: {"cpus", "max_threads", "helper_cpus"}}: each node's CPUs, padata's max_threads in
        its pass (5.8+) and the simulated CPUs of its helper workers 1.. (worker 0 is the pgdatinit CPU)."""
        return {nid: {"cpus": cpus, "max_threads": mt, "helper_cpus": helpers}
                for nid, cpus, mt, helpers in self._core.node_workers()}

    # -- the allocator -------------------------------------------------------------------------

    def _order(self, order):
        order = _int(order, "order")
        if not 0 <= order <= self._max_order:
            raise OrderError(f"order {order} is outside 0..MAX_PAGE_ORDER ({self.geometry.max_order})")
        return order

    def _node(self, node, required=False):
        if node is None:
            if required:
                raise InvalidType("node must be an int (a node id), got None")
            return None
        node = _int(node, "node")
        if node not in self._node_set:
            raise UnknownNode(f"node {node} has no memory in this machine (nodes: {self._nodes})")
        return node

    def _cpu(self, cpu):
        """The workload CPU (0..cpus-1) an allocator call runs on. ``cpu=None`` is CPU 0 on the host thread that
        created the machine; any other host thread must say which CPU it is (never a race for CPU 0)."""
        if cpu is None:
            if threading.get_ident() == self._owner_thread:
                return 0
            own = ("this Machine has only CPU 0: create it with Machine(..., cpus=N) and give each thread a CPU "
                   "1..N-1 of its own" if self._nr_cpus == 1 else
                   f"give each thread a workload CPU of its own, 1..{self._nr_cpus - 1}")
            raise InvalidArgument(
                f"host thread {threading.current_thread().name!r} needs cpu=: without it a call runs on CPU 0, "
                f"which belongs to the thread that created this Machine ({self._owner_name!r}); {own}")
        cpu = _int(cpu, "cpu")
        if not 0 <= cpu < self._nr_cpus:
            nr, helpers = self._nr_cpus, self._nr_cpus + len(self._nodes)
            what = ("does not exist" if not 0 <= cpu < self._cpu_slots else
                    "is a per-node pass CPU (pgdatinit)" if cpu < helpers else "is a padata helper CPU")
            raise InvalidArgument(
                f"cpu {cpu} {what}: allocations run on the workload CPUs 0..{nr - 1} of Machine(cpus={nr})"
                f"{'' if cpu < 0 else f'; Machine(..., cpus={cpu + 1}) has CPU {cpu}'}")
        return cpu

    def _any_cpu(self, cpu):
        """Any simulated CPU, pass and helper CPUs included (an interrupt may arrive on any of them)."""
        cpu = _int(cpu, "cpu")
        if not 0 <= cpu < self._cpu_slots:  # the core's check_cpu, with its message (a test pins them equal)
            nr = self._nr_cpus
            helpers = nr + len(self._nodes)
            raise InvalidArgument(f"cpu {cpu} does not exist: CPUs 0..{nr} run workloads, {nr}..{helpers} the per-node"
                                  f" passes, {helpers}..{self._cpu_slots} their padata helpers")
        return cpu

    @staticmethod
    def _zone(zone, required=False):
        if zone is None and required:
            raise UnknownZone(f"a zone name is needed: one of {', '.join(ZONE_NAMES)}")
        if zone is not None and (not isinstance(zone, str) or zone not in ZONE_NAMES):
            raise UnknownZone(f"unknown zone {zone!r}: expected one of {', '.join(ZONE_NAMES)}")
        return zone

    def alloc_pages(self, order: int = 0, node: int | None = None, zone: str | None = None,
                    cpu: int | None = None, migratetype="Unmovable") -> int:
        """Allocate a 2^order block; returns its first pfn. ``zone`` is the highest zone allowed
        (None = Normal, as GFP_KERNEL); ``node`` the preferred node (None = the lowest id); ``migratetype``
        the free lists asked for (``gfp_migratetype``: Unmovable for GFP_KERNEL, Movable, Reclaimable; see
        :mod:`pgdefer.gfp`), falling back to the others as ``__rmqueue_fallback`` does.
        Raises OutOfMemory when no zone of the zonelist can satisfy it, even after growing."""
        return self._core.alloc_pages(self._order(order), self._node(node), self._zone(zone), self._cpu(cpu),
                                      _migratetype_arg(migratetype))

    def free_pages(self, pfn: int, order: int = 0, cpu: int | None = None) -> None:
        """Free a block returned by alloc_pages (BadFree if ``pfn`` is not such a block of ``order``)."""
        self._core.free_pages(_u64(pfn, "pfn"), self._order(order), self._cpu(cpu))

    def deferred_grow_zone(self, node: int, zone: str, order: int = 0, cpu: int | None = None) -> bool:
        """Call the policy's deferred_grow_zone directly (the allocator hooks call it on failure)."""
        zone = self._zone(zone, required=True)
        return self._core.deferred_grow_zone(self._node(node, required=True), zone, self._order(order),
                                             self._cpu(cpu))

    # -- concurrency: CPUs, interrupts, named points --------------------------------------------

    @property
    def cpus(self) -> int:
        """Simulated CPUs that run allocations."""
        return self._core.nr_cpus

    def raise_irq(self, cpu: int, order: int = 0, node: int | None = None, zone: str | None = None):
        """Queue an allocation in hard-interrupt context on ``cpu``. It runs at that CPU's next
        interrupt point with interrupts enabled (between operations, while spinning on a lock, between
        sections inside grow when the lock left interrupts on, or when a lock taken irqsave is released).
        Returns a handle: ``.done``, ``.result()`` (the pfn, or the allocation's error)."""
        return self._core.raise_irq(self._any_cpu(cpu), self._order(order), self._node(node), self._zone(zone))

    def deliver_irqs(self, cpu: int) -> None:
        """Deliver what is pending on ``cpu`` now, as an idle CPU with interrupts on would."""
        self._core.deliver_irqs(self._any_cpu(cpu))

    def at(self, point: str, callback, node: int | None = None, once: bool = True) -> None:
        """Stop at a named point and run ``callback(point, node, cpu)`` there, on the thread that reached
        it; the callback may issue operations (on other CPUs). Points: ``pgdefer.POINTS``.
        An exception in the callback belongs to the operation that reached the point (on a per-node pass
        thread: to page_alloc_init_late), on its own thread, and is raised when that operation returns:
        ``alloc_pages`` first frees the block it got (nothing is handed out, no page is lost); any other
        operation completes and then raises. Calling boot() or page_alloc_init_late() from a callback,
        or while a CPU stopped at a point holds a lock, is a PhaseError; a wait that can never end (a CPU
        waiting for a lock this thread holds, or a cycle of host threads waiting for each other) is
        DeadlockDetected, never a hang."""
        if not callable(callback):
            raise InvalidType(f"callback must be callable, got {callback!r}")
        self._core.at(_str(point, "point"), callback, self._node(node), bool(once))

    def clear_points(self) -> None:
        """Remove every callback registered with ``at``."""
        self._core.clear_points()

    def allocations(self) -> list[tuple[int, int]]:
        """The allocation ledger: every block alloc_pages handed to a caller (a call, an interrupt's
        handle, a workload stream) and that was not freed, as ``(pfn, order)`` sorted by pfn. check()
        reports an ALLOCATED page outside it as lost."""
        return self._core.allocations()

    def cpu_states(self) -> list:
        """Per CPU: dicts with irqs_disabled, in_atomic, pending_irqs."""
        return [dict(cpu=i, irqs_disabled=a, in_atomic=b, pending_irqs=c)
                for i, (a, b, c) in enumerate(self._core.cpu_states())]

    def lock_owners(self) -> dict:
        """{lock name: CPU holding it, or None}."""
        return self._core.lock_owners()

    def free_initmem(self) -> None:
        """free_initmem(): the __init text, deferred_grow_zone included, is gone afterwards."""
        self._core.free_initmem()

    def free_reserved_area(self, start_pfn: int, end_pfn: int, cpu: int | None = None) -> int:
        """free_reserved_area()/memblock_free_late() of reserved pfns [start, end). Rejected while a
        page in the same MAX_ORDER blocks is still deferred (B20). Returns pages freed."""
        return self._core.free_reserved_area(_u64(start_pfn, "start_pfn"), _u64(end_pfn, "end_pfn"), self._cpu(cpu))

    def read_page(self, pfn: int, cpu: int | None = None) -> tuple:
        """(state, zone, node) of a struct page, as early code reading it would;
        UninitialisedAccess (and a recorded I6 violation) if it was never initialised."""
        return self._core.read_page(_u64(pfn, "pfn"), self._cpu(cpu))

    def run_workload(self, streams, seed: int = 0, late_init_after: int | None = None) -> dict:
        """Run allocation streams on real threads, one per simulated CPU, in Rust.

        ``streams``: dicts with ``cpu``, ``count``, ``orders`` (list, drawn uniformly), optional ``node``,
        ``zone``, ``free_percent`` (chance after each allocation of freeing a random held block).
        ``late_init_after=n`` races page_alloc_init_late, started once n allocations were attempted (or
        when the streams end, if they attempt fewer). Streams must use distinct CPUs, and not CPU 0 when
        racing late init (CPU 0 runs it).
        Returns totals (allocs, failures, frees, host_ns), per-stream tuples and late_init ("ok" or the
        error text)."""
        if isinstance(streams, (str, bytes, dict)) or not hasattr(streams, "__iter__"):
            raise InvalidType(f"streams must be a list of dicts, got {streams!r}")
        parsed = []
        for i, s in enumerate(streams):
            if not isinstance(s, dict):
                raise InvalidType(f"stream {i} must be a dict with cpu, count, orders, ..., got {s!r}")
            unknown = sorted(map(str, set(s) - _STREAM_KEYS))
            if unknown or "cpu" not in s:
                raise InvalidArgument(f"stream {i}: " + (f"unknown key(s) {unknown}; " if unknown else "no 'cpu'; ")
                                      + f"keys: {', '.join(sorted(_STREAM_KEYS))} (cpu is required)")
            orders = s.get("orders", [0])
            if isinstance(orders, (str, bytes)) or not hasattr(orders, "__iter__"):
                raise InvalidType(f"stream {i}: orders must be a list of orders, got {orders!r}")
            orders = [self._order(o) for o in orders]
            free_percent = _int(s.get("free_percent", 0), "free_percent")
            if not 0 <= free_percent <= 100:
                raise InvalidArgument(f"stream {i}: free_percent must be in 0..100, got {free_percent}")
            parsed.append((self._cpu(s["cpu"]), _u64(s.get("count", 0), "count"), orders, self._node(s.get("node")),
                           self._zone(s.get("zone")), free_percent))
        if late_init_after is not None:
            late_init_after = _u64(late_init_after, "late_init_after")
        return self._core.run_workload(parsed, _int(seed, "seed") & U64_MAX, late_init_after)

    # -- state ---------------------------------------------------------------------------------

    @property
    def geometry(self):
        """The topology's Geometry (page, section and pageblock sizes, MAX_PAGE_ORDER)."""
        return self.topology.geometry

    @property
    def memory_line(self):
        """What ``mem_init_print_info()`` printed, once it has (docs/model.md §11.9): ``{"at":
        "memblock_free_all" | "page_alloc_init_late", "available": free pages of all zones then,
        "physpages": present pages of all nodes}``; None before the generation's print point."""
        return self._core.memory_line()

    @property
    def policy(self) -> str:
        """The policy (kernel generation) this machine models, e.g. "v4.17"."""
        return self._core.policy

    @property
    def phase(self) -> str:
        """"created", "booted", "late_init", "late_init_done", "failed" or "interrupted" (Ctrl-C ended a boot
        phase half way)."""
        return self._core.phase

    @property
    def nodes(self) -> list:
        """Ids of the nodes with memory, ascending."""
        return list(self._nodes)

    def node_info(self) -> list:
        """Per node: node, start_pfn, end_pfn, spanned, present, deferred_zone, first_deferred_pfn."""
        return self._core.nodes()

    def first_deferred_pfn(self, node: int):
        """The node's first_deferred_pfn, or None when nothing is deferred (ULONG_MAX)."""
        return self._core.first_deferred_pfn(self._node(node, required=True))

    @property
    def deferred_pages_enabled(self) -> bool:
        """The static key ``deferred_pages`` (always False for policies without on-demand growth)."""
        return self._core.deferred_pages_enabled

    def zone(self, node: int, name: str) -> ZoneInfo:
        """Span and counters of zone ``name`` (one of ``pgdefer.ZONE_NAMES``) of ``node``."""
        d = self._core.zone(self._node(node, required=True), self._zone(name, required=True))
        d["nr_free"] = tuple(d["nr_free"])
        return ZoneInfo(**d)

    def zones(self) -> list:
        """Every zone of every node with spanned pages."""
        return [self.zone(n["node"], z.name) for n in self.node_info() for z in self.topology.zones(n["node"])]

    def free_list(self, node: int, zone: str, order: int, migratetype=None) -> list:
        """Block-head pfns on the zone's free list of ``order`` and ``migratetype``, head first; without a
        migratetype, every migratetype's list in :data:`pgdefer.gfp.MIGRATETYPES` order."""
        mt = None if migratetype is None else _migratetype_arg(migratetype)
        return self._core.free_list(self._node(node, required=True), self._zone(zone, required=True),
                                    self._order(order), mt)

    def pagetypeinfo(self, node: int, zone: str) -> dict:
        """``/proc/pagetypeinfo`` of one zone: {migratetype: free blocks per order}."""
        return dict(self._core.pagetypeinfo(self._node(node, required=True), self._zone(zone, required=True)))

    def setup_per_cpu_pageset(self) -> None:
        """``setup_per_cpu_pageset()`` (start_kernel, after memblock_free_all, long before page_alloc_init_late):
        every populated zone's per-CPU lists get the generation's batch and high from its managed pages now
        (docs/model.md §5.3). Until then they are the boot pageset (batch 1, high 0: nothing stays on a list);
        page_alloc_init_late() sets them up first if nobody did. A second call is a PhaseError."""
        self._core.setup_per_cpu_pageset()

    def drain_all_pages(self) -> int:
        """``drain_all_pages(NULL)``: every CPU's per-CPU lists of every zone back to the buddy lists (the
        allocator does this itself once before it gives up). Returns the pages drained."""
        return self._core.drain_all_pages()

    def pcp(self, node: int, zone: str, cpu: int = 0) -> dict:
        """One CPU's per-CPU lists of a zone: ``{"count", "batch", "high", "lists"}``, where ``lists[order][t]``
        are the block-head pfns of order ``order`` and type ``t`` (Unmovable, Movable, Reclaimable), head first,
        for the orders the generation keeps there (0 before 5.10's policies, 0..3 from ``v5.10``)."""
        return dict(self._core.pcp(self._node(node, required=True), self._zone(zone, required=True),
                                   self._any_cpu(cpu)))

    @property
    def pages(self) -> PageView:
        """Read-only numpy views of the struct-page array (see PageView), made on first use (on a compact
        memmap: decoded copies, made again once the machine has changed)."""
        version = self._core.page_version
        if self._pages is None or (self._compact and (version is None or version != self._pages_version)):
            self._pages = PageView(self._core, self.geometry.pageblock_order)
            self._pages_version = version
        return self._pages

    @property
    def memmap(self) -> str:
        """The page array's representation: "dense" (per-page bytes for every struct page, the reference) or
        "compact" (sections in one uniform state kept as a summary)."""
        return "compact" if self._compact else "dense"

    def memmap_census(self) -> dict | None:
        """Sections of a compact memmap by kind: ``zero`` (never touched), ``dense``, ``init`` (initialised
        whole, not yet freed), ``free_run`` (a run of free MAX_ORDER blocks), and ``decoded``: how many summaries
        were made dense again so far (a page in them touched unevenly); None for a dense memmap."""
        census = self._core.memmap_census()
        return None if census is None else dict(census)

    def page_arrays(self) -> dict:
        """Decoded copies of the page array (plain numpy arrays, one entry per struct page, with its pfn), keyed as
        the oracle's page_arrays()."""
        p = self.pages
        return {k: np.array(getattr(p, k)) for k in ("pfn", "state", "zone", "node", "init_count", "order", "init_by")}

    def pageblock_migratetypes(self) -> dict:
        """{pageblock index (pfn >> pageblock_order): migratetype name} for every pageblock whose type is set
        (the ``pageblock_mt`` byte is 0 for unset, else the kernel's value + 1)."""
        mt = self._core.raw_view("pageblock_mt")
        shift = self.geometry.pageblock_order
        out = {}
        for s, e, base in self.pages.chunks:
            first = base >> shift
            for k in np.nonzero(mt[first:first + ((e - s) >> shift)])[0]:
                out[(s >> shift) + int(k)] = _migratetype(int(mt[first + k]))
        return out

    @property
    def events(self) -> list[Event]:
        """Event dicts in order (early_init, memblock_free_all, grow, deferred_init, key_disable, ...; the
        fields of each kind: ``_core.EVENT_KINDS``); ``t_ns`` is host time since the machine was created,
        ``cpu`` the simulated CPU. Modelled times: :meth:`events_frame` or ``analysis.event_rows``."""
        return [Event(e) for e in self._core.events()]

    def events_frame(self, cost: CostModel | None = None, pass_threads: int = 1) -> Any:
        """The events as a pandas DataFrame, one row each in order: ``seq``, ``kind``, ``cpu``, host time
        ``t_ns``, modelled time ``t_model_ms`` (when the event is logged) and ``model_ms`` (the modelled
        duration of its work), then every kind's fields (missing ones are NA). ``cost``: the cost model of the
        modelled times (default: the generic one). Needs pandas (``pip install 'pgdefer[sweep]'``)."""
        from .analysis import EVENT_COLUMNS, event_rows
        from .costmodel import DEFAULT_COST, CostModel  # noqa: F811 - at run time, lazily

        try:
            import pandas as pd
        except ImportError:
            raise ImportError("events_frame() needs pandas: pip install 'pgdefer[sweep]'") from None
        if cost is not None and not isinstance(cost, CostModel):
            raise InvalidArgument(f"cost must be a pgdefer.costmodel.CostModel, got {cost!r}")
        threads = _int(pass_threads, "pass_threads")
        if not 1 <= threads <= _core.MAX_CPUS:
            raise InvalidArgument(f"pass_threads must be in 1..{_core.MAX_CPUS}, got {threads}")
        rows = event_rows(self, cost or DEFAULT_COST, threads)
        df = pd.DataFrame(rows, columns=list(rows[0]) if rows else list(EVENT_COLUMNS))
        for col in df.columns:  # ints with gaps stay ints (nullable), not floats
            if col not in ("t_model_ms", "model_ms") and pd.api.types.is_numeric_dtype(df[col]) \
                    and not pd.api.types.is_bool_dtype(df[col]):
                df[col] = df[col].astype("Int64")
        return df

    @property
    def stats(self) -> dict:
        """Counters of the run so far (grows, pages initialised by each path, allocations, ...), by name."""
        return self._core.stats()

    @property
    def violations(self) -> list:
        """Bugs the model caught while running (double init, merge with an uninitialised buddy, ...)."""
        return self._core.violations()

    def check(self) -> None:
        """Raise InvariantViolation listing every broken invariant (spec §7); None when all hold."""
        from .errors import InvariantViolation

        problems = self._core.check()
        if problems:
            raise InvariantViolation(problems)

    def report(self) -> str:
        """dmesg-style text of what happened."""
        from .report import dmesg_report

        return dmesg_report(self)

    def __repr__(self):
        nodes = self.node_info()
        fdps = ", ".join(f"{n['node']}:{'-' if n['first_deferred_pfn'] is None else hex(n['first_deferred_pfn'])}"
                         for n in nodes)
        return (f"<Machine policy={self.policy!r} phase={self.phase} nodes={len(nodes)}"
                f" pages={self.topology.memmap_pages} first_deferred_pfn {{{fdps}}}"
                f" key={'on' if self.deferred_pages_enabled else 'off'}>")

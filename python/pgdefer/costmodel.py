"""Modelled time: what a target machine would spend, from the work each kernel generation does per page.

Host time is what the Rust core really spends here; modelled time is this cost model applied to the pages
each step touched. Reports label every figure with which kind of time it is, and modelled figures with the
machine class and generation used (:meth:`CostModel.label`). docs/costmodel.md derives the model.

Per page, one thread of a per-node pass (``deferred_init_memmap``) pays

* ``S / thread_gbps`` ns to write the ``struct page`` of ``S`` bytes (``__init_single_page``);
* the free's second touch of the same descriptor (``__free_pages_core``): cold (``cold_touch`` of the write:
  the line was evicted and is fetched again) when the generation inits a whole range before freeing it
  (4.15-5.1 two-pass; M10: 1.85 s -> 1.38 s from Duyck's MAX_ORDER patch alone), cache-hot (``hot_touch``) when
  it frees right behind the init (5.2+ ``deferred_init_maxorder``, 4.2-4.14 single pass);
* ``pfn_check_ns`` in the 4.15-5.1 two-pass walk: the per-page work Duyck's 5.2 series removed before its
  MAX_ORDER patch (``mm_zero_struct_page`` as a ``memset`` call, ``meminit_pfn_in_nid`` and the other per-pfn
  checks of ``deferred_pfn_valid``; M10: 3.75 s -> 1.85 s). Before 4.15 the memmap was zeroed when it was
  allocated, outside the pass;
* ``free_call_ns`` per call into the buddy allocator, one call per aligned pageblock (``pageblock`` frees,
  4.8-6.3), per aligned MAX_ORDER block (``max_order`` frees, 6.4+), and per page for the rest of a range;
* switches: KASAN (``kasan_ns_per_page``, spec §6.1 M9) and ``init_on_free`` (clearing the page itself).

Several threads (padata, 5.8+) share two ceilings that belong to the machine, not to a thread count: the
socket's memory bandwidth (``bw_efficiency x dram_gbps`` shared by the nodes of a socket, divided by the DRAM
bytes each page needs) and ``zone->lock``, taken once per buddy free and moved between cores
(``LOCK_LINES x line_ns`` per free). padata's workers are the node's CPUs, SMT siblings included: beyond one
worker per core (``threads_per_core`` of the class), a worker adds ``smt_gain`` of a thread. Helpers start
one after another (``thread_start_us``; ``thread_start_vm_us`` in a guest, where waking a vCPU exits to the
host); each pass pays ``pass_overhead_ms``. Passes run with IRQs off (4.17-5.6) may be printed as one frozen
jiffy (spec §5.8, M11): :class:`PassCost` keeps that "as printed" figure apart from the modelled time.

The fitted constants (``thread_gbps`` per machine class and the shared ones) live in ``costdata/fitted.json``,
written by ``pgdefer calibrate --write`` (:mod:`pgdefer.calibration`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources

from ._core import DEFAULT_POLICY
from ._intervals import clip, length, subtract
from .config import Geometry
from .errors import PgdeferError

#: Cache lines moved between cores per buddy free under contention: the ``zone->lock`` word, the zone's
#: ``free_area[order]`` list head with ``nr_free``, and ``zone->managed_pages`` (``__free_pages_core``).
#: Read from the code (mm/page_alloc.c), not fitted.
LOCK_LINES = 3
#: One jiffy at HZ=1000 (x86 distribution kernels): what a pass printed with frozen jiffies shows (M11).
FROZEN_JIFFY_MS = 1.0
STRUCT_PAGE_BYTES = (56, 80)   # what the kernel's configurations allow (64 by default)


class CostModelError(PgdeferError, ValueError):
    """A bad machine class, cost override or cost-model data file."""


def _load(name: str) -> dict:
    try:
        return json.loads(resources.files("pgdefer.costdata").joinpath(name).read_text())
    except (OSError, ValueError) as e:
        raise CostModelError(f"cost model data file {name}: {e}") from None


@cache
def fitted_constants() -> dict:
    """``costdata/fitted.json``: the constants ``pgdefer calibrate --write`` fitted."""
    return _load("fitted.json")


# --------------------------------------------------------------------------------------------------
# what a generation does per page: from the policy facts the core exports
# --------------------------------------------------------------------------------------------------

#: Facts of ``_core.POLICY_FACTS`` the cost model reads, and the v4.17 pass assumed when a core does not export
#: one (listed in :attr:`Mechanics.assumed`). pass_walk: "two_pass" (init all, then free: cold) or a
#: MAX_ORDER/section walk (init+free per block: hot); pass_lock "whole_pass" = IRQs off for the whole pass;
#: free_runs "pageblock" or "max_order" (6.4+); padata_jobs "none" (one thread), "per_free_range" (5.8-6.17)
#: or "per_zone" (2025 rework).
FACT_DEFAULTS = {"defers": True, "pass_walk": "two_pass", "pass_lock": "whole_pass", "padata_jobs": "none",
                 "free_runs": "pageblock"}


def _core_policy_facts():
    from . import _core

    return getattr(_core, "POLICY_FACTS", None)


@dataclass(frozen=True)
class Mechanics:
    """The per-page work of one generation's per-node pass (kernel: ``deferred_init_memmap``)."""

    generation: str = DEFAULT_POLICY
    defers: bool = True
    hot_second_touch: bool = False      # free right behind the init (5.2+): the descriptor is still cached
    pfn_checks: bool = True             # before 5.2: per-pfn validity checks in the walk (removed by Duyck's series)
    free_order: str = "pageblock"       # "pageblock" (4.8-6.3) or "max_order" (4.2-4.7, 6.4+)
    padata: bool = False                # 5.8+: the pass is padata jobs over the node's CPUs
    job_per: str = "free_range"         # padata job per free range (5.8-6.17) or per zone (2025 rework)
    irqs_off: bool = True               # 4.17-5.6: node lock held with IRQs off for the whole pass
    assumed: tuple = ()                 # facts the core did not export (FACT_DEFAULTS used)

    @classmethod
    def from_policy(cls, policy: str) -> Mechanics:
        """Read the cost-relevant facts of ``policy`` from the core's policy table."""
        table = _core_policy_facts()
        facts = dict(table.get(policy, {})) if table is not None else {}
        assumed = tuple(k for k in FACT_DEFAULTS if k not in facts and not (k == "pass_lock" and
                                                                             "pass_holds_node_lock" in facts))
        f = {**FACT_DEFAULTS, **facts}
        irqs_off = f["pass_lock"] == "whole_pass" if "pass_lock" in facts or "pass_holds_node_lock" not in facts \
            else bool(facts["pass_holds_node_lock"])
        return cls(generation=policy, defers=bool(f["defers"]), hot_second_touch=f["pass_walk"] != "two_pass",
                   pfn_checks=f["pass_walk"] == "two_pass",
                   free_order=str(f["free_runs"]), padata=f["padata_jobs"] != "none",
                   job_per="zone" if f["padata_jobs"] == "per_zone" else "free_range",
                   irqs_off=irqs_off, assumed=assumed)


# --------------------------------------------------------------------------------------------------
# the padata job structure (spec §5.9)
# --------------------------------------------------------------------------------------------------

def padata_plan(size: int, min_chunk: int, max_threads: int) -> tuple:
    """(nworks, chunk) of ``padata_do_multithreaded`` for a job of ``size`` pages, align = min_chunk: the
    core's ``padata::Job::plan`` (src/padata.rs owns the formula, spec §5.9)."""
    from . import _core

    if size <= 0:
        return 0, 0
    return tuple(_core.padata_plan(int(size), max(int(min_chunk), 1), max(int(max_threads), 1)))


@dataclass(frozen=True)
class PassPlan:
    """The structure of one node's pass, which no cost constant changes: its pages, its buddy free calls and its
    padata jobs as ``(pages, nworks, chunks)`` (one job of one worker without padata)."""

    mech: Mechanics
    pages: int
    frees: int
    jobs: tuple
    threads: int = 1


def buddy_frees(ranges, mech: Mechanics, pageblock_order: int = Geometry.pageblock_order,
                max_order: int = Geometry.max_order) -> int:
    """Buddy free calls for the ranges: aligned whole blocks at the generation's order, the rest page by page."""
    unit = 1 << (max_order if mech.free_order == "max_order" else pageblock_order)
    n = 0
    for s, e in ranges:
        a, b = -(-s // unit) * unit, e // unit * unit
        n += (b - a) // unit + (a - s) + (e - b) if b > a else e - s
    return n


def pass_plan(ranges, threads: int = 1, mech: Mechanics | None = None,
              pages_per_section: int = Geometry().pages_per_section, pageblock_order: int = Geometry.pageblock_order,
              max_order: int = Geometry.max_order) -> PassPlan:
    """The :class:`PassPlan` of ``deferred_init_memmap`` over the free pfn ranges ``[(start, end), ...]`` with
    ``threads`` CPUs (padata ``max_threads``; ignored before padata)."""
    mech = mech or Mechanics()
    ranges = [(int(s), int(e)) for s, e in ranges if e > s]
    pages = sum(e - s for s, e in ranges)
    if pages == 0:
        return PassPlan(mech, 0, 0, ())
    if not mech.padata:
        jobs = [(pages, 1, 1)]
    else:
        sec = pages_per_section
        if mech.job_per == "zone":
            spans = [(ranges[0][0], ranges[-1][1])]
        else:  # one job per free range, its end rounded up to a section (spec §5.9)
            spans, first = [], 0
            for s, e in ranges:
                s = max(s, first)
                if s >= e:
                    continue
                first = -(-e // sec) * sec
                spans.append((s, first))
        jobs = []
        for s, e in spans:
            nworks, chunk = padata_plan(e - s, sec, threads)
            jobs.append((length(clip(ranges, s, e)), nworks, -(-(e - s) // chunk) if chunk else 0))
    return PassPlan(mech, pages, buddy_frees(ranges, mech, pageblock_order, max_order), tuple(jobs),
                    max(int(threads), 1))


# --------------------------------------------------------------------------------------------------
# machine classes
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MachineClass:
    """What a machine contributes to modelled time (``costdata/machine_classes.json`` + fitted rate)."""

    name: str
    description: str = ""
    arch: str = "x86_64"
    thread_gbps: float = 4.0            # per-thread memmap write rate, fitted (fitted.json)
    dram_gbps: float = 128.0            # peak DRAM bandwidth of one socket
    nodes_per_socket: int = 1           # nodes sharing a socket's bandwidth (SNC / NPS > 1)
    line_ns: float = 90.0               # core-to-core cache-line transfer (zone->lock ceiling)
    struct_page_bytes: int = 64
    page_size: int = Geometry.page_size
    virtualised: bool = False
    threads_per_core: int = 1           # SMT: padata's workers are all the node's CPUs, the siblings share a core
    source: str = ""
    fitted: bool = False                # thread_gbps fitted on anchors of this class (else the fleet default)

    def __post_init__(self):
        lo, hi = STRUCT_PAGE_BYTES
        if not lo <= self.struct_page_bytes <= hi:
            raise CostModelError(f"struct_page_bytes must be in {lo}..{hi}, got {self.struct_page_bytes}")
        for k in ("thread_gbps", "dram_gbps", "line_ns"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise CostModelError(f"{k} must be a positive number, got {v!r}")
        for k in ("nodes_per_socket", "threads_per_core"):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 1:
                raise CostModelError(f"{k} must be a positive integer, got {v!r}")


@cache
def _class_table() -> dict:
    return _load("machine_classes.json")["classes"]


def machine_class_names() -> list:
    return list(_class_table())


def machine_class(name: str, fitted: dict | None = None) -> MachineClass:
    """The named class with its fitted per-thread rate (``fitted`` defaults to fitted.json)."""
    table = _class_table()
    if name not in table:
        raise CostModelError(f"unknown machine class {name!r} (choose from {', '.join(table)})")
    c = table[name]
    fit = fitted_constants() if fitted is None else fitted
    rates = fit.get("thread_gbps", {})
    return MachineClass(name=name, description=c.get("description", ""), arch=c.get("arch", "x86_64"),
                        thread_gbps=float(rates.get(name, fit["default_thread_gbps"])),
                        dram_gbps=float(c["dram_gbps"]), nodes_per_socket=int(c.get("nodes_per_socket", 1)),
                        line_ns=float(c["line_ns"]), page_size=int(c.get("page_size", Geometry.page_size)),
                        virtualised=bool(c.get("virtualised", False)), source=c.get("source", ""),
                        threads_per_core=int(c.get("threads_per_core", 1)),
                        fitted=name in rates)


def class_for_preset(preset: str) -> str | None:
    for name, c in _class_table().items():
        if preset in c.get("presets", ()):
            return name
    return None


_HYPERVISOR = re.compile(r"Hypervisor detected: (\S+)")
_CPU0 = re.compile(r"smpboot: CPU0: (.+?)(?: \(family:|$)")


def class_for_cpu(model: str, virtualised: bool = False) -> str | None:
    """The class whose CPU patterns match ``model`` (preferring the one with the same virtualisation)."""
    hits = [n for n, c in _class_table().items() if any(re.search(p, model) for p in c.get("cpu_patterns", ()))]
    same = [n for n in hits if bool(_class_table()[n].get("virtualised", False)) == virtualised]
    return (same or hits or [None])[0]


def class_from_log_text(text: str) -> tuple:
    """(class name, reason) from a boot log: its CPU model line and hypervisor line."""
    virt = _HYPERVISOR.search(text)
    cpu = _CPU0.search(text.replace("\r", ""))
    model = cpu.group(1).strip() if cpu else None
    name = class_for_cpu(model, virt is not None) if model else None
    if name is not None:
        return name, f"CPU0 {model!r}" + (f", hypervisor {virt.group(1)}" if virt else "")
    generic = "generic-x86_64-kvm" if virt else "generic-x86_64"
    what = f"CPU0 {model!r} matches no class" if model else "the log names no CPU model"
    return generic, what + (f", hypervisor {virt.group(1)}" if virt else "")


def class_from_cpuinfo(path="/proc/cpuinfo") -> tuple:
    """(class name, reason) of this host from /proc/cpuinfo (``model name``, the ``hypervisor`` flag)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        return "generic-x86_64", f"{path}: {e.strerror or e}"
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    virt = re.search(r"^flags\s*:.*\bhypervisor\b", text, re.M) is not None
    name = class_for_cpu(model.group(1), virt) if model else None
    if name is None:
        name = "generic-x86_64-kvm" if virt else "generic-x86_64"
    return name, f"this host's CPU {model.group(1).strip()!r}" if model else "this host names no CPU model"


def class_for(topology, preset: str | None = None) -> tuple:
    """(class name, reason) for a machine: its preset, else its boot log (dmesg: topologies) or this host's
    /proc/cpuinfo (host topologies), else generic."""
    if preset is not None:
        name = class_for_preset(preset)
        if name is not None:
            return name, f"preset {preset}"
    boot = getattr(topology, "source", None)          # the DmesgBoot of a dmesg: topology
    path = getattr(boot, "path", None) if hasattr(boot, "early_node_ranges") else None
    if path:
        from .userfile import read_user_file

        return class_from_log_text(read_user_file(path, "boot log", CostModelError).decode("utf-8", "replace"))
    if hasattr(boot, "iomem") and hasattr(boot, "zoneinfo"):   # a HostInfo: Topology.from_host()
        return class_from_cpuinfo()
    return "generic-x86_64", "no preset or boot log names the hardware"


# --------------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PassCost:
    """One per-node pass in modelled time, with the padata structure that produced it."""

    ms: float
    pages: int
    jobs: int
    workers: int                 # most workers of one job (1: no padata, or every job too small)
    chunks: int                  # chunks over all jobs
    bound: str                   # what limited the largest job: "threads", "bandwidth", "zone->lock"
    printed_ms: float | None     # what a log may print: one frozen jiffy for IRQs-off passes, else None
    generation: str = ""
    machine_class: str = ""


@dataclass(frozen=True)
class CostModel:
    """Modelled time of early init, grows, memblock_free_all and the per-node passes on one machine class.

    ``constants`` are the shared fitted ones (fitted.json); ``kasan``/``init_on_free`` are the switches.
    """

    machine_class: MachineClass = field(default_factory=lambda: machine_class("generic-x86_64"))
    constants: dict = field(default_factory=lambda: dict(fitted_constants()["constants"]))
    kasan: bool = False
    init_on_free: bool = False
    class_reason: str = ""

    def __post_init__(self):
        # a cache miss never costs less than a hit: what makes a 5.2+ pass cheaper per page than a 4.17 one
        c = self.constants
        if "cold_touch" in c and "hot_touch" in c and float(c["cold_touch"]) < float(c["hot_touch"]):
            raise CostModelError(f"cold_touch ({c['cold_touch']}) must be at least hot_touch ({c['hot_touch']})")

    @property
    def name(self) -> str:
        return self.machine_class.name

    def label(self, generation: str | None = None) -> str:
        g = f", generation {generation}" if generation else ""
        sw = "".join(s for s, on in ((", KASAN", self.kasan), (", init_on_free", self.init_on_free)) if on)
        return f"machine class {self.name}{g}{sw}"

    # -- per page ---------------------------------------------------------------------------------
    def _c(self, key):
        return float(self.constants[key])

    def _init_ns(self) -> float:
        m = self.machine_class
        return m.struct_page_bytes / m.thread_gbps

    def thread_ns_per_page(self, mech: Mechanics, frees_per_page: float) -> float:
        """One thread's ns per page of init + free for this generation on this machine."""
        init = self._init_ns()
        t = init * (1 + self._c("hot_touch" if mech.hot_second_touch else "cold_touch"))
        t += self._c("free_call_ns") * frees_per_page
        if mech.pfn_checks:
            t += self._c("pfn_check_ns")
        if self.kasan:
            t += self._c("kasan_ns_per_page")
        if self.init_on_free:
            t += self.machine_class.page_size / self.machine_class.thread_gbps
        return t

    def _caps(self, mech: Mechanics, frees_per_page: float, nodes_sharing: int) -> tuple:
        """(bandwidth ceiling, zone->lock ceiling) in pages/ns for the threads of one node."""
        m = self.machine_class
        touches = 1 if mech.hot_second_touch else 2
        dram_bytes = m.struct_page_bytes * touches + (m.page_size if self.init_on_free else 0)
        bw = self._c("bw_efficiency") * m.dram_gbps / max(nodes_sharing, 1) / dram_bytes
        lock = 1.0 / (max(frees_per_page, 1e-12) * LOCK_LINES * m.line_ns)
        return bw, lock

    # -- one padata job ---------------------------------------------------------------------------
    @staticmethod
    def _job_ns(pages, workers, t_page, cap, start_ns, warm, cores=None, smt_gain=1.0):
        """Fluid time of one job: worker i joins at (i - warm + 1) x start_ns if it must be created (i >= warm,
        the caller is worker 0 and joins at once); each works at 1/t_page, together at most ``cap``."""
        done, t = 0.0, 0.0
        cores = workers if cores is None else cores
        joins = [0.0 if i < max(warm, 1) else (i - max(warm, 1) + 1) * start_ns for i in range(workers)]
        for k in range(1, workers + 1):
            t_next = joins[k] if k < workers else math.inf
            rate = min((min(k, cores) + smt_gain * max(0, k - cores)) / t_page, cap)
            if t_next > t and done + rate * (t_next - t) >= pages:
                return t + (pages - done) / rate
            done += rate * max(0.0, t_next - t)
            t = max(t, t_next)
        return t  # pragma: no cover - the last step always finishes

    def pass_cost(self, ranges, threads: int = 1, mech: Mechanics | None = None, nodes_sharing: int = 1,
                  pages_per_section: int = Geometry().pages_per_section,
                  pageblock_order: int = Geometry.pageblock_order, max_order: int = Geometry.max_order) -> PassCost:
        """Modelled ``deferred_init_memmap`` of one node over its free pfn ranges ``[(start, end), ...]``.

        ``threads``: CPUs the pass may use (padata ``max_threads``; ignored before padata). ``nodes_sharing``:
        nodes running their passes at once on this node's socket.
        """
        plan = pass_plan(ranges, threads, mech, pages_per_section, pageblock_order, max_order)
        return self.plan_cost(plan, nodes_sharing)

    def plan_cost(self, plan: PassPlan, nodes_sharing: int = 1) -> PassCost:
        """The modelled time of a :class:`PassPlan` (its structure) on this machine class."""
        mech, gen, cls = plan.mech, plan.mech.generation, self.name
        if plan.pages == 0:
            return PassCost(0.0, 0, 0, 0, 0, "threads", None, gen, cls)
        fpp = plan.frees / plan.pages
        t_page = self.thread_ns_per_page(mech, fpp)
        bw, lock = self._caps(mech, fpp, nodes_sharing)
        cap = min(bw, lock)
        start_ns = self._c("thread_start_vm_us" if self.machine_class.virtualised else "thread_start_us") * 1e3
        total, warm, most, chunks, bound, biggest = 0.0, 1, 1, 0, "threads", -1
        for job_pages, nworks, nchunks in plan.jobs:
            if job_pages == 0:
                continue
            cores = -(-plan.threads // self.machine_class.threads_per_core)
            total += self._job_ns(job_pages, nworks, t_page, cap, start_ns, warm, cores, self._c("smt_gain"))
            warm, most, chunks = max(warm, nworks), max(most, nworks), chunks + nchunks
            if job_pages > biggest:
                biggest = job_pages
                bound = "threads" if nworks / t_page <= cap else ("bandwidth" if bw <= lock else "zone->lock")
        ms = total / 1e6 + self._c("pass_overhead_ms")
        return PassCost(ms, plan.pages, len(plan.jobs), most, chunks, bound,
                        FROZEN_JIFFY_MS if mech.irqs_off else None, gen, cls)

    def pass_ms(self, pages: int, threads: int = 1, mech: Mechanics | None = None) -> float:
        """Modelled duration of a pass over one aligned free range of ``pages`` pages."""
        return self.pass_cost([(0, pages)], threads, mech).ms if pages else 0.0

    def grow_ms(self, pages: int, mech: Mechanics | None = None) -> float:
        """One ``deferred_grow_zone`` step on the allocating CPU: init + free as the generation's pass does."""
        if pages <= 0:
            return 0.0
        mech = mech or Mechanics()
        return pages * self.thread_ns_per_page(mech, 1 / 512) / 1e6

    def early_ms(self, pages: int) -> float:
        """Early ``memmap_init`` on the boot CPU: the struct pages are written, not yet freed."""
        return pages * self._init_ns() / 1e6

    def memblock_free_all_ms(self, pages: int, reserved: int = 0, max_order: int = Geometry.max_order) -> float:
        """``memblock_free_all`` on the boot CPU: ``reserve_bootmem_region`` touches the descriptor of each of the
        ``reserved`` pages (``SetPageReserved``; ``init_reserved_page`` for deferred ones), then the ``pages``
        released free pages' descriptors, written by early init, are touched again (cold) and freed in MAX_ORDER
        blocks (``__free_pages_memory``)."""
        return (pages * (self._init_ns() + self._c("free_call_ns") / (1 << max_order))
                + max(reserved, 0) * self._init_ns()) / 1e6

    def machine_memblock_free_all_ms(self, machine) -> float | None:
        """:meth:`memblock_free_all_ms` of a machine's ``memblock_free_all`` event (None before ``boot()``)."""
        e = next((e for e in machine.events if e["kind"] == "memblock_free_all"), None)
        if e is None:
            return None
        return self.memblock_free_all_ms(e["released"], e["reserved"], machine.topology.geometry.max_order)

    # -- building ---------------------------------------------------------------------------------
    def with_overrides(self, pairs) -> CostModel:
        """A copy with ``KEY=VALUE`` overrides: machine-class fields (thread_gbps, dram_gbps, nodes_per_socket,
        threads_per_core, line_ns, struct_page_bytes, page_size), fitted constants (hot_touch, cold_touch,
        pfn_check_ns, free_call_ns, pass_overhead_ms, thread_start_us, thread_start_vm_us, smt_gain, bw_efficiency,
        kasan_ns_per_page) and the switches kasan / init_on_free
        (0/1)."""
        mc, consts, sw = {}, dict(self.constants), {}
        ints = {"nodes_per_socket", "threads_per_core", "struct_page_bytes", "page_size"}
        for pair in pairs or ():
            key, sep, val = str(pair).partition("=")
            key = key.strip()
            if not sep:
                raise CostModelError(f"--cost {pair!r}: expected KEY=VALUE")
            try:
                if key in ("kasan", "init_on_free"):
                    if val.strip() not in ("0", "1", "true", "false"):
                        raise ValueError
                    sw[key] = val.strip() in ("1", "true")
                    continue
                num = int(val) if key in ints else float(val)
            except ValueError:
                raise CostModelError(f"--cost {key}: {val!r} is not a valid value") from None
            if key in ints | {"thread_gbps", "dram_gbps", "line_ns"}:
                mc[key] = num
            elif key in consts:
                if not (math.isfinite(num) and num >= 0):
                    raise CostModelError(f"--cost {key}: must be a non-negative number, got {val!r}")
                consts[key] = num
            else:
                known = sorted(ints | {"thread_gbps", "dram_gbps", "line_ns", "kasan", "init_on_free"} | set(consts))
                raise CostModelError(f"--cost {key}: unknown key (known: {', '.join(known)})")
        return replace(self, machine_class=replace(self.machine_class, **mc), constants=consts, **sw)

    def __repr__(self):
        m = self.machine_class
        return (f"CostModel({self.label()}: {m.thread_gbps:.2f} GB/s per thread, {m.dram_gbps:g} GB/s DRAM per "
                f"socket x {self._c('bw_efficiency'):.2f}, struct page {m.struct_page_bytes} B)")


def cost_model(class_name: str = "generic-x86_64", overrides=(), reason: str = "") -> CostModel:
    """A :class:`CostModel` for a named machine class with ``KEY=VALUE`` overrides."""
    return replace(CostModel(machine_class(class_name)), class_reason=reason).with_overrides(overrides)


DEFAULT_COST = CostModel()


# --------------------------------------------------------------------------------------------------
# a simulated machine's passes
# --------------------------------------------------------------------------------------------------

def node_pass_ranges(machine, node: int) -> list:
    """The free pfn ranges ``deferred_init_memmap`` of ``node`` walks: memblock memory minus reserved, in the
    node's deferred zone, from its ``first_deferred_pfn`` at the start of the pass (the last grow's, else early
    init's; from the events, so it also works after the pass)."""
    fdp, seen = None, False
    for e in machine.events:
        if e.get("node") != node:
            continue
        if e["kind"] in ("early_init", "grow"):
            fdp, seen = e["first_deferred_pfn"], True
    if not seen:
        fdp = machine.first_deferred_pfn(node)
    if fdp is None:
        return []
    topo = machine.topology
    g = topo.geometry
    zone = next((z for z in machine.zones() if z.node == node and z.deferred), None)
    hi = zone.end_pfn if zone is not None else topo.node_span(node)[1]
    reserved = [(g.pfn_down(r.start), g.pfn_up(r.end)) for r in topo.reserved]
    return subtract(clip([(s, e) for s, e, _ in topo.memory_pfn_ranges(node)], fdp, hi), reserved)


def machine_passes(machine, cost: CostModel = DEFAULT_COST, threads: int = 1) -> dict:
    """node -> :class:`PassCost` of every node that defers pages (predicted even before the passes ran)."""
    mech = Mechanics.from_policy(machine.policy)
    g = machine.topology.geometry
    nodes = [n["node"] for n in machine.node_info()]
    plans = {n: node_pass_ranges(machine, n) for n in nodes}
    running = max(1, sum(1 for r in plans.values() if r))
    sharing = min(running, cost.machine_class.nodes_per_socket)
    return {n: cost.pass_cost(r, threads, mech, sharing, g.pages_per_section, g.pageblock_order, g.max_order)
            for n, r in plans.items() if r}

//! The simulated machine: layout, page array, per-node and per-zone state, phases, events and counters,
//! and its construction. The allocator entry points are in `page_alloc`, CPUs/interrupts/locks/named
//! points in `points`, the boot paths in `deferred`.

use std::time::Instant;

use crate::buddy::{FreeArea, FreeMirror};
use crate::cpu::{Cpu, NamedLock};
use crate::error::{Error, Result};
use crate::events::{Event, Logged};
use crate::geometry::Geometry;
use crate::memblock::Region;
use crate::padata::Workers;
use crate::page::{PageArray, PageState};
use crate::pcp::PerCpuPages;
use crate::policy::Policy;
use crate::sync::{AtomicBool, AtomicU64, AtomicU8, Mutex, Ordering, StaticKey, ZoneLock};
use crate::topology::{Layout, NodeSpan, ZoneLimits, ZoneSpan, ZoneType};

use crate::page_alloc::zonelists_for;
use crate::points::PointHook;
pub use crate::points::{PointFn, PointInfo, POINTS};

/// Everything needed to build a machine.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub geometry: Geometry,
    pub memory: Vec<Region>,
    pub reserved: Vec<Region>,
    pub zone_limits: ZoneLimits,
    pub policy: Policy,
    /// Simulated CPUs that run allocations (CPU 0 is the boot CPU). Each node's pgdatinit thread runs
    /// on a CPU of its own after these (`cpus + node index`).
    pub cpus: u32,
    /// Take the grow lock with `spin_lock_irqsave` (the default, as after review) or plain `spin_lock`
    /// (as the first posting did).
    pub grow_irqsave: bool,
    pub faults: Faults,
    /// CPUs per node id, `(nid, cpus)`: the padata `max_threads` of its pass (5.8+); 0 is a CPU-less
    /// node. Nodes not listed have none (max_threads 1), as in docs/model.md.
    pub node_cpus: Vec<(u32, u32)>,
    /// Host threads the per-node passes may use at once (None: the host's CPUs).
    pub host_threads: Option<u32>,
    /// Refuse a page array larger than this host's MemAvailable (the default). Off, a bigger machine is
    /// built: its arrays are mapped lazily, so a run that stops early touches only what it initialises.
    pub host_check: bool,
    /// The compact memmap (`compact`): sections in one uniform state cost a summary, not per-page
    /// bytes. Off (the default), every page is dense: the reference representation.
    pub compact: bool,
    /// v4.2's fixed early prefix in pages, instead of 2 GiB (the DragonHawk needed 4 GiB, spec §6.1 M4).
    pub early_prefix: Option<u64>,
}

/// Deliberate deviations, to show that the tests and checkers catch them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Grow trusts its unlocked snapshot of first_deferred_pfn instead of re-checking it under the lock.
    pub trust_snapshot: bool,
    /// page_alloc_init_late never disables the static key.
    pub keep_key: bool,
    /// The per-node pass of this node id fails after initialising this many pages.
    pub fail_pass: Option<(u32, u64)>,
    /// The per-node pass of this node id panics (a bug in the worker) while holding its lock.
    pub panic_pass: Option<u32>,
    /// v4.13's prefix compensation as 4.13/4.14 shipped it (spec §8 B4): pfns passed as addresses,
    /// the byte sum added to a page count.
    pub bytes_as_pages: bool,
    /// 5.2+ grow as 5.2 shipped it: True whenever the node has nothing left (spec §8 B12); the
    /// caller's endless retry is reported (a violation and DeadlockDetected) instead of hanging.
    pub retry_forever: bool,
}

impl MachineConfig {
    /// A configuration with the defaults for everything but the memory map and policy.
    pub fn new(
        geometry: Geometry,
        memory: Vec<Region>,
        reserved: Vec<Region>,
        zone_limits: ZoneLimits,
        policy: Policy,
    ) -> Self {
        MachineConfig {
            geometry,
            memory,
            reserved,
            zone_limits,
            policy,
            cpus: 1,
            grow_irqsave: true,
            faults: Faults::default(),
            node_cpus: Vec::new(),
            host_threads: None,
            host_check: true,
            compact: false,
            early_prefix: None,
        }
    }
}

/// Where the machine is in its boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// `free_area_init` sized nodes and zones; no page initialised yet.
    Created = 0,
    /// `memblock_free_all` done: the on-demand window is open.
    Booted = 1,
    /// `page_alloc_init_late` is running its per-node passes.
    LateInit = 2,
    /// Deferred init finished; the key is off.
    Done = 3,
    /// A per-node worker failed; the machine is unusable.
    Failed = 4,
    /// A stop request (Ctrl-C) ended boot or late init half way; the machine is unusable.
    Interrupted = 5,
}

impl Phase {
    pub fn name(self) -> &'static str {
        [
            "created",
            "booted",
            "late_init",
            "late_init_done",
            "failed",
            "interrupted",
        ][self as usize]
    }
    fn from_u8(v: u8) -> Phase {
        [
            Phase::Created,
            Phase::Booted,
            Phase::LateInit,
            Phase::Done,
            Phase::Failed,
            Phase::Interrupted,
        ][v as usize]
    }
}

/// `pg_data_t->first_deferred_pfn`, with `ULONG_MAX` kept inside this type: callers see `Option`.
pub struct Fdp(AtomicU64);

const ULONG_MAX: u64 = u64::MAX;

impl Default for Fdp {
    fn default() -> Self {
        Fdp::new()
    }
}

impl Fdp {
    pub fn new() -> Fdp {
        Fdp(AtomicU64::new(ULONG_MAX))
    }
    /// `READ_ONCE(pgdat->first_deferred_pfn)`; None is ULONG_MAX (nothing deferred).
    pub fn load(&self) -> Option<u64> {
        match self.0.load(Ordering::Acquire) {
            ULONG_MAX => None,
            p => Some(p),
        }
    }
    /// `WRITE_ONCE`; returns the previous value.
    pub fn store(&self, v: Option<u64>) -> Option<u64> {
        match self.0.swap(v.unwrap_or(ULONG_MAX), Ordering::AcqRel) {
            ULONG_MAX => None,
            p => Some(p),
        }
    }
}

/// One zone of one node: its size, its buddy allocator behind `zone->lock`, and its per-CPU page
/// lists (one per CPU slot, each behind its own `pcp->lock`; taken before `zone->lock`).
pub struct ZoneState {
    pub span: ZoneSpan,
    pub area: ZoneLock<FreeArea>,
    /// NR_FREE_PAGES and the free orders, readable without `zone->lock`.
    pub free: std::sync::Arc<FreeMirror>,
    pub pcp: Vec<ZoneLock<PerCpuPages>>,
}

/// One node: its span, zones, `first_deferred_pfn` and `node_size_lock`.
pub struct NodeState {
    pub span: NodeSpan,
    pub fdp: Fdp,
    /// `pgdat->node_size_lock`
    pub size_lock: NamedLock,
    pub zones: Vec<ZoneState>,
    /// Index in `zones` of the deferred (last populated) zone.
    pub deferred_zone: usize,
}

/// `Stats` and its `snapshot()` from one list of counter names: each a monotonic `AtomicU64`, named
/// in the snapshot (and in Python's `Machine.stats()`) as its field is.
macro_rules! counters {
    ($(#[$m:meta])* pub struct $name:ident { $($field:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Default)]
        pub struct $name {
            $(pub $field: AtomicU64,)+
        }

        impl $name {
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field.load(Ordering::Relaxed)),)+]
            }
        }
    };
}

counters! {
    /// Counters (all monotonic).
    pub struct Stats {
        allocs, alloc_pages, alloc_failures, frees, grow_calls, grows_true, grow_pages, early_pages,
        hole_pages, memblock_released, deferred_pass_pages, totalram_pages, pass_waits, pass_fallbacks,
    }
}

pub struct Machine {
    pub layout: Layout,
    pub policy: Policy,
    pub pages: PageArray,
    pub nodes: Vec<NodeState>,
    /// posting-v2's global `deferred_zone_grow_lock`.
    pub grow_lock: NamedLock,
    pub cpus: Vec<Cpu>,
    /// CPUs that run workloads; pgdatinit threads use the ones after them, padata helpers the rest.
    pub nr_cpus: u32,
    /// Each node's padata workers (max_threads, helper CPUs) and the host-thread budget.
    pub workers: Workers,
    pub grow_irqsave: bool,
    pub faults: Faults,
    /// `MachineConfig::early_prefix`.
    pub early_prefix: Option<u64>,
    pub(crate) hooks: Mutex<Vec<PointHook>>,
    pub(crate) has_hooks: AtomicBool,
    /// CPUs stopped at a point while their callbacks run: (host thread, cpu, point).
    pub(crate) stopped: Mutex<Vec<(u64, u32, &'static str)>>,
    /// Who waits for whom among the host threads (cross-thread deadlock detection).
    pub(crate) waits: crate::waits::WaitGraph,
    /// The blocks handed to callers and not yet freed.
    pub ledger: crate::ledger::Ledger,
    /// free_initmem() ran: the __init grow code is gone.
    pub initmem_freed: AtomicBool,
    pub(crate) reserved_free: Mutex<()>,
    /// `deferred_pages`
    pub key: StaticKey,
    pub stats: Stats,
    /// Stop requests (Ctrl-C) and progress of the long loops.
    pub stop: crate::stop::StopRequest,
    phase: AtomicU8,
    /// Serialises the phase transitions (boot, late init).
    pub(crate) transition: Mutex<()>,
    events: Mutex<Vec<Logged>>,
    violations: Mutex<Vec<String>>,
    /// The `Memory: X/Y available` line once `mem_init_print_info()` printed it.
    pub(crate) memory_line: Mutex<Option<MemoryLine>>,
    /// `setup_per_cpu_pageset()` ran: the zones' per-CPU lists have their real batch and high.
    pub(crate) pcp_ready: AtomicBool,
    t0: Instant,
    /// zonelists[node index][highest zone] = (node index, zone index) in fallback order.
    pub(crate) zonelists: Vec<[Vec<(usize, usize)>; 4]>,
}

/// What `mem_init_print_info()` printed (docs/model.md §11.9): where, the free pages of all zones
/// then ("available") and the present pages of all nodes ("physpages").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLine {
    pub at: &'static str,
    pub available: u64,
    pub physpages: u64,
}

/// `MachineConfig::node_cpus` by node index (0 for a node not listed): each nid must exist and
/// appear once, with at most 4096 CPUs.
fn node_cpus_by_index(layout: &Layout, given: &[(u32, u32)]) -> Result<Vec<u32>> {
    let mut cpus = vec![None; layout.nodes.len()];
    for &(nid, c) in given {
        let ni = layout.node_index(nid).map_err(|_| {
            let nids: Vec<u32> = layout.nodes.iter().map(|n| n.nid).collect();
            Error::InvalidArgument(format!(
                "node_cpus: node {nid} has no memory in this topology (nodes: {nids:?})"
            ))
        })?;
        if c > MAX_CPUS {
            return Err(Error::InvalidArgument(format!(
                "node_cpus: node {nid} needs 0..{MAX_CPUS} CPUs, got {c}"
            )));
        }
        if cpus[ni].replace(c).is_some() {
            return Err(Error::InvalidArgument(format!(
                "node {nid}: node_cpus given twice"
            )));
        }
    }
    Ok(cpus.into_iter().map(|c| c.unwrap_or(0)).collect())
}

/// Most simulated CPUs of each kind (`cpus`, `host_threads`, a node's `node_cpus`).
pub const MAX_CPUS: u32 = 4096;


impl Machine {
    pub fn new(cfg: MachineConfig) -> Result<Machine> {
        let layout = Layout::new(cfg.geometry, &cfg.memory, &cfg.reserved, cfg.zone_limits)?;
        let memmap = layout.memmap_pages();
        let need = memmap * crate::page::BYTES_PER_PAGE;
        // The memmap itself is bounded only by the physical address space (Layout checks it); a free-list
        // link reaches MAX_LINK_SPAN pages either way, and links never leave their zone.
        for n in &layout.nodes {
            for z in &n.zones {
                if z.spanned() > crate::page::MAX_LINK_SPAN {
                    return Err(Error::InvalidArgument(format!(
                        "node {} zone {} spans {} pages; the model's free-list links reach at most {} pages \
                         ({} TiB of {} KiB pages): split the node",
                        n.nid,
                        z.zt.name(),
                        z.spanned(),
                        crate::page::MAX_LINK_SPAN,
                        (crate::page::MAX_LINK_SPAN + 1) >> (40 - cfg.geometry.page_shift),
                        1u64 << (cfg.geometry.page_shift - 10)
                    )));
                }
            }
        }
        // A compact memmap needs dense bytes only for the sections touched unevenly: no up-front bound.
        if let Some(avail) =
            crate::hostmem::available_bytes().filter(|_| cfg.host_check && !cfg.compact)
        {
            if need > avail {
                return Err(Error::HostMemory(format!(
                    "the page array of this machine ({memmap} simulated pages) needs {:.1} GiB of host memory; \
                     this host has {:.1} GiB available",
                    need as f64 / (1u64 << 30) as f64,
                    avail as f64 / (1u64 << 30) as f64
                )));
            }
        }
        if let Some(p) = cfg.early_prefix {
            if cfg.policy.early_limit_rule() != crate::policy::EarlyLimit::TwoGiB || p == 0 {
                return Err(Error::InvalidArgument(format!(
                    "early_prefix ({p} pages) sets v4.2's fixed early prefix: it needs policy v4.2 and at \
                     least one page, got policy {}",
                    cfg.policy.name()
                )));
            }
        }
        if !(1..=MAX_CPUS).contains(&cfg.cpus) {
            return Err(Error::InvalidArgument(format!(
                "cpus must be in 1..{MAX_CPUS}, got {}",
                cfg.cpus
            )));
        }
        if let Some((nid, pages)) = cfg.faults.fail_pass {
            if layout.node_index(nid).is_err() {
                return Err(Error::InvalidArgument(format!(
                    "fail_pass=({nid}, {pages}): needs (a node with memory, pages >= 0)"
                )));
            }
        }
        if let Some(nid) = cfg.faults.panic_pass {
            if layout.node_index(nid).is_err() {
                return Err(Error::InvalidArgument(format!(
                    "panic_pass={nid}: not a node with memory"
                )));
            }
        }
        let workers = Workers::new(
            node_cpus_by_index(&layout, &cfg.node_cpus)?,
            cfg.cpus + layout.nodes.len() as u32,
            match cfg.host_threads {
                Some(h) if !(1..=MAX_CPUS).contains(&h) => {
                    return Err(Error::InvalidArgument(format!(
                        "host_threads must be in 1..{MAX_CPUS}, got {h}"
                    )))
                }
                h => h.map(|h| h as usize),
            },
        );
        let nr_cpu_slots = cfg.cpus as usize + layout.nodes.len() + workers.helper_cpus() as usize;
        let pages = if cfg.compact {
            PageArray::new_compact(cfg.geometry, &layout.present_section_runs())
        } else {
            PageArray::new(cfg.geometry, &layout.present_section_runs())
        };
        let nodes: Vec<NodeState> = layout
            .nodes
            .iter()
            .map(|n| NodeState {
                span: n.clone(),
                fdp: Fdp::new(),
                size_lock: NamedLock::new(format!("&pgdat->node_size_lock (node {})", n.nid)),
                zones: n
                    .zones
                    .iter()
                    .map(|z| {
                        let area = FreeArea::new(
                            cfg.geometry.max_order,
                            cfg.geometry.pageblock_order,
                            cfg.policy.fallback(),
                        );
                        ZoneState {
                            span: *z,
                            free: area.mirror(),
                            area: ZoneLock::new(area),
                            pcp: (0..nr_cpu_slots)
                                .map(|_| ZoneLock::new(PerCpuPages::new(cfg.policy.pcp())))
                                .collect(),
                        }
                    })
                    .collect(),
                deferred_zone: n
                    .zones
                    .iter()
                    .position(|z| z.zt == n.deferred_zone)
                    .unwrap(),
            })
            .collect();
        let zonelists = (0..nodes.len())
            .map(|ni| zonelists_for(&nodes, ni))
            .collect();
        Ok(Machine {
            layout,
            policy: cfg.policy,
            pages,
            nodes,
            grow_lock: NamedLock::new("deferred_zone_grow_lock".into()),
            cpus: (0..nr_cpu_slots).map(|_| Cpu::default()).collect(),
            nr_cpus: cfg.cpus,
            workers,
            grow_irqsave: cfg.grow_irqsave,
            faults: cfg.faults,
            early_prefix: cfg.early_prefix,
            hooks: Mutex::new(Vec::new()),
            has_hooks: AtomicBool::new(false),
            stopped: Mutex::new(Vec::new()),
            waits: crate::waits::WaitGraph::default(),
            ledger: crate::ledger::Ledger::default(),
            initmem_freed: AtomicBool::new(false),
            reserved_free: Mutex::new(()),
            key: StaticKey::new(cfg.policy.grows()),
            stats: Stats::default(),
            stop: crate::stop::StopRequest::default(),
            phase: AtomicU8::new(Phase::Created as u8),
            transition: Mutex::new(()),
            events: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            memory_line: Mutex::new(None),
            pcp_ready: AtomicBool::new(false),
            t0: Instant::now(),
            zonelists,
        })
    }

    pub fn geometry(&self) -> &Geometry {
        &self.layout.geometry
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }
    pub(crate) fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Release);
    }

    pub fn node_index(&self, nid: u32) -> Result<usize> {
        self.layout.node_index(nid)
    }

    /// Index of zone `zt` in node `ni`, or UnknownZone.
    pub fn zone_index(&self, ni: usize, zt: ZoneType) -> Result<usize> {
        let n = &self.nodes[ni];
        n.zones.iter().position(|z| z.span.zt == zt).ok_or_else(|| {
            let have: Vec<&str> = n.zones.iter().map(|z| z.span.zt.name()).collect();
            Error::UnknownZone(format!(
                "node {} has no {} zone (it has {:?})",
                n.span.nid,
                zt.name(),
                have
            ))
        })
    }

    pub fn first_deferred_pfn(&self, nid: u32) -> Result<Option<u64>> {
        Ok(self.nodes[self.node_index(nid)?].fdp.load())
    }

    /// Set a node's fdp, recording a violation of I4 if it would move backwards.
    pub(crate) fn set_fdp(&self, ni: usize, v: Option<u64>) {
        let old = self.nodes[ni].fdp.store(v);
        let backwards = match (old, v) {
            (None, Some(_)) => true,
            (Some(o), Some(n)) => n < o,
            _ => false,
        };
        if backwards {
            self.violation(format!(
                "I4: node {} first_deferred_pfn moved backwards from {} to {}",
                self.nodes[ni].span.nid,
                fmt_fdp(old),
                fmt_fdp(v)
            ));
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    pub(crate) fn log(&self, cpu: u32, event: Event) {
        let t_ns = self.now_ns();
        self.events
            .lock()
            .unwrap()
            .push(Logged { t_ns, cpu, event });
    }

    pub fn events(&self) -> Vec<Logged> {
        self.events.lock().unwrap().clone()
    }

    pub(crate) fn violation(&self, msg: String) {
        self.violations.lock().unwrap().push(msg);
    }

    /// Bugs the model caught while running (double init, merge with an UNINIT buddy, fdp going back).
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    pub(crate) fn check_order(&self, order: u32) -> Result<()> {
        let max = self.geometry().max_order;
        if order > max {
            return Err(Error::Order(format!(
                "order {order} is above MAX_PAGE_ORDER ({max})"
            )));
        }
        Ok(())
    }

    /// The buddy allocator exists from `memblock_free_all` on, until a worker failure.
    pub(crate) fn require_allocator(&self, what: &str) -> Result<()> {
        match self.phase() {
            Phase::Created => Err(Error::Phase(format!(
                "{what} before boot(): the buddy allocator has no pages until memblock_free_all"
            ))),
            Phase::Failed => Err(Error::Phase(format!(
                "{what}: the machine failed during page_alloc_init_late"
            ))),
            Phase::Interrupted => Err(Error::Phase(format!(
                "{what}: the machine was interrupted (Ctrl-C) half way through a boot phase; build a new one"
            ))),
            _ => Ok(()),
        }
    }
}

pub(crate) fn fmt_fdp(v: Option<u64>) -> String {
    v.map_or("ULONG_MAX".into(), |p| format!("{p:#x}"))
}

/// Descriptor reads: one of the ways (I6/B8) early code can touch struct pages that deferred init has
/// not reached (the other, late frees of reserved memory, is `free_reserved_area` in page_alloc).
impl Machine {
    /// Read a struct page (`pfn_to_page` + a flags read), as early code such as a va->pa translation does.
    /// Reading an uninitialised descriptor is I6 (B2, B8, B19): recorded and returned as an error.
    pub fn read_page(&self, pfn: u64, cpu: u32) -> Result<(PageState, ZoneType, u16)> {
        self.check_cpu(cpu)?;
        let i = self
            .pages
            .idx(pfn)
            .ok_or_else(|| Error::UninitAccess(format!("pfn {pfn:#x} has no struct page")))?;
        let f = self.pages.flags(i);
        if f.state() == PageState::Uninit {
            let msg = format!(
                "I6: read of pfn {pfn:#x}'s struct page before it was initialised (CPU {cpu})"
            );
            self.violation(msg.clone());
            return Err(Error::UninitAccess(msg));
        }
        Ok((f.state(), f.zone(), self.pages.node_of(i)))
    }
}

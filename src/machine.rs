//! The simulated machine: layout, page array, per-node and per-zone state, phases, the allocator
//! entry points (`alloc_pages`, `free_pages`), events and counters. Boot paths are in `deferred`.

use std::sync::Arc;
use std::time::Instant;

use crate::buddy::{FreeArea, ListEnd, UninitBuddy};
use crate::cpu::{Cpu, CpuGuard, Deadlock, IrqWork, LockGuard, NamedLock};
use crate::error::{Error, Result};
use crate::events::{Event, Hook, Logged};
use crate::geometry::Geometry;
use crate::memblock::Region;
use crate::padata::Workers;
use crate::page::{PageArray, PageState, STATE_NAMES};
use crate::policy::Policy;
use crate::sync::{AtomicBool, AtomicU64, AtomicU8, Mutex, Ordering, StaticKey, ZoneLock};
use crate::topology::{Layout, NodeSpan, ZoneLimits, ZoneSpan, ZoneType};

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
}

impl Phase {
    pub fn name(self) -> &'static str {
        ["created", "booted", "late_init", "late_init_done", "failed"][self as usize]
    }
    fn from_u8(v: u8) -> Phase {
        [
            Phase::Created,
            Phase::Booted,
            Phase::LateInit,
            Phase::Done,
            Phase::Failed,
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

/// One zone of one node: its size and its buddy allocator behind `zone->lock`.
pub struct ZoneState {
    pub span: ZoneSpan,
    pub area: ZoneLock<FreeArea>,
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

/// Counters (all monotonic).
#[derive(Default)]
pub struct Stats {
    pub allocs: AtomicU64,
    pub alloc_pages: AtomicU64,
    pub alloc_failures: AtomicU64,
    pub frees: AtomicU64,
    pub grow_calls: AtomicU64,
    pub grows_true: AtomicU64,
    pub grow_pages: AtomicU64,
    pub early_pages: AtomicU64,
    pub hole_pages: AtomicU64,
    pub memblock_released: AtomicU64,
    pub deferred_pass_pages: AtomicU64,
    pub totalram_pages: AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("allocs", g(&self.allocs)),
            ("alloc_pages", g(&self.alloc_pages)),
            ("alloc_failures", g(&self.alloc_failures)),
            ("frees", g(&self.frees)),
            ("grow_calls", g(&self.grow_calls)),
            ("grows_true", g(&self.grows_true)),
            ("grow_pages", g(&self.grow_pages)),
            ("early_pages", g(&self.early_pages)),
            ("hole_pages", g(&self.hole_pages)),
            ("memblock_released", g(&self.memblock_released)),
            ("deferred_pass_pages", g(&self.deferred_pass_pages)),
            ("totalram_pages", g(&self.totalram_pages)),
        ]
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
    hooks: Mutex<Vec<PointHook>>,
    has_hooks: AtomicBool,
    /// free_initmem() ran: the __init grow code is gone.
    pub initmem_freed: AtomicBool,
    reserved_free: Mutex<()>,
    /// `deferred_pages`
    pub key: StaticKey,
    pub stats: Stats,
    phase: AtomicU8,
    /// Serialises the phase transitions (boot, late init).
    pub(crate) transition: Mutex<()>,
    events: Mutex<Vec<Logged>>,
    violations: Mutex<Vec<String>>,
    t0: Instant,
    /// zonelists[node index][highest zone] = (node index, zone index) in fallback order.
    zonelists: Vec<[Vec<(usize, usize)>; 4]>,
}

/// A callback run when the model reaches a named point (controlled interleavings).
pub type PointFn = Arc<dyn Fn(&Machine, &PointInfo) + Send + Sync>;

/// Where the model is: `name` is one of POINTS; `node` the node id it concerns; `cpu` who is there.
#[derive(Debug, Clone)]
pub struct PointInfo {
    pub name: &'static str,
    pub node: Option<u32>,
    pub cpu: u32,
}

/// The named points at which the model stops for registered callbacks.
pub const POINTS: [&str; 9] = [
    "key_disable:before",
    "key_disable:after",
    "pass:start",
    "pass:claimed",
    "pass:finish",
    "pass:end",
    "grow:snapshot",
    "grow:locked",
    "grow:section",
];

struct PointHook {
    name: String,
    node: Option<u32>,
    once: bool,
    f: PointFn,
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

/// Dense page indices are u32 in the free-list links.
const MAX_PAGES: u64 = u32::MAX as u64 - 1;

impl Machine {
    pub fn new(cfg: MachineConfig) -> Result<Machine> {
        let layout = Layout::new(cfg.geometry, &cfg.memory, &cfg.reserved, cfg.zone_limits)?;
        let memmap = layout.memmap_pages();
        let need = memmap * crate::page::BYTES_PER_PAGE;
        if memmap > MAX_PAGES {
            return Err(Error::HostMemory(format!(
                "the memmap would have {memmap} pages ({:.1} GiB of host memory); the model indexes at most \
                 {MAX_PAGES} pages (16 TiB of 4 KiB pages)",
                need as f64 / (1u64 << 30) as f64
            )));
        }
        if let Some(avail) = crate::hostmem::available_bytes() {
            if need > avail {
                return Err(Error::HostMemory(format!(
                    "the page array of this machine ({memmap} simulated pages) needs {:.1} GiB of host memory; \
                     this host has {:.1} GiB available",
                    need as f64 / (1u64 << 30) as f64,
                    avail as f64 / (1u64 << 30) as f64
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
        let nr_cpu_slots =
            cfg.cpus as usize + layout.nodes.len() + workers.helper_cpus() as usize;
        let pages = PageArray::new(cfg.geometry, &layout.present_section_runs());
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
                    .map(|z| ZoneState {
                        span: *z,
                        area: ZoneLock::new(FreeArea::new(cfg.geometry.max_order)),
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
            hooks: Mutex::new(Vec::new()),
            has_hooks: AtomicBool::new(false),
            initmem_freed: AtomicBool::new(false),
            reserved_free: Mutex::new(()),
            key: StaticKey::new(cfg.policy.grows()),
            stats: Stats::default(),
            phase: AtomicU8::new(Phase::Created as u8),
            transition: Mutex::new(()),
            events: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
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
        self.phase.store(p as u8, Ordering::Release)
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
            _ => Ok(()),
        }
    }

    /// Release `[pfn, pfn + 2^order)` to the buddy allocator at boot (`__free_pages_core`): the
    /// zone's managed count grows, the block goes to the tail of its list.
    pub(crate) fn release(&self, ni: usize, zi: usize, pfn: u64, order: u32) {
        let i = self.pages.idx(pfn).expect("released pfn has a struct page");
        let mut area = self.nodes[ni].zones[zi].area.lock();
        area.managed += 1 << order;
        let r = area.free(&self.pages, i, order, ListEnd::Tail);
        drop(area);
        self.report_uninit_buddy(r);
    }

    fn report_uninit_buddy(&self, r: std::result::Result<(), UninitBuddy>) {
        if let Err(u) = r {
            self.violation(format!(
                "B-I2: freeing pfn {:#x} order {} found its buddy pfn {:#x} uninitialised; not merged",
                self.pages.pfn(u.block),
                u.order,
                self.pages.pfn(u.buddy)
            ));
        }
    }

    /// `__alloc_pages` → `get_page_from_freelist` with the two grow hooks (spec §3.1), on `cpu`.
    /// Interrupts pending on that CPU are delivered before and after.
    pub fn alloc_pages(
        &self,
        order: u32,
        nid: Option<u32>,
        zone: Option<ZoneType>,
        cpu: u32,
    ) -> Result<u64> {
        let _on = self.enter_cpu(cpu)?;
        self.irq_point(cpu);
        let r = self.get_page_from_freelist(order, nid, zone, cpu);
        self.irq_point(cpu);
        r
    }

    fn get_page_from_freelist(
        &self,
        order: u32,
        nid: Option<u32>,
        zone: Option<ZoneType>,
        cpu: u32,
    ) -> Result<u64> {
        self.check_order(order)?;
        self.require_allocator("alloc_pages()")?;
        let ni = match nid {
            Some(n) => self.node_index(n)?,
            None => 0,
        };
        let high = zone.unwrap_or(ZoneType::Normal);
        'zones: for &(n, z) in &self.zonelists[ni][high as usize] {
            let area = &self.nodes[n].zones[z].area;
            // A separate statement, so the zone lock is dropped before growing takes it again.
            let watermark_ok = area.lock().watermark_ok(order);
            if !(watermark_ok
                || self.key.enabled() && self.grow_hook(n, z, order, Hook::Watermark, cpu)?)
            {
                continue 'zones;
            }
            loop {
                let got = area.lock().rmqueue(&self.pages, order);
                if let Some(i) = got {
                    self.stats.allocs.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .alloc_pages
                        .fetch_add(1 << order, Ordering::Relaxed);
                    return Ok(self.pages.pfn(i));
                }
                if !(self.key.enabled() && self.grow_hook(n, z, order, Hook::Rmqueue, cpu)?) {
                    continue 'zones;
                }
            }
        }
        self.stats.alloc_failures.fetch_add(1, Ordering::Relaxed);
        let node_name = self.nodes[ni].span.nid;
        Err(Error::OutOfMemory(format!(
            "no free block of order {order} for node {node_name}, zones up to {} (zonelist exhausted{})",
            high.name(),
            if self.key.enabled() { ", deferred growth could not help" } else { "" }
        )))
    }

    /// `_deferred_grow_zone`, the `__ref` wrapper: the `__init` body is gone after free_initmem().
    pub fn grow_hook(
        &self,
        ni: usize,
        zi: usize,
        order: u32,
        hook: Hook,
        cpu: u32,
    ) -> Result<bool> {
        if self.initmem_freed.load(Ordering::Acquire) {
            let msg = format!(
                "BUG: unable to handle page fault: deferred_grow_zone() is __init and free_initmem() freed it \
                 (called from the {} hook on CPU {cpu})",
                hook.name()
            );
            self.log(
                cpu,
                Event::Warning {
                    message: msg.clone(),
                },
            );
            return Err(Error::Phase(msg));
        }
        self.deferred_grow_zone_for_alloc(ni, zi, order, hook, cpu)
    }

    /// `__free_pages` of a block returned by `alloc_pages`; the block goes to the head of its list.
    pub fn free_pages(&self, pfn: u64, order: u32, cpu: u32) -> Result<()> {
        let _on = self.enter_cpu(cpu)?;
        self.irq_point(cpu);
        let r = self.free_pages_on(pfn, order);
        self.irq_point(cpu);
        r
    }

    fn free_pages_on(&self, pfn: u64, order: u32) -> Result<()> {
        self.check_order(order)?;
        self.require_allocator("free_pages()")?;
        let i = self.pages.idx(pfn).ok_or_else(|| {
            Error::BadFree(format!(
                "pfn {pfn:#x} has no struct page (its section is not present)"
            ))
        })?;
        let f = self.pages.flags(i);
        if f.state() == PageState::Uninit {
            return Err(Error::BadFree(format!(
                "pfn {pfn:#x} is not allocated (its struct page is uninitialised)"
            )));
        }
        let ni = self.node_index(u32::from(self.pages.node_of(i)))?;
        let zi = self.zone_index(ni, f.zone())?;
        let mut area = self.nodes[ni].zones[zi].area.lock();
        // Re-read under the zone lock: a racing free of the same block must see it freed.
        let state = self.pages.state(i);
        if state != PageState::Allocated {
            return Err(Error::BadFree(format!(
                "pfn {pfn:#x} is not allocated (it is {}){}",
                STATE_NAMES[state as usize],
                if state == PageState::Free {
                    ": double free?"
                } else {
                    ""
                }
            )));
        }
        match self.pages.head_order(i) {
            None => {
                return Err(Error::BadFree(format!(
                    "pfn {pfn:#x} is inside an allocated block, not its head"
                )))
            }
            Some(o) if o != order => {
                return Err(Error::BadFree(format!(
                    "pfn {pfn:#x} was allocated with order {o}, not {order}"
                )))
            }
            Some(_) => {}
        }
        let r = area.free(&self.pages, i, order, ListEnd::Head);
        drop(area);
        self.report_uninit_buddy(r);
        self.stats.frees.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A zone's counters: (managed, free_pages, nr_free per order).
    pub fn zone_counters(&self, ni: usize, zi: usize) -> (u64, u64, Vec<u64>) {
        let a = self.nodes[ni].zones[zi].area.lock();
        (a.managed, a.free_pages, a.nr_free.clone())
    }

    /// Block-head pfns on a free list, head first.
    pub fn free_list(&self, ni: usize, zi: usize, order: u32) -> Result<Vec<u64>> {
        self.check_order(order)?;
        let a = self.nodes[ni].zones[zi].area.lock();
        Ok(a.list(&self.pages, order)
            .into_iter()
            .map(|i| self.pages.pfn(i))
            .collect())
    }
}

pub(crate) fn fmt_fdp(v: Option<u64>) -> String {
    v.map_or("ULONG_MAX".into(), |p| format!("{p:#x}"))
}

/// The node-ordered zonelists of node `ni`: itself, then higher node ids, then lower ones (equal
/// distances: `find_next_best_node` prefers ids above the local one); per node, populated zones from
/// the highest allowed down.
fn zonelists_for(nodes: &[NodeState], ni: usize) -> [Vec<(usize, usize)>; 4] {
    let order: Vec<usize> = (ni..nodes.len()).chain(0..ni).collect();
    std::array::from_fn(|high| {
        let mut list = Vec::new();
        for &n in &order {
            for (zi, z) in nodes[n].zones.iter().enumerate().rev() {
                if z.span.zt as usize <= high && z.span.present > 0 {
                    list.push((n, zi));
                }
            }
        }
        list
    })
}

/// CPUs, interrupts, locks and controlled interleavings.
impl Machine {
    pub fn check_cpu(&self, cpu: u32) -> Result<()> {
        if cpu as usize >= self.cpus.len() {
            let helpers = self.nr_cpus as usize + self.nodes.len();
            return Err(Error::InvalidArgument(format!(
                "cpu {cpu} does not exist: CPUs 0..{} run workloads, {}..{helpers} the per-node passes, \
                 {helpers}..{} their padata helpers",
                self.nr_cpus,
                self.nr_cpus,
                self.cpus.len()
            )));
        }
        Ok(())
    }

    /// Act as `cpu` on this host thread for the guard's life; a CPU already simulated by another host
    /// thread is an error (its interrupts-disabled state and locks would be shared by two threads).
    pub fn enter_cpu(&self, cpu: u32) -> Result<CpuGuard<'_>> {
        self.check_cpu(cpu)?;
        self.cpus[cpu as usize].enter().ok_or_else(|| {
            Error::Phase(format!(
                "CPU {cpu} is being simulated by another host thread: give each thread its own cpu= \
                 (CPU 0 runs boot() and page_alloc_init_late())"
            ))
        })
    }

    /// The simulated CPU that runs node index `ni`'s pgdatinit thread.
    pub fn pgdatinit_cpu(&self, ni: usize) -> u32 {
        self.nr_cpus + ni as u32
    }

    /// Take `lock` on `cpu` (irqsave or not), delivering interrupts while spinning with them on.
    /// A lock the CPU already holds is a deadlock: logged lockdep-style and returned as an error.
    pub(crate) fn lock<'a>(
        &'a self,
        lock: &'a NamedLock,
        cpu: u32,
        irqsave: bool,
        site: &'static str,
    ) -> Result<LockGuard<'a>> {
        let c = &self.cpus[cpu as usize];
        lock.acquire(cpu, c, irqsave, site, || self.irq_point(cpu))
            .map_err(|d: Deadlock| {
                self.log(
                    cpu,
                    Event::Lockdep {
                        lock: d.lock.clone(),
                        cpu,
                        held_at: d.held_at,
                        wanted_at: d.wanted_at,
                    },
                );
                Error::Deadlock(d.report())
            })
    }

    /// Release, then deliver the interrupts the lock held off.
    pub(crate) fn unlock(&self, guard: LockGuard<'_>, cpu: u32) {
        if guard.unlock() {
            self.irq_point(cpu);
        }
    }

    /// An interrupt point: run the allocations queued for `cpu` if its interrupts are enabled.
    pub fn irq_point(&self, cpu: u32) {
        let c = &self.cpus[cpu as usize];
        while let Some(w) = c.next_deliverable() {
            c.set_in_irq(true);
            let r = self.get_page_from_freelist(w.order, w.node, w.zone, cpu);
            c.set_in_irq(false);
            *w.result.lock().unwrap() = Some(r);
        }
    }

    /// Queue an allocation in hard-interrupt context on `cpu`; it runs at that CPU's next interrupt
    /// point with interrupts enabled. The returned slot receives its result.
    pub fn raise_irq(
        &self,
        cpu: u32,
        order: u32,
        node: Option<u32>,
        zone: Option<ZoneType>,
    ) -> Result<Arc<Mutex<Option<Result<u64>>>>> {
        self.check_cpu(cpu)?;
        self.check_order(order)?;
        if let Some(n) = node {
            self.node_index(n)?;
        }
        let result = Arc::new(Mutex::new(None));
        self.cpus[cpu as usize].queue(IrqWork {
            order,
            node,
            zone,
            result: result.clone(),
        });
        Ok(result)
    }

    /// Run `f` whenever the model reaches the point `name` (for `node`, or any node if None); with
    /// `once`, only the first time.
    pub fn at_point(&self, name: &str, node: Option<u32>, once: bool, f: PointFn) -> Result<()> {
        if !POINTS.contains(&name) {
            return Err(Error::InvalidArgument(format!(
                "unknown point {name:?}: expected one of {POINTS:?}"
            )));
        }
        self.hooks.lock().unwrap().push(PointHook {
            name: name.to_string(),
            node,
            once,
            f,
        });
        self.has_hooks.store(true, Ordering::Release);
        Ok(())
    }

    pub fn clear_points(&self) {
        self.hooks.lock().unwrap().clear();
        self.has_hooks.store(false, Ordering::Release);
    }

    /// The model reached point `name`: run the callbacks registered for it (outside the registry lock,
    /// so a callback may itself allocate and reach other points).
    pub(crate) fn point(&self, name: &'static str, node: Option<u32>, cpu: u32) {
        if !self.has_hooks.load(Ordering::Acquire) {
            return;
        }
        let matching: Vec<PointFn> = {
            let mut hooks = self.hooks.lock().unwrap();
            let hit = |h: &PointHook| h.name == name && (h.node.is_none() || h.node == node);
            let fs = hooks
                .iter()
                .filter(|h| hit(h))
                .map(|h| h.f.clone())
                .collect();
            hooks.retain(|h| !(h.once && hit(h)));
            if hooks.is_empty() {
                self.has_hooks.store(false, Ordering::Release);
            }
            fs
        };
        let info = PointInfo { name, node, cpu };
        for f in matching {
            f(self, &info);
        }
    }
}

/// Late frees of reserved memory and descriptor reads: the two ways (B20, I6/B8) early code can
/// touch struct pages that deferred init has not reached.
impl Machine {
    /// `free_reserved_area` / `memblock_free_late` of reserved pfns `[start, end)`: each page goes to the
    /// buddy allocator. While deferred pages remain (the key is on), freeing next to one is rejected:
    /// the merge would read an uninitialised buddy (B20; kernels since 2026 warn here).
    pub fn free_reserved_area(&self, start: u64, end: u64, cpu: u32) -> Result<u64> {
        let _on = self.enter_cpu(cpu)?;
        self.require_allocator("free_reserved_area()")?;
        // One at a time: validation and release must see the same pages (no double free of a range).
        let _serial = self.reserved_free.lock().unwrap();
        if end <= start {
            return Err(Error::BadFree(format!(
                "free_reserved_area: empty range [{start:#x}, {end:#x})"
            )));
        }
        let block = self.geometry().max_order_nr_pages();
        for pfn in start..end {
            let i = self
                .pages
                .idx(pfn)
                .ok_or_else(|| Error::BadFree(format!("pfn {pfn:#x} has no struct page")))?;
            let memory = self
                .layout
                .memory
                .iter()
                .any(|r| r.start <= pfn && pfn < r.end);
            if !memory || self.pages.state(i) != PageState::Reserved {
                return Err(Error::BadFree(format!(
                    "free_reserved_area: pfn {pfn:#x} is not reserved memory (it is {}{})",
                    STATE_NAMES[self.pages.state(i) as usize],
                    if memory { "" } else { ", a hole" }
                )));
            }
        }
        {
            // Whatever the key says (v4.2 has none): a merge would read the uninitialised buddy.
            let (s, e) = (start & !(block - 1), (end + block - 1) & !(block - 1));
            if let Some(p) = (s..e).find(|&p| {
                self.pages
                    .idx(p)
                    .is_some_and(|i| self.pages.state(i) == PageState::Uninit)
            }) {
                return Err(Error::Phase(format!(
                    "free_reserved_area([{start:#x}, {end:#x})) while deferred pages remain: pfn {p:#x} in the \
                     same MAX_ORDER block is still uninitialised, and merging would read its descriptor (B20); \
                     free it after page_alloc_init_late()"
                )));
            }
        }
        for pfn in start..end {
            let i = self.pages.idx(pfn).unwrap();
            let (ni, zi) = (
                self.node_index(u32::from(self.pages.node_of(i)))?,
                self.pages.flags(i).zone(),
            );
            let zi = self.zone_index(ni, zi)?;
            let mut area = self.nodes[ni].zones[zi].area.lock();
            area.managed += 1;
            let r = area.free(&self.pages, i, 0, ListEnd::Head);
            drop(area);
            self.report_uninit_buddy(r);
        }
        Ok(end - start)
    }

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

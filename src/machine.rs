//! The simulated machine: layout, page array, per-node and per-zone state, phases, the allocator
//! entry points (`alloc_pages`, `free_pages`), events and counters. Boot paths are in `deferred`.

use std::time::Instant;

use crate::buddy::{FreeArea, ListEnd, UninitBuddy};
use crate::error::{Error, Result};
use crate::events::{Event, Hook, Logged};
use crate::geometry::Geometry;
use crate::memblock::Region;
use crate::page::{PageArray, PageState, STATE_NAMES};
use crate::policy::Policy;
use crate::sync::{AtomicU64, AtomicU8, Mutex, Ordering, SpinLock, StaticKey};
use crate::topology::{Layout, NodeSpan, ZoneLimits, ZoneSpan, ZoneType};

/// Everything needed to build a machine.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub geometry: Geometry,
    pub memory: Vec<Region>,
    pub reserved: Vec<Region>,
    pub zone_limits: ZoneLimits,
    pub policy: Policy,
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

impl Fdp {
    fn new() -> Fdp {
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
    pub area: Mutex<FreeArea>,
}

/// One node: its span, zones, `first_deferred_pfn` and `node_size_lock`.
pub struct NodeState {
    pub span: NodeSpan,
    pub fdp: Fdp,
    pub size_lock: SpinLock,
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
    pub grow_lock: SpinLock,
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

/// Dense page indices are u32 in the free-list links.
const MAX_PAGES: u64 = u32::MAX as u64 - 1;

impl Machine {
    pub fn new(cfg: MachineConfig) -> Result<Machine> {
        let layout = Layout::new(cfg.geometry, &cfg.memory, &cfg.reserved, cfg.zone_limits)?;
        let memmap = layout.memmap_pages();
        if memmap > MAX_PAGES {
            return Err(Error::HostMemory(format!(
                "the memmap would have {memmap} pages; the model indexes at most {MAX_PAGES} (16 TiB of 4 KiB pages)"
            )));
        }
        let pages = PageArray::new(cfg.geometry, &layout.present_section_runs());
        let nodes: Vec<NodeState> = layout
            .nodes
            .iter()
            .map(|n| NodeState {
                span: n.clone(),
                fdp: Fdp::new(),
                size_lock: SpinLock::default(),
                zones: n
                    .zones
                    .iter()
                    .map(|z| ZoneState {
                        span: *z,
                        area: Mutex::new(FreeArea::new(cfg.geometry.max_order)),
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
            grow_lock: SpinLock::default(),
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
        let mut area = self.nodes[ni].zones[zi].area.lock().unwrap();
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

    /// `__alloc_pages` → `get_page_from_freelist` with the two grow hooks (spec §3.1).
    pub fn alloc_pages(
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
            let watermark_ok = area.lock().unwrap().watermark_ok(order);
            if !watermark_ok
                && !(self.key.enabled()
                    && self.deferred_grow_zone(n, z, order, Hook::Watermark, cpu))
            {
                continue 'zones;
            }
            loop {
                let got = area.lock().unwrap().rmqueue(&self.pages, order);
                if let Some(i) = got {
                    self.stats.allocs.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .alloc_pages
                        .fetch_add(1 << order, Ordering::Relaxed);
                    return Ok(self.pages.pfn(i));
                }
                if !(self.key.enabled() && self.deferred_grow_zone(n, z, order, Hook::Rmqueue, cpu))
                {
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

    /// `__free_pages` of a block returned by `alloc_pages`; the block goes to the head of its list.
    pub fn free_pages(&self, pfn: u64, order: u32, _cpu: u32) -> Result<()> {
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
        let mut area = self.nodes[ni].zones[zi].area.lock().unwrap();
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
        let a = self.nodes[ni].zones[zi].area.lock().unwrap();
        (a.managed, a.free_pages, a.nr_free.clone())
    }

    /// Block-head pfns on a free list, head first.
    pub fn free_list(&self, ni: usize, zi: usize, order: u32) -> Result<Vec<u64>> {
        self.check_order(order)?;
        let a = self.nodes[ni].zones[zi].area.lock().unwrap();
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

//! The page allocator's entry points (mm/page_alloc.c): `alloc_pages` / `get_page_from_freelist` with
//! the deferred grow hooks, `free_pages`, boot-time release (`__free_pages_core`), `free_reserved_area`
//! and the node-ordered zonelists.

use crate::buddy::{ListEnd, UninitBuddy};
use crate::deferred::GrowCall;
use crate::error::{Error, Result};
use crate::events::{Event, Hook};
use crate::machine::{Machine, NodeState};
use crate::migratetype::MigrateType;
use crate::page::{PageState, STATE_NAMES};
use crate::policy::BootFree;
use crate::sync::Ordering;
use crate::topology::ZoneType;

/// What one allocation asks `get_page_from_freelist` for: the order, and as the kernel's
/// `struct alloc_context` says it, the preferred node (None: the lowest), the highest zone (None:
/// Normal) and the migratetype; the CPU it runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AllocRequest {
    pub order: u32,
    pub nid: Option<u32>,
    pub zone: Option<ZoneType>,
    pub mt: MigrateType,
    pub cpu: u32,
}

impl Machine {
    /// Release `[pfn, pfn + 2^order)` to the buddy allocator at boot (`__free_pages_core`): the
    /// zone's managed count grows, the block goes where the generation links boot frees.
    pub(crate) fn release(&self, ni: usize, zi: usize, pfn: u64, order: u32) {
        let i = self.pages.idx(pfn).expect("released pfn has a struct page");
        let end = match self.policy.boot_free() {
            BootFree::Tail => ListEnd::Tail,
            BootFree::MergeLikely => ListEnd::MergeLikely,
        };
        // The per-page part of the free outside zone->lock, as __free_pages_core does it (the padata
        // helpers of one node share the zone lock: under it this was most of a pass's serial time).
        // A compact memmap may turn a summary dense here, which stays under the lock.
        let dense = self.pages.compact.is_none();
        if dense {
            self.pages.set_state_range(i, 1 << order, PageState::Free);
        }
        let mut area = self.nodes[ni].zones[zi].area.lock();
        area.managed += 1 << order;
        let r = if dense {
            area.free_prepared(&self.pages, i, order, end)
        } else {
            area.free(&self.pages, i, order, end)
        };
        drop(area);
        self.report_uninit_buddy(r);
    }

    pub(crate) fn report_uninit_buddy(&self, r: std::result::Result<(), UninitBuddy>) {
        if let Err(u) = r {
            self.violation(format!(
                "B-I2: freeing pfn {:#x} order {} found its buddy pfn {:#x} uninitialised; not merged",
                self.pages.pfn(u.block),
                u.order,
                self.pages.pfn(u.buddy)
            ));
        }
    }

    /// `__alloc_pages` → `get_page_from_freelist` with the two grow hooks (spec §3.1), on `cpu`, for
    /// an UNMOVABLE request (GFP_KERNEL). Interrupts pending on that CPU are delivered before and after.
    pub fn alloc_pages(
        &self,
        order: u32,
        nid: Option<u32>,
        zone: Option<ZoneType>,
        cpu: u32,
    ) -> Result<u64> {
        self.alloc_pages_mt(order, nid, zone, MigrateType::Unmovable, cpu)
    }

    /// `alloc_pages` for a request of migratetype `mt` (`gfp_migratetype` of its GFP flags).
    pub fn alloc_pages_mt(
        &self,
        order: u32,
        nid: Option<u32>,
        zone: Option<ZoneType>,
        mt: MigrateType,
        cpu: u32,
    ) -> Result<u64> {
        let _on = self.enter_cpu(cpu)?;
        self.irq_point(cpu);
        let r = self.get_page_from_freelist(AllocRequest {
            order,
            nid,
            zone,
            mt,
            cpu,
        });
        self.irq_point(cpu);
        r
    }

    /// Zone `z` of node `n` is the node's deferred zone and its pass has claimed it (first_deferred_pfn
    /// ULONG_MAX during `page_alloc_init_late`): a False from its grow there sends the allocation on.
    fn refused_by_claim(&self, n: usize, z: usize) -> bool {
        let node = &self.nodes[n];
        self.key.enabled()
            && self.phase() == crate::machine::Phase::LateInit
            && z == node.deferred_zone
            && node.fdp.load().is_none()
    }

    /// `alloc_flags_nofragment(preferred zone)` (5.0+): the preferred zone is Normal and, on a machine
    /// of several nodes, its node has a populated DMA32.
    fn nofragment_for(&self, preferred: Option<&(usize, usize)>) -> bool {
        let Some(&(n, z)) = preferred else {
            return false;
        };
        let node = &self.nodes[n];
        self.policy.nofragment()
            && node.zones[z].span.zt == ZoneType::Normal
            && (self.nodes.len() == 1
                || node
                    .zones
                    .iter()
                    .any(|z| z.span.zt == ZoneType::Dma32 && z.span.present > 0))
    }

    pub(crate) fn get_page_from_freelist(&self, req: AllocRequest) -> Result<u64> {
        let AllocRequest {
            order,
            nid,
            zone,
            mt,
            cpu,
        } = req;
        self.check_order(order)?;
        self.require_allocator("alloc_pages()")?;
        if mt == MigrateType::HighAtomic {
            return Err(Error::InvalidArgument(
                "alloc_pages: no GFP mask asks for MIGRATE_HIGHATOMIC (use Unmovable, Movable or Reclaimable)"
                    .into(),
            ));
        }
        let ni = match nid {
            Some(n) => self.node_index(n)?,
            None => 0,
        };
        let high = zone.unwrap_or(ZoneType::Normal);
        let zonelist = &self.zonelists[ni][high as usize];
        let preferred = zonelist.first();
        let mut nofragment = self.nofragment_for(preferred);
        // the slow path's drain_all_pages (after direct reclaim): once, then the zonelist again
        let mut drained = false;
        // A grow of a node whose pass has claimed it (5.7+) returned False: a page from a later zone
        // of the zonelist is a fallback the pass caused (counted as `pass_fallbacks`).
        let mut claimed_refused = false;
        'retry: loop {
            'zones: for &(n, z) in zonelist {
                // Leaving the local node: locality matters more than fragmentation; start again
                // without ALLOC_NOFRAGMENT.
                if nofragment && self.nodes.len() > 1 && preferred.is_some_and(|p| p.0 != n) {
                    nofragment = false;
                    continue 'retry;
                }
                let area = &self.nodes[n].zones[z].area;
                // zone_watermark_fast: NR_FREE_PAGES without the zone lock (pcp pages not counted)
                let watermark_ok = self.nodes[n].zones[z].free.watermark_ok(order);
                if !(watermark_ok
                    || self.key.enabled()
                        && self.grow_hook(GrowCall {
                            ni: n,
                            zi: z,
                            order,
                            hook: Hook::Watermark,
                            cpu,
                        })?)
                {
                    claimed_refused |= self.refused_by_claim(n, z);
                    continue 'zones;
                }
                loop {
                    let got = if self.policy.pcp().pindex(order, mt).is_some() {
                        self.rmqueue_pcplist(n, z, order, mt, nofragment, cpu)
                    } else {
                        let mut a = area.lock();
                        let got = a.rmqueue(&self.pages, order, mt, nofragment);
                        // Under the zone lock, so a racing free and reallocation are recorded in order.
                        got.inspect(|&i| self.ledger.received(self.pages.pfn(i), order))
                    };
                    if let Some(i) = got {
                        if claimed_refused {
                            self.stats.pass_fallbacks.fetch_add(1, Ordering::Relaxed);
                        }
                        self.stats.allocs.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .alloc_pages
                            .fetch_add(1 << order, Ordering::Relaxed);
                        return Ok(self.pages.pfn(i));
                    }
                    if !(self.key.enabled()
                        && self.grow_hook(GrowCall {
                            ni: n,
                            zi: z,
                            order,
                            hook: Hook::Rmqueue,
                            cpu,
                        })?)
                    {
                        claimed_refused |= self.refused_by_claim(n, z);
                        continue 'zones;
                    }
                }
            }
            // Every zone refused to fragment: try again, allowing it.
            if nofragment {
                nofragment = false;
                continue;
            }
            if drained || self.drain_all_pages() == 0 {
                break;
            }
            drained = true;
        }
        self.stats.alloc_failures.fetch_add(1, Ordering::Relaxed);
        let node_name = self.nodes[ni].span.nid;
        Err(Error::OutOfMemory(format!(
            "no free block of order {order} for node {node_name}, zones up to {} (zonelist exhausted{})",
            high.name(),
            if self.key.enabled() { ", deferred growth could not help" } else { "" }
        )))
    }

    /// `deferred_grow_zone(zone, order)` called directly by the user, on `cpu`, by node id and zone type.
    pub fn grow_explicit(&self, nid: u32, zt: ZoneType, order: u32, cpu: u32) -> Result<bool> {
        let _on = self.enter_cpu(cpu)?;
        self.check_order(order)?;
        self.require_allocator("deferred_grow_zone()")?;
        let ni = self.node_index(nid)?;
        let zi = self.zone_index(ni, zt)?;
        self.grow_hook(GrowCall {
            ni,
            zi,
            order,
            hook: Hook::Explicit,
            cpu,
        })
    }

    /// `_deferred_grow_zone`, the `__ref` wrapper: the `__init` body is gone after free_initmem().
    pub fn grow_hook(&self, call: GrowCall) -> Result<bool> {
        let GrowCall { hook, cpu, .. } = call;
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
        self.deferred_grow_zone_for_alloc(call)
    }

    /// `__free_pages` of a block returned by `alloc_pages`; the block goes to the head of its list.
    pub fn free_pages(&self, pfn: u64, order: u32, cpu: u32) -> Result<()> {
        let _on = self.enter_cpu(cpu)?;
        self.irq_point(cpu);
        let r = self.free_pages_on(pfn, order, cpu);
        self.irq_point(cpu);
        r
    }

    fn free_pages_on(&self, pfn: u64, order: u32, cpu: u32) -> Result<()> {
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
        let not_allocated = |state: PageState| {
            Error::BadFree(format!(
                "pfn {pfn:#x} is not allocated (it is {}){}",
                STATE_NAMES[state as usize],
                if state == PageState::Free {
                    ": double free?"
                } else {
                    ""
                }
            ))
        };
        let state = self.pages.state(i);
        if state != PageState::Allocated {
            return Err(not_allocated(state));
        }
        match self.pages.allocated_order(i) {
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
        // One atomic step decides between racing frees of this block (two CPUs' lists share no lock).
        if !self.pages.try_unhead(i, order) {
            return Err(Error::BadFree(format!(
                "pfn {pfn:#x}: another CPU freed this block at the same time: double free?"
            )));
        }
        self.ledger.returned(pfn);
        if !self.free_unref_page(ni, zi, i, order, cpu) {
            // __free_pages_ok: __free_one_page without FPI_TO_TAIL, the merge-likely placement
            let r = self.nodes[ni].zones[zi].area.lock().free(
                &self.pages,
                i,
                order,
                ListEnd::MergeLikely,
            );
            self.report_uninit_buddy(r);
        }
        self.stats.frees.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A zone's counters: (managed, free_pages, nr_free per order).
    pub fn zone_counters(&self, ni: usize, zi: usize) -> (u64, u64, Vec<u64>) {
        let a = self.nodes[ni].zones[zi].area.lock();
        (a.managed, a.free_pages, a.nr_free.clone())
    }

    /// Block-head pfns on the free list of `(order, mt)`, head first; `mt` None: every migratetype's
    /// list of that order, UNMOVABLE's first.
    pub fn free_list(
        &self,
        ni: usize,
        zi: usize,
        order: u32,
        mt: Option<MigrateType>,
    ) -> Result<Vec<u64>> {
        self.check_order(order)?;
        let a = self.nodes[ni].zones[zi].area.lock();
        let heads = match mt {
            Some(mt) => a.list_mt(&self.pages, order, mt),
            None => a.list(&self.pages, order),
        };
        Ok(heads.into_iter().map(|i| self.pages.pfn(i)).collect())
    }

    /// `/proc/pagetypeinfo` of one zone: free blocks per order, one row per migratetype.
    pub fn pagetypeinfo(&self, ni: usize, zi: usize) -> Vec<(MigrateType, Vec<u64>)> {
        let a = self.nodes[ni].zones[zi].area.lock();
        MigrateType::ALL
            .into_iter()
            .map(|mt| (mt, a.nr_free_mt(&self.pages, mt)))
            .collect()
    }
}

/// Late frees of reserved memory: one of the ways (B20) early code can touch struct pages that
/// deferred init has not reached.
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
            // free_reserved_page: adjust_managed_page_count, then __free_page -> free_unref_page
            self.nodes[ni].zones[zi].area.lock().managed += 1;
            let queued = self.free_unref_page(ni, zi, i, 0, cpu);
            debug_assert!(queued, "order 0 always has a per-CPU list");
        }
        Ok(end - start)
    }
}

/// The node-ordered zonelists of node `ni`: itself, then higher node ids, then lower ones (equal
/// distances: `find_next_best_node` prefers ids above the local one); per node, populated zones from
/// the highest allowed down.
pub(crate) fn zonelists_for(nodes: &[NodeState], ni: usize) -> [Vec<(usize, usize)>; 4] {
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

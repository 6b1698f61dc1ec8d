//! Per-CPU page lists (`struct per_cpu_pages`, mm/page_alloc.c) of one zone on one CPU
//! (docs/model.md §5.3).
//!
//! Small allocations are served from the CPU's own lists, refilled `batch` blocks at a time from the
//! buddy lists (`rmqueue_bulk`); small frees go to the head of a list and, once `count >= high`, a
//! batch goes back to the buddy allocator (`free_pcppages_bulk`). Only refills and drains take
//! `zone->lock`, so CPUs allocating from one zone mostly do not meet. Pages on a list are FREE but no
//! buddy head (no mark in the order byte), and `NR_FREE_PAGES` does not count them.
//!
//! Until `setup_per_cpu_pageset` every zone uses the boot pageset (batch 1, high 0): each refill is
//! one block and each free drains at once, so nothing stays on a list.

use std::collections::VecDeque;

use crate::buddy::{FreeArea, ListEnd, UninitBuddy};
use crate::migratetype::{Fallback, MigrateType};
use crate::page::{PageArray, PageState};

/// `MIGRATE_PCPTYPES`: the pcp lists are per UNMOVABLE, MOVABLE, RECLAIMABLE.
const PCPTYPES: usize = 3;
/// `PAGE_ALLOC_COSTLY_ORDER`: the highest order with pcp lists from 5.13 on.
pub const PAGE_ALLOC_COSTLY_ORDER: u32 = 3;

/// The kernel generation of the per-CPU lists (policy fact `pcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcpRules {
    /// 4.x–5.9 (and 5.10–5.13, which the model does not separate): order 0 only, three lists,
    /// `high = 6 * batch`, batch capped at 512 KiB, drains round-robin over the lists
    /// (`batch_free`), `zone_pcp_update` after the deferred passes.
    V4_17,
    /// 5.14+: orders 0..=3 (one list per order and type, `order_to_pindex`), batch capped at 1 MiB,
    /// `high = max(low_wmark / cpus, 4 * batch)` (4 * batch: the window's watermarks are 0), drains a
    /// list at a time from the one just freed to, `free_factor` doubling the drain, `free_high`.
    V5_14,
}

impl PcpRules {
    pub fn name(self) -> &'static str {
        match self {
            PcpRules::V4_17 => "v4.17",
            PcpRules::V5_14 => "v5.14",
        }
    }

    /// The highest order with pcp lists (`pcp_allowed_order`; the THP list of 5.13+ is not modelled).
    pub fn max_order(self) -> u32 {
        match self {
            PcpRules::V4_17 => 0,
            PcpRules::V5_14 => PAGE_ALLOC_COSTLY_ORDER,
        }
    }

    /// `order_to_pindex(migratetype, order)`, or None when the order goes straight to the buddy.
    pub fn pindex(self, order: u32, mt: MigrateType) -> Option<usize> {
        // free_unref_page: a HIGHATOMIC page goes on the MOVABLE list
        let m = match mt {
            MigrateType::HighAtomic => MigrateType::Movable as usize,
            m => m as usize,
        };
        (order <= self.max_order()).then_some(PCPTYPES * order as usize + m)
    }

    fn nr_lists(self) -> usize {
        PCPTYPES * (self.max_order() as usize + 1)
    }

    /// `zone_batchsize` then `pageset_set_high_and_batch` / `zone_set_pageset_high_and_batch` for a
    /// zone with `managed` pages: (batch, high).
    pub fn batch_high(self, managed: u64, page_size: u64) -> (u64, u64) {
        let cap = match self {
            PcpRules::V4_17 => (512 << 10) / page_size,
            PcpRules::V5_14 => (1 << 20) / page_size,
        };
        let b = ((managed / 1024).min(cap) / 4).max(1);
        // rounddown_pow_of_two(batch + batch / 2) - 1: a 2^n - 1 batch
        let b = (1u64 << (b + b / 2).ilog2()) - 1;
        match self {
            PcpRules::V4_17 => (b.max(1), 6 * b),
            PcpRules::V5_14 => (b.max(1), 4 * b.max(1)),
        }
    }
}

/// The boot pageset's (batch, high): `BOOT_PAGESET_BATCH`, `BOOT_PAGESET_HIGH`.
pub const BOOT_PAGESET: (u64, u64) = (1, 0);

/// One CPU's `per_cpu_pages` of one zone. Lists hold dense page indices, head first.
#[derive(Debug)]
pub struct PerCpuPages {
    pub count: u64,
    pub batch: u64,
    pub high: u64,
    free_factor: u32,
    lists: Vec<VecDeque<usize>>,
}

impl PerCpuPages {
    pub fn new(rules: PcpRules) -> PerCpuPages {
        PerCpuPages {
            count: 0,
            batch: BOOT_PAGESET.0,
            high: BOOT_PAGESET.1,
            free_factor: 0,
            lists: vec![VecDeque::new(); rules.nr_lists()],
        }
    }

    /// `pageset_update`.
    pub fn set_batch_high(&mut self, batch: u64, high: u64) {
        self.batch = batch;
        self.high = high;
    }

    /// Block heads on the list of `(order, mt)`, head first.
    pub fn list(&self, rules: PcpRules, order: u32, mt: MigrateType) -> Vec<usize> {
        rules
            .pindex(order, mt)
            .filter(|_| mt != MigrateType::HighAtomic)
            .map_or_else(Vec::new, |p| {
                self.lists[p].iter().copied().collect()
            })
    }

    /// Every block on this CPU's lists: (head, order).
    pub fn blocks(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.lists
            .iter()
            .enumerate()
            .flat_map(|(p, l)| l.iter().map(move |&i| (i, (p / PCPTYPES) as u32)))
    }

    /// `rmqueue_pcplist` / `__rmqueue_pcplist`: the head of the `(order, mt)` list, refilled from the
    /// buddy lists first if it is empty (`rmqueue_bulk`, under `zone->lock`, each block to the tail).
    /// The block handed out is marked ALLOCATED. None: the buddy had nothing either.
    pub fn alloc(
        &mut self,
        rules: PcpRules,
        area: &crate::sync::ZoneLock<FreeArea>,
        pa: &PageArray,
        order: u32,
        mt: MigrateType,
        nofragment: bool,
    ) -> Option<usize> {
        let p = rules.pindex(order, mt)?;
        if rules == PcpRules::V5_14 {
            self.free_factor >>= 1;
        }
        if self.lists[p].is_empty() {
            // scale the batch by order unless it is the boot pageset's 1 (5.13+)
            let n = match rules {
                PcpRules::V5_14 if self.batch > 1 => (self.batch >> order).max(2),
                _ => self.batch,
            };
            let mut a = area.lock();
            for _ in 0..n {
                let Some(i) = a.take(pa, order, mt, nofragment) else {
                    break;
                };
                pa.set_buddy_order(i, None);
                self.lists[p].push_back(i);
                self.count += 1 << order;
            }
        }
        let i = self.lists[p].pop_front()?;
        self.count -= 1 << order;
        // ALLOCATED before the mark, so that a free that finds the mark finds the block ALLOCATED; a
        // merge under zone->lock ignores an allocated mark (`ALLOCATED_HEAD`), whatever state it reads
        pa.set_state_range(i, 1 << order, PageState::Allocated);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        pa.set_allocated_order(i, order);
        Some(i)
    }

    /// `free_unref_page_commit`: the block `(i, order)` (its pages already FREE, no head mark) to the
    /// head of its list (`mt`: the pageblock's type at free time); a drain once `count >= high`.
    #[allow(clippy::too_many_arguments)]
    pub fn free(
        &mut self,
        rules: PcpRules,
        area: &crate::sync::ZoneLock<FreeArea>,
        pa: &PageArray,
        fallback: Fallback,
        i: usize,
        order: u32,
        mt: MigrateType,
    ) -> Vec<UninitBuddy> {
        let p = rules
            .pindex(order, mt)
            .expect("the caller checked pcp_allowed_order");
        self.lists[p].push_front(i);
        self.count += 1 << order;
        match rules {
            PcpRules::V4_17 if self.count >= self.high => {
                let n = self.batch;
                self.drain(rules, &mut area.lock(), pa, fallback, n, 0)
            }
            PcpRules::V4_17 => Vec::new(),
            PcpRules::V5_14 => {
                let free_high = self.free_factor > 0 && order > 0;
                // nr_pcp_high: 0 for the boot pageset or when high orders are freed in bulk
                let high = if self.high == 0 || free_high {
                    0
                } else {
                    self.high
                };
                if self.count < high {
                    return Vec::new();
                }
                let n = self.nr_pcp_free(high, free_high);
                self.drain(rules, &mut area.lock(), pa, fallback, n, p)
            }
        }
    }

    /// `nr_pcp_free` (5.14+): how many pages a drain after a free returns.
    fn nr_pcp_free(&mut self, high: u64, free_high: bool) -> u64 {
        if free_high {
            return self.count;
        }
        if high < self.batch {
            return 1;
        }
        let (min_nr, max_nr) = (self.batch, high - self.batch);
        let b = self.batch << self.free_factor.min(32);
        if b < max_nr {
            self.free_factor += 1;
        }
        b.max(min_nr).min(max_nr) // clamp(batch, min, max)
    }

    /// `free_pcppages_bulk(zone, count, pcp, pindex)`: `count` pages back to the buddy lists, each
    /// block from the tail of its list (`__free_one_page`, merge-likely placement). 4.17: round-robin
    /// over the lists, `batch_free` blocks from each; 5.14+: a whole list at a time, from `pindex`.
    /// Before 6.10 a block goes to the buddy list of the pcp list's type, from 6.10 (`Claim`) to its
    /// pageblock's.
    #[allow(clippy::cast_possible_wrap)] // page counts are far below 2^63
    pub fn drain(
        &mut self,
        rules: PcpRules,
        area: &mut FreeArea,
        pa: &PageArray,
        fallback: Fallback,
        count: u64,
        pindex: usize,
    ) -> Vec<UninitBuddy> {
        let mut count = count.min(self.count) as i64;
        let mut refused = Vec::new();
        let mut give = |lists: &mut Vec<VecDeque<usize>>, p: usize| -> u64 {
            let i = lists[p].pop_back().expect("a non-empty list");
            let order = (p / PCPTYPES) as u32;
            let mt = match fallback {
                Fallback::Claim => pa.pageblock_migratetype(i),
                _ => MigrateType::ALL[p % PCPTYPES],
            };
            if let Err(u) = area.free_mt(pa, i, order, mt, ListEnd::MergeLikely) {
                refused.push(u);
            }
            1 << order
        };
        match rules {
            PcpRules::V4_17 => {
                let (mut mt, mut batch_free) = (0usize, 0i64);
                while count > 0 {
                    loop {
                        batch_free += 1;
                        mt = (mt + 1) % PCPTYPES;
                        if !self.lists[mt].is_empty() {
                            break;
                        }
                    }
                    // the only non-empty list: free them all
                    if batch_free == PCPTYPES as i64 {
                        batch_free = count;
                    }
                    loop {
                        let n = give(&mut self.lists, mt);
                        self.count -= n;
                        count -= 1;
                        batch_free -= 1;
                        if count == 0 || batch_free == 0 || self.lists[mt].is_empty() {
                            break;
                        }
                    }
                }
            }
            PcpRules::V5_14 => {
                let (mut lo, mut hi) = (0usize, self.lists.len() - 1);
                let mut p = pindex.wrapping_sub(1);
                while count > 0 {
                    loop {
                        p = p.wrapping_add(1);
                        if p > hi {
                            p = lo;
                        }
                        if !self.lists[p].is_empty() {
                            break;
                        }
                        if p == hi {
                            hi -= 1;
                        }
                        if p == lo {
                            lo += 1;
                        }
                    }
                    loop {
                        let n = give(&mut self.lists, p);
                        self.count -= n;
                        count -= n as i64;
                        if count <= 0 || self.lists[p].is_empty() {
                            break;
                        }
                    }
                }
            }
        }
        refused
    }
}

/// The machine's entry points to its per-CPU lists: set-up, the allocator's fast path, drains.
impl crate::machine::Machine {
    /// `setup_per_cpu_pageset()` (start_kernel, after `memblock_free_all` and before
    /// `page_alloc_init_late`): every zone's per-CPU lists get batch and high from its managed pages
    /// now; until then they are the boot pageset (batch 1, high 0).
    pub fn setup_per_cpu_pageset(&self) -> crate::Result<()> {
        self.require_allocator("setup_per_cpu_pageset()")?;
        if self.pcp_ready.swap(true, crate::sync::Ordering::AcqRel) {
            return Err(crate::Error::Phase(
                "setup_per_cpu_pageset() called twice (start_kernel calls it once)".into(),
            ));
        }
        self.zone_pcp_update();
        Ok(())
    }

    /// `zone_pcp_update` of every populated zone: batch and high from managed pages, on every CPU.
    pub(crate) fn zone_pcp_update(&self) {
        let rules = self.policy.pcp();
        let ps = self.geometry().page_size();
        for z in self.nodes.iter().flat_map(|n| n.zones.iter()) {
            if z.span.present == 0 {
                continue; // unpopulated zones keep the boot pageset
            }
            let (batch, high) = rules.batch_high(z.area.lock().managed, ps);
            for p in &z.pcp {
                p.lock().set_batch_high(batch, high);
            }
        }
    }

    /// `rmqueue_pcplist` on `cpu` (the caller checked that `order` has per-CPU lists).
    pub(crate) fn rmqueue_pcplist(
        &self,
        ni: usize,
        zi: usize,
        order: u32,
        mt: MigrateType,
        nofragment: bool,
        cpu: u32,
    ) -> Option<usize> {
        let rules = self.policy.pcp();
        let z = &self.nodes[ni].zones[zi];
        let mut pcp = z.pcp[cpu as usize].lock();
        let got = pcp.alloc(rules, &z.area, &self.pages, order, mt, nofragment);
        // under the pcp lock, so a racing free and reallocation on this CPU are recorded in order
        got.inspect(|&i| self.ledger.received(self.pages.pfn(i), order))
    }

    /// `free_unref_page` on `cpu` of a block whose head the caller already turned FREE: the whole
    /// block FREE and off the buddy's books, then onto `cpu`'s list (a drain may follow). False when
    /// `order` has no per-CPU lists (the caller frees to the buddy).
    pub(crate) fn free_unref_page(
        &self,
        ni: usize,
        zi: usize,
        i: usize,
        order: u32,
        cpu: u32,
    ) -> bool {
        let rules = self.policy.pcp();
        if order > rules.max_order() {
            return false;
        }
        let z = &self.nodes[ni].zones[zi];
        self.pages.set_buddy_order(i, None); // no mark of either kind on a per-CPU list
        self.pages.set_state_range(i, 1 << order, PageState::Free);
        let mt = self.pages.pageblock_migratetype(i);
        let refused = z.pcp[cpu as usize].lock().free(
            rules,
            &z.area,
            &self.pages,
            self.policy.fallback(),
            i,
            order,
            mt,
        );
        for u in refused {
            self.report_uninit_buddy(Err(u));
        }
        true
    }

    /// `drain_all_pages(NULL)`: every CPU's lists of every zone back to the buddy allocator. Returns the
    /// pages drained.
    pub fn drain_all_pages(&self) -> u64 {
        let rules = self.policy.pcp();
        let mut drained = 0;
        for z in self.nodes.iter().flat_map(|n| n.zones.iter()) {
            for p in &z.pcp {
                let mut pcp = p.lock();
                if pcp.count == 0 {
                    continue;
                }
                let n = pcp.count;
                let refused = pcp.drain(
                    rules,
                    &mut z.area.lock(),
                    &self.pages,
                    self.policy.fallback(),
                    n,
                    0,
                );
                drained += n;
                for u in refused {
                    self.report_uninit_buddy(Err(u));
                }
            }
        }
        drained
    }

    /// One CPU's per-CPU lists of a zone: (count, batch, high, block-head pfns per `[order][type]`
    /// for the orders with lists and UNMOVABLE, MOVABLE, RECLAIMABLE, head first).
    pub fn pcp_lists(&self, ni: usize, zi: usize, cpu: u32) -> crate::Result<PcpView> {
        self.check_cpu(cpu)?;
        let rules = self.policy.pcp();
        let pcp = self.nodes[ni].zones[zi].pcp[cpu as usize].lock();
        let lists = (0..=rules.max_order())
            .map(|o| {
                MigrateType::ALL[..PCPTYPES]
                    .iter()
                    .map(|&mt| {
                        pcp.list(rules, o, mt)
                            .into_iter()
                            .map(|i| self.pages.pfn(i))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Ok(PcpView {
            count: pcp.count,
            batch: pcp.batch,
            high: pcp.high,
            lists,
        })
    }
}

/// What `Machine::pcp_lists` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcpView {
    pub count: u64,
    pub batch: u64,
    pub high: u64,
    pub lists: Vec<Vec<Vec<u64>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zone_batchsize by hand. 4.17, 4 KiB pages: 32768 managed pages (one 128 MiB section) ->
    /// 32768 / 1024 = 32 (under the 128-page cap), / 4 = 8, rounddown_pow_of_two(8 + 4) - 1 = 7,
    /// high 6 * 7 = 42. 1 GiB (262144 pages): 256 capped at 128, / 4 = 32, rounddown(48) - 1 = 31,
    /// high 186. 5.14: 1 GiB -> 256 (cap 256), / 4 = 64, rounddown(96) - 1 = 63, high 4 * 63 = 252.
    /// A 3998-page DMA zone: 3998 / 1024 = 3, / 4 = 0 -> 1, rounddown(1) - 1 = 0: 4.17 batch
    /// max(1, 0) = 1 and high 0 (a pass-through pageset); 5.14 batch 1, high 4.
    #[test]
    fn batch_and_high_by_hand() {
        assert_eq!(PcpRules::V4_17.batch_high(32768, 4096), (7, 42));
        assert_eq!(PcpRules::V4_17.batch_high(262144, 4096), (31, 186));
        assert_eq!(PcpRules::V5_14.batch_high(262144, 4096), (63, 252));
        assert_eq!(PcpRules::V4_17.batch_high(3998, 4096), (1, 0));
        assert_eq!(PcpRules::V5_14.batch_high(3998, 4096), (1, 4));
    }

    /// UNMOVABLE pcp blocks 0, 2, 4 (freed in that order: list [4, 2, 0]) and MOVABLE 8, 10 ([10, 8]),
    /// pageblocks of order 3, max order 4; no page next to them is free, so nothing merges, and each
    /// drained page goes to the head of its type's order-0 list (merge-likely: the parent's buddy is
    /// never free). 4.17's free_pcppages_bulk(count) starts each call at list 1 with batch_free 0:
    /// count 1 frees MOVABLE's tail, 8. Count 2: list 1 again, 10 (batch_free back to 0), then list 2
    /// (empty, batch_free 2) and list 0: its tail, 0. Count 1: lists 1 and 2 are empty, so batch_free
    /// reaches 3 at list 0 and becomes the count: its tail, 2. 5.14's drain from pindex 0 empties a
    /// list before the next: count 4 frees 0, 2, 4 (list 0, tail first), then 8.
    #[test]
    fn drain_order_per_generation() {
        use crate::geometry::Geometry;
        use crate::page::InitBy;
        use crate::sync::ZoneLock;
        use crate::topology::ZoneType;
        use MigrateType::{Movable, Unmovable};
        for rules in [PcpRules::V4_17, PcpRules::V5_14] {
            let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap();
            let pa = PageArray::new(g, &[(0, 1)]);
            pa.init_range(0, 64, ZoneType::Normal, 0, InitBy::Early);
            pa.set_pageblock_range(0, 3, Unmovable);
            let area = ZoneLock::new(FreeArea::new(4, 3, Fallback::MoveTail));
            let mut pcp = PerCpuPages::new(rules);
            pcp.set_batch_high(1, 100);
            for (i, mt) in [
                (0, Unmovable),
                (2, Unmovable),
                (4, Unmovable),
                (8, Movable),
                (10, Movable),
            ] {
                pa.set_state_range(i, 1, PageState::Free);
                assert!(pcp
                    .free(rules, &area, &pa, Fallback::MoveTail, i, 0, mt)
                    .is_empty());
            }
            assert_eq!(pcp.list(rules, 0, Unmovable), vec![4, 2, 0]);
            let lists = |a: &FreeArea| (a.list_mt(&pa, 0, Unmovable), a.list_mt(&pa, 0, Movable));
            let mut drain = |n: u64| {
                let mut a = area.lock();
                pcp.drain(rules, &mut a, &pa, Fallback::MoveTail, n, 0);
                lists(&a)
            };
            if rules == PcpRules::V4_17 {
                assert_eq!(drain(1), (vec![], vec![8]));
                assert_eq!(drain(2), (vec![0], vec![10, 8]));
                assert_eq!(drain(1), (vec![2, 0], vec![10, 8]));
            } else {
                assert_eq!(drain(4), (vec![4, 2, 0], vec![8]));
            }
            assert_eq!(pcp.count, 1, "{rules:?}");
        }
    }

    #[test]
    fn pindex_per_generation() {
        use MigrateType::*;
        assert_eq!(PcpRules::V4_17.pindex(0, Reclaimable), Some(2));
        assert_eq!(PcpRules::V4_17.pindex(1, Unmovable), None);
        assert_eq!(PcpRules::V5_14.pindex(3, Movable), Some(10));
        assert_eq!(PcpRules::V5_14.pindex(0, HighAtomic), Some(1));
        assert_eq!(PcpRules::V5_14.pindex(4, Unmovable), None);
    }
}

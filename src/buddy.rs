//! The buddy allocator of one zone: free areas per order, split on allocation, merge on free.
//!
//! Free lists are intrusive doubly linked lists through the page array's `next`/`prev` links. The
//! caller holds the zone lock (`Mutex<FreeArea>`). There is one list per order and migratetype
//! (`migratetype`); allocation and fallback follow `__rmqueue` of the machine's generation. Merging reads the buddy's descriptor, which is why a
//! buddy that is still UNINIT is a bug (B-I2): it is reported, never merged.

use crate::migratetype::{can_steal_fallback, Fallback, MigrateType, NR_MIGRATETYPES};
use crate::page::{PageArray, PageState, NIL};
use crate::sync::{AtomicU64, Ordering};
use crate::topology::ZoneType;

/// What `zone_watermark_fast` reads without `zone->lock` (the vmstat counter NR_FREE_PAGES and
/// which orders have free blocks), published by every change under the lock.
#[derive(Debug, Default)]
pub struct FreeMirror {
    free_pages: AtomicU64,
    orders: AtomicU64,
}

impl FreeMirror {
    /// `zone_watermark_ok` with all marks zero, lock-free: as `FreeArea::watermark_ok` at the last
    /// change.
    pub fn watermark_ok(&self, order: u32) -> bool {
        self.free_pages.load(Ordering::Acquire) >= 1 << order
            && self.orders.load(Ordering::Acquire) >> order != 0
    }
}

/// Where a freed block goes on its list: boot-time releases go to the tail (FPI_TO_TAIL, 5.10+) or
/// by `MergeLikely`, runtime frees to the head; allocation takes the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListEnd {
    Head,
    Tail,
    /// Before 5.10, `__free_one_page` ([K4.19]): the merged block `(p, k)` goes to the tail if
    /// `k < max_order - 1` and the buddy of the order-(k+1) block holding it is a free order-(k+1)
    /// head of the same node and zone (a merge is likely soon), else to the head.
    MergeLikely,
}

/// `zone->free_area[]` plus the zone's page counters.
#[derive(Debug)]
pub struct FreeArea {
    /// List heads and tails by `[order][migratetype]`.
    head: Vec<[usize; NR_MIGRATETYPES]>,
    tail: Vec<[usize; NR_MIGRATETYPES]>,
    /// `free_area[order].nr_free`: blocks of every migratetype.
    pub nr_free: Vec<u64>,
    /// NR_FREE_PAGES
    pub free_pages: u64,
    /// managed_pages: pages ever released into this zone by `__free_pages_core`.
    pub managed: u64,
    pageblock_order: u32,
    fallback: Fallback,
    mirror: std::sync::Arc<FreeMirror>,
}

/// A merge that was refused because the buddy was never initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UninitBuddy {
    pub block: usize,
    pub order: u32,
    pub buddy: usize,
}

/// What `steal_suitable_fallback` left: the caller's block (6.10+), or free lists on which
/// `__rmqueue_smallest` now succeeds.
enum Stolen {
    Page(usize),
    Retry,
}

impl FreeArea {
    pub fn new(max_order: u32, pageblock_order: u32, fallback: Fallback) -> FreeArea {
        let n = max_order as usize + 1;
        FreeArea {
            head: vec![[NIL; NR_MIGRATETYPES]; n],
            tail: vec![[NIL; NR_MIGRATETYPES]; n],
            nr_free: vec![0; n],
            free_pages: 0,
            managed: 0,
            pageblock_order,
            fallback,
            mirror: std::sync::Arc::new(FreeMirror::default()),
        }
    }

    /// The lock-free view of this zone's counters.
    pub fn mirror(&self) -> std::sync::Arc<FreeMirror> {
        self.mirror.clone()
    }

    fn publish(&self) {
        let orders = self
            .nr_free
            .iter()
            .enumerate()
            .fold(0u64, |m, (o, &n)| if n > 0 { m | 1 << o } else { m });
        self.mirror.orders.store(orders, Ordering::Release);
        self.mirror
            .free_pages
            .store(self.free_pages, Ordering::Release);
    }

    pub fn max_order(&self) -> u32 {
        self.nr_free.len() as u32 - 1
    }

    fn link(&mut self, pa: &PageArray, i: usize, order: u32, mt: MigrateType, end: ListEnd) {
        let (o, m) = (order as usize, mt as usize);
        match (end, self.head[o][m]) {
            (_, NIL) => {
                pa.set_next(i, NIL);
                pa.set_prev(i, NIL);
                self.head[o][m] = i;
                self.tail[o][m] = i;
            }
            (ListEnd::Head | ListEnd::MergeLikely, h) => {
                pa.set_next(i, h);
                pa.set_prev(i, NIL);
                pa.set_prev(h, i);
                self.head[o][m] = i;
            }
            (ListEnd::Tail, _) => {
                let t = self.tail[o][m];
                pa.set_prev(i, t);
                pa.set_next(i, NIL);
                pa.set_next(t, i);
                self.tail[o][m] = i;
            }
        }
        self.nr_free[o] += 1;
    }

    /// `list_del`: the links say where the block sits; a list end is found among the heads/tails.
    fn unlink(&mut self, pa: &PageArray, i: usize, order: u32) {
        let o = order as usize;
        let me = i;
        let (next, prev) = (pa.next(i), pa.prev(i));
        if prev == NIL {
            let h = self.head[o].iter_mut().find(|h| **h == me);
            *h.expect("a block without a predecessor heads a list") = next;
        } else {
            pa.set_next(prev, next);
        }
        if next == NIL {
            let t = self.tail[o].iter_mut().find(|t| **t == me);
            *t.expect("a block without a successor ends a list") = prev;
        } else {
            pa.set_prev(next, prev);
        }
        self.nr_free[o] -= 1;
    }

    /// Whether block `i` heads (`head`) or ends the list of `(order, mt)`.
    pub fn is_list_end(&self, order: u32, mt: MigrateType, i: usize, head: bool) -> bool {
        let ends = if head { &self.head } else { &self.tail };
        ends[order as usize][mt as usize] == i
    }

    /// Block heads on the list of `(order, mt)`, head first.
    pub fn list_mt(&self, pa: &PageArray, order: u32, mt: MigrateType) -> Vec<usize> {
        let mut out = Vec::new();
        let mut cur = self.head[order as usize][mt as usize];
        while cur != NIL && out.len() as u64 <= self.nr_free[order as usize] {
            out.push(cur);
            cur = pa.next(cur);
        }
        out
    }

    /// Block heads of every migratetype's list of `order`: UNMOVABLE's first, each head first.
    pub fn list(&self, pa: &PageArray, order: u32) -> Vec<usize> {
        MigrateType::ALL
            .into_iter()
            .flat_map(|mt| self.list_mt(pa, order, mt))
            .collect()
    }

    /// `/proc/pagetypeinfo`'s row of one migratetype: free blocks per order.
    pub fn nr_free_mt(&self, pa: &PageArray, mt: MigrateType) -> Vec<u64> {
        (0..=self.max_order())
            .map(|o| self.list_mt(pa, o, mt).len() as u64)
            .collect()
    }

    /// `zone_watermark_ok` with all marks zero (the on-demand window): enough free pages and a block of
    /// at least this order.
    pub fn watermark_ok(&self, order: u32) -> bool {
        self.free_pages >= 1 << order && self.nr_free[order as usize..].iter().any(|&n| n > 0)
    }

    /// `__rmqueue` for the caller: `take`, then the `2^order` pages are ALLOCATED.
    pub fn rmqueue(
        &mut self,
        pa: &PageArray,
        order: u32,
        mt: MigrateType,
        nofragment: bool,
    ) -> Option<usize> {
        let i = self.take(pa, order, mt, nofragment)?;
        pa.set_state_range(i, 1 << order, PageState::Allocated);
        pa.set_allocated_order(i, order);
        Some(i)
    }

    /// `__rmqueue`: `__rmqueue_smallest` of `mt`, else `__rmqueue_fallback` (with `ALLOC_NOFRAGMENT`:
    /// only blocks of at least a pageblock), then the smallest again. The block leaves the free lists
    /// and NR_FREE_PAGES (its pages stay FREE: `rmqueue_bulk` puts it on a per-CPU list). Returns the
    /// head's dense index.
    pub fn take(
        &mut self,
        pa: &PageArray,
        order: u32,
        mt: MigrateType,
        nofragment: bool,
    ) -> Option<usize> {
        let i = loop {
            if let Some(i) = self.rmqueue_smallest(pa, order, mt) {
                break i;
            }
            match self.rmqueue_fallback(pa, order, mt, nofragment)? {
                Stolen::Page(i) => break i,
                Stolen::Retry => {}
            }
        };
        self.free_pages -= 1 << order;
        self.publish();
        Some(i)
    }

    /// `__rmqueue_smallest`: the head block of the smallest sufficient order on `mt`'s lists.
    fn rmqueue_smallest(&mut self, pa: &PageArray, order: u32, mt: MigrateType) -> Option<usize> {
        let j = (order..=self.max_order()).find(|&j| self.head[j as usize][mt as usize] != NIL)?;
        let i = self.head[j as usize][mt as usize];
        self.unlink(pa, i, j);
        self.expand(pa, i, order, j, mt);
        Some(i)
    }

    /// `expand`: split `(i, high)` down to `low`, the upper halves to the heads of `mt`'s lists.
    fn expand(&mut self, pa: &PageArray, i: usize, low: u32, high: u32, mt: MigrateType) {
        let mut j = high;
        while j > low {
            j -= 1;
            let half = i + (1 << j);
            pa.set_buddy_order(half, Some(j));
            self.link(pa, half, j, mt, ListEnd::Head);
        }
    }

    /// `find_suitable_fallback(area, order, start, false, &can_steal)`: the first type of
    /// `fallbacks[start]` with a free block of `order`, and whether the pageblock may be taken too.
    fn find_suitable_fallback(
        &self,
        order: u32,
        start: MigrateType,
    ) -> Option<(MigrateType, bool)> {
        if self.nr_free[order as usize] == 0 {
            return None;
        }
        let f = start
            .fallbacks()
            .iter()
            .copied()
            .find(|&f| self.head[order as usize][f as usize] != NIL)?;
        Some((f, can_steal_fallback(order, start, self.pageblock_order)))
    }

    /// `__rmqueue_fallback`: the largest order (down to `pageblock_order` under ALLOC_NOFRAGMENT) with
    /// a suitable fallback; a MOVABLE request that could not take the pageblock takes the smallest
    /// such block instead. Then `steal_suitable_fallback` on the head of that list.
    fn rmqueue_fallback(
        &mut self,
        pa: &PageArray,
        order: u32,
        start: MigrateType,
        nofragment: bool,
    ) -> Option<Stolen> {
        let pbo = self.pageblock_order;
        let min_order = if nofragment && order < pbo {
            pbo
        } else {
            order
        };
        let max = self.max_order();
        let largest = (min_order..=max).rev().find_map(|c| {
            self.find_suitable_fallback(c, start)
                .map(|(f, s)| (c, f, s))
        })?;
        let (cur, f, whole) = match largest {
            (c, _, false) if start == MigrateType::Movable && c > order => {
                (order..=max).find_map(|c| {
                    self.find_suitable_fallback(c, start)
                        .map(|(f, s)| (c, f, s))
                })?
            }
            pick => pick,
        };
        let i = self.head[cur as usize][f as usize];
        Some(self.steal_suitable_fallback(pa, i, cur, order, start, whole))
    }

    /// `steal_suitable_fallback` (see `Fallback` for the three generations). No page of the boot window
    /// is on an LRU list, so `movable_pages` is 0: an UNMOVABLE or RECLAIMABLE request claims a MOVABLE
    /// pageblock always, a MOVABLE one only if at least half of the pageblock is free.
    fn steal_suitable_fallback(
        &mut self,
        pa: &PageArray,
        i: usize,
        cur: u32,
        order: u32,
        start: MigrateType,
        whole_block: bool,
    ) -> Stolen {
        let pbo = self.pageblock_order;
        let old = pa.pageblock_migratetype(i);
        let claims = |free: u64| {
            let alike = if start != MigrateType::Movable && old == MigrateType::Movable {
                (1u64 << pbo) - free
            } else {
                0
            };
            free + alike >= 1 << pbo.saturating_sub(1)
        };
        let end = match self.fallback {
            Fallback::MoveHead => ListEnd::Head,
            Fallback::MoveTail | Fallback::Claim => ListEnd::Tail,
        };
        if self.fallback == Fallback::Claim {
            if old != MigrateType::HighAtomic && cur >= pbo {
                self.unlink(pa, i, cur);
                pa.set_pageblock_range(i, cur, start);
                self.expand(pa, i, order, cur, start);
                return Stolen::Page(i);
            }
            if old != MigrateType::HighAtomic && whole_block {
                let free = self.pageblock_free_pages(pa, i);
                if claims(free) {
                    self.move_freepages_block(pa, i, start, end);
                    pa.set_pageblock_range(i, pbo, start);
                    return Stolen::Retry;
                }
            }
            // page_del_and_expand: the remainders stay with the pageblock's own type
            self.unlink(pa, i, cur);
            self.expand(pa, i, order, cur, old);
            return Stolen::Page(i);
        }
        if old != MigrateType::HighAtomic {
            if cur >= pbo {
                pa.set_pageblock_range(i, cur, start);
            } else if whole_block {
                let free = self.move_freepages_block(pa, i, start, end);
                if claims(free) {
                    pa.set_pageblock_range(i, pbo, start);
                }
                return Stolen::Retry;
            }
        }
        // single_page: only this block changes lists
        self.unlink(pa, i, cur);
        self.link(pa, i, cur, start, end);
        Stolen::Retry
    }

    /// The free blocks of this zone whose heads lie in `i`'s pageblock, ascending.
    fn pageblock_free_blocks(&self, pa: &PageArray, i: usize) -> Vec<(usize, u32)> {
        let pbn = 1usize << self.pageblock_order;
        let start = i & !(pbn - 1);
        let (nid, zone) = (pa.node_of(i), pa.flags(i).zone());
        let mut out = Vec::new();
        let mut j = start;
        while j < start + pbn {
            let f = pa.flags(j);
            match pa.buddy_order(j) {
                Some(k)
                    if f.state() == PageState::Free && f.zone() == zone && pa.node_of(j) == nid =>
                {
                    out.push((j, k));
                    j += 1 << k;
                }
                _ => j += 1,
            }
        }
        out
    }

    fn pageblock_free_pages(&self, pa: &PageArray, i: usize) -> u64 {
        self.pageblock_free_blocks(pa, i)
            .iter()
            .map(|&(_, k)| 1u64 << k)
            .sum()
    }

    /// `move_freepages_block`: every free block of `i`'s pageblock to `mt`'s lists, in ascending pfn
    /// order, each to `end`. Returns the pages moved.
    fn move_freepages_block(
        &mut self,
        pa: &PageArray,
        i: usize,
        mt: MigrateType,
        end: ListEnd,
    ) -> u64 {
        let mut moved = 0;
        for (j, k) in self.pageblock_free_blocks(pa, i) {
            self.unlink(pa, j, k);
            self.link(pa, j, k, mt, end);
            moved += 1u64 << k;
        }
        moved
    }

    /// `__free_one_page`: mark `[i, i + 2^order)` FREE, merge with free buddies of the same node and
    /// zone up to MAX_PAGE_ORDER, link the result at `end` of the list of its pageblock's migratetype
    /// (`get_pfnblock_migratetype`). Dense indices are section-aligned and a block never crosses a
    /// section, so the buddy of index `i` is `i ^ 2^k`. From 6.10 (`Fallback::Claim`) a HIGHATOMIC block
    /// merges only with its own type, and a buddy of another type takes the freed block's type.
    pub fn free(
        &mut self,
        pa: &PageArray,
        i: usize,
        order: u32,
        end: ListEnd,
    ) -> Result<(), UninitBuddy> {
        self.free_mt(pa, i, order, pa.pageblock_migratetype(i), end)
    }

    /// `__free_one_page(page, pfn, zone, order, migratetype)` with the caller's migratetype (a per-CPU
    /// list's, for `free_pcppages_bulk` before 6.10).
    pub fn free_mt(
        &mut self,
        pa: &PageArray,
        i: usize,
        order: u32,
        mt: MigrateType,
        end: ListEnd,
    ) -> Result<(), UninitBuddy> {
        pa.set_state_range(i, 1 << order, PageState::Free);
        self.free_one_page(pa, i, order, mt, end)
    }

    /// `free` of a block whose pages the caller has already marked FREE outside the zone lock, as
    /// `__free_pages_core` does its per-page work before `__free_pages_ok` takes `zone->lock`: only
    /// the O(order) merge and link run under the lock. The block must be the caller's alone (not on
    /// any list, no head order), so a concurrent merge that sees its pages FREE without a head order
    /// leaves it alone, as it would have before.
    pub fn free_prepared(
        &mut self,
        pa: &PageArray,
        i: usize,
        order: u32,
        end: ListEnd,
    ) -> Result<(), UninitBuddy> {
        self.free_one_page(pa, i, order, pa.pageblock_migratetype(i), end)
    }

    /// The merge and link of `free_mt`, the pages of `[i, i + 2^order)` already FREE.
    fn free_one_page(
        &mut self,
        pa: &PageArray,
        i: usize,
        order: u32,
        mt: MigrateType,
        end: ListEnd,
    ) -> Result<(), UninitBuddy> {
        let (nid, zone): (u16, ZoneType) = (pa.node_of(i), pa.flags(i).zone());
        let hygiene = self.fallback == Fallback::Claim;
        pa.set_buddy_order(i, None);
        self.free_pages += 1 << order;
        let (mut i, mut k) = (i, order);
        let mut refused = Ok(());
        while k < self.max_order() {
            let b = i ^ (1 << k);
            let bf = pa.flags(b);
            if bf.state() == PageState::Uninit {
                refused = Err(UninitBuddy {
                    block: i,
                    order: k,
                    buddy: b,
                });
                break;
            }
            if bf.state() != PageState::Free
                || pa.buddy_order(b) != Some(k)
                || bf.zone() != zone
                || pa.node_of(b) != nid
            {
                break;
            }
            let bmt = pa.pageblock_migratetype(b);
            if hygiene && bmt != mt {
                if bmt == MigrateType::HighAtomic || mt == MigrateType::HighAtomic {
                    break;
                }
                pa.set_pageblock_mt(b, mt);
            }
            self.unlink(pa, b, k);
            pa.set_buddy_order(b, None);
            i = i.min(b);
            k += 1;
        }
        pa.set_buddy_order(i, Some(k));
        let end = match end {
            ListEnd::MergeLikely if k + 1 < self.max_order() => {
                let q = (i & !(1 << k)) ^ (1 << (k + 1));
                let qf = pa.flags(q);
                let free_buddy = qf.state() == PageState::Free
                    && pa.buddy_order(q) == Some(k + 1)
                    && qf.zone() == zone
                    && pa.node_of(q) == nid;
                if free_buddy {
                    ListEnd::Tail
                } else {
                    ListEnd::Head
                }
            }
            ListEnd::MergeLikely => ListEnd::Head,
            e => e,
        };
        self.link(pa, i, k, mt, end);
        self.publish();
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Geometry;
    use MigrateType::{Movable, Unmovable};

    /// 64-page sections, pageblock order 3, max order 4; every page initialised (pageblocks MOVABLE).
    fn setup_with(fallback: Fallback) -> (PageArray, FreeArea) {
        let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap();
        let pa = PageArray::new(g, &[(0, 1)]);
        pa.init_range(0, 64, ZoneType::Normal, 0, crate::page::InitBy::Early);
        (pa, FreeArea::new(4, 3, fallback))
    }

    fn setup() -> (PageArray, FreeArea) {
        setup_with(Fallback::MoveTail)
    }

    /// Every way of handing a stolen block over (`Fallback`), with the `(index, order)` blocks
    /// freed to the tail in turn: `check(fallback, pages, area)` per generation.
    fn per_fallback(blocks: &[(usize, u32)], check: impl Fn(Fallback, PageArray, FreeArea)) {
        for fb in [Fallback::MoveHead, Fallback::MoveTail, Fallback::Claim] {
            let (pa, mut fa) = setup_with(fb);
            for &(i, order) in blocks {
                fa.free(&pa, i, order, ListEnd::Tail).unwrap();
            }
            check(fb, pa, fa);
        }
    }

    #[test]
    fn order0_frees_merge_up_to_max_order() {
        let (pa, mut fa) = setup();
        for i in 0..32 {
            fa.free(&pa, i, 0, ListEnd::Tail).unwrap();
        }
        assert_eq!(fa.nr_free, vec![0, 0, 0, 0, 2]);
        assert_eq!(fa.list(&pa, 4), vec![0, 16]);
        assert_eq!(fa.list_mt(&pa, 4, Movable), vec![0, 16]);
        assert_eq!(fa.free_pages, 32);
    }

    /// What a merge under zone->lock can read while another CPU takes a block off its per-CPU list
    /// (FREE, then ALLOCATED, then the head mark, none of it under the lock): the state before and the
    /// mark after. The CI failure of 4156264 (an unlink of a block on no list: "a block without a
    /// predecessor heads a list"). An allocated mark is no buddy, whatever the state byte says.
    #[test]
    fn a_torn_read_of_a_per_cpu_allocation_is_no_buddy() {
        let (pa, mut fa) = setup();
        for (b, order) in [(2usize, 1u32), (1, 0)] {
            pa.set_state_range(b, 1 << order, PageState::Free);
            pa.set_allocated_order(b, order);
        }
        // page 0's buddy is 1 (order 0), block 0-1's is 2-3 (order 1)
        fa.free(&pa, 0, 0, ListEnd::Tail).unwrap();
        assert_eq!((fa.list(&pa, 0), fa.nr_free[1]), (vec![0], 0));
        assert_eq!((pa.allocated_order(1), pa.allocated_order(2)), (Some(0), Some(1)));
        // nor does a pageblock scan (move_freepages_block) count them as free
        assert_eq!(fa.pageblock_free_blocks(&pa, 0), vec![(0, 0)]);
    }

    #[test]
    fn buddy_and_allocated_marks_are_told_apart() {
        let (pa, _) = setup();
        pa.set_allocated_order(8, 3);
        assert_eq!((pa.buddy_order(8), pa.allocated_order(8)), (None, Some(3)));
        assert!(!pa.try_unhead(8, 2), "not an allocated head of order 2");
        assert!(pa.try_unhead(8, 3));
        assert_eq!((pa.buddy_order(8), pa.allocated_order(8)), (None, None));
        pa.set_buddy_order(8, Some(3));
        assert_eq!((pa.buddy_order(8), pa.allocated_order(8)), (Some(3), None));
        assert!(!pa.try_unhead(8, 3), "a free block is not freed again");
    }

    #[test]
    fn split_and_lifo() {
        let (pa, mut fa) = setup();
        fa.free(&pa, 0, 4, ListEnd::Tail).unwrap();
        let a = fa.rmqueue(&pa, 0, Movable, false).unwrap();
        assert_eq!(a, 0);
        // expand() leaves 8/o3, 4/o2, 2/o1, 1/o0
        assert_eq!(
            (
                fa.list(&pa, 3),
                fa.list(&pa, 2),
                fa.list(&pa, 1),
                fa.list(&pa, 0)
            ),
            (vec![8], vec![4], vec![2], vec![1])
        );
        assert_eq!(pa.state(0), PageState::Allocated);
        fa.free(&pa, 0, 0, ListEnd::Head).unwrap();
        assert_eq!(fa.nr_free, vec![0, 0, 0, 0, 1], "everything merges back");
    }

    /// An UNMOVABLE request with only MOVABLE blocks free: `__rmqueue_fallback` looks from the largest
    /// order down, finds the order-4 block at 16 (the smallest-first rule would give pfn 0), converts
    /// both its pageblocks (2 and 3) to UNMOVABLE, and the retried `__rmqueue_smallest` splits it:
    /// 16 is handed out, 17/o0, 18/o1, 20/o2, 24/o3 go to the UNMOVABLE lists.
    #[test]
    fn unmovable_steals_the_largest_movable_block() {
        per_fallback(&[(0, 1), (4, 2), (16, 4)], |fb, pa, mut fa| {
            assert_eq!(fa.rmqueue(&pa, 0, Unmovable, false), Some(16), "{fb:?}");
            assert_eq!(
                (0..4)
                    .map(|o| fa.list_mt(&pa, o, Unmovable))
                    .collect::<Vec<_>>(),
                vec![vec![17], vec![18], vec![20], vec![24]],
                "{fb:?}"
            );
            assert_eq!(pa.pageblock_migratetype(16), Unmovable);
            assert_eq!(pa.pageblock_migratetype(24), Unmovable);
            assert_eq!(pa.pageblock_migratetype(0), Movable, "{fb:?}");
            assert_eq!(fa.list_mt(&pa, 1, Movable), vec![0]);
        });
    }

    /// Below a pageblock: the order-2 block at 4 is the largest fallback; an UNMOVABLE request may take
    /// the whole pageblock, whose free pages (0-1 and 4-7: 6) plus its non-free ones (2, counted as
    /// alike) reach half of it (4): pageblock 0 becomes UNMOVABLE with both blocks, and the smallest
    /// UNMOVABLE block (0/o1) is split: pfn 0. Under ALLOC_NOFRAGMENT only blocks of order >= 3 may be
    /// stolen: there are none, and the request fails (the caller's hook 2 would grow the zone).
    #[test]
    fn sub_pageblock_steal_claims_the_pageblock_and_nofragment_refuses() {
        per_fallback(&[(0, 1), (4, 2)], |fb, pa, mut fa| {
            assert_eq!(fa.rmqueue(&pa, 0, Unmovable, true), None, "{fb:?}");
            assert_eq!(fa.free_pages, 6);
            assert_eq!(fa.rmqueue(&pa, 0, Unmovable, false), Some(0), "{fb:?}");
            assert_eq!(pa.pageblock_migratetype(0), Unmovable);
            assert_eq!(fa.list_mt(&pa, 0, Unmovable), vec![1]);
            assert_eq!(fa.list_mt(&pa, 2, Unmovable), vec![4]);
        });
    }

    /// A MOVABLE request falling back to a small UNMOVABLE block (order 1 >= pageblock_order / 2, so
    /// the pageblock may be taken, but 2 free pages < 4 and no alike pages: not claimed). Before 6.10
    /// the block moves to the MOVABLE list and is split there (1 stays MOVABLE); from 6.10 it is split
    /// in place and 1 stays UNMOVABLE.
    #[test]
    fn unclaimed_steal_remainders_per_generation() {
        for (fb, rest) in [
            (Fallback::MoveTail, Movable),
            (Fallback::MoveHead, Movable),
            (Fallback::Claim, Unmovable),
        ] {
            let (pa, mut fa) = setup_with(fb);
            pa.set_pageblock_mt(0, Unmovable);
            fa.free(&pa, 0, 1, ListEnd::Tail).unwrap();
            assert_eq!(fa.list_mt(&pa, 1, Unmovable), vec![0]);
            assert_eq!(fa.rmqueue(&pa, 0, Movable, false), Some(0));
            assert_eq!(fa.list_mt(&pa, 0, rest), vec![1], "{fb:?}");
            assert_eq!(pa.pageblock_migratetype(0), Unmovable);
        }
    }

    /// The pre-5.10 rule, max order 4 (so the tail is possible for k < 3): freeing 8..16 at order 3
    /// finds the order-4 block's buddy... none exists at k = 3 (k + 1 = 4 = max_order): head. Order 1
    /// at 0 with [4, 8) free at order 2: the order-2 block holding 0 is [0, 4), its buddy 4 is a free
    /// order-2 head -> tail. Order 1 at 16 with nothing free around -> head.
    #[test]
    fn merge_likely_placement() {
        let (pa, mut fa) = setup();
        // (blocks freed in turn, then the list of this order reads)
        type Step<'a> = (&'a [(usize, u32)], u32, Vec<usize>, &'a str);
        let steps: [Step; 2] = [
            (
                &[(4, 2), (16, 1), (0, 1)],
                1,
                vec![16, 0],
                "0 went to the tail, 16 to the head",
            ),
            (
                &[(40, 3), (24, 3)],
                3,
                vec![24, 40],
                "order max_order - 1: always the head",
            ),
        ];
        for (blocks, order, want, why) in steps {
            for &(i, o) in blocks {
                fa.free(&pa, i, o, ListEnd::MergeLikely).unwrap();
            }
            assert_eq!(fa.list(&pa, order), want, "{why}");
        }
    }

    #[test]
    fn uninit_buddy_is_refused() {
        let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap();
        let pa = PageArray::new(g, &[(0, 1)]);
        pa.init_range(0, 1, ZoneType::Normal, 0, crate::page::InitBy::Early);
        let mut fa = FreeArea::new(4, 3, Fallback::MoveTail);
        assert_eq!(
            fa.free(&pa, 0, 0, ListEnd::Tail),
            Err(UninitBuddy {
                block: 0,
                order: 0,
                buddy: 1
            })
        );
        assert_eq!(fa.nr_free[0], 1);
    }
}

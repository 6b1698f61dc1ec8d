//! The buddy allocator of one zone: free areas per order, split on allocation, merge on free.
//!
//! Free lists are intrusive doubly linked lists through the page array's `next`/`prev` links. The
//! caller holds the zone lock (`Mutex<FreeArea>`). Merging reads the buddy's descriptor, which is why a
//! buddy that is still UNINIT is a bug (B-I2): it is reported, never merged.

use crate::page::{PageArray, PageState, NIL};
use crate::topology::ZoneType;

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
    head: Vec<u32>,
    tail: Vec<u32>,
    pub nr_free: Vec<u64>,
    /// NR_FREE_PAGES
    pub free_pages: u64,
    /// managed_pages: pages ever released into this zone by `__free_pages_core`.
    pub managed: u64,
}

/// A merge that was refused because the buddy was never initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UninitBuddy {
    pub block: usize,
    pub order: u32,
    pub buddy: usize,
}

impl FreeArea {
    pub fn new(max_order: u32) -> FreeArea {
        let n = max_order as usize + 1;
        FreeArea {
            head: vec![NIL; n],
            tail: vec![NIL; n],
            nr_free: vec![0; n],
            free_pages: 0,
            managed: 0,
        }
    }

    pub fn max_order(&self) -> u32 {
        self.nr_free.len() as u32 - 1
    }

    fn link(&mut self, pa: &PageArray, i: usize, order: u32, end: ListEnd) {
        let o = order as usize;
        let i32 = i as u32;
        match (end, self.head[o]) {
            (_, NIL) => {
                pa.next[i].store(NIL, std::sync::atomic::Ordering::Relaxed);
                pa.prev[i].store(NIL, std::sync::atomic::Ordering::Relaxed);
                self.head[o] = i32;
                self.tail[o] = i32;
            }
            (ListEnd::Head | ListEnd::MergeLikely, h) => {
                set(&pa.next[i], h);
                set(&pa.prev[i], NIL);
                set(&pa.prev[h as usize], i32);
                self.head[o] = i32;
            }
            (ListEnd::Tail, _) => {
                let t = self.tail[o];
                set(&pa.prev[i], t);
                set(&pa.next[i], NIL);
                set(&pa.next[t as usize], i32);
                self.tail[o] = i32;
            }
        }
        self.nr_free[o] += 1;
    }

    fn unlink(&mut self, pa: &PageArray, i: usize, order: u32) {
        let o = order as usize;
        let (n, p) = (get(&pa.next[i]), get(&pa.prev[i]));
        if p == NIL {
            self.head[o] = n;
        } else {
            set(&pa.next[p as usize], n);
        }
        if n == NIL {
            self.tail[o] = p;
        } else {
            set(&pa.prev[n as usize], p);
        }
        self.nr_free[o] -= 1;
    }

    /// Block heads on the list of `order`, head first.
    pub fn list(&self, pa: &PageArray, order: u32) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.nr_free[order as usize] as usize);
        let mut cur = self.head[order as usize];
        while cur != NIL && out.len() as u64 <= self.nr_free[order as usize] {
            out.push(cur as usize);
            cur = get(&pa.next[cur as usize]);
        }
        out
    }

    /// `zone_watermark_ok` with all marks zero (the on-demand window): enough free pages and a block of
    /// at least this order.
    pub fn watermark_ok(&self, order: u32) -> bool {
        self.free_pages >= 1 << order && self.nr_free[order as usize..].iter().any(|&n| n > 0)
    }

    /// `__rmqueue_smallest` + `expand`: take the head block of the smallest sufficient order, split it,
    /// mark the `2^order` pages ALLOCATED. Returns the head's dense index.
    pub fn rmqueue(&mut self, pa: &PageArray, order: u32) -> Option<usize> {
        let mut j = (order..=self.max_order()).find(|&j| self.nr_free[j as usize] > 0)?;
        let i = self.head[j as usize] as usize;
        self.unlink(pa, i, j);
        while j > order {
            j -= 1;
            let half = i + (1 << j);
            pa.set_head_order(half, Some(j));
            self.link(pa, half, j, ListEnd::Head);
        }
        pa.set_state_range(i, 1 << order, PageState::Allocated);
        pa.set_head_order(i, Some(order));
        self.free_pages -= 1 << order;
        Some(i)
    }

    /// `__free_one_page`: mark `[i, i + 2^order)` FREE, merge with free buddies of the same node and
    /// zone up to MAX_PAGE_ORDER, link the result at `end`. Dense indices are section-aligned and a
    /// block never crosses a section, so the buddy of index `i` is `i ^ 2^k`.
    pub fn free(
        &mut self,
        pa: &PageArray,
        i: usize,
        order: u32,
        end: ListEnd,
    ) -> Result<(), UninitBuddy> {
        let (nid, zone): (u16, ZoneType) = (pa.node_of(i), pa.flags(i).zone());
        pa.set_state_range(i, 1 << order, PageState::Free);
        pa.set_head_order(i, None);
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
                || pa.head_order(b) != Some(k)
                || bf.zone() != zone
                || pa.node_of(b) != nid
            {
                break;
            }
            self.unlink(pa, b, k);
            pa.set_head_order(b, None);
            i = i.min(b);
            k += 1;
        }
        pa.set_head_order(i, Some(k));
        let end = match end {
            ListEnd::MergeLikely if k + 1 < self.max_order() => {
                let q = (i & !(1 << k)) ^ (1 << (k + 1));
                let qf = pa.flags(q);
                let free_buddy = qf.state() == PageState::Free
                    && pa.head_order(q) == Some(k + 1)
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
        self.link(pa, i, k, end);
        refused
    }
}

#[inline]
fn get(a: &std::sync::atomic::AtomicU32) -> u32 {
    a.load(std::sync::atomic::Ordering::Relaxed)
}
#[inline]
fn set(a: &std::sync::atomic::AtomicU32, v: u32) {
    a.store(v, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Geometry;

    fn setup() -> (PageArray, FreeArea) {
        let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap(); // 64-page sections, max order 4
        let pa = PageArray::new(g, &[(0, 1)]);
        pa.init_range(0, 64, ZoneType::Normal, 0, crate::page::InitBy::Early);
        (pa, FreeArea::new(4))
    }

    #[test]
    fn order0_frees_merge_up_to_max_order() {
        let (pa, mut fa) = setup();
        for i in 0..32 {
            fa.free(&pa, i, 0, ListEnd::Tail).unwrap();
        }
        assert_eq!(fa.nr_free, vec![0, 0, 0, 0, 2]);
        assert_eq!(fa.list(&pa, 4), vec![0, 16]);
        assert_eq!(fa.free_pages, 32);
    }

    #[test]
    fn split_and_lifo() {
        let (pa, mut fa) = setup();
        fa.free(&pa, 0, 4, ListEnd::Tail).unwrap();
        let a = fa.rmqueue(&pa, 0).unwrap();
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

    /// The pre-5.10 rule, max order 4 (so the tail is possible for k < 3): freeing 8..16 at order 3
    /// finds the order-4 block's buddy... none exists at k = 3 (k + 1 = 4 = max_order): head. Order 1
    /// at 0 with [4, 8) free at order 2: the order-2 block holding 0 is [0, 4), its buddy 4 is a free
    /// order-2 head -> tail. Order 1 at 16 with nothing free around -> head.
    #[test]
    fn merge_likely_placement() {
        let (pa, mut fa) = setup();
        fa.free(&pa, 4, 2, ListEnd::MergeLikely).unwrap();
        fa.free(&pa, 16, 1, ListEnd::MergeLikely).unwrap();
        fa.free(&pa, 0, 1, ListEnd::MergeLikely).unwrap();
        assert_eq!(
            fa.list(&pa, 1),
            vec![16, 0],
            "0 went to the tail, 16 to the head"
        );
        fa.free(&pa, 40, 3, ListEnd::MergeLikely).unwrap();
        fa.free(&pa, 24, 3, ListEnd::MergeLikely).unwrap();
        assert_eq!(
            fa.list(&pa, 3),
            vec![24, 40],
            "order max_order - 1: always the head"
        );
    }

    #[test]
    fn uninit_buddy_is_refused() {
        let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap();
        let pa = PageArray::new(g, &[(0, 1)]);
        pa.init_range(0, 1, ZoneType::Normal, 0, crate::page::InitBy::Early);
        let mut fa = FreeArea::new(4);
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

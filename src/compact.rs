//! The compact memmap: per sparsemem section, a summary instead of per-page bytes while all of the
//! section's pages are in one uniform state, dense (the `page` arrays) once something touches it
//! unevenly.
//!
//! Kinds of section (its `kind` byte):
//! - `Zero`: never written. Every field reads zero (UNINIT); the dense bytes are untouched host memory
//!   (the lazily mapped arrays cost nothing there). The first write just makes it `Dense`.
//! - `Init`: every page initialised once by one `init_range` over the whole section: state INIT, one zone,
//!   one node, one boot path, no buddy head. Written in O(1) instead of one store per page.
//! - `FreeRun`: every page FREE (initialised once, one zone, node and boot path), a MAX_PAGE_ORDER head
//!   at every MAX_ORDER-aligned page, and those heads one run of the same free list in ascending or
//!   (the `desc` flag) descending pfn order; the list's links into and out of the run (`prev` of its
//!   first block in list order, `next` of its last) are kept. Ascending is what the boot-time frees
//!   leave from v5.10 on (`FPI_TO_TAIL`); descending what they leave before 5.10, where a freed
//!   MAX_ORDER block goes to the list head (`__free_one_page`), so frees in ascending pfn order link
//!   each block in front of the one before.
//! - `Dense`: the page arrays hold the section.
//!
//! A summary section becomes dense (decoded into the arrays) when a write does not keep its summary: a
//! page allocated or split, a second initialisation. `PageArray::summarize` turns a dense section that
//! is uniformly free back into a summary and hands its host pages back (MADV_DONTNEED), under the zone
//! lock that guards its free-list links. Readers never see a torn section: a reader that read a dense
//! byte re-checks the kind afterwards, and decodes the summary if it changed meanwhile.
//!
//! Per page this costs nothing for summary sections; a dense section costs the dense model's
//! BYTES_PER_PAGE. Per section: a kind byte and a 16-byte summary.

use crate::sync::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Section kinds (the `kind` byte of each section).
pub const ZERO: u8 = 0;
pub const DENSE: u8 = 1;
pub const INIT: u8 = 2;
pub const FREE_RUN: u8 = 3;
/// Being decoded into the dense arrays (readers still decode the summary).
pub const BUSY: u8 = 4;

/// Free-list link meaning "none" (as `page::NIL`).
const NIL: usize = usize::MAX;

/// One section's summary: `meta` = kind | flags << 8 | boot path << 16 | desc << 24 | node << 32 (the kind it has while
/// BUSY is the summary's), and the links into and out of a free run.
#[derive(Default)]
pub struct Summary {
    meta: AtomicU64,
    prev: AtomicUsize,
    next: AtomicUsize,
}

/// The uniform fields of a summary section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uniform {
    /// INIT or FREE_RUN.
    pub kind: u8,
    /// The flags byte every page has.
    pub flags: u8,
    pub init_by: u8,
    pub node: u16,
    /// A free run linked in descending pfn order (list head first: the highest block).
    pub desc: bool,
}

/// Per section of the dense index space: its kind and summary.
pub struct Sections {
    /// log2 pages per section and per MAX_ORDER block.
    pub shift: u32,
    pub max_order: u32,
    kind: Vec<AtomicU8>,
    sum: Vec<Summary>,
    /// Summaries decoded back into dense sections so far.
    decoded: AtomicU64,
}

/// One page of a summary section, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub flags: u8,
    pub node: u16,
    /// `order + ORDER_BIAS` at a head, else 0.
    pub order1: u8,
    pub init_by: u8,
}

impl Sections {
    /// `pages` dense indices (a whole number of sections), every section ZERO.
    pub fn new(pages: usize, shift: u32, max_order: u32) -> Sections {
        let n = pages >> shift;
        Sections {
            shift,
            max_order,
            kind: (0..n).map(|_| AtomicU8::new(ZERO)).collect(),
            sum: (0..n).map(|_| Summary::default()).collect(),
            decoded: AtomicU64::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.kind.len()
    }
    pub fn is_empty(&self) -> bool {
        self.kind.is_empty()
    }

    #[inline]
    pub fn section(&self, i: usize) -> usize {
        i >> self.shift
    }

    /// Kind of section `s` (Acquire: a summary's fields are published before its kind).
    #[inline]
    pub fn kind(&self, s: usize) -> u8 {
        self.kind[s].load(Ordering::Acquire)
    }

    /// The summary of section `s` if it has one now (also while it is being decoded).
    #[inline]
    pub fn uniform(&self, s: usize) -> Option<Uniform> {
        match self.kind(s) {
            ZERO | DENSE => None,
            _ => Some(self.meta(s)),
        }
    }

    fn meta(&self, s: usize) -> Uniform {
        let m = self.sum[s].meta.load(Ordering::Acquire);
        Uniform {
            kind: m as u8,
            flags: (m >> 8) as u8,
            init_by: (m >> 16) as u8,
            desc: (m >> 24) & 1 != 0,
            node: (m >> 32) as u16,
        }
    }

    fn store_meta(&self, s: usize, u: Uniform) {
        let m = u64::from(u.kind)
            | u64::from(u.flags) << 8
            | u64::from(u.init_by) << 16
            | u64::from(u.desc) << 24
            | u64::from(u.node) << 32;
        self.sum[s].meta.store(m, Ordering::Release);
    }

    /// Page `i` of a section summarised as `u`.
    #[inline]
    pub fn decode(&self, i: usize, u: Uniform, order_bias: u8) -> Decoded {
        let head = u.kind != INIT && i.trailing_zeros() >= self.max_order;
        Decoded {
            flags: u.flags,
            node: u.node,
            order1: if head {
                self.max_order as u8 + order_bias
            } else {
                0
            },
            init_by: u.init_by,
        }
    }

    /// Blocks per section and block `j`'s head index in section `s`.
    fn blocks(&self) -> usize {
        1 << (self.shift - self.max_order)
    }
    fn head(&self, s: usize, j: usize) -> usize {
        (s << self.shift) + (j << self.max_order)
    }

    /// The (next, prev) links of page `i` of a free-run section `s` summarised as `u` (NIL off the heads).
    /// In list order the run goes up the blocks (ascending) or down them (`desc`).
    pub fn links(&self, sec: usize, page: usize, sum: Uniform) -> (usize, usize) {
        if sum.kind == INIT || page.trailing_zeros() < self.max_order {
            return (NIL, NIL);
        }
        let block = (page - (sec << self.shift)) >> self.max_order;
        let last = self.blocks() - 1;
        let (into, out) = (
            self.sum[sec].prev.load(Ordering::Relaxed),
            self.sum[sec].next.load(Ordering::Relaxed),
        );
        let (up, down) = (
            if block < last {
                self.head(sec, block + 1)
            } else if sum.desc {
                into
            } else {
                out
            },
            if block > 0 {
                self.head(sec, block - 1)
            } else if sum.desc {
                out
            } else {
                into
            },
        );
        if sum.desc {
            (down, up)
        } else {
            (up, down)
        }
    }

    /// A link write to page `i` of free-run section `s` that keeps the summary: the same value, or the
    /// link out of the run's last block in list order (`next`) or into its first (`prev`). False: decode
    /// first.
    pub fn set_link_keeps(
        &self,
        sec: usize,
        page: usize,
        sum: Uniform,
        next: bool,
        value: usize,
    ) -> bool {
        if sum.kind == INIT || page.trailing_zeros() < self.max_order {
            return false;
        }
        let (now_next, now_prev) = self.links(sec, page, sum);
        if (if next { now_next } else { now_prev }) == value {
            return true;
        }
        let block = (page - (sec << self.shift)) >> self.max_order;
        let (list_first, list_last) = if sum.desc {
            (self.blocks() - 1, 0)
        } else {
            (0, self.blocks() - 1)
        };
        if next && block == list_last {
            self.sum[sec].next.store(value, Ordering::Relaxed);
            true
        } else if !next && block == list_first {
            self.sum[sec].prev.store(value, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Claim summary section `s` for decoding (kind -> BUSY): Some(its summary) for the one caller that
    /// must decode it and then `set_dense`; None once it is dense (ZERO becomes DENSE here: its bytes are
    /// the zeroed arrays). Waits while another caller decodes it.
    pub fn claim(&self, s: usize) -> Option<Uniform> {
        loop {
            let k = self.kind(s);
            match k {
                DENSE => return None,
                ZERO => {
                    if self.cas(s, ZERO, DENSE) {
                        return None;
                    }
                }
                BUSY => std::hint::spin_loop(),
                _ => {
                    if self.cas(s, k, BUSY) {
                        self.decoded.fetch_add(1, Ordering::Relaxed);
                        return Some(self.meta(s));
                    }
                }
            }
        }
    }

    fn cas(&self, s: usize, from: u8, to: u8) -> bool {
        self.kind[s]
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn set_dense(&self, s: usize) {
        self.kind[s].store(DENSE, Ordering::Release);
    }

    /// An untouched (ZERO) section initialised whole by one boot path: true if it is now INIT.
    /// (The summary is published before the kind; under a correct protocol no one else touches the
    /// section meanwhile.)
    pub fn init_whole(&self, s: usize, flags: u8, node: u16, init_by: u8) -> bool {
        if self.kind(s) != ZERO {
            return false;
        }
        self.store_meta(
            s,
            Uniform {
                kind: INIT,
                flags,
                init_by,
                node,
                desc: false,
            },
        );
        self.cas(s, ZERO, INIT)
    }

    /// Summarise dense section `s` as a free run (`kind` FREE_RUN) with links `prev`/`next`
    /// into and out of it. The caller checked that the dense bytes say exactly that.
    pub fn set_free_run(&self, s: usize, u: Uniform, prev: usize, next: usize) {
        self.sum[s].prev.store(prev, Ordering::Relaxed);
        self.sum[s].next.store(next, Ordering::Relaxed);
        self.store_meta(s, u);
        self.kind[s].store(u.kind, Ordering::SeqCst);
    }

    /// Sections by kind: [zero, dense, init, free runs], and the summaries decoded so far.
    pub fn census(&self) -> [u64; 5] {
        let mut c = [0u64; 5];
        c[4] = self.decoded.load(Ordering::Relaxed);
        for k in &self.kind {
            let k = k.load(Ordering::Relaxed);
            c[match k {
                ZERO => 0,
                DENSE | BUSY => 1,
                INIT => 2,
                _ => 3,
            }] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two sections of 16 pages, MAX_ORDER blocks of 4 pages: heads at 0, 4, 8, 12 of each section.
    fn sections() -> Sections {
        Sections::new(32, 4, 2)
    }

    const FREE: Uniform = Uniform {
        kind: FREE_RUN,
        flags: 0x2b,
        init_by: 5,
        node: 3,
        desc: false,
    };
    const DESC: Uniform = Uniform { desc: true, ..FREE };

    #[test]
    fn a_free_run_decodes_its_heads_and_links_in_ascending_order() {
        let c = sections();
        c.set_free_run(1, FREE, 7, 9);
        assert_eq!(c.uniform(1), Some(FREE));
        assert_eq!(c.uniform(0), None, "section 0 is still untouched");
        // Section 1 is pages 16..32; its heads 16, 20, 24, 28 link 7 -> 16 -> 20 -> 24 -> 28 -> 9.
        let links: Vec<_> = (16..32).step_by(4).map(|i| c.links(1, i, FREE)).collect();
        assert_eq!(links, [(20, 7), (24, 16), (28, 20), (9, 24)]);
        assert_eq!(c.links(1, 17, FREE), (NIL, NIL), "not a head");
        let heads: Vec<_> = (16..32).map(|i| c.decode(i, FREE, 1).order1).collect();
        assert_eq!(
            heads,
            [3, 0, 0, 0].repeat(4),
            "order 2 + bias 1 at each head"
        );
        assert_eq!(c.decode(21, FREE, 1).node, 3);
    }

    #[test]
    fn a_descending_run_links_down_the_section_from_its_highest_block() {
        let c = sections();
        c.set_free_run(1, DESC, 7, 9);
        assert_eq!(c.uniform(1), Some(DESC), "the direction is kept");
        // List order 7 -> 28 -> 24 -> 20 -> 16 -> 9 (head rule: each block freed went in front).
        let links: Vec<_> = (16..32).step_by(4).map(|i| c.links(1, i, DESC)).collect();
        assert_eq!(links, [(9, 20), (16, 24), (20, 28), (24, 7)]);
        assert!(
            c.set_link_keeps(1, 28, DESC, false, 11),
            "into the first block (28)"
        );
        assert!(
            c.set_link_keeps(1, 16, DESC, true, 13),
            "out of the last block (16)"
        );
        assert_eq!(
            (c.links(1, 28, DESC), c.links(1, 16, DESC)),
            ((24, 11), (13, 20))
        );
        assert!(
            !c.set_link_keeps(1, 16, DESC, false, 11),
            "16's prev is 20, inside the run"
        );
        assert!(
            !c.set_link_keeps(1, 28, DESC, true, 9),
            "28's next is 24, inside the run"
        );
    }

    #[test]
    fn link_writes_keep_the_run_only_at_its_ends() {
        let c = sections();
        c.set_free_run(1, FREE, 7, 9);
        assert!(
            c.set_link_keeps(1, 20, FREE, true, 24),
            "the value it already has"
        );
        assert!(
            c.set_link_keeps(1, 28, FREE, true, 11),
            "out of the last block"
        );
        assert!(
            c.set_link_keeps(1, 16, FREE, false, 13),
            "into the first block"
        );
        assert_eq!(
            (c.links(1, 28, FREE), c.links(1, 16, FREE)),
            ((11, 24), (20, 13))
        );
        assert!(!c.set_link_keeps(1, 20, FREE, true, 28), "a block skipped");
        assert!(!c.set_link_keeps(1, 28, FREE, false, 16), "a block skipped");
        assert!(!c.set_link_keeps(1, 17, FREE, true, 0), "not a head");
    }

    #[test]
    fn sections_become_dense_once_and_count_decodes() {
        let c = sections();
        assert_eq!(c.claim(0), None, "an untouched section is dense at once");
        assert_eq!(c.kind(0), DENSE);
        assert!(
            !c.init_whole(0, 1, 0, 1),
            "only an untouched section is initialised whole"
        );
        c.set_free_run(1, FREE, NIL, NIL);
        assert_eq!(c.claim(1), Some(FREE));
        assert_eq!(c.kind(1), BUSY);
        assert_eq!(
            c.uniform(1),
            Some(FREE),
            "readers decode while it is written out"
        );
        c.set_dense(1);
        assert_eq!((c.claim(1), c.census()), (None, [0, 2, 0, 0, 1]));
        let c = sections();
        assert!(c.init_whole(1, 0x29, 2, 1));
        let init = c.uniform(1).unwrap();
        assert_eq!((init.kind, init.flags, init.node), (INIT, 0x29, 2));
        assert_eq!(
            c.decode(16, init, 1).order1,
            0,
            "no heads in an INIT section"
        );
        assert_eq!(c.links(1, 16, init), (NIL, NIL));
        assert_eq!(c.census(), [1, 0, 1, 0, 0]);
    }
}

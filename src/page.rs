//! The struct-page array: one entry per pfn of every present sparsemem section, struct-of-arrays.
//!
//! Per page: a flags byte (state, zone, init count), the node (u16), the block order of a buddy head
//! (stored + ORDER_BIAS so that zeroed memory reads "not a head"), which boot path initialised it (u8)
//! and the free-list links (two u32s, each the signed distance to the linked page, 0 for none: links stay
//! inside one zone, so 32 bits reach any page of a zone of up to 2^31 pages while the memmap itself may
//! hold up to 2^52 / page size pages). That is BYTES_PER_PAGE = 13 bytes a page; pageblock
//! migratetypes add one byte per pageblock. Fields are relaxed atomics so
//! that concurrent simulated CPUs never make Rust UB, even when a deliberately broken protocol races:
//! exclusivity is the protocol's job (node lock, zone lock), and the init counter catches its failures.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU8, Ordering::Relaxed};

use crate::compact::{Sections, Uniform, FREE_RUN, ZERO};
use crate::geometry::Geometry;
use crate::hostmem::HostArray;
use crate::migratetype::MigrateType;
use crate::topology::ZoneType;

/// Per-pfn state (spec §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum PageState {
    /// Descriptor never initialised: garbage that must not be read.
    Uninit = 0,
    /// `__init_single_page` done, not yet handed to anyone.
    Init = 1,
    /// PG_reserved: memblock-reserved memory or a hole.
    Reserved = 2,
    /// In the buddy allocator.
    Free = 3,
    /// Handed out by `alloc_pages`.
    Allocated = 4,
}

/// `PageState` names by value (exported to Python as `_core.PAGE_STATES`).
pub const STATE_NAMES: [&str; 5] = ["uninit", "init", "reserved", "free", "allocated"];

/// The flags byte: (shift, mask) of the state, the zone index and the init count (saturating at its
/// mask). Exported as `_core.PAGE_FLAGS` so that the numpy views decode with the same layout.
pub const STATE_BITS: (u8, u8) = (0, 7);
pub const ZONE_BITS: (u8, u8) = (3, 3);
pub const INIT_COUNT_BITS: (u8, u8) = (5, 3);

/// The order byte holds `order + ORDER_BIAS`, so that zeroed memory reads "not a buddy head"; a view
/// that subtracts the bias (mod 256) reads NO_ORDER there.
pub const ORDER_BIAS: u8 = 1;
pub const NO_ORDER: u8 = 0u8.wrapping_sub(ORDER_BIAS);
/// Set in the order byte of an allocated block's head (the order it must be freed with). A buddy head
/// (the kernel's PageBuddy) has the bit clear, and only code holding zone->lock writes such a byte;
/// the per-CPU fast paths write allocated heads without it. So a merge under the lock that reads a
/// buddy mark has found a block on a free list: the page's state, a separate byte that those paths
/// change around the mark, cannot pair with a stale mark into a false buddy.
pub const ALLOCATED_HEAD: u8 = 0x80;

fn field(b: u8, (shift, mask): (u8, u8)) -> u8 {
    (b >> shift) & mask
}

impl PageState {
    fn from_bits(b: u8) -> PageState {
        match field(b, STATE_BITS) {
            0 => PageState::Uninit,
            1 => PageState::Init,
            2 => PageState::Reserved,
            3 => PageState::Free,
            _ => PageState::Allocated,
        }
    }
}

/// The flags byte (`STATE_BITS`, `ZONE_BITS`, `INIT_COUNT_BITS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    pub fn state(self) -> PageState {
        PageState::from_bits(self.0)
    }
    pub fn zone(self) -> ZoneType {
        ZoneType::from_index(field(self.0, ZONE_BITS))
    }
    pub fn init_count(self) -> u8 {
        field(self.0, INIT_COUNT_BITS)
    }
    pub fn with_state(self, s: PageState) -> Flags {
        let (shift, mask) = STATE_BITS;
        Flags((self.0 & !(mask << shift)) | (s as u8) << shift)
    }
    /// The flags `__init_single_page` leaves: state INIT, zone set, init count bumped.
    pub fn initialised(self, zone: ZoneType) -> Flags {
        let count = (self.init_count() + 1).min(INIT_COUNT_BITS.1);
        Flags(
            (count << INIT_COUNT_BITS.0)
                | ((zone as u8) << ZONE_BITS.0)
                | (PageState::Init as u8) << STATE_BITS.0,
        )
    }
}

/// Host bytes per simulated page: flags 1, node 2, order 1, initialised-by 1, free-list links 8 (the
/// host budget per page; Python reads it as `_core.BYTES_PER_PAGE`).
pub const BYTES_PER_PAGE: u64 =
    (3 * size_of::<AtomicU8>() + size_of::<AtomicU16>() + 2 * size_of::<AtomicU32>()) as u64;

/// Which boot path initialised a struct page (0: not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum InitBy {
    /// `memmap_init` on the boot CPU (the early prefix and lower zones).
    Early = 1,
    /// `init_unavailable_range` (holes).
    Hole = 2,
    /// `memblock_free_all` (a reserved page above first_deferred_pfn).
    MemblockFreeAll = 3,
    /// `deferred_grow_zone`.
    Grow = 4,
    /// The per-node pass `deferred_init_memmap`.
    Pass = 5,
}

pub const INIT_BY_NAMES: [&str; 6] = ["none", "early", "hole", "memblock_free_all", "grow", "pass"];

/// Free-list link meaning "none" (a link is a dense page index).
pub const NIL: usize = usize::MAX;

/// The farthest a stored link reaches (pages either way): a zone's dense span must stay below it.
pub const MAX_LINK_SPAN: u64 = i32::MAX as u64;

/// A link of page `i` as stored: the signed distance to `v`, 0 for NIL (a page never links to itself).
#[inline]
fn encode_link(i: usize, v: usize) -> u32 {
    if v == NIL {
        return 0;
    }
    // Two's complement reinterpretations (the MSRV predates `cast_signed`).
    let d = i32::try_from(isize::from_ne_bytes(v.wrapping_sub(i).to_ne_bytes()));
    debug_assert!(d.is_ok_and(|d| d != 0), "link {i} -> {v} out of reach");
    u32::from_ne_bytes(d.unwrap_or(0).to_ne_bytes())
}

#[inline]
fn decode_link(i: usize, raw: u32) -> usize {
    match i32::from_ne_bytes(raw.to_ne_bytes()) {
        0 => NIL,
        d => i.wrapping_add_signed(d as isize),
    }
}

/// The `pageblock_mt` byte of a pageblock `memmap_init` has not typed (see `migratetype`).
pub const MT_UNSET: u8 = 0;
/// The byte of a MOVABLE pageblock (`MigrateType::Movable.encode()`).
pub const MT_MOVABLE: u8 = MigrateType::Movable as u8 + 1;

/// A run of consecutive present sections, mapped to dense indices `[base, base + end - start)`.
#[derive(Debug, Clone, Copy)]
pub struct MemmapChunk {
    pub start_pfn: u64,
    pub end_pfn: u64,
    pub base: usize,
}

pub struct PageArray {
    pub geometry: Geometry,
    pub chunks: Vec<MemmapChunk>,
    pub flags: HostArray<AtomicU8>,
    pub node: HostArray<AtomicU16>,
    order1: HostArray<AtomicU8>,
    pub init_by: HostArray<AtomicU8>,
    pub next: HostArray<AtomicU32>,
    pub prev: HostArray<AtomicU32>,
    pub pageblock_mt: HostArray<AtomicU8>,
    /// The compact representation's sections (`compact`); None: every page dense (the reference).
    pub compact: Option<Sections>,
}

/// A dense section that `PageArray::free_run` found uniformly free: its summary, its first and last
/// block heads and the links into and out of the run.
#[derive(Debug, Clone, Copy)]
pub struct FreeRun {
    pub section: usize,
    pub uniform: Uniform,
    pub first: usize,
    pub last: usize,
    pub prev: usize,
    pub next: usize,
}

impl PageArray {
    /// A memmap for the given present-section runs `(first_section, count)`, every page UNINIT.
    pub fn new(geometry: Geometry, section_runs: &[(u64, u64)]) -> PageArray {
        let mut chunks = Vec::with_capacity(section_runs.len());
        let mut base = 0usize;
        for &(s, n) in section_runs {
            let start_pfn = s << geometry.section_shift;
            let pages = (n << geometry.section_shift) as usize;
            chunks.push(MemmapChunk {
                start_pfn,
                end_pfn: start_pfn + pages as u64,
                base,
            });
            base += pages;
        }
        let blocks = base >> geometry.pageblock_order;
        PageArray {
            geometry,
            chunks,
            flags: HostArray::zeroed(base),
            node: HostArray::zeroed(base),
            order1: HostArray::zeroed(base),
            init_by: HostArray::zeroed(base),
            next: HostArray::zeroed(base),
            prev: HostArray::zeroed(base),
            pageblock_mt: HostArray::zeroed(blocks),
            compact: None,
        }
    }

    /// `new` in the compact representation: every section starts as an untouched summary.
    pub fn new_compact(geometry: Geometry, section_runs: &[(u64, u64)]) -> PageArray {
        let mut pa = PageArray::new(geometry, section_runs);
        pa.compact = Some(Sections::new(
            pa.len(),
            geometry.section_shift,
            geometry.max_order,
        ));
        pa
    }

    /// A read of page `i`: `dense` from the arrays, or `summary` from its section's summary. A dense read
    /// re-checks the kind afterwards, so that a section summarised meanwhile is decoded instead.
    #[inline]
    fn read<T>(
        &self,
        i: usize,
        dense: impl Fn() -> T,
        summary: impl Fn(&Sections, usize, Uniform) -> T,
    ) -> T {
        let Some(c) = &self.compact else {
            return dense();
        };
        let s = c.section(i);
        loop {
            if let Some(u) = c.uniform(s) {
                return summary(c, s, u);
            }
            let v = dense();
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            if c.uniform(s).is_none() {
                return v;
            }
        }
    }

    /// Make the sections of `[i, i + n)` dense before a write (decode their summaries).
    #[inline]
    fn dense_range(&self, i: usize, n: usize) {
        let Some(c) = &self.compact else {
            return;
        };
        if n == 0 {
            return;
        }
        for s in c.section(i)..=c.section(i + n - 1) {
            if let Some(u) = c.claim(s) {
                self.decode_section(c, s, u);
                c.set_dense(s);
            }
        }
    }

    /// Write summary section `s`'s pages into the dense arrays.
    fn decode_section(&self, sections: &Sections, sec: usize, sum: Uniform) {
        let base = sec << sections.shift;
        for i in base..base + (1 << sections.shift) {
            let page = sections.decode(i, sum, ORDER_BIAS);
            self.flags[i].store(page.flags, Relaxed);
            self.node[i].store(page.node, Relaxed);
            self.order1[i].store(page.order1, Relaxed);
            self.init_by[i].store(page.init_by, Relaxed);
            if page.order1 != 0 {
                let (next, prev) = sections.links(sec, i, sum);
                self.next[i].store(encode_link(i, next), Relaxed);
                self.prev[i].store(encode_link(i, prev), Relaxed);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Map all host memory of the arrays now (see `hostmem`).
    pub fn prefault(&self) {
        self.flags.prefault();
        self.node.prefault();
        self.order1.prefault();
        self.init_by.prefault();
        self.next.prefault();
        self.prev.prefault();
        self.pageblock_mt.prefault();
    }
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Dense index of `pfn`, or None if its section has no memmap (`!pfn_valid`).
    pub fn idx(&self, pfn: u64) -> Option<usize> {
        let i = self.chunks.partition_point(|c| c.end_pfn <= pfn);
        let c = self.chunks.get(i)?;
        (pfn >= c.start_pfn).then(|| c.base + (pfn - c.start_pfn) as usize)
    }

    /// Page `i`'s flags and node, and where the run of pages that share them by construction ends (at
    /// most `end`): its section's end when the section is a summary, else `i + 1`. A sweep (`check`)
    /// takes a summarised section in one step, so it costs per section, not per page.
    #[inline]
    pub fn run_at(&self, i: usize, end: usize) -> (Flags, u16, usize) {
        if let Some(c) = &self.compact {
            let s = c.section(i);
            let section_end = end.min((s + 1) << c.shift);
            if let Some(u) = c.uniform(s) {
                return (Flags(u.flags), u.node, section_end);
            }
            if c.kind(s) == ZERO {
                // never written: its bytes are the zeroed arrays' (UNINIT, node 0)
                return (Flags(0), 0, section_end);
            }
        }
        (self.flags(i), self.node_of(i), i + 1)
    }

    /// The pfn at dense index `i`.
    pub fn pfn(&self, i: usize) -> u64 {
        let c = self.chunks[self
            .chunks
            .partition_point(|c| c.base + ((c.end_pfn - c.start_pfn) as usize) <= i)];
        c.start_pfn + (i - c.base) as u64
    }

    #[inline]
    pub fn flags(&self, i: usize) -> Flags {
        Flags(self.read(i, || self.flags[i].load(Relaxed), |_, _, u| u.flags))
    }
    #[inline]
    pub fn set_flags(&self, i: usize, f: Flags) {
        self.dense_range(i, 1);
        self.flags[i].store(f.0, Relaxed);
    }
    /// Which boot path initialised page `i` (`InitBy` as u8, 0: none yet).
    #[inline]
    pub fn init_by_of(&self, i: usize) -> u8 {
        self.read(i, || self.init_by[i].load(Relaxed), |_, _, u| u.init_by)
    }
    /// The free-list links of page `i` (meaningful at a free block's head).
    #[inline]
    pub fn next(&self, i: usize) -> usize {
        self.read(
            i,
            || decode_link(i, self.next[i].load(Relaxed)),
            |c, s, u| c.links(s, i, u).0,
        )
    }
    #[inline]
    pub fn prev(&self, i: usize) -> usize {
        self.read(
            i,
            || decode_link(i, self.prev[i].load(Relaxed)),
            |c, s, u| c.links(s, i, u).1,
        )
    }
    #[inline]
    pub fn set_next(&self, i: usize, v: usize) {
        self.set_link(i, true, v);
    }
    #[inline]
    pub fn set_prev(&self, i: usize, v: usize) {
        self.set_link(i, false, v);
    }
    /// A link write; a free-run summary keeps a write that does not break its run (the caller holds
    /// the zone lock, as for every free-list change).
    fn set_link(&self, i: usize, next: bool, v: usize) {
        if let Some(c) = &self.compact {
            let s = c.section(i);
            if c.uniform(s)
                .is_some_and(|u| c.set_link_keeps(s, i, u, next, v))
            {
                return;
            }
            self.dense_range(i, 1);
        }
        let raw = encode_link(i, v);
        if next {
            self.next[i].store(raw, Relaxed);
        } else {
            self.prev[i].store(raw, Relaxed);
        }
    }
    #[inline]
    pub fn state(&self, i: usize) -> PageState {
        self.flags(i).state()
    }
    #[inline]
    pub fn node_of(&self, i: usize) -> u16 {
        self.read(i, || self.node[i].load(Relaxed), |_, _, u| u.node)
    }
    /// The order byte of page `i`: `order + ORDER_BIAS` at a buddy head, that `| ALLOCATED_HEAD` at an
    /// allocated head, else 0.
    #[inline]
    pub fn order1_of(&self, i: usize) -> u8 {
        self.read(
            i,
            || self.order1[i].load(Relaxed),
            |c, _, u| c.decode(i, u, ORDER_BIAS).order1,
        )
    }
    /// Order of the free buddy block whose head is `i`, if it is one (PageBuddy and buddy_order).
    #[inline]
    pub fn buddy_order(&self, i: usize) -> Option<u32> {
        match self.order1_of(i) {
            0 => None,
            o if o & ALLOCATED_HEAD != 0 => None,
            o => Some(u32::from(o - ORDER_BIAS)),
        }
    }
    /// Order of the allocated block whose head is `i`, if it is one.
    #[inline]
    pub fn allocated_order(&self, i: usize) -> Option<u32> {
        match self.order1_of(i) {
            o if o & ALLOCATED_HEAD != 0 => Some(u32::from((o & !ALLOCATED_HEAD) - ORDER_BIAS)),
            _ => None,
        }
    }
    /// Mark (Some) or unmark `i` as the head of a free buddy block: only under zone->lock.
    #[inline]
    pub fn set_buddy_order(&self, i: usize, order: Option<u32>) {
        self.dense_range(i, 1);
        self.order1[i].store(order.map_or(0, |o| o as u8 + ORDER_BIAS), Relaxed);
    }
    /// Mark `i` as the head of an allocated block of `order`.
    #[inline]
    pub fn set_allocated_order(&self, i: usize, order: u32) {
        self.dense_range(i, 1);
        self.order1[i].store(ALLOCATED_HEAD | (order as u8 + ORDER_BIAS), Relaxed);
    }
    pub fn order_raw(&self) -> &[AtomicU8] {
        &self.order1
    }

    /// `__init_single_page` on `[i, i + n)`: returns how many of them had been initialised before
    /// (a double initialisation, I1 — the caller reports it). A load and a store, not one atomic
    /// read-modify-write: the bulk pass stays at ~1.5 ns/page. Under a correct protocol no two CPUs
    /// ever initialise the same page; if a broken one makes two do it at the very same instant, some of
    /// those pages may count once (loom checks the protocol itself exhaustively).
    pub fn init_range(&self, i: usize, n: usize, zone: ZoneType, nid: u16, by: InitBy) -> usize {
        let doubles = match &self.compact {
            None => self.init_dense(i, n, zone, nid, by),
            Some(sections) => {
                // Whole untouched sections become INIT summaries; the rest is written densely.
                let flags = Flags(0).initialised(zone).0;
                let mut doubles = 0;
                let mut at = i;
                while at < i + n {
                    let sec = sections.section(at);
                    let end = ((sec + 1) << sections.shift).min(i + n);
                    let whole = at == sec << sections.shift && end == (sec + 1) << sections.shift;
                    if !(whole && sections.init_whole(sec, flags, nid, by as u8)) {
                        self.dense_range(at, end - at);
                        doubles += self.init_dense(at, end - at, zone, nid, by);
                    }
                    at = end;
                }
                doubles
            }
        };
        self.mark_pageblocks_movable(i, n);
        doubles
    }

    /// `init_range` on dense pages.
    fn init_dense(&self, i: usize, n: usize, zone: ZoneType, nid: u16, by: InitBy) -> usize {
        let mut doubles = 0;
        let pages = self.flags[i..i + n]
            .iter()
            .zip(&self.node[i..i + n])
            .zip(&self.init_by[i..i + n]);
        for ((f, node), who) in pages {
            let old = Flags(f.load(Relaxed));
            doubles += usize::from(old.init_count() != 0);
            f.store(old.initialised(zone).0, Relaxed);
            node.store(nid, Relaxed);
            who.store(by as u8, Relaxed);
        }
        doubles
    }

    /// Set MOVABLE on every pageblock whose first page lies in `[i, i + n)` (as init does at
    /// pageblock-aligned pfns). Dense indices are section-aligned, so index alignment is pfn alignment.
    pub fn mark_pageblocks_movable(&self, i: usize, n: usize) {
        let order = self.geometry.pageblock_order;
        let first = (i + (1 << order) - 1) >> order;
        let end = (i + n + (1 << order) - 1) >> order;
        for mt in &self.pageblock_mt[first..end.max(first)] {
            mt.store(MT_MOVABLE, Relaxed);
        }
    }

    pub fn pageblock_mt(&self, i: usize) -> u8 {
        self.pageblock_mt[i >> self.geometry.pageblock_order].load(Relaxed)
    }

    /// `get_pfnblock_migratetype` (an untyped pageblock reads UNMOVABLE, as in the kernel).
    pub fn pageblock_migratetype(&self, i: usize) -> MigrateType {
        MigrateType::decode(self.pageblock_mt(i))
    }

    /// `set_pageblock_migratetype` of `i`'s pageblock.
    pub fn set_pageblock_mt(&self, i: usize, mt: MigrateType) {
        self.pageblock_mt[i >> self.geometry.pageblock_order].store(mt.encode(), Relaxed);
    }

    /// `change_pageblock_range`: every pageblock of the order-`order` block at `i` (at least one).
    pub fn set_pageblock_range(&self, i: usize, order: u32, mt: MigrateType) {
        let pbo = self.geometry.pageblock_order;
        let first = i >> pbo;
        let n = 1usize << order.saturating_sub(pbo);
        for b in &self.pageblock_mt[first..first + n] {
            b.store(mt.encode(), Relaxed);
        }
    }

    /// The allocated-head mark of a block of `order` goes in one atomic step, so that of two racing
    /// frees of one block (on two CPUs' per-CPU lists, which share no lock) exactly one goes ahead.
    /// False: it was no allocated head of that order any more.
    pub fn try_unhead(&self, i: usize, order: u32) -> bool {
        self.dense_range(i, 1); // a compact section holding an ALLOCATED block is dense already
        self.order1[i]
            .compare_exchange(
                ALLOCATED_HEAD | (order as u8 + ORDER_BIAS),
                0,
                std::sync::atomic::Ordering::AcqRel,
                Relaxed,
            )
            .is_ok()
    }

    /// Set the state of `[i, i + n)`, keeping zone and init count.
    pub fn set_state_range(&self, i: usize, n: usize, s: PageState) {
        self.dense_range(i, n);
        for f in &self.flags[i..i + n] {
            f.store(Flags(f.load(Relaxed)).with_state(s).0, Relaxed);
        }
    }
}

/// The compact representation's summaries (see `compact`).
impl PageArray {
    /// If dense section `section` is uniformly free (every page FREE, initialised once, one zone, node
    /// and boot path, MAX_PAGE_ORDER heads exactly at the MAX_ORDER-aligned pages, each linked to the
    /// next in ascending or each to the one below in descending order), its summary; else None; `first`
    /// and `last` are in list order. Compact machines only.
    pub fn free_run(&self, section: usize) -> Option<FreeRun> {
        let c = self.compact.as_ref()?;
        if c.kind(section) != crate::compact::DENSE {
            return None;
        }
        let (base, pps, mo) = (section << c.shift, 1usize << c.shift, c.max_order);
        let f = self.flags[base].load(Relaxed);
        let (node, by) = (
            self.node[base].load(Relaxed),
            self.init_by[base].load(Relaxed),
        );
        if Flags(f).state() != PageState::Free || Flags(f).init_count() != 1 {
            return None;
        }
        let head1 = mo as u8 + ORDER_BIAS;
        let uniform = (base..base + pps).all(|i| {
            let want = if i.trailing_zeros() >= mo { head1 } else { 0 };
            self.flags[i].load(Relaxed) == f
                && self.node[i].load(Relaxed) == node
                && self.init_by[i].load(Relaxed) == by
                && self.order1[i].load(Relaxed) == want
        });
        if !uniform {
            return None;
        }
        let block_heads: Vec<usize> = (base..base + pps).step_by(1 << mo).collect();
        let linked = |a: usize, b: usize| {
            decode_link(a, self.next[a].load(Relaxed)) == b && decode_link(b, self.prev[b].load(Relaxed)) == a
        };
        // Ascending (tail placement, 5.10+) or descending (head placement before 5.10) in list order.
        let (lo, hi) = (block_heads[0], block_heads[block_heads.len() - 1]);
        let desc = if block_heads.windows(2).all(|w| linked(w[0], w[1])) {
            false
        } else if block_heads.windows(2).all(|w| linked(w[1], w[0])) {
            true
        } else {
            return None;
        };
        let (first, last) = if desc { (hi, lo) } else { (lo, hi) };
        Some(FreeRun {
            section,
            uniform: Uniform {
                kind: FREE_RUN,
                flags: f,
                init_by: by,
                node,
                desc,
            },
            first,
            last,
            prev: decode_link(first, self.prev[first].load(Relaxed)),
            next: decode_link(last, self.next[last].load(Relaxed)),
        })
    }

    /// Summarise `run`'s section (from `free_run`, under the zone lock, its ends checked against the
    /// free list) and give its dense bytes back to the host.
    pub fn summarize(&self, run: &FreeRun) {
        let c = self.compact.as_ref().expect("a compact page array");
        c.set_free_run(run.section, run.uniform, run.prev, run.next);
        let (base, pps) = (run.section << c.shift, 1usize << c.shift);
        self.flags.discard(base, pps);
        self.node.discard(base, pps);
        self.order1.discard(base, pps);
        self.init_by.discard(base, pps);
        self.next.discard(base, pps);
        self.prev.discard(base, pps);
    }

    /// Decoded copies of `[start, end)` of a field ("flags", "order1", "init_by") for views of a
    /// compact page array (a dense one is viewed in place).
    pub fn decoded_u8(&self, field: &str, start: usize, end: usize) -> Vec<u8> {
        (start..end)
            .map(|i| match field {
                "flags" => self.flags(i).0,
                "order1" => self.order1_of(i),
                _ => self.init_by_of(i),
            })
            .collect()
    }

    /// Decoded copy of `[start, end)` of the node field.
    pub fn decoded_node(&self, start: usize, end: usize) -> Vec<u16> {
        (start..end).map(|i| self.node_of(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Heads of `order` at `list`, linked into one free list in that order, alone on it.
    fn link_by_hand(pa: &PageArray, list: &[usize], order: u32) {
        for (k, &h) in list.iter().enumerate() {
            pa.set_buddy_order(h, Some(order));
            pa.set_prev(h, if k == 0 { NIL } else { list[k - 1] });
            pa.set_next(h, list.get(k + 1).copied().unwrap_or(NIL));
        }
    }

    #[test]
    fn flags_roundtrip() {
        let f = Flags(0).initialised(ZoneType::Normal);
        assert_eq!(
            (f.state(), f.zone(), f.init_count()),
            (PageState::Init, ZoneType::Normal, 1)
        );
        let f = f.with_state(PageState::Free).initialised(ZoneType::Dma32);
        assert_eq!(
            (f.state(), f.zone(), f.init_count()),
            (PageState::Init, ZoneType::Dma32, 2)
        );
        let f = f.initialised(ZoneType::Dma).initialised(ZoneType::Dma);
        assert_eq!(f.init_count(), 3, "saturates");
        // The documented layout: bits 0-2 state, 3-4 zone, 5-6 init count.
        assert_eq!(
            f.0,
            (3 << 5) | ((ZoneType::Dma as u8) << 3) | PageState::Init as u8
        );
        assert_eq!(BYTES_PER_PAGE, 13);
        assert_eq!(NO_ORDER, 255);
    }

    #[test]
    fn compact_sections_read_as_dense_ones_and_decode_on_an_uneven_write() {
        let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap(); // 64-page sections, blocks of 16
        let pa = PageArray::new_compact(g, &[(0, 2)]);
        let census = |pa: &PageArray| pa.compact.as_ref().unwrap().census();
        // A section initialised whole in one call is an INIT summary: initialised once, no bytes.
        assert_eq!(pa.init_range(0, 64, ZoneType::Normal, 1, InitBy::Pass), 0);
        assert_eq!(census(&pa), [1, 0, 1, 0, 0]);
        let f = pa.flags(5);
        assert_eq!(
            (f.state(), f.zone(), f.init_count()),
            (PageState::Init, ZoneType::Normal, 1)
        );
        assert_eq!(
            (pa.node_of(5), pa.init_by_of(5), pa.buddy_order(0)),
            (1, InitBy::Pass as u8, None)
        );
        assert_eq!(
            pa.pageblock_mt(8),
            MT_MOVABLE,
            "pageblocks typed as by a dense init"
        );
        // Initialising part of it again decodes it and counts the double initialisations (I1).
        assert_eq!(pa.init_range(8, 4, ZoneType::Normal, 1, InitBy::Grow), 4);
        assert_eq!(census(&pa), [1, 1, 0, 0, 1]);
        assert_eq!((pa.flags(9).init_count(), pa.flags(7).init_count()), (2, 1));
        // Section 1 by hand as the boot frees leave it: FREE, order-4 heads at 64, 80, 96, 112 linked
        // in ascending order, the run alone on its list.
        pa.init_range(64, 64, ZoneType::Normal, 0, InitBy::Pass);
        pa.set_state_range(64, 64, PageState::Free);
        let heads = [64usize, 80, 96, 112];
        link_by_hand(&pa, &heads, 4);
        let run = pa.free_run(1).expect("a uniform free run");
        assert_eq!(
            (run.first, run.last, run.prev, run.next),
            (64, 112, NIL, NIL)
        );
        assert!(
            pa.free_run(0).is_none(),
            "section 0 is INIT and twice-initialised in part"
        );
        pa.summarize(&run);
        assert_eq!(census(&pa)[3], 1);
        let got: Vec<_> = heads
            .iter()
            .map(|&h| (pa.buddy_order(h), pa.next(h), pa.prev(h)))
            .collect();
        assert_eq!(
            got,
            [
                (Some(4), 80, NIL),
                (Some(4), 96, 64),
                (Some(4), 112, 80),
                (Some(4), NIL, 96)
            ]
        );
        assert_eq!(
            (pa.state(70), pa.buddy_order(70), pa.node_of(70)),
            (PageState::Free, None, 0)
        );
        // The link out of its last block changes without decoding; allocating a block decodes it.
        pa.set_next(112, 3);
        assert_eq!((pa.next(112), census(&pa)[3]), (3, 1));
        pa.set_state_range(80, 16, PageState::Allocated);
        // Decoded three times: section 0 (the second init), section 1 as INIT (freeing it), as a run.
        assert_eq!(census(&pa), [0, 2, 0, 0, 3]);
        assert_eq!(
            (pa.state(80), pa.state(79), pa.next(64), pa.next(112)),
            (PageState::Allocated, PageState::Free, 80, 3)
        );
    }

    #[test]
    fn a_descending_free_section_is_a_run_whose_list_starts_at_its_highest_block() {
        let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap(); // 64-page sections, blocks of 16
        let pa = PageArray::new_compact(g, &[(0, 2)]);
        // Section 1 as pre-5.10 boot frees leave it: each block freed in ascending pfn order went to the
        // list head, so the list reads 112 -> 96 -> 80 -> 64.
        pa.init_range(64, 64, ZoneType::Normal, 0, InitBy::Pass);
        pa.set_state_range(64, 64, PageState::Free);
        let list = [112usize, 96, 80, 64];
        link_by_hand(&pa, &list, 4);
        let run = pa.free_run(1).expect("a descending free run");
        assert!(run.uniform.desc);
        assert_eq!((run.first, run.last), (112, 64), "in list order");
        pa.summarize(&run);
        let got: Vec<_> = list.iter().map(|&h| (pa.next(h), pa.prev(h))).collect();
        assert_eq!(got, [(96, NIL), (80, 112), (64, 96), (NIL, 80)]);
        // Breaking the order (80 taken off the list) leaves no run.
        pa.set_next(96, 64);
        pa.set_prev(64, 96);
        assert_eq!(pa.compact.as_ref().unwrap().kind(1), crate::compact::DENSE);
        assert!(pa.free_run(1).is_none(), "96 -> 64 skips a block");
    }

    #[test]
    fn sparse_index() {
        let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap(); // 64-page sections
        let pa = PageArray::new(g, &[(0, 2), (10, 1)]);
        assert_eq!(pa.len(), 192);
        assert_eq!(pa.idx(127), Some(127));
        assert_eq!(pa.idx(128), None);
        assert_eq!(pa.idx(640), Some(128));
        assert_eq!(pa.idx(703), Some(191));
        assert_eq!(pa.idx(704), None);
        assert_eq!(pa.pfn(128), 640);
        assert_eq!(pa.pfn(127), 127);
    }
}

//! The boot paths: early memmap init with the defer rule (spec §2.3–2.4), `memblock_free_all`
//! (§2.5), `deferred_grow_zone` (§3.2) and the per-node pass `deferred_init_memmap` (§4) run by
//! `page_alloc_init_late` (§2.7) on one thread per node.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::events::{Event, Hook};
use crate::machine::{Machine, MemoryLine, Phase};
use crate::memblock::PfnRange;
use crate::padata::{padata_do_multithreaded, InvalidJob, Job, Mode};
use crate::page::{InitBy, PageState, NIL};
use crate::policy::{
    DeferCount, FreeRuns, GrowLock, GrowWalk, KeyDisable, MemInitPrint, PadataJobs, PassLock,
    PassWalk, Policy,
};
use crate::protocol::{empty_result, grow_step, GrowStep};
use crate::stop::{RunStage, StopRequest};
use crate::sync::Ordering;
use crate::topology::{Layout, ZoneType};

/// The CPU the boot paths run on.
pub const BOOT_CPU: u32 = 0;

/// The site name of the per-node pass's hold of node_size_lock.
const PASS_SITE: &str = "deferred_init_memmap";

/// Pages `init_pages` initialises between two stop polls (0.1-7 ms of host time).
const INIT_CHUNK: u64 = 1 << 16;

/// Sets the progress stage back to idle when a phase returns, by any path.
struct StageGuard<'a>(&'a StopRequest);

impl Drop for StageGuard<'_> {
    fn drop(&mut self) {
        self.0.set_stage(RunStage::Idle);
    }
}

/// One `deferred_grow_zone(zone, order)` call: the zone (node index and zone index in that node),
/// the order the caller needs, the allocator hook that called it and the CPU it runs on.
#[derive(Debug, Clone, Copy)]
pub struct GrowCall {
    pub ni: usize,
    pub zi: usize,
    pub order: u32,
    pub hook: Hook,
    pub cpu: u32,
}

impl Machine {
    /// `free_area_init` .. `memblock_free_all`: initialise holes and the early prefix, release the
    /// non-deferred free memory to the buddy allocator. The on-demand window is open afterwards.
    pub fn boot(&self) -> Result<()> {
        let _t = self.begin_transition("boot()")?;
        let _on = self.enter_cpu(BOOT_CPU)?;
        if self.phase() != Phase::Created {
            return Err(Error::Phase(format!(
                "boot() called twice (the machine is {})",
                self.phase().name()
            )));
        }
        self.stop.set_stage(RunStage::Boot);
        let _idle = StageGuard(&self.stop);
        self.init_unavailable_ranges();
        for ni in 0..self.nodes.len() {
            self.memmap_init_node(ni);
        }
        self.memblock_free_all();
        self.interrupted("boot()")?;
        if self.policy.mem_init_print() == MemInitPrint::Early {
            self.mem_init_print_info("memblock_free_all");
        }
        self.set_phase(Phase::Booted);
        Ok(())
    }

    /// Whether the long loops should stop at their next chunk (a stop request, see `stop`).
    #[inline]
    pub(crate) fn stopping(&self) -> bool {
        self.stop.stopping()
    }

    /// After a boot phase's loops: if a stop was requested meanwhile, the phase ended half way; mark
    /// the machine interrupted and say so.
    fn interrupted(&self, what: &str) -> Result<()> {
        if !self.stop.requested() {
            return Ok(());
        }
        self.set_phase(Phase::Interrupted);
        Err(Error::Interrupted(format!(
            "{what} interrupted half way (Ctrl-C): the machine is marked interrupted and cannot be used further"
        )))
    }

    /// `__init_single_page` over `[s, e)` (one zone, one node), reporting double initialisation (I1).
    /// A long range goes in chunks of `INIT_CHUNK` pages with a stop poll between them; once stopping
    /// it returns the pages done so far.
    fn init_pages(&self, s: u64, e: u64, zone: ZoneType, nid: u32, by: InitBy) -> u64 {
        if s >= e {
            return 0;
        }
        let i = self
            .pages
            .idx(s)
            .expect("initialised pfn has a struct page");
        let mut doubles = 0;
        let mut done = 0;
        while done < e - s {
            if done > 0 && self.stopping() {
                break;
            }
            let n = (e - s - done).min(INIT_CHUNK);
            doubles += self
                .pages
                .init_range(i + done as usize, n as usize, zone, nid as u16, by);
            self.stop.add_initialised(n);
            done += n;
        }
        if doubles > 0 {
            self.violation(format!(
                "I1: {doubles} page(s) in [{s:#x}, {e:#x}) initialised a second time (node {nid}, zone {})",
                zone.name()
            ));
        }
        done
    }

    /// Split `[s, e)` at global zone boundaries: yields `(s, e, zone)` pieces.
    fn by_zone(&self, s: u64, e: u64) -> Vec<(u64, u64, ZoneType)> {
        let mut out = Vec::new();
        let mut p = s;
        while p < e {
            let zt = self.layout.zone_of(p);
            let end = self.layout.zone_ends[zt as usize].min(e);
            out.push((p, end, zt));
            p = end;
        }
        out
    }

    /// `init_unavailable_range`: every pfn of a present section that is not memory gets an initialised,
    /// reserved descriptor; its node is that of the nearest memory above it in the section, else below.
    fn init_unavailable_ranges(&self) {
        let g = *self.geometry();
        let mem = &self.layout.memory;
        let mut holes = 0;
        for (k, r) in mem.iter().enumerate() {
            // The gap below this region, from the previous region's end (or this section's start).
            let sec_start = r.start & !(g.pages_per_section() - 1);
            let prev_end = if k > 0 {
                mem[k - 1].end.max(sec_start)
            } else {
                sec_start
            };
            self.init_hole(prev_end, r.start, r.nid, &mut holes);
            // The gap above this region up to its section end, if no region starts there: that memory
            // is the nearest, below. (A gap up to a region in the same section is that region's.)
            let sec_end = g.section_align_up(r.end);
            if mem.get(k + 1).is_none_or(|n| n.start >= sec_end) {
                self.init_hole(r.end, sec_end, r.nid, &mut holes);
            }
        }
        self.stats.hole_pages.fetch_add(holes, Ordering::Relaxed);
    }

    fn init_hole(&self, s: u64, e: u64, nid: u32, holes: &mut u64) {
        for (s, e, zt) in self.by_zone(s, e) {
            *holes += self.init_pages(s, e, zt, nid, InitBy::Hole);
            let i = self.pages.idx(s).unwrap();
            self.pages
                .set_state_range(i, (e - s) as usize, PageState::Reserved);
        }
    }

    /// `memmap_init` for one node: lower zones fully, the last zone up to the cut.
    fn memmap_init_node(&self, ni: usize) {
        let fdp = defer_cut(
            &self.layout,
            self.policy,
            self.faults.bytes_as_pages,
            self.early_prefix,
            ni,
        );
        let nid = self.nodes[ni].span.nid;
        let mut pages = 0;
        for r in self.layout.memory.iter().filter(|r| r.nid == nid) {
            let end = fdp.map_or(r.end, |f| r.end.min(f));
            for (s, e, zt) in self.by_zone(r.start, end) {
                pages += self.init_pages(s, e, zt, nid, InitBy::Early);
            }
        }
        self.nodes[ni].fdp.store(fdp); // the one write that may lower it: from ULONG_MAX (I4 starts here)
        self.stats.early_pages.fetch_add(pages, Ordering::Relaxed);
        self.log(
            BOOT_CPU,
            Event::EarlyInit {
                node: nid,
                pages,
                first_deferred_pfn: fdp,
            },
        );
    }

    fn fdp_of_nid(&self, nid: u32) -> Option<u64> {
        self.nodes[self.node_index(nid).unwrap()].fdp.load()
    }

    /// `memblock_free_all`: reserved pages initialised (if deferred) and marked reserved; free ranges cut
    /// into naturally aligned chunks, each released unless its first pfn is deferred.
    fn memblock_free_all(&self) {
        let g = *self.geometry();
        let mut reserved = 0;
        for r in &self.layout.reserved {
            let split = self
                .fdp_of_nid(r.nid)
                .map_or(r.end, |f| f.clamp(r.start, r.end));
            for (s, e, zt) in self.by_zone(split, r.end) {
                self.init_pages(s, e, zt, r.nid, InitBy::MemblockFreeAll);
            }
            let i = self.pages.idx(r.start).unwrap();
            self.pages
                .set_state_range(i, r.len() as usize, PageState::Reserved);
            reserved += r.len();
        }
        let (mut released, mut deferred) = (0, 0);
        for r in &self.layout.free {
            let ni = self.node_index(r.nid).unwrap();
            let fdp = self.nodes[ni].fdp.load();
            let mut s = r.start;
            while s < r.end && !self.stopping() {
                let mut order = if s == 0 {
                    g.max_order
                } else {
                    s.trailing_zeros().min(g.max_order)
                };
                while s + (1 << order) > r.end {
                    order -= 1;
                }
                if fdp.is_some_and(|f| s >= f) {
                    deferred += 1 << order;
                } else {
                    let zi = self.zone_index(ni, self.layout.zone_of(s)).unwrap();
                    self.release(ni, zi, s, order);
                    self.summarize_freed(ni, zi, s, s + (1 << order));
                    released += 1 << order;
                }
                s += 1 << order;
            }
        }
        let totalram: u64 = self.layout.free.iter().map(PfnRange::len).sum();
        self.stats
            .totalram_pages
            .fetch_add(totalram, Ordering::Relaxed);
        self.stats
            .memblock_released
            .fetch_add(released, Ordering::Relaxed);
        self.log(
            BOOT_CPU,
            Event::MemblockFreeAll {
                released,
                reserved,
                deferred,
            },
        );
    }

    /// `deferred_free_pages` (spec §3.3, §5.11): release `[s, e)`. 4.8–6.3: runs split at pageblock
    /// boundaries, a full aligned pageblock as one `pageblock_order` block, anything else page by
    /// page. 6.4+: runs split at MAX_ORDER boundaries, a full aligned MAX_ORDER block at
    /// `MAX_PAGE_ORDER` (every pageblock in it MOVABLE: each was set when its head was initialised),
    /// anything else page by page.
    fn deferred_free_pages(&self, ni: usize, zi: usize, s: u64, e: u64) {
        let g = self.geometry();
        let order = match self.policy.free_runs() {
            FreeRuns::Pageblock => g.pageblock_order,
            FreeRuns::MaxOrder => g.max_order,
        };
        let block = 1u64 << order;
        let mut p = s;
        while p < e {
            let run_end = ((p / block + 1) * block).min(e);
            if run_end - p == block {
                self.release(ni, zi, p, order);
            } else {
                for q in p..run_end {
                    self.release(ni, zi, q, 0);
                }
            }
            self.summarize_freed(ni, zi, p, run_end);
            p = run_end;
        }
    }

    /// Compact memmap (`compact`): each section whose last page was just freed (its end in
    /// `(s, e]`) and that is now one run of free MAX_ORDER blocks on one free list becomes a summary,
    /// under the zone lock (its ends checked against the list: a block taken off it is not in the run).
    fn summarize_freed(&self, ni: usize, zi: usize, s: u64, e: u64) {
        if self.pages.compact.is_none() {
            return;
        }
        let pps = self.geometry().pages_per_section();
        let mut end = (s / pps + 1) * pps;
        while end <= e {
            let sec = self.pages.idx(end - 1).map(|i| i / pps as usize);
            end += pps;
            let area = self.nodes[ni].zones[zi].area.lock();
            let Some(run) = sec.and_then(|sec| self.pages.free_run(sec)) else {
                continue;
            };
            let (pa, mo) = (&self.pages, self.geometry().max_order);
            let mt = pa.pageblock_migratetype(run.first);
            let joined = |link: usize, me: usize, first: bool| match (link, first) {
                (NIL, _) => area.is_list_end(mo, mt, me, first),
                (l, true) => pa.next(l) == me,
                (l, false) => pa.prev(l) == me,
            };
            if joined(run.prev, run.first, true) && joined(run.next, run.last, false) {
                pa.summarize(&run);
            }
        }
    }

    fn node_free_ranges(&self, ni: usize) -> impl Iterator<Item = &PfnRange> {
        let nid = self.nodes[ni].span.nid;
        self.layout.free.iter().filter(move |r| r.nid == nid)
    }

    /// `deferred_grow_zone(zone, order)` (spec §3.2; posting-v2 per the seed): initialise and free at
    /// least a section's worth of deferred pages of the node's last zone. Returns whether the caller
    /// should retry the zone; an error only for a lockdep-detected deadlock.
    pub fn deferred_grow_zone(&self, call: GrowCall) -> Result<bool> {
        Ok(self.grow_zone(call)?.0)
    }

    /// What the allocator's hooks use: like `deferred_grow_zone`, but a True that would make
    /// `get_page_from_freelist` retry forever (B12, `retry_forever`) counts as False.
    pub(crate) fn deferred_grow_zone_for_alloc(&self, call: GrowCall) -> Result<bool> {
        let (result, endless) = self.grow_zone(call)?;
        Ok(result && !endless)
    }

    /// Grow; returns (result, endless retry).
    fn grow_zone(&self, call: GrowCall) -> Result<(bool, bool)> {
        let GrowCall {
            ni,
            zi,
            order,
            hook,
            cpu,
        } = call;
        let node = &self.nodes[ni];
        let zone = &node.zones[zi].span;
        if !self.policy.grows() || zone.end_pfn != node.span.end_pfn {
            return Ok((false, false)); // only a node's last zone can have deferred pages
        }
        let g = *self.geometry();
        let nid = node.span.nid;
        let need = ((1u64 << order) + g.pages_per_section() - 1) & !(g.pages_per_section() - 1);
        let snapshot = node.fdp.load(); // READ_ONCE, outside the lock
        self.point("grow:snapshot", Some(nid), cpu);
        let lock = match self.policy.grow_lock() {
            GrowLock::Global => &self.grow_lock,
            GrowLock::PerNode => &node.size_lock,
        };
        // An allocation that finds the node's pass holding the lock (4.17-5.6 hold it for the whole
        // pass) waits for the pass: counted, and the point `grow:spin` lets a test see it spin.
        let waits_for_pass = || {
            if hook != Hook::Explicit && lock.held_at() == PASS_SITE {
                self.stats.pass_waits.fetch_add(1, Ordering::Relaxed);
                self.point("grow:spin", Some(nid), cpu);
            }
        };
        let guard = self.lock_spinning(
            lock,
            cpu,
            self.grow_irqsave,
            "deferred_grow_zone",
            &mut { waits_for_pass },
        )?;
        self.point("grow:locked", Some(nid), cpu);
        self.stats.grow_calls.fetch_add(1, Ordering::Relaxed);
        let (got, result) = self.grow_locked(ni, zi, need, snapshot, cpu);
        // The 5.2 release's True from a node with nothing left: get_page_from_freelist would retry
        // this zone forever (B12). Reported instead of spinning.
        let endless = result && got == 0 && snapshot.is_none() && self.faults.retry_forever;
        self.log(
            cpu,
            Event::Grow {
                node: nid,
                zone: zone.zt,
                order,
                hook,
                pages: got,
                first_deferred_pfn: node.fdp.load(),
                result,
            },
        );
        if result {
            self.stats.grows_true.fetch_add(1, Ordering::Relaxed);
        }
        self.unlock(guard, cpu);
        if endless {
            self.violation(format!(
                "B12: deferred_grow_zone(node {nid}, {}, order {order}) returned True without progress: \
                 get_page_from_freelist would retry this zone forever",
                zone.zt.name()
            ));
        }
        Ok((result, endless))
    }

    /// The part of grow under the lock: returns (pages initialised, result).
    fn grow_locked(
        &self,
        ni: usize,
        zi: usize,
        need: u64,
        snapshot: Option<u64>,
        cpu: u32,
    ) -> (u64, bool) {
        let node = &self.nodes[ni];
        let zone = node.zones[zi].span;
        let g = *self.geometry();
        let step = grow_step(
            self.policy,
            self.faults.trust_snapshot,
            self.key.enabled(),
            snapshot,
            node.fdp.load(),
            zone.start_pfn,
            node.span.end_pfn,
        );
        let first = match step {
            GrowStep::Return(r) => return (0, r),
            GrowStep::Empty => return (0, self.grow_empty(ni, snapshot)),
            GrowStep::Grow { first } => first,
        };
        match self.policy.grow_walk() {
            GrowWalk::MaxOrder => return self.grow_maxorder(ni, zi, need, first, snapshot, cpu),
            GrowWalk::Sections2025 => return self.grow_sections_2025(ni, zi, need, first, cpu),
            GrowWalk::Sections => {}
        }
        // Pass 1: initialise section by section over the free ranges until `need` pages are done.
        let mut got = 0;
        let mut new_first = first;
        for r in self.node_free_ranges(ni) {
            let (mut s, e) = (first.max(r.start), zone.end_pfn.min(r.end));
            while s < e && got < need {
                // ALIGN(spfn + PAGES_PER_SECTION, PAGES_PER_SECTION), as merged: from an unaligned
                // spfn (the end of a free range) this reaches past the next section boundary.
                new_first = g.section_align_up(s + g.pages_per_section()).min(e);
                got += self.init_pages(s, new_first, zone.zt, node.span.nid, InitBy::Grow);
                s = new_first;
                self.point("grow:section", Some(node.span.nid), cpu);
                self.irq_point(cpu); // touch_nmi_watchdog(): interrupts arrive here if they are on
            }
            if got >= need {
                break;
            }
        }
        // Pass 2: free exactly what pass 1 initialised, now that every buddy it may read is valid.
        for r in self.node_free_ranges(ni) {
            let (s, e) = (first.max(r.start), new_first.min(r.end));
            self.deferred_free_pages(ni, zi, s, e);
            if e == new_first {
                break;
            }
        }
        self.set_fdp(ni, Some(new_first));
        self.stats.grow_pages.fetch_add(got, Ordering::Relaxed);
        (got, self.policy.grow_result(got, need))
    }

    /// Grow found nothing deferred at or after its snapshot: 5.2+ clear fdp ("the zone is empty,
    /// somebody else may have cleared it out") and retry only once.
    fn grow_empty(&self, ni: usize, snapshot: Option<u64>) -> bool {
        if self.policy.grow_walk() != GrowWalk::Sections {
            self.set_fdp(ni, None); // 2025: nothing found -> ULONG_MAX as well
        }
        empty_result(self.policy, snapshot, self.faults.retry_forever)
    }

    /// 5.2+ grow (`deferred_grow_zone` of [K6.1]): `deferred_init_maxorder` steps from the free range
    /// holding `first`; stop only once a step crossed a section boundary and `got >= need`; fdp :=
    /// the first unprocessed pfn (a MAX_ORDER boundary or the next free range's start), ULONG_MAX
    /// when the zone's free ranges ran out.
    fn grow_maxorder(
        &self,
        ni: usize,
        zi: usize,
        need: u64,
        first: u64,
        snapshot: Option<u64>,
        cpu: u32,
    ) -> (u64, bool) {
        let pps = self.geometry().pages_per_section();
        let ranges = self.zone_free_ranges(ni, zi);
        let Some(mut it) = ZoneIter::at(&ranges, first) else {
            return (0, self.grow_empty(ni, snapshot));
        };
        let mut got = 0;
        while let Some(mark) = it.spfn() {
            got += self.deferred_init_maxorder(ni, zi, &mut it, InitBy::Grow);
            self.irq_point(cpu); // touch_nmi_watchdog()
                                 // Only stop along section boundaries (ULONG_MAX is in another section than any pfn).
            if it.spfn().is_some_and(|s| (mark ^ s) < pps) {
                continue;
            }
            self.point("grow:section", Some(self.nodes[ni].span.nid), cpu);
            if got >= need {
                break;
            }
        }
        self.set_fdp(ni, it.spfn());
        self.stats.grow_pages.fetch_add(got, Ordering::Relaxed);
        (got, self.policy.grow_result(got, need))
    }

    /// 2025 grow (spec §5.12): the chunk function over whole sections from `first` until `need`
    /// pages or the zone end; fdp := the next section, or ULONG_MAX if nothing was found.
    fn grow_sections_2025(
        &self,
        ni: usize,
        zi: usize,
        need: u64,
        first: u64,
        cpu: u32,
    ) -> (u64, bool) {
        let pps = self.geometry().pages_per_section();
        let zone_end = self.nodes[ni].zones[zi].span.end_pfn;
        let (mut spfn, mut epfn) = (first, self.geometry().section_align_up(first + 1));
        let mut got = 0;
        while got < need && spfn < zone_end {
            got += self
                .deferred_init_memmap_chunk_2025(ni, zi, spfn, epfn, InitBy::Grow, cpu, None)
                .unwrap_or_else(|n| n);
            self.point("grow:section", Some(self.nodes[ni].span.nid), cpu);
            (spfn, epfn) = (epfn, epfn + pps);
        }
        self.set_fdp(ni, (got > 0).then_some(spfn));
        self.stats.grow_pages.fetch_add(got, Ordering::Relaxed);
        (got, self.policy.grow_result(got, need))
    }

    /// The 2025 chunk function (`deferred_init_memmap_chunk`): over the zone's free ranges inside
    /// `[start, end)`, initialise then free each piece up to the next MAX_ORDER boundary, one loop.
    /// `pass_done`: the pass's shared page count (the `fail_pass` fault stops it: Err(pages)).
    #[allow(clippy::too_many_arguments)]
    fn deferred_init_memmap_chunk_2025(
        &self,
        ni: usize,
        zi: usize,
        start: u64,
        end: u64,
        by: InitBy,
        cpu: u32,
        pass_done: Option<&crate::sync::AtomicU64>,
    ) -> std::result::Result<u64, u64> {
        let (nid, zt) = (self.nodes[ni].span.nid, self.nodes[ni].zones[zi].span.zt);
        let fail_after = self.faults.fail_pass.filter(|f| f.0 == nid).map(|f| f.1);
        let mo = self.geometry().max_order_nr_pages();
        let mut count = 0;
        for (fs, fe) in self.zone_free_ranges(ni, zi) {
            if fs >= end {
                break;
            }
            let (mut s, e) = (fs.max(start), fe.min(end));
            while s < e {
                let c = (s + 1).next_multiple_of(mo).min(e);
                if pass_done.is_some() && self.stopping() {
                    return Ok(count);
                }
                if let Some(done) = pass_done {
                    if fail_after.is_some_and(|l| done.load(Ordering::Relaxed) + (c - s) > l) {
                        return Err(count);
                    }
                    done.fetch_add(c - s, Ordering::Relaxed);
                }
                count += self.init_pages(s, c, zt, nid, by);
                self.deferred_free_pages(ni, zi, s, c);
                s = c;
                self.irq_point(cpu); // touch_nmi_watchdog() or cond_resched(), by irqs_disabled()
            }
        }
        Ok(count)
    }

    /// The free ranges of node `ni` clipped to its zone `zi`, ascending
    /// (`for_each_free_mem_pfn_range_in_zone`).
    fn zone_free_ranges(&self, ni: usize, zi: usize) -> Vec<(u64, u64)> {
        let z = self.nodes[ni].zones[zi].span;
        self.node_free_ranges(ni)
            .map(|r| (r.start.max(z.start_pfn), r.end.min(z.end_pfn)))
            .filter(|(s, e)| s < e)
            .collect()
    }

    /// `deferred_init_maxorder` (5.2+): initialise from the iterator's position up to the next
    /// MAX_ORDER boundary, across free ranges, then walk the same ranges again from the old position
    /// and free exactly what was initialised. The iterator is left at the first unprocessed pfn.
    fn deferred_init_maxorder(
        &self,
        ni: usize,
        zi: usize,
        it: &mut ZoneIter<'_>,
        by: InitBy,
    ) -> u64 {
        let node = &self.nodes[ni];
        let zt = node.zones[zi].span.zt;
        let start = it.spfn().expect("maxorder step from a positioned iterator");
        let mo = (start + 1).next_multiple_of(self.geometry().max_order_nr_pages());
        let mut j = it.clone();
        let mut pages = 0;
        while let Some((s, e)) = it.cur {
            if mo <= s {
                break;
            }
            pages += self.init_pages(s, mo.min(e), zt, node.span.nid, by);
            if mo < e {
                it.cur = Some((mo, e));
                break;
            }
            it.advance();
        }
        while let Some((s, e)) = j.cur {
            if mo <= s {
                break;
            }
            self.deferred_free_pages(ni, zi, s, mo.min(e));
            if mo <= e {
                break;
            }
            j.advance();
        }
        pages
    }

    /// The pass's jobs over `[first, zone end)`: one per free range, its end rounded up to a section
    /// (5.8's padata jobs; 5.2/5.7's single loop visits the same MAX_ORDER steps in the same order).
    pub(crate) fn deferred_pass_jobs(&self, ni: usize, first: u64) -> Vec<(u64, u64)> {
        if self.policy.pass_jobs() == PadataJobs::PerZone {
            let end = self.geometry().section_align_up(
                self.nodes[ni].zones[self.nodes[ni].deferred_zone]
                    .span
                    .end_pfn,
            );
            return if first < end {
                vec![(first, end)]
            } else {
                Vec::new()
            };
        }
        let ranges = self.zone_free_ranges(ni, self.nodes[ni].deferred_zone);
        let mut jobs = Vec::new();
        let mut it = ZoneIter::at(&ranges, first);
        while let Some((s, e)) = it.as_ref().and_then(|i| i.cur) {
            let end = self.geometry().section_align_up(e);
            jobs.push((s, end));
            it = ZoneIter::at(&ranges, end);
        }
        jobs
    }

    /// The chunk function (`deferred_init_memmap_chunk`): initialise and free the deferred free
    /// pages of node `ni`'s deferred zone in `[s, e)` in MAX_ORDER steps, as `cpu`, with an interrupt
    /// point after each step (cond_resched / touch_nmi_watchdog). Returns the pages initialised, or
    /// Err(pages) if the `fail_pass` fault stopped it. `done` counts the pass's pages so far (shared
    /// by the chunks of one pass).
    pub(crate) fn deferred_init_memmap_chunk(
        &self,
        ni: usize,
        s: u64,
        e: u64,
        cpu: u32,
        done: &crate::sync::AtomicU64,
    ) -> std::result::Result<u64, u64> {
        let zi = self.nodes[ni].deferred_zone;
        let nid = self.nodes[ni].span.nid;
        let fail_after = self.faults.fail_pass.filter(|f| f.0 == nid).map(|f| f.1);
        if self.policy.pass_walk() == PassWalk::Chunks2025 {
            return self.deferred_init_memmap_chunk_2025(
                ni,
                zi,
                s,
                e,
                InitBy::Pass,
                cpu,
                Some(done),
            );
        }
        let ranges = self.zone_free_ranges(ni, zi);
        let Some(mut it) = ZoneIter::at(&ranges, s) else {
            return Ok(0);
        };
        let mut pages = 0;
        // The pass's shared count is only read by the `fail_pass` fault: without it, one add per chunk
        // (an add per MAX_ORDER step bounced its cache line between the helpers' host threads).
        let mut unadded = 0;
        while let Some(spfn) = it.spfn().filter(|&p| p < e && !self.stopping()) {
            let mo = (spfn + 1).next_multiple_of(self.geometry().max_order_nr_pages());
            if fail_after.is_some_and(|limit| done.load(Ordering::Relaxed) + (mo - spfn) > limit) {
                return Err(pages);
            }
            let n = self.deferred_init_maxorder(ni, zi, &mut it, InitBy::Pass);
            pages += n;
            if fail_after.is_some() {
                done.fetch_add(n, Ordering::Relaxed);
            } else {
                unadded += n;
            }
            self.irq_point(cpu);
        }
        done.fetch_add(unadded, Ordering::Relaxed);
        Ok(pages)
    }

    /// `deferred_init_memmap(pgdat)`: claim the node (fdp := ULONG_MAX) and initialise, then free, every
    /// deferred free page of its last zone. v4.17 holds the node lock, interrupts off, for the whole pass.
    /// In the padata generations the chunks run on real host threads (see `deferred_init_memmap_on`).
    pub fn deferred_init_memmap(&self, ni: usize, cpu: u32) -> Result<u64> {
        self.deferred_init_memmap_on(ni, cpu, true)
    }

    /// `deferred_init_memmap` with padata's chunks on host threads (`threads`) or in ascending order
    /// on this thread (the deterministic mode).
    pub fn deferred_init_memmap_on(&self, ni: usize, cpu: u32, threads: bool) -> Result<u64> {
        let t = Instant::now();
        let node = &self.nodes[ni];
        let nid = node.span.nid;
        let zone = node.zones[node.deferred_zone].span;
        self.point("pass:start", Some(nid), cpu);
        let claim = || {
            let fdp = node.fdp.load();
            self.set_fdp(ni, None);
            fdp
        };
        let (fdp, guard) = match self.policy.pass_lock() {
            PassLock::None => (claim(), None),
            PassLock::WholePass => {
                let g = self.lock(&node.size_lock, cpu, true, PASS_SITE)?;
                (claim(), Some(g))
            }
            PassLock::Claim => {
                // "Once we unlock here, the zone cannot be grown anymore" (5.7+).
                let g = self.lock(&node.size_lock, cpu, true, PASS_SITE)?;
                let fdp = claim();
                self.unlock(g, cpu);
                self.point("pass:claimed", Some(nid), cpu);
                (fdp, None)
            }
        };
        let mut pages = 0;
        let mut failed = false;
        if let Some(fdp) = fdp {
            let first = fdp.max(zone.start_pfn);
            (pages, failed) = match (self.policy.pass_walk(), self.policy.padata_jobs()) {
                (PassWalk::TwoPass, _) => self.pass_two_pass(ni, first, cpu),
                (_, PadataJobs::None) => self.pass_run_jobs(ni, first, cpu),
                (_, jobs) => self.pass_padata(ni, first, cpu, jobs, threads)?,
            };
            if self.faults.panic_pass == Some(nid) {
                panic!("pgdatinit{nid}: injected panic after {pages} pages");
            }
        }
        self.point("pass:finish", Some(nid), cpu);
        if let Some(g) = guard {
            self.unlock(g, cpu);
        }
        if failed {
            return Err(Error::WorkerFailed {
                node: nid,
                message: format!("pgdatinit{nid}: deferred_init_memmap failed after {pages} pages (injected fault)"),
            });
        }
        self.stats
            .deferred_pass_pages
            .fetch_add(pages, Ordering::Relaxed);
        let host_ns = t.elapsed().as_nanos() as u64;
        self.log(
            cpu,
            Event::DeferredInit {
                node: nid,
                pages,
                host_ns,
            },
        );
        self.point("pass:end", Some(nid), cpu);
        Ok(pages)
    }

    /// The 4.15–5.1 pass body: initialise every deferred free page of `[first, zone end)` section by
    /// section, then free them all. Returns (pages, failed by the `fail_pass` fault).
    fn pass_two_pass(&self, ni: usize, first: u64, cpu: u32) -> (u64, bool) {
        let node = &self.nodes[ni];
        let (nid, zi) = (node.span.nid, node.deferred_zone);
        let zone = node.zones[zi].span;
        let fail_after = self.faults.fail_pass.filter(|f| f.0 == nid).map(|f| f.1);
        let clip = |r: &PfnRange| (first.max(r.start), zone.end_pfn.min(r.end));
        let mut pages = 0;
        for r in self.node_free_ranges(ni) {
            let (mut s, e) = clip(r);
            while s < e && !self.stopping() {
                let step = self.geometry().section_align_up(s + 1).min(e);
                if fail_after.is_some_and(|limit| pages + (step - s) > limit) {
                    return (pages, true);
                }
                pages += self.init_pages(s, step, zone.zt, nid, InitBy::Pass);
                s = step;
                self.irq_point(cpu);
            }
        }
        for r in self.node_free_ranges(ni) {
            let (s, e) = clip(r);
            if self.stop.requested() {
                break;
            }
            self.deferred_free_pages(ni, zi, s, e);
        }
        (pages, false)
    }

    /// The 5.2+ pass body: for each job over the node's free ranges, the chunk function over
    /// `[s, e)`, in order on this thread. Returns (pages, failed by the `fail_pass` fault).
    fn pass_run_jobs(&self, ni: usize, first: u64, cpu: u32) -> (u64, bool) {
        let done = crate::sync::AtomicU64::new(0);
        for (s, e) in self.deferred_pass_jobs(ni, first) {
            if self
                .deferred_init_memmap_chunk(ni, s, e, cpu, &done)
                .is_err()
            {
                return (done.load(Ordering::Relaxed), true);
            }
        }
        (done.load(Ordering::Relaxed), false)
    }

    /// The 5.8+ pass body: each job through `padata_do_multithreaded` (align = min_chunk =
    /// PAGES_PER_SECTION, max_threads = the node's CPUs), its chunks running the chunk function as
    /// their simulated worker (worker 0 on this pgdatinit CPU, helper k on its own CPU), each logged
    /// as `padata_chunk` just before it runs. With `threads`, the chunks run on up to
    /// `1 + extra` host threads, the extra ones reserved from the machine's host-thread budget for the
    /// job. Returns (pages, failed by the `fail_pass` fault); a helper CPU already simulated by another
    /// host thread is an error.
    fn pass_padata(
        &self,
        ni: usize,
        first: u64,
        cpu: u32,
        jobs: PadataJobs,
        threads: bool,
    ) -> Result<(u64, bool)> {
        let node = &self.nodes[ni];
        let nid = node.span.nid;
        let pps = self.geometry().pages_per_section();
        let jobs = match jobs {
            PadataJobs::PerZone => {
                let end = self
                    .geometry()
                    .section_align_up(node.zones[node.deferred_zone].span.end_pfn);
                if first < end {
                    vec![(first, end)]
                } else {
                    vec![]
                }
            }
            _ => self.deferred_pass_jobs(ni, first),
        };
        let done = crate::sync::AtomicU64::new(0);
        for (s, e) in jobs {
            let job = Job {
                start: s,
                size: e - s,
                align: pps,
                min_chunk: pps,
                max_threads: self.workers.max_threads(ni),
            };
            let nworks = job.plan()?.map_or(1, |p| p.nworks) as usize;
            let extra = if threads {
                self.workers.reserve(nworks - 1)
            } else {
                0
            };
            let mode = if threads {
                Mode::Threaded {
                    max_host_threads: 1 + extra,
                }
            } else {
                Mode::Deterministic
            };
            let r = padata_do_multithreaded::<ChunkStop>(&job, mode, &|c| {
                let wcpu = match c.worker {
                    0 => cpu,
                    w => self.workers.helper_cpu(ni, w),
                };
                let _on = match c.worker {
                    0 => None,
                    _ => Some(self.enter_cpu(wcpu).map_err(ChunkStop::Error)?),
                };
                self.log(
                    wcpu,
                    Event::PadataChunk {
                        node: nid,
                        start: c.start,
                        end: c.end,
                        worker: c.worker,
                    },
                );
                self.deferred_init_memmap_chunk(ni, c.start, c.end, wcpu, &done)
                    .map(|_| ())
                    .map_err(|_| ChunkStop::Fault)
            });
            self.workers.release(extra);
            match r {
                Ok(_) => {}
                Err(ChunkStop::Fault) => return Ok((done.load(Ordering::Relaxed), true)),
                Err(ChunkStop::Error(e)) => return Err(e),
            }
        }
        Ok((done.load(Ordering::Relaxed), false))
    }

    /// `page_alloc_init_late`: one thread per node runs its pass; the static key goes off before
    /// (posting-v2) or after (v4.17) them. With `threads == false` the passes run in node order on
    /// the calling thread (deterministic, for differential tests). A failed worker marks the machine
    /// failed and is returned as `WorkerFailed`.
    pub fn page_alloc_init_late(&self, threads: bool) -> Result<()> {
        let _t = self.begin_transition("page_alloc_init_late()")?;
        let _on = self.enter_cpu(BOOT_CPU)?;
        match self.phase() {
            Phase::Booted => {}
            Phase::Created => {
                return Err(Error::Phase("page_alloc_init_late() before boot()".into()))
            }
            p => {
                return Err(Error::Phase(format!(
                    "page_alloc_init_late() called twice (the machine is {})",
                    p.name()
                )))
            }
        }
        self.set_phase(Phase::LateInit);
        self.stop.set_stage(RunStage::LateInit);
        let _idle = StageGuard(&self.stop);
        // start_kernel has set up the real per-CPU pagesets long before kernel_init_freeable
        if !self.pcp_ready.swap(true, Ordering::AcqRel) {
            self.zone_pcp_update();
        }
        if self.policy.key_disable() == KeyDisable::BeforePasses && !self.faults.keep_key {
            let guard = self
                .lock(
                    &self.grow_lock,
                    BOOT_CPU,
                    self.grow_irqsave,
                    "page_alloc_init_late",
                )
                .inspect_err(|_| self.set_phase(Phase::Booted))?; // nothing happened yet: still booted
            self.static_branch_disable(BOOT_CPU);
            self.unlock(guard, BOOT_CPU);
        }
        let results: Vec<Result<u64>> = if threads && self.nodes.len() > 1 {
            let joining = self.waits.joining(); // this thread waits for the pass threads
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..self.nodes.len())
                    .map(|ni| {
                        let parent = joining.parent();
                        s.spawn(move || {
                            let _child = crate::waits::Child::enter(&parent);
                            // Every pgdatinit thread but one uses up a host thread of the budget
                            // padata's helpers share (if any is left).
                            let held = if ni > 0 { self.workers.reserve(1) } else { 0 };
                            let r = self.run_pass(ni, true);
                            self.workers.release(held);
                            r
                        })
                    })
                    .collect();
                self.join_polling(&handles);
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(Error::Phase("worker lost".into())))
                    })
                    .collect()
            })
        } else {
            (0..self.nodes.len())
                .map(|ni| self.run_pass(ni, threads))
                .collect()
        };
        self.interrupted("page_alloc_init_late()")?;
        if let Some(err) = results.into_iter().find_map(|r| r.err()) {
            self.set_phase(Phase::Failed);
            return Err(err);
        }
        if self.policy.key_disable() == KeyDisable::AfterPasses && !self.faults.keep_key {
            self.static_branch_disable(BOOT_CPU);
        }
        if self.policy.pcp() == crate::pcp::PcpRules::V4_17 {
            // "The number of managed pages has changed due to the initialisation so the pcpu batch
            // and high limits needs to be updated" (removed in 5.14)
            self.zone_pcp_update();
        }
        if self.policy.mem_init_print() == MemInitPrint::Late {
            // "Accounting of total+free memory is stable at this point" (6.11+)
            self.mem_init_print_info("page_alloc_init_late");
        }
        self.set_phase(Phase::Done);
        Ok(())
    }

    /// Wait for the pass threads, polling for a stop request meanwhile (the polls of the pass threads
    /// themselves cannot reach the front end's hook, which answers on the calling thread only).
    fn join_polling<T>(&self, handles: &[std::thread::ScopedJoinHandle<'_, T>]) {
        while !handles
            .iter()
            .all(std::thread::ScopedJoinHandle::is_finished)
        {
            if !self.stop.has_hook() {
                return; // no front end to ask: a plain join
            }
            self.stop.ask();
            std::thread::park_timeout(std::time::Duration::from_millis(2));
        }
    }

    /// One node's pass on its pgdatinit CPU; a panic in it becomes `WorkerFailed` (the lock guard
    /// is released by unwinding).
    fn run_pass(&self, ni: usize, threads: bool) -> Result<u64> {
        let cpu = self.pgdatinit_cpu(ni);
        let _on = self.enter_cpu(cpu)?;
        let nid = self.nodes[ni].span.nid;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.deferred_init_memmap_on(ni, cpu, threads)
        })) {
            Ok(r) => r,
            Err(_) => Err(Error::WorkerFailed {
                node: nid,
                message: format!("pgdatinit{nid}: worker thread panicked"),
            }),
        }
    }

    /// `mem_init_print_info()`: record the `Memory:` line's figures at its print point.
    fn mem_init_print_info(&self, at: &'static str) {
        let available = self
            .nodes
            .iter()
            .flat_map(|n| n.zones.iter())
            .map(|z| z.area.lock().free_pages)
            .sum();
        let physpages = self.nodes.iter().map(|n| n.span.present).sum();
        *self.memory_line.lock().unwrap() = Some(MemoryLine {
            at,
            available,
            physpages,
        });
    }

    /// The `Memory: X/Y available` line, once printed (None before its print point).
    pub fn memory_line(&self) -> Option<MemoryLine> {
        *self.memory_line.lock().unwrap()
    }

    /// `static_branch_disable(&deferred_pages)`: it may sleep (jump-label patching takes a mutex), so
    /// doing it in atomic context is the bug the 0-day robot reported against the v4 posting (B9).
    fn static_branch_disable(&self, cpu: u32) {
        self.point("key_disable:before", None, cpu);
        let c = &self.cpus[cpu as usize];
        if c.in_atomic() || c.irqs_disabled() {
            self.log(cpu, Event::Warning {
                message: format!(
                    "BUG: sleeping function called from invalid context at kernel/jump_label.c \
                     (static_branch_disable(&deferred_pages)): in_atomic(): {}, irqs_disabled(): {}, CPU {cpu}",
                    u8::from(c.in_atomic()),
                    u8::from(c.irqs_disabled())
                ),
            });
        }
        if self.key.disable() {
            self.log(cpu, Event::KeyDisable);
        }
        self.point("key_disable:after", None, cpu);
    }

    /// `free_initmem()`: after late init, the `__init` text (deferred_grow_zone) is freed. Any later
    /// call of it is an error.
    pub fn free_initmem(&self) -> Result<()> {
        self.refuse_from_callback("free_initmem()")?; // it would free the grow code a CPU is stopped in
        if self.phase() != Phase::Done {
            return Err(Error::Phase(format!(
                "free_initmem() before page_alloc_init_late() finished (the machine is {})",
                self.phase().name()
            )));
        }
        self.initmem_freed.store(true, Ordering::Release);
        Ok(())
    }

    /// Boot phases change one at a time; a phase change asked for from inside another (a point callback
    /// calling boot() or page_alloc_init_late()) is an error, not a wait for itself.
    fn begin_transition(&self, what: &str) -> Result<crate::sync::MutexGuard<'_, ()>> {
        self.refuse_from_callback(what)?;
        self.transition.try_lock().map_err(|_| {
            Error::Phase(format!(
                "{what} called while another boot phase is running (from a point callback?)"
            ))
        })
    }
}

/// The first pfn of node index `ni`'s last zone to defer (spec §2.3, docs/model.md §11.2): count the
/// pfns the generation's early loop visits, in order; cut at the first section-aligned one whose count
/// exceeds the policy's LIMIT. A pure function of the layout, so that the same rule answers "what
/// would be deferred" without building a page array. `bytes_as_pages`: v4.13's B4 fault; `prefix`: v4.2's
/// fixed prefix in pages instead of 2 GiB (`MachineConfig::early_prefix`).
pub fn defer_cut(
    layout: &Layout,
    policy: Policy,
    bytes_as_pages: bool,
    prefix: Option<u64>,
    ni: usize,
) -> Option<u64> {
    let node = &layout.nodes[ni];
    let g = &layout.geometry;
    let limit = policy
        .early_limit(
            g,
            node.start_pfn,
            node.spanned(),
            &layout.reserved_regions,
            bytes_as_pages,
        )
        .map(|l| prefix.unwrap_or(l))?;
    let mut counted = 0u64;
    for (s, e) in defer_counted_runs(layout, policy, ni) {
        // pfn p of this run is number counted + (p - s) + 1; it may cut iff that exceeds limit.
        let first_over = s + limit.saturating_sub(counted);
        let cut = g.section_align_up(first_over);
        if cut < e {
            return Some(cut);
        }
        counted += e - s;
    }
    None
}

/// The runs of pfns of node `ni`'s deferred zone that the early loop counts, ascending.
/// `MemoryPfns` (5.8+ `memmap_init` over memblock regions): the node's memory. `ValidPfns`
/// (4.2–5.7 `memmap_init_zone` over the zone span): every pfn of a present section
/// (`early_pfn_valid`) except other nodes' memory (`early_pfn_in_nid` is true for a hole).
fn defer_counted_runs(layout: &Layout, policy: Policy, ni: usize) -> Vec<(u64, u64)> {
    let node = &layout.nodes[ni];
    let Some(dz) = node.zone(node.deferred_zone) else {
        return Vec::new();
    };
    let clip = |s: u64, e: u64| (s.max(dz.start_pfn), e.min(dz.end_pfn));
    let mem = &layout.memory;
    match policy.defer_count() {
        DeferCount::MemoryPfns => mem
            .iter()
            .filter(|r| r.nid == node.nid)
            .map(|r| clip(r.start, r.end))
            .filter(|(s, e)| s < e)
            .collect(),
        DeferCount::ValidPfns => {
            let shift = layout.geometry.section_shift;
            let mut runs = Vec::new();
            for (sec, n) in layout.present_section_runs() {
                let (mut s, e) = clip(sec << shift, (sec + n) << shift);
                let (s0, e0) = (s, e);
                for o in mem
                    .iter()
                    .filter(|r| r.nid != node.nid && r.end > s0 && r.start < e0)
                {
                    if o.start > s {
                        runs.push((s, o.start));
                    }
                    s = s.max(o.end);
                }
                if s < e {
                    runs.push((s, e));
                }
            }
            runs
        }
    }
}

/// What `memmap_init` leaves to deferred init on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeDeferral {
    pub nid: u32,
    /// None: nothing deferred (`first_deferred_pfn == ULONG_MAX`).
    pub first_deferred_pfn: Option<u64>,
    /// Memory pfns of the node at or above first_deferred_pfn (reserved ones included).
    pub deferred_pages: u64,
}

/// Per node, where the defer rule cuts and how many struct pages it leaves uninitialised, from the
/// layout alone (no page array).
pub fn deferral(layout: &Layout, policy: Policy) -> Vec<NodeDeferral> {
    (0..layout.nodes.len())
        .map(|ni| {
            let nid = layout.nodes[ni].nid;
            let fdp = defer_cut(layout, policy, false, None, ni);
            let deferred_pages = fdp.map_or(0, |f| {
                layout
                    .memory
                    .iter()
                    .filter(|r| r.nid == nid && r.end > f)
                    .map(|r| r.end - r.start.max(f))
                    .sum()
            });
            NodeDeferral {
                nid,
                first_deferred_pfn: fdp,
                deferred_pages,
            }
        })
        .collect()
}

/// The zone free-range iterator (`for_each_free_mem_pfn_range_in_zone_from`): the current range
/// `[spfn, epfn)` (its start possibly advanced), None once the zone's free ranges ran out (the
/// kernel's spfn = ULONG_MAX, epfn = 0).
#[derive(Clone)]
struct ZoneIter<'a> {
    ranges: &'a [(u64, u64)],
    i: usize,
    cur: Option<(u64, u64)>,
}

impl<'a> ZoneIter<'a> {
    /// `deferred_init_mem_pfn_range_in_zone`: position at the first range ending after `first`,
    /// its start clipped to `first`; None if there is none.
    fn at(ranges: &'a [(u64, u64)], first: u64) -> Option<ZoneIter<'a>> {
        let i = ranges.iter().position(|&(_, e)| e > first)?;
        let (s, e) = ranges[i];
        Some(ZoneIter {
            ranges,
            i,
            cur: Some((s.max(first), e)),
        })
    }

    fn advance(&mut self) {
        self.i += 1;
        self.cur = self.ranges.get(self.i).copied();
    }

    fn spfn(&self) -> Option<u64> {
        self.cur.map(|c| c.0)
    }
}

/// Why a padata chunk stopped its job: the `fail_pass` fault, or an error of the model.
enum ChunkStop {
    Fault,
    Error(Error),
}

impl From<InvalidJob> for ChunkStop {
    fn from(e: InvalidJob) -> Self {
        ChunkStop::Error(e.into())
    }
}

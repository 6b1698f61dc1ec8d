//! The invariant checker (spec §7: I1–I4, B-I1–B-I4). Call it on a quiescent machine.

use crate::machine::{fmt_fdp, Machine, Phase};
use crate::page::{PageState, MT_UNSET};

/// Pages checked between two stop polls.
const CHECK_CHUNK: usize = 1 << 16;

impl Machine {
    /// Every broken invariant, as one message each (empty = all hold). Also includes the violations
    /// recorded while running (double init, merge with an UNINIT buddy, fdp moving backwards).
    pub fn check(&self) -> Vec<String> {
        let mut bad = self.violations();
        let pa = &self.pages;
        let done = self.phase() >= Phase::Done;
        // Expected class of every memory pfn (holes are everything else in the memmap) and which pfns
        // may still be UNINIT, as sorted index spans: no per-page array, so a 24 TB check fits.
        let memory = Spans::new(
            self.layout
                .memory
                .iter()
                .map(|r| pa.idx(r.start).map(|i| (i, i + r.len() as usize))),
        );
        let deferrable = Spans::new(self.layout.free.iter().map(|r| {
            let ni = self.node_index(r.nid).unwrap();
            let s = r.start.max(self.nodes[ni].fdp.load()?);
            (s < r.end).then(|| pa.idx(s).map(|i| (i, i + (r.end - s) as usize)))?
        }));
        let (mut memory, mut deferrable) = (memory.cursor(), deferrable.cursor());
        let booted = self.phase() >= Phase::Booted;
        let pbo = self.geometry().pageblock_order;
        let mut uninit_count = 0u64;
        self.stop.set_stage(crate::stop::RunStage::Check);
        let (mut i, mut polled) = (0usize, 0usize);
        while i < pa.len() {
            if i - polled >= CHECK_CHUNK {
                self.stop.add_checked((i - polled) as u64);
                polled = i;
                if self.stopping() {
                    bad.push(format!("check() interrupted at pfn {:#x}", pa.pfn(i)));
                    break;
                }
            }
            // One step covers a page, or a summarised section's pages that are alike in every respect
            // checked here (the spans split it where memory or the deferred range starts or ends).
            let (is_memory, memory_end) = memory.at(i);
            let (deferrable, deferrable_end) = deferrable.at(i);
            let (f, _, end) = pa.run_at(i, memory_end.min(deferrable_end));
            let (state, n) = (f.state(), f.init_count());
            let pfn = pa.pfn(i);
            if n > 1 {
                push(&mut bad, format!("I1: pfn {pfn:#x} initialised {n} times"));
            }
            if (state == PageState::Uninit) != (n == 0) {
                push(
                    &mut bad,
                    format!("I1: pfn {pfn:#x} is {state:?} with init count {n}"),
                );
            }
            if booted && state == PageState::Uninit && !deferrable {
                push(
                    &mut bad,
                    format!("I2: pfn {pfn:#x} is uninitialised but not deferred"),
                );
            }
            if booted && deferrable && state != PageState::Uninit {
                push(
                    &mut bad,
                    format!("I2: pfn {pfn:#x} at/above first_deferred_pfn is {state:?}"),
                );
            }
            if state == PageState::Uninit {
                uninit_count += (end - i) as u64;
            }
            if booted && !is_memory && state != PageState::Reserved {
                push(
                    &mut bad,
                    format!("hole pfn {pfn:#x} is {state:?}, not reserved"),
                );
            }
            if state == PageState::Free {
                let untyped = (i >> pbo..=(end - 1) >> pbo)
                    .find(|&b| pa.pageblock_mt(b << pbo) == MT_UNSET);
                if let Some(b) = untyped {
                    push(
                        &mut bad,
                        format!(
                            "B-I3: free pfn {:#x} in a pageblock without a migratetype",
                            pa.pfn((b << pbo).max(i))
                        ),
                    );
                }
            }
            i = end;
        }
        self.check_ledger(&mut bad);
        if done && uninit_count > 0 {
            push(
                &mut bad,
                format!(
                    "I1: {uninit_count} page(s) still uninitialised after page_alloc_init_late"
                ),
            );
        }
        for (ni, node) in self.nodes.iter().enumerate() {
            if done && node.fdp.load().is_some() {
                bad.push(format!(
                    "I4: node {} first_deferred_pfn is {} after deferred init",
                    node.span.nid,
                    fmt_fdp(node.fdp.load())
                ));
            }
            for zi in 0..node.zones.len() {
                self.check_zone(ni, zi, &mut bad);
            }
        }
        self.stop.set_stage(crate::stop::RunStage::Idle);
        bad
    }

    /// B-I1 / B-I4 for one zone: lists hold FREE heads of their order, in the zone; counts add up.
    fn check_zone(&self, ni: usize, zi: usize, bad: &mut Vec<String>) {
        let pa = &self.pages;
        let node = &self.nodes[ni];
        let zs = &node.zones[zi];
        let name = format!("node {} zone {}", node.span.nid, zs.span.zt.name());
        // the per-CPU lists first: their locks come before zone->lock
        let pcp_pages = self.check_pcp(ni, zi, &name, bad);
        let area = zs.area.lock();
        let mut listed = 0u64;
        for order in 0..=self.geometry().max_order {
            let list = area.list(pa, order);
            if list.len() as u64 != area.nr_free[order as usize] {
                push(
                    bad,
                    format!(
                        "B-I4: {name} order {order}: list has {} blocks, nr_free says {}",
                        list.len(),
                        area.nr_free[order as usize]
                    ),
                );
            }
            for &h in &list {
                let pfn = pa.pfn(h);
                if pfn & ((1 << order) - 1) != 0 {
                    push(
                        bad,
                        format!("B-I1: {name} order {order} block at pfn {pfn:#x} is not aligned"),
                    );
                }
                if pa.buddy_order(h) != Some(order) {
                    push(
                        bad,
                        format!(
                            "B-I1: {name} list {order} holds pfn {pfn:#x} whose head order is {:?}",
                            pa.buddy_order(h)
                        ),
                    );
                }
                let (mut j, block_end) = (h, h + (1 << order));
                while j < block_end {
                    let (f, nid, end) = pa.run_at(j, block_end);
                    if f.state() != PageState::Free
                        || f.zone() != zs.span.zt
                        || u32::from(nid) != node.span.nid
                    {
                        push(bad, format!("B-I1: {name} order-{order} block {pfn:#x} holds pfn {:#x} that is {:?} in zone {} node {nid}", pa.pfn(j), f.state(), f.zone().name()));
                        break;
                    }
                    j = end;
                }
                listed += 1 << order;
            }
        }
        if listed != area.free_pages {
            push(
                bad,
                format!(
                    "B-I4: {name} free lists hold {listed} pages, NR_FREE_PAGES says {}",
                    area.free_pages
                ),
            );
        }
        // Conservation over the zone's memory pfns of this node.
        let (mut free, mut alloc, mut reserved, mut uninit) = (0u64, 0u64, 0u64, 0u64);
        for r in self.layout.memory.iter().filter(|r| r.nid == node.span.nid) {
            let (s, e) = (r.start.max(zs.span.start_pfn), r.end.min(zs.span.end_pfn));
            if s >= e {
                continue;
            }
            let i = pa.idx(s).unwrap();
            let (mut j, range_end) = (i, i + (e - s) as usize);
            while j < range_end {
                let (flags, _, end) = pa.run_at(j, range_end);
                let pages = (end - j) as u64;
                match flags.state() {
                    PageState::Free => free += pages,
                    PageState::Allocated => alloc += pages,
                    PageState::Reserved => reserved += pages,
                    PageState::Uninit => uninit += pages,
                    PageState::Init => {}
                }
                j = end;
            }
        }
        if free != area.free_pages + pcp_pages {
            push(
                bad,
                format!(
                    "B-I4: {name} has {free} FREE pages, NR_FREE_PAGES says {} and the per-CPU lists hold {pcp_pages}",
                    area.free_pages
                ),
            );
        }
        if self.phase() >= crate::machine::Phase::Booted
            && free + alloc + reserved + uninit != zs.span.present
        {
            push(bad, format!(
                "conservation: {name} present {} != free {free} + allocated {alloc} + reserved {reserved} + uninit {uninit}",
                zs.span.present
            ));
        }
        if area.managed < area.free_pages
            || (self.phase() >= crate::machine::Phase::Booted && area.managed != free + alloc)
        {
            push(
                bad,
                format!(
                    "B-I4: {name} managed {} != free {free} + allocated {alloc}",
                    area.managed
                ),
            );
        }
    }
}

impl Machine {
    /// B-I5 for one zone: every block on a CPU's per-CPU list is aligned, FREE, of this zone and node,
    /// no buddy head and inside no free buddy block; each list's count adds up. Returns the pages held.
    fn check_pcp(&self, ni: usize, zi: usize, name: &str, bad: &mut Vec<String>) -> u64 {
        let pa = &self.pages;
        let (nid, zs) = (self.nodes[ni].span.nid, &self.nodes[ni].zones[zi]);
        let max = self.geometry().max_order;
        let mut held = 0;
        for (cpu, p) in zs.pcp.iter().enumerate() {
            let pcp = p.lock();
            let mut pages = 0;
            for (h, order) in pcp.blocks() {
                let pfn = pa.pfn(h);
                pages += 1u64 << order;
                let in_buddy = (0..=max).find(|&k| {
                    let b = h & !((1usize << k) - 1);
                    pa.buddy_order(b) == Some(k)
                        && pa.state(b) == PageState::Free
                        && b + (1 << k) > h
                });
                let wrong = (h..h + (1 << order)).find(|&j| {
                    let f = pa.flags(j);
                    f.state() != PageState::Free
                        || f.zone() != zs.span.zt
                        || u32::from(pa.node_of(j)) != nid
                });
                let msg = if pfn & ((1 << order) - 1) != 0 {
                    Some("is not aligned".to_string())
                } else if let Some(k) = in_buddy {
                    Some(format!(
                        "is inside a free buddy block of order {k} (on two lists)"
                    ))
                } else {
                    wrong.map(|j| {
                        format!(
                            "holds pfn {:#x} that is {:?} in zone {} node {}",
                            pa.pfn(j),
                            pa.state(j),
                            pa.flags(j).zone().name(),
                            pa.node_of(j)
                        )
                    })
                };
                if let Some(m) = msg {
                    push(
                        bad,
                        format!("B-I5: {name} CPU {cpu} per-CPU order-{order} block {pfn:#x} {m}"),
                    );
                }
            }
            if pages != pcp.count {
                push(
                    bad,
                    format!(
                        "B-I5: {name} CPU {cpu} per-CPU lists hold {pages} pages, count says {}",
                        pcp.count
                    ),
                );
            }
            held += pages;
        }
        held
    }

    /// The allocation ledger against the page array: every live allocation is an ALLOCATED block with
    /// its order, and every ALLOCATED page belongs to one (else it is lost: nobody can free it).
    fn check_ledger(&self, bad: &mut Vec<String>) {
        let pa = &self.pages;
        let mut owned = Vec::new();
        for (pfn, order) in self.ledger.live() {
            let Some(i) = pa.idx(pfn) else {
                push(
                    bad,
                    format!("ledger: allocation at pfn {pfn:#x} has no struct page"),
                );
                continue;
            };
            let n = 1usize << order;
            let whole = i + n <= pa.len()
                && pa.allocated_order(i) == Some(order)
                && (i..i + n).all(|j| pa.state(j) == PageState::Allocated);
            if !whole {
                push(
                    bad,
                    format!(
                        "ledger: the order-{order} allocation at pfn {pfn:#x} is not an allocated block \
                         (pfn {pfn:#x} is {:?}, head order {:?})",
                        pa.state(i),
                        pa.allocated_order(i)
                    ),
                );
                continue;
            }
            owned.push(Some((i, i + n)));
        }
        let owned = Spans::new(owned.into_iter());
        let mut owned = owned.cursor();
        let (mut lost, mut first) = (0u64, None);
        let mut j = 0;
        while j < pa.len() {
            let (f, _, end) = pa.run_at(j, pa.len());
            if f.state() == PageState::Allocated {
                for k in j..end {
                    if !owned.at(k).0 {
                        lost += 1;
                        first.get_or_insert(k);
                    }
                }
            }
            j = end;
        }
        if let Some(first) = first {
            push(
                bad,
                format!(
                    "ledger: {lost} ALLOCATED page(s) belong to no live allocation a caller received (lost \
                     pages; the first is pfn {:#x})",
                    pa.pfn(first)
                ),
            );
        }
    }
}

/// Sorted, merged dense-index spans `[start, end)`: which pages a sweep expects to be memory, deferred
/// or owned, without a per-page array.
struct Spans(Vec<(usize, usize)>);

impl Spans {
    /// The spans given (None: a range without a struct page, skipped), sorted and merged.
    fn new(spans: impl Iterator<Item = Option<(usize, usize)>>) -> Spans {
        let mut v: Vec<(usize, usize)> = spans.flatten().filter(|s| s.0 < s.1).collect();
        v.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(v.len());
        for (s, e) in v {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        Spans(merged)
    }

    fn cursor(&self) -> SpanCursor<'_> {
        SpanCursor { spans: &self.0, k: 0 }
    }
}

/// A forward sweep over `Spans`: queries must not go backwards.
struct SpanCursor<'a> {
    spans: &'a [(usize, usize)],
    k: usize,
}

impl SpanCursor<'_> {
    /// Whether index `i` is inside a span, and the next index where that answer may change.
    fn at(&mut self, i: usize) -> (bool, usize) {
        while self.spans.get(self.k).is_some_and(|s| s.1 <= i) {
            self.k += 1;
        }
        match self.spans.get(self.k) {
            Some(&(s, e)) if s <= i => (true, e),
            Some(&(s, _)) => (false, s),
            None => (false, usize::MAX),
        }
    }
}

/// Keep reports readable: at most 50 messages.
fn push(bad: &mut Vec<String>, msg: String) {
    if bad.len() < 50 {
        bad.push(msg);
    }
}

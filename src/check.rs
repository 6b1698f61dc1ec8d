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
        // Expected class of every memory pfn; holes are everything else in the memmap.
        // I1 / I2: init counts and which pages may be UNINIT.
        let mut is_memory = vec![false; pa.len()];
        for r in &self.layout.memory {
            let i = pa.idx(r.start).unwrap();
            is_memory[i..i + r.len() as usize]
                .iter_mut()
                .for_each(|m| *m = true);
        }
        let mut deferrable = vec![false; pa.len()];
        for r in &self.layout.free {
            let ni = self.node_index(r.nid).unwrap();
            if let Some(f) = self.nodes[ni].fdp.load() {
                let s = r.start.max(f);
                if s < r.end {
                    let i = pa.idx(s).unwrap();
                    deferrable[i..i + (r.end - s) as usize]
                        .iter_mut()
                        .for_each(|d| *d = true);
                }
            }
        }
        let booted = self.phase() >= Phase::Booted;
        let mut uninit_count = 0u64;
        self.stop.set_stage(crate::stop::RunStage::Check);
        for i in 0..pa.len() {
            if i % CHECK_CHUNK == 0 && i > 0 {
                self.stop.add_checked(CHECK_CHUNK as u64);
                if self.stopping() {
                    bad.push(format!("check() interrupted at pfn {:#x}", pa.pfn(i)));
                    break;
                }
            }
            let f = pa.flags(i);
            let (state, n) = (f.state(), f.init_count());
            if n > 1 {
                push(
                    &mut bad,
                    format!("I1: pfn {:#x} initialised {n} times", pa.pfn(i)),
                );
            }
            if (state == PageState::Uninit) != (n == 0) {
                push(
                    &mut bad,
                    format!("I1: pfn {:#x} is {state:?} with init count {n}", pa.pfn(i)),
                );
            }
            if booted && state == PageState::Uninit && !deferrable[i] {
                push(
                    &mut bad,
                    format!("I2: pfn {:#x} is uninitialised but not deferred", pa.pfn(i)),
                );
            }
            if booted && deferrable[i] && state != PageState::Uninit {
                push(
                    &mut bad,
                    format!(
                        "I2: pfn {:#x} at/above first_deferred_pfn is {state:?}",
                        pa.pfn(i)
                    ),
                );
            }
            if state == PageState::Uninit {
                uninit_count += 1;
            }
            if booted && !is_memory[i] && state != PageState::Reserved {
                push(
                    &mut bad,
                    format!("hole pfn {:#x} is {state:?}, not reserved", pa.pfn(i)),
                );
            }
            if state == PageState::Free && pa.pageblock_mt(i) == MT_UNSET {
                push(
                    &mut bad,
                    format!(
                        "B-I3: free pfn {:#x} in a pageblock without a migratetype",
                        pa.pfn(i)
                    ),
                );
            }
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
                if pa.head_order(h) != Some(order) {
                    push(
                        bad,
                        format!(
                            "B-I1: {name} list {order} holds pfn {pfn:#x} whose head order is {:?}",
                            pa.head_order(h)
                        ),
                    );
                }
                for j in h..h + (1 << order) {
                    let f = pa.flags(j);
                    if f.state() != PageState::Free
                        || f.zone() != zs.span.zt
                        || u32::from(pa.node_of(j)) != node.span.nid
                    {
                        push(bad, format!("B-I1: {name} order-{order} block {pfn:#x} holds pfn {:#x} that is {:?} in zone {} node {}", pa.pfn(j), f.state(), f.zone().name(), pa.node_of(j)));
                        break;
                    }
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
            for j in i..i + (e - s) as usize {
                match pa.state(j) {
                    PageState::Free => free += 1,
                    PageState::Allocated => alloc += 1,
                    PageState::Reserved => reserved += 1,
                    PageState::Uninit => uninit += 1,
                    PageState::Init => {}
                }
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
                    pa.head_order(b) == Some(k)
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
        let mut owned = vec![false; pa.len()];
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
                && pa.head_order(i) == Some(order)
                && (i..i + n).all(|j| pa.state(j) == PageState::Allocated);
            if !whole {
                push(
                    bad,
                    format!(
                        "ledger: the order-{order} allocation at pfn {pfn:#x} is not an allocated block \
                         (pfn {pfn:#x} is {:?}, head order {:?})",
                        pa.state(i),
                        pa.head_order(i)
                    ),
                );
                continue;
            }
            owned[i..i + n].iter_mut().for_each(|o| *o = true);
        }
        let mut lost = (0..pa.len()).filter(|&j| pa.state(j) == PageState::Allocated && !owned[j]);
        if let Some(first) = lost.next() {
            push(
                bad,
                format!(
                    "ledger: {} ALLOCATED page(s) belong to no live allocation a caller received (lost \
                     pages; the first is pfn {:#x})",
                    1 + lost.count(),
                    pa.pfn(first)
                ),
            );
        }
    }
}

/// Keep reports readable: at most 50 messages.
fn push(bad: &mut Vec<String>, msg: String) {
    if bad.len() < 50 {
        bad.push(msg);
    }
}

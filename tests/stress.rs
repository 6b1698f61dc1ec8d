//! Stress with real threads: thousands of runs over generated small topologies, 8 allocator threads
//! racing page_alloc_init_late (one thread per node), `check()` after each run: conservation and
//! exactly-once initialisation whatever the schedule. PGDEFER_STRESS_RUNS overrides the run count.

use pgdefer::workload::{Rng, Stream};
use pgdefer::{Geometry, Machine, MachineConfig, PageState, Policy, Region, ZoneLimits, ZoneType};

const PAGE: u64 = 4096;

/// A random machine: 1-3 nodes (ids not from 0, sometimes descending or interleaved), 64-page
/// sections, holes, unaligned edges, reserved ranges, zones DMA/DMA32/Normal.
fn topology(rng: &mut Rng) -> (Vec<Region>, Vec<Region>, ZoneLimits, Geometry) {
    let g = Geometry::new(PAGE, 64 * PAGE, 3, 4 + rng.below(3) as u32).unwrap();
    let section = 64 * PAGE;
    let block = PAGE << g.max_order;
    let nodes: Vec<u32> = match rng.below(4) {
        0 => vec![0],
        1 => vec![0, 1],
        2 => vec![3, 1],       // descending: node 3 below node 1
        _ => vec![0, 2, 0, 2], // interleaved
    };
    let mut memory = Vec::new();
    let mut cur = rng.below(3) * section;
    for &nid in &nodes {
        let start = cur
            + if rng.below(3) == 0 {
                rng.below(4) * block
            } else {
                0
            };
        let len = (2 + rng.below(10)) * section + rng.below(8) * block;
        // an unaligned end sometimes (PFN_DOWN drops the partial page)
        let end = start + len - if rng.below(4) == 0 { 100 } else { 0 };
        memory.push(Region { start, end, nid });
        cur = end.next_multiple_of(block) + rng.below(3) * section;
    }
    let top = cur;
    let mut reserved = Vec::new();
    for _ in 0..rng.below(4) {
        let s = rng.below(top / PAGE) * PAGE + rng.below(2) * 17;
        reserved.push(Region {
            start: s,
            end: s + (1 + rng.below(40)) * PAGE,
            nid: 0,
        });
    }
    let dma = (rng.below(4) * section).next_multiple_of(block);
    let dma32 = dma + (rng.below(8) * section).next_multiple_of(block);
    (
        memory,
        reserved,
        ZoneLimits {
            dma: Some(dma),
            dma32: Some(dma32),
            normal: None,
        },
        g,
    )
}

#[test]
fn threads_racing_late_init_keep_every_invariant() {
    let runs: u64 = std::env::var("PGDEFER_STRESS_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let mut rng = Rng::new(0x5eed_1234);
    for run in 0..runs {
        let (memory, reserved, limits, g) = topology(&mut rng);
        let policy = [Policy::V4_17, Policy::PostingV2][run as usize % 2];
        let mut cfg = MachineConfig::new(g, memory.clone(), reserved.clone(), limits, policy);
        cfg.cpus = 9; // CPU 0 runs page_alloc_init_late; the 8 allocators use 1..=8
        let m = Machine::new(cfg).unwrap();
        m.boot().unwrap();
        let nids: Vec<u32> = m.nodes.iter().map(|n| n.span.nid).collect();
        let streams: Vec<Stream> = (1..=8)
            .map(|cpu| Stream {
                cpu,
                count: 60,
                orders: vec![0, 0, 1, 2, g.max_order],
                node: Some(nids[cpu as usize % nids.len()]),
                zone: if cpu == 8 {
                    Some(ZoneType::Dma32)
                } else {
                    None
                },
                free_percent: 40,
            })
            .collect();
        let r = m.run_workload(&streams, run, Some(rng.below(300))).unwrap();
        assert_eq!(r.late_init, Some(Ok(())), "run {run}");
        let problems = m.check();
        assert!(
            problems.is_empty(),
            "run {run} ({policy:?}, {memory:x?}, reserved {reserved:x?}): {problems:?}"
        );
        for i in 0..m.pages.len() {
            let f = m.pages.flags(i);
            assert!(
                f.state() != PageState::Uninit && f.init_count() == 1,
                "run {run}: pfn {:#x}",
                m.pages.pfn(i)
            );
        }
    }
}

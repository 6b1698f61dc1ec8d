//! Deferred per-node pass: host ns per page for init + free into the buddy allocator, one node of
//! 64 GiB, single thread, beside a reference loop that writes the same page-array bytes (a plain
//! fill) in the same run, for the 4.17 two-pass walk (init everything, then free) and the 5.2+
//! `deferred_init_maxorder` walk (init then free per MAX_ORDER block), policies interleaved run by
//! run. Also one grow of an x86_64 section. Medians of several runs.
//!
//! Run: `cargo bench --bench deferred_pass` (PGDEFER_BENCH_GIB to change the node size).

use std::time::Instant;

use pgdefer::{Geometry, Hook, Machine, MachineConfig, Policy, Region, ZoneLimits, ZoneType};

const GIB: u64 = 1 << 30;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn machine(gib: u64, policy: Policy) -> Machine {
    // One node: low memory as on a PC, the rest above 4 GiB; the Normal zone is what gets deferred.
    let memory = vec![
        Region {
            start: 0x1000,
            end: 0x9f000,
            nid: 0,
        },
        Region {
            start: 0x100000,
            end: 3 * GIB,
            nid: 0,
        },
        Region {
            start: 4 * GIB,
            end: (gib + 1) * GIB,
            nid: 0,
        },
    ];
    let m = Machine::new(MachineConfig::new(
        Geometry::default(),
        memory,
        vec![Region {
            start: 16 << 20,
            end: 48 << 20,
            nid: 0,
        }],
        ZoneLimits::default(),
        policy,
    ))
    .unwrap();
    // Timed steps should measure the model, not the host mapping memory on first touch.
    m.pages.prefault();
    m.boot().unwrap();
    m
}

fn main() {
    let gib: u64 = std::env::var("PGDEFER_BENCH_GIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let runs = 5;
    let policies = [Policy::V4_17, Policy::V5_2];
    let (mut pass, mut fill, mut grow) = (vec![vec![]; 2], vec![], vec![vec![]; 2]);
    let mut pages = 0;
    for _ in 0..runs {
        for (k, &policy) in policies.iter().enumerate() {
            let m = machine(gib, policy);
            if k == 0 {
                // Reference: write the same bytes the pass writes per page (flags, node) with a plain
                // fill. Both are filled once first so that, like the memmap, they are mapped.
                let mut flags = vec![0u8; m.pages.len()];
                let mut node = vec![0u16; m.pages.len()];
                flags.fill(1);
                node.fill(2);
                std::hint::black_box((&flags, &node));
                let t = Instant::now();
                flags.fill(0x53);
                node.fill(1);
                std::hint::black_box((&flags, &node));
                fill.push(t.elapsed().as_secs_f64() * 1e9 / m.pages.len() as f64);
            }
            let ni = 0;
            let zi = m.zone_index(ni, ZoneType::Normal).unwrap();
            let t = Instant::now();
            assert!(m.deferred_grow_zone(ni, zi, 0, Hook::Explicit, 0).unwrap());
            grow[k].push(t.elapsed().as_secs_f64() * 1e6);

            let t = Instant::now();
            pages = m.deferred_init_memmap(0, 0).unwrap();
            pass[k].push(t.elapsed().as_secs_f64() * 1e9 / pages as f64);
            assert!(m.check().is_empty());
        }
    }
    let f = median(fill);
    println!(
        "deferred per-node pass, {gib} GiB node, ~{pages} pages, single thread, median of {runs}:"
    );
    println!("  reference plain fill          : {f:6.2} ns/page (flags + node bytes of every page)");
    for (k, p) in policies.iter().enumerate() {
        let ns = median(pass[k].clone());
        println!(
            "  {:<6} init + free into buddy : {ns:6.2} ns/page  ({:.1}x fill)",
            p.name(),
            ns / f
        );
    }
    let (a, b) = (median(pass[0].clone()), median(pass[1].clone()));
    println!("  v5.2 / v4.17                  : {:6.2}", b / a);
    for (k, p) in policies.iter().enumerate() {
        println!(
            "one grow ({}, init + free): median {:.0} us",
            p.name(),
            median(grow[k].clone())
        );
    }
}

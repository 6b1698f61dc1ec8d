//! Setup shared by the criterion benches: the benchmark machine, the plain-fill reference and the
//! environment knobs. Each bench file includes it with `mod common;`.

#![allow(dead_code)] // each bench uses part of it

use std::time::{Duration, Instant};

use pgdefer::{Geometry, Machine, MachineConfig, Policy, Region, ZoneLimits};

pub const GIB: u64 = 1 << 30;

/// `PGDEFER_BENCH_<name>` as a number, else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(format!("PGDEFER_BENCH_{name}"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One node of `gib` GiB laid out as on a PC (low memory, a 3-4 GiB hole, the rest above 4 GiB, so the
/// Normal zone is what gets deferred), 32 MiB reserved at 16 MiB. `node_cpus` sets padata's
/// max_threads (5.8+), `host_threads` the host threads the pass may use. Prefaulted, then booted.
pub fn machine(gib: u64, policy: Policy, node_cpus: u32, host_threads: u32) -> Machine {
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
    let mut cfg = MachineConfig::new(
        Geometry::default(),
        memory,
        vec![Region {
            start: 16 << 20,
            end: 48 << 20,
            nid: 0,
        }],
        ZoneLimits::default(),
        policy,
    );
    cfg.node_cpus = vec![(0, node_cpus)];
    cfg.host_threads = Some(host_threads);
    let m = Machine::new(cfg).unwrap();
    // Timed steps should measure the model, not the host mapping memory on first touch (the
    // kernel's memmap is mapped before it is used).
    m.pages.prefault();
    m.boot().unwrap();
    m
}

/// The reference measured beside the model: write the bytes the pass writes per page (flags, node)
/// with a plain fill, over `pages` pages already mapped. Returns the time of the fill alone.
pub fn plain_fill(pages: usize) -> Duration {
    let mut flags = vec![1u8; pages];
    let mut node = vec![2u16; pages];
    std::hint::black_box((&flags, &node));
    let t = Instant::now();
    flags.fill(0x53);
    node.fill(1);
    std::hint::black_box((&flags, &node));
    t.elapsed()
}

/// Struct pages the per-node pass initialises on `machine(gib, policy, ..)`: the size of the fill that
/// is its reference (measured once, untimed).
pub fn deferred_pages(gib: u64, policy: Policy) -> usize {
    machine(gib, policy, 1, 1)
        .deferred_init_memmap(0, 0)
        .unwrap() as usize
}

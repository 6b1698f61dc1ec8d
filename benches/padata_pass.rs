//! One node's padata pass (v5.8, 8 CPUs on the node, so 8 simulated workers) with 1 and 2 host
//! threads, host time of `page_alloc_init_late`, medians of several interleaved runs. The reference
//! measured in the same run is the 1-host-thread pass itself (same chunks, same simulated workers);
//! the v5.7 single-threaded pass and a plain fill of the page-array bytes are printed beside it.
//!
//! The CPU time of the pass (all threads) is printed too: unlike the wall time it barely depends on
//! other load, and equal CPU time for 1 and 2 host threads means the split adds no work.
//!
//! Run: `cargo bench --bench padata_pass` (PGDEFER_BENCH_GIB node size, default 32; PGDEFER_BENCH_RUNS,
//! default 7). Run it on a quiet host: the 2-thread figure needs both CPUs.

use std::time::Instant;

use pgdefer::{Geometry, Machine, MachineConfig, Policy, Region, ZoneLimits};

const GIB: u64 = 1 << 30;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn machine(gib: u64, policy: Policy, host_threads: u32) -> Machine {
    let memory = vec![
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
    cfg.node_cpus = vec![(0, env("PGDEFER_BENCH_CPUS", 8) as u32)];
    cfg.host_threads = Some(host_threads);
    let m = Machine::new(cfg).unwrap();
    // Measure the model, not the host mapping memory on first touch.
    m.pages.prefault();
    m.boot().unwrap();
    m
}

/// CPU seconds (user + system) of this process so far, every thread.
fn cpu_s() -> f64 {
    // SAFETY: rusage is a plain C struct of integers, valid all-zero.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Host wall seconds and CPU seconds of page_alloc_init_late (one node: its pass runs on the calling
/// thread, its padata helpers on up to `host_threads - 1` more), and the pages it initialised.
fn pass(gib: u64, policy: Policy, host_threads: u32) -> (f64, f64, u64) {
    let m = machine(gib, policy, host_threads);
    let (t, c) = (Instant::now(), cpu_s());
    m.page_alloc_init_late(true).unwrap();
    let (s, cpu) = (t.elapsed().as_secs_f64(), cpu_s() - c);
    let pages = m
        .stats
        .deferred_pass_pages
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(m.check().is_empty());
    (s, cpu, pages)
}

fn main() {
    let gib = env("PGDEFER_BENCH_GIB", 32);
    let runs = env("PGDEFER_BENCH_RUNS", 7) as usize;
    let (mut one, mut two, mut serial, mut fill) = (vec![], vec![], vec![], vec![]);
    let (mut cpu1, mut cpu2) = (vec![], vec![]);
    let mut pages = 0;
    for _ in 0..runs {
        // Interleaved, so that a change in host load affects every figure alike.
        let (s0, _, _) = pass(gib, Policy::V5_7, 1);
        let (s1, c1, p) = pass(gib, Policy::V5_8, 1);
        let (s2, c2, _) = pass(gib, Policy::V5_8, 2);
        cpu1.push(c1);
        cpu2.push(c2);
        pages = p;
        one.push(s1);
        two.push(s2);
        serial.push(s0);
        let mut flags = vec![1u8; p as usize];
        let mut node = vec![2u16; p as usize];
        std::hint::black_box((&flags, &node));
        let t = Instant::now();
        flags.fill(0x53);
        node.fill(1);
        std::hint::black_box((&flags, &node));
        fill.push(t.elapsed().as_secs_f64());
    }
    let (o, t, s, f) = (median(one), median(two), median(serial), median(fill));
    let ns = |x: f64| x * 1e9 / pages as f64;
    println!(
        "padata pass, one {gib} GiB node, {pages} deferred pages, 8 simulated workers, median of {runs}:"
    );
    println!(
        "  v5.8, 1 host thread   : {:8.1} ms  {:5.2} ns/page  (reference)",
        o * 1e3,
        ns(o)
    );
    println!(
        "  v5.8, 2 host threads  : {:8.1} ms  {:5.2} ns/page  speed-up {:.2}x",
        t * 1e3,
        ns(t),
        o / t
    );
    println!(
        "  CPU time of the pass  : {:8.1} ms with 1 host thread, {:.1} ms with 2 (all threads)",
        median(cpu1) * 1e3,
        median(cpu2) * 1e3
    );
    println!(
        "  v5.7 (no padata)      : {:8.1} ms  {:5.2} ns/page",
        s * 1e3,
        ns(s)
    );
    println!(
        "  plain fill of 3 bytes : {:8.1} ms  {:5.2} ns/page",
        f * 1e3,
        ns(f)
    );
}

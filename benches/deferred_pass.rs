//! Criterion benches of the core's hot paths on one booted node (benches/common): the per-node pass
//! (init + free into the buddy allocator: the 4.17 two-pass walk and the 5.2+ `deferred_init_maxorder`
//! walk), one `deferred_grow_zone` of a section, an order-0 and an order-9 allocation and free, and
//! `check()` of every struct page, each group beside a reference measured in the same run: a plain fill
//! of the bytes the pass writes per page (over the pages the pass initialises, a section, or the whole
//! memmap), and for the allocations an uncontended lock and unlock.
//!
//! Run: `cargo bench --bench deferred_pass` (PGDEFER_BENCH_GIB: node size, default 8). Figures of the
//! latest run: docs/benchmarks.md.

mod common;

use std::time::{Duration, Instant};

use common::{deferred_pages, env, machine, plain_fill};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use pgdefer::deferred::GrowCall;
use pgdefer::{Hook, Policy, ZoneType};

/// One bench `name/<policy>` per policy: `run(policy, iters)` returns the time of `iters` timed steps
/// (any set-up it does outside them is not counted).
fn per_policy(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    policies: [Policy; 2],
    run: impl Fn(Policy, u64) -> Duration,
) {
    for policy in policies {
        g.bench_with_input(BenchmarkId::new(name, policy.name()), &policy, |b, &p| {
            b.iter_custom(|iters| run(p, iters))
        });
    }
}

/// The host time of `f` (its result kept from being optimised away).
fn timed<T>(f: impl FnOnce() -> T) -> Duration {
    let t = Instant::now();
    std::hint::black_box(f());
    t.elapsed()
}

fn pass(c: &mut Criterion) {
    let gib = env("GIB", 8);
    let pages = deferred_pages(gib, Policy::V4_17) as u64;
    let mut g = c.benchmark_group(format!("pass_{gib}gib"));
    g.sample_size(10).throughput(Throughput::Elements(pages));
    g.bench_function("reference_plain_fill", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| plain_fill(pages as usize)).sum())
    });
    // a fresh booted machine per pass, built outside the timed region
    per_policy(
        &mut g,
        "deferred_init_memmap",
        [Policy::V4_17, Policy::V5_2],
        |p, iters| {
            (0..iters)
                .map(|_| {
                    let m = machine(gib, p, 1, 1);
                    timed(|| m.deferred_init_memmap(0, 0).unwrap())
                })
                .sum()
        },
    );
    g.finish();
}

fn grow(c: &mut Criterion) {
    let gib = env("GIB", 8);
    let mut g = c.benchmark_group(format!("grow_{gib}gib"));
    g.sample_size(20);
    let g0 = pgdefer::Geometry::default();
    let section = 1usize << (g0.section_shift - g0.page_shift); // PAGES_PER_SECTION
    g.bench_function("reference_plain_fill_of_a_section", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| plain_fill(section)).sum())
    });
    // each grow consumes a section: a new machine (untimed) once the node has none left
    per_policy(
        &mut g,
        "deferred_grow_zone_section",
        [Policy::V4_17, Policy::V5_8],
        |p, iters| {
            let mut total = Duration::ZERO;
            let mut m = machine(gib, p, 1, 1);
            let zi = m.zone_index(0, ZoneType::Normal).unwrap();
            for _ in 0..iters {
                let call = GrowCall {
                    ni: 0,
                    zi,
                    order: 0,
                    hook: Hook::Explicit,
                    cpu: 0,
                };
                let t = Instant::now();
                let grew = m.deferred_grow_zone(call).unwrap();
                total += t.elapsed();
                if !grew || m.first_deferred_pfn(0).unwrap().is_none() {
                    m = machine(gib, p, 1, 1);
                }
            }
            total
        },
    );
    g.finish();
}

fn alloc(c: &mut Criterion) {
    let m = machine(env("GIB", 8), Policy::V4_17, 1, 1);
    let mut g = c.benchmark_group("alloc");
    // reference: the floor of any locked operation, an uncontended lock and unlock
    let lock = parking_lot::Mutex::new(0u64);
    g.bench_function("reference_mutex_lock_unlock", |b| {
        b.iter(|| *std::hint::black_box(&lock).lock() += 1)
    });
    g.bench_function("alloc_free_order0_window_open", |b| {
        b.iter(|| {
            let pfn = m.alloc_pages(0, None, None, 0).unwrap();
            m.free_pages(std::hint::black_box(pfn), 0, 0).unwrap();
        })
    });
    g.bench_function("alloc_free_order9_window_open", |b| {
        b.iter(|| {
            let pfn = m.alloc_pages(9, None, None, 0).unwrap();
            m.free_pages(std::hint::black_box(pfn), 9, 0).unwrap();
        })
    });
    g.finish();
}

fn check(c: &mut Criterion) {
    let gib = env("GIB", 8);
    let m = machine(gib, Policy::V4_17, 1, 1);
    m.page_alloc_init_late(false).unwrap();
    let pages = m.pages.len() as u64;
    let mut g = c.benchmark_group(format!("check_{gib}gib"));
    g.sample_size(10).throughput(Throughput::Elements(pages));
    g.bench_function("reference_plain_fill", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| plain_fill(pages as usize)).sum())
    });
    g.bench_function("check_after_late_init", |b| {
        b.iter(|| assert!(std::hint::black_box(m.check()).is_empty()))
    });
    g.finish();
}

criterion_group!(benches, pass, grow, alloc, check);
criterion_main!(benches);

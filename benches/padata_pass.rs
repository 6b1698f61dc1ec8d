//! Criterion bench of one node's padata pass (v5.8, 8 CPUs on the node, so 8 simulated workers) with 1
//! and 2 host threads, host time of `page_alloc_init_late`; beside it, measured in the same run, the v5.7
//! single-threaded pass (no padata) and a plain fill of the bytes the pass writes (benches/common).
//!
//! Run: `cargo bench --bench padata_pass` (PGDEFER_BENCH_GIB: node size, default 8; PGDEFER_BENCH_CPUS:
//! the node's CPUs, default 8). The 2-thread figure needs two idle host CPUs. Figures: docs/benchmarks.md.

mod common;

use std::time::{Duration, Instant};

use common::{deferred_pages, env, machine, plain_fill};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pgdefer::Policy;

fn padata(c: &mut Criterion) {
    let gib = env("GIB", 8);
    let cpus = env("CPUS", 8) as u32;
    let pages = deferred_pages(gib, Policy::V5_8) as u64;
    let mut g = c.benchmark_group(format!("padata_pass_{gib}gib"));
    g.sample_size(10).throughput(Throughput::Elements(pages));
    g.bench_function("reference_plain_fill", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| plain_fill(pages as usize)).sum())
    });
    for (policy, threads) in [(Policy::V5_7, 1), (Policy::V5_8, 1), (Policy::V5_8, 2)] {
        let id = BenchmarkId::new(
            format!("page_alloc_init_late_{}", policy.name()),
            format!("{threads}_host_threads"),
        );
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let m = machine(gib, policy, cpus, threads);
                    let t = Instant::now();
                    m.page_alloc_init_late(true).unwrap();
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, padata);
criterion_main!(benches);

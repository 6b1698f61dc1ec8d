//! A Rust-side driver of early-boot allocation storms: one real thread per simulated CPU, each with a
//! seeded stream of allocations (and some frees), optionally racing `page_alloc_init_late`.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::sync::{AtomicU64, Ordering};
use crate::topology::ZoneType;

/// One CPU's allocation stream.
#[derive(Debug, Clone)]
pub struct Stream {
    pub cpu: u32,
    /// Number of allocation attempts.
    pub count: u64,
    /// Orders drawn uniformly for each allocation.
    pub orders: Vec<u32>,
    pub node: Option<u32>,
    pub zone: Option<ZoneType>,
    /// Percent chance, after each allocation, of freeing a random block this stream holds.
    pub free_percent: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamResult {
    pub cpu: u32,
    pub allocs: u64,
    pub failures: u64,
    pub frees: u64,
    /// Blocks still held at the end: (pfn, order).
    pub held: Vec<(u64, u32)>,
    /// Why the stream stopped early, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct WorkloadResult {
    pub streams: Vec<StreamResult>,
    pub host_ns: u64,
    /// Whether page_alloc_init_late ran during the workload, and its outcome.
    pub late_init: Option<std::result::Result<(), String>>,
}

/// splitmix64: a tiny, good, seedable generator (no dependency for a benchmark driver).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

impl Machine {
    /// Run every stream on its own thread; with `late_init_after = Some(n)`, another thread calls
    /// `page_alloc_init_late` once `n` allocations have been attempted in total.
    pub fn run_workload(
        &self,
        streams: &[Stream],
        seed: u64,
        late_init_after: Option<u64>,
    ) -> Result<WorkloadResult> {
        self.require_allocator("run_workload()")?;
        let mut cpus: Vec<u32> = streams.iter().map(|s| s.cpu).collect();
        for s in streams {
            self.check_cpu(s.cpu)?;
            if s.cpu >= self.nr_cpus {
                return Err(Error::InvalidArgument(format!(
                    "cpu {} is a pgdatinit CPU, not a workload CPU",
                    s.cpu
                )));
            }
            if s.orders.is_empty() {
                return Err(Error::Order(format!(
                    "stream on cpu {} has no orders",
                    s.cpu
                )));
            }
            for &o in &s.orders {
                self.check_order(o)?;
            }
            if let Some(n) = s.node {
                self.node_index(n)?;
            }
        }
        if late_init_after.is_some() && cpus.contains(&crate::deferred::BOOT_CPU) {
            return Err(Error::InvalidArgument(
                "a stream on CPU 0 cannot race page_alloc_init_late, which runs on the boot CPU (CPU 0)".into(),
            ));
        }
        cpus.sort_unstable();
        if cpus.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::InvalidArgument(
                "two streams on one CPU: a CPU runs one stream".into(),
            ));
        }
        let attempted = AtomicU64::new(0);
        let t = Instant::now();
        let joining = self.waits.joining(); // this thread waits for the streams and the late init
        let (results, late) = std::thread::scope(|sc| {
            let late = late_init_after.map(|n| {
                let attempted = &attempted;
                let parent = joining.parent();
                sc.spawn(move || {
                    let _child = crate::waits::Child::enter(&parent);
                    while attempted.load(Ordering::Relaxed) < n {
                        std::thread::yield_now();
                    }
                    self.page_alloc_init_late(true).map_err(|e| e.to_string())
                })
            });
            let handles: Vec<_> = streams
                .iter()
                .map(|s| {
                    let attempted = &attempted;
                    let parent = joining.parent();
                    sc.spawn(move || {
                        let _child = crate::waits::Child::enter(&parent);
                        self.run_stream(s, seed, attempted)
                    })
                })
                .collect();
            let results: Vec<StreamResult> = handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| StreamResult {
                        error: Some("stream thread panicked".into()),
                        ..Default::default()
                    })
                })
                .collect();
            // Make sure the racing late init is not left waiting for allocations that never come.
            attempted.store(u64::MAX, Ordering::Relaxed);
            let late = late.map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("late init thread panicked".into()))
            });
            (results, late)
        });
        Ok(WorkloadResult {
            streams: results,
            host_ns: t.elapsed().as_nanos() as u64,
            late_init: late,
        })
    }

    fn run_stream(&self, s: &Stream, seed: u64, attempted: &AtomicU64) -> StreamResult {
        let mut rng = Rng::new(seed ^ (u64::from(s.cpu) << 32 | 0x5eed));
        let mut r = StreamResult {
            cpu: s.cpu,
            ..Default::default()
        };
        for _ in 0..s.count {
            let order = s.orders[rng.below(s.orders.len() as u64) as usize];
            attempted.fetch_add(1, Ordering::Relaxed);
            match self.alloc_pages(order, s.node, s.zone, s.cpu) {
                Ok(pfn) => {
                    r.allocs += 1;
                    r.held.push((pfn, order));
                }
                Err(_) => r.failures += 1,
            }
            if !r.held.is_empty() && rng.below(100) < u64::from(s.free_percent) {
                let k = rng.below(r.held.len() as u64) as usize;
                let (pfn, order) = r.held.swap_remove(k);
                match self.free_pages(pfn, order, s.cpu) {
                    Ok(()) => r.frees += 1,
                    Err(e) => {
                        // Only a failed machine refuses a held block: stop this stream.
                        r.error = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        r
    }
}

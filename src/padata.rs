//! `padata_do_multithreaded` (kernel/padata.c, 5.8+, spec §5.9): split one job into chunks that
//! helper workers take, one at a time, under the job lock.
//!
//! The sequence of chunks does not depend on the schedule: every helper takes "the next chunk" from
//! the same (start, size) state, so chunk k is the same range whoever takes it. Only which worker
//! runs which chunk depends on the schedule. Two execution modes:
//!
//! - [`Mode::Deterministic`]: the chunks run in ascending order on the calling thread; chunk k
//!   (0-based, in that order) is attributed to simulated worker `k % nworks` (the workers take
//!   turns; worker 0 is the caller, as in the kernel, where the caller runs the helper loop too).
//! - [`Mode::Threaded`]: a bounded set of host threads (at most `min(nworks, cap)`, the caller being
//!   one of them; [`Mode::threaded`] caps at the host's CPUs) runs the helper loop concurrently.
//!   Simulated workers map many-to-one onto host threads: host thread t hosts workers t, t + h,
//!   t + 2h, ... (h host threads) and attributes the chunks it takes to them in turn. With one host
//!   thread this is exactly the deterministic attribution.
//!
//! Formulas (kernel/padata.c as of 6.x, which includes the two 2024 fixes; for deferred page init,
//! where `align == min_chunk`, they agree with the 5.8 form of the spec):
//!
//! ```text
//! nworks = min(max(size / max(min_chunk, align), 1), max_threads)
//! chunk  = round_up(max(size / (nworks * 4), min_chunk, 1), align)      # load_balance_factor 4
//! helper: n = min(round_up(s + 1, chunk) - s, remaining)                # chunk ends are multiples of chunk
//! ```
//!
//! `max(..., 1)` is Waiman Long's fix of the divide-by-zero when `min_chunk == 0` (B17); the
//! `max(min_chunk, align)` divisor is Anthony Yznaga's "honor the caller's alignment" fix. A job
//! with `align == 0` or `max_threads == 0` divides by zero in every kernel version and is refused.

use std::fmt;

use crate::sync::{AtomicUsize, Mutex, Ordering};

/// `load_balance_factor` of `padata_do_multithreaded`: four chunks per worker, in case threads
/// finish at different times.
pub const LOAD_BALANCE_FACTOR: u64 = 4;

/// `struct padata_mt_job` without the function: the range `[start, start + size)` in job units
/// (pfns for deferred init).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub start: u64,
    pub size: u64,
    pub align: u64,
    pub min_chunk: u64,
    pub max_threads: u32,
}

/// A job the kernel would divide by zero on (or whose end overflows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidJob(pub String);

impl fmt::Display for InvalidJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidJob {}

impl From<InvalidJob> for crate::error::Error {
    fn from(e: InvalidJob) -> Self {
        crate::error::Error::Topology(e.0)
    }
}

/// What `padata_do_multithreaded` decides before running anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Number of works (the caller plus helpers). 1 means the job runs inline as one call.
    pub nworks: u32,
    /// `ps.chunk_size`; for an inline job (nworks == 1) the whole job is one chunk of `size`.
    pub chunk: u64,
}

/// One call of the job's `thread_fn`: `[start, end)` run by simulated worker `worker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub start: u64,
    pub end: u64,
    pub worker: u32,
}

/// How the helpers run on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Chunks in ascending order on the calling thread; chunk k belongs to worker k % nworks.
    Deterministic,
    /// Real host threads, at most `min(nworks, max_host_threads)` (the caller's thread included).
    Threaded { max_host_threads: usize },
}

impl Mode {
    /// Threaded with as many host threads as the host has CPUs (never more than useful).
    pub fn threaded() -> Self {
        Mode::Threaded {
            max_host_threads: host_parallelism(),
        }
    }
}

/// `std::thread::available_parallelism`, 1 if unknown.
pub fn host_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn round_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

impl Job {
    fn validate(&self) -> Result<(), InvalidJob> {
        if self.align == 0 {
            return Err(InvalidJob(format!(
                "padata job at {:#x}: align must be at least 1 (round_up by 0 divides by zero)",
                self.start
            )));
        }
        if self.max_threads == 0 {
            return Err(InvalidJob(format!(
                "padata job at {:#x}: max_threads must be at least 1",
                self.start
            )));
        }
        // The last chunk end may be rounded up to a multiple of chunk; keep that in range too.
        if self
            .start
            .checked_add(self.size)
            .and_then(|e| e.checked_add(self.align.max(self.min_chunk)))
            .is_none()
        {
            return Err(InvalidJob(format!(
                "padata job [{:#x}, +{:#x}) overflows 64 bits",
                self.start, self.size
            )));
        }
        Ok(())
    }

    /// `nworks` and `chunk_size` as `padata_do_multithreaded` computes them (all helper work items
    /// are assumed to allocate, so `ps.nworks == nworks`). `None` for an empty job (nothing runs).
    pub fn plan(&self) -> Result<Option<Plan>, InvalidJob> {
        self.validate()?;
        if self.size == 0 {
            return Ok(None);
        }
        let per_work = self.min_chunk.max(self.align);
        let nworks = (self.size / per_work)
            .max(1)
            .min(u64::from(self.max_threads)) as u32;
        if nworks == 1 {
            return Ok(Some(Plan {
                nworks,
                chunk: self.size,
            }));
        }
        let chunk = (self.size / (u64::from(nworks) * LOAD_BALANCE_FACTOR))
            .max(self.min_chunk)
            .max(1);
        Ok(Some(Plan {
            nworks,
            chunk: round_up(chunk, self.align),
        }))
    }

    /// The chunks `[s, e)` in the order the helpers take them (schedule independent); an inline job
    /// is one call over the whole job.
    pub fn chunks(&self) -> Result<Vec<(u64, u64)>, InvalidJob> {
        let Some(plan) = self.plan()? else {
            return Ok(Vec::new());
        };
        if plan.nworks == 1 {
            return Ok(vec![(self.start, self.start + self.size)]);
        }
        let mut state = JobState {
            start: self.start,
            size: self.size,
        };
        Ok(std::iter::from_fn(|| state.take(plan.chunk)).collect())
    }
}

/// The part of the job the helpers share under `ps->lock`.
struct JobState {
    start: u64,
    size: u64,
}

impl JobState {
    /// One step of `padata_mt_helper`: the next chunk, ending on a multiple of `chunk` if enough
    /// work remains.
    fn take(&mut self, chunk: u64) -> Option<(u64, u64)> {
        if self.size == 0 {
            return None;
        }
        let s = self.start;
        let n = (round_up(s + 1, chunk) - s).min(self.size);
        self.start += n;
        self.size -= n;
        Some((s, s + n))
    }
}

/// `padata_do_multithreaded(job)`: run `thread_fn` over every chunk of the job, exactly once each,
/// and return the plan (`None` for an empty job). If a `thread_fn` call fails, no helper takes a
/// further chunk and the first error is returned (chunks already taken still finish). A panic in
/// `thread_fn` propagates to the caller once every helper has stopped.
pub fn padata_do_multithreaded<E>(
    job: &Job,
    mode: Mode,
    thread_fn: &(dyn Fn(Chunk) -> Result<(), E> + Sync),
) -> Result<Option<Plan>, E>
where
    E: From<InvalidJob> + Send,
{
    let Some(plan) = job.plan()? else {
        return Ok(None);
    };
    if plan.nworks == 1 {
        // "Single thread, no coordination needed, cut to the chase."
        thread_fn(Chunk {
            start: job.start,
            end: job.start + job.size,
            worker: 0,
        })?;
        return Ok(Some(plan));
    }
    let host = match mode {
        Mode::Deterministic => 1,
        Mode::Threaded { max_host_threads } => (plan.nworks as usize).min(max_host_threads).max(1),
    };
    let shared = Shared {
        state: Mutex::new(HelperState {
            job: JobState {
                start: job.start,
                size: job.size,
            },
            error: None,
        }),
        chunk: plan.chunk,
        nworks: plan.nworks,
        host: host as u32,
    };
    if host == 1 {
        shared.helper(0, thread_fn);
    } else {
        // Helpers serve the caller's operation (a point callback on one reports to it); the caller
        // works beside them rather than waiting, so no join edge.
        let parent = crate::waits::Parent::root_only();
        // The caller runs the helper loop too ("use the current thread"); the helpers run on the
        // host pool's parked threads (a thread spawned per job cost about a chunk's work).
        #[cfg(not(pgdefer_loom))]
        crate::hostpool::run(host as u32 - 1, &|t| {
            if t == 0 {
                shared.helper(0, thread_fn);
            } else {
                let _child = crate::waits::Child::enter(&parent);
                shared.helper(t, thread_fn);
            }
        });
        #[cfg(pgdefer_loom)]
        std::thread::scope(|s| {
            let shared = &shared;
            for t in 1..host as u32 {
                let parent = parent.clone();
                s.spawn(move || {
                    let _child = crate::waits::Child::enter(&parent);
                    shared.helper(t, thread_fn)
                });
            }
            shared.helper(0, thread_fn);
        });
    }
    let state = shared.state.into_inner().unwrap_or_else(|p| p.into_inner());
    match state.error {
        Some(e) => Err(e),
        None => Ok(Some(plan)),
    }
}

struct HelperState<E> {
    job: JobState,
    /// The first `thread_fn` failure; helpers stop taking chunks once it is set.
    error: Option<E>,
}

struct Shared<E> {
    state: Mutex<HelperState<E>>,
    chunk: u64,
    nworks: u32,
    host: u32,
}

impl<E> Shared<E> {
    /// `padata_mt_helper` on host thread `t`, which runs simulated workers t, t + host, ... in turn.
    fn helper(&self, t: u32, thread_fn: &(dyn Fn(Chunk) -> Result<(), E> + Sync)) {
        let hosted = (self.nworks - t).div_ceil(self.host); // workers t, t + host, ... < nworks
        let mut turn = 0;
        loop {
            let (s, e) = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.error.is_some() {
                    return;
                }
                match st.job.take(self.chunk) {
                    Some(c) => c,
                    None => return,
                }
            };
            let worker = t + (turn % hosted) * self.host;
            turn += 1;
            if let Err(err) = thread_fn(Chunk {
                start: s,
                end: e,
                worker,
            }) {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.error.get_or_insert(err);
                return;
            }
        }
    }
}

/// The padata side of a machine's per-node passes: `max_threads` of each node (its CPUs on x86, at
/// least 1), the simulated CPUs its helpers run on, and the budget of host threads all passes share
/// (so that concurrent nodes never start more host threads than the host has CPUs).
pub struct Workers {
    /// CPUs of node index ni (0: a CPU-less node).
    node_cpus: Vec<u32>,
    /// Simulated CPU of node index ni's helper worker 1; worker w >= 1 is `helper_base[ni] + w - 1`.
    helper_base: Vec<u32>,
    /// Host threads the passes may use at once (the pgdatinit threads included).
    host_threads: usize,
    /// Extra host threads still available to padata jobs.
    spare: AtomicUsize,
}

impl Workers {
    /// `node_cpus[ni]` CPUs per node index; helper CPUs are numbered from `first_helper_cpu`;
    /// `host_threads`: the host-thread cap (None: the host's CPUs, never more than is useful; a larger
    /// explicit cap oversubscribes the host, which stress tests use to get more interleavings).
    pub fn new(node_cpus: Vec<u32>, first_helper_cpu: u32, host_threads: Option<usize>) -> Workers {
        let mut helper_base = Vec::with_capacity(node_cpus.len());
        let mut next = first_helper_cpu;
        for &c in &node_cpus {
            helper_base.push(next);
            next += c.max(1) - 1;
        }
        let host_threads = host_threads.unwrap_or_else(host_parallelism).max(1);
        Workers {
            node_cpus,
            helper_base,
            host_threads,
            spare: AtomicUsize::new(host_threads - 1),
        }
    }

    /// CPUs of node index `ni` (0 for a CPU-less node).
    pub fn node_cpus(&self, ni: usize) -> u32 {
        self.node_cpus[ni]
    }

    /// `deferred_page_init_max_threads` on x86 (and generic from 6.11): the node's CPUs, at least 1.
    pub fn max_threads(&self, ni: usize) -> u32 {
        self.node_cpus[ni].max(1)
    }

    /// Helper CPU slots in all (simulated CPUs after the pgdatinit ones).
    pub fn helper_cpus(&self) -> u32 {
        self.node_cpus.iter().map(|c| c.max(&1) - 1).sum()
    }

    /// The simulated CPU of node index `ni`'s worker `w` (w >= 1; worker 0 is the pgdatinit CPU).
    pub fn helper_cpu(&self, ni: usize, w: u32) -> u32 {
        debug_assert!(w >= 1 && w < self.max_threads(ni));
        self.helper_base[ni] + w - 1
    }

    /// Host threads the passes may use at once.
    pub fn host_threads(&self) -> usize {
        self.host_threads
    }

    /// Reserve up to `want` extra host threads for one job (0 when the host is busy with other
    /// nodes' passes); give them back with `release`.
    pub fn reserve(&self, want: usize) -> usize {
        let mut cur = self.spare.load(Ordering::Relaxed);
        loop {
            let take = want.min(cur);
            if take == 0 {
                return 0;
            }
            match self.spare.compare_exchange_weak(
                cur,
                cur - take,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(c) => cur = c,
            }
        }
    }

    pub fn release(&self, n: usize) {
        self.spare.fetch_add(n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    use std::sync::Mutex as StdMutex;

    const PPS: u64 = 1 << 15; // PAGES_PER_SECTION, x86_64
    const PAGEBLOCK: u64 = 1 << 9;

    fn job(start: u64, size: u64, align: u64, min_chunk: u64, max_threads: u32) -> Job {
        Job {
            start,
            size,
            align,
            min_chunk,
            max_threads,
        }
    }

    /// Run a job in `mode`, collecting the chunks in the order they were run.
    fn run(j: &Job, mode: Mode) -> (Option<Plan>, Vec<Chunk>) {
        let seen = StdMutex::new(Vec::new());
        let plan = padata_do_multithreaded::<InvalidJob>(j, mode, &|c| {
            seen.lock().unwrap().push(c);
            Ok(())
        })
        .unwrap();
        (plan, seen.into_inner().unwrap())
    }

    /// Tiny deterministic generator (xorshift64*), so the property tests need no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Every property the issue asks for, for one job, checked against a run's chunks.
    fn check_job(j: &Job, plan: Option<Plan>, chunks: &[Chunk]) {
        // nworks follows the formula, computed here independently of Job::plan.
        if j.size == 0 {
            assert_eq!(plan, None);
            assert!(chunks.is_empty());
            return;
        }
        let plan = plan.expect("non-empty job has a plan");
        let divisor = j.min_chunk.max(j.align);
        let nworks = std::cmp::min(std::cmp::max(j.size / divisor, 1), j.max_threads as u64);
        assert_eq!(plan.nworks as u64, nworks, "{j:?}");
        if nworks > 1 {
            let raw = std::cmp::max(std::cmp::max(j.size / (nworks * 4), j.min_chunk), 1);
            let expect = raw.div_ceil(j.align) * j.align;
            assert_eq!(plan.chunk, expect, "{j:?}");
            assert_eq!(plan.chunk % j.align, 0);
            assert!(plan.chunk >= j.min_chunk.max(1));
        }
        // Chunks cover [start, start + size) exactly once.
        let mut sorted: Vec<Chunk> = chunks.to_vec();
        sorted.sort_by_key(|c| c.start);
        let mut at = j.start;
        for c in &sorted {
            assert_eq!(c.start, at, "gap or overlap at {at:#x} in {j:?}");
            assert!(c.end > c.start, "empty chunk in {j:?}");
            at = c.end;
            assert!(c.worker < plan.nworks, "worker {} >= nworks", c.worker);
        }
        assert_eq!(at, j.start + j.size, "{j:?}");
        // Chunk ends are multiples of the chunk size, except the job's end; inline jobs are one call.
        if plan.nworks == 1 {
            assert_eq!(sorted.len(), 1);
        } else {
            for c in &sorted {
                assert!(
                    c.end % plan.chunk == 0 || c.end == j.start + j.size,
                    "chunk end {:#x} not a multiple of {:#x} in {j:?}",
                    c.end,
                    plan.chunk
                );
                assert!(c.end - c.start <= plan.chunk);
            }
        }
    }

    #[test]
    fn exhaustive_small_jobs_both_modes() {
        for start in 0..20 {
            for size in 0..70 {
                for align in 1..6 {
                    for min_chunk in 0..8 {
                        for max_threads in 1..6 {
                            let j = job(start, size, align, min_chunk, max_threads);
                            let (plan, chunks) = run(&j, Mode::Deterministic);
                            check_job(&j, plan, &chunks);
                            // The deterministic mode runs in ascending order, worker k % nworks.
                            for (k, c) in chunks.iter().enumerate() {
                                assert_eq!(c.worker, k as u32 % plan.unwrap().nworks);
                                if k > 0 {
                                    assert_eq!(chunks[k - 1].end, c.start);
                                }
                            }
                            assert_eq!(
                                chunks.iter().map(|c| (c.start, c.end)).collect::<Vec<_>>(),
                                j.chunks().unwrap()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn random_large_jobs_threaded() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..300 {
            let align = [1, 3, PAGEBLOCK, PPS][rng.below(4) as usize];
            let min_chunk = [0, 1, align, 7 * align, PPS][rng.below(5) as usize];
            let j = job(
                rng.below(1 << 40),
                rng.below(1 << 24),
                align,
                min_chunk,
                1 + rng.below(300) as u32,
            );
            let (plan, chunks) = run(
                &j,
                Mode::Threaded {
                    max_host_threads: 4,
                },
            );
            check_job(&j, plan, &chunks);
            let mut got: Vec<_> = chunks.iter().map(|c| (c.start, c.end)).collect();
            got.sort();
            assert_eq!(
                got,
                j.chunks().unwrap(),
                "threaded chunks differ from the plan"
            );
        }
    }

    /// Deferred init's jobs (align = min_chunk = PAGES_PER_SECTION, start section aligned after the
    /// first job, end rounded up to a section): no two chunks share a pageblock, and workers never
    /// share a pageblock either.
    #[test]
    fn section_aligned_chunks_never_share_a_pageblock() {
        let mut rng = Rng(42);
        for _ in 0..500 {
            let start = rng.below(1 << 30);
            let end = (start + 1 + rng.below(64 * PPS)).div_ceil(PPS) * PPS;
            let j = job(start, end - start, PPS, PPS, 1 + rng.below(64) as u32);
            let (plan, chunks) = run(
                &j,
                Mode::Threaded {
                    max_host_threads: 3,
                },
            );
            check_job(&j, plan, &chunks);
            let mut owner: HashMap<u64, (u64, u32)> = HashMap::new();
            for c in &chunks {
                // Interior chunk boundaries are section (hence pageblock) aligned.
                if c.start != j.start {
                    assert_eq!(c.start % PPS, 0, "{c:?} of {j:?}");
                }
                let (first, last) = (c.start / PAGEBLOCK, (c.end - 1) / PAGEBLOCK);
                for pb in [first, last] {
                    if let Some(&(other, w)) = owner.get(&pb) {
                        assert_eq!(
                            other, c.start,
                            "pageblock {pb:#x} in two chunks (workers {w}, {})",
                            c.worker
                        );
                    }
                    owner.insert(pb, (c.start, c.worker));
                }
            }
        }
    }

    /// Hand-derived (spec §5.9): the job [PPS/2, PPS/2 + 40 PPS) on a 4-CPU node.
    /// nworks = min(max(40 PPS / PPS, 1), 4) = 4; chunk = round_up(max(40 PPS / 16, PPS), PPS) =
    /// round_up(2.5 PPS, PPS) = 3 PPS. The first chunk ends at the first multiple of 3 PPS, 3 PPS;
    /// then 3 PPS steps end at 6, 9, ..., 39 PPS (12 more), and the last runs to the job end
    /// 40.5 PPS: 14 chunks.
    #[test]
    fn hand_derived_forty_sections() {
        let j = job(PPS / 2, 40 * PPS, PPS, PPS, 4);
        assert_eq!(
            j.plan().unwrap(),
            Some(Plan {
                nworks: 4,
                chunk: 3 * PPS
            })
        );
        let c = j.chunks().unwrap();
        assert_eq!(c.len(), 14);
        assert_eq!(c[0], (PPS / 2, 3 * PPS));
        assert_eq!(c[1], (3 * PPS, 6 * PPS));
        assert_eq!(c[12], (36 * PPS, 39 * PPS));
        assert_eq!(c[13], (39 * PPS, 40 * PPS + PPS / 2));
    }

    /// Less than one min_chunk, or one CPU: one inline call over the whole job by worker 0.
    #[test]
    fn inline_jobs_are_one_call() {
        for j in [job(5, PPS - 1, PPS, PPS, 8), job(0, 100 * PPS, PPS, PPS, 1)] {
            let (plan, chunks) = run(&j, Mode::threaded());
            assert_eq!(plan.unwrap().nworks, 1);
            assert_eq!(
                chunks,
                vec![Chunk {
                    start: j.start,
                    end: j.start + j.size,
                    worker: 0
                }]
            );
        }
    }

    /// B17: min_chunk == 0 used to divide by zero; now chunk >= 1 (and >= align).
    #[test]
    fn b17_min_chunk_zero() {
        let j = job(0, 10, 1, 0, 4);
        assert_eq!(
            j.plan().unwrap(),
            Some(Plan {
                nworks: 4,
                chunk: 1
            })
        ); // max(10/16, 0, 1) = 1
        assert_eq!(j.chunks().unwrap().len(), 10);
        let j = job(0, 100, 8, 0, 4);
        assert_eq!(j.plan().unwrap().unwrap().chunk, 8); // round_up(max(100/16, 0, 1), 8) = 8
    }

    #[test]
    fn invalid_jobs_are_refused() {
        assert!(job(0, 10, 0, 1, 4).plan().is_err());
        assert!(job(0, 10, 1, 1, 0).plan().is_err());
        assert!(job(u64::MAX - 5, 10, 1, 1, 4).plan().is_err());
        let r = padata_do_multithreaded::<InvalidJob>(
            &job(0, 10, 0, 1, 4),
            Mode::Deterministic,
            &|_| panic!("must not run"),
        );
        assert!(r.unwrap_err().0.contains("align"));
    }

    /// Threaded: several host threads really run chunks at the same time, every simulated worker
    /// gets chunks, and many simulated workers map onto fewer host threads.
    #[test]
    fn threaded_uses_several_host_threads_and_all_workers() {
        let j = job(0, 64 * PPS, PPS, PPS, 8); // nworks 8, chunk 2 PPS, 32 chunks
        let threads = StdMutex::new(HashMap::<std::thread::ThreadId, Vec<u32>>::new());
        let arrived = std::sync::atomic::AtomicU32::new(0);
        let met = std::sync::atomic::AtomicBool::new(false);
        padata_do_multithreaded::<InvalidJob>(
            &j,
            Mode::Threaded {
                max_host_threads: 2,
            },
            &|c| {
                let me = std::thread::current().id();
                let first = !threads.lock().unwrap().contains_key(&me);
                threads
                    .lock()
                    .unwrap()
                    .entry(me)
                    .or_default()
                    .push(c.worker);
                if first {
                    // Each host thread's first chunk waits (a bounded while, so a bug fails instead of
                    // hanging) for the other host thread to be inside a chunk too.
                    arrived.fetch_add(1, Ordering::SeqCst);
                    let t = std::time::Instant::now();
                    while arrived.load(Ordering::SeqCst) < 2 && t.elapsed().as_secs() < 20 {
                        std::thread::yield_now();
                    }
                    if arrived.load(Ordering::SeqCst) == 2 {
                        met.store(true, Ordering::SeqCst);
                    }
                }
                Ok(())
            },
        )
        .unwrap();
        assert!(
            met.load(Ordering::SeqCst),
            "two host threads never ran chunks at the same time"
        );
        let threads = threads.into_inner().unwrap();
        assert_eq!(threads.len(), 2, "exactly min(nworks, cap) host threads");
        // Host thread t's k-th chunk belongs to worker t + (k % 4) * 2 (8 workers on 2 threads).
        for ws in threads.values() {
            let t = ws[0];
            assert!(t < 2);
            for (k, &w) in ws.iter().enumerate() {
                assert_eq!(w, t + (k as u32 % 4) * 2, "{ws:?}");
            }
        }
    }

    #[test]
    fn workers_number_helper_cpus_and_share_the_host() {
        // Nodes with 4, 0 (CPU-less) and 2 CPUs; helpers from CPU 10: node 0's workers 1..3 are
        // CPUs 10..12, node 1 has none (max_threads 1), node 2's worker 1 is CPU 13.
        let w = Workers::new(vec![4, 0, 2], 10, Some(3));
        assert_eq!(
            (w.max_threads(0), w.max_threads(1), w.max_threads(2)),
            (4, 1, 2)
        );
        assert_eq!(
            (w.helper_cpu(0, 1), w.helper_cpu(0, 3), w.helper_cpu(2, 1)),
            (10, 12, 13)
        );
        assert_eq!(w.helper_cpus(), 4);
        // 3 host threads: the caller plus 2 spare, shared by every job.
        assert_eq!(w.reserve(5), 2);
        assert_eq!(w.reserve(1), 0);
        w.release(2);
        assert_eq!(w.reserve(1), 1);
    }

    #[test]
    fn a_failing_chunk_stops_the_job() {
        let j = job(0, 64 * PPS, PPS, PPS, 8);
        for mode in [
            Mode::Deterministic,
            Mode::Threaded {
                max_host_threads: 2,
            },
        ] {
            let ran = StdMutex::new(0);
            let r = padata_do_multithreaded::<InvalidJob>(&j, mode, &|c| {
                *ran.lock().unwrap() += 1;
                if c.start >= 10 * PPS {
                    Err(InvalidJob("boom".into()))
                } else {
                    Ok(())
                }
            });
            assert_eq!(r.unwrap_err().0, "boom");
            // 32 chunks of 2 PPS; chunk 5 is the first to fail, at most one more per other thread.
            assert!(*ran.lock().unwrap() <= 7, "{mode:?}");
        }
    }
}

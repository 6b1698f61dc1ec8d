//! Host threads that padata jobs borrow. A node's pass runs its chunks on host threads; spawning a
//! thread per job cost 50-100 µs on the 2-core build host (stack mmap, clone, and a TLB shootdown
//! when it exits), about one section chunk's work, so a pass with 2 host threads was barely faster
//! than with 1. The threads are started on first use, kept parked on a condition variable between
//! jobs, and grow to the most ever used at once (never more than the callers' host-thread caps).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// `f(t)` for one helper index, with the completion latch of the call that queued it.
struct Task {
    /// The caller's `f`, its lifetime erased: see the SAFETY note in `run`.
    f: &'static (dyn Fn(u32) + Sync),
    t: u32,
    latch: Arc<Latch>,
}

/// Counts the helpers of one `run` that have not finished; keeps the first panic.
struct Latch {
    left: Mutex<(usize, Option<Box<dyn Any + Send>>)>,
    done: Condvar,
}

struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

struct State {
    queue: VecDeque<Task>,
    /// Threads waiting for work (a notified thread counts until it wakes).
    idle: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            idle: 0,
        }),
        work: Condvar::new(),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `f(1)`, ..., `f(helpers)` on pool threads and `f(0)` on the calling thread, concurrently;
/// return once every call has returned. A panic in any call is re-raised here after that (the
/// caller's own first).
pub fn run(helpers: u32, f: &(dyn Fn(u32) + Sync)) {
    if helpers == 0 {
        f(0);
        return;
    }
    let latch = Arc::new(Latch {
        left: Mutex::new((helpers as usize, None)),
        done: Condvar::new(),
    });
    // SAFETY: the tasks only use `f` until they count down the latch, and this function does not
    // return (nor unwind: the caller's call is caught below) before the count is zero, so `f`
    // outlives every use through the erased reference.
    let f_static: &'static (dyn Fn(u32) + Sync) = unsafe { std::mem::transmute(f) };
    {
        let p = pool();
        let mut st = lock(&p.state);
        for t in 1..=helpers {
            st.queue.push_back(Task {
                f: f_static,
                t,
                latch: latch.clone(),
            });
            if st.queue.len() > st.idle {
                std::thread::Builder::new()
                    .name("pgdefer-padata".into())
                    .spawn(|| worker(pool()))
                    .expect("spawn a padata host thread");
            } else {
                p.work.notify_one();
            }
        }
    }
    let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
    let mut left = lock(&latch.left);
    while left.0 > 0 {
        left = latch.done.wait(left).unwrap_or_else(|p| p.into_inner());
    }
    let theirs = left.1.take();
    drop(left);
    if let Err(e) = mine {
        std::panic::resume_unwind(e);
    }
    if let Some(e) = theirs {
        std::panic::resume_unwind(e);
    }
}

/// A pool thread: take tasks, run them, count them down; park while there are none.
fn worker(p: &'static Pool) {
    let mut st = lock(&p.state);
    loop {
        if let Some(task) = st.queue.pop_front() {
            drop(st);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (task.f)(task.t)));
            let mut left = lock(&task.latch.left);
            if let Err(e) = r {
                left.1.get_or_insert(e);
            }
            left.0 -= 1;
            if left.0 == 0 {
                task.latch.done.notify_all();
            }
            drop(left);
            st = lock(&p.state);
            continue;
        }
        st.idle += 1;
        st = p
            .work
            .wait_while(st, |s| s.queue.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        st.idle -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn every_index_runs_once_and_threads_are_reused() {
        let mut seen_threads = HashSet::new();
        for _ in 0..50 {
            let ran = Mutex::new(Vec::new());
            run(3, &|t| ran.lock().unwrap().push((t, std::thread::current().id())));
            let mut ran = ran.into_inner().unwrap();
            ran.sort_by_key(|r| r.0);
            assert_eq!(ran.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
            assert_eq!(ran[0].1, std::thread::current().id());
            seen_threads.extend(ran[1..].iter().map(|r| r.1));
        }
        // Other tests of this binary use the pool at the same time, so it may hold a few more
        // threads than 3, but not one per call (50 calls x 3 helpers).
        assert!(seen_threads.len() < 50, "{} host threads", seen_threads.len());
    }

    #[test]
    fn a_helper_panic_reaches_the_caller_after_every_call_returned() {
        let finished = AtomicU32::new(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(2, &|t| {
                if t == 1 {
                    panic!("helper 1");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                finished.fetch_add(1, Ordering::SeqCst);
            })
        }));
        assert!(r.is_err());
        assert_eq!(finished.load(Ordering::SeqCst), 2, "calls 0 and 2 finished first");
    }
}

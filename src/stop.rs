//! Stop requests (Ctrl-C) and progress of long runs.
//!
//! A boot or per-node pass over billions of struct pages runs for seconds to minutes with the GIL
//! released, so Python cannot deliver a KeyboardInterrupt meanwhile. The long loops poll
//! `Machine::stopping()` between chunks (a MAX_ORDER step, a section, a million pages): one relaxed
//! load, and every `POLL_EVERY` calls the front end's `StopHook` (the Python binding's checks
//! pending signals on the main thread). Once a stop is requested every loop returns at its next
//! chunk, and the phase transition that was running marks the machine `interrupted` (unusable: its
//! pages are half initialised) and returns `Error::Interrupted`.
//!
//! Progress: the pages a run has initialised (or checked) so far, against the memmap's pages, read
//! from another thread by a front end's progress bar.

use std::sync::Arc;

use crate::sync::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Mutex, Ordering::Relaxed};

/// Asked every `POLL_EVERY` polls whether to stop; true requests the stop.
pub type StopHook = Arc<dyn Fn() -> bool + Send + Sync>;

/// The clock is read once per this many polls (a poll comes every ~1000 pages or more) ...
const CLOCK_EVERY: u32 = 8;
/// ... and the hook asked when this long has passed since it last was.
const ASK_EVERY_NS: u64 = 20_000_000;

/// What a long run is doing, for progress (`RunStage::name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RunStage {
    Idle = 0,
    Boot = 1,
    LateInit = 2,
    Check = 3,
}

impl RunStage {
    pub fn name(self) -> &'static str {
        ["idle", "boot", "page_alloc_init_late", "check"][self as usize]
    }
    fn from_u8(v: u8) -> RunStage {
        [
            RunStage::Idle,
            RunStage::Boot,
            RunStage::LateInit,
            RunStage::Check,
        ][usize::from(v).min(3)]
    }
}

/// A machine's stop request and progress counters.
pub struct StopRequest {
    requested: AtomicBool,
    polls: AtomicU32,
    t0: std::time::Instant,
    /// Host ns since `t0` at which the hook is asked next.
    next_ask: AtomicU64,
    hook: Mutex<Option<StopHook>>,
    stage: AtomicU8,
    /// Pages initialised by the boot paths so far (boot and late init), or checked (check).
    done: AtomicU64,
    checked: AtomicU64,
}

impl Default for StopRequest {
    fn default() -> Self {
        StopRequest {
            requested: AtomicBool::new(false),
            polls: AtomicU32::new(0),
            t0: std::time::Instant::now(),
            next_ask: AtomicU64::new(0),
            hook: Mutex::new(None),
            stage: AtomicU8::new(0),
            done: AtomicU64::new(0),
            checked: AtomicU64::new(0),
        }
    }
}

impl StopRequest {
    /// Whether a stop was requested; asks the hook now and then.
    #[inline]
    pub fn stopping(&self) -> bool {
        if self.requested.load(Relaxed) {
            return true;
        }
        if self.polls.fetch_add(1, Relaxed) % CLOCK_EVERY != 0 {
            return false;
        }
        let now = self.t0.elapsed().as_nanos() as u64;
        if now < self.next_ask.load(Relaxed) {
            return false;
        }
        self.next_ask.store(now + ASK_EVERY_NS, Relaxed);
        self.ask()
    }

    /// Ask the hook now (if any) whether to stop; true records the request.
    pub fn ask(&self) -> bool {
        let hook = self.hook.lock().unwrap().clone();
        if hook.is_some_and(|h| h()) {
            self.requested.store(true, Relaxed);
        }
        self.requested.load(Relaxed)
    }

    /// Whether a front end installed a hook.
    pub fn has_hook(&self) -> bool {
        self.hook.lock().unwrap().is_some()
    }

    /// Ask every long loop to stop at its next chunk.
    pub fn request(&self) {
        self.requested.store(true, Relaxed);
    }

    /// Whether a stop was requested (no hook call).
    pub fn requested(&self) -> bool {
        self.requested.load(Relaxed)
    }

    /// Forget a stop request (the interrupted operation has returned).
    pub fn clear(&self) {
        self.requested.store(false, Relaxed);
    }

    /// Install (Some) or remove (None) the hook; returns the previous one.
    pub fn set_hook(&self, hook: Option<StopHook>) -> Option<StopHook> {
        std::mem::replace(&mut *self.hook.lock().unwrap(), hook)
    }

    pub(crate) fn set_stage(&self, s: RunStage) {
        if s == RunStage::Check {
            self.checked.store(0, Relaxed);
        }
        self.stage.store(s as u8, Relaxed);
    }

    #[inline]
    pub(crate) fn add_initialised(&self, pages: u64) {
        self.done.fetch_add(pages, Relaxed);
    }

    #[inline]
    pub(crate) fn add_checked(&self, pages: u64) {
        self.checked.fetch_add(pages, Relaxed);
    }

    /// (stage, pages done in it): initialised pages while booting, checked pages while checking.
    pub fn progress(&self) -> (RunStage, u64) {
        let s = RunStage::from_u8(self.stage.load(Relaxed));
        let n = match s {
            RunStage::Check => self.checked.load(Relaxed),
            _ => self.done.load(Relaxed),
        };
        (s, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_is_asked_now_and_then_and_its_answer_sticks() {
        let s = StopRequest::default();
        let asked = Arc::new(AtomicU32::new(0));
        let a = asked.clone();
        s.set_hook(Some(Arc::new(move || a.fetch_add(1, Relaxed) >= 1)));
        // Poll 0 asks the hook (false); the next polls within ASK_EVERY_NS do not ask.
        for _ in 0..CLOCK_EVERY {
            assert!(!s.stopping());
        }
        assert_eq!(asked.load(Relaxed), 1);
        std::thread::sleep(std::time::Duration::from_nanos(ASK_EVERY_NS));
        // The next clock reading asks again; the second answer (true) requests the stop.
        while !s.stopping() {}
        assert_eq!(asked.load(Relaxed), 2);
        assert!(
            s.stopping() && s.requested(),
            "a request stays until cleared"
        );
        assert_eq!(asked.load(Relaxed), 2, "no hook call once requested");
        s.clear();
        s.set_hook(None);
        assert!((0..100).all(|_| !s.stopping()));
    }

    #[test]
    fn progress_counts_per_stage() {
        let s = StopRequest::default();
        s.set_stage(RunStage::Boot);
        s.add_initialised(10);
        s.set_stage(RunStage::LateInit);
        s.add_initialised(5);
        assert_eq!(s.progress(), (RunStage::LateInit, 15));
        s.set_stage(RunStage::Check);
        s.add_checked(7);
        assert_eq!(s.progress(), (RunStage::Check, 7));
        assert_eq!(RunStage::LateInit.name(), "page_alloc_init_late");
    }
}

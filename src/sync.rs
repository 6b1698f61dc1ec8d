//! The one place that names atomics, so loom can replace them (`--cfg pgdefer_loom`).
//!
//! `SpinLock` models `spin_lock_irqsave` on a simulated CPU; `StaticKey` models a one-way
//! `DEFINE_STATIC_KEY_TRUE` that `static_branch_disable` turns off for good.

#[cfg(pgdefer_loom)]
pub use loom::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(pgdefer_loom)]
pub use loom::sync::{Mutex, MutexGuard};
#[cfg(not(pgdefer_loom))]
pub use std::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(pgdefer_loom))]
pub use std::sync::{Mutex, MutexGuard};

#[cfg(pgdefer_loom)]
fn spin_wait() {
    loom::thread::yield_now();
}
#[cfg(not(pgdefer_loom))]
fn spin_wait() {
    std::thread::yield_now();
}

/// Owner value of an unlocked `SpinLock`.
const UNLOCKED: u32 = u32::MAX;

/// A spinlock that records which simulated CPU holds it (for lockdep-style reports).
pub struct SpinLock {
    owner: AtomicU32,
}

impl Default for SpinLock {
    fn default() -> Self {
        SpinLock {
            owner: AtomicU32::new(UNLOCKED),
        }
    }
}

impl SpinLock {
    /// Acquire for `cpu`, spinning (and yielding the host thread) while another CPU holds it.
    pub fn lock(&self, cpu: u32) -> SpinGuard<'_> {
        self.lock_with(cpu, &mut || true)
            .expect("a spin that never gives up gets the lock")
    }

    /// As `lock`, calling `on_spin` between attempts (a spinning CPU with interrupts on takes them);
    /// when `on_spin` returns false the wait is given up (None: a detected deadlock).
    pub fn lock_with(&self, cpu: u32, on_spin: &mut dyn FnMut() -> bool) -> Option<SpinGuard<'_>> {
        loop {
            if self
                .owner
                .compare_exchange_weak(UNLOCKED, cpu, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(SpinGuard { lock: self });
            }
            while self.owner.load(Ordering::Relaxed) != UNLOCKED {
                if !on_spin() {
                    return None;
                }
                spin_wait();
            }
        }
    }

    /// The CPU holding the lock, if any.
    pub fn owner(&self) -> Option<u32> {
        match self.owner.load(Ordering::Relaxed) {
            UNLOCKED => None,
            c => Some(c),
        }
    }
}

pub struct SpinGuard<'a> {
    lock: &'a SpinLock,
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.lock.owner.store(UNLOCKED, Ordering::Release);
    }
}

/// `DEFINE_STATIC_KEY_TRUE(deferred_pages)`: on until disabled once, for good.
pub struct StaticKey {
    enabled: AtomicBool,
}

impl StaticKey {
    pub fn new(enabled: bool) -> Self {
        StaticKey {
            enabled: AtomicBool::new(enabled),
        }
    }
    /// `static_branch_unlikely(&deferred_pages)`
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }
    /// `static_branch_disable`; returns false if it was already off.
    pub fn disable(&self) -> bool {
        self.enabled.swap(false, Ordering::AcqRel)
    }
}

/// `zone->lock`: held for a few dozen ns by every allocation and free. Outside loom it spins briefly
/// before parking (parking_lot), which keeps two CPUs hammering one zone from paying a futex
/// round-trip on every hand-over.
pub struct ZoneLock<T> {
    #[cfg(not(pgdefer_loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(pgdefer_loom)]
    inner: loom::sync::Mutex<T>,
}

#[cfg(not(pgdefer_loom))]
pub type ZoneGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(pgdefer_loom)]
pub type ZoneGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> ZoneLock<T> {
    pub fn new(value: T) -> Self {
        #[cfg(not(pgdefer_loom))]
        let inner = parking_lot::Mutex::new(value);
        #[cfg(pgdefer_loom)]
        let inner = loom::sync::Mutex::new(value);
        ZoneLock { inner }
    }

    pub fn lock(&self) -> ZoneGuard<'_, T> {
        #[cfg(not(pgdefer_loom))]
        return self.inner.lock();
        #[cfg(pgdefer_loom)]
        return self.inner.lock().unwrap();
    }
}

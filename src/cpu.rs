//! Simulated CPUs: the interrupts-disabled flag, the preempt count of spinlocks held, interrupts
//! queued for delivery, and the spinlock acquire/release that ties them together with a
//! lockdep-style check, so that a self-deadlock is reported instead of hanging.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::Arc;

use crate::error::Error;
use crate::sync::{AtomicBool, AtomicU32, Mutex, Ordering, SpinGuard, SpinLock};
use crate::topology::ZoneType;
use crate::waits::WaitGraph;

/// An allocation to run in hard-interrupt context on a CPU, and where its result goes.
pub struct IrqWork {
    pub order: u32,
    pub node: Option<u32>,
    pub zone: Option<ZoneType>,
    pub result: Arc<Mutex<Option<Result<u64, Error>>>>,
}

static NEXT_THREAD_TOKEN: StdAtomicU64 = StdAtomicU64::new(1);

thread_local! {
    static THREAD_TOKEN: u64 = NEXT_THREAD_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A number unique to the calling host thread (never 0).
pub fn thread_token() -> u64 {
    THREAD_TOKEN.with(|t| *t)
}

#[derive(Default)]
// One cache line pair per CPU: a padata helper polls its own CPU's state at every interrupt point,
// and adjacent CPUs' fields on one line made two host threads' polls bounce it between cores.
#[repr(align(128))]
pub struct Cpu {
    /// The host thread acting as this CPU (0: none) and how deeply (callbacks and interrupts nest).
    thread: StdAtomicU64,
    depth: AtomicU32,
    /// Nesting depth of `local_irq_save` (spin_lock_irqsave) on this CPU.
    irqs_off: AtomicU32,
    /// Spinlocks held (`preempt_count`): sleeping here is a bug.
    preempt: AtomicU32,
    in_irq: AtomicBool,
    pending: Mutex<VecDeque<IrqWork>>,
}

impl Cpu {
    pub fn irqs_disabled(&self) -> bool {
        self.irqs_off.load(Ordering::Relaxed) > 0
    }
    pub fn in_atomic(&self) -> bool {
        self.preempt.load(Ordering::Relaxed) > 0 || self.in_irq.load(Ordering::Relaxed)
    }
    pub fn in_irq(&self) -> bool {
        self.in_irq.load(Ordering::Relaxed)
    }
    pub fn queue(&self, w: IrqWork) {
        self.pending.lock().unwrap().push_back(w);
    }
    /// The next interrupt to deliver, if interrupts are enabled and we are not already in one.
    pub fn next_deliverable(&self) -> Option<IrqWork> {
        if self.irqs_disabled() || self.in_irq() {
            return None;
        }
        self.pending.lock().unwrap().pop_front()
    }
    pub fn set_in_irq(&self, v: bool) {
        self.in_irq.store(v, Ordering::Relaxed);
    }
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap().len()
    }

    /// Act as this CPU on the calling host thread until the guard drops. One host thread at a time:
    /// another thread gets `None` (two threads cannot be one CPU).
    pub fn enter(&self) -> Option<CpuGuard<'_>> {
        use std::sync::atomic::Ordering as O;
        let me = thread_token();
        match self.thread.compare_exchange(0, me, O::Acquire, O::Relaxed) {
            Ok(_) => {}
            Err(t) if t == me => {}
            Err(_) => return None,
        }
        self.depth.fetch_add(1, Ordering::Relaxed);
        Some(CpuGuard { cpu: self })
    }
}

pub struct CpuGuard<'a> {
    cpu: &'a Cpu,
}

impl Drop for CpuGuard<'_> {
    fn drop(&mut self) {
        if self.cpu.depth.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.cpu
                .thread
                .store(0, std::sync::atomic::Ordering::Release);
        }
    }
}

/// A spinlock as the kernel names it, with where it was taken (for lockdep reports).
pub struct NamedLock {
    pub name: String,
    pub lock: SpinLock,
    site: Mutex<&'static str>,
    /// The host thread holding it (0: none): a thread that would wait for itself deadlocks; shared
    /// with the wait-for graph, which follows it from a spinning thread to the holder.
    holder: Arc<StdAtomicU64>,
}

/// Spins between two looks for a cycle in the wait-for graph (a look takes the graph's mutex).
const SPINS_PER_CYCLE_CHECK: u32 = 64;

/// Why a lock could not be taken: this CPU already holds it (an interrupt that needs the lock its
/// own CPU holds with interrupts enabled), or another CPU simulated by the same host thread holds it
/// (a point callback that waits for the code it interrupted).
#[derive(Debug, Clone)]
pub struct Deadlock {
    pub lock: String,
    pub cpu: u32,
    /// The CPU holding the lock.
    pub holder: u32,
    pub held_at: &'static str,
    pub wanted_at: &'static str,
    pub in_irq: bool,
    /// A cycle of host threads waiting for each other (the wait-for graph), one step each.
    pub cycle: Option<Vec<String>>,
}

impl Deadlock {
    /// lockdep's report, in its words.
    pub fn report(&self) -> String {
        if let Some(cycle) = &self.cycle {
            format!(
                "DEADLOCK: CPU {} takes {} at {} while CPU {} holds it since {}, and the host threads wait \
                 for each other in a cycle: {} (a point callback waiting for a thread that waits for it)",
                self.cpu,
                self.lock,
                self.wanted_at,
                self.holder,
                self.held_at,
                cycle.join("; ")
            )
        } else if self.holder == self.cpu {
            format!(
                "WARNING: inconsistent lock state: {{IN-HARDIRQ-W}} -> {{HARDIRQ-ON-W}} usage. CPU {} {} \
                 {} at {}, already holding it since {} with interrupts enabled. *** DEADLOCK ***",
                self.cpu,
                if self.in_irq { "in hard interrupt context takes" } else { "takes" },
                self.lock,
                self.wanted_at,
                self.held_at
            )
        } else {
            format!(
                "DEADLOCK: CPU {} takes {} at {} while CPU {} holds it since {}, and both are simulated by \
                 the same host thread (a point callback waiting for the code it stopped)",
                self.cpu, self.lock, self.wanted_at, self.holder, self.held_at
            )
        }
    }
}

pub struct LockGuard<'a> {
    _guard: SpinGuard<'a>,
    lock: &'a NamedLock,
    cpu: &'a Cpu,
    irqsave: bool,
}

impl LockGuard<'_> {
    /// Release; returns whether interrupts just became enabled again on this CPU (the caller then
    /// delivers what was held off).
    pub fn unlock(self) -> bool {
        let irqsave = self.irqsave;
        let cpu = self.cpu;
        drop(self);
        irqsave && !cpu.irqs_disabled()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Runs before `_guard` releases the spinlock (fields drop after this body).
        self.lock
            .holder
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.cpu.preempt.fetch_sub(1, Ordering::Relaxed);
        if self.irqsave {
            self.cpu.irqs_off.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl NamedLock {
    pub fn new(name: String) -> NamedLock {
        NamedLock {
            name,
            lock: SpinLock::default(),
            site: Mutex::new(""),
            holder: Arc::new(StdAtomicU64::new(0)),
        }
    }

    /// `spin_lock_irqsave` (or plain `spin_lock`) on `cpu`. Spins while another CPU holds it,
    /// calling `on_spin` (interrupt delivery) while interrupts are on. Refuses, with a lockdep report,
    /// to take a lock this CPU (or this host thread) already holds, and gives up, with the cycle, when
    /// `waits` shows the holder waiting (through other threads) for this one.
    pub fn acquire<'a>(
        &'a self,
        cpu_id: u32,
        cpu: &'a Cpu,
        irqsave: bool,
        site: &'static str,
        waits: &WaitGraph,
        mut on_spin: impl FnMut(),
    ) -> Result<LockGuard<'a>, Deadlock> {
        if let Some(holder) = self.lock.owner() {
            if holder == cpu_id
                || self.holder.load(std::sync::atomic::Ordering::Relaxed) == thread_token()
            {
                return Err(Deadlock {
                    lock: self.name.clone(),
                    cpu: cpu_id,
                    holder,
                    held_at: *self.site.lock().unwrap(),
                    wanted_at: site,
                    in_irq: cpu.in_irq(),
                    cycle: None,
                });
            }
        }
        if irqsave {
            cpu.irqs_off.fetch_add(1, Ordering::Relaxed);
        }
        cpu.preempt.fetch_add(1, Ordering::Relaxed);
        let (mut spins, mut seen, mut cycle) = (0u32, false, None);
        let got = self.lock.lock_with(cpu_id, &mut || {
            on_spin();
            spins = spins.wrapping_add(1);
            if spins == 1 {
                waits.wait_lock(&self.name, &self.holder);
            }
            if spins % SPINS_PER_CYCLE_CHECK == 0 {
                // A cycle seen twice in a row, one check apart, is not a hand-over in flight.
                match waits.cycle() {
                    Some(c) if seen => {
                        cycle = Some(c);
                        return false;
                    }
                    c => seen = c.is_some(),
                }
            }
            true
        });
        if spins > 0 {
            waits.done_waiting();
        }
        let Some(guard) = got else {
            cpu.preempt.fetch_sub(1, Ordering::Relaxed);
            if irqsave {
                cpu.irqs_off.fetch_sub(1, Ordering::Relaxed);
            }
            return Err(Deadlock {
                lock: self.name.clone(),
                cpu: cpu_id,
                holder: self.lock.owner().unwrap_or(cpu_id),
                held_at: *self.site.lock().unwrap(),
                wanted_at: site,
                in_irq: cpu.in_irq(),
                cycle,
            });
        };
        self.holder
            .store(thread_token(), std::sync::atomic::Ordering::Relaxed);
        *self.site.lock().unwrap() = site;
        Ok(LockGuard {
            _guard: guard,
            lock: self,
            cpu,
            irqsave,
        })
    }

    pub fn owner(&self) -> Option<u32> {
        self.lock.owner()
    }

    /// The site of the lock's last taker (its holder's, while it is held).
    pub fn held_at(&self) -> &'static str {
        *self.site.lock().unwrap()
    }
}

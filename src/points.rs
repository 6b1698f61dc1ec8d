//! Simulated CPUs, interrupts, spinlocks and named points (controlled interleavings): entering a CPU,
//! `spin_lock`/`spin_lock_irqsave` with lockdep-style deadlock reports, hard-interrupt delivery at
//! interrupt points, and the callbacks registered at named points of the boot paths.

use std::sync::Arc;

use crate::cpu::{thread_token, CpuGuard, Deadlock, IrqWork, LockGuard, NamedLock};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::machine::Machine;
use crate::page_alloc::AllocRequest;
use crate::sync::{Mutex, Ordering};
use crate::topology::ZoneType;
use crate::waits::root_thread;

/// A callback run when the model reaches a named point (controlled interleavings).
pub type PointFn = Arc<dyn Fn(&Machine, &PointInfo) + Send + Sync>;

/// Where the model is: `name` is one of POINTS; `node` the node id it concerns; `cpu` who is there.
#[derive(Debug, Clone)]
pub struct PointInfo {
    pub name: &'static str,
    pub node: Option<u32>,
    pub cpu: u32,
}

/// The named points at which the model stops for registered callbacks.
pub const POINTS: [&str; 10] = [
    "key_disable:before",
    "key_disable:after",
    "pass:start",
    "pass:claimed",
    "pass:finish",
    "pass:end",
    "grow:snapshot",
    "grow:locked",
    "grow:spin",
    "grow:section",
];

pub(crate) struct PointHook {
    name: String,
    node: Option<u32>,
    once: bool,
    f: PointFn,
}

/// CPUs, interrupts, locks and controlled interleavings.
impl Machine {
    pub fn check_cpu(&self, cpu: u32) -> Result<()> {
        if cpu as usize >= self.cpus.len() {
            let helpers = self.nr_cpus as usize + self.nodes.len();
            return Err(Error::InvalidArgument(format!(
                "cpu {cpu} does not exist: CPUs 0..{} run workloads, {}..{helpers} the per-node passes, \
                 {helpers}..{} their padata helpers",
                self.nr_cpus,
                self.nr_cpus,
                self.cpus.len()
            )));
        }
        Ok(())
    }

    /// Act as `cpu` on this host thread for the guard's life; a CPU already simulated by another host
    /// thread is an error (its interrupts-disabled state and locks would be shared by two threads).
    pub fn enter_cpu(&self, cpu: u32) -> Result<CpuGuard<'_>> {
        self.check_cpu(cpu)?;
        self.cpus[cpu as usize].enter().ok_or_else(|| {
            Error::Phase(format!(
                "CPU {cpu} is being simulated by another host thread: give each thread its own cpu= \
                 (CPU 0 runs boot() and page_alloc_init_late())"
            ))
        })
    }

    /// The simulated CPU that runs node index `ni`'s pgdatinit thread.
    pub fn pgdatinit_cpu(&self, ni: usize) -> u32 {
        self.nr_cpus + ni as u32
    }

    /// Take `lock` on `cpu` (irqsave or not), delivering interrupts while spinning with them on.
    /// A lock the CPU already holds is a deadlock: logged lockdep-style and returned as an error.
    pub(crate) fn lock<'a>(
        &'a self,
        lock: &'a NamedLock,
        cpu: u32,
        irqsave: bool,
        site: &'static str,
    ) -> Result<LockGuard<'a>> {
        self.lock_spinning(lock, cpu, irqsave, site, &mut || {})
    }

    /// `lock`, calling `first_spin` once if the lock is held when asked for (before spinning on it).
    pub(crate) fn lock_spinning<'a>(
        &'a self,
        lock: &'a NamedLock,
        cpu: u32,
        irqsave: bool,
        site: &'static str,
        first_spin: &mut dyn FnMut(),
    ) -> Result<LockGuard<'a>> {
        let c = &self.cpus[cpu as usize];
        let mut spun = false;
        lock.acquire(cpu, c, irqsave, site, &self.waits, || {
            if !spun {
                spun = true;
                first_spin();
            }
            self.irq_point(cpu);
        })
            .map_err(|d: Deadlock| {
                self.log(
                    cpu,
                    Event::Lockdep {
                        lock: d.lock.clone(),
                        cpu,
                        held_at: d.held_at,
                        wanted_at: d.wanted_at,
                    },
                );
                Error::Deadlock(d.report())
            })
    }

    /// Release, then deliver the interrupts the lock held off.
    pub(crate) fn unlock(&self, guard: LockGuard<'_>, cpu: u32) {
        if guard.unlock() {
            self.irq_point(cpu);
        }
    }

    /// An interrupt point: run the allocations queued for `cpu` if its interrupts are enabled.
    pub fn irq_point(&self, cpu: u32) {
        let c = &self.cpus[cpu as usize];
        while let Some(w) = c.next_deliverable() {
            c.set_in_irq(true);
            // GFP_ATOMIC: an UNMOVABLE request
            let r = self.get_page_from_freelist(AllocRequest {
                order: w.order,
                nid: w.node,
                zone: w.zone,
                mt: crate::migratetype::MigrateType::Unmovable,
                cpu,
            });
            c.set_in_irq(false);
            *w.result.lock().unwrap() = Some(r);
        }
    }

    /// Queue an allocation in hard-interrupt context on `cpu`; it runs at that CPU's next interrupt
    /// point with interrupts enabled. The returned slot receives its result.
    pub fn raise_irq(
        &self,
        cpu: u32,
        order: u32,
        node: Option<u32>,
        zone: Option<ZoneType>,
    ) -> Result<Arc<Mutex<Option<Result<u64>>>>> {
        self.check_cpu(cpu)?;
        self.check_order(order)?;
        if let Some(n) = node {
            self.node_index(n)?;
        }
        let result = Arc::new(Mutex::new(None));
        self.cpus[cpu as usize].queue(IrqWork {
            order,
            node,
            zone,
            result: result.clone(),
        });
        Ok(result)
    }

    /// Run `f` whenever the model reaches the point `name` (for `node`, or any node if None); with
    /// `once`, only the first time.
    pub fn at_point(&self, name: &str, node: Option<u32>, once: bool, f: PointFn) -> Result<()> {
        if !POINTS.contains(&name) {
            return Err(Error::InvalidArgument(format!(
                "unknown point {name:?}: expected one of {POINTS:?}"
            )));
        }
        self.hooks.lock().unwrap().push(PointHook {
            name: name.to_string(),
            node,
            once,
            f,
        });
        self.has_hooks.store(true, Ordering::Release);
        Ok(())
    }

    pub fn clear_points(&self) {
        self.hooks.lock().unwrap().clear();
        self.has_hooks.store(false, Ordering::Release);
    }

    /// The model reached point `name`: run the callbacks registered for it (outside the registry lock,
    /// so a callback may itself allocate and reach other points).
    pub(crate) fn point(&self, name: &'static str, node: Option<u32>, cpu: u32) {
        if !self.has_hooks.load(Ordering::Acquire) {
            return;
        }
        let matching: Vec<PointFn> = {
            let mut hooks = self.hooks.lock().unwrap();
            let hit = |h: &PointHook| h.name == name && (h.node.is_none() || h.node == node);
            let fs = hooks
                .iter()
                .filter(|h| hit(h))
                .map(|h| h.f.clone())
                .collect();
            hooks.retain(|h| !(h.once && hit(h)));
            if hooks.is_empty() {
                self.has_hooks.store(false, Ordering::Release);
            }
            fs
        };
        let info = PointInfo { name, node, cpu };
        let _stopped = Stopped::new(self, cpu, name);
        for f in matching {
            f(self, &info);
        }
    }

    /// Phase changes (boot, page_alloc_init_late, free_initmem) are refused from a point callback, on its thread or on
    /// a thread the stopped operation started, and while a CPU stopped at a point holds a lock: the
    /// change would wait for code that cannot go on until the callback returns.
    pub(crate) fn refuse_from_callback(&self, what: &str) -> Result<()> {
        let (me, root) = (thread_token(), root_thread());
        let stopped = self.stopped.lock().unwrap();
        if let Some(&(_, cpu, at)) = stopped.iter().find(|s| s.0 == me || s.0 == root) {
            return Err(Error::Phase(format!(
                "{what} called from a point callback (CPU {cpu} is stopped at {at:?}): a boot phase cannot \
                 change while an operation is stopped at a point; call it after the operation returns"
            )));
        }
        if let Some(&(_, cpu, at)) = stopped
            .iter()
            .find(|s| self.cpus[s.1 as usize].in_atomic())
        {
            return Err(Error::Phase(format!(
                "{what} while CPU {cpu} is stopped at {at:?} holding a spinlock (in a point callback): the \
                 phase would wait for that lock forever"
            )));
        }
        Ok(())
    }
}

/// A CPU stopped at a point for the life of the value (its callbacks are running).
struct Stopped<'a> {
    m: &'a Machine,
    entry: (u64, u32, &'static str),
}

impl<'a> Stopped<'a> {
    fn new(m: &'a Machine, cpu: u32, at: &'static str) -> Self {
        let entry = (thread_token(), cpu, at);
        m.stopped.lock().unwrap().push(entry);
        Stopped { m, entry }
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        let mut s = self.m.stopped.lock().unwrap();
        if let Some(k) = s.iter().rposition(|e| *e == self.entry) {
            s.swap_remove(k);
        }
    }
}

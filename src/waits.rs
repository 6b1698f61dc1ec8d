//! The wait-for graph of the host threads of one machine, so that a wait that can never end is
//! reported (DeadlockDetected) instead of spinning forever.
//!
//! lockdep finds a CPU taking a lock it already holds; that misses a cycle through several host
//! threads: a point callback that stops CPU 0 inside grow (holding the node lock) and then waits for
//! a thread the machine started (a per-node pass, a workload stream) that spins on that very lock,
//! or two callbacks that each hold one node lock and want the other's. Edges: a thread spinning on a
//! `NamedLock` waits for the thread holding it; a thread joining the threads it started (the passes of
//! `page_alloc_init_late`, the streams of `run_workload`) waits for each of them. A waiter that finds
//! itself on a cycle twice in a row gives up with the cycle as its report.
//!
//! Threads the machine starts also remember the thread that started them (`root`): a point callback
//! that runs on a per-node pass thread or a padata helper works for the operation of that thread.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cpu::thread_token;

thread_local! {
    /// The thread whose operation this thread works for (0: its own).
    static ROOT: Cell<u64> = const { Cell::new(0) };
}

/// The host thread whose operation the calling thread serves: itself, or the thread that started the
/// operation if the machine started this one (a pass, padata helper or workload stream).
pub fn root_thread() -> u64 {
    match ROOT.with(Cell::get) {
        0 => thread_token(),
        r => r,
    }
}

/// What one host thread is blocked on.
#[derive(Clone)]
enum Wait {
    /// Spinning on the lock named `name`; `holder` is its live holder thread (0: free).
    Lock {
        name: String,
        holder: Arc<AtomicU64>,
    },
    /// Joining the threads it started (they add and remove themselves).
    Join(Arc<Mutex<Vec<u64>>>),
}

/// Per host thread, what it waits for (the last entry is its live wait: a joining thread that spins
/// on a lock meanwhile waits for the lock first).
#[derive(Default)]
pub struct WaitGraph {
    waits: Mutex<HashMap<u64, Vec<Wait>>>,
}

/// A thread's join edge while it waits for the threads it started; hand `children()` to them.
pub struct Joining<'a> {
    graph: &'a WaitGraph,
    me: u64,
    kids: Arc<Mutex<Vec<u64>>>,
}

/// Held by a started thread for its whole life: it counts as a child of the joining thread.
pub struct Child {
    kids: Arc<Mutex<Vec<u64>>>,
    me: u64,
    prev_root: u64,
}

/// What a started thread needs from its parent: the join list and the operation's root thread.
#[derive(Clone)]
pub struct Parent {
    kids: Arc<Mutex<Vec<u64>>>,
    root: u64,
}

impl WaitGraph {
    /// The calling thread starts threads and will join them: it waits for each of them from now on
    /// until the guard drops.
    pub fn joining(&self) -> Joining<'_> {
        let me = thread_token();
        let kids = Arc::new(Mutex::new(Vec::new()));
        self.push(me, Wait::Join(kids.clone()));
        Joining {
            graph: self,
            me,
            kids,
        }
    }

    fn push(&self, t: u64, w: Wait) {
        self.waits.lock().unwrap().entry(t).or_default().push(w);
    }

    /// Remove thread `t`'s last wait.
    fn pop(&self, t: u64) {
        let mut waits = self.waits.lock().unwrap();
        if let Some(v) = waits.get_mut(&t) {
            v.pop();
            if v.is_empty() {
                waits.remove(&t);
            }
        }
    }

    /// The calling thread spins on lock `name` whose holder thread is `holder`.
    pub(crate) fn wait_lock(&self, name: &str, holder: &Arc<AtomicU64>) {
        self.push(
            thread_token(),
            Wait::Lock {
                name: name.to_string(),
                holder: holder.clone(),
            },
        );
    }

    /// The calling thread stopped spinning (it got the lock, or gave up).
    pub(crate) fn done_waiting(&self) {
        self.pop(thread_token());
    }

    /// The cycle through the calling thread, if the graph has one: each step as "thread T waits for
    /// <what>". None if following the waits from this thread never comes back to it.
    pub(crate) fn cycle(&self) -> Option<Vec<String>> {
        let me = thread_token();
        let waits = self.waits.lock().unwrap();
        // Depth-first over the threads reachable from `me`; a thread's wait edges are read live.
        let edges = |t: u64| -> Vec<(u64, String)> {
            match waits.get(&t).and_then(|v| v.last()) {
                Some(Wait::Lock { name, holder }) => match holder.load(Ordering::Relaxed) {
                    0 => vec![],
                    h => vec![(h, format!("spins on {name}, held by host thread {h}"))],
                },
                Some(Wait::Join(kids)) => kids
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|&k| (k, format!("joins host thread {k} it started")))
                    .collect(),
                None => vec![],
            }
        };
        let mut stack: Vec<(u64, Vec<String>)> = vec![(me, Vec::new())];
        let mut seen = vec![me];
        while let Some((t, path)) = stack.pop() {
            for (next, why) in edges(t) {
                let mut p = path.clone();
                p.push(format!("host thread {t} {why}"));
                if next == me {
                    return Some(p);
                }
                if !seen.contains(&next) {
                    seen.push(next);
                    stack.push((next, p));
                }
            }
        }
        None
    }
}

impl Joining<'_> {
    /// What to give each started thread (`Child::enter`).
    pub fn parent(&self) -> Parent {
        Parent {
            kids: self.kids.clone(),
            root: root_thread(),
        }
    }
}

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        self.graph.pop(self.me);
    }
}

impl Parent {
    /// A parent that joins nobody (padata's helpers: the caller works beside them), only passing on
    /// whose operation they serve.
    pub fn root_only() -> Parent {
        Parent {
            kids: Arc::new(Mutex::new(Vec::new())),
            root: root_thread(),
        }
    }
}

impl Child {
    /// Called first thing on a started thread.
    pub fn enter(parent: &Parent) -> Child {
        let me = thread_token();
        parent.kids.lock().unwrap().push(me);
        let prev_root = ROOT.with(|r| r.replace(parent.root));
        Child {
            kids: parent.kids.clone(),
            me,
            prev_root,
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kids.lock().unwrap().retain(|&k| k != self.me);
        ROOT.with(|r| r.set(self.prev_root));
    }
}

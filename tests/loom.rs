//! loom models of the grow / per-node pass / static key protocol (spec §7 C1–C4), running the same
//! decision code as the machine (`pgdefer::protocol::grow_step`) with loom's atomics and spinlock.
//!
//! Run: RUSTFLAGS="--cfg pgdefer_loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom
#![cfg(pgdefer_loom)]

use loom::sync::atomic::AtomicU8;
use loom::sync::Arc;
use loom::thread;

use pgdefer::machine::Fdp;
use pgdefer::policy::{KeyDisable, PassLock};
use pgdefer::protocol::{empty_result, grow_step, GrowStep};
use pgdefer::sync::{Ordering, SpinLock, StaticKey};
use pgdefer::Policy;

/// A node of `SECTIONS` one-pfn "sections", all deferred: fdp = 0.
const SECTIONS: u64 = 3;

struct Node {
    fdp: Fdp,
    node_lock: SpinLock,
    /// posting-v2's global deferred_zone_grow_lock
    grow_lock: SpinLock,
    key: StaticKey,
    init: Vec<AtomicU8>,
    policy: Policy,
    trust_snapshot: bool,
}

impl Node {
    fn new(policy: Policy, trust_snapshot: bool) -> Arc<Node> {
        let fdp = Fdp::new();
        fdp.store(Some(0));
        Arc::new(Node {
            fdp,
            node_lock: SpinLock::default(),
            grow_lock: SpinLock::default(),
            key: StaticKey::new(true),
            init: (0..SECTIONS).map(|_| AtomicU8::new(0)).collect(),
            policy,
            trust_snapshot,
        })
    }

    fn init_section(&self, s: u64) {
        let before = self.init[s as usize].fetch_add(1, Ordering::Relaxed);
        assert_eq!(before, 0, "double init of section {s}");
    }

    /// deferred_grow_zone: one section per call.
    fn grow(&self, cpu: u32) -> bool {
        let snapshot = self.fdp.load();
        let lock = if self.policy == Policy::PostingV2 {
            &self.grow_lock
        } else {
            &self.node_lock
        };
        let _g = lock.lock(cpu);
        match grow_step(
            self.policy,
            self.trust_snapshot,
            self.key.enabled(),
            snapshot,
            self.fdp.load(),
            0,
            SECTIONS,
        ) {
            GrowStep::Return(r) => r,
            GrowStep::Empty => {
                if self.policy.grow_retry_once() {
                    self.fdp.store(None);
                }
                empty_result(self.policy, snapshot, false)
            }
            GrowStep::Grow { first } => {
                self.init_section(first);
                let next = first + 1;
                self.fdp.store(Some(next)); // next == SECTIONS: nothing left, but not claimed
                true
            }
        }
    }

    /// deferred_init_memmap: claim the node, initialise the rest. v4.17/v5.2 hold the node lock
    /// throughout; v5.7 holds it only for the claim; posting-v2 (the key is already off) takes none.
    fn pass(&self, cpu: u32) {
        let claim = || {
            let first = self.fdp.load();
            self.fdp.store(None);
            first
        };
        let _whole;
        let first = match self.policy.pass_lock() {
            PassLock::WholePass => {
                _whole = self.node_lock.lock(cpu);
                claim()
            }
            PassLock::Claim => {
                let _g = self.node_lock.lock(cpu);
                claim()
            } // unlocked here: the sections below are initialised with the lock dropped
            PassLock::None => claim(),
        };
        if let Some(first) = first {
            for s in first..SECTIONS {
                self.init_section(s);
            }
        }
    }

    /// page_alloc_init_late for one node, with the policy's key ordering.
    fn late_init(&self, cpu: u32) {
        if self.policy.key_disable() == KeyDisable::BeforePasses {
            let _g = self.grow_lock.lock(cpu);
            self.key.disable();
        }
        self.pass(cpu);
        if self.policy.key_disable() == KeyDisable::AfterPasses {
            self.key.disable();
        }
    }

    /// After everything: each section initialised exactly once, nothing deferred, key off.
    fn assert_done(&self) {
        for (s, c) in self.init.iter().enumerate() {
            assert_eq!(
                c.load(Ordering::Relaxed),
                1,
                "section {s} initialised {} times",
                c.load(Ordering::Relaxed)
            );
        }
        assert_eq!(self.fdp.load(), None);
        assert!(!self.key.enabled());
    }

    /// While growers ran alone: sections below fdp initialised once, the rest untouched.
    fn assert_prefix(&self) {
        let fdp = self.fdp.load().unwrap_or(SECTIONS);
        for (s, c) in self.init.iter().enumerate() {
            let want = u8::from((s as u64) < fdp);
            assert_eq!(c.load(Ordering::Relaxed), want, "section {s} vs fdp {fdp}");
        }
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// `this(node)` on the calling thread while a spawned one runs `other(node)` (a clone: the same node);
/// both results, once both threads are done.
fn on_two_threads<A: Send + 'static, B>(
    n: &Arc<Node>,
    other: impl FnOnce(Arc<Node>) -> A + Send + 'static,
    this: impl FnOnce(&Node) -> B,
) -> (A, B) {
    let n2 = n.clone();
    let t = thread::spawn(move || other(n2));
    let b = this(n);
    (t.join().unwrap(), b)
}

fn two_growers(policy: Policy, trust_snapshot: bool) {
    model(move || {
        let n = Node::new(policy, trust_snapshot);
        let (b, a) = on_two_threads(&n, |n2| n2.grow(1), |n| n.grow(0));
        assert!(a || b, "one of them grew");
        n.assert_prefix();
    });
}

fn grow_vs_late_init(policy: Policy, trust_snapshot: bool) {
    model(move || {
        let n = Node::new(policy, trust_snapshot);
        on_two_threads(&n, |n2| n2.grow(1), |n| n.late_init(0));
        n.assert_done();
    });
}

/// One `#[test]` a line: `name: race(Policy, trust_snapshot);`, after the case's doc and attributes.
macro_rules! races {
    ($($(#[$attr:meta])* $name:ident: $race:ident($policy:ident, $trust:expr);)+) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                $race(Policy::$policy, $trust);
            }
        )+
    };
}

races! {
    two_growers_on_one_node_v4_17: two_growers(V4_17, false);
    two_growers_on_one_node_posting_v2: two_growers(PostingV2, false);
    /// The deliberately broken variant: trusting the unlocked snapshot initialises a section twice,
    /// and loom finds the interleaving.
    #[should_panic(expected = "double init")]
    two_growers_trusting_the_snapshot_double_initialise: two_growers(V4_17, true);

    /// Grow racing the per-node pass's claim of the node and the key disable (v4.17: after the pass).
    grow_races_pass_and_key_disable_v4_17: grow_vs_late_init(V4_17, false);
    /// posting-v2: the key goes off under the global lock before the pass; a grow either finished
    /// before or sees the key off.
    grow_races_pass_and_key_disable_posting_v2: grow_vs_late_init(PostingV2, false);
    #[should_panic(expected = "double init")]
    grow_trusting_the_snapshot_races_the_claim: grow_vs_late_init(V4_17, true);
    /// 5.2 (lock held for the whole pass, key re-check in grow) and 5.7 (claim, then unlocked; no
    /// key re-check): a grow racing the pass never initialises a section the pass also initialises.
    grow_races_pass_v5_2: grow_vs_late_init(V5_2, false);
    grow_races_the_claim_v5_7: grow_vs_late_init(V5_7, false);
    #[should_panic(expected = "double init")]
    grow_trusting_the_snapshot_races_the_claim_v5_7: grow_vs_late_init(V5_7, true);
}

/// 5.7: an allocator retrying while grow says True stops: after the claim grow returns True at most
/// once (a snapshot that predates the claim), then False ("retry only once"), whatever the interleaving.
#[test]
fn grow_after_the_claim_retries_at_most_once_v5_7() {
    model(|| {
        let n = Node::new(Policy::V5_7, false);
        let retry = |n2: Arc<Node>| {
            let mut trues = 0;
            while n2.grow(1) {
                trues += 1;
                assert!(trues <= SECTIONS + 2, "grow keeps returning true");
            }
        };
        on_two_threads(&n, retry, |n| n.late_init(0));
        n.assert_done();
        assert!(!n.grow(0), "grow on a claimed node");
    });
}

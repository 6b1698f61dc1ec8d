//! What differs between kernel generations, in one place (spec §9.4).

use crate::error::{Error, Result};
use crate::geometry::Geometry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// No deferral at all (`CONFIG_DEFERRED_STRUCT_PAGE_INIT=n`).
    Eager,
    /// v4.2–v4.5: a fixed 2 GiB prefix per node, rest in per-node threads, no on-demand growth.
    V4_2,
    /// The Feb 2018 v2 posting (seed): one global grow lock, key disabled under it before the
    /// per-node threads run, grow returns "initialised >= needed".
    PostingV2,
    /// As merged in v4.17: per-node lock held with IRQs off for the whole pass, key disabled after
    /// all passes, snapshot re-checked under the lock, grow returns "initialised > 0".
    V4_17,
}

/// Which lock serialises growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowLock {
    Global,
    PerNode,
}

/// When `page_alloc_init_late` turns the static key off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDisable {
    /// No key: the policy has no on-demand hook.
    NoKey,
    /// Under the grow lock, before the per-node passes start (v1–v4 postings).
    BeforePasses,
    /// After every per-node pass finished (v4.17).
    AfterPasses,
}

/// Every policy's name, in release order (`Policy::ALL`).
pub const POLICY_NAMES: [&str; 4] = ["eager", "v4.2", "posting-v2", "v4.17"];

impl GrowLock {
    pub fn name(self) -> &'static str {
        match self {
            GrowLock::Global => "global",
            GrowLock::PerNode => "per_node",
        }
    }
}

impl KeyDisable {
    pub fn name(self) -> &'static str {
        match self {
            KeyDisable::NoKey => "no_key",
            KeyDisable::BeforePasses => "before_passes",
            KeyDisable::AfterPasses => "after_passes",
        }
    }
}

/// The value of one fact of the policy table (`Policy::facts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactValue {
    Bool(bool),
    Name(&'static str),
    /// `Policy::early_limit` of this policy, exported as a callable `(geometry, node_spanned)`.
    EarlyLimit(Policy),
}

impl Policy {
    /// Every policy, in release order.
    pub const ALL: [Policy; 4] = [Policy::Eager, Policy::V4_2, Policy::PostingV2, Policy::V4_17];

    /// The policy table as data, exported to Python as `_core.POLICY_FACTS[name]` so that no layer
    /// above re-decides a policy by its name. To add a policy: its variant in `ALL`, `name()` and one
    /// arm in each fact's method below; to add a fact: one more entry here (Python reads it by name).
    pub fn facts(self) -> Vec<(&'static str, FactValue)> {
        use FactValue::{Bool, EarlyLimit, Name};
        vec![
            ("name", Name(self.name())),
            ("defers", Bool(self.defers())),
            ("grows", Bool(self.grows())),
            ("static_key", Bool(self.key_disable() != KeyDisable::NoKey)),
            ("grow_lock", Name(self.grow_lock().name())),
            ("key_disable", Name(self.key_disable().name())),
            ("pass_holds_node_lock", Bool(self.pass_holds_node_lock())),
            ("early_limit", EarlyLimit(self)),
        ]
    }

    pub fn parse(name: &str) -> Result<Policy> {
        match name {
            "eager" => Ok(Policy::Eager),
            "v4.2" => Ok(Policy::V4_2),
            "posting-v2" => Ok(Policy::PostingV2),
            "v4.17" => Ok(Policy::V4_17),
            _ => Err(Error::Topology(format!(
                "unknown policy {name:?}: expected one of {POLICY_NAMES:?}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::Eager => "eager",
            Policy::V4_2 => "v4.2",
            Policy::PostingV2 => "posting-v2",
            Policy::V4_17 => "v4.17",
        }
    }

    /// `LIMIT` of the defer rule (spec §2.3): pages of the last zone initialised before the cut may
    /// happen at the next section boundary. None: never defer.
    pub fn early_limit(self, g: &Geometry, node_spanned: u64) -> Option<u64> {
        match self {
            Policy::Eager => None,
            Policy::V4_2 => Some((2u64 << 30) >> g.page_shift),
            Policy::PostingV2 | Policy::V4_17 => Some(g.pages_per_section().min(node_spanned)),
        }
    }

    /// Whether `memmap_init` may leave struct pages to deferred init (`early_limit` is Some).
    pub fn defers(self) -> bool {
        !matches!(self, Policy::Eager)
    }

    /// Whether the allocator has the on-demand grow hook.
    pub fn grows(self) -> bool {
        matches!(self, Policy::PostingV2 | Policy::V4_17)
    }

    pub fn grow_lock(self) -> GrowLock {
        if self == Policy::PostingV2 {
            GrowLock::Global
        } else {
            GrowLock::PerNode
        }
    }

    /// What grow returns when it finds the key already off after taking the lock.
    pub fn grow_result_key_off(self) -> bool {
        self == Policy::V4_17
    }

    /// What grow returns after initialising `got` pages of the `need` it wanted.
    pub fn grow_result(self, got: u64, need: u64) -> bool {
        if self == Policy::PostingV2 {
            got >= need
        } else {
            got > 0
        }
    }

    pub fn key_disable(self) -> KeyDisable {
        match self {
            Policy::Eager | Policy::V4_2 => KeyDisable::NoKey,
            Policy::PostingV2 => KeyDisable::BeforePasses,
            Policy::V4_17 => KeyDisable::AfterPasses,
        }
    }

    /// Whether the per-node pass holds its node's lock (IRQs off) for the whole pass.
    pub fn pass_holds_node_lock(self) -> bool {
        self == Policy::V4_17
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let g = Geometry::default();
        assert_eq!(Policy::V4_2.early_limit(&g, 1 << 30), Some(524288));
        assert_eq!(Policy::V4_17.early_limit(&g, 1 << 30), Some(32768));
        assert_eq!(Policy::V4_17.early_limit(&g, 1000), Some(1000));
        assert_eq!(Policy::Eager.early_limit(&g, 1 << 30), None);
        assert!(Policy::parse("v5.8").is_err());
    }

    #[test]
    fn table_is_complete() {
        let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, POLICY_NAMES);
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.name()), Ok(p));
            let facts = p.facts();
            assert_eq!(facts[0], ("name", FactValue::Name(p.name())));
            // A policy without deferral has no LIMIT; one that grows has the static key.
            let g = Geometry::default();
            assert_eq!(p.defers(), p.early_limit(&g, 1 << 20).is_some());
            assert!(!p.grows() || p.key_disable() != KeyDisable::NoKey);
        }
    }

    #[test]
    fn grow_results_differ() {
        assert!(Policy::V4_17.grow_result(1, 32768));
        assert!(!Policy::PostingV2.grow_result(1, 32768));
        assert!(Policy::PostingV2.grow_result(32768, 32768));
    }
}

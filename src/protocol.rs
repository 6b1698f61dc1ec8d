//! The decisions of the grow/claim protocol (spec §3.2, §4, §7 C1–C4), as pure functions of what a
//! CPU has read, so the machine and the loom models (tests/loom.rs) run the very same logic.

use crate::policy::{GrowLock, Policy};

/// What `deferred_grow_zone` does once it holds its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowStep {
    /// Return without initialising anything (the value is the return value).
    Return(bool),
    /// Nothing is deferred from the pfn it would start at (fdp ULONG_MAX or past the node end):
    /// see `empty_result`.
    Empty,
    /// Initialise from this pfn on.
    Grow { first: u64 },
}

/// Decide, under the grow lock, what grow does.
/// `snapshot` is the unlocked `READ_ONCE(first_deferred_pfn)`, `current` the value read under the
/// lock. v4.17+ re-validate the snapshot (a change means someone grew or claimed the node: retry);
/// posting-v2 reads it under its global lock; the `trust_snapshot` fault uses the stale value (for
/// posting-v2 that is what the seed's v2 literally did). 4.17–5.6 return early when the key went
/// off while they waited; 5.7 dropped that check.
pub fn grow_step(
    policy: Policy,
    trust_snapshot: bool,
    key_enabled: bool,
    snapshot: Option<u64>,
    current: Option<u64>,
    zone_start: u64,
    node_end: u64,
) -> GrowStep {
    if policy.grow_rechecks_key() && !key_enabled {
        return GrowStep::Return(policy.grow_result_key_off()); // deferred init finished while we waited
    }
    let fdp = match policy.grow_lock() {
        GrowLock::Global if trust_snapshot => snapshot, // the seed's v2 form, read before the lock
        GrowLock::Global => current,
        GrowLock::PerNode if trust_snapshot => snapshot,
        GrowLock::PerNode if snapshot != current => return GrowStep::Return(true),
        GrowLock::PerNode => snapshot,
    };
    match fdp.map(|f| f.max(zone_start)) {
        Some(first) if first < node_end => GrowStep::Grow { first },
        _ => GrowStep::Empty,
    }
}

/// What grow returns when it finds no deferred free range at or after its snapshot. 4.17: False.
/// 5.2+ set fdp := ULONG_MAX and "retry only once" (b9705d8778e7): True iff the snapshot was not
/// yet ULONG_MAX. The 5.2 release (`retry_forever`) returned True every time: the caller retries forever
/// (spec §8 B12).
pub fn empty_result(policy: Policy, snapshot: Option<u64>, retry_forever: bool) -> bool {
    policy.grow_retry_once() && (retry_forever || snapshot.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_snapshot() {
        let p = Policy::V4_17;
        assert_eq!(
            grow_step(p, false, true, Some(64), Some(128), 0, 256),
            GrowStep::Return(true)
        );
        assert_eq!(
            grow_step(p, true, true, Some(64), Some(128), 0, 256),
            GrowStep::Grow { first: 64 }
        );
        assert_eq!(
            grow_step(p, false, true, Some(64), Some(64), 80, 256),
            GrowStep::Grow { first: 80 }
        );
        assert_eq!(
            grow_step(p, false, true, None, None, 0, 256),
            GrowStep::Empty
        );
        assert!(!empty_result(p, Some(64), false));
        assert_eq!(
            grow_step(p, false, false, None, None, 0, 256),
            GrowStep::Return(true)
        );
        assert_eq!(
            grow_step(Policy::PostingV2, false, false, None, None, 0, 256),
            GrowStep::Return(false)
        );
        assert_eq!(
            grow_step(Policy::PostingV2, false, true, Some(64), Some(128), 0, 256),
            GrowStep::Grow { first: 128 }
        );
        assert_eq!(
            grow_step(Policy::PostingV2, true, true, Some(64), Some(128), 0, 256),
            GrowStep::Grow { first: 64 }
        );
    }

    /// Nothing deferred from the node's end on: first_deferred_pfn can sit exactly at the node end
    /// (grow initialised the node's last section), and then there is nothing left to grow below the
    /// node end, whether the lock re-checks it or trusts the snapshot.
    #[test]
    fn fdp_at_the_node_end_is_empty() {
        for p in [Policy::V4_17, Policy::PostingV2, Policy::V5_7] {
            assert_eq!(
                grow_step(p, false, true, Some(256), Some(256), 0, 256),
                GrowStep::Empty
            );
            assert_eq!(
                grow_step(p, false, true, Some(255), Some(255), 0, 256),
                GrowStep::Grow { first: 255 }
            );
        }
    }

    /// 5.2+: retry only once; 5.7 ignores the key; a claimed node (snapshot = current = ULONG_MAX)
    /// grows nothing and returns False, a caller whose snapshot predates the claim gets True.
    #[test]
    fn maxorder_generations() {
        for p in [Policy::V5_2, Policy::V5_7] {
            assert!(empty_result(p, Some(64), false));
            assert!(!empty_result(p, None, false));
            assert!(empty_result(p, None, true)); // B12
        }
        assert_eq!(
            grow_step(Policy::V5_2, false, false, Some(64), Some(64), 0, 256),
            GrowStep::Return(true)
        );
        assert_eq!(
            grow_step(Policy::V5_7, false, false, Some(64), Some(64), 0, 256),
            GrowStep::Grow { first: 64 }
        );
        assert_eq!(
            grow_step(Policy::V5_7, false, true, Some(64), None, 0, 256),
            GrowStep::Return(true)
        );
        assert_eq!(
            grow_step(Policy::V5_7, false, true, None, None, 0, 256),
            GrowStep::Empty
        );
    }
}

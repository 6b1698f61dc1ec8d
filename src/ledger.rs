//! The allocation ledger: every block `alloc_pages` handed to a caller (a Python call, an interrupt's
//! handle, a workload stream) and not yet freed. `check()` holds the page array against it: an
//! ALLOCATED page that no live allocation covers is a lost page, an invariant violation.
//!
//! Entries change under the zone lock of the block (`rmqueue`, `__free_one_page`), so a block freed
//! and reallocated by two CPUs is never recorded out of order. Sharded by pfn to keep the allocator
//! threads off one mutex.

use std::collections::HashMap;

const SHARDS: usize = 64;

pub struct Ledger {
    shards: Vec<parking_lot::Mutex<HashMap<u64, u32>>>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            shards: (0..SHARDS)
                .map(|_| parking_lot::Mutex::new(HashMap::new()))
                .collect(),
        }
    }
}

impl Ledger {
    fn shard(&self, pfn: u64) -> &parking_lot::Mutex<HashMap<u64, u32>> {
        &self.shards[(pfn as usize >> 3) % SHARDS]
    }

    /// A caller received the block at `pfn` of `order`.
    pub fn received(&self, pfn: u64, order: u32) {
        self.shard(pfn).lock().insert(pfn, order);
    }

    /// The block at `pfn` went back to the allocator; its order as recorded, if it was live.
    pub fn returned(&self, pfn: u64) -> Option<u32> {
        self.shard(pfn).lock().remove(&pfn)
    }

    /// Every live allocation, `(pfn, order)`, sorted by pfn.
    pub fn live(&self) -> Vec<(u64, u32)> {
        let mut v: Vec<(u64, u32)> = self
            .shards
            .iter()
            .flat_map(|s| s.lock().iter().map(|(&p, &o)| (p, o)).collect::<Vec<_>>())
            .collect();
        v.sort_unstable();
        v
    }
}

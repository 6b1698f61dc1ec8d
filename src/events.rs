//! The event log: what happened during boot, in order, with host time.

use crate::topology::ZoneType;

/// Which allocator hook called `deferred_grow_zone` (spec §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// The zone failed its (zero) watermark check.
    Watermark,
    /// `rmqueue` found no block of the order after a previous grow.
    Rmqueue,
    /// Called directly by the user.
    Explicit,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Watermark => "watermark",
            Hook::Rmqueue => "rmqueue",
            Hook::Explicit => "explicit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `memmap_init` finished for a node: memory pfns initialised early and where it cut.
    EarlyInit {
        node: u32,
        pages: u64,
        first_deferred_pfn: Option<u64>,
    },
    /// `memblock_free_all`: pages released to the buddy, reserved pages, free pages left deferred.
    MemblockFreeAll {
        released: u64,
        reserved: u64,
        deferred: u64,
    },
    /// One `deferred_grow_zone` call that reached the lock.
    Grow {
        node: u32,
        zone: ZoneType,
        order: u32,
        hook: Hook,
        pages: u64,
        first_deferred_pfn: Option<u64>,
        result: bool,
    },
    /// One per-node pass (`deferred_init_memmap`) finished.
    DeferredInit { node: u32, pages: u64, host_ns: u64 },
    /// `static_branch_disable(&deferred_pages)`.
    KeyDisable,
    /// A kernel warning the model detected (sleeping in atomic context, use of freed __init code...).
    Warning { message: String },
    /// A lockdep report: an interrupt needed a lock its own CPU holds.
    Lockdep {
        lock: String,
        cpu: u32,
        held_at: &'static str,
        wanted_at: &'static str,
    },
}

/// An event with the host time (ns since the machine was created) and the simulated CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub t_ns: u64,
    pub cpu: u32,
    pub event: Event,
}

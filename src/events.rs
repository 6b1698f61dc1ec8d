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
    /// One padata chunk `[start, end)` of a node's pass, taken by simulated worker `worker` (0: the
    /// node's pgdatinit thread, 1..: its helpers), logged just before it runs.
    PadataChunk {
        node: u32,
        start: u64,
        end: u64,
        worker: u32,
    },
}

/// The value of one event field (`Event::fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    U64(u64),
    /// A pfn that may be `ULONG_MAX` (None).
    Pfn(Option<u64>),
    Bool(bool),
    Str(&'a str),
}

/// Every event kind and its fields, in `Event::fields` order: the one list bindings and readers use.
pub const EVENT_KINDS: [(&str, &[&str]); 8] = [
    ("early_init", &["node", "pages", "first_deferred_pfn"]),
    ("memblock_free_all", &["released", "reserved", "deferred"]),
    (
        "grow",
        &[
            "node",
            "zone",
            "order",
            "hook",
            "pages",
            "first_deferred_pfn",
            "result",
        ],
    ),
    ("deferred_init", &["node", "pages", "host_ns"]),
    ("key_disable", &[]),
    ("warning", &["message"]),
    // `lock_cpu`: the CPU holding the lock (the logged `cpu` is the one that wanted it).
    ("lockdep", &["lock", "lock_cpu", "held_at", "wanted_at"]),
    ("padata_chunk", &["node", "start", "end", "worker"]),
];

impl Event {
    /// The event's kind, a key of `EVENT_KINDS`.
    pub fn kind(&self) -> &'static str {
        EVENT_KINDS[self.kind_index()].0
    }

    fn kind_index(&self) -> usize {
        match self {
            Event::EarlyInit { .. } => 0,
            Event::MemblockFreeAll { .. } => 1,
            Event::Grow { .. } => 2,
            Event::DeferredInit { .. } => 3,
            Event::KeyDisable => 4,
            Event::Warning { .. } => 5,
            Event::Lockdep { .. } => 6,
            Event::PadataChunk { .. } => 7,
        }
    }

    /// (name, value) of each field, names from `EVENT_KINDS`.
    pub fn fields(&self) -> Vec<(&'static str, Value<'_>)> {
        use Value::{Bool, Pfn, Str, U64};
        let values = match self {
            Event::EarlyInit {
                node,
                pages,
                first_deferred_pfn,
            } => vec![U64((*node).into()), U64(*pages), Pfn(*first_deferred_pfn)],
            Event::MemblockFreeAll {
                released,
                reserved,
                deferred,
            } => vec![U64(*released), U64(*reserved), U64(*deferred)],
            Event::Grow {
                node,
                zone,
                order,
                hook,
                pages,
                first_deferred_pfn,
                result,
            } => vec![
                U64((*node).into()),
                Str(zone.name()),
                U64((*order).into()),
                Str(hook.name()),
                U64(*pages),
                Pfn(*first_deferred_pfn),
                Bool(*result),
            ],
            Event::DeferredInit {
                node,
                pages,
                host_ns,
            } => vec![U64((*node).into()), U64(*pages), U64(*host_ns)],
            Event::KeyDisable => vec![],
            Event::Warning { message } => vec![Str(message)],
            Event::Lockdep {
                lock,
                cpu,
                held_at,
                wanted_at,
            } => vec![Str(lock), U64((*cpu).into()), Str(held_at), Str(wanted_at)],
            Event::PadataChunk {
                node,
                start,
                end,
                worker,
            } => vec![
                U64((*node).into()),
                U64(*start),
                U64(*end),
                U64((*worker).into()),
            ],
        };
        let names = EVENT_KINDS[self.kind_index()].1;
        assert_eq!(names.len(), values.len(), "EVENT_KINDS out of date");
        names.iter().copied().zip(values).collect()
    }
}

/// An event with the host time (ns since the machine was created) and the simulated CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub t_ns: u64,
    pub cpu: u32,
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_lists_its_fields() {
        let all = [
            Event::EarlyInit {
                node: 1,
                pages: 2,
                first_deferred_pfn: None,
            },
            Event::MemblockFreeAll {
                released: 1,
                reserved: 2,
                deferred: 3,
            },
            Event::Grow {
                node: 0,
                zone: ZoneType::Normal,
                order: 3,
                hook: Hook::Rmqueue,
                pages: 9,
                first_deferred_pfn: Some(7),
                result: true,
            },
            Event::DeferredInit {
                node: 0,
                pages: 1,
                host_ns: 5,
            },
            Event::KeyDisable,
            Event::Warning {
                message: "w".into(),
            },
            Event::Lockdep {
                lock: "l".into(),
                cpu: 2,
                held_at: "a",
                wanted_at: "b",
            },
            Event::PadataChunk {
                node: 1,
                start: 64,
                end: 128,
                worker: 3,
            },
        ];
        assert_eq!(all.len(), EVENT_KINDS.len());
        for (e, (kind, names)) in all.iter().zip(EVENT_KINDS) {
            assert_eq!(e.kind(), kind);
            let got: Vec<&str> = e.fields().iter().map(|f| f.0).collect();
            assert_eq!(got, names);
        }
        let grow = all[2].fields();
        assert_eq!(grow[1], ("zone", Value::Str("Normal")));
        assert_eq!(grow[5], ("first_deferred_pfn", Value::Pfn(Some(7))));
        assert_eq!(all[6].fields()[1], ("lock_cpu", Value::U64(2)));
    }
}

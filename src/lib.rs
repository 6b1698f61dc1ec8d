//! pgdefer: an executable model of Linux's deferred `struct page` initialisation with on-demand
//! growth during boot ("mm: initialize pages on demand during boot", 2018).
//!
//! The model runs the real algorithm on a real struct-page array (`page`), a real buddy allocator
//! (`buddy`), real threads, a real spinlock and a one-way static key (`sync`). What differs between
//! kernel generations lives in `policy`; the boot paths in `deferred`; the allocator entry points in
//! `page_alloc`; simulated CPUs, interrupts, locks and named points in `points`; `machine` holds the
//! state and ties it together.

pub mod buddy;
pub mod check;
pub mod compact;
pub mod cpu;
pub mod deferred;
pub mod error;
pub mod events;
pub mod geometry;
pub mod hostmem;
pub mod hostpool;
pub mod ledger;
pub mod machine;
pub mod memblock;
pub mod migratetype;
pub mod padata;
pub mod page;
pub mod page_alloc;
pub mod pcp;
pub mod points;
pub mod policy;
pub mod protocol;
pub mod stop;
pub mod sync;
pub mod topology;
pub mod waits;
pub mod workload;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
pub use events::{Event, Hook};
pub use geometry::Geometry;
pub use machine::{Faults, Machine, MachineConfig, Phase};
pub use memblock::Region;
pub use migratetype::MigrateType;
pub use page::PageState;
pub use policy::Policy;
pub use topology::{ZoneLimits, ZoneType};

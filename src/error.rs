//! Typed errors of the core. The Python layer maps each variant to a class of `pgdefer.errors`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A page/section/pageblock/max-order combination no kernel could have.
    Geometry(String),
    /// A memory map memblock would reject.
    Topology(String),
    /// A misused argument: a CPU, policy, named point or fault that does not exist, counts out of range.
    InvalidArgument(String),
    /// An allocation order outside `0..=max_order`.
    Order(String),
    UnknownNode(String),
    UnknownZone(String),
    /// `free_pages` of something that is not an allocated block head of that order.
    BadFree(String),
    /// An operation used out of boot order.
    Phase(String),
    OutOfMemory(String),
    /// `check()` found broken invariants.
    Invariant(Vec<String>),
    /// A per-node worker failed; the machine is marked failed.
    WorkerFailed {
        node: u32,
        message: String,
    },
    /// The page array would not fit the host.
    HostMemory(String),
    /// A CPU would spin forever on a lock it holds itself (reported instead of hanging).
    Deadlock(String),
    /// A read of a struct page that was never initialised (I6).
    UninitAccess(String),
    /// A stop request (Ctrl-C) ended a long operation; a boot phase leaves the machine `interrupted`.
    Interrupted(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Geometry(m)
            | Error::Topology(m)
            | Error::InvalidArgument(m)
            | Error::Order(m)
            | Error::UnknownNode(m)
            | Error::UnknownZone(m)
            | Error::BadFree(m)
            | Error::Phase(m)
            | Error::OutOfMemory(m)
            | Error::HostMemory(m)
            | Error::Deadlock(m)
            | Error::UninitAccess(m)
            | Error::Interrupted(m) => f.write_str(m),
            Error::Invariant(v) => {
                write!(f, "{} invariant violation(s): {}", v.len(), v.join("; "))
            }
            Error::WorkerFailed { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

"""The pgdefer exception hierarchy.

Every error the library raises on purpose derives from :class:`PgdeferError` and from the builtin that a
caller would expect (``ValueError`` for bad input, ``MemoryError`` for an allocation failure, ...), so both
``except pgdefer.TopologyError`` and ``except ValueError`` work. The Rust core raises these same classes.
"""

from __future__ import annotations

import difflib


class PgdeferError(Exception):
    """Base class of every error raised by pgdefer."""


class GeometryError(PgdeferError, ValueError):
    """A page/section/pageblock/max-order geometry that no kernel could have."""


class TopologyError(PgdeferError, ValueError):
    """A memory map that memblock would reject (overlaps, empty ranges, zone limits out of order...)."""


class InvalidArgument(PgdeferError, ValueError):
    """Misuse of an argument: a CPU, policy, named point or fault that does not exist, a count out of range
    (cpus, host_threads, node_cpus, fail_pass, panic_pass, a pfn or count beyond 64 bits). Not a property of
    the memory map."""


class InvalidType(InvalidArgument, TypeError):
    """An argument of the wrong type (a str where an int belongs, None for a topology, a callback that is not
    callable). Also a ``TypeError``, so code written against the builtin keeps working."""


class OrderError(PgdeferError, ValueError):
    """An allocation order above MAX_PAGE_ORDER (or negative)."""


class UnknownNode(PgdeferError, LookupError):
    """A node id that has no memory in this machine."""


class UnknownZone(PgdeferError, LookupError):
    """A zone name that is not DMA, DMA32, Normal or Movable, or a zone the node does not have."""


class BadFree(PgdeferError, ValueError):
    """free_pages() of a pfn that is not an allocated block head of that order."""


class PhaseError(PgdeferError, RuntimeError):
    """An operation used out of boot order (allocating before boot(), booting twice, ...)."""


class OutOfMemory(PgdeferError, MemoryError):
    """alloc_pages() found no free block in any zone of the zonelist, even after growing."""


class InvariantViolation(PgdeferError, AssertionError):
    """check() found the model in a state that the kernel's invariants (spec section 7) forbid."""

    def __init__(self, problems):
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{len(self.problems)} invariant violation(s):\n  {shown}{more}")


class WorkerFailed(PgdeferError, RuntimeError):
    """A per-node deferred-init worker thread failed; the machine is marked failed."""

    def __init__(self, message, node=None):
        self.node = node
        super().__init__(message)


class HostMemoryError(PgdeferError, MemoryError):
    """A machine whose simulated page array would not fit in this host's available memory."""


class DmesgError(PgdeferError, ValueError):
    """A boot log that cannot be read or modelled: missing file, not a boot log, truncated log."""


__all__ = [
    "PgdeferError", "GeometryError", "TopologyError", "InvalidArgument", "InvalidType", "OrderError", "UnknownNode",
    "UnknownZone",
    "BadFree", "PhaseError", "OutOfMemory", "InvariantViolation", "WorkerFailed",
    "HostMemoryError", "DmesgError",
]


class DeadlockDetected(PgdeferError, RuntimeError):
    """A wait that could never end: an interrupt on a CPU needed a spinlock that same CPU holds with
    interrupts enabled, or host threads wait for each other in a cycle (a point callback waiting for a
    thread that spins on a lock the callback's CPU holds).

    The model reports it (a lockdep-style event naming the lock, the CPU and both acquisition points,
    and the cycle) instead of spinning forever."""


class UninitialisedAccess(PgdeferError, RuntimeError):
    """A struct page was read before it was initialised (spec I6: B2, B8, B19)."""


__all__ += ["DeadlockDetected", "UninitialisedAccess"]


class CrossNodeBlockWarning(UserWarning):
    """A memory map whose nodes meet inside a MAX_ORDER block or pageblock (docs/model.md, "Nodes that share a
    block"): accepted, since kernels boot such machines, but a hazard; ``Topology(..., strict=True)`` refuses it."""


__all__ += ["CrossNodeBlockWarning"]


class NoStructPage(PgdeferError, IndexError):
    """A pfn with no struct page where one was asked for by pfn (``m.pages[pfn]``): its section is not present
    (``!pfn_valid``), or it lies outside the page window; also an integer index into a packed page array,
    where a pfn is not an index."""


__all__ += ["NoStructPage"]


def did_you_mean(name, choices) -> str:
    """``"; did you mean 'X'?"`` for the choice closest to a misspelt ``name`` (difflib), else "": the hint an
    unknown-name error (policy, preset) ends with."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""

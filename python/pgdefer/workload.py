"""Early-boot allocation workloads: what the kernel allocates between memblock_free_all and
page_alloc_init_late (hash tables, per-CPU areas, slab pages), as plain data a machine can replay."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import OutOfMemory


@dataclass(frozen=True)
class Burst:
    """``count`` allocations of ``2^order`` pages, preferring ``node`` (None = lowest), up to ``zone``."""

    what: str
    count: int
    order: int
    node: int | None = None
    zone: str | None = None

    @property
    def pages(self) -> int:
        return self.count << self.order


def default_workload(nodes) -> list:
    """A small early-boot storm: large system hashes on the first node (order MAX), per-CPU areas and
    slab pages on every node. Sized to need a few sections per node beyond the early prefix."""
    out = [Burst("dentry/inode hash tables", 48, 10, nodes[0])]
    for n in nodes:
        out.append(Burst(f"per-cpu areas node {n}", 64, 3, n))
        out.append(Burst(f"slab pages node {n}", 40000, 0, n))
        out.append(Burst(f"page tables node {n}", 2000, 1, n))
    return out


def replay(machine, workload, on_failure="record") -> dict:
    """Run each burst's allocations; returns {what: (allocated, failed)}. Allocation failures are
    counted (``on_failure="record"``) or raised (``"raise"``)."""
    results = {}
    for b in workload:
        ok = failed = 0
        for _ in range(b.count):
            try:
                machine.alloc_pages(b.order, node=b.node, zone=b.zone)
                ok += 1
            except OutOfMemory:
                if on_failure == "raise":
                    raise
                failed += 1
        results[b.what] = (ok, failed)
    return results


class Workload:
    """A sequence of early allocations and frees a machine can replay. :meth:`from_trace` reads the
    ``kmem:mm_page_alloc`` / ``mm_page_free`` trace of a boot log (:class:`pgdefer.lab.trace.TraceWorkload`)."""

    @classmethod
    def from_trace(cls, log):
        """The page-allocation trace of a kernel-lab log (a path or its text), in the kernel's order."""
        from .lab.trace import TraceWorkload

        return TraceWorkload.from_log(log)

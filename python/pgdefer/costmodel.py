"""Modelled time: what a target machine would spend, from published measurements (spec §6, §9.3).

Host time is what the Rust core really spends here; modelled time is this cost model applied to the
pages each step touched. Reports label every figure with which kind of time it is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CostModel:
    """ns per page for init + free, thread scaling with a bandwidth cap, and a fixed pass overhead.

    Defaults: 15 ns/page single-threaded (modern x86, spec §9.3: 12-22 ns/page from P3-P9, M10);
    a per-node pass scales as ``T1 / min(threads, bandwidth_cap)`` (§9.3: cap ~8-15 per socket);
    a few ms of fixed overhead per pass.
    """

    ns_per_page: float = 15.0
    early_ns_per_page: float = 15.0
    bandwidth_cap: float = 12.0
    pass_overhead_ms: float = 2.0

    def pass_ms(self, pages: int, threads: int = 1) -> float:
        """Modelled duration of one per-node deferred_init_memmap pass."""
        if pages == 0:
            return 0.0
        return pages * self.ns_per_page / 1e6 / min(max(threads, 1), self.bandwidth_cap) + self.pass_overhead_ms

    def grow_ms(self, pages: int) -> float:
        """Modelled duration of one deferred_grow_zone step (lock held, IRQs off)."""
        return pages * self.ns_per_page / 1e6

    def early_ms(self, pages: int) -> float:
        """Modelled duration of early memmap init on the boot CPU."""
        return pages * self.early_ns_per_page / 1e6


DEFAULT_COST = CostModel()

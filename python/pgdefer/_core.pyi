"""Type stubs of the Rust core (src/python.rs), checked against the built extension by stubtest
(tests/test_typing.py): whoever adds or changes an extension function or method updates this file in the
same commit. Use the validating front ``pgdefer.Machine`` rather than ``_core.Machine`` directly."""

from collections.abc import Callable
from typing import Any, final

from numpy import uint8, uint16
from numpy.typing import NDArray

__all__ = ["Machine", "IrqHandle", "POINTS", "INIT_BY", "POLICIES", "POLICY_FACTS", "EVENT_KINDS", "deferral",
           "padata_plan", "BYTES_PER_PAGE", "PAGE_STATES", "PAGE_FLAGS", "NO_ORDER", "MAX_NUMNODES", "MAX_CPUS",
           "MAX_PHYSMEM_BITS", "ORDER_BIAS", "ZONES"]

#: Named points of ``Machine.at`` (e.g. "grow:snapshot").
POINTS: list[str]
#: Boot paths that initialise a struct page, indexed by the ``init_by`` code.
INIT_BY: list[str]
#: Every policy name, in release order.
POLICIES: list[str]
#: Policy name -> {fact: bool | str | early_limit callable}, from ``Policy::facts``.
POLICY_FACTS: dict[str, dict[str, Any]]
#: Event kind -> its field names, in order.
EVENT_KINDS: dict[str, list[str]]
#: Host bytes per simulated struct page.
BYTES_PER_PAGE: int
#: Page state names, indexed by the state code.
PAGE_STATES: list[str]
#: Field -> (shift, mask) in the flags byte of a struct page.
PAGE_FLAGS: dict[str, tuple[int, int]]
NO_ORDER: int
MAX_NUMNODES: int
MAX_CPUS: int
MAX_PHYSMEM_BITS: int
ORDER_BIAS: int
#: Zone names, indexed by the zone code.
ZONES: list[str]

_Memory = list[tuple[int, int, int]]
_Reserved = list[tuple[int, int]]
_ZoneLimits = tuple[int | None, int | None, int | None]
_Stream = tuple[int, int, list[int], int | None, str | None, int]

def deferral(
    page_size: int,
    section_size: int,
    pageblock_order: int,
    max_order: int,
    memory: _Memory,
    reserved: _Reserved,
    zone_limits: _ZoneLimits,
    policy: str,
) -> list[tuple[int, int | None, int]]: ...
def padata_plan(size: int, min_chunk: int, max_threads: int) -> tuple[int, int]: ...
@final
class IrqHandle:
    @property
    def done(self) -> bool: ...
    def result(self) -> int: ...

@final
class Machine:
    def __new__(
        cls,
        page_size: int,
        section_size: int,
        pageblock_order: int,
        max_order: int,
        memory: _Memory,
        reserved: _Reserved,
        zone_limits: _ZoneLimits,
        policy: str,
        cpus: int = 1,
        grow_irqsave: bool = True,
        trust_snapshot: bool = False,
        keep_key: bool = False,
        fail_pass: tuple[int, int] | None = None,
        panic_pass: int | None = None,
        bytes_as_pages: bool = False,
        retry_forever: bool = False,
        node_cpus: list[tuple[int, int]] = ...,
        host_threads: int | None = None,
    ) -> Machine: ...
    def memory_line(self) -> dict[str, Any] | None: ...
    def boot(self) -> None: ...
    def alloc_pages(self, order: int, node: int | None = None, zone: str | None = None, cpu: int = 0) -> int: ...
    def free_pages(self, pfn: int, order: int, cpu: int = 0) -> None: ...
    def deferred_grow_zone(self, node: int, zone: str, order: int, cpu: int = 0) -> bool: ...
    def page_alloc_init_late(self, threads: bool = True) -> None: ...
    def first_deferred_pfn(self, node: int) -> int | None: ...
    @property
    def deferred_pages_enabled(self) -> bool: ...
    @property
    def phase(self) -> str: ...
    @property
    def policy(self) -> str: ...
    def nodes(self) -> list[dict[str, Any]]: ...
    def zone(self, node: int, zone: str) -> dict[str, Any]: ...
    def free_list(self, node: int, zone: str, order: int) -> list[int]: ...
    def events(self) -> list[dict[str, Any]]: ...
    def stats(self) -> dict[str, int]: ...
    def violations(self) -> list[str]: ...
    def check(self) -> list[str]: ...
    def raise_irq(self, cpu: int, order: int, node: int | None = None, zone: str | None = None) -> IrqHandle: ...
    def deliver_irqs(self, cpu: int) -> None: ...
    def at(
        self, point: str, callback: Callable[[str, int | None, int], object], node: int | None = None, once: bool = True
    ) -> None: ...
    def clear_points(self) -> None: ...
    def free_initmem(self) -> None: ...
    def free_reserved_area(self, start: int, end: int, cpu: int = 0) -> int: ...
    def read_page(self, pfn: int, cpu: int = 0) -> tuple[int, str, int]: ...
    def cpu_states(self) -> list[tuple[bool, bool, int]]: ...
    @property
    def nr_cpus(self) -> int: ...
    @property
    def nr_cpu_slots(self) -> int: ...
    def node_workers(self) -> list[tuple[int, int, int, list[int]]]: ...
    def lock_owners(self) -> dict[str, int | None]: ...
    def run_workload(
        self, streams: list[_Stream], seed: int = 0, late_init_after: int | None = None
    ) -> dict[str, Any]: ...
    def memmap_chunks(self) -> list[tuple[int, int, int]]: ...
    def raw_view(self, name: str) -> NDArray[uint8] | NDArray[uint16]: ...

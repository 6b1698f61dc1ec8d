"""Hand-derived machines that the tests of both models (the Rust core through ``pgdefer.Machine``, and
``pgdefer.oracle.OracleMachine``) boot and check against the same figures."""

from __future__ import annotations

from pgdefer import Region, Topology

MiB, GiB = 1 << 20, 1 << 30


def booted_acceptance_case(machine_class):
    """The acceptance case (memory [1 MiB, 5 GiB) node 0, reserved [16 MiB, 48 MiB), x86_64 geometry, v4.17)
    booted by ``machine_class``, after checking what memmap_init and memblock_free_all left; returns
    ``(topology, machine)``.

    - zones: DMA [0x100, 0x1000) = 3840, DMA32 [0x1000, 0x100000) = 1044480, Normal [0x100000, 0x140000) =
      262144 pages; reserved pfns [0x1000, 0x3000) = 8192 pages, inside DMA32.
    - defer rule: LIMIT = min(PAGES_PER_SECTION = 32768, node_spanned) = 32768; Normal's first pfn 0x100000 is
      count 1, pfn 0x108000 is count 32769 > LIMIT and section aligned: first_deferred_pfn = 0x108000.
    - memblock_free_all frees DMA 3840, DMA32 1044480 - 8192 = 1036288, Normal 0x8000 = 32768.
    """
    t = Topology(memory=[Region(MiB, 5 * GiB, node=0)], reserved=[Region(16 * MiB, 48 * MiB)])
    m = machine_class(t, policy="v4.17")
    m.boot()
    assert m.first_deferred_pfn(0) == 0x108000
    assert m.zone(0, "DMA").free_pages == 3840
    assert m.zone(0, "DMA32").free_pages == 1036288
    assert m.zone(0, "Normal").free_pages == 32768
    return t, m

"""pgdefer.sources.x86: the placement rules the sources share, on hand-worked cases."""

from pgdefer import Topology
from pgdefer.sources.x86 import GiB, KiB, MemblockPlacer, MiB, clamped_zone_limit, reserve_low_memory

BLOCK = 4 * MiB  # MAX_ORDER block of the x86_64 geometry (1024 pages of 4 KiB)


def test_clamped_zone_limit():
    # a 3 GiB machine prints DMA32 up to 3 GiB, the end of memory: the model's limit is the architectural 4 GiB
    assert clamped_zone_limit(3 * GiB, 3 * GiB, 4 * GiB, 16 * MiB, BLOCK) == 4 * GiB
    # DMA32 of an 8 GiB machine ends at 4 GiB, before memory does: not clamped, the printed end is the limit
    assert clamped_zone_limit(4 * GiB, 8 * GiB, 4 * GiB, 16 * MiB, BLOCK) is None
    # memory ending inside DMA at 10 MiB + 1 page: the architectural 16 MiB wins over the rounded end (12 MiB)
    assert clamped_zone_limit(10 * MiB + 4 * KiB, 10 * MiB + 4 * KiB, 16 * MiB, 0, BLOCK) == 16 * MiB


def test_reserve_low_memory_by_kernel_version():
    t = Topology([(0x1000, 64 * MiB)])
    new = MemblockPlacer([(r.start, r.end, r.node) for r in t.memory])
    r = reserve_low_memory(new, (5, 13))
    assert (r.label, r.start, r.end) == ("first 1 MiB", 0, 1 * MiB)
    old = MemblockPlacer([(0x1000, 64 * MiB, 0)])
    r = reserve_low_memory(old, (4, 19, 0))
    assert (r.label, r.start, r.end) == ("low 64 KiB", 0, 64 * KiB)
    # top-down: a 1 MiB block lands at the top of memory, [63 MiB, 64 MiB)
    assert new.alloc("x", 1 * MiB).start == 63 * MiB

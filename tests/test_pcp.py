"""Per-CPU page lists (docs/model.md §5.3) in the Rust core and the oracle, on cases worked by hand from the
kernel's rules (mm/page_alloc.c: zone_batchsize, rmqueue_bulk, free_unref_page_commit, nr_pcp_free,
free_pcppages_bulk, __free_one_page's buddy_merge_likely); the figures in the comments are derived there, not
read from a run."""

import pytest

import pgdefer
from pgdefer import Machine, OutOfMemory, PhaseError, Region, Topology
from pgdefer.oracle import OracleMachine
from test_alloc import machines

MiB, GiB = 1 << 20, 1 << 30
UNMOVABLE, MOVABLE = 0, 1


def unmovable_lists(m, order):
    return m.free_list(0, "Normal", order, "Unmovable")


@pytest.mark.parametrize("policy, x", [("v4.17", 0x107C00), ("v5.10", 0x100400)])
def test_refill_takes_a_batch_and_drain_merges_it_back(policy, x):
    """machines(): Normal [0x100000, 0x110000), 0x100000 reserved, fdp 0x108000: managed = 0x8000 - 1 = 32767.
    zone_batchsize: 32767 / 1024 = 31 (under both caps, 128 and 256 pages), / 4 = 7, rounddown_pow_of_two(7 + 3) -
    1 = 7. high: 6 * 7 = 42 (4.17), 4 * 7 = 28 (5.14 rules, v5.10). x = the head of the MOVABLE order-10 list
    (the last block released before 5.10, the first from 5.10).

    First UNMOVABLE page: the list is empty, rmqueue_bulk takes 7 blocks of order 0 (5.14: batch >> 0 = 7):
    the steal converts x's block and splits it (x+512 ... x+2, x+1 to the UNMOVABLE lists); then x, x+1; x+2
    (split: x+3 left); x+3; x+4 (split: x+6 o1, x+5); x+5; x+6 (split: x+7 left). Each goes to the tail of the
    pcp list: [x, ..., x+6]; the caller gets the head, x, and 6 stay (NR_FREE_PAGES = 32767 - 7).

    drain_all_pages: the 6 go back from the list's tail, x+6 first (4.17: lists 1 and 2 are empty, so
    batch_free becomes the count; 5.14: list 0 from the start). x+6 merges with x+7 -> (x+6, 1); its parent's
    buddy x is allocated -> head of order 1. x+5: buddy x+4 is on the pcp list, no merge; parent's buddy x+6 is
    a free order-1 head -> tail of order 0. x+4: merges with x+5 and (x+6, 1) -> (x+4, 2); parent's buddy x+8 is
    a free order-3 head -> tail. x+3: no merge, parent's buddy x allocated -> head. x+2: merges with x+3 ->
    (x+2, 1); parent's buddy x+4 (order 2) free -> tail. x+1: buddy x allocated; parent's buddy x+2 (order 1)
    free -> tail. So order 0 [x+1], order 1 [x+2], order 2 [x+4], order 3 [x+8].

    Freeing x puts it on the pcp list (count 1 < high); a second drain merges it with x+1, x+2, x+4, ...,
    x+512 back into the order-10 block x, on the UNMOVABLE list (the pcp list's type; its pageblocks stay
    UNMOVABLE)."""
    for m in machines(policy):
        m.setup_per_cpu_pageset()
        p = m.pcp(0, "Normal")
        assert (p["batch"], p["high"], p["count"]) == (7, 42 if policy == "v4.17" else 28, 0)
        assert m.alloc_pages(0) == x
        p = m.pcp(0, "Normal")
        assert p["count"] == 6 and p["lists"][0][UNMOVABLE] == [x + i for i in range(1, 7)]
        assert m.zone(0, "Normal").free_pages == 32767 - 7
        assert m.drain_all_pages() == 6
        assert [unmovable_lists(m, k) for k in range(4)] == [[x + 1], [x + 2], [x + 4], [x + 8]]
        assert m.zone(0, "Normal").free_pages == 32767 - 1
        m.free_pages(x)
        assert m.pcp(0, "Normal")["lists"][0][UNMOVABLE] == [x] and m.zone(0, "Normal").free_pages == 32767 - 1
        assert m.drain_all_pages() == 1
        assert unmovable_lists(m, 10) == [x] and all(unmovable_lists(m, k) == [] for k in range(10))
        assert m.zone(0, "Normal").free_pages == 32767
        m.check()


def small_zone():
    """[4 GiB, 4 GiB + 128 MiB) with [4 GiB + 16 MiB, 4 GiB + 128 MiB) reserved: Normal has 4096 free pages, all
    released at boot (the cut needs k > 32768 pages), as the order-10 blocks 0x100000, 0x100400, 0x100800,
    0x100c00. zone_batchsize: 4096 / 1024 = 4, / 4 = 1, rounddown_pow_of_two(1) - 1 = 0 -> batch max(1, 0) = 1;
    high 6 * 0 = 0 (4.17: the pageset passes everything through) or 4 * 1 = 4 (5.14 rules)."""
    return Topology(memory=[Region(4 * GiB, 4 * GiB + 128 * MiB)],
                    reserved=[Region(4 * GiB + 16 * MiB, 4 * GiB + 128 * MiB)])


def test_free_drains_when_count_reaches_high_doubling_each_time():
    """v5.10 (5.14 rules) on small_zone(): batch 1, high 4. Five MOVABLE pages come one refill (of 1) each from
    __rmqueue_smallest: 0x100000 (split: 0x100200 o9 ... 0x100001 o0), 0x100001, 0x100002 (split: 0x100003),
    0x100003, 0x100004 (split: 0x100006 o1, 0x100005). Freed in that order, each to the head of the pcp list.
    The 4th free makes count 4 >= high: nr_pcp_free gives clamp(1 << free_factor 0, 1, 4 - 1) = 1 (free_factor
    -> 1): the tail, 0x100000, goes back (buddy 0x100001 is on the pcp list; its parent's buddy 0x100002 too,
    so to the head of order 0). The 5th free: count 4 again, clamp(1 << 1, 1, 3) = 2 (free_factor -> 2):
    0x100001 merges with 0x100000 -> (0x100000, 1), parent's buddy 0x100004 is on the pcp list -> head of order
    1; 0x100002 (buddy 0x100003 on the list) has the free order-1 0x100000 as its parent's buddy -> tail of
    order 0. Left on the list: [0x100004, 0x100003]; the next MOVABLE page is its head, 0x100004."""
    for m in (Machine(small_zone(), policy="v5.10"), OracleMachine(small_zone(), "v5.10")):
        m.boot()
        m.setup_per_cpu_pageset()
        assert {k: m.pcp(0, "Normal")[k] for k in ("batch", "high")} == {"batch": 1, "high": 4}
        pfns = [m.alloc_pages(0, migratetype="Movable") for _ in range(5)]
        assert pfns == [0x100000 + i for i in range(5)]
        for pfn in pfns:
            m.free_pages(pfn)
        assert m.pcp(0, "Normal")["lists"][0][MOVABLE] == [0x100004, 0x100003]
        assert m.free_list(0, "Normal", 0, "Movable") == [0x100005, 0x100002]
        assert m.free_list(0, "Normal", 1, "Movable") == [0x100000, 0x100006]
        assert m.zone(0, "Normal").free_pages == 4096 - 2
        assert m.alloc_pages(0, migratetype="Movable") == 0x100004
        m.check()


def test_pcp_pages_are_not_free_pages_and_the_allocator_drains_before_it_gives_up():
    """v5.10 on small_zone() with one order-0 page left on the pcp list and the buddy lists empty: the
    watermark (NR_FREE_PAGES >= 1) fails, nothing can grow (nothing deferred), DMA32/DMA do not exist, so the
    zonelist is exhausted; the slow path's drain_all_pages returns the page and the retry gets it (an UNMOVABLE
    request: it steals the page's pageblock, 1 free + 511 alike >= 256). All 4096 pages are allocated (MOVABLE,
    batch 1: one refill each), the last one is freed again (count 1 < high 4: it stays). With the pcp list empty
    too the next request is OutOfMemory."""
    for m in (Machine(small_zone(), policy="v5.10"), OracleMachine(small_zone(), "v5.10")):
        m.boot()
        m.setup_per_cpu_pageset()
        pfns = [m.alloc_pages(0, migratetype="Movable") for _ in range(4096)]
        assert m.zone(0, "Normal").free_pages == 0 and m.pcp(0, "Normal")["count"] == 0
        m.free_pages(pfns[-1])
        assert m.zone(0, "Normal").free_pages == 0 and m.pcp(0, "Normal")["count"] == 1
        m.check()
        assert m.alloc_pages(0, migratetype="Unmovable") == pfns[-1]
        with pytest.raises(OutOfMemory):
            m.alloc_pages(0)
        m.check()


def test_setup_per_cpu_pageset_is_once_and_late_init_does_it_and_4_17_updates_after_the_passes():
    """The boot pageset until setup_per_cpu_pageset (batch 1, high 0); a second call is a PhaseError;
    page_alloc_init_late sets the pagesets up itself when nobody did. v4.17 (zone_pcp_update after the passes):
    machines()' Normal then has managed 0x10000 - 1 = 65535: 65535 / 1024 = 63 (under the 128-page cap), / 4 = 15,
    rounddown_pow_of_two(22) - 1 = 15, high 90. v5.10 keeps what setup computed before the pass: 7 / 28."""
    for policy, after in (("v4.17", (15, 90)), ("v5.10", (7, 28))):
        for m in machines(policy):
            assert (m.pcp(0, "Normal")["batch"], m.pcp(0, "Normal")["high"]) == (1, 0)
            m.setup_per_cpu_pageset()
            with pytest.raises(PhaseError, match="twice"):
                m.setup_per_cpu_pageset()
            m.page_alloc_init_late()
            assert (m.pcp(0, "Normal")["batch"], m.pcp(0, "Normal")["high"]) == after, policy
            m.check()
    for m in machines("v5.10"):
        m.page_alloc_init_late()
        assert (m.pcp(0, "Normal")["batch"], m.pcp(0, "Normal")["high"]) == (7, 28)


def test_pcp_rules_are_a_policy_fact():
    facts = {p: f["pcp"] for p, f in pgdefer.POLICY_FACTS.items()}
    assert facts["v4.17"] == facts["v5.8"] == "v4.17"
    assert facts["v5.10"] == facts["v6.11"] == "v5.14"

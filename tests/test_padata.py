"""padata inside the per-node passes (5.8+): the threaded mode reaches the deterministic mode's end state,
the deterministic mode's chunks are the oracle's, and node_cpus / host_threads are validated."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgdefer import Geometry, Machine, Region, Topology, _core
from pgdefer.testing import topologies

PAGE = 4096
SMALL = dict(section_size="256K", max_order=4, pageblock_order=3)  # 64-page sections
#: Every generation whose pass runs padata jobs, from the core's policy table (new ones join by themselves).
PADATA = [p for p in _core.POLICIES if _core.POLICY_FACTS[p]["padata_jobs"] != "none"]


def two_nodes():
    """Node 0 [1 MiB, 24 MiB) with a hole [8 MiB, 9 MiB); node 1 [24 MiB, 64 MiB) with a reserved block.
    64-page (256 KiB) sections: the deferred Normal parts span dozens of sections per node, so each node's
    free ranges become padata jobs of several chunks."""
    MiB = 1 << 20
    return Topology(memory=[Region(MiB, 8 * MiB, node=0), Region(9 * MiB, 24 * MiB, node=0),
                            Region(24 * MiB, 64 * MiB, node=1)],
                    reserved=[Region(40 * MiB, 40 * MiB + 20 * PAGE)],
                    geometry=Geometry(**SMALL), zone_limits={"DMA": 2 * MiB, "DMA32": 4 * MiB})


def end_state(m):
    """What does not depend on the schedule: per-page state/zone/init count/init_by/node/order, and per
    zone the free page count and nr_free per order. Free-list order (the links) may differ and is not
    compared."""
    pages = m.pages
    state = {"flags": pages.flags.tolist(), "node": pages.node.tolist(), "order": pages.order_raw.tolist(),
             "init_by": pages.init_by.tolist()}
    zones = {(z.node, z.name): (z.free_pages, tuple(z.nr_free), z.managed) for z in m.zones()}
    return state, zones, {n: m.first_deferred_pfn(n) for n in m.nodes}


def chunks(m):
    return [(e["node"], e["start"], e["end"], e["worker"]) for e in m.events if e["kind"] == "padata_chunk"]


@pytest.mark.parametrize("policy", PADATA)
def test_threaded_and_deterministic_reach_the_same_end_state(policy):
    cpus = {0: 4, 1: 3}
    det = Machine(two_nodes(), policy=policy, node_cpus=cpus)
    det.boot()
    det.page_alloc_init_late(threads=False)
    det.check()
    want = end_state(det)
    assert (det.pages.init_count == 1).all()
    for run in range(5):
        thr = Machine(two_nodes(), policy=policy, node_cpus=cpus, host_threads=2)
        thr.boot()
        thr.page_alloc_init_late(threads=True)
        thr.check()
        assert end_state(thr) == want, f"run {run}"
        # The same chunks, whichever worker ran them, and every worker's number within max_threads.
        assert sorted(c[:3] for c in chunks(thr)) == sorted(c[:3] for c in chunks(det))
        assert all(w < cpus[n] for n, _, _, w in chunks(thr))


def test_hand_derived_chunks_of_one_job():
    """Node 1 is [24 MiB, 64 MiB) = pfns [0x1800, 0x4000), 64-page sections, 3 CPUs.

    Its deferred part starts at the first section boundary after one section of Normal (LIMIT = one
    section, spec §2.3): Normal starts at 4 MiB (pfn 0x400) on node 0, so node 1's zone is all Normal and
    first_deferred_pfn = 0x1800 + 64 = 0x1840. The free ranges of node 1 from there: [0x1840, 0x2800) and
    [0x2814, 0x4000) (the 20 reserved pages at 40 MiB = pfn 0x2800). Job 1 = [0x1840, 0x2800) (end
    already section aligned): size 0xfc0 = 4032 = 63 sections; nworks = min(63, 3) = 3; chunk =
    round_up(max(4032 // 12, 64), 64) = round_up(336, 64) = 384 pages = 0x180. Chunk ends are multiples of
    0x180: 0x1980, 0x1b00, ..., 0x2700, then the job end 0x2800. The first: [0x1840, 0x1980) worker 0,
    then [0x1980, 0x1b00) worker 1, [0x1b00, 0x1c80) worker 2, [0x1c80, 0x1e00) worker 0 again."""
    m = Machine(two_nodes(), policy="v5.8", node_cpus={0: 4, 1: 3})
    m.boot()
    assert m.first_deferred_pfn(1) == 0x1840
    m.page_alloc_init_late(threads=False)
    node1 = [c for c in chunks(m) if c[0] == 1]
    job1 = [c for c in node1 if c[2] <= 0x2800]
    assert job1[:4] == [(1, 0x1840, 0x1980, 0), (1, 0x1980, 0x1B00, 1), (1, 0x1B00, 0x1C80, 2),
                        (1, 0x1C80, 0x1E00, 0)]
    assert [c[2] for c in job1] == list(range(0x1980, 0x2800, 0x180)) + [0x2800]
    # Several workers took chunks on both nodes, and each node's chunk events precede its deferred_init.
    assert {c[3] for c in chunks(m) if c[0] == 0} == {0, 1, 2, 3}
    assert {c[3] for c in node1} == {0, 1, 2}
    kinds = [(e["kind"], e.get("node")) for e in m.events]
    for n in (0, 1):
        assert max(i for i, k in enumerate(kinds) if k == ("padata_chunk", n)) < kinds.index(("deferred_init", n))


def test_one_cpu_runs_each_job_inline():
    """max_threads = max(cpus, 1) = 1 for a CPU-less node: every job is one chunk by worker 0."""
    m = Machine(two_nodes(), policy="v5.8", node_cpus={0: 0})
    m.boot()
    m.page_alloc_init_late()
    assert chunks(m) and all(w == 0 for *_, w in chunks(m))
    m.check()


def test_node_workers_and_helper_cpus():
    m = Machine(two_nodes(), policy="v4.17", cpus=2, node_cpus={0: 4, 1: 0})
    # CPUs 0, 1 run workloads; 2, 3 are the pgdatinit CPUs; node 0's helpers 1..3 are 4, 5, 6.
    assert m.node_workers() == {0: {"cpus": 4, "max_threads": 4, "helper_cpus": [4, 5, 6]},
                                1: {"cpus": 0, "max_threads": 1, "helper_cpus": []}}
    m.boot()
    with pytest.raises(ValueError, match="cpu 6 is a padata helper CPU: allocations run on the workload CPUs 0..1"):
        m.alloc_pages(0, cpu=6)
    m.raise_irq(6, 0)  # an interrupt may arrive on any CPU, a helper's too
    with pytest.raises(ValueError, match="padata helpers"):
        m.raise_irq(7, 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(node_cpus={5: 2}), "node 5 has no memory"),
    (dict(node_cpus={0: -1}), r"0\.\.=?4096"),
    (dict(node_cpus={0: 5000}), r"0\.\.=?4096"),
    (dict(node_cpus=[4, 4]), "must map node ids"),
    (dict(host_threads=0), r"host_threads must be in 1\.\.=?4096"),
])
def test_bad_node_cpus_and_host_threads(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Machine(two_nodes(), policy="v4.17", **kwargs)


def test_policy_table_says_which_generations_use_padata():
    assert _core.POLICY_FACTS["v5.8"]["padata_jobs"] == "per_free_range"
    assert _core.POLICY_FACTS["v5.8"]["claims_node"] and _core.POLICY_FACTS["v5.8"]["defer_count"] == "memory_pfns"
    for older in ("v4.17", "v5.2", "v5.7"):
        assert _core.POLICY_FACTS[older]["padata_jobs"] == "none"


EXAMPLES = int(os.environ.get("PGDEFER_PADATA_EXAMPLES", "40"))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_threaded_matches_deterministic_on_generated_machines(data):
    """Generated topologies and CPUs per node: the threaded passes (3 host threads, so helpers really run
    concurrently with each other and with the other nodes' passes) reach the deterministic end state, with
    the same chunks; every page initialised exactly once."""
    topo = data.draw(topologies(), label="topology")
    cpus = data.draw(st.fixed_dictionaries({n: st.integers(0, 6) for n in topo.nodes}), label="node_cpus")
    policy = data.draw(st.sampled_from(PADATA), label="policy")
    det = Machine(topo, policy=policy, node_cpus=cpus)
    det.boot()
    det.page_alloc_init_late(threads=False)
    thr = Machine(topo, policy=policy, node_cpus=cpus, host_threads=3)
    thr.boot()
    thr.page_alloc_init_late(threads=True)
    thr.check()
    assert (thr.pages.init_count == 1).all()
    assert end_state(thr) == end_state(det)
    assert sorted(c[:3] for c in chunks(thr)) == sorted(c[:3] for c in chunks(det))


@pytest.mark.parametrize("threads", [True, False])
def test_a_failing_chunk_fails_the_worker_and_stops_the_other_helpers(threads):
    """fail_pass=(1, 1000): node 1's chunk function stops before its MAX_ORDER step would pass 1000 pages
    (docs/model.md §10). padata hands out no further chunk; the pass is WorkerFailed, nothing is initialised
    twice and node 1 initialised fewer pages than its deferred 0x1840..0x4000 (about 9.6 thousand)."""
    import pgdefer
    m = Machine(two_nodes(), policy="v5.8", node_cpus={0: 4, 1: 3}, host_threads=2, fail_pass=(1, 1000))
    m.boot()
    with pytest.raises(pgdefer.WorkerFailed) as e:
        m.page_alloc_init_late(threads=threads)
    assert e.value.node == 1
    assert m.phase == "failed"
    assert m.pages.init_count.max() == 1
    node1_pass = [c for c in chunks(m) if c[0] == 1]
    # Chunks of 0x180 pages: 1000 pages need 3 chunks; with 2 host threads at most one more was taken.
    assert 1 <= len(node1_pass) <= 4


def test_hand_derived_one_job_per_zone_rework_2025():
    """rework-2025 (spec §5.12): one padata job for the whole remaining zone. Node 1 as in the v5.8 case:
    first_deferred_pfn 0x1840, zone end 0x4000 (section aligned). Job [0x1840, 0x4000): size 0x27c0 =
    10176 = 159 sections; nworks = min(159, 3) = 3; chunk = round_up(max(10176 // 12, 64), 64) =
    round_up(848, 64) = 896 = 0x380. The first chunk ends at the first multiple of 0x380 above 0x1840,
    7 * 0x380 = 0x1880; then every 0x380 up to 18 * 0x380 = 0x3f00, and the job end 0x4000: 13 chunks,
    workers 0, 1, 2, 0, ... The 20 reserved pages at 0x2800 lie inside chunk [0x2680, 0x2a00), which the
    2025 chunk function walks by free ranges (they stay reserved). Under v5.8 the same node has two jobs
    instead, split at the reserved block (the other test)."""
    m = Machine(two_nodes(), policy="rework-2025", node_cpus={0: 4, 1: 3})
    m.boot()
    assert m.first_deferred_pfn(1) == 0x1840
    m.page_alloc_init_late(threads=False)
    node1 = [c for c in chunks(m) if c[0] == 1]
    ends = [7 * 0x380 + k * 0x380 for k in range(12)] + [0x4000]
    assert [c[2] for c in node1] == ends
    assert node1[0] == (1, 0x1840, 0x1880, 0)
    assert node1[-1] == (1, 0x3F00, 0x4000, 0)
    assert [c[3] for c in node1] == [k % 3 for k in range(13)]
    assert all(node1[k][2] == node1[k + 1][1] for k in range(12))
    assert (m.pages.window(0x2800, 0x2800 + 20).state == list(_core.PAGE_STATES).index("reserved")).all()
    m.check()
    assert (m.pages.init_count == 1).all()

"""pgdefer.analysis: the plain data the pictures draw, on hand-made inputs (expected figures worked by hand).

boot_regions, allocated_runs and boot_schedule are also checked against the page array and the events of real
boots in test_plot.py."""

from types import SimpleNamespace

from pgdefer.analysis import grow_calls, region_pages, working_passes


def test_region_pages_sums_each_kind_and_counts_grows():
    info = {"span": (0, 100), "zones": [], "deferred_zone": "Normal",
            "regions": [("hole", 0, 1, 0), ("reserved", 1, 5, 0), ("early", 5, 20, 0), ("grow", 20, 28, 1),
                        ("reserved", 28, 30, 0), ("grow", 30, 32, 1), ("grow", 32, 40, 2), ("uninit", 40, 100, 0)]}
    # early 15, grow 8 + 2 + 8 = 18 in two calls (steps 1 and 2), reserved 4 + 2, hole 1, uninit 60, no pass
    assert region_pages(info) == {"early": 15, "grow": 18, "pass": 0, "uninit": 60, "reserved": 6, "hole": 1,
                                  "grows": 2}
    assert region_pages({"regions": []})["grows"] == 0


def test_grow_calls_and_working_passes_keep_only_events_that_did_work():
    events = [{"kind": "early_init", "node": 0, "pages": 10},
              {"kind": "grow", "node": 0, "pages": 512},
              {"kind": "grow", "node": 1, "pages": 0},          # a grow that found nothing to do
              {"kind": "deferred_init", "node": 0, "pages": 0},  # a pass with nothing left
              {"kind": "deferred_init", "node": 1, "pages": 7},
              {"kind": "grow", "node": 1, "pages": 3}]
    m = SimpleNamespace(events=events)
    assert grow_calls(m) == [events[1], events[5]]
    assert working_passes(m) == [events[4]]

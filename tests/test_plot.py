"""Pictures: pgdefer boot --plot writes a real image; the regions a memory map draws agree with the page array
and the events; the functions return figures with titles, labels and legends; matplotlib missing is a clear
error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pgdefer import Machine, presets
from pgdefer.machine import ALLOCATED, UNINIT
from pgdefer.testing import run_cli
from pgdefer.workload import default_workload, replay

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def machines():
    """The default machine under v4.17, once stopped in the on-demand window and once booted to the end."""
    topo = presets.get("default")
    window = Machine(topo, "v4.17")
    window.boot()
    replay(window, default_workload(window.nodes))
    done = Machine(topo, "v4.17")
    done.boot()
    replay(done, default_workload(done.nodes))
    done.page_alloc_init_late()
    return window, done


def _check_png(path, min_w=800, min_h=400):
    import matplotlib.image as mpimg

    raw = path.read_bytes()
    assert raw[:8] == PNG_MAGIC
    img = mpimg.imread(str(path))
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h, (w, h)
    rgb = (np.asarray(img)[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    colours = np.unique(rgb // 16, axis=0)          # quantised, so anti-aliasing does not count
    assert len(colours) >= 8, len(colours)
    not_white = (rgb < 240).any(axis=1).mean()
    assert not_white > 0.05, not_white              # not a blank page
    # the figure's data colours are there: early (blue), per-node pass (green), grow (orange)
    for colour in ("#0072B2", "#009E73", "#E69F00"):
        c = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(rgb.astype(int) - c).sum(axis=1) < 12).sum() > 200, colour
    return w, h


def test_boot_plot_writes_a_png(tmp_path, capsys):
    out = tmp_path / "boot.png"
    code, text, err = run_cli(["boot", "-q", "--plot", str(out)], capsys)
    assert code == 0, err
    assert f"wrote {out}" in text
    _check_png(out)


def test_save_boot_figure_png_and_svg(machines, tmp_path):
    from pgdefer.plot import save_boot_figure

    _, done = machines
    png = tmp_path / "b.png"
    save_boot_figure(done, png, pass_threads=4)
    _check_png(png)
    svg = tmp_path / "b.svg"
    save_boot_figure(done, svg)
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()[:1000]


def test_boot_regions_agree_with_events_and_page_array(machines):
    from pgdefer.plot import boot_regions

    window, done = machines
    for m in (window, done):
        regions = boot_regions(m)
        grow_events = [e for e in m.events if e["kind"] == "grow"]
        for nid, info in regions.items():
            ns, ne = info["span"]
            rs = info["regions"]
            # regions are disjoint and inside the node
            for (_, _, e1, _), (_, s2, _, _) in zip(rs, rs[1:]):
                assert e1 <= s2
            assert all(ns <= s < e <= ne for _, s, e, _ in rs)
            size = {}
            for kind, s, e, step in rs:
                size[(kind, step)] = size.get((kind, step), 0) + e - s
            # grow k covers exactly the pages the k-th grow of this node reported
            node_grows = [e["pages"] for e in grow_events if e["node"] == nid and e["pages"]]
            assert [size[("grow", k + 1)] for k in range(len(node_grows))] == node_grows
            # early: the event counts every memory pfn initialised early (reserved ones included)
            early_ev = next(e for e in m.events if e["kind"] == "early_init" and e["node"] == nid)
            assert size.get(("early", 0), 0) <= early_ev["pages"]
            passes = [e for e in m.events if e["kind"] == "deferred_init" and e["node"] == nid]
            if passes:
                assert size.get(("pass", 0), 0) == passes[0]["pages"]
                assert ("uninit", 0) not in size
        # "uninit" regions are exactly the UNINIT pages of the page array
        uninit_regions = sum(e - s for info in regions.values() for k, s, e, _ in info["regions"] if k == "uninit")
        assert uninit_regions == int((m.pages.state == UNINIT).sum())
    assert any(k == "uninit" for info in boot_regions(window).values() for k, *_ in info["regions"])


def test_boot_regions_agree_with_the_core_s_init_by(machines):
    """The picture's regions, derived from events, against what the core recorded per page."""
    from pgdefer.machine import INIT_BY
    from pgdefer.plot import boot_regions

    code = {name: i for i, name in enumerate(INIT_BY)}
    want = {"early": {code["early"]}, "grow": {code["grow"]}, "pass": {code["pass"]}, "hole": {code["hole"]},
            "uninit": {code["none"]}, "reserved": {code["early"], code["memblock_free_all"]}}
    for m in machines:
        by, index = m.pages.init_by, m.pages.index
        for info in boot_regions(m).values():
            for kind, s, e, _ in info["regions"]:
                got = set(np.unique(by[index(s):index(s) + e - s]).tolist())
                assert got <= want[kind], (kind, hex(s), hex(e), got)


def test_allocated_runs_match_the_page_array(machines):
    from pgdefer.plot import allocated_runs

    window, _ = machines
    runs = allocated_runs(window, max_chunk=1 << 16)     # small chunks: runs crossing chunk edges are joined
    assert sum(e - s for s, e in runs) == int((window.pages.state == ALLOCATED).sum())
    assert sum(e - s for s, e in runs) == window.stats["alloc_pages"]
    assert all(a[1] < b[0] for a, b in zip(runs, runs[1:]))


def test_figures_are_labelled(machines):
    from matplotlib.figure import Figure

    from pgdefer.plot import memory_map, timeline

    window, done = machines
    fig = memory_map(done)
    assert isinstance(fig, Figure)
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "memory map" in texts.lower()
    axes = fig.get_axes()
    assert len(axes) >= len(done.nodes)
    assert all("physical address" in ax.get_xlabel() for ax in axes)
    assert any(ax.get_title(loc="left").startswith("node 0:") for ax in axes)
    assert fig.legends and len(fig.legends[0].get_texts()) >= 5
    # node 1's early prefix is a sliver of the node: it gets a zoom panel
    assert any(ax.get_title(loc="left").startswith("zoom") for ax in axes)

    fig = timeline(done, pass_threads=1)
    axes = fig.get_axes()
    assert all("modelled time" in ax.get_xlabel() for ax in axes)
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == ["boot CPU", *[f"node {n} pass" for n in done.nodes]][::-1] or \
        set(labels) == {"boot CPU", *[f"node {n} pass" for n in done.nodes]}
    assert "not host time" in " ".join(t.get_text() for t in fig.texts)
    # memblock_free_all is a bar of its modelled duration on the boot CPU, not an instant
    from matplotlib.colors import to_rgba

    from pgdefer.analysis import boot_schedule
    from pgdefer.plot import MFA_COLOUR

    (mfa,) = [b for b in boot_schedule(done)["boot_cpu"] if b["what"] == "memblock_free_all"]
    bars = [c for c in axes[0].collections if tuple(c.get_facecolor()[0]) == to_rgba(MFA_COLOUR)]
    assert len(bars) == 1 and mfa["ms"] > 0
    (x0, _), (x1, _) = bars[0].get_paths()[0].get_extents().get_points()
    assert (x0, x1) == pytest.approx((mfa["start"], mfa["start"] + mfa["ms"]))
    assert any(t.get_text() == "memblock_free_all" for t in fig.legends[0].get_texts())
    # stopped in the window: no pass panel, the uninitialised part has a legend entry
    fig = memory_map(window)
    assert any("uninitialised" in t.get_text() for t in fig.legends[0].get_texts())
    assert len(timeline(window).get_axes()) == 1


def test_missing_matplotlib_is_a_clear_error(monkeypatch, tmp_path, capsys):
    from pgdefer import plot

    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib -> ImportError
    with pytest.raises(plot.PlotUnavailable, match=r"pip install 'pgdefer\[plot\]'"):
        plot.require_matplotlib()
    assert isinstance(plot.PlotUnavailable("x"), ImportError)
    code, out, err = run_cli(["boot", "--plot", str(tmp_path / "x.png")], capsys)
    assert code != 0 and out == ""                 # refused before simulating anything
    assert err.count("\n") == 1 and err.startswith("pgdefer: error: ") and "pgdefer[plot]" in err

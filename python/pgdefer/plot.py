"""Pictures of a simulated boot (matplotlib, imported lazily: ``pip install 'pgdefer[plot]'``).

* :func:`memory_map` - the physical memory map of each node: zones, holes, reserved memory, which pages were
  initialised early, by each ``deferred_grow_zone`` call and by the per-node pass (or are still uninitialised),
  and where the early allocations landed. Nodes whose interesting part is a sliver of a big node get a zoom.
* :func:`timeline` - the boot in **modelled** time (cost model, spec §9.3): early init on the boot CPU,
  memblock_free_all (the Memory: line), the grows of the on-demand window, the per-node passes of
  page_alloc_init_late and the static key going off.
* :func:`save_boot_figure` - both in one file (``pgdefer boot --plot FILE.png``), written by :func:`save_figure`
  (the Agg backend), which every plot command writes through.

The functions return :class:`matplotlib.figure.Figure` objects built without pyplot, so they work headless
and in notebooks alike. What they draw is computed in :mod:`pgdefer.analysis` (plain data, no matplotlib);
:func:`boot_regions`, :func:`allocated_runs` and :func:`boot_schedule` are importable from here too.
"""

from __future__ import annotations

from ._core import POLICY_FACTS
from .analysis import allocated_runs, boot_regions, boot_schedule, grow_calls, region_pages, working_passes  # noqa: F401 - also pgdefer.plot's API
from .config import ZONE_NAMES, human_size
from .costmodel import DEFAULT_COST, CostModel
from .errors import PgdeferError

INSTALL_HINT = "pip install 'pgdefer[plot]'"


class PlotUnavailable(PgdeferError, ImportError):
    """matplotlib is not installed (it is the optional ``plot`` extra)."""


def require_matplotlib():
    """Import matplotlib (for files: the Agg backend) or raise :class:`PlotUnavailable` saying how to install it."""
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401
    except ImportError as e:
        raise PlotUnavailable(f"plotting needs matplotlib, which is not installed ({e}); "
                              f"install it with: {INSTALL_HINT}") from None
    return matplotlib


# --------------------------------------------------------------------------------------------------
# colours of the region kinds of pgdefer.analysis.boot_regions
# --------------------------------------------------------------------------------------------------

#: kind -> (legend label, face colour, hatch). Okabe-Ito colours (colour-blind safe).
KINDS = {
    "early": ("initialised early (memmap_init, boot CPU)", "#0072B2", None),
    "grow": ("initialised on demand by deferred_grow_zone (one shade per call)", "#E69F00", None),
    "pass": ("initialised by the per-node pass (page_alloc_init_late)", "#009E73", None),
    "uninit": ("still uninitialised (deferred)", "#FFFFFF", "////"),
    "reserved": ("memblock reserved (kernel, memmap, firmware, ...)", "#4D4D4D", None),
    "hole": ("hole: struct page but no memory (reserved)", "#BDBDBD", "...."),
}
GROW_SHADES = ("#E69F00", "#F7C873")
ALLOCATED = ("allocated by the early allocations (state at the end of the run)", "#CC79A7")
ZONE_COLOURS = dict(zip(ZONE_NAMES, ("#D6E6F5", "#DCEFD8", "#FFF1C9", "#F3DCE8")))  # by zone index


# --------------------------------------------------------------------------------------------------
# memory map
# --------------------------------------------------------------------------------------------------

def _unit(span_bytes):
    if span_bytes >= 4 << 30:
        return "GiB", 1 << 30
    if span_bytes >= 4 << 20:
        return "MiB", 1 << 20
    return "KiB", 1 << 10


def _fmt_count(n):
    if n >= 10_000_000:
        return f"{n / 1e6:.0f}M"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    return str(n)


def _zoom_window(info, page_size):
    """[start, end) pfns of the part of the node where early init and grows happened, or None if the whole node
    is readable anyway."""
    ns, ne = info["span"]
    last = ns
    for kind, _, e, _ in info["regions"]:
        if kind in ("early", "grow"):
            last = max(last, e)
    # include the first pass/uninit stretch after the last grow so the hand-over is visible
    span = ne - ns
    if span <= 0:
        return None
    width = last - ns
    if width / span > 0.15:
        return None
    margin = max(width // 4, (64 << 20) // page_size)
    return ns, min(ne, last + margin)


def _draw_zones(ax, info, lo, hi, x):
    """The zones strip (top) of one node's memory map, for pfns [lo, hi); ``x`` maps a pfn to the axis."""
    for name, zs, ze in info["zones"]:
        a, b = max(zs, lo), min(ze, hi)
        if b <= a:
            continue
        ax.broken_barh([(x(a), x(b) - x(a))], (2.15, 0.7), facecolors=ZONE_COLOURS.get(name, "#EEEEEE"),
                       edgecolors="#777777", linewidth=0.6)
        if (b - a) / (hi - lo) > 0.04:
            deferred = " (deferred zone)" if name == info["deferred_zone"] and (b - a) / (hi - lo) > 0.2 else ""
            ax.text((x(a) + x(b)) / 2, 2.5, name + deferred, ha="center", va="center", fontsize=8, clip_on=True)


def _mark_grows(ax, info, lo, hi, x, annotate, grow_marks):
    """Label wide grow regions "g1", "g2", ... and/or put a marker where each grow starts."""
    if annotate:
        for kind, s, e, step in info["regions"]:
            if kind == "grow":
                a, b = max(s, lo), min(e, hi)
                if b > a and (b - a) / (hi - lo) > 0.035:
                    ax.text((x(a) + x(b)) / 2, 1.5, f"g{step}", ha="center", va="center", fontsize=7,
                            color="black", clip_on=True)
    if grow_marks:
        starts = {}
        for kind, s, _, step in info["regions"]:
            if kind == "grow" and lo <= s < hi:
                starts.setdefault(step, s)
        if starts:
            ax.plot([x(s) for s in starts.values()], [1.98] * len(starts), marker="v", linestyle="none",
                    color="#B36B00", markersize=5, clip_on=False)


def _draw_node(ax, info, allocated, lo, hi, page_size, label_y=True, annotate=True, grow_marks=False):
    unit, div = _unit((hi - lo) * page_size)
    if lo * page_size >= 64 << 30:  # far up the address space: GiB with decimals beats 6-digit MiB ticks
        unit, div = "GiB", 1 << 30
    x = lambda pfn: pfn * page_size / div  # noqa: E731
    _draw_zones(ax, info, lo, hi, x)
    # struct pages (middle strip)
    by_kind = {}
    for kind, s, e, step in info["regions"]:
        a, b = max(s, lo), min(e, hi)
        if b <= a:
            continue
        colour = GROW_SHADES[(step - 1) % len(GROW_SHADES)] if kind == "grow" else KINDS[kind][1]
        by_kind.setdefault((kind, colour), []).append((x(a), x(b) - x(a)))
    for (kind, colour), bars in by_kind.items():
        hatch = KINDS[kind][2]
        ax.broken_barh(bars, (1.1, 0.8), facecolors=colour, edgecolors="#888888" if hatch else colour,
                       linewidth=0.3 if hatch else 0.0, hatch=hatch)
    ax.broken_barh([(x(lo), x(hi) - x(lo))], (1.1, 0.8), facecolors="none", edgecolors="#555555", linewidth=0.6)
    _mark_grows(ax, info, lo, hi, x, annotate, grow_marks)
    # allocated (bottom strip)
    bars = [(x(max(s, lo)), x(min(e, hi)) - x(max(s, lo))) for s, e in allocated if min(e, hi) > max(s, lo)]
    if bars:
        ax.broken_barh(bars, (0.15, 0.7), facecolors=ALLOCATED[1], edgecolors=ALLOCATED[1], linewidth=0.6)
    ax.broken_barh([(x(lo), x(hi) - x(lo))], (0.15, 0.7), facecolors="none", edgecolors="#BBBBBB", linewidth=0.5)
    ax.set_xlim(x(lo), x(hi))
    ax.set_ylim(0, 3)
    ax.set_yticks([0.5, 1.5, 2.5])
    ax.set_yticklabels(["allocated", "struct pages", "zones"] if label_y else ["", "", ""], fontsize=8)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(f"physical address ({unit})", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return unit


def _legend_handles(include_uninit, include_pass, include_grow, include_hole):
    from matplotlib.patches import Patch

    handles = []
    for kind, (label, colour, hatch) in KINDS.items():
        if (kind == "uninit" and not include_uninit) or (kind == "pass" and not include_pass) or \
                (kind == "grow" and not include_grow) or (kind == "hole" and not include_hole):
            continue
        handles.append(Patch(facecolor=colour, edgecolor="#888888", hatch=hatch, label=label))
    handles.append(Patch(facecolor=ALLOCATED[1], edgecolor=ALLOCATED[1], label=ALLOCATED[0]))
    handles.append(Patch(facecolor="white", edgecolor="#555555", label="blank: no struct page (absent section)"))
    return handles


def _title(machine):
    name = machine.topology.name or "machine"
    return f"{name}, policy {machine.policy}, phase {machine.phase}"


MAP_TOP, MAP_LEGEND = 0.75, 0.8          # inches: suptitle + subtitle; legend
MAP_TITLE, MAP_AX, MAP_XLABEL = 0.5, 0.85, 0.45


def _map_height(n_nodes):
    return MAP_TOP + n_nodes * (MAP_TITLE + MAP_AX + MAP_XLABEL) + MAP_LEGEND


def _draw_memory_map(fig, machine, height, max_nodes=24):
    """Draw into ``fig`` (a Figure or SubFigure) that is ``height`` inches tall."""
    regions = boot_regions(machine)
    allocated = allocated_runs(machine)
    page_size = machine.geometry.page_size
    nodes = list(regions)[:max_nodes]
    zooms = {n: _zoom_window(regions[n], page_size) for n in nodes}
    any_zoom = any(z is not None for z in zooms.values())
    kinds_seen = {k for info in regions.values() for k, *_ in info["regions"]}
    left, right, gap = 0.075, 0.985, 0.02
    split = left + (right - left) * 0.6 if any_zoom else right
    pitch = MAP_TITLE + MAP_AX + MAP_XLABEL
    for row, nid in enumerate(nodes):
        info = regions[nid]
        ns, ne = info["span"]
        zoom = zooms[nid]
        ax_top = height - MAP_TOP - row * pitch - MAP_TITLE
        bottom = (ax_top - MAP_AX) / height
        ax = fig.add_axes([left, bottom, (split - gap / 2 if zoom else right) - left, MAP_AX / height])
        _draw_node(ax, info, allocated, ns, ne, page_size, grow_marks=True, annotate=zoom is None)
        counts = region_pages(info)
        ngrows = counts["grows"]
        parts = [f"early {_fmt_count(counts['early'])}"]
        if ngrows:
            parts.append(f"{ngrows} grow(s) {_fmt_count(counts['grow'])}")
        if counts["pass"]:
            parts.append(f"per-node pass {_fmt_count(counts['pass'])}")
        if counts["uninit"]:
            parts.append(f"uninitialised {_fmt_count(counts['uninit'])}")
        parts.append(f"reserved {_fmt_count(counts['reserved'])}")
        ax.set_title(f"node {nid}: {human_size((ne - ns) * page_size)} spanned (pfn {ns:#x}-{ne:#x}), "
                     f"deferred zone {info['deferred_zone']}\n"
                     "pages: " + ", ".join(parts), fontsize=9, loc="left")
        if zoom:
            zl, zh = zoom
            az = fig.add_axes([split + gap / 2, bottom, right - split - gap / 2, MAP_AX / height])
            _draw_node(az, info, allocated, zl, zh, page_size, label_y=False, annotate=True)
            what = "early prefix and grows" if ngrows else "early prefix"
            az.set_title(f"zoom on the dashed box: the first {human_size((zh - zl) * page_size)} of node {nid}\n"
                         f"({what}, to scale)", fontsize=9, loc="left")
            div = 1 << 30 if ns * page_size >= 64 << 30 else _unit((ne - ns) * page_size)[1]
            ax.axvspan(zl * page_size / div, zh * page_size / div, ymin=0.02, ymax=0.98, facecolor="none",
                       edgecolor="#D55E00", linewidth=1.0, linestyle="--")
    handles = _legend_handles("uninit" in kinds_seen, "pass" in kinds_seen, "grow" in kinds_seen,
                              "hole" in kinds_seen)
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.05 / height))
    fig.text(0.01, 1 - 0.12 / height, f"Physical memory map per node — {_title(machine)}", fontsize=12,
             ha="left", va="top")
    grows = len(grow_calls(machine))
    more = f"; only the first {max_nodes} of {len(regions)} nodes are drawn" if len(regions) > max_nodes else ""
    marks = (f"▼ marks each deferred_grow_zone call ({grows} in all)." if grows else
             "No deferred_grow_zone call" + (" (this policy has no on-demand growth)."
                                             if not POLICY_FACTS[machine.policy]["grows"] else "."))
    fig.text(0.01, 1 - 0.45 / height, "How each struct page was initialised, by physical address. "
             f"{marks} Page counts are in {human_size(page_size).replace('.0 ', ' ')} pages{more}.",
             fontsize=8.5, ha="left", va="top")


def memory_map(machine, max_nodes: int = 24):
    """The physical memory map of each node (zones, holes, reserved, early / grown / per-node-pass pages,
    allocated pages), one row per node, with a zoom on the early part where it is a sliver of the node."""
    require_matplotlib()
    from matplotlib.figure import Figure

    h = _map_height(min(len(machine.nodes), max_nodes))
    fig = Figure(figsize=(15, h))
    _draw_memory_map(fig, machine, h, max_nodes)
    return fig


# --------------------------------------------------------------------------------------------------
# timeline
# --------------------------------------------------------------------------------------------------

#: memblock_free_all on the boot CPU (a bar of its modelled duration, between early init and the grows)
MFA_COLOUR = "#6A3D9A"
TL_TOP, TL_TRACK, TL_BOTTOM = 1.15, 0.5, 1.05    # inches: titles; per track; x label + legend


def _timeline_height(n_tracks):
    return TL_TOP + TL_TRACK * max(n_tracks, 2) + TL_BOTTOM


def _draw_timeline(fig, machine, cost, pass_threads, height, max_tracks=24):
    """Draw into ``fig`` (a Figure or SubFigure) that is ``height`` inches tall."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    sch = boot_schedule(machine, cost, pass_threads)
    ran = bool(sch["passes"])
    passes = [p for p in sch["passes"] if p["pages"]][:max_tracks]
    tracks = ["boot CPU"] + [f"node {p['node']} pass" for p in passes]
    y = {name: len(tracks) - 1 - i for i, name in enumerate(tracks)}
    has_pass = bool(passes)
    left, right, gap = 0.075, 0.985, 0.015
    split = left + (right - left) * 0.4 if has_pass else right
    ax_bottom = TL_BOTTOM / height
    ax_h = TL_TRACK * max(len(tracks), 2) / height
    ax1 = fig.add_axes([left, ax_bottom, split - gap / 2 - left if has_pass else right - left, ax_h])
    # --- boot CPU panel: early init, memblock_free_all, grows
    w_end = max(sch["window_end"], 1e-3)
    early_colours = ("#0072B2", "#56B4E9")
    yb = y["boot CPU"]
    for i, b in enumerate(sch["boot_cpu"]):
        frac = b["ms"] / w_end
        if b["what"] == "memblock_free_all":
            ax1.broken_barh([(b["start"], b["ms"])], (yb - 0.32, 0.64), facecolors=MFA_COLOUR)
            if frac > 0.04:
                ax1.text(b["start"] + b["ms"] / 2, yb, "memblock_free_all" + (
                         f": {_fmt_count(b['pages'])} pages freed, {b['ms']:.1f} ms" if frac > 0.25 else ""),
                         ha="center", va="center", fontsize=7.5, color="white", clip_on=True)
            continue
        ax1.broken_barh([(b["start"], b["ms"])], (yb - 0.32, 0.64), facecolors=early_colours[i % 2])
        if frac > 0.25:
            ax1.text(b["start"] + b["ms"] / 2, yb, f"early init node {b['node']}: {_fmt_count(b['pages'])} pages, "
                     f"{b['ms']:.1f} ms", ha="center", va="center", fontsize=7.5, color="white", clip_on=True)
        elif frac > 0.04:
            ax1.text(b["start"] + b["ms"] / 2, yb, f"n{b['node']}", ha="center", va="center", fontsize=7,
                     color="white", clip_on=True)
    gr = sch["grows"]
    for i, gw in enumerate(gr):
        ax1.broken_barh([(gw["start"], gw["ms"])], (yb - 0.32, 0.64),
                        facecolors=GROW_SHADES[i % 2], edgecolors="#B36B00", linewidth=0.3)
    if gr:
        g0 = gr[0]["start"]
        gms = sum(g["ms"] for g in gr)
        ax1.annotate(f"{len(gr)} deferred_grow_zone call(s): +{_fmt_count(sum(g['pages'] for g in gr))} pages, "
                     f"{gms:.2f} ms", xy=(g0 + gms / 2, yb - 0.32), xytext=(0.98, 0.5 if len(tracks) > 1 else 0.22),
                     textcoords="axes fraction", fontsize=7.5, ha="right", va="center",
                     arrowprops=dict(arrowstyle="->", color="#B36B00", lw=0.8))
    if sch["mem_init_at"] is not None:
        ax1.axvline(sch["mem_init_at"], color="#4D4D4D", linestyle=":", linewidth=1.2)
    ax1.set_xlim(0, w_end * 1.02)
    ax1.set_xlabel("modelled time (ms, cost model)", fontsize=8)
    ax1.set_title("boot CPU: early init → memblock_free_all → on-demand grows", fontsize=9, loc="left")
    ax1.set_ylim(-0.6 if len(tracks) > 1 else -1.4, len(tracks) - 0.4)
    ax1.set_yticks([y[t] for t in tracks])
    ax1.set_yticklabels(tracks, fontsize=8)
    ax1.tick_params(axis="x", labelsize=8)
    ax1.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax1.grid(axis="x", color="#EEEEEE")
    ax1.set_axisbelow(True)
    # --- page_alloc_init_late panel
    if has_pass:
        ax2 = fig.add_axes([split + gap / 2, ax_bottom, right - split - gap / 2, ax_h], sharey=ax1)
        p_end = max(sch["end"], sch["window_end"] + 1e-3)
        span = p_end - sch["window_end"]
        for p in passes:
            yy = y[f"node {p['node']} pass"]
            ax2.broken_barh([(p["start"], max(p["ms"], 0))], (yy - 0.32, 0.64), facecolors=KINDS["pass"][1])
            label = f"{_fmt_count(p['pages'])} pages, {p['ms']:.0f} ms modelled (host {p['host_ms']:.0f} ms)"
            inside = p["ms"] / span > 0.6
            ax2.text(p["start"] + (p["ms"] / 2 if inside else p["ms"] + span * 0.01), yy, label,
                     ha="center" if inside else "left", va="center", fontsize=7.5,
                     color="white" if inside else "black", clip_on=True)
        if sch["key_off"] is not None:
            ax2.axvline(sch["key_off"], color="#D55E00", linestyle="--", linewidth=1.4)
        ax2.set_xlim(sch["window_end"] - span * 0.01, sch["window_end"] + span * 1.03)
        ax2.set_xlabel("modelled time (ms, cost model) — a different scale from the left panel", fontsize=8)
        threads = f"{pass_threads} threads per node" if pass_threads > 1 else "one thread per node"
        ax2.set_title(f"page_alloc_init_late: per-node deferred_init_memmap passes ({threads})", fontsize=9,
                      loc="left")
        ax2.tick_params(axis="y", labelleft=False, length=0)
        ax2.tick_params(axis="x", labelsize=8)
        ax2.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax2.grid(axis="x", color="#EEEEEE")
        ax2.set_axisbelow(True)
    handles = [Patch(facecolor=early_colours[0], label="early init (memmap_init), node by node"),
               Patch(facecolor=MFA_COLOUR, label="memblock_free_all"),
               Line2D([], [], color="#4D4D4D", linestyle=":", label="the Memory: line")]
    if gr:
        handles.append(Patch(facecolor=GROW_SHADES[0], edgecolor="#B36B00", label="deferred_grow_zone"))
    if has_pass:
        handles.append(Patch(facecolor=KINDS["pass"][1], label="per-node pass"))
    if sch["key_off"] is not None:
        handles.append(Line2D([], [], color="#D55E00", linestyle="--", label="static key deferred_pages off"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.02 / height))
    fig.text(0.01, 1 - 0.12 / height, f"Boot timeline in modelled time — {_title(machine)}", fontsize=12,
             ha="left", va="top")
    total = (f"All struct pages are initialised at {sch['end']:.0f} ms." if has_pass else
             "page_alloc_init_late ran, but nothing was deferred: no per-node pass had work." if ran else
             "page_alloc_init_late was not run.")
    more = f" Only the first {max_tracks} of {len(sch['passes'])} node passes are drawn." \
        if len(sch["passes"]) > max_tracks else ""
    fig.text(0.01, 1 - 0.45 / height,
             f"Modelled time from the cost model ({sch['cost_model']}), not host time. {total}{more}\n"
             "The rest of the on-demand window (the allocations themselves, smp_init, ...) is not modelled: the "
             "passes are drawn as starting right after the last grow.",
             fontsize=8.5, ha="left", va="top", linespacing=1.4)


def timeline(machine, cost: CostModel = DEFAULT_COST, pass_threads: int = 1, max_tracks: int = 24):
    """The boot timeline in modelled time: early init, memblock_free_all, grows, per-node passes, key off."""
    require_matplotlib()
    from matplotlib.figure import Figure

    n = min(len(working_passes(machine)), max_tracks)
    h = _timeline_height(n + 1)
    fig = Figure(figsize=(15, h))
    _draw_timeline(fig, machine, cost, pass_threads, h, max_tracks)
    return fig


# --------------------------------------------------------------------------------------------------
# both, to a file
# --------------------------------------------------------------------------------------------------

def boot_figure(machine, cost: CostModel = DEFAULT_COST, pass_threads: int = 1, max_nodes: int = 24):
    """The memory map (top) and the timeline (bottom) in one figure."""
    require_matplotlib()
    from matplotlib.figure import Figure

    h_map = _map_height(min(len(machine.nodes), max_nodes))
    npass = min(len(working_passes(machine)), max_nodes)
    h_tl = _timeline_height(npass + 1)
    fig = Figure(figsize=(15, h_map + h_tl))
    top, bottom = fig.subfigures(2, 1, height_ratios=[h_map, h_tl])
    _draw_memory_map(top, machine, h_map, max_nodes)
    _draw_timeline(bottom, machine, cost, pass_threads, h_tl, max_nodes)
    return fig


def save_figure(fig, path, dpi: int = 100):
    """Write a matplotlib Figure to ``path`` (PNG, SVG or PDF by suffix) on white with the Agg backend, whatever
    the interactive backend; returns the path. A path that cannot be written is a
    :class:`~pgdefer.errors.PgdeferError` naming it. Every ``--plot`` of the command line writes through here."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    try:
        fig.savefig(path, dpi=dpi, facecolor="white")
    except OSError as e:
        raise PgdeferError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def save_boot_figure(machine, path, cost: CostModel = DEFAULT_COST, pass_threads: int = 1, dpi: int = 100):
    """Write :func:`boot_figure` to ``path`` with :func:`save_figure`; returns the path."""
    require_matplotlib()
    return save_figure(boot_figure(machine, cost, pass_threads), path, dpi)


# --------------------------------------------------------------------------------------------------
# sweeps (the figure itself lives with the sweep table it reads: pgdefer.sweep)
# --------------------------------------------------------------------------------------------------

def sweep_figure(df, x="memory_bytes", y="mem_available_kib", hue="policy", ax=None):
    """A sweep table's ``y`` against ``x``, one line per ``hue`` value: :func:`pgdefer.sweep.sweep_figure`."""
    from .sweep import sweep_figure as figure

    return figure(df, x=x, y=y, hue=hue, ax=ax)

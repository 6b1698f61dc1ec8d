"""``pgdefer calibrate``: fit the cost model's free constants on the published measurements (spec §6).

The anchors (``costdata/anchors.json``, each with its source) are modelled as single per-node passes of the
published page count and thread count on the anchor's machine class, with the measured kernel's per-page work
(two-pass or MAX_ORDER walk, pageblock or MAX_ORDER frees). The fit is a damped Gauss-Newton
(Levenberg-Marquardt) least squares on log(predicted / published), in log-parameter space, with weak log-normal
priors that keep constants physical and decide the ones no anchor constrains. Leave-one-out: refit without an
anchor, predict it.

Free constants: per machine class ``thread_gbps``; shared ``hot_touch``, ``cold_touch``, ``pfn_check_ns``,
``free_call_ns``, ``pass_overhead_ms``, ``thread_start_us``, ``thread_start_vm_us``, ``smt_gain``,
``bw_efficiency``, ``kasan_ns_per_page`` (:data:`PRIORS`). The boot logs of :data:`HELD_OUT_LOGS` are never
fitted on. docs/costmodel.md holds the table this module generates (:func:`markdown_table`).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np

from .config import Geometry
from .costmodel import CostModel, CostModelError, Mechanics, _load, machine_class, pass_plan

#: log-normal priors: (centre, sigma in natural-log units). Physical orders of magnitude, not anchor figures:
#: a cache-hot re-touch costs a fraction of a DRAM touch, a cold one (prefetched) about half; a memset call and
#: per-pfn checks ten-odd ns; a buddy free call a few hundred ns; a pass a few ms
#: of kthread start and binding; a kworker start on bare metal tens of us (within a factor 2: left loose, the fit
#: would buy the HR330's unexplained 32-thread time with millisecond kthread starts); a struct page stream half
#: the DRAM peak; KASAN
#: hundreds of ns per page (shadow poisoning); 3-5 GB/s per thread (fidelity review §5).
PRIORS = {"hot_touch": (0.3, 1.0), "cold_touch": (0.5, 1.0), "pfn_check_ns": (10.0, 1.5),
          "free_call_ns": (200.0, 1.0), "pass_overhead_ms": (2.0, 1.0), "thread_start_us": (50.0, 0.7),
          "thread_start_vm_us": (50.0, 2.0), "smt_gain": (0.2, 1.0), "bw_efficiency": (0.5, 0.7),
          "kasan_ns_per_page": (300.0, 2.0)}
THREAD_PRIOR = (4.0, 1.0)
#: the spread of a good prediction in log units (10 %): data residuals are divided by it
DATA_SIGMA = 0.1
GLOBALS = tuple(PRIORS)


#: Boot logs predicted, never fitted on (issue 11, acceptance 2): an anchor taken from one of them is refused.
HELD_OUT_LOGS = ("supermicro-h13dsg-epyc9004-2node-1536g.log",)


@cache
def _anchors() -> tuple:
    rows = _load("anchors.json")["anchors"]
    for a in rows:
        held = [log for log in HELD_OUT_LOGS if log in a["source"] or log.removesuffix(".log") in a["source"]]
        if held:
            raise CostModelError(f"anchor {a['id']} comes from {held[0]}, which is held out of the calibration")
    return tuple(rows)


def anchors() -> list:
    """The published measurements of ``costdata/anchors.json`` (each with its source and note)."""
    return list(_anchors())


def _mechanics(a) -> Mechanics:
    # the per-page overhead Duyck's series removed (memset zeroing, per-pfn checks) is the 4.15-5.1 two-pass
    # walk's; an anchor measured between his patches says "pfn_checks": false
    return Mechanics(generation=a["kernel"], hot_second_touch=a["walk"] != "two_pass", free_order=a["frees"],
                     pfn_checks=a["walk"] == "two_pass" and a.get("pfn_checks", True),
                     padata=a["threads"] > 1, irqs_off=a["quantity"] == "printed")


def anchor_mechanics(anchor_id: str):
    """The measured kernel's pass of a published anchor ("P3", "M9", ...), or None if it is not an anchor."""
    a = next((a for a in anchors() if a["anchor"] == anchor_id and a["quantity"] == "ms" and not a["kasan"]), None)
    return _mechanics(a) if a is not None else None


def _geometry(page_size):
    # 4 KiB: x86_64/arm64 4K, the core's default geometry (pageblock 9, MAX_ORDER 10, 128 MiB sections); ppc64
    # 64 KiB: orders 8, 16 MiB sections
    g = Geometry()
    return (g.pages_per_section, g.pageblock_order, g.max_order) if page_size == g.page_size else (256, 8, 8)


@cache
def _structure(anchor_id: str) -> tuple:
    """(machine class without a fitted rate, pass plan) of an anchor: what no fitted constant changes."""
    a = next(a for a in anchors() if a["id"] == anchor_id)
    mc = machine_class(a["machine_class"], {"thread_gbps": {}, "default_thread_gbps": 1.0})
    pps, pbo, mo = _geometry(mc.page_size)
    return mc, pass_plan([(0, a["pages"])], a["threads"], _mechanics(a), pps, pbo, mo)


def predict(a: dict, params: dict) -> float:
    """The model's figure for anchor ``a`` with constants ``params`` (globals + ``rate:CLASS``; a class without
    one takes ``default_rate``, else the prior's centre)."""
    if a["quantity"] == "ratio":   # after / before of two generations with the same per-page work (P11)
        return 1.0
    mc, plan = _structure(a["id"])
    rate = params.get("rate:" + mc.name, params.get("default_rate", THREAD_PRIOR[0]))
    cost = CostModel(replace(mc, thread_gbps=rate), {k: params[k] for k in GLOBALS}, kasan=a["kasan"])
    pc = cost.plan_cost(plan, a["nodes_per_socket"])
    return pc.printed_ms if a["quantity"] == "printed" else pc.ms


def _names(fit_anchors):
    classes = sorted({a["machine_class"] for a in fit_anchors})
    return list(GLOBALS) + ["rate:" + c for c in classes]


def _prior(name):
    return THREAD_PRIOR if name.startswith("rate:") else PRIORS[name]


def _data_residuals(p, fit_anchors):
    return np.array([math.log(predict(a, p) / a["published_ms"]) / DATA_SIGMA for a in fit_anchors])


def _prior_residuals(x, names):
    return np.array([(xi - math.log(_prior(n)[0])) / _prior(n)[1] for xi, n in zip(x, names)])


def fit(fit_anchors, start: dict | None = None, iterations: int = 60) -> dict:
    """Levenberg-Marquardt on the log residuals (data and priors); returns {name: value}.

    The Jacobian is by forward differences, per column over only the anchors that parameter touches (a class's
    rate moves its own anchors), which keeps a fit well under a second."""
    names = _names(fit_anchors)
    touches = [list(range(len(fit_anchors))) if not n.startswith("rate:") else
               [i for i, a in enumerate(fit_anchors) if a["machine_class"] == n[5:]] for n in names]
    x = np.array([math.log((start or {}).get(n, _prior(n)[0])) for n in names])

    def residuals(x):
        try:
            data = _data_residuals(dict(zip(names, np.exp(x))), fit_anchors)
        except CostModelError:        # a trial step outside the model's domain (cold_touch < hot_touch): reject it
            data = np.full(len(fit_anchors), 1e6)
        return np.concatenate((data, _prior_residuals(x, names)))

    r = residuals(x)
    nd = len(fit_anchors)
    lam, h = 1e-2, 1e-5
    for _ in range(iterations):
        J = np.zeros((len(r), len(x)))
        for j, rows in enumerate(touches):
            xh = x.copy()
            xh[j] += h
            try:
                moved = _data_residuals(dict(zip(names, np.exp(xh))), [fit_anchors[i] for i in rows])
            except CostModelError:    # on the domain's edge (cold_touch = hot_touch): no slope that way
                moved = r[rows]
            J[rows, j] = (moved - r[rows]) / h
            J[nd + j, j] = 1 / _prior(names[j])[1]
        g, A = J.T @ r, J.T @ J
        improved, done = False, False
        for _ in range(12):
            xn = x + np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-9), -g)
            rn = residuals(xn)
            if rn @ rn < r @ r:
                done = (r @ r - rn @ rn) < 1e-10 * (1 + r @ r)
                x, r, lam, improved = xn, rn, max(lam / 3, 1e-9), True
                break
            lam *= 4
        if not improved or done:
            break
    return dict(zip(names, (float(v) for v in np.exp(x))))


def calibrate(loo: bool = True, progress=None) -> dict:
    """Fit on every usable anchor; per anchor: published, fitted prediction, error, leave-one-out."""
    rows_in = anchors()
    usable = [a for a in rows_in if a["fit"]]
    params = fit(usable)
    rows = []
    for i, a in enumerate(rows_in):
        pred = predict(a, params)
        row = {"id": a["id"], "anchor": a["anchor"], "machine_class": a["machine_class"], "kernel": a["kernel"],
               "threads": a["threads"], "pages": a["pages"], "quantity": a["quantity"], "published": a["published_ms"],
               "fitted": pred, "error_pct": 100 * (pred / a["published_ms"] - 1), "in_fit": a["fit"],
               "loo": None, "loo_error_pct": None, "loo_class_unseen": None, "note": a["note"], "source": a["source"]}
        if loo and a["fit"]:
            if progress:
                progress(f"leave-one-out {i + 1}/{len(rows_in)}: {a['id']}")
            others = [b for b in usable if b is not a]
            p2 = fit(others, start=params)
            p2["default_rate"] = default_rate(p2)     # a class the refit has not seen: as a user would get it
            row["loo_class_unseen"] = not any(b["machine_class"] == a["machine_class"] for b in others)
            row["loo"] = predict(a, p2)
            row["loo_error_pct"] = 100 * (row["loo"] / a["published_ms"] - 1)
        rows.append(row)
    return {"params": params, "rows": rows, "fitted_file": fitted_document(params, usable)}


def default_rate(params: dict) -> float:
    """The per-thread rate of a class without anchors: the geometric mean of the fitted classes' rates."""
    rates = [v for k, v in params.items() if k.startswith("rate:")]
    return float(math.exp(sum(math.log(v) for v in rates) / len(rates)))


def fitted_document(params: dict, usable) -> dict:
    rates = {k[5:]: v for k, v in params.items() if k.startswith("rate:")}
    default = default_rate(params)
    return {
        "_doc": "Written by `pgdefer calibrate --write` (pgdefer.calibration); do not edit by hand. thread_gbps: "
                "per-thread memmap rate per machine class fitted on its anchors; default_thread_gbps (the geometric "
                "mean of the fitted classes) is used by classes without anchors.",
        "constants": {k: round(params[k], 6) for k in GLOBALS},
        "thread_gbps": {k: round(v, 6) for k, v in sorted(rates.items())},
        "default_thread_gbps": round(default, 6),
        "fit": {"anchors": [a["id"] for a in usable], "data_sigma": DATA_SIGMA,
                "priors": {k: list(v) for k, v in PRIORS.items()}, "thread_prior": list(THREAD_PRIOR)},
    }


def fitted_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("pgdefer.costdata").joinpath("fitted.json")))


IN_SAMPLE_PCT, LOO_PCT = 15.0, 25.0     # issue 11, acceptance 1


def bounds_summary(result: dict) -> str:
    """How many fitted anchors are within the in-sample and the leave-one-out bound."""
    fitted = [r for r in result["rows"] if r["in_fit"]]
    ins = sum(1 for r in fitted if abs(r["error_pct"]) <= IN_SAMPLE_PCT)
    loo = sum(1 for r in fitted if r["loo_error_pct"] is not None and abs(r["loo_error_pct"]) <= LOO_PCT)
    return (f"{len(fitted)} anchors fitted, {len(result['rows']) - len(fitted)} predicted only; in-sample within "
            f"{IN_SAMPLE_PCT:g} %: {ins} of {len(fitted)}; leave-one-out within {LOO_PCT:g} %: {loo} of {len(fitted)}")


def format_table(result: dict) -> str:
    def f(v):
        return "-" if v is None else (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}")

    def pct(v):
        return "-" if v is None else f"{v:+.1f}%"

    head = f"{'anchor':<16}{'class':<21}{'thr':>4}{'published':>11}{'fitted':>11}{'error':>9}{'LOO':>11}{'LOO err':>9}"
    out = ["cost-model calibration on the published measurements of spec section 6 (ms unless noted)", "", head]
    notes = []
    for r in result["rows"]:
        flag = ""
        if r["note"]:
            notes.append(f"  {r['id']}: {r['note']}")
            flag = " *"
        if not r["in_fit"]:
            flag += " (not fitted: " + r["quantity"] + ")"
        elif r["loo_class_unseen"]:
            flag += " (LOO: class unseen)"
        out.append(f"{r['id']:<16}{r['machine_class']:<21}{r['threads']:>4}{f(r['published']):>11}{f(r['fitted']):>11}"
                   f"{pct(r['error_pct']):>9}{f(r['loo']):>11}{pct(r['loo_error_pct']):>9}{flag}")
    out += ["", bounds_summary(result), "", "fitted constants:"]
    doc = result["fitted_file"]
    out += [f"  {k} = {v:g}" for k, v in doc["constants"].items()]
    out += [f"  thread_gbps[{k}] = {v:.3f}" for k, v in doc["thread_gbps"].items()]
    out += [f"  default_thread_gbps = {doc['default_thread_gbps']:.3f} (classes without anchors)"]
    if notes:
        out += ["", "notes (* above):"] + notes
    return "\n".join(out)


#: the markers of the generated calibration table in docs/costmodel.md
DOC_BEGIN = ("<!-- calibration table: generated by `pgdefer calibrate --doc docs/costmodel.md` "
             "(pgdefer.calibration.markdown_table); tests/test_costmodel.py checks it -->")
DOC_END = "<!-- end of the calibration table -->"


def within(row) -> bool:
    """Whether a fitted anchor meets acceptance 1: in-sample within 15 % and leave-one-out within 25 %."""
    return (row["in_fit"] and abs(row["error_pct"]) <= IN_SAMPLE_PCT
            and row["loo_error_pct"] is not None and abs(row["loo_error_pct"]) <= LOO_PCT)


def markdown_table(result: dict) -> str:
    """The calibration table of docs/costmodel.md: per anchor the published figure, the fitted prediction and
    the leave-one-out prediction with their errors, and the anchor's note."""
    def ms(v):
        return "–" if v is None else f"{v:.3g}" if abs(v) < 10 else f"{v:.0f}"

    def pct(v):
        return "–" if v is None else f"{v:+.1f} %"

    out = ["| anchor | class | threads | published | fitted | error | leave-one-out | error | note |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        mark = "" if within(r) else " ✗"
        unit = "" if r["quantity"] == "ms" else f" ({r['quantity']})"
        out.append(f"| {r['id']}{mark} | {r['machine_class']} | {r['threads']} | {ms(r['published'])}{unit} | "
                   f"{ms(r['fitted'])} | {pct(r['error_pct'])} | {ms(r['loo'])} | {pct(r['loo_error_pct'])} | "
                   f"{r['note']} |")
    out += ["", bounds_summary(result) + ". ✗: outside a bound or not fitted (its note says why).", "",
            "| constant | fitted |", "|---|---|"]
    doc = result["fitted_file"]
    out += [f"| `{k}` | {v:.4g} |" for k, v in doc["constants"].items()]
    out += [f"| `thread_gbps[{k}]` | {v:.4g} |" for k, v in doc["thread_gbps"].items()]
    out += [f"| `default_thread_gbps` (classes without anchors) | {doc['default_thread_gbps']:.4g} |"]
    return "\n".join(out)


def doc_with_table(text: str, table: str) -> str:
    """``text`` (docs/costmodel.md) with the block between the markers replaced by ``table``."""
    if DOC_BEGIN not in text or DOC_END not in text:
        raise CostModelError("the document has no calibration-table markers")
    head, rest = text.split(DOC_BEGIN, 1)
    return head + DOC_BEGIN + "\n" + table + "\n" + DOC_END + rest.split(DOC_END, 1)[1]


def cmd_calibrate(args) -> int:
    def progress(msg):
        if not args.quiet and sys.stderr.isatty():
            print(f"\r{msg:<60}", end="", file=sys.stderr, flush=True)

    doc = None
    if args.doc:     # checked before the fit: a bad --doc fails at once, and nothing is half-written
        if args.no_loo:
            raise CostModelError("--doc needs the leave-one-out column: drop --no-loo")
        try:
            doc = Path(args.doc).read_text()
        except OSError as e:
            raise CostModelError(f"--doc {args.doc}: {e.strerror or e}") from None
        doc_with_table(doc, "")
    result = calibrate(loo=not args.no_loo, progress=progress)
    if not args.quiet and sys.stderr.isatty():
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    if args.json:
        print(json.dumps({k: v for k, v in result.items()}, indent=2))
    else:
        print(format_table(result))
    if args.write or args.output:
        path = Path(args.output) if args.output else fitted_path()
        path.write_text(json.dumps(result["fitted_file"], indent=1) + "\n")
        print(f"\nwrote {path}", file=sys.stderr)
    if doc is not None:
        try:
            Path(args.doc).write_text(doc_with_table(doc, markdown_table(result)))
        except OSError as e:
            raise CostModelError(f"--doc {args.doc}: {e.strerror or e}") from None
        print(f"wrote the calibration table into {args.doc}", file=sys.stderr)
    return 0


def add_parser(sub, formatter_class=None):
    """Register ``pgdefer calibrate`` (the one-line hook in cli.build_parser)."""
    p = sub.add_parser("calibrate", help="fit the cost model on the published measurements and print its errors",
                       description="Fit the cost model's free constants on the published deferred-init\n"
                                   "measurements (spec section 6) and print, per anchor, the published figure,\n"
                                   "the fitted prediction, its error and the leave-one-out error (refit without\n"
                                   "the anchor, predict it; about 15 seconds, --no-loo skips it).",
                       epilog="examples:\n  pgdefer calibrate\n  pgdefer calibrate --no-loo --json\n"
                              "  pgdefer calibrate --write          (update the package's fitted.json)",
                       formatter_class=formatter_class)
    p.add_argument("--write", action="store_true", help="write the fitted constants to the package's fitted.json")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write the fitted constants to this file instead (implies --write)")
    p.add_argument("--no-loo", action="store_true", help="skip the leave-one-out refits (faster)")
    p.add_argument("--doc", metavar="FILE",
                   help="rewrite the calibration table between the markers of FILE (docs/costmodel.md)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_calibrate)
    return p

"""``pgdefer calibrate``: fit the cost model's free constants on the published measurements (spec §6).

The anchors (``costdata/anchors.json``, each with its source) are modelled as single per-node passes of the
published page count and thread count on the anchor's machine class, with the measured kernel's per-page work
(two-pass or MAX_ORDER walk, pageblock or MAX_ORDER frees). The fit is a damped Gauss-Newton
(Levenberg-Marquardt) least squares on log(predicted / published), in log-parameter space, with weak log-normal
priors that keep constants physical and decide the ones no anchor constrains. Leave-one-out: refit without an
anchor, predict it.

Free constants: per machine class ``thread_gbps``; shared ``hot_touch``, ``pfn_check_ns``, ``free_call_ns``,
``pass_overhead_ms``, ``thread_start_us``, ``bw_efficiency``, ``kasan_ns_per_page``.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from .costmodel import CostModel, Mechanics, _load, machine_class

#: log-normal priors: (centre, sigma in natural-log units). Physical orders of magnitude, not anchor figures:
#: a cache-hot re-touch costs a fraction of a DRAM touch; a per-pfn
#: section-table check a few ns; a buddy free call a few hundred ns; a pass a few ms
#: of kthread start and binding; a kworker start tens of us; a struct page stream half the DRAM peak; KASAN
#: hundreds of ns per page (shadow poisoning); 3-5 GB/s per thread (fidelity review §5).
PRIORS = {"hot_touch": (0.3, 1.0), "pfn_check_ns": (5.0, 1.5), "free_call_ns": (200.0, 1.0),
          "pass_overhead_ms": (2.0, 1.0), "thread_start_us": (50.0, 1.5), "thread_start_vm_us": (50.0, 2.0),
          "bw_efficiency": (0.5, 0.7), "kasan_ns_per_page": (300.0, 2.0)}
THREAD_PRIOR = (4.0, 1.0)
#: the spread of a good prediction in log units (10 %): data residuals are divided by it
DATA_SIGMA = 0.1
GLOBALS = tuple(PRIORS)


def anchors() -> list:
    return _load("anchors.json")["anchors"]


def _mechanics(a) -> Mechanics:
    return Mechanics(generation=a["kernel"], hot_second_touch=a["walk"] != "two_pass", free_order=a["frees"],
                     pfn_checks=a["walk"] != "max_order",
                     padata=a["threads"] > 1, irqs_off=a["quantity"] == "printed")


def anchor_mechanics(anchor_id: str):
    """The measured kernel's pass of a published anchor ("P3", "M9", ...), or None if it is not an anchor."""
    a = next((a for a in anchors() if a["anchor"] == anchor_id and a["quantity"] == "ms" and not a["kasan"]), None)
    return _mechanics(a) if a is not None else None


def _geometry(page_size):
    # 4 KiB: x86_64/arm64 4K (pageblock 9, MAX_ORDER 10, 128 MiB sections); ppc64 64 KiB: orders 8, 16 MiB sections
    return (32768, 9, 10) if page_size == 4096 else (256, 8, 8)


def predict(a: dict, params: dict) -> float:
    """The model's figure for anchor ``a`` with constants ``params`` (globals + ``rate:CLASS``)."""
    mc = machine_class(a["machine_class"], {"thread_gbps": {}, "default_thread_gbps": 1.0})
    mc = replace(mc, thread_gbps=params.get("rate:" + mc.name, THREAD_PRIOR[0]))
    cost = CostModel(mc, {k: params[k] for k in GLOBALS}, kasan=a["kasan"])
    pps, pbo, mo = _geometry(mc.page_size)
    mech = _mechanics(a)
    if a["quantity"] == "ratio":   # after / before of two generations with the same per-page work (P11)
        return 1.0
    pc = cost.pass_cost([(0, a["pages"])], a["threads"], mech, a["nodes_per_socket"], pps, pbo, mo)
    return pc.printed_ms if a["quantity"] == "printed" else pc.ms


def _names(fit_anchors):
    classes = sorted({a["machine_class"] for a in fit_anchors})
    return list(GLOBALS) + ["rate:" + c for c in classes]


def _prior(name):
    return THREAD_PRIOR if name.startswith("rate:") else PRIORS[name]


def _residuals(x, names, fit_anchors):
    p = dict(zip(names, np.exp(x)))
    r = [math.log(predict(a, p) / a["published_ms"]) / DATA_SIGMA for a in fit_anchors]
    r += [(xi - math.log(_prior(n)[0])) / _prior(n)[1] for xi, n in zip(x, names)]
    return np.array(r)


def fit(fit_anchors, start: dict | None = None, iterations: int = 60) -> dict:
    """Levenberg-Marquardt on the log residuals; returns {name: value}."""
    names = _names(fit_anchors)
    x = np.array([math.log((start or {}).get(n, _prior(n)[0])) for n in names])
    r = _residuals(x, names, fit_anchors)
    lam, h = 1e-2, 1e-5
    for _ in range(iterations):
        J = np.empty((len(r), len(x)))
        for j in range(len(x)):
            xh = x.copy()
            xh[j] += h
            J[:, j] = (_residuals(xh, names, fit_anchors) - r) / h
        g, A = J.T @ r, J.T @ J
        improved = False
        for _ in range(12):
            step = np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-9), -g)
            xn = x + step
            rn = _residuals(xn, names, fit_anchors)
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
            if "rate:" + a["machine_class"] not in p2:
                p2["rate:" + a["machine_class"]] = THREAD_PRIOR[0]
            row["loo_class_unseen"] = not any(b["machine_class"] == a["machine_class"] for b in others)
            row["loo"] = predict(a, p2)
            row["loo_error_pct"] = 100 * (row["loo"] / a["published_ms"] - 1)
        rows.append(row)
    return {"params": params, "rows": rows, "fitted_file": fitted_document(params, usable)}


def fitted_document(params: dict, usable) -> dict:
    rates = {k[5:]: v for k, v in params.items() if k.startswith("rate:")}
    default = float(math.exp(sum(math.log(v) for v in rates.values()) / len(rates)))
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
    fitted = [r for r in result["rows"] if r["in_fit"]]
    ok = sum(1 for r in fitted if abs(r["error_pct"]) <= 15)
    ok_loo = sum(1 for r in fitted if r["loo_error_pct"] is not None and abs(r["loo_error_pct"]) <= 25)
    out += ["", (f"in-sample within 15 %: {ok} of {len(fitted)} fitted anchors; leave-one-out within 25 %: "
                 f"{ok_loo} of {len(fitted)}"), "", "fitted constants:"]
    doc = result["fitted_file"]
    out += [f"  {k} = {v:g}" for k, v in doc["constants"].items()]
    out += [f"  thread_gbps[{k}] = {v:.3f}" for k, v in doc["thread_gbps"].items()]
    out += [f"  default_thread_gbps = {doc['default_thread_gbps']:.3f} (classes without anchors)"]
    if notes:
        out += ["", "notes (* above):"] + notes
    return "\n".join(out)


def cmd_calibrate(args) -> int:
    def progress(msg):
        if not args.quiet and sys.stderr.isatty():
            print(f"\r{msg:<60}", end="", file=sys.stderr, flush=True)

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
    return 0


def add_parser(sub, formatter_class=None):
    """Register ``pgdefer calibrate`` (the one-line hook in cli.build_parser)."""
    p = sub.add_parser("calibrate", help="fit the cost model on the published measurements and print its errors",
                       description="Fit the cost model's free constants on the published deferred-init\n"
                                   "measurements (spec section 6) and print, per anchor, the published figure,\n"
                                   "the fitted prediction, its error and the leave-one-out error (refit without\n"
                                   "the anchor, predict it; about 3 minutes, --no-loo skips it).",
                       epilog="examples:\n  pgdefer calibrate\n  pgdefer calibrate --no-loo --json\n"
                              "  pgdefer calibrate --write          (update the package's fitted.json)",
                       formatter_class=formatter_class)
    p.add_argument("--write", action="store_true", help="write the fitted constants to the package's fitted.json")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write the fitted constants to this file instead (implies --write)")
    p.add_argument("--no-loo", action="store_true", help="skip the leave-one-out refits (faster)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_calibrate)
    return p

"""Markdown tables of the latest benchmark run, for docs/benchmarks.md: the criterion medians
(target/criterion/<group>/<bench>/new/estimates.json) and a pytest-benchmark JSON file, each figure beside
the reference of its group measured in the same run.

    cargo bench --bench deferred_pass --bench padata_pass
    pytest benches/ --benchmark-only --benchmark-json=bench.json
    python benches/report.py bench.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fmt(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def criterion_rows(root: Path = ROOT / "target" / "criterion") -> dict[str, list[tuple[str, float]]]:
    """{group: [(bench, median ns)]}, in path order."""
    groups: dict[str, list[tuple[str, float]]] = {}
    for est in sorted(root.glob("*/**/new/estimates.json")):
        rel = est.parent.parent.relative_to(root).parts
        median = json.loads(est.read_text())["median"]["point_estimate"]
        groups.setdefault(rel[0], []).append(("/".join(rel[1:]), median))
    return groups


def pytest_rows(path: Path) -> dict[str, list[tuple[str, float]]]:
    groups: dict[str, list[tuple[str, float]]] = {}
    for b in json.loads(path.read_text())["benchmarks"]:
        groups.setdefault(b["group"], []).append((b["name"], b["stats"]["median"] * 1e9))
    return groups


def table(groups: dict[str, list[tuple[str, float]]]) -> str:
    lines = ["| group | benchmark | median | × reference |", "|---|---|---:|---:|"]
    for group, rows in groups.items():
        ref = next((ns for name, ns in rows if "reference" in name), None)
        for name, ns in rows:
            ratio = "reference" if "reference" in name else (f"{ns / ref:.1f}" if ref else "—")
            lines.append(f"| {group} | {name} | {_fmt(ns)} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    print("### Rust core (criterion)\n")
    print(table(criterion_rows()))
    if argv:
        print("\n### Python paths (pytest-benchmark)\n")
        print(table(pytest_rows(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

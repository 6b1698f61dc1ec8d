"""Every third-party import of the package is a declared requirement (issue 14, finding 2: ``tomli`` was
imported on Python < 3.11 without being a dependency, so every topology file command failed there).

The imports are read with ast from python/pgdefer. An import that runs when its module is imported
(module level, ``try``/``if`` blocks included) needs a requirement in ``[project] dependencies`` whose
marker holds on the Pythons that reach it; an import inside a function or guarded by ``except ImportError`` may come from an extra."""

from __future__ import annotations

import ast
import functools
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "pgdefer"
SUPPORTED = ("3.9", "3.10", "3.11", "3.12", "3.13")  # requires-python >= 3.9, checked below


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _catches_import_error(node: ast.Try) -> bool:
    names = {n.id for h in node.handlers for n in ast.walk(h.type) if isinstance(n, ast.Name)} if node.handlers else set()
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def _imports() -> list[tuple[str, str, str]]:
    """(top-level module, how, file) of every absolute import in the package; ``how``: "required" (runs when its
    module is imported), "optional" (inside a function, or in a ``try`` that catches ImportError) or
    "fallback:M" (in the ImportError handler of a ``try`` that imports M: needed where M is missing)."""
    out = []

    def add(names, how, path):
        out.extend((n.split(".")[0], how, path) for n in names)

    def visit(node, how, path):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            how = "optional"
        if isinstance(node, ast.Try) and _catches_import_error(node):
            tried = [a.name for n in node.body if isinstance(n, ast.Import) for a in n.names]
            for child in node.body:
                visit(child, "optional" if how == "required" else how, path)
            for h in node.handlers:
                for child in h.body:
                    visit(child, f"fallback:{tried[0]}" if how == "required" and tried else how, path)
            for child in [*node.orelse, *node.finalbody]:
                visit(child, how, path)
            return
        if isinstance(node, ast.Import):
            add([a.name for a in node.names], how, path)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            add([node.module], how, path)
        for child in ast.iter_child_nodes(node):
            visit(child, how, path)

    for path in sorted(PACKAGE.rglob("*.py")):
        visit(ast.parse(path.read_text()), "required", str(path.relative_to(ROOT)))
    return out


def _third_party(imports):
    stdlib = sys.stdlib_module_names
    return [(m, lvl, f) for m, lvl, f in imports if m not in stdlib and m != "pgdefer" and not m.startswith("_")]


@functools.cache
def _packages_distributions() -> dict:
    return packages_distributions()


def _distribution(module: str) -> str:
    """The distribution that provides an import name (installed: from its metadata; else the same name)."""
    dists = _packages_distributions().get(module)
    return canonicalize_name(dists[0] if dists else module)


def _provides(req: Requirement) -> set[str]:
    """The distributions a requirement brings: itself, and those its extras add ("dask[distributed]")."""
    names = {canonicalize_name(req.name)}
    try:
        deps = requires(req.name) or []
    except PackageNotFoundError:
        deps = []
    for d in map(Requirement, deps):
        if d.marker and any(d.marker.evaluate({"extra": e}) for e in req.extras):
            names.add(canonicalize_name(d.name))
    return names


def _pythons(req: Requirement) -> set[str]:
    """The supported Pythons on which the requirement is installed (its marker holds)."""
    if req.marker is None:
        return set(SUPPORTED)
    return {v for v in SUPPORTED if req.marker.evaluate({**default_environment(), "python_version": v})}


# Standard modules newer than requires-python: a fallback for one is needed only before that version.
STDLIB_SINCE = {"tomllib": (3, 11)}


def _reaching_pythons(how: str) -> set[str]:
    """The supported Pythons that run an import of the given kind at module import."""
    if how.startswith("fallback:"):
        since = STDLIB_SINCE.get(how.split(":", 1)[1])
        if since is not None:
            return {v for v in SUPPORTED if tuple(map(int, v.split("."))) < since}
        return set()  # the fallback of an optional third-party import: optional itself
    return set(SUPPORTED)


def test_supported_pythons_are_requires_python():
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(_pyproject()["requires-python"])
    assert spec.contains(SUPPORTED[0]) and not spec.contains("3.8")


def test_the_scan_sees_the_known_imports():
    found = {(m, how) for m, how, _ in _third_party(_imports())}
    assert {("numpy", "required"), ("tomli", "fallback:tomllib"), ("matplotlib", "optional"),
            ("hypothesis", "optional")} <= found


def test_module_level_imports_are_dependencies_on_every_python_that_reaches_them():
    deps = [Requirement(r) for r in _pyproject()["dependencies"]]
    missing = []
    for module, how, path in _third_party(_imports()):
        if how == "optional":
            continue
        dist = _distribution(module)
        need = _reaching_pythons(how)
        have = set().union(*[_pythons(r) for r in deps if dist in _provides(r)])
        if not need <= have:
            missing.append(f"{path}: import {module} (distribution {dist}) on Python {sorted(need - have)}")
    assert missing == []


def test_every_third_party_import_is_a_dependency_or_in_an_extra():
    project = _pyproject()
    declared = set()
    for r in [*project["dependencies"], *[r for extra in project["optional-dependencies"].values() for r in extra]]:
        declared |= _provides(Requirement(r))
    undeclared = sorted({f"{path}: {m}" for m, _, path in _third_party(_imports())
                         if _distribution(m) not in declared})
    assert undeclared == []


def test_tomli_is_required_exactly_where_tomllib_is_missing():
    tomli = [Requirement(r) for r in _pyproject()["dependencies"] if Requirement(r).name == "tomli"]
    assert len(tomli) == 1
    assert _pythons(tomli[0]) == {"3.9", "3.10"}

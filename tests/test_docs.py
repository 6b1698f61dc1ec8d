"""The documentation (issue 14, acceptance 3): the mkdocs site builds offline with warnings as errors, its API
reference covers what users reach for, every public name has a docstring, the tutorials run as written, and
the README links to the docs and to no figure the repository does not hold."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pgdefer

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``mkdocs build --strict`` into a temporary directory (the theme is mkdocs' own: nothing downloaded)."""
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    return out


def _page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text()


def test_docs_build_strict(site):
    assert (site / "index.html").is_file()
    for t in TUTORIALS:
        assert (site / "tutorials" / t.stem / "index.html").is_file(), t.name


@pytest.mark.parametrize(("page", "names"), [
    ("api/presets", ["get", "info", "names", "check_fits_host"]),
    ("api/plot", ["boot_figure", "save_boot_figure"]),
    ("api/testing", ["snapshot", "replay", "run_cli", "topologies"]),
    ("api/enums", ["PageState", "InitBy", "MEMBLOCK_FREE_ALL", "UNINIT", "Policy", "REWORK_2025"]),
    ("api/machine", ["Machine", "alloc_pages", "PageView", "deferral"]),
    ("api/core", ["deferred_grow_zone", "raw_view", "POLICY_FACTS"]),  # from the stub of the extension
    ("api/pgdefer", ["__version__", "POLICIES"]),
])
def test_api_reference_documents(site, page, names):
    html = _page(site, page)
    missing = [n for n in names if f'id="{n}"' not in html and not re.search(rf'id="[\w.]*\.{re.escape(n)}"', html)]
    assert missing == [], page


def test_one_tutorial_per_use():
    assert [t.stem for t in TUTORIALS] == ["first-boot", "generations", "race", "real-machine", "sweep"]


# -- docstrings ---------------------------------------------------------------------------------------

def _api_modules() -> list[str]:
    """The modules the API reference renders (its ``::: module`` directives): the public modules."""
    mods = []
    for page in sorted((DOCS / "api").glob("*.md")):
        mods += re.findall(r"^::: ([\w.]+)$", page.read_text(), re.M)
    return mods


def _public(module) -> list[tuple[str, object]]:
    """(qualified name, object) of the module's public classes and functions and their public members."""
    if hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = [n for n, o in vars(module).items() if not n.startswith("_")
                 and getattr(o, "__module__", None) == module.__name__]
    out = []
    for n in names:
        o = getattr(module, n)
        if not (inspect.isclass(o) or inspect.isfunction(o) or inspect.isbuiltin(o)):
            continue
        out.append((f"{module.__name__}.{n}", o))
        if inspect.isclass(o) and o.__module__.startswith("pgdefer"):
            for k, v in vars(o).items():
                if k.startswith("_") or not (inspect.isfunction(v) or isinstance(v, (property, classmethod,
                                                                                        staticmethod))):
                    continue
                out.append((f"{module.__name__}.{n}.{k}", v))
    return out


def _doc(o) -> str:
    if isinstance(o, (classmethod, staticmethod)):
        o = o.__func__
    return (getattr(o, "__doc__", None) or "").strip()


def test_the_api_reference_covers_pgdefer_all():
    mods = _api_modules()
    assert {"pgdefer", "pgdefer.machine", "pgdefer.enums", "pgdefer.sources.presets", "pgdefer.plot",
            "pgdefer.testing", "pgdefer._core"} <= set(mods)
    for name in pgdefer.__all__:
        o = getattr(pgdefer, name)
        home = getattr(o, "__module__", None) if not inspect.ismodule(o) else o.__name__
        assert home is None or home in mods or home == "builtins", (name, home)


def test_every_public_name_has_a_docstring():
    missing = []
    assert len(_api_modules()) >= 10
    for mod in _api_modules():
        module = importlib.import_module(mod)
        if not (module.__doc__ or "").strip():
            missing.append(mod)
        for qual, o in _public(module):
            if not _doc(o):
                missing.append(qual)
    assert missing == []


# -- the tutorials run as written ---------------------------------------------------------------------------

def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(page, monkeypatch, capsys):
    blocks = _python_blocks(page)
    assert blocks, f"{page.name} has no python example"
    monkeypatch.chdir(ROOT)  # the tutorials name the reference logs as ../shared/bootlogs/...
    namespace: dict = {"__name__": f"tutorial_{page.stem}"}
    for code in blocks:
        exec(compile(code, str(page), "exec"), namespace)  # noqa: S102 - the documented examples, as written


# -- the README ---------------------------------------------------------------------------------------------

def test_readme_links_the_docs_and_only_figures_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "docs/index.md" in readme and "docs/benchmarks.md" in readme
    for path in re.findall(r"\b((?:docs|benches)/[\w./-]+\.(?:md|rs|py))\b", readme):
        assert (ROOT / path).is_file(), path
    assert "issue notes" not in readme  # figures are in docs/benchmarks.md, not elsewhere
    bench = (DOCS / "benchmarks.md").read_text()
    assert "cargo bench" in bench and "pytest benches/ --benchmark-only" in bench
    assert re.search(r"\d+(\.\d+)?\s*(ns|µs|us|ms|s)\b", bench), "benchmarks.md holds figures"

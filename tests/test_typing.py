"""The typed package (issue 14, finding 3): py.typed and the stubs ship, stubtest holds the stubs of the
extension (``_core.pyi``) and of the enums (``enums.pyi``) to the built module, ``mypy --strict`` accepts the
README's examples, ``__version__`` is pyproject's version, and the enums are the core's names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

import pgdefer
from pgdefer import _core
from pgdefer.enums import InitBy, PageState, Policy, Zone, member_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "pgdefer"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd)


def test_py_typed_and_stubs_ship_in_the_package():
    for name in ("py.typed", "_core.pyi", "enums.pyi"):
        assert files("pgdefer").joinpath(name).is_file(), name


def test_stubtest_holds_the_stubs_to_the_built_extension(checkers):
    r = checkers["stubtest"]
    assert r.returncode == 0, r.stdout + r.stderr


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "mypy.ini"
    cfg.write_text(f"[mypy]\ncache_dir = {tmp_path / 'cache'}\n")
    return cfg


def python_blocks(path: Path) -> list[str]:
    """The ```python code blocks of a Markdown file."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


# A call that mypy --strict must reject, checked in the same run as the examples (one mypy start-up, ~10 s):
# it shows that the stubs are read (not Any), so a clean run of the examples says something.
BAD = (
    "import pgdefer\n"
    "from pgdefer import _core\n"
    "x: str = _core.BYTES_PER_PAGE\n"
    "y: int = pgdefer.Policy.V4_17\n"
    "z: int = pgdefer.PageState.FREE\n"  # fine: an IntEnum member is an int
)


@pytest.fixture(scope="module")
def checkers(tmp_path_factory):
    """stubtest and one ``mypy --strict`` run over the examples of the README and of the tutorials
    (docs/tutorials) and BAD, side by side (each spends
    ~10 s reading typeshed); the cache of each in a temporary directory, none left in the tree."""
    tmp = tmp_path_factory.mktemp("mypy")
    blocks, names = [], []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs" / "tutorials").glob("*.md"))]:
        page_blocks = python_blocks(page)
        if page.name != "README.md" and page_blocks:  # a tutorial's blocks run in sequence: one file
            page_blocks = ["".join(page_blocks)]
        for i, code in enumerate(page_blocks):
            names.append(f"{page.stem.replace('-', '_')}_{i}.py")
            (tmp / names[-1]).write_text(code)
        blocks += page_blocks
    (tmp / "bad.py").write_text(BAD)
    stub_dir = tmp_path_factory.mktemp("stubtest")
    procs = {"mypy": _start(["mypy", "--strict", "--config-file", str(_config(tmp)), *names, "bad.py"], tmp),
             "stubtest": _start(["mypy.stubtest", "pgdefer._core", "pgdefer.enums",
                                 "--mypy-config-file", str(_config(stub_dir))], stub_dir)}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate()
        out[name] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    out["blocks"] = blocks
    out["names"] = names
    return out


def _mypy_errors(checkers) -> dict[str, list[str]]:
    r = checkers["mypy"]
    assert r.returncode in (0, 1) and not r.stderr, r.stdout + r.stderr  # ran (not a crash)
    errors: dict[str, list[str]] = {n: [] for n in [*checkers["names"], "bad.py"]}
    for line in r.stdout.splitlines():
        if ": error:" in line:
            errors.setdefault(line.split(":")[0], []).append(line)
    return errors


def test_readme_and_tutorial_examples_pass_mypy_strict(checkers):
    assert checkers["blocks"], "the README has python examples"
    assert any(n.startswith("first_boot") for n in checkers["names"])
    errors = _mypy_errors(checkers)
    assert {f: e for f, e in errors.items() if f != "bad.py" and e} == {}


def test_stubs_type_the_example_calls(checkers):
    """mypy --strict rejects a wrong call, so the test above checks something: the stubs are read, not Any."""
    errors = _mypy_errors(checkers)
    assert [e.split(":")[1] for e in errors["bad.py"]] == ["3", "4"], errors["bad.py"]


def test_version_is_pyprojects():
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert pgdefer.__version__ == version
    assert "__version__" in pgdefer.__all__


@pytest.mark.parametrize(("enum", "names"), [(PageState, _core.PAGE_STATES), (InitBy, _core.INIT_BY),
                                              (Zone, _core.ZONES)])
def test_int_enums_are_the_cores_codes(enum, names):
    assert [(m.name, m.value) for m in enum] == [(member_name(n), i) for i, n in enumerate(names)]


def test_policy_enum_is_the_cores_policy_table():
    assert [p.value for p in Policy] == list(_core.POLICIES) == list(pgdefer.POLICIES)
    assert Policy.V4_17 == "v4.17" and Policy("posting-v2") is Policy.POSTING_V2
    assert set(Policy) <= set(Policy(p) for p in _core.POLICY_FACTS)


def test_enum_stub_values_are_the_runtime_values():
    """stubtest checks the members' names both ways, not their values: compare those from the stub's source."""
    tree = ast.parse((PACKAGE / "enums.pyi").read_text())
    runtime = {"PageState": PageState, "InitBy": InitBy, "Zone": Zone, "Policy": Policy}
    seen = set()
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef):
            stub = {a.targets[0].id: ast.literal_eval(a.value) for a in cls.body if isinstance(a, ast.Assign)}
            assert stub == {m.name: m.value for m in runtime[cls.name]}, cls.name
            seen.add(cls.name)
    assert seen == set(runtime)


def test_enums_decode_a_booted_machine():
    from pgdefer import Machine, Region, Topology

    t = Topology(memory=[Region("1M", "5G")], reserved=[Region("16M", "48M")])
    m = Machine(t, policy=Policy.V4_17)
    assert m.policy == "v4.17"
    m.boot()
    p = m.pages
    i = p.index(0x1000)  # 16 MiB: reserved, below the deferred cut (so initialised early)
    assert PageState(int(p.state[i])) is PageState.RESERVED
    assert InitBy(int(p.init_by[i])) is InitBy.EARLY
    assert Zone(int(p.zone[i])) is Zone.DMA32

"""No import cycle in python/pgdefer: the imports are read with ast, module-level imports (those that run when
the module is imported: top level, ``try``/``if`` blocks, class bodies) apart from function-level ones (run
later, on a call), and a cycle through module-level imports fails. Function-level imports may close a loop:
that is how ``Topology.from_dmesg`` reaches ``sources.dmesg``, which imports ``topology``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "pgdefer"
EXTENSIONS = {"_core"}  # compiled modules of the package (no .py file)


def _module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(root: Path, dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return dotted.rsplit(".", 1)[-1] in EXTENSIONS or (root / rel).with_suffix(".py").is_file() \
        or (root / rel / "__init__.py").is_file()


def _imports(tree, module: str, is_package: bool, root: Path):
    """(target module, module_level) for every import of the package's own modules."""
    package = module if is_package else module.rsplit(".", 1)[0]

    def visit(node, module_level):
        for child in ast.iter_child_nodes(node):
            inner = module_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name.split(".")[0] == root.name:
                        yield a.name, module_level
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] != root.name:
                    continue
                for a in child.names:  # `from .x import y` imports .x.y when y is a module, else .x
                    sub = f"{target}.{a.name}"
                    yield (sub if _is_module(root, sub) else target), module_level
            yield from visit(child, inner)

    yield from visit(tree, True)


def import_graph(root: Path = PACKAGE) -> dict:
    """module -> {imported module: True if imported at module level (else only inside functions)}."""
    graph: dict[str, dict[str, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        name = _module_name(root, path)
        edges = graph.setdefault(name, {})
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target, module_level in _imports(tree, name, path.name == "__init__.py", root):
            if target != name:
                edges[target] = edges.get(target, False) or module_level
    return graph


def find_cycle(graph: dict) -> list | None:
    """A cycle through module-level imports, as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def dfs(node):
        state[node] = 1
        path.append(node)
        for nxt, module_level in sorted(graph.get(node, {}).items()):
            if not module_level:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def test_no_import_cycle_in_pgdefer():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle through module-level imports: " + " -> ".join(cycle)


def test_sources_depend_on_topology_never_the_reverse():
    graph = import_graph()
    assert graph["pgdefer.sources.dmesg"].get("pgdefer.topology") is True
    assert graph["pgdefer.sources.dmesg"].get("pgdefer.sources.x86") is True
    # topology reaches the sources only from inside its from_* entry points
    to_sources = {t: lvl for t, lvl in graph["pgdefer.topology"].items() if t.startswith("pgdefer.sources")}
    assert to_sources and not any(to_sources.values()), to_sources


def _write(root: Path, files: dict):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_the_walk_finds_a_module_level_cycle_and_allows_a_function_level_one(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg, {"__init__.py": "", "a.py": "from . import b\n", "b.py": "from .c import thing\n",
                 "c.py": "try:\n    from .a import x\nexcept ImportError:\n    pass\n",
                 "d.py": "from .e import f\n", "e.py": "def f():\n    from .d import g\n",
                 "sub/__init__.py": "", "sub/s.py": "from ..d import y\nclass K:\n    from .. import a\n"})
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.b": True}
    assert graph["pkg.e"] == {"pkg.d": False}
    assert graph["pkg.sub.s"] == {"pkg.d": True, "pkg.a": True}   # a class body runs at import time
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("def late():\n    from .a import x\n")
    assert find_cycle(import_graph(pkg)) is None

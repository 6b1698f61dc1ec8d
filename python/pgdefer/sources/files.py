"""Topology files: TOML (human-editable) and JSON.

A topology file holds exactly what :meth:`pgdefer.Topology.to_dict` produces, so a file written by
:func:`save` reads back to an equal topology, and writing that again gives the same bytes. Hand-written files
may spell sizes and addresses the kernel way (``"4G"``, ``"512M"``, ``"0x100000"``) or as integers::

    name = "two-node"
    notes = ["anything worth remembering"]

    [geometry]                 # optional; x86_64 defaults
    page_size = "4K"
    section_size = "128M"
    pageblock_order = 9
    max_order = 10

    [zone_limits]              # optional; default DMA = 16M, DMA32 = 4G, Normal unbounded
    DMA = "16M"
    DMA32 = "4G"

    [[memory]]                 # memblock.memory: half-open byte ranges [start, end) with a node id
    start = "0x1000"
    end = "0x9f000"
    node = 0

    [[reserved]]               # memblock.reserved: half-open byte ranges
    start = "16M"
    end = "48M"

    [kernel]                   # optional (import-dmesg writes it): what the boot log showed
    version = "6.1.0-50-amd64" # the Linux version line; policy auto maps it to a generation
    deferred_init_lines = true # the log prints per-node "deferred pages initialised" lines
    node_cpus = { 0 = 2 }      # CPUs per node: padata's max_threads in the 5.8+ passes
    memory_line = { available_kib = 2650000, total_kib = 3145180, reserved_kib = 120000 }

(:func:`save` writes the same arrays in the equivalent inline form,
``memory = [{ start = "0x1000", end = "0x9f000", node = 0 }, ...]``, one region per line.)

The format is chosen by the suffix: ``.toml`` or ``.json``. Every problem (unreadable file, syntax error,
missing key, bad value) raises :class:`pgdefer.TopologyError` with one message naming the file, and the line
when the parser reports one.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

try:  # Python 3.11+
    import tomllib
except ImportError:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib  # type: ignore[no-redef]

from ..config import ZONE_NAMES
from ..errors import GeometryError, PgdeferError, TopologyError
from ..topology import Region, Topology
from ..userfile import read_user_file

FORMATS = (".toml", ".json")
#: Largest topology file read: MAX_REGIONS memory and reserved ranges written by save() take ~1.2 MB;
#: checked before reading (tomllib parses ~0.5 MB/s on a busy host).
MAX_FILE_BYTES = 2 << 20

_TOP_KEYS = {"name", "notes", "geometry", "zone_limits", "memory", "reserved", "kernel"}
_GEOMETRY_KEYS = {"page_size", "section_size", "pageblock_order", "max_order"}
_MEMORY_KEYS = {"start", "end", "node"}
_RESERVED_KEYS = {"start", "end"}


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise TopologyError(
            f"{path}: unknown topology file format {path.suffix or '(no suffix)'!r}; use a .toml or .json file")
    return suffix


def _check_keys(where: str, table, allowed: set, required: set = frozenset()):
    if not isinstance(table, dict):
        raise TopologyError(f"{where} must be a table/object, got {type(table).__name__} {table!r}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise TopologyError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(table))
    if missing:
        raise TopologyError(f"{where}: missing key(s) {missing}")


def validate_dict(d) -> None:
    """Check the shape of a topology dict (keys and container types) before building it.

    Values themselves (sizes, node ids, overlaps, zone limit order) are checked by ``Topology`` and
    ``Geometry``; this catches typos such as ``[[memroy]]`` that ``Topology.from_dict`` would ignore.
    """
    _check_keys("the top level", d, _TOP_KEYS, {"memory"})
    if "name" in d and not isinstance(d["name"], str):
        raise TopologyError(f"'name' must be a string, got {d['name']!r}")
    if "notes" in d and (not isinstance(d["notes"], list) or not all(isinstance(n, str) for n in d["notes"])):
        raise TopologyError(f"'notes' must be a list of strings, got {d['notes']!r}")
    if "geometry" in d:
        _check_keys("[geometry]", d["geometry"], _GEOMETRY_KEYS)
    if "zone_limits" in d:
        _check_keys("[zone_limits]", d["zone_limits"], set(ZONE_NAMES[:-1]))
    for key, allowed, required in (("memory", _MEMORY_KEYS, {"start", "end"}),
                                   ("reserved", _RESERVED_KEYS, {"start", "end"})):
        if key not in d:
            continue
        seq = d[key]
        if not isinstance(seq, list):
            raise TopologyError(f"'{key}' must be an array of tables ([[{key}]]), got {type(seq).__name__}")
        for i, r in enumerate(seq):
            _check_keys(f"{key}[{i}]", r, allowed, required)


def from_dict(d) -> Topology:
    """Validate the shape of ``d`` and build a Topology; every problem is a TopologyError."""
    validate_dict(d)

    for key in ("memory", "reserved"):  # name the offending entry; Topology re-checks everything
        for i, r in enumerate(d.get(key, ())):
            try:
                Region(r["start"], r["end"], r.get("node", 0))
            except (TopologyError, ValueError, TypeError) as e:
                raise TopologyError(f"{key}[{i}]: {e}") from None
    try:
        return Topology.from_dict(d)
    except TopologyError:
        raise
    except (GeometryError, ValueError, TypeError) as e:
        raise TopologyError(str(e)) from None


_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def _parse_text(text: str, fmt: str, path: Path):
    kind = "TOML" if fmt == ".toml" else "JSON"
    try:
        if fmt == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_LINE.search(msg)
        where = f"{path}:{m.group(1)}" if m else f"{path}"
        msg = _TOML_LINE.sub("", msg).strip()
        raise TopologyError(f"{where}: invalid TOML: {msg}") from None
    except json.JSONDecodeError as e:
        raise TopologyError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    except RecursionError:  # both parsers recurse per nesting level; a topology file nests 3 levels deep
        raise TopologyError(f"{path}: invalid {kind}: arrays or tables nested too deeply "
                            f"(more than Python's recursion limit of {sys.getrecursionlimit()})") from None
    except ValueError as e:  # an integer literal of thousands of digits (int_max_str_digits)
        raise TopologyError(f"{path}: invalid {kind}: {' '.join(str(e).split(';')[0].split())}") from None


def load(path) -> Topology:
    """Read a ``.toml`` or ``.json`` topology file (``Topology.from_file``)."""
    path = Path(os.fspath(path))
    fmt = _format_of(path)
    raw = read_user_file(path, "topology file", TopologyError, limit=MAX_FILE_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TopologyError(f"{path}: not a UTF-8 text file (bad byte at offset {e.start})") from None
    d = _parse_text(text, fmt, path)
    try:
        topo = from_dict(d)
    except PgdeferError as e:
        raise TopologyError(f"{path}: {e}") from None
    return topo


_ORDER = ("name", "notes", "memory", "reserved", "geometry", "zone_limits", "kernel")

_TOML_HEADER = ("# pgdefer topology: memory and reserved are half-open byte ranges [start, end);\n"
                "# sizes may be written as integers, hex strings or kernel-style strings (\"4G\", \"512M\").\n")


def dumps(topology, fmt: str = ".toml") -> str:
    """The text of a topology file in ``fmt`` (".toml" or ".json")."""
    raw = topology.to_dict()
    d = {k: raw[k] for k in _ORDER if k in raw}
    d.update({k: v for k, v in raw.items() if k not in d})
    if fmt == ".toml":
        import tomli_w

        return _TOML_HEADER + tomli_w.dumps(d)
    if fmt == ".json":
        return json.dumps(d, indent=2, ensure_ascii=False) + "\n"
    raise TopologyError(f"unknown topology file format {fmt!r}; use '.toml' or '.json'")


def loads(text: str, fmt: str = ".toml", name: str = "<string>") -> Topology:
    """Parse topology file text (for tests and tools that hold the text already)."""
    if len(text) > MAX_FILE_BYTES:
        raise TopologyError(f"{name}: {len(text)} characters of topology text; at most {MAX_FILE_BYTES}")
    d = _parse_text(text, fmt, Path(name))
    try:
        return from_dict(d)
    except PgdeferError as e:
        raise TopologyError(f"{name}: {e}") from None


def save(topology, path) -> Path:
    """Write ``topology`` to ``path`` (``Topology.to_file``); the format follows the suffix. Returns the path.

    Only the data of :meth:`Topology.to_dict` is written (not ``Topology.source``).
    """
    path = Path(os.fspath(path))
    fmt = _format_of(path)
    text = dumps(topology, fmt)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise TopologyError(f"{path}: cannot write topology file: {e.strerror or e}") from None
    return path

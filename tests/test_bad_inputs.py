"""A campaign of bad inputs, kept as a table (issue 15, findings 4 and 6, acceptance 2).

Every row is one thing a hostile or careless user can pass: a wrong type, a number beyond 64 bits, a count out
of range, a mangled topology file or boot log, a bad command line. Each must raise a ``pgdefer.errors`` class
(the one named in the row, which also derives from the builtin a caller would have caught before: TypeError,
ValueError, LookupError...) with a one-line message; an operation on a machine must leave the machine exactly
as it was (``pgdefer.testing.snapshot`` before and after); the CLI must print one line on stderr and exit
non-zero, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pgdefer import Geometry, Machine, Region, Topology, parse_size
from pgdefer.errors import (
    BadFree,
    DmesgError,
    GeometryError,
    InvalidArgument,
    InvalidType,
    OrderError,
    PgdeferError,
    PhaseError,
    TopologyError,
    UnknownNode,
    UnknownZone,
)
from pgdefer.machine import deferral
from pgdefer.sources.dmesg import parse_dmesg
from pgdefer.sources.files import loads
from pgdefer.testing import run_cli, snapshot

BIG = 2**70          # beyond 64 bits
U64 = 2**64          # one beyond u64
G = Geometry(section_size="256K", max_order=4, pageblock_order=3)  # 64-page sections: a tiny machine


def small_topology():
    return Topology([(0x1000, 0x100000, 0), (0x100000, 0x200000, 1)], reserved=[(0x2000, 0x4000)], geometry=G)


def _gb(**kw):
    return Topology([(0, 1 << 30)], **kw)


LOG = ("Linux version 6.1.0-test\n"
       "Early memory node ranges\n"
       "  node   0: [mem 0x0000000000001000-0x000000003fffffff]\n")


def _log(*extra):
    return LOG + "".join(x + "\n" for x in extra)


def _json(**parts):
    import json

    d = {"memory": [{"start": 0, "end": 1 << 30}]}
    d.update(parts)
    return json.dumps(d)


# ------------------------------------------------------------------------------------------------------
# 1. the API without a machine: constructors, sizes, files, logs
# ------------------------------------------------------------------------------------------------------

API_CASES = [
    # Topology and Region: types, missing keys, numbers beyond 64 bits or the physical address space
    ("Topology(None)", lambda: Topology(None), InvalidType),
    ("Topology(5)", lambda: Topology(5), InvalidType),
    ("Topology('0-4G')", lambda: Topology("0-4G"), InvalidType),
    ("Topology([None])", lambda: Topology([None]), TopologyError),
    ("Topology([])", lambda: Topology([]), TopologyError),
    ("reserved=None", lambda: Topology([(0, 1 << 20)], reserved=None), InvalidType),
    ("reserved=5", lambda: Topology([(0, 1 << 20)], reserved=5), InvalidType),
    ("reserved end 2^70", lambda: _gb(reserved=[(0, BIG)]), TopologyError),
    ("reserved start 2^70", lambda: _gb(reserved=[(BIG, BIG + 1)]), TopologyError),
    ("memory end 2^70", lambda: Topology([(0, BIG)]), TopologyError),
    ("memory end 2^64+1", lambda: Topology([(0, U64 + 1)]), TopologyError),
    ("memory beyond 2^52", lambda: Topology([(0, 1 << 53)]), TopologyError),
    ("zone_limits=5", lambda: _gb(zone_limits=5), InvalidType),
    ("zone_limits=['DMA']", lambda: _gb(zone_limits=["DMA"]), InvalidType),
    ("zone limit Normal 2^70", lambda: _gb(zone_limits={"DMA": 16 << 20, "DMA32": 4 << 30, "Normal": BIG}),
     TopologyError),
    ("zone limit DMA 2^64", lambda: _gb(zone_limits={"DMA": U64}), TopologyError),
    ("zone limit negative", lambda: _gb(zone_limits={"DMA": -4096}), TopologyError),
    ("zone limit unknown zone", lambda: _gb(zone_limits={"HighMem": 1 << 30}), TopologyError),
    ("zone limit 'lots'", lambda: _gb(zone_limits={"DMA": "lots"}), TopologyError),
    ("region dict without end", lambda: Topology([{"start": 0}]), TopologyError),
    ("region dict without start", lambda: Topology([{"end": 4096}]), TopologyError),
    ("region 4-tuple", lambda: Topology([(0, 4096, 0, 0)]), TopologyError),
    ("region node '0'", lambda: Region(0, 4096, "0"), TopologyError),
    ("region node 2^70", lambda: Region(0, 4096, BIG), TopologyError),
    ("region node -1", lambda: Region(0, 4096, -1), TopologyError),
    ("region reversed", lambda: Region(8192, 4096), TopologyError),
    ("region start 1.5", lambda: Region(1.5, 4096), TopologyError),
    ("overlapping regions", lambda: Topology([(0, 8192, 0), (4096, 12288, 1)]), TopologyError),
    ("geometry=5", lambda: Topology([(0, 1 << 20)], geometry=5), TopologyError),
    # Geometry
    ("Geometry(page_size=None)", lambda: Geometry(page_size=None), GeometryError),
    ("Geometry(page_size=3000)", lambda: Geometry(page_size=3000), GeometryError),
    ("Geometry section 2^70", lambda: Geometry(section_size=BIG), GeometryError),
    ("Geometry max_order '9'", lambda: Geometry(max_order="9"), GeometryError),
    ("Geometry max_order 2^70", lambda: Geometry(max_order=BIG), GeometryError),
    ("Geometry pageblock > max_order", lambda: Geometry(pageblock_order=11, max_order=10), GeometryError),
    # sizes
    ("parse_size(1.5)", lambda: parse_size(1.5), InvalidType),
    ("parse_size(None)", lambda: parse_size(None), InvalidType),
    ("parse_size(True)", lambda: parse_size(True), InvalidType),
    ("parse_size(-1)", lambda: parse_size(-1), InvalidArgument),
    ("parse_size('1e5')", lambda: parse_size("1e5"), InvalidArgument),
    ("parse_size('0.5')", lambda: parse_size("0.5"), InvalidArgument),
    ("parse_size('1.0000001K')", lambda: parse_size("1.0000001K"), InvalidArgument),
    ("parse_size 5000 digits", lambda: parse_size("9" * 5000), InvalidArgument),
    ("parse_size('4Q')", lambda: parse_size("4Q"), InvalidArgument),
    # deferral (no page array)
    ("deferral(None)", lambda: deferral(None, "v4.17"), InvalidType),
    ("deferral policy None", lambda: deferral(small_topology(), None), InvalidType),
    ("deferral policy bogus", lambda: deferral(small_topology(), "bogus"), InvalidArgument),
    # Machine(...) arguments
    ("Machine(None)", lambda: Machine(None), InvalidType),
    ("Machine(dict)", lambda: Machine({"memory": []}), InvalidType),
    ("policy bogus", lambda: Machine(small_topology(), policy="bogus"), InvalidArgument),
    ("policy None", lambda: Machine(small_topology(), policy=None), InvalidType),
    ("policy 4.17", lambda: Machine(small_topology(), policy=4.17), InvalidType),
    ("cpus '2'", lambda: Machine(small_topology(), cpus="2"), InvalidType),
    ("cpus 2.0", lambda: Machine(small_topology(), cpus=2.0), InvalidType),
    ("cpus 0", lambda: Machine(small_topology(), cpus=0), InvalidArgument),
    ("cpus 2^70", lambda: Machine(small_topology(), cpus=BIG), InvalidArgument),
    ("fail_pass (0,)", lambda: Machine(small_topology(), fail_pass=(0,)), InvalidArgument),
    ("fail_pass 5", lambda: Machine(small_topology(), fail_pass=5), InvalidArgument),
    ("fail_pass (0, 1, 2)", lambda: Machine(small_topology(), fail_pass=(0, 1, 2)), InvalidArgument),
    ("fail_pass pages 2^70", lambda: Machine(small_topology(), fail_pass=(0, BIG)), InvalidArgument),
    ("fail_pass pages -1", lambda: Machine(small_topology(), fail_pass=(0, -1)), InvalidArgument),
    ("fail_pass node 7", lambda: Machine(small_topology(), fail_pass=(7, 1)), InvalidArgument),
    ("fail_pass node '0'", lambda: Machine(small_topology(), fail_pass=("0", 1)), InvalidType),
    ("faults None", lambda: Machine(small_topology(), faults=None), InvalidType),
    ("faults 5", lambda: Machine(small_topology(), faults=5), InvalidType),
    ("faults [5]", lambda: Machine(small_topology(), faults=[5]), InvalidType),
    ("faults unknown", lambda: Machine(small_topology(), faults=["nope"]), InvalidArgument),
    ("fault of another policy", lambda: Machine(small_topology(), faults=["retry_forever"]), InvalidArgument),
    ("node_cpus [1]", lambda: Machine(small_topology(), node_cpus=[1]), InvalidArgument),
    ("node_cpus node 2^70", lambda: Machine(small_topology(), node_cpus={BIG: 1}), InvalidArgument),
    ("node_cpus cpus 2^70", lambda: Machine(small_topology(), node_cpus={0: BIG}), InvalidArgument),
    ("node_cpus cpus '1'", lambda: Machine(small_topology(), node_cpus={0: "1"}), InvalidType),
    ("host_threads 'x'", lambda: Machine(small_topology(), host_threads="x"), InvalidType),
    ("host_threads 0", lambda: Machine(small_topology(), host_threads=0), InvalidArgument),
    ("panic_pass 'x'", lambda: Machine(small_topology(), panic_pass="x"), InvalidType),
    ("panic_pass 9", lambda: Machine(small_topology(), panic_pass=9), InvalidArgument),
    # topology files
    ("json nested 100000 deep", lambda: loads("[" * 100000, ".json"), TopologyError),
    ("toml nested 100000 deep", lambda: loads("a = " + "[" * 100000, ".toml"), TopologyError),
    ("json 5000-digit int", lambda: loads('{"memory": [{"start": 0, "end": ' + "9" * 5000 + "}]}", ".json"),
     TopologyError),
    ("toml 5000-digit int", lambda: loads("memory = [{start = 0, end = " + "9" * 5000 + "}]", ".toml"),
     TopologyError),
    ("json reserved 2^70", lambda: loads(_json(reserved=[{"start": 0, "end": BIG}]), ".json"), TopologyError),
    ("json zone limit 2^70", lambda: loads(_json(zone_limits={"DMA": BIG}), ".json"), TopologyError),
    ("json end 1e400", lambda: loads('{"memory": [{"start": 0, "end": 1e400}]}', ".json"), TopologyError),
    ("json node 0.5", lambda: loads(_json(memory=[{"start": 0, "end": 1 << 30, "node": 0.5}]), ".json"),
     TopologyError),
    ("json max_order 'x'", lambda: loads(_json(geometry={"max_order": "x"}), ".json"), TopologyError),
    ("json zone_limits []", lambda: loads(_json(zone_limits=[]), ".json"), TopologyError),
    ("json memory []", lambda: loads('{"memory": []}', ".json"), TopologyError),
    ("json top-level list", lambda: loads("[]", ".json"), TopologyError),
    ("json memroy typo", lambda: loads('{"memroy": []}', ".json"), TopologyError),
    ("json truncated", lambda: loads('{"memory": [{"start": 0', ".json"), TopologyError),
    ("toml bad syntax", lambda: loads("memory = [", ".toml"), TopologyError),
    ("toml start 'x'", lambda: loads('memory = [{start = "x", end = "1G"}]', ".toml"), TopologyError),
    ("toml end 1.5 bytes", lambda: loads('memory = [{start = 0, end = "1.5"}]', ".toml"), TopologyError),
    ("toml section_size 2^70", lambda: loads('memory = [{start = 0, end = "1G"}]\n[geometry]\nsection_size = '
                                             f'"{hex(BIG)}"', ".toml"), TopologyError),
    # boot logs
    ("log RAMDISK beyond 64 bits", lambda: Topology.from_dmesg(_log(f"RAMDISK: [mem {BIG:#x}-{BIG + 4095:#x}]")),
     DmesgError),
    ("log crashkernel beyond 64 bits",
     lambda: Topology.from_dmesg(_log(f"crashkernel reserved: {BIG:#x} - {BIG + 4096:#x} (0 MB)")), DmesgError),
    ("log node range beyond 64 bits",
     lambda: Topology.from_dmesg(_log(f"  node   0: [mem 0x0000000040000000-{BIG:#x}]")), DmesgError),
    ("log node id 2^70", lambda: Topology.from_dmesg(
        LOG + f"  node   {BIG}: [mem 0x0000000040000000-0x000000007fffffff]\n"), DmesgError),
    ("log Memory: 2000 digits", lambda: Topology.from_dmesg(_log("Memory: " + "9" * 2000 + "K/1000K available")),
     DmesgError),
    ("log nr_cpu_ids 30000000", lambda: Topology.from_dmesg(_log(
        "setup_percpu: NR_CPUS:8192 nr_cpumask_bits:8192 nr_cpu_ids:30000000 nr_node_ids:1")), DmesgError),
    ("log 10^7 hotplug CPUs", lambda: Topology.from_dmesg(_log("smpboot: Allowing 4 CPUs, 10000000 hotplug CPUs")),
     DmesgError),
    ("log e820 beyond 64 bits", lambda: parse_dmesg(_log(f"BIOS-e820: [mem 0x0-{BIG:#x}] usable")), DmesgError),
    ("log NODE_DATA beyond 64 bits", lambda: parse_dmesg(_log(f"NODE_DATA(0) allocated [mem {BIG:#x}-{BIG:#x}]")),
     DmesgError),
    ("log without memory map", lambda: Topology.from_dmesg("Linux version 6.1.0\nMemory: 4K/8K available\n"),
     DmesgError),
    ("log of nothing", lambda: Topology.from_dmesg("hello\nworld\n"), DmesgError),
    ("parse_dmesg(None)", lambda: parse_dmesg(None), DmesgError),
    ("parse_dmesg(5)", lambda: parse_dmesg(5), DmesgError),
    ("from_dmesg of a missing file", lambda: Topology.from_dmesg("/nonexistent/boot.log"), DmesgError),
    ("from_file of a missing file", lambda: Topology.from_file("/nonexistent/machine.toml"), TopologyError),
    ("from_file of a .txt", lambda: Topology.from_file("/etc/hostname.txt"), TopologyError),
]


@pytest.mark.parametrize("fn,cls", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_bad_input_is_a_typed_one_line_error(fn, cls):
    with pytest.raises(PgdeferError) as info:
        fn()
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    msg = str(info.value)
    assert msg and "\n" not in msg, msg


# ------------------------------------------------------------------------------------------------------
# 2. operations on a booted machine: a typed error, and the machine exactly as it was
# ------------------------------------------------------------------------------------------------------

def _noop(*_):
    return None


MACHINE_CASES = [
    ("alloc order '1'", lambda m: m.alloc_pages(order="1"), InvalidType),
    ("alloc order 2^70", lambda m: m.alloc_pages(order=BIG), OrderError),
    ("alloc order -1", lambda m: m.alloc_pages(order=-1), OrderError),
    ("alloc order 5 > MAX_ORDER 4", lambda m: m.alloc_pages(order=5), OrderError),
    ("alloc node 2^70", lambda m: m.alloc_pages(node=BIG), UnknownNode),
    ("alloc node '0'", lambda m: m.alloc_pages(node="0"), InvalidType),
    ("alloc zone 5", lambda m: m.alloc_pages(zone=5), UnknownZone),
    ("alloc zone []", lambda m: m.alloc_pages(zone=[]), UnknownZone),
    ("alloc zone 'HighMem'", lambda m: m.alloc_pages(zone="HighMem"), UnknownZone),
    ("alloc cpu 2^70", lambda m: m.alloc_pages(cpu=BIG), InvalidArgument),
    ("alloc cpu -1", lambda m: m.alloc_pages(cpu=-1), InvalidArgument),
    ("free pfn 2^70", lambda m: m.free_pages(BIG), InvalidArgument),
    ("free pfn 2^64", lambda m: m.free_pages(U64), InvalidArgument),
    ("free pfn -1", lambda m: m.free_pages(-1), InvalidArgument),
    ("free pfn '5'", lambda m: m.free_pages("5"), InvalidType),
    ("free of a free page", lambda m: m.free_pages(m.free_list(1, "DMA", 4)[0], 4), BadFree),
    ("free_reserved_area 2^70", lambda m: m.free_reserved_area(BIG, BIG + 1), InvalidArgument),
    ("free_reserved_area -1", lambda m: m.free_reserved_area(-1, 5), InvalidArgument),
    ("read_page 2^70", lambda m: m.read_page(BIG), InvalidArgument),
    ("read_page -1", lambda m: m.read_page(-1), InvalidArgument),
    ("read_page None", lambda m: m.read_page(None), InvalidType),
    ("run_workload count 2^70", lambda m: m.run_workload([{"cpu": 0, "count": BIG}]), InvalidArgument),
    ("run_workload count -1", lambda m: m.run_workload([{"cpu": 0, "count": -1}]), InvalidArgument),
    ("run_workload without cpu", lambda m: m.run_workload([{"count": 1}]), InvalidArgument),
    ("run_workload None", lambda m: m.run_workload(None), InvalidType),
    ("run_workload one dict", lambda m: m.run_workload({"cpu": 0, "count": 1}), InvalidType),
    ("run_workload [5]", lambda m: m.run_workload([5]), InvalidType),
    ("run_workload free_percent 2^70",
     lambda m: m.run_workload([{"cpu": 0, "count": 1, "free_percent": BIG}]), InvalidArgument),
    ("run_workload free_percent 101",
     lambda m: m.run_workload([{"cpu": 0, "count": 1, "free_percent": 101}]), InvalidArgument),
    ("run_workload late_init_after 2^70",
     lambda m: m.run_workload([{"cpu": 1, "count": 1}], late_init_after=BIG), InvalidArgument),
    ("run_workload late_init_after -1",
     lambda m: m.run_workload([{"cpu": 1, "count": 1}], late_init_after=-1), InvalidArgument),
    ("run_workload orders 5", lambda m: m.run_workload([{"cpu": 0, "count": 1, "orders": 5}]), InvalidType),
    ("run_workload orders [9]", lambda m: m.run_workload([{"cpu": 0, "count": 1, "orders": [9]}]), OrderError),
    ("run_workload typo 'cnt'", lambda m: m.run_workload([{"cpu": 0, "cnt": 3}]), InvalidArgument),
    ("run_workload seed 'x'", lambda m: m.run_workload([{"cpu": 0, "count": 1}], seed="x"), InvalidType),
    ("at unknown point", lambda m: m.at("nope", _noop), InvalidArgument),
    ("at point None", lambda m: m.at(None, _noop), InvalidType),
    ("at callback 5", lambda m: m.at("grow:locked", 5), InvalidType),
    ("at node 2^70", lambda m: m.at("grow:locked", _noop, node=BIG), UnknownNode),
    ("zone node 2^70", lambda m: m.zone(BIG, "DMA"), UnknownNode),
    ("zone None", lambda m: m.zone(0, None), UnknownZone),
    ("zone node None", lambda m: m.zone(None, "DMA"), InvalidType),
    ("free_list order 2^70", lambda m: m.free_list(0, "DMA", BIG), OrderError),
    ("free_list zone None", lambda m: m.free_list(0, None, 0), UnknownZone),
    ("first_deferred_pfn(None)", lambda m: m.first_deferred_pfn(None), InvalidType),
    ("first_deferred_pfn(9)", lambda m: m.first_deferred_pfn(9), UnknownNode),
    ("deferred_grow_zone node '0'", lambda m: m.deferred_grow_zone("0", "DMA"), InvalidType),
    ("deferred_grow_zone zone None", lambda m: m.deferred_grow_zone(0, None), UnknownZone),
    ("raise_irq cpu 2^70", lambda m: m.raise_irq(BIG), InvalidArgument),
    ("deliver_irqs '0'", lambda m: m.deliver_irqs("0"), InvalidType),
    ("boot twice", lambda m: m.boot(), PhaseError),
]


@pytest.mark.parametrize("op,cls", [c[1:] for c in MACHINE_CASES], ids=[c[0] for c in MACHINE_CASES])
def test_machine_bad_input_leaves_the_machine_unchanged(op, cls):
    m = Machine(small_topology(), policy="v4.17", cpus=2)
    m.boot()
    before = snapshot(m)
    with pytest.raises(PgdeferError) as info:
        op(m)
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    assert str(info.value) and "\n" not in str(info.value)
    assert snapshot(m) == before


# ------------------------------------------------------------------------------------------------------
# 3. the errors keep the builtin a caller caught before (finding 6)
# ------------------------------------------------------------------------------------------------------

def test_typed_errors_are_also_the_builtin_callers_expect():
    with pytest.raises(TypeError):
        Machine(None)
    with pytest.raises(TypeError):
        Topology(None)
    with pytest.raises(ValueError):
        Machine(small_topology(), fail_pass=(0,))
    with pytest.raises(ValueError):
        parse_size("1e5")
    with pytest.raises(LookupError):
        Machine(small_topology()).zone(9, "DMA")
    assert issubclass(InvalidType, InvalidArgument) and issubclass(InvalidType, TypeError)


def test_decimal_sizes_are_exact():
    # 2^53 + 1 is the first integer a float cannot hold: float("9007199254740993.0") == 2^53
    assert parse_size("9007199254740993.0") == 9007199254740993
    assert parse_size("1.5K") == 1536                      # 1.5 * 1024
    assert parse_size("0.25M") == 262144                   # 2^20 / 4
    # (2^52 + 1.5) * 1024 = 2^62 + 1536; a float holds 2^52 + 1.5 as 2^52 + 2 (its ulp there is 1)
    assert parse_size("4503599627370497.5K") == 2**62 + 1536
    with pytest.raises(InvalidArgument):
        parse_size("1.0000000000000000001E")  # 2^60 + 2^60/10^19: not whole (a float rounds it to 1.0)


# ------------------------------------------------------------------------------------------------------
# 4. the command line: one line on stderr, non-zero exit, never a traceback
# ------------------------------------------------------------------------------------------------------

def _files(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000)
    bigint = tmp_path / "bigint.toml"
    bigint.write_text("memory = [{start = 0, end = " + "9" * 5000 + "}]\n")
    big_reserved = tmp_path / "big.json"
    big_reserved.write_text(_json(reserved=[{"start": 0, "end": BIG}]))
    ramdisk = tmp_path / "ramdisk.log"
    ramdisk.write_text(_log(f"RAMDISK: [mem {BIG:#x}-{BIG + 4095:#x}]"))
    cpus = tmp_path / "cpus.log"
    cpus.write_text(_log("setup_percpu: NR_CPUS:8192 nr_cpumask_bits:8192 nr_cpu_ids:30000000 nr_node_ids:1"))
    binary = tmp_path / "binary.log"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    notoml = tmp_path / "machine.toml"
    notoml.write_text("memory = [\n")
    return {"deep": deep, "bigint": bigint, "big": big_reserved, "ramdisk": ramdisk, "cpus": cpus,
            "binary": binary, "notoml": notoml, "dir": tmp_path}


CLI_CASES = [
    ("boot deep json", ["boot", "-q", "-t", "{deep}"]),
    ("boot 5000-digit toml", ["boot", "-q", "-t", "{bigint}"]),
    ("boot reserved 2^70", ["boot", "-q", "-t", "{big}"]),
    ("boot RAMDISK 2^70", ["boot", "-q", "-t", "dmesg:{ramdisk}"]),
    ("show nr_cpu_ids 30000000", ["topology", "show", "dmesg:{cpus}"]),
    ("show binary log", ["topology", "show", "dmesg:{binary}"]),
    ("show bad toml", ["topology", "show", "{notoml}"]),
    ("show a directory", ["topology", "show", "{dir}"]),
    ("show dmesg: of a directory", ["topology", "show", "dmesg:{dir}"]),
    ("show missing log", ["topology", "show", "dmesg:/nonexistent.log"]),
    ("show empty dmesg:", ["topology", "show", "dmesg:"]),
    ("show unknown preset", ["topology", "show", "no-such-machine"]),
    ("import-dmesg missing", ["topology", "import-dmesg", "/nonexistent.log"]),
    ("import-dmesg -o .txt", ["topology", "import-dmesg", "{ramdisk}", "-o", "x.txt"]),
    ("boot unknown policy", ["boot", "-q", "-p", "v9.99"]),
    ("boot --pass-threads 0", ["boot", "-q", "--pass-threads", "0"]),
    ("boot --pass-threads 2^70 digits", ["boot", "-q", "--pass-threads", "9" * 5000]),
    ("boot --stop-after nowhere", ["boot", "-q", "--stop-after", "nowhere"]),
    ("boot --plot .txt", ["boot", "-q", "--plot", "boot.txt"]),
    ("boot --cost nonsense", ["boot", "-q", "--cost", "nonsense"]),
    ("boot --cost unknown key", ["boot", "-q", "--cost", "no_such_key=1"]),
    ("boot --machine-class nope", ["boot", "-q", "--machine-class", "no-such-class"]),
    ("compare --policies bogus", ["compare", "-q", "--policies", "bogus"]),
    ("compare --policies ,", ["compare", "-q", "--policies", ","]),
    ("show --limit x", ["topology", "show", "default", "--limit", "x"]),
    ("unknown command", ["frobnicate"]),
]


@pytest.mark.parametrize("argv", [c[1] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_line_and_a_nonzero_exit(argv, tmp_path, capsys):
    files = _files(tmp_path)
    code, out, err = run_cli([a.format(**files) for a in argv], capsys)
    assert code not in (0, None), (code, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgdefer: error: "), err


@pytest.mark.parametrize("argv", [["topology", "show", "{big}"], ["boot", "-q", "-t", "dmesg:{ramdisk}"],
                                  ["topology", "show", "{deep}"]], ids=["reserved 2^70", "RAMDISK 2^70", "deep"])
def test_cli_bad_input_as_a_real_process(argv, tmp_path):
    files = _files(tmp_path)
    r = subprocess.run([sys.executable, "-m", "pgdefer", *(a.format(**files) for a in argv)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgdefer: error: "), r.stderr


def test_campaign_size():
    """Acceptance 2 asks for at least 100 bad inputs."""
    assert len(API_CASES) + len(MACHINE_CASES) + len(CLI_CASES) >= 100


# ------------------------------------------------------------------------------------------------------
# 5. size and kind guards, checked before any work (finding 5)
# ------------------------------------------------------------------------------------------------------

def test_a_fifo_is_refused_not_waited_on(tmp_path):
    import os

    fifo = tmp_path / "boot.log"
    os.mkfifo(fifo)  # nobody ever writes: reading it would block forever
    with pytest.raises(DmesgError, match="FIFO"):
        Topology.from_dmesg(fifo)
    toml = tmp_path / "machine.toml"
    os.mkfifo(toml)
    with pytest.raises(TopologyError, match="FIFO"):
        Topology.from_file(toml)


def test_dev_zero_is_refused_not_read_until_memory_runs_out():
    with pytest.raises(DmesgError, match="character device"):
        Topology.from_dmesg("/dev/zero")


def test_a_file_beyond_the_limit_is_refused_before_it_is_read(tmp_path):
    from pgdefer.userfile import DEFAULT_LIMIT

    big = tmp_path / "huge.log"
    with open(big, "wb") as f:  # sparse: costs no disk
        f.truncate(DEFAULT_LIMIT + 1)
    with pytest.raises(DmesgError, match=f"{DEFAULT_LIMIT + 1} bytes"):
        Topology.from_dmesg(big)
    big_toml = tmp_path / "huge.json"
    with open(big_toml, "wb") as f:
        f.truncate(DEFAULT_LIMIT + 1)
    with pytest.raises(TopologyError, match="at most"):
        Topology.from_file(big_toml)


def test_a_log_with_too_many_lines_is_refused_naming_the_count():
    from pgdefer.sources.dmesg import MAX_LOG_LINES

    with pytest.raises(DmesgError, match=f"{MAX_LOG_LINES + 1} lines"):
        parse_dmesg(LOG + "\n" * (MAX_LOG_LINES + 1 - LOG.count("\n")))


def test_an_edited_huge_node_range_answers_from_its_size_not_a_section_walk():
    """A node range edited to [0, 2^52) spans 2^52 / 2^27 = 33554432 sections of 128 MiB. The memmap sizing
    counts them from the ranges (one step per range): 2^52 / 4096 = 2^40 struct pages."""
    t = Topology.from_dmesg("Linux version 6.1.0\nEarly memory node ranges\n"
                            "  node   0: [mem 0x0000000000000000-0x000fffffffffffff]\n")
    assert t.memmap_pages == 2**40
    from pgdefer.sources.x86 import node_memmap_sections

    assert node_memmap_sections(t.memory_pfn_ranges(), t.geometry.pages_per_section) == {0: 2**25}


def test_a_log_with_too_many_memory_map_lines_is_refused():
    from pgdefer.sources.dmesg import MAX_KEYWORD_LINES

    line = "  node   0: [mem 0x0000000000001000-0x000000003fffffff] Normal\n"  # keywords, but no family takes it
    with pytest.raises(DmesgError, match=f"more than {MAX_KEYWORD_LINES} lines"):
        parse_dmesg(LOG + line * MAX_KEYWORD_LINES)


def test_too_many_regions_are_refused_before_they_are_built():
    from pgdefer.topology import MAX_REGIONS

    with pytest.raises(TopologyError, match=f"{MAX_REGIONS + 1} memory regions"):
        Topology([(i << 20, (i << 20) + 4096) for i in range(MAX_REGIONS + 1)])
    with pytest.raises(TopologyError, match=f"{MAX_REGIONS + 1} reserved regions"):
        Topology([(0, 1 << 30)], reserved=[(i << 12, (i << 12) + 1) for i in range(MAX_REGIONS + 1)])


def test_a_topology_file_beyond_its_limit_is_refused(tmp_path):
    from pgdefer.sources.files import MAX_FILE_BYTES

    p = tmp_path / "machine.toml"
    p.write_text("# " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(TopologyError, match=f"at most {MAX_FILE_BYTES} bytes"):
        Topology.from_file(p)

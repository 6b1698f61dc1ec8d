"""policy="auto" outside the CLI, and bad policy names (issue 14, finding 6): a log and the topology file
imported from it get the same answer; ``Machine(t, policy="auto")`` resolves like the CLI (the one resolver,
pgdefer.generations.resolve); an unknown policy is a typed InvalidArgument that lists every policy and names
the closest one."""

from __future__ import annotations

import json

import pytest

import pgdefer
from pgdefer import Machine, Region, Topology
from pgdefer.sources import presets
from pgdefer.testing import run_cli
from shared_data import BOOTLOGS, need

GIB = 1 << 30
# gce-vm-1node-32g: kernel 5.4.0-1092-gcp (facts.json), whose release is v5.2; its Memory: line shows nothing
# deferred and no per-node line is printed (test_generations' EXPECTED_AUTO): eager. The 2-node EPYC runs
# 5.14.0-570 (RHEL 9.6) and prints per-node deferred lines: v5.10.
LOGS = {"gce-vm-1node-32g": "eager", "supermicro-h13dsg-epyc9004-2node-1536g": "v5.10"}


def _policy_of(argv, capsys):
    code, out, err = run_cli(["boot", "-q", "--json", "--stop-after", "memblock_free_all", "--no-check",
                              "--no-host-check", *argv], capsys)
    assert code == 0, err
    return json.loads(out)["policy"]


@pytest.mark.parametrize("stem", sorted(LOGS))
def test_auto_is_the_same_for_a_log_and_its_imported_file(stem, tmp_path, capsys):
    log = BOOTLOGS / f"{stem}.log"
    need(log)
    path = tmp_path / "machine.toml"
    code, _, err = run_cli(["topology", "import-dmesg", str(log), "-o", str(path)], capsys)
    assert code == 0, err
    assert _policy_of(["-t", f"dmesg:{log}"], capsys) == _policy_of(["-t", str(path)], capsys) == LOGS[stem]


def test_machine_policy_auto_resolves_like_the_cli():
    need(BOOTLOGS)
    # a boot log: the kernel's generation (eager: built without deferral, see LOGS)
    log = Topology.from_dmesg(BOOTLOGS / "gce-vm-1node-32g.log")
    assert Machine(log, policy="auto").policy == "eager"
    # a preset: the policy of the kernel it was measured with (m1-4node-64g: Waiman Long's 4.0 + series = v4.2)
    assert presets.info("m1-4node-64g").policy == "v4.2"
    assert Machine(presets.get("m1-4node-64g"), policy="auto").policy == "v4.2"
    # a hand-made map knows no kernel: v4.17, the model's default generation
    assert Machine(Topology(memory=[Region(1 << 20, 3 * GIB)]), policy="auto").policy == "v4.17"
    # the default of the CLI is auto; Python's stays explicit
    assert Machine(log).policy == pgdefer.DEFAULT_POLICY == "v4.17"


@pytest.mark.parametrize("name,closest", [("v4.71", "v4.17"), ("v5.1", "v5.10"), ("bogus", None)])
def test_unknown_policy_is_typed_lists_every_policy_and_the_closest(name, closest):
    t = Topology(memory=[Region(1 << 20, 3 * GIB)])
    with pytest.raises(pgdefer.InvalidArgument) as err:
        Machine(t, policy=name)
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in msg
    assert msg.startswith(f'unknown policy "{name}": expected one of ')
    assert all(f'"{p}"' in msg for p in pgdefer.POLICIES)
    assert msg.endswith(f'; did you mean "{closest}"?' if closest else '"rework-2025"]')


def test_compare_suggests_the_closest_policy(capsys):
    code, _, err = run_cli(["compare", "-q", "--policies", "v4.17,v5.8,v6.4,v4.71"], capsys)
    assert code == 2
    assert "unknown policy 'v4.71' in --policies" in err and "did you mean 'v4.17'?" in err

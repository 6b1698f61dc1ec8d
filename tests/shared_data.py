"""Where the tests find the real machines' logs (``../shared``, read in place, never copied), and one clear
failure when they are missing: a test that needs them fails naming the directory, it never skips (a run
without them must not look green)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BOOTLOGS = Path(os.environ.get("PGDEFER_BOOTLOGS") or SHARED / "bootlogs")
KERNEL_LAB = SHARED / "kernel-lab"


def missing(what: str, where: Path) -> None:
    """Fail the running test: ``what`` is not at ``where``."""
    pytest.fail(f"{what} not found in {where}: these tests read the shared real-machine logs in place "
                "(the project lives beside ../shared; set PGDEFER_BOOTLOGS for another boot-log directory)",
                pytrace=False)


def files(where: Path, pattern: str) -> list:
    """The files matching ``pattern`` in ``where``, or one placeholder path that does not exist, so that a
    parametrized test still runs, and fails through :func:`need` (an empty parameter set would be a skip)."""
    found = sorted(where.glob(pattern)) if where.is_dir() else []
    return found or [where / f"(no {pattern} here)"]


def need(*paths: Path) -> None:
    """Fail the running test unless every path exists."""
    for p in paths:
        if not p.exists():
            missing(p.name, p.parent)


def needs(*paths):
    """Decorator: the test fails (not skips) unless every path exists."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            need(*paths)
            return fn(*args, **kwargs)
        return run
    return wrap

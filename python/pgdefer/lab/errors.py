"""The lab's one error type: everything that stops a real boot (no QEMU, no kernel, a hung or panicked boot,
apt failing) is a :class:`LabError` with one line saying what and where."""

from __future__ import annotations

from ..errors import PgdeferError


class LabError(PgdeferError, RuntimeError):
    """A kernel-lab boot that cannot be run or did not finish: QEMU or the kernel missing, apt failing,
    a boot that hung (timeout) or panicked."""

"""Which kernel generation (pgdefer policy) a kernel release runs (docs/model.md §11.10).

One table, from the first upstream release of each generation to its policy. Distribution kernels
are mapped by their upstream base version (``5.14.0-570.23.1.el9_6`` is 5.14: a padata kernel with
``FPI_TO_TAIL``, ``v5.10``); stable/vendor backports of later changes are not modelled. The 2025
rework (``rework-2025``) has no confirmed release, so no version maps to it; ``posting-v2`` was never
released.

:func:`resolve` is the one place that decides ``policy="auto"`` (and the machine's CPUs per node) for the
command line, for topology files and for ``Machine(t, policy="auto")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._core import DEFAULT_POLICY
from .errors import PgdeferError

#: (first release, policy), ascending: a kernel runs the policy of the last entry at or below it.
GENERATIONS = (
    ((0, 0), "eager"),    # no CONFIG_DEFERRED_STRUCT_PAGE_INIT before 4.2
    ((4, 2), "v4.2"),     # 2 GiB prefix per node, pgdatinit threads
    ((4, 6), "v4.6"),     # max(2 GiB, node_spanned >> 8)
    ((4, 13), "v4.13"),   # + memblock-reserved memory within the prefix (B4 until 4.15)
    ((4, 17), "v4.17"),   # one-section prefix, deferred_grow_zone, pass under node_size_lock
    ((5, 2), "v5.2"),     # zone iterator, deferred_init_maxorder, retry only once
    ((5, 7), "v5.7"),     # the pass claims the node and runs with IRQs on
    ((5, 8), "v5.8"),     # padata inside each node's pass
    ((5, 10), "v5.10"),   # __free_pages_core with FPI_TO_TAIL
    ((6, 4), "v6.4"),     # deferred_free_pages frees MAX_ORDER blocks
    ((6, 11), "v6.11"),   # generic max_threads = node CPUs; Memory: printed after the passes
)


def kernel_policy(version) -> str:
    """The policy of a kernel version: a release string (``"5.14.0-570.23.1.el9_6.x86_64"``,
    ``"v4.17"``) or a tuple. Raises :class:`pgdefer.DmesgError` if no version can be read."""
    from .sources.dmesg import parse_version

    v = tuple(parse_version(version)[:2])
    return [policy for first, policy in GENERATIONS if first <= v][-1]


# --------------------------------------------------------------------------------------------------
# policy="auto": the one resolver (the CLI, topology files and Machine(t, policy="auto") all ask it)
# --------------------------------------------------------------------------------------------------

AUTO = "auto"
#: The policy of a machine whose kernel is not known (no log, preset or host kernel to read it from).
FALLBACK = DEFAULT_POLICY


@dataclass(frozen=True)
class Resolved:
    """What :func:`resolve` decided: the ``policy`` to run, the ``node_cpus`` of the machine (node -> CPUs, from
    its boot log; empty when unknown) and ``note``, a sentence saying why (empty for a policy asked by name)."""

    policy: str
    node_cpus: dict = field(default_factory=dict)
    note: str = ""


def check_policy(name) -> str:
    """``name`` if it is ``auto`` or a policy; the core checks the policy names (InvalidArgument listing them,
    with the closest one to a misspelt name)."""
    from . import _core
    from .errors import InvalidType

    if not isinstance(name, str):
        raise InvalidType(f"policy must be a string (a kernel generation or {AUTO!r}), got {name!r}")
    name = str.__str__(name)  # a pgdefer.Policy member is its name
    return name if name == AUTO else _core.check_policy(name)


def resolve(topology, requested: str = AUTO, preset: str | None = None) -> Resolved:
    """The policy and CPUs per node for the ``requested`` policy on ``topology`` (docs/model.md §11.10).

    A named policy is checked (:func:`check_policy`) and kept. ``auto`` reads, in order: the topology's
    :class:`~pgdefer.topology.KernelInfo` (a boot log, or a file imported from one): :func:`kernel_policy` of its
    version, but ``eager`` when the log shows nothing was deferred at mem_init (:func:`shows_no_deferral`); the
    preset it was built from (``preset`` names it, or ``topology.source`` is the preset): the policy of the
    kernel measured; this host's running kernel (``Topology.from_host()``); else v4.17. The CPUs per node are
    the KernelInfo's whatever the policy."""
    requested = check_policy(requested)
    kernel = getattr(topology, "kernel", None)
    cpus = dict(kernel.node_cpus) if kernel is not None else {}
    if requested != AUTO:
        return Resolved(requested, cpus)
    if kernel is not None and kernel.version is not None:
        try:
            chosen = kernel_policy(kernel.version)
        except PgdeferError:
            return Resolved(FALLBACK, cpus, f"policy auto: cannot read a release from kernel {kernel.version!r}, "
                                            f"using {FALLBACK}")
        base = f"policy auto: kernel {kernel.version} -> {chosen}"
        why = shows_no_deferral(topology, chosen)
        return Resolved("eager", cpus, f"{base}, but {why}, so using eager") if why else Resolved(chosen, cpus, base)
    info = _preset_of(topology, preset)
    if info is not None:
        kern = f" (kernel {info.kernel})" if info.kernel else ""
        return Resolved(info.policy, cpus, f"policy auto: preset {info.name}{kern} -> {info.policy}")
    release = getattr(getattr(topology, "source", None), "kernel_release", None)
    if release:
        try:
            return Resolved(kernel_policy(release), cpus,
                            f"policy auto: this host runs kernel {release} -> {kernel_policy(release)}")
        except PgdeferError:
            pass
    if kernel is not None:
        return Resolved(FALLBACK, cpus, f"policy auto: the log does not print its kernel version, using {FALLBACK}")
    return Resolved(FALLBACK, cpus, f"policy auto: not a boot log or preset, using {FALLBACK}")


def shows_no_deferral(topology, policy: str) -> str:
    """Why the log behind ``topology`` shows a kernel built without CONFIG_DEFERRED_STRUCT_PAGE_INIT, or "".

    It does when it prints no per-node deferred-init line and its ``Memory:`` line misses less than half of
    what ``policy`` would leave uninitialised at mem_init (available = total - reserved, give or take early
    allocations). Not decidable for a generation that prints ``Memory:`` after the passes (6.11+)."""
    from . import POLICY_FACTS

    kernel = topology.kernel
    facts = POLICY_FACTS[policy]
    line = kernel.memory_line or {}
    if (not facts["defers"] or kernel.deferred_init_lines is not False or "reserved_kib" not in line
            or "available_kib" not in line or facts["mem_init_print"] == "late"):
        return ""
    from .machine import deferral

    deferred_kib = sum(n.deferred_pages for n in deferral(topology, policy)) * topology.geometry.page_size // 1024
    missing_kib = line["total_kib"] - line["reserved_kib"] - line.get("cma_reserved_kib", 0) - line["available_kib"]
    if not deferred_kib or missing_kib >= deferred_kib / 2:
        return ""
    return (f"the log shows no deferral: its Memory: line misses only {missing_kib}K of total - reserved, where that "
            f"policy would leave about {deferred_kib}K uninitialised at mem_init, and no per-node deferred-init line "
            "is printed: the kernel ran without CONFIG_DEFERRED_STRUCT_PAGE_INIT")


def _preset_of(topology, preset):
    """The :class:`~pgdefer.sources.presets.Preset` a topology was built from, or None."""
    from .sources.presets import Preset, info

    if preset is not None:
        return info(preset)
    src = getattr(topology, "source", None)
    return src if isinstance(src, Preset) else None

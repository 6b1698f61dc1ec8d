"""Which kernel generation (pgdefer policy) a kernel release runs (docs/model.md §11.10).

One table, from the first upstream release of each generation to its policy. Distribution kernels
are mapped by their upstream base version (``5.14.0-570.23.1.el9_6`` is 5.14: a padata kernel with
``FPI_TO_TAIL``, ``v5.10``); stable/vendor backports of later changes are not modelled. The 2025
rework (``rework-2025``) has no confirmed release, so no version maps to it; ``posting-v2`` was never
released.
"""

from __future__ import annotations

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

"""GFP flags as the kernel prints them (``gfp_flags=GFP_KERNEL|__GFP_ZERO`` in ``mm_page_alloc`` lines) and the
migratetypes they ask for (docs/model.md §5.1).

``gfp_migratetype`` is include/linux/gfp.h's ``gfp_migratetype()``: ``__GFP_MOVABLE`` -> MOVABLE,
``__GFP_RECLAIMABLE`` -> RECLAIMABLE, neither -> UNMOVABLE (GFP_KERNEL, GFP_ATOMIC, ...). The composite names
``show_gfp_flags`` prints in place of their bits are expanded first. The zone half of the mapping is
:func:`pgdefer.lab.trace.gfp_zone`.
"""

from __future__ import annotations

from ._core import MIGRATETYPES
from .errors import InvalidArgument

__all__ = ["MIGRATETYPES", "migratetype", "gfp_migratetype"]

# composite names (include/trace/events/mmflags.h) that contain __GFP_MOVABLE or __GFP_RECLAIMABLE
_MOVABLE = {"__GFP_MOVABLE", "GFP_HIGHUSER_MOVABLE", "GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT"}
_RECLAIMABLE = {"__GFP_RECLAIMABLE"}


def migratetype(value) -> str:
    """The canonical name (one of :data:`MIGRATETYPES`) of a migratetype given by name (any case, with or
    without ``MIGRATE_``) or by the kernel's number (0 Unmovable, 1 Movable, 2 Reclaimable, 3 HighAtomic)."""
    if isinstance(value, bool):
        raise InvalidArgument(f"migratetype must be a name or a number, got {value!r}")
    if isinstance(value, int):
        if 0 <= value < len(MIGRATETYPES):
            return MIGRATETYPES[value]
    elif isinstance(value, str):
        key = value.lower().removeprefix("migrate_")
        for name in MIGRATETYPES:
            if name.lower() == key:
                return name
    raise InvalidArgument(f"unknown migratetype {value!r}: expected one of {', '.join(MIGRATETYPES)} "
                          f"(or 0..{len(MIGRATETYPES) - 1})")


def gfp_migratetype(flags: str) -> str:
    """The migratetype a GFP mask (as ``show_gfp_flags`` prints it, ``|``-separated) allocates from."""
    toks = set(flags.split("|"))
    if toks & _MOVABLE:
        return "Movable"
    if toks & _RECLAIMABLE:
        return "Reclaimable"
    return "Unmovable"

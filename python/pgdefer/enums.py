"""Enums of the core's names: page states, boot init paths, zones and policies.

Each is built at import from what the Rust core exports (``pgdefer._core.PAGE_STATES``, ``INIT_BY``,
``ZONES``, ``POLICIES``), never re-typed here. Type checkers read ``enums.pyi``, which stubtest holds
equal to these members (tests/test_typing.py), so a name added to the core fails the tests until the
stub lists it.
"""

from __future__ import annotations

from enum import Enum, IntEnum

from . import _core

__all__ = ["PageState", "InitBy", "Zone", "Policy", "member_name"]


def member_name(name: str) -> str:
    """The enum member name of a core name: upper case, ``.`` and ``-`` as ``_`` ("v4.17" -> "V4_17")."""
    return name.upper().replace(".", "_").replace("-", "_")


PageState = IntEnum("PageState", {member_name(n): i for i, n in enumerate(_core.PAGE_STATES)}, module=__name__)
PageState.__doc__ = """State of a struct page (spec §1.5), the values of ``Machine.pages.state``: UNINIT
(descriptor never initialised: must not be read), INIT (``__init_single_page`` done, not yet handed to anyone),
RESERVED (memblock-reserved or a hole), FREE (in a buddy free list), ALLOCATED (handed out by alloc_pages)."""

InitBy = IntEnum("InitBy", {member_name(n): i for i, n in enumerate(_core.INIT_BY)}, module=__name__)
InitBy.__doc__ = """Which boot path initialised a struct page, the values of ``Machine.pages.init_by``: NONE (not
yet), EARLY (memmap_init before the cut), HOLE (init_unavailable_range), MEMBLOCK_FREE_ALL (a reserved page
above the cut, initialised by memblock_free_all's reserve_bootmem_region), GROW (deferred_grow_zone), PASS
(the per-node deferred_init_memmap pass)."""

Zone = IntEnum("Zone", {member_name(n): i for i, n in enumerate(_core.ZONES)}, module=__name__)
Zone.__doc__ = """Zone index (the kernel's ``enum zone_type``), the values of ``Machine.pages.zone``;
``pgdefer.ZONE_NAMES[Zone.NORMAL]`` is the zone's kernel name ("Normal")."""

Policy = Enum("Policy", {member_name(n): n for n in _core.POLICIES}, type=str, module=__name__)
Policy.__doc__ = """A kernel generation's deferred-init policy (docs/model.md); each member is also its ``str``
name, so ``Machine(t, policy=Policy.V4_17)`` equals ``policy="v4.17"``. Facts of each: ``pgdefer.POLICY_FACTS``."""

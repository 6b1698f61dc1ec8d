"""The page allocations a traced kernel-lab boot made before its first trace line, as far as the log states them.

``trace_event=`` starts printing at ``trace_init`` in ``start_kernel``; between ``memblock_free_all`` and there the
kernel already took pages from the buddy allocator (boot pageset: straight from the buddy lists, all
GFP_KERNEL, so Unmovable). What the log and the kernel's source (6.1 and 6.12 ``start_kernel`` order) say:

1. ``mem_init``: ``preallocate_vmalloc_pages``, 65 order-0 pages on x86_64 (:data:`PREALLOCATE_VMALLOC_PAGES`).
2. ``kmem_cache_init`` and the rest of ``mm_core_init`` (SLUB bootstrap: the boot caches' and kmalloc caches'
   first slabs, of orders 0-3 by the "SLUB: ... Order=0-3" line): the log prints no figure for them; they are
   the part left over (:func:`pre_trace_allocations` does not invent them).
3. ``ftrace_init``: ``ftrace_allocate_records`` asks for ``order = fls(pages) - 1`` of the pages still
   needed, group after group, so the groups of "ftrace: allocated P pages with G groups" are the set bits of
   P, highest first (:func:`ftrace_group_orders`).
4. ``early_trace_init`` -> ``tracer_alloc_buffers``, in this order: ``temp_buffer`` (``ring_buffer_alloc(
   PAGE_SIZE)``: 2 sub-buffers and the reader page), ``trace_create_savedcmd`` (one order-6 block: the
   ``saved_cmdlines_buffer`` holds ``map_pid_to_cmdline[PID_MAX_DEFAULT + 1]``, 128 KiB + a few bytes; 6.1
   kmalloc()s it, which is ``kmalloc_large``, 6.12 ``alloc_pages``; both ``get_order`` = 6), then the boot
   CPU's global buffer (reader page first, then the sub-buffers) and the snapshot buffer
   (:func:`~pgdefer.lab.compare.ring_buffer_pages` counts those two).
"""

from __future__ import annotations

import re

from .compare import PREALLOCATE_VMALLOC_PAGES, tracer_alloc_buffers
from .errors import LabError

_RE_GROUPS = re.compile(r"ftrace: allocated (\d+) pages with (\d+) groups")


def ftrace_group_orders(text: str) -> list[int] | None:
    """The orders of ``ftrace_init``'s record groups, in allocation order, from the log's "ftrace: allocated P
    pages with G groups" line (None without one). A LabError when P's set bits are not G (a group allocation
    failed and a smaller order was taken: the line no longer says which)."""
    m = _RE_GROUPS.search(text)
    if not m:
        return None
    pages, groups = int(m.group(1)), int(m.group(2))
    orders = [k for k in range(pages.bit_length() - 1, -1, -1) if pages >> k & 1]
    if len(orders) != groups:
        raise LabError(f"'ftrace: allocated {pages} pages with {groups} groups': {pages} has {len(orders)} set "
                       "bits, so a group fell back to a smaller order; its orders are unknown")
    return orders


def pre_trace_allocations(text: str, cmdline: str, page_size: int = 4096) -> list[tuple[str, int, int]]:
    """[(what, order, count)] in the kernel's order: the untraced allocations the log states (module docstring);
    the SLUB bootstrap between items 1 and 3 is not among them."""
    out = [("mem_init: preallocate_vmalloc_pages", 0, PREALLOCATE_VMALLOC_PAGES)]
    orders = ftrace_group_orders(text)
    if orders is None:   # no ftrace, no tracing ring buffers either
        return out
    out += [("ftrace_init: record group", k, 1) for k in orders]
    return out + tracer_alloc_buffers(cmdline, page_size)

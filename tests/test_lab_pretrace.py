"""pgdefer.lab.pretrace: the untraced pre-trace allocations a kernel-lab log states, derived by hand."""

import pytest

from pgdefer.lab.errors import LabError
from pgdefer.lab.pretrace import ftrace_group_orders, pre_trace_allocations

CMD = "console=ttyS0 trace_event=kmem:mm_page_alloc,kmem:mm_page_free tp_printk trace_buf_size=1M"


def test_ftrace_groups_are_the_set_bits_of_the_pages_highest_first():
    # 6.1 (lab02): 158 = 128 + 16 + 8 + 4 + 2 -> orders 7, 4, 3, 2, 1: 5 groups, as the line says
    assert ftrace_group_orders("ftrace: allocated 158 pages with 5 groups") == [7, 4, 3, 2, 1]
    # 6.12 (lab01): 180 = 128 + 32 + 16 + 4 -> orders 7, 5, 4, 2
    assert ftrace_group_orders("ftrace: allocated 180 pages with 4 groups") == [7, 5, 4, 2]
    assert ftrace_group_orders("no ftrace here") is None


def test_a_group_count_the_bits_do_not_give_is_a_lab_error():
    # 158 has 5 set bits: 6 groups means a fallback to a smaller order somewhere, orders unknown
    with pytest.raises(LabError):
        ftrace_group_orders("ftrace: allocated 158 pages with 6 groups")


def test_pre_trace_allocations_in_start_kernel_order():
    steps = pre_trace_allocations("ftrace: allocated 158 pages with 5 groups", CMD)
    assert [(o, c) for _, o, c in steps] == [
        (0, 65),                                 # 32 TiB / 512 GiB + 1 vmalloc PGD-level pages
        (7, 1), (4, 1), (3, 1), (2, 1), (1, 1),  # ftrace groups
        (0, 3),        # temp_buffer: DIV_ROUND_UP(4096, 4080) = 2 sub-buffers + the reader page
        (6, 1),        # saved_cmdlines_buffer: 4 * 32769 bytes > 128 KiB -> get_order 6
        (0, 259),      # 1 MiB / 4080 -> 257.003 -> 258 sub-buffers + the reader page
        (0, 3),        # snapshot buffer of 1 byte: the minimum 2 sub-buffers + the reader page
    ]
    # 65 + 158 + 3 + 64 + 259 + 3
    assert sum(c << o for _, o, c in steps) == 552


def test_without_ftrace_only_the_vmalloc_pages():
    assert [(o, c) for _, o, c in pre_trace_allocations("", CMD)] == [(0, 65)]

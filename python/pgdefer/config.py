"""Sizes and the machine geometry (page size, section size, pageblock and max order)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from . import _core
from .errors import GeometryError, InvalidArgument, InvalidType

_SUFFIX = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_SIZE_RE = re.compile(r"^\s*(0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?)\s*([KMGTPE]?)(?:i?B)?\s*$", re.IGNORECASE)
#: Longest size string read: 2^64 is 20 decimal digits; anything much longer is not a size (and int() of
#: thousands of digits is slow and refused by Python's int_max_str_digits).
_SIZE_MAX_CHARS = 64

ZONE_NAMES = tuple(_core.ZONES)  # zone names in index order, the core's


def parse_size(value, what="size") -> int:
    """Parse a byte size: an int, or a kernel-style string ("4G", "512M", "0x1000", "16MiB", "1.5T").

    Suffixes are binary (K = 1024), as in the kernel's ``memparse``. Decimal fractions are exact
    ("9007199254740993.0" is 9007199254740993 bytes, not a float's neighbour). Errors are
    :class:`~pgdefer.errors.InvalidArgument` (a ``ValueError``; :class:`~pgdefer.errors.InvalidType` for a
    value that is not an int or str).
    """
    if isinstance(value, bool):
        raise InvalidType(f"{what}: expected a size, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"{what}: negative size {value}")
        return value
    if not isinstance(value, str):
        raise InvalidType(f"{what}: expected an int or a size string like '4G', got {value!r}")
    if len(value) > _SIZE_MAX_CHARS:
        raise InvalidArgument(f"{what}: a size string of {len(value)} characters (at most {_SIZE_MAX_CHARS}):"
                              f" {value[:20]!r}...")
    m = _SIZE_RE.match(value)
    if not m:
        raise InvalidArgument(f"{what}: cannot parse size {value!r} (expected e.g. 4096, '4K', '128M', '0x1000')")
    num, suffix = m.group(1), m.group(2).upper()
    shift = _SUFFIX[suffix]
    if num.lower().startswith("0x"):
        return int(num, 16) << shift
    if "." in num:
        whole = Fraction(num) * (1 << shift)  # exact: a float would round beyond 2^53
        if whole.denominator != 1:
            raise InvalidArgument(f"{what}: {value!r} is not a whole number of bytes")
        return int(whole)
    return int(num) << shift


def format_size(nbytes: int) -> str:
    """Shortest exact kernel-style spelling of a size ("4G", "1536M", "4097K", "12345")."""
    for suffix in ("E", "P", "T", "G", "M", "K"):
        shift = _SUFFIX[suffix]
        if nbytes and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift}{suffix}"
    return str(nbytes)


def human_size(nbytes: float) -> str:
    """Approximate size for people to read ("1.5 GiB", "768 MiB", "12 B"); :func:`format_size` is the exact one."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            v = nbytes / (1 << shift)
            return f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{int(nbytes)} B"


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class Geometry:
    """Page size, sparsemem section size, pageblock order and MAX_PAGE_ORDER (inclusive).

    The default is x86_64: 4 KiB pages, 128 MiB sections (PAGES_PER_SECTION = 32768),
    pageblock_order 9, MAX_PAGE_ORDER 10. Small geometries (e.g. ``section_size="256K", max_order=4,
    pageblock_order=3``, i.e. 64-page sections) keep tests fast.
    """

    page_size: int = _core.DEFAULT_GEOMETRY[0]
    section_size: int = _core.DEFAULT_GEOMETRY[1]
    pageblock_order: int = _core.DEFAULT_GEOMETRY[2]
    max_order: int = _core.DEFAULT_GEOMETRY[3]

    def __init__(self, page_size: int | str = page_size, section_size: int | str = section_size,
                 pageblock_order: int = pageblock_order, max_order: int = max_order) -> None:
        try:
            ps = parse_size(page_size, "page_size")
            ss = parse_size(section_size, "section_size")
        except ValueError as e:
            raise GeometryError(str(e)) from None
        for name, val in (("pageblock_order", pageblock_order), ("max_order", max_order)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 0 or val > 40:
                raise GeometryError(f"{name} must be an int in 0..40, got {val!r}")
        if not _is_pow2(ps) or ps < 512:
            raise GeometryError(f"page_size must be a power of two >= 512, got {ps}")
        if not _is_pow2(ss) or ss <= ps:
            raise GeometryError(f"section_size must be a power of two larger than page_size ({ps}), got {ss}")
        if ss > 1 << _core.MAX_PHYSMEM_BITS:
            raise GeometryError(f"section_size {format_size(ss)} is larger than the {_core.MAX_PHYSMEM_BITS}-bit "
                                "physical address space")
        pps = ss // ps
        if not (1 << pageblock_order) <= (1 << max_order) <= pps:
            raise GeometryError(
                f"need pageblock ({1 << pageblock_order} pages) <= MAX_ORDER block ({1 << max_order} pages)"
                f" <= section ({pps} pages); got pageblock_order={pageblock_order}, max_order={max_order},"
                f" section_size={format_size(ss)}")
        object.__setattr__(self, "page_size", ps)
        object.__setattr__(self, "section_size", ss)
        object.__setattr__(self, "pageblock_order", pageblock_order)
        object.__setattr__(self, "max_order", max_order)

    @property
    def page_shift(self) -> int:
        """log2 of the page size (PAGE_SHIFT: 12 for 4 KiB pages)."""
        return self.page_size.bit_length() - 1

    @property
    def pages_per_section(self) -> int:
        """PAGES_PER_SECTION."""
        return self.section_size // self.page_size

    @property
    def pageblock_nr_pages(self) -> int:
        """Pages per pageblock (pageblock_nr_pages = 1 << pageblock_order)."""
        return 1 << self.pageblock_order

    @property
    def max_order_nr_pages(self) -> int:
        """MAX_ORDER_NR_PAGES (1 << MAX_PAGE_ORDER)."""
        return 1 << self.max_order

    def pfn_up(self, addr: int) -> int:
        """PFN_UP: first pfn whose page starts at or after addr."""
        return -(-addr // self.page_size)

    def pfn_down(self, addr: int) -> int:
        """PFN_DOWN: pfn of the page containing addr."""
        return addr // self.page_size

    def to_dict(self) -> dict:
        """The geometry as plain data (sizes as strings such as "4K"), as topology files write it."""
        return {"page_size": format_size(self.page_size), "section_size": format_size(self.section_size),
                "pageblock_order": self.pageblock_order, "max_order": self.max_order}

    def __repr__(self) -> str:
        return (f"Geometry(page_size={format_size(self.page_size)!r}, section_size={format_size(self.section_size)!r},"
                f" pageblock_order={self.pageblock_order}, max_order={self.max_order})")

# Host memory the Rust core spends per simulated page (flags, node, order, initialised-by, free-list
# links: the core's page::BYTES_PER_PAGE; the budget is 16). Used to refuse machines that would not fit.
HOST_BYTES_PER_PAGE = _core.BYTES_PER_PAGE

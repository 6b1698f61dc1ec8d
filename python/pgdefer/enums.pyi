# Static view of enums.py for type checkers; stubtest (tests/test_typing.py) fails when a member here and the
# core's names (which build the runtime enums) differ.
from enum import Enum, IntEnum

__all__ = ["PageState", "InitBy", "Zone", "Policy", "member_name"]

def member_name(name: str) -> str: ...

class PageState(IntEnum):
    UNINIT = 0
    INIT = 1
    RESERVED = 2
    FREE = 3
    ALLOCATED = 4

class InitBy(IntEnum):
    NONE = 0
    EARLY = 1
    HOLE = 2
    MEMBLOCK_FREE_ALL = 3
    GROW = 4
    PASS = 5

class Zone(IntEnum):
    DMA = 0
    DMA32 = 1
    NORMAL = 2
    MOVABLE = 3

class Policy(str, Enum):
    def __new__(cls, value: str) -> Policy: ...
    EAGER = "eager"
    V4_2 = "v4.2"
    V4_6 = "v4.6"
    V4_13 = "v4.13"
    POSTING_V2 = "posting-v2"
    V4_17 = "v4.17"
    V5_2 = "v5.2"
    V5_7 = "v5.7"
    V5_8 = "v5.8"
    V5_10 = "v5.10"
    V6_4 = "v6.4"
    V6_11 = "v6.11"

    REWORK_2025 = "rework-2025"

"""Old import path of :mod:`pgdefer.sources.dmesg`, kept so that ``import pgdefer.dmesg`` keeps working.

The name is an alias, not a copy: ``pgdefer.dmesg is pgdefer.sources.dmesg``.
"""

import sys
from typing import TYPE_CHECKING

from .sources import dmesg

if TYPE_CHECKING:  # type checkers read the names of the module this one stands for
    from .sources.dmesg import *  # noqa: F403

sys.modules[__name__] = dmesg

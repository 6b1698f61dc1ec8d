"""Old import path of :mod:`pgdefer.sources.presets`, kept so that ``import pgdefer.presets`` keeps working.

The name is an alias, not a copy: ``pgdefer.presets is pgdefer.sources.presets``.
"""

import sys
from typing import TYPE_CHECKING

from .sources import presets

if TYPE_CHECKING:  # type checkers read the names of the module this one stands for
    from .sources.presets import *  # noqa: F403

sys.modules[__name__] = presets

"""Old import path of :mod:`pgdefer.sources.presets`, kept so that ``import pgdefer.presets`` keeps working.

The name is an alias, not a copy: ``pgdefer.presets is pgdefer.sources.presets``.
"""

import sys

from .sources import presets

sys.modules[__name__] = presets

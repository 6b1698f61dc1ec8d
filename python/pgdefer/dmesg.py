"""Old import path of :mod:`pgdefer.sources.dmesg`, kept so that ``import pgdefer.dmesg`` keeps working.

The name is an alias, not a copy: ``pgdefer.dmesg is pgdefer.sources.dmesg``.
"""

import sys

from .sources import dmesg

sys.modules[__name__] = dmesg

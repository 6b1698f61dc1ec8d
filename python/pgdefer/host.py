"""Old import path of :mod:`pgdefer.sources.host`, kept so that ``import pgdefer.host`` keeps working.

The name is an alias, not a copy: ``pgdefer.host is pgdefer.sources.host``.
"""

import sys

from .sources import host

sys.modules[__name__] = host

"""Old import path of :mod:`pgdefer.sources.files`, kept so that ``import pgdefer.topofile`` keeps working.

The name is an alias, not a copy: ``pgdefer.topofile is pgdefer.sources.files``.
"""

import sys

from .sources import files

sys.modules[__name__] = files

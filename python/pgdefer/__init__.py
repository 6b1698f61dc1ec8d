"""pgdefer: an executable model of Linux's deferred struct page initialisation with on-demand growth."""

from .config import ZONE_NAMES, Geometry, format_size, parse_size
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .topology import Region, Topology, ZoneSpan

DEFAULT_POLICY = "v4.17"

try:  # the Rust core; absent only in a source tree that was never built
    from ._core import POINTS, POLICY_FACTS  # noqa: F401
    from ._core import POLICIES as _POLICIES
    POLICIES = tuple(_POLICIES)  # every policy, in release order (the core's policy table)
    from . import sweep  # noqa: F401 - a callable module: pgdefer.sweep(...) runs a sweep (pandas, Dask: lazily)
    from .machine import Machine  # noqa: F401
except ImportError as _e:  # pragma: no cover - exercised only without the extension
    _IMPORT_ERROR = _e

__all__ = ["Geometry", "Region", "Topology", "ZoneSpan", "Machine", "POLICIES", "POLICY_FACTS", "DEFAULT_POLICY",
           "POINTS", "ZONE_NAMES", "sweep", "parse_size", "format_size", *_errors_all]

"""pgdefer: an executable model of Linux's deferred struct page initialisation with on-demand growth."""

from .config import ZONE_NAMES, Geometry, format_size, parse_size
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .topology import KernelInfo, Region, Topology, ZoneSpan

try:  # the installed distribution's version (pyproject.toml's), one owner
    from importlib.metadata import PackageNotFoundError as _NotFound
    from importlib.metadata import version as _version
    __version__ = _version("pgdefer")
except _NotFound:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"

try:  # the Rust core; absent only in a source tree that was never built
    from ._core import DEFAULT_POLICY, POINTS, POLICY_FACTS  # noqa: F401 - the policy modelled when none is asked for
    from ._core import POLICIES as _POLICIES
    POLICIES = tuple(_POLICIES)  # every policy, in release order (the core's policy table)
    from . import sweep  # noqa: F401 - a callable module: pgdefer.sweep(...) runs a sweep (pandas, Dask: lazily)
    from .enums import InitBy, PageState, Policy, Zone  # noqa: F401
    from .machine import Machine  # noqa: F401
except ImportError as _e:  # pragma: no cover - exercised only without the extension
    _IMPORT_ERROR = _e

__all__ = ["__version__", "Geometry", "KernelInfo", "Region", "Topology", "ZoneSpan", "Machine", "POLICIES",
           "POLICY_FACTS", "DEFAULT_POLICY", "POINTS", "ZONE_NAMES", "PageState", "InitBy", "Zone", "Policy", "sweep",
           "parse_size", "format_size", *_errors_all]

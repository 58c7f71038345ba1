"""Storage usage and quota: measurement backends and the per-server tracker.

Backends (``SciTeXExtension.quota_backend_class``): ``scan`` (a cached background walk,
the default), ``xfs`` (XFS quotas through ``xfs_quota``), ``lustre`` (``lfs quota``).
See ``docs/quota.md``.
"""

from .base import (
    BACKEND_ALIASES,
    LIMIT_ENV,
    CommandResult,
    ProjectUsage,
    QuotaBackend,
    QuotaBackendType,
    QuotaCommandError,
    Usage,
    UsageUnavailable,
    limit_from_environ,
    run_command,
)
from .lustre import LustreQuotaBackend
from .scan import ScanQuotaBackend, scan_tree
from .tracker import QuotaExceeded, QuotaSnapshot, QuotaTracker, Reservation
from .xfs import XfsQuotaBackend

__all__ = [
    "BACKEND_ALIASES",
    "LIMIT_ENV",
    "CommandResult",
    "LustreQuotaBackend",
    "ProjectUsage",
    "QuotaBackend",
    "QuotaBackendType",
    "QuotaCommandError",
    "QuotaExceeded",
    "QuotaSnapshot",
    "QuotaTracker",
    "Reservation",
    "ScanQuotaBackend",
    "Usage",
    "UsageUnavailable",
    "XfsQuotaBackend",
    "limit_from_environ",
    "run_command",
    "scan_tree",
]

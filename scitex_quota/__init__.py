"""Storage usage measurement shared by the hub and the notebook server.

The hub (the scitex hub service, the spawner's start-up check) and the notebook server
(``scitex_server_ext``) both measure users' trees, and those two never import each
other: what both need lives here. Standard library only, no settings, no event-loop
machinery of its own: backends with timers and traitlets stay in
``scitex_server_ext.quota``.
"""

from .command import CommandResult, CommandRunner, QuotaCommandError, mount_point_of, run_command
from .lustre import parse_lfs_quota
from .scan import ScanCancelled, ScanResult, du_scan, scan_tree
from .usage import LIMIT_ENV, ProjectUsage, Usage, format_bytes, limit_from_environ
from .xfs import parse_xfs_quota, parse_xfs_report

__all__ = [
    "LIMIT_ENV",
    "CommandResult",
    "CommandRunner",
    "ProjectUsage",
    "QuotaCommandError",
    "ScanCancelled",
    "ScanResult",
    "Usage",
    "du_scan",
    "format_bytes",
    "limit_from_environ",
    "mount_point_of",
    "parse_lfs_quota",
    "parse_xfs_quota",
    "parse_xfs_report",
    "run_command",
    "scan_tree",
]

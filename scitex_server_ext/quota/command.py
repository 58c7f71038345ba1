"""Shared base of the backends that ask a filesystem quota tool (``xfs_quota``, ``lfs``).

The tool answers with the kernel's (or Lustre's) own counters, so the total is exact and
cheap; it knows nothing of subdirectories, so per-project numbers still come from a walk,
of ``<root>/projects`` only and less often (``projects_interval``).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from traitlets import Bool, Callable, Enum, Float, List, TraitError, Unicode, default, validate

from scitex_quota.command import CommandRunner, QuotaCommandError, mount_point_of, run_command
from scitex_quota.scan import scan_tree
from scitex_quota.usage import ProjectUsage, Usage

from .base import QuotaBackend

__all__ = ["CommandQuotaBackend", "mount_point_of"]

# \Z, not $: "1001\n" must not pass (the id goes into an xfs_quota command string).
_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")


class CommandQuotaBackend(QuotaBackend):
    """Usage and hard limit from a quota tool; per-project usage from a walk of ``projects``."""

    quota_type = Enum(
        ["project", "user"],
        default_value="project",
        config=True,
        help="""Which quota holds the user's tree: ``project`` (a project id assigned to the
        user's directory; the usual set-up for per-directory quotas) or ``user`` (the
        user's own quota on the filesystem).""",
    )

    quota_id = Unicode(
        config=True,
        help="""The project id (``quota_type = 'project'``) or user name (``'user'``) to ask
        about. Defaults to ``$SCITEX_QUOTA_PROJECT_ID`` for projects (the hub's batch
        script sets it) and to the current user for user quotas.""",
    )

    mount = Unicode(
        config=True,
        help="""Mount point of the filesystem to ask about, as the notebook server sees
        it. Defaults to the mount point that holds the user's root.""",
    )

    command_prefix = List(
        Unicode(),
        config=True,
        help="""Words put before the tool's command line, e.g. ``["sudo", "-n"]`` where
        reading project quotas needs privileges the user lacks.""",
    )

    command_timeout = Float(
        30.0,
        config=True,
        help="Seconds after which the quota tool is killed and the attempt fails.",
    )

    scan_projects = Bool(
        True,
        config=True,
        help="""Also walk ``<root>/projects`` for per-project usage (the quota tool reports
        only the total). Off: ``projects`` lists names with no usage walk (0 bytes).""",
    )

    projects_interval = Float(
        600.0, config=True, help="Seconds between walks of ``<root>/projects``."
    )

    runner = Callable(
        default_value=run_command,
        help="""Coroutine function ``(argv, timeout) -> CommandResult`` that runs the tool.
        Replaced in tests to replay recorded output.""",
    )

    @default("quota_id")
    def _default_quota_id(self) -> str:
        if self.quota_type == "user":
            return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
        return os.environ.get("SCITEX_QUOTA_PROJECT_ID", "")

    @validate("quota_id")
    def _check_quota_id(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        # The id becomes part of the tool's command string (xfs_quota -c '...').
        if value and not _SAFE_ID.match(value):
            raise TraitError(
                f"{type(self).__name__}.quota_id must be a project number or user name "
                f"(letters, digits, '_', '.', '-'), got {value!r}"
            )
        return value

    @default("mount")
    def _default_mount(self) -> str:
        return mount_point_of(self.root) if self.root else ""

    @validate("command_timeout", "projects_interval")
    def _check_positive(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value > 0:
            raise TraitError(
                f"{type(self).__name__}.{proposal['trait'].name} must be > 0, got {value}"
            )
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._projects: tuple[ProjectUsage, ...] = ()
        self._projects_at: float | None = None

    # -- what subclasses implement -------------------------------------------------

    def command(self) -> list[str]:
        """The tool's argv (without ``command_prefix``)."""
        raise NotImplementedError

    def parse(self, stdout: str) -> tuple[int, int | None]:
        """``(used_bytes, hard_limit_bytes or None)`` from the tool's output."""
        raise NotImplementedError

    # -- measuring -----------------------------------------------------------------

    async def measure(self) -> Usage:
        if not self.quota_id:
            raise QuotaCommandError(
                f"no quota id: set {type(self).__name__}.quota_id or $SCITEX_QUOTA_PROJECT_ID"
            )
        argv: Sequence[str] = [*self.command_prefix, *self.command()]
        runner: CommandRunner = self.runner
        result = await runner(argv, self.command_timeout)
        if result.returncode != 0:
            raise QuotaCommandError(
                f"{argv[0]} exited with status {result.returncode}: "
                f"{result.stderr.strip()[:300] or result.stdout.strip()[:300]}"
            )
        used, limit = self.parse(result.stdout)
        return Usage(
            used_bytes=used,
            limit_bytes=limit,
            measured_at=datetime.now(timezone.utc),
            source=self.source,
            projects=await self._project_usage(),
        )

    async def _project_usage(self) -> tuple[ProjectUsage, ...]:
        now = time.monotonic()
        if self._projects_at is not None and now - self._projects_at < self.projects_interval:
            return self._projects
        if self.scan_projects:
            result = await asyncio.to_thread(
                scan_tree, self.root, projects_dir=self.projects_dir, only_projects=True
            )
            sizes = result.projects
        else:
            names = await asyncio.to_thread(
                _project_names, os.path.join(self.root, self.projects_dir)
            )
            sizes = dict.fromkeys(names, 0)
        self._projects = tuple(ProjectUsage(n, s) for n, s in sorted(sizes.items()))
        self._projects_at = now
        return self._projects


def _project_names(projects_root: str) -> list[str]:
    try:
        with os.scandir(projects_root) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []

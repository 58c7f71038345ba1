"""One project's git repository: git run in it, its status, config and remote, as JSON.

Shared by the manager (list, create, import, status) and sync. :class:`ProjectError`, the
error every project operation raises with the HTTP status a handler answers with, is here
too, so that neither of those two modules imports the other's internals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import git
from ..git import GiteaOrigin, GitError, GitRunner, GitSettings, InvalidRemote, StatusSummary

log = logging.getLogger(__name__)

MAX_LISTED_PATHS = 200

NO_GITEA_MESSAGE = (
    "No Gitea is configured on this site (SCITEX_GITEA_URL is not set): projects are local git "
    "repositories and cannot be synced or imported."
)


class ProjectError(Exception):
    """An operation failed in a way the user should hear about, with its HTTP status."""

    def __init__(
        self, status: int, reason: str, message: str, extra: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.extra = dict(extra or {})


def bad_request(message: str) -> ProjectError:
    return ProjectError(400, "Bad Request", message)


@dataclass(frozen=True)
class ProjectGit:
    """Git commands in a project's working tree; a failure becomes a :class:`ProjectError`."""

    runner: GitRunner
    settings: GitSettings

    @property
    def origin(self) -> GiteaOrigin | None:
        return self.settings.origin

    async def run(
        self, argv: list[str], cwd: Path, *, check: bool = True, network: bool = False
    ) -> git.GitResult:
        """Run git; a failure is 502 for a command that talks to Gitea, else 500."""
        try:
            return await self.runner.run(argv, str(cwd), check=check)
        except GitError as e:
            log.warning("%s", e)
            if network:
                raise ProjectError(502, "Gitea Transport Failed", str(e)) from None
            raise ProjectError(500, "Git Failed", str(e)) from None

    async def config(self, path: Path) -> dict[str, str]:
        result = await self.run(git.read_config_argv(self.settings), path, check=False)
        values: dict[str, str] = {}
        for entry in result.stdout.decode("utf-8", "replace").split("\0"):
            key, _, value = entry.partition("\n")
            if key:
                values[key] = value
        return values

    async def status(self, path: Path) -> StatusSummary:
        result = await self.run(git.status_argv(self.settings), path)
        return git.parse_status(result.stdout)

    async def head(self, path: Path) -> str:
        return (await self.run(git.head_argv(self.settings), path)).stdout.decode().strip()

    async def ahead_behind(self, path: Path, upstream: str) -> tuple[int, int] | None:
        """(ahead, behind) of HEAD against ``upstream``; None when ``upstream`` does not exist."""
        result = await self.run(git.ahead_behind_argv(self.settings, upstream), path, check=False)
        if not result.ok:
            return None
        left, right = result.stdout.decode().split()
        return int(left), int(right)

    def remote_of(self, config: Mapping[str, str]) -> tuple[str | None, git.RemoteRepo | None]:
        """(the remote URL to show, the validated remote or None)."""
        url = config.get("remote.origin.url")
        if not url:
            return None, None
        if self.origin is not None:
            try:
                remote = git.parse_remote_url(url, self.origin)
                return remote.url, remote
            except InvalidRemote:
                pass
        return git.redact_url(url), None

    def summary(self, name: str, st: StatusSummary, config: Mapping[str, str]) -> dict[str, Any]:
        shown, _ = self.remote_of(config)
        return {
            "name": name,
            "branch": st.branch,
            "head": st.head,
            "ahead": st.ahead,
            "behind": st.behind,
            "dirty": st.dirty,
            "remote": shown,
        }

    def details(self, name: str, st: StatusSummary, config: Mapping[str, str]) -> dict[str, Any]:
        details = self.summary(name, st, config)
        details.update(upstream=st.upstream, gitea=self.origin is not None, **_path_lists(st))
        return details


def _path_lists(st: StatusSummary) -> dict[str, Any]:
    out: dict[str, Any] = {}
    truncated = False
    for key in ("staged", "modified", "untracked", "conflicted"):
        items: list[str] = getattr(st, key)
        truncated = truncated or len(items) > MAX_LISTED_PATHS
        out[key] = items[:MAX_LISTED_PATHS]
    out["truncated"] = truncated
    return out

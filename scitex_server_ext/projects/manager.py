"""Projects: git repositories under ``<user_root>/projects``, synced with Gitea.

A project is a clone of a Gitea repository (in the lab's organization or the user's own
namespace), or a local repository when no Gitea is configured. :class:`ProjectManager` lists,
creates, imports, reports on and syncs them (the sync itself is :mod:`.sync`); it raises
:class:`ProjectError` with the HTTP status a handler should answer with.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .. import git
from ..git import GiteaOrigin, GitRunner, GitSettings, InvalidName, InvalidRemote
from ..gitea import GiteaClient, GiteaError
from ..paths import UnsafePath, resolve_inside
from .repo import NO_GITEA_MESSAGE, ProjectError, ProjectGit, bad_request
from .sync import sync_project

log = logging.getLogger(__name__)
T = TypeVar("T")

_LIST_CONCURRENCY = 8


@dataclass
class ProjectManager:
    """Project operations for one user. All blocking work runs off the event loop."""

    user_root: str
    runner: GitRunner
    settings: GitSettings
    gitea: GiteaClient | None = None
    org: str = ""
    projects_dir: str = "projects"
    default_branch: str = "main"
    author_name: str = ""
    author_email: str = ""
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, init=False, repr=False)
    _gitea_login: str | None = field(default=None, init=False, repr=False)

    @property
    def origin(self) -> GiteaOrigin | None:
        return self.settings.origin

    @property
    def _git(self) -> ProjectGit:
        # Built on use: runner and settings are plain fields a caller may replace.
        return ProjectGit(self.runner, self.settings)

    # -- helpers ---------------------------------------------------------------------------
    def _lock(self, name: str) -> asyncio.Lock:
        # One operation at a time per project: two syncs would collide on index.lock.
        return self._locks.setdefault(name, asyncio.Lock())

    async def _projects_root(self, create: bool = False) -> Path:
        def work() -> Path:
            try:
                root = resolve_inside(self.user_root, self.projects_dir)
            except UnsafePath as e:
                raise ProjectError(e.status, "Forbidden", str(e)) from None
            if create:
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
            return root

        return await asyncio.to_thread(work)

    async def _project_path(self, name: str, *, must_exist: bool = True) -> Path:
        try:
            git.validate_repo_name(name)
        except InvalidName as e:
            raise bad_request(str(e)) from None

        def work() -> Path:
            try:
                path = resolve_inside(self.user_root, os.path.join(self.projects_dir, name))
            except UnsafePath as e:
                raise ProjectError(e.status, "Forbidden", str(e)) from None
            if must_exist and not (path / ".git").is_dir():
                raise ProjectError(404, "Not Found", f"no project named {name!r}")
            return path

        return await asyncio.to_thread(work)

    # -- list and status -------------------------------------------------------------------
    async def list_projects(self) -> list[dict[str, Any]]:
        root = await self._projects_root()

        def names() -> list[str]:
            if not root.is_dir():
                return []
            found = []
            for entry in os.scandir(root):
                try:
                    git.validate_repo_name(entry.name)
                except InvalidName:
                    continue
                # A symlinked project could point outside the user's root: not listed.
                if entry.is_dir(follow_symlinks=False) and os.path.isdir(
                    os.path.join(entry.path, ".git")
                ):
                    found.append(entry.name)
            return sorted(found)

        gate = asyncio.Semaphore(_LIST_CONCURRENCY)

        async def one(name: str) -> dict[str, Any] | None:
            async with gate:
                try:
                    return await self.status(name, brief=True)
                except ProjectError as e:
                    log.warning("project %s: %s", name, e.message)
                    return None

        results = await asyncio.gather(*(one(n) for n in await asyncio.to_thread(names)))
        return [r for r in results if r is not None]

    async def status(self, name: str, *, brief: bool = False) -> dict[str, Any]:
        path = await self._project_path(name)
        project_git = self._git
        st, config = await asyncio.gather(project_git.status(path), project_git.config(path))
        if brief:
            return project_git.summary(name, st, config)
        return project_git.details(name, st, config)

    # -- create and import -----------------------------------------------------------------
    async def _my_login(self) -> str:
        """The token's Gitea user (asked once: it cannot change while the server runs)."""
        gitea = self._require_gitea()
        if self._gitea_login is None:
            user = await self._gitea_call(gitea.get_current_user(), what="identify you")
            self._gitea_login = user.login
        return self._gitea_login

    def _require_gitea(self) -> GiteaClient:
        if self.gitea is None or self.origin is None:
            raise ProjectError(501, "No Gitea Configured", NO_GITEA_MESSAGE)
        return self.gitea

    async def create(self, name_in: object, org_in: object = None) -> dict[str, Any]:
        try:
            name = git.validate_repo_name(name_in)
        except InvalidName as e:
            raise bad_request(str(e)) from None
        if org_in is not None and not isinstance(org_in, str):
            raise bad_request("'org' must be a string")
        org = org_in or None
        async with self._lock(name):
            path = await self._project_path(name, must_exist=False)
            if await asyncio.to_thread(os.path.lexists, path):
                raise ProjectError(409, "Conflict", f"a project named {name!r} already exists")
            if self.gitea is None or self.origin is None:
                if org:
                    raise ProjectError(501, "No Gitea Configured", NO_GITEA_MESSAGE)
                await self._init_local(name, path)
            else:
                owner, in_org = await self._owner_for(org)
                repo = await self._gitea_call(
                    self.gitea.create_repo(
                        name, org=owner if in_org else None, default_branch=self.default_branch
                    ),
                    what=f"create {owner}/{name}",
                )
                await self._clone(repo.owner or owner, repo.name or name, path)
            log.info("project %s created", name)
            return await self.status(name)

    async def _owner_for(self, org: str | None) -> tuple[str, bool]:
        """Where a new repository goes: (owner, is an organization).

        The configured organization (the lab's) or the user's own namespace; any other owner,
        such as another institution's organization, is refused before Gitea is asked.
        """
        me = await self._my_login()
        if not org:
            return (self.org, True) if self.org else (me, False)
        try:
            git.validate_owner_name(org)
        except InvalidName as e:
            raise bad_request(str(e)) from None
        if org.lower() == me.lower():
            return me, False
        if self.org and org.lower() == self.org.lower():
            return self.org, True
        allowed = " or ".join(repr(o) for o in (self.org, me) if o)
        raise ProjectError(
            403, "Forbidden", f"projects can be created only in {allowed}, not in {org!r}"
        )

    async def import_(self, clone_url: object) -> dict[str, Any]:
        gitea = self._require_gitea()
        origin = self.settings.origin
        if origin is None:  # _require_gitea checked it; this tells the type checker
            raise ProjectError(501, "No Gitea Configured", NO_GITEA_MESSAGE)
        try:
            remote = git.parse_remote_url(clone_url, origin)
        except InvalidRemote as e:
            raise bad_request(str(e)) from None
        async with self._lock(remote.name):
            path = await self._project_path(remote.name, must_exist=False)
            if await asyncio.to_thread(os.path.lexists, path):
                raise ProjectError(
                    409, "Conflict", f"a project named {remote.name!r} already exists"
                )
            repo = await self._gitea_call(
                gitea.get_repo(remote.owner, remote.name), what=f"read {remote.owner}/{remote.name}"
            )
            if repo is None or not repo.can_pull:
                raise ProjectError(
                    404,
                    "Not Found",
                    f"{remote.owner}/{remote.name} does not exist or is not yours to read",
                )
            await self._clone(repo.owner or remote.owner, repo.name or remote.name, path)
            log.info("project %s imported from %s", remote.name, remote.url)
            return await self.status(remote.name)

    async def _gitea_call(self, call: Awaitable[T], *, what: str) -> T:
        try:
            return await call
        except GiteaError as e:
            status = e.status if e.status in (403, 404, 409, 422) else 502
            if status == 422:
                status = 400
            message = (
                f"Gitea refused to {what}: {e.message}" if e.message else f"Gitea could not {what}"
            )
            raise ProjectError(status, "Gitea Error", message) from None

    async def _clone(self, owner: str, name: str, path: Path) -> None:
        """Clone into a temporary sibling, then rename: a failed clone leaves nothing behind."""
        if self.origin is None:
            raise ProjectError(501, "No Gitea Configured", NO_GITEA_MESSAGE)
        # The URL is built from the configured Gitea, not taken from Gitea's ``clone_url``: a
        # Gitea behind a proxy may advertise a public URL the notebook cannot (or must not) use.
        try:
            url = self.origin.repo_url(owner, name)
        except InvalidName as e:
            raise ProjectError(502, "Gitea Error", f"Gitea answered an invalid name: {e}") from None
        root = await self._projects_root(create=True)
        tmp = root / f".{name}.scitex-tmp-{os.getpid()}-{time.monotonic_ns()}"
        try:
            await self._git.run(git.clone_argv(self.settings, url, str(tmp)), root, network=True)
            await asyncio.to_thread(os.rename, tmp, path)
        finally:
            if await asyncio.to_thread(os.path.lexists, tmp):
                await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def _init_local(self, name: str, path: Path) -> None:
        root = await self._projects_root(create=True)
        tmp = root / f".{name}.scitex-tmp-{os.getpid()}-{time.monotonic_ns()}"
        try:
            await self._git.run(git.init_argv(self.settings, self.default_branch, str(tmp)), root)
            await asyncio.to_thread(os.rename, tmp, path)
        finally:
            if await asyncio.to_thread(os.path.lexists, tmp):
                await asyncio.to_thread(shutil.rmtree, tmp, True)

    # -- sync ------------------------------------------------------------------------------
    async def sync(self, name: str) -> dict[str, Any]:
        """Commit local work, fetch, rebase onto the remote branch, push (see :mod:`.sync`)."""
        self._require_gitea()
        path = await self._project_path(name)
        async with self._lock(name):
            return await sync_project(self._git, name, path, (self.author_name, self.author_email))

"""Projects: git repositories under ``<user_root>/projects``, synced with Gitea.

A project is a clone of a Gitea repository (in the lab's organization or the user's own
namespace), or a local repository when no Gitea is configured. :class:`ProjectManager` lists,
creates, imports, reports on and syncs them; it raises :class:`ProjectError` with the HTTP status
a handler should answer with.

Sync never loses work: uncommitted changes are committed first; a rebase that conflicts is
aborted, which puts the branch, the local commits and the working tree back exactly as they were,
and the conflicting paths are reported (409). The user then merges (for example ``git merge
origin/<branch>`` in a terminal; the sync fetched it) and syncs again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from traitlets import Float, TraitError, Type, Unicode, default, validate
from traitlets.config import Configurable

from . import git
from .git import (
    GiteaOrigin,
    GitError,
    GitRunner,
    GitSettings,
    InvalidName,
    InvalidRemote,
    StatusSummary,
)
from .gitea import GiteaClient, GiteaError
from .paths import UnsafePath, resolve_inside

log = logging.getLogger(__name__)
T = TypeVar("T")

_MAX_LISTED_PATHS = 200
_LIST_CONCURRENCY = 8


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


def _bad_request(message: str) -> ProjectError:
    return ProjectError(400, "Bad Request", message)


NO_GITEA_MESSAGE = (
    "No Gitea is configured on this site (SCITEX_GITEA_URL is not set): projects are local git "
    "repositories and cannot be synced or imported."
)


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
            raise _bad_request(str(e)) from None

        def work() -> Path:
            try:
                path = resolve_inside(self.user_root, os.path.join(self.projects_dir, name))
            except UnsafePath as e:
                raise ProjectError(e.status, "Forbidden", str(e)) from None
            if must_exist and not (path / ".git").is_dir():
                raise ProjectError(404, "Not Found", f"no project named {name!r}")
            return path

        return await asyncio.to_thread(work)

    async def _run(
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

    async def _config(self, path: Path) -> dict[str, str]:
        result = await self._run(git.read_config_argv(self.settings), path, check=False)
        values: dict[str, str] = {}
        for entry in result.stdout.decode("utf-8", "replace").split("\0"):
            key, _, value = entry.partition("\n")
            if key:
                values[key] = value
        return values

    async def _status(self, path: Path) -> StatusSummary:
        result = await self._run(git.status_argv(self.settings), path)
        return git.parse_status(result.stdout)

    def _remote_of(self, config: Mapping[str, str]) -> tuple[str | None, git.RemoteRepo | None]:
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

    def _summary(self, name: str, st: StatusSummary, config: Mapping[str, str]) -> dict[str, Any]:
        shown, _ = self._remote_of(config)
        return {
            "name": name,
            "branch": st.branch,
            "head": st.head,
            "ahead": st.ahead,
            "behind": st.behind,
            "dirty": st.dirty,
            "remote": shown,
        }

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
        st, config = await asyncio.gather(self._status(path), self._config(path))
        if brief:
            return self._summary(name, st, config)
        return self._details(name, st, config)

    def _details(self, name: str, st: StatusSummary, config: Mapping[str, str]) -> dict[str, Any]:
        details = self._summary(name, st, config)
        details.update(upstream=st.upstream, gitea=self.origin is not None, **_path_lists(st))
        return details

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
            raise _bad_request(str(e)) from None
        if org_in is not None and not isinstance(org_in, str):
            raise _bad_request("'org' must be a string")
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
            raise _bad_request(str(e)) from None
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
            raise _bad_request(str(e)) from None
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
            await self._run(git.clone_argv(self.settings, url, str(tmp)), root, network=True)
            await asyncio.to_thread(os.rename, tmp, path)
        finally:
            if await asyncio.to_thread(os.path.lexists, tmp):
                await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def _init_local(self, name: str, path: Path) -> None:
        root = await self._projects_root(create=True)
        tmp = root / f".{name}.scitex-tmp-{os.getpid()}-{time.monotonic_ns()}"
        try:
            await self._run(git.init_argv(self.settings, self.default_branch, str(tmp)), root)
            await asyncio.to_thread(os.rename, tmp, path)
        finally:
            if await asyncio.to_thread(os.path.lexists, tmp):
                await asyncio.to_thread(shutil.rmtree, tmp, True)

    # -- sync ------------------------------------------------------------------------------
    async def sync(self, name: str) -> dict[str, Any]:
        """Commit local work, fetch, rebase onto the remote branch, push."""
        self._require_gitea()
        path = await self._project_path(name)
        async with self._lock(name):
            return await self._sync_locked(name, path)

    async def _sync_locked(self, name: str, path: Path) -> dict[str, Any]:
        st, config = await asyncio.gather(self._status(path), self._config(path))
        remote, branch = self._check_syncable(name, st, config)
        in_progress = await asyncio.to_thread(_operation_in_progress, path)
        if st.conflicted or in_progress:
            raise ProjectError(
                409,
                "Conflict",
                "a merge or rebase is in progress: finish it (resolve, add, commit) or abort it, "
                "then sync",
                {"conflicts": st.conflicted[:_MAX_LISTED_PATHS]},
            )

        committed = False
        if st.dirty:
            await self._run(git.add_all_argv(self.settings), path)
            identity = None
            if not (config.get("user.name") and config.get("user.email")):
                identity = (
                    self.author_name or "SciTeX user",
                    self.author_email or "scitex@localhost",
                )
            message = f"Sync from SciTeX Hub ({time.strftime('%Y-%m-%d %H:%M:%S %z')})"
            commit = git.commit_argv(self.settings, message, identity)
            done = await self._run(commit, path, check=False)
            committed = done.ok
            if not done.ok and b"nothing to commit" not in done.stdout + done.stderr:
                # For example a pre-commit hook of the user's that refused: their call to fix.
                raise ProjectError(
                    409,
                    "Commit Failed",
                    f"git commit failed; nothing was synced: {done.err[-1000:]}",
                )
        has_commits = committed or st.head is not None

        upstream = f"refs/remotes/{git.REMOTE}/{branch}"
        pulled = pushed = 0
        # A second round only when someone pushed between our fetch and our push.
        for attempt in (1, 2):
            await self._run(git.fetch_argv(self.settings, remote.url), path, network=True)
            if not has_commits:
                # Nothing local to keep: take the remote branch if there is one.
                verify = git.verify_ref_argv(self.settings, upstream)
                if (await self._run(verify, path, check=False)).ok:
                    await self._run(git.fast_forward_argv(self.settings, upstream), path)
                break
            counts = await self._ahead_behind(path, upstream)
            # No such remote branch yet (an empty repository): everything local is ahead.
            has_upstream = counts is not None
            ahead, behind = counts if counts is not None else (1, 0)
            if behind and ahead:
                await self._rebase(path, upstream, committed)
            elif behind:
                await self._run(git.fast_forward_argv(self.settings, upstream), path)
            pulled += behind
            if not ahead:
                break
            push = await self._run(
                git.push_argv(self.settings, remote.url, branch), path, check=False
            )
            if push.ok:
                pushed = ahead
                await self._run(git.update_ref_argv(self.settings, upstream, "HEAD"), path)
                if not has_upstream:
                    await self._run(git.set_upstream_argv(self.settings, branch), path, check=False)
                break
            rejected = "rejected" in push.stdout.decode("utf-8", "replace") + push.err
            if not rejected or attempt == 2:
                log.warning("git push of %s failed: %s", name, push.err)
                raise ProjectError(
                    409 if rejected else 502,
                    "Push Failed",
                    "git push failed; your work is committed locally: "
                    + (push.err[-1000:] or f"exit status {push.returncode}"),
                )

        # The remote and identity cannot have changed (we hold the project's lock): only
        # status is read again.
        result = self._details(name, await self._status(path), config)
        result.update(committed=committed, pulled=pulled, pushed=pushed)
        log.info("project %s synced (pulled %d, pushed %d)", name, pulled, pushed)
        return result

    def _check_syncable(
        self, name: str, st: StatusSummary, config: Mapping[str, str]
    ) -> tuple[git.RemoteRepo, str]:
        """The validated remote and branch, or a 409 saying why this project cannot sync."""
        shown, remote = self._remote_of(config)
        if shown is None:
            raise ProjectError(
                409, "No Remote", f"project {name!r} has no Gitea remote (it was created locally)"
            )
        if remote is None:
            where = self.origin.url if self.origin else "the configured Gitea"
            raise ProjectError(
                409,
                "Remote Not Allowed",
                f"project {name!r} has a remote that is not a repository on {where}; "
                "sync will not use it",
            )
        if st.branch is None:
            raise ProjectError(409, "Detached HEAD", "check out a branch before syncing")
        try:
            branch = git.validate_branch_name(st.branch)
        except InvalidName as e:
            raise ProjectError(409, "Conflict", f"branch {st.branch!r}: {e}") from None
        return remote, branch

    async def _head(self, path: Path) -> str:
        return (await self._run(git.head_argv(self.settings), path)).stdout.decode().strip()

    async def _ahead_behind(self, path: Path, upstream: str) -> tuple[int, int] | None:
        """(ahead, behind) of HEAD against ``upstream``; None when ``upstream`` does not exist."""
        result = await self._run(git.ahead_behind_argv(self.settings, upstream), path, check=False)
        if not result.ok:
            return None
        left, right = result.stdout.decode().split()
        return int(left), int(right)

    async def _rebase(self, path: Path, upstream: str, committed: bool) -> None:
        rebase = await self._run(git.rebase_argv(self.settings, upstream), path, check=False)
        if rebase.ok:
            return
        conflicts = await self._run(git.conflicts_argv(self.settings), path, check=False)
        paths = [p for p in conflicts.stdout.decode("utf-8", "surrogateescape").split("\0") if p]
        # Abort restores the branch, the local commits and the working tree as they were.
        await self._run(git.rebase_abort_argv(self.settings), path)
        head = await self._head(path)
        if not paths:
            log.warning("git rebase failed without conflicts: %s", rebase.err)
            raise ProjectError(
                409,
                "Rebase Failed",
                f"git rebase failed; your work is unchanged: {rebase.err[-1000:]}",
            )
        raise ProjectError(
            409,
            "Sync Conflict",
            f"your changes and the remote's changes to {len(paths)} file(s) conflict. Nothing was "
            f"lost: your work is committed locally ({head[:12]}). Merge the remote branch "
            f"({upstream.removeprefix('refs/remotes/')}), resolve, commit, then sync again.",
            {
                "conflicts": paths[:_MAX_LISTED_PATHS],
                "local_commit": head,
                "committed": committed,
                "upstream": upstream.removeprefix("refs/remotes/"),
            },
        )


def _operation_in_progress(path: Path) -> bool:
    gitdir = path / ".git"
    return any(
        (gitdir / marker).exists()
        for marker in ("rebase-merge", "rebase-apply", "MERGE_HEAD", "CHERRY_PICK_HEAD")
    )


def _path_lists(st: StatusSummary) -> dict[str, Any]:
    out: dict[str, Any] = {}
    truncated = False
    for key in ("staged", "modified", "untracked", "conflicted"):
        items: list[str] = getattr(st, key)
        truncated = truncated or len(items) > _MAX_LISTED_PATHS
        out[key] = items[:_MAX_LISTED_PATHS]
    out["truncated"] = truncated
    return out


class ProjectsConfig(Configurable):
    """The extension's settings for projects, Gitea and git (mixed into ``SciTeXExtension``).

    The Gitea token is deliberately not a setting: it comes only from the environment variable
    ``SCITEX_GITEA_TOKEN`` (set by the spawner for the user's server), so that it never appears
    in a config file, ``--show-config`` output or a log of settings.
    """

    gitea_url = Unicode(
        help="""Base URL of the site's Gitea (``https://gitea.example.edu``, optionally with a
        sub-path). Empty: no Gitea; projects are local git repositories, and import and sync
        answer 501. Default: ``SCITEX_GITEA_URL``.""",
        config=True,
    )
    gitea_org = Unicode(
        help="""The Gitea organization of the user's lab or institution. New projects go there
        unless the request names the user's own namespace; no other organization is accepted.
        Empty: the user's own namespace. Default: ``SCITEX_GITEA_ORG``.""",
        config=True,
    )
    gitea_user = Unicode(
        help="""The user's Gitea login, sent as the user name with the token (Gitea identifies
        the user by the token). Default: ``SCITEX_GITEA_USER``, else ``JUPYTERHUB_USER``.""",
        config=True,
    )
    gitea_client_class = Type(
        default_value=GiteaClient,
        klass=GiteaClient,
        help="The Gitea API client class; a site or a test may substitute a subclass.",
        config=True,
    )
    git_command = Unicode(
        "git",
        help="The git executable: a name looked up on PATH, or an absolute path.",
        config=True,
    )
    git_timeout = Float(
        600.0,
        help="Seconds after which one git command (clone, fetch, push...) is killed.",
        config=True,
    )
    projects_dir = Unicode(
        "projects",
        help="Directory of the projects, relative to the user's root (``/data/projects``).",
        config=True,
    )
    project_default_branch = Unicode(
        "main",
        help="Branch of new projects (the default branch of the Gitea repository).",
        config=True,
    )
    git_author_name = Unicode(
        help="""Author name of the commits sync makes when the project and the user's git
        config set none. Default: ``JUPYTERHUB_USER``.""",
        config=True,
    )
    git_author_email = Unicode(
        help="""Author email of the commits sync makes when the project and the user's git
        config set none. Default: ``<user>@users.noreply.<gitea host>``.""",
        config=True,
    )

    @default("gitea_url")
    def _default_gitea_url(self) -> str:
        return os.environ.get(git.git_credential_helper.URL_ENV, "")

    @default("gitea_org")
    def _default_gitea_org(self) -> str:
        return os.environ.get("SCITEX_GITEA_ORG", "")

    @default("gitea_user")
    def _default_gitea_user(self) -> str:
        return os.environ.get(git.git_credential_helper.USER_ENV) or os.environ.get(
            "JUPYTERHUB_USER", ""
        )

    @default("git_author_name")
    def _default_git_author_name(self) -> str:
        return os.environ.get("JUPYTERHUB_USER", "") or "SciTeX user"

    @default("git_author_email")
    def _default_git_author_email(self) -> str:
        user = os.environ.get("JUPYTERHUB_USER", "") or "scitex"
        host = "localhost"
        if self.gitea_url:
            host = GiteaOrigin.parse(self.gitea_url).host
        return f"{user}@users.noreply.{host}"

    @validate("gitea_url")
    def _check_gitea_url(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if not value:
            return ""
        try:
            return GiteaOrigin.parse(value).url
        except InvalidRemote as e:
            raise TraitError(f"gitea_url: {e}") from None

    @validate("gitea_org")
    def _check_gitea_org(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if value:
            try:
                git.validate_owner_name(value)
            except InvalidName as e:
                raise TraitError(f"gitea_org: {e}") from None
        return value

    @validate("gitea_user")
    def _check_gitea_user(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if value and not git_credential_helper_safe(value):
            raise TraitError("gitea_user: must be one line of printable characters")
        return value

    @validate("git_command")
    def _check_git_command(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not value or value != value.strip() or "\0" in value or value.startswith("-"):
            raise TraitError("git_command: give the name or absolute path of the git executable")
        return value

    @validate("git_timeout")
    def _check_git_timeout(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError("git_timeout: must be a positive number of seconds")
        return value

    @validate("projects_dir")
    def _check_projects_dir(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip("/")
        parts = value.split("/")
        if not value or any(p in ("", ".", "..") for p in parts) or "\0" in value:
            raise TraitError(
                "projects_dir: must be a relative directory below the user's root, without '..'"
            )
        return value

    @validate("project_default_branch")
    def _check_default_branch(self, proposal: Any) -> str:
        try:
            return git.validate_branch_name(proposal["value"])
        except InvalidName as e:
            raise TraitError(f"project_default_branch: {e}") from None

    @validate("git_author_name", "git_author_email")
    def _check_author(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip()
        if not git_credential_helper_safe(value) or any(c in value for c in "<>"):
            raise TraitError(f"{proposal['trait'].name}: must be one line without '<' or '>'")
        return value

    def make_project_manager(self, user_root: str) -> ProjectManager:
        """The manager the handlers use, built from these settings and the environment."""
        token = os.environ.get(git.git_credential_helper.TOKEN_ENV, "")
        origin = GiteaOrigin.parse(self.gitea_url) if self.gitea_url else None
        settings = GitSettings(
            git=self.git_command,
            origin=origin,
            credential_helper=git.credential_helper_command() if origin else "",
        )
        env = git.git_environment(os.environ, origin, token, self.gitea_user)
        runner = GitRunner(env=env, timeout=self.git_timeout, secrets=(token,))
        client = None
        if origin is not None:
            client = self.gitea_client_class(origin.url, token, parent=self)
        return ProjectManager(
            user_root=user_root,
            runner=runner,
            settings=settings,
            gitea=client,
            org=self.gitea_org,
            projects_dir=self.projects_dir,
            default_branch=self.project_default_branch,
            author_name=self.git_author_name,
            author_email=self.git_author_email,
        )


def git_credential_helper_safe(value: str) -> bool:
    """One line of printable text (a newline would inject fields into git's protocols)."""
    return all(ch.isprintable() for ch in value)

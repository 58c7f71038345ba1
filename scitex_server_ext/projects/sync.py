"""Sync of one project with its Gitea repository: commit local work, fetch, rebase, push.

Sync never loses work: uncommitted changes are committed first; a rebase that conflicts is
aborted, which puts the branch, the local commits and the working tree back exactly as they were,
and the conflicting paths are reported (409). The user then merges (for example ``git merge
origin/<branch>`` in a terminal; the sync fetched it) and syncs again.

The caller holds the project's lock: two syncs of one project would collide on ``index.lock``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import git
from ..git import InvalidName, StatusSummary
from .repo import MAX_LISTED_PATHS, ProjectError, ProjectGit

log = logging.getLogger(__name__)


async def sync_project(
    repo: ProjectGit, name: str, path: Path, author: tuple[str, str]
) -> dict[str, Any]:
    """Sync the project ``name`` at ``path``; ``author`` (name, email) when git knows none.

    Returns the project's details with ``committed``, ``pulled`` and ``pushed``.
    """
    settings = repo.settings
    st, config = await asyncio.gather(repo.status(path), repo.config(path))
    remote, branch = _check_syncable(repo, name, st, config)
    in_progress = await asyncio.to_thread(_operation_in_progress, path)
    if st.conflicted or in_progress:
        raise ProjectError(
            409,
            "Conflict",
            "a merge or rebase is in progress: finish it (resolve, add, commit) or abort it, "
            "then sync",
            {"conflicts": st.conflicted[:MAX_LISTED_PATHS]},
        )

    committed = False
    if st.dirty:
        await repo.run(git.add_all_argv(settings), path)
        identity = None
        if not (config.get("user.name") and config.get("user.email")):
            identity = (author[0] or "SciTeX user", author[1] or "scitex@localhost")
        message = f"Sync from SciTeX Hub ({time.strftime('%Y-%m-%d %H:%M:%S %z')})"
        commit = git.commit_argv(settings, message, identity)
        done = await repo.run(commit, path, check=False)
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
        await repo.run(git.fetch_argv(settings, remote.url), path, network=True)
        if not has_commits:
            # Nothing local to keep: take the remote branch if there is one.
            verify = git.verify_ref_argv(settings, upstream)
            if (await repo.run(verify, path, check=False)).ok:
                await repo.run(git.fast_forward_argv(settings, upstream), path)
            break
        counts = await repo.ahead_behind(path, upstream)
        # No such remote branch yet (an empty repository): everything local is ahead.
        has_upstream = counts is not None
        ahead, behind = counts if counts is not None else (1, 0)
        if behind and ahead:
            await _rebase(repo, path, upstream, committed)
        elif behind:
            await repo.run(git.fast_forward_argv(settings, upstream), path)
        pulled += behind
        if not ahead:
            break
        push = await repo.run(git.push_argv(settings, remote.url, branch), path, check=False)
        if push.ok:
            pushed = ahead
            await repo.run(git.update_ref_argv(settings, upstream, "HEAD"), path)
            if not has_upstream:
                await repo.run(git.set_upstream_argv(settings, branch), path, check=False)
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

    # The remote and identity cannot have changed (the caller holds the project's lock): only
    # status is read again.
    result = repo.details(name, await repo.status(path), config)
    result.update(committed=committed, pulled=pulled, pushed=pushed)
    log.info("project %s synced (pulled %d, pushed %d)", name, pulled, pushed)
    return result


def _check_syncable(
    repo: ProjectGit, name: str, st: StatusSummary, config: Mapping[str, str]
) -> tuple[git.RemoteRepo, str]:
    """The validated remote and branch, or a 409 saying why this project cannot sync."""
    shown, remote = repo.remote_of(config)
    if shown is None:
        raise ProjectError(
            409, "No Remote", f"project {name!r} has no Gitea remote (it was created locally)"
        )
    if remote is None:
        where = repo.origin.url if repo.origin else "the configured Gitea"
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


async def _rebase(repo: ProjectGit, path: Path, upstream: str, committed: bool) -> None:
    settings = repo.settings
    rebase = await repo.run(git.rebase_argv(settings, upstream), path, check=False)
    if rebase.ok:
        return
    conflicts = await repo.run(git.conflicts_argv(settings), path, check=False)
    paths = [p for p in conflicts.stdout.decode("utf-8", "surrogateescape").split("\0") if p]
    # Abort restores the branch, the local commits and the working tree as they were.
    await repo.run(git.rebase_abort_argv(settings), path)
    head = await repo.head(path)
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
            "conflicts": paths[:MAX_LISTED_PATHS],
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

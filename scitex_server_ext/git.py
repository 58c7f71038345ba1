"""Git as argv: name and URL validation, argv builders, the runner and credentials.

One file: the rules below hold for every git command we run, and keeping each argv builder
beside the runner and the environment it runs in lets one review check them all.

Rules this module enforces (DESIGN.md sections 6 and 9, nbgitpuller CVE-2021-39160):

* every URL and path given to git comes after ``--`` (or ``--end-of-options``), so no value can be
  read as an option such as ``--upload-pack=...``;
* the only remotes are on the configured Gitea (same scheme, host and port, no user-info), and
  each command allows only that transport (``-c protocol.allow=never`` plus https, or http when
  the Gitea is configured with http);
* credentials come from :mod:`scitex_server_ext.git_credential_helper`, configured per command
  with ``-c credential.helper=...``: the token is read from the environment of the git process and
  never reaches ``.git/config``, an argv, a URL or a log line;
* git never prompts (``GIT_TERMINAL_PROMPT=0``, no askpass).

The builders are pure functions (tested by exact equality); :class:`GitRunner` runs an argv with
``asyncio.create_subprocess_exec``, never a shell.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Shared with the hub (``scitex_gitea``); re-exported here under their historical names.
from scitex_gitea.names import (  # noqa: F401
    _BASE_PATH_SEGMENT_RE,
    _BRANCH_RE,
    _DEFAULT_PORTS,
    _OWNER_NAME_RE,
    _REPO_NAME_RE,
    _RESERVED_SUFFIXES,
    BRANCH_MAX,
    NAME_MAX,
    OWNER_MAX,
    URL_MAX,
    GiteaOrigin,
    InvalidName,
    InvalidRemote,
    _is_plain_text,
    redact,
    validate_branch_name,
    validate_owner_name,
    validate_repo_name,
)

from . import git_credential_helper

log = logging.getLogger(__name__)

REMOTE = "origin"


@dataclass(frozen=True)
class RemoteRepo:
    """A repository on the configured Gitea, as named by a validated clone URL."""

    owner: str
    name: str
    url: str


def parse_remote_url(url: object, origin: GiteaOrigin) -> RemoteRepo:
    """Validate a clone URL: a repository on ``origin`` and nothing else.

    Refuses other schemes (``ext::``, ``file://``, ``ssh``, scp-like and local paths), other
    hosts or ports, user-info, queries, fragments, percent-escapes, option-like values and any
    path that is not ``<base>/<owner>/<repo>[.git]`` with valid names.
    """
    if not isinstance(url, str) or not url:
        raise InvalidRemote("a clone URL is required")
    if len(url) > URL_MAX or not _is_plain_text(url) or "\\" in url:
        raise InvalidRemote("the clone URL contains characters that are not allowed")
    if url.startswith("-"):
        raise InvalidRemote("the clone URL may not start with '-'")
    if "://" not in url:
        raise InvalidRemote(f"the clone URL must be a {origin.scheme}:// URL on {origin.url}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidRemote("the clone URL is not a valid URL") from None
    if parts.scheme.lower() != origin.scheme:
        raise InvalidRemote(f"the clone URL must be a {origin.scheme}:// URL on {origin.url}")
    if "@" in parts.netloc:
        raise InvalidRemote("the clone URL must not contain a user name, password or token")
    if (parts.hostname or "").lower() != origin.host or (
        port or _DEFAULT_PORTS[origin.scheme]
    ) != origin.port:
        raise InvalidRemote(f"only repositories on {origin.url} can be used")
    if "?" in url or "#" in url or "%" in url:
        raise InvalidRemote("the clone URL must not have a query, fragment or %-escapes")
    path = parts.path
    if not path.startswith(origin.base_path + "/"):
        raise InvalidRemote(f"only repositories on {origin.url} can be used")
    rest = path[len(origin.base_path) + 1 :]
    pieces = rest.split("/")
    if len(pieces) != 2:
        raise InvalidRemote("the clone URL must name a repository as <owner>/<repo>")
    owner, repo = pieces
    if repo.endswith(".git"):
        repo = repo[: -len(".git")]
    try:
        validate_owner_name(owner)
        validate_repo_name(repo)
    except InvalidName as e:
        raise InvalidRemote(f"the clone URL names an invalid repository: {e}") from None
    return RemoteRepo(owner, repo, origin.repo_url(owner, repo))


def redact_url(url: str) -> str:
    """``url`` without user-info, for showing a remote that may carry credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def credential_helper_command(python: str | None = None, helper: str | None = None) -> str:
    """The value for ``credential.helper``: our helper run by this Python, isolated and fast.

    Git runs a helper whose value is an absolute path as that command line (with ``get``,
    ``store`` or ``erase`` appended); every part is quoted, and none comes from a user.
    ``-I`` ignores ``PYTHON*`` variables and the user's site directory; ``-S`` skips ``site``
    (the helper needs only the standard library), which keeps each credential lookup quick.
    """
    python = python or sys.executable
    helper = helper or os.path.abspath(git_credential_helper.__file__)
    return f"{shlex.quote(python)} -I -S {shlex.quote(helper)}"


@dataclass(frozen=True)
class GitSettings:
    """What every git command is built from."""

    git: str = "git"
    origin: GiteaOrigin | None = None
    credential_helper: str = ""


def global_args(settings: GitSettings) -> list[str]:
    """``git`` and the ``-c`` options every command carries.

    Transport: everything is refused but the Gitea's scheme. Credentials: an empty
    ``credential.helper`` first clears helpers from the user's or system config (a ``store``
    helper there would otherwise save the token to disk), then only ours is consulted.
    """
    argv = [settings.git, "-c", "protocol.allow=never"]
    if settings.origin is not None:
        argv += ["-c", f"protocol.{settings.origin.scheme}.allow=always"]
    argv += ["-c", "credential.helper="]
    if settings.origin is not None and settings.credential_helper:
        argv += ["-c", f"credential.helper={settings.credential_helper}"]
    return argv


def clone_argv(settings: GitSettings, url: str, dest: str) -> list[str]:
    return [*global_args(settings), "clone", "--quiet", "--origin", REMOTE, "--", url, dest]


def init_argv(settings: GitSettings, branch: str, dest: str) -> list[str]:
    return [*global_args(settings), "init", "--quiet", f"--initial-branch={branch}", "--", dest]


def status_argv(settings: GitSettings) -> list[str]:
    # --no-optional-locks: a status for the project list must not take index.lock and make a
    # concurrent sync fail.
    return [
        *global_args(settings),
        "--no-optional-locks",
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=normal",
    ]


def read_config_argv(settings: GitSettings) -> list[str]:
    """The remote URL and commit identity, in one process (exit 1 when none is set)."""
    return [
        *global_args(settings),
        "config",
        "--null",
        "--get-regexp",
        r"^(remote\.origin\.url|user\.name|user\.email)$",
    ]


def add_all_argv(settings: GitSettings) -> list[str]:
    return [*global_args(settings), "add", "--all", "--", "."]


def commit_argv(settings: GitSettings, message: str, identity: tuple[str, str] | None) -> list[str]:
    """Commit what is staged; ``identity`` (name, email) when the repository has none."""
    argv = global_args(settings)
    if identity is not None:
        argv += ["-c", f"user.name={identity[0]}", "-c", f"user.email={identity[1]}"]
    return [*argv, "commit", "--quiet", "--no-edit", "-m", message]


def fetch_argv(settings: GitSettings, url: str) -> list[str]:
    # The URL is given, not the remote's name: whatever the repository's config says about
    # "origin" (url, pushurl, vcs, uploadpack) plays no part.
    return [
        *global_args(settings),
        "fetch",
        "--quiet",
        "--no-tags",
        "--",
        url,
        f"+refs/heads/*:refs/remotes/{REMOTE}/*",
    ]


def verify_ref_argv(settings: GitSettings, ref: str) -> list[str]:
    return [*global_args(settings), "rev-parse", "--verify", "--quiet", "--end-of-options", ref]


def ahead_behind_argv(settings: GitSettings, upstream: str) -> list[str]:
    return [
        *global_args(settings),
        "rev-list",
        "--left-right",
        "--count",
        f"HEAD...{upstream}",
        "--",
    ]


def rebase_argv(settings: GitSettings, upstream: str) -> list[str]:
    # --no-autostash: local work is already committed; a stash would only hide it.
    return [
        *global_args(settings),
        "rebase",
        "--quiet",
        "--no-autostash",
        "--end-of-options",
        upstream,
    ]


def rebase_abort_argv(settings: GitSettings) -> list[str]:
    return [*global_args(settings), "rebase", "--abort"]


def fast_forward_argv(settings: GitSettings, upstream: str) -> list[str]:
    return [*global_args(settings), "merge", "--quiet", "--ff-only", "--end-of-options", upstream]


def conflicts_argv(settings: GitSettings) -> list[str]:
    return [*global_args(settings), "diff", "--name-only", "--diff-filter=U", "-z", "--"]


def push_argv(settings: GitSettings, url: str, branch: str) -> list[str]:
    return [
        *global_args(settings),
        "push",
        "--quiet",
        "--porcelain",
        "--",
        url,
        f"HEAD:refs/heads/{branch}",
    ]


def update_ref_argv(settings: GitSettings, ref: str, value: str) -> list[str]:
    return [*global_args(settings), "update-ref", "-m", "scitex sync", "--", ref, value]


def set_upstream_argv(settings: GitSettings, branch: str) -> list[str]:
    return [
        *global_args(settings),
        "branch",
        "--quiet",
        f"--set-upstream-to={REMOTE}/{branch}",
        "--end-of-options",
        branch,
    ]


def head_argv(settings: GitSettings) -> list[str]:
    return [*global_args(settings), "rev-parse", "--verify", "--quiet", "HEAD"]


# Variables that would change where git looks or what it runs; the user's environment may set
# them for interactive work, but the extension's commands must not inherit them.
_DROPPED_ENV_PREFIXES = ("GIT_",)
_DROPPED_ENV = {"SSH_ASKPASS", "SSH_AUTH_SOCK", git_credential_helper.TOKEN_ENV}


def git_environment(
    environ: Mapping[str, str],
    origin: GiteaOrigin | None = None,
    token: str = "",
    user: str = "",
) -> dict[str, str]:
    """The environment of every git process: no prompts, and the helper's settings."""
    env = {
        k: v
        for k, v in environ.items()
        if not k.startswith(_DROPPED_ENV_PREFIXES) and k not in _DROPPED_ENV
    }
    env["GIT_TERMINAL_PROMPT"] = "0"
    # Messages we parse (e.g. push rejections) in one language.
    env["LC_ALL"] = "C"
    env.pop(git_credential_helper.URL_ENV, None)
    env.pop(git_credential_helper.USER_ENV, None)
    if origin is not None:
        env[git_credential_helper.URL_ENV] = origin.url
        env[git_credential_helper.USER_ENV] = user
        if token:
            env[git_credential_helper.TOKEN_ENV] = token
    return env


@dataclass(frozen=True)
class GitResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace").strip()


class GitError(Exception):
    """A git command failed; the message names the subcommand and git's (redacted) stderr."""

    def __init__(self, result: GitResult, message: str = "") -> None:
        self.result = result
        sub = _subcommand(result.argv)
        detail = message or result.err or f"exit status {result.returncode}"
        super().__init__(f"git {sub} failed: {detail[-2000:]}")


def _subcommand(argv: Sequence[str]) -> str:
    i = 1
    while i < len(argv):
        if argv[i] == "-c":
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return argv[i]
    return "?"


@dataclass
class GitRunner:
    """Runs git argv with a fixed environment; kills a command that outlives ``timeout``."""

    env: Mapping[str, str]
    timeout: float = 600.0
    secrets: Sequence[str] = field(default_factory=tuple, repr=False)

    async def run(
        self, argv: Sequence[str], cwd: str, *, check: bool = True, input: bytes | None = None
    ) -> GitResult:
        log.debug("git %s in %s", _subcommand(argv), cwd)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(self.env),
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), self.timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            # A hung network or a cancelled request must not leave git running (and holding
            # index.lock) behind the user's back.
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if isinstance(e, asyncio.CancelledError):
                raise
            timed_out = GitResult(tuple(argv), -9, b"", b"")
            raise GitError(timed_out, f"timed out after {self.timeout:g} s") from None
        # Secrets are never in argv; this only guards stderr (git may echo a URL it was given).
        err = redact(err.decode("utf-8", "replace"), self.secrets).encode()
        result = GitResult(tuple(argv), proc.returncode or 0, out, err)
        if check and not result.ok:
            raise GitError(result)
        return result


@dataclass(frozen=True)
class StatusSummary:
    """``git status --porcelain=v2 --branch -z``, summarised."""

    head: str | None = None
    branch: str | None = None
    upstream: str | None = None
    ahead: int | None = None
    behind: int | None = None
    staged: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    conflicted: list[str] = field(default_factory=list)

    @property
    def dirty(self) -> bool:
        return bool(self.staged or self.modified or self.untracked or self.conflicted)


def parse_status(raw: bytes) -> StatusSummary:
    """Parse porcelain v2 with ``-z`` (paths are NUL-terminated and never quoted)."""
    head = branch = upstream = None
    ahead = behind = None
    staged: list[str] = []
    modified: list[str] = []
    untracked: list[str] = []
    conflicted: list[str] = []
    records = raw.decode("utf-8", "surrogateescape").split("\0")
    i = 0
    while i < len(records):
        rec = records[i]
        i += 1
        if not rec:
            continue
        kind = rec[0]
        if kind == "#":
            _, key, value = [*rec.split(" ", 2), "", ""][:3]
            if key == "branch.oid":
                head = None if value == "(initial)" else value
            elif key == "branch.head":
                branch = None if value == "(detached)" else value
            elif key == "branch.upstream":
                upstream = value
            elif key == "branch.ab":
                a, b = value.split(" ")
                ahead, behind = int(a.lstrip("+")), int(b.lstrip("-"))
        elif kind == "1":
            fields = rec.split(" ", 8)
            _add_changed(fields[1], fields[8], staged, modified)
        elif kind == "2":
            fields = rec.split(" ", 9)
            _add_changed(fields[1], fields[9], staged, modified)
            i += 1  # the original path follows as its own record
        elif kind == "u":
            conflicted.append(rec.split(" ", 10)[10])
        elif kind == "?":
            untracked.append(rec[2:])
    return StatusSummary(
        head, branch, upstream, ahead, behind, staged, modified, untracked, conflicted
    )


def _add_changed(xy: str, path: str, staged: list[str], modified: list[str]) -> None:
    if xy[0] != ".":
        staged.append(path)
    if xy[1] != ".":
        modified.append(path)

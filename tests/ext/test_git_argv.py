"""The git argv builders, by exact equality, and the environment every git process gets."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from scitex_server_ext import git
from scitex_server_ext.git import GiteaOrigin, GitSettings

HELPER = "/venv/bin/python -I -S /site/scitex_server_ext/git_credential_helper.py"
HTTPS = GitSettings(
    git="git", origin=GiteaOrigin.parse("https://gitea.example.edu"), credential_helper=HELPER
)
HTTP = GitSettings(
    git="/usr/bin/git", origin=GiteaOrigin.parse("http://127.0.0.1:3000"), credential_helper=HELPER
)
LOCAL = GitSettings()

G = [
    "git",
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.https.allow=always",
    "-c",
    "credential.helper=",
    "-c",
    f"credential.helper={HELPER}",
]
URL = "https://gitea.example.edu/demo-u/paper.git"


def test_global_args_https() -> None:
    assert git.global_args(HTTPS) == G


def test_global_args_http_only_when_configured() -> None:
    assert git.global_args(HTTP) == [
        "/usr/bin/git",
        "-c",
        "protocol.allow=never",
        "-c",
        "protocol.http.allow=always",
        "-c",
        "credential.helper=",
        "-c",
        f"credential.helper={HELPER}",
    ]


def test_global_args_without_gitea_allow_no_transport_and_no_helper() -> None:
    assert git.global_args(LOCAL) == [
        "git",
        "-c",
        "protocol.allow=never",
        "-c",
        "credential.helper=",
    ]


def test_clone() -> None:
    assert git.clone_argv(HTTPS, URL, "/data/projects/.paper.tmp") == [
        *G,
        "clone",
        "--quiet",
        "--origin",
        "origin",
        "--",
        URL,
        "/data/projects/.paper.tmp",
    ]


def test_init() -> None:
    assert git.init_argv(LOCAL, "main", "/data/projects/p") == [
        *git.global_args(LOCAL),
        "init",
        "--quiet",
        "--initial-branch=main",
        "--",
        "/data/projects/p",
    ]


def test_status() -> None:
    assert git.status_argv(HTTPS) == [
        *G,
        "--no-optional-locks",
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=normal",
    ]


def test_read_config() -> None:
    assert git.read_config_argv(HTTPS) == [
        *G,
        "config",
        "--null",
        "--get-regexp",
        r"^(remote\.origin\.url|user\.name|user\.email)$",
    ]


def test_add_and_commit() -> None:
    assert git.add_all_argv(HTTPS) == [*G, "add", "--all", "--", "."]
    commit = ["commit", "--quiet", "--no-edit", "-m", "msg"]
    assert git.commit_argv(HTTPS, "msg", None) == [*G, *commit]
    assert git.commit_argv(HTTPS, "msg", ("Alice", "alice@x")) == [
        *G,
        "-c",
        "user.name=Alice",
        "-c",
        "user.email=alice@x",
        "commit",
        "--quiet",
        "--no-edit",
        "-m",
        "msg",
    ]


def test_fetch_uses_the_url_after_double_dash() -> None:
    assert git.fetch_argv(HTTPS, URL) == [
        *G,
        "fetch",
        "--quiet",
        "--no-tags",
        "--",
        URL,
        "+refs/heads/*:refs/remotes/origin/*",
    ]


def test_push_uses_the_url_after_double_dash() -> None:
    assert git.push_argv(HTTPS, URL, "main") == [
        *G,
        "push",
        "--quiet",
        "--porcelain",
        "--",
        URL,
        "HEAD:refs/heads/main",
    ]


def test_rebase_merge_and_refs() -> None:
    up = "refs/remotes/origin/main"
    assert git.rebase_argv(HTTPS, up) == [
        *G,
        "rebase",
        "--quiet",
        "--no-autostash",
        "--end-of-options",
        up,
    ]
    assert git.rebase_abort_argv(HTTPS) == [*G, "rebase", "--abort"]
    assert git.fast_forward_argv(HTTPS, up) == [
        *G,
        "merge",
        "--quiet",
        "--ff-only",
        "--end-of-options",
        up,
    ]
    assert git.conflicts_argv(HTTPS) == [*G, "diff", "--name-only", "--diff-filter=U", "-z", "--"]
    assert git.verify_ref_argv(HTTPS, up) == [
        *G,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        up,
    ]
    assert git.ahead_behind_argv(HTTPS, up) == [
        *G,
        "rev-list",
        "--left-right",
        "--count",
        f"HEAD...{up}",
        "--",
    ]
    assert git.update_ref_argv(HTTPS, up, "HEAD") == [
        *G,
        "update-ref",
        "-m",
        "scitex sync",
        "--",
        up,
        "HEAD",
    ]
    assert git.set_upstream_argv(HTTPS, "main") == [
        *G,
        "branch",
        "--quiet",
        "--set-upstream-to=origin/main",
        "--end-of-options",
        "main",
    ]
    assert git.head_argv(HTTPS) == [*G, "rev-parse", "--verify", "--quiet", "HEAD"]


def test_credential_helper_command_is_quoted_and_isolated() -> None:
    assert git.credential_helper_command("/opt/py/bin/python", "/x/helper.py") == (
        "/opt/py/bin/python -I -S /x/helper.py"
    )
    assert git.credential_helper_command("/opt/my py/python", "/x/h.py") == (
        "'/opt/my py/python' -I -S /x/h.py"
    )
    default = git.credential_helper_command()
    assert default.startswith((sys.executable, "'"))
    assert default.endswith("git_credential_helper.py")


def test_environment_drops_git_variables_and_sets_the_helper_settings() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/alice",
        "GIT_DIR": "/elsewhere",
        "GIT_SSH_COMMAND": "touch /tmp/pwned",
        "GIT_CONFIG_PARAMETERS": "'core.sshCommand=touch /tmp/pwned'",
        "GIT_ASKPASS": "/bin/echo",
        "SSH_ASKPASS": "/bin/echo",
        "SCITEX_GITEA_TOKEN": "from-the-outside",
        "SCITEX_GITEA_URL": "https://evil.example.com",
    }
    env = git.git_environment(environ, HTTPS.origin, "tok", "alice")
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/alice",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        "SCITEX_GITEA_URL": "https://gitea.example.edu",
        "SCITEX_GITEA_USER": "alice",
        "SCITEX_GITEA_TOKEN": "tok",
    }


def test_environment_without_gitea_carries_no_token() -> None:
    env = git.git_environment({"SCITEX_GITEA_TOKEN": "x", "PATH": "/bin"}, None, "tok", "alice")
    assert env == {"PATH": "/bin", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def test_redact() -> None:
    assert git.redact("token abc in abc", ["abc", ""]) == "token *** in ***"


def test_parse_status() -> None:
    raw = b"\0".join(
        [
            b"# branch.oid 1234567890abcdef1234567890abcdef12345678",
            b"# branch.head main",
            b"# branch.upstream origin/main",
            b"# branch.ab +2 -3",
            b"1 M. N... 100644 100644 100644 aaaa bbbb staged.txt",
            b"1 .M N... 100644 100644 100644 aaaa bbbb with space.txt",
            b"2 R. N... 100644 100644 100644 aaaa bbbb R100 new name.txt",
            b"old name.txt",
            b"u UU N... 100644 100644 100644 100644 aaaa bbbb cccc both.txt",
            b"? new dir/",
            b"",
        ]
    )
    st = git.parse_status(raw)
    assert st == git.StatusSummary(
        head="1234567890abcdef1234567890abcdef12345678",
        branch="main",
        upstream="origin/main",
        ahead=2,
        behind=3,
        staged=["staged.txt", "new name.txt"],
        modified=["with space.txt"],
        untracked=["new dir/"],
        conflicted=["both.txt"],
    )
    assert st.dirty


def test_parse_status_of_a_new_repository() -> None:
    st = git.parse_status(b"# branch.oid (initial)\0# branch.head main\0")
    assert st == git.StatusSummary(head=None, branch="main")
    assert not st.dirty
    detached = git.parse_status(b"# branch.oid abc\0# branch.head (detached)\0")
    assert detached.branch is None


def test_runner_kills_a_command_that_outlives_its_timeout(tmp_path: Path) -> None:
    runner = git.GitRunner(env={"PATH": os.environ["PATH"]}, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(git.GitError, match="timed out"):
        asyncio.run(runner.run(["sleep", "30"], str(tmp_path)))
    assert time.monotonic() - start < 5


def test_runner_redacts_secrets_from_stderr(tmp_path: Path) -> None:
    runner = git.GitRunner(env={"PATH": os.environ["PATH"]}, secrets=("s3cret",))
    result = asyncio.run(
        runner.run(["sh", "-c", "echo s3cret >&2; exit 3"], str(tmp_path), check=False)
    )
    assert (result.returncode, result.err) == (3, "***")

"""The credential helper: the token for the configured Gitea only, nothing stored anywhere."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest

from scitex_server_ext import git, git_credential_helper
from scitex_server_ext.git_credential_helper import answer, main

TOKEN = "0123456789abcdef0123456789abcdef01234567"
ENV = {
    "SCITEX_GITEA_URL": "https://gitea.example.edu",
    "SCITEX_GITEA_TOKEN": TOKEN,
    "SCITEX_GITEA_USER": "alice",
}


def test_get_for_the_configured_host() -> None:
    fields = {"protocol": "https", "host": "gitea.example.edu"}
    assert answer("get", fields, ENV) == f"username=alice\npassword={TOKEN}\n"


@pytest.mark.parametrize(
    "fields",
    [
        {"protocol": "https", "host": "evil.example.com"},
        {"protocol": "https", "host": "gitea.example.edu.evil.com"},
        {"protocol": "https", "host": "gitea.example.edu:8443"},
        {"protocol": "http", "host": "gitea.example.edu"},  # downgrade
        {"protocol": "ssh", "host": "gitea.example.edu"},
        {"protocol": "https", "host": ""},
        {"host": "gitea.example.edu"},
        {},
    ],
)
def test_nothing_for_another_origin(fields: dict[str, str]) -> None:
    assert answer("get", fields, ENV) == ""


def test_ports_and_case() -> None:
    env = {**ENV, "SCITEX_GITEA_URL": "http://127.0.0.1:3000"}
    assert answer("get", {"protocol": "http", "host": "127.0.0.1:3000"}, env)
    assert not answer("get", {"protocol": "http", "host": "127.0.0.1"}, env)
    assert not answer("get", {"protocol": "http", "host": "127.0.0.1:3001"}, env)
    assert answer("get", {"protocol": "HTTPS", "host": "GITEA.example.edu:443"}, ENV)


@pytest.mark.parametrize("action", ["store", "erase", "", "other"])
def test_store_and_erase_do_nothing(action: str) -> None:
    assert answer(action, {"protocol": "https", "host": "gitea.example.edu"}, ENV) == ""


@pytest.mark.parametrize(
    "env",
    [
        {**ENV, "SCITEX_GITEA_TOKEN": ""},
        {k: v for k, v in ENV.items() if k != "SCITEX_GITEA_TOKEN"},
        {**ENV, "SCITEX_GITEA_URL": ""},
        {**ENV, "SCITEX_GITEA_URL": "https://u:p@gitea.example.edu"},
        {**ENV, "SCITEX_GITEA_TOKEN": "abc\nhost=evil"},
        {**ENV, "SCITEX_GITEA_USER": "alice\npassword=x"},
    ],
)
def test_nothing_without_a_clean_configuration(env: dict[str, str]) -> None:
    assert answer("get", {"protocol": "https", "host": "gitea.example.edu"}, env) == ""


def test_main_reads_git_protocol_from_stdin() -> None:
    out = io.StringIO()
    stdin = io.StringIO("protocol=https\nhost=gitea.example.edu\npath=x\n\nignored=1\n")
    assert main(["get"], stdin, out, ENV) == 0
    assert out.getvalue() == f"username=alice\npassword={TOKEN}\n"


def _fill(env: dict[str, str], host: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``git credential fill`` with exactly the -c options every extension command carries."""
    settings = git.GitSettings(
        origin=git.GiteaOrigin.parse(env["SCITEX_GITEA_URL"]),
        credential_helper=git.credential_helper_command(),
    )
    argv = [*git.global_args(settings), "credential", "fill"]
    return subprocess.run(
        argv,
        input=f"protocol=http\nhost={host}\n\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=30,
    )


def test_real_git_gets_the_token_through_the_helper(tmp_path: Path) -> None:
    env = git.git_environment(
        {"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        git.GiteaOrigin.parse("http://127.0.0.1:3000"),
        TOKEN,
        "alice",
    )
    ok = _fill(env, "127.0.0.1:3000", tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert f"password={TOKEN}" in ok.stdout
    # Another host: the helper gives nothing and git may not prompt, so fill fails.
    refused = _fill(env, "127.0.0.1:4000", tmp_path)
    assert refused.returncode != 0
    assert TOKEN not in refused.stdout + refused.stderr


def test_a_store_helper_in_the_users_config_never_sees_the_token(tmp_path: Path) -> None:
    """``credential.helper=`` first clears helpers from ~/.gitconfig (here: ``store``, which
    would write the token in clear to ~/.git-credentials on every successful request)."""
    calls = tmp_path / "calls"
    (tmp_path / ".gitconfig").write_text(
        "[credential]\n"
        f'\thelper = "!f() {{ cat >> {calls}; }}; f"\n'
        '[credential "http://127.0.0.1:3000"]\n'
        f'\thelper = "!f() {{ cat >> {calls}; }}; f"\n'
    )
    origin = git.GiteaOrigin.parse("http://127.0.0.1:3000")
    env = git.git_environment(
        {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, origin, TOKEN, "alice"
    )
    settings = git.GitSettings(origin=origin, credential_helper=git.credential_helper_command())
    approve = subprocess.run(
        [*git.global_args(settings), "credential", "approve"],
        input=f"protocol=http\nhost=127.0.0.1:3000\nusername=alice\npassword={TOKEN}\n\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=30,
    )
    assert approve.returncode == 0, approve.stderr
    assert not calls.exists()


def test_helper_runs_with_the_standard_library_only() -> None:
    # The helper is started as `python -I -S file`: no site-packages, no package imports.
    source = Path(git_credential_helper.__file__).read_text()
    imports = [
        line.split()[1]
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and "__future__" not in line
    ]
    assert all(not m.startswith((".", "scitex")) for m in imports), imports

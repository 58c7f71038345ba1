"""Gitea end to end: the hub provisions alice in Gitea at sign-in and gives her token to her
server only; through that spawned server she creates a project, syncs, gets a 409 on a conflict
without losing work, resolves it, and is refused bad names, URLs and other institutions' orgs.
After every operation her token is absent from ``.git/config``, every process's command line,
the hub's, the job's and Gitea's logs, the batch script, the hub's database and the responses.

Gitea is the fake from ``tests/fakes`` (Gitea cannot run here), as a process on a free port with an
admin whose token and password the hub reads from files.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import (
    REPO,
    Hub,
    HubUser,
    cmdlines,
    free_port,
    job_ids_of,
    new_hub,
    read_environ,
    server_pids,
)
from tests.e2e.test_apptainer import APPTAINER, TEST_IMAGE, container_settings
from tests.services import VENV_PYTHON, missing, require_executable, slurm_env

ADMIN_PASSWORD = "fake-gitea-admin-" + secrets.token_hex(8)


@dataclass
class Gitea:
    url: str
    root: Path
    admin_token: str
    log_path: Path
    proc: subprocess.Popen[bytes]
    mode: str  # where the notebook server of this round runs: no-container or apptainer

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}/api/v1{path}",
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=10,
            **kwargs,
        )

    def git_env(self) -> dict[str, str]:
        """git in this test process authenticates as the admin through the environment."""
        return {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: token {self.admin_token}",
        }


@contextlib.contextmanager
def fake_gitea_process(mode: str) -> Iterator[Gitea]:
    """The fake Gitea as a process, with an admin whose token and password files the
    hub reads; removed afterwards."""
    root = Path(os.path.realpath(tempfile.mkdtemp(prefix="scitex-gitea-")))
    secrets_dir = root / "secrets"
    secrets_dir.mkdir(mode=0o700)
    password_file = secrets_dir / "admin-password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    password_file.chmod(0o600)
    token_file = secrets_dir / "admin-token"
    port = free_port()
    log_path = root / "gitea.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                VENV_PYTHON,
                "-m",
                "tests.fakes.gitea",
                "--port",
                str(port),
                "--root",
                str(root / "repos"),
                "--admin-token-file",
                str(token_file),
                "--admin-password-file",
                str(password_file),
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/api/v1/version", timeout=2).ok and token_file.exists():
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the fake Gitea did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    try:
        yield Gitea(url, root, token_file.read_text().strip(), log_path, proc, mode)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module", params=["no-container", "apptainer"])
def gitea(request: pytest.FixtureRequest, services: str) -> Iterator[Gitea]:
    """A fresh fake Gitea for each round (each with its own hub)."""
    with fake_gitea_process(request.param) as gitea:
        yield gitea


@pytest.fixture(scope="module")
def hub(gitea: Gitea) -> Iterator[Hub]:
    """The server in its SLURM job directly, then inside Apptainer (the test image)."""
    overrides: dict[str, Any] = {}
    if gitea.mode == "apptainer":
        require_executable(APPTAINER, "Apptainer")
        if not os.path.isdir(TEST_IMAGE):
            missing("the Apptainer test image", f"{TEST_IMAGE} (containers/build.sh test-sandbox)")
        overrides["container"] = container_settings()
    else:
        overrides["container"] = {"runtime": "none"}
    hub = new_hub(
        env={"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)},
        **overrides,
        gitea={
            "url": gitea.url,
            "admin_token_file": str(gitea.root / "secrets" / "admin-token"),
            "admin_user": "gitea-admin",
            "admin_password_file": str(gitea.root / "secrets" / "admin-password"),
            # Short, so the test with Gitea paused fails over quickly.
            "request_timeout": 3,
        },
    )
    hub.start()
    yield hub
    hub.close()


def projects_api(user: HubUser, method: str, path: str = "", **kwargs: Any) -> requests.Response:
    return user.api(method, f"/user/{user.name}/scitex/api/projects{path}", timeout=120, **kwargs)


def put_text(user: HubUser, path: str, text: str) -> None:
    r = user.api(
        "PUT",
        f"/user/{user.name}/api/contents/{path}",
        json={
            "type": "file",
            "format": "base64",
            "content": base64.b64encode(text.encode()).decode(),
        },
    )
    assert r.status_code in (200, 201), r.text


def get_text(user: HubUser, path: str) -> str:
    r = user.api("GET", f"/user/{user.name}/api/contents/{path}?format=text&type=file")
    assert r.status_code == 200, r.text
    return str(r.json()["content"])


def remote_file(gitea: Gitea, tmp: Path, repo: str, path: str) -> str:
    dest = tmp / f"check-{secrets.token_hex(4)}"
    subprocess.run(
        ["git", "clone", "-q", "--", f"{gitea.url}/{repo}.git", str(dest)],
        env=gitea.git_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return (dest / path).read_text()


class LeakCheck:
    """Everywhere alice's token must never be, checked after each operation."""

    def __init__(self, hub: Hub, gitea: Gitea, token: str, project_dir: Path) -> None:
        self.hub, self.gitea, self.token, self.project_dir = hub, gitea, token, project_dir
        self.responses: list[str] = []
        self.checks = 0

    def record(self, r: requests.Response) -> requests.Response:
        self.responses.append(f"{r.status_code} {dict(r.headers)} {r.text}")
        return r

    def __call__(self, after: str) -> None:
        token = self.token
        where: list[str] = []
        git_config = self.project_dir / ".git" / "config"
        if git_config.exists() and token in git_config.read_text():
            where.append(".git/config")
        if any(token in line for line in cmdlines()):
            where.append("a process command line")
        if token in self.hub.log_text():
            where.append("the hub's log")
        if token in self.gitea.log_path.read_text(errors="replace"):
            where.append("Gitea's log")
        job_logs = list((self.project_dir.parents[1] / ".scitex" / "logs").glob("*.log"))
        assert job_logs, "no job log to check"
        where.extend(
            f"the job log {log.name}"
            for log in job_logs
            if token in log.read_text(errors="replace")
        )
        db_url = str(self.hub.settings["hub"]["db_url"])
        if (
            db_url.startswith("sqlite:///")
            and token.encode() in Path(db_url.removeprefix("sqlite:///")).read_bytes()
        ):
            where.append("the hub's database (auth_state must be encrypted)")
        if any(token in text for text in self.responses):
            where.append("a response")
        assert not where, f"after {after}: alice's Gitea token found in {', '.join(where)}"
        self.checks += 1


def test_projects_through_a_spawned_server(
    hub: Hub, gitea: Gitea, password: str, tmp_path: Path
) -> None:
    # carol (other-u) signs in first: her institution's organization exists from then on.
    signed_in(hub, "carol", password)
    assert gitea.api("GET", "/orgs/other-u").status_code == 200
    r = gitea.api("POST", "/orgs/other-u/repos", json={"name": "secret", "auto_init": True})
    assert r.status_code == 201, r.text

    alice = signed_in(hub, "alice", password)
    # Provisioned at sign-in: alice is a Gitea user, a member of her institution's organization.
    assert gitea.api("GET", "/users/alice").status_code == 200
    assert gitea.api("GET", "/orgs/demo-u/members/alice").status_code == 204
    assert gitea.api("GET", "/orgs/other-u/members/alice").status_code == 404
    # And of her lab's team (the demo site file puts her in demo-u's lab neuro).
    r = requests.get(
        f"{gitea.url}/api/v1/user/teams",
        headers={"Authorization": f"token {gitea.admin_token}", "Sudo": "alice"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert sorted((t["organization"]["username"], t["name"]) for t in r.json()) == [
        ("demo-u", "lab-neuro"),
        ("demo-u", "members"),
    ]

    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    [pid] = server_pids(hub, "alice")
    env = read_environ(pid)
    token = env["SCITEX_GITEA_TOKEN"]
    assert env["SCITEX_GITEA_URL"] == gitea.url and env["SCITEX_GITEA_ORG"] == "demo-u"
    # It is alice's own token, with the notebook's scopes and no more.
    me = requests.get(
        f"{gitea.url}/api/v1/user", headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert me.json()["login"] == "alice"
    r = requests.post(
        f"{gitea.url}/api/v1/admin/users",
        headers={"Authorization": f"token {token}"},
        json={"username": "mallory", "email": "m@x.y", "password": "pw-123456789"},
        timeout=10,
    )
    assert r.status_code in (401, 403)
    # The batch script SLURM keeps has no token (it travels in sbatch's environment).
    [job_id] = job_ids_of(hub, "alice")
    script = subprocess.run(
        ["scontrol", "write", "batch_script", job_id, "-"],
        env=slurm_env(),
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    assert "#!" in script and token not in script
    # Without a container the job inherits sbatch's environment; in one, it is forwarded by name.
    in_container = hub.settings["container"]["runtime"] != "none"
    assert ('APPTAINERENV_SCITEX_GITEA_TOKEN="${SCITEX_GITEA_TOKEN}"' in script) == in_container

    data_dir = hub.root / "data" / "demo-u" / "alice"
    project = data_dir / "projects" / "paper"
    leaks = LeakCheck(hub, gitea, token, project)
    leaks("the spawn")

    # Create a project (a repository in demo-u), add a file, sync: it is in the remote.
    r = leaks.record(projects_api(alice, "POST", json={"name": "paper"}))
    assert r.status_code == 201, r.text
    assert r.json()["remote"] == f"{gitea.url}/demo-u/paper.git"
    leaks("create")
    put_text(alice, "projects/paper/notes.md", "first line\n")
    r = leaks.record(projects_api(alice, "POST", "/paper/sync"))
    assert r.status_code == 200, r.text
    leaks("the first sync")
    assert remote_file(gitea, tmp_path, "demo-u/paper", "notes.md") == "first line\n"

    # The same line edited in a second clone (pushed) and in alice's project: 409, nothing lost.
    other = tmp_path / "second-clone"
    git = ["git", "-C", str(other), "-c", "user.name=bob", "-c", "user.email=bob@demo-u.edu"]
    subprocess.run(
        ["git", "clone", "-q", "--", f"{gitea.url}/demo-u/paper.git", str(other)],
        env=gitea.git_env(),
        check=True,
        timeout=60,
    )
    (other / "notes.md").write_text("their line\n")
    subprocess.run([*git, "commit", "-qam", "theirs"], check=True, timeout=30)
    subprocess.run([*git, "push", "-q", "origin", "main"], env=gitea.git_env(), check=True)
    put_text(alice, "projects/paper/notes.md", "my line\n")
    r = leaks.record(projects_api(alice, "POST", "/paper/sync"))
    assert r.status_code == 409, r.text
    assert r.json()["conflicts"] == ["notes.md"]
    assert r.json()["committed"] is True
    assert get_text(alice, "projects/paper/notes.md") == "my line\n"
    assert remote_file(gitea, tmp_path, "demo-u/paper", "notes.md") == "their line\n"
    leaks("the conflicting sync")

    # alice resolves it as docs/gitea.md says (a merge in a terminal), then syncs.
    as_alice = ["runuser", "-u", "alice", "--", "git", "-C", str(project)]
    ident = ["-c", "user.name=alice", "-c", "user.email=alice@demo-u.edu"]
    merge = subprocess.run([*as_alice, *ident, "merge", "origin/main"], capture_output=True)
    assert merge.returncode != 0  # the conflict, now in her working tree
    put_text(alice, "projects/paper/notes.md", "my line and their line\n")
    subprocess.run([*as_alice, "add", "notes.md"], check=True, timeout=30)
    subprocess.run([*as_alice, *ident, "commit", "-qm", "merge"], check=True, timeout=30)
    r = leaks.record(projects_api(alice, "POST", "/paper/sync"))
    assert r.status_code == 200, r.text
    assert remote_file(gitea, tmp_path, "demo-u/paper", "notes.md") == "my line and their line\n"
    leaks("the resolving sync")

    # Names and URLs that would be options, other transports, paths or other institutions.
    pwned = [data_dir / "pwned", data_dir / "projects" / "pwned", Path("/tmp/pwned")]
    for p in pwned:
        p.unlink(missing_ok=True)
    bad_names = ["--upload-pack=touch pwned", "ext::sh -c id", "file:///etc", "../x", "-x", "a/b"]
    for name in bad_names:
        r = leaks.record(projects_api(alice, "POST", json={"name": name}))
        assert r.status_code == 400, (name, r.status_code, r.text)
    bad_urls = [
        "--upload-pack=touch pwned",
        "ext::sh -c id",
        "file:///etc",
        "../x",
        f"{gitea.url}/demo-u/../x.git",
        f"http://alice:{token}@127.0.0.1/demo-u/paper.git",
        f"{gitea.url}/demo-u/paper.git --upload-pack=touch pwned",
        "ssh://127.0.0.1/demo-u/paper.git",
    ]
    for url in bad_urls:
        r = leaks.record(projects_api(alice, "POST", "/import", json={"clone_url": url}))
        assert r.status_code == 400, (url, r.status_code, r.text)
    # Another institution's organization: creating there is forbidden; its repositories are
    # invisible to alice (Gitea answers 404 for a private repository, not 403).
    r = leaks.record(projects_api(alice, "POST", json={"name": "intrude", "org": "other-u"}))
    assert r.status_code == 403, r.text
    assert gitea.api("GET", "/repos/other-u/intrude").status_code == 404
    r = leaks.record(
        projects_api(alice, "POST", "/import", json={"clone_url": f"{gitea.url}/other-u/secret"})
    )
    assert r.status_code in (403, 404), r.text
    assert not (data_dir / "projects" / "secret").exists()
    assert not any(p.exists() for p in pwned)
    leaks("the refused requests")

    # Status and list: still fine, still no token anywhere.
    r = leaks.record(projects_api(alice, "GET", "/paper/status"))
    assert r.status_code == 200 and r.json()["ahead"] == 0, r.text
    r = leaks.record(projects_api(alice, "GET"))
    assert r.status_code == 200 and [p["name"] for p in r.json()["projects"]] == ["paper"]
    leaks("status and list")
    assert leaks.checks == 7  # every check above ran

    # Signing in again keeps the stored (encrypted) token: the running server's stays valid.
    signed_in(hub, "alice", password)
    me = requests.get(
        f"{gitea.url}/api/v1/user", headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert me.status_code == 200 and me.json()["login"] == "alice"

    r = alice.api("DELETE", "/hub/api/users/alice/server")
    assert r.status_code in (202, 204)
    alice.wait_stopped()
    leaks("the stop")


def test_a_sign_in_while_gitea_is_down_still_works(hub: Hub, gitea: Gitea, password: str) -> None:
    """Provisioning fails (Gitea paused): bob signs in and his server starts without Gitea."""
    os.kill(gitea.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        bob = signed_in(hub, "bob", password)
        took = time.monotonic() - started
    finally:
        os.kill(gitea.proc.pid, signal.SIGCONT)
    # Each Gitea request gives up after gitea.request_timeout (3 s here).
    assert took < 30
    log = hub.log_text()
    gitea_lines = "\n".join(line for line in log.splitlines() if "Gitea" in line)
    assert "Gitea provisioning for bob failed: 504 Gitea did not answer in time" in log, gitea_lines
    r = bob.api("POST", "/hub/api/users/bob/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    bob.wait_ready()
    [pid] = server_pids(hub, "bob")
    assert "SCITEX_GITEA_TOKEN" not in read_environ(pid)
    # The spawn page said why (the progress events are in the hub's log too).
    assert "Gitea is not available to this server: Gitea could not be set up" in hub.log_text()
    r = projects_api(bob, "POST", json={"name": "local-only"})
    assert r.status_code == 201, r.text  # a local project
    r = projects_api(bob, "POST", "/local-only/sync")
    assert r.status_code == 501, r.text
    r = bob.api("DELETE", "/hub/api/users/bob/server")
    assert r.status_code in (202, 204)
    bob.wait_stopped()

"""The production Compose file brought up for real, as docs/admin-guide.md sections 3 and 7 say.

In a copy of deploy/: ``.env`` from compose.env.example and the site file from
scitex.yaml.example (the edits an admin makes: deploy/dev/compose_site.py),
``make-secrets.sh``, the site's certificate (a test CA here), ``up -d`` with
docker-compose.local.yml (the images built offline by deploy/dev/docker.sh). Then, in
order (one stack for the module): alice signs in through nginx, her server runs as her
SLURM job, a kernel runs over wss; a compute job submitted from her server through the
scitex service completes; a project syncs to the Gitea stand-in (seen through nginx's
/git/); the hub container restarted re-adopts her server (same job); ``down`` + ``up``
keep her data and the hub's database; PostgreSQL is backed up and restored with the
commands of the guide's section 7, read from the guide itself, and the restored hub lists
her. Needs: dockerd and the images (``make docker``), the dev SLURM, Apptainer's test
image and the demo users. The stack uses 8443, 8088, 13000, 15432, 18000, 18001, 18081
and 18090 on 127.0.0.1: it cannot run beside ``make demo-compose``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket
import yaml

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import HubUser
from tests.e2e.test_gitea_e2e import projects_api, put_text
from tests.e2e.test_jobs import jobs_api, put, wait_state
from tests.e2e.test_nginx import execute_request, read_reply
from tests.services import SLURM_CONF, demo_admin_password, missing, slurm_env

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
import compose_site  # noqa: E402

URL = compose_site.PUBLIC_URL
# Not the guide's `scitex`: `make demo-compose` keeps its volumes under that name, and this
# test removes its own (down -v).
PROJECT = "scitex-e2e"
GUIDE = REPO / "docs" / "admin-guide.md"
# How every Compose command in the guide starts, and what this test runs instead: its own
# project name, and the override with the local images (docker-compose.local.yml's header).
GUIDE_COMPOSE = "docker-compose -p scitex -f docker-compose.prod.yml "
LOCAL_COMPOSE = (
    f"docker-compose -p {PROJECT} -f docker-compose.prod.yml -f docker-compose.local.yml "
)
IMAGES = (
    "scitex-hub:0.1.0",
    "scitex-local/postgres:15",
    "scitex-local/nginx:1.22",
    "scitex-local/gitea-standin:latest",
)


class Stack:
    """The Compose project in its deploy directory."""

    def __init__(self, deploy: Path, ca: Path, data_root: Path) -> None:
        self.deploy, self.ca, self.data_root = deploy, ca, data_root
        self.url = URL
        self.server_jobs: list[str] = []  # alice's server: her one SLURM job

    def compose(self, *args: str, check: bool = True, timeout: int = 300) -> str:
        argv = ["docker-compose", "-p", PROJECT, "-f", "docker-compose.prod.yml"]
        argv += ["-f", "docker-compose.local.yml", *args]
        out = subprocess.run(
            argv, cwd=self.deploy, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: {out.stdout}\n{out.stderr}")
        return out.stdout

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{URL}/hub/health", timeout=5, verify=str(self.ca)).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the stack did not answer:\n{self.compose('logs', '--tail=40')}")

    def log_tail(self) -> str:
        return self.compose("logs", "--tail=40", "hub", check=False)

    def run_guide_command(self, command: str) -> None:
        """One of the guide's commands, in deploy/ as the guide says, through bash."""
        assert command.startswith(GUIDE_COMPOSE), command
        local = command.replace(GUIDE_COMPOSE, LOCAL_COMPOSE)
        assert "-p scitex " not in local, local  # never the demo's project
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", local],
            cwd=self.deploy, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert out.returncode == 0, f"{local}\n{out.stdout}\n{out.stderr}"

    def gitea(self, method: str, path: str) -> requests.Response:
        """The stand-in's API through nginx (/git/), as its admin: the token it wrote into
        the gitea_admin_token secret file at its start."""
        token = (self.deploy / "secrets" / "gitea_admin_token").read_text().strip()
        return requests.request(
            method, f"{URL}/git/api/v1{path}",
            headers={"Authorization": f"token {token}"}, timeout=30,
        )  # fmt: skip


def make_tls(directory: Path) -> Path:
    """A test CA and a certificate for 127.0.0.1 (the site's certificate in production)."""
    directory.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ca, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(ca_key),
            "-out", str(ca), "-subj", "/CN=compose e2e CA",
            "-addext", "basicConstraints=critical,CA:TRUE")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(directory / "key.pem"),
            "-out", str(directory / "server.csr"), "-subj", "/CN=localhost")  # fmt: skip
    (directory / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(directory / "server.csr"), "-CA", str(ca),
            "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
            "-extfile", str(directory / "ext"), "-out", str(directory / "cert.pem"))  # fmt: skip
    return ca


def require_docker() -> None:
    if not shutil.which("docker-compose") or not shutil.which("docker"):
        missing("Docker", "docker-compose is not installed (make docker)")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        missing("Docker", "dockerd is not running (bash deploy/dev/docker.sh start)")
    for image in IMAGES:
        inspect = ["docker", "image", "inspect", image]
        if subprocess.run(inspect, capture_output=True, check=False).returncode != 0:
            missing("Docker", f"image {image} is missing (bash deploy/dev/docker.sh images)")
    if os.geteuid() != 0:
        missing("root", "the stack mounts /etc/shadow and SLURM's config")


@pytest.fixture(scope="module")
def stack(services: str) -> Iterator[Stack]:
    require_docker()
    # Not under pytest's tmp (0700 /tmp/pytest-of-root): the users' jobs must reach
    # their data directories.
    dev_dir = Path(os.environ.get("SCITEX_DEV_DIR", "/var/lib/scitex-dev"))
    root = Path(tempfile.mkdtemp(prefix="compose-e2e-", dir=dev_dir))
    root.chmod(0o755)
    deploy = root / "deploy"
    # A site's copy of deploy/ (the guide starts with `cd deploy`).
    shutil.copytree(REPO / "deploy", deploy, ignore=shutil.ignore_patterns("dev", "secrets"))
    data_root = root / "data"
    data_root.mkdir(mode=0o755)
    slurm_dir = str(Path(SLURM_CONF).parent)
    # cp hub/compose.env.example .env, then edit it.
    shutil.copy(deploy / "hub" / "compose.env.example", deploy / ".env")
    env_text = (deploy / ".env").read_text()
    (deploy / ".env").write_text(compose_site.edit_env(env_text, str(data_root), slurm_dir))
    # cp hub/scitex.yaml.example hub/scitex.yaml, then edit it.
    shutil.copy(deploy / "hub" / "scitex.yaml.example", deploy / "hub" / "scitex.yaml")
    site = yaml.safe_load((deploy / "hub" / "scitex.yaml").read_text())
    site = compose_site.edit_site(site, str(data_root), slurm_dir)
    (deploy / "hub" / "scitex.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    # bash hub/make-secrets.sh secrets; the certificate pair into secrets/.
    subprocess.run(["bash", "hub/make-secrets.sh", "secrets"], cwd=deploy, check=True)
    tls = make_tls(root / "tls").parent
    shutil.copy(tls / "cert.pem", deploy / "secrets" / "tls_cert")
    shutil.copy(tls / "key.pem", deploy / "secrets" / "tls_key")
    s = Stack(deploy, tls / "ca.pem", data_root)
    old_bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(s.ca)
    s.compose("down", "-v", check=False)
    # alice starts without jobs (a demo's server would count as hers).
    subprocess.run(["scancel", "-u", "alice"], env=slurm_env(), check=False)
    deadline = time.monotonic() + 30
    while alice_jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    try:
        s.compose("up", "-d")
        s.wait_healthy()
        yield s
    finally:
        s.compose("down", "-v", check=False)
        subprocess.run(["scancel", "-u", "alice"], env=slurm_env(), check=False)
        shutil.rmtree(root, ignore_errors=True)
        if old_bundle is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = old_bundle


def alice_jobs() -> list[str]:
    """alice's jobs in SLURM's queue, except compute jobs (tagged ``scitex-job:``)."""
    out = subprocess.run(
        ["squeue", "-h", "-u", "alice", "-o", "%i|%u|%k"],
        env=slurm_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    fields = [line.split("|", 2) for line in out.stdout.splitlines()]
    return [f[0] for f in fields if f[1] == "alice" and not f[2].startswith("scitex-job:")]


def guide_commands(section: str, needle: str) -> list[str]:
    """The commands of the first ``sh`` block of the guide's section ``section`` that
    contains ``needle`` (a command with continuation lines is one command)."""
    text = GUIDE.read_text()
    match = re.search(rf"^## {re.escape(section)}\. .*?(?=^## )", text, re.S | re.M)
    assert match, f"docs/admin-guide.md has no section {section}"
    blocks = re.findall(r"^```sh\n(.*?)^```", match.group(0), re.S | re.M)
    block = next((b for b in blocks if needle in b), None)
    assert block, f"section {section} of docs/admin-guide.md has no sh block with {needle}"
    return [c for c in re.split(r"(?<!\\)\n", block.strip()) if c.strip()]


def run_code(stack: Stack, alice: HubUser, code: str) -> dict[str, Any]:
    r = alice.api("POST", "/user/alice/api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text
    kernel = r.json()["id"]
    ws = websocket.create_connection(
        URL.replace("https://", "wss://") + f"/user/alice/api/kernels/{kernel}/channels",
        header=[f"Authorization: token {alice.token}"],
        sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(stack.ca)},
        timeout=60,
    )
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps(execute_request(msg_id, code)))
        return read_reply(ws, msg_id)
    finally:
        ws.close()
        alice.api("DELETE", f"/user/alice/api/kernels/{kernel}")


@pytest.fixture(scope="module")
def alice(stack: Stack, services: str) -> HubUser:
    return signed_in(stack, "alice", services)  # type: ignore[arg-type]


def test_her_server_is_her_slurm_job_and_runs_a_kernel_over_wss(
    stack: Stack, alice: HubUser
) -> None:
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready(180)
    stack.server_jobs = alice_jobs()
    assert len(stack.server_jobs) == 1, stack.server_jobs

    result = run_code(stack, alice, "open('kept.txt', 'w').write('kept'); 6*7")
    assert result["msg_type"] == "execute_result", result["content"]
    assert result["content"]["data"]["text/plain"] == "42"


def test_a_compute_job_from_her_server_completes(stack: Stack, alice: HubUser) -> None:
    """The JupyterLab panel's API: her server forwards to the scitex service in the hub
    container, which submits as alice to the host's SLURM."""
    assert stack.server_jobs, "her server did not start"
    for directory in ("projects", "projects/p1"):
        put(alice, directory)
    script = '#!/bin/bash\nset -e\necho "compose job: user=$(id -un)"\necho 42 > result.txt\n'
    put(alice, "projects/p1/run.sh", script)
    r = jobs_api(alice, "POST", json={"project": "p1", "script": "run.sh"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    job = wait_state(alice, job_id, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 120)
    assert job["state"] == "COMPLETED", job
    assert (job["project"], job["script"], job["exit_code"]) == ("p1", "run.sh", "0:0")
    r = jobs_api(alice, "GET", f"/{job_id}/log")
    assert r.status_code == 200, r.text
    assert "compose job: user=alice" in r.json()["log"], r.json()
    project = stack.data_root / "demo-u" / "alice" / "projects" / "p1"
    assert (project / "result.txt").read_text() == "42\n"
    assert (project / "result.txt").stat().st_uid == pwd.getpwnam("alice").pw_uid


def test_a_project_syncs_to_the_gitea_standin(stack: Stack, alice: HubUser) -> None:
    """Provisioned at sign-in; create, write, sync from her server; the commit is in the
    stand-in container, seen through nginx (/git/, the path users browse)."""
    assert stack.server_jobs, "her server did not start"
    assert stack.gitea("GET", "/users/alice").status_code == 200
    r = projects_api(alice, "POST", json={"name": "paper"})
    assert r.status_code == 201, r.text
    assert r.json()["remote"] == f"http://{compose_site.GITEA_BIND}/demo-u/paper.git"
    put_text(alice, "projects/paper/notes.md", "written in the compose e2e\n")
    r = projects_api(alice, "POST", "/paper/sync")
    assert r.status_code == 200, r.text

    assert stack.gitea("GET", "/repos/demo-u/paper").status_code == 200
    token = (stack.deploy / "secrets" / "gitea_admin_token").read_text().strip()
    clone = stack.deploy.parent / "paper-clone"
    git_env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSL_CAINFO": str(stack.ca),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: token {token}",
    }
    subprocess.run(
        ["git", "clone", "-q", "--", f"{URL}/git/demo-u/paper.git", str(clone)],
        env=git_env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert (clone / "notes.md").read_text() == "written in the compose e2e\n"
    log = subprocess.run(
        ["git", "-C", str(clone), "log", "--format=%s", "--", "notes.md"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert log.stdout.strip(), "no commit of notes.md in Gitea"


def test_a_hub_restart_readopts_her_server(stack: Stack, alice: HubUser) -> None:
    assert stack.server_jobs, "her server did not start"
    stack.compose("restart", "hub")
    stack.wait_healthy()
    model = alice.wait_ready(60)
    assert model["ready"]
    assert alice_jobs() == stack.server_jobs


def test_down_and_up_keep_her_data_and_the_database(stack: Stack, alice: HubUser) -> None:
    assert stack.server_jobs, "her server did not start"
    stack.compose("down")
    stack.compose("up", "-d")
    stack.wait_healthy()
    # Her token and her server record are in the database.
    assert alice.api("GET", "/hub/api/users/alice").status_code == 200
    assert alice.wait_ready(60)["ready"]
    assert alice_jobs() == stack.server_jobs
    result = run_code(stack, alice, "open('kept.txt').read()")
    assert result["msg_type"] == "execute_result", result["content"]
    assert result["content"]["data"]["text/plain"] == "'kept'"


def test_backup_and_restore_as_section_7_says(stack: Stack, alice: HubUser, services: str) -> None:
    """The guide's own commands (read from docs/admin-guide.md), except ``gitea dump``
    (Gitea's files: the stand-in has no ``gitea`` program). Both databases are dumped
    (the stand-in does not use ``gitea``, which stays as the init script made it); the
    hub's is restored."""
    assert stack.server_jobs, "her server did not start"
    admin = signed_in(stack, "admin", demo_admin_password())  # type: ignore[arg-type]
    backup = [c for c in guide_commands("7", "pg_dump") if "gitea dump" not in c]
    restore = guide_commands("7", "pg_restore")
    assert backup and any("pg_restore" in c for c in restore), (backup, restore)
    for command in backup:
        stack.run_guide_command(command)
    for dump in ("jupyterhub.dump", "gitea.dump"):
        assert (stack.deploy / dump).stat().st_size > 0, dump
    # Made after the backup: the restored database must not know it.
    later = signed_in(stack, "alice", services)  # type: ignore[arg-type]
    assert later.api("GET", "/hub/api/users/alice").status_code == 200

    for command in restore:
        stack.run_guide_command(command)
    stack.wait_healthy()
    r = admin.api("GET", "/hub/api/users")
    assert r.status_code == 200, r.text
    assert {"alice", "admin"} <= {u["name"] for u in r.json()}, r.json()
    assert alice.api("GET", "/hub/api/users/alice").status_code == 200
    assert later.api("GET", "/hub/api/users/alice").status_code in (401, 403)
    # Her server's job still runs: re-adopted, as the guide says.
    assert alice.wait_ready(60)["ready"]
    assert alice_jobs() == stack.server_jobs

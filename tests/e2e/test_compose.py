"""The production Compose file brought up for real, as docs/admin-guide.md section 3 says.

In a copy of deploy/: ``.env`` from compose.env.example and the site file from
scitex.yaml.example (the edits an admin makes: deploy/dev/compose_site.py),
``make-secrets.sh``, the site's certificate (a test CA here), ``up -d`` with
docker-compose.local.yml (the images built offline by deploy/dev/docker.sh). Then alice
signs in through nginx, her server runs as her SLURM job, a kernel runs over wss, the hub
container restarted re-adopts her server (same job), and ``down`` + ``up`` keep her data
and the hub's database. Needs: dockerd and the images (``make docker``), the dev SLURM
and the demo users. The stack uses 8443, 8088, 13000, 15432, 18000, 18001 and 18081 on
127.0.0.1: it cannot run beside ``make demo-compose``.
"""

from __future__ import annotations

import json
import os
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
from tests.e2e.test_nginx import execute_request, read_reply
from tests.services import SLURM_CONF, missing, slurm_env

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
import compose_site  # noqa: E402

URL = compose_site.PUBLIC_URL
PROJECT = "scitex-e2e"
IMAGES = (
    "scitex-hub:0.1.0",
    "scitex-local/postgres:15",
    "scitex-local/nginx:1.22",
    "scitex-local/gitea-standin:latest",
)


class Stack:
    """The Compose project in its deploy directory."""

    def __init__(self, deploy: Path, ca: Path) -> None:
        self.deploy, self.ca = deploy, ca
        self.url = URL

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
    s = Stack(deploy, tls / "ca.pem")
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
    out = subprocess.run(
        ["squeue", "-h", "-u", "alice", "-o", "%i %u"],
        env=slurm_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line.split()[0] for line in out.stdout.splitlines() if line.split()[1:] == ["alice"]]


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


def test_compose_stack_end_to_end(stack: Stack, services: str) -> None:
    alice = signed_in(stack, "alice", services)  # type: ignore[arg-type]
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready(180)
    jobs = alice_jobs()
    assert len(jobs) == 1, jobs

    result = run_code(stack, alice, "open('kept.txt', 'w').write('kept'); 6*7")
    assert result["msg_type"] == "execute_result", result["content"]
    assert result["content"]["data"]["text/plain"] == "42"

    # The hub container restarted: her server is re-adopted, same job.
    stack.compose("restart", "hub")
    stack.wait_healthy()
    model = alice.wait_ready(60)
    assert model["ready"]
    assert alice_jobs() == jobs

    # down, then up: the database (her token, her server record) and her data stay.
    stack.compose("down")
    stack.compose("up", "-d")
    stack.wait_healthy()
    assert alice.api("GET", "/hub/api/users/alice").status_code == 200
    assert alice.wait_ready(60)["ready"]
    assert alice_jobs() == jobs
    result = run_code(stack, alice, "open('kept.txt').read()")
    assert result["msg_type"] == "execute_result", result["content"]
    assert result["content"]["data"]["text/plain"] == "'kept'"

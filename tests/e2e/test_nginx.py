"""Through nginx with TLS, as in production: the production server block
(deploy/nginx/scitex.conf.template, started by deploy/dev/nginx.sh with a test CA)
in front of a real hub. Sign in with PAM, spawn, and run code in a kernel over a
WebSocket that goes through nginx and configurable-http-proxy."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import REPO, Hub, HubUser, free_port
from tests.services import missing

pytestmark = pytest.mark.e2e

NGINX_SH = REPO / "deploy" / "dev" / "nginx.sh"


def require_nginx() -> None:
    for tool, package in (("nginx", "nginx"), ("openssl", "openssl"), ("envsubst", "gettext-base")):
        if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            missing(tool, f"{tool} is not installed (apt-get install {package})")


@dataclass
class Front:
    """What HubUser needs of a hub (url, log_tail): the hub as seen through nginx."""

    url: str
    ca: str
    hub: Hub
    http_url: str

    def log_tail(self, lines: int = 60) -> str:
        return self.hub.log_tail(lines)


@pytest.fixture(scope="module")
def front(hub: Hub) -> Iterator[Front]:
    require_nginx()
    directory = Path(tempfile.mkdtemp(prefix="scitex-nginx-", dir="/tmp"))
    https_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "SCITEX_NGINX_DIR": str(directory),
        "SCITEX_NGINX_PORT": str(https_port),
        "SCITEX_NGINX_HTTP_PORT": str(http_port),
    }
    hub_port = hub.url.rsplit(":", 1)[1]
    try:
        out = subprocess.run(
            ["bash", str(NGINX_SH), "start", hub_port],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        values = dict(line.split("=", 1) for line in out.stdout.split())
        front = Front(
            url=values["SCITEX_NGINX_URL"],
            ca=values["SCITEX_NGINX_CA"],
            hub=hub,
            http_url=f"http://127.0.0.1:{http_port}",
        )
        # Every request of this module trusts the test CA and nothing else.
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("REQUESTS_CA_BUNDLE", front.ca)
            yield front
    finally:
        subprocess.run(["bash", str(NGINX_SH), "stop"], env=env, check=False, timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def alice_via_nginx(front: Front, services: str) -> Iterator[HubUser]:
    user = signed_in(front, "alice", services)  # type: ignore[arg-type]
    yield user
    user.api("DELETE", "/hub/api/users/alice/server")


def test_tls_and_security_headers(front: Front) -> None:
    r = requests.get(front.url + "/hub/login", timeout=10)
    assert r.status_code == 200
    assert "Sign in" in r.text or "login" in r.text.lower()
    assert r.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert r.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    # JupyterHub's own CSP passes through untouched (the hub's pages: no framing).
    assert r.headers["Content-Security-Policy"].startswith("frame-ancestors 'none'")
    assert r.headers["Server"] == "nginx"  # no version (server_tokens off)

    # The certificate is checked: a client that does not trust the test CA fails.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(front.url + "/hub/login", timeout=10, verify=requests.certs.where())

    # Plain HTTP only redirects to HTTPS, keeping the path.
    plain = requests.get(front.http_url + "/hub/login?next=x", timeout=10, allow_redirects=False)
    assert plain.status_code == 301
    assert plain.headers["Location"].startswith("https://localhost:")
    assert plain.headers["Location"].endswith("/hub/login?next=x")


def test_sign_in_spawn_and_kernel_websocket(front: Front, alice_via_nginx: HubUser) -> None:
    alice = alice_via_nginx
    # The session cookie is marked Secure: the hub knows it is served over HTTPS.
    cookies = {c.name: c for c in alice.session.cookies}
    assert cookies["jupyterhub-session-id"].secure

    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()

    # A kernel through nginx (REST), then its channels (WebSocket, wss://).
    r = alice.api("POST", "/user/alice/api/kernels", json={"name": "python3"})
    assert r.status_code == 201, r.text
    kernel_id = r.json()["id"]
    ws_url = (
        front.url.replace("https://", "wss://") + f"/user/alice/api/kernels/{kernel_id}/channels"
    )
    ws = websocket.create_connection(
        ws_url,
        header=[f"Authorization: token {alice.token}"],
        sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": front.ca},
        timeout=60,
    )
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps(execute_request(msg_id, "1+1")))
        result = read_reply(ws, msg_id)
    finally:
        ws.close()
    assert result["msg_type"] == "execute_result"
    assert result["content"]["data"]["text/plain"] == "2"

    alice.api("DELETE", f"/user/alice/api/kernels/{kernel_id}")
    # The proxy logs show the WebSocket went through nginx (HTTP/1.1 101 upgrade).
    access_log = Path(front.ca).parents[1] / "access.log"
    assert f'"GET /user/alice/api/kernels/{kernel_id}/channels HTTP/1.1" 101' in (
        access_log.read_text()
    )


def execute_request(msg_id: str, code: str) -> dict[str, Any]:
    """A Jupyter messaging protocol v5 ``execute_request`` on the shell channel."""
    return {
        "header": {
            "msg_id": msg_id,
            "username": "alice",
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


def read_reply(ws: websocket.WebSocket, msg_id: str, limit: int = 200) -> dict[str, Any]:
    """The first ``execute_result`` (or error) answering ``msg_id``."""
    seen = []
    for _ in range(limit):
        message = json.loads(ws.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        seen.append(message["msg_type"])
        if message["msg_type"] in ("execute_result", "error"):
            return dict(message)
    raise AssertionError(f"no execute_result for {msg_id}; saw {seen}")

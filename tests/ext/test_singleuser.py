"""The job's entry point: listens on its port, reports it to the hub, serves on it."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scitex_server_ext import singleuser

REPO = Path(__file__).resolve().parents[2]


def listening_inodes(pid: int | str, port: int) -> set[str]:
    """Inodes of the TCP sockets of process ``pid`` that LISTEN on ``port``."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    listening.add(inode)
    owned = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                owned.add(target[len("socket:[") : -1])
    return listening & owned


class Hub(BaseHTTPRequestHandler):
    """The hub's API, as far as a starting server uses it. On each port report it
    notes whether the reporting process (``pid``) already listened on that port."""

    answers: list[int] = []
    received: list[tuple[str, str, dict]] = []
    listening_at_report: list[bool] = []
    pid: int | str = "self"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        if self.path.endswith("/scitex/port"):
            self.listening_at_report.append(bool(listening_inodes(self.pid, body["port"])))
            self.received.append((self.path, self.headers["Authorization"], body))
        self.send_response(self.answers.pop(0) if self.answers else 200)
        self.end_headers()

    def do_GET(self) -> None:
        # The server's hub version check.
        self.send_response(200)
        self.send_header("X-JupyterHub-Version", "6.1.1")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub():
    Hub.answers, Hub.received, Hub.listening_at_report, Hub.pid = [], [], [], "self"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hub/api"
    server.shutdown()


def held_ports(count: int) -> tuple[list[socket.socket], int]:
    """``count`` consecutive ports held (listening) by this process, and the first."""
    for _ in range(50):
        first = random.randint(20000, 30000)
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                held.append(s)
                s.bind(("0.0.0.0", port))
                s.listen()
        except OSError:
            for s in held:
                s.close()
            continue
        return held, first
    raise AssertionError("no free run of ports")


def test_reports_the_listening_port_with_the_servers_token(hub: str) -> None:
    sockets = singleuser.listen_on_free_port("127.0.0.1", None)
    port = sockets[0].getsockname()[1]
    assert singleuser.report_listening(hub, "s3cret", sockets) == port
    assert Hub.received == [("/hub/api/scitex/port", "token s3cret", {"port": port})]
    assert Hub.listening_at_report == [True]


def test_a_socket_that_does_not_listen_is_never_reported(hub: str) -> None:
    with socket.socket() as bound_only:
        bound_only.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="is not listening; not reporting it"):
            singleuser.report_listening(hub, "s3cret", [bound_only])
    with pytest.raises(ValueError, match="no listening socket"):
        singleuser.report_listening(hub, "s3cret", [])
    assert Hub.received == []


def test_a_refusal_stops_the_start_without_retrying(hub: str) -> None:
    Hub.answers = [409]
    sockets = singleuser.listen_on_free_port("127.0.0.1", None)
    port = sockets[0].getsockname()[1]
    with pytest.raises(SystemExit, match=f"refused port {port}: 409"):
        singleuser.report_listening(hub, "s3cret", sockets)
    assert len(Hub.received) == 1


def test_an_unreachable_hub_is_retried_then_given_up() -> None:
    with pytest.raises(SystemExit, match="cannot reach the hub"):
        singleuser._post_port("http://127.0.0.1:9/hub/api", "t", 1, attempts=2)


def test_port_ranges() -> None:
    assert singleuser.parse_port_range("") is None
    assert singleuser.parse_port_range(" 40000-40009 ") == (40000, 40009)
    assert singleuser.parse_port_range("40000") == (40000, 40000)
    for bad in ("40009-40000", "0-10", "1-70000", "40000:40009", "a-b", "1-2-3"):
        with pytest.raises(ValueError, match="server_ports"):
            singleuser.parse_port_range(bad)


def test_a_held_port_of_the_range_is_skipped() -> None:
    held, first = held_ports(2)
    try:
        held[1].close()  # first held, first+1 free
        for _ in range(5):  # whichever port of the range is tried first
            sockets = singleuser.listen_on_free_port("0.0.0.0", (first, first + 1))
            assert [s.getsockname()[1] for s in sockets] == [first + 1]
            assert sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            for s in sockets:
                s.close()
    finally:
        held[0].close()


def test_a_range_with_every_port_held_fails_clearly() -> None:
    held, first = held_ports(2)
    try:
        with pytest.raises(OSError, match=f"no free port in {first}-{first + 1} on 0.0.0.0"):
            singleuser.listen_on_free_port("0.0.0.0", (first, first + 1))
        # A specific address held by someone also blocks the wildcard bind.
        with pytest.raises(OSError, match="all taken"):
            singleuser.listen_on_free_port("127.0.0.1", (first, first))
    finally:
        for s in held:
            s.close()


def test_the_server_app_reports_a_port_it_already_listens_on(
    hub: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scitex_server_ext.server_app import SciTeXServerApp

    monkeypatch.setenv("JUPYTERHUB_API_URL", hub)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "s3cret")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://0.0.0.0:0/user/alice/")
    app = SciTeXServerApp(ip="0.0.0.0")
    app._find_http_port()
    try:
        [(_, _, body)] = Hub.received
        assert body == {"port": app.port}
        assert [s.getsockname()[1] for s in app.listening] == [app.port]
        # At the moment of the report this very process listened on the port.
        assert Hub.listening_at_report == [True]
        assert os.environ["JUPYTERHUB_SERVICE_URL"] == f"http://0.0.0.0:{app.port}/user/alice/"
    finally:
        for s in app.listening:
            s.close()


def test_server_ports_setting_is_checked() -> None:
    from traitlets import TraitError

    from scitex_server_ext.server_app import SciTeXServerApp

    with pytest.raises((TraitError, ValueError), match="server_ports"):
        SciTeXServerApp(server_ports="9-1")


def test_the_server_serves_on_the_socket_it_reported(hub: str, tmp_path: Path) -> None:
    """The whole entry point in its own process, as in a job: the port it reports is
    one it listens on at that moment, and the server answers there. A port of the
    range that another process holds is skipped."""
    held, first = held_ports(2)
    held[1].close()
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "JUPYTERHUB_API_URL": hub,
        "JUPYTERHUB_API_TOKEN": "s3cret",
        "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:0/user/alice/",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/alice/oauth_callback",
        "JUPYTERHUB_ACTIVITY_URL": "",
        "SCITEX_USER_ROOT": str(tmp_path),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scitex_server_ext.singleuser",
            f"--SciTeXServerApp.server_ports={first}-{first + 1}",
            f"--ServerApp.root_dir={tmp_path}",
            "--allow-root",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    Hub.pid = proc.pid
    try:
        deadline = time.monotonic() + 60
        while not Hub.received and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert Hub.received, proc.communicate(timeout=5)[0].decode(errors="replace")[-3000:]
        [(_, _, body)] = Hub.received
        assert body == {"port": first + 1}
        assert Hub.listening_at_report == [True]
        # Served on that socket: jupyter_server's unauthenticated version endpoint.
        r = requests_get(f"http://127.0.0.1:{first + 1}/user/alice/api", timeout=60)
        assert r.status_code == 200 and "version" in r.json()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        held[0].close()


def requests_get(url: str, timeout: float) -> Any:
    import requests

    return requests.get(url, timeout=timeout)


def test_service_url_gets_the_port() -> None:
    assert (
        singleuser.with_port("http://0.0.0.0:0/user/alice/", 8888)
        == "http://0.0.0.0:8888/user/alice/"
    )
    assert singleuser.with_port("http://[::]:0/user/a/", 1) == "http://[::]:1/user/a/"


def test_needs_the_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    with pytest.raises(SystemExit, match="JUPYTERHUB_API_TOKEN"):
        singleuser.main([])


def test_path_without_drops_only_the_directories_holding_the_executable(tmp_path: Path) -> None:
    with_node, other = tmp_path / "with-node", tmp_path / "other"
    with_node.mkdir()
    other.mkdir()
    node = with_node / "node"
    node.write_text("#!/bin/sh\n")
    node.chmod(0o755)
    (other / "node").write_text("not executable")
    path = f"{with_node}:{other}:/usr/bin"
    # /usr/bin stays unless this machine has node there too.
    usr_bin = "" if os.access("/usr/bin/node", os.X_OK) else ":/usr/bin"
    assert singleuser.path_without("node", path) == f"{other}{usr_bin}"


def test_executable_hidden_restores_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "node").write_text("#!/bin/sh\n")
    (tmp_path / "node").chmod(0o755)
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path}:{plain}")
    with singleuser.executable_hidden("node"):
        assert os.environ["PATH"] == str(plain)
    assert os.environ["PATH"] == f"{tmp_path}:{plain}"


def _labapp_import_runs_node(tmp_path: Path, code: str) -> bool:
    """Import JupyterLab's server app in a fresh interpreter with a recording ``node``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    marker = tmp_path / "node-ran"
    marker.unlink(missing_ok=True)
    node = bin_dir / "node"
    node.write_text(f"#!/bin/sh\necho ran >> {marker}\nexit 1\n")
    node.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', os.defpath)}"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    return marker.exists()


def test_jupyterlab_is_imported_without_running_node(tmp_path: Path) -> None:
    pytest.importorskip("jupyterlab")
    # Control: a plain import asks node (so the check below can fail).
    assert _labapp_import_runs_node(tmp_path, "import jupyterlab.labapp")
    assert not _labapp_import_runs_node(
        tmp_path,
        "from scitex_server_ext.singleuser import import_jupyterlab_without_node as f\n"
        "import os, sys\n"
        "path = os.environ['PATH']\n"
        "f()\n"
        "assert 'jupyterlab.labapp' in sys.modules\n"
        "assert os.environ['PATH'] == path\n",
    )

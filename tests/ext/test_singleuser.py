"""The job's entry point: reports its port to the hub, then runs the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from scitex_server_ext import singleuser


class Hub(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[str, str, dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, self.headers["Authorization"], body))
        self.send_response(self.answers.pop(0) if self.answers else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub():
    Hub.answers, Hub.received = [], []
    server = HTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hub/api"
    server.shutdown()


def test_reports_exactly_the_port_with_the_servers_token(hub: str) -> None:
    singleuser.report_port(hub, "s3cret", 4242)
    assert Hub.received == [("/hub/api/scitex/port", "token s3cret", {"port": 4242})]


def test_a_refusal_stops_the_start_without_retrying(hub: str) -> None:
    Hub.answers = [409]
    with pytest.raises(SystemExit, match="refused port 4242: 409"):
        singleuser.report_port(hub, "s3cret", 4242)
    assert len(Hub.received) == 1


def test_an_unreachable_hub_is_retried_then_given_up() -> None:
    with pytest.raises(SystemExit, match="cannot reach the hub"):
        singleuser.report_port("http://127.0.0.1:9/hub/api", "t", 1, attempts=2)


def test_service_url_gets_the_port() -> None:
    assert (
        singleuser.with_port("http://0.0.0.0:0/user/alice/", 8888)
        == "http://0.0.0.0:8888/user/alice/"
    )
    assert singleuser.with_port("http://[::]:0/user/a/", 1) == "http://[::]:1/user/a/"


def test_free_port_is_bindable() -> None:
    import socket

    port = singleuser.free_port()
    with socket.socket() as s:
        s.bind(("", port))


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

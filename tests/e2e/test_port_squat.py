"""Another user's process holds the port alice's server would take: the route
``/user/alice/`` still goes to alice's server, never to the squatter.

The notebook server listens before it reports its port (scitex_server_ext.server_app),
so a port someone else holds is never reported. The hub here gives servers a range of
two ports (``--SciTeXServerApp.server_ports``) so the test knows which port alice's
server would pick; bob's process takes one (or both) first. Real JupyterHub, proxy,
PAM and SLURM; bob's squatter is a real process of bob's on the same node.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, new_hub

pytestmark = pytest.mark.e2e

# Bob's listener: answers every request as "squatter" and notes it in a file.
SQUATTER = r"""
import http.server, sys
log = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write(self.path + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"identity": {"username": "bob-the-squatter"}}')
    do_POST = do_GET
    def log_message(self, *a):
        pass
http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""


def free_pair() -> int:
    """A port P with P and P+1 free, below the kernel's ephemeral range.

    Ports in the ephemeral range are taken at any moment as the local end of outgoing
    connections (the hub's, the proxy's, SLURM's), so a pair chosen there can be lost
    between choosing it and the server binding it. Below the range only an explicit bind
    takes a port.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = list(range(max(1024, low - 8000), low - 1, 2))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("0.0.0.0", port))
                b.bind(("0.0.0.0", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free consecutive ports below the ephemeral range")


class Squatter:
    """A process of ``user`` listening on ``port`` on all interfaces."""

    def __init__(self, user: str, port: int, root: Path) -> None:
        self.port = port
        self.log = root / f"squatter-{user}-{port}.log"
        self.log.touch()
        shutil.chown(self.log, user)
        self.proc = subprocess.Popen(
            [
                "runuser",
                "-u",
                user,
                "--",
                "/usr/bin/python3",
                "-c",
                SQUATTER,
                str(port),
                str(self.log),
            ]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"{user}'s squatter did not listen on {port}")

    def requests(self) -> list[str]:
        return self.log.read_text().splitlines()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def ports() -> int:
    return free_pair()


@pytest.fixture(scope="module")
def hub(services: str, ports: int) -> Iterator[Hub]:
    hub = new_hub(notebook={"args": [f"--SciTeXServerApp.server_ports={ports}-{ports + 1}"]})
    hub.root.joinpath("squat").mkdir(mode=0o755)
    hub.start()
    yield hub
    hub.close()


def test_a_port_held_by_another_user_is_never_reported(hub: Hub, ports: int, password: str) -> None:
    squatter = Squatter("bob", ports, hub.root / "squat")
    try:
        alice = signed_in(hub, "alice", password)
        alice.start_watching_progress({"profile": "small"})
        # The spawner's progress, as the hub logs it (the event stream may skip it).
        reported = re.findall(r"reported port (\d+); waiting for it to listen", hub.log_text())
        assert reported == [str(ports + 1)], hub.log_tail()

        # The route goes to alice's server: it knows her, and bob's process saw nothing.
        me = alice.api("GET", "/user/alice/api/me")
        assert me.status_code == 200, me.text
        assert me.json()["identity"]["username"] == "alice"
        session = alice.api("GET", "/user/alice/scitex/api/session")
        assert session.status_code == 200 and session.json()["user"] == "alice", session.text
        assert squatter.requests() == []
        # Bob's listener still holds its port: alice's server went around it.
        assert squatter.proc.poll() is None
        alice.api("DELETE", "/hub/api/users/alice/server")
        alice.wait_stopped()
    finally:
        squatter.stop()


def test_every_port_held_fails_the_start_clearly(hub: Hub, ports: int, password: str) -> None:
    squatters = [Squatter("bob", port, hub.root / "squat") for port in (ports, ports + 1)]
    try:
        alice = signed_in(hub, "alice", password)
        r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
        # The start fails while the request waits (500), or after it returned (202).
        assert r.status_code in (202, 500), r.text
        deadline = time.monotonic() + 90
        while alice.server_model() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not alice.server_model(), "alice's start did not fail"
        failures = re.findall(r"Job \d+ ended before its server started: [^\n]*", hub.log_text())
        assert failures and "state FAILED, exit code 1:0" in failures[-1], hub.log_tail()
        log_dir = hub.root / "data" / "demo-u" / "alice" / ".scitex" / "logs"
        logs = "".join(p.read_text(errors="replace") for p in log_dir.glob("notebook-*.log"))
        assert (
            f"scitex-singleuser: [Errno 98] cannot listen: no free port in {ports}-{ports + 1} "
            "on 0.0.0.0 (all taken)"
        ) in logs
        assert alice.api("GET", "/user/alice/api/me").status_code != 200
        assert [s.requests() for s in squatters] == [[], []]
    finally:
        for s in squatters:
            s.stop()

"""Notebook servers inside Apptainer, each seeing only its own user's data.
Real Apptainer, SLURM, JupyterHub and proxy; the near-empty test image borrows
the host's /usr and the project's venv (see docs/containers.md)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, cmdlines, new_hub, read_environ, server_pids
from tests.services import DEV_DIR, PREFIX, require_executable

pytestmark = pytest.mark.e2e

APPTAINER = f"{PREFIX}/bin/apptainer"
TEST_IMAGE = f"{DEV_DIR}/images/scitex-test-sandbox"


def container_settings(image: str = TEST_IMAGE) -> dict:
    return {
        "runtime": "apptainer",
        "executable": APPTAINER,
        "image": image,
        "extra_binds": [
            "/usr:/usr:ro",
            f"{PREFIX}/venv:{PREFIX}/venv:ro",
            "/etc/alternatives:/etc/alternatives:ro",
        ],
    }


@pytest.fixture(scope="module")
def hub(services: str) -> Iterator[Hub]:
    require_executable(APPTAINER, "Apptainer")
    if not os.path.isdir(TEST_IMAGE):
        from tests.services import missing

        missing("the Apptainer test image", f"{TEST_IMAGE} (containers/build.sh test-sandbox)")
    hub = new_hub(container=container_settings())
    hub.start()
    yield hub
    hub.close()


def server_pid(hub: Hub, user: str) -> int:
    pids = server_pids(hub, user)
    assert pids, f"no notebook server of {user}"
    return pids[0]


def in_container(pid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv as the server's user inside the server's own mount namespace."""
    return subprocess.run(
        [
            "nsenter",
            "--target",
            str(pid),
            "--mount",
            "--setuid",
            str(os.stat(f"/proc/{pid}").st_uid),
            "--",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_server_runs_in_its_own_container(hub: Hub, alice: HubUser, password: str) -> None:
    bob = signed_in(hub, "bob", password)
    for user in (alice, bob):
        r = user.api("POST", f"/hub/api/users/{user.name}/server", json={})
        assert r.status_code in (201, 202), r.text
    for user in (alice, bob):
        user.wait_ready()
    pid = server_pid(hub, "alice")

    # Its own mount namespace, and /data is alice's directory.
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    alice_dir = hub.root / "data" / "demo-u" / "alice"
    bob_dir = hub.root / "data" / "demo-u" / "bob"
    assert bob_dir.is_dir()
    (alice_dir / "from-host.txt").write_text("hello")
    assert in_container(pid, "cat", "/data/from-host.txt").stdout == "hello"
    # Nothing of the data root but her own directory: bob's is not there at all.
    assert in_container(pid, "test", "-e", str(bob_dir)).returncode == 1
    assert in_container(pid, "test", "-e", str(hub.root / "data")).returncode == 1
    assert in_container(pid, "test", "-e", DEV_DIR).returncode == 1

    # A file saved through Jupyter lands in her host directory, owned by her.
    r = alice.api(
        "PUT",
        "/user/alice/api/contents/notes.txt",
        json={"type": "file", "format": "text", "content": "in the container"},
    )
    assert r.status_code in (200, 201), r.text
    saved = alice_dir / "notes.txt"
    assert saved.read_text() == "in the container"
    assert saved.stat().st_uid == os.stat(alice_dir).st_uid == _uid("alice")

    # The session knows its job, inside the container too.
    session = alice.api("GET", "/user/alice/scitex/api/session").json()
    assert session["job_id"] and session["node"] == "localhost"

    # The API token is in the environment, on no command line on the node.
    token = read_environ(pid)["JUPYTERHUB_API_TOKEN"]
    assert not [line for line in cmdlines() if token in line]


def test_container_parent_process_is_apptainer(hub: Hub, alice: HubUser) -> None:
    if not alice.server_model().get("ready"):
        alice.api("POST", "/hub/api/users/alice/server", json={})
        alice.wait_ready()
    pid = server_pid(hub, "alice")
    # The server's ancestors include Apptainer's starter, not a bare shell.
    ancestry = []
    current = pid
    for _ in range(8):
        stat = Path(f"/proc/{current}/stat").read_text()
        current = int(stat.rsplit(")", 1)[1].split()[1])
        if current <= 1:
            break
        ancestry.append(Path(f"/proc/{current}/comm").read_text().strip())
    assert any("apptainer" in name or "starter" in name for name in ancestry), ancestry


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid

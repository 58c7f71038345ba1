"""A researcher plants symlinks in her data directory to steer what root does there.

Through the real hub (as root), SLURM, PAM, the proxy and the scitex service: alice
replaces ``.scitex`` with a link to bob's directory, or ``.scitex/logs`` with a link to a
root-owned directory, and starts her server. The start fails with a message in the spawn
progress that says what to remove; bob's directory and the root-owned one keep their
mode, owner and contents. She links bob's directory into her tree: the service's usage
walk does not count it. She swaps levels of a job's log path for links: the service's log
reader answers 404. A folder she makes unreadable to herself makes her server's usage
answer ``incomplete``, not silently lower. (The attack names ``/`` as the target; a root-owned directory of
the test's stands in for it, so a regression breaks a test, not the machine.)
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, new_hub
from tests.services import demo_admin_password

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def hub(services: str) -> Iterator[Hub]:
    hub = new_hub(service={"usage_scan_interval": 1})
    # Servers measure their user's tree every second (default 60 s).
    notebook = hub.settings["notebook"]
    notebook["args"] = [*notebook["args"], "--ScanQuotaBackend.interval=1"]
    hub.start()
    yield hub
    hub.close()


def as_user(name: str, *argv: str) -> None:
    subprocess.run(["runuser", "-u", name, "--", *argv], check=True, timeout=30)


def state(*tops: Path) -> dict[str, tuple[int, int, int, int]]:
    """Mode, owner, group and inode of every entry under ``tops``."""
    out = {}
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [".", *dirnames, *filenames]:
                st = os.lstat(os.path.join(dirpath, name))
                out[os.path.join(dirpath, name)] = (st.st_mode, st.st_uid, st.st_gid, st.st_ino)
    return out


def failed_start(user: HubUser, timeout: float = 60) -> str:
    """Start ``user``'s server and return the failure message of its progress stream (what
    the spawn page shows)."""
    r = user.api("POST", f"/hub/api/users/{user.name}/server", json={"profile": "small"})
    assert r.status_code in (201, 202, 500), r.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = user.api("GET", f"/hub/api/users/{user.name}/server/progress").text
        for line in text.splitlines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed"):
                    return str(event["message"])
        time.sleep(0.3)
    raise AssertionError(f"{user.name}'s start did not fail:\n{user.hub.log_tail()}")


@pytest.fixture(scope="module")
def trees(hub: Hub) -> dict[str, Path]:
    """alice's and bob's data directories as the hub made them, bob's with 8 MiB, and a
    root-owned directory outside every user's tree."""
    inst = Path(hub.settings["data_root"]) / "demo-u"
    paths = {"alice": inst / "alice", "bob": inst / "bob", "system": hub.root / "system"}
    for name in ("alice", "bob"):
        account = pwd.getpwnam(name)
        paths[name].mkdir(parents=True, mode=0o700)
        os.chown(paths[name], account.pw_uid, account.pw_gid)
    as_user("bob", "mkdir", "-p", str(paths["bob"] / ".scitex" / "logs"))
    as_user("bob", "dd", "if=/dev/urandom", f"of={paths['bob'] / 'data.bin'}", "bs=1M", "count=8")
    (paths["system"] / "logs").mkdir(parents=True)
    paths["system"].chmod(0o755)
    return paths


@pytest.mark.parametrize("planted", [".scitex -> bob", ".scitex/logs -> system"])
def test_a_symlink_in_the_data_directory_fails_the_start_and_changes_nothing_outside(
    hub: Hub, password: str, trees: dict[str, Path], planted: str
) -> None:
    alice = signed_in(hub, "alice", password)
    level, target = planted.split(" -> ")
    home = trees["alice"]
    shutil.rmtree(home / ".scitex", ignore_errors=True)
    if level == ".scitex/logs":
        as_user("alice", "mkdir", "-p", str(home / ".scitex"))
    as_user("alice", "ln", "-s", str(trees[target]), str(home / level))
    before = state(trees["bob"], trees["system"])
    message = failed_start(alice)
    host = home / level
    assert (
        f"/data/{level} in your data directory ({host} on the cluster) is a symbolic link "
        f"where the hub needs a directory; remove it (rm {host}) and start again."
    ) in message, message
    # Said once (not JupyterHub's "HTTP 500: message (message)").
    assert message.count("is a symbolic link") == 1, message
    assert state(trees["bob"], trees["system"]) == before
    assert not [job for job in hub.jobs().values() if job["user"] == "alice"]
    alice.wait_stopped()

    # She removes the link, as told: the next start works and the log directory is hers.
    as_user("alice", "rm", str(host))
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    st = os.lstat(home / ".scitex" / "logs")
    assert (st.st_uid, st.st_mode & 0o777) == (pwd.getpwnam("alice").pw_uid, 0o700)
    assert alice.api("DELETE", "/hub/api/users/alice/server").status_code in (202, 204)
    alice.wait_stopped()


def test_the_usage_walk_does_not_follow_a_link_to_bobs_directory(
    hub: Hub, trees: dict[str, Path]
) -> None:
    admin = signed_in(hub, "admin", demo_admin_password())
    as_user("alice", "mkdir", "-p", str(trees["alice"] / "projects"))
    as_user("alice", "ln", "-s", str(trees["bob"]), str(trees["alice"] / "projects" / "stolen"))
    as_user("alice", "ln", "-s", str(trees["bob"]), str(trees["alice"] / "bob-link"))

    def measured() -> dict[str, dict[str, Any]] | None:
        r = admin.api("GET", "/services/scitex/api/usage")
        if r.status_code != 200:
            return None
        [inst] = [i for i in r.json()["institutions"] if i["id"] == "demo-u"]
        users = {u["name"]: u for u in inst["users"]}
        # A pass after the links were planted, with both measured.
        ready = all((users.get(n) or {}).get("used_bytes") for n in ("alice", "bob"))
        return users if ready and users["bob"]["used_bytes"] >= 8 * MiB else None

    deadline = time.monotonic() + 60
    users = None
    while users is None and time.monotonic() < deadline:
        users = measured()
        time.sleep(0.5)
    assert users is not None, hub.log_tail()
    time.sleep(2.5)  # one more pass: it began after the links existed
    users = measured()
    assert users is not None
    assert users["alice"]["used_bytes"] < 1 * MiB
    assert users["bob"]["used_bytes"] >= 8 * MiB


def test_the_job_log_reader_refuses_a_link_at_any_level(
    hub: Hub, password: str, trees: dict[str, Path]
) -> None:
    alice = signed_in(hub, "alice", password)
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    for path, model in (
        ("projects", {"type": "directory"}),
        ("projects/p1", {"type": "directory"}),
        ("projects/p1/run.sh", {"type": "file", "format": "text", "content": "echo alice\n"}),
    ):
        r = alice.api("PUT", f"/user/alice/api/contents/{path}", json=model)
        assert r.status_code in (200, 201), r.text
    jobs = "/user/alice/scitex/api/jobs"
    r = alice.api("POST", jobs, json={"project": "p1", "script": "run.sh", "resources": {}})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = alice.api("GET", f"{jobs}/{job_id}/log")
        if r.status_code == 200 and "alice" in r.json()["log"]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no log of job {job_id}: {r.status_code} {r.text}")

    # bob's log at the same place in his tree, and a file of alice's own outside hers.
    bob_jobs = trees["bob"] / "projects" / "p1" / ".scitex" / "jobs"
    as_user("bob", "mkdir", "-p", str(bob_jobs))
    as_user("bob", "sh", "-c", f"echo bob-secret > {bob_jobs}/{job_id}.log")
    elsewhere = Path(f"/tmp/scitex-e2e-alice-{job_id}")
    as_user("alice", "mkdir", "-p", str(elsewhere / ".scitex" / "jobs"))
    as_user("alice", "sh", "-c", f"echo alice-elsewhere > {elsewhere}/.scitex/jobs/{job_id}.log")
    p1 = trees["alice"] / "projects" / "p1"
    try:
        for level, target in (
            (".scitex/jobs", bob_jobs),
            (".scitex", elsewhere / ".scitex"),
        ):
            real = p1 / (level + ".real")
            as_user("alice", "mv", str(p1 / level), str(real))
            as_user("alice", "ln", "-s", str(target), str(p1 / level))
            r = alice.api("GET", f"{jobs}/{job_id}/log")
            assert r.status_code == 404, r.text
            assert f"projects/p1/{level} is a symbolic link" in r.text, r.text
            assert "secret" not in r.text and "elsewhere" not in r.text
            as_user("alice", "rm", str(p1 / level))
            as_user("alice", "mv", str(real), str(p1 / level))
        assert alice.api("GET", f"{jobs}/{job_id}/log").status_code == 200
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)
        alice.api("DELETE", "/hub/api/users/alice/server")
        alice.wait_stopped()


def test_a_folder_alice_cannot_read_makes_her_usage_incomplete(
    hub: Hub, password: str, trees: dict[str, Path]
) -> None:
    alice = signed_in(hub, "alice", password)
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    hidden = trees["alice"] / "hidden"
    as_user("alice", "mkdir", "-p", str(hidden))
    as_user("alice", "dd", "if=/dev/urandom", f"of={hidden / 'data.bin'}", "bs=1M", "count=4")
    as_user("alice", "chmod", "000", str(hidden))
    try:
        deadline = time.monotonic() + 30
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            r = alice.api("GET", "/user/alice/scitex/api/quota")
            body = r.json() if r.status_code == 200 else {}
            if body.get("incomplete"):
                break
            time.sleep(0.5)
        # Her server (as alice) cannot read the folder: the number is a lower bound, and
        # the answer says so instead of quietly leaving 4 MiB out.
        assert body.get("incomplete") is True, body
        assert body["used_bytes"] < 4 * MiB
        assert {"used_bytes", "measured_at", "source", "limit_bytes"} <= set(body)
        as_user("alice", "chmod", "700", str(hidden))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = alice.api("GET", "/user/alice/scitex/api/quota").json()
            if body.get("incomplete") is False and body["used_bytes"] >= 4 * MiB:
                break
            time.sleep(0.5)
        assert body["incomplete"] is False and body["used_bytes"] >= 4 * MiB, body
    finally:
        hidden.chmod(0o700)
        alice.api("DELETE", "/hub/api/users/alice/server")
        alice.wait_stopped()

"""Job tracking under faults, against the real SLURM: the controller or munge down
(servers kept), the hub killed while a job is pending or starting (no orphan,
no duplicate), a job cancelled from outside (stopped within one poll, reason kept).

These tests stop and restart the dev cluster's daemons: they run one at a time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import REPO, Hub, HubUser, new_hub
from tests.services import DEV_DIR, demo_admin_password, slurm_env

pytestmark = pytest.mark.e2e

POLL = 2  # the test site's queue poll interval (seconds)


@pytest.fixture(scope="module")
def hub(services: str) -> Iterator[Hub]:
    hub = new_hub(
        slurm={"poll_interval": POLL, "orphan_grace": 20, "hub_id": "faults" + os.urandom(2).hex()}
    )
    hub.start()
    yield hub
    scontrol("update", "partitionname=batch", "state=up")
    hub.close()


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], env=slurm_env(), check=True, timeout=30)


def slurm_sh(*args: str) -> None:
    subprocess.run(["bash", str(REPO / "deploy/dev/slurm.sh"), *args], check=True, timeout=120)


def kill_daemon(pid_file: str) -> None:
    with open(pid_file) as f:
        pid = int(f.read().strip())
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def metric(text: str, name: str) -> float:
    """One sample's value from Prometheus text (name with its labels, as printed)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /hub/metrics")


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_and_wait(user: HubUser, **options: object) -> str:
    r = user.api("POST", f"/hub/api/users/{user.name}/server", json=options)
    assert r.status_code in (201, 202), r.text
    user.wait_ready()
    jobs = [j for j, v in user.hub.jobs().items() if v["user"] == user.name]
    assert len(jobs) == 1, user.hub.jobs()
    return jobs[0]


def start_pending(hub: Hub, user: HubUser) -> list[str]:
    """Start a server in the batch partition (which the caller set down): its job pends."""
    r = user.api(
        "POST",
        f"/hub/api/users/{user.name}/server",
        json={"profile": "medium", "partition": "batch"},
    )
    assert r.status_code in (201, 202), r.text
    return wait_for(
        lambda: [
            j for j, v in hub.jobs().items() if v["user"] == user.name and v["state"] == "PENDING"
        ],
        30,
        "a pending job",
    )


def restart(hub: Hub, sig: int) -> None:
    hub.kill(sig)
    hub.start()


def test_controller_down_for_30_s_keeps_servers(hub: Hub, alice: HubUser, password: str) -> None:
    bob = signed_in(hub, "bob", password)
    jobs = {u.name: start_and_wait(u) for u in (alice, bob)}
    errors_before = hub.log_text().count("SLURM did not answer")
    kill_daemon(f"{DEV_DIR}/slurm/run/slurmctld.pid")
    try:
        time.sleep(30)
        for user in (alice, bob):
            assert user.server_model().get("ready"), f"{user.name}'s server was dropped"
            assert user.api("GET", f"/user/{user.name}/api/status").status_code == 200
        assert hub.log_text().count("SLURM did not answer") > errors_before
        # ...and counted where monitoring sees it.
        admin = signed_in(hub, "admin", demo_admin_password())
        assert metric(admin.api("GET", "/hub/metrics").text, "scitex_queue_poll_errors_total") > 0
    finally:
        slurm_sh("start")
    time.sleep(2 * POLL + 1)
    for user in (alice, bob):
        assert user.server_model().get("ready")
        assert user.api("GET", f"/user/{user.name}/api/status").status_code == 200
    assert set(jobs.values()) <= set(hub.jobs())
    for user in (alice, bob):
        user.api("DELETE", f"/hub/api/users/{user.name}/server")
        user.wait_stopped()


def test_munge_down_is_unknown_not_dead(hub: Hub, alice: HubUser) -> None:
    job = start_and_wait(alice)
    kill_daemon("/run/munge/munged.pid")
    try:
        time.sleep(4 * POLL)
        assert alice.server_model().get("ready")
        assert alice.api("GET", "/user/alice/api/status").status_code == 200
    finally:
        slurm_sh("start")
    time.sleep(2 * POLL)
    assert alice.server_model().get("ready")
    assert job in hub.jobs()
    alice.api("DELETE", "/hub/api/users/alice/server")
    alice.wait_stopped()


def test_scancel_from_outside_stops_the_server_and_keeps_the_reason(
    hub: Hub, alice: HubUser, password: str
) -> None:
    job = start_and_wait(alice)
    cancelled_at = time.monotonic()
    subprocess.run(["scancel", job], env=slurm_env(), check=True, timeout=20)
    wait_for(lambda: not alice.server_model(), 3 * POLL + 5, "the hub to notice the cancelled job")
    # Noticed within about one poll interval (plus the job's shutdown and the
    # hub's own poll of the spawner, both at the same interval).
    assert time.monotonic() - cancelled_at <= 2 * POLL + 5
    admin = signed_in(hub, "admin", demo_admin_password())
    model = admin.api("GET", "/hub/api/users/alice?include_stopped_servers=1").json()
    assert "cancelled" in model["servers"][""]["state"]["exit_reason"]
    # alice sees why on her next visit to the spawn page.
    alice.login(password)
    page = alice.session.get(hub.url + "/hub/spawn", timeout=20).text
    assert "Your last server stopped: the job was cancelled" in page


def test_hub_killed_while_the_job_is_pending(hub: Hub, alice: HubUser) -> None:
    scontrol("update", "partitionname=batch", "state=down")
    try:
        pending = start_pending(hub, alice)
        restart(hub, signal.SIGKILL)
        # The restarted hub finds the job through the saved state and cancels it:
        # its server never reached the hub.
        wait_for(lambda: pending[0] not in hub.jobs(), 60, "the pending job to be cancelled")
        wait_for(lambda: not alice.server_model().get("pending"), 60, "the spawn to be over")
    finally:
        scontrol("update", "partitionname=batch", "state=up")
    # No orphan, and a new start gives exactly one job.
    assert not [j for j, v in hub.jobs().items() if v["user"] == "alice"]
    start_and_wait(alice)
    alice.api("DELETE", "/hub/api/users/alice/server")
    alice.wait_stopped()


def test_hub_killed_while_the_server_starts(hub: Hub, alice: HubUser) -> None:
    r = alice.api("POST", "/hub/api/users/alice/server", json={})
    assert r.status_code in (201, 202), r.text
    wait_for(
        lambda: [
            j for j, v in hub.jobs().items() if v["user"] == "alice" and v["state"] == "RUNNING"
        ],
        30,
        "the job to run",
    )
    restart(hub, signal.SIGKILL)
    # Either re-adopted (ready, one job) or cancelled (no job): never an orphan.
    time.sleep(3 * POLL)

    def settled() -> bool:
        model = alice.server_model()
        jobs = [j for j, v in hub.jobs().items() if v["user"] == "alice"]
        return (model.get("ready") and len(jobs) == 1) or (not model and not jobs)

    wait_for(settled, 90, "re-adoption or cancellation")
    if alice.server_model():
        assert alice.api("GET", "/user/alice/api/status").status_code == 200
        alice.api("DELETE", "/hub/api/users/alice/server")
        alice.wait_stopped()
    wait_for(lambda: not [j for j, v in hub.jobs().items() if v["user"] == "alice"], 30, "no job")


def test_hub_restart_readopts_a_running_server(hub: Hub, alice: HubUser) -> None:
    job = start_and_wait(alice)
    restart(hub, signal.SIGKILL)
    wait_for(lambda: alice.server_model().get("ready"), 60, "the server to be re-adopted")
    assert alice.api("GET", "/user/alice/api/status").status_code == 200
    assert [j for j, v in hub.jobs().items() if v["user"] == "alice"] == [job]
    alice.api("DELETE", "/hub/api/users/alice/server")
    alice.wait_stopped()


def test_cancelling_a_pending_spawn_cancels_the_job(hub: Hub, alice: HubUser) -> None:
    scontrol("update", "partitionname=batch", "state=down")
    try:
        pending = start_pending(hub, alice)
        # The user gives up waiting: the hub cancels the queued job.
        r = alice.api("DELETE", "/hub/api/users/alice/server")
        assert r.status_code in (202, 204), r.text
        wait_for(lambda: pending[0] not in hub.jobs(), 30, "the pending job to be cancelled")
        wait_for(lambda: not alice.server_model(), 30, "the spawn to be over")
    finally:
        scontrol("update", "partitionname=batch", "state=up")


def test_a_job_that_dies_before_its_server_starts_fails_the_spawn_at_once(
    services: str, password: str
) -> None:
    broken = new_hub(notebook={"python": "/bin/false"}, slurm={"poll_interval": POLL})
    broken.start()
    try:
        alice = signed_in(broken, "alice", password)
        started = time.monotonic()
        alice.api("POST", "/hub/api/users/alice/server", json={})

        def failed() -> str:
            events = alice.api("GET", "/hub/api/users/alice/server/progress").text
            return events if '"failed": true' in events else ""

        events = wait_for(failed, 60, "the spawn to fail")
        # Noticed from the job's end, not after the 300 s start-up limit.
        assert time.monotonic() - started < 30
        assert "ended before its server started" in events
        assert "state FAILED" in events
        assert not broken.jobs()
    finally:
        broken.cancel_all_jobs()
        broken.kill()
        broken.stop_proxy()
        shutil.rmtree(broken.root, ignore_errors=True)

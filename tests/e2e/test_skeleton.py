"""The walking skeleton, end to end: sign-in -> SLURM job as the user -> server
through the proxy -> stop -> job gone. Real JupyterHub, configurable-http-proxy,
PAM and SLURM."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, cmdlines, job_ids_of, read_environ, server_pids
from tests.services import demo_admin_password

pytestmark = pytest.mark.e2e


def test_alice_server_runs_as_her_slurm_job(hub: Hub, alice: HubUser, bob: HubUser) -> None:
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    model = alice.wait_ready()

    jobs = job_ids_of(hub, "alice")
    assert len(jobs) == 1, hub.jobs()
    job_id = jobs[0]
    assert hub.jobs()[job_id]["state"] == "RUNNING"
    assert hub.jobs()[job_id]["comment"] == f"scitex:hub={hub.hub_id}:user=alice:server=-"

    # Through the proxy, with alice's token.
    status = alice.api("GET", "/user/alice/api/status")
    assert status.status_code == 200, status.text
    session = alice.api("GET", "/user/alice/scitex/api/session")
    assert session.status_code == 200, session.text
    info = session.json()
    assert info["user"] == "alice"
    assert info["job_id"] == job_id
    assert info["profile"] == "small"
    assert info["node"] == "localhost"
    assert 0 < info["time_left_seconds"] <= 3600

    # The server process is alice's, and her data directory is private to her.
    pids = server_pids(hub, "alice")
    assert pids, "no notebook server process owned by alice"
    data_dir = hub.root / "data" / "demo-u" / "alice"
    st = data_dir.stat()
    assert st.st_mode & 0o777 == 0o700
    assert st.st_uid == _uid("alice")
    assert (data_dir / ".scitex" / "logs" / f"notebook-{job_id}.log").exists()

    # The token travels in the environment, never on a command line.
    token = read_environ(pids[0])["JUPYTERHUB_API_TOKEN"]
    assert len(token) >= 32
    assert not [line for line in cmdlines() if token in line]

    # Bob cannot use alice's server.
    assert bob.api("GET", "/user/alice/api/status").status_code == 403
    assert bob.api("GET", "/user/alice/scitex/api/session").status_code == 403

    assert model["url"] == "/user/alice/"
    # The test site's image path does not exist: `auto` ran the server without a
    # container and said so.
    assert "No container for alice" in hub.log_text()


def test_batchspawner_attribute_api_is_gone(hub: Hub, alice: HubUser) -> None:
    """Stock batchspawner lets a server set any spawner attribute, e.g. a command
    the hub later runs. With our spawner the route does not exist, and our own
    callback takes one integer port and nothing else."""
    canary = Path(f"/tmp/scitex-pwned-{hub.hub_id}")
    if not alice.server_model().get("ready"):
        alice.api("POST", "/hub/api/users/alice/server", json={})
        alice.wait_ready()
    job_id = job_ids_of(hub, "alice")[0]
    server_token = read_environ(server_pids(hub, "alice")[0])["JUPYTERHUB_API_TOKEN"]
    evil = {
        "exec_prefix": f"touch {canary} ;",
        "batch_query_cmd": f"touch {canary}",
        "batch_cancel_cmd": f"touch {canary}",
        "ip": "203.0.113.7",
        "port": 1,
    }
    for token in (alice.token, server_token):
        r = requests.post(
            hub.url + "/hub/api/batchspawner",
            json=evil,
            headers={"Authorization": f"token {token}"},
            timeout=10,
        )
        assert r.status_code == 404, r.text
        # Our callback refuses anything but {"port": int}...
        r = requests.post(
            hub.url + "/hub/api/scitex/port",
            json=evil,
            headers={"Authorization": f"token {token}"},
            timeout=10,
        )
        assert r.status_code in (400, 403), r.text
    # ...and a well-formed port from alice's user token (not her server's) too.
    r = requests.post(
        hub.url + "/hub/api/scitex/port",
        json={"port": 4242},
        headers={"Authorization": f"token {alice.token}"},
        timeout=10,
    )
    assert r.status_code == 403, r.text
    # From the server's own token, outside a start: nothing is waiting for it.
    r = requests.post(
        hub.url + "/hub/api/scitex/port",
        json={"port": 4242},
        headers={"Authorization": f"token {server_token}"},
        timeout=10,
    )
    assert r.status_code == 409, r.text

    # Nothing ran, nothing moved: the server still answers where it was, and
    # stopping it (which runs scancel) runs no injected command.
    assert alice.api("GET", "/user/alice/api/status").status_code == 200
    r = alice.api("DELETE", "/hub/api/users/alice/server")
    assert r.status_code in (202, 204), r.text
    alice.wait_stopped()
    _wait_job_gone(hub, job_id)
    assert not canary.exists()
    assert "203.0.113.7" not in hub.log_text()


def test_stop_removes_the_job(hub: Hub, alice: HubUser) -> None:
    r = alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    job_id = job_ids_of(hub, "alice")[0]
    r = alice.api("DELETE", "/hub/api/users/alice/server")
    assert r.status_code in (202, 204), r.text
    alice.wait_stopped()
    _wait_job_gone(hub, job_id)
    assert alice.api("GET", "/user/alice/api/status").status_code in (302, 404, 424, 503)


def test_user_without_institution_is_refused(hub: Hub, password: str) -> None:
    user = HubUser(hub, "dave")
    r = user.login(password)
    assert r.status_code == 403
    assert "no institution" in r.text
    # Nothing was created for dave: no hub user, no data directory.
    admin = signed_in(hub, "admin", demo_admin_password())
    assert admin.api("GET", "/hub/api/users/dave").status_code == 404
    assert not list((hub.root / "data").glob("*/dave"))


def test_wrong_password_is_refused(hub: Hub) -> None:
    r = HubUser(hub, "alice").login("not-the-password")
    assert r.status_code == 403


def _wait_job_gone(hub: Hub, job_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job_id not in hub.jobs():
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still queued: {hub.jobs()}")


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


@pytest.mark.parametrize(
    "options,message",
    [
        ({"cmd": "/bin/sh -c id"}, "cmd: unknown option"),
        ({"prologue": "id"}, "prologue: unknown option"),
        ({"epilogue": "id"}, "epilogue: unknown option"),
        ({"options": "--uid=0"}, "options: unknown option"),
        ({"homedir": "/root"}, "homedir: unknown option"),
        ({"keepvars": "LD_PRELOAD"}, "keepvars: unknown option"),
        ({"exec_prefix": "sh -c"}, "exec_prefix: unknown option"),
        ({"partition": "debug\n#SBATCH --uid=0"}, "partition: newlines are not allowed"),
        ({"partition": "debug\r"}, "partition: newlines are not allowed"),
        ({"partition": "debug;id"}, "partition: only letters, digits"),
        ({"partition": "$(id)"}, "partition: only letters, digits"),
        ({"partition": "x" * 100}, "partition: longer than 64 characters"),
        ({"partition": "batch"}, "partition: 'batch' is not offered by profile 'small'"),
        ({"cpus": "2"}, "cpus: expected a whole number"),
        ({"cpus": 2.5}, "cpus: expected a whole number"),
        ({"cpus": 64}, "cpus: 64 is outside the allowed range 1 to 2"),
        ({"memory": "64GiB"}, "memory: 64GiB is outside the allowed range"),
        ({"memory": "lots"}, "memory: 'lots' is not a size"),
        ({"runtime": "99:00:00"}, "runtime: 4-03:00:00 is outside the allowed range"),
        ({"gpus": 1}, "gpus: 1 is outside the allowed range 0 to 0"),
        ({"profile": "other-small"}, "not available to your institution"),
        ({"profile": "nope"}, "profile: no profile named 'nope'"),
    ],
)
def test_bad_options_get_400_and_no_job(
    hub: Hub, alice: HubUser, options: dict, message: str
) -> None:
    before = hub.jobs()
    r = alice.api("POST", "/hub/api/users/alice/server", json=options)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert hub.jobs() == before
    assert not alice.server_model()


def test_four_users_share_the_node(hub: Hub, password: str) -> None:
    users = [signed_in(hub, name, password) for name in ("alice", "bob", "carol", "erin")]
    for user in users:
        r = user.api("POST", f"/hub/api/users/{user.name}/server", json={})
        assert r.status_code in (201, 202), r.text
    for user in users:
        user.wait_ready()
        assert user.api("GET", f"/user/{user.name}/api/status").status_code == 200
    running = {job["user"] for job in hub.jobs().values() if job["state"] == "RUNNING"}
    assert running == {"alice", "bob", "carol", "erin"}
    # carol is in other-u: her data lives under her own institution.
    assert (hub.root / "data" / "other-u" / "carol").is_dir()
    for user in users:
        user.api("DELETE", f"/hub/api/users/{user.name}/server")
    for user in users:
        user.wait_stopped()


def test_metrics_on_the_hub(hub: Hub, alice: HubUser, password: str) -> None:
    """After the spawns above: the queue watcher's polls, the spawn durations by
    profile and the jobs by state are on the hub's /metrics."""
    from tests.e2e.test_faults import metric

    if not alice.server_model().get("ready"):
        alice.api("POST", "/hub/api/users/alice/server", json={"profile": "small"})
        alice.wait_ready()
    admin = signed_in(hub, "admin", demo_admin_password())
    r = admin.api("GET", "/hub/metrics")
    assert r.status_code == 200, r.text
    text = r.text
    assert metric(text, "scitex_queue_poll_duration_seconds_count") > 0
    assert metric(text, 'scitex_spawn_duration_seconds_count{profile="small"}') >= 1
    assert metric(text, 'scitex_jobs{state="RUNNING"}') >= 1
    assert metric(text, 'scitex_slurm_commands_total{command="sbatch"}') >= 1
    # One squeue per poll cycle, whatever the number of servers: never more squeue
    # calls than cycles, but for the one in flight (counted when it starts; the cycle's
    # duration when it ends).
    assert metric(text, 'scitex_slurm_commands_total{command="squeue"}') <= 1 + metric(
        text, "scitex_queue_poll_duration_seconds_count"
    )
    assert "scitex_queue_poll_errors_total" in text
    alice.api("DELETE", "/hub/api/users/alice/server")
    alice.wait_stopped()

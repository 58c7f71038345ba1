"""Compute jobs from JupyterLab, end to end: a real hub with the scitex service, SLURM,
Apptainer (the near-empty test image with host binds), PAM and the proxy.

alice's notebook server forwards her requests to the service with its own token; the
service submits as alice; the job runs in the container with her project at /project and
writes its result and log into the project. bob cannot see or cancel her jobs. A job that
ended stays listed, with its log, after SLURM forgets it (the service's job history).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from jupyterhub_config.settings import parse_settings
from scitex_hub.db import get_engine
from scitex_hub.db import store as db
from scitex_hub.db.engine import dispose_engine
from scitex_hub.slurm import USER_QUEUE_FIELDS, SlurmClient, SqueueFraming
from scitex_service.handlers import APIError
from scitex_service.jobs import ComputeJobs
from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, new_hub
from tests.e2e.test_apptainer import APPTAINER, TEST_IMAGE, container_settings
from tests.hub.servicehelpers import shipped_service_config
from tests.services import require_executable, slurm_env

pytestmark = pytest.mark.e2e

MAX_JOBS = 2
SCRIPTS = {
    "run.sh": (
        "#!/bin/bash\nset -e\n"
        'echo "user=$(id -un) cwd=$PWD container=${APPTAINER_CONTAINER:-none}"\n'
        "test -d /data/projects && echo data-bound\n"
        "echo 42 > result.txt\n"
    ),
    "analysis/fail.py": "print('about to fail', flush=True)\nraise SystemExit(3)\n",
    "sleep.sh": "#!/bin/bash\necho sleeping\nsleep 300\n",
}


@pytest.fixture(scope="module")
def hub(services: str) -> Iterator[Hub]:
    require_executable(APPTAINER, "Apptainer")
    if not os.path.isdir(TEST_IMAGE):
        from tests.services import missing

        missing("the Apptainer test image", f"{TEST_IMAGE} (containers/build.sh test-sandbox)")
    hub = new_hub(container=container_settings(), jobs={"max_queued_per_user": MAX_JOBS})
    hub.start()
    yield hub
    cancel_compute_jobs(hub)
    hub.close()


def compute_jobs(hub: Hub) -> dict[str, str]:
    """This hub's compute jobs still queued or running: ``{job_id: user}``."""
    out = subprocess.run(
        ["squeue", "-h", "-a", "-o", "%i|%u|%k"],
        env=slurm_env(),
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    jobs = {}
    for line in out.splitlines():
        job_id, user, comment = line.split("|", 2)
        if comment.startswith(f"scitex-job:hub={hub.hub_id}:"):
            jobs[job_id] = user
    return jobs


def cancel_compute_jobs(hub: Hub) -> None:
    ids = list(compute_jobs(hub))
    if ids:
        subprocess.run(["scancel", *ids], env=slurm_env(), check=False, timeout=20)


def put(user: HubUser, path: str, content: str | None = None) -> None:
    model: dict[str, Any] = (
        {"type": "directory"}
        if content is None
        else {"type": "file", "format": "text", "content": content}
    )
    r = user.api("PUT", f"/user/{user.name}/api/contents/{path}", json=model)
    assert r.status_code in (200, 201), r.text


def jobs_api(user: HubUser, method: str, path: str = "", **kwargs: Any) -> Any:
    return user.api(method, f"/user/{user.name}/scitex/api/jobs{path}", **kwargs)


def wait_state(user: HubUser, job_id: str, states: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = jobs_api(user, "GET")
        assert r.status_code == 200, r.text
        [job] = [j for j in r.json()["jobs"] if j["id"] == job_id] or [{}]
        if job.get("state") in states:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not in {states} within {timeout} s: {job}")


@pytest.fixture(scope="module")
def alice_ready(hub: Hub, services: str) -> HubUser:
    alice = signed_in(hub, "alice", services)
    r = alice.api("POST", "/hub/api/users/alice/server", json={})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready()
    for directory in ("projects", "projects/p1", "projects/p1/analysis"):
        put(alice, directory)
    for name, text in SCRIPTS.items():
        put(alice, f"projects/p1/{name}", text)
    return alice


def test_a_job_runs_as_alice_in_the_container(hub: Hub, alice_ready: HubUser) -> None:
    alice = alice_ready
    project = hub.root / "data" / "demo-u" / "alice" / "projects" / "p1"
    started = time.monotonic()
    r = jobs_api(
        alice,
        "POST",
        json={"project": "p1", "script": "run.sh", "resources": {"cpus": 1, "memory": "512MiB"}},
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert compute_jobs(hub).get(job_id, "alice") == "alice"
    job = wait_state(alice, job_id, {"COMPLETED", "FAILED"})
    elapsed = time.monotonic() - started
    assert job["state"] == "COMPLETED", job
    assert (job["project"], job["script"], job["exit_code"]) == ("p1", "run.sh", "0:0")

    result = project / "result.txt"
    assert result.read_text() == "42\n"
    assert result.stat().st_uid == pwd.getpwnam("alice").pw_uid
    log_file = project / ".scitex" / "jobs" / f"{job_id}.log"
    assert log_file.stat().st_uid == pwd.getpwnam("alice").pw_uid
    # In the container (its image), in the project, with her data at /data.
    assert f"user=alice cwd=/project container={TEST_IMAGE}" in log_file.read_text()
    assert "data-bound" in log_file.read_text()

    r = jobs_api(alice, "GET", f"/{job_id}/log")
    assert r.status_code == 200, r.text
    log = r.json()
    assert log["log"] == log_file.read_text()
    assert log["path"] == f"projects/p1/.scitex/jobs/{job_id}.log"
    print(f"submit to COMPLETED through server and service: {elapsed:.2f} s")


def test_a_failing_script_shows_its_exit_state_and_log(hub: Hub, alice_ready: HubUser) -> None:
    r = jobs_api(alice_ready, "POST", json={"project": "p1", "script": "analysis/fail.py"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    job = wait_state(alice_ready, job_id, {"COMPLETED", "FAILED"})
    assert (job["state"], job["exit_code"], job["reason"]) == ("FAILED", "3:0", "NonZeroExitCode")
    log = jobs_api(alice_ready, "GET", f"/{job_id}/log").json()["log"]
    assert "about to fail" in log


class ForgetfulSlurm(SlurmClient):
    """The real SLURM, except that squeue leaves out ``forgotten``: what SLURM answers once
    it has forgotten a job (MinJobAge, 300 s in the shared slurm.conf)."""

    forgotten: frozenset[str] = frozenset()

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        out = await super().run(argv, stdin=stdin, env=env)
        if "squeue" not in argv[0] or any(a.startswith("--jobs=") for a in argv):
            return out  # one ended job's record: as SLURM gives it
        framing = SqueueFraming.of_env(env or {})
        fields = framing.records(out, len(USER_QUEUE_FIELDS))
        return framing.render([f for f in fields if f[0] not in self.forgotten])


def test_a_failed_job_is_listed_with_its_log_after_slurm_forgets_it(
    hub: Hub, alice_ready: HubUser, services: str
) -> None:
    """SLURM forgets a job MinJobAge (300 s) after it ends; the shared slurm.conf is not
    lowered for a test. The service records the end the first time it lists the job ended;
    from then on nothing of the job is asked of SLURM. Two views of "forgotten": (1) the
    service's own code over the hub's database and the real SLURM minus this job; (2) the
    running service, through alice's notebook server, for the same record and log under a
    job id SLURM has never issued (so SLURM knows nothing of it, as after MinJobAge)."""
    alice = alice_ready
    r = jobs_api(alice, "POST", json={"project": "p1", "script": "analysis/fail.py"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    listed = wait_state(alice, job_id, {"COMPLETED", "FAILED"})
    assert (listed["state"], listed["exit_code"]) == ("FAILED", "3:0"), listed

    # The running service recorded it: submission, then its end.
    db_url = str(hub.settings["hub"]["db_url"])
    engine = get_engine(db_url)
    try:
        row = db.get_compute_job(engine, hub_id=hub.hub_id, user="alice", job_id=job_id)
        assert row is not None
        assert (row.project, row.script, row.institution) == ("p1", "analysis/fail.py", "demo-u")
        assert (row.final_state, row.exit_code, row.reason) == ("FAILED", "3:0", "NonZeroExitCode")

        # (1) The service's code, with SLURM that has forgotten the job.
        # The service's configuration as the hub hands it over (apply_services).
        config = shipped_service_config(parse_settings(hub.settings))
        jobs = ComputeJobs(config=config, slurm=ForgetfulSlurm(config=config))
        assert isinstance(jobs.slurm, ForgetfulSlurm)
        jobs.slurm.forgotten = frozenset({job_id})

        async def forgotten_view() -> tuple[list[dict[str, Any]], Any, dict[str, Any]]:
            listing = await jobs.models(await jobs.jobs_of("alice", engine))
            job = await jobs.find("alice", job_id, engine)
            log = await asyncio.to_thread(jobs.read_log, "demo-u", "alice", job.entry)
            with pytest.raises(APIError) as e:
                await jobs.find("bob", job_id, engine)
            assert e.value.status_code == 404
            return listing, job, log

        listing, job, log = asyncio.run(forgotten_view())
        assert not job.live
        assert [j for j in listing if j["id"] == job_id] == [listed]
        assert "about to fail" in log["log"] and log["state"] == "FAILED"

        # (2) The running service, for a job SLURM never had: the same record and log.
        gone = str(60_000_000 + secrets.randbelow(1_000_000))
        assert gone not in compute_jobs(hub)
        db.insert_compute_job(
            engine,
            hub_id=hub.hub_id,
            job_id=gone,
            user="alice",
            project="p1",
            script="analysis/fail.py",
            submitted_at=row.submitted_at,
            institution="demo-u",
        )
        db.end_compute_job(
            engine,
            hub_id=hub.hub_id,
            job_id=gone,
            user="alice",
            final_state="FAILED",
            exit_code="3:0",
            reason="NonZeroExitCode",
            node=row.node,
            started_at=row.started_at,
            ended_at=row.ended_at,
        )
    finally:
        dispose_engine(db_url)
    logs = hub.root / "data" / "demo-u" / "alice" / "projects" / "p1" / ".scitex" / "jobs"
    shutil.copy2(logs / f"{job_id}.log", logs / f"{gone}.log")
    alice_uid = pwd.getpwnam("alice")
    os.chown(logs / f"{gone}.log", alice_uid.pw_uid, alice_uid.pw_gid)

    expected = listed | {"id": gone}
    r = jobs_api(alice, "GET")
    assert r.status_code == 200, r.text
    assert [j for j in r.json()["jobs"] if j["id"] == gone] == [expected]
    r = jobs_api(alice, "GET", f"/{gone}")
    assert (r.status_code, r.json()) == (200, expected)
    r = jobs_api(alice, "GET", f"/{gone}/log")
    assert r.status_code == 200, r.text
    assert "about to fail" in r.json()["log"] and r.json()["state"] == "FAILED"
    r = jobs_api(alice, "DELETE", f"/{gone}")
    assert r.status_code == 409 and "already ended (FAILED)" in r.json()["message"], r.text
    bob = signed_in(hub, "bob", services)
    for method, path in [("GET", ""), ("GET", "/log"), ("DELETE", "")]:
        r = bob.api(method, f"/services/scitex/api/jobs/{gone}{path}")
        assert r.status_code == 404, (method, path, r.text)


def test_bad_scripts_are_refused_with_400(alice_ready: HubUser) -> None:
    for script, words in [
        ("../p1/run.sh", "outside the project"),
        ("/etc/passwd", "relative to the project"),
        ("missing.sh", "No file"),
        ("analysis", "No file"),
    ]:
        r = jobs_api(alice_ready, "POST", json={"project": "p1", "script": script})
        assert r.status_code == 400, (script, r.text)
        assert words in r.json()["message"], (script, r.json())
    r = jobs_api(alice_ready, "POST", json={"project": "nope", "script": "run.sh"})
    assert r.status_code == 400 and "no project 'nope'" in r.json()["message"]
    # Outside the profile's range: the service's own words come back.
    r = jobs_api(
        alice_ready, "POST", json={"project": "p1", "script": "run.sh", "resources": {"cpus": 64}}
    )
    assert r.status_code == 400 and "cpus" in r.json()["message"], r.text


def test_list_cancel_limit_and_bob(hub: Hub, alice_ready: HubUser, services: str) -> None:
    alice = alice_ready
    body = {"project": "p1", "script": "sleep.sh"}
    ids = []
    for _ in range(MAX_JOBS):
        r = jobs_api(alice, "POST", json=body)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    # One more than the site allows: 429 with a message.
    r = jobs_api(alice, "POST", json=body)
    assert r.status_code == 429, r.text
    assert f"the most this site allows ({MAX_JOBS})" in r.json()["message"]
    for job_id in ids:
        wait_state(alice, job_id, {"RUNNING"})
    listed = {j["id"]: j for j in jobs_api(alice, "GET").json()["jobs"]}
    assert set(ids) <= set(listed)
    assert all(listed[i]["node"] == "localhost" for i in ids)

    # bob (same institution) neither sees nor cancels nor reads them: 404, as for no job.
    bob = signed_in(hub, "bob", services)
    base = "/services/scitex/api/jobs"
    r = bob.api("GET", base)
    assert r.status_code == 200, r.text
    assert not set(ids) & {j["id"] for j in r.json()["jobs"]}
    for method, path in [
        ("DELETE", f"/{ids[0]}"),
        ("GET", f"/{ids[0]}/log"),
        ("GET", f"/{ids[0]}"),
    ]:
        r = bob.api(method, base + path)
        assert r.status_code == 404, (method, path, r.text)
    assert compute_jobs(hub).get(ids[0]) == "alice"

    # alice cancels hers; a new one fits again.
    for job_id in ids:
        r = jobs_api(alice, "DELETE", f"/{job_id}")
        assert r.status_code == 200, r.text
    for job_id in ids:
        assert wait_state(alice, job_id, {"CANCELLED"})["state"] == "CANCELLED"
    r = jobs_api(alice, "DELETE", f"/{ids[0]}")
    assert r.status_code == 409, r.text
    assert not set(ids) & set(compute_jobs(hub))


def test_the_jobs_api_needs_the_jobs_scope(hub: Hub, alice_ready: HubUser) -> None:
    # A token without custom:scitex:jobs (only access to the service) is refused.
    xsrf = alice_ready.session.cookies.get("_xsrf", "")
    r = alice_ready.session.post(
        f"{hub.url}/hub/api/users/alice/tokens",
        json={"note": "no jobs", "expires_in": 600, "scopes": ["access:services!service=scitex"]},
        headers={"X-XSRFToken": xsrf},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    r = alice_ready.api(
        "GET",
        "/services/scitex/api/jobs",
        headers={"Authorization": f"token {r.json()['token']}"},
    )
    assert r.status_code == 403 and "custom:scitex:jobs" in r.json()["message"], r.text


def test_the_job_log_directory_is_alices(hub: Hub, alice_ready: HubUser) -> None:
    jobs_dir = hub.root / "data" / "demo-u" / "alice" / "projects" / "p1" / ".scitex" / "jobs"
    st = jobs_dir.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (pwd.getpwnam("alice").pw_uid, 0o700)
    assert not Path(hub.root / "data" / "demo-u" / "bob" / "projects").exists()

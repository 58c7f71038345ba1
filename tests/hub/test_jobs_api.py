"""The service's jobs API on a real tornado server, with SLURM replaced by a recording fake
(unit test). Real SLURM, Apptainer and the hub: tests/e2e/test_jobs.py."""

from __future__ import annotations

import os
import pwd
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from scitex_hub.db import get_engine, upgrade
from scitex_hub.db import store as db
from scitex_hub.db.engine import dispose_engine
from scitex_hub.profiles import load_profiles
from scitex_hub.slurm import SlurmClient, SlurmCommandError, SqueueFraming
from scitex_service.app import make_app
from scitex_service.handlers import ServiceContext
from scitex_service.jobs import ComputeJobs
from tests.e2e.hubprocess import free_port
from tests.hub.dbhelpers import sqlite_url
from tests.hub.test_service_api import (
    ACCESS,
    INSTITUTIONS,
    TableDirectory,
    TableHubAuth,
    call,
    identity,
)

JOBS = "custom:scitex:jobs!user="
TOKENS: dict[str, dict[str, Any]] = {
    f"j-{name}": identity(name, scopes=(ACCESS, JOBS + name)) for name in ("alice", "bob", "dave")
}
TOKENS["j-nojobs"] = identity("alice")
TOKENS["j-bob-as-alice"] = identity("bob", scopes=(ACCESS, JOBS + "alice"))
TOKENS["j-service"] = {"kind": "service", "name": "other", "scopes": [ACCESS, JOBS + "other"]}
PROFILES = load_profiles(
    {
        "small": {
            "display_name": "Small",
            "partition": "debug",
            "cpus": {"default": 1, "max": 2},
            "memory": "512MiB",
            "runtime": "01:00:00",
        }
    }
)
TAG = "scitex-job:hub=t:user={user}:project=p1"


class JobsHubAuth(TableHubAuth):
    def user_for_token(self, token: str, *args: Any, **kwargs: Any) -> Any:
        async def answer() -> dict[str, Any] | None:
            return TOKENS.get(token)

        return answer()


class FakeSlurm(SlurmClient):
    """Answers squeue from ``queue`` (per user, as SLURM would), records the rest."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queue_lines: dict[str, list[list[str]]] = {}
        self.calls: list[tuple[list[str], str | None, dict[str, str] | None]] = []

    def add(self, user: str, job_id: str, state: str, comment: str | None = None) -> None:
        tag = comment if comment is not None else TAG.format(user=user)
        line = [job_id, "run.sh", user, state, "None", "localhost", "N/A", "N/A", "N/A", tag]
        self.queue_lines.setdefault(user, []).append(line)

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        self.calls.append((list(argv), stdin, dict(env) if env is not None else None))
        if "squeue" in argv[0]:
            framing = SqueueFraming.of_env(env or {})
            if any(a.startswith("--jobs=") for a in argv):
                # An ended job's record (State, Reason, exit_code).
                return framing.render([["FAILED", "NonZeroExitCode", "768"]])
            [user] = [a.split("=", 1)[1] for a in argv if a.startswith("--user=")]
            # SLURM's answer for that user, plus a line of bob's that must be filtered out.
            lines = self.queue_lines.get(user, []) + self.queue_lines.get("bob-intruder", [])
            return framing.render(lines)
        if "sbatch" in argv[-2]:
            return "101\n"
        if "scancel" in argv[-2]:
            return ""
        raise SlurmCommandError(argv[0], 1, "unexpected")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = sqlite_url(tmp_path)
    upgrade(url)
    yield get_engine(url)
    dispose_engine(url)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "demo-u" / "alice" / "projects" / "p1"
    path.mkdir(parents=True)
    (path / "run.sh").write_text("echo hi\n")
    return path


@pytest.fixture
def jobs(tmp_path: Path, project: Path) -> ComputeJobs:
    return ComputeJobs(
        hub_id="t",
        data_root=str(tmp_path / "data"),
        profiles=PROFILES,
        max_queued_per_user=2,
        # The fake runs nothing as anyone: mkdir runs as the test's own user.
        slurm=FakeSlurm(run_as_prefix=[]),
    )


@pytest.fixture
async def base_url(engine: Engine, jobs: ComputeJobs) -> AsyncIterator[str]:
    from tornado.httpserver import HTTPServer

    hub_auth = JobsHubAuth(
        api_token="service-token",
        api_url="http://127.0.0.1:9/hub/api",
        oauth_client_id="service-scitex",
        access_scopes={ACCESS},
    )
    institutions = {**INSTITUTIONS}
    institutions["demo-u"] = institutions["demo-u"].model_copy(update={"profiles": ("small",)})
    context = ServiceContext(institutions=institutions, engine=engine, directory=TableDirectory())
    port = free_port()
    server = HTTPServer(make_app(context, hub_auth, jobs=jobs))
    server.listen(port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}/services/scitex/"
    server.stop()


def fake(jobs: ComputeJobs) -> FakeSlurm:
    assert isinstance(jobs.slurm, FakeSlurm)
    return jobs.slurm


@pytest.mark.parametrize(
    "token,words",
    [
        ("j-nojobs", "lacks the scope custom:scitex:jobs"),
        ("j-bob-as-alice", "lacks the scope"),
        ("j-service", "not a user"),
        (None, "Authentication required"),
    ],
)
async def test_only_a_users_token_with_the_jobs_scope(
    base_url: str, token: str | None, words: str
) -> None:
    status, body = await call(base_url, "GET", "api/jobs", token)
    assert status == 403 and words in body["message"]


async def test_submit_as_the_user_into_the_project(
    base_url: str, jobs: ComputeJobs, project: Path
) -> None:
    status, body = await call(
        base_url,
        "POST",
        "api/jobs",
        "j-alice",
        {"project": "p1", "script": "run.sh", "resources": {"cpus": 2}},
    )
    assert status == 201, body
    assert (body["id"], body["state"], body["log"]) == (
        "101",
        "PENDING",
        "projects/p1/.scitex/jobs/101.log",
    )
    assert body["resources"]["cpus"] == 2
    # The log directory exists before the job starts.
    assert (project / ".scitex" / "jobs").is_dir()
    [(argv, script, env)] = [c for c in fake(jobs).calls if "sbatch" in c[0][-2]]
    assert argv[-1] == "--parsable"
    assert script is not None and "--comment=scitex-job:hub=t:user=alice:project=p1" in script
    assert "exec bash run.sh" in script
    # The job's environment: nothing of the service's (its hub token least of all).
    assert env is not None and set(env) == {"PATH", "LANG", "HOME", "USER", "LOGNAME"}
    assert env["USER"] == "alice"


@pytest.mark.parametrize(
    "body,status,words",
    [
        ({"project": "p1", "script": "run.sh", "resources": {"cpus": 8}}, 400, "resources.cpus"),
        ({"project": "p1", "script": "run.sh", "resources": {"x": 1}}, 400, "resources.x"),
        ({"project": "p1", "script": "../p1/run.sh"}, 400, "outside the project"),
        ({"project": "p1", "script": "gone.sh"}, 400, "No file"),
        ({"project": "p9", "script": "run.sh"}, 400, "no project 'p9'"),
    ],
)
async def test_bad_submissions(
    base_url: str, jobs: ComputeJobs, body: dict[str, Any], status: int, words: str
) -> None:
    got, answer = await call(base_url, "POST", "api/jobs", "j-alice", body)
    assert (got, words in answer["message"]) == (status, True), answer
    assert not [c for c in fake(jobs).calls if "sbatch" in c[0][-2]]


async def test_a_user_of_no_institution_cannot_submit(base_url: str) -> None:
    status, body = await call(
        base_url, "POST", "api/jobs", "j-dave", {"project": "p1", "script": "run.sh"}
    )
    assert status == 403 and "no institution" in body["message"]


async def test_past_the_job_limit_429(base_url: str, jobs: ComputeJobs) -> None:
    slurm = fake(jobs)
    slurm.add("alice", "5", "COMPLETED")  # ended: does not count
    slurm.add("alice", "6", "RUNNING")
    slurm.add("alice", "8", "RUNNING", comment="scitex:hub=t:user=alice:server=-")  # notebook
    body = {"project": "p1", "script": "run.sh"}
    assert (await call(base_url, "POST", "api/jobs", "j-alice", body))[0] == 201
    slurm.add("alice", "7", "PENDING")
    status, answer = await call(base_url, "POST", "api/jobs", "j-alice", body)
    assert status == 429
    assert answer["message"] == (
        "alice already has 2 jobs queued or running, the most this site allows (2); wait "
        "for one to end or cancel one"
    )


async def test_list_cancel_and_bob(base_url: str, jobs: ComputeJobs) -> None:
    slurm = fake(jobs)
    slurm.add("alice", "5", "FAILED")
    slurm.add("alice", "6", "RUNNING")
    slurm.add("alice", "9", "RUNNING", comment="scitex-job:hub=other:user=alice:project=p1")
    # A line SLURM would not give for alice: filtered all the same.
    slurm.add("bob-intruder", "10", "RUNNING", comment=TAG.format(user="bob"))

    status, body = await call(base_url, "GET", "api/jobs", "j-alice")
    assert status == 200
    assert [(j["id"], j["state"], j["exit_code"]) for j in body["jobs"]] == [
        ("6", "RUNNING", None),
        ("5", "FAILED", "3:0"),
    ]
    assert all(
        "--user=alice" in c[0] or "--jobs=5" in c[0] for c in slurm.calls if "squeue" in c[0][0]
    )

    for method, path in [
        ("GET", "api/jobs/6"),
        ("DELETE", "api/jobs/6"),
        ("GET", "api/jobs/6/log"),
    ]:
        status, body = await call(base_url, method, path, "j-bob")
        assert status == 404, body
        assert "bob has no job 6" in body["message"]
    assert not [c for c in slurm.calls if "scancel" in c[0][-2]]

    status, body = await call(base_url, "DELETE", "api/jobs/5", "j-alice")
    assert status == 409 and "already ended (FAILED)" in body["message"]
    status, body = await call(base_url, "DELETE", "api/jobs/6", "j-alice")
    assert status == 200 and body["cancel_requested"] is True
    [(argv, _, _)] = [c for c in slurm.calls if "scancel" in c[0][-2]]
    assert argv[-1] == "6"
    assert (await call(base_url, "GET", "api/jobs/not-a-job", "j-alice"))[0] == 404


# ---- history: jobs SLURM has forgotten ---------------------------------------------


def queue_line(slurm: FakeSlurm, job_id: str, state: str, reason: str = "None") -> None:
    """A line as squeue prints an ended job of alice's, with SLURM's local times."""
    times = ["2026-12-01T02:18:33", "2026-12-01T02:18:34", "2026-12-01T02:18:40"]
    line = [job_id, "run.sh", "alice", state, reason, "localhost", *times, TAG.format(user="alice")]
    slurm.queue_lines.setdefault("alice", []).append(line)


async def submitted(base_url: str) -> str:
    status, body = await call(
        base_url, "POST", "api/jobs", "j-alice", {"project": "p1", "script": "run.sh"}
    )
    assert status == 201, body
    return str(body["id"])


def scontrols(slurm: FakeSlurm) -> int:
    """Questions about one ended job (squeue --jobs=ID, once scontrol)."""
    return len([c for c in slurm.calls if any(a.startswith("--jobs=") for a in c[0])])


async def test_an_ended_job_stays_listed_after_slurm_forgets_it(
    base_url: str, jobs: ComputeJobs, engine: Engine, project: Path
) -> None:
    slurm = fake(jobs)
    job_id = await submitted(base_url)
    [row] = db.compute_jobs_of(engine, hub_id="t", user="alice")
    assert (row.job_id, row.institution, row.final_state) == (job_id, "demo-u", None)
    assert row.resources is not None and row.resources["profile"] == "small"

    queue_line(slurm, job_id, "FAILED", "NonZeroExitCode")
    status, body = await call(base_url, "GET", "api/jobs", "j-alice")
    assert status == 200, body
    [live] = body["jobs"]
    assert (live["state"], live["exit_code"], live["reason"]) == (
        "FAILED",
        "3:0",
        "NonZeroExitCode",
    )
    assert scontrols(slurm) == 1
    # Recorded once: a fresh look (another process) takes the end from the record.
    jobs._finished.clear()
    assert (await call(base_url, "GET", "api/jobs", "j-alice"))[1]["jobs"] == [live]
    assert scontrols(slurm) == 1

    # SLURM forgets it (MinJobAge): listed all the same, exactly as before.
    slurm.queue_lines["alice"] = []
    status, body = await call(base_url, "GET", "api/jobs", "j-alice")
    assert (status, body["jobs"]) == (200, [live])
    assert live == {
        "id": job_id,
        "project": "p1",
        "script": "run.sh",
        "state": "FAILED",
        "reason": "NonZeroExitCode",
        "node": "localhost",
        # SLURM's times, recorded when it ended, as squeue prints them.
        "submitted_at": "2026-12-01T02:18:33",
        "started_at": "2026-12-01T02:18:34",
        "ended_at": "2026-12-01T02:18:40",
        "exit_code": "3:0",
    }
    assert (await call(base_url, "GET", f"api/jobs/{job_id}", "j-alice")) == (200, live)
    status, body = await call(base_url, "DELETE", f"api/jobs/{job_id}", "j-alice")
    assert status == 409 and "already ended (FAILED)" in body["message"]
    assert not [c for c in slurm.calls if "scancel" in c[0][-2]]
    # bob: 404, as for a job that never was.
    for method, path in [("GET", ""), ("DELETE", ""), ("GET", "/log")]:
        status, body = await call(base_url, method, f"api/jobs/{job_id}{path}", "j-bob")
        assert status == 404 and f"bob has no job {job_id}" in body["message"], body
    assert (await call(base_url, "GET", "api/jobs", "j-bob"))[1] == {"jobs": []}

    log = project / ".scitex" / "jobs" / f"{job_id}.log"
    log.write_text("about to fail\n")
    if os.geteuid() == 0:
        alice = pwd.getpwnam("alice")
        os.chown(log, alice.pw_uid, alice.pw_gid)
        status, body = await call(base_url, "GET", f"api/jobs/{job_id}/log", "j-alice")
        assert status == 200, body
        assert (body["log"], body["state"], body["exists"]) == ("about to fail\n", "FAILED", True)


async def test_a_job_forgotten_before_its_end_was_seen_is_unknown(
    base_url: str, jobs: ComputeJobs
) -> None:
    slurm = fake(jobs)
    job_id = await submitted(base_url)
    slurm.add("alice", job_id, "RUNNING")
    [job] = (await call(base_url, "GET", "api/jobs", "j-alice"))[1]["jobs"]
    assert job["state"] == "RUNNING"
    # The service was down while it ended and SLURM forgot it.
    slurm.queue_lines["alice"] = []
    [job] = (await call(base_url, "GET", "api/jobs", "j-alice"))[1]["jobs"]
    assert (job["id"], job["state"], job["exit_code"], job["ended_at"]) == (
        job_id,
        "UNKNOWN",
        None,
        None,
    )
    assert job["reason"] == "SLURM forgot the job before the service saw it end"
    status, body = await call(base_url, "DELETE", f"api/jobs/{job_id}", "j-alice")
    assert status == 409 and "no longer knows it" in body["message"], body
    assert not [c for c in slurm.calls if "scancel" in c[0][-2]]


async def test_history_limit_and_jobs_from_before_the_history(
    base_url: str, jobs: ComputeJobs, engine: Engine
) -> None:
    slurm = fake(jobs)
    t0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
    for i, job_id in enumerate(["50", "51", "52"]):
        db.insert_compute_job(
            engine,
            hub_id="t",
            job_id=job_id,
            user="alice",
            project="p1",
            script="run.sh",
            submitted_at=t0 + timedelta(minutes=i),
        )
        db.end_compute_job(engine, hub_id="t", job_id=job_id, user="alice", final_state="COMPLETED")
    # Another hub's record of alice's is not listed.
    db.insert_compute_job(
        engine, hub_id="x", job_id="53", user="alice", project="p1", script="a.sh", submitted_at=t0
    )
    jobs.history_limit = 2
    slurm.add("alice", "60", "RUNNING")
    # Ended before the history existed (no record): recorded from SLURM's view.
    queue_line(slurm, "40", "COMPLETED")
    ids = [j["id"] for j in (await call(base_url, "GET", "api/jobs", "j-alice"))[1]["jobs"]]
    assert ids == ["60", "52", "51", "40"]
    row = db.get_compute_job(engine, hub_id="t", user="alice", job_id="40")
    assert row is not None and (row.final_state, row.script, row.exit_code) == (
        "COMPLETED",
        "run.sh",
        "3:0",
    )
    # Past the limit, still there by id.
    status, body = await call(base_url, "GET", "api/jobs/50", "j-alice")
    assert (status, body["state"]) == (200, "COMPLETED")


def test_history_limit_must_be_at_least_one(jobs: ComputeJobs) -> None:
    assert jobs.history_limit == 50
    with pytest.raises(ValueError, match="history_limit must be at least 1, got 0"):
        jobs.history_limit = 0

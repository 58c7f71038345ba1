"""The service's jobs API on a real tornado server, with SLURM replaced by a recording fake
(unit test). Real SLURM, Apptainer and the hub: tests/e2e/test_jobs.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from scitex_spawner.db import get_engine, upgrade
from scitex_spawner.db.engine import dispose_engine
from scitex_spawner.profiles import load_profiles
from scitex_spawner.service.app import make_app
from scitex_spawner.service.handlers import ServiceContext
from scitex_spawner.service.jobs import ComputeJobs, JobSite
from scitex_spawner.slurm import SlurmClient, SlurmCommandError
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
            [user] = [a.split("=", 1)[1] for a in argv if a.startswith("--user=")]
            # SLURM's answer for that user, plus a line of bob's that must be filtered out.
            lines = self.queue_lines.get(user, []) + self.queue_lines.get("bob-intruder", [])
            return "".join("\x1f".join(line) + "\n" for line in lines)
        if "sbatch" in argv[-2]:
            return "101\n"
        if "scontrol" in argv[0]:
            return "JobId=5 JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0\n"
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
    site = JobSite(hub_id="t", data_root=str(tmp_path / "data"))
    jobs = ComputeJobs(
        site=site,
        institutions=INSTITUTIONS,
        profiles=PROFILES,
        max_queued_per_user=2,
        # The fake runs nothing as anyone: mkdir runs as the test's own user.
        submit_prefix=[],
        slurm=FakeSlurm(),
    )
    return jobs


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
    jobs.institutions = institutions
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
    assert all("--user=alice" in c[0] for c in slurm.calls if "squeue" in c[0][0])

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

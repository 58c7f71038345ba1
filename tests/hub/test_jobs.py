"""Compute jobs, service side: the pure builder (exact text), request validation, paths on
disk, the log reader, and the site-file/config wiring. The API with a fake SLURM is in
test_jobs_api.py; the real thing in tests/e2e/test_jobs.py."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from jupyterhub_config.apply import (
    SCITEX_JOBS_SCOPE,
    apply_all,
    apply_roles,
    apply_services,
    service_public_url,
)
from jupyterhub_config.settings import SettingsError, parse_settings
from scitex_hub.container import Bind
from scitex_hub.jobspecs.compute import JobSite, build_compute_job
from scitex_hub.profiles import ResolvedResources
from scitex_hub.scopes import has_jobs_scope
from scitex_hub.script import render_batch_script
from scitex_hub.slurm import FinishedJob, QueueEntry, parse_queue
from scitex_service.handlers import APIError
from scitex_service.jobs import (
    ComputeJobs,
    JobRequest,
    JobRequestError,
    check_script_path,
    job_model,
    parse_job_request,
)
from tests.hub.servicehelpers import shipped_service_config

RESOURCES = ResolvedResources(
    profile="small",
    partition="debug",
    cpus=2,
    memory_bytes=1024**3,
    runtime_seconds=3600,
    gpus=0,
    account="lab1",
    image=None,
    constraint=None,
    qos=None,
)
CONTAINER_SITE = JobSite(
    hub_id="demo",
    data_root="/srv/data",
    runtime="apptainer",
    executable="/opt/bin/apptainer",
    image="/img/compute.sif",
    binds=(Bind("/usr", "/usr", True),),
    unsquash=True,
)

HEADER = """#!/bin/bash
#SBATCH --job-name={script}
#SBATCH --comment=scitex-job:hub=demo:user=alice:project=p1
#SBATCH --partition=debug
#SBATCH --account=lab1
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=1024M
#SBATCH --time=01:00:00
#SBATCH --output=/srv/data/demo-u/alice/projects/p1/.scitex/jobs/%j.log
#SBATCH --chdir=/srv/data/demo-u/alice/projects/p1
#SBATCH --export=ALL
#SBATCH --signal=B:TERM@60

set -euo pipefail
umask 077
export SCITEX_JOB_ID="${{SLURM_JOB_ID}}"
export SCITEX_NODE="${{SLURMD_NODENAME:-$(hostname -s)}}"
export SCITEX_JOB_END="$(( $(date +%s) + 3600 ))"
export SCITEX_PROJECT=p1
export SCITEX_SCRIPT={script}
"""


def test_the_batch_script_in_the_container_exactly() -> None:
    spec = build_compute_job(
        CONTAINER_SITE,
        user="alice",
        institution="demo-u",
        project="p1",
        script="analysis/fit.py",
        resources=RESOURCES,
    )
    assert render_batch_script(spec) == HEADER.format(script="analysis/fit.py") + (
        '[ -z "${SCITEX_JOB_END+x}" ] || export APPTAINERENV_SCITEX_JOB_END="${SCITEX_JOB_END}"\n'
        '[ -z "${SCITEX_JOB_ID+x}" ] || export APPTAINERENV_SCITEX_JOB_ID="${SCITEX_JOB_ID}"\n'
        '[ -z "${SCITEX_NODE+x}" ] || export APPTAINERENV_SCITEX_NODE="${SCITEX_NODE}"\n'
        '[ -z "${SCITEX_PROJECT+x}" ] || export APPTAINERENV_SCITEX_PROJECT="${SCITEX_PROJECT}"\n'
        '[ -z "${SCITEX_SCRIPT+x}" ] || export APPTAINERENV_SCITEX_SCRIPT="${SCITEX_SCRIPT}"\n'
        "\n"
        "exec /opt/bin/apptainer exec --cleanenv --contain "
        "--home /srv/data/demo-u/alice:/data --pwd /data --unsquash "
        "--bind /usr:/usr:ro --bind /srv/data/demo-u/alice/projects/p1:/project:rw "
        "/img/compute.sif env --chdir=/project python3 analysis/fit.py\n"
    )


def test_the_batch_script_without_a_container_exactly() -> None:
    site = JobSite(hub_id="demo", data_root="/srv/data")
    spec = build_compute_job(
        site, user="alice", institution="demo-u", project="p1", script="run.sh", resources=RESOURCES
    )
    assert render_batch_script(spec) == HEADER.format(script="run.sh") + "\nexec bash run.sh\n"


def test_a_script_of_another_kind_is_refused() -> None:
    with pytest.raises(JobRequestError, match=r"must end in \.sh, \.py"):
        build_compute_job(
            CONTAINER_SITE,
            user="alice",
            institution="demo-u",
            project="p1",
            script="run.R",
            resources=RESOURCES,
        )


# ---- the request -----------------------------------------------------------------------


def test_a_good_request() -> None:
    assert parse_job_request(
        b'{"project": "p1", "script": "./a//b.py", "resources": {"cpus": 2}}'
    ) == JobRequest("p1", "a/b.py", {"cpus": 2})


@pytest.mark.parametrize(
    "body,words",
    [
        (b"nope", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"project": "p1", "script": "a.sh", "x": 1}', "Unknown keys x"),
        (b'{"script": "a.sh"}', "No project"),
        (b'{"project": "../p", "script": "a.sh"}', "is not a project name"),
        (b'{"project": "p.git", "script": "a.sh"}', "is not a project name"),
        (b'{"project": "p\\n", "script": "a.sh"}', "is not a project name"),
        (b'{"project": "p1"}', "No script"),
        (b'{"project": "p1", "script": "a.sh", "resources": [1]}', "resources must be"),
    ],
)
def test_bad_requests(body: bytes, words: str) -> None:
    with pytest.raises(JobRequestError, match=words):
        parse_job_request(body)


@pytest.mark.parametrize(
    "script,words",
    [
        ("../other/a.sh", "outside the project"),
        ("a/../../b.sh", "outside the project"),
        ("/etc/passwd", "relative to the project"),
        ("a\0.sh", "NUL"),
        ("a b.sh", "letters, digits"),
        ("a.sh\n", "letters, digits"),
        ("$(id).sh", "letters, digits"),
        (".", "letters, digits"),
        ("x" * 1025, "longer than"),
    ],
)
def test_bad_script_paths(script: str, words: str) -> None:
    with pytest.raises(JobRequestError, match=words):
        check_script_path(script)


# ---- on disk ---------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> JobSite:
    project = tmp_path / "data" / "demo-u" / "alice" / "projects" / "p1"
    (project / "sub").mkdir(parents=True)
    (project / "run.sh").write_text("echo hi\n")
    (project / "sub" / "fit.py").write_text("print(1)\n")
    (tmp_path / "outside.sh").write_text("echo out\n")
    return JobSite(hub_id="t", data_root=str(tmp_path / "data"))


def jobs_for(site: JobSite, **kwargs: Any) -> ComputeJobs:
    return ComputeJobs(hub_id=site.hub_id, data_root=site.data_root, **kwargs)


def test_scripts_inside_the_project_are_found(site: JobSite) -> None:
    jobs = jobs_for(site)
    jobs.locate("demo-u", "alice", JobRequest("p1", "run.sh", {}))
    jobs.locate("demo-u", "alice", JobRequest("p1", "sub/fit.py", {}))


def test_symlinks_out_of_the_project_and_missing_files_are_refused(
    site: JobSite, tmp_path: Path
) -> None:
    project = Path(site.project_dir("demo-u", "alice", "p1"))
    (project / "out.sh").symlink_to(tmp_path / "outside.sh")
    (project / "alias.sh").symlink_to(project / "run.sh")
    projects = project.parent
    (projects / "elsewhere").symlink_to(tmp_path)
    jobs = jobs_for(site)
    for request, words in [
        (JobRequest("p1", "out.sh", {}), "leads outside the project"),
        (JobRequest("p1", "alias.sh", {}), r"is a symlink; give the file's own path \(run.sh\)"),
        (JobRequest("p1", "sub", {}), "No file 'sub'"),
        (JobRequest("p1", "gone.sh", {}), "No file 'gone.sh'"),
        (JobRequest("p2", "run.sh", {}), "alice has no project 'p2'"),
        (JobRequest("elsewhere", "outside.sh", {}), "alice has no project 'elsewhere'"),
    ]:
        with pytest.raises(JobRequestError, match=words):
            jobs.locate("demo-u", "alice", request)


def entry(job_id: str = "7", project: str = "p1", state: str = "COMPLETED") -> QueueEntry:
    return QueueEntry(
        job_id, "run.sh", "alice", state, "None", "localhost", "", "", "", f"x:project={project}"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user (root only)")
def test_the_log_reader_reads_only_alices_regular_file_in_the_project(
    site: JobSite, tmp_path: Path
) -> None:
    alice = pwd.getpwnam("alice")
    logs = Path(site.project_dir("demo-u", "alice", "p1")) / ".scitex" / "jobs"
    logs.mkdir(parents=True)
    jobs = jobs_for(site, log_tail_bytes=10)
    # Not there yet (pending): empty, and says so.
    assert jobs.read_log("demo-u", "alice", entry("7"))["exists"] is False

    log = logs / "7.log"
    log.write_text("line one\nline two\n")
    os.chown(log, alice.pw_uid, alice.pw_gid)
    answer = jobs.read_log("demo-u", "alice", entry("7"))
    assert answer == {
        "id": "7",
        "path": "projects/p1/.scitex/jobs/7.log",
        "state": "COMPLETED",
        "log": "\nline two\n",
        "truncated": True,
        "exists": True,
    }
    # root's file (e.g. a hard link alice cannot make, or one put there by another tool).
    (logs / "8.log").write_text("secret")
    # A symlink to a file elsewhere, even one of alice's.
    outside = tmp_path / "outside.log"
    outside.write_text("secret")
    os.chown(outside, alice.pw_uid, alice.pw_gid)
    (logs / "9.log").symlink_to(outside)
    for job_id in ("8", "9"):
        with pytest.raises(APIError) as e:
            jobs.read_log("demo-u", "alice", entry(job_id))
        assert e.value.status_code == 404
    with pytest.raises(APIError):
        jobs.read_log("demo-u", "alice", entry("7", project="../p1"))


# ---- reading SLURM ---------------------------------------------------------------------


def test_squeue_records_and_the_job_model() -> None:
    record = (
        "12",
        "sub/fit.py",
        "alice",
        "FAILED",
        "NonZeroExitCode",
        "localhost",
        "2026-12-01T02:18:33",
        "2026-12-01T02:18:34",
        "2026-12-01T02:18:35",
        "scitex-job:hub=demo:user=alice:project=p1",
    )
    [job] = parse_queue([record])
    assert job_model(job, FinishedJob("12", "FAILED", "NonZeroExitCode", "3:0")) == {
        "id": "12",
        "project": "p1",
        "script": "sub/fit.py",
        "state": "FAILED",
        "reason": "NonZeroExitCode",
        "node": "localhost",
        "submitted_at": "2026-12-01T02:18:33",
        "started_at": "2026-12-01T02:18:34",
        "ended_at": "2026-12-01T02:18:35",
        "exit_code": "3:0",
    }


def test_the_jobs_scope_must_be_the_callers_own() -> None:
    assert has_jobs_scope({"name": "alice", "scopes": ["custom:scitex:jobs!user=alice"]})
    assert has_jobs_scope({"name": "alice", "scopes": ["custom:scitex:jobs"]})
    assert not has_jobs_scope({"name": "alice", "scopes": ["custom:scitex:jobs!user=bob"]})
    assert not has_jobs_scope({"name": "alice", "scopes": ["access:services!service=scitex"]})


# ---- site file and hub config ----------------------------------------------------------

SITE: dict[str, Any] = {
    "data_root": "/srv/data",
    "institutions": {"demo-u": {"name": "Demo", "profiles": ["small"]}},
    "profiles": {
        "small": {
            "display_name": "Small",
            "partition": "debug",
            "cpus": 1,
            "memory": "512MiB",
            "runtime": "01:00:00",
        }
    },
}


@pytest.mark.parametrize(
    "jobs,words",
    [
        ({"max_queued_per_user": 0}, "jobs.max_queued_per_user"),
        ({"history_limit": 0}, "jobs.history_limit"),
        ({"image": "relative.sif"}, "jobs.image: must be an absolute path"),
        ({"extra_binds": ["/a:/data"]}, "jobs.extra_binds"),
        ({"python": "python3 -c"}, "jobs.python"),
        ({"service_url": "ftp://x"}, "jobs.service_url"),
        ({"queue": 3}, "jobs.queue"),
    ],
)
def test_jobs_section_errors_name_the_key(jobs: dict[str, Any], words: str) -> None:
    parse_settings(SITE)  # valid without them
    with pytest.raises(SettingsError, match=words) as e:
        parse_settings({**SITE, "jobs": jobs})
    assert len(str(e.value).splitlines()) == 1, e.value


def test_server_tokens_carry_the_jobs_scope_and_the_defaults() -> None:
    settings = parse_settings({**SITE, "hub": {"bind_url": "http://10.0.0.1:8000"}})
    c = Config()
    apply_roles(c, settings)
    apply_services(c, settings, environ={})
    assert SCITEX_JOBS_SCOPE in c.JupyterHub.custom_scopes
    assert c.Spawner.server_token_scopes == [
        "users:activity!user",
        "access:servers!server",
        "custom:scitex:jobs!user",
        "access:services!service=scitex",
    ]
    [user_role] = [r for r in c.JupyterHub.load_roles if r["name"] == "user"]
    assert user_role["scopes"] == [
        "self",
        "access:services!service=scitex",
        "custom:scitex:jobs!user",
    ]
    assert c.SciTeXSpawner.scitex_service_url == "http://10.0.0.1:8000/services/scitex/"


def test_the_service_url_follows_base_url_or_the_setting() -> None:
    settings = parse_settings({**SITE, "hub": {"base_url": "/hub-a/"}})
    assert service_public_url(settings) == "http://127.0.0.1:8000/hub-a/services/scitex/"
    settings = parse_settings({**SITE, "jobs": {"service_url": "https://hub.example.edu/s/x"}})
    assert service_public_url(settings) == "https://hub.example.edu/s/x/"


def test_compute_nodes_reach_the_service_where_they_reach_the_hub() -> None:
    """With a cluster-facing hub (hub_connect_url), the service listens on that host and
    servers on the nodes call it there: not through a proxy on the hub's loopback."""
    hub = {"hub_bind_url": "http://10.77.0.1:8081", "hub_connect_url": "http://10.77.0.1:8081"}
    settings = parse_settings({**SITE, "hub": hub})
    assert settings.service_listen_url() == "http://10.77.0.1:8090"
    assert service_public_url(settings) == "http://10.77.0.1:8090/services/scitex/"
    c = Config()
    apply_services(c, settings, environ={})
    [service] = [s for s in c.JupyterHub.services if s["name"] == "scitex"]
    assert service["url"] == "http://10.77.0.1:8090"
    assert c.SciTeXSpawner.scitex_service_url == "http://10.77.0.1:8090/services/scitex/"
    # The site's own listen address wins; one machine stays on 127.0.0.1.
    settings = parse_settings({**SITE, "hub": hub, "service": {"url": "http://10.0.0.9:9000"}})
    assert service_public_url(settings) == "http://10.0.0.9:9000/services/scitex/"
    assert parse_settings(SITE).service_listen_url() == "http://127.0.0.1:8090"


def test_apply_all_keeps_a_user_role_already_declared() -> None:
    settings = parse_settings(SITE)
    c = Config()
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:groups"]}]
    apply_all(c, settings)
    [user_role] = [r for r in c.JupyterHub.load_roles if r["name"] == "user"]
    assert user_role["scopes"] == [
        "self",
        "read:groups",
        "access:services!service=scitex",
        "custom:scitex:jobs!user",
    ]


def test_the_site_files_history_limit_reaches_the_service() -> None:
    settings = parse_settings({**SITE, "container": {"runtime": "none"}})
    assert ComputeJobs(config=shipped_service_config(settings)).history_limit == 50
    settings = parse_settings(
        {**SITE, "container": {"runtime": "none"}, "jobs": {"history_limit": 7}}
    )
    assert ComputeJobs(config=shipped_service_config(settings)).history_limit == 7


def test_no_compute_job_runs_as_a_refused_name() -> None:
    """The sign-in's name rules reach the service (a token of a user made through the
    hub's API, or from before a rule changed, still submits nothing as that account)."""
    settings = parse_settings({**SITE, "auth": {"kind": "pam", "denied_users": ["guest"]}})
    jobs = ComputeJobs(config=shipped_service_config(settings))
    assert jobs.min_uid == 1000
    assert {"root", "guest"} <= jobs.denied_users
    for name, words in (("guest", "reserved"), ("root", "reserved"), ("daemon", "system account")):
        with pytest.raises(APIError, match=f"no job runs for {name}: .*{words}") as e:
            jobs.prefix(name)
        assert e.value.status_code == 403
    assert jobs.prefix("alice")[-2:] == ["alice", "--"]

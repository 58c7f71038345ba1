"""`make demo` itself, with the shipped jupyterhub_config/scitex.yaml unchanged: a
researcher's day through it, over HTTP as a browser would (no test hub, no test
settings). alice signs in with the password `make demo` printed, starts a server,
creates a project, writes run.py into it, submits it as a compute job, sees it
COMPLETED with its output file and log, and stops her server. Then `make demo-down`.

A demo hub already running (a developer's) is kept, as `make demo` keeps it, and left
running. `make demo-down` stops the single-node SLURM too; the rest of the suite needs
it, so it is started again when it was running before (`slurm.sh start`).
The multi-node version: test_demo_cluster_commands.py.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.hubprocess import REPO, Hub, HubUser, hub_of_site_file, read_environ
from tests.services import DEV_DIR, missing

pytestmark = pytest.mark.e2e

SITE_FILE = REPO / "jupyterhub_config" / "scitex.yaml"
SLURM_SH = REPO / "deploy" / "dev" / "slurm.sh"
PID_FILE = Path(DEV_DIR) / "hub" / "jupyterhub.pid"
MAKE_VARIABLES = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
# SLURM's states of a job that has not ended yet.
LIVE = {"", "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"}
RUN_PY = """\
from pathlib import Path

Path("result.txt").write_text("42\\n")
print("run.py says hello from the compute job")
"""


@dataclass
class Demo:
    hub: Hub
    password: str
    seconds: dict[str, float] = field(default_factory=dict)


def make(*targets: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`make TARGET` in the repository, as a user types it (with this environment)."""
    if not shutil.which("make"):
        missing("make", "make is not installed")
    # Not a sub-make of `make test` (whose jobserver and flags would leak in): a new
    # make, as typed in a shell.
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    return subprocess.run(
        ["make", "--no-print-directory", *targets],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output_of(r: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    text = (r.stdout or "") + (r.stderr or "")
    return "\n".join(text.splitlines()[-lines:])


def running_demo() -> str | None:
    """The site file of the demo hub running now ('' for the shipped one, which
    deploy/dev/demo.sh passes as an empty SCITEX_CONFIG), or None when none runs."""
    try:
        pid = int(PID_FILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = read_environ(pid)
    except (OSError, ValueError):
        return None
    if b"jupyterhub" not in cmdline:
        return None
    return environ.get("SCITEX_CONFIG", "")


def answers(url: str) -> bool:
    try:
        return requests.get(url + "/hub/api", timeout=5).ok
    except requests.RequestException:
        return False


def is_up(*argv: str) -> bool:
    return subprocess.run(argv, capture_output=True, timeout=60).returncode == 0


def start_again(*argv: str) -> str:
    """Start a service the demo's down command stopped; '' or what went wrong."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    return "" if r.returncode == 0 else f"{' '.join(argv)} failed:\n{output_of(r)}"


def printed_password(output: str) -> str:
    """The researchers' password as `make demo` prints it."""
    match = re.search(r"^\s*Researchers' password: (\S+)\s*$", output, re.MULTILINE)
    assert match and not match.group(1).startswith("<"), f"no password printed:\n{output}"
    return match.group(1)


def logs(hub: Hub, alice: HubUser, job_id: str | None = None) -> str:
    """What a person reads when something went wrong: the job's log, the hub's."""
    parts = []
    if job_id:
        r = alice.api("GET", f"/user/alice/scitex/api/jobs/{job_id}/log")
        parts.append(f"job {job_id} log ({r.status_code}):\n{r.text[-3000:]}")
    # The scitex service is the hub's managed service: its log is in the hub's.
    parts.append(f"hub log {hub.log_path}:\n{hub.log_tail(80)}")
    return "\n\n".join(parts)


def wait_ended(alice: HubUser, job_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = alice.api("GET", f"/user/alice/scitex/api/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if job.get("state") not in LIVE:
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not end within {timeout} s: {job}")


def stop_server(alice: HubUser) -> None:
    r = alice.api("DELETE", "/hub/api/users/alice/server")
    assert r.status_code in (202, 204), r.text
    alice.wait_stopped(120)


def remove_project(hub: Hub, name: str) -> None:
    """As alice (her tree): the project this test made, so demo runs leave nothing behind."""
    path = Path(hub.settings["data_root"]) / "demo-u" / "alice" / "projects" / name
    subprocess.run(["runuser", "-u", "alice", "--", "rm", "-rf", "--", str(path)], timeout=60)


def a_researchers_day(demo: Demo, nodes: set[str]) -> dict[str, Any]:
    """alice's day through the demo hub; her finished job. ``nodes``: where it may run."""
    hub, seconds = demo.hub, demo.seconds
    alice = HubUser(hub, "alice")
    r = alice.login(demo.password)
    assert r.status_code == 302, f"alice could not sign in: {r.status_code} {r.text[:300]}"
    alice.create_token()
    if alice.server_model():  # left running in a developer's demo: start afresh
        stop_server(alice)

    started = time.monotonic()
    r = alice.api("POST", "/hub/api/users/alice/server", json={})
    assert r.status_code in (201, 202), r.text
    alice.wait_ready(180)
    seconds["server start"] = time.monotonic() - started
    project = "demo-e2e-" + secrets.token_hex(3)
    try:
        r = alice.api("POST", "/user/alice/scitex/api/projects", json={"name": project})
        assert r.status_code == 201, f"{r.status_code} {r.text}\n{logs(hub, alice)}"
        assert r.json()["name"] == project
        contents = f"/user/alice/api/contents/projects/{project}"
        r = alice.api(
            "PUT",
            f"{contents}/run.py",
            json={"type": "file", "format": "text", "content": RUN_PY},
        )
        assert r.status_code in (200, 201), r.text

        started = time.monotonic()
        r = alice.api(
            "POST", "/user/alice/scitex/api/jobs", json={"project": project, "script": "run.py"}
        )
        assert r.status_code == 201, f"{r.status_code} {r.text}\n{logs(hub, alice)}"
        job_id = r.json()["id"]
        job = wait_ended(alice, job_id)
        seconds["job submit to end"] = time.monotonic() - started
        assert job["state"] == "COMPLETED", f"{job}\n\n{logs(hub, alice, job_id)}"
        assert (job["project"], job["script"], job["exit_code"]) == (project, "run.py", "0:0")
        assert job["node"] in nodes, job

        r = alice.api("GET", f"{contents}/result.txt", params={"content": "1"})
        assert r.status_code == 200, f"no output file: {r.text}\n{logs(hub, alice, job_id)}"
        assert r.json()["content"] == "42\n"
        r = alice.api("GET", f"/user/alice/scitex/api/jobs/{job_id}/log")
        assert r.status_code == 200, r.text
        log = r.json()
        assert log["exists"] and log["state"] == "COMPLETED", log
        assert "run.py says hello from the compute job" in log["log"], log
        assert log["path"] == f"projects/{project}/.scitex/jobs/{job_id}.log"
    finally:
        remove_project(hub, project)
        started = time.monotonic()
        stop_server(alice)
        seconds["server stop"] = time.monotonic() - started
    return job


@pytest.fixture(scope="module")
def demo(services: str) -> Iterator[Demo]:
    running = running_demo()
    if running:
        missing("make demo", f"another demo hub ({running}) runs on port 8000: stop it first")
    kept = running == ""
    slurm_was_up = is_up("bash", str(SLURM_SH), "status")
    hub = hub_of_site_file(SITE_FILE)
    started = time.monotonic()
    r = make("demo")
    took = time.monotonic() - started
    assert r.returncode == 0, f"make demo failed:\n{output_of(r)}\n{hub.log_tail()}"
    demo = Demo(hub, printed_password(r.stdout), {"make demo": took})
    try:
        assert answers(hub.url), f"make demo succeeded but {hub.url} does not answer"
        if kept:
            assert "already running" in r.stderr, output_of(r)
        yield demo
    finally:
        if not kept:
            started = time.monotonic()
            down = make("demo-down", timeout=300)
            demo.seconds["make demo-down"] = time.monotonic() - started
            # The rest of the suite runs on the single-node SLURM that demo-down stopped.
            restarted = start_again("bash", str(SLURM_SH), "start") if slurm_was_up else ""
            assert down.returncode == 0, f"make demo-down failed:\n{output_of(down)}"
            assert not answers(hub.url), "make demo-down left the hub answering"
            assert not restarted, restarted
        print("seconds:", {k: round(v, 1) for k, v in demo.seconds.items()})


def test_a_researchers_day_in_make_demo(demo: Demo) -> None:
    job = a_researchers_day(demo, nodes={"localhost"})
    print(f"job {job['id']} on {job['node']}: {job['state']}")

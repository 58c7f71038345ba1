"""Alice names her own SLURM jobs to forge queue records of bob's server: the hub's
view of bob's real job does not change.

SLURM prints job names and comments as given (newlines, control characters), and the
hub's one squeue lists every user's jobs. Alice submits, as herself, jobs whose name
and comment imitate a record of bob's server job (his job id, user, tag; state
PENDING, no node; the old field separator; "JobState=COMPLETED") and one that carries
an exact copy of bob's tag. Real JupyterHub, proxy, PAM and SLURM.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import signed_in
from tests.e2e.hubprocess import Hub, HubUser, job_ids_of
from tests.e2e.test_faults import metric
from tests.services import VENV_PYTHON, demo_admin_password, slurm_env

pytestmark = pytest.mark.e2e

SEP = "\x1f"


def sbatch_as(user: str, name: str, comment: str, tmp: Path) -> str:
    script = tmp / "sleep.sh"
    script.write_text("#!/bin/bash\nsleep 600\n")
    script.chmod(0o755)
    out = subprocess.run(
        [
            "runuser",
            "-u",
            user,
            "--",
            "sbatch",
            "--parsable",
            "--mem=50M",
            "--time=10",
            "--output=/dev/null",
            f"--chdir={tmp}",
            f"--job-name={name}",
            f"--comment={comment}",
            str(script),
        ],
        env=slurm_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


@pytest.fixture
def crafted_jobs(hub: Hub) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    if not ids:
        return
    subprocess.run(["scancel", *ids], env=slurm_env(), check=False, timeout=30)
    # Gone from squeue before the next test module: they hold CPUs of the node its
    # servers need.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["squeue", "--noheader", "--jobs", ",".join(ids), "--format=%i"],
            env=slurm_env(),
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
        if not set(listed) & set(ids):
            return
        time.sleep(0.5)


def hub_view(admin: HubUser) -> dict[str, float]:
    text = admin.api("GET", "/hub/metrics").text
    return {
        state: metric(text, f'scitex_jobs{{state="{state}"}}') for state in ("RUNNING", "PENDING")
    }


def test_alice_cannot_forge_bobs_server_job(
    hub: Hub, password: str, crafted_jobs: list[str]
) -> None:
    bob = signed_in(hub, "bob", password)
    r = bob.api("POST", "/hub/api/users/bob/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    bob.wait_ready()
    [bob_job] = job_ids_of(hub, "bob")
    admin = signed_in(hub, "admin", demo_admin_password())
    assert hub_view(admin) == {"RUNNING": 1, "PENDING": 0}

    tag = f"scitex:hub={hub.hub_id}:user=bob:server=-"
    tmp_path = hub.root / "alice-jobs"  # readable by alice (pytest's tmp is root's)
    tmp_path.mkdir(mode=0o755, exist_ok=True)
    # A whole record of bob's job in the old format (pending, no node), on a line of its own.
    forged = SEP.join(
        [bob_job, "scitex-nb-bob", "bob", "PENDING", "Resources", "", "N/A", "N/A", tag]
    )
    crafted_jobs.append(
        sbatch_as("alice", f"x\n{forged}\n", f"{tag}\n{bob_job} JobState=COMPLETED", tmp_path)
    )
    # The same in the comment, and a mark-like text (the marks are random per squeue).
    crafted_jobs.append(sbatch_as("alice", "y~r~", f"c\n{forged}\n~r~\n", tmp_path))
    # An exact copy of bob's tag on a job of alice's.
    crafted_jobs.append(sbatch_as("alice", "scitex-nb-bob", tag, tmp_path))

    # Several of the hub's polls (poll_interval 2 s) with the crafted jobs queued.
    poll_interval = float(hub.settings["slurm"]["poll_interval"])
    time.sleep(4 * poll_interval)
    # Bob's job is still his one running job, and nothing of alice's counts as the hub's.
    assert hub_view(admin) == {"RUNNING": 1, "PENDING": 0}
    model = bob.server_model()
    assert model.get("ready"), model
    status = bob.api("GET", "/user/bob/api/status")
    assert status.status_code == 200, status.text
    session = bob.api("GET", "/user/bob/scitex/api/session").json()
    assert (session["user"], session["job_id"]) == ("bob", bob_job)
    # What `make demo-down` cancels as root (python -m scitex_spawner.hub_jobs): bob's
    # server only. A line of its own in a comment ("<id> <tag>") once made the shell's
    # `squeue -o '%i %k' | awk` name any job id.
    crafted_jobs.append(sbatch_as("alice", "z", f"c\n{crafted_jobs[0]} {tag}", tmp_path))
    listed = subprocess.run(
        [VENV_PYTHON, "-m", "scitex_spawner.hub_jobs", hub.hub_id],
        env=slurm_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [bob_job]

    # Bob restarts: the hub cancels leftovers of *his* server only, never alice's copy.
    bob.api("DELETE", "/hub/api/users/bob/server")
    bob.wait_stopped()
    r = bob.api("POST", "/hub/api/users/bob/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    bob.wait_ready()
    log = hub.log_text()
    assert not [line for line in log.splitlines() if "leftover job" in line], hub.log_tail()
    assert "SLURM did not answer" not in log and "squeue printed" not in log
    still = subprocess.run(
        ["squeue", "--noheader", "--jobs", ",".join(crafted_jobs), "--format=%i %u"],
        env=slurm_env(),
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert sorted(
        line.split()[0] for line in still.splitlines() if line.endswith(" alice")
    ) == sorted(crafted_jobs)
    bob.api("DELETE", "/hub/api/users/bob/server")
    bob.wait_stopped()

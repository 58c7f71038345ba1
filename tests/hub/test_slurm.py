"""SLURM output parsing and the shared queue watcher, against a scripted client."""

from __future__ import annotations

import asyncio

import pytest

from scitex_spawner.slurm import (
    FinishedJob,
    QueuedJob,
    QueueWatcher,
    SlurmClient,
    SlurmCommandError,
    SlurmError,
    parse_node_addresses,
    parse_scontrol_job,
    parse_squeue,
)

SEP = "\x1f"
TAG = "scitex:hub=t:"


def queued(job_id: str, state: str = "RUNNING", node: str = "n1", tag: str = TAG) -> QueuedJob:
    return QueuedJob(
        job_id, "scitex-nb-a", "alice", state, "None", node, "N/A", "N/A", tag + "user=a"
    )


class ScriptedSlurm(SlurmClient):
    """Answers from tables the test sets; counts every call."""

    def __init__(self) -> None:
        super().__init__()
        self.queue_answer: dict[str, QueuedJob] | Exception = {}
        self.records: dict[str, FinishedJob | Exception | None] = {}
        self.calls: list[str] = []

    async def queue(self) -> dict[str, QueuedJob]:
        self.calls.append("squeue")
        if isinstance(self.queue_answer, Exception):
            raise self.queue_answer
        return dict(self.queue_answer)

    async def job_record(self, job_id: str) -> FinishedJob | None:
        self.calls.append(f"scontrol {job_id}")
        answer = self.records.get(job_id)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def node_addresses(self) -> dict[str, str]:
        self.calls.append("nodes")
        return {"n1": "10.0.0.1"}


def test_parse_squeue() -> None:
    out = (
        SEP.join(
            [
                "17",
                "scitex-nb-alice",
                "alice",
                "PENDING",
                "Resources",
                "n/a",
                "2026-12-01T10:00:00",
                "N/A",
                "scitex:hub=demo:user=alice:server=-",
            ]
        )
        + "\n"
    )
    out += "garbage line\n"
    out += (
        SEP.join(
            [
                "18",
                "other|job",
                "bob",
                "RUNNING",
                "None",
                "node2",
                "2026-12-01T09:00:00",
                "2026-12-01T13:00:00",
                "",
            ]
        )
        + "\n"
    )
    jobs = parse_squeue(out)
    assert jobs == {
        "17": QueuedJob(
            "17",
            "scitex-nb-alice",
            "alice",
            "PENDING",
            "Resources",
            "",
            "2026-12-01T10:00:00",
            "N/A",
            "scitex:hub=demo:user=alice:server=-",
        ),
        "18": QueuedJob(
            "18",
            "other|job",
            "bob",
            "RUNNING",
            "None",
            "node2",
            "2026-12-01T09:00:00",
            "2026-12-01T13:00:00",
            "",
        ),
    }
    assert jobs["17"].pending and not jobs["17"].running
    assert jobs["18"].running


def test_parse_scontrol_and_nodes() -> None:
    line = "JobId=42 JobName=scitex-nb-alice UserId=alice(1002) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) ExitCode=0:15 BatchHost=localhost"
    assert parse_scontrol_job(line) == {
        "JobId": "42",
        "JobState": "TIMEOUT",
        "Reason": "TimeLimit",
        "ExitCode": "0:15",
        "BatchHost": "localhost",
    }
    nodes = "NodeName=c1 Arch=x86_64 NodeAddr=10.77.0.11 NodeHostName=c1\nNodeName=c2 CoresPerSocket=1\n"
    assert parse_node_addresses(nodes) == {"c1": "10.77.0.11", "c2": "c2"}


def test_finished_job_describes_itself() -> None:
    assert FinishedJob("1", "TIMEOUT", "TimeLimit", "0:15").describe() == (
        "the job reached its time limit (state TIMEOUT, exit code 0:15, reason TimeLimit)"
    )
    assert (
        FinishedJob("1", "CANCELLED", "None", "0:0").describe()
        == "the job was cancelled (state CANCELLED)"
    )


async def test_one_squeue_per_cycle_for_any_number_of_jobs() -> None:
    slurm = ScriptedSlurm()
    slurm.queue_answer = {str(i): queued(str(i)) for i in range(200)}
    slurm.queue_answer["999"] = queued("999", tag="scitex:hub=other-hub:")
    watcher = QueueWatcher(slurm, TAG)
    for i in range(200):
        watcher.tracked.add(str(i))
    await watcher.poll_once()
    await watcher.poll_once()
    assert slurm.calls == ["squeue", "nodes", "squeue"]
    assert len(watcher.jobs) == 200
    assert "999" not in watcher.jobs  # another hub's job
    assert watcher.view("7").status == "queued"
    assert watcher.node_address("n1") == "10.0.0.1"


async def test_errors_mean_unknown_never_gone() -> None:
    slurm = ScriptedSlurm()
    slurm.queue_answer = {"1": queued("1")}
    watcher = QueueWatcher(slurm, TAG)
    watcher.tracked.add("1")
    await watcher.poll_once()
    assert watcher.view("1").status == "queued"

    slurm.queue_answer = SlurmError("squeue did not answer within 30 s")
    await watcher.poll_once()
    # The last good answer stands; the failure is counted.
    assert watcher.view("1").status == "queued"
    assert watcher.errors == 1
    assert "did not answer" in watcher.last_error

    # The job leaves the queue, but scontrol cannot say how: unknown, not gone.
    slurm.queue_answer = {}
    slurm.records["1"] = SlurmCommandError("scontrol", 1, "Unable to contact slurm controller")
    await watcher.poll_once()
    assert watcher.view("1").status == "unknown"

    # scontrol still calls it running (a race with squeue): unknown.
    slurm.records["1"] = None
    await watcher.poll_once()
    assert watcher.view("1").status == "unknown"

    # Only a final state makes it gone.
    slurm.records["1"] = FinishedJob("1", "CANCELLED", "None", "0:0")
    await watcher.poll_once()
    view = watcher.view("1")
    assert view.status == "finished" and view.finished is not None
    assert view.finished.state == "CANCELLED"


async def test_untracked_jobs_are_not_asked_about() -> None:
    slurm = ScriptedSlurm()
    watcher = QueueWatcher(slurm, TAG)
    await watcher.poll_once()
    assert slurm.calls == ["squeue"]


async def test_shared_watcher_is_one_per_configuration() -> None:
    QueueWatcher.reset_shared()
    a, b = SlurmClient(slurm_conf="/etc/slurm/a.conf"), SlurmClient(slurm_conf="/etc/slurm/a.conf")
    c = SlurmClient(slurm_conf="/etc/slurm/c.conf")
    assert QueueWatcher.shared(a, TAG) is QueueWatcher.shared(b, TAG)
    assert QueueWatcher.shared(a, TAG) is not QueueWatcher.shared(c, TAG)
    QueueWatcher.reset_shared()


async def test_next_cycle_and_hurry() -> None:
    slurm = ScriptedSlurm()
    watcher = QueueWatcher(slurm, TAG, interval=60, fast_interval=0.01)
    with watcher.hurry():
        watcher.ensure_running()
        assert await watcher.next_cycle(timeout=2)
        assert await watcher.next_cycle(timeout=2)
    watcher.stop()
    assert slurm.calls.count("squeue") >= 2


async def test_client_runs_argv_and_reports_failures(tmp_path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "sbatch").write_text("#!/bin/sh\ncat > \"$0.stdin\"\necho '4711;cluster'\n")
    (fake_bin / "scancel").write_text(
        "#!/bin/sh\necho 'scancel: error: Kill job error on job id 5: Access/permission denied' >&2\nexit 1\n"
    )
    (fake_bin / "squeue").write_text("#!/bin/sh\nexec sleep 5\n")
    for f in fake_bin.iterdir():
        f.chmod(0o755)
    client = SlurmClient(bin_dir=str(fake_bin), command_timeout=0.5)
    job_id = await client.submit("#!/bin/bash\necho hi\n", prefix=[], env=client.base_env())
    assert job_id == "4711"
    assert (fake_bin / "sbatch.stdin").read_text() == "#!/bin/bash\necho hi\n"
    with pytest.raises(SlurmCommandError, match="permission denied"):
        await client.cancel("5")
    with pytest.raises(SlurmError, match="did not answer"):
        await client.queue()
    with pytest.raises(ValueError):
        await client.cancel("5; rm -rf /")
    missing = SlurmClient(bin_dir=str(tmp_path / "nowhere"))
    with pytest.raises(SlurmError, match="cannot run"):
        await missing.queue()


def test_base_env_has_no_hub_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "secret")
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "secret")
    env = SlurmClient(slurm_conf="/etc/slurm/x.conf").base_env()
    assert env["SLURM_CONF"] == "/etc/slurm/x.conf"
    assert "secret" not in env.values()


async def test_watcher_loop_survives_unexpected_errors() -> None:
    slurm = ScriptedSlurm()
    slurm.queue_answer = RuntimeError("bug")  # not a SlurmError
    watcher = QueueWatcher(slurm, TAG, interval=0.01)
    watcher.ensure_running()
    assert await watcher.next_cycle(timeout=2)
    assert await watcher.next_cycle(timeout=2)
    watcher.stop()
    await asyncio.sleep(0)
    assert watcher.errors >= 2


class CancellingSlurm(ScriptedSlurm):
    async def cancel(self, job_id: str, *, prefix=()) -> None:
        self.calls.append(f"scancel {job_id} as {' '.join(prefix)}")


async def test_unclaimed_jobs_are_cancelled_after_the_grace_time(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("scitex_spawner.slurm.time.monotonic", lambda: clock[0])
    slurm = CancellingSlurm()
    slurm.queue_answer = {
        "1": queued("1"),
        "2": queued("2"),
        "3": queued("3", tag="scitex:hub=other:"),
    }
    watcher = QueueWatcher(slurm, TAG, orphan_grace=60)
    watcher.cancel_prefix = ["runuser", "-u", "{username}", "--"]
    watcher.tracked.add("1")
    await watcher.poll_once()
    clock[0] += 59
    await watcher.poll_once()
    assert not [c for c in slurm.calls if c.startswith("scancel")]
    clock[0] += 2
    await watcher.poll_once()
    # Job 2 is ours and unclaimed: cancelled as its owner. Job 1 is claimed; job 3
    # belongs to another hub.
    assert [c for c in slurm.calls if c.startswith("scancel")] == [
        "scancel 2 as runuser -u alice --"
    ]


async def test_a_job_claimed_in_time_is_kept(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("scitex_spawner.slurm.time.monotonic", lambda: clock[0])
    slurm = CancellingSlurm()
    slurm.queue_answer = {"2": queued("2")}
    watcher = QueueWatcher(slurm, TAG, orphan_grace=60)
    await watcher.poll_once()
    clock[0] += 50
    watcher.tracked.add("2")  # a restarted hub's server polls and claims it
    await watcher.poll_once()
    clock[0] += 100
    await watcher.poll_once()
    assert not [c for c in slurm.calls if c.startswith("scancel")]

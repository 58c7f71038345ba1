"""SLURM output parsing and the shared queue watcher, against a scripted client."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from scitex_hub.slurm import (
    FinishedJob,
    QueuedJob,
    QueueWatcher,
    SlurmClient,
    SlurmCommandError,
    SlurmError,
    SqueueFraming,
    exit_code_text,
    parse_node_addresses,
    parse_squeue,
)
from scitex_hub.slurm.framing import FramingError
from scitex_spawner.hub_jobs import hub_job_ids

TAG = "scitex:hub=t:"


def queued(job_id: str, state: str = "RUNNING", node: str = "n1", tag: str = TAG) -> QueuedJob:
    return QueuedJob(
        job_id, "scitex-nb-alice", "alice", state, "None", node, "N/A", "N/A", tag + "user=alice:"
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


# Real squeue 22.05 output, recorded on the dev cluster. Bob's server job 55, and
# alice's job 56, submitted by alice as
#   sbatch --job-name=$'x~r~\n55\x1fscitex-nb-bob\x1fbob\x1fPENDING\x1fResources\x1f\x1fN/A\x1fN/A\x1fscitex:hub=t:user=bob:server=-\n'
#          --comment=$'scitex:hub=t:user=bob:server=-\n55 JobState=COMPLETED'
# to forge a record of bob's job (pending, no node) and copy bob's tag.
F = "~f3a1d5c2e4b6a8f0e1d3c5b7a9f1e3d5~"
R = "~r9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a49~"
FRAMED = (
    f"55{F}scitex-nb-bob{F}bob{F}RUNNING{F}None{F}localhost{F}2026-12-07T22:38:52{F}"
    f"2026-12-07T22:43:52{F}scitex:hub=t:user=bob:server=-{R}\n"
    f"56{F}x~r~\n55\x1fscitex-nb-bob\x1fbob\x1fPENDING\x1fResources\x1f\x1fN/A\x1fN/A\x1f"
    f"scitex:hub=t:user=bob:server=-\n{F}alice{F}RUNNING{F}None{F}localhost{F}"
    f"2026-12-07T22:38:52{F}2026-12-07T22:43:52{F}scitex:hub=t:user=bob:server=-\n"
    f"55 JobState=COMPLETED{R}\n"
)
# The same queue as the old fixed-separator format printed it.
UNFRAMED = (
    "55\x1fscitex-nb-bob\x1fbob\x1fRUNNING\x1fNone\x1flocalhost\x1f2026-12-07T22:38:52\x1f"
    "2026-12-07T22:43:52\x1fscitex:hub=t:user=bob:server=-\n"
    "56\x1fx~r~\n55\x1fscitex-nb-bob\x1fbob\x1fPENDING\x1fResources\x1f\x1fN/A\x1fN/A\x1f"
    "scitex:hub=t:user=bob:server=-\n\x1falice\x1fRUNNING\x1fNone\x1flocalhost\x1f"
    "2026-12-07T22:38:52\x1f2026-12-07T22:43:52\x1fscitex:hub=t:user=bob:server=-\n"
    "55 JobState=COMPLETED\n"
)
BOB = QueuedJob(
    "55",
    "scitex-nb-bob",
    "bob",
    "RUNNING",
    "None",
    "localhost",
    "2026-12-07T22:38:52",
    "2026-12-07T22:43:52",
    "scitex:hub=t:user=bob:server=-",
)


def test_a_crafted_job_name_cannot_forge_a_record() -> None:
    # Control: split on a fixed separator, the crafted name rewrites bob's job.
    old = [line.split("\x1f") for line in UNFRAMED.splitlines()]
    forged = parse_squeue([f for f in old if len(f) == 9])
    assert forged["55"].state == "PENDING" and forged["55"].node == ""

    records = SqueueFraming(F, R).records(FRAMED, 9)
    jobs = parse_squeue(records)
    assert jobs == {
        "55": BOB,
        "56": QueuedJob(
            "56",
            "x~r~\n55\x1fscitex-nb-bob\x1fbob\x1fPENDING\x1fResources\x1f\x1fN/A\x1fN/A\x1f"
            "scitex:hub=t:user=bob:server=-",
            "alice",
            "RUNNING",
            "None",
            "localhost",
            "2026-12-07T22:38:52",
            "2026-12-07T22:43:52",
            "scitex:hub=t:user=bob:server=-\n55 JobState=COMPLETED",
        ),
    }
    # Alice's copy of bob's tag names bob, but SLURM says the job is alice's: not the
    # hub's. Bob's real job is.
    watcher = QueueWatcher(SlurmClient(), TAG)
    assert [watcher.is_ours(job) for job in jobs.values()] == [True, False]


def test_demo_down_cancels_only_the_hubs_own_jobs() -> None:
    """``python -m scitex_spawner.hub_jobs`` (make demo-down's list, cancelled as root):
    from the same crafted queue, bob's server only; alice's job with bob's tag, the
    newline and the forged line in its name and comment give nothing."""
    jobs = parse_squeue(SqueueFraming(F, R).records(FRAMED, 9))
    assert hub_job_ids(jobs, "t") == ["55"]
    assert hub_job_ids(jobs, "other") == []


def test_records_that_are_not_whole_are_refused() -> None:
    framing = SqueueFraming(F, R)
    assert framing.records("", 9) == []
    with pytest.raises(FramingError, match="ends outside a record"):
        framing.records(FRAMED + "57" + F + "x", 9)
    with pytest.raises(FramingError, match="a record of 2 fields, not 9"):
        framing.records(f"1{F}2{R}\n", 9)


def test_framings_are_fresh_and_travel_in_the_environment() -> None:
    a, b = SqueueFraming.fresh(), SqueueFraming.fresh()
    assert len({a.field_mark, a.record_mark, b.field_mark, b.record_mark}) == 4
    assert a.format(["%i", "%k"]) == f"%i{a.field_mark}%k{a.record_mark}"
    assert a.long_format(["State", "exit_code"]) == (
        f"State:0{a.field_mark},exit_code:0{a.record_mark}"
    )
    assert SqueueFraming.of_env({"SQUEUE_FORMAT": a.format(["%i", "%k"])}) == a
    assert a.records(a.render([["1", "x"], ["2", ""]]), 2) == [("1", "x"), ("2", "")]


async def test_the_client_frames_squeue_through_its_environment() -> None:
    class Recording(SlurmClient):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[list[str], dict[str, str]]] = []

        async def run(self, argv, *, stdin=None, env=None):  # type: ignore[no-untyped-def]
            self.seen.append((list(argv), dict(env or {})))
            framing = SqueueFraming.of_env(env or {})
            if "--all" in argv:
                return framing.render([["55", *_bob_fields()]])
            return framing.render([["FAILED", "NonZeroExitCode", "768"]])

    client = Recording()
    assert await client.queue() == {"55": BOB}
    assert await client.job_record("56") == FinishedJob("56", "FAILED", "NonZeroExitCode", "3:0")
    (queue_argv, queue_env), (record_argv, record_env) = client.seen
    # The marks are never on the command line (other local users can read argv).
    assert queue_argv == ["squeue", "--noheader", "--all"]
    assert record_argv == ["squeue", "--noheader", "--states=all", "--jobs=56"]
    assert queue_env["SQUEUE_FORMAT"].startswith("%i~f")
    assert record_env["SQUEUE_FORMAT2"].startswith("State:0~f")
    assert SqueueFraming.of_env(queue_env) != SqueueFraming.of_env(record_env)


def _bob_fields() -> list[str]:
    """BOB's squeue fields after the job id, as the framed reader gets them."""
    return list(dataclasses.astuple(BOB)[1:])


def test_an_ended_jobs_record_from_squeue() -> None:
    # Recorded: alice's job 53 (`exit 3`), named $'fail\nx JobState=RUNNING': scontrol
    # printed "JobName=fail\nx JobState=RUNNING ... JobState=FAILED".
    out = f"FAILED{F}NonZeroExitCode{F}768{R}\n"
    assert SqueueFraming(F, R).records(out, 3) == [("FAILED", "NonZeroExitCode", "768")]
    assert exit_code_text("768") == "3:0"
    assert exit_code_text("9") == "0:9"
    assert exit_code_text("0") == "0:0"
    assert exit_code_text("3:0") == "3:0"


def test_parse_node_addresses() -> None:
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
    monkeypatch.setattr("scitex_hub.slurm.watcher.time.monotonic", lambda: clock[0])
    slurm = CancellingSlurm()
    slurm.queue_answer = {
        "1": queued("1"),
        "2": queued("2"),
        "3": queued("3", tag="scitex:hub=other:"),
    }
    watcher = QueueWatcher(slurm, TAG, orphan_grace=60)
    slurm.run_as_prefix = ["runuser", "-u", "{username}", "--"]
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
    monkeypatch.setattr("scitex_hub.slurm.watcher.time.monotonic", lambda: clock[0])
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


async def test_unframed_squeue_output_is_an_error_not_an_empty_queue() -> None:
    """A wrapper that drops squeue's environment prints the default format: that is
    SLURM not answering (jobs kept as unknown), never "no jobs"."""

    class Unframed(SlurmClient):
        async def run(self, argv, *, stdin=None, env=None):  # type: ignore[no-untyped-def]
            return "JOBID PARTITION NAME\n55 debug scitex-nb-bob\n"

    with pytest.raises(SlurmError, match=r"ends outside a record: .*SQUEUE_FORMAT"):
        await Unframed().queue()

"""The waits of a start (scitex_spawner.waits), against a watcher whose views the test sets."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from scitex_hub.slurm import FinishedJob, JobView, QueuedJob
from scitex_spawner.failures import SpawnFailed
from scitex_spawner.waits import JobEnded, StartWaits


class Hurry:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class ScriptedWatcher:
    """Gives the views in order, one per cycle; the last stays."""

    fast_interval = 0.01

    def __init__(self, *views: JobView) -> None:
        self.views = list(views)

    def view(self, job_id: str) -> JobView:
        return self.views[0]

    def hurry(self) -> Hurry:
        return Hurry()

    async def next_cycle(self, timeout: float | None = None) -> bool:
        if len(self.views) > 1:
            self.views.pop(0)
        await asyncio.sleep(0)
        return True


def queued(state: str, reason: str = "None", node: str = "") -> JobView:
    job = QueuedJob("7", "scitex-nb-alice", "alice", state, reason, node, "N/A", "N/A", "t")
    return JobView("queued", queued=job)


ENDED = JobView("finished", finished=FinishedJob("7", "FAILED", "None", "1:0"))


def waits(watcher: Any) -> tuple[StartWaits, list[tuple[str, int]]]:
    said: list[tuple[str, int]] = []
    return StartWaits(
        watcher, "7", lambda message, progress: said.append((message, progress))
    ), said


async def test_until_running_announces_each_new_pending_reason() -> None:
    watcher = ScriptedWatcher(
        queued("PENDING", "Priority"),
        queued("PENDING", "Priority"),
        queued("PENDING", "Resources"),
        queued("RUNNING", node="n3"),
    )
    wait, said = waits(watcher)
    assert await wait.until_running(60, 0.01) == "n3"
    assert said == [
        ("Job 7 waiting in the queue: Priority", 30),
        ("Job 7 waiting in the queue: Resources", 30),
    ]


async def test_a_job_that_ends_in_the_queue_fails_the_start_with_slurms_account() -> None:
    wait, _ = waits(ScriptedWatcher(queued("PENDING"), ENDED))
    with pytest.raises(JobEnded) as e:
        await wait.until_running(60, 0.01)
    assert e.value.exit_reason == "the job failed (state FAILED, exit code 1:0)"
    assert e.value.reason == f"Job 7 ended before the server started: {e.value.exit_reason}"


async def test_waiting_in_the_queue_past_the_limit_fails() -> None:
    wait, _ = waits(ScriptedWatcher(queued("PENDING", "Resources")))
    with pytest.raises(SpawnFailed, match=r"waited 0 s in the queue \(Resources\)"):
        await wait.until_running(0, 0.01)


async def test_for_port_returns_the_reported_port() -> None:
    wait, _ = waits(ScriptedWatcher(queued("RUNNING", node="n3")))
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.05, port.set_result, 8888)
    assert await wait.for_port(port, 60, ".scitex/logs") == 8888


async def test_for_port_fails_at_once_when_the_job_ends() -> None:
    wait, _ = waits(ScriptedWatcher(ENDED))
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(JobEnded, match=r"see the job log .*\.scitex/logs/notebook-7\.log"):
        await wait.for_port(port, 60, ".scitex/logs")


async def test_until_listening() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wait, _ = waits(ScriptedWatcher(queued("RUNNING", node="n3")))
    async with server:
        await wait.until_listening("127.0.0.1", port, 5)
    # Nothing listens there any more: past the limit, the start fails in the user's words.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(SpawnFailed, match=f"reported port {closed} but did not listen within 0 s"):
        await wait.until_listening("127.0.0.1", closed, 0)

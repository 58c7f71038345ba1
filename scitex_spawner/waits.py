"""The three waits of a start, each read from the hub's shared queue watcher (no SLURM
command of its own): the job in the queue until it runs, the server's port callback, and
the reported port until it accepts connections.

Each returns what it waited for, or raises :class:`~.failures.SpawnFailed` in the user's
words; a job that ends meanwhile raises :class:`JobEnded`, with SLURM's account of the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from scitex_hub.slurm import QueueWatcher

from .failures import SpawnFailed

# Seconds between probes of a reported port, first and at most (see until_listening).
PROBE_FIRST_INTERVAL = 0.02
PROBE_MAX_INTERVAL = 0.25


class JobEnded(SpawnFailed):
    """The job ended before its server was ready; ``exit_reason`` says how (SLURM's word)."""

    def __init__(self, message: str, exit_reason: str) -> None:
        super().__init__(message)
        self.exit_reason = exit_reason


@dataclass
class StartWaits:
    """The waits of one start of job ``job_id``; ``announce(message, progress)`` tells the
    user (the spawn page's progress)."""

    watcher: QueueWatcher
    job_id: str
    announce: Callable[[str, int], None]

    def _ended(self) -> str | None:
        """How the job ended, if SLURM says it has."""
        view = self.watcher.view(self.job_id)
        if view.status == "finished" and view.finished is not None:
            return view.finished.describe()
        return None

    async def until_running(self, timeout: int, poll_interval: float) -> str:
        """The node the job runs on, once it runs; pending reasons are announced as they
        change. Waiting in the queue is no failure until ``timeout``."""
        deadline = time.monotonic() + timeout
        last_reason = None
        with self.watcher.hurry():
            while True:
                view = self.watcher.view(self.job_id)
                if view.status == "queued" and view.queued is not None:
                    job = view.queued
                    if job.running and job.node:
                        return job.node
                    if job.pending and job.reason != last_reason:
                        last_reason = job.reason
                        when = (
                            f", expected start {job.start_time}"
                            if job.start_time not in ("", "N/A")
                            else ""
                        )
                        why = "" if job.reason in ("", "None") else f": {job.reason}"
                        self.announce(f"Job {self.job_id} waiting in the queue{why}{when}", 30)
                elif (ended := self._ended()) is not None:
                    raise JobEnded(
                        f"Job {self.job_id} ended before the server started: {ended}", ended
                    )
                if time.monotonic() > deadline:
                    raise SpawnFailed(
                        f"Job {self.job_id} waited {timeout} s in the queue "
                        f"({last_reason or 'no reason given'}); it was cancelled"
                    )
                await self.watcher.next_cycle(timeout=max(1.0, poll_interval))

    async def for_port(self, port: asyncio.Future[int], timeout: int, log_subdir: str) -> int:
        """The port the server reports (``port`` resolves), while watching its job: a job
        that ends first fails the start at once, not after the whole start-up limit."""
        log_hint = (
            f"see the job log in your data directory ({log_subdir}/notebook-{self.job_id}.log)"
        )
        deadline = time.monotonic() + timeout
        with self.watcher.hurry():
            while True:
                try:
                    return await asyncio.wait_for(
                        asyncio.shield(port),
                        timeout=max(1.0, self.watcher.fast_interval * 2),
                    )
                except asyncio.TimeoutError:
                    pass
                if (ended := self._ended()) is not None:
                    raise JobEnded(
                        f"Job {self.job_id} ended before its server started: {ended}; {log_hint}",
                        ended,
                    )
                if time.monotonic() > deadline:
                    raise SpawnFailed(
                        f"The notebook server in job {self.job_id} did not start within "
                        f"{timeout} s; {log_hint}"
                    )

    async def until_listening(self, address: str, port: int, timeout: int) -> None:
        """Probe the port until it accepts connections.

        The server listens before it reports its port (scitex_server_ext.server_app), so
        the first probe normally succeeds; the probe stays for servers that report
        otherwise, and for a node the hub cannot reach, which it then reports in the
        user's words. A refused connect costs microseconds: probe every 20 ms at first,
        backing off to 0.25 s.
        """
        deadline = time.monotonic() + timeout
        pause = PROBE_FIRST_INTERVAL
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 2)
            except (OSError, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise SpawnFailed(
                        f"The notebook server in job {self.job_id} reported port {port} but "
                        f"did not listen within {timeout} s"
                    ) from None
                if (ended := self._ended()) is not None:
                    raise JobEnded(
                        f"Job {self.job_id} ended while the server started: {ended}", ended
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 1.25, PROBE_MAX_INTERVAL)
                continue
            writer.close()
            return

"""The one queue watcher a hub shares (see :class:`QueueWatcher`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from traitlets import Float
from traitlets.config import LoggingConfigurable

from .client import (
    JOBS_BY_STATE,
    ORPHANS_CANCELLED,
    PENDING_STATES,
    POLL_DURATION,
    POLL_ERRORS,
    RUNNING_STATES,
    FinishedJob,
    QueuedJob,
    SlurmClient,
    SlurmError,
)


@dataclass(frozen=True)
class JobView:
    """What the watcher knows of one job: queued, finished, or unknown."""

    status: str  # "queued" | "finished" | "unknown"
    queued: QueuedJob | None = None
    finished: FinishedJob | None = None


def tagged_for_owner(job: QueuedJob, tag: str) -> bool:
    """Tagged ``tag`` (a hub's ``scitex:hub=<id>:``) for the user who owns it: anyone can
    copy a tag into the comment of a job of their own, but it then names them, not the
    victim."""
    return job.comment.startswith(f"{tag}user={job.user}:")


class QueueWatcher(LoggingConfigurable):
    """One per hub: a single ``squeue`` per cycle, shared by every spawner.

    Spawners :meth:`track` their job ids and read :meth:`view`; none runs
    ``squeue`` itself. While any spawn is waiting for its job to change state
    the watcher polls every ``fast_interval`` seconds, else every ``interval``.
    """

    _shared: ClassVar[dict[tuple[Any, ...], QueueWatcher]] = {}

    interval = Float(10.0, help="Seconds between queue polls.").tag(config=True)
    fast_interval = Float(
        0.5, help="Seconds between queue polls while a spawn waits for its job."
    ).tag(config=True)
    orphan_grace = Float(
        120.0,
        help="""Seconds a job tagged by this hub may stay in the queue unclaimed by any
        server before it is cancelled as an orphan (e.g. after a hub crash during
        sbatch). Counted from the watcher's start too, so a restarted hub first lets
        every server re-adopt its job.""",
    ).tag(config=True)

    def __init__(self, client: SlurmClient, tag: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.tag = tag
        self.jobs: dict[str, QueuedJob] = {}
        self.finished: dict[str, FinishedJob] = {}
        self.tracked: set[str] = set()
        self.node_addrs: dict[str, str] = {}
        self.last_success: float | None = None
        self.last_error = ""
        self.errors = 0
        self.cycles = 0
        self._hurry = 0
        self.started_at = time.monotonic()
        self.unclaimed_since: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._cycle_done = asyncio.Event()
        self._wakeup = asyncio.Event()

    @classmethod
    def shared(cls, client: SlurmClient, tag: str, **kwargs: Any) -> QueueWatcher:
        """The hub's watcher for this SLURM configuration and job tag."""
        key = (type(client), client.slurm_conf, client.bin_dir, tag)
        watcher = cls._shared.get(key)
        if watcher is None or watcher._loop_closed():
            watcher = cls(client, tag, **kwargs)
            cls._shared[key] = watcher
        return watcher

    @classmethod
    def reset_shared(cls) -> None:
        for watcher in cls._shared.values():
            watcher.stop()
        cls._shared.clear()

    def _loop_closed(self) -> bool:
        return self._task is not None and self._task.get_loop().is_closed()

    def is_ours(self, job: QueuedJob) -> bool:
        return tagged_for_owner(job, self.tag)

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def track(self, job_id: str) -> None:
        self.tracked.add(job_id)
        self.ensure_running()

    def untrack(self, job_id: str) -> None:
        self.tracked.discard(job_id)
        self.finished.pop(job_id, None)

    def view(self, job_id: str) -> JobView:
        if job_id in self.jobs:
            return JobView("queued", queued=self.jobs[job_id])
        if job_id in self.finished:
            return JobView("finished", finished=self.finished[job_id])
        return JobView("unknown")

    def node_address(self, node: str) -> str:
        """The address the hub reaches ``node`` at (NodeAddr), else its name."""
        return self.node_addrs.get(node, node)

    async def next_cycle(self, timeout: float | None = None) -> bool:
        """Wait for the next completed poll (successful or not); False on timeout."""
        self.ensure_running()
        event = self._cycle_done
        self._wakeup.set()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def hurry(self) -> _Hurry:
        """Context manager: poll fast while a spawn waits for its job."""
        return _Hurry(self)

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            delay = self.fast_interval if self._hurry else self.interval
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def poll_once(self) -> None:
        started = time.monotonic()
        try:
            await self._refresh()
        except SlurmError as e:
            self.errors += 1
            self.last_error = str(e)
            POLL_ERRORS.inc()
            self.log.warning("Queue watcher: SLURM did not answer (%s); jobs kept as unknown", e)
        except Exception:
            self.errors += 1
            POLL_ERRORS.inc()
            self.log.exception("Queue watcher: unexpected error; jobs kept as unknown")
        finally:
            self.cycles += 1
            POLL_DURATION.observe(time.monotonic() - started)
            done, self._cycle_done = self._cycle_done, asyncio.Event()
            done.set()

    async def _refresh(self) -> None:
        queue = await self.client.queue()
        ours = {job_id: job for job_id, job in queue.items() if self.is_ours(job)}
        unseen_nodes = {job.node for job in ours.values() if job.node} - set(self.node_addrs)
        if unseen_nodes:
            try:
                self.node_addrs = await self.client.node_addresses()
            except SlurmError as e:
                self.log.warning("Queue watcher: cannot read node addresses: %s", e)
        for job_id in sorted(self.tracked - set(ours) - set(self.finished)):
            # Left the queue: ask the controller how it ended. If it cannot
            # say, the job stays unknown and is asked again next cycle.
            try:
                record = await self.client.job_record(job_id)
            except SlurmError as e:
                self.log.warning("Queue watcher: no record for job %s yet: %s", job_id, e)
                continue
            if record is not None:
                self.finished[job_id] = record
        self.jobs = ours
        self.last_success = time.time()
        await self._sweep_orphans(ours)
        counts: dict[str, int] = {}
        for job in ours.values():
            counts[job.state] = counts.get(job.state, 0) + 1
        for state in PENDING_STATES | RUNNING_STATES:
            JOBS_BY_STATE.labels(state=state).set(counts.get(state, 0))

    async def _sweep_orphans(self, ours: dict[str, QueuedJob]) -> None:
        now = time.monotonic()
        for job_id in list(self.unclaimed_since):
            if job_id not in ours or job_id in self.tracked:
                del self.unclaimed_since[job_id]
        for job_id, job in ours.items():
            if job_id in self.tracked:
                continue
            since = self.unclaimed_since.setdefault(job_id, now)
            if min(now - since, now - self.started_at) < self.orphan_grace:
                continue
            try:
                # scancel as the job's owner (the client's one run-as-user prefix).
                prefix = self.client.as_user(job.user)
            except ValueError:
                continue
            self.log.warning(
                "Queue watcher: job %s of %s is tagged by this hub but no server claims it; "
                "cancelling it",
                job_id,
                job.user,
            )
            try:
                await self.client.cancel(job_id, prefix=prefix)
            except SlurmError as e:
                self.log.warning("Queue watcher: cancelling orphan %s failed: %s", job_id, e)
                continue
            ORPHANS_CANCELLED.inc()
            del self.unclaimed_since[job_id]


class _Hurry:
    def __init__(self, watcher: QueueWatcher) -> None:
        self.watcher = watcher

    def __enter__(self) -> QueueWatcher:
        self.watcher._hurry += 1
        self.watcher._wakeup.set()
        return self.watcher

    def __exit__(self, *exc: object) -> None:
        self.watcher._hurry -= 1

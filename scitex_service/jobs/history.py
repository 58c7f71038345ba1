"""The user's jobs: what SLURM lists now, plus what the service recorded.

SLURM is the record of live jobs: a job is ours when its comment starts with
``scitex-job:hub=<hub_id>:`` and SLURM says the user owns it. Listing, the job limit,
cancelling and the log all start from one ``squeue --user=<name>``; nobody else's jobs are
asked for. SLURM forgets a job a few minutes after it ends (``MinJobAge``), so the service
also records each job in ``scitex_compute_jobs``: at submission, and how it ended the first
time it is seen ended. The listing is SLURM's live jobs plus that history; a recorded job
SLURM forgot before its end was seen is listed as ``UNKNOWN``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from scitex_hub.db import store as db
from scitex_hub.db.models import ComputeJobRecord, utcnow
from scitex_hub.jobspecs.compute import JobSite, job_comment
from scitex_hub.slurm import (
    JOB_ID_RE,
    FinishedJob,
    QueueEntry,
    SlurmError,
    parse_slurm_time,
    slurm_reason,
    slurm_time,
    slurm_time_text,
)

from ..handlers import APIError
from .settings import JobSettings

__all__ = ["Job", "JobHistory", "job_model", "recorded_end", "recorded_job"]

# Exit codes of ended jobs kept in memory (each one asked of SLURM once).
MAX_REMEMBERED = 10000
# A recorded job SLURM no longer knows whose end the service never saw (it was down).
UNKNOWN_STATE = "UNKNOWN"
UNKNOWN_REASON = "SLURM forgot the job before the service saw it end"


@dataclass(frozen=True)
class Job:
    """One of the user's jobs: as SLURM lists it now (``live``), else as recorded."""

    entry: QueueEntry
    finished: FinishedJob | None = None
    live: bool = True
    # Where its project is (recorded at submission); None: the user's institution now.
    institution: str | None = None


def job_model(entry: QueueEntry, finished: FinishedJob | None = None) -> dict[str, Any]:
    return {
        "id": entry.job_id,
        "project": entry.project,
        "script": entry.name,
        "state": entry.state,
        "reason": slurm_reason(entry.reason),
        "node": entry.node,
        "submitted_at": slurm_time(entry.submitted_at),
        "started_at": slurm_time(entry.start_time),
        "ended_at": slurm_time(entry.end_time) if entry.final else None,
        # "3:0": exit status 3, no signal (SLURM's notation); null while not ended.
        "exit_code": (finished.exit_code or None) if finished is not None else None,
    }


def recorded_job(row: ComputeJobRecord, site: JobSite) -> Job:
    """A job SLURM no longer lists, from its record: ended as recorded, else ``UNKNOWN``
    (never shown as still running: SLURM would list it)."""
    state = row.final_state or UNKNOWN_STATE
    entry = QueueEntry(
        job_id=row.job_id,
        name=row.script,
        user=row.user,
        state=state,
        reason=(row.reason or "") if row.final_state else UNKNOWN_REASON,
        node=row.node or "",
        submitted_at=slurm_time_text(row.submitted_at),
        start_time=slurm_time_text(row.started_at),
        end_time=slurm_time_text(row.ended_at),
        comment=job_comment(site, row.user, row.project),
    )
    return Job(entry, recorded_end(row), live=False, institution=row.institution)


def recorded_end(row: ComputeJobRecord) -> FinishedJob | None:
    """How a recorded job ended; None while its end has not been seen."""
    if row.final_state is None:
        return None
    return FinishedJob(row.job_id, row.final_state, row.reason or "", row.exit_code or "")


def _newest_first(job: Job) -> int:
    return int(job.entry.job_id.split("_")[0])


class JobHistory(JobSettings):
    """Lists and finds a user's compute jobs, live and recorded."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Exit codes of ended jobs (they never change), so each is asked for once.
        self._finished: dict[str, FinishedJob] = {}

    # -- reading the queue ----------------------------------------------------------------

    async def user_jobs(self, user: str) -> list[QueueEntry]:
        """This user's jobs submitted through the service (any hub_id of ours), newest first."""
        try:
            entries = await self.slurm.user_queue(user)
        except SlurmError as e:
            raise APIError(503, f"SLURM did not answer: {e}") from None
        jobs = [j for j in entries if j.comment.startswith(self.site.tag_prefix)]
        return sorted(jobs, key=lambda j: int(j.job_id.split("_")[0]), reverse=True)

    async def finished(self, entry: QueueEntry) -> FinishedJob | None:
        if not entry.final:
            return None
        if entry.job_id not in self._finished:
            try:
                record = await self.slurm.job_record(entry.job_id)
            except SlurmError as e:
                self.log.warning("No record of job %s: %s", entry.job_id, e)
                return None
            if record is None:
                return None
            self._finished[entry.job_id] = record
            while len(self._finished) > MAX_REMEMBERED:
                # SLURM forgot those long ago (MinJobAge): drop the oldest.
                self._finished.pop(next(iter(self._finished)))
        return self._finished[entry.job_id]

    async def settle(
        self, entry: QueueEntry, row: ComputeJobRecord | None, engine: Engine | None
    ) -> Job:
        """A job SLURM lists, with how it ended: from its record once recorded, else from
        SLURM (then recorded, once, so it outlives SLURM's memory)."""
        institution = row.institution if row is not None else None
        if not entry.final:
            return Job(entry, None, live=True, institution=institution)
        recorded = recorded_end(row) if row is not None else None
        if recorded is not None:
            return Job(entry, recorded, live=True, institution=institution)
        finished = await self.finished(entry)
        if finished is not None and engine is not None:
            await self.record_end(engine, entry, finished)
        return Job(entry, finished, live=True, institution=institution)

    async def record_end(self, engine: Engine, entry: QueueEntry, finished: FinishedJob) -> None:
        # PURGED: scontrol forgot it right after squeue listed it; the state is squeue's.
        exit_code = finished.exit_code if finished.state != "PURGED" else ""
        submitted_at = parse_slurm_time(entry.submitted_at)
        # SLURM's submission time replaces ours (a moment earlier): listed the same after.
        when = {"submitted_at": submitted_at} if submitted_at is not None else {}
        try:
            await asyncio.to_thread(
                db.end_compute_job,
                engine,
                hub_id=self.site.hub_id,
                job_id=entry.job_id,
                user=entry.user,
                final_state=entry.state,
                node=entry.node or None,
                started_at=parse_slurm_time(entry.start_time),
                ended_at=parse_slurm_time(entry.end_time),
                exit_code=exit_code or None,
                reason=slurm_reason(entry.reason) or None,
                **when,
                # A job submitted before the history existed: recorded from SLURM's view.
                submission={
                    "project": entry.project,
                    "script": entry.name,
                    "submitted_at": submitted_at or utcnow(),
                },
            )
        except SQLAlchemyError as e:
            # Shown from SLURM all the same; recorded at the next look.
            self.log.error("Cannot record the end of job %s: %s", entry.job_id, e)

    async def jobs_of(self, user: str, engine: Engine | None) -> list[Job]:
        """The user's jobs: SLURM's, and the newest ``history_limit`` recorded ones SLURM
        no longer lists; one per job id, newest first."""
        rows: list[ComputeJobRecord] = []
        if engine is not None:
            # Read before squeue: every record read was submitted before it ran, so one
            # squeue does not list is a job SLURM forgot, never one too new for it.
            rows = await asyncio.to_thread(
                db.compute_jobs_of,
                engine,
                hub_id=self.site.hub_id,
                user=user,
                limit=self.history_limit,
            )
        live = await self.user_jobs(user)
        records = {row.job_id: row for row in rows}
        older = [e.job_id for e in live if e.final and e.job_id not in records]
        if engine is not None and older:
            # Ended jobs past the history's newest (or from before it): are they recorded?
            for row in await asyncio.to_thread(
                db.compute_jobs_of, engine, hub_id=self.site.hub_id, user=user, job_ids=older
            ):
                records[row.job_id] = row
        jobs = [await self.settle(e, records.get(e.job_id), engine) for e in live]
        listed = {e.job_id for e in live}
        jobs += [recorded_job(row, self.site) for row in rows if row.job_id not in listed]
        return sorted(jobs, key=_newest_first, reverse=True)

    async def models(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        return [job_model(j.entry, j.finished) for j in jobs]

    async def find(self, user: str, job_id: str, engine: Engine | None = None) -> Job:
        """The user's job ``job_id``, live or recorded; 404 for anything else, another
        user's job included (the answer does not say whether it exists)."""
        if JOB_ID_RE.match(job_id):
            row = None
            if engine is not None:
                # Before squeue, as in jobs_of.
                row = await asyncio.to_thread(
                    db.get_compute_job, engine, hub_id=self.site.hub_id, user=user, job_id=job_id
                )
            for entry in await self.user_jobs(user):
                if entry.job_id == job_id:
                    return await self.settle(entry, row, engine)
            if row is not None:
                return recorded_job(row, self.site)
        raise APIError(404, f"{user} has no job {job_id}")

"""Reading and writing our tables: plain blocking functions over an engine.

Callers on an event loop (the hub's spawner, the service's handlers) run them in a
worker thread; the service's scanner runs in its own thread.

One file (over 400 lines): every query over our tables in one place, so a schema change
(a migration in ``migrations/versions``) has one module to follow it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..institutions import Institution
from .models import (
    ComputeJobRecord,
    InstitutionRecord,
    QuotaOverride,
    SpawnRecord,
    UsageMeasurement,
    utcnow,
)

__all__ = [
    "UsageRow",
    "compute_jobs_of",
    "delete_override",
    "effective_limit",
    "end_compute_job",
    "get_compute_job",
    "get_override",
    "insert_compute_job",
    "insert_spawn",
    "latest_usage",
    "latest_usage_of",
    "list_institutions",
    "overrides_of",
    "prune_usage",
    "recent_spawns",
    "record_usage",
    "set_override",
    "sync_institutions",
    "update_spawn",
]


def effective_limit(override: int | None, institution_quota: int) -> int | None:
    """The user's hard limit in bytes: their override, else the institution's quota.

    0 (either one) means no limit, as for ``storage_quota`` and the filesystem tools.
    """
    limit = institution_quota if override is None else override
    return limit or None


# ---- institutions --------------------------------------------------------------


def sync_institutions(engine: Engine, institutions: Mapping[str, Institution]) -> None:
    """Make ``scitex_institutions`` match the site file (added, changed, removed)."""
    now = utcnow()
    with Session(engine) as session, session.begin():
        existing = {row.id: row for row in session.scalars(select(InstitutionRecord))}
        for key, inst in institutions.items():
            row = existing.pop(key, None)
            if row is None:
                row = InstitutionRecord(id=key)
                session.add(row)
            row.name = inst.name
            row.storage_quota_bytes = inst.storage_quota
            row.admins = list(inst.admins)
            row.slurm_account = inst.slurm_account
            row.gitea_org = inst.gitea_org
            row.synced_at = now
        for row in existing.values():
            session.delete(row)


def list_institutions(engine: Engine, ids: Iterable[str] | None = None) -> list[InstitutionRecord]:
    with Session(engine, expire_on_commit=False) as session:
        query = select(InstitutionRecord).order_by(InstitutionRecord.id)
        if ids is not None:
            query = query.where(InstitutionRecord.id.in_(list(ids)))
        return list(session.scalars(query))


# ---- quota overrides -------------------------------------------------------------


def get_override(engine: Engine, user: str) -> QuotaOverride | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(QuotaOverride, user)


def overrides_of(engine: Engine, users: Iterable[str]) -> dict[str, QuotaOverride]:
    names = sorted(set(users))
    if not names:
        return {}
    with Session(engine, expire_on_commit=False) as session:
        rows = session.scalars(select(QuotaOverride).where(QuotaOverride.user.in_(names)))
        return {row.user: row for row in rows}


def set_override(
    engine: Engine, user: str, limit_bytes: int, *, set_by: str, institution: str | None
) -> QuotaOverride:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        row = session.get(QuotaOverride, user)
        if row is None:
            row = QuotaOverride(user=user)
            session.add(row)
        row.limit_bytes = limit_bytes
        row.set_by = set_by
        row.institution = institution
        row.set_at = utcnow()
    return row


def delete_override(engine: Engine, user: str) -> bool:
    """Remove ``user``'s override; ``False`` if there was none."""
    with Session(engine) as session, session.begin():
        result = session.execute(delete(QuotaOverride).where(QuotaOverride.user == user))
        return bool(getattr(result, "rowcount", 0))


# ---- usage -----------------------------------------------------------------------


@dataclass(frozen=True)
class UsageRow:
    user: str
    institution: str
    used_bytes: int
    measured_at: datetime
    source: str
    files: int | None = None
    errors: int = 0


def _row(m: UsageMeasurement) -> UsageRow:
    return UsageRow(
        user=m.user,
        institution=m.institution,
        used_bytes=m.used_bytes,
        measured_at=m.measured_at,
        source=m.source,
        files=m.files,
        errors=m.errors,
    )


def record_usage(engine: Engine, rows: Sequence[UsageRow]) -> None:
    if not rows:
        return
    with Session(engine) as session, session.begin():
        session.add_all(
            UsageMeasurement(
                user=r.user,
                institution=r.institution,
                used_bytes=r.used_bytes,
                files=r.files,
                errors=r.errors,
                measured_at=r.measured_at,
                source=r.source,
            )
            for r in rows
        )


def _latest_ids() -> Any:
    # Rows are inserted in the order they were measured: the largest id is the newest.
    return select(func.max(UsageMeasurement.id)).group_by(
        UsageMeasurement.user, UsageMeasurement.institution
    )


def latest_usage(engine: Engine, user: str, institution: str) -> UsageRow | None:
    """The newest measurement of ``<data_root>/<institution>/<user>``."""
    with Session(engine) as session:
        row = session.scalars(
            select(UsageMeasurement)
            .where(UsageMeasurement.user == user, UsageMeasurement.institution == institution)
            .order_by(UsageMeasurement.id.desc())
            .limit(1)
        ).first()
        return _row(row) if row is not None else None


def latest_usage_of(engine: Engine, institutions: Iterable[str]) -> dict[str, dict[str, UsageRow]]:
    """``{institution: {user: newest measurement}}`` for the given institutions."""
    ids = sorted(set(institutions))
    out: dict[str, dict[str, UsageRow]] = {i: {} for i in ids}
    if not ids:
        return out
    with Session(engine) as session:
        rows = session.scalars(
            select(UsageMeasurement).where(
                UsageMeasurement.institution.in_(ids), UsageMeasurement.id.in_(_latest_ids())
            )
        )
        for m in rows:
            out[m.institution][m.user] = _row(m)
    return out


def prune_usage(engine: Engine, older_than: datetime) -> int:
    """Delete measurements older than ``older_than``, except each user's newest."""
    with Session(engine) as session, session.begin():
        result = session.execute(
            delete(UsageMeasurement).where(
                UsageMeasurement.measured_at < older_than,
                UsageMeasurement.id.not_in(_latest_ids()),
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)


# ---- spawn records ----------------------------------------------------------------

SPAWN_FIELDS = frozenset(
    {
        "institution",
        "profile",
        "resources",
        "image",
        "image_digest",
        "job_id",
        "node",
        "submitted_at",
        "ready_at",
        "ended_at",
        "end_reason",
    }
)


def insert_spawn(
    engine: Engine,
    *,
    hub_id: str,
    user: str,
    server_name: str,
    started_at: datetime,
    **fields: Any,
) -> int:
    unknown = set(fields) - SPAWN_FIELDS
    if unknown:
        raise TypeError(f"unknown spawn record fields: {sorted(unknown)}")
    with Session(engine) as session, session.begin():
        record = SpawnRecord(
            hub_id=hub_id, user=user, server_name=server_name, started_at=started_at, **fields
        )
        session.add(record)
        session.flush()
        return int(record.id)


def update_spawn(
    engine: Engine,
    *,
    record_id: int | None = None,
    hub_id: str = "",
    user: str = "",
    job_id: str = "",
    **fields: Any,
) -> int:
    """Update one record: by id (recording ``job_id`` in it), else the record of
    ``job_id`` of this hub and user.

    An end (``ended_at``) is written only once: the first reason stays.
    Returns the number of records changed.
    """
    unknown = set(fields) - SPAWN_FIELDS
    if unknown:
        raise TypeError(f"unknown spawn record fields: {sorted(unknown)}")
    query = update(SpawnRecord)
    if record_id is not None:
        query = query.where(SpawnRecord.id == record_id)
        if job_id:
            fields["job_id"] = job_id
    elif job_id:
        query = query.where(
            SpawnRecord.job_id == job_id, SpawnRecord.hub_id == hub_id, SpawnRecord.user == user
        )
    else:
        return 0
    if "ended_at" in fields:
        query = query.where(SpawnRecord.ended_at.is_(None))
    with Session(engine) as session, session.begin():
        result = session.execute(query.values(**fields))
        return int(getattr(result, "rowcount", 0) or 0)


def recent_spawns(
    engine: Engine,
    *,
    user: str | None = None,
    institutions: Iterable[str] | None = None,
    limit: int = 50,
) -> list[SpawnRecord]:
    with Session(engine, expire_on_commit=False) as session:
        query = select(SpawnRecord).order_by(SpawnRecord.started_at.desc(), SpawnRecord.id.desc())
        if user is not None:
            query = query.where(SpawnRecord.user == user)
        if institutions is not None:
            query = query.where(SpawnRecord.institution.in_(sorted(set(institutions))))
        return list(session.scalars(query.limit(limit)))


# ---- compute jobs -------------------------------------------------------------------

COMPUTE_JOB_FIELDS = frozenset({"institution", "resources"})
# How far SLURM's submission time (recorded from a listing) may precede ours.
RECENT_SUBMISSION = timedelta(hours=1)
COMPUTE_JOB_END_FIELDS = frozenset(
    {"node", "submitted_at", "started_at", "ended_at", "exit_code", "reason"}
)


def insert_compute_job(
    engine: Engine,
    *,
    hub_id: str,
    job_id: str,
    user: str,
    project: str,
    script: str,
    submitted_at: datetime,
    **fields: Any,
) -> int:
    """Record a job SLURM just accepted.

    A record of this job already there is the user's, from a listing that saw it end
    before this insert (a job of a second): completed, its end kept. Any other record of
    the same ``job_id`` of this hub is replaced: SLURM gave the id again (its state was
    reset), so the old job is not this one.
    """
    unknown = set(fields) - COMPUTE_JOB_FIELDS
    if unknown:
        raise TypeError(f"unknown compute job fields: {sorted(unknown)}")
    this_job = (ComputeJobRecord.hub_id == hub_id, ComputeJobRecord.job_id == job_id)
    with Session(engine) as session, session.begin():
        existing = session.scalars(select(ComputeJobRecord).where(*this_job)).first()
        if (
            existing is not None
            and existing.user == user
            and existing.submitted_at >= submitted_at - RECENT_SUBMISSION
        ):
            existing.project = project
            existing.script = script
            for name, value in fields.items():
                setattr(existing, name, value)
            return int(existing.id)
        # A DELETE statement now, before the INSERT (the unit of work would order them
        # the other way round and break the unique index).
        session.execute(delete(ComputeJobRecord).where(*this_job))
        record = ComputeJobRecord(
            hub_id=hub_id,
            job_id=job_id,
            user=user,
            project=project,
            script=script,
            submitted_at=submitted_at,
            **fields,
        )
        session.add(record)
        session.flush()
        return int(record.id)


def end_compute_job(
    engine: Engine,
    *,
    hub_id: str,
    job_id: str,
    user: str,
    final_state: str,
    submission: Mapping[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Record how ``user``'s job ended, once: the first final state recorded stays.

    A job without a record (submitted before this table existed) gets one from
    ``submission`` (``project``, ``script``, ``submitted_at``), if given.
    Returns whether anything was written.
    """
    unknown = set(fields) - COMPUTE_JOB_END_FIELDS
    if unknown:
        raise TypeError(f"unknown compute job end fields: {sorted(unknown)}")
    this_job = (ComputeJobRecord.hub_id == hub_id, ComputeJobRecord.job_id == job_id)
    try:
        with Session(engine) as session, session.begin():
            result = session.execute(
                update(ComputeJobRecord)
                .where(
                    *this_job,
                    ComputeJobRecord.user == user,
                    ComputeJobRecord.final_state.is_(None),
                )
                .values(final_state=final_state, **fields)
            )
            if getattr(result, "rowcount", 0):
                return True
            if submission is None or session.scalar(select(ComputeJobRecord.id).where(*this_job)):
                return False
            session.add(
                ComputeJobRecord(
                    hub_id=hub_id,
                    job_id=job_id,
                    user=user,
                    final_state=final_state,
                    **{**submission, **fields},
                )
            )
    except IntegrityError:
        # Another request recorded it between our check and our insert: theirs stays.
        return False
    return True


def get_compute_job(
    engine: Engine, *, hub_id: str, user: str, job_id: str
) -> ComputeJobRecord | None:
    """``user``'s job ``job_id`` of this hub; ``None`` for anyone else's."""
    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(
            select(ComputeJobRecord).where(
                ComputeJobRecord.hub_id == hub_id,
                ComputeJobRecord.job_id == job_id,
                ComputeJobRecord.user == user,
            )
        ).first()


def compute_jobs_of(
    engine: Engine,
    *,
    hub_id: str,
    user: str,
    limit: int = 50,
    job_ids: Iterable[str] | None = None,
) -> list[ComputeJobRecord]:
    """``user``'s last ``limit`` jobs of this hub, newest first; with ``job_ids``, only
    those (any age)."""
    query = select(ComputeJobRecord).where(
        ComputeJobRecord.hub_id == hub_id, ComputeJobRecord.user == user
    )
    if job_ids is not None:
        ids = sorted(set(job_ids))
        if not ids:
            return []
        query = query.where(ComputeJobRecord.job_id.in_(ids))
    else:
        query = query.order_by(
            ComputeJobRecord.submitted_at.desc(), ComputeJobRecord.id.desc()
        ).limit(limit)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query))

"""Our own tables, beside JupyterHub's in the same database (all prefixed ``scitex_``).

Schema changes go through the migrations in ``migrations/versions`` (see
:func:`scitex_hub.db.migrate.upgrade`); a test checks these models against them.
Times are stored as naive UTC (as JupyterHub stores its own) and come back aware.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, MetaData, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "ComputeJobRecord",
    "InstitutionRecord",
    "QuotaOverride",
    "SpawnRecord",
    "UTCDateTime",
    "UsageMeasurement",
    "utcnow",
]

# 2**63 - 1: what a BIGINT column holds.
MAX_BYTES = 9_223_372_036_854_775_807
USER_NAME_LENGTH = 255
INSTITUTION_ID_LENGTH = 63


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; naive UTC in the column."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime cannot be stored: give it a timezone")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    # Our own metadata: JupyterHub's tables are not ours to create or migrate.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class InstitutionRecord(Base):
    """An institution as declared in ``scitex.yaml``, synced when the service starts."""

    __tablename__ = "scitex_institutions"

    id: Mapped[str] = mapped_column(String(INSTITUTION_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    storage_quota_bytes: Mapped[int] = mapped_column(BigInteger)
    admins: Mapped[list[str]] = mapped_column(JSON)
    slurm_account: Mapped[str | None] = mapped_column(String(64))
    gitea_org: Mapped[str | None] = mapped_column(String(100))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QuotaOverride(Base):
    """A per-user storage limit set by an admin through the service's API.

    ``limit_bytes`` 0 means "no limit", as for ``storage_quota`` and the filesystem tools.
    """

    __tablename__ = "scitex_quota_overrides"

    user: Mapped[str] = mapped_column(String(USER_NAME_LENGTH), primary_key=True)
    limit_bytes: Mapped[int] = mapped_column(BigInteger)
    # The user's institution when it was set (for the record; the limit follows the user).
    institution: Mapped[str | None] = mapped_column(String(INSTITUTION_ID_LENGTH))
    set_by: Mapped[str] = mapped_column(String(USER_NAME_LENGTH))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsageMeasurement(Base):
    """One measurement of ``<data_root>/<institution>/<user>`` by the service's scanner."""

    __tablename__ = "scitex_usage"
    __table_args__ = (
        Index("ix_scitex_usage_user_measured_at", "user", "measured_at"),
        Index("ix_scitex_usage_institution_measured_at", "institution", "measured_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(USER_NAME_LENGTH))
    institution: Mapped[str] = mapped_column(String(INSTITUTION_ID_LENGTH))
    used_bytes: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[int | None] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(32))


class SpawnRecord(Base):
    """What one start of a notebook server ran: its recipe, job, node and times."""

    __tablename__ = "scitex_spawns"
    __table_args__ = (
        Index("ix_scitex_spawns_user_started_at", "user", "started_at"),
        Index("ix_scitex_spawns_institution_started_at", "institution", "started_at"),
        Index("ix_scitex_spawns_job_id", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hub_id: Mapped[str] = mapped_column(String(32))
    user: Mapped[str] = mapped_column(String(USER_NAME_LENGTH))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    institution: Mapped[str | None] = mapped_column(String(INSTITUTION_ID_LENGTH))
    profile: Mapped[str | None] = mapped_column(String(64))
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    image: Mapped[str | None] = mapped_column(Text)
    image_digest: Mapped[str | None] = mapped_column(String(80))
    job_id: Mapped[str | None] = mapped_column(String(32))
    node: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(Text)


class ComputeJobRecord(Base):
    """A compute job submitted through the service (docs/jobs.md), kept after SLURM forgets
    it (``MinJobAge``): the submission, then how it ended, written once when first seen.

    ``final_state`` is ``None`` until the service has seen the job end; a record SLURM no
    longer knows that still has none ended while nobody looked (listed as ``UNKNOWN``).
    """

    __tablename__ = "scitex_compute_jobs"
    __table_args__ = (
        # SLURM's job ids are unique per cluster, i.e. per hub_id (its job tag).
        Index("ix_scitex_compute_jobs_hub_id_job_id", "hub_id", "job_id", unique=True),
        Index("ix_scitex_compute_jobs_user_submitted_at", "user", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hub_id: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str] = mapped_column(String(32))
    user: Mapped[str] = mapped_column(String(USER_NAME_LENGTH))
    institution: Mapped[str | None] = mapped_column(String(INSTITUTION_ID_LENGTH))
    project: Mapped[str] = mapped_column(String(100))
    # Relative to the project (at most 1024 characters: service.jobs.MAX_SCRIPT_LENGTH).
    script: Mapped[str] = mapped_column(Text)
    # The resolved resources (profile, partition, cpus, memory, runtime, ...).
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    node: Mapped[str | None] = mapped_column(String(255))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    final_state: Mapped[str | None] = mapped_column(String(32))
    # SLURM's "status:signal" ("3:0").
    exit_code: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)

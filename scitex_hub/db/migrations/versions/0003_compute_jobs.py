"""Compute jobs: each job submitted through the service, and how it ended, after SLURM forgets it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scitex_compute_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hub_id", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("institution", sa.String(63), nullable=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("resources", sa.JSON(), nullable=True),
        sa.Column("node", sa.String(255), nullable=True),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("final_state", sa.String(32), nullable=True),
        sa.Column("exit_code", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scitex_compute_jobs"),
    )
    op.create_index(
        "ix_scitex_compute_jobs_hub_id_job_id",
        "scitex_compute_jobs",
        ["hub_id", "job_id"],
        unique=True,
    )
    op.create_index(
        "ix_scitex_compute_jobs_user_submitted_at", "scitex_compute_jobs", ["user", "submitted_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_scitex_compute_jobs_user_submitted_at", table_name="scitex_compute_jobs")
    op.drop_index("ix_scitex_compute_jobs_hub_id_job_id", table_name="scitex_compute_jobs")
    op.drop_table("scitex_compute_jobs")

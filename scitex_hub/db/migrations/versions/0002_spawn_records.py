"""Spawn records: each start's recipe (profile, resources, image and digest), job, node, times.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scitex_spawns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hub_id", sa.String(32), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("server_name", sa.String(255), nullable=False),
        sa.Column("institution", sa.String(63), nullable=True),
        sa.Column("profile", sa.String(64), nullable=True),
        sa.Column("resources", sa.JSON(), nullable=True),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("image_digest", sa.String(80), nullable=True),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("node", sa.String(255), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=True),
        sa.Column("ready_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scitex_spawns"),
    )
    op.create_index("ix_scitex_spawns_user_started_at", "scitex_spawns", ["user", "started_at"])
    op.create_index(
        "ix_scitex_spawns_institution_started_at", "scitex_spawns", ["institution", "started_at"]
    )
    op.create_index("ix_scitex_spawns_job_id", "scitex_spawns", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_scitex_spawns_job_id", table_name="scitex_spawns")
    op.drop_index("ix_scitex_spawns_institution_started_at", table_name="scitex_spawns")
    op.drop_index("ix_scitex_spawns_user_started_at", table_name="scitex_spawns")
    op.drop_table("scitex_spawns")

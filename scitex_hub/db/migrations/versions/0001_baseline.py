"""Baseline: institutions, per-user quota overrides, usage measurements.

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scitex_institutions",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("storage_quota_bytes", sa.BigInteger(), nullable=False),
        sa.Column("admins", sa.JSON(), nullable=False),
        sa.Column("slurm_account", sa.String(64), nullable=True),
        sa.Column("gitea_org", sa.String(100), nullable=True),
        sa.Column("synced_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scitex_institutions"),
    )
    op.create_table(
        "scitex_quota_overrides",
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("limit_bytes", sa.BigInteger(), nullable=False),
        sa.Column("institution", sa.String(63), nullable=True),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user", name="pk_scitex_quota_overrides"),
    )
    op.create_table(
        "scitex_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("institution", sa.String(63), nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.BigInteger(), nullable=True),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("measured_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scitex_usage"),
    )
    op.create_index("ix_scitex_usage_user_measured_at", "scitex_usage", ["user", "measured_at"])
    op.create_index(
        "ix_scitex_usage_institution_measured_at", "scitex_usage", ["institution", "measured_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_scitex_usage_institution_measured_at", table_name="scitex_usage")
    op.drop_index("ix_scitex_usage_user_measured_at", table_name="scitex_usage")
    op.drop_table("scitex_usage")
    op.drop_table("scitex_quota_overrides")
    op.drop_table("scitex_institutions")

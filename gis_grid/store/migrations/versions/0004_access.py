"""Users with token hashes and roles, and the audit log of writes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

S = "gis_grid"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("staff_id", sa.Text),
        sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("revoked_at", sa.Text),
        sa.CheckConstraint(
            "role IN ('admin', 'planner', 'supervisor', 'leadership', 'grid_worker')",
            name="users_role",
        ),
        schema=S,
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("revision", sa.BigInteger),
        sa.Column("detail", sa.Text, nullable=False),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("audit", schema=S)
    op.drop_table("users", schema=S)

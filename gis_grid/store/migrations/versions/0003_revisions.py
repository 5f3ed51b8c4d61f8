"""Revision log of boundary changes and rebalancing proposals.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

S = "gis_grid"


def upgrade() -> None:
    op.create_table(
        "revisions",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("community_code", sa.Text, nullable=False),
        sa.Column("operation", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
        sa.Column("author", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("undoes", sa.BigInteger),
        sa.Column("grids_changed", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("community_code", "id", name="revisions_pkey"),
        schema=S,
    )
    op.create_table(
        "proposals",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("community_code", sa.Text, nullable=False),
        sa.Column("parent_code", sa.Text, nullable=False),
        sa.Column("operation", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("revision", sa.BigInteger),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("community_code", "id", name="proposals_pkey"),
        sa.CheckConstraint("status IN ('open', 'accepted', 'discarded')", name="proposals_status"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("proposals", schema=S)
    op.drop_table("revisions", schema=S)

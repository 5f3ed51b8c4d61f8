"""Tokens that expire, when each user last used theirs, and the store's own notes.

``meta`` keeps what a load that is still under way has done (a ``copy`` or a
``demo`` killed midway is finished by running it again; ``validate`` says so).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("expires_at", sa.Text()), schema="gis_grid")
    op.add_column("users", sa.Column("last_used_at", sa.Text()), schema="gis_grid")
    op.create_table(
        "meta",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        schema="gis_grid",
    )


def downgrade() -> None:
    op.drop_table("meta", schema="gis_grid")
    op.drop_column("users", "last_used_at", schema="gis_grid")
    op.drop_column("users", "expires_at", schema="gis_grid")

"""Registry of feature layers (their tables are made from each layer's declared schema).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "gis_grid"


def upgrade() -> None:
    op.create_table(
        "layers",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        schema=S,
    )


def downgrade() -> None:
    op.execute(
        "DO $$ DECLARE n text; BEGIN FOR n IN SELECT name FROM gis_grid.layers LOOP "
        "EXECUTE format('DROP TABLE IF EXISTS gis_grid.%I', n); END LOOP; END $$"
    )
    op.drop_table("layers", schema=S)

"""Each layer's own time (its first time column: an incident's report time) is indexed,
so a week of a million incidents is read without a pass over the rest.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _time_columns():
    rows = op.get_bind().execute(sa.text("SELECT name, schema FROM gis_grid.layers")).fetchall()
    for name, text in rows:
        kinds = json.loads(text)["kinds"]
        column = next((c for c, k in kinds.items() if k == "time"), None)
        if column is not None:
            yield name, column


def upgrade() -> None:
    for name, column in _time_columns():
        op.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}_{column}" ON gis_grid."{name}" ("{column}")'
        )


def downgrade() -> None:
    for name, column in _time_columns():
        op.execute(f'DROP INDEX IF EXISTS gis_grid."{name}_{column}"')

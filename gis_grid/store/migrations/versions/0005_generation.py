"""A sequence every write advances: caches (tiles, lookup indexes) in any process see it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE gis_grid.generation")
    op.execute("SELECT nextval('gis_grid.generation')")  # last_value is then defined


def downgrade() -> None:
    op.execute("DROP SEQUENCE gis_grid.generation")

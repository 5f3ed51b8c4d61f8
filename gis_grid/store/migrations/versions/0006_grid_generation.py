"""A sequence only grid, staff and assignment writes advance (not feature writes).

In-process point-lookup indexes key on it: incidents arriving every second do
not make every process rebuild its grids.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE gis_grid.grid_generation")
    op.execute("SELECT nextval('gis_grid.grid_generation')")


def downgrade() -> None:
    op.execute("DROP SEQUENCE gis_grid.grid_generation")

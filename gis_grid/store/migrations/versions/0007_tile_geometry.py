"""Grids kept in Web Mercator too, with a spatial index per level: what tiles read.

A vector tile of a grid level reads one level's polygons in Web Mercator. With
the lon/lat geometry only, every tile transformed every polygon again and
scanned one GiST index holding all five levels (a z12 tile of courtyards
walked ~58,000 index entries to keep ~2,300). ``geom_merc`` is computed by
the database from ``geom`` on every write (a stored generated column, so no
writer can forget it) and each level has a partial GiST index on it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LEVELS = ("community", "area", "courtyard", "building", "unit")


def upgrade() -> None:
    op.execute(
        "ALTER TABLE gis_grid.grids ADD COLUMN geom_merc geometry(MultiPolygon, 3857) "
        "GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED"
    )
    for level in LEVELS:
        op.execute(
            f"CREATE INDEX grids_tile_{level} ON gis_grid.grids USING gist (geom_merc) "
            f"WHERE level = '{level}'"
        )
    op.execute("ANALYZE gis_grid.grids")


def downgrade() -> None:
    for level in LEVELS:
        op.execute(f"DROP INDEX gis_grid.grids_tile_{level}")
    op.execute("ALTER TABLE gis_grid.grids DROP COLUMN geom_merc")

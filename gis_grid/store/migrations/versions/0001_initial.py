"""Initial schema: grids, their subdivided parts and history, staff, assignments.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "gis_grid"
LEVELS = "('community', 'area', 'courtyard', 'building', 'unit')"
ROLES = "('grid_leader', 'grid_worker', 'building_head', 'unit_head', 'supervisor')"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "grids",
        sa.Column("community_code", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("parent_code", sa.Text),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("households", sa.Integer, nullable=False, server_default="0"),
        sa.Column("residents", sa.Integer, nullable=False, server_default="0"),
        sa.Column("special_care", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.PrimaryKeyConstraint("community_code", "code", name="grids_pkey"),
        sa.ForeignKeyConstraint(
            ["community_code", "parent_code"],
            [f"{S}.grids.community_code", f"{S}.grids.code"],
            name="grids_parent_fkey",
        ),
        sa.CheckConstraint(
            "code ~ '^[0-9]+$' AND length(code) IN (12, 15, 18, 21, 23) "
            "AND left(code, 12) = community_code",
            name="grids_code_format",
        ),
        sa.CheckConstraint(
            "(length(code) = 12 AND parent_code IS NULL) OR "
            "(parent_code = left(code, length(code) - CASE WHEN length(code) = 23 THEN 2 "
            "ELSE 3 END))",
            name="grids_parent_from_code",
        ),
        sa.CheckConstraint(f"level IN {LEVELS}", name="grids_level"),
        sa.CheckConstraint(
            "households >= 0 AND residents >= 0 AND special_care >= 0", name="grids_counts"
        ),
        sa.CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="grids_valid_geom"),
        schema=S,
    )
    op.create_index("grids_geom_gist", "grids", ["geom"], schema=S, postgresql_using="gist")
    op.create_index("grids_parent", "grids", ["community_code", "parent_code"], schema=S)
    op.create_index("grids_level", "grids", ["level"], schema=S)
    op.create_table(
        "grid_parts",
        sa.Column("community_code", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("geom", Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_code", "code"],
            [f"{S}.grids.community_code", f"{S}.grids.code"],
            name="grid_parts_grid_fkey",
            ondelete="CASCADE",
        ),
        schema=S,
    )
    op.create_index(
        "grid_parts_geom_gist", "grid_parts", ["geom"], schema=S, postgresql_using="gist"
    )
    op.create_index("grid_parts_grid", "grid_parts", ["community_code", "code"], schema=S)
    op.create_table(
        "grid_history",
        sa.Column("community_code", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("parent_code", sa.Text),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("households", sa.Integer, nullable=False),
        sa.Column("residents", sa.Integer, nullable=False),
        sa.Column("special_care", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("replaced_at", sa.Text, nullable=False),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.PrimaryKeyConstraint("community_code", "code", "version", name="grid_history_pkey"),
        schema=S,
    )
    op.create_table(
        "staff",
        sa.Column("staff_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("phone", sa.Text, nullable=False, server_default=""),
        sa.CheckConstraint(f"role IN {ROLES}", name="staff_role"),
        schema=S,
    )
    op.create_table(
        "assignments",
        sa.Column("community_code", sa.Text, nullable=False),
        sa.Column("staff_id", sa.Text, nullable=False),
        sa.Column("grid_code", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date),
        sa.ForeignKeyConstraint(
            ["community_code", "grid_code"],
            [f"{S}.grids.community_code", f"{S}.grids.code"],
            name="assignments_grid_fkey",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], [f"{S}.staff.staff_id"], name="assignments_staff_fkey"
        ),
        sa.CheckConstraint(f"role IN {ROLES}", name="assignments_role"),
        sa.CheckConstraint("end_date IS NULL OR end_date >= start_date", name="assignments_dates"),
        schema=S,
    )
    op.create_index("assignments_grid", "assignments", ["community_code", "grid_code"], schema=S)
    op.create_index("assignments_staff", "assignments", ["staff_id"], schema=S)


def downgrade() -> None:
    for table in ("assignments", "staff", "grid_history", "grid_parts", "grids"):
        op.drop_table(table, schema=S)

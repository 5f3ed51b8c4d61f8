"""The PostGIS schema as GeoAlchemy2 models; the Alembic migrations build exactly this.

Every large table carries ``community_code`` and every key and reference
includes it, so a deployment can distribute the tables by community (Citus
``create_distributed_table(..., 'community_code')``) without a constraint that
crosses communities. ``staff``, ``users`` and ``layers`` are small and become
reference tables. The layers' tables (made at run time) and the case log are
partitioned by community code (:mod:`~gis_grid.store.postgis.partitions`).

A test compares these models with a migrated database (Alembic autogenerate
must find no difference), so a schema change is a new migration plus a change
here.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "gis_grid"
metadata = MetaData(schema=SCHEMA)

_LEVEL_KEYS = ("community", "area", "courtyard", "building", "unit")
_LEVELS = "(" + ", ".join(f"'{k}'" for k in _LEVEL_KEYS) + ")"
_ROLES = "('grid_leader', 'grid_worker', 'building_head', 'unit_head', 'supervisor')"

grids = Table(
    "grids",
    metadata,
    Column("community_code", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("parent_code", Text),
    Column("level", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("households", Integer, nullable=False, server_default="0"),
    Column("residents", Integer, nullable=False, server_default="0"),
    Column("special_care", Integer, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("updated_at", Text, nullable=False),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
    #: The same polygons in Web Mercator, kept by the database (migration 0007): what
    #: vector tiles read, through one partial GiST index per level.
    Column(
        "geom_merc",
        Geometry("MULTIPOLYGON", srid=3857, spatial_index=False),
        Computed("ST_Transform(geom, 3857)", persisted=True),
    ),
    PrimaryKeyConstraint("community_code", "code", name="grids_pkey"),
    ForeignKeyConstraint(
        ["community_code", "parent_code"],
        ["gis_grid.grids.community_code", "gis_grid.grids.code"],
        name="grids_parent_fkey",
    ),
    CheckConstraint(
        "code ~ '^[0-9]+$' AND length(code) IN (12, 15, 18, 21, 23) "
        "AND left(code, 12) = community_code",
        name="grids_code_format",
    ),
    CheckConstraint(
        "(length(code) = 12 AND parent_code IS NULL) OR "
        "(parent_code = left(code, length(code) - CASE WHEN length(code) = 23 THEN 2 ELSE 3 END))",
        name="grids_parent_from_code",
    ),
    CheckConstraint(f"level IN {_LEVELS}", name="grids_level"),
    CheckConstraint(
        "households >= 0 AND residents >= 0 AND special_care >= 0", name="grids_counts"
    ),
    CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="grids_valid_geom"),
)
Index("grids_geom_gist", grids.c.geom, postgresql_using="gist")
Index("grids_parent", grids.c.community_code, grids.c.parent_code)
Index("grids_level", grids.c.level)
for _level in _LEVEL_KEYS:
    Index(
        f"grids_tile_{_level}",
        grids.c.geom_merc,
        postgresql_using="gist",
        postgresql_where=grids.c.level == _level,
    )

#: Polygons cut into pieces of at most 64 vertices (ST_Subdivide): point lookups
#: test small pieces instead of whole communities.
grid_parts = Table(
    "grid_parts",
    metadata,
    Column("community_code", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("level", Text, nullable=False),
    Column("geom", Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False),
    ForeignKeyConstraint(
        ["community_code", "code"],
        ["gis_grid.grids.community_code", "gis_grid.grids.code"],
        name="grid_parts_grid_fkey",
        ondelete="CASCADE",
    ),
)
Index("grid_parts_geom_gist", grid_parts.c.geom, postgresql_using="gist")
Index("grid_parts_grid", grid_parts.c.community_code, grid_parts.c.code)

#: Earlier versions of grids: one row per replaced version, never edited.
grid_history = Table(
    "grid_history",
    metadata,
    Column("community_code", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("parent_code", Text),
    Column("level", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("households", Integer, nullable=False),
    Column("residents", Integer, nullable=False),
    Column("special_care", Integer, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("replaced_at", Text, nullable=False),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
    PrimaryKeyConstraint("community_code", "code", "version", name="grid_history_pkey"),
)

staff = Table(
    "staff",
    metadata,
    Column("staff_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("phone", Text, nullable=False, server_default=""),
    CheckConstraint(f"role IN {_ROLES}", name="staff_role"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("community_code", Text, nullable=False),
    Column("staff_id", Text, nullable=False),
    Column("grid_code", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date),
    ForeignKeyConstraint(
        ["community_code", "grid_code"],
        ["gis_grid.grids.community_code", "gis_grid.grids.code"],
        name="assignments_grid_fkey",
    ),
    ForeignKeyConstraint(["staff_id"], ["gis_grid.staff.staff_id"], name="assignments_staff_fkey"),
    CheckConstraint(f"role IN {_ROLES}", name="assignments_role"),
    CheckConstraint("end_date IS NULL OR end_date >= start_date", name="assignments_dates"),
)
Index("assignments_grid", assignments.c.community_code, assignments.c.grid_code)
Index("assignments_staff", assignments.c.staff_id)

#: The feature layers the database holds (the layer tables themselves are created
#: from each layer's declared schema when it is first imported, so the core's
#: migrations name no layer).
layers = Table(
    "layers",
    metadata,
    Column("name", Text, primary_key=True),
    Column("schema", Text, nullable=False),
    Column("created_at", Text, nullable=False),
)

#: The revision log: one row per boundary change, with what it replaced and
#: wrote (zlib-compressed JSON, see :mod:`gis_grid.store.revisions`), so any earlier
#: state of a community can be rebuilt, restored and compared.
revisions = Table(
    "revisions",
    metadata,
    Column("id", BigInteger, Identity(), nullable=False),
    Column("community_code", Text, nullable=False),
    Column("operation", Text, nullable=False),
    Column("summary", Text, nullable=False, server_default=""),
    Column("author", Text, nullable=False, server_default=""),
    Column("created_at", Text, nullable=False),
    Column("undoes", BigInteger),
    Column("grids_changed", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    PrimaryKeyConstraint("community_code", "id", name="revisions_pkey"),
)

#: Rebalancing proposals: a planned change kept for review, then accepted or discarded.
proposals = Table(
    "proposals",
    metadata,
    Column("id", BigInteger, Identity(), nullable=False),
    Column("community_code", Text, nullable=False),
    Column("parent_code", Text, nullable=False),
    Column("operation", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("author", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False, server_default="open"),
    Column("params", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("revision", BigInteger),
    Column("payload", LargeBinary, nullable=False),
    PrimaryKeyConstraint("community_code", "id", name="proposals_pkey"),
    CheckConstraint("status IN ('open', 'accepted', 'discarded')", name="proposals_status"),
)

#: Users of the platform: a role and the SHA-256 of their token (never the token).
users = Table(
    "users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("staff_id", Text),
    Column("token_sha256", Text, nullable=False, unique=True),
    Column("created_at", Text, nullable=False),
    Column("revoked_at", Text),
    Column("expires_at", Text),
    Column("last_used_at", Text),
    CheckConstraint(
        "role IN ('admin', 'planner', 'supervisor', 'leadership', 'grid_worker', 'reporter')",
        name="users_role",
    ),
)

#: The store's own notes (key → JSON): a load under way and what it has done.
meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

#: Every write through the web application: who, what, when, and what it changed.
audit = Table(
    "audit",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("revision", BigInteger),
    Column("detail", Text, nullable=False),
)

#: The case log (migration 0009): one row per step of a case, appended, never changed;
#: partitioned by community (migration 0011, see :mod:`~gis_grid.store.postgis.partitions`:
#: ``''`` is the key of a case in no community).
case_log = Table(
    "case_log",
    metadata,
    Column("case_id", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("community_code", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("from_status", Text),
    Column("to_status", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("staff_id", Text),
    Column("at", DateTime, nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("due", DateTime),
    Column("on_time", Boolean),
    Column("note", Text),
    Column("detail", JSONB),
    PrimaryKeyConstraint("community_code", "case_id", "seq", name="case_log_pkey"),
    CheckConstraint("seq >= 1", name="case_log_seq"),
    Index("case_log_at", "at"),
    Index("case_log_case", "case_id", "seq"),
    postgresql_partition_by="LIST (community_code)",
)

#: Advanced by every write (migration 0005): a cache key every process can read.
generation = Sequence("generation", metadata=metadata)
#: Advanced by grid, staff and assignment writes only (migration 0006): what
#: in-process lookup indexes key on.
grid_generation = Sequence("grid_generation", metadata=metadata)

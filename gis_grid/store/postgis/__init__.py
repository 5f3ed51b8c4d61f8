"""The PostGIS store: the same platform on a multi-user database.

Same protocol, same answers as the GeoPackage store (one contract suite runs
against both), with the heavy work pushed down into SQL:

- writes: one transaction per change set, rows loaded with ``COPY``, the
  communities touched serialised with advisory locks, the checks of
  :mod:`gis_grid.store.checks` run inside the transaction, aggregates summed upward
  in SQL, polygons cut into ``grid_parts`` with ``ST_Subdivide`` for lookups;
- lookup: points joined to ``grid_parts`` (GiST) with ``ST_Intersects`` —
  covers semantics, smallest code wins on a shared edge, units only inside the
  building found, exactly the embedded rule;
- validation: spills, overlaps, area budgets and gaps computed in SQL in each
  community's local metric CRS (the SRIDs :func:`gis_grid.geo.crs.local_metric_crs`
  picks, so both stores measure in the same projection).

Connections come from a psycopg 3 pool that checks each connection on checkout
(:func:`_check_connection`), so the store carries on after a PostgreSQL
restart. Vector tiles come from a second, small pool whose sessions never plan
in parallel nor JIT-compile (see :data:`TILE_SESSION`). Values only ever
travel as parameters; identifiers are fixed in this module.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import select
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolClosed

from gis_grid.domain.access import AUDIT_COLUMNS, USER_COLUMNS, new_token, new_user_role, token_hash
from gis_grid.domain.errors import (
    DuplicateCodeError,
    GisGridError,
    InputError,
    NotFoundError,
    OrphanError,
    StoreError,
)
from gis_grid.domain.model import (
    AGGREGATES,
    ASSIGNMENT_COLUMNS,
    CHAIN_COLUMNS,
    GRID_COLUMNS,
    LINK_COLUMNS,
    STAFF_COLUMNS,
    Level,
    level_of_code,
    utc_now,
)
from gis_grid.geo.crs import WGS84, local_metric_crs
from gis_grid.grids.topology import ValidationOptions
from gis_grid.layers.features import (
    FeatureSchema,
    from_multi_any,
    link_points,
    to_multi_any,
    type_features,
)
from gis_grid.store.base import (
    AUDIT_WRITE,
    PROPOSAL_COLUMNS,
    ChangeSet,
    FeatureReport,
    StoreBase,
    WriteReport,
    audit_row,
    chain_frame,
    check_layer,
    empty_lookup,
    feature_filters,
    link_boxes,
    proposal_frame,
    proposal_id,
    proposal_record,
    records,
    registered,
    relinked,
)
from gis_grid.store.checks import (
    Existing,
    check_changeset,
    check_update,
    community_of,
    touched_communities,
)
from gis_grid.store.revisions import (
    DryRun,
    Payload,
    Revision,
    Rewrite,
    pack,
    pack_rewrite,
    payload_of,
    plan_rewrite,
    unpack,
    unpack_rewrite,
    write_payloads,
)

S = "gis_grid"
#: The Alembic revision this code reads and writes (the newest migration).
SCHEMA_REVISION = "0007"
#: The Alembic scripts (``gis_grid/store/migrations``) that build the schema.
MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")
#: Seconds between checks of the grid generation by the in-process lookup index.
INDEX_RECHECK = 1.0
#: Session settings of the connections tiles are made on. A tile is one short query
#: waited on by a map: PostgreSQL picks parallel plans for low-zoom tiles whose
#: partial ``ST_AsMVT`` states then travel between processes (a z12 tile of 2,300
#: courtyards took 19 ms so against 7.7 ms in one process), and a costly plan
#: JIT-compiles for longer than it runs. Validation keeps both: it gains from them.
TILE_SESSION = "-c jit=off -c max_parallel_workers_per_gather=0"


def _check_connection(conn: psycopg.Connection) -> None:
    """Check a pooled connection on checkout; a round trip only when it may be gone.

    An idle connection has nothing to read. When the server ends it (a restart,
    ``pg_terminate_backend``) its socket turns readable — the goodbye message or
    the end of the stream — and only then does the full check run (an empty
    query, which fails, so the pool connects anew). Checking every checkout by
    a round trip cost 0.14 ms: as much as a whole z16 tile.
    """
    if conn.closed or _readable(conn.pgconn.socket):
        ConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    """Whether a socket has something to read (or was closed), without waiting.

    ``poll`` where there is one: ``select`` refuses descriptors past 1,023,
    which a busy server reaches.
    """
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _refreshes_chains(method):
    """A grid write through this store: its lookup index rechecks on the next click."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        finally:
            self._chains_checked = -INDEX_RECHECK

    return wrapper


_PG_TYPES = {
    "text": "text",
    "choice": "text",
    "time": "timestamp",
    "date": "date",
    "int": "bigint",
    "float": "double precision",
    "bool": "boolean",
}
_PG_GEOMETRY = {"Point": "Point", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}
#: Above this many points a lookup goes through COPY into a temporary table.
_COPY_FROM = 2_000
_SUBDIVIDE = 64
#: A write of at least this many rows to a table refreshes its statistics at once.
_ANALYZE_AFTER = 10_000
LEVEL_KEYS = frozenset(level.key for level in Level)


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy form of a ``postgresql://`` URL (psycopg 3 driver)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}"


def migrate(url: str, revision: str = "head") -> str:
    """Create or upgrade the gis-grid schema in a PostGIS database; return its revision.

    Runs the Alembic migrations shipped in ``gis_grid/store/migrations``
    (``CREATE EXTENSION postgis`` included) up to ``revision`` (the newest:
    :data:`SCHEMA_REVISION`, which this code needs).
    """
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        with engine.connect() as connection:
            from sqlalchemy import text

            return connection.execute(
                text(f"SELECT version_num FROM {S}.alembic_version")
            ).scalar_one()
    except Exception as exc:  # connection refused, no PostGIS, no rights
        if isinstance(exc, GisGridError):
            raise
        raise StoreError(f"cannot migrate {_safe(url)}: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _schema_revision(url: str) -> str | None:
    """The Alembic revision of the gis-grid schema in a database (None: no schema)."""
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            if not conn.execute(
                "SELECT to_regclass('gis_grid.alembic_version') IS NOT NULL"
            ).fetchone()[0]:
                return None
            row = conn.execute(f"SELECT version_num FROM {S}.alembic_version").fetchone()
    except psycopg.OperationalError as exc:
        raise StoreError(
            f"cannot connect to {_safe(url)}: {str(exc).strip().splitlines()[-1]}"
        ) from exc
    return row[0] if row else None


def _iso(value) -> str | None:
    return None if value is None or value is pd.NaT else str(value)[:10]


class PostGISStore(StoreBase):
    """A gis-grid store in a PostgreSQL/PostGIS database.

    Parameters
    ----------
    url : str
        ``postgresql://user:password@host:port/database``.
    create : bool
        Run the migrations when the schema is missing (otherwise a database
        without the schema raises :class:`~gis_grid.domain.errors.StoreError` saying
        to run ``gis-grid migrate``).
    pool_size : int
        Connections kept at most.
    """

    def __init__(
        self, url: str, *, create: bool = False, pool_size: int = 4, lookup_index: bool = True
    ) -> None:
        self.url = url
        #: Answer map clicks (:meth:`chain`) from an in-process index of the grids
        #: and staff while it matches the database's grid generation (see chain).
        self.lookup_index = lookup_index
        self._chains = None
        self._chains_current = False
        self._chains_building = False
        self._chains_checked = -INDEX_RECHECK
        self._chains_lock = threading.Lock()
        revision = _schema_revision(url)
        if revision != SCHEMA_REVISION:
            if revision is not None and revision > SCHEMA_REVISION:
                raise StoreError(
                    f"{_safe(url)} has gis-grid schema {revision}, newer than this "
                    f"gis-grid knows ({SCHEMA_REVISION}): upgrade gis-grid"
                )
            if not create:
                what = "no gis-grid schema" if revision is None else f"schema {revision}"
                raise StoreError(
                    f"{_safe(url)} has {what}; this gis-grid needs {SCHEMA_REVISION}: run "
                    f"'gis-grid migrate {_safe(url)}' first"
                )
            migrate(url)
        self.pool_size = pool_size
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=True,
            name="gis-grid",
            check=_check_connection,
            kwargs={"options": f"-c search_path={S},public"},
        )
        self._tile_pool: ConnectionPool | None = None
        self._tile_pool_lock = threading.Lock()
        self._grid_tile_queries: dict[tuple, str] = {}

    def close(self) -> None:
        """Close the pools."""
        self._pool.close()
        if self._tile_pool is not None:
            self._tile_pool.close()

    def __repr__(self) -> str:
        return f"PostGISStore({_safe(self.url)!r})"

    # -- reading

    @contextmanager
    def _cursor(self):
        """A cursor for reads: autocommit, so no BEGIN/COMMIT round trips around them."""
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    yield cur
            finally:
                conn.autocommit = False

    @contextmanager
    def _tile_cursor(self):
        """A cursor for tiles: autocommit, from the pool of :data:`TILE_SESSION` sessions.

        The pool opens on the first tile, so a command that makes none holds
        no connection for it.
        """
        if self._tile_pool is None:
            with self._tile_pool_lock:
                if self._tile_pool is None:
                    self._tile_pool = ConnectionPool(
                        self.url,
                        min_size=1,
                        max_size=self.pool_size,
                        open=True,
                        name="gis-grid-tiles",
                        check=_check_connection,
                        kwargs={
                            "autocommit": True,
                            "options": f"-c search_path={S},public {TILE_SESSION}",
                        },
                    )
        with self._tile_pool.connection() as conn, conn.cursor() as cur:
            yield cur

    def _frame(self, sql: str, params=None) -> pd.DataFrame:
        with self._cursor() as cur:
            cur.execute(sql, params)
            cols = [d.name for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=cols)

    def grids(self, *, level=None, codes=None, under=None, bbox=None, geometry=True):
        """Grids filtered by level, codes, subtrees and lon/lat bounding box."""
        where, params = [], []
        if level is not None:
            where.append("level = %s")
            params.append(Level.parse(level).key)
        if codes is not None:
            where.append("code = ANY(%s)")
            params.append([str(c) for c in np.atleast_1d(codes)])
        if under is not None:  # a subtree is a range of the primary key: root <= code < root:
            where.append(
                "EXISTS (SELECT 1 FROM unnest(%s::text[]) r(root) WHERE "
                "grids.community_code = left(r.root, 12) AND grids.code >= r.root "
                "AND grids.code < r.root || ':')"
            )
            params.append([str(c) for c in np.atleast_1d(under)])
        if bbox is not None:
            where.append("geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)")
            params += [float(v) for v in bbox]
        with self._cursor() as cur:
            return self._read_grids(cur, where, params, geometry=geometry)

    def staff(self, staff_ids=None) -> pd.DataFrame:
        """Staff members, optionally only the given ids."""
        cols = ", ".join(STAFF_COLUMNS)
        if staff_ids is None:
            frame = self._frame(f"SELECT {cols} FROM staff ORDER BY staff_id")
        else:
            frame = self._frame(
                f"SELECT {cols} FROM staff WHERE staff_id = ANY(%s) ORDER BY staff_id",
                [[str(s) for s in np.atleast_1d(staff_ids)]],
            )
        return frame if len(frame) else pd.DataFrame(columns=list(STAFF_COLUMNS))

    def assignments(self, *, grid_codes=None, staff_ids=None) -> pd.DataFrame:
        """Assignments, filtered by grid codes or staff ids."""
        sql = (
            "SELECT staff_id, grid_code, role, start_date::text AS start_date, "
            "end_date::text AS end_date FROM assignments"
        )
        if grid_codes is not None:
            frame = self._frame(
                sql + " WHERE grid_code = ANY(%s) ORDER BY grid_code, staff_id",
                [[str(c) for c in np.atleast_1d(grid_codes)]],
            )
        elif staff_ids is not None:
            frame = self._frame(
                sql + " WHERE staff_id = ANY(%s) ORDER BY grid_code, staff_id",
                [[str(s) for s in np.atleast_1d(staff_ids)]],
            )
        else:
            frame = self._frame(sql + " ORDER BY grid_code, staff_id")
        if not len(frame):
            return pd.DataFrame(columns=list(ASSIGNMENT_COLUMNS))
        return frame.astype(object).where(frame.notna(), None)

    # -- writing

    @_refreshes_chains
    def apply(self, changes: ChangeSet, options: ValidationOptions | None = None) -> WriteReport:
        """Write a change set in one transaction; on any error nothing changes."""
        communities = touched_communities(changes)
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                # writers to the same communities queue up; readers never wait
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(c)) FROM unnest(%s::text[]) c "
                    "ORDER BY c",
                    [communities],
                )
                # tile caches and lookup indexes see it
                cur.execute("SELECT nextval('generation'), nextval('grid_generation')")
                current = self._read_grids(cur, ["community_code = ANY(%s)"], [communities])
                existing = Existing(
                    grids=current,
                    has_codes=lambda codes: self._present(cur, "grids", "code", codes),
                    has_staff=lambda ids: self._present(cur, "staff", "staff_id", ids),
                )
                grids, staff, assignments, warnings = check_changeset(changes, existing, options)
                report = WriteReport(communities=communities, warnings=warnings)
                had = (
                    self._read_assignments(cur, assignments["grid_code"].unique().tolist())
                    if assignments is not None
                    else pd.DataFrame(columns=list(ASSIGNMENT_COLUMNS))
                )
                if grids is not None:
                    self._copy_grids(cur, grids)
                    self._rollup(cur, communities)
                    self._relink(cur, link_boxes(grids), [])
                    report.grids = len(grids)
                if staff is not None:
                    with cur.copy(f"COPY staff ({', '.join(STAFF_COLUMNS)}) FROM STDIN") as copy:
                        for row in records(staff, STAFF_COLUMNS):
                            copy.write_row(row)
                    report.staff = len(staff)
                if assignments is not None:
                    cols = ("community_code", *ASSIGNMENT_COLUMNS)
                    with cur.copy(f"COPY assignments ({', '.join(cols)}) FROM STDIN") as copy:
                        for row in records(assignments, ASSIGNMENT_COLUMNS):
                            copy.write_row((row[1][:12], *row))
                    report.assignments = len(assignments)
                for com, payload in write_payloads(grids, assignments, had).items():
                    self._record(cur, com, "import", payload, changed=len(payload.after_codes))
            self._analyze(
                {
                    "grids": report.grids,
                    "grid_parts": report.grids,
                    "staff": report.staff,
                    "assignments": report.assignments,
                }
            )
        except psycopg.errors.UniqueViolation as exc:  # a concurrent writer got there first
            raise DuplicateCodeError(f"already in the store: {exc.diag.message_detail}") from exc
        except psycopg.errors.ForeignKeyViolation as exc:
            raise OrphanError(f"a reference is missing: {exc.diag.message_detail}") from exc
        except psycopg.errors.CheckViolation as exc:
            raise InputError(
                f"the database refused a row ({exc.diag.constraint_name}): "
                f"{exc.diag.message_primary}"
            ) from exc
        return report

    @_refreshes_chains
    def update(
        self, edits: gpd.GeoDataFrame, options: ValidationOptions | None = None
    ) -> WriteReport:
        """Edit existing grids as new versions; a stale edit raises ConflictError."""
        communities = community_of(edits["code"].astype(str))
        codes = edits["code"].astype(str).tolist()
        now = utc_now()
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtext(c)) FROM unnest(%s::text[]) c ORDER BY c",
                [communities],
            )
            # tile caches and lookup indexes see it
            cur.execute("SELECT nextval('generation'), nextval('grid_generation')")
            cur.execute("SELECT 1 FROM grids WHERE code = ANY(%s) FOR UPDATE", [codes])
            current = self._read_grids(cur, ["community_code = ANY(%s)"], [communities])
            new = check_update(edits, current, options)
            self._to_history(cur, codes, now)
            self._update_in_place(cur, new)
            self._rollup(cur, communities)
            old = current.loc[current["code"].isin(codes)]
            self._relink(cur, link_boxes(pd.concat([old, new], ignore_index=True)), codes)
            empty = pd.DataFrame(columns=list(ASSIGNMENT_COLUMNS))
            for com, payload in write_payloads(new, None, empty, replaced=old).items():
                self._record(cur, com, "edit", payload, changed=len(payload.after_codes))
        return WriteReport(grids=len(new), communities=communities)

    @staticmethod
    def _to_history(cur, codes: list[str], replaced_at: str) -> None:
        """Keep the current rows of ``codes`` as history (before they change or go)."""
        cur.execute(
            "INSERT INTO grid_history (community_code, code, version, parent_code, level, "
            "name, households, residents, special_care, updated_at, replaced_at, geom) "
            "SELECT community_code, code, version, parent_code, level, name, households, "
            "residents, special_care, updated_at, %s, geom FROM grids "
            "WHERE community_code = ANY(%s) AND code = ANY(%s)",
            [replaced_at, sorted({c[:12] for c in codes}), list(codes)],
        )

    @staticmethod
    def _update_in_place(cur, rows: gpd.GeoDataFrame) -> None:
        """Write new name, counts, version and shape of existing grids (and their parts)."""
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS edited (code text, name text, households int, "
            "residents int, special_care int, version int, updated_at text, "
            "geom geometry) ON COMMIT DROP"
        )
        ewkb = shapely.to_wkb(
            shapely.set_srid(to_multi_any(rows.geometry.to_numpy()), 4326),
            hex=True,
            include_srid=True,
        )
        cols = ("code", "name", *AGGREGATES, "version", "updated_at")
        with cur.copy(f"COPY edited ({', '.join(cols)}, geom) FROM STDIN") as copy:
            for row in zip(*(rows[c].tolist() for c in cols), ewkb, strict=True):
                copy.write_row(row)
        sets = ", ".join(f"{c} = e.{c}" for c in cols[1:])
        cur.execute(
            f"UPDATE grids g SET {sets}, geom = e.geom FROM edited e "
            "WHERE g.community_code = left(e.code, 12) AND g.code = e.code"
        )
        codes = rows["code"].tolist()
        communities = sorted({c[:12] for c in codes})
        cur.execute(
            "DELETE FROM grid_parts WHERE community_code = ANY(%s) AND code = ANY(%s)",
            [communities, codes],
        )
        cur.execute(
            "INSERT INTO grid_parts (community_code, code, level, geom) "
            "SELECT community_code, code, level, ST_Subdivide(geom, %s) FROM grids "
            "WHERE community_code = ANY(%s) AND code = ANY(%s)",
            [_SUBDIVIDE, communities, codes],
        )

    @staticmethod
    def _read_assignments(cur, codes: list[str]) -> pd.DataFrame:
        cur.execute(
            "SELECT staff_id, grid_code, role, start_date::text, end_date::text FROM assignments "
            "WHERE grid_code = ANY(%s) ORDER BY grid_code, staff_id",
            [list(codes)],
        )
        frame = pd.DataFrame(cur.fetchall(), columns=list(ASSIGNMENT_COLUMNS))
        return frame.astype(object).where(frame.notna(), None)

    @_refreshes_chains
    def rewrite(self, change: Rewrite, options: ValidationOptions | None = None) -> Revision:
        """Replace whole subtrees of one community as one revision; all or nothing."""
        community = str(change.remove[0])[:12] if change.remove else ""
        now = utc_now()
        try:
            return self._rewrite(change, community, now, options)
        except DryRun as checked:  # planned and validated, rolled back
            return checked.revision

    def _rewrite(self, change, community, now, options) -> Revision:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [community])
            # tile caches and lookup indexes see it
            cur.execute("SELECT nextval('generation'), nextval('grid_generation')")
            cur.execute("SELECT 1 FROM grids WHERE community_code = %s FOR UPDATE", [community])
            current = self._read_grids(cur, ["community_code = %s"], [community])
            cur.execute(
                "SELECT staff_id, grid_code, role, start_date::text, end_date::text "
                "FROM assignments WHERE community_code = %s",
                [community],
            )
            had = pd.DataFrame(cur.fetchall(), columns=list(ASSIGNMENT_COLUMNS))

            def last_versions(codes):
                cur.execute(
                    "SELECT code, max(version) FROM grid_history WHERE community_code = %s "
                    "AND code = ANY(%s) GROUP BY code",
                    [community, codes],
                )
                return dict(cur.fetchall())

            plan = plan_rewrite(change, current, had, last_versions=last_versions, options=options)
            if change.dry_run:
                raise DryRun(Revision.of(0, plan, change))
            replaced = plan.replaced["code"].tolist()
            self._to_history(cur, replaced, now)
            cur.execute(
                "DELETE FROM assignments WHERE community_code = %s AND grid_code = ANY(%s)",
                [community, plan.assignment_codes],
            )
            cur.execute(
                "DELETE FROM grids WHERE community_code = %s AND code = ANY(%s)",
                [community, plan.deleted["code"].tolist()],
            )
            updated = plan.updated.assign(updated_at=now)
            if len(updated):
                self._update_in_place(cur, updated)
            if len(plan.inserted):
                inserted = plan.inserted.assign(updated_at=now).sort_values("code")
                self._copy_grids(cur, inserted)
            if len(plan.assignments):
                cols = ("community_code", *ASSIGNMENT_COLUMNS)
                with cur.copy(f"COPY assignments ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in records(plan.assignments, ASSIGNMENT_COLUMNS):
                        copy.write_row((row[1][:12], *row))
            self._rollup(cur, [community])
            touched = pd.concat([plan.replaced, updated, plan.inserted], ignore_index=True)
            if len(touched):
                self._relink(cur, link_boxes(touched), replaced)
            rid = self._record(
                cur,
                community,
                change.operation,
                payload_of(plan),
                changed=len(plan.after_codes) + len(plan.deleted),
                summary=change.summary,
                author=change.author,
                undoes=change.undoes,
            )
            if change.audit:
                _audit(cur, audit_row(change.audit, rid, plan))
        return Revision.of(rid, plan, change)

    @staticmethod
    def _record(
        cur,
        community: str,
        operation: str,
        payload: Payload,
        *,
        changed: int,
        summary: str = "",
        author: str = "",
        undoes: int | None = None,
    ) -> int:
        """Add a revision to the log (inside the write's transaction); return its id."""
        cur.execute(
            "INSERT INTO revisions (community_code, operation, summary, author, created_at, "
            "undoes, grids_changed, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id",
            [
                community,
                operation,
                summary,
                author,
                utc_now(),
                undoes,
                changed,
                pack(payload),
            ],
        )
        return int(cur.fetchone()[0])

    def revisions(self, community: str | None = None) -> pd.DataFrame:
        """The revision log, oldest first, optionally of one community."""
        cols = "id, community_code, operation, summary, author, created_at, undoes, grids_changed"
        if community is None:
            frame = self._frame(f"SELECT {cols} FROM revisions ORDER BY id")
        else:
            frame = self._frame(
                f"SELECT {cols} FROM revisions WHERE community_code = %s ORDER BY id",
                [str(community)],
            )
        if not len(frame):
            return pd.DataFrame(columns=cols.split(", "))
        return frame

    def payloads(self, community: str, after: int) -> list[tuple[int, Payload]]:
        """What each revision of a community newer than ``after`` replaced and wrote."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT id, payload FROM revisions WHERE community_code = %s AND id > %s "
                "ORDER BY id",
                [str(community), int(after)],
            )
            return [(int(i), unpack(blob)) for i, blob in cur.fetchall()]

    def save_proposal(
        self,
        parent: str,
        change: Rewrite,
        *,
        params: dict,
        metrics: dict,
        author: str = "",
        audit: dict | None = None,
    ) -> int:
        """Keep a proposed change (not applied) and return its id; audited with it."""
        import json

        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "INSERT INTO proposals (community_code, parent_code, operation, created_at, "
                "author, params, metrics, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id",
                [
                    parent[:12],
                    parent,
                    change.operation,
                    utc_now(),
                    author,
                    json.dumps(params, ensure_ascii=False),
                    json.dumps(metrics, ensure_ascii=False),
                    pack_rewrite(change),
                ],
            )
            pid = int(cur.fetchone()[0])
            if audit:
                _audit(cur, audit_row(audit | {"target": f"proposal {pid}"}))
            return pid

    def proposals(self, status: str | None = None) -> pd.DataFrame:
        """Stored proposals (without their grids), newest first."""
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(PROPOSAL_COLUMNS)} FROM proposals"
                + (" WHERE status = %s" if status else "")
                + " ORDER BY id DESC",
                [status] if status else None,
            )
            return proposal_frame(cur.fetchall())

    def proposal(self, pid: int) -> tuple[dict, Rewrite]:
        """One proposal: its record and the change it would make."""
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(PROPOSAL_COLUMNS)}, payload FROM proposals WHERE id = %s",
                [proposal_id(pid)],
            )
            record, blob = proposal_record(cur.fetchall(), pid)
        return record, unpack_rewrite(blob)

    def close_proposal(
        self, pid: int, status: str, revision: int | None = None, audit: dict | None = None
    ) -> None:
        """Mark a proposal accepted (with the revision it became) or discarded."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "UPDATE proposals SET status = %s, revision = %s WHERE id = %s",
                [status, revision, int(pid)],
            )
            if audit:
                _audit(cur, audit_row(audit, revision))

    # -- vector tiles

    def generation(self) -> int:
        """A number that grows with every write (grids, staff, features): a cache key.

        A sequence, so every process sharing the database sees it move.
        """
        with self._cursor() as cur:
            cur.execute("SELECT last_value FROM generation")
            return int(cur.fetchone()[0])

    def mvt(
        self,
        layer: str,
        attributes: list[str],
        z: int,
        x: int,
        y: int,
        *,
        extent: int = 4096,
        buffer: int = 64,
        under: list[str] | None = None,
        where: dict | None = None,
        cap: int | None = None,
    ) -> bytes | None:
        """One layer's Mapbox Vector Tile at z/x/y, made in the database with ``ST_AsMVT``.

        ``layer`` is a grid level (``area`` …) or a feature layer; ``attributes``
        are the columns each feature carries; ``under`` keeps grids (or features)
        in those subtrees, ``where`` filters a layer as :meth:`features` does.
        With ``cap``, a tile of more features than that is not returned: None says
        so (the caller aggregates them, see :mod:`tiles.mvt`). One round trip.

        A grid level is read in Web Mercator (``geom_merc``) through its own
        partial GiST index: nothing is transformed, no other level is scanned.
        ``ST_AsMVTGeom`` runs once per feature: ``ST_AsMVT`` skips the rows it
        leaves empty, so they are not filtered out first (which evaluated it twice).
        """
        with self._tile_cursor() as cur:
            query, params = self._mvt_statement(
                cur,
                layer,
                attributes,
                z,
                x,
                y,
                extent=extent,
                buffer=buffer,
                under=under,
                where=where,
                cap=cap,
            )
            cur.execute(query, params, binary=True)  # the tile's bytes as they are
            over, data = cur.fetchone()
            return None if over else bytes(data or b"")

    def mvt_sql(self, layer: str, attributes: list[str], z: int, x: int, y: int, **options) -> str:
        """The statement :meth:`mvt` runs for a tile, values in place (for EXPLAIN, pgbench).

        ``options`` are :meth:`mvt`'s; it runs in a session with :data:`TILE_SESSION`.
        """
        with self._tile_cursor() as cur:
            query, params = self._mvt_statement(cur, layer, attributes, z, x, y, **options)
            return psycopg.ClientCursor(cur.connection).mogrify(query, params)

    def _mvt_statement(
        self,
        cur,
        layer,
        attributes,
        z,
        x,
        y,
        *,
        extent=4096,
        buffer=64,
        under=None,
        where=None,
        cap=None,
    ) -> tuple[str, dict]:
        """The query of :meth:`mvt` and its parameters.

        A grid level's query depends on its shape only (level, attributes, a
        subtree or not, a cap or not): it is composed once per store (composing
        it cost a tenth of a z16 tile's time in the server).
        """
        tile = {
            "z": z,
            "x": x,
            "y": y,
            "margin": buffer / extent,
            "name": layer,
            "extent": extent,
            "buffer": buffer,
        }
        if cap is not None:
            tile["cap"] = cap
        shape = (layer, tuple(attributes), under is None, cap is None)
        if layer in LEVEL_KEYS and shape in self._grid_tile_queries:
            return self._grid_tile_queries[shape], _grid_params(under) | tile
        table, filters, params = self._tile_terms(cur, layer, under, where)
        params |= tile
        margin = "ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s)"
        if layer in LEVEL_KEYS:  # kept in Web Mercator, one partial index per level
            box, column, merc = margin, "g.geom_merc", "g.geom_merc"
        else:
            box, column, merc = (
                f"ST_Transform({margin}, 4326)",
                "g.geom",
                "ST_Transform(g.geom, 3857)",
            )
        cols = sql.SQL(", ").join(sql.SQL("g.") + sql.Identifier(a) for a in attributes)
        envelope = sql.SQL(
            f"WITH b AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS merc, {box} AS box) "
        )
        # With a cap, at most cap + 1 rows are read (and encoded): beyond the cap the
        # caller bins instead. Counting beside ST_AsMVT costs ~3% of a tile; a first
        # counting pass, or a materialised one, 10%.
        query = envelope + sql.SQL(
            f"SELECT {'count(*) > %(cap)s' if cap is not None else 'false'}, "
            f"ST_AsMVT(t, %(name)s, %(extent)s, 'geom') FROM ("
            f"SELECT {{cols}}, ST_AsMVTGeom({merc}, b.merc, %(extent)s, %(buffer)s, true) "
            f"AS geom FROM {{table}} g, b WHERE {column} && b.box {{filters}}"
            f"{' LIMIT %(cap)s + 1' if cap is not None else ''}) t"
        ).format(cols=cols, table=table, filters=filters)
        text = query.as_string(cur)
        if layer in LEVEL_KEYS:
            self._grid_tile_queries[shape] = text
        return text, params

    def hex_mvt(
        self,
        layer: str,
        z: int,
        x: int,
        y: int,
        i: np.ndarray,
        j: np.ndarray,
        values: dict[str, np.ndarray],
        size: float,
        *,
        extent: int = 4096,
        buffer: int = 64,
    ) -> bytes:
        """A tile of hexagon bins (:func:`tiles.mvt.hex_bins`) made by ``ST_AsMVT``.

        Cell ``(i[k], j[k])`` carries ``values[name][k]`` as the attribute
        ``name`` (whole numbers: ``count``, ``households`` …). The hexagons are
        ``ST_Hexagon``'s of circumradius ``size`` on the Web Mercator origin;
        PostGIS encodes them (C speed, one round trip).
        """
        names = list(values)
        params = {
            "name": layer,
            "extent": extent,
            "buffer": buffer,
            "s": float(size),
            "z": z,
            "x": x,
            "y": y,
            "i": np.asarray(i, dtype=np.int64).tolist(),
            "j": np.asarray(j, dtype=np.int64).tolist(),
        }
        params |= {
            f"v{k}": np.asarray(values[n], dtype=np.int64).tolist() for k, n in enumerate(names)
        }
        query = sql.SQL(
            "SELECT ST_AsMVT(t, %(name)s, %(extent)s, 'geom') FROM (SELECT {attributes}, "
            "ST_AsMVTGeom(ST_Hexagon(%(s)s, u.i, u.j, ST_SetSRID(ST_MakePoint(0, 0), 3857)), "
            "ST_TileEnvelope(%(z)s, %(x)s, %(y)s), %(extent)s, %(buffer)s, true) AS geom "
            "FROM unnest(%(i)s::int[], %(j)s::int[], {arrays}) u(i, j, {columns})) t"
        ).format(
            attributes=sql.SQL(", ").join(
                sql.SQL("u.{} AS {}").format(sql.Identifier(f"v{k}"), sql.Identifier(n))
                for k, n in enumerate(names)
            ),
            arrays=sql.SQL(", ").join(
                sql.SQL("%({})s::bigint[]").format(sql.SQL(f"v{k}")) for k in range(len(names))
            ),
            columns=sql.SQL(", ").join(sql.Identifier(f"v{k}") for k in range(len(names))),
        )
        with self._tile_cursor() as cur:
            cur.execute(query, params, binary=True)
            return bytes(cur.fetchone()[0] or b"")

    def point_coordinates(
        self, layer: str, bbox, *, under=None, where=None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """What a binned tile counts in a box: lon, lat and households (grids) or None.

        A point layer's features, filtered; a grid level's centroids with their
        households. The rows come as PostgreSQL's binary COPY, read by numpy at
        once, not a Python object per point: what binning a city's incidents reads.
        """
        grid_level = layer in LEVEL_KEYS
        with self._tile_cursor() as cur:
            table, filters, params = self._tile_terms(cur, layer, under, where)
            if grid_level:  # each centroid once (OFFSET 0: the subquery is not inlined twice)
                inner, outer = "ST_Centroid(g.geom) AS p, g.households", "households::float8"
            else:
                inner, outer = "g.geom AS p", ""
            query = sql.SQL(
                f"COPY (SELECT ST_X(p), ST_Y(p){', ' if outer else ''}{outer} FROM (SELECT "
                f"{inner} FROM {{table}} g WHERE g.geom && "
                "ST_MakeEnvelope({b0}, {b1}, {b2}, {b3}, 4326) {filters} OFFSET 0) s) TO STDOUT "
                "(FORMAT BINARY)"
            ).format(
                table=table,
                filters=filters,
                **{f"b{i}": sql.Literal(float(v)) for i, v in enumerate(bbox)},
            )
            # COPY takes no server-side parameters: the filters' values go in as literals
            query = sql.SQL(query.as_string(cur) % {k: _literal(cur, v) for k, v in params.items()})
            with cur.copy(query) as copy:
                data = b"".join(bytes(chunk) for chunk in copy)
        found = _floats_of_binary_copy(data, 3 if grid_level else 2)
        return found[0], found[1], found[2] if grid_level else None

    def _tile_terms(self, cur, layer: str, under, where) -> tuple:
        """The table, the AND-ed filter terms and their parameters of a tile's layer."""
        terms = []
        if layer in LEVEL_KEYS:
            # a literal, so that the level's partial index (grids_tile_<level>) fits any plan
            terms.append(sql.SQL("g.level = {}").format(sql.Literal(layer)))
            if under is not None:
                terms.append(
                    sql.SQL(
                        "EXISTS (SELECT 1 FROM unnest(%(under)s::text[]) r(root) WHERE "
                        "g.community_code = left(r.root, 12) AND g.code >= r.root "
                        "AND g.code < r.root || ':')"
                    )
                )
            params = _grid_params(under)
        else:
            schema = registered(_layers(cur), layer)
            terms, params = _feature_terms(schema, under, where)
        table = sql.Identifier("grids" if layer in LEVEL_KEYS else layer)
        return table, sql.SQL("").join(sql.SQL(" AND ") + t for t in terms), params

    # -- users and audit

    def add_user(self, user_id: str, name: str, role: str, staff_id: str | None = None) -> str:
        """Add a user; return their token (shown once: the database keeps its hash)."""
        role = new_user_role(role, staff_id)
        token = new_token()
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if staff_id and not self._present(cur, "staff", "staff_id", [staff_id]):
                raise NotFoundError(f"no staff member {staff_id!r}")
            if self._present(cur, "users", "user_id", [user_id]):
                raise DuplicateCodeError(f"user {user_id!r} exists already")
            cur.execute(
                "INSERT INTO users (user_id, name, role, staff_id, token_sha256, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [user_id, name, role, staff_id, token_hash(token), utc_now()],
            )
        return token

    def user_of_token(self, token: str) -> dict | None:
        """The active user holding a token, or None (one indexed read per request)."""
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(USER_COLUMNS)} FROM users "
                "WHERE token_sha256 = %s AND revoked_at IS NULL",
                [token_hash(token)],
            )
            row = cur.fetchone()
        return dict(zip(USER_COLUMNS, row, strict=True)) if row else None

    def users(self) -> pd.DataFrame:
        """Every user (never their token)."""
        frame = self._frame(f"SELECT {', '.join(USER_COLUMNS)} FROM users ORDER BY user_id")
        return frame if len(frame) else pd.DataFrame(columns=list(USER_COLUMNS))

    def revoke_user(self, user_id: str) -> None:
        """Make a user's token stop working."""
        self.user_epoch += 1
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "UPDATE users SET revoked_at = %s WHERE user_id = %s AND revoked_at IS NULL",
                [utc_now(), user_id],
            )
            if not cur.rowcount:
                raise NotFoundError(f"no active user {user_id!r}")

    def record_audit(
        self, user: dict, action: str, target: str, revision: int | None, detail: dict
    ) -> None:
        """Record who did what, when, and what it changed (a write of its own)."""
        audit = {**user, "action": action, "target": target, "detail": detail}
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            _audit(cur, audit_row(audit, revision))

    def audit_log(self) -> pd.DataFrame:
        """The audit log, oldest first."""
        import json

        frame = self._frame(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit ORDER BY id")
        if not len(frame):
            return pd.DataFrame(columns=list(AUDIT_COLUMNS))
        frame["detail"] = frame["detail"].map(json.loads)
        return frame

    def history(self, code: str) -> gpd.GeoDataFrame:
        """Earlier versions of a grid, oldest first."""
        cols = ", ".join((*GRID_COLUMNS, "replaced_at"))
        frame = self._frame(
            f"SELECT {cols}, ST_AsBinary(geom) AS wkb FROM grid_history "
            "WHERE code = %s ORDER BY version",
            [str(code)],
        )
        geoms = (
            from_multi_any(shapely.from_wkb(frame.pop("wkb").to_numpy(dtype=object)))
            if len(frame)
            else []
        )
        return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)

    @staticmethod
    def _present(cur, table: str, column: str, values: list[str]) -> set[str]:
        cur.execute(f"SELECT {column} FROM {table} WHERE {column} = ANY(%s)", [list(values)])
        return {row[0] for row in cur.fetchall()}

    @staticmethod
    def _read_grids(cur, where: list[str], params, *, geometry: bool = True):
        """Grids matching all ``where`` conditions, read on the given cursor, by code."""
        sql = f"SELECT {', '.join(GRID_COLUMNS)}{', ST_AsBinary(geom) AS wkb' if geometry else ''}"
        sql += " FROM grids" + (" WHERE " + " AND ".join(where) if where else "")
        cur.execute(sql + " ORDER BY code", params)
        names = [d.name for d in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=names)
        if frame.empty:
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        for col in (*AGGREGATES, "version"):
            frame[col] = pd.to_numeric(frame[col]).fillna(0).astype("int64")
        if not geometry:
            return frame
        geoms = from_multi_any(shapely.from_wkb(frame.pop("wkb").to_numpy(dtype=object)))
        return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)

    @staticmethod
    def _copy_grids(cur, grids: gpd.GeoDataFrame) -> None:
        geoms = shapely.set_srid(to_multi_any(grids.geometry.to_numpy()), 4326)
        ewkb = shapely.to_wkb(geoms, hex=True, include_srid=True)
        cols = ("community_code", *GRID_COLUMNS, "geom")
        with cur.copy(f"COPY grids ({', '.join(cols)}) FROM STDIN") as copy:
            for row, geom in zip(records(grids, GRID_COLUMNS), ewkb, strict=True):
                copy.write_row((row[0][:12], *row, geom))  # GRID_COLUMNS starts with code
        cur.execute(
            "INSERT INTO grid_parts (community_code, code, level, geom) "
            "SELECT community_code, code, level, ST_Subdivide(geom, %s) FROM grids "
            "WHERE code = ANY(%s)",
            [_SUBDIVIDE, grids["code"].tolist()],
        )

    @staticmethod
    def _rollup(cur, communities: list[str]) -> None:
        """Sum the aggregates upward in SQL, deepest level first."""
        sums = ", ".join(f"sum({c}) AS {c}" for c in AGGREGATES)
        sets = ", ".join(f"{c} = s.{c}" for c in AGGREGATES)
        differ = " OR ".join(f"p.{c} IS DISTINCT FROM s.{c}" for c in AGGREGATES)
        for level in (Level.UNIT, Level.BUILDING, Level.COURTYARD, Level.AREA):
            cur.execute(
                f"UPDATE grids p SET {sets} FROM (SELECT community_code, parent_code, {sums} "
                "FROM grids WHERE community_code = ANY(%s) AND level = %s "
                "GROUP BY community_code, parent_code) s "
                f"WHERE p.community_code = s.community_code AND p.code = s.parent_code "
                f"AND ({differ})",
                [communities, level.key],
            )

    # -- questions

    def chain(self, lon: float, lat: float, on: dt.date | None = None) -> list[dict]:
        """:func:`gis_grid.grids.queries.chain` for one point: the map's click, a hot path.

        With :attr:`lookup_index` (the default) from an in-process
        :class:`~gis_grid.grids.queries.Chains` of all grids and staff in force
        (~0.15 ms), as long as the database's grid generation still matches it
        (checked at most every :data:`INDEX_RECHECK` seconds, and right after a
        write through this store). Without a current index — the first clicks,
        or after any grid write — it answers in one query (~2 ms) while a new
        index is built in the background. Both give the grids :meth:`lookup`
        gives, with their staff.
        """
        if self.lookup_index and on is None:
            chains = self._current_chains()
            if chains is not None:
                return chains.chain(lon, lat)
        return self._chain_sql(lon, lat, on)

    def _current_chains(self):
        """The in-process index if it matches the database, else None (and build one)."""
        if time.monotonic() - self._chains_checked >= INDEX_RECHECK:
            with self._chains_lock:
                if time.monotonic() - self._chains_checked >= INDEX_RECHECK:
                    stamp = (self.grid_generation(), dt.date.today())
                    self._chains_checked = time.monotonic()
                    self._chains_current = self._chains is not None and (
                        self._chains.stamp == stamp
                    )
                    if not self._chains_current and not self._chains_building:
                        self._chains_building = True
                        threading.Thread(
                            target=self._build_chains, args=(stamp,), daemon=True
                        ).start()
        return self._chains if self._chains_current else None

    def _build_chains(self, stamp) -> None:
        from gis_grid.grids.queries import Chains

        try:
            self._chains = Chains.of(self, stamp)
            # half a million grids are long-lived objects: keep the cyclic garbage
            # collector from walking them on every full collection (pauses of 100 ms+)
            gc.freeze()
            self._chains_checked = -INDEX_RECHECK  # compare it with the database next click
        except PoolClosed:  # the store closed while it was built: nobody will ask
            pass
        except Exception:  # clicks go on being answered by query; say why once
            logging.getLogger("gis_grid").exception("the lookup index could not be built")
        finally:
            self._chains_building = False

    def wait_for_index(self, timeout: float = 600.0) -> bool:
        """Block until the lookup index is current (True) or ``timeout`` passes."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._chains_checked = -INDEX_RECHECK
            if self._current_chains() is not None:
                return True
            time.sleep(0.05)
        return False

    def grid_generation(self) -> int:
        """A number only grid, staff and assignment writes advance (migration 0006)."""
        with self._cursor() as cur:
            cur.execute("SELECT last_value FROM grid_generation")
            return int(cur.fetchone()[0])

    def _chain_sql(self, lon: float, lat: float, on: dt.date | None = None) -> list[dict]:
        """:meth:`chain` in one query (grids, then their staff in force)."""
        day = (on or dt.date.today()).isoformat()
        aggregates = ", ".join(f"g.{c}" for c in AGGREGATES)
        with self._cursor() as cur:
            cur.execute(
                "WITH hit AS (SELECT DISTINCT ON (gp.level) gp.level, gp.code FROM grid_parts gp "
                "WHERE ST_Intersects(gp.geom, ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326)) "
                "ORDER BY gp.level, gp.code) "
                f"SELECT g.code, g.level, g.name, {aggregates}, a.staff_id, s.name, a.role, "
                "s.phone FROM hit JOIN grids g ON g.community_code = left(hit.code, 12) "
                "AND g.code = hit.code LEFT JOIN assignments a ON a.community_code = "
                "g.community_code AND a.grid_code = g.code AND coalesce(a.start_date::text, '') "
                "<= %(day)s AND coalesce(a.end_date::text, '9999-12-31') >= %(day)s "
                "LEFT JOIN staff s ON s.staff_id = a.staff_id ORDER BY length(g.code), a.staff_id",
                {"x": float(lon), "y": float(lat), "day": day},
            )
            rows = cur.fetchall()
        from gis_grid.grids.queries import grid_entry, staff_entry

        out: list[dict] = []
        n = len(AGGREGATES)
        for code, level, name, *rest in rows:
            counts, (staff_id, person, role, phone) = rest[:n], rest[n:]
            if not out or out[-1]["code"] != code:
                out.append({**grid_entry(code, level, name, counts), "staff": []})
            if staff_id is not None:
                out[-1]["staff"].append(staff_entry(staff_id, person, role, phone))
        return out

    def lookup(self, lon, lat) -> pd.DataFrame:
        """For each point, the grid code at each level covering it (the embedded rule)."""
        x = np.atleast_1d(np.asarray(lon, dtype=float))
        y = np.atleast_1d(np.asarray(lat, dtype=float))
        if x.shape != y.shape:
            raise ValueError("lon and lat must have the same length")
        out = empty_lookup(len(x))
        if not len(x):
            return out
        with self._pool.connection() as conn, conn.cursor() as cur:
            if len(x) < _COPY_FROM:  # few points: each finds its parts through the GiST index
                cur.execute(
                    "SELECT DISTINCT ON (p.i, gp.level) p.i, gp.level, gp.code "
                    "FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(x, y, i) "
                    "JOIN grid_parts gp ON ST_Intersects(gp.geom, "
                    "ST_SetSRID(ST_MakePoint(p.x, p.y), 4326)) ORDER BY p.i, gp.level, gp.code",
                    [x.tolist(), y.tolist()],
                )
                rows = cur.fetchall()
            else:  # many points: indexed once, then every part finds its points (LATERAL)
                with conn.transaction():
                    # no JIT (compiling costs more than it saves here), sort in memory
                    cur.execute("SET LOCAL jit = off")
                    cur.execute("SET LOCAL work_mem = '256MB'")
                    cur.execute(
                        "CREATE TEMP TABLE pts (i bigint, x float8, y float8, g geometry "
                        "GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(x, y), 4326)) STORED) "
                        "ON COMMIT DROP"
                    )
                    with cur.copy("COPY pts (i, x, y) FROM STDIN") as copy:
                        copy.write(
                            "".join(
                                f"{i}\t{a!r}\t{b!r}\n"
                                for i, a, b in zip(
                                    range(1, len(x) + 1), x.tolist(), y.tolist(), strict=True
                                )
                            )
                        )
                    cur.execute("CREATE INDEX ON pts USING gist (g)")
                    cur.execute("ANALYZE pts")
                    cur.execute(
                        "SELECT DISTINCT ON (p.i, gp.level) p.i, gp.level, gp.code "
                        # OFFSET 0 keeps the join polygon-driven (the planner would turn
                        # it into one index probe per point, ~6x slower)
                        "FROM grid_parts gp CROSS JOIN LATERAL (SELECT i FROM pts "
                        "WHERE ST_Intersects(gp.geom, pts.g) OFFSET 0) p "
                        "ORDER BY p.i, gp.level, gp.code"
                    )
                    rows = cur.fetchall()
        if not rows:
            return out
        found = pd.DataFrame(rows, columns=["i", "level", "code"])
        for level, part in found.groupby("level"):
            column = out[level].to_numpy(dtype=object).copy()
            column[part["i"].to_numpy() - 1] = part["code"].to_numpy()
            out[level] = column
        # units only inside the building found (as the embedded index searches them)
        stray = out["unit"].notna() & (out["unit"].str.slice(0, 21) != out["building"])
        out.loc[stray, "unit"] = None
        return out

    def stats(self) -> dict:
        """Counts per level, workload totals, staff and assignments, in SQL."""
        today = dt.date.today()
        with self._cursor() as cur:
            per_level = dict(
                cur.execute("SELECT level, count(*) FROM grids GROUP BY level").fetchall()
            )
            totals = cur.execute(
                f"SELECT {', '.join(f'coalesce(sum({c}), 0)' for c in AGGREGATES)} FROM grids "
                "WHERE level = 'community'"
            ).fetchone()
            staff = cur.execute("SELECT count(*) FROM staff").fetchone()[0]
            assignments = cur.execute("SELECT count(*) FROM assignments").fetchone()[0]
            staffed = cur.execute(
                "SELECT count(DISTINCT (community_code, grid_code)) FROM assignments "
                "WHERE start_date <= %s AND (end_date IS NULL OR end_date >= %s)",
                [today, today],
            ).fetchone()[0]
        return {
            "grids": {lv.key: int(per_level.get(lv.key, 0)) for lv in Level},
            **{c: int(v) for c, v in zip(AGGREGATES, totals, strict=True)},
            "staff": int(staff),
            "assignments": int(assignments),
            "staffed_grids": int(staffed),
        }

    def validate(self, options: ValidationOptions | None = None) -> gpd.GeoDataFrame:
        """All topology problems, computed in SQL (see the module docstring)."""
        from gis_grid.store.postgis.validation import validate_in_sql

        with self._pool.connection() as conn, conn.cursor() as cur:
            return validate_in_sql(cur, options or ValidationOptions())

    # -- feature layers

    def layers(self) -> dict[str, FeatureSchema]:
        """The feature layers in the database, by name."""
        with self._cursor() as cur:
            return _layers(cur)

    @staticmethod
    def _ensure_layer(cur, schema: FeatureSchema) -> None:
        """Create the layer's table (inside the transaction), or add new columns."""
        t = sql.Identifier(schema.name)
        have = _layers(cur).get(schema.name)
        if have is not None:
            for column, kind in schema.kinds().items():
                if column not in have.kinds():
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                            t, sql.Identifier(column), sql.SQL(_PG_TYPES[kind])
                        )
                    )
            cur.execute(
                "UPDATE layers SET schema = %s WHERE name = %s", [schema.to_json(), schema.name]
            )
            return
        columns = [
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_PG_TYPES[k]))
            for c, k in schema.kinds().items()
            if c != "id"
        ]
        links = [
            sql.SQL("{} {}").format(
                sql.Identifier(c), sql.SQL("double precision" if c in ("lon", "lat") else "text")
            )
            for c in LINK_COLUMNS
        ]
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, {}, geom geometry({}, 4326) NOT NULL)"
            ).format(
                t, sql.SQL(", ").join([*columns, *links]), sql.SQL(_PG_GEOMETRY[schema.geometry])
            )
        )
        for suffix, expr in (
            ("geom", "USING gist (geom)"),
            ("community", "(community_code)"),
            ("area", "(area_code)"),
            ("building", "(building_code)"),
            ("lonlat", "(lon, lat)"),
        ):
            cur.execute(
                sql.SQL("CREATE INDEX {} ON {} " + expr).format(
                    sql.Identifier(f"{schema.name}_{suffix}"), t
                )
            )
        cur.execute(
            "INSERT INTO layers VALUES (%s, %s, %s)",
            [schema.name, schema.to_json(), dt.datetime.now(dt.UTC).isoformat()],
        )

    def write_features(
        self, schema: FeatureSchema, features: gpd.GeoDataFrame, *, mode: str = "append"
    ) -> FeatureReport:
        """Write checked features with their grid chain (COPY); all or nothing."""
        check_layer(schema, mode)
        geoms = np.asarray(features.geometry.to_numpy(), dtype=object)
        lon, lat = link_points(geoms)
        chain = chain_frame(self.lookup(lon, lat))
        rows = features[list(schema.columns)].reset_index(drop=True)
        rows["lon"], rows["lat"] = lon, lat
        rows = pd.concat([rows, chain], axis=1)
        ewkb = shapely.to_wkb(
            shapely.set_srid(to_multi_any(geoms), 4326), hex=True, include_srid=True
        )
        report = FeatureReport(
            schema.name, written=len(rows), unowned=int(chain["community_code"].isna().sum())
        )
        t = sql.Identifier(schema.name)
        cols = (*schema.columns, *LINK_COLUMNS)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["layer:" + schema.name])
            cur.execute("SELECT nextval('generation')")  # tile caches see it
            self._ensure_layer(cur, schema)
            ids = rows["id"].tolist()
            if mode == "replace":
                cur.execute(sql.SQL("DELETE FROM {}").format(t))
                report.replaced = cur.rowcount
            else:
                cur.execute(
                    sql.SQL('SELECT id FROM {} WHERE id = ANY(%s) ORDER BY id COLLATE "C"').format(
                        t
                    ),
                    [ids],
                )
                present = [r[0] for r in cur.fetchall()]
                if mode == "append" and present:
                    shown = ", ".join(present[:10])
                    raise DuplicateCodeError(
                        f"{len(present)} {schema.name} ids are already in the store ({shown}"
                        f"{' …' if len(present) > 10 else ''}); import with --mode upsert to "
                        "update them, or --mode replace to replace the layer"
                    )
                cur.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(t), [present])
                report.replaced = len(present)
            copy_sql = sql.SQL("COPY {} ({}, geom) FROM STDIN").format(
                t, sql.SQL(", ").join(map(sql.Identifier, cols))
            )
            with cur.copy(copy_sql) as copy:
                for row, geom in zip(records(rows, cols), ewkb, strict=True):
                    copy.write_row((*row, geom))
        self._analyze({schema.name: report.written})
        return report

    def _analyze(self, written: dict[str, int]) -> None:
        """Refresh the planner's statistics of tables that just took a bulk load.

        ``written`` maps tables to the rows just written; those with at least
        :data:`_ANALYZE_AFTER` are analysed (after the commit: the write is
        already safe). Autovacuum gets there within a minute or so; until then
        a freshly loaded city is planned as if empty — tiles of a 511,466-grid
        load were planned for 53 rows where there were 58,000.
        """
        tables = [table for table, rows in written.items() if rows >= _ANALYZE_AFTER]
        if tables:
            with self._cursor() as cur:
                cur.execute(
                    sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
                )

    def features(self, layer, *, bbox=None, under=None, where=None) -> gpd.GeoDataFrame:
        """A layer's features with their grid chain, filtered."""
        with self._cursor() as cur:
            schema = registered(_layers(cur), layer)
            terms, params = _feature_terms(schema, under, where)
            if bbox is not None:
                terms.append(
                    sql.SQL("geom && ST_MakeEnvelope(%(b0)s, %(b1)s, %(b2)s, %(b3)s, 4326)")
                )
                params |= {f"b{i}": float(v) for i, v in enumerate(bbox)}
            kinds = schema.kinds()
            select = [
                sql.SQL("{}::text").format(sql.Identifier(c))
                if kinds.get(c) in ("time", "date")
                else sql.Identifier(c)
                for c in (*schema.columns, *LINK_COLUMNS)
            ]
            query = sql.SQL("SELECT {}, ST_AsBinary(geom) FROM {}").format(
                sql.SQL(", ").join(select), sql.Identifier(layer)
            )
            if terms:
                query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(terms)
            cur.execute(query + sql.SQL(' ORDER BY id COLLATE "C"'), params)  # as SQLite sorts
            rows = cur.fetchall()
        names = [*schema.columns, *LINK_COLUMNS, "wkb"]
        frame = pd.DataFrame(rows, columns=names) if rows else pd.DataFrame({c: [] for c in names})
        wkb = frame.pop("wkb").to_numpy(dtype=object)
        geoms = from_multi_any(shapely.from_wkb(wkb)) if len(wkb) else np.array([], dtype=object)
        return type_features(schema, frame, geoms)

    def _relink(self, cur, boxes: list, codes: list[str]) -> None:
        """Link again the features near grids just written or edited (inside the transaction)."""
        layers = _layers(cur)
        if not layers or not (boxes or codes):
            return
        grids = (
            pd.concat(
                [
                    self._read_grids(
                        cur, ["geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)"], list(b)
                    )
                    for b in boxes
                ],
                ignore_index=True,
            )
            .drop_duplicates("code")
            .reset_index(drop=True)
        )
        for name in layers:
            terms, params = [], []
            for minx, miny, maxx, maxy in boxes:
                terms.append(sql.SQL("(lon BETWEEN %s AND %s AND lat BETWEEN %s AND %s)"))
                params += [minx, maxx, miny, maxy]
            for column in CHAIN_COLUMNS:
                mine = [c for c in codes if f"{level_of_code(c).key}_code" == column]
                if mine:
                    terms.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)))
                    params.append(mine)
            cur.execute(
                sql.SQL("SELECT id, lon, lat, {} FROM {} WHERE {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, CHAIN_COLUMNS)),
                    sql.Identifier(name),
                    sql.SQL(" OR ").join(terms),
                ),
                params,
            )
            candidates = pd.DataFrame(cur.fetchall(), columns=["id", "lon", "lat", *CHAIN_COLUMNS])
            changed = relinked(candidates, grids)
            if not len(changed):
                continue
            columns = ", ".join(f"{c} text" for c in CHAIN_COLUMNS)
            cur.execute(f"CREATE TEMP TABLE relinked (id text, {columns}) ON COMMIT DROP")
            with cur.copy(f"COPY relinked (id, {', '.join(CHAIN_COLUMNS)}) FROM STDIN") as copy:
                for row in records(changed, ("id", *CHAIN_COLUMNS)):
                    copy.write_row(row)
            cur.execute(
                sql.SQL("UPDATE {} f SET {} FROM relinked r WHERE f.id = r.id").format(
                    sql.Identifier(name),
                    sql.SQL(", ").join(
                        sql.SQL("{0} = r.{0}").format(sql.Identifier(c)) for c in CHAIN_COLUMNS
                    ),
                )
            )
            cur.execute("DROP TABLE relinked")


def _plain(value):
    """A filter value as psycopg sends it."""
    return value.item() if hasattr(value, "item") else value


def _layers(cur) -> dict[str, FeatureSchema]:
    cur.execute("SELECT name, schema FROM layers ORDER BY name")
    return {name: FeatureSchema.from_json(text) for name, text in cur.fetchall()}


def metric_srids(cur) -> tuple[list[str], list[int]]:
    """Each community's local metric SRID, chosen as the embedded validator chooses it."""
    cur.execute(
        "SELECT community_code, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT community_code, ST_Extent(geom) AS e FROM grids "
        "GROUP BY community_code) q ORDER BY community_code"
    )
    codes, srids = [], []
    for code, minx, miny, maxx, maxy in cur.fetchall():
        codes.append(code)
        srids.append(local_metric_crs((minx + maxx) / 2, (miny + maxy) / 2).to_epsg())
    return codes, srids


__all__ = ["PostGISStore", "metric_srids", "migrate", "sqlalchemy_url"]


def _feature_terms(schema, under, where) -> tuple[list, dict]:
    """SQL terms (AND-ed) with named parameters for a layer's filters."""
    terms, params = [], {}

    def value(v) -> sql.Placeholder:
        name = f"f{len(params)}"
        params[name] = v
        return sql.Placeholder(name)

    for column, op, arg in feature_filters(schema, under=under, where=where):
        name = sql.Identifier(column) if column else None
        if op == "null":
            terms.append(sql.SQL("{} IS NULL").format(name))
        elif op == "in":
            terms.append(sql.SQL("{} = ANY({})").format(name, value([_plain(v) for v in arg])))
        elif op == "under":
            terms.append(
                sql.SQL("(")
                + sql.SQL(" OR ").join(
                    sql.SQL("{} = ANY({})").format(sql.Identifier(c), value(codes))
                    for c, codes in arg.items()
                )
                + sql.SQL(")")
            )
        else:
            terms.append(sql.SQL("{} " + op + " {}").format(name, value(_plain(arg))))
    return terms, params


def _audit(cur, row: tuple) -> None:
    """Add an audit row inside the caller's transaction."""
    cur.execute(
        f"INSERT INTO audit ({', '.join(AUDIT_WRITE)}) VALUES (%s, %s, %s, %s, %s, %s, %s)", row
    )


def _grid_params(under) -> dict:
    """The parameters of a grid level's tile terms (:meth:`PostGISStore._tile_terms`)."""
    return {} if under is None else {"under": [str(c) for c in under]}


def _literal(cur, value) -> str:
    """A value as an SQL literal (for COPY, which takes no parameters)."""
    return sql.Literal(value).as_string(cur)


def _floats_of_binary_copy(data: bytes, columns: int) -> list[np.ndarray]:
    """The columns of a binary COPY of ``columns`` float8 columns (no nulls).

    A row is the field count (int16), then per field its length (int32) and
    its big-endian value.
    """
    row = np.dtype(
        [("n", ">i2")] + [f for k in range(columns) for f in ((f"l{k}", ">i4"), (f"v{k}", ">f8"))]
    )
    header = 11 + 4 + 4 + int.from_bytes(data[15:19], "big")  # signature, flags, extension
    rows = np.frombuffer(
        data, dtype=row, count=(len(data) - header - 2) // row.itemsize, offset=header
    )
    return [rows[f"v{k}"].astype(float) for k in range(columns)]

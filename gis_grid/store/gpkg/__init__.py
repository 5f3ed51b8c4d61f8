"""The embedded store: one GeoPackage file that QGIS opens as it is.

The file is created by GDAL (through pyogrio), so its metadata tables, R-tree
spatial index and triggers are exactly what QGIS and GDAL expect: ``grids`` is
a MultiPolygon feature table in EPSG:4326; ``staff`` and ``assignments`` are
attribute tables. From then on every read and write goes through Python's
``sqlite3`` so that one write — grids, staff, assignments, recomputed
aggregates — is one SQLite transaction: it commits whole or not at all, even
if the process is killed. The ``ST_*`` functions GDAL's R-tree triggers call
are registered on the connection and read the envelope from the GeoPackage
geometry header.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from numpy.typing import ArrayLike

from gis_grid.domain.access import AUDIT_COLUMNS, USER_COLUMNS, new_token, new_user_role, token_hash
from gis_grid.domain.errors import DuplicateCodeError, NotFoundError, StoreError
from gis_grid.domain.model import (
    AGGREGATES,
    ASSIGNMENT_COLUMNS,
    CHAIN_COLUMNS,
    CODE_LENGTHS,
    GRID_COLUMNS,
    LINK_COLUMNS,
    STAFF_COLUMNS,
    Level,
    rollup,
    utc_now,
)
from gis_grid.geo.crs import WGS84
from gis_grid.grids.lookup import GridIndex
from gis_grid.grids.topology import ValidationOptions, validate
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

SCHEMA_VERSION = "3"
#: The revision log and the rebalancing proposals (schema version 2).
_LOG_TABLES = """
CREATE TABLE gis_grid_revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, community_code TEXT NOT NULL,
    operation TEXT NOT NULL, summary TEXT NOT NULL DEFAULT '', author TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL, undoes INTEGER, grids_changed INTEGER NOT NULL,
    payload BLOB NOT NULL);
CREATE INDEX gis_grid_revisions_community ON gis_grid_revisions(community_code, id);
CREATE TABLE gis_grid_proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, parent_code TEXT NOT NULL,
    community_code TEXT NOT NULL, operation TEXT NOT NULL, created_at TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'open', params TEXT NOT NULL,
    metrics TEXT NOT NULL, revision INTEGER, payload BLOB NOT NULL);
"""
#: Users with their token's hash, and the audit log of writes (schema version 3).
_ACCESS_TABLES = """
CREATE TABLE gis_grid_users (
    user_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, staff_id TEXT,
    token_sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE gis_grid_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, user_id TEXT NOT NULL,
    role TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, revision INTEGER,
    detail TEXT NOT NULL);
"""
#: What upgrades a file from each earlier schema version to the next.
_UPGRADES = {"1": ("2", _LOG_TABLES), "2": ("3", _ACCESS_TABLES)}
_ENVELOPE_BYTES = (0, 32, 48, 48, 64, 0, 0, 0)
_SRS_ID = 4326
#: SQLite allows a limited number of host parameters per statement.
_CHUNK = 900
_SQL_TYPES = {
    "text": "TEXT",
    "choice": "TEXT",
    "time": "TEXT",
    "date": "DATE",
    "int": "INTEGER",
    "float": "REAL",
    "bool": "BOOLEAN",
}
_GPKG_TYPES = {"Point": "POINT", "LineString": "MULTILINESTRING", "Polygon": "MULTIPOLYGON"}


# -- GeoPackage geometry blobs ------------------------------------------------


def encode(geoms: np.ndarray) -> list[bytes]:
    """GeoPackage binary for each geometry: header with an xy envelope, then WKB."""
    geoms = np.asarray(geoms, dtype=object)
    wkb = shapely.to_wkb(geoms, byte_order=1, output_dimension=2)
    bounds = shapely.bounds(geoms)
    header = np.zeros(
        len(geoms),
        dtype=[("gp", "S2"), ("ver", "u1"), ("flags", "u1"), ("srs", "<i4"), ("env", "<f8", (4,))],
    )
    header["gp"] = b"GP"
    header["flags"] = 0b0000_0011  # little endian, envelope [minx, maxx, miny, maxy]
    header["srs"] = _SRS_ID
    header["env"] = bounds[:, [0, 2, 1, 3]]
    raw = header.tobytes()
    size = header.dtype.itemsize
    return [raw[i * size : (i + 1) * size] + w for i, w in enumerate(wkb)]


def decode(blobs: list[bytes | None]) -> np.ndarray:
    """Geometries from GeoPackage binary blobs (whatever envelope they carry)."""
    wkb = [None if b is None else b[8 + _ENVELOPE_BYTES[(b[3] >> 1) & 7] :] for b in blobs]
    return shapely.from_wkb(np.array(wkb, dtype=object))


def _envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    if blob is None or (blob[3] >> 4) & 1:
        return None
    kind = (blob[3] >> 1) & 7
    if kind:
        order = "<" if blob[3] & 1 else ">"
        return struct.unpack_from(order + "4d", blob, 8)
    minx, miny, maxx, maxy = shapely.bounds(decode([blob])[0])
    return minx, maxx, miny, maxy


def _register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions GDAL's R-tree triggers call (SpatiaLite names)."""
    conn.create_function("ST_IsEmpty", 1, lambda b: int(_envelope(b) is None), deterministic=True)
    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        conn.create_function(
            name, 1, lambda b, i=i: e[i] if (e := _envelope(b)) else None, deterministic=True
        )


def _bulk_insert(
    conn: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    geoms: np.ndarray,
    rows: list[tuple],
) -> None:
    """Insert feature rows (inside the caller's transaction) with their R-tree entries.

    GDAL's triggers keep the R-tree and the feature count one row at a time,
    calling back into Python four times per row; for a bulk insert they are
    set aside, the R-tree rows are written from the envelopes computed here,
    the count is set once, and the triggers are put back — all in the same
    transaction, so a failure leaves triggers, index and rows as they were.
    """
    triggers = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? "
        "AND (name LIKE 'rtree_%_insert' OR name LIKE 'trigger_insert_feature_count_%')",
        (table,),
    ).fetchall()
    for name, _ in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    start = conn.execute(f'SELECT coalesce(max(fid), 0) FROM "{table}"').fetchone()[0]
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    start = max(start, seq[0] if seq else 0)
    fids = range(start + 1, start + 1 + len(rows))
    names = ", ".join(f'"{c}"' for c in ("fid", *columns))
    conn.executemany(
        f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * (len(columns) + 1))})',
        ((fid, *row) for fid, row in zip(fids, rows, strict=True)),
    )
    bounds = shapely.bounds(geoms)
    present = np.isfinite(bounds).all(axis=1)
    conn.executemany(
        f'INSERT INTO "rtree_{table}_geom" VALUES (?, ?, ?, ?, ?)',
        (
            (fid, b[0], b[2], b[1], b[3])
            for fid, b, ok in zip(fids, bounds.tolist(), present.tolist(), strict=True)
            if ok
        ),
    )
    conn.execute(
        f'UPDATE gpkg_ogr_contents SET feature_count = (SELECT count(*) FROM "{table}") '
        "WHERE lower(table_name) = lower(?)",
        (table,),
    )
    for _, sql in triggers:
        conn.execute(sql)


# -- the store ----------------------------------------------------------------


class GeoPackageStore(StoreBase):
    """A gis-grid store in one GeoPackage file.

    Parameters
    ----------
    path : str or Path
        The ``.gpkg`` file.
    create : bool
        Create the file when it does not exist (default). Otherwise a missing
        file raises :class:`~gis_grid.domain.errors.StoreError`.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "empty.gpkg")
    >>> with GeoPackageStore(path) as store:
    ...     store.stats()["grids"]
    {'community': 0, 'area': 0, 'courtyard': 0, 'building': 0, 'unit': 0}
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        if not self.path.exists():
            if not create:
                raise StoreError(
                    f"no store at {self.path}: create it with 'gis-grid demo' or 'gis-grid import'"
                )
            self._create()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA foreign_keys = OFF")
        # a city is ~500k grids with five indexes: keep their pages in memory while writing
        self._conn.execute("PRAGMA cache_size = -262144")  # KiB, i.e. 256 MiB at most
        self._conn.execute("PRAGMA temp_store = MEMORY")
        _register_functions(self._conn)
        self._check_schema()
        self._index: GridIndex | None = None
        self._index_stamp: int | None = None

    # -- set-up

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.creating.gpkg")
        tmp.unlink(missing_ok=True)
        schema = {
            c: pd.Series(dtype="int64" if c in (*AGGREGATES, "version") else str)
            for c in (*GRID_COLUMNS, "community_code")
        }
        grids = gpd.GeoDataFrame(schema, geometry=gpd.GeoSeries([], crs=WGS84))
        pyogrio.write_dataframe(
            grids,
            tmp,
            layer="grids",
            driver="GPKG",
            geometry_type="MultiPolygon",
            layer_options={
                "IDENTIFIER": "网格 grids",
                "DESCRIPTION": "Nested grids: community > area > courtyard > building > unit",
            },
        )
        history = {
            c: pd.Series(dtype="int64" if c in (*AGGREGATES, "version") else str)
            for c in (*GRID_COLUMNS, "replaced_at", "community_code")
        }
        pyogrio.write_dataframe(
            gpd.GeoDataFrame(history, geometry=gpd.GeoSeries([], crs=WGS84)),
            tmp,
            layer="grid_history",
            driver="GPKG",
            geometry_type="MultiPolygon",
            layer_options={"DESCRIPTION": "Earlier versions of grids, one row per version"},
        )
        for layer, cols in (("staff", STAFF_COLUMNS), ("assignments", ASSIGNMENT_COLUMNS)):
            pyogrio.write_dataframe(
                pd.DataFrame({c: pd.Series(dtype=str) for c in cols}),
                tmp,
                layer=layer,
                driver="GPKG",
                append=False,
            )
        created = dt.datetime.now(dt.UTC).isoformat()
        conn = sqlite3.connect(tmp, isolation_level=None)
        with conn:
            conn.executescript(
                f"""
                BEGIN;
                CREATE UNIQUE INDEX grids_code ON grids(code);
                CREATE INDEX grids_parent ON grids(parent_code);
                CREATE INDEX grids_community ON grids(community_code);
                CREATE INDEX grids_level ON grids(level);
                CREATE UNIQUE INDEX staff_id ON staff(staff_id);
                CREATE INDEX assignments_grid ON assignments(grid_code);
                CREATE INDEX assignments_staff ON assignments(staff_id);
                CREATE UNIQUE INDEX grid_history_version ON grid_history(code, version);
                CREATE TABLE gis_grid_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                INSERT INTO gis_grid_meta VALUES ('schema_version', '{SCHEMA_VERSION}');
                INSERT INTO gis_grid_meta VALUES ('created_at', '{created}');
                INSERT INTO gis_grid_meta VALUES ('generation', '0');
                {_LOG_TABLES}
                {_ACCESS_TABLES}
                COMMIT;
                """
            )
        conn.close()
        os.replace(tmp, self.path)

    def _check_schema(self) -> None:
        try:
            row = self._conn.execute(
                "SELECT value FROM gis_grid_meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a gis-grid GeoPackage ({exc})") from exc
        while row is not None and row[0] in _UPGRADES:  # older files gain the new tables
            version, script = _UPGRADES[row[0]]
            self._conn.executescript(
                f"BEGIN IMMEDIATE; {script} UPDATE gis_grid_meta SET value = "
                f"'{version}' WHERE key = 'schema_version'; COMMIT;"
            )
            row = (version,)
        if row is None or row[0] != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {row and row[0]}, this gis-grid expects "
                f"{SCHEMA_VERSION}"
            )

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __repr__(self) -> str:
        return f"GeoPackageStore({str(self.path)!r})"

    # -- reading

    def _select(self, sql: str, params: ArrayLike = ()) -> pd.DataFrame:
        cur = self._conn.execute(sql, list(params))
        cols = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)

    def _in_chunks(self, sql: str, values: list) -> pd.DataFrame:
        """Run ``sql`` (with one ``{}`` for a placeholder list) over chunks of values."""
        frames = [
            self._select(sql.format(",".join("?" * len(chunk))), chunk)
            for chunk in (values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK))
        ]
        return pd.concat(frames, ignore_index=True) if frames else self._select(sql.format("NULL"))

    def grids(self, *, level=None, codes=None, under=None, bbox=None, geometry=True):
        """Grids filtered by level, codes, subtrees and lon/lat bounding box."""
        cols = ", ".join(f"g.{c}" for c in GRID_COLUMNS)
        where, params = [], []
        if level is not None:
            where.append("g.level = ?")
            params.append(Level.parse(level).key)
        if bbox is not None:
            minx, miny, maxx, maxy = map(float, bbox)
            where.append(
                "g.fid IN (SELECT id FROM rtree_grids_geom WHERE maxx >= ? AND minx <= ? "
                "AND maxy >= ? AND miny <= ?)"
            )
            params += [minx, maxx, miny, maxy]
        # codes and subtrees come in chunks (SQLite caps the parameters of a statement);
        # a subtree is a range of the code index: root <= code < root + ':' ('9' < ':')
        chunks: list[tuple[str, list]] = [("", [])]
        if codes is not None:
            wanted = sorted({str(c) for c in np.atleast_1d(codes)})
            chunks = [
                (f"g.code IN ({','.join('?' * len(part))})", part)
                for part in (wanted[i : i + _CHUNK] for i in range(0, len(wanted), _CHUNK))
            ]
        elif under is not None:
            roots = sorted({str(c) for c in np.atleast_1d(under)})
            chunks = [
                (
                    "(" + " OR ".join("(g.code >= ? AND g.code < ?)" for _ in part) + ")",
                    [v for r in part for v in (r, r + ":")],
                )
                for part in (roots[i : i + _CHUNK // 2] for i in range(0, len(roots), _CHUNK // 2))
            ]
        chunks = chunks or [("0", [])]  # no codes asked for: no rows, right columns
        with_geom = geometry or bbox is not None
        sql = f"SELECT {cols}{', g.geom' if with_geom else ''} FROM grids g"
        frames = []
        for clause, values in chunks:
            conditions = [*where, clause] if clause else where
            query = sql + (" WHERE " + " AND ".join(conditions) if conditions else "")
            frames.append(self._select(query, [*params, *values]))
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if codes is not None and under is not None:
            roots = tuple(str(c) for c in np.atleast_1d(under))
            frame = frame.loc[frame["code"].str.startswith(roots)]
        frame = frame.sort_values("code", kind="stable").reset_index(drop=True)
        for col in (*AGGREGATES, "version"):
            frame[col] = pd.to_numeric(frame[col]).fillna(0).astype("int64")
        if not with_geom:
            return frame
        geoms = from_multi_any(decode(frame.pop("geom").tolist())) if len(frame) else np.array([])
        if bbox is not None and len(frame):
            keep = _meets(geoms, bbox)
            frame, geoms = frame.loc[keep].reset_index(drop=True), geoms[keep]
        if not geometry:
            return frame
        return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)

    def staff(self, staff_ids=None) -> pd.DataFrame:
        """Staff members, optionally only the given ids."""
        cols = ", ".join(STAFF_COLUMNS)
        if staff_ids is None:
            return self._select(f"SELECT {cols} FROM staff ORDER BY staff_id")
        ids = [str(s) for s in np.atleast_1d(staff_ids)]
        return self._in_chunks(f"SELECT {cols} FROM staff WHERE staff_id IN ({{}})", ids)

    def assignments(self, *, grid_codes=None, staff_ids=None) -> pd.DataFrame:
        """Assignments, filtered by grid codes or staff ids."""
        cols = ", ".join(ASSIGNMENT_COLUMNS)
        if grid_codes is not None:
            codes = [str(c) for c in np.atleast_1d(grid_codes)]
            return self._in_chunks(
                f"SELECT {cols} FROM assignments WHERE grid_code IN ({{}})", codes
            )
        if staff_ids is not None:
            ids = [str(s) for s in np.atleast_1d(staff_ids)]
            return self._in_chunks(f"SELECT {cols} FROM assignments WHERE staff_id IN ({{}})", ids)
        return self._select(f"SELECT {cols} FROM assignments ORDER BY grid_code, staff_id")

    def generation(self) -> int:
        """A number that grows with every write (grids, staff, features): a cache key."""
        return self._generation()

    def _generation(self) -> int:
        return int(
            self._conn.execute(
                "SELECT value FROM gis_grid_meta WHERE key = 'generation'"
            ).fetchone()[0]
        )

    # -- writing

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def _existing_codes(self, codes: list[str]) -> set[str]:
        found = self._in_chunks("SELECT code FROM grids WHERE code IN ({})", codes)
        return set(found["code"])

    def _existing_staff(self, ids: list[str]) -> set[str]:
        found = self._in_chunks("SELECT staff_id FROM staff WHERE staff_id IN ({})", ids)
        return set(found["staff_id"])

    def apply(self, changes: ChangeSet, options: ValidationOptions | None = None) -> WriteReport:
        """Write a change set in one transaction; on any error nothing changes."""
        communities = touched_communities(changes)
        with self._transaction() as conn:
            current = self.grids(under=communities)  # every code starts with its community's
            existing = Existing(
                grids=current,
                has_codes=self._existing_codes,
                has_staff=self._existing_staff,
            )
            grids, staff, assignments, warnings = check_changeset(changes, existing, options)
            report = WriteReport(communities=communities, warnings=warnings)
            had = (
                self.assignments(grid_codes=assignments["grid_code"].unique())
                if assignments is not None
                else None
            )
            if grids is not None:
                community = grids["code"].str.slice(0, CODE_LENGTHS[Level.COMMUNITY])
                geoms = to_multi_any(grids.geometry.to_numpy())
                rows = [
                    (blob, *row, com)
                    for blob, row, com in zip(
                        encode(geoms),
                        records(grids, GRID_COLUMNS),
                        community.tolist(),
                        strict=True,
                    )
                ]
                _bulk_insert(conn, "grids", ("geom", *GRID_COLUMNS, "community_code"), geoms, rows)
                report.grids = len(grids)
                self._rollup(conn, communities)
                self._update_extent(conn)
                self._relink(conn, link_boxes(grids), [])
            if staff is not None:
                conn.executemany(
                    f"INSERT INTO staff ({', '.join(STAFF_COLUMNS)}) VALUES (?, ?, ?, ?)",
                    records(staff, STAFF_COLUMNS),
                )
                report.staff = len(staff)
            if assignments is not None:
                conn.executemany(
                    f"INSERT INTO assignments ({', '.join(ASSIGNMENT_COLUMNS)}) "
                    "VALUES (?, ?, ?, ?, ?)",
                    records(assignments, ASSIGNMENT_COLUMNS),
                )
                report.assignments = len(assignments)
            if grids is not None or assignments is not None:
                before = had if had is not None else pd.DataFrame(columns=ASSIGNMENT_COLUMNS)
                for com, payload in write_payloads(grids, assignments, before).items():
                    self._record(conn, com, "import", payload, changed=len(payload.after_codes))
            conn.execute(
                "UPDATE gis_grid_meta SET value = CAST(value AS INTEGER) + 1 "
                "WHERE key = 'generation'"
            )
            for table, n in (
                ("grids", report.grids),
                ("staff", report.staff),
                ("assignments", report.assignments),
            ):
                if n:
                    conn.execute(
                        "UPDATE gpkg_contents SET last_change = "
                        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE table_name = ?",
                        (table,),
                    )
        return report

    def update(
        self, edits: gpd.GeoDataFrame, options: ValidationOptions | None = None
    ) -> WriteReport:
        """Edit existing grids as new versions; a stale edit raises ConflictError."""
        communities = community_of(edits["code"].astype(str))
        now = utc_now()
        with self._transaction() as conn:  # BEGIN IMMEDIATE: one writer at a time
            current = self.grids(under=communities)  # every code starts with its community's
            new = check_update(edits, current, options)
            old = current.set_index("code").loc[new["code"]].reset_index()
            _to_history(conn, old, now)
            changed = ("name", *AGGREGATES, "version", "updated_at")
            conn.executemany(
                f"UPDATE grids SET {', '.join(f'{c} = ?' for c in changed)}, geom = ? "
                "WHERE code = ?",
                zip(
                    *(new[c].tolist() for c in changed),
                    encode(to_multi_any(new.geometry.to_numpy())),
                    new["code"].tolist(),
                    strict=True,
                ),
            )
            self._rollup(conn, communities)
            self._update_extent(conn)
            self._relink(
                conn, link_boxes(pd.concat([old, new], ignore_index=True)), new["code"].tolist()
            )
            empty = pd.DataFrame(columns=ASSIGNMENT_COLUMNS)
            for com, payload in write_payloads(new, None, empty, replaced=old).items():
                self._record(conn, com, "edit", payload, changed=len(payload.after_codes))
            conn.execute(
                "UPDATE gis_grid_meta SET value = CAST(value AS INTEGER) + 1 "
                "WHERE key = 'generation'"
            )
        return WriteReport(grids=len(new), communities=communities)

    def rewrite(self, change: Rewrite, options: ValidationOptions | None = None) -> Revision:
        """Replace whole subtrees of one community as one revision; all or nothing."""
        community = str(change.remove[0])[:12] if change.remove else ""
        now = utc_now()
        try:
            return self._rewrite(change, community, now, options)
        except DryRun as checked:  # planned and validated, rolled back
            return checked.revision

    def _rewrite(self, change, community, now, options) -> Revision:
        with self._transaction() as conn:
            current = self.grids(under=[community]) if community else self.grids(codes=[])
            had = self._select(
                f"SELECT {', '.join(ASSIGNMENT_COLUMNS)} FROM assignments "
                "WHERE grid_code >= ? AND grid_code < ?",
                [community, community + ":"],
            )
            plan = plan_rewrite(
                change, current, had, last_versions=self._last_versions, options=options
            )
            if change.dry_run:
                raise DryRun(Revision.of(0, plan, change))
            old = plan.replaced
            _to_history(conn, old, now)
            for sql, values in (
                ("DELETE FROM assignments WHERE grid_code IN ({})", plan.assignment_codes),
                ("DELETE FROM grids WHERE code IN ({})", old["code"].tolist()),
            ):
                for i in range(0, len(values), _CHUNK):
                    chunk = values[i : i + _CHUNK]
                    conn.execute(sql.format(",".join("?" * len(chunk))), chunk)
            new = pd.concat([plan.updated, plan.inserted], ignore_index=True)
            if len(new):
                new["updated_at"] = now
                geoms = to_multi_any(new.geometry.to_numpy())
                rows = [
                    (blob, *row, community)
                    for blob, row in zip(encode(geoms), records(new, GRID_COLUMNS), strict=True)
                ]
                _bulk_insert(conn, "grids", ("geom", *GRID_COLUMNS, "community_code"), geoms, rows)
            conn.executemany(
                f"INSERT INTO assignments ({', '.join(ASSIGNMENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
                records(plan.assignments, ASSIGNMENT_COLUMNS),
            )
            self._rollup(conn, [community])
            self._update_extent(conn)
            touched = pd.concat([old, new], ignore_index=True)
            if len(touched):
                self._relink(conn, link_boxes(touched), old["code"].tolist())
            rid = self._record(
                conn,
                community,
                change.operation,
                payload_of(plan),
                changed=len(plan.after_codes) + len(plan.deleted),
                summary=change.summary,
                author=change.author,
                undoes=change.undoes,
            )
            if change.audit:
                _audit(conn, audit_row(change.audit, rid, plan))
            conn.execute(
                "UPDATE gis_grid_meta SET value = CAST(value AS INTEGER) + 1 "
                "WHERE key = 'generation'"
            )
        return Revision.of(rid, plan, change)

    def _last_versions(self, codes: list[str]) -> dict[str, int]:
        found = self._in_chunks(
            "SELECT code, max(version) AS v FROM grid_history WHERE code IN ({}) GROUP BY code",
            codes,
        )
        return dict(zip(found["code"], found["v"].astype(int), strict=True))

    def _record(
        self,
        conn: sqlite3.Connection,
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
        cur = conn.execute(
            "INSERT INTO gis_grid_revisions (community_code, operation, summary, author, "
            "created_at, undoes, grids_changed, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                community,
                operation,
                summary,
                author,
                utc_now(),
                undoes,
                changed,
                pack(payload),
            ),
        )
        return int(cur.lastrowid)

    def revisions(self, community: str | None = None) -> pd.DataFrame:
        """The revision log, oldest first, optionally of one community."""
        cols = "id, community_code, operation, summary, author, created_at, undoes, grids_changed"
        if community is None:
            return self._select(f"SELECT {cols} FROM gis_grid_revisions ORDER BY id")
        return self._select(
            f"SELECT {cols} FROM gis_grid_revisions WHERE community_code = ? ORDER BY id",
            [str(community)],
        )

    def payloads(self, community: str, after: int) -> list[tuple[int, Payload]]:
        """What each revision of a community newer than ``after`` replaced and wrote."""
        rows = self._conn.execute(
            "SELECT id, payload FROM gis_grid_revisions WHERE community_code = ? AND id > ? "
            "ORDER BY id",
            (str(community), int(after)),
        ).fetchall()
        return [(int(i), unpack(blob)) for i, blob in rows]

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
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT INTO gis_grid_proposals (parent_code, community_code, operation, "
                "created_at, author, params, metrics, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    parent,
                    parent[:12],
                    change.operation,
                    utc_now(),
                    author,
                    json.dumps(params, ensure_ascii=False),
                    json.dumps(metrics, ensure_ascii=False),
                    pack_rewrite(change),
                ),
            )
            if audit:
                _audit(conn, audit_row(audit | {"target": f"proposal {cur.lastrowid}"}))
        return int(cur.lastrowid)

    def proposals(self, status: str | None = None) -> pd.DataFrame:
        """Stored proposals (without their grids), newest first."""
        rows = self._conn.execute(
            f"SELECT {', '.join(PROPOSAL_COLUMNS)} FROM gis_grid_proposals"
            + (" WHERE status = ?" if status else "")
            + " ORDER BY id DESC",
            [status] if status else [],
        ).fetchall()
        return proposal_frame(rows)

    def proposal(self, pid: int) -> tuple[dict, Rewrite]:
        """One proposal: its record and the change it would make."""
        rows = self._conn.execute(
            f"SELECT {', '.join(PROPOSAL_COLUMNS)}, payload FROM gis_grid_proposals WHERE id = ?",
            (proposal_id(pid),),
        ).fetchall()
        record, blob = proposal_record(rows, pid)
        return record, unpack_rewrite(blob)

    def close_proposal(
        self, pid: int, status: str, revision: int | None = None, audit: dict | None = None
    ) -> None:
        """Mark a proposal accepted (with the revision it became) or discarded."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE gis_grid_proposals SET status = ?, revision = ? WHERE id = ?",
                (status, revision, int(pid)),
            )
            if audit:
                _audit(conn, audit_row(audit, revision))

    # -- users and audit

    def add_user(self, user_id: str, name: str, role: str, staff_id: str | None = None) -> str:
        """Add a user; return their token (shown once: the store keeps its hash)."""
        role = new_user_role(role, staff_id)
        if staff_id and not self._existing_staff([staff_id]):
            raise NotFoundError(f"no staff member {staff_id!r}")
        token = new_token()
        with self._transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM gis_grid_users WHERE user_id = ?", (user_id,)
            ).fetchone():
                raise DuplicateCodeError(f"user {user_id!r} exists already")
            conn.execute(
                "INSERT INTO gis_grid_users (user_id, name, role, staff_id, token_sha256, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, name, role, staff_id, token_hash(token), utc_now()),
            )
        return token

    def user_of_token(self, token: str) -> dict | None:
        """The active user holding a token, or None."""
        row = self._select(
            f"SELECT {', '.join(USER_COLUMNS)} FROM gis_grid_users "
            "WHERE token_sha256 = ? AND revoked_at IS NULL",
            [token_hash(token)],
        )
        return row.iloc[0].to_dict() if len(row) else None

    def users(self) -> pd.DataFrame:
        """Every user (never their token)."""
        return self._select(
            f"SELECT {', '.join(USER_COLUMNS)} FROM gis_grid_users ORDER BY user_id"
        )

    def revoke_user(self, user_id: str) -> None:
        """Make a user's token stop working."""
        self.user_epoch += 1
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE gis_grid_users SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                (utc_now(), user_id),
            )
            if not cur.rowcount:
                raise NotFoundError(f"no active user {user_id!r}")

    def record_audit(
        self, user: dict, action: str, target: str, revision: int | None, detail: dict
    ) -> None:
        """Record who did what, when, and what it changed (a write of its own)."""
        audit = {**user, "action": action, "target": target, "detail": detail}
        with self._transaction() as conn:
            _audit(conn, audit_row(audit, revision))

    def audit_log(self) -> pd.DataFrame:
        """The audit log, oldest first."""
        frame = self._select(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM gis_grid_audit ORDER BY id")
        frame["detail"] = frame["detail"].map(json.loads)
        return frame

    def history(self, code: str) -> gpd.GeoDataFrame:
        """Earlier versions of a grid, oldest first."""
        cols = ", ".join((*GRID_COLUMNS, "replaced_at"))
        frame = self._select(
            f"SELECT {cols}, geom FROM grid_history WHERE code = ? ORDER BY version", [str(code)]
        )
        geoms = from_multi_any(decode(frame.pop("geom").tolist())) if len(frame) else []
        return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)

    def _rollup(self, conn: sqlite3.Connection, communities: list[str]) -> None:
        """Recompute the aggregates of the given communities (inside the transaction)."""
        cols = ", ".join(AGGREGATES)
        current = self._in_chunks(
            f"SELECT fid, code, {cols} FROM grids WHERE community_code IN ({{}})", communities
        )
        summed = rollup(current)
        changed = (summed[list(AGGREGATES)] != current[list(AGGREGATES)]).any(axis=1)
        updates = summed.loc[changed, [*AGGREGATES, "fid"]]
        conn.executemany(
            f"UPDATE grids SET {', '.join(f'{c} = ?' for c in AGGREGATES)} WHERE fid = ?",
            (tuple(int(v) for v in row) for row in updates.itertuples(index=False, name=None)),
        )

    def _update_extent(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE gpkg_contents SET min_x = (SELECT min(minx) FROM rtree_grids_geom), "
            "min_y = (SELECT min(miny) FROM rtree_grids_geom), "
            "max_x = (SELECT max(maxx) FROM rtree_grids_geom), "
            "max_y = (SELECT max(maxy) FROM rtree_grids_geom) WHERE table_name = 'grids'"
        )
        conn.execute(
            "UPDATE gpkg_ogr_contents SET feature_count = (SELECT count(*) FROM grids) "
            "WHERE table_name = 'grids'"
        )

    # -- questions

    def index(self) -> GridIndex:
        """The in-memory point-lookup index, rebuilt after any write."""
        stamp = self._generation()
        if self._index is None or self._index_stamp != stamp:
            frame = self.grids(geometry=True)
            self._index = GridIndex(frame["code"].to_numpy(), frame.geometry.to_numpy())
            self._index_stamp = stamp
        return self._index

    def lookup(self, lon: ArrayLike, lat: ArrayLike) -> pd.DataFrame:
        """For each point, the grid code at each level containing it."""
        x, y = np.atleast_1d(np.asarray(lon, float)), np.atleast_1d(np.asarray(lat, float))
        if not self._conn.execute("SELECT 1 FROM grids LIMIT 1").fetchone():
            return empty_lookup(len(x))
        return self.index().lookup(x, y)

    def validate(self, options: ValidationOptions | None = None) -> gpd.GeoDataFrame:
        """All topology problems of the store."""
        return validate(self.grids(), self.assignments(), options)

    def stats(self) -> dict:
        """Counts per level, workload totals, staff and assignments."""
        per_level = dict(self._conn.execute("SELECT level, count(*) FROM grids GROUP BY level"))
        totals = self._conn.execute(
            f"SELECT {', '.join(f'coalesce(sum({c}), 0)' for c in AGGREGATES)} FROM grids "
            "WHERE level = 'community'"
        ).fetchone()
        today = dt.date.today().isoformat()
        staffed = self._conn.execute(
            "SELECT count(DISTINCT grid_code) FROM assignments WHERE start_date <= ? AND "
            "(end_date IS NULL OR end_date = '' OR end_date >= ?)",
            (today, today),
        ).fetchone()[0]
        return {
            "grids": {lv.key: int(per_level.get(lv.key, 0)) for lv in Level},
            **{c: int(v) for c, v in zip(AGGREGATES, totals, strict=True)},
            "staff": self._conn.execute("SELECT count(*) FROM staff").fetchone()[0],
            "assignments": self._conn.execute("SELECT count(*) FROM assignments").fetchone()[0],
            "staffed_grids": int(staffed),
        }

    # -- feature layers

    def layers(self) -> dict[str, FeatureSchema]:
        """The feature layers in the file, by name."""
        if not self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'gis_grid_layers'"
        ).fetchone():
            return {}
        rows = self._conn.execute("SELECT name, schema FROM gis_grid_layers ORDER BY name")
        return {name: FeatureSchema.from_json(text) for name, text in rows}

    def _ensure_layer(self, conn: sqlite3.Connection, schema: FeatureSchema) -> None:
        """Create the layer's feature table (inside the transaction), or add new columns."""
        conn.execute(
            "CREATE TABLE IF NOT EXISTS gis_grid_layers "
            "(name TEXT PRIMARY KEY, schema TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        have = self.layers().get(schema.name)
        t = schema.name
        if have is not None:
            for column, kind in schema.kinds().items():
                if column not in have.kinds():
                    conn.execute(f'ALTER TABLE "{t}" ADD COLUMN "{column}" {_SQL_TYPES[kind]}')
            conn.execute(
                "UPDATE gis_grid_layers SET schema = ? WHERE name = ?", (schema.to_json(), t)
            )
            return
        gtype = _GPKG_TYPES[schema.geometry]
        cols = ", ".join(f'"{c}" {_SQL_TYPES[k]}' for c, k in schema.kinds().items() if c != "id")
        links = ", ".join(
            f'"{c}" {"REAL" if c in ("lon", "lat") else "TEXT"}' for c in LINK_COLUMNS
        )
        conn.execute(
            f'CREATE TABLE "{t}" ("fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
            f'"geom" {gtype}, "id" TEXT NOT NULL{", " + cols if cols else ""}, {links})'
        )
        conn.execute(f'CREATE UNIQUE INDEX "{t}_id" ON "{t}"(id)')
        for level in ("community", "area", "building"):
            conn.execute(f'CREATE INDEX "{t}_{level}" ON "{t}"({level}_code)')
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
            "last_change, srs_id) VALUES (?, 'features', ?, ?, ?, ?)",
            (t, f"{schema.zh} {t}", schema.description, now, _SRS_ID),
        )
        conn.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)", (t, gtype, _SRS_ID)
        )
        conn.execute(
            f'CREATE VIRTUAL TABLE "rtree_{t}_geom" USING rtree(id, minx, maxx, miny, maxy)'
        )
        # the R-tree and feature-count triggers GDAL made for grids, for this table
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'grids'"
        ).fetchall():
            conn.execute(
                sql.replace('"rtree_grids_geom', f'"rtree_{t}_geom')
                .replace('ON "grids"', f'ON "{t}"')
                .replace('_grids"', f'_{t}"')
                .replace("lower('grids')", f"lower('{t}')")
            )
        conn.execute(
            "INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', "
            "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
            (t,),
        )
        conn.execute("INSERT INTO gpkg_ogr_contents VALUES (?, 0)", (t,))
        conn.execute("INSERT INTO gis_grid_layers VALUES (?, ?, ?)", (t, schema.to_json(), now))

    def write_features(
        self, schema: FeatureSchema, features: gpd.GeoDataFrame, *, mode: str = "append"
    ) -> FeatureReport:
        """Write checked features with their grid chain; all or nothing."""
        check_layer(schema, mode)
        geoms = np.asarray(features.geometry.to_numpy(), dtype=object)
        lon, lat = link_points(geoms)
        chain = chain_frame(self.lookup(lon, lat))
        rows = features[list(schema.columns)].reset_index(drop=True)
        for f in schema.fields:
            if f.kind == "bool":
                rows[f.name] = rows[f.name].map(
                    lambda v: None if v is None or pd.isna(v) else int(v)
                )
        rows["lon"], rows["lat"] = lon, lat
        rows = pd.concat([rows, chain], axis=1)
        report = FeatureReport(
            schema.name, written=len(rows), unowned=int(chain["community_code"].isna().sum())
        )
        t = schema.name
        with self._transaction() as conn:
            self._ensure_layer(conn, schema)
            ids = rows["id"].tolist()
            if mode == "replace":
                report.replaced = conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                conn.execute(f'DELETE FROM "{t}"')
            else:
                present = self._in_chunks(f'SELECT id FROM "{t}" WHERE id IN ({{}})', ids)["id"]
                if mode == "append" and len(present):
                    shown = ", ".join(sorted(present.astype(str))[:10])
                    raise DuplicateCodeError(
                        f"{len(present)} {t} ids are already in the store ({shown}"
                        f"{' …' if len(present) > 10 else ''}); import with --mode upsert to "
                        "update them, or --mode replace to replace the layer"
                    )
                for i in range(0, len(present), _CHUNK):
                    part = present.iloc[i : i + _CHUNK].tolist()
                    conn.execute(
                        f'DELETE FROM "{t}" WHERE id IN ({",".join("?" * len(part))})', part
                    )
                report.replaced = len(present)
            cols = ("geom", *schema.columns, *LINK_COLUMNS)
            stored = to_multi_any(geoms)
            _bulk_insert(
                conn,
                t,
                cols,
                stored,
                [
                    (blob, *row)
                    for blob, row in zip(encode(stored), records(rows, cols[1:]), strict=True)
                ],
            )
            self._touch_layer(conn, t)
        return report

    def _touch_layer(self, conn: sqlite3.Connection, t: str) -> None:
        conn.execute(
            "UPDATE gis_grid_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        )
        conn.execute(
            f"UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), "
            f'min_x = (SELECT min(minx) FROM "rtree_{t}_geom"), '
            f'min_y = (SELECT min(miny) FROM "rtree_{t}_geom"), '
            f'max_x = (SELECT max(maxx) FROM "rtree_{t}_geom"), '
            f'max_y = (SELECT max(maxy) FROM "rtree_{t}_geom") WHERE table_name = ?',
            (t,),
        )

    def features(self, layer, *, bbox=None, under=None, where=None) -> gpd.GeoDataFrame:
        """A layer's features with their grid chain, filtered."""
        schema = registered(self.layers(), layer)
        terms, params = [], []
        if bbox is not None:
            minx, miny, maxx, maxy = map(float, bbox)
            terms.append(
                f'fid IN (SELECT id FROM "rtree_{layer}_geom" WHERE maxx >= ? AND minx <= ? '
                "AND maxy >= ? AND miny <= ?)"
            )
            params += [minx, maxx, miny, maxy]
        chunked: list[str] = []
        for column, op, value in feature_filters(schema, under=under, where=where):
            if op == "null":
                terms.append(f'"{column}" IS NULL')
            elif op == "in":
                chunked.append(column)
                terms.append(f'"{column}" IN (SELECT value FROM json_each(?))')
                params.append(json.dumps([_plain(v) for v in value]))
            elif op == "under":
                ors = [f'"{c}" IN (SELECT value FROM json_each(?))' for c in value]
                terms.append("(" + " OR ".join(ors) + ")")
                params += [json.dumps(codes) for codes in value.values()]
            else:
                terms.append(f'"{column}" {op} ?')
                params.append(_plain(value))
        cols = ", ".join(f'"{c}"' for c in (*schema.columns, *LINK_COLUMNS))
        sql = f'SELECT {cols}, geom FROM "{layer}"'
        if terms:
            sql += " WHERE " + " AND ".join(terms)
        frame = self._select(sql + " ORDER BY id", params)
        out = _feature_frame(schema, frame)
        if bbox is not None and len(out):
            out = out.loc[_meets(out.geometry.to_numpy(), bbox)].reset_index(drop=True)
        return out

    def _relink(self, conn: sqlite3.Connection, boxes: list, codes: list[str]) -> None:
        """Link again the features near grids just written or edited (inside the transaction)."""
        layers = self.layers()
        if not layers or not (boxes or codes):
            return
        grids = pd.concat([self.grids(bbox=b) for b in boxes], ignore_index=True)
        grids = grids.drop_duplicates("code").reset_index(drop=True)
        for name in layers:
            terms, params = [], []
            for minx, miny, maxx, maxy in boxes:
                terms.append("(lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?)")
                params += [minx, maxx, miny, maxy]
            for level in ("community", "area", "courtyard", "building", "unit"):
                mine = [c for c in codes if len(c) == CODE_LENGTHS[Level.parse(level)]]
                if mine:
                    terms.append(f"{level}_code IN (SELECT value FROM json_each(?))")
                    params.append(json.dumps(mine))
            cols = ", ".join(("fid", "lon", "lat", *CHAIN_COLUMNS))
            candidates = self._select(
                f'SELECT {cols} FROM "{name}" WHERE {" OR ".join(terms)}', params
            )
            changed = relinked(candidates, grids)
            if len(changed):
                conn.executemany(
                    f'UPDATE "{name}" SET {", ".join(f"{c} = ?" for c in CHAIN_COLUMNS)} '
                    "WHERE fid = ?",
                    records(changed, (*CHAIN_COLUMNS, "fid")),
                )


def _to_history(conn: sqlite3.Connection, old: gpd.GeoDataFrame, replaced_at: str) -> None:
    """Keep grid rows as they were, before they change or go (inside the transaction)."""
    cols = ("geom", *GRID_COLUMNS, "replaced_at", "community_code")
    conn.executemany(
        f"INSERT INTO grid_history ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        zip(
            encode(to_multi_any(old.geometry.to_numpy())),
            *(old[c].astype(object).where(old[c].notna(), None).tolist() for c in GRID_COLUMNS),
            [replaced_at] * len(old),
            old["code"].str.slice(0, 12).tolist(),
            strict=True,
        ),
    )


def _meets(geoms: np.ndarray, bbox) -> np.ndarray:
    """Which geometries' envelopes meet the box, exactly (as PostGIS's ``&&``).

    SQLite's R-tree keeps 32-bit envelopes, rounded outward (~1 m here), so what
    it returns for a box is a superset to be narrowed.
    """
    b = shapely.bounds(geoms)
    minx, miny, maxx, maxy = map(float, bbox)
    return (b[:, 2] >= minx) & (b[:, 0] <= maxx) & (b[:, 3] >= miny) & (b[:, 1] <= maxy)


def _plain(value):
    """A filter value as SQLite takes it."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if hasattr(value, "item"):
        return value.item()
    return value


def _feature_frame(schema: FeatureSchema, frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """Rows read from a layer table, typed as the schema says, geometry decoded."""
    blobs = frame.pop("geom").tolist() if "geom" in frame else []
    geoms = from_multi_any(decode(blobs)) if len(blobs) else np.array([], dtype=object)
    return type_features(schema, frame, geoms)


def _audit(conn: sqlite3.Connection, row: tuple) -> None:
    """Add an audit row inside the caller's transaction."""
    conn.execute(
        f"INSERT INTO gis_grid_audit ({', '.join(AUDIT_WRITE)}) VALUES (?, ?, ?, ?, ?, ?, ?)", row
    )

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
from numpy.typing import ArrayLike

from gis_grid.domain.errors import BusyError, StoreError
from gis_grid.domain.messages import say
from gis_grid.domain.model import (
    AGGREGATES,
    ASSIGNMENT_COLUMNS,
    GRID_COLUMNS,
    STAFF_COLUMNS,
    utc_now,
)
from gis_grid.geo.crs import WGS84
from gis_grid.grids.lookup import GridIndex
from gis_grid.store.base import StoreBase
from gis_grid.store.gpkg.access import GeoPackageAccess
from gis_grid.store.gpkg.cases import GeoPackageCases
from gis_grid.store.gpkg.grids import GeoPackageGrids
from gis_grid.store.gpkg.layers import GeoPackageLayers
from gis_grid.store.gpkg.revisions import GeoPackageRevisions
from gis_grid.store.gpkg.sqlite import CHUNK, register_functions

SCHEMA_VERSION = "6"
#: How long a write waits for another writer to finish before it gives up (seconds).
WAIT_SECONDS = 60.0
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
#: Tokens that expire, and when each was last used (schema version 4).
_TOKEN_COLUMNS = """
ALTER TABLE gis_grid_users ADD COLUMN expires_at TEXT;
ALTER TABLE gis_grid_users ADD COLUMN last_used_at TEXT;
"""
#: The case log: one row per step of a case, appended (schema version 5).
_CASE_TABLES = """
CREATE TABLE IF NOT EXISTS gis_grid_case_log (
    case_id TEXT NOT NULL, seq INTEGER NOT NULL CHECK (seq >= 1), community_code TEXT,
    action TEXT NOT NULL,
    from_status TEXT, to_status TEXT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
    staff_id TEXT, at TEXT NOT NULL, received_at TEXT NOT NULL, due TEXT, on_time BOOLEAN,
    note TEXT, detail TEXT, PRIMARY KEY (case_id, seq));
CREATE INDEX IF NOT EXISTS gis_grid_case_log_at ON gis_grid_case_log(at);
CREATE TRIGGER IF NOT EXISTS gis_grid_case_log_append_only BEFORE UPDATE ON gis_grid_case_log
BEGIN SELECT RAISE(ABORT, 'the case log is append-only'); END;
"""


def _index_layer_times(conn: sqlite3.Connection) -> None:
    """Schema version 6: each layer's own time is indexed (a week is read, not the table)."""
    from gis_grid.store.gpkg.layers import index_time_column

    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gis_grid_layers'"
    ).fetchone():
        return
    for name, text in conn.execute("SELECT name, schema FROM gis_grid_layers").fetchall():
        index_time_column(conn, name, json.loads(text)["kinds"])


#: What upgrades a file from each earlier schema version to the next: a script, or a
#: function of the connection (inside the upgrade's transaction).
_UPGRADES = {
    "1": ("2", _LOG_TABLES),
    "2": ("3", _ACCESS_TABLES),
    "3": ("4", _TOKEN_COLUMNS),
    "4": ("5", _CASE_TABLES),
    "5": ("6", _index_layer_times),
}


class GeoPackageStore(
    GeoPackageGrids,
    GeoPackageRevisions,
    GeoPackageLayers,
    GeoPackageAccess,
    GeoPackageCases,
    StoreBase,
):
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

    def __init__(
        self, path: str | os.PathLike, *, create: bool = True, wait_seconds: float = WAIT_SECONDS
    ) -> None:
        self.path = Path(path)
        self.wait_seconds = wait_seconds
        self.url = str(self.path)
        if not self.path.exists():
            if not create:
                raise StoreError(say("problem_no_store_file", path=str(self.path)))
            self._create()
        # a writer waits this long for another to finish (SQLite's busy timeout), then is
        # told who holds the file: never "database is locked" from deep inside a write
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=wait_seconds
        )
        self._conn.execute("PRAGMA foreign_keys = OFF")
        # a city is ~500k grids with five indexes: keep their pages in memory while writing
        self._conn.execute("PRAGMA cache_size = -262144")  # KiB, i.e. 256 MiB at most
        self._conn.execute("PRAGMA temp_store = MEMORY")
        register_functions(self._conn)
        self._check_schema()
        self._index: GridIndex | None = None
        self._index_stamp: int | None = None
        self._write_ahead = False  # set by write_ahead(); close() then folds the log back

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
                {_TOKEN_COLUMNS}
                {_CASE_TABLES}
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
            raise StoreError(
                say("problem_not_gis_grid_file", path=str(self.path), why=str(exc))
            ) from exc
        while row is not None and row[0] in _UPGRADES:  # older files gain the new tables
            version, script = _UPGRADES[row[0]]
            bump = f"UPDATE gis_grid_meta SET value = '{version}' WHERE key = 'schema_version';"
            if callable(script):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    script(self._conn)
                    self._conn.execute(bump)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            else:
                self._conn.executescript(f"BEGIN IMMEDIATE; {script} {bump} COMMIT;")
            row = (version,)
        if row is None or row[0] != SCHEMA_VERSION:
            raise StoreError(
                say(
                    "problem_schema_version",
                    path=str(self.path),
                    have=row and row[0],
                    want=SCHEMA_VERSION,
                )
            )

    def write_ahead(self) -> None:
        """Commit through a write-ahead log while this store serves, as QGIS does while editing.

        A server's many small writes (a case report, a step) then cost one sync
        each instead of a rollback journal's several, and readers in other
        processes no longer wait for a writer. :meth:`close` folds the log back
        into the one file (when no other process holds it open), so the file
        travels alone again. Best effort: a file another process holds stays as
        it is.
        """
        try:
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError:
            return
        # FULL: an answered report is on disk even if the power fails
        self._conn.execute("PRAGMA synchronous = FULL")
        self._write_ahead = mode.lower() == "wal"

    def close(self) -> None:
        """Close the connection (folding a write-ahead log this store began back into the file)."""
        if self._write_ahead:
            try:
                self._conn.execute("PRAGMA journal_mode = DELETE")
            except sqlite3.OperationalError:  # another process has it open: it stays WAL
                pass
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
            for chunk in (values[i : i + CHUNK] for i in range(0, len(values), CHUNK))
        ]
        return pd.concat(frames, ignore_index=True) if frames else self._select(sql.format("NULL"))

    def generation(self) -> int:
        """A number that grows with every write (grids, staff, features): a cache key."""
        return self._generation()

    def grid_generation(self) -> int:
        """A number only grid, staff and assignment writes advance (feature writes do not)."""
        return self._grid_generation()

    def _grid_generation(self) -> int:
        """Advanced by grid, staff and assignment writes only: what lookup indexes key on."""
        row = self._conn.execute(
            "SELECT value FROM gis_grid_meta WHERE key = 'grid_generation'"
        ).fetchone()
        return int(row[0]) if row else 0

    def _generation(self) -> int:
        return int(
            self._conn.execute(
                "SELECT value FROM gis_grid_meta WHERE key = 'generation'"
            ).fetchone()[0]
        )

    # -- writing

    def wait_at_most(self, seconds: float) -> None:
        """How long a write through this store waits for another writer (seconds)."""
        self.wait_seconds = float(seconds)
        self._conn.execute(f"PRAGMA busy_timeout = {int(self.wait_seconds * 1000)}")

    @property
    def _busy_file(self) -> Path:
        """Beside the store while a write holds it: what the write is, for whoever waits."""
        return self.path.with_name(self.path.name + ".writing")

    @contextmanager
    def _transaction(self, what: str = "a write") -> Iterator[sqlite3.Connection]:
        """One write: it waits its turn (``wait_seconds`` at most), commits whole or nothing."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise BusyError(
                say("problem_busy", holder=self._holder(), seconds=f"{self.wait_seconds:g}")
            ) from None
        note = f"{what} (pid {os.getpid()}, since {utc_now()})"
        try:
            self._busy_file.write_text(note, encoding="utf-8")
        except OSError:  # a read-only folder: the waiting writer is told less
            pass
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._busy_file.unlink(missing_ok=True)

    def _holder(self) -> str:
        """What holds the file now, as its writer said (or 'another write')."""
        try:
            return self._busy_file.read_text(encoding="utf-8").strip() or "another write"
        except OSError:
            return "another write"

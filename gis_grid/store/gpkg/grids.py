"""The GeoPackage store's grids, staff and assignments.

Reads by level, code, subtree and box (through GDAL's R-tree); checked writes
in one SQLite transaction (the shared checks of :mod:`gis_grid.store.checks`,
aggregates summed upward, history kept); lookups from an in-memory
:class:`~gis_grid.grids.lookup.GridIndex` rebuilt when the file changes;
statistics and validation.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from gis_grid.domain.model import (
    AGGREGATES,
    ASSIGNMENT_COLUMNS,
    CODE_LENGTHS,
    GRID_COLUMNS,
    STAFF_COLUMNS,
    Level,
    rollup,
    utc_now,
)
from gis_grid.geo.crs import WGS84
from gis_grid.grids.lookup import GridIndex
from gis_grid.grids.topology import ValidationOptions, validate
from gis_grid.layers.features import from_multi_any, to_multi_any
from gis_grid.store.base import (
    ChangeSet,
    WriteReport,
    empty_lookup,
    link_boxes,
    records,
    with_load_problem,
)
from gis_grid.store.checks import (
    Existing,
    check_changeset,
    check_update,
    community_of,
    touched_communities,
)
from gis_grid.store.gpkg.layers import meets
from gis_grid.store.gpkg.sqlite import CHUNK, GRID_GENERATION_BUMP, bulk_insert, decode, encode
from gis_grid.store.revisions import write_payloads


def to_history(conn: sqlite3.Connection, old: gpd.GeoDataFrame, replaced_at: str) -> None:
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


#: Up to this many grids a map click is answered from an in-memory index of the file.
CHAIN_INDEX_MAX = 200_000


class GeoPackageGrids:
    """Grids, staff and assignments: reads, checked writes, history, lookups, validation."""

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
                for part in (wanted[i : i + CHUNK] for i in range(0, len(wanted), CHUNK))
            ]
        elif under is not None:
            roots = sorted({str(c) for c in np.atleast_1d(under)})
            chunks = [
                (
                    "(" + " OR ".join("(g.code >= ? AND g.code < ?)" for _ in part) + ")",
                    [v for r in part for v in (r, r + ":")],
                )
                for part in (roots[i : i + CHUNK // 2] for i in range(0, len(roots), CHUNK // 2))
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
            keep = meets(geoms, bbox)
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

    def _communities_near(self, bbox: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
        """Community outlines whose box meets ``bbox`` (through the R-tree)."""
        return self.grids(level="community", bbox=bbox)

    def _existing_codes(self, codes: list[str]) -> set[str]:
        found = self._in_chunks("SELECT code FROM grids WHERE code IN ({})", codes)
        return set(found["code"])

    def _existing_staff(self, ids: list[str]) -> set[str]:
        found = self._in_chunks("SELECT staff_id FROM staff WHERE staff_id IN ({})", ids)
        return set(found["staff_id"])

    def apply(self, changes: ChangeSet, options: ValidationOptions | None = None) -> WriteReport:
        """Write a change set in one transaction; on any error nothing changes."""
        communities = touched_communities(changes)
        with self._transaction(f"an import into {self.path.name}") as conn:
            current = self.grids(under=communities)  # every code starts with its community's
            existing = Existing(
                grids=current,
                has_codes=self._existing_codes,
                has_staff=self._existing_staff,
                neighbours=self._communities_near,
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
                bulk_insert(conn, "grids", ("geom", *GRID_COLUMNS, "community_code"), geoms, rows)
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
            conn.execute(GRID_GENERATION_BUMP)
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
        with self._transaction("an edit of grids") as conn:  # one writer at a time
            current = self.grids(under=communities)  # every code starts with its community's
            new = check_update(edits, current, options, self._communities_near)
            old = current.set_index("code").loc[new["code"]].reset_index()
            to_history(conn, old, now)
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
            conn.execute(GRID_GENERATION_BUMP)
        return WriteReport(grids=len(new), communities=communities)

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

    def index(self) -> GridIndex:
        """The in-memory point-lookup index, rebuilt after a grid, staff or assignment write."""
        stamp = self._grid_generation()
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

    def chain(self, lon: float, lat: float) -> list[dict]:
        """The grids at a point with their staff, from an in-memory index of this file.

        The index (:class:`~gis_grid.grids.queries.Chains`) is built on the first
        click and again after any write or at midnight (staff in force change by
        date); a map click then costs a few tree queries instead of reads and
        pandas. Files of more than :data:`CHAIN_INDEX_MAX` grids are answered
        through the lookup index and reads (PostGIS builds its index in the
        background; a file this large belongs there).
        """
        from gis_grid.grids.queries import chain_by_lookup

        chains = self.chain_index()
        if chains is None:
            return chain_by_lookup(self, lon, lat)
        return chains.chain(lon, lat)

    def chain_index(self):
        """The in-memory grids and staff in force (:class:`~gis_grid.grids.queries.Chains`).

        Built on first use and again after a grid write or at midnight; None for
        files of more than :data:`CHAIN_INDEX_MAX` grids.
        """
        from gis_grid.grids.queries import Chains

        stamp = (self._grid_generation(), dt.date.today().isoformat())
        chains = getattr(self, "_chains", None)
        if chains is None or chains.stamp != stamp:
            count = self._conn.execute("SELECT count(*) FROM grids").fetchone()[0]
            if count > CHAIN_INDEX_MAX:
                return None
            chains = self._chains = Chains.of(self, stamp, index=self.index())
        return chains

    def validate(self, options: ValidationOptions | None = None) -> gpd.GeoDataFrame:
        """All topology problems of the store (and an unfinished load, if one is)."""
        problems = validate(self.grids(), self.assignments(), options)
        return with_load_problem(problems, self.load_marker())

    def load_marker(self) -> dict | None:
        """What a load under way (``copy``, ``demo``) has done, or None when none is."""
        row = self._conn.execute("SELECT value FROM gis_grid_meta WHERE key = 'loading'").fetchone()
        return json.loads(row[0]) if row else None

    def mark_load(self, marker: dict | None) -> None:
        """Note a load's progress (a write of its own), or clear the note with None."""
        with self._transaction("a note of a load's progress") as conn:
            conn.execute("DELETE FROM gis_grid_meta WHERE key = 'loading'")
            if marker is not None:
                conn.execute(
                    "INSERT INTO gis_grid_meta VALUES ('loading', ?)",
                    (json.dumps(marker, ensure_ascii=False),),
                )

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

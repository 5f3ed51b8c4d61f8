"""The PostGIS store's grids, staff and assignments.

Reads; checked writes (``COPY``, advisory locks per community, the shared
checks of :mod:`gis_grid.store.checks` inside the transaction, aggregates
summed upward in SQL, polygons subdivided into ``grid_parts``); history,
statistics and validation in SQL.
"""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely

from gis_grid.domain.errors import DuplicateCodeError, InputError, OrphanError
from gis_grid.domain.messages import say
from gis_grid.domain.model import (
    AGGREGATES,
    ASSIGNMENT_COLUMNS,
    GRID_COLUMNS,
    STAFF_COLUMNS,
    Level,
    utc_now,
)
from gis_grid.geo.crs import WGS84
from gis_grid.grids.topology import ValidationOptions
from gis_grid.layers.features import from_multi_any, to_multi_any
from gis_grid.store.base import ChangeSet, WriteReport, link_boxes, records, with_load_problem
from gis_grid.store.checks import (
    Existing,
    check_changeset,
    check_update,
    community_of,
    touched_communities,
)
from gis_grid.store.postgis import partitions
from gis_grid.store.postgis.connection import SUBDIVIDE
from gis_grid.store.postgis.lookup import refreshes_chains
from gis_grid.store.revisions import write_payloads


class PostGISGrids:
    """Grids, staff and assignments: reads, checked writes, history, statistics, validation."""

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

    @refreshes_chains
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
                    neighbours=lambda box: self._communities_near(cur, box, communities),
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
                    # a community's first grids: its partition of every partitioned table
                    partitions.ensure_everywhere(cur, communities)
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
            raise DuplicateCodeError(
                say("problem_db_duplicate", detail=exc.diag.message_detail)
            ) from exc
        except psycopg.errors.ForeignKeyViolation as exc:
            raise OrphanError(say("problem_db_reference", detail=exc.diag.message_detail)) from exc
        except psycopg.errors.CheckViolation as exc:
            raise InputError(
                say(
                    "problem_db_refused",
                    constraint=exc.diag.constraint_name,
                    detail=exc.diag.message_primary,
                )
            ) from exc
        return report

    @refreshes_chains
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
            new = check_update(
                edits, current, options, lambda box: self._communities_near(cur, box, communities)
            )
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
            [SUBDIVIDE, communities, codes],
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

    def _communities_near(self, cur, bbox, communities: list[str]) -> gpd.GeoDataFrame:
        """Other communities' outlines whose box meets ``bbox`` (GiST), read in the write.

        Writes of community outlines queue up on one lock, so two communities
        written at the same time cannot both pass this check over each other.
        """
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('gis-grid community outlines'))")
        return self._read_grids(
            cur,
            [
                "level = 'community'",
                "geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)",
                "community_code <> ALL(%s)",
            ],
            [*map(float, bbox), list(communities)],
        )

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
            [SUBDIVIDE, grids["code"].tolist()],
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
            problems = validate_in_sql(cur, options or ValidationOptions())
        return with_load_problem(problems, self.load_marker())

    def load_marker(self) -> dict | None:
        """What a load under way (``copy``, ``demo``) has done, or None when none is."""
        with self._cursor() as cur:
            cur.execute("SELECT value FROM meta WHERE key = 'loading'")
            row = cur.fetchone()
        return json.loads(row[0]) if row else None

    def mark_load(self, marker: dict | None) -> None:
        """Note a load's progress (a write of its own), or clear the note with None."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("DELETE FROM meta WHERE key = 'loading'")
            if marker is not None:
                cur.execute(
                    "INSERT INTO meta VALUES ('loading', %s)",
                    [json.dumps(marker, ensure_ascii=False)],
                )

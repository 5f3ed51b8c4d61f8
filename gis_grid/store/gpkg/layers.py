"""Thematic layers in the GeoPackage: one feature table per layer.

Each layer's table is made from its schema as a real GeoPackage feature table
(QGIS opens it); writes are checked and linked to the grids in one
transaction; reads filter by box, subtree and column values; boundary
changes relink the features near them.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import DuplicateCodeError
from gis_grid.domain.messages import say
from gis_grid.domain.model import CHAIN_COLUMNS, CODE_LENGTHS, LINK_COLUMNS, Level
from gis_grid.layers.features import (
    FeatureSchema,
    from_multi_any,
    link_points,
    to_multi_any,
    type_features,
)
from gis_grid.store.base import (
    FeatureReport,
    chain_frame,
    check_layer,
    event_column,
    feature_filters,
    local_now,
    records,
    registered,
    relinked,
    with_communities,
)
from gis_grid.store.gpkg.sqlite import CHUNK, SRS_ID, bulk_insert, decode, encode

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


def meets(geoms: np.ndarray, bbox) -> np.ndarray:
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


def feature_frame(schema: FeatureSchema, frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """Rows read from a layer table, typed as the schema says, geometry decoded."""
    blobs = frame.pop("geom").tolist() if "geom" in frame else []
    geoms = from_multi_any(decode(blobs)) if len(blobs) else np.array([], dtype=object)
    return type_features(schema, frame, geoms)


class GeoPackageLayers:
    """Thematic layers: their tables, checked writes, reads and relinking."""

    def layers(self) -> dict[str, FeatureSchema]:
        """The feature layers in the file, by name."""
        if not self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'gis_grid_layers'"
        ).fetchone():
            return {}
        rows = self._conn.execute("SELECT name, schema FROM gis_grid_layers ORDER BY name")
        return {name: FeatureSchema.from_json(text) for name, text in rows}

    def ensure_layer(self, schema: FeatureSchema) -> None:
        """Create the layer's table, or add the columns a newer schema has; one transaction."""
        with self._transaction(f"an upgrade of layer {schema.name}") as conn:
            self._ensure_layer(conn, schema)

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
            index_time_column(conn, t, schema.kinds())
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
        index_time_column(conn, t, schema.kinds())
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
            "last_change, srs_id) VALUES (?, 'features', ?, ?, ?, ?)",
            (t, f"{schema.zh} {t}", schema.description, now, SRS_ID),
        )
        conn.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)", (t, gtype, SRS_ID)
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
        self,
        schema: FeatureSchema,
        features: gpd.GeoDataFrame,
        *,
        mode: str = "append",
        log: pd.DataFrame | None = None,
    ) -> FeatureReport:
        """Write checked features with their grid chain; all or nothing.

        ``log``: case log rows of these features (cases), written in the same
        transaction; the log of replaced features goes with them.
        """
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
        with self._transaction(f"an import of {schema.name} features") as conn:
            self._ensure_layer(conn, schema)
            ids = rows["id"].tolist()
            if mode == "replace":
                report.replaced = conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                conn.execute(f'DELETE FROM "{t}"')
                if log is not None:
                    self._write_log(conn, None, drop="all")
            else:
                present = self._in_chunks(f'SELECT id FROM "{t}" WHERE id IN ({{}})', ids)["id"]
                if mode == "append" and len(present):
                    shown = ", ".join(sorted(present.astype(str))[:10])
                    raise DuplicateCodeError(
                        say(
                            "problem_ids_stored",
                            n=len(present),
                            layer=t,
                            shown=shown + (" …" if len(present) > 10 else ""),
                        )
                    )
                for i in range(0, len(present), CHUNK):
                    part = present.iloc[i : i + CHUNK].tolist()
                    conn.execute(
                        f'DELETE FROM "{t}" WHERE id IN ({",".join("?" * len(part))})', part
                    )
                report.replaced = len(present)
                if log is not None:
                    self._write_log(conn, None, drop=present.tolist())
            cols = ("geom", *schema.columns, *LINK_COLUMNS)
            stored = to_multi_any(geoms)
            bulk_insert(
                conn,
                t,
                cols,
                stored,
                [
                    (blob, *row)
                    for blob, row in zip(encode(stored), records(rows, cols[1:]), strict=True)
                ],
            )
            if log is not None:
                self._write_log(conn, with_communities(log, rows))
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
        out = feature_frame(schema, frame)
        if bbox is not None and len(out):
            out = out.loc[meets(out.geometry.to_numpy(), bbox)].reset_index(drop=True)
        return out

    def _relink(self, conn: sqlite3.Connection, boxes: list, codes: list[str]) -> None:
        """Link again the features near grids just written or edited (inside the transaction).

        Events reported before now keep the grids of their day (see
        :func:`~gis_grid.store.base.relinked`); ``codes`` are the grids removed.
        """
        layers = self.layers()
        if not layers or not (boxes or codes):
            return
        grids = pd.concat([self.grids(bbox=b) for b in boxes], ignore_index=True)
        grids = grids.drop_duplicates("code").reset_index(drop=True)
        since = local_now()
        for name, schema in layers.items():
            terms, params = [], []
            for minx, miny, maxx, maxy in boxes:
                terms.append("(lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?)")
                params += [minx, maxx, miny, maxy]
            owned = "owner_code" in schema.kinds()
            for level in ("community", "area", "courtyard", "building", "unit"):
                mine = [c for c in codes if len(c) == CODE_LENGTHS[Level.parse(level)]]
                if mine:
                    terms.append(f"{level}_code IN (SELECT value FROM json_each(?))")
                    params.append(json.dumps(mine))
            if owned and codes:
                terms.append("owner_code IN (SELECT value FROM json_each(?))")
                params.append(json.dumps(list(codes)))
            event = event_column(schema)
            cols = ", ".join(
                (
                    "fid",
                    "lon",
                    "lat",
                    *CHAIN_COLUMNS,
                    *(["owner_code"] if owned else []),
                    *([f'"{event}" AS event_time'] if event else []),
                )
            )
            candidates = self._select(
                f'SELECT {cols} FROM "{name}" WHERE {" OR ".join(terms)}', params
            )
            changed = relinked(candidates, grids, since=since, removed=codes)
            if len(changed):
                written = (*CHAIN_COLUMNS, *(["owner_code"] if owned else []))
                conn.executemany(
                    f'UPDATE "{name}" SET {", ".join(f"{c} = ?" for c in written)} WHERE fid = ?',
                    records(changed, (*written, "fid")),
                )


def index_time_column(conn: sqlite3.Connection, table: str, kinds: dict[str, str]) -> None:
    """Index a layer's own time (see :attr:`FeatureSchema.time_column`), once."""
    from gis_grid.layers.features import first_time_column

    column = first_time_column(kinds)
    if column is not None:
        conn.execute(f'CREATE INDEX IF NOT EXISTS "{table}_{column}" ON "{table}"("{column}")')

"""Thematic layers in PostGIS.

One table per layer made from its schema, checked writes by ``COPY``,
filtered reads, and relinking to the grids when boundaries change.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from psycopg import sql

from gis_grid.domain.errors import DuplicateCodeError
from gis_grid.domain.messages import say
from gis_grid.domain.model import CHAIN_COLUMNS, LINK_COLUMNS, level_of_code
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
from gis_grid.store.postgis import partitions
from gis_grid.store.postgis.connection import ANALYZE_AFTER, plain

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


def read_layers(cur) -> dict[str, FeatureSchema]:
    """The layers registered in the database, by name."""
    cur.execute("SELECT name, schema FROM layers ORDER BY name")
    return {name: FeatureSchema.from_json(text) for name, text in cur.fetchall()}


def select_columns(kinds: dict[str, str], columns) -> list[sql.Composable]:
    """A layer's columns as the store reads them: times as text, no community as NULL."""
    return [
        sql.SQL("{}::text").format(sql.Identifier(c))
        if kinds.get(c) in ("time", "date")
        else sql.SQL("nullif(community_code, '') AS community_code")
        if c == "community_code"
        else sql.Identifier(c)
        for c in columns
    ]


def feature_terms(schema, under, where) -> tuple[list, dict]:
    """SQL terms (AND-ed) with named parameters for a layer's filters."""
    terms, params = [], {}

    def value(v) -> sql.Placeholder:
        name = f"f{len(params)}"
        params[name] = v
        return sql.Placeholder(name)

    for column, op, arg in feature_filters(schema, under=under, where=where):
        name = sql.Identifier(column) if column else None
        if op == "null":
            terms.append(
                sql.SQL("{} = ''" if column == "community_code" else "{} IS NULL").format(name)
            )
        elif op == "in":
            terms.append(sql.SQL("{} = ANY({})").format(name, value([plain(v) for v in arg])))
        elif op == "under":
            # the communities too: the query then reads their partitions only
            communities = sorted({code[:12] for codes in arg.values() for code in codes})
            terms.append(sql.SQL("community_code = ANY({})").format(value(communities)))
            terms.append(
                sql.SQL("(")
                + sql.SQL(" OR ").join(
                    sql.SQL("{} = ANY({})").format(sql.Identifier(c), value(codes))
                    for c, codes in arg.items()
                )
                + sql.SQL(")")
            )
        else:
            terms.append(sql.SQL("{} " + op + " {}").format(name, value(plain(arg))))
    return terms, params


class PostGISLayers:
    """Thematic layers: their tables, checked writes, reads and relinking."""

    def layers(self) -> dict[str, FeatureSchema]:
        """The feature layers in the database, by name."""
        with self._cursor() as cur:
            return read_layers(cur)

    def ensure_layer(self, schema: FeatureSchema) -> None:
        """Create the layer's table, or add the columns a newer schema has; one transaction."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["layer:" + schema.name])
            self._ensure_layer(cur, schema)

    @staticmethod
    def _ensure_layer(cur, schema: FeatureSchema) -> None:
        """Create the layer's table (inside the transaction), or add new columns."""
        t = sql.Identifier(schema.name)
        have = read_layers(cur).get(schema.name)
        if have is not None:
            for column, kind in schema.kinds().items():
                if column not in have.kinds():
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                            t, sql.Identifier(column), sql.SQL(_PG_TYPES[kind])
                        )
                    )
            index_time_column(cur, schema.name, schema.kinds())
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
                sql.Identifier(c),
                sql.SQL(
                    "double precision"
                    if c in ("lon", "lat")
                    else "text NOT NULL"  # the partition key: NONE outside every community
                    if c == "community_code"
                    else "text"
                ),
            )
            for c in LINK_COLUMNS
        ]
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (id text NOT NULL, {}, geom geometry({}, 4326) NOT NULL, "
                "PRIMARY KEY (community_code, id)) PARTITION BY LIST (community_code)"
            ).format(
                t, sql.SQL(", ").join([*columns, *links]), sql.SQL(_PG_GEOMETRY[schema.geometry])
            )
        )
        for suffix, expr in (
            ("id", "(id)"),  # a case by its id, whatever its community
            ("geom", "USING gist (geom)"),
            ("area", "(area_code)"),
            ("building", "(building_code)"),
            ("lonlat", "(lon, lat)"),
        ):
            cur.execute(
                sql.SQL("CREATE INDEX {} ON {} " + expr).format(
                    sql.Identifier(f"{schema.name}_{suffix}"), t
                )
            )
        partitions.ensure(cur, schema.name, partitions.community_keys(cur))
        index_time_column(cur, schema.name, schema.kinds())
        cur.execute(
            "INSERT INTO layers VALUES (%s, %s, %s)",
            [schema.name, schema.to_json(), dt.datetime.now(dt.UTC).isoformat()],
        )

    def write_features(
        self,
        schema: FeatureSchema,
        features: gpd.GeoDataFrame,
        *,
        mode: str = "append",
        log: pd.DataFrame | None = None,
    ) -> FeatureReport:
        """Write checked features with their grid chain (COPY); all or nothing.

        ``log``: case log rows of these features (cases), written in the same
        transaction; the log of replaced features goes with them.
        """
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
                if log is not None:
                    self._write_log(cur, None, drop="all")
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
                        say(
                            "problem_ids_stored",
                            n=len(present),
                            layer=schema.name,
                            shown=shown + (" …" if len(present) > 10 else ""),
                        )
                    )
                cur.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(t), [present])
                report.replaced = len(present)
                if log is not None:
                    self._write_log(cur, None, drop=present)
            rows["community_code"] = rows["community_code"].map(partitions.key_of)
            partitions.ensure(cur, schema.name, rows["community_code"].unique())
            copy_sql = sql.SQL("COPY {} ({}, geom) FROM STDIN").format(
                t, sql.SQL(", ").join(map(sql.Identifier, cols))
            )
            with cur.copy(copy_sql) as copy:
                for row, geom in zip(records(rows, cols), ewkb, strict=True):
                    copy.write_row((*row, geom))
            if log is not None:
                self._write_log(cur, with_communities(log, rows))
        self._analyze({schema.name: report.written})
        return report

    def _analyze(self, written: dict[str, int]) -> None:
        """Refresh the planner's statistics of tables that just took a bulk load.

        ``written`` maps tables to the rows just written; those with at least
        :data:`ANALYZE_AFTER` are analysed (after the commit: the write is
        already safe). Autovacuum gets there within a minute or so; until then
        a freshly loaded city is planned as if empty — tiles of a 511,466-grid
        load were planned for 53 rows where there were 58,000.
        """
        tables = [table for table, rows in written.items() if rows >= ANALYZE_AFTER]
        if tables:
            with self._cursor() as cur:
                cur.execute(
                    sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
                )

    def features(self, layer, *, bbox=None, under=None, where=None) -> gpd.GeoDataFrame:
        """A layer's features with their grid chain, filtered."""
        with self._cursor() as cur:
            schema = registered(read_layers(cur), layer)
            query, params = self._features_query(schema, bbox=bbox, under=under, where=where)
            cur.execute(query, params)
            rows = cur.fetchall()
        names = [*schema.columns, *LINK_COLUMNS, "wkb"]
        frame = pd.DataFrame(rows, columns=names) if rows else pd.DataFrame({c: [] for c in names})
        wkb = frame.pop("wkb").to_numpy(dtype=object)
        geoms = from_multi_any(shapely.from_wkb(wkb)) if len(wkb) else np.array([], dtype=object)
        return type_features(schema, frame, geoms)

    def _features_query(self, layer, *, bbox=None, under=None, where=None) -> tuple:
        """The query :meth:`features` runs, with its parameters (``layer``: name or schema).

        Filtered by grids (``under``) or by community, it reads those
        communities' partitions only.
        """
        schema = registered(self.layers(), layer) if isinstance(layer, str) else layer
        terms, params = feature_terms(schema, under, where)
        if bbox is not None:
            terms.append(sql.SQL("geom && ST_MakeEnvelope(%(b0)s, %(b1)s, %(b2)s, %(b3)s, 4326)"))
            params |= {f"b{i}": float(v) for i, v in enumerate(bbox)}
        select = select_columns(schema.kinds(), (*schema.columns, *LINK_COLUMNS))
        query = sql.SQL("SELECT {}, ST_AsBinary(geom) FROM {}").format(
            sql.SQL(", ").join(select), sql.Identifier(schema.name)
        )
        if terms:
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(terms)
        return query + sql.SQL(' ORDER BY id COLLATE "C"'), params  # as SQLite sorts

    def _relink(self, cur, boxes: list, codes: list[str]) -> None:
        """Link again the features near grids just written or edited (inside the transaction).

        Events reported before now keep the grids of their day (see
        :func:`~gis_grid.store.base.relinked`); ``codes`` are the grids removed.
        """
        layers = read_layers(cur)
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
        since = local_now()
        for name, schema in layers.items():
            terms, params = [], []
            for minx, miny, maxx, maxy in boxes:
                terms.append(sql.SQL("(lon BETWEEN %s AND %s AND lat BETWEEN %s AND %s)"))
                params += [minx, maxx, miny, maxy]
            for column in CHAIN_COLUMNS:
                mine = [c for c in codes if f"{level_of_code(c).key}_code" == column]
                if mine:
                    terms.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)))
                    params.append(mine)
            owned = "owner_code" in schema.kinds()
            if owned and codes:
                terms.append(sql.SQL("owner_code = ANY(%s)"))
                params.append(list(codes))
            event = event_column(schema)
            written = [*CHAIN_COLUMNS, *(["owner_code"] if owned else [])]
            read = select_columns({}, written)
            extra = (
                [
                    sql.SQL("""to_char({}, 'YYYY-MM-DD"T"HH24:MI:SS') AS event_time""").format(
                        sql.Identifier(event)
                    )
                ]
                if event
                else []
            )
            cur.execute(
                sql.SQL("SELECT id, lon, lat, {} FROM {} WHERE {}").format(
                    sql.SQL(", ").join([*read, *extra]),
                    sql.Identifier(name),
                    sql.SQL(" OR ").join(terms),
                ),
                params,
            )
            names = ["id", "lon", "lat", *written, *(["event_time"] if event else [])]
            candidates = pd.DataFrame(cur.fetchall(), columns=names)
            changed = relinked(candidates, grids, since=since, removed=codes)
            if not len(changed):
                continue
            changed = changed.assign(
                community_code=changed["community_code"].map(partitions.key_of)
            )
            columns = ", ".join(f"{c} text" for c in written)
            cur.execute(f"CREATE TEMP TABLE relinked (id text, {columns}) ON COMMIT DROP")
            with cur.copy(f"COPY relinked (id, {', '.join(written)}) FROM STDIN") as copy:
                for row in records(changed, ("id", *written)):
                    copy.write_row(row)
            t = sql.Identifier(name)
            # a feature now in another community moves partition: deleted and written
            # again, never its key updated (as a Citus cluster requires of its shards)
            everything = [*schema.columns, *LINK_COLUMNS, "geom"]
            cur.execute(
                sql.SQL(
                    "WITH gone AS (DELETE FROM {t} f USING relinked r WHERE f.id = r.id "
                    "AND f.community_code <> r.community_code RETURNING f.*) "
                    "INSERT INTO {t} ({cols}) SELECT {values} FROM gone g JOIN relinked r "
                    "ON r.id = g.id"
                ).format(
                    t=t,
                    cols=sql.SQL(", ").join(map(sql.Identifier, everything)),
                    values=sql.SQL(", ").join(
                        sql.SQL("{}.{}").format(
                            sql.Identifier("r" if c in written else "g"), sql.Identifier(c)
                        )
                        for c in everything
                    ),
                )
            )
            cur.execute(
                sql.SQL(
                    "UPDATE {} f SET {} FROM relinked r WHERE f.community_code = r.community_code "
                    "AND f.id = r.id"
                ).format(
                    t,
                    sql.SQL(", ").join(
                        sql.SQL("{0} = r.{0}").format(sql.Identifier(c))
                        for c in written
                        if c != "community_code"
                    ),
                )
            )
            cur.execute("DROP TABLE relinked")


def index_time_column(cur, table: str, kinds: dict[str, str]) -> None:
    """Index a layer's own time (see :attr:`FeatureSchema.time_column`), once."""
    from gis_grid.layers.features import first_time_column

    column = first_time_column(kinds)
    if column is not None:
        cur.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(f"{table}_{column}"), sql.Identifier(table), sql.Identifier(column)
            )
        )

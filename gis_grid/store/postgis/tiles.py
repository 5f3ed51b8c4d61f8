"""Vector tiles on PostGIS.

``ST_AsMVT`` over the Web Mercator copy of the grids and over the layers;
hexagon bins above the feature cap.
"""

from __future__ import annotations

import numpy as np
import psycopg
from psycopg import sql

from gis_grid.store.base import registered
from gis_grid.store.postgis.connection import LEVEL_KEYS, literal
from gis_grid.store.postgis.layers import feature_terms, read_layers


def grid_params(under) -> dict:
    """The parameters of a grid level's tile terms (:meth:`PostGISStore._tile_terms`)."""
    return {} if under is None else {"under": [str(c) for c in under]}


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


class PostGISTiles:
    """Vector tiles made by ST_AsMVT, hexagon bins above the feature cap."""

    def generation(self) -> int:
        """A number that grows with every write (grids, staff, features): a cache key.

        A sequence, so every process sharing the database sees it move.
        """
        return self._sequence_value("generation")

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
            return self._grid_tile_queries[shape], grid_params(under) | tile
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
        cols = sql.SQL(", ").join(
            # a feature in no community: no attribute (its partition key is '')
            sql.SQL("nullif(g.community_code, '') AS community_code")
            if a == "community_code" and layer not in LEVEL_KEYS
            else sql.SQL("g.") + sql.Identifier(a)
            for a in attributes
        )
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
            query = sql.SQL(query.as_string(cur) % {k: literal(cur, v) for k, v in params.items()})
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
            params = grid_params(under)
        else:
            schema = registered(read_layers(cur), layer)
            terms, params = feature_terms(schema, under, where)
        table = sql.Identifier("grids" if layer in LEVEL_KEYS else layer)
        return table, sql.SQL("").join(sql.SQL(" AND ") + t for t in terms), params

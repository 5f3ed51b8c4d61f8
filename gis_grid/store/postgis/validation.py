"""Validation pushed down into PostGIS, step for step the embedded algorithm.

The database already refuses what its constraints cover — malformed and
duplicate codes, missing parents, invalid or empty geometry — so those checks
find nothing here unless data bypassed the constraints. What remains runs in
SQL, in each community's local metric SRID (the one the embedded validator
uses), with overlays on the same 1 mm grid:

1. spills: children not covered by their parent, then not by the parent grown
   by the tolerance; the part outside is measured;
2. overlaps: siblings whose interiors meet (``ST_Relate 'T********'``), the
   shared part measured;
3. gaps: an area budget per tiled parent (parent area − children's area,
   corrected by 1 and 2); only parents whose budget does not close are
   unioned and differenced;
4. staffing: grids without an assignment in force.

PostGIS 3.3 has no ``ST_CoverageInvalidEdges`` (GEOS 3.12), so overlaps are
found by an indexed self-join (``&&``) rather than a coverage screen.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import shapely

from gis_grid.grids.topology import Problems, ValidationOptions

_GRID = 1e-3


def validate_in_sql(cur, opts: ValidationOptions) -> gpd.GeoDataFrame:
    """Run the checks on the cursor's database; return the embedded problem table."""
    from gis_grid.store.postgis.connection import metric_srids

    problems = Problems()
    codes, srids = metric_srids(cur)
    if not codes:
        return problems.frame()
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS gg_srid (community_code text PRIMARY KEY, "
        "srid int) ON COMMIT DROP"
    )
    cur.execute("DELETE FROM gg_srid")
    cur.execute("INSERT INTO gg_srid SELECT * FROM unnest(%s::text[], %s::int[])", [codes, srids])
    params = {"tol": opts.tolerance_m, "min": opts.min_area_m2, "grid": _GRID}

    cur.execute(
        "SELECT code, level, ST_AsBinary(geom) FROM grids WHERE ST_XMin(geom) < -180 "
        "OR ST_XMax(geom) > 180 OR ST_YMin(geom) < -90 OR ST_YMax(geom) > 90"
    )
    for code, level, wkb in cur.fetchall():
        problems.add(
            "invalid_geometry",
            level,
            [code],
            None,
            "coordinates outside lon/lat range (longitude ±180, latitude ±90)",
            shapely.from_wkb(bytes(wkb)),
        )

    # 1. spills beyond the parent
    cur.execute(
        """
        SELECT child, parent, level, ST_Area(spill), ST_AsBinary(ST_Transform(spill, 4326))
        FROM (
            SELECT c.code AS child, p.code AS parent, c.level,
                   ST_Difference(cm, pm, %(grid)s) AS spill
            FROM grids c
            JOIN grids p ON p.community_code = c.community_code AND p.code = c.parent_code
            JOIN gg_srid s ON s.community_code = c.community_code
            CROSS JOIN LATERAL (SELECT ST_Transform(c.geom, s.srid) AS cm,
                                       ST_Transform(p.geom, s.srid) AS pm) m
            WHERE NOT ST_Covers(p.geom, c.geom)
              AND NOT ST_Covers(pm, cm)
              AND NOT ST_Covers(ST_Buffer(pm, %(tol)s, 'quad_segs=2'), cm)
        ) q
        """,
        params,
    )
    spill_by_parent: dict[str, float] = {}
    for child, parent, level, area, wkb in cur.fetchall():
        problems.outside(level, child, parent, area, shapely.from_wkb(bytes(wkb)))
        spill_by_parent[parent] = spill_by_parent.get(parent, 0.0) + area

    # 2. overlapping siblings (communities are siblings of each other)
    cur.execute(
        """
        SELECT a, b, level, ST_Area(x), ST_AsBinary(ST_Transform(x, 4326)), parent
        FROM (
            SELECT a.code AS a, b.code AS b, a.level, a.parent_code AS parent,
                   ST_Intersection(ST_Transform(a.geom, s.srid), ST_Transform(b.geom, s.srid),
                                   %(grid)s) AS x
            FROM grids a
            JOIN grids b ON a.code < b.code AND a.geom && b.geom AND (
                 (a.community_code = b.community_code AND a.parent_code = b.parent_code)
                 OR (a.level = 'community' AND b.level = 'community'))
            JOIN gg_srid s ON s.community_code = a.community_code
            WHERE ST_Relate(a.geom, b.geom, 'T********')
        ) q
        WHERE ST_Area(x) >= %(min)s
        """,
        params,
    )
    overlap_by_parent: dict[str, float] = {}
    for a, b, level, area, wkb, parent in cur.fetchall():
        problems.overlap(level, a, b, area, shapely.from_wkb(bytes(wkb)))
        overlap_by_parent[parent or ""] = overlap_by_parent.get(parent or "", 0.0) + area

    # 3. gaps: budgets first, unions only where a budget does not close
    cur.execute(
        """
        SELECT p.code, ST_Area(ST_Transform(p.geom, s.srid)), sum(ST_Area(ST_Transform(c.geom,
               s.srid)))
        FROM grids p
        JOIN grids c ON c.community_code = p.community_code AND c.parent_code = p.code
        JOIN gg_srid s ON s.community_code = p.community_code
        WHERE c.level IN ('area', 'unit')
        GROUP BY p.code, p.geom, s.srid
        """
    )
    suspicious = [
        code
        for code, parent_area, child_area in cur.fetchall()
        if parent_area
        - child_area
        + spill_by_parent.get(code, 0.0)
        + overlap_by_parent.get(code, 0.0)
        >= opts.min_area_m2
        or code in spill_by_parent
        or code in overlap_by_parent
    ]
    if suspicious:
        cur.execute(
            """
            SELECT code, level, child_level, ST_Area(part), ST_AsBinary(ST_Transform(part, 4326))
            FROM (
                SELECT p.code, p.level, min(c.level) AS child_level,
                       (ST_Dump(ST_Difference(ST_Transform(p.geom, s.srid),
                                ST_Union(ST_Transform(c.geom, s.srid), %(grid)s),
                                %(grid)s))).geom AS part
                FROM grids p
                JOIN grids c ON c.community_code = p.community_code AND c.parent_code = p.code
                JOIN gg_srid s ON s.community_code = p.community_code
                WHERE p.code = ANY(%(codes)s)
                GROUP BY p.code, p.level, p.geom, s.srid
            ) q
            WHERE ST_GeometryType(part) = 'ST_Polygon' AND ST_Area(part) >= %(min)s
            """,
            params | {"codes": suspicious},
        )
        for code, level, child_level, area, wkb in cur.fetchall():
            problems.gap(level, code, child_level, area, shapely.from_wkb(bytes(wkb)))

    # 4. staffing
    if opts.check_staff:
        today = opts.today or dt.date.today()
        cur.execute(
            """
            SELECT g.code, g.level, ST_AsBinary(g.geom) FROM grids g
            WHERE NOT EXISTS (
                SELECT 1 FROM assignments a
                WHERE a.community_code = g.community_code AND a.grid_code = g.code
                  AND a.start_date <= %s AND (a.end_date IS NULL OR a.end_date >= %s))
            """,
            [today, today],
        )
        for code, level, wkb in cur.fetchall():
            problems.no_staff(level, code, shapely.from_wkb(bytes(wkb)))
    return problems.frame()

"""Coverage geometry: what cameras see, where lamps light, what is left over.

The building blocks of the layers' gap analyses, all in metres (a projected
CRS, see :func:`gis_grid.geo.crs.local_metric_crs`), all vectorised over arrays of
geometries:

- :func:`view_sectors` — a camera's field of view (heading, field of view,
  range) as a polygon, cut short where a wall blocks it: rays every
  ``step_deg`` degrees stop at the first building they meet, so a building in
  the sector removes itself and the area behind it;
- :func:`public_space` — each grid minus the building footprints in it;
- :func:`uncovered` — the parts of each geometry (polygons or lines) that no
  cover geometry reaches: coverage holes, dark street stretches, uncleaned
  space;
- :func:`parts` — those leftovers as separate pieces above a minimum size,
  with the index of the geometry each came from.

Examples
--------
A camera looking north with a 90° field of view and 10 m range sees a quarter
disc of 78.5 m²:

>>> sector = view_sectors([0.0], [0.0], [0.0], [90.0], [10.0])[0]
>>> round(sector.area, 1)
78.5
"""

from __future__ import annotations

import numpy as np
import shapely
from numpy.typing import ArrayLike


def view_sectors(
    x: ArrayLike,
    y: ArrayLike,
    heading: ArrayLike,
    fov: ArrayLike,
    range_m: ArrayLike,
    obstacles: ArrayLike | None = None,
    *,
    step_deg: float = 1.0,
) -> np.ndarray:
    """What each camera sees: its sector, stopped by obstacles.

    Parameters
    ----------
    x, y : array_like
        Camera positions (metres).
    heading : array_like
        Compass direction of the view's centre line, degrees clockwise from north.
    fov : array_like
        Field of view in degrees, 0 < fov <= 360.
    range_m : array_like
        How far the camera sees usefully (metres).
    obstacles : array_like of Polygon, optional
        Building footprints. A ray ends at the first footprint it meets; the
        footprint a camera is mounted inside (or on) does not block it.
    step_deg : float
        Angle between rays; the sector's area is exact to (step²/6) in radians.

    Returns
    -------
    numpy.ndarray of Polygon
        One polygon per camera (empty where the camera sees nothing).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    heading, fov, rng = (
        np.broadcast_to(np.asarray(v, dtype=float), x.shape).copy() for v in (heading, fov, range_m)
    )
    n = len(x)
    if n == 0:
        return np.array([], dtype=object)
    full = fov >= 360
    span = np.where(full, 360.0, fov)
    start_deg = heading - np.where(full, 0, span / 2)
    # regular rays every step_deg across the sector (a full circle does not repeat its first ray)
    rays = np.where(full, max(int(np.ceil(360 / step_deg)), 8), np.ceil(span / step_deg) + 1)
    rays = rays.astype(np.int64)
    cam = np.repeat(np.arange(n), rays)
    k = np.arange(rays.sum()) - np.repeat(np.cumsum(rays) - rays, rays)
    steps = np.where(full, rays, rays - 1)
    rel = k * span[cam] / steps[cam]
    obstacles = None if obstacles is None else np.asarray(obstacles, dtype=object)
    tree = shapely.STRtree(obstacles) if obstacles is not None and len(obstacles) else None
    if tree is not None:
        # and rays just either side of every obstacle corner in view: the shadow edges are exact
        reach = shapely.box(x - rng, y - rng, x + rng, y + rng)  # a superset of every disc
        c_i, o_j = tree.query(reach, predicate="intersects")
        if len(c_i):
            coords, which = shapely.get_coordinates(obstacles[o_j], return_index=True)
            vc = c_i[which]
            bearing = np.degrees(np.arctan2(coords[:, 0] - x[vc], coords[:, 1] - y[vc]))
            vrel = (bearing - start_deg[vc]) % 360
            near = np.hypot(coords[:, 0] - x[vc], coords[:, 1] - y[vc]) <= rng[vc]
            inside = near & (full[vc] | (vrel < span[vc]))
            eps = 1e-4  # degrees: 0.2 mm at 100 m
            vc, vrel = np.repeat(vc[inside], 2), np.repeat(vrel[inside], 2)
            vrel = np.clip(vrel + np.tile([-eps, eps], len(vrel) // 2), 0, span[vc])
            cam, rel = np.r_[cam, vc], np.r_[rel, vrel]
            order = np.lexsort((rel, cam))
            cam, rel = cam[order], rel[order]
            rays = np.bincount(cam, minlength=n)
            k = np.arange(len(cam)) - np.repeat(np.cumsum(rays) - rays, rays)
    angle = np.radians(start_deg[cam] + rel)
    dx, dy = np.sin(angle), np.cos(angle)
    length = rng[cam].copy()
    if tree is not None:
        ends = np.column_stack([x[cam] + dx * length, y[cam] + dy * length])
        segments = shapely.linestrings(np.stack([np.column_stack([x[cam], y[cam]]), ends], axis=1))
        ray_i, obs_j = tree.query(segments, predicate="intersects")
        if len(ray_i):
            # the building a camera hangs on does not block it
            cam_i, own_j = tree.query(shapely.points(x, y), predicate="intersects")
            if len(cam_i):
                own = np.unique(cam_i * len(obstacles) + own_j)
                keep = ~np.isin(cam[ray_i] * len(obstacles) + obs_j, own)
                ray_i, obs_j = ray_i[keep], obs_j[keep]
            hit = shapely.intersection(segments[ray_i], obstacles[obs_j])
            dist = shapely.distance(shapely.points(x[cam[ray_i]], y[cam[ray_i]]), hit)
            np.minimum.at(length, ray_i, np.where(np.isfinite(dist), dist, np.inf))
    ex, ey = x[cam] + dx * length, y[cam] + dy * length
    # ring per camera: apex, ray ends, apex (a full circle has no apex)
    apex = ~full
    size = rays + np.where(apex, 2, 1)
    ring = np.repeat(np.arange(n), size)
    coords = np.empty((size.sum(), 2))
    start = np.cumsum(size) - size
    pos = np.repeat(start + apex, rays) + k
    coords[pos, 0], coords[pos, 1] = ex, ey
    first = start[apex]
    coords[first, 0], coords[first, 1] = x[apex], y[apex]
    last = start + size - 1
    coords[last[apex], 0], coords[last[apex], 1] = x[apex], y[apex]
    closing = last[full]
    coords[closing] = coords[start[full]]
    polygons = shapely.polygons(shapely.linearrings(coords, indices=ring))
    bad = ~shapely.is_valid(polygons)
    if bad.any():  # rays cut to nothing fold the ring onto itself
        polygons[bad] = [_polygonal(g) for g in shapely.make_valid(polygons[bad])]
    return polygons


def _polygonal(geom):
    parts = shapely.get_parts(geom)
    polys = parts[shapely.get_type_id(parts) == 3]
    if not len(polys):
        return shapely.Polygon()
    return shapely.union_all(polys) if len(polys) > 1 else polys[0]


def union_by_group(groups: np.ndarray, geoms: np.ndarray, n: int) -> np.ndarray:
    """The union of the geometries of each group ``0 … n-1`` (None where a group is empty)."""
    out = np.full(n, None, dtype=object)
    if not len(groups):
        return out
    order = np.argsort(groups, kind="stable")
    groups, geoms = groups[order], geoms[order]
    cut = np.flatnonzero(np.diff(groups)) + 1
    starts = np.r_[0, cut]
    ends = np.r_[cut, len(groups)]
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):  # one union per group
        out[groups[s]] = geoms[s] if e - s == 1 else shapely.union_all(geoms[s:e])
    return out


def uncovered(targets: ArrayLike, covers: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The part of each target no cover reaches, and the part covered.

    Works for polygon targets (areas) and line targets (streets) alike.

    Examples
    --------
    >>> left, covered = uncovered([shapely.box(0, 0, 10, 10)], [shapely.box(5, 0, 20, 10)])
    >>> left[0].area, covered[0].area
    (50.0, 50.0)
    """
    targets = np.asarray(targets, dtype=object)
    covers = np.asarray(covers, dtype=object)
    left = targets.copy()
    covered = np.array([shapely.Polygon()] * len(targets), dtype=object)
    if not len(covers) or not len(targets):
        return left, covered
    t_i, c_j = shapely.STRtree(covers).query(targets, predicate="intersects")
    union = union_by_group(t_i, covers[c_j], len(targets))
    has = np.array([u is not None for u in union], dtype=bool)
    if has.any():
        left[has] = shapely.difference(targets[has], union[has], grid_size=None)
        covered[has] = shapely.intersection(targets[has], union[has])
    return left, covered


def public_space(grids: ArrayLike, buildings: ArrayLike) -> np.ndarray:
    """Each grid minus the building footprints in it (streets, yards, squares)."""
    return uncovered(grids, buildings)[0]


def parts(
    geoms: ArrayLike, *, min_area: float = 0.0, min_length: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Single pieces of each geometry, at least ``min_area`` m² or ``min_length`` m long.

    Lines are merged first so a stretch along one street is one piece. Returns
    the pieces and the index of the geometry each came from.
    """
    geoms = np.asarray(geoms, dtype=object)
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    idx = np.flatnonzero(present)
    merged = geoms[idx].copy()
    lines = np.isin(shapely.get_type_id(merged), (1, 5))
    if lines.any():
        merged[lines] = shapely.line_merge(merged[lines])
    pieces, source = shapely.get_parts(merged, return_index=True)
    source = idx[source]
    types = shapely.get_type_id(pieces)
    keep = ((types == 3) & (shapely.area(pieces) >= max(min_area, 1e-9))) | (
        (types == 1) & (shapely.length(pieces) >= max(min_length, 1e-9))
    )
    return pieces[keep], source[keep]

"""Point → grid chain, for millions of points at a time.

:class:`GridIndex` answers, for every point, the grid of each level that covers
it. Per level it keeps a uniform bucket grid over the polygons' bounding boxes
(compressed rows: bucket → candidate polygons). Buckets that no polygon edge
touches are labelled at build time with the polygon covering them (or none), so
most points of the large levels (community, area, courtyard) are answered by
integer arithmetic alone. The other points expand into (point, candidate)
pairs, lose the pairs whose bounding box misses, and only the survivors are
tested with GEOS (:func:`shapely.intersects_xy` on prepared polygons). Units
are searched among the 2–6 units of the building found. No Point objects are
made and no tree is walked, which is where a bulk ``STRtree`` query spends its
time.

Boundary rule: a point on the boundary of a grid is covered by it (the test is
``covers``, not ``contains``); a point on an edge shared by two grids of one
level belongs to the one with the smaller code — the one numbered first, west
or north of the other. A unit is only found inside the building found (a unit
outside its building is reported by ``validate``). The chain is then settled
(:func:`settle_codes`): the deepest grid found names its ancestors (its code's
prefixes), and where a parent is found whose children must tile it (areas,
units) but none covers the point, the first child within :data:`TOUCH` of it
takes it — so a point on a community's outer corner or a building's outer
edge, where a child falls short of its parent by floating-point micrometres,
still gets its whole chain. The PostGIS store applies the same rules.

Examples
--------
>>> from shapely import box
>>> index = GridIndex(["211281001007", "211281001007001", "211281001007002"],
...                   [box(0, 0, 2, 1), box(0, 0, 1, 1), box(1, 0, 2, 1)])
>>> index.lookup([0.5, 1.0, 5.0], [0.5, 0.5, 0.5])["area"].tolist()
['211281001007001', '211281001007001', nan]
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from gis_grid.domain.model import CODE_LENGTHS, Level, level_of_code

#: Bucket side as a fraction of the median polygon extent: most buckets then lie
#: wholly inside one polygon and answer their points without any test.
_BUCKET_SCALE = 1 / 3
_MIN_BUCKETS = 1 << 18
_UNSURE = -2
#: Levels searched among the children of the grid found one level up (units: 2-6
#: per building, so a few bounding-box checks per point beat any bucket grid).
_BY_DESCENT = (Level.UNIT,)
#: Lookups of at least this many points run their levels on worker threads.
_PARALLEL_FROM = 50_000
#: Degrees within which a child that must tile its parent still takes a point its
#: parent covers (~0.1 mm): floating-point slivers between levels are µm wide.
TOUCH = 1e-9


@dataclass
class _LevelIndex:
    codes: np.ndarray  # sorted by code, so the first hit is the smallest code
    geoms: np.ndarray
    bounds: np.ndarray  # (n, 4)
    origin: tuple[float, float]
    size: float
    shape: tuple[int, int]  # buckets in x, y
    offsets: np.ndarray  # CSR offsets per bucket (n_buckets + 1)
    members: np.ndarray  # polygon indices, grouped by bucket
    sure: np.ndarray  # per bucket: the polygon covering all of it, -1 none, _UNSURE unknown

    @classmethod
    def build(cls, codes: np.ndarray, geoms: np.ndarray) -> _LevelIndex:
        """Index polygons; ``codes`` must be sorted (the first hit is the smallest code)."""
        shapely.prepare(geoms)
        bounds = shapely.bounds(geoms)
        minx, miny = bounds[:, 0].min(), bounds[:, 1].min()
        maxx, maxy = bounds[:, 2].max(), bounds[:, 3].max()
        extent = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
        # buckets: a third of the median polygon extent, but at least _MIN_BUCKETS over the
        # extent (big polygons: most buckets sure) and at most 8 per polygon (memory)
        span = max(maxx - minx, 1e-9) * max(maxy - miny, 1e-9)
        size = float(np.median(extent)) * _BUCKET_SCALE or 1e-6
        size = min(size, np.sqrt(span / _MIN_BUCKETS))
        size = max(size, np.sqrt(span / (8 * len(geoms) + _MIN_BUCKETS)))
        nx = int((maxx - minx) // size) + 1
        ny = int((maxy - miny) // size) + 1
        ix0 = ((bounds[:, 0] - minx) // size).astype(np.int64)
        ix1 = ((bounds[:, 2] - minx) // size).astype(np.int64)
        iy0 = ((bounds[:, 1] - miny) // size).astype(np.int64)
        iy1 = ((bounds[:, 3] - miny) // size).astype(np.int64)
        wx, wy = ix1 - ix0 + 1, iy1 - iy0 + 1
        per = wx * wy
        poly = np.repeat(np.arange(len(geoms)), per)
        k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
        bx = ix0[poly] + k % wx[poly]
        by = iy0[poly] + k // wx[poly]
        bucket = by * nx + bx
        order = np.argsort(bucket, kind="stable")
        counts = np.bincount(bucket, minlength=nx * ny)
        offsets = np.zeros(nx * ny + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        members = poly[order]
        index = cls(
            codes,
            geoms,
            bounds,
            (minx, miny),
            size,
            (nx, ny),
            offsets,
            members,
            np.full(nx * ny, _UNSURE, dtype=np.int64),
        )
        if np.median(extent) > 2.5 * size:  # otherwise hardly any bucket fits inside one
            index.sure = index._sure_buckets(counts)
        return index

    def _sure_buckets(self, counts: np.ndarray) -> np.ndarray:
        """Label the buckets that no polygon edge touches with the polygon covering them.

        Such a bucket lies wholly inside or wholly outside every polygon, so the
        answer at its centre is the answer for every point in it. Edges mark the
        buckets their bounding box touches (conservatively, widened by a hair;
        the closing jump from one ring to the next marks a few buckets more).
        """
        nx, ny = self.shape
        size, (minx, miny) = self.size, self.origin
        coords, ring = shapely.get_coordinates(self.geoms, return_index=True)
        same = ring[1:] == ring[:-1]
        a, b = coords[:-1][same], coords[1:][same]
        eps = size * 1e-6
        lo, hi = np.minimum(a, b) - eps, np.maximum(a, b) + eps
        ix0 = np.clip((lo[:, 0] - minx) // size, 0, nx - 1).astype(np.int64)
        ix1 = np.clip((hi[:, 0] - minx) // size, 0, nx - 1).astype(np.int64)
        iy0 = np.clip((lo[:, 1] - miny) // size, 0, ny - 1).astype(np.int64)
        iy1 = np.clip((hi[:, 1] - miny) // size, 0, ny - 1).astype(np.int64)
        wx, wy = ix1 - ix0 + 1, iy1 - iy0 + 1
        per = wx * wy
        seg = np.repeat(np.arange(len(per)), per)
        k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
        edge = np.zeros(nx * ny, dtype=bool)
        edge[(iy0[seg] + k // wx[seg]) * nx + ix0[seg] + k % wx[seg]] = True
        sure = np.where(counts > 0, _UNSURE, -1)
        clear = np.flatnonzero(~edge & (counts > 0))
        cx = minx + (clear % nx + 0.5) * size
        cy = miny + (clear // nx + 0.5) * size
        sure[clear] = self._test(cx, cy, clear)
        return sure

    def locate(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index of the polygon covering each point (smallest code wins), -1 for none."""
        out = np.full(len(x), -1, dtype=np.int64)
        nx, ny = self.shape
        bx = np.floor((x - self.origin[0]) / self.size)
        by = np.floor((y - self.origin[1]) / self.size)
        pts = np.flatnonzero((bx >= 0) & (bx < nx) & (by >= 0) & (by < ny))
        bucket = by[pts].astype(np.int64) * nx + bx[pts].astype(np.int64)
        sure = self.sure[bucket]
        known = sure != _UNSURE
        out[pts[known]] = sure[known]
        pts, bucket = pts[~known], bucket[~known]
        out[pts] = self._test(x[pts], y[pts], bucket)
        return out

    def _test(self, x: np.ndarray, y: np.ndarray, bucket: np.ndarray) -> np.ndarray:
        start = self.offsets[bucket]
        return _first_cover(self, self.members, start, self.offsets[bucket + 1] - start, x, y)


@dataclass
class _ChildIndex:
    """Polygons searched among the children of the parent grid found for a point."""

    codes: np.ndarray  # sorted by code: the children of one parent are contiguous
    geoms: np.ndarray
    bounds: np.ndarray
    offsets: np.ndarray  # per parent (in the parent level's order): children range

    @classmethod
    def build(cls, codes: np.ndarray, geoms: np.ndarray, parents: np.ndarray) -> _ChildIndex:
        """Index children; ``codes`` and ``parents`` (numpy unicode) must be sorted."""
        shapely.prepare(geoms)
        prefix = codes.astype(f"U{CODE_LENGTHS[Level(level_of_code(codes[0]) - 1)]}")
        parent = np.searchsorted(parents, prefix)
        parent[parent >= len(parents)] = 0
        known = parents[parent] == prefix  # children of missing parents can never be reached
        codes, geoms, parent = codes[known], geoms[known], parent[known]
        offsets = np.zeros(len(parents) + 1, dtype=np.int64)
        np.cumsum(np.bincount(parent, minlength=len(parents)), out=offsets[1:])
        return cls(codes, geoms, shapely.bounds(geoms), offsets)

    def locate(self, x: np.ndarray, y: np.ndarray, parent: np.ndarray) -> np.ndarray:
        """Index of the child of ``parent`` covering each point, -1 for none."""
        out = np.full(len(x), -1, dtype=np.int64)
        pts = np.flatnonzero(parent >= 0)
        start = self.offsets[parent[pts]]
        count = self.offsets[parent[pts] + 1] - start
        out[pts] = _first_cover(self, np.arange(len(self.codes)), start, count, x[pts], y[pts])
        return out


def _first_cover(index, members, start, count, x, y) -> np.ndarray:
    """For each point, the first (smallest-code) of its candidates covering it, or -1.

    Candidates of point i are ``members[start[i]:start[i] + count[i]]``; they are
    filtered by bounding box and then tested exactly with GEOS.
    """
    out = np.full(len(x), -1, dtype=np.int64)
    pair_pt = np.repeat(np.arange(len(x)), count)
    k = np.arange(len(pair_pt)) - np.repeat(np.cumsum(count) - count, count)
    cand = members[np.repeat(start, count) + k]
    px, py = x[pair_pt], y[pair_pt]
    b = index.bounds[cand]
    keep = (b[:, 0] <= px) & (px <= b[:, 2]) & (b[:, 1] <= py) & (py <= b[:, 3])
    pair_pt, cand = pair_pt[keep], cand[keep]
    hit = shapely.intersects_xy(index.geoms[cand], px[keep], py[keep])
    pair_pt, cand = pair_pt[hit], cand[hit]
    # pairs come point by point, each point's candidates in code order (bucket members
    # and children are stored that way, and filtering keeps the order): the first hit
    # of a point is its smallest code
    first = np.r_[True, pair_pt[1:] != pair_pt[:-1]] if len(pair_pt) else []
    out[pair_pt[first]] = cand[first]
    return out


class GridIndex:
    """Point lookup over all grid levels.

    Parameters
    ----------
    codes : array_like of str
        Grid codes (their length gives the level).
    geometries : array_like of shapely polygons
        In the same lon/lat CRS as the points that will be looked up.
    workers : int, optional
        Threads used to build the levels and to answer large lookups (GEOS and
        numpy release the GIL). Default: the number of CPUs, at most 4.
    """

    def __init__(self, codes: ArrayLike, geometries: ArrayLike, *, workers: int | None = None):
        codes = np.asarray(codes)
        if codes.dtype.kind != "U":
            codes = codes.astype(str)
        geoms = np.asarray(geometries, dtype=object)
        self.workers = max(1, workers or min(os.cpu_count() or 1, 4))
        lengths = np.char.str_len(codes)
        ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        levels = {}
        for level in Level:
            rows = np.flatnonzero(ok & (lengths == CODE_LENGTHS[level]))
            if len(rows):
                rows = rows[np.argsort(codes[rows], kind="stable")]
                levels[level] = (codes[rows], geoms[rows])

        def build(level: Level) -> _LevelIndex | _ChildIndex:
            level_codes, level_geoms = levels[level]
            if level in _BY_DESCENT and level.parent in levels:
                return _ChildIndex.build(level_codes, level_geoms, levels[level.parent][0])
            return _LevelIndex.build(level_codes, level_geoms)

        present = list(levels)
        with ThreadPoolExecutor(self.workers) as pool:
            built = dict(zip(present, pool.map(build, present), strict=True))
        self._dtypes: dict[Level, pd.CategoricalDtype] = {}
        self.levels: dict[Level, _LevelIndex | _ChildIndex] = {
            lv: built[lv] for lv in Level if lv in built
        }
        # per level with its parent level present: each grid's parent (index into the
        # parent level, -1 for an orphan) and each parent's children (offsets; the codes
        # are sorted, so the children of one parent are contiguous)
        self._up: dict[Level, np.ndarray] = {}
        self._down: dict[Level, np.ndarray] = {}
        for level, index in self.levels.items():
            above = self.levels.get(level.parent) if level.parent is not None else None
            if above is None:
                continue
            prefix = index.codes.astype(f"U{CODE_LENGTHS[level.parent]}")
            up = np.searchsorted(above.codes, prefix)
            up[up >= len(above.codes)] = 0
            self._up[level] = np.where(above.codes[up] == prefix, up, -1)
            self._down[level] = np.stack(
                [
                    np.searchsorted(prefix, above.codes, side="left"),
                    np.searchsorted(prefix, above.codes, side="right"),
                ]
            )

    def locate(self, x: np.ndarray, y: np.ndarray) -> dict[Level, np.ndarray]:
        """Per level, the index (into ``self.levels[level].codes``) of each point's grid.

        Each level searched on its own heads a chain of the levels searched by
        descent below it (units below buildings); chains run on worker threads.
        GEOS prepared geometries are not thread-safe (libgeos/geos#825), so
        threads never share a level's polygons: the split is by level, never by
        points.
        """
        chains: list[list[Level]] = []
        for level in Level:
            index = self.levels.get(level)
            if index is None:
                continue
            if isinstance(index, _ChildIndex) and chains and chains[-1][-1] == level.parent:
                chains[-1].append(level)
            else:
                chains.append([level])

        def run(chain: list[Level]) -> dict[Level, np.ndarray]:
            out, found = {}, None
            for level in chain:
                index = self.levels[level]
                if isinstance(index, _ChildIndex):
                    found = index.locate(x, y, found)
                else:
                    found = index.locate(x, y)
                out[level] = found
            return out

        # largest first (polygons searched ~ work), so two workers finish together
        chains.sort(key=lambda c: sum(len(self.levels[lv].codes) for lv in c), reverse=True)
        if self.workers > 1 and len(x) >= _PARALLEL_FROM and len(chains) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                parts = list(pool.map(run, chains))
        else:
            parts = [run(chain) for chain in chains]
        merged = {lv: found for part in parts for lv, found in part.items()}
        found = {lv: merged.get(lv, np.full(len(x), -1, dtype=np.int64)) for lv in Level}
        self._settle(found, x, y)
        return found

    def _settle(self, found: dict[Level, np.ndarray], x: np.ndarray, y: np.ndarray) -> None:
        """Make each point's chain whole (the rules of :func:`settle_codes`), in place."""
        for level in reversed(Level):  # the deepest grid found names its ancestors
            if level not in self._up:
                continue
            rows = np.flatnonzero(found[level] >= 0)
            up = self._up[level][found[level][rows]]
            found[level.parent][rows[up >= 0]] = up[up >= 0]
        for level in Level:  # a child that must tile its parent takes the slivers
            if not level.tiles_parent or level not in self._down:
                continue
            rows = np.flatnonzero((found[level.parent] >= 0) & (found[level] < 0))
            if not len(rows):
                continue
            start, end = self._down[level][:, found[level.parent][rows]]
            count = end - start
            pair = np.repeat(np.arange(len(rows)), count)
            cand = np.repeat(start, count) + (
                np.arange(len(pair)) - np.repeat(np.cumsum(count) - count, count)
            )
            points = shapely.points(x[rows][pair], y[rows][pair])
            near = shapely.dwithin(self.levels[level].geoms[cand], points, TOUCH)
            pair, cand = pair[near], cand[near]
            first = np.r_[True, pair[1:] != pair[:-1]] if len(pair) else []
            found[level][rows[pair[first]]] = cand[first]

    def lookup(self, lon: ArrayLike, lat: ArrayLike) -> pd.DataFrame:
        """The covering grid's code at each level, one row per point (NaN: no grid).

        Columns are categorical (codes as categories), which keeps millions of
        answers small; ``.astype(object)`` gives plain strings.
        """
        x = np.ascontiguousarray(np.atleast_1d(lon), dtype=float)
        y = np.ascontiguousarray(np.atleast_1d(lat), dtype=float)
        if x.shape != y.shape:
            raise ValueError("lon and lat must have the same length")
        found = self.locate(x, y)
        return pd.DataFrame(
            {
                level.key: pd.Categorical.from_codes(found[level], dtype=self._dtype(level))
                for level in Level
            }
        )

    def _dtype(self, level: Level) -> pd.CategoricalDtype:
        """The level's codes as a categorical dtype, made once (a city has 400k units)."""
        if level not in self._dtypes:
            index = self.levels.get(level)
            codes = index.codes if index is not None else []
            self._dtypes[level] = pd.CategoricalDtype(pd.Index(codes, dtype=object))
        return self._dtypes[level]


def settle_few(found: list[dict], near) -> list[dict]:
    """:func:`settle_codes` for a handful of points (a map click), on plain dicts.

    The same two rules, row by row, without building a frame (which costs
    more than the query answering a click). ``found`` holds one dict per
    point, level key → code or None; changed in place and returned.

    Examples
    --------
    >>> found = [{"community": None, "area": "211281001007001", "courtyard": None,
    ...           "building": None, "unit": None}]
    >>> settle_few(found, lambda level, parents, rows: [None] * len(rows))[0]["community"]
    '211281001007'
    """
    for row in found:
        for level in reversed(Level):
            if level.parent is not None and row[level.key] is not None:
                row[level.parent.key] = row[level.key][: CODE_LENGTHS[level.parent]]
    for level in Level:
        if not level.tiles_parent:
            continue
        need = [
            i
            for i, r in enumerate(found)
            if r[level.parent.key] is not None and r[level.key] is None
        ]
        if need:
            parents = np.array([found[i][level.parent.key] for i in need], dtype=object)
            for i, code in zip(need, near(level, parents, np.array(need)), strict=True):
                found[i][level.key] = code
    return found


def settle_codes(found: pd.DataFrame, near) -> pd.DataFrame:
    """Make each row's chain of codes whole; the rules :class:`GridIndex` applies.

    ``found`` holds one column of codes (or missing) per level key, as each
    level's own search found them, units already only inside the building
    found. First the deepest grid found names its ancestors: a grid's parent is
    the grid its code's prefix names. Then where a parent is found whose
    children must tile it (:attr:`Level.tiles_parent`) but no child covers the
    point, ``near(level, parents, rows)`` names the first child (smallest code)
    of each parent within :data:`TOUCH` of the point of each row (``None`` where
    none is). Returns ``found``, changed in place.

    Examples
    --------
    >>> found = pd.DataFrame({"community": [None], "area": ["211281001007001"],
    ...                       "courtyard": [None], "building": [None], "unit": [None]})
    >>> settle_codes(found, lambda level, parents, rows: [None] * len(rows))["community"][0]
    '211281001007'
    """
    for level in reversed(Level):
        if level.parent is None:
            continue
        codes = found[level.key]
        has = codes.notna()
        if has.any():
            found.loc[has, level.parent.key] = (
                codes[has].astype(str).str.slice(0, CODE_LENGTHS[level.parent])
            )
    for level in Level:
        if not level.tiles_parent:
            continue
        need = found[level.parent.key].notna() & found[level.key].isna()
        if need.any():
            rows = np.flatnonzero(need.to_numpy())
            parents = found[level.parent.key].to_numpy(dtype=object)[rows]
            found.loc[need, level.key] = list(near(level, parents, rows))
    return found

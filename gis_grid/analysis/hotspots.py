"""Where incidents cluster: a heat surface for the map, and significant hot and cold spots.

- :func:`kernel_density` — a smoothed surface (incidents per km²) on square
  cells in metres: a 2-D histogram smoothed by a Gaussian kernel
  (``scipy.ndimage.gaussian_filter``), linear in the number of points;
- :func:`gi_star` — Getis-Ord Gi* (esda's ``G_Local`` with ``star=True``, its
  conditional permutations seeded) over any units with an adjacency: H3 cells
  (:func:`h3_units`) or the grids themselves (:func:`grid_units`). A unit is a
  hot (cold) spot when its z is positive (negative) and its p survives the
  Benjamini–Hochberg false-discovery-rate correction over all units at
  ``alpha``. The analytic p of z decides (it resolves p far below the 1/1000
  floor of 999 permutations, which FDR over 100,000 units needs); the
  permutation p is reported beside it;
- :func:`pai` — the predictive accuracy index of the hot spots: the share of
  incidents they capture divided by the share of area they cover;
- :func:`trend` — week over week: new, persistent and fading hot spots.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> surface = kernel_density(rng.normal(0, 30, 1000), rng.normal(0, 30, 1000), cell_m=10,
...                          bandwidth_m=30)
>>> surface.density.shape[0] > 10, round(float(surface.total()))
(True, 1000)
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from numpy.typing import ArrayLike
from pyproj import CRS
from scipy import ndimage, stats

from gis_grid.geo.crs import WGS84, reproject


@dataclass
class Surface:
    """A density surface on square cells: ``density[row, col]`` in incidents per km².

    Row 0 is the northern edge; ``origin`` is the (west, north) corner in ``crs``.
    """

    density: np.ndarray
    origin: tuple[float, float]
    cell_m: float
    crs: CRS | None = None

    def total(self) -> float:
        """The number of incidents the surface holds (its integral)."""
        return float(self.density.sum() * self.cell_m**2 / 1e6)

    def transform(self):
        """The affine transform (rasterio) of the surface."""
        from rasterio.transform import from_origin

        return from_origin(self.origin[0], self.origin[1], self.cell_m, self.cell_m)

    def to_geotiff(self, path) -> None:
        """Write the surface as a single-band float32 GeoTIFF."""
        import rasterio

        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=self.density.shape[1],
            height=self.density.shape[0],
            count=1,
            dtype="float32",
            crs=None if self.crs is None else self.crs.to_wkt(),
            transform=self.transform(),
            compress="deflate",
        ) as dst:
            dst.write(self.density.astype("float32"), 1)
            dst.update_tags(units="incidents per km2")

    def bands(self, classes: int = 5) -> gpd.GeoDataFrame:
        """The surface as polygons of density bands (quantiles of the non-zero cells), lon/lat."""
        from rasterio.features import shapes

        positive = self.density[self.density > self.density.max() * 1e-3]
        if not len(positive):
            return gpd.GeoDataFrame(
                {"band": [], "min_density": []}, geometry=gpd.GeoSeries([], crs=WGS84)
            )
        edges = np.unique(np.quantile(positive, np.linspace(0, 1, classes + 1)[:-1]))
        level = np.digitize(self.density, edges).astype("int32")  # 0 = below the first band
        geoms, values = [], []
        for geom, value in shapes(level, mask=level > 0, transform=self.transform()):
            geoms.append(shapely.geometry.shape(geom))
            values.append(int(value))
        geoms = np.array(geoms, dtype=object)
        if self.crs is not None:
            geoms = reproject(geoms, self.crs, WGS84)
        frame = gpd.GeoDataFrame({"band": values}, geometry=gpd.GeoSeries(geoms, crs=WGS84))
        frame = frame.dissolve("band", as_index=False)
        frame["min_density"] = edges[frame["band"].to_numpy() - 1]
        return frame


#: The most cells a density surface takes (~ 200 MB of float64).
MAX_SURFACE_CELLS = 25_000_000


def kernel_density(
    x: ArrayLike,
    y: ArrayLike,
    *,
    cell_m: float = 20.0,
    bandwidth_m: float = 60.0,
    bounds: tuple[float, float, float, float] | None = None,
    crs: CRS | None = None,
) -> Surface:
    """A Gaussian kernel density surface of points given in metres.

    ``bandwidth_m`` is the kernel's standard deviation. The surface extends
    three bandwidths past the points (or covers ``bounds``).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if bounds is None:
        if not len(x):
            bounds = (0.0, 0.0, cell_m, cell_m)
        else:
            pad = 3 * bandwidth_m
            bounds = (x.min() - pad, y.min() - pad, x.max() + pad, y.max() + pad)
    minx, miny, maxx, maxy = bounds
    if (maxx - minx) * (maxy - miny) / cell_m**2 > MAX_SURFACE_CELLS:
        # points strewn far apart (a wrong coordinate among them): a coarser grid, not terabytes
        cell_m = float(np.sqrt((maxx - minx) * (maxy - miny) / MAX_SURFACE_CELLS))
    nx = max(int(np.ceil((maxx - minx) / cell_m)), 1)
    ny = max(int(np.ceil((maxy - miny) / cell_m)), 1)
    counts, _, _ = np.histogram2d(
        y, x, bins=(ny, nx), range=((miny, miny + ny * cell_m), (minx, minx + nx * cell_m))
    )
    smooth = ndimage.gaussian_filter(
        counts, sigma=bandwidth_m / cell_m, mode="constant", truncate=3.0
    )
    density = smooth[::-1] * 1e6 / cell_m**2  # north up, per km²
    return Surface(density, (minx, miny + ny * cell_m), cell_m, crs)


# -- units and adjacency ---------------------------------------------------------


@dataclass
class Units:
    """Areal units for Gi*: ids, areas (m²), adjacency, and their polygons (lon/lat).

    H3 units make polygons only when asked (:meth:`shapes`): a city has
    hundreds of thousands of cells and a map shows the few that matter.
    """

    ids: np.ndarray
    area_m2: np.ndarray
    adjacency: sp.csr_matrix
    geometry: np.ndarray | None = None

    def shapes(self, which: ArrayLike | None = None) -> np.ndarray:
        """Polygons of the units (all, or the given positions)."""
        which = np.arange(len(self.ids)) if which is None else np.asarray(which, dtype=int)
        if self.geometry is not None:
            return self.geometry[which]
        import h3.api.basic_int as h3

        rings = [h3.cell_to_boundary(c) for c in self.ids[which].tolist()]
        if not rings:  # a quiet window: no spot, no shape
            return np.empty(0, dtype=object)
        return shapely.polygons([[(lng, lat) for lat, lng in ring] for ring in rings])

    def labels(self) -> np.ndarray:
        """The units' names: grid codes, or H3 cells as the usual hexadecimal text."""
        if self.ids.dtype == np.uint64:
            return np.array([format(c, "x") for c in self.ids.tolist()], dtype=object)
        return self.ids


def h3_cells(lon: ArrayLike, lat: ArrayLike, resolution: int) -> np.ndarray:
    """The H3 cell (as a 64-bit integer) of each point.

    h3 has no array API: one call per point, about 1.5 million a second with
    integer cells (text cells cost twice that).
    """
    import h3.api.basic_int as h3

    lookup = h3.latlng_to_cell
    return np.fromiter(
        (
            lookup(b, a, resolution)
            for a, b in zip(
                np.asarray(lon, float).tolist(), np.asarray(lat, float).tolist(), strict=True
            )
        ),
        dtype=np.uint64,
        count=len(np.atleast_1d(lon)),
    )


def h3_units(study: ArrayLike, resolution: int, *, extra: ArrayLike = ()) -> Units:
    """Every H3 cell over the study polygons (lon/lat) and any ``extra`` cells, with neighbours.

    Cells with no incident count as zero: the study area, not just where
    incidents happened, is what Gi* compares against. Neighbours are the six
    cells around each (centres closer than two edge lengths, found with a k-d
    tree on projected centres: equivalent to ``h3.grid_ring(cell, 1)`` away from
    pentagons, which no city is near); every cell has its own area on the
    sphere (``h3.cell_area``: the world-wide average of a resolution is ~45%
    off at 42°N).
    """
    import h3.api.basic_int as h3
    from scipy.spatial import cKDTree

    from gis_grid.geo.crs import local_metric_crs, transformer

    cells = [np.asarray(pd.unique(np.asarray(extra, dtype=np.uint64)))]
    for poly in shapely.get_parts(np.asarray(study, dtype=object)):
        found = h3.geo_to_cells(shapely.geometry.mapping(poly), resolution)
        cells.append(np.fromiter(found, dtype=np.uint64, count=len(found)))
    ids = np.unique(np.concatenate(cells))
    n = len(ids)
    centres = np.array([h3.cell_to_latlng(c) for c in ids.tolist()]).reshape(-1, 2)
    if n:
        crs = local_metric_crs(float(np.median(centres[:, 1])), float(np.median(centres[:, 0])))
        x, y = transformer(WGS84, crs).transform(centres[:, 1], centres[:, 0])
        edge = h3.average_hexagon_edge_length(resolution, unit="m")
        pairs = cKDTree(np.column_stack([x, y])).query_pairs(2.0 * edge, output_type="ndarray")
    else:
        pairs = np.zeros((0, 2), dtype=int)
    rows = np.r_[pairs[:, 0], pairs[:, 1]]
    cols = np.r_[pairs[:, 1], pairs[:, 0]]
    adjacency = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    area = np.fromiter((h3.cell_area(c, unit="m^2") for c in ids.tolist()), dtype=float, count=n)
    return Units(ids, area, adjacency)


def grid_units(codes: ArrayLike, geoms: ArrayLike, metric: ArrayLike) -> Units:
    """Grids as units: neighbours share a boundary (queen contiguity)."""
    geoms = np.asarray(geoms, dtype=object)
    metric = np.asarray(metric, dtype=object)
    i, j = shapely.STRtree(metric).query(metric, predicate="intersects")
    keep = i != j
    n = len(geoms)
    adjacency = sp.csr_matrix((np.ones(keep.sum()), (i[keep], j[keep])), shape=(n, n))
    return Units(np.asarray(codes, dtype=object), shapely.area(metric), adjacency, geoms)


# -- statistics ----------------------------------------------------------------------


def load_statistics() -> None:
    """Import esda and libpysal now (about a second): a server does it before its first request.

    :func:`gi_star` imports them when first called, so a command that never
    measures hot spots never pays for them.
    """
    import esda  # noqa: F401
    from libpysal.graph import Graph  # noqa: F401

    _cache_esda_kernels()


def gi_star(
    values: ArrayLike,
    adjacency: sp.spmatrix,
    *,
    permutations: int = 999,
    seed: int = 12345,
    alpha: float = 0.05,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Getis-Ord Gi* of ``values`` with binary weights, FDR-classified.

    Returns one row per unit: ``z`` (esda's ``Zs``), ``p`` (two-sided,
    analytic), ``p_sim`` (permutation, folded), ``p_fdr`` (Benjamini–Hochberg
    adjusted ``p``) and ``spot``: ``hot``, ``cold`` or ``""``. ``n_jobs``:
    processes for the permutations (esda's; each compiles its own kernels, so
    one process is faster below a few hundred thousand units).
    """
    import warnings

    import esda
    from libpysal.graph import Graph

    _cache_esda_kernels()
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 3:
        raise ValueError("Gi* needs at least three units")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands and disconnected components are fine here
        graph = Graph.from_sparse(sp.csr_matrix(adjacency), ids=np.arange(n))
        g = esda.G_Local(
            values,
            graph,
            transform="B",
            star=True,
            permutations=permutations,
            seed=seed,
            keep_simulations=False,
            n_jobs=n_jobs,
        )
    z = np.nan_to_num(np.asarray(g.Zs, float))
    p = 2 * stats.norm.sf(np.abs(z))
    p_fdr = stats.false_discovery_control(p) if n else p
    spot = np.where(p_fdr <= alpha, np.where(z > 0, "hot", "cold"), "")
    p_sim = np.asarray(g.p_sim, float) if permutations else np.full(n, np.nan)
    return pd.DataFrame({"z": z, "p": p, "p_sim": p_sim, "p_fdr": p_fdr, "spot": spot})


#: esda kernels numba cannot cache: ``compute_chunk`` takes the statistic as a
#: function argument, whose type numba keys differently in every process, so its
#: cache would never hit and would grow by a copy (~0.6 MB) on every run.
_UNCACHEABLE = frozenset({"compute_chunk"})


def user_cache_dir() -> Path:
    """Where gis-grid keeps what it can rebuild (``$XDG_CACHE_HOME/gis-grid``, or the OS's)."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gis-grid"


@functools.cache
def _cache_esda_kernels() -> None:
    """Let numba keep esda's compiled permutation kernels on disk, in the user's cache.

    esda compiles them (``@njit``) in every new process — ~12 s before the
    first Gi* of each ``gis-grid hotspots`` run. numba's ``enable_caching``
    keeps the machine code under ``NUMBA_CACHE_DIR`` (default here: the user's
    cache directory, so nothing is written into site-packages) and reuses it
    while esda's source is unchanged; the one kernel numba cannot cache is
    left to compile each run (see :data:`_UNCACHEABLE`).
    """
    import esda.crand
    import esda.getisord
    import numba
    from numba.core.registry import CPUDispatcher

    if not numba.config.CACHE_DIR:
        folder = user_cache_dir() / "numba"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            numba.config.CACHE_DIR = str(folder)
        except OSError:  # no writable home: numba compiles in memory each run
            return
    for module in (esda.crand, esda.getisord):
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and name not in _UNCACHEABLE:
                value.enable_caching()


def pai(hot: ArrayLike, counts: ArrayLike, area: ArrayLike) -> float:
    """Predictive accuracy index: incident share captured ÷ area share flagged.

    Examples
    --------
    >>> pai([True, False, False, False], [30, 10, 0, 0], [1, 1, 1, 1])
    3.0
    """
    hot = np.asarray(hot, bool)
    counts, area = np.asarray(counts, float), np.asarray(area, float)
    if not hot.any() or counts.sum() == 0:
        return 0.0
    return float((counts[hot].sum() / counts.sum()) / (area[hot].sum() / area.sum()))


def trend(now: ArrayLike, before: ArrayLike) -> np.ndarray:
    """Week over week per unit: ``new``, ``persistent``, ``fading`` or ``""``."""
    now = np.asarray(now) == "hot"
    before = np.asarray(before) == "hot"
    return np.select(
        [now & ~before, now & before, ~now & before], ["new", "persistent", "fading"], ""
    )


# -- on a store ------------------------------------------------------------------------


@dataclass
class HotspotReport:
    """Hot and cold spots of one time window, compared with the window before.

    ``units`` holds every unit with its count, Gi* columns, ``spot``,
    ``previous_spot`` and ``trend`` (no geometry: :class:`Units` makes it);
    ``spots`` only the significant ones (and the faded), with their polygons,
    grid chain and responsible person; ``surface`` the kernel-density heat map
    of the window.
    """

    units: pd.DataFrame
    spots: gpd.GeoDataFrame
    surface: Surface
    summary: dict


def find_hotspots(
    store,
    layer: str,
    *,
    time_field: str,
    category_field: str | None = None,
    since: str | None = None,
    until: str | None = None,
    category=None,
    by: str = "h3",
    resolution: int = 11,
    permutations: int = 999,
    seed: int = 12345,
    alpha: float = 0.05,
    cell_m: float = 20.0,
    bandwidth_m: float = 60.0,
    under=None,
) -> HotspotReport:
    """Hot spots of a point layer in a time window, compared with the window before it.

    The window defaults to the seven days up to the layer's latest event; the
    window before has the same length and ends where this one starts. ``by``
    is ``h3`` (cells of ``resolution``) or a grid level (``area``,
    ``courtyard`` …). ``under`` (community codes) studies those communities only.
    """
    from gis_grid.analysis.gaps import finish
    from gis_grid.domain.errors import InputError
    from gis_grid.domain.messages import say
    from gis_grid.domain.model import Level
    from gis_grid.geo.crs import local_metric_crs, project

    communities = store.grids(level=Level.COMMUNITY, under=under)
    if not len(communities):
        raise InputError(say("problem_hotspots_no_grids"))
    where = {}
    if category is not None and category_field:
        where[category_field] = list(np.atleast_1d(category))
    everything = store.features(layer, where=where or None, under=under)
    times = pd.to_datetime(everything[time_field])
    end = pd.Timestamp(until) if until else (times.max() if len(times) else pd.Timestamp.now())
    start = pd.Timestamp(since) if since else end - pd.Timedelta(days=7)
    if start >= end:
        raise InputError(say("problem_window_empty", since=start, until=end))
    length = end - start
    current = everything.loc[(times > start) & (times <= end)]
    before = everything.loc[(times > start - length) & (times <= start)]
    study = communities.geometry.to_numpy()
    b = communities.total_bounds
    crs = local_metric_crs((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    if by == "h3":
        now_cells = h3_cells(current["lon"], current["lat"], resolution)
        old_cells = h3_cells(before["lon"], before["lat"], resolution)
        inside = np.asarray(current["community_code"].notna())
        units = h3_units(study, resolution, extra=now_cells[inside])
        index = pd.Index(units.ids)
        count_now = np.bincount(index.get_indexer(now_cells[inside]), minlength=len(index))
        old_in = old_cells[np.asarray(before["community_code"].notna())]
        pos = index.get_indexer(old_in)
        count_before = np.bincount(pos[pos >= 0], minlength=len(index))
    else:
        level = Level.parse(by)
        grids = store.grids(level=level, under=under)
        units = grid_units(
            grids["code"], grids.geometry.to_numpy(), project(grids.geometry.to_numpy(), crs)
        )
        column = f"{level.key}_code"
        index = pd.Index(units.ids)
        count_now = np.bincount(index.get_indexer(current[column].dropna()), minlength=len(index))
        count_before = np.bincount(index.get_indexer(before[column].dropna()), minlength=len(index))
    if len(count_now) < 3:
        raise InputError(say("problem_too_few_units", n=len(count_now)))
    stats_now = gi_star(
        count_now, units.adjacency, permutations=permutations, seed=seed, alpha=alpha
    )
    stats_before = gi_star(
        count_before, units.adjacency, permutations=permutations, seed=seed, alpha=alpha
    )
    frame = pd.DataFrame(
        {
            "unit": units.labels(),
            "incidents": count_now,
            "incidents_before": count_before,
            "area_m2": units.area_m2,
        }
    )
    frame = pd.concat([frame, stats_now], axis=1)
    frame["previous_spot"] = stats_before["spot"].to_numpy()
    frame["trend"] = trend(frame["spot"], frame["previous_spot"])
    hot = (frame["spot"] == "hot").to_numpy()
    shown = ((frame["spot"] != "") | (frame["trend"] == "fading")).to_numpy()
    picked = frame.loc[shown]
    spots = finish(store, units.shapes(np.flatnonzero(shown)), picked.to_dict("list"), sort=["z"])
    pts = project(current.geometry.to_numpy(), crs)
    # the surface covers the study area and every incident, three bandwidths wider: the
    # kernel's mass stays on the map, so the surface integrates to the window's count
    extent = shapely.total_bounds(np.r_[project(study, crs), pts])
    pad = 3 * bandwidth_m
    surface = kernel_density(
        shapely.get_x(pts),
        shapely.get_y(pts),
        cell_m=cell_m,
        bandwidth_m=bandwidth_m,
        crs=crs,
        bounds=(extent[0] - pad, extent[1] - pad, extent[2] + pad, extent[3] + pad),
    )
    summary = {
        "layer": layer,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "by": by if by == "h3" else Level.parse(by).key,
        "resolution": resolution if by == "h3" else None,
        "incidents": int(count_now.sum()),
        "incidents_before": int(count_before.sum()),
        "units": len(frame),
        "hot": int(hot.sum()),
        "cold": int((frame["spot"] == "cold").sum()),
        "new": int((frame["trend"] == "new").sum()),
        "persistent": int((frame["trend"] == "persistent").sum()),
        "fading": int((frame["trend"] == "fading").sum()),
        "captured_pct": round(100 * float(count_now[hot].sum()) / max(int(count_now.sum()), 1), 1),
        "area_pct": round(100 * float(units.area_m2[hot].sum()) / float(units.area_m2.sum()), 2),
        "pai": round(pai(hot, count_now, units.area_m2), 2),
        "permutations": permutations,
        "alpha": alpha,
    }
    return HotspotReport(frame, spots, surface, summary)


def summary_words(summary: dict) -> dict:
    """The values a sentence about a :class:`HotspotReport` shows, formatted for reading.

    >>> summary_words({"incidents": 1200, "hot": 3, "cold": 0, "new": 1, "persistent": 2,
    ...                "fading": 0, "captured_pct": 40.0, "area_pct": 2.5, "pai": 16.0})["n"]
    '1,200'
    """
    return {
        "n": f"{summary['incidents']:,}",
        "hot": summary["hot"],
        "cold": summary["cold"],
        "new": summary["new"],
        "persistent": summary["persistent"],
        "fading": summary["fading"],
        "captured": summary["captured_pct"],
        "area": summary["area_pct"],
        "pai": summary["pai"],
    }


def spots_per_grid(store, spots: pd.DataFrame, level="courtyard") -> pd.DataFrame:
    """The spots of a :class:`HotspotReport` one row per grid of ``level``, busiest first.

    A cell counts for the grid of ``level`` its centre lies in (or the one
    above, outside every grid of ``level``). Per grid: its ``name``, the
    ``cells`` it holds, their ``incidents``, the strongest ``z`` (by size), how
    many cells are ``hot``, ``cold``, ``new``, ``persistent`` and ``fading``,
    and the grid's responsible person (``staff_*``; the parent's where nobody
    staffs it). A person acts on a grid, not on a cell: this is the list they read.
    """
    from gis_grid.analysis.gaps import chains_of_codes
    from gis_grid.domain.model import Level
    from gis_grid.grids.linkage import responsible

    columns = [
        "grid_code", "name", "cells", "incidents", "z", "hot", "cold", "new", "persistent",
        "fading", "staff_id", "staff_name", "staff_phone", "staff_fallback",
    ]  # fmt: skip
    if not len(spots):
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(spots.drop(columns="geometry", errors="ignore"))
    key = pd.Series(None, index=frame.index, dtype=object)
    for lv in reversed([lv for lv in Level if lv <= Level.parse(level)]):
        key = key.fillna(frame[f"{lv.key}_code"])
    frame = frame.assign(
        key=key.fillna(""),
        abs_z=frame["z"].abs(),
        hot=frame["spot"].eq("hot").astype(int),
        cold=frame["spot"].eq("cold").astype(int),
        **{t: frame["trend"].eq(t).astype(int) for t in ("new", "persistent", "fading")},
    )
    out = (
        frame.groupby("key", sort=False)
        .agg(
            cells=("unit", "size"),
            incidents=("incidents", "sum"),
            z=("abs_z", "max"),
            hot=("hot", "sum"),
            cold=("cold", "sum"),
            new=("new", "sum"),
            persistent=("persistent", "sum"),
            fading=("fading", "sum"),
        )
        .reset_index(names="grid_code")
    )
    names = store.grids(codes=out["grid_code"].tolist(), geometry=False)
    out.insert(
        1, "name", out["grid_code"].map(dict(zip(names["code"], names["name"], strict=True)))
    )
    who = responsible(store, chains_of_codes(out["grid_code"]))
    for c in ("staff_id", "staff_name", "staff_phone", "staff_fallback"):
        out[c] = who[c].to_numpy()
    out["z"] = out["z"].round(2)
    out = out.sort_values(["incidents", "z"], ascending=False, kind="stable")
    return out.reset_index(drop=True)[columns]

"""The steps every gap analysis shares, and the one the core owns: staffing holes.

A layer's gap analysis (``Layer.holes``) works on a :class:`Ground`: the grids
of one level in metres, with the building footprints and the public space
(grid minus buildings) of each. It hands back its findings in lon/lat through
:func:`finish`, which adds each finding's grid chain and responsible person,
and its per-grid measures through :func:`per_grid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gis_grid.domain.model import CHAIN_COLUMNS, Level
from gis_grid.geo.crs import WGS84, local_metric_crs, project, reproject
from gis_grid.grids.linkage import responsible
from gis_grid.grids.queries import active
from gis_grid.layers.features import link_points
from gis_grid.layers.plugins import GapReport
from gis_grid.store.base import chain_frame


@dataclass
class Ground:
    """The grids of one level in a local metric CRS, with buildings and public space."""

    crs: CRS
    grids: gpd.GeoDataFrame  # lon/lat, the grids analysed
    metric: np.ndarray  # the same grids in metres
    buildings: np.ndarray  # building footprints in metres

    @classmethod
    def of(cls, store, level: Level = Level.AREA, *, under=None) -> Ground:
        """The grids of ``level`` (optionally under some grids) and their buildings."""
        level = Level.parse(level)
        grids = store.grids(level=level, under=under)
        if not len(grids):
            raise_empty(level)
        bounds = tuple(grids.total_bounds)
        crs = local_metric_crs((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
        buildings = (
            store.grids(level=Level.BUILDING, bbox=bounds)
            if level < Level.BUILDING
            else grids.iloc[:0]
        )
        return cls(
            crs,
            grids,
            project(grids.geometry.to_numpy(), crs),
            project(buildings.geometry.to_numpy(), crs),
        )

    @cached_property
    def public(self) -> np.ndarray:
        """Each grid minus the buildings in it."""
        from gis_grid.geo.coverage import public_space

        return public_space(self.metric, self.buildings)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """The lon/lat bounding box of the grids analysed."""
        return tuple(float(v) for v in self.grids.total_bounds)

    def features(self, store, layer: str, *, where: dict | None = None, grow: float = 0.0):
        """A layer's features over these grids (``grow`` degrees around), or None without it."""
        if layer not in store.layers():
            return None
        minx, miny, maxx, maxy = self.bbox
        box = (minx - grow, miny - grow, maxx + grow, maxy + grow)
        return store.features(layer, bbox=box, where=where)

    def to_metric(self, geoms) -> np.ndarray:
        """Lon/lat geometries in this ground's metres."""
        return project(np.asarray(geoms, dtype=object), self.crs)

    def to_lonlat(self, geoms) -> np.ndarray:
        """Metric geometries back to lon/lat."""
        return reproject(np.asarray(geoms, dtype=object), self.crs, WGS84)


def raise_empty(level: Level) -> None:
    """No grids to analyse: say so."""
    from gis_grid.domain.errors import NotFoundError
    from gis_grid.domain.messages import say

    raise NotFoundError(say("problem_no_level_grids", level=level.key, level_zh=level.zh))


def finish(
    store, geoms: np.ndarray, columns: dict, *, sort: list[str] | None = None
) -> gpd.GeoDataFrame:
    """Findings (lon/lat geometries + columns) with grid chain and responsible person."""
    geoms = np.asarray(geoms, dtype=object)
    frame = pd.DataFrame(columns)
    if len(geoms):
        x, y = link_points(geoms)
        chains = chain_frame(store.lookup(x, y))
    else:
        chains = pd.DataFrame({c: pd.Series(dtype=object) for c in CHAIN_COLUMNS})
    chains.index = frame.index
    out = pd.concat([frame, chains, responsible(store, chains)], axis=1)
    out = gpd.GeoDataFrame(
        out, geometry=gpd.GeoSeries(geoms, crs=WGS84, index=frame.index), crs=WGS84
    )
    if sort and len(out):
        out = out.sort_values(sort, ascending=False, kind="stable")
    out = out.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def per_grid(store, grids, measures: dict) -> pd.DataFrame:
    """One row per analysed grid (a :class:`Ground` or a grids frame): measures and person."""
    g = grids.grids if isinstance(grids, Ground) else grids
    frame = pd.DataFrame(
        {
            "code": g["code"].to_numpy(),
            "name": g["name"].to_numpy(),
            "level": g["level"].to_numpy(),
            **measures,
        }
    )
    chains = chains_of_codes(frame["code"])
    who = responsible(store, chains)
    return pd.concat([frame, who.drop(columns=["grid_code", "grid_level"])], axis=1)


def count_per_grid(found: pd.DataFrame, column: str, codes) -> np.ndarray:
    """How many of ``found`` lie in each grid of ``codes`` (by their ``column`` code)."""
    if not len(found):
        return np.zeros(len(codes), dtype=int)
    return found[column].value_counts().reindex(codes).fillna(0).astype(int).to_numpy()


def chains_of_codes(codes: pd.Series) -> pd.DataFrame:
    """The chain columns of grids from their own codes (a code starts with its parents')."""
    from gis_grid.domain.model import CODE_LENGTHS

    codes = codes.astype(str).reset_index(drop=True)
    out = {}
    for lv in Level:
        width = CODE_LENGTHS[lv]
        out[f"{lv.key}_code"] = codes.str.slice(0, width).where(codes.str.len() >= width, None)
    return pd.DataFrame(out).astype(object)


def staffing_holes(store, *, level: Level | None = None, under=None) -> GapReport:
    """Grids with nobody responsible, at every level (or one), with who answers instead.

    The answering person is the nearest ancestor's (属地兜底); a grid whose
    whole chain is unstaffed has none. ``under`` (grid codes) limits the
    report, counts included, to those subtrees (a grid worker's own grids).
    """
    grids = store.grids(level=level, under=under)
    assigned = active(store.assignments())
    staffed = pd.Index(assigned["grid_code"].astype(str).unique())
    missing = grids.loc[~grids["code"].isin(staffed)].reset_index(drop=True)
    chains = chains_of_codes(missing["code"])
    who = responsible(store, chains)
    out = pd.concat([missing.drop(columns="geometry").reset_index(drop=True), chains, who], axis=1)
    out["kind"] = "no_staff"
    depth = missing["level"].map(lambda k: int(Level.parse(k)))
    out = gpd.GeoDataFrame(out, geometry=missing.geometry.to_numpy(), crs=WGS84)
    out = out.assign(_depth=depth.to_numpy()).sort_values(["_depth", "code"]).drop(columns="_depth")
    out = out.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    counts = grids.groupby("level").size()
    holes = out.groupby("level").size()
    per_level = pd.DataFrame(
        {
            "level": [lv.key for lv in Level],
            "grids": [int(counts.get(lv.key, 0)) for lv in Level],
            "unstaffed": [int(holes.get(lv.key, 0)) for lv in Level],
        }
    )
    return GapReport(out, per_level, {"unstaffed": len(out), "grids": len(grids)})


def unowned_features(store) -> GapReport:
    """Features of every layer that lie in no grid: holes in coverage themselves.

    Each is listed with the nearest community, how far away it is, and that
    community's responsible person (flagged as a fallback: nobody owns the spot).
    """
    communities = store.grids(level=Level.COMMUNITY)
    frames = []
    for name in store.layers():
        found = store.features(name, where={"community_code": None})
        if len(found):
            frames.append(
                gpd.GeoDataFrame(
                    {"layer": name, "id": found["id"].to_numpy()},
                    geometry=found.geometry.to_numpy(),
                    crs=WGS84,
                )
            )
    empty = gpd.GeoDataFrame({"layer": [], "id": []}, geometry=gpd.GeoSeries([], crs=WGS84))
    found = pd.concat(frames, ignore_index=True) if frames else empty
    nearest = np.full(len(found), None, dtype=object)
    distance = np.full(len(found), np.nan)
    if len(found) and len(communities):
        b = communities.total_bounds
        crs = local_metric_crs((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        polys = project(communities.geometry.to_numpy(), crs)
        geoms = project(found.geometry.to_numpy(), crs)
        pairs, dist = shapely.STRtree(polys).query_nearest(
            geoms, return_distance=True, all_matches=False
        )
        nearest[pairs[0]] = communities["code"].to_numpy()[pairs[1]]
        distance[pairs[0]] = np.round(dist, 1)
    chains = pd.DataFrame({c: pd.Series([None] * len(found), dtype=object) for c in CHAIN_COLUMNS})
    chains["community_code"] = nearest
    who = responsible(store, chains)
    out = pd.concat(
        [
            found.drop(columns="geometry"),
            pd.DataFrame({"kind": "unowned", "nearest_community": nearest, "distance_m": distance}),
            who,
        ],
        axis=1,
    )
    out["grid_code"] = None  # in no grid: the person is the nearest community's
    out["staff_fallback"] = out["staff_id"].notna()
    out = gpd.GeoDataFrame(out, geometry=found.geometry.to_numpy(), crs=WGS84)
    out = out.sort_values(["distance_m", "layer", "id"], ascending=[False, True, True])
    out = out.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    counts = out.groupby("layer").size()
    per_layer = pd.DataFrame(
        {"layer": list(store.layers()), "unowned": [int(counts.get(n, 0)) for n in store.layers()]}
    )
    return GapReport(out, per_layer, {"unowned": len(out)})

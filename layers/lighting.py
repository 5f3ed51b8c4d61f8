"""路灯 street lamps, and the stretches of street no working lamp lights.

Each lamp lights a disc of its lit radius: given per lamp (``lit_radius_m``) or
taken from its type (:data:`LIT_RADIUS`). A dark stretch is a piece of the
``streets`` layer farther than the lit radius from every working lamp, at
least ``min_length`` metres long; stretches are ranked by the incidents
reported at night (19:00–06:00) within ``near_m`` metres.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.analysis.gaps import Ground, finish, per_grid
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level
from gis_grid.geo.coverage import parts, uncovered
from gis_grid.layers.features import FeatureSchema, Field
from gis_grid.layers.plugins import GapReport, Layer
from layers.components import COMPONENT_FIELDS, demo_frame, demo_grids, night, osm_tags
from layers.incidents import incidents_in

TYPES = {
    "street": "道路灯",
    "courtyard": "庭院灯",
    "high_mast": "高杆灯",
    "wall": "壁灯",
    "solar": "太阳能灯",
}
#: Lit radius (m) of each lamp type, used when a lamp gives none.
LIT_RADIUS = {"street": 20.0, "courtyard": 12.0, "high_mast": 40.0, "wall": 6.0, "solar": 10.0}
STATUSES = {"working": "正常", "damaged": "损坏", "lost": "丢失"}
#: The demo leaves out the lamps of this area (by its position among the areas): a dark area;
#: at city scale one area in DEMO_EVERY. Demo lamps stand DEMO_SPACING_M apart.
DEMO_DARK_AREA = 2
DEMO_EVERY = 40
DEMO_SPACING_M = 30.0


class LightingLayer(Layer):
    """Street lamps (路灯): points with a type, a lit radius and a status."""

    schema = FeatureSchema(
        "lighting",
        "路灯",
        "Point",
        (
            Field(
                "lamp_type",
                "choice",
                "灯型",
                choices=TYPES,
                default="street",
                aliases=("type", "lamp"),
            ),
            Field("lit_radius_m", "float", "照明半径", minimum=0, aliases=("radius", "radius_m")),
            Field("status", "choice", "运行状态", choices=STATUSES, default="working"),
            *COMPONENT_FIELDS,
        ),
        "Street lamps (路灯) with their lit radius",
    )
    has_holes = True

    def check(self, features: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Fill each missing lit radius from the lamp type."""
        radius = features["lamp_type"].map(LIT_RADIUS).astype(float)
        features["lit_radius_m"] = features["lit_radius_m"].fillna(radius)
        return features

    def demo(self, data, rng):
        """A lamp every 30 m along the demo's streets and lanes; one area dark, a few broken.

        Street lamps (道路灯) on the roads round and between the compounds,
        courtyard lamps (庭院灯) on the lanes inside them.
        """
        from layers.streets import demo_network

        _, areas, _ = demo_grids(data, "area")
        network, _, kinds = demo_network(data)
        lines = shapely.get_parts(network)
        lane = np.repeat(np.array(kinds) == "service", shapely.get_num_geometries(network))
        count = np.maximum(np.floor(shapely.length(lines) / DEMO_SPACING_M).astype(int), 1)
        owner = np.repeat(np.arange(len(lines)), count)
        k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        at = (k + 0.5) / count[owner]
        pts = shapely.line_interpolate_point(lines[owner], at, normalized=True)
        pts = shapely.set_precision(pts, 0.01)
        keep = np.sort(np.unique(shapely.to_wkb(pts), return_index=True)[1])  # corners shared
        pts, on_lane = pts[keep], lane[owner][keep]
        dark = areas[np.arange(len(areas)) % DEMO_EVERY == DEMO_DARK_AREA]
        lit = ~shapely.intersects(shapely.union_all(dark), pts)
        pts, on_lane = pts[lit], on_lane[lit]
        n = len(pts)
        status = np.where(rng.random(n) < 0.04, "damaged", "working")
        return demo_frame(
            {
                "id": [f"L{i:05d}" for i in range(1, n + 1)],
                "lamp_type": np.where(on_lane, "courtyard", "street"),
                "status": status,
                "owner_unit": "城市照明管理处",
                "maintainer_unit": "路灯维护中心",
                "state": np.where(status == "working", "intact", "damaged"),
                "created_on": "2023-04-01",
            },
            pts,
            data,
        )

    def from_osm(self, osm):
        """``highway=street_lamp`` nodes, as working street lamps."""
        found = osm.get_data_by_custom_criteria(
            {"highway": ["street_lamp"]}, keep_ways=False, keep_relations=False
        )
        if found is None or not len(found):
            return None
        found = found.loc[found["highway"] == "street_lamp"]
        tags = osm_tags(found)
        mount = tags.get("lamp_mount", pd.Series([None] * len(found), index=found.index))
        return gpd.GeoDataFrame(
            {
                "id": "n" + found["id"].astype(str),
                "lamp_type": np.where(mount.isin(["wall", "wall_mounted"]), "wall", "street"),
                "status": "working",
                "source": "OpenStreetMap",
            },
            geometry=found.geometry.to_numpy(),
            crs="EPSG:4326",
        )

    def holes(
        self,
        store,
        *,
        level: Level = Level.AREA,
        now: dt.datetime | None = None,
        under=None,
        min_length: float = 5.0,
        near_m: float = 25.0,
        since: str | None = None,
        until: str | None = None,
    ) -> GapReport:
        """Dark street stretches per grid of ``level``, ranked by night-time incidents."""
        level = Level.parse(level)
        if "streets" not in store.layers():
            raise InputError(say("problem_lighting_needs_streets"))
        ground = Ground.of(store, level, under=under)
        street_rows = ground.features(store, "streets")
        streets = ground.to_metric(street_rows.geometry.to_numpy())
        # street pieces per grid
        g_i, s_j = shapely.STRtree(streets).query(ground.metric, predicate="intersects")
        pieces = shapely.intersection(streets[s_j], ground.metric[g_i])
        # lamps just outside the grids light their edges: look ~100 m around
        lamps = ground.features(store, "lighting", where={"status": "working"}, grow=0.001)
        if lamps is not None and len(lamps):
            lit = shapely.buffer(
                ground.to_metric(lamps.geometry.to_numpy()),
                lamps["lit_radius_m"].to_numpy(float),
                quad_segs=16,
            )
        else:
            lit = np.array([], dtype=object)
        dark, _ = uncovered(pieces, lit)
        street_m = np.bincount(g_i, weights=shapely.length(pieces), minlength=len(ground.metric))
        dark_m = np.bincount(g_i, weights=shapely.length(dark), minlength=len(ground.metric))
        stretches, src = parts(dark, min_length=min_length)
        owner = g_i[src]
        incidents = incidents_in(store, bbox=ground.bbox, since=since, until=until)
        counts = np.zeros(len(stretches), dtype=np.int64)
        if len(incidents) and len(stretches):
            at_night = night(incidents["reported_at"]).to_numpy()
            pts = ground.to_metric(incidents.geometry.to_numpy()[at_night])
            _, hit = shapely.STRtree(stretches).query(pts, predicate="dwithin", distance=near_m)
            counts = np.bincount(hit, minlength=len(stretches))
        codes = ground.grids["code"].to_numpy()
        features = finish(
            store,
            ground.to_lonlat(stretches),
            {
                "kind": "dark_stretch",
                "grid": codes[owner],
                "length_m": np.round(shapely.length(stretches), 1),
                "night_incidents": counts,
                # OSM's lit tag: a dark stretch on a street mapped lit=yes hints at lamps
                # missing from the data rather than missing on the ground
                "street": street_rows["id"].to_numpy()[s_j[src]],
                "street_lit": street_rows["lit"].to_numpy()[s_j[src]],
            },
            sort=["night_incidents", "length_m"],
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = np.where(street_m > 0, 100 * dark_m / street_m, 0.0)
        table = per_grid(
            store,
            ground,
            {
                "street_m": np.round(street_m, 1),
                "dark_m": np.round(dark_m, 1),
                "dark_pct": np.round(pct, 2),
                "stretches": np.bincount(owner, minlength=len(codes)),
            },
        )
        summary = {
            "level": level.key,
            "grids": len(codes),
            "working_lamps": 0 if lamps is None else len(lamps),
            "street_m": round(float(street_m.sum()), 1),
            "dark_m": round(float(dark_m.sum()), 1),
            "stretches": len(features),
            "night_incidents_near": int(counts.sum()),
        }
        return GapReport(features, table, summary)

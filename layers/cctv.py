"""监控 CCTV cameras, and the public space no working camera sees.

A camera has a heading (compass degrees, clockwise from north), a field of
view (degrees, up to 360 for a dome) and a useful range (metres). Its view is
the sector those describe, cut short by building footprints (a wall blocks the
view; see :func:`gis_grid.geo.coverage.view_sectors`). A coverage hole is public
space (grid minus buildings) that no *working* camera sees, of at least
``min_area`` m², ranked by the incidents reported inside it.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.analysis.gaps import Ground, finish, per_grid
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level
from gis_grid.geo.coverage import parts, uncovered, view_sectors
from gis_grid.layers.features import FeatureSchema, Field, row_error
from gis_grid.layers.plugins import GapReport, Layer
from layers.components import COMPONENT_FIELDS, demo_frame, demo_grids, osm_tags
from layers.incidents import incidents_in

STATUSES = {"working": "正常", "damaged": "损坏", "offline": "离线"}
#: The demo puts no camera in this area (by position; one area in DEMO_EVERY at city scale).
DEMO_BLIND_AREA = 5
DEMO_EVERY = 40


class CCTVLayer(Layer):
    """Cameras (监控): points with heading, field of view and range."""

    schema = FeatureSchema(
        "cctv",
        "监控",
        "Point",
        (
            Field(
                "heading",
                "float",
                "朝向",
                required=True,
                minimum=0,
                maximum=360,
                aliases=("direction", "camera_direction", "camera:direction"),
            ),
            Field(
                "fov",
                "float",
                "视角",
                required=True,
                minimum=0,
                maximum=360,
                aliases=("field_of_view", "angle", "camera:angle"),
            ),
            Field(
                "range_m",
                "float",
                "监控距离",
                required=True,
                minimum=0,
                aliases=("range", "distance"),
            ),
            Field("status", "choice", "运行状态", choices=STATUSES, default="working"),
            *COMPONENT_FIELDS,
        ),
        "CCTV cameras (监控) with their view: heading, field of view, range",
    )
    has_holes = True

    def check(self, features: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """A field of view of 0° sees nothing: refuse it by row."""
        zero = (features["fov"] <= 0).to_numpy()
        if zero.any():
            rows = [
                {
                    "row": int(i) + 1,
                    "id": features["id"].iloc[i],
                    "column": "fov",
                    "value": "0",
                    "problem": say("row_fov_zero"),
                }
                for i in np.flatnonzero(zero)
            ]
            raise row_error(rows, "cctv (监控)")
        return features

    def demo(self, data, rng):
        """Two cameras per courtyard, at opposite corners looking in; one area without any."""
        codes, yards, _ = demo_grids(data, "courtyard")
        area_codes, areas, _ = demo_grids(data, "area")
        blind = area_codes[np.arange(len(area_codes)) % DEMO_EVERY == DEMO_BLIND_AREA]
        keep = ~pd.Series(codes).str.slice(0, 15).isin(blind).to_numpy()
        codes, yards = codes[keep], yards[keep]
        b = shapely.bounds(yards)
        inset = 3.0
        x = np.r_[b[:, 0] + inset, b[:, 2] - inset]
        y = np.r_[b[:, 3] - inset, b[:, 1] + inset]
        heading = np.r_[np.full(len(yards), 135.0), np.full(len(yards), 315.0)]
        n = len(x)
        status = np.where(rng.random(n) < 0.05, "damaged", "working")
        return demo_frame(
            {
                "id": [f"C{i:05d}" for i in range(1, n + 1)],
                "heading": heading,
                "fov": 90.0,
                "range_m": 45.0,
                "status": status,
                "owner_unit": "社区综治中心",
                "maintainer_unit": "雪亮工程运维",
                "state": np.where(status == "working", "intact", "damaged"),
                "created_on": "2024-06-01",
            },
            shapely.points(x, y),
            data,
        )

    def from_osm(self, osm):
        """Cameras from ``man_made=surveillance`` nodes.

        The heading comes from ``camera:direction``; a dome or revolving camera
        (or one with no direction) watches all round (360°, 20 m), a fixed one
        90° over 40 m.
        """
        found = osm.get_data_by_custom_criteria(
            {"man_made": ["surveillance"]}, keep_ways=False, keep_relations=False
        )
        if found is None or not len(found):
            return None
        tags = osm_tags(found)
        none = pd.Series([None] * len(found), index=found.index)
        direction = tags.get("camera:direction", tags.get("direction", none)).map(_compass)
        dome = tags.get("camera:type", none).isin(["dome", "panning"]) | tags.get(
            "revolving", none
        ).eq("yes")
        all_round = dome | direction.isna()
        return gpd.GeoDataFrame(
            {
                "id": "n" + found["id"].astype(str),
                "heading": direction.fillna(0.0).to_numpy(),
                "fov": np.where(all_round, 360.0, 90.0),
                "range_m": np.where(all_round, 20.0, 40.0),
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
        min_area: float = 25.0,
        step_deg: float = 1.0,
        since: str | None = None,
        until: str | None = None,
    ) -> GapReport:
        """Public space no working camera sees, per grid of ``level``, ranked by incidents."""
        level = Level.parse(level)
        ground = Ground.of(store, level, under=under)
        cams = ground.features(store, "cctv", where={"status": "working"})
        if cams is not None and len(cams):
            pts = ground.to_metric(cams.geometry.to_numpy())
            views = view_sectors(
                shapely.get_x(pts),
                shapely.get_y(pts),
                cams["heading"],
                cams["fov"],
                cams["range_m"],
                ground.buildings,
                step_deg=step_deg,
            )
        else:
            views = np.array([], dtype=object)
        left, covered = uncovered(ground.public, views)
        public_m2 = shapely.area(ground.public)
        covered_m2 = shapely.area(covered)
        pieces, owner = parts(left, min_area=min_area)
        incidents = incidents_in(store, bbox=ground.bbox, since=since, until=until)
        counts = np.zeros(len(pieces), dtype=np.int64)
        if len(incidents) and len(pieces):
            _, hole = shapely.STRtree(pieces).query(
                ground.to_metric(incidents.geometry.to_numpy()), predicate="intersects"
            )
            counts = np.bincount(hole, minlength=len(pieces))
        codes = ground.grids["code"].to_numpy()
        features = finish(
            store,
            ground.to_lonlat(pieces),
            {
                "kind": "cctv_hole",
                "grid": codes[owner],
                "area_m2": np.round(shapely.area(pieces), 1),
                "incidents": counts,
            },
            sort=["incidents", "area_m2"],
        )
        column = f"{level.key}_code"
        cameras = cams[column].value_counts() if cams is not None and len(cams) else pd.Series()
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = np.where(public_m2 > 0, 100 * covered_m2 / public_m2, 100.0)
        table = per_grid(
            store,
            ground,
            {
                "public_m2": np.round(public_m2, 1),
                "covered_m2": np.round(covered_m2, 1),
                "coverage_pct": np.round(pct, 2),
                "holes": np.bincount(owner, minlength=len(codes)),
                "hole_incidents": np.bincount(owner, weights=counts, minlength=len(codes)).astype(
                    int
                ),
                "cameras": cameras.reindex(codes).fillna(0).astype(int).to_numpy(),
            },
        )
        total_public = float(public_m2.sum())
        summary = {
            "level": level.key,
            "grids": len(codes),
            "working_cameras": 0 if cams is None else len(cams),
            "coverage_pct": round(100 * float(covered_m2.sum()) / total_public, 2)
            if total_public
            else 100.0,
            "holes": len(features),
            "hole_area_m2": round(float(features["area_m2"].sum()), 1) if len(features) else 0.0,
            "incidents_in_holes": int(counts.sum()),
        }
        return GapReport(features, table, summary)


_COMPASS = {
    "N": 0,
    "NNE": 22.5,
    "NE": 45,
    "ENE": 67.5,
    "E": 90,
    "ESE": 112.5,
    "SE": 135,
    "SSE": 157.5,
    "S": 180,
    "SSW": 202.5,
    "SW": 225,
    "WSW": 247.5,
    "W": 270,
    "WNW": 292.5,
    "NW": 315,
    "NNW": 337.5,
}


def _compass(value) -> float | None:
    """An OSM direction (degrees or N/NE/…) in degrees, or None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().upper()
    if text in _COMPASS:
        return float(_COMPASS[text])
    try:
        return float(text) % 360
    except ValueError:
        return None

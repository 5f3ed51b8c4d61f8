"""道路 streets and paths: the lines street lighting is measured along."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.layers.features import FeatureSchema, Field
from gis_grid.layers.plugins import Layer
from layers.components import demo_frame, demo_grids

LIT = {"yes": "有照明", "no": "无照明", "unknown": "未知"}


class StreetsLayer(Layer):
    """Street and path centre lines (OSM ``highway=*`` ways, or a city's road layer)."""

    schema = FeatureSchema(
        "streets",
        "道路",
        "LineString",
        (
            Field("name", "text", "名称"),
            Field("kind", "text", "道路等级", aliases=("highway", "class", "type")),
            Field("lit", "choice", "照明", choices=LIT, default="unknown"),
        ),
        "Streets and paths (道路): the lines lighting gaps are measured along",
    )

    def demo(self, data, rng):
        """Streets along the area boundaries, paths along the courtyard boundaries."""
        _, areas, _ = demo_grids(data, "area")
        _, yards, _ = demo_grids(data, "courtyard")
        area_lines = shapely.union_all(shapely.boundary(areas))
        lines = shapely.line_merge(shapely.union_all(shapely.boundary(yards)))
        segments = shapely.get_parts(lines)
        on_street = shapely.covered_by(segments, shapely.buffer(area_lines, 0.5))
        n = len(segments)
        return demo_frame(
            {
                "id": [f"S{i:05d}" for i in range(1, n + 1)],
                "name": np.where(on_street, "街道", "院内道路"),
                "kind": np.where(on_street, "residential", "footway"),
                "lit": "unknown",
            },
            segments,
            data,
        )

    def from_osm(self, osm):
        """Every ``highway=*`` way: name, kind, and its ``lit`` tag."""
        net = osm.get_network(network_type="all")
        if net is None or not len(net):
            return None
        lit = (
            net.get("lit", pd.Series([None] * len(net), index=net.index))
            .map({"yes": "yes", "24/7": "yes", "automatic": "yes", "no": "no", "disused": "no"})
            .fillna("unknown")
        )
        ids = "w" + net["id"].astype(str)
        ids = ids + np.where(
            ids.duplicated(keep=False), "-" + ids.groupby(ids).cumcount().astype(str), ""
        )
        return gpd.GeoDataFrame(
            {
                "id": ids.to_numpy(),
                "name": net.get("name"),
                "kind": net["highway"],
                "lit": lit.to_numpy(),
            },
            geometry=net.geometry.to_numpy(),
            crs="EPSG:4326",
        )

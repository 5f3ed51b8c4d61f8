"""The attributes every component (部件: camera, lamp …) carries in the city standards."""

from __future__ import annotations

import pandas as pd

from gis_grid.layers.features import Field

STATES = {"intact": "完好", "damaged": "破损", "lost": "丢失", "occupied": "占用"}

COMPONENT_FIELDS = (
    Field("owner_unit", "text", "权属单位", aliases=("owner", "owning_unit")),
    Field("maintainer_unit", "text", "养护单位", aliases=("maintainer", "maintaining_unit")),
    Field("state", "choice", "部件状态", choices=STATES, default="intact"),
    Field("created_on", "date", "建档日期", aliases=("created",)),
    Field("changed_on", "date", "变更日期", aliases=("changed",)),
    Field("source", "text", "数据来源"),
)


def night(times: pd.Series, *, dusk: int = 19, dawn: int = 6) -> pd.Series:
    """Which ISO times fall at night (from ``dusk`` to ``dawn`` o'clock, local time)."""
    hour = pd.to_numeric(times.astype(str).str.slice(11, 13), errors="coerce")
    return (hour >= dusk) | (hour < dawn)


def demo_grids(data, level: str):
    """The demo's grids of one level: codes and polygons in the demo's metres."""
    import numpy as np

    from gis_grid.geo.crs import project

    rows = data.grids.loc[data.grids["level"] == level].sort_values("code")
    return (
        rows["code"].to_numpy(),
        project(rows.geometry.to_numpy(), data.metric_crs),
        np.asarray(rows.index),
    )


def demo_frame(columns: dict, metric_geoms, data):
    """Demo features in lon/lat from metric geometries."""
    import geopandas as gpd

    from gis_grid.geo.crs import WGS84, reproject

    return gpd.GeoDataFrame(
        columns, geometry=reproject(metric_geoms, data.metric_crs, WGS84), crs=WGS84
    )


def osm_tags(frame) -> pd.DataFrame:
    """Pyrosm's ``tags`` column (JSON text per feature) as a frame of tag columns."""
    import json

    parsed = [
        json.loads(t) if isinstance(t, str) and t else {}
        for t in frame.get("tags", pd.Series([None] * len(frame))).tolist()
    ]
    return pd.DataFrame(parsed, index=frame.index)

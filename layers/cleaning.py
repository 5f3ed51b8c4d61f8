"""保洁 cleaning zones: which crew cleans where, how often, and when it last did.

Two kinds of gap: public space (grid minus buildings) that lies in no cleaning
zone (at least ``min_area`` m²), and zones overdue — last cleaned longer ago
than their frequency allows (or never recorded).
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.analysis.gaps import Ground, count_per_grid, finish, per_grid
from gis_grid.domain.model import Level
from gis_grid.geo.coverage import parts, uncovered
from gis_grid.layers.features import FeatureSchema, Field, now_local
from gis_grid.layers.plugins import GapReport, Layer
from layers.components import demo_frame, demo_grids

#: The demo leaves this area (by position) out of every zone, and lets two zones run overdue.
DEMO_UNCLEANED_AREA = 7
DEMO_OVERDUE = (0, 3)
DEMO_EVERY = 40


class CleaningLayer(Layer):
    """Cleaning zones (保洁): polygons with a crew, a frequency and the last cleaning."""

    schema = FeatureSchema(
        "cleaning",
        "保洁",
        "Polygon",
        (
            Field("name", "text", "名称"),
            Field("crew", "text", "保洁班组", required=True, aliases=("team",)),
            Field("crew_phone", "text", "联系电话", aliases=("phone",)),
            Field(
                "frequency_hours",
                "float",
                "保洁频次(小时)",
                required=True,
                minimum=0.5,
                aliases=("frequency", "every_hours"),
            ),
            Field("last_cleaned_at", "time", "最近保洁时间", aliases=("last_cleaned",)),
        ),
        "Cleaning zones (保洁) with the crew responsible, frequency and last cleaning",
    )
    has_holes = True

    def demo(self, data, rng):
        """One zone per area (the whole area), cleaned daily; one area has none, two are late."""
        codes, areas, _ = demo_grids(data, "area")
        position = np.arange(len(codes))
        keep = position % DEMO_EVERY != DEMO_UNCLEANED_AREA
        now = pd.Timestamp(now_local())
        hours_ago = rng.uniform(2, 20, len(codes))
        hours_ago[np.isin(position % DEMO_EVERY, DEMO_OVERDUE)] = 72.0
        last = (now - pd.to_timedelta(hours_ago, unit="h")).strftime("%Y-%m-%dT%H:%M:%S")
        short = len({c[-6:] for c in codes}) == len(codes)
        return demo_frame(
            {
                # short ids where they are unique (one community), the full code elsewhere
                "id": [f"Z{c[-6:]}" if short else f"Z{c}" for c in codes[keep]],
                "name": [f"{c[-3:]}片区保洁" for c in codes[keep]],
                "crew": [f"保洁{i % 9 + 1}组" for i in position[keep]],
                "crew_phone": [f"0410-88{i % 10000:04d}" for i in position[keep]],
                "frequency_hours": 24.0,
                "last_cleaned_at": np.asarray(last)[keep],
            },
            areas[keep],
            data,
        )

    def holes(
        self,
        store,
        *,
        level: Level = Level.AREA,
        now: dt.datetime | None = None,
        under=None,
        min_area: float = 25.0,
    ) -> GapReport:
        """Uncleaned public space and overdue zones, per grid of ``level``."""
        level = Level.parse(level)
        ground = Ground.of(store, level, under=under)
        zones = ground.features(store, "cleaning")
        zone_m = (
            ground.to_metric(zones.geometry.to_numpy())
            if zones is not None
            else np.array([], dtype=object)
        )
        left, covered = uncovered(ground.public, zone_m)
        public_m2 = shapely.area(ground.public)
        pieces, owner = parts(left, min_area=min_area)
        codes = ground.grids["code"].to_numpy()
        gaps = finish(
            store,
            ground.to_lonlat(pieces),
            {
                "kind": "uncleaned",
                "grid": codes[owner],
                "area_m2": np.round(shapely.area(pieces), 1),
            },
            sort=["area_m2"],
        )
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S") if now else now_local()
        overdue_rows = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs="EPSG:4326"))
        overdue_per_grid = np.zeros(len(codes), dtype=int)
        if zones is not None and len(zones):
            last = pd.to_datetime(zones["last_cleaned_at"])
            due = last + pd.to_timedelta(zones["frequency_hours"], unit="h")
            late = due.isna() | (due < pd.Timestamp(stamp))
            hours = ((pd.Timestamp(stamp) - due) / pd.Timedelta(hours=1)).round(1)
            z = zones.loc[late]
            overdue_rows = finish(
                store,
                z.geometry.to_numpy(),
                {
                    "kind": "overdue",
                    "zone": z["id"].to_numpy(),
                    "name": z["name"].to_numpy(),
                    "crew": z["crew"].to_numpy(),
                    "crew_phone": z["crew_phone"].to_numpy(),
                    "last_cleaned_at": z["last_cleaned_at"].to_numpy(),
                    "overdue_hours": hours.loc[late].to_numpy(),
                },
                sort=["overdue_hours"],
            )
            overdue_per_grid = count_per_grid(overdue_rows, f"{level.key}_code", codes)
        features = pd.concat([gaps, overdue_rows], ignore_index=True)
        features = gpd.GeoDataFrame(features, geometry="geometry", crs="EPSG:4326")
        features["rank"] = np.arange(1, len(features) + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = np.where(public_m2 > 0, 100 * shapely.area(covered) / public_m2, 100.0)
        table = per_grid(
            store,
            ground,
            {
                "public_m2": np.round(public_m2, 1),
                "cleaned_pct": np.round(pct, 2),
                "uncleaned_gaps": np.bincount(owner, minlength=len(codes)),
                "overdue_zones": overdue_per_grid,
            },
        )
        summary = {
            "level": level.key,
            "zones": 0 if zones is None else len(zones),
            "uncleaned_gaps": len(gaps),
            "uncleaned_m2": round(float(gaps["area_m2"].sum()), 1) if len(gaps) else 0.0,
            "overdue_zones": len(overdue_rows),
            "as_of": stamp,
        }
        return GapReport(features, table, summary)

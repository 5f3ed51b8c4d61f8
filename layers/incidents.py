"""事件 incidents: cases reported in the grids, by category and status.

Categories are the city-management event classes (市容环境, 宣传广告, 施工管理,
街面秩序, 突发事件) and the community classes (矛盾纠纷, 治安, 物业, 其他); a file
may name them in Chinese or by key. Status follows the case loop: reported
(上报) → dispatched (派遣) → handled (处置) → closed (结案), each with its time.

Examples
--------
>>> from layers.incidents import IncidentsLayer
>>> IncidentsLayer.schema.fields[1].choices["dispute"]
'矛盾纠纷'
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.analysis.gaps import count_per_grid, finish, per_grid
from gis_grid.domain.model import Level
from gis_grid.layers.features import FeatureSchema, Field, now_local, row_error
from gis_grid.layers.plugins import GapReport, Layer
from layers.components import demo_frame, demo_grids

CATEGORIES = {
    "environment": "市容环境",
    "advertising": "宣传广告",
    "construction": "施工管理",
    "street_order": "街面秩序",
    "emergency": "突发事件",
    "dispute": "矛盾纠纷",
    "public_order": "治安",
    "property": "物业",
    "other": "其他",
}
STATUSES = {"reported": "上报", "dispatched": "派遣", "handled": "处置", "closed": "结案"}
#: Each status and the time column it needs, in the order of the case loop.
STEPS = (("dispatched", "dispatched_at"), ("handled", "handled_at"), ("closed", "closed_at"))

#: Time limits of each open step, in hours: an urgent case (突发事件) is dispatched
#: within 10 minutes, others within 30 (the published Taiyuan limits); handling
#: and the check before closing get a working day each here — set these to the
#: local rules.
LIMITS_HOURS = {"reported": 0.5, "dispatched": 24.0, "handled": 24.0}
URGENT = {"emergency": {"reported": 1 / 6, "dispatched": 2.0, "handled": 24.0}}

#: The demo plants persistent clusters at these courtyards (by position, every DEMO_EVERY),
#: and a cluster that only appeared in the last week at DEMO_NEW.
DEMO_CLUSTERS = (3, 12, 25)
DEMO_NEW = 18
DEMO_EVERY = 97
DEMO_WEEKS = 12
DEMO_BACKGROUND = 2400  # per community
DEMO_CLUSTER_SIZE = 600
DEMO_NEW_SIZE = 100
DEMO_SIGMA_M = 10.0


#: Share of incidents per category, and per hour of the day (evenings busier), for the demo.
_MIX = np.array([0.2, 0.08, 0.07, 0.15, 0.02, 0.18, 0.1, 0.15, 0.05])
_HOURLY = np.array([1, 1, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 5, 5, 6, 6, 6, 6, 7, 7, 6, 4, 3, 2], float)


class IncidentsLayer(Layer):
    """Incidents (事件): points with a time, a category and a status."""

    schema = FeatureSchema(
        "incidents",
        "事件",
        "Point",
        (
            Field("reported_at", "time", "上报时间", required=True, aliases=("time", "reported")),
            Field(
                "category",
                "choice",
                "类别",
                required=True,
                choices=CATEGORIES,
                aliases=("type", "事件类别"),
            ),
            Field("status", "choice", "状态", choices=STATUSES, default="reported"),
            Field("dispatched_at", "time", "派遣时间"),
            Field("handled_at", "time", "处置时间"),
            Field("closed_at", "time", "结案时间"),
            Field("source", "text", "来源"),
            Field("description", "text", "描述", aliases=("desc",)),
        ),
        "Reported cases (事件) with category, status and the time of each step",
    )
    time_field = "reported_at"
    category_field = "category"
    has_holes = True

    def demo(self, data, rng):
        """Twelve weeks of incidents: a uniform background and planted clusters."""
        _, communities, _ = demo_grids(data, "community")
        codes, yards, _ = demo_grids(data, "courtyard")
        position = np.arange(len(codes)) % DEMO_EVERY
        centres = shapely.centroid(yards)
        # background: uniform over the communities (rejection sampling, vectorised)
        total = DEMO_BACKGROUND * len(communities)
        b = shapely.total_bounds(communities)
        union = shapely.union_all(communities)
        shapely.prepare(union)
        pts = np.empty(0, dtype=object)
        while len(pts) < total:
            xy = rng.uniform(b[:2], b[2:], size=(2 * total, 2))
            inside = shapely.contains_xy(union, xy[:, 0], xy[:, 1])
            pts = np.r_[pts, shapely.points(xy[inside])]
        pts = pts[:total]
        days = rng.uniform(0, 7 * DEMO_WEEKS, total)

        def cluster(where, size, span_days):
            c = centres[where]
            xy = np.repeat(shapely.get_coordinates(c), size, axis=0)
            xy += rng.normal(0, DEMO_SIGMA_M, xy.shape)
            return shapely.points(xy), rng.uniform(0, span_days, len(xy))

        old_pts, old_days = cluster(
            np.isin(position, DEMO_CLUSTERS), DEMO_CLUSTER_SIZE, 7 * DEMO_WEEKS
        )
        new_pts, new_days = cluster(position == DEMO_NEW, DEMO_NEW_SIZE, 7)
        pts = np.r_[pts, old_pts, new_pts]
        days = np.r_[days, old_days, new_days]
        n = len(pts)
        now = pd.Timestamp(now_local()).normalize()
        hour = rng.choice(np.arange(24), n, p=_HOURLY / _HOURLY.sum())
        reported = (
            now
            - pd.to_timedelta(np.floor(days), unit="D")
            + pd.to_timedelta(hour * 60 + rng.integers(0, 60, n), unit="min")
            - pd.Timedelta(days=1)
        )
        reported = pd.Series(reported)
        age = (now - reported) / pd.Timedelta(days=1)
        status = np.where(age > 7, "closed", rng.choice(list(STATUSES), n, p=[0.3, 0.3, 0.2, 0.2]))
        step = pd.to_timedelta(rng.uniform(10, 50, n), unit="min")
        fmt = "%Y-%m-%dT%H:%M:%S"
        stage = pd.Series(status).map({k: i for i, k in enumerate(STATUSES)}).to_numpy()
        times = {}
        for i, (_, column) in enumerate(STEPS, start=1):
            at = reported + step * (4**i - 1)
            times[column] = np.where(stage >= i, at.dt.strftime(fmt), None)
        order = np.argsort(reported.to_numpy(), kind="stable")
        category = rng.choice(list(CATEGORIES), n, p=_MIX)
        frame = {
            "id": [f"E{i:07d}" for i in range(1, n + 1)],
            "reported_at": reported.dt.strftime(fmt).to_numpy()[order],
            "category": category[order],
            "status": status[order],
            **{k: v[order] for k, v in times.items()},
            "source": rng.choice(["网格员上报", "12345热线", "视频巡查", "居民小程序"], n)[order],
        }
        return demo_frame(frame, pts[order], data)

    def check(self, features: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Times follow the case loop: no step before the report or before the step before."""
        problems = []
        previous = features["reported_at"]
        for _, column in STEPS:
            here = features[column]
            both = here.notna() & previous.notna()
            early = both & (here.astype(str) < previous.astype(str))
            for i in np.flatnonzero(early.to_numpy()):
                problems.append(
                    {
                        "row": int(i) + 1,
                        "id": features["id"].iloc[i],
                        "column": column,
                        "value": here.iloc[i],
                        "problem": f"{column} {here.iloc[i]} is before the step before it "
                        f"({previous.iloc[i]})",
                    }
                )
            previous = here.where(here.notna(), previous)
        if problems:
            raise row_error(problems, "incidents (事件)")
        return features

    def holes(
        self,
        store,
        *,
        level=Level.AREA,
        under=None,
        since=None,
        until=None,
        now=None,
        category=None,
    ) -> GapReport:
        """Overdue open cases, most overdue first, each with its grid's person.

        A case is overdue when its current step (reported, dispatched or
        handled) has lasted longer than its limit (:data:`LIMITS_HOURS`);
        per grid of ``level``: open and overdue cases.
        """
        level = Level.parse(level)
        grids = store.grids(level=level, under=under, geometry=False)
        stamp = pd.Timestamp(now or now_local())
        where = {"status": ["reported", "dispatched", "handled"]}
        if since is not None or until is not None:
            where["reported_at"] = (since, until)
        if category:
            where["category"] = self.categories(category)
        cases = store.features("incidents", under=under, where=where)
        step_began = pd.to_datetime(cases["reported_at"])
        for status, column in STEPS[:-1]:
            began = pd.to_datetime(cases[column])
            step_began = step_began.where(~cases["status"].eq(status) | began.isna(), began)
        limit = cases["status"].map(LIMITS_HOURS).astype(float)
        for category, limits in URGENT.items():
            urgent = cases["category"].eq(category)
            limit = limit.where(~urgent, cases["status"].map(limits).astype(float))
        over = ((stamp - step_began) / pd.Timedelta(hours=1) - limit).round(1)
        late = cases.loc[over > 0]
        found = finish(
            store,
            late.geometry.to_numpy(),
            {
                "kind": "overdue",
                "id": late["id"].to_numpy(),
                "category": late["category"].to_numpy(),
                "status": late["status"].to_numpy(),
                "reported_at": late["reported_at"].astype(str).to_numpy(),
                "overdue_hours": over.loc[late.index].to_numpy(),
            },
            sort=["overdue_hours"],
        )
        column, codes = f"{level.key}_code", grids["code"]
        table = per_grid(
            store,
            grids,
            {
                "open": count_per_grid(cases, column, codes),
                "overdue": count_per_grid(found, column, codes),
            },
        ).sort_values(["overdue", "open"], ascending=False, kind="stable")
        summary = {
            "level": level.key,
            "open": len(cases),
            "overdue": len(found),
            "as_of": stamp.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        return GapReport(found, table.reset_index(drop=True), summary)


def open_incidents(frame: pd.DataFrame) -> pd.Series:
    """Which incidents are not closed."""
    return frame["status"].ne("closed")


def incidents_in(store, *, bbox=None, since=None, until=None, category=None) -> gpd.GeoDataFrame:
    """Stored incidents in a box and time window (empty when the layer is not there)."""
    if "incidents" not in store.layers():
        frame = gpd.GeoDataFrame(
            {"id": [], "reported_at": [], "category": []},
            geometry=gpd.GeoSeries([], crs="EPSG:4326"),
        )
        return frame
    where = {}
    if since is not None or until is not None:
        where["reported_at"] = (since, until)
    if category:
        where["category"] = list(np.atleast_1d(category))
    return store.features("incidents", bbox=bbox, where=where)

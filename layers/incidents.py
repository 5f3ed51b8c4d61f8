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
from gis_grid.cases.history import imported_history
from gis_grid.cases.loop import OPEN, WAITS_FOR, parse_time
from gis_grid.cases.loop import STATUSES as CASE_STATUSES
from gis_grid.cases.rules import Rules
from gis_grid.domain.messages import say
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
#: Each status of the case loop (上报 立案 派遣 处置 核查 结案, 不予立案, 挂起).
STATUSES = dict(CASE_STATUSES)
#: Step time columns, in the order of the loop: none may come before the one before.
STEPS = (
    ("accepted", "accepted_at"),
    ("dispatched", "dispatched_at"),
    ("handled", "handled_at"),
    ("verified", "verified_at"),
    ("closed", "closed_at"),
)

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
            # the case loop's state (gis_grid.cases): kept with each step, derived from the log
            Field("accepted_at", "time", "立案时间"),
            Field("verified_at", "time", "核查时间"),
            Field("deadline", "time", "时限"),
            Field("last_at", "time", "最近一步时间"),
            Field("owner_code", "text", "责任网格"),
            Field("escalation", "int", "升级次数", minimum=0, maximum=10),
            Field("assignee", "text", "承办人"),
            Field("department", "text", "承办部门"),
            Field("handler", "text", "处置人"),
            Field("reworks", "int", "返工次数", minimum=0, maximum=1000),
            Field("extensions", "int", "延期次数", minimum=0, maximum=1000),
            Field("reopened", "int", "重办次数", minimum=0, maximum=1000),
            Field("satisfaction", "int", "满意度", minimum=1, maximum=5),
            Field("suspended_from", "text", "挂起前状态"),
            Field("hours_left_at_suspend", "float", "挂起时剩余时限"),
            Field("version", "int", "版本", minimum=1, maximum=1_000_000),
            Field("steps_timed", "int", "限时步骤数", minimum=0, maximum=1_000_000),
            Field("steps_on_time", "int", "按时步骤数", minimum=0, maximum=1_000_000),
            Field("duplicate_of", "text", "疑似重复"),
            Field("outside", "bool", "网格外"),
            Field("address", "text", "地址", aliases=("address_string",)),
            Field("media_url", "text", "照片"),
            Field("reporter", "text", "上报人"),
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
        reported = reported.to_numpy()
        fmt = "%Y-%m-%dT%H:%M:%S"
        # how long each step took (hours on the clock): mostly in time, a tail of late ones
        took = np.stack(
            [
                rng.exponential(0.3, n) * np.where(rng.random(n) < 0.08, 12, 1),  # accept
                rng.exponential(0.3, n) * np.where(rng.random(n) < 0.08, 12, 1),  # dispatch
                rng.lognormal(np.log(5), 0.9, n),  # handle
                rng.exponential(0.8, n) * np.where(rng.random(n) < 0.1, 8, 1),  # verify
                rng.exponential(1.5, n),  # close
            ],
            axis=1,
        )
        elapsed = (np.cumsum(took, axis=1) * 3600).astype("int64").astype("timedelta64[s]")
        at = reported.astype("datetime64[s]")[:, None] + elapsed
        # a case has gone as far as its steps are in the past; some stop early on purpose
        stage = (at <= np.datetime64(pd.Timestamp(now_local()))).sum(axis=1)
        # the last three days' cases are still under way; a few older ones got stuck
        recent = (np.datetime64(pd.Timestamp(now_local())) - reported) < np.timedelta64(3, "D")
        stop = np.where(
            recent,
            rng.choice(np.arange(len(STEPS) + 1), n, p=[0.15, 0.1, 0.25, 0.15, 0.1, 0.25]),
            rng.choice(np.arange(len(STEPS) + 1), n, p=[0.004, 0.003, 0.006, 0.004, 0.003, 0.98]),
        )
        stage = np.minimum(stage, stop)
        status = np.array(["reported", *(s for s, _ in STEPS)], dtype=object)[stage]
        rejected = (stage == 1) & (rng.random(n) < 0.3)  # not for us (不予立案)
        status[rejected] = "rejected"
        suspended = (stage == 2) & (rng.random(n) < 0.2)  # waiting on someone outside
        status[suspended] = "suspended"
        times = {}
        for i, (_, column) in enumerate(STEPS):
            reached = (stage > i) & ~(rejected & (i > 0))
            times[column] = np.where(reached, pd.DatetimeIndex(at[:, i]).strftime(fmt), None)
        times["closed_at"] = np.where(
            rejected, pd.DatetimeIndex(at[:, 0]).strftime(fmt), times["closed_at"]
        )
        times["accepted_at"] = np.where(rejected, None, times["accepted_at"])
        reworks = np.where((stage >= 3) & (rng.random(n) < 0.07), 1, 0)
        satisfaction = np.where(
            status == "closed", rng.choice([1, 2, 3, 4, 5], n, p=[0.03, 0.05, 0.12, 0.35, 0.45]), 0
        )
        order = np.argsort(reported, kind="stable")
        category = rng.choice(list(CATEGORIES), n, p=_MIX)
        frame = {
            "id": [f"E{i:07d}" for i in range(1, n + 1)],
            "reported_at": pd.DatetimeIndex(reported).strftime(fmt).to_numpy()[order],
            "category": category[order],
            "status": status[order],
            **{k: v[order] for k, v in times.items()},
            "reworks": reworks[order],
            "satisfaction": [int(v) if v else None for v in satisfaction[order]],
            "suspended_from": np.where(suspended, "dispatched", None)[order],
            "source": rng.choice(["网格员上报", "12345热线", "视频巡查", "居民小程序"], n)[order],
        }
        return demo_frame(frame, pts[order], data)

    def prepare(self, features: gpd.GeoDataFrame):
        """Incidents are cases: their state, and the log their status and step times imply."""
        return imported_history(features, Rules.load())

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
                        "problem": say(
                            "row_step_order",
                            column=column,
                            value=here.iloc[i],
                            previous=previous.iloc[i],
                        ),
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

        A case is overdue when the step it waits for is past its deadline
        (the case rules' limit, moved by extensions and escalations); per grid
        of ``level``: open and overdue cases.
        """
        level = Level.parse(level)
        grids = store.grids(level=level, under=under, geometry=False)
        stamp = pd.Timestamp(now or now_local())
        where = {"status": sorted(OPEN)}
        if since is not None or until is not None:
            where["reported_at"] = (since, until)
        if category:
            where["category"] = self.categories(category)
        cases = store.features("incidents", under=under, where=where)
        deadline = pd.to_datetime(
            cases["deadline"] if "deadline" in cases else pd.Series(None, index=cases.index)
        )
        missing = deadline.isna()
        if missing.any():  # a store from before the case loop: the limits of the rules
            deadline[missing] = pd.to_datetime(_deadlines(cases.loc[missing], Rules.load()))
        over = ((stamp - deadline) / pd.Timedelta(hours=1)).round(1)
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
    """Which incidents are open: neither closed nor rejected."""
    return ~frame["status"].isin(["closed", "rejected"])


def _deadlines(cases: pd.DataFrame, rules: Rules) -> list[str]:
    """The deadline of each open case's current step, from its step times and the rules."""
    out = []
    for row in cases.to_dict("records"):
        status = row["status"] if row["status"] in WAITS_FOR else "accepted"
        began = row.get("reported_at")
        for column in ("accepted_at", "dispatched_at", "handled_at", "verified_at"):
            if row.get(column) is not None and not pd.isna(row.get(column)):
                began = row[column]
        due = rules.due(row["category"], WAITS_FOR[status], parse_time(began))
        out.append(due.strftime("%Y-%m-%dT%H:%M:%S"))
    return out


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

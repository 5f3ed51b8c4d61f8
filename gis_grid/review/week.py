"""One week of a community, a street or the whole store, gathered for the weekly review.

Nothing here computes a figure of its own: the headline is
:func:`gis_grid.cases.indicators.totals` (the CLI's ``indicators`` summed
over the scope), hot spots are :func:`gis_grid.analysis.hotspots.find_hotspots`
(the supervisor page's), the holes are each layer's ``holes`` (the CLI's
``holes``), the per-grid ranking is :func:`gis_grid.cases.indicators.indicators`
and the changes are the revision log and :func:`gis_grid.planning.edits.compare`.

Weeks are ISO weeks (Monday to Sunday) in China Standard Time, as cases keep
their times.

Examples
--------
>>> w = Week.parse("2026-W47")
>>> str(w), w.start.date().isoformat(), w.end.date().isoformat(), str(w.shift(-1))
('2026-W47', '2026-11-16', '2026-11-23', '2026-W46')
>>> Week.parse("2026-w5"), Week.of(dt.date(2027, 1, 1))
(Week(year=2026, number=5), Week(year=2026, number=53))
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level

#: How many weeks the trends and sparklines look back (the week itself included).
WEEKS = 12
#: Rows of each ranked table.
TOP = 10
#: The headline figures, in the order the report shows them.
HEADLINE = (
    "reported",
    "closed",
    "overdue",
    "closure_rate",
    "on_time_rate",
    "mean_satisfaction",
)
#: China Standard Time, the clock cases keep.
CST = dt.timezone(dt.timedelta(hours=8))
_WEEK = re.compile(r"\s*(\d{4})-?[Ww](\d{1,2})\s*")


@dataclass(frozen=True, order=True)
class Week:
    """An ISO week: Monday 00:00 to the next Monday 00:00, local time."""

    year: int
    number: int

    def __post_init__(self) -> None:
        try:
            dt.date.fromisocalendar(self.year, self.number, 1)
        except ValueError as exc:
            week = f"{self.year}-W{self.number:02d}"
            raise InputError(say("problem_week_missing", week=week)) from exc

    @classmethod
    def parse(cls, text: str) -> Week:
        """A week from ``YYYY-Www`` (``2026-W47``); a clear error otherwise."""
        found = _WEEK.fullmatch(str(text))
        if found is None:
            raise InputError(say("problem_week_format", week=str(text)))
        return cls(int(found[1]), int(found[2]))

    @classmethod
    def of(cls, day: dt.date) -> Week:
        """The week a day falls in."""
        year, number, _ = day.isocalendar()
        return cls(year, number)

    @classmethod
    def last_full(cls, now: dt.datetime) -> Week:
        """The last week that has ended by ``now``."""
        return cls.of(now.date()).shift(-1)

    @property
    def start(self) -> dt.datetime:
        """Its Monday, 00:00."""
        return dt.datetime.combine(dt.date.fromisocalendar(self.year, self.number, 1), dt.time())

    @property
    def end(self) -> dt.datetime:
        """The next Monday, 00:00 (not part of the week)."""
        return self.start + dt.timedelta(days=7)

    def shift(self, weeks: int) -> Week:
        """The week ``weeks`` later (earlier when negative)."""
        return Week.of((self.start + dt.timedelta(weeks=weeks)).date())

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"


@dataclass
class Scope:
    """What a review covers: a community, a street (its communities) or the whole store."""

    kind: str  # community | street | all
    code: str | None
    name: str
    communities: pd.DataFrame  # code, name

    @property
    def codes(self) -> list[str]:
        """The community codes."""
        return self.communities["code"].astype(str).tolist()


def scope_of(store, *, community: str | None = None, street: str | None = None) -> Scope:
    """The communities a review covers; unknown codes are refused by name."""
    from gis_grid.cases.rules import Rules

    if community and street:
        raise InputError(say("problem_review_scope"))
    every = store.grids(level=Level.COMMUNITY, geometry=False)[["code", "name"]]
    every = every.sort_values("code").reset_index(drop=True)
    if not len(every):
        raise NotFoundError(say("problem_review_no_grids"))
    if not community and not street and len(every) == 1:  # one community: that is the scope
        community = every["code"].iloc[0]
    if community:
        chosen = every.loc[every["code"] == str(community).strip()]
        if not len(chosen):
            raise NotFoundError(
                say("problem_no_community", code=community, known=_some(every["code"]))
            )
        row = chosen.iloc[0]
        return Scope("community", row["code"], row["name"], chosen.reset_index(drop=True))
    if street:
        code = str(street).strip()
        chosen = every.loc[every["code"].str.slice(0, 9) == code] if len(code) == 9 else every[:0]
        if not len(chosen):
            streets = every["code"].str.slice(0, 9).drop_duplicates()
            raise NotFoundError(say("problem_no_street", code=street, known=_some(streets)))
        name = Rules.load().street_office(code)["name"]
        return Scope("street", code, name, chosen.reset_index(drop=True))
    return Scope("all", None, "", every)


def _some(codes: pd.Series, n: int = 5) -> str:
    shown = ", ".join(codes.head(n))
    return shown + (f" … ({len(codes)})" if len(codes) > n else "")


@dataclass
class Review:
    """One week, gathered: each section as the tables and shapes the report draws.

    Frames hold plain values (codes, names, numbers); words come from the
    renderer, so one review renders in Chinese and in English.
    """

    week: Week
    scope: Scope
    as_of: dt.datetime
    generated_at: dt.datetime
    #: One row per week (oldest first, this week last): ``week`` and the :data:`HEADLINE`.
    headline: pd.DataFrame
    #: Incidents per week (rows, oldest first) and category (columns).
    categories: pd.DataFrame
    #: Categories by their rise this week over the mean of the four weeks before.
    rises: pd.DataFrame
    hotspot_summary: dict | None
    #: One row per courtyard (or area) holding spots, busiest first.
    hotspots: pd.DataFrame
    #: The spots' cells with their trend (for the map).
    spots: gpd.GeoDataFrame
    #: Why there are no hot spots when there are none (too few incidents …), else None.
    hotspot_note: str | None
    #: Ranked coverage holes of every kind, with the incidents they hold and owner.
    holes: gpd.GeoDataFrame
    #: Totals of each kind of hole.
    hole_summary: dict
    overdue: pd.DataFrame
    escalated: pd.DataFrame
    #: Every area with cases this week, ranked (``rank``; best first).
    ranking: pd.DataFrame
    revisions: pd.DataFrame
    #: Per community with revisions this week: what moved.
    changes: list[dict]
    staff_changes: pd.DataFrame
    #: Shapes for the maps: community, area and courtyard outlines, buildings, streets.
    grids: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame | None

    @property
    def this_week(self) -> dict:
        """The headline figures of the week."""
        return self.headline.iloc[-1].to_dict()

    @property
    def last_week(self) -> dict:
        """The headline figures of the week before."""
        return self.headline.iloc[-2].to_dict() if len(self.headline) > 1 else {}

    @property
    def in_progress(self) -> bool:
        """Whether the week had not ended when the review was made."""
        return self.as_of < self.week.end

    @property
    def empty(self) -> bool:
        """Whether nothing was reported in the week."""
        return not self.this_week.get("reported")


def weekly_review(
    store,
    week: Week | str | None = None,
    *,
    community: str | None = None,
    street: str | None = None,
    now: dt.datetime | None = None,
    maps: bool = True,
) -> Review:
    """The review of ``week`` (default: the last full week) for a community, street or all.

    Cases' states are as of the week's end, or as of ``now`` for a week in
    progress. A week that has not begun is refused; a week with no incidents
    gives a review that says so.
    """
    from gis_grid.cases.records import now as now_

    now = now or now_()
    week = Week.parse(week) if isinstance(week, str) else (week or Week.last_full(now))
    if week.start > now:
        raise InputError(say("problem_week_future", week=str(week), today=now.date().isoformat()))
    scope = scope_of(store, community=community, street=street)
    as_of = min(now, week.end)
    layers = store.layers()
    headline = _headline(store, week, scope, now) if "incidents" in layers else _no_headline(week)
    cases = _incidents(store, week, scope) if "incidents" in layers else None
    categories, rises = _categories(cases, week)
    hot_summary, hot_rows, spots, note = _hotspots(store, week, scope, layers)
    holes, hole_summary = _holes(store, week, scope, layers, cases, as_of)
    overdue, escalated = _open_cases(store, scope, as_of, layers)
    revisions, changes = _changes(store, week, scope)
    grids, buildings, streets = _shapes(store, scope, layers) if maps else (None, None, None)
    return Review(
        week=week,
        scope=scope,
        as_of=as_of,
        generated_at=now,
        headline=headline,
        categories=categories,
        rises=rises,
        hotspot_summary=hot_summary,
        hotspots=hot_rows,
        spots=spots,
        hotspot_note=note,
        holes=holes,
        hole_summary=hole_summary,
        overdue=overdue,
        escalated=escalated,
        ranking=_ranking(store, week, scope, as_of) if "incidents" in layers else pd.DataFrame(),
        revisions=revisions,
        changes=changes,
        staff_changes=_staff_changes(store, week, scope),
        grids=grids,
        buildings=buildings,
        streets=streets,
    )


# -- headline and trends -------------------------------------------------------------


def _headline(store, week: Week, scope: Scope, now: dt.datetime) -> pd.DataFrame:
    from gis_grid.cases.indicators import totals

    rows = []
    for back in range(WEEKS - 1, -1, -1):
        w = week.shift(-back)
        found = totals(
            store, since=w.start, until=w.end, at=min(now, w.end), communities=scope.codes
        )
        rows.append({"week": str(w), **{k: found[k] for k in HEADLINE}})
    return pd.DataFrame(rows)


def _no_headline(week: Week) -> pd.DataFrame:
    rows = [
        {"week": str(week.shift(-b)), **dict.fromkeys(HEADLINE)} for b in range(WEEKS - 1, -1, -1)
    ]
    frame = pd.DataFrame(rows)
    for c in ("reported", "closed", "overdue"):
        frame[c] = 0
    return frame


def _incidents(store, week: Week, scope: Scope) -> gpd.GeoDataFrame:
    first = week.shift(-(WEEKS - 1)).start
    last = week.end - dt.timedelta(seconds=1)
    where = {"reported_at": (first.isoformat(), last.isoformat())}
    return store.features("incidents", under=scope.codes, where=where)


def _categories(cases, week: Week) -> tuple[pd.DataFrame, pd.DataFrame]:
    from gis_grid.cases.records import categories as known

    weeks = [str(week.shift(-b)) for b in range(WEEKS - 1, -1, -1)]
    keys = list(known())
    if cases is None or not len(cases):
        counts = pd.DataFrame(0, index=pd.Index(weeks, name="week"), columns=keys)
    else:
        days = pd.to_datetime(cases["reported_at"]).dt.date
        label = days.map(lambda d: str(Week.of(d)))
        counts = pd.crosstab(label, cases["category"]).reindex(index=weeks, columns=keys)
        counts = counts.fillna(0).astype(int)
        counts.index.name = "week"
    counts.columns.name = None
    this = counts.iloc[-1]
    before = counts.iloc[-5:-1].mean() if len(counts) > 1 else this * 0
    rises = pd.DataFrame(
        {
            "category": keys,
            "this_week": this.to_numpy(),
            "before": before.round(1).to_numpy(),
            "change": (this - before).round(1).to_numpy(),
        }
    )
    rises["change_pct"] = (
        100 * rises["change"] / rises["before"].where(rises["before"] > 0)
    ).round(0)
    rises = rises.sort_values(["change", "this_week"], ascending=False, kind="stable")
    return counts, rises.reset_index(drop=True)


# -- hot spots -----------------------------------------------------------------------


def _hotspots(store, week: Week, scope: Scope, layers) -> tuple:
    from gis_grid.analysis.hotspots import find_hotspots, spots_per_grid
    from gis_grid.layers.plugins import events_layer

    empty_spots = gpd.GeoDataFrame({"spot": [], "trend": []}, geometry=[], crs="EPSG:4326")
    rows = spots_per_grid(store, empty_spots)
    if "incidents" not in layers:
        return None, rows, empty_spots, None
    plugin = events_layer(None)
    try:
        report = find_hotspots(
            store,
            plugin.name,
            time_field=plugin.time_field,
            category_field=plugin.category_field,
            since=week.start.isoformat(),
            until=week.end.isoformat(),
            permutations=0,  # the analytic p decides (as on the supervisor page)
            under=scope.codes,
        )
    except InputError as exc:  # too few units or incidents: the review says why
        return None, rows, empty_spots, str(exc)
    rows = spots_per_grid(store, report.spots)
    return report.summary, rows, report.spots, None


# -- holes ---------------------------------------------------------------------------


def _holes(
    store, week: Week, scope: Scope, layers, cases, as_of: dt.datetime
) -> tuple[gpd.GeoDataFrame, dict]:
    from gis_grid.analysis.gaps import staffing_holes
    from gis_grid.layers.plugins import get_layer

    parts, summary = [], {}
    window = {"since": week.start.isoformat(), "until": week.end.isoformat()}
    if "cctv" in layers:
        report = get_layer("cctv").holes(store, level=Level.AREA, under=scope.codes, **window)
        summary["cctv"] = report.summary
        f = report.features
        parts.append(
            _hole_rows(f, "cctv", f["grid"], incidents=f["incidents"], area_m2=f["area_m2"])
        )
    if "lighting" in layers:
        report = get_layer("lighting").holes(store, level=Level.AREA, under=scope.codes, **window)
        summary["lighting"] = report.summary
        parts.append(_dark_streets(store, report.features, layers))
    if "cleaning" in layers:
        report = get_layer("cleaning").holes(store, level=Level.AREA, under=scope.codes, now=as_of)
        summary["cleaning"] = report.summary
        f = report.features
        where = f["grid"].fillna(f["area_code"]) if len(f) else f.get("grid")
        parts.append(
            _hole_rows(
                f,
                "cleaning_" + f["kind"] if len(f) else "cleaning",
                where,
                area_m2=f.get("area_m2"),
                zone=f.get("name"),
                overdue_hours=f.get("overdue_hours"),
            )
        )
    report = staffing_holes(store, under=scope.codes)
    summary["staff"] = {
        **report.summary,
        **{r["level"]: int(r["unstaffed"]) for r in report.per_grid.to_dict("records")},
    }
    f = report.features
    held = _held(cases, f["code"]) if len(f) else []
    parts.append(_hole_rows(f, "no_staff", f["code"], incidents=held, level=f.get("level")))
    holes = pd.concat([p for p in parts if len(p)], ignore_index=True) if parts else None
    if holes is None or not len(holes):
        holes = gpd.GeoDataFrame(
            {"kind": [], "grid_code": [], "incidents": []}, geometry=[], crs="EPSG:4326"
        )
    holes = gpd.GeoDataFrame(holes, geometry="geometry", crs="EPSG:4326")
    names = store.grids(codes=holes["grid_code"].dropna().unique().tolist(), geometry=False)
    holes["name"] = holes["grid_code"].map(dict(zip(names["code"], names["name"], strict=True)))
    holes = holes.sort_values(
        ["incidents", "area_m2", "length_m"], ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)
    holes.insert(0, "rank", np.arange(1, len(holes) + 1))
    return holes, summary


def _hole_rows(frame, kind, grid_code, **columns) -> gpd.GeoDataFrame:
    """Rows of one kind of hole in the review's common shape."""
    if frame is None or not len(frame):
        return gpd.GeoDataFrame({"kind": []}, geometry=[], crs="EPSG:4326")
    out = {
        "kind": kind,
        "grid_code": np.asarray(grid_code, dtype=object),
        "incidents": None,
        "area_m2": None,
        "length_m": None,
    }
    for name, values in columns.items():
        if values is not None:
            out[name] = np.asarray(values, dtype=object)
    for c in ("staff_name", "staff_phone", "staff_fallback"):
        out[c] = frame[c].to_numpy() if c in frame else None
    data = pd.DataFrame(out, index=range(len(frame)))
    return gpd.GeoDataFrame(data, geometry=frame.geometry.to_numpy(), crs="EPSG:4326")


def _dark_streets(store, stretches, layers) -> gpd.GeoDataFrame:
    """Dark stretches summed per street and grid: a street's name is what a person acts on."""
    if not len(stretches):
        return _hole_rows(None, "dark_street", [])
    key = (
        stretches["street"].fillna("").astype(str) + "|" + stretches["grid"].fillna("").astype(str)
    )
    grouped = stretches.assign(key=key).dissolve(
        by="key",
        aggfunc={
            "street": "first",
            "grid": "first",
            "length_m": "sum",
            "night_incidents": "sum",
            "staff_name": "first",
            "staff_phone": "first",
            "staff_fallback": "first",
        },
    )
    grouped = grouped.reset_index(drop=True)
    names = {}
    if "streets" in layers:
        ids = grouped["street"].dropna().unique().tolist()
        found = store.features("streets", where={"id": ids}) if ids else None
        if found is not None and len(found):
            names = dict(zip(found["id"], found["name"], strict=True))
    return _hole_rows(
        grouped,
        "dark_street",
        grouped["grid"],
        incidents=grouped["night_incidents"].astype(int),
        length_m=grouped["length_m"].round(0),
        street=grouped["street"].map(lambda s: names.get(s) or s),
    )


def _held(cases, codes) -> list[int]:
    """How many of the week's incidents lie in each grid."""
    if cases is None or not len(cases):
        return [0] * len(codes)
    from gis_grid.domain.model import level_of_code

    return [int((cases[f"{level_of_code(c).key}_code"] == c).sum()) for c in codes]


# -- cases ---------------------------------------------------------------------------


def _open_cases(store, scope: Scope, as_of: dt.datetime, layers) -> tuple:
    """Overdue cases (most overdue first) and escalated open cases, with their owners."""
    from gis_grid.cases.loop import OPEN
    from gis_grid.cases.records import owners
    from gis_grid.layers.plugins import get_layer

    columns = ["id", "category", "status", "reported_at", "overdue_hours", "grid_code"]
    if "incidents" not in layers:
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=columns)
    report = get_layer("incidents").holes(
        store, level=Level.AREA, under=scope.codes, now=as_of.isoformat()
    )
    overdue = pd.DataFrame(report.features.drop(columns="geometry"))
    overdue = overdue.assign(lon=report.features.geometry.x, lat=report.features.geometry.y)
    escalated = store.features(
        "incidents",
        under=scope.codes,
        where={"status": sorted(OPEN), "escalation": (1, None)},
    )
    escalated = pd.DataFrame(
        escalated.drop(columns="geometry").assign(
            lon=escalated.geometry.x, lat=escalated.geometry.y
        )
    )
    if len(escalated):
        who = owners(store, set(escalated["owner_code"].dropna()))
        escalated["owner_name"] = escalated["owner_code"].map(
            lambda c: (who.get(c) or {}).get("name")
        )
        escalated["staff_name"] = escalated["owner_code"].map(
            lambda c: (who.get(c) or {}).get("staff_name")
        )
        escalated["staff_phone"] = escalated["owner_code"].map(
            lambda c: (who.get(c) or {}).get("phone")
        )
        escalated = escalated.sort_values(["escalation", "reported_at"], ascending=[False, True])
    return overdue.reset_index(drop=True), escalated.reset_index(drop=True)


#: An area is ranked with at least this many cases in the week: 2 of 2 on time is no record.
MIN_RANKED = 5


def _ranking(store, week: Week, scope: Scope, as_of: dt.datetime) -> pd.DataFrame:
    """The areas with cases this week, best first: on time, closed, fewest late, least rework.

    Areas with fewer than :data:`MIN_RANKED` cases come last, unranked (``rank`` None).
    """
    from gis_grid.cases.indicators import indicators
    from gis_grid.grids.linkage import people

    table = indicators(store, since=week.start, until=week.end, by="area", at=as_of)
    table = table.loc[table["code"].astype(str).str.slice(0, 12).isin(scope.codes)]
    table = table.loc[table["reported"] > 0]
    if not len(table):
        return table.assign(rank=[])
    order = pd.DataFrame(
        {
            "on_time": table["on_time_rate"].astype(float).fillna(-1),
            "closure": table["closure_rate"].astype(float).fillna(-1),
            "overdue": -table["overdue"].astype(float),
            "rework": -table["rework_rate"].astype(float).fillna(0),
        },
        index=table.index,
    )
    order.insert(0, "enough", table["reported"] >= MIN_RANKED)
    table = table.loc[order.sort_values(list(order), ascending=False, kind="stable").index]
    table = table.reset_index(drop=True)
    enough = (table["reported"] >= MIN_RANKED).to_numpy()
    table.insert(0, "rank", np.where(enough, np.cumsum(enough), None))
    who = people(store, table["code"])
    table["staff_name"] = table["code"].map(who["staff_name"]) if len(who) else None
    table["staff_phone"] = table["code"].map(who["staff_phone"]) if len(who) else None
    return table


# -- changes -------------------------------------------------------------------------


def _local(utc_text: pd.Series) -> pd.Series:
    """Revision times (UTC) on the local clock, naive, as cases keep theirs."""
    times = pd.to_datetime(utc_text, utc=True, errors="coerce")
    return times.dt.tz_convert(CST).dt.tz_localize(None)


def _changes(store, week: Week, scope: Scope) -> tuple[pd.DataFrame, list[dict]]:
    """The revisions made in the week, and per community what they moved."""
    from gis_grid.planning.edits import compare

    log = store.revisions()
    log = log.loc[log["community_code"].astype(str).isin(scope.codes)].copy()
    log["at"] = _local(log["created_at"])
    log = log.loc[(log["at"] >= week.start) & (log["at"] < week.end)].reset_index(drop=True)
    names = dict(zip(scope.communities["code"], scope.communities["name"], strict=True))
    log["community_name"] = log["community_code"].map(names)
    changes = []
    for code, group in log.groupby("community_code", sort=True):
        first, last = int(group["id"].min()), int(group["id"].max())
        found = compare(store, code, first - 1, last)
        grids = found["grids"]
        changes.append(
            {
                "community_code": code,
                "community_name": names.get(code),
                "revisions": len(group),
                "grids": {c: int(n) for c, n in grids["change"].value_counts().items()}
                if len(grids)
                else {},
                "buildings_moved": len(found["buildings_moved"]),
                "households_moved": int(found["households_moved"]),
                "area_moved_m2": found["area_moved_m2"],
                "staff": found["staff"],
            }
        )
    return log, changes


def _staff_changes(store, week: Week, scope: Scope) -> pd.DataFrame:
    """Assignments that began or ended in the week, in the scope's grids."""
    columns = ["staff_id", "name", "phone", "role", "grid_code", "grid_name", "change", "date"]
    a = store.assignments()
    if not len(a):
        return pd.DataFrame(columns=columns)
    a = a.loc[a["grid_code"].astype(str).str.slice(0, 12).isin(scope.codes)]
    first, last = week.start.date().isoformat(), (week.end.date()).isoformat()

    def inside(col):
        values = a[col] if col in a else pd.Series(None, index=a.index, dtype=object)
        values = values.where(values.notna(), "").astype(str).str.slice(0, 10)
        taken = (values >= first) & (values < last)
        return a.loc[taken].assign(change=col, date=values[taken])

    rows = pd.concat([inside("start_date"), inside("end_date")], ignore_index=True)
    if not len(rows):
        return pd.DataFrame(columns=columns)
    people = store.staff(rows["staff_id"].unique()).set_index("staff_id")
    grids = store.grids(codes=rows["grid_code"].unique().tolist(), geometry=False)
    rows["name"] = rows["staff_id"].map(people["name"])
    rows["phone"] = rows["staff_id"].map(people["phone"])
    rows["grid_name"] = rows["grid_code"].map(dict(zip(grids["code"], grids["name"], strict=True)))
    rows["change"] = rows["change"].map({"start_date": "started", "end_date": "ended"})
    return rows[columns].sort_values(["date", "grid_code"]).reset_index(drop=True)


# -- shapes for the maps -------------------------------------------------------------


def _shapes(store, scope: Scope, layers) -> tuple:
    grids = pd.concat(
        [
            store.grids(level=lv, under=scope.codes)[["code", "name", "level", "geometry"]]
            for lv in (Level.COMMUNITY, Level.AREA, Level.COURTYARD)
        ],
        ignore_index=True,
    )
    grids = gpd.GeoDataFrame(grids, geometry="geometry", crs="EPSG:4326")
    buildings = store.grids(level=Level.BUILDING, under=scope.codes)[["code", "geometry"]]
    streets = None
    if "streets" in layers:
        streets = store.features("streets", under=scope.codes)[["name", "kind", "geometry"]]
    return grids, buildings, streets


def review_dict(review: Review) -> dict:
    """The review as plain JSON values: what the review page draws and ``--format json`` prints."""
    import json

    from gis_grid.tables import geojson_text, records

    def shapes(frame):
        return json.loads(geojson_text(frame)) if frame is not None else None

    return {
        "week": str(review.week),
        "start": review.week.start.isoformat(),
        "end": review.week.end.isoformat(),
        "scope": {
            "kind": review.scope.kind,
            "code": review.scope.code,
            "name": review.scope.name,
            "communities": records(review.scope.communities),
        },
        "as_of": review.as_of.isoformat(),
        "generated_at": review.generated_at.isoformat(),
        "in_progress": review.in_progress,
        "empty": review.empty,
        "headline": {"this_week": review.this_week, "last_week": review.last_week},
        "weeks": records(review.headline),
        "categories": {
            "weeks": review.categories.index.tolist(),
            "counts": {c: review.categories[c].astype(int).tolist() for c in review.categories},
        },
        "rises": records(review.rises),
        "hotspot_summary": review.hotspot_summary,
        "hotspot_note": review.hotspot_note,
        "hotspots": records(review.hotspots),
        "spots": shapes(review.spots),
        "hole_summary": review.hole_summary,
        "holes": shapes(review.holes),
        "overdue": records(review.overdue),
        "escalated": records(review.escalated),
        "ranking": records(review.ranking),
        "revisions": records(review.revisions.drop(columns="at", errors="ignore")),
        "changes": review.changes,
        "staff_changes": records(review.staff_changes),
    }

"""A community's history: its state at any revision, undoing to it, comparing two.

The store's revision log (:mod:`gis_grid.store.revisions`) keeps, per revision,
the rows it replaced and the codes it wrote. Walking back from the current
state through the newer revisions' payloads gives the state after any earlier
revision (:func:`state_at`); :func:`back_to` is the rewrite that returns to it
(undo, restore) and :func:`diff` says what changed between two states.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.domain.model import AGGREGATES, ASSIGNMENT_COLUMNS, CODE_LENGTHS, Level
from gis_grid.geo.crs import WGS84, local_metric_crs
from gis_grid.store.base import LOCAL_ZONE
from gis_grid.store.revisions import (
    Payload,
    Rewrite,
    len_level,
    plain_value,
    same_grid_rows,
    typed_grids,
    under_roots,
)

# -- walking back ---------------------------------------------------------------


@dataclass
class State:
    """A community's grids and assignments at some revision."""

    grids: gpd.GeoDataFrame
    assignments: pd.DataFrame
    revision: int


def state_at(current: State, later: Sequence[tuple[int, Payload]], revision: int) -> State:
    """The state just after ``revision``, walking back from ``current``.

    ``later`` are the revisions of the community newer than ``revision``
    with their payloads, in any order; they are reversed newest first.
    """
    grids, assignments = current.grids, current.assignments
    for _rid, payload in sorted(later, key=lambda item: -item[0]):
        grids = pd.concat(
            [grids.loc[~grids["code"].isin(payload.after_codes)], payload.before],
            ignore_index=True,
        )
        assignments = pd.concat(
            [
                assignments.loc[~assignments["grid_code"].isin(payload.assignment_codes)],
                payload.before_assignments,
            ],
            ignore_index=True,
        )
    grids = gpd.GeoDataFrame(grids, geometry="geometry", crs=WGS84)
    grids = grids.sort_values("code", kind="stable").reset_index(drop=True)
    return State(typed_grids(grids), assignments.reset_index(drop=True), revision)


def top_codes(codes: Iterable[str]) -> list[str]:
    """The codes not below another of the given codes (the roots of their subtrees)."""
    out: list[str] = []
    for code in sorted(set(codes), key=lambda c: (len(c), c)):
        if not any(code.startswith(r) for r in out):
            out.append(code)
    return sorted(out)


def back_to(current: State, target: State, operation: str, **meta) -> Rewrite:
    """The rewrite that turns ``current`` into ``target`` (for undo and restore)."""
    cur, tgt = current.grids.set_index("code"), target.grids.set_index("code")
    codes = sorted(set(cur.index) | set(tgt.index))
    differ = [c for c in codes if c not in cur.index or c not in tgt.index]
    common = sorted(set(cur.index) & set(tgt.index))
    if common:
        a = cur.loc[common].reset_index()
        b = tgt.loc[common].reset_index()
        a = gpd.GeoDataFrame(a, geometry="geometry", crs=WGS84)
        b = gpd.GeoDataFrame(b, geometry="geometry", crs=WGS84)
        differ += [c for c, s in zip(common, same_grid_rows(a, b), strict=True) if not s]
    ca, ta = current.assignments, target.assignments
    key = list(ASSIGNMENT_COLUMNS)
    ca_rows = {tuple(map(plain_value, r)) for r in ca[key].itertuples(index=False, name=None)}
    ta_rows = {tuple(map(plain_value, r)) for r in ta[key].itertuples(index=False, name=None)}
    differ += [r[1] for r in ca_rows ^ ta_rows]
    roots = [r for r in top_codes(differ) if r in cur.index]
    # a grid only in the target needs its parent (or the parent's parent …) as the root
    for code in top_codes(differ):
        if code not in cur.index:
            parent = code
            while parent not in cur.index and len(parent) > 12:
                parent = parent[: CODE_LENGTHS[Level(len_level(parent) - 1)]]
            if parent in cur.index:
                roots.append(parent)
    roots = top_codes(roots)
    if not roots:
        raise InputError(say("problem_restore_nothing"))
    grids = target.grids.loc[under_roots(target.grids["code"], roots)].reset_index(drop=True)
    assignments = target.assignments.loc[
        target.assignments["grid_code"].isin(grids["code"])
    ].reset_index(drop=True)
    based_on = {
        c: int(v)
        for c, v in zip(current.grids["code"], current.grids["version"], strict=True)
        if c.startswith(tuple(roots))
    }
    return Rewrite(
        remove=roots,
        grids=gpd.GeoDataFrame(grids, geometry="geometry", crs=WGS84),
        assignments=assignments,
        operation=operation,
        based_on=based_on,
        **meta,
    )


# -- comparing two states -------------------------------------------------------


def diff(a: State, b: State) -> dict:
    """What changed between two states of a community.

    Returns
    -------
    dict
        ``grids`` (a DataFrame: code, level, change ∈ added/removed/reshaped/
        renamed/recounted, area_lost_m2, area_gained_m2), ``area_moved_m2``
        (per level, the ground that changed grid), ``buildings_moved`` (a
        DataFrame of buildings whose area or courtyard changed: building code
        before and after, households), ``households_moved``, ``staff`` (staff
        whose grids changed) and ``summary`` counts per level.
    """
    ga = a.grids.set_index("code")
    gb = b.grids.set_index("code")
    both = pd.concat([a.grids.geometry, b.grids.geometry])
    crs = local_metric_crs(*both.union_all().centroid.coords[0]) if len(both) else WGS84
    rows = []
    codes = sorted(set(ga.index) | set(gb.index))
    for code in codes:
        ina, inb = code in ga.index, code in gb.index
        if ina and inb:
            x, y = ga.loc[code], gb.loc[code]
            if not shapely.equals_exact(x.geometry, y.geometry, 1e-9):
                change = "reshaped"
            elif x["name"] != y["name"]:
                change = "renamed"
            elif any(int(x[c]) != int(y[c]) for c in AGGREGATES):
                change = "recounted"
            else:
                continue
        else:
            change = "added" if inb else "removed"
        rows.append((code, Level(len_level(code)).key, change))
    grids = pd.DataFrame(rows, columns=["code", "level", "change"])
    if len(grids):
        left = gpd.GeoSeries(
            [ga.geometry.get(c) if c in ga.index else None for c in grids["code"]], crs=WGS84
        ).to_crs(crs)
        right = gpd.GeoSeries(
            [gb.geometry.get(c) if c in gb.index else None for c in grids["code"]], crs=WGS84
        ).to_crs(crs)
        l_arr, r_arr = left.to_numpy(), right.to_numpy()
        empty = shapely.Polygon()
        l_arr = np.where(shapely.is_missing(l_arr), empty, l_arr)
        r_arr = np.where(shapely.is_missing(r_arr), empty, r_arr)
        # area a grid lost plus area it gained: what moved between grids
        grids["area_lost_m2"] = shapely.area(shapely.difference(l_arr, r_arr)).round(1)
        grids["area_gained_m2"] = shapely.area(shapely.difference(r_arr, l_arr)).round(1)
    else:
        grids["area_lost_m2"] = grids["area_gained_m2"] = pd.Series(dtype=float)

    moved = _buildings_moved(a.grids, b.grids)
    staff_codes = set(grids["code"])
    staff = pd.concat(
        [
            a.assignments.loc[a.assignments["grid_code"].isin(staff_codes)].assign(side="before"),
            b.assignments.loc[b.assignments["grid_code"].isin(staff_codes)].assign(side="after"),
        ],
        ignore_index=True,
    )
    summary = {
        level.key: grids.loc[grids["level"] == level.key, "change"].value_counts().to_dict()
        for level in Level
        if (grids["level"] == level.key).any()
    }
    return {
        "from": a.revision,
        "to": b.revision,
        "grids": grids,
        "buildings_moved": moved,
        "households_moved": int(moved["households"].sum()) if len(moved) else 0,
        # per level, the ground that changed grid (what grids of that level lost)
        "area_moved_m2": {
            level: round(float(v), 1)
            for level, v in grids.groupby("level", sort=False)["area_lost_m2"].sum().items()
            if level != Level.COMMUNITY.key
        },
        "staff": sorted(set(staff["staff_id"])),
        "summary": summary,
    }


def _buildings_moved(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> pd.DataFrame:
    """Buildings that now sit under another area or courtyard (matched by footprint)."""
    n = CODE_LENGTHS[Level.BUILDING]
    ba = a.loc[a["code"].str.len() == n].reset_index(drop=True)
    bb = b.loc[b["code"].str.len() == n].reset_index(drop=True)
    cols = ["before", "after", "households"]
    if not len(ba) or not len(bb):
        return pd.DataFrame(columns=cols)
    # the same footprint: the point inside it lands in the same building afterwards
    pts = shapely.point_on_surface(ba.geometry.to_numpy())
    tree = shapely.STRtree(bb.geometry.to_numpy())
    src, dst = tree.query(pts, predicate="within")
    match = pd.Series(bb["code"].to_numpy()[dst], index=src)
    match = match[~match.index.duplicated()]
    after = pd.Series(ba.index.map(match.get), index=ba.index)
    frame = pd.DataFrame(
        {"before": ba["code"], "after": after, "households": ba["households"].astype("int64")}
    )
    return frame.loc[frame["before"] != frame["after"]].reset_index(drop=True)


# -- boundaries as of a date ---------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """A moment the boundaries are asked for: UTC (as revisions are stamped) and its local day."""

    utc: str  # YYYY-MM-DDTHH:MM:SSZ
    day: dt.date  # the local day, for assignments in force

    @classmethod
    def parse(cls, text: str | dt.date | dt.datetime) -> Moment:
        """A date (its local day's end) or a date and time (local unless it names a zone).

        Examples
        --------
        >>> Moment.parse("2026-10-01")
        Moment(utc='2026-10-01T15:59:59Z', day=datetime.date(2026, 10, 1))
        >>> Moment.parse("2026-10-01T08:30").utc
        '2026-10-01T00:30:00Z'
        """
        raw = text.isoformat() if isinstance(text, dt.date | dt.datetime) else str(text).strip()
        try:
            stamp = pd.Timestamp(raw)
        except (TypeError, ValueError) as exc:
            raise InputError(say("problem_at_form", at=repr(raw))) from exc
        if stamp is pd.NaT or pd.isna(stamp):
            raise InputError(say("problem_at_form", at=repr(raw)))
        if len(raw) <= 10:  # a day: the boundaries in force at its end
            stamp = stamp + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
        local = stamp.tz_localize(LOCAL_ZONE) if stamp.tzinfo is None else stamp
        utc = local.tz_convert("UTC")
        return cls(utc.strftime("%Y-%m-%dT%H:%M:%SZ"), local.tz_convert(LOCAL_ZONE).date())

    @property
    def local(self) -> str:
        """The moment in local time as event times are kept (``YYYY-MM-DDTHH:MM:SS``)."""
        stamp = pd.Timestamp(self.utc).tz_convert(LOCAL_ZONE)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S")


def revision_at(log: pd.DataFrame, moment: Moment) -> int:
    """The id of the last revision of a community's log made by ``moment`` (0: none yet)."""
    made = log.loc[log["created_at"].astype(str) <= moment.utc, "id"]
    return int(made.max()) if len(made) else 0


class AsOf:
    """The grids and assignments of a store as they were at a moment.

    Communities with no revision after the moment are read as they are; the
    others are walked back through their newer revisions
    (:func:`state_at`). The walked-back communities are kept (keyed on the
    revision they stand at and the latest one), so a map asking tile after
    tile for one date walks each community back once.
    """

    def __init__(self, store, cache: dict | None = None, most: int = 64) -> None:
        self.store = store
        self.cache = {} if cache is None else cache
        self.most = most
        self._changed: dict[str, dict] = {}  # moment → its answer, for this walker's life

    def changed_since(self, moment: Moment) -> dict[str, tuple[int, int]]:
        """Community → (revision it stood at, its latest) of those changed after ``moment``."""
        if moment.utc not in self._changed:
            self._changed[moment.utc] = self._changed_since(moment)
        return self._changed[moment.utc]

    def _changed_since(self, moment: Moment) -> dict[str, tuple[int, int]]:
        log = self.store.revisions()
        if not len(log):
            return {}
        log = log.assign(created_at=log["created_at"].astype(str))
        out = {}
        for community, rows in log.groupby("community_code", sort=True):
            if (rows["created_at"] > moment.utc).any():
                out[str(community)] = (revision_at(rows, moment), int(rows["id"].max()))
        return out

    def community(self, community: str, at: int, latest: int) -> State:
        """A community just after revision ``at`` (kept for the next ask)."""
        key = (community, at, latest)
        if key not in self.cache:
            grids = self.store.grids(under=[community])  # none: a community removed since
            assignments = self.store.assignments(grid_codes=grids["code"].tolist())
            now = State(grids, assignments, latest)
            if len(self.cache) >= self.most:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = state_at(now, self.store.payloads(community, at), at)
        return self.cache[key]

    def grids(
        self,
        moment: Moment,
        *,
        level=None,
        codes: list[str] | None = None,
        under: list[str] | None = None,
        bbox=None,
        geometry: bool = True,
    ) -> gpd.GeoDataFrame:
        """The grids in force at ``moment``, filtered as :meth:`Store.grids` filters."""
        changed = self.changed_since(moment)
        now = self.store.grids(level=level, codes=codes, under=under, bbox=bbox, geometry=True)
        if not changed:
            return now if geometry else now.drop(columns="geometry")
        frames = [now.loc[~now["code"].astype(str).str.slice(0, 12).isin(changed)]]
        for community, (at, latest) in changed.items():
            if codes is not None and not any(str(c).startswith(community) for c in codes):
                continue
            if under is not None and not any(
                community.startswith(u) or str(u).startswith(community) for u in under
            ):
                continue
            past = self.community(community, at, latest).grids
            if not len(past):
                continue
            keep = np.ones(len(past), bool)
            code = past["code"].astype(str)
            if level is not None:
                keep &= code.str.len().to_numpy() == CODE_LENGTHS[Level.parse(level)]
            if codes is not None:
                keep &= code.isin([str(c) for c in codes]).to_numpy()
            if under is not None:
                keep &= code.str.startswith(tuple(str(u) for u in under)).to_numpy()
            if bbox is not None:
                keep &= shapely.intersects(past.geometry.to_numpy(), shapely.box(*bbox))
            frames.append(past.loc[keep])
        frames = [f for f in frames if len(f)]
        if not frames:
            return now.iloc[:0] if geometry else now.iloc[:0].drop(columns="geometry")
        out = pd.concat(frames, ignore_index=True)
        out = gpd.GeoDataFrame(out, geometry="geometry", crs=WGS84)
        out = out.sort_values("code", kind="stable").reset_index(drop=True)
        return out if geometry else out.drop(columns="geometry")

    def assignments(self, moment: Moment, codes: list[str]) -> pd.DataFrame:
        """The assignments of ``codes`` at ``moment`` (those in force that day)."""
        from gis_grid.grids.queries import active

        changed = self.changed_since(moment)
        codes = [str(c) for c in codes]
        mine = [c for c in codes if c[:12] not in changed]
        frames = [self.store.assignments(grid_codes=mine)] if mine else []
        for community, (at, latest) in changed.items():
            if any(c.startswith(community) for c in codes):
                a = self.community(community, at, latest).assignments
                frames.append(a.loc[a["grid_code"].astype(str).isin(codes)])
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=list(ASSIGNMENT_COLUMNS))
        return active(pd.concat(frames, ignore_index=True), on=moment.day)

    def staff(self, moment: Moment, codes: list[str]) -> pd.DataFrame:
        """The staff in force on ``codes`` at ``moment`` (as :func:`.queries.staff_of` answers)."""
        assigned = self.assignments(moment, codes)
        if not len(assigned):
            return pd.DataFrame(columns=["grid_code", "staff_id", "name", "role", "phone"])
        people = self.store.staff(assigned["staff_id"].unique()).drop(columns="role")
        return assigned.merge(people, on="staff_id", how="left")[
            ["grid_code", "staff_id", "name", "role", "phone"]
        ]

    def chain(self, moment: Moment, lon: float, lat: float) -> list[dict]:
        """The grids at a point at ``moment``, community first, each with the staff of that day."""
        from gis_grid.grids.lookup import GridIndex
        from gis_grid.grids.queries import grid_entry, staff_entry

        box = (lon, lat, lon, lat)
        grids = self.grids(moment, bbox=box)
        if not len(grids):
            return []
        index = GridIndex(grids["code"].to_numpy(), grids.geometry.to_numpy(), workers=1)
        found = index.locate(np.array([float(lon)]), np.array([float(lat)]))
        codes = [
            str(index.levels[level].codes[hit[0]]) for level, hit in found.items() if hit[0] >= 0
        ]
        rows = grids.set_index("code")
        staff = self.staff(moment, codes)
        out = []
        for code in codes:
            g = rows.loc[code]
            people = staff.loc[staff["grid_code"] == code].sort_values("staff_id")
            level = Level(len_level(code)).key
            out.append(
                {
                    **grid_entry(code, level, g["name"], g[list(AGGREGATES)]),
                    "staff": [
                        staff_entry(p.staff_id, p.name, p.role, p.phone)
                        for p in people.itertuples()
                    ],
                }
            )
        return out

"""The planner's balance panel: each grid's workload against its siblings, and previews.

A level's grids under one parent carry comparable work when each is near the
parent's mean (the *target*). Per grid the panel shows households, the
weighted workload, the deviation from the target, Polsby–Popper compactness
(4πA/P²), contiguity and the staff; per parent the largest deviation.

The workload of a grid is the rebalancer's (:func:`~gis_grid.planning.rebalance.workload`)
summed over its children: grid counts (households …) plus, for each layer
named in the weights, its features of the last 90 days located in a child.
So the panel and a rebalancing proposal give one number for one grid.

:func:`preview` runs an edit as a dry run (the store plans and validates
it, then rolls back) and answers with the new grids, their figures and the
parent's new maximum deviation, computing only the grids that changed (the
way GerryChain's updaters do): unchanged siblings keep the figures of
:func:`balance`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import GisGridError, InputError, TopologyError
from gis_grid.domain.messages import say
from gis_grid.domain.model import CODE_LENGTHS, Level, level_of_code
from gis_grid.geo.crs import WGS84, local_metric_crs, project
from gis_grid.planning.rebalance import GRID_TERMS, count_in, parse_weights, recent_points

#: The levels a planner balances on the page (their parents: community, area).
LEVELS = (Level.AREA, Level.COURTYARD)


@dataclass
class Points:
    """The located features a workload counts (per layer term), kept for the next preview."""

    trees: dict  # term → (STRtree of points, count)

    @classmethod
    def of(cls, store, community: str, weights: dict[str, float]) -> Points:
        """The points of each layer term of ``weights`` in a community."""
        trees = {}
        for term, w in weights.items():
            if w and term not in GRID_TERMS:
                pts = recent_points(store, term, community)
                trees[term] = shapely.STRtree(pts)
        return cls(trees)

    def counts(self, term: str, polygons: np.ndarray) -> np.ndarray:
        """How many of the term's points each polygon (lon/lat) covers."""
        return count_in(self.trees[term], polygons)


def figures(
    grids: gpd.GeoDataFrame,
    children: gpd.GeoDataFrame,
    weights: dict[str, float],
    points: Points,
) -> pd.DataFrame:
    """Per grid: households, workload, Polsby–Popper and contiguity (no deviation yet)."""
    out = pd.DataFrame({"code": grids["code"].astype(str).to_numpy()})
    out["name"] = grids["name"].to_numpy()
    out["version"] = (
        grids["version"].fillna(0).astype("int64").to_numpy() if "version" in grids else 0
    )
    out["households"] = grids["households"].astype("int64").to_numpy()
    load = np.zeros(len(grids))
    for term, w in weights.items():
        if w and term in GRID_TERMS:
            load += w * grids[term].to_numpy(dtype=float)
    terms = [t for t, w in weights.items() if w and t not in GRID_TERMS]
    if terms:
        n = len(out["code"].iloc[0]) if len(out) else 0
        kids = children.loc[children["code"].astype(str).str.slice(0, n).isin(out["code"])]
        # a grid with children counts what its children hold (as the rebalancer's atoms);
        # a grid without any counts its own ground
        bare = ~out["code"].isin(kids["code"].astype(str).str.slice(0, n)).to_numpy()
        owner = pd.concat(
            [kids["code"].astype(str).str.slice(0, n), out.loc[bare, "code"]], ignore_index=True
        )
        shapes = np.r_[kids.geometry.to_numpy(), grids.geometry.to_numpy()[bare]]
        for term in terms:
            per = pd.Series(points.counts(term, shapes)).groupby(owner.to_numpy()).sum()
            load += weights[term] * out["code"].map(per).fillna(0).to_numpy(dtype=float)
    out["workload"] = load.round(2)
    geoms = grids.geometry.to_numpy()
    if len(geoms):
        c = shapely.union_all(shapely.envelope(geoms)).centroid
        metric = project(geoms, local_metric_crs(c.x, c.y))
        area, perimeter = shapely.area(metric), shapely.length(metric)
        out["polsby_popper"] = np.where(
            perimeter > 0, 4 * np.pi * area / np.maximum(perimeter, 1e-9) ** 2, 0
        ).round(3)
        out["area_m2"] = area.round(0)
        out["contiguous"] = shapely.get_num_geometries(geoms) == 1
    else:
        out["polsby_popper"] = out["area_m2"] = pd.Series(dtype=float)
        out["contiguous"] = pd.Series(dtype=bool)
    return out


def deviations(rows: pd.DataFrame, parent_width: int) -> tuple[pd.DataFrame, dict]:
    """Each row's deviation from its parent's mean workload; per parent the figures."""
    rows = rows.copy()
    parent = rows["code"].str.slice(0, parent_width)
    target = rows.groupby(parent)["workload"].transform("mean")
    rows["parent"] = parent
    rows["target"] = target.round(2)
    rows["deviation"] = np.where(target > 0, (rows["workload"] - target) / target, 0.0).round(4)
    groups = {
        str(p): {
            "k": len(g),
            "target": round(float(g["target"].iloc[0]), 2),
            "max_deviation": round(float(g["deviation"].abs().max()), 4) if len(g) else 0.0,
            "households": int(g["households"].sum()),
            "polsby_popper_mean": round(float(g["polsby_popper"].mean()), 3),
            "contiguous": bool(g["contiguous"].all()),
        }
        for p, g in rows.groupby("parent", sort=True)
    }
    return rows, groups


def _level(level) -> Level:
    level = Level.parse(level)
    if level not in LEVELS:
        raise InputError(
            say(
                "problem_balance_level",
                level=level.key,
                level_zh=level.zh,
                levels=", ".join(lv.key for lv in LEVELS),
                levels_zh="、".join(lv.zh for lv in LEVELS),
            )
        )
    return level


def _people(store, community: str) -> list[dict]:
    """Who can take a grid of the community: its staff, and staff with no grid at all."""
    from gis_grid.grids.queries import active

    everyone = store.staff()
    assigned = active(store.assignments())
    here = set(
        assigned.loc[assigned["grid_code"].astype(str).str.startswith(community), "staff_id"]
    )
    free = set(everyone["staff_id"]) - set(assigned["staff_id"])
    mine = everyone.loc[everyone["staff_id"].isin(here | free)].sort_values(["role", "name"])
    return [
        {"staff_id": p.staff_id, "name": p.name, "role": p.role, "free": p.staff_id in free}
        for p in mine.itertuples()
    ]


def _staff(store, assignments: pd.DataFrame) -> dict[str, list[dict]]:
    """Code → the staff on it (id, name, role), from assignments."""
    if not len(assignments):
        return {}
    people = store.staff(sorted(set(assignments["staff_id"]))).set_index("staff_id")
    out: dict[str, list[dict]] = {}
    for a in assignments.sort_values(["grid_code", "staff_id"]).itertuples():
        name = people["name"].get(a.staff_id, a.staff_id)
        out.setdefault(str(a.grid_code), []).append(
            {"staff_id": a.staff_id, "name": name, "role": a.role}
        )
    return out


class Panel:
    """A community's balance at one level, and previews of edits against it.

    Built once per community, level, weights and store generation (the API
    keeps it), so a preview computes only the grids the edit changes.
    """

    def __init__(self, store, community: str, level, weights=None) -> None:
        from gis_grid.grids.queries import active

        self.store = store
        self.community = str(community)
        self.level = _level(level)
        self.weights = parse_weights(weights)
        self.parent_width = CODE_LENGTHS[Level(self.level - 1)]
        grids = store.grids(under=[self.community])
        if not len(grids):
            from gis_grid.domain.errors import NotFoundError

            raise NotFoundError(say("problem_no_community_here", code=self.community))
        width = CODE_LENGTHS[self.level]
        self.grids = grids.loc[grids["code"].str.len() == width].reset_index(drop=True)
        below = CODE_LENGTHS.get(Level(self.level + 1)) if self.level < Level.UNIT else None
        self.children = grids.loc[grids["code"].str.len() == below].reset_index(drop=True)
        self.buildings = grids.loc[
            grids["code"].str.len() == CODE_LENGTHS[Level.BUILDING]
        ].reset_index(drop=True)
        self.points = Points.of(store, self.community, self.weights)
        rows = figures(self.grids, self.children, self.weights, self.points)
        assignments = active(store.assignments(grid_codes=self.grids["code"].tolist()))
        self.staff = _staff(store, assignments)
        self.rows, self.groups = deviations(rows, self.parent_width)
        names = dict(zip(grids["code"], grids["name"], strict=True))
        for group in self.groups:
            self.groups[group]["name"] = names.get(group, group)
        self.people = _people(store, self.community)

    def answer(self) -> dict:
        """The panel as JSON: rows, per-parent figures and the grids as GeoJSON."""
        import json

        frame = gpd.GeoDataFrame(
            self.rows.assign(staff=self.rows["code"].map(lambda c: self.staff.get(c, []))),
            geometry=self.grids.geometry.to_numpy(),
            crs=WGS84,
        )
        return {
            "community": self.community,
            "level": self.level.key,
            "weights": self.weights,
            "rows": _records(self.rows, self.staff),
            "groups": self.groups,
            "people": self.people,
            "grids": json.loads(frame.to_json(drop_id=True, ensure_ascii=False)),
        }

    def preview(self, run, lang: str = "en") -> dict:
        """What an edit would make, checked by the store, with the panel's figures after it.

        ``run(dry_run=True)`` is the edit (see :mod:`gis_grid.planning.edits`).
        Refusals come back as problems (``ok`` false) worded in ``lang``;
        nothing is ever written.
        """
        import json

        started = time.perf_counter()
        try:
            revision = run(dry_run=True)
        except GisGridError as exc:
            return _refused(exc, started, lang)
        change = revision.change
        width = len(change.remove[0])
        if width != CODE_LENGTHS[self.level]:
            raise InputError(
                say(
                    "problem_preview_level",
                    level=self.level.key,
                    level_zh=self.level.zh,
                    got=level_of_code(change.remove[0]).key,
                    got_zh=level_of_code(change.remove[0]).zh,
                )
            )
        new = change.grids.loc[change.grids["code"].str.len() == width].reset_index(drop=True)
        below = change.grids.loc[
            change.grids["code"].str.len()
            == (len(self.children["code"].iloc[0]) if len(self.children) else -1)
        ]
        rows = figures(new, below, self.weights, self.points)
        removed = sorted(set(self.grids["code"]) & set(revision.deleted))
        replaced = set(removed) | set(rows["code"])
        kept = self.rows.loc[~self.rows["code"].isin(replaced), rows.columns]
        after, groups = deviations(pd.concat([kept, rows], ignore_index=True), self.parent_width)
        changed = after.loc[after["code"].isin(rows["code"])].sort_values("code")
        from gis_grid.grids.queries import active

        mine = change.assignments.loc[change.assignments["grid_code"].isin(rows["code"])]
        staff = _staff(self.store, active(mine))  # those in force today, as the panel shows
        moved = self._moved(change)
        frame = gpd.GeoDataFrame(
            changed.assign(staff=changed["code"].map(lambda c: staff.get(c, []))),
            geometry=new.set_index("code").loc[changed["code"]].geometry.to_numpy(),
            crs=WGS84,
        )
        unstaffed = [c for c in changed["code"] if not staff.get(c)]
        parent = str(change.remove[0])[: self.parent_width]
        for group in groups:
            groups[group]["name"] = self.groups.get(group, {}).get("name", group)
        return {
            "ok": True,
            "problems": [],
            "operation": change.operation,
            "removed": removed,
            "rows": _records(changed, staff),
            "groups": {parent: groups.get(parent)} if parent in groups else groups,
            "households_moved": int(moved["households"].sum()) if len(moved) else 0,
            "buildings_moved": moved["after"].tolist() if len(moved) else [],
            "unstaffed": unstaffed,
            "grids": json.loads(frame.to_json(drop_id=True, ensure_ascii=False)),
            "codes": {
                "updated": [c for c in revision.updated if len(c) == width],
                "inserted": [c for c in revision.inserted if len(c) == width],
            },
            "ms": round(1000 * (time.perf_counter() - started), 1),
        }

    def _moved(self, change) -> pd.DataFrame:
        """Buildings the edit puts under another grid of the level (see :func:`moved_buildings`)."""
        before = self.buildings.loc[self.buildings["code"].str.startswith(tuple(change.remove))]
        return moved_buildings(before, change, CODE_LENGTHS[self.level])


def moved_buildings(before: gpd.GeoDataFrame, change, width: int) -> gpd.GeoDataFrame:
    """Buildings a change puts under another grid of a level, matched by footprint.

    ``before`` are the buildings under the grids the change removes, as they
    are now. Grids that keep their code are the same grid; a building whose
    grid of the level (the first ``width`` digits) is another one afterwards
    moved, with its households. Columns ``before``, ``after``, ``households``
    and the footprint.
    """
    n = CODE_LENGTHS[Level.BUILDING]
    after = change.grids.loc[change.grids["code"].str.len() == n]
    empty = gpd.GeoDataFrame({"before": [], "after": [], "households": []}, geometry=[], crs=WGS84)
    if not len(before) or not len(after):
        return empty
    key = shapely.to_wkb(shapely.normalize(after.geometry.to_numpy()))
    new_code = dict(zip(key, after["code"], strict=True))
    old_key = shapely.to_wkb(shapely.normalize(before.geometry.to_numpy()))
    frame = gpd.GeoDataFrame(
        {
            "before": before["code"].to_numpy(),
            "after": [new_code.get(k) for k in old_key],
            "households": before["households"].astype("int64").to_numpy(),
        },
        geometry=before.geometry.to_numpy(),
        crs=WGS84,
    )
    frame = frame.loc[frame["after"].notna()]
    moved = frame["before"].str.slice(0, width) != frame["after"].str.slice(0, width)
    return frame.loc[moved].reset_index(drop=True)


def _records(rows: pd.DataFrame, staff: dict) -> list[dict]:
    out = []
    for r in rows.to_dict("records"):
        r = {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        r["staff"] = staff.get(r["code"], [])
        out.append(r)
    return out


def _refused(exc, started, lang: str) -> dict:
    """A preview the store (or the edit) refused: each problem, with its shape where known."""
    from types import SimpleNamespace

    from gis_grid.domain.messages import render
    from gis_grid.grids.topology import detail_in

    problems = []
    detail = exc.detail if isinstance(exc, TopologyError) else None
    if isinstance(detail, list) and detail:
        for r in detail:
            if {"level", "area_m2"} <= set(r):  # a topology problem: worded by its kind
                row = SimpleNamespace(
                    **{k: r.get(k) for k in ("kind", "level", "codes", "area_m2", "detail")}
                )
                message = detail_in(row, lang)
            else:
                message = render(r.get("detail") or exc.message, lang)
            codes = r.get("codes") or []
            problems.append(
                {
                    "kind": str(r.get("kind")),
                    "message": message,
                    "codes": [
                        str(c) for c in (codes if isinstance(codes, list | tuple) else [codes])
                    ],
                    "geometry": r.get("geometry"),
                }
            )
    else:
        extra = exc.detail if isinstance(exc.detail, dict) else {}
        problems.append(
            {
                "kind": type(exc).__name__,
                "message": render(exc.message, lang),
                "codes": [str(c) for c in (extra.get("codes") or [])],
                "geometry": None,
                **({"by": extra.get("by"), "at": extra.get("at")} if "by" in extra else {}),
            }
        )
    return {
        "ok": False,
        "problems": problems,
        "stale": type(exc).__name__ == "ConflictError",
        "ms": round(1000 * (time.perf_counter() - started), 1),
    }

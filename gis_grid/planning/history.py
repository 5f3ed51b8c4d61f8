"""A community's history: its state at any revision, undoing to it, comparing two.

The store's revision log (:mod:`gis_grid.store.revisions`) keeps, per revision,
the rows it replaced and the codes it wrote. Walking back from the current
state through the newer revisions' payloads gives the state after any earlier
revision (:func:`state_at`); :func:`back_to` is the rewrite that returns to it
(undo, restore) and :func:`diff` says what changed between two states.
"""

from __future__ import annotations

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

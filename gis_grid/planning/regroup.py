"""The atom model both edits and rebalancing use: regroup a parent's children.

A boundary change under one parent replaces some sibling grids (the roots)
by new ones made of the same atoms (the roots' children). :func:`atom_cells`
cuts the parent into one cell per atom; a :class:`Regroup` says which atoms
make each new grid and :func:`build` turns it into the store's
:class:`~gis_grid.store.revisions.Rewrite`, with stable codes and staff
following their grids. :func:`current_state` reads a community as it is now.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import (
    AGGREGATES,
    CODE_LENGTHS,
    Level,
    check_codes,
    child_code,
    normalise_code,
    rollup,
)
from gis_grid.domain.numbering import reading_order
from gis_grid.geo.crs import WGS84, local_metric_crs, project, reproject
from gis_grid.geo.tessellation import GRID, tessellate
from gis_grid.planning.history import State
from gis_grid.store.checks import listing
from gis_grid.store.revisions import Rewrite, len_level


def checked_codes(codes, what: str = "grid code") -> list[str]:
    """The codes as text (digits in ASCII), or a clear error naming the malformed ones."""
    codes = [normalise_code(c) for c in codes]
    bad = check_codes(codes)
    if bad:
        raise InputError(say("problem_malformed_codes", codes=", ".join(map(repr, bad[:8]))))
    return codes


def community_code(code) -> str:
    """A checked 12-digit community code."""
    (code,) = checked_codes([code], "community code")
    if len(code) != CODE_LENGTHS[Level.COMMUNITY]:
        raise InputError(say("problem_not_community_code", code=repr(code)))
    return code


def parent_code(code: str) -> str:
    """The code of a grid's parent."""
    return code[: CODE_LENGTHS[Level(len_level(code) - 1)]]


def serial_of(code: str) -> int:
    """A grid's serial under its parent."""
    return int(code[len(parent_code(code)) :])


def current_state(store, community: str) -> State:
    """The community's grids and assignments now (revision = the latest)."""
    community = community_code(community)
    grids = store.grids(under=[community])
    if not len(grids):
        raise NotFoundError(say("problem_no_community_here", code=community))
    assignments = store.assignments(grid_codes=grids["code"].tolist())
    log = store.revisions(community)
    return State(grids, assignments, int(log["id"].max()) if len(log) else 0)


# -- regrouping atoms into grids --------------------------------------------------


@dataclass
class Regroup:
    """New grids made of existing atoms (the children of the replaced grids).

    Attributes
    ----------
    roots : list of str
        The grids replaced (siblings under one parent).
    labels : dict
        Atom code → the key of its new grid.
    geometry : dict
        New grid key → its polygon (EPSG:4326).
    keep : dict
        New grid key → the old code it keeps (others get new serials).
    names : dict
        New grid key → name (default: the kept grid's name, or the level and serial).
    counts : dict
        New grid key → its own households, residents and special-care counts,
        for grids with no children (default: a kept grid keeps its counts; a
        new one starts at 0). Grids with children sum theirs.
    """

    roots: list[str]
    labels: dict
    geometry: dict
    keep: dict
    names: dict | None = None
    counts: dict | None = None


def build(now: State, plan: Regroup, operation: str, *, summary="", author="") -> Rewrite:
    """The rewrite that makes ``plan``'s grids, with atoms and staff re-coded."""
    grids = now.grids
    roots = sorted(plan.roots)
    parent = parent_code(roots[0])
    level = Level(len_level(roots[0]))
    by_code = grids.set_index("code")
    siblings = grids.loc[grids["code"].str.len() == len(roots[0])]
    siblings = siblings.loc[siblings["code"].str.startswith(parent)]

    # codes of the new grids: kept, or the next serials in reading order
    keys = list(plan.geometry)
    fresh = [k for k in keys if plan.keep.get(k) is None]
    used = {serial_of(c) for c in siblings["code"]}
    next_serial = max(used, default=0) + 1
    codes = {k: plan.keep[k] for k in keys if plan.keep.get(k) is not None}
    if fresh:
        order = reading_order([parent] * len(fresh), [plan.geometry[k] for k in fresh])
        for k, _rank in sorted(zip(fresh, order, strict=True), key=lambda t: t[1]):
            codes[k] = child_code(parent, next_serial)
            next_serial += 1
    rows = []
    for k in keys:
        code = codes[k]
        default = (
            by_code.loc[code, "name"]
            if code in by_code.index
            else f"{level.zh}{serial_of(code):0{len(code) - len(parent)}d}"
        )
        name = (plan.names or {}).get(k) or default
        counts = (plan.counts or {}).get(k)
        if counts is None:
            counts = (
                {c: int(by_code.loc[code, c]) for c in AGGREGATES}
                if code in by_code.index
                else dict.fromkeys(AGGREGATES, 0)
            )
        rows.append({"code": code, "name": name, **counts, "geometry": plan.geometry[k]})

    # atoms: keep their code when their grid kept its code, else the next free serials
    atoms = children_of(grids, roots)
    missing = sorted(set(atoms["code"]) - set(plan.labels))
    if missing:
        raise InputError(say("problem_not_placed", codes=listing(missing)))
    new_parent = atoms["code"].map(lambda c: codes[plan.labels[c]])
    stays = (atoms["code"].str.slice(0, len(roots[0])) == new_parent).to_numpy()
    recode = {c: c for c in atoms.loc[stays, "code"]}
    moving = atoms.loc[~stays]
    if len(moving):
        order = reading_order(new_parent[~stays].to_numpy(), moving.geometry.to_numpy())
        taken: dict[str, int] = {}
        for code, parent_new in zip(atoms.loc[stays, "code"], new_parent[stays], strict=True):
            taken[parent_new] = max(taken.get(parent_new, 0), serial_of(code))
        for (code, parent_new), _rank in sorted(
            zip(zip(moving["code"], new_parent[~stays], strict=True), order, strict=True),
            key=lambda t: (t[0][1], t[1]),
        ):
            taken[parent_new] = taken.get(parent_new, 0) + 1
            recode[code] = child_code(parent_new, taken[parent_new])
    if level is not Level.UNIT:
        atom_len = CODE_LENGTHS[Level(level + 1)]
        below = grids.loc[
            grids["code"].str.startswith(tuple(roots)) & (grids["code"].str.len() > atom_len)
        ]
        for code in below["code"]:
            recode[code] = recode[code[:atom_len]] + code[atom_len:]
    kept_rows = grids.loc[grids["code"].isin(list(recode))].copy()
    kept_rows["code"] = kept_rows["code"].map(recode)
    new = pd.concat(
        [
            gpd.GeoDataFrame(rows, geometry="geometry", crs=WGS84),
            kept_rows[["code", "name", *AGGREGATES, "geometry"]],
        ],
        ignore_index=True,
    )
    new = gpd.GeoDataFrame(new, geometry="geometry", crs=WGS84)
    for col in AGGREGATES:
        new[col] = new[col].fillna(0).astype("int64")
    summed = rollup(new)  # grids with children carry their children's sums
    for col in AGGREGATES:
        new[col] = summed[col].to_numpy()

    # staff follow their grids: re-coded atoms and their subtrees, kept roots
    a = now.assignments
    mapping = {**recode, **{c: c for c in codes.values() if c in by_code.index}}
    a = a.loc[a["grid_code"].isin(list(mapping))].copy()
    a["grid_code"] = a["grid_code"].map(mapping)
    based_on = {
        c: int(v)
        for c, v in zip(grids["code"], grids["version"], strict=True)
        if c.startswith(tuple(roots))
    }
    return Rewrite(
        remove=roots,
        grids=new,
        assignments=a.reset_index(drop=True),
        operation=operation,
        summary=summary,
        author=author,
        based_on=based_on,
    )


def metric(geoms) -> tuple:
    """Geometries (EPSG:4326) in a local metric CRS, and that CRS."""
    geoms = np.asarray(geoms, dtype=object)
    c = shapely.union_all(shapely.envelope(geoms)).centroid
    crs = local_metric_crs(c.x, c.y)
    return project(geoms, crs), crs


def atom_cells(
    parent_geom, children: gpd.GeoDataFrame, atoms: gpd.GeoDataFrame
) -> tuple[np.ndarray, object]:
    """One cell per atom (metric CRS), tiling the parent; the CRS used.

    Each child is cut around its own atoms, so a child that keeps all its
    atoms keeps its outline; the parent's ground outside every child (open
    space between courtyards) goes to the nearest atom, then to the
    neighbouring cell it shares most edge with if it would sit apart.
    """
    geoms, crs = metric(
        np.r_[[parent_geom], children.geometry.to_numpy(), atoms.geometry.to_numpy()]
    )
    parent_m, child_m, atom_m = geoms[0], geoms[1 : 1 + len(children)], geoms[1 + len(children) :]
    owner = atoms["code"].str.slice(0, len(children["code"].iloc[0])).to_numpy()
    cells = np.empty(len(atoms), dtype=object)
    for k, code in enumerate(children["code"]):
        mine = np.flatnonzero(owner == code)
        if len(mine):
            cells[mine] = tessellate(child_m[k], atom_m[mine])
    open_ground = shapely.difference(
        shapely.set_precision(parent_m, GRID),
        shapely.union_all(child_m, grid_size=GRID),
        grid_size=GRID,
    )
    if shapely.area(open_ground) > 0.1:
        from gis_grid.geo.tessellation import polygonal, reattach

        whole = tessellate(parent_m, atom_m)
        extra = polygonal(shapely.intersection(whole, open_ground, grid_size=GRID))
        cells = polygonal(shapely.union(cells, extra, grid_size=GRID))
        cells = reattach(cells, polygonal(shapely.intersection(atom_m, parent_m, grid_size=GRID)))
    return cells, crs


def union_lonlat(cells: np.ndarray, crs) -> object:
    """The union of metric cells, back in EPSG:4326."""
    merged = shapely.union_all(cells, grid_size=GRID)
    return reproject(np.array([merged], dtype=object), crs, WGS84)[0]


def children_of(grids: gpd.GeoDataFrame, codes) -> gpd.GeoDataFrame:
    """The direct children of the given grids (none under units)."""
    codes = tuple(codes)
    n = len(codes[0]) if codes else 0
    if not codes or len_level(codes[0]) == Level.UNIT:
        return grids.iloc[0:0]
    out = grids.loc[
        grids["code"].str.startswith(codes)
        & (grids["code"].str.len() == CODE_LENGTHS[Level(len_level(codes[0]) + 1)])
    ]
    return out.loc[out["code"].str.slice(0, n).isin(codes)].reset_index(drop=True)

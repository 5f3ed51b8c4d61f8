"""Workload rebalancing: proposals of grids with comparable work, stored for review.

A parent's atoms (its grandchildren) get their workload (:func:`workload`:
grid aggregates and layer counts, weighted), are partitioned into k grids by
:func:`gis_grid.planning.partition.partition`, and the plan becomes a
:class:`~gis_grid.store.revisions.Rewrite` (through
:mod:`gis_grid.planning.regroup`) stored as a proposal with its metrics, to
be accepted as one revision or discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import AGGREGATES, CODE_LENGTHS, Level, level_of_code
from gis_grid.geo.crs import WGS84, project
from gis_grid.geo.tessellation import GRID
from gis_grid.planning.partition import (
    Atoms,
    Result,
    adjacency,
    cut_by_lines,
    group_geometries,
    match_groups,
    partition,
)

#: Days of a timed layer's features a workload counts.
DAYS = 90
#: The largest weight a workload term may have (a weight is a ratio between terms).
MAX_WEIGHT = 1e6
#: Workload terms a planner can weigh that every store knows; any layer name counts
#: that layer's features (the last ``days`` of them where the layer has a time).
GRID_TERMS = AGGREGATES


# -- atoms ------------------------------------------------------------------------


def parse_weights(text: str | dict | None) -> dict[str, float]:
    """``households=1,incidents=0.2`` → ``{'households': 1.0, 'incidents': 0.2}``.

    Examples
    --------
    >>> parse_weights("households=1, incidents=0.2")
    {'households': 1.0, 'incidents': 0.2}
    >>> parse_weights(None)
    {'households': 1.0}
    """
    if text is None or text == "":
        return {"households": 1.0}
    out = {}
    items = (
        text.items()
        if isinstance(text, dict)
        else (part.partition("=")[::2] for part in str(text).split(",") if part.strip())
    )
    for name, value in items:
        try:
            out[str(name).strip()] = float(value) if str(value).strip() else 1.0
        except (TypeError, ValueError) as exc:
            raise InputError(say("problem_weight_form", term=f"{name}={value!r}")) from exc
    wrong = [f"{k}={v}" for k, v in out.items() if not (0 <= v <= MAX_WEIGHT)]  # NaN too
    if wrong:
        raise InputError(
            say("problem_weight_range", most=f"{MAX_WEIGHT:g}", terms=", ".join(wrong))
        )
    if not any(out.values()):
        raise InputError(say("problem_weight_zero"))
    return out


def workload(
    store, atoms: pd.DataFrame, weights: dict[str, float], *, days: int = DAYS
) -> np.ndarray:
    """The weighted workload of each atom (grid aggregates and layer counts).

    A layer term counts the layer's features (the last ``days`` of them where
    the layer has a time) located in the atom: where they are, not the grids
    they were linked to when reported, so an atom a planner moved last week
    still carries its incidents.
    """
    total = np.zeros(len(atoms))
    community = str(atoms["code"].iloc[0])[:12]
    for term, w in weights.items():
        if w == 0:
            continue
        if term in GRID_TERMS:
            total += w * atoms[term].to_numpy(dtype=float)
            continue
        points = shapely.STRtree(recent_points(store, term, community, days))
        total += w * count_in(points, atoms.geometry.to_numpy())
    return total


def recent_points(store, term: str, community: str, days: int = DAYS) -> np.ndarray:
    """A layer's features in a community (the last ``days`` where it has a time), as points."""
    layers = store.layers()
    if term not in layers:
        raise InputError(
            say(
                "problem_weight_term",
                term=term,
                terms=", ".join(GRID_TERMS),
                layers=", ".join(sorted(layers)) or "—",
            )
        )
    kinds = layers[term].kinds()
    when = next((c for c, k in kinds.items() if k == "time"), None)
    where = None
    if when is not None:
        since = (pd.Timestamp.now(tz="Asia/Shanghai") - pd.Timedelta(days=days)).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
        where = {when: (since, None)}
    feats = store.features(term, under=[community], where=where)
    return shapely.point_on_surface(feats.geometry.to_numpy())


def count_in(points: shapely.STRtree, polygons: np.ndarray) -> np.ndarray:
    """How many of the tree's points each polygon covers."""
    if not len(polygons) or not len(points.geometries):
        return np.zeros(len(polygons))
    which, _ = points.query(polygons, predicate="covers")
    return np.bincount(which, minlength=len(polygons)).astype(float)


def atoms_of(store, now, parent: str, *, weights=None, days: int = 90) -> Atoms:
    """The atoms of ``parent`` (its grandchildren) with cells, workload and neighbours."""
    grids = now.grids
    level = level_of_code(parent)
    if level not in (Level.COMMUNITY, Level.AREA):
        raise InputError(
            say("problem_rebalance_what", code=parent, level=level.key, level_zh=level.zh)
        )
    by_code = grids.set_index("code")
    if parent not in by_code.index:
        raise NotFoundError(say("problem_no_grid", code=parent))
    children = grids.loc[
        (grids["code"].str.len() == CODE_LENGTHS[Level(level + 1)])
        & grids["code"].str.startswith(parent)
    ].reset_index(drop=True)
    atoms = grids.loc[
        (grids["code"].str.len() == CODE_LENGTHS[Level(level + 2)])
        & grids["code"].str.startswith(parent)
    ].reset_index(drop=True)
    if not len(children) or not len(atoms):
        atoms_level = Level(level + 2)
        raise InputError(
            say(
                "problem_rebalance_empty",
                code=parent,
                atoms=atoms_level.key,
                atoms_zh=atoms_level.zh,
            )
        )
    return atoms_from(store, by_code.loc[parent, "geometry"], children, atoms, weights, days)


def atoms_from(store, region, children, atoms, weights=None, days: int = 90) -> Atoms:
    """:class:`Atoms` for given children (current grids) and their atoms."""
    from gis_grid.planning.regroup import atom_cells

    cells, crs = atom_cells(region, children, atoms)
    weight = workload(store, atoms, parse_weights(weights), days=days)
    graph = adjacency(cells)
    groups = children["code"].tolist()
    owner = atoms["code"].str.slice(0, len(groups[0]))
    start = owner.map({c: i for i, c in enumerate(groups)}).to_numpy()
    return Atoms(
        codes=atoms["code"].to_numpy(),
        weight=weight,
        households=atoms["households"].to_numpy(dtype="int64"),
        cells=cells,
        crs=crs,
        graph=graph,
        area=shapely.area(cells),
        perimeter=shapely.length(cells),
        start=start,
        groups=groups,
    )


@dataclass
class Partition:
    """Labels and outlines ready for :class:`gis_grid.planning.regroup.Regroup`."""

    labels: dict
    geometry: dict
    loads: dict
    result: Result


def partition_atoms(store, now, region, roots, k, *, weights=None, seed=0, tolerance=0.05):
    """Partition the atoms under ``roots`` (one grid for split) into ``k`` groups."""
    grids = now.grids
    children = grids.loc[grids["code"].isin(roots)].reset_index(drop=True)
    n = len(roots[0])
    atom_len = CODE_LENGTHS[Level(level_of_code(roots[0]) + 1)]
    atoms_df = grids.loc[
        (grids["code"].str.len() == atom_len) & grids["code"].str.slice(0, n).isin(roots)
    ].reset_index(drop=True)
    atoms = atoms_from(store, region, children, atoms_df, weights)
    result = partition(atoms, k, tolerance=tolerance, seed=seed)
    geoms = group_geometries(atoms, result.labels, result.k)
    return Partition(
        labels=dict(zip(atoms.codes.tolist(), result.labels.tolist(), strict=True)),
        geometry=dict(enumerate(geoms)),
        loads=dict(enumerate(result.loads.tolist())),
        result=result,
    )


# -- proposals ---------------------------------------------------------------------------


def propose(
    store,
    parent: str,
    *,
    k: int | None = None,
    weights=None,
    tolerance: float = 0.05,
    edges: str | None = None,
    edges_where: dict | None = None,
    seed: int = 0,
    narrow: bool = True,
    author: str = "",
    save: bool = True,
    audit: dict | None = None,
) -> dict:
    """Propose a rebalanced partition of ``parent``'s grids; store it as a proposal.

    Returns the metrics as a dict: ``proposal`` (its id, None when not
    saved), ``k``, ``max_deviation``, ``contiguous``, ``polsby_popper_mean``,
    ``households_moved``, ``loads``, ``notes`` and ``seconds``.
    """
    from gis_grid.planning.regroup import Regroup, build, current_state

    parent = str(parent)
    now = current_state(store, parent[:12])
    atoms = atoms_of(store, now, parent, weights=weights)
    cut = 0
    if edges:
        feats = store.features(edges, under=[parent[:12]], where=edges_where)
        lines = feats.geometry.to_numpy()
        cut = cut_by_lines(atoms, project(lines, atoms.crs))
    k = int(k or len(atoms.groups))
    result = partition(atoms, k, tolerance=tolerance, seed=seed, narrow=narrow)
    geoms = group_geometries(atoms, result.labels, result.k)
    keep = match_groups(atoms, result.labels)
    old = now.grids.set_index("code")
    for g, c in keep.items():  # a grid that keeps exactly its atoms keeps its outline
        code = atoms.groups[c]
        same = set(atoms.codes[result.labels == g]) == set(atoms.codes[atoms.start == c])
        area = shapely.area(shapely.union_all(atoms.cells[result.labels == g], grid_size=GRID))
        old_area = shapely.area(project(np.array([old.loc[code, "geometry"]]), atoms.crs)[0])
        if same and abs(area - old_area) < 0.5:
            geoms[g] = old.loc[code, "geometry"]
    plan = Regroup(
        roots=list(atoms.groups),
        labels=dict(zip(atoms.codes.tolist(), result.labels.tolist(), strict=True)),
        geometry=dict(enumerate(geoms)),
        keep={g: atoms.groups[keep[g]] if g in keep else None for g in range(result.k)},
    )
    before = np.bincount(atoms.start, weights=atoms.weight, minlength=len(atoms.groups))
    change = build(
        now, plan, "rebalance", summary=f"rebalance {parent} into {result.k}", author=author
    )
    metrics = {
        "proposal": None,
        "parent": parent,
        "k": result.k,
        "max_deviation": round(result.max_deviation, 4),
        "contiguous": bool(result.contiguous),
        "polsby_popper_mean": round(result.polsby_popper_mean, 4),
        "households_moved": int(result.households_moved),
        "households_total": int(atoms.households.sum()),
        "max_deviation_before": round(
            float(np.max(np.abs(before - before.mean())) / before.mean()) if before.mean() else 0.0,
            4,
        ),
        "target": round(result.target, 2),
        "loads": [round(float(x), 2) for x in result.loads],
        "links_cut_by_edges": cut,
        "tolerance": tolerance,
        "within_tolerance": result.max_deviation <= tolerance + 1e-12,
        "notes": result.notes,
        "seconds": round(result.seconds, 2),
    }
    if save:
        metrics["proposal"] = store.save_proposal(
            parent,
            change,
            params={
                "k": k,
                "weights": parse_weights(weights),
                "tolerance": tolerance,
                "edges": edges,
                "seed": seed,
                "narrow": narrow,
            },
            metrics={m: v for m, v in metrics.items() if m != "proposal"},
            author=author,
            audit=audit,
        )
    metrics["_change"] = change
    return metrics


def before_after(store, change) -> gpd.GeoDataFrame:
    """The grids a change replaces (``side=before``) and writes (``after``), top level only.

    What a planner puts on a map to review a proposal.
    """
    top = len(change.remove[0])
    before = store.grids(codes=change.remove).assign(side="before")
    after = change.grids.loc[change.grids["code"].str.len() == top].assign(side="after")
    cols = ["code", "name", "households", "side", "geometry"]
    frame = pd.concat([before[cols], after[cols]], ignore_index=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=WGS84)


def accept(store, pid: int, *, author: str = "", audit: dict | None = None):
    """Apply a stored proposal as a new revision (refused if its grids changed since)."""
    record, change = store.proposal(pid)
    if record["status"] != "open":
        raise InputError(say("problem_proposal_closed", proposal=pid, status=record["status"]))
    change.author = author or change.author
    change.audit = audit
    revision = store.rewrite(change)
    store.close_proposal(pid, "accepted", revision.id)
    return revision


def discard(store, pid: int, *, audit: dict | None = None) -> None:
    """Mark a stored proposal discarded."""
    record, _ = store.proposal(pid)
    if record["status"] != "open":
        raise InputError(say("problem_proposal_closed", proposal=pid, status=record["status"]))
    store.close_proposal(pid, "discarded", audit=audit)

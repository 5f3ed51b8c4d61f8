"""Boundary operations a planner runs: split, merge, move, redraw, undo, restore.

Each operation reads the community as it is, works out the new grids of the
subtrees it touches and hands the store one :class:`~gis_grid.store.revisions.Rewrite`,
which the store checks and writes as one revision (or refuses, changing
nothing). The rules every operation keeps:

- the tiling stays valid: children are re-parented with their parent's area,
  never cut (a line through a building is refused);
- codes of grids that did not change stay as they were; new grids take the
  next free serials of their parent in reading order (west→east,
  north→south); a re-parented grid and everything below it take new codes;
- staff assignments follow their grids (to the new code); a new grid
  without staff is flagged, not refused.

Examples
--------
>>> import tempfile, os
>>> from gis_grid.sources.demo import generate
>>> from gis_grid.store import ChangeSet
>>> from gis_grid.store.gpkg import GeoPackageStore
>>> data = generate()
>>> store = GeoPackageStore(os.path.join(tempfile.mkdtemp(), "d.gpkg"))
>>> _ = store.apply(ChangeSet(data.grids, data.staff, data.assignments))
>>> rev = merge(store, ["211281001007006", "211281001007007"], author="doc")
>>> rev.operation, [c for c in rev.deleted if len(c) == 15]
('merge', ['211281001007007'])
>>> len(store.grids(level="area"))
7
>>> undo(store, "211281001007").operation
'undo'
>>> len(store.grids(level="area"))
8
>>> store.close()
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import ConflictError, InputError, NotFoundError, TopologyError
from gis_grid.domain.messages import say, words
from gis_grid.domain.model import (
    AGGREGATES,
    CODE_LENGTHS,
    Level,
    level_of_code,
)
from gis_grid.geo.crs import WGS84, check_lonlat, local_metric_crs, project, reproject
from gis_grid.geo.tessellation import GRID
from gis_grid.planning.history import State, back_to, diff, state_at
from gis_grid.planning.regroup import (
    Regroup,
    atom_cells,
    build,
    checked_codes,
    children_of,
    community_code,
    current_state,
    metric,
    parent_code,
)
from gis_grid.store.checks import listing
from gis_grid.store.revisions import Revision, Rewrite

# -- reading a community --------------------------------------------------------


def state(store, community: str, revision: int | None = None) -> State:
    """The community as it was just after ``revision`` (now when None)."""
    return _walk_back(store, current_state(store, community), revision)


def _walk_back(store, now: State, revision: int | None) -> State:
    """From the state now to the state just after ``revision``."""
    if revision is None or revision == now.revision:
        return now
    community = str(now.grids["code"].iloc[0])[:12]
    log = store.revisions(community)
    if revision != 0 and revision not in set(log["id"].astype(int)):
        raise NotFoundError(say("problem_no_revision", revision=revision, community=community))
    return state_at(now, store.payloads(community, revision), revision)


# -- undo, restore, diff ----------------------------------------------------------


def undo(
    store,
    community: str,
    *,
    revision: int | None = None,
    author: str = "",
    audit: dict | None = None,
) -> Revision:
    """Undo the community's latest revision, as a new revision (undoing an undo redoes).

    ``revision`` names the revision to undo: when another revision came after
    it (another planner's change), the undo is refused as a conflict instead
    of reverting that other change. The store checks it again inside its write.
    """
    community = community_code(community)
    log = store.revisions(community)
    if not len(log):
        raise NotFoundError(say("problem_nothing_to_undo", community=community))
    last = log.iloc[-1]
    if revision is not None and int(revision) != int(last["id"]):
        operation = str(last["operation"])
        raise ConflictError(
            say(
                "problem_undo_not_latest",
                revision=int(revision),
                community=community,
                latest=int(last["id"]),
                operation=operation,
                operation_zh=words("messages", f"op_{operation}"),
                by=f" by {last['author']}" if last["author"] else "",
                by_zh=f"，{last['author']}" if last["author"] else "",
            ),
            detail={"latest": int(last["id"])},
        )
    before = int(log.iloc[-2]["id"]) if len(log) > 1 else 0
    now = current_state(store, community)
    target = state_at(now, store.payloads(community, before), before)
    change = back_to(
        now,
        target,
        "undo",
        summary=f"undo revision {int(last['id'])} ({last['operation']})",
        author=author,
        undoes=int(last["id"]),
    )
    return _write(store, change, audit)


def restore(
    store, community: str, revision: int, *, author: str = "", audit: dict | None = None
) -> Revision:
    """Make the community as it was just after ``revision``, as a new revision."""
    now = current_state(store, community)
    target = _walk_back(store, now, revision)
    change = back_to(now, target, "restore", summary=f"restore revision {revision}", author=author)
    return _write(store, change, audit)


def compare(store, community: str, a: int, b: int | None = None) -> dict:
    """What changed in a community from revision ``a`` to ``b`` (now when None).

    See :func:`gis_grid.store.revisions.diff` for what the answer holds.
    """
    now = current_state(store, community)
    return diff(_walk_back(store, now, a), _walk_back(store, now, b))


def changed_by(store, community: str, codes: list[str]) -> dict[str, dict]:
    """Who last changed each of ``codes``: ``{code: {author, at, revision, operation}}``.

    Read from the community's newest revisions (the ones that wrote the code),
    so a planner refused for a stale edit learns who saved first, and when.
    """
    log = store.revisions(community)
    if not len(log) or not codes:
        return {}
    meta = log.set_index(log["id"].astype(int))
    recent = meta.index[-50:]
    out: dict[str, dict] = {}
    for rid, payload in sorted(store.payloads(community, int(recent[0]) - 1), key=lambda x: -x[0]):
        for code in set(codes) & set(payload.after_codes) - set(out):
            row = meta.loc[rid]
            out[code] = {
                "author": str(row["author"] or ""),
                "at": str(row["created_at"]),
                "revision": int(rid),
                "operation": str(row["operation"]),
            }
        if len(out) == len(set(codes)):
            break
    return out


def _stale(store, community: str, stale: dict[str, tuple[int, int]]) -> ConflictError:
    """The refusal of an edit made on versions someone else has replaced: who, when, reload."""
    who = changed_by(store, community, list(stale))
    authors = sorted({w["author"] for w in who.values() if w["author"]})
    last = max((w["at"] for w in who.values()), default="")
    when = last.replace("T", " ").removesuffix("Z") + (" UTC" if last else "")
    return ConflictError(
        say(
            "problem_grids_changed",
            listing=listing(
                f"{c} (you saw version {v}, it is now {n})" for c, (v, n) in stale.items()
            ),
            listing_zh=listing(
                f"{c}（您看到的是第 {v} 版，现为第 {n} 版）" for c, (v, n) in stale.items()
            ),
            by=f" by {', '.join(authors)} at {when}" if authors else f" at {when}" if when else "",
            by_zh=f"（{'、'.join(authors)} 于 {when} 保存）"
            if authors
            else f"（{when} 保存）"
            if when
            else "",
        ),
        detail={
            "codes": list(stale),
            "by": authors,
            "at": last,
            "revisions": sorted({w["revision"] for w in who.values()}),
        },
    )


def revision_changes(store, community: str, revision: int) -> dict:
    """What one revision changed, with shapes: for a planner's diff view.

    ``before`` and ``after`` are the grids it reshaped, removed or added (as
    they were just before it and just after it; units left out, they follow
    their buildings), ``buildings`` the buildings it put under another area or
    courtyard (their footprints, codes before and after, households), and
    ``diff`` what :func:`compare` says.
    """
    community = community_code(community)
    log = store.revisions(community)
    ids = log["id"].astype(int).tolist()
    if revision not in ids:
        raise NotFoundError(say("problem_no_revision", revision=revision, community=community))
    earlier = ids[ids.index(revision) - 1] if ids.index(revision) > 0 else 0
    now = current_state(store, community)
    a, b = _walk_back(store, now, earlier), _walk_back(store, now, revision)
    result = diff(a, b)
    changed = result["grids"]
    codes = changed.loc[changed["level"] != Level.UNIT.key, "code"].tolist()
    before = a.grids.loc[a.grids["code"].isin(codes)]
    after = b.grids.loc[b.grids["code"].isin(codes)]
    moved = result["buildings_moved"]
    footprints = a.grids.set_index("code").geometry
    buildings = gpd.GeoDataFrame(
        moved,
        geometry=[footprints.get(c) for c in moved["before"]] if len(moved) else [],
        crs=WGS84,
    )
    cols = ["code", "name", "households", "geometry"]
    return {
        "before": gpd.GeoDataFrame(before[cols], geometry="geometry", crs=WGS84),
        "after": gpd.GeoDataFrame(after[cols], geometry="geometry", crs=WGS84),
        "buildings": buildings,
        "diff": result,
    }


def _pinned(store, now: State, versions: Mapping[str, int] | None) -> dict[str, int]:
    """The versions a change was based on, checked against the grids now.

    A planner (or the API) names the version of each grid they acted on; a
    grid changed since by someone else is a conflict, refused before anything
    is planned and naming who changed it; the store checks the same versions
    again inside its write.
    """
    if not versions:
        return {}
    current = dict(zip(now.grids["code"], now.grids["version"].astype(int), strict=True))
    pins = {}
    for code, version in versions.items():
        (code,) = checked_codes([code])
        try:
            version = int(version)
        except (TypeError, ValueError) as exc:
            raise InputError(
                say("problem_version_number", code=code, version=repr(version))
            ) from exc
        if code not in current:
            raise NotFoundError(say("problem_no_grid_reload", code=code))
        pins[code] = version
    stale = {c: (v, current[c]) for c, v in pins.items() if current[c] != v}
    if stale:
        raise _stale(store, str(now.grids["code"].iloc[0])[:12], stale)
    return pins


def _one_level(codes: list[str]) -> None:
    levels = {len(c) for c in codes}
    parents = {parent_code(c) for c in codes if len(c) > 12}
    if len(levels) != 1 or len(parents) != 1:
        raise InputError(say("problem_not_siblings", codes=", ".join(codes)))


# -- the operations -------------------------------------------------------------------

#: Outlines no point of which lies farther than this (m) from the other are the same
#: outline: coordinates rounded to 7 decimals (~1 cm) are not an edit.
SAME_M = 0.02
#: A drawn vertex this close (degrees, ~1 cm) to an existing edge or corner takes it.
SNAP_DEGREES = 1e-7
#: A vertex of a split line drawn this close (degrees, ~2 m) to a corner of the grid or of
#: one of its children takes that corner (a hand on a map is a few pixels off).
SNAP_LINE_DEGREES = 2e-5
#: A vertex back from the metric overlay this close (degrees, ~3 mm) to a stored or
#: drawn one takes its coordinates.
RESTORE_DEGREES = 3e-8


def _restored(geom_m, crs, exact):
    """A metric overlay result back in lon/lat, its unmoved corners on their stored coordinates.

    The overlay snapped to the 1 mm grid and the round trip through the metric
    CRS move every vertex by up to a millimetre; snapping to ``exact`` (the
    stored and the drawn outlines, ~3 mm) puts each back where it was, so the
    result still shares its untouched edges exactly with its neighbours.
    """
    lonlat = reproject(np.array([geom_m], dtype=object), crs, WGS84)[0]
    snapped = shapely.snap(lonlat, exact, RESTORE_DEGREES)
    return snapped if shapely.is_valid(snapped) and not snapped.is_empty else lonlat


def merge(
    store,
    codes: list[str],
    *,
    name: str | None = None,
    versions: Mapping[str, int] | None = None,
    keep_staff: list[str] | None = None,
    author: str = "",
    audit: dict | None = None,
    dry_run: bool = False,
) -> Revision:
    """Merge adjacent sibling grids into one (it keeps the smallest code).

    The children of the others move under it with the next free serials;
    every staff assignment follows to the merged grid, or, with
    ``keep_staff``, only those people's (the others leave it: nobody stays on
    a grid that is gone). ``versions`` (code → version) are the versions the
    planner saw; a grid changed since is a
    :class:`~gis_grid.domain.errors.ConflictError`.
    """
    codes = sorted(set(checked_codes(codes)))
    if len(codes) < 2:
        raise InputError(say("problem_merge_two"))
    _one_level(codes)
    now = current_state(store, codes[0][:12])
    grids = now.grids.set_index("code")
    missing = [c for c in codes if c not in grids.index]
    if missing:
        raise NotFoundError(say("problem_no_such_grids", codes=", ".join(missing)))
    pins = _pinned(store, now, versions)
    merged = shapely.union_all(grids.loc[codes].geometry.to_numpy())  # exact: shared edges
    if shapely.get_num_geometries(merged) > 1 or merged.geom_type != "Polygon":
        raise TopologyError(
            say("problem_merge_apart", codes=", ".join(codes), n=shapely.get_num_geometries(merged))
        )
    atoms = children_of(now.grids, codes)
    plan = Regroup(
        roots=codes,
        labels={c: 0 for c in atoms["code"]},
        geometry={0: merged},
        keep={0: codes[0]},
        names={0: name} if name else None,
        counts=None if len(atoms) else {0: {c: int(grids.loc[codes, c].sum()) for c in AGGREGATES}},
    )
    change = build(now, plan, "merge", summary=f"merge {', '.join(codes)}", author=author)
    change.based_on.update(pins)
    # the others' staff follow to the merged grid (or only those who keep it)
    a = now.assignments
    others = a.loc[a["grid_code"].isin(codes[1:])].assign(grid_code=codes[0])
    merged_staff = pd.concat([change.assignments, others], ignore_index=True)
    if keep_staff is not None:
        on = set(merged_staff.loc[merged_staff["grid_code"] == codes[0], "staff_id"])
        strangers = sorted(set(keep_staff) - on)
        if strangers:
            raise InputError(
                say("problem_keep_staff", ids=", ".join(strangers), codes=", ".join(codes))
            )
        merged_staff = merged_staff.loc[
            (merged_staff["grid_code"] != codes[0]) | merged_staff["staff_id"].isin(keep_staff)
        ]
    change.assignments = merged_staff.drop_duplicates().reset_index(drop=True)
    change.dry_run = dry_run
    return _write(store, change, audit)


def move(
    store,
    atoms: list[str],
    to: str,
    *,
    versions: Mapping[str, int] | None = None,
    author: str = "",
    audit: dict | None = None,
    dry_run: bool = False,
) -> Revision:
    """Move buildings or courtyards (with their ground) to a neighbouring sibling grid.

    ``atoms`` are children of one or more grids; ``to`` is a sibling of
    those grids. The ground between buildings moves with them (each source
    grid is cut around its atoms); a source left empty or in pieces, or a
    target the atoms do not touch, is refused. ``versions`` (code → version)
    are the versions the planner saw (see :func:`merge`).
    """
    atoms = sorted(set(checked_codes(atoms)))
    (to,) = checked_codes([to])
    if not atoms or any(len(a) <= CODE_LENGTHS[Level.COMMUNITY] for a in [*atoms, to]):
        raise InputError(say("problem_move_what"))
    sources = sorted({parent_code(c) for c in atoms})
    _one_level([*sources, to])
    if to in sources:
        already = ", ".join(a for a in atoms if parent_code(a) == to)
        raise InputError(say("problem_move_already", codes=already, to=to))
    now = current_state(store, to[:12])
    grids = now.grids.set_index("code")
    missing = [c for c in [*atoms, to] if c not in grids.index]
    if missing:
        raise NotFoundError(say("problem_no_such_grids", codes=", ".join(missing)))
    pins = _pinned(store, now, versions)
    roots = sorted([*sources, to])
    children = children_of(now.grids, roots)
    geometry: dict = {}
    for src in sources:
        mine = children.loc[children["code"].str.startswith(src)].reset_index(drop=True)
        cells, crs = atom_cells(grids.loc[src, "geometry"], grids.loc[[src]].reset_index(), mine)
        moving = mine["code"].isin(atoms).to_numpy()
        if moving.all():
            raise TopologyError(say("problem_move_empties", code=src))
        left = shapely.union_all(cells[~moving], grid_size=GRID)
        if shapely.get_num_geometries(left) > 1:
            raise TopologyError(
                say(
                    "problem_move_breaks",
                    code=src,
                    n=shapely.get_num_geometries(left),
                    codes=", ".join(mine.loc[moving, "code"]),
                )
            )
        geometry[src] = reproject(np.array([left], dtype=object), crs, WGS84)[0]
        target_m = project(np.array([grids.loc[to, "geometry"]]), crs)[0]
        grown = shapely.union_all(np.r_[cells[moving], [target_m]], grid_size=GRID)
        if shapely.get_num_geometries(grown) > 1:
            raise TopologyError(
                say(
                    "problem_move_apart",
                    codes=", ".join(mine.loc[moving, "code"]),
                    to=to,
                    n=shapely.get_num_geometries(grown),
                )
            )
        geometry[to] = reproject(np.array([grown], dtype=object), crs, WGS84)[0]
        grids.loc[to, "geometry"] = geometry[to]
    labels = {c: (to if c in atoms else c[: len(to)]) for c in children["code"]}
    plan = Regroup(roots=roots, labels=labels, geometry=geometry, keep={r: r for r in roots})
    change = build(now, plan, "move", summary=f"move {', '.join(atoms)} to {to}", author=author)
    change.based_on.update(pins)
    change.dry_run = dry_run
    return _write(store, change, audit)


def split(
    store,
    code: str,
    *,
    line=None,
    parts: int | None = None,
    weights: dict | None = None,
    version: int | None = None,
    author: str = "",
    seed: int = 0,
    assign: Mapping[str, list[str]] | None = None,
    audit: dict | None = None,
    dry_run: bool = False,
) -> Revision:
    """Split a grid along a drawn line, or into ``parts`` grids of equal workload.

    Along a line (lon/lat, crossing the grid from edge to edge) every child
    must fall on one side: a line through a building or courtyard is refused
    with the children named. Into N parts, the grid's children are grouped
    by the rebalancer (contiguous, workload within 5% where the atoms
    allow). The part with the most households keeps the code and the staff;
    the others are new grids, flagged until staff are assigned: ``assign``
    (new code → staff ids, the codes a dry run answers) puts people on them
    in the same revision. ``version`` is the grid's version the planner saw
    (a newer one is a conflict).
    """
    (code,) = checked_codes([code])
    if (line is None) == (parts is None):
        raise InputError(say("problem_split_how"))
    level = level_of_code(code)
    if level is Level.COMMUNITY:
        raise InputError(say("problem_split_community"))
    now = current_state(store, code[:12])
    grids = now.grids.set_index("code")
    if code not in grids.index:
        raise NotFoundError(say("problem_no_grid", code=code))
    pins = _pinned(store, now, None if version is None else {code: version})
    children = children_of(now.grids, [code])
    if line is not None:
        if isinstance(line, str):
            line = shapely.from_wkt(line)
        if line is not None and line.geom_type in ("LineString", "MultiLineString"):
            # a corner drawn by hand within ~2 m of a corner of the grid or of a child
            # takes it, so a line drawn along the edges between courtyards follows them
            edges = shapely.boundary(
                np.r_[[grids.loc[code, "geometry"]], children.geometry.to_numpy()]
            )
            line = shapely.snap(line, shapely.union_all(edges), SNAP_LINE_DEGREES)
        pieces = _cut(grids.loc[code, "geometry"], line)
        labels = {}
        if len(children):
            geoms, crs = metric(np.r_[children.geometry.to_numpy(), pieces])
            kids, cut = geoms[: len(children)], geoms[len(children) :]
            share = shapely.area(shapely.intersection(kids[:, None], cut[None, :]))
            whole = shapely.area(kids)
            inside = share >= whole[:, None] - np.maximum(0.05, 1e-6 * whole[:, None])
            crossing = children.loc[~inside.any(axis=1), "code"].tolist()
            if crossing:
                said = say("problem_split_cuts", codes=listing(crossing))
                raise TopologyError(said, [{"kind": "cut", "codes": crossing, "detail": said}])
            labels = dict(zip(children["code"], inside.argmax(axis=1).tolist(), strict=True))
        geometry = dict(enumerate(pieces))
        counts = (
            pd.Series(
                [grids.loc[c, "households"] for c in children["code"]],
                index=[labels[c] for c in children["code"]],
                dtype="int64",
            )
            .groupby(level=0)
            .sum()
            if len(children)
            else pd.Series(dtype="int64")
        )
        keeper = (
            int(counts.idxmax())
            if len(counts) and counts.max() > 0
            else int(
                np.argmax(
                    shapely.area(
                        project(np.asarray(pieces), local_metric_crs(*pieces[0].centroid.coords[0]))
                    )
                )
            )
        )
    else:
        from gis_grid.planning.rebalance import partition_atoms

        if not len(children):
            raise InputError(
                say(
                    "problem_split_nothing",
                    code=code,
                    below=Level(level + 1).key,
                    below_zh=Level(level + 1).zh,
                    parts=parts,
                )
            )
        result = partition_atoms(
            store, now, grids.loc[code, "geometry"], [code], int(parts), weights=weights, seed=seed
        )
        labels, geometry = result.labels, result.geometry
        counts = pd.Series(result.loads)
        keeper = int(counts.idxmax())
    plan = Regroup(
        roots=[code],
        labels=labels,
        geometry=geometry,
        keep={k: (code if k == keeper else None) for k in geometry},
    )
    summary = f"split {code} " + (f"into {parts} parts" if parts else "along a line")
    change = build(now, plan, "split", summary=summary, author=author)
    change.based_on.update(pins)
    if assign:
        change.assignments = _assigned(store, change, assign)
    change.dry_run = dry_run
    return _write(store, change, audit)


def _assigned(store, change: Rewrite, assign: Mapping[str, list[str]]) -> pd.DataFrame:
    """The change's assignments with people put on its new grids (from today, their role)."""
    import datetime as dt

    width = len(change.remove[0])
    new = set(change.grids.loc[change.grids["code"].str.len() == width, "code"])
    wrong = sorted(set(assign) - new)
    if wrong:
        raise InputError(
            say("problem_assign_code", codes=", ".join(wrong), new=", ".join(sorted(new)))
        )
    ids = sorted({s for people in assign.values() for s in people})
    known = store.staff(ids) if ids else pd.DataFrame(columns=["staff_id", "role"])
    missing = sorted(set(ids) - set(known["staff_id"]))
    if missing:
        raise NotFoundError(say("problem_no_staff_member", staff_id=", ".join(missing)))
    role = dict(zip(known["staff_id"], known["role"], strict=True))
    today = dt.date.today().isoformat()
    rows = [
        {"staff_id": s, "grid_code": c, "role": role[s], "start_date": today, "end_date": None}
        for c, people in assign.items()
        for s in people
    ]
    return pd.concat([change.assignments, pd.DataFrame(rows)], ignore_index=True).drop_duplicates(
        ["staff_id", "grid_code"]
    )


def _cut(polygon, line) -> list:
    """The pieces of a polygon on either side of a line (lon/lat); at least two or refused."""
    if isinstance(line, str):
        line = shapely.from_wkt(line)
    if line is None or line.geom_type not in ("LineString", "MultiLineString"):
        raise InputError(say("problem_split_line"))
    pieces = shapely.get_parts(
        shapely.polygonize(shapely.get_parts(shapely.union(polygon.boundary, line)))
    )
    inside = shapely.area(shapely.intersection(pieces, polygon)) > 0.5 * shapely.area(pieces)
    pieces = pieces[inside]
    if len(pieces) < 2:
        raise InputError(say("problem_split_cross"))
    return list(pieces)


def redraw(
    store,
    code: str,
    geometry,
    *,
    version: int | None = None,
    author: str = "",
    take: bool = True,
    dry_run: bool = False,
    audit: dict | None = None,
) -> Revision:
    """Give a grid a new outline; siblings give up or take the ground in between.

    Siblings the new outline reaches into lose that part (with ``take=False``
    such an overlap is refused instead, naming each sibling and the m²);
    ground the grid gives up goes, piece by piece, to the sibling sharing most
    edge with it (where siblings must tile their parent) or back to the
    parent. Children must stay inside their grid: a redraw across a building
    is refused. ``dry_run`` checks everything the store would and writes
    nothing (the revision answered has id 0).
    """
    now, code, geometry = _redraw_input(store, code, geometry, version)
    grids = now.grids.set_index("code")
    level = level_of_code(code)
    siblings = _siblings(now, code)
    old_ll, sib_ll = grids.loc[code, "geometry"], siblings.geometry.to_numpy()
    # vertices drawn within ~1 cm of an existing edge or corner take it exactly, so an
    # edge the planner did not move stays the very edge the neighbours share
    reference = shapely.union_all(shapely.boundary(np.r_[[old_ll], sib_ll]))
    geometry = shapely.snap(geometry, reference, SNAP_DEGREES)
    if not shapely.is_valid(geometry):
        raise InputError(say("problem_outline_invalid", why=shapely.is_valid_reason(geometry)))
    geoms, crs = metric(np.r_[[old_ll, geometry], sib_ll])
    old_m, new_m, sib_m = geoms[0], geoms[1], geoms[2:]
    if not take and len(sib_m):
        overlap = shapely.area(shapely.intersection(sib_m, new_m, grid_size=GRID))
        if (overlap > 0.1).any():
            hit = [(c, a) for c, a in zip(siblings["code"], overlap, strict=True) if a > 0.1]
            raise TopologyError(
                say(
                    "problem_outline_overlaps",
                    code=code,
                    named=", ".join(f"{c} by {a:,.0f} m²" for c, a in hit),
                    named_zh="、".join(f"{c} {a:,.0f} 平方米" for c, a in hit),
                )
            )
    if shapely.hausdorff_distance(old_m, new_m, densify=0.25) < SAME_M:
        # its own outline (within 2 cm): nothing moves, so nothing is written
        roots, geometry_ll = [code], {code: old_ll}
    else:
        new_m = shapely.set_precision(new_m, GRID)
        new_sib = shapely.difference(sib_m, new_m, grid_size=GRID) if len(sib_m) else sib_m
        released = shapely.difference(old_m, new_m, grid_size=GRID)
        if level.tiles_parent and shapely.area(released) > 0.1:
            for piece in shapely.get_parts(released):
                if shapely.area(piece) <= 0.1 or piece.geom_type != "Polygon":
                    continue
                edge = shapely.length(
                    shapely.intersection(piece.boundary, shapely.boundary(new_sib))
                )
                if not len(edge) or edge.max() <= 0:
                    raise TopologyError(
                        say("problem_outline_gap", code=code, area=f"{shapely.area(piece):.0f}")
                    )
                j = int(np.argmax(edge))
                new_sib[j] = shapely.union(new_sib[j], piece, grid_size=GRID)
        # a sibling changes only where the outline really reached it: snapping to the
        # 1 mm grid alone must not rewrite (and bump the versions of) every sibling
        changed = (
            shapely.hausdorff_distance(new_sib, sib_m, densify=0.25) >= SAME_M
            if len(sib_m)
            else np.zeros(0, bool)
        )
        roots = [code, *siblings.loc[changed, "code"]]
        # back in lon/lat, every corner that did not move takes its stored coordinates
        # again (and a drawn one the planner's), so edges no one moved stay the very
        # edges the neighbours share instead of drifting by the round trip
        exact = shapely.union_all(
            shapely.boundary(np.r_[[old_ll, geometry], sib_ll]), grid_size=None
        )
        geometry_ll = {code: _restored(new_m, crs, exact)}
        for c, g in zip(siblings.loc[changed, "code"], new_sib[changed], strict=True):
            if g.is_empty:
                raise TopologyError(say("problem_outline_swallows", code=code, other=c))
            geometry_ll[c] = _restored(g, crs, exact)
    children = children_of(now.grids, roots)
    plan = Regroup(
        roots=roots,
        labels={c: c[: len(code)] for c in children["code"]},
        geometry=geometry_ll,
        keep={r: r for r in roots},
    )
    change = build(now, plan, "redraw", summary=f"redraw {code}", author=author)
    if version is not None:
        change.based_on[code] = int(version)
    change.dry_run = dry_run
    return _write(store, change, audit)


def check_redraw(
    store, code: str, geometry, *, version: int | None = None, take: bool = True
) -> dict:
    """What a planner sees while drawing: the problems of a new outline, nothing saved.

    Answers ``{"ok", "problems": [{"kind", "message", "codes", "geometry"}],
    "changes": {...}}``; overlaps with siblings carry their shape (lon/lat
    GeoJSON) so a map can draw them. Any refusal :func:`redraw` would give
    (a cut building, a gap, a stale version …) is one problem.
    """
    from gis_grid.domain.errors import GisGridError, TopologyError

    problems: list[dict] = []
    try:
        now, code, geometry = _redraw_input(store, code, geometry, version)
        siblings = _siblings(now, code)
        if not take and len(siblings):
            cut = shapely.intersection(siblings.geometry.to_numpy(), geometry)
            cut_m, _ = metric(cut)
            for c, piece, area in zip(siblings["code"], cut, shapely.area(cut_m), strict=True):
                if area > 0.1:
                    problems.append(
                        {
                            "kind": "overlap",
                            "message": f"overlaps {c} by {area:,.0f} m²",
                            "codes": [code, c],
                            "area_m2": round(float(area), 1),
                            "geometry": shapely.geometry.mapping(piece),
                        }
                    )
        if not problems:
            revision = redraw(store, code, geometry, version=version, take=take, dry_run=True)
            return {
                "ok": True,
                "problems": [],
                "changes": {"updated": revision.updated, "inserted": revision.inserted},
            }
    except TopologyError as exc:  # each problem the edit would leave, as its own record
        for r in exc.detail or [{"kind": "topology", "detail": exc.message, "codes": [code]}]:
            problems.append(
                {
                    "kind": str(r.get("kind")),
                    "message": str(r.get("detail") or exc.message),
                    "codes": [str(c) for c in (r.get("codes") or [code])],
                    "area_m2": _area(r.get("area_m2")),
                    "geometry": None,
                }
            )
    except GisGridError as exc:
        codes = (exc.detail or {}).get("codes") if isinstance(exc.detail, dict) else None
        problems.append(
            {
                "kind": type(exc).__name__,
                "message": str(exc),
                "codes": [str(c) for c in (codes or [code])],
                "area_m2": None,
                "geometry": None,
            }
        )
    return {"ok": False, "problems": problems, "changes": {}}


def _area(value) -> float | None:
    """A problem's area in m² for JSON: rounded, None where none applies (NaN)."""
    try:
        area = float(value)
    except (TypeError, ValueError):
        return None
    return round(area, 1) if area == area else None


def _redraw_input(store, code: str, geometry, version: int | None):
    """The community's state, the checked code and the checked outline of a redraw."""
    (code,) = checked_codes([code])
    now = current_state(store, code[:12])
    grids = now.grids.set_index("code")
    if code not in grids.index:
        raise NotFoundError(say("problem_no_grid", code=code))
    if version is not None and int(grids.loc[code, "version"]) != int(version):
        raise _stale(store, code[:12], {code: (int(version), int(grids.loc[code, "version"]))})
    if isinstance(geometry, str):
        geometry = shapely.from_wkt(geometry)
    if geometry is None or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(say("problem_outline_polygon"))
    check_lonlat(np.array([geometry], dtype=object))  # swapped or projected numbers, named
    if not shapely.is_valid(geometry):
        raise InputError(say("problem_outline_invalid", why=shapely.is_valid_reason(geometry)))
    return now, code, geometry


def _siblings(now: State, code: str) -> gpd.GeoDataFrame:
    """The other grids under the same parent (none for a community)."""
    return now.grids.loc[
        (now.grids["code"].str.len() == len(code))
        & (now.grids["code"] != code)
        & (now.grids["code"].str.startswith(parent_code(code)) if len(code) > 12 else False)
    ].reset_index(drop=True)


def _write(store, change: Rewrite, audit: dict | None = None) -> Revision:
    """Write a change (audited in its transaction when ``audit`` says who asked)."""
    change.audit = audit
    return store.rewrite(change)

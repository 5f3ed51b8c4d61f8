"""Versioned boundaries: every boundary change is one revision that can be undone.

A boundary operation (split, merge, move, redraw, rebalance, undo, restore)
becomes a :class:`Rewrite`: *these subtrees go, these grids take their
place*. The store calls :func:`plan_rewrite` inside its write transaction
with the current state of the community; the plan keeps every grid whose row
did not change exactly as it was (same code, same version), bumps the version
of grids that changed, refuses the rewrite when it would leave an overlap, a
new gap, a child outside its parent or an orphan, flags grids left without
staff, and says what the revision must remember to be reversed.

A revision remembers the rows it replaced (``before``) and the codes it wrote
(``after_codes``), likewise for assignments. That is enough to walk back from
the current state to the state after any earlier revision
(:func:`state_at`), and so to undo, restore and compare (:func:`diff`)
without keeping full snapshots. The idea is mapit's generations
(``generation_low/high``): nothing is ever edited destructively.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import ConflictError, InputError, NotFoundError
from gis_grid.domain.messages import say, words
from gis_grid.domain.model import (
    AGGREGATES,
    ASSIGNMENT_COLUMNS,
    CODE_LENGTHS,
    GRID_COLUMNS,
    Level,
    rollup,
)
from gis_grid.geo.crs import WGS84
from gis_grid.grids.topology import ValidationOptions, validate
from gis_grid.store.checks import (
    ALWAYS_BLOCKING,
    TOPOLOGY_BLOCKING,
    listing,
    neighbours_of,
    normalise_assignments,
    normalise_grids,
    refuse,
)

#: A rewrite may not grow the uncovered part of a tiled parent by more than this (m²).
GAP_GROWTH_M2 = 1.0


@dataclass
class Rewrite:
    """One boundary change: replace whole subtrees of one community.

    Attributes
    ----------
    remove : list of str
        Codes whose grids, with everything below them, are replaced.
    grids : geopandas.GeoDataFrame
        The grids that take their place (``code``, ``name``, aggregates of the
        deepest grids, geometry in EPSG:4326): complete subtrees whose roots
        are the removed codes or new siblings of them.
    assignments : pandas.DataFrame, optional
        The assignments of the new grids (they replace every assignment of
        the removed grids); None keeps the assignments of codes that survive
        and drops the rest.
    operation : str
        What the planner did (``split``, ``merge``, ``move``, ``redraw``,
        ``rebalance``, ``undo``, ``restore``), recorded with the revision.
    based_on : dict, optional
        Code → version the change was computed from; a grid changed since
        makes the rewrite raise :class:`~gis_grid.domain.errors.ConflictError`.
    """

    remove: list[str]
    grids: gpd.GeoDataFrame
    assignments: pd.DataFrame | None = None
    operation: str = "edit"
    summary: str = ""
    author: str = ""
    based_on: dict[str, int] | None = None
    undoes: int | None = None
    #: Check only: the store plans and validates the change, writes nothing and
    #: answers with the revision it would have written (id 0).
    dry_run: bool = False
    #: Who asked, through what (``user_id``, ``role``, ``action``, ``target``,
    #: ``detail``): recorded in the audit log in the change's own transaction.
    audit: dict | None = None


@dataclass
class Plan:
    """What a store writes for a :class:`Rewrite` (see :func:`plan_rewrite`)."""

    community: str
    deleted: gpd.GeoDataFrame  # old rows that go
    updated: gpd.GeoDataFrame  # new rows (same code, version + 1)
    inserted: gpd.GeoDataFrame  # new rows with new codes
    replaced: gpd.GeoDataFrame  # old rows of deleted and updated codes (to history)
    assignments: pd.DataFrame  # the assignments of every code the rewrite touched, after
    assignment_codes: list[str]  # codes whose assignments are replaced
    before_assignments: pd.DataFrame
    warnings: gpd.GeoDataFrame

    @property
    def after_codes(self) -> list[str]:
        """Codes the rewrite writes (changed or new)."""
        return sorted([*self.updated["code"], *self.inserted["code"]])

    @property
    def unchanged(self) -> bool:
        """Whether the rewrite changes nothing at all."""
        return not (len(self.deleted) or len(self.updated) or len(self.inserted)) and (
            self.before_assignments.sort_values(list(ASSIGNMENT_COLUMNS))
            .reset_index(drop=True)
            .equals(self.assignments.sort_values(list(ASSIGNMENT_COLUMNS)).reset_index(drop=True))
        )


def under_roots(codes: pd.Series, roots: Iterable[str]) -> np.ndarray:
    """Whether each code lies in the subtree of one of ``roots``."""
    roots = tuple(roots)
    if not roots:
        return np.zeros(len(codes), bool)
    return codes.astype(str).str.startswith(roots).to_numpy()


def same_grid_rows(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> np.ndarray:
    """Row by row: whether two aligned grid rows are the same grid (name, counts, shape)."""
    same = old["name"].to_numpy() == new["name"].to_numpy()
    for col in AGGREGATES:
        same &= old[col].to_numpy() == new[col].to_numpy()
    return same & shapely.equals_exact(old.geometry.to_numpy(), new.geometry.to_numpy(), 1e-9)


def check_undone(rewrite: Rewrite, latest: int | None) -> None:
    """Refuse an undo whose revision is no longer the community's latest (read in the write).

    Two planners undoing at once: the second undo would otherwise revert the
    first planner's change instead of its own.
    """
    if rewrite.undoes is not None and latest != rewrite.undoes:
        raise ConflictError(
            say("problem_undo_overtaken", revision=rewrite.undoes, latest=latest),
            detail={"latest": latest},
        )


def plan_rewrite(
    rewrite: Rewrite,
    current: gpd.GeoDataFrame,
    assignments: pd.DataFrame,
    *,
    last_versions: Callable[[list[str]], dict[str, int]] = lambda codes: {},
    options: ValidationOptions | None = None,
    neighbours: Callable[[tuple[float, float, float, float]], gpd.GeoDataFrame] | None = None,
) -> Plan:
    """Check a rewrite against the community it changes and work out what to write.

    Parameters
    ----------
    rewrite : Rewrite
    current : geopandas.GeoDataFrame
        Every grid of the community, read inside the write transaction.
    assignments : pandas.DataFrame
        Every assignment of the community's grids.
    last_versions : callable
        Codes → the last version each had in the history (new grids reusing
        an old code continue its numbering).
    neighbours : callable, optional
        Lon/lat box → the other communities there, so a community outline
        redrawn over a neighbour is refused (see :class:`~gis_grid.store.checks.Existing`).

    Raises
    ------
    NotFoundError, ConflictError, InputError, GeometryError, OrphanError,
    DuplicateCodeError, TopologyError
    """
    roots = sorted({str(c) for c in rewrite.remove})
    if not roots:
        raise InputError(say("problem_rewrite_roots"))
    communities = {r[: CODE_LENGTHS[Level.COMMUNITY]] for r in roots}
    if len(communities) != 1:
        raise InputError(say("problem_rewrite_communities", codes=", ".join(sorted(communities))))
    (community,) = communities
    known = set(current["code"])
    missing = [r for r in roots if r not in known]
    if missing:
        raise NotFoundError(say("problem_no_such_grids", codes=listing(missing)))
    if rewrite.based_on:
        versions = current.set_index("code")["version"]
        changed = [
            (c, v)
            for c, v in sorted(rewrite.based_on.items())
            if c not in versions.index or int(versions[c]) != int(v)
        ]
        stale = [
            f"{c} (planned on version {v}, now {int(versions[c])})"
            if c in versions.index
            else f"{c} (gone)"
            for c, v in changed
        ]
        stale_zh = [
            f"{c}（按第 {v} 版规划，现为第 {int(versions[c])} 版）" if c in versions.index
            else f"{c}（已不存在）"
            for c, v in changed
        ]  # fmt: skip
        if stale:
            raise ConflictError(
                say("problem_plan_stale", listing=listing(stale), listing_zh=listing(stale_zh)),
                detail={"codes": [s.split(" ")[0] for s in stale]},
            )

    old_mask = under_roots(current["code"], roots)
    old = current.loc[old_mask].reset_index(drop=True)
    kept = current.loc[~old_mask]
    if len(rewrite.grids):
        derived = ["version", "level", "parent_code", "updated_at"]
        new = normalise_grids(rewrite.grids.drop(columns=derived, errors="ignore"))
    else:
        new = normalise_grids(
            gpd.GeoDataFrame({"code": pd.Series(dtype=str)}, geometry=[], crs=WGS84)
        )
    stray = new.loc[new["code"].str.slice(0, 12) != community, "code"]
    if len(stray):
        raise InputError(say("problem_rewrite_stray", community=community, codes=listing(stray)))
    dup = new["code"][new["code"].duplicated()]
    if len(dup):
        from gis_grid.domain.errors import DuplicateCodeError

        raise DuplicateCodeError(say("problem_change_twice", codes=listing(dup.unique())))
    clash = new["code"][new["code"].isin(kept["code"])]
    if len(clash):
        from gis_grid.domain.errors import DuplicateCodeError

        raise DuplicateCodeError(say("problem_change_clash", codes=listing(clash)))

    # the community after the change, with its workload summed upward
    state = pd.concat([kept, new], ignore_index=True)
    state = gpd.GeoDataFrame(state, geometry="geometry", crs=WGS84)
    rolled = rollup(state)
    for col in AGGREGATES:
        state[col] = rolled[col].to_numpy()
    new = state.iloc[len(kept) :].reset_index(drop=True)

    both = new["code"].isin(old["code"]).to_numpy()
    prev = old.set_index("code").loc[new.loc[both, "code"]].reset_index()
    same = np.zeros(len(new), bool)
    same[both] = same_grid_rows(prev, new.loc[both].reset_index(drop=True))
    updated = new.loc[both & ~same].reset_index(drop=True)
    updated["version"] = (
        old.set_index("code").loc[updated["code"], "version"].to_numpy().astype("int64") + 1
    )
    inserted = new.loc[~both].reset_index(drop=True)
    last = last_versions(inserted["code"].tolist()) if len(inserted) else {}
    inserted["version"] = [int(last.get(c, 0)) + 1 for c in inserted["code"]]
    deleted = old.loc[~old["code"].isin(new["code"])].reset_index(drop=True)
    replaced = old.loc[
        old["code"].isin(deleted["code"]) | old["code"].isin(updated["code"])
    ].reset_index(drop=True)

    # assignments: those of the replaced subtrees make way for the new ones
    touched = sorted(set(old["code"]) | set(new["code"]))
    a_codes = assignments["grid_code"].astype(str)
    before_assignments = assignments.loc[a_codes.isin(touched)].reset_index(drop=True)
    if rewrite.assignments is None:
        after_assignments = before_assignments.loc[
            before_assignments["grid_code"].isin(new["code"])
        ].reset_index(drop=True)
    else:
        after_assignments = (
            normalise_assignments(rewrite.assignments)
            if len(rewrite.assignments)
            else before_assignments.iloc[0:0]
        )
        unknown = after_assignments.loc[~after_assignments["grid_code"].isin(new["code"])]
        if len(unknown):
            codes = listing(unknown["grid_code"].unique())
            raise InputError(say("problem_change_assignments", codes=codes))
    after_assignments = after_assignments[list(ASSIGNMENT_COLUMNS)].drop_duplicates(
        ["staff_id", "grid_code", "role", "start_date"]
    )

    # the checks: problems of the changed grids in the community as it would be
    changed = set(updated["code"]) | set(inserted["code"])
    parents_of_deleted = {
        c[: CODE_LENGTHS[Level(len_level(c) - 1)]] for c in deleted["code"] if len(c) > 12
    }
    parents_of_deleted &= set(state["code"])
    involved = changed | parents_of_deleted
    all_assignments = pd.concat(
        [assignments.loc[~a_codes.isin(touched)], after_assignments], ignore_index=True
    )
    opts = options or ValidationOptions()
    near = neighbours_of(new, neighbours)
    checked = state[["code", "geometry"]]
    if near is not None:
        near = near.loc[~near["code"].isin(state["code"]), ["code", "geometry"]]
        checked = pd.concat([near, checked], ignore_index=True)
    after = validate(checked, all_assignments, opts)
    after = after.loc[after["codes"].map(lambda cs: any(c in involved for c in cs))]
    blocking = after.loc[after["kind"].isin(set(ALWAYS_BLOCKING) | TOPOLOGY_BLOCKING)]
    gaps = after.loc[after["kind"] == "gap"]
    if len(gaps):  # a gap is refused only where the change made it (or made it bigger)
        before = validate(current[["code", "geometry"]], None, opts)
        had = (
            before.loc[before["kind"] == "gap"]
            .groupby(before.loc[before["kind"] == "gap", "codes"].map(lambda cs: cs[0]))["area_m2"]
            .sum()
        )
        has = gaps.groupby(gaps["codes"].map(lambda cs: cs[0]))["area_m2"].sum()
        grown = has[has > had.reindex(has.index).fillna(0) + GAP_GROWTH_M2].index
        blocking = pd.concat([blocking, gaps.loc[gaps["codes"].map(lambda cs: cs[0]).isin(grown)]])
    refuse(blocking, rewrite.operation, "nothing was changed")
    warnings = after.loc[~after.index.isin(blocking.index) & (after["kind"] != "gap")]
    plan = Plan(
        community=community,
        deleted=deleted,
        updated=updated,
        inserted=inserted,
        replaced=replaced,
        assignments=after_assignments.reset_index(drop=True),
        assignment_codes=touched,
        before_assignments=before_assignments,
        warnings=warnings.reset_index(drop=True),
    )
    if plan.unchanged:
        raise InputError(
            say(
                "problem_change_nothing",
                operation=rewrite.operation,
                operation_zh=words("messages", f"op_{rewrite.operation}", "zh"),
            )
        )
    return plan


def len_level(code: str) -> int:
    """The level value of a code from its length (no checks: codes here are checked)."""
    return {n: lv.value for lv, n in CODE_LENGTHS.items()}[len(code)]


# -- what a revision remembers --------------------------------------------------


@dataclass
class Payload:
    """What a revision must remember to be reversed."""

    before: gpd.GeoDataFrame
    after_codes: list[str]
    before_assignments: pd.DataFrame
    assignment_codes: list[str]


def _grid_rows(grids: gpd.GeoDataFrame) -> dict:
    rows = {
        c: grids[c].astype(object).where(grids[c].notna(), None).map(plain_value).tolist()
        for c in GRID_COLUMNS
        if c in grids.columns
    }
    rows["wkb"] = shapely.to_wkb(grids.geometry.to_numpy(), hex=True).tolist() if len(grids) else []
    return rows


def _grid_frame(rows: dict) -> gpd.GeoDataFrame:
    rows = dict(rows)
    wkb = rows.pop("wkb")
    geoms = shapely.from_wkb(np.asarray(wkb, dtype=object)) if len(wkb) else []
    frame = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=gpd.GeoSeries(geoms, crs=WGS84))
    return typed_grids(frame)


def _assignment_rows(a: pd.DataFrame | None) -> dict | None:
    if a is None:
        return None
    return {
        c: a[c].astype(object).where(a[c].notna(), None).map(plain_value).tolist()
        for c in ASSIGNMENT_COLUMNS
        if c in a.columns
    }


def _zip(doc: dict) -> bytes:
    return zlib.compress(json.dumps(doc, ensure_ascii=False).encode(), 6)


def _unzip(blob: bytes) -> dict:
    return json.loads(zlib.decompress(bytes(blob)).decode())


def pack(payload: Payload) -> bytes:
    """Serialise a payload compactly (zlib-compressed JSON, geometry as WKB hex)."""
    return _zip(
        {
            "before": _grid_rows(payload.before),
            "after_codes": list(payload.after_codes),
            "before_assignments": _assignment_rows(payload.before_assignments),
            "assignment_codes": list(payload.assignment_codes),
        }
    )


def plain_value(value):
    """A value as JSON keeps it: dates as ISO text, numpy integers as int."""
    if value is None:
        return None
    if isinstance(value, dt.date | pd.Timestamp):
        return value.isoformat()[:10]
    if isinstance(value, np.integer):
        return int(value)
    return value


def unpack(blob: bytes) -> Payload:
    """Read back what :func:`pack` wrote."""
    doc = _unzip(blob)
    a = pd.DataFrame(doc["before_assignments"], columns=list(ASSIGNMENT_COLUMNS))
    return Payload(_grid_frame(doc["before"]), doc["after_codes"], a, doc["assignment_codes"])


def pack_rewrite(rewrite: Rewrite) -> bytes:
    """Serialise a planned rewrite (a proposal waiting to be accepted)."""
    return _zip(
        {
            "remove": list(rewrite.remove),
            "grids": _grid_rows(rewrite.grids),
            "assignments": _assignment_rows(rewrite.assignments),
            "operation": rewrite.operation,
            "summary": rewrite.summary,
            "based_on": rewrite.based_on,
        }
    )


def unpack_rewrite(blob: bytes) -> Rewrite:
    """Read back what :func:`pack_rewrite` wrote."""
    doc = _unzip(blob)
    a = doc["assignments"]
    return Rewrite(
        remove=doc["remove"],
        grids=_grid_frame(doc["grids"]),
        assignments=None if a is None else pd.DataFrame(a, columns=list(ASSIGNMENT_COLUMNS)),
        operation=doc["operation"],
        summary=doc["summary"],
        based_on=doc["based_on"],
    )


def typed_grids(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The grid columns present and the counts and version as int64."""
    for col in GRID_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="int64" if col in (*AGGREGATES, "version") else object)
    for col in (*AGGREGATES, "version"):
        frame[col] = pd.to_numeric(frame[col]).fillna(0).astype("int64")
    return frame


def payload_of(plan: Plan) -> Payload:
    """What the revision of a planned rewrite must remember."""
    return Payload(
        before=plan.replaced,
        after_codes=plan.after_codes,
        before_assignments=plan.before_assignments,
        assignment_codes=plan.assignment_codes,
    )


# -- revisions of plain writes ----------------------------------------------------


def empty_grids() -> gpd.GeoDataFrame:
    """A grid table with the stored columns and no rows."""
    return typed_grids(gpd.GeoDataFrame({"code": pd.Series(dtype=object)}, geometry=[], crs=WGS84))


def write_payloads(
    grids: gpd.GeoDataFrame | None,
    assignments: pd.DataFrame | None,
    before_assignments: pd.DataFrame,
    replaced: gpd.GeoDataFrame | None = None,
) -> dict[str, Payload]:
    """One payload per community for an import (``apply``) or an edit (``update``).

    ``grids`` are the rows written, ``replaced`` the rows they replaced (edits
    only); ``assignments`` the assignments added and ``before_assignments``
    the assignments their grids had before.
    """
    grid_codes = pd.Series([] if grids is None else grids["code"].tolist(), dtype=object)
    a_codes = pd.Series(
        [] if assignments is None else assignments["grid_code"].astype(str).unique().tolist(),
        dtype=object,
    )
    out = {}
    for community in sorted({c[:12] for c in [*grid_codes, *a_codes]}):
        mine = grid_codes[grid_codes.str.startswith(community)].tolist()
        a_mine = a_codes[a_codes.str.startswith(community)].tolist()
        before = empty_grids()
        if replaced is not None:
            before = replaced.loc[replaced["code"].str.startswith(community)].reset_index(drop=True)
        out[community] = Payload(
            before=before,
            after_codes=mine,
            before_assignments=before_assignments.loc[
                before_assignments["grid_code"].isin(a_mine)
            ].reset_index(drop=True),
            assignment_codes=a_mine,
        )
    return out


@dataclass
class Revision:
    """What a boundary change wrote, as recorded in the store's revision log."""

    id: int
    community: str
    operation: str
    deleted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)
    #: Problems that did not block the change (grids left without staff).
    warnings: gpd.GeoDataFrame | None = None
    #: The change itself (its new grids and assignments): what a preview draws.
    change: Rewrite | None = field(default=None, repr=False, compare=False)

    @property
    def changed(self) -> int:
        """How many grids the revision removed, changed or added."""
        return len(self.deleted) + len(self.updated) + len(self.inserted)

    @classmethod
    def of(cls, rid: int, plan: Plan, change: Rewrite) -> Revision:
        """The revision a store wrote (or, with id 0, would write) for a plan."""
        return cls(
            id=rid,
            community=plan.community,
            operation=change.operation,
            deleted=plan.deleted["code"].tolist(),
            updated=plan.updated["code"].tolist(),
            inserted=plan.inserted["code"].tolist(),
            warnings=plan.warnings,
            change=change,
        )


class DryRun(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside a store's transaction to roll a checked change back."""

    def __init__(self, revision: Revision) -> None:
        super().__init__("dry run")
        self.revision = revision

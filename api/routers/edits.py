"""Boundary operations over HTTP, for planners and admins; each one audited.

Every route answers with the revision written (or the proposal made) and
records who did it, when, and what it changed in the audit log. Refusals
(overlaps, cut buildings, stale versions …) are problem documents and change
nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from api.auth import User, UserDep
from api.deps import SettingsDep, StoreDep
from gis_grid.domain.errors import InputError, TooLargeError
from gis_grid.domain.messages import say
from gis_grid.tables import records

router = APIRouter(tags=["edits"])


#: Code → the version of that grid the change was made on (``GET /grids/{code}`` gives it).
Versions = Annotated[
    dict[str, Annotated[int, Field(ge=1)]],
    Field(min_length=1, examples=[{"211281001007006": 1, "211281001007007": 1}]),
]


class MergeRequest(BaseModel):
    """Grids to merge (adjacent siblings), the version of each you saw, and a name (optional).

    A grid changed by someone else since its version is a conflict (409), so
    no planner's change is silently overwritten.
    """

    codes: list[str] = Field(min_length=2, examples=[["211281001007006", "211281001007007"]])
    versions: Versions
    name: str | None = None
    keep_staff: list[str] | None = Field(
        None, description="Who keeps the merged grid (default: everyone on the merged grids)."
    )


class SplitRequest(BaseModel):
    """A GeoJSON LineString (lon/lat) crossing the grid, or a number of parts."""

    line: dict[str, Any] | None = Field(
        None,
        examples=[{"type": "LineString", "coordinates": [[123.566, 42.446], [123.566, 42.452]]}],
    )
    parts: int | None = Field(None, ge=2, le=100)
    weights: str | None = Field(None, examples=["households=1,incidents=0.2"])
    version: int = Field(ge=1, description="The grid's version the split was made on.")
    assign: dict[str, list[str]] | None = Field(
        None,
        description="Who takes each new grid: its code (as a preview answers) → staff ids.",
        examples=[{"211281001007009": ["S0000012"]}],
    )


class MoveRequest(BaseModel):
    """Buildings or courtyards to move, the neighbouring grid that takes them, and versions.

    ``versions`` names the version you saw of each atom and of the target.
    """

    atoms: list[str] = Field(min_length=1, examples=[["211281001007002004"]])
    to: str = Field(examples=["211281001007003"])
    versions: Versions  # of the atoms and the target, as you saw them


class OutlineRequest(BaseModel):
    """A new outline (GeoJSON Polygon, lon/lat) and the version it was drawn on.

    ``take``: siblings give up the ground the outline reaches into; without it
    an overlap with a sibling is refused (the planner page's default).
    """

    geometry: dict[str, Any] = Field(
        examples=[
            {
                "type": "Polygon",
                "coordinates": [
                    [[123.56, 42.45], [123.561, 42.45], [123.561, 42.451], [123.56, 42.45]]
                ],
            }
        ]
    )
    version: int = Field(ge=1, description="The grid's version the outline was drawn on.")
    take: bool = True


class UndoRequest(BaseModel):
    """The revision to undo: the community's latest, as you saw it in its log."""

    revision: int = Field(ge=1, examples=[2])


class RebalanceRequest(BaseModel):
    """What to rebalance and how (see ``gis-grid rebalance``)."""

    parent: str = Field(examples=["211281001007"])
    k: int | None = Field(None, ge=1, le=1000)
    weights: str = "households=1"
    tolerance: float = Field(0.05, ge=0, le=1)
    narrow: bool = True


def geometry_of(doc: dict | None, settings, kinds: tuple[str, ...]):
    """A GeoJSON geometry as shapely, of the given kinds and within the vertex cap."""
    if doc is None:
        return None
    try:
        geom = shapely.geometry.shape(doc)
    except Exception as exc:  # shapely raises several kinds on malformed GeoJSON
        raise InputError(say("problem_not_geojson", why=str(exc))) from exc
    if geom.geom_type not in kinds:
        raise InputError(say("problem_geometry_kind", kinds=" or ".join(kinds), got=geom.geom_type))
    n = shapely.get_num_coordinates(geom)
    if n > settings.max_vertices:
        raise TooLargeError(
            say("problem_too_many_vertices", n=f"{n:,}", most=f"{settings.max_vertices:,}")
        )
    return geom


def _audit(user: User, action: str, target: str, request: dict) -> dict:
    """Who asks for what: recorded in the audit log inside the write's own transaction."""
    return {**user.record(), "action": action, "target": target, "detail": {"request": request}}


def _done(revision) -> dict:
    flagged = (
        [
            {"kind": r.kind, "codes": list(r.codes), "detail": r.detail}
            for r in revision.warnings.itertuples()
        ]
        if revision.warnings is not None and len(revision.warnings)
        else []
    )
    return {
        "revision": revision.id,
        "operation": revision.operation,
        "deleted": revision.deleted,
        "updated": revision.updated,
        "inserted": revision.inserted,
        "flagged": flagged,
    }


def _planner(user: User) -> None:
    user.check_role(user.role.edits_boundaries, "change grid boundaries")


@router.post("/grids/merge", summary="Merge adjacent sibling grids")
def merge(body: MergeRequest, store: StoreDep, user: UserDep) -> dict:
    """The merged grid keeps the smallest code and every assignment."""
    from gis_grid.planning.edits import merge as run

    _planner(user)
    audit = _audit(user, "merge", ",".join(body.codes), body.model_dump())
    missing = sorted(set(body.codes) - set(body.versions))
    if missing:
        raise InputError(say("problem_versions_merged", codes=", ".join(missing)))
    return _done(
        run(
            store,
            body.codes,
            name=body.name,
            versions=body.versions,
            keep_staff=body.keep_staff,
            author=user.user_id,
            audit=audit,
        )
    )


@router.post("/grids/{code}/split", summary="Split a grid along a line or into parts")
def split(
    code: str, body: SplitRequest, store: StoreDep, user: UserDep, settings: SettingsDep
) -> dict:
    """Children are never cut; the busier part keeps the code and the staff."""
    from gis_grid.planning.edits import split as run

    _planner(user)
    line = geometry_of(body.line, settings, ("LineString", "MultiLineString"))
    revision = run(
        store,
        code,
        line=line,
        parts=body.parts,
        weights=body.weights,
        version=body.version,
        assign=body.assign,
        author=user.user_id,
        audit=_audit(user, "split", code, body.model_dump()),
    )
    return _done(revision)


@router.post("/grids/move", summary="Move buildings or courtyards to a neighbouring grid")
def move(body: MoveRequest, store: StoreDep, user: UserDep) -> dict:
    """The ground between buildings moves with them."""
    from gis_grid.planning.edits import move as run

    _planner(user)
    audit = _audit(user, "move", body.to, body.model_dump())
    missing = sorted({*body.atoms, body.to} - set(body.versions))
    if missing:
        raise InputError(say("problem_versions_moved", codes=", ".join(missing)))
    return _done(
        run(store, body.atoms, body.to, versions=body.versions, author=user.user_id, audit=audit)
    )


@router.put("/grids/{code}/outline", summary="Redraw a grid's outline")
def outline(
    code: str, body: OutlineRequest, store: StoreDep, user: UserDep, settings: SettingsDep
) -> dict:
    """Neighbours give up or take the ground in between; a stale version is refused (409)."""
    from gis_grid.planning.edits import redraw

    _planner(user)
    geom = geometry_of(body.geometry, settings, ("Polygon", "MultiPolygon"))
    revision = redraw(
        store,
        code,
        geom,
        version=body.version,
        take=body.take,
        author=user.user_id,
        audit=_audit(user, "redraw", code, {"version": body.version, "take": body.take}),
    )
    return _done(revision)


@router.post("/grids/{code}/outline/check", summary="Check a new outline without saving it")
def check_outline(
    code: str, body: OutlineRequest, store: StoreDep, user: UserDep, settings: SettingsDep
) -> dict:
    """The problems the outline would meet (overlaps drawn as GeoJSON), nothing saved.

    What the planner page asks while a boundary is being drawn.
    """
    from gis_grid.planning.edits import check_redraw

    _planner(user)
    geom = geometry_of(body.geometry, settings, ("Polygon", "MultiPolygon"))
    return check_redraw(store, code, geom, version=body.version, take=body.take)


@router.post("/communities/{community}/undo", summary="Undo the latest revision")
def undo(community: str, body: UndoRequest, store: StoreDep, user: UserDep) -> dict:
    """As a new revision; undoing an undo redoes.

    The request names the revision it undoes: when another planner's change
    came after it, the undo is refused (409) instead of reverting theirs.
    """
    from gis_grid.planning.edits import undo as run

    _planner(user)
    audit = _audit(user, "undo", community, {"revision": body.revision})
    return _done(run(store, community, revision=body.revision, author=user.user_id, audit=audit))


@router.post("/communities/{community}/restore", summary="Go back to an earlier revision")
def restore(
    community: str,
    store: StoreDep,
    user: UserDep,
    revision: Annotated[int, Body(embed=True, ge=0)],
) -> dict:
    """The community as it was just after ``revision``, as a new revision."""
    from gis_grid.planning.edits import restore as run

    _planner(user)
    audit = _audit(user, "restore", community, {"revision": revision})
    return _done(run(store, community, revision, author=user.user_id, audit=audit))


@router.post("/rebalance", summary="Propose rebalanced grids")
def rebalance(body: RebalanceRequest, store: StoreDep, user: UserDep) -> dict:
    """Stores a proposal and answers with its metrics; nothing changes until accepted."""
    from gis_grid.planning.rebalance import propose

    _planner(user)
    metrics = propose(
        store,
        body.parent,
        k=body.k,
        weights=body.weights,
        tolerance=body.tolerance,
        narrow=body.narrow,
        author=user.user_id,
        audit=_audit(user, "propose", body.parent, body.model_dump()),
    )
    metrics.pop("_change")
    return metrics


@router.post("/proposals/{pid}/accept", summary="Accept a proposal as a new revision")
def accept(pid: int, store: StoreDep, user: UserDep) -> dict:
    """Refused (409) if its grids changed since it was made."""
    from gis_grid.planning.rebalance import accept as run

    _planner(user)
    audit = _audit(user, "accept", f"proposal {pid}", {"proposal": pid})
    return _done(run(store, pid, author=user.user_id, audit=audit))


@router.post("/proposals/{pid}/discard", summary="Discard a proposal")
def discard(pid: int, store: StoreDep, user: UserDep) -> dict:
    """The proposal stays in the list, marked discarded."""
    from gis_grid.planning.rebalance import discard as run

    _planner(user)
    run(store, pid, audit=_audit(user, "discard", f"proposal {pid}", {"proposal": pid}))
    return {"proposal": pid, "status": "discarded"}


@router.get("/audit", summary="The audit log")
def audit(store: StoreDep, user: UserDep) -> dict:
    """Every write through the API: who, what, when, the revision and what it changed."""
    user.check_role(user.role.value == "admin", "read the audit log")
    frame = store.audit_log()
    return {"audit": records(frame)}

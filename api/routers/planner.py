"""What the planner's page asks while editing: the balance panel, previews, diffs.

``GET /planner/balance`` gives a community's grids of one level with their
workload, deviation from the target, compactness, contiguity and staff.
``POST /planner/preview`` runs a split, merge, move or redraw as a dry run
(the store plans and checks it, then rolls back) and answers with the new
grids and the figures of only the grids that changed, so the panel updates
at once; saving is the edit routes' (:mod:`api.routers.edits`). A
revision's changes (``/communities/{c}/revisions/{id}/changes``) and a
proposal's moved buildings come with their shapes for the map.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import UserDep
from api.deps import SettingsDep, StoreDep
from api.routers.edits import Versions, geometry_of
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.tables import records

router = APIRouter(tags=["planner"])

WeightsQuery = Annotated[
    str,
    Query(
        description="Workload terms: households (and residents, special_care) and any layer's "
        "features of the last 90 days, weighted.",
        examples=["households=1,incidents=0.2"],
    ),
]
#: Panels kept per app (community, level, weights at a grid generation).
PANELS_KEPT = 16
_lock = threading.Lock()


class PreviewRequest(BaseModel):
    """An edit to preview, as the edit routes take it, and the panel's weights.

    ``split``: ``code``, ``line`` (or ``parts``), ``version``;
    ``merge``: ``codes``, ``versions``;
    ``move``: ``atoms``, ``to``, ``versions``;
    ``redraw``: ``code``, ``geometry``, ``version``, ``take``.
    """

    operation: Literal["split", "merge", "move", "redraw"]
    code: str | None = None
    codes: list[str] | None = None
    atoms: list[str] | None = None
    to: str | None = None
    line: dict[str, Any] | None = None
    parts: int | None = Field(None, ge=2, le=100)
    geometry: dict[str, Any] | None = None
    version: int | None = Field(None, ge=1)
    versions: Versions | None = None
    take: bool = True
    weights: str = "households=1"


def panel(request: Request, store, community: str, level: str, weights: str):
    """The app's balance panel of a community and level (built again after a grid write)."""
    from gis_grid.planning.balance import Panel
    from gis_grid.planning.rebalance import parse_weights

    cache = request.app.state.planner_panels
    key = (
        store.grid_generation(),
        store.generation(),
        community,
        level,
        json.dumps(parse_weights(weights), sort_keys=True),
    )
    with _lock:
        found = cache.get(key)
    if found is None:
        found = Panel(store, community, level, weights)
        with _lock:
            if len(cache) >= PANELS_KEPT:
                cache.pop(next(iter(cache)))
            cache[key] = found
    return found


def _planner(user) -> None:
    user.check_role(user.role.edits_boundaries, "change grid boundaries")


@router.get("/planner/balance", summary="A community's grids of one level with their workload")
def balance(
    request: Request,
    store: StoreDep,
    user: UserDep,
    community: Annotated[str, Query(examples=["211281001007"])],
    level: Annotated[Literal["area", "courtyard"], Query()] = "area",
    weights: WeightsQuery = "households=1",
) -> dict:
    """Per grid: households, workload, deviation from its parent's mean (the target).

    Also Polsby–Popper, contiguity and staff; per parent the largest
    deviation; the grids as GeoJSON for the map.
    """
    _planner(user)
    return panel(request, store, community, level, weights).answer()


@router.post("/planner/preview", summary="Preview an edit: its grids and the balance after it")
def preview(
    body: PreviewRequest, request: Request, store: StoreDep, user: UserDep, settings: SettingsDep
) -> dict:
    """Checked by the store exactly as a save would be, then rolled back: nothing is written.

    Refusals (a line through a building, a gap, a stale version …) come back
    as ``problems`` with ``ok`` false, not as an error.
    """
    from gis_grid.domain.model import level_of_code
    from gis_grid.planning import edits

    _planner(user)
    op = body.operation
    target = {"split": body.code, "redraw": body.code, "move": body.to}.get(op)
    if op == "merge":
        target = (body.codes or [None])[0]
    if not target:
        raise InputError(say("problem_preview_what", operation=op))
    level = level_of_code(target)
    the_panel = panel(request, store, target[:12], level.key, body.weights)
    if op == "split":
        line = geometry_of(body.line, settings, ("LineString", "MultiLineString"))

        def run(dry_run):
            return edits.split(
                store,
                body.code,
                line=line,
                parts=body.parts,
                weights=body.weights,
                version=body.version,
                dry_run=dry_run,
            )
    elif op == "merge":

        def run(dry_run):
            return edits.merge(store, body.codes or [], versions=body.versions, dry_run=dry_run)
    elif op == "move":

        def run(dry_run):
            return edits.move(
                store, body.atoms or [], body.to, versions=body.versions, dry_run=dry_run
            )
    else:
        geom = geometry_of(body.geometry, settings, ("Polygon", "MultiPolygon"))
        if not body.take:  # overlaps with siblings come back with their shapes, to be drawn
            checked = edits.check_redraw(store, body.code, geom, version=body.version, take=False)
            if not checked["ok"]:
                return {"ok": False, "problems": checked["problems"], "stale": False, "ms": None}

        def run(dry_run):
            return edits.redraw(
                store, body.code, geom, version=body.version, take=body.take, dry_run=dry_run
            )

    from gis_grid.domain.messages import language_of

    return the_panel.preview(run, language_of(request.headers.get("accept-language")))


@router.get(
    "/communities/{community}/revisions/{revision}/changes",
    summary="What one revision changed, with shapes",
)
def changes(community: str, revision: int, store: StoreDep, user: UserDep) -> dict:
    """The grids it reshaped, removed or added, before and after, and the buildings it moved."""
    from gis_grid.planning.edits import revision_changes

    user.check_role(user.role.reads_everything, "compare revisions")
    found = revision_changes(store, community, revision)
    result = found["diff"]
    return {
        "community": community,
        "revision": revision,
        "before": _geojson(found["before"]),
        "after": _geojson(found["after"]),
        "buildings": _geojson(found["buildings"]),
        "grids": records(result["grids"]),
        "households_moved": result["households_moved"],
        "staff": result["staff"],
        "summary": result["summary"],
    }


@router.get("/planner/proposals/{pid}", summary="A proposal for the map: grids and moved buildings")
def proposal(pid: int, store: StoreDep, user: UserDep) -> dict:
    """The proposal's grids after, the current ones it replaces, the buildings it moves.

    Moved buildings come with their footprints and households; the figures
    (metrics) sit beside the current ones they were measured against.
    """
    from gis_grid.domain.model import CODE_LENGTHS, Level
    from gis_grid.planning.balance import moved_buildings
    from gis_grid.planning.rebalance import before_after

    user.check_role(user.role.reads_everything, "read proposals")
    record, change = store.proposal(pid)
    frame = before_after(store, change)
    width = len(change.remove[0])
    n = CODE_LENGTHS[Level.BUILDING]
    now = store.grids(under=list(change.remove))
    moved = moved_buildings(now.loc[now["code"].str.len() == n], change, width)
    metrics = record.get("metrics") or {}
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    return {
        "proposal": {
            k: (None if isinstance(v, float) and v != v else v)
            for k, v in record.items()
            if k != "metrics"
        },
        "metrics": metrics,
        "before": _geojson(frame.loc[frame["side"] == "before"]),
        "after": _geojson(frame.loc[frame["side"] == "after"]),
        "buildings": _geojson(moved),
    }


def _geojson(frame) -> dict:
    return json.loads(frame.to_json(drop_id=True, ensure_ascii=False, na="null"))

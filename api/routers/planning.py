"""The revision log, diffs between revisions, and rebalancing proposals (read-only)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import UserDep
from api.deps import StoreDep
from gis_grid.tables import records

router = APIRouter(tags=["planning"])


@router.get("/communities/{community}/revisions", summary="A community's revision log")
def revisions(community: str, store: StoreDep, user: UserDep) -> dict:
    """Every import, edit and boundary operation of the community, oldest first."""
    user.check_role(user.role.reads_everything, "read the revision log")
    return {"community": community, "revisions": records(store.revisions(community))}


@router.get("/communities/{community}/diff", summary="What changed between two revisions")
def diff(
    community: str,
    store: StoreDep,
    user: UserDep,
    old: Annotated[
        int, Query(alias="from", ge=0, description="From this revision (0: before any).")
    ],
    new: Annotated[
        int | None, Query(alias="to", ge=0, description="To this revision (default: now).")
    ] = None,
) -> dict:
    """Grids added, removed and reshaped; ground, buildings, households and staff moved."""
    from gis_grid.planning.edits import compare

    user.check_role(user.role.reads_everything, "compare revisions")
    result = compare(store, community, old, new)
    return {
        **{k: v for k, v in result.items() if k not in ("grids", "buildings_moved")},
        "grids": records(result["grids"]),
        "buildings_moved": records(result["buildings_moved"]),
    }


@router.get("/proposals", summary="Rebalancing proposals")
def proposals(
    store: StoreDep,
    user: UserDep,
    status: Annotated[str | None, Query(description="open, accepted or discarded")] = None,
) -> dict:
    """Stored proposals with their metrics, newest first."""
    user.check_role(user.role.reads_everything, "read proposals")
    return {"proposals": records(store.proposals(status))}


@router.get("/proposals/{pid}", summary="One proposal with its grids before and after")
def proposal(pid: int, store: StoreDep, user: UserDep) -> dict:
    """A proposal's record and a GeoJSON of the grids it replaces (before) and writes (after)."""
    from gis_grid.planning.rebalance import before_after

    user.check_role(user.role.reads_everything, "read proposals")
    record, change = store.proposal(pid)
    frame = before_after(store, change)
    return {
        "proposal": {
            k: (None if isinstance(v, float) and v != v else v) for k, v in record.items()
        },
        "before_after": json.loads(frame.to_json(drop_id=True, ensure_ascii=False)),
    }

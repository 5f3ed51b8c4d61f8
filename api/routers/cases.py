"""Cases over HTTP: report, act, list, show, sweep, and the indicators (考核).

A step names the case version the actor saw (``version``): someone else's step
in between is a 409, never a lost update. Grid workers see and act on the
cases in their grids; reporters (Open311 clients) report and read cases only.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import User, UserDep
from api.deps import StoreDep
from gis_grid.cases.loop import STATUSES
from gis_grid.domain.errors import ForbiddenError
from gis_grid.domain.messages import say
from layers.incidents import CATEGORIES

router = APIRouter(tags=["cases"])

#: The days an indicator window may start and end within.
FIRST_DAY, LAST_DAY = dt.date(1950, 1, 1), dt.date(2199, 12, 31)
#: Case categories as the API takes them: the key or the Chinese name.
Category = Literal[tuple([*CATEGORIES, *CATEGORIES.values()])]  # type: ignore[valid-type]
#: ``open`` (any status waiting for a step), or one status.
Status = Literal[tuple(["open", *STATUSES])]  # type: ignore[valid-type]


class CaseReport(BaseModel):
    """A new case: where (lon/lat; ``crs`` for GCJ-02/BD-09 or an EPSG code) and what."""

    lon: float = Field(ge=-180, le=180, examples=[123.5632])
    lat: float = Field(ge=-90, le=90, examples=[42.4501])
    category: Category = Field(examples=["environment"])
    crs: str | None = Field(None, max_length=40, examples=["gcj02"])
    description: str | None = Field(None, max_length=4000)
    address: str | None = Field(None, max_length=500)
    media_url: str | None = Field(None, max_length=1000)
    source: str | None = Field(None, max_length=100)
    at: dt.datetime | None = Field(
        None, description="When it was seen, if earlier than now (a phone syncing later)."
    )


Action = Literal[
    "accept",
    "reject",
    "dispatch",
    "handle",
    "verify",
    "rework",
    "close",
    "extend",
    "suspend",
    "resume",
    "reopen",
    "escalate",
]


class CaseStep(BaseModel):
    """One step on a case, on the version you saw (``GET /cases/{id}`` gives it)."""

    action: Action
    version: int = Field(ge=1, le=1_000_000)
    at: dt.datetime | None = Field(None, description="When it was done, if earlier than now.")
    note: str | None = Field(None, max_length=4000)
    assignee: str | None = Field(None, max_length=100, description="dispatch: a staff id.")
    department: str | None = Field(None, max_length=100, description="dispatch: a department.")
    photo: str | None = Field(None, max_length=1000, description="handle: a photo's URL.")
    satisfaction: int | None = Field(None, ge=1, le=5, description="close: 1 to 5.")
    hours: float | None = Field(None, gt=0, le=2160, description="extend: hours to add.")


def actor_of(user: User):
    """The case loop's actor for a signed-in user."""
    from gis_grid.cases.loop import Actor

    return Actor(user.name, user.role.value, user.staff_id, tuple(user.grids))


def rules_of(request: Request):
    """The case rules the app runs on."""
    return request.app.state.case_rules


def check_sees_case(user: User, case: dict) -> None:
    """A grid worker sees the cases in their grids (a reporter and the desk, all)."""
    if user.role.value != "grid_worker":
        return
    codes = [c for c in case["grids"].values() if c] + [(case.get("owner") or {}).get("code") or ""]
    if not any(c.startswith(tuple(user.grids)) for c in codes if c):
        raise ForbiddenError(say("problem_outside_grids", case=case["id"]))


@router.post("/cases", status_code=201, summary="Report a case (上报)")
async def report_case(body: CaseReport, store: StoreDep, user: UserDep, request: Request) -> dict:
    """Place the case in its grids, give it an owner and its first deadline.

    A point outside every grid but within 3 km of a community is accepted and
    owned by the nearest community (``outside``: true); farther is refused as a
    coordinate mistake. A case near an open one of its category this week
    names it in ``duplicate_of``.
    """
    from gis_grid.cases.loop import parse_time
    from gis_grid.cases.service import report

    return await run_in_threadpool(
        lambda: report(
            store,
            lon=body.lon,
            lat=body.lat,
            category=body.category,
            crs=body.crs,
            rules=rules_of(request),
            actor=actor_of(user),
            at=parse_time(body.at) if body.at else None,
            description=body.description,
            address=body.address,
            media_url=body.media_url,
            source=body.source,
        )
    )


@router.get("/cases", summary="Cases, filtered, most urgent first")
async def list_cases(
    store: StoreDep,
    user: UserDep,
    request: Request,
    status: Annotated[list[Status] | None, Query(max_length=20)] = None,
    category: Annotated[list[Category] | None, Query(max_length=20)] = None,
    grid: Annotated[list[str] | None, Query(max_length=50)] = None,
    overdue: bool = False,
    escalated: Annotated[bool, Query(description="Only cases handed up at least once.")] = False,
    mine: Annotated[bool, Query(description="Only cases I own (grid workers).")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict:
    """Open cases by deadline (least time left first), then the rest newest first.

    ``status``: ``open`` or any status; ``grid``: cases under these grids;
    ``overdue``: past their deadline now; ``mine``: owned by the caller's
    staff id. A grid worker sees the cases in their grids.
    """
    from gis_grid.cases.service import list_cases as listing

    under = user.scope(grid) if user.role.value == "grid_worker" else grid
    return await run_in_threadpool(
        listing,
        store,
        rules=rules_of(request),
        status=status,
        category=category,
        under=under,
        overdue=overdue or None,
        escalated=escalated or None,
        owner_staff=user.staff_id if mine else None,
        limit=limit,
        offset=offset,
    )


@router.get("/cases/{case_id}", summary="A case with its timeline")
async def get_case(case_id: str, store: StoreDep, user: UserDep, request: Request) -> dict:
    """The case, its owner (grid and person), its deadline and time left, every step."""
    from gis_grid.cases.service import show

    case = await run_in_threadpool(show, store, case_id, rules_of(request))
    check_sees_case(user, case)
    return case


@router.post("/cases/{case_id}/steps", summary="Take a step on a case")
async def step_case(
    case_id: str, body: CaseStep, store: StoreDep, user: UserDep, request: Request
) -> dict:
    """Accept, reject, dispatch, handle, verify, rework, close, extend, … one step.

    Refused (4xx, nothing written) when the step is not allowed: the wrong
    status, role or grid, a handler verifying their own work, a stale version.
    """
    from gis_grid.cases.loop import parse_time
    from gis_grid.cases.service import act

    params = body.model_dump(exclude={"action", "version", "at"}, exclude_none=True)
    at = parse_time(body.at) if body.at else None
    return await run_in_threadpool(
        lambda: act(
            store,
            case_id,
            body.action,
            actor_of(user),
            rules=rules_of(request),
            version=body.version,
            at=at,
            **params,
        )
    )


@router.post("/cases/sweep", summary="Escalate every late case one grid up")
async def sweep_cases(store: StoreDep, user: UserDep, request: Request) -> dict:
    """What the server's background sweep does, now (supervisors and admins)."""
    from gis_grid.cases.service import sweep

    user.check_role(user.role.value in ("admin", "supervisor"), "run the sweep")
    return await run_in_threadpool(lambda: sweep(store, rules=rules_of(request)))


@router.get("/case-rules", summary="Time limits and routing in force")
async def case_rules(user: UserDep, request: Request) -> dict:
    """Hours per step and category, which run on the clock, and the routing table."""
    from gis_grid.cases.rules import STEPS
    from gis_grid.cases.service import categories

    rules = rules_of(request)
    cats = categories()
    return {
        "source": rules.source if rules.source == "built-in" else "file",
        "steps": STEPS,
        "categories": [
            {
                "key": key,
                "zh": zh,
                "limits": {s: rules.limit(key, s) for s in STEPS},
                "clock": rules.on_clock(key),
                "department": rules.department(key),
            }
            for key, zh in cats.items()
        ],
    }


@router.get(
    "/indicators",
    summary="Case indicators (考核) per grid, person or department",
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_indicators(
    store: StoreDep,
    user: UserDep,
    since: Annotated[dt.date | None, Query(alias="from", ge=FIRST_DAY, le=LAST_DAY)] = None,
    until: Annotated[dt.date | None, Query(alias="to", ge=FIRST_DAY, le=LAST_DAY)] = None,
    by: Literal["community", "area", "courtyard", "building", "unit", "staff", "department"] = (
        "area"
    ),
    format: Literal["json", "csv"] = "json",
):
    """Indicators per grid of a level, person or department.

    Over the cases reported ``from``–``to`` (days, inclusive; default the last 28 days): reported,
    accepted, closed, closure_rate, on_time_rate, rework_rate, extension_rate,
    escalation_rate, overdue (now), median_hours_to_close, mean_satisfaction,
    closed_in_grid.
    """
    from gis_grid.cases.indicators import indicators
    from gis_grid.cases.service import now

    user.check_role(user.role.reads_everything, "read indicators of every grid")
    at = now()
    last = until or at.date()
    first = since or last - dt.timedelta(days=27)
    table = await run_in_threadpool(
        lambda: indicators(
            store,
            since=dt.datetime.combine(first, dt.time()),
            until=dt.datetime.combine(last + dt.timedelta(days=1), dt.time()),
            by=by,
            at=at,
        )
    )
    if format == "csv":
        return PlainTextResponse(
            table.to_csv(index=False),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="indicators-{by}-{first}-{last}.csv"'
            },
        )
    return {"from": str(first), "to": str(last), "by": by, "rows": table.to_dict("records")}

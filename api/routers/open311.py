"""Open311 GeoReport v2 (``/open311/v2/…``): existing 311 clients report and follow cases.

Services are the case categories; a service request is a case. Every call
carries an ``api_key`` (a token from ``gis-grid user add … --role reporter``)
as a query or form field, or an ``Authorization: Bearer`` header. Answers are
JSON (``.json``); errors are Open311's list of ``{code, description}``.

``agency_responsible`` names the grid and the person who owns the case,
``expected_datetime`` its current deadline, ``status`` open or closed, and
``status_notes`` where it is in the loop (上报 … 结案).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import User, user_of
from api.deps import StoreDep
from api.routers.cases import actor_of, rules_of
from gis_grid.domain.errors import GisGridError, InputError, http_status

router = APIRouter(prefix="/open311/v2", tags=["open311"])
ZONE = dt.timezone(dt.timedelta(hours=8))  # stored times are China Standard Time


class Open311Error(Exception):
    """An error answered as Open311 does: ``[{"code": …, "description": …}]``."""

    def __init__(self, status: int, description: str) -> None:
        self.status, self.description = status, description


def install(app) -> None:
    """Answer errors under ``/open311/`` in Open311's format."""

    @app.exception_handler(Open311Error)
    async def _open311(request, exc: Open311Error):
        return JSONResponse([{"code": exc.status, "description": exc.description}], exc.status)


async def _caller(request: Request, store, api_key: str | None) -> User:
    header = request.headers.get("authorization", "")
    if not header and api_key:
        header = f"Bearer {api_key}"
    try:
        return await user_of(store, header)
    except GisGridError as exc:
        raise Open311Error(http_status(exc), exc.message) from None


async def _answer(func, *args, **kwargs):
    try:
        return await run_in_threadpool(lambda: func(*args, **kwargs))
    except GisGridError as exc:
        raise Open311Error(http_status(exc), exc.message) from None


def _iso(value) -> str | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(str(value).replace(" ", "T")[:19])
    return moment.replace(tzinfo=ZONE).isoformat()


def service_request(case: dict, timeline: list | None = None) -> dict:
    """A case as an Open311 service request."""
    owner = case.get("owner") or {}
    person = owner.get("staff_name") or ""
    phone = f" {owner['phone']}" if owner.get("phone") else ""
    grid = owner.get("name") or owner.get("code") or ""
    agency = f"{grid} ({owner.get('level_zh', '')}) {person}{phone}".strip() if owner else None
    updated = (timeline[-1]["at"] if timeline else None) or case.get("reported_at")
    return {
        "service_request_id": case["id"],
        "status": "closed" if case["status"] in ("closed", "rejected") else "open",
        "status_notes": f"{case['status_zh']} {case['status']}",
        "service_name": case["category_zh"],
        "service_code": case["category"],
        "description": case.get("description"),
        "agency_responsible": agency,
        "service_notice": (
            f"possible duplicate of {case['duplicate_of']}" if case.get("duplicate_of") else None
        ),
        "requested_datetime": _iso(case.get("reported_at")),
        "updated_datetime": _iso(updated),
        "expected_datetime": _iso(case.get("deadline")),
        "address": case.get("address"),
        "address_id": None,
        "zipcode": None,
        "lat": case.get("lat"),
        "long": case.get("lon"),
        "media_url": case.get("media_url"),
    }


@router.get("/services.json", summary="Open311: the services (case categories)")
async def services(request: Request, store: StoreDep, api_key: str | None = None) -> list:
    """Every case category as a service, with its handling limit in the description."""
    from gis_grid.cases.service import categories

    await _caller(request, store, api_key)
    rules = rules_of(request)
    return [
        {
            "service_code": key,
            "service_name": zh,
            "description": f"{zh} ({key}): handled within {rules.limit(key, 'handle'):g} "
            f"{'hours' if rules.on_clock(key) else 'working hours'} of dispatch"
            + (f"; routed to {rules.department(key)}" if rules.department(key) else ""),
            "metadata": False,
            "type": "realtime",
            "keywords": key,
            "group": rules.department(key) or "",
        }
        for key, zh in categories().items()
    ]


@router.get("/services/{code}.json", summary="Open311: one service's definition")
async def service_definition(
    code: str, request: Request, store: StoreDep, api_key: str | None = None
) -> dict:
    """A service's definition: no extra attributes beyond the standard fields."""
    from gis_grid.cases.service import category_key

    await _caller(request, store, api_key)
    try:
        key = category_key(code)
    except InputError as exc:
        raise Open311Error(404, exc.message) from None
    return {"service_code": key, "attributes": []}


@router.post("/requests.json", summary="Open311: report a case")
async def create_request(
    request: Request,
    store: StoreDep,
    service_code: Annotated[
        str, Form(max_length=40, description="A service_code of services.json.")
    ],
    lat: Annotated[float | None, Form()] = None,
    long: Annotated[float | None, Form()] = None,
    description: Annotated[str | None, Form(max_length=4000)] = None,
    address_string: Annotated[str | None, Form(max_length=500)] = None,
    media_url: Annotated[str | None, Form(max_length=1000)] = None,
    api_key: Annotated[str | None, Form(max_length=200)] = None,
) -> list:
    """Form fields as Open311 names them; lat/long in WGS84. Answers the new request's id."""
    from gis_grid.cases.service import category_key, report

    user = await _caller(request, store, api_key or request.query_params.get("api_key"))
    if lat is None or long is None:
        raise Open311Error(400, "lat and long are required (WGS84 degrees)")
    try:
        category_key(service_code)
    except InputError as exc:
        raise Open311Error(404, f"service_code {service_code!r}: {exc.message}") from None
    case = await _answer(
        report,
        store,
        lon=long,
        lat=lat,
        category=service_code,
        rules=rules_of(request),
        actor=actor_of(user),
        description=description,
        address=address_string,
        media_url=media_url,
        source="Open311",
    )
    owner = case.get("owner") or {}
    notice = f"owned by {owner.get('name') or owner.get('code')}" if owner else None
    return [{"service_request_id": case["id"], "service_notice": notice, "account_id": None}]


@router.get("/requests.json", summary="Open311: find service requests")
async def find_requests(
    request: Request,
    store: StoreDep,
    service_request_id: Annotated[str | None, Query(max_length=2000)] = None,
    service_code: Annotated[str | None, Query(max_length=400)] = None,
    start_date: dt.datetime | None = None,
    end_date: dt.datetime | None = None,
    status: Annotated[str | None, Query(pattern="^(open|closed)(,(open|closed))?$")] = None,
    api_key: str | None = None,
) -> list:
    """By ids (comma-separated), or by service codes, dates and status (newest first, ≤1000)."""
    from gis_grid.cases.loop import OPEN, parse_time
    from gis_grid.cases.service import category_key, list_cases, show

    await _caller(request, store, api_key)
    rules = rules_of(request)
    if service_request_id:
        out = []
        for sid in [s.strip() for s in service_request_id.split(",") if s.strip()][:100]:
            try:
                out.append(service_request(await _answer(show, store, sid, rules)))
            except Open311Error as exc:
                if exc.status != 404:
                    raise
        return out
    codes = None
    if service_code:
        try:
            codes = [category_key(c) for c in service_code.split(",") if c.strip()]
        except InputError as exc:
            raise Open311Error(404, exc.message) from None
    wanted = set((status or "open,closed").split(","))
    statuses = []
    if "open" in wanted:
        statuses += sorted(OPEN) + ["suspended"]
    if "closed" in wanted:
        statuses += ["closed", "rejected"]
    found = await _answer(
        list_cases, store, rules=rules, status=statuses, category=codes, limit=1_000_000
    )
    try:
        first = parse_time(start_date, "start_date") if start_date else None
        last = parse_time(end_date, "end_date") if end_date else None
    except InputError as exc:
        raise Open311Error(400, exc.message) from None
    cases = [
        c
        for c in found["cases"]
        if (first is None or parse_time(c["reported_at"]) >= first)
        and (last is None or parse_time(c["reported_at"]) <= last)
    ]
    cases.sort(key=lambda c: c["reported_at"], reverse=True)
    return [service_request(c) for c in cases[:1000]]


@router.get("/requests/{request_id}.json", summary="Open311: one service request")
async def get_request(
    request_id: str, request: Request, store: StoreDep, api_key: str | None = None
) -> list:
    """The request (a list of one, as Open311 answers)."""
    from gis_grid.cases.service import show

    await _caller(request, store, api_key)
    try:
        case = await _answer(show, store, request_id, rules_of(request))
    except Open311Error as exc:
        if exc.status == 404:
            raise Open311Error(404, f"no service request {request_id!r}") from None
        raise
    return [service_request(case, case.get("timeline"))]

"""Errors as ``application/problem+json`` (RFC 9457), from one table.

Every :class:`~gis_grid.domain.errors.GisGridError` answers with the status
:func:`gis_grid.domain.errors.http_status` gives it and its user-safe message
(in Chinese when the request's ``Accept-Language`` prefers it and the
catalogue has the words);
request validation errors answer 422; anything else 500 with a message that
reveals nothing (the detail goes to the log).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gis_grid.domain.errors import GisGridError, http_status
from gis_grid.domain.messages import language_of, render

log = logging.getLogger("gis_grid.api")
PROBLEM = "application/problem+json"


_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
#: What every operation may answer besides success, declared in the OpenAPI description
#: as the problem documents the handlers below send.
PROBLEM_RESPONSES = {
    status: {"description": why, "content": {PROBLEM: {"schema": _PROBLEM_SCHEMA}}}
    for status, why in (
        (401, "No valid token: missing, unknown, revoked or expired"),
        (403, "The user's role may not do this, or the grid is not theirs"),
        (404, "No such grid, staff member, layer, proposal or revision"),
        (409, "A conflict: a duplicate code, or a change made since the version named"),
        (413, "The body or a geometry is too large"),
        (422, "The request or its data cannot be used (the problem names what and where)"),
        (503, "The store is busy with another write, or cannot be reached"),
    )
}


def problem(status: int, title: str, detail: str, **extra) -> JSONResponse:
    """A problem document."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""

    @app.exception_handler(GisGridError)
    async def _domain(request: Request, exc: GisGridError):
        status = http_status(exc)
        # in the request's language where the catalogue has the words (Accept-Language)
        lang = language_of(request.headers.get("accept-language"))
        response = problem(status, type(exc).__name__, render(exc.message, lang))
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if status == 503:
            response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem(422, "Invalid request", where, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem(exc.status_code, "HTTP error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "the server failed; the error is logged")

"""One error hierarchy for the whole platform.

Every error a user can cause is a :class:`GisGridError` with a message that is
safe to show (no stack trace, no SQL) and says what to do. ``HTTP_STATUS`` maps
each class to the status the web API answers with; the CLI maps every
``GisGridError`` to a non-zero exit code and prints the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class GisGridError(Exception):
    """Base class of every error a user can cause.

    Parameters
    ----------
    message : str
        A user-safe sentence saying what went wrong and what to do.
    detail : Any, optional
        Structured detail (offending rows, problem records) for logs and JSON.
    """

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InputError(GisGridError):
    """Bad input: missing columns, wrong types, unknown levels, bad codes."""


class RowError(InputError):
    """Rows of an import are bad; ``rows`` lists each (row, id, column, value, problem)."""

    def __init__(self, message: str, rows: Sequence[dict[str, Any]]) -> None:
        super().__init__(message, detail=list(rows))
        self.rows = list(rows)


class CRSError(InputError):
    """A coordinate reference system is missing, unknown or implausible."""


class GeometryError(InputError):
    """Geometries are invalid, empty, of the wrong type or out of range."""


class DuplicateCodeError(InputError):
    """A grid code appears twice in the input or already exists in the store."""


class OrphanError(InputError):
    """A grid's parent exists neither in the input nor in the store."""


class TopologyError(InputError):
    """A write would leave overlaps or children outside their parents.

    ``detail`` holds the problem records (see :mod:`gis_grid.grids.topology`).
    """

    def __init__(self, message: str, problems: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message, detail=list(problems))
        self.problems = list(problems)


class NotFoundError(GisGridError):
    """A grid, a staff member or a store does not exist."""


class StoreError(GisGridError):
    """The store cannot be opened or is not a gis-grid store."""


class BusyError(StoreError):
    """Another writer holds the store longer than a write may wait; nothing was written."""


class ConflictError(GisGridError):
    """An edit was based on a stale version of a grid (or a step on a stale case)."""


def stale_case(case_id: str, version, seen) -> ConflictError:
    """The refusal of a step taken on version ``seen`` of a case now at ``version``."""
    from gis_grid.domain.messages import say

    return ConflictError(say("problem_stale_case", case=case_id, version=version, seen=seen))


class UnauthorizedError(GisGridError):
    """No valid credentials (a missing, unknown or revoked token)."""


class ForbiddenError(GisGridError):
    """A known user asking for what their role does not allow."""


class TooLargeError(InputError):
    """A request or file over the size the platform accepts."""


HTTP_STATUS: dict[type[GisGridError], int] = {
    UnauthorizedError: 401,
    ForbiddenError: 403,
    TooLargeError: 413,
    InputError: 422,
    CRSError: 422,
    RowError: 422,
    GeometryError: 422,
    DuplicateCodeError: 409,
    OrphanError: 422,
    TopologyError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    StoreError: 503,
    GisGridError: 400,
}


def http_status(error: GisGridError) -> int:
    """Return the HTTP status for an error, walking up its class hierarchy.

    Examples
    --------
    >>> http_status(NotFoundError("no grid 211281001007"))
    404
    >>> http_status(GeometryError("self-intersection"))
    422
    """
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500

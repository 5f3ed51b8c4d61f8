"""Who may do what: users with a role and a token, and the audit log of writes.

Roles (the platform's users, not the grid staff roles of :class:`gis_grid.domain.model.Role`):

============ ================================ ==================================
role         reads                            writes
============ ================================ ==================================
admin        everything                       boundaries, users
planner      everything                       boundaries (split, merge, move …)
supervisor   everything                       —
leadership   everything                       —
grid_worker  the grids of their staff id only —
reporter     cases only (Open311 intake)      new cases
============ ================================ ==================================

Case steps have their own rules (:mod:`gis_grid.cases.loop`): supervisors and
admins accept, dispatch, close …; grid workers handle and verify cases in their
grids; anyone signed in may report a case.

A token is shown once, when the user is added (``gis-grid user add``) or
rotated (``gis-grid user rotate``); the store keeps only its SHA-256. A token
expires (:data:`DEFAULT_EXPIRY` after it is issued unless told otherwise), and
the store keeps when each user last used theirs.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import secrets

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say


class AccessRole(enum.StrEnum):
    """What a user of the platform may do."""

    ADMIN = "admin"
    PLANNER = "planner"
    SUPERVISOR = "supervisor"
    LEADERSHIP = "leadership"
    GRID_WORKER = "grid_worker"
    REPORTER = "reporter"

    @property
    def edits_boundaries(self) -> bool:
        """Whether the role may change grids (split, merge, move, redraw, undo …)."""
        return self in (AccessRole.ADMIN, AccessRole.PLANNER)

    @property
    def reads_everything(self) -> bool:
        """Whether the role sees every grid (a grid worker sees their own, a reporter none)."""
        return self not in (AccessRole.GRID_WORKER, AccessRole.REPORTER)

    @property
    def cases_only(self) -> bool:
        """Whether the role may use the case routes only (reporters: Open311 clients)."""
        return self is AccessRole.REPORTER

    @classmethod
    def parse(cls, value: str) -> AccessRole:
        """A role from its name (as in the table above).

        Examples
        --------
        >>> AccessRole.parse("Planner").edits_boundaries
        True
        """
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise InputError(
                say("problem_unknown_role", role=repr(value), roles=", ".join(r.value for r in cls))
            ) from None


def new_user_role(role: str, staff_id: str | None) -> str:
    """The role of a user about to be added, checked: a grid worker must be a staff member."""
    role = AccessRole.parse(role)
    if role is AccessRole.GRID_WORKER and not staff_id:
        raise InputError(say("problem_worker_staff_id"))
    return role.value


def new_token() -> str:
    """A fresh bearer token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a token.

    Examples
    --------
    >>> len(token_hash("abc"))
    64
    """
    return hashlib.sha256(str(token).encode()).hexdigest()


#: How long a new token works unless told otherwise.
DEFAULT_EXPIRY = dt.timedelta(days=90)
#: A use of a token is written down at most this often per user (seconds).
LAST_USE_EVERY = 60


def expiry(text: str | None, now: dt.datetime | None = None) -> str | None:
    """When a token issued now expires: ``30d``, ``12h``, ``2w``, a date, or ``never``.

    Returns the UTC time stamp as the stores keep it, or None for ``never``;
    None (not given) means :data:`DEFAULT_EXPIRY`.

    Examples
    --------
    >>> now = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)
    >>> expiry("30d", now), expiry("12h", now), expiry("never", now)
    ('2027-01-03T08:00:00Z', '2026-12-04T20:00:00Z', None)
    >>> expiry("2027-06-30", now)
    '2027-06-30T00:00:00Z'
    """
    now = now or dt.datetime.now(dt.UTC)
    if text is None:
        return stamp(now + DEFAULT_EXPIRY)
    text = str(text).strip().lower()
    if text in ("never", "none", "0"):
        return None
    m = re.fullmatch(r"(\d+)\s*([hdw])", text)
    if m:
        hours = {"h": 1, "d": 24, "w": 24 * 7}[m.group(2)] * int(m.group(1))
        if not 0 < hours <= 24 * 366 * 10:
            raise InputError(say("problem_expiry_range", text=repr(text)))
        return stamp(now + dt.timedelta(hours=hours))
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(say("problem_expiry_form", text=repr(text))) from None
    when = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    if when <= now:
        raise InputError(say("problem_expiry_past", text=text))
    return stamp(when)


def stamp(when: dt.datetime) -> str:
    """A UTC time as the users table keeps it (text that sorts in time order)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def use_to_record(user: dict, now: str) -> bool:
    """Whether a token check at ``now`` is written down as the user's last use.

    At most once per :data:`LAST_USE_EVERY` seconds per user: a map loading a
    hundred tiles is one use, not a hundred writes.

    Examples
    --------
    >>> use_to_record({"last_used_at": "2026-12-04T08:00:00Z"}, "2026-12-04T08:00:30Z")
    False
    >>> use_to_record({"last_used_at": None}, "2026-12-04T08:00:30Z")
    True
    """
    last = user.get("last_used_at")
    if not last:
        return True
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    then = dt.datetime.strptime(str(last), fmt)
    return (dt.datetime.strptime(now, fmt) - then).total_seconds() >= LAST_USE_EVERY


def token_state(user: dict, now: str | None = None) -> str:
    """``active``, ``expired`` or ``revoked``, from a users-table row."""
    now = now or stamp(dt.datetime.now(dt.UTC))
    if user.get("revoked_at"):
        return "revoked"
    expires = user.get("expires_at")
    if expires and str(expires) <= now:
        return "expired"
    return "active"


USER_COLUMNS = (
    "user_id",
    "name",
    "role",
    "staff_id",
    "created_at",
    "revoked_at",
    "expires_at",
    "last_used_at",
)
AUDIT_COLUMNS = ("id", "at", "user_id", "role", "action", "target", "revision", "detail")

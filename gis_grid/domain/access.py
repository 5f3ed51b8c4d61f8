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
============ ================================ ==================================

A token is shown once, when the user is added (``gis-grid user add``); the
store keeps only its SHA-256.
"""

from __future__ import annotations

import enum
import hashlib
import secrets

from gis_grid.domain.errors import InputError


class AccessRole(enum.StrEnum):
    """What a user of the platform may do."""

    ADMIN = "admin"
    PLANNER = "planner"
    SUPERVISOR = "supervisor"
    LEADERSHIP = "leadership"
    GRID_WORKER = "grid_worker"

    @property
    def edits_boundaries(self) -> bool:
        """Whether the role may change grids (split, merge, move, redraw, undo …)."""
        return self in (AccessRole.ADMIN, AccessRole.PLANNER)

    @property
    def reads_everything(self) -> bool:
        """Whether the role sees every grid (a grid worker sees their own)."""
        return self is not AccessRole.GRID_WORKER

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
                f"unknown role {value!r}; expected one of {', '.join(r.value for r in cls)}"
            ) from None


def new_user_role(role: str, staff_id: str | None) -> str:
    """The role of a user about to be added, checked: a grid worker must be a staff member."""
    role = AccessRole.parse(role)
    if role is AccessRole.GRID_WORKER and not staff_id:
        raise InputError("a grid worker is a staff member: give their staff id")
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


USER_COLUMNS = ("user_id", "name", "role", "staff_id", "created_at", "revoked_at")
AUDIT_COLUMNS = ("id", "at", "user_id", "role", "action", "target", "revision", "detail")

"""Users of the web API, their hashed tokens, and the audit log of writes, in the file."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd

from gis_grid.domain.access import AUDIT_COLUMNS, USER_COLUMNS, new_token, new_user_role, token_hash
from gis_grid.domain.errors import DuplicateCodeError, NotFoundError
from gis_grid.domain.model import utc_now
from gis_grid.store.base import AUDIT_WRITE, audit_row


def write_audit(conn: sqlite3.Connection, row: tuple) -> None:
    """Add an audit row inside the caller's transaction."""
    conn.execute(
        f"INSERT INTO gis_grid_audit ({', '.join(AUDIT_WRITE)}) VALUES (?, ?, ?, ?, ?, ?, ?)", row
    )


class GeoPackageAccess:
    """Users, their tokens, and the audit log of writes."""

    def add_user(self, user_id: str, name: str, role: str, staff_id: str | None = None) -> str:
        """Add a user; return their token (shown once: the store keeps its hash)."""
        role = new_user_role(role, staff_id)
        if staff_id and not self._existing_staff([staff_id]):
            raise NotFoundError(f"no staff member {staff_id!r}")
        token = new_token()
        with self._transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM gis_grid_users WHERE user_id = ?", (user_id,)
            ).fetchone():
                raise DuplicateCodeError(f"user {user_id!r} exists already")
            conn.execute(
                "INSERT INTO gis_grid_users (user_id, name, role, staff_id, token_sha256, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, name, role, staff_id, token_hash(token), utc_now()),
            )
        return token

    def user_of_token(self, token: str) -> dict | None:
        """The active user holding a token, or None."""
        row = self._select(
            f"SELECT {', '.join(USER_COLUMNS)} FROM gis_grid_users "
            "WHERE token_sha256 = ? AND revoked_at IS NULL",
            [token_hash(token)],
        )
        return row.iloc[0].to_dict() if len(row) else None

    def users(self) -> pd.DataFrame:
        """Every user (never their token)."""
        return self._select(
            f"SELECT {', '.join(USER_COLUMNS)} FROM gis_grid_users ORDER BY user_id"
        )

    def revoke_user(self, user_id: str) -> None:
        """Make a user's token stop working."""
        self.user_epoch += 1
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE gis_grid_users SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                (utc_now(), user_id),
            )
            if not cur.rowcount:
                raise NotFoundError(f"no active user {user_id!r}")

    def record_audit(
        self, user: dict, action: str, target: str, revision: int | None, detail: dict
    ) -> None:
        """Record who did what, when, and what it changed (a write of its own)."""
        audit = {**user, "action": action, "target": target, "detail": detail}
        with self._transaction() as conn:
            write_audit(conn, audit_row(audit, revision))

    def audit_log(self) -> pd.DataFrame:
        """The audit log, oldest first."""
        frame = self._select(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM gis_grid_audit ORDER BY id")
        frame["detail"] = frame["detail"].map(json.loads)
        return frame

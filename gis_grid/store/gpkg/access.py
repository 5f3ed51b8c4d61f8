"""Users of the web API, their hashed tokens, and the audit log of writes, in the file."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd

from gis_grid.domain.access import (
    AUDIT_COLUMNS,
    USER_COLUMNS,
    expiry,
    new_token,
    new_user_role,
    token_hash,
    use_to_record,
)
from gis_grid.domain.errors import DuplicateCodeError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import utc_now
from gis_grid.store.base import AUDIT_WRITE, audit_row


def write_audit(conn: sqlite3.Connection, row: tuple) -> None:
    """Add an audit row inside the caller's transaction."""
    conn.execute(
        f"INSERT INTO gis_grid_audit ({', '.join(AUDIT_WRITE)}) VALUES (?, ?, ?, ?, ?, ?, ?)", row
    )


class GeoPackageAccess:
    """Users, their tokens, and the audit log of writes."""

    def add_user(
        self,
        user_id: str,
        name: str,
        role: str,
        staff_id: str | None = None,
        *,
        expires: str | None = None,
    ) -> str:
        """Add a user; return their token (shown once: the store keeps its hash).

        ``expires``: ``30d``, ``12h``, a date or ``never`` (default: 90 days).
        """
        role = new_user_role(role, staff_id)
        until = expiry(expires)
        if staff_id and not self._existing_staff([staff_id]):
            raise NotFoundError(say("problem_no_staff_member", staff_id=repr(staff_id)))
        token = new_token()
        with self._transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM gis_grid_users WHERE user_id = ?", (user_id,)
            ).fetchone():
                raise DuplicateCodeError(say("problem_user_exists", user=repr(user_id)))
            conn.execute(
                "INSERT INTO gis_grid_users (user_id, name, role, staff_id, token_sha256, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, name, role, staff_id, token_hash(token), utc_now(), until),
            )
        return token

    def rotate_user(self, user_id: str, *, expires: str | None = None) -> str:
        """Give a user a new token (their old one stops working); return it."""
        until = expiry(expires)
        token = new_token()
        self.user_epoch += 1
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE gis_grid_users SET token_sha256 = ?, expires_at = ?, revoked_at = NULL "
                "WHERE user_id = ?",
                (token_hash(token), until, user_id),
            )
            if not cur.rowcount:
                raise NotFoundError(say("problem_no_user", user=repr(user_id)))
        return token

    def user_of_token(self, token: str) -> dict | None:
        """The active user holding a token, or None (expired and revoked tokens hold none).

        A use is written down at most once a minute per user (``last_used_at``);
        while another writer holds the file, that note waits for the next check.
        """
        now = utc_now()
        row = self._select(
            f"SELECT {', '.join(USER_COLUMNS)} FROM gis_grid_users "
            "WHERE token_sha256 = ? AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > ?)",
            [token_hash(token), now],
        )
        if not len(row):
            return None
        user = row.iloc[0].to_dict()
        if use_to_record(user, now) and not self._conn.in_transaction:
            # a note, not a write to wait for: while another process holds the file the
            # token check answers at once and the note waits for the next check
            self._conn.execute("PRAGMA busy_timeout = 0")
            try:
                self._conn.execute(
                    "UPDATE gis_grid_users SET last_used_at = ? WHERE user_id = ?",
                    (now, user["user_id"]),
                )
            except sqlite3.OperationalError:  # the file is busy with a write: next time
                pass
            finally:
                self._conn.execute(f"PRAGMA busy_timeout = {int(self.wait_seconds * 1000)}")
        return user

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
                raise NotFoundError(say("problem_no_active_user", user=repr(user_id)))

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

"""Users of the web API, their hashed tokens, and the audit log of writes, in PostGIS."""

from __future__ import annotations

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


def write_audit(cur, row: tuple) -> None:
    """Add an audit row inside the caller's transaction."""
    cur.execute(
        f"INSERT INTO audit ({', '.join(AUDIT_WRITE)}) VALUES (%s, %s, %s, %s, %s, %s, %s)", row
    )


class PostGISAccess:
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
        """Add a user; return their token (shown once: the database keeps its hash).

        ``expires``: ``30d``, ``12h``, a date or ``never`` (default: 90 days).
        """
        role = new_user_role(role, staff_id)
        until = expiry(expires)
        token = new_token()
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if staff_id and not self._present(cur, "staff", "staff_id", [staff_id]):
                raise NotFoundError(say("problem_no_staff_member", staff_id=repr(staff_id)))
            if self._present(cur, "users", "user_id", [user_id]):
                raise DuplicateCodeError(say("problem_user_exists", user=repr(user_id)))
            cur.execute(
                "INSERT INTO users (user_id, name, role, staff_id, token_sha256, created_at, "
                "expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [user_id, name, role, staff_id, token_hash(token), utc_now(), until],
            )
        return token

    def rotate_user(self, user_id: str, *, expires: str | None = None) -> str:
        """Give a user a new token (their old one stops working); return it."""
        until = expiry(expires)
        token = new_token()
        self.user_epoch += 1
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "UPDATE users SET token_sha256 = %s, expires_at = %s, revoked_at = NULL "
                "WHERE user_id = %s",
                [token_hash(token), until, user_id],
            )
            if not cur.rowcount:
                raise NotFoundError(say("problem_no_user", user=repr(user_id)))
        return token

    def user_of_token(self, token: str) -> dict | None:
        """The active user holding a token, or None (one indexed read per request).

        Expired and revoked tokens hold no user. A use is written down at most
        once a minute per user (``last_used_at``).
        """
        now = utc_now()
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(USER_COLUMNS)} FROM users "
                "WHERE token_sha256 = %s AND revoked_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > %s)",
                [token_hash(token), now],
            )
            row = cur.fetchone()
            if row is None:
                return None
            user = dict(zip(USER_COLUMNS, row, strict=True))
            if use_to_record(user, now):
                cur.execute(
                    "UPDATE users SET last_used_at = %s WHERE user_id = %s",
                    [now, user["user_id"]],
                )
        return user

    def users(self) -> pd.DataFrame:
        """Every user (never their token)."""
        frame = self._frame(f"SELECT {', '.join(USER_COLUMNS)} FROM users ORDER BY user_id")
        return frame if len(frame) else pd.DataFrame(columns=list(USER_COLUMNS))

    def revoke_user(self, user_id: str) -> None:
        """Make a user's token stop working."""
        self.user_epoch += 1
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "UPDATE users SET revoked_at = %s WHERE user_id = %s AND revoked_at IS NULL",
                [utc_now(), user_id],
            )
            if not cur.rowcount:
                raise NotFoundError(say("problem_no_active_user", user=repr(user_id)))

    def record_audit(
        self, user: dict, action: str, target: str, revision: int | None, detail: dict
    ) -> None:
        """Record who did what, when, and what it changed (a write of its own)."""
        audit = {**user, "action": action, "target": target, "detail": detail}
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            write_audit(cur, audit_row(audit, revision))

    def audit_log(self) -> pd.DataFrame:
        """The audit log, oldest first."""
        import json

        frame = self._frame(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit ORDER BY id")
        if not len(frame):
            return pd.DataFrame(columns=list(AUDIT_COLUMNS))
        frame["detail"] = frame["detail"].map(json.loads)
        return frame

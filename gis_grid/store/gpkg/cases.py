"""Cases in the GeoPackage: the append-only case log, and steps written under a version check.

A case is a feature of the case layer (incidents) whose state columns the
case loop keeps; each step appends one row to ``gis_grid_case_log`` and
updates the case's row in the same transaction, only if the case is still at
the version the step was taken on.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd

from gis_grid.domain.errors import ConflictError, NotFoundError
from gis_grid.domain.model import CASE_LAYER, CASE_LOG_COLUMNS
from gis_grid.store.base import log_frame, records

_INSERT = (
    f"INSERT INTO gis_grid_case_log ({', '.join(CASE_LOG_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(CASE_LOG_COLUMNS))})"
)


class GeoPackageCases:
    """The case log and case steps."""

    def case_log(self, ids=None, *, since=None, until=None) -> pd.DataFrame:
        """Log rows of the given cases (None: all), optionally by the time they were taken."""
        terms, params = [], []
        if ids is not None:
            terms.append("case_id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps([str(i) for i in ids]))
        if since is not None:
            terms.append("at >= ?")
            params.append(str(since))
        if until is not None:
            terms.append("at < ?")
            params.append(str(until))
        where = f" WHERE {' AND '.join(terms)}" if terms else ""
        frame = self._select(
            f"SELECT {', '.join(CASE_LOG_COLUMNS)} FROM gis_grid_case_log{where} "
            "ORDER BY case_id, seq",
            params,
        )
        return log_frame(frame)

    @staticmethod
    def _write_log(conn: sqlite3.Connection, log: pd.DataFrame | None, *, drop=None) -> None:
        """Append log rows (inside the transaction); ``drop``: ids whose old log goes first."""
        if drop == "all":
            conn.execute("DELETE FROM gis_grid_case_log")
        elif drop:
            conn.executemany(
                "DELETE FROM gis_grid_case_log WHERE case_id = ?", [(str(i),) for i in drop]
            )
        if log is not None and len(log):
            conn.executemany(_INSERT, records(log_frame(log), CASE_LOG_COLUMNS))

    def record_steps(self, changes: list[dict], log: list[dict]) -> int:
        """Write steps: each change (``id``, ``expected``, columns) with its log rows; all or none.

        Raises
        ------
        ConflictError
            A case is no longer at the version its step was taken on (nothing written).
        NotFoundError
            A case is not in the store.
        """
        if not changes:
            return 0
        with self._transaction("a case step") as conn:
            have = {r[1] for r in conn.execute(f'PRAGMA table_info("{CASE_LAYER}")')}
            for change in changes:
                cols = [c for c in change if c not in ("id", "expected") and c in have]
                cur = conn.execute(
                    f'UPDATE "{CASE_LAYER}" SET {", ".join(f"{c!r} = ?" for c in cols)} '
                    "WHERE id = ? AND coalesce(version, 1) = ?",
                    [*(_plain(change[c]) for c in cols), change["id"], int(change["expected"])],
                )
                if cur.rowcount != 1:
                    found = conn.execute(
                        f'SELECT coalesce(version, 1) FROM "{CASE_LAYER}" WHERE id = ?',
                        [change["id"]],
                    ).fetchone()
                    if found is None:
                        raise NotFoundError(f"no case {change['id']!r}")
                    raise ConflictError(
                        f"case {change['id']} is at version {found[0]}, not "
                        f"{change['expected']}: someone acted on it first; reload and try again"
                    )
            self._write_log(conn, pd.DataFrame(log, columns=list(CASE_LOG_COLUMNS)))
            self._touch_layer(conn, CASE_LAYER)
        return len(changes)


def _plain(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "item"):
        return value.item()
    return value

"""Cases in the GeoPackage: the append-only case log, and steps written under a version check.

A case is a feature of the case layer (incidents) whose state columns the
case loop keeps; each step appends one row to ``gis_grid_case_log`` and
updates the case's row in the same transaction, only if the case is still at
the version the step was taken on.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import NotFoundError, stale_case
from gis_grid.domain.messages import say
from gis_grid.domain.model import CASE_LAYER, CASE_LOG_COLUMNS, LINK_COLUMNS
from gis_grid.store.base import (
    CASE_GROUP_KEYS,
    CASE_GROUP_SQL,
    CASE_OWNER_SQL,
    LATE_STATUSES,
    case_group_frame,
    late_group_frame,
    late_terms,
    log_frame,
    records,
)

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

    def case_groups(self, since, until, by: str, at) -> pd.DataFrame:
        """Per group of cases reported in ``[since, until)``: the indicators' sums (one pass).

        ``by`` is a level key, ``department`` or ``owner`` (the owning grid).
        """
        if CASE_LAYER not in self.layers():
            return case_group_frame([])
        open_ = ", ".join(f"'{s}'" for s in LATE_STATUSES)
        query = CASE_GROUP_SQL.format(key=CASE_GROUP_KEYS[by], p="?", open=open_, table=CASE_LAYER)
        rows = self._conn.execute(query, [str(at), str(since), str(until)]).fetchall()
        return case_group_frame(rows)

    def case_close_hours(self, since, until, by: str) -> pd.DataFrame:
        """``key`` and ``hours`` from report to close of each closed case in the window."""
        if CASE_LAYER not in self.layers():
            return pd.DataFrame({"key": [], "hours": []})
        rows = self._conn.execute(
            f"SELECT {CASE_GROUP_KEYS[by]}, (julianday(closed_at) - julianday(reported_at)) * 24 "
            f"FROM \"{CASE_LAYER}\" WHERE status = 'closed' AND reported_at >= ? "
            "AND reported_at < ?",
            [str(since), str(until)],
        ).fetchall()
        return pd.DataFrame(rows, columns=["key", "hours"])

    def case_row(self, case_id: str) -> dict | None:
        """A case's stored row (no geometry) as a plain dict, or None."""
        schema = self.layers().get(CASE_LAYER)
        if schema is None:
            return None
        cols = [*schema.columns, *LINK_COLUMNS]
        quoted = ", ".join(f'"{c}"' for c in cols)
        row = self._conn.execute(
            f'SELECT {quoted} FROM "{CASE_LAYER}" WHERE id = ?', [str(case_id)]
        ).fetchone()
        return None if row is None else dict(zip(cols, row, strict=True))

    def case_steps(self, case_id: str) -> list[dict]:
        """A case's log rows, oldest first, as plain dicts."""
        cur = self._conn.execute(
            f"SELECT {', '.join(CASE_LOG_COLUMNS)} FROM gis_grid_case_log WHERE case_id = ? "
            "ORDER BY seq",
            [str(case_id)],
        )
        return [_step_row(dict(zip(CASE_LOG_COLUMNS, r, strict=True))) for r in cur.fetchall()]

    def cases_near(self, bbox, categories, since, statuses) -> list[tuple]:
        """(id, category, lon, lat) of cases in a box of given categories and statuses, since.

        The case layer must exist (intake asks once, not on every report).
        """
        minx, miny, maxx, maxy = map(float, bbox)
        cats, states = list(categories), list(statuses)
        return self._conn.execute(
            f'SELECT id, category, lon, lat FROM "{CASE_LAYER}" WHERE fid IN (SELECT id FROM '
            f'"rtree_{CASE_LAYER}_geom" WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?) '
            f"AND category IN ({', '.join('?' * len(cats))}) "
            f"AND status IN ({', '.join('?' * len(states))}) AND reported_at >= ?",
            [minx, maxx, miny, maxy, *cats, *states, str(since)],
        ).fetchall()

    def insert_case(self, case: dict, log: dict) -> None:
        """Write one new case (its row, with ``lon``/``lat`` and chain) and its first log row.

        The lean path of a report: no frame, no rescan; the layer must hold
        every column of ``case`` already. A taken id is a DuplicateCodeError.
        """
        from gis_grid.domain.errors import DuplicateCodeError
        from gis_grid.store.gpkg.sqlite import encode

        cols = list(case)
        x, y = float(case["lon"]), float(case["lat"])
        blob = encode(np.array([shapely.Point(x, y)], dtype=object))[0]
        with self._transaction("a case report") as conn:
            try:
                conn.execute(
                    f'INSERT INTO "{CASE_LAYER}" (geom, {", ".join(map(_quoted, cols))}) '
                    f"VALUES (?, {', '.join('?' * len(cols))})",
                    [blob, *(_plain(case[c]) for c in cols)],
                )
            except sqlite3.IntegrityError:
                raise DuplicateCodeError(
                    say("problem_case_id_taken", case=repr(case["id"]))
                ) from None
            conn.execute(_INSERT, [_plain(log[c]) for c in CASE_LOG_COLUMNS])
            conn.execute(
                "UPDATE gis_grid_meta SET value = CAST(value AS INTEGER) + 1 "
                "WHERE key = 'generation'"
            )
            conn.execute(
                "UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), "
                "min_x = min(coalesce(min_x, ?1), ?1), max_x = max(coalesce(max_x, ?1), ?1), "
                "min_y = min(coalesce(min_y, ?2), ?2), max_y = max(coalesce(max_y, ?2), ?2) "
                "WHERE table_name = ?3",
                [x, y, CASE_LAYER],
            )
            conn.execute(
                "UPDATE gpkg_ogr_contents SET feature_count = feature_count + 1 "
                "WHERE table_name = ?",
                [CASE_LAYER],
            )

    def late_groups(self, cutoff) -> pd.DataFrame:
        """The cases late at ``cutoff`` counted by owning grid, category and status (one scan)."""
        if CASE_LAYER not in self.layers():
            return late_group_frame([])
        rows = self._conn.execute(
            f'SELECT {CASE_OWNER_SQL}, category, status, count(*) FROM "{CASE_LAYER}" '
            f"WHERE {late_terms('?')} GROUP BY 1, 2, 3",
            [str(cutoff)],
        ).fetchall()
        return late_group_frame(rows)

    def escalate_late(self, cutoff, owner_next: dict, due: dict, sample: int = 1000) -> dict:
        """Hand every case late at ``cutoff`` to the next owner, in SQL: one log row each.

        ``owner_next`` maps an owning grid to the one above it (None: nowhere
        higher); ``due`` maps (category, status) to the new deadline. In one
        transaction (the writer's lock keeps other steps out); returns the count
        escalated and a sample of (id, from, to).
        """
        cutoff = str(cutoff)
        where = late_terms("?")
        owner = CASE_OWNER_SQL
        with self._transaction("the case sweep") as conn:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS sweep_owner (owner TEXT PRIMARY KEY, next TEXT)"
            )
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS sweep_due (category TEXT, status TEXT, "
                "deadline TEXT, PRIMARY KEY (category, status))"
            )
            conn.execute("DELETE FROM temp.sweep_owner")
            conn.execute("DELETE FROM temp.sweep_due")
            conn.executemany(
                "INSERT INTO temp.sweep_owner VALUES (?, ?)",
                [(o, n) for o, n in owner_next.items() if n],
            )
            conn.executemany(
                "INSERT INTO temp.sweep_due VALUES (?, ?, ?)",
                [(c, st, d) for (c, st), d in due.items()],
            )
            joined = (
                f'FROM "{CASE_LAYER}" c JOIN temp.sweep_owner o ON o.owner = '
                f"{owner.replace('owner_code', 'c.owner_code')} "
                "JOIN temp.sweep_due d ON d.category = c.category AND d.status = c.status "
                f"WHERE c.{where.replace('status IN', 'c.status IN')}"
            )
            picked = conn.execute(
                f"SELECT c.id, o.owner, o.next {joined} LIMIT ?", [cutoff, sample]
            ).fetchall()
            conn.execute(
                f"INSERT INTO gis_grid_case_log ({', '.join(CASE_LOG_COLUMNS)}) "
                "SELECT c.id, coalesce(c.version, 1) + 1, coalesce(c.community_code, "
                "CASE WHEN length(o.next) >= 12 THEN substr(o.next, 1, 12) END), "
                "'escalate', c.status, c.status, 'sweep', 'system', NULL, ?, ?, c.deadline, "
                "NULL, 'overdue since ' || c.deadline, json_object('deadline', d.deadline, "
                "'escalation', coalesce(c.escalation, 0) + 1, 'owner_code', o.next) "
                f"{joined}",
                [cutoff, cutoff, cutoff],
            )
            n = conn.execute("SELECT changes()").fetchone()[0]
            t = f'"{CASE_LAYER}"'
            states = ", ".join(f"'{x}'" for x in LATE_STATUSES)
            conn.execute(
                f"UPDATE {t} SET owner_code = o.next, "
                "escalation = coalesce(escalation, 0) + 1, deadline = d.deadline, "
                "version = coalesce(version, 1) + 1, last_at = ? "
                "FROM temp.sweep_owner o, temp.sweep_due d "
                f"WHERE o.owner = {owner} AND d.category = {t}.category "
                f"AND d.status = {t}.status AND {t}.deadline < ? AND {t}.status IN ({states})",
                [cutoff, cutoff],
            )
            if n:
                self._touch_layer(conn, CASE_LAYER)
        return {"escalated": n, "sample": picked}

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
            for change in changes:
                cols = [c for c in change if c not in ("id", "expected")]
                cur = conn.execute(
                    f'UPDATE "{CASE_LAYER}" SET {", ".join(_quoted(c) + " = ?" for c in cols)} '
                    "WHERE id = ? AND coalesce(version, 1) = ?",
                    [*(_plain(change[c]) for c in cols), change["id"], int(change["expected"])],
                )
                if cur.rowcount != 1:
                    found = conn.execute(
                        f'SELECT coalesce(version, 1) FROM "{CASE_LAYER}" WHERE id = ?',
                        [change["id"]],
                    ).fetchone()
                    if found is None:
                        raise NotFoundError(say("problem_no_case", case=repr(change["id"])))
                    raise stale_case(change["id"], found[0], change["expected"])
            conn.executemany(_INSERT, [[_plain(r.get(c)) for c in CASE_LOG_COLUMNS] for r in log])
            conn.execute(
                "UPDATE gis_grid_meta SET value = CAST(value AS INTEGER) + 1 "
                "WHERE key = 'generation'"
            )
        return len(changes)


def _quoted(name: str) -> str:
    """A column name as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _step_row(row: dict) -> dict:
    """A log row as the stores give it: times as ISO text, ``on_time`` a boolean or None."""
    for c in ("at", "received_at", "due"):
        if row[c] is not None:
            row[c] = str(row[c]).replace(" ", "T")[:19]
    if row["on_time"] is not None:
        row["on_time"] = bool(row["on_time"])
    return row


def _plain(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "item"):
        return value.item()
    return value

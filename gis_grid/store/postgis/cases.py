"""Cases in PostGIS: the append-only case log, and steps written under a version check.

As in the GeoPackage store: a step updates the case's row of the case layer
(incidents) only if it is still at the version the step was taken on, and
appends its log row, in one transaction.
"""

from __future__ import annotations

import pandas as pd
from psycopg import sql

from gis_grid.domain.errors import NotFoundError, stale_case
from gis_grid.domain.messages import say
from gis_grid.domain.model import CASE_LAYER, CASE_LOG_COLUMNS, LINK_COLUMNS
from gis_grid.store.base import (
    CASE_GROUP_KEYS,
    CASE_GROUP_SQL,
    CASE_OWNER_SQL,
    LATE_STATUSES,
    case_group_frame,
    case_owner_sql,
    late_group_frame,
    late_terms,
    log_frame,
    records,
)
from gis_grid.store.postgis import partitions
from gis_grid.store.postgis.connection import plain

#: A timestamp as the stores' ISO text (to_char's format).
ISO = "'YYYY-MM-DD\"T\"HH24:MI:SS'"
_SELECT = ", ".join(
    f"{c}::text"
    if c in ("at", "received_at", "due", "detail")
    else "nullif(community_code, '')"  # the partition key of no community: None
    if c == "community_code"
    else c
    for c in CASE_LOG_COLUMNS
)


class PostGISCases:
    """The case log and case steps."""

    def case_log(self, ids=None, *, since=None, until=None) -> pd.DataFrame:
        """Log rows of the given cases (None: all), optionally by the time they were taken."""
        terms, params = [], {}
        if ids is not None:
            terms.append("case_id = ANY(%(ids)s)")
            params["ids"] = [str(i) for i in ids]
        if since is not None:
            terms.append("at >= %(since)s")
            params["since"] = str(since)
        if until is not None:
            terms.append("at < %(until)s")
            params["until"] = str(until)
        where = f" WHERE {' AND '.join(terms)}" if terms else ""
        with self._cursor() as cur:
            cur.execute(
                f'SELECT {_SELECT} FROM case_log{where} ORDER BY case_id COLLATE "C", seq', params
            )
            rows = cur.fetchall()
        return log_frame(pd.DataFrame(rows, columns=list(CASE_LOG_COLUMNS)))

    def case_groups(self, since, until, by: str, at) -> pd.DataFrame:
        """Per group of cases reported in ``[since, until)``: the indicators' sums (one pass).

        ``by`` is a level key, ``department`` or ``owner`` (the owning grid).
        """
        if CASE_LAYER not in self.layers():
            return case_group_frame([])
        open_ = ", ".join(f"'{s}'" for s in LATE_STATUSES)
        query = CASE_GROUP_SQL.format(key=CASE_GROUP_KEYS[by], p="%s", open=open_, table=CASE_LAYER)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL jit = off")
            cur.execute(query, [str(at), str(since), str(until)])
            rows = cur.fetchall()
        return case_group_frame(rows)

    def case_close_hours(self, since, until, by: str) -> pd.DataFrame:
        """``key`` and ``hours`` from report to close of each closed case in the window."""
        if CASE_LAYER not in self.layers():
            return pd.DataFrame({"key": [], "hours": []})
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {CASE_GROUP_KEYS[by]}, "
                "extract(epoch FROM closed_at - reported_at)::float8 / 3600 "
                f"FROM \"{CASE_LAYER}\" WHERE status = 'closed' AND reported_at >= %s "
                "AND reported_at < %s",
                [str(since), str(until)],
            )
            rows = cur.fetchall()
        return pd.DataFrame(rows, columns=["key", "hours"])

    def case_row(self, case_id: str) -> dict | None:
        """A case's stored row (no geometry) as a plain dict, or None."""
        from gis_grid.store.postgis.layers import read_layers, select_columns

        with self._cursor() as cur:
            schema = read_layers(cur).get(CASE_LAYER)
            if schema is None:
                return None
            cols = [*schema.columns, *LINK_COLUMNS]
            cur.execute(
                sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
                    sql.SQL(", ").join(select_columns(schema.kinds(), cols)),
                    sql.Identifier(CASE_LAYER),
                ),
                [str(case_id)],
            )
            row = cur.fetchone()
        return None if row is None else dict(zip(cols, row, strict=True))

    def case_steps(self, case_id: str) -> list[dict]:
        """A case's log rows, oldest first, as plain dicts."""
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {_SELECT} FROM case_log WHERE case_id = %s ORDER BY seq", [str(case_id)]
            )
            rows = cur.fetchall()
        out = []
        for r in rows:
            row = dict(zip(CASE_LOG_COLUMNS, r, strict=True))
            for c in ("at", "received_at", "due"):
                if row[c] is not None:
                    row[c] = str(row[c]).replace(" ", "T")[:19]
            out.append(row)
        return out

    def cases_near(self, bbox, categories, since, statuses) -> list[tuple]:
        """(id, category, lon, lat) of cases in a box of given categories and statuses, since.

        The case layer must exist (intake asks once, not on every report).
        """
        minx, miny, maxx, maxy = map(float, bbox)
        with self._cursor() as cur:
            cur.execute(
                f'SELECT id, category, lon, lat FROM "{CASE_LAYER}" WHERE '
                "geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326) AND category = ANY(%s) "
                "AND status = ANY(%s) AND reported_at >= %s",
                [minx, miny, maxx, maxy, list(categories), list(statuses), str(since)],
            )
            return cur.fetchall()

    def insert_case(self, case: dict, log: dict) -> None:
        """Write one new case (its row, with ``lon``/``lat`` and chain) and its first log row.

        The lean path of a report; the layer must hold every column of ``case``
        already. A taken id is a DuplicateCodeError.
        """
        import psycopg

        from gis_grid.domain.errors import DuplicateCodeError

        case = {**case, "community_code": partitions.key_of(case.get("community_code"))}
        log = {**log, "community_code": partitions.key_of(log.get("community_code"))}
        cols = list(case)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # ids are unique within the layer, not just within a community's partition: a
            # report waits only for one with the same id, and for bulk writes of the layer
            cur.execute(
                "SELECT pg_advisory_xact_lock_shared(hashtext(%s)), "
                "pg_advisory_xact_lock(hashtext(%s))",
                ["layer:" + CASE_LAYER, f"case:{case['id']}"],
            )
            cur.execute(
                sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(sql.Identifier(CASE_LAYER)),
                [str(case["id"])],
            )
            if cur.fetchone() is not None:
                raise DuplicateCodeError(say("problem_case_id_taken", case=repr(case["id"])))
            seen = {
                table: partitions.ensure(cur, table, [key], self._partition_keys.get(table))
                for table, key in (
                    (CASE_LAYER, case["community_code"]),
                    (partitions.CASE_LOG, log["community_code"]),
                )
            }
            try:
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {} ({}, geom) VALUES ({}, "
                        "ST_SetSRID(ST_MakePoint(%s, %s), 4326))"
                    ).format(
                        sql.Identifier(CASE_LAYER),
                        sql.SQL(", ").join(map(sql.Identifier, cols)),
                        sql.SQL(", ").join(sql.Placeholder() * len(cols)),
                    ),
                    [*(plain(case[c]) for c in cols), float(case["lon"]), float(case["lat"])],
                )
            except psycopg.errors.UniqueViolation:
                raise DuplicateCodeError(
                    say("problem_case_id_taken", case=repr(case["id"]))
                ) from None
            cur.execute(
                sql.SQL("INSERT INTO case_log ({}) VALUES ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, CASE_LOG_COLUMNS)),
                    sql.SQL(", ").join(sql.Placeholder() * len(CASE_LOG_COLUMNS)),
                ),
                [plain(log[c]) for c in CASE_LOG_COLUMNS],
            )
            cur.execute("SELECT nextval('generation')")
        self._seen_partitions(seen)

    def _seen_partitions(self, seen: dict) -> None:
        """Remember partitions a committed write found or made (a report then asks nothing)."""
        for table, keys in seen.items():
            if keys is not None:
                self._partition_keys[table] = keys

    def late_groups(self, cutoff) -> pd.DataFrame:
        """The cases late at ``cutoff`` counted by owning grid, category and status (one scan)."""
        if CASE_LAYER not in self.layers():
            return late_group_frame([])
        with self._cursor() as cur:
            cur.execute(
                f'SELECT {CASE_OWNER_SQL}, category, status, count(*) FROM "{CASE_LAYER}" '
                f"WHERE {late_terms('%s')} GROUP BY 1, 2, 3",
                [str(cutoff)],
            )
            rows = cur.fetchall()
        return late_group_frame(rows)

    def escalate_late(self, cutoff, owner_next: dict, due: dict, sample: int = 1000) -> dict:
        """Hand every case late at ``cutoff`` to the next owner, in SQL: one log row each.

        One statement updates the late cases (their rows locked, so a step
        taken meanwhile waits or is seen) and writes their log rows from the
        values before the update; returns the count and a sample of (id, from, to).
        """
        cutoff = str(cutoff)
        t = f'"{CASE_LAYER}"'
        owner = case_owner_sql("old.")
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE sweep_owner (owner text PRIMARY KEY, next text) ON COMMIT DROP"
            )
            cur.execute(
                "CREATE TEMP TABLE sweep_due (category text, status text, deadline timestamp, "
                "PRIMARY KEY (category, status)) ON COMMIT DROP"
            )
            cur.executemany(
                "INSERT INTO sweep_owner VALUES (%s, %s)",
                [(o, n) for o, n in owner_next.items() if n],
            )
            cur.executemany(
                "INSERT INTO sweep_due VALUES (%s, %s, %s)",
                [(c, st, d) for (c, st), d in due.items()],
            )
            states = ", ".join(f"'{x}'" for x in LATE_STATUSES)
            cur.execute(
                f"WITH moved AS (UPDATE {t} c SET owner_code = o.next, "
                "escalation = coalesce(old.escalation, 0) + 1, deadline = d.deadline, "
                "version = coalesce(old.version, 1) + 1, last_at = %(cutoff)s "
                f"FROM {t} old, sweep_owner o, sweep_due d WHERE old.id = c.id "
                f"AND o.owner = {owner} AND d.category = old.category AND d.status = old.status "
                f"AND old.deadline < %(cutoff)s AND old.status IN ({states}) "
                "RETURNING c.id, coalesce(old.version, 1) + 1 AS seq, coalesce(nullif("
                "old.community_code, ''), CASE WHEN length(o.next) >= 12 THEN left(o.next, 12) "
                "END, '') AS community, "
                f"old.status, old.deadline AS due, d.deadline AS new_deadline, "
                f"coalesce(old.escalation, 0) + 1 AS level, {owner} AS before, o.next), "
                f"logged AS (INSERT INTO case_log ({', '.join(CASE_LOG_COLUMNS)}) "
                "SELECT id, seq, community, 'escalate', status, status, 'sweep', 'system', NULL, "
                "%(cutoff)s, %(cutoff)s, due, NULL, 'overdue since ' || "
                f"to_char(due, {ISO}), jsonb_build_object('deadline', "
                f"to_char(new_deadline, {ISO}), 'escalation', level, "
                "'owner_code', next) FROM moved) "
                "SELECT id, before, next FROM moved",
                {"cutoff": cutoff},
            )
            rows = cur.fetchall()
            if rows:
                cur.execute("SELECT nextval('generation')")
        return {"escalated": len(rows), "sample": rows[:sample]}

    @staticmethod
    def _write_log(cur, log: pd.DataFrame | None, *, drop=None) -> None:
        """Append log rows (inside the transaction); ``drop``: ids whose old log goes first."""
        if drop == "all":
            cur.execute("DELETE FROM case_log")
        elif drop:
            cur.execute("DELETE FROM case_log WHERE case_id = ANY(%s)", [list(map(str, drop))])
        if log is not None and len(log):
            log = log_frame(log)
            log["community_code"] = log["community_code"].map(partitions.key_of)
            partitions.ensure(cur, partitions.CASE_LOG, log["community_code"].unique())
            copy = sql.SQL("COPY case_log ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, CASE_LOG_COLUMNS))
            )
            with cur.copy(copy) as out:
                for row in records(log, CASE_LOG_COLUMNS):
                    out.write_row(row)

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
        t = sql.Identifier(CASE_LAYER)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            for change in changes:
                cols = [c for c in change if c not in ("id", "expected")]
                cur.execute(
                    sql.SQL("UPDATE {} SET {} WHERE id = %s AND coalesce(version, 1) = %s").format(
                        t,
                        sql.SQL(", ").join(
                            sql.SQL("{} = %s").format(sql.Identifier(c)) for c in cols
                        ),
                    ),
                    [*(plain(change[c]) for c in cols), change["id"], int(change["expected"])],
                )
                if cur.rowcount != 1:
                    cur.execute(
                        sql.SQL("SELECT coalesce(version, 1) FROM {} WHERE id = %s").format(t),
                        [change["id"]],
                    )
                    found = cur.fetchone()
                    if found is None:
                        raise NotFoundError(say("problem_no_case", case=repr(change["id"])))
                    raise stale_case(change["id"], found[0], change["expected"])
            log = [{**r, "community_code": partitions.key_of(r.get("community_code"))} for r in log]
            seen = {
                partitions.CASE_LOG: partitions.ensure(
                    cur,
                    partitions.CASE_LOG,
                    {r["community_code"] for r in log},
                    self._partition_keys.get(partitions.CASE_LOG),
                )
            }
            cur.executemany(
                sql.SQL("INSERT INTO case_log ({}) VALUES ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, CASE_LOG_COLUMNS)),
                    sql.SQL(", ").join(sql.Placeholder() * len(CASE_LOG_COLUMNS)),
                ),
                [[plain(r.get(c)) for c in CASE_LOG_COLUMNS] for r in log],
            )
            cur.execute("SELECT nextval('generation')")  # tile caches see it
        self._seen_partitions(seen)
        return len(changes)

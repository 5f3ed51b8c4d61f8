"""The GeoPackage store's revision log and rebalancing proposals.

A boundary change is planned by :func:`gis_grid.store.revisions.plan_rewrite`
inside the write transaction and written with what it replaced, so that it
can be undone; proposals wait in their own table until accepted.
"""

from __future__ import annotations

import sqlite3

import pandas as pd

from gis_grid.domain.model import ASSIGNMENT_COLUMNS, GRID_COLUMNS
from gis_grid.layers.features import to_multi_any
from gis_grid.store.base import (
    PROPOSAL_COLUMNS,
    PROPOSAL_WRITE,
    REVISION_WRITE,
    audit_row,
    link_boxes,
    proposal_frame,
    proposal_id,
    proposal_record,
    proposal_row,
    records,
    revision_row,
)
from gis_grid.store.gpkg.access import write_audit
from gis_grid.store.gpkg.grids import to_history
from gis_grid.store.gpkg.sqlite import CHUNK, GRID_GENERATION_BUMP, bulk_insert, encode
from gis_grid.store.revisions import (
    DryRun,
    Payload,
    Revision,
    Rewrite,
    check_undone,
    pack,
    pack_rewrite,
    payload_of,
    plan_rewrite,
    unpack,
    unpack_rewrite,
)


class GeoPackageRevisions:
    """The revision log and rebalancing proposals."""

    def _rewrite(self, change, community, now, options) -> Revision:
        with self._transaction(f"a {change.operation} in community {community}") as conn:
            current = self.grids(under=[community]) if community else self.grids(codes=[])
            had = self._select(
                f"SELECT {', '.join(ASSIGNMENT_COLUMNS)} FROM assignments "
                "WHERE grid_code >= ? AND grid_code < ?",
                [community, community + ":"],
            )
            latest = conn.execute(
                "SELECT max(id) FROM gis_grid_revisions WHERE community_code = ?", [community]
            ).fetchone()[0]
            check_undone(change, latest)
            plan = plan_rewrite(
                change,
                current,
                had,
                last_versions=self._last_versions,
                options=options,
                neighbours=self._communities_near,
            )
            if change.dry_run:
                raise DryRun(Revision.of(0, plan, change))
            old = plan.replaced
            to_history(conn, old, now)
            for sql, values in (
                ("DELETE FROM assignments WHERE grid_code IN ({})", plan.assignment_codes),
                ("DELETE FROM grids WHERE code IN ({})", old["code"].tolist()),
            ):
                for i in range(0, len(values), CHUNK):
                    chunk = values[i : i + CHUNK]
                    conn.execute(sql.format(",".join("?" * len(chunk))), chunk)
            new = pd.concat([plan.updated, plan.inserted], ignore_index=True)
            if len(new):
                new["updated_at"] = now
                geoms = to_multi_any(new.geometry.to_numpy())
                rows = [
                    (blob, *row, community)
                    for blob, row in zip(encode(geoms), records(new, GRID_COLUMNS), strict=True)
                ]
                bulk_insert(conn, "grids", ("geom", *GRID_COLUMNS, "community_code"), geoms, rows)
            conn.executemany(
                f"INSERT INTO assignments ({', '.join(ASSIGNMENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
                records(plan.assignments, ASSIGNMENT_COLUMNS),
            )
            self._rollup(conn, [community])
            self._update_extent(conn)
            touched = pd.concat([old, new], ignore_index=True)
            if len(touched):
                self._relink(conn, link_boxes(touched), old["code"].tolist())
            rid = self._record(
                conn,
                community,
                change.operation,
                payload_of(plan),
                changed=len(plan.after_codes) + len(plan.deleted),
                summary=change.summary,
                author=change.author,
                undoes=change.undoes,
            )
            if change.audit:
                write_audit(conn, audit_row(change.audit, rid, plan))
            conn.execute(
                "UPDATE gis_grid_meta SET value = CAST(value AS INTEGER) + 1 "
                "WHERE key = 'generation'"
            )
            conn.execute(GRID_GENERATION_BUMP)
        return Revision.of(rid, plan, change)

    def _last_versions(self, codes: list[str]) -> dict[str, int]:
        found = self._in_chunks(
            "SELECT code, max(version) AS v FROM grid_history WHERE code IN ({}) GROUP BY code",
            codes,
        )
        return dict(zip(found["code"], found["v"].astype(int), strict=True))

    def _record(
        self,
        conn: sqlite3.Connection,
        community: str,
        operation: str,
        payload: Payload,
        *,
        changed: int,
        summary: str = "",
        author: str = "",
        undoes: int | None = None,
    ) -> int:
        """Add a revision to the log (inside the write's transaction); return its id."""
        cur = conn.execute(
            f"INSERT INTO gis_grid_revisions ({', '.join(REVISION_WRITE)}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            revision_row(
                community,
                operation,
                pack(payload),
                changed=changed,
                summary=summary,
                author=author,
                undoes=undoes,
            ),
        )
        return int(cur.lastrowid)

    def revisions(self, community: str | None = None) -> pd.DataFrame:
        """The revision log, oldest first, optionally of one community."""
        cols = "id, community_code, operation, summary, author, created_at, undoes, grids_changed"
        if community is None:
            return self._select(f"SELECT {cols} FROM gis_grid_revisions ORDER BY id")
        return self._select(
            f"SELECT {cols} FROM gis_grid_revisions WHERE community_code = ? ORDER BY id",
            [str(community)],
        )

    def payloads(self, community: str, after: int) -> list[tuple[int, Payload]]:
        """What each revision of a community newer than ``after`` replaced and wrote."""
        rows = self._conn.execute(
            "SELECT id, payload FROM gis_grid_revisions WHERE community_code = ? AND id > ? "
            "ORDER BY id",
            (str(community), int(after)),
        ).fetchall()
        return [(int(i), unpack(blob)) for i, blob in rows]

    def save_proposal(
        self,
        parent: str,
        change: Rewrite,
        *,
        params: dict,
        metrics: dict,
        author: str = "",
        audit: dict | None = None,
    ) -> int:
        """Keep a proposed change (not applied) and return its id; audited with it."""
        with self._transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO gis_grid_proposals ({', '.join(PROPOSAL_WRITE)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                proposal_row(
                    parent, change.operation, pack_rewrite(change), params, metrics, author
                ),
            )
            if audit:
                write_audit(conn, audit_row(audit | {"target": f"proposal {cur.lastrowid}"}))
        return int(cur.lastrowid)

    def proposals(self, status: str | None = None) -> pd.DataFrame:
        """Stored proposals (without their grids), newest first."""
        rows = self._conn.execute(
            f"SELECT {', '.join(PROPOSAL_COLUMNS)} FROM gis_grid_proposals"
            + (" WHERE status = ?" if status else "")
            + " ORDER BY id DESC",
            [status] if status else [],
        ).fetchall()
        return proposal_frame(rows)

    def proposal(self, pid: int) -> tuple[dict, Rewrite]:
        """One proposal: its record and the change it would make."""
        rows = self._conn.execute(
            f"SELECT {', '.join(PROPOSAL_COLUMNS)}, payload FROM gis_grid_proposals WHERE id = ?",
            (proposal_id(pid),),
        ).fetchall()
        record, blob = proposal_record(rows, pid)
        return record, unpack_rewrite(blob)

    def close_proposal(
        self, pid: int, status: str, revision: int | None = None, audit: dict | None = None
    ) -> None:
        """Mark a proposal accepted (with the revision it became) or discarded."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE gis_grid_proposals SET status = ?, revision = ? WHERE id = ?",
                (status, revision, int(pid)),
            )
            if audit:
                write_audit(conn, audit_row(audit, revision))

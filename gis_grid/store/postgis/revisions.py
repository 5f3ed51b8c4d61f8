"""The PostGIS store's revision log (one row per boundary change) and rebalancing proposals."""

from __future__ import annotations

import pandas as pd

from gis_grid.domain.model import ASSIGNMENT_COLUMNS
from gis_grid.grids.topology import ValidationOptions
from gis_grid.store.base import (
    PROPOSAL_COLUMNS,
    PROPOSAL_WRITE,
    REVISION_WRITE,
    StoreBase,
    audit_row,
    link_boxes,
    proposal_frame,
    proposal_id,
    proposal_record,
    proposal_row,
    records,
    revision_row,
)
from gis_grid.store.postgis.access import write_audit
from gis_grid.store.postgis.lookup import refreshes_chains
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


class PostGISRevisions:
    """The revision log and rebalancing proposals."""

    @refreshes_chains
    def rewrite(self, change: Rewrite, options: ValidationOptions | None = None) -> Revision:
        """Replace whole subtrees of one community as one revision; all or nothing."""
        return StoreBase.rewrite(self, change, options)

    def _rewrite(self, change, community, now, options) -> Revision:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [community])
            # tile caches and lookup indexes see it
            cur.execute("SELECT nextval('generation'), nextval('grid_generation')")
            cur.execute("SELECT 1 FROM grids WHERE community_code = %s FOR UPDATE", [community])
            current = self._read_grids(cur, ["community_code = %s"], [community])
            cur.execute(
                "SELECT staff_id, grid_code, role, start_date::text, end_date::text "
                "FROM assignments WHERE community_code = %s",
                [community],
            )
            had = pd.DataFrame(cur.fetchall(), columns=list(ASSIGNMENT_COLUMNS))

            def last_versions(codes):
                cur.execute(
                    "SELECT code, max(version) FROM grid_history WHERE community_code = %s "
                    "AND code = ANY(%s) GROUP BY code",
                    [community, codes],
                )
                return dict(cur.fetchall())

            cur.execute("SELECT max(id) FROM revisions WHERE community_code = %s", [community])
            check_undone(change, cur.fetchone()[0])
            plan = plan_rewrite(
                change,
                current,
                had,
                last_versions=last_versions,
                options=options,
                neighbours=lambda box: self._communities_near(cur, box, [community]),
            )
            if change.dry_run:
                raise DryRun(Revision.of(0, plan, change))
            replaced = plan.replaced["code"].tolist()
            self._to_history(cur, replaced, now)
            cur.execute(
                "DELETE FROM assignments WHERE community_code = %s AND grid_code = ANY(%s)",
                [community, plan.assignment_codes],
            )
            cur.execute(
                "DELETE FROM grids WHERE community_code = %s AND code = ANY(%s)",
                [community, plan.deleted["code"].tolist()],
            )
            updated = plan.updated.assign(updated_at=now)
            if len(updated):
                self._update_in_place(cur, updated)
            if len(plan.inserted):
                inserted = plan.inserted.assign(updated_at=now).sort_values("code")
                self._copy_grids(cur, inserted)
            if len(plan.assignments):
                cols = ("community_code", *ASSIGNMENT_COLUMNS)
                with cur.copy(f"COPY assignments ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in records(plan.assignments, ASSIGNMENT_COLUMNS):
                        copy.write_row((row[1][:12], *row))
            self._rollup(cur, [community])
            touched = pd.concat([plan.replaced, updated, plan.inserted], ignore_index=True)
            if len(touched):
                self._relink(cur, link_boxes(touched), replaced)
            rid = self._record(
                cur,
                community,
                change.operation,
                payload_of(plan),
                changed=len(plan.after_codes) + len(plan.deleted),
                summary=change.summary,
                author=change.author,
                undoes=change.undoes,
            )
            if change.audit:
                write_audit(cur, audit_row(change.audit, rid, plan))
        return Revision.of(rid, plan, change)

    @staticmethod
    def _record(
        cur,
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
        cur.execute(
            f"INSERT INTO revisions ({', '.join(REVISION_WRITE)}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
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
        return int(cur.fetchone()[0])

    def revisions(self, community: str | None = None) -> pd.DataFrame:
        """The revision log, oldest first, optionally of one community."""
        cols = "id, community_code, operation, summary, author, created_at, undoes, grids_changed"
        if community is None:
            frame = self._frame(f"SELECT {cols} FROM revisions ORDER BY id")
        else:
            frame = self._frame(
                f"SELECT {cols} FROM revisions WHERE community_code = %s ORDER BY id",
                [str(community)],
            )
        if not len(frame):
            return pd.DataFrame(columns=cols.split(", "))
        return frame

    def payloads(self, community: str, after: int) -> list[tuple[int, Payload]]:
        """What each revision of a community newer than ``after`` replaced and wrote."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT id, payload FROM revisions WHERE community_code = %s AND id > %s "
                "ORDER BY id",
                [str(community), int(after)],
            )
            return [(int(i), unpack(blob)) for i, blob in cur.fetchall()]

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
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO proposals ({', '.join(PROPOSAL_WRITE)}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                proposal_row(
                    parent, change.operation, pack_rewrite(change), params, metrics, author
                ),
            )
            pid = int(cur.fetchone()[0])
            if audit:
                write_audit(cur, audit_row(audit | {"target": f"proposal {pid}"}))
            return pid

    def proposals(self, status: str | None = None) -> pd.DataFrame:
        """Stored proposals (without their grids), newest first."""
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(PROPOSAL_COLUMNS)} FROM proposals"
                + (" WHERE status = %s" if status else "")
                + " ORDER BY id DESC",
                [status] if status else None,
            )
            return proposal_frame(cur.fetchall())

    def proposal(self, pid: int) -> tuple[dict, Rewrite]:
        """One proposal: its record and the change it would make."""
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(PROPOSAL_COLUMNS)}, payload FROM proposals WHERE id = %s",
                [proposal_id(pid)],
            )
            record, blob = proposal_record(cur.fetchall(), pid)
        return record, unpack_rewrite(blob)

    def close_proposal(
        self, pid: int, status: str, revision: int | None = None, audit: dict | None = None
    ) -> None:
        """Mark a proposal accepted (with the revision it became) or discarded."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "UPDATE proposals SET status = %s, revision = %s WHERE id = %s",
                [status, revision, int(pid)],
            )
            if audit:
                write_audit(cur, audit_row(audit, revision))

"""The case log: one row per step of a case (who, role, when, from, to, note), appended;
and reporters (Open311 clients) among the users' roles.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


ROLES = "'admin', 'planner', 'supervisor', 'leadership', 'grid_worker'"


def upgrade() -> None:
    op.execute("ALTER TABLE gis_grid.users DROP CONSTRAINT users_role")
    op.execute(
        f"ALTER TABLE gis_grid.users ADD CONSTRAINT users_role CHECK (role IN ({ROLES}, 'reporter'))"
    )
    op.execute(
        "CREATE TABLE gis_grid.case_log ("
        "case_id text NOT NULL, seq integer NOT NULL, community_code text, "
        "action text NOT NULL, from_status text, to_status text NOT NULL, "
        "actor text NOT NULL, role text NOT NULL, staff_id text, "
        "at timestamp NOT NULL, received_at timestamp NOT NULL, due timestamp, "
        "on_time boolean, note text, detail jsonb, "
        "CONSTRAINT case_log_pkey PRIMARY KEY (case_id, seq), "
        "CONSTRAINT case_log_seq CHECK (seq >= 1))"
    )
    op.execute("CREATE INDEX case_log_at ON gis_grid.case_log (at)")
    # append-only: a step once written is never changed (a replaced import deletes its cases)
    op.execute(
        "CREATE FUNCTION gis_grid.case_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE EXCEPTION 'the case log is append-only'; END$$"
    )
    op.execute(
        "CREATE TRIGGER case_log_no_update BEFORE UPDATE ON gis_grid.case_log "
        "FOR EACH ROW EXECUTE FUNCTION gis_grid.case_log_append_only()"
    )


def downgrade() -> None:
    op.execute("DELETE FROM gis_grid.users WHERE role = 'reporter'")
    op.execute("ALTER TABLE gis_grid.users DROP CONSTRAINT users_role")
    op.execute(f"ALTER TABLE gis_grid.users ADD CONSTRAINT users_role CHECK (role IN ({ROLES}))")
    op.execute("DROP TABLE gis_grid.case_log")
    op.execute("DROP FUNCTION gis_grid.case_log_append_only()")

"""The large tables partitioned by community code: every layer's table and the case log.

Each becomes ``PARTITION BY LIST (community_code)`` with the key in its
primary key (``(community_code, id)``, ``(community_code, case_id, seq)``),
one partition per community with grids and one for rows in no community
(key ``''``: a key column cannot be NULL). Rows are copied over in this
migration's transaction; indexes are made again as they were, plus one on
``id`` alone (a case is found by its id) where the key now leads.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gis_grid.store.postgis.partitions import attach_statements

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

S = "gis_grid"


def _rows(query: str, **params) -> list:
    return op.get_bind().execute(sa.text(query), params).fetchall()


def _run(statement: str) -> None:
    """One statement as written (no bind parameters parsed: index definitions hold ``::``)."""
    op.get_bind().exec_driver_sql(statement)


def _sql(statement) -> str:
    """A psycopg ``sql`` statement as text (the migration's connection runs it)."""
    return statement.as_string(op.get_bind().connection.driver_connection)


def _set_aside(table: str) -> list[str]:
    """Rename ``table`` and its indexes out of the way; return the indexes' definitions."""
    old = f"{table}_before_0011"
    indexes = _rows(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s AND tablename = :t",
        s=S,
        t=table,
    )
    _run(f'ALTER TABLE {S}."{table}" RENAME TO "{old}"')
    for name, _ in indexes:
        _run(f'ALTER INDEX {S}."{name}" RENAME TO "{name}_before_0011"')
    return [definition for _, definition in indexes]


def _move_rows(old: str, table: str, community: str) -> None:
    """Every row of ``old`` into ``table`` (its community code as ``community``); drop ``old``."""
    names = ", ".join(
        f'"{r[0]}"'
        for r in _rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = :s "
            "AND table_name = :t ORDER BY ordinal_position",
            s=S,
            t=old,
        )
    )
    chosen = names.replace('"community_code"', community)
    _run(f'INSERT INTO {S}."{table}" ({names}) SELECT {chosen} FROM {S}."{old}"')
    _run(f'DROP TABLE {S}."{old}" CASCADE')  # a partitioned one with its partitions


def _partitioned(table: str) -> bool:
    return bool(
        _rows(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s "
            "AND c.relname = :t",
            s=S,
            t=table,
        )
    )


def _partition(table: str, key: tuple[str, ...], extra_index: tuple[str, str] | None) -> None:
    """``table`` as a partitioned table with the same columns, rows and indexes."""
    if _partitioned(table):  # made so already (a layer created by this code's store)
        return
    old = f"{table}_before_0011"
    definitions = _set_aside(table)
    _run(
        f'CREATE TABLE {S}."{table}" (LIKE {S}."{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
        "PARTITION BY LIST (community_code)"
    )
    _run(f'ALTER TABLE {S}."{table}" ALTER COLUMN community_code SET NOT NULL')
    columns = ", ".join(f'"{c}"' for c in key)
    _run(f'ALTER TABLE {S}."{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ({columns})')
    for definition in definitions:
        if " UNIQUE " in definition or definition.split(" ON ")[0].endswith("_community"):
            continue  # the old key, and an index the partitions now are
        _run(definition)  # names and the table's name are as before
    if extra_index is not None:
        _run(f'CREATE INDEX "{extra_index[0]}" ON {S}."{table}" {extra_index[1]}')
    keys = {r[0] for r in _rows(f"SELECT DISTINCT community_code FROM {S}.grids")}
    keys |= {
        r[0] for r in _rows(f"SELECT DISTINCT coalesce(community_code, '') FROM {S}.\"{old}\"")
    }
    for k in sorted(keys | {""}):
        for statement in attach_statements(table, k):
            _run(_sql(statement))
    _move_rows(old, table, "coalesce(community_code, '')")


def upgrade() -> None:
    for (name,) in _rows(f"SELECT name FROM {S}.layers ORDER BY name"):
        _partition(name, ("community_code", "id"), (f"{name}_id", "(id)"))
    if _partitioned("case_log"):
        return
    _partition(
        "case_log", ("community_code", "case_id", "seq"), ("case_log_case", "(case_id, seq)")
    )
    # append-only, as before: the trigger went with the old table
    _run(
        "CREATE TRIGGER case_log_no_update BEFORE UPDATE ON gis_grid.case_log "
        "FOR EACH ROW EXECUTE FUNCTION gis_grid.case_log_append_only()"
    )


def _unpartition(table: str, key: tuple[str, ...]) -> None:
    if not _partitioned(table):
        return
    old = f"{table}_before_0011"
    definitions = _set_aside(table)
    _run(f'CREATE TABLE {S}."{table}" (LIKE {S}."{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
    _run(f'ALTER TABLE {S}."{table}" ALTER COLUMN community_code DROP NOT NULL')
    columns = ", ".join(f'"{c}"' for c in key)
    _run(f'ALTER TABLE {S}."{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ({columns})')
    for definition in definitions:
        name = definition.split(" ON ")[0].rsplit(" ", 1)[-1].strip('"')
        if " UNIQUE " in definition or name in (f"{table}_id", "case_log_case"):
            continue
        _run(definition.replace(" ON ONLY ", " ON "))
    if table != "case_log":
        _run(f'CREATE INDEX "{table}_community" ON {S}."{table}" (community_code)')
    _move_rows(old, table, "nullif(community_code, '')")


def downgrade() -> None:
    for (name,) in _rows(f"SELECT name FROM {S}.layers ORDER BY name"):
        _unpartition(name, ("id",))
    if not _partitioned("case_log"):
        return
    _unpartition("case_log", ("case_id", "seq"))
    _run(
        "CREATE TRIGGER case_log_no_update BEFORE UPDATE ON gis_grid.case_log "
        "FOR EACH ROW EXECUTE FUNCTION gis_grid.case_log_append_only()"
    )

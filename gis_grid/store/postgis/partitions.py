"""The large tables partitioned by community code (PostgreSQL declarative partitioning).

Every layer's table (features, the cases among them, with their links to the
grids) and the case log are ``PARTITION BY LIST (community_code)``: one
partition per community, and one for the rows in no community, whose key is
:data:`NONE` (``''``: a primary key's column cannot be NULL; the store reads
it back as None). The key is in every primary key, so the schema is ready for
Citus (``create_distributed_table(table, 'community_code')``; ``staff``,
``users`` and ``layers`` become reference tables), and a query that names its
community reads one partition.

A partition is made as a table of its own and then attached, which locks the
parent only against other schema changes (``SHARE UPDATE EXCLUSIVE``): a
community's first grids do not stop reads or writes of the others. It is
made in the transaction of the write that needs it, so a write that fails
leaves no partition behind.

Ids stay unique within a layer although the key is (community, id): every
write that adds ids checks them under the layer's advisory lock (a unique
index of a partitioned table must hold its key).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from psycopg import sql

#: The key of rows in no community.
NONE = ""
#: The case log's table (the other partitioned tables are the layers').
CASE_LOG = "case_log"
_MAX_NAME = 63  # PostgreSQL's identifier limit: a longer name is cut, and could collide
_BOUND = re.compile(r"FOR VALUES IN \('((?:[^']|'')*)'\)")


def partition_name(table: str, key: str) -> str:
    """The table that holds ``table``'s rows of community ``key`` (``none``: no community).

    Examples
    --------
    >>> partition_name("incidents", "110105001001")
    'incidents__110105001001'
    >>> partition_name("incidents", "")
    'incidents__none'
    >>> len(partition_name("x" * 60, "110105001001"))
    63
    """
    suffix = "__" + (key or "none")
    if len(table) + len(suffix) <= _MAX_NAME:
        return table + suffix
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    return table[: _MAX_NAME - len(suffix) - 9] + "_" + digest + suffix


def is_partition_name(name: str) -> bool:
    """Whether a table's name is a partition's (what schema comparisons leave out)."""
    return re.search(r"__(none|[0-9]{12})$", name) is not None


def key_of(code) -> str:
    """The partition key of a community code (None, NaN: no community)."""
    return NONE if code is None or code != code else str(code)


def partitioned_tables(cur) -> list[str]:
    """The store's partitioned tables, by name."""
    cur.execute(
        "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'gis_grid' "
        "ORDER BY c.relname"
    )
    return [r[0] for r in cur.fetchall()]


def partition_keys(cur, table: str) -> set[str]:
    """The community codes ``table`` has a partition for (:data:`NONE` among them)."""
    cur.execute(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        [f'gis_grid."{table}"'],
    )
    keys = set()
    for (bound,) in cur.fetchall():
        found = _BOUND.fullmatch(bound)
        if found:
            keys.add(found.group(1).replace("''", "'"))
    return keys


def attach_statements(table: str, key: str) -> list[str]:
    """SQL that makes ``table``'s partition for ``key``: a table of its own, then attached."""
    part = sql.Identifier("gis_grid", partition_name(table, key))
    parent = sql.Identifier("gis_grid", table)
    return [
        # an empty table of its own: attaching it scans nothing
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
            part, parent
        ),
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
            parent, part, sql.Literal(key)
        ),
    ]


def ensure(cur, table: str, keys: Iterable, known: set[str] | None = None) -> set[str] | None:
    """Make the partitions of ``table`` that ``keys`` need (inside the caller's transaction).

    ``known``: keys already seen to have a partition (a cache; None: ask the
    database). Returns the keys the table now has a partition for, or None
    when ``known`` already held them all.
    """
    wanted = {key_of(k) for k in keys}
    if known is not None and wanted <= known:
        return None
    # one maker of a table's partitions at a time (a second waits, then finds them made)
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["partitions:" + table])
    have = partition_keys(cur, table)
    for key in sorted(wanted - have):
        for statement in attach_statements(table, key):
            cur.execute(statement)
    return have | wanted


def ensure_everywhere(cur, keys: Iterable) -> None:
    """Make the partitions of ``keys`` in every partitioned table (a community's first grids)."""
    keys = list(keys)
    for table in partitioned_tables(cur):
        ensure(cur, table, keys)


def community_keys(cur) -> set[str]:
    """Every community code with grids, and :data:`NONE`."""
    cur.execute("SELECT DISTINCT community_code FROM grids")
    return {NONE, *(r[0] for r in cur.fetchall())}

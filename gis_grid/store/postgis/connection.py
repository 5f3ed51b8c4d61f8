"""PostGIS connections and the SQL helpers every part of the store uses.

The URL forms, the schema revision this code needs and the Alembic
migrations that build it, the check a pooled connection gets on checkout,
and small value helpers. Nothing here knows grids or layers.
"""

from __future__ import annotations

import os
import select

import pandas as pd
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from gis_grid.domain.errors import GisGridError, StoreError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level
from gis_grid.geo.crs import local_metric_crs
from gis_grid.store.base import shown_url

S = "gis_grid"


#: The Alembic revision this code reads and writes (the newest migration).
SCHEMA_REVISION = "0011"


#: The Alembic scripts (``gis_grid/store/migrations``) that build the schema.
MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")


#: Session settings of the connections tiles are made on. A tile is one short query
#: waited on by a map: PostgreSQL picks parallel plans for low-zoom tiles whose
#: partial ``ST_AsMVT`` states then travel between processes (a z12 tile of 2,300
#: courtyards took 19 ms so against 7.7 ms in one process), and a costly plan
#: JIT-compiles for longer than it runs. Validation keeps both: it gains from them.
TILE_SESSION = "-c jit=off -c max_parallel_workers_per_gather=0"


def check_connection(conn: psycopg.Connection) -> None:
    """Check a pooled connection on checkout; a round trip only when it may be gone.

    An idle connection has nothing to read. When the server ends it (a restart,
    ``pg_terminate_backend``) its socket turns readable — the goodbye message or
    the end of the stream — and only then does the full check run (an empty
    query, which fails, so the pool connects anew). Checking every checkout by
    a round trip cost 0.14 ms: as much as a whole z16 tile.
    """
    if conn.closed or _readable(conn.pgconn.socket):
        ConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    """Whether a socket has something to read (or was closed), without waiting.

    ``poll`` where there is one: ``select`` refuses descriptors past 1,023,
    which a busy server reaches.
    """
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


#: Above this many points a lookup goes through COPY into a temporary table.
COPY_FROM = 2_000


SUBDIVIDE = 64


#: A write of at least this many rows to a table refreshes its statistics at once.
ANALYZE_AFTER = 10_000


LEVEL_KEYS = frozenset(level.key for level in Level)


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy form of a ``postgresql://`` URL (psycopg 3 driver)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}"


def migrate(url: str, revision: str = "head", *, down: bool = False) -> str:
    """Create or upgrade the gis-grid schema in a PostGIS database; return its revision.

    Runs the Alembic migrations shipped in ``gis_grid/store/migrations``
    (``CREATE EXTENSION postgis`` included) up to ``revision`` (the newest:
    :data:`SCHEMA_REVISION`, which this code needs); with ``down``, back down to it.
    """
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
        with engine.connect() as connection:
            from sqlalchemy import text

            return connection.execute(
                text(f"SELECT version_num FROM {S}.alembic_version")
            ).scalar_one()
    except Exception as exc:  # connection refused, no PostGIS, no rights
        if isinstance(exc, GisGridError):
            raise
        raise StoreError(
            say("problem_cannot_migrate", url=shown_url(url), why=str(exc).splitlines()[0])
        ) from exc
    finally:
        engine.dispose()


def schema_revision(url: str) -> str | None:
    """The Alembic revision of the gis-grid schema in a database (None: no schema)."""
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            if not conn.execute(
                "SELECT to_regclass('gis_grid.alembic_version') IS NOT NULL"
            ).fetchone()[0]:
                return None
            row = conn.execute(f"SELECT version_num FROM {S}.alembic_version").fetchone()
    except psycopg.OperationalError as exc:
        raise StoreError(
            say("problem_cannot_connect", url=shown_url(url), why=str(exc).strip().splitlines()[-1])
        ) from exc
    return row[0] if row else None


def lsn(text: str) -> int:
    """A PostgreSQL WAL position (``pg_lsn`` as text) as a number, to compare.

    Examples
    --------
    >>> lsn("16/B374D848") > lsn("16/B374D847") > lsn("15/FFFFFFFF")
    True
    """
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def iso_date(value) -> str | None:
    """A date as ISO text (None for missing)."""
    return None if value is None or value is pd.NaT else str(value)[:10]


def plain(value):
    """A filter value as psycopg sends it."""
    return value.item() if hasattr(value, "item") else value


def metric_srids(cur) -> tuple[list[str], list[int]]:
    """Each community's local metric SRID, chosen as the embedded validator chooses it."""
    cur.execute(
        "SELECT community_code, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT community_code, ST_Extent(geom) AS e FROM grids "
        "GROUP BY community_code) q ORDER BY community_code"
    )
    codes, srids = [], []
    for code, minx, miny, maxx, maxy in cur.fetchall():
        codes.append(code)
        srids.append(local_metric_crs((minx + maxx) / 2, (miny + maxy) / 2).to_epsg())
    return codes, srids


def literal(cur, value) -> str:
    """A value as an SQL literal (for COPY, which takes no parameters)."""
    return sql.Literal(value).as_string(cur)

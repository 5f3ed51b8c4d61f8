"""The PostGIS store: the same platform on a multi-user database.

Same protocol, same answers as the GeoPackage store (one contract suite runs
against both), with the heavy work pushed down into SQL:

- writes: one transaction per change set, rows loaded with ``COPY``, the
  communities touched serialised with advisory locks, the checks of
  :mod:`gis_grid.store.checks` run inside the transaction, aggregates summed upward
  in SQL, polygons cut into ``grid_parts`` with ``ST_Subdivide`` for lookups;
- lookup: points joined to ``grid_parts`` (GiST) with ``ST_Intersects`` —
  covers semantics, smallest code wins on a shared edge, units only inside the
  building found, exactly the embedded rule;
- validation: spills, overlaps, area budgets and gaps computed in SQL in each
  community's local metric CRS (the SRIDs :func:`gis_grid.geo.crs.local_metric_crs`
  picks, so both stores measure in the same projection).

Connections come from a psycopg 3 pool that checks each connection on checkout
(:func:`check_connection`), so the store carries on after a PostgreSQL
restart. Vector tiles come from a second, small pool whose sessions never plan
in parallel nor JIT-compile (see :data:`TILE_SESSION`), on a read replica
when one is named (``tile_url``). Values only ever travel as parameters;
identifiers are fixed in this module.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack, contextmanager

import pandas as pd
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from gis_grid.domain.errors import StoreError
from gis_grid.domain.messages import say
from gis_grid.store.base import StoreBase, shown_url
from gis_grid.store.postgis.access import PostGISAccess
from gis_grid.store.postgis.cases import PostGISCases
from gis_grid.store.postgis.connection import (
    MIGRATIONS,
    SCHEMA_REVISION,
    TILE_SESSION,
    S,
    check_connection,
    lsn,
    metric_srids,
    migrate,
    schema_revision,
    sqlalchemy_url,
)
from gis_grid.store.postgis.grids import PostGISGrids
from gis_grid.store.postgis.layers import PostGISLayers
from gis_grid.store.postgis.lookup import INDEX_RECHECK, PostGISLookup
from gis_grid.store.postgis.revisions import PostGISRevisions
from gis_grid.store.postgis.tiles import PostGISTiles

#: Seconds a tile waits for the read replica to catch up before the primary makes it.
REPLICA_WAIT = 0.25
#: Seconds to wait for a connection to the read replica, and to leave it alone after it
#: failed to answer (tiles then come from the primary).
REPLICA_CONNECT = 1.0
REPLICA_RETRY = 30.0
#: How far a replica has replayed the primary's log (NULL on a database not in recovery).
REPLAYED = "SELECT pg_last_wal_replay_lsn()::text"


class PostGISStore(
    PostGISGrids,
    PostGISRevisions,
    PostGISLayers,
    PostGISLookup,
    PostGISTiles,
    PostGISAccess,
    PostGISCases,
    StoreBase,
):
    """A gis-grid store in a PostgreSQL/PostGIS database.

    Parameters
    ----------
    url : str
        ``postgresql://user:password@host:port/database``.
    create : bool
        Run the migrations when the schema is missing (otherwise a database
        without the schema raises :class:`~gis_grid.domain.errors.StoreError` saying
        to run ``gis-grid migrate``).
    pool_size : int
        Connections kept at most.
    tile_url : str, optional
        A read replica of the database (streaming replication) to make vector
        tiles on; everything else reads and writes ``url``. A tile is made on
        the replica only once it has replayed what the primary had written when
        the tile's cache key was read (:meth:`generation`), else on the
        primary, so a cached tile is never older than its key. A replica that
        does not answer is left alone for :data:`REPLICA_RETRY` s while the
        primary makes the tiles.
    """

    def __init__(
        self,
        url: str,
        *,
        create: bool = False,
        pool_size: int = 4,
        lookup_index: bool = True,
        tile_url: str | None = None,
    ) -> None:
        self.url = url
        self.tile_url = tile_url
        #: The primary's WAL position when a cache key was last read, and how far the
        #: replica was last seen to have replayed (both as integers; see _tile_cursor).
        self._wanted_lsn = 0
        self._replayed_lsn = 0
        self._replica_down_until = 0.0
        #: Answer map clicks (:meth:`chain`) from an in-process index of the grids
        #: and staff while it matches the database's grid generation (see chain).
        self.lookup_index = lookup_index
        self._chains = None
        self._chains_current = False
        self._chains_building = False
        self._chains_checked = -INDEX_RECHECK
        self._chains_lock = threading.Lock()
        #: Partitions (community codes by table) committed writes have found or made.
        self._partition_keys: dict[str, set[str]] = {}
        revision = schema_revision(url)
        if revision != SCHEMA_REVISION:
            if revision is not None and revision > SCHEMA_REVISION:
                raise StoreError(
                    say(
                        "problem_schema_newer",
                        url=shown_url(url),
                        revision=revision,
                        known=SCHEMA_REVISION,
                    )
                )
            if not create:
                what = "no gis-grid schema" if revision is None else f"schema {revision}"
                raise StoreError(
                    say(
                        "problem_schema_migrate",
                        url=shown_url(url),
                        what=what,
                        what_zh="无" if revision is None else revision,
                        need=SCHEMA_REVISION,
                    )
                )
            migrate(url)
        if tile_url is not None and schema_revision(tile_url) != SCHEMA_REVISION:
            raise StoreError(
                say("problem_tile_replica", url=shown_url(tile_url), need=SCHEMA_REVISION)
            )
        self.pool_size = pool_size
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=True,
            name="gis-grid",
            check=check_connection,
            kwargs={"options": f"-c search_path={S},public"},
        )
        self._tile_pools: dict[str, ConnectionPool] = {}
        self._tile_pool_lock = threading.Lock()
        self._grid_tile_queries: dict[tuple, str] = {}

    def close(self) -> None:
        """Close the pools."""
        self._pool.close()
        for pool in self._tile_pools.values():
            pool.close()

    def __repr__(self) -> str:
        return f"PostGISStore({shown_url(self.url)!r})"

    # -- reading

    @contextmanager
    def _cursor(self):
        """A cursor for reads: autocommit, so no BEGIN/COMMIT round trips around them."""
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    yield cur
            finally:
                conn.autocommit = False

    @contextmanager
    def _tile_cursor(self):
        """A cursor for tiles: autocommit, from a pool of :data:`TILE_SESSION` sessions.

        On the replica (``tile_url``) when it has replayed what the primary had
        written when the tile's key was read, else on the primary. A pool opens
        on the first tile it makes, so a command that makes none holds no
        connection for it.
        """
        with ExitStack() as stack:
            conn = None
            if self.tile_url is not None and self._replica_current():
                try:
                    conn = stack.enter_context(
                        self._tile_pool(self.tile_url).connection(timeout=REPLICA_CONNECT)
                    )
                except PoolTimeout:
                    self._replica_failed()
            if conn is None:
                conn = stack.enter_context(self._tile_pool(self.url).connection())
            with conn.cursor() as cur:
                yield cur

    def _tile_pool(self, url: str) -> ConnectionPool:
        pool = self._tile_pools.get(url)
        if pool is None:
            with self._tile_pool_lock:
                pool = self._tile_pools.get(url)
                if pool is None:
                    pool = self._tile_pools[url] = ConnectionPool(
                        url,
                        min_size=1,
                        max_size=self.pool_size,
                        open=True,
                        name="gis-grid-tiles",
                        check=check_connection,
                        kwargs={
                            "autocommit": True,
                            "options": f"-c search_path={S},public {TILE_SESSION}",
                        },
                    )
        return pool

    def _sequence_value(self, sequence: str) -> int:
        """A generation sequence's value: a cache key.

        With a tile replica, the primary's WAL position read with it is remembered:
        a tile made for this key must have seen it.
        """
        with self._cursor() as cur:
            if self.tile_url is None:
                cur.execute(f"SELECT last_value FROM {sequence}")
                return int(cur.fetchone()[0])
            cur.execute(f"SELECT last_value, pg_current_wal_lsn()::text FROM {sequence}")
            value, position = cur.fetchone()
        self._wanted_lsn = max(self._wanted_lsn, lsn(position))
        return int(value)

    def _replica_current(self, wait: float = REPLICA_WAIT) -> bool:
        """Whether the replica has replayed up to :attr:`_wanted_lsn` (waiting up to ``wait`` s).

        A database not in recovery (a logical replica, a copy) replays nothing
        and counts as current.
        """
        if time.monotonic() < self._replica_down_until:
            return False
        if self._replayed_lsn >= self._wanted_lsn:
            return True
        end = time.monotonic() + wait
        while True:
            try:
                with self._tile_pool(self.tile_url).connection(timeout=REPLICA_CONNECT) as conn:
                    replayed = conn.execute(REPLAYED).fetchone()[0]
            except (PoolTimeout, psycopg.OperationalError):
                self._replica_failed()
                return False
            self._replayed_lsn = max(
                self._replayed_lsn, self._wanted_lsn if replayed is None else lsn(replayed)
            )
            if self._replayed_lsn >= self._wanted_lsn or time.monotonic() >= end:
                return self._replayed_lsn >= self._wanted_lsn
            time.sleep(0.01)

    def _replica_failed(self) -> None:
        """The replica does not answer: the primary makes tiles for :data:`REPLICA_RETRY` s."""
        self._replica_down_until = time.monotonic() + REPLICA_RETRY
        logging.getLogger("gis_grid").warning(
            "the tile replica %s does not answer; tiles come from the primary for %.0f s",
            shown_url(self.tile_url),
            REPLICA_RETRY,
        )

    def _frame(self, sql: str, params=None) -> pd.DataFrame:
        with self._cursor() as cur:
            cur.execute(sql, params)
            cols = [d.name for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=cols)


__all__ = [
    "MIGRATIONS",
    "SCHEMA_REVISION",
    "TILE_SESSION",
    "PostGISStore",
    "metric_srids",
    "migrate",
    "sqlalchemy_url",
]

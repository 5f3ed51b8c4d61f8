"""Point lookups on PostGIS.

A map click's chain of grids with their staff comes from an in-process
index while it matches the database's grid generation, else from one query;
bulk lookups join points to the subdivided grid parts.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from psycopg_pool import PoolClosed

from gis_grid.domain.model import AGGREGATES, Level
from gis_grid.grids.lookup import TOUCH, settle_codes, settle_few
from gis_grid.store.base import empty_lookup
from gis_grid.store.postgis.connection import COPY_FROM

#: Seconds between checks of the grid generation by the in-process lookup index.
INDEX_RECHECK = 1.0
#: Lookups of at most this many points (map clicks) are settled without building frames.
FEW = 16
#: Lookups in SQL of at least this many points run in two halves on two connections.
SPLIT_FROM = 50_000
#: The header of PostgreSQL's binary COPY format (signature, flags, no extension).
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("li", ">i4"),
        ("i", ">i8"),
        ("lx", ">i4"),
        ("x", ">f8"),
        ("ly", ">i4"),
        ("y", ">f8"),
    ]
)


def binary_points(i: np.ndarray, x: np.ndarray, y: np.ndarray) -> bytes:
    """Rows (``i`` bigint, ``x``, ``y`` float8) in PostgreSQL's binary COPY format, at once.

    Examples
    --------
    >>> data = binary_points(np.array([1]), np.array([1.5]), np.array([2.0]))
    >>> len(data) == len(_COPY_HEADER) + _COPY_ROW.itemsize + 2
    True
    """
    rows = np.empty(len(x), _COPY_ROW)
    rows["n"], rows["li"], rows["lx"], rows["ly"] = 3, 8, 8, 8
    rows["i"], rows["x"], rows["y"] = i, x, y
    return _COPY_HEADER + rows.tobytes() + b"\xff\xff"


def curve_keys(x: np.ndarray, y: np.ndarray, bits: int = 16) -> np.ndarray:
    """Each point's place along a Z-order curve over the points' box: near points, near keys.

    Examples
    --------
    >>> curve_keys(np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])).tolist()
    [0, 1431655765, 2863311530, 4294967295]
    """

    def spread(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.uint64)
        for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        return v

    span = (1 << bits) - 1

    def scaled(v: np.ndarray) -> np.ndarray:
        low, high = float(v.min()), float(v.max())
        return np.round((v - low) / ((high - low) or 1.0) * span)

    return spread(scaled(x)) | (spread(scaled(y)) << np.uint64(1))


def refreshes_chains(method):
    """A grid write through this store: its lookup index rechecks on the next click."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        finally:
            self._chains_checked = -INDEX_RECHECK

    return wrapper


class PostGISLookup:
    """Point lookups: the chain of grids at a map click, and bulk lookups."""

    def chain(self, lon: float, lat: float, on: dt.date | None = None) -> list[dict]:
        """:func:`gis_grid.grids.queries.chain` for one point: the map's click, a hot path.

        With :attr:`lookup_index` (the default) from an in-process
        :class:`~gis_grid.grids.queries.Chains` of all grids and staff in force
        (~0.15 ms), as long as the database's grid generation still matches it
        (checked at most every :data:`INDEX_RECHECK` seconds, and right after a
        write through this store). Without a current index — the first clicks,
        or after any grid write — it answers in one query (~2 ms) while a new
        index is built in the background. Both give the grids :meth:`lookup`
        gives, with their staff.
        """
        if self.lookup_index and on is None:
            chains = self._current_chains()
            if chains is not None:
                return chains.chain(lon, lat)
        return self._chain_sql(lon, lat, on)

    def chain_index(self):
        """The in-process grids and staff in force if current (else None, and one is built)."""
        return self._current_chains() if self.lookup_index else None

    def _current_chains(self, fresh: bool = False):
        """The in-process index if it matches the database, else None (and build one).

        ``fresh``: compare it with the database now, not only every :data:`INDEX_RECHECK` s.
        """
        if fresh:
            self._chains_checked = -INDEX_RECHECK
        if time.monotonic() - self._chains_checked >= INDEX_RECHECK:
            with self._chains_lock:
                if time.monotonic() - self._chains_checked >= INDEX_RECHECK:
                    stamp = (self.grid_generation(), dt.date.today())
                    self._chains_checked = time.monotonic()
                    self._chains_current = self._chains is not None and (
                        self._chains.stamp == stamp
                    )
                    if not self._chains_current and not self._chains_building:
                        self._chains_building = True
                        threading.Thread(
                            target=self._build_chains, args=(stamp,), daemon=True
                        ).start()
        return self._chains if self._chains_current else None

    def _build_chains(self, stamp) -> None:
        from gis_grid.grids.queries import Chains

        try:
            # batches too are answered from it: its lookups may use the cores
            self._chains = Chains.of(self, stamp, workers=None)
            # half a million grids are long-lived objects: keep the cyclic garbage
            # collector from walking them on every full collection (pauses of 100 ms+)
            gc.freeze()
            self._chains_checked = -INDEX_RECHECK  # compare it with the database next click
        except PoolClosed:  # the store closed while it was built: nobody will ask
            pass
        except Exception:  # clicks go on being answered by query; say why once
            logging.getLogger("gis_grid").exception("the lookup index could not be built")
        finally:
            self._chains_building = False

    def wait_for_index(self, timeout: float = 600.0) -> bool:
        """Block until the lookup index is current (True) or ``timeout`` passes."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._chains_checked = -INDEX_RECHECK
            if self._current_chains() is not None:
                return True
            time.sleep(0.05)
        return False

    def grid_generation(self) -> int:
        """A number only grid, staff and assignment writes advance (migration 0006)."""
        return self._sequence_value("grid_generation")

    def _chain_sql(self, lon: float, lat: float, on: dt.date | None = None) -> list[dict]:
        """:meth:`chain` by query: the point's codes (:meth:`lookup`), then their staff."""
        row = self.lookup([lon], [lat]).iloc[0]
        codes = [str(row[level.key]) for level in Level if pd.notna(row[level.key])]
        if not codes:
            return []
        day = (on or dt.date.today()).isoformat()
        aggregates = ", ".join(f"g.{c}" for c in AGGREGATES)
        with self._cursor() as cur:
            cur.execute(
                f"SELECT g.code, g.level, g.name, {aggregates}, a.staff_id, s.name, a.role, "
                "s.phone FROM grids g LEFT JOIN assignments a ON a.community_code = "
                "g.community_code AND a.grid_code = g.code AND coalesce(a.start_date::text, '') "
                "<= %(day)s AND coalesce(a.end_date::text, '9999-12-31') >= %(day)s "
                "LEFT JOIN staff s ON s.staff_id = a.staff_id "
                "WHERE g.community_code = %(community)s AND g.code = ANY(%(codes)s) "
                "ORDER BY length(g.code), a.staff_id",
                {"community": codes[0][:12], "codes": codes, "day": day},
            )
            rows = cur.fetchall()
        from gis_grid.grids.queries import grid_entry, staff_entry

        out: list[dict] = []
        n = len(AGGREGATES)
        for code, level, name, *rest in rows:
            counts, (staff_id, person, role, phone) = rest[:n], rest[n:]
            if not out or out[-1]["code"] != code:
                out.append({**grid_entry(code, level, name, counts), "staff": []})
            if staff_id is not None:
                out[-1]["staff"].append(staff_entry(staff_id, person, role, phone))
        return out

    def lookup(self, lon, lat) -> pd.DataFrame:
        """For each point, the grid code at each level covering it (the embedded rule).

        More than :data:`FEW` points are answered from the in-process index of
        :meth:`chain` when it matches the database's grid generation (read
        first, so a batch sees every grid write committed before it), else in
        SQL (see :meth:`_lookup_sql`) while an index is built in the background.
        Both give the same codes (tests/test_postgis.py holds them to it).
        """
        x = np.atleast_1d(np.asarray(lon, dtype=float))
        y = np.atleast_1d(np.asarray(lat, dtype=float))
        if x.shape != y.shape:
            raise ValueError("lon and lat must have the same length")
        if not len(x):
            return empty_lookup(0)
        if self.lookup_index and len(x) > FEW:
            chains = self._current_chains(fresh=True)
            if chains is not None:
                return chains.index.lookup(x, y)
        return self._lookup_sql(x, y)

    def _lookup_sql(self, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        """:meth:`lookup` in the database: points joined to the subdivided grid parts.

        A few points find their parts through the parts' GiST index. Many are
        loaded (binary ``COPY``) into a temporary table with an index of their
        own, and every part finds its points; past :data:`SPLIT_FROM` points the
        batch is cut in two along a space-filling curve and the halves run on
        two connections at once (the server's cores).
        """
        if len(x) < COPY_FROM:  # few points: each finds its parts through the GiST index
            with self._pool.connection() as conn, conn.cursor() as cur:
                # one statement, read-only: no transaction around it (BEGIN and ROLLBACK
                # were two of the three round trips of a map click)
                conn.autocommit = True
                try:
                    cur.execute(
                        "SELECT DISTINCT ON (p.i, gp.level) p.i, gp.level, gp.code "
                        "FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(x, y, i) "
                        "JOIN grid_parts gp ON ST_Intersects(gp.geom, ST_SetSRID("
                        "ST_MakePoint(p.x, p.y), 4326)) ORDER BY p.i, gp.level, gp.code",
                        [x.tolist(), y.tolist()],
                    )
                    rows = cur.fetchall()
                finally:
                    conn.autocommit = False
            if len(x) <= FEW:
                return self._few(rows, x, y)
        else:
            order = np.arange(len(x))
            if len(x) >= SPLIT_FROM and self.pool_size >= 2:
                order = order[np.argsort(curve_keys(x, y), kind="stable")]
                halves = [order[: len(x) // 2], order[len(x) // 2 :]]
                with ThreadPoolExecutor(2) as pool:
                    parts = list(pool.map(lambda rows: self._join(rows, x[rows], y[rows]), halves))
                rows = [row for part in parts for row in part]
            else:
                rows = self._join(order, x, y)
        if not rows:
            return empty_lookup(len(x))
        at = np.fromiter((r[0] for r in rows), np.int64, len(rows)) - 1
        levels = np.array([r[1] for r in rows], dtype=object)
        codes = np.array([r[2] for r in rows], dtype=object)
        columns = {}
        for level in Level:
            column = columns[level.key] = np.full(len(x), None, dtype=object)
            mine = levels == level.key
            column[at[mine]] = codes[mine]
        # units only inside the building found (as the embedded index searches them)
        units, buildings = columns["unit"], columns["building"]
        for k in np.flatnonzero(units != None):  # noqa: E711 (elementwise)
            if units[k][:21] != buildings[k]:
                units[k] = None
        out = pd.DataFrame(columns)
        return settle_codes(
            out, lambda level, parents, rows: self._near(level, parents, x[rows], y[rows])
        )

    def _join(self, rows: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[tuple]:
        """(point number from 1, level, code) of the parts covering points ``rows``.

        On one connection: the points are indexed once, then every part finds its points.
        """
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            # no JIT (compiling costs more than it saves here), sort in memory
            cur.execute("SET LOCAL jit = off")
            cur.execute("SET LOCAL work_mem = '256MB'")
            cur.execute(
                "CREATE TEMP TABLE pts (i bigint, x float8, y float8, g geometry "
                "GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(x, y), 4326)) STORED) "
                "ON COMMIT DROP"
            )
            with cur.copy("COPY pts (i, x, y) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(binary_points(rows + 1, x, y))
            # no ANALYZE: the plan below is fixed by its form, and statistics took longer
            # to gather than the index to build
            cur.execute("CREATE INDEX ON pts USING gist (g)")
            cur.execute(
                "SELECT DISTINCT ON (p.i, gp.level) p.i, gp.level, gp.code "
                # OFFSET 0 keeps the join polygon-driven (the planner would turn
                # it into one index probe per point, ~6x slower)
                "FROM grid_parts gp CROSS JOIN LATERAL (SELECT i FROM pts "
                "WHERE ST_Intersects(gp.geom, pts.g) OFFSET 0) p "
                "ORDER BY p.i, gp.level, gp.code"
            )
            return cur.fetchall()

    def _few(self, rows, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
        """:meth:`lookup`'s answer for a handful of points from the query's rows, frame-free."""
        keys = [level.key for level in Level]
        found = [dict.fromkeys(keys) for _ in range(len(x))]
        for i, level, code in rows:
            found[i - 1][level] = code
        for row in found:  # units only inside the building found
            if row["unit"] is not None and row["unit"][:21] != row["building"]:
                row["unit"] = None
        settle_few(found, lambda level, parents, at: self._near(level, parents, x[at], y[at]))
        table = np.array([[row[k] for k in keys] for row in found], dtype=object)
        return pd.DataFrame(table, columns=keys)  # one object block: no per-column inference

    def _near(self, level: Level, parents, x: np.ndarray, y: np.ndarray) -> list[str | None]:
        """The first child of each parent within :data:`TOUCH` of each point, or None."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT DISTINCT ON (p.i) p.i, g.code FROM unnest(%s::text[], %s::float8[], "
                "%s::float8[]) WITH ORDINALITY AS p(parent, x, y, i) JOIN grids g ON "
                "g.community_code = left(p.parent, 12) AND g.parent_code = p.parent AND "
                "ST_DWithin(g.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326), %s) "
                "ORDER BY p.i, g.code",
                [list(map(str, parents)), x.tolist(), y.tolist(), TOUCH],
            )
            found = dict(cur.fetchall())
        return [found.get(i) for i in range(1, len(x) + 1)]

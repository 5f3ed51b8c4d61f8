"""GeoPackage geometry blobs and the SQLite helpers every part of the store uses.

Geometries are encoded and decoded as GeoPackage blobs (envelope header plus
WKB) in bulk; the ``ST_*`` functions GDAL's R-tree triggers call are
registered on each connection; rows go in by ``executemany`` in chunks under
SQLite's parameter limit.
"""

from __future__ import annotations

import sqlite3
import struct

import numpy as np
import shapely

ENVELOPE_BYTES = (0, 32, 48, 48, 64, 0, 0, 0)


SRS_ID = 4326


#: SQLite allows a limited number of host parameters per statement.
CHUNK = 900


def encode(geoms: np.ndarray) -> list[bytes]:
    """GeoPackage binary for each geometry: header with an xy envelope, then WKB."""
    geoms = np.asarray(geoms, dtype=object)
    wkb = shapely.to_wkb(geoms, byte_order=1, output_dimension=2)
    bounds = shapely.bounds(geoms)
    header = np.zeros(
        len(geoms),
        dtype=[("gp", "S2"), ("ver", "u1"), ("flags", "u1"), ("srs", "<i4"), ("env", "<f8", (4,))],
    )
    header["gp"] = b"GP"
    header["flags"] = 0b0000_0011  # little endian, envelope [minx, maxx, miny, maxy]
    header["srs"] = SRS_ID
    header["env"] = bounds[:, [0, 2, 1, 3]]
    raw = header.tobytes()
    size = header.dtype.itemsize
    return [raw[i * size : (i + 1) * size] + w for i, w in enumerate(wkb)]


def decode(blobs: list[bytes | None]) -> np.ndarray:
    """Geometries from GeoPackage binary blobs (whatever envelope they carry)."""
    wkb = [None if b is None else b[8 + ENVELOPE_BYTES[(b[3] >> 1) & 7] :] for b in blobs]
    return shapely.from_wkb(np.array(wkb, dtype=object))


def _envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    if blob is None or (blob[3] >> 4) & 1:
        return None
    kind = (blob[3] >> 1) & 7
    if kind:
        order = "<" if blob[3] & 1 else ">"
        return struct.unpack_from(order + "4d", blob, 8)
    minx, miny, maxx, maxy = shapely.bounds(decode([blob])[0])
    return minx, maxx, miny, maxy


def register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions GDAL's R-tree triggers call (SpatiaLite names)."""
    conn.create_function("ST_IsEmpty", 1, lambda b: int(_envelope(b) is None), deterministic=True)
    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        conn.create_function(
            name, 1, lambda b, i=i: e[i] if (e := _envelope(b)) else None, deterministic=True
        )


def bulk_insert(
    conn: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    geoms: np.ndarray,
    rows: list[tuple],
) -> None:
    """Insert feature rows (inside the caller's transaction) with their R-tree entries.

    GDAL's triggers keep the R-tree and the feature count one row at a time,
    calling back into Python four times per row; for a bulk insert they are
    set aside, the R-tree rows are written from the envelopes computed here,
    the count is set once, and the triggers are put back — all in the same
    transaction, so a failure leaves triggers, index and rows as they were.
    """
    triggers = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? "
        "AND (name LIKE 'rtree_%_insert' OR name LIKE 'trigger_insert_feature_count_%')",
        (table,),
    ).fetchall()
    for name, _ in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    start = conn.execute(f'SELECT coalesce(max(fid), 0) FROM "{table}"').fetchone()[0]
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    start = max(start, seq[0] if seq else 0)
    fids = range(start + 1, start + 1 + len(rows))
    names = ", ".join(f'"{c}"' for c in ("fid", *columns))
    conn.executemany(
        f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * (len(columns) + 1))})',
        ((fid, *row) for fid, row in zip(fids, rows, strict=True)),
    )
    bounds = shapely.bounds(geoms)
    present = np.isfinite(bounds).all(axis=1)
    conn.executemany(
        f'INSERT INTO "rtree_{table}_geom" VALUES (?, ?, ?, ?, ?)',
        (
            (fid, b[0], b[2], b[1], b[3])
            for fid, b, ok in zip(fids, bounds.tolist(), present.tolist(), strict=True)
            if ok
        ),
    )
    conn.execute(
        f'UPDATE gpkg_ogr_contents SET feature_count = (SELECT count(*) FROM "{table}") '
        "WHERE lower(table_name) = lower(?)",
        (table,),
    )
    for _, sql in triggers:
        conn.execute(sql)


#: Advances the grid generation (grids, staff, assignments — not feature writes), which
#: the in-memory lookup indexes key on; the key appears with the first grid write.
GRID_GENERATION_BUMP = (
    "INSERT INTO gis_grid_meta VALUES ('grid_generation', '1') ON CONFLICT(key) "
    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
)

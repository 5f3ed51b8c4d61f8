"""Feature files in: CSV (lon/lat or WKT columns, Chinese names too), GeoJSON, GeoPackage, SHP.

A file is read whole, its coordinates converted to lon/lat as the given CRS
says (GCJ-02 and BD-09 explicitly), its geometries made the layer's type, and
its rows checked against the layer's schema
(:func:`gis_grid.layers.features.normalise_features`): every bad row is
reported at once and nothing is returned unless every row is good.
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import CRSError, InputError
from gis_grid.domain.messages import said_of, say
from gis_grid.geo.crs import WGS84, InputCRS, parse_crs, to_lonlat
from gis_grid.geo.files import read_vector
from gis_grid.layers.features import FeatureSchema, RowProblems, find_column, normalise_features
from gis_grid.tables import read_csv

#: Refuse feature files larger than this (bytes) unless told otherwise.
MAX_FILE_BYTES = 2 * 1024**3
#: A CSV is checked this many rows at a time: a file of bad rows is refused once
#: :data:`~gis_grid.layers.features.MAX_ROW_PROBLEMS` are found, unread beyond.
CSV_CHUNK_ROWS = 100_000
_LON = ("lon", "lng", "long", "longitude", "x", "经度")
_LAT = ("lat", "latitude", "y", "纬度")


def read_feature_file(
    schema: FeatureSchema,
    path: str | os.PathLike,
    *,
    crs: str | InputCRS | None = None,
    layer: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    make_valid: bool = False,
) -> gpd.GeoDataFrame:
    """Read a layer's features from CSV (lon/lat or WKT), GeoJSON or GeoPackage.

    Coordinates are converted to EPSG:4326 as for grid files: a file that
    declares no CRS (any CSV) needs ``crs`` (``EPSG:4326``, ``EPSG:4490``,
    ``gcj02``, ``bd09``, a projected EPSG code …). Rows without coordinates or
    with coordinates outside lon/lat range are row errors, reported together
    with every other bad row.

    Raises
    ------
    InputError, CRSError, RowError
    """
    path = _import_file(path, max_bytes)
    suffix = path.suffix.lower()
    given = parse_crs(crs) if isinstance(crs, str) else crs
    if suffix == ".csv":
        try:
            data = read_csv(path, what="features")
        except ValueError as exc:
            raise InputError(said_of(exc)) from None
        frame = _csv_geometries(schema, data, given)
    elif suffix in (".geojson", ".json", ".gpkg", ".shp"):
        frame = read_vector(path, layer)
        if not isinstance(frame, gpd.GeoDataFrame):
            raise InputError(say("problem_no_geometry_column", name=str(path)))
        if suffix in (".geojson", ".json") and given is not None:
            frame = frame.set_crs(None, allow_override=True)  # GeoJSON: GDAL says WGS 84 always
    else:
        raise InputError(say("problem_file_type", suffix=repr(path.suffix)))
    if not len(frame):
        raise InputError(say("problem_file_empty", path=str(path)))
    return _to_lonlat_rows(schema, frame, given, path.name, make_valid)


def read_feature_chunks(
    schema: FeatureSchema,
    path: str | os.PathLike,
    *,
    crs: str | InputCRS | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    make_valid: bool = False,
    rows: int = CSV_CHUNK_ROWS,
):
    """A CSV of features as lon/lat frames of ``rows`` rows each, in file order.

    What :func:`read_feature_file` does for a CSV, a chunk at a time, so a
    reader that meets enough bad rows stops without reading the rest. A
    chunk's out-of-range coordinates are row errors numbered within the file.
    """
    path = _import_file(path, max_bytes)
    given = parse_crs(crs) if isinstance(crs, str) else crs
    try:
        chunks = read_csv(path, what="features", chunksize=rows)
        offset = 0
        for data in chunks:
            data.index = range(len(data))
            frame = _csv_geometries(schema, data, given)
            yield _to_lonlat_rows(schema, frame, given, path.name, make_valid, first_row=offset + 1)
            offset += len(data)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(said_of(exc)) from None


def _import_file(path, max_bytes: int) -> Path:
    """The file of an import, there and within the size limit."""
    path = Path(path)
    if not path.exists():
        raise InputError(say("problem_no_file", path=str(path)))
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(
            say(
                "problem_features_too_big",
                name=path.name,
                mb=f"{size / 1e6:,.1f}",
                limit=f"{max_bytes / 1e6:,.0f}",
            )
        )
    return path


def _csv_geometries(schema: FeatureSchema, data: pd.DataFrame, given) -> gpd.GeoDataFrame:
    wkt_col = find_column(data, ("wkt", "geometry", "geom"))
    lon_col, lat_col = find_column(data, _LON), find_column(data, _LAT)
    if wkt_col is not None:
        text = data.pop(wkt_col)
        geoms = np.array(
            [
                shapely.from_wkt(t, on_invalid="ignore")
                if isinstance(t, str) and t.strip()
                else None
                for t in text.tolist()
            ],
            dtype=object,
        )
        data = data.drop(columns=[c for c in (lon_col, lat_col) if c is not None])
    elif lon_col is not None and lat_col is not None:
        if schema.geometry != "Point":
            raise InputError(say("problem_csv_needs_wkt", layer=schema.name, kind=schema.geometry))
        x = pd.to_numeric(data.pop(lon_col), errors="coerce").to_numpy(float)
        y = pd.to_numeric(data.pop(lat_col), errors="coerce").to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        geoms = np.full(len(data), None, dtype=object)
        geoms[ok] = shapely.points(x[ok], y[ok])
    else:
        raise InputError(say("problem_csv_lonlat"))
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms), crs=None)


def _to_lonlat_rows(
    schema: FeatureSchema,
    frame: gpd.GeoDataFrame,
    given,
    name: str,
    make_valid: bool,
    first_row: int = 1,
) -> gpd.GeoDataFrame:
    """Convert to lon/lat; rows whose coordinates cannot be lon/lat become row errors."""
    frame = frame.reset_index(drop=True)
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    if make_valid and schema.geometry != "Point":
        present = ~shapely.is_missing(geoms)
        bad = present & ~shapely.is_valid(geoms)
        geoms = geoms.copy()
        fixed = shapely.make_valid(geoms[bad])
        keep = {"LineString": 1, "Polygon": 3}[schema.geometry]
        # keep the parts of the geometry's own dimension (make_valid may add stray lines)
        geoms[bad] = [_parts_of(g, keep) for g in fixed]
    declared = frame.crs
    source_is_lonlat = (
        given is not None and (given.special or (given.crs and given.crs.is_geographic))
    ) or (given is None and declared is not None and declared.is_geographic)
    bounds = shapely.bounds(geoms)
    present = np.isfinite(bounds).all(axis=1)
    ids_col = find_column(frame, ("id", "编号", "编码", "osm_id"))
    ids = frame[ids_col] if ids_col else pd.Series([None] * len(frame))
    problems = RowProblems(ids.astype(object).where(ids.notna(), None), first_row)
    if source_is_lonlat:
        outside = present & (
            (bounds[:, 0] < -180)
            | (bounds[:, 2] > 180)
            | (bounds[:, 1] < -90)
            | (bounds[:, 3] > 90)
        )
        if outside.any():
            where = pd.Series(
                [
                    f"({b[0]:.6g}, {b[1]:.6g})" if o else None
                    for b, o in zip(bounds, outside, strict=True)
                ]
            )
            problems.add(
                outside,
                "geometry",
                where,
                "row_outside_lonlat",
            )
    problems.raise_if_any(f"{schema.name} in {name}")
    frame = gpd.GeoDataFrame(
        frame.drop(columns=frame.geometry.name), geometry=gpd.GeoSeries(geoms), crs=declared
    )
    if not present.any():  # nothing to convert: the checks name every row without coordinates
        normalise_features(schema, frame.set_crs(WGS84, allow_override=True), first_row=first_row)
    try:
        converted = to_lonlat(frame.loc[present], given)
    except CRSError as exc:
        raise CRSError(say("problem_in_file", name=name, message=exc.message)) from exc
    geoms = geoms.copy()
    geoms[present] = converted.geometry.to_numpy()
    return gpd.GeoDataFrame(
        frame.drop(columns=frame.geometry.name), geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84
    )


def _parts_of(geom, type_id: int):
    """The parts of ``geom`` of one dimension (polygons: 3, lines: 1), as one geometry."""
    if geom is None:
        return None
    parts = shapely.get_parts(geom)
    types = shapely.get_type_id(parts)
    keep = parts[(types == type_id) | (types == type_id + 3)]
    if not len(keep):
        return None
    return shapely.union_all(keep) if len(keep) > 1 else keep[0]

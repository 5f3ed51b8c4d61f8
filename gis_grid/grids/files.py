"""Grid files in and out: GeoJSON, GeoPackage, Shapefile and CSV.

Exports carry ``code``, ``parent_code``, ``level``, ``name`` and the workload
aggregates as columns; :func:`read_grid_file` reads the same columns back, so an
export re-imported into an empty store gives the same grids. CSV carries the
polygon as WKT in a ``wkt`` column, plus ``lon``/``lat`` of a point inside each
grid for spreadsheets.

Files from elsewhere may name columns in Chinese (编码, 名称, 户数, 人口 …) or
in the 10-character form a Shapefile forces (``parent_cod``, ``special_ca``);
both are understood. A file without codes gets them by location: each feature
goes to the grid one level up that contains a point inside it, and is numbered
after that parent's existing children, west→east, north→south.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gis_grid.domain.errors import CRSError, GeometryError, InputError
from gis_grid.domain.messages import said_of, say
from gis_grid.domain.model import AGGREGATES, CODE_LENGTHS, SERIAL_DIGITS, Level, child_code
from gis_grid.domain.numbering import reading_order
from gis_grid.geo.crs import WGS84, InputCRS, parse_crs, to_lonlat
from gis_grid.geo.files import read_vector
from gis_grid.tables import read_csv

#: Columns written by :func:`write_grid_file`, in order.
EXPORT_COLUMNS = ("code", "parent_code", "level", "name", *AGGREGATES, "version")
_ALIASES = {
    "code": ("code", "编码", "网格编码", "grid_code", "gridcode"),
    "parent_code": ("parent_code", "parent_cod", "上级编码", "父级编码", "parent"),
    "level": ("level", "层级", "级别"),
    "name": ("name", "名称", "网格名称"),
    "households": ("households", "househol", "household", "户数"),
    "residents": ("residents", "resident", "人口", "人数", "居民数", "population"),
    "special_care": ("special_care", "special_ca", "重点人群", "特殊人群"),
}
_FORMATS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".csv": "CSV",
}
#: Refuse files larger than this (bytes) unless told otherwise: a city is far smaller.
MAX_FILE_BYTES = 2 * 1024**3


def _format(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(say("problem_file_type", suffix=repr(path.suffix)))
    return fmt


def _rename(frame: pd.DataFrame) -> pd.DataFrame:
    lower = {str(c).strip().lower(): c for c in frame.columns}
    mapping = {}
    for target, names in _ALIASES.items():
        for name in names:
            if name in lower and target not in mapping.values():
                mapping[lower[name]] = target
                break
    return frame.rename(columns=mapping)


def _codes_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    for col in ("code", "parent_code"):
        if col not in frame.columns:
            continue
        values = frame[col]
        if pd.api.types.is_float_dtype(values):
            raise InputError(say("problem_codes_as_numbers", column=repr(col)))
        frame[col] = values.map(lambda v: None if pd.isna(v) else str(v).strip())
    return frame


def read_grid_file(
    path: str | os.PathLike,
    *,
    crs: str | InputCRS | None = None,
    layer: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> gpd.GeoDataFrame:
    """Read grid polygons from a file into EPSG:4326 with the standard column names.

    Parameters
    ----------
    path : path
        A .geojson/.json, .gpkg, .shp or .csv (with a ``wkt`` column) file.
    crs : str, optional
        What the coordinates are (``EPSG:4490``, ``gcj02`` …); required when the
        file declares no CRS (a CSV never does), and must agree when it does.
    layer : str, optional
        The layer to read from a GeoPackage (default: its first layer).

    Raises
    ------
    InputError, CRSError, GeometryError
    """
    path = Path(path)
    if not path.exists():
        raise InputError(say("problem_no_file", path=str(path)))
    fmt = _format(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(
            say(
                "problem_file_too_big",
                name=path.name,
                mb=f"{size / 1e6:,.1f}",
                limit=f"{max_bytes / 1e6:,.0f}",
            )
        )
    given = parse_crs(crs) if isinstance(crs, str) else crs
    if fmt == "CSV":
        try:
            frame = read_csv(path, what="grids")
        except ValueError as exc:
            raise InputError(said_of(exc)) from None
        geom_col = next(
            (c for c in frame.columns if c.lower() in ("wkt", "geometry", "geom")), None
        )
        if geom_col is None:
            raise InputError(say("problem_csv_wkt"))
        try:
            geoms = shapely.from_wkt(frame.pop(geom_col).to_numpy(), on_invalid="raise")
        except shapely.errors.GEOSException as exc:
            raise GeometryError(say("problem_bad_wkt", name=path.name, why=str(exc))) from exc
        frame = frame.drop(columns=[c for c in frame.columns if c.lower() in ("lon", "lat")])
        numeric = [c for c in frame.columns if _rename(frame[[c]]).columns[0] in AGGREGATES]
        for col in numeric:
            values = pd.to_numeric(frame[col], errors="coerce")
            words = frame[col].notna() & values.isna()
            if words.any():
                rows = ", ".join(str(i + 2) for i in words.to_numpy().nonzero()[0][:8])
                raise InputError(
                    say(
                        "problem_csv_not_number",
                        name=path.name,
                        column=col,
                        rows=rows,
                        value=repr(frame.loc[words, col].iloc[0]),
                    )
                )
            frame[col] = values.where(frame[col].notna())
        frame = gpd.GeoDataFrame(frame, geometry=geoms, crs=None)
    else:
        frame = read_vector(path, layer)
        if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name is None:
            raise InputError(say("problem_file_no_geometry", path=str(path)))
        if fmt == "GeoJSON" and frame.crs is not None and given is not None:
            # GeoJSON is lon/lat by definition; GDAL labels every file WGS 84
            frame = frame.set_crs(None, allow_override=True)
    if not len(frame):
        raise InputError(say("problem_file_empty", path=str(path)))
    frame = _codes_as_text(_rename(frame))
    try:
        return to_lonlat(frame, given)
    except CRSError as exc:
        raise CRSError(say("problem_in_file", name=path.name, message=exc.message)) from exc


def repair_geometries(frame: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, int]:
    """Repair invalid polygons (self-intersections, bow-ties) with GEOS ``make_valid``.

    Uses the "structure" method, which keeps polygons polygonal. Returns the
    repaired frame and how many geometries were changed.

    Examples
    --------
    >>> bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    >>> fixed, n = repair_geometries(gpd.GeoDataFrame(geometry=[bowtie], crs=4326))
    >>> n, fixed.geometry[0].geom_type, fixed.geometry[0].area
    (1, 'MultiPolygon', 2.0)
    """
    geoms = frame.geometry.to_numpy()
    broken = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if not broken.any():
        return frame, 0
    fixed = geoms.copy()
    fixed[broken] = shapely.make_valid(geoms[broken], method="structure", keep_collapsed=False)
    collapsed = np.flatnonzero(shapely.is_empty(fixed) & broken)
    if len(collapsed):
        reasons = sorted({shapely.is_valid_reason(g).split("[")[0] for g in geoms[collapsed]})
        rows = f"{', '.join(map(str, collapsed[:8]))}{' …' if len(collapsed) > 8 else ''}"
        raise GeometryError(
            say("problem_no_area", n=len(collapsed), reasons="; ".join(reasons), rows=rows)
        )
    out = frame.copy()
    out[frame.geometry.name] = gpd.GeoSeries(fixed, index=frame.index, crs=frame.crs)
    return out, int(broken.sum())


def assign_missing_codes(frame: gpd.GeoDataFrame, level: Level, store) -> gpd.GeoDataFrame:
    """Give codes to features that have none, by location and standard numbering.

    A feature without ``parent_code`` is placed in the grid one level up that
    contains a point inside it (looked up in ``store``); serials continue after
    the parent's existing children, in reading order (west→east, north→south).

    Raises
    ------
    InputError
        For communities without a code (their code is the statistical code)
        and for features outside every possible parent.
    """
    frame = frame.copy()
    if "code" not in frame.columns:
        frame["code"] = None
    missing = frame["code"].isna().to_numpy() | (frame["code"].astype(str).str.strip() == "")
    if not missing.any():
        return frame
    if level is Level.COMMUNITY:
        raise InputError(say("problem_community_code_column"))
    parent_level = Level(level - 1)
    parents = np.array(
        frame["parent_code"].where(frame["parent_code"].notna(), None)
        if "parent_code" in frame.columns
        else [None] * len(frame),
        dtype=object,
    )
    need = missing & pd.isna(parents)
    if need.any():
        probe = shapely.point_on_surface(frame.geometry.to_numpy()[need])
        found = store.lookup(shapely.get_x(probe), shapely.get_y(probe))[parent_level.key]
        found = found.astype(object).where(found.notna(), None).to_numpy()
        outside = np.flatnonzero(pd.isna(found))
        if len(outside):
            rows = np.flatnonzero(need)[outside]
            raise InputError(
                say(
                    "problem_no_parent_here",
                    n=len(rows),
                    level=parent_level.key,
                    level_zh=parent_level.zh,
                    rows=f"{', '.join(map(str, rows[:8]))}{' …' if len(rows) > 8 else ''}",
                )
            )
        parents[need] = found
    rows = np.flatnonzero(missing)
    serial = reading_order(parents[rows], frame.geometry.to_numpy()[rows])
    width = CODE_LENGTHS[level]
    # serials continue after the children each parent has already (one query for all)
    existing = store.grids(under=sorted(set(parents[rows])), level=level, geometry=False)
    known = pd.concat([existing["code"], frame.loc[~missing, "code"].astype(str)])
    known = known[known.str.len().eq(width)]
    serials = known.str.slice(-SERIAL_DIGITS[level]).astype(int)
    highest = serials.groupby(known.str.slice(0, CODE_LENGTHS[parent_level]).to_numpy()).max()
    taken = {p: int(highest.get(p, 0)) for p in set(parents[rows])}
    codes = [child_code(p, taken[p] + int(s)) for p, s in zip(parents[rows], serial, strict=True)]
    frame.loc[frame.index[rows], "code"] = codes
    return frame


def write_grid_file(grids: gpd.GeoDataFrame, path: str | os.PathLike) -> Path:
    """Write grids with the export columns; the format follows the file's suffix."""
    path = Path(path)
    fmt = _format(path)
    cols = [c for c in EXPORT_COLUMNS if c in grids.columns]
    out = grids[[*cols, grids.geometry.name]].copy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    if fmt == "CSV":
        frame = pd.DataFrame(out[cols])
        probe = shapely.point_on_surface(out.geometry.to_numpy())
        frame["lon"], frame["lat"] = shapely.get_x(probe), shapely.get_y(probe)
        frame["wkt"] = shapely.to_wkt(out.geometry.to_numpy(), rounding_precision=-1)  # lossless
        frame.to_csv(tmp, index=False)
    elif fmt == "ESRI Shapefile":
        # a Shapefile is several files, written under the final name; its 10-character
        # field names (parent_cod, special_ca) are read back by the aliases above
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Normalized/laundered field name")
            pyogrio.write_dataframe(
                out.to_crs(WGS84), path, driver=fmt, encoding="UTF-8", promote_to_multi=True
            )
        return path
    else:
        if path.exists() and fmt == "GPKG":
            raise InputError(say("problem_export_exists", path=str(path)))
        pyogrio.write_dataframe(
            out.to_crs(WGS84), tmp, driver=fmt, layer="grids", promote_to_multi=True
        )
    os.replace(tmp, path)
    return path

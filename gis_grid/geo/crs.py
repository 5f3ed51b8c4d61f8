"""Coordinate reference systems: what comes in, what is stored, what is measured.

Everything is stored in EPSG:4326 (lon/lat). Input may arrive in EPSG:4326,
EPSG:4490 (CGCS2000), any projected CRS PROJ knows, or in the two Chinese
web-map systems that are *not* PROJ transformations: GCJ-02 (Gaode, Tencent)
and BD-09 (Baidu). Those are converted here, explicitly and only when named;
nothing is guessed silently. Metric work (areas, tolerances) happens in a local
projected CRS: the CGCS2000 3-degree Gauss–Krüger zone inside China, UTM
elsewhere.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as ProjCRSError

from gis_grid.domain.errors import CRSError, GeometryError
from gis_grid.domain.messages import say

WGS84 = CRS.from_epsg(4326)

#: The non-PROJ systems, by the names a user may type.
SPECIAL = {"gcj02": "gcj02", "gcj-02": "gcj02", "gcj": "gcj02", "bd09": "bd09", "bd-09": "bd09"}

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0  # BD-09's rotation constant


@dataclass(frozen=True)
class InputCRS:
    """A parsed ``--crs`` value: a PROJ CRS, or one of the special systems."""

    crs: CRS | None
    special: str | None = None

    @property
    def label(self) -> str:
        """How to name this CRS to a user."""
        if self.special:
            return self.special.upper().replace("GCJ02", "GCJ-02").replace("BD09", "BD-09")
        assert self.crs is not None
        return self.crs.to_string()


def parse_crs(value: str | int | CRS) -> InputCRS:
    """Parse a CRS a user typed: ``EPSG:4490``, ``4326``, a WKT/PROJ string, ``gcj02``.

    Examples
    --------
    >>> parse_crs("gcj02").special
    'gcj02'
    >>> parse_crs("EPSG:4490").crs.to_epsg()
    4490
    """
    if isinstance(value, CRS):
        return InputCRS(value)
    text = str(value).strip()
    if text.lower() in SPECIAL:
        return InputCRS(None, SPECIAL[text.lower()])
    try:
        return InputCRS(CRS.from_user_input(int(text) if text.isdigit() else text))
    except ProjCRSError as exc:
        raise CRSError(say("problem_unknown_crs", crs=repr(value))) from exc


def _out_of_china(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.bool_]:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _gcj_offset(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    x, y = lon - 105.0, lat - 35.0
    sq = np.sqrt(np.abs(x))
    s6x, s2x = np.sin(6.0 * x * np.pi), np.sin(2.0 * x * np.pi)
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sq
    dlat += (20.0 * s6x + 20.0 * s2x) * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sq
    dlon += (20.0 * s6x + 20.0 * s2x) * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    inside = ~_out_of_china(lon, lat)
    return np.where(inside, dlon, 0.0), np.where(inside, dlat, 0.0)


def wgs84_to_gcj02(lon: NDArray, lat: NDArray) -> tuple[NDArray, NDArray]:
    """Vectorised WGS-84 → GCJ-02 (no offset outside China).

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(np.array([123.56]), np.array([42.45]))
    >>> bool(0.004 < lon[0] - 123.56 < 0.008)
    True
    """
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _gcj_offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: NDArray, lat: NDArray) -> tuple[NDArray, NDArray]:
    """Vectorised GCJ-02 → WGS-84, inverted by fixed-point iteration to < 1e-9°.

    Examples
    --------
    >>> x, y = wgs84_to_gcj02(np.array([116.39]), np.array([39.91]))
    >>> bx, by = gcj02_to_wgs84(x, y)
    >>> bool(abs(bx[0] - 116.39) < 1e-9 and abs(by[0] - 39.91) < 1e-9)
    True
    """
    glon, glat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(30):
        dlon, dlat = _gcj_offset(wlon, wlat)
        nlon, nlat = glon - dlon, glat - dlat
        done = max(np.max(np.abs(nlon - wlon), initial=0), np.max(np.abs(nlat - wlat), initial=0))
        wlon, wlat = nlon, nlat
        if done < 1e-12:
            break
    return wlon, wlat


def gcj02_to_bd09(lon: NDArray, lat: NDArray) -> tuple[NDArray, NDArray]:
    """Vectorised GCJ-02 → BD-09."""
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: NDArray, lat: NDArray) -> tuple[NDArray, NDArray]:
    """Vectorised BD-09 → GCJ-02: the exact inverse of :func:`gcj02_to_bd09` (to < 1e-12°).

    The usual closed form is only approximate (off by up to 0.22 m on the
    ground); it is the first guess of a Newton-free fixed-point iteration that
    corrects by what the forward transform misses, as for GCJ-02.

    Examples
    --------
    >>> x, y = gcj02_to_bd09(np.array([123.5632]), np.array([42.4501]))
    >>> gx, gy = bd09_to_gcj02(x, y)
    >>> bool(abs(gx[0] - 123.5632) < 1e-11 and abs(gy[0] - 42.4501) < 1e-11)
    True
    """
    blon, blat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x, y = blon - 0.0065, blat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    glon, glat = z * np.cos(theta), z * np.sin(theta)
    for _ in range(30):
        flon, flat = gcj02_to_bd09(glon, glat)
        dlon, dlat = blon - flon, blat - flat
        glon, glat = glon + dlon, glat + dlat
        if max(np.max(np.abs(dlon), initial=0), np.max(np.abs(dlat), initial=0)) < 1e-13:
            break
    return glon, glat


def _apply_xy(geoms: NDArray, func) -> NDArray:
    """Apply a vectorised (lon, lat) → (lon, lat) function to every coordinate."""

    def _transform(coords: NDArray) -> NDArray:
        x, y = func(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _transform)


def lonlat_problem(bounds: tuple[float, float, float, float]) -> str | None:
    """Say what is wrong with lon/lat bounds, or None when they are plausible.

    Examples
    --------
    >>> lonlat_problem((42.4, 123.5, 42.5, 123.6))
    'latitudes beyond ±90 while longitudes fit latitude range: lon/lat look swapped'
    >>> lonlat_problem((500000.0, 4700000.0, 501000.0, 4701000.0))
    'coordinates up to 4701000 are far outside lon/lat range: they look projected (metres)'
    """
    minx, miny, maxx, maxy = bounds
    if not np.all(np.isfinite(bounds)):
        return say("problem_coords_not_finite")
    if max(abs(minx), abs(maxx), abs(miny), abs(maxy)) > 360:
        peak = max(abs(minx), abs(maxx), abs(miny), abs(maxy))
        return say("problem_coords_projected", peak=f"{peak:.0f}")
    if (miny < -90 or maxy > 90) and -90 <= minx and maxx <= 90:
        return say("problem_coords_swapped")
    if miny < -90 or maxy > 90 or minx < -180 or maxx > 180:
        return say("problem_coords_range")
    return None


def to_lonlat(frame: gpd.GeoDataFrame, crs: str | InputCRS | None = None) -> gpd.GeoDataFrame:
    """Return a copy of ``frame`` in EPSG:4326, converting explicitly.

    Parameters
    ----------
    frame : geopandas.GeoDataFrame
        Input features. Its ``crs`` is what the file declared (may be None).
    crs : str or InputCRS, optional
        What the user said the coordinates are. Required when the file declares
        none. For ``gcj02``/``bd09`` the file may declare a geographic CRS
        (such data is usually labelled WGS 84); any other declared CRS must
        agree with the one given.

    Raises
    ------
    CRSError
        When the CRS is missing, contradicts the file, or the coordinates do
        not fit it (projected numbers labelled lon/lat, swapped axes).
    """
    given = parse_crs(crs) if isinstance(crs, str) else crs
    declared = frame.crs
    if given is None and declared is None:
        raise CRSError(say("problem_no_crs"))
    if given is not None and declared is not None:
        if given.special and not CRS(declared).is_geographic:
            raise CRSError(
                say("problem_crs_special_projected", given=given.label, declared=CRS(declared).name)
            )
        if given.crs is not None and not CRS(declared).equals(given.crs, ignore_axis_order=True):
            raise CRSError(
                say("problem_crs_disagree", declared=CRS(declared).name, given=given.crs.name)
            )
    source = given if given is not None else InputCRS(CRS(declared))
    out = frame.copy()
    geoms = out.geometry.to_numpy()
    if source.special:
        probe = shapely.total_bounds(geoms)
        problem = lonlat_problem(tuple(probe))
        if problem:
            raise CRSError(say("problem_coords_misfit", crs=source.label, problem=problem))
        if source.special == "bd09":
            geoms = _apply_xy(geoms, bd09_to_gcj02)
        geoms = _apply_xy(geoms, gcj02_to_wgs84)
        out = gpd.GeoDataFrame(out.drop(columns=out.geometry.name), geometry=geoms, crs=WGS84)
    else:
        assert source.crs is not None
        bounds = shapely.total_bounds(geoms)
        if source.crs.is_geographic:
            problem = lonlat_problem(tuple(bounds))
            if problem:
                raise CRSError(say("problem_coords_misfit", crs=source.crs.name, problem=problem))
        elif (
            np.all(np.isfinite(bounds))
            and -180 <= bounds[0] <= bounds[2] <= 180
            and -90 <= bounds[1] <= bounds[3] <= 90
        ):  # metres of a projected CRS would put the whole file within 180 m of its origin
            raise CRSError(
                say(
                    "problem_coords_degrees",
                    x=f"{bounds[0]:.4f}",
                    y=f"{bounds[1]:.4f}",
                    crs=source.crs.name,
                )
            )
        out = out.set_crs(source.crs, allow_override=True).to_crs(WGS84)
    problem = lonlat_problem(tuple(shapely.total_bounds(out.geometry.to_numpy())))
    if problem:
        raise CRSError(say("problem_after_conversion", crs=source.label, problem=problem))
    return out


def check_lonlat(geoms: NDArray) -> None:
    """Raise :class:`GeometryError` when stored geometries leave lon/lat range."""
    if len(geoms) == 0:
        return
    problem = lonlat_problem(tuple(shapely.total_bounds(geoms)))
    if problem:
        raise GeometryError(problem)


def local_metric_crs(lon: float, lat: float) -> CRS:
    """The projected CRS for metric work near (lon, lat).

    Inside China, the CGCS2000 3-degree Gauss–Krüger zone (central-meridian
    form, EPSG:4534–4554); elsewhere the WGS 84 UTM zone.

    Examples
    --------
    >>> local_metric_crs(123.56, 42.45).to_epsg()
    4550
    >>> local_metric_crs(24.94, 60.17).to_epsg()
    32635
    """
    if 73.5 <= lon <= 136.5 and 3.0 <= lat <= 54.0:
        cm = int(np.clip(3 * round(lon / 3), 75, 135))
        return CRS.from_epsg(4534 + (cm - 75) // 3)
    zone = int(np.clip((lon + 180) // 6 + 1, 1, 60))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@functools.lru_cache(maxsize=64)
def transformer(source: CRS, target: CRS) -> Transformer:
    """A cached x/y-ordered transformer (creating one costs ~70 ms of PROJ database work)."""
    return Transformer.from_crs(source, target, always_xy=True)


def reproject(geoms: NDArray, source: CRS, target: CRS) -> NDArray:
    """Transform geometries (vectorised, x = easting/longitude) between two CRSs."""
    if source == target:
        return np.asarray(geoms, dtype=object)
    tf = transformer(source, target)

    def _transform(coords: NDArray) -> NDArray:
        x, y = tf.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms, dtype=object), _transform)


def project(geoms: NDArray, target: CRS) -> NDArray:
    """Project lon/lat geometries into ``target``."""
    return reproject(geoms, WGS84, target)

"""CRS handling: explicit conversion, clear refusals, GCJ-02/BD-09 against a reference."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import CRS
from shapely import Point, box

from gis_grid.domain.errors import CRSError
from gis_grid.geo import crs


def test_gcj02_matches_the_fast_geocn_reference():
    coord = pytest.importorskip("fast_geocn.coord")
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(74, 134, 2000), rng.uniform(18, 53, 2000)
    x, y = crs.wgs84_to_gcj02(lon, lat)
    ref = np.array([coord.wgs84_to_gcj02(a, b) for a, b in zip(lon, lat, strict=True)])
    assert np.allclose(x, ref[:, 0], atol=1e-10) and np.allclose(y, ref[:, 1], atol=1e-10)


def test_gcj02_and_bd09_invert_to_a_millimetre():
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(74, 134, 2000), rng.uniform(18, 53, 2000)
    back = crs.gcj02_to_wgs84(*crs.wgs84_to_gcj02(lon, lat))
    assert np.abs(np.array(back) - np.array([lon, lat])).max() < 1e-8  # ~1 mm
    gcj = crs.wgs84_to_gcj02(lon, lat)
    again = crs.bd09_to_gcj02(*crs.gcj02_to_bd09(*gcj))
    assert np.abs(np.array(again) - np.array(gcj)).max() < 1e-5  # the BD-09 formula: ~1 m


def test_gcj02_offset_is_the_known_few_hundred_metres():
    lon, lat = crs.wgs84_to_gcj02(np.array([116.397]), np.array([39.909]))  # Tiananmen
    shift = crs.project(np.array([Point(lon[0], lat[0])]), crs.local_metric_crs(116.4, 39.9))[0]
    ref = crs.project(np.array([Point(116.397, 39.909)]), crs.local_metric_crs(116.4, 39.9))[0]
    assert 400 < shift.distance(ref) < 700


def test_no_gcj_offset_outside_china():
    lon, lat = crs.wgs84_to_gcj02(np.array([24.94]), np.array([60.17]))
    assert (lon[0], lat[0]) == (24.94, 60.17)


def test_gcj02_input_is_converted_to_wgs84():
    truth = box(123.556, 42.448, 123.558, 42.450)
    shifted = shapely.transform(truth, lambda c: np.c_[crs.wgs84_to_gcj02(c[:, 0], c[:, 1])])
    frame = gpd.GeoDataFrame(geometry=[shifted], crs=None)
    out = crs.to_lonlat(frame, "gcj02")
    assert shapely.equals_exact(out.geometry[0], truth, tolerance=1e-8)
    assert out.crs == CRS.from_epsg(4326)


def test_projected_and_cgcs2000_inputs():
    metric = CRS.from_epsg(4550)
    frame = gpd.GeoDataFrame(geometry=[box(546000, 4700000, 546100, 4700100)], crs=metric)
    out = crs.to_lonlat(frame)
    minx, miny, maxx, maxy = out.total_bounds
    assert 123.55 < minx < maxx < 123.57 and 42.43 < miny < maxy < 42.44
    cgcs = gpd.GeoDataFrame(geometry=[box(123.5, 42.4, 123.6, 42.5)], crs=4490)
    assert crs.to_lonlat(cgcs).geometry[0].equals_exact(box(123.5, 42.4, 123.6, 42.5), 1e-6)


@pytest.mark.parametrize(
    ("frame_crs", "given", "geom", "words"),
    [
        (None, None, box(123.5, 42.4, 123.6, 42.5), "declares no coordinate reference system"),
        (4490, "EPSG:4326", box(123.5, 42.4, 123.6, 42.5), "but --crs says WGS 84"),
        (4326, None, box(42.4, 123.5, 42.5, 123.6), "look swapped"),
        (4326, None, box(546000, 4700000, 546100, 4700100), "look projected"),
        (4550, "gcj02", box(546000, 4700000, 546100, 4700100), "projected CRS"),
        (None, "EPSG:99999", box(0, 0, 1, 1), "unknown CRS"),
        (None, "gcj02", box(42.4, 123.5, 42.5, 123.6), "look swapped"),
    ],
)
def test_refusals_say_what_to_do(frame_crs, given, geom, words):
    frame = gpd.GeoDataFrame(geometry=[geom], crs=frame_crs)
    with pytest.raises(CRSError, match=words):
        crs.to_lonlat(frame, given)


def test_local_metric_crs_zones():
    assert crs.local_metric_crs(116.4, 39.9).to_epsg() == 4548  # CGCS2000 GK CM 117E
    assert crs.local_metric_crs(24.9, 60.2).to_epsg() == 32635  # UTM 35N
    assert crs.local_metric_crs(-70.6, -33.4).to_epsg() == 32719  # UTM 19S

"""Shared fixtures: small grids drawn in metres, the demo community, fresh stores.

Hand-drawn fixtures are laid out in metres in the CGCS2000 Gauss–Krüger zone of
调兵山市 (EPSG:4550, near 123.56°E 42.45°N) and converted to lon/lat, so their
areas are known exactly::

    y=100 +-----------+-----------+
          |  area 001 | area 002  |      community 211281001007 = 100 m x 100 m
          |           |           |      areas split at x = 50
      y=0 +-----------+-----------+
          x=0        x=50       x=100
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS

from gis_grid.crs import WGS84, reproject
from gis_grid.demo import generate

METRIC = CRS.from_epsg(4550)
X0, Y0 = 546_000.0, 4_700_000.0  # near 123.556°E, 42.45°N
COMMUNITY = "211281001007"


def digest(path) -> str:
    """The SHA-256 of a file: equal before and after means nothing was written."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def at(geom):
    """A geometry drawn in metres relative to (X0, Y0), as lon/lat."""
    moved = shapely.transform(geom, lambda c: c + [X0, Y0])
    return reproject(np.array([moved]), METRIC, WGS84)[0]


def grids(**polygons) -> gpd.GeoDataFrame:
    """Grids from ``code=polygon_in_metres`` pairs (codes may be given with a leading c)."""
    codes = [k.lstrip("c") for k in polygons]
    return gpd.GeoDataFrame({"code": codes}, geometry=[at(g) for g in polygons.values()], crs=WGS84)


def staff_for(frame: pd.DataFrame, start: str = "2024-01-01") -> tuple[pd.DataFrame, pd.DataFrame]:
    """One staff member per grid, assigned from ``start`` with no end."""
    codes = frame["code"].tolist()
    staff = pd.DataFrame(
        {
            "staff_id": [f"T{i:05d}" for i in range(len(codes))],
            "name": [f"测试{i}" for i in range(len(codes))],
            "role": "grid_worker",
            "phone": "13800000000",
        }
    )
    assignments = pd.DataFrame(
        {
            "staff_id": staff["staff_id"],
            "grid_code": codes,
            "role": "grid_worker",
            "start_date": start,
            "end_date": None,
        }
    )
    return staff, assignments


@pytest.fixture(scope="session")
def demo_data():
    return generate()


@pytest.fixture(scope="session")
def demo_file(tmp_path_factory, demo_data) -> Path:
    from gis_grid.store import ChangeSet
    from gis_grid.store.gpkg import GeoPackageStore

    path = tmp_path_factory.mktemp("demo") / "demo.gpkg"
    with GeoPackageStore(path) as store:
        store.apply(ChangeSet(demo_data.grids, demo_data.staff, demo_data.assignments))
    return path


@pytest.fixture
def demo_store(tmp_path, demo_file):
    """A private copy of the demo store, free to modify."""
    from gis_grid.store.gpkg import GeoPackageStore

    path = tmp_path / "demo.gpkg"
    shutil.copy(demo_file, path)
    with GeoPackageStore(path) as store:
        yield store


@pytest.fixture
def empty_store(tmp_path):
    from gis_grid.store.gpkg import GeoPackageStore

    with GeoPackageStore(tmp_path / "empty.gpkg") as store:
        yield store

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
import os
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS
from shapely import box

from gis_grid.domain.model import GRID_COLUMNS
from gis_grid.geo.crs import WGS84, reproject
from gis_grid.sources.demo import generate

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


def seeded(store):
    """The store with one community (100 m x 100 m) tiled by two staffed areas."""
    from gis_grid.store import ChangeSet

    base = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{COMMUNITY}001": box(0, 0, 50, 100),
            f"c{COMMUNITY}002": box(50, 0, 100, 100),
        }
    )
    staff, assignments = staff_for(base)
    store.apply(ChangeSet(base, staff, assignments))
    return store


#: Store backends every contract test runs against.
BACKENDS = ["gpkg", "postgis"]
#: The PostgreSQL server the PostGIS tests use (trust auth on these machines).
PG_SERVER = os.environ.get("GIS_GRID_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")
REQUIRE_POSTGIS = os.environ.get("GIS_GRID_REQUIRE_POSTGIS") == "1"
HOW_TO_ENABLE = (
    "PostGIS tests need a PostgreSQL server with PostGIS at "
    f"{PG_SERVER} (set GIS_GRID_TEST_SERVER to use another; on Debian: apt-get install "
    "postgresql-15-postgis-3). GIS_GRID_REQUIRE_POSTGIS=1 turns this skip into a failure."
)


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def postgis_template():
    """A migrated template database; every PostGIS store is a fresh copy of it."""
    name = f"gis_grid_test_{os.getpid()}"
    try:
        _admin(f"DROP DATABASE IF EXISTS {name}_template")
        _admin(f"CREATE DATABASE {name}_template")
        from gis_grid.store.postgis import migrate

        migrate(f"{PG_SERVER}/{name}_template")
    except Exception as exc:  # no server, no PostGIS
        message = f"{HOW_TO_ENABLE} ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        if REQUIRE_POSTGIS:
            pytest.fail(message)
        pytest.skip(message)
    made: list[str] = []

    def database() -> str:
        db = f"{name}_{len(made)}"
        _admin(f"DROP DATABASE IF EXISTS {db}")
        _admin(f"CREATE DATABASE {db} TEMPLATE {name}_template")
        made.append(db)
        return f"{PG_SERVER}/{db}"

    yield database
    for db in [*made, f"{name}_template"]:
        _admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def snapshot(store) -> str:
    """A fingerprint of everything a store holds: equal means nothing was written."""
    frame = store.grids()
    cols = [c for c in GRID_COLUMNS if c in frame.columns]
    rows = sorted(
        zip(
            *(frame[c].astype(str) for c in cols),
            shapely.to_wkb(frame.geometry.to_numpy(), hex=True),
            strict=True,
        )
    )
    staff = sorted(map(tuple, store.staff().astype(str).to_numpy().tolist()))
    assignments = sorted(map(tuple, store.assignments().astype(str).to_numpy().tolist()))
    return hashlib.sha256(repr((rows, staff, assignments)).encode()).hexdigest()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def new_store(backend, tmp_path, request):
    """A factory of empty stores of the backend under test."""
    from gis_grid.store import open_store

    made = []
    databases = request.getfixturevalue("postgis_template") if backend == "postgis" else None

    def make():
        if databases is not None:
            store = open_store(databases())
        else:
            store = open_store(tmp_path / f"store{len(made)}.gpkg", create=True)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def demo_store(backend, tmp_path, demo_file, demo_data, new_store):
    """The demo community in a private store of the backend under test, free to modify."""
    from gis_grid.store import ChangeSet
    from gis_grid.store.gpkg import GeoPackageStore

    if backend == "gpkg":
        path = tmp_path / "demo.gpkg"
        shutil.copy(demo_file, path)
        with GeoPackageStore(path) as store:
            yield store
    else:
        store = new_store()
        store.apply(ChangeSet(demo_data.grids, demo_data.staff, demo_data.assignments))
        yield store


@pytest.fixture
def empty_store(new_store):
    return new_store()


def exported(folder, spec):
    """A GeoPackage of a demo ``spec`` with its layers, and its GeoParquet export beside it."""
    from gis_grid.sources.demo import write_demo
    from gis_grid.sources.parquet import export_parquet

    path = folder / "store.gpkg"
    with write_demo(path, spec) as store:
        export_parquet(store, folder / "export")
    return path, folder / "export"


@pytest.fixture(scope="session")
def two_communities(tmp_path_factory):
    """Two demo communities with their layers (a GeoPackage) and their GeoParquet export."""
    import dataclasses

    from gis_grid.sources.demo import REFERENCE

    spec = dataclasses.replace(REFERENCE, communities=2, names=())
    return exported(tmp_path_factory.mktemp("two"), spec)


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory):
    """The demo community with its layers and its GeoParquet export."""
    from gis_grid.sources.demo import REFERENCE

    return exported(tmp_path_factory.mktemp("demo-export"), REFERENCE)

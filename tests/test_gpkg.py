"""The GeoPackage store as a file: what GDAL and QGIS see, and what a killed writer leaves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from shapely import box

from gis_grid.domain.errors import StoreError
from gis_grid.store import open_store
from gis_grid.store.gpkg import GeoPackageStore
from tests.conftest import COMMUNITY, digest, seeded


def _fresh(tmp_path) -> GeoPackageStore:
    return seeded(GeoPackageStore(tmp_path / "s.gpkg"))


def test_geopackage_is_what_gdal_and_qgis_expect(demo_file):
    layers = {name for name, _ in pyogrio.list_layers(demo_file)}
    assert {"grids", "staff", "assignments"} <= layers
    info = pyogrio.read_info(demo_file, layer="grids")
    assert info["crs"] == "EPSG:4326"
    assert info["geometry_type"] == "MultiPolygon"
    assert info["features"] == 503
    frame = pyogrio.read_dataframe(demo_file, layer="grids")
    assert shapely.is_valid(frame.geometry.to_numpy()).all()
    # the spatial index GDAL made is filled, and filters like QGIS asks it to
    com = frame.loc[frame.level == "community"].geometry.iloc[0]
    minx, miny, _, _ = com.bounds
    part = pyogrio.read_dataframe(
        demo_file, layer="grids", bbox=(minx, miny, minx + 0.001, miny + 0.001)
    )
    assert 0 < len(part) < len(frame)
    staff = pyogrio.read_dataframe(demo_file, layer="staff")
    assert staff["name"].str.len().gt(1).all()


def test_killed_import_leaves_nothing(tmp_path):
    """SIGKILL a process in the middle of a write transaction: the file holds none of it."""
    store = _fresh(tmp_path)
    path = store.path
    store.close()
    before = digest(path)
    script = textwrap.dedent(f"""
        import sys, time
        import geopandas as gpd, numpy as np, shapely
        from gis_grid.store import ChangeSet
        from gis_grid.store.gpkg import GeoPackageStore
        from tests.conftest import at

        def stall(self, conn, communities):  # rows are inserted, the transaction is open
            n = conn.execute("SELECT count(*) FROM grids").fetchone()[0]
            print("inside", n, flush=True)
            time.sleep(60)

        GeoPackageStore._rollup = stall
        i = np.arange(900)
        boxes = shapely.box(i % 30 * 1.6 + 0.5, i // 30 * 3.2 + 0.5,
                            i % 30 * 1.6 + 1.5, i // 30 * 3.2 + 2.5)
        yards = gpd.GeoDataFrame({{"code": [f"{COMMUNITY}001{{k + 1:03d}}" for k in i]}},
                                 geometry=[at(b) for b in boxes], crs=4326)
        GeoPackageStore({str(path)!r}).apply(ChangeSet(yards))
        """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        line = proc.stdout.readline().split()
        assert line == [b"inside", b"903"]  # 3 grids before, 900 written but not committed
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    with GeoPackageStore(path) as store:  # SQLite rolls the hot journal back on open
        assert store.stats()["grids"]["courtyard"] == 0
        assert store.validate().empty
    assert digest(path) == before


def test_open_store_refuses_what_it_cannot_open(tmp_path):
    with pytest.raises(StoreError, match="unknown store URL scheme"):
        open_store("mysql://localhost/grid")
    with pytest.raises(StoreError, match="ending in .gpkg"):
        open_store(tmp_path / "grids.sqlite")
    with pytest.raises(StoreError, match="no store at"):
        open_store(tmp_path / "missing.gpkg")
    other = tmp_path / "other.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0, 1, 1)], crs=4326).to_file(other)
    with pytest.raises(StoreError, match="not a gis-grid GeoPackage"):
        open_store(other)


def test_bulk_writes_keep_gdals_rtree_counts_and_triggers(tmp_path):
    """Layer and grid writes set GDAL's triggers aside: index, count and triggers survive."""
    import sqlite3

    import pyogrio

    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer
    from tests.conftest import seeded

    path = tmp_path / "s.gpkg"
    with GeoPackageStore(path) as store:
        seeded(store)
        schema = get_layer("incidents").schema
        rng = np.random.default_rng(1)
        x, y = rng.uniform(123.55, 123.56, 300), rng.uniform(42.449, 42.452, 300)
        frame = gpd.GeoDataFrame(
            {"id": [f"E{i}" for i in range(300)], "reported_at": "2026-11-01", "category": "其他"},
            geometry=shapely.points(x, y),
            crs="EPSG:4326",
        )
        store.write_features(schema, normalise_features(schema, frame.iloc[:200]))
        store.write_features(schema, normalise_features(schema, frame.iloc[200:]))
        box = (123.552, 42.4495, 123.557, 42.451)
        ours = set(store.features("incidents", bbox=box)["id"])
    inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
    assert ours == {f"E{i}" for i in np.flatnonzero(inside)}
    gdal = pyogrio.read_dataframe(path, layer="incidents", bbox=box)
    assert set(gdal["id"]) == ours
    assert pyogrio.read_info(path, layer="incidents")["features"] == 300
    conn = sqlite3.connect(path)
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    assert {
        "rtree_incidents_geom_insert",
        "trigger_insert_feature_count_incidents",
        "rtree_grids_geom_insert",
        "trigger_insert_feature_count_grids",
    } <= triggers
    assert conn.execute("SELECT count(*) FROM rtree_incidents_geom").fetchone()[0] == 300
    assert (
        conn.execute("SELECT count(*) FROM rtree_grids_geom").fetchone()[0]
        == conn.execute("SELECT count(*) FROM grids").fetchone()[0]
    )


def test_a_serving_store_writes_ahead_and_folds_the_log_back_when_it_closes(tmp_path):
    """The server's store commits through a WAL; closed, the file travels alone again."""
    import sqlite3

    path = tmp_path / "s.gpkg"
    _fresh(tmp_path).close()
    store = GeoPackageStore(path)
    store.write_ahead()
    other = sqlite3.connect(path)  # another process's view, while the server writes
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.add_user("u-1", "王芳", "supervisor")
    assert other.execute("SELECT count(*) FROM gis_grid_users").fetchone()[0] == 1
    assert path.with_name("s.gpkg-wal").exists()
    store.close()  # the other still holds the file: the log stays, nothing is lost
    assert other.execute("SELECT count(*) FROM gis_grid_users").fetchone()[0] == 1
    other.close()
    store = GeoPackageStore(path)
    store.write_ahead()
    store.add_user("u-2", "李强", "supervisor")
    store.close()  # alone: folded back into the one file
    assert not path.with_name("s.gpkg-wal").exists()
    copy = tmp_path / "copy.gpkg"
    copy.write_bytes(path.read_bytes())  # the file alone holds every write
    with sqlite3.connect(copy) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert c.execute("SELECT count(*) FROM gis_grid_users").fetchone()[0] == 2
    assert len(pyogrio.list_layers(copy)) >= 3


def _incidents(store) -> None:
    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer

    plugin = get_layer("incidents")
    frame = gpd.GeoDataFrame(
        {"id": ["E1"], "reported_at": ["2026-11-02T08:00:00"], "category": ["其他"]},
        geometry=[shapely.Point(123.56, 42.45)],
        crs="EPSG:4326",
    )
    store.write_features(plugin.schema, normalise_features(plugin.schema, frame))


def test_a_layer_s_own_time_is_indexed_and_an_older_file_gains_the_index(tmp_path):
    """A week of the review read the whole incidents table, twelve times over, without it."""
    import sqlite3

    path = tmp_path / "old.gpkg"
    with seeded(GeoPackageStore(path, create=True)) as store:
        _incidents(store)
    with sqlite3.connect(path) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM incidents WHERE reported_at >= '2026-11-02'"
        ).fetchall()
        assert "incidents_reported_at" in str(plan)
        conn.execute("DROP INDEX incidents_reported_at")  # as a file of schema 5 was
        conn.execute("UPDATE gis_grid_meta SET value = '5' WHERE key = 'schema_version'")
    with GeoPackageStore(path):
        pass
    with sqlite3.connect(path) as conn:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        version = conn.execute(
            "SELECT value FROM gis_grid_meta WHERE key = 'schema_version'"
        ).fetchone()[0]
    assert "incidents_reported_at" in indexes and version == "6"

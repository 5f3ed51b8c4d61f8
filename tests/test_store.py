"""The GeoPackage store: what it holds, that GDAL reads it, that failed writes change nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely import box

from gis_grid.errors import (
    DuplicateCodeError,
    GeometryError,
    InputError,
    OrphanError,
    StoreError,
    TopologyError,
)
from gis_grid.model import Level
from gis_grid.store import ChangeSet, open_store
from gis_grid.store.gpkg import GeoPackageStore
from tests.conftest import COMMUNITY, at, digest, grids, staff_for

REFERENCE = {"community": 1, "area": 8, "courtyard": 30, "building": 114}


def test_demo_store_has_the_reference_counts(demo_store):
    stats = demo_store.stats()
    assert {k: stats["grids"][k] for k in REFERENCE} == REFERENCE
    assert 2 * 114 <= stats["grids"]["unit"] <= 6 * 114
    assert (stats["households"], stats["residents"]) == (3211, 8018)
    assert stats["staffed_grids"] == sum(stats["grids"].values())


def test_areas_hold_300_to_500_households(demo_store):
    areas = demo_store.grids(level="area", geometry=False)
    assert areas["households"].between(300, 500).all()
    assert areas["households"].sum() == 3211


def test_courtyards_hold_3_to_6_buildings(demo_store):
    buildings = demo_store.grids(level="building", geometry=False)
    per_yard = buildings["code"].str.slice(0, 18).value_counts()
    assert per_yard.between(3, 6).all() and len(per_yard) == 30


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


def test_codes_follow_the_hierarchy(demo_store):
    frame = demo_store.grids(geometry=False)
    for level in Level:
        rows = frame.loc[frame.level == level.key]
        assert rows["code"].str.len().eq(level.code_length).all()
        if level is not Level.COMMUNITY:
            assert (
                rows["code"].str.slice(0, Level(level - 1).code_length) == rows["parent_code"]
            ).all()


def test_aggregates_sum_upward(demo_store):
    frame = demo_store.grids(geometry=False).set_index("code")
    for level in (Level.AREA, Level.COURTYARD, Level.BUILDING, Level.UNIT):
        rows = frame.loc[frame.level == level.key]
        sums = rows.groupby("parent_code")["households"].sum()
        assert (frame.loc[sums.index, "households"] == sums).all()


def test_queries_by_bbox_under_and_codes(demo_store):
    every = demo_store.grids(geometry=True)
    building = every.loc[every.level == "building"].iloc[0]
    under = demo_store.grids(under=[building.code])
    assert set(under["code"]) == {c for c in every["code"] if c.startswith(building.code)}
    minx, miny, maxx, maxy = building.geometry.bounds
    near = demo_store.grids(bbox=(minx, miny, maxx, maxy), level="building")
    assert building.code in set(near["code"])
    assert len(near) < 114
    assert demo_store.grids(codes=[]).empty
    assert list(demo_store.grids(codes=[building.code, "nope"])["code"]) == [building.code]


# -- atomic writes ----------------------------------------------------------------


def _fresh(tmp_path) -> GeoPackageStore:
    store = GeoPackageStore(tmp_path / "s.gpkg")
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


@pytest.mark.parametrize(
    ("layout", "error", "words"),
    [
        ({f"c{COMMUNITY}001": box(0, 0, 50, 100)}, DuplicateCodeError, "already in the store"),
        ({f"c{COMMUNITY}003001": box(10, 10, 20, 20)}, OrphanError, "parent missing"),
        (
            {
                f"c{COMMUNITY}001001": box(10, 10, 30, 30),
                f"c{COMMUNITY}001002": box(20, 20, 40, 40),
            },
            TopologyError,
            "overlap by 100.0 m²",
        ),
        ({f"c{COMMUNITY}001001": box(40, 10, 60, 30)}, TopologyError, "beyond its parent"),
        (
            {f"c{COMMUNITY}001001": shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])},
            GeometryError,
            "Self-intersection",
        ),
        ({"c21128100100": box(0, 0, 1, 1)}, InputError, "malformed grid codes"),
    ],
)
def test_bad_writes_are_refused_and_change_nothing(tmp_path, layout, error, words):
    store = _fresh(tmp_path)
    before = digest(store.path)
    with pytest.raises(error, match=words):
        store.apply(ChangeSet(grids(**layout)))
    assert digest(store.path) == before
    assert store.stats()["grids"]["courtyard"] == 0


def test_a_duplicate_inside_the_input_is_refused(tmp_path):
    store = _fresh(tmp_path)
    frame = pd.concat([grids(**{f"c{COMMUNITY}001001": box(1, 1, 2, 2)})] * 2)
    with pytest.raises(DuplicateCodeError, match="twice in the input"):
        store.apply(ChangeSet(frame.set_crs(4326, allow_override=True)))


def test_accept_problems_writes_and_validate_reports(tmp_path):
    store = _fresh(tmp_path)
    overlapping = grids(
        **{f"c{COMMUNITY}001001": box(10, 10, 30, 30), f"c{COMMUNITY}001002": box(20, 20, 40, 40)}
    )
    report = store.apply(ChangeSet(overlapping, accept_problems=True))
    assert report.grids == 2 and set(report.warnings["kind"]) == {"overlap"}
    assert set(store.validate()["kind"]) == {"overlap", "no_staff"}


def test_bad_staff_and_assignments_change_nothing(tmp_path):
    store = _fresh(tmp_path)
    before = digest(store.path)
    staff = pd.DataFrame({"staff_id": ["N1"], "name": ["新人"], "role": ["楼长"], "phone": [""]})
    for assignments, error, words in [
        (
            pd.DataFrame({"staff_id": ["N1"], "grid_code": [COMMUNITY + "009"]}),
            OrphanError,
            "unknown grids",
        ),
        (
            pd.DataFrame({"staff_id": ["X9"], "grid_code": [COMMUNITY]}),
            OrphanError,
            "unknown staff",
        ),
        (
            pd.DataFrame(
                {"staff_id": ["N1"], "grid_code": [COMMUNITY], "start_date": ["2024-13-01"]}
            ),
            InputError,
            "not a date",
        ),
        (
            pd.DataFrame({"staff_id": ["N1"], "grid_code": [COMMUNITY], "role": ["boss"]}),
            InputError,
            "unknown staff role",
        ),
    ]:
        with pytest.raises(error, match=words):
            store.apply(ChangeSet(staff=staff, assignments=assignments))
        assert digest(store.path) == before
    with pytest.raises(DuplicateCodeError, match="already in the store"):
        store.apply(ChangeSet(staff=staff.assign(staff_id="T00000")))
    assert digest(store.path) == before


def test_units_added_later_roll_up_into_every_ancestor(tmp_path):
    store = _fresh(tmp_path)
    store.apply(
        ChangeSet(
            grids(
                **{
                    f"c{COMMUNITY}001001": box(5, 5, 45, 45),
                    f"c{COMMUNITY}001001001": box(10, 10, 30, 20),
                }
            )
        )
    )
    units = grids(
        **{
            f"c{COMMUNITY}00100100101": box(10, 10, 20, 20),
            f"c{COMMUNITY}00100100102": box(20, 10, 30, 20),
        }
    )
    units["households"] = [12, 10]
    units["residents"] = [30, 21]
    store.apply(ChangeSet(units))
    frame = store.grids(geometry=False).set_index("code")
    for code in (COMMUNITY, COMMUNITY + "001", COMMUNITY + "001001", COMMUNITY + "001001001"):
        assert frame.loc[code, "households"] == 22 and frame.loc[code, "residents"] == 51
    assert frame.loc[COMMUNITY + "002", "households"] == 0


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
    with pytest.raises(StoreError, match="GeoPackage files only"):
        open_store("postgresql://localhost/grid")
    with pytest.raises(StoreError, match="ending in .gpkg"):
        open_store(tmp_path / "grids.sqlite")
    with pytest.raises(StoreError, match="no store at"):
        open_store(tmp_path / "missing.gpkg")
    other = tmp_path / "other.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0, 1, 1)], crs=4326).to_file(other)
    with pytest.raises(StoreError, match="not a gis-grid GeoPackage"):
        open_store(other)


# -- lookup through the store ------------------------------------------------------


def test_lookup_of_every_unit_returns_five_grids_with_staff(demo_store):
    from gis_grid.queries import chain

    units = demo_store.grids(level="unit")
    probe = shapely.point_on_surface(units.geometry.to_numpy())
    found = demo_store.lookup(shapely.get_x(probe), shapely.get_y(probe))
    assert found.notna().all().all()
    assert (found["unit"].astype(str).to_numpy() == units["code"].to_numpy()).all()
    for level in ("community", "area", "courtyard", "building"):
        n = Level.parse(level).code_length
        assert (found[level].astype(str).to_numpy() == units["code"].str.slice(0, n)).all()
    result = chain(demo_store, probe[0].x, probe[0].y)
    assert [g["level"] for g in result] == [lv.key for lv in Level]
    assert all(g["staff"] for g in result)


def test_lookup_outside_and_on_a_shared_edge(tmp_path):
    from gis_grid.queries import chain

    store = _fresh(tmp_path)
    assert chain(store, 0.0, 0.0) == []
    edge = at(shapely.Point(50, 50))  # on the edge between areas 001 and 002
    found = store.lookup([edge.x], [edge.y]).iloc[0]
    assert found["area"] == COMMUNITY + "001"  # the smaller code wins
    assert pd.isna(found["courtyard"])


def test_lookup_index_follows_writes(tmp_path):
    store = _fresh(tmp_path)
    inside = at(shapely.Point(20, 20))
    assert pd.isna(store.lookup([inside.x], [inside.y]).iloc[0]["courtyard"])
    store.apply(ChangeSet(grids(**{f"c{COMMUNITY}001001": box(10, 10, 30, 30)})))
    assert store.lookup([inside.x], [inside.y]).iloc[0]["courtyard"] == COMMUNITY + "001001"


def test_staff_coverage_counts_each_grid_once(demo_store):
    from gis_grid.queries import coverage

    assignments = demo_store.assignments()
    worker = assignments.loc[assignments.role == "grid_worker", "staff_id"].iloc[0]
    result = coverage(demo_store, worker)
    area = next(g for g in result["grids"] if g["level"] == "area")
    under = demo_store.grids(under=[area["code"]], geometry=False)
    assert result["counts"]["building"] == (under.level == "building").sum() > 0
    assert result["households"] == int(under.loc[under.code == area["code"], "households"].iloc[0])
    head = assignments.loc[assignments.role == "unit_head", "staff_id"].iloc[-1]
    assert coverage(demo_store, head)["counts"]["unit"] >= 1


def test_empty_store_answers_sensibly(empty_store):
    assert empty_store.stats()["grids"] == {lv.key: 0 for lv in Level}
    assert empty_store.validate().empty
    assert empty_store.lookup([123.5], [42.4]).isna().all().all()
    assert np.array_equal(empty_store.grids().columns[:3], ["code", "parent_code", "level"])

"""Layers in both stores: linking, bad input, the boundary rule, relinking, gap analyses.

Drawn on the seeded community (see ``conftest``)::

    y=100 +-----------+-----------+
          |  area 001 | area 002  |
          |  cam ^    |           |      street along y = 50, lamps at x = 10, 40, 70
      y=0 +-----------+-----------+
          x=0        x=50       x=100
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely import LineString, Point, box

from gis_grid.domain.errors import DuplicateCodeError, InputError, NotFoundError, RowError
from gis_grid.geo.crs import WGS84
from gis_grid.layers.features import normalise_features
from gis_grid.layers.files import read_feature_file
from gis_grid.layers.plugins import available, get_layer
from gis_grid.store import ChangeSet
from tests.conftest import COMMUNITY, at, grids, seeded, snapshot, staff_for

A1, A2 = f"{COMMUNITY}001", f"{COMMUNITY}002"


def features(layer: str, rows: list[dict], geoms) -> gpd.GeoDataFrame:
    """Checked features of a layer from rows and geometries drawn in metres."""
    plugin = get_layer(layer)
    frame = gpd.GeoDataFrame(rows, geometry=[at(g) for g in geoms], crs=WGS84)
    return plugin.check(normalise_features(plugin.schema, frame))


def incident(i: str, x: float, y: float, when="2026-11-01 21:30", category="治安"):
    return {"id": i, "reported_at": when, "category": category}, Point(x, y)


def put(store, layer, pairs, mode="append"):
    rows, geoms = zip(*pairs, strict=True)
    return store.write_features(
        get_layer(layer).schema, features(layer, list(rows), geoms), mode=mode
    )


def test_the_layers_are_plugins():
    assert {"incidents", "cctv", "lighting", "streets", "cleaning"} <= set(available())
    with pytest.raises(NotFoundError, match="installed layers"):
        get_layer("parking")


def test_features_get_their_chain_and_a_point_on_a_shared_edge_the_smaller_code(new_store):
    store = seeded(new_store())
    report = put(
        store,
        "incidents",
        [incident("E1", 20, 50), incident("E3", 80, 10), incident("E4", 150, 50)],
    )
    # a vertex both areas share (exactly, in lon/lat): on the boundary of both
    corner = shapely.get_coordinates(store.grids(codes=[A1]).geometry.iloc[0])
    shared = [
        p
        for p in corner.tolist()
        if store.grids(codes=[A2]).geometry.iloc[0].boundary.distance(Point(p)) == 0
    ]
    assert shared
    plugin = get_layer("incidents")
    frame = gpd.GeoDataFrame(
        [{"id": "E2", "reported_at": "2026-11-01", "category": "其他"}],
        geometry=[Point(shared[0])],
        crs=WGS84,
    )
    store.write_features(plugin.schema, normalise_features(plugin.schema, frame))
    assert report.written == 3 and report.unowned == 1
    got = store.features("incidents").set_index("id")
    assert got.loc["E1", "area_code"] == A1
    assert got.loc["E2", "area_code"] == A1  # on the shared edge x = 50: the smaller code
    assert got.loc["E3", "area_code"] == A2
    assert got.loc["E4", "community_code"] is None  # outside every grid: unowned
    assert got.loc["E1", "category"] == "public_order"  # 治安, stored by key
    assert list(store.features("incidents", under=[A2])["id"]) == ["E3"]
    assert list(store.features("incidents", where={"area_code": None})["id"]) == ["E4"]


def test_both_stores_link_alike(backend, new_store):
    """The same 500 random points (many on edges) link identically in either store."""
    store = seeded(new_store())
    rng = np.random.default_rng(4)
    xy = np.round(rng.uniform(-10, 110, (500, 2)) / 10) * 10  # on a 10 m lattice: many on edges
    put(store, "incidents", [incident(f"E{i}", x, y) for i, (x, y) in enumerate(xy)])
    got = store.features("incidents").set_index("id")
    want = store.lookup(got["lon"], got["lat"])
    assert got["area_code"].fillna("-").tolist() == want["area"].astype(object).fillna("-").tolist()
    inside = (xy[:, 0] > 0) & (xy[:, 0] < 50) & (xy[:, 1] > 0) & (xy[:, 1] < 100)
    ids = [f"E{i}" for i in np.flatnonzero(inside)]
    assert len(ids) > 50 and (got.loc[ids, "area_code"] == A1).all()


def test_bad_rows_are_named_and_nothing_is_written(tmp_path, new_store):
    store = seeded(new_store())
    csv = tmp_path / "cams.csv"
    csv.write_text(
        "id,lon,lat,heading,fov,range_m,status\n"
        "C1,123.556,42.45,90,60,40,正常\n"
        "C2,,42.45,90,60,40,working\n"  # no coordinates
        "C3,523.556,42.45,90,60,40,working\n"  # out of range
        "C4,123.556,42.45,90,400,40,working\n"  # FOV > 360
        "C5,123.556,42.45,90,60,-5,working\n"  # negative range
        "C6,123.556,42.45,90,60,40,broken\n",  # unknown status
        encoding="utf-8",
    )
    before = snapshot(store)
    with pytest.raises(RowError) as caught:
        get_layer("cctv").read(csv, crs="EPSG:4326")
    rows = {p["row"]: p for p in caught.value.rows}
    assert "outside lon/lat range" in rows[3]["problem"]
    with pytest.raises(RowError) as caught:  # C3 dropped: the other problems show together
        lines = csv.read_text().splitlines()
        (tmp_path / "c2.csv").write_text("\n".join(lines[:3] + lines[4:]), encoding="utf-8")
        get_layer("cctv").read(tmp_path / "c2.csv", crs="EPSG:4326")
    message = str(caught.value)
    assert "row 2 (id C2): no coordinates" in message
    assert "fov 400" in message and "above the maximum 360" in message
    assert "range_m -5" in message and "below the minimum 0" in message
    assert "status 'broken' is not one of working (正常)" in message
    assert "nothing was written" in message
    assert snapshot(store) == before and store.layers() == {}


def test_unknown_category_and_duplicate_ids_are_refused_and_the_store_is_unchanged(new_store):
    store = seeded(new_store())
    put(store, "incidents", [incident("E1", 10, 10)])
    with pytest.raises(RowError, match="category 'fire' is not one of"):
        put(store, "incidents", [incident("E2", 10, 10, category="fire")])
    with pytest.raises(DuplicateCodeError, match="--mode upsert"):
        put(store, "incidents", [incident("E2", 20, 20), incident("E1", 30, 30)])
    assert list(store.features("incidents")["id"]) == ["E1"]
    put(store, "incidents", [incident("E1", 80, 80)], mode="upsert")
    assert store.features("incidents")["area_code"].tolist() == [A2]


def test_times_out_of_order_are_row_errors():
    rows = [
        {
            "id": "E1",
            "reported_at": "2026-11-02 10:00",
            "category": "物业",
            "status": "closed",
            "closed_at": "2026-11-01 10:00",
        }
    ]
    with pytest.raises(RowError, match="closed_at 2026-11-01T10:00:00 is before"):
        features("incidents", rows, [Point(1, 1)])


def test_staff_falls_back_to_the_nearest_ancestor_and_says_so(new_store):
    from gis_grid.grids.linkage import responsible

    store = new_store()
    base = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 50, 100),
            f"c{A2}": box(50, 0, 100, 100),
        }
    )
    staff, assignments = staff_for(base)
    keep = assignments["grid_code"] != A2  # area 002 has nobody
    store.apply(ChangeSet(base, staff, assignments.loc[keep]))
    put(
        store,
        "incidents",
        [incident("E1", 20, 20), incident("E2", 80, 20), incident("E3", 300, 20)],
    )
    who = responsible(store, store.features("incidents")).to_dict("records")
    assert who[0]["staff_grid_code"] == A1 and not who[0]["staff_fallback"]
    assert who[1]["grid_code"] == A2 and who[1]["staff_grid_code"] == COMMUNITY
    assert who[1]["staff_fallback"] and who[1]["staff_name"] == "测试0"
    assert who[2]["grid_code"] is None and who[2]["staff_id"] is None


def test_links_follow_a_boundary_edit(new_store):
    """Cameras follow the grids as they are; incidents stay with the grid of their day."""
    store = seeded(new_store())
    put(store, "incidents", [incident("E1", 55, 50), incident("E2", 90, 50)])
    camera = {"id": "K1", "heading": 0, "fov": 60, "range_m": 40}
    put(store, "cctv", [(camera, Point(55, 50))])
    current = store.grids(codes=[A1, A2]).set_index("code")
    edits = gpd.GeoDataFrame(
        {"code": [A1, A2], "version": current.loc[[A1, A2], "version"].tolist()},
        geometry=[at(box(0, 0, 60, 100)), at(box(60, 0, 100, 100))],
        crs=WGS84,
    )
    store.update(edits)
    got = store.features("incidents").set_index("id")["area_code"].to_dict()
    assert got == {"E1": A2, "E2": A2}  # E1 was reported in area 002, before the edit
    assert store.features("cctv")["area_code"].tolist() == [A1]


def test_camera_coverage_of_a_known_grid(new_store):
    """One camera at (25, 10) looking north, 60°, 40 m: π·40²/6 of area 001's 5,000 m²."""
    store = seeded(new_store())
    put(
        store,
        "cctv",
        [
            ({"id": "C1", "heading": 0, "fov": 60, "range_m": 40}, Point(25, 10)),
            ({"id": "C2", "heading": 0, "fov": 60, "range_m": 40, "status": "损坏"}, Point(75, 10)),
        ],
    )
    put(
        store, "incidents", [incident("E1", 25, 30), incident("E2", 25, 80), incident("E3", 30, 90)]
    )
    report = get_layer("cctv").holes(store)
    per = report.per_grid.set_index("code")
    sector = math.pi * 40**2 / 6
    assert per.loc[A1, "covered_m2"] == pytest.approx(sector, rel=0.01)
    assert per.loc[A1, "coverage_pct"] == pytest.approx(100 * sector / 5000, rel=0.01)
    assert per.loc[A2, "covered_m2"] == 0  # its camera is damaged
    top = report.features.iloc[0]
    assert top["grid"] == A1 and top["incidents"] == 2  # E1 is seen, E2 and E3 are not
    assert top["staff_name"] == "测试1" and not top["staff_fallback"]


def test_dark_length_along_a_street_per_grid(new_store):
    """Street y = 50 from x = 0 to 100; lamps at 10, 40, 70 lighting 10 m: dark 10 m + 30 m."""
    store = seeded(new_store())
    put(store, "streets", [({"id": "S1", "name": "长街"}, LineString([(0, 50), (100, 50)]))])
    put(
        store,
        "lighting",
        [({"id": f"L{x}", "lit_radius_m": 10}, Point(x, 50)) for x in (10, 40, 70)],
    )
    put(
        store,
        "incidents",
        [
            incident("E1", 85, 52, when="2026-11-01 22:00"),
            incident("E2", 86, 52, when="2026-11-01 12:00"),
        ],
    )
    report = get_layer("lighting").holes(store, min_length=1)
    per = report.per_grid.set_index("code")
    assert per.loc[A1, "dark_m"] == pytest.approx(10, abs=0.05)
    assert per.loc[A2, "dark_m"] == pytest.approx(30, abs=0.05)
    top = report.features.iloc[0]
    assert top["length_m"] == pytest.approx(20, abs=0.05) and top["night_incidents"] == 1


def test_cleaning_gaps_and_overdue_zones(new_store):
    import datetime as dt

    store = seeded(new_store())
    put(
        store,
        "cleaning",
        [
            (
                {
                    "id": "Z1",
                    "crew": "一组",
                    "frequency_hours": 24,
                    "last_cleaned_at": "2026-11-20 08:00",
                },
                box(0, 0, 50, 100),
            ),
            (
                {
                    "id": "Z2",
                    "crew": "二组",
                    "frequency_hours": 24,
                    "last_cleaned_at": "2026-11-21 20:00",
                },
                box(50, 0, 100, 60),
            ),
        ],
    )
    report = get_layer("cleaning").holes(store, now=dt.datetime(2026, 11, 22, 8, 0))
    gaps = report.features.loc[report.features["kind"] == "uncleaned"]
    assert gaps["area_m2"].tolist() == pytest.approx([2000], rel=0.01)
    late = report.features.loc[report.features["kind"] == "overdue"]
    assert late["zone"].tolist() == ["Z1"] and late["overdue_hours"].tolist() == [24.0]


def test_staffing_holes_name_who_answers_instead(new_store):
    from gis_grid.analysis.gaps import staffing_holes

    store = new_store()
    base = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 50, 100),
            f"c{A2}": box(50, 0, 100, 100),
        }
    )
    staff, assignments = staff_for(base)
    store.apply(ChangeSet(base, staff, assignments.loc[assignments["grid_code"] != A2]))
    report = staffing_holes(store)
    assert report.features["code"].tolist() == [A2]
    assert report.features["staff_grid_code"].tolist() == [COMMUNITY]


def test_a_csv_in_gcj02_is_converted(tmp_path):
    from gis_grid.geo.crs import wgs84_to_gcj02

    lon, lat = wgs84_to_gcj02(np.array([123.556]), np.array([42.45]))
    csv = tmp_path / "e.csv"
    csv.write_text(
        f"编号,经度,纬度,上报时间,类别\nE1,{lon[0]},{lat[0]},2026-11-01 08:00,物业\n",
        encoding="utf-8",
    )
    frame = get_layer("incidents").read(csv, crs="gcj02")
    assert frame.geometry.iloc[0].x == pytest.approx(123.556, abs=1e-6)
    assert frame["category"].tolist() == ["property"]
    with pytest.raises(InputError, match="--crs"):
        read_feature_file(get_layer("incidents").schema, csv)


def test_features_come_back_in_code_point_order_in_both_stores(new_store):
    store = seeded(new_store())
    ids = ["b-2", "B10", "a_1", "A9", "_z", "中1", "E1", "e1"]
    put(store, "incidents", [incident(i, 10 + n, 10) for n, i in enumerate(ids)])
    assert store.features("incidents")["id"].tolist() == sorted(ids)


def test_unowned_features_are_holes_with_the_nearest_community(new_store):
    from gis_grid.analysis.gaps import unowned_features

    store = seeded(new_store())
    put(store, "incidents", [incident("E1", 20, 20), incident("E2", 150, 50)])
    put(store, "cctv", [({"id": "C1", "heading": 0, "fov": 90, "range_m": 30}, Point(50, -30))])
    report = unowned_features(store)
    rows = report.features.set_index("id")
    assert list(rows.index) == ["E2", "C1"]  # farthest first
    assert rows.loc["E2", "distance_m"] == pytest.approx(50, abs=0.1)
    assert rows.loc["C1", "distance_m"] == pytest.approx(30, abs=0.1)
    assert (rows["nearest_community"] == COMMUNITY).all() and rows["staff_fallback"].all()
    assert dict(zip(report.per_grid["layer"], report.per_grid["unowned"], strict=True)) == {
        "cctv": 1,
        "incidents": 1,
    }


def test_the_person_whose_role_fits_the_level_answers(new_store):
    from gis_grid.grids.linkage import people

    store = seeded(new_store())
    extra = pd.DataFrame(
        {"staff_id": ["A0"], "name": ["甲"], "role": ["grid_leader"], "phone": ["1"]}
    )
    assign = pd.DataFrame(
        {
            "staff_id": ["A0"],
            "grid_code": [A1],
            "role": ["grid_leader"],
            "start_date": ["2024-01-01"],
            "end_date": [None],
        }
    )
    store.apply(ChangeSet(staff=extra, assignments=assign))
    who = people(store, [A1, COMMUNITY])
    assert who.loc[A1, "staff_id"] == "T00001"  # the grid worker, though A0 sorts first
    assert who.loc[A1, "staff_role"] == "grid_worker"


def test_the_demo_streets_are_a_named_network_between_and_inside_the_compounds(demo_data):
    """The demo's streets were 30 identical footway rings; nothing ran between the compounds."""
    from layers.components import demo_grids
    from layers.streets import EAST_WEST, NORTH_SOUTH, demo_network

    lines, names, kinds = demo_network(demo_data)
    kinds, names = np.array(kinds), np.array(names)
    _, community, _ = demo_grids(demo_data, "community")
    _, yards, _ = demo_grids(demo_data, "courtyard")
    outline = shapely.boundary(community[0])
    # main roads run round the whole community, once
    primary = shapely.union_all(lines[kinds == "primary"])
    assert shapely.length(primary) == pytest.approx(outline.length, rel=1e-5)
    assert shapely.hausdorff_distance(primary, outline) < 0.05
    # streets between the compounds, clear of every courtyard, each a straight run with a name
    between = lines[kinds == "secondary"]
    assert len(between) >= 5
    assert shapely.distance(shapely.union_all(yards), shapely.union_all(between)) >= 15
    assert set(names[kinds == "secondary"]) <= set(EAST_WEST) | set(NORTH_SOUTH)
    assert "兀术街" in set(names[kinds == "secondary"])  # the first street between compounds
    # lanes in every compound, named by it, none crossing a courtyard
    lanes = lines[kinds == "service"]
    assert {n.removesuffix("内路") for n in names[kinds == "service"]} == {
        "阳光小区", "幸福家园", "和谐花园", "康乐苑", "锦绣新村", "翠园小区",
    }  # fmt: skip
    inner = shapely.buffer(yards, -0.5)
    assert not shapely.intersects(shapely.union_all(inner), shapely.union_all(lanes))
    # one network: every lane reaches a street through its compound's gates
    network = shapely.union_all(shapely.buffer(lines, 0.05))
    assert shapely.get_num_geometries(network) == 1
    assert shapely.covered_by(shapely.union_all(lines), shapely.buffer(community[0], 0.05))


def test_the_demo_lamps_stand_along_the_streets_with_one_area_dark(demo_data):
    from layers.components import demo_grids
    from layers.lighting import DEMO_DARK_AREA
    from layers.streets import demo_network

    lamps = get_layer("lighting").demo(demo_data, np.random.default_rng(1))
    lines, _, kinds = demo_network(demo_data)
    from gis_grid.geo.crs import project

    at_m = project(lamps.geometry.to_numpy(), demo_data.metric_crs)
    assert shapely.distance(shapely.union_all(lines), at_m).max() < 0.05  # on a street
    kinds = np.array(kinds)
    lanes = shapely.union_all(lines[kinds == "service"])
    on_lane = shapely.distance(lanes, at_m) < 0.05
    assert set(lamps["lamp_type"][on_lane]) == {"courtyard"}
    _, areas, _ = demo_grids(demo_data, "area")
    assert not shapely.intersects(areas[DEMO_DARK_AREA], at_m).any()


def test_every_demo_feature_of_a_small_city_has_coordinates():
    """At city scale some streets were clipped to nothing: a lamp stood on no point (L11251)."""
    from dataclasses import replace

    from gis_grid.sources.demo import CITY, generate, layer_frames

    data = generate(replace(CITY, communities=12))  # 12 communities hold such empty streets
    for name, frame in layer_frames(data).items():
        geoms = frame.geometry.to_numpy() if hasattr(frame, "geometry") else frame["geometry"]
        assert not shapely.is_empty(np.asarray(geoms, dtype=object)).any(), name

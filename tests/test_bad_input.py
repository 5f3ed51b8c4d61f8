"""A corpus of bad input — files for the CLI, bodies and queries for the API — on both stores.

Every case must end in one ``error:`` line (CLI, exit 1, no traceback) or a 4xx
``application/problem+json`` answer (API), and leave the store exactly as it
was (its fingerprint before and after). The store holds the hand-drawn
community of ``tests/test_planning.py`` (community 211281001007, areas 001 and
002, courtyards, buildings).
"""

from __future__ import annotations

import json

import pytest
import shapely
from shapely import box
from typer.testing import CliRunner

from gis_grid.cli import app
from tests.conftest import COMMUNITY, at, snapshot
from tests.test_planning import A1, A2, C1, C2, planned

OTHER = "211281001098"


def square(x0, y0, x1, y1) -> str:
    return at(box(x0, y0, x1, y1)).wkt


def _swapped(wkt: str) -> str:
    return shapely.transform(shapely.from_wkt(wkt), lambda c: c[:, ::-1]).wkt


GOOD = square(200, 0, 300, 100)
BOWTIE = at(shapely.Polygon([(200, 0), (300, 100), (300, 0), (200, 100)])).wkt
WIDE = COMMUNITY.translate(str.maketrans("0123456789", "０１２３４５６７８９"))

#: name → (file name, bytes, CLI arguments after the file). Every one must be refused.
GRID_FILES = {
    "empty file": ("a.csv", b"", ["--level", "community", "--crs", "EPSG:4326"]),
    "header only": ("a.csv", b"code,wkt\n", ["--level", "community", "--crs", "EPSG:4326"]),
    "binary data": ("a.csv", bytes(range(256)) * 8, ["--level", "community"]),
    "neither utf-8 nor gb18030": (
        "a.csv",
        b"code,wkt\n\xff\xff\xff,\xff\n",
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "NUL in a name": (
        "a.csv",
        f'code,name,wkt\n{OTHER},"a\x00b","{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "unclosed quote": (
        "a.csv",
        f'code,wkt\n{OTHER},"{GOOD}\n{OTHER}1,"x\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "no wkt column": (
        "a.csv",
        f"code,lon,lat\n{OTHER},123.5,42.4\n".encode(),
        ["--level", "community"],
    ),
    "unreadable wkt": (
        "a.csv",
        f'code,wkt\n{OTHER},"POLYGON((0 0, 1 1"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "self-intersecting": (
        "a.csv",
        f'code,wkt\n{OTHER},"{BOWTIE}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "letters in a code": (
        "a.csv",
        f'code,wkt\nabcdefghijkl,"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "code of the wrong length": (
        "a.csv",
        f'code,wkt\n2112810010,"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "a code twice": (
        "a.csv",
        f'code,wkt\n{OTHER},"{GOOD}"\n{OTHER},"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "lon/lat swapped": (
        "a.csv",
        f'code,wkt\n{OTHER},"{_swapped(GOOD)}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "degrees under a projected CRS": (
        "a.csv",
        f'code,wkt\n{OTHER},"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4550"],
    ),
    "no CRS": ("a.csv", f'code,wkt\n{OTHER},"{GOOD}"\n'.encode(), ["--level", "community"]),
    "negative households": (
        "a.csv",
        f'code,households,wkt\n{OTHER},-5,"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "1e30 households": (
        "a.csv",
        f'code,households,wkt\n{OTHER},1e30,"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "words as households": (
        "a.csv",
        f'code,households,wkt\n{OTHER},many,"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "a point, not a polygon": (
        "a.csv",
        f'code,wkt\n{OTHER},"{at(shapely.Point(250, 50)).wkt}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "an orphan area": (
        "a.csv",
        f'code,wkt\n{OTHER}001,"{GOOD}"\n'.encode(),
        ["--level", "area", "--crs", "EPSG:4326"],
    ),
    "an area overlapping its sibling": (
        "a.csv",
        f'code,wkt\n{COMMUNITY}003,"{square(50, 0, 70, 60)}"\n'.encode(),
        ["--level", "area", "--crs", "EPSG:4326"],
    ),
    "an area outside its community": (
        "a.csv",
        f'code,wkt\n{COMMUNITY}003,"{square(130, 0, 150, 60)}"\n'.encode(),
        ["--level", "area", "--crs", "EPSG:4326"],
    ),
    "a community already there": (
        "a.csv",
        f'code,wkt\n{COMMUNITY},"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "the same code in full-width digits": (
        "a.csv",
        f'code,wkt\n{WIDE},"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "a community over the existing one": (
        "a.csv",
        f'code,wkt\n{OTHER},"{square(110, 0, 200, 60)}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "a level the codes deny": (
        "a.csv",
        f'code,level,wkt\n{OTHER},area,"{GOOD}"\n'.encode(),
        ["--level", "community", "--crs", "EPSG:4326"],
    ),
    "GeoJSON with NaN": (
        "a.geojson",
        b'{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
        b'{"code":"211281001098"},"geometry":{"type":"Polygon","coordinates":'
        b"[[[NaN,42.4],[123.6,42.4],[123.6,42.5],[NaN,42.4]]]}}]}",
        ["--level", "community"],
    ),
    "GeoJSON that is not JSON": ("a.geojson", b"{not json", ["--level", "community"]),
    "GeoJSON without features": (
        "a.geojson",
        b'{"type":"FeatureCollection","features":[]}',
        ["--level", "community"],
    ),
    "an unknown file type": ("a.txt", b"hello", ["--level", "community"]),
    "an unknown level": ("a.csv", f'code,wkt\n{OTHER},"{GOOD}"\n'.encode(), ["--level", "city"]),
}

#: name → (file name, bytes, layer). Incident files, every one refused.
INCIDENT_HEADER = "id,lon,lat,reported_at,category,status\n"
LON, LAT = at(shapely.Point(30, 30)).x, at(shapely.Point(30, 30)).y
LAYER_FILES = {
    "ambiguous day and month": (
        "i.csv",
        (INCIDENT_HEADER + f"E1,{LON},{LAT},01/02/2026 08:00,dispute,reported\n").encode(),
    ),
    "an unknown category": (
        "i.csv",
        (INCIDENT_HEADER + f"E1,{LON},{LAT},2026-02-01 08:00,aliens,reported\n").encode(),
    ),
    "longitude out of range": (
        "i.csv",
        (INCIDENT_HEADER + f"E1,523.5,{LAT},2026-02-01 08:00,dispute,reported\n").encode(),
    ),
    "no coordinates": ("i.csv", b"id,reported_at\nE1,2026-02-01 08:00\n"),
    "binary data": ("i.csv", bytes(range(256)) * 4),
    "empty file": ("i.csv", b""),
    "a time that is not one": (
        "i.csv",
        (INCIDENT_HEADER + f"E1,{LON},{LAT},soon,dispute,reported\n").encode(),
    ),
    "infinity as longitude": (
        "i.csv",
        (INCIDENT_HEADER + f"E1,inf,{LAT},2026-02-01 08:00,dispute,reported\n").encode(),
    ),
    "an id twice": (
        "i.csv",
        (
            INCIDENT_HEADER
            + f"E1,{LON},{LAT},2026-02-01 08:00,dispute,reported\n"
            + f"E1,{LON},{LAT},2026-02-01 09:00,dispute,reported\n"
        ).encode(),
    ),
    "NUL in a text field": (
        "i.csv",
        (INCIDENT_HEADER + f"E\x001,{LON},{LAT},2026-02-01 08:00,dispute,reported\n").encode(),
    ),
}


@pytest.fixture
def store_url(new_store, tmp_path):
    store = planned(new_store())
    yield store.url, store


def _refused(result, store, before) -> None:
    output = result.stdout + result.stderr
    assert result.exit_code == 1, output
    assert result.stderr.lstrip().startswith("error:"), output
    assert (
        "Traceback" not in output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    ), output
    assert snapshot(store) == before


@pytest.mark.parametrize("case", sorted(GRID_FILES))
def test_a_bad_grid_file_is_one_error_line_and_changes_nothing(store_url, tmp_path, case):
    url, store = store_url
    name, data, args = GRID_FILES[case]
    path = tmp_path / name
    path.write_bytes(data)
    before = snapshot(store)
    result = CliRunner().invoke(app, ["import", url, str(path), *args])
    _refused(result, store, before)


@pytest.mark.parametrize("case", sorted(LAYER_FILES))
def test_a_bad_incident_file_is_one_error_line_and_changes_nothing(store_url, tmp_path, case):
    url, store = store_url
    name, data = LAYER_FILES[case]
    path = tmp_path / name
    path.write_bytes(data)
    before = snapshot(store)
    layers_before = {n: len(store.features(n)) for n in store.layers()}
    result = CliRunner().invoke(
        app, ["layer", "import", url, "incidents", str(path), "--crs", "EPSG:4326"]
    )
    _refused(result, store, before)
    assert {n: len(store.features(n)) for n in store.layers()} == layers_before


def test_a_gb18030_csv_from_excel_imports(store_url, tmp_path):
    """Excel on a Chinese Windows saves GB18030: it is read, not refused (with or without BOM)."""
    url, store = store_url
    path = tmp_path / "社区.csv"
    path.write_bytes(f'code,name,wkt\n{OTHER},"新社区",{json.dumps(GOOD)}\n'.encode("gb18030"))
    result = CliRunner().invoke(
        app, ["import", url, str(path), "--level", "community", "--crs", "EPSG:4326"]
    )
    assert result.exit_code == 0, result.output
    assert store.grids(codes=[OTHER])["name"].iloc[0] == "新社区"


def test_a_layer_that_is_not_in_the_geopackage_is_named(store_url, tmp_path):
    url, store = store_url
    source = tmp_path / "src.gpkg"
    import geopandas as gpd

    gpd.GeoDataFrame({"code": [OTHER]}, geometry=[shapely.from_wkt(GOOD)], crs=4326).to_file(
        source, layer="districts"
    )
    before = snapshot(store)
    result = CliRunner().invoke(
        app, ["import", url, str(source), "--level", "community", "--layer", "nope"]
    )
    _refused(result, store, before)
    assert "no layer 'nope'" in result.stderr and "districts" in result.stderr


# -- API bodies and queries ---------------------------------------------------------------

SQUARE = shapely.geometry.mapping(at(box(0, 0, 58, 60)))
BOW = shapely.geometry.mapping(at(shapely.Polygon([(0, 0), (60, 60), (60, 0), (0, 60)])))
API_CASES = {
    "merge without versions": ("POST", "/grids/merge", {"codes": [A1, A2]}),
    "merge with a stale version": (
        "POST",
        "/grids/merge",
        {"codes": [A1, A2], "versions": {A1: 7, A2: 1}},
    ),
    "merge of one grid": ("POST", "/grids/merge", {"codes": [A1], "versions": {A1: 1}}),
    "merge of non-siblings": (
        "POST",
        "/grids/merge",
        {"codes": [A1, C1], "versions": {A1: 1, C1: 1}},
    ),
    "merge of malformed codes": (
        "POST",
        "/grids/merge",
        {"codes": ["x", "y"], "versions": {"x": 1, "y": 1}},
    ),
    "merge with a version of 0": (
        "POST",
        "/grids/merge",
        {"codes": [A1, A2], "versions": {A1: 0, A2: 1}},
    ),
    "split without a version": ("POST", f"/grids/{A1}/split", {"parts": 2}),
    "split with line and parts": (
        "POST",
        f"/grids/{A1}/split",
        {"parts": 2, "version": 1, "line": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
    ),
    "split along a point": (
        "POST",
        f"/grids/{A1}/split",
        {"version": 1, "line": {"type": "Point", "coordinates": [0, 0]}},
    ),
    "move to a grid that is not there": (
        "POST",
        "/grids/move",
        {"atoms": [C2], "to": f"{COMMUNITY}009", "versions": {C2: 1, f"{COMMUNITY}009": 1}},
    ),
    "outline without a version": ("PUT", f"/grids/{A1}/outline", {"geometry": SQUARE}),
    "outline as a point": (
        "PUT",
        f"/grids/{A1}/outline",
        {"geometry": {"type": "Point", "coordinates": [123.5, 42.4]}, "version": 1},
    ),
    "outline as a bowtie": ("PUT", f"/grids/{A1}/outline", {"geometry": BOW, "version": 1}),
    "outline not GeoJSON": (
        "PUT",
        f"/grids/{A1}/outline",
        {"geometry": {"type": "Polygon"}, "version": 1},
    ),
    "outline with a stale version": (
        "PUT",
        f"/grids/{A1}/outline",
        {"geometry": SQUARE, "version": 9},
    ),
    "undo without a revision": ("POST", f"/communities/{COMMUNITY}/undo", None),
    "undo of a revision not the latest": (
        "POST",
        f"/communities/{COMMUNITY}/undo",
        {"revision": 99},
    ),
    "restore to a revision below 0": (
        "POST",
        f"/communities/{COMMUNITY}/restore",
        {"revision": -1},
    ),
    "rebalance with infinite weights": (
        "POST",
        "/rebalance",
        {"parent": A2, "k": 2, "weights": "households=inf"},
    ),
    "rebalance into 0 grids": ("POST", "/rebalance", {"parent": A2, "k": 0}),
    "rebalance of a malformed parent": ("POST", "/rebalance", {"parent": "21128100"}),
    "a NUL byte in a query": ("GET", "/collections/area/items?parent=%00", None),
    "a page size of -1": ("GET", "/collections/area/items?limit=-1", None),
    "a bbox of three numbers": ("GET", "/collections/area/items?bbox=1,2,3", None),
    "a lookup at latitude 500": ("GET", "/lookup?lon=123.5&lat=500", None),
    "a lookup with words": ("GET", "/lookup?lon=east&lat=north", None),
    "a grid that is not there": ("GET", f"/grids/{OTHER}", None),
    "accept of a proposal that is not there": ("POST", "/proposals/999/accept", None),
}


@pytest.fixture
def client(store_url):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings

    url, store = store_url
    token = store.add_user("p", "p", "planner")
    with TestClient(create_app(Settings(database_url=url))) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        c.store = store
        yield c


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_a_bad_request_is_a_4xx_problem_and_changes_nothing(client, case):
    method, path, body = API_CASES[case]
    before = snapshot(client.store)
    revisions = len(client.store.revisions())
    r = (
        client.request(method, path, json=body)
        if body is not None
        else client.request(method, path)
    )
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/problem+json"), (case, r.text[:200])
    assert r.json()["detail"], case
    assert snapshot(client.store) == before and len(client.store.revisions()) == revisions
    # the OpenAPI description says this answer can come (schemathesis found it did not)
    import re

    spec = client.app.openapi()["paths"]
    route = path.split("?")[0]
    matches = [p for p in spec if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), route)]
    template = min(matches, key=lambda p: p.count("{"), default=None)  # literal routes first
    if template is not None and method.lower() in spec[template]:
        assert str(r.status_code) in spec[template][method.lower()]["responses"], case


def test_a_nul_in_a_grid_name_is_refused_on_both_stores(store_url):
    """PostgreSQL refuses text with a NUL (a traceback before): refused by name, on both stores.

    (GDAL cuts GeoJSON text at a NUL itself, so files read through it never carry one.)
    """
    import geopandas as gpd

    from gis_grid.domain.errors import InputError
    from gis_grid.store import ChangeSet

    url, store = store_url
    before = snapshot(store)
    frame = gpd.GeoDataFrame(
        {"code": [OTHER], "name": ["a\x00b"]}, geometry=[shapely.from_wkt(GOOD)], crs=4326
    )
    with pytest.raises(InputError, match="NUL"):
        store.apply(ChangeSet(frame))
    assert snapshot(store) == before

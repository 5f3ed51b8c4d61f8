"""The web API over both stores: collections, a grid, lookup, coverage, planning, errors.

Uses the hand-drawn community of test_planning (two areas of 60 m × 60 m, four
courtyards with two buildings each).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from gis_grid.edits import move
from tests.conftest import COMMUNITY, at
from tests.test_planning import A1, A2, C2, planned

PROBLEM = "application/problem+json"


@pytest.fixture
def client(new_store):
    store = planned(new_store())
    url = store.url
    app = create_app(Settings(database_url=url, page_limit=3))
    with TestClient(app) as c:
        c.store = store
        yield c


def test_collections_list_grid_levels(client):
    r = client.get("/collections")
    assert r.status_code == 200
    ids = [c["id"] for c in r.json()["collections"]]
    assert ids[:5] == ["community", "area", "courtyard", "building", "unit"]
    assert client.get("/conformance").json()["conformsTo"]


def test_items_are_paged_geojson(client):
    r = client.get("/collections/building/items")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    assert doc["numberMatched"] == 8 and doc["numberReturned"] == 3
    assert [f["properties"]["code"] for f in doc["features"]] == [
        f"{A1}001001",
        f"{A1}001002",
        f"{A1}002001",
    ]
    following = [link for link in doc["links"] if link["rel"] == "next"][0]["href"]
    assert "offset=3" in following
    r = client.get("/collections/courtyard/items", params={"parent": A2})
    assert [f["properties"]["code"] for f in r.json()["features"]] == [f"{A2}001", f"{A2}002"]
    west = at(__import__("shapely").box(0, 0, 40, 60)).bounds
    r = client.get("/collections/courtyard/items", params={"bbox": ",".join(map(str, west))})
    assert [f["properties"]["code"] for f in r.json()["features"]] == [f"{A1}001", f"{A1}002"]


def test_one_grid_with_children_staff_and_history(client):
    move(client.store, [C2], A2)
    r = client.get(f"/grids/{A1}")
    assert r.status_code == 200
    body = r.json()
    assert body["grid"]["properties"]["households"] == 30
    assert [c["code"] for c in body["children"]] == [f"{A1}001"]
    assert body["staff"][0]["staff_id"]
    assert [h["version"] for h in body["history"]] == [1]


def test_lookup_and_coverage(client):
    point = at(__import__("shapely").Point(15, 40))
    r = client.get("/lookup", params={"lon": point.x, "lat": point.y})
    codes = [g["code"] for g in r.json()["grids"]]
    assert codes == [COMMUNITY, A1, f"{A1}001", f"{A1}001001"]
    staff_id = r.json()["grids"][1]["staff"][0]["staff_id"]
    r = client.get(f"/staff/{staff_id}")
    assert r.status_code == 200 and r.json()["staff_id"] == staff_id


def test_revisions_diff_and_proposals(client):
    from gis_grid.rebalance import propose

    move(client.store, [C2], A2)
    log = client.get(f"/communities/{COMMUNITY}/revisions").json()["revisions"]
    assert [r["operation"] for r in log] == ["import", "move"]
    d = client.get(f"/communities/{COMMUNITY}/diff", params={"from": log[0]["id"]}).json()
    assert d["households_moved"] == 70
    metrics = propose(client.store, A1, k=1)
    r = client.get(f"/proposals/{metrics['proposal']}")
    assert r.status_code == 200
    sides = {f["properties"]["side"] for f in r.json()["before_after"]["features"]}
    assert sides == {"before", "after"}
    assert client.get("/proposals").json()["proposals"][0]["id"] == metrics["proposal"]


@pytest.mark.parametrize(
    "path, params, status, words",
    [
        ("/collections/nowhere/items", {}, 404, "no collection 'nowhere'"),
        ("/collections/area/items", {"bbox": "1,2,3"}, 422, "four numbers"),
        ("/collections/area/items", {"bbox": "10,50,5,60"}, 422, "exceeds"),
        ("/collections/area/items", {"bbox": "1,2,3,nan"}, 422, "finite"),
        ("/collections/area/items", {"limit": 100000}, 422, "most one page"),
        ("/collections/area/items", {"limit": 0}, 422, "limit"),
        ("/lookup", {"lon": 42.45, "lat": 123.56}, 422, "swapped"),
        ("/lookup", {"lon": "east"}, 422, "lon"),
        ("/grids/211281001007999", {}, 404, "no grid"),
        ("/staff/NOBODY", {}, 404, "NOBODY"),
        ("/proposals/99", {}, 404, "no proposal 99"),
        (f"/communities/{COMMUNITY}/diff", {"from": 99}, 404, "revision 99"),
    ],
)
def test_bad_requests_get_a_clear_problem(client, path, params, status, words):
    r = client.get(path, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert words in r.json()["detail"], r.json()


def test_openapi_documents_every_route(client):
    spec = client.get("/openapi.json").json()
    assert {
        "/collections/{cid}/items",
        "/lookup",
        "/grids/{code}",
        "/staff/{staff_id}",
        "/communities/{community}/diff",
        "/proposals/{pid}",
    } <= set(spec["paths"])


def test_serve_refuses_the_network_without_access_control(tmp_path):
    from typer.testing import CliRunner

    from gis_grid.cli import app
    from gis_grid.store.gpkg import GeoPackageStore

    path = tmp_path / "s.gpkg"
    GeoPackageStore(path).close()
    result = CliRunner().invoke(app, ["serve", str(path), "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "phone numbers" in result.stderr

"""The web API over both stores: collections, a grid, lookup, coverage, planning, errors.

Uses the hand-drawn community of test_planning (two areas of 60 m × 60 m, four
courtyards with two buildings each).
"""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from gis_grid.planning.edits import move
from tests.conftest import COMMUNITY, at
from tests.test_planning import A1, A2, C1, C2, C3, line, planned

PROBLEM = "application/problem+json"


ROLES = ("admin", "planner", "supervisor", "leadership", "grid_worker")


@pytest.fixture
def client(new_store):
    """An app over the planning layout; one user per role (the grid worker covers area 001).

    Requests carry the admin's token unless they say otherwise.
    """
    store = planned(new_store())
    worker = store.assignments(grid_codes=[A1])["staff_id"].item()
    tokens = {
        role: store.add_user(f"u-{role}", role, role, worker if role == "grid_worker" else None)
        for role in ROLES
    }
    app = create_app(Settings(database_url=store.url, page_limit=3, max_body_bytes=200_000))
    with TestClient(app) as c:
        c.store = store
        c.tokens = tokens
        c.worker = worker
        c.headers["Authorization"] = f"Bearer {tokens['admin']}"
        yield c


def as_(client, role):
    return {"Authorization": f"Bearer {client.tokens[role]}"}


def versions(client, *codes) -> dict[str, int]:
    """The versions of grids as a planner sees them (what an edit names)."""
    return {c: client.get(f"/grids/{c}").json()["grid"]["properties"]["version"] for c in codes}


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
    from gis_grid.planning.rebalance import propose

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


# -- access control ------------------------------------------------------------------------


def test_no_token_or_a_bad_one_is_401(client, monkeypatch):
    r = client.get("/collections", headers={"Authorization": ""})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "gis-grid user add" in r.json()["detail"]
    r = client.get("/collections", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401
    assert client.get("/collections", headers=as_(client, "planner")).status_code == 200
    client.app.state.store.revoke_user("u-planner")  # by the serving process: at once
    assert client.get("/collections", headers=as_(client, "planner")).status_code == 401
    # by another process (the CLI): once the checked token's TOKEN_TTL has passed
    import api.auth

    assert client.get("/collections", headers=as_(client, "supervisor")).status_code == 200
    client.store.revoke_user("u-supervisor")
    assert client.get("/collections", headers=as_(client, "supervisor")).status_code == 200
    monkeypatch.setattr(api.auth, "TOKEN_TTL", 0.0)
    assert client.get("/collections", headers=as_(client, "supervisor")).status_code == 401
    assert client.get("/").status_code == 200  # the landing page names no data


READS = [
    ("/collections/area/items", {}),
    (f"/grids/{A2}", {}),
    ("/staff/T00000", {}),
    (f"/communities/{COMMUNITY}/revisions", {}),
    ("/proposals", {}),
]


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_for_reads(client, role):
    expected = {
        "admin": [200, 200, 200, 200, 200],
        "planner": [200, 200, 200, 200, 200],
        "supervisor": [200, 200, 200, 200, 200],
        "leadership": [200, 200, 200, 200, 200],
        "grid_worker": [200, 403, 403, 403, 403],
    }[role]
    got = [client.get(p, params=q, headers=as_(client, role)).status_code for p, q in READS]
    assert got == expected
    if role == "grid_worker":  # their own area, its courtyards, and themselves
        r = client.get("/collections/area/items", headers=as_(client, role))
        assert [f["properties"]["code"] for f in r.json()["features"]] == [A1]
        assert client.get(f"/grids/{A1}001", headers=as_(client, role)).status_code == 200
        assert client.get(f"/staff/{client.worker}", headers=as_(client, role)).status_code == 200
        east = at(__import__("shapely").Point(75, 40))
        r = client.get("/lookup", params={"lon": east.x, "lat": east.y}, headers=as_(client, role))
        assert r.status_code == 403


#: The newer reads: (path, params, what a grid worker covering A1 gets).
MORE_READS = [
    ("/me", {}, 200),
    ("/staff", {"q": "T"}, 200),  # finds themselves only
    (f"/grids/{A1}/summary", {}, 200),
    (f"/grids/{A2}/summary", {}, 403),
    (f"/grids/{A1}/map.html", {"layers": "false"}, 200),
    (f"/grids/{A2}/map.html", {"layers": "false"}, 403),
    ("/analysis/holes/staff", {}, 200),  # cut to their grids
    ("/analysis/holes/staff", {"under": A2}, 403),
    ("/analysis/holes/unowned", {}, 403),
    ("/analysis/hotspots", {"permutations": 0}, 403),
    ("/tiles/area/16/0/0.pbf", {}, 200),  # cut to their grids
    ("/map/planner", {}, 200),  # the page itself is public: its data is not
]


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_for_the_newer_reads(client, role):
    for path, params, worker in MORE_READS:
        r = client.get(path, params=params, headers=as_(client, role))
        expected = worker if role == "grid_worker" else 200
        if path.startswith("/analysis/hotspots") and role != "grid_worker":
            expected = 404  # this store has no incidents layer: named, not a crash
        assert r.status_code == expected, (role, path, r.text[:200])
    r = client.get("/staff", params={"q": "T"}, headers=as_(client, role))
    found = {s["staff_id"] for s in r.json()["staff"]}
    assert found == ({client.worker} if role == "grid_worker" else found) and found


@pytest.mark.parametrize("role", ROLES)
def test_only_planners_and_admins_change_boundaries(client, role):
    before = client.store.revisions()
    body = {"codes": [A1, A2], "versions": versions(client, A1, A2)}
    r = client.post("/grids/merge", json=body, headers=as_(client, role))
    if role in ("admin", "planner"):
        assert r.status_code == 200, r.text
        assert r.json()["deleted"][0] == A2
        log = client.store.audit_log()
        assert log["user_id"].tolist() == [f"u-{role}"] and log["action"].tolist() == ["merge"]
        assert A2 in log["detail"].iloc[0]["before"]
        assert int(log["revision"].iloc[0]) == r.json()["revision"]
    else:
        assert r.status_code == 403 and "may not change grid boundaries" in r.json()["detail"]
        assert len(client.store.revisions()) == len(before) and not len(client.store.audit_log())


def test_edits_over_http_undo_and_refusals(client):
    shapely = __import__("shapely")
    cut = shapely.geometry.mapping(line((15, -5), (15, 65)))
    r = client.post(f"/grids/{A1}/split", json={"line": cut, "version": 1})
    assert r.status_code == 422 and C1 in r.json()["detail"]
    r = client.post("/grids/move", json={"atoms": [C2], "to": A2})
    assert r.status_code == 422  # no versions: refused, nothing moved
    r = client.post("/grids/move", json={"atoms": [C2], "to": A2, "versions": {C2: 1}})
    assert r.status_code == 422 and A2 in r.json()["detail"]  # every grid named needs one
    body = {"atoms": [C2], "to": A2, "versions": versions(client, C2, A2)}
    r = client.post("/grids/move", json=body)
    assert r.status_code == 200 and f"{A2}003" in r.json()["inserted"]
    version = client.get(f"/grids/{A1}").json()["grid"]["properties"]["version"]
    outline = shapely.geometry.mapping(at(shapely.box(0, 0, 32, 60)))
    r = client.put(f"/grids/{A1}/outline", json={"geometry": outline, "version": version - 1})
    assert r.status_code == 409
    r = client.put(f"/grids/{A1}/outline", json={"geometry": outline, "version": version})
    assert r.status_code == 200
    latest = client.get(f"/communities/{COMMUNITY}/revisions").json()["revisions"][-1]["id"]
    r = client.post(f"/communities/{COMMUNITY}/undo", json={"revision": latest - 1})
    assert r.status_code == 409 and f"revision {latest}" in r.json()["detail"]
    r = client.post(f"/communities/{COMMUNITY}/undo", json={"revision": latest})
    assert r.status_code == 200 and r.json()["operation"] == "undo"
    r = client.post("/rebalance", json={"parent": A2, "k": 2})
    assert r.status_code == 200 and r.json()["contiguous"]
    pid = r.json()["proposal"]
    assert client.post(f"/proposals/{pid}/accept").status_code == 200
    assert client.post(f"/proposals/{pid}/accept").status_code == 422
    actions = client.get("/audit").json()["audit"]
    assert [a["action"] for a in actions] == ["move", "redraw", "undo", "propose", "accept"]
    assert client.get("/audit", headers=as_(client, "planner")).status_code == 403


def test_outline_check_shows_an_overlap_and_saves_nothing(client):
    shapely = __import__("shapely")
    before = client.store.revisions()
    version = client.get(f"/grids/{A1}").json()["grid"]["properties"]["version"]
    wide = shapely.geometry.mapping(at(shapely.box(0, 0, 62, 60)))  # 2 m into A2
    body = {"geometry": wide, "version": version, "take": False}
    r = client.post(f"/grids/{A1}/outline/check", json=body)
    assert r.status_code == 200 and not r.json()["ok"]
    (problem,) = r.json()["problems"]
    assert problem["kind"] == "overlap" and problem["codes"] == [A1, A2]
    assert "120 m²" in problem["message"] and problem["area_m2"] == pytest.approx(120, abs=0.5)
    shape = shapely.geometry.shape(problem["geometry"])
    assert shape.bounds == pytest.approx(at(shapely.box(60, 0, 62, 60)).bounds, abs=1e-7)
    r = client.put(f"/grids/{A1}/outline", json=body)
    assert r.status_code == 422 and f"overlaps {A2} by 120 m²" in r.json()["detail"]
    r = client.post(f"/grids/{A1}/outline/check", json=body | {"take": True})
    assert r.json()["ok"] and r.json()["changes"]["updated"] == [A1, A2]  # a dry run
    deep = shapely.geometry.mapping(at(shapely.box(0, 0, 75, 60)))  # across courtyard C3
    r = client.post(f"/grids/{A1}/outline/check", json=body | {"geometry": deep, "take": True})
    assert not r.json()["ok"] and C3 in r.json()["problems"][0]["message"]
    # past the community's edge: the problem the edit would leave, as a record a page can word
    out = shapely.geometry.mapping(at(shapely.box(-5, 0, 60, 60)))
    r = client.post(f"/grids/{A1}/outline/check", json=body | {"geometry": out, "take": True})
    (outside,) = [p for p in r.json()["problems"] if p["kind"] == "outside_parent"]
    assert outside["codes"][0] == A1 and outside["area_m2"] == pytest.approx(300, abs=1)
    r = client.post(f"/grids/{A1}/outline/check", json=body | {"version": version + 1})
    assert r.json()["problems"][0]["kind"] == "ConflictError"
    assert len(client.store.revisions()) == len(before) and not len(client.store.audit_log())
    assert client.get(f"/grids/{A1}").json()["grid"]["properties"]["version"] == version


def test_a_failed_audit_leaves_the_store_as_it_was(client):
    from gis_grid.planning.edits import merge

    before = client.store.grids(under=[COMMUNITY])
    with pytest.raises(KeyError):  # an audit record without a role: fails inside the write
        merge(client.store, [A1, A2], audit={"user_id": "u", "action": "merge", "target": A1})
    after = client.store.grids(under=[COMMUNITY])
    assert after["code"].tolist() == before["code"].tolist()
    assert not len(client.store.audit_log()) and len(client.store.revisions()) == 1


def test_a_polygon_of_a_million_vertices_is_refused_by_count(new_store):
    """With room for its 29 MB body, the vertex cap still refuses it, and says so."""
    import json as _json

    import numpy as np

    store = planned(new_store())
    token = store.add_user("u-big", "big", "planner")
    app = create_app(Settings(database_url=store.url, max_body_bytes=100_000_000))
    angles = np.linspace(0, 2 * np.pi, 1_000_000, endpoint=False)
    ring = np.c_[123.556 + 0.001 * np.cos(angles), 42.45 + 0.001 * np.sin(angles)].round(7)
    ring = np.r_[ring, ring[:1]].tolist()
    body = _json.dumps({"geometry": {"type": "Polygon", "coordinates": [ring]}, "version": 1})
    with TestClient(app) as c:
        r = c.put(
            f"/grids/{A1}/outline",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    assert r.status_code == 413 and "1,000,001 vertices" in r.json()["detail"]
    assert len(store.revisions()) == 1


def test_oversized_and_invalid_geometry_are_refused(client):
    shapely = __import__("shapely")
    ring = shapely.Point(123.556, 42.45).buffer(0.001, quad_segs=300_000 // 4)
    big = {"type": "Polygon", "coordinates": [list(ring.exterior.coords)[:50_000]]}
    r = client.put(f"/grids/{A1}/outline", json={"geometry": big, "version": 1})
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]] * 1}
    r = client.put(f"/grids/{A1}/outline", json={"geometry": {"type": "Polygon"}, "version": 1})
    assert r.status_code == 422 and "GeoJSON" in r.json()["detail"]
    r = client.put(
        f"/grids/{A1}/outline", json={"geometry": square | {"type": "Point"}, "version": 1}
    )
    assert r.status_code == 422
    bow = {
        "type": "Polygon",
        "coordinates": [
            [
                list(p)
                for p in shapely.get_coordinates(
                    at(shapely.Polygon([(0, 0), (60, 60), (60, 0), (0, 60)])).exterior
                )
            ]
        ],
    }
    r = client.put(f"/grids/{A1}/outline", json={"geometry": bow, "version": 1})
    assert r.status_code == 422 and "valid" in r.json()["detail"]


# -- vector tiles ----------------------------------------------------------------------------


def _tile_of(point, z):
    import morecantile

    return morecantile.tms.get("WebMercatorQuad").tile(point.x, point.y, z)


@pytest.mark.parametrize("level, expected", [("area", [A1, A2]), ("building", None)])
def test_tiles_carry_the_grids_of_the_tile(client, level, expected):
    import mapbox_vector_tile

    shapely = __import__("shapely")
    t = _tile_of(at(shapely.Point(60, 30)), 16)
    r = client.get(f"/tiles/{level}/{t.z}/{t.x}/{t.y}.pbf")
    assert (
        r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    )
    layer = mapbox_vector_tile.decode(r.content)[level]
    codes = sorted(f["properties"]["code"] for f in layer["features"])
    # the store's answer for the same tile (bbox of the tile and its buffer)
    from tiles.mvt import BUFFER, EXTENT, lonlat_bounds

    box = lonlat_bounds(t, BUFFER / EXTENT)
    want = sorted(client.store.grids(level=level, bbox=tuple(box))["code"])
    assert codes == (expected or want)
    assert set(layer["features"][0]["properties"]) == {
        "code",
        "name",
        "level",
        "households",
        "version",
    }
    again = client.get(
        f"/tiles/{level}/{t.z}/{t.x}/{t.y}.pbf", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    "path, status, words",
    [
        ("/tiles/area/23/0/0.pbf", 422, "zoom 23"),
        ("/tiles/area/3/8/0.pbf", 422, "does not exist"),
        ("/tiles/area/3/-1/0.pbf", 422, "does not exist"),
        ("/tiles/nowhere/3/1/1.pbf", 404, "no tile layer"),
    ],
)
def test_bad_tiles_are_refused(client, path, status, words):
    r = client.get(path)
    assert r.status_code == status and words in r.json()["detail"]


def test_layer_tiles_carry_their_features(client):
    import geopandas as gpd
    import mapbox_vector_tile

    from gis_grid.geo.crs import WGS84
    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer

    shapely = __import__("shapely")
    plugin = get_layer("incidents")
    cases = gpd.GeoDataFrame(
        [{"id": f"E{i}", "reported_at": "2026-11-01", "category": "其他"} for i in range(3)],
        geometry=[at(shapely.Point(15, 40)), at(shapely.Point(45, 40)), at(shapely.Point(95, 40))],
        crs=WGS84,
    )
    before = client.store.generation()
    client.store.write_features(plugin.schema, normalise_features(plugin.schema, cases))
    assert client.store.generation() > before  # cached tiles of the layer are stale now
    t = _tile_of(at(shapely.Point(60, 30)), 16)
    r = client.get(f"/tiles/incidents/{t.z}/{t.x}/{t.y}.pbf")
    features = mapbox_vector_tile.decode(r.content)["incidents"]["features"]
    assert sorted(f["properties"]["id"] for f in features) == ["E0", "E1", "E2"]
    e0 = [f for f in features if f["properties"]["id"] == "E0"][0]
    assert e0["properties"]["building_code"] == f"{A1}001001"
    assert e0["geometry"]["type"] == "Point"


def test_a_redrawn_edge_moves_in_the_tiles(client):
    """A tile draws each outline as stored now (PostGIS keeps a Web Mercator copy per write).

    Areas A1 and A2 share the edge x = 60 m; A1 redrawn to x = 62 m takes 2 m of A2.
    """
    import mapbox_vector_tile

    from gis_grid.geo.crs import WGS84, reproject
    from tiles.mvt import EXTENT, MERCATOR, TMS

    shapely = __import__("shapely")
    t = _tile_of(at(shapely.Point(60, 30)), 16)
    b = TMS.xy_bounds(t)

    def drawn() -> dict:  # west and east edge (tile units) of each area in the tile
        layer = mapbox_vector_tile.decode(client.get(f"/tiles/area/{t.z}/{t.x}/{t.y}.pbf").content)
        return {
            f["properties"]["code"]: shapely.geometry.shape(f["geometry"]).bounds[::2]
            for f in layer["area"]["features"]
        }

    def stored(code) -> tuple:  # the same from the store's outline
        geom = client.store.grids(codes=[code]).geometry.to_numpy()
        west, _, east, _ = reproject(geom, WGS84, MERCATOR)[0].bounds
        return tuple((x - b.left) / (b.right - b.left) * EXTENT for x in (west, east))

    before = drawn()
    assert before[A1][1] == pytest.approx(stored(A1)[1], abs=1)
    assert before[A2][0] == pytest.approx(stored(A2)[0], abs=1)
    version = client.get(f"/grids/{A1}").json()["grid"]["properties"]["version"]
    wide = shapely.geometry.mapping(at(shapely.box(0, 0, 62, 60)))
    r = client.put(f"/grids/{A1}/outline", json={"geometry": wide, "version": version})
    assert r.status_code == 200
    after = drawn()
    assert after[A1][1] - before[A1][1] > 15  # 2 m at 42°N are ~18 units at z16: it moved
    assert after[A1][1] == pytest.approx(stored(A1)[1], abs=1)
    assert after[A2][0] == pytest.approx(stored(A2)[0], abs=1)


def test_tiles_are_cached_until_the_next_write(client):
    import mapbox_vector_tile

    shapely = __import__("shapely")
    t = _tile_of(at(shapely.Point(60, 30)), 16)
    path = f"/tiles/area/{t.z}/{t.x}/{t.y}.pbf"
    cache = client.app.state.tile_cache
    first = client.get(path)
    assert client.get(path).content == first.content and cache.hits == 1
    body = {"codes": [A1, A2], "versions": versions(client, A1, A2)}
    assert client.post("/grids/merge", json=body).status_code == 200  # a write: new generation
    after = client.get(path)
    codes = [
        f["properties"]["code"]
        for f in mapbox_vector_tile.decode(after.content)["area"]["features"]
    ]
    assert codes == [A1] and cache.hits == 1 and after.headers["etag"] != first.headers["etag"]


def _cases(client, points, categories=None):
    import geopandas as gpd

    from gis_grid.geo.crs import WGS84
    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer

    schema = get_layer("incidents").schema
    rows = [
        {
            "id": f"E{i}",
            "reported_at": "2026-11-01",
            "category": (categories or ["其他"] * 2)[i % 2],
        }
        for i in range(len(points))
    ]
    cases = gpd.GeoDataFrame(rows, geometry=[at(p) for p in points], crs=WGS84)
    client.store.write_features(schema, normalise_features(schema, cases))


def _nearest_cell(x, y, s):
    """The hexagon lattice cell (i, j) nearest a Web Mercator point, by brute force."""
    i0, j0 = round(x / (1.5 * s)), round(y / (math.sqrt(3) * s))
    near = [
        ((x - 1.5 * s * i) ** 2 + (y - math.sqrt(3) * s * (j + (i % 2) / 2)) ** 2, i, j)
        for i in range(i0 - 2, i0 + 3)
        for j in range(j0 - 2, j0 + 3)
    ]
    return min(near)[1:]


def _bins_of(features, t) -> dict:
    """Each whole hexagon of a decoded tile by its lattice cell: its properties."""
    import numpy as np

    from tiles.mvt import EXTENT, TMS, hex_size

    b = TMS.xy_bounds(t)
    scale = (b.right - b.left) / EXTENT
    found = {}
    for f in features:
        assert f["geometry"]["type"] == "Polygon"
        ring = np.array(f["geometry"]["coordinates"][0], dtype=float)
        assert len(ring) == 7  # a whole hexagon (the community is far from the tile's edge)
        cx, cy = ring[:-1].mean(axis=0)
        found[_nearest_cell(b.left + cx * scale, b.bottom + cy * scale, hex_size(t.z))] = f[
            "properties"
        ]
    return found


def test_grids_above_the_cap_become_hex_bins_with_counts_and_households(client):
    """8 buildings, 360 households; cap 3 at z14: bins hold the buildings whose centroid
    is nearest their centre, counted and with their households summed; cap 8: buildings."""
    import mapbox_vector_tile
    import numpy as np
    import shapely

    from gis_grid.geo.crs import WGS84, reproject
    from tiles.mvt import MERCATOR, hex_size

    t = _tile_of(at(shapely.Point(60, 30)), 14)
    path = f"/tiles/building/{t.z}/{t.x}/{t.y}.pbf"
    client.app.state.settings.tile_feature_cap = 3
    features = mapbox_vector_tile.decode(client.get(path).content)["building"]["features"]
    got = _bins_of(features, t)
    buildings = client.store.grids(level="building")
    centres = reproject(shapely.centroid(buildings.geometry.to_numpy()), WGS84, MERCATOR)
    expected = {}
    for c, households in zip(centres, buildings["households"], strict=True):
        key = _nearest_cell(c.x, c.y, hex_size(14))
        count, total = expected.get(key, (0, 0))
        expected[key] = (count + 1, total + int(households))
    assert {k: (v["count"], v["households"]) for k, v in got.items()} == expected
    assert sum(v["count"] for v in got.values()) == 8 and len(got) > 1
    assert sum(v["households"] for v in got.values()) == 360
    client.app.state.settings.tile_feature_cap = 8  # at the cap, not over it: the polygons
    features = mapbox_vector_tile.decode(client.get(path).content)["building"]["features"]
    assert sorted(f["properties"]["code"] for f in features) == sorted(buildings["code"])
    assert np.all([set(f["properties"]) >= {"code", "households"} for f in features])


def test_points_above_the_cap_become_hex_bins_with_their_counts(client):
    """40 incidents, cap 5: hexagons counted as a brute-force nearest-centre search counts."""
    import mapbox_vector_tile
    import numpy as np

    from gis_grid.geo.crs import WGS84, reproject
    from tiles.mvt import MERCATOR, hex_size

    shapely = __import__("shapely")
    client.app.state.settings.tile_feature_cap = 5
    points = [shapely.Point(3 + 29 * (k % 4), 5 + 12 * (k // 4)) for k in range(40)]
    _cases(client, points)
    t = _tile_of(at(shapely.Point(60, 30)), 14)
    layer = mapbox_vector_tile.decode(client.get(f"/tiles/incidents/14/{t.x}/{t.y}.pbf").content)
    features = layer["incidents"]["features"]
    assert all(f["geometry"]["type"] == "Polygon" for f in features)
    got = {cell: props["count"] for cell, props in _bins_of(features, t).items()}
    merc = reproject(np.array([at(p) for p in points], dtype=object), WGS84, MERCATOR)
    expected = {}
    for p in merc:
        key = _nearest_cell(p.x, p.y, hex_size(14))
        expected[key] = expected.get(key, 0) + 1
    assert got == expected and sum(got.values()) == 40 and len(got) > 1
    # the same tile under the cap: the points themselves
    client.app.state.settings.tile_feature_cap = 40
    layer = mapbox_vector_tile.decode(client.get(f"/tiles/incidents/14/{t.x}/{t.y}.pbf").content)
    assert len(layer["incidents"]["features"]) == 40


def test_tiles_filter_by_category_and_time_and_keep_a_grid_worker_to_their_grids(client):
    import mapbox_vector_tile

    shapely = __import__("shapely")
    _cases(
        client,
        [shapely.Point(15, 40), shapely.Point(45, 40), shapely.Point(95, 40)],
        categories=["其他", "市容环境"],
    )
    t = _tile_of(at(shapely.Point(60, 30)), 16)
    path = f"/tiles/incidents/{t.z}/{t.x}/{t.y}.pbf"

    def ids(response, layer="incidents"):
        assert response.status_code == 200, response.text
        found = mapbox_vector_tile.decode(response.content).get(layer, {"features": []})
        return sorted(
            f["properties"].get("id", f["properties"].get("code")) for f in found["features"]
        )

    assert ids(client.get(path)) == ["E0", "E1", "E2"]
    assert ids(client.get(path, params={"category": "other"})) == ["E0", "E2"]
    assert ids(client.get(path, params={"category": ["other", "environment"]})) == [
        "E0",
        "E1",
        "E2",
    ]
    assert ids(client.get(path, params={"datetime": "2026-11-02/.."})) == []
    assert ids(client.get(path, params={"datetime": "../2026-11-02"})) == ["E0", "E1", "E2"]
    worker = as_(client, "grid_worker")  # covers area 001 (x < 60) only
    assert ids(client.get(path, headers=worker)) == ["E0", "E1"]
    area = f"/tiles/area/{t.z}/{t.x}/{t.y}.pbf"
    assert ids(client.get(area, headers=worker), "area") == [A1]
    assert ids(client.get(area), "area") == [A1, A2]
    r = client.get(f"/tiles/area/{t.z}/{t.x}/{t.y}.pbf", params={"datetime": "2026-11-02/.."})
    assert r.status_code == 200  # grid tiles ignore layer filters


def test_overdue_cases_by_category_with_the_person_responsible(client):
    shapely = __import__("shapely")
    _cases(
        client,
        [shapely.Point(15, 40), shapely.Point(45, 40), shapely.Point(95, 40)],
        categories=["其他", "市容环境"],
    )
    r = client.get("/analysis/holes/incidents")
    assert r.status_code == 200 and r.json()["summary"]["overdue"] == 3  # reported 2026-11-01
    r = client.get("/analysis/holes/incidents", params={"category": "其他"})
    holes = r.json()["holes"]["features"]
    assert sorted(f["properties"]["id"] for f in holes) == ["E0", "E2"]
    e2 = next(f["properties"] for f in holes if f["properties"]["id"] == "E2")
    assert e2["area_code"] == A2 and e2["staff_name"]  # the person of the grid it is in
    r = client.get("/analysis/holes/incidents", params={"category": "nonsense"})
    assert r.status_code == 422 and "unknown category" in r.json()["detail"]
    worker = client.get("/analysis/holes/incidents", headers=as_(client, "grid_worker"))
    assert sorted(f["properties"]["id"] for f in worker.json()["holes"]["features"]) == [
        "E0",
        "E1",
    ]


def test_analysis_outputs_come_as_tiles_too(client):
    """Overdue cases as a tile: the same findings and attributes as the GeoJSON route."""
    import mapbox_vector_tile

    shapely = __import__("shapely")
    _cases(
        client,
        [shapely.Point(15, 40), shapely.Point(45, 40), shapely.Point(95, 40)],
        categories=["其他", "市容环境"],
    )
    t = _tile_of(at(shapely.Point(60, 30)), 16)
    path = f"/tiles/analysis/incidents/{t.z}/{t.x}/{t.y}.pbf"

    def found(response):
        assert response.status_code == 200, response.text
        layer = mapbox_vector_tile.decode(response.content).get("incidents", {"features": []})
        return {f["properties"]["id"]: f["properties"] for f in layer["features"]}

    everything = found(client.get(path))
    assert sorted(everything) == ["E0", "E1", "E2"]
    geo = client.get("/analysis/holes/incidents").json()["holes"]["features"]
    e2 = next(f["properties"] for f in geo if f["properties"]["id"] == "E2")
    assert everything["E2"]["staff_name"] == e2["staff_name"]
    assert everything["E2"]["overdue_hours"] == pytest.approx(e2["overdue_hours"])
    assert sorted(found(client.get(path, params={"category": "其他"}))) == ["E0", "E2"]
    assert sorted(found(client.get(path, headers=as_(client, "grid_worker")))) == ["E0", "E1"]
    r = client.get(f"/tiles/analysis/nothing/{t.z}/{t.x}/{t.y}.pbf")
    assert r.status_code == 404 and "hotspots" in r.json()["detail"]
    assert client.get("/tiles/analysis/incidents/23/0/0.pbf").status_code == 422


def test_refusals_in_chinese_for_a_request_that_asks_in_chinese(client):
    zh = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
    r = client.get("/audit", headers={**as_(client, "planner"), **zh})
    assert r.status_code == 403 and r.json()["detail"] == "规划员不能查看操作审计记录"
    r = client.get("/audit", headers=as_(client, "planner"))
    assert r.json()["detail"] == "a planner may not read the audit log"
    r = client.get("/grids/211281001007999", headers=zh)
    assert r.status_code == 404 and r.json()["detail"] == "没有网格 211281001007999"


def test_a_planners_stale_edit_is_refused_in_their_language(client):
    shapely = __import__("shapely")
    version = client.get(f"/grids/{A1}").json()["grid"]["properties"]["version"]
    body = {"geometry": shapely.geometry.mapping(at(shapely.box(0, 0, 58, 60))), "take": True}
    zh = {**as_(client, "planner"), "Accept-Language": "zh"}
    r = client.put(f"/grids/{A1}/outline", json=body | {"version": version + 1}, headers=zh)
    assert r.status_code == 409
    assert r.json()["detail"].startswith("这些网格在您看到之后已被他人修改（")
    listed = f"：{A1}（您看到的是第 {version + 1} 版，现为第 {version} 版）"
    assert r.json()["detail"].endswith(f"{listed}；请重新载入后再改（未做任何修改）")
    merge = {"codes": [A1, A2], "versions": {A1: version + 1, A2: 1}}
    r = client.post("/grids/merge", json=merge, headers=zh)
    assert r.status_code == 409 and f"{A1}（您看到的是第 {version + 1} 版" in r.json()["detail"]


def test_a_stale_edit_names_who_saved_first(client):
    """Two planners open area 001; the first saves, the second is told who and when."""
    shapely = __import__("shapely")
    seen = client.get(f"/grids/{A1}").json()["grid"]["properties"]["version"]
    first = {"geometry": shapely.geometry.mapping(at(shapely.box(0, 0, 58, 60))), "version": seen}
    r = client.put(f"/grids/{A1}/outline", json=first, headers=as_(client, "planner"))
    assert r.status_code == 200, r.text
    second = {"geometry": shapely.geometry.mapping(at(shapely.box(0, 0, 62, 60))), "version": seen}
    before = client.get(f"/grids/{A1}").json()["grid"]
    r = client.put(f"/grids/{A1}/outline", json=second, headers=as_(client, "admin"))
    assert r.status_code == 409
    body = r.json()
    assert body["detail"].startswith("changed by u-planner at ")
    assert f"{A1} (you saw version {seen}, it is now {seen + 1})" in body["detail"]
    assert "reload" in body["detail"]
    assert client.get(f"/grids/{A1}").json()["grid"] == before  # nothing was saved
    zh = client.put(
        f"/grids/{A1}/outline",
        json=second,
        headers={**as_(client, "admin"), "Accept-Language": "zh"},
    )
    assert "（u-planner 于 " in zh.json()["detail"]

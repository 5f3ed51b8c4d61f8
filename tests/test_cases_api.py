"""Cases over HTTP and Open311 GeoReport v2, on both stores: roles, steps, refusals, round trips."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings

PROBLEM = "application/problem+json"


@pytest.fixture
def client(demo_store):
    """The demo grids served; a user per role. The grid worker covers the first area."""
    store = demo_store
    area = sorted(store.grids(level="area", geometry=False)["code"])[0]
    worker = store.assignments(grid_codes=[area])["staff_id"].iloc[0]
    tokens = {
        "supervisor": store.add_user("u-sup", "王芳", "supervisor"),
        "checker": store.add_user("u-check", "李强", "supervisor"),
        "planner": store.add_user("u-plan", "规划", "planner"),
        "grid_worker": store.add_user("u-work", "网格员", "grid_worker", worker),
        "reporter": store.add_user("u-311", "12345热线", "reporter"),
    }
    app = create_app(Settings(database_url=store.url, sweep_seconds=0))
    units = store.grids(level="unit", geometry=True).sort_values("code")
    with TestClient(app) as c:
        c.store, c.tokens, c.area = store, tokens, area
        inside = units.loc[units["code"].str.startswith(area)].geometry.iloc[0]
        outside = units.loc[~units["code"].str.startswith(area)].geometry.iloc[0]
        c.inside = inside.representative_point()
        c.outside = outside.representative_point()
        c.headers["Authorization"] = f"Bearer {tokens['supervisor']}"
        yield c


def auth(client, role):
    return {"Authorization": f"Bearer {client.tokens[role]}"}


def report(client, point, role="supervisor", **kw):
    body = {"lon": point.x, "lat": point.y, "category": "environment", **kw}
    r = client.post("/cases", json=body, headers=auth(client, role))
    assert r.status_code == 201, r.text
    return r.json()


def step(client, case, action, role="supervisor", **kw):
    version = client.get(f"/cases/{case['id']}").json()["version"]
    body = {"action": action, "version": version, **kw}
    return client.post(f"/cases/{case['id']}/steps", json=body, headers=auth(client, role))


def test_a_case_through_the_loop_over_http(client):
    case = report(client, client.inside, description="井盖缺失")
    assert case["status"] == "reported" and case["grids"]["area"] == client.area
    assert case["owner"]["staff_name"] and case["deadline"] and case["timeline"]
    assert step(client, case, "accept").status_code == 200
    r = step(client, case, "dispatch")
    assert r.json()["department"] == "城管执法"
    r = step(client, case, "handle", "grid_worker", note="盖好了", photo="https://x.invalid/1.jpg")
    assert r.status_code == 200 and r.json()["handler"] == "网格员"
    r = step(client, case, "verify", "checker")
    r = step(client, case, "close", satisfaction=5)
    assert r.status_code == 200
    done = r.json()
    assert done["status"] == "closed" and done["satisfaction"] == 5
    assert [t["action"] for t in done["timeline"]] == [
        "report",
        "accept",
        "dispatch",
        "handle",
        "verify",
        "close",
    ]
    assert [t["actor"] for t in done["timeline"]][3] == "网格员"


def test_refusals_are_problems_and_change_nothing(client):
    case = report(client, client.inside)
    before = client.get(f"/cases/{case['id']}").json()
    stale = client.post(f"/cases/{case['id']}/steps", json={"action": "accept", "version": 9})
    assert stale.status_code == 409 and stale.headers["content-type"] == PROBLEM
    wrong = step(client, case, "close")
    assert wrong.status_code == 422 and "its next step is accept" in wrong.json()["detail"]
    # the same refusal to a page that asks in Chinese, and to one that asks in English
    version = client.get(f"/cases/{case['id']}").json()["version"]
    asked = {"action": "close", "version": version}
    zh = client.post(
        f"/cases/{case['id']}/steps", json=asked, headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    )
    assert zh.status_code == 422
    assert zh.json()["detail"] == (
        f"案件 {case['id']} 当前为“上报”，现在不能结案；"
        "下一步可以“立案”或“不予立案”或“延期”或“挂起”或“升级”"
    )
    en = client.post(f"/cases/{case['id']}/steps", json=asked, headers={"Accept-Language": "en"})
    assert en.json()["detail"] == wrong.json()["detail"]
    stale_zh = client.post(
        f"/cases/{case['id']}/steps",
        json={"action": "accept", "version": 9},
        headers={"Accept-Language": "zh"},
    )
    assert "有人先办理了它" in stale_zh.json()["detail"]
    nobody = client.get("/cases", headers={"Authorization": "Bearer nope", "Accept-Language": "zh"})
    assert nobody.status_code == 401 and "此令牌无效" in nobody.json()["detail"]
    planner = step(client, case, "accept", "planner")
    assert planner.status_code == 403
    future = client.post(
        f"/cases/{case['id']}/steps",
        json={"action": "accept", "version": 1, "at": "2099-01-01T00:00:00+08:00"},
    )
    assert future.status_code == 422 and "future" in future.json()["detail"]
    bad = client.post(f"/cases/{case['id']}/steps", json={"action": "explode", "version": 1})
    assert bad.status_code == 422
    assert client.get(f"/cases/{case['id']}").json()["timeline"] == before["timeline"]
    assert client.get("/cases/C-nope").status_code == 404
    unknown = client.post("/cases", json={"lon": 1, "lat": 1, "category": "weather"})
    assert unknown.status_code == 422


def test_a_grid_worker_sees_and_handles_their_own_cases_only(client):
    mine = report(client, client.inside)
    theirs = report(client, client.outside)
    for case in (mine, theirs):
        step(client, case, "accept")
        step(client, case, "dispatch")
    listed = client.get("/cases", params={"status": "open"}, headers=auth(client, "grid_worker"))
    ids = {c["id"] for c in listed.json()["cases"]}
    assert mine["id"] in ids and theirs["id"] not in ids
    assert (
        client.get(f"/cases/{theirs['id']}", headers=auth(client, "grid_worker")).status_code == 403
    )
    assert step(client, theirs, "handle", "grid_worker").status_code == 403
    assert step(client, mine, "handle", "grid_worker").status_code == 200
    # the supervisor's list has both, most urgent first
    both = client.get("/cases", params={"status": "open", "limit": 1000}).json()
    assert {mine["id"], theirs["id"]} <= {c["id"] for c in both["cases"]}
    deadlines = [c["deadline"] for c in both["cases"] if c["deadline"]]
    assert deadlines == sorted(deadlines)


def test_a_reporter_reports_and_follows_cases_and_nothing_else(client):
    case = report(client, client.inside, role="reporter")
    assert case["reporter"] == "12345热线"
    assert client.get(f"/cases/{case['id']}", headers=auth(client, "reporter")).status_code == 200
    assert client.get("/collections", headers=auth(client, "reporter")).status_code == 403
    assert step(client, case, "accept", "reporter").status_code == 403


def test_the_sweep_route_is_for_the_desk(client):
    assert client.post("/cases/sweep", headers=auth(client, "grid_worker")).status_code == 403
    r = client.post("/cases/sweep")
    assert r.status_code == 200 and set(r.json()) >= {"escalated", "overdue", "at_top"}


def test_indicators_as_json_and_csv(client):
    case = report(client, client.inside)
    step(client, case, "accept")
    rows = client.get("/indicators", params={"by": "area"}).json()["rows"]
    row = next(r for r in rows if r["code"] == client.area)
    assert row["reported"] == 1 and row["accepted"] == 1 and row["closed"] == 0
    csv = client.get("/indicators", params={"by": "department", "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("department,reported,accepted,closed")
    assert client.get("/indicators", headers=auth(client, "grid_worker")).status_code == 403


# -- Open311 GeoReport v2 ------------------------------------------------------------


def test_open311_round_trip(client):
    key = client.tokens["reporter"]
    services = client.get("/open311/v2/services.json", params={"api_key": key}).json()
    codes = {s["service_code"] for s in services}
    assert "environment" in codes and all(s["type"] == "realtime" for s in services)
    assert client.get("/open311/v2/services/property.json", params={"api_key": key}).json() == {
        "service_code": "property",
        "attributes": [],
    }
    form = {
        "service_code": "environment",
        "lat": str(client.inside.y),
        "long": str(client.inside.x),
        "description": "垃圾满了",
        "address_string": "宏大社区 3 号楼",
        "api_key": key,
    }
    created = client.post("/open311/v2/requests.json", data=form, headers={"Authorization": ""})
    assert created.status_code == 200, created.text
    sid = created.json()[0]["service_request_id"]
    got = client.get(f"/open311/v2/requests/{sid}.json", params={"api_key": key}).json()[0]
    assert got["service_request_id"] == sid and got["status"] == "open"
    assert got["service_code"] == "environment" and got["description"] == "垃圾满了"
    assert got["address"] == "宏大社区 3 号楼"
    assert abs(got["lat"] - client.inside.y) < 1e-9 and abs(got["long"] - client.inside.x) < 1e-9
    case = client.get(f"/cases/{sid}").json()
    assert case["grids"]["area"] == client.area
    assert case["owner"]["staff_name"] in got["agency_responsible"]
    assert got["expected_datetime"].endswith("+08:00")
    found = client.get(
        "/open311/v2/requests.json", params={"api_key": key, "service_request_id": sid}
    ).json()
    assert [r["service_request_id"] for r in found] == [sid]
    listed = client.get(
        "/open311/v2/requests.json",
        params={"api_key": key, "service_code": "environment", "status": "open"},
    ).json()
    assert sid in {r["service_request_id"] for r in listed}
    # closed through the loop, it reads closed
    for action, role, extra in (
        ("accept", "supervisor", {}),
        ("dispatch", "supervisor", {}),
        ("handle", "grid_worker", {}),
        ("verify", "checker", {}),
        ("close", "supervisor", {}),
    ):
        assert step(client, {"id": sid}, action, role, **extra).status_code == 200
    got = client.get(f"/open311/v2/requests/{sid}.json", params={"api_key": key}).json()[0]
    assert got["status"] == "closed" and got["expected_datetime"] is None


@pytest.mark.parametrize(
    ("form", "code", "says"),
    [
        ({"service_code": "weather", "lat": "42.45", "long": "123.56"}, 404, "unknown category"),
        ({"service_code": "environment", "lat": "42.45"}, 400, "lat and long are required"),
        ({"service_code": "environment", "lat": "123.56", "long": "42.45"}, 422, "swapped"),
    ],
)
def test_open311_errors_are_its_list_and_write_nothing(client, form, code, says):
    before = client.get("/cases", params={"limit": 1}).json()["total"]
    r = client.post(
        "/open311/v2/requests.json",
        data={**form, "api_key": client.tokens["reporter"]},
        headers={"Authorization": ""},
    )
    assert r.status_code == code, r.text
    assert r.json()[0]["code"] == code and says in r.json()[0]["description"]
    assert client.get("/cases", params={"limit": 1}).json()["total"] == before


def test_open311_needs_a_key(client):
    r = client.get("/open311/v2/services.json", headers={"Authorization": ""})
    assert r.status_code == 401 and r.json()[0]["code"] == 401
    r = client.post(
        "/open311/v2/requests.json",
        data={"service_code": "environment", "lat": "42.45", "long": "123.56", "api_key": "x"},
        headers={"Authorization": ""},
    )
    assert r.status_code == 401
    big = client.post(
        "/open311/v2/requests.json",
        content=b"x" * 100_000,
        headers={"Authorization": "", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413  # an anonymous form is read up to 64 KiB, no further


def test_incident_tiles_follow_reports_within_the_stale_window(client, demo_store):
    """A burst of reports does not re-encode every incident tile: at most 5 s behind."""
    import morecantile

    p = client.inside
    t = morecantile.tms.get("WebMercatorQuad").tile(p.x, p.y, 17)
    path = f"/tiles/incidents/{t.z}/{t.x}/{t.y}.pbf"
    report(client, p)  # the layer exists
    first = client.get(path)
    report(client, p)
    assert client.get(path).headers["etag"] == first.headers["etag"]  # served within 5 s
    app = create_app(Settings(database_url=demo_store.url, sweep_seconds=0, tile_stale_seconds=0))
    with TestClient(app) as fresh:
        fresh.headers["Authorization"] = f"Bearer {client.tokens['supervisor']}"
        before = fresh.get(path)
        report(client, p)
        assert fresh.get(path).headers["etag"] != before.headers["etag"]  # at once

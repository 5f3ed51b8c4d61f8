"""The planner's balance panel and previews on both stores, with known answers.

The hand-drawn community of test_planning: areas 001 (x 0..60) and 002
(x 60..120), 60 m high; courtyards c1, c2 in 001 (30 and 70 households) and
c3, c4 in 002 (110 and 150). So area 001 holds 100 households and 002 260,
the target is 180, and a 60 m square has Polsby–Popper π/4.
"""

from __future__ import annotations

import math

import geopandas as gpd
import pytest
import shapely

from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.geo.crs import WGS84
from gis_grid.layers.features import normalise_features
from gis_grid.layers.plugins import get_layer
from gis_grid.planning import edits
from gis_grid.planning.balance import Panel
from tests.conftest import COMMUNITY, at, snapshot
from tests.test_planning import A1, A2, C1, C2, C3, line, planned


def rows(answer) -> dict:
    return {r["code"]: r for r in answer["rows"]}


def test_the_panel_of_a_level(new_store):
    store = planned(new_store())
    panel = Panel(store, COMMUNITY, "area").answer()
    by = rows(panel)
    assert by[A1]["households"] == 100 and by[A2]["households"] == 260
    assert by[A1]["deviation"] == pytest.approx(-80 / 180, abs=1e-4)
    assert by[A2]["deviation"] == pytest.approx(80 / 180, abs=1e-4)
    assert by[A1]["polsby_popper"] == pytest.approx(math.pi / 4, abs=0.002)
    assert by[A1]["contiguous"] and by[A1]["area_m2"] == pytest.approx(3600, abs=1)
    group = panel["groups"][COMMUNITY]
    assert group["k"] == 2 and group["target"] == 180
    assert group["max_deviation"] == pytest.approx(0.4444, abs=1e-4)
    assert [s["staff_id"] for s in by[A1]["staff"]] == store.assignments(grid_codes=[A1])[
        "staff_id"
    ].tolist()
    assert len(panel["grids"]["features"]) == 2
    yards = Panel(store, COMMUNITY, "courtyard").answer()
    assert set(yards["groups"]) == {A1, A2}  # each courtyard against its own area's mean
    assert rows(yards)[C1]["deviation"] == pytest.approx((30 - 50) / 50, abs=1e-4)
    with pytest.raises(InputError, match="areas or courtyards"):
        Panel(store, COMMUNITY, "building")


def test_incidents_weigh_where_they_are(new_store):
    store = planned(new_store())
    plugin = get_layer("incidents")
    now = __import__("pandas").Timestamp.now(tz="Asia/Shanghai").strftime("%Y-%m-%dT%H:%M:%S")
    points = [(15, 40), (16, 41), (45, 40), (100, 40), (30, 58)]  # the last: area 001, no courtyard
    frame = gpd.GeoDataFrame(
        [{"id": f"E{i}", "reported_at": now, "category": "其他"} for i in range(len(points))],
        geometry=[at(shapely.Point(*p)) for p in points],
        crs=WGS84,
    )
    store.write_features(plugin.schema, normalise_features(plugin.schema, frame))
    by = rows(Panel(store, COMMUNITY, "area", "households=1,incidents=10").answer())
    # three incidents in 001's courtyards (the one on open ground counts in no courtyard)
    assert by[A1]["workload"] == 100 + 30 and by[A2]["workload"] == 260 + 10


def test_previews_change_nothing_and_give_the_figures_after(new_store):
    store = planned(new_store())
    before = snapshot(store)
    revisions = len(store.revisions())
    panel = Panel(store, COMMUNITY, "area")

    merged = panel.preview(lambda dry_run: edits.merge(store, [A1, A2], dry_run=dry_run))
    assert merged["ok"] and merged["removed"] == [A2]
    assert [(r["code"], r["households"]) for r in merged["rows"]] == [(A1, 360)]
    assert (
        merged["groups"][COMMUNITY]["k"] == 1 and merged["groups"][COMMUNITY]["max_deviation"] == 0
    )
    assert merged["households_moved"] == 260  # area 002's households now belong to 001

    moved = panel.preview(lambda dry_run: edits.move(store, [C2], A2, dry_run=dry_run))
    assert moved["ok"] and moved["removed"] == []
    assert {r["code"]: r["households"] for r in moved["rows"]} == {A1: 30, A2: 330}
    assert moved["households_moved"] == 70 and len(moved["buildings_moved"]) == 2
    assert moved["groups"][COMMUNITY]["max_deviation"] == pytest.approx(150 / 180, abs=1e-4)

    cut = panel.preview(
        lambda dry_run: edits.split(store, A2, line=line((90, -5), (90, 65)), dry_run=dry_run)
    )
    assert cut["ok"] and cut["codes"]["inserted"] == [f"{COMMUNITY}003"]
    assert cut["unstaffed"] == [f"{COMMUNITY}003"]
    assert cut["groups"][COMMUNITY]["k"] == 3

    assert snapshot(store) == before and len(store.revisions()) == revisions


def test_a_refused_preview_says_why_in_the_asked_language(new_store):
    store = planned(new_store())
    panel = Panel(store, COMMUNITY, "area")
    empties = panel.preview(lambda dry_run: edits.move(store, [C1, C2], A2, dry_run=dry_run), "zh")
    assert not empties["ok"] and empties["problems"][0]["kind"] == "TopologyError"
    assert (
        A1 in empties["problems"][0]["message"] and "empty" not in empties["problems"][0]["message"]
    )
    through = panel.preview(
        lambda dry_run: edits.split(store, A1, line=line((15, -5), (15, 65)), dry_run=dry_run)
    )
    assert not through["ok"] and through["problems"][0]["codes"] == [C1]
    edits.merge(store, [A1, A2], author="planner-li")
    stale = panel.preview(
        lambda dry_run: edits.split(
            store, A1, line=line((60, -5), (60, 65)), version=1, dry_run=dry_run
        )
    )
    assert not stale["ok"] and stale["stale"]
    assert (
        stale["problems"][0]["by"] == ["planner-li"]
        and "planner-li" in stale["problems"][0]["message"]
    )


def test_staff_follow_a_split_and_a_merge(new_store):
    store = planned(new_store())
    free = store.staff().iloc[0]["staff_id"]
    new = f"{COMMUNITY}003"
    with pytest.raises(InputError, match="not new grids"):
        edits.split(store, A2, line=line((90, -5), (90, 65)), assign={A1: [free]})
    edits.split(store, A2, line=line((90, -5), (90, 65)), assign={new: [free]})
    assert store.assignments(grid_codes=[new])["staff_id"].tolist() == [free]
    # the west half (c3) took the new code; it borders area 001
    keep = store.assignments(grid_codes=[A1])["staff_id"].tolist()
    with pytest.raises(InputError, match="cannot keep"):
        edits.merge(store, [A1, new], keep_staff=["nobody-here"])
    edits.merge(store, [A1, new], keep_staff=keep)
    assert store.assignments(grid_codes=[A1])["staff_id"].tolist() == keep
    assert store.assignments(grid_codes=[new]).empty  # nobody is left on a grid that is gone
    assert free not in set(store.assignments(grid_codes=[A1])["staff_id"])


def test_a_revision_changes_with_their_shapes(new_store):
    store = planned(new_store())
    edits.move(store, [C2], A2, author="planner")
    rid = int(store.revisions()["id"].iloc[-1])
    found = edits.revision_changes(store, COMMUNITY, rid)
    assert set(found["before"]["code"]) >= {A1, A2, C2}
    assert f"{A2}003" in set(found["after"]["code"])
    assert len(found["buildings"]) == 2 and int(found["buildings"]["households"].sum()) == 70
    assert found["buildings"].geometry.notna().all()
    with pytest.raises(NotFoundError, match="is not one of community"):
        edits.revision_changes(store, COMMUNITY, rid + 5)


def test_the_planner_routes(new_store):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings

    store = planned(new_store())
    planner = store.add_user("pl", "规划", "planner")
    worker = store.add_user("gw", "网格员", "grid_worker", store.staff().iloc[0]["staff_id"])
    with TestClient(create_app(Settings(database_url=store.url))) as client:
        auth = {"Authorization": f"Bearer {planner}"}
        panel = client.get("/planner/balance", params={"community": COMMUNITY}, headers=auth)
        assert panel.status_code == 200 and panel.json()["groups"][COMMUNITY]["target"] == 180
        body = {"operation": "move", "atoms": [C2], "to": A2, "versions": {C2: 1, A2: 1}}
        r = client.post("/planner/preview", json=body, headers=auth).json()
        assert r["ok"] and r["households_moved"] == 70
        zh = client.post(
            "/planner/preview",
            json={**body, "atoms": [C1, C2]},
            headers={**auth, "Accept-Language": "zh"},
        ).json()
        assert not zh["ok"] and "空" in zh["problems"][0]["message"]
        assert (
            client.post("/planner/preview", json={"operation": "merge"}, headers=auth).status_code
            == 422
        )
        nope = {"Authorization": f"Bearer {worker}"}
        assert (
            client.get(
                "/planner/balance", params={"community": COMMUNITY}, headers=nope
            ).status_code
            == 403
        )
        client.post("/grids/move", json=body, headers=auth)
        rid = int(store.revisions()["id"].iloc[-1])
        changes = client.get(
            f"/communities/{COMMUNITY}/revisions/{rid}/changes", headers=auth
        ).json()
        assert changes["households_moved"] == 70 and len(changes["buildings"]["features"]) == 2
        assert C3 not in {f["properties"]["code"] for f in changes["after"]["features"]}

"""Boundaries as of a date, on both stores: lookups, grids and tiles with ``at``,
and incidents that stay with the grid they fell in on the day they were reported.

The hand-drawn community of test_planning: two areas of two courtyards each.
Its grids are imported on 2026-09-01; on 2026-10-15 (10:00 local) courtyard
c2 moves from area 001 to area 002 (it becomes 002003).
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import mapbox_vector_tile
import pytest
import shapely
from typer.testing import CliRunner

from gis_grid.cases.indicators import indicators
from gis_grid.domain.errors import InputError
from gis_grid.geo.crs import WGS84
from gis_grid.layers.features import normalise_features
from gis_grid.layers.plugins import get_layer
from gis_grid.planning.edits import move, undo
from gis_grid.planning.history import AsOf, Moment
from tests.conftest import at
from tests.test_planning import A1, A2, C1, C2, planned

MOVED = f"{A2}003"


def clock(monkeypatch, utc: str) -> None:
    """Set the revision log's clock (both stores stamp revisions with base.utc_now)."""
    import gis_grid.store.base as base

    monkeypatch.setattr(base, "utc_now", lambda: utc)


def incidents(store, rows) -> None:
    plugin = get_layer("incidents")
    frame = gpd.GeoDataFrame(
        [
            {"id": i, "reported_at": when, "category": "其他", "owner_code": owner}
            for i, when, owner, _ in rows
        ],
        geometry=[at(shapely.Point(*xy)) for *_, xy in rows],
        crs=WGS84,
    )
    store.write_features(plugin.schema, normalise_features(plugin.schema, frame))


def cameras(store, points) -> None:
    plugin = get_layer("cctv")
    frame = gpd.GeoDataFrame(
        [{"id": i, "heading": 0, "fov": 90, "range_m": 20} for i, _ in points],
        geometry=[at(shapely.Point(*xy)) for _, xy in points],
        crs=WGS84,
    )
    store.write_features(plugin.schema, normalise_features(plugin.schema, frame))


@pytest.fixture
def history(new_store, monkeypatch):
    """The community imported on 2026-09-01, incidents in c1 and c2, c2 moved on 2026-10-15."""
    clock(monkeypatch, "2026-09-01T00:00:00Z")
    store = planned(new_store())
    incidents(
        store,
        [
            ("E1", "2026-10-01T09:00:00", f"{C2}001", (45, 40)),  # c2 north, before the move
            ("E2", "2026-10-02T09:00:00", None, (15, 40)),  # c1 north
            ("E3", "2026-10-20T09:00:00", None, (45, 20)),  # c2 south, after the move
        ],
    )
    cameras(store, [("K1", (45, 45))])
    week = indicators(store, since=dt.datetime(2026, 9, 28), until=dt.datetime(2026, 10, 5))
    clock(monkeypatch, "2026-10-15T02:00:00Z")
    move(store, [C2], A2, author="planner-b")
    return store, week


def point(x, y):
    p = at(shapely.Point(x, y))
    return p.x, p.y


def test_a_point_answers_with_the_grids_of_the_day(history):
    store, _ = history
    walker = AsOf(store)
    lon, lat = point(45, 40)  # c2 north
    before = [g["code"] for g in walker.chain(Moment.parse("2026-10-01"), lon, lat)]
    after = [g["code"] for g in walker.chain(Moment.parse("2026-10-16"), lon, lat)]
    now = [g["code"] for g in walker.chain(Moment.parse("2030-01-01"), lon, lat)]
    assert before[1:] == [A1, C2, f"{C2}001"]
    assert after[1:] == [A2, MOVED, f"{MOVED}001"]
    assert now == after
    # the day of the move: before 10:00 local the old grids, after it the new
    assert [g["code"] for g in walker.chain(Moment.parse("2026-10-15T09:59"), lon, lat)][1] == A1
    assert [g["code"] for g in walker.chain(Moment.parse("2026-10-15T10:00"), lon, lat)][1] == A2
    # before the import there were no grids at all
    assert walker.chain(Moment.parse("2026-08-01"), lon, lat) == []
    # a point whose grid did not change answers the same on both days
    lon, lat = point(15, 40)
    assert [g["code"] for g in walker.chain(Moment.parse("2026-10-01"), lon, lat)] == [
        g["code"] for g in walker.chain(Moment.parse("2026-10-16"), lon, lat)
    ]


def test_the_staff_of_the_day_answer(history):
    store, _ = history
    lon, lat = point(45, 40)
    walker = AsOf(store)
    before = walker.chain(Moment.parse("2026-10-01"), lon, lat)
    after = walker.chain(Moment.parse("2026-10-16"), lon, lat)
    # c2's worker followed it: the same person, on the old code then and the new one now
    assert before[2]["staff"][0]["staff_id"] == after[2]["staff"][0]["staff_id"]
    assert before[1]["staff"] != after[1]["staff"]  # area 001's worker then, area 002's now


def test_incidents_stay_with_the_grid_of_their_day(history):
    store, week = history
    linked = store.features("incidents").set_index("id")
    assert linked.loc["E1", "area_code"] == A1  # fell in area 001 on its day
    assert linked.loc["E1", "building_code"] == f"{C2}001"
    assert linked.loc["E1", "owner_code"] == f"{MOVED}001"  # its owner grid is gone: it passed on
    assert linked.loc["E3", "area_code"] == A2  # reported after the move: the new grids
    assert linked.loc["E3", "courtyard_code"] == MOVED
    cams = store.features("cctv").set_index("id")
    assert cams.loc["K1", "area_code"] == A2  # a camera follows the grids as they are
    again = indicators(store, since=dt.datetime(2026, 9, 28), until=dt.datetime(2026, 10, 5))
    assert week[["code", "reported"]].to_dict("records") == again[["code", "reported"]].to_dict(
        "records"
    )
    assert dict(zip(again["code"], again["reported"], strict=True))[A1] == 2


def test_an_undo_does_not_move_history_either(history, monkeypatch):
    store, _ = history
    clock(monkeypatch, "2026-10-25T02:00:00Z")
    undo(store, A1[:12])
    linked = store.features("incidents").set_index("id")
    assert linked.loc["E1", "area_code"] == A1
    assert linked.loc["E3", "area_code"] == A2  # reported while c2 was in area 002
    walker = AsOf(store)
    lon, lat = point(45, 40)
    assert [g["code"] for g in walker.chain(Moment.parse("2026-10-20"), lon, lat)][1] == A2
    assert [g["code"] for g in walker.chain(Moment.parse("2026-10-26"), lon, lat)][1] == A1


def test_grids_as_of_filter_as_the_store_does(history):
    store, _ = history
    walker = AsOf(store)
    then = Moment.parse("2026-10-01")
    areas = walker.grids(then, level="area")
    assert areas["code"].tolist() == [A1, A2]
    assert areas.set_index("code").loc[A1, "households"] == 100  # c1 30 + c2 70
    assert walker.grids(then, codes=[MOVED]).empty
    assert walker.grids(then, under=[A1], level="courtyard")["code"].tolist() == [C1, C2]
    west = at(shapely.box(0, 0, 30, 60)).bounds
    assert walker.grids(then, level="courtyard", bbox=west)["code"].tolist() == [C1]


@pytest.mark.parametrize(
    "text",
    ["yesterday", "2026-13-01", "", "2026-10-01T25:00"],
    ids=["word", "month", "blank", "hour"],
)
def test_a_malformed_date_is_refused(text):
    with pytest.raises(InputError, match="not a date"):
        Moment.parse(text)


def test_the_cli_answers_as_of_a_date(history, backend):
    from gis_grid.cli import app

    store, _ = history
    lon, lat = point(45, 40)
    runner = CliRunner()
    args = ["lookup", store.url, "--lon", str(lon), "--lat", str(lat), "--format", "json"]
    before = runner.invoke(app, [*args, "--at", "2026-10-01"])
    after = runner.invoke(app, [*args, "--at", "2026-10-16"])
    assert before.exit_code == 0, before.output
    assert '"211281001007001"' in before.output and f'"{MOVED}"' not in before.output
    assert f'"{MOVED}"' in after.output
    bad = runner.invoke(app, [*args, "--at", "soon"])
    assert bad.exit_code != 0 and "not a date" in bad.output


def test_the_api_answers_as_of_a_date(history, backend):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings

    store, _ = history
    settings = Settings(database_url=store.url)
    token = store.add_user("planner-b", "规划员", "planner")
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        lon, lat = point(45, 40)
        then = client.get("/lookup", params={"lon": lon, "lat": lat, "at": "2026-10-01"}).json()
        now = client.get("/lookup", params={"lon": lon, "lat": lat}).json()
        assert [g["code"] for g in then["grids"]][1:3] == [A1, C2]
        assert [g["code"] for g in now["grids"]][1:3] == [A2, MOVED]
        assert then["at"] == "2026-10-01T15:59:59Z"
        grid = client.get(f"/grids/{A1}", params={"at": "2026-10-01"}).json()
        assert [c["code"] for c in grid["children"]] == [C1, C2]
        assert grid["grid"]["properties"]["households"] == 100
        assert client.get(f"/grids/{MOVED}", params={"at": "2026-10-01"}).status_code == 404
        bad = client.get("/lookup", params={"lon": lon, "lat": lat, "at": "soon"})
        assert bad.status_code == 422 and "not a date" in bad.json()["detail"]
        # the tiles of that day: courtyard c2 drawn under its old code
        import morecantile

        t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 18)
        url = f"/tiles/courtyard/{t.z}/{t.x}/{t.y}.pbf"
        old = mapbox_vector_tile.decode(client.get(url, params={"at": "2026-10-01"}).content)
        new = mapbox_vector_tile.decode(client.get(url).content)
        codes = lambda tile: {f["properties"]["code"] for f in tile["courtyard"]["features"]}  # noqa: E731
        assert C2 in codes(old) and MOVED not in codes(old)
        assert MOVED in codes(new) and C2 not in codes(new)
        assert (
            client.get("/tiles/incidents/18/0/0.pbf", params={"at": "2026-10-01"}).status_code
            == 422
        )

"""The case loop on both stores, on a fake clock: steps, refusals, deadlines, escalation,
routing, duplicates, imports, indicators — each with a known answer."""

from __future__ import annotations

import datetime as dt
import json
import time

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gis_grid.cases import service
from gis_grid.cases.indicators import indicators
from gis_grid.cases.loop import Actor
from gis_grid.cases.rules import Calendar, Rules
from gis_grid.domain.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from gis_grid.domain.model import CASE_LAYER

RULES = Rules.load()
MONDAY = dt.datetime(2026, 11, 30, 9, 0)  # a working Monday
SUP = Actor("王芳", "supervisor")
SUP2 = Actor("李强", "supervisor")


def at(hours: float) -> dt.datetime:
    return MONDAY + dt.timedelta(hours=hours)


# -- the calendar and the rules ------------------------------------------------


def test_working_hours_skip_lunch_nights_weekends_and_holidays():
    cal = RULES.calendar
    # Friday 17:00 + 1 h: half an hour on Friday, half on Monday morning
    assert cal.add(dt.datetime(2026, 12, 4, 17, 0), 1) == dt.datetime(2026, 12, 7, 9, 0)
    # 11:30 + 1 h: over lunch (12:00–13:30)
    assert cal.add(dt.datetime(2026, 12, 2, 11, 30), 1) == dt.datetime(2026, 12, 2, 14, 0)
    # the National Day week: 2026-10-01 … 10-07 off, Thursday 10-08 works
    assert cal.add(dt.datetime(2026, 9, 30, 17, 0), 1) == dt.datetime(2026, 10, 8, 9, 0)
    # a make-up working Sunday (调休 2026-09-20) counts
    assert cal.works(dt.date(2026, 9, 20)) and not cal.works(dt.date(2026, 9, 27))
    # before office hours: the clock starts at 08:30
    assert cal.add(dt.datetime(2026, 12, 2, 6, 0), 2) == dt.datetime(2026, 12, 2, 10, 30)
    assert cal.between(dt.datetime(2026, 12, 4, 17, 0), dt.datetime(2026, 12, 7, 9, 0)) == 1.0
    assert cal.between(dt.datetime(2026, 12, 7, 9, 0), dt.datetime(2026, 12, 4, 17, 0)) == -1.0


def test_limits_per_category_on_the_clock_or_in_working_hours():
    saturday_night = dt.datetime(2026, 12, 5, 23, 0)
    assert RULES.due("emergency", "handle", saturday_night) == dt.datetime(2026, 12, 6, 1, 0)
    start = dt.datetime(2026, 11, 30, 8, 30)  # five working days of 7.5 h
    assert RULES.due("construction", "handle", start) == dt.datetime(2026, 12, 4, 17, 30)
    assert RULES.limit("environment", "verify") == RULES.limit("default", "verify") == 2
    assert RULES.department("public_order") == "派出所"
    assert RULES.street_office("211281001007")["code"] == "211281001"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[limits.default]\naccept = 1", "must give hours for"),
        ("[limits.default]\naccept=1\ndispatch=1\nhandle=1\nverify=1\nclose=-2", "above 0"),
        (
            "[limits.default]\naccept=1\ndispatch=1\nhandle=1\nverify=1\nclose=1\n"
            "[limits.x]\nfix = 2",
            "is not a step",
        ),
        (
            "[calendar]\nhours = [['17:00', '08:00']]\n[limits.default]\naccept=1\n"
            "dispatch=1\nhandle=1\nverify=1\nclose=1",
            "ends after it starts",
        ),
        (
            "[calendar]\nholidays = ['2026-13-01']\n[limits.default]\naccept=1\n"
            "dispatch=1\nhandle=1\nverify=1\nclose=1",
            "YYYY-MM-DD",
        ),
        ("[limits.default\naccept = 1", "not valid TOML"),
        ("[timezone]\nx = 1", "unknown section"),
    ],
)
def test_a_bad_rules_file_is_one_clear_line(text, says):
    with pytest.raises(InputError, match=says):
        Rules.parse(text, "my-rules.toml")


def test_rules_file_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "rules.toml"
    path.write_text(
        "[limits.default]\naccept=3\ndispatch=1\nhandle=1\nverify=1\nclose=1\n"
        "[calendar]\nworkdays=[1,2,3,4,5,6,7]\nhours=[['00:00','23:59']]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("GIS_GRID_CASE_RULES", str(path))
    rules = Rules.load()
    assert rules.limit("environment", "accept") == 3
    assert rules.due("environment", "accept", MONDAY) == at(3)
    assert Calendar().works(dt.date(2026, 12, 5)) is False


# -- the loop on a store ---------------------------------------------------------


def unit_point(store, n: int = 0) -> tuple[float, float, dict]:
    """A point inside a unit, with the unit's chain."""
    units = store.grids(level="unit", geometry=True).sort_values("code")
    row = units.iloc[n]
    p = row.geometry.representative_point()
    return p.x, p.y, row["code"]


def new_case(store, category="environment", hours=0.0, n=0, **kw) -> dict:
    x, y, _ = unit_point(store, n)
    return service.report(
        store,
        lon=x,
        lat=y,
        category=category,
        rules=RULES,
        actor=SUP,
        received=at(hours),
        **kw,
    )


def state(store, case_id) -> tuple:
    """What a refused step must leave as it was: the case row and its log."""
    case = service.get_case(store, case_id)
    return (json.dumps(case, sort_keys=True, default=str), len(store.case_log([case_id])))


def test_the_whole_loop_with_its_log_and_deadlines(demo_store):
    case = new_case(demo_store, description="垃圾堆放")
    assert case["status"] == "reported" and case["version"] == 1
    assert case["deadline"] == "2026-11-30T10:00:00" and case["hours_left"] == 1.0
    assert case["owner"]["level"] == "unit" and case["owner"]["staff_name"]
    assert case["grids"]["unit"] == case["owner"]["code"]
    cid = case["id"]

    def step(action, actor=SUP, t=0.5, **kw):
        version = service.get_case(demo_store, cid)["version"]
        return service.act(
            demo_store, cid, action, actor, rules=RULES, version=version, received=at(t), **kw
        )

    assert step("accept", t=0.5)["deadline"] == "2026-11-30T10:30:00"
    dispatched = step("dispatch", t=0.75)
    assert dispatched["department"] == "城管执法"  # routed by category
    assert dispatched["deadline"] == "2026-12-01T10:15:00"  # 8 working hours: lunch, night
    worker = Actor("董敏", "grid_worker", "S1", (case["grids"]["area"],))
    handled = step("handle", worker, t=3, photo="https://example.invalid/p.jpg")
    assert handled["handler"] == "董敏"
    with pytest.raises(ForbiddenError, match="someone else must check"):
        step("verify", worker, t=3.5)
    reworked = step("rework", SUP, t=4, note="still dirty")
    assert reworked["status"] == "dispatched" and reworked["reworks"] == 1
    step("handle", worker, t=5)
    step("verify", SUP2, t=5.5)
    extended = step("extend", SUP, t=5.6, hours=4)
    assert extended["extensions"] == 1
    closed = step("close", t=6, satisfaction=4)
    assert closed["status"] == "closed" and closed["satisfaction"] == 4
    assert closed["deadline"] is None and closed["next_steps"] == ["reopen"]
    log = closed["timeline"]
    assert [r["action"] for r in log] == [
        "report",
        "accept",
        "dispatch",
        "handle",
        "rework",
        "handle",
        "verify",
        "extend",
        "close",
    ]
    assert [r["seq"] for r in log] == list(range(1, 10))
    assert all(r["on_time"] for r in log if r["action"] in ("accept", "dispatch", "handle"))
    assert log[3]["detail"] == {"photo": "https://example.invalid/p.jpg"}
    assert log[4]["note"] == "still dirty" and log[-1]["detail"] == {"satisfaction": 4}
    assert closed["version"] == 9
    reopened = step("reopen", t=7, note="came back")
    assert reopened["status"] == "accepted" and reopened["reopened"] == 1


@pytest.mark.parametrize(
    ("action", "actor", "kw", "error", "says"),
    [
        ("close", SUP, {}, InputError, "cannot be closed now; its next step is accept"),
        ("verify", SUP, {}, InputError, "cannot be verified now"),
        ("reject", SUP, {}, InputError, "needs a reason"),
        ("accept", Actor("x", "planner"), {}, ForbiddenError, "may not accept"),
        ("accept", Actor("x", "leadership"), {}, ForbiddenError, "may not accept"),
        ("accept", SUP, {"version": 7}, ConflictError, "someone acted on it first"),
        ("accept", SUP, {"at": at(5)}, InputError, "is in the future"),
        ("accept", SUP, {"at": at(-1)}, InputError, "before the case's previous step"),
        ("fix", SUP, {}, InputError, "unknown step"),
        ("extend", SUP, {"hours": -3}, InputError, "hours above 0"),
    ],
)
def test_an_illegal_step_is_refused_and_writes_nothing(demo_store, action, actor, kw, error, says):
    case = new_case(demo_store)
    before = state(demo_store, case["id"])
    kw = {"version": 1, **kw}
    with pytest.raises(error, match=says):
        service.act(demo_store, case["id"], action, actor, rules=RULES, received=at(1), **kw)
    assert state(demo_store, case["id"]) == before


def test_a_grid_worker_acts_only_on_cases_in_their_grids(demo_store):
    case = new_case(demo_store)
    for step_ in ("accept", "dispatch"):
        case = service.act(demo_store, case["id"], step_, SUP, rules=RULES, received=at(1))
    elsewhere = Actor("路人", "grid_worker", "S9", ("211281001007999",))
    before = state(demo_store, case["id"])
    with pytest.raises(ForbiddenError, match="outside your grids"):
        service.act(demo_store, case["id"], "handle", elsewhere, rules=RULES, received=at(2))
    assert state(demo_store, case["id"]) == before
    mine = Actor("网格员", "grid_worker", "S1", (case["grids"]["courtyard"],))
    assert (
        service.act(demo_store, case["id"], "handle", mine, rules=RULES, received=at(2))["status"]
        == "handled"
    )


def test_two_people_at_once_the_second_is_stale(demo_store):
    case = new_case(demo_store)
    service.act(demo_store, case["id"], "accept", SUP, rules=RULES, version=1, received=at(1))
    with pytest.raises(ConflictError, match="at version 2, not 1"):
        service.act(
            demo_store,
            case["id"],
            "reject",
            SUP2,
            rules=RULES,
            version=1,
            received=at(1),
            note="not ours",
        )
    assert service.get_case(demo_store, case["id"])["status"] == "accepted"
    assert len(demo_store.case_log([case["id"]])) == 2


def test_a_late_sync_keeps_both_times(demo_store):
    case = new_case(demo_store)
    out = service.act(
        demo_store, case["id"], "accept", SUP, rules=RULES, received=at(3), at=at(0.5)
    )
    row = out["timeline"][-1]
    assert (row["at"], row["received_at"]) == ("2026-11-30T09:30:00", "2026-11-30T12:00:00")
    assert row["on_time"] is True  # done by the deadline, though heard of later


def test_suspend_stops_the_clock_and_resume_gives_back_the_time_left(demo_store):
    case = new_case(demo_store)
    service.act(demo_store, case["id"], "accept", SUP, rules=RULES, received=at(0.5))
    # dispatch deadline 10:30 (one working hour from 09:30); suspended at 10:00 with 0.5 h left
    held = service.act(
        demo_store,
        case["id"],
        "suspend",
        SUP,
        rules=RULES,
        received=at(1),
        note="waiting for the property company",
    )
    assert held["status"] == "suspended" and held["deadline"] is None
    assert service.sweep(demo_store, rules=RULES, received=at(30))["escalated"] == 0
    # resumed the next day at 09:00: half an hour left
    back = service.act(demo_store, case["id"], "resume", SUP, rules=RULES, received=at(24))
    assert back["status"] == "accepted" and back["deadline"] == "2026-12-01T09:30:00"
    assert back["accepted_at"] == "2026-11-30T09:30:00"  # when it was accepted, not resumed


def test_escalation_climbs_every_level_to_the_street_office_once_per_deadline(demo_store):
    case = new_case(demo_store)
    chain = case["grids"]
    owners = [case["owner"]["code"]]
    while True:
        deadline = dt.datetime.fromisoformat(service.get_case(demo_store, case["id"])["deadline"])
        early = service.sweep(demo_store, rules=RULES, received=deadline)
        assert early["escalated"] == 0  # not late at its deadline
        when = deadline + dt.timedelta(minutes=1)
        swept = service.sweep(demo_store, rules=RULES, received=when)
        again = service.sweep(demo_store, rules=RULES, received=when)
        assert again["escalated"] == 0  # idempotent
        if not swept["escalated"]:
            assert swept["at_top"] == 1, (owners, swept)
            break
        owners.append(swept["cases"][0]["to"])
    assert owners == [
        chain["unit"],
        chain["building"],
        chain["courtyard"],
        chain["area"],
        chain["community"],
        chain["community"][:9],
    ]
    shown = service.show(demo_store, case["id"], RULES, when)
    assert shown["escalation"] == 5 and shown["owner"]["level"] == "street"
    assert shown["owner"]["name"] == "街道办事处"
    escalations = [r for r in shown["timeline"] if r["action"] == "escalate"]
    assert [r["actor"] for r in escalations] == ["sweep"] * 5
    assert escalations[0]["detail"]["owner_code"] == chain["building"]
    listed = service.list_cases(demo_store, rules=RULES, at=when, escalated=True)
    assert [c["id"] for c in listed["cases"]] == [case["id"]]
    assert service.list_cases(demo_store, rules=RULES, at=when, status="closed")["total"] == 0


def test_escalation_skips_a_grid_with_nobody(empty_store):
    """属地兜底: the courtyard has nobody, so a building's late case goes to the area."""
    from shapely import box

    from gis_grid.store import ChangeSet
    from tests.conftest import COMMUNITY, grids, staff_for

    c = COMMUNITY
    frame = grids(
        **{
            f"c{c}": box(0, 0, 100, 100),
            f"c{c}001": box(0, 0, 100, 100),
            f"c{c}001001": box(10, 10, 60, 60),
            f"c{c}001001001": box(20, 20, 40, 40),
        }
    )
    staff, assignments = staff_for(frame)
    assignments = assignments.loc[assignments["grid_code"] != f"{c}001001"]
    empty_store.apply(ChangeSet(frame, staff, assignments))
    p = frame.geometry.iloc[3].centroid
    case = service.report(
        empty_store, lon=p.x, lat=p.y, category="other", rules=RULES, actor=SUP, received=at(0)
    )
    assert case["owner"]["code"] == f"{c}001001001"
    swept = service.sweep(empty_store, rules=RULES, received=at(30))
    assert swept["cases"][0]["to"] == f"{c}001"
    assert service.show(empty_store, case["id"], RULES, at(30))["owner"]["level"] == "area"


def test_duplicates_nearby_and_the_same_category_only(demo_store):
    first = new_case(demo_store)
    x, y = first["lon"], first["lat"]
    near = service.report(
        demo_store,
        lon=x + 0.0002,
        lat=y,
        category="市容环境",
        rules=RULES,
        actor=SUP,
        received=at(1),
    )
    assert near["duplicate_of"] == first["id"]  # ~16 m east, same category (by its name)
    other = service.report(
        demo_store, lon=x, lat=y, category="dispute", rules=RULES, actor=SUP, received=at(1)
    )
    far = service.report(
        demo_store,
        lon=x + 0.0013,
        lat=y,
        category="environment",
        rules=RULES,
        actor=SUP,
        received=at(1),
    )  # ~107 m, 90 m from the near one
    assert other["duplicate_of"] is None and far["duplicate_of"] is None


def test_a_point_outside_every_grid_is_taken_by_the_nearest_community(demo_store, monkeypatch):
    from gis_grid.cases import intake

    minx, miny, maxx, maxy = demo_store.grids(level="community", geometry=True).total_bounds
    x, y, _ = unit_point(demo_store)
    # a first case makes the layer: the next report takes the one-report way, from memory
    service.report(
        demo_store, lon=x, lat=y, category="environment", rules=RULES, actor=SUP, received=at(0)
    )
    for _ in range(300):  # PostGIS builds its in-memory index in the background
        if demo_store.chain_index() is not None:
            break
        time.sleep(0.1)
    batch_way = intake.report_many
    monkeypatch.setattr(intake, "report_many", lambda *a, **k: pytest.fail("not the lean way"))
    case = service.report(
        demo_store,
        lon=maxx + 0.003,
        lat=(miny + maxy) / 2,
        category="other",
        rules=RULES,
        actor=SUP,
        received=at(0),
    )
    assert case["outside"] is True and case["grids"]["community"] is None
    assert case["owner"]["level"] == "community" and case["owner"]["staff_name"]
    # the one-report way (from the in-memory index) and the batch way agree on what is stored
    (same,) = batch_way(
        demo_store,
        pd.DataFrame({"lon": [maxx + 0.003], "lat": [(miny + maxy) / 2], "category": ["other"]}),
        rules=RULES,
        actor=SUP,
        received=at(0),
    )
    lean, batch = (service.show(demo_store, i, RULES, at(0)) for i in (case["id"], same))
    for key in ("outside", "grids", "owner", "deadline", "status"):
        assert lean[key] == batch[key], key
    steps = [demo_store.case_steps(i)[0]["community_code"] for i in (case["id"], same)]
    assert steps[0] == steps[1] == case["owner"]["code"]


@pytest.mark.parametrize("way", ["report", "report_many"])
def test_a_point_kilometres_from_every_community_is_refused(demo_store, way):
    minx, miny, maxx, maxy = demo_store.grids(level="community", geometry=True).total_bounds
    x, y, _ = unit_point(demo_store)
    service.report(
        demo_store, lon=x, lat=y, category="environment", rules=RULES, actor=SUP, received=at(0)
    )
    before = len(demo_store.features(CASE_LAYER))
    lon, lat = maxx + 0.05, (miny + maxy) / 2  # ~4 km east
    with pytest.raises(InputError, match="km from the nearest community"):
        if way == "report":
            service.report(
                demo_store,
                lon=lon,
                lat=lat,
                category="other",
                rules=RULES,
                actor=SUP,
                received=at(0),
            )
        else:
            frame = pd.DataFrame({"lon": [lon], "lat": [lat], "category": ["other"]})
            service.report_many(demo_store, frame, rules=RULES, actor=SUP, received=at(0))
    assert len(demo_store.features(CASE_LAYER)) == before


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"category": "weather"}, "unknown category 'weather'"),
        ({"lon": float("nan")}, "finite lon and lat"),
        ({"lon": 42.45, "lat": 123.56}, "swapped"),
        ({"at": dt.datetime(2030, 1, 1)}, "in the future"),
    ],
)
def test_a_bad_report_is_refused_and_the_store_unchanged(demo_store, kw, says):
    x, y, _ = unit_point(demo_store)
    args = {"lon": x, "lat": y, "category": "environment", **kw}
    before = demo_store.layers()
    with pytest.raises(InputError, match=says):
        service.report(demo_store, rules=RULES, actor=SUP, received=at(0), **args)
    assert demo_store.layers() == before


def test_an_unknown_case_is_not_found(demo_store):
    with pytest.raises(NotFoundError, match="no case 'C000'"):
        service.act(demo_store, "C000", "accept", SUP, rules=RULES, received=at(0))


def test_the_case_log_is_append_only_in_the_database(demo_store):
    new_case(demo_store)
    if hasattr(demo_store, "_conn"):
        import sqlite3

        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            demo_store._conn.execute("UPDATE gis_grid_case_log SET actor = 'x'")
    else:
        import psycopg

        with pytest.raises(psycopg.Error, match="append-only"), demo_store._cursor() as cur:
            cur.execute("UPDATE case_log SET actor = 'x'")


# -- imports and indicators ------------------------------------------------------


def test_an_imported_incident_becomes_a_case_with_its_history(demo_store, tmp_path):
    from gis_grid.layers.plugins import get_layer

    x, y, _ = unit_point(demo_store)
    rows = pd.DataFrame(
        {
            "id": ["I1", "I2", "I3"],
            "reported_at": ["2026-11-30T09:00", "2026-11-30T09:00", "2026-11-30T09:00"],
            "category": ["环境" if False else "市容环境", "治安", "物业"],
            "status": ["closed", "dispatched", "rejected"],
            "dispatched_at": ["2026-11-30T09:20", "2026-11-30T11:00", None],
            "handled_at": ["2026-11-30T15:00", None, None],
            "closed_at": ["2026-12-01T10:00", None, "2026-11-30T09:40"],
        }
    )
    frame = gpd.GeoDataFrame(rows, geometry=[shapely.Point(x, y)] * 3, crs="EPSG:4326")
    layer = get_layer("incidents")
    from gis_grid.layers.features import normalise_features

    checked, log = layer.prepare(layer.check(normalise_features(layer.schema, frame)))
    demo_store.write_features(layer.schema, checked, log=log)
    closed = service.show(demo_store, "I1", RULES, at(48))
    assert [r["action"] for r in closed["timeline"]] == [
        "report",
        "accept",
        "dispatch",
        "handle",
        "verify",
        "close",
    ]
    assert closed["timeline"][1]["at"] == "2026-11-30T09:20:00"  # accepted as dispatched
    assert closed["version"] == 6 and closed["status"] == "closed"
    late = service.show(demo_store, "I2", RULES, at(48))
    # 治安: accept within 1 h (by 10:00), dispatched at 11:00 — accept late, dispatch on time
    assert [r["on_time"] for r in late["timeline"][1:]] == [False, True]
    assert late["deadline"] == "2026-12-01T11:30:00"  # handle: 8 working hours from 11:00
    rejected = service.show(demo_store, "I3", RULES, at(48))
    assert [r["action"] for r in rejected["timeline"]] == ["report", "reject"]
    # importing them again with --mode upsert replaces their log, not doubles it
    demo_store.write_features(layer.schema, checked, mode="upsert", log=log)
    assert len(demo_store.case_log(["I1", "I2", "I3"])) == 6 + 3 + 2


def test_indicators_against_hand_counts(demo_store):
    """Three cases in one area: closed on time, closed after rework and escalation, open late."""

    def go(case, *steps):
        for action, hours, kw in steps:
            case = service.act(
                demo_store,
                case["id"],
                action,
                kw.pop("actor", SUP),
                rules=RULES,
                received=at(hours),
                **kw,
            )
        return case

    worker = Actor("网格员", "grid_worker", "S1", ("211281001",))
    a = go(
        new_case(demo_store, hours=0),
        ("accept", 0.2, {}),
        ("dispatch", 0.4, {}),
        ("handle", 2, {"actor": worker}),
        ("verify", 2.5, {}),
        ("close", 3, {"satisfaction": 5}),
    )
    b = new_case(demo_store, hours=0)
    service.sweep(demo_store, rules=RULES, received=at(2))  # b (and c?) escalated once
    b = go(
        b,
        ("accept", 2.2, {}),
        ("dispatch", 2.3, {}),
        ("handle", 3, {"actor": worker}),
        ("rework", 3.2, {"note": "again"}),
        ("handle", 4, {"actor": worker}),
        ("verify", 4.5, {"actor": Actor("检查员", "supervisor")}),
        ("close", 5, {"satisfaction": 3}),
    )
    c = go(new_case(demo_store, hours=2.1), ("accept", 2.2, {}))
    assert a["grids"]["area"] == b["grids"]["area"] == c["grids"]["area"]
    table = indicators(demo_store, since=MONDAY, until=at(24), by="area", at=at(30))
    row = table.set_index("code").loc[a["grids"]["area"]]
    assert (row["reported"], row["accepted"], row["closed"], row["overdue"]) == (3, 3, 2, 1)
    assert row["closure_rate"] == round(2 / 3, 4)
    assert row["rework_rate"] == 0.5  # b of the two handled
    assert row["escalation_rate"] == round(1 / 3, 4)  # b
    assert row["closed_in_grid"] == 0.5  # a closed without leaving its grid, b did not
    assert row["median_hours_to_close"] == 4.0  # a 3 h, b 5 h
    assert row["mean_satisfaction"] == 4.0
    # steps with a deadline: a 5 on time; b accept late (escalated deadline 10:00 → done 11:12?)
    log = demo_store.case_log([a["id"], b["id"], c["id"]])
    timed = log.loc[log["on_time"].notna()]
    assert row["on_time_rate"] == round(timed["on_time"].astype(bool).mean(), 4)
    by_dept = indicators(demo_store, since=MONDAY, until=at(24), by="department", at=at(30))
    assert by_dept.set_index("department").loc["城管执法", "reported"] == 3
    staff = indicators(demo_store, since=MONDAY, until=at(24), by="staff", at=at(30))
    assert staff["reported"].sum() == 3


def test_incidents_from_before_cases_gain_the_case_columns(demo_store):
    """A store whose incidents table predates the case loop: read, acted on, counted."""
    from dataclasses import replace

    from gis_grid.layers.plugins import get_layer

    layer = get_layer("incidents")
    old = replace(layer.schema, fields=layer.schema.fields[:8])  # as the first release had it
    x, y, _ = unit_point(demo_store)
    frame = gpd.GeoDataFrame(
        {
            "id": ["OLD1"],
            "reported_at": ["2026-11-30T09:00:00"],
            "category": ["other"],
            "status": ["reported"],
        },
        geometry=[shapely.Point(x, y)],
        crs="EPSG:4326",
    )
    from gis_grid.layers.features import normalise_features

    demo_store.write_features(old, normalise_features(old, frame))
    assert "deadline" not in demo_store.layers()["incidents"].columns
    listed = service.list_cases(demo_store, rules=RULES, at=at(1))
    assert [c["id"] for c in listed["cases"]] == ["OLD1"]
    assert "deadline" in demo_store.layers()["incidents"].columns
    case = service.act(demo_store, "OLD1", "accept", SUP, rules=RULES, received=at(1))
    assert case["status"] == "accepted" and case["version"] == 2 and case["deadline"]
    table = indicators(demo_store, since=MONDAY, until=at(24), by="community", at=at(2))
    assert table["reported"].tolist() == [1] and table["accepted"].tolist() == [1]


def test_a_point_far_from_every_community_is_refused(demo_store):
    """Taken by the nearest community within 3 km; 50 km off is a wrong coordinate."""
    x, y, _ = unit_point(demo_store)
    before = demo_store.layers()
    with pytest.raises(InputError, match=r"km from the nearest community \(at most 3 km\)"):
        service.report(
            demo_store, lon=x + 0.6, lat=y, category="other", rules=RULES, actor=SUP, received=at(0)
        )
    assert demo_store.layers() == before

"""The store contract: every store holds, answers and refuses alike.

Each test runs once per store backend (the ``backend`` fixture in conftest):
the embedded GeoPackage, and every other store the machine can run. Failed
writes are checked with :func:`tests.conftest.snapshot`, which sees the whole
content of any store.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely import box

from gis_grid.domain.errors import (
    DuplicateCodeError,
    GeometryError,
    InputError,
    OrphanError,
    TopologyError,
)
from gis_grid.domain.model import Level
from gis_grid.store import ChangeSet
from tests.conftest import COMMUNITY, at, grids, seeded, snapshot

REFERENCE = {"community": 1, "area": 8, "courtyard": 30, "building": 114}


def test_demo_store_has_the_reference_counts(demo_store):
    stats = demo_store.stats()
    assert {k: stats["grids"][k] for k in REFERENCE} == REFERENCE
    assert 2 * 114 <= stats["grids"]["unit"] <= 6 * 114
    assert (stats["households"], stats["residents"]) == (3211, 8018)
    assert stats["staffed_grids"] == sum(stats["grids"].values())


def test_areas_hold_300_to_500_households(demo_store):
    areas = demo_store.grids(level="area", geometry=False)
    assert areas["households"].between(300, 500).all()
    assert areas["households"].sum() == 3211


def test_courtyards_hold_3_to_6_buildings(demo_store):
    buildings = demo_store.grids(level="building", geometry=False)
    per_yard = buildings["code"].str.slice(0, 18).value_counts()
    assert per_yard.between(3, 6).all() and len(per_yard) == 30


def test_codes_follow_the_hierarchy(demo_store):
    frame = demo_store.grids(geometry=False)
    for level in Level:
        rows = frame.loc[frame.level == level.key]
        assert rows["code"].str.len().eq(level.code_length).all()
        if level is not Level.COMMUNITY:
            assert (
                rows["code"].str.slice(0, Level(level - 1).code_length) == rows["parent_code"]
            ).all()


def test_aggregates_sum_upward(demo_store):
    frame = demo_store.grids(geometry=False).set_index("code")
    for level in (Level.AREA, Level.COURTYARD, Level.BUILDING, Level.UNIT):
        rows = frame.loc[frame.level == level.key]
        sums = rows.groupby("parent_code")["households"].sum()
        assert (frame.loc[sums.index, "households"] == sums).all()


def test_queries_by_bbox_under_and_codes(demo_store):
    every = demo_store.grids(geometry=True)
    building = every.loc[every.level == "building"].iloc[0]
    under = demo_store.grids(under=[building.code])
    assert set(under["code"]) == {c for c in every["code"] if c.startswith(building.code)}
    minx, miny, maxx, maxy = building.geometry.bounds
    near = demo_store.grids(bbox=(minx, miny, maxx, maxy), level="building")
    assert building.code in set(near["code"])
    assert len(near) < 114
    assert demo_store.grids(codes=[]).empty
    assert list(demo_store.grids(codes=[building.code, "nope"])["code"]) == [building.code]


# -- atomic writes ----------------------------------------------------------------


def _fresh(new_store):
    return seeded(new_store())


@pytest.mark.parametrize(
    ("layout", "error", "words"),
    [
        ({f"c{COMMUNITY}001": box(0, 0, 50, 100)}, DuplicateCodeError, "already in the store"),
        ({f"c{COMMUNITY}003001": box(10, 10, 20, 20)}, OrphanError, "parent missing"),
        (
            {
                f"c{COMMUNITY}001001": box(10, 10, 30, 30),
                f"c{COMMUNITY}001002": box(20, 20, 40, 40),
            },
            TopologyError,
            "overlap by 100.0 m²",
        ),
        ({f"c{COMMUNITY}001001": box(40, 10, 60, 30)}, TopologyError, "beyond its parent"),
        (
            {f"c{COMMUNITY}001001": shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])},
            GeometryError,
            "Self-intersection",
        ),
        ({"c21128100100": box(0, 0, 1, 1)}, InputError, "malformed grid codes"),
    ],
)
def test_bad_writes_are_refused_and_change_nothing(new_store, layout, error, words):
    store = _fresh(new_store)
    before = snapshot(store)
    with pytest.raises(error, match=words):
        store.apply(ChangeSet(grids(**layout)))
    assert snapshot(store) == before
    assert store.stats()["grids"]["courtyard"] == 0


def test_a_duplicate_inside_the_input_is_refused(new_store):
    store = _fresh(new_store)
    frame = pd.concat([grids(**{f"c{COMMUNITY}001001": box(1, 1, 2, 2)})] * 2)
    with pytest.raises(DuplicateCodeError, match="twice in the input"):
        store.apply(ChangeSet(frame.set_crs(4326, allow_override=True)))


def test_accept_problems_writes_and_validate_reports(new_store):
    store = _fresh(new_store)
    overlapping = grids(
        **{f"c{COMMUNITY}001001": box(10, 10, 30, 30), f"c{COMMUNITY}001002": box(20, 20, 40, 40)}
    )
    report = store.apply(ChangeSet(overlapping, accept_problems=True))
    assert report.grids == 2 and set(report.warnings["kind"]) == {"overlap"}
    assert set(store.validate()["kind"]) == {"overlap", "no_staff"}


def test_bad_staff_and_assignments_change_nothing(new_store):
    store = _fresh(new_store)
    before = snapshot(store)
    staff = pd.DataFrame({"staff_id": ["N1"], "name": ["新人"], "role": ["楼长"], "phone": [""]})
    for assignments, error, words in [
        (
            pd.DataFrame({"staff_id": ["N1"], "grid_code": [COMMUNITY + "009"]}),
            OrphanError,
            "unknown grids",
        ),
        (
            pd.DataFrame({"staff_id": ["X9"], "grid_code": [COMMUNITY]}),
            OrphanError,
            "unknown staff",
        ),
        (
            pd.DataFrame(
                {"staff_id": ["N1"], "grid_code": [COMMUNITY], "start_date": ["2024-13-01"]}
            ),
            InputError,
            "not a date",
        ),
        (
            pd.DataFrame({"staff_id": ["N1"], "grid_code": [COMMUNITY], "role": ["boss"]}),
            InputError,
            "unknown staff role",
        ),
    ]:
        with pytest.raises(error, match=words):
            store.apply(ChangeSet(staff=staff, assignments=assignments))
        assert snapshot(store) == before
    with pytest.raises(DuplicateCodeError, match="already in the store"):
        store.apply(ChangeSet(staff=staff.assign(staff_id="T00000")))
    assert snapshot(store) == before


def test_units_added_later_roll_up_into_every_ancestor(new_store):
    store = _fresh(new_store)
    store.apply(
        ChangeSet(
            grids(
                **{
                    f"c{COMMUNITY}001001": box(5, 5, 45, 45),
                    f"c{COMMUNITY}001001001": box(10, 10, 30, 20),
                }
            )
        )
    )
    units = grids(
        **{
            f"c{COMMUNITY}00100100101": box(10, 10, 20, 20),
            f"c{COMMUNITY}00100100102": box(20, 10, 30, 20),
        }
    )
    units["households"] = [12, 10]
    units["residents"] = [30, 21]
    store.apply(ChangeSet(units))
    frame = store.grids(geometry=False).set_index("code")
    for code in (COMMUNITY, COMMUNITY + "001", COMMUNITY + "001001", COMMUNITY + "001001001"):
        assert frame.loc[code, "households"] == 22 and frame.loc[code, "residents"] == 51
    assert frame.loc[COMMUNITY + "002", "households"] == 0


# -- lookup through the store ------------------------------------------------------


def test_lookup_of_every_unit_returns_five_grids_with_staff(demo_store):
    from gis_grid.grids.queries import chain

    units = demo_store.grids(level="unit")
    probe = shapely.point_on_surface(units.geometry.to_numpy())
    found = demo_store.lookup(shapely.get_x(probe), shapely.get_y(probe))
    assert found.notna().all().all()
    assert (found["unit"].astype(str).to_numpy() == units["code"].to_numpy()).all()
    for level in ("community", "area", "courtyard", "building"):
        n = Level.parse(level).code_length
        assert (found[level].astype(str).to_numpy() == units["code"].str.slice(0, n)).all()
    result = chain(demo_store, probe[0].x, probe[0].y)
    assert [g["level"] for g in result] == [lv.key for lv in Level]
    assert all(g["staff"] for g in result)


def test_a_click_and_a_batch_answer_alike(demo_store):
    """A handful of points (a map click) is settled without frames: the same codes as a batch."""
    x0, y0, x1, y1 = demo_store.grids(level="community").total_bounds
    rng = np.random.default_rng(5)
    # random points, the corners of every area (shared edges) and points just outside
    areas = shapely.get_coordinates(demo_store.grids(level="area").geometry.boundary.to_numpy())
    x = np.r_[rng.uniform(x0 - 0.001, x1 + 0.001, 60), areas[:, 0]]
    y = np.r_[rng.uniform(y0 - 0.001, y1 + 0.001, 60), areas[:, 1]]
    batch = demo_store.lookup(x, y).astype(object)
    ones = pd.concat(
        [demo_store.lookup(x[i : i + 1], y[i : i + 1]).astype(object) for i in range(len(x))],
        ignore_index=True,
    )
    assert len(x) > 16  # the batch takes the other path
    assert (batch.fillna("").to_numpy() == ones.fillna("").to_numpy()).all()
    assert batch["area"].notna().sum() > 20


def test_lookup_outside_and_on_a_shared_edge(new_store):
    from gis_grid.grids.queries import chain

    store = _fresh(new_store)
    assert chain(store, 0.0, 0.0) == []
    edge = at(shapely.Point(50, 50))  # on the edge between areas 001 and 002
    found = store.lookup([edge.x], [edge.y]).iloc[0]
    assert found["area"] == COMMUNITY + "001"  # the smaller code wins
    assert pd.isna(found["courtyard"])


def test_lookup_index_follows_writes(new_store):
    store = _fresh(new_store)
    inside = at(shapely.Point(20, 20))
    assert pd.isna(store.lookup([inside.x], [inside.y]).iloc[0]["courtyard"])
    store.apply(ChangeSet(grids(**{f"c{COMMUNITY}001001": box(10, 10, 30, 30)})))
    assert store.lookup([inside.x], [inside.y]).iloc[0]["courtyard"] == COMMUNITY + "001001"


def test_staff_coverage_counts_each_grid_once(demo_store):
    from gis_grid.grids.queries import coverage

    assignments = demo_store.assignments()
    worker = assignments.loc[assignments.role == "grid_worker", "staff_id"].iloc[0]
    result = coverage(demo_store, worker)
    area = next(g for g in result["grids"] if g["level"] == "area")
    under = demo_store.grids(under=[area["code"]], geometry=False)
    assert result["counts"]["building"] == (under.level == "building").sum() > 0
    assert result["households"] == int(under.loc[under.code == area["code"], "households"].iloc[0])
    head = assignments.loc[assignments.role == "unit_head", "staff_id"].iloc[-1]
    assert coverage(demo_store, head)["counts"]["unit"] >= 1


def test_empty_store_answers_sensibly(empty_store):
    assert empty_store.stats()["grids"] == {lv.key: 0 for lv in Level}
    assert empty_store.validate().empty
    assert empty_store.lookup([123.5], [42.4]).isna().all().all()
    assert np.array_equal(empty_store.grids().columns[:3], ["code", "parent_code", "level"])


# -- versioned edits ----------------------------------------------------------------


def _edit(code: str, version: int, **changes) -> gpd.GeoDataFrame:
    geometry = changes.pop("geometry", None)
    frame = gpd.GeoDataFrame(
        {"code": [code], "version": [version], **{k: [v] for k, v in changes.items()}},
        geometry=[at(geometry) if geometry is not None else None],
        crs=4326,
    )
    return frame


def test_an_edit_makes_a_new_version_and_keeps_the_old(new_store):
    store = _fresh(new_store)
    code = f"{COMMUNITY}001"
    store.apply(ChangeSet(grids(**{f"c{code}001": box(5, 5, 45, 45)})))
    store.update(_edit(f"{code}001", 1, name="新院", geometry=box(5, 5, 40, 40)))
    now = store.grids(codes=[f"{code}001"]).iloc[0]
    assert (now["version"], now["name"]) == (2, "新院")
    history = store.history(f"{code}001")
    assert history["version"].tolist() == [1]
    assert shapely.equals(history.geometry.iloc[0], at(box(5, 5, 45, 45)))
    # edits follow: the lookup sees the new boundary at once
    inside_old_only = at(shapely.Point(42, 42))
    assert pd.isna(store.lookup([inside_old_only.x], [inside_old_only.y]).iloc[0]["courtyard"])


def test_a_stale_edit_is_refused_and_nothing_changes(new_store):
    from gis_grid.domain.errors import ConflictError

    store = _fresh(new_store)
    code = f"{COMMUNITY}001"
    store.update(_edit(code, 1, name="第一片区"))
    before = snapshot(store)
    with pytest.raises(ConflictError, match="edited from version 1, now 2"):
        store.update(_edit(code, 1, name="someone else's name"))
    assert snapshot(store) == before


def test_two_editors_of_one_grid_the_second_is_refused(new_store, backend):
    """Two sessions read version 1; the first to save wins, the second is told."""
    from gis_grid.domain.errors import ConflictError
    from gis_grid.store import open_store

    store = _fresh(new_store)
    other = open_store(store.url)
    try:
        code = f"{COMMUNITY}002"
        seen_by_both = store.grids(codes=[code]).iloc[0]["version"]
        store.update(_edit(code, seen_by_both, name="A 的名字"))
        with pytest.raises(ConflictError):
            other.update(_edit(code, seen_by_both, name="B 的名字"))
        assert other.grids(codes=[code]).iloc[0]["name"] == "A 的名字"
    finally:
        other.close()


def test_an_edit_that_breaks_the_tiling_is_refused(new_store):
    from gis_grid.domain.errors import NotFoundError

    store = _fresh(new_store)
    before = snapshot(store)
    # area 001 grown over area 002: an overlap
    with pytest.raises(TopologyError, match="overlap"):
        store.update(_edit(f"{COMMUNITY}001", 1, geometry=box(0, 0, 60, 100)))
    with pytest.raises(NotFoundError, match="no such grids"):
        store.update(_edit(f"{COMMUNITY}009", 1, name="x"))
    with pytest.raises(InputError, match="cannot be edited"):
        store.update(_edit(f"{COMMUNITY}001", 1, level="unit"))
    assert snapshot(store) == before


def test_edited_households_roll_up(new_store):
    store = _fresh(new_store)
    store.apply(ChangeSet(grids(**{f"c{COMMUNITY}001001": box(5, 5, 45, 45)})))
    store.update(_edit(f"{COMMUNITY}001001", 1, households=40, residents=100))
    frame = store.grids(geometry=False).set_index("code")
    assert frame.loc[COMMUNITY, "households"] == 40
    assert frame.loc[f"{COMMUNITY}001", "residents"] == 100


def test_many_subtrees_in_one_query(demo_store):
    """Hundreds of roots at once (more than SQLite takes as parameters in one statement)."""
    buildings = demo_store.grids(level="building", geometry=False)["code"].tolist()
    units = demo_store.grids(level="unit", geometry=False)["code"].tolist()
    roots = buildings + [f"{COMMUNITY}999{i:03d}" for i in range(600)]  # most match nothing
    found = demo_store.grids(under=roots, geometry=False)
    assert sorted(found["code"]) == sorted(buildings + units)
    only_units = demo_store.grids(under=roots, level="unit", geometry=False)
    assert sorted(only_units["code"]) == sorted(units)
    both = demo_store.grids(under=buildings[:2], codes=units + buildings[5:7], geometry=False)
    assert set(both["code"]) == {u for u in units if u[:21] in buildings[:2]}

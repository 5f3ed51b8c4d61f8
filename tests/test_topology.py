"""Validation with known answers: planted gaps, overlaps and spills of known area."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import box

from gis_grid.grids.topology import ValidationOptions, validate
from tests.conftest import COMMUNITY, at, grids, staff_for

A1, A2 = COMMUNITY + "001", COMMUNITY + "002"


def kinds(problems) -> list[str]:
    return problems["kind"].tolist()


def test_clean_tiling_has_no_problems():
    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 50, 100),
            f"c{A2}": box(50, 0, 100, 100),
        }
    )
    assert validate(frame).empty


def test_planted_gap_is_reported_with_its_area_and_place():
    # area 002 stops 10 m short of the north edge: a 50 m x 10 m gap = 500 m²
    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 50, 100),
            f"c{A2}": box(50, 0, 100, 90),
        }
    )
    problems = validate(frame)
    assert kinds(problems) == ["gap"]
    gap = problems.iloc[0]
    assert gap.codes == [COMMUNITY] and gap.level == "community"
    assert gap.area_m2 == pytest.approx(500, rel=0.01)
    # the gap polygon sits where it was planted
    assert shapely.contains(at(box(50, 90, 100, 100)).buffer(1e-7), gap.geometry)


def test_planted_overlap_is_reported_with_both_codes_and_area():
    # area 001 reaches 5 m into area 002: 5 m x 100 m = 500 m²
    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 55, 100),
            f"c{A2}": box(50, 0, 100, 100),
        }
    )
    problems = validate(frame)
    assert kinds(problems) == ["overlap"]
    overlap = problems.iloc[0]
    assert overlap.codes == [A1, A2]
    assert overlap.area_m2 == pytest.approx(500, rel=0.01)


def test_overlap_and_gap_together_are_both_reported():
    # 001 overlaps 002 by 200 m² (x 50..52) and leaves a 300 m² gap at the west edge (x 0..3)
    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(3, 0, 52, 100),
            f"c{A2}": box(50, 0, 100, 100),
        }
    )
    problems = validate(frame).set_index("kind")
    assert sorted(problems.index) == ["gap", "overlap"]
    assert problems.loc["overlap", "area_m2"] == pytest.approx(200, rel=0.01)
    assert problems.loc["gap", "area_m2"] == pytest.approx(300, rel=0.01)


def test_child_outside_parent_beyond_tolerance():
    # courtyard pokes 3 m east out of area 001 over 20 m: 60 m² outside
    yard = A1 + "001"
    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 50, 100),
            f"c{A2}": box(50, 0, 100, 100),
            f"c{yard}": box(30, 10, 53, 30),
        }
    )
    problems = validate(frame)
    assert kinds(problems) == ["outside_parent"]
    assert problems.iloc[0].codes == [yard, A1]
    assert problems.iloc[0].area_m2 == pytest.approx(60, rel=0.01)


def test_child_within_tolerance_is_not_outside():
    yard = A1 + "001"
    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 50, 100),
            f"c{A2}": box(50, 0, 100, 100),
            f"c{yard}": box(30, 10, 50.4, 30),
        }
    )
    assert validate(frame).empty
    strict = validate(frame, options=ValidationOptions(tolerance_m=0.1))
    assert kinds(strict) == ["outside_parent"]


def test_courtyards_and_buildings_need_not_fill_their_parent():
    yard, building = A1 + "001", A1 + "001001"
    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 50, 100),
            f"c{A2}": box(50, 0, 100, 100),
            f"c{yard}": box(10, 10, 40, 40),
            f"c{building}": box(15, 15, 35, 25),
        }
    )
    assert validate(frame).empty


def test_units_must_tile_their_building_but_a_building_without_units_is_fine():
    base = {
        f"c{COMMUNITY}": box(0, 0, 100, 100),
        f"c{A1}": box(0, 0, 50, 100),
        f"c{A2}": box(50, 0, 100, 100),
        f"c{A1}001": box(10, 10, 40, 40),
        f"c{A1}001001": box(15, 15, 35, 25),
    }
    assert validate(grids(**base)).empty
    # two units leave 2 m x 10 m of the 20 m x 10 m building uncovered
    units = {f"c{A1}00100101": box(15, 15, 24, 25), f"c{A1}00100102": box(26, 15, 35, 25)}
    problems = validate(grids(**base, **units))
    assert kinds(problems) == ["gap"]
    assert problems.iloc[0].codes == [A1 + "001001"]
    assert problems.iloc[0].area_m2 == pytest.approx(20, rel=0.01)


def test_duplicate_orphan_malformed_and_invalid_geometry():
    bowtie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10), (0, 0)])
    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 50, 100),
            f"c{A2}": box(50, 0, 100, 100),
        }
    )
    extra = grids(
        **{
            f"c{A2}": box(50, 0, 100, 100),
            "c211281001008001": box(200, 0, 210, 10),
            f"c{A1}001": bowtie,
        }
    )
    extra.loc[len(extra)] = ["12345", at(box(0, 0, 1, 1))]
    problems = validate(
        pd.concat([frame, extra], ignore_index=True).pipe(
            lambda f: f.set_crs(4326, allow_override=True)
        )
    )
    by_kind = {k: g["codes"].tolist() for k, g in problems.groupby("kind")}
    assert by_kind["duplicate_code"] == [[A2]]
    assert by_kind["orphan"] == [["12345"], ["211281001008001"]]
    assert by_kind["invalid_geometry"] == [[A1 + "001"]]
    assert "Self-intersection" in problems.set_index("kind").loc["invalid_geometry", "detail"]


def test_out_of_range_coordinates_are_invalid_geometry():
    import geopandas as gpd

    frame = gpd.GeoDataFrame({"code": [COMMUNITY]}, geometry=[box(42, 123, 43, 124)], crs=4326)
    problems = validate(frame)
    assert kinds(problems) == ["invalid_geometry"]
    assert "lon/lat range" in problems.iloc[0].detail


def test_no_staff_is_a_warning_and_ended_assignments_do_not_count():
    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{A1}": box(0, 0, 50, 100),
            f"c{A2}": box(50, 0, 100, 100),
        }
    )
    _, assignments = staff_for(frame)
    assert validate(frame, assignments).empty
    assignments.loc[assignments.grid_code == A2, "end_date"] = "2024-06-30"
    problems = validate(frame, assignments, ValidationOptions(today=dt.date(2025, 1, 1)))
    assert kinds(problems) == ["no_staff"]
    assert problems.iloc[0].severity == "warning" and problems.iloc[0].codes == [A2]


def test_overlapping_communities_are_found():
    frame = grids(**{"c211281001007": box(0, 0, 100, 100), "c211281001008": box(90, 0, 190, 100)})
    problems = validate(frame)
    assert kinds(problems) == ["overlap"]
    assert problems.iloc[0].area_m2 == pytest.approx(1000, rel=0.01)


def test_demo_community_validates_clean(demo_data):
    assert validate(demo_data.grids, demo_data.assignments).empty


# -- property tests ------------------------------------------------------------------


def _guillotine(draw, rect, depth):
    """Split a rectangle recursively at random positions: a random valid tiling."""
    x0, y0, x1, y1 = rect
    if depth == 0 or (x1 - x0 < 8 and y1 - y0 < 8) or draw(st.booleans()) and depth < 3:
        return [rect]
    vertical = (x1 - x0) >= (y1 - y0) if draw(st.booleans()) else draw(st.booleans())
    lo, hi = (x0, x1) if vertical else (y0, y1)
    if hi - lo < 8:
        vertical = not vertical
        lo, hi = (x0, x1) if vertical else (y0, y1)
    cut = draw(st.integers(int(lo) + 2, int(hi) - 2))
    if vertical:
        a, b = (x0, y0, cut, y1), (cut, y0, x1, y1)
    else:
        a, b = (x0, y0, x1, cut), (x0, cut, x1, y1)
    return _guillotine(draw, a, depth - 1) + _guillotine(draw, b, depth - 1)


@st.composite
def tilings(draw):
    width = draw(st.integers(40, 400))
    height = draw(st.integers(40, 400))
    parts = _guillotine(draw, (0, 0, width, height), draw(st.integers(1, 5)))
    return width, height, parts


def _tiling_frame(width, height, parts, moved=None):
    # a shared edge must carry the same vertices on both sides: node the tiling first
    polys = shapely.polygonize(
        shapely.get_parts(shapely.union_all([box(*p).boundary for p in parts]))
    ).geoms
    polys = sorted(polys, key=lambda g: (g.bounds[1], g.bounds[0]))
    layout = {f"c{COMMUNITY}": box(0, 0, width, height)}
    for i, poly in enumerate(polys, start=1):
        layout[f"c{COMMUNITY}{i:03d}"] = poly
    if moved is not None:
        code, geom = moved
        layout[f"c{code}"] = geom
    return grids(**layout)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tilings())
def test_random_valid_subdivisions_validate_clean(tiling):
    width, height, parts = tiling
    assert validate(_tiling_frame(width, height, parts)).empty


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tilings(), st.data())
def test_moving_one_boundary_is_caught(tiling, data):
    width, height, parts = tiling
    frame = _tiling_frame(width, height, parts)
    areas = frame.iloc[1:]
    pick = data.draw(st.integers(0, len(areas) - 1))
    code = areas["code"].iloc[pick]
    poly = shapely.polygonize(
        shapely.get_parts(shapely.union_all([box(*p).boundary for p in parts]))
    ).geoms
    poly = sorted(poly, key=lambda g: (g.bounds[1], g.bounds[0]))[pick]
    # shrink or grow the grid by 1.5 m on every side: a gap, an overlap or a spill appears
    grow = data.draw(st.booleans())
    moved = poly.buffer(1.5 if grow else -1.5, join_style="mitre")
    if moved.is_empty:
        return
    problems = validate(_tiling_frame(width, height, parts, moved=(code, moved)))
    assert len(problems) > 0
    found = set(problems["kind"])
    if grow:
        assert found & {"overlap", "outside_parent"}
    else:
        assert found == {"gap"}
        lost = poly.area - moved.area
        assert problems["area_m2"].sum() == pytest.approx(lost, rel=0.01)


def test_validation_is_fast_path_exact_on_noise(demo_data):
    """Reprojection noise (nanometres) must not be reported."""
    frame = demo_data.grids.copy()
    frame["geometry"] = shapely.set_precision(frame.geometry.to_numpy(), 1e-12)
    assert validate(frame).empty
    assert np.isfinite(shapely.area(frame.geometry.to_numpy())).all()

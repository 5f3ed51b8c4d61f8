"""Coverage geometry with known answers: camera views, walls, lamps along a street."""

from __future__ import annotations

import math

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import LineString, box

from gis_grid.geo.coverage import parts, public_space, uncovered, view_sectors


@pytest.mark.parametrize("fov", [30.0, 90.0, 120.0, 359.0, 360.0])
def test_a_sector_has_the_area_of_its_circle_share(fov):
    sector = view_sectors([10.0], [20.0], [77.0], [fov], [40.0])[0]
    assert sector.is_valid
    assert sector.area == pytest.approx(math.pi * 40**2 * fov / 360, rel=1e-3)


def test_heading_is_compass_degrees_clockwise_from_north():
    east = view_sectors([0.0], [0.0], [90.0], [20.0], [10.0])[0]
    c = east.centroid
    assert c.x > 5 and abs(c.y) < 1e-6


def test_a_building_in_the_view_removes_itself_and_what_lies_behind_it():
    """Camera at the origin looking north, 90°, 50 m; a 10 m x 10 m building 20-30 m north.

    ::

        y=50  .  .  shadow  .  .         the shadow is the wedge of half-angle
        y=30     +---------+             atan(5/20) beyond y = 20, cut at 50 m
        y=20     +---------+
        y=0          cam
    """
    building = box(-5, 20, 5, 30)
    seen = view_sectors([0.0], [0.0], [0.0], [90.0], [50.0], [building])[0]
    t = math.atan(5 / 20)
    shadow = t * 50**2 - 20 * 20 * math.tan(t)  # wedge of the disc minus the triangle before it
    assert seen.area == pytest.approx(math.pi * 50**2 / 4 - shadow, rel=0.01)
    assert not seen.intersects(box(-1, 21, 1, 49))  # nothing behind the wall is seen


def test_the_building_a_camera_hangs_on_does_not_blind_it():
    wall = box(-5, -5, 5, 0)
    seen = view_sectors([0.0], [0.0], [0.0], [90.0], [10.0], [wall])[0]
    assert seen.area == pytest.approx(math.pi * 100 / 4, rel=1e-3)


def test_lamps_at_known_spacing_leave_a_known_dark_length():
    """A 100 m street, lamps at 10, 40, 70 m lighting 10 m: dark 20-30, 50-60, 80-100 = 40 m."""
    street = LineString([(0, 0), (100, 0)])
    lamps = shapely.buffer(shapely.points([(10, 0), (40, 0), (70, 0)]), 10, quad_segs=64)
    dark, lit = uncovered([street], lamps)
    assert dark[0].length == pytest.approx(40.0, abs=1e-6)
    stretches, source = parts(dark, min_length=15)
    assert [round(s.length, 6) for s in stretches] == [20.0] and source.tolist() == [0]


def test_public_space_is_the_grid_minus_its_buildings():
    grid = box(0, 0, 100, 100)
    left = public_space([grid], [box(10, 10, 30, 30), box(50, 50, 60, 70)])[0]
    assert left.area == pytest.approx(10_000 - 400 - 200)


@settings(max_examples=40, deadline=None)
@given(
    heading=st.floats(0, 360),
    fov=st.floats(1, 360),
    rng=st.floats(1, 200),
    wall=st.tuples(st.floats(-100, 100), st.floats(-100, 100), st.floats(1, 40), st.floats(1, 40)),
)
def test_a_view_is_valid_inside_its_sector_and_never_covers_a_wall(heading, fov, rng, wall):
    x, y, w, h = wall
    building = box(x, y, x + w, y + h)
    seen = view_sectors([0.0], [0.0], [heading], [fov], [rng], [building])[0]
    assert seen.is_valid
    assert seen.area <= math.pi * rng**2 * fov / 360 * (1 + 1e-9)  # never more than the sector
    if not building.contains(shapely.Point(0, 0)) and not building.touches(shapely.Point(0, 0)):
        # within the view's resolution at shadow edges (rays 1e-4° either side of a corner)
        assert seen.intersection(building).area < 0.01

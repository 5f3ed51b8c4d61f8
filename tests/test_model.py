"""Codes, levels, roles, rollup and numbering."""

from __future__ import annotations

import pandas as pd
import pytest
from shapely import box

from gis_grid.domain.errors import InputError
from gis_grid.domain.model import Level, Role, child_code, level_of_code, parent_code, rollup
from gis_grid.domain.numbering import assign_codes, reading_order


def test_code_lengths_and_parents():
    code = "21128100100700301200402"
    assert level_of_code(code) is Level.UNIT
    chain = []
    while code:
        chain.append(code)
        code = parent_code(code)
    assert [len(c) for c in chain] == [23, 21, 18, 15, 12]
    assert child_code("211281001007003", 12) == "211281001007003012"
    with pytest.raises(InputError, match="does not fit"):
        child_code("21128100100700301200402"[:21], 100)
    with pytest.raises(InputError, match="malformed"):
        level_of_code("2112810010")
    with pytest.raises(InputError, match="malformed"):
        level_of_code("21128100100A")


def test_parsing_levels_and_roles():
    assert Level.parse("片区") is Level.AREA and Level.parse("网格") is Level.AREA
    assert Role.parse("楼长") is Role.BUILDING_HEAD
    with pytest.raises(InputError, match="expected one of"):
        Level.parse("district")
    with pytest.raises(InputError, match="网格长"):
        Role.parse("captain")


def test_rollup_keeps_leaves_and_sums_parents():
    frame = pd.DataFrame(
        {
            "code": [
                "211281001007",
                "211281001007001",
                "211281001007001001",
                "211281001007001001001",
                "211281001007001001002",
                "211281001007002",
            ],
            "households": [0, 0, 0, 10, 5, 7],
            "residents": [0, 0, 0, 20, 11, 15],
            "special_care": [0, 0, 0, 1, 0, 2],
        }
    )
    out = rollup(frame).set_index("code")
    assert out.loc["211281001007001001", "households"] == 15
    assert out.loc["211281001007001", "residents"] == 31
    assert out.loc["211281001007", "households"] == 22  # 15 + the childless area's own 7
    assert out.loc["211281001007002", "households"] == 7


def test_reading_order_rows_then_west_to_east():
    # north row: three slabs whose tops differ by a metre or two; south row: two
    geoms = [
        box(40, 52, 60, 62),
        box(0, 50, 20, 60),
        box(80, 51, 100, 61),
        box(10, 0, 30, 10),
        box(50, 1, 70, 11),
    ]
    assert reading_order(["p"] * 5, geoms).tolist() == [2, 1, 3, 4, 5]
    assert reading_order(
        ["a", "b", "a"], [box(5, 0, 6, 1), box(0, 0, 1, 1), box(0, 0, 1, 1)]
    ).tolist() == [2, 1, 1]


def test_assign_codes_under_each_parent():
    codes = assign_codes(
        ["211281001007001"] * 2 + ["211281001007002"],
        [box(1, 0, 2, 1), box(0, 0, 1, 1), box(0, 0, 1, 1)],
    )
    assert codes == ["211281001007001002", "211281001007001001", "211281001007002001"]

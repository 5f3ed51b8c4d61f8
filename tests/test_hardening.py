"""Defects found trying the platform as a new and a hostile user; each test failed before its fix.

Every refused write leaves the store as it was (``snapshot`` before and after).
"""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from shapely import box

from gis_grid.domain.errors import TopologyError
from gis_grid.geo.crs import WGS84
from gis_grid.store import ChangeSet
from tests.conftest import COMMUNITY, at, grids, seeded, snapshot

OTHER = "211281001098"


def test_a_community_laid_over_another_is_refused(demo_store):
    """A copy of the demo's outline under another code overlaps it by all of its 52 ha."""
    outline = demo_store.grids(codes=["211281001007"])
    copy = gpd.GeoDataFrame({"code": [OTHER]}, geometry=outline.geometry.to_numpy(), crs=WGS84)
    before = snapshot(demo_store)
    with pytest.raises(TopologyError, match=r"overlap.*211281001007|211281001007.*overlap"):
        demo_store.apply(ChangeSet(copy))
    assert snapshot(demo_store) == before


def test_a_community_touching_another_along_an_edge_is_accepted(empty_store):
    """Neighbours that share an edge do not overlap: the check is not a bounding-box test."""
    store = seeded(empty_store)
    store.apply(ChangeSet(grids(**{f"c{OTHER}": box(100, 0, 200, 100)})))
    assert set(store.grids(level="community")["code"]) == {COMMUNITY, OTHER}


def test_a_community_overlapping_a_neighbour_by_a_sliver_is_refused(empty_store):
    """5 m into the seeded community (100 m × 100 m): 500 m² of overlap, refused by name."""
    store = seeded(empty_store)
    before = snapshot(store)
    with pytest.raises(TopologyError, match=COMMUNITY):
        store.apply(ChangeSet(grids(**{f"c{OTHER}": box(95, 0, 200, 100)})))
    assert snapshot(store) == before


def test_redrawing_a_community_over_its_neighbour_is_refused(empty_store):
    """An edit of a community's outline is checked against the other communities too."""
    store = seeded(empty_store)
    store.apply(ChangeSet(grids(**{f"c{OTHER}": box(100, 0, 200, 100)})))
    before = snapshot(store)
    current = store.grids(codes=[OTHER])
    edit = gpd.GeoDataFrame(
        {"code": [OTHER], "version": current["version"].to_numpy()},
        geometry=[at(box(90, 0, 200, 100))],
        crs=WGS84,
    )
    with pytest.raises(TopologyError, match=COMMUNITY):
        store.update(edit)
    assert snapshot(store) == before
    assert shapely.equals_exact(
        store.grids(codes=[OTHER]).geometry.iloc[0], current.geometry.iloc[0], 1e-12
    )

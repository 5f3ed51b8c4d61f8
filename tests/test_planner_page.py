"""The planner's editor in a browser: each tool previewed, checked against the API, saved, undone.

Every test gets its own copy of the demo (the edits change it) served on
127.0.0.1; requests anywhere else are blocked and counted (0), as in
test_pages. The panel's figures are compared with what ``/planner/preview``
answers for the very edit the page sent. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
import shapely

from tests import test_pages as pages
from tests.test_pages import ARTIFACTS, click_at, open_page, serve_demo, settle

#: The browser and a page that blocks and counts requests off this machine (test_pages').
browser = pages.browser
page = pages.page

C = "211281001007"


@pytest.fixture
def site(tmp_path, demo_file, demo_data):
    """A fresh demo per test, with a second planner who saves first in the stale-edit test."""
    yield from serve_demo(
        tmp_path, demo_file, demo_data, extra_users=[("planner-li", "李规划", "planner")]
    )


def _store(site):
    from gis_grid.store.gpkg import GeoPackageStore

    return GeoPackageStore(site["store"])


def call(site, path, body=None, role="planner", method=None):
    """The API as the planner (JSON in, JSON out)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        site["url"] + path,
        data=data,
        method=method or ("POST" if data else "GET"),
        headers={
            "Authorization": f"Bearer {site['tokens'][role]}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request) as r:
        return json.loads(r.read())


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def click_lonlat(page, lon, lat) -> None:
    click_at(page, (lon, lat))


def fit(page, geom, padding=80) -> None:
    """Show a shape (lon/lat) filling the map (the legend folded away), and wait for the tiles."""
    page.evaluate("document.querySelector('#legend details').open = false")
    x0, y0, x1, y1 = geom.bounds
    page.evaluate(
        f"gisGrid.map.fitBounds([[{x0}, {y0}], [{x1}, {y1}]], {{padding: {padding}, duration: 0}})"
    )
    settle(page)


def inside(geom) -> tuple[float, float]:
    return tuple(shapely.get_coordinates(geom.representative_point())[0])


def previewed(page) -> dict:
    """Wait for the page's preview and answer it with the edit it sent."""
    page.wait_for_function(
        "gisGrid.planner.preview && !document.querySelector('#check').innerText.includes('…')",
        timeout=60_000,
    )
    return page.evaluate("({preview: gisGrid.planner.preview, body: gisGrid.planner.body})")


def same_as_the_api(page, site, seen) -> dict:
    """The panel shows what the API answers for the same edit (the figures and changed rows)."""
    api = call(site, "/planner/preview", {**seen["body"], "weights": "households=1"})
    assert api["ok"] and seen["preview"]["ok"]
    for parent, group in api["groups"].items():
        assert page.inner_text(f"#max-dev-{parent}") == pct(group["max_deviation"])
        assert page.inner_text(f"[data-parent='{parent}'] .k") == str(group["k"])
    for row in api["rows"]:
        cells = page.locator(f"table.balance tr[data-code='{row['code']}']")
        assert cells.locator("td.hh").inner_text().split("\n")[0] == f"{row['households']:,}"
        dev = f"{'+' if row['deviation'] > 0 else ''}{100 * row['deviation']:.1f}%"
        assert cells.locator("td.dev").inner_text() == dev
    assert page.inner_text("#moved-now") == f"{api['households_moved']:,}"
    return api


def grids_of(store) -> list:
    """Every grid's code, households and outline (rounded to ~1 cm)."""
    frame = store.grids().sort_values("code")
    shapes = shapely.to_wkt(shapely.normalize(frame.geometry.to_numpy()), rounding_precision=7)
    return list(zip(frame["code"], frame["households"].astype(int), shapes, strict=True))


def save_and_undo(page, site, operation: str) -> None:
    """Save the preview as a revision, then undo it from the page: the store is as it was."""
    with _store(site) as store:
        before = grids_of(store)
        revisions = len(store.revisions())
    page.click("#save")
    page.wait_for_function("gisGrid.saved", timeout=60_000)
    saved = page.evaluate("gisGrid.saved")
    with _store(site) as store:
        log = store.revisions()
        assert len(log) == revisions + 1 and log["operation"].iloc[-1] == operation
        assert log["author"].iloc[-1] == "web-planner"
        assert (
            store.grids()[["code", "households"]].sort_values("code").to_numpy().tolist() != before
        )
    page.wait_for_selector(f"#log tr[data-revision='{saved}']")
    page.evaluate("gisGrid.saved = null")
    page.click("#undo")
    page.wait_for_function("gisGrid.saved", timeout=60_000)
    with _store(site) as store:
        assert store.revisions()["operation"].iloc[-1] == "undo"
        assert grids_of(store) == before
        assert not len(store.validate().query("kind != 'no_staff'"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_merge_two_areas_previewed_saved_and_undone(site, page, lang):
    open_page(page, site, "planner", "planner", lang=lang)
    with _store(site) as store:
        areas = store.grids(level="area").set_index("code")
    page.click("[data-tool=merge]")
    for code in (f"{C}006", f"{C}007"):
        click_lonlat(page, *inside(areas.geometry[code]))
    seen = previewed(page)
    api = same_as_the_api(page, site, seen)
    assert api["removed"] == [f"{C}007"] and api["rows"][0]["households"] == 815
    assert page.evaluate("gisGrid.map.getSource('preview')._data.features.length") == 1
    assert page.locator("[data-keep]").count() == 2  # who keeps it: both workers, ticked
    assert page.locator(f"table.balance tr.removed[data-code='{C}007']").count() == 1
    page.screenshot(path=str(ARTIFACTS / f"planner-merge-preview-{lang}.png"))
    save_and_undo(page, site, "merge")


def test_a_merge_keeps_only_the_staff_ticked(site, page):
    open_page(page, site, "planner", "planner")
    with _store(site) as store:
        areas = store.grids(level="area").set_index("code")
        dropped = store.assignments(grid_codes=[f"{C}007"])["staff_id"].tolist()
    page.click("[data-tool=merge]")
    for code in (f"{C}006", f"{C}007"):
        click_lonlat(page, *inside(areas.geometry[code]))
    previewed(page)
    for staff_id in dropped:
        page.uncheck(f"[data-keep='{staff_id}']")
    page.click("#save")
    page.wait_for_function("gisGrid.saved", timeout=60_000)
    with _store(site) as store:
        on = store.assignments(grid_codes=[f"{C}006"])["staff_id"].tolist()
        assert on and not set(dropped) & set(on)
        assert store.assignments(grid_codes=[f"{C}007"]).empty  # nobody on a grid that is gone


def test_split_along_a_drawn_line_with_the_new_grids_worker(site, page):
    """A line drawn click by click between courtyards (a pixel or two off their corners)."""
    area = f"{C}004"
    with _store(site) as store:
        from gis_grid.planning.edits import split

        shape = store.grids(codes=[area]).geometry.iloc[0]
        parts = split(store, area, parts=2, dry_run=True).change.grids
        tops = parts.loc[parts["code"].str.len() == 15].geometry.to_numpy()
        free = store.staff().loc[lambda s: ~s["staff_id"].isin(store.assignments()["staff_id"])]
    shared = shapely.line_merge(shapely.intersection(tops[0], tops[1]))
    points = shapely.get_coordinates(shared)
    out = 0.0003  # both ends ~25 m outside the area
    start = points[0] + out * (points[0] - points[1]) / np.linalg.norm(points[0] - points[1])
    end = points[-1] + out * (points[-1] - points[-2]) / np.linalg.norm(points[-1] - points[-2])
    line = [start, *points, end]
    open_page(page, site, "planner", "planner")
    fit(page, shapely.MultiPoint(line).union(shape))
    page.click("[data-tool=split]")
    click_lonlat(page, *inside(shape))  # picks the area
    for p in line:
        click_lonlat(page, *p)
    page.wait_for_function(f"gisGrid.planner.line.length === {len(line)}")
    seen = previewed(page)
    assert seen["preview"]["ok"], seen["preview"]["problems"]
    api = same_as_the_api(page, site, seen)
    new = api["codes"]["inserted"]
    assert len(new) == 1 and api["unstaffed"] == new
    choose = page.locator(f"select[data-assign='{new[0]}']")
    person = free["staff_id"].iloc[0] if len(free) else None
    if person is not None:
        choose.select_option(person)
    page.screenshot(path=str(ARTIFACTS / "planner-split-preview.png"))
    page.click("#save")
    page.wait_for_function("gisGrid.saved", timeout=60_000)
    with _store(site) as store:
        assert store.revisions()["operation"].iloc[-1] == "split"
        assert len(store.grids(level="area")) == 9
        on_new = store.assignments(grid_codes=new)["staff_id"].tolist()
        assert on_new == ([person] if person is not None else [])
    page.evaluate("gisGrid.saved = null")
    page.click("#undo")
    page.wait_for_function("gisGrid.saved", timeout=60_000)
    with _store(site) as store:
        assert len(store.grids(level="area")) == 8


def test_a_line_through_a_courtyard_is_refused_on_the_map(site, page):
    area = f"{C}004"
    with _store(site) as store:
        shape = store.grids(codes=[area]).geometry.iloc[0]
        yard = store.grids(level="courtyard", under=[area]).geometry.iloc[0]
    x0, y0, x1, y1 = shape.bounds
    cx = shapely.get_coordinates(yard.centroid)[0][0]
    top, bottom = (cx, y1 + 0.00015), (cx, y0 - 0.00015)
    open_page(page, site, "planner", "planner")
    fit(page, shapely.MultiPoint([top, bottom]).union(shape))
    page.click("[data-tool=split]")
    click_lonlat(page, *inside(shape))
    click_lonlat(page, *top)
    click_lonlat(page, *bottom)
    seen = previewed(page)
    assert not seen["preview"]["ok"] and "cuts through" in page.inner_text("#check")
    assert page.is_disabled("#save")


def test_move_a_courtyard_to_a_neighbouring_area(site, page):
    from gis_grid.planning.edits import move

    with _store(site) as store:
        areas = store.grids(level="area").set_index("code")
        yards = store.grids(level="courtyard")
        found = None
        for y in yards.itertuples():  # a courtyard the engine lets move to a neighbour
            for to in areas.index:
                if to == y.code[:15] or not areas.geometry[to].distance(y.geometry) < 0.0003:
                    continue
                try:
                    move(store, [y.code], to, dry_run=True)
                except Exception:  # noqa: S112 - not this pair
                    continue
                found = (y.code, to, y.geometry, int(y.households))
                break
            if found:
                break
    assert found, "no courtyard can move to a neighbouring area"
    code, to, yard, households = found
    open_page(page, site, "planner", "planner")
    fit(page, yard.union(areas.geometry[to]), padding=60)
    page.click("[data-tool=move]")
    click_lonlat(page, *inside(areas.geometry[to].difference(yard.buffer(0.00005))))
    page.wait_for_function(f"gisGrid.planner.target === '{to}'")
    click_lonlat(page, *inside(yard))
    seen = previewed(page)
    assert seen["body"]["atoms"] == [code]
    api = same_as_the_api(page, site, seen)
    assert api["households_moved"] == households
    assert page.evaluate("gisGrid.map.getSource('picked')._data.features.length") == 2
    page.screenshot(path=str(ARTIFACTS / "planner-move-preview.png"))
    save_and_undo(page, site, "move")


def test_redraw_by_dragging_a_corner(site, page):
    """A corner two areas share, dragged a few metres along their edge: the neighbour gives way."""
    from gis_grid.planning.edits import redraw

    a = f"{C}001"
    with _store(site) as store:
        areas = store.grids(level="area").set_index("code")
        ring = shapely.get_coordinates(areas.geometry[a].exterior)[:-1]
        found = None
        for i, (x, y) in enumerate(ring):
            for dx, dy in ((0.00004, 0), (-0.00004, 0), (0, 0.00004), (0, -0.00004)):
                moved = ring.copy()
                moved[i] = (x + dx, y + dy)
                try:
                    redraw(store, a, shapely.Polygon(moved), take=True, dry_run=True)
                except Exception:  # noqa: S112 - not this corner
                    continue
                found = (i, (x, y), (x + dx, y + dy))
                break
            if found:
                break
    assert found, "no corner of area 001 can move 4 m"
    i, start, end = found
    open_page(page, site, "planner", "planner")
    fit(page, shapely.Point(start).buffer(0.0006))
    page.click("[data-tool=redraw]")
    page.check("#take")
    click_lonlat(page, *inside(areas.geometry[a].intersection(shapely.Point(start).buffer(0.0004))))
    page.wait_for_function(f"gisGrid.edit.code === '{a}'")
    box = page.locator("#map canvas").bounding_box()
    p0 = page.evaluate(f"gisGrid.map.project([{start[0]}, {start[1]}])")
    p1 = page.evaluate(f"gisGrid.map.project([{end[0]}, {end[1]}])")
    page.mouse.move(box["x"] + p0["x"], box["y"] + p0["y"])
    page.mouse.down()
    page.mouse.move(box["x"] + p1["x"], box["y"] + p1["y"], steps=8)
    page.mouse.up()
    seen = previewed(page)
    assert seen["preview"]["ok"], seen["preview"]["problems"]
    same_as_the_api(page, site, seen)
    save_and_undo(page, site, "redraw")


def test_a_rebalance_proposal_beside_the_grids_is_accepted(site, page):
    open_page(page, site, "planner", "planner")
    page.click("[data-tool=rebalance]")
    page.fill("#k", "8")
    page.fill("#tolerance", "5")
    page.click("#propose")
    page.wait_for_selector("table.compare", timeout=120_000)
    page.wait_for_function("gisGrid.beside && gisGrid.beside.loaded()", timeout=60_000)
    pid = int(page.get_attribute("table.compare", "data-proposal"))
    metrics = call(site, f"/planner/proposals/{pid}")["metrics"]
    proposed = page.locator("tr[data-figure='max_deviation'] td.proposed").inner_text()
    assert proposed == pct(metrics["max_deviation"])
    moved = page.locator("tr[data-figure='households_moved'] td.proposed").inner_text()
    assert moved == f"{metrics['households_moved']:,}"
    page.screenshot(path=str(ARTIFACTS / "planner-rebalance-beside.png"))
    page.click("#accept")
    page.wait_for_function("gisGrid.saved", timeout=60_000)
    with _store(site) as store:
        assert store.revisions()["operation"].iloc[-1] == "rebalance"
        assert store.proposals()["status"].iloc[0] == "accepted"
    assert page.evaluate("document.querySelector('#beside') === null")


def test_a_stale_save_is_refused_naming_who_saved_first(site, page):
    from gis_grid.planning.edits import merge

    open_page(page, site, "planner", "planner")
    with _store(site) as store:
        areas = store.grids(level="area").set_index("code")
        revisions = len(store.revisions())
    page.click("[data-tool=merge]")
    for code in (f"{C}002", f"{C}003"):
        click_lonlat(page, *inside(areas.geometry[code]))
    assert previewed(page)["preview"]["ok"]
    with _store(site) as store:  # 李规划 merges 003 with 004 first
        merge(store, [f"{C}003", f"{C}004"], author="planner-li")
    page.click("#save")
    page.wait_for_selector("#result .problem[data-status='409']", timeout=30_000)
    text = page.inner_text("#result")
    assert "planner-li" in text and "reload" in text.lower()
    with _store(site) as store:
        assert len(store.revisions()) == revisions + 1  # theirs only
    page.click("#reload-after")
    page.wait_for_function("gisGrid.planner.panel.rows.length === 7")
    page.wait_for_function("document.querySelector('#log').innerText.includes('planner-li')")


def test_a_revision_diff_is_drawn_and_restore_goes_back(site, page):
    from gis_grid.planning.edits import merge

    with _store(site) as store:
        merge(store, [f"{C}006", f"{C}007"], author="planner-li")
        first = int(store.revisions()["id"].iloc[0])
        merged = int(store.revisions()["id"].iloc[-1])
    open_page(page, site, "planner", "planner")
    page.click(f"#log button[data-diff='{merged}']")
    page.wait_for_selector(f"#diff [data-diff='{merged}']")
    diff = call(site, f"/communities/{C}/revisions/{merged}/changes")
    assert f"{diff['households_moved']:,}" in page.inner_text("#diff")
    assert page.evaluate("gisGrid.map.getSource('moved')._data.features.length") == len(
        diff["buildings"]["features"]
    )
    page.on("dialog", lambda d: d.accept())
    page.click(f"#log button[data-restore='{first}']")
    page.wait_for_function("gisGrid.planner.panel.rows.length === 8", timeout=60_000)
    with _store(site) as store:
        assert store.revisions()["operation"].iloc[-1] == "restore"
        assert len(store.grids(level="area")) == 8


def test_the_map_shows_the_boundaries_of_a_past_day(site, page, monkeypatch):
    """Imported on 1 September, two areas merged on 15 October: 1 October draws eight areas."""
    import sqlite3

    import gis_grid.store.base as base
    from gis_grid.planning.edits import merge

    with sqlite3.connect(site["store"]) as conn:
        conn.execute("UPDATE gis_grid_revisions SET created_at = '2026-09-01T00:00:00Z'")
    monkeypatch.setattr(base, "utc_now", lambda: "2026-10-15T02:00:00Z")
    with _store(site) as store:
        merge(store, [f"{C}006", f"{C}007"], author="planner-li")
    open_page(page, site, "planner", "planner")
    drawn = (
        "new Set(gisGrid.map.queryRenderedFeatures({layers: ['area-line']})"
        ".map((f) => f.properties.code)).size"
    )
    assert page.evaluate(drawn) == 7
    page.fill("#as-of", "2026-10-01")
    page.dispatch_event("#as-of", "change")
    page.wait_for_function("gisGrid.asOf === '2026-10-01'")
    settle(page)
    page.wait_for_function(f"{drawn} === 8", timeout=30_000)
    assert "2026-10-01" in page.inner_text("#hint")
    page.screenshot(path=str(ARTIFACTS / "planner-as-of.png"))
    page.click("#as-of-clear")
    settle(page)
    page.wait_for_function(f"{drawn} === 7", timeout=30_000)


@pytest.fixture
def tiled_site(tmp_path):
    """Two areas of two courtyards that tile them, two buildings each (x 0..120 m, y 0..60 m).

    Courtyard c2 (x 30..60) borders c1 (x 0..30): one of its buildings can move there.
    """
    from shapely import box

    from gis_grid.store import ChangeSet
    from gis_grid.store.gpkg import GeoPackageStore
    from tests.conftest import COMMUNITY, grids, staff_for

    a1, a2 = f"{COMMUNITY}001", f"{COMMUNITY}002"
    shapes = {COMMUNITY: box(0, 0, 120, 60), a1: box(0, 0, 60, 60), a2: box(60, 0, 120, 60)}
    households = {}
    for i, x in enumerate((0, 30, 60, 90)):
        yard = f"{a1 if x < 60 else a2}{1 + i % 2:03d}"
        shapes[yard] = box(x, 0, x + 30, 60)
        shapes[f"{yard}001"] = box(x + 4, 34, x + 26, 54)
        shapes[f"{yard}002"] = box(x + 4, 6, x + 26, 26)
        households[f"{yard}001"], households[f"{yard}002"] = 10 * (i + 1), 10 * (i + 2)
    frame = grids(**{f"c{k}": v for k, v in shapes.items()})
    frame["households"] = frame["code"].map(households).fillna(0).astype(int)
    staff, assignments = staff_for(frame)
    path = tmp_path / "tiled.gpkg"
    with GeoPackageStore(path, create=True) as store:
        store.apply(ChangeSet(frame, staff, assignments))
    yield from pages.serve_store(path)


def test_move_a_building_to_a_neighbouring_courtyard(tiled_site, page):
    site = tiled_site
    with _store(site) as store:
        yards = store.grids(level="courtyard").set_index("code")
        buildings = store.grids(level="building").set_index("code")
    target, source = yards.index[0], yards.index[1]  # c1 and c2 of area 001
    building = f"{source}002"  # c2's south building
    open_page(page, site, "planner", "planner")
    page.select_option("#level", "courtyard")
    page.wait_for_function("gisGrid.planner.panel.level === 'courtyard'")
    fit(page, yards.geometry[target].union(yards.geometry[source]), padding=40)
    page.click("[data-tool=move]")
    click_lonlat(
        page, *inside(yards.geometry[target].difference(buildings.geometry[f"{target}001"]))
    )
    page.wait_for_function(f"gisGrid.planner.target === '{target}'")
    click_lonlat(page, *inside(buildings.geometry[building]))
    seen = previewed(page)
    assert seen["body"]["atoms"] == [building], seen["body"]
    api = same_as_the_api(page, site, seen)
    assert api["households_moved"] == int(buildings.loc[building, "households"])
    assert {r["code"]: r["households"] for r in api["rows"]} == {target: 10 + 20 + 30, source: 20}
    page.screenshot(path=str(ARTIFACTS / "planner-move-building.png"))
    save_and_undo(page, site, "move")

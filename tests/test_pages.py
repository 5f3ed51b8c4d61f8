"""The four map pages in a real browser (Debian's chromium driven by Playwright).

The app serves the demo community (with its layers) from a GeoPackage on
127.0.0.1; every request the browser makes elsewhere is blocked and counted,
and the count must stay 0. Screenshots go to ``test-artifacts/``.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``) and the
``playwright`` package; skipped without them unless GIS_GRID_REQUIRE_BROWSER=1
(CI sets it), when a missing browser fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import shapely

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",  # WebGL in software: maplibre draws with it
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _browser_missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    if not Path(CHROMIUM).exists():
        return f"no browser at {CHROMIUM} (apt-get install chromium)"
    return None


_missing = _browser_missing()
if _missing and os.environ.get("GIS_GRID_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"browser tests required (GIS_GRID_REQUIRE_BROWSER=1) but {_missing}")
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")


@pytest.fixture(scope="module")
def site(tmp_path_factory, demo_file, demo_data):
    """The app over a copy of the demo with its layers, on a free port; a token per role."""
    yield from serve_demo(tmp_path_factory.mktemp("site"), demo_file, demo_data)


def serve_demo(folder, demo_file, demo_data, extra_users=()):
    """Serve a copy of the demo (with its layers) from ``folder``; yields the site's details."""
    from gis_grid.sources.demo import add_layers
    from gis_grid.store.gpkg import GeoPackageStore

    path = folder / "demo.gpkg"
    shutil.copy(demo_file, path)
    with GeoPackageStore(path) as store:
        add_layers(store, demo_data)
    yield from serve_store(path, extra_users)


def serve_store(path, extra_users=()):
    """Serve a GeoPackage on a free port with a user per role; yields the site's details."""
    import uvicorn

    from api.main import create_app
    from api.settings import Settings
    from gis_grid.store.gpkg import GeoPackageStore

    with GeoPackageStore(path) as store:
        a = store.assignments()
        worker = a.loc[(a["role"] == "grid_worker") & (a["grid_code"].str.len() == 15)]
        worker = worker.sort_values("grid_code")["staff_id"].iloc[0]
        roles = ("admin", "planner", "supervisor", "leadership", "grid_worker")
        tokens = {
            r: store.add_user(f"web-{r}", r, r, worker if r == "grid_worker" else None)
            for r in roles
        }
        for user_id, name, role in extra_users:
            tokens[user_id] = store.add_user(user_id, name, role)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(Settings(database_url=str(path))),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "tokens": tokens, "store": path, "worker": worker}
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh page; requests to anywhere but 127.0.0.1 are aborted and counted."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    pg = context.new_page()
    pg.blocked = []
    pg.errors = []

    def route(r):
        if r.request.url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            r.continue_()
        else:
            pg.blocked.append(r.request.url)
            r.abort()

    pg.route("**/*", route)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()
    assert pg.blocked == [], f"requests off this machine: {pg.blocked}"
    assert pg.errors == [], pg.errors


#: Each page and the role that opens it.
PAGE_ROLES = [
    ("overview", "leadership"),
    ("review", "leadership"),
    ("supervisor", "supervisor"),
    ("worker", "grid_worker"),
    ("planner", "planner"),
]


def open_page(page, site, name: str, role: str, path: str | None = None, lang=None) -> None:
    page.goto(f"{site['url']}{path or f'/map/{name}'}#token={site['tokens'][role]}")
    if lang:
        page.evaluate(f"localStorage.setItem('gis-grid-lang', '{lang}')")
        page.reload()
    page.wait_for_function("window.gisGrid && window.gisGrid.ready", timeout=90_000)
    settle(page)


def settle(page) -> None:
    page.wait_for_function(
        "gisGrid.map.loaded() && gisGrid.map.areTilesLoaded()", timeout=60_000, polling=200
    )


def drawn(page, layer: str) -> int:
    """How many grids (distinct codes) a layer of the map draws now."""
    return page.evaluate(
        f"new Set(gisGrid.map.queryRenderedFeatures({{layers: ['{layer}']}})"
        ".map((f) => f.properties.code)).size"
    )


def click_at(page, lonlat) -> None:
    """A real mouse click where the map shows lon/lat."""
    box = page.locator("#map canvas").bounding_box()
    px = page.evaluate(f"gisGrid.map.project([{lonlat[0]}, {lonlat[1]}])")
    page.mouse.click(box["x"] + px["x"], box["y"] + px["y"])


def markers(page) -> int:
    return page.evaluate("document.querySelectorAll('.maplibregl-marker').length")


def get(site, path: str, role: str) -> tuple[int, str, str]:
    """GET with a role's token: status, content type, text."""
    status, headers, body = _head(site, path, role)
    return status, headers.get("content-type"), body.decode()


def _store(site):
    from gis_grid.store.gpkg import GeoPackageStore

    return GeoPackageStore(site["store"])


def test_overview_draws_grids_from_tiles_and_a_unit_click_shows_its_staff(page, site):
    open_page(page, site, "overview", "leadership")
    assert drawn(page, "community-line") == 1 and drawn(page, "area-line") == 8
    with _store(site) as store:
        units = store.grids(level="unit")
        unit = units.iloc[len(units) // 2]
        heads = store.assignments(grid_codes=[unit["code"]])
        names = store.staff(heads["staff_id"].tolist())["name"].tolist()
    point = shapely.get_coordinates(unit.geometry.representative_point())[0]
    page.evaluate(f"gisGrid.map.jumpTo({{center: [{point[0]}, {point[1]}], zoom: 18.5}})")
    settle(page)
    assert drawn(page, "unit-line") > 0  # units come from their own tiles at this zoom
    click_at(page, point)
    pop = page.locator(f".maplibregl-popup .pop[data-code='{unit['code']}']")
    pop.wait_for(timeout=30_000)
    text = pop.inner_text()
    assert names and all(n in text for n in names) and str(unit["code"]) in text
    assert markers(page) <= 10_000


def test_a_browser_at_the_root_lands_on_the_overview_map(page, site):
    open_page(page, site, "overview", "leadership", path="/")
    assert page.evaluate("document.body.dataset.page") == "overview"
    assert drawn(page, "area-line") == 8


def test_the_api_description_page_works_offline(page, site):
    """/docs loaded Swagger UI from a CDN (blank on an intranet): now from swagger-ui-bundle."""
    page.goto(f"{site['url']}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
    assert "gis-grid" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() > 30  # every operation is listed


def test_supervisor_filter_changes_the_heat_layer(page, site):
    open_page(page, site, "supervisor", "supervisor")
    page.wait_for_function("gisGrid.analysed >= 1", timeout=120_000)
    settle(page)
    count = "gisGrid.map.querySourceFeatures('incidents', {sourceLayer: 'incidents'}).length"
    page.wait_for_function(f"{count} > 0", timeout=30_000)
    before = page.evaluate(count)
    assert "hot" in page.inner_text("#spots") and page.locator("#overdue table tr").count() > 0
    # the heat shows the hot spots' own window, and the page says which
    window = page.evaluate("decodeURIComponent(gisGrid.heatParams)")
    since, until = window.removeprefix("datetime=").split("/")
    assert f"{since[:10]} {since[11:16]}" in page.inner_text("#windows")
    assert page.input_value("#since") == since[:10] and page.input_value("#until") == until[:10]
    page.select_option("#category", "emergency")  # 2% of the demo's incidents
    page.wait_for_function("gisGrid.heatParams.endsWith('category=emergency')")
    assert page.evaluate("gisGrid.heatParams").startswith("datetime=")
    settle(page)
    page.wait_for_function(f"{count} < {before}", timeout=30_000)
    after = page.evaluate(count)
    assert 0 < after < before / 5
    page.wait_for_function("gisGrid.analysed >= 2", timeout=120_000)
    assert markers(page) <= 10_000


def test_grid_worker_sees_their_grids_and_a_tap_answers_who_is_responsible(page, site):
    open_page(page, site, "worker", "grid_worker")
    page.wait_for_function("gisGrid.covered !== undefined", timeout=60_000)
    with _store(site) as store:
        person = store.staff([site["worker"]]).iloc[0]
        area = store.assignments(staff_ids=[site["worker"]])["grid_code"].min()
        shape = store.grids(codes=[area]).geometry.iloc[0]
    cover = page.inner_text("#cover")
    assert person["name"] in cover and area in cover
    settle(page)
    assert drawn(page, "area-line") == 1  # their own area only, from their tiles
    point = shapely.get_coordinates(shape.representative_point())[0]
    click_at(page, point)
    page.wait_for_function("document.querySelector('#here table') !== null", timeout=30_000)
    assert person["name"] in page.inner_text("#here")
    assert markers(page) <= 10_000


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_planner_overlap_is_shown_as_a_problem_and_not_saved(page, site, lang):
    open_page(page, site, "planner", "planner", lang=lang)
    with _store(site) as store:
        areas = store.grids(level="area").set_index("code")
        revisions = len(store.revisions())
    a, b = areas.index[0], areas.index[1]
    shared = shapely.intersection(areas.geometry[a], areas.geometry[b])
    south = min(shapely.get_coordinates(shared).tolist(), key=lambda p: p[1])
    width = areas.geometry[a].bounds[2] - areas.geometry[a].bounds[0]
    # a real click on the area starts the edit; then drag its corner into the sibling
    inside = shapely.get_coordinates(areas.geometry[a].representative_point())[0]
    page.click("[data-tool=redraw]")
    click_at(page, inside)
    page.wait_for_function(f"gisGrid.edit.code === '{a}'", timeout=30_000)
    page.wait_for_selector("#log table tr")  # the revision log, its operations in the language
    assert ("import" if lang == "en" else "导入") in page.inner_text("#log")
    box = page.locator("#map canvas").bounding_box()
    start = page.evaluate(f"gisGrid.map.project([{south[0]}, {south[1]}])")
    end = page.evaluate(f"gisGrid.map.project([{south[0] + 0.15 * width}, {south[1]}])")
    page.mouse.move(box["x"] + start["x"], box["y"] + start["y"])
    page.mouse.down()
    page.mouse.move(box["x"] + end["x"], box["y"] + end["y"], steps=10)
    page.mouse.up()
    page.wait_for_function("gisGrid.edit.checks > 0", timeout=30_000)
    problems = page.inner_text("#check")
    assert (f"overlaps {b} by" if lang == "en" else f"与 {b} 重叠") in problems  # in its language
    assert page.evaluate("gisGrid.map.getSource('problems')._data.features.length") == 1
    assert page.is_disabled("#save")
    page.locator("#save").click(force=True)  # disabled: nothing is sent
    page.wait_for_timeout(500)
    with _store(site) as store:
        assert len(store.revisions()) == revisions
        assert shapely.equals(store.grids(codes=[a]).geometry.iloc[0], areas.geometry[a])
    assert markers(page) <= 10_000


def test_exported_grid_map_is_self_contained(page, site):
    """The folium export over HTTP: leaflet inlined, the children and staff, nothing fetched."""
    import json
    import re

    with _store(site) as store:
        area = store.grids(level="area")["code"].iloc[0]
        yards = store.grids(under=[area], level="courtyard")
        staff = store.staff(store.assignments(grid_codes=yards["code"].tolist())["staff_id"])
    status, kind, html = get(site, f"/grids/{area}/map.html", "leadership")
    assert status == 200 and kind.startswith("text/html")
    assert not re.findall(r'<(?:script|link)[^>]*(?:src|href)="https?://', html)
    escaped = [json.dumps(name)[1:-1] for name in staff["name"]]  # folium writes \\uXXXX
    assert all(name in html for name in escaped) and all(c in html for c in yards["code"])
    page.set_content(html)
    page.wait_for_selector(".leaflet-container")
    page.wait_for_function("document.querySelectorAll('.leaflet-control-layers label').length >= 3")
    assert get(site, f"/grids/{area[:-1]}2/map.html", "grid_worker")[0] == 403


def test_a_grid_worker_handles_a_case_from_their_list(page, site):
    """The worker's page lists the open cases in their grids; a case's next step is a button."""
    from gis_grid.cases import service
    from gis_grid.cases.loop import Actor
    from gis_grid.cases.rules import Rules

    with _store(site) as store:
        area = store.assignments(staff_ids=[site["worker"]])["grid_code"].min()
        unit = store.grids(level="unit", under=[area], geometry=True).geometry.iloc[0]
        p = unit.representative_point()
        rules, desk = Rules.load(), Actor("督办", "supervisor")
        case = service.report(
            store,
            lon=p.x,
            lat=p.y,
            category="property",
            rules=rules,
            actor=desk,
            description="楼道灯坏了",
        )
        for action in ("accept", "dispatch"):
            case = service.act(store, case["id"], action, desk, rules=rules)
    open_page(page, site, "worker", "grid_worker")
    page.wait_for_function("gisGrid.cases !== undefined", timeout=60_000)
    item = page.locator(f"li.case[data-case='{case['id']}']")
    pages = 0
    while not item.count() and page.locator("#cases button.more").count():
        page.click("#cases button.more")  # the rest, 30 at a time
        page.wait_for_timeout(300)
        pages += 1
    assert item.count() == 1 and "Property" in item.inner_text()
    item.click()
    page.wait_for_selector(".case-card button[data-step='handle']")
    assert "楼道灯坏了" in page.inner_text(".case-card")
    page.click(".case-card button[data-step='handle']")
    page.fill(".case-card form.ask input[name='note']", "换了灯泡")
    page.click(".case-card form.ask button")
    page.wait_for_function(
        "document.querySelector('.case-card h3').textContent.includes('handled')", timeout=30_000
    )
    assert "换了灯泡" in page.inner_text(".case-card .timeline")
    assert not page.locator(".case-card button[data-step='close']").count()  # not a worker's
    with _store(site) as store:
        assert service.get_case(store, case["id"])["status"] == "handled"


def test_supervisor_sees_cases_and_indicators_and_a_stale_step_says_reload(page, site):
    from gis_grid.cases import service
    from gis_grid.cases.loop import Actor
    from gis_grid.cases.rules import Rules

    with _store(site) as store:
        unit = store.grids(level="unit", geometry=True).geometry.iloc[5]
        p = unit.representative_point()
        case = service.report(
            store,
            lon=p.x,
            lat=p.y,
            category="emergency",
            rules=Rules.load(),
            actor=Actor("热线", "supervisor"),
        )
    open_page(page, site, "supervisor", "supervisor")
    page.wait_for_function("gisGrid.cases !== undefined", timeout=60_000)
    page.wait_for_selector("#indicators table.indicators tr:nth-child(2)", timeout=60_000)
    page.select_option("#category", "emergency")  # the list follows the category filter
    item = page.locator(f"li.case[data-case='{case['id']}']")
    item.wait_for(timeout=30_000)
    item.click()
    page.wait_for_selector(".case-card button[data-step='accept']")
    with _store(site) as store:  # someone else accepts it first
        service.act(store, case["id"], "accept", Actor("别人", "supervisor"), rules=Rules.load())
    page.click(".case-card button[data-step='accept']")
    page.wait_for_selector(".case-card #reload-case", timeout=30_000)
    assert "someone acted on it first" in page.inner_text(".case-card .said")
    page.click(".case-card #reload-case")
    page.wait_for_function(
        "document.querySelector('.case-card h3').textContent.includes('accepted')", timeout=30_000
    )


#: A colour per spot kind and trend, as the legend and the report show them.
HOT, COLD = "#e03131", "#1971c2"


def test_hot_spots_read_right_hot_red_cold_blue_fading_an_outline_on_red(page, site):
    """Fading spots were painted blue (the cold colour) while the text said '0 cold'."""
    open_page(page, site, "supervisor", "supervisor")
    page.wait_for_function("gisGrid.analysed >= 1", timeout=120_000)
    settle(page)
    spots = page.evaluate("gisGrid.map.getSource('spots')._data.features.map(f => f.properties)")
    assert {s["trend"] for s in spots} >= {"fading"}, "the demo has fading spots to show"
    paint = page.evaluate(
        "['spots-fill', 'spots-line', 'spots-fading'].map(id => [gisGrid.map.getFilter(id), "
        "gisGrid.map.getPaintProperty(id, id === 'spots-fill' ? 'fill-color' : 'line-color')])"
    )
    fill = paint[0][1]
    assert fill[:3] == ["match", ["get", "spot"], "hot"] and fill[3] == HOT and fill[4] == COLD
    # what each layer draws, by the layers' own filters, over the spots the page holds
    drawn = page.evaluate(
        """() => {
          const m = gisGrid.map;
          const ids = ['spots-fill', 'spots-fading'];
          return ids.map(id => m.queryRenderedFeatures({layers: [id]})
            .map(f => [f.properties.spot, f.properties.trend]));
        }"""
    )
    assert drawn[0] and all(spot in ("hot", "cold") for spot, _ in drawn[0])
    assert drawn[1] and all(trend == "fading" for _, trend in drawn[1])
    assert paint[2][1] != COLD and paint[1][1][-1] != COLD  # a fading or hot outline is never blue
    summary = page.inner_text("#spots")
    assert "0 cold" in summary and not any(s["spot"] == "cold" for s in spots)
    # one row per grid, most incidents first
    rows = page.locator("table.spot-rows tr").all_inner_texts()
    counts = [int(r.split()[0]) for r in rows]
    assert counts == sorted(counts, reverse=True) and len(rows) == len(set(rows))


@pytest.mark.parametrize(("name", "role"), PAGE_ROLES)
def test_every_map_has_a_legend_for_each_layer_it_draws(page, site, name, role):
    open_page(page, site, name, role)
    drawn = set(page.evaluate("[...gisGrid.visibleKeys()]"))
    listed = set(
        page.evaluate(
            "[...document.querySelectorAll('#legend [data-legend]')].map(e => e.dataset.legend)"
        )
    )
    assert drawn and drawn <= listed, f"drawn without a legend: {drawn - listed}"
    if name == "overview":  # a hidden layer leaves the legend
        page.locator("input[data-layer='cctv']").uncheck()
        listed = page.evaluate(
            "[...document.querySelectorAll('#legend [data-legend]')].map(e => e.dataset.legend)"
        )
        assert "cctv" not in listed and "area" in listed


#: Latin words a Chinese page may show: the product, units and the names of measures.
LATIN_OK = {"gis", "grid", "EN", "PAI", "Gi", "CSV", "km", "m", "h", "d"}
# the weekly review: its downloads, the test's name, ISO weeks (W48), Gi*'s z, lettered holes
LATIN_OK |= {"PDF", "HTML", "FDR", "W", "z", *"ABCDEFGHIJ"}
CJK_RUN = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]+")


def _names(site) -> list[str]:
    """Names people gave (grids, staff, users, places): shown as they are, in any language."""
    with _store(site) as store:
        names = [
            *store.grids(geometry=False)["name"],
            *store.staff()["name"],
            *store.users()["name"],
        ]
        cases = store.features("incidents")
        for column in ("address", "description"):
            if column in cases:
                names += [v for v in cases[column].dropna()]
        names += list(store.features("streets")["name"].dropna())  # streets' names
    return sorted({str(n) for n in names if n}, key=len, reverse=True)


def _page_text(page, site, name: str, role: str, lang: str) -> str:
    open_page(page, site, name, role, lang=lang)
    if name == "supervisor":
        page.wait_for_function("gisGrid.analysed >= 1", timeout=120_000)
        settle(page)
    if name == "review":
        page.wait_for_function("gisGrid.review", timeout=120_000)
    return page.evaluate("document.body.innerText + '\\n' + document.title")


@pytest.mark.parametrize(("name", "role"), PAGE_ROLES)
def test_a_page_speaks_one_language_names_and_codes_aside(page, site, name, role):
    """Statuses and roles were English on the Chinese page, categories Chinese on the English."""
    names = _names(site)

    def strip(text: str) -> str:
        for n in names:
            text = text.replace(n, " ")
        return text

    zh = strip(_page_text(page, site, name, role, "zh"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"page-{name}-zh.png"))
    latin = [w for w in re.findall(r"[A-Za-z]+", zh) if w not in LATIN_OK]
    # ids of cases (E0004177, C261204-3f9a…) and codes are codes, not words
    latin = [w for w in latin if not re.fullmatch(r"[CE]|[0-9a-f]+", w)]
    assert not latin, f"English on the Chinese {name} page: {sorted(set(latin))[:20]}"
    assert page.locator("#bar .lang button.here").inner_text() == "中文"

    en = strip(_page_text(page, site, name, role, "en"))
    page.screenshot(path=str(ARTIFACTS / f"page-{name}-en.png"))
    chinese = [run for run in CJK_RUN.findall(en) if run not in ("中文",)]
    assert not chinese, f"Chinese on the English {name} page: {sorted(set(chinese))[:20]}"
    assert page.locator("#bar .lang button.here").inner_text() == "EN"
    assert page.evaluate("document.documentElement.lang") == "en"


def _head(site, path: str, role: str | None = None, etag: str | None = None):
    """Status and headers of a GET (with a token, and If-None-Match when given)."""
    import urllib.error
    import urllib.request

    headers = {"Authorization": f"Bearer {site['tokens'][role]}"} if role else {}
    if etag:
        headers["If-None-Match"] = etag
    try:
        with urllib.request.urlopen(
            urllib.request.Request(site["url"] + path, headers=headers)
        ) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@pytest.mark.parametrize(
    "path",
    ["/static/map.js", "/static/messages.json", "/static/app.css", "/assets/maplibre-gl.js"],
)
def test_the_pages_files_answer_304_to_a_browser_that_has_them(site, path):
    status, headers, body = _head(site, path)
    assert status == 200 and body and headers["etag"]
    again, headers2, body2 = _head(site, path, etag=headers["etag"])
    assert again == 304 and body2 == b"" and headers2["etag"] == headers["etag"]
    assert _head(site, path, etag='"something-else"')[0] == 200


def test_grid_tiles_are_named_by_the_grid_generation_and_kept_until_it_changes(page, site):
    """The planner asked for tiles with ?v=Date.now(): never from the browser's cache."""
    seen = []
    page.on("request", lambda r: seen.append(r.url) if "/tiles/area/" in r.url else None)
    open_page(page, site, "planner", "planner")
    first = {u for u in seen}
    seen.clear()
    open_page(page, site, "planner", "planner")
    generation = page.evaluate("gisGrid.gridGeneration")
    assert first and all(f"v={generation}" in u for u in first)
    assert {u for u in seen} <= first  # the same names: the browser may keep them
    path = next(iter(first)).split(site["url"])[1]
    status, headers, _ = _head(site, path, "planner")
    assert status == 200 and "immutable" in headers["cache-control"]
    status, old, _ = _head(site, path.replace(f"v={generation}", "v=0"), "planner")
    assert "immutable" not in old["cache-control"]  # an old name is revalidated
    assert _head(site, path, "planner", etag=headers["etag"])[0] == 304


def test_the_server_makes_the_first_pages_tiles_before_they_are_asked_for(site):
    import morecantile
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.routers.tiles import WARM_ZOOMS, warm
    from api.settings import Settings

    url = str(site["store"])
    with TestClient(create_app(Settings(database_url=url, warm_tiles=False))) as client:
        cache = client.app.state.tile_cache
        assert len(cache) == 0  # warm_tiles off: nothing made ahead
        waited = []
        made = warm(cache, url, client.app.state.settings, wait=lambda: waited.append(1), limit=60)
        assert made == 60 == len(cache) == len(waited)  # each tile waited for a quiet server
        with _store(site) as store:
            bounds = store.grids(level="community", geometry=True).total_bounds
        first = next(morecantile.tms.get("WebMercatorQuad").tiles(*bounds, [WARM_ZOOMS[0]]))
        hits, misses = cache.hits, cache.misses
        token = site["tokens"]["leadership"]
        r = client.get(
            f"/tiles/area/{first.z}/{first.x}/{first.y}.pbf",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200 and r.content
        assert (cache.hits, cache.misses) == (hits + 1, misses)  # served from what was made


def test_the_map_names_its_areas_and_streets_and_courtyards_closer_in(page, site):
    """No labels on the map: a leader saw outlines and had to click each to learn its name."""
    open_page(page, site, "overview", "leadership")
    page.wait_for_function(
        "(gisGrid.labels || []).some(k => k.startsWith('area:'))", timeout=30_000
    )
    with _store(site) as store:
        areas = set(store.grids(level="area", geometry=False)["name"])
        yards = set(store.grids(level="courtyard", geometry=False)["name"])
        streets = set(store.features("streets")["name"])
    shown = set(page.locator(".map-label").all_inner_texts())
    assert areas <= shown  # the demo fits the view: every area is named
    assert shown & streets and "兀术街" in shown
    assert not shown & yards  # courtyards only closer in
    page.evaluate("gisGrid.map.jumpTo({zoom: 17.2, center: gisGrid.map.getCenter()})")
    page.wait_for_function("(gisGrid.labels || []).some(k => k.startsWith('courtyard:'))")
    shown = set(page.locator(".map-label").all_inner_texts())
    assert shown & yards and not shown & areas


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_grid_worker_on_a_phone_sees_the_answer_to_a_tap_without_scrolling(browser, site, lang):
    """On a 390×844 phone the answer to a tap landed below the fold."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
        has_touch=True, locale="zh-CN" if lang == "zh" else "en-US",
    )  # fmt: skip
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        open_page(page, site, "worker", "grid_worker", lang=lang)
        page.wait_for_function("gisGrid.covered !== undefined", timeout=60_000)
        settle(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"page-worker-{lang}-phone.png"))
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#here table", timeout=30_000)
        answer = page.locator("#here").bounding_box()
        assert answer["y"] >= 0 and answer["y"] + 40 <= 844, answer  # in view, no scrolling
        page.screenshot(path=str(ARTIFACTS / f"page-worker-{lang}-phone-tap.png"))
        # a finger's targets: the case list's rows and the page's buttons
        heights = page.evaluate(
            "[...document.querySelectorAll('#panel button, li.case')].map(e => "
            "e.getBoundingClientRect().height).filter(h => h > 0)"
        )
        assert heights and min(heights) >= 40, min(heights)
        # my cases: paged, all reachable
        found = page.evaluate("gisGrid.cases")
        shown = page.locator("li.case").count()
        assert shown == min(found["total"], 30)
        if found["total"] > 30:
            page.locator("#cases .more").click()
            page.wait_for_function(f"document.querySelectorAll('li.case').length > {shown}")
    finally:
        context.close()
    assert errors == []


# -- the weekly review ----------------------------------------------------------------


def _review_json(site, week: str = "last") -> dict:
    import json

    status, _, body = _head(site, f"/api/review/{week}.json", "leadership")
    assert status == 200, body
    return json.loads(body)


def test_the_review_page_shows_the_apis_numbers_any_week_and_downloads_the_pdf(page, site):
    open_page(page, site, "review", "leadership", lang="zh")
    page.wait_for_function("gisGrid.review", timeout=120_000)
    data = _review_json(site)
    assert page.input_value("#week") == data["week"]
    cards = page.locator(".card .value").all_inner_texts()
    reported = data["headline"]["this_week"]["reported"]
    assert len(cards) == 6 and cards[0] == f"{reported:,}"
    # each hot-spot row is numbered on the map, and a click on it goes there
    rows = page.locator("table.spot-rows tr")
    assert rows.count() == min(10, len(data["hotspots"])) > 0
    assert page.locator(".num-marker").count() >= rows.count()
    before = page.evaluate("gisGrid.map.getZoom()")
    rows.first.click()
    assert page.evaluate("gisGrid.map.getZoom()") > before
    # the PDF downloads with the page's token
    with page.expect_download() as got:
        page.click("#pdf")
    path = got.value.path()
    assert Path(path).read_bytes()[:4] == b"%PDF" and data["week"] in got.value.suggested_filename
    # another week: the page asks for it and says which in its address
    earlier = f"{int(data['week'][:4])}-W{int(data['week'][6:]) - 1:02d}"
    page.fill("#week", earlier)
    page.dispatch_event("#week", "change")
    page.wait_for_function(f"gisGrid.review.week === '{earlier}'", timeout=120_000)
    assert f"week={earlier}" in page.url
    assert page.locator(".card .value").first.inner_text() == (
        f"{_review_json(site, earlier)['headline']['this_week']['reported']:,}"
    )


def test_a_review_row_links_to_the_map_at_its_place(page, site):
    status, _, body = _head(site, "/api/review/last.html", "leadership")
    html = body.decode()
    assert status == 200
    link = re.search(
        r'href="(http://127\.0\.0\.1:\d+/map/overview#at=([\d.]+),([\d.]+),(\d+))"', html
    )
    assert link, "no row links to the map"
    url, lon, lat, zoom = link[1], float(link[2]), float(link[3]), int(link[4])
    page.goto(f"{site['url']}/docs")  # signed in before: the link carries only the place
    page.evaluate(f"localStorage.setItem('gis-grid-token', '{site['tokens']['leadership']}')")
    page.goto(url)
    page.wait_for_function("window.gisGrid && window.gisGrid.ready", timeout=90_000)
    centre = page.evaluate("gisGrid.map.getCenter()")
    assert abs(centre["lng"] - lon) < 1e-5 and abs(centre["lat"] - lat) < 1e-5
    assert round(page.evaluate("gisGrid.map.getZoom()")) == zoom


def test_the_review_html_makes_no_request_outside_itself(page, site):
    status, _, body = _head(site, "/api/review/last.html", "leadership")
    assert status == 200
    asked = []
    page.on("request", lambda r: asked.append(r.url))
    page.set_content(body.decode(), wait_until="load")
    assert page.locator("#headline .card").count() == 6
    assert page.evaluate("[...document.images].every((i) => i.complete && i.naturalWidth > 0)")
    assert [u for u in asked if not u.startswith("data:")] == []

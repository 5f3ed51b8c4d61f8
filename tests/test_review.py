"""The weekly review: its numbers are the CLI's, its PDF reads back, bad input is refused clearly.

The demo community with its twelve weeks of incidents (relative to today) is
reviewed for its last full week on both stores; the PDF's text is read back
with pypdf and its first two pages drawn to ``test-artifacts/``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from gis_grid.cases.rules import Rules
from gis_grid.cli import app as cli
from gis_grid.domain.errors import InputError, NotFoundError, TopologyError
from gis_grid.domain.messages import render
from gis_grid.review.week import HEADLINE, TOP, Week, weekly_review

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
COMMUNITY = "211281001007"


def _now():
    from gis_grid.cases.records import now

    return now()


@pytest.fixture(scope="module")
def reviewed_file(tmp_path_factory, demo_file, demo_data) -> Path:
    """The demo with its layers (cases, cameras, lamps, streets, cleaning) in a GeoPackage.

    As ``gis-grid demo`` does, the cases past their deadline are swept (escalated).
    """
    from gis_grid.cases.service import sweep
    from gis_grid.sources.demo import add_layers
    from gis_grid.store.gpkg import GeoPackageStore

    path = tmp_path_factory.mktemp("review") / "demo.gpkg"
    shutil.copy(demo_file, path)
    with GeoPackageStore(path) as store:
        add_layers(store, demo_data)
        sweep(store, rules=Rules.load())
    return path


@pytest.fixture(scope="module")
def week() -> Week:
    return Week.last_full(_now())


@pytest.fixture(scope="module")
def review(reviewed_file, week):
    from gis_grid.store import open_store

    with open_store(reviewed_file) as store:
        yield weekly_review(store, week)


@pytest.fixture(scope="module")
def pdf(review) -> bytes:
    from gis_grid.review.render import render_pdf

    return render_pdf(review, "zh")


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


# -- weeks -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2026-47", "W47", "2026-W", "47/2026", "", "2026-W47-1"])
def test_a_malformed_week_is_refused_saying_how_to_write_one(text):
    with pytest.raises(InputError) as e:
        Week.parse(text)
    assert "2026-W47" in str(e.value) and "2026-W47" in render(e.value.message, "zh")


def test_a_week_the_year_does_not_have_is_refused():
    assert Week.parse("2026-W53").end == dt.datetime(2027, 1, 4)  # 2026 has 53 ISO weeks
    with pytest.raises(InputError, match="no week 2025-W53"):
        Week.parse("2025-W53")
    with pytest.raises(InputError, match="no week 2026-W00"):
        Week.parse("2026-W00")


def test_weeks_run_monday_to_monday_and_the_last_full_one_has_ended():
    w = Week.parse("2026-w1")
    assert (w.start, w.end) == (dt.datetime(2025, 12, 29), dt.datetime(2026, 1, 5))
    assert str(w.shift(-1)) == "2025-W52" and str(w.shift(52)) == "2026-W53"
    sunday_night = dt.datetime(2026, 11, 29, 23, 59)
    assert str(Week.last_full(sunday_night)) == "2026-W47"  # W48 is not over yet
    assert str(Week.last_full(dt.datetime(2026, 11, 30, 0, 0))) == "2026-W48"


def test_a_week_that_has_not_begun_is_refused(reviewed_file):
    from gis_grid.store import open_store

    with open_store(reviewed_file) as store, pytest.raises(InputError, match="has not begun"):
        weekly_review(store, Week.of(_now().date()).shift(2))


# -- the numbers -------------------------------------------------------------------------


def test_the_headline_equals_the_cli_indicators_of_the_same_week(review, reviewed_file, week):
    last_day = (week.end - dt.timedelta(days=1)).date()
    result = CliRunner().invoke(
        cli,
        [
            "indicators", str(reviewed_file), "--by", "community", "--from",
            str(week.start.date()), "--to", str(last_day), "--now",
            review.as_of.strftime("%Y-%m-%dT%H:%M"), "--format", "json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["rows"]
    now = review.this_week
    assert now["reported"] > 100  # the demo's background alone is ~200 a week
    for key in HEADLINE:
        assert now[key] == pytest.approx(row[key]), key
    # the JSON the report command prints carries the same numbers
    result = CliRunner().invoke(
        cli, ["report", str(reviewed_file), "--week", str(week), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)["headline"]["this_week"]
    assert all(printed[k] == pytest.approx(now[k]) for k in HEADLINE)


def test_the_categories_of_each_week_add_up_to_its_reported_cases(review):
    per_week = review.categories.sum(axis=1).to_numpy()
    assert per_week.tolist() == review.headline["reported"].astype(int).tolist()
    assert len(per_week) == 12 and review.categories.index[-1] == str(review.week)
    rises = review.rises
    assert rises["change"].is_monotonic_decreasing  # the category that rose most first
    this = review.categories.iloc[-1]
    mean = review.categories.iloc[-5:-1].mean()
    top = rises.iloc[0]
    assert top["change"] == pytest.approx(round(this[top["category"]] - mean[top["category"]], 1))


def test_hot_spots_are_the_planted_courtyards_each_with_its_person(review):
    from layers.incidents import DEMO_CLUSTERS

    rows = review.hotspots
    assert review.hotspot_summary["pai"] > 1 and len(rows) >= len(DEMO_CLUSTERS)
    assert rows["incidents"].is_monotonic_decreasing
    yards = sorted(review.grids.loc[review.grids["level"] == "courtyard", "code"])
    planted = {yards[i] for i in DEMO_CLUSTERS}
    busiest = set(rows["grid_code"].head(len(DEMO_CLUSTERS) + 1))
    assert planted <= busiest, (planted, busiest)
    assert rows["staff_name"].notna().all() and rows["staff_phone"].notna().all()
    assert rows.loc[rows["grid_code"].isin(planted), "persistent"].gt(0).all()


def test_holes_are_ranked_by_the_incidents_they_hold_and_each_has_an_owner(review):
    holes = review.holes
    assert {"cctv", "dark_street"} <= set(holes["kind"])
    held = holes["incidents"].dropna().astype(int).tolist()
    assert held == sorted(held, reverse=True) and held[0] > 0
    assert holes["staff_name"].notna().all()
    assert set(review.hole_summary) == {"cctv", "lighting", "cleaning", "staff"}
    dark = holes.loc[holes["kind"] == "dark_street"]
    assert dark["street"].notna().all() and not dark["street"].str.match(r"S\d+$").any()


def test_escalated_cases_carry_the_grid_that_owns_them_now(review):
    esc = review.escalated
    assert len(esc) and (esc["escalation"] >= 1).all()
    assert esc["owner_name"].notna().all() and esc["staff_name"].notna().all()
    # escalated up: the owner is an ancestor of the deepest grid the case lies in
    levels = ["unit_code", "building_code", "courtyard_code", "area_code", "community_code"]
    deepest = esc[levels].bfill(axis=1).iloc[:, 0].astype(str)
    owner = esc["owner_code"].astype(str)
    assert all(d.startswith(o) and d != o for d, o in zip(deepest, owner, strict=True))


def test_the_ranking_puts_the_best_on_time_rate_first_among_grids_with_enough_cases(review):
    from gis_grid.review.week import MIN_RANKED

    ranking = review.ranking
    ranked = ranking.loc[ranking["rank"].notna()]
    assert len(ranking) == 8 and ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert (ranked["reported"] >= MIN_RANKED).all()
    assert (ranking.loc[ranking["rank"].isna(), "reported"] < MIN_RANKED).all()
    assert ranking["rank"].iloc[: len(ranked)].notna().all()  # the unranked come last
    rates = ranked["on_time_rate"].astype(float).tolist()
    assert rates == sorted(rates, reverse=True)
    assert ranking["staff_name"].notna().all()


# -- the report --------------------------------------------------------------------------


def test_the_pdf_holds_every_owner_of_a_hot_spot_and_every_headline_number(review, pdf):
    from gis_grid.review.render import _number

    assert pdf.startswith(b"%PDF") and len(pdf) < 2_000_000
    text = re.sub(r"\s+", "", _pdf_text(pdf))
    for name in review.hotspots["staff_name"].head(TOP):
        assert name in text, name
    for key in HEADLINE:
        assert _number(review.this_week[key], key, "zh").replace(" ", "") in text, key
    assert review.scope.name in text and str(review.week) in text
    pages = len(__import__("pypdf").PdfReader(io.BytesIO(pdf)).pages)
    assert pages >= 5 and f"2/{pages}" in text and f"{pages}/{pages}" in text  # numbered
    _draw_pages(pdf, "review-pdf")


def _draw_pages(pdf: bytes, name: str, pages: int = 2) -> None:
    import pypdfium2

    ARTIFACTS.mkdir(exist_ok=True)
    document = pypdfium2.PdfDocument(pdf)
    for i in range(min(pages, len(document))):
        image = document[i].render(scale=1.4).to_pil()
        image.save(ARTIFACTS / f"{name}-page-{i + 1}.png")


def test_the_english_report_speaks_english(review):
    from gis_grid.review.render import render_pdf

    text = _pdf_text(render_pdf(review, "en"))
    assert "Weekly grid review" in text and "Hot spots" in text and "Coverage holes" in text
    assert "热点" not in text and "结案率" not in text


def test_the_html_holds_everything_it_shows(review):
    from gis_grid.review.render import render_html

    html = render_html(review, "zh")
    assert html.count("data:image/") >= 8  # six sparklines, the chart, two maps
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html)
    assert "@import" not in html and "url(" not in html and "<script" not in html
    linked = render_html(review, "zh", link_base="http://127.0.0.1:8000/")
    links = re.findall(r'href="([^"]+)"', linked)
    assert links and all(re.match(r"http://127\.0\.0\.1:8000/map/\w+#at=[\d.]+,[\d.]+,\d+$", u)
                         for u in links)  # fmt: skip


def test_the_cli_writes_the_report_and_refuses_bad_input(reviewed_file, week, tmp_path):
    runner = CliRunner()
    out = tmp_path / "w.html"
    result = runner.invoke(
        cli, ["report", str(reviewed_file), "--week", str(week), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!doctype html>") and "宏大社区" in result.stdout
    for args, words in [
        (["--week", "2026-47"], "is not a week"),
        (["--community", "211281001099"], "no community has the code 211281001099"),
        (["--street", "211281009"], "no street has the code 211281009"),
        (["--out", str(tmp_path / "w.docx")], "written as .html or .pdf"),
        (["--lang", "fr"], "zh or en"),
    ]:
        result = runner.invoke(cli, ["report", str(reviewed_file), *args])
        assert result.exit_code == 1 and words in result.output, (args, result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.html"]  # nothing half-written


def test_a_week_with_no_incidents_gives_a_report_that_says_so(reviewed_file):
    from gis_grid.review.render import render_pdf
    from gis_grid.store import open_store

    with open_store(reviewed_file) as store:
        quiet = weekly_review(store, "2025-W10")
    assert quiet.empty and quiet.this_week["reported"] == 0 and not len(quiet.hotspots)
    text = re.sub(r"\s+", "", _pdf_text(render_pdf(quiet, "zh")))
    assert "本周没有上报事件" in text


def test_a_street_and_an_unknown_community(reviewed_file, week):
    from gis_grid.store import open_store

    with open_store(reviewed_file) as store:
        street = weekly_review(store, week, street=COMMUNITY[:9], maps=False)
        assert street.scope.kind == "street" and street.scope.codes == [COMMUNITY]
        assert street.this_week == pytest.approx(weekly_review(store, week, maps=False).this_week)
        with pytest.raises(NotFoundError) as e:
            weekly_review(store, week, community="211281001099")
        assert "211281001007" in str(e.value)  # it says which communities there are
        with pytest.raises(InputError, match="not both"):
            weekly_review(store, week, community=COMMUNITY, street=COMMUNITY[:9])


def test_a_boundary_edit_shows_in_the_weeks_changes(reviewed_file, tmp_path):
    import sqlite3

    from gis_grid.planning.edits import compare, move
    from gis_grid.store import open_store

    path = tmp_path / "edited.gpkg"
    shutil.copy(reviewed_file, path)
    with sqlite3.connect(path) as conn:  # the grids were imported long before this week
        conn.execute("UPDATE gis_grid_revisions SET created_at = '2026-01-05T02:00:00Z'")
    now = _now()
    with open_store(path) as store:
        yards = store.grids(level="courtyard", geometry=False)["code"].sort_values()
        areas = sorted(store.grids(level="area", geometry=False)["code"])
        before = len(store.revisions())
        # the first courtyard that borders another area moves there (the rest are refused)
        for yard, to in ((y, a) for y in yards for a in areas if not y.startswith(a)):
            try:
                move(store, [yard], to, author="规划员")
                break
            except TopologyError:
                continue
        revision = int(store.revisions()["id"].max())
        this = weekly_review(store, Week.of(now.date()), now=now, maps=False)
    assert revision > before and this.in_progress
    assert this.revisions["id"].tolist() == [revision]
    (change,) = this.changes
    with open_store(path) as store:
        expected = compare(store, COMMUNITY, revision - 1, revision)
    assert change["households_moved"] == expected["households_moved"] > 0
    assert change["grids"].get("reshaped", 0) >= 2  # the two areas


# -- both stores --------------------------------------------------------------------------


@pytest.mark.slow
def test_postgis_gives_the_same_review(reviewed_file, review, postgis_template, week, demo_data):
    from gis_grid.cases.service import sweep
    from gis_grid.sources.demo import add_layers
    from gis_grid.store import ChangeSet, open_store

    with open_store(postgis_template()) as store:
        store.apply(ChangeSet(demo_data.grids, demo_data.staff, demo_data.assignments))
        add_layers(store, demo_data)
        sweep(store, rules=Rules.load(), received=review.generated_at)
        other = weekly_review(store, week, now=review.generated_at, maps=False)
    mine = review.headline.set_index("week")
    theirs = other.headline.set_index("week")
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False, atol=1e-9)
    cols = ["grid_code", "cells", "incidents", "hot", "new", "persistent", "fading", "staff_name"]
    pd.testing.assert_frame_equal(review.hotspots[cols], other.hotspots[cols], check_dtype=False)
    assert review.escalated["id"].tolist() == other.escalated["id"].tolist()
    assert review.ranking["code"].tolist() == other.ranking["code"].tolist()


def test_the_api_serves_the_review_to_those_who_read_every_grid(reviewed_file, tmp_path, review):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings
    from gis_grid.store import open_store

    path = tmp_path / "served.gpkg"
    shutil.copy(reviewed_file, path)
    with open_store(path) as store:
        lead = store.add_user("lead", "领导", "leadership")
        area = sorted(store.grids(level="area", geometry=False)["code"])[0]
        worker_id = store.assignments(grid_codes=[area])["staff_id"].iloc[0]
        worker = store.add_user("worker", "网格员", "grid_worker", worker_id)
    app = create_app(Settings(database_url=str(path), sweep_seconds=0, warm_tiles=False))
    with TestClient(app) as c:
        auth = {"Authorization": f"Bearer {lead}"}
        data = c.get(f"/api/review/{review.week}.json", headers=auth).json()
        assert data["headline"]["this_week"]["reported"] == review.this_week["reported"]
        pdf = c.get(f"/api/review/{review.week}.pdf", headers=auth)
        assert pdf.headers["content-type"] == "application/pdf"
        assert "网格化管理周报" in _pdf_text(pdf.content)  # Chinese unless asked otherwise
        english = c.get(f"/api/review/{review.week}.pdf?lang=en", headers=auth).content
        assert "Weekly grid review" in _pdf_text(english)
        assert c.get("/api/review/2026-47.json", headers=auth).status_code == 422
        unknown = c.get("/api/review/last.json?community=211281001099", headers=auth)
        assert unknown.status_code == 404 and "211281001007" in unknown.json()["detail"]
        refused = c.get("/api/review/last.json", headers={"Authorization": f"Bearer {worker}"})
        assert refused.status_code == 403

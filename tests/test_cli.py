"""The command line as a user runs it: outputs, exit codes, errors, round trips."""

from __future__ import annotations

import json
import shutil

import pyogrio
import pytest
import shapely
from shapely import box
from typer.testing import CliRunner

from gis_grid.cli import app
from tests.conftest import COMMUNITY, digest, grids

runner = CliRunner()


def run(*args: str, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


@pytest.fixture
def demo_copy(tmp_path, demo_file):
    path = tmp_path / "demo.gpkg"
    shutil.copy(demo_file, path)
    return path


def test_demo_builds_a_clean_store(tmp_path):
    out = tmp_path / "d" / "demo.gpkg"
    result = run("demo", "--out", out)
    assert "validation: 0 errors, 0 warnings" in result.stdout
    assert "宏大社区" in result.stdout and "3,211" in result.stdout
    stats = json.loads(run("stats", out, "--format", "json").stdout)
    assert stats["grids"]["building"] == 114 and stats["residents"] == 8018
    # one web user per role, each token printed once and working
    import re

    from gis_grid.store.gpkg import GeoPackageStore

    tokens = dict(re.findall(r"^\s+(\w+)\s+demo-[\w-]+\s+(\S+)$", result.stdout, re.M))
    assert set(tokens) == {
        "admin",
        "planner",
        "supervisor",
        "leadership",
        "grid_worker",
        "reporter",
    }
    with GeoPackageStore(out) as store:
        assert store.user_of_token(tokens["grid_worker"])["staff_id"]
    # running it again replaces the store with the same data
    run("demo", "--out", out)
    assert json.loads(run("stats", out, "-f", "json").stdout) == stats


def test_validate_json_and_exit_codes(tmp_path, demo_copy):
    clean = json.loads(run("validate", demo_copy, "--format", "json").stdout)
    assert clean["problems"] == [] and clean["summary"]["errors"] == 0
    # a store with a planted overlap and a gap
    store = tmp_path / "bad.gpkg"
    layout = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{COMMUNITY}001": box(0, 0, 55, 100),
            f"c{COMMUNITY}002": box(50, 0, 100, 90),
        }
    )
    for level, rows in (("community", layout.iloc[:1]), ("area", layout.iloc[1:])):
        path = tmp_path / f"{level}.geojson"
        rows.to_file(path)
        run("import", store, path, "--level", level, "--accept-problems")
    result = run("validate", store, "--format", "json", code=1)
    problems = json.loads(result.stdout)["problems"]
    got = sorted(
        (p["kind"], tuple(p["codes"]), round(p["area_m2"]))
        for p in problems
        if p["severity"] == "error"
    )
    assert got == [
        ("gap", (COMMUNITY,), 450),
        ("overlap", (f"{COMMUNITY}001", f"{COMMUNITY}002"), 450),
    ]
    assert {p["kind"] for p in problems} == {"gap", "overlap", "no_staff"}
    assert set(problems[0]) >= {"kind", "codes", "area_m2", "detail"}
    # problems with geometry for QGIS
    run("validate", store, "--problems-out", tmp_path / "p.geojson", code=1)
    assert len(pyogrio.read_dataframe(tmp_path / "p.geojson")) == len(problems)


def test_lookup_json_and_outside(demo_copy):
    units = pyogrio.read_dataframe(demo_copy, layer="grids", where="level = 'unit'")
    p = units.geometry.iloc[7].representative_point()
    found = json.loads(run("lookup", demo_copy, "--lon", p.x, "--lat", p.y, "-f", "json").stdout)
    assert [g["level"] for g in found["grids"]] == [
        "community",
        "area",
        "courtyard",
        "building",
        "unit",
    ]
    assert found["grids"][-1]["code"] == units["code"].iloc[7]
    assert all(g["staff"] and g["staff"][0]["phone"] for g in found["grids"])
    result = run("lookup", demo_copy, "--lon", 100, "--lat", 30)
    assert "lies in no grid" in result.stdout
    assert (
        json.loads(run("lookup", demo_copy, "--lon", 100, "--lat", 30, "-f", "json").stdout)[
            "grids"
        ]
        == []
    )


def test_lookup_of_a_gaode_click(demo_copy):
    from gis_grid.geo.crs import wgs84_to_gcj02

    units = pyogrio.read_dataframe(demo_copy, layer="grids", where="level = 'unit'")
    p = units.geometry.iloc[3].representative_point()
    gx, gy = wgs84_to_gcj02(p.x, p.y)
    found = json.loads(
        run(
            "lookup",
            demo_copy,
            "--lon",
            float(gx),
            "--lat",
            float(gy),
            "--crs",
            "gcj02",
            "-f",
            "json",
        ).stdout
    )
    assert found["grids"][-1]["code"] == units["code"].iloc[3]


def test_staff_coverage(demo_copy):
    worker = json.loads(run("staff", demo_copy, "S0000003", "-f", "json").stdout)
    assert worker["role"] == "grid_worker" and worker["counts"]["area"] == 1
    assert 300 <= worker["households"] <= 500 and worker["counts"]["building"] > 0
    assert "网格员" in run("staff", demo_copy, "S0000003").stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("lookup", "{store}", "--lon", "42.45", "--lat", "123.56"), "look swapped"),
        (("staff", "{store}", "NOBODY"), "no staff member"),
        (("stats", "{tmp}/missing.gpkg"), "no store at"),
        (("import", "{store}", "{tmp}/none.geojson", "--level", "area"), "no such file"),
        (("import", "{store}", "{tmp}/x.txt", "--level", "area"), "unknown file type"),
        (("export", "{store}", "{tmp}/x.kml"), "unknown file type"),
        (("import", "{store}", "{tmp}/a.geojson", "--level", "district"), "unknown grid level"),
        (("stats", "mysql://localhost/x"), "unknown store URL scheme"),
        (("stats", "postgresql://nobody@127.0.0.1:5999/x"), "cannot connect to"),
        (("migrate", "{store}"), "for PostGIS stores"),
        (("copy", "{store}", "{store}"), "is not empty"),
    ],
)
def test_user_errors_are_one_clear_line(tmp_path, demo_copy, args, words):
    (tmp_path / "x.txt").write_text("hello")
    grids(**{f"c{COMMUNITY}009": box(0, 0, 1, 1)}).to_file(tmp_path / "a.geojson")
    before = digest(demo_copy)
    result = run(*[a.format(store=demo_copy, tmp=tmp_path) for a in args], code=1)
    assert result.stderr.startswith("error:") and words in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert digest(demo_copy) == before


def test_oversized_files_are_refused_before_reading(tmp_path):
    from gis_grid.domain.errors import InputError
    from gis_grid.grids.files import read_grid_file

    path = tmp_path / "big.geojson"
    grids(**{f"c{COMMUNITY}": box(0, 0, 100, 100)}).to_file(path)
    with pytest.raises(InputError, match="over the"):
        read_grid_file(path, max_bytes=100)


def test_failed_imports_leave_the_store_unchanged(tmp_path, demo_copy):
    before = digest(demo_copy)
    # overlapping a sibling courtyard, then duplicate codes, then no CRS in a CSV
    yards = pyogrio.read_dataframe(demo_copy, layer="grids", where="level = 'courtyard'")
    bad = yards.iloc[:1].copy()
    bad["code"] = bad["code"].str.slice(0, 15) + "099"
    bad.geometry = bad.geometry.translate(0.0001, 0)
    bad[["code", "geometry"]].to_file(tmp_path / "overlap.geojson")
    result = run("import", demo_copy, tmp_path / "overlap.geojson", "--level", "courtyard", code=1)
    assert "topology problems" in result.stderr and "overlap by" in result.stderr
    yards[["code", "geometry"]].iloc[:3].to_file(tmp_path / "dup.geojson")
    assert (
        "already in the store"
        in run("import", demo_copy, tmp_path / "dup.geojson", "--level", "courtyard", code=1).stderr
    )
    polygon = '"POLYGON ((0 0, 1 0, 1 1, 0 0))"'
    (tmp_path / "g.csv").write_text(f"code,wkt\n{COMMUNITY}099,{polygon}\n")
    assert "--crs" in run("import", demo_copy, tmp_path / "g.csv", "--level", "area", code=1).stderr
    assert digest(demo_copy) == before


@pytest.mark.parametrize("ext", ["geojson", "gpkg", "shp", "csv"])
def test_export_then_import_gives_the_same_grids(tmp_path, demo_copy, ext):
    fresh = tmp_path / "fresh.gpkg"
    for level in ("community", "area", "courtyard", "building", "unit"):
        path = tmp_path / f"{level}.{ext}"
        run("export", demo_copy, path, "--level", level)
        extra = ["--crs", "EPSG:4326"] if ext == "csv" else []
        run("import", fresh, path, "--level", level, *extra)
    a = pyogrio.read_dataframe(demo_copy, layer="grids").sort_values("code").reset_index()
    b = pyogrio.read_dataframe(fresh, layer="grids").sort_values("code").reset_index()
    assert a["code"].tolist() == b["code"].tolist()
    for col in ("parent_code", "level", "name", "households", "residents", "special_care"):
        assert a[col].fillna("").tolist() == b[col].fillna("").tolist(), col
    assert shapely.equals(a.geometry.to_numpy(), b.geometry.to_numpy()).all()


def test_import_without_codes_numbers_by_location(tmp_path):
    store = tmp_path / "s.gpkg"
    base = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{COMMUNITY}001": box(0, 0, 50, 100),
            f"c{COMMUNITY}002": box(50, 0, 100, 100),
        }
    )
    base.iloc[:1].to_file(tmp_path / "c.geojson")
    base.iloc[1:].to_file(tmp_path / "a.geojson")
    run("import", store, tmp_path / "c.geojson", "--level", "community")
    run("import", store, tmp_path / "a.geojson", "--level", "area")
    # three courtyards without codes: two in area 001 (north one first), one in area 002
    yards = grids(c1=box(10, 10, 40, 30), c2=box(10, 60, 40, 90), c3=box(60, 40, 90, 60))
    yards = yards.drop(columns="code").assign(名称=["南院", "北院", "东院"])
    yards.to_file(tmp_path / "y.geojson")
    run("import", store, tmp_path / "y.geojson", "--level", "院落")
    out = pyogrio.read_dataframe(store, layer="grids", where="level = 'courtyard'")
    assert dict(zip(out["name"], out["code"], strict=True)) == {
        "北院": f"{COMMUNITY}001001",
        "南院": f"{COMMUNITY}001002",
        "东院": f"{COMMUNITY}002001",
    }
    # one more later continues the numbering; one outside every area is refused
    grids(c1=box(10, 40, 40, 50)).drop(columns="code").to_file(tmp_path / "y2.geojson")
    run("import", store, tmp_path / "y2.geojson", "--level", "courtyard")
    assert f"{COMMUNITY}001003" in set(
        pyogrio.read_dataframe(store, layer="grids", where="level = 'courtyard'")["code"]
    )
    grids(c1=box(300, 300, 310, 310)).drop(columns="code").to_file(tmp_path / "far.geojson")
    result = run("import", store, tmp_path / "far.geojson", "--level", "courtyard", code=1)
    assert "lie in no area" in result.stderr


def test_import_staff_csv(tmp_path, demo_copy):
    csv = tmp_path / "staff.csv"
    csv.write_text(
        "staff_id,name,role,phone,grid_code,start_date\n"
        f"N0001,张新,网格员,13900000001,{COMMUNITY}001,2025-01-01\n"
        f"N0001,张新,网格员,13900000001,{COMMUNITY}002,2025-01-01\n"
    )
    result = run("import-staff", demo_copy, csv)
    assert "1 staff and 2 assignments" in result.stdout
    covered = json.loads(run("staff", demo_copy, "N0001", "-f", "json").stdout)
    assert covered["counts"]["area"] == 2
    before = digest(demo_copy)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"staff_id,name,grid_code\nN0002,李,{COMMUNITY}999\n")
    assert "unknown grids" in run("import-staff", demo_copy, bad, code=1).stderr
    assert digest(demo_copy) == before


@pytest.mark.parametrize(
    ("lang", "says"),
    [
        ("zh", "当前为“上报”，现在不能结案"),
        ("en", "is reported (上报): it cannot be closed now"),
    ],
)
def test_a_refused_step_is_said_in_the_users_language(demo_copy, monkeypatch, lang, says):
    """GIS_GRID_LANG (else the locale) picks the language of a refusal; nothing is written."""
    from gis_grid.store.gpkg import GeoPackageStore

    monkeypatch.setenv("GIS_GRID_LANG", lang)
    with GeoPackageStore(demo_copy) as store:
        x, y = store.grids(level="unit", geometry=True).geometry.iloc[0].representative_point().xy
    report = run(
        "case", "report", demo_copy, "--lon", x[0], "--lat", y[0], "--category", "environment",
        "--format", "json",
    )  # fmt: skip
    case = json.loads(report.stdout)["id"]
    before = digest(demo_copy)
    refused = run("case", "close", demo_copy, case, code=1)
    assert says in " ".join(refused.stderr.split()) and digest(demo_copy) == before


def test_the_cli_speaks_chinese_when_the_user_does(demo_copy, monkeypatch):
    """GIS_GRID_LANG=zh (or a Chinese locale): tables, summaries and refusals in Chinese."""
    import re

    monkeypatch.setenv("GIS_GRID_LANG", "zh")
    said = run("validate", str(demo_copy)).stdout
    assert "0 个错误，0 个警告" in said and "errors" not in said
    said = run("lookup", str(demo_copy), "--lon", "1", "--lat", "1").stdout
    assert "不在" in said and "任何网格内" in said and "lies in no grid" not in said
    chain = run("staff", str(demo_copy), "S0000003").stdout
    assert "编码" in chain and "名称" in chain
    refused = run("report", str(demo_copy), "--week", "2026-47", code=1).output
    assert refused.splitlines()[-1].startswith("错误") and "不是周次" in refused
    words = set(re.findall(r"[A-Za-z]{3,}", said.replace(str(demo_copy), "")))
    assert not words, words


def test_serve_takes_a_tile_replica_for_a_postgresql_store_only(demo_copy):
    result = run("serve", demo_copy, "--tile-store", "postgresql://replica/grid", code=1)
    assert "read replica is for a PostgreSQL store only" in result.stderr
    assert "serving" not in result.stderr  # refused before anything claims to serve
    assert "GIS_GRID_TILE_DATABASE_URL" not in __import__("os").environ

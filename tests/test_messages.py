"""The one catalogue of words (gis_grid/domain/messages.json): complete in both languages.

Every key a page asks for is there, in Chinese and in English, and the names
of domain things (grid levels, staff roles, case categories, statuses,
steps) read as the domain model names them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gis_grid.cases.loop import ACTIONS, STATUSES
from gis_grid.domain.access import AccessRole
from gis_grid.domain.model import Level, Role
from layers.incidents import CATEGORIES

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "api" / "static"
CATALOGUE = json.loads((ROOT / "gis_grid" / "domain" / "messages.json").read_text(encoding="utf-8"))
SCRIPTS = {p.name: p.read_text(encoding="utf-8") for p in STATIC.glob("*.js")}
CJK = re.compile(r"[\u3400-\u9fff]")


@pytest.mark.parametrize(
    "section",
    [
        "messages",
        "problems",
        "doings",
        "categories",
        "staff_roles",
        "access_roles",
        "cli",
        "columns",
        "review",
    ],
)
def test_every_entry_has_chinese_and_english(section):
    for key, pair in CATALOGUE[section].items():
        assert isinstance(pair, list) and len(pair) == 2, key
        zh, en = pair
        assert zh.strip() and en.strip(), f"{section}.{key} is empty in a language"
        assert CJK.search(zh), f"{section}.{key}: the Chinese {zh!r} has no Chinese in it"
        # a refusal names the Chinese term of a step in brackets: dispatch (派遣)
        plain = re.sub(r"\([^)]*\)", "", en) if section in ("problems", "cli", "review") else en
        assert not CJK.search(plain), f"{section}.{key}: the English {en!r} has Chinese in it"


def test_every_key_the_pages_ask_for_is_in_the_catalogue():
    asked = set()
    for name, text in SCRIPTS.items():
        asked |= {(name, k) for k in re.findall(r"\bt[f]?\('([a-z0-9_]+)'", text)}
        asked |= {(name, k) for k in re.findall(r"\bboth\('([a-z0-9_]+)'", text)}
    missing = sorted(f"{name}: {k}" for name, k in asked if k not in CATALOGUE["messages"])
    assert asked and not missing, missing


def test_keys_the_pages_compute_are_there_too():
    """Levels, statuses, steps and trends come from data: t(level), t(c.status), t(action)."""
    computed = {lv.key for lv in Level} | set(STATUSES) | set(ACTIONS)
    computed |= {"new", "persistent", "fading", "hot", "cold", "street"}
    assert not computed - set(CATALOGUE["messages"]), computed - set(CATALOGUE["messages"])


def test_domain_names_read_as_the_domain_names_them():
    messages = CATALOGUE["messages"]
    assert {lv.key: messages[lv.key][0] for lv in Level} == {lv.key: lv.zh for lv in Level}
    assert {r.value: CATALOGUE["staff_roles"][r.value][0] for r in Role} == {
        r.value: r.zh for r in Role
    }
    assert {k: v[0] for k, v in CATALOGUE["categories"].items()} == dict(CATEGORIES)
    assert set(CATALOGUE["access_roles"]) == {r.value for r in AccessRole}


def test_placeholders_match_between_languages():
    for key, (zh, en) in CATALOGUE["messages"].items():
        assert sorted(re.findall(r"\{(\w+)\}", zh)) == sorted(re.findall(r"\{(\w+)\}", en)), key


def test_every_refusal_says_itself_in_both_languages():
    """Each problem formats in Chinese and English with the values its raise site gives."""
    from collections import defaultdict

    from gis_grid.domain.messages import say

    for key, (zh, en) in CATALOGUE["problems"].items():
        names = set(re.findall(r"\{(\w+)\}", zh)) | set(re.findall(r"\{(\w+)\}", en))
        said = say(key, **{n: f"<{n}>" for n in names})
        assert str(said) == en.format_map(defaultdict(str, {n: f"<{n}>" for n in names}))
        assert CJK.search(said.in_language("zh")), key


def test_every_doing_a_role_may_be_refused_is_worded_in_both_languages():
    """check_role(…, "what") words its refusal from the catalogue's doings: none missing."""
    root = Path(__file__).resolve().parent.parent
    asked = set()
    for path in [*root.joinpath("api").rglob("*.py"), *root.joinpath("gis_grid").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for call in re.finditer(r"(?<!def )check_role\(", text):
            depth, end = 1, call.end()
            while depth:  # to the call's closing bracket
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            asked.add(re.findall(r'"([^"]+)"', text[call.end() : end])[-1])  # the last argument
    assert len(asked) >= 10 and not asked - set(CATALOGUE["doings"]), asked - set(
        CATALOGUE["doings"]
    )


def test_an_import_refused_for_its_topology_says_why_in_chinese(tmp_path):
    """The import refusals were English only: overlapping and gapped areas, in Chinese."""
    from shapely import box

    from gis_grid.domain.errors import TopologyError
    from gis_grid.domain.messages import render
    from gis_grid.store import ChangeSet, open_store
    from tests.conftest import COMMUNITY, grids

    frame = grids(
        **{
            f"c{COMMUNITY}": box(0, 0, 100, 100),
            f"c{COMMUNITY}001": box(0, 0, 60, 100),  # overlaps the next by 10 m x 100 m
            f"c{COMMUNITY}002": box(50, 0, 90, 100),  # and leaves 10 m x 100 m uncovered
        }
    )
    with open_store(tmp_path / "s.gpkg", create=True) as store:
        with pytest.raises(TopologyError) as e:
            store.apply(ChangeSet(frame))
    en, zh = str(e.value), render(e.value.message, "zh")
    assert "overlap by" in en and "nothing was imported" in en
    assert "重叠" in zh and "未导入任何内容" in zh and "平方米" in zh
    words = set(re.findall(r"[A-Za-z]+", zh)) - {"accept", "problems"}  # --accept-problems
    assert not words, words


def test_a_file_s_bad_rows_are_listed_in_chinese_too():
    """Row problems (missing, out of range, unknown choices, no coordinates) were English only."""
    import geopandas as gpd
    import shapely

    from gis_grid.domain.errors import RowError
    from gis_grid.domain.messages import render
    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer

    schema = get_layer("incidents").schema
    frame = gpd.GeoDataFrame(
        {
            "id": ["E1", "E2", "E2"],
            "reported_at": ["2026-11-01T08:00", "01/02/2026", "2026-11-02"],
            "category": ["其他", "夜市", "other"],
            "satisfaction": [9, None, None],
        },
        geometry=[shapely.Point(123.56, 42.45), None, shapely.Point(123.56, 42.45)],
        crs="EPSG:4326",
    )
    with pytest.raises(RowError) as e:
        normalise_features(schema, frame)
    en, zh = str(e.value), render(e.value.message, "zh")
    assert "3 rows of incidents" in en and "is above the maximum 5" in en
    for words in ("第 1 行", "大于最大值 5", "有歧义", "不在可选值中", "没有坐标", "出现不止一次"):
        assert words in zh, (words, zh)
    assert "未写入任何内容" in zh


def test_every_refusal_is_said_from_the_catalogue():
    """A raise with an English f-string reads in English on the Chinese page: none is left."""
    import ast

    root = Path(__file__).resolve().parent.parent
    # exceptions that are not refusals a person reads (programming errors, exit codes,
    # Open311's own status codes), and the helpers that say a key themselves
    plain = {"ValueError", "TypeError", "RuntimeError", "KeyError", "Exit", "Open311Error"}
    sayers = {"say", "said_of", "_problem", "row_error", "stale_case", "Revision"}
    english = []
    for package in ("gis_grid", "layers", "api", "tiles"):
        for path in root.joinpath(package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                    continue
                call = node.exc
                name = getattr(call.func, "id", getattr(call.func, "attr", ""))
                if name in plain or name in sayers or not call.args:
                    continue
                first = call.args[0]
                if isinstance(first, ast.JoinedStr | ast.Constant | ast.BinOp):
                    english.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not english, english

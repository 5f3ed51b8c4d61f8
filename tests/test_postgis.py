"""PostGIS beyond the contract: same answers as the embedded store, schema, crashes, reconnects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely

from gis_grid.domain.errors import OrphanError, StoreError
from gis_grid.store import ChangeSet, open_store
from gis_grid.store.postgis import MIGRATIONS, SCHEMA_REVISION, migrate
from tests.conftest import seeded, snapshot


@pytest.fixture
def pg_url(postgis_template) -> str:
    return postgis_template()


def _perturbed(demo_data):
    """The demo with planted problems: grown courtyards, shrunken units, a shifted area."""
    grids = demo_data.grids.copy()
    geoms = grids.geometry.to_numpy().copy()
    levels = grids["level"].to_numpy()
    rng = np.random.default_rng(11)
    for level, factor, n in (("courtyard", 1.25, 3), ("unit", 0.85, 4)):
        rows = rng.choice(np.flatnonzero(levels == level), n, replace=False)
        geoms[rows] = [shapely.affinity.scale(g, factor, factor) for g in geoms[rows]]
    area = np.flatnonzero(levels == "area")[2]
    geoms[area] = shapely.affinity.translate(geoms[area], 0.00005, 0)  # ~4 m east
    grids["geometry"] = geoms
    return grids


def _as_records(problems: pd.DataFrame) -> list[tuple]:
    return sorted(
        (r.kind, tuple(r.codes), round(float(r.area_m2), 1) if r.area_m2 == r.area_m2 else None)
        for r in problems.itertuples()
    )


def test_both_stores_give_the_same_answers(tmp_path, demo_data, pg_url):
    """The demo and a perturbed copy: identical validation and identical lookups."""
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = demo_data.grids.total_bounds
    x, y = rng.uniform(minx, maxx, 10_000), rng.uniform(miny, maxy, 10_000)
    perturbed = _perturbed(demo_data)
    for name, frame in (("clean", demo_data.grids), ("perturbed", perturbed)):
        url = (
            pg_url
            if name == "clean"
            else pg_url.rsplit("/", 1)[0] + "/" + (pg_url.rsplit("/", 1)[1] + "_p")
        )
        if name == "perturbed":
            from tests.conftest import _admin

            _admin(
                f"CREATE DATABASE {url.rsplit('/', 1)[1]} TEMPLATE "
                f"{pg_url.rsplit('/', 1)[1].rsplit('_', 1)[0]}_template"
            )
        changes = ChangeSet(frame, demo_data.staff, demo_data.assignments, accept_problems=True)
        with open_store(tmp_path / f"{name}.gpkg", create=True) as gpkg, open_store(url) as pg:
            gpkg.apply(changes)
            pg.apply(changes)
            a, b = gpkg.validate(), pg.validate()
            assert _as_records(a) == _as_records(b)
            if name == "perturbed":
                assert {"overlap", "gap", "outside_parent"} <= set(a["kind"])
            # the problem polygons agree too (to a millimetre of area)
            assert np.allclose(a["area_m2"].fillna(0), b["area_m2"].fillna(0), atol=1e-3)
            la = gpkg.lookup(x, y).astype(object)
            lb = pg.lookup(x, y).astype(object)
            assert (la.fillna("").to_numpy() == lb.fillna("").to_numpy()).all()
            assert la["unit"].notna().sum() > 100
            assert gpkg.stats() == pg.stats()
        if name == "perturbed":
            from tests.conftest import _admin

            _admin(f"DROP DATABASE {url.rsplit('/', 1)[1]} WITH (FORCE)")


def test_fast_chains_answer_as_the_generic_one(tmp_path, demo_data, pg_url, monkeypatch):
    """The map click on PostGIS (in-process index, or one query) = the generic path;
    the index follows a write through the store at once and another process's in time."""
    import gis_grid.store.postgis.lookup as pgmod
    from gis_grid.grids.queries import chain

    class Generic:  # the store without its own chain: queries.chain's generic path
        def __init__(self, store):
            self._store = store

        def __getattr__(self, name):
            if name == "chain":
                raise AttributeError(name)
            return getattr(self._store, name)

    rng = np.random.default_rng(8)
    minx, miny, maxx, maxy = demo_data.grids.total_bounds
    units = demo_data.grids.loc[demo_data.grids.level == "unit"].geometry
    points = [(p.x, p.y) for p in units.iloc[::40].representative_point()]
    points += list(zip(rng.uniform(minx, maxx, 30), rng.uniform(miny, maxy, 30), strict=True))
    points.append((minx - 1, miny - 1))  # in no grid
    with open_store(pg_url) as pg:
        pg.apply(ChangeSet(demo_data.grids, demo_data.staff, demo_data.assignments))
        from gis_grid.grids.queries import Chains

        index = Chains.of(pg)
        for x, y in points:
            indexed, one_query = index.chain(x, y), pg._chain_sql(x, y)
            slow = chain(Generic(pg), x, y)
            for grid in slow:
                grid["staff"] = sorted(grid["staff"], key=lambda s: s["staff_id"])
            assert indexed == one_query == slow
        assert sum(len(g["staff"]) for x, y in points for g in pg.chain(x, y)) > 50
        # a boundary edit through this store: the next click sees it
        from gis_grid.planning.edits import merge

        areas = sorted(demo_data.grids.loc[demo_data.grids.level == "area", "code"])
        inside = (
            units.loc[
                units.index.intersection(
                    demo_data.grids.index[demo_data.grids["code"].str.startswith(areas[1])]
                )
            ]
            .iloc[0]
            .representative_point()
        )
        assert pg.wait_for_index(120) and pg._chains is not None
        assert pg.chain(inside.x, inside.y)[1]["code"] == areas[1]
        merge(pg, areas[:2])  # answered by query at once, by a new index once built
        assert pg.chain(inside.x, inside.y)[1]["code"] == areas[0]
        assert pg.wait_for_index(120) and pg.chain(inside.x, inside.y)[1]["code"] == areas[0]
        # … and through another process's store: within INDEX_RECHECK
        with open_store(pg_url) as other:
            from gis_grid.planning.edits import undo

            undo(other, areas[0][:12])
        monkeypatch.setattr(pgmod, "INDEX_RECHECK", 0.0)
        assert pg.chain(inside.x, inside.y)[1]["code"] == areas[1]


def test_planted_orphans_are_refused_by_both(tmp_path, demo_data, pg_url):
    orphans = demo_data.grids.loc[demo_data.grids.level == "courtyard"].head(3).copy()
    orphans["code"] = "211281001007099" + orphans["code"].str.slice(15)
    orphans = orphans.drop(columns="parent_code")
    for url in (tmp_path / "o.gpkg", pg_url):
        with open_store(url, create=True) as store:
            store.apply(ChangeSet(demo_data.grids.loc[demo_data.grids.level == "community"]))
            before = snapshot(store)
            with pytest.raises(OrphanError, match="211281001007099 does not exist"):
                store.apply(ChangeSet(orphans, accept_problems=True))
            assert snapshot(store) == before


def test_schema_models_match_the_migrations(pg_url):
    """Alembic autogenerate finds nothing to do: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from gis_grid.store.postgis import sqlalchemy_url
    from gis_grid.store.postgis.partitions import is_partition_name
    from gis_grid.store.postgis.schema import SCHEMA, metadata

    engine = create_engine(sqlalchemy_url(pg_url))
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_name": lambda name, kind, parent: kind != "schema" or name == SCHEMA,
                "include_object": lambda obj, name, kind, reflected, compare_to: (
                    not (kind == "table" and (name == "alembic_version" or is_partition_name(name)))
                ),
            },
        )
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_the_code_knows_the_newest_migration():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_an_older_schema_is_refused_by_name_then_brought_forward(pg_url, demo_data):
    """A database left at 0006 (before the tile geometry) says what to run, then upgrades."""
    from tests.conftest import _admin

    old = pg_url + "_old"
    _admin(f"CREATE DATABASE {old.rsplit('/', 1)[1]}")
    try:
        assert migrate(old, "0006") == "0006"
        with pytest.raises(StoreError, match=f"schema 0006; this gis-grid needs {SCHEMA_REVISION}"):
            open_store(old)
        with pytest.raises(StoreError, match="gis-grid migrate"):
            open_store(old)
        with psycopg.connect(old) as conn:  # nothing was changed by the refusals
            assert conn.execute("SELECT version_num FROM gis_grid.alembic_version").fetchone() == (
                "0006",
            )
        with open_store(old, create=True) as store:  # a writing command brings it forward
            store.apply(ChangeSet(demo_data.grids.loc[demo_data.grids.level == "community"]))
        with psycopg.connect(old) as conn:
            version, merc = conn.execute(
                "SELECT v.version_num, ST_SRID(g.geom_merc) FROM gis_grid.alembic_version v, "
                "gis_grid.grids g"
            ).fetchone()
        assert (version, merc) == (SCHEMA_REVISION, 3857)
        with psycopg.connect(old, autocommit=True) as conn:
            conn.execute("UPDATE gis_grid.alembic_version SET version_num = '9999'")
        with pytest.raises(StoreError, match="newer than this gis-grid knows"):
            open_store(old)
    finally:
        _admin(f"DROP DATABASE IF EXISTS {old.rsplit('/', 1)[1]} WITH (FORCE)")


def test_the_database_enforces_the_rules_too(pg_url):
    """Constraints catch what bypasses gis-grid (a direct INSERT, another tool)."""
    with open_store(pg_url):
        pass
    bad = [
        "INSERT INTO gis_grid.grids (community_code, code, level, updated_at, geom) VALUES "
        "('211281001007', '2112810010', 'community', '', "
        "ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326)))",
        "INSERT INTO gis_grid.grids (community_code, code, parent_code, level, updated_at, geom) "
        "VALUES ('211281001007', '211281001007001', '211281001007', 'area', '', "
        "ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326)))",
        "INSERT INTO gis_grid.grids (community_code, code, level, updated_at, geom) VALUES "
        "('211281001007', '211281001007', 'community', '', ST_Multi('POLYGON((0 0, 1 1, 1 0, "
        "0 1, 0 0))'::geometry(Polygon, 4326)))",
    ]
    for sql in bad:
        with (
            psycopg.connect(pg_url) as conn,
            pytest.raises((psycopg.errors.CheckViolation, psycopg.errors.ForeignKeyViolation)),
        ):
            conn.execute(sql)


def test_a_killed_100k_import_leaves_nothing(pg_url):
    """SIGKILL the importing process while its COPY runs: the server rolls it back."""
    with open_store(pg_url) as store:
        before = snapshot(store)
    script = textwrap.dedent(f"""
        from dataclasses import replace
        import gis_grid.store.postgis as pg
        from gis_grid.sources.demo import CITY, generate
        from gis_grid.store import ChangeSet, open_store

        data = generate(replace(CITY, communities=40))
        assert len(data.grids) > 100_000, len(data.grids)
        real = pg.PostGISStore._rollup

        def stall(cur, communities):  # every row is copied, the transaction still open
            cur.execute("SELECT count(*) FROM gis_grid.grids")
            print("inside", cur.fetchone()[0], flush=True)
            import time
            time.sleep(120)

        pg.PostGISStore._rollup = staticmethod(stall)
        open_store({pg_url!r}).apply(ChangeSet(data.grids, data.staff, data.assignments))
        """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        line = proc.stdout.readline().split()
        assert line[0] == b"inside" and int(line[1]) > 100_000
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    with open_store(pg_url) as store:
        assert snapshot(store) == before
        assert sum(store.stats()["grids"].values()) == 0


def test_the_pool_reconnects_after_the_server_drops_it(pg_url, demo_data):
    """A restart ends every connection; the next request must simply work."""
    with open_store(pg_url) as store:
        store.apply(ChangeSet(demo_data.grids.loc[demo_data.grids.level == "community"]))
        assert store.stats()["grids"]["community"] == 1
        database = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            killed = admin.execute(  # and wait until they have ended (as after a restart)
                "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            ).fetchone()[0]
        assert killed >= 1
        assert store.stats()["grids"]["community"] == 1
        assert store.lookup([123.56], [42.45]).shape == (1, 5)


def test_pilot_to_production_and_back_with_the_cli(tmp_path, demo_file, pg_url, monkeypatch):
    """gis-grid migrate, then copy GeoPackage → PostGIS → GeoPackage: nothing changes."""
    from typer.testing import CliRunner

    from gis_grid.cli import app

    runner = CliRunner()
    empty = pg_url.rsplit("/", 1)[0] + "/" + pg_url.rsplit("/", 1)[1] + "_fresh"
    from tests.conftest import _admin

    _admin(f"CREATE DATABASE {empty.rsplit('/', 1)[1]}")
    try:
        result = runner.invoke(app, ["migrate", empty])
        assert result.exit_code == 0 and f"revision {SCHEMA_REVISION}" in result.stdout
        result = runner.invoke(app, ["copy", str(demo_file), empty])
        assert result.exit_code == 0, result.stderr
        assert "copied 503 grids" in result.stdout
        monkeypatch.setenv("GIS_GRID_DATABASE_URL", empty)
        stats = runner.invoke(app, ["stats", "-f", "json"])  # the store from the environment
        assert '"households": 3211' in stats.stdout
        back = tmp_path / "back.gpkg"
        assert runner.invoke(app, ["copy", empty, str(back)]).exit_code == 0
        with open_store(demo_file) as a, open_store(back) as b, open_store(empty) as c:
            assert snapshot(a) == snapshot(b) == snapshot(c)
    finally:
        _admin(f"DROP DATABASE IF EXISTS {empty.rsplit('/', 1)[1]} WITH (FORCE)")


def test_the_demo_can_go_straight_into_postgis(pg_url):
    from typer.testing import CliRunner

    from gis_grid.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--out", pg_url])
    assert result.exit_code == 0, result.stderr
    assert "validation: 0 errors, 0 warnings" in result.stdout
    again = runner.invoke(app, ["demo", "--out", pg_url])
    assert again.exit_code == 1 and "already holds grids" in again.stderr


def _local_cluster() -> list[str] | None:
    """The command that restarts the local PostgreSQL cluster, where we run it."""
    import shutil

    from tests.conftest import PG_SERVER

    if "127.0.0.1" not in PG_SERVER and "localhost" not in PG_SERVER:
        return None
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        return None
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]


def test_the_store_carries_on_after_a_real_server_restart(pg_url, demo_data):
    restart = _local_cluster()
    if restart is None:
        pytest.skip("needs the local Debian PostgreSQL cluster and root to restart it")
    with open_store(pg_url) as store:
        store.apply(ChangeSet(demo_data.grids.loc[demo_data.grids.level == "community"]))
        assert store.stats()["grids"]["community"] == 1
        subprocess.run(restart, check=True, capture_output=True, timeout=120)
        subprocess.run(["pg_isready", "-q", "-t", "60", "-h", "127.0.0.1"], check=True)
        assert store.stats()["grids"]["community"] == 1  # the next request reconnects
        assert store.lookup([123.56], [42.45]).shape == (1, 5)


def test_migration_0010_indexes_each_layer_s_own_time(pg_url):
    from tests.test_gpkg import _incidents

    with open_store(pg_url) as store:
        seeded(store)
        _incidents(store)
    with psycopg.connect(pg_url, autocommit=True) as conn:

        def indexed():
            return conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = 'gis_grid' "
                "AND indexname = 'incidents_reported_at'"
            ).fetchone()[0]

        assert indexed() == 1  # a new layer has it
        conn.execute('DROP INDEX gis_grid."incidents_reported_at"')
        conn.execute("UPDATE gis_grid.alembic_version SET version_num = '0009'")
        assert migrate(pg_url) == SCHEMA_REVISION == "0011"
        assert indexed() == 1  # an older database gains it


def test_tiles_come_from_the_read_replica_once_it_has_caught_up(pg_url, demo_data, monkeypatch):
    """With a replica named, tiles are made there, unless it has not yet replayed what the
    primary had written when the tile's key was read: then on the primary."""
    import mapbox_vector_tile
    import morecantile

    import gis_grid.store.postgis as pgmod
    from tests.conftest import _admin

    with open_store(pg_url) as store:
        store.apply(ChangeSet(demo_data.grids, demo_data.staff, demo_data.assignments))
    replica = pg_url + "_replica"  # a copy stands in: it is not in recovery, so it is current
    _admin(f"CREATE DATABASE {replica.rsplit('/', 1)[1]} TEMPLATE {pg_url.rsplit('/', 1)[1]}")
    try:
        with psycopg.connect(replica, autocommit=True) as conn:
            conn.execute("UPDATE gis_grid.grids SET name = 'on the replica' WHERE level = 'area'")
        centre = demo_data.grids.geometry.union_all().centroid
        t = morecantile.tms.get("WebMercatorQuad").tile(centre.x, centre.y, 15)

        def names(store) -> set[str]:
            store.generation()  # what a tile cache reads first: its key
            tile = store.mvt("area", ["code", "name"], t.z, t.x, t.y)
            return {
                f["properties"]["name"] for f in mapbox_vector_tile.decode(tile)["area"]["features"]
            }

        with open_store(pg_url, tile_url=replica) as store:
            assert names(store) == {"on the replica"}
            assert store.grids(level="area")["name"].ne("on the replica").all()  # reads: primary
            with psycopg.connect(pg_url, autocommit=True) as conn:  # a write on the primary …
                conn.execute("INSERT INTO gis_grid.meta VALUES ('replica test', '1')")
            monkeypatch.setattr(pgmod, "REPLAYED", "SELECT '0/1'")  # … not replayed yet
            assert "on the replica" not in names(store)
            monkeypatch.setattr(pgmod, "REPLAYED", "SELECT NULL::text")
            assert names(store) == {"on the replica"}
            # the replica goes away: tiles come from the primary, after a second's wait at most
            _admin(f"DROP DATABASE {replica.rsplit('/', 1)[1]} WITH (FORCE)")
            started = time.monotonic()
            assert names(store) and "on the replica" not in names(store)
            assert time.monotonic() - started < 10
        with pytest.raises(StoreError, match="read replica"):
            open_store(pg_url, tile_url=pg_url.rsplit("/", 1)[0] + "/postgres")
    finally:
        _admin(f"DROP DATABASE IF EXISTS {replica.rsplit('/', 1)[1]} WITH (FORCE)")


def test_a_batch_answers_alike_from_the_index_and_in_sql_whole_or_halved(
    pg_url, demo_data, monkeypatch
):
    """A batch on PostGIS: from the in-process index once it is current, else in SQL (in two
    halves on two connections past SPLIT_FROM): the same codes; and a grid write by another
    process is seen by the very next batch."""
    import gis_grid.store.postgis.lookup as pgmod
    from gis_grid.planning.edits import merge

    rng = np.random.default_rng(21)
    minx, miny, maxx, maxy = demo_data.grids.total_bounds
    units = demo_data.grids.loc[demo_data.grids.level == "unit"].geometry
    inner = units.iloc[::3].representative_point()
    x = np.r_[rng.uniform(minx, maxx, 6000), inner.x, minx - 1]
    y = np.r_[rng.uniform(miny, maxy, 6000), inner.y, miny - 1]

    def plain(frame):
        return frame.astype(object).where(frame.notna(), "").to_numpy()

    with open_store(pg_url) as pg:
        pg.apply(ChangeSet(demo_data.grids, demo_data.staff, demo_data.assignments))
        whole = pg._lookup_sql(x, y)
        monkeypatch.setattr(pgmod, "SPLIT_FROM", 1000)
        halved = pg._lookup_sql(x, y)
        assert pg.wait_for_index(120)
        indexed = pg.lookup(x, y)
        assert (plain(whole) == plain(halved)).all() and (plain(whole) == plain(indexed)).all()
        assert whole["unit"].notna().sum() >= len(inner) and plain(whole)[-1].tolist() == [""] * 5
        areas = sorted(demo_data.grids.loc[demo_data.grids.level == "area", "code"])
        second = np.flatnonzero(plain(indexed)[:, 1] == areas[1])
        with open_store(pg_url) as other:  # another process merges two areas …
            merge(other, areas[:2])
        after = pg.lookup(x[second], y[second])  # … and the next batch sees it
        assert set(after["area"].astype(str)) == {areas[0]}

"""PostGIS for many districts: the large tables partitioned by community, ready for Citus."""

from __future__ import annotations

import geopandas as gpd
import psycopg
import pytest
import shapely
from psycopg import sql

from gis_grid.domain.errors import DuplicateCodeError
from gis_grid.domain.model import CASE_LAYER
from gis_grid.store import open_store
from gis_grid.store.postgis.partitions import partition_name

#: Tables every node of a Citus cluster holds whole: small, and read by every community.
REFERENCE = {"staff", "users", "layers", "meta", "audit", "alembic_version"}


@pytest.fixture(scope="module")
def loaded(postgis_template, two_communities):
    """Two demo communities with their layers and case log in PostGIS, and one stray lamp."""
    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer
    from gis_grid.sources.parquet import import_parquet

    url = postgis_template()
    with open_store(url) as store:
        import_parquet(store, two_communities[1])
        lamps = get_layer("lighting").schema
        stray = gpd.GeoDataFrame(
            {"id": ["far-away"], "lit_radius_m": [12.0]},
            geometry=[shapely.Point(100.0, 30.0)],
            crs="EPSG:4326",
        )
        store.write_features(lamps, normalise_features(lamps, stray))
        communities = sorted(store.grids(level="community")["code"])
    return url, communities


def _catalog(url: str):
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE n.nspname = 'gis_grid' AND c.relkind IN ('r', 'p') "
            "AND NOT c.relispartition"
        ).fetchall()
        constraints = conn.execute(
            "SELECT t.relname, k.contype, k.conname, "
            "ARRAY(SELECT a.attname FROM unnest(k.conkey) x JOIN pg_attribute a "
            "ON a.attrelid = k.conrelid AND a.attnum = x), f.relname, "
            "ARRAY(SELECT a.attname FROM unnest(k.confkey) x JOIN pg_attribute a "
            "ON a.attrelid = k.confrelid AND a.attnum = x) "
            "FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace LEFT JOIN pg_class f "
            "ON f.oid = k.confrelid WHERE n.nspname = 'gis_grid' AND k.contype IN ('p', 'u', 'f') "
            "AND NOT t.relispartition"
        ).fetchall()
        keys = dict(
            conn.execute(
                "SELECT c.relname, p.partstrat::text || ':' || a.attname "
                "FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0] "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'gis_grid'"
            ).fetchall()
        )
        nullable = dict(
            conn.execute(
                "SELECT table_name, is_nullable FROM information_schema.columns "
                "WHERE table_schema = 'gis_grid' AND column_name = 'community_code'"
            ).fetchall()
        )
        layers = [r[0] for r in conn.execute("SELECT name FROM gis_grid.layers").fetchall()]
    return dict(tables), constraints, keys, nullable, layers


def test_the_schema_is_ready_for_citus(loaded):
    """Every large table carries the community code in every key and every reference
    between large tables; features, cases and their log are partitioned by it."""
    url, communities = loaded
    tables, constraints, keys, nullable, layers = _catalog(url)
    assert {CASE_LAYER, "cctv", "lighting"} <= set(layers)
    distributed = set(tables) - REFERENCE
    assert {"grids", "grid_parts", "assignments", "revisions", "case_log", *layers} <= distributed
    for table in distributed:
        assert nullable[table] == "NO", table
    for table, kind, name, columns, target, target_columns in constraints:
        if table not in distributed:
            continue
        if kind in ("p", "u"):
            assert "community_code" in columns, (table, name, columns)
        elif target not in REFERENCE:  # a reference between large tables stays in a community
            assert columns[0] == target_columns[0] == "community_code", (table, name)
    primary = {c[0] for c in constraints if c[1] == "p"}
    assert {"revisions", "proposals", "grid_history", "case_log", *layers} <= primary
    # the large tables (features, cases and their links, the case log) are partitioned
    for table in (*layers, "case_log"):
        assert tables[table] == "p" and keys[table] == "l:community_code", table
    with psycopg.connect(url) as conn:
        for table in (*layers, "case_log"):
            parts = {
                r[0]
                for r in conn.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = %s::regclass",
                    [f"gis_grid.{table}"],
                ).fetchall()
            }
            assert parts == {partition_name(table, k) for k in ("", *communities)}, table
        # rows sit in their community's partition; the stray lamp in the one of none
        ids = {
            r[0]
            for r in conn.execute(
                f"SELECT id FROM gis_grid.{partition_name('lighting', '')}"
            ).fetchall()
        }
        assert "far-away" in ids
        for code in communities:
            assert "far-away" not in {
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM gis_grid.{partition_name('lighting', code)}"
                ).fetchall()
            }
        for code in communities:
            n = conn.execute(
                f"SELECT count(*) FROM gis_grid.{partition_name(CASE_LAYER, code)}"
            ).fetchone()[0]
            logged = conn.execute(
                f"SELECT count(DISTINCT case_id) FROM gis_grid.{partition_name('case_log', code)}"
            ).fetchone()[0]
            assert n > 100 and logged > 0


def test_no_community_reads_back_as_none_and_ids_stay_unique_in_the_layer(loaded):
    url, communities = loaded
    with open_store(url) as store:
        lamps = store.features("lighting")
        stray = lamps.loc[lamps["id"] == "far-away"].iloc[0]
        assert stray["community_code"] is None and stray["area_code"] is None
        outside = store.features("lighting", where={"community_code": None})
        assert "far-away" in set(outside["id"]) and outside["community_code"].isna().all()
        import mapbox_vector_tile
        import morecantile

        t = morecantile.tms.get("WebMercatorQuad").tile(100.0, 30.0, 14)
        tile = store.mvt("lighting", ["id", "community_code"], t.z, t.x, t.y)
        (lamp,) = mapbox_vector_tile.decode(tile)["lighting"]["features"]
        assert lamp["properties"] == {"id": "far-away"}  # no community: no attribute
        assert store.case_row(store.features(CASE_LAYER)["id"].iloc[0])["community_code"] in (
            communities
        )
        # an id taken in one community is taken in every other, and in none
        case = store.case_row(store.features(CASE_LAYER, under=[communities[0]])["id"].iloc[0])
        elsewhere = store.features(CASE_LAYER, under=[communities[1]]).iloc[0]
        copy = {
            **case,
            "lon": float(elsewhere["lon"]),
            "lat": float(elsewhere["lat"]),
            **{c: elsewhere[c] for c in store.features(CASE_LAYER).columns if c.endswith("_code")},
        }
        step = store.case_steps(case["id"])[0]  # a whole first step, as a report writes it
        with pytest.raises(DuplicateCodeError, match=str(case["id"])):
            store.insert_case(copy, {**step, "community_code": copy["community_code"]})
        lamp = store.features("lighting", under=[communities[1]]).iloc[:1]
        schema = store.layers()["lighting"]
        moved = lamp[[*schema.columns, "geometry"]].copy()
        moved["geometry"] = [shapely.Point(100.0, 30.0)]  # into no community, same id
        with pytest.raises(DuplicateCodeError):
            store.write_features(schema, moved)
        assert len(store.features("lighting")) == len(lamps)


def _scanned(url: str, query, params) -> set[str]:
    """The tables a query reads when it runs (partitions pruned at start-up are not read)."""
    with psycopg.connect(url, options="-c search_path=gis_grid,public") as conn:
        plan = conn.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query, params).fetchone()[
            0
        ]
    found: set[str] = set()

    def walk(node):
        if "Relation Name" in node:
            found.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def test_a_query_for_one_community_reads_its_partition_only(loaded):
    """EXPLAIN ANALYZE of what the store runs: one community's features, an area's cases,
    the features in no community — each reads one partition of the layer's three."""
    url, communities = loaded
    with open_store(url) as store:
        area = sorted(store.grids(level="area")["code"])[-1]
        for layer, under, where, expected in (
            (CASE_LAYER, [communities[0]], None, communities[0]),
            (CASE_LAYER, [area], None, area[:12]),
            ("cctv", [communities[1]], {"status": "working"}, communities[1]),
            ("lighting", None, {"community_code": None}, ""),
        ):
            query, params = store._features_query(layer, under=under, where=where)
            assert _scanned(url, query, params) == {partition_name(layer, expected)}
            assert len(store.features(layer, under=under, where=where)) > 0
        everything, params = store._features_query(CASE_LAYER)
        assert _scanned(url, everything, params) == {
            partition_name(CASE_LAYER, k) for k in ("", *communities)
        }


def test_migration_0011_partitions_an_older_database_and_loses_nothing(loaded):
    """A database of 0010 (plain tables, NULL for no community) is brought to 0011 with
    every feature, link and log row as it was; and back again."""
    from gis_grid.store.postgis import SCHEMA_REVISION, migrate
    from tests.conftest import _admin

    url, _ = loaded
    old = url + "_0010"
    _admin(f"CREATE DATABASE {old.rsplit('/', 1)[1]} TEMPLATE {url.rsplit('/', 1)[1]}")
    try:
        with open_store(old) as store:
            before = {n: store.features(n) for n in store.layers()}
            log = store.case_log()
        migrate(old, "0010", down=True)
        with psycopg.connect(old) as conn:
            kinds = dict(
                conn.execute(
                    "SELECT relname, relkind FROM pg_class WHERE relname IN "
                    "('incidents', 'lighting', 'case_log', 'incidents__none')"
                ).fetchall()
            )
            assert kinds == {"incidents": "r", "lighting": "r", "case_log": "r"}
            assert conn.execute(
                "SELECT count(*) FROM gis_grid.lighting WHERE community_code IS NULL"
            ).fetchone()[0] == (before["lighting"]["community_code"].isna().sum())
        assert migrate(old) == SCHEMA_REVISION == "0011"
        with open_store(old) as store:
            for name, frame in before.items():
                after = store.features(name)
                assert after.drop(columns="geometry").equals(frame.drop(columns="geometry"))
                assert after.geometry.geom_equals(frame.geometry).all()
            assert store.case_log().equals(log)
        tables, _, keys, nullable, _ = _catalog(old)
        assert keys["incidents"] == keys["case_log"] == "l:community_code"
        assert nullable["case_log"] == "NO"
    finally:
        _admin(f"DROP DATABASE IF EXISTS {old.rsplit('/', 1)[1]} WITH (FORCE)")


def test_a_community_s_first_grids_take_in_the_features_already_there(postgis_template):
    """Lamps written before their community's grids wait in the partition of none; the grids
    make the community's partition and the lamps move into it (deleted and written again,
    never their key updated), every other column as it was."""
    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer
    from tests.conftest import COMMUNITY, at, seeded

    url = postgis_template()
    lamps = get_layer("lighting").schema
    frame = gpd.GeoDataFrame(
        {"id": ["L1", "L2"], "lit_radius_m": [12.0, 20.0]},
        geometry=[at(shapely.Point(25, 50)), at(shapely.Point(75, 50))],
        crs="EPSG:4326",
    )
    with open_store(url) as store:
        store.write_features(lamps, normalise_features(lamps, frame))
        before = store.features("lighting")
        assert before["community_code"].isna().all()
        seeded(store)
        after = store.features("lighting")
    assert list(after["community_code"]) == [COMMUNITY] * 2
    assert list(after["area_code"]) == [f"{COMMUNITY}001", f"{COMMUNITY}002"]
    assert after[["id", "lit_radius_m", "lon", "lat"]].equals(
        before[["id", "lit_radius_m", "lon", "lat"]]
    )
    with psycopg.connect(url) as conn:
        held = {
            key: conn.execute(
                f"SELECT count(*) FROM gis_grid.{partition_name('lighting', key)}"
            ).fetchone()[0]
            for key in ("", COMMUNITY)
        }
    assert held == {"": 0, COMMUNITY: 2}

"""GeoParquet out and back in: a two-community demo, partitioned by community, on both stores."""

from __future__ import annotations

import json
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from gis_grid.domain.errors import InputError
from gis_grid.sources.parquet import export_parquet, import_parquet, read_manifest, read_table


def fresh_export(two_communities, tmp_path):
    target = tmp_path / "export"
    shutil.copytree(two_communities[1], target)
    return target


def test_the_export_is_partitioned_by_community_and_sorted_along_a_curve(two_communities):
    from gis_grid.store import open_store

    path, folder = two_communities
    manifest = read_manifest(folder)
    with open_store(path) as store:
        communities = sorted(store.grids(level="community")["code"])
        per = store.features("incidents")["community_code"].value_counts().to_dict()
        assert manifest["tables"]["grids"]["partitions"] == {
            c: len(store.grids(under=[c])) for c in communities
        }
    assert manifest["tables"]["layers/incidents"]["partitions"] == per
    part = folder / "grids" / f"community_code={communities[0]}" / "part-0.parquet"
    meta = json.loads(pq.read_schema(part).metadata[b"geo"])  # GeoParquet metadata
    assert meta["primary_column"] == "geometry" and "4326" in json.dumps(meta["columns"])
    grids = gpd.read_parquet(part)
    assert grids.crs.to_epsg() == 4326 and grids["code"].str.startswith(communities[0]).all()
    distance = grids.geometry.hilbert_distance().to_numpy()
    assert (np.diff(distance) >= 0).all()  # along the curve


def test_duckdb_reads_a_table_whole(two_communities):
    duckdb = pytest.importorskip("duckdb")
    _, folder = two_communities
    rows = duckdb.sql(
        "SELECT community_code, count(*) FROM "
        f"read_parquet('{folder}/layers/incidents/*/*.parquet', hive_partitioning = true) "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    manifest = read_manifest(folder)
    expected = sorted(manifest["tables"]["layers/incidents"]["partitions"].items())
    assert [(str(c), n) for c, n in rows] == expected


def test_back_in_exactly_as_it_was(two_communities, new_store):
    from gis_grid.store import open_store

    path, folder = two_communities
    store = new_store()
    counts = import_parquet(store, folder)
    with open_store(path) as source:
        assert counts["grids"] == len(source.grids())
        a, b = source.grids().sort_values("code"), store.grids().sort_values("code")
        assert a["code"].tolist() == b["code"].tolist()
        assert a["households"].tolist() == b["households"].tolist()
        assert (
            a.geometry.reset_index(drop=True)
            .geom_equals_exact(b.geometry.reset_index(drop=True), 1e-9)
            .all()
        )
        key = ["staff_id", "grid_code"]
        assert (
            source.assignments().sort_values(key)[key].to_numpy().tolist()
            == store.assignments().sort_values(key)[key].to_numpy().tolist()
        )
        for name in source.layers():
            x = source.features(name).sort_values("id").reset_index(drop=True)
            y = store.features(name).sort_values("id").reset_index(drop=True)
            assert x["id"].tolist() == y["id"].tolist(), name
            assert (x["community_code"].fillna("") == y["community_code"].fillna("")).all(), name
        assert len(store.case_log()) == len(source.case_log())


def test_a_missing_partition_is_refused_and_nothing_is_written(
    two_communities, tmp_path, new_store
):
    folder = fresh_export(two_communities, tmp_path)
    community = next(iter(read_manifest(folder)["tables"]["layers/incidents"]["partitions"]))
    (folder / "layers" / "incidents" / f"community_code={community}" / "part-0.parquet").unlink()
    store = new_store()
    with pytest.raises(InputError, match="is missing: the export is incomplete"):
        import_parquet(store, folder)
    assert store.grids().empty and store.load_marker() is None


def test_a_partition_with_other_columns_is_refused(two_communities, tmp_path, new_store):
    folder = fresh_export(two_communities, tmp_path)
    community = next(iter(read_manifest(folder)["tables"]["grids"]["partitions"]))
    path = folder / "grids" / f"community_code={community}" / "part-0.parquet"
    frame = gpd.read_parquet(path)
    frame["households"] = frame["households"].astype(str)  # a writer that typed it otherwise
    frame.to_parquet(path, index=False)
    store = new_store()
    with pytest.raises(InputError, match="households"):
        import_parquet(store, folder)
    assert store.grids().empty


def test_an_export_never_lands_half_written(two_communities, tmp_path, monkeypatch):
    from gis_grid.sources import parquet
    from gis_grid.store import open_store

    path, _ = two_communities
    target = tmp_path / "out"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with open_store(path) as store:
        with pytest.raises(InputError, match="not empty"):
            export_parquet(store, tmp_path / "busy")
        calls = []

        def fail_on_layers(frame, folder, key, geo):
            if "layers" in str(folder):
                raise OSError("disk full")
            calls.append(folder)
            return real(frame, folder, key, geo)

        real = parquet._write_partitioned
        monkeypatch.setattr(parquet, "_write_partitioned", fail_on_layers)
        with pytest.raises(OSError, match="disk full"):
            export_parquet(store, target)
    assert calls and not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial")]


def test_the_cli_exports_and_imports_a_folder(two_communities, tmp_path):
    from gis_grid.cli import app
    from gis_grid.store import open_store

    path, _ = two_communities
    runner = CliRunner()
    out = runner.invoke(app, ["export", str(path), str(tmp_path / "pq"), "--format", "parquet"])
    assert out.exit_code == 0, out.output
    assert "partitioned by community (2)" in out.output
    back = tmp_path / "back.gpkg"
    got = runner.invoke(app, ["import", str(back), str(tmp_path / "pq")])
    assert got.exit_code == 0, got.output
    with open_store(back) as store, open_store(path) as source:
        assert len(store.grids()) == len(source.grids())
    again = runner.invoke(app, ["import", str(back), str(tmp_path / "pq")])
    assert again.exit_code != 0 and "import into a new store" in again.output
    bad = runner.invoke(app, ["export", str(path), str(tmp_path / "x"), "--format", "shp"])
    assert bad.exit_code != 0 and "unknown export format" in bad.output


def test_read_table_keeps_the_partition_key(two_communities):
    _, folder = two_communities
    manifest = read_manifest(folder)
    first = next(iter(manifest["tables"]["case_log"]["partitions"]))
    log = read_table(folder, "case_log", manifest, communities=[first])
    assert set(log["community_code"]) == {first}
    assert isinstance(read_table(folder, "staff", manifest), pd.DataFrame)


def test_one_community_loads_with_its_own_people_only(two_communities, tmp_path):
    """A batch task's store of one community holds that community's grids, the people
    assigned to them and its features: not the whole city's staff."""
    from gis_grid.sources.parquet import import_parquet
    from gis_grid.store import open_store

    path, folder = two_communities
    with open_store(path) as whole:
        first = sorted(whole.grids(level="community")["code"])[0]
        assigned = whole.assignments()
        assigned = assigned.loc[assigned["grid_code"].str.startswith(first)]
        incidents = whole.features("incidents", under=[first])
        assert len(whole.staff()) > assigned["staff_id"].nunique()
    with open_store(tmp_path / "one.gpkg", create=True) as one:
        import_parquet(one, folder, communities=[first])
        assert set(one.staff()["staff_id"]) == set(assigned["staff_id"])
        assert len(one.assignments()) == len(assigned)
        assert set(one.grids()["code"].str.slice(0, 12)) == {first}
        assert sorted(one.features("incidents")["id"]) == sorted(incidents["id"])

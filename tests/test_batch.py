"""Batch jobs on a two-worker LocalCluster: the single-process answers (demo, two communities)."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gis_grid.batch import jobs
from gis_grid.domain.errors import InputError

pytest.importorskip("distributed")

SINCE, UNTIL, AT = dt.datetime(2026, 9, 1), dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 1, 12)


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker processes, one thread each.

    2 GB each: a worker holds ~0.8 GB once the statistics' libraries are loaded, and
    past 80% of its limit it pauses (under 1 GB a job could wait on paused workers).
    """
    client, cluster = jobs.connect(local=2, memory_limit="2GB")
    yield client
    client.close()
    cluster.close()


@pytest.fixture(params=["demo", "two"])
def data(request):
    return request.getfixturevalue("demo_export" if request.param == "demo" else "two_communities")


def test_link_on_the_cluster_is_the_single_process_link(client, data, tmp_path):
    from gis_grid.store import open_store

    path, folder = data
    counted = jobs.link(folder, tmp_path / "cluster", client=client)
    jobs.link(folder, tmp_path / "one")
    on_cluster = jobs.read_linked(tmp_path / "cluster")
    assert counted["features"] == len(on_cluster)
    assert jobs.chains_equal(on_cluster, jobs.read_linked(tmp_path / "one"))
    with open_store(path) as store:  # and the store's own links, made when they were written
        assert jobs.chains_equal(on_cluster, store.features("incidents"))
    assert on_cluster["area_code"].notna().mean() > 0.9


def test_hotspots_per_community_are_the_single_process_ones(client, data, tmp_path):
    from gis_grid.analysis.hotspots import find_hotspots
    from gis_grid.store import open_store

    path, folder = data
    result = jobs.hotspots(folder, tmp_path / "spots.parquet", permutations=99, client=client)
    units = pd.read_parquet(tmp_path / "spots.units.parquet")
    with open_store(path) as store:
        communities = sorted(store.grids(level="community")["code"])
        assert result["communities"] == len(communities)
        for c in communities:
            report = find_hotspots(
                store, "incidents", time_field="reported_at", under=[c], permutations=99
            )
            mine = units.loc[units["community_code"] == c].reset_index(drop=True)
            assert mine["unit"].tolist() == report.units["unit"].tolist()
            np.testing.assert_array_equal(mine["z"], report.units["z"])  # the same, not close
            np.testing.assert_array_equal(mine["p_sim"], report.units["p_sim"])
            assert mine["spot"].tolist() == report.units["spot"].tolist()
    assert result["hot"] > 0


def test_indicators_per_grid_are_the_single_process_ones(client, data, tmp_path):
    from gis_grid.cases.indicators import indicators
    from gis_grid.store import open_store

    path, folder = data
    table = jobs.indicators(
        folder, tmp_path / "ind.parquet", since=SINCE, until=UNTIL, at=AT, client=client
    )
    with open_store(path) as store:
        whole = indicators(store, since=SINCE, until=UNTIL, by="area", at=AT)
    pd.testing.assert_frame_equal(
        table.astype(str), whole.reset_index(drop=True).astype(str), check_dtype=False
    )
    assert pd.read_parquet(tmp_path / "ind.parquet")["code"].tolist() == table["code"].tolist()


def test_refusals_before_anything_runs(two_communities, tmp_path):
    _, folder = two_communities
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="exists"):
        jobs.link(folder, tmp_path / "taken")
    with pytest.raises(InputError, match="no layer roads"):
        jobs.link(folder, tmp_path / "x", layer="roads")
    with pytest.raises(InputError, match="grid level"):
        jobs.indicators(folder, tmp_path / "y", since=SINCE, until=UNTIL, by="department")
    started = time.monotonic()
    with pytest.raises(InputError, match="cannot be reached"):
        jobs.connect("tcp://127.0.0.1:9", timeout=2)
    assert time.monotonic() - started < 20
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_the_cli_runs_a_job_and_refuses_a_missing_partition(two_communities, tmp_path):
    import shutil

    from gis_grid.cli import app
    from gis_grid.sources.parquet import read_manifest

    _, folder = two_communities
    runner = CliRunner()
    done = runner.invoke(
        app, ["batch", "link", str(folder), "--out", str(tmp_path / "linked"), "--local", "1"]
    )
    assert done.exit_code == 0, done.output
    assert "linked" in done.output and (tmp_path / "linked").is_dir()
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    community = next(iter(read_manifest(broken)["tables"]["grids"]["partitions"]))
    shutil.rmtree(broken / "grids" / f"community_code={community}")
    refused = runner.invoke(app, ["batch", "link", str(broken), "--out", str(tmp_path / "z")])
    assert refused.exit_code == 1 and "is missing" in refused.output
    assert not (tmp_path / "z").exists()
    unreachable = runner.invoke(
        app,
        [
            "batch",
            "indicators",
            str(folder),
            "--out",
            str(tmp_path / "w"),
            "--since",
            "2026-09-01",
            "--until",
            "2026-12-01",
            "--scheduler",
            "tcp://127.0.0.1:9",
        ],
    )
    assert unreachable.exit_code == 1 and "cannot be reached" in unreachable.output


def test_a_second_job_on_the_same_cluster_answers_for_itself(client, two_communities, tmp_path):
    """Tasks are keyed per run: an earlier job's finished task never answers a later one's."""
    _, folder = two_communities
    wide = jobs.indicators(
        folder, tmp_path / "a.parquet", since=SINCE, until=UNTIL, at=AT, client=client
    )
    narrow = jobs.indicators(
        folder,
        tmp_path / "b.parquet",
        since=dt.datetime(2026, 11, 1),
        until=UNTIL,
        at=AT,
        client=client,
    )
    assert narrow["reported"].sum() < wide["reported"].sum()


def test_workers_paused_at_their_memory_limit_are_a_clear_error(
    two_communities, tmp_path, monkeypatch
):
    """Every worker paused (memory past the pause fraction, here set to 1%): the job stops
    with what to do instead of waiting for ever, and writes nothing."""
    import dask

    _, folder = two_communities
    monkeypatch.setattr(jobs, "STALL_CHECK", 0.5)
    monkeypatch.setattr(jobs, "STALL_LIMIT", 2.0)
    settings = {
        "distributed.worker.memory.pause": 0.01,
        "distributed.worker.memory.terminate": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.target": False,
    }
    with dask.config.set(settings):
        client, cluster = jobs.connect(local=1, memory_limit="2GB")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the memory monitor has seen it
            if {w["status"] for w in client.scheduler_info()["workers"].values()} == {"paused"}:
                break
            time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(InputError, match="paused at their memory limit"):
            jobs.indicators(
                folder, tmp_path / "ind.parquet", since=SINCE, until=UNTIL, at=AT, client=client
            )
        with pytest.raises(InputError, match="paused at their memory limit"):
            jobs.link(folder, tmp_path / "linked", client=client)
        assert time.monotonic() - started < 60
        assert list(tmp_path.iterdir()) == []
    finally:
        client.close()
        cluster.close()


def _hog():
    """A task that takes far more memory than its worker may hold."""
    import numpy as np

    block = np.ones(400_000_000, dtype=np.uint8)  # 400 MB, touched
    time.sleep(5)
    return int(block[-1])


def test_a_task_that_gets_its_worker_killed_is_a_clear_error():
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        client, cluster = jobs.connect(local=1, memory_limit="400MB")
    try:
        with pytest.raises(InputError, match="partition hog got its worker killed"):
            jobs._run(client, [("hog", _hog, ())])
    finally:
        client.close()
        cluster.close()

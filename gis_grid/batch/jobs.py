"""Link, hot spots and indicators of a whole province on a Dask cluster, partition by partition.

The input is a GeoParquet export (:mod:`gis_grid.sources.parquet`):
partitioned by community, the distribution key. Each job runs the very code
one process runs, on one partition at a time, so a cluster gives the same
answers as one process:

- :func:`link` — every feature of a layer to its grid chain, community down
  to unit: each partition (a community's file, read by ``dask_geopandas``)
  is looked up in :class:`~gis_grid.grids.lookup.GridIndex` over every grid
  of the export, built once per worker process;
- :func:`hotspots` — Gi* hot spots per community: each community becomes a
  store of its own on the worker (a temporary GeoPackage loaded from its
  partitions) and :func:`~gis_grid.analysis.hotspots.find_hotspots` runs on
  it with the same seeded permutations as a run on the whole store with
  ``under=[community]``;
- :func:`indicators` — case indicators per grid, the same way with
  :func:`~gis_grid.cases.indicators.indicators` (grid levels: a grid's
  cases are all in its community's partition).

A job writes its answer into a staging path moved into place when whole. A
scheduler that cannot be reached, a missing partition or partitions that
disagree on their columns are refused before anything runs.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pandas as pd

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.domain.model import CHAIN_COLUMNS, Level
from gis_grid.geo.crs import WGS84
from gis_grid.sources.parquet import NO_COMMUNITY, PART, read_manifest, read_table

#: The grid levels indicators are computed by in a batch (a grid's cases lie in one partition).
LEVEL_KEYS = tuple(lv.key for lv in Level)


# -- the cluster ----------------------------------------------------------------------


def connect(
    scheduler: str | None = None,
    local: int | None = None,
    *,
    memory_limit: str | None = "auto",
    timeout: float = 10,
):
    """A Dask client: of a running scheduler (``tcp://host:8786``) or of a new LocalCluster.

    Returns ``(client, cluster)``; ``cluster`` is None for a scheduler given
    (it is not ours to close). A scheduler that does not answer within
    ``timeout`` seconds is a clear error, not a hang.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout=f"{timeout}s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(
                say(
                    "problem_scheduler_unreachable",
                    scheduler=scheduler,
                    why=str(exc) or type(exc).__name__,
                )
            ) from exc
    cluster = LocalCluster(
        n_workers=int(local or 2),
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=":0",
    )
    return Client(cluster), cluster


def _staged(out: Path) -> Path:
    """A sibling path to write into; moved onto ``out`` when the job is done."""
    out = Path(out)
    if out.exists():
        raise InputError(say("problem_batch_out_exists", path=str(out)))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    if staging.exists():
        staging.unlink()
    return staging


def _finish(staging: Path, out: Path) -> None:
    staging.rename(out)


def _run(client, tasks: list[tuple[str, Callable, tuple]], progress=None) -> list:
    """Run ``(name, function, args)`` tasks on the client (in this process without one)."""
    if client is None:
        out = []
        for name, fn, args in tasks:
            out.append(fn(*args))
            if progress:
                progress(name)
        return out
    # keys name the job and the partition, and are unique per run: a scheduler that still
    # holds a finished task of an earlier job under the same name must not answer for it
    run = uuid.uuid4().hex[:8]
    futures = {
        client.submit(fn, *args, key=f"{fn.__name__}-{name}-{run}", pure=False): i
        for i, (name, fn, args) in enumerate(tasks)
    }
    results = [None] * len(tasks)

    def done(future) -> None:
        results[futures[future]] = future.result()
        if progress:
            progress(tasks[futures[future]][0])

    _wait_all(client, {f: tasks[i][0] for f, i in futures.items()}, done)
    return results


def _wait_all(client, futures: dict, done: Callable) -> None:
    """Wait for ``futures`` (future → partition name), calling ``done`` with each as it ends.

    Never for ever: workers all paused at their memory limit stop the wait (see
    :func:`_paused`), and a task that got its worker killed is named. What is
    still pending is cancelled when the wait ends early.
    """
    from distributed import KilledWorker, wait

    pending, stalled = set(futures), None
    try:
        while pending:
            try:
                finished, pending = wait(
                    pending, timeout=STALL_CHECK, return_when="FIRST_COMPLETED"
                )
            except TimeoutError:  # nothing finished: is anybody able to work?
                stalled = _paused(client, stalled)
                continue
            stalled = None
            for future in finished:
                try:
                    done(future)
                except KilledWorker as exc:
                    raise InputError(
                        say("problem_batch_worker_killed", task=futures[future])
                    ) from exc
    finally:
        if pending:
            client.cancel(list(pending))


#: Seconds between checks of a job that has finished no task; after :data:`STALL_LIMIT`
#: seconds with every worker paused at its memory limit, the job is given up.
STALL_CHECK = 5.0
STALL_LIMIT = 60.0


def _paused(client, since: float | None) -> float | None:
    """When every worker was first seen paused (None: some worker can run).

    Past :data:`STALL_LIMIT` seconds so, a clear error instead of waiting for ever.
    A worker past its memory limit's pause fraction (Dask's ``distributed.worker.
    memory.pause``, 80%) runs nothing until its memory falls, and memory held by
    the libraries a task loaded never falls: with every worker so, a job waits for
    ever.
    """
    workers = client.scheduler_info()["workers"].values()
    if not workers or any(w.get("status") != "paused" for w in workers):
        return None
    now = time.monotonic()
    if since is None:
        return now
    if now - since < STALL_LIMIT:
        return since
    used = max(w.get("metrics", {}).get("memory", 0) for w in workers)
    limit = max(w.get("memory_limit", 0) for w in workers)
    raise InputError(
        say(
            "problem_batch_workers_paused",
            n=len(workers),
            used=f"{used / 1e6:,.0f} MB",
            limit=f"{limit / 1e6:,.0f} MB",
        )
    )


# -- link ------------------------------------------------------------------------------

_INDEXES: dict = {}  # on each worker: export folder (and its write time) → GridIndex


def _index(folder: str):
    from gis_grid.grids.lookup import GridIndex

    manifest = read_manifest(folder)
    key = (str(Path(folder).resolve()), manifest["written_at"])
    if key not in _INDEXES:
        grids = read_table(folder, "grids", manifest)
        _INDEXES.clear()
        _INDEXES[key] = GridIndex(grids["code"].to_numpy(), grids.geometry.to_numpy(), workers=1)
    return _INDEXES[key]


def link_part(part: gpd.GeoDataFrame, folder: str) -> gpd.GeoDataFrame:
    """One partition of features with each one's grid chain (the store's rule and index)."""
    from gis_grid.layers.features import link_points
    from gis_grid.store.base import chain_frame, empty_lookup

    part = part.copy()
    if not len(part):
        for column in CHAIN_COLUMNS:
            part[column] = pd.Series(dtype="string")
        return part
    lon, lat = link_points(part.geometry.to_numpy())
    index = _index(folder)
    found = index.lookup(lon, lat) if len(index.levels) else empty_lookup(len(part))
    chain = chain_frame(found)
    for column in CHAIN_COLUMNS:  # text, None where no grid (a typed column: one schema)
        part[column] = pd.array(chain[column].to_numpy(), dtype="string")
    return part


def _layer_files(folder: Path, manifest: dict, layer: str) -> list[Path]:
    table = f"layers/{layer}"
    if table not in manifest["tables"]:
        known = ", ".join(t.split("/", 1)[1] for t in manifest["tables"] if t.startswith("layers/"))
        raise InputError(say("problem_batch_no_layer", layer=layer, layers=known or "—"))
    return [
        folder / table / f"community_code={c}" / PART
        for c in manifest["tables"][table]["partitions"]
    ]


def link(source, out, *, layer: str = "incidents", client=None, progress=None) -> dict:
    """Link every feature of ``layer`` to its grid chain; GeoParquet parts under ``out``.

    Partitions run in parallel on the client's workers (``dask_geopandas``),
    each looked up in the index of every grid of the export. Without a client
    the same function runs on each partition in this process.
    """
    import dask_geopandas

    folder = Path(source)
    manifest = read_manifest(folder)
    files = _layer_files(folder, manifest, layer)
    out = Path(out)
    staging = _staged(out)
    try:
        if client is None:
            staging.mkdir()
            total = 0
            for i, path in enumerate(files):
                part = link_part(gpd.read_parquet(path), str(folder))
                part.to_parquet(staging / f"part.{i}.parquet", index=False)
                total += len(part)
                if progress:
                    progress(path.parent.name)
        else:
            frame = dask_geopandas.read_parquet([str(f) for f in files])
            meta = frame._meta.assign(**{c: pd.Series(dtype="string") for c in CHAIN_COLUMNS})
            linked = frame.map_partitions(link_part, str(folder), meta=meta)
            job = client.compute(linked.to_parquet(str(staging), write_index=False, compute=False))
            _wait_all(client, {job: layer}, lambda future: future.result())
            total = int(sum(manifest["tables"][f"layers/{layer}"]["partitions"].values()))
        _finish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"layer": layer, "features": total, "partitions": len(files), "out": str(out)}


def read_linked(path) -> gpd.GeoDataFrame:
    """The answer of :func:`link` (its parts joined, in no particular order)."""
    return gpd.read_parquet(path)


# -- one community as a store of its own ------------------------------------------------


def community_store(folder, community: str, where: Path):
    """A GeoPackage in ``where`` holding one community of an export (grids to cases)."""
    from gis_grid.sources.parquet import import_parquet
    from gis_grid.store import open_store

    store = open_store(where / f"{community}.gpkg", create=True)
    import_parquet(store, folder, communities=[community])
    return store


def communities_of(folder, manifest: dict | None = None) -> list[str]:
    manifest = manifest or read_manifest(folder)
    return sorted(c for c in manifest["tables"]["grids"]["partitions"] if c != NO_COMMUNITY)


def hotspots_of(folder: str, community: str, params: dict) -> dict:
    """Gi* hot spots of one community (on a worker): its spots, units and summary."""
    from gis_grid.analysis.hotspots import find_hotspots

    with tempfile.TemporaryDirectory(prefix="gis-grid-batch-") as tmp:
        store = community_store(folder, community, Path(tmp))
        try:
            report = find_hotspots(store, under=[community], **params)
        finally:
            store.close()
    units = report.units.assign(community_code=community)
    spots = report.spots.assign(community_code=community)
    return {"community": community, "spots": spots, "units": units, "summary": report.summary}


def hotspots(
    source,
    out,
    *,
    layer: str = "incidents",
    time_field: str = "reported_at",
    since: str | None = None,
    until: str | None = None,
    by: str = "h3",
    resolution: int = 11,
    permutations: int = 999,
    seed: int = 12345,
    alpha: float = 0.05,
    client=None,
    progress=None,
) -> dict:
    """Gi* hot spots of every community, one task per community; their spots as GeoParquet.

    Each task runs :func:`~gis_grid.analysis.hotspots.find_hotspots` with
    ``under=[community]`` and the same seed, as one process would.
    ``out`` gets the spots of all communities (``community_code`` a column);
    ``out`` with ``.units`` before its suffix gets every unit's z and p.
    """
    folder = Path(source)
    manifest = read_manifest(folder)
    _layer_files(folder, manifest, layer)
    params = {
        "layer": layer,
        "time_field": time_field,
        "since": since,
        "until": until,
        "by": by,
        "resolution": resolution,
        "permutations": permutations,
        "seed": seed,
        "alpha": alpha,
    }
    out = Path(out)
    staging = _staged(out)
    tasks = [(c, hotspots_of, (str(folder), c, params)) for c in communities_of(folder, manifest)]
    results = _run(client, tasks, progress)
    spots = pd.concat([r["spots"] for r in results], ignore_index=True)
    spots = gpd.GeoDataFrame(spots, geometry="geometry", crs=WGS84)
    units = pd.concat([r["units"] for r in results], ignore_index=True)
    try:
        spots.to_parquet(staging, index=False)
        units_path = out.with_name(f"{out.stem}.units{out.suffix or '.parquet'}")
        units.to_parquet(units_path, index=False)
        _finish(staging, out)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return {
        "communities": len(results),
        "hot": int(sum(r["summary"]["hot"] for r in results)),
        "cold": int(sum(r["summary"]["cold"] for r in results)),
        "units": len(units),
        "out": str(out),
        "summaries": {r["community"]: r["summary"] for r in results},
    }


def indicators_of(folder: str, community: str, params: dict) -> pd.DataFrame:
    """Case indicators per grid of one community (on a worker)."""
    from gis_grid.cases.indicators import indicators as run

    with tempfile.TemporaryDirectory(prefix="gis-grid-batch-") as tmp:
        store = community_store(folder, community, Path(tmp))
        try:
            return run(store, **params)
        finally:
            store.close()


def indicators(
    source,
    out,
    *,
    since: dt.datetime,
    until: dt.datetime,
    by: str = "area",
    at: dt.datetime | None = None,
    client=None,
    progress=None,
) -> pd.DataFrame:
    """Case indicators per grid of a level, every community a task; written as Parquet."""
    from gis_grid.cases.records import now

    if by not in LEVEL_KEYS:
        raise InputError(say("problem_batch_indicators_by", by=by, levels=", ".join(LEVEL_KEYS)))
    folder = Path(source)
    manifest = read_manifest(folder)
    params = {"since": since, "until": until, "by": by, "at": at or now()}
    out = Path(out)
    staging = _staged(out)
    tasks = [(c, indicators_of, (str(folder), c, params)) for c in communities_of(folder, manifest)]
    frames = [f for f in _run(client, tasks, progress) if len(f)]
    table = (
        pd.concat(frames, ignore_index=True)
        .sort_values("code", kind="stable")
        .reset_index(drop=True)
        if frames
        else pd.DataFrame()
    )
    try:
        table.to_parquet(staging, index=False)
        _finish(staging, out)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return table


def chains_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two frames (by ``id``) hold the same chain codes."""
    a = a.set_index("id").sort_index()[list(CHAIN_COLUMNS)].astype(object)
    b = b.set_index("id").sort_index()[list(CHAIN_COLUMNS)].astype(object)
    return bool(
        a.index.equals(b.index)
        and (a.where(a.notna(), "").to_numpy() == b.where(b.notna(), "").to_numpy()).all()
    )


__all__ = [
    "chains_equal",
    "connect",
    "hotspots",
    "indicators",
    "link",
    "link_part",
    "read_linked",
]

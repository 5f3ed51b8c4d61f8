"""Scale-out: 10,000,000 incidents linked over the city on a two-worker LocalCluster.

    python3 dev.py bench scale [--points 10000000] [--memory 1.5GB] [--hot 20] [--no-write]
    python3 dev.py bench scale --hot 200 --skip-link    # hot spots of the whole city only

In one script:

1. **Link.** The city (200 communities, ~511,000 grids of five levels) as
   GeoParquet partitioned by community, and ``--points`` incidents spread
   over it, one partition per community. ``gis_grid.batch.jobs.link`` runs
   first in this process alone (the peer: partition after partition), then
   on a LocalCluster of two worker processes, each capped at ``--memory``
   (the incidents as frames weigh more than one worker may hold, so the job
   only runs by streaming partitions). Throughput, and every worker's peak
   memory (polled every 0.5 s), beside the cap. Both answers are compared
   partition by partition.
2. **Hot spots.** ``--hot`` communities of the city with their incidents
   (as ``gis-grid demo`` makes them), Gi* per community on the cluster; the
   time of each community's task gives a projection of all 200 communities
   on N machines of two workers (``--hot 200``: the whole city, run, not
   projected, for one machine).

Figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_foundation import machine, publish  # noqa: E402


def city_export(folder: Path, communities: int) -> tuple[Path, gpd.GeoDataFrame]:
    """The city's grids as an export folder (grids only, with a manifest)."""
    from gis_grid.geo.crs import WGS84
    from gis_grid.sources.demo import CITY, generate
    from gis_grid.sources.parquet import FORMAT, VERSION, _write_partitioned

    data = generate(dataclasses.replace(CITY, communities=communities))
    grids = gpd.GeoDataFrame(data.grids, geometry="geometry", crs=WGS84)
    out = folder / "city"
    out.mkdir()
    tables = {
        "grids": _write_partitioned(
            grids, out / "grids", grids["code"].astype(str).str.slice(0, 12), geo=True
        )
    }
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "written_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tables": tables,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, grids.loc[grids["level"] == "community"]


def add_incidents(folder: Path, communities: gpd.GeoDataFrame, total: int) -> int:
    """``total`` incidents, an equal share in each community's bounds, one file per community."""
    from gis_grid.geo.crs import WGS84
    from gis_grid.sources.parquet import PART

    rng = np.random.default_rng(11)
    manifest = json.loads((folder / "manifest.json").read_text())
    per = total // len(communities)
    partitions, columns = {}, None
    start = np.datetime64("2026-09-01T00:00:00")
    for k, row in enumerate(communities.sort_values("code").itertuples()):
        x0, y0, x1, y1 = row.geometry.bounds
        n = per + (total - per * len(communities) if k == 0 else 0)
        frame = gpd.GeoDataFrame(
            {
                "id": [f"E{k:03d}{i:07d}" for i in range(n)],
                "reported_at": pd.array(
                    (start + rng.integers(0, 90 * 86400, n).astype("timedelta64[s]")).astype(str),
                    dtype="string",
                ),
                "category": pd.array(rng.choice(["治安", "环境", "设施"], n), dtype="string"),
            },
            geometry=shapely.points(rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)),
            crs=WGS84,
        )
        target = folder / "layers" / "incidents" / f"community_code={row.code}"
        target.mkdir(parents=True)
        frame.to_parquet(target / PART, index=False)
        partitions[row.code] = n
        if columns is None:
            import pyarrow.parquet as pq

            columns = {f.name: str(f.type) for f in pq.read_schema(target / PART)}
    manifest["tables"]["layers/incidents"] = {
        "partitioned_by": "community_code",
        "partitions": partitions,
        "columns": columns,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return sum(partitions.values())


class Peaks:
    """Every worker's peak resident memory, polled in a thread while a job runs."""

    def __init__(self, client, every: float = 0.5) -> None:
        self.client, self.every, self.peak = client, every, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        import psutil

        def rss():
            return psutil.Process().memory_info().rss

        while not self._stop.is_set():
            try:
                for worker, value in self.client.run(rss).items():
                    self.peak[worker] = max(self.peak.get(worker, 0), value)
            except Exception:  # noqa: S110 - a worker restarting: the next poll sees it
                pass
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def parse_bytes(text: str) -> int:
    from dask.utils import parse_bytes as parse

    return int(parse(text))


def main() -> None:
    from gis_grid.batch import jobs

    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--communities", type=int, default=200)
    ap.add_argument("--memory", default="1.5GB")
    ap.add_argument("--hot", type=int, default=20)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--skip-link", action="store_true", help="hot spots only")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    lines = [
        f"\n## Scale-out: batch jobs on a LocalCluster (`bench_scale.py`) — {dt.date.today()}\n",
        f"Machine: {machine()}.\n",
    ]
    try:
        if args.skip_link:
            lines += hot_spots(root, args.hot, args.communities)
            publish("\n".join(lines) + "\n", write=not args.no_write)
            return
        t0 = time.perf_counter()
        folder, communities = city_export(root, args.communities)
        t_grids = time.perf_counter() - t0
        t0 = time.perf_counter()
        total = add_incidents(folder, communities, args.points)
        t_points = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (folder / "layers").rglob("*.parquet")) / 1e6
        grids = sum(
            json.loads((folder / "manifest.json").read_text())["tables"]["grids"][
                "partitions"
            ].values()
        )
        lines.append(
            f"**Link**: {total:,} incidents ({size:,.0f} MB of GeoParquet, {len(communities)} "
            f"partitions) over {grids:,} grids of {len(communities)} communities (grids written "
            f"in {t_grids:.0f} s, incidents in {t_points:.0f} s).\n"
        )
        t0 = time.perf_counter()
        jobs.link(folder, root / "one", layer="incidents")
        t_one = time.perf_counter() - t0
        client, cluster = jobs.connect(local=2, memory_limit=args.memory)
        try:
            with Peaks(client) as peaks:
                t0 = time.perf_counter()
                jobs.link(folder, root / "two", layer="incidents", client=client)
                t_two = time.perf_counter() - t0
        finally:
            client.close()
            cluster.close()
        same, frame_mb = True, 0.0
        ones = sorted((root / "one").glob("*.parquet"), key=lambda p: int(p.stem.split(".")[1]))
        twos = sorted((root / "two").glob("*.parquet"), key=lambda p: int(p.stem.split(".")[1]))
        import pyarrow.parquet as pq

        for x, y in zip(ones, twos, strict=True):  # partition by partition: bounded here too
            a, b = gpd.read_parquet(x), gpd.read_parquet(y)
            same &= jobs.chains_equal(a, b)
            # what the partition weighs decoded (Arrow buffers), before any shapely object
            frame_mb += pq.read_table(x).nbytes / 1e6
        cap = parse_bytes(args.memory)
        worst = max(peaks.peak.values()) if peaks.peak else 0
        lines += [
            "| run | time | incidents/s | ratio |",
            "|---|---:|---:|---:|",
            f"| one process, partition after partition (the peer) | {t_one:.1f} s "
            f"| {total / t_one:,.0f} | 1.0× |",
            f"| LocalCluster, 2 workers × 1 thread, {args.memory} each | {t_two:.1f} s "
            f"| {total / t_two:,.0f} | {t_one / t_two:.2f}× |",
            "",
            "Peak memory per worker: "
            f"{', '.join(f'{v / 1e6:,.0f} MB' for v in sorted(peaks.peak.values()))} "
            f"(cap {cap / 1e6:,.0f} MB; worst {100 * worst / cap:.0f}% of it). "
            f"The linked incidents as frames weigh {frame_mb:,.0f} MB in memory"
            + (
                " decoded (Arrow buffers, before a shapely object is made) — more than a worker "
                "may hold, so the job only runs by streaming partitions"
                if frame_mb * 1e6 > cap
                else " decoded (Arrow buffers, before a shapely object is made)"
            )
            + f". Same chains from both runs, partition by partition: {same}.\n",
        ]
        lines += hot_spots(root, args.hot, args.communities)
        publish("\n".join(lines) + "\n", write=not args.no_write)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def warm_statistics() -> None:
    """Load the statistics and their compiled kernels (once per worker process)."""
    from gis_grid.analysis.hotspots import load_statistics

    load_statistics()


def hot_spots(root: Path, n: int, city: int) -> list[str]:
    """Gi* per community of ``n`` city communities on the cluster; a projection to the city."""
    from gis_grid.batch import jobs
    from gis_grid.sources.demo import CITY, write_demo
    from gis_grid.sources.parquet import export_parquet

    spec = dataclasses.replace(CITY, communities=n)
    t0 = time.perf_counter()
    with write_demo(root / "hot.gpkg", spec) as store:
        incidents = len(store.features("incidents"))
        export_parquet(store, root / "hot")
    t_build = time.perf_counter() - t0
    client, cluster = jobs.connect(local=2, memory_limit="2GB")
    try:
        # the statistics' compiled kernels load once per worker: not a community's cost
        client.run(
            lambda: __import__("gis_grid.analysis.hotspots", fromlist=["x"]).load_statistics()
        )
        started = time.perf_counter()
        result = jobs.hotspots(root / "hot", root / "spots.parquet", client=client)
        wall = time.perf_counter() - started
    finally:
        client.close()
        cluster.close()
    per = 2 * wall / n  # worker-seconds per community (two workers busy throughout)
    lines = [
        f"**Hot spots** (Gi*, 999 permutations, H3 resolution 11, the last 7 days against the 7 "
        f"before) of {n} city communities ({incidents:,} incidents; built and exported in "
        f"{t_build:.0f} s), one task per community on 2 workers: {wall:.1f} s, "
        f"{result['hot']:,} hot and {result['cold']:,} cold cells; {per:.1f} worker-seconds per "
        "community (each task loads its community into a store of its own, then runs the "
        "single-process `find_hotspots`).\n",
        (
            f"All {city} communities ran here, on one machine; the projection to more machines "
            "comes from that per-community cost (partitions are independent, so it divides by "
            "the workers):\n"
            if n >= city
            else f"Projection for all {city} communities, from that per-community cost "
            "(partitions are independent, so it divides by the workers):\n"
        ),
        "| machines (2 workers each) | projected time |",
        "|---:|---:|",
    ]
    for machines in (1, 2, 4, 8, 16):
        lines.append(f"| {machines} | {city * per / (2 * machines):,.0f} s |")
    lines.append("")
    return lines


if __name__ == "__main__":
    main()

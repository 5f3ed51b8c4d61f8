"""PostGIS store beside the embedded store, on the city-scale dataset.

Run with ``python3 dev.py bench --postgis`` (needs PostgreSQL with PostGIS at
GIS_GRID_TEST_SERVER, default postgresql://postgres@127.0.0.1:5432). Measures,
in one script: loading the city into PostGIS with ``gis-grid copy`` from a
GeoPackage, single point lookups (p50/p95 latency, 1,000 points one at a
time), a batch lookup of 1,000,000 points, and validation — each beside the
embedded store. Appends a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg

from gis_grid.sources.demo import CITY, generate
from gis_grid.store import ChangeSet, open_store

sys.path.insert(0, str(Path(__file__).parent))
from bench_foundation import RESULTS, machine, timed  # noqa: E402

SERVER = os.environ.get("GIS_GRID_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, default=CITY.communities)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--singles", type=int, default=1_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    database = f"gis_grid_bench_{os.getpid()}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
        version = admin.execute("SELECT version()").fetchone()[0].split(" on ")[0]
    url = f"{SERVER}/{database}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = generate(replace(CITY, communities=args.communities))
            path = Path(tmp) / "city.gpkg"
            with open_store(path, create=True) as gpkg:
                t_gpkg, _ = timed(gpkg.apply, ChangeSet(data.grids, data.staff, data.assignments))
            cli = [sys.executable, "-m", "gis_grid"]
            subprocess.run([*cli, "migrate", url], check=True, capture_output=True)
            t_copy, _ = timed(
                subprocess.run, [*cli, "copy", str(path), url], check=True, capture_output=True
            )
            with psycopg.connect(url) as conn:
                postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
                geos = conn.execute("SELECT postgis_geos_version()").fetchone()[0].split("-")[0]
                size_mb = (
                    conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 1e6
                )
            say(f"## PostGIS store beside the embedded store — {time.strftime('%Y-%m-%d')}")
            say()
            say(
                f"- machine: {machine()}; {version}, PostGIS {postgis} "
                f"(GEOS {geos}) on the same machine"
            )
            say(
                f"- data: city, {args.communities} communities, {len(data.grids):,} grids, "
                f"{len(data.staff):,} staff, {len(data.assignments):,} assignments"
            )
            say()
            say("| what | embedded (GeoPackage) | PostGIS | ratio |")
            say("|---|---|---|---|")
            say(
                f"| load the whole city (embedded: `apply`; PostGIS: `gis-grid copy` from the "
                f"GeoPackage, read included) | {t_gpkg:.1f} s | {t_copy:.1f} s "
                f"({size_mb:,.0f} MB) | {t_copy / t_gpkg:.2f} |"
            )

            with open_store(path) as gpkg, open_store(url) as pg:
                bounds = data.grids.loc[data.grids.level == "community"].total_bounds
                rng = np.random.default_rng(7)
                sx = rng.uniform(bounds[0], bounds[2], args.singles)
                sy = rng.uniform(bounds[1], bounds[3], args.singles)
                gpkg.lookup(sx[:1], sy[:1])  # build the embedded index once (a server would)
                pg.lookup(sx[:1], sy[:1])
                lat = {}
                for name, store in (("gpkg", gpkg), ("pg", pg)):
                    times = []
                    for xi, yi in zip(sx, sy, strict=True):
                        t0 = time.perf_counter()
                        store.lookup([xi], [yi])
                        times.append((time.perf_counter() - t0) * 1000)
                    q = statistics.quantiles(times, n=20)
                    lat[name] = (statistics.median(times), q[18])
                say(
                    f"| single lookup, five levels, {args.singles:,} points one at a time: "
                    f"p50 / p95 | {lat['gpkg'][0]:.2f} / {lat['gpkg'][1]:.2f} ms "
                    f"| {lat['pg'][0]:.2f} / {lat['pg'][1]:.2f} ms "
                    f"| {lat['pg'][0] / lat['gpkg'][0]:.1f} |"
                )
                bx = rng.uniform(bounds[0], bounds[2], args.points)
                by = rng.uniform(bounds[1], bounds[3], args.points)
                t_ge, a = timed(gpkg.lookup, bx, by)
                # in SQL: what answers before the in-process index is built (or without it)
                t_ps, b = timed(pg._lookup_sql, bx, by)
                t_ix, _ = timed(pg.wait_for_index)
                t_pe, c = timed(pg.lookup, bx, by)

                def plain(frame):
                    return frame.astype(object).fillna("").to_numpy()

                same = (plain(a) == plain(b)).all() and (plain(a) == plain(c)).all()
                say(
                    f"| batch lookup of {args.points:,} points, PostGIS from its in-process index "
                    f"(warm; the grid generation read first) | {t_ge:.2f} s "
                    f"({args.points / t_ge:,.0f}/s) | {t_pe:.2f} s ({args.points / t_pe:,.0f}/s) "
                    f"| {t_pe / t_ge:.1f} |"
                )
                say(
                    f"| … the same batch in SQL (binary COPY, two connections over the halves "
                    f"of a Z-order curve; before the index is built) | {t_ge:.2f} s "
                    f"| {t_ps:.2f} s ({args.points / t_ps:,.0f}/s) | {t_ps / t_ge:.1f} |"
                )
                say(
                    f"| build PostGIS's in-process index (all grids and staff in force, in the "
                    f"background) | — | {t_ix:.1f} s | — |"
                )
                t_gv, pa = timed(gpkg.validate)
                t_pv, pb = timed(pg.validate)
                say(
                    f"| validate all five levels | {t_gv:.1f} s ({len(pa)} problems) "
                    f"| {t_pv:.1f} s ({len(pb)} problems) | {t_pv / t_gv:.2f} |"
                )
            say()
            say(
                f"Both stores answer the {args.points:,} lookups identically, PostGIS by either "
                f"path: {same}. The embedded store answers from an in-memory index built once "
                "per process; PostGIS from the same index of its grids while it matches the "
                "database's grid generation (checked before every batch), and otherwise joins "
                "the points to ST_Subdivide'd polygons under a GiST index on the server. A "
                "single lookup is always one query."
            )
            say()
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    if not args.no_write:
        with RESULTS.open("a") as fh:
            fh.write("\n".join(lines) + "\n\n")


if __name__ == "__main__":
    main()

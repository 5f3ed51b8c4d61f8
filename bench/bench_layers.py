"""Layers and analysis on the city-scale dataset (issue #4 targets).

Run with ``python3 dev.py bench layers`` (add ``--no-postgis`` without a
PostGIS server). In one script, on the city (200 communities, ~100k buildings):

- linking 1,000,000 incidents down the five levels: the embedded store's link
  step (link points, grid index, chain columns) vs one ``geopandas.sjoin`` per
  level vs the PostGIS store's lookup (same points, answers compared);
- CCTV holes for 20,000 cameras (views stopped by ~100k buildings, uncovered
  public space of every area);
- Gi* with 999 permutations over the H3 cells of 1,000,000 incidents, checked
  against esda's ``G_Local`` on weights built the usual libpysal way (same seed);
- the kernel-density surface of 1,000,000 incidents at 20 m cells.

Appends a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.analysis.hotspots import gi_star, h3_cells, h3_units, kernel_density
from gis_grid.geo.coverage import parts, public_space, uncovered, view_sectors
from gis_grid.geo.crs import project
from gis_grid.grids.lookup import GridIndex
from gis_grid.layers.features import link_points
from gis_grid.sources.demo import CITY, generate
from gis_grid.store.base import chain_frame

sys.path.insert(0, str(Path(__file__).parent))
from bench_foundation import RESULTS, machine, sjoin_per_level, timed  # noqa: E402

SERVER = os.environ.get("GIS_GRID_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")
warnings.filterwarnings("ignore")


def incidents(data, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """n points: 80% uniform over the communities, 20% in 500 clusters of σ = 25 m."""
    rng = np.random.default_rng(seed)
    communities = data.grids.loc[data.grids.level == "community"].geometry.to_numpy()
    union = shapely.union_all(communities)
    shapely.prepare(union)
    b = shapely.total_bounds(communities)
    xy = np.empty((0, 2))
    while len(xy) < int(n * 0.8):
        cand = rng.uniform(b[:2], b[2:], (n, 2))
        xy = np.r_[xy, cand[shapely.contains_xy(union, cand[:, 0], cand[:, 1])]]
    xy = xy[: int(n * 0.8)]
    centres = xy[rng.choice(len(xy), 500, replace=False)]
    k = n - len(xy)
    clustered = centres[rng.integers(0, 500, k)] + rng.normal(0, 25 / 111_000, (k, 2))
    xy = np.r_[xy, clustered]
    return xy[:, 0], xy[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, default=CITY.communities)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--cameras", type=int, default=20_000)
    parser.add_argument(
        "--district",
        type=int,
        default=60,
        help="communities whose H3 cells Gi* runs over (60: ~100,000 cells)",
    )
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--no-import", action="store_true", help="skip the import benchmark")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    t_gen, data = timed(generate, replace(CITY, communities=args.communities))
    grids = data.grids
    counts = grids.groupby("level").size()
    lon, lat = incidents(data, args.points)
    pts = shapely.points(lon, lat)
    say(f"## Layers and analysis — {time.strftime('%Y-%m-%d')}")
    say()
    say(f"Machine: {machine()}")
    say(
        f"Data: the city ({args.communities} communities, {counts.get('area', 0):,} areas, "
        f"{counts.get('building', 0):,} buildings, {counts.get('unit', 0):,} units; "
        f"generated in {t_gen:.0f} s); {args.points:,} incidents (80% uniform, 20% in 500 "
        "clusters)."
    )
    say()

    # -- the incidents as an import would have them ---------------------------------------
    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer

    layer = get_layer("incidents")
    schema = layer.schema
    rng = np.random.default_rng(5)
    stamps = pd.Timestamp("2026-08-01") + pd.to_timedelta(
        rng.uniform(0, 90 * 86400, args.points), unit="s"
    )
    raw = gpd.GeoDataFrame(
        {
            "id": [f"E{i:07d}" for i in range(args.points)],
            "reported_at": stamps.strftime("%Y-%m-%d %H:%M:%S"),
            "category": rng.choice(["市容环境", "矛盾纠纷", "治安", "物业", "other"], args.points),
        },
        geometry=pts,
        crs="EPSG:4326",
    )
    t_check, checked = timed(lambda: layer.check(normalise_features(schema, raw)))
    imports: dict[str, float] = {}

    # -- linking ---------------------------------------------------------------------
    index = GridIndex(grids["code"].to_numpy(), grids.geometry.to_numpy())
    index.lookup(lon[:1000], lat[:1000])  # warm

    def link():
        x, y = link_points(pts)
        return chain_frame(index.lookup(x, y))

    runs = [timed(link) for _ in range(3)]
    t_link = statistics.median(t for t, _ in runs)
    chains = runs[0][1]
    t_sjoin, peer = timed(sjoin_per_level, grids, lon, lat)
    agree = {
        lv: float(
            (
                chains[f"{lv}_code"].fillna("-").to_numpy()
                == peer[lv].astype(object).fillna("-").to_numpy()
            ).mean()
        )
        for lv in ("community", "area", "courtyard", "building", "unit")
    }
    say("### Linking incidents down the five levels")
    say()
    say("| what | time | incidents/s | ratio |")
    say("|---|---:|---:|---:|")
    say(
        f"| embedded link step (median of 3) | {t_link:.2f} s | {args.points / t_link:,.0f} "
        "| 1.0× |"
    )
    say(
        f"| geopandas.sjoin, one per level | {t_sjoin:.2f} s | {args.points / t_sjoin:,.0f} | "
        f"{t_sjoin / t_link:.1f}× slower |"
    )
    if not args.no_postgis:
        import psycopg

        from gis_grid.store import ChangeSet, open_store

        database = f"gis_grid_bench_layers_{os.getpid()}"
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {database}")
        try:
            with open_store(f"{SERVER}/{database}", create=True) as pg:
                pg.apply(ChangeSet(data.grids, data.staff, data.assignments))
                t_pg, answer = timed(pg.lookup, lon, lat)
                if not args.no_import:
                    imports["PostGIS"] = timed(pg.write_features, schema, checked)[0]
                same = all(
                    (
                        answer[lv].astype(object).fillna("-").to_numpy()
                        == chains[f"{lv}_code"].fillna("-").to_numpy()
                    ).all()
                    for lv in ("community", "area", "courtyard", "building", "unit")
                )
            say(
                f"| PostGIS store lookup (COPY + LATERAL join) | {t_pg:.2f} s | "
                f"{args.points / t_pg:,.0f} | {t_pg / t_link:.1f}× slower |"
            )
            say()
            say(
                f"Agreement: sjoin {', '.join(f'{k} {v:.4%}' for k, v in agree.items())}; "
                f"PostGIS identical for every point: {same}."
            )
        finally:
            with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    else:
        say()
        say(f"Agreement with sjoin: {', '.join(f'{k} {v:.4%}' for k, v in agree.items())}.")
    say()
    if not args.no_import:
        import tempfile

        from gis_grid.store import ChangeSet, open_store

        with (
            tempfile.TemporaryDirectory() as tmp,
            open_store(Path(tmp) / "city.gpkg", create=True) as gpkg,
        ):
            gpkg.apply(ChangeSet(data.grids, data.staff, data.assignments))
            gpkg.index()  # the lookup index is built once per store generation
            imports = {"GeoPackage": timed(gpkg.write_features, schema, checked)[0], **imports}
        say(f"### Importing {args.points:,} incidents")
        say()
        say(
            f"Checking the rows (types, choices, times, coordinates): {t_check:.1f} s. "
            "Linking and writing, one transaction: "
            + "; ".join(
                f"{name} {t:.1f} s ({args.points / t:,.0f}/s)" for name, t in imports.items()
            )
            + "."
        )
        say()

    # -- CCTV holes ------------------------------------------------------------------
    rng = np.random.default_rng(2)
    crs = data.metric_crs
    areas = grids.loc[grids.level == "area"]
    buildings = project(grids.loc[grids.level == "building"].geometry.to_numpy(), crs)
    area_m = project(areas.geometry.to_numpy(), crs)
    yards = project(grids.loc[grids.level == "courtyard"].geometry.to_numpy(), crs)
    pick = rng.integers(0, len(yards), args.cameras)
    b = shapely.bounds(yards[pick])
    cx = np.where(rng.random(args.cameras) < 0.5, b[:, 0] + 3, b[:, 2] - 3)
    cy = np.where(rng.random(args.cameras) < 0.5, b[:, 1] + 3, b[:, 3] - 3)
    start = time.perf_counter()
    views = view_sectors(cx, cy, rng.uniform(0, 360, args.cameras), 90.0, 45.0, buildings)
    t_views = time.perf_counter() - start
    public = public_space(area_m, buildings)
    t_public = time.perf_counter() - start - t_views
    left, covered = uncovered(public, views)
    holes, owner = parts(left, min_area=25.0)
    t_total = time.perf_counter() - start
    pct = 100 * shapely.area(covered).sum() / shapely.area(public).sum()
    say(
        f"### CCTV holes: {args.cameras:,} cameras, {len(buildings):,} buildings, "
        f"{len(area_m):,} areas"
    )
    say()
    say(
        f"Total {t_total:.1f} s: camera views stopped by walls {t_views:.1f} s (rays every 1° "
        f"plus either side of every building corner in view), public space (areas minus "
        f"buildings) {t_public:.1f} s, uncovered space and holes "
        f"{t_total - t_views - t_public:.1f} s. "
        f"Coverage {pct:.1f}% of public space; {len(holes):,} holes ≥ 25 m²."
    )
    say()

    # -- Gi* over H3 ---------------------------------------------------------------------
    import esda
    from libpysal.weights import W

    # a district of the city: its communities' cells (~100,000 at resolution 11) and
    # 1,000,000 incidents over it
    district = grids.loc[grids.level == "community"].iloc[: args.district]
    communities = district.geometry.to_numpy()
    d_lon, d_lat = incidents(
        replace(data, grids=grids.loc[grids["code"].str.slice(0, 12).isin(district["code"])]),
        args.points,
        seed=3,
    )
    small = gi_star(np.arange(10.0), np.eye(10, k=1) + np.eye(10, k=-1), permutations=9)
    del small  # numba compiles esda's kernels once per process (~20 s): not counted
    start = time.perf_counter()
    cells = h3_cells(d_lon, d_lat, 11)
    t_cells = time.perf_counter() - start
    units = h3_units(communities, 11, extra=cells)
    t_units = time.perf_counter() - start - t_cells
    print(f"  {len(units.ids):,} cells", flush=True)
    counts_h3 = np.bincount(pd.Index(units.ids).get_indexer(cells), minlength=len(units.ids))
    result = gi_star(counts_h3, units.adjacency, permutations=999, seed=7)
    t_gi = time.perf_counter() - start
    coo = units.adjacency.tocoo()
    neighbours = {i: [] for i in range(len(units.ids))}
    for i, j in zip(coo.row.tolist(), coo.col.tolist(), strict=True):
        neighbours[i].append(j)
    start = time.perf_counter()
    w = W(neighbours, silence_warnings=True)
    w.transform = "B"
    ref = esda.G_Local(
        counts_h3.astype(float),
        w,
        transform="B",
        star=True,
        permutations=999,
        seed=7,
        keep_simulations=False,
    )
    t_ref = time.perf_counter() - start
    same_z = np.allclose(np.nan_to_num(ref.Zs), result["z"])
    same_p = np.allclose(ref.p_sim, result["p_sim"])
    say(
        f"### Gi* over H3: {len(units.ids):,} cells (resolution 11) of {args.points:,} incidents "
        f"in a district of {args.district} communities, 999 permutations"
    )
    say()
    say(
        f"Total {t_gi:.1f} s (target ≤ 10 s): cells of the incidents {t_cells:.1f} s, study "
        f"cells with neighbours {t_units:.1f} s, Gi* {t_gi - t_cells - t_units:.1f} s. "
        f"{int((result['spot'] == 'hot').sum()):,} hot, {int((result['spot'] == 'cold').sum()):,} "
        f"cold at FDR 5%. esda G_Local on a libpysal W built from a neighbour dict, same seed: "
        f"{t_ref:.1f} s (weights + statistic); same z: {same_z}, same permutation p: {same_p}."
    )
    say()

    # -- KDE -------------------------------------------------------------------------------
    xy = project(pts, crs)
    x, y = shapely.get_x(xy), shapely.get_y(xy)
    runs = [timed(kernel_density, x, y, cell_m=20.0, bandwidth_m=60.0) for _ in range(3)]
    t_kde = statistics.median(t for t, _ in runs)
    surface = runs[0][1]
    say(f"### Kernel density of {args.points:,} incidents at 20 m cells")
    say()
    say(
        f"{t_kde:.2f} s median of 3 (target ≤ 2 s) for a {surface.density.shape[1]:,} × "
        f"{surface.density.shape[0]:,} surface (σ = 60 m); integral {surface.total():,.0f} "
        "incidents."
    )
    say()
    if not args.no_write:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

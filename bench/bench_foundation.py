"""Benchmarks for the foundation: city-scale validation and 1,000,000-point lookup.

Run with ``python3 dev.py bench`` (add ``--communities 20`` for a quick run).
Everything is measured in this one process, ours beside the peer, on the same
data; the figures are appended to bench/RESULTS.md as a dated section.

1. Validation of all five levels of the city-scale dataset (target < 60 s),
   and, on a 20-community slice, our validation beside a straightforward
   geopandas implementation of the same rules (sjoin for overlaps, overlay
   difference for spills, dissolve + difference for gaps), with their answers
   compared on a copy with planted problems.
2. Lookup of 1,000,000 random points down the five levels, index build
   included: GridIndex beside one geopandas.sjoin per level (which builds its
   own tree each time), with the answers compared point by point; and, for
   scale, a single bulk STRtree query of the points against the units only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

import gis_grid
from gis_grid.domain.model import Level
from gis_grid.geo.crs import WGS84, local_metric_crs
from gis_grid.grids.lookup import GridIndex
from gis_grid.grids.topology import validate
from gis_grid.sources.demo import CITY, generate
from gis_grid.store import ChangeSet
from gis_grid.store.gpkg import GeoPackageStore

RESULTS = Path(__file__).with_name("RESULTS.md")


def timed(func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - start, result


def publish(text: str, write: bool = True) -> None:
    """Print a results section and, unless told not to, append it to bench/RESULTS.md."""
    print(text)
    if write:
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(text)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} vCPU ({cpu}), Python {platform.python_version()}, "
        f"shapely {shapely.__version__} (GEOS {'.'.join(map(str, shapely.geos_version))}), "
        f"geopandas {gpd.__version__}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"GDAL {pyogrio.__gdal_version_string__}, gis-grid {gis_grid.__version__}"
    )


# -- the peer: the same rules written the obvious geopandas way -----------------------


def naive_validate(grids: gpd.GeoDataFrame, tolerance=0.5, min_area=0.1) -> pd.DataFrame:
    """Overlaps, spills and gaps with geopandas sjoin/overlay/dissolve, in one metric CRS."""
    minx, miny, maxx, maxy = grids.total_bounds
    metric = grids.to_crs(local_metric_crs((minx + maxx) / 2, (miny + maxy) / 2))
    metric["parent"] = metric["code"].map(
        lambda c: c[: {15: 12, 18: 15, 21: 18, 23: 21}[len(c)]] if len(c) > 12 else None
    )
    rows = []
    for level in Level:
        part = metric.loc[
            metric["code"].str.len() == level.code_length, ["code", "parent", "geometry"]
        ]
        pairs = gpd.sjoin(part, part, predicate="intersects")
        pairs = pairs.loc[
            (pairs["code_left"] < pairs["code_right"])
            & (pairs["parent_left"].fillna("") == pairs["parent_right"].fillna(""))
        ]
        if len(pairs):
            other = part.set_index("code").geometry.loc[pairs["code_right"]].to_numpy()
            area = shapely.area(shapely.intersection(pairs.geometry.to_numpy(), other))
            for a, x in zip(pairs["code_left"], area, strict=True):
                if x >= min_area:
                    rows.append(("overlap", a, x))
        if level is Level.COMMUNITY:
            continue
        parents = metric.set_index("code").geometry
        has = part["parent"].isin(parents.index)
        child = part.loc[has]
        par = parents.loc[child["parent"]].to_numpy()
        spill = shapely.difference(child.geometry.to_numpy(), shapely.buffer(par, tolerance))
        for code, x in zip(child["code"], shapely.area(spill), strict=True):
            if x > 0:
                rows.append(("outside_parent", code, x))
        if level in (Level.AREA, Level.UNIT):
            union = child.dissolve(by="parent")
            hole = shapely.difference(
                parents.loc[union.index].to_numpy(), union.geometry.to_numpy()
            )
            for code, x in zip(union.index, shapely.area(hole), strict=True):
                if x >= min_area:
                    rows.append(("gap", code, x))
    return pd.DataFrame(rows, columns=["kind", "code", "area_m2"])


def plant_problems(grids: gpd.GeoDataFrame, n: int, seed: int = 1) -> gpd.GeoDataFrame:
    """Shrink n units (gaps in their buildings) and grow n courtyards (overlaps/spills)."""
    rng = np.random.default_rng(seed)
    out = grids.copy()
    for level, factor in (("unit", 0.8), ("courtyard", 1.3)):
        rows = rng.choice(np.flatnonzero(out["level"] == level), n, replace=False)
        geoms = out.geometry.to_numpy().copy()
        geoms[rows] = [shapely.affinity.scale(g, factor, factor) for g in geoms[rows]]
        out["geometry"] = gpd.GeoSeries(geoms, crs=WGS84)
    return out


# -- the lookup peer -----------------------------------------------------------------


def sjoin_per_level(grids: gpd.GeoDataFrame, x, y) -> pd.DataFrame:
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=WGS84)
    out = {}
    for level in Level:
        part = grids.loc[grids["level"] == level.key, ["code", "geometry"]]
        joined = gpd.sjoin(pts, part, predicate="within", how="left")
        # the smallest code per point (the lookup rule on shared edges): sort, keep first
        joined = joined.sort_values("code", kind="stable")
        first = joined.loc[~joined.index.duplicated(), "code"]
        out[level.key] = first.reindex(range(len(x)))
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, default=CITY.communities)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="Do not append to RESULTS.md")
    args = parser.parse_args()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    spec = replace(CITY, communities=args.communities)
    t_gen, data = timed(generate, spec)
    grids = data.grids
    sizes = grids["level"].value_counts().reindex([lv.key for lv in Level]).to_dict()
    say(f"## Foundation benchmark — {dt.date.today().isoformat()}")
    say()
    say(f"- machine: {machine()}")
    say(
        f"- data: `DemoSpec` city, {args.communities} communities — "
        + ", ".join(f"{v:,} {k}" for k, v in sizes.items())
        + f" ({len(grids):,} grids), {len(data.staff):,} staff, "
        f"{len(data.assignments):,} assignments; generated in {t_gen:.1f} s"
    )

    # 1. load into the embedded store and validate everything through it
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "city.gpkg"
        with GeoPackageStore(path) as store:
            t_load, _ = timed(store.apply, ChangeSet(grids, data.staff, data.assignments))
            t_val, problems = timed(store.validate)
        size_mb = path.stat().st_size / 1e6
    say(
        f"- load into a new GeoPackage (all write checks, one transaction): {t_load:.1f} s, "
        f"{size_mb:,.0f} MB"
    )
    say()
    say("### Validation (all five levels, topology + codes + staffing)")
    say()
    say("| what | time | problems |")
    say("|---|---|---|")
    say(
        f"| `gis-grid validate` on the store (read + validate), {len(grids):,} grids "
        f"| {t_val:.1f} s | {len(problems)} |"
    )
    t_mem, _ = timed(validate, grids, data.assignments)
    say(f"| `validate()` on the in-memory table | {t_mem:.1f} s | |")
    say()
    say(f"Target < 60 s: {'met' if t_val < 60 else 'NOT met'} ({t_val:.1f} s).")
    say()

    # validation beside the geopandas peer, on a slice, with planted problems
    communities = sorted(grids.loc[grids.level == "community", "code"])[:20]
    part = grids.loc[grids["code"].str.slice(0, 12).isin(communities)].reset_index(drop=True)
    planted = plant_problems(part, 25)
    t_ours, ours = timed(validate, planted, None)
    t_peer, peer = timed(naive_validate, planted)
    ours_set = {
        (k, c[0])
        for k, c in zip(ours["kind"], ours["codes"], strict=True)
        if k in ("overlap", "gap", "outside_parent")
    }
    peer_set = {(k, c) for k, c in zip(peer["kind"], peer["code"], strict=True)}
    say(
        f"On a {len(communities)}-community slice ({len(part):,} grids) with 25 shrunken units "
        "and 25 grown courtyards planted:"
    )
    say()
    say("| implementation | time | overlaps | gaps | outside parent |")
    say("|---|---|---|---|---|")
    for name, t, frame in (
        ("gis-grid `validate`", t_ours, ours),
        ("geopandas sjoin/overlay/dissolve", t_peer, peer),
    ):
        counts = frame["kind"].value_counts()
        say(
            f"| {name} | {t:.2f} s | {counts.get('overlap', 0)} | {counts.get('gap', 0)} | "
            f"{counts.get('outside_parent', 0)} |"
        )
    say()
    say(
        f"Ratio: gis-grid is {t_peer / t_ours:.1f}× faster; the two agree on "
        f"{len(ours_set & peer_set)} of {len(ours_set | peer_set)} (kind, grid) findings"
        + (
            "."
            if ours_set == peer_set
            else f" (only ours: {sorted(ours_set - peer_set)[:3]}, only peer: "
            f"{sorted(peer_set - ours_set)[:3]})."
        )
    )
    say()

    # 2. lookup of random points down the five levels
    rng = np.random.default_rng(42)
    minx, miny, maxx, maxy = grids.loc[grids.level == "community"].total_bounds
    x = rng.uniform(minx, maxx, args.points)
    y = rng.uniform(miny, maxy, args.points)
    codes = grids["code"].to_numpy()
    geoms = grids.geometry.to_numpy()

    def ours_run(workers=None):
        index = GridIndex(codes, geoms, workers=workers)
        return index.lookup(x, y)

    runs = [timed(ours_run) for _ in range(args.repeat)]
    t_ours = statistics.median(t for t, _ in runs)
    best = min(t for t, _ in runs)
    answer = runs[0][1]
    single = statistics.median(timed(ours_run, 1)[0] for _ in range(max(1, args.repeat // 2)))
    t_build = statistics.median(timed(GridIndex, codes, geoms)[0] for _ in range(3))
    t_sjoin, expected = timed(sjoin_per_level, grids, x, y)
    agree = {
        lv.key: float(
            (
                answer[lv.key].astype(object).fillna("").to_numpy()
                == expected[lv.key].fillna("").to_numpy()
            ).mean()
        )
        for lv in Level
    }
    units = grids.loc[grids.level == "unit"].geometry.to_numpy()
    t_tree, _ = timed(
        lambda: shapely.STRtree(units).query(shapely.points(x, y), predicate="within")
    )
    found = answer.notna().mean()
    say(
        f"### Point lookup: {args.points:,} random points over the city, five levels, "
        "index build included"
    )
    say()
    say("| method | time | points/s | vs sjoin |")
    say("|---|---|---|---|")
    say(
        f"| GridIndex (build + lookup), 2 threads, median of {args.repeat} (best {best:.2f} s) "
        f"| {t_ours:.2f} s | {args.points / t_ours:,.0f} | {t_sjoin / t_ours:.1f}× |"
    )
    say(
        f"| GridIndex, 1 thread | {single:.2f} s | {args.points / single:,.0f} "
        f"| {t_sjoin / single:.1f}× |"
    )
    say(f"| of which index build ({len(grids):,} polygons) | {t_build:.2f} s | | |")
    say(
        f"| geopandas.sjoin, one per level (`within`) | {t_sjoin:.2f} s "
        f"| {args.points / t_sjoin:,.0f} | 1.0× |"
    )
    say(
        f"| for scale: one STRtree query, units only | {t_tree:.2f} s "
        f"| {args.points / t_tree:,.0f} | |"
    )
    say()
    say(
        "Agreement with sjoin, per level: "
        + ", ".join(f"{k} {v:.4%}" for k, v in agree.items())
        + ". Points found per level: "
        + ", ".join(f"{k} {v:.1%}" for k, v in found.items())
        + "."
    )
    say()
    ok = args.points / t_ours >= 1_000_000
    say(
        f"Targets: ≥ 1,000,000 points/s — {'met' if ok else 'NOT met'} "
        f"({args.points / t_ours:,.0f}/s median, {args.points / best:,.0f}/s best); "
        f"≥ 2× sjoin — {'met' if t_sjoin / t_ours >= 2 else 'NOT met'} "
        f"({t_sjoin / t_ours:.1f}×); 100% agreement — "
        f"{'met' if all(v == 1.0 for v in agree.values()) else 'NOT met'}."
    )
    say()
    if not args.no_write:
        with RESULTS.open("a") as fh:
            fh.write("\n".join(lines) + "\n\n")
        print(f"appended to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()

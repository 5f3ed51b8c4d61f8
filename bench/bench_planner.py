"""The planner's editor: how fast a preview answers, and what the page weighs.

    python3 dev.py bench planner [--runs 20] [--no-write]

Two stores, each a GeoPackage built in a temporary folder:

1. the demo community (宏大社区: 8 areas, 30 courtyards, 3,211 households,
   its incidents);
2. one city-size community (the city demo's per-community size: 35 areas,
   100 courtyards, 500 buildings, 14,000 households, its incidents).

For each, the four tools are previewed ``--runs`` times through the HTTP API
(FastAPI's in-process client, so the JSON both ways is counted):
``POST /planner/preview`` for a merge of two neighbouring areas, a split of
an area along a drawn line (the line between the halves the rebalancer would
make), a move of a courtyard to a neighbouring area and a redraw that drags
one corner 4 m. p50 and p95 go beside the peer run in the same process: the
same dry run followed by the whole panel computed again (every grid's
workload, compactness and staff read anew), which is what a page without
incremental figures would pay. The target (issue #17): a preview within
300 ms on the demo.

The page's weight: the planner page opened in a headless Chromium on the
demo until ready, every response's bytes summed by kind, beside the overview
page loaded the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_foundation import machine, publish  # noqa: E402


def build(folder: Path, spec) -> Path:
    from gis_grid.sources.demo import write_demo

    path = folder / "store.gpkg"
    write_demo(path, spec).close()
    return path


def edits_of(store) -> dict:
    """One edit per tool that the engine accepts on this store (found by trying)."""
    from gis_grid.planning import edits

    community = store.grids(level="community")["code"].iloc[0]
    areas = store.grids(level="area").set_index("code")
    version = {c: int(v) for c, v in areas["version"].items()}
    codes = list(areas.index)
    found: dict = {}
    # merge: the pair sharing the longest edge
    best = max(
        ((a, b) for i, a in enumerate(codes) for b in codes[i + 1 :]),
        key=lambda p: shapely.length(
            shapely.intersection(areas.geometry[p[0]], areas.geometry[p[1]])
        ),
    )
    found["merge"] = {
        "operation": "merge",
        "codes": list(best),
        "versions": {c: version[c] for c in best},
    }
    # split: along the line between the halves of the busiest area
    busiest = areas["households"].idxmax()
    halves = edits.split(store, busiest, parts=2, dry_run=True).change.grids
    tops = halves.loc[halves["code"].str.len() == 15].geometry.to_numpy()
    shared = shapely.get_coordinates(shapely.line_merge(shapely.intersection(tops[0], tops[1])))
    out = 0.0003
    start = shared[0] + out * (shared[0] - shared[1]) / np.linalg.norm(shared[0] - shared[1])
    end = shared[-1] + out * (shared[-1] - shared[-2]) / np.linalg.norm(shared[-1] - shared[-2])
    found["split"] = {
        "operation": "split",
        "code": busiest,
        "line": {"type": "LineString", "coordinates": [list(start), *shared.tolist(), list(end)]},
        "version": version[busiest],
    }
    # move: a courtyard the engine lets go to a neighbouring area
    yards = store.grids(level="courtyard")
    for y in yards.itertuples():
        to = next(
            (
                a
                for a in codes
                if a != y.code[:15] and areas.geometry[a].distance(y.geometry) < 0.0002
            ),
            None,
        )
        if to is None:
            continue
        try:
            edits.move(store, [y.code], to, dry_run=True)
        except Exception:  # noqa: S112 - not this one
            continue
        found["move"] = {
            "operation": "move",
            "atoms": [y.code],
            "to": to,
            "versions": {y.code: int(y.version), to: version[to]},
        }
        break
    # redraw: one corner dragged 4 m, the neighbour giving way
    for a in codes:
        ring = shapely.get_coordinates(areas.geometry[a].exterior)[:-1]
        for i in range(len(ring)):
            for dx, dy in ((0.00005, 0), (-0.00005, 0), (0, 0.00004), (0, -0.00004)):
                moved = ring.copy()
                moved[i] += (dx, dy)
                try:
                    edits.redraw(store, a, shapely.Polygon(moved), take=True, dry_run=True)
                except Exception:  # noqa: S112 - not this corner
                    continue
                closed = [*moved.tolist(), moved[0].tolist()]
                found["redraw"] = {
                    "operation": "redraw",
                    "code": a,
                    "geometry": {"type": "Polygon", "coordinates": [closed]},
                    "version": version[a],
                    "take": True,
                }
                break
            if "redraw" in found:
                break
        if "redraw" in found:
            break
    return community, found


def full_recompute(store, community, body) -> None:
    """The peer: the same dry run, then every grid's figures computed anew (no panel kept)."""
    from gis_grid.planning import edits
    from gis_grid.planning.balance import Panel

    op = body["operation"]
    if op == "merge":
        edits.merge(store, body["codes"], versions=body["versions"], dry_run=True)
    elif op == "split":
        edits.split(
            store,
            body["code"],
            line=shapely.geometry.shape(body["line"]),
            version=body["version"],
            dry_run=True,
        )
    elif op == "move":
        edits.move(store, body["atoms"], body["to"], versions=body["versions"], dry_run=True)
    else:
        edits.redraw(
            store,
            body["code"],
            shapely.geometry.shape(body["geometry"]),
            version=body["version"],
            take=True,
            dry_run=True,
        )
    Panel(store, community, "area", "households=1,incidents=0.2").answer()


def measure(path: Path, runs: int, label: str) -> list[str]:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings
    from gis_grid.store import open_store

    with open_store(path) as store:
        token = store.add_user("bench-planner", "规划", "planner")
        community, found = edits_of(store)
        n_areas = len(store.grids(level="area"))
        households = int(store.grids(level="community")["households"].sum())
        incidents = len(store.features("incidents"))
    lines = [
        f"\n**{label}**: {n_areas} areas, {households:,} households, {incidents:,} incidents; "
        f"workload households + 0.2 × incidents of 90 days.\n",
        "| tool | preview p50 | p95 | engine's own (p50) "
        "| peer: dry run + whole panel again, p50 | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    settings = Settings(database_url=str(path), warm_tiles=False)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        weights = "households=1,incidents=0.2"
        t0 = time.perf_counter()
        client.get("/planner/balance", params={"community": community, "weights": weights})
        cold = time.perf_counter() - t0
        for tool in ("split", "merge", "move", "redraw"):
            body = {**found[tool], "weights": weights}
            wall, own = [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                r = client.post("/planner/preview", json=body).json()
                wall.append(time.perf_counter() - t0)
                assert r["ok"], (tool, r.get("problems"))
                own.append(r["ms"] / 1000)
            store = client.app.state.store
            peer = []
            for _ in range(max(3, runs // 4)):
                t0 = time.perf_counter()
                full_recompute(store, community, found[tool])
                peer.append(time.perf_counter() - t0)
            p50, p95 = np.percentile(wall, 50), np.percentile(wall, 95)
            ratio = np.median(peer) / p50
            lines.append(
                f"| {tool} | {1000 * p50:.0f} ms | {1000 * p95:.0f} ms "
                f"| {1000 * np.median(own):.0f} ms | {1000 * np.median(peer):.0f} ms "
                f"| {ratio:.1f}× |"
            )
    lines.append(
        "\nThe panel itself, built once per community, level, weights and grid generation: "
        f"{1000 * cold:.0f} ms (its first request).\n"
    )
    return lines


def page_weight(path: Path) -> list[str]:
    """Bytes a first load of the planner page (and of the overview, its peer) brings."""
    import os
    import subprocess

    from playwright.sync_api import sync_playwright

    from gis_grid.store import open_store

    with open_store(path) as store:
        tokens = {r: store.add_user(f"w-{r}", r, r) for r in ("planner", "leadership")}
    port = 8799
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app", "--port", str(port)],
        env={**os.environ, "GIS_GRID_DATABASE_URL": str(path), "GIS_GRID_WARM_TILES": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        import urllib.request

        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/map/planner")
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
            )
            for page_name, role in (("planner", "planner"), ("overview", "leadership")):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                pg = context.new_page()
                sizes: dict[str, int] = {}

                def count(response, sizes=sizes):
                    try:
                        body = response.body()
                    except Exception:  # redirects and aborted requests have none
                        return
                    url = response.url
                    kind = (
                        "tiles"
                        if "/tiles/" in url
                        else "maplibre"
                        if "/assets/" in url
                        else "page scripts and style"
                        if "/static/" in url and not url.endswith(".json")
                        else "words (messages.json)"
                        if url.endswith("messages.json")
                        else "API JSON"
                    )
                    sizes[kind] = sizes.get(kind, 0) + len(body)

                pg.on("response", count)
                pg.goto(f"http://127.0.0.1:{port}/map/{page_name}#token={tokens[role]}")
                pg.wait_for_function("window.gisGrid && window.gisGrid.ready", timeout=90_000)
                pg.wait_for_function(
                    "gisGrid.map.loaded() && gisGrid.map.areTilesLoaded()", timeout=60_000
                )
                pg.wait_for_timeout(800)
                rows.append((page_name, dict(sizes)))
                context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    kinds = sorted({k for _, s in rows for k in s})
    lines = [
        "\n**Page weight** (first load on the demo, uncompressed bytes of every response "
        "until the page is ready):\n",
        "| page | " + " | ".join(kinds) + " | total |",
        "|---|" + "---:|" * (len(kinds) + 1),
    ]
    for name, s in rows:
        lines.append(
            f"| {name} | "
            + " | ".join(f"{s.get(k, 0) / 1024:,.0f} KB" for k in kinds)
            + f" | {sum(s.values()) / 1024:,.0f} KB |"
        )
    own = (Path(__file__).resolve().parent.parent / "api" / "static" / "planner.js").stat().st_size
    lines.append(
        f"\nplanner.js itself: {own / 1024:.1f} KB (an ES module served as it is, no bundler).\n"
    )
    return lines


def main() -> None:
    from gis_grid.sources.demo import CITY, REFERENCE

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-planner-"))
    try:
        lines = [
            "\n## Planner's editor: previews and page weight (`bench_planner.py`) — "
            f"{dt.date.today()}\n",
            f"Machine: {machine()}. {args.runs} previews per tool, through the HTTP API in "
            "process.",
        ]
        (folder / "demo").mkdir()
        demo = build(folder / "demo", REFERENCE)
        lines += measure(demo, args.runs, "Demo community")
        city_dir = folder / "city"
        city_dir.mkdir()
        city = build(city_dir, dataclasses.replace(CITY, communities=1))
        lines += measure(city, args.runs, "One city-size community")
        lines += page_weight(demo)
        publish("\n".join(lines) + "\n", write=not args.no_write)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

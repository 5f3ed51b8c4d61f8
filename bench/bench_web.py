"""The web platform at city scale on PostGIS (issue #5 targets).

Run with ``python3 dev.py bench web`` (needs the PostgreSQL server of
GIS_GRID_TEST_SERVER, default postgresql://postgres@127.0.0.1:5432, with
PostGIS; ``wrk`` and ``pgbench`` on the PATH; chromium for the page weight).
In one script, over one database holding the city (200 communities, ~100k
buildings) and 1,000,000 incidents:

- vector tiles, uncached, for a fixed set of z12–z16 tiles over the courtyard
  grids and the incidents: gis-grid (uvicorn, its tile cache off) beside tipg
  (uvicorn, same database, same tables), one client each, rounds alternating
  between them, tiles/s and p50/p95 latency, the largest tile; the bare
  ``ST_AsMVT`` query of the same tiles over the same table run by pgbench (one
  client) as the database's own ceiling; and gis-grid's own tile statements
  (``PostGISStore.mvt_sql``) run by pgbench in its tile sessions' settings, so
  what serving adds shows apart from what the query costs;
- point lookups (lon/lat → five grids with their staff) under concurrent load
  from wrk;
- the overview page's initial weight and DOM markers in chromium.

Appends a section to bench/RESULTS.md. ``--keep`` keeps the database for
another run (``--reuse`` then skips building it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import morecantile
import numpy as np
import pandas as pd
import psycopg
import shapely

from gis_grid.layers.features import normalise_features
from gis_grid.layers.plugins import get_layer
from gis_grid.sources.demo import CITY, generate
from gis_grid.store import ChangeSet, open_store
from gis_grid.store.postgis import TILE_SESSION

sys.path.insert(0, str(Path(__file__).parent))
from bench_foundation import RESULTS, machine  # noqa: E402
from bench_layers import incidents  # noqa: E402

SERVER = os.environ.get("GIS_GRID_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")
DATABASE = "gis_grid_bench_web"
SEARCH_PATH = "-c search_path=gis_grid,public"  # as the store's sessions have it
TMS = morecantile.tms.get("WebMercatorQuad")
GRID_ATTRS = "code,name,level,households,version"
INCIDENT_ATTRS = (
    "id,reported_at,category,status,dispatched_at,handled_at,closed_at,source,description,"
    "community_code,area_code,courtyard_code,building_code,unit_code"
)


def build(url: str, communities: int, points: int) -> dict:
    """The city and its incidents into an empty database."""
    data = generate(replace(CITY, communities=communities))
    lon, lat = incidents(data, points)
    rng = np.random.default_rng(5)
    stamps = pd.Timestamp("2026-08-01") + pd.to_timedelta(rng.uniform(0, 90 * 86400, points), "s")
    layer = get_layer("incidents")
    raw = gpd.GeoDataFrame(
        {
            "id": [f"E{i:07d}" for i in range(points)],
            "reported_at": stamps.strftime("%Y-%m-%d %H:%M:%S"),
            "category": rng.choice(["市容环境", "矛盾纠纷", "治安", "物业", "other"], points),
            "status": rng.choice(["reported", "closed"], points, p=[0.1, 0.9]),
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )
    raw.loc[raw["status"] == "closed", "closed_at"] = raw["reported_at"]
    checked = layer.check(normalise_features(layer.schema, raw))
    with open_store(url, create=True) as store:
        store.apply(ChangeSet(data.grids, data.staff, data.assignments))
        store.write_features(layer.schema, checked)
    return {"grids": len(data.grids)}


def tile_set(url: str, per_zoom: int, seed: int = 3) -> list[tuple[int, int, int]]:
    """A fixed set of tiles: at each of z12–z16, tiles around random incidents."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM gis_grid.incidents TABLESAMPLE SYSTEM (1) "
            "REPEATABLE (7) LIMIT 5000"
        ).fetchall()
    rng = np.random.default_rng(seed)
    pts = np.array(rows)[rng.permutation(len(rows))]
    tiles = []
    for z in range(12, 17):
        seen = set()
        for x, y in pts:
            t = TMS.tile(x, y, z)
            if (t.x, t.y) not in seen:
                seen.add((t.x, t.y))
                tiles.append((z, t.x, t.y))
            if len(seen) == per_zoom:
                break
    return tiles


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()) from None
            time.sleep(0.1)
    raise RuntimeError(f"{cmd} did not start")


def fetch_all(base: str, paths: list[str], headers: dict) -> tuple[list[float], list[int]]:
    """Fetch each path once in order over one connection: latencies (s) and sizes (bytes)."""
    import http.client

    conn = http.client.HTTPConnection(base.split("//")[1], timeout=120)
    times, sizes = [], []
    for path in paths:
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        times.append(time.perf_counter() - t0)
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {body[:300]!r}")
        sizes.append(len(body))
    conn.close()
    return times, sizes


def bare_sql(layer: str, z: int, x: int, y: int) -> str:
    """The bare ``ST_AsMVT`` query of a tile over the lon/lat table, as a server would write it.

    ``ST_AsMVTGeom`` once per feature (``ST_AsMVT`` skips rows it leaves
    empty), the envelope transformed to the table's SRID for the index.
    """
    if layer == "incidents":
        cols, table, where = INCIDENT_ATTRS, "gis_grid.incidents", ""
    else:
        cols, table, where = GRID_ATTRS, "gis_grid.grids", f"AND g.level = '{layer}'"
    return (
        f"WITH b AS (SELECT ST_TileEnvelope({z}, {x}, {y}) AS merc, ST_Transform(ST_TileEnvelope("
        f"{z}, {x}, {y}, margin => 64.0 / 4096), 4326) AS ll) "
        f"SELECT ST_AsMVT(t, '{layer}', 4096, 'geom') FROM (SELECT "
        + ", ".join(f"g.{c}" for c in cols.split(","))
        + ", ST_AsMVTGeom(ST_Transform(g.geom, 3857), b.merc, 4096, 64, true) AS geom "
        f"FROM {table} g, b WHERE g.geom && b.ll {where}) t"
    )


def pgbench_rate(url: str, statements: list[str], seconds: int, options: str = "") -> float:
    """Statements per second, one of them at random each time (pgbench, 1 client, simple protocol).

    ``options`` are the sessions' settings (``PGOPTIONS``).
    """
    lines = [f"\\set i random(1, {len(statements)})"]
    for k, statement in enumerate(statements, 1):
        lines += [f"\\{'if' if k == 1 else 'elif'} :i = {k}", statement.replace("\n", " ") + ";"]
    lines.append("\\endif")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    out = subprocess.run(
        ["pgbench", "-n", "-c", "1", "-T", str(seconds), "-f", f.name, url],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PGOPTIONS": options},
    ).stdout
    os.unlink(f.name)
    line = next(s for s in out.splitlines() if s.startswith("tps"))
    return float(line.split("=")[1].split()[0])


def wrk_lookups(base: str, token: str, points: np.ndarray, seconds: int, conns: int) -> dict:
    """wrk against /lookup with random points: requests/s and latency percentiles."""
    table = ",".join(f"{{{x:.6f},{y:.6f}}}" for x, y in points)
    lua = f"""
local pts = {{{table}}}
local n = #pts
math.randomseed(7)
wrk.headers["Authorization"] = "Bearer {token}"
request = function()
  local p = pts[math.random(n)]
  return wrk.format("GET", "/lookup?lon=" .. p[1] .. "&lat=" .. p[2])
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {{\\"requests\\": %d, \\"seconds\\": %f, \\"errors\\": %d, "
    .. "\\"non2xx\\": %d, \\"p50\\": %f, \\"p95\\": %f, \\"p99\\": %f}}\\n",
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
"""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "-s", f.name, base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    found = json.loads(next(s for s in out.splitlines() if s.startswith("JSON "))[5:])
    found["rate"] = found["requests"] / found["seconds"]
    return found


def page_weight(base: str, token: str) -> dict:
    """Bytes the overview page loads until its tiles are in, and its DOM markers."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        page = b.new_page(viewport={"width": 1280, "height": 800})
        sizes, off = [], []

        def route(r):
            if r.request.url.startswith("http://127.0.0.1:"):
                r.continue_()
            else:
                off.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("requestfinished", lambda req: sizes.append(req.sizes()["responseBodySize"]))
        page.goto(f"{base}/map/overview#token={token}")
        page.wait_for_function("window.gisGrid && window.gisGrid.ready", timeout=120_000)
        page.wait_for_function(
            "gisGrid.map.loaded() && gisGrid.map.areTilesLoaded()", timeout=120_000
        )
        page.wait_for_timeout(1000)
        out = {
            "bytes": sum(sizes),
            "requests": len(sizes),
            "markers": page.evaluate("document.querySelectorAll('.maplibregl-marker').length"),
            "elements": page.evaluate("document.getElementsByTagName('*').length"),
            "off_machine": len(off),
            "zoom": page.evaluate("gisGrid.map.getZoom()"),
        }
        b.close()
    return out


def pct(values, q) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--communities", type=int, default=CITY.communities)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--per-zoom", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the tiles per server")
    parser.add_argument("--connections", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--skip-tiles", action="store_true", help="lookups and page only")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    for tool in ("wrk", "pgbench"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not on the PATH (apt-get install wrk postgresql-contrib)")
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    url = f"{SERVER}/{DATABASE}"
    procs: list[subprocess.Popen] = []
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
        ).fetchone()
        version = admin.execute("SELECT version()").fetchone()[0].split(" on ")[0]
        if exists and not args.reuse:
            admin.execute(f"DROP DATABASE {DATABASE} WITH (FORCE)")
        if not (exists and args.reuse):
            admin.execute(f"CREATE DATABASE {DATABASE}")
            t0 = time.perf_counter()
            build(url, args.communities, args.points)
            print(f"built the database in {time.perf_counter() - t0:.0f} s", flush=True)
    try:
        with open_store(url) as store:
            stats = store.stats()
            token = store.add_user(f"bench-{os.getpid()}", "bench", "supervisor")
            grids = store.grids(level="community")
            all_grids = store.grids(geometry=False)
        with psycopg.connect(url) as conn:
            postgis = conn.execute("SELECT postgis_lib_version()").fetchone()[0]
            n_incidents = conn.execute("SELECT count(*) FROM gis_grid.incidents").fetchone()[0]
        tiles = tile_set(url, args.per_zoom)
        ours_port, tipg_port = free_port(), free_port()
        env = {
            "GIS_GRID_DATABASE_URL": url,
            "GIS_GRID_TILE_CACHE_ITEMS": "0",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        procs.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "api.main:create_app",
                    "--port",
                    str(ours_port),
                    "--workers",
                    str(args.workers),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env,
                ours_port,
            )
        )
        tipg_env = {
            "DATABASE_URL": url,
            "TIPG_DB_SCHEMAS": '["gis_grid"]',
            "TIPG_MAX_FEATURES_PER_TILE": "1000000",
        }
        procs.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "tipg.main:app",
                    "--port",
                    str(tipg_port),
                    "--workers",
                    str(args.workers),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                tipg_env,
                tipg_port,
            )
        )
        auth = {"Authorization": f"Bearer {token}"}
        say(f"## Web platform on PostGIS, beside tipg — {time.strftime('%Y-%m-%d')}")
        say()
        say(f"- machine: {machine()}; {version}, PostGIS {postgis}, all on this machine")
        say(
            f"- data: city of {len(grids)} communities, {stats['grids']['building']:,} buildings, "
            f"{sum(stats['grids'].values()):,} grids, {n_incidents:,} incidents, one database"
        )
        say(
            f"- servers: gis-grid (`uvicorn --factory api.main:create_app`, tile cache off) and "
            f"tipg {__import__('tipg').__version__} (`uvicorn tipg.main:app`, max features per "
            f"tile lifted from 10,000), {args.workers} workers each; one client fetching every "
            f"tile in the same order, {args.rounds} rounds alternating between the servers "
            f"(tiles/s: the median round); {len(tiles)} tiles, {args.per_zoom} per zoom z12–z16 "
            "around random incidents; pgbench: one client, a tile at random each time, "
            f"{args.seconds} s"
        )
        say()
        with open_store(url) as store:
            own_sql = {
                layer: [store.mvt_sql(layer, GRID_ATTRS.split(","), *t) for t in tiles]
                for layer in ("courtyard",)
            }
        for layer in () if args.skip_tiles else ("courtyard", "incidents"):
            say("| layer | server | tiles/s | p50 ms | p95 ms | largest KB | ratio |")
            say("|---|---|---:|---:|---:|---:|---:|")
            if layer == "incidents":
                ours_q, tipg_q = "", f"?properties={INCIDENT_ATTRS}"
                tipg_c = "gis_grid.incidents"
            else:
                ours_q, tipg_q = "", f"?level={layer}&properties={GRID_ATTRS}"
                tipg_c = "gis_grid.grids"
            ours_paths = [f"/tiles/{layer}/{z}/{x}/{y}.pbf{ours_q}" for z, x, y in tiles]
            tipg_paths = [
                f"/collections/{tipg_c}/tiles/WebMercatorQuad/{z}/{x}/{y}{tipg_q}"
                for z, x, y in tiles
            ]
            fetch_all(f"http://127.0.0.1:{ours_port}", ours_paths[:5], auth)  # warm
            fetch_all(f"http://127.0.0.1:{tipg_port}", tipg_paths[:5], {})
            runs = {"ours": [], "tipg": []}  # rounds alternate, so both meet the same noise
            for _ in range(args.rounds):
                runs["ours"].append(fetch_all(f"http://127.0.0.1:{ours_port}", ours_paths, auth))
                runs["tipg"].append(fetch_all(f"http://127.0.0.1:{tipg_port}", tipg_paths, {}))
            rate = float(np.median([len(tiles) / sum(t) for t, _ in runs["ours"]]))
            rate_tipg = float(np.median([len(tiles) / sum(t) for t, _ in runs["tipg"]]))
            t_ours = [v for t, _ in runs["ours"] for v in t]
            t_tipg = [v for t, _ in runs["tipg"] for v in t]
            s_ours, s_tipg = runs["ours"][0][1], runs["tipg"][0][1]
            bare_statements = [bare_sql(layer, *t) for t in tiles]
            bare = pgbench_rate(url, bare_statements, args.seconds)
            bare_tuned = pgbench_rate(url, bare_statements, args.seconds, TILE_SESSION)
            own = (
                pgbench_rate(url, own_sql[layer], args.seconds, f"{SEARCH_PATH} {TILE_SESSION}")
                if layer in own_sql
                else None
            )
            say(
                f"| {layer} | gis-grid | **{rate:.1f}** | {pct(t_ours, 50):.1f} | "
                f"{pct(t_ours, 95):.1f} | {max(s_ours) / 1e3:.0f} | 1.0× |"
            )
            say(
                f"| {layer} | tipg | {rate_tipg:.1f} | {pct(t_tipg, 50):.1f} | "
                f"{pct(t_tipg, 95):.1f} | {max(s_tipg) / 1e3:.0f} | "
                f"gis-grid **{rate / rate_tipg:.2f}×** tipg |"
            )
            say(
                f"| {layer} | bare ST_AsMVT over the table, pgbench | {bare:.1f} | | | | "
                f"gis-grid at **{100 * rate / bare:.0f}%** of it |"
            )
            say(
                f"| {layer} | the same bare query in gis-grid's tile session settings, pgbench | "
                f"{bare_tuned:.1f} | | | | gis-grid at {100 * rate / bare_tuned:.0f}% of it |"
            )
            if own is not None:
                say(
                    f"| {layer} | gis-grid's own tile SQL, pgbench | {own:.1f} | | | | "
                    f"gis-grid at {100 * rate / own:.0f}% of it (the serving cost) |"
                )
            by_zoom = pd.DataFrame(
                {
                    "z": [t[0] for t in tiles] * args.rounds,
                    "ours": t_ours,
                    "tipg": t_tipg,
                    "kb_ours": np.array(s_ours * args.rounds) / 1e3,
                    "kb_tipg": np.array(s_tipg * args.rounds) / 1e3,
                }
            )
            per = by_zoom.groupby("z").agg(
                ours_ms=("ours", lambda v: 1000 * v.median()),
                tipg_ms=("tipg", lambda v: 1000 * v.median()),
                ours_kb=("kb_ours", "max"),
                tipg_kb=("kb_tipg", "max"),
            )
            say()
            say(
                f"{layer} per zoom (median ms, largest KB): "
                + "; ".join(
                    f"z{z} ours {r.ours_ms:.1f} ms/{r.ours_kb:.0f} KB, tipg {r.tipg_ms:.1f} ms/"
                    f"{r.tipg_kb:.0f} KB"
                    for z, r in per.iterrows()
                )
            )
            say()
        # -- lookups under load
        rng = np.random.default_rng(11)
        union = shapely.union_all(grids.geometry.to_numpy())
        b = union.bounds
        cand = rng.uniform(b[:2], b[2:], (20_000, 2))
        inside = cand[shapely.contains_xy(union, cand[:, 0], cand[:, 1])][:1000]
        # each worker builds its lookup index in the background after its first click
        # (answering by query meanwhile): time one build here, trigger theirs, wait
        from gis_grid.grids.queries import Chains

        with open_store(url) as store:
            t_index = time.perf_counter()
            Chains.of(store)
            t_index = time.perf_counter() - t_index
        wrk_lookups(f"http://127.0.0.1:{ours_port}", token, inside, 2, 4)
        time.sleep(2 * t_index + 10)
        wrk_lookups(f"http://127.0.0.1:{ours_port}", token, inside, 3, 4)
        say(
            f"Point lookups (`GET /lookup`: the five grids at a point with their staff, 1,000 "
            f"random points in the city; wrk, 2 threads, {args.seconds} s, {args.workers} "
            f"uvicorn workers, each answering from its in-process index of {len(all_grids):,} "
            f"grids and their staff — built in the background in {t_index:.0f} s, clicks "
            "answered by one query meanwhile — checked against the grid generation once a "
            "second):"
        )
        say()
        say("| connections | lookups/s | p50 ms | p95 ms | p99 ms | errors |")
        say("|---:|---:|---:|---:|---:|---:|")
        for conns in args.connections:
            w = wrk_lookups(f"http://127.0.0.1:{ours_port}", token, inside, args.seconds, conns)
            say(
                f"| {conns} | **{w['rate']:,.0f}** | {w['p50']:.1f} | **{w['p95']:.1f}** | "
                f"{w['p99']:.1f} | {w['errors'] + w['non2xx']} |"
            )
        say()
        weight = page_weight(f"http://127.0.0.1:{ours_port}", token)
        say(
            f"Overview page, first load in chromium over this city (1280×800, zoom "
            f"{weight['zoom']:.1f}, until its tiles are in): **{weight['bytes'] / 1e6:.2f} MB** "
            f"in {weight['requests']} requests (gzip on: maplibre-gl.js, 0.9 MB, travels as "
            "~0.25 MB), "
            f"{weight['markers']} DOM markers, {weight['elements']} DOM elements, "
            f"{weight['off_machine']} requests off this machine."
        )
        say()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        if not args.keep:
            with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    with open(RESULTS, "a") as f:
        f.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

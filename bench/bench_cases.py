"""Cases at scale, on GeoPackage and PostGIS side by side.

- intake: ``report_many`` (grid chain, owner, routing, deadline, duplicate
  check, log row) beside its peer, a plain layer import of the same points
  (``write_features``: chain only), in cases/s;
- indicators per area over N cases (≈6 log rows each), folded in SQL;
- a sweep over N open cases of which a tenth are late;
- Open311 ``POST /open311/v2/requests.json`` under wrk (form fields, api_key).

    python3 dev.py bench cases [--cases 1000000] [--intake 10000] [--seconds 15] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_foundation import machine, publish  # noqa: E402

PG = os.environ.get("GIS_GRID_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")
NOW = dt.datetime(2026, 12, 2, 10, 0)  # a working Wednesday
LUA = """
math.randomseed(11)
local key = "{key}"
request = function()
  local lon = {minx} + math.random() * ({maxx} - {minx})
  local lat = {miny} + math.random() * ({maxy} - {miny})
  local body = "service_code=environment&lat=" .. lat .. "&long=" .. lon ..
    "&description=bench&api_key=" .. key
  return wrk.format("POST", "/open311/v2/requests.json",
    {{["Content-Type"] = "application/x-www-form-urlencoded"}}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %d\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


def points_in(grids, n: int, rng) -> np.ndarray:
    """Random points inside the community (rejection sampling)."""
    import shapely

    union = shapely.union_all(grids.loc[grids["level"] == "community"].geometry.to_numpy())
    shapely.prepare(union)
    minx, miny, maxx, maxy = union.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        xy = rng.uniform([minx, miny], [maxx, maxy], size=(2 * n, 2))
        out = np.vstack([out, xy[shapely.contains_xy(union, xy[:, 0], xy[:, 1])]])
    return out[:n]


def incident_rows(
    n: int, rng, xy: np.ndarray, *, open_share: float, days: float = 30
) -> pd.DataFrame:
    """N incidents over ``days`` before NOW: closed ones with all their steps, open ones midway."""
    import geopandas as gpd

    reported = pd.Timestamp(NOW) - pd.to_timedelta(rng.uniform(0.5, days * 24, n), unit="h")
    is_open = rng.random(n) < open_share
    fmt = "%Y-%m-%dT%H:%M:%S"

    def at(hours):
        return (reported + pd.to_timedelta(hours, unit="h")).strftime(fmt).to_numpy()

    status = np.where(is_open, rng.choice(["accepted", "dispatched", "handled"], n), "closed")
    handled = np.where(status == "accepted", None, at(rng.uniform(2, 8, n)))
    handled = np.where(status == "dispatched", None, handled)
    frame = pd.DataFrame(
        {
            "id": [f"B{i:07d}" for i in range(n)],
            "category": rng.choice(["environment", "property", "dispute", "emergency"], n),
            "status": status,
            "reported_at": reported.strftime(fmt),
            "dispatched_at": np.where(status == "accepted", None, at(rng.uniform(0.2, 1.5, n))),
            "handled_at": handled,
            "closed_at": np.where(is_open, None, at(rng.uniform(9, 30, n))),
            "reworks": np.where(rng.random(n) < 0.05, 1, 0),
            "satisfaction": np.where(is_open, None, rng.integers(1, 6, n)),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=4326)


def load(store, frame) -> float:
    """Import incidents as cases (history from status and times); seconds."""
    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer

    layer = get_layer("incidents")
    start = time.perf_counter()
    checked, log = layer.prepare(layer.check(normalise_features(layer.schema, frame)))
    store.write_features(layer.schema, checked, mode="replace", log=log)
    return time.perf_counter() - start


def new_store(kind: str, folder: Path, data, name: str):
    from gis_grid.store import ChangeSet, open_store

    if kind == "gpkg":
        store = open_store(folder / f"{name}.gpkg", create=True)
    else:
        import psycopg

        from gis_grid.store.postgis import migrate

        db = f"gis_grid_bench_cases_{name}"
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {db}")
        migrate(f"{PG}/{db}")
        store = open_store(f"{PG}/{db}")
    store.apply(ChangeSet(data.grids, data.staff, data.assignments))
    return store


def intake(store, data, n: int, rng) -> dict:
    """Cases/s through report_many in batches of 1,000, beside a plain layer import."""
    import geopandas as gpd

    from gis_grid.cases.loop import Actor
    from gis_grid.cases.rules import Rules
    from gis_grid.cases.service import report_many
    from gis_grid.layers.plugins import get_layer

    rules, actor = Rules.load(), Actor("bench", "supervisor")
    xy = points_in(data.grids, 2 * n, rng)
    start = time.perf_counter()
    for i in range(0, n, 1000):
        part = xy[i : i + 1000]
        frame = pd.DataFrame(
            {"lon": part[:, 0], "lat": part[:, 1], "category": "environment", "source": "bench"}
        )
        report_many(store, frame, rules=rules, actor=actor, received=NOW)
    cases = n / (time.perf_counter() - start)
    layer = get_layer("incidents")  # the peer: the same points as a bare import, chain only
    plain = xy[n:]
    start = time.perf_counter()
    for i in range(0, n, 1000):
        part = plain[i : i + 1000]
        frame = gpd.GeoDataFrame(
            {
                "id": [f"P{i + j}" for j in range(len(part))],
                "reported_at": NOW.strftime("%Y-%m-%dT%H:%M:%S"),
                "category": "environment",
            },
            geometry=gpd.points_from_xy(part[:, 0], part[:, 1]),
            crs=4326,
        )
        from gis_grid.layers.features import normalise_features

        store.write_features(layer.schema, normalise_features(layer.schema, frame))
    peer = n / (time.perf_counter() - start)
    return {"cases_per_s": cases, "peer_per_s": peer}


def open311(url: str, token: str, bounds, seconds: int, folder: Path, workers: int = 1) -> dict:
    """Open311 POSTs under wrk (2 threads, 8 connections) after a 3 s warm-up."""
    from bench_load import start

    proc, port = start(url, workers)
    try:
        minx, miny, maxx, maxy = bounds
        script = folder / "open311.lua"
        script.write_text(LUA.format(key=token, minx=minx, miny=miny, maxx=maxx, maxy=maxy))
        # warm up: the first reports build the in-memory grid index (each worker its own)
        subprocess.run(
            ["wrk", "-t2", "-c8", "-d3s", "-s", str(script), f"http://127.0.0.1:{port}"],
            capture_output=True,
            check=True,
        )
        out = subprocess.run(
            ["wrk", "-t2", "-c8", f"-d{seconds}s", "-s", str(script), f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        proc.terminate()
        proc.wait(10)
    line = next(row for row in out.splitlines() if row.startswith("RESULT"))
    n, micros, p50, p95, errors = line.split()[1:]
    return {
        "rps": int(n) / (int(micros) / 1e6),
        "p50": float(p50),
        "p95": float(p95),
        "errors": int(errors),
    }


def open311_paced(
    url: str, token: str, bounds, rate: float, seconds: float, workers: int = 1
) -> dict:
    """Open311 POSTs at a fixed rate; latency from each request's scheduled time."""
    import random
    import threading
    from urllib.parse import urlencode

    from bench_load import Client, start

    proc, port = start(url, workers)
    minx, miny, maxx, maxy = bounds
    # warm up: each worker builds its in-memory grid index on its first reports
    warm = Client(port, token)
    for i in range(40 * workers):
        form = urlencode(
            {
                "service_code": "environment",
                "lat": (miny + maxy) / 2,
                "long": (minx + maxx) / 2,
                "api_key": token,
            }
        )
        warm.conn.request(
            "POST",
            "/open311/v2/requests.json",
            form,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        warm.conn.getresponse().read()
        if i % 10 == 9:
            warm.conn.close()  # a new connection may land on another worker
            warm = Client(port, token)
    time.sleep(3)
    n = int(rate * seconds)
    lat: list[float] = []
    errors = []
    begin = time.perf_counter() + 0.5
    slots = iter(range(n))
    lock = threading.Lock()

    def work():
        client = Client(port, token)
        rng = random.Random(threading.get_ident())
        while True:
            with lock:
                i = next(slots, None)
            if i is None:
                return
            due = begin + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            form = urlencode(
                {
                    "service_code": "environment",
                    "lat": rng.uniform(miny, maxy),
                    "long": rng.uniform(minx, maxx),
                    "description": "bench",
                    "api_key": token,
                }
            )
            client.conn.request(
                "POST",
                "/open311/v2/requests.json",
                form,
                {"Content-Type": "application/x-www-form-urlencoded"},
            )
            r = client.conn.getresponse()
            r.read()
            with lock:
                lat.append((time.perf_counter() - due) * 1000)
                if r.status != 200:
                    errors.append(r.status)

    try:
        threads = [threading.Thread(target=work) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.terminate()
        proc.wait(10)
    a = np.array(lat)
    return {
        "paced_rate": rate,
        "paced_p50": float(np.percentile(a, 50)),
        "paced_p95": float(np.percentile(a, 95)),
        "paced_errors": len(errors),
    }


def one_part(args) -> None:
    """``--only sweep`` or ``--only open311``: one measurement per store, written to RESULTS."""
    from gis_grid.cases.rules import Rules
    from gis_grid.cases.service import sweep
    from gis_grid.sources.demo import add_layers, generate

    rng = np.random.default_rng(3)
    data = generate()
    folder = Path(tempfile.mkdtemp())
    rows = []
    for kind in args.stores.split(","):
        if args.only == "sweep":
            xy = points_in(data.grids, args.cases, rng)
            store = new_store(kind, folder, data, "sweep")
            load(store, incident_rows(args.cases, rng, xy, open_share=1.0, days=2))
            start = time.perf_counter()
            swept = sweep(store, rules=Rules.load(), received=NOW)
            first = time.perf_counter() - start
            start = time.perf_counter()
            again = sweep(store, rules=Rules.load(), received=NOW + dt.timedelta(minutes=5))
            rows.append(
                f"| {kind} | {args.cases:,} | {swept['escalated']:,} | {first:.2f} | "
                f"{again['escalated']:,} | {time.perf_counter() - start:.2f} |\n"
            )
        else:
            store = new_store(kind, folder, data, "open311")
            add_layers(store, data)
            token = store.add_user("bench-311", "bench", "reporter")
            url = store.url
            store.close()
            bounds = data.grids.total_bounds
            r = open311(url, token, bounds, args.seconds, folder, args.workers)
            r.update(open311_paced(url, token, bounds, 200, args.seconds, args.workers))
            rows.append(
                f"| {kind} | {args.workers} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p95']:.1f} | "
                f"{r['paced_p50']:.1f} | {r['paced_p95']:.1f} | "
                f"{r['errors'] + r['paced_errors']} |\n"
            )
        print(rows[-1], end="", flush=True)
    if args.only == "sweep":
        head = (
            f"open cases reported over the two days before {NOW:%Y-%m-%d %H:%M}, the first "
            "sweep then, and another five minutes on (the server's cadence)\n\n"
            "| store | open cases | first sweep: escalated | s | 5 min on: escalated | s |\n"
            "|---|---:|---:|---:|---:|---:|\n"
        )
    else:
        head = (
            f"Open311 POST requests.json (form fields, api_key; points drawn over the grids' "
            f"bounding box, so some fall outside every grid) on the demo with its 4,300 cases, "
            f"after a warm-up: under wrk (2 threads, 8 connections, {args.seconds} s), and at "
            f"a fixed 200/s for {args.seconds} s with latency from each request's scheduled "
            "time (16 Python threads, sharing the machine)\n\n"
            "| store | uvicorn workers | wrk POST/s | p50 ms | p95 ms | at 200/s: p50 ms | "
            "p95 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        )
    text = (
        f"\n## Cases: {args.only} (`bench_cases.py --only {args.only}`) — {dt.date.today()}\n\n"
        f"- machine: {machine()}\n- {head}" + "".join(rows)
    )
    publish(text, not args.no_write)
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--intake", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--stores", default="gpkg,postgis")
    parser.add_argument(
        "--only",
        choices=("sweep", "open311"),
        help="one part alone: the sweep over --cases open cases, or Open311 at 200/s",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (--only open311)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.only:
        one_part(args)
        return
    from gis_grid.cases.indicators import indicators
    from gis_grid.cases.rules import Rules
    from gis_grid.cases.service import sweep
    from gis_grid.sources.demo import generate

    rng = np.random.default_rng(3)
    data = generate()
    folder = Path(tempfile.mkdtemp())
    xy = points_in(data.grids, args.cases, rng)
    closed_mostly = incident_rows(args.cases, rng, xy, open_share=0.05)
    # open cases reported over the last two days: the late ones are a share, as on a real desk
    all_open = incident_rows(args.cases, rng, xy, open_share=1.0, days=2)
    rows = {}
    for kind in args.stores.split(","):
        out = {}
        store = new_store(kind, folder, data, "intake")
        out.update(intake(store, data, args.intake, rng))
        store.close()
        store = new_store(kind, folder, data, "indicators")
        out["load_s"] = load(store, closed_mostly)
        start = time.perf_counter()
        table = indicators(store, since=NOW - dt.timedelta(days=31), until=NOW, by="area", at=NOW)
        out["indicators_s"] = time.perf_counter() - start
        out["indicator_cases"] = int(table["reported"].sum())
        store.close()
        # Open311 on the demo as it ships (4,300 cases over twelve weeks): a real desk's density
        store = new_store(kind, folder, data, "open311")
        from gis_grid.sources.demo import add_layers

        add_layers(store, data)
        token = store.add_user("bench-311", "bench", "reporter")
        url = store.url
        store.close()
        out.update(open311(url, token, data.grids.total_bounds, args.seconds, folder))
        out.update(open311_paced(url, token, data.grids.total_bounds, 200, args.seconds))
        store = new_store(kind, folder, data, "sweep")
        load(store, all_open)
        late = int(store.late_groups(NOW.strftime("%Y-%m-%dT%H:%M:%S"))["cases"].sum())
        start = time.perf_counter()
        swept = sweep(store, rules=Rules.load(), received=NOW)
        out["sweep_s"] = time.perf_counter() - start
        out["late"] = late
        out["escalated"] = swept["escalated"]
        # five minutes on, as the server sweeps: only the cases late since then
        start = time.perf_counter()
        again = sweep(store, rules=Rules.load(), received=NOW + dt.timedelta(minutes=5))
        out["sweep_next_s"] = time.perf_counter() - start
        out["escalated_next"] = again["escalated"]
        store.close()
        rows[kind] = out
        print(kind, out, flush=True)
    n = args.cases
    text = (
        f"\n## Cases at scale — {dt.date.today()}\n\n"
        f"- machine: {machine()}\n"
        f"- data: the demo community; {n:,} cases over 30 days for indicators (95% closed, "
        "≈6 log rows each) and for the sweep (all open, reported over the last two days, "
        f"those past their deadline at {NOW:%Y-%m-%d %H:%M} escalated); intake of "
        f"{args.intake:,} cases in batches of "
        "1,000 beside a plain import of as many incidents (its peer: chain only); Open311 "
        f"POST requests.json under wrk (2 threads, 8 connections, {args.seconds} s, one "
        "uvicorn worker) on the demo with its 4,300 cases\n\n"
        "| store | intake cases/s | (peer: import/s) | indicators over N, s | first sweep, s "
        "(escalated) | next sweep 5 min on, s (escalated) | Open311 POST/s (wrk, 8 conn.) | "
        "p95 ms | at 200/s: p50 ms | p95 ms | errors |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        + "".join(
            f"| {k} | {r['cases_per_s']:,.0f} | {r['peer_per_s']:,.0f} | "
            f"{r['indicators_s']:.2f} | {r['sweep_s']:.2f} ({r['escalated']:,}) | "
            f"{r['sweep_next_s']:.2f} ({r['escalated_next']:,}) | {r['rps']:,.0f} | "
            f"{r['p95']:.1f} | {r['paced_p50']:.1f} | {r['paced_p95']:.1f} | "
            f"{r['errors'] + r['paced_errors']} |\n"
            for k, r in rows.items()
        )
        + "\nTargets: intake ≥ 1,000 cases/s; indicators over 1,000,000 cases ≤ 5 s; a sweep "
        "over 1,000,000 open cases ≤ 5 s; Open311 ≥ 200 POST/s at p95 < 50 ms.\n"
    )
    publish(text, not args.no_write)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Mixed load on one server: map clicks, tiles, case intake and steps, and a planner's edits.

A fixed rate (default 200 requests/s) for a fixed time (default 60 s), on
loopback, against one uvicorn worker over the demo (with its layers): per
second about 100 ``GET /lookup``, 60 vector tiles, 30 ``POST /cases``, 8 case
steps (``accept`` on the cases just reported) and one planner's edit (a
courtyard split into two, then that split undone, on the version and revision
just read). Latency is measured from each request's scheduled time, so a
server that falls behind shows it (no coordinated omission). Any answer that
is not 2xx is an error; the script exits non-zero when there is one.

    python3 dev.py bench load [--store gpkg|postgis] [--rate 200] [--seconds 60] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import queue
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_foundation import RESULTS, machine  # noqa: E402

PG = os.environ.get("GIS_GRID_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")
MIX = (("lookup", 100), ("tile", 60), ("report", 30), ("step", 8))  # per 198; edits: 1 a second


def build(kind: str, folder: Path) -> tuple[str, str, object]:
    """The demo with its layers in a new store; its URL, a supervisor token and the data."""
    from gis_grid.sources.demo import add_layers, generate
    from gis_grid.store import ChangeSet, open_store

    data = generate()
    if kind == "gpkg":
        url = str(folder / "load.gpkg")
    else:
        import psycopg

        from gis_grid.store.postgis import migrate

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS gis_grid_bench_load WITH (FORCE)")
            conn.execute("CREATE DATABASE gis_grid_bench_load")
        url = f"{PG}/gis_grid_bench_load"
        migrate(url)
    with open_store(url, create=True) as store:
        store.apply(ChangeSet(data.grids, data.staff, data.assignments))
        add_layers(store, data)
        token = store.add_user("load", "压测", "admin")
    return url, token, data


def start(url: str, workers: int = 1) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GIS_GRID_DATABASE_URL": url, "GIS_GRID_SWEEP_SECONDS": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.main:create_app",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=Path(__file__).parent.parent,
    )
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/conformance", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the server did not start")


class Client:
    """One keep-alive connection per thread."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, data, headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def tiles_of(data, zooms=(14, 15, 16, 17)) -> list[str]:
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    minx, miny, maxx, maxy = data.grids.total_bounds
    out = []
    for z in zooms:
        for t in tms.tiles(minx, miny, maxx, maxy, [z]):
            for layer in ("area", "courtyard", "building", "incidents"):
                out.append(f"/tiles/{layer}/{z}/{t.x}/{t.y}.pbf")
    return out


def run(port: int, token: str, data, rate: float, seconds: float, edit_every: float = 10) -> dict:
    """Drive the mix; per kind the latencies (ms from the scheduled time) and the errors."""
    rng = random.Random(5)
    minx, miny, maxx, maxy = data.grids.total_bounds
    units = data.grids.loc[data.grids["level"] == "unit"].geometry.representative_point()
    points = [(p.x, p.y) for p in units]
    tiles = tiles_of(data)
    kinds = [k for k, n in MIX for _ in range(n)]
    jobs: queue.Queue = queue.Queue()
    reported: queue.Queue = queue.Queue()
    stats: dict[str, list[float]] = {k: [] for k, _ in MIX} | {"edit": []}
    errors: dict[str, list[str]] = {k: [] for k in stats}
    lock = threading.Lock()
    stop = threading.Event()

    def record(kind, started, status, body):
        with lock:
            stats[kind].append((time.perf_counter() - started) * 1000)
            if not 200 <= status < 300:
                errors[kind].append(f"{status} {body[:200]!r}")

    def work():
        client = Client(port, token)
        while True:
            item = jobs.get()
            if item is None:
                return
            kind, due = item
            time.sleep(max(0.0, due - time.perf_counter()))
            try:
                if kind == "lookup":
                    x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
                    status, body = client.call("GET", f"/lookup?lon={x}&lat={y}")
                elif kind == "tile":
                    status, body = client.call("GET", rng.choice(tiles))
                elif kind == "report":
                    x, y = rng.choice(points)
                    status, body = client.call(
                        "POST",
                        "/cases",
                        {"lon": x, "lat": y, "category": "environment", "description": "load"},
                    )
                    if status == 201:
                        reported.put(json.loads(body)["id"])
                else:  # accept a case reported earlier in the run
                    try:
                        case = reported.get_nowait()
                    except queue.Empty:
                        x, y = rng.choice(points)
                        status, body = client.call("GET", f"/lookup?lon={x}&lat={y}")
                        record(kind, due, status, body)
                        continue
                    status, body = client.call(
                        "POST", f"/cases/{case}/steps", {"action": "accept", "version": 1}
                    )
            except Exception as exc:  # a dropped connection is an error too
                status, body = 599, repr(exc).encode()
            record(kind, due, status, body)

    def edits():
        """A planner: split a courtyard in two, then undo it, on what they just read."""
        client = Client(port, token)
        yards = sorted(data.grids.loc[data.grids["level"] == "courtyard", "code"])
        yard = yards[len(yards) // 2]
        community = yard[:12]
        split = True
        due = time.perf_counter() + 1
        if edit_every <= 0:
            return
        while not stop.is_set():
            time.sleep(max(0.0, due - time.perf_counter()))
            if stop.is_set():
                break
            try:
                if split:
                    status, body = client.call("GET", f"/grids/{yard}")
                    version = json.loads(body)["grid"]["properties"]["version"]
                    status, body = client.call(
                        "POST", f"/grids/{yard}/split", {"parts": 2, "version": version}
                    )
                else:
                    status, body = client.call("GET", f"/communities/{community}/revisions")
                    latest = max(r["id"] for r in json.loads(body)["revisions"])
                    status, body = client.call(
                        "POST", f"/communities/{community}/undo", {"revision": latest}
                    )
            except Exception as exc:
                status, body = 599, repr(exc).encode()
            record("edit", due, status, body)
            split = not split
            due += edit_every

    workers = [threading.Thread(target=work, daemon=True) for _ in range(24)]
    for w in workers:
        w.start()
    planner = threading.Thread(target=edits, daemon=True)
    planner.start()
    start = time.perf_counter() + 0.5
    n = int(rate * seconds)
    order = [kinds[i % len(kinds)] for i in range(n)]
    random.Random(9).shuffle(order)
    for i, kind in enumerate(order):
        due = start + i / rate
        # hand jobs out a little ahead of time: workers sleep until their moment
        while due - time.perf_counter() > 0.2:
            time.sleep(0.05)
        jobs.put((kind, due))
    for _ in workers:
        jobs.put(None)
    for w in workers:
        w.join(60)
    stop.set()
    planner.join(30)
    elapsed = time.perf_counter() - start
    return {"stats": stats, "errors": errors, "elapsed": elapsed}


def summary(result: dict) -> dict:
    out = {}
    every = []
    for kind, lat in result["stats"].items():
        if not lat:
            continue
        every += lat
        a = np.array(lat)
        out[kind] = {
            "n": len(a),
            "p50": float(np.percentile(a, 50)),
            "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)),
            "errors": len(result["errors"][kind]),
        }
    a = np.array(every)
    out["all"] = {
        "n": len(a),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "errors": sum(len(e) for e in result["errors"].values()),
    }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="gpkg", choices=("gpkg", "postgis"))
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--edit-every", type=float, default=10, help="seconds between a planner's edits (0: none)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp())
    url, token, data = build(args.store, folder)
    proc, port = start(url)
    try:
        result = run(port, token, data, args.rate, args.seconds, args.edit_every)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    table = summary(result)
    achieved = table["all"]["n"] / result["elapsed"]
    text = (
        f"\n## Mixed load on one server ({args.store}) — {dt.date.today()}\n\n"
        f"- machine: {machine()}\n"
        f"- {args.rate:g} requests/s scheduled for {args.seconds:g} s on loopback "
        f"({achieved:,.0f}/s served), one uvicorn worker over the demo with its layers; "
        "latency from each request's scheduled time\n\n"
        "| kind | requests | p50 ms | p95 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|\n"
        + "".join(
            f"| {k} | {v['n']:,} | {v['p50']:.1f} | {v['p95']:.1f} | {v['p99']:.1f} | "
            f"{v['errors']} |\n"
            for k, v in table.items()
        )
    )
    print(text)
    for kind, errs in result["errors"].items():
        for e in errs[:3]:
            print(f"error ({kind}): {e}", file=sys.stderr)
    if not args.no_write:
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(text)
    return 1 if table["all"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

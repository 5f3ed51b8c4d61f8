"""Map clicks on the embedded store: ``GET /lookup`` under wrk, with and without the index.

The GeoPackage store answers a click from an in-memory index of the file
(``GeoPackageStore.chain``); its peer in this script is the same server with
the index turned off (``CHAIN_INDEX_MAX = 0``: the lookup index plus reads and
pandas, as before). Both serve one copy of the demo, one uvicorn worker each,
wrk with 4 connections, rounds alternating between them.

    python3 dev.py bench lookup-gpkg [--seconds 10] [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_foundation import machine, publish  # noqa: E402

SERVER = """
import sys, uvicorn
import gis_grid.store.gpkg.grids as g
g.CHAIN_INDEX_MAX = int(sys.argv[2])
uvicorn.run("api.main:create_app", factory=True, host="127.0.0.1", port=int(sys.argv[1]),
            log_level="error")
"""
LUA = """
math.randomseed(7)
request = function()
  local lon = {minx} + math.random() * ({maxx} - {minx})
  local lat = {miny} + math.random() * ({maxy} - {miny})
  return wrk.format("GET", "/lookup?lon=" .. lon .. "&lat=" .. lat)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %d\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(path: str, index_max: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "GIS_GRID_DATABASE_URL": path}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(index_max)], env=env)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/conformance", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def wrk(port: int, token: str, script: Path, seconds: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c4",
            f"-d{seconds}s",
            "-s",
            str(script),
            "-H",
            f"Authorization: Bearer {token}",
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(row for row in out.splitlines() if row.startswith("RESULT"))
    n, micros, p50, p95, errors = line.split()[1:]
    return {
        "rps": int(n) / (int(micros) / 1e6),
        "p50": float(p50),
        "p95": float(p95),
        "errors": int(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (apt-get install wrk)")
    from gis_grid.sources.demo import generate
    from gis_grid.store import ChangeSet
    from gis_grid.store.gpkg import GeoPackageStore

    folder = Path(tempfile.mkdtemp())
    path = str(folder / "demo.gpkg")
    data = generate()
    with GeoPackageStore(path) as store:
        store.apply(ChangeSet(data.grids, data.staff, data.assignments))
        token = store.add_user("bench", "bench", "supervisor")
    minx, miny, maxx, maxy = data.grids.total_bounds
    script = folder / "lookup.lua"
    script.write_text(LUA.format(minx=minx, miny=miny, maxx=maxx, maxy=maxy))
    servers = {"index": start(path, 200_000), "reads": start(path, 0)}
    runs: dict[str, list[dict]] = {k: [] for k in servers}
    try:
        for _ in range(args.rounds):
            for name, (_, port) in servers.items():
                runs[name].append(wrk(port, token, script, args.seconds))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
    median = {
        k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50", "p95", "errors")}
        for k, v in runs.items()
    }
    ratio = median["index"]["rps"] / median["reads"]["rps"]
    text = (
        f"\n## Map clicks on the embedded store (GeoPackage) — {dt.date.today()}\n\n"
        f"- machine: {machine()}\n"
        f"- data: the demo community (503 grids), one GeoPackage; `GET /lookup` at random "
        f"points of its bounds; wrk 2 threads, 4 connections, {args.seconds} s a round, "
        f"{args.rounds} rounds alternating; one uvicorn worker per server\n\n"
        "| server | lookups/s | p50 ms | p95 ms | errors |\n|---|---:|---:|---:|---:|\n"
        + "".join(
            f"| {label} | {median[k]['rps']:,.0f} | {median[k]['p50']:.1f} | "
            f"{median[k]['p95']:.1f} | {median[k]['errors']:.0f} |\n"
            for k, label in (
                ("index", "in-memory index (now)"),
                ("reads", "lookup index + reads (before)"),
            )
        )
        + f"\nRatio: the index answers {ratio:.1f}× as many clicks.\n"
    )
    publish(text, not args.no_write)


if __name__ == "__main__":
    main()

"""Cold starts of the map pages: a fresh server, a fresh browser, until the page is ready.

    python3 dev.py bench pages [--runs 20] [--pages overview,supervisor,worker,planner]
                               [--no-warm] [--no-write]

The demo community with its layers in a GeoPackage. For each run and page: a
new server process (uvicorn, one worker; its tile cache empty) and a new headless
Chromium context (its HTTP cache empty); the time runs from the start of the
navigation to the page being ready — signed in, its panel filled
(``gisGrid.ready``; the supervisor's hot spots computed) and every tile in
view drawn (``map.areTilesLoaded()``). Server start-up itself is not counted:
the clock starts when the server answers. ``--no-warm`` also runs each page
with the server's tile warm-up off (``GIS_GRID_WARM_TILES=0``), run after run
in the same script, to show what the warm-up changes. p50 and p95 per page go to bench/RESULTS.md.
The target (issue #15): ready within 3 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_foundation import machine, publish  # noqa: E402
from bench_load import start  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROLES = {"overview": "leadership", "supervisor": "supervisor", "worker": "grid_worker"}
ROLES["planner"] = "planner"


def demo(folder: Path) -> tuple[str, dict]:
    """The demo with its layers, as ``gis-grid demo`` builds it; its path and a token per role."""
    path = folder / "demo.gpkg"
    out = subprocess.run(
        [sys.executable, "-m", "gis_grid", "demo", "--out", str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    links = dict(
        re.findall(r"^\s+(overview|supervisor|worker|planner)\s+\S+#token=(\S+)", out, re.M)
    )
    return str(path), links


def cold_start(browser, port: int, page: str, token: str) -> float:
    """Seconds from navigation to ready in a new browser context (empty cache)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    tab = context.new_page()
    tab.route(
        "**/*",
        lambda r: (
            r.continue_()
            if r.request.url.startswith((f"http://127.0.0.1:{port}", "data:", "blob:"))
            else r.abort()
        ),
    )
    begin = time.perf_counter()
    tab.goto(f"http://127.0.0.1:{port}/map/{page}#token={token}")
    ready = "window.gisGrid && window.gisGrid.ready && gisGrid.map.areTilesLoaded()"
    if page == "supervisor":
        ready += " && gisGrid.analysed >= 1"
    tab.wait_for_function(ready, timeout=120_000, polling=20)
    seconds = time.perf_counter() - begin
    context.close()
    return seconds


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pages", default="overview,supervisor,worker,planner")
    parser.add_argument("--no-warm", action="store_true", help="also run with the warm-up off")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    url, tokens = demo(folder)
    pages = args.pages.split(",")
    modes = [("warm", "1")] + ([("no warm-up", "0")] if args.no_warm else [])
    times: dict[tuple[str, str], list[float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for run in range(args.runs):
            for mode, flag in modes:
                for page in pages:
                    os.environ["GIS_GRID_WARM_TILES"] = flag
                    proc, port = start(url)
                    try:
                        seconds = cold_start(browser, port, page, tokens[page])
                    finally:
                        proc.terminate()
                        proc.wait(10)
                    times.setdefault((mode, page), []).append(seconds)
                    print(f"run {run + 1} {mode} {page}: {seconds:.2f} s", flush=True)
        browser.close()
    rows = "".join(
        f"| {page} | {mode} | {len(v)} | {np.percentile(v, 50):.2f} | {np.percentile(v, 95):.2f} | "
        f"{max(v):.2f} |\n"
        for (mode, page), v in times.items()
    )
    text = (
        f"\n## Map pages: cold starts (`bench_pages.py`) — {dt.date.today()}\n\n"
        f"- machine: {machine()}\n"
        "- the demo community with its layers (GeoPackage); each run a new server (empty tile "
        "cache) and a new Chromium context (empty HTTP cache); from navigation to the page "
        "ready with every tile in view drawn (supervisor: hot spots computed); server start-up "
        "not counted\n\n"
        "| page | server | runs | p50 s | p95 s | max s |\n|---|---|---:|---:|---:|---:|\n"
        + rows
        + "\nTarget: ready within 3 s.\n"
    )
    publish(text, not args.no_write)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

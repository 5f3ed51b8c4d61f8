"""The weekly review: time to gather and render the demo's report, and a city street's.

In one script:

1. the demo community (宏大社区, twelve weeks of incidents): ``weekly_review``
   then HTML and PDF, run three times in one process — the first run pays the
   imports and matplotlib's start, the later ones are what a server answering
   the review page pays (target: PDF ≤ 10 s warm);
2. one street of the city-size demo (200 communities; a street is 10 of them,
   ~140,000 households): the same (target ≤ 60 s), on a store built by
   ``gis-grid demo --size city`` (``--city PATH`` reuses one).

The font cuts (static regular and bold of Noto Sans SC, made once per machine
and kept in the user's cache) are made before the clock starts and timed
apart. Figures go to bench/RESULTS.md.

Run: ``python3 dev.py bench review`` (or ``python3 bench/bench_review.py --city /tmp/city.gpkg``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_foundation import machine, publish  # noqa: E402


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def build(path: Path, size: str) -> float:
    """``gis-grid demo`` into ``path``; its wall time."""
    exe = Path(sys.executable).with_name("gis-grid")
    start = time.perf_counter()
    subprocess.run(
        [str(exe), "demo", "--out", str(path), "--size", size],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def run_review(path: Path, *, street: str | None = None, runs: int = 3) -> list[dict]:
    from gis_grid.review.render import render_html, render_pdf
    from gis_grid.review.week import weekly_review
    from gis_grid.store import open_store

    rows = []
    with open_store(path) as store:
        for _ in range(runs):
            t_data, review = timed(weekly_review, store, street=street)
            t_html, html = timed(render_html, review, "zh")
            t_pdf, pdf = timed(render_pdf, review, "zh")
            rows.append(
                {
                    "data": t_data,
                    "html": t_html,
                    "pdf": t_pdf,
                    "html_kb": len(html.encode()) / 1024,
                    "pdf_kb": len(pdf) / 1024,
                    "review": review,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--city", type=Path, help="A city store to reuse (gis-grid demo --size city)."
    )
    parser.add_argument("--no-city", action="store_true", help="Only the demo community.")
    parser.add_argument("--no-write", action="store_true", help="Do not append to RESULTS.md.")
    args = parser.parse_args()

    from gis_grid.review.fonts import static_font

    t_fonts = 0.0
    for weight in (400, 700):
        t, _ = timed(static_font, weight)
        t_fonts += t
    lines = [
        "",
        f"## Weekly review ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {machine()}.",
        "",
        f"Font cuts (static regular + bold of Noto Sans SC, once per machine, then cached): "
        f"{t_fonts:.1f} s this run{' (already cached)' if t_fonts < 1 else ''}.",
        "",
        "| data | run | gather (s) | HTML (s) | PDF (s) | gather + PDF (s) | HTML KB | PDF KB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo.gpkg"
        t_build = build(demo, "reference")
        demo_rows = run_review(demo)
        for i, r in enumerate(demo_rows, start=1):
            lines.append(
                f"| demo community ({r['review'].this_week['reported']:,} incidents this week) "
                f"| {i} | {r['data']:.2f} | {r['html']:.2f} | {r['pdf']:.2f} | "
                f"{r['data'] + r['pdf']:.2f} | {r['html_kb']:,.0f} | {r['pdf_kb']:,.0f} |"
            )
        city_rows, city_note = [], ""
        if not args.no_city:
            city = args.city
            if city is None:
                city = Path(tmp) / "city.gpkg"
                t_city = build(city, "city")
                city_note = f" (built by `gis-grid demo --size city` in {t_city:.0f} s)"
            else:
                copy = Path(tmp) / "city.gpkg"
                shutil.copy(city, copy)
                city = copy
            from gis_grid.store import open_store

            with open_store(city) as store:
                codes = store.grids(level="community", geometry=False)["code"]
                street = sorted(codes.str.slice(0, 9))[0]
                households = int(
                    store.grids(level="community", geometry=False)
                    .loc[codes.str.startswith(street), "households"]
                    .sum()
                )
            city_rows = run_review(city, street=street, runs=2)
            for i, r in enumerate(city_rows, start=1):
                n = len(r["review"].scope.codes)
                lines.append(
                    f"| city street {street} ({n} communities, {households:,} households, "
                    f"{r['review'].this_week['reported']:,} incidents this week) | {i} | "
                    f"{r['data']:.2f} | {r['html']:.2f} | {r['pdf']:.2f} | "
                    f"{r['data'] + r['pdf']:.2f} | {r['html_kb']:,.0f} | {r['pdf_kb']:,.0f} |"
                )
    warm = min(r["data"] + r["pdf"] for r in demo_rows[1:])
    lines += [
        "",
        f"- Demo (built in {t_build:.1f} s): a warm report (gather + PDF) takes {warm:.1f} s, "
        f"{10 / warm:.1f}× inside the 10 s target.",
    ]
    if city_rows:
        worst = max(r["data"] + r["pdf"] for r in city_rows)
        lines.append(
            f"- City street{city_note}: {worst:.1f} s at worst, "
            f"{60 / worst:.1f}× inside the 60 s target."
        )
    lines += [
        "- Gather is `weekly_review` (12 weeks of indicators, hot spots, four kinds of "
        "holes, cases, ranking, revisions); HTML draws the figures; PDF draws them again "
        "and prints with WeasyPrint.",
        "",
    ]
    publish("\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()

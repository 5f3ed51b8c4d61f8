# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The weekly review (周例会), built step by step
#
# `gis-grid report` gathers a week and prints it. This notebook takes the same
# steps one at a time on the demo community, so each number can be traced to
# the analysis it comes from — and checked against the CLI's own tables:
#
# 1. the week and the communities it covers;
# 2. the headline: case indicators summed over the communities;
# 3. hot spots, one row per courtyard with its person;
# 4. coverage holes ranked by the incidents they hold;
# 5. cases late and escalated at the week's end, and the areas ranked;
# 6. the whole review, rendered to HTML and PDF.
#
# Public API only; `GIS_GRID_STORE` points it at a store of your own.

# %%
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from gis_grid.analysis.hotspots import find_hotspots, spots_per_grid
from gis_grid.cases.indicators import totals
from gis_grid.cases.records import now
from gis_grid.cases.rules import Rules
from gis_grid.cases.service import sweep
from gis_grid.review.render import write_review
from gis_grid.review.week import HEADLINE, Week, scope_of, weekly_review
from gis_grid.sources.demo import write_demo
from gis_grid.store import open_store

folder = Path(tempfile.mkdtemp())
if os.environ.get("GIS_GRID_STORE"):
    path = os.environ["GIS_GRID_STORE"]
    store = open_store(path)
else:
    path = folder / "demo.gpkg"
    store = write_demo(path)
    sweep(store, rules=Rules.load())  # as gis-grid demo does: late cases go one grid up

# %% [markdown]
# ## 1. The week and its communities
#
# Weeks are ISO weeks, Monday to Sunday, on China Standard Time (the clock
# cases keep). The default is the last week that has ended.

# %%
week = Week.last_full(now())
scope = scope_of(store)
print(week, week.start, "→", week.end, "|", scope.kind, scope.name, scope.codes)

# %% [markdown]
# ## 2. The headline
#
# `totals` is `indicators` by community, added up before the rates are taken.
# Twelve weeks of it make the sparklines.

# %%
weeks = [week.shift(-b) for b in range(11, -1, -1)]
headline = pd.DataFrame(
    [
        {
            "week": str(w),
            **totals(
                store, since=w.start, until=w.end, at=min(now(), w.end), communities=scope.codes
            ),
        }  # fmt: skip
        for w in weeks
    ]
).set_index("week")[list(HEADLINE)]
headline.tail(4)

# %% [markdown]
# The same week from the command line (`gis-grid indicators --by community`)
# gives the same numbers:

# %%
cli = Path(sys.executable).with_name("gis-grid")
printed = subprocess.run(
    [str(cli), "indicators", str(path), "--by", "community", "--from", str(week.start.date()),
     "--to", str((week.end - pd.Timedelta(days=1)).date()), "--now",
     week.end.strftime("%Y-%m-%dT%H:%M"), "--format", "json"],
    check=True, capture_output=True, text=True,
).stdout  # fmt: skip
row = json.loads(printed)["rows"][0]
for key in HEADLINE:
    assert row[key] == headline.iloc[-1][key] or abs(row[key] - headline.iloc[-1][key]) < 1e-9, key
{key: row[key] for key in HEADLINE}

# %% [markdown]
# ## 3. Hot spots, one row per courtyard
#
# Gi* over H3 cells for the week, against the week before; each cell counts
# for the courtyard its centre lies in, and the courtyard's person answers.

# %%
report = find_hotspots(
    store, "incidents", time_field="reported_at", category_field="category",
    since=week.start.isoformat(), until=week.end.isoformat(), permutations=0,
)  # fmt: skip
print(report.summary["hot"], "hot cells; PAI", report.summary["pai"])
spots_per_grid(store, report.spots).head(8)

# %% [markdown]
# ## 4. Coverage holes and 5. cases
#
# `weekly_review` runs each layer's hole analysis (CCTV, lighting, cleaning)
# and the staffing check, ranks what they found by the incidents each hole
# held this week, lists the cases late or escalated at the week's end, and
# ranks the areas by their indicators. Here is the whole review at once:

# %%
review = weekly_review(store, week)
assert review.this_week["reported"] == headline.iloc[-1]["reported"]
review.holes.drop(columns="geometry")[["rank", "kind", "name", "incidents", "staff_name"]].head(8)

# %%
review.escalated[["id", "category", "status", "escalation", "owner_name", "staff_name"]].head(5)

# %%
review.ranking[
    ["rank", "name", "reported", "on_time_rate", "closure_rate", "overdue", "staff_name"]
]

# %% [markdown]
# ## 6. The report
#
# One HTML file that holds its pictures (it opens offline and asks for
# nothing), and the same printed to an A4 PDF.

# %%
html = write_review(review, folder / f"review-{week}.html", "zh")
pdf = write_review(review, folder / f"review-{week}.pdf", "zh")
print(html, f"{html.stat().st_size / 1024:,.0f} KB")
print(pdf, f"{pdf.stat().st_size / 1024:,.0f} KB")
assert pdf.read_bytes()[:4] == b"%PDF"

# %%
store.close()

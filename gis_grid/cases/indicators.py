"""Indicators (考核) per grid, person or department: how well cases are handled.

Over the cases reported in a window, per group:

=========================  =====================================================
reported                   cases reported
accepted                   cases accepted (立案; not rejected, not still waiting)
closed                     cases closed (结案)
closure_rate               closed / accepted
on_time_rate               steps taken by their deadline / steps taken with one
rework_rate                cases sent back at least once (返工) / cases handled
extension_rate             cases extended at least once (延期) / reported
escalation_rate            cases escalated at least once (升级) / reported
overdue                    open cases past their deadline now
median_hours_to_close      median hours (on the clock) from report to close
mean_satisfaction          mean of the reporters' satisfaction (1–5), where given
closed_in_grid             closed cases never escalated / closed (小事不出网格)
=========================  =====================================================

Computed in bulk: one group-by over the cases in SQL (the counters each case keeps
with its log: reworks, extensions, escalations, steps timed and on time), never a
loop over cases or a pass over the log; medians from the closed cases' hours.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from gis_grid.cases.loop import stamp
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level

INDICATORS = (
    "reported",
    "accepted",
    "closed",
    "closure_rate",
    "on_time_rate",
    "rework_rate",
    "extension_rate",
    "escalation_rate",
    "overdue",
    "median_hours_to_close",
    "mean_satisfaction",
    "closed_in_grid",
)
GROUPINGS = (*(lv.key for lv in Level), "staff", "department")


def indicators(
    store,
    *,
    since: dt.datetime,
    until: dt.datetime,
    by: str = "area",
    at: dt.datetime | None = None,
) -> pd.DataFrame:
    """One row per grid (of a level), person or department with the :data:`INDICATORS`.

    Cases count when they were reported in ``[since, until)``; ``overdue`` is
    as of ``at`` (default now). Rows carry ``code`` and ``name`` (a level),
    ``staff_id``, ``name`` and ``phone`` (staff), or ``department``.
    """
    from gis_grid.cases.records import now, ready

    if by not in GROUPINGS:
        raise InputError(say("problem_indicators_by", by=repr(by), choices=", ".join(GROUPINGS)))
    if until <= since:
        raise InputError(say("problem_window_backwards", until=stamp(until), since=stamp(since)))
    at = at or now()
    ready(store)
    grouping = "owner" if by == "staff" else by
    sums = store.case_groups(stamp(since), stamp(until), grouping, stamp(at))
    hours = store.case_close_hours(stamp(since), stamp(until), grouping)
    if by == "staff":  # owning grids → their responsible person, then summed per person
        from gis_grid.cases.records import owners

        who = owners(store, set(sums["key"].dropna()) | set(hours["key"].dropna()))

        def person(code):
            return (who.get(code) or {}).get("staff_id") if isinstance(code, str) else None

        sums = sums.assign(key=sums["key"].map(person))
        sums = sums.loc[sums["key"].notna()].groupby("key", as_index=False).sum()
        hours = hours.assign(key=hours["key"].map(person))
    sums = sums.loc[sums["key"].notna()]
    table = sums.set_index("key")
    table.index = table.index.astype(object)
    median = hours.loc[hours["key"].notna()].groupby("key")["hours"].median()
    table["median_hours_to_close"] = median.reindex(table.index)
    table["mean_satisfaction"] = table["sat_sum"] / table["sat_n"].where(table["sat_n"] > 0)
    table["sum"], table["count"] = table["on_time"], table["timed"]
    return _finish(store, table, by)


def totals(
    store,
    *,
    since: dt.datetime,
    until: dt.datetime,
    at: dt.datetime | None = None,
    communities=None,
) -> dict:
    """The :data:`INDICATORS` of every case reported in the window, as one dict.

    ``communities`` (codes) keeps the cases of those communities only (the
    cases in no community never count, as in :func:`indicators`). The same
    sums as :func:`indicators` by community, added up before the rates are
    taken: a street's closure rate is its closed over its accepted cases, not
    a mean of its communities' rates.
    """
    from gis_grid.cases.records import now, ready

    if until <= since:
        raise InputError(say("problem_window_backwards", until=stamp(until), since=stamp(since)))
    at = at or now()
    ready(store)
    sums = store.case_groups(stamp(since), stamp(until), "community", stamp(at))
    hours = store.case_close_hours(stamp(since), stamp(until), "community")
    keep = sums["key"].notna()
    kept = hours["key"].notna()
    if communities is not None:
        wanted = {str(c) for c in communities}
        keep &= sums["key"].isin(wanted)
        kept &= hours["key"].isin(wanted)
    row = sums.loc[keep].drop(columns="key").sum().to_frame().T
    row.index = pd.Index(["all"])
    row["median_hours_to_close"] = hours.loc[kept, "hours"].median()
    row["mean_satisfaction"] = row["sat_sum"] / row["sat_n"].where(row["sat_n"] > 0)
    row["sum"], row["count"] = row["on_time"], row["timed"]
    out = _rates(row).iloc[0].to_dict()
    counts = ("reported", "accepted", "closed", "overdue")
    return {k: None if pd.isna(v) else int(v) if k in counts else float(v) for k, v in out.items()}


def _rates(table: pd.DataFrame) -> pd.DataFrame:
    """The :data:`INDICATORS` columns from the sums of each row."""

    def rate(num, den):
        num, den = table[num].astype(float), table[den].astype(float)
        return (num / den.where(den > 0)).round(4)

    table["closure_rate"] = rate("closed", "accepted")
    table["on_time_rate"] = (table["sum"] / table["count"].where(table["count"] > 0)).round(4)
    table["rework_rate"] = rate("reworked", "handled")
    table["extension_rate"] = rate("extended", "reported")
    table["escalation_rate"] = rate("escalated", "reported")
    table["closed_in_grid"] = rate("closed_in_grid_n", "closed")
    table["median_hours_to_close"] = table["median_hours_to_close"].astype(float).round(2)
    table["mean_satisfaction"] = table["mean_satisfaction"].astype(float).round(2)
    for c in ("reported", "accepted", "closed", "overdue"):
        table[c] = table[c].astype(int)
    return table[list(INDICATORS)]


def _finish(store, table: pd.DataFrame, by: str) -> pd.DataFrame:
    table = _rates(table).sort_index()
    table.index.name = None
    keys = table.index.to_list()
    if by == "department":
        head = pd.DataFrame({"department": keys})
    elif by == "staff":
        people = store.staff(keys) if keys else pd.DataFrame(columns=["staff_id", "name", "phone"])
        people = people.set_index("staff_id") if len(people) else people
        head = pd.DataFrame(
            {
                "staff_id": keys,
                "name": [people["name"].get(k) if len(people) else None for k in keys],
                "phone": [people["phone"].get(k) if len(people) else None for k in keys],
            }
        )
    else:
        grids = store.grids(codes=keys, geometry=False).set_index("code") if keys else None
        head = pd.DataFrame(
            {
                "code": keys,
                "name": [grids["name"].get(k) if grids is not None else None for k in keys],
            }
        )
    out = pd.concat([head, table.reset_index(drop=True)], axis=1)
    return out.astype(object).where(out.notna(), None)

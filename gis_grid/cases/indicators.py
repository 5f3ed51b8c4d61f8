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

Computed in bulk: group-bys over the case table and the log, never a loop over cases.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from gis_grid.cases.loop import OPEN, stamp
from gis_grid.domain.errors import InputError
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
    from gis_grid.cases.service import now

    if by not in GROUPINGS:
        raise InputError(f"indicators by {by!r}? by one of {', '.join(GROUPINGS)}")
    if until <= since:
        raise InputError(f"the window ends ({stamp(until)}) before it starts ({stamp(since)})")
    at = at or now()
    facts = store.case_facts(stamp(since), stamp(until))
    facts = facts.assign(key=_group_key(store, facts, by))
    return _table(store, facts.loc[facts["key"].notna()], by, at)


def _group_key(store, facts: pd.DataFrame, by: str) -> pd.Series:
    """The group of each case: its grid at a level, its department, or its owner's staff id."""
    from gis_grid.cases.service import owners

    if not len(facts):
        return pd.Series([], dtype=object)
    if by == "department":
        column = facts["department"]
    elif by == "staff":
        owner = facts["owner_code"].astype(object)
        for level in reversed(list(Level)):  # no owner written: the deepest grid of its chain
            chain = facts[f"{level.key}_code"].astype(object)
            owner = owner.where(owner.notna(), chain)
        who = owners(store, set(owner.dropna()))
        column = owner.map(lambda c: (who.get(c) or {}).get("staff_id") if c else None)
    else:
        column = facts[f"{by}_code"]
    column = column.astype(object)
    return column.where(column.notna(), None)


def _table(store, facts: pd.DataFrame, by: str, at: dt.datetime) -> pd.DataFrame:
    status = facts["status"].astype(str)
    closed = (status == "closed").to_numpy()
    reported_at = pd.to_datetime(facts["reported_at"])
    closed_at = pd.to_datetime(facts["closed_at"], errors="coerce")
    hours = ((closed_at - reported_at) / pd.Timedelta(hours=1)).to_numpy()
    escalated = (facts["escalated"] > 0).to_numpy()
    deadline = facts["deadline"].astype(object)
    frame = pd.DataFrame(
        {
            "key": facts["key"].to_numpy(),
            "accepted": (facts["accepted"] > 0).to_numpy(),
            "closed": closed,
            "handled": (facts["handled"] > 0).to_numpy(),
            "reworked": (facts["reworked"] > 0).to_numpy(),
            "extended": (facts["extended"] > 0).to_numpy(),
            "escalated": escalated,
            "overdue": (
                status.isin(OPEN) & deadline.notna() & (deadline.fillna("~") < stamp(at))
            ).to_numpy(),
            "hours_to_close": np.where(closed, hours, np.nan),
            "satisfaction": facts["satisfaction"].to_numpy(dtype=float),
            "closed_in_grid": closed & ~escalated,
            "sum": facts["on_time"].to_numpy(),
            "count": facts["timed"].to_numpy(),
        }
    )
    g = frame.groupby("key")
    table = pd.DataFrame(
        {
            "reported": g.size(),
            "accepted": g["accepted"].sum(),
            "closed": g["closed"].sum(),
            "handled": g["handled"].sum(),
            "reworked": g["reworked"].sum(),
            "extended": g["extended"].sum(),
            "escalated": g["escalated"].sum(),
            "overdue": g["overdue"].sum(),
            "median_hours_to_close": g["hours_to_close"].median(),
            "mean_satisfaction": g["satisfaction"].mean(),
            "closed_in_grid_n": g["closed_in_grid"].sum(),
            "sum": g["sum"].sum(),
            "count": g["count"].sum(),
        }
    )

    def rate(num, den):
        num, den = table[num].astype(float), table[den].astype(float)
        return (num / den.where(den > 0)).round(4)

    table["closure_rate"] = rate("closed", "accepted")
    table["on_time_rate"] = (table["sum"] / table["count"].where(table["count"] > 0)).round(4)
    table["rework_rate"] = rate("reworked", "handled")
    table["extension_rate"] = rate("extended", "reported")
    table["escalation_rate"] = rate("escalated", "reported")
    table["closed_in_grid"] = rate("closed_in_grid_n", "closed")
    table["median_hours_to_close"] = table["median_hours_to_close"].round(2)
    table["mean_satisfaction"] = table["mean_satisfaction"].round(2)
    for c in ("reported", "accepted", "closed", "overdue"):
        table[c] = table[c].astype(int)
    table = table[list(INDICATORS)].sort_index()
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

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
    from gis_grid.cases.service import case_frame, now

    if by not in GROUPINGS:
        raise InputError(f"indicators by {by!r}? by one of {', '.join(GROUPINGS)}")
    if until <= since:
        raise InputError(f"the window ends ({stamp(until)}) before it starts ({stamp(since)})")
    at = at or now()
    cases = case_frame(store)
    if len(cases):
        reported = cases["reported_at"].astype(str).str.replace(" ", "T")
        cases = cases.loc[(reported >= stamp(since)) & (reported < stamp(until))].copy()
    key = _group_key(store, cases, by)
    cases = cases.assign(key=key).loc[key.notna()]
    log = store.case_log(cases["id"].tolist()) if len(cases) else store.case_log([])
    return _table(store, cases, log, by, at)


def _group_key(store, cases: pd.DataFrame, by: str) -> pd.Series:
    from gis_grid.cases.service import _owner_code, owners

    if not len(cases):
        return pd.Series([], dtype=object)
    if by == "department":
        return cases["department"].astype(object).where(cases["department"].notna(), None)
    if by == "staff":
        codes = [_owner_code(r) for r in cases.to_dict("records")]
        who = owners(store, set(c for c in codes if c))
        return pd.Series(
            [(who.get(c) or {}).get("staff_id") if c else None for c in codes],
            index=cases.index,
            dtype=object,
        )
    column = cases[f"{by}_code"].astype(object)
    return column.where(column.notna(), None)


def _table(store, cases: pd.DataFrame, log: pd.DataFrame, by: str, at: dt.datetime):
    status = cases["status"].astype(str)
    did = log.assign(one=1).pivot_table(
        index="case_id", columns="action", values="one", aggfunc="sum", fill_value=0
    )
    did = did.reindex(cases["id"]).fillna(0)

    def has(action) -> np.ndarray:
        return (did[action] > 0).to_numpy() if action in did else np.zeros(len(cases), bool)

    frame = pd.DataFrame(
        {
            "key": cases["key"].to_numpy(),
            "accepted": has("accept"),
            "closed": (status == "closed").to_numpy(),
            "handled": has("handle"),
            "reworked": has("rework"),
            "extended": has("extend"),
            "escalated": has("escalate"),
            "overdue": (
                status.isin(OPEN)
                & cases["deadline"].notna()
                & (cases["deadline"].astype(str).str.replace(" ", "T") < stamp(at))
            ).to_numpy(),
        }
    )
    reported_at = pd.to_datetime(cases["reported_at"].astype(str))
    closed_at = pd.to_datetime(cases["closed_at"].astype(object), errors="coerce")
    hours = ((closed_at - reported_at) / pd.Timedelta(hours=1)).to_numpy()
    frame["hours_to_close"] = np.where(frame["closed"], hours, np.nan)
    frame["satisfaction"] = pd.to_numeric(cases["satisfaction"], errors="coerce").to_numpy()
    frame["closed_in_grid"] = frame["closed"] & ~frame["escalated"]
    timed = log.loc[log["on_time"].notna()]
    timed = timed.assign(
        key=timed["case_id"].map(dict(zip(cases["id"], cases["key"], strict=True)))
    )
    on_time = (
        timed.assign(ok=timed["on_time"].astype(bool)).groupby("key")["ok"].agg(["sum", "count"])
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
        }
    )
    table = table.join(on_time, how="left")

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

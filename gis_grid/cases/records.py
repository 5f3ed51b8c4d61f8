"""Cases as they are read: a case's row, its owner (grid and person), its record and timeline.

The functions the intake, the steps, the lists and the indicators share; a case
is a feature of the incidents layer, its owner the grid named by ``owner_code``
(else the deepest grid of its chain), a street office above the communities.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd

from gis_grid.cases.loop import (
    ACTIONS,
    OPEN,
    STATUSES,
    next_steps,
    parse_time,
)
from gis_grid.cases.rules import Rules
from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import CASE_LAYER, CASE_LOG_COLUMNS, CHAIN_COLUMNS, Level, level_of_code
from gis_grid.grids.linkage import people
from gis_grid.layers.features import now_local

#: Street-office owner codes are the first nine digits of a community code.
STREET_DIGITS = 9


def now() -> dt.datetime:
    """The current local time (China Standard Time), as cases keep it."""
    return parse_time(now_local())


def case_schema():
    """The feature schema of the case layer (the installed incidents layer)."""
    from gis_grid.layers.plugins import get_layer

    return get_layer(CASE_LAYER).schema


def categories() -> dict[str, str]:
    """Case categories: key → Chinese name."""
    schema = case_schema()
    return dict(next(f for f in schema.fields if f.name == "category").choices)


def category_key(value: str) -> str:
    """A category from its key or Chinese name; an unknown one is named with the choices."""
    cats = categories()
    for key, zh in cats.items():
        if str(value).strip() in (key, zh):
            return key
    shown = ", ".join(f"{k} ({v})" for k, v in cats.items())
    raise InputError(say("problem_unknown_category", value=repr(value), choices=shown))


# -- reading ----------------------------------------------------------------


def ready(store) -> None:
    """Give a case layer from an earlier version the columns the case loop keeps (once).

    Incidents imported before cases existed have no deadline, version or
    counters: their table gains the columns (empty) the first time a case
    function meets it, in one transaction.
    """
    stored = store.layers().get(CASE_LAYER)
    if stored is not None and not set(case_schema().columns) <= set(stored.columns):
        store.ensure_layer(case_schema())


def case_features(store, where=None, under=None) -> gpd.GeoDataFrame:
    """The cases (features of the case layer) as the store filters them; none without one."""
    if CASE_LAYER not in store.layers():
        schema = case_schema()
        cols = {c: [] for c in (*schema.columns, *CHAIN_COLUMNS, "lon", "lat")}
        return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs="EPSG:4326"))
    return store.features(CASE_LAYER, where=where, under=under)


def plain_value(value):
    """A value from a frame or a row as plain Python: missing values as None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value.item() if hasattr(value, "item") else value


def get_case(store, case_id: str) -> dict:
    """A case's stored row as a plain dict (state, chain, point).

    Raises
    ------
    NotFoundError
        No case with that id.
    """
    ready(store)
    if hasattr(store, "case_row"):  # one row by its key, no frame
        case = store.case_row(str(case_id)) if CASE_LAYER in store.layers() else None
        if case is None:
            raise NotFoundError(say("problem_no_case", case=repr(case_id)))
        case = {c: plain_value(v) for c, v in case.items()}
        if case.get("outside") is not None:
            case["outside"] = bool(case["outside"])
    else:
        found = case_features(store, where={"id": [str(case_id)]})
        if not len(found):
            raise NotFoundError(say("problem_no_case", case=repr(case_id)))
        row = found.iloc[0]
        case = {c: plain_value(row[c]) for c in found.columns if c != "geometry"}
    case["version"] = int(case.get("version") or 1)
    for c in ("at", "reported_at", "deadline", "last_at", *STEP_TIMES):
        if case.get(c) is not None:
            case[c] = str(case[c]).replace(" ", "T")[:19]
    return case


STEP_TIMES = ("accepted_at", "dispatched_at", "handled_at", "verified_at", "closed_at")


def owners(store, codes, rules: Rules | None = None) -> dict[str, dict]:
    """For each owner code: the grid's (or street office's) person, with name and phone."""
    rules = rules or Rules.load()
    codes = sorted({str(c) for c in codes if c})
    grids = [c for c in codes if len(c) > STREET_DIGITS]
    who = people(store, grids)
    names = {}
    if grids:
        frame = store.grids(codes=grids, geometry=False)
        names = dict(zip(frame["code"], frame["name"], strict=True))
    out = {}
    for code in codes:
        if len(code) == STREET_DIGITS:
            office = rules.street_office(code)
            out[code] = {
                "code": code,
                "level": "street",
                "level_zh": "街道",
                "name": office["name"],
                "staff_id": None,
                "staff_name": office["name"],
                "phone": office["phone"] or None,
            }
            continue
        level = level_of_code(code)
        grid = {"code": code, "level": level.key, "level_zh": level.zh, "name": names.get(code)}
        person = None
        if code in who.index:
            row = who.loc[code]
            person = {
                "staff_id": row["staff_id"],
                "name": row["staff_name"],
                "phone": plain_value(row["staff_phone"]),
            }
        out[code] = owner_entry(grid, person)
    return out


def owner_entry(grid: dict, person: dict | None) -> dict:
    """An owner as a case shows it: the grid (code, level, name) and its person, if any."""
    return {
        "code": grid["code"],
        "level": grid["level"],
        "level_zh": grid["level_zh"],
        "name": grid["name"] or None,
        "staff_id": person["staff_id"] if person else None,
        "staff_name": person["name"] if person else None,
        "phone": person["phone"] if person else None,
    }


def record(case: dict, rules: Rules, at: dt.datetime, owner: dict | None = None) -> dict:
    """A case as the API and CLI show it: state, time left, owner, next steps."""
    deadline = case.get("deadline")
    left = None
    if deadline and case.get("status") in OPEN:
        left = round(rules.hours_between(case["category"], at, parse_time(deadline)), 2)
    cats = categories()
    return {
        "id": case["id"],
        "category": case["category"],
        "category_zh": cats.get(case["category"], case["category"]),
        "status": case["status"],
        "status_zh": STATUSES.get(case["status"], case["status"]),
        "reported_at": case.get("reported_at"),
        "deadline": deadline,
        "hours_left": left,
        "overdue": bool(left is not None and left < 0),
        "waiting_for": next((a for a in next_steps(case["status"]) if ACTIONS[a].step), None),
        "next_steps": next_steps(case["status"]),
        "owner": owner,
        "escalation": int(case.get("escalation") or 0),
        "department": case.get("department"),
        "assignee": case.get("assignee"),
        "handler": case.get("handler"),
        "reworks": int(case.get("reworks") or 0),
        "extensions": int(case.get("extensions") or 0),
        "reopened": int(case.get("reopened") or 0),
        "satisfaction": case.get("satisfaction"),
        "duplicate_of": case.get("duplicate_of"),
        "outside": bool(case.get("outside") or False),
        "version": int(case.get("version") or 1),
        "lon": case.get("lon"),
        "lat": case.get("lat"),
        "grids": {lv.key: case.get(f"{lv.key}_code") for lv in Level},
        "description": case.get("description"),
        "address": case.get("address"),
        "media_url": case.get("media_url"),
        "source": case.get("source"),
        "reporter": case.get("reporter"),
        **{c: case.get(c) for c in STEP_TIMES},
    }


def owner_code_of(case: dict) -> str | None:
    """The grid that owns a case: its ``owner_code``, else the deepest grid of its chain."""
    if case.get("owner_code"):
        return case["owner_code"]
    chain = pd.DataFrame([{c: case.get(c) for c in CHAIN_COLUMNS}])
    return None if chain.isna().all(axis=None) else chain.iloc[0].dropna().iloc[-1]


def show(store, case_id: str, rules: Rules, at: dt.datetime | None = None) -> dict:
    """A case with its owner and its whole timeline, oldest step first."""
    case = get_case(store, case_id)
    owner_code = owner_code_of(case)
    owner = owner_of(store, owner_code, rules) if owner_code else None
    out = record(case, rules, at or now(), owner)
    if hasattr(store, "case_steps"):
        steps = store.case_steps(case["id"])
    else:
        steps = store.case_log([case["id"]]).to_dict("records")
    out["timeline"] = [timeline_row(r) for r in steps]
    return out


def owner_of(store, code: str, rules: Rules) -> dict:
    """One owner code's grid and person (:func:`owners`), from the in-memory index if any."""
    from gis_grid.grids.linkage import responsible_of

    index = store.chain_index() if hasattr(store, "chain_index") else None
    if index is None or len(code) <= STREET_DIGITS or code not in index.grids:
        return owners(store, [code], rules)[code]
    return owner_entry(index.grids[code], responsible_of(code, index.staff.get(code, [])))


def timeline_row(row: dict) -> dict:
    """One log row as shown: the step's Chinese name beside its key."""
    import json

    action = row["action"]
    zh = "上报" if action == "report" else ACTIONS[action].zh if action in ACTIONS else action
    detail = row.get("detail")
    if isinstance(detail, str):
        detail = json.loads(detail)
    return {
        **{c: row.get(c) for c in CASE_LOG_COLUMNS if c != "detail"},
        "action_zh": zh,
        "detail": detail or {},
    }

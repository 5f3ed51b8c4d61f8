"""Cases on a store: report, act, list, show, and the sweep that escalates late cases.

Every function takes a store and the :class:`~gis_grid.cases.rules.Rules`; the
CLI, the API and Open311 call these and nothing else, so a step means the same
wherever it is taken. A case is a feature of the incidents layer; its state
columns and its log change together, under the version the actor saw.

Owners (小事不出网格、大事不出社区): a new case belongs to the deepest grid of
its chain that has somebody responsible (属地兜底: else the next one up);
each escalation hands it to the next grid up that has somebody, and above the
community to the street office (the code's first nine digits).
"""

from __future__ import annotations

import datetime as dt
import secrets

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.cases.loop import (
    ACTIONS,
    OPEN,
    STATUSES,
    Actor,
    new_case,
    next_steps,
    parse_time,
    report_row,
    stamp,
    step,
)
from gis_grid.cases.rules import Rules
from gis_grid.domain.errors import DuplicateCodeError, InputError, NotFoundError
from gis_grid.domain.model import CASE_LAYER, CASE_LOG_COLUMNS, CHAIN_COLUMNS, Level
from gis_grid.grids.linkage import people, responsible
from gis_grid.layers.features import now_local

#: A new case this close (metres) to an open case of its category reported in the
#: last :data:`DUPLICATE_DAYS` days is flagged as a possible duplicate of it.
DUPLICATE_METRES = 50.0
DUPLICATE_DAYS = 7
#: A case outside every grid is taken by the nearest community if it is this close
#: (metres); farther, the coordinates are more likely wrong than the grids.
OUTSIDE_METRES = 3000.0
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
    raise InputError(f"unknown category {value!r}; categories are {shown}")


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


def _cases(store, where=None, under=None) -> gpd.GeoDataFrame:
    if CASE_LAYER not in store.layers():
        schema = case_schema()
        cols = {c: [] for c in (*schema.columns, *CHAIN_COLUMNS, "lon", "lat")}
        return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs="EPSG:4326"))
    return store.features(CASE_LAYER, where=where, under=under)


def _plain(value):
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
            raise NotFoundError(f"no case {case_id!r}")
        case = {c: _plain(v) for c, v in case.items()}
        if case.get("outside") is not None:
            case["outside"] = bool(case["outside"])
    else:
        found = _cases(store, where={"id": [str(case_id)]})
        if not len(found):
            raise NotFoundError(f"no case {case_id!r}")
        row = found.iloc[0]
        case = {c: _plain(row[c]) for c in found.columns if c != "geometry"}
    case["version"] = int(case.get("version") or 1)
    for c in ("at", "reported_at", "deadline", "last_at", *_TIMES):
        if case.get(c) is not None:
            case[c] = str(case[c]).replace(" ", "T")[:19]
    return case


_TIMES = ("accepted_at", "dispatched_at", "handled_at", "verified_at", "closed_at")


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
        level = _level_of(code)
        person = who.loc[code] if code in who.index else None
        out[code] = {
            "code": code,
            "level": level.key,
            "level_zh": level.zh,
            "name": names.get(code) or None,
            "staff_id": None if person is None else person["staff_id"],
            "staff_name": None if person is None else person["staff_name"],
            "phone": None if person is None else _plain(person["staff_phone"]),
        }
    return out


def _level_of(code: str) -> Level:
    from gis_grid.domain.model import level_of_code

    return level_of_code(code)


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
        **{c: case.get(c) for c in _TIMES},
    }


def _owner_code(case: dict) -> str | None:
    if case.get("owner_code"):
        return case["owner_code"]
    chain = pd.DataFrame([{c: case.get(c) for c in CHAIN_COLUMNS}])
    return None if chain.isna().all(axis=None) else chain.iloc[0].dropna().iloc[-1]


def show(store, case_id: str, rules: Rules, at: dt.datetime | None = None) -> dict:
    """A case with its owner and its whole timeline, oldest step first."""
    case = get_case(store, case_id)
    owner_code = _owner_code(case)
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
    grid = index.grids[code]
    person = responsible_of(code, index.staff.get(code, []))
    return {
        "code": code,
        "level": grid["level"],
        "level_zh": grid["level_zh"],
        "name": grid["name"] or None,
        "staff_id": person["staff_id"] if person else None,
        "staff_name": person["name"] if person else None,
        "phone": person["phone"] if person else None,
    }


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


# -- intake -----------------------------------------------------------------


def new_id(at: dt.datetime) -> str:
    """A fresh case id: the day and eight random hex digits (``C261204-3f9a1c07``).

    Random, so two servers never hand out one id; a collision with a stored
    case (one in millions a day) is met by drawing again.
    """
    return f"C{at:%y%m%d}-{secrets.token_hex(4)}"


def report(
    store,
    *,
    lon: float,
    lat: float,
    category: str,
    rules: Rules,
    actor: Actor,
    crs: str | None = None,
    at: dt.datetime | None = None,
    received: dt.datetime | None = None,
    description: str | None = None,
    address: str | None = None,
    media_url: str | None = None,
    source: str | None = None,
    case_id: str | None = None,
) -> dict:
    """Report one case (上报): checked, placed in its grids, owned, with its deadline.

    A point outside every grid is accepted: the nearest community's staff own
    it and it is flagged ``outside``. A case within :data:`DUPLICATE_METRES`
    of an open case of its category reported in the last week names it in
    ``duplicate_of`` (a supervisor keeps or rejects it).

    The hot path of intake (Open311, the pages): the grid chain and its staff
    come from the store's in-memory index, and one row and one log row are
    written; a first case, a point outside every grid or one in another CRS
    takes :func:`report_many`'s way.
    """
    from gis_grid.grids.linkage import responsible_of
    from gis_grid.grids.queries import point_lonlat

    received = received or now()
    fields = {
        "description": description,
        "address": address,
        "media_url": media_url,
        "source": source,
    }
    stored = store.layers().get(CASE_LAYER) if hasattr(store, "insert_case") else None
    lean = stored is not None and not crs and set(case_schema().columns) <= set(stored.columns)
    chain = store.chain(*point_lonlat(lon, lat)) if lean else []
    if not chain:  # the general way: a new layer, another CRS, or outside every grid
        frame = pd.DataFrame(
            {
                k: [v]
                for k, v in {
                    "lon": lon,
                    "lat": lat,
                    "category": category,
                    "id": case_id,
                    "at": at,
                    **fields,
                }.items()
            }
        )
        ids = report_many(store, frame, rules=rules, actor=actor, crs=crs, received=received)
        return show(store, ids[0], rules, received)
    key = category_key(category)
    when = parse_time(at, "at") if at is not None else received
    if (when - received).total_seconds() > 120:
        raise InputError(f"at {stamp(when)} is in the future (now {stamp(received)})")
    owner_grid = next((g for g in reversed(chain) if g["staff"]), chain[-1])
    person = responsible_of(owner_grid["code"], owner_grid["staff"])
    codes = {f"{g['level']}_code": g["code"] for g in chain}
    case = new_case(case_id or new_id(received), key, when, rules, owner_code=owner_grid["code"])
    case.update(
        outside=False,
        duplicate_of=_duplicates(store, [key], np.array([lon]), np.array([lat]), [when])[0],
        reporter=actor.name,
        **{k: _text(k, v) for k, v in fields.items()},
        lon=float(lon),
        lat=float(lat),
        **{c: codes.get(c) for c in CHAIN_COLUMNS},
    )
    log = report_row({**case, "community_code": codes.get("community_code")}, actor, when, received)
    for attempt in range(3):
        try:
            store.insert_case(case, log)
            break
        except DuplicateCodeError:
            if case_id or attempt == 2:
                raise
            case["id"] = log["case_id"] = new_id(received)
    owner = {
        "code": owner_grid["code"],
        "level": owner_grid["level"],
        "level_zh": owner_grid["level_zh"],
        "name": owner_grid["name"] or None,
        "staff_id": person["staff_id"] if person else None,
        "staff_name": person["name"] if person else None,
        "phone": person["phone"] if person else None,
    }
    out = record(case, rules, received, owner)
    out["timeline"] = [timeline_row(log)]
    return out


def _text(name: str, value) -> str | None:
    """A free-text field of a report: trimmed, no NUL, at most 4,000 characters."""
    if value is None:
        return None
    text = str(value).strip()
    if "\x00" in text:
        raise InputError(f"{name} holds a NUL character")
    if len(text) > 4000:
        raise InputError(f"{name} is longer than 4,000 characters")
    return text or None


def report_many(
    store,
    frame: pd.DataFrame,
    *,
    rules: Rules,
    actor: Actor,
    crs: str | None = None,
    received: dt.datetime | None = None,
    _retried: bool = False,
) -> list[str]:
    """Report many cases in one write; their ids.

    ``frame`` has ``lon``, ``lat``, ``category`` and, optionally, ``id``,
    ``at``, ``description``, ``address``, ``media_url``, ``source``.
    """
    from gis_grid.geo.crs import lonlat_problem, to_lonlat
    from gis_grid.layers.features import normalise_features

    received = received or now()
    n = len(frame)
    if not n:
        return []
    try:
        lon = pd.to_numeric(frame["lon"]).to_numpy(dtype=float)
        lat = pd.to_numeric(frame["lat"]).to_numpy(dtype=float)
    except (KeyError, ValueError, TypeError):
        raise InputError("a case needs lon and lat as numbers") from None
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise InputError("a case needs finite lon and lat")
    problem = lonlat_problem((lon.min(), lat.min(), lon.max(), lat.max()))
    if problem:
        raise InputError(f"lon/lat: {problem}")
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=None)
    if crs:
        points = to_lonlat(points, crs)
    cats = [category_key(c) for c in frame["category"]]
    times = [
        received if v is None or (isinstance(v, float) and np.isnan(v)) else parse_time(v, "at")
        for v in (frame["at"] if "at" in frame else [None] * n)
    ]
    for t in times:
        if (t - received).total_seconds() > 120:
            raise InputError(f"at {stamp(t)} is in the future (now {stamp(received)})")
    given = [
        str(v).strip() if isinstance(v, str) and v.strip() else None
        for v in (frame["id"] if "id" in frame else [None] * n)
    ]
    named = [i for i in given if i]
    if len(set(named)) != len(named):
        raise InputError("two cases in one report share an id")
    taken = set(named)
    ids = []
    for i in given:
        while i is None or (i in taken and i not in named):
            i = new_id(received)
        taken.add(i)
        ids.append(i)
    geoms = points.geometry.to_numpy()
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    chains = store.lookup(x, y).astype(object)
    chains.columns = [f"{c}_code" for c in chains.columns]
    chains = chains.where(chains.notna(), None)
    who = responsible(store, chains)
    owner = who["staff_grid_code"].to_numpy(dtype=object).copy()
    outside = chains["community_code"].isna().to_numpy()
    if outside.any():
        owner[outside] = _nearest_communities(store, x[outside], y[outside])
    duplicate = _duplicates(store, cats, x, y, times)
    rows = []
    for i in range(n):
        case = new_case(ids[i], cats[i], times[i], rules, owner_code=owner[i])
        case["outside"] = bool(outside[i])
        case["duplicate_of"] = duplicate[i]
        case["reporter"] = actor.name
        for c in ("description", "address", "media_url", "source"):
            value = frame[c].iloc[i] if c in frame else None
            case[c] = None if value is None or pd.isna(value) else str(value)
        case["status"] = "reported"
        rows.append(case)
    table = pd.DataFrame(rows)
    table["reported_at"] = [stamp(t) for t in times]
    schema = case_schema()
    features = gpd.GeoDataFrame(table, geometry=geoms, crs="EPSG:4326")
    features = normalise_features(schema, features)
    log = pd.DataFrame(
        [
            report_row({**r, "version": 0, "community_code": None}, actor, t, received)
            for r, t in zip(rows, times, strict=True)
        ],
        columns=list(CASE_LOG_COLUMNS),
    )
    log["community_code"] = [str(o)[:12] if o and len(str(o)) >= 12 else None for o in owner]
    try:
        store.write_features(schema, features, mode="append", log=log)
    except DuplicateCodeError:
        if named or _retried:
            raise
        # a drawn id met a stored one (one in millions): draw them all again, once
        return report_many(
            store, frame, rules=rules, actor=actor, crs=crs, received=received, _retried=True
        )
    return ids


def _nearest_communities(store, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The nearest community of each point, which must lie within :data:`OUTSIDE_METRES`."""
    communities = store.grids(level="community", geometry=True)
    if not len(communities):
        raise InputError("the store has no grids: a case needs a community to own it")
    geoms = communities.geometry.to_numpy()
    points = shapely.points(x, y)
    nearest = shapely.STRtree(geoms).nearest(points)
    # degrees to metres on the local tangent plane: exact enough at a few kilometres
    scale = 6_371_008.8 * np.pi / 180
    closest = shapely.get_coordinates(shapely.shortest_line(geoms[nearest], points))[::2]
    dx = (x - closest[:, 0]) * scale * np.cos(np.radians(y))
    dy = (y - closest[:, 1]) * scale
    far = np.hypot(dx, dy) > OUTSIDE_METRES
    if far.any():
        i = int(np.flatnonzero(far)[0])
        raise InputError(
            f"lon {x[i]:.6f}, lat {y[i]:.6f} is {np.hypot(dx[i], dy[i]) / 1000:,.1f} km from the "
            f"nearest community (at most {OUTSIDE_METRES / 1000:g} km): check the coordinates "
            "and their CRS"
        )
    return communities["code"].to_numpy(dtype=object)[nearest]


def _duplicates(store, cats, x, y, times) -> list[str | None]:
    """For each new case, the nearest open case of its category near it this week, if any.

    Distances on the local tangent plane (equirectangular): within 50 m they
    are exact to a millimetre.
    """
    out: list[str | None] = [None] * len(cats)
    if not hasattr(store, "cases_near") or CASE_LAYER not in store.layers():
        return out
    pad = DUPLICATE_METRES / 70_000  # degrees, generously (≥ 70 km a degree below 50° N)
    since = stamp(min(times) - dt.timedelta(days=DUPLICATE_DAYS))
    bbox = (x.min() - pad, y.min() - pad, x.max() + pad, y.max() + pad)
    found = store.cases_near(bbox, sorted(set(cats)), since, sorted(OPEN))
    if not found:
        return out
    ids = np.array([r[0] for r in found], dtype=object)
    their_cat = np.array([r[1] for r in found], dtype=object)
    ox = np.array([r[2] for r in found], dtype=float)
    oy = np.array([r[3] for r in found], dtype=float)
    metres = 6_371_008.8 * np.pi / 180
    for i in range(len(cats)):
        dx = (ox - x[i]) * metres * np.cos(np.radians(y[i]))
        dy = (oy - y[i]) * metres
        d = np.hypot(dx, dy)
        ok = (their_cat == cats[i]) & (d <= DUPLICATE_METRES)
        if ok.any():
            order = np.lexsort((ids[ok].astype(str), d[ok]))
            out[i] = str(ids[ok][order[0]])
    return out


# -- steps ------------------------------------------------------------------


def act(
    store,
    case_id: str,
    action: str,
    actor: Actor,
    *,
    rules: Rules,
    version: int | None = None,
    received: dt.datetime | None = None,
    at: dt.datetime | None = None,
    **params,
) -> dict:
    """Take one step on a case and write it with its log row; the case as it is now.

    Raises what :func:`~gis_grid.cases.loop.step` raises; nothing is written then.
    """
    received = received or now()
    case = get_case(store, case_id)
    if action == "escalate" and not params.get("owner_code"):
        params["owner_code"] = next_owners(store, [_owner_code(case) or ""])[0]
        if params["owner_code"] is None:
            raise InputError(f"case {case_id} is already with the street office: nowhere higher")
    changes, row = step(
        case, action, actor, rules=rules, now=received, at=at, version=version, **params
    )
    row["community_code"] = _community(case)
    store.record_steps([{"id": case["id"], "expected": case["version"], **changes}], [row])
    return show(store, case["id"], rules, received)


def _community(case: dict) -> str | None:
    code = case.get("community_code") or case.get("owner_code")
    return str(code)[:12] if code and len(str(code)) >= 12 else None


def next_owners(store, codes: list[str]) -> list[str | None]:
    """The grid above each owner code that has somebody (属地兜底), or the street office.

    A street office (nine digits) has nobody above it: None.
    """
    out: list[str | None] = [None] * len(codes)
    rows = []
    for i, code in enumerate(codes):
        code = str(code or "")
        if len(code) <= STREET_DIGITS:
            continue
        level = _level_of(code)
        if level is Level.COMMUNITY:
            out[i] = code[:STREET_DIGITS]
            continue
        parent = code[: Level(level - 1).code_length]
        chain = {f"{lv.key}_code": None for lv in Level}
        for lv in Level:
            if lv.code_length <= len(parent):
                chain[f"{lv.key}_code"] = parent[: lv.code_length]
        rows.append((i, chain))
    if rows:
        chains = pd.DataFrame([c for _, c in rows])
        found = responsible(store, chains)["staff_grid_code"].to_numpy(dtype=object)
        for (i, chain), code in zip(rows, found, strict=True):
            out[i] = code if code is not None else chain["community_code"][:STREET_DIGITS]
    return out


def sweep(store, *, rules: Rules, received: dt.datetime | None = None) -> dict:
    """Escalate every open case past its deadline one grid up; idempotent.

    Each escalated case gets a fresh deadline for the step it waits for, so a
    second sweep at the same moment escalates nothing; a case still late at
    its new deadline goes up again. Cases already with the street office stay
    there (counted as ``at_top``). In bulk: the owners and the (category,
    status) pairs of the late cases are read, the grid above each owner and
    one deadline per pair are worked out here, and the store escalates every
    late case in SQL with its log row, in one transaction; ``cases`` lists the
    first thousand.
    """
    from gis_grid.cases.loop import WAITS_FOR

    received = received or now()
    cutoff = stamp(received)
    ready(store)
    owners_late, pairs = store.late_groups(cutoff)
    if not owners_late:
        return {"as_of": cutoff, "overdue": 0, "escalated": 0, "at_top": 0, "cases": []}
    owner_next = dict(zip(owners_late, next_owners(store, owners_late), strict=True))
    # a case late at the sweep waits for the step its status names; its new deadline runs
    # from now (no late case has a step after now: its deadline would not have passed)
    due = {
        (category, status): stamp(rules.due(category, WAITS_FOR[status], received))
        for category, status in pairs
    }
    overdue = store.count_late(cutoff)
    done = store.escalate_late(cutoff, owner_next, due)
    return {
        "as_of": cutoff,
        "overdue": overdue,
        "escalated": done["escalated"],
        "at_top": overdue - done["escalated"],
        "cases": [{"id": i, "from": f, "to": t} for i, f, t in done["sample"]],
    }


# -- lists ------------------------------------------------------------------


def list_cases(
    store,
    *,
    rules: Rules,
    at: dt.datetime | None = None,
    status=None,
    category=None,
    under=None,
    overdue: bool | None = None,
    escalated: bool | None = None,
    owner_staff: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict:
    """Cases filtered, most urgent first (least time left); a page of them and the total.

    A case layer from an earlier version gains its case columns first (:func:`ready`).

    ``status`` ``open`` means every case not closed or rejected (suspended ones too);
    ``escalated``: cases handed up at least once.
    """
    at = at or now()
    ready(store)
    where = {}
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        expanded = []
        for s in statuses:
            if s == "open":
                expanded += [*sorted(OPEN), "suspended"]
            elif s in STATUSES:
                expanded.append(s)
            else:
                raise InputError(f"unknown status {s!r}; statuses are open, {', '.join(STATUSES)}")
        where["status"] = expanded
    if category:
        cats = [category] if isinstance(category, str) else list(category)
        where["category"] = [category_key(c) for c in cats]
    if overdue:
        where["status"] = sorted(set(where.get("status", OPEN)) & OPEN)
        where["deadline"] = (None, stamp(at))
    if escalated:
        where["escalation"] = (1, None)
    frame = _cases(store, where=where or None, under=under)
    if overdue:
        frame = frame.loc[frame["deadline"].notna() & (frame["deadline"].astype(str) < stamp(at))]
    cases = [
        {k: _plain(v) for k, v in r.items() if k != "geometry"} for r in frame.to_dict("records")
    ]
    for case in cases:
        for c in ("reported_at", "deadline", "last_at", *_TIMES):
            if case.get(c) is not None:
                case[c] = str(case[c]).replace(" ", "T")[:19]
        case["owner_code"] = _owner_code(case)
    who = owners(store, {c["owner_code"] for c in cases if c["owner_code"]}, rules)
    if owner_staff:
        cases = [
            c for c in cases if (who.get(c["owner_code"]) or {}).get("staff_id") == owner_staff
        ]
    # most urgent first: open cases by deadline, then the rest newest first
    open_cases = sorted(
        (c for c in cases if c["status"] in OPEN and c.get("deadline")),
        key=lambda c: (c["deadline"], c["id"]),
    )
    rest = sorted(
        (c for c in cases if not (c["status"] in OPEN and c.get("deadline"))),
        key=lambda c: (c.get("reported_at") or "", c["id"]),
        reverse=True,
    )
    ordered = open_cases + rest
    page = ordered[offset : offset + limit]
    return {
        "total": len(ordered),
        "offset": offset,
        "limit": limit,
        "as_of": stamp(at),
        "cases": [record(c, rules, at, who.get(c["owner_code"])) for c in page],
    }


__all__ = [
    "act",
    "categories",
    "category_key",
    "get_case",
    "list_cases",
    "next_owners",
    "now",
    "owners",
    "record",
    "report",
    "report_many",
    "show",
    "sweep",
]

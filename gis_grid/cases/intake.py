"""Case intake: one report (the hot path of Open311 and the pages) or many in one write.

Each case is checked, placed in its grids, given its owner, routing and first
deadline, compared with the open cases near it (possible duplicates), and
written with its first log row.
"""

from __future__ import annotations

import datetime as dt
import secrets

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.cases.loop import (
    OPEN,
    Actor,
    new_case,
    parse_time,
    report_row,
    stamp,
)
from gis_grid.cases.records import (
    case_schema,
    category_key,
    now,
    owner_entry,
    record,
    show,
    timeline_row,
)
from gis_grid.cases.rules import Rules
from gis_grid.domain.errors import DuplicateCodeError, InputError
from gis_grid.domain.messages import say
from gis_grid.domain.model import CASE_LAYER, CASE_LOG_COLUMNS, CHAIN_COLUMNS, Level
from gis_grid.grids.linkage import responsible

#: A new case this close (metres) to an open case of its category reported in the
#: last :data:`DUPLICATE_DAYS` days is flagged as a possible duplicate of it.
DUPLICATE_METRES = 50.0
DUPLICATE_DAYS = 7
#: A case outside every grid is taken by the nearest community if it is this close
#: (metres); farther, the coordinates are more likely wrong than the grids.
OUTSIDE_METRES = 3000.0


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
    outside = False
    if lean and not chain:  # outside every grid: the nearest community, from memory
        chain = _nearest_in_memory(store, float(lon), float(lat))
        outside = bool(chain)
    if not chain:  # the general way: a new layer, another CRS, no index in memory
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
        raise InputError(say("problem_in_future", at=stamp(when), now=stamp(received)))
    owner_grid = next((g for g in reversed(chain) if g["staff"]), chain[-1])
    person = responsible_of(owner_grid["code"], owner_grid["staff"])
    codes = {} if outside else {f"{g['level']}_code": g["code"] for g in chain}
    case = new_case(case_id or new_id(received), key, when, rules, owner_code=owner_grid["code"])
    case.update(
        outside=outside,
        duplicate_of=_duplicates(
            store, [key], np.array([lon]), np.array([lat]), [when], stored=True
        )[0],
        reporter=actor.name,
        **{k: _text(k, v) for k, v in fields.items()},
        lon=float(lon),
        lat=float(lat),
        **{c: codes.get(c) for c in CHAIN_COLUMNS},
    )
    community = owner_grid["code"] if outside else codes.get("community_code")
    log = report_row({**case, "community_code": community}, actor, when, received)
    for attempt in range(3):
        try:
            store.insert_case(case, log)
            break
        except DuplicateCodeError:
            if case_id or attempt == 2:
                raise
            case["id"] = log["case_id"] = new_id(received)
    out = record(case, rules, received, owner_entry(owner_grid, person))
    out["timeline"] = [timeline_row(log)]
    return out


def _text(name: str, value) -> str | None:
    """A free-text field of a report: trimmed, no NUL, at most 4,000 characters."""
    if value is None:
        return None
    text = str(value).strip()
    if "\x00" in text:
        raise InputError(say("problem_text_nul", name=name))
    if len(text) > 4000:
        raise InputError(say("problem_text_long", name=name))
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
        raise InputError(say("problem_case_lonlat")) from None
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise InputError(say("problem_case_finite"))
    problem = lonlat_problem((lon.min(), lat.min(), lon.max(), lat.max()))
    if problem:
        raise InputError(say("problem_case_coords", problem=problem))
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
            raise InputError(say("problem_in_future", at=stamp(t), now=stamp(received)))
    given = [
        str(v).strip() if isinstance(v, str) and v.strip() else None
        for v in (frame["id"] if "id" in frame else [None] * n)
    ]
    named = [i for i in given if i]
    if len(set(named)) != len(named):
        raise InputError(say("problem_case_ids_twice"))
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


def _nearest_in_memory(store, lon: float, lat: float) -> list[dict]:
    """A point outside every grid: its nearest community as a one-grid chain (with staff).

    From the store's in-memory index when it has one (else ``[]``: the general
    way reads the communities); a point farther than :data:`OUTSIDE_METRES` is
    refused as :func:`_nearest_communities` refuses it.
    """
    chains = store.chain_index() if hasattr(store, "chain_index") else None
    level = chains.index.levels.get(Level.COMMUNITY) if chains is not None else None
    if level is None or not len(level.codes):
        return []
    code = str(
        _nearest_communities(store, np.array([lon]), np.array([lat]), (level.codes, level.geoms))[0]
    )
    return [{**chains.grids[code], "staff": list(chains.staff.get(code, []))}]


def _nearest_communities(
    store, x: np.ndarray, y: np.ndarray, communities: tuple | None = None
) -> np.ndarray:
    """The nearest community of each point, which must lie within :data:`OUTSIDE_METRES`.

    ``communities``: their (codes, geometries) when already in memory; else read.
    """
    if communities is None:
        frame = store.grids(level="community", geometry=True)
        communities = (frame["code"].to_numpy(dtype=object), frame.geometry.to_numpy())
    codes, geoms = communities
    if not len(codes):
        raise InputError(say("problem_case_no_grids"))
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
            say(
                "problem_case_far",
                lon=f"{x[i]:.6f}",
                lat=f"{y[i]:.6f}",
                km=f"{np.hypot(dx[i], dy[i]) / 1000:,.1f}",
                most=f"{OUTSIDE_METRES / 1000:g}",
            )
        )
    return np.asarray(codes, dtype=object)[nearest]


def _duplicates(store, cats, x, y, times, stored: bool = False) -> list[str | None]:
    """For each new case, the nearest open case of its category near it this week, if any.

    Distances on the local tangent plane (equirectangular): within 50 m they
    are exact to a millimetre. ``stored``: the case layer is known to exist.
    """
    out: list[str | None] = [None] * len(cats)
    if not hasattr(store, "cases_near"):
        return out
    if not stored and CASE_LAYER not in store.layers():
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

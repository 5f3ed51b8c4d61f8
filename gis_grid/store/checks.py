"""Checks every write goes through, whatever the store.

A store calls :func:`check_changeset` inside its write transaction with the
current state of the communities the change touches. Bad input raises a
:class:`~gis_grid.domain.errors.GisGridError` subclass that names the offending rows,
and the store rolls back: nothing is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import (
    DuplicateCodeError,
    GeometryError,
    InputError,
    OrphanError,
    TopologyError,
)
from gis_grid.domain.messages import say, words
from gis_grid.domain.model import (
    AGGREGATES,
    CODE_LENGTHS,
    GRID_COLUMNS,
    MAX_COUNT,
    Level,
    Role,
    check_codes,
    level_of_code,
    normalise_code,
    utc_now,
)
from gis_grid.geo.crs import WGS84, check_lonlat
from gis_grid.grids.topology import ValidationOptions, detail_in, validate

#: Problems that always refuse a write, and those refused unless accepted.
ALWAYS_BLOCKING = {
    "invalid_geometry": GeometryError,
    "duplicate_code": DuplicateCodeError,
    "orphan": OrphanError,
}
TOPOLOGY_BLOCKING = {"overlap", "outside_parent"}
#: At most this many rows are named in an error message.
SHOWN = 8


def listing(items: Iterable, total: int | None = None) -> str:
    """Items for a message: the first few, and how many more."""
    items = list(items)
    total = len(items) if total is None else total
    shown = ", ".join(str(i) for i in items[:SHOWN])
    return shown + (f" … ({total})" if total > SHOWN else "")


def community_of(codes: Iterable[str]) -> list[str]:
    """The distinct community codes of some grid codes, sorted."""
    return sorted({str(c)[: CODE_LENGTHS[Level.COMMUNITY]] for c in codes})


def _parse_each(values: pd.Series, parse) -> pd.Series:
    """Apply a parser to each distinct value once (levels and roles repeat a lot)."""
    text = values.astype(str)
    return text.map({v: parse(v) for v in text.unique()})


def normalise_grids(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Coerce an incoming grid table to the stored schema, refusing what cannot be.

    Requires ``code`` and a geometry in EPSG:4326; ``level`` and
    ``parent_code``, when present, must agree with the code; ``name`` and the
    aggregates default to empty and 0; aggregates must be whole numbers ≥ 0.

    Raises
    ------
    InputError, GeometryError
    """
    if "code" not in frame.columns:
        raise InputError(say("problem_grids_code_column"))
    if frame.crs is None or not WGS84.equals(frame.crs, ignore_axis_order=True):
        raise InputError(say("problem_grids_crs", crs=str(frame.crs)))
    codes = frame["code"].map(normalise_code).astype(str)
    bad = check_codes(codes)
    if bad:
        raise InputError(say("problem_malformed_codes", codes=listing(bad)))
    levels = codes.map(lambda c: level_of_code(c).key)
    if "level" in frame.columns:
        given = _parse_each(frame["level"], lambda v: Level.parse(v).key)
        wrong = codes[given.to_numpy() != levels.to_numpy()]
        if len(wrong):
            raise InputError(say("problem_level_mismatch", codes=listing(wrong)))
    parents = codes.map(
        lambda c: c[: CODE_LENGTHS[Level(level_of_code(c) - 1)]] if len(c) > 12 else None
    )
    if "parent_code" in frame.columns:
        given = frame["parent_code"].where(frame["parent_code"].notna(), None)
        given = given.map(
            lambda v: None if v is None or str(v).strip() in ("", "nan") else str(v).strip()
        )
        wrong = codes[(given.to_numpy() != parents.to_numpy()) & given.notna().to_numpy()]
        if len(wrong):
            raise InputError(say("problem_parent_mismatch", codes=listing(wrong)))
    geoms = frame.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        raise GeometryError(say("problem_no_geometry", codes=listing(codes[missing])))
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))
    if not polygonal.all():
        kinds = pd.Series(shapely.get_type_id(geoms)[~polygonal]).map(
            {
                0: "Point",
                1: "LineString",
                2: "LinearRing",
                4: "MultiPoint",
                5: "MultiLineString",
                7: "GeometryCollection",
            }
        )
        got = listing(f"{c} ({k})" for c, k in zip(codes[~polygonal], kinds, strict=True))
        raise GeometryError(say("problem_not_polygons", got=got))
    check_lonlat(geoms)
    out = pd.DataFrame(
        {"code": codes.to_numpy(), "parent_code": parents.to_numpy(), "level": levels.to_numpy()}
    )
    out["name"] = frame["name"].fillna("").astype(str).to_numpy() if "name" in frame.columns else ""
    nul = out["name"].str.contains("\x00", regex=False)
    if nul.any():
        raise InputError(say("problem_nul_in_names", codes=listing(codes[nul.to_numpy()])))
    for col in AGGREGATES:
        if col in frame.columns:
            values = pd.to_numeric(frame[col], errors="coerce").astype("float64")
            given = values.notna()  # a missing count is 0
            wrong = (values.isna() & frame[col].notna()) | (
                given
                & (
                    ~np.isfinite(values.fillna(0))
                    | (values < 0)
                    | (values > MAX_COUNT)
                    | (values % 1 != 0)
                )
            )
            bad = codes[wrong.to_numpy()]
            if len(bad):
                raise InputError(
                    say(
                        "problem_count_range", column=col, most=f"{MAX_COUNT:,}", codes=listing(bad)
                    )
                )
            out[col] = values.fillna(0).astype("int64").to_numpy()
        else:
            out[col] = 0
    # a copy keeps each grid's version and time stamp; a new grid starts at version 1
    now = utc_now()
    version = pd.to_numeric(frame["version"], errors="coerce") if "version" in frame else None
    out["version"] = (
        version.fillna(1).clip(lower=1).astype("int64").to_numpy() if version is not None else 1
    )
    stamp = frame["updated_at"] if "updated_at" in frame else None
    out["updated_at"] = stamp.fillna(now).astype(str).to_numpy() if stamp is not None else now
    return gpd.GeoDataFrame(out[list(GRID_COLUMNS)], geometry=geoms, crs=WGS84)


def _parse_date(value, what: str) -> str | None:
    if (
        value is None
        or (isinstance(value, float) and np.isnan(value))
        or str(value).strip() in ("", "NaT", "None", "nan")
    ):
        return None
    try:
        return dt.date.fromisoformat(str(value).strip()[:10]).isoformat()
    except ValueError as exc:
        raise InputError(say("problem_not_a_date", what=what, value=repr(value))) from exc


def normalise_staff(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce a staff table: ``staff_id`` and ``name`` required, ``role`` parsed."""
    for col in ("staff_id", "name"):
        if col not in frame.columns:
            raise InputError(say("problem_staff_column", column=col))
    out = pd.DataFrame({"staff_id": frame["staff_id"].astype(str).str.strip().to_numpy()})
    out["name"] = frame["name"].astype(str).str.strip().to_numpy()
    empty = out["staff_id"].isin(["", "nan", "None"]) | out["name"].isin(["", "nan", "None"])
    if empty.any():
        raise InputError(say("problem_staff_empty", rows=listing(np.flatnonzero(empty))))
    out["role"] = (
        _parse_each(frame["role"], lambda r: Role.parse(r).value).to_numpy()
        if "role" in frame.columns
        else Role.GRID_WORKER.value
    )
    out["phone"] = (
        frame["phone"].fillna("").astype(str).str.strip().to_numpy()
        if "phone" in frame.columns
        else ""
    )
    dup = out["staff_id"][out["staff_id"].duplicated()]
    if len(dup):
        raise DuplicateCodeError(say("problem_staff_twice", ids=listing(dup.unique())))
    return out


def normalise_assignments(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce an assignment table; dates as ISO strings, end on or after start."""
    for col in ("staff_id", "grid_code"):
        if col not in frame.columns:
            raise InputError(say("problem_assignments_column", column=col))
    out = pd.DataFrame(
        {
            "staff_id": frame["staff_id"].astype(str).str.strip().to_numpy(),
            "grid_code": frame["grid_code"].map(normalise_code).to_numpy(),
        }
    )
    out["role"] = (
        _parse_each(frame["role"], lambda r: Role.parse(r).value).to_numpy()
        if "role" in frame.columns
        else Role.GRID_WORKER.value
    )
    today = dt.date.today().isoformat()
    start = frame["start_date"] if "start_date" in frame.columns else pd.Series([None] * len(out))
    end = frame["end_date"] if "end_date" in frame.columns else pd.Series([None] * len(out))
    out["start_date"] = [_parse_date(v, "start_date") or today for v in start]
    out["end_date"] = [_parse_date(v, "end_date") for v in end]
    backwards = out["end_date"].notna() & (out["end_date"].fillna("") < out["start_date"])
    if backwards.any():
        pairs = listing(out.loc[backwards, "staff_id"] + "@" + out.loc[backwards, "grid_code"])
        raise InputError(say("problem_assignments_backwards", pairs=pairs))
    return out


@dataclass
class Existing:
    """What the store holds, as far as a change set needs to know.

    ``grids`` covers the communities the change touches; ``has_codes`` and
    ``has_staff`` answer which of some ids exist anywhere; ``neighbours``
    answers the communities (other than those touched) whose outline meets a
    lon/lat box, found through the store's spatial index.
    """

    grids: gpd.GeoDataFrame
    has_codes: Callable[[list[str]], set[str]]
    has_staff: Callable[[list[str]], set[str]]
    neighbours: Callable[[tuple[float, float, float, float]], gpd.GeoDataFrame] | None = None


def neighbours_of(new: gpd.GeoDataFrame, find) -> gpd.GeoDataFrame | None:
    """The other communities a write's community outlines could overlap (None: none to ask).

    Only community outlines can reach another community: every grid below a
    community is checked against its own community (a child outside its
    parent is refused), so the communities near the new outlines are all the
    neighbours a write can touch.
    """
    if find is None or not len(new):
        return None
    outlines = new.loc[new["code"].astype(str).str.len() == CODE_LENGTHS[Level.COMMUNITY]]
    if not len(outlines):
        return None
    near = find(tuple(float(v) for v in outlines.total_bounds))
    near = near.loc[~near["code"].isin(new["code"])] if len(near) else near
    return near if len(near) else None


def _problems_of(
    current: gpd.GeoDataFrame,
    new: gpd.GeoDataFrame,
    options: ValidationOptions | None,
    neighbours: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """The problems that would involve ``new`` grids once they replace or join ``current``.

    ``neighbours`` (other communities near the new outlines) take part in the
    check, so a community laid over another one is an overlap like any other.
    """
    codes = set(new["code"])
    parts = [current.loc[~current["code"].isin(codes), ["code", "geometry"]]]
    if neighbours is not None:
        others = ~neighbours["code"].isin(codes) & ~neighbours["code"].isin(current["code"])
        parts.append(neighbours.loc[others, ["code", "geometry"]])
    merged = pd.concat([*parts, new[["code", "geometry"]]], ignore_index=True)
    merged = gpd.GeoDataFrame(merged, geometry="geometry", crs=WGS84)
    problems = validate(merged, None, options or ValidationOptions(check_staff=False))
    return problems.loc[problems["codes"].map(lambda cs: any(c in codes for c in cs))]


def touched_communities(changes) -> list[str]:
    """Communities whose grids or staffing a change set touches."""
    codes: list[str] = []
    if changes.grids is not None:
        codes += changes.grids["code"].astype(str).tolist()
    if changes.assignments is not None:
        codes += changes.assignments["grid_code"].astype(str).tolist()
    return community_of(c for c in codes if len(c) >= CODE_LENGTHS[Level.COMMUNITY])


def check_changeset(changes, existing: Existing, options: ValidationOptions | None = None):
    """Normalise a change set and refuse it when it would break the store.

    Returns
    -------
    (grids, staff, assignments, warnings)
        Normalised tables (None where the change set had none) and the
        problems that did not block the write.

    Raises
    ------
    DuplicateCodeError, OrphanError, GeometryError, TopologyError, InputError
    """
    grids = staff = assignments = None
    warnings = None
    if changes.grids is not None and len(changes.grids):
        grids = normalise_grids(changes.grids)
        dup = grids["code"][grids["code"].duplicated()]
        if len(dup):
            raise DuplicateCodeError(say("problem_codes_twice", codes=listing(dup.unique())))
        clash = sorted(existing.has_codes(grids["code"].tolist()))
        if clash:
            raise DuplicateCodeError(say("problem_codes_stored", codes=listing(clash)))
        near = neighbours_of(grids, existing.neighbours)
        mine = _problems_of(existing.grids, grids, options, near)
        for kind, error in ALWAYS_BLOCKING.items():
            rows = mine.loc[mine["kind"] == kind]
            if len(rows):
                en, zh = (
                    listing((f"{r.codes[0]} ({r.detail})" for r in rows.itertuples()), len(rows)),
                    listing((detail_in(r, "zh") for r in rows.itertuples()), len(rows)),
                )
                raise error(
                    say(f"problem_import_{kind}", listing=en, listing_zh=zh),
                    detail=rows.drop(columns="geometry").to_dict("records"),
                )
        topo = mine.loc[mine["kind"].isin(TOPOLOGY_BLOCKING)]
        if len(topo) and not changes.accept_problems:
            raise TopologyError(
                say(
                    "problem_import_topology",
                    n=len(topo),
                    listing=listing((r.detail for r in topo.itertuples()), len(topo)),
                    listing_zh=listing((detail_in(r, "zh") for r in topo.itertuples()), len(topo)),
                ),
                topo.drop(columns="geometry").to_dict("records"),
            )
        warnings = mine.loc[~mine["kind"].isin(ALWAYS_BLOCKING)]
    if changes.staff is not None and len(changes.staff):
        staff = normalise_staff(changes.staff)
        clash = sorted(existing.has_staff(staff["staff_id"].tolist()))
        if clash:
            raise DuplicateCodeError(say("problem_staff_stored", ids=listing(clash)))
    if changes.assignments is not None and len(changes.assignments):
        assignments = normalise_assignments(changes.assignments)
        known_staff = set(staff["staff_id"]) if staff is not None else set()
        wanted = sorted(set(assignments["staff_id"]) - known_staff)
        unknown = sorted(set(wanted) - existing.has_staff(wanted))
        if unknown:
            raise OrphanError(say("problem_unknown_staff", ids=listing(unknown)))
        known_grids = set(grids["code"]) if grids is not None else set()
        wanted = sorted(set(assignments["grid_code"]) - known_grids)
        unknown = sorted(set(wanted) - existing.has_codes(wanted))
        if unknown:
            raise OrphanError(say("problem_unknown_grids", codes=listing(unknown)))
        key = assignments[["staff_id", "grid_code", "role", "start_date"]]
        dup = key.duplicated()
        if dup.any():
            pairs = listing(key.loc[dup, "staff_id"] + "@" + key.loc[dup, "grid_code"])
            raise DuplicateCodeError(say("problem_assignment_twice", pairs=pairs))
    return grids, staff, assignments, warnings


#: Columns an edit may change.
EDITABLE = ("name", *AGGREGATES, "geometry")


def check_update(
    edits: gpd.GeoDataFrame,
    current: gpd.GeoDataFrame,
    options: ValidationOptions | None = None,
    neighbours=None,
) -> gpd.GeoDataFrame:
    """Check edits of existing grids against the state they would produce.

    Parameters
    ----------
    edits : geopandas.GeoDataFrame
        ``code``, ``version`` (the version the edit was based on) and the
        columns to change (any of ``name``, the aggregates, ``geometry``).
    current : geopandas.GeoDataFrame
        The stored grids of the communities the edits touch, read inside the
        write transaction (rows locked).
    neighbours : callable, optional
        Lon/lat box → the other communities there (see :class:`Existing`).

    Returns
    -------
    geopandas.GeoDataFrame
        The edited rows as they will be stored (version + 1, new time stamp).

    Raises
    ------
    NotFoundError, ConflictError, GeometryError, TopologyError, InputError
    """
    from gis_grid.domain.errors import ConflictError, NotFoundError

    if "code" not in edits.columns or "version" not in edits.columns:
        raise InputError(say("problem_edit_columns"))
    unknown = [
        c
        for c in edits.columns
        if c not in ("code", "version", *EDITABLE) and c != edits.geometry.name
    ]
    if unknown:
        raise InputError(say("problem_not_editable", columns=", ".join(unknown)))
    codes = edits["code"].astype(str)
    dup = codes[codes.duplicated()]
    if len(dup):
        raise DuplicateCodeError(say("problem_edited_twice", codes=listing(dup.unique())))
    stored = current.set_index("code")
    missing = [c for c in codes if c not in stored.index]
    if missing:
        raise NotFoundError(say("problem_no_such_grids", codes=listing(missing)))
    based = pd.to_numeric(edits["version"], errors="coerce").to_numpy()
    now_version = stored.loc[codes, "version"].to_numpy()
    stale = codes[based != now_version]
    if len(stale):
        detail = [
            f"{c} (edited from version {int(b) if b == b else '?'}, now {int(n)})"
            for c, b, n in zip(
                stale, based[based != now_version], now_version[based != now_version], strict=True
            )
        ]
        zh = [
            f"{c}（按第 {int(b) if b == b else '?'} 版编辑，现为第 {int(n)} 版）"
            for c, b, n in zip(
                stale, based[based != now_version], now_version[based != now_version], strict=True
            )
        ]
        raise ConflictError(
            say("problem_edit_stale", listing=listing(detail), listing_zh=listing(zh)),
            detail={"codes": list(stale)},
        )
    new = stored.loc[codes].reset_index()
    for col in EDITABLE:
        source = edits.geometry.name if col == "geometry" else col
        if source in edits.columns and (col != "geometry" or edits.geometry.notna().all()):
            new[col] = edits[source].to_numpy()
    new = gpd.GeoDataFrame(new, geometry="geometry", crs=WGS84)
    new = normalise_grids(new.drop(columns=["version", "updated_at"]))
    new["version"] = now_version + 1
    mine = _problems_of(current, new, options, neighbours_of(new, neighbours))
    blocking = mine.loc[mine["kind"].isin(set(ALWAYS_BLOCKING) | TOPOLOGY_BLOCKING)]
    refuse(blocking, "edit", "nothing was saved")
    return new


#: The outcomes :func:`refuse` is told, in Chinese (its actions are the revision log's).
OUTCOMES_ZH = {"nothing was saved": "未保存", "nothing was changed": "未做任何修改"}


def refuse(blocking: gpd.GeoDataFrame, action: str, outcome: str) -> None:
    """Raise TopologyError naming the problems an action would leave, if there are any."""
    if len(blocking):
        raise TopologyError(
            say(
                "problem_would_leave",
                action=action,
                action_zh=words("messages", f"op_{action}", "zh"),
                n=len(blocking),
                listing=listing((r.detail for r in blocking.itertuples()), len(blocking)),
                listing_zh=listing(
                    (detail_in(r, "zh") for r in blocking.itertuples()), len(blocking)
                ),
                outcome=outcome,
                outcome_zh=OUTCOMES_ZH.get(outcome, outcome),
            ),
            [
                {
                    **r,
                    "geometry": None
                    if g is None or g.is_empty
                    else shapely.geometry.mapping(g),  # where a map can draw it
                }
                for r, g in zip(
                    blocking.drop(columns="geometry").to_dict("records"),
                    blocking.geometry.to_numpy(),
                    strict=True,
                )
            ],
        )

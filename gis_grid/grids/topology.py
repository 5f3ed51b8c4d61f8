"""Topology validation: 横向到边、纵向到户 checked, not assumed.

:func:`validate` takes a grid table and returns one row per problem:

=================  ========  =====================================================
kind               severity  what
=================  ========  =====================================================
invalid_geometry   error     null, empty, not a polygon, self-intersecting, or out of
                             lon/lat range
duplicate_code     error     a code used by more than one grid
orphan             error     the parent code (derived from the code) is missing, or
                             the code is malformed
outside_parent     error     a child reaches more than ``tolerance_m`` beyond its parent
overlap            error     two siblings share interior area (≥ ``min_area_m2``)
gap                error     part of a community no area covers, or part of a building
                             no unit covers (≥ ``min_area_m2``); only for parents that
                             have children of that level
no_staff           warning   no active staff assignment on the grid
=================  ========  =====================================================

How it scales: geometry is projected per community into its local metric CRS;
each level is screened at once with GEOS's coverage validator
(:func:`shapely.coverage_invalid_edges`), and only polygons it flags go
through exact pairwise overlap computation. Gaps are found by an area budget
(parent area minus the children's area, corrected for overlaps and outside
parts); only parents whose budget does not close are unioned and differenced.
On clean data nothing is unioned at all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gis_grid.domain.model import CODE_LENGTHS, Level
from gis_grid.geo.crs import WGS84, local_metric_crs, reproject

KINDS = (
    "invalid_geometry",
    "duplicate_code",
    "orphan",
    "outside_parent",
    "overlap",
    "gap",
    "no_staff",
)
SEVERITY = {kind: "error" for kind in KINDS} | {"no_staff": "warning"}
PROBLEM_COLUMNS = ("kind", "severity", "level", "codes", "area_m2", "detail")
#: Overlays (gaps, overlaps, spills) snap to a 1 mm grid: reprojection leaves
#: nanometre slivers along shared edges that are noise, not problems.
_GRID = 1e-3


@dataclass(frozen=True)
class ValidationOptions:
    """Tolerances of :func:`validate`.

    Attributes
    ----------
    tolerance_m : float
        How far (m) a child may reach beyond its parent before it counts as
        outside: digitising noise and reprojection, not real spill-over.
    min_area_m2 : float
        Overlaps and gap parts smaller than this (m²) are noise, not problems.
    check_staff : bool
        Whether to report grids without active staff.
    today : datetime.date, optional
        The day assignments must be active on (default: today).
    """

    tolerance_m: float = 0.5
    min_area_m2: float = 0.1
    check_staff: bool = True
    today: dt.date | None = None


@dataclass
class _Rows:
    """The per-grid arrays every check reads (one entry per distinct, well-formed code)."""

    codes: np.ndarray  # str
    depth: np.ndarray  # level value
    parent: np.ndarray  # parent code or None
    parent_row: np.ndarray  # row of the parent, NaN when missing
    geoms: np.ndarray  # lon/lat
    ok: np.ndarray  # valid polygon in range
    metric: np.ndarray  # projected per community (valid rows only)
    group: np.ndarray  # community group of the metric CRS, -1 for invalid rows
    area: np.ndarray  # m², NaN for invalid rows
    opts: ValidationOptions


def empty_problems() -> gpd.GeoDataFrame:
    """A problem table with no rows."""
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in PROBLEM_COLUMNS})
    frame["area_m2"] = frame["area_m2"].astype(float)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=WGS84), crs=WGS84)


def detail_in(row, lang: str) -> str:
    """A problem's detail in ``lang``: its English as found, or worded in Chinese by its kind.

    ``row`` is a row of a problem table (``kind``, ``level``, ``codes``,
    ``area_m2``, ``detail``).
    """
    from gis_grid.domain.messages import template

    if lang != "zh":
        return str(row.detail)
    codes = [str(c) for c in (row.codes if isinstance(row.codes, list | tuple) else [row.codes])]
    area = "" if row.area_m2 is None or not np.isfinite(row.area_m2) else f"{row.area_m2:,.1f}"
    level = Level.parse(row.level) if isinstance(row.level, str) and row.level else None
    values = {
        "child": codes[0],
        "parent": codes[-1],
        "a": codes[0],
        "b": codes[-1],
        "code": codes[0],
        "area": area,
        "level": level.key if level is not None else "",
        "level_zh": level.zh if level is not None else "",
        "why": str(row.detail),
    }
    return template(f"topology_{row.kind}", "zh").format(**values)


class Problems:
    """Collects problem rows for any validator (the stores' too), worded in one place.

    Geometry may be metric, tagged with the group whose CRS it is in
    (``group=-1``: already lon/lat).
    """

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, kind, level, codes, area, detail, geom=None, group=-1) -> None:
        """Add one problem row (prefer the worded helpers below)."""
        area = float(area) if area is not None and np.isfinite(area) else np.nan
        self.rows.append((kind, SEVERITY[kind], level, list(codes), area, detail, geom, group))

    def outside(self, level: str, child: str, parent: str, area: float, geom, group=-1) -> None:
        """A child reaching beyond its parent."""
        self.add(
            "outside_parent",
            level,
            [child, parent],
            area,
            f"{child} reaches {area:.1f} m² beyond its parent {parent}",
            geom,
            group,
        )

    def overlap(self, level: str, a: str, b: str, area: float, geom, group=-1) -> None:
        """Two siblings sharing interior area."""
        self.add(
            "overlap",
            level,
            sorted([a, b]),
            area,
            f"{a} and {b} overlap by {area:.1f} m²",
            geom,
            group,
        )

    def gap(self, level: str, parent: str, child_level: str, area: float, geom, group=-1) -> None:
        """Part of a tiled parent that no child covers."""
        self.add(
            "gap",
            level,
            [parent],
            area,
            f"{area:.1f} m² of {level} {parent} is in no {child_level}",
            geom,
            group,
        )

    def no_staff(self, level: str, code: str, geom) -> None:
        """A grid without an assignment in force."""
        self.add(
            "no_staff",
            level,
            [code],
            None,
            f"no active staff on {Level.parse(level).zh} {code}",
            geom,
        )

    def frame(self, crs_of_group: list[CRS] = ()) -> gpd.GeoDataFrame:
        """The problems as a sorted table in lon/lat (metric geometry reprojected)."""
        if not self.rows:
            return empty_problems()
        df = pd.DataFrame(self.rows, columns=[*PROBLEM_COLUMNS, "geometry", "_group"])
        geoms = df["geometry"].to_numpy().copy()
        groups = df["_group"].to_numpy()
        for g in np.unique(groups[groups >= 0]):
            idx = np.flatnonzero(groups == g)
            geoms[idx] = reproject(geoms[idx], crs_of_group[g], WGS84)
        df = df.drop(columns=["geometry", "_group"])
        order = {k: i for i, k in enumerate(KINDS)}
        out = gpd.GeoDataFrame(df, geometry=geoms, crs=WGS84)
        out["_o"] = out["kind"].map(order)
        out["_c"] = out["codes"].map(lambda c: c[0] if c else "")
        return (
            out.sort_values(["_o", "_c"], kind="stable")
            .drop(columns=["_o", "_c"])
            .reset_index(drop=True)
        )


def _project_by_community(geoms: np.ndarray, codes: pd.Series) -> tuple:
    """Project each community's grids into the community's local metric CRS.

    Returns the metric geometries, each row's group number and each group's CRS.
    """
    group, _ = pd.factorize(codes.str.slice(0, CODE_LENGTHS[Level.COMMUNITY]))
    metric = np.empty(len(geoms), dtype=object)
    crs_list: list[CRS] = []
    for g, idx in sorted(pd.Series(np.arange(len(geoms))).groupby(group).indices.items()):
        minx, miny, maxx, maxy = shapely.total_bounds(geoms[idx])
        crs_list.append(local_metric_crs((minx + maxx) / 2, (miny + maxy) / 2))
        metric[idx] = reproject(geoms[idx], WGS84, crs_list[g])
    return metric, group, crs_list


def validate(
    grids: gpd.GeoDataFrame,
    assignments: pd.DataFrame | None = None,
    options: ValidationOptions | None = None,
) -> gpd.GeoDataFrame:
    """Check a grid table against the topology rules.

    Parameters
    ----------
    grids : geopandas.GeoDataFrame
        Columns ``code`` and a geometry in EPSG:4326 (others are ignored).
    assignments : pandas.DataFrame, optional
        Columns ``grid_code``, ``start_date``, ``end_date``; without it no
        staff check is made.
    options : ValidationOptions, optional

    Returns
    -------
    geopandas.GeoDataFrame
        One row per problem: ``kind``, ``severity``, ``level``, ``codes``
        (list), ``area_m2`` (NaN where no area applies), ``detail`` and a
        geometry locating it (the gap, the overlap, the outside part, or the
        grid itself).

    Examples
    --------
    >>> from shapely import box
    >>> grids = gpd.GeoDataFrame(
    ...     {"code": ["211281001007", "211281001007001", "211281001007002"]},
    ...     geometry=[box(123.55, 42.44, 123.56, 42.45), box(123.55, 42.44, 123.555, 42.45),
    ...               box(123.5551, 42.44, 123.56, 42.45)], crs=4326)
    >>> problems = validate(grids)
    >>> problems[["kind", "codes"]].values.tolist()
    [['gap', ['211281001007']]]
    >>> int(round(problems.area_m2[0], -1))  # 0.0001° of longitude (8.23 m) x 0.01° latitude
    9140
    """
    opts = options or ValidationOptions()
    problems = Problems()
    frame = pd.DataFrame(
        {"code": grids["code"].astype(str).to_numpy(), "geometry": grids.geometry.to_numpy()}
    )
    if grids.crs is not None and not CRS(grids.crs).equals(WGS84, ignore_axis_order=True):
        raise ValueError(f"grids must be in EPSG:4326, not {grids.crs}")

    # codes: malformed, duplicate, orphan
    lengths = frame["code"].str.len()
    level_of_len = {n: lv for lv, n in CODE_LENGTHS.items()}
    frame["depth"] = lengths.map(lambda n: level_of_len[n].value if n in level_of_len else -1)
    ascii_digits = frame["code"].str.fullmatch(r"[0-9]+").fillna(False).astype(bool)
    malformed = (frame["depth"] < 0) | ~ascii_digits
    for code in frame.loc[malformed, "code"]:
        problems.add(
            "orphan",
            None,
            [code],
            None,
            f"code {code!r} is malformed (digits only, of length 12, 15, 18, 21 or 23): "
            "its parent cannot be derived",
        )
    frame = frame.loc[~malformed]
    dup = frame["code"].duplicated(keep=False)
    for code, n in frame.loc[dup, "code"].value_counts().sort_index().items():
        level = Level(frame.loc[frame.code == code, "depth"].iloc[0]).key
        problems.add(
            "duplicate_code",
            level,
            [code],
            None,
            f"code {code} is used by {n} grids",
            frame.loc[frame.code == code, "geometry"].iloc[0],
        )
    frame = frame.loc[~frame["code"].duplicated(keep="first")].reset_index(drop=True)
    depth = frame["depth"].to_numpy()
    codes = frame["code"]
    parent = pd.Series(np.full(len(frame), None, dtype=object))
    for level in Level:
        if level is not Level.COMMUNITY:
            rows = depth == level.value
            parent[rows] = codes[rows].str.slice(0, CODE_LENGTHS[Level(level - 1)]).to_numpy()
    row_of = pd.Series(np.arange(len(frame)), index=codes)
    parent_row = parent.map(row_of).to_numpy(dtype=float)
    orphan = (depth > 0) & np.isnan(parent_row)
    for i in np.flatnonzero(orphan):
        problems.add(
            "orphan",
            Level(depth[i]).key,
            [codes[i]],
            None,
            f"parent {parent[i]} does not exist",
            frame.geometry[i],
        )

    # geometry validity and lon/lat range
    geoms = frame["geometry"].to_numpy()
    missing = shapely.is_missing(geoms)
    geoms = np.where(missing, None, geoms)
    empty = ~missing & shapely.is_empty(geoms)
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))
    valid = shapely.is_valid(geoms)
    b = shapely.bounds(geoms)
    in_range = (b[:, 0] >= -180) & (b[:, 2] <= 180) & (b[:, 1] >= -90) & (b[:, 3] <= 90)
    ok = ~missing & ~empty & polygonal & valid & in_range
    for i in np.flatnonzero(~ok):
        if missing[i] or empty[i]:
            why = "geometry is missing or empty"
        elif not polygonal[i]:
            why = f"geometry is a {geoms[i].geom_type}, not a polygon"
        elif not valid[i]:
            why = f"invalid polygon: {shapely.is_valid_reason(geoms[i])}"
        else:
            why = "coordinates outside lon/lat range (longitude ±180, latitude ±90)"
        problems.add(
            "invalid_geometry",
            Level(depth[i]).key,
            [codes[i]],
            None,
            why,
            None if missing[i] or empty[i] else geoms[i],
        )

    # everything geometric works on valid grids only, in metres
    good = np.flatnonzero(ok)
    metric = np.empty(len(frame), dtype=object)
    group = np.full(len(frame), -1)
    crs_list: list[CRS] = []
    if len(good):
        metric[good], group[good], crs_list = _project_by_community(geoms[good], codes.iloc[good])
    area = np.full(len(frame), np.nan)
    area[good] = shapely.area(metric[good])
    shapely.prepare(metric[good])

    rows = _Rows(
        codes.to_numpy(), depth, parent.to_numpy(), parent_row, geoms, ok, metric, group, area, opts
    )
    outside_area = _outside_parent(problems, rows)
    overlap_by_parent = _overlaps(problems, rows)
    _gaps(problems, rows, outside_area, overlap_by_parent)
    if opts.check_staff and assignments is not None:
        _no_staff(problems, rows, assignments)
    return problems.frame(crs_list)


def _outside_parent(problems: Problems, t: _Rows) -> np.ndarray:
    """Children reaching beyond their parent by more than the tolerance.

    Returns, per row, the area that really lies outside the parent (0 for
    children within tolerance, whose spill is digitising or reprojection noise).
    """
    outside_area = np.zeros(len(t.codes))
    has_parent = ~np.isnan(t.parent_row)
    prow = np.where(has_parent, t.parent_row, 0).astype(int)
    child = np.flatnonzero(t.ok & has_parent & t.ok[prow])
    if not len(child):
        return outside_area
    # parents are prepared: covers(parent, child) is the fast direction
    inside = shapely.covers(t.metric[prow[child]], t.metric[child])
    suspect = child[~inside]
    if not len(suspect):
        return outside_area
    parents, which = np.unique(prow[suspect], return_inverse=True)
    grown = shapely.buffer(t.metric[parents], t.opts.tolerance_m, quad_segs=2)
    shapely.prepare(grown)
    beyond = ~shapely.covers(grown[which], t.metric[suspect])
    out = suspect[beyond]
    if not len(out):
        return outside_area
    spar = prow[out]
    spill = shapely.difference(t.metric[out], t.metric[spar], grid_size=_GRID)
    spill_area = shapely.area(spill)
    outside_area[out] = spill_area
    codes = t.codes
    for k, (i, p) in enumerate(zip(out, spar, strict=True)):
        problems.outside(
            Level(t.depth[i]).key, codes[i], codes[p], spill_area[k], spill[k], t.group[i]
        )
    return outside_area


def _overlaps(problems: Problems, t: _Rows) -> dict[str, float]:
    """Siblings sharing interior area; returns overlap area summed per parent code."""
    by_parent: dict[str, float] = {}
    code_arr, parent_arr, metric = t.codes, t.parent, t.metric
    for level in Level:
        rows = np.flatnonzero(t.ok & (t.depth == level.value))
        if len(rows) < 2:
            continue
        geoms = metric[rows]
        edges = shapely.coverage_invalid_edges(geoms)
        flagged = np.flatnonzero(~shapely.is_empty(edges) & ~shapely.is_missing(edges))
        if not len(flagged):
            continue
        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms[flagged], predicate="intersects")
        left = flagged[left]
        keep = left != right
        left, right = left[keep], right[keep]
        pairs = np.unique(np.sort(np.column_stack([left, right]), axis=1), axis=0)
        if not len(pairs):
            continue
        a, b = rows[pairs[:, 0]], rows[pairs[:, 1]]
        same_parent = np.array(
            [parent_arr[i] == parent_arr[j] for i, j in zip(a, b, strict=True)], dtype=bool
        )
        a, b = a[same_parent], b[same_parent]
        if not len(a):
            continue
        interior = shapely.relate_pattern(metric[a], metric[b], "T********")
        a, b = a[interior], b[interior]
        shared = shapely.intersection(metric[a], metric[b], grid_size=_GRID)
        shared_area = shapely.area(shared)
        for k in np.flatnonzero(shared_area >= t.opts.min_area_m2):
            i, j = a[k], b[k]
            problems.overlap(
                level.key, code_arr[i], code_arr[j], shared_area[k], shared[k], t.group[i]
            )
            key = parent_arr[i] or ""
            by_parent[key] = by_parent.get(key, 0.0) + shared_area[k]
    return by_parent


def _gaps(
    problems: Problems, t: _Rows, outside_area: np.ndarray, overlap_by_parent: dict[str, float]
) -> None:
    """Parts of a tiled parent that no child covers.

    The area budget ``area(parent) - sum(area(children)) + overlaps + spill``
    closes (to within ``min_area_m2``) when the children tile the parent; only
    parents whose budget does not close are unioned and differenced.
    """
    code_arr, depth, metric, area = t.codes, t.depth, t.metric, t.area
    for level in (Level.AREA, Level.UNIT):
        child = np.flatnonzero(t.ok & (depth == level.value) & ~np.isnan(t.parent_row))
        par = t.parent_row[child].astype(int)
        keep = t.ok[par]
        child, par = child[keep], par[keep]
        if not len(child):
            continue
        sums = pd.DataFrame({"p": par, "a": area[child], "o": outside_area[child]}).groupby("p")
        budget = sums.sum()
        parents = budget.index.to_numpy()
        overlap = np.array([overlap_by_parent.get(code_arr[p], 0.0) for p in parents])
        deficit = area[parents] - budget["a"].to_numpy() + budget["o"].to_numpy() + overlap
        suspicious = parents[(deficit >= t.opts.min_area_m2) | (overlap > 0) | (budget["o"] > 0)]
        if not len(suspicious):
            continue
        members = pd.Series(child).groupby(par).apply(np.asarray)
        for p in suspicious:
            union = shapely.union_all(metric[members[p]], grid_size=_GRID)
            hole = shapely.difference(metric[p], union, grid_size=_GRID)
            parts = shapely.get_parts(hole)
            parts = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
            for part, a in zip(parts, shapely.area(parts), strict=True):
                if a >= t.opts.min_area_m2:
                    problems.gap(Level(depth[p]).key, code_arr[p], level.key, a, part, t.group[p])


def _no_staff(problems: Problems, t: _Rows, assignments: pd.DataFrame) -> None:
    today = (t.opts.today or dt.date.today()).isoformat()
    a = assignments
    start = a["start_date"].astype(object).where(a["start_date"].notna(), "")
    end = a["end_date"].astype(object).where(a["end_date"].notna(), "9999-12-31")
    active = (start.astype(str) <= today) & (end.astype(str) >= today)
    staffed = set(a.loc[active, "grid_code"].astype(str))
    codes = t.codes
    for i in np.flatnonzero(~pd.Index(codes).isin(staffed)):  # hashed; np.isin on objects crawls
        problems.no_staff(Level(t.depth[i]).key, codes[i], t.geoms[i])

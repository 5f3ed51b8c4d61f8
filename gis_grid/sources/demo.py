"""A deterministic demo community, and the same generator at city scale.

The reference is 宏大社区 of 调兵山市兀术街街道 (statistical code 211281001007):
about 0.5 km², 6 residential compounds (小区) with streets between them,
8 areas (片区) of 300–500 households, 30 courtyards (院落) of 3–6 buildings,
114 buildings (楼栋) of 2–6 units (单元), 3,211 households and 8,018 residents,
a named person on every grid. Everything is laid out in the local CGCS2000
Gauss–Krüger zone in metres and converted to lon/lat at the end, so shared
edges share their vertices exactly and the result validates clean.

Layout of one community (not to scale)::

    +------------+----+----------------+----+------------+
    | compound 1 |    | compound 2     |    | compound 3 |   areas run to the
    |  [yd][yd]  | st |  [yd][yd][yd]  | st |  [yd][yd]  |   street centre
    |  [yd][yd]  |    |  [yd][yd][yd]  |    |  [yd]      |   lines, so they
    +------------+----+----------------+----+------------+   tile the community
    |                      street                        |
    +------------+----+----------------+----+------------+
    | compound 4 | .. | compound 5  (two areas)  | ..    |
    +------------+----+----------------+----+------------+

The city-scale dataset (:data:`CITY`) repeats this over a grid of communities
with more buildings each: 200 communities, 100,000 buildings, ~400,000 units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from gis_grid.domain.model import AGGREGATES, Level, Role, child_code, rollup
from gis_grid.domain.numbering import assign_codes, reading_order
from gis_grid.geo.crs import WGS84, local_metric_crs, reproject


@dataclass(frozen=True)
class DemoSpec:
    """What to generate. Counts are per community and met exactly."""

    communities: int = 1
    compounds: int = 6
    areas: int = 8
    courtyards: int = 30
    buildings: int = 114
    households: int = 3211
    residents: int = 8018
    special_care_share: float = 0.025
    #: Frontage (m) of one unit (stairwell); shorter frontage, more units per building.
    unit_width: tuple[float, float] = (12.5, 16.5)
    seed: int = 7
    #: South-west corner of the first community (lon, lat).
    origin: tuple[float, float] = (123.5535, 42.4475)
    county_code: str = "211281"
    first_street: int = 1
    first_community: int = 7
    communities_per_street: int = 10
    names: tuple[str, ...] = ("宏大社区",)


REFERENCE = DemoSpec()
CITY = DemoSpec(
    communities=200,
    compounds=24,
    areas=35,
    courtyards=100,
    buildings=500,
    households=14_000,
    residents=35_000,
    first_community=1,
    unit_width=(7.5, 9.5),
    names=(),
)


@dataclass
class DemoData:
    """Generated tables: grids (EPSG:4326), staff and assignments."""

    grids: gpd.GeoDataFrame
    staff: pd.DataFrame
    assignments: pd.DataFrame
    metric_crs: CRS = field(default_factory=lambda: CRS.from_epsg(4550))


_STREET = 24.0  # width of streets between compounds (m)
_OUTER = 12.0  # half street along the community boundary (m)
_LANE = 8.0  # lane between courtyards (m)
_MARGIN = 10.0  # compound wall to first courtyard (m)

_COMPOUND_NAMES = (
    "阳光",
    "幸福",
    "和谐",
    "康乐",
    "锦绣",
    "翠园",
    "金桥",
    "福安",
    "馨苑",
    "华府",
    "兴业",
    "铁煤",
    "宏大",
    "东升",
    "朝阳",
    "龙湖",
    "景苑",
    "丽都",
    "怡和",
    "安居",
    "民主",
    "建设",
    "新华",
    "育才",
)
_COMPOUND_SUFFIX = ("小区", "家园", "花园", "苑", "新村")
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严"
)
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国文辉玉红梅秀英德福春燕海波志宏晓东"
_NUMERALS = "一二三四五六七八九十"


def _zh_number(n: int) -> str:
    if n <= 10:
        return _NUMERALS[n - 1]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _NUMERALS[tens - 1]) + "十" + (_NUMERALS[ones - 1] if ones else "")


def _apportion(weights: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder apportionment: integers proportional to weights, summing to total."""
    weights = np.asarray(weights, dtype=float)
    raw = weights / weights.sum() * total
    base = np.floor(raw).astype(np.int64)
    short = total - int(base.sum())
    if short > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:short]] += 1
    return base


def _split_counts(total: int, parts: int, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """Random integers in [lo, hi] with a fixed sum."""
    if not lo * parts <= total <= hi * parts:
        raise ValueError(f"cannot split {total} into {parts} parts of {lo}..{hi}")
    counts = np.full(parts, lo, dtype=np.int64)
    for _ in range(total - lo * parts):
        open_ = np.flatnonzero(counts < hi)
        counts[rng.choice(open_)] += 1
    return counts


def _building_shapes(
    rng: np.random.Generator,
    x0: np.ndarray,
    y0: np.ndarray,
    length: np.ndarray,
    depth: np.ndarray,
    n_units: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slab footprints, a third of them staggered (错落), and their unit slices.

    Returns building polygons, unit polygons and each unit's building index.
    """
    n = len(x0)
    x1, y1 = x0 + length, y0 + depth
    stagger = rng.random(n) < 0.35
    # The step falls inside a unit (never on a unit boundary) so units stay simple.
    step_unit = np.maximum(n_units // 2, 1)
    xs = x0 + (step_unit + 0.5) * length / n_units
    d = np.where(stagger, rng.uniform(1.5, 3.0, n) * rng.choice([-1, 1], n), 0.0)
    rings = np.stack(
        [
            np.column_stack([x0, y0]),
            np.column_stack([xs, y0]),
            np.column_stack([xs, y0 + d]),
            np.column_stack([x1, y0 + d]),
            np.column_stack([x1, y1 + d]),
            np.column_stack([xs, y1 + d]),
            np.column_stack([xs, y1]),
            np.column_stack([x0, y1]),
            np.column_stack([x0, y0]),
        ],
        axis=1,
    )
    plain = shapely.box(x0, y0, x1, y1)
    stepped = shapely.polygons(rings)
    buildings = np.where(stagger, stepped, plain)
    owner = np.repeat(np.arange(n), n_units)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(n_units) - n_units, n_units)
    width = (length / n_units)[owner]
    ux0 = x0[owner] + k * width
    ux1 = np.where(k == n_units[owner] - 1, x1[owner], ux0 + width)
    strips = shapely.box(ux0, (y0 - 5)[owner], ux1, (y1 + 5)[owner])
    units = shapely.intersection(buildings[owner], strips)
    return buildings, units, owner


def _community(spec: DemoSpec, rng: np.random.Generator) -> dict:
    """Lay out one community in local metres with its origin at (0, 0)."""
    # compounds in nx columns by ny rows, a little wider than tall
    divisors = [d for d in range(1, spec.compounds + 1) if spec.compounds % d == 0]
    nx = min(divisors, key=lambda d: abs(d - math.sqrt(spec.compounds * 1.5)))
    ny = spec.compounds // nx
    yard_counts = _apportion(rng.uniform(0.7, 1.3, spec.compounds), spec.courtyards)
    yard_counts = np.maximum(yard_counts, 1)
    yard_counts[np.argmax(yard_counts)] += spec.courtyards - yard_counts.sum()
    cell_w = rng.uniform(98, 116, spec.compounds)
    cell_h = rng.uniform(86, 100, spec.compounds)
    cx = np.ceil(np.sqrt(yard_counts * cell_h / cell_w)).astype(int)
    cx = np.clip(cx, 1, yard_counts)
    cy = np.ceil(yard_counts / cx).astype(int)
    comp_w = cx * cell_w + 2 * _MARGIN
    comp_h = cy * cell_h + 2 * _MARGIN
    grid_w = comp_w.reshape(ny, nx).max(axis=0)
    grid_h = comp_h.reshape(ny, nx).max(axis=1)
    col_x = _OUTER + np.r_[0, np.cumsum(grid_w + _STREET)[:-1]]
    row_top = _OUTER + np.r_[0, np.cumsum(grid_h + _STREET)[:-1]]  # from the north edge
    width = 2 * _OUTER + grid_w.sum() + _STREET * (nx - 1)
    height = 2 * _OUTER + grid_h.sum() + _STREET * (ny - 1)
    return dict(
        nx=nx,
        ny=ny,
        yard_counts=yard_counts,
        cell_w=cell_w,
        cell_h=cell_h,
        cx=cx,
        col_x=col_x,
        row_top=row_top,
        width=width,
        height=height,
    )


def generate(spec: DemoSpec = REFERENCE, *, progress=None) -> DemoData:
    """Generate communities with all five grid levels, their staff and assignments.

    Parameters
    ----------
    spec : DemoSpec
        Counts and placement; :data:`REFERENCE` is 宏大社区, :data:`CITY` the
        benchmark city.
    progress : callable, optional
        Called with the number of communities finished, for progress bars.

    Returns
    -------
    DemoData

    Examples
    --------
    >>> data = generate()
    >>> data.grids.groupby("level").size().to_dict()
    {'area': 8, 'building': 114, 'community': 1, 'courtyard': 30, 'unit': 350}
    >>> int(data.grids.loc[data.grids.level == "community", "households"].iloc[0])
    3211
    """
    rng = np.random.default_rng(spec.seed)
    metric = local_metric_crs(*spec.origin)
    to_metric = Transformer.from_crs(WGS84, metric, always_xy=True)
    ox, oy = to_metric.transform(*spec.origin)
    layouts = [_community(spec, rng) for _ in range(spec.communities)]
    ncols = max(1, round(math.sqrt(spec.communities)))
    nrows = math.ceil(spec.communities / ncols)
    widths = np.zeros(ncols)
    heights = np.zeros(nrows)
    for i, lay in enumerate(layouts):
        r, c = divmod(i, ncols)
        widths[c] = max(widths[c], lay["width"])
        heights[r] = max(heights[r], lay["height"])
    col_x0 = ox + np.r_[0, np.cumsum(widths)[:-1]]
    row_y1 = oy + heights.sum() - np.r_[0, np.cumsum(heights)[:-1]]  # top edge of each row

    frames, staff_rows, assign_rows = [], [], []
    counter = {"staff": 0}
    for i, lay in enumerate(layouts):
        r, c = divmod(i, ncols)
        left, top = col_x0[c], row_y1[r]
        frame, staff, assign = _fill_community(
            spec, rng, i, lay, left, top, widths[c], heights[r], counter
        )
        frames.append(frame)
        staff_rows.extend(staff)
        assign_rows.extend(assign)
        if progress is not None:
            progress(i + 1)

    grids = pd.concat(frames, ignore_index=True)
    geoms = reproject(grids.pop("geometry").to_numpy(), metric, WGS84)
    grids = gpd.GeoDataFrame(grids, geometry=geoms, crs=WGS84)
    staff = pd.DataFrame(staff_rows, columns=["staff_id", "name", "role", "phone"])
    assignments = pd.DataFrame(
        assign_rows, columns=["staff_id", "grid_code", "role", "start_date", "end_date"]
    )
    return DemoData(grids=grids, staff=staff, assignments=assignments, metric_crs=metric)


def _fill_community(
    spec: DemoSpec,
    rng: np.random.Generator,
    index: int,
    lay: dict,
    left: float,
    top: float,
    width: float,
    height: float,
    counter: dict,
) -> tuple[pd.DataFrame, list, list]:
    street = spec.first_street + (spec.first_community - 1 + index) // spec.communities_per_street
    number = (spec.first_community - 1 + index) % spec.communities_per_street + 1
    community_code = f"{spec.county_code}{street:03d}{number:03d}"
    if index < len(spec.names):
        community_name = spec.names[index]
    else:
        prefix = _COMPOUND_NAMES[index % len(_COMPOUND_NAMES)]
        community_name = f"{prefix}{_zh_number(index % 99 + 1)}社区"
    bottom = top - height
    community = shapely.box(left, bottom, left + width, top)
    if index == 0 and spec.communities == 1:
        # the reference community has its north-east corner cut by a diagonal road,
        # which stays clear of the compound walls (they start _OUTER + _MARGIN in)
        cut = 1.6 * (_OUTER + _MARGIN)
        community = shapely.Polygon(
            [
                (left, bottom),
                (left + width, bottom),
                (left + width, top - cut),
                (left + width - cut, top),
                (left, top),
                (left, bottom),
            ]
        )

    nx, ny = lay["nx"], lay["ny"]
    # street centre lines inside this community (x of vertical ones, y of horizontal ones)
    vx = [left + lay["col_x"][j] - _STREET / 2 for j in range(1, nx)]
    hy = [top - lay["row_top"][j] + _STREET / 2 for j in range(1, ny)]
    xs = [left, *vx, left + width]
    ys = [top, *hy, bottom]

    yard_boxes, yard_compound, yard_col = [], [], []
    compound_names = []
    for k in range(nx * ny):
        rr, cc = divmod(k, nx)
        cx0 = left + lay["col_x"][cc]
        cy1 = top - lay["row_top"][rr]
        name = (
            _COMPOUND_NAMES[(index * 7 + k) % len(_COMPOUND_NAMES)]
            + _COMPOUND_SUFFIX[(index + k) % len(_COMPOUND_SUFFIX)]
        )
        compound_names.append(name)
        cw, ch = lay["cell_w"][k], lay["cell_h"][k]
        for n in range(lay["yard_counts"][k]):
            yr, yc = divmod(n, lay["cx"][k])
            bx0 = cx0 + _MARGIN + yc * cw + _LANE / 2 + rng.uniform(0, 4)
            bx1 = cx0 + _MARGIN + (yc + 1) * cw - _LANE / 2 - rng.uniform(0, 4)
            by1 = cy1 - _MARGIN - yr * ch - _LANE / 2 - rng.uniform(0, 4)
            by0 = cy1 - _MARGIN - (yr + 1) * ch + _LANE / 2 + rng.uniform(0, 4)
            yard_boxes.append((bx0, by0, bx1, by1))
            yard_compound.append(k)
            yard_col.append(yc)
    yard_boxes = np.array(yard_boxes)
    yard_compound = np.array(yard_compound)
    yard_col = np.array(yard_col)
    n_yards = len(yard_boxes)

    # buildings per courtyard (3..6), laid out in rows of one or two slabs
    b_per_yard = _split_counts(spec.buildings, n_yards, 3, 6, rng)
    bx0, by0, blen, bdep, byard = [], [], [], [], []
    for y, (x0, y0, x1, y1) in enumerate(yard_boxes):
        nb = b_per_yard[y]
        per_row = 2 if nb >= 4 or (x1 - x0) > 115 else 1
        rows = math.ceil(nb / per_row)
        pitch = (y1 - y0 - 12) / rows
        placed = 0
        for row in range(rows):
            k = min(per_row, nb - placed)
            slot = (x1 - x0 - 12 - (k - 1) * 10) / k
            for s in range(k):
                length = slot * rng.uniform(0.72, 0.94)
                depth = min(rng.uniform(10.5, 13.5), pitch - 8)
                sx = x0 + 6 + s * (slot + 10) + rng.uniform(0, slot - length)
                sy = y1 - 6 - (row + 1) * pitch + rng.uniform(3.5, max(3.6, pitch - depth - 3.5))
                bx0.append(sx)
                by0.append(sy)
                blen.append(length)
                bdep.append(depth)
                byard.append(y)
            placed += k
    bx0, by0, blen, bdep = map(np.array, (bx0, by0, blen, bdep))
    byard = np.array(byard)
    n_units = np.clip(np.round(blen / rng.uniform(*spec.unit_width, len(blen))), 2, 6).astype(int)
    buildings, units, unit_owner = _building_shapes(rng, bx0, by0, blen, bdep, n_units)

    # areas: compound territories to street centre lines; the compounds with the most
    # courtyards are split (between courtyard columns) until there are spec.areas of them
    splits = np.ones(nx * ny, dtype=int)
    for _ in range(spec.areas - nx * ny):
        ratio = np.where(splits < lay["cx"], lay["yard_counts"] / splits, -1)
        splits[np.argmax(ratio)] += 1
    lines = [shapely.LineString([(x, bottom - 1), (x, top + 1)]) for x in vx]
    lines += [shapely.LineString([(left - 1, y), (left + width + 1, y)]) for y in hy]
    area_of_yard = np.zeros(n_yards, dtype=int)
    area_boxes = []  # (x0, y0, x1, y1) of each area's territory, for face assignment
    for k in range(nx * ny):
        rr, cc = divmod(k, nx)
        tx0, tx1, ty1, ty0 = xs[cc], xs[cc + 1], ys[rr], ys[rr + 1]
        cols = lay["cx"][k]
        groups = np.array_split(np.arange(cols), splits[k])
        cuts = [tx0]
        for g in groups[1:]:
            cx0 = left + lay["col_x"][cc] + _MARGIN + g[0] * lay["cell_w"][k]
            lines.append(shapely.LineString([(cx0, ty0), (cx0, ty1)]))
            cuts.append(cx0)
        cuts.append(tx1)
        for gi, g in enumerate(groups):
            in_group = (yard_compound == k) & np.isin(yard_col, g)
            area_of_yard[in_group] = len(area_boxes)
            area_boxes.append((cuts[gi], ty0, cuts[gi + 1], ty1))
    # workload: every area carries a comparable number of households (that is how the
    # grids were drawn); inside an area, units by floors x households per floor
    floors = rng.choice([4, 5, 6, 7, 11, 18], len(blen), p=[0.1, 0.3, 0.4, 0.1, 0.07, 0.03])
    per_floor = np.where(floors >= 11, 4, 2)
    unit_weight = (floors * per_floor)[unit_owner] * rng.uniform(0.8, 1.0, len(units))
    unit_area = area_of_yard[byard[unit_owner]]
    area_hh = _apportion(rng.uniform(0.85, 1.15, len(area_boxes)), spec.households)
    households = np.zeros(len(units), dtype=np.int64)
    for a in range(len(area_boxes)):
        members = np.flatnonzero(unit_area == a)
        households[members] = _apportion(unit_weight[members], area_hh[a])
    residents = _apportion(households * rng.uniform(2.1, 2.9, len(units)), spec.residents)
    care_total = round(spec.residents * spec.special_care_share)
    special = _apportion(residents * rng.uniform(0.2, 1.8, len(units)), care_total)

    linework = shapely.union_all([community.boundary, *shapely.intersection(lines, community)])
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(linework))))
    probe = shapely.point_on_surface(faces)
    area_poly = np.empty(len(area_boxes), dtype=object)
    boxes = np.array(area_boxes)
    for f, pt in zip(faces, probe, strict=True):
        px, py = shapely.get_x(pt), shapely.get_y(pt)
        hit = np.flatnonzero(
            (boxes[:, 0] <= px) & (px <= boxes[:, 2]) & (boxes[:, 1] <= py) & (py <= boxes[:, 3])
        )
        area_poly[hit[0]] = f

    # codes, west→east / north→south within each parent
    area_serial = reading_order(np.zeros(len(area_poly)), area_poly)
    area_codes = np.array([child_code(community_code, s) for s in area_serial], dtype=object)
    yard_geoms = shapely.box(*yard_boxes.T)
    yard_parent = area_codes[area_of_yard]
    yard_codes = np.array(assign_codes(yard_parent, yard_geoms), dtype=object)
    b_parent = yard_codes[byard]
    b_codes = np.array(assign_codes(b_parent, buildings), dtype=object)
    u_parent = b_codes[unit_owner]
    u_codes = np.array(assign_codes(u_parent, units), dtype=object)

    # names
    area_names = [f"{community_name}第{_zh_number(int(s))}网格" for s in area_serial]
    yard_names = []
    per_compound: dict[int, int] = {}
    for y in np.argsort(yard_codes, kind="stable"):
        k = yard_compound[y]
        per_compound[k] = per_compound.get(k, 0) + 1
        yard_names.append((y, f"{compound_names[k]}{per_compound[k]}号院"))
    yard_names = [n for _, n in sorted(yard_names)]
    building_names = np.empty(len(buildings), dtype=object)
    per_compound = {}
    for b in np.argsort(b_codes, kind="stable"):
        k = yard_compound[byard[b]]
        per_compound[k] = per_compound.get(k, 0) + 1
        building_names[b] = f"{compound_names[k]}{per_compound[k]}号楼"
    unit_names = [f"{int(code[-2:])}单元" for code in u_codes]

    levels = (
        [Level.COMMUNITY.key]
        + [Level.AREA.key] * len(area_poly)
        + [Level.COURTYARD.key] * n_yards
        + [Level.BUILDING.key] * len(buildings)
        + [Level.UNIT.key] * len(units)
    )
    codes = np.concatenate([[community_code], area_codes, yard_codes, b_codes, u_codes])
    frame = pd.DataFrame(
        {
            "code": codes,
            "parent_code": np.concatenate(
                [[None], [community_code] * len(area_poly), yard_parent, b_parent, u_parent]
            ),
            "level": levels,
            "name": [community_name, *area_names, *yard_names, *building_names, *unit_names],
            "geometry": np.concatenate([[community], area_poly, yard_geoms, buildings, units]),
        }
    )
    zeros = np.zeros(1 + len(area_poly) + n_yards + len(buildings), dtype=np.int64)
    for col, values in zip(AGGREGATES, (households, residents, special), strict=True):
        frame[col] = np.concatenate([zeros, values])
    frame = rollup(frame)

    staff, assign = _staff(spec, rng, frame, community_code, counter)
    return frame, staff, assign


def _people(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    """Names (surname + one or two given characters) and mobile numbers."""
    sur = rng.integers(0, len(_SURNAMES), n)
    g1, g2 = rng.integers(0, len(_GIVEN), n), rng.integers(0, len(_GIVEN), n)
    two = rng.random(n) < 0.65
    names = [
        _SURNAMES[a] + _GIVEN[b] + (_GIVEN[c] if t else "")
        for a, b, c, t in zip(sur, g1, g2, two, strict=True)
    ]
    prefix = np.array(["133", "135", "138", "139", "158", "186"])[rng.integers(0, 6, n)]
    phones = [f"{p}{d:08d}" for p, d in zip(prefix, rng.integers(0, 10**8, n), strict=True)]
    return names, phones


def _staff(
    spec: DemoSpec,
    rng: np.random.Generator,
    frame: pd.DataFrame,
    community_code: str,
    counter: dict,
) -> tuple[list, list]:
    """One responsible person per grid, by level; see the module docstring for roles.

    The community has a grid leader (网格长) and a supervisor; each area a grid worker
    (网格员) who also covers the area's courtyards; each building a building head
    (楼长); each unit a unit head (单元长), where in three buildings out of ten the
    building head doubles as head of unit 1.
    """
    by_level = {lv: frame.loc[frame.level == lv.key, "code"].tolist() for lv in Level}
    staff_roles: list[str] = []  # per person
    holders: list[int] = []  # per assignment: the person
    grids: list[str] = []
    roles: list[str] = []

    def hire(role: Role) -> int:
        staff_roles.append(role.value)
        return len(staff_roles) - 1

    def give(person: int, code: str, role: Role) -> None:
        holders.append(person)
        grids.append(code)
        roles.append(role.value)

    give(hire(Role.GRID_LEADER), community_code, Role.GRID_LEADER)
    give(hire(Role.SUPERVISOR), community_code, Role.SUPERVISOR)
    worker = {code: hire(Role.GRID_WORKER) for code in by_level[Level.AREA]}
    for code in by_level[Level.AREA] + by_level[Level.COURTYARD]:
        give(worker[code[: Level.AREA.code_length]], code, Role.GRID_WORKER)
    head = {code: hire(Role.BUILDING_HEAD) for code in by_level[Level.BUILDING]}
    for code in by_level[Level.BUILDING]:
        give(head[code], code, Role.BUILDING_HEAD)
    units = by_level[Level.UNIT]
    doubles = np.char.endswith(np.array(units, dtype=str), "01") & (rng.random(len(units)) < 0.3)
    for code, double in zip(units, doubles, strict=True):
        person = head[code[: Level.BUILDING.code_length]] if double else hire(Role.UNIT_HEAD)
        give(person, code, Role.UNIT_HEAD)
    n = len(staff_roles)
    names, phones = _people(rng, n)
    ids = [f"S{counter['staff'] + k + 1:07d}" for k in range(n)]
    counter["staff"] += n
    staff = list(zip(ids, names, staff_roles, phones, strict=True))
    start = np.datetime64("2024-01-01") + rng.integers(0, 600, len(grids)).astype("timedelta64[D]")
    assign = [
        (ids[h], g, r, str(d), None)
        for h, g, r, d in zip(holders, grids, roles, start, strict=True)
    ]
    return staff, assign


def layer_frames(data: DemoData, *, seed: int = 7) -> dict:
    """The demo features of every installed layer that has some (raw, as a file would be)."""
    from gis_grid.layers.plugins import available

    frames = {}
    for name, layer in available().items():
        rng = np.random.default_rng([seed, sum(map(ord, name))])
        frame = layer.demo(data, rng)
        if frame is not None:
            frames[name] = frame
    return frames


def add_layers(store, data: DemoData, *, seed: int = 7) -> dict[str, int]:
    """Fill every installed layer that has demo features, checked as an import would be.

    Returns the number of features written per layer.
    """
    return add_features(store, layer_frames(data, seed=seed), mode="replace")


def write_demo(path, spec: DemoSpec = REFERENCE, *, seed: int = 7):
    """A new GeoPackage at ``path`` holding the demo: grids, staff and every demo layer.

    The store is returned open (close it, or use it in a ``with``). What
    ``gis-grid demo`` builds, minus its users and its first sweep of late cases
    (:func:`gis_grid.cases.service.sweep`).
    """
    from gis_grid.store import ChangeSet, open_store

    data = generate(spec)
    store = open_store(path, create=True)
    try:
        store.apply(ChangeSet(data.grids, data.staff, data.assignments))
        add_layers(store, data, seed=seed)
    except BaseException:
        store.close()
        raise
    return store


def add_features(store, frames: dict, *, mode: str = "append") -> dict[str, int]:
    """Check raw features of named layers as an import would, and write each layer."""
    from gis_grid.layers.features import normalise_features
    from gis_grid.layers.plugins import get_layer

    written = {}
    for name, frame in frames.items():
        layer = get_layer(name)
        checked, log = layer.prepare(layer.check(normalise_features(layer.schema, frame)))
        written[name] = store.write_features(layer.schema, checked, mode=mode, log=log).written
    return written


def planning_area(
    *,
    side: int = 100,
    blocks: int = 10,
    community: str = "110105001001",
    seed: int = 0,
    imbalance: float = 0.3,
) -> DemoData:
    """A community of one area: ``side × side`` buildings in ``blocks × blocks`` courtyards.

    The test bed of rebalancing: buildings of 10–200 households on a 30 m
    lattice (east of Beijing), courtyards cut at jittered rows and columns so
    that they carry unequal work (up to about ``imbalance`` either way), one
    grid worker per courtyard and one head per building. ``side=100,
    blocks=10`` is 10,000 buildings in 100 courtyards.
    """
    rng = np.random.default_rng(seed)
    step, w, h = 30.0, 14.0, 20.0
    cut = []
    for _axis in range(2):
        base = np.linspace(0, side, blocks + 1)
        jitter = rng.uniform(-imbalance / 2, imbalance / 2, blocks + 1) * side / blocks
        edges = np.round(base + jitter).astype(int)
        edges[0], edges[-1] = 0, side
        cut.append(np.maximum.accumulate(edges))
    col = np.searchsorted(cut[0], np.arange(side), side="right") - 1
    row = np.searchsorted(cut[1], np.arange(side), side="right") - 1
    ix, iy = np.meshgrid(np.arange(side), np.arange(side))
    ix, iy = ix.ravel(), iy.ravel()
    x0 = ix * step + rng.uniform(0, step - w - 4, ix.size) + 2
    y0 = -(iy * step + rng.uniform(0, step - h - 4, iy.size) + 2) - h
    footprints = shapely.box(x0, y0, x0 + w, y0 + h)
    block = row[iy] * blocks + col[ix]
    size = side * step
    outline = shapely.box(-10, -size - 10, size + 10, 10)
    yard = []
    for b in range(blocks * blocks):
        r, c = divmod(b, blocks)
        if cut[0][c] == cut[0][c + 1] or cut[1][r] == cut[1][r + 1]:
            yard.append(None)
            continue
        yard.append(
            shapely.box(
                cut[0][c] * step - (10 if c == 0 else 0),
                -cut[1][r + 1] * step - (10 if r == blocks - 1 else 0),
                cut[0][c + 1] * step + (10 if c == blocks - 1 else 0),
                -cut[1][r] * step + (10 if r == 0 else 0),
            )
        )
    crs = local_metric_crs(116.5, 39.9)
    origin = Transformer.from_crs(WGS84, crs, always_xy=True).transform(116.5, 39.9)

    def ll(geoms):
        shifted = shapely.transform(np.asarray(geoms, dtype=object), lambda c: c + origin)
        return reproject(shifted, crs, WGS84)

    used = sorted({int(b) for b in block})
    yard_geoms = [yard[b] for b in used]
    area_code = child_code(community, 1)
    yard_codes = assign_codes([area_code] * len(used), ll(yard_geoms))
    code_of_block = dict(zip(used, yard_codes, strict=True))
    parents = np.array([code_of_block[int(b)] for b in block], dtype=object)
    b_ll = ll(footprints)
    b_codes = assign_codes(parents, b_ll)
    households = np.clip(np.round(rng.lognormal(np.log(50), 0.6, ix.size)), 10, 200).astype(int)
    residents = np.round(households * rng.uniform(2.2, 2.8, ix.size)).astype(int)
    frame = pd.DataFrame(
        {
            "code": [community, area_code, *yard_codes, *b_codes],
            "name": [
                "规划试验社区",
                "第一片区",
                *[f"院落{c[-3:]}" for c in yard_codes],
                *[f"{int(c[-3:])}号楼" for c in b_codes],
            ],
            "households": [0, 0, *([0] * len(yard_codes)), *households],
            "residents": [0, 0, *([0] * len(yard_codes)), *residents],
            "special_care": [0, 0, *([0] * len(yard_codes)), *(households // 25)],
        }
    )
    geoms = [*ll([outline, outline]), *ll(yard_geoms), *b_ll]
    grids = gpd.GeoDataFrame(rollup(frame), geometry=geoms, crs=WGS84)
    names, phones = _people(rng, len(yard_codes) + 2 + len(b_codes))
    ids = [f"P{k + 1:07d}" for k in range(len(names))]
    roles = (
        [Role.GRID_LEADER.value, Role.GRID_WORKER.value]
        + [Role.GRID_WORKER.value] * len(yard_codes)
        + [Role.BUILDING_HEAD.value] * len(b_codes)
    )
    staff = pd.DataFrame({"staff_id": ids, "name": names, "role": roles, "phone": phones})
    assignments = pd.DataFrame(
        {
            "staff_id": ids,
            "grid_code": [community, area_code, *yard_codes, *b_codes],
            "role": roles,
            "start_date": "2025-01-01",
        }
    )
    return DemoData(grids=grids, staff=staff, assignments=assignments, metric_crs=crs)

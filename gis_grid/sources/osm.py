"""A grid hierarchy and its layers from an OpenStreetMap extract (``.osm.pbf``).

For a real-data demo where no city grid data is at hand:

- the **community** is the convex hull of the extract's buildings, 30 m wider;
- **courtyards** are its street blocks: the faces the roads (``highway=*`` ways
  open to vehicles, service roads included) cut it into (``shapely.polygonize``);
- **areas** gather neighbouring courtyards, in reading order, until each holds
  about ``households_per_area`` households, so together they tile the community;
- **buildings** are the footprints, repaired where invalid, clipped to the
  courtyard holding most of each, overlaps given to the larger building;
- **units** cut each building across its long side into stairwell slices of
  about ``unit_floor_m2`` per floor.

Households are estimated from floor area (footprint × ``building:levels``,
default 4, at ``m2_per_household``); residents at 2.2 per household. Every
grid gets a (generated) responsible person, as in the demo. The layers are
filled by each installed layer's ``from_osm`` (streets, lamps, cameras).

Reading needs ``pyrosm`` (``pip install gis-grid[osm]``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level, level_of_code
from gis_grid.domain.numbering import assign_codes
from gis_grid.geo.crs import WGS84, local_metric_crs, project, reproject

#: Roads that bound street blocks (footways and paths run inside blocks).
BLOCK_ROADS = (
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "unclassified",
    "residential",
    "living_street",
    "service",
    "pedestrian",
    "motorway_link",
    "trunk_link",
    "primary_link",
    "secondary_link",
    "tertiary_link",
    "road",
)


@dataclass
class OSMGrids:
    """Grids, staff and assignments built from an extract, and the extract itself."""

    grids: gpd.GeoDataFrame
    staff: pd.DataFrame
    assignments: pd.DataFrame
    osm: object  # pyrosm.OSM
    metric_crs: object
    #: Footprints left out on purpose: under :data:`MIN_FOOTPRINT_M2` (sheds, kiosks), as
    #: drawn or once clipped to their street block.
    dropped_small: int = 0
    #: Street blocks of more than :data:`MAX_BLOCK_BUILDINGS` buildings, split into parts:
    #: (buildings in the block, parts it became) each.
    split_blocks: list = field(default_factory=list)


def open_extract(path: str | os.PathLike):
    """The extract as a ``pyrosm.OSM`` reader (clear errors for a missing file or pyrosm)."""
    try:
        import pyrosm
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InputError(say("problem_needs_pyrosm")) from exc
    if not os.path.exists(path):
        raise InputError(say("problem_no_file", path=str(path)))
    if not str(path).endswith(".pbf"):
        raise InputError(say("problem_not_pbf", path=str(path)))
    return pyrosm.OSM(str(path))


def _polygons(geoms: np.ndarray) -> np.ndarray:
    """Valid polygonal geometries (repaired; None where nothing polygonal is left)."""
    geoms = np.asarray(geoms, dtype=object)
    bad = ~shapely.is_valid(geoms)
    geoms = geoms.copy()
    geoms[bad] = shapely.make_valid(geoms[bad])
    out = np.full(len(geoms), None, dtype=object)
    for i, g in enumerate(geoms):  # only the repaired ones have mixed parts
        parts = shapely.get_parts(g)
        parts = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        if len(parts):
            out[i] = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    return out


#: A street block holding more buildings than this is split (see :func:`_split_full_blocks`).
MAX_BLOCK_BUILDINGS = 200
#: Building footprints smaller than this (m²) are not buildings of a grid (sheds, kiosks,
#: garages): they are left out on purpose, and the import report counts them.
MIN_FOOTPRINT_M2 = 10.0


def grids_from_osm(
    path: str | os.PathLike,
    *,
    community_code: str = "999999001001",
    name: str | None = None,
    households_per_area: int = 350,
    m2_per_household: float = 90.0,
    unit_floor_m2: float = 260.0,
    seed: int = 7,
) -> OSMGrids:
    """Build the five grid levels from an extract (see the module docstring)."""
    from gis_grid.sources.demo import REFERENCE, _staff

    if level_of_code(community_code) is not Level.COMMUNITY:
        raise InputError(say("problem_not_community_code", code=repr(community_code)))
    osm = open_extract(path)
    raw = osm.get_buildings()
    if raw is None or not len(raw):
        raise InputError(say("problem_no_buildings", path=str(path)))
    lonlat = raw.geometry.to_numpy()
    b = shapely.total_bounds(lonlat)
    crs = local_metric_crs((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    footprints = _polygons(project(lonlat, crs))
    drawn = np.array([g is not None for g in footprints])
    keep = drawn & (shapely.area(footprints) >= MIN_FOOTPRINT_M2)
    dropped = int((drawn & ~keep).sum())
    footprints = footprints[keep]
    levels = pd.to_numeric(
        raw.get("building:levels", pd.Series([None] * len(raw))), errors="coerce"
    ).to_numpy()[keep]
    levels = np.where(np.isfinite(levels) & (levels >= 1), np.minimum(levels, 40), 4)
    names = raw.get("name", pd.Series([None] * len(raw))).to_numpy()[keep]

    community = shapely.buffer(shapely.convex_hull(shapely.union_all(footprints)), 30)
    roads = osm.get_network(network_type="all")
    lines = project(roads.loc[roads["highway"].isin(BLOCK_ROADS)].geometry.to_numpy(), crs)
    lines = shapely.intersection(lines, community)
    noded = shapely.union_all(np.r_[lines, [community.exterior]])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    faces = faces[shapely.covered_by(shapely.point_on_surface(faces), community)]
    faces = _absorb_slivers(faces, 200.0)
    # a "block" of hundreds of buildings is sparse street mapping (or streets cut at the
    # extract's edge), not a courtyard: split it until each part holds few enough
    faces, splits = _split_full_blocks(faces, shapely.point_on_surface(footprints))
    if splits:  # node every face again: neighbours gain the corners the cuts made
        noded = shapely.union_all(shapely.boundary(faces))
        faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
        faces = faces[shapely.covered_by(shapely.point_on_surface(faces), community)]

    # buildings to the face holding most of each, clipped to it; overlaps to the larger
    f_i, b_j = shapely.STRtree(faces).query(footprints, predicate="intersects")
    share = shapely.area(shapely.intersection(footprints[f_i], faces[b_j]))
    best = (
        pd.DataFrame({"b": f_i, "f": b_j, "s": share})
        .sort_values("s")
        .drop_duplicates("b", keep="last")
    )
    owner = np.full(len(footprints), -1)
    owner[best["b"].to_numpy()] = best["f"].to_numpy()
    placed = owner >= 0
    clipped = footprints.copy()
    clipped[placed] = shapely.intersection(footprints[placed], faces[owner[placed]])
    clipped = _without_overlaps(_polygons(clipped))
    ok = np.array([g is not None for g in clipped]) & placed
    large = shapely.area(np.where(ok, clipped, shapely.Polygon())) >= MIN_FOOTPRINT_M2
    dropped += int((ok & ~large).sum())
    ok &= large
    bld, bld_face, bld_levels, bld_names = clipped[ok], owner[ok], levels[ok], names[ok]
    households = np.maximum(np.round(shapely.area(bld) * bld_levels / m2_per_household), 1)

    # areas: courtyards in reading order, cut every households_per_area households
    face_hh = np.bincount(bld_face, weights=households, minlength=len(faces))
    order = np.argsort(_reading_key(faces), kind="stable")
    group = np.zeros(len(faces), dtype=int)
    group[order] = np.floor(np.cumsum(face_hh[order]) / households_per_area).astype(int)
    _, group = np.unique(group, return_inverse=True)
    areas = np.array(
        [shapely.coverage_union_all(faces[group == g]) for g in range(group.max() + 1)],
        dtype=object,
    )

    # units: slices across the long side of each building
    n_units = np.clip(np.round(shapely.area(bld) / unit_floor_m2), 1, 8).astype(int)
    unit_geoms, unit_owner = _slices(bld, n_units)

    # codes, in reading order at each level
    to_lonlat = lambda g: reproject(np.asarray(g, dtype=object), crs, WGS84)  # noqa: E731
    area_codes = np.array(assign_codes([community_code] * len(areas), to_lonlat(areas)))
    face_codes = np.array(assign_codes(area_codes[group], to_lonlat(faces)))
    bld_codes = np.array(assign_codes(face_codes[bld_face], to_lonlat(bld)))
    unit_codes = np.array(assign_codes(bld_codes[unit_owner], to_lonlat(unit_geoms)))
    unit_hh = np.round(households[unit_owner] / n_units[unit_owner]).astype(int)
    unit_hh = np.maximum(unit_hh, 1)
    rng = np.random.default_rng(seed)
    label = name or "OSM社区"
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "code": [community_code],
                    "level": "community",
                    "name": label,
                    "geometry": [community],
                }
            ),
            pd.DataFrame(
                {
                    "code": area_codes,
                    "level": "area",
                    "name": [f"{label}第{i + 1}网格" for i in range(len(areas))],
                    "geometry": areas,
                }
            ),
            pd.DataFrame(
                {
                    "code": face_codes,
                    "level": "courtyard",
                    "name": [f"街区{c[-3:]}" for c in face_codes],
                    "geometry": faces,
                }
            ),
            pd.DataFrame(
                {
                    "code": bld_codes,
                    "level": "building",
                    "name": [
                        n if isinstance(n, str) and n else f"{c[-3:]}号楼"
                        for n, c in zip(bld_names, bld_codes, strict=True)
                    ],
                    "geometry": bld,
                }
            ),
            pd.DataFrame(
                {
                    "code": unit_codes,
                    "level": "unit",
                    "name": [f"{int(c[-2:])}单元" for c in unit_codes],
                    "households": unit_hh,
                    "residents": np.round(unit_hh * 2.2).astype(int),
                    "special_care": rng.binomial(unit_hh, 0.025),
                    "geometry": unit_geoms,
                }
            ),
        ],
        ignore_index=True,
    )
    for col in ("households", "residents", "special_care"):
        frame[col] = frame[col].fillna(0).astype(int)
    staff_rows, assign_rows = _staff(REFERENCE, rng, frame, community_code, {"staff": 0})
    grids = gpd.GeoDataFrame(
        frame.drop(columns="geometry"), geometry=to_lonlat(frame["geometry"].to_numpy()), crs=WGS84
    )
    staff = pd.DataFrame(staff_rows, columns=["staff_id", "name", "role", "phone"])
    assignments = pd.DataFrame(
        assign_rows, columns=["staff_id", "grid_code", "role", "start_date", "end_date"]
    )
    return OSMGrids(grids, staff, assignments, osm, crs, dropped_small=dropped, split_blocks=splits)


def _reading_key(geoms: np.ndarray) -> np.ndarray:
    """Rows of 100 m from the north, west to east within a row."""
    pts = shapely.point_on_surface(geoms)
    row = np.floor(-shapely.get_y(pts) / 100.0)
    return row * 1e7 + shapely.get_x(pts)


def _split_full_blocks(
    faces: np.ndarray, points: np.ndarray, limit: int | None = None
) -> tuple[np.ndarray, list]:
    """Halve faces holding more than ``limit`` footprint points until none does.

    Each cut is straight across the face's longer side, at the median of its
    points, so the parts hold about as many buildings each and stay compact;
    a building crossing a cut goes to the part holding most of it, as a
    building crossing a street does. Returns the faces and, per split block,
    (buildings, parts).
    """
    limit = limit or MAX_BLOCK_BUILDINGS
    out, splits = [], []
    owner = np.full(len(points), -1)
    i_pt, i_face = shapely.STRtree(faces).query(points, predicate="within")
    owner[i_pt] = i_face
    for f, face in enumerate(faces):
        mine = points[owner == f]
        if len(mine) <= limit:
            out.append(face)
            continue
        parts = [(face, mine)]
        done = []
        while parts:
            poly, pts = parts.pop()
            if len(pts) <= limit:
                done.append(poly)
                continue
            xy = shapely.get_coordinates(pts)
            minx, miny, maxx, maxy = shapely.bounds(poly)
            axis = 0 if maxx - minx >= maxy - miny else 1
            cut = float(np.median(xy[:, axis]))
            if axis == 0:
                halves = (
                    shapely.clip_by_rect(poly, minx - 1, miny - 1, cut, maxy + 1),
                    shapely.clip_by_rect(poly, cut, miny - 1, maxx + 1, maxy + 1),
                )
                sides = (xy[:, 0] < cut, xy[:, 0] >= cut)
            else:
                halves = (
                    shapely.clip_by_rect(poly, minx - 1, miny - 1, maxx + 1, cut),
                    shapely.clip_by_rect(poly, minx - 1, cut, maxx + 1, maxy + 1),
                )
                sides = (xy[:, 1] < cut, xy[:, 1] >= cut)
            if not sides[0].any() or not sides[1].any():  # all at one spot: cannot split
                done.append(poly)
                continue
            for half, side in zip(halves, sides, strict=True):
                for piece in shapely.get_parts(half):
                    if piece.geom_type == "Polygon" and piece.area > 0:
                        inside = shapely.covered_by(pts[side], piece)
                        parts.append((piece, pts[side][inside]))
        splits.append((len(mine), len(done)))
        out.extend(done)
    return np.asarray(out, dtype=object), splits


def _absorb_slivers(faces: np.ndarray, min_area: float) -> np.ndarray:
    """Merge faces smaller than ``min_area`` into the neighbour they share most border with."""
    small = np.flatnonzero(shapely.area(faces) < min_area)
    if not len(small) or len(small) == len(faces):
        return faces
    faces = faces.copy()
    big = np.setdiff1d(np.arange(len(faces)), small)
    tree = shapely.STRtree(faces[big])
    s_i, b_j = tree.query(faces[small], predicate="intersects")
    border = shapely.length(
        shapely.intersection(shapely.boundary(faces[small][s_i]), shapely.boundary(faces[big][b_j]))
    )
    pick = pd.DataFrame({"s": s_i, "b": b_j, "len": border}).sort_values("len")
    pick = pick.drop_duplicates("s", keep="last")
    merged = {}
    for s, b in zip(pick["s"], pick["b"], strict=True):
        merged.setdefault(big[b], []).append(faces[small][s])
    for b, extra in merged.items():
        faces[b] = shapely.coverage_union_all(np.array([faces[b], *extra], dtype=object))
    lost = np.setdiff1d(np.arange(len(small)), pick["s"].to_numpy())
    keep = np.r_[big, small[lost]]
    return faces[np.sort(keep)]


def _without_overlaps(geoms: np.ndarray) -> np.ndarray:
    """Each footprint minus the larger footprints it meets: overlaps go to the larger one.

    A footprint inside a larger one (a building part mapped twice) is left empty.
    """
    geoms = geoms.copy()
    present = np.flatnonzero([g is not None for g in geoms])
    tree = shapely.STRtree(geoms[present])
    i, j = tree.query(geoms[present], predicate="intersects")
    a, b = present[i], present[j]
    area = np.zeros(len(geoms))
    area[present] = shapely.area(geoms[present])
    larger = (area[b] > area[a]) | ((area[b] == area[a]) & (b < a))
    a, b = a[larger], b[larger]
    if len(a):
        from gis_grid.geo.coverage import union_by_group

        winners = union_by_group(a, geoms[b], len(geoms))
        losers = np.unique(a)
        geoms[losers] = shapely.difference(geoms[losers], winners[losers])
    return geoms


def _slices(buildings: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut each building into ``n`` slices across its longer bounding-box side."""
    owner = np.repeat(np.arange(len(buildings)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    b = shapely.bounds(buildings)[owner]
    wide = (b[:, 2] - b[:, 0]) >= (b[:, 3] - b[:, 1])
    frac0, frac1 = k / n[owner], (k + 1) / n[owner]
    x0 = np.where(wide, b[:, 0] + (b[:, 2] - b[:, 0]) * frac0, b[:, 0] - 1)
    x1 = np.where(wide, b[:, 0] + (b[:, 2] - b[:, 0]) * frac1, b[:, 2] + 1)
    y0 = np.where(wide, b[:, 1] - 1, b[:, 1] + (b[:, 3] - b[:, 1]) * frac0)
    y1 = np.where(wide, b[:, 3] + 1, b[:, 1] + (b[:, 3] - b[:, 1]) * frac1)
    last = k == n[owner] - 1  # the last slice reaches past the edge: nothing is lost
    x1 = np.where(wide & last, b[:, 2] + 1, x1)
    y1 = np.where(~wide & last, b[:, 3] + 1, y1)
    first = k == 0
    x0 = np.where(wide & first, b[:, 0] - 1, x0)
    y0 = np.where(~wide & first, b[:, 1] - 1, y0)
    pieces = shapely.intersection(buildings[owner], shapely.box(x0, y0, x1, y1))
    pieces = _polygons(pieces)
    ok = np.array([p is not None for p in pieces]) & (
        shapely.area(np.where([p is not None for p in pieces], pieces, shapely.Polygon())) > 0.5
    )
    return pieces[ok], owner[ok]


def layers_from_osm(osm) -> dict[str, gpd.GeoDataFrame]:
    """Each installed layer's features from the extract (those whose ``from_osm`` gives any)."""
    from gis_grid.layers.plugins import available

    found = {}
    for name, layer in available().items():
        frame = layer.from_osm(osm)
        if frame is not None and len(frame):
            found[name] = frame
    return found

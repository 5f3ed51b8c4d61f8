"""Allot a parent's open ground to the buildings or courtyards in it.

To regroup atoms (buildings, courtyards) into new grids that still tile their
parent, every square metre of the parent must belong to one atom: its
footprint, plus the part of the street, yard or square nearest to it. This
module cuts the parent into one *cell* per atom:

1. a Voronoi diagram of one point inside each atom divides the open ground;
2. each Voronoi cell gives up what other atoms' footprints cover and takes
   its own atom's footprint whole (a large building reaching past its
   Voronoi edge keeps all of itself);
3. pieces of a cell cut off from its atom by a neighbour's footprint go to
   the touching cell they share the longest edge with.

Mathematically 1–2 tile the parent exactly: a point in a footprint belongs
to that atom's cell only, a point in the open belongs to the Voronoi cell
that holds it. All overlays run on a 1 mm grid in a metric CRS, so shared
edges come out as identical vertices and unions of cells stay seamless.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from gis_grid.geo.coverage import union_by_group

#: Overlays snap to this grid (metres): the cells' shared edges coincide exactly.
GRID = 1e-3


def tessellate(region, atoms: ArrayLike) -> np.ndarray:
    """One cell per atom; the cells tile ``region`` without gaps or overlaps.

    Parameters
    ----------
    region : shapely Polygon or MultiPolygon
        The parent, in a metric CRS.
    atoms : array_like of polygons
        Footprints inside the region (same CRS) whose interiors do not
        overlap; they may touch.

    Returns
    -------
    numpy.ndarray of polygons
        ``cells[i]`` contains ``atoms[i]`` (its part inside the region) and is
        one polygon wherever the region lets it be.

    Examples
    --------
    Two buildings centred at x = 15 and x = 75 share a 100 m × 50 m parent
    along x = 45:

    >>> cells = tessellate(shapely.box(0, 0, 100, 50),
    ...                    [shapely.box(10, 10, 20, 20), shapely.box(70, 10, 80, 20)])
    >>> [round(c.area) for c in cells], cells[0].bounds
    ([2250, 2750], (0.0, 0.0, 45.0, 50.0))
    """
    region = polygonal(shapely.make_valid(shapely.set_precision(region, GRID)))
    atoms = np.asarray(atoms, dtype=object)
    n = len(atoms)
    if n == 0:
        return np.array([], dtype=object)
    own = polygonal(shapely.intersection(atoms, region, grid_size=GRID))
    if n == 1:
        return np.array([region], dtype=object)
    seeds = shapely.point_on_surface(own)
    voronoi = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=region, ordered=True)
    cells = shapely.get_parts(voronoi)
    if len(cells) != n:  # points closer than GEOS distinguishes: fall back to matching
        tree = shapely.STRtree(cells)
        cells = cells[tree.query(seeds, predicate="intersects")[1][:n]]
    cells = polygonal(shapely.intersection(cells, region, grid_size=GRID))

    # each cell gives up the other atoms' footprints and takes its own whole
    tree = shapely.STRtree(own)
    cell_i, atom_j = tree.query(cells, predicate="intersects")
    other = cell_i != atom_j
    taken = union_by_group(cell_i[other], own[atom_j[other]], n)
    has = np.array([t is not None for t in taken])
    if has.any():
        taken[has] = polygonal(taken[has])
        cells[has] = polygonal(shapely.difference(cells[has], taken[has], grid_size=GRID))
    cells = polygonal(shapely.union(cells, own, grid_size=GRID))
    return reattach(cells, own)


def polygonal(geoms):
    """Only the polygons of each geometry (overlays may add stray lines and points)."""
    geoms = np.asarray(geoms, dtype=object)
    kinds = shapely.get_type_id(geoms)
    mixed = ~np.isin(kinds, (3, 6))
    if mixed.any():
        out = geoms.copy()
        for i in np.flatnonzero(mixed):
            parts = _polygons(geoms[i])
            out[i] = (
                shapely.multipolygons(parts)
                if len(parts) > 1
                else (parts[0] if len(parts) else shapely.Polygon())
            )
        return out if out.ndim else out.item()
    return geoms if geoms.ndim else geoms.item()


def _polygons(geom) -> np.ndarray:
    parts = shapely.get_parts(geom)
    return parts[(shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)]


def reattach(cells: np.ndarray, atoms: np.ndarray) -> np.ndarray:
    """Give each piece of a cell cut off from its atom to the neighbour it shares most edge with."""
    n = len(cells)
    keep, loose = [], []
    for i in range(n):
        parts = _polygons(cells[i])
        if len(parts) <= 1:
            keep.append(parts[0] if len(parts) else shapely.Polygon())
            continue
        touches = shapely.area(shapely.intersection(parts, atoms[i], grid_size=GRID))
        if touches.max() <= 0:  # the atom lies outside the region: keep the largest part
            touches = shapely.area(parts)
        mine = touches > 0
        keep.append(shapely.union_all(parts[mine], grid_size=GRID))
        loose += [(i, p) for p in parts[~mine]]
    out = np.array(keep, dtype=object)
    # a loose piece may border only other loose pieces: settle them in rounds
    for _round in range(10):
        if not loose:
            break
        pieces = np.array([p for _, p in loose], dtype=object)
        tree = shapely.STRtree(out)
        piece_k, cell_j = tree.query(pieces, predicate="intersects")
        owner_of = np.array([i for i, _ in loose])
        ok = cell_j != owner_of[piece_k]
        piece_k, cell_j = piece_k[ok], cell_j[ok]
        shared = shapely.length(
            shapely.intersection(
                shapely.boundary(pieces[piece_k]), shapely.boundary(out[cell_j]), grid_size=GRID
            )
        )
        frame = pd.DataFrame({"k": piece_k, "j": cell_j, "len": shared})
        frame = frame.loc[frame["len"] > 0]
        best = frame.sort_values("len", ascending=False).drop_duplicates("k")
        gained = union_by_group(best["j"].to_numpy(), pieces[best["k"].to_numpy()], n)
        for j in np.flatnonzero([g is not None for g in gained]):
            out[j] = polygonal(shapely.union(out[j], gained[j], grid_size=GRID))
        settled = set(best["k"].tolist())
        loose = [item for k, item in enumerate(loose) if k not in settled]
    for i, piece in loose:  # enclosed by nothing else (cannot happen in a connected region)
        out[i] = polygonal(shapely.union(out[i], piece, grid_size=GRID))
    return out

"""Standard serial numbering of children: west→east, north→south within the parent.

Children are read like a page: first they are grouped into rows (bands from
north to south whose height is the median height of the siblings), then each
row is read from west to east. This matches how the city grid standards number
grids and keeps buildings of one row consecutively numbered even when their
centroids differ by a few metres.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from gis_grid.domain.model import child_code


def reading_order(parents: ArrayLike, geometries: ArrayLike) -> np.ndarray:
    """Return the 1-based serial of each geometry within its parent.

    Parameters
    ----------
    parents : array_like of str
        The parent key of each geometry (siblings share a key).
    geometries : array_like of shapely geometries
        Child geometries in any CRS whose y axis points north (lon/lat works).

    Returns
    -------
    numpy.ndarray of int
        Serial numbers starting at 1 inside every parent.

    Examples
    --------
    >>> from shapely import box
    >>> # two rows: a, b in the north row (b west of a), c in the south row
    >>> geoms = [box(10, 10, 12, 12), box(0, 10.5, 2, 12.5), box(5, 0, 7, 2)]
    >>> reading_order(["p", "p", "p"], geoms).tolist()
    [2, 1, 3]
    """
    geoms = np.asarray(geometries, dtype=object)
    keys = pd.Series(np.asarray(parents, dtype=object))
    if len(geoms) == 0:
        return np.zeros(0, dtype=np.int64)
    bounds = shapely.bounds(geoms)
    pts = shapely.point_on_surface(geoms)
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    height = bounds[:, 3] - bounds[:, 1]
    frame = pd.DataFrame({"key": keys, "x": x, "y": y, "h": height, "top": bounds[:, 3]})
    grouped = frame.groupby("key", sort=False)
    band = grouped["h"].transform("median").to_numpy()
    band = np.where(band > 0, band, 1.0)
    top = grouped["top"].transform("max").to_numpy()
    row = np.floor((top - y) / band).astype(np.int64)
    group_id = grouped.ngroup().to_numpy()
    order = np.lexsort((x, row, group_id))
    serial = np.empty(len(geoms), dtype=np.int64)
    sorted_groups = group_id[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    counts = np.diff(np.r_[starts, len(order)])
    serial[order] = np.arange(len(order)) - np.repeat(starts, counts) + 1
    return serial


def assign_codes(parent_codes: ArrayLike, geometries: ArrayLike) -> list[str]:
    """Compose standard codes for new children of the given parents.

    Examples
    --------
    >>> from shapely import box
    >>> assign_codes(["211281001007"] * 2, [box(1, 0, 2, 1), box(0, 0, 1, 1)])
    ['211281001007002', '211281001007001']
    """
    parents = np.asarray(parent_codes, dtype=object)
    serials = reading_order(parents, geometries)
    return [child_code(p, int(s)) for p, s in zip(parents, serials, strict=True)]

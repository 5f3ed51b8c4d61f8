"""Encode a tile: the features of one layer inside ``z/x/y`` as MVT bytes.

On PostGIS one ``ST_AsMVT`` query does it in the database; on the embedded
store the features are read by bounding box, projected to Web Mercator,
clipped to the tile (plus a buffer) and encoded with ``mapbox-vector-tile``.
Grid levels are simplified to about a pixel with GEOS's coverage
simplification, so neighbouring grids keep one shared edge. Both paths give a
tile the same features with the same attributes.
"""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import numpy as np
import shapely
from pyproj import CRS

from gis_grid.crs import WGS84, reproject
from gis_grid.errors import InputError, NotFoundError
from gis_grid.model import Level

TMS = morecantile.tms.get("WebMercatorQuad")
MERCATOR = CRS.from_epsg(3857)
EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
LEVELS = tuple(level.key for level in Level)
#: Attributes a grid feature carries in a tile (the same on both stores).
GRID_ATTRIBUTES = ("code", "name", "level", "households", "version")


def check_tile(z: int, x: int, y: int) -> morecantile.Tile:
    """The tile, or a clear error when z/x/y is out of range.

    Examples
    --------
    >>> check_tile(12, 3413, 1536).z
    12
    """
    if not 0 <= z <= MAX_ZOOM:
        raise InputError(f"zoom {z} is out of range 0–{MAX_ZOOM}")
    n = 2**z
    if not (0 <= x < n and 0 <= y < n):
        raise InputError(f"tile {z}/{x}/{y} does not exist: x and y run 0–{n - 1} at zoom {z}")
    return morecantile.Tile(x, y, z)


def lonlat_bounds(tile: morecantile.Tile, buffer: float = 0.0) -> tuple:
    """The tile's lon/lat box, grown by ``buffer`` (a fraction of the tile)."""
    b = TMS.xy_bounds(tile)
    w, h = b.right - b.left, b.top - b.bottom
    box = shapely.box(
        b.left - w * buffer, b.bottom - h * buffer, b.right + w * buffer, b.top + h * buffer
    )
    ll = reproject(np.array([box], dtype=object), MERCATOR, WGS84)[0]
    return shapely.bounds(ll)


def encode(name: str, frame, tile: morecantile.Tile, attributes: list[str], *, coverage: bool):
    """MVT bytes of one layer from a lon/lat GeoDataFrame."""
    b = TMS.xy_bounds(tile)
    if not len(frame):
        return mapbox_vector_tile.encode([{"name": name, "features": []}])
    merc = reproject(frame.geometry.to_numpy(), WGS84, MERCATOR)
    pad = (b.right - b.left) * BUFFER / EXTENT
    clip = shapely.box(b.left - pad, b.bottom - pad, b.right + pad, b.top + pad)
    pixel = (b.right - b.left) / EXTENT
    polygonal = np.isin(shapely.get_type_id(merc), (3, 6))
    if coverage and polygonal.all():
        merc = shapely.coverage_simplify(merc, pixel, simplify_boundary=True)
    clipped = shapely.intersection(merc, clip)
    keep = ~shapely.is_empty(clipped)
    # into tile units (0 … EXTENT, y up: the encoder flips it), all at once
    scale = np.array([EXTENT / (b.right - b.left), EXTENT / (b.top - b.bottom)])
    origin = np.array([b.left, b.bottom])
    clipped = shapely.transform(clipped, lambda c: (c - origin) * scale)
    features = []
    rows = (
        frame.loc[keep, attributes].astype(object).where(frame.loc[keep, attributes].notna(), None)
    )
    for geom, props in zip(clipped[keep], rows.to_dict("records"), strict=True):
        features.append({"geometry": geom, "properties": _plain(props)})
    return mapbox_vector_tile.encode(
        [{"name": name, "features": features}],
        default_options={
            "extents": EXTENT,
            "on_invalid_geometry": mapbox_vector_tile.encoder.on_invalid_geometry_make_valid,
        },
    )


def _plain(props: dict) -> dict:
    out = {}
    for k, v in props.items():
        if v is None:
            continue
        out[k] = (
            v.item() if hasattr(v, "item") else (v if isinstance(v, int | float | str) else str(v))
        )
    return out


def layer_attributes(store, layer: str) -> list[str]:
    """The attributes a tile of ``layer`` carries."""
    if layer in LEVELS:
        return list(GRID_ATTRIBUTES)
    schemas = store.layers()
    if layer not in schemas:
        raise NotFoundError(
            f"no tile layer {layer!r}; there are {', '.join([*LEVELS, *sorted(schemas)])}"
        )
    return [
        "id",
        *[c for c in schemas[layer].kinds() if c != "id"],
        "community_code",
        "area_code",
        "courtyard_code",
        "building_code",
        "unit_code",
    ]


def tile(store, layer: str, z: int, x: int, y: int) -> bytes:
    """The MVT of one layer (a grid level or a feature layer) at ``z/x/y``."""
    t = check_tile(z, x, y)
    attributes = layer_attributes(store, layer)
    if hasattr(store, "mvt"):
        return store.mvt(layer, attributes, t.z, t.x, t.y, extent=EXTENT, buffer=BUFFER)
    box = lonlat_bounds(t, BUFFER / EXTENT)
    if layer in LEVELS:
        frame = store.grids(level=layer, bbox=tuple(box))
    else:
        frame = store.features(layer, bbox=tuple(box))
    attributes = [a for a in attributes if a in frame.columns]
    return encode(layer, frame, t, attributes, coverage=layer in LEVELS)

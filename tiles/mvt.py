"""Encode a tile: the features of one layer inside ``z/x/y`` as MVT bytes.

On PostGIS one ``ST_AsMVT`` query does it in the database; on the embedded
store the features are read by bounding box, projected to Web Mercator,
clipped to the tile (plus a buffer) and encoded with ``mapbox-vector-tile``.
Grid levels are simplified to about a pixel with GEOS's coverage
simplification, so neighbouring grids keep one shared edge. Both paths give a
tile the same features with the same attributes.

A point layer with more than ``cap`` points in a tile is aggregated: the
points become flat-topped hexagons (PostGIS's ``ST_HexagonGrid`` lattice in
Web Mercator, :data:`HEXES_ACROSS` to a tile's width) each with a ``count``,
so a city's million incidents stay a few kilobytes per tile at low zoom. The
store says whether a tile is over the cap (PostGIS: in the tile's own query)
and hands over the points' coordinates (PostGIS: a binary COPY); the binning
is this module's, so both stores give the same bins (PostGIS then encodes the
hexagons with ``ST_Hexagon``/``ST_AsMVT``, the embedded store in Python).
"""

from __future__ import annotations

import math

import geopandas as gpd
import mapbox_vector_tile
import morecantile
import numpy as np
import shapely
from pyproj import CRS, Transformer

from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level
from gis_grid.geo.crs import WGS84, reproject

TMS = morecantile.tms.get("WebMercatorQuad")
MERCATOR = CRS.from_epsg(3857)
MERCATOR_FROM_WGS84 = Transformer.from_crs(4326, 3857, always_xy=True)
EXTENT = 4096
BUFFER = 64
MAX_ZOOM = 22
LEVELS = tuple(level.key for level in Level)
#: Attributes a grid feature carries in a tile (the same on both stores).
GRID_ATTRIBUTES = ("code", "name", "level", "households", "version")
#: Points in a tile above which a point layer is drawn as hexagon bins.
FEATURE_CAP = 4000
#: Hexagons across a tile's width when points are binned.
HEXES_ACROSS = 32
#: The Web Mercator world's width in metres.
WORLD = 2 * math.pi * 6378137.0


def hex_size(z: int) -> float:
    """The circumradius (Web Mercator metres) of the bins at zoom ``z``.

    Examples
    --------
    >>> round(hex_size(14), 1)
    76.4
    """
    return WORLD / 2**z / HEXES_ACROSS


def hex_bins(
    x: np.ndarray, y: np.ndarray, size: float, **weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Bin points (Web Mercator) in hexagons: columns ``i``, rows ``j`` and per-bin values.

    The values are ``count`` (points per hexagon) and, for each ``weights``
    array given, its sum per hexagon under the same name (whole numbers). The
    lattice is ``ST_HexagonGrid``'s: centre (1.5·s·i, √3·s·(j + ½ if i is
    odd)). A point counts in the hexagon with the nearest centre (ties: the
    lower column).

    Examples
    --------
    >>> x, y = np.array([0.0, 1.0, 150.0]), np.array([0.0, 1.0, 86.0])
    >>> i, j, v = hex_bins(x, y, 100.0, households=np.array([10, 20, 5]))
    >>> list(zip(i.tolist(), j.tolist(), v["count"].tolist(), v["households"].tolist()))
    [(0, 0, 2, 30), (1, 0, 1, 5)]
    """
    h = math.sqrt(3) * size
    i0 = np.floor(x / (1.5 * size))
    best_i = best_j = best_d = None
    for i in (i0, i0 + 1):
        odd = i - 2 * np.floor(i / 2)
        j = np.floor(y / h - odd / 2 + 0.5)
        d = (x - 1.5 * size * i) ** 2 + (y - h * (j + odd / 2)) ** 2
        if best_d is None:
            best_i, best_j, best_d = i, j, d
        else:
            nearer = d < best_d
            best_i = np.where(nearer, i, best_i)
            best_j = np.where(nearer, j, best_j)
    # one int64 key per cell (columns and rows stay far inside ±2**31 at any zoom)
    key = (best_i.astype(np.int64) << 32) + (best_j.astype(np.int64) + 2**31)
    cells, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    values = {"count": counts}
    for name, w in weights.items():
        values[name] = np.rint(np.bincount(inverse, weights=w, minlength=len(cells))).astype(
            np.int64
        )
    return cells >> 32, (cells & 0xFFFFFFFF) - 2**31, values


def hexagons(i: np.ndarray, j: np.ndarray, size: float) -> np.ndarray:
    """The hexagons (Web Mercator) of lattice cells, as ``ST_Hexagon`` draws them."""
    h = math.sqrt(3) * size
    cx = 1.5 * size * i
    cy = h * (j + (i - 2 * np.floor(i / 2)) / 2)
    dx = size * np.array([-1.0, -0.5, 0.5, 1.0, 0.5, -0.5, -1.0])
    dy = h / 2 * np.array([0.0, -1.0, -1.0, 0.0, 1.0, 1.0, 0.0])
    rings = np.stack([cx[:, None] + dx, cy[:, None] + dy], axis=-1)
    return shapely.polygons(rings)


def check_tile(z: int, x: int, y: int) -> morecantile.Tile:
    """The tile, or a clear error when z/x/y is out of range.

    Examples
    --------
    >>> check_tile(12, 3413, 1536).z
    12
    """
    if not 0 <= z <= MAX_ZOOM:
        raise InputError(say("problem_zoom_range", z=z, most=MAX_ZOOM))
    n = 2**z
    if not (0 <= x < n and 0 <= y < n):
        raise InputError(say("problem_no_tile", z=z, x=x, y=y, last=n - 1))
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


def encode(
    name: str,
    frame,
    tile: morecantile.Tile,
    attributes: list[str],
    *,
    coverage: bool,
    mercator: bool = False,
):
    """MVT bytes of one layer from a lon/lat (or Web Mercator) GeoDataFrame."""
    b = TMS.xy_bounds(tile)
    if not len(frame):
        return mapbox_vector_tile.encode([{"name": name, "features": []}])
    geoms = frame.geometry.to_numpy()
    merc = geoms if mercator else reproject(geoms, WGS84, MERCATOR)
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


def features_tile(name: str, frame, z: int, x: int, y: int) -> bytes:
    """The MVT of any lon/lat GeoDataFrame (an analysis's findings) at ``z/x/y``.

    Every column but the geometry is an attribute; features outside the tile
    (and its buffer) are left out.
    """
    t = check_tile(z, x, y)
    if len(frame):
        frame = frame.loc[
            shapely.intersects(
                frame.geometry.to_numpy(), shapely.box(*lonlat_bounds(t, BUFFER / EXTENT))
            )
        ]
    columns = [c for c in frame.columns if c != frame.geometry.name]
    return encode(name, frame, t, columns, coverage=False)


def _binned(store, layer: str, t: morecantile.Tile, under, where, past=None) -> bytes:
    """A tile over the cap as hexagon bins (the same on both stores).

    A point layer's bins count its points; a grid level's count the grids whose
    centroid falls in them and sum their ``households``. Everything of a
    hexagon reaching into the tile is counted (the box is grown by two radii),
    so a hexagon crossing the tile edge has its whole count.
    """
    size = hex_size(t.z)
    b = TMS.xy_bounds(t)
    box = tuple(lonlat_bounds(t, BUFFER / EXTENT + 2 * size / (b.right - b.left)))
    if past is not None:  # grids as of a date (see :func:`tile`)
        grids = past.loc[shapely.intersects(past.geometry.to_numpy(), shapely.box(*box))]
        xy = shapely.get_coordinates(shapely.centroid(grids.geometry.to_numpy()))
        lon, lat, households = xy[:, 0], xy[:, 1], grids["households"].to_numpy()
    elif hasattr(store, "point_coordinates"):
        lon, lat, households = store.point_coordinates(layer, box, under=under, where=where)
    elif layer in LEVELS:
        grids = store.grids(level=layer, bbox=box, under=under)
        xy = shapely.get_coordinates(shapely.centroid(grids.geometry.to_numpy()))
        lon, lat, households = xy[:, 0], xy[:, 1], grids["households"].to_numpy()
    else:
        xy = shapely.get_coordinates(
            store.features(layer, bbox=box, under=under, where=where).geometry.to_numpy()
        )
        lon, lat, households = xy[:, 0], xy[:, 1], None
    x, y = MERCATOR_FROM_WGS84.transform(lon, lat)
    sums = {} if households is None else {"households": np.asarray(households, dtype=float)}
    i, j, values = hex_bins(np.asarray(x), np.asarray(y), size, **sums)
    if hasattr(store, "hex_mvt") and past is None:  # PostGIS encodes the same hexagons in C
        return store.hex_mvt(layer, t.z, t.x, t.y, i, j, values, size, extent=EXTENT, buffer=BUFFER)
    bins = gpd.GeoDataFrame(values, geometry=hexagons(i, j, size))
    return encode(layer, bins, t, list(values), coverage=False, mercator=True)


def layer_attributes(schema=None) -> list[str]:
    """The attributes a tile carries: a layer's (its schema) or a grid level's (None)."""
    if schema is None:
        return list(GRID_ATTRIBUTES)
    return [
        "id",
        *[c for c in schema.kinds() if c != "id"],
        "community_code",
        "area_code",
        "courtyard_code",
        "building_code",
        "unit_code",
    ]


def _schema(store, layer: str):
    schemas = store.layers()
    if layer not in schemas:
        known = ", ".join([*LEVELS, *sorted(schemas)])
        raise NotFoundError(say("problem_no_tile_layer", layer=repr(layer), known=known))
    return schemas[layer]


def tile(
    store,
    layer: str,
    z: int,
    x: int,
    y: int,
    *,
    under: list[str] | None = None,
    where: dict | None = None,
    cap: int = FEATURE_CAP,
    as_of=None,
) -> bytes:
    """The MVT of one layer (a grid level or a feature layer) at ``z/x/y``.

    ``under`` keeps the grids (or features) in those subtrees (a grid
    worker's own); ``where`` filters a layer's features (``{"category": [...],
    "reported_at": (since, until)}``). Above ``cap`` features, a point layer's
    or a grid level's tile holds hexagon bins instead (see :func:`_binned`):
    a city's 384,000 units are 8 MB in one z10 tile, bins a few kilobytes.

    ``as_of`` (a :class:`~gis_grid.planning.history.AsOf` and its moment) draws
    a grid level's boundaries as they were then.
    """
    t = check_tile(z, x, y)
    schema = None if layer in LEVELS else _schema(store, layer)
    attributes = layer_attributes(schema)
    capped = schema is None or schema.geometry == "Point"  # grid levels and point layers
    if layer in LEVELS and where:
        raise InputError(say("problem_grid_tile_filters"))
    if as_of is not None:
        if layer not in LEVELS:
            raise InputError(say("problem_at_grids_only", layer=layer))
        walker, moment = as_of
        box = tuple(lonlat_bounds(t, BUFFER / EXTENT))
        frame = walker.grids(moment, level=layer, bbox=box, under=under)
        if len(frame) > cap:
            grow = 2 * hex_size(t.z) / (TMS.xy_bounds(t).right - TMS.xy_bounds(t).left)
            wide = walker.grids(
                moment,
                level=layer,
                bbox=tuple(lonlat_bounds(t, BUFFER / EXTENT + grow)),
                under=under,
            )
            return _binned(store, layer, t, under, None, past=wide)
        attributes = [a for a in attributes if a in frame.columns]
        return encode(layer, frame, t, attributes, coverage=True)
    if hasattr(store, "mvt"):
        data = store.mvt(
            layer,
            attributes,
            t.z,
            t.x,
            t.y,
            extent=EXTENT,
            buffer=BUFFER,
            under=under,
            where=where,
            cap=cap if capped else None,
        )
        if data is not None:
            return data
        return _binned(store, layer, t, under, where)
    box = tuple(lonlat_bounds(t, BUFFER / EXTENT))
    if layer in LEVELS:
        frame = store.grids(level=layer, bbox=box, under=under)
    else:
        frame = store.features(layer, bbox=box, under=under, where=where)
    if capped and len(frame) > cap:
        return _binned(store, layer, t, under, where)
    attributes = [a for a in attributes if a in frame.columns]
    return encode(layer, frame, t, attributes, coverage=layer in LEVELS)

"""``/tiles/{layer}/{z}/{x}/{y}.pbf``: vector tiles of grid levels and layers."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.auth import UserDep
from api.deps import SettingsDep, StoreDep
from api.routers.grids import DatetimeQuery, layer_where
from tiles.mvt import LEVELS, tile

router = APIRouter(tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.pbf",
    summary="A vector tile (MVT) of a grid level or a layer",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 304: {"description": "Not modified"}},
)
def get_tile(
    layer: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: UserDep,
    datetime: DatetimeQuery = None,
    category: Annotated[list[str] | None, Query(description="Keep these categories.")] = None,
    status: Annotated[list[str] | None, Query(description="Keep these statuses.")] = None,
) -> Response:
    """Features clipped to the tile with a 64/4096 buffer; ETag for revalidation.

    A point layer or grid level with more features in the tile than the cap
    (``GIS_GRID_TILE_FEATURE_CAP``) comes as hexagon bins with a ``count``
    (grids: and their summed ``households``).
    Layers filter by time window and choice columns as their items do. A grid
    worker's tiles hold their own grids (and the features in them) only.
    Tiles are cached in the process: a grid level's until the next grid, staff
    or assignment write; a layer's until the next write, though a tile made
    within ``GIS_GRID_TILE_STALE_SECONDS`` (default 5) is served on through a
    burst of writes (a case reported every few milliseconds must not re-encode
    every incident tile each time).
    """
    where = None
    schema = None if layer in LEVELS else store.layers().get(layer)
    if schema is not None:
        where = layer_where(schema, datetime, request.query_params)
    scope = user.scope()
    cache = request.app.state.tile_cache
    key = data = None
    if cache.items:  # the store's generation is read only for a cache to key on
        if layer in LEVELS:  # grid tiles change with grid writes only
            key = (store.grid_generation(), True, layer, z, x, y, repr(where), repr(scope))
            key += (settings.tile_feature_cap,)
            data = cache.get(key)
        else:  # a layer's tiles: fresh after each write, or at most tile_stale_seconds old
            key = (False, layer, z, x, y, repr(where), repr(scope), settings.tile_feature_cap)
            generation = store.generation()
            hit = cache.get(key)
            if hit is not None and (
                hit[0] == generation or time.monotonic() - hit[1] < settings.tile_stale_seconds
            ):
                data = hit[2]
    if data is None:
        data = tile(store, layer, z, x, y, under=scope, where=where, cap=settings.tile_feature_cap)
        if key is not None:
            if layer in LEVELS:
                cache.put(key, data)
            else:
                cache.put(key, (generation, time.monotonic(), data))
    etag = '"' + hashlib.sha1(data).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=60, must-revalidate"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=MVT, headers=headers)

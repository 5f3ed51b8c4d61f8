"""``/tiles/{layer}/{z}/{x}/{y}.pbf``: vector tiles of grid levels and layers."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request, Response

from api.auth import UserDep
from api.deps import StoreDep
from tiles.mvt import tile

router = APIRouter(tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.pbf",
    summary="A vector tile (MVT) of a grid level or a layer",
    response_class=Response,
    responses={200: {"content": {MVT: {}}}, 304: {"description": "Not modified"}},
)
def get_tile(
    layer: str, z: int, x: int, y: int, request: Request, store: StoreDep, user: UserDep
) -> Response:
    """Features clipped to the tile with a 64/4096 buffer; ETag for revalidation.

    Tiles are cached in the process until the store's next write.
    """
    user.check_role(user.role.reads_everything, "read tiles of every grid")
    cache = request.app.state.tile_cache
    key = (store.generation(), layer, z, x, y)
    data = cache.get(key)
    if data is None:
        data = tile(store, layer, z, x, y)
        cache.put(key, data)
    etag = '"' + hashlib.sha1(data).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=60, must-revalidate"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=MVT, headers=headers)

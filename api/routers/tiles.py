"""``/tiles/{layer}/{z}/{x}/{y}.pbf``: vector tiles of grid levels and layers."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.auth import UserDep
from api.deps import SettingsDep, StoreDep
from api.routers.grids import AtQuery, DatetimeQuery, as_of, layer_where
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
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
    at: AtQuery = None,
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
    A grid level's tile takes ``at``: the boundaries in force then.
    """
    where = None
    schema = None if layer in LEVELS else store.layers().get(layer)
    if schema is not None:
        where = layer_where(schema, datetime, request.query_params)
    if at:
        from gis_grid.planning.history import Moment

        if layer not in LEVELS:
            raise InputError(say("problem_at_grids_only", layer=layer))
        moment = Moment.parse(at)
        data = cached_tile(
            request.app.state.tile_cache,
            store,
            settings,
            layer,
            z,
            x,
            y,
            where,
            user.scope(),
            as_of=(as_of(request, store), moment),
        )
    else:
        data = cached_tile(
            request.app.state.tile_cache, store, settings, layer, z, x, y, where, user.scope()
        )
    etag = '"' + hashlib.sha1(data).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=60, must-revalidate"}
    if layer in LEVELS and request.query_params.get("v") == str(store.grid_generation()):
        # named by the grids' generation: this URL shows these grids until they change
        headers["Cache-Control"] = "private, max-age=86400, immutable"
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=MVT, headers=headers)


def cached_tile(cache, store, settings, layer, z, x, y, where, scope, as_of=None) -> bytes:
    """A tile from the process's cache, or made and kept there.

    A grid level's tile is keyed on the grid generation (grid writes only); a
    layer's on the store's generation, though one made within
    ``tile_stale_seconds`` is served on through a burst of writes.
    """
    key = None
    if cache.items:  # the store's generation is read only for a cache to key on
        if layer in LEVELS:  # grid tiles change with grid writes only
            key = (store.grid_generation(), True, layer, z, x, y, repr(where), repr(scope))
            key += (as_of[1].utc if as_of else None,)
            key += (settings.tile_feature_cap,)
            data = cache.get(key)
            if data is not None:
                return data
        else:  # a layer's tiles: fresh after each write, or at most tile_stale_seconds old
            key = (False, layer, z, x, y, repr(where), repr(scope), settings.tile_feature_cap)
            generation = store.generation()
            hit = cache.get(key)
            if hit is not None and (
                hit[0] == generation or time.monotonic() - hit[1] < settings.tile_stale_seconds
            ):
                return hit[2]
    data = tile(
        store, layer, z, x, y, under=scope, where=where, cap=settings.tile_feature_cap, as_of=as_of
    )
    if key is not None:
        cache.put(key, data if layer in LEVELS else (generation, time.monotonic(), data))
    return data


#: The zooms a first page opens at, most likely first: the pages fit the communities
#: (a desk ~15–16, a phone ~14, a grid worker's own grids ~17).
WARM_ZOOMS = (15, 16, 17, 14, 13, 12)


def warm(cache, url: str, settings, wait=None, limit: int = 600) -> int:
    """Make the tiles a first page load asks for, before anyone asks; how many were made.

    Run in a thread of its own at start-up with its own store connection:
    every grid level and every layer as the overview and worker pages draw
    them (open incidents by status), over the communities' extent, zoom by
    zoom in :data:`WARM_ZOOMS` order, at most ``limit`` tiles; ``wait`` is
    called before each (the server's :meth:`~api.activity.Watch.wait_quiet`:
    a page being answered goes first). A tile a grid worker sees (their grids
    only) is not warmed: it is theirs alone.
    """
    import morecantile
    from starlette.datastructures import QueryParams

    from gis_grid.cases.loop import OPEN
    from gis_grid.domain.model import CASE_LAYER, Level
    from gis_grid.store import open_store

    if not cache.items:
        return 0
    store = open_store(url)
    try:
        communities = store.grids(level=Level.COMMUNITY, geometry=True)
        if not len(communities):
            return 0
        minx, miny, maxx, maxy = communities.total_bounds
        schemas = store.layers()
        layers = {name: None for name in schemas}
        if CASE_LAYER in layers:  # as the overview and the worker ask: open cases only
            statuses = [("status", s) for s in (*sorted(OPEN), "suspended")]
            layers[CASE_LAYER] = layer_where(schemas[CASE_LAYER], None, QueryParams(statuses))
        tms = morecantile.tms.get("WebMercatorQuad")
        made = 0
        for z in WARM_ZOOMS:
            for t in tms.tiles(minx, miny, maxx, maxy, [z]):
                for layer, where in [*((lv, None) for lv in LEVELS), *layers.items()]:
                    if made >= limit:
                        return made
                    if wait is not None:
                        wait()
                    cached_tile(cache, store, settings, layer, t.z, t.x, t.y, where, None)
                    made += 1
        return made
    finally:
        store.close()

"""The application factory: wires settings, the store's lifespan, errors and routers.

Run it with ``gis-grid serve STORE`` (uvicorn, factory mode) or::

    GIS_GRID_DATABASE_URL=out/demo.gpkg uvicorn --factory api.main:create_app
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware

from api import errors
from api.activity import Activity, Watch
from api.guard import RequestGuard
from api.routers import (
    analysis,
    cases,
    edits,
    grids,
    open311,
    pages,
    planner,
    planning,
    review,
    tiles,
)
from api.settings import Settings
from gis_grid import __version__
from tiles.cache import TileCache


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the store opens when it starts and closes when it stops."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from gis_grid.store import open_store

        store = open_store(settings.database_url, tile_url=settings.tile_database_url)
        if hasattr(store, "wait_at_most"):  # a file another process may be writing
            store.wait_at_most(settings.write_wait_seconds)
            store.write_ahead()
        app.state.store = store
        app.state.store_lock = None if "://" in store.url else asyncio.Lock()
        # the hot-spot statistics (esda, libpysal) load in a second: before the first
        # request rather than inside a supervisor's
        from gis_grid.analysis.hotspots import load_statistics

        load_statistics()
        # the ~300,000 objects of the libraries just loaded live as long as the server: out of
        # the collector's sight, a full collection no longer walks them (it took ~140 ms, every
        # few requests, in the middle of a planner's preview)
        gc.collect()
        gc.freeze()
        # the first pages' tiles are made in the background, in the server's quiet moments
        stop = threading.Event()
        warmer = threading.Thread(target=warm_up, args=(app, store.url, stop), daemon=True)
        if settings.warm_tiles:
            warmer.start()
        sweeper = (
            asyncio.create_task(sweep_forever(app, settings.sweep_seconds))
            if settings.sweep_seconds
            else None
        )
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
            stop.set()  # the warm-up ends at its next tile and closes its connection
            if warmer.is_alive():  # waited for off the event loop: requests still finish
                await asyncio.to_thread(warmer.join, 10)
            store.close()

    app = FastAPI(
        title="gis-grid",
        version=__version__,
        description=(
            "Grid management (网格化管理): nested community grids with their staff, "
            "point lookup, what a staff member covers, the revision log and "
            "rebalancing proposals, analyses, vector tiles and the map pages "
            "(`/map/overview`, `/map/supervisor`, `/map/worker`, `/map/planner`). "
            "Grid levels and layers are OGC API – Features collections "
            "(`/collections/area/items`), so QGIS can add them. Every route but the "
            "pages wants `Authorization: Bearer <token>` (`gis-grid user add`)."
        ),
        lifespan=lifespan,
        docs_url=None,  # served by the pages router from a package: no CDN
        redoc_url=None,  # ReDoc has no registry package with its assets
    )
    app.state.settings = settings
    from gis_grid.cases.rules import Rules

    app.state.case_rules = Rules.load(settings.case_rules)
    app.state.tile_cache = TileCache(settings.tile_cache_items)
    app.state.analysis_cache = TileCache(16)  # analysis results cut into tiles
    app.state.planner_panels = {}  # the planner page's balance panels (see routers.planner)
    app.state.as_of_cache = {}  # communities walked back to a date (lookup, grids, tiles ?at=)
    errors.install(app)
    open311.install(app)
    app.include_router(grids.router, responses=errors.PROBLEM_RESPONSES)
    app.include_router(planning.router, responses=errors.PROBLEM_RESPONSES)
    app.include_router(edits.router, responses=errors.PROBLEM_RESPONSES)
    app.include_router(planner.router, responses=errors.PROBLEM_RESPONSES)
    app.include_router(tiles.router, responses=errors.PROBLEM_RESPONSES)
    app.include_router(analysis.router, responses=errors.PROBLEM_RESPONSES)
    app.include_router(cases.router, responses=errors.PROBLEM_RESPONSES)
    app.include_router(review.router, responses=errors.PROBLEM_RESPONSES)
    app.include_router(open311.router)
    app.include_router(pages.router)
    app.add_middleware(GZipMiddleware, minimum_size=1000)

    app.add_middleware(RequestGuard, limit=settings.max_body_bytes)
    app.state.activity = Watch()
    app.add_middleware(Activity, watch=app.state.activity)

    return app


#: The tile warm-up makes its next tile only after this long without a request.
QUIET_SECONDS = 2.0


class _Stopping(Exception):
    """The server is stopping: the warm-up ends."""


def warm_up(app: FastAPI, url: str, stop: threading.Event) -> None:
    """Make the first page's tiles while nobody waits (a thread of its own; failures logged)."""
    import logging

    from api.routers.tiles import warm

    def wait() -> None:
        # two quiet seconds: between the requests of a page loading now there are none,
        # so a first visitor never waits behind a tile made for a later one
        if not app.state.activity.wait_quiet(QUIET_SECONDS, stop=stop):
            raise _Stopping

    log = logging.getLogger("gis_grid")
    start = time.perf_counter()
    try:
        made = warm(app.state.tile_cache, url, app.state.settings, wait)
    except _Stopping:
        return
    except Exception:  # a store that cannot be read now: tiles are made when asked
        log.exception("warming the tiles failed; they are made when first asked for")
        return
    log.info("%d tiles made ahead in %.1f s", made, time.perf_counter() - start)


async def sweep_forever(app: FastAPI, every: float) -> None:
    """Escalate late cases every ``every`` seconds while the server runs (``case sweep``)."""
    import logging

    from starlette.concurrency import run_in_threadpool

    from gis_grid.cases.service import sweep

    log = logging.getLogger("gis_grid")
    while True:
        await asyncio.sleep(every)
        try:
            lock = app.state.store_lock
            if lock is None:
                result = await run_in_threadpool(
                    lambda: sweep(app.state.store, rules=app.state.case_rules)
                )
            else:
                async with lock:
                    result = await run_in_threadpool(
                        lambda: sweep(app.state.store, rules=app.state.case_rules)
                    )
            if result["escalated"]:
                log.info("sweep: %d late cases escalated one grid up", result["escalated"])
        except asyncio.CancelledError:
            raise
        except Exception:  # a busy file or a lost connection: try again next time
            log.exception("the case sweep failed; it runs again in %s s", every)

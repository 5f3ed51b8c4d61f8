"""The web application: ``serve`` and self-contained ``map`` exports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from gis_grid.cli.common import (
    StoreArg,
    app,
    err,
    fail_cleanly,
    open_arg,
    shown,
    tr,
)
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say

# -- the web application ------------------------------------------------------------


@app.command()
@fail_cleanly
def serve(
    store: StoreArg,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
    tile_store: Annotated[
        str | None,
        typer.Option(
            help="A streaming read replica of a PostgreSQL store to make map tiles on "
            "(postgresql://…)."
        ),
    ] = None,
) -> None:
    """Serve the map pages and the web API over a store (OpenAPI at /docs; bearer tokens).

    Pages: /map/overview, /map/supervisor, /map/worker, /map/planner (a browser
    opening / lands on the overview).
    """
    import uvicorn

    from gis_grid.store import resolve_url

    url = resolve_url(store)
    if "://" not in url and not Path(url).exists():
        raise InputError(say("problem_no_store_at", path=shown(url)))
    if tile_store is not None and "://" not in url:
        raise InputError(say("problem_tile_replica_kind", store=shown(url)))
    err.print(tr("serving", store=shown(url), host=host, port=port))
    # by import string: the core never imports the web app. The factory reads the store
    # from the environment while it builds the app, and the URL (which may hold a
    # password) leaves the environment again before anything is served
    given = {"GIS_GRID_DATABASE_URL": url, "GIS_GRID_TILE_DATABASE_URL": tile_store}
    had = {name: os.environ.get(name) for name in given}
    for name, value in given.items():
        if value is not None:
            os.environ[name] = value
    config = uvicorn.Config("api.main:create_app", factory=True, host=host, port=port)
    try:
        config.load()
    finally:
        for name, value in had.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    uvicorn.Server(config).run()


@app.command("map")
@fail_cleanly
def map_export(
    store: StoreArg,
    code: Annotated[str, typer.Argument(help="The grid to map.")],
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "grid.html"
    ),
    layers: Annotated[
        bool, typer.Option(help="Draw streets, cameras, lamps and open incidents too.")
    ] = True,
) -> None:
    """Write a map of a grid as one self-contained HTML file (opens offline)."""
    from gis_grid.analysis.maps import grid_map_html

    with open_arg(store) as st:
        html = grid_map_html(st, code, layers=layers)
    out_file.write_text(html, encoding="utf-8")
    err.print(tr("wrote_map", path=out_file, mb=f"{len(html.encode()) / 1e6:.1f}"))

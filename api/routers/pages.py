"""The map pages and the files they load, all served by the app (no CDN, no internet).

``/map/overview`` (leadership), ``/map/supervisor``, ``/map/worker`` and
``/map/planner`` are one HTML shell each around their ES module
(``/static/{page}.js``, which imports the shared ``/static/map.js``);
maplibre-gl.js and its CSS come from the ``maplibre`` package installed from
PyPI (``/assets/…``). The base map is drawn from the store's own tiles
(streets, buildings, grids). A browser opening ``/`` gets the overview.
"""

from __future__ import annotations

import os
from functools import cache
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from gis_grid.domain.errors import NotFoundError
from gis_grid.domain.messages import say

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
#: Page → its title (zh, en).
PAGES = {
    "overview": ("网格总览", "Overview"),
    "review": ("周报", "Weekly review"),
    "supervisor": ("事件热力与热点", "Incidents and hot spots"),
    "worker": ("我的网格", "My grids"),
    "planner": ("网格规划", "Grid planning"),
}
#: Files of the maplibre package the pages load.
ASSETS = {"maplibre-gl.js": "text/javascript", "maplibre-gl.css": "text/css"}


@cache
def _maplibre_dir() -> Path:
    # found, not imported: importing the package logs warnings about frameworks we do not use
    spec = find_spec("maplibre")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(say("problem_no_maplibre"))
    return Path(next(iter(spec.submodule_search_locations))) / "srcjs"


def page_html(page: str) -> str:
    """The HTML shell of a map page."""
    if page not in PAGES:
        raise NotFoundError(say("problem_no_page", page=repr(page), pages=", ".join(PAGES)))
    zh, en = PAGES[page]
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gis-grid · {zh} {en}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/maplibre-gl.css">
<link rel="stylesheet" href="/static/app.css">
<link rel="modulepreload" href="/static/map.js">
<link rel="preload" href="/static/messages.json" as="fetch" crossorigin="anonymous">
</head>
<body data-page="{page}">
<header id="bar"></header>
<main>
<aside id="panel"></aside>
<div id="map"></div>
</main>
<script src="/assets/maplibre-gl.js"></script>
<script type="module" src="/static/{page}.js"></script>
</body>
</html>
"""


#: Files of the swagger-ui-bundle package the API description page loads.
SWAGGER = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
}


@cache
def _swagger_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


@router.get("/docs", response_class=HTMLResponse)
def docs() -> HTMLResponse:
    """The API description (Swagger UI) from the installed ``swagger-ui-bundle``: no CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html

    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="gis-grid API",
        swagger_js_url="/assets/swagger/swagger-ui-bundle.js",
        swagger_css_url="/assets/swagger/swagger-ui.css",
        swagger_favicon_url="data:,",
    )


def _file(request: Request, path: Path, media_type: str, cache_control: str) -> Response:
    """A file with its ETag; a browser that holds this version gets 304 and no body."""
    response = FileResponse(
        path,
        media_type=media_type,
        headers={"Cache-Control": cache_control},
        stat_result=os.stat(path),
    )
    etag = response.headers["etag"]
    asked = {
        tag.strip().removeprefix("W/")
        for tag in request.headers.get("if-none-match", "").split(",")
    }
    if etag in asked:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache_control})
    return response


@router.get("/assets/swagger/{name}")
def swagger_asset(name: str, request: Request) -> Response:
    """Swagger UI's script and style from the installed ``swagger-ui-bundle`` package."""
    if name not in SWAGGER:
        raise NotFoundError(say("problem_no_asset", name=repr(name)))
    return _file(request, _swagger_dir() / name, SWAGGER[name], "public, max-age=86400")


@router.get("/map/{page}", response_class=HTMLResponse)
def map_page(page: str) -> HTMLResponse:
    """One of the four map pages."""
    return HTMLResponse(page_html(page))


@router.get("/assets/{name}")
def asset(name: str, request: Request) -> Response:
    """maplibre-gl.js / .css from the installed ``maplibre`` package."""
    if name not in ASSETS:
        raise NotFoundError(say("problem_no_asset", name=repr(name)))
    return _file(request, _maplibre_dir() / name, ASSETS[name], "public, max-age=86400")


#: The words of the pages: the core's one catalogue of Chinese and English.
MESSAGES = Path(str(files("gis_grid.domain").joinpath("messages.json")))


@router.get("/static/{name}")
def static(name: str, request: Request) -> Response:
    """The pages' own scripts, style and words: asked again each load, 304 while unchanged."""
    path = MESSAGES if name == "messages.json" else STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise NotFoundError(say("problem_no_static", name=repr(name)))
    kinds = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
    return _file(request, path, kinds.get(path.suffix, "text/plain"), "no-cache")

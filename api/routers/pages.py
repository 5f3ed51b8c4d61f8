"""The map pages and the files they load, all served by the app (no CDN, no internet).

``/map/overview`` (leadership), ``/map/supervisor``, ``/map/worker`` and
``/map/planner`` are one HTML shell each around their ES module
(``/static/{page}.js``, which imports the shared ``/static/map.js``);
maplibre-gl.js and its CSS come from the ``maplibre`` package installed from
PyPI (``/assets/…``). The base map is drawn from the store's own tiles
(streets, buildings, grids). A browser opening ``/`` gets the overview.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from gis_grid.domain.errors import NotFoundError

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
#: Page → its title (zh, en).
PAGES = {
    "overview": ("网格总览", "Overview"),
    "supervisor": ("事件热力与热点", "Incidents and hot spots"),
    "worker": ("我的网格", "My grids"),
    "planner": ("网格规划", "Grid planning"),
}
#: Files of the maplibre package the pages load.
ASSETS = {"maplibre-gl.js": "text/javascript", "maplibre-gl.css": "text/css"}


@cache
def _maplibre_dir() -> Path:
    return Path(str(files("maplibre") / "srcjs"))


def page_html(page: str) -> str:
    """The HTML shell of a map page."""
    if page not in PAGES:
        raise NotFoundError(f"no page {page!r}; there are {', '.join(PAGES)}")
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


@router.get("/assets/swagger/{name}")
def swagger_asset(name: str) -> FileResponse:
    """Swagger UI's script and style from the installed ``swagger-ui-bundle`` package."""
    if name not in SWAGGER:
        raise NotFoundError(f"no asset {name!r}")
    return FileResponse(
        _swagger_dir() / name,
        media_type=SWAGGER[name],
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/map/{page}", response_class=HTMLResponse)
def map_page(page: str) -> HTMLResponse:
    """One of the four map pages."""
    return HTMLResponse(page_html(page))


@router.get("/assets/{name}")
def asset(name: str) -> FileResponse:
    """maplibre-gl.js / .css from the installed ``maplibre`` package."""
    if name not in ASSETS:
        raise NotFoundError(f"no asset {name!r}")
    return FileResponse(
        _maplibre_dir() / name,
        media_type=ASSETS[name],
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    """The pages' own script and style."""
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise NotFoundError(f"no file {name!r}")
    kind = {".js": "text/javascript", ".css": "text/css"}.get(path.suffix, "text/plain")
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "no-cache"})

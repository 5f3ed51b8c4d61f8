"""The analyses over HTTP: holes, overdue cases, hot spots, a grid's summary.

Coverage holes, overdue cases, staffing holes, hot spots, and what a map
pop-up shows about a grid.

Each answers with the same tables the CLI prints (``summary``, ``per_grid``)
and the findings as GeoJSON, every finding with its grid and the person
responsible. A grid worker gets their own grids only.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from api.auth import UserDep
from api.deps import StoreDep
from gis_grid.domain.errors import NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level
from gis_grid.layers.features import parse_when
from gis_grid.tables import geojson_text, records
from tiles.mvt import check_tile

router = APIRouter(tags=["analysis"])


class Holes(StrEnum):
    """What to look for holes in."""

    cctv = "cctv"
    lighting = "lighting"
    cleaning = "cleaning"
    incidents = "incidents"
    staff = "staff"
    unowned = "unowned"


def geojson(frame) -> dict:
    """A GeoDataFrame as a GeoJSON FeatureCollection (missing values as null)."""
    return json.loads(geojson_text(frame))


def holes_report(store, user, kind: Holes, level, under, since, until, category):
    """The gap report of ``kind`` as a user may see it (a grid worker: their grids)."""
    from gis_grid.analysis.gaps import staffing_holes, unowned_features
    from gis_grid.layers.plugins import get_layer

    scope = user.scope(under)
    if kind is Holes.unowned:
        user.check_role(user.role.reads_everything, "see features outside their grids")
        report = unowned_features(store)
    elif kind is Holes.staff:
        level = Level.parse(level) if level else None
        report = staffing_holes(store, level=level, under=scope)
    else:
        options = {"under": scope}
        if kind is not Holes.cleaning:
            options.update(since=parse_when(since), until=parse_when(until))
        if kind is Holes.incidents and category:
            options["category"] = category
        layer = get_layer(kind.value)
        if layer.name not in store.layers():
            raise NotFoundError(say("problem_store_no_layer", layer=kind.value))
        report = layer.holes(store, level=Level.parse(level or "area"), **options)
    return report


@router.get("/analysis/holes/{kind}", summary="Coverage holes, overdue cases, staffing holes")
def holes(
    kind: Holes,
    store: StoreDep,
    user: UserDep,
    level: Annotated[
        str | None, Query(description="Grids measured per (default area; staff: every level)")
    ] = None,
    under: Annotated[list[str] | None, Query(description="Only under these grids.")] = None,
    since: Annotated[str | None, Query(description="Incidents from (ISO)")] = None,
    until: Annotated[str | None, Query(description="Incidents until (ISO)")] = None,
    category: Annotated[
        list[str] | None, Query(description="incidents: only these categories (keys or labels)")
    ] = None,
) -> dict:
    """Ranked holes (GeoJSON) with grid and person, the per-grid table and a summary.

    ``cctv``: public space no camera sees; ``lighting``: dark street stretches;
    ``cleaning``: uncleaned space and overdue zones; ``incidents``: open cases
    past their step's time limit; ``staff``: grids nobody is assigned to;
    ``unowned``: features of any layer in no grid.
    """
    report = holes_report(store, user, kind, level, under, since, until, category)
    return {
        "summary": report.summary,
        "per_grid": records(report.per_grid),
        "holes": geojson(report.features),
    }


def hotspots_report(
    store, user, layer, since, until, category, by, resolution, permutations, seed, alpha
):
    """Gi* hot spots of an event layer, for roles that read everything."""
    from gis_grid.analysis.hotspots import find_hotspots
    from gis_grid.layers.plugins import events_layer

    user.check_role(user.role.reads_everything, "see hot spots outside their grids")
    plugin = events_layer(layer)
    if plugin.name not in store.layers():
        raise NotFoundError(say("problem_store_no_layer", layer=plugin.name))
    report = find_hotspots(
        store,
        plugin.name,
        time_field=plugin.time_field,
        category_field=plugin.category_field,
        since=parse_when(since),
        until=parse_when(until),
        category=plugin.categories(category),
        by=by,
        resolution=resolution,
        permutations=permutations,
        seed=seed,
        alpha=alpha,
    )
    return report


@router.get("/analysis/hotspots", summary="Hot and cold spots (Gi*, FDR) of an event layer")
def hotspots(
    store: StoreDep,
    user: UserDep,
    layer: Annotated[str | None, Query(description="Default: incidents")] = None,
    since: Annotated[str | None, Query(description="Window start (default: 7 days before)")] = None,
    until: Annotated[str | None, Query(description="Window end (default: the latest)")] = None,
    category: Annotated[list[str] | None, Query(description="Keys or labels")] = None,
    by: Annotated[str, Query(description="h3, or a grid level")] = "h3",
    resolution: Annotated[int, Query(ge=5, le=13)] = 11,
    permutations: Annotated[int, Query(ge=0, le=9999)] = 999,
    seed: int = 12345,
    alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
) -> dict:
    """Significant spots, each with its trend (new, persistent, fading), grid and person."""
    report = hotspots_report(
        store, user, layer, since, until, category, by, resolution, permutations, seed, alpha
    )
    return {"summary": report.summary, "spots": geojson(report.spots)}


@router.get("/grids/{code}/summary", summary="What a map pop-up shows about a grid")
def grid_summary(code: str, store: StoreDep, user: UserDep) -> dict:
    """Name, code, level, households, staff with phones, cases, cameras, lamps, coverage.

    Open and overdue cases, cameras and lamps in the grid, and (community,
    area, courtyard) the share of public space CCTV sees.
    """
    from gis_grid.grids.queries import staff_of
    from gis_grid.layers.plugins import get_layer

    user.check_sees(code)
    found = store.grids(codes=[code], geometry=False)
    if not len(found):
        raise NotFoundError(say("problem_no_grid", code=code))
    grid = records(found)[0]
    staff = staff_of(store, [code])
    out = {
        "code": code,
        "name": grid["name"],
        "level": grid["level"],
        "households": grid.get("households"),
        "residents": grid.get("residents"),
        "staff": records(staff.drop(columns="grid_code")),
    }
    layers = store.layers()
    if "incidents" in layers:
        report = get_layer("incidents").holes(store, level=grid["level"], under=[code])
        out["open_incidents"] = report.summary["open"]
        out["overdue_incidents"] = report.summary["overdue"]
    for name in ("cctv", "lighting"):
        if name in layers:
            out[name] = len(store.features(name, under=[code]))
    level = Level.parse(grid["level"])
    if "cctv" in layers and level <= Level.COURTYARD:
        table = get_layer("cctv").holes(store, level=level, under=[code]).per_grid
        row = table.loc[table["code"] == code]
        out["coverage_pct"] = float(row["coverage_pct"].iloc[0]) if len(row) else None
    return out


@router.get(
    "/grids/{code}/map.html",
    summary="A grid as one self-contained HTML map (folium)",
    response_class=HTMLResponse,
)
def grid_map(code: str, store: StoreDep, user: UserDep, layers: bool = True) -> HTMLResponse:
    """Its outline, its children with households and staff, its layers; opens offline.

    With ``layers``: streets, cameras, lamps and open incidents. leaflet.js is
    inlined and nothing external is referenced: save the file and open it anywhere.
    """
    from gis_grid.analysis.maps import grid_map_html

    user.check_sees(code)
    return HTMLResponse(
        grid_map_html(store, code, layers=layers),
        headers={"Content-Disposition": f'inline; filename="grid-{code}.html"'},
    )


@router.get(
    "/tiles/analysis/{kind}/{z}/{x}/{y}.pbf",
    summary="A vector tile of an analysis output (holes, overdue cases, hot spots)",
    response_class=Response,
    responses={200: {"content": {"application/vnd.mapbox-vector-tile": {}}}},
)
def analysis_tile(
    kind: str,
    z: int,
    x: int,
    y: int,
    request: Request,
    store: StoreDep,
    user: UserDep,
    level: Annotated[str | None, Query(description="As /analysis/holes")] = None,
    under: Annotated[list[str] | None, Query(description="Only under these grids.")] = None,
    since: Annotated[str | None, Query(description="Window start (ISO)")] = None,
    until: Annotated[str | None, Query(description="Window end (ISO)")] = None,
    category: Annotated[list[str] | None, Query(description="Keys or labels")] = None,
) -> Response:
    """The findings of an analysis with every attribute its GeoJSON route gives.

    ``kind``: a holes kind (``cctv`` … ``unowned``) or ``hotspots``. The
    analysis runs once per store generation and parameters; its tiles are cut
    from that result.
    """
    from tiles.mvt import features_tile

    check_tile(z, x, y)
    if kind != "hotspots" and kind not in Holes.__members__:
        known = ", ".join([*Holes.__members__, "hotspots"])
        raise NotFoundError(say("problem_no_analysis", kind=repr(kind), known=known))
    cache = request.app.state.analysis_cache
    params = (kind, level, repr(under), since, until, repr(category), repr(user.scope(under)))
    key = (store.generation(), *params)
    found = cache.get(key)
    if found is None:
        if kind == "hotspots":
            found = hotspots_report(
                store, user, None, since, until, category, "h3", 11, 999, 12345, 0.05
            ).spots
        else:
            found = holes_report(store, user, Holes(kind), level, under, since, until, category)
            found = found.features
        cache.put(key, found)
    return Response(
        features_tile(kind, found, z, x, y), media_type="application/vnd.mapbox-vector-tile"
    )

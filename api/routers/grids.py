"""Grids and layers as OGC API – Features collections; one grid; lookup; coverage."""

from __future__ import annotations

import json
from typing import Annotated

import geopandas as gpd
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.auth import UserDep
from api.deps import SettingsDep, StoreDep
from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import AGGREGATES, Level
from gis_grid.geo.crs import WGS84, lonlat_problem
from gis_grid.tables import records

router = APIRouter()
GEOJSON = "application/geo+json"

GRID_PROPERTIES = ["code", "parent_code", "level", "name", *AGGREGATES, "version", "updated_at"]
BboxQuery = Annotated[
    str | None,
    Query(
        description="minLon,minLat,maxLon,maxLat in EPSG:4326",
        examples=["123.55,42.44,123.57,42.46"],
    ),
]


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``"minx,miny,maxx,maxy"`` → a checked tuple; a clear error otherwise."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise InputError(say("problem_bbox_form", text=repr(text)))
    if not all(map(lambda v: v == v and abs(v) != float("inf"), box)):
        raise InputError(say("problem_bbox_finite"))
    if box[0] > box[2] or box[1] > box[3]:
        raise InputError(say("problem_bbox_order", text=repr(text)))
    problem = lonlat_problem(box)
    if problem:
        raise InputError(say("problem_bbox_coords", text=repr(text), problem=problem))
    return box


AtQuery = Annotated[
    str | None,
    Query(
        description="The boundaries and staff in force then: a date (its end) or a local "
        "date and time; default now.",
        examples=["2026-10-01"],
    ),
]
DatetimeQuery = Annotated[
    str | None,
    Query(
        description="Layers with a time: an instant or an interval a/b ('..' leaves a side open)",
        examples=["2026-09-01/.."],
    ),
]


def layer_where(schema, datetime: str | None, params) -> dict | None:
    """A layer's filters from a request: the time window and any choice column.

    A choice column (``category``, ``status`` …) given once or more as a query
    parameter keeps the features with one of those values.
    """
    where: dict = {}
    if datetime is not None:
        when = next((c for c, k in schema.kinds().items() if k == "time"), None)
        if when is None:
            raise InputError(say("problem_layer_no_time", layer=schema.name))
        low, _, high = datetime.partition("/")
        low = None if low in ("", "..") else low
        high = (None if high in ("", "..") else high) if "/" in datetime else low
        where[when] = (low, high)
    for column, kind in schema.kinds().items():
        if kind == "choice" and column in params:
            where[column] = [v for v in params.getlist(column) if v]
    return where or None


def _collections(store) -> list[dict]:
    out = [
        {
            "id": level.key,
            "title": f"{level.zh} {level.key}s",
            "description": f"Grids of level {level.key} ({level.zh})",
            "itemType": "feature",
            "kind": "grids",
        }
        for level in Level
    ]
    for name, schema in sorted(store.layers().items()):
        out.append(
            {
                "id": name,
                "title": f"{schema.zh} {name}",
                "description": schema.description,
                "itemType": "feature",
                "kind": "layer",
            }
        )
    return out


def _links(request: Request, cid: str) -> list[dict]:
    base = str(request.base_url).rstrip("/")
    return [
        {"href": f"{base}/collections/{cid}", "rel": "self", "type": "application/json"},
        {
            "href": f"{base}/collections/{cid}/items",
            "rel": "items",
            "type": "application/geo+json",
        },
    ]


def feature_collection(frame: gpd.GeoDataFrame, matched: int, links: list[dict]) -> dict:
    """A GeoJSON FeatureCollection with the OGC paging members."""
    doc = json.loads(frame.to_json(na="null", drop_id=True, ensure_ascii=False))
    doc["numberMatched"] = int(matched)
    doc["numberReturned"] = len(frame)
    doc["links"] = links
    return doc


@router.get("/", summary="Landing page")
def landing(request: Request):
    """Links to the API description, the conformance classes and the collections.

    A browser (``Accept: text/html``) gets the overview map instead.
    """
    if "text/html" in request.headers.get("accept", ""):
        from fastapi.responses import HTMLResponse

        from api.routers.pages import page_html

        return HTMLResponse(page_html("overview"))
    base = str(request.base_url).rstrip("/")
    return {
        "title": "gis-grid",
        "description": "Nested community grids with their staff (网格化管理)",
        "links": [
            {"href": f"{base}/", "rel": "self", "type": "application/json"},
            {"href": f"{base}/openapi.json", "rel": "service-desc", "type": "application/json"},
            {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
        ],
    }


@router.get("/conformance", summary="OGC API conformance classes")
def conformance() -> dict:
    """The OGC API – Features parts this API follows."""
    return {
        "conformsTo": [
            "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
            "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
        ]
    }


@router.get("/collections", summary="Grid levels and layers")
def collections(request: Request, store: StoreDep, user: UserDep) -> dict:
    """Every grid level and every feature layer of the store, as collections.

    ``gridGeneration`` changes with every grid write: a page asks for grid
    tiles with it (``?v=``), so a browser keeps them until the grids change.
    """
    cols = [{**c, "links": _links(request, c["id"])} for c in _collections(store)]
    return {"collections": cols, "links": [], "gridGeneration": store.grid_generation()}


@router.get("/collections/{cid}", summary="One collection")
def collection(cid: str, request: Request, store: StoreDep, user: UserDep) -> dict:
    """A grid level or a layer, by id (``area``, ``incidents`` …), with its extent.

    The extent of every grid level is the communities' (they tile them); a
    grid worker's is their own grids'.
    """
    found = [c for c in _collections(store) if c["id"] == cid]
    if not found:
        known = ", ".join(c["id"] for c in _collections(store))
        raise NotFoundError(say("problem_no_collection", name=repr(cid), known=known))
    out = {**found[0], "links": _links(request, cid)}
    if found[0]["kind"] == "grids":
        scope = user.scope()
        grids = store.grids(level="community") if scope is None else store.grids(codes=scope)
        if len(grids):
            out["extent"] = {"spatial": {"bbox": [[float(v) for v in grids.total_bounds]]}}
    return out


@router.get("/collections/{cid}/items", summary="Features of a collection (GeoJSON)")
def items(
    cid: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: UserDep,
    bbox: BboxQuery = None,
    limit: Annotated[int | None, Query(ge=1, description="Features per page.")] = None,
    offset: Annotated[int, Query(ge=0, description="Features to skip.")] = 0,
    parent: Annotated[str | None, Query(description="Grids only: children of this grid.")] = None,
    under: Annotated[
        str | None, Query(description="Only features in (or grids below) this grid.")
    ] = None,
    datetime: DatetimeQuery = None,
    category: Annotated[
        list[str] | None, Query(description="Layers with a category: keep these categories.")
    ] = None,
    status: Annotated[
        list[str] | None, Query(description="Layers with a status: keep these statuses.")
    ] = None,
) -> JSONResponse:
    """Features of a grid level or a layer, filtered and paged (``next`` link).

    Any choice column of a layer (``category``, ``status`` …) filters when given.
    """
    limit = limit or settings.page_limit
    if limit > settings.max_page_limit:
        raise InputError(say("problem_page_limit", limit=limit, most=settings.max_page_limit))
    box = parse_bbox(bbox)
    ids = {c["id"]: c for c in _collections(store)}
    if cid not in ids:
        raise NotFoundError(say("problem_no_collection", name=repr(cid), known=", ".join(ids)))
    scope = user.scope([under] if under else None)
    if ids[cid]["kind"] == "grids":
        frame = store.grids(level=cid, bbox=box, under=scope)
        if parent is not None:
            frame = frame.loc[frame["parent_code"] == parent]
        frame = frame[[*GRID_PROPERTIES, "geometry"]]
    else:
        where = layer_where(store.layers()[cid], datetime, request.query_params)
        frame = store.features(cid, bbox=box, under=scope, where=where)
    matched = len(frame)
    page = frame.iloc[offset : offset + limit]
    page = gpd.GeoDataFrame(page, geometry="geometry", crs=WGS84)
    base = str(request.url.remove_query_params(["offset"]))
    links = [{"href": str(request.url), "rel": "self", "type": "application/geo+json"}]
    if offset + limit < matched:
        sep = "&" if "?" in base else "?"
        links.append(
            {
                "href": f"{base}{sep}offset={offset + limit}",
                "rel": "next",
                "type": "application/geo+json",
            }
        )
    return JSONResponse(feature_collection(page, matched, links), media_type=GEOJSON)


def as_of(request: Request, store):
    """The app's walker of boundaries back to a date (its walked-back communities kept)."""
    from gis_grid.planning.history import AsOf

    cache = request.app.state.as_of_cache
    generation = store.grid_generation()
    if cache.get("_generation") != generation:  # a boundary write: walk again
        cache.clear()
        cache["_generation"] = generation
    return AsOf(store, cache.setdefault("states", {}))


@router.get("/grids/{code}", summary="One grid with its children, staff and history")
def grid(code: str, request: Request, store: StoreDep, user: UserDep, at: AtQuery = None) -> dict:
    """A grid (GeoJSON feature), its children, its staff in force and its earlier versions.

    With ``at``, the grid as it was then (its outline, children and staff of that day).
    """
    from gis_grid.grids.queries import staff_of
    from gis_grid.planning.history import Moment

    user.check_sees(code)
    moment = Moment.parse(at) if at else None
    walker = as_of(request, store) if moment else None
    found = walker.grids(moment, codes=[code]) if moment else store.grids(codes=[code])
    if not len(found):
        raise NotFoundError(
            say("problem_no_grid_then", code=code, at=at)
            if moment
            else say("problem_no_grid", code=code)
        )
    feature = json.loads(found[[*GRID_PROPERTIES, "geometry"]].to_json(drop_id=True))["features"][0]
    children = (
        walker.grids(moment, under=[code], geometry=False)
        if moment
        else store.grids(under=[code], geometry=False)
    )
    children = children.loc[children["parent_code"] == code, ["code", "name", *AGGREGATES]]
    staff = walker.staff(moment, [code]) if moment else staff_of(store, [code])
    history = store.history(code)
    return {
        "grid": feature,
        "at": moment.utc if moment else None,
        "children": children.to_dict("records"),
        "staff": staff.drop(columns="grid_code").to_dict("records"),
        "history": records(history.drop(columns="geometry")),
    }


@router.get("/lookup", summary="The grids at a point, with their staff")
def lookup(
    request: Request,
    store: StoreDep,
    user: UserDep,
    lon: Annotated[float, Query(description="Longitude", examples=[123.5632])],
    lat: Annotated[float, Query(description="Latitude", examples=[42.4501])],
    crs: Annotated[
        str | None, Query(description="The point's CRS when not EPSG:4326 (gcj02, bd09 …)")
    ] = None,
    at: AtQuery = None,
) -> JSONResponse:
    """Community down to unit for one point, each grid with its staff.

    With ``at``, the grids and staff in force then (boundaries are versioned).
    """
    from gis_grid.grids.queries import chain, point_lonlat
    from gis_grid.planning.history import Moment

    lon, lat = point_lonlat(lon, lat, crs)
    if at:
        moment = Moment.parse(at)
        grids = as_of(request, store).chain(moment, lon, lat)
    else:
        grids = chain(store, lon, lat)
    if grids:
        user.check_sees(grids[-1]["code"])
    body = {"lon": lon, "lat": lat, "grids": grids}
    if at:
        body["at"] = moment.utc
    # plain JSON already: skip FastAPI's encoder walk (this is the hottest route)
    return JSONResponse(body)


@router.get("/me", summary="Who the token belongs to")
def me(user: UserDep) -> dict:
    """The user's id, name, role, staff id and (grid workers) the grids they see."""
    return {
        "user_id": user.user_id,
        "name": user.name,
        "role": user.role.value,
        "staff_id": user.staff_id,
        "grids": user.grids if not user.role.reads_everything else None,
        "edits_boundaries": user.role.edits_boundaries,
    }


@router.get("/staff", summary="Find staff by name or id")
def find_staff(
    store: StoreDep,
    user: UserDep,
    q: Annotated[str, Query(min_length=1, max_length=100, description="Name or staff id")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict:
    """Staff whose name or id contains ``q`` (a grid worker finds themselves only)."""
    frame = store.staff()
    if not user.role.reads_everything:
        frame = frame.loc[frame["staff_id"] == user.staff_id]
    text = q.strip()
    hit = frame["staff_id"].astype(str).str.contains(text, case=False, regex=False) | frame[
        "name"
    ].astype(str).str.contains(text, case=False, regex=False)
    found = frame.loc[hit].head(limit)
    return {"staff": records(found)}


@router.get("/staff/{staff_id}", summary="What a staff member covers")
def staff(staff_id: str, store: StoreDep, user: UserDep) -> dict:
    """A person's grids and the buildings, units and households under them."""
    from gis_grid.grids.queries import coverage

    user.check_role(
        user.role.reads_everything or staff_id == user.staff_id, "see another person's grids"
    )
    return coverage(store, staff_id)

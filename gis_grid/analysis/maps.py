"""Static maps: a grid as one self-contained HTML file (folium), for reports and notebooks.

folium writes Leaflet maps that load leaflet.js, jQuery, Bootstrap and icon
fonts from CDNs, and a tile server for the background. An exported map here
needs none of them: it has no tile layer (the grids, their children and the
streets are the map), and :func:`self_contained` puts leaflet.js and
leaflet.css — from the ``xstatic-leaflet`` package installed from PyPI, its
images as data URIs — into the file and drops every other external reference.
The file opens offline, from a USB stick or an intranet share.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import folium
import shapely

from gis_grid.domain.errors import NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level, level_of_code

#: Most points of a layer drawn as circles in an exported map (more stop rendering).
MAX_POINTS = 2000
_COLOURS = {
    "community": "#17324d",
    "area": "#d9480f",
    "courtyard": "#2b8a3e",
    "building": "#868e96",
    "unit": "#7048e8",
}
_SCRIPT = re.compile(r'<script[^>]*\bsrc="([^"]+)"[^>]*>\s*</script>')
_STYLE = re.compile(r'<link[^>]*\bhref="([^"]+)"[^>]*/?>')


def _leaflet_dir() -> Path:
    import xstatic.pkg.leaflet as leaflet

    return Path(leaflet.BASE_DIR)


def self_contained(html: str) -> str:
    """Inline leaflet.js/.css (images as data URIs) and drop other external files.

    Examples
    --------
    >>> out = self_contained('<link rel="stylesheet" href="https://x/leaflet.css"/>'
    ...                      '<script src="https://x/jquery.js"></script>')
    >>> _SCRIPT.search(out) is None, _STYLE.search(out) is None, "<style>" in out
    (True, True, True)
    """
    base = _leaflet_dir()

    def script(match: re.Match) -> str:
        if match.group(1).endswith("/leaflet.js"):
            return "<script>" + (base / "leaflet.js").read_text() + "</script>"
        return ""

    def style(match: re.Match) -> str:
        if not match.group(1).endswith("/leaflet.css"):
            return ""
        css = (base / "leaflet.css").read_text()

        def image(m: re.Match) -> str:
            data = base64.b64encode((base / "images" / m.group(1)).read_bytes()).decode()
            return f"url(data:image/png;base64,{data})"

        return "<style>" + re.sub(r"url\(images/([\w.-]+\.png)\)", image, css) + "</style>"

    return _STYLE.sub(style, _SCRIPT.sub(script, html))


def grid_map(store, code: str, *, layers: bool = True) -> folium.Map:
    """A folium map of a grid: its outline and children, with households and staff.

    With ``layers``, also the streets, cameras, lamps and open incidents in it.
    """
    from gis_grid.grids.queries import staff_of

    code = str(code)
    found = store.grids(codes=[code])
    if not len(found):
        raise NotFoundError(say("problem_no_grid", code=code))
    level = level_of_code(code)
    grid = found.iloc[0]
    west, south, east, north = shapely.bounds(grid.geometry)
    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=True)
    m.fit_bounds([[south, west], [north, east]])
    people = staff_of(store, [code])
    names = ", ".join(f"{p.name} {p.phone or ''}" for p in people.itertuples())
    folium.GeoJson(
        found[["code", "name", "households", "geometry"]].assign(staff=names),
        name=f"{grid['name']} {code}",
        style_function=lambda _: {"color": _COLOURS[level.key], "weight": 3, "fillOpacity": 0.04},
        tooltip=folium.GeoJsonTooltip(["name", "code", "households", "staff"]),
    ).add_to(m)
    if level < Level.UNIT:
        below = Level(level + 1)
        children = store.grids(under=[code], level=below)
        if len(children):
            who = staff_of(store, children["code"].tolist())
            label = who.groupby("grid_code").apply(
                lambda g: ", ".join(f"{r.name} {r.phone or ''}" for r in g.itertuples()),
                include_groups=False,
            )
            children = children.assign(staff=children["code"].map(label).fillna(""))
            folium.GeoJson(
                children[["code", "name", "households", "staff", "geometry"]],
                name=f"{below.zh} {below.key}",
                style_function=lambda _: {
                    "color": _COLOURS[below.key],
                    "weight": 1.5,
                    "fillOpacity": 0.08,
                },
                tooltip=folium.GeoJsonTooltip(["name", "code", "households", "staff"]),
            ).add_to(m)
    if layers:
        _add_layers(m, store, code)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def _add_layers(m: folium.Map, store, code: str) -> None:
    present = store.layers()
    if "streets" in present:
        streets = store.features("streets", under=[code])
        if len(streets):
            folium.GeoJson(
                streets[["id", "geometry"]],
                name="道路 streets",
                style_function=lambda _: {"color": "#adb5bd", "weight": 3},
            ).add_to(m)
    for layer, colour, where in (
        ("cctv", "#1c7ed6", None),
        ("lighting", "#f59f00", None),
        ("incidents", "#e03131", {"status": ["reported", "dispatched", "handled"]}),
    ):
        if layer not in present:
            continue
        frame = store.features(layer, under=[code], where=where)
        shown = frame.tail(MAX_POINTS)  # the latest, when there are more
        group = folium.FeatureGroup(name=f"{layer} ({len(shown):,} of {len(frame):,})")
        xy = shapely.get_coordinates(shown.geometry.to_numpy())
        for (x, y), ident in zip(xy, shown["id"].to_numpy(), strict=True):
            folium.CircleMarker(
                [y, x], radius=3, color=colour, fill=True, fill_opacity=0.9, tooltip=str(ident)
            ).add_to(group)
        group.add_to(m)


def grid_map_html(store, code: str, *, layers: bool = True) -> str:
    """The self-contained HTML of :func:`grid_map`."""
    return self_contained(grid_map(store, code, layers=layers).get_root().render())

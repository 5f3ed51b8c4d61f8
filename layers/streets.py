"""道路 streets and paths: the lines street lighting is measured along."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.layers.features import FeatureSchema, Field
from gis_grid.layers.plugins import Layer
from layers.components import demo_frame, demo_grids

LIT = {"yes": "有照明", "no": "无照明", "unknown": "未知"}


class StreetsLayer(Layer):
    """Street and path centre lines (OSM ``highway=*`` ways, or a city's road layer)."""

    schema = FeatureSchema(
        "streets",
        "道路",
        "LineString",
        (
            Field("name", "text", "名称"),
            Field("kind", "text", "道路等级", aliases=("highway", "class", "type")),
            Field("lit", "choice", "照明", choices=LIT, default="unknown"),
        ),
        "Streets and paths (道路): the lines lighting gaps are measured along",
    )

    def demo(self, data, rng):
        """The demo's street network, named: roads round and between the compounds, lanes in them.

        See :func:`demo_network`.
        """
        lines, names, kinds = demo_network(data)
        return demo_frame(
            {
                "id": [f"S{i:05d}" for i in range(1, len(lines) + 1)],
                "name": names,
                "kind": kinds,
                "lit": "unknown",
            },
            lines,
            data,
        )

    def from_osm(self, osm):
        """Every ``highway=*`` way: name, kind, and its ``lit`` tag."""
        net = osm.get_network(network_type="all")
        if net is None or not len(net):
            return None
        lit = (
            net.get("lit", pd.Series([None] * len(net), index=net.index))
            .map({"yes": "yes", "24/7": "yes", "automatic": "yes", "no": "no", "disused": "no"})
            .fillna("unknown")
        )
        ids = "w" + net["id"].astype(str)
        ids = ids + np.where(
            ids.duplicated(keep=False), "-" + ids.groupby(ids).cumcount().astype(str), ""
        )
        return gpd.GeoDataFrame(
            {
                "id": ids.to_numpy(),
                "name": net.get("name"),
                "kind": net["highway"],
                "lit": lit.to_numpy(),
            },
            geometry=net.geometry.to_numpy(),
            crs="EPSG:4326",
        )


#: Demo street names: east–west streets (街) and north–south roads (路), in order.
EAST_WEST = ("兀术街", "民主街", "建设街", "和平街", "胜利街", "人民街", "文化街", "团结街")
NORTH_SOUTH = ("育才路", "新华路", "光明路", "铁煤路", "振兴路", "长青路", "迎宾路", "工人路")
#: A public street's centre line runs at least this far (m) from every courtyard; a line
#: between courtyards (an area split inside a compound) is nearer.
_PUBLIC_CLEARANCE = 15.0
#: The compound's ring road runs this far (m) outside its courtyards.
_RING = 5.0


#: The last demo's network: the streets and the lighting layers both draw on it.
_LAST: tuple | None = None


def demo_network(data) -> tuple[np.ndarray, list[str], list[str]]:
    """Street centre lines of the demo in its metres, with names and kinds.

    - 主干道 (``primary``): the roads round each community, on its outline;
    - 支路 (``secondary``): the streets between compounds, on the area borders
      that run through open street (no courtyard within 15 m);
    - 小区内路 (``service``): in each compound a ring road 5 m outside its
      courtyards, the lanes between neighbouring courtyards, and a gate road
      from the ring to the nearest street on each side that faces one.

    Names: east–west streets 街 and north–south roads 路 from :data:`EAST_WEST`
    and :data:`NORTH_SOUTH` by position (numbered when the list runs out); a
    compound's lanes by its name (阳光小区内路). Made once per demo (the lighting
    layer's lamps stand along the same lines).
    """
    import weakref

    global _LAST
    if _LAST is not None and _LAST[0]() is data:
        return _LAST[1]
    network = _network(data)
    _LAST = (weakref.ref(data), network)
    return network


def _network(data) -> tuple[np.ndarray, list[str], list[str]]:
    """:func:`demo_network`, made."""
    import re

    _, yards, rows = demo_grids(data, "courtyard")
    _, areas, _ = demo_grids(data, "area")
    _, communities, _ = demo_grids(data, "community")
    yard_names = data.grids.loc[rows, "name"].astype(str).to_numpy()
    outline = shapely.union_all(shapely.boundary(communities))
    near_outline = shapely.buffer(outline, 0.5)

    def runs(lines):  # straight pieces: streets are named per straight run
        merged = shapely.get_parts(shapely.line_merge(shapely.union_all(lines)))
        return np.concatenate([_straight_runs(s) for s in merged])

    around = runs([outline])
    inside = runs(shapely.boundary(areas))
    inside = inside[~shapely.covered_by(inside, near_outline)]
    _, far = shapely.STRtree(yards).query_nearest(inside, return_distance=True, all_matches=False)
    between = inside[far >= _PUBLIC_CLEARANCE]  # on open street, not between courtyards
    streets = np.concatenate([between, around])
    on_outline = np.r_[np.zeros(len(between), bool), np.ones(len(around), bool)]
    kinds = np.where(on_outline, "primary", "secondary").tolist()
    names = _street_names(streets, on_outline)

    # compounds: courtyards closer than a street is wide belong together
    compounds = shapely.get_parts(shapely.union_all(shapely.buffer(yards, 10, join_style="mitre")))
    which = shapely.STRtree(compounds).query(yards, predicate="intersects")
    compound_of = np.empty(len(yards), dtype=int)
    compound_of[which[0]] = which[1]
    street_lines = shapely.union_all(streets)
    lanes, lane_names = [], []
    for c in range(len(compounds)):
        members = np.flatnonzero(compound_of == c)
        found = re.match(r"^(.*?(小区|家园|花园|苑|新村))", yard_names[members[0]])
        name = f"{found.group(1) if found else yard_names[members[0]]}内路"
        hull = shapely.buffer(
            shapely.buffer(shapely.union_all(yards[members]), 10, join_style="mitre"),
            _RING - 10,
            join_style="mitre",
        )
        ring = shapely.boundary(hull)
        pieces = [ring, *_lanes_between(yards[members], hull)]
        # gates: from the ring at the middle of each side to the street it faces, and at
        # least the nearest one, so every lane reaches the streets
        gates = [shapely.shortest_line(ring, street_lines)]
        minx, miny, maxx, maxy = hull.bounds
        for side in (
            ((minx + maxx) / 2, maxy),
            ((minx + maxx) / 2, miny),
            (minx, (miny + maxy) / 2),
            (maxx, (miny + maxy) / 2),
        ):
            on_ring = ring.interpolate(ring.project(shapely.Point(side)))
            gate = shapely.shortest_line(on_ring, street_lines)
            if 0 < gate.length <= 30:
                gates.append(gate)
        # two gates to one place are one gate
        pieces += [
            g
            for i, g in enumerate(gates)
            if g.length > 0 and not any(g.equals_exact(o, 0.5) for o in gates[:i])
        ]
        for piece in pieces:
            for part in shapely.get_parts(piece):
                lanes.append(part)
                lane_names.append(name)
    lines = shapely.set_precision(np.array([*streets, *lanes], dtype=object), 0.01)
    # a piece shorter than the centimetre grid snaps to nothing: no street, no lamp on it
    kept = ~shapely.is_empty(lines)
    names, kinds = np.array([*names, *lane_names]), np.array([*kinds, *["service"] * len(lanes)])
    return lines[kept], names[kept].tolist(), kinds[kept].tolist()


def _straight_runs(line) -> np.ndarray:
    """A line cut at its corners into straight pieces."""
    coords = shapely.get_coordinates(line)
    if len(coords) <= 2:
        return np.array([line], dtype=object)
    d = np.diff(coords, axis=0)
    heading = np.arctan2(d[:, 1], d[:, 0])
    turn = np.abs(np.angle(np.exp(1j * np.diff(heading)))) > np.radians(20)
    cuts = [0, *(np.flatnonzero(turn) + 1), len(coords) - 1]
    return np.array(
        [shapely.LineString(coords[a : b + 1]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)],
        dtype=object,
    )


def _street_names(streets: np.ndarray, outline: np.ndarray) -> list[str]:
    """East–west lines take 街 names and north–south ones 路 names, each by position."""
    coords = [shapely.get_coordinates(s) for s in streets]
    dx = np.array([abs(c[-1, 0] - c[0, 0]) for c in coords])
    dy = np.array([abs(c[-1, 1] - c[0, 1]) for c in coords])
    east_west = dx >= dy
    # one name per line of streets: pieces on one y (east–west) or x (north–south) share it
    where = np.where(east_west, [c[:, 1].mean() for c in coords], [c[:, 0].mean() for c in coords])
    names = [""] * len(streets)
    for flag, pool, sign in ((True, EAST_WEST, -1), (False, NORTH_SOUTH, 1)):
        picked = np.flatnonzero(east_west == flag)
        # the streets between compounds first (north to south, west to east), then the outline
        keys = sorted({(bool(outline[i]), sign * round(float(where[i]))) for i in picked})
        number = {k: i for i, k in enumerate(keys)}
        for i in picked:
            n = number[(bool(outline[i]), sign * round(float(where[i])))]
            base = pool[n % len(pool)]
            names[i] = base if n < len(pool) else f"{base[:-1]}{n // len(pool) + 1}{base[-1]}"
    slanted = (dx > 1) & (dy > 1) & (np.minimum(dx, dy) / np.maximum(dx, dy) > 0.3)
    for i in np.flatnonzero(slanted & outline):
        names[i] = "铁煤大道"  # the reference community's cut corner: a diagonal road
    return names


def _lanes_between(boxes: np.ndarray, hull) -> list:
    """Centre lines of the lanes between neighbouring courtyards, run out to the ring road."""
    bounds = shapely.bounds(boxes)
    out = []
    for i in range(len(boxes)):
        for j in range(len(boxes)):
            a, b = bounds[i], bounds[j]
            gap_x, gap_y = b[0] - a[2], b[1] - a[3]
            overlap_y = min(a[3], b[3]) - max(a[1], b[1])
            overlap_x = min(a[2], b[2]) - max(a[0], b[0])
            if 0 < gap_x < 20 and overlap_y > 0:  # j east of i: a north–south lane
                x = (a[2] + b[0]) / 2
                line = shapely.LineString([(x, hull.bounds[1]), (x, hull.bounds[3])])
            elif 0 < gap_y < 20 and overlap_x > 0:  # j north of i: an east–west lane
                y = (a[3] + b[1]) / 2
                line = shapely.LineString([(hull.bounds[0], y), (hull.bounds[2], y)])
            else:
                continue
            piece = shapely.intersection(line, hull)
            if not piece.is_empty:
                out.append(piece)
    if not out:
        return []
    # lanes met twice (a row of courtyards): one line each
    return list(shapely.get_parts(shapely.line_merge(shapely.union_all(out))))

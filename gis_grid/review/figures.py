"""The review's pictures, drawn with matplotlib from the store's own shapes (no tiles).

Maps are PNG (their size does not grow with the buildings drawn); charts
are SVG with their text as outlines (sharp in print, no font needed to view).
Each is handed back as a ``data:`` URI, so the report holds every picture
itself. Colours are the pages' (``api/static/map.js``, ``supervisor.js``):
hot red, cold blue, new / persistent / fading as outlines on red.
"""

from __future__ import annotations

import base64
import io

import geopandas as gpd
import numpy as np
import pandas as pd

from gis_grid.domain.messages import words

#: The pages' colours.
COLOURS = {
    "background": "#f4f1ea",
    "community": "#17324d",
    "area": "#d9480f",
    "courtyard": "#2b8a3e",
    "building_fill": "#ddd6c8",
    "building_edge": "#b5ab98",
    "street": "#ffffff",
    "street_edge": "#b8b2a6",
    "hot": "#e03131",
    "hot_edge": "#a51111",
    "cold": "#1971c2",
    "cctv": "#1c7ed6",
    "dark": "#212529",
    "cleaning": "#15aabf",
    "no_staff": "#ae3ec9",
    "ink": "#343a40",
    "muted": "#868e96",
}
#: Category colours of the trend chart (nine categories, told apart in print).
CATEGORY_COLOURS = (
    "#1c7ed6", "#f59f00", "#7048e8", "#2b8a3e", "#e03131",
    "#d9480f", "#0c8599", "#ae3ec9", "#868e96",
)  # fmt: skip


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from gis_grid.review.fonts import use_in_matplotlib

    plt.rcParams.update(
        {
            "font.family": use_in_matplotlib(),
            "font.size": 8,
            "svg.fonttype": "path",
            "axes.edgecolor": COLOURS["muted"],
            "axes.labelcolor": COLOURS["ink"],
            "xtick.color": COLOURS["ink"],
            "ytick.color": COLOURS["ink"],
        }
    )
    return plt


def _uri(fig, fmt: str, dpi: int = 160) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", pad_inches=0.02)
    plt.close(fig)
    kind = "image/svg+xml" if fmt == "svg" else "image/png"
    return f"data:{kind};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def sparkline(values, *, rate: bool = False) -> str:
    """Twelve weeks as a small line, this week as a dot (SVG)."""
    plt = _pyplot()
    y = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    fig, ax = plt.subplots(figsize=(1.3, 0.32))
    ax.plot(np.arange(len(y)), y, color=COLOURS["ink"], linewidth=0.9)
    if len(y) and not np.isnan(y[-1]):
        ax.plot([len(y) - 1], [y[-1]], "o", color=COLOURS["hot"], markersize=2.6)
    finite = y[~np.isnan(y)]
    if len(finite):
        lo, hi = float(finite.min()), float(finite.max())
        pad = (hi - lo) * 0.15 or (0.01 if rate else 1)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-0.5, len(y) - 0.5)
    ax.axis("off")
    return _uri(fig, "svg")


def trend_chart(categories: pd.DataFrame, lang: str) -> str:
    """Incidents per week, stacked by category, the week reviewed last (SVG)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 2.5))
    bottom = np.zeros(len(categories))
    x = np.arange(len(categories))
    for i, column in enumerate(categories.columns):
        values = categories[column].to_numpy(dtype=float)
        if not values.any():
            continue
        ax.bar(
            x,
            values,
            bottom=bottom,
            width=0.72,
            color=CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)],
            label=words("categories", column, lang),
            linewidth=0,
        )
        bottom += values
    ax.set_xticks(x, [w.split("-")[1] for w in categories.index], fontsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylabel(words("review", "incidents_per_week", lang))
    if bottom.any():
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(  # top to bottom as the bars stack
            handles[::-1], labels[::-1], fontsize=7, frameon=False, loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )  # fmt: skip
        ax.bar(x[-1:], bottom[-1:], width=0.86, fill=False, edgecolor=COLOURS["ink"], lw=0.8)
    return _uri(fig, "svg")


def _panels(grids: gpd.GeoDataFrame) -> list[tuple[float, float]]:
    """The x-ranges a map is cut into: a long strip (a street's communities in a row) in rows.

    One panel while the ground is at most ~2.5 times as wide as high; more, each
    a slice of it from west to east, so a long street is not drawn as a thread.
    """
    minx, miny, maxx, maxy = grids.total_bounds
    ratio = (maxx - minx) / max(maxy - miny, 1e-9)
    rows = int(np.clip(round(np.sqrt(ratio / 1.5)), 1, 4))
    edges = np.linspace(minx, maxx, rows + 1)
    overlap = 0.02 * (maxx - minx) / rows
    return [(a - overlap, b + overlap) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _size(grids: gpd.GeoDataFrame, panels: list[tuple[float, float]]) -> tuple[float, float]:
    """A figure as wide as the page, as tall as its panels' shape asks (within reason)."""
    minx, miny, maxx, maxy = grids.total_bounds
    width = max(b - a for a, b in panels)
    ratio = (maxy - miny) / max(width, 1e-9)
    return 7.0, float(np.clip(7.0 * ratio * len(panels), 3.2, 8.5)) + 0.6


def _draw_map(review, lang: str, draw, handles) -> str:
    """The grids of the review with ``draw(ax, crs, cut)`` on top, in one or more panels (PNG).

    Each panel draws only what lies in its slice (``cut`` selects it through
    the frames' spatial index): a street's 5,000 buildings are not drawn four times.
    """
    plt = _pyplot()
    crs, grids = _frame(review)
    panels = _panels(grids)
    streets = review.streets.to_crs(crs) if review.streets is not None else None
    buildings = review.buildings.to_crs(crs) if review.buildings is not None else None
    fig, axes = plt.subplots(len(panels), 1, figsize=_size(grids, panels), squeeze=False)
    for i, (ax, (x0, x1)) in enumerate(zip(axes[:, 0], panels, strict=True)):
        whole = len(panels) == 1

        def cut(frame, x0=x0, x1=x1, whole=whole):
            return frame if whole or frame is None or not len(frame) else frame.cx[x0:x1, :]

        _base(ax, grids, cut(grids), cut(streets), cut(buildings), labels=True)
        draw(ax, crs, cut)
        last = i == len(panels) - 1
        _finish_map(ax, grids, handles if last else [], lang, xlim=(x0, x1), scale=i == 0)
    return _uri(fig, "png")


def _frame(review):
    """The map's metric CRS and extent: the scope's communities."""
    from gis_grid.geo.crs import local_metric_crs

    grids = review.grids
    b = grids.total_bounds
    crs = local_metric_crs((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    return crs, grids.to_crs(crs)


def _base(ax, grids, view, streets, buildings, *, labels: bool):
    """The base map: streets, buildings, grid outlines and names (``view``: the grids in sight)."""
    ax.set_facecolor(COLOURS["background"])
    if streets is not None and len(streets):
        wide = streets["kind"].isin(["primary", "secondary"]).to_numpy()
        for part, width in ((streets[wide], 3.2), (streets[~wide], 1.4)):
            if len(part):
                part.plot(ax=ax, color=COLOURS["street_edge"], linewidth=width + 0.8, zorder=1)
                part.plot(ax=ax, color=COLOURS["street"], linewidth=width, zorder=1.1)
    if buildings is not None and len(buildings):
        buildings.plot(
            ax=ax,
            facecolor=COLOURS["building_fill"],
            edgecolor=COLOURS["building_edge"],
            linewidth=0.2,
            zorder=2,
        )
    many = (grids["level"] == "community").sum() > 3
    for level, width in (("courtyard", 0.5), ("area", 1.1 if many else 1.6), ("community", 2.0)):
        part = view.loc[view["level"] == level]
        if len(part) and not (many and level == "courtyard"):
            part.boundary.plot(ax=ax, color=COLOURS[level], linewidth=width, zorder=5)
    if labels:
        level = "community" if many else "area"
        part = view.loc[view["level"] == level]
        for name, pt in zip(_short(part, grids), part.geometry.representative_point(), strict=True):
            ax.annotate(
                name,
                (pt.x, pt.y),
                ha="center",
                va="center",
                fontsize=6.5 if many else 7.5,
                color=COLOURS[level],
                zorder=9,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
            )


def _short(part: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> list[str]:
    """Map labels without the community's name where an area repeats it (宏大社区第一网格)."""
    communities = grids.loc[grids["level"] == "community"]
    parent = dict(zip(communities["code"], communities["name"].astype(str), strict=True))
    out = []
    for code, name in zip(part["code"].astype(str), part["name"].astype(str), strict=True):
        prefix = parent.get(code[:12], "")
        out.append(
            name[len(prefix) :] if prefix and name.startswith(prefix) and name != prefix else name
        )
    return out


def letter(i: int) -> str:
    """Holes are lettered (A, B …) where hot spots are numbered: the page shows both on one map."""
    return chr(ord("A") + i)


def _numbers(ax, points: gpd.GeoSeries, colour: str, offset=(0, 0), labels=None):
    """Numbered markers: the rank a table row shows beside the same place."""
    for i, pt in enumerate(points, start=1):
        if pt is None or pt.is_empty:
            continue
        ax.annotate(
            str(i) if labels is None else labels[i - 1],
            (pt.x, pt.y),
            xytext=offset,
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=6.5,
            color="white",
            zorder=12,
            bbox={"boxstyle": "circle,pad=0.2", "fc": colour, "ec": "white", "lw": 0.6},
        )


def _finish_map(ax, grids, handles, lang, *, xlim=None, scale: bool = True) -> None:
    minx, miny, maxx, maxy = grids.total_bounds
    if xlim is not None:
        minx, maxx = xlim
    pad = 0.03 * max(maxx - minx, maxy - miny)
    ax.set_xlim(minx - pad, maxx + pad)
    ax.set_ylim(miny - pad, maxy + pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    if handles:
        ax.legend(
            handles=handles,
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.01),
            ncol=min(5, len(handles)),
            frameon=False,
            handlelength=1.6,
            columnspacing=1.2,
        )
    if scale:
        _scale_bar(ax, maxx - minx)


def _scale_bar(ax, width_m: float) -> None:
    step = 10 ** np.floor(np.log10(width_m / 5))
    length = step * (5 if width_m / step > 25 else 2 if width_m / step > 10 else 1)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    x, y = x0 + 0.04 * (x1 - x0), y0 + 0.04 * (y1 - y0)
    ax.plot([x, x + length], [y, y], color=COLOURS["ink"], lw=2, zorder=13)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.annotate(label, (x + length / 2, y), xytext=(0, 3), textcoords="offset points",
                ha="center", fontsize=6.5, zorder=13)  # fmt: skip


def _legend_grids(lang):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def m(key):
        return words("messages", key, lang)

    return [
        Line2D([], [], color=COLOURS["community"], lw=2, label=m("community")),
        Line2D([], [], color=COLOURS["area"], lw=1.5, label=m("area")),
        Line2D([], [], color=COLOURS["courtyard"], lw=0.8, label=m("courtyard")),
        Patch(fc=COLOURS["building_fill"], ec=COLOURS["building_edge"], label=m("buildings")),
    ]  # fmt: skip


def hotspot_map(review, lang: str, top: int) -> str | None:
    """The week's spots over the grids; numbered as the hot-spot table (PNG)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if review.grids is None or not len(review.grids):
        return None

    projected = {}

    def draw(ax, crs, cut):
        if not len(review.spots):
            return
        if "spots" not in projected:
            projected["spots"] = review.spots.to_crs(crs)
        every = projected["spots"]
        spots = cut(every)
        hot, cold = spots["spot"] == "hot", spots["spot"] == "cold"
        if hot.any():
            spots[hot].plot(ax=ax, color=COLOURS["hot"], alpha=0.75, lw=0, zorder=6)
        if cold.any():
            spots[cold].plot(ax=ax, color=COLOURS["cold"], alpha=0.6, lw=0, zorder=6)
        for trend, width, style in (("new", 1.6, "solid"), ("persistent", 0.6, "solid"),
                                    ("fading", 0.9, "dashed")):  # fmt: skip
            part = spots[spots["trend"] == trend]
            if len(part):
                part.boundary.plot(ax=ax, color=COLOURS["hot_edge"], lw=width, ls=style, zorder=7)
        rows = review.hotspots.head(top)
        if len(rows):  # each row's number sits on its busiest cell (drawn where in sight)
            at = busiest_cells(every, rows["grid_code"])
            _numbers(ax, gpd.GeoSeries([at.get(c) for c in rows["grid_code"]]), COLOURS["hot_edge"])

    handles = [
        Patch(fc=COLOURS["hot"], alpha=0.75, label=words("messages", "hot_spot", lang)),
        Patch(fc=COLOURS["cold"], alpha=0.6, label=words("messages", "cold_spot", lang)),
        Patch(fc=COLOURS["hot"], ec=COLOURS["hot_edge"], lw=1.6, alpha=0.75,
              label=words("messages", "trend_new", lang)),
        Patch(fc=COLOURS["hot"], ec=COLOURS["hot_edge"], lw=0.6, alpha=0.75,
              label=words("messages", "trend_persistent", lang)),
        Patch(fill=False, ec=COLOURS["hot_edge"], lw=0.9, ls="--",
              label=words("messages", "trend_fading", lang)),
        Line2D([], [], color=COLOURS["street_edge"], lw=2.5,
               label=words("messages", "streets", lang)),
        *_legend_grids(lang),
    ]  # fmt: skip
    return _draw_map(review, lang, draw, handles)


def busiest_cells(spots: gpd.GeoDataFrame, codes: pd.Series) -> dict:
    """Where each hot-spot row is marked: the centre of its busiest cell, by grid code."""
    if not len(spots):
        return {}
    ranked = spots.assign(key=row_key(spots, codes)).sort_values("incidents", ascending=False)
    first = ranked.dropna(subset=["key"]).drop_duplicates("key").set_index("key")
    return {c: g.centroid for c, g in zip(first.index, first.geometry, strict=True)}


def row_key(spots: gpd.GeoDataFrame, codes: pd.Series) -> pd.Series:
    """Which row (grid code) each cell belongs to: its code at that row's depth."""
    wanted = set(codes)
    key = pd.Series(None, index=spots.index, dtype=object)
    for column in ("courtyard_code", "area_code", "community_code"):
        if column in spots:
            hit = key.isna() & spots[column].isin(wanted)
            key[hit] = spots.loc[hit, column]
    return key


def holes_map(review, lang: str, top: int) -> str | None:
    """CCTV holes, dark streets, uncleaned ground, unstaffed grids; lettered as the table."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if review.grids is None or not len(review.grids):
        return None
    style = {
        "cctv": dict(facecolor=COLOURS["cctv"], alpha=0.16, edgecolor="none"),
        "cleaning_uncleaned": dict(facecolor=COLOURS["cleaning"], alpha=0.3, hatch="\\\\\\"),
        "cleaning_overdue": dict(facecolor="none", edgecolor=COLOURS["cleaning"], lw=1.4),
        "no_staff": dict(facecolor="none", edgecolor=COLOURS["no_staff"], lw=1.6, ls="--"),
    }
    holes = review.holes
    holes = holes.loc[holes.geometry.notna()] if len(holes) else holes
    kinds = set(holes["kind"]) if len(holes) else set()

    projected = {}

    def draw(ax, crs, cut):
        if not len(holes):
            return
        if "holes" not in projected:
            projected["holes"] = holes.to_crs(crs)
        every = projected["holes"]
        mine = cut(every)
        for k, kw in style.items():
            part = mine.loc[mine["kind"] == k]
            if len(part):
                part.plot(ax=ax, zorder=6, **kw)
        dark = mine.loc[mine["kind"] == "dark_street"]
        if len(dark):
            dark.plot(ax=ax, color=COLOURS["dark"], lw=2.4, zorder=8)
        first = every.head(top)
        pts = gpd.GeoSeries(list(first.geometry.representative_point()))
        lettered = [letter(i) for i in range(len(first))]
        _numbers(ax, pts, COLOURS["ink"], offset=(-16, 9), labels=lettered)  # beside the label

    labels = {k: words("review", f"hole_{k}", lang) for k in (*style, "dark_street")}
    handles = {
        "cctv": Patch(fc=COLOURS["cctv"], alpha=0.25, label=labels["cctv"]),
        "dark_street": Line2D([], [], color=COLOURS["dark"], lw=2.4, label=labels["dark_street"]),
        "cleaning_uncleaned": Patch(fc=COLOURS["cleaning"], alpha=0.3, hatch="\\\\\\",
                                    label=labels["cleaning_uncleaned"]),
        "cleaning_overdue": Patch(fill=False, ec=COLOURS["cleaning"], lw=1.4,
                                  label=labels["cleaning_overdue"]),
        "no_staff": Patch(fill=False, ec=COLOURS["no_staff"], lw=1.6, ls="--",
                          label=labels["no_staff"]),
    }  # fmt: skip
    legend = [handles[k] for k in handles if k in kinds] + _legend_grids(lang)
    return _draw_map(review, lang, draw, legend)

"""Analyses: ``holes`` (coverage gaps with the person responsible) and ``hotspots`` (Gi*)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from gis_grid.cli.common import (
    StoreArg,
    app,
    err,
    fail_cleanly,
    header,
    open_arg,
    out,
    print_frame,
    print_json,
    shown,
    tr,
    write_frame,
)
from gis_grid.domain.model import Level
from gis_grid.tables import geojson_text, records

# -- holes ---------------------------------------------------------------------------


class HoleLayer(StrEnum):
    """What kind of hole."""

    cctv = "cctv"
    lighting = "lighting"
    cleaning = "cleaning"
    incidents = "incidents"
    staff = "staff"
    unowned = "unowned"


#: The columns of each table a person reads in an 80-column terminal (the rest: --format json).
PER_GRID = {
    "cctv": {"coverage_pct": "seen %", "holes": "holes", "hole_incidents": "incidents"},
    "lighting": {"dark_m": "dark m", "dark_pct": "dark %", "stretches": "stretches"},
    "cleaning": {"cleaned_pct": "cleaned %", "uncleaned_gaps": "gaps", "overdue_zones": "overdue"},
    "incidents": {"open": "open", "overdue": "overdue"},
}
RANKED = {
    "area_m2": "m²",
    "length_m": "m",
    "incidents": "incidents",
    "night_incidents": "at night",
    "id": "case",
    "category": "category",
    "overdue_hours": "overdue h",
    "zone": "zone",
    "layer": "layer",
    "nearest_community": "nearest",
    "distance_m": "m away",
}


def _responsible(frame) -> list[str]:
    """Name and phone of each row's responsible person; * where the parent's answers."""
    if "staff_name" not in frame.columns:
        return [""] * len(frame)
    names = frame["staff_name"].fillna("").astype(str)
    phones = frame.get("staff_phone", pd.Series([""] * len(frame), index=frame.index))
    fallback = frame.get("staff_fallback", pd.Series([False] * len(frame), index=frame.index))
    return [
        (f"{n} {p}".strip() + ("*" if f is True else "")) if n else tr("nobody")
        for n, p, f in zip(names, phones.fillna("").astype(str), fallback, strict=True)
    ]


def _readable(frame, columns: dict[str, str], first: tuple[str, str]):
    """A few named columns of a frame and who answers for each row."""
    key, label = first
    shown = pd.DataFrame({label: frame[key].astype(str)} if key in frame.columns else {})
    for column, title in columns.items():
        if column in frame.columns:
            shown[title] = frame[column].to_numpy()
    shown["responsible"] = _responsible(frame)
    return shown


class OutFormat(StrEnum):
    """Output formats of analyses."""

    table = "table"
    json = "json"
    geojson = "geojson"


@app.command()
@fail_cleanly
def holes(
    store: StoreArg,
    layer: Annotated[
        HoleLayer, typer.Option(help="cctv, lighting, cleaning, staff, or unowned features.")
    ] = (HoleLayer.cctv),
    level: Annotated[
        str | None,
        typer.Option(help="The grids to measure per (default: area; staff: every level)."),
    ] = None,
    under: Annotated[list[str] | None, typer.Option(help="Only under this grid code.")] = None,
    since: Annotated[str | None, typer.Option(help="Incidents from (ISO date/time).")] = None,
    until: Annotated[str | None, typer.Option(help="Incidents until (ISO date/time).")] = None,
    fmt: Annotated[OutFormat, typer.Option("--format", "-f", help="table, json or geojson.")] = (
        OutFormat.table
    ),
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Also write the holes to a file.")
    ] = None,
    top: Annotated[int, typer.Option(help="Rows shown in tables.")] = 15,
) -> None:
    """Coverage holes with the grid and the person responsible for each, ranked."""
    from gis_grid.analysis.gaps import staffing_holes, unowned_features
    from gis_grid.layers.features import parse_when
    from gis_grid.layers.plugins import get_layer

    with open_arg(store) as st:
        if layer is HoleLayer.unowned:
            report = unowned_features(st)
        elif layer is HoleLayer.staff:
            report = staffing_holes(st, level=Level.parse(level) if level else None)
        else:
            level = level or "area"
            options = {"under": under or None}
            if layer is not HoleLayer.cleaning:
                options.update(since=parse_when(since), until=parse_when(until))
            report = get_layer(layer.value).holes(st, level=Level.parse(level), **options)
    if out_file is not None:
        write_frame(report.features, out_file, f"{layer.value}_holes")
    if fmt is OutFormat.geojson:
        print(geojson_text(report.features))
        return
    if fmt is OutFormat.json:
        print_json(
            {
                "summary": report.summary,
                "per_grid": records(report.per_grid),
                "holes": records(report.features.drop(columns="geometry")),
            }
        )
        return
    out.print(
        tr("holes_in", layer=header(layer.value), store=shown(store))
        + ", ".join(
            f"{header(k)} {v:,}" if isinstance(v, int) else f"{header(k)} {header(v)}"
            for k, v in report.summary.items()
        )
    )
    if layer in (HoleLayer.staff, HoleLayer.unowned):  # small tables as they are
        title = tr("per_layer") if layer is HoleLayer.unowned else tr("per_level")
        print_frame(report.per_grid.head(top), title)
        if len(report.features):
            keep = [c for c in ("code", "name", "level", "layer", "id") if c in report.features]
            print_frame(
                report.features[keep].assign(responsible=_responsible(report.features)).head(top),
                tr("without_staff") if layer is HoleLayer.staff else tr("features_in_no_grid"),
            )
        return
    per_grid = _readable(report.per_grid, PER_GRID[layer.value], ("name", "grid"))
    print_frame(per_grid.head(top), tr("per_grid", level=header(level)))
    ranked = report.features
    if layer is HoleLayer.incidents:  # a case is found by its id; its person says where
        ranked = _readable(ranked, {k: v for k, v in RANKED.items() if k != "id"}, ("id", "case"))
    else:
        ranked = _readable(
            ranked, RANKED, ("grid_code" if "grid_code" in ranked else "grid", "grid")
        )
    ranked.insert(0, "#", report.features["rank"].to_numpy() if "rank" in report.features else "")
    print_frame(
        ranked.head(top),
        tr("overdue_ranked") if layer is HoleLayer.incidents else tr("holes_ranked"),
    )
    if any(r.endswith("*") for r in ranked["responsible"]):
        err.print(tr("fallback_note"))
    err.print(tr("holes_hint"))


# -- hotspots ------------------------------------------------------------------------


@app.command()
@fail_cleanly
def hotspots(
    store: StoreArg,
    layer: Annotated[
        str | None,
        typer.Option(help="A point layer with times (default: the events layer, incidents)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Window start (default: 7 days before until).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Window end (default: the latest event).")
    ] = None,
    category: Annotated[list[str] | None, typer.Option(help="Only these categories.")] = None,
    by: Annotated[str, typer.Option(help="h3, or a grid level (area, courtyard …).")] = "h3",
    resolution: Annotated[
        int, typer.Option(help="H3 resolution (11: cells of ~0.2 ha).", min=5, max=13)
    ] = 11,
    permutations: Annotated[int, typer.Option(min=0, max=99_999)] = 999,
    seed: Annotated[int, typer.Option(help="Seed of the permutations.")] = 12345,
    alpha: Annotated[float, typer.Option(help="False discovery rate.")] = 0.05,
    heat_out: Annotated[
        Path | None,
        typer.Option(
            "--heat-out", help="Write the kernel-density heat surface: .tif, or .geojson bands."
        ),
    ] = None,
    fmt: Annotated[OutFormat, typer.Option("--format", "-f", help="table, json or geojson.")] = (
        OutFormat.table
    ),
    top: Annotated[int, typer.Option(help="Rows shown in tables.")] = 15,
) -> None:
    """Significant hot and cold spots (Gi*, FDR) with week-over-week change and the PAI."""
    from gis_grid.analysis.hotspots import find_hotspots, summary_words
    from gis_grid.layers.features import parse_when
    from gis_grid.layers.plugins import events_layer

    plugin = events_layer(layer)
    layer = plugin.name
    categories = plugin.categories(category)
    with open_arg(store) as st:
        report = find_hotspots(
            st,
            layer,
            time_field=plugin.time_field,
            category_field=plugin.category_field,
            since=parse_when(since),
            until=parse_when(until),
            category=categories,
            by=by,
            resolution=resolution,
            permutations=permutations,
            seed=seed,
            alpha=alpha,
        )
    if heat_out is not None:
        if heat_out.suffix.lower() in (".tif", ".tiff"):
            report.surface.to_geotiff(heat_out)
        else:
            write_frame(report.surface.bands(), heat_out, "heat")
    if fmt is OutFormat.geojson:
        print(geojson_text(report.spots))
        return
    if fmt is OutFormat.json:
        print_json(
            {"summary": report.summary, "spots": records(report.spots.drop(columns="geometry"))}
        )
        return
    s = report.summary
    out.print(
        tr(
            "hotspots_line",
            layer=header(layer),
            since=s["since"][:16],
            until=s["until"][:16],
            by=header(s["by"]),
            before=f"{s['incidents_before']:,}",
            units=f"{s['units']:,}",
            alpha=s["alpha"],
            **summary_words(s),
        )
    )
    cols = [
        "rank",
        "spot",
        "trend",
        "unit",
        "incidents",
        "z",
        "p_fdr",
        "grid_code",
        "staff_name",
        "staff_phone",
        "staff_fallback",
    ]
    print_frame(report.spots[cols].head(top), tr("spots_strongest"))

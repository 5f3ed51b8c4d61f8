"""``gis-grid layer list|import|export``: the thematic layers."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gis_grid.cli.common import (
    Format,
    FormatOpt,
    StoreArg,
    app,
    fail_cleanly,
    header,
    open_arg,
    out,
    print_json,
    shown,
    tr,
    write_frame,
)

# -- layers ------------------------------------------------------------------------

layer_app = typer.Typer(
    help="Thematic layers: incidents, cctv, lighting, streets, cleaning.", no_args_is_help=True
)
app.add_typer(layer_app, name="layer")


class Mode(StrEnum):
    """How an import meets features already stored."""

    append = "append"
    upsert = "upsert"
    replace = "replace"


@layer_app.command("list")
@fail_cleanly
def layer_list(
    store: Annotated[
        str | None,
        typer.Argument(
            help="A store, to count its features (optional).",
            envvar="GIS_GRID_DATABASE_URL",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The installed layers, their columns and (with a store) how many features it holds."""
    from gis_grid.layers.plugins import available

    held = {}
    if store:
        with open_arg(store) as st:
            held = {name: len(st.features(name)) for name in st.layers()}
    table = Table(*map(header, ("layer", "中文", "geometry", "columns")),
                  header("features") if store else "")  # fmt: skip
    for name, layer in available().items():
        s = layer.schema
        table.add_row(
            name, s.zh, s.geometry, ", ".join(s.columns), f"{held.get(name, 0):,}" if store else ""
        )
    out.print(table)


@layer_app.command("import")
@fail_cleanly
def layer_import(
    store: StoreArg,
    layer: Annotated[str, typer.Argument(help="incidents, cctv, lighting, streets or cleaning.")],
    file: Annotated[Path, typer.Argument(help=".csv (lon/lat or wkt), .geojson, .gpkg or .shp.")],
    crs: Annotated[
        str | None,
        typer.Option(
            help="What the coordinates are (EPSG:4326, EPSG:4490, gcj02, bd09 …); required for CSV."
        ),
    ] = None,
    mode: Annotated[
        Mode,
        typer.Option(
            help="append: refuse ids already stored; upsert: update them; replace: the whole layer."
        ),
    ] = Mode.append,
    make_valid: Annotated[
        bool,
        typer.Option(
            "--make-valid", help="Repair invalid lines and polygons instead of refusing them."
        ),
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Import a layer's features, linked to the grids containing them; all or nothing."""
    from gis_grid.layers.plugins import get_layer

    plugin = get_layer(layer)
    frame, log = plugin.prepare(plugin.read(file, crs=crs, make_valid=make_valid))
    with open_arg(store) as st:
        report = st.write_features(plugin.schema, frame, mode=mode.value, log=log)
    if fmt is Format.json:
        print_json(vars(report))
        return
    out.print(
        tr("imported_layer", n=f"{report.written:,}", layer=layer, zh=plugin.schema.zh,
           store=shown(store))
        + (tr("replaced", n=f"{report.replaced:,}") if report.replaced else "")
    )  # fmt: skip
    if report.unowned:
        out.print(tr("unowned_features", n=f"{report.unowned:,}", store=shown(store), layer=layer))


@layer_app.command("export")
@fail_cleanly
def layer_export(
    store: StoreArg,
    layer: Annotated[str, typer.Argument(help="A layer the store holds.")],
    file: Annotated[Path, typer.Argument(help=".geojson, .gpkg or .csv")],
) -> None:
    """Export a layer: every feature with its grid chain and responsible person."""
    from gis_grid.grids.linkage import with_staff

    with open_arg(store) as st:
        frame = with_staff(st, st.features(layer))
    write_frame(frame, file, layer)
    owned = frame["community_code"].notna().sum()
    out.print(
        tr(
            "wrote_layer",
            n=f"{len(frame):,}",
            layer=layer,
            path=file,
            none=f"{len(frame) - owned:,}",
        )
    )

"""What every command shares: the app, consoles, the store argument, output and errors."""

from __future__ import annotations

import functools
import json
import math
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gis_grid import __version__
from gis_grid.domain.errors import GisGridError, InputError
from gis_grid.domain.messages import catalogue, render, say, user_language
from gis_grid.domain.model import Level

app = typer.Typer(
    name="gis-grid",
    help="Grid management (网格化管理): nested community grids with their staff.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class Format(StrEnum):
    """Output formats."""

    table = "table"
    json = "json"


class Size(StrEnum):
    """Demo sizes."""

    reference = "reference"
    city = "city"


StoreArg = Annotated[
    str,
    typer.Argument(
        help="The store: a .gpkg file or a postgresql:// URL (default: $GIS_GRID_DATABASE_URL).",
        show_default=False,
        envvar="GIS_GRID_DATABASE_URL",
    ),
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table or json.")]


def fail_cleanly(func):
    """Turn user errors into one clear line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except GisGridError as exc:
            said = render(exc.message, user_language())  # GIS_GRID_LANG=zh, or the locale
            err.print(f"[bold red]{tr('error')}:[/] {escape(said)}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def print_json(obj) -> None:
    """One JSON object on stdout (NaN as null, numpy scalars as numbers)."""

    def default(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if hasattr(value, "item"):
            return value.item()
        return str(value)

    print(json.dumps(obj, ensure_ascii=False, indent=2, default=default, allow_nan=False))


def shown(store) -> str:
    """A store as the terminal shows it: a path as given, a URL without its password."""
    from gis_grid.store.base import shown_url

    return shown_url(store)


@contextmanager
def open_arg(store: str, *, create: bool = False):
    """Open the store a command was given; a clear error when there is none.

    With ``create``, a GeoPackage that did not exist before and whose command
    fails is removed again: a refused import leaves no empty file behind.
    """
    from gis_grid.store import open_store, resolve_url

    store = resolve_url(store)
    is_file = "://" not in store
    if not create and is_file and not Path(store).exists():
        raise InputError(say("problem_no_store_at", path=shown(store)))
    new_file = create and is_file and not Path(store).exists()
    opened = open_store(store, create=create)
    try:
        with opened:
            yield opened
    except BaseException:
        if new_file:
            for left in (Path(store), Path(store + ".writing")):
                left.unlink(missing_ok=True)
        raise


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    """Grid management (网格化管理): nested community grids with their staff."""
    if version:
        out.print(f"gis-grid {__version__}")
        raise typer.Exit()


def progress_bar() -> Progress:
    """A progress bar on stderr that disappears when done."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def write_frame(frame, file: Path, name: str) -> None:
    """A GeoDataFrame to .geojson / .gpkg / .csv (CSV: lon/lat, plus WKT for lines and polygons)."""
    import pyogrio
    import shapely

    suffix = file.suffix.lower()
    file.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        plain = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        if not (shapely.get_type_id(frame.geometry.to_numpy()) == 0).all():
            plain["wkt"] = shapely.to_wkt(frame.geometry.to_numpy(), rounding_precision=7)
        plain.to_csv(file, index=False)
    elif suffix in (".geojson", ".json", ".gpkg"):
        file.unlink(missing_ok=True)
        frame = frame.copy()
        for col in frame.columns:
            if frame[col].dtype == "boolean":
                frame[col] = frame[col].astype(object)
        pyogrio.write_dataframe(
            frame, file, layer=name, driver="GPKG" if suffix == ".gpkg" else "GeoJSON"
        )
    else:
        raise InputError(say("problem_export_type", suffix=repr(file.suffix)))


def cell(value) -> str:
    """A table cell: missing blank, small p-values in e-notation, numbers with separators."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.1e}" if 0 < abs(value) < 0.01 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def tr(key: str, **values) -> str:
    """A line the CLI prints, in the user's language (``GIS_GRID_LANG``, else the locale).

    From the catalogue's ``cli`` section; a key it lacks is printed as it is.
    """
    pair = catalogue()["cli"].get(key)
    text = key if pair is None else pair[0 if user_language() == "zh" else 1]
    return text.format(**values) if values else text


def header(name: str) -> str:
    """A table column in the user's language (the catalogue's ``columns``), else as named."""
    pair = catalogue()["columns"].get(str(name))
    return str(name) if pair is None else pair[0 if user_language() == "zh" else 1]


def print_frame(frame, title: str) -> None:
    """A table of a frame's rows in the terminal, its columns named in the user's language."""
    table = Table(*[header(c) for c in frame.columns], title=title, title_justify="left")
    for row in frame.itertuples(index=False):
        table.add_row(*[cell(v) for v in row])
    out.print(table)


def print_stats(stats: dict) -> None:
    """A store's counts per level, aggregates and staff."""
    table = Table(header("level"), "级别" if user_language() != "zh" else "", header("grids"))
    for lv in Level:
        table.add_row(lv.key, lv.zh, f"{stats['grids'][lv.key]:,}")
    out.print(table)
    out.print(
        tr(
            "stats_line",
            households=f"{stats['households']:,}",
            residents=f"{stats['residents']:,}",
            special=f"{stats['special_care']:,}",
            staff=f"{stats['staff']:,}",
            assignments=f"{stats['assignments']:,}",
            staffed=f"{stats['staffed_grids']:,}",
        )
    )


def print_chain(chain: list[dict]) -> None:
    """The grids at a point, community down to unit, with their staff."""
    table = Table(*map(header, ("level", "code", "name", "households", "staff")))
    table.columns[1].no_wrap = True
    table.columns[1].min_width = 23
    for g in chain:
        people = (
            "\n".join(
                f"{p['name']} {p['role_zh']} {p['phone']} ({p['staff_id']})" for p in g["staff"]
            )
            or f"[yellow]{tr('nobody_see_parent')}[/]"
        )
        table.add_row(
            f"{g['level']} {g['level_zh']}", g["code"], g["name"], f"{g['households']:,}", people
        )
    out.print(table)

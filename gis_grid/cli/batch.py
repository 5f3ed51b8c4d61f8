"""``gis-grid batch link|hotspots|indicators``: jobs over a GeoParquet export on a Dask cluster."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from gis_grid.cli.common import (
    Format,
    FormatOpt,
    app,
    err,
    fail_cleanly,
    out,
    print_json,
    progress_bar,
    tr,
)

batch_app = typer.Typer(
    help="Jobs over a GeoParquet export ('export --format parquet') on a Dask cluster: "
    "the same answers as one process, partition by partition.",
    no_args_is_help=True,
)
app.add_typer(batch_app, name="batch")

SourceArg = Annotated[
    Path, typer.Argument(help="A folder written by 'gis-grid export STORE DIR --format parquet'.")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Where to write the answer (must not exist).")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(help="A running Dask scheduler (tcp://HOST:8786); default: a local cluster."),
]
LocalOpt = Annotated[
    int, typer.Option("--local", help="Workers of the local cluster (one process each).")
]
MemoryOpt = Annotated[
    str, typer.Option(help="Memory limit per local worker (e.g. 2GB; auto: the machine's share).")
]


@contextmanager
def _job(scheduler: str | None, local: int, memory: str, what: str, parts: int):
    """A Dask client for a job (its dashboard named on stderr) and a step per partition done."""
    from gis_grid.batch.jobs import connect

    client, cluster = connect(scheduler, local, memory_limit=memory)
    try:
        err.print(tr("dask_dashboard", link=client.dashboard_link or "—"))
        with progress_bar() as bar:
            task = bar.add_task(what, total=parts)
            yield client, lambda _name: bar.advance(task)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@batch_app.command("link")
@fail_cleanly
def link(
    source: SourceArg,
    out_path: OutOpt,
    layer: Annotated[str, typer.Option(help="The layer to link.")] = "incidents",
    scheduler: SchedulerOpt = None,
    local: LocalOpt = 2,
    memory_limit: MemoryOpt = "auto",
    fmt: FormatOpt = Format.table,
) -> None:
    """Link every feature of a layer to its grid chain (community down to unit)."""
    from gis_grid.batch.jobs import link as run
    from gis_grid.sources.parquet import read_manifest

    manifest = read_manifest(source)  # a missing partition is refused before a cluster starts
    parts = len(manifest["tables"].get(f"layers/{layer}", {}).get("partitions", {}))
    with _job(scheduler, local, memory_limit, tr("linking"), parts) as (client, step):
        result = run(source, out_path, layer=layer, client=client, progress=step)
    if fmt is Format.json:
        print_json(result)
        return
    out.print(
        tr("batch_linked", n=f"{result['features']:,}", parts=result["partitions"], out=out_path)
    )


@batch_app.command("hotspots")
@fail_cleanly
def hotspots(
    source: SourceArg,
    out_path: OutOpt,
    layer: Annotated[str, typer.Option(help="A point layer with a time.")] = "incidents",
    since: Annotated[
        str | None, typer.Option(help="Window start (default: 7 days before until).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Window end (default: each community's latest).")
    ] = None,
    by: Annotated[str, typer.Option(help="h3, or a grid level (area, courtyard …).")] = "h3",
    resolution: Annotated[int, typer.Option(help="H3 resolution.")] = 11,
    permutations: Annotated[
        int, typer.Option(help="Conditional permutations (0: analytic p).")
    ] = 999,
    seed: Annotated[
        int, typer.Option(help="The permutations' seed (as a single-process run).")
    ] = 12345,
    scheduler: SchedulerOpt = None,
    local: LocalOpt = 2,
    memory_limit: MemoryOpt = "auto",
    fmt: FormatOpt = Format.table,
) -> None:
    """Gi* hot spots of every community, one task per community."""
    from gis_grid.batch.jobs import communities_of
    from gis_grid.batch.jobs import hotspots as run

    n = len(communities_of(source))
    with _job(scheduler, local, memory_limit, tr("finding_hotspots"), n) as (client, step):
        result = run(
            source,
            out_path,
            layer=layer,
            since=since,
            until=until,
            by=by,
            resolution=resolution,
            permutations=permutations,
            seed=seed,
            client=client,
            progress=step,
        )
    if fmt is Format.json:
        print_json({k: v for k, v in result.items() if k != "summaries"})
        return
    out.print(
        tr(
            "batch_hotspots",
            communities=result["communities"],
            hot=result["hot"],
            cold=result["cold"],
            out=out_path,
        )
    )


@batch_app.command("indicators")
@fail_cleanly
def indicators(
    source: SourceArg,
    out_path: OutOpt,
    since: Annotated[dt.datetime, typer.Option(help="Cases reported from (local time).")],
    until: Annotated[dt.datetime, typer.Option(help="… until (exclusive).")],
    by: Annotated[str, typer.Option(help="A grid level: community, area, courtyard …")] = "area",
    at: Annotated[
        dt.datetime | None, typer.Option("--now", help="Overdue as of (default: now).")
    ] = None,
    scheduler: SchedulerOpt = None,
    local: LocalOpt = 2,
    memory_limit: MemoryOpt = "auto",
    fmt: FormatOpt = Format.table,
) -> None:
    """Case indicators per grid of a level, every community a task."""
    from gis_grid.batch.jobs import communities_of
    from gis_grid.batch.jobs import indicators as run

    n = len(communities_of(source))
    with _job(scheduler, local, memory_limit, tr("counting_cases"), n) as (client, step):
        table = run(
            source, out_path, since=since, until=until, by=by, at=at, client=client, progress=step
        )
    if fmt is Format.json:
        print_json({"rows": len(table), "out": str(out_path)})
        return
    out.print(tr("batch_indicators", rows=len(table), out=out_path))

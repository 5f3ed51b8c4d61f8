"""A whole store as GeoParquet, partitioned by community: out, and back in.

The folder ``gis-grid export STORE DIR --format parquet`` writes::

    DIR/manifest.json                                   what is there, row counts, columns
    DIR/grids/community_code=211281001007/part-0.parquet
    DIR/staff.parquet, DIR/assignments.parquet          small reference tables
    DIR/layers/incidents/community_code=…/part-0.parquet
    DIR/case_log/community_code=…/part-0.parquet

Each table with geometry is GeoParquet (geopandas: WKB, the ``geo``
metadata with its CRS, EPSG:4326), Hive-partitioned by community code (the
distribution key of a city deployment; features in no community go to
``community_code=__HIVE_DEFAULT_PARTITION__``) and sorted inside each
partition along a Hilbert curve, so a reader asking for a box touches few
row groups. QGIS opens any file; DuckDB reads a table whole with
``read_parquet('DIR/layers/incidents/*/*.parquet', hive_partitioning = true)``;
``dask_geopandas.read_parquet`` reads it partition by partition (the batch
jobs, :mod:`gis_grid.batch`).

An export is written to a sibling folder and moved into place when
complete, so a killed export leaves nothing that looks whole. An import
checks everything first (every partition the manifest lists is there, every
file has the manifest's columns) and refuses, writing nothing, when a part
is missing or differs; then it loads as ``gis-grid copy`` does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.domain.model import CASE_LAYER
from gis_grid.geo.crs import WGS84

FORMAT = "gis-grid geoparquet"
VERSION = 1
MANIFEST = "manifest.json"
#: The partition of rows with no community (Hive's name for a missing key).
NO_COMMUNITY = "__HIVE_DEFAULT_PARTITION__"
PART = "part-0.parquet"


def _sorted(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Rows along a Hilbert curve over the partition's own extent (nearby rows together)."""
    if len(frame) < 2:
        return frame
    order = np.argsort(frame.geometry.hilbert_distance(), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _columns(schema) -> dict[str, str]:
    """Column → Arrow type of a Parquet file's schema."""
    return {f.name: str(f.type) for f in schema if f.name != "__index_level_0__"}


def _typed(frame):
    """Text and flag columns typed as such, so a partition where they are all empty has them too.

    (An object column of Nones would be written as Arrow ``null`` in that one
    file, and the partitions would no longer share one schema.)
    """
    frame = frame.copy()
    for column in frame.columns:
        if column == "geometry" or frame[column].dtype != object:
            continue
        values = frame[column].dropna()
        if values.map(lambda v: isinstance(v, bool | np.bool_)).all() and len(values):
            frame[column] = frame[column].astype("boolean")
        elif values.map(lambda v: isinstance(v, str)).all():
            frame[column] = frame[column].astype("string")
    return frame


def _write_partitioned(frame, folder: Path, key: pd.Series, geo: bool) -> dict:
    """One file per community (key), sorted along the curve; row counts and columns."""
    import pyarrow.parquet as pq

    frame = _typed(frame)
    counts, columns = {}, None
    key = key.fillna(NO_COMMUNITY).astype(str).to_numpy()
    for community in sorted(set(key)):
        part = frame.loc[key == community].reset_index(drop=True)
        target = folder / f"community_code={community}"
        target.mkdir(parents=True)
        path = target / PART
        if geo:
            _sorted(part).to_parquet(path, index=False, schema_version="1.0.0")
        else:
            part.to_parquet(path, index=False)
        counts[community] = len(part)
        columns = columns or _columns(pq.read_schema(path))
    return {"partitioned_by": "community_code", "partitions": counts, "columns": columns or {}}


def export_parquet(store, folder, *, progress=None) -> dict:
    """Write the whole store to ``folder`` as GeoParquet (see the module); the manifest."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise InputError(say("problem_export_folder_exists", path=str(folder)))
    staging = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tables: dict = {}
    try:
        step = progress or (lambda name: None)
        step("grids")
        grids = store.grids()
        grids = gpd.GeoDataFrame(grids, geometry="geometry", crs=WGS84)
        tables["grids"] = _write_partitioned(
            grids, staging / "grids", grids["code"].astype(str).str.slice(0, 12), geo=True
        )
        for name, frame in (("staff", store.staff()), ("assignments", store.assignments())):
            step(name)
            frame.to_parquet(staging / f"{name}.parquet", index=False)
            tables[name] = {
                "rows": len(frame),
                "columns": {c: str(t) for c, t in frame.dtypes.items()},
            }
        for name, schema in store.layers().items():
            step(name)
            feats = store.features(name)
            feats = gpd.GeoDataFrame(feats, geometry="geometry", crs=WGS84)
            entry = _write_partitioned(
                feats.drop(columns="community_code"),
                staging / "layers" / name,
                feats["community_code"],
                geo=True,
            )
            entry["schema"] = json.loads(schema.to_json())
            tables[f"layers/{name}"] = entry
            if name == CASE_LAYER:
                step("case_log")
                log = store.case_log()
                owner = dict(zip(feats["id"].astype(str), feats["community_code"], strict=True))
                key = log["case_id"].astype(str).map(owner)
                if len(log):
                    tables["case_log"] = _write_partitioned(
                        log, staging / "case_log", key, geo=False
                    )
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "written_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": getattr(store, "label", ""),
            "crs": "EPSG:4326",
            "tables": tables,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def is_export(path) -> bool:
    """Whether ``path`` is a folder written by :func:`export_parquet`."""
    return Path(path).is_dir() and (Path(path) / MANIFEST).exists()


def read_manifest(folder) -> dict:
    """The manifest of an export, checked: every partition there, every file's columns as listed.

    Raises
    ------
    InputError
        Not an export, a newer format, a partition missing or a file whose
        columns differ from the manifest's (named, with what differs).
    """
    import pyarrow.parquet as pq

    folder = Path(folder)
    path = folder / MANIFEST
    if not path.exists():
        raise InputError(say("problem_not_an_export", path=str(folder)))
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(say("problem_manifest_unreadable", path=str(path), why=str(exc))) from exc
    if manifest.get("format") != FORMAT or int(manifest.get("version", 0)) > VERSION:
        raise InputError(
            say("problem_manifest_format", path=str(path), version=manifest.get("version"))
        )
    for table, entry in manifest["tables"].items():
        files = (
            [folder / table / f"community_code={c}" / PART for c in entry["partitions"]]
            if "partitions" in entry
            else [folder / f"{table}.parquet"]
        )
        for file in files:
            if not file.exists():
                raise InputError(
                    say(
                        "problem_partition_missing", path=str(file.relative_to(folder)), table=table
                    )
                )
            if "partitions" not in entry:
                continue
            found = _columns(pq.read_schema(file))
            if found != entry["columns"]:
                differ = sorted(
                    set(found.items()) ^ set(entry["columns"].items()), key=lambda kv: kv[0]
                )
                raise InputError(
                    say(
                        "problem_partition_schema",
                        path=str(file.relative_to(folder)),
                        table=table,
                        differ=", ".join(f"{k} {v}" for k, v in differ[:6]),
                    )
                )
    return manifest


def read_table(folder, table: str, manifest: dict | None = None, communities=None):
    """One table of an export (GeoDataFrame where it has geometry), its partitions joined.

    ``communities`` keeps those partitions only; the partition key comes back
    as ``community_code`` (features and the case log), as it was stored.
    """
    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    entry = manifest["tables"][table]
    if "partitions" not in entry:
        return pd.read_parquet(folder / f"{table}.parquet")
    frames = []
    for community in entry["partitions"]:
        if communities is not None and community not in communities:
            continue
        path = folder / table / f"community_code={community}" / PART
        geo = "geometry" in entry["columns"]
        part = gpd.read_parquet(path) if geo else pd.read_parquet(path)
        if table != "grids":
            part["community_code"] = None if community == NO_COMMUNITY else community
        frames.append(part)
    if not frames:
        return None
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=WGS84) if "geometry" in out else out


def import_parquet(store, folder, *, communities=None, progress=None) -> dict:
    """Load an export into an empty store (grids, staff, assignments, then each layer).

    Everything is checked before anything is written (:func:`read_manifest`);
    the load itself runs as ``gis-grid copy``'s steps, each a transaction, so
    a killed import is finished by running it again. ``communities`` loads
    those partitions only (a batch job's one community).
    """
    from gis_grid.layers.features import FeatureSchema
    from gis_grid.store import ChangeSet
    from gis_grid.store.base import resumable_load

    folder = Path(folder)
    manifest = read_manifest(folder)
    resuming = store.load_marker() is not None
    if not resuming and (sum(store.stats()["grids"].values()) or store.stats()["staff"]):
        raise InputError(say("problem_import_target", path=store.label))
    tables = manifest["tables"]

    def grids() -> int:
        if sum(store.stats()["grids"].values()):
            return sum(store.stats()["grids"].values())
        frame = read_table(folder, "grids", manifest, communities)
        assignments = read_table(folder, "assignments", manifest)
        staff = read_table(folder, "staff", manifest)
        if communities is not None:  # their grids' people only, not the city's
            assignments = assignments.loc[assignments["grid_code"].isin(frame["code"])]
            staff = staff.loc[staff["staff_id"].isin(assignments["staff_id"])]
        changes = ChangeSet(frame, staff, assignments, accept_problems=True)
        return store.apply(changes).grids

    def layer(name):
        schema = FeatureSchema.from_json(json.dumps(tables[f"layers/{name}"]["schema"]))

        def write() -> int:
            frame = read_table(folder, f"layers/{name}", manifest, communities)
            if frame is None:  # none of its features in these communities
                return 0
            log = (
                read_table(folder, "case_log", manifest, communities)
                if name == CASE_LAYER and "case_log" in tables
                else None
            )
            if log is not None:
                log = log.drop(columns="community_code")
            frame = frame[[*schema.columns, "geometry"]]
            return store.write_features(schema, frame, mode="replace", log=log).written

        return write

    names = [t.split("/", 1)[1] for t in tables if t.startswith("layers/")]
    steps = {"grids": grids} | {n: layer(n) for n in names}
    if progress:
        progress("grids")
    return resumable_load(
        store,
        "import-parquet",
        f"gis-grid import {store.label} {folder}",
        steps,
        params={"source": str(folder.resolve()), "communities": communities},
    )

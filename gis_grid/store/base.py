"""The ``Store`` protocol every store implements, and what a write carries.

A store holds three tables — grids (polygons in EPSG:4326), staff, and
assignments of staff to grids — and answers the questions the platform asks.
Writes go through :meth:`Store.apply` with a :class:`ChangeSet`: the store
opens one transaction, hands the current state of the affected communities to
:func:`gis_grid.store.checks.check_changeset`, writes, recomputes the workload
aggregates and commits — or rolls back and raises, leaving nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import (
    CHAIN_COLUMNS,
    CODE_LENGTHS,
    LINK_COLUMNS,
    Level,
    level_of_code,
    utc_now,
)
from gis_grid.grids.topology import ValidationOptions
from gis_grid.layers.features import FeatureSchema


@dataclass
class ChangeSet:
    """Rows to add, all or nothing.

    Attributes
    ----------
    grids : geopandas.GeoDataFrame, optional
        Columns as :data:`gis_grid.domain.model.GRID_COLUMNS` (``parent_code``,
        ``version`` and ``updated_at`` are filled in), EPSG:4326.
    staff : pandas.DataFrame, optional
        Columns ``staff_id``, ``name``, ``role``, ``phone``.
    assignments : pandas.DataFrame, optional
        Columns ``staff_id``, ``grid_code``, ``role``, ``start_date``, ``end_date``.
    accept_problems : bool
        Write even when the new grids overlap siblings or leave their parent
        (they are then reported by ``validate``). Invalid geometry, duplicate
        codes and orphans are always refused.
    """

    grids: gpd.GeoDataFrame | None = None
    staff: pd.DataFrame | None = None
    assignments: pd.DataFrame | None = None
    accept_problems: bool = False


@dataclass
class WriteReport:
    """What a successful write did."""

    grids: int = 0
    staff: int = 0
    assignments: int = 0
    communities: list[str] = field(default_factory=list)
    #: Problems that did not block the write (gaps, no_staff, or all when accepted).
    warnings: gpd.GeoDataFrame | None = None


@dataclass
class FeatureReport:
    """What a feature import did."""

    layer: str
    written: int = 0
    replaced: int = 0
    #: Features outside every grid (a coverage hole in itself).
    unowned: int = 0


@runtime_checkable
class Store(Protocol):
    """What every store offers. See :class:`gis_grid.store.gpkg.GeoPackageStore`."""

    url: str

    def grids(
        self,
        *,
        level: Level | None = None,
        codes: ArrayLike | None = None,
        under: ArrayLike | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        geometry: bool = True,
    ) -> gpd.GeoDataFrame | pd.DataFrame:
        """Grids filtered by level, codes, subtrees and bounding box.

        ``under`` names codes whose grids and descendants to return; ``bbox``
        is (minx, miny, maxx, maxy) in lon/lat. Without ``geometry`` a plain
        DataFrame of attributes is returned.
        """
        ...

    def staff(self, staff_ids: ArrayLike | None = None) -> pd.DataFrame:
        """Staff members, optionally only the given ids."""
        ...

    def assignments(
        self, *, grid_codes: ArrayLike | None = None, staff_ids: ArrayLike | None = None
    ) -> pd.DataFrame:
        """Assignments of staff to grids, filtered by grid or by staff."""
        ...

    def apply(self, changes: ChangeSet, options: ValidationOptions | None = None) -> WriteReport:
        """Write a change set atomically; raise and change nothing on any problem.

        ``options`` are the tolerances of the topology checks the write runs.
        """
        ...

    def update(
        self, edits: gpd.GeoDataFrame, options: ValidationOptions | None = None
    ) -> WriteReport:
        """Edit existing grids, each as a new version; all or nothing.

        ``edits`` has ``code``, ``version`` (the version the edit is based on)
        and the columns to change (``name``, aggregates, geometry). An edit
        based on a stale version raises :class:`~gis_grid.domain.errors.ConflictError`;
        one that breaks the topology raises :class:`~gis_grid.domain.errors.TopologyError`.
        """
        ...

    def history(self, code: str) -> gpd.GeoDataFrame:
        """Earlier versions of a grid, oldest first (``replaced_at`` says when)."""
        ...

    def lookup(self, lon: ArrayLike, lat: ArrayLike) -> pd.DataFrame:
        """For each point, the code of the grid containing it at each level.

        One row per point, one column per level (``community`` … ``unit``),
        ``None`` where no grid of that level contains the point.
        """
        ...

    def validate(self, options: ValidationOptions | None = None) -> gpd.GeoDataFrame:
        """All topology problems of the store (see :func:`gis_grid.grids.topology.validate`)."""
        ...

    def layers(self) -> dict[str, FeatureSchema]:
        """The feature layers the store holds, by name, as they were registered."""
        ...

    def write_features(
        self, schema: FeatureSchema, features: gpd.GeoDataFrame, *, mode: str = "append"
    ) -> FeatureReport:
        """Write checked features (see :func:`gis_grid.layers.features.normalise_features`), linked.

        Each feature is linked to the grids containing its link point (the
        store's ``lookup`` rule). ``mode``: ``append`` refuses ids already
        stored, ``upsert`` replaces them, ``replace`` empties the layer first.
        All or nothing.
        """
        ...

    def features(
        self,
        layer: str,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        under: ArrayLike | None = None,
        where: dict | None = None,
    ) -> gpd.GeoDataFrame:
        """A layer's features with their grid chain, filtered.

        ``under`` keeps features linked to any of the given grids (at the
        grid's level); ``where`` maps a column to a value, a list of values, or
        a ``(low, high)`` tuple (inclusive; None for open). Unknown layers raise
        :class:`~gis_grid.domain.errors.NotFoundError`.
        """
        ...

    def stats(self) -> dict:
        """Counts per level, workload totals, staff and assignment counts."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def resumable_load(store, operation: str, command: str, steps: dict, *, params=None) -> dict:
    """Run a whole load as named steps, noted in the store, so a killed load is finished later.

    Each step (name → a function that writes and returns a count) is one
    transaction of its own; the store notes which are done
    (:meth:`mark_load`). Run again after a kill, the same load (same
    ``operation`` and ``params``) skips what is done and finishes the rest;
    meanwhile ``validate`` reports the store as incomplete. Steps must be safe
    to run again (a layer is written with ``mode="replace"``; a step that
    finds its rows already written counts them).
    """
    marker = store.load_marker()
    if marker is not None and (
        marker.get("operation") != operation or marker.get("params") != params
    ):
        raise InputError(
            say(
                "problem_unfinished_load",
                store=store.label,
                operation=marker.get("operation"),
                command=marker.get("command"),
            )
        )
    if marker is None:
        marker = {
            "operation": operation,
            "command": command,
            "params": params,
            "steps": list(steps),
            "done": [],
            "counts": {},
            "started": utc_now(),
        }
        store.mark_load(marker)
    for name, step in steps.items():
        if name in marker["done"]:
            continue
        marker["counts"][name] = step()
        marker["done"].append(name)
        store.mark_load(marker)
    store.mark_load(None)
    return marker["counts"]


def with_load_problem(problems: gpd.GeoDataFrame, marker: dict | None) -> gpd.GeoDataFrame:
    """The validation problems, plus one error while a load is still unfinished."""
    if not marker:
        return problems
    left = [s for s in marker.get("steps", []) if s not in marker.get("done", [])]
    row = {
        "kind": "incomplete_load",
        "severity": "error",
        "level": None,
        "codes": [],
        "area_m2": None,
        "detail": (
            f"a {marker.get('operation', 'load')} started {marker.get('started', '?')} did not "
            f"finish: {', '.join(left) or 'its last step'} still to write; run the same "
            f"command again to finish it ({marker.get('command', '')})".rstrip(" ()")
        ),
    }
    extra = gpd.GeoDataFrame([row], geometry=[None], crs=problems.crs)
    return gpd.GeoDataFrame(pd.concat([extra, problems], ignore_index=True), crs=problems.crs)


def shown_url(url) -> str:
    """A store's URL as messages, logs and banners show it: never with a password.

    Examples
    --------
    >>> shown_url("postgresql://gis:s3cret@db.intra:5432/city")
    'postgresql://gis@db.intra:5432/city'
    >>> shown_url("out/demo.gpkg")
    'out/demo.gpkg'
    """
    from urllib.parse import urlsplit

    text = str(url)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"


class StoreBase:
    """What every store class shares: ``with store: ...`` closes it."""

    url: str

    @property
    def label(self) -> str:
        """The store as messages to users name it.

        A file's name, or a database's URL without its password: never a
        server path or a credential.
        """
        if "://" in self.url:
            return shown_url(self.url)
        from pathlib import Path

        return Path(self.url).name

    #: Advanced by every user change made through this object (revocations):
    #: what a process caching checked tokens keys them by.
    user_epoch: int = 0

    def close(self) -> None:
        """Release the store's connections (each store defines it)."""
        raise NotImplementedError

    def rewrite(self, change, options=None):
        """Replace whole subtrees of one community as one revision; all or nothing.

        The store's ``_rewrite`` plans the change inside its write transaction
        (:func:`gis_grid.store.revisions.plan_rewrite`) and writes it; a dry run
        is planned and checked, then rolled back, and answers what it would write.
        """
        from gis_grid.store.revisions import DryRun

        community = str(change.remove[0])[:12] if change.remove else ""
        try:
            return self._rewrite(change, community, utc_now(), options)
        except DryRun as checked:  # planned and validated, rolled back
            return checked.revision

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def records(frame: pd.DataFrame, columns) -> list[tuple]:
    """Rows as plain tuples for a database driver, missing values as None.

    Converting whole columns first is much faster than iterating rows of
    pandas' arrow-backed strings.
    """
    values = [frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in columns]
    return list(zip(*values, strict=True))


def log_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Case log rows typed alike from either store: times as ISO text, flags as booleans."""
    from gis_grid.domain.model import CASE_LOG_COLUMNS

    out = pd.DataFrame({c: frame[c] if c in frame else None for c in CASE_LOG_COLUMNS})
    out = out.astype(object).where(out.notna(), None)
    for c in ("at", "received_at", "due"):
        out[c] = [None if v is None else str(v).replace(" ", "T")[:19] for v in out[c]]
    out["seq"] = [int(v) for v in out["seq"]]
    out["on_time"] = [None if v is None else bool(v) for v in out["on_time"]]
    return out


#: Case indicators' sums per group, in SQL both stores speak: ``{key}`` is the group's
#: expression, ``{p}`` a placeholder (in order: now, since, until; the open statuses
#: are written in). Counters kept on each case (reworks, extensions, escalation, steps
#: timed and on time) make it one pass over the cases, none over the log.
CASE_GROUP_SQL = (
    "SELECT {key} AS key, count(*), "
    "sum(CASE WHEN accepted_at IS NOT NULL THEN 1 ELSE 0 END), "
    "sum(CASE WHEN status = 'closed' THEN 1 ELSE 0 END), "
    "sum(CASE WHEN handled_at IS NOT NULL OR coalesce(reworks, 0) > 0 THEN 1 ELSE 0 END), "
    "sum(CASE WHEN coalesce(reworks, 0) > 0 THEN 1 ELSE 0 END), "
    "sum(CASE WHEN coalesce(extensions, 0) > 0 THEN 1 ELSE 0 END), "
    "sum(CASE WHEN coalesce(escalation, 0) > 0 THEN 1 ELSE 0 END), "
    "sum(CASE WHEN status IN ({open}) AND deadline < {p} THEN 1 ELSE 0 END), "
    "sum(satisfaction), count(satisfaction), "
    "sum(CASE WHEN status = 'closed' AND coalesce(escalation, 0) = 0 THEN 1 ELSE 0 END), "
    "sum(coalesce(steps_timed, 0)), sum(coalesce(steps_on_time, 0)) "
    'FROM "{table}" WHERE reported_at >= {p} AND reported_at < {p} GROUP BY 1'
)
CASE_GROUP_COLUMNS = (
    "key",
    "reported",
    "accepted",
    "closed",
    "handled",
    "reworked",
    "extended",
    "escalated",
    "overdue",
    "sat_sum",
    "sat_n",
    "closed_in_grid_n",
    "timed",
    "on_time",
)


def case_owner_sql(row: str = "") -> str:
    """The grid that owns a case in SQL: its owner, else the deepest grid of its chain.

    ``row``: the name the case's row goes by in the query (``old.``), if any. A
    community code of ``''`` is PostGIS's partition key of no community.
    """
    return (
        f"coalesce(nullif({row}owner_code, ''), {row}unit_code, {row}building_code, "
        f"{row}courtyard_code, {row}area_code, nullif({row}community_code, ''))"
    )


CASE_OWNER_SQL = case_owner_sql()
#: Which group expression each grouping takes.
CASE_GROUP_KEYS = {
    **{f"{lv.key}": f"{lv.key}_code" for lv in Level},
    "community": "nullif(community_code, '')",
    "department": "department",
    "owner": CASE_OWNER_SQL,
}


def case_group_frame(rows) -> pd.DataFrame:
    """Rows of :meth:`case_groups` typed alike from either store."""
    frame = pd.DataFrame(rows, columns=list(CASE_GROUP_COLUMNS))
    for c in CASE_GROUP_COLUMNS[1:]:
        frame[c] = pd.to_numeric(frame[c]).fillna(0)
    return frame


def late_group_frame(rows) -> pd.DataFrame:
    """Rows of :meth:`late_groups`: ``owner``, ``category``, ``status``, ``cases``."""
    frame = pd.DataFrame(rows, columns=["owner", "category", "status", "cases"])
    frame["cases"] = pd.to_numeric(frame["cases"]).astype("int64")
    return frame


def late_terms(p: str) -> str:
    """The SQL condition of a case waiting for a step past its deadline (``p``: placeholder)."""
    states = ", ".join(f"'{s}'" for s in LATE_STATUSES)
    return f"deadline < {p} AND status IN ({states})"


#: The statuses a case can be late in (waiting for a step).
LATE_STATUSES = ("reported", "accepted", "dispatched", "handled", "verified")


def with_communities(log: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Log rows with the community of their case, where the log does not name one."""
    owner = dict(zip(rows["id"].astype(str), rows["community_code"], strict=True))
    log = log.copy()
    known = log["community_code"] if "community_code" in log else pd.Series(None, index=log.index)
    log["community_code"] = known.where(known.notna(), log["case_id"].astype(str).map(owner))
    return log


def empty_lookup(n: int) -> pd.DataFrame:
    """A lookup answer with no grid for any of ``n`` points."""
    return pd.DataFrame({lv.key: np.full(n, None, dtype=object) for lv in Level})


# -- feature layers: what both stores share ----------------------------------

#: Table names a layer may not take.
RESERVED = frozenset(
    {"grids", "grid_history", "grid_parts", "staff", "assignments", "layers", "alembic_version"}
)
LAYER_MODES = ("append", "upsert", "replace")


def check_layer(schema: FeatureSchema, mode: str) -> None:
    """Refuse a layer name that is not a plain identifier or is taken by the core."""
    import re

    if (
        not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", schema.name)
        or schema.name in RESERVED
        or (schema.name.startswith(("gis_grid", "gpkg", "rtree", "pg_")))
    ):
        raise InputError(say("problem_layer_name", name=repr(schema.name)))
    if mode not in LAYER_MODES:
        raise InputError(say("problem_write_mode", mode=repr(mode), modes=", ".join(LAYER_MODES)))


def registered(layers: dict[str, FeatureSchema], name: str) -> FeatureSchema:
    """The stored schema of a layer, or a NotFoundError naming the layers there are."""
    if name not in layers:
        have = ", ".join(sorted(layers)) or "none yet"
        raise NotFoundError(say("problem_store_no_layer_named", name=repr(name), have=have))
    return layers[name]


def feature_filters(
    schema: FeatureSchema, *, under: ArrayLike | None = None, where: dict | None = None
) -> list[tuple[str, str, object]]:
    """Filters as (column, operator, value) with checked column names.

    Operators: ``=``, ``in`` (list), ``>=``, ``<=``, ``null``. ``under``
    becomes ``in`` filters on the chain column of each code's level, OR-ed by
    the store (returned with the operator ``under``).
    """
    columns = set(schema.columns) | set(LINK_COLUMNS)
    out: list[tuple[str, str, object]] = []
    for column, value in (where or {}).items():
        if column not in columns:
            raise InputError(
                say(
                    "problem_no_column",
                    layer=repr(schema.name),
                    column=repr(column),
                    columns=", ".join(sorted(columns)),
                )
            )
        if value is None:
            out.append((column, "null", None))
        elif isinstance(value, tuple):
            if len(value) != 2:
                raise InputError(say("problem_range_form", column=repr(column)))
            if value[0] is not None:
                out.append((column, ">=", value[0]))
            if value[1] is not None:
                out.append((column, "<=", value[1]))
        elif isinstance(value, list | set | np.ndarray | pd.Series | pd.Index):
            out.append((column, "in", [v.item() if hasattr(v, "item") else v for v in value]))
        else:
            out.append((column, "=", value))
    if under is not None:
        by_level: dict[str, list[str]] = {}
        for code in np.atleast_1d(under):
            level = level_of_code(str(code))
            by_level.setdefault(f"{level.key}_code", []).append(str(code))
        out.append(("", "under", by_level))
    return out


def chain_frame(lookup: pd.DataFrame) -> pd.DataFrame:
    """A store's lookup answer as the chain columns of a layer table."""
    return pd.DataFrame(
        {
            f"{lv.key}_code": lookup[lv.key].astype(object).where(lookup[lv.key].notna(), None)
            for lv in Level
        }
    )


def link_boxes(grids: gpd.GeoDataFrame) -> list[tuple[float, float, float, float]]:
    """Bounding boxes (one per community) of grids just written or edited.

    Features whose link point falls in one of them are linked again.
    """
    if grids is None or not len(grids):
        return []
    community = grids["code"].astype(str).str.slice(0, 12).to_numpy()
    bounds = pd.DataFrame(shapely.bounds(grids.geometry.to_numpy()), columns=list("abcd"))
    bounds["community"] = community
    agg = bounds.groupby("community").agg(
        a=("a", "min"), b=("b", "min"), c=("c", "max"), d=("d", "max")
    )
    return [tuple(map(float, row)) for row in agg.itertuples(index=False, name=None)]


#: The time zone the platform's local times are in (event times are local wall-clock time).
LOCAL_ZONE = "Asia/Shanghai"


def local_now() -> str:
    """Now (the revision log's clock) as event times are kept: local, ``YYYY-MM-DDTHH:MM:SS``."""
    return pd.Timestamp(utc_now()).tz_convert(LOCAL_ZONE).strftime("%Y-%m-%dT%H:%M:%S")


def event_column(schema) -> str | None:
    """The time of an event layer (points with a time: an incident's report time), else None.

    An event keeps the grids it fell in on its day when boundaries move later
    (:func:`relinked`); cameras, lamps and zones follow the grids as they are.
    """
    if schema is None or schema.geometry != "Point":
        return None
    return next((c for c, k in schema.kinds().items() if k == "time"), None)


def relinked(
    candidates: pd.DataFrame,
    grids: gpd.GeoDataFrame,
    *,
    since: str | None = None,
    removed: Iterable[str] = (),
) -> pd.DataFrame:
    """The candidates (``lon``, ``lat``, chain columns) whose chain changes, with the new chain.

    ``grids`` are all grids around the candidates (read inside the writing
    transaction); the rule is :class:`~gis_grid.grids.lookup.GridIndex`'s.

    History stays: a candidate with an ``event_time`` before ``since`` (the
    boundary change, local time) that is already linked keeps the grids it
    fell in on its day, so last week's counts per grid do not move when a
    boundary moves today. Its ``owner_code`` (a case's owner), when that grid
    was ``removed``, passes to the grid of the same level that now covers the
    point: an open case is never left with a grid that no longer exists.
    """
    from gis_grid.grids.lookup import GridIndex

    if not len(candidates):
        return candidates.iloc[:0]
    if len(grids):
        index = GridIndex(grids["code"].to_numpy(), grids.geometry.to_numpy())
        new = chain_frame(
            index.lookup(candidates["lon"].to_numpy(float), candidates["lat"].to_numpy(float))
        )
    else:
        new = chain_frame(empty_lookup(len(candidates)))
    new.index = candidates.index
    old = (
        candidates[list(CHAIN_COLUMNS)]
        .astype(object)
        .where(candidates[list(CHAIN_COLUMNS)].notna(), None)
    )
    columns = list(CHAIN_COLUMNS)
    if "owner_code" in candidates:
        owner = (
            candidates["owner_code"].astype(object).where(candidates["owner_code"].notna(), None)
        )
        gone = owner.isin(set(removed)).to_numpy()
        moved = owner.copy()
        for column in CHAIN_COLUMNS:
            width = CODE_LENGTHS[Level.parse(column.removesuffix("_code"))]
            at = gone & (owner.str.len() == width).fillna(False).to_numpy()
            moved[at] = new.loc[at, column]
        new["owner_code"] = moved
        old = old.assign(owner_code=owner)
        columns.append("owner_code")
    if since is not None and "event_time" in candidates:
        times = candidates["event_time"]
        past = (times.notna() & (times.astype(str) < since)).to_numpy()
        linked = candidates["community_code"].notna().to_numpy()
        keep = past & linked
        new.loc[keep, list(CHAIN_COLUMNS)] = old.loc[keep, list(CHAIN_COLUMNS)]
    changed = (old[columns].fillna("") != new[columns].fillna("")).any(axis=1)
    out = candidates.loc[changed].copy()
    out[columns] = new.loc[changed, columns]
    return out


#: What a stored proposal's record holds (its grids are read on their own).
PROPOSAL_COLUMNS = (
    "id",
    "parent_code",
    "operation",
    "created_at",
    "author",
    "status",
    "revision",
    "params",
    "metrics",
)


def proposal_frame(rows: list[tuple], columns=PROPOSAL_COLUMNS) -> pd.DataFrame:
    """Proposal rows as a frame, their JSON columns decoded."""
    import json

    frame = pd.DataFrame(rows, columns=list(columns))
    for col in ("params", "metrics"):
        frame[col] = frame[col].map(json.loads)
    return frame


def proposal_id(pid) -> int:
    """A proposal id as the stores take it (ids are positive 64-bit integers)."""
    pid = int(pid)
    if not 0 < pid < 2**63:
        raise NotFoundError(say("problem_no_proposal", pid=pid))
    return pid


def proposal_record(rows: list[tuple], pid) -> tuple[dict, bytes]:
    """The record and the packed change of one proposal read with its payload (last column)."""
    if not rows:
        raise NotFoundError(say("problem_no_proposal", pid=pid))
    frame = proposal_frame([r[:-1] for r in rows])
    return frame.iloc[0].to_dict(), bytes(rows[0][-1])


#: The columns a revision is written with, in order (``id`` is the store's).
REVISION_WRITE = (
    "community_code",
    "operation",
    "summary",
    "author",
    "created_at",
    "undoes",
    "grids_changed",
    "payload",
)


def revision_row(
    community: str,
    operation: str,
    payload: bytes,
    *,
    changed: int,
    summary: str = "",
    author: str = "",
    undoes: int | None = None,
) -> tuple:
    """The values of one revision-log row, in :data:`REVISION_WRITE` order."""
    return (community, operation, summary, author, utc_now(), undoes, changed, payload)


#: The columns a proposal is written with, in order (``id`` and ``status`` are the store's).
PROPOSAL_WRITE = (
    "parent_code",
    "community_code",
    "operation",
    "created_at",
    "author",
    "params",
    "metrics",
    "payload",
)


def proposal_row(parent: str, operation: str, payload: bytes, params, metrics, author="") -> tuple:
    """The values of one proposal row, in :data:`PROPOSAL_WRITE` order."""
    return (
        parent,
        parent[:12],
        operation,
        utc_now(),
        author,
        json.dumps(params, ensure_ascii=False),
        json.dumps(metrics, ensure_ascii=False),
        payload,
    )


#: The columns an audit row is written with, in order (``id`` is the store's).
AUDIT_WRITE = ("at", "user_id", "role", "action", "target", "revision", "detail")


def audit_row(audit: dict, revision: int | None = None, plan=None) -> tuple:
    """The values of one audit row: who, when, what, and the grids before/after.

    ``audit`` holds ``user_id``, ``role``, ``action``, ``target`` and an
    optional ``detail``; with the ``plan`` of a rewrite, the detail also names
    the codes it replaced (before) and wrote (after).

    Examples
    --------
    >>> row = audit_row({"user_id": "u", "role": "planner", "action": "merge", "target": "x"}, 7)
    >>> row[1:6], row[6]
    (('u', 'planner', 'merge', 'x', 7), '{}')
    """
    detail = dict(audit.get("detail") or {})
    if plan is not None:
        detail["before"] = sorted([*plan.deleted["code"], *plan.updated["code"]])
        detail["after"] = sorted([*plan.updated["code"], *plan.inserted["code"]])
    return (
        utc_now(),
        audit["user_id"],
        audit["role"],
        audit["action"],
        audit["target"],
        revision,
        json.dumps(detail, ensure_ascii=False, default=str),
    )

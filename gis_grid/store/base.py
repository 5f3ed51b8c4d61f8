"""The ``Store`` protocol every store implements, and what a write carries.

A store holds three tables — grids (polygons in EPSG:4326), staff, and
assignments of staff to grids — and answers the questions the platform asks.
Writes go through :meth:`Store.apply` with a :class:`ChangeSet`: the store
opens one transaction, hands the current state of the affected communities to
:func:`gis_grid.changes.check_changeset`, writes, recomputes the workload
aggregates and commits — or rolls back and raises, leaving nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from gis_grid.model import Level
from gis_grid.topology import ValidationOptions


@dataclass
class ChangeSet:
    """Rows to add, all or nothing.

    Attributes
    ----------
    grids : geopandas.GeoDataFrame, optional
        Columns as :data:`gis_grid.model.GRID_COLUMNS` (``parent_code``,
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
        based on a stale version raises :class:`~gis_grid.errors.ConflictError`;
        one that breaks the topology raises :class:`~gis_grid.errors.TopologyError`.
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
        """All topology problems of the store (see :func:`gis_grid.topology.validate`)."""
        ...

    def stats(self) -> dict:
        """Counts per level, workload totals, staff and assignment counts."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class StoreBase:
    """What every store class shares: ``with store: ...`` closes it."""

    def close(self) -> None:
        """Release the store's connections (each store defines it)."""
        raise NotImplementedError

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


def empty_lookup(n: int) -> pd.DataFrame:
    """A lookup answer with no grid for any of ``n`` points."""
    return pd.DataFrame({lv.key: np.full(n, None, dtype=object) for lv in Level})

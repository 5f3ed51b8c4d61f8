"""Who answers for a place: the grid chain of a feature and its responsible person.

Every feature stored in a layer carries the code of the grid of each level at
its link point (:data:`gis_grid.layers.features.CHAIN_COLUMNS`). :func:`responsible`
turns those chains into the person to call: the staff member of the deepest
grid, or — when that grid has nobody — of its nearest ancestor that has
someone, flagged ``staff_fallback`` (属地兜底: where no one is named, the
territory above answers). A feature in no grid at all is ``unowned``: a hole in
coverage itself.

Which person of a grid: the one whose role fits the grid's level (unit head
for a unit, building head for a building, grid worker for an area or
courtyard, grid leader for a community), else the first assigned by staff id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gis_grid.domain.model import CHAIN_COLUMNS, CODE_LENGTHS, Level, Role
from gis_grid.grids.queries import active

#: Columns :func:`responsible` adds.
STAFF_COLUMNS = (
    "grid_code",
    "grid_level",
    "staff_id",
    "staff_name",
    "staff_role",
    "staff_phone",
    "staff_grid_code",
    "staff_fallback",
)
_FIT = {
    Level.UNIT: Role.UNIT_HEAD,
    Level.BUILDING: Role.BUILDING_HEAD,
    Level.COURTYARD: Role.GRID_WORKER,
    Level.AREA: Role.GRID_WORKER,
    Level.COMMUNITY: Role.GRID_LEADER,
}


_FIT_BY_LENGTH = {CODE_LENGTHS[lv]: role.value for lv, role in _FIT.items()}


def responsible_of(code: str, staff: list[dict]) -> dict | None:
    """The one responsible person of a grid among its staff (as :func:`people` picks).

    The person whose role fits the grid's level comes first, then by staff id.
    """
    if not staff:
        return None
    fit = _FIT_BY_LENGTH.get(len(str(code)))
    return sorted(staff, key=lambda p: (p["role"] != fit, p["staff_id"]))[0]


def deepest(chains: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The deepest grid code of each chain and its level key (None where unowned)."""
    code = np.full(len(chains), None, dtype=object)
    level = np.full(len(chains), None, dtype=object)
    for lv in reversed(list(Level)):
        col = chains[f"{lv.key}_code"].to_numpy(dtype=object)
        take = pd.isna(code) & ~pd.isna(col)
        code[take] = col[take]
        level[take] = lv.key
    return code, level


def people(store, codes) -> pd.DataFrame:
    """The one responsible person per grid code (only grids that have someone).

    Indexed by grid code, with ``staff_id``, ``staff_name``, ``staff_role``,
    ``staff_phone``.
    """
    codes = sorted({str(c) for c in codes if c is not None and not pd.isna(c)})
    empty = pd.DataFrame(columns=["staff_id", "staff_name", "staff_role", "staff_phone"])
    if not codes:
        return empty
    assigned = active(store.assignments(grid_codes=codes))
    if not len(assigned):
        return empty
    staff = store.staff(assigned["staff_id"].unique()).set_index("staff_id")
    # roles are stored by key; a code's length says its level
    fitting = assigned["grid_code"].astype(str).str.len().map(_FIT_BY_LENGTH)
    assigned = assigned.assign(fit=(assigned["role"].astype(str) == fitting).to_numpy())
    assigned = assigned.sort_values(["grid_code", "fit", "staff_id"], ascending=[True, False, True])
    first = assigned.drop_duplicates("grid_code").set_index("grid_code")
    return pd.DataFrame(
        {
            "staff_id": first["staff_id"],
            "staff_name": staff["name"].reindex(first["staff_id"]).to_numpy(),
            "staff_role": first["role"],
            "staff_phone": staff["phone"].reindex(first["staff_id"]).to_numpy(),
        }
    )


def responsible(store, chains: pd.DataFrame) -> pd.DataFrame:
    """The deepest grid and responsible person of each chain, falling back upward.

    Parameters
    ----------
    store : Store
        Where staff and assignments are read.
    chains : pandas.DataFrame
        The chain columns (``community_code`` … ``unit_code``), one row per feature.

    Returns
    -------
    pandas.DataFrame
        :data:`STAFF_COLUMNS`, same index as ``chains``. ``staff_fallback`` is
        True where the person is an ancestor's; all None where nobody up the
        chain has staff or the feature is in no grid.
    """
    code, level = deepest(chains)
    codes = pd.unique(chains[list(CHAIN_COLUMNS)].to_numpy(dtype=object).ravel())
    who = people(store, [c for c in codes if c is not None and not pd.isna(c)])
    found = np.full(len(chains), None, dtype=object)
    for lv in reversed(list(Level)):
        col = chains[f"{lv.key}_code"].to_numpy(dtype=object)
        take = pd.isna(found) & pd.Series(col).isin(who.index).to_numpy()
        found[take] = col[take]
    rows = who.reindex(pd.Series(found).fillna("").to_numpy())
    columns = {"grid_code": code, "grid_level": level}
    for col in ("staff_id", "staff_name", "staff_role", "staff_phone"):
        columns[col] = rows[col].to_numpy(dtype=object)
    columns["staff_grid_code"] = found
    out = pd.DataFrame(  # object columns: None stays None (pandas would make strings NaN)
        {
            k: pd.Series(v, dtype=object, index=chains.index).where(pd.notna(v), None)
            for k, v in columns.items()
        }
    )
    out["staff_fallback"] = ~pd.isna(found) & (found != code)
    return out


def with_staff(store, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with chain columns) plus :data:`STAFF_COLUMNS`."""
    return pd.concat([frame, responsible(store, frame)], axis=1)

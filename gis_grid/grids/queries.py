"""The questions people ask a store: where am I, and what do I cover.

Both work on any :class:`~gis_grid.store.base.Store` through its protocol
methods, so the PostGIS store answers them unchanged.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import AGGREGATES, Level, Role


def active(assignments: pd.DataFrame, on: dt.date | None = None) -> pd.DataFrame:
    """The assignments in force on a day (default today)."""
    day = (on or dt.date.today()).isoformat()
    start = assignments["start_date"].fillna("").astype(str)
    end = assignments["end_date"].where(assignments["end_date"].notna(), "9999-12-31")
    end = end.astype(str).replace("", "9999-12-31")
    return assignments.loc[(start <= day) & (end >= day)]


def staff_of(store, codes: list[str] | None) -> pd.DataFrame:
    """The staff in force on the given grids (None: all) today.

    Columns grid_code, staff_id, name, role (the assignment's), phone.
    """
    assigned = active(store.assignments(grid_codes=codes))
    if not len(assigned):
        return pd.DataFrame(columns=["grid_code", "staff_id", "name", "role", "phone"])
    people = store.staff(assigned["staff_id"].unique()).drop(columns="role")
    return assigned.merge(people, on="staff_id", how="left")[
        ["grid_code", "staff_id", "name", "role", "phone"]
    ]


def point_lonlat(lon: float, lat: float, crs: str | None = None) -> tuple[float, float]:
    """A clicked or typed point as lon/lat: checked, and converted from ``crs`` when given.

    Raises
    ------
    InputError
        Swapped, projected or out-of-range numbers, named.

    Examples
    --------
    >>> point_lonlat(123.5632, 42.4501)
    (123.5632, 42.4501)
    """
    from gis_grid.geo.crs import lonlat_problem

    problem = lonlat_problem((lon, lat, lon, lat))
    if problem:
        raise InputError(say("problem_point", lon=lon, lat=lat, problem=problem))
    if crs:
        import geopandas as gpd
        from shapely import Point

        from gis_grid.geo.crs import to_lonlat

        p = to_lonlat(gpd.GeoDataFrame(geometry=[Point(lon, lat)], crs=None), crs).geometry[0]
        lon, lat = p.x, p.y
    return lon, lat


def grid_entry(code: str, level: str, name: str, counts) -> dict:
    """One grid of a chain (:func:`chain`), before its staff."""
    return {
        "level": level,
        "level_zh": Level.parse(level).zh,
        "code": code,
        "name": name,
        **{c: int(v) for c, v in zip(AGGREGATES, counts, strict=True)},
    }


def staff_entry(staff_id: str, name: str, role: str, phone) -> dict:
    """One person of a chain's grid (:func:`chain`)."""
    return {
        "staff_id": staff_id,
        "name": name,
        "role": role,
        "role_zh": Role.parse(role).zh,
        "phone": None if pd.isna(phone) else phone,
    }


class Chains:
    """Every grid and the staff in force, in memory: :func:`chain` without a query.

    Built from a store (all grids with geometry, staff, assignments) and
    answering one point in well under a millisecond; ``stamp`` records what it
    was built from (a store's grid generation and the day) so the store can
    tell when to build it again.
    """

    def __init__(
        self, grids: pd.DataFrame, staff_by_code: dict, stamp=None, index=None, workers=1
    ) -> None:
        from gis_grid.grids.lookup import GridIndex

        self.stamp = stamp
        # the bulk lookup's index (the store's own when it has one), so a click and a batch
        # give the same chain; ``workers`` as GridIndex takes them (None: the CPUs, up to 4)
        self.index = index or GridIndex(
            grids["code"].to_numpy(), grids.geometry.to_numpy(), workers=workers
        )
        rows = grids[["code", "level", "name", *AGGREGATES]].itertuples(index=False)
        self.grids = {r[0]: grid_entry(r[0], r[1], r[2], r[3:]) for r in rows}
        self.staff = staff_by_code

    @classmethod
    def of(cls, store, stamp=None, index=None, workers=1) -> Chains:
        """The grids and staff in force today of a store (``index``: its lookup index, if built)."""
        grids = store.grids(geometry=True)
        people = staff_of(store, None)
        staff: dict[str, list[dict]] = {}
        for p in people.sort_values(["grid_code", "staff_id"]).itertuples():
            staff.setdefault(p.grid_code, []).append(
                staff_entry(p.staff_id, p.name, p.role, p.phone)
            )
        return cls(grids, staff, stamp, index, workers)

    def chain(self, lon: float, lat: float) -> list[dict]:
        """The grids at a point, community first, each with its staff (as :func:`chain`).

        The bulk lookup's rules on one point (tens of microseconds): a map click's hot path.
        """
        import numpy as np

        found = self.index.locate(np.array([float(lon)]), np.array([float(lat)]))
        out = []
        for level, hit in found.items():
            if hit[0] >= 0:
                code = str(self.index.levels[level].codes[hit[0]])
                out.append({**self.grids[code], "staff": list(self.staff.get(code, []))})
        return out


def chain(store, lon: float, lat: float) -> list[dict]:
    """The grids containing a point, community first, each with its staff.

    Returns an empty list when the point is in no grid. A store with its own
    ``chain`` (PostGIS: one query) answers it.
    """
    if hasattr(store, "chain"):
        return store.chain(lon, lat)
    return chain_by_lookup(store, lon, lat)


def chain_by_lookup(store, lon: float, lat: float) -> list[dict]:
    """:func:`chain` through any store's bulk lookup and reads (no index of its own)."""
    row = store.lookup([lon], [lat]).iloc[0]
    codes = [str(row[lv.key]) for lv in Level if pd.notna(row[lv.key])]
    if not codes:
        return []
    grids = store.grids(codes=codes, geometry=False).set_index("code")
    staff = staff_of(store, codes)
    out = []
    for code in codes:
        g = grids.loc[code]
        people = staff.loc[staff["grid_code"] == code]
        out.append(
            {
                **grid_entry(code, g["level"], g["name"], g[list(AGGREGATES)]),
                "staff": [
                    staff_entry(p.staff_id, p.name, p.role, p.phone) for p in people.itertuples()
                ],
            }
        )
    return out


def coverage(store, staff_id: str) -> dict:
    """What a staff member covers: their grids and everything under them.

    Grids assigned to the person whose ancestor is also assigned to them are
    counted once (a grid worker assigned to an area and to its courtyards
    covers the area).

    Raises
    ------
    NotFoundError
        When no such staff member exists.
    """
    person = store.staff([staff_id])
    if not len(person):
        raise NotFoundError(say("problem_no_staff_member", staff_id=repr(staff_id)))
    person = person.iloc[0]
    assigned = active(store.assignments(staff_ids=[staff_id]))
    codes = sorted(set(assigned["grid_code"].astype(str)))
    tops = [c for c in codes if not any(c != o and c.startswith(o) for o in codes)]
    grids = store.grids(codes=codes, geometry=False).set_index("code") if codes else None
    under = (
        store.grids(under=tops, geometry=False)
        if tops
        else pd.DataFrame(columns=["code", "level", *AGGREGATES])
    )
    counts = under["level"].value_counts()
    top_rows = under.loc[under["code"].isin(tops)]
    return {
        "staff_id": person["staff_id"],
        "name": person["name"],
        "role": person["role"],
        "role_zh": Role.parse(person["role"]).zh,
        "phone": person["phone"],
        "grids": [
            {"code": c, "level": grids.loc[c, "level"], "name": grids.loc[c, "name"], "role": r}
            for c, r in assigned.sort_values("grid_code")[["grid_code", "role"]].itertuples(
                index=False
            )
        ],
        "counts": {lv.key: int(counts.get(lv.key, 0)) for lv in Level},
        **{c: int(pd.to_numeric(top_rows[c]).sum()) for c in AGGREGATES},
    }

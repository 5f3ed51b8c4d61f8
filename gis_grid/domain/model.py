"""The domain: grid levels, hierarchical codes, staff roles and table schemas.

A grid code is the 12-digit national statistical code of its community
(统计用区划代码, e.g. 宏大社区 of 调兵山市兀术街街道 = ``211281001007``) followed
by one serial per level below it::

    211281001007                  community 社区   12 digits
    211281001007 003              area      片区   +3
    211281001007 003 012          courtyard 院落   +3
    211281001007 003 012 004      building  楼栋   +3
    211281001007 003 012 004 02   unit      单元   +2

so a code's level and its parent's code follow from its length alone. Serials
are numbered west→east, north→south within the parent (see
:mod:`gis_grid.domain.numbering`).

Tables are plain (Geo)DataFrames with the columns listed here, so every store,
importer and analysis speaks the same shape.
"""

from __future__ import annotations

import datetime as dt
import enum
import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say


class Level(enum.IntEnum):
    """Grid levels, top to bottom. The integer value is the depth (0 = community)."""

    COMMUNITY = 0
    AREA = 1
    COURTYARD = 2
    BUILDING = 3
    UNIT = 4

    @property
    def key(self) -> str:
        """Lower-case English name used in files, URLs and the CLI."""
        return self.name.lower()

    @property
    def zh(self) -> str:
        """Chinese name of the level."""
        return _ZH[self]

    @property
    def code_length(self) -> int:
        """Total number of digits in a code of this level."""
        return CODE_LENGTHS[self]

    @property
    def parent(self) -> Level | None:
        """The level directly above, or None for the community."""
        return None if self is Level.COMMUNITY else Level(self - 1)

    @property
    def child(self) -> Level | None:
        """The level directly below, or None for the unit."""
        return None if self is Level.UNIT else Level(self + 1)

    @property
    def tiles_parent(self) -> bool:
        """Whether the children of the parent must cover it without gaps.

        Areas tile their community and units tile their building. Courtyards
        and buildings need not fill their parent: the space between them
        (streets, open ground) belongs to the parent.
        """
        return self in (Level.AREA, Level.UNIT)

    @classmethod
    def parse(cls, value: str | int | Level) -> Level:
        """Read a level from its English key, Chinese name or depth.

        Examples
        --------
        >>> Level.parse("building"), Level.parse("单元"), Level.parse(1)
        (<Level.BUILDING: 3>, <Level.UNIT: 4>, <Level.AREA: 1>)
        """
        if isinstance(value, Level):
            return value
        if isinstance(value, int | np.integer):
            try:
                return cls(int(value))
            except ValueError:
                pass
        else:
            text = str(value).strip().lower()
            for level in cls:
                if text in (level.key, level.zh) or text in _ALIASES.get(level, ()):
                    return level
        names = ", ".join(f"{lv.key} ({lv.zh})" for lv in cls)
        raise InputError(say("problem_unknown_level", level=repr(value), names=names))


_ZH = {
    Level.COMMUNITY: "社区",
    Level.AREA: "片区",
    Level.COURTYARD: "院落",
    Level.BUILDING: "楼栋",
    Level.UNIT: "单元",
}
_ALIASES = {
    Level.AREA: ("网格", "grid"),
    Level.COURTYARD: ("楼院", "yard"),
    Level.BUILDING: ("楼",),
}

COMMUNITY_CODE_DIGITS = 12
SERIAL_DIGITS = {Level.AREA: 3, Level.COURTYARD: 3, Level.BUILDING: 3, Level.UNIT: 2}
CODE_LENGTHS = {Level.COMMUNITY: COMMUNITY_CODE_DIGITS}
for _lv in (Level.AREA, Level.COURTYARD, Level.BUILDING, Level.UNIT):
    CODE_LENGTHS[_lv] = CODE_LENGTHS[Level(_lv - 1)] + SERIAL_DIGITS[_lv]
_LEVEL_BY_LENGTH = {n: lv for lv, n in CODE_LENGTHS.items()}


class Role(enum.StrEnum):
    """Staff roles. The value is the English key used in files and the API."""

    GRID_LEADER = "grid_leader"
    GRID_WORKER = "grid_worker"
    BUILDING_HEAD = "building_head"
    UNIT_HEAD = "unit_head"
    SUPERVISOR = "supervisor"

    @property
    def zh(self) -> str:
        """Chinese title of the role."""
        return _ROLE_ZH[self]

    @classmethod
    def parse(cls, value: str | Role) -> Role:
        """Read a role from its key or Chinese title.

        Examples
        --------
        >>> Role.parse("网格员"), Role.parse("unit_head")
        (<Role.GRID_WORKER: 'grid_worker'>, <Role.UNIT_HEAD: 'unit_head'>)
        """
        text = str(value).strip()
        for role in cls:
            if text.lower() == role.value or text == role.zh:
                return role
        names = ", ".join(f"{r.value} ({r.zh})" for r in cls)
        raise InputError(say("problem_unknown_staff_role", role=repr(value), names=names))


_ROLE_ZH = {
    Role.GRID_LEADER: "网格长",
    Role.GRID_WORKER: "网格员",
    Role.BUILDING_HEAD: "楼长",
    Role.UNIT_HEAD: "单元长",
    Role.SUPERVISOR: "监督员",
}

#: Workload aggregates: held on the deepest grids, summed upward.
AGGREGATES = ("households", "residents", "special_care")

#: Columns of the grid table (plus ``geometry``).
GRID_COLUMNS = ("code", "parent_code", "level", "name", *AGGREGATES, "version", "updated_at")
STAFF_COLUMNS = ("staff_id", "name", "role", "phone")
ASSIGNMENT_COLUMNS = ("staff_id", "grid_code", "role", "start_date", "end_date")
#: Columns every layer table carries besides its own: where the feature is linked
#: (a point on it: the point itself, a line's midpoint, a polygon's inner point)
#: and the code of the grid of each level there (None outside every grid).
LINK_COLUMNS = ("lon", "lat", *(f"{lv.key}_code" for lv in Level))
CHAIN_COLUMNS = tuple(f"{lv.key}_code" for lv in Level)
#: Columns of the case log: one row per step of a case, appended, never changed
#: (see :mod:`gis_grid.cases.loop`). ``due`` is the deadline the step was due by,
#: ``on_time`` whether it was taken by then, ``detail`` JSON of the step's values.
CASE_LOG_COLUMNS = (
    "case_id",
    "seq",
    "community_code",
    "action",
    "from_status",
    "to_status",
    "actor",
    "role",
    "staff_id",
    "at",
    "received_at",
    "due",
    "on_time",
    "note",
    "detail",
)
#: The layer whose features are the cases (incidents: 事件).
CASE_LAYER = "incidents"


def utc_now() -> str:
    """The time stamp every table keeps (``updated_at``, ``replaced_at``, logs): UTC, seconds.

    Examples
    --------
    >>> len(utc_now()), utc_now().endswith("Z")
    (20, True)
    """
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def level_of_code(code: str) -> Level:
    """Return the level a code belongs to, from its length.

    Examples
    --------
    >>> level_of_code("211281001007003012")
    <Level.COURTYARD: 2>
    """
    text = str(code)
    level = _LEVEL_BY_LENGTH.get(len(text))
    if level is None or not (text.isascii() and text.isdigit()):
        lengths = ", ".join(f"{n} ({lv.key})" for lv, n in CODE_LENGTHS.items())
        raise InputError(say("problem_malformed_code", code=repr(code), lengths=lengths))
    return level


def parent_code(code: str) -> str | None:
    """Return the parent's code, or None for a community.

    Examples
    --------
    >>> parent_code("21128100100700301200402")
    '211281001007003012004'
    >>> parent_code("211281001007") is None
    True
    """
    level = level_of_code(code)
    if level is Level.COMMUNITY:
        return None
    return str(code)[: CODE_LENGTHS[Level(level - 1)]]


def child_code(parent: str, serial: int) -> str:
    """Compose a child's code from its parent's code and a 1-based serial.

    Examples
    --------
    >>> child_code("211281001007", 3)
    '211281001007003'
    """
    level = Level(level_of_code(parent) + 1)
    width = SERIAL_DIGITS[level]
    if not 1 <= serial < 10**width:
        raise InputError(
            say("problem_serial_width", level=level.key, level_zh=level.zh, serial=serial,
                parent=parent, width=width)
        )  # fmt: skip
    return f"{parent}{serial:0{width}d}"


#: The most households, residents or special-care people one grid may carry: far above any
#: real community (a city district has ~10⁶), far below what a 64-bit column holds.
MAX_COUNT = 1_000_000_000


def normalise_code(code) -> str:
    """A grid code as stored: stripped, every decimal digit written in ASCII.

    Full-width (``２１１２８１…``, as Chinese input methods type them) and other
    scripts' digits are the same numbers: both stores keep them as ASCII, so a
    look-alike code cannot sit beside the real one.

    Examples
    --------
    >>> normalise_code(" ２１１２８１００１００７ ")
    '211281001007'
    >>> normalise_code("٢١١٢٨١٠٠١٠٠٧")
    '211281001007'
    """
    text = str(code).strip()
    return "".join(
        str(unicodedata.decimal(ch))
        if not ch.isascii() and unicodedata.decimal(ch, None) is not None
        else ch
        for ch in unicodedata.normalize("NFKC", text)
    )


def check_codes(codes: Iterable[str]) -> list[str]:
    """Return the codes that are malformed (not ASCII digits or of no level's length)."""
    return [
        c
        for c in codes
        if len(str(c)) not in _LEVEL_BY_LENGTH or not (str(c).isascii() and str(c).isdigit())
    ]


def rollup(grids: pd.DataFrame) -> pd.DataFrame:
    """Sum the workload aggregates upward: a grid with children holds their sum.

    A grid without children keeps its own values (units normally; also a
    building imported without units). Returns a copy with the aggregate
    columns recomputed, as int64.

    Examples
    --------
    >>> df = pd.DataFrame({"code": ["211281001007", "211281001007001", "211281001007002"],
    ...                    "households": [0, 120, 80], "residents": [0, 300, 210],
    ...                    "special_care": [0, 5, 2]})
    >>> rollup(df)["households"].tolist()
    [200, 120, 80]
    """
    out = grids.copy()
    codes = out["code"].astype(str)
    lengths = codes.str.len()
    for col in AGGREGATES:
        out[col] = pd.to_numeric(out[col], errors="coerce").fillna(0).astype("int64")
    # Deepest first: each level's parents take the sum of their children.
    for level in (Level.UNIT, Level.BUILDING, Level.COURTYARD, Level.AREA):
        mask = lengths == CODE_LENGTHS[level]
        if not mask.any():
            continue
        parents = codes[mask].str.slice(0, CODE_LENGTHS[Level(level - 1)])
        sums = out.loc[mask, list(AGGREGATES)].groupby(parents.to_numpy()).sum()
        target = codes.isin(sums.index) & (lengths == CODE_LENGTHS[Level(level - 1)])
        if target.any():
            out.loc[target, list(AGGREGATES)] = sums.loc[codes[target]].to_numpy()
    return out

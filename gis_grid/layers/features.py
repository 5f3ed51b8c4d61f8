"""Feature layers in the core: schemas, checking rows, stored multi-part forms.

A thematic layer (incidents, cameras, lamps, streets, cleaning zones — see the
``layers`` package) declares a :class:`FeatureSchema`: its geometry type and
its typed fields. The core knows nothing more about it: it checks rows against
the schema (:func:`normalise_features`), :mod:`gis_grid.layers.files` reads
CSV / GeoJSON / GeoPackage files, and the stores keep one table per layer with the
declared columns plus the link to the grids (:data:`LINK_COLUMNS`).

Every bad row is reported at once, by row number and id, with what is wrong
and what is expected; nothing is written unless every row is good.

Examples
--------
>>> schema = FeatureSchema(
...     "lamps", "路灯", "Point",
...     (Field("status", "choice", choices={"working": "正常", "damaged": "损坏"}),
...      Field("radius_m", "float", minimum=0)))
>>> frame = gpd.GeoDataFrame({"id": ["L1"], "status": ["损坏"], "radius_m": ["12"]},
...                          geometry=[shapely.Point(123.55, 42.45)], crs="EPSG:4326")
>>> normalise_features(schema, frame)[["id", "status", "radius_m"]].to_dict("records")
[{'id': 'L1', 'status': 'damaged', 'radius_m': 12.0}]
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis_grid.domain.errors import InputError, RowError
from gis_grid.domain.messages import render, say
from gis_grid.domain.model import CHAIN_COLUMNS, LINK_COLUMNS
from gis_grid.geo.crs import WGS84

Kind = Literal["text", "int", "float", "time", "date", "choice", "bool"]
GeometryType = Literal["Point", "LineString", "Polygon"]

_TRUE = {"1", "true", "yes", "y", "t", "是", "有"}
_FALSE = {"0", "false", "no", "n", "f", "否", "无"}
_TYPE_NAMES = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
#: Bad rows kept in detail; beyond them a refusal only counts (a file of bad rows is cheap).
MAX_ROW_PROBLEMS = 1000
#: Dates written day and month first (01/02/2026): which is the day cannot be known.
_AMBIGUOUS_DATE = r"^\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}(?:[\sT]|$)"
#: The largest magnitude a numeric feature field takes (fits a 64-bit integer column).
MAX_NUMBER = 1e15
_SHOWN = 20  # row errors listed in a message; the rest are counted and kept in ``detail``


@dataclass(frozen=True)
class Field:
    """One typed column of a layer.

    Attributes
    ----------
    name : str
        Column name (English key, as stored).
    kind : {"text", "int", "float", "time", "date", "choice", "bool"}
        ``time`` is stored as ISO text ``YYYY-MM-DDTHH:MM:SS`` (local time);
        ``choice`` stores the English key and reads the key or the Chinese label.
    zh : str
        Chinese label, also accepted as a column name in files.
    required : bool
        A missing value is a row error.
    choices : mapping of str to str
        For ``choice``: key → Chinese label, in display order.
    minimum, maximum : float, optional
        Inclusive bounds for numbers.
    aliases : tuple of str
        Other column names accepted in files.
    default : Any
        Value used when the column is absent or the cell empty (not for required fields).
    """

    name: str
    kind: Kind = "text"
    zh: str = ""
    required: bool = False
    choices: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    minimum: float | None = None
    maximum: float | None = None
    aliases: tuple[str, ...] = ()
    default: Any = None

    def names(self) -> tuple[str, ...]:
        """Column names that mean this field in a file, lower case."""
        return tuple(n.lower() for n in (self.name, self.zh, *self.aliases) if n)

    def describe_choices(self) -> str:
        """The accepted values of a choice field, for messages."""
        return ", ".join(f"{k} ({v})" if v else k for k, v in self.choices.items())


def first_time_column(kinds: dict[str, str]) -> str | None:
    """The first column of kind ``time`` of a layer's column → kind map, if any.

    >>> first_time_column({"id": "text", "reported_at": "time", "closed_at": "time"})
    'reported_at'
    """
    return next((c for c, k in kinds.items() if k == "time"), None)


@dataclass(frozen=True)
class FeatureSchema:
    """What a layer's features are: a name, a geometry type and typed fields.

    Every feature also has a text ``id``, unique within its layer.
    """

    name: str
    zh: str
    geometry: GeometryType
    fields: tuple[Field, ...] = ()
    description: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """Stored attribute columns, ``id`` first."""
        return ("id", *(f.name for f in self.fields))

    def kinds(self) -> dict[str, str]:
        """Column → kind, ``id`` included (for the stores)."""
        return {"id": "text", **{f.name: f.kind for f in self.fields}}

    @property
    def time_column(self) -> str | None:
        """The layer's own time (its first time field): what time windows filter on.

        The stores index it, so a week of a million incidents is read without
        a pass over the rest.
        """
        return first_time_column(self.kinds())

    def to_json(self) -> str:
        """What a store keeps about the layer, so it can be read without the plugin."""
        return json.dumps(
            {"name": self.name, "zh": self.zh, "geometry": self.geometry, "kinds": self.kinds()},
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureSchema:
        """A schema as a store recorded it (fields carry their kinds only).

        Parsed once per text: stores read their layers' schemas on every request.
        """
        return _schema_from_json(cls, text)


@functools.lru_cache(maxsize=512)
def _schema_from_json(cls, text: str) -> FeatureSchema:
    data = json.loads(text)
    fields = tuple(Field(n, k) for n, k in data["kinds"].items() if n != "id")
    return cls(data["name"], data["zh"], data["geometry"], fields)


# -- checking rows -----------------------------------------------------------


class RowProblems:
    """The bad rows of one file or frame, collected column by column, raised all at once."""

    def __init__(self, ids: pd.Series, first_row: int) -> None:
        self.items: list[dict] = []
        self.total = 0  # every problem found; ``items`` keeps the first MAX_ROW_PROBLEMS
        self._ids = ids
        self._first = first_row

    def add(
        self, mask: np.ndarray, column: str, values: pd.Series | None, message: str, **words
    ) -> None:
        """Note the rows where ``mask`` holds: their id, value and what is wrong.

        ``message`` is a catalogue key (said with ``value`` and ``words``, so it
        reads in Chinese too) or an English template with ``{value}``. A file of
        a million bad rows keeps the first :data:`MAX_ROW_PROBLEMS` in detail
        and counts the rest (a refusal must not cost gigabytes).
        """
        from gis_grid.domain.messages import catalogue

        keyed = message in catalogue()["problems"]
        rows = np.flatnonzero(mask)
        self.total += len(rows)
        room = max(0, MAX_ROW_PROBLEMS - len(self.items))
        for i in rows[:room]:
            value = None if values is None else values.iloc[i]
            ident = self._ids.iloc[i]
            self.items.append(
                {
                    "row": int(i) + self._first,
                    "id": None if pd.isna(ident) else str(ident),
                    "column": column,
                    "value": None if value is None or pd.isna(value) else str(value),
                    "problem": say(message, value=value, quoted=repr(value), **words)
                    if keyed
                    else message.format(value=value),
                }
            )

    def raise_if_any(self, what: str) -> None:
        """Raise one :class:`~gis_grid.domain.errors.RowError` naming the bad rows."""
        if self.items:
            raise row_error(self.items, what, total=self.total)


def row_error(rows: list[dict], what: str, total: int | None = None) -> RowError:
    """One error for bad rows (``row``, ``id``, ``column``, ``value``, ``problem`` each).

    The message lists the first rows by number and id and says nothing was written;
    ``total`` counts problems beyond the rows kept in detail.
    """
    rows = sorted(rows, key=lambda p: (p["row"], p["column"]))
    total = max(total or 0, len(rows))
    lines = [
        f"  row {p['row']}{' (id ' + p['id'] + ')' if p['id'] else ''}: {p['problem']}"
        for p in rows[:_SHOWN]
    ]
    lines_zh = [
        f"  第 {p['row']} 行{'（编号 ' + p['id'] + '）' if p['id'] else ''}："
        f"{render(p['problem'], 'zh')}"
        for p in rows[:_SHOWN]
    ]
    more = total - min(len(rows), _SHOWN)
    if more > 0:
        lines.append(f"  … and {more:,} more")
        lines_zh.append(f"  … 另有 {more:,} 处")
    count = len({p["row"] for p in rows})
    many = f"{count:,}+" if total > len(rows) else f"{count:,}"
    error = RowError(
        say(
            "problem_bad_rows",
            many=many,
            rows_word="rows" if count != 1 else "row",
            what=what,
            lines="\n".join(lines),
            lines_zh="\n".join(lines_zh),
        ),
        rows=rows,
    )
    error.total = total
    return error


def find_column(frame: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    """The frame's column with one of these names (any case), or None."""
    lower = {str(c).strip().lower(): c for c in frame.columns}
    return next((lower[n] for n in names if n in lower), None)


def _blank(values: pd.Series) -> np.ndarray:
    return np.asarray(values.isna() | (values.astype(str).str.strip() == ""), dtype=bool)


def parse_when(text: str | None) -> str | None:
    """One date or time a person typed (a query, an option), checked; None stays None.

    Examples
    --------
    >>> parse_when("2026-05-01")
    '2026-05-01T00:00:00'
    """
    if text is None:
        return None
    value, bad = parse_time(pd.Series([text]))
    if bad.any():
        raise InputError(say("problem_not_a_time", text=repr(text)))
    return value.iloc[0]


def parse_time(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """ISO text (seconds) for times given as text or datetimes; and which failed.

    Time zones are converted to China Standard Time and dropped (the platform
    stores local wall-clock time, as the city systems do).

    Examples
    --------
    >>> parse_time(pd.Series(["2026-05-01 08:30", "2026-05-01T00:30:00Z", "soon"]))[0].tolist()
    ['2026-05-01T08:30:00', '2026-05-01T08:30:00', None]
    """
    values = values.reset_index(drop=True)
    blank = _blank(values)
    try:  # one vectorised pass for the usual case: ISO text or datetimes, one zone
        stamps = pd.to_datetime(values.where(~blank), format="ISO8601", errors="coerce")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("Asia/Shanghai").dt.tz_localize(None)
        out = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S").astype(object)
        out = out.where(stamps.notna(), None)
    except (ValueError, TypeError):  # mixed zones: value by value below
        out = pd.Series([None] * len(values), dtype=object)
    retry = np.flatnonzero(out.isna().to_numpy() & ~blank)
    bad = np.zeros(len(values), dtype=bool)
    for i in retry:  # other formats ("2026/5/1 8:30"), mixed zones
        try:
            stamp = pd.Timestamp(values.iloc[i])
        except (ValueError, TypeError):
            stamp = pd.NaT
        if pd.isna(stamp):
            bad[i] = True
            continue
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("Asia/Shanghai").tz_localize(None)
        out.iloc[i] = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    return out, bad


def _check_field(f: Field, raw: pd.Series, problems: RowProblems) -> pd.Series:
    blank = _blank(raw)
    if f.required:
        problems.add(blank, f.name, None, "row_missing", field=f.name)
    if blank.all():  # an empty or absent column: its default, with no more checks
        return pd.Series([f.default] * len(raw), dtype=object)
    if f.kind == "text":
        nul = raw.astype("string").str.contains("\x00", regex=False).fillna(False).to_numpy()
        problems.add(nul, f.name, None, "row_nul", field=f.name)
        text = raw.astype("string").str.strip().astype(object)
        text = text.where(~blank, f.default)
        return text.where(pd.notna(text), None)
    if f.kind in ("int", "float"):
        numbers = pd.to_numeric(raw.where(~blank), errors="coerce").astype("float64")
        problems.add(
            ~blank & numbers.isna().to_numpy(), f.name, raw, "row_not_number", field=f.name
        )
        # infinities, NaN spelt out and numbers no column holds never reach a store
        huge = numbers.notna() & (~np.isfinite(numbers) | (numbers.abs() > MAX_NUMBER))
        problems.add(
            huge.to_numpy(),
            f.name,
            raw,
            "row_huge",
            field=f.name,
            most=f"{MAX_NUMBER:.0e}",
        )
        numbers = numbers.where(~huge)
        if f.kind == "int":
            frac = numbers.notna() & (numbers % 1 != 0)
            problems.add(frac.to_numpy(), f.name, raw, "row_not_whole", field=f.name)
        if f.minimum is not None:
            problems.add(
                (numbers < f.minimum).to_numpy(),
                f.name,
                raw,
                "row_below",
                field=f.name,
                least=f"{f.minimum:g}",
            )
        if f.maximum is not None:
            problems.add(
                (numbers > f.maximum).to_numpy(),
                f.name,
                raw,
                "row_above",
                field=f.name,
                most=f"{f.maximum:g}",
            )
        return numbers if f.default is None else numbers.fillna(f.default)
    if f.kind == "choice":
        lookup = {}
        for key, zh in f.choices.items():
            lookup[key.lower()] = key
            if zh:
                lookup[zh] = key
        text = raw.astype("string").str.strip().where(~blank)
        values = text.dropna().unique()  # a few distinct values in a million rows
        known = {v: lookup.get(v.lower(), lookup.get(v, "")) for v in values}
        keys = text.astype(object).map(known).astype(object)
        keys = keys.where(pd.notna(keys), None)
        unknown = (keys == "").to_numpy()
        problems.add(
            unknown, f.name, raw, "row_not_choice", field=f.name, choices=f.describe_choices()
        )
        return keys.where(~pd.Series(blank, index=raw.index), f.default).where(~unknown, None)
    if f.kind == "bool":
        text = (
            raw.astype(object)
            .where(~blank, None)
            .map(lambda v: None if v is None else str(v).strip().lower())
        )
        truth = text.map(lambda v: True if v in _TRUE else False if v in _FALSE else None)
        problems.add(
            (text.notna() & truth.isna()).to_numpy(),
            f.name,
            raw,
            "row_not_bool",
            field=f.name,
        )
        return truth.where(text.notna(), f.default)
    if f.kind in ("time", "date"):
        # 01/02/2026 is 1 February to some and 2 January to others (and 13/02/2026 is read
        # day-first while 01/02/2026 is not): such dates are refused, never guessed
        ambiguous = raw.astype("string").str.match(_AMBIGUOUS_DATE).fillna(False).to_numpy()
        problems.add(
            ambiguous,
            f.name,
            raw,
            "row_ambiguous_date",
            field=f.name,
        )
        parsed, bad = parse_time(raw.where(~ambiguous))
        parsed = parsed.where(~ambiguous, None)
        key = "row_not_time" if f.kind == "time" else "row_not_date"
        problems.add(bad & ~ambiguous, f.name, raw, key, field=f.name)
        return parsed if f.kind == "time" else parsed.map(lambda v: None if v is None else v[:10])
    raise ValueError(f"unknown field kind {f.kind!r}")


def normalise_features(
    schema: FeatureSchema, frame: gpd.GeoDataFrame, *, first_row: int = 1
) -> gpd.GeoDataFrame:
    """Check rows against a schema; return them typed, with English keys for choices.

    ``frame`` must be in EPSG:4326 already. Columns may be named by the
    field's key, its Chinese label or an alias. Columns the schema does not
    know are dropped.

    Raises
    ------
    RowError
        Listing every bad row: missing id, duplicate id, missing or wrong-typed
        geometry, missing required values, unknown choices, numbers out of range.
    """
    id_col = find_column(frame, ("id", "编号", "编码", "fid_text", "osm_id"))
    if id_col is None:
        raise InputError(say("problem_no_id_column", layer=schema.name))
    ids = frame[id_col].astype(object).map(lambda v: None if pd.isna(v) else str(v).strip())
    ids = ids.where(ids != "", None).reset_index(drop=True)
    problems = RowProblems(ids, first_row)
    problems.add(ids.isna().to_numpy(), "id", None, "row_no_id")
    dup = ids.notna() & ids.duplicated(keep=False)
    problems.add(dup.to_numpy(), "id", ids, "row_id_twice")

    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    problems.add(missing, "geometry", None, "row_no_coordinates")
    types = shapely.get_type_id(geoms)
    allowed = {"Point": (0,), "LineString": (1, 5), "Polygon": (3, 6)}[schema.geometry]
    wrong = ~missing & ~np.isin(types, allowed)
    if wrong.any():
        names = pd.Series(shapely.get_type_id(geoms)).map(dict(enumerate(_TYPE_NAMES)))
        problems.add(wrong, "geometry", names, "row_wrong_geometry", expected=schema.geometry)
    if schema.geometry != "Point":
        invalid = ~missing & ~wrong & ~shapely.is_valid(geoms)
        reasons = pd.Series(np.where(invalid, shapely.is_valid_reason(geoms), None))
        problems.add(
            invalid,
            "geometry",
            reasons,
            "row_invalid_geometry",
        )

    out = {"id": ids}
    data = frame.reset_index(drop=True)
    for f in schema.fields:
        col = find_column(data, f.names())
        raw = data[col] if col is not None else pd.Series([None] * len(data), dtype=object)
        out[f.name] = _check_field(f, raw, problems).reset_index(drop=True)
    problems.raise_if_any(f"{schema.name} ({schema.zh})")
    result = gpd.GeoDataFrame(pd.DataFrame(out), geometry=gpd.GeoSeries(geoms, crs=WGS84))
    for f in schema.fields:
        if f.kind == "float":
            result[f.name] = pd.to_numeric(result[f.name]).astype("float64")
        elif f.kind == "int":
            result[f.name] = pd.to_numeric(result[f.name]).astype("Int64")
    return result


# -- stored forms ----------------------------------------------------------------


def link_points(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lon/lat where each feature is linked to grids.

    A point is linked where it is; a line at its midpoint (half way along);
    a polygon at a point guaranteed inside it (:func:`shapely.point_on_surface`).

    Examples
    --------
    >>> x, y = link_points(np.array([shapely.LineString([(0, 0), (4, 0)])]))
    >>> float(x[0]), float(y[0])
    (2.0, 0.0)
    """
    geoms = np.asarray(geoms, dtype=object)
    types = shapely.get_type_id(geoms)
    pts = np.empty(len(geoms), dtype=object)
    point = types == 0
    line = np.isin(types, (1, 5))
    other = ~point & ~line
    pts[point] = geoms[point]
    if line.any():
        pts[line] = shapely.line_interpolate_point(geoms[line], 0.5, normalized=True)
    if other.any():
        pts[other] = shapely.point_on_surface(geoms[other])
    return shapely.get_x(pts), shapely.get_y(pts)


def to_multi_any(geoms: np.ndarray) -> np.ndarray:
    """Lines and polygons as their multi-part types (what layer tables store)."""
    geoms = np.asarray(geoms, dtype=object).copy()
    types = shapely.get_type_id(geoms)
    for single, make in ((1, shapely.multilinestrings), (3, shapely.multipolygons)):
        mask = types == single
        if mask.any():
            geoms[mask] = make(geoms[mask][:, None].tolist())
    return geoms


def from_multi_any(geoms: np.ndarray) -> np.ndarray:
    """Single-part multi-geometries back to their simple type."""
    geoms = np.asarray(geoms, dtype=object).copy()
    single = np.isin(shapely.get_type_id(geoms), (4, 5, 6)) & (
        shapely.get_num_geometries(geoms) == 1
    )
    if single.any():
        geoms[single] = shapely.get_geometry(geoms[single], 0)
    return geoms


def now_local() -> str:
    """The current local (China Standard Time) wall-clock time as stored."""
    china = dt.timezone(dt.timedelta(hours=8))
    return dt.datetime.now(china).strftime("%Y-%m-%dT%H:%M:%S")


def type_features(
    schema: FeatureSchema, frame: pd.DataFrame, geoms: np.ndarray
) -> gpd.GeoDataFrame:
    """Rows read back from a store, typed as the schema says, as a GeoDataFrame."""
    frame = frame.reset_index(drop=True)
    for column, kind in schema.kinds().items():
        if column not in frame:
            frame[column] = None
        values = frame[column]
        if kind == "float":
            frame[column] = pd.to_numeric(values).astype("float64")
        elif kind == "int":
            frame[column] = pd.to_numeric(values).astype("Int64")
        elif kind == "bool":
            frame[column] = values.map(
                lambda v: None if v is None or pd.isna(v) else bool(v)
            ).astype("boolean")
        elif kind == "time":
            frame[column] = values.map(
                lambda v: None if v is None or pd.isna(v) else str(v).replace(" ", "T")[:19]
            ).astype(object)
        elif kind == "date":
            frame[column] = values.map(
                lambda v: None if v is None or pd.isna(v) else str(v)[:10]
            ).astype(object)
        else:
            frame[column] = values.astype(object).where(values.notna(), None)
    for column in ("lon", "lat"):
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    for column in CHAIN_COLUMNS:
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame = frame[[*schema.columns, *LINK_COLUMNS]]
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)

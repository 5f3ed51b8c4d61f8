"""Thematic layers as plugins: a small base class and a registry.

A layer (the ``layers`` package ships incidents, cctv, lighting, streets and
cleaning) subclasses :class:`Layer`, declares its
:class:`~gis_grid.layers.features.FeatureSchema`, and is registered in the
``gis_grid.layers`` entry-point group of its distribution. The core finds
layers only through that group, so adding a layer touches nothing here.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd

from gis_grid.domain.errors import InputError, NotFoundError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level
from gis_grid.layers.features import FeatureSchema, normalise_features
from gis_grid.layers.files import read_feature_chunks, read_feature_file

GROUP = "gis_grid.layers"


@dataclass
class GapReport:
    """What a gap analysis found.

    Attributes
    ----------
    features : geopandas.GeoDataFrame
        The holes, gaps or overdue features (EPSG:4326), ranked, each with its
        grid chain and responsible person (``staff_*`` columns).
    per_grid : pandas.DataFrame
        One row per grid of the analysed level: the measures of the analysis
        (coverage %, dark length …) with the grid's responsible person.
    summary : dict
        Totals for a report.
    """

    features: gpd.GeoDataFrame
    per_grid: pd.DataFrame
    summary: dict = field(default_factory=dict)


class Layer:
    """Base class of a thematic layer.

    Subclasses set :attr:`schema` and may override :meth:`check` (rules across
    columns) and :meth:`holes` (the layer's gap analysis).
    """

    schema: ClassVar[FeatureSchema]
    #: Time column for time windows (events), and category column for filters.
    time_field: ClassVar[str | None] = None
    category_field: ClassVar[str | None] = None
    #: Whether :meth:`holes` is implemented.
    has_holes: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """The layer's name (its table)."""
        return self.schema.name

    def read(
        self,
        path: str | os.PathLike,
        *,
        crs: str | None = None,
        make_valid: bool = False,
        max_bytes: int | None = None,
    ) -> gpd.GeoDataFrame:
        """Read and check a file of this layer's features.

        See :func:`gis_grid.layers.files.read_feature_file`.
        """
        kwargs = {} if max_bytes is None else {"max_bytes": max_bytes}
        if str(path).lower().endswith(".csv"):
            return self.check(self._read_csv(path, crs=crs, make_valid=make_valid, **kwargs))
        raw = read_feature_file(self.schema, path, crs=crs, make_valid=make_valid, **kwargs)
        return self.check(normalise_features(self.schema, raw))

    def _read_csv(self, path, **kwargs) -> gpd.GeoDataFrame:
        """A CSV checked a chunk at a time; refused once enough bad rows are found.

        A file of a million bad rows costs its first chunks, not the whole
        file: the error names the first bad rows and says where reading stopped.
        """
        from gis_grid.domain.errors import RowError
        from gis_grid.layers.features import MAX_ROW_PROBLEMS, row_error

        what = f"{self.schema.name} ({self.schema.zh})"
        parts, problems, total, read = [], [], 0, 0
        for chunk in read_feature_chunks(self.schema, path, **kwargs):
            try:
                parts.append(normalise_features(self.schema, chunk, first_row=read + 1))
            except RowError as exc:
                problems += exc.rows
                total += max(getattr(exc, "total", 0), len(exc.rows))
            read += len(chunk)
            if len(problems) >= MAX_ROW_PROBLEMS:
                error = row_error(problems[:MAX_ROW_PROBLEMS], what, total=total)
                raise RowError(
                    say("problem_rows_stopped", message=error.message, row=f"{read:,}"),
                    rows=error.rows,
                )
        if problems:
            raise row_error(problems, what, total=total)
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        twice = frame["id"].duplicated(keep=False)
        if twice.any():  # ids repeated across chunks (within one, normalise names them)
            rows = [
                {
                    "row": int(i) + 1,
                    "id": frame["id"].iloc[i],
                    "column": "id",
                    "value": frame["id"].iloc[i],
                    "problem": say("row_id_twice", quoted=repr(frame["id"].iloc[i])),
                }
                for i in np.flatnonzero(twice.to_numpy())[:MAX_ROW_PROBLEMS]
            ]
            raise row_error(rows, what, total=int(twice.sum()))
        return gpd.GeoDataFrame(frame, geometry=frame.geometry.name, crs=frame.crs)

    def check(self, features: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Rules across columns; raise :class:`~gis_grid.domain.errors.RowError` naming rows."""
        return features

    def prepare(self, features: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, pd.DataFrame | None]:
        """Checked features as they are stored, and the case log they imply (None: not cases).

        A layer whose features are cases (incidents) fills their state columns
        and returns the log rows their status and step times imply; the store
        writes both in one transaction.
        """
        return features, None

    def demo(self, data, rng) -> gpd.GeoDataFrame | None:
        """Features for the demo community (lon/lat, raw columns), or None.

        ``data`` is the :class:`~gis_grid.sources.demo.DemoData` just generated;
        ``rng`` a seeded generator. The demo checks them like any import.
        """
        return None

    def from_osm(self, osm) -> gpd.GeoDataFrame | None:
        """Features from an OpenStreetMap extract (a ``pyrosm.OSM``), or None."""
        return None

    def holes(
        self, store, *, level: Level = Level.AREA, now: dt.datetime | None = None, **options
    ) -> GapReport:
        """The layer's gap analysis over the grids of ``level``."""
        raise InputError(say("problem_no_gap_analysis", layer=self.name))

    def categories(self, values) -> list[str] | None:
        """Category keys from keys or their Chinese labels; unknown ones are named."""
        if not values:
            return None
        if not self.category_field:
            raise InputError(say("problem_no_categories", layer=self.name))
        field = next(f for f in self.schema.fields if f.name == self.category_field)
        keys = []
        for value in values:
            key = next((k for k, v in field.choices.items() if value in (k, v)), None)
            if key is None:
                raise InputError(
                    say(
                        "problem_unknown_category",
                        value=repr(value),
                        choices=field.describe_choices(),
                    )
                )
            keys.append(key)
        return keys


@cache
def available() -> dict[str, Layer]:
    """Every installed layer, by name."""
    found = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        layer = cls()
        if layer.name != ep.name:
            raise InputError(say("problem_entry_point", name=repr(ep.name), layer=repr(layer.name)))
        found[ep.name] = layer
    return dict(sorted(found.items()))


def events_layer(name: str | None = None) -> Layer:
    """The point layer with event times named, or the first installed (incidents)."""
    if name is None:
        events = [
            n for n, lay in available().items() if lay.time_field and lay.schema.geometry == "Point"
        ]
        if not events:
            raise InputError(say("problem_no_event_layer"))
        name = events[0]
    layer = get_layer(name)
    if not layer.time_field:
        raise InputError(say("problem_no_event_times", layer=name))
    return layer


def get_layer(name: str) -> Layer:
    """The installed layer called ``name``; NotFoundError lists the others."""
    layers = available()
    if name not in layers:
        raise NotFoundError(say("problem_no_layer", layer=name, layers=", ".join(layers) or "—"))
    return layers[name]

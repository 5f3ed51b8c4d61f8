"""Vector files in (GeoJSON, GeoPackage, Shapefile) through GDAL, with one clear error each.

Grid imports and feature imports both read through :func:`read_vector`: a
missing layer, a file GDAL cannot parse (NaN or Infinity in GeoJSON, a
truncated GeoPackage) or a file with no geometry is one line naming the file
and what to do, never GDAL's traceback.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import pyogrio

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say


def read_vector(path, layer: str | None = None) -> gpd.GeoDataFrame:
    """A vector file's features (one layer of a GeoPackage), or one clear InputError."""
    path = Path(path)
    if layer is not None:
        try:
            names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
        except Exception as exc:  # GDAL's errors differ by driver: any unreadable file
            raise InputError(
                say("problem_cannot_read", name=path.name, why=_first_line(exc))
            ) from None
        if layer not in names:
            raise InputError(
                say("problem_no_layer_in_file", name=path.name, layer=repr(layer),
                    layers=", ".join(names) or "—")
            )  # fmt: skip
    try:
        with warnings.catch_warnings():  # GDAL's warnings (unclosed rings …) are not errors
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = pyogrio.read_dataframe(path, layer=layer)
    except Exception as exc:  # DataSourceError, DataLayerError, FieldError, GDAL parse errors
        raise InputError(
            say(
                "problem_cannot_read_kind",
                name=path.name,
                why=_first_line(exc),
                kind=path.suffix.lstrip(".") or "vector",
            )
        ) from None
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name is None:
        raise InputError(say("problem_no_geometry_column", name=path.name))
    return frame


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

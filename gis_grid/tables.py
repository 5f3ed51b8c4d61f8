"""Tables out: rows for JSON and GeoJSON text, missing values as null.

What the CLI's ``--format json|geojson`` and the web API both print; light on
imports, so the CLI starts fast.
"""

from __future__ import annotations

import pandas as pd


def records(frame) -> list[dict]:
    """Rows for JSON: missing values (NaN, NA) as None.

    Examples
    --------
    >>> records(pd.DataFrame({"a": [1, None]}))
    [{'a': 1.0}, {'a': None}]
    """
    frame = pd.DataFrame(frame)
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def geojson_text(frame) -> str:
    """A GeoDataFrame as GeoJSON text, missing values (nullable columns too) as null."""
    frame = frame.copy()
    for col in frame.columns:
        if col != frame.geometry.name and str(frame[col].dtype) in ("boolean", "Int64", "string"):
            frame[col] = frame[col].astype(object)
    return frame.to_json(na="null", drop_id=True, ensure_ascii=False)

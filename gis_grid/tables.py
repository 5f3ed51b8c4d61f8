"""Tables in and out: CSV files read whatever saved them, rows for JSON and GeoJSON text.

What the CLI's ``--format json|geojson`` and the web API both print, and the
one CSV reader grid and feature imports share; light on imports, so the CLI
starts fast.
"""

from __future__ import annotations

import io
from pathlib import Path

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


#: Encodings a CSV may come in: UTF-8 (with or without the BOM Excel writes) and
#: GB18030 (Excel on a Chinese Windows; a superset of GBK and GB2312).
ENCODINGS = ("utf-8-sig", "gb18030")


#: What a CSV holds, in Chinese, for its refusals.
_ZH = {
    "rows": "数据行",
    "grids": "网格",
    "features": "要素",
    "staff": "人员",
    "assignments": "任职",
}


_ENGLISH = {
    "problem_csv_empty": "{name} is empty: it holds no header and no {what}",
    "problem_csv_no_rows": "{name} has a header but no {what}",
    "problem_csv_malformed": "{name} is not a well-formed CSV: {why}",
    "problem_csv_binary": "{name} is not a text file (it holds binary data): save it as CSV "
    "(UTF-8 or GB18030), or use .geojson / .gpkg",
    "problem_csv_encoding": "{name} is neither UTF-8 nor GB18030 text: save it as CSV (UTF-8) "
    "and import it again",
    "problem_csv_nul": "{name} line {line} holds a NUL character: remove it",
}


def _problem(key: str, **values) -> CSVProblem:
    return CSVProblem(key, _ENGLISH[key].format(**values), **values)


class CSVProblem(ValueError):
    """A CSV refused: its English words, and the catalogue key and values that say it anew.

    (This module sits beside the domain, not on it: a caller says the key.)
    """

    def __init__(self, key: str, text: str, **values) -> None:
        super().__init__(text)
        self.key, self.values = key, values


def read_csv(path, *, what: str = "rows", chunksize: int | None = None):
    r"""A CSV file as text columns, or one clear error saying what is wrong with it.

    The encoding is found, not guessed: UTF-8 (BOM or not), else GB18030. A
    binary file, an empty file, a header without rows, a broken line and a
    NUL character are each refused by name (``ValueError`` with the message;
    callers raise it as their input error).

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> _ = open(f, "wb").write("编号,经度\nA1,123.5\n".encode("gb18030"))
    >>> read_csv(f).to_dict("records")
    [{'编号': 'A1', '经度': '123.5'}]
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise _problem("problem_csv_empty", name=path.name, what=what, what_zh=_ZH.get(what, what))
    head = raw[:65536]
    binary = _problem("problem_csv_binary", name=path.name)
    if head.count(b"\x00") > max(2, len(head) // 100):  # text holds a stray NUL at most
        raise binary
    for encoding in ENCODINGS:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _problem("problem_csv_encoding", name=path.name)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise _problem("problem_csv_nul", name=path.name, line=line)
    options = {"dtype": str, "keep_default_na": False, "na_values": [""]}
    if chunksize is not None:  # a generator of frames: a caller may stop early
        return _chunks(path, text, what, chunksize, options)
    try:
        frame = pd.read_csv(io.StringIO(text), **options)
    except pd.errors.ParserError as exc:
        raise _problem("problem_csv_malformed", name=path.name, why=str(exc).strip()) from None
    except pd.errors.EmptyDataError:
        raise _problem(
            "problem_csv_empty", name=path.name, what=what, what_zh=_ZH.get(what, what)
        ) from None
    if not len(frame):
        raise _problem(
            "problem_csv_no_rows", name=path.name, what=what, what_zh=_ZH.get(what, what)
        )
    return frame


def _chunks(path: Path, text: str, what: str, size: int, options: dict):
    """The rows of a decoded CSV, ``size`` at a time (the errors of :func:`read_csv`)."""
    try:
        reader = pd.read_csv(io.StringIO(text), chunksize=size, **options)
        first = True
        for chunk in reader:
            if first and not len(chunk):
                break
            first = False
            yield chunk
        if first:
            raise _problem(
                "problem_csv_no_rows", name=path.name, what=what, what_zh=_ZH.get(what, what)
            )
    except pd.errors.ParserError as exc:
        raise _problem("problem_csv_malformed", name=path.name, why=str(exc).strip()) from None
    except pd.errors.EmptyDataError:
        raise _problem(
            "problem_csv_empty", name=path.name, what=what, what_zh=_ZH.get(what, what)
        ) from None

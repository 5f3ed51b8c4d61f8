"""A Chinese font for reports on a fresh machine: Noto Sans SC from the PyPI package.

``justmytype-intl-cjk`` ships Noto Sans SC as one variable font. WeasyPrint
(Pango, HarfBuzz) sets it at any weight; matplotlib cannot pick a weight of a
variable font and would draw its thinnest. So charts get a static regular
instance of it, cut once to the characters of GB 2312 (names, places and our
words; 6,763 hanzi) plus Latin and punctuation, and kept in the user's cache
(~2 MB, ~8 s the first time, then read from disk). A character outside it
falls back to the full variable font, then DejaVu Sans.
"""

from __future__ import annotations

import functools
import os
from importlib.resources import files
from pathlib import Path

#: The family name of the static cut, so it cannot be mistaken for the variable font.
CHART_FAMILY = "Noto Sans SC (gis-grid)"
VARIABLE_FAMILY = "Noto Sans SC"


@functools.cache
def variable_font() -> Path:
    """The variable Noto Sans SC of the ``justmytype-intl-cjk`` package."""
    from gis_grid.domain.errors import StoreError
    from gis_grid.domain.messages import say

    try:
        root = files("justmytype_intl_cjk")
    except ModuleNotFoundError as exc:  # pragma: no cover - a declared dependency
        raise StoreError(say("problem_no_cjk_font")) from exc
    path = Path(str(root / "fonts" / "ofl" / "notosanssc" / "NotoSansSC[wght].ttf"))
    if not path.is_file():  # pragma: no cover - the package's layout changed
        raise StoreError(say("problem_font_moved", path=str(path)))
    return path


def _characters() -> set[int]:
    chars = set(range(0x20, 0x7F)) | set(range(0xA0, 0x180)) | set(range(0x2000, 0x2070))
    chars |= set(range(0x2100, 0x2200)) | set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    chars |= {0x00B2, 0x00B3, 0x00B7, 0x2192, 0x2191, 0x2193, 0x25A0, 0x25CF}
    for hi in range(0xB0, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.add(ord(bytes([hi, lo]).decode("gb2312")))
            except UnicodeDecodeError:
                continue
    return chars


@functools.cache
def static_font(weight: int = 400) -> Path:
    """A static cut of Noto Sans SC at ``weight`` (GB 2312 and Latin), made once and cached.

    Charts use the regular (matplotlib sets no weight of a variable font);
    the PDF uses the regular and the bold (WeasyPrint subsets a 2 MB static
    font in a fraction of the time the 17 MB variable one takes).
    """
    from fontTools import subset
    from fontTools.ttLib import TTFont
    from fontTools.varLib import instancer

    from gis_grid.analysis.hotspots import user_cache_dir

    source = variable_font()
    name = f"NotoSansSC-{weight}-gb2312-{source.stat().st_size}.ttf"
    target = user_cache_dir() / "fonts" / name
    if target.is_file():
        return target
    font = TTFont(source)
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    cutter = subset.Subsetter(options)
    cutter.populate(unicodes=_characters())
    cutter.subset(font)
    static = instancer.instantiateVariableFont(font, {"wght": weight})
    style = "Bold" if weight >= 600 else "Regular"
    for record in static["name"].names:
        if record.nameID in (1, 16):
            record.string = CHART_FAMILY
        elif record.nameID in (2, 17):
            record.string = style
        elif record.nameID == 4:
            record.string = f"{CHART_FAMILY} {style}"
        elif record.nameID == 6:
            record.string = f"NotoSansSC-{style}-gis-grid"
    static["OS/2"].usWeightClass = weight
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    static.save(partial)
    partial.replace(target)  # whole or not at all: another process may be reading
    return target


def chart_font() -> Path:
    """The regular static cut (see :func:`static_font`)."""
    return static_font(400)


@functools.cache
def use_in_matplotlib() -> list[str]:
    """Register the fonts with matplotlib; the family list charts should ask for."""
    import logging

    from matplotlib import font_manager

    # the variable font is there for characters beyond GB 2312 only; matplotlib would say
    # on every lookup that it has no regular weight of it
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    font_manager.fontManager.addfont(str(chart_font()))
    font_manager.fontManager.addfont(str(variable_font()))
    return [CHART_FAMILY, VARIABLE_FAMILY, "DejaVu Sans"]

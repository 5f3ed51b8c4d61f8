"""Words in Chinese and English from one catalogue (``messages.json`` beside this module).

The map pages read it whole (``/static/messages.json``); the core says its
refusals through it, so the API answers in the language a request asks for
(``Accept-Language``) and the CLI in the user's (``GIS_GRID_LANG``, else the
locale). A message is built once, in English, as :class:`Said`: a ``str``
that also knows its catalogue key and values, so code that logs or compares
``str(exc)`` sees the English it always saw, and :func:`render` says it in
Chinese where asked.

Examples
--------
>>> said = say("problem_stale_case", case="C1", version=3, seen=2)
>>> str(said)
'case C1 is at version 3, not 2: someone acted on it first; reload it and try again'
>>> render(said, "zh")
'案件 C1 已是第 3 版（您看到的是第 2 版）：有人先办理了它；请重新载入后再试'
>>> render("a plain sentence", "zh")  # not from the catalogue: said as it is
'a plain sentence'
"""

from __future__ import annotations

import functools
import json
import os
from importlib.resources import files

LANGS = ("zh", "en")


@functools.cache
def catalogue() -> dict:
    """The whole catalogue: ``messages`` (pages), ``problems`` (refusals) and named lists."""
    return json.loads(files("gis_grid.domain").joinpath("messages.json").read_text("utf-8"))


def words(section: str, key: str, lang: str = "zh") -> str:
    """A key's words in ``lang`` from a section of the catalogue (the key itself if absent).

    >>> words("access_roles", "planner"), words("messages", "op_split", "en")
    ('规划员', 'split')
    >>> words("messages", "no such key")
    'no such key'
    """
    pair = catalogue()[section].get(key)
    return key if pair is None else pair[0 if lang == "zh" else 1]


def template(key: str, lang: str) -> str:
    """The words of ``key`` in ``lang`` (``zh`` or ``en``)."""
    pair = catalogue()["problems"][key]
    return pair[0] if lang == "zh" else pair[1]


class Said(str):
    """A message in English that can be said in Chinese too (see :func:`render`)."""

    key: str
    values: dict

    def __new__(cls, key: str, **values) -> Said:
        """The message ``key`` with ``values``, in English."""
        self = super().__new__(cls, template(key, "en").format(**values))
        self.key, self.values = key, values
        return self

    def in_language(self, lang: str) -> str:
        """The message in ``lang`` (a value said from the catalogue is said in it too)."""
        return template(self.key, lang).format(
            **{k: render(v, lang) for k, v in self.values.items()}
        )


def say(key: str, **values) -> Said:
    """A catalogue message with its values (English as a ``str``)."""
    return Said(key, **values)


def said_of(exc: Exception):
    """An exception's message as :class:`Said` where it carries a catalogue ``key`` and ``values``.

    Modules that do not speak through the catalogue themselves (``gis_grid.tables``)
    raise with the key; their callers say it.
    """
    key, values = getattr(exc, "key", None), getattr(exc, "values", None)
    if isinstance(key, str) and isinstance(values, dict) and key in catalogue()["problems"]:
        return say(key, **values)
    return exc.args[0] if exc.args and isinstance(exc.args[0], Said) else str(exc)


def render(message, lang: str) -> str:
    """A message in ``lang`` when it came from the catalogue; as it is otherwise."""
    return message.in_language(lang) if isinstance(message, Said) else str(message)


def language_of(accept: str | None) -> str:
    """``zh`` or ``en`` from an ``Accept-Language`` header (the first of the two it prefers).

    >>> language_of("zh-CN,zh;q=0.9,en;q=0.8"), language_of("en-US,en;q=0.9"), language_of(None)
    ('zh', 'en', 'en')
    >>> language_of("fr, en;q=0.5, zh;q=0.8")
    'zh'
    """
    best, weight = "en", -1.0
    for part in (accept or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower()[:2]
        if lang in LANGS and q > weight:
            best, weight = lang, q
    return best


def user_language() -> str:
    """The CLI's language: ``GIS_GRID_LANG``, else the locale (``LANG`` …), else English."""
    for name in ("GIS_GRID_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"

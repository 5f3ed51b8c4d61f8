"""Case rules: time limits per category and step, a working calendar, routing.

The rules are configuration, read from a TOML file the user edits (the
packaged ``rules.toml`` is the default and documents every key): limits in
hours for each step of the loop, counted in working hours on the calendar
(office hours, weekdays, public holidays and make-up working days) or on the
clock where a category says so; the department each category is routed to;
the street offices above the communities.

Times are local wall-clock times (China Standard Time), as the stores keep them.

Examples
--------
>>> rules = Rules.load()
>>> rules.due("environment", "handle", dt.datetime(2026, 12, 4, 16, 0))  # Friday, 8 working h
datetime.datetime(2026, 12, 7, 16, 30)
>>> rules.due("emergency", "handle", dt.datetime(2026, 12, 5, 23, 0))  # on the clock
datetime.datetime(2026, 12, 6, 1, 0)
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say

#: The steps a case waits for, in the order of the loop, with their Chinese names.
STEPS = {"accept": "立案", "dispatch": "派遣", "handle": "处置", "verify": "核查", "close": "结案"}
#: Environment variable naming the rules file when no ``--rules`` is given.
RULES_ENV = "GIS_GRID_CASE_RULES"
_MAX_DAYS = 3660  # a limit reaching further than ten years is a mistake in the file


@dataclass(frozen=True)
class Calendar:
    """Working time: office hours on working days.

    A day works when it is one of ``workdays`` (Monday = 1) and not a holiday,
    or when it is a make-up working day (调休).
    """

    workdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    hours: tuple[tuple[dt.time, dt.time], ...] = (
        (dt.time(8, 30), dt.time(12, 0)),
        (dt.time(13, 30), dt.time(17, 30)),
    )
    holidays: frozenset[dt.date] = frozenset()
    extra: frozenset[dt.date] = frozenset()

    def works(self, day: dt.date) -> bool:
        """Whether ``day`` is a working day."""
        if day in self.extra:
            return True
        return day.isoweekday() in self.workdays and day not in self.holidays

    def _spans(self, day: dt.date):
        if self.works(day):
            for a, b in self.hours:
                yield dt.datetime.combine(day, a), dt.datetime.combine(day, b)

    def add(self, start: dt.datetime, hours: float) -> dt.datetime:
        """The moment ``hours`` working hours after ``start``.

        Examples
        --------
        >>> Calendar().add(dt.datetime(2026, 12, 4, 17, 0), 1)  # Friday 17:00 + 1 h
        datetime.datetime(2026, 12, 7, 9, 0)
        """
        left = dt.timedelta(hours=hours)
        day = start.date()
        for _ in range(_MAX_DAYS):
            for a, b in self._spans(day):
                s = max(start, a)
                if s >= b:
                    continue
                if left <= b - s:
                    return s + left
                left -= b - s
            day += dt.timedelta(days=1)
        raise InputError(say("problem_hours_too_far", hours=hours, start=start))

    def between(self, a: dt.datetime, b: dt.datetime) -> float:
        """Working hours from ``a`` to ``b`` (negative when ``b`` is earlier)."""
        if b < a:
            return -self.between(b, a)
        total = dt.timedelta()
        day = a.date()
        while day <= b.date():
            for s, e in self._spans(day):
                lo, hi = max(s, a), min(e, b)
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total.total_seconds() / 3600


@dataclass(frozen=True)
class Rules:
    """Time limits, calendar, routing and street offices, as read from a rules file."""

    limits: dict[str, dict[str, float]]
    clock: frozenset[str] = frozenset()
    calendar: Calendar = field(default_factory=Calendar)
    routing: dict[str, str] = field(default_factory=dict)
    street_offices: dict[str, dict[str, str]] = field(default_factory=dict)
    source: str = "built-in"

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Rules:
        """Rules from ``path``, else the file ``$GIS_GRID_CASE_RULES`` names, else the default.

        Raises
        ------
        InputError
            A missing or malformed file, or a key or value it cannot hold, named.
        """
        path = path or os.environ.get(RULES_ENV) or None
        if path is None:
            text = files("gis_grid.cases").joinpath("rules.toml").read_text(encoding="utf-8")
            return cls.parse(text, "built-in")
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                say("problem_rules_unreadable", path=str(path), why=str(exc))
            ) from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "rules") -> Rules:
        """Rules from TOML text (see the packaged ``rules.toml``)."""
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(say("problem_rules_toml", source=source, why=str(exc))) from None
        unknown = set(raw) - {"calendar", "limits", "routing", "street_offices"}
        if unknown:
            raise InputError(
                say("problem_rules_sections", source=source, sections=", ".join(sorted(unknown)))
            )
        default = {s: 0.0 for s in STEPS}
        limits, clock = {}, set()
        for category, table in raw.get("limits", {}).items():
            if not isinstance(table, dict):
                raise InputError(say("problem_rules_table", source=source, category=category))
            steps = {}
            for key, value in table.items():
                if key == "clock":
                    if not isinstance(value, bool):
                        raise InputError(
                            say("problem_rules_clock", source=source, category=category)
                        )
                    if value:
                        clock.add(category)
                    continue
                if key not in STEPS:
                    raise InputError(
                        say(
                            "problem_rules_step",
                            source=source,
                            category=category,
                            item=key,
                            steps=", ".join(STEPS),
                        )
                    )
                if not isinstance(value, int | float) or not 0 < value <= 24 * 366:
                    raise InputError(
                        say(
                            "problem_rules_hours",
                            source=source,
                            category=category,
                            item=key,
                            value=repr(value),
                        )
                    )
                steps[key] = float(value)
            limits[category] = steps
        if "default" not in limits or set(limits["default"]) != set(STEPS):
            raise InputError(say("problem_rules_default", source=source, steps=", ".join(STEPS)))
        default = limits.pop("default")
        limits = {c: {**default, **steps} for c, steps in limits.items()}
        limits["default"] = default
        cal = raw.get("calendar", {})
        try:
            calendar = Calendar(
                workdays=frozenset(int(d) for d in cal.get("workdays", [1, 2, 3, 4, 5])),
                hours=tuple(
                    (dt.time.fromisoformat(a), dt.time.fromisoformat(b))
                    for a, b in cal.get("hours", [["08:30", "12:00"], ["13:30", "17:30"]])
                ),
                holidays=frozenset(dt.date.fromisoformat(d) for d in cal.get("holidays", [])),
                extra=frozenset(dt.date.fromisoformat(d) for d in cal.get("workdays_extra", [])),
            )
        except (TypeError, ValueError) as exc:
            raise InputError(say("problem_rules_calendar", source=source, why=str(exc))) from None
        if not calendar.workdays <= set(range(1, 8)) or any(a >= b for a, b in calendar.hours):
            raise InputError(say("problem_rules_spans", source=source))
        if not calendar.hours or not (calendar.workdays or calendar.extra):
            raise InputError(say("problem_rules_no_time", source=source))
        routing = {str(k): str(v) for k, v in raw.get("routing", {}).items()}
        offices = {
            str(k): {"name": str(v.get("name", "街道办事处")), "phone": str(v.get("phone", ""))}
            for k, v in raw.get("street_offices", {}).items()
        }
        return cls(limits, frozenset(clock), calendar, routing, offices, source)

    def limit(self, category: str, step: str) -> float:
        """Hours allowed for ``step`` of a case of ``category``."""
        return self.limits.get(category, self.limits["default"])[step]

    def on_clock(self, category: str) -> bool:
        """Whether the category's limits run on the clock rather than in working hours."""
        return category in self.clock

    def due(self, category: str, step: str, start: dt.datetime) -> dt.datetime:
        """When ``step`` of a case of ``category`` begun at ``start`` is due."""
        return self.later(category, start, self.limit(category, step))

    def later(self, category: str, start: dt.datetime, hours: float) -> dt.datetime:
        """``hours`` after ``start`` as the category counts time."""
        if self.on_clock(category):
            return start + dt.timedelta(hours=hours)
        return self.calendar.add(start, hours)

    def hours_between(self, category: str, a: dt.datetime, b: dt.datetime) -> float:
        """Hours from ``a`` to ``b`` as the category counts time."""
        if self.on_clock(category):
            return (b - a).total_seconds() / 3600
        return self.calendar.between(a, b)

    def department(self, category: str) -> str | None:
        """The department a category is routed to, if the rules name one."""
        return self.routing.get(category)

    def street_office(self, code: str) -> dict[str, str]:
        """The street office above a grid (its code's first nine digits), name and phone."""
        street = str(code)[:9]
        office = self.street_offices.get(street) or self.street_offices.get("default") or {}
        return {
            "code": street,
            "name": office.get("name", "街道办事处"),
            "phone": office.get("phone", ""),
        }

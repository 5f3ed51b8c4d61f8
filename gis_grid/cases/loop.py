"""The case loop: which step may follow which, who may take it, and what it changes.

上报 reported → 立案 accepted (or 不予立案 rejected) → 派遣 dispatched → 处置
handled → 核查 verified (or 返工 rework: back to dispatched) → 结案 closed;
besides, 延期 extend (a supervisor moves the deadline), 挂起/恢复
suspend/resume (the clock stops while a case waits on someone outside),
重办 reopen, and 升级 escalate (the sweep, or a supervisor, hands the case one
grid up).

A case's state is a fold over its log: :func:`step` takes the state and one
action and returns the columns that change and the log row that records it, or
refuses with a clear message and changes nothing. The stores keep the log
append-only and the state beside it, written together under a version check.

Examples
--------
>>> import datetime as dt
>>> from gis_grid.cases.rules import Rules
>>> case = new_case("E1", "environment", dt.datetime(2026, 12, 4, 9, 0), Rules.load())
>>> case["status"], case["deadline"]
('reported', '2026-12-04T10:00:00')
>>> changes, row = step(case, "accept", Actor("王芳", "supervisor"), rules=Rules.load(),
...                     at=dt.datetime(2026, 12, 4, 9, 30), now=dt.datetime(2026, 12, 4, 9, 31))
>>> changes["status"], changes["deadline"], row["on_time"]
('accepted', '2026-12-04T10:30:00', True)
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from gis_grid.cases.rules import STEPS, Rules
from gis_grid.domain.errors import ForbiddenError, InputError, stale_case
from gis_grid.domain.messages import say, words
from gis_grid.domain.model import CASE_LOG_COLUMNS

TIME = "%Y-%m-%dT%H:%M:%S"

#: Every status, in the order of the loop, with its Chinese name.
STATUSES = {
    "reported": "上报",
    "accepted": "立案",
    "rejected": "不予立案",
    "dispatched": "派遣",
    "handled": "处置",
    "verified": "核查",
    "closed": "结案",
    "suspended": "挂起",
}
#: The step a case in each status waits for (its deadline is that step's).
WAITS_FOR = {
    "reported": "accept",
    "accepted": "dispatch",
    "dispatched": "handle",
    "handled": "verify",
    "verified": "close",
}
OPEN = frozenset(WAITS_FOR)
DONE = frozenset({"closed", "rejected"})
#: The time column each status sets when a case enters it.
STAMPS = {
    "accepted": "accepted_at",
    "rejected": "closed_at",
    "dispatched": "dispatched_at",
    "handled": "handled_at",
    "verified": "verified_at",
    "closed": "closed_at",
}
#: Seconds a phone's clock may run ahead of the server's before its ``at`` is refused.
CLOCK_SKEW = 120

_DESK = frozenset({"admin", "supervisor"})
_FIELD = frozenset({"admin", "supervisor", "grid_worker"})


@dataclass(frozen=True)
class Action:
    """One kind of step: from which statuses, to which, and who may take it."""

    name: str
    zh: str
    sources: frozenset[str]
    target: str | None  # None: computed (resume goes back where it was)
    who: frozenset[str]
    step: str | None = None  # the loop step it completes (timed), if any
    needs_note: bool = False


ACTIONS = {
    a.name: a
    for a in (
        Action("accept", "立案", frozenset({"reported"}), "accepted", _DESK, "accept"),
        Action("reject", "不予立案", frozenset({"reported"}), "rejected", _DESK, "accept", True),
        Action("dispatch", "派遣", frozenset({"accepted"}), "dispatched", _DESK, "dispatch"),
        Action("handle", "处置", frozenset({"dispatched"}), "handled", _FIELD, "handle"),
        Action("verify", "核查", frozenset({"handled"}), "verified", _FIELD, "verify"),
        Action("rework", "返工", frozenset({"handled"}), "dispatched", _FIELD, "verify", True),
        Action("close", "结案", frozenset({"verified"}), "closed", _DESK, "close"),
        Action("extend", "延期", OPEN, None, _DESK),
        Action("suspend", "挂起", OPEN, "suspended", _DESK, None, True),
        Action("resume", "恢复", frozenset({"suspended"}), None, _DESK),
        Action("reopen", "重办", DONE, "accepted", _DESK, None, True),
        Action("escalate", "升级", OPEN, None, frozenset({"admin", "supervisor", "system"})),
    )
}

LOG_COLUMNS = CASE_LOG_COLUMNS
#: The case's own columns the loop keeps (beside its point, category and grid chain).
STATE_COLUMNS = (
    "status",
    "deadline",
    "owner_code",
    "escalation",
    "assignee",
    "department",
    "handler",
    "reworks",
    "extensions",
    "reopened",
    "satisfaction",
    "suspended_from",
    "hours_left_at_suspend",
    "version",
    "last_at",
    "steps_timed",
    "steps_on_time",
    "accepted_at",
    "dispatched_at",
    "handled_at",
    "verified_at",
    "closed_at",
)


@dataclass(frozen=True)
class Actor:
    """Who takes a step: a user's name, their access role, and their staff id if any.

    ``grids`` are the codes a grid worker covers (their assignments): they act
    only on cases under them.
    """

    name: str
    role: str
    staff_id: str | None = None
    grids: tuple[str, ...] = ()


SYSTEM = Actor("sweep", "system")


def stamp(value: dt.datetime) -> str:
    """A time as the stores keep it."""
    return value.strftime(TIME)


def parse_time(value, what: str = "time") -> dt.datetime:
    """A stored or given local time (ISO 8601; a zone, if given, converted to UTC+8)."""
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(say("problem_not_time", what=what, value=repr(value))) from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
        except OverflowError:
            raise InputError(say("problem_time_range", what=what, value=str(value))) from None
    if not 1900 <= moment.year <= 2199:
        raise InputError(say("problem_year_range", what=what, value=f"{moment:%Y-%m-%d}"))
    return moment.replace(microsecond=0)


def new_case(
    case_id: str, category: str, reported_at: dt.datetime, rules: Rules, **columns
) -> dict:
    """The state of a case just reported: waiting to be accepted, with its deadline."""
    return {
        "id": case_id,
        "category": category,
        "reported_at": stamp(reported_at),
        "status": "reported",
        "deadline": stamp(rules.due(category, "accept", reported_at)),
        "owner_code": None,
        "escalation": 0,
        "assignee": None,
        "department": rules.department(category),
        "handler": None,
        "reworks": 0,
        "extensions": 0,
        "reopened": 0,
        "satisfaction": None,
        "suspended_from": None,
        "hours_left_at_suspend": None,
        "version": 1,
        "last_at": stamp(reported_at),
        "steps_timed": 0,
        "steps_on_time": 0,
        **{c: None for c in STAMPS.values()},
        **columns,
    }


def report_row(case: dict, actor: Actor, at: dt.datetime, received: dt.datetime, note=None):
    """The log row of a case's report (its first step)."""
    return _row(case, "report", None, "reported", actor, at, received, None, None, note, {})


def _row(case, action, source, target, actor, at, received, due, on_time, note, detail) -> dict:
    return {
        "case_id": case["id"],
        "seq": 1 if action == "report" else int(case["version"]) + 1,
        "community_code": case.get("community_code"),
        "action": action,
        "from_status": source,
        "to_status": target,
        "actor": actor.name,
        "role": actor.role,
        "staff_id": actor.staff_id,
        "at": stamp(at),
        "received_at": stamp(received),
        "due": due,
        "on_time": on_time,
        "note": note or None,
        "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None,
    }


def covers(actor: Actor, case: dict) -> bool:
    """Whether the case lies under one of the actor's grids (for grid workers)."""
    chain = [case.get(f"{lv}_code") for lv in ("community", "area", "courtyard", "building")]
    codes = [c for c in chain if isinstance(c, str)] + [case.get("unit_code") or ""]
    return any(code.startswith(grid) for code in codes if code for grid in actor.grids)


def step(
    case: dict,
    action: str,
    actor: Actor,
    *,
    rules: Rules,
    now: dt.datetime,
    at: dt.datetime | None = None,
    version: int | None = None,
    note: str | None = None,
    assignee: str | None = None,
    department: str | None = None,
    photo: str | None = None,
    satisfaction: int | None = None,
    hours: float | None = None,
    owner_code: str | None = None,
) -> tuple[dict, dict]:
    """Take one step on a case: the columns that change and the log row, or a refusal.

    Parameters
    ----------
    case : dict
        The case's current state (:data:`STATE_COLUMNS`, its category, its chain).
    action : str
        A key of :data:`ACTIONS`.
    actor : Actor
        Who takes it.
    now : datetime
        When the step is received (the server's clock, or a test's).
    at : datetime, optional
        When it was taken, if earlier (a phone that syncs later); never in the
        future, never before the case's previous step.
    version : int, optional
        The case version the actor saw; a different current version is a
        :class:`ConflictError` (someone else acted first).
    hours, owner_code
        ``extend``: hours added to the deadline. ``escalate``: the grid (or
        street office) code taking the case.

    Raises
    ------
    InputError
        An unknown action, a step the status does not allow, a missing note,
        a bad value; ForbiddenError for a role or grid that may not act, or
        a handler verifying their own work; ConflictError when stale.
    """
    if action not in ACTIONS:
        raise InputError(say("problem_unknown_step", step=repr(action), steps=", ".join(ACTIONS)))
    act = ACTIONS[action]
    status = case["status"]
    if version is not None and int(version) != int(case["version"]):
        raise stale_case(case["id"], case["version"], version)
    if actor.role not in act.who:
        who = sorted(act.who - {"system"})
        raise ForbiddenError(
            say(
                "problem_step_role",
                role=actor.role,
                role_zh=words("access_roles", actor.role),
                step=action,
                step_zh=act.zh,
                who=" or ".join(who),
                who_zh="或".join(words("access_roles", w) for w in who),
            )
        )
    if actor.role == "grid_worker" and not covers(actor, case):
        raise ForbiddenError(say("problem_outside_grids", case=case["id"]))
    if status not in act.sources:
        steps = next_steps(status)
        raise InputError(
            say(
                "problem_step_status",
                case=case["id"],
                status=status,
                status_zh=STATUSES.get(status, status),
                done=_past(action),
                step_zh=act.zh,
                hint=_next_hint(status),
                hint_zh=(
                    "下一步可以" + "或".join(f"“{words('messages', x)}”" for x in steps)
                    if steps
                    else "已无可办理的步骤"
                ),
            )
        )
    if act.needs_note and not (note or "").strip():
        raise InputError(say("problem_needs_note", step=action, step_zh=act.zh))
    at = at or now
    if (at - now).total_seconds() > CLOCK_SKEW:
        raise InputError(say("problem_in_future", at=stamp(at), now=stamp(now)))
    last_seen = parse_time(case.get("last_at") or case["reported_at"])
    if at < last_seen:
        raise InputError(say("problem_before_previous", at=stamp(at), last=stamp(last_seen)))
    category = case["category"]
    deadline = parse_time(case["deadline"]) if case.get("deadline") else None
    due = case.get("deadline")
    on_time = None if act.step is None or deadline is None else bool(at <= deadline)
    target = act.target or status
    changes: dict = {"version": int(case["version"]) + 1, "last_at": stamp(at)}
    if on_time is not None:  # kept on the case, so indicators need not fold the log
        changes["steps_timed"] = int(case.get("steps_timed") or 0) + 1
        changes["steps_on_time"] = int(case.get("steps_on_time") or 0) + int(on_time)
    detail: dict = {}

    if action == "dispatch":
        department = department or case.get("department") or rules.department(category)
        if not (assignee or department):
            raise InputError(say("problem_dispatch_needs"))
        changes.update(assignee=assignee, department=department)
        detail.update(assignee=assignee, department=department)
    elif action == "handle":
        changes["handler"] = actor.name
        if photo:
            detail["photo"] = _checked_photo(photo)
    elif action in ("verify", "rework"):
        if case.get("handler") and case["handler"] == actor.name:
            raise ForbiddenError(say("problem_own_handling", name=actor.name, case=case["id"]))
        if action == "rework":
            changes["reworks"] = int(case.get("reworks") or 0) + 1
    elif action == "close":
        if satisfaction is not None:
            if not isinstance(satisfaction, int) or not 1 <= satisfaction <= 5:
                raise InputError(say("problem_satisfaction", value=repr(satisfaction)))
            changes["satisfaction"] = satisfaction
            detail["satisfaction"] = satisfaction
    elif action == "extend":
        if hours is None or not 0 < float(hours) <= 24 * 90:
            raise InputError(say("problem_extend_hours"))
        base = deadline or at
        new = rules.later(category, base, float(hours))
        changes.update(deadline=stamp(new), extensions=int(case.get("extensions") or 0) + 1)
        detail.update(hours=float(hours), deadline=stamp(new))
    elif action == "suspend":
        left = rules.hours_between(category, at, deadline) if deadline else None
        changes.update(suspended_from=status, hours_left_at_suspend=left, deadline=None)
        detail.update(hours_left=left)
    elif action == "resume":
        target = case.get("suspended_from") or "accepted"
        left = case.get("hours_left_at_suspend")
        step_name = WAITS_FOR[target]
        hours_left = max(float(left), 0.0) if left is not None else rules.limit(category, step_name)
        # a case suspended after its deadline had passed stays late: a quarter hour to act
        new = rules.later(category, at, max(hours_left, 0.25))
        changes.update(suspended_from=None, hours_left_at_suspend=None, deadline=stamp(new))
        detail.update(deadline=stamp(new))
    elif action == "reopen":
        changes["reopened"] = int(case.get("reopened") or 0) + 1
        changes.update({c: None for c in STAMPS.values() if c != "accepted_at"})
        changes["satisfaction"] = None
    elif action == "escalate":
        if not owner_code:
            raise InputError(say("problem_escalate_to"))
        level = int(case.get("escalation") or 0) + 1
        new = rules.due(category, WAITS_FOR[status], at)
        changes.update(owner_code=owner_code, escalation=level, deadline=stamp(new))
        detail.update(owner_code=owner_code, escalation=level, deadline=stamp(new))

    if target != status and action not in ("suspend",):
        if target in WAITS_FOR:
            if action not in ("resume",):
                changes["deadline"] = stamp(rules.due(category, WAITS_FOR[target], at))
        else:
            changes["deadline"] = None
        if target in STAMPS and action != "resume":  # a resumed case keeps its step times
            changes[STAMPS[target]] = stamp(at)
    if action == "rework":  # back to dispatched: the handling starts again
        changes["handled_at"] = None
        changes["handler"] = None
    changes["status"] = target
    row = _row(case, action, status, target, actor, at, now, due, on_time, note, detail)
    return changes, row


def _past(action: str) -> str:
    return {
        "accept": "accepted",
        "reject": "rejected",
        "dispatch": "dispatched",
        "handle": "handled",
        "verify": "verified",
        "rework": "sent back for rework",
        "close": "closed",
        "extend": "extended",
        "suspend": "suspended",
        "resume": "resumed",
        "reopen": "reopened",
        "escalate": "escalated",
    }[action]


def next_steps(status: str) -> list[str]:
    """The actions a case in ``status`` allows, in the order of the loop."""
    return [name for name, a in ACTIONS.items() if status in a.sources]


def _next_hint(status: str) -> str:
    steps = next_steps(status)
    if not steps:
        return "no step is open to it"
    return "its next step is " + " or ".join(steps)


def _checked_photo(value: str) -> str:
    text = str(value).strip()
    if len(text) > 1000 or any(ord(c) < 32 for c in text):
        raise InputError(say("problem_photo"))
    return text


def time_left(case: dict, rules: Rules, now: dt.datetime) -> float | None:
    """Hours until the case's deadline as its category counts time (negative: late)."""
    if not case.get("deadline") or case.get("status") not in OPEN:
        return None
    return round(rules.hours_between(case["category"], now, parse_time(case["deadline"])), 2)


def replay(rows: list[dict]) -> tuple[str | None, int]:
    """The status and version a log leads to, by folding its rows (a check of the state)."""
    status, version = None, 0
    for row in sorted(rows, key=lambda r: r["seq"]):
        if row["from_status"] != status and row["action"] != "report":
            raise InputError(
                say(
                    "problem_log_replay",
                    case=row["case_id"],
                    seq=row["seq"],
                    source=row["from_status"],
                    status=status,
                )
            )
        status, version = row["to_status"], row["seq"]
    return status, version


__all__ = [
    "ACTIONS",
    "LOG_COLUMNS",
    "OPEN",
    "STATE_COLUMNS",
    "STATUSES",
    "STEPS",
    "SYSTEM",
    "WAITS_FOR",
    "Action",
    "Actor",
    "new_case",
    "next_steps",
    "parse_time",
    "replay",
    "stamp",
    "step",
    "time_left",
]

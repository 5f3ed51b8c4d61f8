"""Cases from imported incident rows: a status and step times become a case with its log.

An incident file from another system gives, per row, a status (上报 … 结案) and
the times of the steps it went through. Each row becomes a case whose log
holds those steps in order — report, accept, dispatch, handle (and any
reworks), verify, close, or reject — with the deadline each step was due by
under the rules, and whose state (deadline of the step it waits for, version)
follows from that log. A step whose time the file leaves out takes the time of
the next step it does give (accepted and dispatched at once), else the one
before.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from gis_grid.cases.loop import (
    OPEN,
    STAMPS,
    WAITS_FOR,
    Actor,
    parse_time,
    stamp,
)
from gis_grid.cases.rules import Rules
from gis_grid.domain.model import CASE_LOG_COLUMNS

IMPORTER = Actor("import", "system")
#: The loop's statuses in the order a case reaches them, with the action that reaches each.
_PATH = (
    ("accepted", "accept"),
    ("dispatched", "dispatch"),
    ("handled", "handle"),
    ("verified", "verify"),
    ("closed", "close"),
)
_RANK = {"reported": 0, **{s: i + 1 for i, (s, _) in enumerate(_PATH)}}


def imported_history(
    features: pd.DataFrame, rules: Rules, *, received: dt.datetime | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features with their case state, and the case log their rows imply.

    Parameters
    ----------
    features : DataFrame
        Checked incident rows (``id``, ``category``, ``status``, ``reported_at``
        and the step times it has; ``reworks`` and ``satisfaction`` if given).
    rules : Rules
        Time limits: the deadline each step was due by.
    received : datetime, optional
        When the import happened (each log row's ``received_at``).
    """
    received_at = stamp(received or dt.datetime.now().replace(microsecond=0))
    out = features.copy()
    rows: list[dict] = []
    state = {
        c: []
        for c in (
            "deadline",
            "last_at",
            "version",
            "steps_timed",
            "steps_on_time",
            *STAMPS.values(),
            "department",
        )
    }

    def column(name):
        return out[name].tolist() if name in out else [None] * len(out)

    given = {c: column(c) for c in {*STAMPS.values()}}
    reworks = [int(v) if _present(v) else 0 for v in column("reworks")]
    suspended_from = column("suspended_from")
    departments = column("department")
    for i, (case_id, category, status, reported) in enumerate(
        zip(out["id"], out["category"], out["status"], out["reported_at"], strict=True)
    ):
        status = str(status or "reported")
        reported = parse_time(reported, "reported_at")
        log = [_log(case_id, 1, "report", None, "reported", reported, received_at, None, None)]
        target = status
        if status == "suspended":
            target = suspended_from[i] if suspended_from[i] in OPEN else "accepted"
        if status == "rejected":
            at = _time(given["closed_at"][i]) or reported
            due = rules.due(category, "accept", reported)
            log.append(_log(case_id, 2, "reject", "reported", "rejected", at, received_at, due))
            times = {"closed_at": stamp(at)}
            last, current = at, "rejected"
        else:
            reached = _PATH[: _RANK.get(target, 0)]
            known = [_time(given[STAMPS[s]][i]) for s, _ in reached]
            times, last, current = {}, reported, "reported"
            for k, (status_to, action) in enumerate(reached):
                at = known[k] or next((t for t in known[k + 1 :] if t), None) or last
                at = max(at, last)
                if action == "handle":
                    for _ in range(reworks[i]):  # each rework: handled, then sent back
                        due = rules.due(category, WAITS_FOR[current], last)
                        log.append(_next(log, "handle", current, "handled", at, received_at, due))
                        due = rules.due(category, "verify", at)
                        log.append(
                            _next(log, "rework", "handled", "dispatched", at, received_at, due)
                        )
                        current = "dispatched"
                due = rules.due(category, WAITS_FOR[current], last)
                log.append(_next(log, action, current, status_to, at, received_at, due))
                times[STAMPS[status_to]] = stamp(at)
                last, current = at, status_to
            if status == "suspended":
                log.append(_next(log, "suspend", current, "suspended", last, received_at, None))
                current = "suspended"
        for row in log:
            row["case_id"] = case_id
        rows += log
        waits = WAITS_FOR.get(current)
        state["deadline"].append(stamp(rules.due(category, waits, last)) if waits else None)
        state["last_at"].append(stamp(last))
        state["version"].append(len(log))
        timed = [r["on_time"] for r in log if r["on_time"] is not None]
        state["steps_timed"].append(len(timed))
        state["steps_on_time"].append(sum(timed))
        for c in dict.fromkeys(STAMPS.values()):
            state[c].append(times.get(c))
        department = departments[i] if _present(departments[i]) else rules.department(category)
        state["department"].append(department)
    for c, values in state.items():
        out[c] = values
    if "suspended_from" in out:
        out["suspended_from"] = [
            (s if s in OPEN else "accepted") if st == "suspended" else None
            for s, st in zip(out["suspended_from"], out["status"], strict=True)
        ]
    out["reworks"] = reworks
    for c in ("escalation", "extensions", "reopened"):
        out[c] = [int(v) if _present(v) else 0 for v in column(c)]
    log = pd.DataFrame(rows, columns=list(CASE_LOG_COLUMNS))
    return out, log


def _present(value) -> bool:
    return (
        value is not None
        and not (isinstance(value, float) and np.isnan(value))
        and (value is not pd.NA and value is not pd.NaT)
    )


def _time(value) -> dt.datetime | None:
    return parse_time(value) if _present(value) and str(value).strip() else None


def _log(case_id, seq, action, source, target, at, received, due, on_time=None) -> dict:
    return {
        "case_id": case_id,
        "seq": seq,
        "community_code": None,
        "action": action,
        "from_status": source,
        "to_status": target,
        "actor": IMPORTER.name,
        "role": IMPORTER.role,
        "staff_id": None,
        "at": stamp(at),
        "received_at": received,
        "due": stamp(due) if due is not None else None,
        "on_time": None if due is None else bool(at <= due),
        "note": None,
        "detail": None,
    }


def _next(log, action, source, target, at, received, due) -> dict:
    return _log(None, len(log) + 1, action, source, target, at, received, due)

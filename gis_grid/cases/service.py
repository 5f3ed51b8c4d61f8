"""Cases on a store: report, act, list, show, and the sweep that escalates late cases.

Every function takes a store and the :class:`~gis_grid.cases.rules.Rules`; the
CLI, the API and Open311 call these and nothing else, so a step means the same
wherever it is taken. A case is a feature of the incidents layer; its state
columns and its log change together, under the version the actor saw.

Owners (小事不出网格、大事不出社区): a new case belongs to the deepest grid of
its chain that has somebody responsible (属地兜底: else the next one up);
each escalation hands it to the next grid up that has somebody, and above the
community to the street office (the code's first nine digits).

The steps, the sweep and the lists live here; intake is :mod:`gis_grid.cases.intake`
and reading a case :mod:`gis_grid.cases.records`, both re-exported for callers.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from gis_grid.cases.intake import report, report_many
from gis_grid.cases.loop import (
    OPEN,
    STATUSES,
    Actor,
    stamp,
    step,
)
from gis_grid.cases.records import (
    STEP_TIMES,
    STREET_DIGITS,
    case_features,
    categories,
    category_key,
    get_case,
    now,
    owner_code_of,
    owners,
    plain_value,
    ready,
    record,
    show,
)
from gis_grid.cases.rules import Rules
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.domain.model import Level, level_of_code
from gis_grid.grids.linkage import responsible

# -- steps ------------------------------------------------------------------


def act(
    store,
    case_id: str,
    action: str,
    actor: Actor,
    *,
    rules: Rules,
    version: int | None = None,
    received: dt.datetime | None = None,
    at: dt.datetime | None = None,
    **params,
) -> dict:
    """Take one step on a case and write it with its log row; the case as it is now.

    Raises what :func:`~gis_grid.cases.loop.step` raises; nothing is written then.
    """
    received = received or now()
    case = get_case(store, case_id)
    if action == "escalate" and not params.get("owner_code"):
        params["owner_code"] = next_owners(store, [owner_code_of(case) or ""])[0]
        if params["owner_code"] is None:
            raise InputError(say("problem_at_top", case=case_id))
    changes, row = step(
        case, action, actor, rules=rules, now=received, at=at, version=version, **params
    )
    row["community_code"] = _community(case)
    store.record_steps([{"id": case["id"], "expected": case["version"], **changes}], [row])
    return show(store, case["id"], rules, received)


def _community(case: dict) -> str | None:
    code = case.get("community_code") or case.get("owner_code")
    return str(code)[:12] if code and len(str(code)) >= 12 else None


def next_owners(store, codes: list[str]) -> list[str | None]:
    """The grid above each owner code that has somebody (属地兜底), or the street office.

    A street office (nine digits) has nobody above it: None.
    """
    out: list[str | None] = [None] * len(codes)
    rows = []
    for i, code in enumerate(codes):
        code = str(code or "")
        if len(code) <= STREET_DIGITS:
            continue
        level = level_of_code(code)
        if level is Level.COMMUNITY:
            out[i] = code[:STREET_DIGITS]
            continue
        parent = code[: Level(level - 1).code_length]
        chain = {f"{lv.key}_code": None for lv in Level}
        for lv in Level:
            if lv.code_length <= len(parent):
                chain[f"{lv.key}_code"] = parent[: lv.code_length]
        rows.append((i, chain))
    if rows:
        chains = pd.DataFrame([c for _, c in rows])
        found = responsible(store, chains)["staff_grid_code"].to_numpy(dtype=object)
        for (i, chain), code in zip(rows, found, strict=True):
            out[i] = code if code is not None else chain["community_code"][:STREET_DIGITS]
    return out


def sweep(store, *, rules: Rules, received: dt.datetime | None = None) -> dict:
    """Escalate every open case past its deadline one grid up; idempotent.

    Each escalated case gets a fresh deadline for the step it waits for, so a
    second sweep at the same moment escalates nothing; a case still late at
    its new deadline goes up again. Cases already with the street office stay
    there (counted as ``at_top``). In bulk: the owners and the (category,
    status) pairs of the late cases are read, the grid above each owner and
    one deadline per pair are worked out here, and the store escalates every
    late case in SQL with its log row, in one transaction; ``cases`` lists the
    first thousand.
    """
    from gis_grid.cases.loop import WAITS_FOR

    received = received or now()
    cutoff = stamp(received)
    ready(store)
    groups = store.late_groups(cutoff)
    owners_late = sorted(set(groups["owner"].dropna()))
    pairs = sorted(set(zip(groups["category"], groups["status"], strict=True)))
    if not owners_late:
        return {"as_of": cutoff, "overdue": 0, "escalated": 0, "at_top": 0, "cases": []}
    owner_next = dict(zip(owners_late, next_owners(store, owners_late), strict=True))
    # a case late at the sweep waits for the step its status names; its new deadline runs
    # from now (no late case has a step after now: its deadline would not have passed)
    due = {
        (category, status): stamp(rules.due(category, WAITS_FOR[status], received))
        for category, status in pairs
    }
    overdue = int(groups["cases"].sum())
    done = store.escalate_late(cutoff, owner_next, due)
    return {
        "as_of": cutoff,
        "overdue": overdue,
        "escalated": done["escalated"],
        "at_top": overdue - done["escalated"],
        "cases": [{"id": i, "from": f, "to": t} for i, f, t in done["sample"]],
    }


# -- lists ------------------------------------------------------------------


def list_cases(
    store,
    *,
    rules: Rules,
    at: dt.datetime | None = None,
    status=None,
    category=None,
    under=None,
    overdue: bool | None = None,
    escalated: bool | None = None,
    owner_staff: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict:
    """Cases filtered, most urgent first (least time left); a page of them and the total.

    A case layer from an earlier version gains its case columns first (:func:`ready`).

    ``status`` ``open`` means every case not closed or rejected (suspended ones too);
    ``escalated``: cases handed up at least once.
    """
    at = at or now()
    ready(store)
    where = {}
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        expanded = []
        for s in statuses:
            if s == "open":
                expanded += [*sorted(OPEN), "suspended"]
            elif s in STATUSES:
                expanded.append(s)
            else:
                raise InputError(
                    say("problem_unknown_status", status=repr(s), statuses=", ".join(STATUSES))
                )
        where["status"] = expanded
    if category:
        cats = [category] if isinstance(category, str) else list(category)
        where["category"] = [category_key(c) for c in cats]
    if overdue:
        where["status"] = sorted(set(where.get("status", OPEN)) & OPEN)
        where["deadline"] = (None, stamp(at))
    if escalated:
        where["escalation"] = (1, None)
    frame = case_features(store, where=where or None, under=under)
    if overdue:
        frame = frame.loc[frame["deadline"].notna() & (frame["deadline"].astype(str) < stamp(at))]
    cases = [
        {k: plain_value(v) for k, v in r.items() if k != "geometry"}
        for r in frame.to_dict("records")
    ]
    for case in cases:
        for c in ("reported_at", "deadline", "last_at", *STEP_TIMES):
            if case.get(c) is not None:
                case[c] = str(case[c]).replace(" ", "T")[:19]
        case["owner_code"] = owner_code_of(case)
    who = owners(store, {c["owner_code"] for c in cases if c["owner_code"]}, rules)
    if owner_staff:
        cases = [
            c for c in cases if (who.get(c["owner_code"]) or {}).get("staff_id") == owner_staff
        ]
    # most urgent first: open cases by deadline, then the rest newest first
    open_cases = sorted(
        (c for c in cases if c["status"] in OPEN and c.get("deadline")),
        key=lambda c: (c["deadline"], c["id"]),
    )
    rest = sorted(
        (c for c in cases if not (c["status"] in OPEN and c.get("deadline"))),
        key=lambda c: (c.get("reported_at") or "", c["id"]),
        reverse=True,
    )
    ordered = open_cases + rest
    page = ordered[offset : offset + limit]
    return {
        "total": len(ordered),
        "offset": offset,
        "limit": limit,
        "as_of": stamp(at),
        "cases": [record(c, rules, at, who.get(c["owner_code"])) for c in page],
    }


__all__ = [
    "act",
    "categories",
    "category_key",
    "get_case",
    "list_cases",
    "next_owners",
    "now",
    "owners",
    "record",
    "report",
    "report_many",
    "show",
    "sweep",
]

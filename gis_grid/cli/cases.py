"""``gis-grid case …`` and ``gis-grid indicators``: the case loop from the terminal.

One command per step (accept, reject, dispatch, handle, verify, close, extend,
suspend, resume, reopen, escalate), ``report`` to open a case, ``show`` and
``list`` to read, ``sweep`` to escalate late cases, ``rules`` for the limits in
force. A step names the case version it was taken on (``--version``); without
it the command reads the current one and says so.
"""

# no ``from __future__ import annotations``: the step commands are put together from
# real annotations at import time (typer reads them from the signature)
import datetime as dt
import getpass
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from gis_grid.cli.common import (
    Format,
    FormatOpt,
    StoreArg,
    app,
    err,
    fail_cleanly,
    header,
    open_arg,
    out,
    print_json,
    shown,
    tr,
)
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say

case_app = typer.Typer(
    help="Cases (事件): report, take each step of the loop, show, list, sweep late ones.",
    no_args_is_help=True,
)
app.add_typer(case_app, name="case")

RulesOpt = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="Case rules (TOML: limits, calendar, routing); default $GIS_GRID_CASE_RULES or "
        "the built-in table ('gis-grid case rules' prints it).",
    ),
]
ByOpt = Annotated[
    str | None, typer.Option("--by", help="Who takes the step (default: your login name).")
]
RoleOpt = Annotated[
    str,
    typer.Option("--role", help="Their role: supervisor, grid_worker or admin."),
]
StaffOpt = Annotated[
    str | None, typer.Option("--staff-id", help="Their staff id (a grid worker's).")
]
VersionOpt = Annotated[
    int | None,
    typer.Option(
        "--version",
        help="The case version you saw (refused if someone acted since); default: current.",
    ),
]
AtOpt = Annotated[
    str | None,
    typer.Option("--at", help="When it was done, if earlier (YYYY-MM-DDTHH:MM); not future."),
]
NowOpt = Annotated[
    str | None,
    typer.Option("--now", help="Take this moment as now (YYYY-MM-DDTHH:MM), e.g. to replay."),
]
NoteOpt = Annotated[str | None, typer.Option("--note", help="What was done, or why.")]
CaseArg = Annotated[str, typer.Argument(help="The case id (C…, or an imported id).")]


def _rules(path):
    from gis_grid.cases.rules import Rules

    return Rules.load(path)


def _actor(store, by, role, staff_id):
    from gis_grid.cases.loop import Actor
    from gis_grid.domain.access import AccessRole
    from gis_grid.grids.queries import active

    role = AccessRole.parse(role).value
    grids: tuple[str, ...] = ()
    if role == "grid_worker":
        if not staff_id:
            raise InputError(say("problem_worker_staff_flag"))
        codes = sorted(set(active(store.assignments(staff_ids=[staff_id]))["grid_code"]))
        grids = tuple(codes)
    return Actor(by or getpass.getuser(), role, staff_id, grids)


def _time(value, what):
    from gis_grid.cases.loop import parse_time

    return parse_time(value, what) if value else None


def _hours(value: float | None) -> str:
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 24:
        return tr("span_days", n=f"{sign}{value / 24:.1f}")
    return tr("span_hours", sign=sign, h=int(value), m=f"{int(round(value % 1 * 60)):02d}")


def _owner(owner: dict | None) -> str:
    if not owner:
        return "—"
    person = owner.get("staff_name") or tr("nobody")
    phone = f" {owner['phone']}" if owner.get("phone") else ""
    return f"{person}{phone} · {owner.get('name') or owner['code']} ({owner['level_zh']})"


def print_case(case: dict) -> None:
    """A case and its timeline, in 80 columns."""
    left = case["hours_left"]
    state = f"{case['status']} {case['status_zh']}"
    if left is not None:
        state += (
            f" · [red]{tr('overdue_by', span=_hours(left))}[/]"
            if left < 0
            else f" · {tr('time_left', span=_hours(left))}"
        )
        state += f" ({tr('due', at=case['deadline'].replace('T', ' ')[:16])})"
    out.print(f"[bold]{case['id']}[/] {case['category_zh']} {case['category']} · {state}")
    out.print(tr("owner_line", owner=_owner(case["owner"])))
    extra = [
        tr("case_department", v=case["department"]) if case.get("department") else "",
        tr("case_assignee", v=case["assignee"]) if case.get("assignee") else "",
        tr("case_escalated", n=case["escalation"]) if case["escalation"] else "",
        tr("case_reworks", n=case["reworks"]) if case["reworks"] else "",
        tr("case_extended", n=case["extensions"]) if case["extensions"] else "",
        tr("case_satisfaction", n=case["satisfaction"]) if case.get("satisfaction") else "",
        f"[yellow]{tr('case_duplicate', v=case['duplicate_of'])}[/]"
        if case["duplicate_of"]
        else "",
        f"[yellow]{tr('case_outside')}[/]" if case["outside"] else "",
    ]
    if any(extra):
        out.print(" · ".join(e for e in extra if e))
    if case.get("description"):
        out.print(f"[dim]{case['description']}[/]")
    steps = " | ".join(case["next_steps"]) or tr("no_next_steps")
    out.print(tr("version_next", version=case["version"], steps=steps))
    if case.get("timeline"):
        table = Table(*map(header, ("at", "step", "by", "note")), box=None, pad_edge=False)
        table.columns[0].no_wrap = True
        for row in case["timeline"]:
            late = "" if row["on_time"] is not False else f" [red]{header('late')}[/]"
            table.add_row(
                row["at"].replace("T", " ")[:16],
                f"{row['action_zh']} {row['action']}{late}",
                f"{row['actor']} ({row['role']})",
                row.get("note") or _detail(row["detail"]),
            )
        out.print(table)


def show_case(case: dict, fmt: Format) -> None:
    """A case as the command was asked to print it: JSON, or the case and its timeline."""
    if fmt is Format.json:
        print_json(case)
    else:
        print_case(case)


def _detail(detail: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in detail.items() if v is not None)


@case_app.command("report")
@fail_cleanly
def case_report(
    store: StoreArg,
    lon: Annotated[float, typer.Option(help="Longitude (WGS84 unless --crs).")],
    lat: Annotated[float, typer.Option(help="Latitude.")],
    category: Annotated[str, typer.Option(help="A category key or its Chinese name.")],
    crs: Annotated[
        str | None, typer.Option(help="gcj02 (Gaode/Tencent), bd09 (Baidu) or an EPSG code.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What is wrong.")] = None,
    address: Annotated[str | None, typer.Option(help="Where, in words.")] = None,
    photo: Annotated[str | None, typer.Option(help="A photo's path or URL.")] = None,
    source: Annotated[str | None, typer.Option(help="Where the report came from.")] = None,
    by: ByOpt = None,
    at: AtOpt = None,
    now: NowOpt = None,
    rules: RulesOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Report a case (上报): placed in its grids, owned, with its first deadline."""
    from gis_grid.cases.loop import Actor
    from gis_grid.cases.service import report

    with open_arg(store) as st:
        case = report(
            st,
            lon=lon,
            lat=lat,
            category=category,
            crs=crs,
            rules=_rules(rules),
            actor=Actor(by or getpass.getuser(), "supervisor"),
            at=_time(at, "--at"),
            received=_time(now, "--now"),
            description=description,
            address=address,
            media_url=photo,
            source=source,
        )
    show_case(case, fmt)


def _step(action: str):
    """A command taking one step of the loop."""

    def command(
        store: StoreArg,
        case_id: CaseArg,
        by: ByOpt = None,
        role: RoleOpt = "supervisor",
        staff_id: StaffOpt = None,
        version: VersionOpt = None,
        note: NoteOpt = None,
        at: AtOpt = None,
        now: NowOpt = None,
        rules: RulesOpt = None,
        fmt: FormatOpt = Format.table,
        **params,
    ) -> None:
        from gis_grid.cases.service import act, get_case

        with open_arg(store) as st:
            if version is None:
                version = get_case(st, case_id)["version"]
                if fmt is Format.table:
                    out.print(f"[dim]{tr('acting_on', case=case_id, version=version)}[/]")
            case = act(
                st,
                case_id,
                action,
                _actor(st, by, role, staff_id),
                rules=_rules(rules),
                version=version,
                at=_time(at, "--at"),
                received=_time(now, "--now"),
                note=note,
                **{k: v for k, v in params.items() if v is not None},
            )
        show_case(case, fmt)

    return command


def _register(action: str, help_text: str, extra: dict | None = None) -> None:
    """Register ``gis-grid case ACTION`` with the shared options and its own."""
    import inspect

    base = _step(action)
    params = list(inspect.signature(base).parameters.values())[:-1]  # drop **params
    for name, annotation in (extra or {}).items():
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )

    def command(**kwargs):
        return base(**kwargs)

    command.__signature__ = inspect.Signature(params)
    command.__doc__ = help_text
    command.__name__ = f"case_{action}"
    case_app.command(action)(fail_cleanly(command))


_register("accept", "Accept a reported case (立案); its dispatch deadline starts.")
_register("reject", "Reject a reported case (不予立案), with the reason in --note.")
_register(
    "dispatch",
    "Dispatch a case (派遣) to a staff member and/or a department (default: the routing table).",
    {
        "assignee": Annotated[str | None, typer.Option(help="The staff id who handles it.")],
        "department": Annotated[
            str | None, typer.Option(help="The department (default: routed by category).")
        ],
    },
)
_register(
    "handle",
    "Record the handling (处置): what was done, and a photo.",
    {"photo": Annotated[str | None, typer.Option(help="A photo's path or URL.")]},
)
_register("verify", "Verify the handling (核查): someone other than the handler.")
_register("rework", "Send the handling back (返工): verification failed; say why in --note.")
_register(
    "close",
    "Close a verified case (结案), with the reporter's satisfaction.",
    {"satisfaction": Annotated[int | None, typer.Option(help="1 (poor) to 5 (very good).")]},
)
_register(
    "extend",
    "Extend the deadline (延期) by some hours (working hours unless on the clock).",
    {"hours": Annotated[float | None, typer.Option(help="Hours to add to the deadline.")]},
)
_register("suspend", "Suspend a case (挂起) while it waits on someone outside; say who in --note.")
_register("resume", "Resume a suspended case (恢复); its clock runs again.")
_register("reopen", "Reopen a closed or rejected case (重办); say why in --note.")
_register("escalate", "Hand a case one grid up (升级) now, as the sweep would when it is late.")


@case_app.command("show")
@fail_cleanly
def case_show(
    store: StoreArg, case_id: CaseArg, rules: RulesOpt = None, fmt: FormatOpt = Format.table
) -> None:
    """A case, its owner, its deadline and its whole timeline."""
    from gis_grid.cases.service import show

    with open_arg(store) as st:
        case = show(st, case_id, _rules(rules))
    show_case(case, fmt)


@case_app.command("list")
@fail_cleanly
def case_list(
    store: StoreArg,
    status: Annotated[
        list[str] | None, typer.Option(help="open, or a status (reported … closed); repeat.")
    ] = None,
    category: Annotated[list[str] | None, typer.Option(help="A category; repeat.")] = None,
    grid: Annotated[list[str] | None, typer.Option(help="Cases under this grid; repeat.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only cases past deadline.")] = False,
    escalated: Annotated[
        bool, typer.Option("--escalated", help="Only cases handed up at least once.")
    ] = False,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Only cases owned by this staff id.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 30,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    now: NowOpt = None,
    rules: RulesOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Cases, most urgent first (least time left), with their owners."""
    from gis_grid.cases.service import list_cases

    with open_arg(store) as st:
        found = list_cases(
            st,
            rules=_rules(rules),
            at=_time(now, "--now"),
            status=status,
            category=category,
            under=grid,
            overdue=overdue or None,
            escalated=escalated or None,
            owner_staff=owner,
            limit=limit,
            offset=offset,
        )
    if fmt is Format.json:
        print_json(found)
        return
    table = Table(
        *map(header, ("case", "category", "status", "left", "owner")),
        box=None,
        pad_edge=False,
        title_justify="left",
    )
    table.columns[0].no_wrap = True
    table.columns[3].no_wrap = True
    for c in found["cases"]:
        left = _hours(c["hours_left"])
        owner_cell = (c["owner"] or {}).get("staff_name") or "—"
        if c["owner"] and c["owner"].get("name"):
            owner_cell += f" · {c['owner']['name']}"
        table.add_row(
            c["id"],
            c["category_zh"],
            c["status_zh"] + (f" ↑{c['escalation']}" if c["escalation"] else ""),
            f"[red]{left}[/]" if c["overdue"] else left,
            owner_cell,
        )
    out.print(table)
    shown_n = len(found["cases"])
    more = found["total"] - offset - shown_n
    out.print(
        tr("cases_shown", n=f"{shown_n:,}", total=f"{found['total']:,}",
           at=found["as_of"].replace("T", " "))
        + (tr("cases_more", more=f"{more:,}", offset=offset + shown_n) if more > 0 else "")
    )  # fmt: skip


@case_app.command("sweep")
@fail_cleanly
def case_sweep(
    store: StoreArg, now: NowOpt = None, rules: RulesOpt = None, fmt: FormatOpt = Format.table
) -> None:
    """Escalate every case past its deadline one grid up (idempotent: run it often)."""
    from gis_grid.cases.service import sweep

    with open_arg(store) as st:
        result = sweep(st, rules=_rules(rules), received=_time(now, "--now"))
    if fmt is Format.json:
        print_json(result)
        return
    out.print(
        tr(
            "sweep_line",
            n=f"{result['overdue']:,}",
            at=result["as_of"].replace("T", " "),
            escalated=f"{result['escalated']:,}",
            top=f"{result['at_top']:,}",
        )
    )


@case_app.command("rules")
@fail_cleanly
def case_rules(rules: RulesOpt = None, fmt: FormatOpt = Format.table) -> None:
    """The time limits in force (hours per step and category) and the routing table."""
    from gis_grid.cases.rules import STEPS
    from gis_grid.cases.service import categories

    r = _rules(rules)
    cats = categories()
    if fmt is Format.json:
        print_json(
            {
                "source": r.source,
                "limits": {c: r.limits.get(c, r.limits["default"]) for c in cats},
                "clock": sorted(r.clock),
                "routing": r.routing,
            }
        )
        return
    table = Table(
        header("category"),
        *STEPS,
        header("dept"),
        box=None,
        pad_edge=False,
        title=tr("rules_title", source=r.source),
    )
    for key, zh in cats.items():
        clock = " ⏱" if r.on_clock(key) else ""
        table.add_row(
            f"{zh}{clock}",
            *(f"{r.limit(key, s):g}" for s in STEPS),
            r.department(key) or "",
        )
    out.print(table)
    out.print(tr("rules_note"))


@app.command("indicators")
@fail_cleanly
def indicators_command(
    store: StoreArg,
    since: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD); default 4 weeks ago.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--to", help="Last day, included (default today).")
    ] = None,
    by: Annotated[str, typer.Option(help="A level (area …), staff or department.")] = "area",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the table to a .csv file.")
    ] = None,
    now: NowOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, json or csv (to stdout).")
    ] = "table",
) -> None:
    """Case indicators (考核) per grid, person or department: closure, on time, rework."""
    from gis_grid.cases.indicators import indicators
    from gis_grid.cases.service import now as now_

    at = _time(now, "--now") or now_()
    first = dt.date.fromisoformat(since) if since else at.date() - dt.timedelta(days=27)
    last = dt.date.fromisoformat(until) if until else at.date()
    if fmt not in ("table", "json", "csv"):
        raise InputError(say("problem_format", fmt=repr(fmt), choices="table, json or csv"))
    with open_arg(store) as st:
        table = indicators(
            st,
            since=dt.datetime.combine(first, dt.time()),
            until=dt.datetime.combine(last + dt.timedelta(days=1), dt.time()),
            by=by,
            at=at,
        )
    if out_file is not None:
        table.to_csv(out_file, index=False)
        err.print(tr("wrote_rows", n=f"{len(table):,}", path=out_file))
    if fmt == "json":
        print_json(
            {"from": str(first), "to": str(last), "by": by, "rows": table.to_dict("records")}
        )
        return
    if fmt == "csv":
        print(table.to_csv(index=False), end="")
        return
    key = {"staff": "name", "department": "department"}.get(by, "name")
    table_view = Table(
        *map(
            header,
            (key, "cases", "closed", "on time", "rework", "escal.", "late", "h→close", "sat."),
        ),
        box=None,
        pad_edge=False,
        title=tr("indicators_title", first=first, last=last, by=header(by)),
        title_justify="left",
    )
    for row in table.to_dict("records"):

        def pct(v):
            return "" if v is None or pd.isna(v) else f"{v:.0%}"

        table_view.add_row(
            str(row.get(key) or row.get("code") or row.get("staff_id") or ""),
            f"{row['reported']:,}",
            pct(row["closure_rate"]),
            pct(row["on_time_rate"]),
            pct(row["rework_rate"]),
            pct(row["escalation_rate"]),
            f"{row['overdue']:,}",
            "" if row["median_hours_to_close"] is None else f"{row['median_hours_to_close']:.1f}",
            "" if row["mean_satisfaction"] is None else f"{row['mean_satisfaction']:.1f}",
        )
    out.print(table_view)


__all__ = ["case_app", "print_case", "shown"]

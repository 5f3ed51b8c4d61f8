"""The weekly review (周例会): ``gis-grid report`` writes it as HTML or PDF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gis_grid.cli.common import StoreArg, app, err, fail_cleanly, open_arg, out, print_json, tr
from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say


@app.command()
@fail_cleanly
def report(
    store: StoreArg,
    week: Annotated[
        str | None,
        typer.Option(help="The ISO week, e.g. 2026-W47 (default: the last full week)."),
    ] = None,
    community: Annotated[
        str | None, typer.Option(help="One community (its 12-digit code).")
    ] = None,
    street: Annotated[
        str | None, typer.Option(help="A street: its communities (the 9-digit code).")
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="review.pdf or review.html (default: review-WEEK.pdf)."),
    ] = None,
    lang: Annotated[str, typer.Option(help="zh (default) or en.")] = "zh",
    link_base: Annotated[
        str | None,
        typer.Option(help="The server's address: each row links to its place on the map."),
    ] = None,
    now: Annotated[
        str | None, typer.Option("--now", help="Take this moment as now (YYYY-MM-DDTHH:MM).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table (writes the report) or json (prints).")
    ] = "table",
) -> None:
    """The weekly review: headline, trends, hot spots, holes, cases, changes — HTML or PDF."""
    from gis_grid.cases.loop import parse_time
    from gis_grid.review.render import write_review
    from gis_grid.review.week import review_dict, weekly_review

    if lang not in ("zh", "en"):
        raise InputError(say("problem_lang", lang=repr(lang)))
    if fmt not in ("table", "json"):
        raise InputError(say("problem_format", fmt=repr(fmt), choices="table or json"))
    if out_file is not None and out_file.suffix.lower() not in (".pdf", ".html", ".htm"):
        raise InputError(say("problem_report_out", name=out_file.name))
    at = parse_time(now, "--now") if now else None
    with open_arg(store) as st:
        err.print(tr("gathering_week"))
        review = weekly_review(st, week, community=community, street=street, now=at)
    if fmt == "json":
        print_json(review_dict(review))
        return
    target = out_file or Path(f"review-{review.scope.code or 'all'}-{review.week}.pdf")
    err.print(tr("drawing", kind=target.suffix[1:].upper()))
    write_review(review, target, lang, link_base=link_base)
    _summary(review, target, lang)


def _summary(review, target: Path, lang: str) -> None:
    from rich.table import Table

    from gis_grid.domain.messages import words
    from gis_grid.review.render import _change, _number, w
    from gis_grid.review.week import HEADLINE

    now, before = review.this_week, review.last_week
    table = Table(
        "",
        w("this_week", lang),
        w("vs_last_week", lang),
        box=None,
        pad_edge=False,
        title=f"{review.scope.name or w('all_place', lang, n=len(review.scope.codes))} · "
        f"{review.week}",
        title_justify="left",
    )
    for key in HEADLINE:
        change, tone = _change(now.get(key), before.get(key), key, lang)
        colour = {"good": "green", "bad": "red"}.get(tone, "dim")
        table.add_row(w(f"h_{key}", lang), _number(now.get(key), key, lang), f"[{colour}]{change}")
    out.print(table)
    spots = review.hotspots
    if len(spots):
        top = spots.iloc[0]
        out.print(
            f"{words('messages', 'hotspots', lang)}: {len(spots)} · {top['name']} "
            f"({int(top['incidents'])}) {top['staff_name'] or ''} {top['staff_phone'] or ''}"
        )
    if review.empty:
        out.print(w("empty_week", lang))
    size = target.stat().st_size
    out.print(tr("wrote_report", path=target, kb=f"{size / 1024:,.0f}"))

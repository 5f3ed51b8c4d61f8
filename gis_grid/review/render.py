"""The weekly review as one self-contained HTML file, or an A4 PDF printed from it.

The HTML holds its pictures (``data:`` URIs) and its style, names no font
file and no other address, so it opens offline and makes no request. The
PDF is the same HTML printed by WeasyPrint, with the report's Chinese font
(:mod:`gis_grid.review.fonts`) given to it, page numbers and a title page.

With ``link_base`` (the server's address) each row links to the map page at
its place (``/map/overview#at=lon,lat,zoom``).
"""

from __future__ import annotations

import datetime as dt
import math
from importlib.resources import files
from pathlib import Path

import pandas as pd

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say, words
from gis_grid.review import figures
from gis_grid.review.week import HEADLINE, MIN_RANKED, TOP, Review

#: The headline figures that are rates (shown as %), and which way is better.
RATES = {"closure_rate", "on_time_rate"}
BETTER_UP = {"closed", "closure_rate", "on_time_rate", "mean_satisfaction"}
BETTER_DOWN = {"overdue"}


def w(key: str, lang: str, **values) -> str:
    """A word of the report in ``lang`` (the catalogue's ``review`` section)."""
    text = words("review", key, lang)
    return text.format(**values) if values else text


def _number(value, key: str, lang: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if key in RATES:
        return f"{100 * float(value):.1f}%"
    if key == "mean_satisfaction":
        return f"{float(value):.2f}"
    return f"{int(value):,}"


def _change(now, before, key: str, lang: str) -> tuple[str, str]:
    """The change against the week before as text, and good/bad/flat for its colour."""
    if now is None or before is None or pd.isna(now) or pd.isna(before):
        return "—", "flat"
    delta = float(now) - float(before)
    if key in RATES:
        text = f"{100 * delta:+.1f} " + w("points", lang)
    elif key == "mean_satisfaction":
        text = f"{delta:+.2f}"
    else:
        text = f"{int(delta):+,}"
        if before:
            text += f" ({100 * delta / float(before):+.0f}%)"
    if abs(delta) < 1e-9:
        return text, "flat"
    good = (delta > 0 and key in BETTER_UP) or (delta < 0 and key in BETTER_DOWN)
    bad = (delta < 0 and key in BETTER_UP) or (delta > 0 and key in BETTER_DOWN)
    return text, "good" if good else "bad" if bad else "flat"


def _person(name, phone, fallback=False) -> str:
    if name is None or (isinstance(name, float) and math.isnan(name)) or not str(name):
        return ""
    text = f"{name} {phone}" if phone and not pd.isna(phone) else str(name)
    return text + (" *" if fallback is True else "")


def _link(base: str | None, lon, lat, zoom: int = 17, page: str = "overview") -> str | None:
    if not base or lon is None or lat is None or pd.isna(lon) or pd.isna(lat):
        return None
    return f"{base.rstrip('/')}/map/{page}#at={float(lon):.6f},{float(lat):.6f},{zoom}"


def _points(frame) -> list[tuple]:
    if frame is None or not len(frame) or "geometry" not in frame:
        return [(None, None)] * (0 if frame is None else len(frame))
    pts = frame.geometry.representative_point()
    return [(None, None) if p is None or p.is_empty else (p.x, p.y) for p in pts]


def view(review: Review, lang: str = "zh", *, link_base: str | None = None) -> dict:
    """Everything the template shows, as words and numbers in ``lang``."""
    if lang not in ("zh", "en"):
        raise InputError(say("problem_lang", lang=repr(lang)))
    now, before = review.this_week, review.last_week
    scope = review.scope
    if scope.kind == "community":
        place = scope.name
    elif scope.kind == "street":
        place = w("street_place", lang, name=scope.name, code=scope.code, n=len(scope.codes))
    else:
        place = w("all_place", lang, n=len(scope.codes))
    headline = []
    for key in HEADLINE:
        text, tone = _change(now.get(key), before.get(key), key, lang)
        series = review.headline[key].tolist()
        headline.append(
            {
                "key": key,
                "label": w(f"h_{key}", lang),
                "value": _number(now.get(key), key, lang),
                "before": _number(before.get(key), key, lang),
                "change": text,
                "tone": tone,
                "spark": figures.sparkline(series, rate=key in RATES),
            }
        )
    rises = [
        {
            "category": words("categories", r["category"], lang),
            "this_week": int(r["this_week"]),
            "before": f"{r['before']:.1f}",
            "change": f"{r['change']:+.1f}",
            "pct": "" if pd.isna(r["change_pct"]) else f"{r['change_pct']:+.0f}%",
        }
        for r in review.rises.loc[review.rises["change"] > 0].head(3).to_dict("records")
    ]
    hot_rows = []
    spot_points = figures.busiest_cells(review.spots, review.hotspots["grid_code"])
    for i, r in enumerate(review.hotspots.head(TOP).to_dict("records"), start=1):
        trends = [
            f"{words('messages', t, lang)} {int(r[t])}"
            for t in ("new", "persistent", "fading")
            if r[t]
        ]
        pt = spot_points.get(r["grid_code"])
        hot_rows.append(
            {
                "n": i,
                "name": r["name"] or r["grid_code"],
                "code": r["grid_code"],
                "incidents": int(r["incidents"]),
                "cells": int(r["cells"]),
                "z": f"{r['z']:.1f}",
                "trend": " · ".join(trends),
                "kind": "hot" if r["hot"] else "cold" if r["cold"] else "fading",
                "person": _person(r["staff_name"], r["staff_phone"], r["staff_fallback"]),
                "link": _link(link_base, pt.x, pt.y) if pt is not None else None,
            }
        )
    holes = []
    for (lon, lat), r in zip(
        _points(review.holes.head(TOP)), review.holes.head(TOP).to_dict("records"), strict=True
    ):
        holes.append(
            {
                "n": figures.letter(int(r["rank"]) - 1),
                "kind": w(f"hole_{r['kind']}", lang),
                "name": _place(r),
                "measure": _measure(r, lang),
                "incidents": "—" if pd.isna(r.get("incidents")) else int(r["incidents"]),
                "person": _person(
                    r.get("staff_name"), r.get("staff_phone"), r.get("staff_fallback")
                ),
                "link": _link(link_base, lon, lat),
            }
        )
    last_day = review.week.end - dt.timedelta(days=1)
    return {
        "lang": lang,
        "w": lambda key, **values: w(key, lang, **values),
        "title": w("title", lang),
        "place": place,
        "week": str(review.week),
        "dates": f"{review.week.start:%Y-%m-%d} – {last_day:%Y-%m-%d}",
        "generated": f"{review.generated_at:%Y-%m-%d %H:%M}",
        "as_of": f"{review.as_of:%Y-%m-%d %H:%M}",
        "in_progress": review.in_progress,
        "empty": review.empty,
        "headline": headline,
        "trend_chart": figures.trend_chart(review.categories, lang),
        "rises": rises,
        "hot": _hot_summary(review, lang),
        "hot_rows": hot_rows,
        "hot_map": figures.hotspot_map(review, lang, TOP),
        "holes": holes,
        "hole_lines": _hole_lines(review, lang),
        "holes_map": figures.holes_map(review, lang, TOP),
        "fallback": any(h["person"].endswith("*") for h in holes),
        "overdue": _cases(review.overdue, lang, link_base, overdue=True),
        "overdue_total": len(review.overdue),
        "escalated": _cases(review.escalated, lang, link_base, overdue=False),
        "escalated_total": len(review.escalated),
        "ranking": _ranking(review.ranking, lang, _places(review, link_base)),
        "ranked_total": len(review.ranking),
        "min_ranked": MIN_RANKED,
        "revisions": _revisions(review, lang),
        "changes": _changes(review, lang),
        "staff_changes": _staff(review, lang),
        "staff_total": len(review.staff_changes),
        "top": TOP,
    }


def _place(r: dict) -> str:
    name = r.get("name")
    place = str(name) if name is not None and not pd.isna(name) else str(r.get("grid_code") or "")
    street = r.get("street")
    if street is not None and not pd.isna(street):
        place = f"{street} · {place}"
    zone = r.get("zone")
    if zone is not None and not pd.isna(zone):
        place = f"{zone} · {place}"
    return place


def _measure(r: dict, lang: str) -> str:
    kind = r["kind"]
    if kind == "cctv":
        return w("m_unseen", lang, ha=f"{float(r['area_m2']) / 1e4:.1f}")
    if kind == "dark_street":
        return w("m_dark", lang, m=f"{float(r['length_m']):,.0f}")
    if kind == "cleaning_uncleaned":
        return w("m_uncleaned", lang, ha=f"{float(r['area_m2']) / 1e4:.1f}")
    if kind == "cleaning_overdue":
        return w("m_clean_late", lang, h=f"{float(r['overdue_hours']):,.0f}")
    if kind == "no_staff":
        return w("m_no_staff", lang, level=words("messages", str(r.get("level")), lang))
    return ""


def _hot_summary(review: Review, lang: str) -> str:
    s = review.hotspot_summary
    if s is None:
        return review.hotspot_note or w("no_incidents_layer", lang)
    from gis_grid.analysis.hotspots import summary_words

    return w("hot_summary", lang, **summary_words(s))


def _hole_lines(review: Review, lang: str) -> list[str]:
    s = review.hole_summary
    out = []
    if "cctv" in s:
        c = s["cctv"]
        out.append(w("s_cctv", lang, pct=c["coverage_pct"], n=c["incidents_in_holes"]))
    if "lighting" in s:
        c = s["lighting"]
        out.append(
            w(
                "s_lighting",
                lang,
                m=f"{c['dark_m']:,.0f}",
                total=f"{c['street_m']:,.0f}",
                n=c["night_incidents_near"],
            )  # fmt: skip
        )
    if "cleaning" in s:
        c = s["cleaning"]
        out.append(w("s_cleaning", lang, ha=f"{c['uncleaned_m2'] / 1e4:.1f}", n=c["overdue_zones"]))
    if "staff" in s:
        c = s["staff"]
        parts = [
            f"{words('messages', lv, lang)} {c[lv]}"
            for lv in ("community", "area", "courtyard", "building", "unit")
            if c.get(lv)
        ]
        out.append(w("s_staff", lang, n=c["unstaffed"], levels="、".join(parts) or "—"))
    return out


def _cases(frame: pd.DataFrame, lang: str, base, *, overdue: bool) -> list[dict]:
    rows = []
    for r in frame.head(TOP).to_dict("records"):
        if overdue:
            person = _person(r.get("staff_name"), r.get("staff_phone"), r.get("staff_fallback"))
            grid = r.get("grid_code")
            extra = f"{float(r['overdue_hours']):,.1f} " + w("hours", lang)
        else:
            person = _person(r.get("staff_name"), r.get("staff_phone"))
            grid = r.get("owner_name") or r.get("owner_code")
            extra = w("escalations", lang, n=int(r.get("escalation") or 0))
        rows.append(
            {
                "id": r["id"],
                "category": words("categories", str(r["category"]), lang),
                "status": words("messages", str(r["status"]), lang),
                "reported": str(r["reported_at"])[:16].replace("T", " "),
                "extra": extra,
                "grid": "" if grid is None or pd.isna(grid) else str(grid),
                "person": person,
                "link": _link(base, r.get("lon"), r.get("lat"), 18, "supervisor"),
            }
        )
    return rows


def _pct(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{100 * float(v):.1f}%"


def _places(review: Review, base: str | None) -> dict[str, str]:
    """A link to the map at each area of the review (for the ranking's rows)."""
    if not base or review.grids is None:
        return {}
    areas = review.grids.loc[review.grids["level"] == "area"]
    points = areas.geometry.representative_point()
    return {code: _link(base, p.x, p.y, 16) for code, p in zip(areas["code"], points, strict=True)}


def _ranking(frame: pd.DataFrame, lang: str, links: dict | None = None) -> dict:
    links = links or {}
    ranked = frame.loc[frame["rank"].notna()] if len(frame) else frame
    rows = [
        {
            "link": links.get(r["code"]),
            "rank": int(r["rank"]),
            "name": r["name"] or r["code"],
            "code": r["code"],
            "reported": int(r["reported"]),
            "closed": int(r["closed"]),
            "on_time": _pct(r["on_time_rate"]),
            "closure": _pct(r["closure_rate"]),
            "overdue": int(r["overdue"]),
            "rework": _pct(r["rework_rate"]),
            "sat": "—"
            if r["mean_satisfaction"] is None
            else f"{float(r['mean_satisfaction']):.2f}",
            "person": _person(r.get("staff_name"), r.get("staff_phone")),
        }
        for r in ranked.to_dict("records")
    ]
    half = TOP // 2
    few = len(frame) - len(ranked)
    if len(rows) <= TOP:
        return {"best": rows, "worst": [], "few": few}
    return {"best": rows[:half], "worst": rows[-half:], "few": few}


def _revisions(review: Review, lang: str) -> list[dict]:
    return [
        {
            "id": int(r["id"]),
            "at": f"{r['at']:%Y-%m-%d %H:%M}",
            "community": r["community_name"] or r["community_code"],
            "operation": words("messages", f"op_{r['operation']}", lang),
            "summary": r["summary"] or "",
            "author": r["author"] or "—",
            "grids": int(r["grids_changed"] or 0),
        }
        for r in review.revisions.to_dict("records")
    ]


def _changes(review: Review, lang: str) -> list[str]:
    out = []
    for c in review.changes:
        grids = "、".join(f"{w('g_' + k, lang)} {n}" for k, n in sorted(c["grids"].items()))
        out.append(
            w(
                "change_line",
                lang,
                community=c["community_name"] or c["community_code"],
                n=c["revisions"],
                grids=grids or "—",
                buildings=c["buildings_moved"],
                households=f"{c['households_moved']:,}",
                staff=len(c["staff"]),
            )
        )
    return out


def _staff(review: Review, lang: str) -> list[dict]:
    return [
        {
            "date": r["date"],
            "change": w(f"staff_{r['change']}", lang),
            "person": _person(r["name"], r["phone"]),
            "role": words("staff_roles", str(r["role"]), lang),
            "grid": f"{r['grid_name'] or ''} {r['grid_code']}".strip(),
        }
        for r in review.staff_changes.head(2 * TOP).to_dict("records")
    ]


def _environment():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    folder = Path(str(files("gis_grid.review").joinpath("templates")))
    return Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(
    review: Review, lang: str = "zh", *, link_base: str | None = None, for_print: bool = False
) -> str:
    """The review as one HTML document that holds everything it shows."""
    context = view(review, lang, link_base=link_base)
    context["for_print"] = for_print
    context["fonts"] = None
    if for_print:
        from gis_grid.review.fonts import static_font, variable_font

        context["fonts"] = {
            "regular": static_font(400).as_uri(),
            "bold": static_font(700).as_uri(),
            "full": variable_font().as_uri(),
        }
    return _environment().get_template("review.html").render(**context)


def render_pdf(review: Review, lang: str = "zh", *, link_base: str | None = None) -> bytes:
    """The review as an A4 PDF (WeasyPrint): a title page, then the sections, page numbers."""
    import logging

    from weasyprint import HTML

    logging.getLogger("fontTools").setLevel(logging.WARNING)
    html = render_html(review, lang, link_base=link_base, for_print=True)
    return HTML(string=html, base_url=None).write_pdf()


def write_review(
    review: Review, path: str | Path, lang: str = "zh", *, link_base: str | None = None
) -> Path:
    """Write the review to ``path``: ``.pdf`` prints it, ``.html`` keeps it as a page."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        data = render_pdf(review, lang, link_base=link_base)
    elif suffix in (".html", ".htm"):
        data = render_html(review, lang, link_base=link_base).encode("utf-8")
    else:
        raise InputError(say("problem_report_out", name=path.name))
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)  # a half-written report never stands under the real name
    return path

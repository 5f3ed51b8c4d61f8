"""The weekly review over HTTP: the data the review page draws, and the report as HTML or PDF.

``/api/review/{week}.json`` · ``.html`` · ``.pdf`` — ``week`` is an ISO week
(``2026-W47``) or ``last`` (the last full week); ``community`` or ``street``
narrows it (default: the whole store). The numbers are
:func:`gis_grid.review.week.weekly_review`'s, the same the CLI's ``report``
prints; a review is gathered once per store generation and kept for the
next request (the page and its PDF download ask for the same week).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.auth import UserDep
from api.deps import StoreDep
from gis_grid.domain.messages import language_of

router = APIRouter(tags=["review"])

CommunityQ = Annotated[str | None, Query(description="One community (12-digit code)")]
StreetQ = Annotated[str | None, Query(description="A street (9-digit code): its communities")]
LangQ = Annotated[
    str | None, Query(pattern="^(zh|en)$", description="zh or en (default: Accept-Language)")
]


def the_review(
    week: str,
    request: Request,
    store: StoreDep,
    user: UserDep,
    community: CommunityQ = None,
    street: StreetQ = None,
):
    """The review a request names (gathered once per store generation and week)."""
    from gis_grid.cases.records import now
    from gis_grid.review.week import Week, weekly_review

    user.check_role(user.role.reads_everything, "read the weekly review")
    at = now()
    chosen = Week.last_full(at) if week == "last" else Week.parse(week)
    # a week in progress changes by the hour even when nothing is written
    hour = at.strftime("%Y-%m-%dT%H") if chosen.end > at else None
    cache = request.app.state.analysis_cache
    key = ("review", store.generation(), str(chosen), community, street, hour)
    found = cache.get(key)
    if found is None:
        found = weekly_review(store, chosen, community=community, street=street, now=at)
        cache.put(key, found)
    return found


ReviewDep = Annotated[object, Depends(the_review)]


def _lang(request: Request, lang: str | None) -> str:
    """``lang``, else the request's language, else Chinese (the report's own default)."""
    asked = request.headers.get("accept-language")
    return lang or (language_of(asked) if asked else "zh")


def _name(review, suffix: str) -> str:
    return f"review-{review.scope.code or 'all'}-{review.week}.{suffix}"


@router.get("/api/review/{week}.json", summary="The weekly review's data (the review page's)")
def review_json(review: ReviewDep) -> dict:
    """Headline with 12 weeks, categories, hot spots, holes, cases, ranking, changes.

    Hot spots and holes come as GeoJSON with their grid and person.
    """
    from gis_grid.review.week import review_dict

    return review_dict(review)


@router.get(
    "/api/review/{week}.html",
    summary="The weekly review as one self-contained HTML file",
    response_class=HTMLResponse,
)
def review_html(review: ReviewDep, request: Request, lang: LangQ = None) -> HTMLResponse:
    """Pictures inlined, no external request; each row links to its place on the map."""
    from gis_grid.review.render import render_html

    html = render_html(review, _lang(request, lang), link_base=str(request.base_url))
    return HTMLResponse(
        html, headers={"Content-Disposition": f'inline; filename="{_name(review, "html")}"'}
    )


@router.get(
    "/api/review/{week}.pdf",
    summary="The weekly review as an A4 PDF",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def review_pdf(review: ReviewDep, request: Request, lang: LangQ = None) -> Response:
    """Printed from the HTML by WeasyPrint: title page, page numbers, A4."""
    from gis_grid.review.render import render_pdf

    data = render_pdf(review, _lang(request, lang), link_base=str(request.base_url))
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{_name(review, "pdf")}"'},
    )

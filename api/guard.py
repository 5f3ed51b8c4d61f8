"""The request guard: what is refused before a route (or its body parser) sees a request.

Plain ASGI in front of the whole app (no task per request, as ``@app.middleware``
would make), so every request — point lookups and tiles included — passes it:

- a NUL character anywhere in the path or the query string is a 422 (no
  store keeps one, and PostgreSQL refuses text that holds one);
- a request that sends a body (POST, PUT, PATCH) must carry a valid bearer
  token *before* its body is read: without one it is a 401 at once, so an
  anonymous upload costs the server nothing;
- a body larger than ``limit`` bytes is a 413: at once when its length is
  declared, and as it streams when it is not (chunked uploads are counted,
  never read past the limit).
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from api import errors
from api.auth import user_of_header
from gis_grid.domain.errors import UnauthorizedError

BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
#: Open311 clients send their ``api_key`` as a form field: a body this small is read
#: before the route checks it (a query ``api_key`` is checked here, like a header).
OPEN311 = "/open311/"
OPEN311_BODY = 64 * 1024


class RequestGuard:
    """Refuse NUL bytes, anonymous bodies and oversized bodies before the app reads them."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        """Check one request; pass it on, or answer the problem without reading further."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if "\x00" in scope.get("path", "") or b"\x00" in unquote_to_bytes(query):
            await errors.problem(
                422,
                "Invalid request",
                "a parameter holds a NUL character (%00), which no grid code, name or "
                "filter value contains; nothing was read",
            )(scope, receive, send)
            return
        if scope.get("method", "").encode() not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope["headers"] if k != b"authorization" or v.strip()}
        limit = self.limit
        key = _api_key(query) if scope.get("path", "").startswith(OPEN311) else None
        if key and b"authorization" not in headers:
            headers[b"authorization"] = b"Bearer " + key
            scope = {
                **scope,
                "headers": [*scope["headers"], (b"authorization", headers[b"authorization"])],
            }
        if scope.get("path", "").startswith(OPEN311) and b"authorization" not in headers:
            limit = min(limit, OPEN311_BODY)  # the route reads api_key from the form
        else:
            try:
                await user_of_header(
                    scope["app"], headers.get(b"authorization", b"").decode("latin-1")
                )
            except UnauthorizedError as exc:
                response = errors.problem(401, "UnauthorizedError", exc.message)
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        size = headers.get(b"content-length", b"")
        if size.isdigit():
            if int(size) > limit:
                await self._too_large(int(size), limit, scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # no declared length (chunked): count the body as it comes, at most the limit
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await self._too_large(None, limit, scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, size: int | None, limit: int, scope, receive, send) -> None:
        said = f"the body has {size:,} bytes" if size is not None else "the body grew past it"
        await errors.problem(
            413, "Request too large", f"{said}; at most {limit:,} bytes are accepted"
        )(scope, receive, send)


def _api_key(query: bytes) -> bytes | None:
    """An Open311 ``api_key`` in a query string, if any."""
    from urllib.parse import parse_qs

    values = parse_qs(query.decode("latin-1")).get("api_key")
    return values[0].encode("latin-1") if values and values[0] else None

"""Token authentication and what each role may see.

Every route takes the :data:`UserDep` dependency: a bearer token
(``Authorization: Bearer …``, issued by ``gis-grid user add``) identifies an
active user; without one the answer is 401. A grid worker sees details of the
grids they are assigned to (and everything below them) only: 403 elsewhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from api.deps import StoreDep
from gis_grid.domain.access import AccessRole
from gis_grid.domain.errors import ForbiddenError, UnauthorizedError
from gis_grid.domain.messages import say, words


@dataclass
class User:
    """The user behind a request."""

    user_id: str
    name: str
    role: AccessRole
    staff_id: str | None = None
    #: For grid workers: the codes of their top grids (they see these and below).
    grids: list[str] = field(default_factory=list)

    def record(self) -> dict:
        """The user as the audit log keeps them."""
        return {"user_id": self.user_id, "role": self.role.value}

    def may_see(self, code: str) -> bool:
        """Whether the user may see the details of a grid."""
        return self.role.reads_everything or str(code).startswith(tuple(self.grids))

    def check_sees(self, code: str) -> None:
        """Raise 403 unless the user may see the grid."""
        if not self.may_see(code):
            raise ForbiddenError(
                say(
                    "problem_sees_own_grids",
                    name=self.name,
                    role_key=self.role.value,
                    role=words("access_roles", self.role.value),
                    code=code,
                )
            )

    def scope(self, under: list[str] | None = None) -> list[str] | None:
        """The subtrees a request may read.

        ``under`` (each checked), else a grid worker's own grids, else None (everything).
        """
        if under:
            for code in under:
                self.check_sees(code)
            return list(under)
        if self.role.reads_everything:
            return None
        return self.grids or ["-"]  # a grid worker with no grid sees nothing

    def check_role(self, allowed: bool, what: str) -> None:
        """Raise 403 unless ``allowed``."""
        if not allowed:
            raise ForbiddenError(
                say(
                    "problem_role_may_not",
                    role=self.role.value,
                    role_zh=words("access_roles", self.role.value),
                    what=what,
                    what_zh=words("doings", what),
                )
            )


#: The routes a reporter (an Open311 client's API key) may use.
CASE_PATHS = ("/cases", "/open311/")
#: How long a checked token is trusted before it is read again (seconds). A token
#: revoked in another process stops working within this time.
TOKEN_TTL = 5.0
_checked: dict[tuple[int, int, str], tuple[float, User]] = {}


async def current_user(request: Request, store: StoreDep) -> User:
    """The user of the request's bearer token (401 without a valid one).

    A valid token is remembered for :data:`TOKEN_TTL` seconds per store, so a
    burst of map clicks or tiles reads the users table once; a revocation
    through the same store object takes effect at once. ``async``: a request
    whose token was just checked does not wait for the thread pool.
    """
    user = await _user(store, request.headers.get("authorization", ""))
    if user.role.cases_only and not request.url.path.startswith(CASE_PATHS):
        raise ForbiddenError(say("problem_reporter_only", name=user.name))
    return user


async def user_of_header(app, header: str) -> User:
    """The user of an ``Authorization`` header, before any route runs (the request guard).

    Takes the embedded store's lock as the store dependency does; a token
    checked here is remembered, so the route's own check reads nothing again.
    """
    lock = app.state.store_lock
    if lock is None:
        return await _user(app.state.store, header)
    async with lock:
        return await _user(app.state.store, header)


async def user_of(store, header: str) -> User:
    """The user of an ``Authorization`` header on a store already held (Open311's api_key)."""
    return await _user(store, header)


async def _user(store, header: str) -> User:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError(say("problem_no_token"))
    key = (id(store), store.user_epoch, token.strip())
    now = time.monotonic()
    hit = _checked.get(key)
    if hit is not None and now - hit[0] < TOKEN_TTL:
        return hit[1]
    found = await run_in_threadpool(store.user_of_token, token.strip())
    if found is None:
        _checked.pop(key, None)
        raise UnauthorizedError(say("problem_bad_token"))
    user = User(
        user_id=found["user_id"],
        name=found["name"],
        role=AccessRole.parse(found["role"]),
        staff_id=found.get("staff_id"),
    )
    if user.role is AccessRole.GRID_WORKER:
        from gis_grid.grids.queries import active

        assigned = await run_in_threadpool(store.assignments, staff_ids=[user.staff_id])
        codes = sorted(set(active(assigned)["grid_code"]))
        user.grids = [c for c in codes if not any(c != o and c.startswith(o) for o in codes)]
    if len(_checked) > 10_000:
        _checked.clear()
    _checked[key] = (now, user)
    return user


UserDep = Annotated[User, Depends(current_user)]

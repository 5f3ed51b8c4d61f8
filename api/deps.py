"""Typed dependencies: the store of the running app."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from api.settings import Settings


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with (``async``: no hop through the thread pool)."""
    return request.app.state.settings


def get_store(request: Request) -> Iterator:
    """The app's store; an embedded (SQLite) store serves one request at a time."""
    lock: threading.Lock | None = request.app.state.store_lock
    if lock is None:
        yield request.app.state.store
        return
    with lock:
        yield request.app.state.store


async def shared_store(request: Request):
    """The app's store when it serves requests at once (PostGIS: a pool).

    Installed over :func:`get_store` for such stores: an ``async`` dependency
    costs no hop through the thread pool.
    """
    return request.app.state.store


StoreDep = Annotated[object, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

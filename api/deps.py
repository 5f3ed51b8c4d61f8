"""Typed dependencies: the store of the running app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from api.settings import Settings


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with (``async``: no hop through the thread pool)."""
    return request.app.state.settings


async def get_store(request: Request) -> AsyncIterator:
    """The app's store, for the length of the request.

    PostGIS serves requests at once (a pool): the store as it is, with no hop
    through the thread pool. An embedded (SQLite) store serves one request at
    a time: its ``asyncio`` lock is held until the request is done (waiting in
    the event loop; a cancelled request gives it back). One dependency for
    both, not an override: with any dependency overridden, FastAPI inspects
    every dependency's signature again on every request.
    """
    lock: asyncio.Lock | None = request.app.state.store_lock
    if lock is None:
        yield request.app.state.store
        return
    async with lock:
        yield request.app.state.store


StoreDep = Annotated[object, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

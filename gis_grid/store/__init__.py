"""The Store protocol and its write model (base, checks, revisions); the gpkg/ and postgis/ stores.

May import grids, layers, geo and domain (checks on every write); the two stores never meet.
"""

from __future__ import annotations

import os

from gis_grid.domain.errors import StoreError
from gis_grid.domain.messages import say
from gis_grid.store.base import ChangeSet, Store, WriteReport

__all__ = ["ChangeSet", "Store", "WriteReport", "open_store", "resolve_url"]

#: Environment variable naming the store when a command is given none.
ENV_URL = "GIS_GRID_DATABASE_URL"


def resolve_url(url: str | os.PathLike | None) -> str:
    """The store a user means: the given URL/path, else ``GIS_GRID_DATABASE_URL``."""
    if url is None or str(url) == "":
        url = os.environ.get(ENV_URL)
        if not url:
            raise StoreError(say("problem_no_store_given", env=ENV_URL))
    return os.fspath(url)


def open_store(
    url: str | os.PathLike | None = None, *, create: bool = False, tile_url: str | None = None
) -> Store:
    """Open the store a user named: a ``.gpkg`` path or a ``postgresql://`` URL.

    Parameters
    ----------
    url : str or path, optional
        A GeoPackage file path or ``postgresql://user:pass@host:port/db``;
        default ``GIS_GRID_DATABASE_URL``.
    create : bool
        Create an empty store (a new GeoPackage file, or the schema in an
        existing PostgreSQL database) when there is none.
    tile_url : str, optional
        A streaming read replica of a PostgreSQL store to make vector tiles on.

    Raises
    ------
    StoreError
        When the URL names no store this version can open.
    """
    text = resolve_url(url)
    if text.startswith(("postgresql://", "postgres://")):
        from gis_grid.store.postgis import PostGISStore

        return PostGISStore(text, create=create, tile_url=tile_url)
    if tile_url is not None:
        raise StoreError(say("problem_tile_replica_kind", store=text))
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(say("problem_store_scheme", scheme=scheme))
    if not text.lower().endswith(".gpkg"):
        raise StoreError(say("problem_store_kind", text=repr(text)))
    from gis_grid.store.gpkg import GeoPackageStore

    return GeoPackageStore(text, create=create)

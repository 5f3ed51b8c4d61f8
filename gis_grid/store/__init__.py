"""Stores: where grids, staff and assignments live. See :mod:`gis_grid.store.base`."""

from __future__ import annotations

import os

from gis_grid.errors import StoreError
from gis_grid.store.base import ChangeSet, Store, WriteReport

__all__ = ["ChangeSet", "Store", "WriteReport", "open_store"]


def open_store(url: str | os.PathLike, *, create: bool = False) -> Store:
    """Open the store a user named: a ``.gpkg`` path.

    Parameters
    ----------
    url : str or path
        A GeoPackage file path.
    create : bool
        Create an empty store when the file does not exist.

    Raises
    ------
    StoreError
        When the URL names no store this version can open.
    """
    text = os.fspath(url)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(
            f"this version of gis-grid opens GeoPackage files only, not {scheme}:// URLs; "
            "give a path ending in .gpkg"
        )
    if not text.lower().endswith(".gpkg"):
        raise StoreError(f"a store is a GeoPackage file ending in .gpkg, not {text!r}")
    from gis_grid.store.gpkg import GeoPackageStore

    return GeoPackageStore(text, create=create)

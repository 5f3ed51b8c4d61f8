"""Settings of the web application, from the environment (``GIS_GRID_…``).

Built in the app factory, never at import time.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tiles.mvt import FEATURE_CAP


class Settings(BaseSettings):
    """What the app needs to know; each field can be set as ``GIS_GRID_<NAME>``.

    Examples
    --------
    >>> Settings(database_url="out/demo.gpkg").page_limit
    1000
    """

    model_config = SettingsConfigDict(env_prefix="GIS_GRID_", env_nested_delimiter="__")

    database_url: str = Field(
        "out/demo.gpkg", description="The store: a .gpkg path or a postgresql:// URL."
    )
    tile_database_url: str | None = Field(
        None,
        description="A streaming read replica of a postgresql:// store to make tiles on "
        "(default: the store itself).",
    )
    page_limit: int = Field(1000, ge=1, description="Features per page by default.")
    max_page_limit: int = Field(10_000, ge=1, description="The most features one page may ask.")
    max_body_bytes: int = Field(
        10_000_000, ge=1_000, description="Larger request bodies are refused (413)."
    )
    tile_cache_items: int = Field(4096, ge=0, description="Tiles kept in memory per process.")
    warm_tiles: bool = Field(
        True,
        description="At start, make the tiles a first page load asks for (in quiet moments).",
    )
    tile_stale_seconds: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="A layer's tile may be served this long after a write changed it (0: never).",
    )
    tile_feature_cap: int = Field(
        FEATURE_CAP,
        ge=1,
        description="Above this many features in a tile, a point layer or grid level is binned.",
    )
    write_wait_seconds: float = Field(
        5.0,
        ge=0,
        le=600,
        description="On a GeoPackage, how long a write waits for another writer (then 503).",
    )
    case_rules: str | None = Field(
        None, description="The case rules file (TOML); default: the built-in table."
    )
    sweep_seconds: float = Field(
        300, ge=0, le=86_400, description="How often late cases are escalated (0: never)."
    )
    max_vertices: int = Field(
        100_000, ge=10, description="Geometries with more vertices are refused (413)."
    )

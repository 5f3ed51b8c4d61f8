"""gis-grid: geospatial grid management (网格化管理).

Nested community grids (community › area › courtyard › building › unit) with
their staff, in a GeoPackage or PostGIS store; topology validation, point
lookup and staff coverage. Start with ``gis-grid demo``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from gis_grid.domain.model import Level, Role
from gis_grid.grids.lookup import GridIndex
from gis_grid.grids.topology import ValidationOptions, validate

__all__ = ["GridIndex", "Level", "Role", "ValidationOptions", "__version__", "validate"]

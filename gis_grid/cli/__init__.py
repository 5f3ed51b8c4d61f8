"""``gis-grid``: the command line — one module per command group.

Every command takes a store (a ``.gpkg`` path or a ``postgresql://`` URL)
first. Tables go to the terminal; ``--format json`` prints one JSON object on
stdout instead, and progress goes to stderr so JSON stays clean. A user error
prints one line starting with ``error:`` and exits 1; ``validate`` exits 1
when it finds errors. The modules register their commands on
:data:`gis_grid.cli.common.app` when imported here; this package may import
everything in ``gis_grid`` and nothing outside it.
"""

from gis_grid.cli.common import app

# the order of these imports is the order of the commands in --help
# isort: off
from gis_grid.cli import sources, grids, analysis, cases, review, web, layers, users, plan, batch  # noqa: F401
# isort: on

__all__ = ["app"]

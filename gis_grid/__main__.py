"""``python -m gis_grid``: the same as the ``gis-grid`` command."""

from gis_grid.cli import app

app(prog_name="gis-grid")

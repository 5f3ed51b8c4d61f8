"""Vector tiles (Mapbox Vector Tile) of grid levels and layers, from either store.

May import ``gis_grid`` only; the web app (``api``) serves them.
"""

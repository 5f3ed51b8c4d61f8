"""gis-grid's web application: JSON/GeoJSON routes, tiles and map pages over any store.

Built by :func:`api.main.create_app`; ``gis-grid serve STORE`` runs it. May import ``tiles``
and ``gis_grid``; nothing imports it (the CLI starts it by its import string).
"""

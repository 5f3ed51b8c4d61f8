"""gis-grid's web application: JSON/GeoJSON routes over any store.

Built by :func:`api.main.create_app`; ``gis-grid serve STORE`` runs it.
"""

"""Vector tiles (Mapbox Vector Tile) of grid levels and layers, from either store."""

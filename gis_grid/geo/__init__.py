"""CRS (GCJ-02/BD-09 too), coverage geometry and tessellation: geometry with no grids in it.

May import gis_grid.domain only.
"""

"""Batch jobs on a Dask cluster over a GeoParquet export (see :mod:`gis_grid.batch.jobs`)."""

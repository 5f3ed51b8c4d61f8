"""Levels, codes, numbering, staff roles, users and access, errors: the vocabulary, no geometry.

Imports nothing else of gis_grid; every other package may import it.
"""

"""Topology validation, grid files in and out, the lookup index and linkage: pure grid algorithms.

The stores call them on every write; may import geo and domain only.
"""

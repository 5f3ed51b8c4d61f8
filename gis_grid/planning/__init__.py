"""Edits, history (undo, restore, diff), partitioning and rebalancing, on one atom model (regroup).

May import the stores and what is below them; not analysis, sources or the CLI.
"""

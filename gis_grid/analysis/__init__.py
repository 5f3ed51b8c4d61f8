"""Coverage holes with the person responsible, Gi* hot spots, grid maps: analyses over a store.

May import the stores and what is below them; not planning, sources or the CLI.
"""

"""Where grids and layers come from: the demo generator and the OpenStreetMap import.

May import the stores and what is below them; not analysis, planning or the CLI.
"""

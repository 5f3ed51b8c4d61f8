"""The thematic layers of gis-grid, registered in the ``gis_grid.layers`` entry-point group.

- :mod:`layers.incidents` — 事件: reported cases with category, status and timestamps;
- :mod:`layers.cctv` — 监控: cameras with heading, field of view and range; gaps:
  public space no working camera sees;
- :mod:`layers.lighting` — 路灯: street lamps with their lit radius; gaps: dark
  stretches of the streets layer;
- :mod:`layers.streets` — 道路: street and path lines (context for lighting);
- :mod:`layers.cleaning` — 保洁: cleaning zones with crew, frequency and last
  cleaned; gaps: public space in no zone, and overdue zones.

Components (cameras, lamps) carry the standard component attributes of
:data:`layers.components.COMPONENT_FIELDS`. May import ``gis_grid`` only; the core finds these
through the entry points and names none of them.
"""

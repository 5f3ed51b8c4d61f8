"""The weekly review (周例会): one week of a community or a street, as data and as a report.

:func:`~gis_grid.review.week.weekly_review` gathers the week from the
analyses the pages and the CLI use (case indicators, hot spots, the layers'
holes, the revision log); :mod:`gis_grid.review.render` draws it as one
self-contained HTML file or an A4 PDF.
"""

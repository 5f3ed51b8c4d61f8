"""Cases: the loop from report to verified close, time limits, escalation, routing, indicators."""

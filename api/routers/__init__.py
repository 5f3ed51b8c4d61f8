"""Routers of the web application, one module per concern."""

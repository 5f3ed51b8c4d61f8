"""The layer plugin contract, feature schemas and row checks (the layers are in top-level layers/).

May import geo and domain only.
"""

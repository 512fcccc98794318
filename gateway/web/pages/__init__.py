"""The web's pages, one module per area; each registers its pages, menu entries and home-page blocks (gateway/web/core.py)."""

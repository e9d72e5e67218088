"""The papers' published tables and grids, with their sources."""

"""Plumbing every layer uses: errors, limits, units, YAML loading, rounding, expressions."""

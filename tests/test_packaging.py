"""The installed distribution carries the built-in specs and published data."""

from __future__ import annotations

from importlib.metadata import files

import pytest


def test_wheel_ships_specs_and_data():
    installed = {str(f) for f in files("macscalc") or []}
    if any(f.endswith(".pth") for f in installed):
        pytest.skip("editable install: the package is read from the checkout")
    for path in ("macscalc/specs/mobilenet_v1.yaml", "macscalc/specs/mobilenet_v2.yaml",
                 "macscalc/data/v1.yaml", "macscalc/data/v2.yaml"):
        assert path in installed

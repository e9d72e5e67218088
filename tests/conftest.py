"""Shared helpers: build and count specs, write temporary spec files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from macscalc import PARAM_CONVENTIONS, Convention, Report, build, count, load_spec


def counted(spec: str, alpha: str = "1", res: int | None = None, classes: int | None = None,
            params: str = "torch", ops: tuple[str, ...] = ()) -> Report:
    net = build(load_spec(spec), Fraction(alpha), (res, res) if res else None, classes)
    return count(net, Convention(PARAM_CONVENTIONS[params], ops))


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch):
    """Output as to a pipe: no width limit unless a test sets COLUMNS."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def spec_file(tmp_path: Path):
    """Write a spec with the given rows under a fixed header; returns its path."""

    def write(rows: str, header: str = "name: t\nsource: test\ninput: {size: 8}\n"
              "classes: 10\n") -> Path:
        path = tmp_path / "t.yaml"
        path.write_text(header + "layers:\n" + rows, encoding="utf-8")
        return path

    return write

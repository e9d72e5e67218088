"""The published α/ρ grid of a family, each row computed beside its published figures.

A row is computed under its table's convention (classes, parameter parts) and checked
at the table's published precision. A mismatch is never hidden: the other sources for
the same (α, resolution) are checked too, under their own conventions, so the report
can name the source that agrees with the computation.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

from macscalc.counting import Convention, count
from macscalc.graph import build
from macscalc.published import Family, PubRow, PubTable, agrees
from macscalc.spec import Spec, load_spec


class Check(NamedTuple):
    """One source's row for a grid point, and whether the computation agrees with it."""

    table: PubTable
    row: PubRow
    macs: int
    params: int

    @property
    def macs_ok(self) -> bool | None:
        return (
            None if self.row.macs is None else agrees(self.row.macs, self.macs, self.table.rounding)
        )

    @property
    def params_ok(self) -> bool | None:
        return (
            None
            if self.row.params is None
            else agrees(self.row.params, self.params, self.table.rounding)
        )


class GridRow(NamedTuple):
    alpha: Fraction
    res: int
    macs: int  # under the primary table's convention
    params: int
    primary: Check | None  # None: off the published grid
    others: tuple[Check, ...]

    @property
    def top1(self) -> str | None:
        return self.primary.row.top1 if self.primary else None


class Grid:
    """Computes grid points of one family, caching each (α, res, classes) count."""

    def __init__(self, family: Family, spec: Spec | None = None) -> None:
        self.family = family
        self.spec = spec or load_spec(family.spec)
        self._cache: dict[tuple[Fraction, int, int, str], tuple[int, int]] = {}

    def counts(self, table: PubTable, alpha: Fraction, res: int) -> tuple[int, int]:
        key = (alpha, res, table.classes, table.params.name)
        if key not in self._cache:
            report = count(
                build(self.spec, alpha, (res, res), table.classes), Convention(table.params)
            )
            self._cache[key] = (report.macs, report.params)
        return self._cache[key]

    def check(self, table: PubTable, row: PubRow) -> Check:
        return Check(table, row, *self.counts(table, row.alpha, row.res))

    def points(self, alpha: Fraction | None, res: int | None) -> list[tuple[Fraction, int]]:
        """Grid points to show: the published ones selected, or off-grid ones computed."""
        rows = self.family.primary.rows
        alphas = list(dict.fromkeys(r.alpha for r in rows))
        resolutions = list(dict.fromkeys(r.res for r in rows))
        chosen = [
            (r.alpha, r.res)
            for r in rows
            if (alpha is None or r.alpha == alpha) and (res is None or r.res == res)
        ]
        if chosen:
            return chosen
        return [
            (a, r)
            for a in ([alpha] if alpha is not None else alphas)
            for r in ([res] if res is not None else resolutions)
        ]

    def row(self, alpha: Fraction, res: int) -> GridRow:
        primary_table = self.family.primary
        macs, params = self.counts(primary_table, alpha, res)
        pub = primary_table.find(alpha, res)
        others = tuple(
            self.check(t, r)
            for t in self.family.tables[1:]
            if (r := t.find(alpha, res)) is not None
        )
        primary = Check(primary_table, pub, macs, params) if pub else None
        return GridRow(alpha, res, macs, params, primary, others)

    def rows(
        self, alpha: Fraction | None = None, res: int | None = None, max_macs: int | None = None
    ) -> list[GridRow]:
        out = [self.row(a, r) for a, r in self.points(alpha, res)]
        if max_macs is not None:
            out = [r for r in out if r.macs <= max_macs]
            out.sort(key=lambda r: -float(r.top1) if r.top1 else float("inf"))
        return out

"""The published grid of a family, each row computed beside its published figures.

A row is computed under its table's convention (classes, parameter parts, extra
operations counted as multiply-adds) and checked at the table's published precision.
A mismatch is never hidden: the other sources for the same model are checked too,
under their own conventions, so the report can name the source that agrees.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, NamedTuple

from macscalc.analysis.counting import Convention, count
from macscalc.core.errors import MacscalcError
from macscalc.core.units import fmt_alpha
from macscalc.lang.graph import Node, build
from macscalc.lang.spec import Spec, load_spec
from macscalc.published.tables import Family, PubRow, PubTable, agrees

if TYPE_CHECKING:
    from macscalc.analysis.latency import Estimate, Profile

Point = tuple[str, Fraction, int]  # spec, α, resolution


class Check(NamedTuple):
    """One source's row for a grid point, and whether the computation agrees with it."""

    table: PubTable
    row: PubRow
    macs: int  # MACs, plus the extra ops the source counts as multiply-adds
    params: int

    @property
    def macs_ok(self) -> bool | None:
        return None if self.row.macs is None else agrees(self.row.macs, self.macs,
                                                         self.table.rounding, self.table.unit)

    @property
    def params_ok(self) -> bool | None:
        return None if self.row.params is None else agrees(self.row.params, self.params,
                                                           self.table.rounding)


class GridRow(NamedTuple):
    point: Point
    model: str
    macs: int  # under the primary table's convention
    params: int
    primary: Check | None  # None: off the published grid
    others: tuple[Check, ...]

    @property
    def top1(self) -> str | None:
        return self.primary.row.top1 if self.primary else None


class Grid:
    """Computes grid points of one family, caching each count."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self._specs: dict[str, Spec] = {}
        self._cache: dict[tuple[Point, int, str, tuple[str, ...]], tuple[int, int]] = {}

    def spec(self, name: str) -> Spec:
        if name not in self._specs:
            self._specs[name] = load_spec(name)
        return self._specs[name]

    def counts(self, table: PubTable, point: Point, row: PubRow | None = None
               ) -> tuple[int, int]:
        """MACs and params of a point under the table's convention; a row may set the
        output stride and ask for multi-scale + flip (MF)."""
        stride, mf, width = (row.output_stride, row.mf, row.width) if row else (None, False,
                                                                                None)
        key = (point, table.classes, table.params.name, table.macs_include, table.scope,
               table.atrous, stride, mf, width)
        if key not in self._cache:
            spec, alpha, res = point
            macs = params = 0
            sizes = [(s, s) for s in table.mf_sizes] if mf else [(res, width or res)]
            for size in sizes:
                report = count(build(self.spec(spec), alpha, size, table.classes,
                                     output_stride=stride),
                               Convention(table.params, table.macs_include))
                layers = [lc for lc in report.layers
                          if table.scope == "all" or not lc.node.base]
                macs += sum(lc.macs + report.counted_ops(lc) for lc in layers)
                if table.atrous == "space_to_batch":
                    macs += sum(space_to_batch_extra(lc.node) for lc in layers)
                params = sum(report.params_of(lc) for lc in layers)
            self._cache[key] = (macs * (2 if mf else 1), params)
        return self._cache[key]

    def check(self, table: PubTable, row: PubRow) -> Check:
        return Check(table, row, *self.counts(table, row.point, row))

    def lattice(self, alpha: Fraction | None = None, res: int | None = None) -> list[Point]:
        """Each spec's published multipliers × resolutions (or the given α or resolution),
        published or not."""
        rows = self.family.primary.rows
        out: list[Point] = []
        for spec in dict.fromkeys(r.spec for r in rows):
            mine = [r for r in rows if r.spec == spec]
            alphas = [alpha] if alpha is not None else list(dict.fromkeys(r.alpha for r in mine))
            resolutions = [res] if res is not None else list(dict.fromkeys(r.res for r in mine))
            out += [(spec, a, r) for a in alphas for r in resolutions]
        return out

    def points(self, alpha: Fraction | None, res: int | None) -> list[Point]:
        """Grid points to show: the published ones selected, or off-grid ones computed."""
        chosen = [r.point for r in self.family.primary.rows
                  if (alpha is None or r.alpha == alpha) and (res is None or r.res == res)]
        return chosen or self.lattice(alpha, res)

    def row(self, point: Point) -> GridRow:
        primary_table = self.family.primary
        pub = primary_table.find(point)
        macs, params = self.counts(primary_table, point, pub)
        others = tuple(self.check(t, r) for t in self.family.sources
                       if (r := t.find(point)) is not None)
        primary = Check(primary_table, pub, macs, params) if pub else None
        return GridRow(point, pub.model if pub else f"{self.name(point)}*", macs, params,
                       primary, others)

    def name(self, point: Point) -> str:
        """A grid point named as the family's published rows of the same spec are:
        ``v1_0.3_160``, ``large_0.5_224`` beside ``large_0.75``, ``M0_0.5_224``."""
        spec, alpha, res = point
        stem = spec
        for row in self.family.primary.rows:
            if row.spec == spec:
                a = fmt_alpha(row.alpha)
                stem = row.model.removesuffix(f"_{a}_{row.res}").removesuffix(f"_{a}")
                break
        return f"{stem}_{fmt_alpha(alpha)}_{res}"

    def rows(self, alpha: Fraction | None = None, res: int | None = None,
             max_macs: int | None = None) -> list[GridRow]:
        out = [self.row(p) for p in self.points(alpha, res)]
        if max_macs is not None:
            out = [r for r in out if r.macs <= max_macs]
            out.sort(key=lambda r: -float(r.top1) if r.top1 else float("inf"))
        return out


def section_rows(grid: Grid, table: PubTable) -> list[GridRow]:
    """Every row of one table, computed under that table's own convention."""
    return [GridRow(r.point, r.model, *grid.counts(table, r.point, r), grid.check(table, r),
                    ()) for r in table.rows]


class Shown(NamedTuple):
    """What ``table`` shows of a family: its sections of computed rows, each row's
    estimated latency when a profile is given, and the paper's cross-family comparison."""

    grid: Grid
    sections: list[tuple[PubTable, list[GridRow]]]
    estimates: list[list[Estimate]] | None  # per section, per row
    profile: Profile | None
    comparison: list[Check] | None  # the other family's rows, checked


def shown(grid: Grid, alpha: Fraction | None = None, res: int | None = None,
          max_macs: int | None = None, profile: Profile | None = None) -> Shown:
    """The rows selected by α, resolution and a MACs limit; a family of sources about
    different models keeps each source as its own section."""
    fam = grid.family
    if fam.sections:
        def keep(r: GridRow) -> bool:
            return ((alpha is None or r.point[1] == alpha) and (res is None or r.point[2] == res)
                    and (max_macs is None or r.macs <= max_macs))
        every = [(t, section_rows(grid, t)) for t in fam.tables]
        sections = [(t, [r for r in rows if keep(r)]) for t, rows in every]
        if not any(rows for _, rows in sections):
            points = sorted({f"α {fmt_alpha(r.point[1])} at {r.point[2]}"
                             for _, rows in every for r in rows})
            raise MacscalcError(f"no {fam.title} row matches these options; the published "
                                f"rows are at {', '.join(points)}")
        sections = [(t, rows) for t, rows in sections if rows]
    else:
        sections = [(fam.primary, grid.rows(alpha, res, max_macs))]
    estimates = None
    if profile is not None:
        from macscalc.analysis.latency import estimate

        estimates = [[estimate(count(build(grid.spec(spec), a, (r, r), t.classes),
                                     Convention(t.params)), profile)
                      for spec, a, r in (row.point for row in rows)] for t, rows in sections]
    comparison = None
    if fam.comparison is not None and max_macs is None:
        comparison = [grid.check(fam.comparison, pub) for pub in fam.comparison.rows]
    return Shown(grid, sections, estimates, profile, comparison)


def _s2b_side(n: int, k: int, rate: int, pad: str | int) -> int:
    """Positions along one axis that TF convolves for a dilated conv (``tf.nn.convolution``
    → ``with_space_to_batch``): the input padded for the window, then up to a multiple of
    the rate, is cut into rate² blocks, each convolved 'valid' with the k-tap kernel."""
    span = 2 * pad if isinstance(pad, int) else 0 if pad == "valid" else (k - 1) * rate
    blocks = -(-(n + span) // rate)
    return rate * (blocks - k + 1)


def space_to_batch_extra(node: Node) -> int:
    """MACs that TF's profiler counts for a dilated conv beyond the output's own positions:
    DeepLab's figures were measured on graphs that run atrous convs by space-to-batch."""
    layer = node.layer
    if layer.kind not in ("conv2d", "depthwise") or getattr(layer, "d", (1, 1)) == (1, 1):
        return 0
    x, out = node.in_shapes[0], node.out
    pads = (layer.padding, layer.padding) if isinstance(layer.padding, str) else layer.padding
    h = _s2b_side(x.h, layer.k[0], layer.d[0], pads[0]) if layer.d[0] > 1 else out.h
    w = _s2b_side(x.w, layer.k[1], layer.d[1], pads[1]) if layer.d[1] > 1 else out.w
    return layer.macs(node.in_shapes, out) // (out.h * out.w) * (h * w - out.h * out.w)

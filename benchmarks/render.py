"""Render benchmark: the largest per-layer table, drawn by macscalc's renderer and by rich.

A synthetic MobileNet V2 with 100 inverted residuals (about 400 rows once batch norm and
activations are folded, GhostNet-size) is counted once; then its ``count`` document is
rendered as text, fitted to 80 columns and unlimited, and the same per-layer table is
laid out by rich (``rich.table.Table`` in a ``Console`` writing to a string, no wrapping,
ellipsis overflow). Medians of ``--runs`` runs, imports excluded (both are paid at
start-up: rich by typer's baseline, ours by macscalc).

    python benchmarks/render.py [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

from macscalc import PARAM_CONVENTIONS, Convention, build, count
from macscalc.lang.spec import parse
from macscalc.render.output import Table, text
from macscalc.render.views import count_doc

SPEC = """name: wide_v2
source: synthetic, for benchmarks/render.py
input: {size: 224}
classes: 1000
rounding: make_divisible_8
defaults: {bn: true, act: relu6, padding: same}
layers:
  - conv: {c: 32, k: 3, s: 2}
  - ir: {t: 1, c: 16}
  - ir: {t: 6, c: 24, n: 10, s: 2}
  - ir: {t: 6, c: 32, n: 20, s: 2}
  - ir: {t: 6, c: 64, n: 30, s: 2}
  - ir: {t: 6, c: 96, n: 20}
  - ir: {t: 6, c: 160, n: 19, s: 2}
  - pw: {c: 1280}
  - global_pool: {}
  - fc: {c: classes}
"""


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _rich(doc_table: Table, width: int) -> str:
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    table = RichTable(title=doc_table.title, box=box.SIMPLE)
    for c in doc_table.columns:
        table.add_column(c.header, justify="left" if c.left else "right", no_wrap=True,
                         overflow="ellipsis")
    for row in doc_table.rows:
        table.add_row(*doc_table.cells(row))
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table)
    return console.file.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    report = count(build(parse(SPEC, "wide_v2.yaml")), Convention(PARAM_CONVENTIONS["torch"]))
    doc = count_doc(report)
    layers = doc.tables[0]
    print(f"per-layer table: {len(layers.rows)} rows × {len(layers.columns)} columns")
    for width in (80, None):
        ms = _median_ms(lambda w=width: text(doc, w), runs)
        print(f"macscalc text, width {width or 'unlimited':>9}: {ms:7.1f} ms (whole document)")
    for width in (80, 1000):
        ms = _median_ms(lambda w=width: _rich(layers, w), runs)
        print(f"rich Table,    width {width:>9}: {ms:7.1f} ms (per-layer table only)")


if __name__ == "__main__":
    main()

"""``count --by block|stage``: costs summed per block instance or per stage.

A peer's tree by module at depth 1 (torchinfo ``depth=1``, fvcore by module): each row of
the spec as placed (``mbconv3_2``: one repeat of one row, its own layers and any block
inside it), or each stage (the output stride its layers work at, as ``compare`` groups
them). MACs and params are the per-layer counts summed, so the groups add up to the
totals; with ``--device`` each group also gets its share of the estimated latency: the
µs of the kernels its layers launch (an estimate, as the total is).
"""

from __future__ import annotations

from typing import Any

from macscalc.analysis.counting import Report
from macscalc.commands.compare import stage_of
from macscalc.core.units import fmt_int, pct
from macscalc.render.output import Column, Doc, Table


def group_rows(report: Report, by: str) -> list[dict[str, Any]]:
    """One row per group in network order: its name, layers, first input and last output
    shapes, MACs, params (the report's convention) and, with a latency estimate on the
    report, estimated ms."""
    h = report.network.input.h
    est = report.latency
    rows: dict[str, dict[str, Any]] = {}
    for lc in report.layers:
        n = lc.node
        key = n.name.split("/")[0] if by == "block" else stage_of(n, h)
        row = rows.setdefault(key, {"name": key, "layers": 0, "in_shape": list(n.in_shapes[0]),
                                    "macs": 0, "params": 0, **({"ms": 0.0} if est else {})})
        row["layers"] += 1
        row["out_shape"] = list(n.out)
        row["macs"] += lc.macs
        row["params"] += report.params_of(lc)
        if est is not None:
            row["ms"] += est.layer_us.get(n.name, 0.0) / 1000
    for row in rows.values():
        row["macs_pct"] = pct(row["macs"], report.macs)
        if "ms" in row:
            row["ms"] = round(row["ms"], 4)
    return list(rows.values())


def with_groups(doc: Doc, report: Report, by: str) -> Doc:
    """``doc`` (count's) with the per-group table, and ``by_block`` or ``by_stage`` in its
    report's JSON."""
    rows = group_rows(report, by)
    shape = lambda s: "×".join(map(str, s))  # noqa: E731
    columns = [Column(by, "name", left=True, cut=16), Column("layers", "layers", drop=2),
               Column("input", "in_shape", shape, drop=1), Column("output", "out_shape", shape),
               Column("MACs", "macs", fmt_int), Column("% MACs", "macs_pct"),
               Column("params", "params", fmt_int)]
    notes = []
    if report.latency is not None:
        columns.append(Column("est. ms", "ms", lambda v: f"{v:.3f}", unit="ms"))
        notes.append(f"est. ms: the {report.latency.profile} profile's estimate of the kernels "
                     "each group's layers launch; an estimate, as the total is.")
    title = "By block (each row of the spec as placed)" if by == "block" else \
        "By stage (output stride)"
    doc.data["reports"][0][f"by_{by}"] = rows
    return doc._replace(tables=[*doc.tables, Table(title, columns, rows, notes)])

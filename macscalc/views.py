"""Reports as documents: what ``count`` and ``table`` show, for people and for JSON."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from macscalc.counting import Convention, Report, count
from macscalc.graph import build
from macscalc.layers import OP_CATEGORIES, PARAM_PARTS
from macscalc.output import Column, Doc, Table
from macscalc.report import envelope, fold, pct, report_data
from macscalc.units import DTYPE_BYTES, fmt_alpha, fmt_int

if TYPE_CHECKING:
    from fractions import Fraction

    from macscalc.grid import Check, Grid, GridRow
    from macscalc.latency import Profile
    from macscalc.published import PubTable, Split

MARK = {True: "✓", False: "✗", None: ""}


def count_doc(report: Report, flops: bool = False) -> Doc:
    """The per-layer table, the per-kind summary, totals and the convention."""
    net = report.network
    conv = report.convention
    data = report_data(report)
    shape = lambda s: "×".join(map(str, s))  # noqa: E731
    columns = [Column("#", "index"), Column("layer", "name", left=True),
               Column("kind", "kind", left=True), Column("input", "in_shape", shape),
               Column("output", "out_shape", shape), Column("k/s/g", "detail", left=True),
               Column("MACs", "macs", fmt_int), Column("params", "params", fmt_int),
               Column("% MACs", "macs_pct")]
    if conv.ops:
        columns.append(Column("extra ops", "extra_ops", fmt_int))
    if flops:
        columns.append(Column("FLOPs", "flops", fmt_int))
    folded = fold(data["layers"])
    layers = Table(f"Layers ({len(folded)} rows; batch norm and activation shown with the "
                   "layer they follow)", columns, folded)
    kind_cols = [Column("kind", "kind", left=True), Column("layers", "layers"),
                 Column("MACs", "macs", fmt_int), Column("% MACs", "macs_pct"),
                 Column("params", "params", fmt_int), Column("% params", "params_pct")]
    if conv.ops:
        kind_cols.append(Column("extra ops", "extra_ops", fmt_int))
    notes = []
    if "shiftmax" in conv.ops:
        kind_cols += [Column("MAdds", "madds", fmt_int), Column("% MAdds", "madds_pct")]
        notes.append("MAdds = MACs + Dynamic Shift-Max fusion multiply-adds, what the MicroNet "
                     "paper counts.")
    by_kind = Table("By layer kind", kind_cols, data["by_kind"], notes)
    tables = [layers, by_kind]
    split = _split_table(report)
    if split is not None:
        tables.append(split[0])
        data["paper_split"] = split[1]
    s = net.settings
    title = (f"{net.spec.title} — α {fmt_alpha(s.alpha)}, {s.size[0]}×{s.size[1]}, "
             f"{s.classes} classes ({net.spec.source.split(';')[0]})")
    return Doc(title, tables, [*totals_text(report, flops), f"Convention: {conv.describe(net)}"],
               envelope("count", reports=[data]))


def totals_text(report: Report, flops: bool = False) -> list[str]:
    """The totals, one line per counter, as people read them."""
    ops = report.ops_by_category
    counted = report.convention.ops
    lines = [
        f"MACs: {fmt_int(report.macs)} ({report.macs / 1e6:.2f} M)",
        f"params: {fmt_int(report.params)} ({report.params / 1e6:.3f} M, "
        f"{report.convention.params.name}); "
        + ", ".join(f"{p} {fmt_int(v)}" for p, v in zip(PARAM_PARTS, report.param_parts,
                                                         strict=True)),
        "extra ops: " + ", ".join(f"{c} {fmt_int(ops[c])}{'' if c in counted else ' (not counted)'}"
                                  for c in OP_CATEGORIES),
    ]
    if flops:
        lines.append(f"FLOPs: {fmt_int(report.flops)} ({report.flops / 1e9:.3f} G)")
    plain, streamed = report.memory
    size = DTYPE_BYTES[report.convention.dtype]
    lines.append(f"peak activation memory: {fmt_int(plain.elements * size)} bytes "
                 f"({report.convention.dtype}) while {plain.at} runs; "
                 f"{fmt_int(streamed.elements * size)} with V2 §5 streaming "
                 "(macscalc memory for detail)")
    if report.latency is not None:
        lines.append(report.latency.text())
    return lines


def _split_table(report: Report) -> tuple[Table, dict[str, Any]] | None:
    """The paper's per-type split beside the computed one, when the settings match it."""
    from macscalc.published import load_split

    spec = report.network.spec
    split: Split | None = load_split(spec.name)
    s = report.network.settings
    if split is None or (s.alpha, s.size) != (split.alpha, (split.res, split.res)):
        return None
    ref = count(
        build(spec, split.alpha, (split.res, split.res), split.classes), Convention(split.params)
    )
    shares = {k.label: k for k in ref.by_kind()}
    rows = []
    for r in split.rows:
        k = shares.get(r.label)
        m = pct(k.macs if k else 0, ref.macs)
        p = pct(k.params if k else 0, ref.params)
        rows.append(
            {
                "type": r.type,
                "kind": r.label,
                "macs_pct": m,
                "paper_macs_pct": r.macs,
                "macs_agrees": m == Decimal(r.macs),
                "params_pct": p,
                "paper_params_pct": r.params,
                "params_agrees": p == Decimal(r.params),
            }
        )
    paper_m = sum(Decimal(r.macs) for r in split.rows)
    paper_p = sum(Decimal(r.params) for r in split.rows)
    cols = [
        Column("paper type", "type", left=True),
        Column("kind", "kind", left=True),
        Column("% MACs", "macs_pct"),
        Column("paper", "paper_macs_pct"),
        Column("", "macs_agrees", MARK.get),
        Column("% params", "params_pct"),
        Column("paper", "paper_params_pct"),
        Column("", "params_agrees", MARK.get),
    ]
    notes = [
        f"Source: {split.source}; computed with {split.classes} classes, params = "
        f"{split.params.name} ({split.params.description}).",
        f"The paper's shares sum to {paper_m} % of MACs and {paper_p} % of params.",
    ]
    if split.notes:
        notes.append(split.notes)
    table = Table(f"Check against {split.source}: {split.title}", cols, rows, notes)
    data = {
        "source": split.source,
        "classes": split.classes,
        "params": split.params.name,
        "rows": rows,
        "paper_macs_sum": paper_m,
        "paper_params_sum": paper_p,
    }
    return table, data


def _check_text(c: Check) -> str:
    ref = f" {c.row.ref}" if c.row.ref else ""
    parts = []
    if c.row.macs is not None:
        unit = "B" if c.table.macs_unit == "G" else "M"
        parts.append(f"{c.row.macs} {unit} {MARK[c.macs_ok]}")
    if c.row.params is not None:
        parts.append(f"{c.row.params} M params {MARK[c.params_ok]}")
    return f"{c.table.id}{ref}: " + ", ".join(parts)


def _check_data(c: Check) -> dict[str, Any]:
    return {
        "source": c.table.source,
        "table": c.table.id,
        "ref": c.row.ref,
        "classes": c.table.classes,
        "params_convention": c.table.params.name,
        "rounding": c.table.rounding,
        "published_macs": c.row.macs, "macs_unit": c.table.macs_unit,
        "published_params_m": c.row.params,
        "computed_macs": c.macs,
        "computed_params": c.params,
        "macs_agrees": c.macs_ok,
        "params_agrees": c.params_ok,
        "top1": c.row.top1,
    }


def _mismatch_note(r: GridRow) -> str | None:
    p = r.primary
    if p is None or (p.macs_ok is not False and p.params_ok is not False):
        return None
    what = []
    unit = "MAdds" if p.table.macs_include else "MACs"
    scale, suffix, digits = (1e9, "B", 3) if p.table.macs_unit == "G" else (1e6, "M", 2)
    if p.macs_ok is False:
        what.append(f"published {p.row.macs} {suffix} {unit}, computed "
                    f"{r.macs / scale:.{digits}f} {suffix}")
    if p.params_ok is False:
        what.append(f"published {p.row.params} M params, computed {r.params / 1e6:.3f} M")
    agree = [c for c in r.others if (c.macs_ok is not False) and (c.params_ok is not False)]
    who = ("; agrees with the computation: " + "; ".join(
        f"{c.table.title}{' ' + c.row.ref if c.row.ref else ''} "
        f"({c.row.macs} M {unit}{', ' + c.row.params + ' M params' if c.row.params else ''})"
        for c in agree)) if agree else ("; no other stored source agrees" if r.others else "")
    return f"{r.model}: mismatch: " + "; ".join(what) + who


def _grid_rows(pt: PubTable, rows: list[GridRow]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        p = r.primary
        spec, alpha, res = r.point
        out.append({
            "model": r.model, "spec": spec, "alpha": fmt_alpha(alpha), "res": res,
            "macs": r.macs, "published_macs": p.row.macs if p else None,
            "macs_unit": pt.macs_unit, "macs_agrees": p.macs_ok if p else None,
            "params": r.params, "published_params_m": p.row.params if p else None,
            "params_agrees": p.params_ok if p else None,
            "top1": p.row.top1 if p else None, "top5": p.row.top5 if p else None,
            **{f"latency_{d}_ms": p.row.latency.get(d) if p else None for d in pt.devices},
            "on_grid": p is not None,
            "other_sources": "; ".join(_check_text(c) for c in r.others),
            "_checks": r.others,
            "_warn": p is not None and not (p.macs_ok is not False and p.params_ok is not False),
        })
    return out


def _grid_table(title: str, pt: PubTable, out_rows: list[dict[str, Any]]) -> Table:
    madds = "MAdds" if pt.macs_include else "MACs"
    scale, digits = (1e9, 3) if pt.macs_unit == "G" else (1e6, 2)
    unit = "B" if pt.macs_unit == "G" else "M"
    cols = [Column("model", "model", left=True),
            Column(f"{madds} ({unit})", "macs", lambda v: f"{v / scale:.{digits}f}"),
            Column("pub.", "published_macs"), Column("", "macs_agrees", MARK.get),
            Column("params (M)", "params", lambda v: f"{v / 1e6:.3f}"),
            Column("pub.", "published_params_m"), Column("", "params_agrees", MARK.get)]
    if any(r.top1 for r in pt.rows):
        cols.append(Column(pt.metric, "top1"))
    if any(r.top5 for r in pt.rows):
        cols.append(Column("top-5", "top5"))
    cols += [Column(f"{label} ms", f"latency_{d}_ms") for d, label in pt.devices.items()]
    if any("latency_est_ms" in r for r in out_rows):
        cols.append(Column("est. ms", "latency_est_ms", lambda v: f"{v:.2f}"))
    if any(r["other_sources"] for r in out_rows):
        cols.append(Column("other sources", "other_sources", left=True))
    return Table(title, cols, out_rows)


def _estimate_rows(grid: Grid, pt: PubTable, rows: list[GridRow], out_rows: list[dict[str, Any]],
                   profile: Profile) -> None:
    """Each row's estimated latency on ``profile``, beside any published one."""
    from macscalc.latency import estimate

    for r, out in zip(rows, out_rows, strict=True):
        spec, alpha, res = r.point
        report = count(build(grid.spec(spec), alpha, (res, res), pt.classes), Convention(pt.params))
        est = estimate(report, profile)
        out["latency_est_ms"], out["latency_estimate"] = est.ms, est.data()


def table_doc(grid: Grid, alpha: Fraction | None = None, res: int | None = None,
              max_macs: int | None = None, profile: Profile | None = None) -> Doc:
    """The published grid with computed counts, agreement marks and cross-source notes; a
    family of sources about different models shows each source as its own section."""
    from macscalc.grid import section_rows

    fam = grid.family
    if fam.sections:
        def keep(r: GridRow) -> bool:
            return ((alpha is None or r.point[1] == alpha) and (res is None or r.point[2] == res)
                    and (max_macs is None or r.macs <= max_macs))
        sections = [(t, [r for r in section_rows(grid, t) if keep(r)]) for t in fam.tables]
    else:
        sections = [(fam.primary, grid.rows(alpha, res, max_macs))]
    tables, notes, data_rows = [], [], []
    for pt, rows in sections:
        out_rows = _grid_rows(pt, rows)
        if profile is not None:
            _estimate_rows(grid, pt, rows, out_rows, profile)
        n = len(out_rows)
        label = pt.title if fam.sections else f"{n} model{'' if n == 1 else 's'}"
        tables.append(_grid_table(label, pt, out_rows))
        notes += [n for r in rows if (n := _mismatch_note(r))]
        notes.append(f"{pt.title}: {pt.source} [{pt.convention()}]")
        if pt.notes:
            notes.append(pt.notes)
        data_rows += [{**{k: v for k, v in row.items() if not k.startswith("_")},
                       "source": pt.source, "convention": pt.convention(),
                       "other_sources": [_check_data(c) for c in row["_checks"]]}
                      for row in out_rows]
    all_rows = [r for _, rows in sections for r in rows]
    if any(r.primary is None for r in all_rows):
        notes.append("* off the published grid: computed only, nothing to compare with.")
    rules = sorted({grid.spec(r.point[0]).rounding.name for r in all_rows})
    notes.append(f"Channel rounding for α: {', '.join(rules) or 'none'}.")
    if not fam.sections:
        others = [f"{t.id}: {t.title}, {t.source} [{t.convention()}]" for t in fam.tables[1:]]
        if others:
            notes.append("Other sources: " + " | ".join(others))
    if max_macs is not None:
        notes.append(f"Rows with computed MACs ≤ {fmt_int(max_macs)}, best first.")
    if profile is not None:
        notes.append(f"est. ms: estimated on profile {profile.name} ({profile.device}), not "
                     f"measured; ±{profile.loo.p90:.0f} % held 9 of 10 of its held-out rows.")
    title = f"{fam.title}: published figures beside the count"
    data = {"family": fam.family, "primary_source": fam.primary.source,
            "convention": fam.primary.convention(), "rows": data_rows, "notes": notes}
    if fam.comparison is not None and max_macs is None:
        compare, compare_data = _comparison(grid, sections[0][1])
        tables.append(compare)
        data["comparison"] = compare_data
    return Doc(title, tables, notes, envelope("table", **data))


def _comparison(grid: Grid, rows: list[GridRow]) -> tuple[Table, list[dict[str, Any]]]:
    """The family's models beside another family's at matched cost, as its paper does."""
    fam = grid.family
    other = fam.comparison
    assert other is not None
    entries = [{"model": r.model, "macs": r.macs, "published_macs": r.primary.row.macs,
                "macs_agrees": r.primary.macs_ok, "top1": r.top1, "source": fam.primary.title}
               for r in rows if r.primary is not None]
    for pub in other.rows:
        c = grid.check(other, pub)
        entries.append({"model": pub.model, "macs": c.macs, "published_macs": pub.macs,
                        "macs_agrees": c.macs_ok, "top1": pub.top1, "source": other.title})
    entries.sort(key=lambda e: e["macs"])
    cols = [Column("model", "model", left=True),
            Column("MAdds (M)", "macs", lambda v: f"{v / 1e6:.2f}"),
            Column("pub.", "published_macs"), Column("", "macs_agrees", MARK.get),
            Column("top-1", "top1"), Column("source", "source", left=True)]
    notes = [f"{other.title}: {other.source} [{other.convention()}]"]
    if other.notes:
        notes.append(other.notes)
    return Table(f"{fam.title} beside {other.title}, by MAdds", cols, entries, notes), entries

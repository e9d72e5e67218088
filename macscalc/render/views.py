"""Reports as documents: what ``count``, ``table`` and ``memory`` show, for people and
for JSON. Each column says how it gives way on a narrow terminal (see ``output.py``)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from macscalc.analysis.counting import Report
from macscalc.core.units import DTYPE_BYTES, fmt_alpha, fmt_int
from macscalc.lang.graph import unknown_ops
from macscalc.lang.layers import OP_CATEGORIES, PARAM_PARTS
from macscalc.render.output import Column, Doc, Table
from macscalc.render.report import envelope, fold, report_data

if TYPE_CHECKING:

    from macscalc.analysis.memory import Activations
    from macscalc.published.checks import Checks, FileCheck, MemoryCheck, SplitCheck
    from macscalc.published.grid import Check, Grid, GridRow, Shown
    from macscalc.published.tables import PubTable

MARK = {True: "✓", False: "✗", None: ""}


def count_doc(report: Report, flops: bool = False, checks: Checks | None = None) -> Doc:
    """The per-layer table, the per-kind summary, totals and the convention; with
    ``checks``, what was published about the model beside the count."""
    net = report.network
    conv = report.convention
    data = report_data(report)
    shape = lambda s: "×".join(map(str, s))  # noqa: E731
    columns = [Column("#", "index", drop=2), Column("layer", "name", left=True, cut=12),
               Column("kind", "kind", left=True, cut=9),
               Column("input", "in_shape", shape, drop=1),
               Column("output", "out_shape", shape), Column("k/s/g", "detail", left=True, drop=3),
               Column("MACs", "macs", fmt_int), Column("params", "params", fmt_int),
               Column("% MACs", "macs_pct", drop=5)]
    if conv.ops:
        columns.append(Column("extra ops", "extra_ops", fmt_int, drop=4))
    if flops:
        columns.append(Column("FLOPs", "flops", fmt_int, drop=4))
    est = report.latency
    if est is not None:
        for row in data["layers"]:
            row["est_us"] = round(est.layer_us.get(row["name"], 0.0), 3)
        columns.append(Column("est. µs", "est_us", lambda v: f"{v:.1f}", drop=4))
    folded = fold(data["layers"])
    layers = Table(f"Layers ({len(folded)} rows; batch norm and activation shown with the "
                   "layer they follow)", columns, folded)
    kind_cols = [Column("kind", "kind", left=True), Column("layers", "layers"),
                 Column("MACs", "macs", fmt_int), Column("% MACs", "macs_pct"),
                 Column("params", "params", fmt_int),
                 Column("% params", "params_pct")]
    if conv.ops:
        kind_cols.append(Column("extra ops", "extra_ops", fmt_int, drop=1))
    notes = []
    if "shiftmax" in conv.ops:
        kind_cols += [Column("MAdds", "madds", fmt_int),
                      Column("% MAdds", "madds_pct")]
        notes.append("MAdds = MACs + Dynamic Shift-Max fusion multiply-adds, what the MicroNet "
                     "paper counts.")
    by_kind = Table("By layer kind", kind_cols, data["by_kind"], notes)
    tables = [layers, by_kind]
    if est is not None:
        tables.append(Table(f"Estimated time by layer kind on {est.profile} (each kernel under "
                            "the layer that launches it)", [
            Column("kind", "kind", left=True), Column("kernels", "kernels"),
            Column("est. ms", "ms", lambda v: f"{v:.3f}"), Column("% time", "share_pct")],
            est.data()["by_kind"]))
    if checks is not None and checks.split is not None:
        table, data["paper_split"] = _split_table(checks.split)
        tables.append(table)
    s = net.settings
    depth = f"depth {fmt_alpha(net.spec.depth)}, " if net.spec.depth != 1 else ""
    title = (f"{net.spec.title} — α {fmt_alpha(s.alpha)}, {depth}{s.size[0]}×{s.size[1]}, "
             f"{s.classes} classes"
             + (f", output stride {s.output_stride}" if s.output_stride else "")
             + f" ({net.spec.source.split(';')[0]})")
    files = checks.files if checks is not None else None
    if files is not None:
        data["weight_files"] = files.rows
    notes = [*totals_text(report, flops), *([_files_note(files)] if files else [])]
    return Doc(title, tables, [*notes, f"Convention: {conv.describe(net)}"],
               envelope("count", reports=[data]))


def totals_text(report: Report, flops: bool = False) -> list[str]:
    """The totals, one line per counter, as people read them."""
    ops = report.ops_by_category
    counted = report.convention.ops
    dtype = report.convention.dtype
    lines = [
        f"MACs: {fmt_int(report.macs)} ({report.macs / 1e6:.2f} M)",
        f"params: {fmt_int(report.params)} ({report.params / 1e6:.3f} M, "
        f"{report.convention.params.name}); "
        + ", ".join(f"{p} {fmt_int(v)}" for p, v in zip(PARAM_PARTS, report.param_parts,
                                                         strict=True)),
        f"weights: {fmt_int(report.weight_bytes)} bytes ({report.weight_bytes / 1e6:.2f} MB) "
        f"at {dtype}: {fmt_int(report.params)} params × {DTYPE_BYTES[dtype]}",
        "extra ops: " + ", ".join(f"{c} {fmt_int(ops[c])}{'' if c in counted else ' (not counted)'}"
                                  for c in OP_CATEGORIES),
    ]
    if flops:
        lines.append(f"FLOPs: {fmt_int(report.flops)} ({report.flops / 1e9:.3f} G)")
    unknown = unknown_ops(report.network)
    if unknown:
        lines.append("status: PARTIAL, these operators are counted as unknown (their MACs, "
                     "params and ops are not in the totals): " + "; ".join(
                         f"{op} ({', '.join(names)})" for op, names in unknown.items()))
    plain, streamed = report.memory
    size = DTYPE_BYTES[dtype]
    lines.append(f"peak activation memory: {fmt_int(plain.elements * size)} bytes "
                 f"({dtype}) while {plain.at} runs; "
                 f"{fmt_int(streamed.elements * size)} with V2 §5 streaming "
                 "(macscalc memory for detail)")
    if report.latency is not None:
        lines.append(report.latency.text())
    return lines


def _files_note(f: FileCheck) -> str:
    """Why a published weight file is larger than the numbers it must store."""
    extra = sorted((w.nbytes - f.stored_bytes) / 1000 for w in f.files)
    more = f"{extra[0]:.0f}" + (f"–{extra[-1]:.0f}" if len(f.files) > 1 else "")
    named = ", ".join(f"{w.weights} {w.size} {w.unit}" for w in f.files)
    return (f"Published weight files: {named} ({f.files[0].source}). A file holds every "
            f"parameter and the BN running mean/var at fp32: {fmt_int(f.stored_numbers)} "
            f"numbers, {fmt_int(f.stored_bytes)} bytes "
            f"({Decimal(f.stored_bytes) / 2**20:.3f} MiB); the other {more} kB are "
            "serialization: tensor names, pickle records, zip headers and alignment, BN batch "
            "counters.")


def _split_table(check: SplitCheck) -> tuple[Table, dict[str, Any]]:
    """The paper's per-type split beside the computed one."""
    split, rows = check.split, check.rows
    paper_m, paper_p = check.paper_macs_sum, check.paper_params_sum
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
        "accuracy": c.row.top1,
        "metric": c.table.metric,
    }


def _digits(checks: list[tuple[str | None, int, bool | None, str]], unit: int,
            least: int) -> int:
    """Decimals to show computed figures with (at least ``least``), so that each shown
    value reads with its verdict: 149,497,600 against a published 150 (rounded) shows as
    149.498, not as 149.50, which would round to 150."""
    from macscalc.published.tables import ROUNDING

    for digits in range(least, 7):
        quantum = Decimal(10) ** -digits
        if all(ok is None or published is None or ok == (
                (Decimal(value) / unit).quantize(quantum, ROUND_HALF_UP)
                .quantize(Decimal(published), ROUNDING[rounding]) == Decimal(published))
               for published, value, ok, rounding in checks):
            return digits
    return 6


class _Digits(NamedTuple):
    """How many decimals the MACs (in the table's unit) and params (in M) are shown with."""

    macs: int
    params: int

    @classmethod
    def of(cls, pt: PubTable, rows: list[GridRow]) -> _Digits:
        checks = [r.primary for r in rows if r.primary is not None]
        base = 3 if pt.macs_unit == "G" else 2
        return cls(
            _digits([(c.row.macs, c.macs, c.macs_ok, pt.rounding) for c in checks], pt.unit,
                     base),
            _digits([(c.row.params, c.params, c.params_ok, pt.rounding) for c in checks],
                    10**6, 3))


def _mismatch_note(r: GridRow, digits: _Digits) -> str | None:
    p = r.primary
    if p is None or (p.macs_ok is not False and p.params_ok is not False):
        return None
    what = []
    unit = "MAdds" if p.table.macs_include else "MACs"
    suffix = "B" if p.table.macs_unit == "G" else "M"
    if p.macs_ok is False:
        what.append(f"published {p.row.macs} {suffix} {unit}, computed "
                    f"{r.macs / p.table.unit:.{digits.macs}f} {suffix}")
    if p.params_ok is False:
        what.append(f"published {p.row.params} M params, computed "
                    f"{r.params / 1e6:.{digits.params}f} M")
    agree = [c for c in r.others if (c.macs_ok is not False) and (c.params_ok is not False)]
    who = ("; agrees with the computation: " + "; ".join(
        f"{c.table.title}{' ' + c.row.ref if c.row.ref else ''} "
        f"({c.row.macs} M {unit}{', ' + c.row.params + ' M params' if c.row.params else ''})"
        for c in agree)) if agree else ("; no other stored source agrees" if r.others else "")
    return f"{r.model}: mismatch: " + "; ".join(what) + who


def _other_source_notes(r: GridRow) -> list[str]:
    """Where another source disagrees with the count while the primary table agrees: which
    source the count sides with (the V1 paper's SqueezeNet 1700 M against torchvision)."""
    p = r.primary
    if p is None or p.macs_ok is False or p.params_ok is False:
        return []
    out = []
    for c in r.others:
        wrong = [f"{c.row.macs} {'B' if c.table.macs_unit == 'G' else 'M'} MACs"
                 for ok in [c.macs_ok] if ok is False]
        wrong += [f"{c.row.params} M params" for ok in [c.params_ok] if ok is False]
        if wrong:
            ref = f" {c.row.ref}" if c.row.ref else ""
            out.append(f"{r.model}: {c.table.title}{ref} gives {' and '.join(wrong)}; the count "
                       f"({r.macs / 1e6:,.2f} M MACs, {r.params / 1e6:,.3f} M params) agrees "
                       f"with {p.table.title}")
    return out


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
            "accuracy": p.row.top1 if p else None, "metric": pt.metric,
            "top5": p.row.top5 if p else None,
            **{f"latency_{d}_ms": p.row.latency.get(d) if p else None for d in pt.devices},
            "on_grid": p is not None,
            **({"output_stride": p.row.output_stride} if p and p.row.output_stride else {}),
            **({"mf": True} if p and p.row.mf else {}),
            **({"width": p.row.width} if p and p.row.width else {}),
            "other_sources": "; ".join(_check_text(c) for c in r.others),
            "_checks": r.others,
            "_warn": p is not None and not (p.macs_ok is not False and p.params_ok is not False),
        })
    return out


def _grid_table(title: str, pt: PubTable, out_rows: list[dict[str, Any]],
                digits: _Digits) -> Table:
    madds = "MAdds" if pt.macs_include else "MACs"
    unit = "B" if pt.macs_unit == "G" else "M"
    cols = [Column("model", "model", left=True, cut=12),
            Column(f"{madds} ({unit})", "macs", lambda v: f"{v / pt.unit:.{digits.macs}f}"),
            Column("pub.", "published_macs", unit="billions" if unit == "B" else "millions"),
            Column("", "macs_agrees", MARK.get),
            Column("params (M)", "params", lambda v: f"{v / 1e6:.{digits.params}f}"),
            Column("pub.", "published_params_m"),
            Column("", "params_agrees", MARK.get)]
    if any(r.top1 for r in pt.rows):
        cols.append(Column(pt.metric, "accuracy", unit=pt.metric))
    if any(r.top5 for r in pt.rows):
        cols.append(Column("top-5", "top5", drop=len(pt.devices) + 1))
    cols += [Column(f"{label} ms", f"latency_{d}_ms", drop=len(pt.devices) - i)
             for i, (d, label) in enumerate(pt.devices.items())]
    if any("latency_est_ms" in r for r in out_rows):
        cols.append(Column("est. ms", "latency_est_ms", lambda v: f"{v:.2f}"))
    if any(r["other_sources"] for r in out_rows):
        cols.append(Column("other sources", "other_sources", left=True, text=True))
    return Table(title, cols, out_rows)


def _source_notes(pt: PubTable) -> list[str]:
    return [f"{pt.title}: {pt.source} [{pt.convention()}]", *([pt.notes] if pt.notes else [])]


def table_doc(shown: Shown, max_macs: int | None = None) -> Doc:
    """The published grid with computed counts, agreement marks and cross-source notes; a
    family of sources about different models shows each source as its own section."""
    grid, sections, profile = shown.grid, shown.sections, shown.profile
    fam = grid.family
    tables, notes, data_rows = [], [], []
    for i, (pt, rows) in enumerate(sections):
        digits = _Digits.of(pt, rows)
        out_rows = _grid_rows(pt, rows)
        if shown.estimates is not None:
            for out, est in zip(out_rows, shown.estimates[i], strict=True):
                out["latency_est_ms"], out["latency_estimate"] = est.ms, est.data()
        n = len(out_rows)
        label = pt.title if fam.sections else f"{n} model{'' if n == 1 else 's'}"
        tables.append(_grid_table(label, pt, out_rows, digits))
        notes += [n for r in rows if (n := _mismatch_note(r, digits))]
        notes += [n for r in rows for n in _other_source_notes(r)]
        notes += _source_notes(pt)
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
        for t in fam.tables[1:]:
            notes.append(f"Other source, {t.id}: {t.title}, {t.source} [{t.convention()}]")
    if max_macs is not None:
        notes.append(f"Rows with computed MACs ≤ {fmt_int(max_macs)}, best first.")
    if profile is not None:
        notes.append(f"est. ms: estimated on profile {profile.name} ({profile.device}), not "
                     f"measured; ±{profile.loo.p90:.0f} % held 9 of 10 of its held-out rows.")
    title = f"{fam.title}: published figures beside the count"
    data = {"family": fam.family, "primary_source": fam.primary.source,
            "convention": fam.primary.convention(), "rows": data_rows, "notes": notes}
    if shown.comparison is not None:
        compare, compare_data = _comparison(grid, sections[0][1], shown.comparison)
        tables.append(compare)
        data["comparison"] = compare_data
    return Doc(title, tables, notes, envelope("table", **data))


def _comparison(grid: Grid, rows: list[GridRow],
                checks: list[Check]) -> tuple[Table, list[dict[str, Any]]]:
    """The family's models beside another family's at matched cost, as its paper does."""
    fam = grid.family
    other = fam.comparison
    assert other is not None
    entries = [{"model": r.model, "macs": r.macs, "published_macs": r.primary.row.macs,
                "macs_agrees": r.primary.macs_ok, "accuracy": r.top1,
                "source": fam.primary.title}
               for r in rows if r.primary is not None]
    for c in checks:
        pub = c.row
        entries.append({"model": pub.model, "macs": c.macs, "published_macs": pub.macs,
                        "macs_agrees": c.macs_ok, "accuracy": pub.top1, "source": other.title})
    entries.sort(key=lambda e: e["macs"])
    cols = [Column("model", "model", left=True),
            Column("MAdds (M)", "macs", lambda v: f"{v / 1e6:.2f}"),
            Column("pub.", "published_macs", unit="millions"),
            Column("", "macs_agrees", MARK.get),
            Column("top-1", "accuracy", unit="top-1"),
            Column("source", "source", left=True, text=True)]
    notes = _source_notes(other)
    return Table(f"{fam.title} beside {other.title}, by MAdds", cols, entries, notes), entries


def memory_doc(acts: Activations, paper: MemoryCheck | None, dtype: str, nbytes: int) -> Doc:
    """Largest tensor per resolution (plain and streamed), the peaks, and the paper's Table 3."""
    network = acts.network
    streamed = {(x.h, x.w): x.tensor for x in acts.streamed}
    rows = []
    for x in acts.largest:
        s = streamed[(x.h, x.w)]
        rows.append({"resolution": f"{x.h}×{x.w}", "channels": x.tensor.shape.c,
                     "elements": x.tensor.shape.numel, "bytes": x.tensor.shape.numel * nbytes,
                     "layer": x.tensor.name, "streamed_channels": s.shape.c,
                     "streamed_elements": s.streamed, "streamed_bytes": s.streamed * nbytes,
                     "streamed_layer": s.name})
    cols = [Column("resolution", "resolution"), Column("channels", "channels", drop=3),
            Column("elements", "elements", fmt_int, drop=1),
            Column(f"bytes ({dtype})", "bytes", fmt_int, unit=dtype),
            Column("layer", "layer", left=True),
            Column("streamed elements", "streamed_elements", fmt_int, drop=2),
            Column("streamed bytes", "streamed_bytes", fmt_int, unit=dtype),
            Column("streamed at", "streamed_layer", left=True)]
    tables = [Table("Largest tensor at each resolution (streamed: V2 §5 slices)", cols, rows)]
    peak_rows = [{"model": name, "elements": p.elements, "bytes": p.elements * nbytes,
                  "at": p.at, "alive": ", ".join(p.alive)} for name, p in acts.peaks.items()]
    tables.append(Table("Peak of live tensors over the whole graph", [
        Column("model", "model", left=True), Column("elements", "elements", fmt_int, drop=1),
        Column(f"bytes ({dtype})", "bytes", fmt_int), Column("while running", "at", left=True),
        Column("live tensors", "alive", left=True, text=True)], peak_rows))
    data: dict[str, Any] = {"spec": network.spec.name, "dtype": dtype,
                            "resolutions": rows, "peaks": peak_rows}
    if paper is not None:
        tables.append(_paper_table(paper))
        data["paper"] = paper.rows
    notes = ["Tensors: every layer's output except batch norm, activations, dropout, flatten "
             "and shuffle (in place). Live: from the layer that writes it to the last that "
             "reads it; outputs to the end.",
             "Streamed: each inverted residual computed in slices of its input width, so its "
             "expanded and depthwise tensors exist one slice at a time (arXiv:1801.04381 §5)."]
    s = network.settings
    return Doc(f"{network.spec.title}: activation memory (α {fmt_alpha(s.alpha)}, "
               f"{s.size[0]}×{s.size[1]}, {dtype})", tables, notes, envelope("memory", **data))


def _paper_table(check: MemoryCheck) -> Table:
    """The V2 paper's Table 3 column beside the computed one."""
    ref = check.table
    cols = [Column("resolution", "resolution"), Column("channels", "channels"),
            Column("paper", "paper_channels"), Column("", "channels_agree", MARK.get),
            Column("Kb", "kb"), Column("paper", "paper_kb"), Column("", "kb_agree", MARK.get)]
    model = "streamed" if ref.streaming else "plain"
    return Table(f"Check against {ref.source} ({model} model, 16-bit)", cols, check.rows,
                 [ref.notes] if ref.notes else [])

"""Comparing specs or variants of one spec: totals side by side and per-stage deltas.

A variant is a spec with its own settings, written as one argument:
``"mobilenet_v2 --alpha 0.75"``. A stage is the part of the network working at one
output stride (the input's height over the layer's output height): stride 2, 4, ... 32,
then the head (everything at 1×1 after the global pool). Deltas are against the first
variant.
"""

from __future__ import annotations

import shlex
from decimal import Decimal
from fractions import Fraction
from typing import Any

from macscalc.analysis.counting import Convention, Report, count
from macscalc.core.errors import MacscalcError, show
from macscalc.core.limits import MAX_CHANNELS, MAX_SIZE
from macscalc.core.units import DTYPE_BYTES, fmt_alpha, fmt_int, parse_alpha, parse_int, pct
from macscalc.lang.graph import Node, build
from macscalc.lang.spec import load_spec
from macscalc.models.files import model_format, read_model
from macscalc.render.output import Column, Doc, Table
from macscalc.render.report import envelope, report_data

_OPTIONS = {"--alpha": "alpha", "-a": "alpha", "--res": "res", "-r": "res",
            "--classes": "classes", "--depth": "depth"}


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``"mobilenet_v2 --alpha 0.75 --res 160"`` → ('mobilenet_v2', {alpha: .., res: ..})."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise MacscalcError(f"cannot read variant {show(text)}: {e}") from None
    if not words or words[0].startswith("-"):
        raise MacscalcError(f"a variant starts with a spec, got {show(text)}")
    options: dict[str, str] = {}
    rest = words[1:]
    while rest:
        flag = rest.pop(0)
        if flag not in _OPTIONS or not rest:
            raise MacscalcError(f"in variant {show(text)}: expected --alpha A, --res R, "
                                f"--depth D or --classes N, got {show(flag)}")
        options[_OPTIONS[flag]] = rest.pop(0)
    return words[0], options


def variant_report(text: str, convention: Convention,
                   allow_unknown: bool = False) -> tuple[str, Report]:
    ref, opts = parse_variant(text)
    alpha = parse_alpha(opts["alpha"]) if "alpha" in opts else None
    depth = parse_alpha(opts["depth"], "depth multiplier") if "depth" in opts else None
    res = parse_int(opts["res"], "--res", MAX_SIZE) if "res" in opts else None
    classes = parse_int(opts["classes"], "--classes", MAX_CHANNELS) if "classes" in opts else None
    if model_format(ref):
        net = read_model(ref, allow_unknown, res, alpha=opts.get("alpha"),
                         classes=opts.get("classes"), depth=opts.get("depth"))
    else:
        net = build(load_spec(ref, depth), alpha, (res, res) if res else None, classes)
    s = net.settings
    label = f"{ref} α{fmt_alpha(s.alpha)} {s.size[0]}"
    if net.spec.depth != 1:
        label += f" d{fmt_alpha(net.spec.depth)}"
    return label, count(net, convention)


def stage_of(node: Node, input_h: int) -> str:
    """The layer's output stride, the power of two nearest input/output height: a network
    without padding (SqueezeNet: 224 → 13) stays in its stride-16 stage."""
    if node.out.h == 1 and node.out.w == 1 and (node.in_shapes[0].h == 1
                                                or node.layer.kind == "global_pool"):
        return "head"
    ratio = Fraction(input_h, node.out.h)
    stride = 1
    while stride * 2 <= ratio * Fraction(4, 3):  # doubles once ratio ≥ 1.5 × stride
        stride *= 2
    return f"stride {stride}"


def stages(report: Report) -> dict[str, list[int]]:
    """Per stage: [MACs, params] under the report's convention, in network order."""
    out: dict[str, list[int]] = {}
    h = report.network.input.h
    for lc in report.layers:
        s = out.setdefault(stage_of(lc.node, h), [0, 0])
        s[0] += lc.macs
        s[1] += report.params_of(lc)
    return out


def _delta(new: int, old: int) -> Decimal | None:
    """The change in percent; None where there is nothing to compare with."""
    return pct(new - old, old) if old else (Decimal(0) if new == old else None)


def _signed(v: Decimal) -> str:
    return f"{'+' if v >= 0 else ''}{v} %"


def compare_doc(variants: list[tuple[str, Report]]) -> Doc:
    base_label, base = variants[0]
    dtype = base.convention.dtype
    totals = []
    for i, (label, r) in enumerate(variants):
        totals.append({"number": i + 1, "variant": label, "macs": r.macs, "params": r.params,
                       "flops": r.flops, "weight_bytes": r.weight_bytes, "memory": r.peak_bytes,
                       "macs_delta_pct": _delta(r.macs, base.macs) if i else None,
                       "params_delta_pct": _delta(r.params, base.params) if i else None,
                       "memory_delta_pct": _delta(r.peak_bytes, base.peak_bytes) if i else None})
    total_cols = [Column("#", "number"), Column("variant", "variant", left=True),
                  Column("MACs", "macs", fmt_int),
                  Column("Δ MACs", "macs_delta_pct", _signed),
                  Column("params", "params", fmt_int, drop=5),
                  Column("Δ params", "params_delta_pct", _signed, drop=4),
                  Column(f"{dtype} MB", "weight_bytes", lambda v: f"{v / 1e6:.2f}"),
                  Column("FLOPs", "flops", fmt_int, drop=1),
                  Column(f"peak {dtype} MB", "memory", lambda v: f"{v / 1e6:.2f}", unit="bytes",
                         drop=2),
                  Column("Δ memory", "memory_delta_pct", _signed, drop=3)]
    if any(r.latency for _, r in variants):
        for row, (_, r) in zip(totals, variants, strict=True):
            row["latency_est_ms"] = r.latency.ms if r.latency else None
        total_cols.append(Column(f"est. ms ({base.latency.profile})" if base.latency else
                                 "est. ms", "latency_est_ms", lambda v: f"{v:.2f}"))
    per_variant = [stages(r) for _, r in variants]
    names = list(dict.fromkeys(k for s in per_variant for k in s))
    names.sort(key=lambda k: (k == "head", int(k.split()[1]) if k != "head" else 0))
    stage_rows: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {"stage": name}
        base_macs = per_variant[0].get(name, [0, 0])[0]
        for i, s in enumerate(per_variant):
            macs = s.get(name, [0, 0])[0]
            row[f"macs_{i}"] = macs
            if i:
                row[f"delta_{i}_pct"] = _delta(macs, base_macs)
        stage_rows.append(row)
    stage_cols = [Column("stage", "stage", left=True)]
    for i in range(len(variants)):
        stage_cols.append(Column(f"MACs #{i + 1}", f"macs_{i}", fmt_int))
        if i:
            stage_cols.append(Column(f"Δ #{i + 1}", f"delta_{i}_pct", _signed))
    conv = base.convention
    notes = [f"Deltas are against #1, {base_label}; blank where it has none. Stages are "
             "output strides (input height over output height); head: everything at 1×1 "
             "after the global pool.",
             f"{dtype} MB: the weights, the counted params × {DTYPE_BYTES[dtype]} bytes, in "
             "10^6 bytes.",
             f"Convention: {conv.describe(base.network)}",
             *(f"{label}: {r.latency.text()}" for label, r in variants if r.latency)]
    data = envelope("compare", reports=[report_data(r) for _, r in variants],
                    totals=totals, stages=stage_rows)
    return Doc("macscalc compare", [Table("Totals", total_cols, totals),
                                    Table("MACs by stage", stage_cols, stage_rows)], notes, data)

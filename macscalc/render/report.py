"""The one JSON report shape shared by ``count``, ``check`` and ``compare``.

A report is one network under one convention: its spec, settings, convention, totals
(MACs, FLOPs, every parameter part, extra ops per category and whether counted), every
primitive, and the per-kind summary. Commands wrap reports in an envelope with
``schema_version``, ``tool`` and ``kind``; ``macscalc/data/report.schema.json`` is the
JSON Schema. Integers are exact; percentages are decimal strings.
"""

from __future__ import annotations

from typing import Any

from macscalc import __version__
from macscalc.analysis.counting import LayerCount, Report
from macscalc.core.units import DTYPE_BYTES, fmt_alpha, pct
from macscalc.lang.graph import Network, unknown_ops
from macscalc.lang.layers import OP_CATEGORIES, PARAM_PARTS, Shape


def envelope(kind: str, **payload: Any) -> dict[str, Any]:
    """The top of every JSON document (the output sink adds ``schema_version`` and makes
    it JSON-safe, only when JSON is asked for)."""
    return {"tool": f"macscalc {__version__}", "kind": kind, **payload}


def _shape(s: Shape) -> list[int]:
    return [s.h, s.w, s.c]


def primitive_row(report: Report, index: int, lc: LayerCount) -> dict[str, Any]:
    n = lc.node
    return {
        "index": index,
        "name": n.name,
        "kind": n.layer.kind,
        "block": n.block,
        "role": n.role,
        "inputs": list(n.inputs),
        "in_shape": _shape(n.in_shapes[0]),
        "out_shape": _shape(n.out),
        "detail": n.layer.detail(),
        "macs": lc.macs,
        "params": report.params_of(lc),
        "params_parts": dict(zip(PARAM_PARTS, lc.params, strict=True)),
        "extra_ops": report.counted_ops(lc),
        "flops": report.flops_of(lc),
        "macs_pct": pct(lc.macs, report.macs),
        "_act": getattr(n.layer, "fn", None),  # for fold(); not in JSON
    }


def fold(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch norm and activation rows merged into the row of the layer they follow."""
    out: list[dict[str, Any]] = []
    last = ""
    for r in rows:
        if out and r["kind"] in ("batchnorm", "act") and r["inputs"] == [last]:
            row = out[-1]
            row["kind"] += "+" + ("bn" if r["kind"] == "batchnorm" else r["_act"])
            row["out_shape"] = r["out_shape"]
            for key in ("params", "extra_ops", "flops"):
                row[key] += r[key]
        else:
            out.append({**r, "index": len(out)})
        last = r["name"]
    return out


def by_kind_rows(report: Report) -> list[dict[str, Any]]:
    madds_total = report.macs + report.shiftmax
    return [
        {
            "kind": k.label,
            "layers": k.count,
            "macs": k.macs,
            "macs_pct": pct(k.macs, report.macs),
            "params": k.params,
            "params_pct": pct(k.params, report.params),
            "extra_ops": k.ops,
            "madds": k.macs + k.shiftmax,
            "madds_pct": pct(k.macs + k.shiftmax, madds_total),
        }
        for k in report.by_kind()
    ]


def totals(report: Report) -> dict[str, Any]:
    ops = report.ops_by_category
    latency = {"latency_ms": report.latency.data()} if report.latency else {}
    return {
        "macs": report.macs,
        "flops": report.flops,
        "params": report.params,
        "params_parts": dict(zip(PARAM_PARTS, report.param_parts, strict=True)),
        "extra_ops": {c: {"ops": ops[c], "counted": c in report.convention.ops}
                      for c in OP_CATEGORIES},
        "activations": report.activations,
        "weight_bytes": report.weight_bytes,
        "peak_memory": _peak(report),
        **latency,
    }


def _peak(report: Report) -> dict[str, Any]:
    plain, streamed = report.memory
    size = DTYPE_BYTES[report.convention.dtype]
    return {"dtype": report.convention.dtype, "elements": plain.elements,
            "bytes": plain.elements * size, "at": plain.at,
            "streamed_elements": streamed.elements, "streamed_bytes": streamed.elements * size}


def settings_data(network: Network) -> dict[str, Any]:
    """A report's settings: what a saved baseline is matched on."""
    s = network.settings
    out = {"alpha": fmt_alpha(s.alpha), "resolution": list(s.size), "classes": s.classes,
           "rounding": network.spec.rounding.name}
    if s.output_stride is not None:
        out["output_stride"] = s.output_stride
    if network.spec.depth != 1:  # the rows' repeats were scaled (--depth, depth:)
        out["depth"] = fmt_alpha(network.spec.depth)
        if network.spec.depth_rounding != "ceil":
            out["depth_rounding"] = network.spec.depth_rounding
    return out


def report_data(report: Report) -> dict[str, Any]:
    """One report, JSON-ready except for Decimals (the JSON sink writes them as strings)."""
    net = report.network
    unknown = unknown_ops(net)
    return {
        "spec": {"name": net.spec.name, "title": net.spec.title, "source": net.spec.source,
                 "file": net.spec.file},
        "status": "partial" if unknown else "complete",
        "unknown_ops": unknown,
        "settings": settings_data(net),
        "convention": {
            "macs": "conv and fully connected multiply-accumulates",
            "flops": "2 × MACs + counted extra ops (a shiftmax multiply-add is 2)",
            "params": report.convention.params.name,
            "params_parts": list(report.convention.params.parts),
            "extra_ops_counted": list(report.convention.ops),
            "text": report.convention.describe(net),
        },
        "totals": totals(report),
        "layers": [primitive_row(report, i, lc) for i, lc in enumerate(report.layers)],
        "by_kind": by_kind_rows(report),
        **({"stored": net.stored} if net.stored is not None else {}),
    }

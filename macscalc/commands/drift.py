"""Is the spec the network that ships? Two networks compared layer by layer.

``check spec.yaml --against model.onnx``. The unit compared is a conv or linear layer
with what follows it: its input and output shapes, kernel/stride/groups, MACs and
weights, whether a per-channel shift follows (a bias or a batch norm: an exporter
that folds BN into the conv leaves a bias where the spec has BN, and both are the
same network) and the activation after it. The two sequences are aligned (difflib),
so one inserted layer shows as one divergence, not as every layer after it.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, NamedTuple

from macscalc.analysis.counting import Report
from macscalc.commands.budget import SpecCheck
from macscalc.core.files import write_atomic
from macscalc.core.units import fmt_int
from macscalc.lang.graph import Network, Node
from macscalc.lang.layers import Shape
from macscalc.render.output import Column, Doc, Table, render
from macscalc.render.report import report_data

# every kind with MACs: a product of two computed tensors (q·kᵀ, attn·v) is compared too
COMPUTE = ("conv2d", "depthwise", "linear", "conv_transpose", "matmul")
KINDS = {"linear": "linear", "conv_transpose": "conv transpose", "matmul": "matmul"}


class Step(NamedTuple):
    """One conv or linear layer and what follows it, as compared."""

    name: str
    kind: str  # conv, conv transpose, linear or matmul
    in_shape: Shape
    out_shape: Shape
    detail: str
    macs: int
    weights: int
    shift: bool  # a bias or a batch norm follows (BN folding gives one or the other)
    act: str  # the activation after it, or "none"

    def key(self) -> tuple[Any, ...]:
        return self[1:]

    def differences(self, other: Step) -> list[str]:
        names = ("kind", "input", "output", "k/s/g", "MACs", "weights", "bias/BN",
                 "activation")
        return [n for n, a, b in zip(names, self.key(), other.key(), strict=True) if a != b]


def steps(network: Network) -> list[Step]:
    """The network's conv and linear layers, each with the BN and activation after it."""
    readers: dict[str, list[Node]] = {}
    for n in network.nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n)
    out = []
    for n in network.nodes:
        if n.layer.kind not in COMPUTE:
            continue
        shift = bool(getattr(n.layer, "bias", False))
        act = "none"
        cur = n
        for _ in range(2):
            nxt = readers.get(cur.name, [])
            if len(nxt) != 1 or nxt[0].layer.kind not in ("batchnorm", "act"):
                break
            cur = nxt[0]
            if cur.layer.kind == "batchnorm":
                if act != "none":
                    break
                shift = True
            else:
                act = cur.layer.fn  # type: ignore[attr-defined]
        p = n.layer.params(n.in_shapes)
        macs = n.layer.macs(n.in_shapes, n.out)
        kind = KINDS.get(n.layer.kind, "conv")
        # a matmul's transposes are layout (a file may write kᵀ as its own Transpose):
        # what is compared is its inner length
        detail = f"inner {macs // n.out.numel}" if kind == "matmul" else n.layer.detail()
        out.append(Step(n.name, kind, n.in_shapes[0], n.out, detail, macs, p.weights,
                        shift, act))
    return out


def _side(s: Step | None, prefix: str) -> dict[str, Any]:
    if s is None:
        return {f"{prefix}_name": "—"}
    return {f"{prefix}_name": s.name, f"{prefix}_in": str(s.in_shape),
            f"{prefix}_out": str(s.out_shape), f"{prefix}_detail": s.detail,
            f"{prefix}_macs": s.macs, f"{prefix}_weights": s.weights,
            f"{prefix}_tail": ("bias/BN" if s.shift else "—") + " " + s.act}


def compare(spec: Network, model: Network) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Aligned rows (spec beside model) and a summary with the first divergence."""
    a, b = steps(spec), steps(model)
    rows: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    matcher = SequenceMatcher(None, [s.key() for s in a], [s.key() for s in b],
                              autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            sa = a[i1 + k] if i1 + k < i2 else None
            sb = b[j1 + k] if j1 + k < j2 else None
            if op == "equal":
                status = "✓"
            elif sa is None:
                status = "only in model"
            elif sb is None:
                status = "only in spec"
            else:
                status = "differs: " + ", ".join(sa.differences(sb))
            row = {"index": len(rows), **_side(sa, "spec"), **_side(sb, "model"),
                   "status": status, "_warn": op != "equal"}
            if op != "equal" and first is None:
                first = row
            rows.append(row)
    agree = sum(1 for r in rows if not r["_warn"])
    summary = {
        "agree": first is None, "layers_spec": len(a), "layers_model": len(b),
        "layers_matching": agree, "first_divergence": _clean(first),
        "macs_spec": sum(s.macs for s in a), "macs_model": sum(s.macs for s in b),
        "weights_spec": sum(s.weights for s in a), "weights_model": sum(s.weights for s in b),
    }
    return rows, summary


def _clean(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {k: v for k, v in row.items() if not k.startswith("_")}


def _first_text(first: dict[str, Any]) -> str:
    def side(p: str) -> str:
        if first.get(f"{p}_in") is None:
            return f"{p}: nothing"
        return (f"{p}: {first[f'{p}_name']} {first[f'{p}_in']} → {first[f'{p}_out']} "
                f"{first[f'{p}_detail']}, {fmt_int(first[f'{p}_macs'])} MACs, "
                f"{fmt_int(first[f'{p}_weights'])} weights, {first[f'{p}_tail']}")
    return f"First divergence at conv/linear layer {first['index']} ({first['status']}): " \
           f"{side('spec')}; {side('model')}"


def drift_doc(spec_ref: str, model_ref: str, rows: list[dict[str, Any]],
              summary: dict[str, Any]) -> tuple[Table, list[str]]:
    cols = [Column("#", "index"), Column("spec layer", "spec_name", left=True),
            Column("input", "spec_in"), Column("output", "spec_out"),
            Column("k/s/g", "spec_detail", left=True), Column("MACs", "spec_macs", fmt_int),
            Column("model layer", "model_name", left=True), Column("input", "model_in"),
            Column("output", "model_out"), Column("MACs", "model_macs", fmt_int),
            Column("", "status", left=True)]
    s = summary
    notes = [
        ("MATCH" if s["agree"] else "DRIFT") + f": {s['layers_matching']} aligned conv/linear "
        f"layers agree (spec {s['layers_spec']}, model {s['layers_model']}); MACs "
        f"{fmt_int(s['macs_spec'])} (spec) against {fmt_int(s['macs_model'])} (model); weights "
        f"{fmt_int(s['weights_spec'])} against {fmt_int(s['weights_model'])}.",
    ]
    if not s["agree"]:
        notes.append(_first_text(s["first_divergence"]))
    notes.append("Compared per conv/linear layer (a matmul of two computed tensors, "
                 "q·kᵀ or attn·v, with its inner length): shapes, kernel/stride/groups, MACs, "
                 "weights, whether a bias or batch norm follows (BN folded into a conv bias "
                 "by an exporter is the same network) and the activation after it.")
    return Table(f"{spec_ref} against {model_ref}", cols, rows), notes


def drift_check(checked: list[SpecCheck], model: Report, fmt: str, output: Path | None,
                model_ref: str, notices: bool = False) -> bool:
    """Render each spec against ``model``, with any budget limits; True on drift."""
    from macscalc.commands.budget import check_doc, github_annotations, repo_path

    tables, notes, drifts, lines = [], [], [], []
    for c in checked:
        if c.report is None:
            continue  # a spec that could not be read: reported by the budget part
        spec = c.report.network.spec
        rows, summary = compare(c.report.network, model.network)
        table, text = drift_doc(spec.file, model_ref, rows, summary)
        tables.append(table)
        notes += text
        drifts.append({"spec": spec.file, "model": model_ref, **summary,
                       "layers": [_clean(r) for r in rows]})
        if not summary["agree"]:
            message = _first_text(summary["first_divergence"])
            lines.append(f"::error file={repo_path(spec.file)},line={spec.line},"
                         f"title=macscalc drift::{message.replace('%', '%25')}\n")
    drifted = any(not d["agree"] for d in drifts)
    limited = any(c.outcomes or c.error for c in checked)
    if fmt == "github":
        text = (github_annotations(checked, notices) if limited else "") + "".join(lines)
        if output is None:
            print(text, end="")
        else:
            write_atomic(output, text)
        return drifted
    base = check_doc(checked)
    verdict = base.data["verdict"]
    if drifted and verdict == "pass":
        verdict = "fail"
    data = {**base.data, "verdict": verdict, "against": report_data(model), "drift": drifts}
    doc = Doc("macscalc check against a model", [*(base.tables if limited else []), *tables],
              [*(base.notes if limited else []), *notes], data)
    render(doc, "table" if fmt == "text" else fmt, output)
    return drifted

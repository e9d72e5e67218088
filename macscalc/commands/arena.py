"""``memory --planner tflm``: the tensor arena TFLite Micro plans for a model.

A ``.tflite`` file is planned as it is; a spec is first written as the TFLite model
``export --format tflite --dtype`` would write (int8 or fp32), because the arena is a
fact of the converted graph (folded BN, fused activations, the float input and its
``QUANTIZE``), not of the spec's primitives.
"""

from __future__ import annotations

from typing import Any

from macscalc.core.errors import MacscalcError
from macscalc.core.units import fmt_int
from macscalc.models.files import model_format
from macscalc.models.tflite.arena import Arena, plan
from macscalc.models.tflite.model import Model, load, parse
from macscalc.render.output import Column, Doc, Table
from macscalc.render.report import envelope

NOT_MODELLED = ("Not included: what the interpreter allocates besides the planned tensors "
                "(its tensor and node structures, each kernel's persistent data such as "
                "per-channel multipliers, and kernel scratch buffers), which depends on the "
                "kernels built in (README: TFLite Micro, for what tflite-micro's reference "
                "kernels added on the built-ins).")


def tflm_model(ref: str, alpha: str | None, res: int | None, dtype: str,
               network: Any = None) -> tuple[Model, str]:
    """The model to plan and what it is: the file, or the spec exported in ``dtype``."""
    if model_format(ref) == "TFLite":
        return load(ref), "as stored in the file"
    if model_format(ref):
        raise MacscalcError("--planner tflm plans a TFLite model: a spec or a .tflite file, "
                            "not an ONNX one", ref)
    if dtype not in ("int8", "fp32"):
        raise MacscalcError(f"--planner tflm plans int8 or fp32 tensors as TFLite Micro runs "
                            f"them: give --dtype int8 or fp32, not {dtype}")
    from macscalc.models.tflite.export import export

    return parse(export(network, 0, dtype), ref), \
        f"the spec as 'export --format tflite --dtype {dtype}' writes it"


def arena_doc(model: Model, name: str, what: str) -> Doc:
    arena: Arena = plan(model)
    g = model.graphs[0]
    peak = arena.peak_at()
    rows = [{"tensor": b.tensor.name, "shape": "×".join(map(str, b.tensor.shape)),
             "dtype": b.tensor.dtype, "bytes": b.size, "first": b.first, "last": b.last,
             "offset": b.offset} for b in sorted(arena.buffers, key=lambda b: (b.offset,
                                                                               b.first))]
    cols = [Column("tensor", "tensor", left=True, cut=32), Column("shape", "shape"),
            Column("type", "dtype"), Column("bytes", "bytes", fmt_int, unit="B"),
            Column("from op", "first"), Column("to op", "last", drop=1),
            Column("offset", "offset", fmt_int, unit="B")]
    op = g.operators[peak].op if g.operators else "-"
    notes = [f"Planned arena: {fmt_int(arena.bytes)} bytes ({len(arena.buffers)} tensors, "
             f"{arena.operators} operators; the highest buffer ends while operator {peak} "
             f"({op}) runs); {what}.",
             "TFLite Micro's greedy planner: each tensor without data in the file, 16-byte "
             "aligned, alive from the operator that writes it to the last that reads it "
             "(inputs from the start, outputs to the end), placed largest first at the "
             "lowest offset free for its lifetime.", NOT_MODELLED]
    data = {"model": name, "planner": "tflm", "arena_bytes": arena.bytes,
            "peak_operator": peak, "operators": arena.operators, "source": what,
            "buffers": rows}
    return Doc(f"{name}: TFLite Micro tensor arena", [Table("Planned tensors, by offset",
                                                             cols, rows)],
               notes, envelope("arena", **data))

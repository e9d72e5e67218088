"""What a ``.tflite`` file stores: weights and biases at their stored types and sizes.

A converter writes one network several ways: float32; float16 weights that a
``DEQUANTIZE`` widens at load; dynamic-range int8 weights with float activations; full
integer (int8 or uint8) weights and activations, each weight with one scale per tensor or
one per output channel. The count of weights is the same in every one; their bytes are not.
So the bytes are taken from the buffers as stored, each buffer once (converters share a
buffer between equal constants), and described for the convention line.
"""

from __future__ import annotations

from typing import NamedTuple

from macscalc.core.units import fmt_int
from macscalc.models.tflite.model import Model, Tensor


class Part(NamedTuple):
    role: str  # weights, biases
    dtype: str  # as stored
    scales: str  # "", "per-tensor", "per-channel"


class Stored:
    """The conv, depthwise, FC and transposed-conv constants of one subgraph, by part."""

    def __init__(self, model: Model, graph: int = 0) -> None:
        self.model = model
        self.graph = graph
        self.parts: dict[Part, list[int]] = {}  # → [values, bytes]
        self.buffers: set[int] = set()
        self.activations: set[str] = set()

    def add(self, role: str, t: Tensor) -> None:
        """Count ``t`` (a filter or bias as stored) under ``role``, its buffer once."""
        scales = "" if t.scales == 0 else "per-tensor" if t.scales == 1 else "per-channel"
        entry = self.parts.setdefault(Part(role, t.dtype, scales), [0, 0])
        n = 1
        for d in t.shape:
            n *= d
        entry[0] += n
        if t.buffer not in self.buffers:
            self.buffers.add(t.buffer)
            entry[1] += self.model.stored(t)

    def data(self) -> dict[str, object]:
        """For JSON reports: every part with its values and bytes as stored."""
        return {"parts": [{"role": p.role, "dtype": p.dtype, "scales": p.scales or None,
                           "values": v, "bytes": b} for p, (v, b) in self.parts.items()],
                "weight_bytes": self.bytes("weights"), "bias_bytes": self.bytes("biases"),
                "activations": sorted(self.activations), "file_bytes": self.model.file_bytes,
                "subgraph": self.graph}

    def bytes(self, role: str) -> int:
        return sum(b for p, (_, b) in self.parts.items() if p.role == role)

    def text(self) -> str:
        parts = "; ".join(
            f"{p.role} {fmt_int(v)} × {p.dtype}{' ' + p.scales if p.scales else ''} = "
            f"{fmt_int(b)} B" for p, (v, b) in self.parts.items()) or "no weights"
        acts = ", ".join(sorted(self.activations)) or "none"
        return (f"stored: {parts} (weight bytes as stored {fmt_int(self.bytes('weights'))} B, "
                f"file {fmt_int(self.model.file_bytes)} B); activations computed in {acts}")

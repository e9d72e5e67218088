"""Hand-assembled ``.tflite`` files for the tests: one small network in every quantization
scheme a converter writes, and single operators, built with macscalc's flatbuffer
assembler (``models/tflite/build.py``) and seeded numpy data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from macscalc.models.tflite.build import Assembler, Quant

SCHEMES = ("float32", "float16", "dynamic", "int8", "uint8")
NONE, RELU, RELU6 = 0, 1, 3


class Net:
    """An assembler with helpers for weights in one scheme; activations follow it."""

    def __init__(self, scheme: str = "float32") -> None:
        self.a = Assembler()
        self.scheme = scheme
        self.rng = np.random.default_rng(0)
        self.quantized = scheme in ("int8", "uint8")

    def act(self, name: str, shape: tuple[int, ...], scale: float = 0.05,
            zero: int | None = None) -> int:
        if not self.quantized:
            return self.a.tensor(name, shape)
        dtype = self.scheme
        zero = (0 if dtype == "int8" else 128) if zero is None else zero
        return self.a.tensor(name, shape, dtype, quant=Quant((scale,), (zero,)))

    def ints(self, name: str, values: list[int], shape: tuple[int, ...] | None = None) -> int:
        return self.a.tensor(name, shape or (len(values),), "int32",
                             np.asarray(values, np.int32).tobytes())

    def weight(self, name: str, shape: tuple[int, ...], axis: int | None = 0) -> int:
        """Weights as the scheme stores them: float32; float16 behind a DEQUANTIZE; int8
        with a scale per output channel of ``axis`` (dynamic range, full int8); uint8
        with one scale (the old quantized zoo)."""
        w = self.rng.standard_normal(shape).astype(np.float32) * 0.1
        if self.scheme == "float32":
            return self.a.tensor(name, shape, "float32", w.tobytes())
        if self.scheme == "float16":
            half = self.a.tensor(name + "/fp16", shape, "float16", w.astype(np.float16).tobytes())
            out = self.a.tensor(name, shape)
            self.a.op("DEQUANTIZE", [half], [out])
            return out
        if self.scheme == "uint8" or axis is None:
            scale = float(np.abs(w).max() / 127)
            zero = 128 if self.scheme == "uint8" else 0
            q = np.clip(np.round(w / scale) + zero, -127 if zero == 0 else 0, 255 if zero else 127)
            dtype = "uint8" if self.scheme == "uint8" else "int8"
            return self.a.tensor(name, shape, dtype, q.astype(dtype).tobytes(),
                                 Quant((scale,), (zero,)))
        n = shape[axis]
        scales = np.abs(np.moveaxis(w, axis, 0).reshape(n, -1)).max(axis=1) / 127
        view = [1] * len(shape)
        view[axis] = n
        q = np.clip(np.round(w / scales.reshape(view)), -127, 127).astype(np.int8)
        return self.a.tensor(name, shape, "int8", q.tobytes(),
                             Quant(tuple(map(float, scales)), (0,) * n, axis))

    def bias(self, name: str, n: int, weight: int) -> int:
        if not self.quantized:
            return self.a.tensor(name, (n,), "float32", np.zeros(n, np.float32).tobytes())
        scales = tuple(0.05 * s for s in self.a.tensors[weight].quant.scales)
        return self.a.tensor(name, (n,), "int32", np.zeros(n, np.int32).tobytes(),
                             Quant(scales, (0,) * len(scales)))

    def input(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The float input and the tensor the network reads (after a QUANTIZE)."""
        x = self.a.tensor("input", shape)
        if not self.quantized:
            return x, x
        q = self.act("input/q", shape)
        self.a.op("QUANTIZE", [x], [q])
        return x, q

    def output(self, y: int, shape: tuple[int, ...]) -> int:
        if not self.quantized:
            return y
        f = self.a.tensor("output", shape)
        self.a.op("DEQUANTIZE", [y], [f])
        return f

    def save(self, path: Path, x: int, y: int) -> Path:
        path.write_bytes(self.a.bytes([x], [y]))
        return path


def small(path: Path, scheme: str = "float32", net: Net | None = None) -> Path:
    """8×8×3 → conv 3×3/2 16 (relu6) → dw 3×3 16 (relu) → mean → FC 10 → softmax
    (written through ``net`` when given, e.g. one that holds metadata)."""
    n = net or Net(scheme)
    x, h = n.input((1, 8, 8, 3))
    w = n.weight("conv/weights", (16, 3, 3, 3), 0)
    y = n.act("model/conv/Relu6;model/conv/BiasAdd", (1, 4, 4, 16))
    n.a.op("CONV_2D", [h, w, n.bias("conv/bias", 16, w), ], [y],
           ((0, "b", 0), (1, "i", 2), (2, "i", 2), (3, "b", RELU6)))
    w = n.weight("dw/weights", (1, 3, 3, 16), 3)
    y2 = n.act("model/dw/Relu", (1, 4, 4, 16))
    n.a.op("DEPTHWISE_CONV_2D", [y, w, n.bias("dw/bias", 16, w)], [y2],
           ((0, "b", 0), (1, "i", 1), (2, "i", 1), (3, "i", 1), (4, "b", RELU)))
    pooled = n.act("model/pool/Mean", (1, 16))
    n.a.op("MEAN", [y2, n.ints("axes", [1, 2])], [pooled], ((0, "B", False),))
    w = n.weight("fc/weights", (10, 16), None if scheme == "int8" else 0)
    logits = n.act("model/fc/BiasAdd", (1, 10))
    n.a.op("FULLY_CONNECTED", [pooled, w, n.bias("fc/bias", 10, w)], [logits], ((0, "b", 0),))
    probs = n.act("model/softmax/Softmax", (1, 10), 1 / 256, -128 if scheme == "int8" else 0)
    n.a.op("SOFTMAX", [logits], [probs], ((0, "f", 1.0),))
    return n.save(path, x, n.output(probs, (1, 10)))

"""Assembling a ``.tflite`` flatbuffer: tensors, buffers, operators, one subgraph.

The exporter writes networks with it, and the tests assemble single operators and odd
files with it. It uses the ``flatbuffers`` package's builder only (field numbers from
TensorFlow Lite's ``schema.fbs``, as :mod:`model` reads them); ``flatbuffers`` is in the
``tflite`` extra.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from macscalc.core.extras import require
from macscalc.models.tflite.model import BUILTINS, IDENT, TYPES

# builtin_options: the union's type code of each operator's options table
OPTION_TYPES = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 2, "AVERAGE_POOL_2D": 5, "MAX_POOL_2D": 5,
                "FULLY_CONNECTED": 8, "SOFTMAX": 9, "CONCATENATION": 10, "ADD": 11,
                "MUL": 21, "PAD": 22, "GATHER": 23, "MEAN": 27, "SUB": 28, "DIV": 29,
                "DEQUANTIZE": 38, "TRANSPOSE_CONV": 49, "LEAKY_RELU": 75, "QUANTIZE": 89,
                "HARD_SWISH": 91, "BATCH_MATMUL": 101}
_SLOT = {"b": "PrependInt8Slot", "B": "PrependBoolSlot", "i": "PrependInt32Slot",
         "f": "PrependFloat32Slot"}


class Quant(NamedTuple):
    """Quantization parameters: one scale and zero point per tensor, or per channel of
    ``axis``."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0


class _Tensor(NamedTuple):
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    quant: Quant | None
    signature: tuple[int, ...] | None  # shape_signature: -1 for a symbolic dimension


class _Op(NamedTuple):
    code: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: tuple[tuple[int, str, Any], ...]  # (field, format, value) of the options table


class Assembler:
    """One subgraph under construction: add tensors and operators, then :meth:`bytes`."""

    def __init__(self, name: str = "main") -> None:
        self.name = name
        self.tensors: list[_Tensor] = []
        self.buffers: list[bytes] = [b""]  # buffer 0: the empty one of every activation
        self.ops: list[_Op] = []
        self.metadata: dict[str, int] = {}  # name → buffer index

    def meta(self, name: str, data: bytes) -> None:
        """A metadata entry (e.g. ``OfflineMemoryAllocation``) holding ``data``."""
        self.buffers.append(data)
        self.metadata[name] = len(self.buffers) - 1

    def tensor(self, name: str, shape: tuple[int, ...], dtype: str = "float32",
               data: bytes | None = None, quant: Quant | None = None,
               signature: tuple[int, ...] | None = None) -> int:
        """A tensor (with its data when it is a constant; ``signature`` where a dimension is
        symbolic); its index."""
        buffer = 0
        if data is not None:
            self.buffers.append(data)
            buffer = len(self.buffers) - 1
        self.tensors.append(_Tensor(name, tuple(shape), dtype, buffer, quant, signature))
        return len(self.tensors) - 1

    def op(self, code: str, inputs: list[int], outputs: list[int],
           options: tuple[tuple[int, str, Any], ...] = ()) -> None:
        self.ops.append(_Op(code, tuple(inputs), tuple(outputs), options))

    def bytes(self, inputs: list[int], outputs: list[int], signature: str | None =
              "serving_default") -> bytes:
        """The whole file: a model of this one subgraph, with a signature naming its
        input and output tensors."""
        fb = require("flatbuffers", "writing TFLite")
        b = fb.Builder(1 << 16)
        b.ForceDefaults(True)  # every option as given, even where it equals the default
        codes = list(dict.fromkeys(o.code for o in self.ops))

        def ints(values: list[int] | tuple[int, ...], fmt: str = "i") -> int:
            width = {"i": 4, "q": 8, "f": 4}[fmt]
            b.StartVector(width, len(values), width)
            prepend = {"i": b.PrependInt32, "q": b.PrependInt64, "f": b.PrependFloat32}[fmt]
            for v in reversed(values):
                prepend(v)
            return b.EndVector()

        def offsets(items: list[int]) -> int:
            b.StartVector(4, len(items), 4)
            for o in reversed(items):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        def data(raw: bytes) -> int:
            b.StartVector(1, len(raw), 16)
            b.head -= len(raw)
            b.Bytes[b.head:b.head + len(raw)] = raw
            return b.EndVector()

        buffers = []
        for raw in reversed(self.buffers):
            d = data(raw) if raw else None
            b.StartObject(3)
            if d is not None:
                b.PrependUOffsetTRelativeSlot(0, d, 0)
            buffers.append(b.EndObject())
        buffers.reverse()
        tensors = []
        for t in self.tensors:
            name, shape = b.CreateString(t.name), ints(t.shape)
            symbolic = ints(t.signature) if t.signature is not None else None
            q = None
            if t.quant is not None:
                scales, zps = ints(t.quant.scales, "f"), ints(t.quant.zero_points, "q")
                b.StartObject(7)
                b.PrependUOffsetTRelativeSlot(2, scales, 0)
                b.PrependUOffsetTRelativeSlot(3, zps, 0)
                b.PrependInt32Slot(6, t.quant.axis, 0)
                q = b.EndObject()
            b.StartObject(8)
            b.PrependUOffsetTRelativeSlot(0, shape, 0)
            b.PrependInt8Slot(1, TYPES.index(t.dtype), 0)
            b.PrependUint32Slot(2, t.buffer, 0)
            b.PrependUOffsetTRelativeSlot(3, name, 0)
            if q is not None:
                b.PrependUOffsetTRelativeSlot(4, q, 0)
            if symbolic is not None:
                b.PrependUOffsetTRelativeSlot(7, symbolic, 0)
            tensors.append(b.EndObject())
        ops = []
        for o in self.ops:
            opts = None
            if o.options or o.code in OPTION_TYPES:
                b.StartObject(max((f for f, _, _ in o.options), default=0) + 1)
                for field, fmt, value in o.options:
                    getattr(b, _SLOT[fmt])(field, value, 0)
                opts = b.EndObject()
            ins, outs = ints(o.inputs), ints(o.outputs)
            b.StartObject(5)
            b.PrependUint32Slot(0, codes.index(o.code), 0)
            b.PrependUOffsetTRelativeSlot(1, ins, 0)
            b.PrependUOffsetTRelativeSlot(2, outs, 0)
            if opts is not None:
                b.PrependUint8Slot(3, OPTION_TYPES.get(o.code, 0), 0)
                b.PrependUOffsetTRelativeSlot(4, opts, 0)
            ops.append(b.EndObject())
        name = b.CreateString(self.name)
        t_vec, o_vec = offsets(tensors), offsets(ops)
        in_vec, out_vec = ints(inputs), ints(outputs)
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, t_vec, 0)
        b.PrependUOffsetTRelativeSlot(1, in_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, out_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, o_vec, 0)
        b.PrependUOffsetTRelativeSlot(4, name, 0)
        graph = b.EndObject()
        code_tables = []
        for c in codes:
            n = BUILTINS.index(c)
            b.StartObject(4)
            b.PrependInt8Slot(0, min(n, 127), 0)
            b.PrependInt32Slot(2, 1, 0)
            b.PrependInt32Slot(3, n, 0)
            code_tables.append(b.EndObject())
        sigs = []
        if signature is not None:
            maps = []
            for group in (inputs, outputs):
                entries = []
                for i in group:
                    n = b.CreateString(self.tensors[i].name)
                    b.StartObject(2)
                    b.PrependUOffsetTRelativeSlot(0, n, 0)
                    b.PrependUint32Slot(1, i, 0)
                    entries.append(b.EndObject())
                maps.append(offsets(entries))
            key = b.CreateString(signature)
            b.StartObject(5)
            b.PrependUOffsetTRelativeSlot(0, maps[0], 0)
            b.PrependUOffsetTRelativeSlot(1, maps[1], 0)
            b.PrependUOffsetTRelativeSlot(2, key, 0)
            b.PrependUint32Slot(4, 0, 0)
            sigs.append(b.EndObject())
        metas = []
        for key, index in self.metadata.items():
            n = b.CreateString(key)
            b.StartObject(2)
            b.PrependUOffsetTRelativeSlot(0, n, 0)
            b.PrependUint32Slot(1, index, 0)
            metas.append(b.EndObject())
        meta_vec = offsets(metas)
        desc = b.CreateString("macscalc")
        codes_vec, graphs_vec = offsets(code_tables), offsets([graph])
        buf_vec, sig_vec = offsets(buffers), offsets(sigs)
        b.StartObject(8)
        b.PrependUint32Slot(0, 3, 0)
        b.PrependUOffsetTRelativeSlot(1, codes_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, graphs_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, desc, 0)
        b.PrependUOffsetTRelativeSlot(4, buf_vec, 0)
        b.PrependUOffsetTRelativeSlot(6, meta_vec, 0)
        b.PrependUOffsetTRelativeSlot(7, sig_vec, 0)
        b.Finish(b.EndObject(), file_identifier=IDENT)
        return bytes(b.Output())

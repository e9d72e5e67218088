"""A ``.tflite`` file read into plain records: subgraphs, tensors, operators, buffers.

Field numbers are those of TensorFlow Lite's ``schema.fbs`` (schema version 3), read with
the bounded :mod:`flat` reader. Weights are never read: a tensor's buffer is known by where
it lies and its size in bytes (as stored: int8, float16, float32, ...); only small integer
constants (paddings, axes, shapes) have their values read. Lists are capped
(``MAX_TENSORS``, ``MAX_OPERATORS``) so a file's size bounds the work.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any, NamedTuple

from macscalc.core.errors import MacscalcError
from macscalc.core.limits import MAX_CHANNELS, MAX_LAYERS
from macscalc.models.onnx.file import short
from macscalc.models.tflite.flat import Flat, Table

MAX_TENSORS = 200_000
MAX_OPERATORS = MAX_LAYERS  # each operator places at least one primitive
MAX_GRAPHS = 1_000
MAX_RANK = 8
SMALL = 4096  # elements: an integer constant this small has its values read
IDENT = b"TFL3"

# TensorType: name and bytes per element (INT4 packs two to a byte: width 0 means "see bytes")
TYPES = ("float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16",
         "complex64", "int8", "float64", "complex128", "uint64", "resource", "variant",
         "uint32", "uint16", "int4", "bfloat16")
WIDTHS = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1,
          "int16": 2, "int8": 1, "float64": 8, "uint64": 8, "uint32": 4, "uint16": 2,
          "bfloat16": 2, "complex64": 8, "complex128": 16, "int4": 1}  # bytes per element
_INT_FORMATS = {"int32": "i", "int64": "q", "uint8": "B", "int8": "b", "int16": "h"}

# BuiltinOperator by code (schema.fbs order), for naming every operator, known or not
BUILTINS = """ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE
DEQUANTIZE EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D
LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1
RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM
CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND
SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE
BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM
CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE
SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW
ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK
REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR
LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS
WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE
NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM
BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG
REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL
CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL
BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1""".split()  # noqa: SIM905


class Tensor(NamedTuple):
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int  # index into Model.buffers; 0 is the empty buffer of every activation
    scales: int  # quantization scales: 0 none, 1 per tensor, more per channel
    axis: int  # the quantized dimension when per channel
    dynamic: bool = False  # a dimension past the batch is symbolic (shape_signature -1)
    sparse: bool = False  # stored in a sparse format (its buffer holds fewer values)


class Operator(NamedTuple):
    index: int
    op: str  # BuiltinOperator name, or CUSTOM:<code>
    inputs: tuple[int, ...]  # tensor indices; -1 is an omitted optional input
    outputs: tuple[int, ...]
    options: Table | None  # builtin_options, read by the rule of ``op``


class Graph(NamedTuple):
    name: str
    tensors: tuple[Tensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: tuple[Operator, ...]


class Signature(NamedTuple):
    key: str
    graph: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class Buffer(NamedTuple):
    start: int  # byte offset in the file
    size: int  # bytes as stored


class Model(NamedTuple):
    file: str
    flat: Flat
    version: int
    description: str
    graphs: tuple[Graph, ...]
    signatures: tuple[Signature, ...]
    buffers: tuple[Buffer, ...]
    file_bytes: int
    metadata: dict[str, int] = {}  # metadata name → buffer index

    def stored(self, t: Tensor) -> int:
        """Bytes of ``t``'s data in the file (0: computed at run time)."""
        return self.buffers[t.buffer].size if 0 < t.buffer < len(self.buffers) else 0

    def consistent(self, t: Tensor) -> bool:
        """Whether a dense constant's buffer holds exactly its shape's values."""
        width = WIDTHS.get(t.dtype)
        n = _numel(t.shape)
        if t.sparse or width is None:
            return True
        want = -(-n // 2) if t.dtype == "int4" else n * width
        return self.stored(t) == want

    def int32s(self, buffer: int, most: int) -> list[int]:
        """A buffer's data as int32 values (at most ``most`` of them)."""
        b = self.buffers[buffer]
        n = min(b.size // 4, most)
        return list(struct.unpack_from(f"<{n}i", self.flat.data, b.start)) if n else []

    def ints(self, t: Tensor) -> list[int] | None:
        """The values of a small integer constant, or None when it has none in the file."""
        fmt = _INT_FORMATS.get(t.dtype)
        n = _numel(t.shape)
        b = self.buffers[t.buffer] if 0 < t.buffer < len(self.buffers) else None
        if fmt is None or b is None or n > SMALL or b.size != n * struct.calcsize(fmt):
            return None
        return list(struct.unpack_from(f"<{n}{fmt}", self.flat.data, b.start))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= max(d, 0)
    return n


def _tensor(k: int, t: Table, n_buffers: int) -> Tensor:
    flat = t.flat
    shape = tuple(t.scalars(0, "i", MAX_RANK))
    code = t.scalar(1, "b")
    if not 0 <= code < len(TYPES):
        raise flat.fail(f"tensor {k} has unknown type {code}", t.at)
    buffer = t.scalar(2, "I")
    if buffer >= n_buffers:
        raise flat.fail(f"tensor {k} names buffer {buffer} of {n_buffers}", t.at)
    q = t.table(4)
    scales = axis = 0
    if q is not None:
        scales = q.length(2, 4, MAX_CHANNELS)
        axis = q.scalar(6, "i")
    # a converter joins the names of fused ops with ';': the first is the tensor's own
    signature = t.scalars(7, "i", MAX_RANK)
    dynamic = any(d < 0 for d in signature[1:])
    return Tensor(k, short(t.string(3).split(";")[0], 96), shape, TYPES[code], buffer, scales,
                  axis, dynamic, t.has(6))


def _operator(k: int, o: Table, codes: list[str], n_tensors: int) -> Operator:
    flat = o.flat
    index = o.scalar(0, "I")
    if index >= len(codes):
        raise flat.fail(f"operator {k} names operator code {index} of {len(codes)}", o.at)
    ins = tuple(o.scalars(1, "i", 1024))
    outs = tuple(o.scalars(2, "i", 1024))
    if any(not -1 <= i < n_tensors for i in ins) or any(not 0 <= i < n_tensors for i in outs):
        raise flat.fail(f"operator {k} ({codes[index]}) reads or writes a tensor that does "
                        "not exist", o.at)
    return Operator(k, codes[index], ins, outs, o.table(4))


def _graph(g: Table, codes: list[str], n_buffers: int) -> Graph:
    tensors = tuple(_tensor(k, t, n_buffers) for k, t in enumerate(g.tables(0, MAX_TENSORS)))
    n = len(tensors)
    ins, outs = tuple(g.scalars(1, "i", 1024)), tuple(g.scalars(2, "i", 1024))
    if any(not 0 <= i < n for i in (*ins, *outs)):
        raise g.flat.fail("a subgraph's input or output is not one of its tensors", g.at)
    ops = tuple(_operator(k, o, codes, n) for k, o in enumerate(g.tables(3, MAX_OPERATORS)))
    return Graph(short(g.string(4)), tensors, ins, outs, ops)


def _code(c: Table) -> str:
    code = max(c.scalar(0, "b"), c.scalar(3, "i"))  # deprecated_builtin_code, builtin_code
    if code == 32:  # CUSTOM
        return f"CUSTOM:{short(c.string(1), 40)}"
    return BUILTINS[code] if 0 <= code < len(BUILTINS) else f"BUILTIN_{code}"


def _buffer(b: Table) -> Buffer:
    start, size = b.span(0, 1, b.flat.size)
    offset = b.scalar(1, "Q")
    if offset > 1:  # data after the flatbuffer (models over 2 GB)
        size = b.scalar(2, "Q")
        if offset + size > b.flat.size:
            raise b.flat.fail("a buffer runs past the end of the file", b.at)
        start = offset
    return Buffer(start, size)


def _signature(s: Table, n_graphs: int) -> Signature:
    def names(i: int) -> tuple[str, ...]:
        return tuple(short(m.string(0)) for m in s.tables(i, 1024))

    graph = s.scalar(4, "I")
    if graph >= n_graphs:
        raise s.flat.fail(f"a signature names subgraph {graph} of {n_graphs}", s.at)
    return Signature(short(s.string(2)), graph, names(0), names(1))


def parse(data: Any, file: str) -> Model:
    """The model in ``data`` (the file's bytes or a memory map of them)."""
    flat = Flat(data, file)
    if len(data) < 8 or bytes(data[4:8]) != IDENT:
        raise MacscalcError("not a TFLite model: no 'TFL3' file identifier", file)
    m = flat.root()
    codes = [_code(c) for c in m.tables(1, 10_000)]
    buffers = tuple(_buffer(b) for b in m.tables(4, MAX_TENSORS))
    graphs = tuple(_graph(g, codes, len(buffers)) for g in m.tables(2, MAX_GRAPHS))
    if not graphs:
        raise MacscalcError("not a TFLite model: it has no subgraph", file)
    sigs = tuple(_signature(s, len(graphs)) for s in m.tables(7, MAX_GRAPHS))
    metadata = {short(t.string(0)): t.scalar(1, "I") for t in m.tables(6, 1024)}
    if any(b >= len(buffers) for b in metadata.values()):
        raise flat.fail("a metadata entry names a buffer that does not exist", m.at)
    return Model(file, flat, m.scalar(0, "I"), short(m.string(3), 64), graphs, sigs, buffers,
                 flat.size, metadata)


def load(path: str) -> Model:
    """The model at ``path``, memory-mapped: only the pages the reader touches are read."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise MacscalcError("not a TFLite model: the file is empty", path)
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise MacscalcError(f"cannot read TFLite file: {e.strerror}", path) from None
    return parse(data, path)

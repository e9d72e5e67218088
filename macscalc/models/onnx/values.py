"""The values an ONNX graph is read into, and helpers shared by the reader's parts.

A tensor of the graph is an image (:class:`Act`: its network node, ONNX dims with batch 1
and the axis of its channels), a constant (:class:`Const`), or a lazy form that only a
particular consumer can use (a ``Pad`` before a conv, a shuffle's regrouped channels, an
expanded SE gate); :class:`Dead` marks what follows an operator with no rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from macscalc.core.errors import MacscalcError, ShapeError
from macscalc.lang.layers import Layer, Shape
from macscalc.lang.schema import POS_INT, ArgType, arg
from macscalc.lang.tokens import Tokens
from macscalc.models.onnx.file import SMALL, short

if TYPE_CHECKING:
    from macscalc.models.onnx.proto import NodeProto


class Unknown(Layer):
    """An ONNX operator with no counting rule (``--allow-unknown``): its output shape is
    the file's, its costs are unknown, and the report says ``partial``. Not a spec row."""

    kind: ClassVar[str] = "unknown"
    arity: ClassVar[int | None] = None
    op = arg(ArgType("an operator name", str), doc="the ONNX op type")
    h = arg(POS_INT, doc="output height")
    w = arg(POS_INT, doc="output width")
    c = arg(POS_INT, doc="output channels")

    def out_shape(self, ins: Any) -> Shape:
        return Shape(self.h, self.w, self.c)

    def label(self, ins: Any) -> str:
        return f"unknown {self.op}"

    def detail(self) -> str:
        return f"{self.op}: not counted"


class Act(NamedTuple):
    """An activation tensor: the network node holding it, its ONNX dims (batch 1) and
    the axis of its channels."""

    ref: str
    dims: tuple[int, ...]
    ch: int

    @property
    def tokens(self) -> bool:
        """(N, n, c), channels last: one sequence of n tokens, shown as a spec shows it
        (``n×c tokens``), not as an n×1 image."""
        return len(self.dims) == 3 and self.ch == 2

    @property
    def shape(self) -> Shape:
        if self.tokens:
            return Tokens(1, self.dims[1], self.dims[2])
        sp = [self.dims[i] for i in range(1, len(self.dims)) if i != self.ch]
        if len(sp) > 2 or not 0 <= self.ch < len(self.dims):
            raise ShapeError(f"a tensor of rank {len(self.dims)} is not an image")
        sp += [1] * (2 - len(sp))
        return Shape(sp[0], sp[1], self.dims[self.ch])

    def like(self, ref: str, s: Shape) -> Act:
        """A tensor laid out as this one, with shape ``s``."""
        if self.tokens and (isinstance(s, Tokens) or s.h == 1):
            return Act(ref, (self.dims[0], s.w, s.c), 2)
        dims = list(self.dims)
        dims[self.ch] = s.c
        spatial = [i for i in range(1, len(dims)) if i != self.ch]
        fill = [s.h, s.w]
        if len(spatial) < 2 and (s.w != 1 or (not spatial and s.h != 1)):
            raise ShapeError(f"{s} does not fit a tensor of rank {len(dims)}")
        for i, v in zip(spatial, fill, strict=False):
            dims[i] = v
        return Act(ref, tuple(dims), self.ch)


class Const(NamedTuple):
    """A constant: an initializer, a Constant, or shape arithmetic on them. ``value`` is
    None for a weight whose values were not read."""

    dims: tuple[int, ...]
    value: Any
    proto: Any = None  # the TensorProto to read the value from, when it is needed


class Padded(NamedTuple):
    """A ``Pad`` node's output, folded into the conv or pool that reads it."""

    act: Act
    pads: tuple[int, int, int, int]  # top, left, bottom, right


class Grouped(NamedTuple):
    """The channels split into (groups, channels / groups) by a Reshape: the first step of
    a channel shuffle; ``swapped`` after its Transpose."""

    act: Act
    groups: int
    swapped: bool


class Broadcast(NamedTuple):
    """A 1×1×C tensor expanded to h×w×C (``y.expand_as(x)``): read by a Mul as its gate."""

    act: Act
    dims: tuple[int, ...]


class Dead(NamedTuple):
    """The output of an operator that could not be mapped (reported, not counted)."""


Value = Act | Const | Padded | Grouped | Broadcast | Dead


class Fused(NamedTuple):
    """A pattern of several nodes counted as one primitive, placed at its last node."""

    kind: str  # swish, hswish, gelu, layernorm, linear
    x: str  # the input tensor
    out: str  # the output tensor
    nodes: tuple[int, ...]  # indices of its nodes
    last: int
    extra: tuple[str, ...] = ()  # other tensors it reads (linear: weight, bias)


class Unsupported(Exception):
    """Raised inside an op rule: this node has no counting rule in this form."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


def unknown_error(fmt: str, unknown: dict[str, list[str]], file: str) -> MacscalcError:
    """The first error of a model file with operators macscalc has no rule for: every
    operator with its count and first five names, never a zero counted in its place."""
    listed = "; ".join(f"{op} ({len(names)}: {', '.join(names[:5])}"
                       f"{', …' if len(names) > 5 else ''})" for op, names in unknown.items())
    return MacscalcError(f"no counting rule for these {fmt} operators: {listed}. Nothing is "
                         "counted as zero; --allow-unknown counts them as unknown (report "
                         "status partial)", file)


# Ops a torch.nn module exports as itself: its name's last part is the op type, which
# is dropped (``/layer1/layer1.0/conv1/Conv``); a functional op (``/layer1/layer1.0/Add``)
# keeps it, lower-cased, so it is not taken for its parent module.
_MODULE_OPS = frozenset({
    "Conv", "Gemm", "MatMul", "BatchNormalization", "LayerNormalization", "Relu", "Clip",
    "HardSwish", "HardSigmoid", "Sigmoid", "Gelu", "Softmax", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Flatten", "Dropout", "Resize"})


def sanitize(name: str, op: str = "", module: bool = False) -> str:
    """A readable network name from an exporter's node name: torch's scope path
    ``/features/features.1/conv/conv.0/conv.0.0/Conv`` becomes ``features.1.conv.0.0`` (a
    part that starts with the one before it plus a dot is that part's child)."""
    parts = [p for p in name.split("/") if p]
    last = parts[-1] if parts else ""
    tail = last.split("_")[0]
    if len(parts) > 1 and tail == op:
        parts = parts[:-1] if module or op in _MODULE_OPS else [*parts[:-1], last.lower()]
    path: list[str] = []
    for p in parts:
        if path and p.startswith(path[-1] + "."):
            path[-1] = p
        else:
            path.append(p)
    return short(".".join(path), 64)


def node_name(node: NodeProto) -> str:
    """The node's name; for the dynamo exporter's generated ones (``node_Conv_12``), the
    module path its weight is named after (``layer1.0.conv1.weight``), when it has one."""
    if (not node.name or node.name.startswith("node_")) and len(node.input) > 1 \
            and node.input[1].endswith(".weight"):
        return short(node.input[1][: -len(".weight")], 64)
    return sanitize(node.name, node.op_type)


_ATTR_TYPES = {1: "f", 2: "i", 3: "s", 4: "t", 6: "floats", 7: "ints", 8: "strings"}


def attrs(node: NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        field = _ATTR_TYPES.get(a.type)
        if field is None:
            continue
        v = getattr(a, field)
        out[a.name] = list(v) if field in ("floats", "ints", "strings") else (
            v.decode("utf-8", "replace") if field == "s" else v)
    return out


def scalar(v: Any) -> float | None:
    import numpy as np

    if v is None:
        return None
    a = np.asarray(v)
    return float(a.reshape(-1)[0]) if a.size == 1 else None



def show_dims(dims: tuple[int | None, ...]) -> str:
    return "×".join("?" if d is None else str(d) for d in dims)


def role(node: NodeProto, name: str) -> str:
    idx = list(node.input).index(name)
    return {0: "input", 1: "weight", 2: "bias"}.get(idx, f"input {idx}") \
        if node.op_type in ("Conv", "Gemm", "MatMul") else f"input {idx}"




def readable(v: Const) -> bool:
    """Whether a constant's values are known or can be read (small tensors only)."""
    from math import prod

    return v.value is not None or (v.proto is not None and prod(v.dims) <= SMALL)

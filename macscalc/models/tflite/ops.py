"""Counting rules: one TFLite builtin operator each, onto macscalc's primitives.

A rule reads its operator's inputs (images, constants), its ``builtin_options`` table
(field numbers from ``schema.fbs``), places primitives and sets its output. A form it does
not count raises :class:`Unsupported`, which the reader lists; options that contradict the
file's own shapes are located errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from macscalc.core.errors import ShapeError
from macscalc.core.limits import MAX_SIZE, MAX_WINDOW
from macscalc.lang.layers import (
    Activation,
    Add,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Depthwise,
    Flatten,
    GlobalPool,
    Layer,
    Linear,
    Mul,
    Pool,
    Scalar,
    Shape,
    Shuffle,
    Slice,
    Upsample,
)
from macscalc.models.onnx.values import Unsupported
from macscalc.models.tflite.model import Operator, Tensor
from macscalc.models.tflite.values import PADDING, Act, Const, Grouped, Padded, Rows

if TYPE_CHECKING:
    from macscalc.models.tflite.context import Importer


class Options:
    """An operator's options table, or the schema's defaults when it has none."""

    def __init__(self, op: Operator) -> None:
        self.table = op.options

    def get(self, field: int, fmt: str, default: Any = 0) -> Any:
        return default if self.table is None else self.table.scalar(field, fmt, default)


def _window_args(imp: Importer, op: Operator, *values: int) -> None:
    if not all(1 <= v <= MAX_WINDOW for v in values):
        raise imp.fail(f"a kernel, stride or dilation of {list(values)} is outside "
                       f"1…{MAX_WINDOW}", op)


def _padding(imp: Importer, op: Operator, code: int) -> str:
    if code not in PADDING:
        raise imp.fail(f"unknown padding {code}", op)
    return PADDING[code]


def _input(imp: Importer, op: Operator, k: int = 0) -> tuple[Act, tuple[int, int, int, int]]:
    """The image a conv or pool reads, with a ``PAD`` before it folded into its pads."""
    v = imp.values.get(op.inputs[k])
    if isinstance(v, Padded):
        return v.act, v.pads
    return imp.act(op, k), (0, 0, 0, 0)


def _tflite_len(n: int, k: int, s: int, d: int, padding: str, pads: tuple[int, int]) -> int:
    """TFLite's output length of one axis: SAME ⌈n/s⌉, VALID over the (PAD-ed) input."""
    if padding == "same":
        return -(-n // s)
    return (n + pads[0] + pads[1] - d * (k - 1) - 1) // s + 1


def _placed(imp: Importer, op: Operator, x: Act, pads: tuple[int, int, int, int], padding: str,
            make: Callable[[Any], Layer], k: tuple[int, int], s: tuple[int, int],
            d: tuple[int, int] = (1, 1)) -> Act:
    """Place the layer ``make(p)`` whose output is TFLite's, trying the macscalc padding
    ``p`` a folded ``PAD`` amounts to (TF 'same' first: the converter writes an asymmetric
    'same' pad as ``PAD`` + VALID)."""
    t, left, b, r = pads
    if pads == (0, 0, 0, 0):
        choices: list[Any] = [padding]
    elif padding != "valid":
        raise Unsupported(f"{op.op} with SAME padding after a PAD")
    elif (t, left) == (b, r):
        choices = [(t, left), "same"]
    else:
        choices = ["same", ((t + b) // 2, (left + r) // 2), ((t + b + 1) // 2, (left + r + 1) // 2)]
    want = (_tflite_len(x.shape.h, k[0], s[0], d[0], padding, (t, b)),
            _tflite_len(x.shape.w, k[1], s[1], d[1], padding, (left, r)))
    if min(want) <= 0:
        raise imp.fail(f"a {k[0]}×{k[1]} window with stride {s[0]}×{s[1]} collapses a "
                       f"{x.shape.h}×{x.shape.w} input", op)
    for p in choices:
        try:
            layer = make(p)
            out = layer.out_shape((x.shape,))
        except (ValueError, ArithmeticError, ShapeError):
            continue
        if (out.h, out.w) == want:
            return imp.place(op, layer, [x])
    raise Unsupported(f"{op.op} with pads {list(pads)}")


def _data(imp: Importer, op: Operator, t: Tensor) -> Tensor:
    """A weight or bias whose buffer holds what its shape and type say (else the file
    contradicts itself)."""
    if not imp.model.consistent(t):
        raise imp.fail(f"tensor {t.name!r} declares {list(t.shape)} {t.dtype} values but its "
                       f"buffer holds {imp.model.stored(t):,} bytes", op)
    return t


def _weights(imp: Importer, op: Operator, k: int, rank: int) -> Tensor:
    t = imp.const(op, k)
    if t is None or len(t.shape) != rank or min(t.shape) <= 0:
        raise Unsupported(f"{op.op} with a computed or rank-{len(imp.tensor(op, k).shape)} "
                          "weight")
    return _data(imp, op, t)


def _bias(imp: Importer, op: Operator, k: int) -> Tensor | None:
    if k >= len(op.inputs) or op.inputs[k] < 0:
        return None
    t = imp.const(op, k)
    if t is None:
        raise Unsupported(f"{op.op} with a computed bias")
    return _data(imp, op, t)


def _count(imp: Importer, op: Operator, x: int, w: Tensor, bias: Tensor | None) -> None:
    """The stored weights and bias of a conv or FC, and the type its input is computed in."""
    imp.stored.add("weights", w)
    if bias is not None:
        imp.stored.add("biases", bias)
    imp.stored.activations.add(imp.graph.tensors[op.inputs[x]].dtype)


def _conv(imp: Importer, op: Operator) -> None:
    x, pads = _input(imp, op)
    w = _weights(imp, op, 1, 4)
    cout, kh, kw, per_group = w.shape
    if x.shape.c % per_group:
        raise imp.fail(f"filter {list(w.shape)} does not fit {x.shape.c} input channels", op)
    bias = _bias(imp, op, 2)
    o = Options(op)
    s, d = (o.get(2, "i"), o.get(1, "i")), (o.get(5, "i", 1), o.get(4, "i", 1))
    _window_args(imp, op, kh, kw, *s, *d)
    groups = x.shape.c // per_group
    a = _placed(imp, op, x, pads, _padding(imp, op, o.get(0, "b")),
                lambda p: Conv2d(c=cout, k=(kh, kw), s=s, padding=p, d=d, groups=groups,
                                 bias=bias is not None), (kh, kw), s, d)
    _count(imp, op, 0, w, bias)
    imp.finish(op, a, o.get(3, "b"))


def _depthwise(imp: Importer, op: Operator) -> None:
    x, pads = _input(imp, op)
    w = _weights(imp, op, 1, 4)
    one, kh, kw, cout = w.shape
    if one != 1 or cout % x.shape.c:
        raise imp.fail(f"depthwise filter {list(w.shape)} does not fit {x.shape.c} input "
                       "channels", op)
    bias = _bias(imp, op, 2)
    o = Options(op)
    s, d = (o.get(2, "i"), o.get(1, "i")), (o.get(6, "i", 1), o.get(5, "i", 1))
    _window_args(imp, op, kh, kw, *s, *d)
    m = cout // x.shape.c
    a = _placed(imp, op, x, pads, _padding(imp, op, o.get(0, "b")),
                lambda p: Depthwise(k=(kh, kw), s=s, m=m, padding=p, d=d,
                                    bias=bias is not None), (kh, kw), s, d)
    _count(imp, op, 0, w, bias)
    imp.finish(op, a, o.get(4, "b"))


def _transpose_conv(imp: Importer, op: Operator) -> None:
    x = imp.act(op, 2)
    w = _weights(imp, op, 1, 4)
    cout, kh, kw, cin = w.shape
    if cin != x.shape.c:
        raise imp.fail(f"filter {list(w.shape)} does not fit {x.shape.c} input channels", op)
    bias = _bias(imp, op, 3)
    o = Options(op)
    s = (o.get(2, "i"), o.get(1, "i"))
    _window_args(imp, op, kh, kw, *s)
    shape = imp.const(op, 0)
    given = imp.model.ints(shape) if shape is not None else None
    if given is not None and len(given) == 4:
        want = Shape(given[1], given[2], given[3])
    elif _padding(imp, op, o.get(0, "b")) == "same":
        want = Shape(x.shape.h * s[0], x.shape.w * s[1], cout)
    else:
        want = Shape((x.shape.h - 1) * s[0] + kh, (x.shape.w - 1) * s[1] + kw, cout)
    pad, extra = [], []
    for n, k, st, out in ((x.shape.h, kh, s[0], want.h), (x.shape.w, kw, s[1], want.w)):
        total = (n - 1) * st + k - out  # rows the padding removes: 2·p − output_padding
        p = max(0, -(-total // 2))
        pad.append(p)
        extra.append(2 * p - total)
    layer = ConvTranspose2d(c=cout, k=(kh, kw), s=s, padding=tuple(pad),
                            output_padding=tuple(extra), bias=bias is not None)
    a = imp.place(op, layer, [x])
    _count(imp, op, 2, w, bias)
    imp.finish(op, a, o.get(3, "b"))


def _fully_connected(imp: Importer, op: Operator) -> None:
    rows = imp.values.get(op.inputs[0])
    x = rows.act if isinstance(rows, Rows) else imp.act(op)
    w = _weights(imp, op, 1, 2)
    cout, cin = w.shape
    bias = _bias(imp, op, 2)
    o = Options(op)
    if isinstance(rows, Rows):
        if cin != x.shape.c:
            raise imp.fail(f"weights {list(w.shape)} do not fit input {x.shape}", op)
        a = imp.place(op, Linear(c=cout, bias=bias is not None), [x], check=False)
        _count(imp, op, 0, w, bias)
        imp.finish(op, a, o.get(0, "b"))
        return
    if cin != x.shape.c:
        if cin != x.shape.numel:
            raise imp.fail(f"weights {list(w.shape)} do not fit input {x.shape}", op)
        x = imp.place(op, Flatten(), [x], name=f"{imp.name(op)}/flatten", check=False)
    elif x.shape.h * x.shape.w > 1 and not o.get(2, "b"):
        raise Unsupported("FULLY_CONNECTED over positions without keep_num_dims")
    a = imp.place(op, Linear(c=cout, bias=bias is not None), [x])
    _count(imp, op, 0, w, bias)
    imp.finish(op, a, o.get(0, "b"))


def _batch_matmul(imp: Importer, op: Operator) -> None:
    """A matmul by a constant (a linear layer at every position); of two computed tensors
    (attention) it is not counted."""
    x = imp.act(op)
    w = imp.const(op, 1)
    if w is None or len(w.shape) != 2 or Options(op).get(0, "b"):
        raise Unsupported("BATCH_MATMUL of two computed tensors or with adj_x")
    _data(imp, op, w)
    cin, cout = reversed(w.shape) if Options(op).get(1, "b") else w.shape
    if cin != x.shape.c:
        raise imp.fail(f"weights {list(w.shape)} do not fit input {x.shape}", op)
    a = imp.place(op, Linear(c=cout, bias=False), [x])
    _count(imp, op, 0, w, None)
    imp.finish(op, a)


def _pool(kind: str) -> Callable[[Importer, Operator], None]:
    def rule(imp: Importer, op: Operator) -> None:
        x, pads = _input(imp, op)
        o = Options(op)
        k, s = (o.get(4, "i"), o.get(3, "i")), (o.get(2, "i"), o.get(1, "i"))
        _window_args(imp, op, *k, *s)
        a = _placed(imp, op, x, pads, _padding(imp, op, o.get(0, "b")),
                    lambda p: Pool(op=kind, k=k, s=s, padding=p), k, s)
        imp.finish(op, a, o.get(5, "b"))
    return rule


def _reduce(kind: str) -> Callable[[Importer, Operator], None]:
    """MEAN or REDUCE_MAX over height and width: a global pool."""
    def rule(imp: Importer, op: Operator) -> None:
        x = imp.act(op)
        rank = len(imp.tensor(op, 0).shape)
        axes = {a % rank for a in imp.ints(op, 1)} if rank else set()
        if rank != 4 or axes != {1, 2}:
            raise Unsupported(f"{op.op} over axes other than height and width")
        imp.finish(op, imp.place(op, GlobalPool(op=kind), [x]))
    return rule


def _const_operand(imp: Importer, op: Operator, x: Act) -> bool:
    """Whether the operator's other input is a constant of one value or one per channel."""
    t = imp.const(op, 1)
    if t is None:
        return False
    n = 1
    for d in t.shape:
        n *= d
    if n not in (1, x.shape.c):
        raise Unsupported(f"{op.op} with a constant of shape {list(t.shape)}")
    return True


def _binary(kind: str) -> Callable[[Importer, Operator], None]:
    """ADD, MUL, SUB, DIV, MAXIMUM, MINIMUM: of two images (add, mul) or with a constant."""
    fused_field = 0 if kind in ("add", "sub", "mul", "div") else None

    def rule(imp: Importer, op: Operator) -> None:
        o = Options(op)
        fused = o.get(fused_field, "b") if fused_field is not None else 0
        if kind == "mul" and op.index in imp.swish.values():
            x = next(v for i in op.inputs if isinstance(v := imp.values.get(i), Act))
            imp.finish(op, imp.place(op, Activation(fn="swish"), [x]), fused)
            return
        if len(op.inputs) != 2:
            raise imp.fail(f"{op.op} needs 2 inputs, has {len(op.inputs)}", op)
        if isinstance(imp.values.get(op.inputs[0]), Const):
            if kind in ("sub", "div"):
                raise Unsupported(f"{op.op} of a constant by an image")
            op = op._replace(inputs=op.inputs[::-1])
        x = imp.act(op, 0)
        if _const_operand(imp, op, x):
            imp.finish(op, imp.place(op, Scalar(op=kind), [x]), fused)
            return
        y = imp.act(op, 1)
        if kind == "add":
            layer: Layer = Add()
        elif kind == "mul":
            layer = Mul()
            if x.shape == Shape(1, 1, y.shape.c):
                x, y = y, x  # the gate second, as the primitive reads it
        else:
            raise Unsupported(f"{op.op} of two images")
        if y.shape != x.shape and not (kind == "mul" and y.shape == Shape(1, 1, x.shape.c)):
            raise Unsupported(f"{op.op} broadcasting over channels or positions")
        imp.finish(op, imp.place(op, layer, [x, y]), fused)
    return rule


def _activation(fn: str) -> Callable[[Importer, Operator], None]:
    def rule(imp: Importer, op: Operator) -> None:
        x = imp.act(op)
        if op.index in imp.swish:  # x · sigmoid(x): placed at the MUL as swish
            imp.values[op.outputs[0]] = x
            return
        imp.finish(op, imp.place(op, Activation(fn=fn), [x]))
    return rule


def _free(imp: Importer, op: Operator) -> None:
    """QUANTIZE, DEQUANTIZE, CAST: a change of type; of a constant it stays that constant
    (a float16 or int8 weight widened at load), of an image it counts nothing."""
    v = imp.values.get(op.inputs[0]) if op.inputs else None
    if isinstance(v, Const):
        imp.values[op.outputs[0]] = v
        return
    imp.alias(op, imp.act(op))


def _reshape(imp: Importer, op: Operator) -> None:
    """RESHAPE, SQUEEZE, EXPAND_DIMS: free when they keep the image, a flatten when they
    make it one vector, the ends of a channel shuffle (h×w×c → h×w×g×c/g, transposed,
    back); any other regrouping is not counted. Where the file's sizes are symbolic only
    the channels are compared."""
    v = imp.values.get(op.inputs[0])
    t = imp.out(op)
    out = t.shape
    if isinstance(v, Grouped):
        a = v.act.shape
        if not v.swapped or len(out) != 4 or out[3] != a.c or \
                (not t.dynamic and out != (1, a.h, a.w, a.c)):
            raise Unsupported(f"{op.op} of regrouped channels other than a shuffle")
        imp.finish(op, imp.place(op, Shuffle(groups=v.groups), [v.act]))
        return
    x = imp.act(op)
    if len(out) == 5 and out[3] * out[4] == x.shape.c and \
            (t.dynamic or out[:3] == (1, x.shape.h, x.shape.w)):
        imp.values[op.outputs[0]] = Grouped(x, out[3], False)
        return
    if len(out) == 2 and x.shape.h * x.shape.w > 1 and (
            t.dynamic or out == (x.shape.h * x.shape.w, x.shape.c)):
        imp.values[op.outputs[0]] = Rows(x)  # positions × channels, for a Dense
        return
    s = imp.declared(op) if len(out) in (2, 3, 4) else None
    if s is None and t.dynamic and len(out) == 4 and out[3] == x.shape.c:
        s = x.shape
    if s == x.shape:
        imp.alias(op, x)
    elif s == Shape(1, 1, x.shape.numel):
        imp.finish(op, imp.place(op, Flatten(), [x]))
    else:
        raise Unsupported(f"{op.op} from {x.shape} to {list(out)}")


def _transpose(imp: Importer, op: Operator) -> None:
    """The middle of a channel shuffle: groups and channels per group swapped."""
    v = imp.values.get(op.inputs[0])
    if not isinstance(v, Grouped) or v.swapped or imp.ints(op, 1) != [0, 1, 2, 4, 3]:
        raise Unsupported("TRANSPOSE other than a channel shuffle's")
    imp.values[op.outputs[0]] = v._replace(swapped=True)


def _slice(imp: Importer, op: Operator) -> None:
    """SLICE or STRIDED_SLICE of whole positions and a run of channels: a view, free."""
    x = imp.act(op)
    rank = len(imp.tensor(op, 0).shape)
    begin = imp.ints(op, 1)
    out = imp.declared(op)
    if out is None and op.op == "SLICE":  # symbolic sizes: the channels from its size
        size = imp.ints(op, 2)
        c = size[3] if len(size) == 4 and size[3] >= 0 else x.shape.c - begin[3]
        out = Shape(x.shape.h, x.shape.w, c)
    if out is None or rank != 4 or len(begin) != 4 or begin[:3] != [0, 0, 0] \
            or (out.h, out.w) != (x.shape.h, x.shape.w) \
            or (op.op == "STRIDED_SLICE" and imp.ints(op, 3) != [1, 1, 1, 1]):
        raise Unsupported(f"{op.op} of other than a run of channels")
    imp.finish(op, imp.place(op, Slice(c=out.c, start=begin[3]), [x]))


def _concat(imp: Importer, op: Operator) -> None:
    o = Options(op)
    rank = len(imp.out(op).shape)
    if rank == 0 or o.get(0, "i") % rank != rank - 1:
        raise Unsupported("CONCATENATION along an axis other than the channels")
    xs = [imp.act(op, k) for k in range(len(op.inputs))]
    imp.finish(op, imp.place(op, Concat(), xs), o.get(1, "b"))


def _pad(imp: Importer, op: Operator) -> None:
    """PAD, PADV2, MIRROR_PAD: folded into the conv or pool that reads the result."""
    x = imp.act(op)
    p = imp.ints(op, 1)
    if len(p) != 8 or p[:2] != [0, 0] or p[6:] != [0, 0] or min(p) < 0:
        raise Unsupported(f"{op.op} of other than height and width")
    imp.values[op.outputs[0]] = Padded(x, (p[2], p[4], p[3], p[5]))


def _resize(mode: str) -> Callable[[Importer, Operator], None]:
    def rule(imp: Importer, op: Operator) -> None:
        x = imp.act(op)
        size = imp.ints(op, 1)
        if len(size) != 2:
            raise Unsupported(f"{op.op} to a size of {len(size)} values")
        if not all(1 <= v <= MAX_SIZE for v in size):
            raise imp.fail(f"a size of {size} is outside 1…{MAX_SIZE}", op)
        imp.finish(op, imp.place(op, Upsample(size=(size[0], size[1]), mode=mode), [x]))
    return rule


RULES: dict[str, Callable[[Importer, Operator], None]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "TRANSPOSE_CONV": _transpose_conv,
    "FULLY_CONNECTED": _fully_connected,
    "BATCH_MATMUL": _batch_matmul,
    "AVERAGE_POOL_2D": _pool("avg"),
    "MAX_POOL_2D": _pool("max"),
    "MEAN": _reduce("avg"),
    "REDUCE_MAX": _reduce("max"),
    "ADD": _binary("add"),
    "MUL": _binary("mul"),
    "SUB": _binary("sub"),
    "DIV": _binary("div"),
    "MAXIMUM": _binary("max"),
    "MINIMUM": _binary("min"),
    "RELU": _activation("relu"),
    "RELU6": _activation("relu6"),
    "LOGISTIC": _activation("sigmoid"),
    "TANH": _activation("tanh"),
    "HARD_SWISH": _activation("hswish"),
    "GELU": _activation("gelu"),
    "LEAKY_RELU": _activation("leaky_relu"),
    "SOFTMAX": _activation("softmax"),
    "QUANTIZE": _free,
    "DEQUANTIZE": _free,
    "CAST": _free,
    "RESHAPE": _reshape,
    "SQUEEZE": _reshape,
    "EXPAND_DIMS": _reshape,
    "TRANSPOSE": _transpose,
    "SLICE": _slice,
    "STRIDED_SLICE": _slice,
    "CONCATENATION": _concat,
    "PAD": _pad,
    "PADV2": _pad,
    "MIRROR_PAD": _pad,
    "RESIZE_BILINEAR": _resize("bilinear"),
    "RESIZE_NEAREST_NEIGHBOR": _resize("nearest"),
}

"""A placed network as a runnable ``.tflite`` model (NHWC, batch 1), float or int8.

Why: the MobileNet papers time their models with TensorFlow Lite, so ``measure --runtime
litert`` needs a spec as a file LiteRT runs. The file is written the way TensorFlow's
converter writes one: a batch norm after a conv is folded into the conv's bias, and a
relu or relu6 after it is the conv's fused activation, so the runtime's kernels are the
ones a converted model gets. Weights are seeded (He-normal); counting the file gives the
spec's MACs and weights (biases: one per conv output channel, where the spec has BN).

``dtype``: ``fp32``; ``fp16`` (float16 weights, each widened by a ``DEQUANTIZE``, as the
converter's float16 option writes them); ``int8`` (full integer: int8 weights with one
scale per output channel, int32 biases, int8 activations, a ``QUANTIZE`` after the float
input and a ``DEQUANTIZE`` before each float output). The int8 scales are synthetic but
valid: the point is timing and size, not accuracy. Every primitive kind has one rule in
``RULES``; a kind without one is an error, never skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from macscalc.core.errors import MacscalcError
from macscalc.models.tflite.build import Assembler, Quant

if TYPE_CHECKING:
    from macscalc.lang.graph import Network, Node
    from macscalc.lang.layers import Shape

DTYPES = ("fp32", "fp16", "int8")
ACT_SCALE = 0.05  # int8 activations: ±6.4, the range of relu6
FIXED = {"LOGISTIC": (1 / 256, -128), "SOFTMAX": (1 / 256, -128), "TANH": (1 / 128, 0)}
SAME, VALID = 0, 1
FUSED = {"relu": 1, "relu6": 3}  # activations a conv, pool, add or FC carries as its own


def dims(s: Shape) -> tuple[int, int, int, int]:
    return (1, s.h, s.w, s.c)


class Writer:
    """The model being written: tensors with seeded data, and the quantization scheme."""

    def __init__(self, name: str, seed: int, dtype: str) -> None:
        import numpy as np

        self.np = np
        self.rng = np.random.default_rng(seed)
        self.a = Assembler(name)
        self.dtype = dtype
        self.int8 = dtype == "int8"

    # -- tensors ------------------------------------------------------------------------
    def act(self, name: str, shape: tuple[int, ...], code: str = "") -> int:
        """An activation tensor (int8 with a fixed scale in an int8 model)."""
        if not self.int8:
            return self.a.tensor(name, shape)
        scale, zero = FIXED.get(code, (ACT_SCALE, 0))
        return self.a.tensor(name, shape, "int8", quant=Quant((scale,), (zero,)))

    def ints(self, name: str, values: list[int], shape: tuple[int, ...] | None = None) -> int:
        np = self.np
        return self.a.tensor(name, shape or (len(values),), "int32",
                             np.asarray(values, dtype=np.int32).tobytes())

    def scalar(self, name: str, value: float, shape: tuple[int, ...] = ()) -> int:
        """A constant operand of an element-wise op (a scalar, or one value per channel)."""
        np = self.np
        n = 1
        for d in shape:
            n *= d
        if self.int8:
            q = Quant((max(abs(value), 1e-6) / 127,), (0,))
            data = np.full(n, 127 if value > 0 else -127 if value < 0 else 0, np.int8)
            return self.a.tensor(name, shape, "int8", data.tobytes(), q)
        return self.a.tensor(name, shape, "float32", np.full(n, value, np.float32).tobytes())

    def weight(self, name: str, shape: tuple[int, ...], fan_in: int, axis: int | None) -> int:
        """He-normal weights as the scheme stores them; ``axis``: the output channels, for
        per-channel int8 scales (None: one scale for the tensor)."""
        np = self.np
        w = self.rng.standard_normal(shape, dtype=np.float32) * np.float32((2.0 / fan_in) ** .5)
        if self.dtype == "fp16":
            half = self.a.tensor(f"{name}/fp16", shape, "float16", w.astype(np.float16).tobytes())
            out = self.a.tensor(name, shape)
            self.a.op("DEQUANTIZE", [half], [out])
            return out
        if not self.int8:
            return self.a.tensor(name, shape, "float32", w.tobytes())
        if axis is None:
            scales = np.array([np.abs(w).max() / 127], np.float32)
            q = np.round(w / scales[0])
        else:
            moved = np.moveaxis(w, axis, 0).reshape(shape[axis], -1)
            scales = np.maximum(np.abs(moved).max(axis=1) / 127, 1e-8).astype(np.float32)
            view = [1] * len(shape)
            view[axis] = shape[axis]
            q = np.round(w / scales.reshape(view))
        data = np.clip(q, -127, 127).astype(np.int8).tobytes()
        return self.a.tensor(name, shape, "int8", data,
                             Quant(tuple(map(float, scales)), (0,) * len(scales), axis or 0))

    def bias(self, name: str, n: int, weight: int) -> int:
        """Zero biases: float32, or int32 at input scale × weight scale (per channel)."""
        np = self.np
        if not self.int8:
            return self.a.tensor(name, (n,), "float32", np.zeros(n, np.float32).tobytes())
        w = self.a.tensors[weight].quant
        assert w is not None
        scales = tuple(ACT_SCALE * s for s in w.scales)  # one per weight scale
        return self.a.tensor(name, (n,), "int32", np.zeros(n, np.int32).tobytes(),
                             Quant(scales, (0,) * len(scales)))

    def op(self, code: str, ins: list[int], name: str, shape: tuple[int, ...],
           options: tuple[tuple[int, str, Any], ...] = ()) -> int:
        out = self.act(name, shape, code)
        self.a.op(code, ins, [out], options)
        return out


class Step:
    """What a rule is given: the node, its input tensors, and the activation fused into it
    (0: none) with the output's name and whether a bias stands in for a folded BN."""

    def __init__(self, node: Node, xs: list[int], fused: int, name: str, bias: bool) -> None:
        self.node, self.xs, self.fused, self.name, self.bias = node, xs, fused, name, bias


Rule = Callable[[Writer, Step], int]
RULES: dict[str, Rule] = {}
FOLDS = ("conv2d", "depthwise", "linear", "conv_transpose")  # take a following BN as bias
FUSES = (*FOLDS, "pool", "add")  # take a following relu/relu6 as fused activation


def rule(kind: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[kind] = fn
        return fn

    return register


def _padded(w: Writer, st: Step, k: tuple[int, int], d: tuple[int, int]) -> tuple[int, int]:
    """The input and TFLite padding of a window op: 'same' and 'valid' as they are, explicit
    pads (and PyTorch's ceil mode) as a ``PAD`` before a VALID window."""
    n, x = st.node, st.xs[0]
    layer = n.layer
    padding = layer.padding
    if padding == "same" or (padding == "valid" and not getattr(layer, "ceil", False)):
        return x, SAME if padding == "same" else VALID
    if padding == "valid":
        padding = (0, 0)
    src, out = n.in_shapes[0], n.out
    pads = []
    for size, o, kk, s, dd, p in zip((src.h, src.w), (out.h, out.w), k, layer.s, d, padding,
                                     strict=True):
        need = (o - 1) * s + dd * (kk - 1) + 1  # rows the VALID window reads
        pads.append((p, p + max(0, need - size - 2 * p)))
    if all(p == (0, 0) for p in pads):
        return x, VALID
    shape = (1, src.h + sum(pads[0]), src.w + sum(pads[1]), src.c)
    table = w.ints(f"{st.name}/paddings", [0, 0, *pads[0], *pads[1], 0, 0], (4, 2))
    return w.op("PAD", [x, table], f"{st.name}/pad", shape), VALID


def _window_options(st: Step, padding: int, s: tuple[int, int]) -> tuple[tuple[int, str, Any], ...]:
    return ((0, "b", padding), (1, "i", s[1]), (2, "i", s[0]))


def _bias(w: Writer, st: Step, n: int, weight: int) -> int:
    """The layer's bias, or the folded BN's shift; -1 (none) when it has neither."""
    return w.bias(f"{st.name}/bias", n, weight) if st.bias or st.node.layer.bias else -1


@rule("conv2d")
def _conv2d(w: Writer, st: Step) -> int:
    n = st.node
    layer, src = n.layer, n.in_shapes[0]
    kh, kw = layer.k
    per_group = src.c // layer.groups
    x, padding = _padded(w, st, layer.k, layer.d)
    wt = w.weight(f"{st.name}/weights", (layer.c, kh, kw, per_group), kh * kw * per_group, 0)
    opts = (*_window_options(st, padding, layer.s), (3, "b", st.fused), (4, "i", layer.d[1]),
            (5, "i", layer.d[0]))
    return w.op("CONV_2D", [x, wt, _bias(w, st, layer.c, wt)], st.name, dims(n.out), opts)


@rule("depthwise")
def _depthwise(w: Writer, st: Step) -> int:
    n = st.node
    layer = n.layer
    kh, kw = layer.k
    x, padding = _padded(w, st, layer.k, layer.d)
    wt = w.weight(f"{st.name}/weights", (1, kh, kw, n.out.c), kh * kw, 3)
    bias = w.bias(f"{st.name}/bias", n.out.c, wt)  # LiteRT's depthwise needs one
    opts = (*_window_options(st, padding, layer.s), (3, "i", layer.m), (4, "b", st.fused),
            (5, "i", layer.d[1]), (6, "i", layer.d[0]))
    return w.op("DEPTHWISE_CONV_2D", [x, wt, bias], st.name, dims(n.out), opts)


@rule("linear")
def _linear(w: Writer, st: Step) -> int:
    """FULLY_CONNECTED over the channels at every position (keep_num_dims: the output
    stays 1×h×w×c)."""
    n = st.node
    cin, cout = n.in_shapes[0].c, n.layer.c
    wt = w.weight(f"{st.name}/weights", (cout, cin), cin, None)
    return w.op("FULLY_CONNECTED", [st.xs[0], wt, _bias(w, st, cout, wt)], st.name, dims(n.out),
                ((0, "b", st.fused), (1, "b", 0), (2, "B", True)))


@rule("conv_transpose")
def _conv_transpose(w: Writer, st: Step) -> int:
    n = st.node
    layer, src, out = n.layer, n.in_shapes[0], n.out
    kh, kw = layer.k
    valid = tuple((a - 1) * s + k for a, s, k in zip((src.h, src.w), layer.s, layer.k,
                                                      strict=True))
    same = (src.h * layer.s[0], src.w * layer.s[1])
    if layer.groups != 1 or layer.d != (1, 1) or (out.h, out.w) not in (valid, same):
        raise MacscalcError(f"{n.name}: TFLite's TRANSPOSE_CONV has SAME or VALID padding "
                            "only, without groups or dilation")
    padding = VALID if (out.h, out.w) == valid else SAME
    wt = w.weight(f"{st.name}/weights", (layer.c, kh, kw, src.c), kh * kw * src.c, 0)
    shape = w.ints(f"{st.name}/output_shape", list(dims(out)))
    return w.op("TRANSPOSE_CONV", [shape, wt, st.xs[0], _bias(w, st, layer.c, wt)], st.name,
                dims(out),
                (*_window_options(st, padding, layer.s), (3, "b", st.fused)))


def _channels(w: Writer, st: Step, code: str, value: float) -> int:
    c = st.node.out.c
    return w.op(code, [st.xs[0], w.scalar(f"{st.name}/{code.lower()}", value, (c,))],
                f"{st.name}/{code.lower()}" if code == "MUL" else st.name, dims(st.node.out),
                ((0, "b", 0),))


@rule("batchnorm")
def _batchnorm(w: Writer, st: Step) -> int:
    """A batch norm no conv folds: its inference form, a per-channel multiply and add."""
    scaled = _channels(w, st, "MUL", 1.0)
    return _channels(w, Step(st.node, [scaled], 0, st.name, False), "ADD", 0.0)


def _unary(code: str, options: tuple[tuple[int, str, Any], ...] = ()) -> Rule:
    def emit(w: Writer, st: Step) -> int:
        return w.op(code, st.xs[:1], st.name, dims(st.node.out), options)
    return emit


def _swish(w: Writer, st: Step) -> int:
    sig = w.op("LOGISTIC", st.xs[:1], f"{st.name}/sigmoid", dims(st.node.out))
    return w.op("MUL", [st.xs[0], sig], st.name, dims(st.node.out), ((0, "b", 0),))


def _hsigmoid(w: Writer, st: Step) -> int:
    """relu6(x + 3) / 6, as Keras writes it (the converter keeps the three ops)."""
    shape = dims(st.node.out)
    y = w.op("ADD", [st.xs[0], w.scalar(f"{st.name}/three", 3.0)], f"{st.name}/plus3", shape,
             ((0, "b", 0),))
    y = w.op("RELU6", [y], f"{st.name}/relu6", shape)
    return w.op("MUL", [y, w.scalar(f"{st.name}/sixth", 1 / 6)], st.name, shape, ((0, "b", 0),))


ACTIVATIONS: dict[str, Rule] = {
    "relu": _unary("RELU"), "relu6": _unary("RELU6"), "hswish": _unary("HARD_SWISH"),
    "sigmoid": _unary("LOGISTIC"), "tanh": _unary("TANH"), "gelu": _unary("GELU"),
    "leaky_relu": _unary("LEAKY_RELU", ((0, "f", 0.01),)),
    "softmax": _unary("SOFTMAX", ((0, "f", 1.0),)), "swish": _swish, "hsigmoid": _hsigmoid,
}


@rule("act")
def _act(w: Writer, st: Step) -> int:
    fn = st.node.layer.fn
    if fn not in ACTIVATIONS:
        raise MacscalcError(f"{st.node.name}: no TFLite export rule for activation {fn!r}")
    return ACTIVATIONS[fn](w, st)


@rule("pool")
def _pool(w: Writer, st: Step) -> int:
    layer = st.node.layer
    x, padding = _padded(w, st, layer.k, (1, 1))
    code = "AVERAGE_POOL_2D" if layer.op == "avg" else "MAX_POOL_2D"
    return w.op(code, [x], st.name, dims(st.node.out),
                (*_window_options(st, padding, layer.s), (3, "i", layer.k[1]),
                 (4, "i", layer.k[0]), (5, "b", st.fused)))


def _reduce(w: Writer, st: Step, op: str) -> int:
    axes = w.ints(f"{st.name}/axes", [1, 2])
    return w.op("MEAN" if op == "avg" else "REDUCE_MAX", [st.xs[0], axes], st.name,
                dims(st.node.out), ((0, "B", True),))


@rule("global_pool")
def _global_pool(w: Writer, st: Step) -> int:
    return _reduce(w, st, st.node.layer.op)


@rule("adaptive_pool")
def _adaptive_pool(w: Writer, st: Step) -> int:
    """The identity at the same size, a global pool to 1×1, a plain pool when the output
    divides the input; other sizes have no TFLite operator."""
    n = st.node
    src, out, op = n.in_shapes[0], n.out, n.layer.op
    if (src.h, src.w) == (out.h, out.w):
        return st.xs[0]
    if (out.h, out.w) == (1, 1):
        return _reduce(w, st, op)
    if src.h % out.h or src.w % out.w:
        raise MacscalcError(f"{n.name}: an adaptive pool from {src.h}×{src.w} to "
                            f"{out.h}×{out.w} has no TFLite operator")
    k = (src.h // out.h, src.w // out.w)
    return w.op("AVERAGE_POOL_2D" if op == "avg" else "MAX_POOL_2D", st.xs, st.name, dims(out),
                (*_window_options(st, VALID, k), (3, "i", k[1]), (4, "i", k[0]), (5, "b", 0)))


@rule("add")
def _add(w: Writer, st: Step) -> int:
    y = st.xs[0]
    for i, x in enumerate(st.xs[1:], 1):
        last = i == len(st.xs) - 1
        y = w.op("ADD", [y, x], st.name if last else f"{st.name}/{i}", dims(st.node.out),
                 ((0, "b", st.fused if last else 0),))
    return y


@rule("mul")
def _mul(w: Writer, st: Step) -> int:
    return w.op("MUL", st.xs, st.name, dims(st.node.out), ((0, "b", 0),))


SCALAR = {"add": ("ADD", 0.5), "sub": ("SUB", 0.5), "mul": ("MUL", 0.5), "div": ("DIV", 2.0),
          "pow": ("POW", 2.0), "max": ("MAXIMUM", 0.0), "min": ("MINIMUM", 6.0)}


@rule("scalar")
def _scalar(w: Writer, st: Step) -> int:
    code, value = SCALAR[st.node.layer.op]
    opts = ((0, "b", 0),) if code in ("ADD", "SUB", "MUL", "DIV") else ()
    return w.op(code, [st.xs[0], w.scalar(f"{st.name}/const", value)], st.name,
                dims(st.node.out), opts)


@rule("flatten")
def _flatten(w: Writer, st: Step) -> int:
    shape = dims(st.node.out)
    return w.op("RESHAPE", [st.xs[0], w.ints(f"{st.name}/shape", list(shape))], st.name, shape)


@rule("dropout")
def _dropout(w: Writer, st: Step) -> int:
    return st.xs[0]  # identity at inference


@rule("concat")
def _concat(w: Writer, st: Step) -> int:
    return w.op("CONCATENATION", st.xs, st.name, dims(st.node.out), ((0, "i", 3), (1, "b", 0)))


@rule("slice")
def _slice(w: Writer, st: Step) -> int:
    n = st.node
    begin = w.ints(f"{st.name}/begin", [0, 0, 0, n.layer.start])
    size = w.ints(f"{st.name}/size", list(dims(n.out)))
    return w.op("SLICE", [st.xs[0], begin, size], st.name, dims(n.out))


@rule("shuffle")
def _shuffle(w: Writer, st: Step) -> int:
    """Channel shuffle as the converter writes it: RESHAPE to groups, TRANSPOSE, RESHAPE."""
    s, g = st.node.out, st.node.layer.groups
    split = (1, s.h, s.w, g, s.c // g)
    y = w.op("RESHAPE", [st.xs[0], w.ints(f"{st.name}/split", list(split))],
             f"{st.name}/split", split)
    y = w.op("TRANSPOSE", [y, w.ints(f"{st.name}/perm", [0, 1, 2, 4, 3])], f"{st.name}/swap",
             (1, s.h, s.w, s.c // g, g))
    return w.op("RESHAPE", [y, w.ints(f"{st.name}/shape", list(dims(s)))], st.name, dims(s))


@rule("layernorm")
def _layernorm(w: Writer, st: Step) -> int:
    """Over the channels at each position, as the converter writes Keras' LayerNormalization:
    mean, squared difference, mean, + ε, rsqrt, then (x − mean)·rsqrt·γ + β."""
    shape, c, name = dims(st.node.out), st.node.out.c, st.name
    x, axes = st.xs[0], w.ints(f"{name}/axes", [3])
    keep = ((0, "B", True),)
    mean = w.op("MEAN", [x, axes], f"{name}/mean", shape[:3] + (1,), keep)
    var = w.op("MEAN", [w.op("SQUARED_DIFFERENCE", [x, mean], f"{name}/sqdiff", shape), axes],
               f"{name}/var", shape[:3] + (1,), keep)
    eps = w.op("ADD", [var, w.scalar(f"{name}/eps", 1e-6)], f"{name}/eps", shape[:3] + (1,),
               ((0, "b", 0),))
    norm = w.op("MUL", [w.op("SUB", [x, mean], f"{name}/centred", shape, ((0, "b", 0),)),
                        w.op("RSQRT", [eps], f"{name}/rsqrt", shape[:3] + (1,))],
                f"{name}/normed", shape, ((0, "b", 0),))
    scaled = w.op("MUL", [norm, w.scalar(f"{name}/gamma", 1.0, (c,))], f"{name}/gamma", shape,
                  ((0, "b", 0),))
    return w.op("ADD", [scaled, w.scalar(f"{name}/beta", 0.0, (c,))], name, shape,
                ((0, "b", 0),))


@rule("layer_scale")
def _layer_scale(w: Writer, st: Step) -> int:
    return _channels(w, st, "MUL", 1e-6)


@rule("upsample")
def _upsample(w: Writer, st: Step) -> int:
    s = st.node.out
    code = "RESIZE_BILINEAR" if st.node.layer.mode == "bilinear" else "RESIZE_NEAREST_NEIGHBOR"
    return w.op(code, [st.xs[0], w.ints(f"{st.name}/size", [s.h, s.w])], st.name, dims(s))


@rule("shiftmax")
def _shiftmax(w: Writer, st: Step) -> int:
    """Dynamic Shift-Max with its real cost, as the ONNX export writes it: channels rotated
    by j·c/J (GATHER), each times its slice of coefficients, summed over J, maximum over K."""
    n = st.node
    x, coeffs = st.xs
    c, j_n, k_n, shape = n.out.c, n.layer.j, n.layer.k, dims(n.out)
    shifted = [x]
    for j in range(1, j_n):
        order = w.ints(f"{st.name}/order{j}", [(i + j * c // j_n) % c for i in range(c)])
        shifted.append(w.op("GATHER", [x, order], f"{st.name}/shift{j}", shape,
                            ((0, "i", 3), (1, "i", 0))))
    branches = []
    for k in range(k_n):
        total = None
        for j, xj in enumerate(shifted):
            at = (j * k_n + k) * c
            a = w.op("SLICE", [coeffs, w.ints(f"{st.name}/from{j}_{k}", [0, 0, 0, at]),
                               w.ints(f"{st.name}/size{j}_{k}", [1, 1, 1, c])],
                     f"{st.name}/a{j}_{k}", (1, 1, 1, c))
            term = w.op("MUL", [xj, a], f"{st.name}/ax{j}_{k}", shape, ((0, "b", 0),))
            total = term if total is None else w.op("ADD", [total, term],
                                                    f"{st.name}/sum{j}_{k}", shape, ((0, "b", 0),))
        branches.append(total)
    y = branches[0]
    for k, b in enumerate(branches[1:], 1):
        y = w.op("MAXIMUM", [y, b], st.name if k == k_n - 1 else f"{st.name}/max{k}", shape)
    return y


def _plan(network: Network) -> tuple[dict[str, tuple[int, str, bool]], set[str]]:
    """Which nodes carry a folded BN and a fused activation, as the converter folds them:
    node → (fused activation code, name of the last folded node, bias from BN); the
    folded nodes."""
    readers: dict[str, list[Node]] = {}
    for n in network.nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n)

    def only(n: Node, kind: str) -> Node | None:
        r = readers.get(n.name, [])
        return r[0] if len(r) == 1 and r[0].layer.kind == kind and len(r[0].inputs) == 1 \
            else None

    plan: dict[str, tuple[int, str, bool]] = {}
    folded: set[str] = set()
    for n in network.nodes:
        if n.layer.kind not in FUSES or n.name in folded:
            continue
        last, bias = n, False
        bn = only(n, "batchnorm") if n.layer.kind in FOLDS else None
        if bn is not None:
            last, bias = bn, True
            folded.add(bn.name)
        act = only(last, "act")
        fused = FUSED.get(act.layer.fn, 0) if act is not None else 0
        if fused:
            folded.add(act.name)
            last = act
        plan[n.name] = (fused, last.name, bias)
    return plan, folded


def export(network: Network, seed: int = 0, dtype: str = "fp32") -> bytes:
    """The network as ``.tflite`` bytes with seeded weights (same seed, same bytes)."""
    if dtype not in DTYPES:
        raise MacscalcError(f"TFLite export writes {', '.join(DTYPES)}, not {dtype!r}")
    unknown = sorted({n.layer.kind for n in network.nodes} - set(RULES))
    if unknown:
        raise MacscalcError(f"no TFLite export rule for layer kind(s): {', '.join(unknown)}",
                            network.spec.file)
    w = Writer(network.spec.name, seed, dtype)
    x = w.a.tensor("input", dims(network.input))
    tensors = {"input": x}
    if w.int8:
        tensors["input"] = w.op("QUANTIZE", [x], "input/int8", dims(network.input))
    plan, folded = _plan(network)
    consumed: set[str] = set()
    for n in network.nodes:
        consumed.update(n.inputs)
        if n.name in folded:
            continue
        fused, last, bias = plan.get(n.name, (0, n.name, False))
        y = RULES[n.layer.kind](w, Step(n, [tensors[i] for i in n.inputs], fused, n.name, bias))
        tensors[n.name] = tensors[last] = y
    outputs = []
    for n in network.nodes:
        if n.name in consumed:
            continue
        y = tensors[n.name]
        if w.int8:
            f = w.a.tensor(f"{n.name}/float", dims(n.out))
            w.a.op("DEQUANTIZE", [y], [f])
            y = f
        outputs.append(y)
    return w.a.bytes([x], outputs)

"""A placed network as a runnable ONNX graph (opset 17, float32, NCHW, batch 1).

Why: a spec's real latency is found by running it (``macscalc measure``), and a runtime
needs a graph. Every primitive kind has one rule in ``RULES`` (``writer``): a small
function that emits the ONNX nodes computing that primitive from its inputs, with seeded
random weights of exactly the sizes macscalc counts. A kind without a rule is an error,
never skipped. macscalc's h×w×c image is ONNX's [1, c, h, w] and its g × n × c tokens
are [1, g, n, c], channels last (``writer.dims``), the layouts macscalc's ONNX reader
reads back; TensorFlow's 'same' padding becomes explicit (possibly asymmetric) pads. The
image kinds' rules are here, the token and attention kinds' in ``export_tokens``.

Adding a kind: one ``@rule("kind")`` function here (or in ``export_tokens``) and a line
in the export tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from macscalc.core.errors import MacscalcError
from macscalc.core.extras import require
from macscalc.core.limits import MAX_EXPORT_PARAMS
from macscalc.core.units import fmt_int
from macscalc.lang.layers import PARAM_PARTS
from macscalc.lang.tokens import Tokens
from macscalc.models.onnx import export_tokens  # noqa: F401 - registers the token kinds' rules
from macscalc.models.onnx.writer import RULES, Graph, channel_axis, dims, rule

if TYPE_CHECKING:
    import onnx

    from macscalc.lang.graph import Network, Node
    from macscalc.lang.layers import Shape

OPSET = 17
IR_VERSION = 8  # the IR of opset 17: readable by every onnxruntime ≥ 1.13


def per_channel(g: Graph, name: str, s: Shape, value: float) -> str:
    """A constant of one ``value`` per channel, shaped to broadcast over ``s``'s layout."""
    shape = [1, 1, 1, 1]
    shape[channel_axis(s)] = s.c
    return g.const(name, g.np.full(shape, value, dtype=g.np.float32))


def _channels_last(g: Graph, n: Node, x: str, body: Callable[[str, str], str]) -> str:
    """``body(input, output name)`` on the channels-last form of ``x``: tokens as they
    are, an image through NHWC and back (per-position ops: linear, layer norm)."""
    if isinstance(n.in_shapes[0], Tokens):
        return body(x, n.name)
    y = body(g.op("Transpose", [x], f"{n.name}/nhwc", perm=[0, 2, 3, 1]), f"{n.name}/last")
    return g.op("Transpose", [y], n.name, perm=[0, 3, 1, 2])


def _channels_first(g: Graph, n: Node, x: str, body: Callable[[str, str], str]) -> str:
    """``body`` on the channels-first form of ``x`` (ONNX's BatchNormalization reads
    axis 1): an image as it is, tokens through [1, c, g, n] and back."""
    if not isinstance(n.in_shapes[0], Tokens):
        return body(x, n.name)
    y = body(g.op("Transpose", [x], f"{n.name}/nchw", perm=[0, 3, 1, 2]), f"{n.name}/first")
    return g.op("Transpose", [y], n.name, perm=[0, 2, 3, 1])


def _pads(x: Shape, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int],
          padding: str | tuple[int, int]) -> list[int]:
    """ONNX pads [top, left, bottom, right]; 'same' as TensorFlow: output ⌈n/s⌉, the odd
    pixel at the end."""
    begin, end = [], []
    per_axis = (padding, padding) if isinstance(padding, str) else padding
    for n, kk, ss, dd, p in zip((x.h, x.w), k, s, d, per_axis, strict=True):
        if p == "same":
            total = max((-(-n // ss) - 1) * ss + dd * (kk - 1) + 1 - n, 0)
            begin.append(total // 2)
            end.append(total - total // 2)
        else:
            pad = 0 if p == "valid" else int(p)
            begin.append(pad)
            end.append(pad)
    return begin + end


def _conv(g: Graph, n: Node, xs: list[str], cout: int, groups: int) -> str:
    layer, x = n.layer, n.in_shapes[0]
    kh, kw = layer.k
    w = g.weight(f"{n.name}.weight", (cout, x.c // groups, kh, kw), x.c // groups * kh * kw)
    inputs = [xs[0], w] + ([g.small(f"{n.name}.bias", cout)] if layer.bias else [])
    return g.op("Conv", inputs, n.name, kernel_shape=[kh, kw], strides=list(layer.s),
                dilations=list(layer.d), pads=_pads(x, layer.k, layer.s, layer.d, layer.padding),
                group=groups)


@rule("conv2d")
def _conv2d(g: Graph, n: Node, xs: list[str]) -> str:
    return _conv(g, n, xs, n.layer.c, n.layer.groups)


@rule("depthwise")
def _depthwise(g: Graph, n: Node, xs: list[str]) -> str:
    return _conv(g, n, xs, n.out.c, n.in_shapes[0].c)


@rule("linear")
def _linear(g: Graph, n: Node, xs: list[str]) -> str:
    """Gemm on a 1×1 image (as exporters write a classifier); otherwise a MatMul over the
    channels of every position or token (an image through NHWC)."""
    x, cout = n.in_shapes[0], n.layer.c
    bias = [g.small(f"{n.name}.bias", cout)] if n.layer.bias else []
    if (x.h, x.w) == (1, 1) and not isinstance(x, Tokens):
        w = g.weight(f"{n.name}.weight", (cout, x.c), x.c)
        flat = g.op("Flatten", [xs[0]], f"{n.name}/flatten", axis=1)
        y = g.op("Gemm", [flat, w, *bias], f"{n.name}/gemm", transB=1)
        return g.op("Reshape", [y, g.ints(f"{n.name}.shape", [1, cout, 1, 1])], n.name)
    w = g.weight(f"{n.name}.weight", (x.c, cout), x.c)

    def body(y: str, out: str) -> str:
        if not bias:
            return g.op("MatMul", [y, w], out)
        return g.op("Add", [g.op("MatMul", [y, w], f"{n.name}/matmul"), *bias], out)

    return _channels_last(g, n, xs[0], body)


@rule("batchnorm")
def _batchnorm(g: Graph, n: Node, xs: list[str]) -> str:
    c = n.out.c
    stats = [g.small(f"{n.name}.{p}", c, centre)
             for p, centre in (("scale", 1.0), ("bias", 0.0), ("mean", 0.0), ("var", 1.0))]
    return _channels_first(g, n, xs[0], lambda y, out: g.op(
        "BatchNormalization", [y, *stats], out, epsilon=1e-3))


def _hsigmoid(g: Graph, x: str, out: str) -> str:
    return g.op("HardSigmoid", [x], out, alpha=1 / 6, beta=0.5)  # relu6(x + 3) / 6


def _swish(g: Graph, x: str, out: str) -> str:
    return g.op("Mul", [x, g.op("Sigmoid", [x], f"{out}/sigmoid")], out)


def _gelu(g: Graph, x: str, out: str) -> str:
    """x·(1 + erf(x/√2))/2, the exact GELU (opset 17 has no Gelu op)."""
    erf = g.op("Erf", [g.op("Div", [x, g.scalar(f"{out}.sqrt2", 2 ** 0.5)], f"{out}/scaled")],
               f"{out}/erf")
    half = g.op("Mul", [x, g.scalar(f"{out}.half", 0.5)], f"{out}/half")
    return g.op("Mul", [half, g.op("Add", [erf, g.scalar(f"{out}.one", 1.0)], f"{out}/plus1")],
                out)


def _mish(g: Graph, x: str, out: str) -> str:
    soft = g.op("Softplus", [x], f"{out}/softplus")
    return g.op("Mul", [x, g.op("Tanh", [soft], f"{out}/tanh")], out)


ACTIVATIONS: dict[str, Callable[[Graph, str, str], str]] = {
    "relu": lambda g, x, out: g.op("Relu", [x], out),
    "gelu": _gelu,
    "tanh": lambda g, x, out: g.op("Tanh", [x], out),
    "leaky_relu": lambda g, x, out: g.op("LeakyRelu", [x], out, alpha=0.01),
    "mish": _mish,
    "relu6": lambda g, x, out: g.op("Clip", [x, g.scalar(f"{out}.min", 0.0),
                                             g.scalar(f"{out}.max", 6.0)], out),
    "hswish": lambda g, x, out: g.op("HardSwish", [x], out),
    "hsigmoid": _hsigmoid,
    "sigmoid": lambda g, x, out: g.op("Sigmoid", [x], out),
    "swish": _swish,
}


@rule("act")
def _act(g: Graph, n: Node, xs: list[str]) -> str:
    fn = n.layer.fn
    if fn == "softmax":  # over the channels: axis 1 of an image, the last axis of tokens
        return g.op("Softmax", xs, n.name, axis=channel_axis(n.out))
    if fn not in ACTIVATIONS:
        raise MacscalcError(f"{n.name}: no ONNX export rule for activation {fn!r}")
    return ACTIVATIONS[fn](g, xs[0], n.name)


@rule("pool")
def _pool(g: Graph, n: Node, xs: list[str]) -> str:
    layer = n.layer
    pads = _pads(n.in_shapes[0], layer.k, layer.s, (1, 1), layer.padding)
    attrs: dict[str, Any] = {"kernel_shape": list(layer.k), "strides": list(layer.s),
                             "pads": pads, "ceil_mode": int(layer.ceil)}
    if layer.op == "avg":  # TensorFlow averages over the real pixels only
        return g.op("AveragePool", xs, n.name, count_include_pad=0, **attrs)
    return g.op("MaxPool", xs, n.name, **attrs)


@rule("global_pool")
def _global_pool(g: Graph, n: Node, xs: list[str]) -> str:
    """Over the positions of an image; over the sequences and tokens of tokens (LeViT's
    mean of its tokens), to a 1×1 image."""
    avg = n.layer.op == "avg"
    if not isinstance(n.in_shapes[0], Tokens):
        return g.op("GlobalAveragePool" if avg else "GlobalMaxPool", xs, n.name)
    y = g.op("ReduceMean" if avg else "ReduceMax", xs, f"{n.name}/reduce", axes=[1, 2],
             keepdims=1)
    return g.op("Reshape", [y, g.ints(f"{n.name}.shape", dims(n.out))], n.name)


@rule("add")
def _add(g: Graph, n: Node, xs: list[str]) -> str:
    return g.op("Add" if len(xs) == 2 else "Sum", xs, n.name)


@rule("mul")
def _mul(g: Graph, n: Node, xs: list[str]) -> str:
    return g.op("Mul", xs, n.name)  # a 1×1×C gate broadcasts in either layout


@rule("flatten")
def _flatten(g: Graph, n: Node, xs: list[str]) -> str:
    return g.op("Reshape", [xs[0], g.ints(f"{n.name}.shape", [1, n.out.c, 1, 1])], n.name)


@rule("dropout")
def _dropout(g: Graph, n: Node, xs: list[str]) -> str:
    return xs[0]  # identity at inference


@rule("shuffle")
def _shuffle(g: Graph, n: Node, xs: list[str]) -> str:
    x, groups = n.out, n.layer.groups
    split = g.ints(f"{n.name}.split", [1, groups, x.c // groups, x.h, x.w])
    y = g.op("Reshape", [xs[0], split], f"{n.name}/split")
    y = g.op("Transpose", [y], f"{n.name}/swap", perm=[0, 2, 1, 3, 4])
    return g.op("Reshape", [y, g.ints(f"{n.name}.shape", [1, x.c, x.h, x.w])], n.name)


@rule("shiftmax")
def _shiftmax(g: Graph, n: Node, xs: list[str]) -> str:
    """Dynamic Shift-Max with its real cost: out = max over K of Σ_j a_jk·x_j, where x_j is
    x with its channels rotated by j·c/J and a_jk is the j,k-th slice of c coefficients.
    Simplified: the official rotation is within channel groups and its coefficients are
    rescaled ((a − 0.5)·λ + init: 3 ops per coefficient, omitted); the shapes, the J·K
    multiply-adds per element and the K−1 maxima are as counted."""
    x, coeffs = xs
    c, j_n, k_n = n.out.c, n.layer.j, n.layer.k
    shifted = [x]
    for j in range(1, j_n):
        order = [(i + j * c // j_n) % c for i in range(c)]
        shifted.append(g.op("Gather", [x, g.ints(f"{n.name}.order{j}", order)],
                            f"{n.name}/shift{j}", axis=1))
    axis = g.ints(f"{n.name}.axis", [1])
    branches = []
    for k in range(k_n):
        total = None
        for j, xj in enumerate(shifted):
            at = (j * k_n + k) * c
            bounds = [g.ints(f"{n.name}.{end}{j}_{k}", [v]) for end, v in (("from", at),
                                                                            ("to", at + c))]
            a = g.op("Slice", [coeffs, *bounds, axis], f"{n.name}/a{j}_{k}")
            term = g.op("Mul", [xj, a], f"{n.name}/ax{j}_{k}")
            total = term if total is None else g.op("Add", [total, term], f"{n.name}/sum{j}_{k}")
        branches.append(total)
    if len(branches) == 1:
        return g.op("Identity", branches, n.name)
    return g.op("Max", branches, n.name)


@rule("concat")
def _concat(g: Graph, n: Node, xs: list[str]) -> str:
    return g.op("Concat", xs, n.name, axis=channel_axis(n.out))


@rule("slice")
def _slice(g: Graph, n: Node, xs: list[str]) -> str:
    start = n.layer.start
    bounds = [g.ints(f"{n.name}.{end}", [v]) for end, v in (("start", start),
                                                            ("end", start + n.out.c))]
    return g.op("Slice", [xs[0], *bounds, g.ints(f"{n.name}.axis", [channel_axis(n.out)])],
                n.name)


def _windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive-pool windows along one axis."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


@rule("adaptive_pool")
def _adaptive_pool(g: Graph, n: Node, xs: list[str]) -> str:
    """ONNX has no adaptive pool: the identity when sizes match, a global pool to 1×1, a
    plain pool when the output divides the input, else one reduction per window along
    each axis, concatenated (exact, and free, as counted)."""
    x, out, op = n.in_shapes[0], n.out, n.layer.op
    if (x.h, x.w) == (out.h, out.w):
        return g.op("Identity", xs, n.name)
    if (out.h, out.w) == (1, 1):
        return g.op("GlobalAveragePool" if op == "avg" else "GlobalMaxPool", xs, n.name)
    if x.h % out.h == 0 and x.w % out.w == 0:
        k = [x.h // out.h, x.w // out.w]
        return g.op("AveragePool" if op == "avg" else "MaxPool", xs, n.name, kernel_shape=k,
                    strides=k)
    reduce = "ReduceMean" if op == "avg" else "ReduceMax"
    y = xs[0]
    for axis, size, count in ((2, x.h, out.h), (3, x.w, out.w)):
        parts = []
        for i, (a, b) in enumerate(_windows(size, count)):
            bounds = [g.ints(f"{n.name}.a{axis}_{i}_{e}", [v]) for e, v in (("s", a), ("e", b))]
            part = g.op("Slice", [y, *bounds, g.ints(f"{n.name}.axis{axis}_{i}", [axis])],
                        f"{n.name}/slice{axis}_{i}")
            parts.append(g.op(reduce, [part], f"{n.name}/{reduce}{axis}_{i}", axes=[axis],
                              keepdims=1))
        y = g.op("Concat", parts, n.name if axis == 3 else f"{n.name}/rows", axis=axis)
    return y


@rule("layernorm")
def _layernorm(g: Graph, n: Node, xs: list[str]) -> str:
    """Over the channels at each position (of an image: as ConvNeXt's LayerNorm2d)."""
    c = n.out.c
    scale, bias = g.small(f"{n.name}.scale", c, 1.0), g.small(f"{n.name}.bias", c)
    return _channels_last(g, n, xs[0], lambda y, out: g.op(
        "LayerNormalization", [y, scale, bias], out, axis=-1, epsilon=1e-6))


@rule("layer_scale")
def _layer_scale(g: Graph, n: Node, xs: list[str]) -> str:
    return g.op("Mul", [xs[0], per_channel(g, f"{n.name}.gamma", n.out, 1e-6)], n.name)


@rule("space_to_depth")
def _space_to_depth(g: Graph, n: Node, xs: list[str]) -> str:
    """Darknet's reorg floors the sides; ONNX's SpaceToDepth needs them whole, so a
    remainder is sliced off first."""
    x, b = n.in_shapes[0], n.layer.block
    if x.h % b or x.w % b:
        ends = g.ints(f"{n.name}.ends", [x.h - x.h % b, x.w - x.w % b])
        xs = [g.op("Slice", [xs[0], g.ints(f"{n.name}.starts", [0, 0]), ends,
                             g.ints(f"{n.name}.axes", [2, 3])], f"{n.name}/crop")]
    return g.op("SpaceToDepth", xs, n.name, blocksize=b)


@rule("l2norm")
def _l2norm(g: Graph, n: Node, xs: list[str]) -> str:
    """SSD's L2Norm: LpNormalization over the channels, then the per-channel scale (20)."""
    y = g.op("LpNormalization", xs, f"{n.name}/norm", axis=1, p=2)
    return g.op("Mul", [y, per_channel(g, f"{n.name}.gamma", n.out, 20.0)], n.name)


@rule("upsample")
def _upsample(g: Graph, n: Node, xs: list[str]) -> str:
    sizes = g.ints(f"{n.name}.sizes", [1, n.out.c, n.out.h, n.out.w])
    mode = "linear" if n.layer.mode == "bilinear" else "nearest"
    return g.op("Resize", [xs[0], "", "", sizes], n.name, mode=mode)


@rule("conv_transpose")
def _conv_transpose(g: Graph, n: Node, xs: list[str]) -> str:
    layer, x = n.layer, n.in_shapes[0]
    kh, kw = layer.k
    cout, groups = layer.c, layer.groups
    w = g.weight(f"{n.name}.weight", (x.c, cout // groups, kh, kw), x.c // groups * kh * kw)
    inputs = [xs[0], w] + ([g.small(f"{n.name}.bias", cout)] if layer.bias else [])
    return g.op("ConvTranspose", inputs, n.name, kernel_shape=[kh, kw], strides=list(layer.s),
                dilations=list(layer.d), pads=[*layer.padding, *layer.padding],
                output_padding=list(layer.output_padding), group=groups)


def export(network: Network, seed: int = 0) -> onnx.ModelProto:
    """The network as an ONNX model with seeded weights (same seed, same bytes)."""
    onnx = require("onnx", "ONNX export")
    from onnx import TensorProto, helper

    unknown = sorted({n.layer.kind for n in network.nodes} - set(RULES))
    if unknown:
        raise MacscalcError(f"no ONNX export rule for layer kind(s): {', '.join(unknown)}",
                            network.spec.file)
    params = sum(n.layer.params(n.in_shapes).total(PARAM_PARTS) for n in network.nodes)
    if params > MAX_EXPORT_PARAMS:
        raise MacscalcError(f"{fmt_int(params)} parameters are more than an exported model "
                            f"holds ({fmt_int(MAX_EXPORT_PARAMS)}): they are drawn and "
                            "written before anything runs", network.spec.file)
    g = Graph(seed)
    tensors = {"input": "input"}
    consumed: set[str] = set()
    for n in network.nodes:
        tensors[n.name] = RULES[n.layer.kind](g, n, [tensors[i] for i in n.inputs])
        consumed.update(n.inputs)
    outputs = [n for n in network.nodes if n.name not in consumed]
    s = network.settings
    graph = helper.make_graph(
        g.nodes, network.spec.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims(network.input))],
        [helper.make_tensor_value_info(tensors[n.name], TensorProto.FLOAT, dims(n.out))
         for n in outputs],
        g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="macscalc", doc_string=f"{network.spec.name}, α {s.alpha}, "
        f"{s.size[0]}×{s.size[1]}, {s.classes} classes, seeded weights (seed {seed})")
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> None:
    """Write the model whole or not at all."""
    from macscalc.core.files import write_atomic

    write_atomic(path, model.SerializeToString())


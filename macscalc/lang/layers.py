"""Primitive layer kinds: the layer algebra every count is built from.

A primitive knows, from its input shapes, its output shape, its parameters (split so
each published convention can be named), its multiply-accumulates and the extra
element-wise operations that are counted only under a switch. Composite blocks
(``blocks.py``) expand to these; counting never sees anything else.

Adding a kind: one ``@primitive`` class here (it is then usable as a spec row)
and one test in ``tests/test_layers.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from macscalc.core.errors import ShapeError
from macscalc.lang.schema import (
    ACT_ROW,
    BOOL,
    CHANNELS,
    CHOICE,
    NAME,
    NONNEG_INT,
    PADDING,
    PAIR,
    PAIR_NONNEG,
    POOL_OP,
    POS_INT,
    PROB,
    RESIZE_MODE,
    ArgType,
    Kind,
    arg,
    registry,
)

# Extra (non-MAC) work is counted in elementary operations: one add, multiply,
# compare, divide or exp each counts 1. These are the per-output-element costs. The
# one exception is ``shiftmax``, counted in multiply-adds (2 FLOPs each), because the
# MicroNet paper counts Dynamic Shift-Max's fusion that way.
ACT_OPS = {
    "relu": 1,  # max(x, 0)
    "relu6": 2,  # min(max(x, 0), 6)
    "hsigmoid": 4,  # relu6(x + 3) / 6: add, max, min, multiply
    "hswish": 5,  # x · hsigmoid(x)
    "sigmoid": 4,  # 1 / (1 + exp(-x)): negate, exp, add, divide
    "swish": 5,  # x · sigmoid(x)
    "gelu": 5,  # x · (1 + erf(x / √2)) / 2: divide, erf, add, multiply, halve
    "tanh": 5,  # (e^x − e^−x) / (e^x + e^−x): two exps, subtract, add, divide
    "leaky_relu": 2,  # compare, multiply
    "mish": 9,  # x · tanh(softplus(x)): exp, add, log, tanh (5), multiply
    "softmax": 3,  # exp(x) / Σ exp: exp, add (into the sum), divide
}
BN_OPS = 2  # inference BN folded to y = a·x + b: one multiply, one add
LN_OPS = 7  # layer norm: mean (add), centre, square, sum, normalize, γ, β
BILINEAR_OPS = 7  # bilinear resize: 4 multiplies and 3 adds per output element

OP_CATEGORIES = ("bn", "act", "pool", "add", "mul", "shiftmax")
OP_FLOPS = {"shiftmax": 2}  # FLOPs per counted op; 1 for every other category


class Shape(NamedTuple):
    """An activation tensor, height × width × channels (batch 1)."""

    h: int
    w: int
    c: int

    @property
    def numel(self) -> int:
        return self.h * self.w * self.c

    def __str__(self) -> str:
        return f"{self.h}×{self.w}×{self.c}"


class Params(NamedTuple):
    """Parameter counts by part, so every published convention can be reproduced."""

    weights: int = 0
    biases: int = 0
    bn_scale: int = 0  # γ
    bn_shift: int = 0  # β
    bn_stats: int = 0  # moving mean and variance
    ln_scale: int = 0  # layer norm γ
    ln_shift: int = 0  # layer norm β
    layer_scale: int = 0  # per-channel layer-scale γ (ConvNeXt)
    tables: int = 0  # learnable tables: class tokens, positional embeddings, attention biases

    def __add__(self, other: tuple) -> Params:  # type: ignore[override]
        return Params(*(a + b for a, b in zip(self, other, strict=True)))

    def total(self, parts: Sequence[str]) -> int:
        return sum(getattr(self, p) for p in parts)


PARAM_PARTS = Params._fields


Formula = tuple[str, str]  # ("kh·kw·cin·cout", "3·3·32·64")


def _product(*factors: tuple[str, int]) -> Formula:
    return ("·".join(f for f, _ in factors), "·".join(str(v) for _, v in factors))


class Layer(Kind):
    """Base of every primitive. Defaults: one input, no parameters, no cost."""

    arity: ClassVar[int | None] = 1  # number of inputs; None: two or more

    def resolve(self, ins: Sequence[Shape]) -> Layer:
        """This layer with arguments that depend on its input made concrete (a group width
        becomes a group count); the builder places what this returns."""
        return self

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params()

    def macs(self, ins: Sequence[Shape], out: Shape) -> int:
        return 0

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        """Extra operations by category (``OP_CATEGORIES``), counted only when switched on."""
        return {}

    def is_identity(self) -> bool:
        """True for a row PyTorch runs as the identity at inference (``act: {fn: none}``,
        ``drop_path``): the builder places nothing and its name stands for its input."""
        return False

    def label(self, ins: Sequence[Shape]) -> str:
        """The group this layer falls in for the per-kind summary."""
        return self.kind

    def detail(self) -> str:
        """Kernel, stride and groups, for the per-layer table."""
        return ""

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        """How each cost is computed: counter → (symbols, the same with numbers)."""
        return {}


KINDS: dict[str, type[Layer]] = {}
primitive = registry(KINDS)  # class decorator: a primitive, usable as a spec row


def _spatial(n: int, k: int, s: int, d: int, pad: str | int, ceil: bool = False) -> int:
    """Output length of one spatial axis; TF 'same' is ceil(n / s). With ``ceil`` (PyTorch
    ``ceil_mode``) a last partial window counts if it starts inside the input or the left
    padding."""
    span = d * (k - 1) + 1
    if pad == "same":
        return -(-n // s)
    p = 0 if pad == "valid" else pad
    total = n + 2 * p
    if total < span:
        return 0
    if not ceil:
        return (total - span) // s + 1
    out = -(-(total - span) // s) + 1
    return out - 1 if (out - 1) * s >= n + p else out


def _window(
    n_h: int,
    n_w: int,
    k: tuple[int, int],
    s: tuple[int, int],
    d: tuple[int, int],
    padding: str | tuple[int, int],
    ceil: bool = False,
) -> tuple[int, int]:
    pads = (padding, padding) if isinstance(padding, str) else padding
    h = _spatial(n_h, k[0], s[0], d[0], pads[0], ceil)
    w = _spatial(n_w, k[1], s[1], d[1], pads[1], ceil)
    if h <= 0 or w <= 0:
        rate = "" if d == (1, 1) else (
            f" and dilation {d[0]}×{d[1]} (it spans {d[0] * (k[0] - 1) + 1}×"
            f"{d[1] * (k[1] - 1) + 1})")
        raise ShapeError(
            f"a {k[0]}×{k[1]} window with stride {s[0]}×{s[1]}{rate} and padding "
            f"{padding!r} collapses a {n_h}×{n_w} input to {max(h, 0)}×{max(w, 0)}"
        )
    return h, w


def torch_padding(k: tuple[int, int], d: tuple[int, int]) -> tuple[int, int]:
    """``padding: torch``: (k−1)//2·d per axis, torchvision's rule, which keeps the size of
    an odd kernel at stride 1 (and gives ⌈n/s⌉ at stride s)."""
    return ((k[0] - 1) // 2 * d[0], (k[1] - 1) // 2 * d[1])


def _kernel_text(k: tuple[int, int], s: tuple[int, int], groups: int = 1,
                 d: tuple[int, int] = (1, 1)) -> str:
    text = f"{k[0]}×{k[1]}/{s[0]}" if s[0] == s[1] else f"{k[0]}×{k[1]}/{s[0]},{s[1]}"
    rate = "" if d == (1, 1) else f" d{d[0]}" if d[0] == d[1] else f" d{d[0]},{d[1]}"
    return text + rate + (f" g{groups}" if groups > 1 else "")


class ConvArgs:
    """Arguments of a convolution, shared by the primitive and the ``conv``/``pw`` rows."""

    c = arg(CHANNELS, width=True, doc="output channels")
    k = arg(PAIR, (1, 1), doc="kernel size")
    s = arg(PAIR, (1, 1), doc="stride")
    padding = arg(PADDING, "same", inherit=True, doc="padding")
    d = arg(PAIR, (1, 1), doc="dilation")
    groups = arg(POS_INT, 1, doc="groups")
    group_width = arg(POS_INT, None, doc="input channels per group (instead of groups)")
    bias = arg(BOOL, False, inherit=True, doc="with a bias")


@primitive
class Conv2d(ConvArgs, Layer):
    """k×k convolution: MACs = kh·kw·(cin/groups)·cout·hout·wout."""

    kind: ClassVar[str] = "conv2d"

    def check(self) -> None:
        if self.group_width is not None and self.groups != 1:
            raise ValueError("give groups or group_width, not both")

    def resolve(self, ins: Sequence[Shape]) -> Layer:
        layer = self
        if self.padding == "torch":
            layer = layer.replace(padding=torch_padding(self.k, self.d))
        if self.group_width is None:
            return layer
        cin = ins[0].c
        if cin % self.group_width:
            raise ShapeError(f"group_width={self.group_width} must divide the {cin} input "
                             "channels")
        return layer.replace(groups=cin // self.group_width, group_width=None)

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        cin = ins[0].c
        if self.groups < 1 or cin % self.groups or self.c % self.groups:
            raise ShapeError(
                f"groups={self.groups} must divide the input ({cin}) and output ({self.c}) channels"
            )
        h, w = _window(ins[0].h, ins[0].w, self.k, self.s, self.d, self.padding)
        return Shape(h, w, self.c)

    def _weights(self, cin: int) -> int:
        return self.k[0] * self.k[1] * (cin // self.groups) * self.c

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(weights=self._weights(ins[0].c), biases=self.c if self.bias else 0)

    def macs(self, ins: Sequence[Shape], out: Shape) -> int:
        return self._weights(ins[0].c) * out.h * out.w

    def label(self, ins: Sequence[Shape]) -> str:
        kk = f"{self.k[0]}×{self.k[1]}"
        if self.groups == 1:
            return f"conv {kk}"
        return f"dw {kk}" if self.groups == ins[0].c == self.c else f"group conv {kk}"

    def detail(self) -> str:
        return _kernel_text(self.k, self.s, self.groups, self.d)

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        per = _product(
            ("kh", self.k[0]),
            ("kw", self.k[1]),
            ("(cin/groups)", ins[0].c // self.groups),
            ("cout", self.c),
        )
        spatial = _product(("hout", out.h), ("wout", out.w))
        out_f = {"macs": (f"{per[0]}·{spatial[0]}", f"{per[1]}·{spatial[1]}"), "params": per}
        if self.bias:
            out_f["params"] = (f"{per[0]} + cout", f"{per[1]} + {self.c}")
        return out_f


class DepthwiseArgs:
    """Arguments of a depthwise convolution (primitive and ``dw`` row)."""

    k = arg(PAIR, (3, 3), doc="kernel size")
    s = arg(PAIR, (1, 1), doc="stride")
    m = arg(POS_INT, 1, doc="channel multiplier")
    padding = arg(PADDING, "same", inherit=True, doc="padding")
    d = arg(PAIR, (1, 1), doc="dilation")
    bias = arg(BOOL, False, inherit=True, doc="with a bias")


@primitive
class Depthwise(DepthwiseArgs, Layer):
    """Depthwise conv: one k×k filter per input channel (×m with a channel multiplier)."""

    kind: ClassVar[str] = "depthwise"

    def resolve(self, ins: Sequence[Shape]) -> Layer:
        if self.padding == "torch":
            return self.replace(padding=torch_padding(self.k, self.d))
        return self

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        h, w = _window(ins[0].h, ins[0].w, self.k, self.s, self.d, self.padding)
        return Shape(h, w, ins[0].c * self.m)

    def params(self, ins: Sequence[Shape]) -> Params:
        cout = ins[0].c * self.m
        return Params(weights=self.k[0] * self.k[1] * cout, biases=cout if self.bias else 0)

    def macs(self, ins: Sequence[Shape], out: Shape) -> int:
        return self.k[0] * self.k[1] * out.numel

    def label(self, ins: Sequence[Shape]) -> str:
        return f"dw {self.k[0]}×{self.k[1]}"

    def detail(self) -> str:
        return (_kernel_text(self.k, self.s, 1, self.d) + " dw"
                + (f" ×{self.m}" if self.m > 1 else ""))

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        per = _product(("kh", self.k[0]), ("kw", self.k[1]), ("cin·m", ins[0].c * self.m))
        spatial = _product(("hout", out.h), ("wout", out.w))
        return {"macs": (f"{per[0]}·{spatial[0]}", f"{per[1]}·{spatial[1]}"), "params": per}


class LinearArgs:
    """Arguments of a fully connected layer (primitive and ``fc`` row)."""

    c = arg(CHANNELS, width=True, doc="output features")
    bias = arg(BOOL, True, doc="with a bias")


@primitive
class Linear(LinearArgs, Layer):
    """Fully connected layer over the channels, at every position: MACs = h·w·cin·cout
    (cin·cout after a global pool or flatten; ConvNeXt's channels-last Linear otherwise)."""

    kind: ClassVar[str] = "linear"

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        return ins[0]._replace(c=self.c)  # keeps a token layout

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(weights=ins[0].c * self.c, biases=self.c if self.bias else 0)

    def macs(self, ins: Sequence[Shape], out: Shape) -> int:
        return ins[0].c * self.c * out.h * out.w

    def label(self, ins: Sequence[Shape]) -> str:
        return "fc"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        macs = _product(("cin", ins[0].c), ("cout", self.c))
        params = (f"{macs[0]} + cout", f"{macs[1]} + {self.c}") if self.bias else macs
        if (out.h, out.w) != (1, 1):
            spatial = _product(("h", out.h), ("w", out.w))
            macs = (f"{macs[0]}·{spatial[0]}", f"{macs[1]}·{spatial[1]}")
        return {"macs": macs, "params": params}


@primitive
class BatchNorm(Layer):
    """Batch norm: γ and β per channel, plus moving mean and variance."""

    kind: ClassVar[str] = "batchnorm"

    def params(self, ins: Sequence[Shape]) -> Params:
        c = ins[0].c
        return Params(bn_scale=c, bn_shift=c, bn_stats=2 * c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"bn": BN_OPS * out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return "bn"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        c = ins[0].c
        return {
            "params": ("2·c (γ, β) + 2·c (mean, var)", f"2·{c} + 2·{c}"),
            "bn": ("2·h·w·c", f"2·{out.h}·{out.w}·{out.c}"),
        }


@primitive
class Activation(Layer):
    """An element-wise non-linearity; its cost per element is in ``ACT_OPS``."""

    kind: ClassVar[str] = "act"
    fn = arg(ACT_ROW, doc="the function (none: the identity, nothing placed)")

    def is_identity(self) -> bool:
        return self.fn == "none"

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"act": ACT_OPS[self.fn] * out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return self.fn

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        n = ACT_OPS[self.fn]
        return {"act": (f"{n}·h·w·c", f"{n}·{out.h}·{out.w}·{out.c}")}


@primitive
class Pool(Layer):
    """k×k average or max pooling."""

    kind: ClassVar[str] = "pool"
    op = arg(POOL_OP, "avg", doc="avg or max")
    k = arg(PAIR, (2, 2), doc="window")
    s = arg(PAIR, (2, 2), doc="stride")
    padding = arg(PADDING, "valid", doc="padding")
    ceil = arg(BOOL, False, doc="PyTorch ceil_mode: keep a last partial window")

    def check(self) -> None:
        if isinstance(self.padding, tuple) and any(
                p > k // 2 for p, k in zip(self.padding, self.k, strict=True)):
            raise ValueError(f"pool padding {list(self.padding)} is more than half the "
                             f"{self.k[0]}×{self.k[1]} window (PyTorch refuses it)")

    def resolve(self, ins: Sequence[Shape]) -> Layer:
        if self.padding == "torch":
            return self.replace(padding=torch_padding(self.k, (1, 1)))
        return self

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        h, w = _window(ins[0].h, ins[0].w, self.k, self.s, (1, 1), self.padding, self.ceil)
        return Shape(h, w, ins[0].c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        # avg: k²−1 adds and one divide; max: k²−1 compares
        window = self.k[0] * self.k[1]
        return {"pool": (window if self.op == "avg" else window - 1) * out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return f"{self.op} pool"

    def detail(self) -> str:
        return _kernel_text(self.k, self.s)

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        per = "k²" if self.op == "avg" else "(k²−1)"
        n = self.k[0] * self.k[1] - (0 if self.op == "avg" else 1)
        return {"pool": (f"{per}·hout·wout·c", f"{n}·{out.h}·{out.w}·{out.c}")}


@primitive
class GlobalPool(Layer):
    """Global average or max pooling to 1×1."""

    kind: ClassVar[str] = "global_pool"
    op = arg(POOL_OP, "avg", doc="avg or max")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        return Shape(1, 1, ins[0].c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        window = ins[0].h * ins[0].w
        return {"pool": (window if self.op == "avg" else window - 1) * out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return f"global {self.op} pool"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        x = ins[0]
        per = "h·w" if self.op == "avg" else "(h·w−1)"
        n = x.h * x.w - (0 if self.op == "avg" else 1)
        return {"pool": (f"{per}·c", f"{n}·{x.c}")}


def _same_shapes(ins: Sequence[Shape], what: str) -> Shape:
    if any(s != ins[0] for s in ins[1:]):
        raise ShapeError(f"{what} needs inputs of one shape, got {', '.join(map(str, ins))}")
    return ins[0]


@primitive
class Add(Layer):
    """Element-wise sum of two or more tensors of one shape (a residual connection)."""

    kind: ClassVar[str] = "add"
    arity: ClassVar[int | None] = None

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        return _same_shapes(ins, "add")

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"add": (len(ins) - 1) * out.numel}

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        return {"add": ("(inputs−1)·h·w·c", f"{len(ins) - 1}·{out.h}·{out.w}·{out.c}")}


@primitive
class Mul(Layer):
    """Element-wise product; the second input may be 1×1×C (a channel gate, as in SE)."""

    kind: ClassVar[str] = "mul"
    arity: ClassVar[int | None] = 2

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        a, b = ins
        if b == Shape(1, 1, a.c):
            return a
        return _same_shapes(ins, "mul")

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"mul": out.numel}

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        return {"mul": ("h·w·c", f"{out.h}·{out.w}·{out.c}")}


# element-wise ops of a tensor with a constant: the counter each one's single operation
# per output element falls in (max and min with a constant clamp, as relu does)
SCALAR_OPS = {"add": "add", "sub": "add", "mul": "mul", "div": "mul", "pow": "mul",
              "max": "act", "min": "act"}


@primitive
class Scalar(Layer):
    """A tensor and a constant (a scalar or one value per channel: a model's built-in input
    scaling, the attention scale, x/√2), combined element by element: one operation per
    output element, counted under ``SCALAR_OPS[op]``. The constant is not a parameter."""

    kind: ClassVar[str] = "scalar"
    op = arg(ArgType(f"one of {', '.join(SCALAR_OPS)}", CHOICE(*SCALAR_OPS)), "mul",
             doc="the operation")

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {SCALAR_OPS[self.op]: out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return f"{self.op} constant"

    def detail(self) -> str:
        return self.op

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        return {SCALAR_OPS[self.op]: ("h·w·c", f"{out.h}·{out.w}·{out.c}")}


@primitive
class Flatten(Layer):
    """Reshape h×w×c to 1×1×(h·w·c); free."""

    kind: ClassVar[str] = "flatten"

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        return Shape(1, 1, ins[0].numel)


@primitive
class Dropout(Layer):
    """Identity at inference; free."""

    kind: ClassVar[str] = "dropout"
    p = arg(PROB, None, doc="drop probability (documentation only)")


@primitive
class DropPath(Layer):
    """Stochastic depth (timm ``DropPath``): drops a residual branch per sample in
    training, the identity at inference, so nothing is placed."""

    kind: ClassVar[str] = "drop_path"
    p = arg(PROB, None, doc="drop probability (documentation only)")

    def is_identity(self) -> bool:
        return True


@primitive
class Shuffle(Layer):
    """Channel shuffle (ShuffleNet, MicroNet): a permutation, free; groups must divide c."""

    kind: ClassVar[str] = "shuffle"
    groups = arg(POS_INT, doc="groups")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        if self.groups < 1 or ins[0].c % self.groups:
            raise ShapeError(f"shuffle groups={self.groups} must divide the {ins[0].c} channels")
        return ins[0]

    def detail(self) -> str:
        return f"g{self.groups}"


@primitive
class ShiftMax(Layer):
    """Dynamic Shift-Max fusion (MicroNet, arXiv:2108.05894): out = max over K of Σ_j a·x_j.

    Inputs: the features x (h×w×c) and their coefficients (1×1×c·J·K, from the
    generator). Each output takes J channels (itself and J−1 circular group shifts), so
    each of the K branches is J multiply-adds per element; the K−1 maxima and the
    rescaling of each coefficient ((a − 0.5)·λ + init: 3 ops) are counted as ``act``.
    """

    kind: ClassVar[str] = "shiftmax"
    arity: ClassVar[int | None] = 2
    j = arg(POS_INT, 2, doc="J, the channels fused into each output")
    k = arg(POS_INT, 2, doc="K, the maxima (1: a plain dynamic fusion)")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        x, coeffs = ins
        expected = Shape(1, 1, x.c * self.j * self.k)
        if coeffs != expected:
            raise ShapeError(f"shift-max needs coefficients of shape {expected}, got {coeffs}")
        return x

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {
            "shiftmax": self.j * self.k * out.numel,
            "act": (self.k - 1) * out.numel + 3 * ins[1].c,
        }

    def detail(self) -> str:
        return f"J{self.j} K{self.k}"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        return {
            "shiftmax": ("J·K·h·w·c", f"{self.j}·{self.k}·{out.h}·{out.w}·{out.c}"),
            "act": (
                "(K−1)·h·w·c + 3·(c·J·K)",
                f"{self.k - 1}·{out.h}·{out.w}·{out.c} + 3·{ins[1].c}",
            ),
        }


def _adaptive_windows(n: int, out: int) -> int:
    """Sum of PyTorch's adaptive-pool window lengths along one axis: window i spans
    [floor(i·n/out), ceil((i+1)·n/out))."""
    return sum(-(-((i + 1) * n) // out) - (i * n) // out for i in range(out))


@primitive
class AdaptivePool(Layer):
    """Average or max pooling to a fixed output size (PyTorch ``AdaptiveAvgPool2d``), so
    what follows keeps its size at any input resolution (VGG, AlexNet)."""

    kind: ClassVar[str] = "adaptive_pool"
    op = arg(POOL_OP, "avg", doc="avg or max")
    size = arg(PAIR, doc="output size")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        return Shape(self.size[0], self.size[1], ins[0].c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        # every window's elements summed (avg: then one divide) or compared (max: k−1)
        rows, cols = (_adaptive_windows(ins[0].h, out.h), _adaptive_windows(ins[0].w, out.w))
        cells = out.h * out.w
        per = rows * cols if self.op == "avg" else rows * cols - cells
        return {"pool": per * out.c}

    def label(self, ins: Sequence[Shape]) -> str:
        return f"adaptive {self.op} pool"

    def detail(self) -> str:
        return f"→{self.size[0]}×{self.size[1]}"


@primitive
class Concat(Layer):
    """Channel concatenation of two or more tensors of one spatial size; free, but its
    output is a new tensor (the memory model allocates it)."""

    kind: ClassVar[str] = "concat"
    arity: ClassVar[int | None] = None

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        if any((s.h, s.w) != (ins[0].h, ins[0].w) for s in ins[1:]):
            raise ShapeError(f"concat needs inputs of one spatial size, got "
                             f"{', '.join(map(str, ins))}")
        return ins[0]._replace(c=sum(s.c for s in ins))


@primitive
class Slice(Layer):
    """Channels ``start`` … ``start + c − 1`` of its input: a view, free (a ``split`` row
    makes one per part)."""

    kind: ClassVar[str] = "slice"
    c = arg(CHANNELS, width=True, doc="channels kept")
    start = arg(NONNEG_INT, 0, doc="first channel kept")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        if self.start + self.c > ins[0].c:
            raise ShapeError(f"channels {self.start}…{self.start + self.c - 1} are not all in "
                             f"the {ins[0].c} input channels")
        return ins[0]._replace(c=self.c)

    def detail(self) -> str:
        return f"[{self.start}:{self.start + self.c}]"


@primitive
class LayerNorm(Layer):
    """Layer norm over the channels at each position (ConvNeXt): γ and β per channel."""

    kind: ClassVar[str] = "layernorm"

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(ln_scale=ins[0].c, ln_shift=ins[0].c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"bn": LN_OPS * out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return "layer norm"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        return {"params": ("2·c (γ, β)", f"2·{ins[0].c}"),
                "bn": (f"{LN_OPS}·h·w·c", f"{LN_OPS}·{out.h}·{out.w}·{out.c}")}


@primitive
class LayerScale(Layer):
    """Per-channel scale γ (ConvNeXt's layer scale): c parameters, one multiply each."""

    kind: ClassVar[str] = "layer_scale"

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(layer_scale=ins[0].c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"mul": out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return "layer scale"


@primitive
class SpaceToDepth(Layer):
    """Each b×b block of positions stacked into channels: h×w×c → ⌊h/b⌋×⌊w/b⌋×b²c, free
    (a permutation). YOLOv2's passthrough ("reorg", Darknet, which floors the sides)."""

    kind: ClassVar[str] = "space_to_depth"
    block = arg(POS_INT, 2, doc="block side b")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        h, w, c = ins[0]
        if h < self.block or w < self.block:
            raise ShapeError(f"a {self.block}×{self.block} block does not fit a {h}×{w} input")
        return Shape(h // self.block, w // self.block, c * self.block * self.block)

    def detail(self) -> str:
        return f"{self.block}×{self.block} → channels"


@primitive
class L2Norm(Layer):
    """SSD's L2 normalization (arXiv:1512.02325 §3.1, ParseNet): each position's channel
    vector divided by its L2 norm, then scaled by a learned γ per channel (c parameters).
    Per element: a square, an add into the sum, a divide and the scale (3 mul, 1 add)."""

    kind: ClassVar[str] = "l2norm"

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(layer_scale=ins[0].c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"mul": 3 * out.numel, "add": out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return "l2 norm"


@primitive
class Upsample(Layer):
    """Resize by an integer ``scale`` (or to ``size``): nearest is free, bilinear costs
    ``BILINEAR_OPS`` per output element (counted under ``pool``)."""

    kind: ClassVar[str] = "upsample"
    scale = arg(POS_INT, None, doc="integer scale factor")
    size = arg(PAIR, None, doc="output size (instead of scale)")
    like = arg(NAME, None, doc="a layer whose size to take (F.interpolate(x, "
               "size=g.shape[-2:])), read as a second input")
    mode = arg(RESIZE_MODE, "nearest", doc="nearest or bilinear")

    def check(self) -> None:
        if sum(v is not None for v in (self.scale, self.size, self.like)) != 1:
            raise ValueError("upsample needs exactly one of scale, size or like")

    @property
    def arity(self) -> int:  # type: ignore[override]
        return 1 if self.like is None else 2

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        if self.like is not None:
            return Shape(ins[1].h, ins[1].w, ins[0].c)
        if self.size is not None:
            return Shape(self.size[0], self.size[1], ins[0].c)
        return Shape(ins[0].h * self.scale, ins[0].w * self.scale, ins[0].c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"pool": BILINEAR_OPS * out.numel if self.mode == "bilinear" else 0}

    def detail(self) -> str:
        if self.like is not None:
            return f"like {self.like} {self.mode}"
        return f"×{self.scale} {self.mode}" if self.scale else f"→{self.size[0]}×{self.size[1]}"


@primitive
class ConvTranspose2d(Layer):
    """Transposed ("de-") convolution, PyTorch ``ConvTranspose2d``: output side
    (n − 1)·s − 2·p + d·(k − 1) + output_padding + 1. Each input position scatters a
    k×k×(cout/groups) patch, so MACs = kh·kw·(cout/groups)·cin·hin·win, as PyTorch's
    FlopCounterMode counts it."""

    kind: ClassVar[str] = "conv_transpose"
    c = arg(CHANNELS, width=True, doc="output channels")
    k = arg(PAIR, (2, 2), doc="kernel size")
    s = arg(PAIR, (2, 2), doc="stride")
    padding = arg(PAIR_NONNEG, (0, 0), doc="padding removed from each side")
    output_padding = arg(PAIR_NONNEG, (0, 0), doc="extra rows/columns on one side")
    d = arg(PAIR, (1, 1), doc="dilation")
    groups = arg(POS_INT, 1, doc="groups")
    bias = arg(BOOL, False, inherit=True, doc="with a bias")

    def _side(self, n: int, axis: int) -> int:
        return ((n - 1) * self.s[axis] - 2 * self.padding[axis]
                + self.d[axis] * (self.k[axis] - 1) + self.output_padding[axis] + 1)

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        cin = ins[0].c
        if cin % self.groups or self.c % self.groups:
            raise ShapeError(
                f"groups={self.groups} must divide the input ({cin}) and output ({self.c}) channels"
            )
        h, w = self._side(ins[0].h, 0), self._side(ins[0].w, 1)
        if h <= 0 or w <= 0:
            raise ShapeError(f"a transposed {self.k[0]}×{self.k[1]} conv with padding "
                             f"{list(self.padding)} collapses a {ins[0].h}×{ins[0].w} input")
        return Shape(h, w, self.c)

    def _weights(self, cin: int) -> int:
        return self.k[0] * self.k[1] * (self.c // self.groups) * cin

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(weights=self._weights(ins[0].c), biases=self.c if self.bias else 0)

    def macs(self, ins: Sequence[Shape], out: Shape) -> int:
        return self._weights(ins[0].c) * ins[0].h * ins[0].w

    def label(self, ins: Sequence[Shape]) -> str:
        return f"conv transpose {self.k[0]}×{self.k[1]}"

    def detail(self) -> str:
        return _kernel_text(self.k, self.s, self.groups) + " T"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        per = _product(("kh", self.k[0]), ("kw", self.k[1]),
                       ("(cout/groups)", self.c // self.groups), ("cin", ins[0].c))
        spatial = _product(("hin", ins[0].h), ("win", ins[0].w))
        return {"macs": (f"{per[0]}·{spatial[0]}", f"{per[1]}·{spatial[1]}"), "params": per}

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

from macscalc.errors import ShapeError
from macscalc.schema import (
    ACT_FN,
    BOOL,
    CHANNELS,
    PADDING,
    PAIR,
    POOL_OP,
    POS_INT,
    RATIO,
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
}
BN_OPS = 2  # inference BN folded to y = a·x + b: one multiply, one add

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

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        return ins[0]

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params()

    def macs(self, ins: Sequence[Shape], out: Shape) -> int:
        return 0

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        """Extra operations by category (``OP_CATEGORIES``), counted only when switched on."""
        return {}

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


def _spatial(n: int, k: int, s: int, d: int, pad: str | int) -> int:
    """Output length of one spatial axis; TF 'same' is ceil(n / s)."""
    span = d * (k - 1) + 1
    if pad == "same":
        return -(-n // s)
    total = n + 2 * (0 if pad == "valid" else pad)
    return (total - span) // s + 1 if total >= span else 0


def _window(
    n_h: int,
    n_w: int,
    k: tuple[int, int],
    s: tuple[int, int],
    d: tuple[int, int],
    padding: str | tuple[int, int],
) -> tuple[int, int]:
    pads = (padding, padding) if isinstance(padding, str) else padding
    h = _spatial(n_h, k[0], s[0], d[0], pads[0])
    w = _spatial(n_w, k[1], s[1], d[1], pads[1])
    if h <= 0 or w <= 0:
        raise ShapeError(
            f"a {k[0]}×{k[1]} window with stride {s[0]}×{s[1]} and padding "
            f"{padding!r} collapses a {n_h}×{n_w} input to {max(h, 0)}×{max(w, 0)}"
        )
    return h, w


def _kernel_text(k: tuple[int, int], s: tuple[int, int], groups: int = 1) -> str:
    text = f"{k[0]}×{k[1]}/{s[0]}" if s[0] == s[1] else f"{k[0]}×{k[1]}/{s[0]},{s[1]}"
    return text + (f" g{groups}" if groups > 1 else "")


class ConvArgs:
    """Arguments of a convolution, shared by the primitive and the ``conv``/``pw`` rows."""

    c = arg(CHANNELS, width=True, doc="output channels")
    k = arg(PAIR, (1, 1), doc="kernel size")
    s = arg(PAIR, (1, 1), doc="stride")
    padding = arg(PADDING, "same", inherit=True, doc="padding")
    d = arg(PAIR, (1, 1), doc="dilation")
    groups = arg(POS_INT, 1, doc="groups")
    bias = arg(BOOL, False, doc="with a bias")


@primitive
class Conv2d(ConvArgs, Layer):
    """k×k convolution: MACs = kh·kw·(cin/groups)·cout·hout·wout."""

    kind: ClassVar[str] = "conv2d"

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
        return _kernel_text(self.k, self.s, self.groups)

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
    bias = arg(BOOL, False, doc="with a bias")


@primitive
class Depthwise(DepthwiseArgs, Layer):
    """Depthwise conv: one k×k filter per input channel (×m with a channel multiplier)."""

    kind: ClassVar[str] = "depthwise"

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
        return _kernel_text(self.k, self.s) + " dw" + (f" ×{self.m}" if self.m > 1 else "")

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
    """Fully connected layer on a 1×1 input: MACs = cin·cout."""

    kind: ClassVar[str] = "linear"

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        if (ins[0].h, ins[0].w) != (1, 1):
            raise ShapeError(
                f"a fully connected layer needs a 1×1 input, got {ins[0]}; "
                "add a global pool or flatten before it"
            )
        return Shape(1, 1, self.c)

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(weights=ins[0].c * self.c, biases=self.c if self.bias else 0)

    def macs(self, ins: Sequence[Shape], out: Shape) -> int:
        return ins[0].c * self.c

    def label(self, ins: Sequence[Shape]) -> str:
        return "fc"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        macs = _product(("cin", ins[0].c), ("cout", self.c))
        params = (f"{macs[0]} + cout", f"{macs[1]} + {self.c}") if self.bias else macs
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
    fn = arg(ACT_FN, doc="the function")

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

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        h, w = _window(ins[0].h, ins[0].w, self.k, self.s, (1, 1), self.padding)
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
    p = arg(RATIO, None, doc="drop probability (documentation only)")


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

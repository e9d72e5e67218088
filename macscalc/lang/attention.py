"""Attention: matmul of two computed tensors, element-wise operations (with a constant or
between tensors), and the composite attention rows.

Convention (as every peer that counts attention): q·kᵀ and attn·v are multiply-
accumulates, g·m·k·n for a (g × m × k) by (g × k × n) product; softmax (``act``), the
scaling of the scores (``mul``), added bias tables (``add``) and norms (``bn``) are extra
operations under their switches. The attention matrix (heads × N × N) is a tensor of its
own, so the memory model holds it while it lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import isqrt
from typing import TYPE_CHECKING, ClassVar

from macscalc.core.errors import ShapeError
from macscalc.lang.blocks import Block, block, unit
from macscalc.lang.layers import (
    Activation,
    Concat,
    Conv2d,
    Depthwise,
    Formula,
    Layer,
    Linear,
    Scalar,
    Shape,
    Slice,
    primitive,
)
from macscalc.lang.layers import Add as AddLayer
from macscalc.lang.schema import ACT, BOOL, CHANNELS, CHOICE, POS_INT, POS_INTS, ArgType, arg
from macscalc.lang.tokens import (
    BiasTable,
    Heads,
    MergeHeads,
    ToImage,
    Tokens,
    ToTokens,
    WindowMerge,
    WindowPartition,
)

if TYPE_CHECKING:
    from macscalc.lang.placing import Placer


@primitive
class MatMul(Layer):
    """Product of two computed tensors, batched over sequences: (g × m × k)·(g' × k × n)
    → g × m × n, MACs g·m·k·n; ``tb`` multiplies by the second's transpose (q·kᵀ). The
    second may have fewer sequences g' dividing g (keys shared by heads: multi-query)."""

    kind: ClassVar[str] = "matmul"
    arity: ClassVar[int | None] = 2
    ta = arg(BOOL, False, doc="the first input's transpose (kᵀ·v, linear attention)")
    tb = arg(BOOL, False, doc="multiply by the second input's transpose")

    def _inner(self, a: Shape) -> int:
        return a.w if self.ta else a.c

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        a, b = ins
        m, inner = (a.c, a.w) if self.ta else (a.w, a.c)
        cols, b_inner = (b.w, b.c) if self.tb else (b.c, b.w)
        if inner != b_inner or a.h % b.h:
            at = f"{a}ᵀ" if self.ta else str(a)
            bt = f"{b}ᵀ" if self.tb else str(b)
            raise ShapeError(f"cannot multiply {at} by {bt}: need {inner} rows in each of "
                             f"{a.h} (or a divisor of {a.h}) sequences")
        return Tokens(a.h, m, cols)

    def macs(self, ins: Sequence[Shape], out: Shape) -> int:
        return out.numel * self._inner(ins[0])

    def label(self, ins: Sequence[Shape]) -> str:
        return "matmul"

    def detail(self) -> str:
        return ("ᵀ·" if self.ta else "") + ("·ᵀ" if self.tb else "")

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        return {"macs": ("g·m·k·n", f"{out.h}·{out.w}·{self._inner(ins[0])}·{out.c}")}


ELTWISE_OP = ArgType("sub, div, max or min", CHOICE("sub", "div", "max", "min"))


@primitive
class Eltwise(Layer):
    """An element-wise operation between two computed tensors of one shape (the second may
    be 1×1×C, broadcast over positions, or one channel wide, broadcast over channels):
    PoolFormer's pool(x) − x, linear attention's division by its normalizer. One op per
    element, under ``add`` (sub, max, min) or ``mul`` (div); ``add`` and ``mul`` rows do
    the sum and the product."""

    kind: ClassVar[str] = "eltwise"
    arity: ClassVar[int | None] = 2
    op = arg(ELTWISE_OP, doc="sub, div, max or min")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        a, b = ins
        if b != a and b != Shape(1, 1, a.c) and b != a._replace(c=1):
            raise ShapeError(f"{self.op} needs inputs of one shape (or a 1×1×{a.c} or "
                             f"{a.h}×{a.w}×1 second), got {a}, {b}")
        return a

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"mul" if self.op == "div" else "add": out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return self.op

    def detail(self) -> str:
        return self.op


def _relative_entries(n: int, name: str, b: Placer) -> int:
    """Entries per head of a LeViT/EfficientViT bias table over an r×r window: one per
    distinct offset (|dx|, |dy|), r² of them."""
    r = isqrt(n)
    if r * r != n:
        raise b.row_error(f"{name}: a relative bias table needs a square window, got "
                          f"{n} tokens")
    return n


def _scores_to_output(b: Placer, name: str, q: str, k: str, v: str, bias: int,
                      per: int) -> str:
    """scores = q·kᵀ, scaled, biased, softmax, then ·v: the shared core of every variant."""
    b.add(MatMul(tb=True), f"{name}/qk", inputs=[q, k])
    b.add(Scalar(op="mul"), f"{name}/scale")
    if bias:
        b.add(BiasTable(entries=bias, per=per), f"{name}/bias")
    b.add(Activation(fn="softmax"), f"{name}/softmax")
    return b.add(MatMul(), f"{name}/av", inputs=[b.cur, v])


@block
class Attention(Block):
    """Multi-head self-attention over tokens (ViT, MobileViT, LeViT, TinyViT): q, k and v
    projections (linear, optional BN), ``heads`` heads of ``key_dim`` (q, k) and
    ``value_dim`` (v) channels, scores q·kᵀ scaled, an optional relative bias table
    (one entry per head and window offset), softmax, attn·v, then an optional activation
    and the output projection. ``kv_heads: 1`` shares keys and values (multi-query)."""

    kind: ClassVar[str] = "attention"
    heads = arg(POS_INT, doc="attention heads")
    key_dim = arg(POS_INT, None, doc="q and k channels per head (default c/heads)")
    value_dim = arg(POS_INT, None, doc="v channels per head (default key_dim)")
    kv_heads = arg(POS_INT, None, doc="k and v heads (default heads; 1: multi-query)")
    c = arg(CHANNELS, None, width=True, doc="output channels (default: the input's)")
    qkv_bias = arg(BOOL, True, doc="biases on q, k, v")
    proj_bias = arg(BOOL, True, doc="bias on the output projection")
    bn = arg(BOOL, False, doc="batch norm after each projection (LeViT)")
    proj_act = arg(ACT, None, doc="activation before the output projection")
    rel_bias = arg(BOOL, False, doc="a learned relative-position bias per head")
    proj = arg(BOOL, True, doc="an output projection")

    def expand(self, b: Placer, name: str) -> None:
        x = b.cur
        shape = b.shape()
        if not isinstance(shape, Tokens):
            raise b.row_error(f"{name}: attention needs tokens, got the image {shape}; "
                              "use to_tokens or window_partition first")
        if self.key_dim is None and shape.c % self.heads:
            raise b.row_error(f"{name}: {self.heads} heads do not divide the {shape.c} "
                              "channels; give key_dim")
        kd = self.key_dim or shape.c // self.heads
        vd = self.value_dim or kd
        kvh = self.kv_heads or self.heads
        if self.heads % kvh:
            raise b.row_error(f"{name}: kv_heads={kvh} must divide heads={self.heads}")
        with b.within("attention"):
            for part, heads, width in (("q", self.heads, kd), ("k", kvh, kd), ("v", kvh, vd)):
                b.cur = x
                unit(b, f"{name}/{part}", Linear(c=heads * width, bias=self.qkv_bias),
                     self.bn, None)
                b.add(Heads(heads=heads), f"{name}/{part}_heads")
            bias = _relative_entries(shape.tokens, name, b) if self.rel_bias else 0
            _scores_to_output(b, name, f"{name}/q_heads", f"{name}/k_heads",
                              f"{name}/v_heads", bias, shape.groups)
            b.add(MergeHeads(heads=self.heads), f"{name}/merge")
            if self.proj_act:
                b.add(Activation(fn=self.proj_act), f"{name}/proj.{self.proj_act}")
            if self.proj:
                unit(b, f"{name}/proj", Linear(c=self.c or shape.c, bias=self.proj_bias),
                     self.bn, None)


KERNELS = ArgType(f"a kernel size or a list of them, one per head ({POS_INTS.expected})",
                  lambda v: POS_INTS(v if isinstance(v, list) else [v]))


@block
class CascadedAttention(Block):
    """EfficientViT (MSRA, arXiv:2305.07027) cascaded group attention on an image, in
    windows of ``window``×``window`` when the image is larger (timm
    ``LocalWindowAttention``). Head i reads the i-th channel chunk plus head i−1's output,
    a 1×1 conv + BN to q, k (``key_dim``) and v (c/heads), a k×k depthwise + BN on q
    (``kernels``), scores with a relative bias table, softmax, attn·v; the heads'
    outputs are concatenated, ReLU, 1×1 conv + BN back to c. The 1×1 and depthwise
    convs are placed on the whole image: per output position they cost what they cost
    per window."""

    kind: ClassVar[str] = "cascaded_attention"
    heads = arg(POS_INT, doc="attention heads")
    key_dim = arg(POS_INT, doc="q and k channels per head")
    window = arg(POS_INT, 7, doc="window side")
    kernels = arg(KERNELS, (5,), doc="depthwise kernel on q, per head (or one for all)")

    def expand(self, b: Placer, name: str) -> None:
        x = b.cur
        img = b.shape()
        if isinstance(img, Tokens):
            raise b.row_error(f"{name}: cascaded_attention needs an image, got {img}")
        kernels = self.kernels if len(self.kernels) > 1 else self.kernels * self.heads
        if len(kernels) < self.heads or img.c % self.heads:
            raise b.row_error(f"{name}: {self.heads} heads need {self.heads} kernels and "
                              f"must divide the {img.c} channels")
        d, kd = img.c // self.heads, self.key_dim
        windowed = img.h > self.window or img.w > self.window
        outs: list[str] = []
        with b.within("attention"):
            for i in range(self.heads):
                head = f"{name}/head{i}"
                chunk = b.add(Slice(c=d, start=i * d), f"{head}/chunk", inputs=[x])
                if outs:
                    b.add(AddLayer(), f"{head}/cascade", inputs=[outs[-1], chunk])
                unit(b, f"{head}/qkv", Conv2d(c=2 * kd + d), True, None)
                qkv = b.cur
                b.add(Slice(c=kd), f"{head}/q", inputs=[qkv])
                unit(b, f"{head}/q_dw", Depthwise(k=(kernels[i], kernels[i])), True, None)
                parts = [b.cur, b.add(Slice(c=kd, start=kd), f"{head}/k", inputs=[qkv]),
                         b.add(Slice(c=d, start=2 * kd), f"{head}/v", inputs=[qkv])]
                seqs = []
                for part, src in zip(("q", "k", "v"), parts, strict=True):
                    layout = (WindowPartition(size=self.window) if windowed else ToTokens())
                    seqs.append(b.add(layout, f"{head}/{part}_tokens", inputs=[src]))
                n = b.shape().tokens
                groups = b.shape().groups
                _scores_to_output(b, head, *seqs, bias=_relative_entries(n, head, b),
                                  per=groups)
                back = (WindowMerge(size=(img.h, img.w)) if windowed
                        else ToImage(size=(img.h, img.w)))
                outs.append(b.add(back, f"{head}/out"))
            b.add(Concat(), f"{name}/concat", inputs=outs)
            b.add(Activation(fn="relu"), f"{name}/proj.relu")
            unit(b, f"{name}/proj", Conv2d(c=img.c), True, None)

"""ONNX export rules for the token and attention kinds (``lang/tokens``, ``lang/attention``,
``lang/norms``), one per kind, beside the image rules of ``export``.

Why these nodes: each is what macscalc's ONNX reader (``tokens_ops``, ``patterns``) maps
back onto the same primitive, so an exported model counts what its spec counts, and what
the torch exporters write for the same layer where they keep the batch axis at 1. Tokens
are [1, g, n, c] (``writer.dims``); layout changes are Reshape, Transpose, Reshape (free
views); q·kᵀ is a Transpose and a MatMul of two computed tensors; learned tables are
constants (a class token concatenated, a positional table added, an attention-bias table
gathered by a constant index and added); ``eltwise`` and ``scalar`` are the element-wise
op of their name.
"""

from __future__ import annotations

from math import isqrt
from typing import TYPE_CHECKING

from macscalc.lang.tokens import Tokens
from macscalc.models.onnx.writer import Graph, channel_axis, dims, rule

if TYPE_CHECKING:
    from macscalc.lang.graph import Node

# ONNX op of each ``scalar``/``eltwise`` op, and the constant a ``scalar`` is exported with
# (a spec gives no value: these keep activations of ordinary size)
OPS = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "max": "Max",
       "min": "Min"}
SCALARS = {"add": 1.0, "sub": 1.0, "mul": 0.125, "div": 2.0, "pow": 2.0, "max": 0.0,
           "min": 6.0}


def _regroup(g: Graph, n: Node, x: str, split: list[int], perm: list[int]) -> str:
    """Reshape to ``split``, permute, and reshape to the output's dims (skipped when the
    permuted tensor already has them): the one form of every layout change here."""
    y = g.op("Reshape", [x, g.ints(f"{n.name}.split", split)], f"{n.name}/split")
    out = dims(n.out)
    if [split[p] for p in perm] == out:
        return g.op("Transpose", [y], n.name, perm=perm)
    y = g.op("Transpose", [y], f"{n.name}/permute", perm=perm)
    return g.op("Reshape", [y, g.ints(f"{n.name}.shape", out)], n.name)


@rule("to_tokens")
def _to_tokens(g: Graph, n: Node, xs: list[str]) -> str:
    """``flatten(2).transpose(1, 2)``: [1, c, h·w] (kept 4-D), then channels last."""
    x = n.in_shapes[0]
    return _regroup(g, n, xs[0], [1, x.c, 1, x.h * x.w], [0, 2, 3, 1])


@rule("to_image")
def _to_image(g: Graph, n: Node, xs: list[str]) -> str:
    out = n.out
    return _regroup(g, n, xs[0], [1, out.h, out.w, out.c], [0, 3, 1, 2])


# axes of [1, c, h/p, p, w/p, p] in the order of each partition's tokens
PARTITION_PERM = {"window": [0, 2, 4, 3, 5, 1], "grid": [0, 3, 5, 2, 4, 1]}


@rule("window_partition")
def _window_partition(g: Graph, n: Node, xs: list[str]) -> str:
    """Windows: [1, h/p, w/p, p, p, c] (p×p neighbours a sequence); grids: [1, p, p, h/p,
    w/p, c] (MobileViT's unfold: one pixel of every patch a sequence)."""
    x, p = n.in_shapes[0], n.layer.size
    return _regroup(g, n, xs[0], [1, x.c, x.h // p, p, x.w // p, p],
                    PARTITION_PERM[n.layer.mode])


@rule("window_merge")
def _window_merge(g: Graph, n: Node, xs: list[str]) -> str:
    """The partition's inverse: its tokens' axes split and put back as [1, c, h/p, p, w/p,
    p]."""
    x, out, mode = n.in_shapes[0], n.out, n.layer.mode
    p = isqrt(x.tokens if mode == "window" else x.groups)
    perm = PARTITION_PERM[mode]
    split = [1, out.c, out.h // p, p, out.w // p, p]
    inverse = [perm.index(i) for i in range(6)]
    return _regroup(g, n, xs[0], [split[i] for i in perm], inverse)


@rule("heads")
def _heads(g: Graph, n: Node, xs: list[str]) -> str:
    """[1, g, n, h·d] → [1, g, n, h, d] → [1, g, h, n, d] → [1, g·h, n, d]."""
    x, h = n.in_shapes[0], n.layer.heads
    return _regroup(g, n, xs[0], [1, x.h, x.w, h, x.c // h], [0, 1, 3, 2, 4])


@rule("merge_heads")
def _merge_heads(g: Graph, n: Node, xs: list[str]) -> str:
    x, h = n.in_shapes[0], n.layer.heads
    return _regroup(g, n, xs[0], [1, x.h // h, h, x.w, x.c], [0, 1, 3, 2, 4])


@rule("reshape")
def _reshape(g: Graph, n: Node, xs: list[str]) -> str:
    """The elements in h×w×c (g × n × c) order re-read as the new shape: an image
    through NHWC on either side, tokens as they are."""
    x, out = xs[0], n.out
    if not isinstance(n.in_shapes[0], Tokens):
        x = g.op("Transpose", [x], f"{n.name}/nhwc", perm=[0, 2, 3, 1])
    shape = g.ints(f"{n.name}.shape", [1, out.h, out.w, out.c])
    if isinstance(out, Tokens):
        return g.op("Reshape", [x, shape], n.name)
    return g.op("Transpose", [g.op("Reshape", [x, shape], f"{n.name}/nhwc_out")], n.name,
                perm=[0, 3, 1, 2])


@rule("matmul")
def _matmul(g: Graph, n: Node, xs: list[str]) -> str:
    """A batched MatMul, transposes as Transpose nodes. Keys shared by heads (the second
    input has fewer sequences g′) broadcast over a [1, g′, g/g′, …] view of the first."""
    (a, b), (sa, sb) = xs, n.in_shapes
    if n.layer.ta:
        a = g.op("Transpose", [a], f"{n.name}/ta", perm=[0, 1, 3, 2])
    if n.layer.tb:
        b = g.op("Transpose", [b], f"{n.name}/tb", perm=[0, 1, 3, 2])
    if sb.h in (1, sa.h):
        return g.op("MatMul", [a, b], n.name)
    shared, out = sb.h, n.out
    inner = sa.w if n.layer.ta else sa.c
    a = g.op("Reshape", [a, g.ints(f"{n.name}.a", [1, shared, sa.h // shared, out.w, inner])],
             f"{n.name}/a")
    b = g.op("Reshape", [b, g.ints(f"{n.name}.b", [1, shared, 1, inner, out.c])],
             f"{n.name}/b")
    y = g.op("MatMul", [a, b], f"{n.name}/product")
    return g.op("Reshape", [y, g.ints(f"{n.name}.shape", dims(n.out))], n.name)


@rule("scalar")
def _scalar(g: Graph, n: Node, xs: list[str]) -> str:
    op = n.layer.op
    return g.op(OPS[op], [xs[0], g.scalar(f"{n.name}.value", SCALARS[op])], n.name)


@rule("eltwise")
def _eltwise(g: Graph, n: Node, xs: list[str]) -> str:
    """Two computed tensors; a 1×1×c or one-channel second input broadcasts as laid out."""
    return g.op(OPS[n.layer.op], xs, n.name)


@rule("bias_table")
def _bias_table(g: Graph, n: Node, xs: list[str]) -> str:
    """timm's ``attention_biases[:, attention_bias_idxs]``: a (heads, entries) table
    gathered by a constant (m, n) index (LeViT's |Δy|·r + |Δx| over an r×r window when the
    table has r² entries) and added to the scores; windows (``per``) share it through a
    [1, per, heads, m, n] view."""
    x, entries, per = n.in_shapes[0], n.layer.entries, n.layer.per
    table = g.small(f"{n.name}.table", x.h // per * entries, shape=(x.h // per, entries))
    m, k = x.w, x.c
    r = isqrt(entries)
    if m == k == entries == r * r:
        rows, cols = g.np.divmod(g.np.arange(m), r)
        idx = abs(rows[:, None] - rows[None]) * r + abs(cols[:, None] - cols[None])
    else:
        idx = g.np.arange(m * k).reshape(m, k) % entries
    bias = g.op("Gather", [table, g.const(f"{n.name}.index", idx.astype(g.np.int64))],
                f"{n.name}/gather", axis=1)
    if per == 1:
        return g.op("Add", [xs[0], bias], n.name)
    split = g.op("Reshape", [xs[0], g.ints(f"{n.name}.split", [1, per, x.h // per, m, k])],
                 f"{n.name}/split")
    y = g.op("Add", [split, bias], f"{n.name}/add")
    return g.op("Reshape", [y, g.ints(f"{n.name}.shape", dims(x))], n.name)


@rule("class_token")
def _class_token(g: Graph, n: Node, xs: list[str]) -> str:
    """A learned (1, 1, tokens, c) constant concatenated before the tokens (expanded over
    the sequences when there are several)."""
    x, k = n.in_shapes[0], n.layer.tokens
    cls = g.small(f"{n.name}.token", k * x.c, shape=(1, 1, k, x.c))
    if x.h > 1:
        cls = g.op("Expand", [cls, g.ints(f"{n.name}.expand", [1, x.h, k, x.c])],
                   f"{n.name}/expand")
    return g.op("Concat", [cls, xs[0]], n.name, axis=2)


@rule("pos_embed")
def _pos_embed(g: Graph, n: Node, xs: list[str]) -> str:
    table = g.small(f"{n.name}.table", n.out.numel, shape=dims(n.out))
    return g.op("Add", [xs[0], table], n.name)


@rule("take_tokens")
def _take_tokens(g: Graph, n: Node, xs: list[str]) -> str:
    start = n.layer.start
    bounds = [g.ints(f"{n.name}.{e}", [v])
              for e, v in (("start", start), ("end", start + n.layer.tokens))]
    return g.op("Slice", [xs[0], *bounds, g.ints(f"{n.name}.axis", [2])], n.name)


@rule("pad_channels")
def _pad_channels(g: Graph, n: Node, xs: list[str]) -> str:
    """Channels of ones appended (``F.pad(v, (0, 1), value=1)``)."""
    pads = [0] * 8
    pads[4 + channel_axis(n.out)] = n.layer.channels
    return g.op("Pad", [xs[0], g.ints(f"{n.name}.pads", pads), g.scalar(f"{n.name}.one", 1.0)],
                n.name, mode="constant")


@rule("groupnorm")
def _groupnorm(g: Graph, n: Node, xs: list[str]) -> str:
    """torch's GroupNorm as its TorchScript exporter writes it at opset 17 (which has no
    GroupNormalization): Reshape to (N, G, -1), InstanceNormalization with scale 1 and
    shift 0 per group, Reshape back to the input's Shape, Mul by γ, Add β (C×1×1). Tokens
    are normalized channels first: [1, c, g, n] between two Transposes."""
    x, s, groups = xs[0], n.out, n.layer.groups
    tokens = isinstance(s, Tokens)
    if tokens:
        x = g.op("Transpose", [x], f"{n.name}/channels_first", perm=[0, 3, 1, 2])
    y = g.op("Reshape", [x, g.ints(f"{n.name}.groups", [0, groups, -1])], f"{n.name}/Reshape")
    ones = g.const(f"{n.name}.one", g.np.ones(groups, dtype=g.np.float32))
    zeros = g.const(f"{n.name}.zero", g.np.zeros(groups, dtype=g.np.float32))
    y = g.op("InstanceNormalization", [y, ones, zeros], f"{n.name}/InstanceNormalization",
             epsilon=1e-5)
    y = g.op("Reshape", [y, g.op("Shape", [x], f"{n.name}/Shape")], f"{n.name}/Reshape_1")
    y = g.op("Mul", [y, g.small(f"{n.name}.gamma", s.c, 1.0, shape=(s.c, 1, 1))],
             f"{n.name}/Mul")
    out = f"{n.name}/Add" if tokens else n.name
    y = g.op("Add", [y, g.small(f"{n.name}.beta", s.c, shape=(s.c, 1, 1))], out)
    return g.op("Transpose", [y], n.name, perm=[0, 2, 3, 1]) if tokens else y


@rule("grn")
def _grn(g: Graph, n: Node, xs: list[str]) -> str:
    """timm's ``GlobalResponseNorm``: x + (β + γ·(x·n)), n = ‖x‖₂ over the positions divided
    by its mean over the channels + ε."""
    x, s = xs[0], n.out
    ch = channel_axis(s)
    positions = [a for a in (1, 2, 3) if a != ch]
    norm = g.op("ReduceL2", [x], f"{n.name}/l2", axes=positions, keepdims=1)
    mean = g.op("ReduceMean", [norm], f"{n.name}/mean", axes=[ch], keepdims=1)
    eps = g.op("Add", [mean, g.scalar(f"{n.name}.eps", 1e-6)], f"{n.name}/eps")
    y = g.op("Mul", [x, g.op("Div", [norm, eps], f"{n.name}/n")], f"{n.name}/xn")
    per = [s.c if a == ch else 1 for a in range(4)]
    y = g.op("Mul", [y, g.small(f"{n.name}.gamma", s.c, shape=per)], f"{n.name}/gamma")
    y = g.op("Add", [y, g.small(f"{n.name}.beta", s.c, shape=per)], f"{n.name}/beta")
    return g.op("Add", [y, x], n.name)


"""Counting rules for attention graphs: token tensors, products of two computed tensors,
constants added or multiplied in, class tokens and the reshapes between images and tokens.

A token tensor is tracked with its ONNX dims and its channels on the last axis; its last
two axes are n tokens × c channels and every axis before them (heads, windows) counts
as a sequence, so ``(1, heads, n, d)`` is the spec language's ``Tokens(heads, n, d)``.
Reshapes and transposes between those layouts (patch embedding, heads split and merge)
are free views, as ``heads``/``to_tokens`` are in a spec. Each rule here is tried
before the image rule of the same op in :mod:`ops`, which still handles every image
form; a form neither knows stays :class:`Unsupported` (an unknown op, never zero).
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import TYPE_CHECKING

from macscalc.core.errors import ShapeError
from macscalc.lang.attention import Eltwise, MatMul
from macscalc.lang.layers import Layer, Scalar, Slice
from macscalc.lang.norms import GroupNorm
from macscalc.lang.tokens import ClassToken, PadChannels, PosEmbed, TakeTokens, Tokens
from macscalc.models.onnx import ops
from macscalc.models.onnx.values import Act, Const, Unsupported, attrs, scalar, show_dims

if TYPE_CHECKING:
    from macscalc.models.onnx.context import Importer
    from macscalc.models.onnx.proto import NodeProto

Rule = Callable[["Importer", "NodeProto"], None]


class TokenView(Act):
    """An ``Act`` of dims (1, g, n, c) read as ``Tokens(g, n, c)``, the type the token
    kinds (``class_token``, ``take_tokens``) require."""

    __slots__ = ()

    @property
    def shape(self) -> Tokens:  # type: ignore[override]
        return Tokens(*self.dims[1:])


def _as_tokens(a: Act) -> TokenView:
    """The tensor as g × n × c tokens: its last two axes, every axis before them a
    sequence (the batch is 1)."""
    dims = a.dims if len(a.dims) >= 2 else (1, *a.dims)
    return TokenView(a.ref, (1, prod(dims[:-2]), dims[-2], dims[-1]), 3)


def place_tokens(imp: Importer, node: NodeProto, layer: Layer, ins: list[Act],
                 dims: tuple[int, ...]) -> None:
    """Place ``layer`` on ``ins`` read as tokens; its output gets the ONNX ``dims``."""
    scratch = "\x00tokens:" + node.output[0]  # not a name the file can already hold
    placed = imp.place(node, layer, [_as_tokens(a) for a in ins], like=Act("", (1, 1, 1, 1), 3),
                       out=scratch)
    imp.values.pop(scratch, None)
    if prod(placed.dims) != prod(dims):
        raise imp.fail(f"the file's layout {show_dims(dims)} does not hold "
                       f"{show_dims(placed.dims[1:])} tokens", node)
    imp.alias(node, placed, dims, len(dims) - 1)


# -- products of computed tensors ------------------------------------------------------------

def _matmul(imp: Importer, node: NodeProto) -> None:
    """q·kᵀ and attn·v: (…, m, k)·(…, k, n), batched over the leading axes; MACs
    g·m·k·n as the spec's ``matmul``. A constant second input is a linear layer."""
    import numpy as np

    if not isinstance(imp.values.get(node.input[1]), Act):
        ops.RULES["MatMul"](imp, node)
        return
    a, b = imp.act(node, 0), imp.act(node, 1)
    if len(a.dims) < 2 or len(b.dims) < 2:
        raise Unsupported("MatMul of a vector")
    (m, k), (k2, n) = a.dims[-2:], b.dims[-2:]
    if k != k2:
        raise imp.fail(f"cannot multiply {show_dims(a.dims)} by {show_dims(b.dims)}", node)
    try:
        batch = tuple(int(d) for d in np.broadcast_shapes(a.dims[:-2], b.dims[:-2]))
    except ValueError:
        raise imp.fail(f"the leading axes of {show_dims(a.dims)} and {show_dims(b.dims)} "
                       "do not broadcast", node) from None
    if prod(batch) != prod(a.dims[:-2]):
        raise Unsupported("MatMul repeating its first input")  # g' must divide g
    place_tokens(imp, node, MatMul(), [a, b], (*batch, m, n))


def _einsum(imp: Importer, node: NodeProto) -> None:
    """A two-operand Einsum that is a batched product (``bhid,bhjd->bhij`` for q·kᵀ,
    ``bhij,bhjd->bhid`` for attn·v, any letters): batch letters in both inputs and the
    output, contracted ones in both inputs only; MACs the product of every letter's size."""
    eq = str(attrs(node).get("equation", "")).replace(" ", "")
    ins = [imp.values.get(n) for n in node.input]
    if len(ins) != 2 or not all(isinstance(v, Act) for v in ins) or "->" not in eq \
            or "." in eq:
        raise Unsupported("Einsum other than a product of two computed tensors")
    a, b = imp.act(node, 0), imp.act(node, 1)
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != 2 or any(len(t) != len(set(t)) for t in (*terms, out)) \
            or len(terms[0]) != len(a.dims) or len(terms[1]) != len(b.dims):
        raise Unsupported("Einsum other than a product of two computed tensors")
    ta, tb = terms
    size: dict[str, int] = {}
    for term, dims in ((ta, a.dims), (tb, b.dims)):
        for letter, d in zip(term, dims, strict=True):
            if size.setdefault(letter, d) != d:
                raise imp.fail(f"{eq}: axis {letter!r} is {size[letter]} and {d}", node)
    batch = [x for x in ta if x in tb and x in out]
    inner = [x for x in ta if x in tb and x not in out]
    rows = [x for x in ta if x not in tb]
    cols = [x for x in tb if x not in ta]
    if set(out) != {*batch, *rows, *cols} or not inner or any(x not in out for x in rows + cols):
        raise Unsupported("Einsum other than a product of two computed tensors")
    g, m, k, n = (prod(size[x] for x in part) for part in (batch, rows, inner, cols))
    left = Act(a.ref, (1, g, m, k), 3)
    right = Act(b.ref, (1, g, k, n), 3)
    place_tokens(imp, node, MatMul(), [left, right], tuple(size[x] for x in out))


# -- constants combined with a tensor --------------------------------------------------------

_SCALAR_OPS = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
               "Max": "max", "Min": "min"}


def _with_constant(imp: Importer, node: NodeProto) -> tuple[Act, Const] | None:
    """(tensor, constant) for a binary node reading one of each, the tensor first for a
    non-commutative op; None for any other form."""
    ins = [imp.values.get(n) for n in node.input]
    if len(ins) != 2:
        return None
    x, c = ins
    if isinstance(x, Act) and isinstance(c, Const):
        return x, c
    if isinstance(x, Const) and isinstance(c, Act) and node.op_type in ("Add", "Mul"):
        return c, x
    return None


def _constant_op(fallback: Rule | None) -> Rule:
    """A tensor and a scalar constant (the attention scale, x/√2, x^2): ``scalar``; Add
    of a learned table of the tensor's own shape: ``pos_embed``; Sub, Div, Max or Min of
    two tensors of one shape (the second may be 1×1×c or one channel): ``eltwise``."""
    def rule(imp: Importer, node: NodeProto) -> None:
        pair = _with_constant(imp, node)
        if pair is not None:
            x, c = pair
            size = prod(c.dims)
            if size == 1:
                imp.place(node, Scalar(op=_SCALAR_OPS[node.op_type]), [x])
                return
            if node.op_type == "Add" and c.dims[-len(x.dims) + 1:] == x.dims[1:] \
                    and size == prod(x.dims) and len(x.dims) >= 3:
                place_tokens(imp, node, PosEmbed(), [x], x.dims)
                return
        if fallback is not None:
            fallback(imp, node)
            return
        a, b = (list(map(imp.values.get, node.input)) + [None, None])[:2]
        if node.op_type != "Pow" and isinstance(a, Act) and isinstance(b, Act) \
                and b.ch == a.ch and b.dims in _eltwise_seconds(a):
            # PoolFormer's pool(x) − x, linear attention's division by its normalizer
            imp.place(node, Eltwise(op=node.op_type.lower()), [a, b])
            return
        raise Unsupported(f"{node.op_type} with broadcasting or by a non-scalar constant")
    return rule


def _eltwise_seconds(a: Act) -> tuple[tuple[int, ...], ...]:
    """Dims of the second input ``eltwise`` takes with ``a``: its own, one value per
    channel (1×1×c), one channel (broadcast over the channels)."""
    return (a.dims, tuple(d if i == a.ch else 1 for i, d in enumerate(a.dims)),
            tuple(1 if i == a.ch else d for i, d in enumerate(a.dims)))


# -- class token and the tokens' layouts -----------------------------------------------------

def _concat(imp: Importer, node: NodeProto) -> None:
    """A learned constant prepended along the tokens axis (ViT's class token):
    ``class_token``, its elements table parameters. One table expanded over several
    sequences (``Expand`` of (1, 1, k, c) to (1, g, k, c), as ``export`` writes a class
    token on windows) is the table once; g different tables are no class token."""
    names = [n for n in node.input if n]
    ins = [imp.values.get(n) for n in names]
    if not (len(ins) >= 2 and all(isinstance(v, Const) for v in ins[:-1])
            and isinstance(ins[-1], Act)):
        ops.RULES["Concat"](imp, node)
        return
    x = ins[-1]
    assert isinstance(x, Act)
    rank = len(x.dims)
    axis = int(attrs(node).get("axis", 1)) % rank
    consts = [(n, v) for n, v in zip(names[:-1], ins[:-1], strict=True)
              if isinstance(v, Const)]
    if rank < 3 or axis != rank - 2 or x.ch != rank - 1 or any(
            len(c.dims) != rank or c.dims[-1] != x.dims[-1] or c.dims[1:-2] != x.dims[1:-2]
            or not _one_table(imp, n, c) for n, c in consts):
        raise Unsupported("Concat of a constant that is not a class token")
    tokens = sum(c.dims[axis] for _, c in consts)
    place_tokens(imp, node, ClassToken(tokens=tokens),
                 [x], (*x.dims[:axis], x.dims[axis] + tokens, x.dims[-1]))


def _one_table(imp: Importer, name: str, c: Const) -> bool:
    """Whether the constant ``name`` holds one table for all its sequences: it has one,
    or it is an ``Expand`` of a one-sequence table over them."""
    if prod(c.dims[1:-2]) == 1:
        return True
    at = imp.producer.get(name)
    expand = imp.order[at] if at is not None else None
    src = imp.values.get(expand.input[0]) if expand is not None \
        and expand.op_type == "Expand" else None
    return isinstance(src, Const) and len(src.dims) == len(c.dims) \
        and prod(src.dims[1:-2]) == 1 and src.dims[-2:] == c.dims[-2:]


def _gather(imp: Importer, node: NodeProto) -> None:
    """One token of each sequence (``x[:, 0]``, the class-token head; ``x[:, 1]``, DeiT's
    distillation token): ``take_tokens``;
    one of stacked q, k, v (``qkv.unbind(0)``, the stack on the batch axis): a slice."""
    x = imp.act(node)
    rank = len(x.dims)
    axis = int(attrs(node).get("axis", 0)) % rank
    idx = imp.const_value(node.input[1], node)
    i = scalar(idx) if idx.shape == () else None
    if i is None:
        ops.RULES["Gather"](imp, node)
        return
    i = int(i) % x.dims[axis]
    dims = x.dims[:axis] + x.dims[axis + 1:]
    if axis == 0 and rank >= 3 and dims[0] == 1:
        _unstack(imp, node, x, i, dims, node.output[0])
    elif axis == rank - 2 and x.ch == rank - 1:
        place_tokens(imp, node, TakeTokens(tokens=1, start=i), [x], dims)
    else:
        raise Unsupported("Gather of one element of an image")


def _unstack(imp: Importer, node: NodeProto, x: Act, i: int, dims: tuple[int, ...],
             out: str) -> None:
    """Part ``i`` of a projection stacked first (timm's qkv: (1, n, 3·h·d) reshaped to
    (3, 1, h, n, d)): the channel chunk ``i`` of the projection's n × 3·h·d output, a
    free ``slice``, then read as heads."""
    n, k = dims[-2], x.dims[0]
    chunk = prod(dims) // n
    src = Act(x.ref, (1, n, k * chunk), 2)
    scratch = "\x00tokens:" + out
    part = imp.place(node, Slice(c=chunk, start=i * chunk), [src], out=scratch)
    imp.values.pop(scratch, None)
    imp.alias(node, part, dims, len(dims) - 1, out=out)


def _split(imp: Importer, node: NodeProto) -> None:
    """``qkv.unbind(0)`` as TorchScript writes it: Split of the stacked projection into
    ones along axis 0 (then Squeeze): a free channel slice each."""
    x = imp.act(node)
    axis = int(attrs(node).get("axis", 0)) % len(x.dims)
    k = x.dims[0]
    sizes = imp.ints(node, 1, "split") or [1] * len(node.output)
    if axis != 0 or k == 1 or len(x.dims) < 3 or x.dims[1] != 1:
        ops.RULES["Split"](imp, node)
        return
    if sizes != [1] * k or len(node.output) != k:
        raise Unsupported("Split of stacked tensors into other than ones")
    for i, o in enumerate(node.output):
        _unstack(imp, node, x, i, (1, *x.dims[1:]), o)


def _slice(imp: Importer, node: NodeProto) -> None:
    """The dynamo exporter's ``unbind(0)``: Slice [i:i+1] along axis 0 of the stacked
    projection (then Squeeze): a free channel slice. A run of tokens of each sequence
    (``x[:, :k]``, ``x[:, 1:]``): ``take_tokens``."""
    x = imp.act(node)
    rank = len(x.dims)
    stacked = rank >= 3 and x.dims[0] > 1 and x.dims[1] == 1
    axes = imp.ints(node, 3, default=[0]) if imp.opset >= 10 else None
    if axes is not None and not stacked and rank >= 3 and x.ch == rank - 1 \
            and [a % rank for a in axes] == [rank - 2]:
        _token_range(imp, node, x)
        return
    if not stacked or axes is None or [a % rank for a in axes] != [0]:
        ops.RULES["Slice"](imp, node)
        return
    starts, ends = imp.ints(node, 1) or [], imp.ints(node, 2) or []
    steps = imp.ints(node, 4, default=[1]) or [1]
    if len(starts) != 1 or len(ends) != 1 or steps != [1] \
            or not 0 <= starts[0] < x.dims[0] or min(ends[0], x.dims[0]) != starts[0] + 1:
        raise Unsupported("Slice of stacked tensors other than one of them")
    _unstack(imp, node, x, starts[0], (1, *x.dims[1:]), node.output[0])


def _token_range(imp: Importer, node: NodeProto, x: Act) -> None:
    """Slice along the tokens axis: tokens [lo, hi) of each sequence, bounds clamped as
    ONNX clamps them (``x[:, 1:]`` ends at INT64_MAX); a step other than 1 is unknown."""
    starts, ends = imp.ints(node, 1) or [], imp.ints(node, 2) or []
    steps = imp.ints(node, 4, default=[1]) or [1]
    n = x.dims[-2]
    if len(starts) != 1 or len(ends) != 1 or steps != [1]:
        raise Unsupported("Slice of the tokens with a step")
    lo, hi = (max(0, min(n, v + n if v < 0 else v)) for v in (starts[0], ends[0]))
    if hi <= lo:
        raise imp.fail(f"Slice [{lo}:{hi}] of {n} tokens keeps none", node)
    if (lo, hi) == (0, n):
        imp.alias(node, x)
        return
    place_tokens(imp, node, TakeTokens(tokens=hi - lo, start=lo), [x],
                 (*x.dims[:-2], hi - lo, x.dims[-1]))


def _squeeze(imp: Importer, node: NodeProto) -> None:
    """Squeeze of axis 0 of a (1, 1, …) tensor (a part after Split): the batch stays, one
    axis of 1 goes; any other squeeze is the image rule's."""
    x = imp.act(node)
    axes = imp.ints(node, 1, "axes")
    if axes is None or [a % len(x.dims) for a in axes] != [0] or len(x.dims) < 3 \
            or x.dims[:2] != (1, 1):
        ops.RULES["Squeeze"](imp, node)
        return
    imp.alias(node, x, x.dims[1:], x.ch - 1)


def _view(imp: Importer, node: NodeProto, x: Act, dims: tuple[int, ...], ch: int) -> None:
    """A layout change that counts nothing. Positions or heads folded into the batch axis
    are allowed only on the way to another view (the dynamo exporter's kᵀ as
    reshape(-1, n, d), transpose, reshape back): a layer reading them would count one
    image of them (Swin's windows stacked as images), so that is an unknown op."""
    if dims[0] != 1 and not _only_views(imp, node):
        raise Unsupported(f"{node.op_type} folding positions into the batch axis")
    imp.alias(node, x, dims, ch)


def _only_views(imp: Importer, node: NodeProto,
                kinds: tuple[str, ...] = ("Reshape", "Transpose")) -> bool:
    """Whether every reader of the node's output is one of ``kinds`` (no layer counts it)."""
    users = imp.consumers.get(node.output[0], [])
    return bool(users) and all(u >= 0 and imp.order[u].op_type in kinds for u in users)


def _reshape(imp: Importer, node: NodeProto) -> None:
    """Patch embedding's flatten (1, C, H·W), heads split (1, n, h, d) and merged back:
    views. Channels stay on axis 1 of an image whose spatial axes merge, otherwise they
    are the last axis."""
    v = imp.values[node.input[0]]
    folded = isinstance(v, Act) and v.dims[0] != 1  # only views read it (``_view``)
    try:
        if not folded:
            ops.RULES["Reshape"](imp, node)
            return
    except (Unsupported, ShapeError):  # (a view of rank 5 or more is no image)
        pass
    x = imp.act(node)
    dims = ops.reshape_target(imp, node, x)
    keeps_channels = x.ch == 1 and len(x.dims) >= 3 and len(dims) >= 3 and dims[1] == x.dims[1]
    _view(imp, node, x, dims, 1 if keeps_channels else len(dims) - 1)


def _transpose(imp: Importer, node: NodeProto) -> None:
    """Any permutation of a tensor's axes: the heads' and tokens' transposes; a view."""
    v = imp.values[node.input[0]]
    if isinstance(v, Act) and v.dims[0] != 1 and not _only_views(imp, node):
        raise Unsupported("Transpose of positions folded into the batch axis")
    try:
        ops.RULES["Transpose"](imp, node)
        return
    except Unsupported:
        pass
    x = imp.act(node)
    perm = [int(p) for p in attrs(node).get("perm", [])] or list(reversed(range(len(x.dims))))
    if sorted(perm) != list(range(len(x.dims))):
        raise imp.fail(f"perm {perm} is not a permutation of {len(x.dims)} axes", node)
    dims = tuple(x.dims[p] for p in perm)
    # perm[1] == 0: q, k, v stacked first (timm's permute(2, 0, 3, 1, 4)), taken apart
    if perm[0] != 0 and (x.dims[0] != 1 or perm[1] != 0
                         or not _only_views(imp, node, ("Gather", "Split", "Slice"))):
        raise Unsupported("Transpose moving the batch axis")
    imp.alias(node, x, dims, perm.index(x.ch))


def _pad(imp: Importer, node: NodeProto) -> None:
    """Constant channels appended (linear attention's v padded with ones): ``pad_channels``;
    any other pad is the image rule's (folded into the conv or pool that reads it)."""
    x = imp.act(node)
    rank = len(x.dims)
    pads = imp.ints(node, 1, "pads") or []
    mode = attrs(node).get("mode", "constant")
    axes = imp.opset >= 18 and len(node.input) > 3 and node.input[3]
    if axes or mode != "constant" or len(pads) != 2 * rank or min(pads, default=0) < 0 \
            or [i for i, p in enumerate(pads) if p] != [rank + x.ch]:
        ops.RULES["Pad"](imp, node)
        return
    imp.place(node, PadChannels(channels=pads[rank + x.ch]), [x])


# -- norms ---------------------------------------------------------------------------------

def _groupnorm(imp: Importer, node: NodeProto) -> None:
    """GroupNormalization (γ, β per channel, opset 21) and InstanceNormalization (one
    group per channel): ``groupnorm``."""
    x = imp.act(node)
    scale = imp.values.get(node.input[1])
    c = x.dims[1] if len(x.dims) >= 2 else 0
    if x.ch != 1 or not isinstance(scale, Const) or prod(scale.dims) != c:
        raise Unsupported(f"{node.op_type} with a scale not of one per channel")
    groups = c if node.op_type == "InstanceNormalization" else int(attrs(node)["num_groups"])
    imp.place(node, GroupNorm(groups=groups), [x])


RULES: dict[str, Rule] = {
    **ops.RULES,
    "MatMul": _matmul,
    "Einsum": _einsum,
    "Add": _constant_op(ops.RULES["Add"]),
    "Mul": _constant_op(ops.RULES["Mul"]),
    "Sub": _constant_op(None),
    "Div": _constant_op(None),
    "Pow": _constant_op(None),
    "Max": _constant_op(None),
    "Min": _constant_op(None),
    "Pad": _pad,
    "Concat": _concat,
    "Gather": _gather,
    "Split": _split,
    "Squeeze": _squeeze,
    "Slice": _slice,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "GroupNormalization": _groupnorm,
    "InstanceNormalization": _groupnorm,
}

"""One counting rule per ONNX operator, and the evaluation of constants.

A rule reads its node's inputs from the importer, places macscalc primitives (or makes
an alias: a reshape or permutation that keeps the image counts nothing) and raises
:class:`Unsupported` for a form it has no rule for. Constant arithmetic (shape
computations) is evaluated with numpy and counts nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from math import prod
from typing import TYPE_CHECKING, Any

from macscalc.core.errors import ShapeError, show
from macscalc.core.limits import MAX_CONST_ELEMENTS, MAX_RANK
from macscalc.lang.layers import (
    Activation,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Depthwise,
    Flatten,
    GlobalPool,
    Layer,
    LayerNorm,
    LayerScale,
    Linear,
    Mul,
    Pool,
    Shape,
    Shuffle,
    Slice,
    SpaceToDepth,
    Upsample,
)
from macscalc.models.onnx.file import array, short
from macscalc.models.onnx.proto import EXTERNAL
from macscalc.models.onnx.values import (
    Act,
    Broadcast,
    Const,
    Dead,
    Grouped,
    Padded,
    Unsupported,
    Value,
    attrs,
    readable,
    sanitize,
    scalar,
    show_dims,
)

if TYPE_CHECKING:
    from macscalc.models.onnx.context import Importer
    from macscalc.models.onnx.proto import NodeProto


# -- rules: one ONNX operator each ----------------------------------------------------------

def _window(imp: Importer, node: NodeProto) -> tuple[Act, tuple[int, int, int, int], dict]:
    """The image input of a conv or pool, with a preceding Pad folded into its pads."""
    a = attrs(node)
    v = imp.values[node.input[0]]
    extra = (0, 0, 0, 0)
    if isinstance(v, Padded):
        v, extra = v.act, v.pads
    if not isinstance(v, Act) or len(v.dims) != 4 or v.ch != 1:
        raise Unsupported(f"{node.op_type} of a tensor that is not N×C×H×W")
    pads = a.get("pads", [0, 0, 0, 0])
    if len(pads) != 4:
        raise Unsupported(f"{node.op_type} with pads {pads}")
    total = tuple(p + e for p, e in zip(pads, extra, strict=True))
    return v, total, a  # type: ignore[return-value]


AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _window_attrs(imp: Importer, node: NodeProto, a: dict, kernel: tuple[int, int] | None
                  ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """A window's kernel, strides and dilations as the node gives them, checked against
    the ONNX operator (two positive values each, a known auto_pad) and, for a conv,
    against its weight's kernel: a contradiction is the file's error, never counted."""
    k = a.get("kernel_shape", list(kernel) if kernel else None)
    if k is None:
        raise imp.fail("needs kernel_shape", node)
    out = []
    for key, v in (("kernel_shape", k), ("strides", a.get("strides", [1, 1])),
                   ("dilations", a.get("dilations", [1, 1]))):
        if not isinstance(v, list) or len(v) != 2 or any(not isinstance(x, int) or x < 1
                                                          for x in v):
            raise imp.fail(f"{key} must be two positive integers, got {show(v)}", node)
        out.append((v[0], v[1]))
    if kernel is not None and out[0] != kernel:
        raise imp.fail(f"kernel_shape {show(k)} contradicts its weight's "
                       f"{kernel[0]}×{kernel[1]} kernel", node)
    auto = a.get("auto_pad", "NOTSET")
    if auto not in AUTO_PADS:
        raise imp.fail(f"auto_pad must be one of {', '.join(AUTO_PADS)}, got {show(auto)}",
                       node)
    if any(not isinstance(p, int) or p < 0 for p in a.get("pads", [])):
        raise imp.fail(f"pads must be non-negative integers, got {show(a['pads'])}", node)
    return out[0], out[1], out[2]


def _onnx_len(n: int, k: int, s: int, d: int, begin: int, end: int, ceil: bool) -> int:
    """ONNX's (and PyTorch's) output length of one axis."""
    span = d * (k - 1) + 1
    room = n + begin + end - span
    out = (-(-room // s) if ceil else room // s) + 1
    if ceil and (out - 1) * s >= n + begin:
        out -= 1  # the last window must start inside the input or the leading pad
    return out


def _paddings(k: tuple[int, int], d: tuple[int, int], pads: tuple[int, int, int, int],
              ceil: bool) -> Iterator[str | tuple[int, int]]:
    """macscalc paddings to try for ONNX pads (top, left, bottom, right), best first:
    ``same`` when the pads are the half-kernel PyTorch writes (equal at every size)."""
    t, left, b, r = pads
    if (t, left) == (b, r):
        half = all(2 * p == di * (ki - 1) for p, ki, di in zip((t, left), k, d, strict=True))
        if half and not ceil:
            yield "same"
        yield (t, left)
        return
    yield "same"
    yield ((t + b) // 2, (left + r) // 2)
    yield ((t + b + 1) // 2, (left + r + 1) // 2)


def _placed_window(imp: Importer, node: NodeProto, x: Act, make: Callable[[Any], Layer],
                   k: tuple[int, int], s: tuple[int, int], d: tuple[int, int],
                   pads: tuple[int, int, int, int], auto: str, ceil: bool) -> None:
    h, w = x.shape.h, x.shape.w
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        choices: list[Any] = ["same"]
    elif auto == "VALID":
        choices = ["valid"]
    else:
        choices = list(_paddings(k, d, pads, ceil))
    want = ((-(-h // s[0]), -(-w // s[1])) if auto.startswith("SAME") else
            (_onnx_len(h, k[0], s[0], d[0], pads[0], pads[2], ceil),
             _onnx_len(w, k[1], s[1], d[1], pads[1], pads[3], ceil)) if auto != "VALID" else
            (_onnx_len(h, k[0], s[0], d[0], 0, 0, ceil), _onnx_len(w, k[1], s[1], d[1], 0, 0,
                                                                   ceil)))
    if min(want) <= 0:
        raise imp.fail(f"a {k[0]}×{k[1]} window with stride {s[0]} collapses a {h}×{w} input")
    for padding in choices:
        try:
            layer = make(padding)
            out = layer.out_shape((x.shape,))
        except (ValueError, ShapeError):
            continue
        if (out.h, out.w) == want:
            imp.place(node, layer, [x])
            return
    raise Unsupported(f"{node.op_type} with pads {imp.quote(list(pads), node)}")


def _kernel(imp: Importer, node: NodeProto) -> Const:
    """A conv's weight: a 4-D constant (a computed weight has no fixed cost to count)."""
    w = imp.values.get(node.input[1])
    if not isinstance(w, Const) or len(w.dims) != 4:
        raise Unsupported(f"{node.op_type} with a computed or non-2D weight")
    return w


def _conv(imp: Importer, node: NodeProto) -> None:
    x, pads, a = _window(imp, node)
    w = _kernel(imp, node)
    cout, per_group, kh, kw = w.dims
    group = int(a.get("group", 1))
    cin = x.dims[1]
    if group < 1 or per_group * group != cin:
        raise imp.fail(f"weight {show_dims(w.dims)} with group {group} does not fit {cin} input "
                       "channels", node)
    k, s, d = _window_attrs(imp, node, a, (kh, kw))
    bias = len(node.input) > 2 and bool(node.input[2])
    if group > 1 and group == cin and cout % cin == 0:
        def make(p: Any) -> Layer:
            return Depthwise(k=k, s=s, m=cout // cin, padding=p, d=d, bias=bias)
    else:
        def make(p: Any) -> Layer:
            return Conv2d(c=cout, k=k, s=s, padding=p, d=d, groups=group, bias=bias)
    _placed_window(imp, node, x, make, k, s, d, pads, a.get("auto_pad", "NOTSET"), False)


def _conv_transpose(imp: Importer, node: NodeProto) -> None:
    x, pads, a = _window(imp, node)
    w = _kernel(imp, node)
    cin, per_group, kh, kw = w.dims
    group = int(a.get("group", 1))
    k, s, d = _window_attrs(imp, node, a, (kh, kw))
    if group < 1:
        raise imp.fail(f"group must be positive, got {group}", node)
    if cin != x.dims[1] or a.get("auto_pad", "NOTSET") != "NOTSET" or "output_shape" in a \
            or pads[:2] != pads[2:]:
        raise Unsupported("ConvTranspose with auto_pad, output_shape or uneven pads")
    layer = ConvTranspose2d(c=per_group * group, k=k, s=s, padding=tuple(pads[:2]),
                            output_padding=tuple(a.get("output_padding", [0, 0])),
                            d=d, groups=group, bias=len(node.input) > 2 and bool(node.input[2]))
    imp.place(node, layer, [x])


def _pool(op: str) -> Callable[[Importer, NodeProto], None]:
    def rule(imp: Importer, node: NodeProto) -> None:
        x, pads, a = _window(imp, node)
        k, s, d = _window_attrs(imp, node, a, None)
        if d != (1, 1):
            raise Unsupported(f"{node.op_type} with dilations")
        ceil = bool(a.get("ceil_mode", 0))

        def make(p: Any) -> Layer:
            return Pool(op=op, k=k, s=s, padding=p, ceil=ceil)

        _placed_window(imp, node, x, make, k, s, (1, 1), pads, a.get("auto_pad", "NOTSET"),
                       ceil)
    return rule


def _global_pool(op: str) -> Callable[[Importer, NodeProto], None]:
    def rule(imp: Importer, node: NodeProto) -> None:
        x = imp.act(node)
        if len(x.dims) != 4:
            raise Unsupported(f"{node.op_type} of a tensor of rank {len(x.dims)}")
        imp.place(node, GlobalPool(op=op), [x])
    return rule


def _space_to_depth(imp: Importer, node: NodeProto) -> None:
    """b×b blocks of positions into channels (YOLOv2's passthrough): free."""
    x = imp.act(node)
    if len(x.dims) != 4:
        raise Unsupported(f"SpaceToDepth of a tensor of rank {len(x.dims)}")
    imp.place(node, SpaceToDepth(block=int(attrs(node)["blocksize"])), [x])


def _reduce(op: str) -> Callable[[Importer, NodeProto], None]:
    """ReduceMean/ReduceMax over all spatial axes: a global pool."""
    def rule(imp: Importer, node: NodeProto) -> None:
        x = imp.act(node)
        rank = len(x.dims)
        axes = imp.ints(node, 1, "axes")
        spatial = {i for i in range(1, rank) if i != x.ch}
        if axes is None or {a % rank for a in axes} != spatial or not spatial:
            raise Unsupported(f"{node.op_type} over axes other than the spatial ones")
        keep = bool(attrs(node).get("keepdims", 1))
        like = x if keep else Act("", (1, x.dims[x.ch]), 1)
        imp.place(node, GlobalPool(op=op), [x], like=like)
    return rule


def _act(fn: str) -> Callable[[Importer, NodeProto], None]:
    def rule(imp: Importer, node: NodeProto) -> None:
        imp.place(node, Activation(fn=fn), [imp.act(node)])
    return rule


def _clip(imp: Importer, node: NodeProto) -> None:
    a = attrs(node)
    if imp.opset >= 11:
        lo = scalar(imp.const_value(node.input[1], node)) if len(node.input) > 1 and \
            node.input[1] else None
        hi = scalar(imp.const_value(node.input[2], node)) if len(node.input) > 2 and \
            node.input[2] else None
    else:
        lo, hi = a.get("min"), a.get("max")
    if lo == 0 and hi == 6:
        fn = "relu6"
    elif lo == 0 and (hi is None or hi == float("inf")):
        fn = "relu"
    elif imp.from_external(node):
        raise Unsupported("Clip with bounds from external data")
    else:
        raise Unsupported(f"Clip({show(lo, 12)}, {show(hi, 12)})")
    imp.place(node, Activation(fn=fn), [imp.act(node)])


def _batchnorm(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    scale = imp.values.get(node.input[1])
    if x.ch != 1 or not isinstance(scale, Const) or scale.dims != (x.dims[1],):
        raise Unsupported("BatchNormalization not over the channels")
    imp.bn_nodes += 1
    imp.place(node, BatchNorm(), [x])


def _layernorm(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    axis = int(attrs(node).get("axis", -1)) % len(x.dims)
    if axis != x.ch or axis != len(x.dims) - 1 or len(node.input) < 3 or not node.input[2]:
        raise Unsupported("LayerNormalization not over the channels, or without a shift")
    imp.place(node, LayerNorm(), [x])


def _gemm(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    a = attrs(node)
    w = imp.values.get(node.input[1])
    if a.get("transA", 0) or not isinstance(w, Const) or len(w.dims) != 2 or len(x.dims) != 2:
        raise Unsupported("Gemm of a transposed, computed or non-2D operand")
    k, out = (w.dims[1], w.dims[0]) if a.get("transB", 0) else w.dims
    if k != x.dims[1]:
        raise imp.fail(f"weight {show_dims(w.dims)} does not fit {x.dims[1]} inputs", node)
    bias = len(node.input) > 2 and bool(node.input[2])
    imp.place(node, Linear(c=out, bias=bias), [x])


def matmul_out(x: Act, w: Const) -> int:
    if len(w.dims) != 2 or x.ch != len(x.dims) - 1 or w.dims[0] != x.dims[-1]:
        raise Unsupported("MatMul not of the channels by a 2-D weight")
    return w.dims[1]


def _matmul(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    w = imp.values.get(node.input[1])
    if not isinstance(w, Const):
        raise Unsupported("MatMul of two computed tensors")
    imp.place(node, Linear(c=matmul_out(x, w), bias=False), [x])


def _acts_and_consts(imp: Importer, node: NodeProto) -> tuple[list[Act], list[Const]]:
    ins = [imp.values[n] for n in node.input if n]
    acts = [v for v in ins if isinstance(v, Act)]
    consts = [v for v in ins if isinstance(v, Const)]
    if len(acts) + len(consts) != len(ins):
        raise Unsupported(f"{node.op_type} of a padded or regrouped tensor")
    return acts, consts


def _add(imp: Importer, node: NodeProto) -> None:
    acts, consts = _acts_and_consts(imp, node)
    if consts or len(acts) < 2:
        raise Unsupported(f"{node.op_type} of a constant")
    if any(a.dims != acts[0].dims for a in acts):
        raise Unsupported(f"{node.op_type} with broadcasting")
    imp.place(node, Add(), acts)


def _expand(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    dims = tuple(int(v) for v in imp.const_value(node.input[1], node).reshape(-1))
    full = tuple(max(a, b) for a, b in zip(x.dims, dims, strict=False))
    if len(dims) != len(x.dims) or full == x.dims:
        if full == x.dims and len(dims) == len(x.dims):
            imp.alias(node, x)
            return
        raise Unsupported("Expand of an image")
    if x.shape != Shape(1, 1, x.dims[x.ch]) or full[x.ch] != x.dims[x.ch]:
        raise Unsupported("Expand of an image")
    imp.values[node.output[0]] = Broadcast(x, (1, *full[1:]))


def _mul(imp: Importer, node: NodeProto) -> None:
    ins = [imp.values[n] for n in node.input]
    if len(ins) == 2 and any(isinstance(v, Broadcast) for v in ins):
        gate, x = ins if isinstance(ins[0], Broadcast) else ins[::-1]
        if not isinstance(x, Act) or not isinstance(gate, Broadcast) or x.dims != gate.dims:
            raise Unsupported("Mul of an expanded tensor")
        imp.place(node, Mul(), [x, gate.act])
        return
    acts, consts = _acts_and_consts(imp, node)
    if len(acts) == 2:
        a, b = acts
        if b.shape.numel > a.shape.numel:
            a, b = b, a
        if b.shape != a.shape and b.shape != Shape(1, 1, a.shape.c):
            raise Unsupported("Mul with broadcasting")
        imp.place(node, Mul(), [a, b])
        return
    x, c = acts[0], consts[0]
    if not per_channel(c, x) or x.shape.c == 1:
        raise Unsupported("Mul by a constant")
    imp.place(node, LayerScale(), [x])


def per_channel(c: Const, x: Act) -> bool:
    """Whether constant ``c`` broadcasts as one value per channel of ``x`` (C×1×1 against
    N×C×H×W, C against channels last)."""
    return prod(c.dims) == x.dims[x.ch] and len(c.dims) <= len(x.dims) and \
        all(d == 1 for i, d in enumerate(reversed(c.dims)) if len(x.dims) - 1 - i != x.ch)


def _concat(imp: Importer, node: NodeProto) -> None:
    acts, consts = _acts_and_consts(imp, node)
    if consts or not acts:
        raise Unsupported("Concat of images and constants")
    axis = int(attrs(node).get("axis", 1)) % len(acts[0].dims)
    if axis != acts[0].ch or any(a.ch != axis or len(a.dims) != len(acts[0].dims)
                                 for a in acts):
        raise Unsupported("Concat along a non-channel axis")
    if len(acts) == 1:
        imp.alias(node, acts[0])
        return
    imp.place(node, Concat(), acts)


def _channel_axis(imp: Importer, node: NodeProto, x: Act, axis: int) -> None:
    if axis % len(x.dims) != x.ch:
        raise Unsupported(f"{node.op_type} along a non-channel axis")


def _split(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    a = attrs(node)
    _channel_axis(imp, node, x, int(a.get("axis", 0)))
    c = x.dims[x.ch]
    n = len(node.output)
    sizes = imp.ints(node, 1, "split")
    if sizes is None:
        parts = n  # num_outputs (opset 18) must equal the outputs, checked below
        step = -(-c // parts)
        sizes = [min(step, c - i * step) for i in range(parts)]
    if len(sizes) != n or sum(sizes) != c or min(sizes) <= 0:
        raise imp.fail(f"split sizes {imp.quote(sizes, node)} do not divide {c} channels into "
                       f"{n}", node)
    base = sanitize(node.name, node.op_type) or "split"
    start = 0
    for i, (o, size) in enumerate(zip(node.output, sizes, strict=True)):
        imp.place(node, Slice(c=size, start=start), [x], name=f"{base}.{i}", out=o)
        start += size


def _slice(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    if imp.opset >= 10:
        starts, ends = imp.ints(node, 1), imp.ints(node, 2)
        axes = imp.ints(node, 3, default=list(range(len(starts or []))))
        steps = imp.ints(node, 4, default=[1] * len(starts or []))
    else:
        a = attrs(node)
        starts, ends = a.get("starts"), a.get("ends")
        axes = a.get("axes", list(range(len(starts or []))))
        steps = [1] * len(starts or [])
    assert starts is not None and ends is not None and axes is not None and steps is not None
    rank = len(x.dims)
    keep = (0, x.dims[x.ch])
    for st, en, ax, sp in zip(starts, ends, axes, steps, strict=True):
        n = x.dims[ax % rank]
        lo = max(0, min(n, st + n if st < 0 else st))
        hi = max(0, min(n, en + n if en < 0 else en))
        if (lo, hi, sp) == (0, n, 1):
            continue
        if ax % rank != x.ch or sp != 1 or hi <= lo:
            raise Unsupported("Slice of a non-channel axis")
        keep = (lo, hi)
    if keep == (0, x.dims[x.ch]):
        imp.alias(node, x)
        return
    imp.place(node, Slice(c=keep[1] - keep[0], start=keep[0]), [x])


def reshape_target(imp: Importer, node: NodeProto, x: Act) -> tuple[int, ...]:
    """The dims a Reshape of ``x`` makes (0 copies, -1 infers, the batch is 1); a count
    that differs is the file's error."""
    shape = [int(v) for v in imp.const_value(node.input[1], node).reshape(-1)]
    allow_zero = attrs(node).get("allowzero", 0)
    dims = [x.dims[i] if v == 0 and not allow_zero and i < len(x.dims) else v
            for i, v in enumerate(shape)]
    if len(dims) >= 2 and dims[0] > 1:
        dims[0] = 1  # the batch: counts are per image
    known = prod(d for d in dims if d != -1)
    total = prod(x.dims)
    if dims.count(-1) == 1 and known and total % known == 0:
        dims[dims.index(-1)] = total // known
    if any(d < 0 for d in dims) or prod(dims) != total:
        raise imp.fail(f"cannot reshape {show_dims(x.dims)} to {imp.quote(shape, node)}", node)
    return tuple(dims)


def _reshape(imp: Importer, node: NodeProto) -> None:
    v = imp.values[node.input[0]]
    if isinstance(v, Grouped):
        dims = reshape_target(imp, node, v.act)
        if not v.swapped or dims != v.act.dims:
            raise Unsupported("Reshape of regrouped channels")
        imp.place(node, Shuffle(groups=v.groups), [v.act])
        return
    x = imp.act(node)
    dims = reshape_target(imp, node, x)
    if len(x.dims) == 4 and x.ch == 1 and len(dims) == 5 and dims[3:] == x.dims[2:] \
            and dims[1] * dims[2] == x.dims[1]:
        imp.values[node.output[0]] = Grouped(x, dims[1], False)
        return
    if len(dims) == 1 and x.shape == Shape(1, 1, dims[0]):
        imp.alias(node, x, dims, 0)  # a flat vector of the channels (no batch axis)
        return
    if len(dims) == 2:
        if x.shape == Shape(1, 1, dims[1]):
            imp.alias(node, x, dims, 1)
        else:
            imp.place(node, Flatten(), [x], like=Act("", dims, 1))
        return
    if len(dims) == 4 and x.shape.h == x.shape.w == 1 and dims[1] == x.shape.c and \
            dims[2] == dims[3] == 1:
        imp.alias(node, x, dims, 1)
        return
    if dims == x.dims:
        imp.alias(node, x)
        return
    raise Unsupported("Reshape of an image to another layout")


def _transpose(imp: Importer, node: NodeProto) -> None:
    v = imp.values[node.input[0]]
    perm = [int(p) for p in attrs(node).get("perm", [])]
    if isinstance(v, Grouped):
        if perm != [0, 2, 1, 3, 4] or v.swapped:
            raise Unsupported("Transpose of regrouped channels")
        imp.values[node.output[0]] = Grouped(v.act, v.groups, True)
        return
    x = imp.act(node)
    rank = len(x.dims)
    perm = perm or list(reversed(range(rank)))
    spatial = [p for p in perm if p not in (0, x.ch)]
    if perm[0] != 0 or spatial != sorted(spatial):
        raise Unsupported("Transpose of the spatial or batch axes")
    imp.alias(node, x, tuple(x.dims[p] for p in perm), perm.index(x.ch))


def _flatten(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    if int(attrs(node).get("axis", 1)) % max(len(x.dims), 1) != 1:
        raise Unsupported("Flatten at an axis other than 1")
    imp.place(node, Flatten(), [x], like=Act("", (1, x.shape.numel), 1))


def _squeeze(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    rank = len(x.dims)
    axes = imp.ints(node, 1, "axes")
    drop = {a % rank for a in axes} if axes else {i for i, d in enumerate(x.dims) if d == 1}
    drop.discard(0)
    if x.ch in drop or any(x.dims[a] != 1 for a in drop):
        raise Unsupported("Squeeze of the channel axis")
    keep = [i for i in range(rank) if i not in drop]
    imp.alias(node, x, tuple(x.dims[i] for i in keep), keep.index(x.ch))


def _unsqueeze(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    axes = imp.ints(node, 1, "axes")
    rank = len(x.dims) + len(axes or [])
    new = sorted(a % rank for a in axes or [])
    dims, ch, j = [], 0, 0
    for i in range(rank):
        if i in new:
            dims.append(1)
        else:
            if j == x.ch:
                ch = i
            dims.append(x.dims[j])
            j += 1
    if 0 in new:
        raise Unsupported("Unsqueeze before the batch axis")
    result = Act(x.ref, tuple(dims), ch)
    try:
        same = result.shape == x.shape
    except ShapeError:
        same = False
    if not same:
        raise Unsupported("Unsqueeze that changes the image layout")
    imp.alias(node, x, result.dims, ch)


def _gather(imp: Importer, node: NodeProto) -> None:
    """Gathering every channel once (the dynamo exporter's as_strided of a 1×1×C vector):
    a permutation, free; any other gather of an image has no rule."""
    import numpy as np

    x = imp.act(node)
    axis = int(attrs(node).get("axis", 0)) % len(x.dims)
    idx = np.asarray(imp.const_value(node.input[1], node))
    n = x.dims[axis]
    if axis != x.ch or sorted(idx.reshape(-1) % n) != list(range(n)):
        raise Unsupported("Gather of an image's elements")
    dims = (*x.dims[:axis], *idx.shape, *x.dims[axis + 1:])
    big = [i for i, d in enumerate(idx.shape) if d == n]
    if n > 1 and len(big) != 1:
        raise Unsupported("Gather of an image's elements")
    ch = axis + (big[0] if big else 0)
    result = Act(x.ref, dims, ch)
    if result.shape != x.shape:
        raise Unsupported("Gather of an image's elements")
    imp.alias(node, x, dims, ch)


def _identity(imp: Importer, node: NodeProto) -> None:
    v = imp.values[node.input[0]]
    if isinstance(v, Act):
        imp.alias(node, v)
    else:
        imp.values[node.output[0]] = v
    for o in node.output[1:]:  # Dropout's mask
        imp.values[o] = Dead()


def _pad(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    pads = imp.ints(node, 1, "pads")
    if imp.opset >= 18 and len(node.input) > 3 and node.input[3]:
        raise Unsupported("Pad with axes")
    if pads is None or len(pads) != 8 or len(x.dims) != 4 or x.ch != 1:
        raise Unsupported("Pad of a tensor that is not N×C×H×W")
    if any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
        raise Unsupported("Pad of the batch or channel axis")
    if not any(pads):
        imp.alias(node, x)
        return
    users = [imp.order[i].op_type for i in imp.consumers.get(node.output[0], []) if i >= 0]
    if not users or any(u not in ("Conv", "AveragePool", "MaxPool") for u in users):
        raise Unsupported("Pad not followed by a conv or pool")
    imp.values[node.output[0]] = Padded(x, (pads[2], pads[3], pads[6], pads[7]))


def _resize(imp: Importer, node: NodeProto) -> None:
    x = imp.act(node)
    a = attrs(node)
    mode = a.get("mode", "nearest")
    if mode not in ("nearest", "linear") or len(x.dims) != 4 or x.ch != 1:
        raise Unsupported(f"Resize ({short(mode, 16)})")
    scale_at = 1 if node.op_type == "Upsample" or imp.opset < 11 else 2
    scales = (imp.const_value(node.input[scale_at], node).reshape(-1).tolist()
              if len(node.input) > scale_at and node.input[scale_at] else [])
    sizes = imp.ints(node, 3) if scale_at == 2 else None
    if sizes:
        h, w = sizes[2], sizes[3]
    elif len(scales) == 4:
        h, w = int(x.dims[2] * scales[2]), int(x.dims[3] * scales[3])
    else:
        raise Unsupported("Resize without scales or sizes")
    fn = "bilinear" if mode == "linear" else "nearest"
    if h == x.dims[2] * (h // x.dims[2]) and h // x.dims[2] == w // x.dims[3] and \
            w == x.dims[3] * (w // x.dims[3]) and h >= x.dims[2]:
        layer = Upsample(scale=h // x.dims[2], mode=fn)
    else:
        layer = Upsample(size=(h, w), mode=fn)
    imp.place(node, layer, [x])


RULES: dict[str, Callable[[Importer, NodeProto], None]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Relu": _act("relu"),
    "Clip": _clip,
    "HardSwish": _act("hswish"),
    "HardSigmoid": _act("hsigmoid"),
    "Sigmoid": _act("sigmoid"),
    "Gelu": _act("gelu"),
    "Tanh": _act("tanh"),
    "LeakyRelu": _act("leaky_relu"),
    "Mish": _act("mish"),
    "Softmax": _act("softmax"),
    "LogSoftmax": _act("softmax"),
    "Add": _add,
    "Sum": _add,
    "Mul": _mul,
    "Concat": _concat,
    "Split": _split,
    "Slice": _slice,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Flatten": _flatten,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "GlobalAveragePool": _global_pool("avg"),
    "SpaceToDepth": _space_to_depth,
    "GlobalMaxPool": _global_pool("max"),
    "ReduceMean": _reduce("avg"),
    "ReduceMax": _reduce("max"),
    "AveragePool": _pool("avg"),
    "MaxPool": _pool("max"),
    "Identity": _identity,
    "Gather": _gather,
    "Expand": _expand,
    "Dropout": _identity,
    "Cast": _identity,
    "Pad": _pad,
    "Resize": _resize,
    "Upsample": _resize,
}



# -- constants: evaluated, never counted ----------------------------------------------------

def _const_eval(fn: Callable[..., Any]) -> Callable[[Importer, NodeProto], list[Value]]:
    """A rule computing an op's outputs from its constant inputs' values with numpy."""
    def rule(imp: Importer, node: NodeProto) -> list[Value]:
        import numpy as np

        args = [imp.const_value(n, node) if n else None for n in node.input]
        try:
            if _out_size(np, node.op_type, args) > MAX_CONST_ELEMENTS:
                raise imp.fail(f"constant arithmetic would make a tensor over "
                               f"{MAX_CONST_ELEMENTS:,} elements", node)
            out = fn(np, attrs(node), imp.opset, *args)
        except (ValueError, TypeError, IndexError, ZeroDivisionError, MemoryError,
                OverflowError) as e:
            raise imp.fail(f"cannot evaluate on constants: {type(e).__name__}", node) \
                from None
        outs = out if isinstance(out, list) else [out]
        return [Const(tuple(arr.shape), arr) for arr in map(np.asarray, outs)]
    return rule


def _out_size(np: Any, op: str, args: list[Any]) -> int:
    """The elements an op on constants makes, sized before anything is allocated: ops
    whose output may be larger than their inputs (a shape given as values, broadcasting,
    a range, a gather) are sized from their arguments; the rest make at most what they
    read."""
    from math import ceil

    xs = [np.asarray(x) for x in args if x is not None]
    if op == "ConstantOfShape":
        dims = [int(v) for v in xs[0].reshape(-1)] if xs[0].size <= MAX_RANK else [-1]
        return prod(dims) if min(dims, default=0) >= 0 else MAX_CONST_ELEMENTS + 1
    if op == "Expand":
        if xs[1].size > MAX_RANK:
            return MAX_CONST_ELEMENTS + 1
        return prod(np.broadcast_shapes(xs[0].shape, tuple(int(v) for v in xs[1].reshape(-1))))
    if op == "Range":
        start, limit, delta = (float(x.reshape(-1)[0]) for x in xs)
        return max(0, ceil((limit - start) / delta)) if delta else MAX_CONST_ELEMENTS + 1
    if op == "Gather":
        return xs[1].size * (xs[0].size // max(xs[0].shape[0] if xs[0].ndim else 1, 1))
    if op in ("Add", "Sub", "Mul", "Div", "Min", "Max", "Equal", "Where"):
        return prod(np.broadcast_shapes(*(x.shape for x in xs)))
    return sum(x.size for x in xs)


def _shape(imp: Importer, node: NodeProto) -> list[Value]:
    import numpy as np

    v = imp.values[node.input[0]]
    dims = v.act.dims if isinstance(v, Padded) else getattr(v, "dims", None)
    if dims is None or isinstance(v, Grouped):
        raise Unsupported("Shape of a regrouped tensor")
    a = attrs(node)
    dims = dims[a.get("start", 0): a.get("end", len(dims))]
    return [Const((len(dims),), np.array(dims, dtype=np.int64))]


def _moved(fn: Callable[..., Any]) -> Callable[[Importer, NodeProto], list[Value]]:
    """Identity, Cast or Transpose: evaluated on a small constant; on a weight whose
    values are not read (the dynamo exporter's transposed linear weights), dims only."""
    evaluate = _const_eval(fn)

    def rule(imp: Importer, node: NodeProto) -> list[Value]:
        v = imp.values[node.input[0]]
        assert isinstance(v, Const)
        if readable(v):
            return evaluate(imp, node)
        perm = attrs(node).get("perm") or list(reversed(range(len(v.dims))))
        dims = tuple(v.dims[p] for p in perm) if node.op_type == "Transpose" else v.dims
        return [Const(dims, None)]
    return rule


def _axes(a: dict, op: int, given: Any, key: str = "axes") -> list[int]:
    if given is not None:
        return [int(v) for v in given.reshape(-1)]
    return list(a.get(key, []))


def _slice_eval(np: Any, a: dict, op: int, x: Any, starts: Any = None, ends: Any = None,
                axes: Any = None, steps: Any = None) -> Any:
    if op < 10:
        starts, ends = np.array(a["starts"]), np.array(a["ends"])
        axes = np.array(a.get("axes", range(len(starts))))
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        index[int(ax)] = slice(int(s), int(e), int(st))
    return x[tuple(index)]


def _div(np: Any, a: dict, op: int, x: Any, y: Any) -> Any:
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        return (np.trunc(np.asarray(x) / np.asarray(y))).astype(np.asarray(x).dtype)
    return np.asarray(x) / y


_CAST: dict[int, str] = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64",
                         9: "bool", 10: "float16", 11: "float64"}

CONST_OPS: dict[str, Callable[[Importer, NodeProto], list[Value]]] = {
    "Shape": _shape,
    "Identity": _moved(lambda np, a, op, x: x),
    "Cast": _moved(lambda np, a, op, x: np.asarray(x).astype(_CAST.get(a.get("to"), "float32"))),
    "Constant": _const_eval(lambda np, a, op: _constant(np, a)),
    "ConstantOfShape": _const_eval(lambda np, a, op, s: np.full(
        [int(v) for v in s.reshape(-1)], _constant(np, a) if a else 0.0)),
    "Gather": _const_eval(lambda np, a, op, x, i: np.take(x, i, axis=a.get("axis", 0))),
    "Unsqueeze": _const_eval(lambda np, a, op, x, ax=None: np.expand_dims(
        x, tuple(_axes(a, op, ax)))),
    "Squeeze": _const_eval(lambda np, a, op, x, ax=None: np.squeeze(
        x, tuple(_axes(a, op, ax))) if _axes(a, op, ax) else np.squeeze(x)),
    "Concat": _const_eval(lambda np, a, op, *xs: np.concatenate(
        [np.atleast_1d(x) for x in xs], axis=a.get("axis", 0))),
    "Slice": _const_eval(_slice_eval),
    "Reshape": _const_eval(lambda np, a, op, x, s: np.reshape(
        x, [x.shape[i] if v == 0 else int(v) for i, v in enumerate(s.reshape(-1))])),
    "Add": _const_eval(lambda np, a, op, x, y: np.asarray(x) + y),
    "Sub": _const_eval(lambda np, a, op, x, y: np.asarray(x) - y),
    "Mul": _const_eval(lambda np, a, op, x, y: np.asarray(x) * y),
    "Div": _const_eval(_div),
    "Neg": _const_eval(lambda np, a, op, x: -np.asarray(x)),
    "Floor": _const_eval(lambda np, a, op, x: np.floor(x)),
    "Ceil": _const_eval(lambda np, a, op, x: np.ceil(x)),
    "Sqrt": _const_eval(lambda np, a, op, x: np.sqrt(x)),
    "Min": _const_eval(lambda np, a, op, *xs: np.minimum.reduce(xs)),
    "Max": _const_eval(lambda np, a, op, *xs: np.maximum.reduce(xs)),
    "Equal": _const_eval(lambda np, a, op, x, y: np.equal(x, y)),
    "Where": _const_eval(lambda np, a, op, c, x, y: np.where(c, x, y)),
    "Range": _const_eval(lambda np, a, op, s, e, d: np.arange(s, e, d)),
    "Expand": _const_eval(lambda np, a, op, x, s: np.asarray(x) * np.ones(
        [int(v) for v in s.reshape(-1)], dtype=np.asarray(x).dtype)),
    "Transpose": _moved(lambda np, a, op, x: np.transpose(x, a.get("perm"))),
    "ReduceProd": _const_eval(lambda np, a, op, x, *r: np.prod(x)),
}


def _constant(np: Any, a: dict) -> Any:
    if "value" in a:
        if a["value"].data_location == EXTERNAL:  # read only by file.values
            raise ValueError("a Constant node's value in external data")
        return array(a["value"])
    for key in ("value_float", "value_int"):
        if key in a:
            return np.array(a[key])
    for key in ("value_floats", "value_ints"):
        if key in a:
            return np.array(a[key])
    raise ValueError("unsupported Constant")

"""The kernels a runtime runs for a placed network, and the work and traffic of each.

Why: latency follows what the hardware executes, not the spec's rows. A runtime fuses
batch norm, most activations and a residual add into the convolution before them (a ReLU
is free there; any other activation is a pass of its own over the conv's output), runs
what is left as kernels of their own, and (onnxruntime on x86) converts tensors between
its blocked conv layout and plain NCHW wherever a layer outside the blocked set (split,
slice, channel shuffle, the SE product, FC, layer norm, a conv it cannot block, ...)
meets one inside it. Each kernel here carries quantities that mean the same in every
family: its MACs by class (1×1, dense k×k, grouped, depthwise, FC), its depthwise
channel planes, the activation bytes it reads and writes, the weight bytes it streams
(at the runtime's dtype), the bytes that come from memory rather than cache (weights
past the first 8 MiB a network streams, and every tensor past 8 MiB it reads or writes,
again), and the elements that go through an exponential (swish, sigmoid, GELU, ...) and
that a resize writes. The rules follow onnxruntime's CPU graph optimisations (checked
against its own profiling of the exported built-ins).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from macscalc.lang.graph import Network, Node
from macscalc.lang.layers import Shape

DTYPE_BYTES = 4  # the runtime computes in float32
FUSED_ACTS = frozenset({"relu", "relu6", "hswish", "hsigmoid", "sigmoid", "leaky_relu", "tanh"})
# the one activation a conv applies in registers; any other fused one costs a pass over the
# output (ReLU6: 14 % of MobileNet V2's time here, h-swish 7 % of V3-Large's)
IN_REGISTERS = frozenset({"relu"})
EXP_ACTS = frozenset({"swish", "sigmoid", "gelu", "mish", "softmax", "tanh"})
FREE = frozenset({"dropout", "flatten"})  # no work at inference (views)
CONVS = frozenset({"conv2d", "depthwise", "linear", "conv_transpose"})
# kinds that run in the blocked layout, so no conversion between them
BLOCKED = frozenset({"conv2d", "depthwise", "conv_transpose", "pool", "global_pool", "add",
                     "concat", "act", "batchnorm", "upsample"})
CACHED_BYTES = 8 * 2**20  # weights past this much, and tensors bigger, come from memory
BLOCK = 8  # channels in a block of onnxruntime's layout (MLAS on AVX2)
ALIGN = 4  # a conv's channels must be a multiple of this for it to run blocked


def uncached(shape: Shape) -> bool:
    """Whether a tensor is too big for the caches: its reads and writes come from memory."""
    return too_big(DTYPE_BYTES * shape.h * shape.w * shape.c)


def too_big(nbytes: Any) -> Any:
    """``uncached`` by size (a number, or an array of them for a sweep)."""
    return nbytes > CACHED_BYTES


def is_depthwise(node: Node) -> bool:
    layer = node.layer
    if layer.kind == "depthwise":
        return True
    return layer.kind == "conv2d" and 1 < layer.groups == node.in_shapes[0].c


def work_class(node: Node) -> str | None:
    """What kind of MACs a node does: ``conv1x1``, dense k×k ``conv``, ``group``ed, ``dw``
    (depthwise) or ``fc``; None for a node without MACs."""
    layer = node.layer
    if layer.kind == "linear":
        return "fc"
    if is_depthwise(node):
        return "dw"
    if layer.kind in ("conv2d", "conv_transpose"):
        if getattr(layer, "groups", 1) > 1:
            return "group"
        return "conv1x1" if tuple(layer.k) == (1, 1) else "conv"
    return None


class Kernel(NamedTuple):
    """One kernel the runtime runs: the nodes fused into it (the first launches it) and
    its features, by name (``macs_<class>``, ``dw_planes``, ``bytes``, ``wbytes``, ``dram``,
    ``exp``)."""

    nodes: tuple[str, ...]
    what: str  # the first node's kind, or ``reorder`` for a layout conversion
    features: dict[str, Any]  # numbers, or a sweep's coefficients (``kernels``' area)


Spill = Callable[[str, Shape, int], bool]  # (tensor, its shape, times its bytes count)
# (a blocked k×k conv, its work class, its MACs per output position and kernel row) → the
# MACs it skips because their kernel row reads padding (``padded_rows``)
Clip = Callable[[Node, str, int], Any]


def padded_rows(layer: Any, h_in: Any, h_out: Any) -> Any:
    """How many (output row, kernel row) pairs of a conv read a padding row: onnxruntime's
    blocked conv skips them, though not padding columns (a 3×3 conv dilated 18 over a
    65×65 map takes 0.83 of its undilated time, about the share of its kernel rows
    inside the input; ``benchmarks/kernel_costs.py``). Heights may be numbers or numpy
    arrays (a sweep's points)."""
    k, s, d = layer.k[0], layer.s[0], layer.d[0]
    if layer.padding == "same":  # TF: the extra row of an odd total goes at the bottom
        top = _at_least_0((h_out - 1) * s + d * (k - 1) + 1 - h_in) // 2
    else:
        top = 0 if layer.padding == "valid" else layer.padding[0]
    total = 0
    for i in range(k):
        off = i * d - top  # kernel row i of output row y reads input row y·s + off
        above = _clamp(-(off // s), h_out)  # y·s + off < 0
        below = h_out - _clamp(-((off - h_in) // s), h_out)  # y·s + off ≥ h_in
        total = total + above + below
    return total


def _at_least_0(x: Any) -> Any:
    return x * (x > 0)


def _clamp(x: Any, most: Any) -> Any:
    """x within [0, most], for numbers and numpy arrays alike."""
    x = _at_least_0(x)
    return x - (x - most) * (x > most)


def _clipped(n: Node, cls: str, per_row: int) -> int:
    """``kernels``' default: the MACs a blocked k×k conv skips, exactly."""
    return per_row * n.out.w * padded_rows(n.layer, n.in_shapes[0].h, n.out.h)


def _by_size(name: str, shape: Shape, times: int) -> bool:
    """``kernels``' default spill: a tensor's bytes come from memory when it is uncached."""
    return uncached(shape)


def kernels(network: Network, area: Callable[[str], Any] | None = None,
            one: Any = 1, spill: Spill | None = None,
            clip: Clip | None = None) -> list[Kernel]:
    """The network as the runtime runs it, in order (layout conversions where they occur).

    Every feature is a sum of per-position amounts times a tensor's area (h·w), and of
    constants (weights): ``area(tensor name)`` and ``one`` may stand for those, so that a
    sweep gets each feature as coefficients of its resolution-dependent areas. A tensor's
    bytes come from memory as well when ``spill`` says so (by default when the tensor
    is ``uncached``); the one term that is not linear in the areas, so a sweep passes a
    ``spill`` that notes each such tensor and adds its cost point by point, and likewise
    a ``clip`` for the MACs a blocked k×k conv skips (``padded_rows``)."""
    nodes = network.nodes
    if area is None:
        areas = {"input": network.input.h * network.input.w,
                 **{n.name: n.out.h * n.out.w for n in nodes}}
        area = areas.__getitem__
    spill = spill or _by_size
    clip = clip or _clipped
    consumers: dict[str, int] = {}
    for n in nodes:
        for i in n.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    out: list[Kernel] = []
    owner: dict[str, int] = {}  # tensor → index of the kernel that writes it
    alias: dict[str, str] = {}  # a free node's output → the tensor it views
    tail: dict[str, bool] = {}  # conv-kernel output → whether it can no longer fuse an add
    reordered: set[str] = set()
    split: dict[str, int] = {}  # a sliced tensor → the kernel splitting it
    streamed = 0  # weight bytes of the kernels so far

    def source(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def blocked(name: str) -> bool:
        k = owner.get(source(name))
        return k is not None and out[k].what in BLOCKED

    def numel(name: str, shape: Shape) -> Any:
        return shape.c * area(name)

    def reorder(name: str, shape: Shape) -> None:
        key = source(name)
        if key in reordered or (key not in owner and key != "input"):
            return
        reordered.add(key)
        f = {"rbytes": 2 * DTYPE_BYTES * numel(name, shape)}
        if spill(name, shape, 2):
            f["dram"] = f["rbytes"]
        out.append(Kernel((key,), "reorder", f))

    def runs_plain(n: Node) -> bool:
        """Whether onnxruntime runs a layer of a blocked kind in plain layout (as its
        profile shows): a depthwise conv with a multiplier or with channels not a
        multiple of ALIGN (ShuffleNet V2 1.0×'s 58-channel branches, MicroNet's); a dense
        conv with a block or more of input channels not a multiple of ALIGN; a concat of
        plain-layout inputs; a resize unless of a blocked tensor by whole factors (nearest
        or bilinear: DeepLab's image pooling, a ×2 after a conv stay blocked; LR-ASPP's ×2
        of a broadcast product, 65 → 513 do not)."""
        if is_depthwise(n):
            return n.out.c != n.in_shapes[0].c or n.out.c % ALIGN != 0
        if n.layer.kind == "conv2d" and n.layer.groups == 1:
            return n.in_shapes[0].c >= BLOCK and n.in_shapes[0].c % ALIGN != 0
        if n.layer.kind == "concat":
            return not all(blocked(i) for i in n.inputs)
        if n.layer.kind == "upsample":
            x, y = n.in_shapes[0], n.out
            return not (blocked(n.inputs[0]) and y.h % x.h == 0 and y.w % x.w == 0)
        return False

    def tensors(n: Node) -> list[tuple[str, Shape]]:
        return [*zip(n.inputs, n.in_shapes, strict=True), (n.name, n.out)]

    def sizes(n: Node) -> Any:
        return sum(numel(name, s) for name, s in tensors(n))

    def one_more(f: dict[str, Any], n: Node) -> None:
        """A kernel that also writes (a fused add, another slice) ``n``'s output."""
        f["bytes"] = f.get("bytes", 0) + DTYPE_BYTES * numel(n.name, n.out)
        if spill(n.name, n.out, 1):
            f["dram"] = f.get("dram", 0) + DTYPE_BYTES * numel(n.name, n.out)

    for n in nodes:
        kind = n.layer.kind
        if kind in FREE:
            alias[n.name] = n.inputs[0]
            continue
        src = [source(i) for i in n.inputs]
        single = len(n.inputs) == 1 and consumers.get(n.inputs[0], 0) == 1 and src[0] in tail
        if single and (kind == "batchnorm" or (kind == "act" and n.layer.fn in FUSED_ACTS)):
            k = owner[src[0]]
            f = dict(out[k].features)
            if kind == "act" and n.layer.fn not in IN_REGISTERS:
                # a pass of its own over each block of the output as the conv writes it:
                # it reads and writes the block again while it is in cache
                f["bytes"] = f.get("bytes", 0) + 2 * DTYPE_BYTES * numel(n.name, n.out)
                if n.layer.fn in EXP_ACTS:
                    f["exp"] = f.get("exp", 0) + numel(n.name, n.out)
            out[k] = Kernel((*out[k].nodes, n.name), out[k].what, f)
            owner[n.name] = k
            # a conv that fused an activation fuses no add after it (onnxruntime's
            # NchwcTransformer fuses a Sum only into a conv without an activation)
            tail[n.name] = tail.pop(src[0]) or kind == "act"
            continue
        if kind == "add":
            fused = [s for s in src if s in tail and not tail[s] and consumers.get(s, 0) == 1]
            if fused and all(blocked(s) for s in src):
                k = owner[fused[0]]
                f = dict(out[k].features)
                one_more(f, n)
                out[k] = Kernel((*out[k].nodes, n.name), out[k].what, f)
                owner[n.name] = k
                tail.pop(fused[0])
                tail[n.name] = True
                continue
        if kind == "slice" and src[0] in split:
            # slices of one tensor run as one Split kernel: it reads the input once
            k = split[src[0]]
            f = dict(out[k].features)
            one_more(f, n)
            out[k] = Kernel((*out[k].nodes, n.name), out[k].what, f)
            owner[n.name] = k
            continue
        what = f"{kind} (plain)" if runs_plain(n) else kind
        if what in BLOCKED:
            for name, shape in zip(n.inputs, n.in_shapes, strict=True):
                # a dense conv reads a plain tensor narrower than a block directly (an
                # image); any other plain input is converted
                direct = kind == "conv2d" and n.layer.groups == 1 and shape.c < BLOCK
                if not (blocked(name) or direct):
                    reorder(name, shape)
        else:
            for name, shape in zip(n.inputs, n.in_shapes, strict=True):
                if blocked(name):
                    reorder(name, shape)
        f: dict[str, Any] = {}
        if kind == "shuffle":
            f["launches"] = 3  # reshape, transpose, reshape
        if kind == "shiftmax":
            f.update(_shiftmax(n.layer.j, n.layer.k, DTYPE_BYTES * numel(n.name, n.out)))
        cls = work_class(n)
        if kind == "matmul":
            # q·kᵀ and attn·v: a batched matrix product, at the 1×1 (GEMM) rate; its MACs
            # grow with the square of the tokens, so only a count follows them (a sweep
            # refuses token models)
            f["macs_conv1x1"] = n.layer.macs(n.in_shapes, n.out)
            f["bytes"] = DTYPE_BYTES * sizes(n)
        elif cls is not None:
            # MACs per output position (per input position for a transposed conv)
            per = n.layer.macs([Shape(1, 1, x.c) for x in n.in_shapes], Shape(1, 1, n.out.c))
            f[f"macs_{cls}"] = per * area(n.inputs[0] if kind == "conv_transpose" else n.name)
            if kind in ("conv2d", "depthwise") and n.layer.k[0] > 1 and what in BLOCKED:
                f[f"macs_{cls}"] = f[f"macs_{cls}"] - clip(n, cls, per // n.layer.k[0])
            f["bytes"] = DTYPE_BYTES * sizes(n)
            weights = DTYPE_BYTES * n.layer.params(n.in_shapes).weights
            # a network streams all its weights once per inference, more than its caches
            # keep between inferences: those past its first CACHED_BYTES come from memory
            # (MobileNet V2's last 5 MB, AlexNet's FC layers, most of VGG's)
            cached = min(weights, max(0, CACHED_BYTES - streamed))
            streamed += weights
            f["wbytes"] = one * cached
            if weights > cached:
                f["dram"] = one * (weights - cached)
            if cls == "dw" and what not in BLOCKED:
                # in plain layout a depthwise conv runs through im2col and a GEMM of one
                # row a channel: each MAC reads an input element copied for it
                f["rbytes"] = 2 * DTYPE_BYTES * f["macs_dw"]
            elif cls == "dw":
                f["dw_planes"] = one * n.out.c
        else:
            f["bytes"] = f.get("bytes", 0) + DTYPE_BYTES * sizes(n)
            if kind == "act" and n.layer.fn in EXP_ACTS:
                f["exp"] = numel(n.name, n.out)
            if kind == "upsample":  # nearest or bilinear: ~1 ns an element either way
                f["resize"] = numel(n.name, n.out)
        # the tensors too big for the caches (LR-ASPP's at 1024×2048): their bytes are
        # read or written once more, at the memory rate
        spilled = [(name, s) for name, s in tensors(n) if spill(name, s, 1)] \
            if "bytes" in f else []
        if spilled:
            f["dram"] = f.get("dram", 0) + DTYPE_BYTES * sum(numel(*t) for t in spilled)
        out.append(Kernel((n.name,), what, f))
        owner[n.name] = len(out) - 1
        if kind == "slice":
            split[src[0]] = len(out) - 1
        if kind in CONVS:
            tail[n.name] = False
    if nodes and blocked(nodes[-1].name):
        reorder(nodes[-1].name, nodes[-1].out)  # the output leaves in plain layout
    return out


def _shiftmax(j: int, k: int, out_bytes: Any) -> dict[str, Any]:
    """Dynamic Shift-Max as the runtime runs it: J−1 channel gathers, J·K coefficient
    slices and products, (J−1)·K sums and a maximum over K, each a kernel of its own
    reading and writing a tensor of the output's size (beside the node's own bytes)."""
    launches = (j - 1) + 2 * j * k + (j - 1) * k + (k > 1)
    passes = 2 * (j - 1) + 2 * j * k + 3 * (j - 1) * k + (k + 1) * (k > 1)
    return {"launches": launches, "bytes": passes * out_bytes}

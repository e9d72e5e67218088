"""The kernels a runtime runs for a placed network, and the work and traffic of each.

Why: latency follows what the hardware executes, not the spec's rows. A runtime fuses
batch norm, most activations and a residual add into the convolution before them (a ReLU
is free there; any other activation is a pass of its own over the conv's output), runs
what is left as kernels of their own, and (onnxruntime on x86) converts tensors between
its blocked conv layout and plain NCHW wherever a layer it runs plain (split, slice,
channel shuffle, the SE product, FC, layer norm, a conv it cannot block, ...) meets one
it runs blocked. Each kernel here carries quantities that mean the same in every family:
its MACs by class (1×1 and grouped 1×1, dense k×k, grouped k×k, depthwise, FC, and a 1×1
conv reading a narrow plain input directly), its depthwise channel planes and the
channel planes a plain kernel steps through one by one, the elements a plain conv
strided along the width copies one by one into its im2col columns, the
activation bytes a conv or FC reads and writes, the bytes a memory-bound kernel streams
(a layout conversion, an unfused element-wise op, a copy, a pool, a plain conv's packing
of its input matrix), the weight bytes it
streams (at the runtime's dtype), the bytes that come from memory rather than cache
(weights past the first 8 MiB a network streams, and every tensor past 8 MiB it reads
or writes, again), and the elements that go through an exponential (swish, sigmoid,
GELU, ...) and that a resize writes. The rules follow onnxruntime's NchwcTransformer:
its blocked layout holds ``block`` channels a block (MLAS: 16 with AVX-512, 8 with
AVX2), a blocked conv computes whole blocks of channels (one to 24 channels takes as
long as one to 32 with blocks of 16), and which layers it blocks depends on the block;
on this machine the conversions placed equal those in the graphs onnxruntime 1.32 writes
for 68 of the 70 built-ins (``benchmarks/ort_layout.py``). A runtime that keeps one
channels-last layout throughout (TFLite and LiteRT with XNNPACK: ``block`` NHWC) blocks,
pads and converts nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from macscalc.lang.graph import Network, Node
from macscalc.lang.layers import Shape
from macscalc.lang.tokens import Tokens

DTYPE_BYTES = 4  # the runtime computes in float32
FUSED_ACTS = frozenset({"relu", "relu6", "hswish", "hsigmoid", "sigmoid", "leaky_relu", "tanh"})
# the one activation a conv applies in registers; any other fused one costs a pass over the
# output (ReLU6: 14 % of MobileNet V2's time here, h-swish 7 % of V3-Large's)
IN_REGISTERS = frozenset({"relu"})
EXP_ACTS = frozenset({"swish", "sigmoid", "gelu", "mish", "softmax", "tanh"})
FREE = frozenset({"dropout", "flatten"})  # no work at inference (views)
CONVS = frozenset({"conv2d", "depthwise", "linear", "conv_transpose"})
PLAIN_CONVS = frozenset({"conv2d (plain)", "depthwise (plain)"})
# kinds that run in the blocked layout, so no conversion between them
BLOCKED = frozenset({"conv2d", "depthwise", "conv_transpose", "pool", "global_pool", "add",
                     "mul", "concat", "act", "batchnorm", "upsample"})
CACHED_BYTES = 8 * 2**20  # weights past this much, and tensors bigger, come from memory
# channels in a block of onnxruntime's layout: MLAS's with AVX-512 (this machine's and the
# built-in profile's), and with AVX2 only
BLOCK, AVX2_BLOCK = 16, 8
ALIGN = 4  # a conv's channels must be a multiple of this for it to run blocked
MAX_BLOCK = 64  # the most channels a layout block a profile may give
NHWC = 0  # the layout block of a runtime without one: channels-last throughout (TFLite)


def padded(c: int, block: int) -> int:
    """Channels as the blocked layout holds them: whole blocks (24 → 32 with blocks of 16,
    and a conv to 24 channels takes as long as one to 32)."""
    return c if block == NHWC else -(-c // block) * block


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
    """What kind of MACs a node does: ``conv1x1`` (grouped or not: a grouped 1×1 runs as
    dense ones per group, ShuffleNet V1's at the 1×1 rate), dense k×k ``conv``, grouped
    k×k ``group``, ``dw`` (depthwise) or ``fc``; None for a node without MACs."""
    layer = node.layer
    if layer.kind == "linear":
        return "fc"
    if is_depthwise(node):
        return "dw"
    if layer.kind in ("conv2d", "conv_transpose"):
        if tuple(layer.k) == (1, 1):
            return "conv1x1"
        return "group" if getattr(layer, "groups", 1) > 1 else "conv"
    return None


def gemm_of_image(node: Node) -> bool:
    """Whether a linear layer reads a 1×1 image, so that it exports as a Gemm between a
    flatten and a reshape (a classifier, MicroNet's and squeeze-excite's FC layers)."""
    x = node.in_shapes[0]
    return (x.h, x.w) == (1, 1) and not isinstance(x, Tokens)


class Kernel(NamedTuple):
    """One kernel the runtime runs: the nodes fused into it (the first launches it) and
    its features, by name (``macs_<class>``, ``dw_planes``, ``planes``, ``strided``,
    ``bytes``, ``pbytes``, ``wbytes``, ``dram``, ``exp``, ``resize``, ``launches``)."""

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
            clip: Clip | None = None, block: int = BLOCK) -> list[Kernel]:
    """The network as the runtime runs it, in order (layout conversions where they occur).

    Every feature is a sum of per-position amounts times a tensor's area (h·w), and of
    constants (weights): ``area(tensor name)`` and ``one`` may stand for those, so that a
    sweep gets each feature as coefficients of its resolution-dependent areas. A tensor's
    bytes come from memory as well when ``spill`` says so (by default when the tensor
    is ``uncached``); the one term that is not linear in the areas, so a sweep passes a
    ``spill`` that notes each such tensor and adds its cost point by point, and likewise
    a ``clip`` for the MACs a blocked k×k conv skips (``padded_rows``). ``block``: the
    runtime's channels per block (the device profile's ``layout_block``)."""
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

    def numel(name: str, shape: Shape, pad: bool = False) -> Any:
        return (padded(shape.c, block) if pad else shape.c) * area(name)

    def reorder(name: str, shape: Shape) -> None:
        key = source(name)
        if block == NHWC or key in reordered or (key not in owner and key != "input"):
            return
        reordered.add(key)
        # it reads or writes the tensor plain, and blocked with its channels padded
        f = {"pbytes": DTYPE_BYTES * (numel(name, shape) + numel(name, shape, True))}
        if spill(name, shape, 2):
            f["dram"] = 2 * DTYPE_BYTES * numel(name, shape)
        out.append(Kernel((key,), "reorder", f))

    def runs_plain(n: Node) -> bool:
        """Whether onnxruntime runs a layer of a blocked kind in plain layout (as the graph
        it writes shows): a depthwise conv with a multiplier or with channels not a
        multiple of ALIGN (ShuffleNet V2 1.0×'s 58-channel branches, MicroNet's); a dense
        conv with a block or more of input channels not a multiple of ALIGN; a grouped
        conv unless each group's input and output channels are whole blocks (MicroNet's
        1×1s of 4–48 channels a group); a pool over channels that are not whole blocks;
        a concat unless of blocked inputs of whole blocks; an add, activation or batch
        norm unless of blocked inputs, a product unless of blocked inputs of one shape; a
        global pool of a plain input; a resize unless bilinear of a blocked tensor by
        whole factors (DeepLab's image pooling, a ×2 after a conv stay blocked; LR-ASPP's
        ×2 of a broadcast product, 65 → 513, a nearest resize do not)."""
        kind, cin, cout = n.layer.kind, n.in_shapes[0].c, n.out.c
        if block == NHWC:
            return False
        if is_depthwise(n):
            return cout != cin or cout % ALIGN != 0
        if kind == "conv2d" and n.layer.groups == 1:
            return cin >= block and cin % ALIGN != 0
        if kind == "conv2d":
            g = n.layer.groups
            return (cin // g) % block != 0 or (cout // g) % block != 0
        if kind == "global_pool" and not blocked(n.inputs[0]):
            return True  # onnxruntime converts a plain input for a pool, not a global one
        if kind in ("pool", "global_pool"):
            return cout % block != 0
        if kind == "concat":
            return not all(blocked(i) and s.c % block == 0
                           for i, s in zip(n.inputs, n.in_shapes, strict=True))
        if kind in ("add", "act", "batchnorm"):
            return not all(blocked(i) for i in n.inputs)
        if kind == "mul":  # StarNet's star stays blocked, a squeeze-excite scale does not
            return not all(blocked(i) and s == n.out
                           for i, s in zip(n.inputs, n.in_shapes, strict=True))
        if kind == "upsample":
            x, y = n.in_shapes[0], n.out
            return not (n.layer.mode == "bilinear" and blocked(n.inputs[0])
                        and y.h % x.h == 0 and y.w % x.w == 0)
        return False

    def tensors(n: Node) -> list[tuple[str, Shape]]:
        return [*zip(n.inputs, n.in_shapes, strict=True), (n.name, n.out)]

    def sizes(n: Node, pad: bool, direct: bool = False) -> Any:
        """Elements of a node's tensors: whole blocks where it runs blocked, but for an
        input a conv reads plain (``direct``)."""
        return sum(numel(name, s, pad and not (direct and i < len(n.inputs)))
                   for i, (name, s) in enumerate(tensors(n)))

    def one_more(f: dict[str, Any], n: Node, key: str, pad: bool) -> None:
        """A kernel that also writes (a fused add, another slice) ``n``'s output."""
        f[key] = f.get(key, 0) + DTYPE_BYTES * numel(n.name, n.out, pad)
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
                f["bytes"] = f.get("bytes", 0) + 2 * DTYPE_BYTES * numel(n.name, n.out, True)
                if n.layer.fn in EXP_ACTS:
                    f["exp"] = f.get("exp", 0) + numel(n.name, n.out, True)
            out[k] = Kernel((*out[k].nodes, n.name), out[k].what, f)
            owner[n.name] = k
            # a conv that fused an activation fuses no add after it (onnxruntime's
            # NchwcTransformer fuses a Sum only into a conv without an activation)
            tail[n.name] = tail.pop(src[0]) or kind == "act"
            continue
        if kind == "add":
            fused = [s for s in src if s in tail and not tail[s] and consumers.get(s, 0) == 1]
            # a blocked conv fuses the sum of blocked tensors (NchwcTransformer), a plain one
            # that of plain tensors (its FusedConv's Z input: ShuffleNet V1's units)
            if fused and (all(blocked(s) for s in src) or (
                    out[owner[fused[0]]].what in PLAIN_CONVS
                    and not any(blocked(s) for s in src))):
                k = owner[fused[0]]
                f = dict(out[k].features)
                if blocked(fused[0]):
                    one_more(f, n, "bytes", True)
                else:  # FusedConv first copies the other input into its output: a pass
                    one_more(f, n, "pbytes", False)
                    one_more(f, n, "pbytes", False)
                out[k] = Kernel((*out[k].nodes, n.name), out[k].what, f)
                owner[n.name] = k
                tail.pop(fused[0])
                tail[n.name] = True
                continue
        if kind == "slice" and src[0] in split:
            # slices of one tensor run as one Split kernel: it reads the input once
            k = split[src[0]]
            f = dict(out[k].features)
            one_more(f, n, "pbytes", False)
            out[k] = Kernel((*out[k].nodes, n.name), out[k].what, f)
            owner[n.name] = k
            continue
        what = f"{kind} (plain)" if runs_plain(n) else kind
        # a dense conv reads an input narrower than a block plain, directly (an image; a
        # blocked one is converted back)
        direct = kind == "conv2d" and n.layer.groups == 1 and n.in_shapes[0].c < block
        if what in BLOCKED:
            for name, shape in zip(n.inputs, n.in_shapes, strict=True):
                if blocked(name) == direct:  # any other input is converted to blocks
                    reorder(name, shape)
        else:
            for name, shape in zip(n.inputs, n.in_shapes, strict=True):
                if blocked(name):
                    reorder(name, shape)
        pad = what in BLOCKED  # its tensors hold whole blocks of channels
        f: dict[str, Any] = {}
        if kind == "shuffle":
            # reshape, transpose, reshape; onnxruntime merges the first reshape into the
            # last of a shuffle just before (MicroNet's shuffles come in pairs)
            k = owner.get(src[0])
            again = k is not None and out[k].what == "shuffle" and \
                consumers.get(n.inputs[0], 0) == 1
            f["launches"] = 2 if again else 3
        # a kernel run in plain NCHW (not in a channels-last runtime) that steps through
        # channel planes, each a short run of its own: a transpose of channel groups, a
        # product by a per-channel gate, Dynamic Shift-Max's gathers and products
        planes = one * n.out.c if block != NHWC and what not in BLOCKED else 0
        if kind == "shuffle" or (kind == "mul" and any((x.h, x.w) == (1, 1)
                                                       for x in n.in_shapes)):
            f["planes"] = planes
        gemm = kind == "linear" and gemm_of_image(n)
        if gemm:
            f["launches"] = 3  # flatten, Gemm, reshape back to an image
        if kind == "shiftmax":
            f.update(_shiftmax(n.layer.j, n.layer.k, DTYPE_BYTES * numel(n.name, n.out),
                                planes))
        cls = work_class(n)
        if kind == "matmul":
            # q·kᵀ and attn·v: a batched matrix product, at the 1×1 (GEMM) rate; its MACs
            # grow with the square of the tokens, so only a count follows them (a sweep
            # refuses token models)
            f["macs_conv1x1"] = n.layer.macs(n.in_shapes, n.out)
            f["bytes"] = DTYPE_BYTES * sizes(n, False)
        elif cls is not None:
            # MACs per output position (per input position for a transposed conv)
            per = n.layer.macs([Shape(1, 1, x.c) for x in n.in_shapes], Shape(1, 1, n.out.c))
            if pad and kind in ("conv2d", "depthwise"):
                # a blocked conv computes whole blocks of output channels, from whole
                # blocks of input channels unless it reads a narrow plain input directly
                cin, cout = n.in_shapes[0].c, n.out.c
                per = per * padded(cout, block) // cout
                if kind == "conv2d" and n.layer.groups == 1 and not direct:
                    per = per * padded(cin, block) // cin
                elif cls == "conv1x1" and direct:
                    cls = "direct"  # a 1×1 conv from a narrow plain input: its own kernel
            f[f"macs_{cls}"] = per * area(n.inputs[0] if kind == "conv_transpose" else n.name)
            if kind in ("conv2d", "depthwise") and n.layer.k[0] > 1 and what in BLOCKED:
                f[f"macs_{cls}"] = f[f"macs_{cls}"] - clip(n, cls, per // n.layer.k[0])
            f["bytes"] = DTYPE_BYTES * sizes(n, pad, direct)
            weights = DTYPE_BYTES * n.layer.params(n.in_shapes).weights
            # a network streams all its weights once per inference, more than its caches
            # keep between inferences: those past its first CACHED_BYTES come from memory
            # (MobileNet V2's last 5 MB, AlexNet's FC layers, most of VGG's)
            cached = min(weights, max(0, CACHED_BYTES - streamed))
            streamed += weights
            f["wbytes"] = one * cached
            if weights > cached:
                f["dram"] = one * (weights - cached)
            if what in PLAIN_CONVS and n.layer.s[1] > 1:
                # a plain conv's im2col copies its columns a row at a time, but one element
                # at a time where the conv strides along the width (MicroNet's 1×k, s 1×2)
                f["strided"] = n.in_shapes[0].c * n.layer.k[0] * n.layer.k[1] * area(n.name)
            if cls == "dw" and what not in BLOCKED:
                # in plain layout a depthwise conv runs through im2col and a GEMM of one
                # row a channel: each MAC reads an input element copied for it
                f["pbytes"] = 2 * DTYPE_BYTES * f["macs_dw"]
            elif cls == "dw":
                f["dw_planes"] = one * padded(n.out.c, block)
            elif kind == "conv2d" and what in PLAIN_CONVS:
                # a plain conv is an SGEMM a group, which packs its input matrix first
                f["pbytes"] = 2 * DTYPE_BYTES * n.in_shapes[0].c * n.layer.k[0] * \
                    n.layer.k[1] * area(n.name)
        else:
            # a memory-bound kernel: it streams its tensors
            f["pbytes"] = f.get("pbytes", 0) + DTYPE_BYTES * sizes(n, pad)
            if kind == "act" and n.layer.fn in EXP_ACTS:
                f["exp"] = numel(n.name, n.out, pad)
            if kind == "act" and n.layer.fn == "hswish":
                # onnxruntime runs HardSwish as HardSigmoid, then its product with the input
                f["launches"] = 2
                f["pbytes"] += 3 * DTYPE_BYTES * numel(n.name, n.out, pad)
            if kind == "upsample":  # nearest or bilinear: ~1 ns an element either way
                f["resize"] = numel(n.name, n.out, pad)
        # the tensors too big for the caches (LR-ASPP's at 1024×2048): their bytes are
        # read or written once more, at the memory rate
        spilled = [(name, s) for name, s in tensors(n) if spill(name, s, 1)] \
            if "bytes" in f or "pbytes" in f else []
        if spilled:
            f["dram"] = f.get("dram", 0) + DTYPE_BYTES * sum(numel(*t) for t in spilled)
        out.append(Kernel((n.name,), what, f))
        owner[n.name] = len(out) - 1
        if kind == "slice":
            split[src[0]] = len(out) - 1
        if kind in CONVS and not gemm:  # a Gemm fuses nothing: a reshape sits after it
            tail[n.name] = False
    for n in nodes:  # the outputs (an SSD's every predictor) leave in plain layout
        if not consumers.get(n.name) and blocked(n.name):
            reorder(n.name, n.out)
    return out


def _shiftmax(j: int, k: int, out_bytes: Any, channels: Any) -> dict[str, Any]:
    """Dynamic Shift-Max as the runtime runs it: J−1 channel gathers, one split of the
    coefficients into J·K (onnxruntime fuses their slices), J·K products by them (each a
    loop over the channel planes), (J−1)·K sums and a maximum over K, each a kernel of its
    own reading and writing a tensor of the output's size (beside the node's own bytes)."""
    launches = (j - 1) + (j * k > 1) + j * k + (j - 1) * k + (k > 1)
    passes = 2 * (j - 1) + 2 * j * k + 3 * (j - 1) * k + (k + 1) * (k > 1)
    return {"launches": launches, "pbytes": passes * out_bytes,
            "planes": ((j - 1) + j * k) * channels}

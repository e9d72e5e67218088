"""Composite rows: the blocks a paper's table is written in, expanded to primitives.

``conv``, ``dw``, ``pw`` and ``fc`` are one primitive followed by optional batch norm
and activation; ``dwsep`` is MobileNet V1's depthwise-separable block (arXiv:1704.04861
Fig. 3), ``ir`` MobileNet V2's inverted residual with linear bottleneck
(arXiv:1801.04381 Table 1), with V3's squeeze-excite (arXiv:1905.02244) as an option.
``micro_dw``, ``micro_pw``, ``dyshiftmax`` and ``micro`` are MicroNet's
(arXiv:2108.05894). Counting never sees a block, only what it expands to.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from macscalc.core.rounding import make_divisible
from macscalc.lang.layers import (
    Activation,
    Add,
    BatchNorm,
    Concat,
    Conv2d,
    ConvArgs,
    Depthwise,
    DepthwiseArgs,
    GlobalPool,
    Layer,
    LayerScale,
    Linear,
    LinearArgs,
    Mul,
    Pool,
    ShiftMax,
    Shuffle,
    Slice,
    Upsample,
)
from macscalc.lang.schema import (
    ACT,
    ACT_FN,
    BOOL,
    CHANNELS,
    CHOICE,
    INTS,
    KERNELS,
    NONNEG_INT,
    PADDING,
    PAIR,
    POS_INT,
    POS_INTS,
    RATIO,
    SAME_ACT,
    ArgType,
    Kind,
    arg,
    declared,
    registry,
)

if TYPE_CHECKING:
    from macscalc.lang.placing import Placer


class Block(Kind):
    """Base of composite rows: ``expand`` appends primitives to the builder."""

    takes_from: ClassVar[bool] = False  # reads the row's ``from`` itself (b.row_from)

    def expand(self, b: Placer, name: str) -> None:
        raise NotImplementedError


BLOCKS: dict[str, type[Block]] = {}
block = registry(BLOCKS)  # class decorator: a composite row kind


def _pick(obj: Any, group: type) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in declared(group)}


def unit(b: Placer, name: str, layer: Layer, bn: bool, act: str | None) -> None:
    """A layer, then batch norm and activation when asked: ``name``, ``name.bn``, ``name.act``."""
    b.add(layer, name)
    if bn:
        b.add(BatchNorm(), f"{name}.bn")
    if act:
        b.add(Activation(fn=act), f"{name}.{act}")


def _one_grouping(row: Any) -> None:
    """Refused where the row is parsed (a located error), not when its conv is placed."""
    if row.group_width is not None and row.groups != 1:
        raise ValueError("give groups or group_width, not both")


class BnAct:
    """Batch norm and activation after a conv; both follow the spec's ``defaults:``."""

    bn = arg(BOOL, False, inherit=True, doc="batch norm after the conv")
    act = arg(ACT, None, inherit=True, doc="activation after the conv")


@block
class Conv(ConvArgs, BnAct, Block):
    """A convolution with its batch norm and activation."""

    kind: ClassVar[str] = "conv"

    def check(self) -> None:
        _one_grouping(self)

    def expand(self, b: Placer, name: str) -> None:
        unit(b, f"{name}/conv", Conv2d(**_pick(self, ConvArgs)), self.bn, self.act)


@block
class Pw(BnAct, Block):
    """A pointwise (1×1) convolution with its batch norm and activation."""

    kind: ClassVar[str] = "pw"
    c = arg(CHANNELS, width=True, doc="output channels")
    s = arg(PAIR, (1, 1), doc="stride")
    groups = arg(POS_INT, 1, doc="groups")
    group_width = arg(POS_INT, None, doc="input channels per group (instead of groups)")
    bias = arg(BOOL, False, inherit=True, doc="with a bias")

    def check(self) -> None:
        _one_grouping(self)

    def expand(self, b: Placer, name: str) -> None:
        conv = Conv2d(c=self.c, s=self.s, groups=self.groups, group_width=self.group_width,
                      bias=self.bias)
        unit(b, f"{name}/pw", conv, self.bn, self.act)


@block
class Dw(DepthwiseArgs, BnAct, Block):
    """A depthwise convolution with its batch norm and activation."""

    kind: ClassVar[str] = "dw"

    def expand(self, b: Placer, name: str) -> None:
        unit(b, f"{name}/dw", Depthwise(**_pick(self, DepthwiseArgs)), self.bn, self.act)


def split_channels(c: int, groups: int) -> list[int]:
    """``c`` channels in ``groups`` equal parts, the remainder to the first (timm
    ``_split_channels``): 30 in 4 is 9, 7, 7, 7."""
    parts = [c // groups] * groups
    parts[0] += c - sum(parts)
    return parts


@block
class MixConv(BnAct, Block):
    """MixNet's mixed convolution (arXiv:1907.09595 §3; timm ``MixedConv2d``): the channels
    split into one group per kernel size (``split_channels``), each group convolved with its
    own kernel, the outputs concatenated, then batch norm and activation over all of them.
    Without ``c`` every group is depthwise; with ``c`` each is a dense conv from its share
    of the input to its share of the output (``k: [1, 1]``: MixNet's 1×1 in two groups)."""

    kind: ClassVar[str] = "mixconv"
    k = arg(KERNELS, doc="one kernel size per channel group, e.g. [3, 5, 7]")
    c = arg(CHANNELS, None, width=True, doc="output channels (none: depthwise)")
    s = arg(PAIR, (1, 1), doc="stride")
    padding = arg(PADDING, "same", inherit=True, doc="padding of every kernel")
    d = arg(PAIR, (1, 1), doc="dilation")
    bias = arg(BOOL, False, inherit=True, doc="with a bias")

    @property
    def kernels(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """Each group's kernel and dilation, for the padding check of ``defaults``."""
        return [((k, k), self.d) for k in self.k]

    def expand(self, b: Placer, name: str) -> None:
        x, cin = b.cur, b.shape().c
        groups = len(self.k)
        ins = split_channels(cin, groups)
        outs = ins if self.c is None else split_channels(self.c, groups)
        if min(ins) < 1 or min(outs) < 1:
            raise b.row_error(f"{name}: {cin} input and {self.c or cin} output channels do not "
                              f"split into {groups} groups, one per kernel")
        parts = []
        for i, (k, ci, co) in enumerate(zip(self.k, ins, outs, strict=True)):
            src = x if groups == 1 else b.add(Slice(c=ci, start=sum(ins[:i])),
                                               f"{name}/split.{i}", inputs=[x])
            conv = (Depthwise(k=(k, k), s=self.s, padding=self.padding, d=self.d,
                              bias=self.bias) if self.c is None else
                    Conv2d(c=co, k=(k, k), s=self.s, padding=self.padding, d=self.d,
                           bias=self.bias))
            parts.append(b.add(conv, f"{name}/k{k}_{i}" if groups > 1 else f"{name}/k{k}",
                               inputs=[src]))
        if groups > 1:
            b.add(Concat(), f"{name}/cat", inputs=parts)
        if self.bn:
            b.add(BatchNorm(), f"{name}.bn")
        if self.act:
            b.add(Activation(fn=self.act), f"{name}.{self.act}")


@block
class Ghost(BnAct, Block):
    """GhostNet's ghost module (arXiv:1911.11907 Fig. 2; timm ``GhostModule``, ratio 2): a
    1×1 conv to ⌈c/2⌉ channels, a cheap 3×3 depthwise on them, both with BN and act,
    concatenated and cut to c. With ``dfc`` (GhostNetV2, arXiv:2211.12905 §3.2; timm
    ``GhostModuleV2``) the output is multiplied by its DFC attention, computed from the
    module's input: a 2×2/2 average pool, 1×1 conv, depthwise 1×5 and 5×1 (each with BN),
    sigmoid, nearest upsampling back to the output's size."""

    kind: ClassVar[str] = "ghost"
    c = arg(CHANNELS, width=True, doc="output channels")
    dfc = arg(BOOL, False, doc="GhostNetV2's DFC attention")

    def expand(self, b: Placer, name: str) -> None:
        x = b.cur
        unit(b, f"{name}/primary", Conv2d(c=-(-self.c // 2)), self.bn, self.act)
        primary = b.cur
        unit(b, f"{name}/cheap", Depthwise(k=(3, 3), padding=(1, 1)), self.bn, self.act)
        b.add(Concat(), f"{name}/cat", inputs=[primary, b.cur])
        out = b.add(Slice(c=self.c), f"{name}/out")
        if not self.dfc:
            return
        with b.within("dfc"):
            b.add(Pool(op="avg", k=(2, 2), s=(2, 2)), f"{name}/dfc_pool", inputs=[x])
            unit(b, f"{name}/dfc_conv", Conv2d(c=self.c), self.bn, None)
            unit(b, f"{name}/dfc_1x5", Depthwise(k=(1, 5), padding=(0, 2)), self.bn, None)
            unit(b, f"{name}/dfc_5x1", Depthwise(k=(5, 1), padding=(2, 0)), self.bn, "sigmoid")
            b.add(Upsample(like=out), f"{name}/dfc_up", inputs=[b.cur, out])
            b.add(Mul(), f"{name}/scale", inputs=[out, b.cur])


@block
class Fc(LinearArgs, Block):
    """A fully connected layer; batch norm and activation only when the row asks."""

    kind: ClassVar[str] = "fc"
    bn = arg(BOOL, False, doc="batch norm after the layer")
    act = arg(ACT, None, doc="activation after the layer")

    def expand(self, b: Placer, name: str) -> None:
        unit(b, f"{name}/fc", Linear(**_pick(self, LinearArgs)), self.bn, self.act)


class SeOptions(NamedTuple):
    """A block's squeeze-excite: reduced width make_divisible(c·r, divisor), where c is the
    expanded width (MobileNet V3) or the block's input width (EfficientNet)."""

    r: Fraction = Fraction(1, 4)
    of: str = "expanded"
    divisor: int = 8
    act: str | None = "relu"
    gate: str = "hsigmoid"


_SE_KEYS = {"r": RATIO, "of": ArgType("input or expanded", CHOICE("input", "expanded")),
            "divisor": POS_INT, "act": ACT, "gate": ACT_FN}


def _se(v: Any) -> SeOptions | None:
    if v is False or v is None:
        return None
    if v is True:
        return SeOptions()
    if isinstance(v, dict):
        if not set(v) <= set(_SE_KEYS):
            raise ValueError
        return SeOptions(**{k: _SE_KEYS[k](x) for k, x in v.items()})
    return SeOptions(r=RATIO(v))


SE = ArgType("true, false, a ratio such as 0.25, or {r, of: input|expanded, divisor, act, "
             "gate}", _se)


def squeeze_excite(b: Placer, name: str, se: SeOptions | None, cin: int) -> None:
    """The block's squeeze-excite, if it has one, sized from ``cin`` or the current width."""
    if se is not None:
        c = cin if se.of == "input" else b.shape().c
        SqueezeExcite(r=se.r, divisor=se.divisor, act=se.act, gate=se.gate, of=c).expand(
            b, f"{name}/se")


def _residual(b: Placer, name: str, x_in: str, mode: bool | None, s: tuple[int, int]) -> None:
    """The identity shortcut of an inverted residual: added when stride 1 (written, or left
    by the output stride) and cin == cout; asked for (``residual: true``) where it cannot
    be, it is an error, never dropped."""
    unstrided = s == (1, 1) or (b.atrous is not None and b.atrous.unstrided(x_in, b.cur))
    fits = unstrided and b.shapes[x_in] == b.shape()
    if mode is True and not fits:
        raise b.row_error(f"{name}: residual: true needs stride 1 and equal input and output "
                          f"shapes, got {b.shapes[x_in]} → {b.shape()}")
    if mode is not False and fits:
        b.add(Add(), f"{name}/add", inputs=[x_in, b.cur])


@block
class DwSep(BnAct, Block):
    """Depthwise-separable conv: k×k depthwise + BN + act, then 1×1 pointwise + BN + act
    (``pw_act`` sets the pointwise's own: SPNASNet's is linear). ``se`` puts a
    squeeze-excite between them (PP-LCNet)."""

    kind: ClassVar[str] = "dwsep"
    c = arg(CHANNELS, width=True, doc="output channels of the pointwise conv")
    k = arg(PAIR, (3, 3), doc="depthwise kernel size")
    s = arg(PAIR, (1, 1), doc="depthwise stride")
    padding = arg(PADDING, "same", inherit=True, doc="padding")
    d = arg(PAIR, (1, 1), doc="dilation of the depthwise (atrous rate)")
    se = arg(SE, None, inherit=True, doc="squeeze-excite after the depthwise")
    pw_act = arg(SAME_ACT, "same", doc="activation after the pointwise (same: act)")
    residual = arg(BOOL, False, doc="add the input when stride 1 and cin == cout")

    def expand(self, b: Placer, name: str) -> None:
        x_in = b.cur
        unit(
            b, f"{name}/dw", Depthwise(k=self.k, s=self.s, padding=self.padding, d=self.d), self.bn,
            self.act)
        squeeze_excite(b, name, self.se, b.shapes[x_in].c)
        pw_act = self.act if self.pw_act == "same" else self.pw_act
        unit(b, f"{name}/pw", Conv2d(c=self.c), self.bn, pw_act)
        if self.residual:
            _residual(b, name, x_in, None, self.s)


@block
class InvertedResidual(BnAct, Block):
    """MobileNet V2 bottleneck: 1×1 expansion, k×k depthwise, linear 1×1 projection.

    Semantics of TF-slim ``expanded_conv`` (conv_blocks.py): no expansion conv when the
    expanded width equals the input width (t = 1); the projection has BN and no
    activation; the residual add exists only when stride is 1 and cin == cout.
    """

    kind: ClassVar[str] = "ir"
    c = arg(CHANNELS, width=True, doc="output channels")
    t = arg(RATIO, None, doc="expansion ratio (expanded = rounded cin·t)")
    exp = arg(POS_INT, None, width=True, doc="expanded channels (instead of t)")
    k = arg(PAIR, (3, 3), doc="depthwise kernel size")
    s = arg(PAIR, (1, 1), doc="depthwise stride")
    padding = arg(PADDING, "same", inherit=True, doc="padding")
    d = arg(PAIR, (1, 1), doc="dilation of the depthwise (atrous rate)")
    residual = arg(BOOL, None, doc="true: required, false: never; default: when stride 1 "
                   "and cin == cout")
    se = arg(SE, None, inherit=True, doc="squeeze-excite after the depthwise (MobileNet V3)")
    force_expand = arg(BOOL, False, doc="keep the 1×1 expansion even when t = 1 (FBNet)")

    def check(self) -> None:
        if (self.t is None) == (self.exp is None):
            raise ValueError(
                "ir needs exactly one of t (expansion ratio) or exp (expanded channels)"
            )

    def expand(self, b: Placer, name: str) -> None:
        x_in = b.cur
        cin = b.shape().c
        hidden = b.rule.expand(cin, self.t) if self.t is not None else self.exp
        # V2 §5: computed in slices of cin channels, the inner tensors never exist whole
        with b.streamed(Fraction(min(cin, hidden), hidden)):
            if hidden != cin or self.force_expand:
                unit(b, f"{name}/expand", Conv2d(c=hidden), self.bn, self.act)
            unit(b, f"{name}/dw", Depthwise(k=self.k, s=self.s, padding=self.padding, d=self.d),
                 self.bn, self.act)
        squeeze_excite(b, name, self.se, cin)
        unit(b, f"{name}/project", Conv2d(c=self.c), self.bn, None)
        _residual(b, name, x_in, self.residual, self.s)


@block
class FusedMBConv(BnAct, Block):
    """EfficientNetV2's Fused-MBConv (arXiv:2104.00298 Fig. 2; torchvision ``FusedMBConv``,
    timm ``EdgeResidual``): the expansion and the depthwise fused into one k×k conv to
    make_divisible(cin·t) with the stride, BN and act, an optional squeeze-excite, then the
    linear 1×1 projection; where the expanded width equals the input (t = 1), one k×k conv
    to ``c`` with BN and act. Residual add when stride 1 and cin == cout."""

    kind: ClassVar[str] = "fused"
    c = arg(CHANNELS, width=True, doc="output channels")
    t = arg(RATIO, doc="expansion ratio (expanded = rounded cin·t)")
    k = arg(PAIR, (3, 3), doc="kernel size of the fused conv")
    s = arg(PAIR, (1, 1), doc="stride")
    padding = arg(PADDING, "same", inherit=True, doc="padding")
    se = arg(SE, None, inherit=True, doc="squeeze-excite after the fused conv (timm)")
    residual = arg(BOOL, None, doc="true: required, false: never; default: when stride 1 "
                   "and cin == cout")

    def expand(self, b: Placer, name: str) -> None:
        x_in = b.cur
        cin = b.shape().c
        hidden = b.rule.expand(cin, self.t)
        conv = Conv2d(k=self.k, s=self.s, padding=self.padding, c=hidden)
        if hidden == cin:
            unit(b, f"{name}/conv", conv.replace(c=self.c), self.bn, self.act)
        else:
            unit(b, f"{name}/expand", conv, self.bn, self.act)
            squeeze_excite(b, name, self.se, cin)
            unit(b, f"{name}/project", Conv2d(c=self.c), self.bn, None)
        _residual(b, name, x_in, self.residual, self.s)


@block
class UniversalInvertedBottleneck(BnAct, Block):
    """MobileNet V4's universal inverted bottleneck (arXiv:2404.10518; timm
    ``UniversalInvertedResidual``): an optional k×k depthwise before the expansion
    (``k_start``, BN, no act), the 1×1 expansion to make_divisible(cin·t), an optional k×k
    depthwise after it (``k_mid``), the linear 1×1 projection, and an optional depthwise
    after that (``k_end``). The stride sits on the mid depthwise, else the start one, else
    the end one. 0 leaves a depthwise out: ``k_start: 0, k_mid: 3`` is an inverted
    residual, ``k_start: 3, k_mid: 0`` the "ExtraDW"-less ConvNext-like variant, both 0 an
    FFN."""

    kind: ClassVar[str] = "uib"
    c = arg(CHANNELS, width=True, doc="output channels")
    t = arg(RATIO, doc="expansion ratio")
    k_start = arg(NONNEG_INT, 0, doc="depthwise kernel before the expansion (0: none)")
    k_mid = arg(NONNEG_INT, 3, doc="depthwise kernel after the expansion (0: none)")
    k_end = arg(NONNEG_INT, 0, doc="depthwise kernel after the projection (0: none)")
    s = arg(PAIR, (1, 1), doc="stride")
    padding = arg(PADDING, "same", inherit=True, doc="padding")
    d = arg(PAIR, (1, 1), doc="dilation of every depthwise (atrous rate)")
    se = arg(SE, None, inherit=True, doc="squeeze-excite after the mid depthwise")
    residual = arg(BOOL, None, doc="true: required, false: never; default: when stride 1 "
                   "and cin == cout")
    layer_scale = arg(BOOL, False, doc="a per-channel layer scale before the residual "
                      "(MobileNet V4 hybrids)")

    def check(self) -> None:
        if self.s != (1, 1) and not (self.k_start or self.k_mid or self.k_end):
            raise ValueError("uib with a stride needs a depthwise (k_start, k_mid or k_end)")

    def _dw(self, b: Placer, name: str, k: int, strided: bool, act: str | None) -> None:
        s = self.s if strided else (1, 1)
        unit(b, name, Depthwise(k=(k, k), s=s, padding=self.padding, d=self.d), self.bn, act)

    def expand(self, b: Placer, name: str) -> None:
        x_in = b.cur
        cin = b.shape().c
        if self.k_start:
            self._dw(b, f"{name}/dw_start", self.k_start, not self.k_mid, None)
        unit(b, f"{name}/expand", Conv2d(c=make_divisible(cin * self.t, b.rule.divisor)),
             self.bn, self.act)
        if self.k_mid:
            self._dw(b, f"{name}/dw_mid", self.k_mid, True, self.act)
        squeeze_excite(b, name, self.se, cin)
        unit(b, f"{name}/project", Conv2d(c=self.c), self.bn, None)
        if self.k_end:
            self._dw(b, f"{name}/dw_end", self.k_end, not (self.k_start or self.k_mid), None)
        if self.layer_scale:
            b.add(LayerScale(), f"{name}/layer_scale")
        _residual(b, name, x_in, self.residual, self.s)


@block
class SqueezeExcite(Block):
    """Squeeze-and-excite: global pool, 1×1 reduce + act, 1×1 expand + gate, channel product.

    MobileNet V3 (torchvision ``SqueezeExcitation``, slim ``squeeze_excite``): reduced
    width ``make_divisible(c·r, 8)`` with r = 1/4, ReLU inside, hard-sigmoid gate, both
    1×1 convs with biases. Their MACs are MACs; the product is a ``mul`` op.
    """

    kind: ClassVar[str] = "se"
    r = arg(RATIO, Fraction(1, 4), doc="squeeze ratio of the input channels")
    divisor = arg(POS_INT, 8, doc="the reduced width is a multiple of this")
    act = arg(ACT, "relu", doc="activation after the reduction")
    gate = arg(ACT_FN, "hsigmoid", doc="gating function")
    of = arg(POS_INT, None, doc="channels the ratio applies to (default: the input's)")

    def expand(self, b: Placer, name: str) -> None:
        x = b.cur
        c = b.shape().c
        with b.within("se"):
            b.add(GlobalPool(op="avg"), f"{name}/pool")
            unit(
                b,
                f"{name}/reduce",
                Conv2d(c=make_divisible((self.of or c) * self.r, self.divisor), bias=True),
                False,
                self.act,
            )
            unit(b, f"{name}/expand", Conv2d(c=c, bias=True), False, self.gate)
            b.add(Mul(), f"{name}/scale", inputs=[x, b.cur])


@block
class MicroDw(Block):
    """Micro-factorized depthwise conv: k×1 depthwise (×e1), BN, then 1×k (×e2), BN.

    MicroNet ``DepthSpatialSepConv``: the k×k kernel becomes k×1 and 1×k, so its cost per
    channel drops from k² to 2k; e1, e2 are channel multipliers.
    """

    kind: ClassVar[str] = "micro_dw"
    k = arg(POS_INT, 3, doc="kernel length")
    s = arg(PAIR, (1, 1), doc="stride")
    m = arg(INTS, (1, 1), doc="channel multipliers [e1, e2]")

    def check(self) -> None:
        if len(self.m) != 2 or 0 in self.m:
            raise ValueError("micro_dw needs m: [e1, e2], two positive multipliers")

    def expand(self, b: Placer, name: str) -> None:
        with b.within("micro dw"):
            unit(
                b,
                f"{name}/dw_k1",
                Depthwise(k=(self.k, 1), s=(self.s[0], 1), m=self.m[0]),
                True,
                None,
            )
            unit(
                b,
                f"{name}/dw_1k",
                Depthwise(k=(1, self.k), s=(1, self.s[1]), m=self.m[1]),
                True,
                None,
            )


@block
class MicroPw(Block):
    """Micro-factorized pointwise conv: C→C/R group conv (G1), shuffle, C/R→C' group conv (G2).

    MicroNet's W = P·Φ·Qᵀ: two sparse group convs around a free channel permutation, each
    output still reaching every input when G1·G2 ≤ C/R.
    """

    kind: ClassVar[str] = "micro_pw"
    c = arg(CHANNELS, width=True, doc="output channels C'")
    r = arg(POS_INT, doc="reduction ratio R: the middle width is C/R")
    groups = arg(INTS, doc="[G1, G2]")

    def check(self) -> None:
        if len(self.groups) != 2 or 0 in self.groups:
            raise ValueError("micro_pw needs groups: [G1, G2], two positive group counts")

    def expand(self, b: Placer, name: str) -> None:
        cin = b.shape().c
        if cin % self.r:
            raise b.row_error(f"{name}: ratio r={self.r} must divide the {cin} input channels")
        g1, g2 = self.groups
        with b.within("micro pw"):
            unit(b, f"{name}/squeeze", Conv2d(c=cin // self.r, groups=g1), True, None)
            b.add(Shuffle(groups=g1), f"{name}/shuffle")
            unit(b, f"{name}/expand", Conv2d(c=self.c, groups=g2), True, None)


@block
class DyShiftMax(Block):
    """Dynamic Shift-Max: coefficients from pool → FC → ReLU → FC → hard-sigmoid, then fusion.

    MicroNet ``activation.DYShiftMax``: squeeze width ``make_divisible(c // reduction, 4)``
    and at least 4; both FCs have biases; K = 2 maxima when ``act_relu``, else 1. The
    FCs' MACs are MACs; the fusion is counted under ``shiftmax`` (see ``ShiftMax``).
    """

    kind: ClassVar[str] = "dyshiftmax"
    k = arg(POS_INT, 2, doc="K, maxima: 2 (act_relu) or 1")
    j = arg(POS_INT, 2, doc="J, channels fused per output (itself and one group shift)")
    reduction = arg(POS_INT, 8, doc="squeeze reduction of the coefficient generator")

    def expand(self, b: Placer, name: str) -> None:
        if self.reduction < 1:  # micro halves its reduction·r
            raise b.row_error(f"{name}: the squeeze reduction must be at least 1, got "
                              f"{self.reduction}")
        x = b.cur
        c = b.shape().c
        squeeze = max(make_divisible(Fraction(c // self.reduction), 4), 4)
        with b.within("dyshiftmax"):
            b.add(GlobalPool(op="avg"), f"{name}/pool")
            unit(b, f"{name}/fc1", Linear(c=squeeze), False, "relu")
            unit(b, f"{name}/fc2", Linear(c=c * self.j * self.k), False, "hsigmoid")
            b.add(ShiftMax(j=self.j, k=self.k), f"{name}/fuse", inputs=[x, b.cur])


@block
class MicroBlock(Block):
    """A MicroNet block as the official ``DYMicroBlock``, with its config row's names.

    ``backbone/micronet.py`` (liyunsheng13/micronet): block A when ch_per_group[0] is 0
    (micro-factorized depthwise, then a group 1×1 conv), block C when groups_1x1[2] is 0
    (a group 1×1 conv alone), block B otherwise (group 1×1, micro-factorized depthwise,
    group 1×1). ``dy`` says where Dynamic Shift-Max sits (0: ReLU6 or nothing, 1: K = 1,
    2: K = 2); its reduction is ``reduction``·r, halved after the last 1×1 of A (and of B
    when it narrows). Residual when stride 1 and cin == c.
    """

    kind: ClassVar[str] = "micro"
    c = arg(CHANNELS, width=True, doc="output channels")
    k = arg(POS_INT, 3, doc="depthwise kernel length")
    s = arg(PAIR, (1, 1), doc="stride")
    ch_exp = arg(INTS, doc="[c1, c2]: depthwise channel multipliers")
    ch_per_group = arg(INTS, doc="[g1, g2]: groups of the first 1×1, shuffle groups")
    groups_1x1 = arg(INTS, doc="[c3, g3, g4]: (unused), groups of the last 1×1, shuffle")
    dy = arg(INTS, doc="[y1, y2, y3]: Dynamic Shift-Max after each stage")
    r = arg(POS_INT, 1, doc="reduction multiplier")
    reduction = arg(POS_INT, 8, doc="base reduction of Dynamic Shift-Max (REDUCTION)")

    def check(self) -> None:
        sizes = {"ch_exp": 2, "ch_per_group": 2, "groups_1x1": 3, "dy": 3}
        for field, n in sizes.items():
            if len(getattr(self, field)) != n:
                raise ValueError(f"micro needs {field} as a list of {n} integers")
        if 0 in self.ch_exp:
            raise ValueError("micro needs ch_exp of two positive channel multipliers")

    def _act(self, b: Placer, name: str, y: int, k: int, reduction: int) -> None:
        if y > 0:
            DyShiftMax(k=k, reduction=reduction).expand(b, name)
        else:
            b.add(Activation(fn="relu6"), f"{name}.relu6")

    def _group_conv(self, b: Placer, name: str, c: int, groups: int) -> None:
        with b.within("micro pw"):
            unit(b, name, Conv2d(c=c, groups=groups), True, None)

    def _shuffle(self, b: Placer, name: str, groups: int) -> None:
        b.add(Shuffle(groups=groups), name)

    def expand(self, b: Placer, name: str) -> None:
        x = b.cur
        cin = b.shape().c
        c1, c2 = self.ch_exp
        g1, g2 = self.ch_per_group
        _, g3, g4 = self.groups_1x1
        y1, y2, y3 = self.dy
        red = self.reduction * self.r
        hidden = cin * c1 * c2
        if g1 == 0:  # block A
            MicroDw(k=self.k, s=self.s, m=(c1, c2)).expand(b, f"{name}/dw")
            self._act(b, f"{name}/act2", y2, 2 if y2 == 2 else 1, red)
            self._shuffle(b, f"{name}/shuffle1", g2)
            if y2:
                self._shuffle(b, f"{name}/shuffle2", hidden // 2)
            self._group_conv(b, f"{name}/pw", self.c, g3)
            if y3:
                DyShiftMax(k=1, reduction=red // 2).expand(b, f"{name}/act3")
            self._shuffle(b, f"{name}/shuffle3", g4)
            if y3 and self.c % 2 == 0:
                self._shuffle(b, f"{name}/shuffle4", self.c // 2)
        elif g4 == 0:  # block C
            self._group_conv(b, f"{name}/pw", hidden, g1)
            if y3:
                DyShiftMax(k=1, reduction=red).expand(b, f"{name}/act3")
        else:  # block B
            self._group_conv(b, f"{name}/pw1", hidden, g1)
            self._act(b, f"{name}/act1", y1, 2 if y1 == 2 else 1, red)
            self._shuffle(b, f"{name}/shuffle1", g2)
            MicroDw(k=self.k, s=self.s, m=(1, 1)).expand(b, f"{name}/dw")
            self._act(b, f"{name}/act2", y2, 2 if y2 == 2 else 1, red)
            if y1 and y2:
                self._shuffle(b, f"{name}/shuffle2", hidden // 4)
            elif y1 or y2:
                self._shuffle(b, f"{name}/shuffle2", hidden // 2)
            self._group_conv(b, f"{name}/pw2", self.c, g3)
            if y3:
                DyShiftMax(k=1, reduction=red // 2 if self.c < hidden else red).expand(
                    b, f"{name}/act3"
                )
            self._shuffle(b, f"{name}/shuffle3", g4)
            if y3:
                self._shuffle(b, f"{name}/shuffle4", self.c // 2)
        if self.s == (1, 1) and cin == self.c:
            b.add(Add(), f"{name}/add", inputs=[x, b.cur])


@block
class SsdPredictor(BnAct, Block):
    """SSD box and class predictors on one feature map (TF Object Detection API
    ``ConvolutionalBoxPredictor``): a k×k conv to anchors·4 box codes and one to
    anchors·classes scores (classes: the spec's, background included), both with biases.
    ``lite`` (SSDLite, arXiv:1801.04381 §6.2) makes each a k×k depthwise + BN + act, then a
    1×1 conv.
    """

    kind: ClassVar[str] = "ssd_predictor"
    anchors = arg(POS_INT, doc="anchors per location")
    k = arg(PAIR, (3, 3), doc="kernel size")
    lite = arg(BOOL, False, doc="depthwise-separable predictors (SSDLite)")
    box = arg(POS_INT, 4, doc="box code size")

    def expand(self, b: Placer, name: str) -> None:
        x = b.cur
        outputs = (("box", self.anchors * self.box), ("class", self.anchors * b.settings.classes))
        for part, width in outputs:
            b.cur = x
            with b.within(f"{part} predictor"):
                if self.lite:
                    unit(b, f"{name}/{part}_dw", Depthwise(k=self.k), self.bn, self.act)
                    b.add(Conv2d(c=width, bias=True), f"{name}/{part}")
                else:
                    b.add(Conv2d(c=width, k=self.k, bias=True), f"{name}/{part}")


@block
class Split(Block):
    """A channel split into ``parts`` equal chunks or the given ``sizes`` (as written, not
    scaled by α): views named ``NAME.0``, ``NAME.1``, …; the next row reads the last part
    (ShuffleNet V2 keeps the first and transforms the second)."""

    kind: ClassVar[str] = "split"
    parts = arg(POS_INT, None, doc="number of equal parts")
    sizes = arg(POS_INTS, None, doc="channels of each part")

    def check(self) -> None:
        if (self.parts is None) == (self.sizes is None):
            raise ValueError("split needs exactly one of parts or sizes")

    def expand(self, b: Placer, name: str) -> None:
        x = b.cur
        cin = b.shape().c
        if self.parts is not None:
            if cin % self.parts:
                raise b.row_error(f"{name}: {cin} channels do not split into {self.parts} "
                                  "equal parts")
            sizes = [cin // self.parts] * self.parts
        else:
            sizes = list(self.sizes)
            if sum(sizes) != cin:
                raise b.row_error(f"{name}: split sizes {'+'.join(map(str, sizes))} = "
                                  f"{sum(sizes)} do not add up to the {cin} input channels")
        start = 0
        for i, c in enumerate(sizes):
            b.add(Slice(c=c, start=start), f"{name}.{i}", inputs=[x])
            start += c


def projection_stride(x: tuple[int, int], y: tuple[int, int]) -> tuple[int, int] | None:
    """The stride of a 1×1 shortcut conv from size ``x`` to ``y`` (PyTorch: ⌈n/s⌉ per
    axis), the smallest that gives it, or None when none does: 41 → 21 is stride 2, as
    the strided 3×3 beside it pads. Counts do not depend on which stride gives the size."""
    stride = []
    for n, m in zip(x, y, strict=True):
        s = -(-n // m)
        if -(-n // s) != m:
            return None
        stride.append(s)
    return (stride[0], stride[1])


@block
class Residual(BnAct, Block):
    """Adds the block's input (or ``from``) to the current output: a residual connection.

    When the shapes differ, ``mode: project`` (default) puts a projection shortcut on the
    input, as ResNet does: a 1×1 conv with the spatial stride and BN (``proj: conv``; at odd
    sizes the stride that gives ⌈n/s⌉, as PyTorch pads), GhostNet's k×k depthwise with the
    stride + BN then 1×1 + BN (``proj: dwconv``), or
    ResNet-D's 2×2 average pool then 1×1 conv (``proj: avgconv``); ``mode: skip`` leaves the
    residual out (as MobileNet and EfficientNet do at a stride); ``mode: error`` refuses.
    """

    kind: ClassVar[str] = "residual"
    takes_from: ClassVar[bool] = True
    mode = arg(ArgType("project, skip or error", CHOICE("project", "skip", "error")),
               "project", doc="what to do when the shapes differ")
    proj = arg(ArgType("conv, avgconv or dwconv", CHOICE("conv", "avgconv", "dwconv")), "conv",
               doc="the projection")
    k = arg(PAIR, (3, 3), doc="kernel of the dwconv projection's depthwise")

    def expand(self, b: Placer, name: str) -> None:
        y = b.cur
        if b.row_from and len(b.row_from) != 1:
            raise b.row_error(f"residual adds one input, got {len(b.row_from)}")
        x = b.row_from[0] if b.row_from else b.scopes[-1].input
        xs, ys = b.shapes[x], b.shapes[y]
        if xs != ys:
            if self.mode == "skip":
                return
            stride = projection_stride((xs.h, xs.w), (ys.h, ys.w))
            if self.mode == "error" or stride is None:
                raise b.row_error(f"{name}: residual needs the input's shape {xs} to match "
                                  f"the output's {ys}" + ("" if self.mode == "error" else
                                                          " or reach its size through a 1×1 "
                                                          "conv with a stride (⌈n/s⌉)"))
            b.cur = x
            with b.within("shortcut"):
                if self.proj == "avgconv" and stride != (1, 1):
                    b.add(Pool(op="avg", k=stride, s=stride, ceil=True), f"{name}/pool")
                    stride = (1, 1)
                if self.proj == "dwconv":
                    unit(b, f"{name}/proj_dw", Depthwise(k=self.k, s=stride, padding="torch"),
                         self.bn, None)
                    stride = (1, 1)
                unit(b, f"{name}/proj", Conv2d(c=ys.c, s=stride), self.bn, None)
            x = b.cur
        b.add(Add(), f"{name}/add" if xs != ys else name, inputs=[y, x])

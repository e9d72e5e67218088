"""Composite rows: the blocks a paper's table is written in, expanded to primitives.

``conv``, ``dw``, ``pw`` and ``fc`` are one primitive followed by optional batch norm
and activation; ``dwsep`` is MobileNet V1's depthwise-separable block (arXiv:1704.04861
Fig. 3) and ``ir`` MobileNet V2's inverted residual with linear bottleneck
(arXiv:1801.04381 Table 1). Counting never sees a block, only what it expands to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from macscalc.layers import (
    Activation,
    Add,
    BatchNorm,
    Conv2d,
    ConvArgs,
    Depthwise,
    DepthwiseArgs,
    Layer,
    Linear,
    LinearArgs,
)
from macscalc.schema import ACT, BOOL, CHANNELS, PADDING, PAIR, POS_INT, RATIO, Kind, arg, declared

if TYPE_CHECKING:
    from macscalc.graph import Builder


class Block(Kind):
    """Base of composite rows: ``expand`` appends primitives to the builder."""

    def expand(self, b: Builder, name: str) -> None:
        raise NotImplementedError


BLOCKS: dict[str, type[Block]] = {}


def block(cls: type[Block]) -> type[Block]:
    """Register a composite row kind; a duplicate name is a bug."""
    if cls.kind in BLOCKS:
        raise RuntimeError(f"block kind {cls.kind!r} registered twice")
    BLOCKS[cls.kind] = cls
    return cls


def _pick(obj: Any, group: type) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in declared(group)}


def unit(b: Builder, name: str, layer: Layer, bn: bool, act: str | None) -> None:
    """A layer, then batch norm and activation when asked: ``name``, ``name.bn``, ``name.act``."""
    b.add(layer, name)
    if bn:
        b.add(BatchNorm(), f"{name}.bn")
    if act:
        b.add(Activation(fn=act), f"{name}.{act}")


class BnAct:
    """Batch norm and activation after a conv; both follow the spec's ``defaults:``."""

    bn = arg(BOOL, False, inherit=True, doc="batch norm after the conv")
    act = arg(ACT, None, inherit=True, doc="activation after the conv")


@block
class Conv(ConvArgs, BnAct, Block):
    """A convolution with its batch norm and activation."""

    kind: ClassVar[str] = "conv"

    def expand(self, b: Builder, name: str) -> None:
        unit(b, f"{name}/conv", Conv2d(**_pick(self, ConvArgs)), self.bn, self.act)


@block
class Pw(BnAct, Block):
    """A pointwise (1×1) convolution with its batch norm and activation."""

    kind: ClassVar[str] = "pw"
    c = arg(CHANNELS, width=True, doc="output channels")
    groups = arg(POS_INT, 1, doc="groups")
    bias = arg(BOOL, False, doc="with a bias")

    def expand(self, b: Builder, name: str) -> None:
        conv = Conv2d(c=self.c, groups=self.groups, bias=self.bias)
        unit(b, f"{name}/pw", conv, self.bn, self.act)


@block
class Dw(DepthwiseArgs, BnAct, Block):
    """A depthwise convolution with its batch norm and activation."""

    kind: ClassVar[str] = "dw"

    def expand(self, b: Builder, name: str) -> None:
        unit(b, f"{name}/dw", Depthwise(**_pick(self, DepthwiseArgs)), self.bn, self.act)


@block
class Fc(LinearArgs, Block):
    """A fully connected layer; batch norm and activation only when the row asks."""

    kind: ClassVar[str] = "fc"
    bn = arg(BOOL, False, doc="batch norm after the layer")
    act = arg(ACT, None, doc="activation after the layer")

    def expand(self, b: Builder, name: str) -> None:
        unit(b, f"{name}/fc", Linear(**_pick(self, LinearArgs)), self.bn, self.act)


@block
class DwSep(BnAct, Block):
    """Depthwise-separable conv: k×k depthwise + BN + act, then 1×1 pointwise + BN + act."""

    kind: ClassVar[str] = "dwsep"
    c = arg(CHANNELS, width=True, doc="output channels of the pointwise conv")
    k = arg(PAIR, (3, 3), doc="depthwise kernel size")
    s = arg(PAIR, (1, 1), doc="depthwise stride")
    padding = arg(PADDING, "same", inherit=True, doc="padding")

    def expand(self, b: Builder, name: str) -> None:
        unit(
            b, f"{name}/dw", Depthwise(k=self.k, s=self.s, padding=self.padding), self.bn, self.act
        )
        unit(b, f"{name}/pw", Conv2d(c=self.c), self.bn, self.act)


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
    residual = arg(BOOL, True, doc="add the input when stride 1 and cin == cout")

    def check(self) -> None:
        if (self.t is None) == (self.exp is None):
            raise ValueError(
                "ir needs exactly one of t (expansion ratio) or exp (expanded channels)"
            )

    def expand(self, b: Builder, name: str) -> None:
        x_in = b.cur
        cin = b.shape().c
        hidden = b.rule.expand(cin, self.t) if self.t is not None else self.exp
        if hidden != cin:
            unit(b, f"{name}/expand", Conv2d(c=hidden), self.bn, self.act)
        unit(
            b, f"{name}/dw", Depthwise(k=self.k, s=self.s, padding=self.padding), self.bn, self.act
        )
        unit(b, f"{name}/project", Conv2d(c=self.c), self.bn, None)
        if self.residual and self.s == (1, 1) and cin == self.c:
            b.add(Add(), f"{name}/add", inputs=[x_in, b.cur])

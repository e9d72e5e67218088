"""Composite rows: the blocks a paper's table is written in, expanded to primitives.

``conv``, ``dw``, ``pw`` and ``fc`` are one primitive followed by optional batch norm
and activation; ``dwsep`` is MobileNet V1's depthwise-separable block (arXiv:1704.04861
Fig. 3) and ``ir`` MobileNet V2's inverted residual with linear bottleneck
(arXiv:1801.04381 Table 1). Counting never sees a block, only what it expands to.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction
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
from macscalc.schema import ACT, BOOL, CHANNELS, PADDING, PAIR, POS_INT, RATIO, arg

if TYPE_CHECKING:
    from macscalc.graph import Builder


class Block:
    """Base of composite rows: ``expand`` appends primitives to the builder."""

    kind: ClassVar[str]

    def expand(self, b: Builder, name: str) -> None:
        raise NotImplementedError


BLOCKS: dict[str, type[Block]] = {}


def block(cls: type[Block]) -> type[Block]:
    """Register a composite row kind; a duplicate name is a bug."""
    if cls.kind in BLOCKS:
        raise RuntimeError(f"block kind {cls.kind!r} registered twice")
    BLOCKS[cls.kind] = cls
    return cls


def _pick(obj: Any, args_cls: type) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(args_cls)}


def unit(b: Builder, name: str, layer: Layer, bn: bool, act: str | None) -> None:
    """A layer, then batch norm and activation when asked: ``name``, ``name.bn``, ``name.act``."""
    b.add(layer, name)
    if bn:
        b.add(BatchNorm(), f"{name}.bn")
    if act:
        b.add(Activation(fn=act), f"{name}.{act}")


@dataclass(frozen=True, kw_only=True)
class BnAct:
    """Batch norm and activation after a conv; both follow the spec's ``defaults:``."""

    bn: bool = arg(BOOL, False, inherit=True, doc="batch norm after the conv")
    act: str | None = arg(ACT, None, inherit=True, doc="activation after the conv")


@block
@dataclass(frozen=True, kw_only=True)
class Conv(ConvArgs, BnAct, Block):
    """A convolution with its batch norm and activation."""

    kind: ClassVar[str] = "conv"

    def expand(self, b: Builder, name: str) -> None:
        unit(b, f"{name}/conv", Conv2d(**_pick(self, ConvArgs)), self.bn, self.act)


@block
@dataclass(frozen=True, kw_only=True)
class Pw(BnAct, Block):
    """A pointwise (1×1) convolution with its batch norm and activation."""

    kind: ClassVar[str] = "pw"
    c: int = arg(CHANNELS, width=True, doc="output channels")
    groups: int = arg(POS_INT, 1, doc="groups")
    bias: bool = arg(BOOL, False, doc="with a bias")

    def expand(self, b: Builder, name: str) -> None:
        conv = Conv2d(c=self.c, groups=self.groups, bias=self.bias)
        unit(b, f"{name}/pw", conv, self.bn, self.act)


@block
@dataclass(frozen=True, kw_only=True)
class Dw(DepthwiseArgs, BnAct, Block):
    """A depthwise convolution with its batch norm and activation."""

    kind: ClassVar[str] = "dw"

    def expand(self, b: Builder, name: str) -> None:
        unit(b, f"{name}/dw", Depthwise(**_pick(self, DepthwiseArgs)), self.bn, self.act)


@block
@dataclass(frozen=True, kw_only=True)
class Fc(LinearArgs, Block):
    """A fully connected layer; batch norm and activation only when the row asks."""

    kind: ClassVar[str] = "fc"
    bn: bool = arg(BOOL, False, doc="batch norm after the layer")
    act: str | None = arg(ACT, None, doc="activation after the layer")

    def expand(self, b: Builder, name: str) -> None:
        unit(b, f"{name}/fc", Linear(**_pick(self, LinearArgs)), self.bn, self.act)


@block
@dataclass(frozen=True, kw_only=True)
class DwSep(BnAct, Block):
    """Depthwise-separable conv: k×k depthwise + BN + act, then 1×1 pointwise + BN + act."""

    kind: ClassVar[str] = "dwsep"
    c: int = arg(CHANNELS, width=True, doc="output channels of the pointwise conv")
    k: tuple[int, int] = arg(PAIR, (3, 3), doc="depthwise kernel size")
    s: tuple[int, int] = arg(PAIR, (1, 1), doc="depthwise stride")
    padding: str | tuple[int, int] = arg(PADDING, "same", inherit=True, doc="padding")

    def expand(self, b: Builder, name: str) -> None:
        unit(
            b, f"{name}/dw", Depthwise(k=self.k, s=self.s, padding=self.padding), self.bn, self.act
        )
        unit(b, f"{name}/pw", Conv2d(c=self.c), self.bn, self.act)


@block
@dataclass(frozen=True, kw_only=True)
class InvertedResidual(BnAct, Block):
    """MobileNet V2 bottleneck: 1×1 expansion, k×k depthwise, linear 1×1 projection.

    Semantics of TF-slim ``expanded_conv`` (conv_blocks.py): no expansion conv when the
    expanded width equals the input width (t = 1); the projection has BN and no
    activation; the residual add exists only when stride is 1 and cin == cout.
    """

    kind: ClassVar[str] = "ir"
    c: int = arg(CHANNELS, width=True, doc="output channels")
    t: Fraction | None = arg(RATIO, None, doc="expansion ratio (expanded = rounded cin·t)")
    exp: int | None = arg(POS_INT, None, width=True, doc="expanded channels (instead of t)")
    k: tuple[int, int] = arg(PAIR, (3, 3), doc="depthwise kernel size")
    s: tuple[int, int] = arg(PAIR, (1, 1), doc="depthwise stride")
    padding: str | tuple[int, int] = arg(PADDING, "same", inherit=True, doc="padding")
    residual: bool = arg(BOOL, True, doc="add the input when stride 1 and cin == cout")

    def __post_init__(self) -> None:
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

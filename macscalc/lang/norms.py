"""The norms of modern convnets beyond batch and layer norm: group norm and ConvNeXt-V2's
global response norm. Their γ and β are norm parameters (the ``ln_*`` parts, counted by
PyTorch's sum(p.numel())); their arithmetic is extra ``bn`` operations, never MACs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from macscalc.core.errors import ShapeError
from macscalc.lang.layers import LN_OPS, Formula, Layer, Params, Shape, primitive
from macscalc.lang.schema import POS_INT, arg

# GRN per element: square and sum (the L2 norm over positions), x·n, γ·, +β, +x; per
# channel: the square root, the sum into the channel mean, the divide
GRN_OPS = 6
GRN_CHANNEL_OPS = 3


@primitive
class GroupNorm(Layer):
    """Group norm over ``groups`` channel groups (1: over channels and positions, as
    PoolFormer; c: instance norm): γ and β per channel."""

    kind: ClassVar[str] = "groupnorm"
    groups = arg(POS_INT, 1, doc="channel groups")

    def out_shape(self, ins: Sequence[Shape]) -> Shape:
        if ins[0].c % self.groups:
            raise ShapeError(f"groupnorm groups={self.groups} must divide the {ins[0].c} "
                             "channels")
        return ins[0]

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(ln_scale=ins[0].c, ln_shift=ins[0].c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"bn": LN_OPS * out.numel}

    def label(self, ins: Sequence[Shape]) -> str:
        return "group norm"

    def detail(self) -> str:
        return f"g{self.groups}"


@primitive
class GlobalResponseNorm(Layer):
    """ConvNeXt-V2's GRN (arXiv:2301.00808 Alg. 1): x + β + γ·x·n, n the per-channel L2
    norm over positions divided by its mean over channels; γ and β per channel."""

    kind: ClassVar[str] = "grn"

    def params(self, ins: Sequence[Shape]) -> Params:
        return Params(ln_scale=ins[0].c, ln_shift=ins[0].c)

    def ops(self, ins: Sequence[Shape], out: Shape) -> dict[str, int]:
        return {"bn": GRN_OPS * out.numel + GRN_CHANNEL_OPS * out.c}

    def label(self, ins: Sequence[Shape]) -> str:
        return "grn"

    def formulas(self, ins: Sequence[Shape], out: Shape) -> dict[str, Formula]:
        return {"params": ("2·c (γ, β)", f"2·{out.c}"),
                "bn": (f"{GRN_OPS}·h·w·c + {GRN_CHANNEL_OPS}·c",
                       f"{GRN_OPS}·{out.h}·{out.w}·{out.c} + {GRN_CHANNEL_OPS}·{out.c}")}

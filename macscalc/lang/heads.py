"""Segmentation heads: DeepLabv3's ASPP, MobileNet V3's LR-ASPP, and per-pixel logits.

Rows of these kinds go after a backbone (usually a ``base:``, run at an output stride,
``atrous.py``). Bilinear upsampling costs no MACs, only ``pool`` operations when counted.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from macscalc.core.limits import MAX_WINDOW
from macscalc.lang.blocks import Block, BnAct, block, unit
from macscalc.lang.layers import Add, Concat, Conv2d, Depthwise, GlobalPool, Mul, Upsample
from macscalc.lang.schema import BOOL, CHANNELS, POS_INT, ArgType, arg

if TYPE_CHECKING:
    from macscalc.lang.placing import Placer


def _rates(v: Any) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(
            isinstance(r, int) and not isinstance(r, bool) and 1 <= r <= MAX_WINDOW for r in v):
        raise ValueError
    return tuple(v)


RATES = ArgType(f"a list of atrous rates (positive integers up to {MAX_WINDOW:,}); [] for none",
                _rates)


def _to_input(b: Placer, name: str) -> None:
    """Bilinear upsampling of the current tensor to the network's input size."""
    b.add(Upsample(size=(b.input.h, b.input.w), mode="bilinear"), name)


@block
class Aspp(BnAct, Block):
    """DeepLabv3's atrous spatial pyramid pooling (arXiv:1706.05587 §3.3; TF
    ``deeplab/model.py``): a 1×1 conv, a 3×3 conv at each atrous rate, and image pooling
    (global average pool, 1×1 conv, bilinear upsampling back), each to ``c`` channels with
    BN and activation, concatenated and projected by a 1×1 conv. The rates are written for
    output stride ``at`` (DeepLab's 6, 12, 18 at 16) and scale to the build's output
    stride (12, 24, 36 at 8). ``rates: []`` leaves the 1×1 and image pooling (the V2 paper's
    head without ASPP); ``sep`` makes each 3×3 depthwise + 1×1 (DeepLabv3+)."""

    kind: ClassVar[str] = "aspp"
    c = arg(CHANNELS, 256, width=True, doc="channels of every branch and of the projection")
    rates = arg(RATES, (6, 12, 18), doc="atrous rates of the 3×3 branches, at output stride at")
    at = arg(POS_INT, 16, doc="the output stride the rates are written for")
    pool = arg(BOOL, True, doc="with the image-pooling branch")
    sep = arg(BOOL, False, doc="depthwise-separable 3×3 branches")

    def _scaled(self, b: Placer, name: str) -> list[int]:
        os = b.settings.output_stride
        scale = Fraction(self.at, os) if os else Fraction(1)
        rates = [r * scale for r in self.rates]
        if any(r.denominator != 1 for r in rates):
            raise b.row_error(f"{name}: rates {list(self.rates)} at output stride {self.at} do "
                              f"not scale to whole rates at output stride {os}")
        return [int(r) for r in rates]

    def expand(self, b: Placer, name: str) -> None:
        x, shape = b.cur, b.shape()
        branches = []
        with b.within("aspp"):
            unit(b, f"{name}/b0", Conv2d(c=self.c), self.bn, self.act)
            branches.append(b.cur)
            for i, r in enumerate(self._scaled(b, name), 1):
                b.cur = x
                if self.sep:
                    unit(b, f"{name}/b{i}_dw", Depthwise(d=(r, r)), self.bn, self.act)
                    unit(b, f"{name}/b{i}", Conv2d(c=self.c), self.bn, self.act)
                else:
                    unit(b, f"{name}/b{i}", Conv2d(c=self.c, k=(3, 3), d=(r, r)), self.bn,
                         self.act)
                branches.append(b.cur)
            if self.pool:
                b.cur = x
                b.add(GlobalPool(op="avg"), f"{name}/pool")
                unit(b, f"{name}/pool_conv", Conv2d(c=self.c), self.bn, self.act)
                b.add(Upsample(size=(shape.h, shape.w), mode="bilinear"), f"{name}/pool_up")
                branches.append(b.cur)
            if len(branches) > 1:
                b.add(Concat(), f"{name}/concat", inputs=branches)
            unit(b, f"{name}/project", Conv2d(c=self.c), self.bn, self.act)


@block
class Logits(Block):
    """Per-pixel class scores: a 1×1 conv with bias to ``c`` (the spec's classes), then
    bilinear upsampling to the input size (DeepLab's logits and resize)."""

    kind: ClassVar[str] = "logits"
    c = arg(CHANNELS, "classes", width=True, doc="output channels (default: classes)")

    def expand(self, b: Placer, name: str) -> None:
        b.add(Conv2d(c=self.c, bias=True), f"{name}/conv")
        _to_input(b, f"{name}/resize")


@block
class LrAspp(Block):
    """MobileNet V3's Lite R-ASPP (arXiv:1905.02244 §6.4, Fig. 10; torchvision
    ``LRASPPHead``): on the last feature map a 1×1 conv + BN + ReLU to ``c``, gated by a
    sigmoid of global pooling and a 1×1 conv; upsampled to the low-level feature (``from``,
    output stride 8) and classified there by a 1×1 conv with bias, plus a 1×1 conv with bias
    of the low-level feature; the sum is upsampled to the input. The paper's 49×49 pooling
    of stride (16, 20) is taken as global pooling, as torchvision does."""

    kind: ClassVar[str] = "lr_aspp"
    takes_from: ClassVar[bool] = True
    c = arg(CHANNELS, 128, width=True, doc="the head's filters (F)")
    classes = arg(CHANNELS, "classes", width=True, doc="output channels (default: classes)")

    def expand(self, b: Placer, name: str) -> None:
        if not b.row_from or len(b.row_from) != 1:
            raise b.row_error(f"{name}: lr_aspp needs from: the low-level feature map")
        x, (low,) = b.cur, b.row_from
        with b.within("lr-aspp"):
            unit(b, f"{name}/cbr", Conv2d(c=self.c), True, "relu")
            y = b.cur
            b.cur = x
            b.add(GlobalPool(op="avg"), f"{name}/pool")
            unit(b, f"{name}/scale", Conv2d(c=self.c), False, "sigmoid")
            b.add(Mul(), f"{name}/gate", inputs=[y, b.cur])
            low_shape = b.shapes[low]
            b.add(Upsample(size=(low_shape.h, low_shape.w), mode="bilinear"), f"{name}/up")
            high = b.add(Conv2d(c=self.classes, bias=True), f"{name}/high_classifier")
            b.add(Conv2d(c=self.classes, bias=True), f"{name}/low_classifier", inputs=[low])
            b.add(Add(), f"{name}/add", inputs=[high, b.cur])
        _to_input(b, f"{name}/resize")

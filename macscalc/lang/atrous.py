"""Output stride: past a requested stride, a backbone's strides become dilations.

DeepLab runs one classification backbone at output stride 32, 16 or 8 the way TF-slim
does (``mobilenet_base``, ``resnet_utils.stack_blocks_dense``): once the input has been
reduced ``output_stride`` times, each further stride s is dropped and the atrous rate of
every later convolution grows s times; the layer that drops its stride keeps the rate it
had. A 1×1 kernel is left alone (a rate changes nothing there), and an explicit
(PyTorch) padding grows with the rate, as torchvision's dilated ResNets pad by the
dilation, so a 'same'-sized output stays so. MACs do not change: a dilated kernel has as
many taps as the undilated one; only the spatial sizes do.
"""

from __future__ import annotations

from collections.abc import Sequence

from macscalc.core.errors import ShapeError
from macscalc.lang.layers import Conv2d, ConvTranspose2d, Depthwise, Layer, Pool, Upsample

Pair = tuple[int, int]
_ONE = (1, 1)


class Atrous:
    """Follows each tensor's stride (input side over its side) and atrous rate while a
    network is built, and rewrites strided layers past ``output_stride``. With
    ``backbone_only`` (a spec with a ``base:``) only the base's layers are rewritten:
    the head's dilations are its own."""

    def __init__(self, output_stride: int, backbone_only: bool) -> None:
        self.output_stride = output_stride
        self.backbone_only = backbone_only
        self.stride: dict[str, Pair] = {}
        self.rate: dict[str, Pair] = {}

    def place(self, layer: Layer, inputs: Sequence[str], name: str, in_base: bool) -> Layer:
        """``layer`` as it runs at this output stride; records its output's stride and rate."""
        stride = tuple(max(self.stride.get(n, _ONE)[i] for n in inputs) for i in (0, 1))
        rate = tuple(max(self.rate.get(n, _ONE)[i] for n in inputs) for i in (0, 1))
        rewrite = in_base or not self.backbone_only
        if isinstance(layer, Conv2d | Depthwise | Pool) and not rewrite:
            stride = tuple(a * b for a, b in zip(stride, layer.s, strict=True))
        elif isinstance(layer, Conv2d | Depthwise):
            layer, stride, rate = self._conv(layer, stride, rate)
        elif isinstance(layer, Pool):
            layer, stride = self._pool(layer, stride)
        elif isinstance(layer, Upsample) and layer.scale:
            stride = tuple(max(s // layer.scale, 1) for s in stride)
        elif isinstance(layer, ConvTranspose2d):
            stride = tuple(max(s // t, 1) for s, t in zip(stride, layer.s, strict=True))
        self.stride[name], self.rate[name] = stride, rate  # type: ignore[assignment]
        return layer

    def unstrided(self, x: str, y: str) -> bool:
        """Whether ``y`` has the stride of ``x``: a block whose stride became a dilation
        is then unstrided, and TF-slim's ``expanded_conv`` adds its residual."""
        return self.stride.get(x, _ONE) == self.stride.get(y, _ONE)

    def _conv(self, layer: Conv2d | Depthwise, stride: Sequence[int],
              rate: Sequence[int]) -> tuple[Layer, Pair, Pair]:
        s_new, d_new, out_stride, out_rate = [], [], [], []
        for i in (0, 1):
            s, cur, r = layer.s[i], stride[i], rate[i]
            if cur * s > self.output_stride:
                self._reachable(cur, s)
                s_new.append(1)
                out_stride.append(cur)
                out_rate.append(r * s)
            else:
                s_new.append(s)
                out_stride.append(cur * s)
                out_rate.append(r)
            d_new.append(layer.d[i] * r if layer.k[i] > 1 else layer.d[i])
        changes: dict = {"s": tuple(s_new), "d": tuple(d_new)}
        if isinstance(layer.padding, tuple):
            changes["padding"] = tuple(p * (dn // d) for p, dn, d in
                                       zip(layer.padding, d_new, layer.d, strict=True))
        return layer.replace(**changes), tuple(out_stride), tuple(out_rate)

    def _pool(self, layer: Pool, stride: Sequence[int]) -> tuple[Layer, Pair]:
        out = []
        for k, s, cur in zip(layer.k, layer.s, stride, strict=True):
            if cur * s > self.output_stride and k == 1:  # a subsampling: TF-slim drops it
                self._reachable(cur, s)
                out.append(cur)
                continue
            if cur * s > self.output_stride:
                self._reachable(cur, s)
                raise ShapeError(f"output stride {self.output_stride}: a pool's stride "
                                 f"{s} cannot become a dilation (the input is already "
                                 f"reduced {cur} times)")
            out.append(cur * s)
        s_new = tuple(1 if o == c else s for o, c, s in zip(out, stride, layer.s, strict=True))
        return layer.replace(s=s_new), tuple(out)  # type: ignore[return-value]

    def _reachable(self, cur: int, s: int) -> None:
        if cur != self.output_stride:
            raise ShapeError(f"output stride {self.output_stride} cannot be reached: the "
                             f"strides take it from {cur} to {cur * s}")

"""The values a TFLite subgraph's tensors are read into, shared by the reader and its rules."""

from __future__ import annotations

from typing import NamedTuple

from macscalc.core.errors import ShapeError
from macscalc.lang.layers import Shape
from macscalc.models.tflite.model import Tensor

# ActivationFunctionType → macscalc activation (RELU_N1_TO_1 and SIGN_BIT have none)
FUSED_ACT = {0: None, 1: "relu", 3: "relu6", 4: "tanh"}
PADDING = {0: "same", 1: "valid"}


class Act(NamedTuple):
    """An image tensor: the network node holding it and its shape."""

    ref: str
    shape: Shape


class Const(NamedTuple):
    """A tensor with data in the file (through any ``DEQUANTIZE``): its stored tensor."""

    tensor: Tensor


class Padded(NamedTuple):
    """A ``PAD`` output, folded into the conv or pool that reads it."""

    act: Act
    pads: tuple[int, int, int, int]  # top, left, bottom, right


class Grouped(NamedTuple):
    """The channels split into (groups, channels / groups) by a rank-5 ``RESHAPE``: the first
    step of a channel shuffle; ``swapped`` after its ``TRANSPOSE``."""

    act: Act
    groups: int
    swapped: bool


class Rows(NamedTuple):
    """An image reshaped to (positions, channels) rows, as the converter writes a Keras
    ``Dense`` on an h×w×c tensor: a ``FULLY_CONNECTED`` of it is a linear layer at every
    position (the file's shapes of the rows are placeholders)."""

    act: Act


class Known(NamedTuple):
    """Shape arithmetic (``SHAPE``, then ``STRIDED_SLICE``, ``PACK``, ... of it and of
    constants), as a converter writes a reshape with a symbolic batch: computed from
    what the file declares, it counts nothing."""


class Dead(NamedTuple):
    """What follows an operator with no rule (reported, not counted)."""


Value = Act | Const | Padded | Grouped | Rows | Known | Dead


def image_shape(t: Tensor) -> Shape:
    """The NHWC shape of ``t`` as height × width × channels (batch 1): rank 4 is
    1×h×w×c, rank 3 1×l×c (l×1×c), rank 2 1×c (1×1×c)."""
    s = t.shape
    if not 2 <= len(s) <= 4 or s[0] != 1 or min(s) <= 0:
        raise ShapeError(f"tensor {t.name!r} of shape {list(s)} is not a batch-1 image")
    return Shape(*(list(s[1:-1]) + [1, 1])[:2], s[-1])

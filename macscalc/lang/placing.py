"""What a block may see and do while it is placed: the builder as blocks know it.

Blocks (``lang.blocks``) expand into primitives through this interface; the builder
(``lang.graph.Builder``) implements it. Keeping it here lets blocks stand below the
builder, which needs the block kinds, without an import loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from fractions import Fraction
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from macscalc.core.errors import MacscalcError
    from macscalc.core.rounding import RoundingRule
    from macscalc.lang.atrous import Atrous
    from macscalc.lang.layers import Layer, Shape


class Settings(NamedTuple):
    """The transforms applied to a spec: width multiplier, input size, classes, and the
    output stride past which the backbone's strides become dilations (None: as written)."""

    alpha: Fraction
    size: tuple[int, int]
    classes: int
    output_stride: int | None = None


class Scope(NamedTuple):
    """Where rows are being placed: names get ``prefix``; ``input`` means ``input``."""

    prefix: str
    input: str


class Placer(Protocol):
    """The builder's side that blocks use: place primitives, read shapes, report errors."""

    cur: str  # the tensor the next primitive reads by default
    input: Shape  # the network's input
    shapes: Mapping[str, Shape]
    rule: RoundingRule
    settings: Settings
    scopes: Sequence[Scope]
    row_from: tuple[str, ...] | None  # the resolved ``from`` of the row being expanded
    atrous: Atrous | None  # strides turned into dilations past the output stride, if any

    def shape(self, name: str | None = None) -> Shape: ...

    def add(self, layer: Layer, name: str, inputs: Sequence[str] | None = None) -> str: ...

    def within(self, role: str) -> AbstractContextManager[None]: ...

    def streamed(self, share: Fraction) -> AbstractContextManager[None]: ...

    def row_error(self, message: str) -> MacscalcError: ...


"""From a spec and its settings (α, resolution, classes) to a network of placed primitives.

Width and resolution are transforms applied here, never edits of the spec: each row's
channel fields are scaled by α through the spec's rounding rule (unless the row says
``width: fixed`` or ``width: {min: m}``), ``classes`` is substituted, and shapes flow
from the input through every primitive. Impossible shapes are errors at the row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, NamedTuple

from macscalc.blocks import Block
from macscalc.errors import MacscalcError, ShapeError
from macscalc.layers import Layer, Shape
from macscalc.spec import Row, Spec


class Node(NamedTuple):
    """One primitive in place: its inputs, their shapes, its output, and its row."""

    name: str
    layer: Layer
    inputs: tuple[str, ...]
    in_shapes: tuple[Shape, ...]
    out: Shape
    block: str
    block_kind: str
    role: str | None  # the part of a block it belongs to (``se``, ``micro pw``), if any
    stream: Fraction | None = None  # share that must exist when streamed (V2 §5), if any
    base: bool = False  # placed from the spec's base (a detector's backbone)


class Settings(NamedTuple):
    """The transforms applied to a spec: width multiplier, input size, classes."""

    alpha: Fraction
    size: tuple[int, int]
    classes: int


class Network(NamedTuple):
    spec: Spec
    settings: Settings
    input: Shape
    nodes: tuple[Node, ...]


class Builder:
    """Appends primitives, tracking every named tensor's shape. Blocks call ``add``."""

    def __init__(self, spec: Spec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.rule = spec.rounding
        self.input = Shape(settings.size[0], settings.size[1], spec.channels)
        self.shapes: dict[str, Shape] = {"input": self.input}
        self.aliases: dict[str, str] = {}
        self.nodes: list[Node] = []
        self.cur = "input"
        self.row: Row | None = None
        self.block = ("", "")
        self.roles: list[str] = []
        self.stream: Fraction | None = None
        self.in_base = False

    def resolve(self, name: str) -> str:
        name = self.aliases.get(name, name)
        if name not in self.shapes:
            raise self._error(f"no layer named {name!r} before this row")
        return name

    def shape(self, name: str | None = None) -> Shape:
        return self.shapes[self.resolve(name) if name else self.cur]

    def add(self, layer: Layer, name: str, inputs: Sequence[str] | None = None) -> str:
        """Place ``layer`` on ``inputs`` (default: the previous output) and make it current."""
        if name in self.shapes or name in self.aliases:
            raise self._error(f"layer name {name!r} is used twice")
        names = tuple(self.resolve(n) for n in inputs) if inputs else (self.cur,)
        ins = tuple(self.shapes[n] for n in names)
        if layer.arity is not None and len(ins) != layer.arity:
            raise self._error(f"{layer.kind} takes {layer.arity} input(s), got {len(ins)}")
        if layer.arity is None and len(ins) < 2:
            raise self._error(f"{layer.kind} takes two or more inputs, got {len(ins)}")
        try:
            layer = layer.resolve(ins)
            out = layer.out_shape(ins)
        except ShapeError as e:
            raise self._error(f"{name}: {e}") from None
        role = self.roles[-1] if self.roles else None
        self.nodes.append(Node(name, layer, names, ins, out, *self.block, role, self.stream,
                               self.in_base))
        self.shapes[name] = out
        self.cur = name
        return name

    @contextmanager
    def within(self, role: str) -> Iterator[None]:
        """Primitives added inside are grouped under ``role`` in the per-kind summary."""
        self.roles.append(role)
        try:
            yield
        finally:
            self.roles.pop()

    @contextmanager
    def streamed(self, share: Fraction) -> Iterator[None]:
        """Outputs added inside need only ``share`` of their size at a time when the block
        is computed slice by slice (MobileNet V2 §5: the expanded tensor never exists
        whole)."""
        self.stream = share
        try:
            yield
        finally:
            self.stream = None

    def row_error(self, message: str) -> MacscalcError:
        """An error located at the row being expanded (for blocks' own checks)."""
        return self._error(message)

    def _error(self, message: str) -> MacscalcError:
        if self.row is None:
            return MacscalcError(message, self.spec.file)
        return self.row.error(message)

    def scaled(self, row: Row) -> Any:
        """The row's item with α applied to its channel fields and ``classes`` substituted."""
        changes: dict[str, int] = {}
        for field_name, a in row.item.args.items():
            value = getattr(row.item, field_name)
            if not a.width or value is None:
                continue
            if value == "classes":
                changes[field_name] = self.settings.classes
            elif row.width != "fixed":
                alpha = (
                    self.settings.alpha
                    if row.width is None
                    else max(self.settings.alpha, row.width)
                )
                changes[field_name] = self.rule.width(value, alpha)
        return row.item.replace(**changes) if changes else row.item

    def place_row(self, row: Row, index: int) -> int:
        """Expand one row (all its repeats); returns the next block index."""
        self.row = row
        item = self.scaled(row)
        if row.role:
            self.roles.append(row.role)
        try:
            return self._place(row, item, index)
        finally:
            if row.role:
                self.roles.pop()

    def _place(self, row: Row, item: Any, index: int) -> int:
        for j in range(row.n):
            inst = item if j == 0 or "s" not in item.args else item.replace(s=(1, 1))
            if row.name:
                name = row.name if row.n == 1 else f"{row.name}_{j + 1}"
            else:
                name = f"{item.kind}{index}"
            index += 1
            inputs = row.inputs if j == 0 else None
            self.block = (name, item.kind)
            if isinstance(inst, Block):
                if inputs:
                    if len(inputs) != 1:
                        raise self._error(f"{item.kind} takes one input, got {len(inputs)}")
                    self.cur = self.resolve(inputs[0])
                if name in self.shapes or name in self.aliases:
                    raise self._error(f"layer name {name!r} is used twice")
                inst.expand(self, name)
                self.aliases[name] = self.cur
            else:
                if inputs and (inst.arity is None or inst.arity > 1) and len(inputs) == 1:
                    inputs = (self.cur, *inputs)  # `add: {from: x}` adds x to the previous output
                self.add(inst, name, inputs)
        if row.name and row.n > 1:
            self.aliases[row.name] = self.cur
        return index


def build(
    spec: Spec,
    alpha: Fraction = Fraction(1),
    size: tuple[int, int] | None = None,
    classes: int | None = None,
) -> Network:
    """Apply the transforms and place every primitive; shape errors point at their row."""
    settings = Settings(alpha, size or spec.size, classes or spec.classes)
    b = Builder(spec, settings)
    index = 0
    if spec.base is not None:
        b.in_base = True
        b.rule = spec.base.spec.rounding  # the backbone keeps its own width rule
        for row in spec.base.spec.rows:
            index = b.place_row(row, index)
            if spec.base.until in b.shapes or spec.base.until in b.aliases:
                break
        else:
            raise MacscalcError(f"base spec {spec.base.spec.name!r} has no layer named "
                                f"{spec.base.until!r}", spec.file, spec.base.line, spec.base.col)
        b.in_base = False
        b.rule = spec.rounding
    for row in spec.rows:
        index = b.place_row(row, index)
    return Network(spec, settings, b.input, tuple(b.nodes))

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

from macscalc.core.errors import MacscalcError, ShapeError
from macscalc.core.limits import MAX_EXPANDED_ROWS, MAX_LAYERS
from macscalc.lang.atrous import Atrous
from macscalc.lang.blocks import Block
from macscalc.lang.layers import Layer, Shape
from macscalc.lang.placing import Scope, Settings
from macscalc.lang.spec import Base, Row, Spec, UserBlock, Width
from macscalc.lang.tokens import layout_error


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


class Network(NamedTuple):
    spec: Spec
    settings: Settings
    input: Shape
    nodes: tuple[Node, ...]
    origin: str | None = None  # what an imported file (ONNX) held, for the convention line
    stored: dict | None = None  # what a TFLite file stores: weight parts at their types, bytes




class Placed(NamedTuple):
    """What placing one row added: its nodes, their output shapes by name, the current
    tensor after it, and whether it was a block (whose name is an alias)."""

    nodes: tuple[Node, ...]
    shapes: dict[str, Shape]
    cur: str
    is_block: bool
    row: Row  # held, so that no other row can take the id its key is filed under


class Replay:
    """Rows placed by earlier builds of one spec, placed again without expanding them.

    A sweep builds one network per channel configuration and class of resolutions, and
    most rows read the same in each. A row's placement depends only on what ``_reads``
    keys: the row (by identity; an entry holds it, as rows a ``$in`` block expands while
    placed may come and go) and repeat, its α-scaled widths, the tensors it reads (the current
    one, the scope's input, its ``from``) with their shapes, the role, whether it is in
    the base (so the rule) and ``classes``; a block reads the builder through nothing
    else. Nodes are immutable, so networks share them. Cleared past ``LIMIT`` rows.
    """

    LIMIT = 20_000

    def __init__(self) -> None:
        self.rows: dict[tuple[Any, ...], Placed] = {}

    def get(self, key: tuple[Any, ...]) -> Placed | None:
        return self.rows.get(key)

    def keep(self, key: tuple[Any, ...], nodes: tuple[Node, ...], cur: str,
             is_block: bool, row: Row) -> None:
        if len(self.rows) >= self.LIMIT:
            self.rows.clear()
        self.rows[key] = Placed(nodes, {n.name: n.out for n in nodes}, cur, is_block, row)


class Builder:
    """Appends primitives, tracking every named tensor's shape; the blocks' ``Placer``.

    Names: a row's ``name``, or its kind and its ordinal among the rows of that kind in
    the same list (``ir3``: the third ``ir`` row), ``_j`` for its repeats. Inserting a row
    of another kind renames nothing, and a name the user wrote always wins. Inside a use of
    a spec's own block, names are scoped ``instance/inner``, and ``from:`` looks in the
    instance first, then outwards.
    """

    def __init__(self, spec: Spec, settings: Settings, replay: Replay | None = None) -> None:
        self.spec = spec
        self.replay = replay
        self.settings = settings
        self.rule = spec.rounding
        self.input = Shape(settings.size[0], settings.size[1], spec.channels)
        self.shapes: dict[str, Shape] = {"input": self.input}
        self.aliases: dict[str, str] = {}
        self.nodes: list[Node] = []
        self.cur = "input"
        self.row: Row | None = None
        self.row_from: tuple[str, ...] | None = None  # resolved ``from`` of a block row
        self.block = ("", "")
        self.roles: list[str] = []
        self.stream: Fraction | None = None
        self.in_base = False
        self.scopes = [Scope("", "input")]
        self.ordinals: dict[tuple[str, str], int] = {}
        self.width: list[Width] = []  # a spec block's row ``width``, for the rows inside
        self.atrous: Atrous | None = None
        self.expanded = 0  # rows of blocks expanded here, where ``$in`` is known
        if settings.output_stride is not None:
            self.atrous = Atrous(settings.output_stride, backbone_only=spec.base is not None)
            self.replay = None  # a replayed row would not record its strides and rates

    def resolve(self, name: str) -> str:
        """A written name as the tensor it means: ``prev``, ``input``, then the innermost
        scope outwards."""
        if name == "prev":
            return self.cur
        if name == "input":
            return self.scopes[-1].input
        for scope in reversed(self.scopes):
            full = scope.prefix + name
            full = self.aliases.get(full, full)
            if full in self.shapes:
                return full
        from macscalc.lang.spec import suggest

        known = [n for n in (*self.shapes, *self.aliases) if "/" not in n.removeprefix(
            self.scopes[-1].prefix)]
        raise self._error(f"no layer named {name!r} before this row"
                          f"{suggest(name, known)}")

    def shape(self, name: str | None = None) -> Shape:
        return self.shapes[self.resolve(name) if name else self.cur]

    def add(self, layer: Layer, name: str, inputs: Sequence[str] | None = None) -> str:
        """Place ``layer`` on ``inputs`` (default: the previous output) and make it current.
        Inputs are tensors' full names, never resolved again: a block's input ``conv1``
        must not be read as the block's own ``blk/conv1``."""
        if name in self.shapes or name in self.aliases:
            raise self._error(f"layer name {name!r} is used twice")
        if len(self.nodes) >= MAX_LAYERS:
            raise self._error(f"the network has more than {MAX_LAYERS:,} layers")
        names = tuple(inputs) if inputs else (self.cur,)
        ins = tuple(self.shapes[n] for n in names)
        if layer.arity is not None and len(ins) != layer.arity:
            raise self._error(f"{layer.kind} takes {layer.arity} input(s), got {len(ins)}")
        if layer.arity is None and len(ins) < 2:
            raise self._error(f"{layer.kind} takes two or more inputs, got {len(ins)}")
        if (wrong := layout_error(layer.kind, ins)) is not None:
            raise self._error(f"{name}: {wrong}")
        try:
            if self.atrous is not None:
                layer = self.atrous.place(layer, names, name, self.in_base)
            layer = layer.resolve(ins)
            out = layer.out_shape(ins)
        except ShapeError as e:
            raise self._error(f"{name}: {e}") from None
        if min(out) <= 0:
            raise self._error(f"{name}: {layer.kind} makes an empty {out} tensor")
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

    def changes(self, row: Row) -> dict[str, int]:
        """The row's channel fields with α applied and ``classes`` substituted."""
        changes: dict[str, int] = {}
        width = row.width if row.width is not None or not self.width else self.width[-1]
        for field_name in row.item.width_args:
            value = getattr(row.item, field_name)
            if value is None:
                continue
            if value == "classes":
                changes[field_name] = self.settings.classes
            elif width != "fixed" and field_name not in row.built:  # $in: built already
                alpha = self.settings.alpha if width is None else max(self.settings.alpha, width)
                changes[field_name] = self.rule.width(value, alpha)
        return changes

    def place_rows(self, rows: Sequence[Row]) -> None:
        """One list of rows (the spec's, or one block instance's) in the current scope."""
        mine = {r.name for r in rows if r.name}
        for row in rows:
            self.place_row(row, mine)

    def _name(self, row: Row, mine: set[str]) -> str:
        prefix = self.scopes[-1].prefix
        key = (prefix, row.item.kind)
        self.ordinals[key] = self.ordinals.get(key, 0) + 1
        if row.name:
            return row.name
        auto = f"{row.item.kind}{self.ordinals[key]}"
        return f"{auto}_auto" if auto in mine else auto

    def place_row(self, row: Row, mine: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """Expand one row, all its repeats."""
        self.row = row
        base = self._name(row, mine)
        if row.role:
            self.roles.append(row.role)
        try:
            for j in range(row.n):
                name = self.scopes[-1].prefix + (base if row.n == 1 else f"{base}_{j + 1}")
                self._place(row, j, name)
                self.row = row
            if row.n > 1:
                self.aliases[self.scopes[-1].prefix + base] = self.cur
        finally:
            if row.role:
                self.roles.pop()

    def _place(self, row: Row, j: int, name: str) -> None:
        inputs = row.inputs if j == 0 else None
        if isinstance(row.item, UserBlock):
            self._instance(row, j, name, inputs)
            return
        changes = self.changes(row)
        key = None
        if self.replay is not None:
            key = self._reads(row, j, name, changes, inputs)
            if key is not None and self._replay(key, name):
                return
        start = len(self.nodes)
        item = row.item.replace(**changes) if changes else row.item
        inst = item if j == 0 or "s" not in item.args else item.replace(s=(1, 1))
        self.block = (name, item.kind)
        if isinstance(inst, Block):
            if name in self.shapes or name in self.aliases:
                raise self._error(f"layer name {name!r} is used twice")
            self.row_from = tuple(self.resolve(n) for n in inputs) if inputs else None
            if self.row_from and not inst.takes_from:
                if len(self.row_from) != 1:
                    raise self._error(f"{item.kind} takes one input, got {len(inputs)}")
                self.cur = self.row_from[0]
            inst.expand(self, name)
            self.aliases[name] = self.cur
        elif inputs and row.optional:
            self.add(inst, name, self._joined(row, inputs))
        elif inst.is_identity():
            if name in self.shapes or name in self.aliases:
                raise self._error(f"layer name {name!r} is used twice")
            if inputs and len(inputs) != 1:
                raise self._error(f"{inst.kind} takes 1 input(s), got {len(inputs)}")
            self.cur = self.resolve(inputs[0]) if inputs else self.cur
            self.aliases[name] = self.cur
        else:
            if getattr(inst, "like", None) is not None:  # upsample: {like: g} reads g's size
                inputs = (inputs[0] if inputs else "prev", inst.like, *(inputs or ())[1:])
            elif inputs and (inst.arity is None or inst.arity > 1) and len(inputs) == 1:
                inputs = ("prev", *inputs)  # `add: {from: x}` adds x to the previous output
            self.add(inst, name, [self.resolve(n) for n in inputs] if inputs else None)
        if key is not None:
            self.replay.keep(key, tuple(self.nodes[start:]), self.cur,
                             isinstance(inst, Block) or inst.is_identity(), row)

    def _joined(self, row: Row, inputs: tuple[str, ...]) -> list[str]:
        """A concat's or add's inputs without the rows an ``if`` dropped; fewer than two
        left is an error, never a join with the previous output."""
        kept, gone = [], []
        for n in inputs:
            try:
                kept.append(self.resolve(n))
            except MacscalcError:
                if n not in row.optional:
                    raise
                gone.append(repr(n))
        if len(kept) < 2:
            raise self._error(f"{row.item.kind} needs two or more inputs, and only "
                              f"{len(kept)} is left once the rows an if dropped "
                              f"({', '.join(gone)}) are skipped")
        return kept

    def _reads(self, row: Row, j: int, name: str, changes: dict[str, int],
               inputs: tuple[str, ...] | None) -> tuple[Any, ...] | None:
        """Everything a row's placement reads from the builder (``Replay``); None when a
        ``from`` name is unknown (the builder reports it)."""
        try:
            tensors = (self.cur, self.scopes[-1].input, *(self.resolve(n) for n in inputs or ()))
        except MacscalcError:
            return None
        return (id(row), j, name, tuple(changes.items()), self.in_base,
                self.roles[-1] if self.roles else None, self.settings.classes,
                tuple((t, self.shapes[t]) for t in tensors))

    def _replay(self, key: tuple[Any, ...], name: str) -> bool:
        """Place a row as an earlier build placed it, if it read the same; a name already
        taken or the layer limit sends the row to the builder for its error."""
        kept = self.replay.get(key)
        if kept is None:
            return False
        nodes, shapes, cur, is_block, _ = kept
        names = (*shapes, name) if is_block else shapes
        if len(self.nodes) + len(nodes) > MAX_LAYERS or any(
                map(self.shapes.__contains__, names)) or any(
                map(self.aliases.__contains__, names)):
            return False
        self.nodes += nodes
        self.shapes.update(shapes)
        self.cur = cur
        if is_block:
            self.aliases[name] = cur
        return True

    def _instance(self, row: Row, j: int, name: str, inputs: tuple[str, ...] | None) -> None:
        """One use of a spec's own block: its rows in a scope of their own."""
        item = row.item
        if name in self.shapes or name in self.aliases:
            raise self._error(f"layer name {name!r} is used twice")
        if inputs:
            if len(inputs) != 1:
                raise self._error(f"block {item.kind!r} takes one input, got {len(inputs)}")
            self.cur = self.resolve(inputs[0])
        self.scopes.append(Scope(f"{name}/", self.cur))
        if row.width is not None:
            self.width.append(row.width)
        rows = item.rows(j, self.shape().c)
        if item.by_input is not None:  # expanded here: bounded as the spec's rows are
            self.expanded += len(rows)
            if self.expanded > MAX_EXPANDED_ROWS:
                raise self._error(f"the spec expands to more than {MAX_EXPANDED_ROWS:,} rows")
        try:
            self.place_rows(rows)
        finally:
            self.scopes.pop()
            if row.width is not None:
                self.width.pop()
        self.aliases[name] = self.cur


def build(
    spec: Spec,
    alpha: Fraction | None = None,
    size: tuple[int, int] | None = None,
    classes: int | None = None,
    replay: Replay | None = None,
    output_stride: int | None = None,
) -> Network:
    """Apply the transforms and place every primitive; shape errors point at their row.
    Builds of one spec that share a ``Replay`` place rows that read alike only once.
    Without ``alpha``, the spec's own (``alpha:``, else 1). ``output_stride`` (default: the
    spec's ``output_stride:``, else none) turns the backbone's strides past it into
    dilations (``atrous.py``)."""
    settings = Settings(spec.alpha if alpha is None else alpha, size or spec.size,
                        classes or spec.classes, output_stride or spec.output_stride)
    b = Builder(spec, settings, replay)
    if spec.base is not None:
        b.in_base = True
        _place_base(b, spec.base, spec.file)
        b.in_base = False
        b.rule = spec.rounding
    b.place_rows(spec.rows)
    if not b.nodes:  # every row left out by its 'if': nothing to count is not zero
        raise MacscalcError("the network has no layers (every row was left out by its 'if')",
                            spec.file, spec.line)
    return Network(spec, settings, b.input, tuple(b.nodes))


def _place_base(b: Builder, base: Base, file: str) -> None:
    """A base spec's rows (after its own base's) up to the layer ``until``, or all of them;
    each spec's rows keep that spec's width rule."""
    spec, until = base.spec, base.until
    placed = lambda: until in b.shapes or until in b.aliases  # noqa: E731
    if spec.base is not None:
        _place_base(b, spec.base, spec.file)
        if until is not None and placed():
            return
    b.rule = spec.rounding
    mine = {r.name for r in spec.rows if r.name}
    for row in spec.rows:
        b.place_row(row, mine)
        if until is not None and placed():
            return
    if until is not None:
        raise MacscalcError(f"base spec {spec.name!r} has no layer named {until!r}", file,
                            base.line, base.col)


def unknown_ops(network: Network) -> dict[str, list[str]]:
    """Operators of an imported model counted as unknown (``--allow-unknown``), by type."""
    out: dict[str, list[str]] = {}
    for n in network.nodes:
        if n.layer.kind == "unknown":
            out.setdefault(n.layer.op, []).append(n.name)  # type: ignore[attr-defined]
    return out


def unique_name(used: set[str], base: str) -> str:
    """``base``, else ``base_2``, ``base_3``, …: the first not in ``used``, which it joins
    (a model file's layer names may repeat; a network's may not)."""
    name, i = base, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name

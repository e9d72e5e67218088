"""Architecture specs: YAML files that read like a paper's table.

A spec is a name, its source, the input, the number of classes, a named channel
rounding rule, row defaults, blocks of its own, and ``layers:``, one row per line of the
paper's table::

    - ir: {t: 6, c: 24, n: 2, s: 2}

Each row is one kind (a primitive from ``layers.py``, a block from ``blocks.py``, or a
block the spec defines under ``blocks:``) with that kind's arguments plus the row keys:
``n`` (repeats; only the first keeps the stride ``s``), ``name``, ``from`` (take input
from named layers), ``width`` (``fixed``, or ``{min: 1.0}`` for a layer never narrowed
below its paper width), ``role`` (its group in the per-kind summary) and ``if`` (place
the row only when a block-argument expression is true). A spec's own block is expanded
here, once per set of arguments, into ordinary rows. Everything is validated here, with
file:line:column on every error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from macscalc.core.errors import MacscalcError, kind, show
from macscalc.core.expr import ExprError, evaluate, is_expression, references
from macscalc.core.limits import MAX_ALPHA, MAX_BASE_CHAIN, MAX_BLOCK_DEPTH, MAX_EXPANDED_ROWS
from macscalc.core.rounding import RULES, RoundingRule, parametric
from macscalc.core.yamlload import Loc, LocDict, LocList, load, read_text
from macscalc.lang import attention as _attention  # noqa: F401  (files its kinds)
from macscalc.lang import heads as _heads  # noqa: F401  (registers the segmentation heads)
from macscalc.lang import norms as _norms  # noqa: F401  (files its kinds)
from macscalc.lang.blocks import BLOCKS, Block
from macscalc.lang.branches import branch_rows
from macscalc.lang.layers import KINDS, Layer, torch_padding
from macscalc.lang.schema import CHOICE, NAMES, POS_INT, REPEATS, SIZE, Arg

ROW_KINDS: dict[str, type] = {**KINDS, **BLOCKS}
TOP_KEYS = (
    "name",
    "title",
    "source",
    "input",
    "classes",
    "rounding",
    "defaults",
    "layers",
    "family",
    "notes",
    "budget",
    "base",
    "blocks",
    "output_stride",
    "alpha",
    "depth",
    "depth_rounding",
)
DEPTH_ROUNDING = ("ceil", "round")  # timm _scale_stage_depth's depth_trunc
BUDGET_KEYS = ("macs", "flops", "params", "memory", "size")  # limits a spec may declare
REQUIRED_TOP = ("name", "source", "input", "classes")  # and layers, base or both
ROW_KEYS = ("n", "name", "from", "width", "role", "if")
REQUIRED = "required"  # the default of a block argument that every use must give
_MAX_EXPANSIONS = 64  # a ``$in`` block's expansions kept, by repeat and input width
BUILTIN_ARGS = ("i", "in")  # set in every block: the repeat index, the input's channels

Width = None | str | Fraction  # None: scaled by α; "fixed"; Fraction: at least this multiplier
_ABSENT = object()


class Row(NamedTuple):
    """One spec row: a kind instance with its paper values, before α and ρ apply."""

    item: Layer | Block | UserBlock
    name: str | None
    inputs: tuple[str, ...] | None
    n: int
    width: Width
    file: str
    line: int
    col: int
    role: str | None = None  # groups the row's primitives in the per-kind summary
    optional: tuple[str, ...] = ()  # ``from`` names of rows an ``if`` dropped: skipped if absent
    built: tuple[str, ...] = ()  # widths computed from ``$in``: as built already, α never applies

    def error(self, message: str) -> MacscalcError:
        return MacscalcError(message, self.file, self.line, self.col)


class UserBlock(NamedTuple):
    """A use of a block the spec defines: its rows with the arguments substituted, once as
    written and once for repeats (``s`` set to 1), or once per repeat when its rows use the
    repeat index ``$i``. A block whose rows or defaults use ``$in`` can only be expanded
    where it is placed, once its input is known: ``by_input`` expands repeat ``j`` for an
    input of ``cin`` channels (``repeats`` is then empty)."""

    kind: str
    args: dict[str, Any]
    repeats: tuple[tuple[Row, ...], ...]
    by_input: Callable[[int, int], tuple[Row, ...]] | None = None

    def rows(self, j: int, cin: int) -> tuple[Row, ...]:
        """The rows of repeat ``j`` (from 0) on an input of ``cin`` channels."""
        if self.by_input is not None:
            return self.by_input(j, cin)
        return self.repeats[min(j, len(self.repeats) - 1)]


class FromInput(NamedTuple):
    """A value computed from ``$in``: the channels of the block's input as built, so
    already α-scaled and rounded. As a width it is taken as it is, never scaled again."""

    value: Any


class BlockDef(NamedTuple):
    """``blocks: {name: {args: {...}, layers: [...]}}``: rows kept raw until a use gives the
    arguments (``branches: [...]`` already rewritten as rows)."""

    name: str
    args: LocDict  # argument → default (REQUIRED when every use must give it)
    rows: LocList
    line: int
    col: int


class Base(NamedTuple):
    """``base: {spec: mobilenet_v2, until: pw18}``: another spec's rows up to a layer (all
    of them without ``until``)."""

    spec: Spec
    until: str | None
    line: int
    col: int


class SpecLimit(NamedTuple):
    """A limit declared in a spec's ``budget:`` section, with where it is written."""

    value: int
    line: int
    col: int


class Spec(NamedTuple):
    """A whole architecture, as written; transforms produce new settings, not edits."""

    name: str
    title: str
    source: str
    file: str
    size: tuple[int, int]
    channels: int
    classes: int
    rounding: RoundingRule
    rows: tuple[Row, ...]
    family: str | None = None
    notes: str = ""
    budget: dict[str, SpecLimit] = {}
    line: int = 1  # where ``name:`` is written, for annotations about the whole spec
    base: Base | None = None  # rows taken from another spec, placed first
    output_stride: int | None = None  # past it, the backbone's strides become dilations
    alpha: Fraction = Fraction(1)  # the width multiplier a build takes unless given one
    depth: Fraction = Fraction(1)  # the depth multiplier the rows' ``n`` were scaled by
    depth_rounding: str = "ceil"  # how n·depth became a count: ``DEPTH_ROUNDING``


# Names people bring from other frameworks, mapped to this spec language's short keys.
_ALIASES = {
    "stride": "s",
    "strides": "s",
    "kernel": "k",
    "kernel_size": "k",
    "dilation": "d",
    "channels": "c",
    "out_channels": "c",
    "filters": "c",
    "num_outputs": "c",
    "expansion": "t",
    "expand_ratio": "t",
    "repeats": "n",
    "activation": "act",
}


def suggest(word: str, options: list[str]) -> str:
    """``"; did you mean 'x'?"`` for a close option (or a known alias), else ``""``. Only a
    close match is offered: ``concat`` is not a misspelt ``conv``."""
    import difflib  # only on the error path

    alias = _ALIASES.get(str(word))
    close = [alias] if alias in options else difflib.get_close_matches(
        str(word), options, n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Reader:
    """Checks one YAML document, raising errors located in ``file``."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, message: str, loc: Loc) -> MacscalcError:
        return MacscalcError(message, self.file, loc[0], loc[1])

    def mapping(self, value: Any, loc: Loc, what: str, quote: bool = True) -> LocDict:
        if value is None:
            empty = LocDict()
            empty.loc = loc
            return empty
        if not isinstance(value, LocDict):
            got = show(value) if quote else kind(value)
            raise self.fail(f"{what} must be a mapping, got {got}", loc)
        return value

    def keys(self, m: LocDict, allowed: tuple[str, ...] | list[str], what: str) -> None:
        for key in m:
            if key not in allowed:
                raise self.fail(
                    f"unknown key {show(key)} in {what}{suggest(key, list(allowed))} "
                    f"(expected one of: {', '.join(allowed)})",
                    m.key_locs[key],
                )

    def value(
        self,
        m: LocDict,
        key: str,
        convert: Any,
        expected: str,
        what: str,
        default: Any = _ABSENT,
    ) -> Any:
        """``m[key]`` converted, or ``default`` when the key is absent and a default is given."""
        if key not in m and default is not _ABSENT:
            return default
        try:
            return convert(m[key])
        except (ValueError, TypeError):
            raise self.fail(
                f"{key!r} of {what} must be {expected}, got {show(m[key])}", m.value_locs[key]
            ) from None


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError
    return v


def _width(v: Any) -> Width:
    if v in ("scaled", None):
        return None
    if v == "fixed":
        return "fixed"
    if (
        isinstance(v, dict)
        and list(v) == ["min"]
        and isinstance(v["min"], (int, float))
        and not isinstance(v["min"], bool)
        and 0 < v["min"] <= MAX_ALPHA
    ):
        return Fraction(str(v["min"]))
    raise ValueError


def _inheritable() -> dict[str, Arg]:
    found: dict[str, Arg] = {}
    for cls in ROW_KINDS.values():
        for name, a in cls.args.items():
            if a.inherit:
                found.setdefault(name, a)
    return found


def parse(text: str, file: str, depth: Fraction | None = None,
          depth_rounding: str | None = None) -> Spec:
    """Parse and validate spec text; every mistake is a located :class:`MacscalcError`.
    ``depth`` (default: the spec's own ``depth:``, else 1) multiplies every written ``n``,
    rounded by ``depth_rounding`` (default: the spec's own, else ceil as EfficientNet)."""
    r = _Reader(file)
    doc = r.mapping(load(text, file), (1, 1), "a spec", quote=False)
    r.keys(doc, TOP_KEYS, "the spec")
    for key in REQUIRED_TOP:
        if key not in doc:
            raise r.fail(f"missing required key {key!r} (a spec needs: "
                         f"{', '.join(REQUIRED_TOP)}, and layers, base or both)", doc.loc)
    if "layers" not in doc and "base" not in doc:
        raise r.fail("missing required key 'layers' (a spec needs layers, base or both)",
                     doc.loc)
    inp = r.mapping(doc["input"], doc.value_locs["input"], "'input'")
    r.keys(inp, ("size", "channels"), "'input'")
    if "size" not in inp:
        raise r.fail("'input' needs 'size' (pixels, or [h, w])", inp.loc)
    rounding = _rounding(r, doc)
    defaults = _defaults(r, doc)
    base_doc = _base_doc(r, doc)
    fixed_depth = _fixed(r, doc, base_doc, "depth")  # checked even where --depth wins
    depth = fixed_depth if depth is None else depth
    own_rounding = r.value(doc, "depth_rounding", CHOICE(*DEPTH_ROUNDING),
                           " or ".join(DEPTH_ROUNDING), "the spec", None)
    depth_rounding = depth_rounding or own_rounding
    # the base's rows are scaled alike; else its own depth, rounding and alpha carry over
    base = _base(r, base_doc, depth, depth_rounding)
    if depth is None:
        depth = base.spec.depth if base is not None else Fraction(1)
    if depth_rounding is None:
        depth_rounding = base.spec.depth_rounding if base is not None else "ceil"
    alpha = _fixed(r, doc, base_doc, "alpha")
    if alpha is None:
        alpha = base.spec.alpha if base is not None else Fraction(1)
    ctx = _Context(r, defaults, _blocks(r, doc), depth, depth_rounding)
    layers = doc.get("layers")
    if "layers" in doc and (not isinstance(layers, LocList) or not layers):
        raise r.fail("'layers' must be a non-empty list of rows", doc.value_locs["layers"])
    rows = ctx.rows(layers) if layers else ()
    return Spec(
        name=r.value(doc, "name", _text, "a non-empty string", "the spec"),
        title=r.value(doc, "title", _text, "a non-empty string", "the spec", doc["name"]),
        source=r.value(doc, "source", _text, "a non-empty string", "the spec"),
        file=file,
        size=r.value(inp, "size", SIZE, SIZE.expected, "'input'"),
        channels=r.value(inp, "channels", POS_INT, POS_INT.expected, "'input'", 3),
        classes=r.value(doc, "classes", POS_INT, "a positive integer", "the spec"),
        rounding=rounding,
        rows=rows,
        family=r.value(doc, "family", _text, "a non-empty string", "the spec", None),
        notes=r.value(doc, "notes", _text, "a non-empty string", "the spec", ""),
        budget=_budget(r, doc),
        base=base,
        output_stride=r.value(doc, "output_stride", POS_INT, POS_INT.expected, "the spec",
                              None),
        line=doc.key_locs["name"][0],
        alpha=alpha,
        depth=depth,
        depth_rounding=depth_rounding,
    )


def _base_doc(r: _Reader, doc: LocDict) -> LocDict | None:
    """``base:`` checked for its keys: ``spec``, and optionally ``until``, ``alpha``,
    ``depth``."""
    if "base" not in doc:
        return None
    b = r.mapping(doc["base"], doc.value_locs["base"], "'base'")
    r.keys(b, ("spec", "until", "alpha", "depth"), "'base'")
    if "spec" not in b:
        raise r.fail("'base' needs 'spec' (a spec name, and optionally 'until', the layer "
                     "it ends with)", b.loc)
    return b


def _fixed(r: _Reader, doc: LocDict, base: LocDict | None, key: str) -> Fraction | None:
    """The ``alpha`` or ``depth`` a spec is counted at, written at the top or in its
    ``base:`` (``base: {spec: mnasnet1_0, alpha: 0.75}``), not both; None if neither."""
    if base is not None and key in base:
        if key in doc:
            raise r.fail(f"{key!r} is given twice: at the top (line {doc.key_locs[key][0]}) "
                         "and in 'base'; keep one", base.key_locs[key])
        return r.value(base, key, _multiplier, _MULTIPLIER, "'base'")
    return r.value(doc, key, _multiplier, _MULTIPLIER, "the spec", None)


def _base(r: _Reader, b: LocDict | None, depth: Fraction | None,
          depth_rounding: str | None) -> Base | None:
    """A backbone taken from another spec, up to (and including) the layer ``until``, or
    the whole spec; its rows' ``n`` scaled by ``depth`` and rounded by ``depth_rounding``
    when given (else by its own)."""
    if b is None:
        return None
    ref = r.value(b, "spec", _text, "a built-in spec name or a .yaml/.yml file", "'base'")
    try:
        spec = _base_spec(ref, r.file, depth, depth_rounding)
    except MacscalcError as e:
        if e.line is not None:
            raise  # a mistake inside the base spec, located there
        raise r.fail(f"base spec: {e.message}", b.value_locs["spec"]) from None
    line, col = b.value_locs.get("until", b.loc)
    return Base(spec, r.value(b, "until", _text, "a layer name", "'base'", None), line, col)


def _budget(r: _Reader, doc: LocDict) -> dict[str, SpecLimit]:
    """``budget: {macs: 300M, params: 3.5M}``: limits that ``macscalc check`` applies."""
    if "budget" not in doc:
        return {}
    from macscalc.core.units import parse_limit

    b = r.mapping(doc["budget"], doc.value_locs["budget"], "'budget'")
    r.keys(b, BUDGET_KEYS, "'budget'")
    out = {}
    for key, value in b.items():
        line, col = b.value_locs[key]
        try:
            out[key] = SpecLimit(parse_limit(key, value, f"{key!r} of 'budget'"), line, col)
        except MacscalcError as e:
            raise r.fail(e.message, (line, col)) from None
    return out


class Default(NamedTuple):
    """A ``defaults:`` value and where it is written, so that an error it causes in a row
    can point at it."""

    value: Any
    line: int


def _defaults(r: _Reader, doc: LocDict) -> dict[str, Default]:
    if "defaults" not in doc:
        return {}
    d = r.mapping(doc["defaults"], doc.value_locs["defaults"], "'defaults'")
    allowed = _inheritable()
    r.keys(d, list(allowed), "'defaults'")
    return {k: Default(r.value(d, k, allowed[k].type, allowed[k].type.expected, "'defaults'"),
                       d.value_locs[k][0]) for k in d}


def _kernels(item: Layer | Block) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The kernels (size, dilation) a row's ``padding`` applies to: ``k``, or uib's
    ``k_start``, ``k_mid`` and ``k_end`` that are not 0."""
    if hasattr(item, "kernels"):  # mixconv: one kernel per channel group
        return item.kernels
    d = getattr(item, "d", (1, 1))
    found = []
    for field in ("k", "k_start", "k_mid", "k_end"):
        k = getattr(item, field, 0) if field in item.args else 0
        if k:
            found.append(((k, k) if isinstance(k, int) else k, d))
    return found


def _check_default_padding(item: Layer | Block, default: Default) -> None:
    """A number in ``defaults: {padding: p}`` is meant for the spec's usual kernel; on any
    kernel it would not keep at its size (p ≠ (k−1)/2·d) it is refused, never applied:
    a 5×5 depthwise padded 1 shrinks the network silently."""
    for k, d in _kernels(item):
        need = torch_padding(k, d)
        if default.value != need:
            raise ValueError(
                f"padding {list(default.value)} from 'defaults' (line {default.line}) does not "
                f"fit this row's {k[0]}×{k[1]} kernel, which keeps its size with padding "
                f"{list(need)}: write 'padding: torch' in defaults for (k−1)/2·d on every "
                "kernel, or give this row its own padding")


def _rounding(r: _Reader, doc: LocDict) -> RoundingRule:
    """A rule by name, or parametric: ``{divisor: 4, min_ratio: 0.9}``."""
    value = doc.get("rounding", "make_divisible_8")
    loc = doc.value_locs.get("rounding", doc.loc)
    if isinstance(value, LocDict):
        r.keys(value, ("divisor", "min_ratio"), "'rounding'")
        divisor = r.value(value, "divisor", POS_INT, POS_INT.expected, "'rounding'", 8)
        ratio = r.value(value, "min_ratio", _min_ratio, "a number from 0 to 1", "'rounding'",
                        Fraction(9, 10))
        return parametric(divisor, ratio)
    if not isinstance(value, str) or value not in RULES:
        raise r.fail(
            f"unknown rounding rule {show(value)}{suggest(str(value), list(RULES))} "
            f"(known: {', '.join(RULES)}, or {{divisor: D, min_ratio: R}})",
            loc,
        )
    return RULES[value]


_MULTIPLIER = f"a positive number up to {MAX_ALPHA} (at most 6 decimals)"


def _multiplier(v: Any) -> Fraction:
    """A width or depth multiplier: ``1.4`` → 7/5, exactly."""
    from macscalc.core.units import positive_ratio

    return positive_ratio(v, MAX_ALPHA)


def _min_ratio(v: Any) -> Fraction:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise ValueError
    return Fraction(str(v))


def _blocks(r: _Reader, doc: LocDict) -> dict[str, BlockDef]:
    """The spec's own blocks, checked for names, arguments and recursion."""
    if "blocks" not in doc:
        return {}
    m = r.mapping(doc["blocks"], doc.value_locs["blocks"], "'blocks'")
    out: dict[str, BlockDef] = {}
    for name, body in m.items():
        loc = m.key_locs[name]
        if not isinstance(name, str) or not name.isidentifier():
            raise r.fail(f"a block name must be a word such as 'bottleneck', got {show(name)}",
                         loc)
        if name in ROW_KINDS:
            raise r.fail(f"block {name!r} has the name of a built-in kind; choose another",
                         loc)
        d = r.mapping(body, m.value_locs[name], f"block {name!r}")
        r.keys(d, ("args", "layers", "branches", "doc"), f"block {name!r}")
        args = r.mapping(d.get("args"), d.value_locs.get("args", d.loc), f"'args' of {name!r}")
        for a in args:
            if not isinstance(a, str) or not a.isidentifier() or a in ROW_KEYS:
                raise r.fail(f"a block argument must be a word and not a row key ("
                             f"{', '.join(ROW_KEYS)}), got {show(a)}", args.key_locs[a])
        if "branches" in d:
            if "layers" in d:
                raise r.fail(f"block {name!r} has both 'layers' and 'branches'; keep one",
                             d.key_locs["branches"])
            rows = branch_rows(d["branches"], d.value_locs["branches"], f"block {name!r}",
                               r.fail)
        else:
            rows = d.get("layers")
        if not isinstance(rows, LocList) or not rows:
            raise r.fail(f"block {name!r} needs 'layers', a non-empty list of rows (or "
                         "'branches')", d.value_locs.get("layers", d.loc))
        for a in args:
            if a in BUILTIN_ARGS:
                raise r.fail(f"argument {a!r} of block {name!r} is set by the builder "
                             "($i is the repeat index); choose another name",
                             args.key_locs[a])
        out[name] = BlockDef(name, args, rows, *loc)
    _no_recursion(r, out)
    return out


def _uses(bdef: BlockDef, blocks: dict[str, BlockDef]) -> list[tuple[str, Loc]]:
    """The blocks a block's rows use, written ``- blk: {...}`` or bare ``- blk``."""
    kinds = [(row if isinstance(row, str) else next(iter(row)), loc)
             for row, loc in zip(bdef.rows, bdef.rows.item_locs, strict=True)
             if isinstance(row, str) or (isinstance(row, LocDict) and len(row) == 1)]
    return [(kind, loc) for kind, loc in kinds if kind in blocks]


def _no_recursion(r: _Reader, blocks: dict[str, BlockDef]) -> None:
    """A block that uses itself, directly or through others, can never be expanded; blocks
    used inside one another more than ``MAX_BLOCK_DEPTH`` deep are refused too, so that
    expanding them never runs out of stack."""
    depth: dict[str, int] = {}  # blocks inside one another, counting itself

    def visit(name: str, chain: list[str]) -> int:
        if name in depth:
            return depth[name]
        inner = 0
        for used, loc in _uses(blocks[name], blocks):
            if used in chain or used == name:
                cycle = " → ".join([*chain[chain.index(used):], name, used]) if used in chain \
                    else f"{name} → {name}"
                raise r.fail(f"block {used!r} uses itself: {cycle}", loc)
            if len(chain) + 2 > MAX_BLOCK_DEPTH or visit(used, [*chain, name]) + 1 \
                    > MAX_BLOCK_DEPTH:
                raise r.fail(f"blocks are used inside one another more than "
                             f"{MAX_BLOCK_DEPTH} deep (here {name} uses {used})", loc)
            inner = max(inner, depth[used])
        depth[name] = inner + 1
        return depth[name]

    for name in blocks:
        visit(name, [])


class _Context:
    """Reads rows: primitives and built-in blocks directly, the spec's own blocks by
    substituting a use's arguments into their raw rows (bounded in total size)."""

    def __init__(self, r: _Reader, defaults: dict[str, Default],
                 blocks: dict[str, BlockDef], depth: Fraction = Fraction(1),
                 depth_rounding: str = "ceil"):
        self.r = r
        self.defaults = defaults
        self.blocks = blocks
        self.depth = depth
        self.depth_rounding = depth_rounding
        self.expanded = 0

    def repeats(self, body: LocDict, what: str) -> int:
        """A row's ``n``, scaled by the depth multiplier when written: ⌈n·d⌉, or n·d
        rounded half to even and at least 1 (``depth_rounding: round``, timm's TinyNet)."""
        n = self.r.value(body, "n", REPEATS, REPEATS.expected, what, 1)
        if "n" not in body or self.depth == 1:
            return n
        if self.depth_rounding == "round":
            return max(1, round(n * self.depth)) if n else 0
        return -(-n * self.depth // 1)

    def rows(self, items: LocList, env: dict[str, Any] | None = None,
             where: str = "") -> tuple[Row, ...]:
        out = []
        dropped: set[str] = set()  # names of rows an `if` (or n: 0) left out
        for item, loc in zip(items, items.item_locs, strict=True):
            if env is not None:
                item = self.substitute(item, loc, env, where)
                if item is None:
                    continue
            elif (at := _input_use(item, loc)) is not None:
                raise self.r.fail("$in is the channels of a block's input: it can be used only "
                                  "in the rows and argument defaults of a block", at)
            row = self.row(item, loc)
            if row is None:
                name = _written_name(item)
                if name is not None:
                    dropped.add(name)
            else:
                out.append(_skip_dropped(row, dropped))
        return tuple(out)

    def substitute(self, value: Any, loc: Loc, env: dict[str, Any], where: str) -> Any:
        """``value`` with every ``$`` expression evaluated; a row whose ``if`` is false
        becomes None."""
        if isinstance(value, LocDict):
            out = LocDict()
            out.loc = value.loc
            for k, v in value.items():
                out[k] = self.substitute(v, value.value_locs[k], env, where)
                out.key_locs[k], out.value_locs[k] = value.key_locs[k], value.value_locs[k]
            return out
        if isinstance(value, LocList):
            out_list = LocList()
            out_list.loc = value.loc
            for v, item_loc in zip(value, value.item_locs, strict=True):
                out_list.append(self.substitute(v, item_loc, env, where))
                out_list.item_locs.append(item_loc)
            return out_list
        if is_expression(value):
            try:
                out = evaluate(value, {k: _plain(v) for k, v in env.items()})
            except ExprError as e:
                raise self.r.fail(f"{e}{where}", loc) from None
            if any(n == "in" or isinstance(env.get(n), FromInput) for n in references(value)):
                return FromInput(out)
            return out
        return value

    def row(self, item: Any, loc: Loc) -> Row | None:
        r = self.r
        if isinstance(item, str) and (item in ROW_KINDS or item in self.blocks):
            item = _bare(item, loc)  # `- flatten`: a kind with no arguments
        if not isinstance(item, LocDict) or len(item) != 1:
            raise r.fail(
                "a row must be one kind with its arguments, e.g. '- conv: {c: 32, k: 3, s: 2}'",
                loc)
        kind = next(iter(item))
        what = f"{kind!r}"
        if kind not in ROW_KINDS and kind not in self.blocks:
            known = [*ROW_KINDS, *self.blocks]
            raise r.fail(f"unknown layer kind {show(kind)}{suggest(str(kind), known)} "
                         f"(known: {', '.join(known)})", item.key_locs[kind])
        body = r.mapping(item[kind], item.value_locs[kind], what)
        args, body = body, _plain_body(body)  # args keeps what came from $in marked
        if not r.value(body, "if", _condition, "true or false (or an expression of block "
                       "arguments)", what, True):
            return None
        if r.value(body, "n", REPEATS, REPEATS.expected, what, 1) == 0:
            return None  # no repeats: placed as an `if` that is false
        if kind in self.blocks:
            return self.use(self.blocks[kind], args, body, loc)
        built = tuple(k for k, v in args.items() if isinstance(v, FromInput))
        cls = ROW_KINDS[kind]
        r.keys(body, [*cls.args, *ROW_KEYS], what)
        values = {
            name: r.value(body, name, a.type, a.type.expected, what)
            for name, a in cls.args.items()
            if name in body
        }
        inherited = []
        for name, a in cls.args.items():
            if name not in values and a.inherit and name in self.defaults:
                values[name] = self.defaults[name].value
                inherited.append(name)
            if name not in values and a.required:
                raise r.fail(f"{what} needs {name!r} ({a.doc})", body.loc)
        try:
            instance = cls(**values)
            if "padding" in inherited and isinstance(values["padding"], tuple):
                _check_default_padding(instance, self.defaults["padding"])
        except ValueError as e:
            raise r.fail(str(e), body.loc) from None
        return self.make(instance, body, loc, what)._replace(
            built=tuple(k for k in built if k in cls.width_args))

    def make(self, item: Any, body: LocDict, loc: Loc, what: str) -> Row:
        r = self.r
        self.expanded += 1
        if self.expanded > MAX_EXPANDED_ROWS:
            raise r.fail(f"the spec expands to more than {MAX_EXPANDED_ROWS:,} rows", loc)
        n = self.repeats(body, what)
        return Row(
            item=item,
            name=r.value(body, "name", _name, "a name (letters, digits, _ and -)", what, None),
            inputs=r.value(body, "from", NAMES, NAMES.expected, what, None),
            n=n,
            width=r.value(body, "width", _width, "'scaled', 'fixed' or {min: multiplier}", what,
                          None),
            role=r.value(body, "role", _text, "a non-empty string", what, None),
            file=r.file,
            line=loc[0],
            col=loc[1],
        )

    def use(self, bdef: BlockDef, args: LocDict, body: LocDict, loc: Loc) -> Row:
        """A row using the spec's own block: arguments checked, rows expanded (where it is
        placed, when they use ``$in``). ``args`` is ``body`` with what came from ``$in``
        still marked."""
        r = self.r
        what = f"block {bdef.name!r}"
        allowed = [*bdef.args, *ROW_KEYS]
        for key in body:
            if key not in allowed:
                raise r.fail(f"unknown argument {key!r} of {what}{suggest(str(key), allowed)} "
                             f"(its arguments: {', '.join(bdef.args) or 'none'})",
                             body.key_locs[key])
        for a, default in bdef.args.items():
            if a not in body and default == REQUIRED:
                raise r.fail(f"{what} needs argument {a!r} (its arguments: "
                             f"{', '.join(bdef.args)})", body.loc)
        n = self.repeats(body, what)
        # expanded once per repeat where its rows, or this use's arguments, read ``$i``
        indexed = _uses_name(bdef.rows, "i") or _uses_name(dict(args), "i")
        if _uses_name(bdef.rows, "in") or _uses_name(bdef.args, "in"):
            expanded: dict[tuple[int, int], tuple[Row, ...]] = {}

            def by_input(j: int, cin: int) -> tuple[Row, ...]:
                key = (j if indexed else min(j, 1), cin)
                if key not in expanded:
                    if len(expanded) >= _MAX_EXPANSIONS:
                        expanded.clear()
                    inner = _Context(r, self.defaults, self.blocks, self.depth,
                                     self.depth_rounding)
                    env = inner.arguments(bdef, args, loc, {"in": cin})
                    expanded[key] = inner.instance(bdef, env, loc, j)
                return expanded[key]

            return self.make(UserBlock(bdef.name, {}, (), by_input), body, loc, what)
        env = self.arguments(bdef, args, loc)
        if indexed:
            repeats = tuple(self.instance(bdef, env, loc, j) for j in range(n))
        else:
            repeats = (self.instance(bdef, env, loc, 0),)
            if n > 1 and _plain(env.get("s", 1)) != 1:
                repeats += (self.instance(bdef, env, loc, 1),)
        return self.make(UserBlock(bdef.name, env, repeats), body, loc, what)

    def arguments(self, bdef: BlockDef, args: LocDict, loc: Loc,
                  given: dict[str, Any] | None = None) -> dict[str, Any]:
        """A use's arguments with the defaults filled in; ``given`` are the builder's
        (``$in``), which a default may use as it may use the arguments declared before it."""
        env: dict[str, Any] = dict(given or {})
        for a, default in bdef.args.items():
            if a in args:
                env[a] = args[a]
            else:
                env[a] = self.substitute(
                    default, bdef.args.value_locs[a], env,
                    f" (in the default of {a!r} of block {bdef.name!r}, used at line {loc[0]})")
        return env

    def instance(self, bdef: BlockDef, env: dict[str, Any], loc: Loc,
                 j: int) -> tuple[Row, ...]:
        """The rows of repeat ``j``: the arguments and the repeat index ``$i`` substituted;
        repeats after the first get ``s: 1``."""
        where = f" (in block {bdef.name!r} used at line {loc[0]})"
        if j and "s" in env:
            env = {**env, "s": 1}
        # an argument the use wrote with ``$i`` (``se: $i % 2 / 4``) takes this repeat's
        env = {k: self.substitute(v, loc, {**env, "i": j}, f" (argument {k!r}{where})")
               if _uses_name(v, "i") else v for k, v in env.items()}
        try:
            return self.rows(bdef.rows, {**env, "i": j}, where)
        except MacscalcError as e:
            if "(in block " in e.message:  # the innermost use says where
                raise
            raise MacscalcError(e.message + where, e.file, e.line, e.col) from None


def _written_name(item: Any) -> str | None:
    """The ``name`` a raw row writes, if any."""
    body = next(iter(item.values()), None) if isinstance(item, dict) and len(item) == 1 else None
    name = body.get("name") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


def _skip_dropped(row: Row, dropped: set[str]) -> Row:
    """A concat or add may skip the names of rows an ``if`` dropped (``from: [b1, b2,
    b3]`` joins b1 and b3 when b2 is gone); the builder skips them only where no other
    layer of that name exists (a split's ``x.0``)."""
    if not dropped or not row.inputs or getattr(row.item, "arity", 1) is not None:
        return row
    return row._replace(optional=tuple(n for n in row.inputs if n in dropped))


def _uses_name(value: Any, name: str) -> bool:
    """Whether raw rows (or argument defaults) refer to ``$name`` anywhere."""
    if isinstance(value, dict):
        return any(_uses_name(v, name) for v in value.values())
    if isinstance(value, list):
        return any(_uses_name(v, name) for v in value)
    return is_expression(value) and name in references(value)


def _input_use(value: Any, loc: Loc) -> Loc | None:
    """Where a row outside any block writes ``$in``, if it does."""
    if isinstance(value, LocDict):
        return next((at for k, v in value.items()
                     if (at := _input_use(v, value.value_locs[k])) is not None), None)
    if isinstance(value, LocList):
        return next((at for v, item_loc in zip(value, value.item_locs, strict=True)
                     if (at := _input_use(v, item_loc)) is not None), None)
    return loc if _uses_name(value, "in") else None


def _plain(value: Any) -> Any:
    """A value with the ``$in`` marks taken off, at any depth."""
    if isinstance(value, FromInput):
        return value.value
    if isinstance(value, LocList):
        out = LocList()
        out.extend(_plain(v) for v in value)
        out.loc, out.item_locs = value.loc, value.item_locs
        return out
    if isinstance(value, LocDict):
        return _plain_body(value)
    return value


def _plain_body(body: LocDict) -> LocDict:
    out = LocDict()
    out.loc = body.loc
    for k, v in body.items():
        out[k] = _plain(v)
        out.key_locs[k], out.value_locs[k] = body.key_locs[k], body.value_locs[k]
    return out


def _bare(kind: str, loc: Loc) -> LocDict:
    """A row written as its kind alone, as the mapping ``{kind: {}}``."""
    item = LocDict()
    item[kind] = None
    item.loc = loc
    item.key_locs[kind] = item.value_locs[kind] = loc
    return item


def _condition(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v != 0
    raise ValueError


def _name(v: Any) -> str:
    """A layer name: no '/' (the scope separator) and no spaces."""
    text = _text(v)
    if "/" in text or any(ch.isspace() for ch in text) or text in ("prev", "input"):
        raise ValueError
    return text


def builtin_dir() -> Path:
    """The built-in specs: inside the package when installed, top-level ``specs/`` in a checkout."""
    here = Path(__file__).resolve().parents[1]
    packaged = here / "specs"
    return packaged if packaged.is_dir() else here.parent / "specs"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


# The specs being loaded, outermost first: (resolved path, name in messages). A base
# file is found from the last, must lie in the folder of the first or the current
# folder, and must not be one of them again.
_LOADING: ContextVar[tuple[tuple[Path, str], ...]] = ContextVar("_LOADING", default=())


def load_spec(ref: str, depth: Fraction | None = None) -> Spec:
    """Load a spec by path, or a built-in by name (``mobilenet_v2``), its rows' ``n``
    scaled by ``depth`` (default: the spec's own ``depth:``)."""
    if is_file(Path(ref)):
        return _load(Path(ref), ref, depth)
    return _builtin(ref, depth=depth)


def _builtin(name: str, note: str = "", depth: Fraction | None = None,
             depth_rounding: str | None = None) -> Spec:
    if name not in builtin_names():
        raise _unknown(name, note)
    return _load(builtin_dir() / f"{name}.yaml", f"specs/{name}.yaml", depth, depth_rounding)


def _base_spec(ref: str, naming: str, depth: Fraction | None = None,
               depth_rounding: str | None = None) -> Spec:
    """What ``base: {spec: ref}`` names: a built-in, or a .yaml/.yml file relative to the
    spec that names it (``naming``), inside its outermost spec's folder or the current one.
    Nothing else is opened, so a spec cannot make macscalc read other files."""
    if not ref.endswith((".yaml", ".yml")):
        return _builtin(ref, "; a base file's name ends in .yaml or .yml", depth,
                        depth_rounding)
    chain = _LOADING.get()
    here = chain[-1][0].parent if chain else _resolved(Path(naming)).parent
    if Path(ref).is_absolute():
        raise MacscalcError(f"a base file is named relative to the spec that names it, got "
                            f"{show(ref)}")
    real = _resolved(here / ref)
    roots = (chain[0][0].parent if chain else here, _resolved(Path.cwd()))
    if not any(real.is_relative_to(root) for root in roots):
        raise MacscalcError(f"{show(ref)} is outside the folder of "
                            f"{chain[0][1] if chain else naming} and the current folder")
    if not is_file(real):
        raise _unknown(ref)
    return _load(real, os.path.normpath(Path(naming).parent / ref), depth, depth_rounding)


def _load(path: Path, file: str, depth: Fraction | None = None,
          depth_rounding: str | None = None) -> Spec:
    chain = _LOADING.get()
    real = _resolved(path)
    if any(real == seen for seen, _ in chain):
        names = " → ".join([*(f for _, f in chain), file])
        raise MacscalcError(f"base specs form a cycle: {names}")
    if len(chain) >= MAX_BASE_CHAIN:
        raise MacscalcError(f"more than {MAX_BASE_CHAIN} specs named through base:, one "
                            "after another")
    text = read_text(path, file, "spec")
    token = _LOADING.set((*chain, (real, file)))
    try:
        return parse(text, file, depth, depth_rounding)
    finally:
        _LOADING.reset(token)


def _unknown(ref: str, note: str = "") -> MacscalcError:
    names = builtin_names()
    return MacscalcError(f"no spec file or built-in spec named {show(ref)}{suggest(ref, names)} "
                         f"({len(names)} built-ins: macscalc specs lists them){note}")


def is_file(path: Path) -> bool:
    """Whether ``path`` is a file; a path the system cannot look up is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, or with a NUL byte
        return False


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError) as e:  # a loop of links, a NUL byte
        reason = getattr(e, "strerror", None) or "not a usable path"
        raise MacscalcError(f"cannot resolve {show(str(path))}: {reason}") from None

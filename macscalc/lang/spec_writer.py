"""A placed network written back as a spec a person can read (``macscalc import``).

Each conv, depthwise or linear primitive becomes a ``conv``/``pw``/``dw``/``fc`` row with
the batch norm and activation that follow it folded in (``bn: true``, ``act:``); every
other primitive is a primitive row. Rows keep the network's names and say ``from:``
wherever they do not read the row just above. Counting the written spec gives the
network's counts exactly (the tests check it), and α and ρ then apply to it through
the rounding rule the spec names.

Repeated structure: :func:`repeats` finds runs of identical consecutive row sequences
(the same rows, reading the same relative rows). The spec language has no user-defined
blocks on this branch yet, so the runs are written as comments above the rows; once
``blocks:`` lands they can be written as one block each.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any, NamedTuple

from macscalc.core.errors import MacscalcError
from macscalc.core.rounding import RULES
from macscalc.lang.graph import Network, Node, unique_name, unknown_ops
from macscalc.lang.layers import Shape
from macscalc.lang.tokens import Tokens

COMPUTE = {"conv2d": "conv", "depthwise": "dw", "linear": "fc"}
RESERVED = {"input", "prev", "classes"}


class Row(NamedTuple):
    kind: str
    args: dict[str, Any]  # without name and from
    name: str
    inputs: tuple[str, ...]  # row names (or "input") it reads, in order
    output: str  # the last primitive it places

    def text(self, prev: str) -> str:
        body = dict(self.args)
        body["name"] = self.name
        if self.inputs != (prev,):
            multi = self.kind in ("add", "mul", "concat", "matmul", "eltwise")
            if multi and self.inputs[0] == prev and len(self.inputs) == 2:
                body["from"] = self.inputs[1]
            else:
                body["from"] = list(self.inputs) if multi else self.inputs[0]
        return f"- {self.kind}: {{{', '.join(f'{k}: {_yaml(v)}' for k, v in body.items())}}}"


def _yaml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml(x) for x in v) + "]"
    if isinstance(v, Fraction):
        return str(v) if v.denominator == 1 else f"'{v}'"
    if isinstance(v, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", v):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _arg(v: Any) -> Any:
    """A pair of equal sides written once: (3, 3) → 3."""
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return v[0]
    return list(v) if isinstance(v, tuple) else v


def _args(layer: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: _arg(getattr(layer, k)) for k, a in layer.args.items()
            if k not in skip and getattr(layer, k) != a.default}


def _compute_row(n: Node, classes: int) -> tuple[str, dict[str, Any]]:
    layer = n.layer
    kind = COMPUTE[layer.kind]
    if kind == "conv" and layer.k == (1, 1) and layer.s == (1, 1) and layer.d == (1, 1) \
            and layer.padding in ("same", "valid", (0, 0)):
        return "pw", _args(layer, ("k", "s", "d", "padding", "group_width"))
    args = _args(layer, ("group_width",))
    if kind == "conv":
        args = {"c": args.pop("c"), "k": _arg(layer.k), **args}
    elif kind == "dw":
        args = {"k": _arg(layer.k), **{k: v for k, v in args.items() if k != "k"}}
    elif layer.c == classes:
        args["c"] = "classes"
    return kind, args


def rows(network: Network) -> list[Row]:
    """The network as spec rows, conv + BN + activation folded into one row."""
    readers: dict[str, list[Node]] = {}
    for n in network.nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n)
    row_of: dict[str, str] = {"input": "input"}  # primitive → the row whose output it is
    used = set(RESERVED)
    out: list[Row] = []
    skip: set[str] = set()
    shapes: dict[str, Shape] = {"input": network.input, **{n.name: n.out for n in network.nodes}}
    for n in network.nodes:
        if n.name in skip:
            continue
        name = _unique(n.name, used)
        if n.layer.kind in COMPUTE:
            kind, args = _compute_row(n, network.settings.classes)
            last = n
            for part in ("batchnorm", "act"):
                nxt = readers.get(last.name, [])
                if len(nxt) != 1 or nxt[0].layer.kind != part or nxt[0].inputs != (last.name,):
                    continue
                last = nxt[0]
                skip.add(last.name)
                if part == "batchnorm":
                    args["bn"] = True
                else:
                    args["act"] = last.layer.fn  # type: ignore[attr-defined]
        else:
            kind, args, last = n.layer.kind, _args(n.layer), n
        inputs = tuple(_viewed(out, row_of[i], shapes[i], want, name, k, used)
                       for k, (i, want) in enumerate(zip(n.inputs, n.in_shapes, strict=True)))
        out.append(Row(kind, args, name, inputs, last.name))
        row_of[last.name] = name
    return out


def _viewed(out: list[Row], src: str, have: Shape, want: Shape, name: str, k: int,
            used: set[str]) -> str:
    """The row a node reads, through a ``reshape`` row where it reads that row's output in
    another layout (a model file's reshapes between images, tokens and heads are views,
    not primitives)."""
    if isinstance(have, Tokens) == isinstance(want, Tokens) and tuple(have) == tuple(want):
        return src
    if have.numel != want.numel:
        raise MacscalcError(f"cannot write {name!r} as a spec row: it reads {want}, a part "
                            f"of the output of {src!r} ({have}); import has no row for "
                            "such a view yet (the file itself counts)")
    view = _unique(f"{name}.in{k}" if k else f"{name}.in", used)
    layout = "tokens" if isinstance(want, Tokens) else "image"
    out.append(Row("reshape", {"shape": list(want), "layout": layout}, view, (src,), view))
    return view


def _unique(name: str, used: set[str]) -> str:
    """``name`` as a spec may write it (letters, digits, ``_.-``), unique among ``used``."""
    return unique_name(used, re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "layer")


def _signature(rows_: list[Row], i: int, index: dict[str, int]) -> tuple[Any, ...]:
    """A row as compared for repeats: kind, arguments, and what it reads relative to it."""
    rel = tuple(i - index[x] if x in index else x for x in rows_[i].inputs)
    return rows_[i].kind, tuple(sorted((k, str(v)) for k, v in rows_[i].args.items())), rel


MAX_BLOCK_ROWS = 128  # rows of one repeated sequence looked for (a ResNet block has ~10)


def repeats(rows_: list[Row], min_count: int = 2) -> list[tuple[int, int, int]]:
    """Runs of an identical row sequence repeated back to back: (start, length, count),
    longest coverage first at each point. The candidates for blocks of the spec's own.
    Sequences of at most ``MAX_BLOCK_ROWS`` rows are tried, so 20,000 rows take linear
    time, not cubic."""
    index = {r.name: j for j, r in enumerate(rows_)}
    sig = [_signature(rows_, i, index) for i in range(len(rows_))]
    found, i = [], 0
    while i < len(sig):
        best = (1, 1)
        for length in range(1, min((len(sig) - i) // 2, MAX_BLOCK_ROWS) + 1):
            if sig[i + length] != sig[i]:  # no repeat of this length: skip the slices
                continue
            count = 1
            while sig[i + count * length: i + (count + 1) * length] == sig[i: i + length]:
                count += 1
            if count >= min_count and count * length > best[0] * best[1]:
                best = (length, count)
        if best[1] >= min_count:
            found.append((i, *best))
            i += best[0] * best[1]
        else:
            i += 1
    return found


class _Block(NamedTuple):
    """A run of repeats written as a block of the spec's own and one row using it."""

    kind: str
    rows: list[Row]  # the first instance's rows, renamed within the block
    use: Row


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".") for n in names]
    common = []
    for group in zip(*parts, strict=False):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return ".".join(common[: min(len(p) for p in parts) - 1])


def _as_block(rows_: list[Row], start: int, length: int, count: int,
              kinds: set[str]) -> _Block | None:
    """The run as a block, when every reference fits one: rows of an instance read each
    other or the instance's input, and rows after the run read only its last row."""
    index = {r.name: j for j, r in enumerate(rows_)}
    end = start + length * count
    last = rows_[end - 1].name
    for r in rows_[end:]:
        if any(start <= index.get(x, -1) < end - 1 for x in r.inputs):
            return None
    first = rows_[start: start + length]
    prefix = _common_prefix([r.name for r in first])
    inner = {r.name: r.name[len(prefix) + 1:] if prefix else r.name for r in first}
    if len(set(inner.values())) != length or any(v in RESERVED for v in inner.values()):
        inner = {r.name: f"{r.kind}{j}" for j, r in enumerate(first)}
    renamed = []
    for r in first:
        ins = []
        for x in r.inputs:
            j = index.get(x)
            if j is None or j < start - 1:
                return None  # the network input, or a row before the block input
            ins.append("input" if j == start - 1 else inner[x])
        renamed.append(r._replace(name=inner[r.name], inputs=tuple(ins)))
    base = re.sub(r"\W", "_", prefix.rsplit(".", 1)[0] if prefix else "") or "block"
    if not base[0].isalpha():
        base = "b_" + base
    kind, k = base, 1
    while kind in kinds:
        k += 1
        kind = f"{base}_{k}"
    kinds.add(kind)
    use = Row(kind, {"n": count}, kind, rows_[start].inputs, last)
    return _Block(kind, renamed, use)


def spec_text(network: Network, rounding: str = "make_divisible_8",
              name: str | None = None) -> str:
    """The network as spec YAML (see the module docstring)."""
    from macscalc.lang.spec import ROW_KINDS

    unknown = unknown_ops(network)
    if unknown:
        raise MacscalcError("cannot write a spec of a model with operators counted as "
                            f"unknown: {', '.join(unknown)}")
    if rounding not in RULES:
        raise MacscalcError(f"unknown rounding rule {rounding!r} (known: {', '.join(RULES)})")
    spec = network.spec
    s = network.settings
    rs = rows(network)
    kinds = set(ROW_KINDS) | {r.name for r in rs}
    blocks: dict[int, tuple[int, _Block]] = {}
    for start, length, count in repeats(rs):
        b = _as_block(rs, start, length, count, kinds)
        if b is not None:
            blocks[start] = (length * count, b)
    size = s.size[0] if s.size[0] == s.size[1] else list(s.size)
    lines = [
        f"name: {_yaml(name or spec.name)}",
        f"title: {_yaml(spec.title)}",
        f"source: {_yaml('imported by macscalc import from ' + spec.source)}",
        f"notes: {_yaml(spec.notes)}" if spec.notes else "",
        f"input: {{size: {_yaml(size)}, channels: {spec.channels}}}",
        f"classes: {s.classes}",
        f"rounding: {rounding}        # how α rounds every width of this imported network",
    ]
    if blocks:
        lines.append("blocks:             # repeated row sequences of the model")
        for _, b in blocks.values():
            lines += [f"  {b.kind}:", "    layers:"]
            prev = "input"
            for r in b.rows:
                lines.append("      " + r.text(prev))
                prev = r.name
    lines.append("layers:")
    prev, i = "input", 0
    while i < len(rs):
        if i in blocks:
            span, b = blocks[i]
            use = b.use._replace(inputs=tuple(_outside(x, blocks, rs) for x in b.use.inputs))
            lines.append("  " + use.text(prev) + f"  # {b.use.args['n']} × {len(b.rows)} rows")
            prev, i = b.use.name, i + span
            continue
        r = rs[i]._replace(inputs=tuple(_outside(x, blocks, rs) for x in rs[i].inputs))
        lines.append("  " + r.text(prev))
        prev, i = r.name, i + 1
    return "\n".join(line for line in lines if line) + "\n"


def _outside(name: str, blocks: dict[int, tuple[int, _Block]], rs: list[Row]) -> str:
    """A reference to a run's last row is a reference to its block row."""
    for start, (span, b) in blocks.items():
        if rs[start + span - 1].name == name:
            return b.use.name
    return name

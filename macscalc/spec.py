"""Architecture specs: YAML files that read like a paper's table.

A spec is a name, its source, the input, the number of classes, a named channel
rounding rule, row defaults, and ``layers:``, one row per line of the paper's table::

    - ir: {t: 6, c: 24, n: 2, s: 2}

Each row is one kind (a primitive from ``layers.py`` or a block from ``blocks.py``)
with that kind's arguments plus four row keys: ``n`` (repeats; only the first keeps
the stride), ``name``, ``from`` (take input from named layers) and ``width``
(``fixed``, or ``{min: 1.0}`` for a layer never narrowed below its paper width).
Everything is validated here, with file:line:column on every error.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from macscalc.blocks import BLOCKS, Block
from macscalc.errors import MacscalcError, kind, show
from macscalc.layers import KINDS, Layer
from macscalc.limits import MAX_ALPHA, MAX_BASE_CHAIN
from macscalc.rounding import RULES, RoundingRule
from macscalc.schema import NAMES, POS_INT, REPEATS, SIZE, Arg
from macscalc.yamlload import Loc, LocDict, LocList, load, read_text

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
)
BUDGET_KEYS = ("macs", "flops", "params", "memory")  # limits a spec may declare for itself
REQUIRED_TOP = ("name", "source", "input", "classes", "layers")
ROW_KEYS = ("n", "name", "from", "width", "role")

Width = None | str | Fraction  # None: scaled by α; "fixed"; Fraction: at least this multiplier
_ABSENT = object()


class Row(NamedTuple):
    """One spec row: a kind instance with its paper values, before α and ρ apply."""

    item: Layer | Block
    name: str | None
    inputs: tuple[str, ...] | None
    n: int
    width: Width
    file: str
    line: int
    col: int
    role: str | None = None  # groups the row's primitives in the per-kind summary

    def error(self, message: str) -> MacscalcError:
        return MacscalcError(message, self.file, self.line, self.col)


class Base(NamedTuple):
    """``base: {spec: mobilenet_v2, until: pw18}``: another spec's rows up to a layer."""

    spec: Spec
    until: str
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
    """``"; did you mean 'x'?"`` for the closest option (or a known alias), else ``""``."""
    import difflib  # only on the error path

    alias = _ALIASES.get(str(word))
    close = [alias] if alias in options else difflib.get_close_matches(str(word), options, n=1)
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


def parse(text: str, file: str) -> Spec:
    """Parse and validate spec text; every mistake is a located :class:`MacscalcError`."""
    r = _Reader(file)
    doc = r.mapping(load(text, file), (1, 1), "a spec", quote=False)
    r.keys(doc, TOP_KEYS, "the spec")
    for key in REQUIRED_TOP:
        if key not in doc:
            raise r.fail(
                f"missing required key {key!r} (a spec needs: {', '.join(REQUIRED_TOP)})", doc.loc
            )
    inp = r.mapping(doc["input"], doc.value_locs["input"], "'input'")
    r.keys(inp, ("size", "channels"), "'input'")
    if "size" not in inp:
        raise r.fail("'input' needs 'size' (pixels, or [h, w])", inp.loc)
    rule_name = doc.get("rounding", "make_divisible_8")
    if not isinstance(rule_name, str) or rule_name not in RULES:
        raise r.fail(
            f"unknown rounding rule {show(rule_name)}{suggest(str(rule_name), list(RULES))} "
            f"(known: {', '.join(RULES)})",
            doc.value_locs["rounding"],
        )
    defaults = _defaults(r, doc)
    layers = doc["layers"]
    if not isinstance(layers, LocList) or not layers:
        raise r.fail("'layers' must be a non-empty list of rows", doc.value_locs["layers"])
    rows = tuple(
        _row(r, item, loc, defaults) for item, loc in zip(layers, layers.item_locs, strict=True)
    )
    return Spec(
        name=r.value(doc, "name", _text, "a non-empty string", "the spec"),
        title=r.value(doc, "title", _text, "a non-empty string", "the spec", doc["name"]),
        source=r.value(doc, "source", _text, "a non-empty string", "the spec"),
        file=file,
        size=r.value(inp, "size", SIZE, SIZE.expected, "'input'"),
        channels=r.value(inp, "channels", POS_INT, POS_INT.expected, "'input'", 3),
        classes=r.value(doc, "classes", POS_INT, "a positive integer", "the spec"),
        rounding=RULES[rule_name],
        rows=rows,
        family=r.value(doc, "family", _text, "a non-empty string", "the spec", None),
        notes=r.value(doc, "notes", _text, "a non-empty string", "the spec", ""),
        budget=_budget(r, doc),
        base=_base(r, doc),
        line=doc.key_locs["name"][0],
    )


def _base(r: _Reader, doc: LocDict) -> Base | None:
    """A backbone taken from another spec, up to (and including) the layer ``until``."""
    if "base" not in doc:
        return None
    b = r.mapping(doc["base"], doc.value_locs["base"], "'base'")
    r.keys(b, ("spec", "until"), "'base'")
    for key in ("spec", "until"):
        if key not in b:
            raise r.fail(f"'base' needs {key!r} (a spec name and the layer it ends with)", b.loc)
    ref = r.value(b, "spec", _text, "a built-in spec name or a .yaml/.yml file", "'base'")
    try:
        spec = _base_spec(ref, r.file)
    except MacscalcError as e:
        if e.line is not None:
            raise  # a mistake inside the base spec, located there
        raise r.fail(f"base spec: {e.message}", b.value_locs["spec"]) from None
    line, col = b.value_locs["until"]
    return Base(spec, r.value(b, "until", _text, "a layer name", "'base'"), line, col)


def _budget(r: _Reader, doc: LocDict) -> dict[str, SpecLimit]:
    """``budget: {macs: 300M, params: 3.5M}``: limits that ``macscalc check`` applies."""
    if "budget" not in doc:
        return {}
    from macscalc.units import parse_limit

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


def _defaults(r: _Reader, doc: LocDict) -> dict[str, Any]:
    if "defaults" not in doc:
        return {}
    d = r.mapping(doc["defaults"], doc.value_locs["defaults"], "'defaults'")
    allowed = _inheritable()
    r.keys(d, list(allowed), "'defaults'")
    return {k: r.value(d, k, allowed[k].type, allowed[k].type.expected, "'defaults'") for k in d}


def _row(r: _Reader, item: Any, loc: Loc, defaults: dict[str, Any]) -> Row:
    if not isinstance(item, LocDict) or len(item) != 1:
        raise r.fail(
            "a row must be one kind with its arguments, e.g. '- conv: {c: 32, k: 3, s: 2}'", loc
        )
    kind = next(iter(item))
    if kind not in ROW_KINDS:
        raise r.fail(
            f"unknown layer kind {show(kind)}{suggest(kind, list(ROW_KINDS))} "
            f"(known: {', '.join(ROW_KINDS)})",
            item.key_locs[kind],
        )
    cls = ROW_KINDS[kind]
    body = r.mapping(item[kind], item.value_locs[kind], f"{kind!r}")
    what = f"{kind!r}"
    r.keys(body, [*cls.args, *ROW_KEYS], what)
    values = {
        name: r.value(body, name, a.type, a.type.expected, what)
        for name, a in cls.args.items()
        if name in body
    }
    for name, a in cls.args.items():
        if name not in values and a.inherit and name in defaults:
            values[name] = defaults[name]
        if name not in values and a.required:
            raise r.fail(f"{what} needs {name!r} ({a.doc})", body.loc)
    try:
        instance = cls(**values)
    except ValueError as e:
        raise r.fail(str(e), body.loc) from None
    return Row(
        item=instance,
        name=r.value(body, "name", _text, "a non-empty string", what, None),
        inputs=r.value(body, "from", NAMES, NAMES.expected, what, None),
        n=r.value(body, "n", REPEATS, REPEATS.expected, what, 1),
        width=r.value(body, "width", _width, "'scaled', 'fixed' or {min: multiplier}", what, None),
        role=r.value(body, "role", _text, "a non-empty string", what, None),
        file=r.file,
        line=loc[0],
        col=loc[1],
    )


def builtin_dir() -> Path:
    """The built-in specs: inside the package when installed, top-level ``specs/`` in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "specs"
    return packaged if packaged.is_dir() else here.parent / "specs"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


# The specs being loaded, outermost first: (resolved path, name in messages). A base
# file is found from the last, must lie in the folder of the first or the current
# folder, and must not be one of them again.
_LOADING: ContextVar[tuple[tuple[Path, str], ...]] = ContextVar("_LOADING", default=())


def load_spec(ref: str) -> Spec:
    """Load a spec by path, or a built-in by name (``mobilenet_v2``)."""
    if _is_file(Path(ref)):
        return _load(Path(ref), ref)
    return _builtin(ref)


def _builtin(name: str, note: str = "") -> Spec:
    if name not in builtin_names():
        raise _unknown(name, note)
    return _load(builtin_dir() / f"{name}.yaml", f"specs/{name}.yaml")


def _base_spec(ref: str, naming: str) -> Spec:
    """What ``base: {spec: ref}`` names: a built-in, or a .yaml/.yml file relative to the
    spec that names it (``naming``), inside its outermost spec's folder or the current one.
    Nothing else is opened, so a spec cannot make macscalc read other files."""
    if not ref.endswith((".yaml", ".yml")):
        return _builtin(ref, "; a base file's name ends in .yaml or .yml")
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
    if not _is_file(real):
        raise _unknown(ref)
    return _load(real, os.path.normpath(Path(naming).parent / ref))


def _load(path: Path, file: str) -> Spec:
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
        return parse(text, file)
    finally:
        _LOADING.reset(token)


def _unknown(ref: str, note: str = "") -> MacscalcError:
    names = builtin_names()
    return MacscalcError(f"no spec file or built-in spec named {show(ref)}{suggest(ref, names)} "
                         f"(built-ins: {', '.join(names)}){note}")


def _is_file(path: Path) -> bool:
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

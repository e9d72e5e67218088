"""Typed arguments of layer kinds, declared once on the kind's class.

A kind (a primitive in ``layers.py`` or a block in ``blocks.py``) declares its
arguments as class attributes made with :func:`arg`. The spec parser checks a row's
values against them, and the builder scales those marked ``width``. :class:`Kind`
gives every kind a keyword constructor, equality and ``replace``; it is hand-written
rather than a dataclass because generating ~25 dataclasses cost 25 ms at startup.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any, ClassVar, NamedTuple

from macscalc.core.limits import MAX_CHANNELS, MAX_RATIO, MAX_REPEATS, MAX_SIZE, MAX_WINDOW
from macscalc.core.units import positive_ratio

ACTIVATIONS = ("relu", "relu6", "hswish", "hsigmoid", "sigmoid", "swish", "gelu", "tanh",
               "leaky_relu", "mish", "softmax")
# PyTorch's names for the same functions
ACT_ALIASES = {"silu": "swish", "hardswish": "hswish", "hardsigmoid": "hsigmoid"}
_REQUIRED = object()


class ArgType(NamedTuple):
    """A value type: what the error message calls it and how a YAML value is converted."""

    expected: str
    convert: Callable[[Any], Any]  # raises ValueError when the value is not of this type

    def __call__(self, value: Any) -> Any:
        return self.convert(value)


class Arg(NamedTuple):
    """One declared argument of a kind."""

    type: ArgType
    default: Any
    width: bool  # a channel count that the width multiplier scales
    inherit: bool  # takes the spec's ``defaults:`` value when the row does not set it
    doc: str

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def arg(
    kind: ArgType,
    default: Any = _REQUIRED,
    *,
    width: bool = False,
    inherit: bool = False,
    doc: str = "",
) -> Any:
    """Declare an argument of a kind (see :class:`Arg`); without a default it is required."""
    return Arg(kind, default, width, inherit, doc)


class Kind:
    """Base of every layer kind: immutable, built from keyword arguments."""

    kind: ClassVar[str]
    args: ClassVar[dict[str, Arg]] = {}
    _defaults: ClassVar[dict[str, Any]] = {}
    _required: ClassVar[tuple[str, ...]] = ()
    width_args: ClassVar[tuple[str, ...]] = ()  # the arguments α scales

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        args: dict[str, Arg] = {}
        for base in reversed(cls.__mro__):
            args.update({k: v for k, v in vars(base).items() if isinstance(v, Arg)})
        cls.args = args
        # computed once per kind: a network build makes thousands of instances
        cls._defaults = {k: a.default for k, a in args.items() if not a.required}
        cls._required = tuple(k for k, a in args.items() if a.required)
        cls.width_args = tuple(k for k, a in args.items() if a.width)

    def __init__(self, **values: Any) -> None:
        if not values.keys() <= self.args.keys():
            unknown = sorted(set(values) - set(self.args))[0]
            raise TypeError(f"{type(self).__name__} has no argument {unknown!r}")
        for name in self._required:
            if name not in values:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
        fields = self.__dict__  # immutable to callers: __setattr__ refuses
        fields.update(self._defaults)
        fields.update(values)
        self.check()

    def check(self) -> None:
        """Raise ValueError for argument combinations that cannot be built."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.args}

    def replace(self, **changes: Any) -> Any:
        return type(self)(**{**self.values(), **changes})

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.values() == other.values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.values().values())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.values().items())
        return f"{type(self).__name__}({inner})"


def registry(table: dict[str, Any]) -> Callable[[type], Any]:
    """A class decorator that files a kind in ``table`` under its ``kind``; a name used
    twice is a bug, not something to overwrite silently."""

    def register(cls: type) -> type:
        name = cls.kind  # type: ignore[attr-defined]
        if name in table:
            raise RuntimeError(f"kind {name!r} registered twice")
        table[name] = cls
        return cls

    return register


def declared(group: type) -> dict[str, Arg]:
    """The arguments a class declares itself (for argument groups shared by kinds)."""
    return {k: v for k, v in vars(group).items() if isinstance(v, Arg)}


def _bounded(most: int, least: int = 1) -> Callable[[Any], int]:
    """An integer from ``least`` to ``most``; bools and floats are not integers here."""

    def convert(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not least <= v <= most:
            raise ValueError
        return v

    return convert


_pos_int = _bounded(MAX_CHANNELS)
_nonneg_int = _bounded(MAX_CHANNELS, least=0)


def _pair(item: Callable[[Any], int]) -> Callable[[Any], tuple[int, int]]:
    def convert(v: Any) -> tuple[int, int]:
        if isinstance(v, list) and len(v) == 2:
            return (item(v[0]), item(v[1]))
        n = item(v)
        return (n, n)

    return convert


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError
    return v


def _ratio(v: Any) -> Fraction:
    """A positive number, kept exact: ``0.35`` becomes 7/20, and ``"88/24"`` is allowed."""
    return positive_ratio(v, MAX_RATIO)


def _probability(v: Any) -> Fraction:
    """A drop probability from 0 to 1, exact (``0``, ``0.2``, ``'1/75'``)."""
    if not isinstance(v, bool) and v in (0, "0"):
        return Fraction(0)
    return positive_ratio(v, 1)


def _choice(*options: str) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        if v not in options:
            raise ValueError
        return v

    return convert


def _padding(v: Any) -> str | tuple[int, int]:
    if v in ("same", "valid", "torch"):
        return v
    return _pair(_bounded(MAX_WINDOW, least=0))(v)


def _channels(v: Any) -> int | str:
    return v if v == "classes" else _pos_int(v)


def _names(v: Any) -> tuple[str, ...]:
    items = v if isinstance(v, list) else [v]
    if not items or not all(isinstance(i, str) and i for i in items):
        raise ValueError
    return tuple(items)


def _name(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError
    return v


def _ints(v: Any) -> tuple[int, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError
    return tuple(_nonneg_int(i) for i in v)


def _pos_ints(v: Any) -> tuple[int, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError
    return tuple(_pos_int(i) for i in v)


def _act(v: Any) -> str | None:
    if v in ("none", None):
        return None
    return _act_fn(v)


def _act_or_identity(v: Any) -> str:
    """An activation row's function; ``none`` is PyTorch's ``nn.Identity``."""
    return "none" if v in ("none", "identity") else _act_fn(v)


def _act_fn(v: Any) -> str:
    return _choice(*ACTIVATIONS)(ACT_ALIASES.get(v, v) if isinstance(v, str) else v)


POS_INT = ArgType(f"a positive integer up to {MAX_CHANNELS:,}", _pos_int)
PAIR = ArgType(f"a positive integer up to {MAX_WINDOW:,} or a list [h, w] of two",
               _pair(_bounded(MAX_WINDOW)))
SIZE = ArgType(f"a positive integer up to {MAX_SIZE:,} or [h, w]", _pair(_bounded(MAX_SIZE)))
REPEATS = ArgType(f"a non-negative integer up to {MAX_REPEATS:,}",
                  _bounded(MAX_REPEATS, least=0))
NONNEG_INT = ArgType(f"a non-negative integer up to {MAX_CHANNELS:,}", _nonneg_int)
PAIR_NONNEG = ArgType(f"a non-negative integer up to {MAX_WINDOW:,} or a list [h, w] of two",
                      _pair(_bounded(MAX_WINDOW, least=0)))
BOOL = ArgType("true or false", _bool)
RATIO = ArgType(f"a positive number up to {MAX_RATIO:,} (or a fraction such as '88/24')",
                _ratio)
INTS = ArgType(f"a list of non-negative integers up to {MAX_CHANNELS:,}", _ints)
POS_INTS = ArgType(f"a list of positive integers up to {MAX_CHANNELS:,}", _pos_ints)
KERNELS = ArgType(f"a list of kernel sizes (positive integers up to {MAX_WINDOW:,}), one per "
                  "channel group", lambda v: tuple(map(_bounded(MAX_WINDOW), _pos_ints(v))))
PADDING = ArgType(f"'same', 'valid', 'torch', a non-negative integer up to {MAX_WINDOW:,} or "
                  "a list [h, w] of two", _padding)
CHANNELS = ArgType(f"a positive integer up to {MAX_CHANNELS:,} or 'classes'", _channels)
NAMES = ArgType("a layer name or a list of layer names", _names)
NAME = ArgType("a layer name", _name)
ACT = ArgType(f"one of {', '.join(ACTIVATIONS)} or none", _act)
SAME_ACT = ArgType(f"one of {', '.join(ACTIVATIONS)}, none or same",
                   lambda v: "same" if v == "same" else _act(v))
CHOICE = _choice  # ArgType(expected, CHOICE(...)) for a kind's own set of words
ACT_FN = ArgType(f"one of {', '.join(ACTIVATIONS)}", _act_fn)
ACT_ROW = ArgType(f"one of {', '.join(ACTIVATIONS)} or none", _act_or_identity)
PROB = ArgType("a probability from 0 to 1 (at most 6 decimals, or a fraction such as '1/75')",
               _probability)
POOL_OP = ArgType("'avg' or 'max'", _choice("avg", "max"))
RESIZE_MODE = ArgType("'nearest' or 'bilinear'", _choice("nearest", "bilinear"))

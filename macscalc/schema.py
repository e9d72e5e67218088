"""Typed arguments of layer kinds, declared once on the kind's dataclass fields.

A kind's fields carry an :class:`ArgType` in their metadata; the spec parser checks a
row's values against them, and the builder scales the fields marked ``width``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

ACTIVATIONS = ("relu", "relu6", "hswish", "hsigmoid", "sigmoid", "swish")


@dataclass(frozen=True)
class ArgType:
    """A value type: what the error message calls it and how a YAML value is converted."""

    expected: str
    convert: Callable[[Any], Any]  # raises ValueError when the value is not of this type

    def __call__(self, value: Any) -> Any:
        return self.convert(value)


def _pos_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError
    return v


def _nonneg_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError
    return v


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
    """A positive number, kept exact: YAML ``0.35`` becomes 7/20, not a binary float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError
    r = Fraction(str(v))
    if r <= 0:
        raise ValueError
    return r


def _choice(*options: str) -> Callable[[Any], str]:
    def convert(v: Any) -> str:
        if v not in options:
            raise ValueError
        return v

    return convert


def _padding(v: Any) -> str | tuple[int, int]:
    if v in ("same", "valid"):
        return v
    return _pair(_nonneg_int)(v)


def _channels(v: Any) -> int | str:
    return v if v == "classes" else _pos_int(v)


def _names(v: Any) -> tuple[str, ...]:
    items = v if isinstance(v, list) else [v]
    if not items or not all(isinstance(i, str) and i for i in items):
        raise ValueError
    return tuple(items)


def _act(v: Any) -> str | None:
    if v in ("none", None):
        return None
    return _choice(*ACTIVATIONS)(v)


POS_INT = ArgType("a positive integer", _pos_int)
NONNEG_INT = ArgType("a non-negative integer", _nonneg_int)
PAIR = ArgType("a positive integer or a list [h, w] of two", _pair(_pos_int))
BOOL = ArgType("true or false", _bool)
RATIO = ArgType("a positive number", _ratio)
PADDING = ArgType("'same', 'valid', a non-negative integer or a list [h, w] of two", _padding)
CHANNELS = ArgType("a positive integer or 'classes'", _channels)
NAMES = ArgType("a layer name or a list of layer names", _names)
ACT = ArgType(f"one of {', '.join(ACTIVATIONS)} or none", _act)
ACT_FN = ArgType(f"one of {', '.join(ACTIVATIONS)}", _choice(*ACTIVATIONS))
POOL_OP = ArgType("'avg' or 'max'", _choice("avg", "max"))


def arg(
    kind: ArgType,
    default: Any = dataclasses.MISSING,
    *,
    width: bool = False,
    inherit: bool = False,
    doc: str = "",
) -> Any:
    """Declare a kind's argument.

    ``width``: a channel count that the width multiplier scales.
    ``inherit``: takes the spec's ``defaults:`` value when the row does not set it.
    """
    meta = {"type": kind, "width": width, "inherit": inherit, "doc": doc}
    return dataclasses.field(default=default, metadata=meta)


def args_of(cls: type) -> dict[str, dataclasses.Field]:
    """The declared arguments of a kind, by name."""
    return {f.name: f for f in dataclasses.fields(cls) if "type" in f.metadata}

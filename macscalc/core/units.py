"""Reading and writing numbers: multipliers, counts with SI suffixes, millions.

Numbers from the command line and from files are read exactly (``Fraction``) and only
in plain forms (``0.35``, ``3.5e8``, ``88/24``): a huge exponent or thousands of digits
is refused before any arithmetic, and every value is checked against its limit
(``macscalc/core/limits.py``).
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from typing import Any

from macscalc.core.errors import MacscalcError, show
from macscalc.core.limits import MAX_ALPHA, MAX_COUNT, MAX_FRACTION_CHARS, MS_RANGE

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)
_RATIO = re.compile(r"[+-]?[0-9]+/[0-9]+", re.ASCII)
FINEST = 10**6  # the largest denominator of a multiplier or ratio: 6 decimals


def exact(text: str, ratio: bool = False) -> Fraction:
    """A plain decimal (``0.35``, ``3.5e8``) or, with ``ratio``, ``a/b``, exactly. Raises
    ValueError for anything else, so nothing long or odd reaches ``Fraction``."""
    t = text.strip()
    if len(t) > MAX_FRACTION_CHARS or not (
        _DECIMAL.fullmatch(t) or ratio and _RATIO.fullmatch(t)
    ):
        raise ValueError(t)
    try:
        return Fraction(t)
    except ZeroDivisionError:
        raise ValueError(t) from None


def positive_ratio(value: Any, most: int) -> Fraction:
    """A number (or text ``a/b``) in (0, ``most``] with at most 6 decimals, exactly; raises
    ValueError otherwise (bools, infinities and NaN included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    r = exact(value if isinstance(value, str) else repr(value), ratio=True)
    if not 0 < r <= most or r.denominator > FINEST:
        raise ValueError(value)
    return r


def parse_ratio(text: str, what: str, most: int) -> Fraction:
    """``0.35`` → 7/20 for a command-line option, at most ``most``."""
    try:
        return positive_ratio(text, most)
    except ValueError:
        raise MacscalcError(f"{what} must be a positive number up to {most} (at most 6 "
                            f"decimals), got {show(text)}") from None


def parse_alpha(text: str, what: str = "width multiplier") -> Fraction:
    """A width multiplier (or another positive ratio, named by ``what``), exact: ``0.35`` →
    7/20."""
    return parse_ratio(text, what, MAX_ALPHA)


def parse_int(text: str, what: str, most: int) -> int:
    """A positive integer option written in ASCII digits, at most ``most``."""
    t = text.strip()
    if not (t.isascii() and t.isdigit() and len(t) <= 20 and 0 < int(t) <= most):
        raise MacscalcError(f"{what} must be a positive integer up to {most:,}, got {show(text)}")
    return int(t)


def parse_ms(value: str | float, what: str) -> float:
    """A latency in milliseconds within ``MS_RANGE`` (NaN and infinities refused)."""
    try:
        ms = float(value) if not isinstance(value, str) or value.isascii() else math.nan
    except ValueError:
        ms = math.nan
    if not MS_RANGE[0] <= ms <= MS_RANGE[1]:
        raise MacscalcError(f"{what} must be a number of milliseconds from {MS_RANGE[0]} to "
                            f"{MS_RANGE[1]:,}, got {show(value)}")
    return ms


def _whole(number: str, unit: int, text: str, what: str, example: str) -> int:
    """``number`` × ``unit`` as a whole count from 0 to ``MAX_COUNT``."""
    try:
        value = exact(number) * unit
    except ValueError:
        raise MacscalcError(f"{what} must be {example}, got {show(text)}") from None
    if value < 0 or value.denominator != 1:
        raise MacscalcError(f"{what} must be a non-negative whole number, got {show(text)}")
    if value > MAX_COUNT:
        raise MacscalcError(f"{what} must be at most 1e18, got {show(text)}")
    return int(value)


def parse_count(text: str, what: str = "count") -> int:
    """``300M``, ``0.3G``, ``3.5e8``, ``1_000_000`` → an exact integer."""
    raw = text.strip().replace("_", "")
    suffix = raw[-1:].upper() if raw[-1:].upper() in _SUFFIX else ""
    number = raw[: len(raw) - len(suffix)]
    return _whole(number, _SUFFIX[suffix], text, what,
                  "a number such as 300M, 0.3G, 3.5e8 or 1_000_000")


BYTE_LIMITS = ("memory", "size")  # limits in bytes (2MB, 512KiB); the others are counts


def parse_limit(metric: str, value: Any, what: str) -> int:
    """A limit as a file writes it: a number, or text such as ``300M`` (``2MB`` for memory)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MacscalcError(f"{what} must be a number such as 300M, got {show(value)}")
    text = value if isinstance(value, str) else repr(value)
    return parse_bytes(text, what) if metric in BYTE_LIMITS else parse_count(text, what)


DTYPE_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def dtype_name(name: str) -> str:
    """A checked activation type name."""
    if name not in DTYPE_BYTES:
        raise MacscalcError(f"unknown dtype {show(name)} (expected one of: "
                            f"{', '.join(DTYPE_BYTES)})")
    return name


def dtype_bytes(name: str) -> int:
    return DTYPE_BYTES[dtype_name(name)]


_BYTE_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "KI": 2**10, "MI": 2**20,
               "GI": 2**30}


def parse_bytes(text: str, what: str = "size") -> int:
    """``2MB``, ``512KiB``, ``1.5M``, ``1_000_000`` → bytes (K, M, G are 1000s; Ki, Mi, Gi
    are 1024s)."""
    raw = text.strip().replace("_", "")
    body = raw[:-1] if raw[-1:].upper() == "B" else raw
    unit = next((u for u in sorted(_BYTE_UNITS, key=len, reverse=True)
                 if u and body.upper().endswith(u)), "")
    return _whole(body[: len(body) - len(unit)], _BYTE_UNITS[unit], text, what,
                  "a size such as 2MB, 512KiB or 1_000_000")


def fmt_alpha(a: Fraction) -> str:
    """Exact decimal form of a multiplier: 7/20 → '0.35'."""
    if a.denominator == 1:
        return f"{a.numerator}.0"
    d = Decimal(a.numerator) / Decimal(a.denominator)
    return format(d.normalize(), "f")


def fmt_int(n: int) -> str:
    return f"{n:,}"


def pct(part: int, whole: int) -> Decimal:
    """``part`` as a percentage of ``whole``, to 0.01, halves rounded up."""
    if whole == 0:
        return Decimal(0)
    with localcontext() as exact:  # counts reach 40 digits within the input limits
        exact.prec = 100
        return (Decimal(part) * 100 / whole).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

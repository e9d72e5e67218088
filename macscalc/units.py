"""Reading and writing numbers: multipliers, counts with SI suffixes, millions."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from macscalc.errors import MacscalcError

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_alpha(text: str) -> Fraction:
    """A width multiplier, exact: ``0.35`` → 7/20."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise MacscalcError(f"width multiplier must be a positive number, got {text!r}") from None
    if value <= 0:
        raise MacscalcError(f"width multiplier must be a positive number, got {text!r}")
    return value


def parse_count(text: str, what: str = "count") -> int:
    """``300M``, ``0.3G``, ``3.5e8``, ``1_000_000`` → an exact integer."""
    raw = text.strip().replace("_", "")
    suffix = raw[-1:].upper() if raw[-1:].upper() in "KMGT" and raw[-1:].isalpha() else ""
    number = raw[:-1] if suffix else raw
    try:
        value = Decimal(number) * _SUFFIX[suffix]
    except InvalidOperation:
        raise MacscalcError(
            f"{what} must be a number such as 300M, 0.3G, 3.5e8 or 1_000_000, got {text!r}"
        ) from None
    if value < 0 or value != value.to_integral_value():
        raise MacscalcError(f"{what} must be a non-negative whole number, got {text!r}")
    return int(value)


DTYPE_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def dtype_bytes(name: str) -> int:
    if name not in DTYPE_BYTES:
        raise MacscalcError(f"unknown dtype {name!r} (expected one of: {', '.join(DTYPE_BYTES)})")
    return DTYPE_BYTES[name]


def fmt_alpha(a: Fraction) -> str:
    """Exact decimal form of a multiplier: 7/20 → '0.35'."""
    if a.denominator == 1:
        return f"{a.numerator}.0"
    d = Decimal(a.numerator) / Decimal(a.denominator)
    return format(d.normalize(), "f")


def fmt_int(n: int) -> str:
    return f"{n:,}"


def fmt_millions(n: int, digits: int = 2) -> str:
    return f"{n / 1e6:.{digits}f}"

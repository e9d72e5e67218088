"""Reading and writing numbers: multipliers, counts with SI suffixes, millions."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from macscalc.errors import MacscalcError

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_alpha(text: str, what: str = "width multiplier") -> Fraction:
    """A width multiplier (or another positive ratio, named by ``what``), exact: ``0.35`` →
    7/20."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        value = Fraction(0)
    if value <= 0:
        raise MacscalcError(f"{what} must be a positive number, got {text!r}")
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


def dtype_name(name: str) -> str:
    """A checked activation type name."""
    if name not in DTYPE_BYTES:
        raise MacscalcError(f"unknown dtype {name!r} (expected one of: {', '.join(DTYPE_BYTES)})")
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
    number = body[: len(body) - len(unit)]
    try:
        value = Decimal(number) * _BYTE_UNITS[unit]
    except InvalidOperation:
        raise MacscalcError(f"{what} must be a size such as 2MB, 512KiB or 1_000_000, got "
                            f"{text!r}") from None
    if value < 0 or value != value.to_integral_value():
        raise MacscalcError(f"{what} must be a whole number of bytes, got {text!r}")
    return int(value)


def fmt_alpha(a: Fraction) -> str:
    """Exact decimal form of a multiplier: 7/20 → '0.35'."""
    if a.denominator == 1:
        return f"{a.numerator}.0"
    d = Decimal(a.numerator) / Decimal(a.denominator)
    return format(d.normalize(), "f")


def fmt_int(n: int) -> str:
    return f"{n:,}"


"""Channel rounding under a width multiplier: the one place where α meets a channel count.

Each published family rounds differently, and the rule is named in every report.
Arithmetic is exact, in integers: α = num/den. The reference code uses floats, and the
two agree on every published multiplier. A rule's arithmetic is written once and serves
a Python int or a numpy integer array of numerators alike, so a sweep rounds all its α
values at once with the same lines that ``count`` runs (``max(a, b)`` is written
``a + (a < b)·(b − a)`` for that reason).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple

INT64_SAFE = 2**62  # intermediates below this cannot overflow a signed 64-bit integer


def nearest_multiple(num: Any, den: int, divisor: int = 8, floor: int | None = None,
                     min_ratio: Fraction = Fraction(9, 10)) -> Any:
    """``make_divisible`` of v = num/den, in integers (``num`` an int or an array)."""
    floor = divisor if floor is None else floor
    q = (2 * num + divisor * den) // (2 * den) // divisor * divisor  # int(v + d/2) // d · d
    q = q + (q < floor) * (floor - q)  # max(floor, q)
    return q + divisor * (q * den * min_ratio.denominator < min_ratio.numerator * num)


def make_divisible(v: Fraction, divisor: int = 8, min_value: int | None = None,
                   min_ratio: Fraction = Fraction(9, 10)) -> int:
    """Nearest multiple of ``divisor``, never below ``min_value`` nor below ``min_ratio``·v.

    tensorflow/models research/slim/nets/mobilenet/mobilenet.py ``_make_divisible``
    (the same function is in torchvision ``_utils._make_divisible`` and, with the ratio as
    ``round_limit``, timm ``layers/helpers.py make_divisible``).
    """
    v = Fraction(v)
    return nearest_multiple(v.numerator, v.denominator, divisor, min_value, min_ratio)


def _slim_v1(c: int, num: Any, den: int) -> Any:
    # tensorflow/models research/slim/nets/mobilenet_v1.py:
    # depth = lambda d: max(int(d * depth_multiplier), min_depth), min_depth = 8
    q = c * num // den
    return q + (q < 8) * (8 - q)


def _make_divisible_8(c: int, num: Any, den: int) -> Any:
    return nearest_multiple(c * num, den, 8)


class RoundingRule(NamedTuple):
    """How one family turns ``c·α`` into a channel count, and ``cin·t`` into an expansion."""

    name: str
    description: str
    width_fn: Callable[[int, Any, int], Any]  # (c, num, den): channels at α = num/den
    divisor: int = 8  # expansions (cin·t) round to a multiple of this
    min_ratio: Fraction = Fraction(1)  # width_fn's floor ratio; its denominator bounds sizes

    def width(self, c: int, alpha: Fraction) -> int:
        """Channels of a layer declared with ``c`` channels, under multiplier ``alpha``."""
        return c if alpha == 1 else self.width_fn(c, alpha.numerator, alpha.denominator)

    def widths(self, c: int, num: Any, den: int) -> Any:
        """``width`` at every α = num/den of an integer array ``num``."""
        return c + (num != den) * (self.width_fn(c, num, den) - c)

    def fits_int64(self, c: int, num: int, den: int) -> bool:
        """Whether ``widths`` at numerators up to ``num`` stays exact in int64: its largest
        intermediate is below (c·num + divisor·den)·max(2, the ratio's denominator)."""
        scale = max(2, self.min_ratio.denominator)
        return (c * num + self.divisor * den) * scale < INT64_SAFE

    def expand(self, cin: int, t: Fraction) -> int:
        """Expanded width of an inverted residual with input ``cin`` and ratio ``t``.

        slim ``expand_input_by_factor``: ``_make_divisible(num_inputs * t, 8)``, and
        ``expand_input(1, divisible_by=1)`` for t = 1 (no expansion conv at all).
        """
        return cin if t == 1 else make_divisible(cin * t, self.divisor)


def parametric(divisor: int, min_ratio: Fraction) -> RoundingRule:
    """``rounding: {divisor: 4, min_ratio: 0.9}``: make_divisible with the spec's own
    divisor and floor ratio (GhostNet rounds to 4; timm's ``round_limit`` is the ratio)."""

    def width(c: int, num: Any, den: int) -> Any:
        return nearest_multiple(c * num, den, divisor, min_ratio=min_ratio)

    ratio = f"{float(min_ratio):g}"
    return RoundingRule(
        f"make_divisible_{divisor}" + ("" if min_ratio == Fraction(9, 10) else f"_r{ratio}"),
        f"nearest multiple of {divisor}, at least {divisor} and never below {ratio}·c·α",
        width, divisor, min_ratio)


RULES: dict[str, RoundingRule] = {
    rule.name: rule
    for rule in (
        RoundingRule("slim_v1", "max(int(c·α), 8) (TF-slim mobilenet_v1.py)", _slim_v1),
        RoundingRule(
            "make_divisible_8",
            "nearest multiple of 8, at least 8 and never 10 % below c·α "
            "(TF-slim mobilenet.py _make_divisible; torchvision _make_divisible)",
            _make_divisible_8, 8, Fraction(9, 10),
        ),
    )
}

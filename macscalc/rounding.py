"""Channel rounding under a width multiplier: the one place where α meets a channel count.

Each published family rounds differently, and the rule is named in every report.
Arithmetic is exact (``fractions.Fraction``); the reference code uses floats, and the
two agree on every published multiplier.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import NamedTuple


def make_divisible(v: Fraction, divisor: int = 8, min_value: int | None = None,
                   min_ratio: Fraction = Fraction(9, 10)) -> int:
    """Nearest multiple of ``divisor``, never below ``min_value`` nor below ``min_ratio``·v.

    tensorflow/models research/slim/nets/mobilenet/mobilenet.py ``_make_divisible``
    (the same function is in torchvision ``_utils._make_divisible`` and, with the ratio as
    ``round_limit``, timm ``layers/helpers.py make_divisible``).
    """
    floor = divisor if min_value is None else min_value
    new_v = max(floor, int(v + Fraction(divisor, 2)) // divisor * divisor)
    if new_v < min_ratio * v:
        new_v += divisor
    return new_v


def _slim_v1(c: int, alpha: Fraction) -> int:
    # tensorflow/models research/slim/nets/mobilenet_v1.py:
    # depth = lambda d: max(int(d * depth_multiplier), min_depth), min_depth = 8
    return max(int(c * alpha), 8)


def _make_divisible_8(c: int, alpha: Fraction) -> int:
    return make_divisible(c * alpha, 8)


class RoundingRule(NamedTuple):
    """How one family turns ``c·α`` into a channel count, and ``cin·t`` into an expansion."""

    name: str
    description: str
    width_fn: Callable[[int, Fraction], int]
    divisor: int = 8  # expansions (cin·t) round to a multiple of this

    def width(self, c: int, alpha: Fraction) -> int:
        """Channels of a layer declared with ``c`` channels, under multiplier ``alpha``."""
        return c if alpha == 1 else self.width_fn(c, alpha)

    def expand(self, cin: int, t: Fraction) -> int:
        """Expanded width of an inverted residual with input ``cin`` and ratio ``t``.

        slim ``expand_input_by_factor``: ``_make_divisible(num_inputs * t, 8)``, and
        ``expand_input(1, divisible_by=1)`` for t = 1 (no expansion conv at all).
        """
        return cin if t == 1 else make_divisible(cin * t, self.divisor)


def parametric(divisor: int, min_ratio: Fraction) -> RoundingRule:
    """``rounding: {divisor: 4, min_ratio: 0.9}``: make_divisible with the spec's own
    divisor and floor ratio (GhostNet rounds to 4; timm's ``round_limit`` is the ratio)."""

    def width(c: int, alpha: Fraction) -> int:
        return make_divisible(c * alpha, divisor, min_ratio=min_ratio)

    ratio = f"{float(min_ratio):g}"
    return RoundingRule(
        f"make_divisible_{divisor}" + ("" if min_ratio == Fraction(9, 10) else f"_r{ratio}"),
        f"nearest multiple of {divisor}, at least {divisor} and never below {ratio}·c·α",
        width, divisor)


RULES: dict[str, RoundingRule] = {
    rule.name: rule
    for rule in (
        RoundingRule("slim_v1", "max(int(c·α), 8) (TF-slim mobilenet_v1.py)", _slim_v1),
        RoundingRule(
            "make_divisible_8",
            "nearest multiple of 8, at least 8 and never 10 % below c·α "
            "(TF-slim mobilenet.py _make_divisible; torchvision _make_divisible)",
            _make_divisible_8,
        ),
    )
}

"""Channel rounding rules, against the reference implementations' own cases."""

from fractions import Fraction

from macscalc.rounding import RULES, make_divisible


def test_make_divisible_nearest_multiple_and_ten_percent_floor():
    # slim/torchvision _make_divisible: 11.2 → 8 would drop > 10 %, so 16
    assert make_divisible(Fraction("11.2")) == 16
    assert make_divisible(Fraction(20)) == 24    # int(20 + 4) // 8 * 8
    assert make_divisible(Fraction("5.6")) == 8  # never below the divisor
    assert make_divisible(Fraction(1664)) == 1664


def test_slim_v1_truncates_with_min_depth_8():
    rule = RULES["slim_v1"]
    assert rule.width(32, Fraction("0.25")) == 8
    assert rule.width(1024, Fraction("0.75")) == 768
    assert rule.width(32, Fraction("0.2")) == 8  # int(6.4) = 6, raised to min_depth 8


def test_v2_widths_at_0_35():
    rule = RULES["make_divisible_8"]
    widths = [rule.width(c, Fraction("0.35")) for c in (32, 16, 24, 64, 96, 160, 320)]
    assert widths == [16, 8, 8, 24, 32, 56, 112]


def test_expansion_rule():
    rule = RULES["make_divisible_8"]
    assert rule.expand(16, Fraction(1)) == 16
    assert rule.expand(24, Fraction(6)) == 144
    assert rule.expand(20, Fraction("2.5")) == 48  # 50 → nearest multiple of 8

"""Channel rounding rules, against the reference implementations' own cases."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from macscalc.core.rounding import RULES, make_divisible, nearest_multiple, parametric


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


def _make_divisible_fraction(v: Fraction, divisor: int, ratio: Fraction) -> int:
    """The reference function (slim ``_make_divisible``) in exact fractions."""
    new_v = max(divisor, int(v + Fraction(divisor, 2)) // divisor * divisor)
    return new_v + divisor if new_v < ratio * v else new_v


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(num=st.integers(1, 10**12), den=st.integers(1, 10**6), divisor=st.integers(1, 64),
       ratio=st.fractions(0, 1, max_denominator=100))
def test_integer_make_divisible_is_the_reference_in_fractions(num, den, divisor, ratio):
    assert nearest_multiple(num, den, divisor, min_ratio=ratio) == _make_divisible_fraction(
        Fraction(num, den), divisor, ratio)


RULES_UNDER_TEST = [RULES["slim_v1"], RULES["make_divisible_8"],
                    parametric(4, Fraction(9, 10)), parametric(3, Fraction(7, 10))]


@pytest.mark.parametrize("rule", RULES_UNDER_TEST, ids=lambda r: r.name)
def test_widths_over_an_array_are_width_at_each_alpha(rule):
    # α from 0.01 to 4 in steps of 0.01 over one denominator, 1 included (as written)
    alphas = [Fraction(k, 100) for k in range(1, 401)]
    num = np.array([a.numerator * (100 // a.denominator) for a in alphas])
    for c in (1, 3, 8, 16, 24, 32, 96, 160, 320, 1280):
        expected = [rule.width(c, a) for a in alphas]
        assert rule.widths(c, num, 100).tolist() == expected
        assert rule.widths(c, num.astype(object), 100).tolist() == expected


def test_fits_int64_is_a_true_bound():
    rule = RULES["make_divisible_8"]
    den = 10**9
    top = 2**62 // (10 * 1_000_000) - 8 * den  # (c·num + 8·den)·10 just under 2⁶²
    num = np.array([1, top // 3, top], dtype=np.int64)
    assert rule.fits_int64(1_000_000, top, den)
    assert not rule.fits_int64(1_000_000, 2 * top, den)
    assert rule.widths(1_000_000, num, den).tolist() == rule.widths(
        1_000_000, num.astype(object), den).tolist()

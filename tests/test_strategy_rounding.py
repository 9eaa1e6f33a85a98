"""floor_to / ceil_to: prices and sizes on the venue's grid, as the exact decimal the wire carries."""

import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from latentspeed_core.engine.strategy import _INVERSE, _inverse, ceil_to, floor_to

DECIMAL_STEPS = [0.5, 0.25, 0.1, 0.05, 0.01, 0.001, 0.0001, 2e-05, 1e-08, 1e-10]


def nearest_double(n: int, step: float) -> float:
    """The double nearest the decimal ``n * step`` (step as written: 0.01 means 1/100)."""
    return float(Fraction(n) * Fraction(Decimal(repr(step))))


@settings(max_examples=3000, deadline=None)
@given(st.floats(0.0, 1e9, allow_nan=False), st.sampled_from(DECIMAL_STEPS))
def test_decimal_steps_give_the_nearest_double_of_the_exact_multiple(x, step):
    assume(x / step < 2**52)
    n_lo, n_hi = math.floor(x / step + 1e-9), math.ceil(x / step - 1e-9)  # the grid points they pick
    assert floor_to(x, step) == nearest_double(n_lo, step)
    assert ceil_to(x, step) == nearest_double(n_hi, step)
    assert n_hi - n_lo in (0, 1)


@settings(max_examples=2000, deadline=None)
@given(st.floats(0.0, 1e5, allow_nan=False), st.sampled_from(DECIMAL_STEPS + [0.3, 1.0, 5.0, 1, 10]))
def test_same_as_rounding_to_ten_decimals_where_that_was_exact(x, step):
    """Below 1e5 the decimal-string ``round`` the helpers used before gives the same values."""
    assert floor_to(x, step) == round(math.floor(x / step + 1e-9) * step, 10)
    assert ceil_to(x, step) == round(math.ceil(x / step - 1e-9) * step, 10)


def test_large_prices_are_exact_where_rounding_to_ten_decimals_was_not():
    # 1e-10 of a price near 1e7 is below a double's spacing there: the old round() kept the error
    # of n * 0.01; the division does not.
    x = 12_345_678.91
    n = round(x / 0.01)
    assert floor_to(x, 0.01) == nearest_double(n, 0.01) == 12_345_678.91


def test_steps_that_are_not_one_over_a_decimal_keep_the_rounding():
    assert _inverse(0.3) == 0 and _inverse(5.0) == 0 and _inverse(1e-12) == 0
    assert _inverse(0.01) == 100 and _inverse(0.25) == 4
    assert floor_to(1.0, 0.3) == 0.9 and ceil_to(1.0, 0.3) == 1.2
    assert floor_to(17, 5) == 15 and type(floor_to(17, 5)) is int  # integer steps: integers, as before
    assert floor_to(1.234, None) == 1.234 and ceil_to(1.234, 0) == 1.234


def test_the_cache_of_steps_is_bounded():
    before = dict(_INVERSE)
    try:
        for i in range(5000):
            floor_to(1.0, 1e-3 + i * 1e-9)
        assert len(_INVERSE) <= 4096
    finally:
        _INVERSE.clear()
        _INVERSE.update(before)

"""The compiled standard feature updaters (``_features.c``) equal the Python closures bit for bit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentspeed_core.marketstream import features as F
from latentspeed_core.testing import expect_compiled

#: Comparisons need the compiled side; without a compiler the first test checks the fallback instead.
compiled_only = pytest.mark.skipif(
    not expect_compiled(),
    reason="compiled code not in use (no C compiler, or LATENTSPEED_PURE_PYTHON): nothing to compare",
)


def test_the_compiled_features_are_built():
    """With a compiler the suite must exercise _features.c (a failed build would test the closures
    twice); without one, the closures must be what runs."""
    if expect_compiled():
        assert F._compiled is not None
        assert type(F.TopOfBook().book_updater("t")).__module__ == "latentspeed_core._features"
    else:
        assert F._compiled is None


px = st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False)
qty = st.floats(1e-6, 1e4, allow_nan=False, allow_infinity=False)
side = st.lists(st.tuples(px, qty), min_size=1, max_size=12)


def pairs(w: int):
    """(compiled, python) updater pairs of every standard book feature for window ``w``."""
    return [
        (F._compiled.top_of_book(), F._top_of_book_py()),
        (F._compiled.depth(), F._depth_py()),
        (
            F._compiled.volatility(w, "midpoint", "volatility_mid"),
            F._volatility_py(w, "midpoint", "volatility_mid"),
        ),
        (F._compiled.ofi(w), F._ofi_py(w)),
    ]


@compiled_only
@settings(max_examples=150, deadline=None)
@given(books=st.lists(st.tuples(side, side, st.booleans()), min_size=1, max_size=60), w=st.integers(1, 7))
def test_book_features_bit_identical(books, w):
    ups = pairs(w)
    prev = None
    for bids, asks, repeat in books:
        if repeat and prev:  # unchanged touch: exercises the >= / <= ties of OFI
            bids, asks = prev
        prev = (bids, asks)
        bids = [list(lv) for lv in bids]
        asks = [list(lv) for lv in asks]
        mc, mp = {"bids": bids, "asks": asks}, {"bids": bids, "asks": asks}
        for c, p in ups:
            c(mc)
            p(mp)
        assert repr(mc) == repr(mp)  # repr: NaN-safe, and 0.0 vs -0.0 count


@compiled_only
@settings(max_examples=100, deadline=None)
@given(prices=st.lists(st.floats(1e-3, 1e6), min_size=1, max_size=80), w=st.integers(1, 25))
def test_trade_volatility_bit_identical(prices, w):
    c, p = F._compiled.volatility(w, "price", "volatility"), F._volatility_py(w, "price", "volatility")
    for x in prices:
        mc, mp = {"price": x}, {"price": x}
        c(mc)
        p(mp)
        assert repr(mc) == repr(mp)


@compiled_only
def test_errors_match_the_python_closures():
    def outcome(update, msg):
        try:
            update(msg)
        except Exception as exc:
            return type(exc)
        return msg

    for c, p in pairs(3):
        for bad in ({}, {"bids": [], "asks": [[1.0, 1.0]]}, {"bids": [[1.0]], "asks": [[2.0, 1.0]]}):
            assert outcome(c, dict(bad)) == outcome(p, dict(bad)), (c, bad)
    with pytest.raises(ZeroDivisionError):
        F._compiled.top_of_book()({"bids": [[1.0, 0.0]], "asks": [[2.0, 0.0]]})
    vol = F._compiled.volatility(3, "midpoint", "v")
    vol({"midpoint": 1.0})
    with pytest.raises(ValueError):
        vol({"midpoint": -1.0})
    out = {"midpoint": math.nan}
    F._compiled.volatility(3, "midpoint", "v")(out)  # first value: no return yet, as in Python
    assert out["v"] == 0.0


@compiled_only
def test_long_runs_do_not_drift():
    """Re-anchoring with math.fsum every window keeps the compiled sums exact as in Python."""
    import random

    rnd = random.Random(3)
    c, p = F._compiled.ofi(20), F._ofi_py(20)
    for _ in range(20_000):
        bids = [[rnd.choice((99.0, 99.5, 100.0)), rnd.uniform(0.001, 1e4)]]
        asks = [[rnd.choice((100.5, 101.0)), rnd.uniform(0.001, 1e4)]]
        mc, mp = {"bids": bids, "asks": asks}, {"bids": bids, "asks": asks}
        c(mc)
        p(mp)
        assert mc["ofi_rolling"] == mp["ofi_rolling"]

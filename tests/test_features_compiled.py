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


# -- the compiled topic state (one C call per message) against pipeline._PyTopic ----------------

# mostly float prices (the compiled path), some the Pipeline handles itself (ints, 0, < 0, NaN)
level_px = st.one_of(*[px] * 8, st.integers(1, 1000), st.sampled_from([0.0, -1.0, math.nan]))
level = st.one_of(st.tuples(level_px, qty).map(list), st.tuples(level_px, qty))
book_side = st.lists(level, min_size=0, max_size=12)


def _build(topic, bids, asks, ts, rts):
    """What Pipeline.on_book publishes for these levels (None: nothing) with this topic state."""
    from latentspeed_core.marketstream.pipeline import _book_message

    if not bids or not asks:
        return None
    m = topic.book(bids, asks, ts, rts)
    if m is None and not bids[0][0] >= asks[0][0] and bids[-1][0] > 0.0:
        m = _book_message(topic, bids, asks, ts, rts)  # levels the compiled state leaves to the Pipeline
    return m


def _widen(msg):
    """A plugin's updater between the standard ones, replacing the asks the later ones read."""
    msg["asks"] = [[p + 1.0, q * 2.0] for p, q in msg["asks"]]
    msg["plugin"] = len(msg)


@compiled_only
@settings(max_examples=150, deadline=None)
@given(books=st.lists(st.tuples(book_side, book_side), min_size=1, max_size=40), w=st.integers(1, 5),
       plugin=st.booleans())  # fmt: skip
def test_compiled_topic_builds_the_same_book_messages(books, w, plugin):
    from latentspeed_core.marketstream.pipeline import _PyTopic

    c_ups = [F._compiled.top_of_book(), F._compiled.depth(), F._compiled.volatility(w, "midpoint", "volatility_mid"),
             F._compiled.ofi(w)]  # fmt: skip
    p_ups = [
        F._top_of_book_py(),
        F._depth_py(),
        F._volatility_py(w, "midpoint", "volatility_mid"),
        F._ofi_py(w),
    ]
    if plugin:
        c_ups.insert(2, _widen)
        p_ups.insert(2, _widen)
    c = F._compiled.Topic("T", "EX", "SYM", c_ups, w, 1)
    p = _PyTopic("T", "EX", "SYM", p_ups, w, 1)
    for i, (bids, asks) in enumerate(books):
        try:
            mc = _build(c, [list(lv) if isinstance(lv, list) else lv for lv in bids], list(asks), i, i + 1)
        except Exception as exc:
            mc = type(exc)
        try:
            mp = _build(p, [list(lv) if isinstance(lv, list) else lv for lv in bids], list(asks), i, i + 1)
        except Exception as exc:
            mp = type(exc)
        assert repr(mc) == repr(mp)  # keys in the same order, the same values (NaN-safe)
        assert (c.seq, c.resync_at) == (p.seq, p.resync_at)


@compiled_only
@settings(max_examples=100, deadline=None)
@given(trades=st.lists(st.tuples(st.one_of(px, st.integers(1, 100)), qty), min_size=1, max_size=40),
       w=st.integers(1, 5))  # fmt: skip
def test_compiled_topic_builds_the_same_trade_messages(trades, w):
    from latentspeed_core.marketstream.pipeline import _PyTopic

    c = F._compiled.Topic("T", "EX", "SYM", [F._compiled.trade_value(), F._compiled.volatility(w, "price", "volatility")],
                          w, 1)  # fmt: skip
    p = _PyTopic("T", "EX", "SYM", [F._trade_value_py(), F._volatility_py(w, "price", "volatility")], w, 1)
    for i, (price, amount) in enumerate(trades):
        args = (i, i + 1, price, amount, "buy" if i % 2 else "sell", str(i))
        assert repr(c.trade(*args)) == repr(p.trade(*args))
    assert c.seq == p.seq == len(trades)


@compiled_only
def test_trade_value_errors_match_the_python_closure():
    for bad in ({}, {"price": 1.0}, {"price": "x", "amount": 2.0}):
        got = []
        for update in (F._compiled.trade_value(), F._trade_value_py()):
            msg = dict(bad)
            try:
                update(msg)
                got.append(repr(msg))
            except Exception as exc:
                got.append((type(exc), repr(msg)))
        assert got[0] == got[1], bad


def _bits(x: float) -> str:
    return float.hex(x) if x == x else "nan"


@compiled_only
@settings(max_examples=3000, deadline=None)
@given(
    xs=st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.floats(-1e-300, 1e-300),  # subnormals and their neighbours
            st.sampled_from([1e308, -1e308, 1e16, -1e16, 1.0, -1.0, 2.0**-1074, 0.1, -0.0, 0.0]),
            st.integers(-(2**53), 2**53).map(float),
        ),
        max_size=40,
    )
)
def test_the_native_exact_sum_is_math_fsum_bit_for_bit(xs):
    """The updaters re-anchor their running sums with a native exactly rounded sum (no Python float
    per value); it must be math.fsum's answer for every input, and raise what math.fsum raises."""
    try:
        want = math.fsum(xs)
    except OverflowError:
        with pytest.raises(OverflowError):
            F._compiled.fsum(xs)
        return
    assert _bits(F._compiled.fsum(xs)) == _bits(want)
    ys = [*xs, -sum(xs[:3], 0.0), *reversed(xs)]  # cancellations (the middle one may overflow to inf)
    try:
        want = math.fsum(ys)
    except (OverflowError, ValueError) as exc:
        with pytest.raises(type(exc)):
            F._compiled.fsum(ys)
        return
    assert _bits(F._compiled.fsum(ys)) == _bits(want)


@compiled_only
def test_the_native_exact_sum_hands_the_special_values_to_math_fsum():
    for xs in (
        [math.inf, 1.0],
        [math.inf, -math.inf],
        [math.nan, 1.0],
        [1e308, 1e308],
        [-0.0],
        [],
        [5e-324, -5e-324],
    ):
        try:
            want = _bits(math.fsum(xs))
        except (OverflowError, ValueError) as exc:
            with pytest.raises(type(exc)):
                F._compiled.fsum(xs)
            continue
        assert _bits(F._compiled.fsum(xs)) == want

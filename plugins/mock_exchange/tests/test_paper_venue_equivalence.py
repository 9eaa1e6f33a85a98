"""The paper venue's shortcuts change nothing: against the venue as it was, on random sessions.

Three shortcuts of the backtest's hot path are checked here, report for report, against a reference
venue written the plain way:
- a pending float book is converted to fixed point, when an order arrives, only as deep as the
  order reads it (``PaperVenue._current``), and further when a later order reaches deeper;
- a trade is shown to the matcher only when it reaches our best order on the side it hit;
- the market-data entry points (``_paper.PaperCore``) and the per-book crossing test and queue
  update (``matching.book_moved_compiled``) run compiled (``_paper.c``): the same reports and the
  same queue state as the Python.
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from latentspeed_mock_exchange import matching
from latentspeed_mock_exchange import protocol as P
from latentspeed_mock_exchange.config import PaperVenueConfig
from latentspeed_mock_exchange.paper import PaperVenue, _PaperCorePy

from latentspeed_core.testing import python_calls
from latentspeed_core.types import Order, OrdType, Side, TimeInForce

SYM = "BTC-USDT"
S = P.SCALE
MS = 1_000_000


class PlainVenue(PaperVenue):
    """The reference: the whole pending book converted on an order's arrival; every trade matched."""

    def _current(self, sym, price):
        pending = self._pending_book.pop(sym.name, None)
        if pending is not None:
            bids = [[round(p * S), round(q * S)] for p, q in pending["bids"]]
            asks = [[round(p * S), round(q * S)] for p, q in pending["asks"]]
            self.matcher.set_book(sym, bids, asks, match=False)

    def on_trade_message(self, msg):
        t = msg["receipt_timestamp_ns"]
        if t > self.now:
            self.now = t
        if self._heap and self._heap[0][0] <= self.now:
            self._run_due()
        sym = self._symbols.get(msg["symbol"])
        if sym is not None and sym.resting and sym.name not in self._stale:
            if self._latencies is not None:
                self._response = self._latency()[1]
            aggressor = P.SIDE_BUY if msg["side"] == "buy" else P.SIDE_SELL
            self.matcher.on_trade(sym, round(msg["price"] * S), round(msg["amount"] * S), aggressor)


# (without the extension PaperVenue is built on _PaperCorePy already)
class PythonVenue(*(() if _PaperCorePy in PaperVenue.__mro__ else (_PaperCorePy,)), PaperVenue):
    """The paper venue with its compiled parts switched off: its market-data entry points in Python
    (``_PaperCorePy``, not ``_paper.PaperCore``), and Matcher.book_moved in Python."""

    _book_moved_compiled = None


class Reports:
    def __init__(self) -> None:
        self.got = []

    def on_execution_report(self, r) -> None:
        self.got.append(r)

    def on_venue_connected(self) -> None:
        pass

    def on_venue_disconnected(self, reason: str) -> None:
        pass


# Prices on a 0.25 grid near the books (orders, trades and levels meet at the same prices often),
# books up to 10 levels a side with gaps: orders sweep several levels, deep and shallow.
price = st.integers(388, 412).map(lambda i: i / 4)
qty = st.integers(1, 12).map(lambda i: i / 2)


@st.composite
def book(draw):
    mid = draw(st.integers(396, 404)) / 4
    nb, na = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    bid_steps = draw(st.lists(st.integers(1, 2), min_size=nb, max_size=nb))
    ask_steps = draw(st.lists(st.integers(1, 2), min_size=na, max_size=na))
    bids, asks, p = [], [], mid
    for s in bid_steps:
        p -= s / 4
        bids.append([p, draw(qty)])
    p = mid
    for s in ask_steps:
        p += s / 4
        asks.append([p, draw(qty)])
    return ("book", bids, asks)


order = st.tuples(
    st.just("order"), st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 40).map(lambda i: i / 2), price,
    st.sampled_from([OrdType.LIMIT, OrdType.LIMIT, OrdType.LIMIT, OrdType.MARKET]),
    st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC]),
)  # fmt: skip
trade = st.tuples(st.just("trade"), price, qty, st.sampled_from(["buy", "sell"]))
cancel = st.tuples(st.just("cancel"), st.integers(0, 30))
events = st.lists(st.tuples(st.integers(0, 3), st.one_of(book(), order, order, trade, trade, cancel)), min_size=1,
                  max_size=60)  # fmt: skip


def run(cls, session, queue_model: str, state: list | None = None) -> list[tuple]:
    """The reports of a session; ``state`` (if given) gets every resting order's queue state after
    each book."""
    venue = cls(PaperVenueConfig(queue_model=queue_model))
    out = Reports()
    venue.attach(out)
    t = 0
    cl = 0
    for dt, ev in session:
        t += dt * MS // 2  # half a millisecond steps: orders arrive 1 ms after they are sent
        venue.advance(t)
        kind = ev[0]
        if kind == "book":
            venue.on_book_message({"symbol": SYM, "receipt_timestamp_ns": t, "bids": [list(lv) for lv in ev[1]],
                                   "asks": [list(lv) for lv in ev[2]]})  # fmt: skip
            if state is not None:
                state.append([(o.cl_ord_id, o.ahead, o.level_qty, o.traded, o.hint)
                              for o in venue.matcher.symbols[SYM].resting.values()])  # fmt: skip
        elif kind == "trade":
            venue.on_trade_message({"symbol": SYM, "receipt_timestamp_ns": t, "price": ev[1], "amount": ev[2],
                                    "side": ev[3]})  # fmt: skip
        elif kind == "order":
            cl += 1
            _, side, q, p, ord_type, tif = ev
            venue.send_new_order(
                Order(cl, SYM, side, q, 0.0 if ord_type == OrdType.MARKET else p, ord_type, tif)
            )
        else:
            cl += 1
            venue.send_cancel(cl, ev[1], SYM)
    venue.drain()
    return [
        (r.cl_ord_id, r.order_id, r.exec_id, r.exec_type, r.last_px, r.last_qty, r.leaves_qty, r.cum_qty,
         r.reject_reason, r.timestamp_ns, r.receipt_ns, r.liquidity)
        for r in out.got
    ]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(session=events, queue_model=st.sampled_from(["risk_averse", "probabilistic"]))
def test_partial_conversion_and_trade_shortcut_give_the_same_reports(session, queue_model):
    assert run(PaperVenue, session, queue_model) == run(PlainVenue, session, queue_model)


def test_the_sessions_exercise_fills_and_partial_books():
    """Not vacuous: a session with orders between books, deep and shallow, that fill."""
    session = [
        (0, ("book", [[100.0, 1.0], [99.5, 2.0], [99.0, 3.0]], [[100.5, 1.0], [101.0, 2.0], [101.5, 3.0]])),
        (0, ("order", Side.BUY, 2.0, 101.0, OrdType.LIMIT, TimeInForce.GTC)),  # sweeps two ask levels
        (0, ("order", Side.SELL, 1.0, 99.25, OrdType.LIMIT, TimeInForce.GTC)),  # bids down to 99.25
        (3, ("order", Side.BUY, 4.0, 101.5, OrdType.LIMIT, TimeInForce.IOC)),  # deeper, same book
        (1, ("order", Side.SELL, 9.0, 0.0, OrdType.MARKET, TimeInForce.IOC)),
        (3, ("trade", 99.0, 5.0, "sell")),
    ]
    got = run(PaperVenue, session, "risk_averse")
    assert got == run(PlainVenue, session, "risk_averse")
    fills = [r for r in got if r[3] in (1, 2)]
    assert len(fills) >= 4


def test_trades_at_exactly_our_price_reach_the_matcher():
    """A trade at our best order's own price moves its queue and fills it (the boundary of the shortcut)."""
    for side, trade_side, px in ((Side.BUY, "sell", 99.5), (Side.SELL, "buy", 100.5)):
        session = [
            (0, ("book", [[100.0, 1.0]], [[101.0, 1.0]])),
            (0, ("order", side, 1.0, px, OrdType.LIMIT, TimeInForce.GTC)),
            (3, ("trade", px, 5.0, trade_side)),
        ]
        got = run(PaperVenue, session, "risk_averse")
        assert got == run(PlainVenue, session, "risk_averse")
        assert [r[3] for r in got] == [0, 2]  # NEW, then FILL at the trade


compiled = pytest.mark.skipif(
    matching.book_moved_compiled is None and bool(os.environ.get("LATENTSPEED_PURE_PYTHON")),
    reason="LATENTSPEED_PURE_PYTHON: the compiled step is switched off on purpose",
)


@compiled
def test_the_compiled_step_is_built():
    """Not vacuous: an install with a C compiler has it (a failed build would hide behind the fallback)."""
    assert matching.book_moved_compiled is not None
    assert PaperVenue._book_moved_compiled is matching.book_moved_compiled
    assert PaperVenue.__mro__[1].__module__ == "latentspeed_mock_exchange._paper"


@compiled
@settings(max_examples=400, deadline=None)
@given(session=events, queue_model=st.sampled_from(["risk_averse", "probabilistic"]))
def test_the_compiled_book_step_gives_the_same_reports_and_queues(session, queue_model):
    state_c, state_py = [], []
    assert run(PaperVenue, session, queue_model, state_c) == run(PythonVenue, session, queue_model, state_py)
    assert state_c == state_py


def _resting_symbol(prices_qtys, queue_model="risk_averse"):
    """A venue with a book and resting buys at the given (price, qty) in fixed point's float terms."""
    venue = PaperVenue(PaperVenueConfig(queue_model=queue_model))
    venue.attach(Reports())
    venue.on_book_message({"symbol": SYM, "receipt_timestamp_ns": 1, "bids": [[100.0, 5.0], [99.0, 5.0]],
                           "asks": [[101.0, 5.0]]})  # fmt: skip
    for cl, (px, q) in enumerate(prices_qtys, 1):
        venue.send_new_order(Order(cl, SYM, Side.BUY, q, px, OrdType.LIMIT, TimeInForce.GTC))
    venue.advance(10 * MS)
    sym = venue.matcher.symbols[SYM]
    assert len(sym.resting) == len(prices_qtys)
    return venue, sym


def _queues(sym):
    return [(o.ahead, o.level_qty, o.traded, o.hint) for o in sym.resting.values()]


@compiled
@pytest.mark.parametrize(
    "bids",
    [
        [[100, 4.0], [99.0, 4.0]],  # an int price: Python's arithmetic, not ours
        [[100.0, 4.0, 1.0], [99.0, 4.0]],  # not a pair: Python raises its own error
        [[100.0, 4.0], [math.nan, 4.0]],
        [[100.0, 4.0], [1e300, 4.0]],  # beyond what a double holds exactly once scaled
        [(100.0, 4.0), [99.0, 4]],  # an int size
    ],
)
def test_unusual_books_are_left_to_python_with_nothing_changed(bids):
    venue, sym = _resting_symbol([(99.0, 1.0), (100.0, 1.0)])
    before = _queues(sym)
    assert matching.book_moved_compiled(sym, bids, [[101.0, 5.0]], venue._queue, venue._skip_front) is None
    assert _queues(sym) == before


@compiled
def test_many_resting_orders_are_left_to_python():
    venue, sym = _resting_symbol([(90.0 + i / 4, 1.0) for i in range(40)])
    books = [[100.0, 5.0], [99.0, 4.0], [90.0, 1.0]]
    assert matching.book_moved_compiled(sym, books, [[101.0, 5.0]], venue._queue, venue._skip_front) is None
    # and the venue still moves their queues (Python): the order at 99 sees its level shrink to 4
    venue.on_book_message(
        {"symbol": SYM, "receipt_timestamp_ns": 20 * MS, "bids": books, "asks": [[101.0, 5.0]]}
    )
    at_99 = [o for o in sym.resting.values() if o.price == 99 * S]
    assert at_99 and at_99[0].ahead == 4 * S


@compiled
def test_a_crossing_book_changes_nothing_and_says_so():
    venue, sym = _resting_symbol([(100.0, 1.0)])
    before = _queues(sym)
    assert (
        matching.book_moved_compiled(sym, [[99.0, 1.0]], [[100.0, 2.0]], venue._queue, venue._skip_front)
        is True
    )
    assert _queues(sym) == before
    assert venue.matcher.book_moved(sym, [[99.0, 1.0]], [[100.0, 2.0]], S) is True


half_units = st.integers(-(10**12), 10**12).map(lambda i: i / 2e8)  # exact halves of a unit: ties
level_float = st.one_of(
    st.floats(0, 1e6, allow_nan=False), half_units, st.sampled_from([0.1 + 0.2, 99.99999999])
)


@compiled
@settings(max_examples=300, deadline=None)
@given(levels=st.lists(st.tuples(level_float, level_float).map(list), max_size=12))
def test_the_compiled_fixed_point_conversion_is_round(levels):
    """A book that fills an order goes to the core in fixed point: compiled, exactly Python's round()
    (half to even) of the scaled floats."""
    assert matching.fixed_compiled(levels) == [[round(p * S), round(q * S)] for p, q in levels]
    assert matching.fixed_compiled([[1, 2.0]]) is None  # not floats: Python does it


@compiled
def test_the_compiled_core_hands_unusual_messages_to_python():
    """A message the C core does not take (not a dict, a new symbol, an int price, latencies drawn
    from a file) is handled by the Python rule: the same outcome as the Python venue."""

    class Msg(dict):
        pass

    for cls in (PaperVenue, PythonVenue):
        venue, sym = _resting_symbol([(100.0, 1.0)]) if cls is PaperVenue else (None, None)
        if venue is None:
            venue = cls(PaperVenueConfig())
            venue.attach(Reports())
            venue.on_book_message({"symbol": SYM, "receipt_timestamp_ns": 1, "bids": [[100.0, 5.0], [99.0, 5.0]],
                                   "asks": [[101.0, 5.0]]})  # fmt: skip
            venue.send_new_order(Order(1, SYM, Side.BUY, 1.0, 100.0, OrdType.LIMIT, TimeInForce.GTC))
            venue.advance(10 * MS)
            sym = venue.matcher.symbols[SYM]
        venue.on_book_message(
            Msg(symbol="ETH-USDT", receipt_timestamp_ns=11 * MS, bids=[[1.0, 1.0]], asks=[[2.0, 1.0]])
        )
        assert "ETH-USDT" in venue.matcher.symbols and venue.now == 11 * MS
        venue.on_trade_message({"symbol": SYM, "receipt_timestamp_ns": 12 * MS, "price": 100, "amount": 3.0,
                                "side": "sell"})  # fmt: skip
        assert [o.ahead for o in sym.resting.values()] == [
            2 * S
        ] and venue.now == 12 * MS  # 5 ahead, 3 traded
        venue.on_trade_message({"symbol": SYM, "receipt_timestamp_ns": 13 * MS, "price": 100.0, "amount": 9.0,
                                "side": "sell"})  # fmt: skip
        assert not sym.resting  # filled by the trade
        with pytest.raises(KeyError):
            venue.on_book_message({"symbol": SYM, "bids": [], "asks": []})  # no receipt time: Python's error


@pytest.mark.parametrize("cls", [PaperVenue, PythonVenue])
def test_due_actions_of_any_shape_run_in_time_order(cls):
    """The compiled ``_run_due`` takes reports and (fn, tuple) actions; an entry of another shape (here
    a list of arguments) and a limit that is not an int go to the Python rule, which finishes the run:
    every action in time order, each at its own time, and the clock never goes back."""
    venue = cls(PaperVenueConfig())
    out = Reports()
    venue.attach(out)
    seen = []
    venue.on_book_message(
        {"symbol": SYM, "receipt_timestamp_ns": 1, "bids": [[100.0, 5.0]], "asks": [[101.0, 5.0]]}
    )
    venue.send_new_order(
        Order(1, SYM, Side.BUY, 1.0, 99.0, OrdType.LIMIT, TimeInForce.GTC)
    )  # arrives at 1 ms + 1
    venue._schedule(MS, lambda *a: seen.append((venue.now, a)), "tuple")
    venue._heap.append(
        (3 * MS, 10**9, lambda *a: seen.append((venue.now, a)), ["list"])
    )  # (the largest: a heap)
    venue._schedule(4 * MS, lambda *a: seen.append((venue.now, a)), "late")
    venue._run_due(3 * MS)
    assert seen == [(MS, ("tuple",)), (3 * MS, ("list",))]
    assert [(r.exec_type, r.receipt_ns) for r in out.got] == [(0, 2 * MS + 1)]  # the ack, stamped on arrival
    assert venue.now == 3 * MS and venue.reports == 1
    venue._run_due(4.5 * MS)  # a float limit: Python's comparison
    assert seen[-1] == (4 * MS, ("late",)) and not venue._heap and venue.now == 4 * MS
    venue.advance(10 * MS)
    venue._run_due()  # nothing due: nothing happens
    assert venue.now == 10 * MS and venue.reports == 1


def _state(venue) -> tuple:
    """Everything an arrival changes: the resting orders (every field), the index, the books, the
    counters and the used ids."""
    m = venue.matcher
    sym = m.symbols.get(SYM)
    orders = [
        tuple(getattr(o, f) for f in matching.SimOrder.__slots__ if f not in ("owner", "sym"))
        for o in (sym.resting.values() if sym else ())
    ]  # fmt: skip
    book = (sym.bids, sym.asks, sym.buy_keys, sym.sell_keys, sym.update_no) if sym else None
    ids = (venue._ids.lo, venue._ids.hi, sorted(venue._ids.rest))
    return (orders, book, sorted(venue.orders), dict(m.stats), m._next_order_id, m._next_exec_id, ids,
            {k: v[1::2] for k, v in venue._partial.items()}, sorted(venue._pending_book))  # fmt: skip


def _arrivals(cls, orders, setup=None, log_orders=False):
    venue = cls(PaperVenueConfig())
    out = Reports()
    venue.attach(out)
    venue.matcher.log_orders = log_orders
    venue.on_book_message({"symbol": SYM, "receipt_timestamp_ns": 1, "bids": [[100.0, 5.0], [99.5, 2.0], [99.0, 3.0]],
                           "asks": [[101.0, 5.0], [101.5, 1.0], [102.0, 4.0]]})  # fmt: skip
    if setup is not None:
        setup(venue)
    cancels = [o for o in orders if isinstance(o, tuple)]
    for o in orders:
        if not isinstance(o, tuple):
            venue.send_new_order(o)
    if cancels:  # after the orders have arrived (their acks still on the way)
        venue.advance(MS + 5)
        for cl, orig, symbol in cancels:
            venue.send_cancel(cl, orig, symbol)
    # the venue's and the matcher's Python (not a gc callback's)
    with python_calls("latentspeed_mock_exchange") as calls:
        venue.advance(2 * MS + 10 if cancels else MS + 5)  # every order (and cancel) arrives
    assert all(fn is None for _t, _s, fn, _r in venue._heap)
    reports = [(r.receipt_ns, r) for r in out.got] + [(t, r) for t, _s, _fn, r in sorted(venue._heap)]
    reports = [(t, r.cl_ord_id, r.order_id, r.exec_id, r.exec_type, r.last_px, r.last_qty, r.leaves_qty, r.cum_qty,
                r.reject_reason, r.timestamp_ns, r.liquidity) for t, r in reports]  # fmt: skip
    return _state(venue), reports, calls


def _lim(cl, side, qty, px, ord_type=OrdType.LIMIT, tif=TimeInForce.GTC, symbol=SYM):
    return Order(cl, symbol, side, qty, px, ord_type, tif)


@compiled
def test_the_usual_order_arrives_compiled_and_rests_as_in_python():
    """Resting GTC limit orders (a price with a level, one without, both sides, a deeper one reading
    more of the pending book): no Python runs for them, and everything is as the Python leaves it."""
    orders = [_lim(1, Side.BUY, 1.0, 99.5), _lim(2, Side.SELL, 2.0, 101.25), _lim(3, Side.BUY, 0.5, 98.0),
              _lim(4, Side.SELL, 1.0, 101.0)]  # fmt: skip
    c_state, c_reports, c_calls = _arrivals(PaperVenue, orders)
    py_state, py_reports, py_calls = _arrivals(PythonVenue, orders)
    assert (c_state, c_reports) == (py_state, py_reports)
    assert len(c_state[0]) == 4 and [r[4] for r in c_reports] == [0, 0, 0, 0]  # four acks, four resting
    assert c_calls == [] and "new_order" in py_calls


@compiled
@pytest.mark.parametrize(
    ("orders", "setup", "log_orders"),
    [
        ([_lim(1, Side.BUY, 1.0, 101.0)], None, False),  # marketable: the Python sweeps
        ([_lim(1, Side.SELL, 9.0, 99.0)], None, False),  # marketable through levels
        ([_lim(1, Side.BUY, 1.0, 99.0, tif=TimeInForce.IOC)], None, False),
        ([_lim(1, Side.BUY, 1.0, 0.0, ord_type=OrdType.MARKET)], None, False),
        ([_lim(1, Side.BUY, 1.0, 99.123456789)], None, False),  # not on the tick: rejected
        ([_lim(1, Side.BUY, 0.0, 99.0)], None, False),  # no quantity: rejected
        ([_lim(1, Side.BUY, 1.0, 99.0), _lim(1, Side.SELL, 1.0, 102.0)], None, False),  # a duplicate id
        ([_lim(3, Side.BUY, 1.0, 99.0), _lim(1, Side.BUY, 1.0, 98.0)], None, False),  # ids out of order
        ([_lim(1, Side.BUY, 1.0, 99.0, symbol="ETH-USDT")], None, False),  # unknown symbol
        ([_lim(1, Side.BUY, 1.0, 99)], None, False),  # an int price
        ([_lim(1, Side.BUY, 1.0, 99.0)], None, True),  # orders logged
        (
            [_lim(1, Side.BUY, 1.0, 99.0), _lim(2, Side.BUY, 1.0, 98.5)],
            lambda v: setattr(v.matcher, "max_open_orders", 1),
            False,
        ),
        (
            [_lim(1, Side.BUY, 1.0, 99.0), _lim(2, Side.SELL, 1.0, 101.5)],
            lambda v: v.on_book_message(
                {"symbol": SYM, "receipt_timestamp_ns": 2, "bids": [[100, 5.0]], "asks": [[101.0, 5.0]]}
            ),
            False,
        ),
    ],  # fmt: skip
)
def test_unusual_arrivals_are_the_pythons(orders, setup, log_orders):
    c = _arrivals(PaperVenue, orders, setup, log_orders)
    py = _arrivals(PythonVenue, orders, setup, log_orders)
    assert c[:2] == py[:2]


@compiled
def test_the_usual_cancel_is_compiled_and_leaves_what_python_leaves():
    """Cancels of resting orders (buys and sells, at prices shared with another order) and of one that
    is not there: no Python runs for them; the orders, index, counters, ids and reports are the Python's."""
    orders = [_lim(1, Side.BUY, 1.0, 99.5), _lim(2, Side.BUY, 1.0, 99.5), _lim(3, Side.SELL, 2.0, 101.5),
              _lim(4, Side.SELL, 1.0, 102.0), (5, 2, SYM), (6, 3, SYM), (7, 9, SYM)]  # fmt: skip
    c_state, c_reports, c_calls = _arrivals(PaperVenue, orders)
    py_state, py_reports, py_calls = _arrivals(PythonVenue, orders)
    assert (c_state, c_reports) == (py_state, py_reports)
    assert [o[0] for o in c_state[0]] == [1, 4]
    assert [(r[1], r[4], r[9]) for r in c_reports][-3:] == [
        (2, 3, 0),
        (3, 3, 0),
        (9, 4, 4),
    ]  # CANCELED, REJECTED
    assert c_calls == [] and "cancel" in py_calls


@compiled
@pytest.mark.parametrize(
    ("orders", "log_orders"),
    [
        ([_lim(1, Side.BUY, 1.0, 99.5), (2, 7, SYM)], False),  # no such order: the venue's reject
        ([_lim(1, Side.BUY, 1.0, 99.5), (2, 1, "ETH-USDT")], False),  # another symbol
        ([_lim(1, Side.BUY, 1.0, 99.5), (2, 1, SYM), (3, 1, SYM)], False),  # cancelled twice
        ([_lim(1, Side.BUY, 1.0, 99.5), (1, 1, SYM)], False),  # the cancel reuses the order's id
        ([_lim(1, Side.BUY, 1.0, 99.5), (5, 1, SYM)], False),  # ids out of order
        ([_lim(1, Side.BUY, 1.0, 99.5), (2, 1, SYM)], True),  # logged
        ([_lim(1, Side.BUY, 1.0, 101.0), (2, 1, SYM)], False),  # it filled on arrival: nothing to cancel
    ],
)
def test_cancels_of_every_kind_give_the_pythons_results(orders, log_orders):
    c = _arrivals(PaperVenue, orders, log_orders=log_orders)
    py = _arrivals(PythonVenue, orders, log_orders=log_orders)
    assert c[:2] == py[:2]


def _crossings(cls, books, queue_model="risk_averse", setup=None):
    """Resting orders on both sides, then ``books`` (bids, asks), each at its own time: the state after
    each, every report, and the venue's and the matcher's Python calls made for the books."""
    venue = cls(PaperVenueConfig(queue_model=queue_model))
    out = Reports()
    venue.attach(out)
    venue.on_book_message({"symbol": SYM, "receipt_timestamp_ns": 1, "bids": [[100.0, 5.0], [99.5, 2.0], [99.0, 3.0]],
                           "asks": [[101.0, 5.0], [101.5, 1.0], [102.0, 4.0]]})  # fmt: skip
    for o in [_lim(1, Side.BUY, 1.0, 99.5), _lim(2, Side.BUY, 2.0, 99.5), _lim(3, Side.BUY, 3.0, 99.0),
              _lim(4, Side.SELL, 1.0, 101.5), _lim(5, Side.SELL, 2.0, 102.0)]:  # fmt: skip
        venue.send_new_order(o)
    venue.advance(MS + 5)
    if setup is not None:
        setup(venue)
    calls, states = [], []
    for i, (bids, asks) in enumerate(books):
        t = 2 * MS + i * 10
        venue.advance(t)
        with python_calls("latentspeed_mock_exchange") as got:
            venue.on_book_message({"symbol": SYM, "receipt_timestamp_ns": t, "bids": bids, "asks": asks})
        calls += got
        states.append(_state(venue))
    venue.drain()
    reports = [(r.receipt_ns, r.cl_ord_id, r.order_id, r.exec_id, r.exec_type, r.last_px, r.last_qty, r.leaves_qty,
                r.cum_qty, r.reject_reason, r.timestamp_ns, r.liquidity) for r in out.got]  # fmt: skip
    return states, reports, calls


#: Books that cross the resting orders: the asks down to both buys at 99.5 (the first fills, the second
#: in part), the same again (the liquidity is back: the second fills), the queue moved at 99.0, then
#: the bids up through both sells, the second in part, then a book that crosses nothing.
CROSSING = [
    ([[99.0, 1.0]], [[99.5, 1.5], [100.0, 3.0]]),
    ([[99.0, 2.0]], [[99.5, 1.5], [100.0, 3.0]]),
    ([[101.0, 1.0], [99.0, 0.5]], [[103.0, 1.0]]),
    ([[102.0, 1.5], [101.5, 1.0]], [[103.0, 1.0]]),
    ([[100.0, 1.0]], [[103.0, 1.0]]),
    ([[102.5, 9.0]], [[103.0, 1.0]]),
]


@compiled
@pytest.mark.parametrize("queue_model", ["risk_averse", "probabilistic"])
def test_books_that_fill_resting_orders_are_compiled_and_leave_what_python_leaves(queue_model):
    """Fills in price-time priority, partial and whole, on both sides, the liquidity back at the next
    book, queues moved first: no Python runs for the books; every state and report is the Python's."""
    c_states, c_reports, c_calls = _crossings(PaperVenue, CROSSING, queue_model)
    py_states, py_reports, py_calls = _crossings(PythonVenue, CROSSING, queue_model)
    assert c_states == py_states
    assert c_reports == py_reports
    fills = [(r[1], r[4], r[6], r[7]) for r in c_reports if r[4] in (P.EXEC_FILL, P.EXEC_PARTIAL_FILL)]
    assert fills == [(1, 2, 1.0, 0.0), (2, 1, 0.5, 1.5), (2, 2, 1.5, 0.0), (4, 2, 1.0, 0.0), (5, 1, 0.5, 1.5),
                     (5, 2, 1.5, 0.0)]  # fmt: skip
    assert all(r[11] == 1 for r in c_reports if r[4] in (P.EXEC_FILL, P.EXEC_PARTIAL_FILL))  # makers
    assert "_fill_resting" in py_calls
    # only the matcher's clock (and the probabilistic model's depth) are Python
    assert set(c_calls) <= {"<lambda>", "depth"} and "<lambda>" in c_calls


def _log(v):
    v.matcher.log_orders = True


@compiled
@pytest.mark.parametrize(
    "setup",
    [
        lambda v: setattr(v.matcher, "_fill_threshold", 0.5),  # fills drawn at random
        lambda v: setattr(v.matcher, "on_print", lambda *a: None),  # a print listener
        _log,  # orders logged
        lambda v: (
            v.matcher.symbols[SYM]
            .resting[next(iter(v.matcher.symbols[SYM].resting))]
            .__setattr__("leaves", 1.5)
        ),
    ],
)
def test_unusual_crossings_are_the_pythons(setup):
    c = _crossings(PaperVenue, CROSSING, setup=setup)
    py = _crossings(PythonVenue, CROSSING, setup=setup)
    assert c[:2] == py[:2]
    assert "_fills_resting" in c[2]


# -- order entry: send_new_order and send_cancel (compiled for a connected venue, constant latencies) ---
entry_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("order"), st.sampled_from([Side.BUY, Side.SELL]), st.sampled_from([100.0, 101.0, 99.0])
        ),
        st.tuples(st.just("cancel"), st.integers(1, 6)),
        st.tuples(st.just("time"), st.integers(0, 3)),
        st.tuples(st.just("connected"), st.booleans()),
    ),
    max_size=25,
)


def _entry(cls, steps, latency_file) -> list:
    venue = cls(PaperVenueConfig(entry_latency_us=700, response_latency_us=300, latency_file=latency_file))
    out = Reports()
    venue.attach(out)
    venue.on_book_message(
        {"symbol": SYM, "receipt_timestamp_ns": 1, "bids": [[100.0, 5.0]], "asks": [[101.0, 5.0]]}
    )
    t, cl, raised = 1, 0, []
    for step in steps:
        if step[0] == "time":
            t += step[1] * MS // 2
            venue.advance(t)
        elif step[0] == "connected":
            venue.connected = step[1]
        else:
            cl += 1
            try:
                if step[0] == "order":
                    venue.send_new_order(
                        Order(cl, SYM, step[1], 1.0, step[2], OrdType.LIMIT, TimeInForce.GTC)
                    )
                else:
                    venue.send_cancel(cl, step[1], SYM)
            except ConnectionError as exc:
                raised.append((cl, str(exc)))
    heap = sorted((due, seq, getattr(fn, "__name__", None), args) for due, seq, fn, args in venue._heap)
    pending = (heap, venue._seq, venue.orders_sent, venue.cancels_sent)
    venue.connected = True
    venue.drain()
    reports = [(r.cl_ord_id, r.exec_type, r.last_qty, r.timestamp_ns, r.receipt_ns) for r in out.got]
    return [raised, pending, reports]


@settings(max_examples=200, deadline=None)
@given(steps=entry_steps, with_file=st.booleans())
def test_compiled_order_entry_schedules_as_the_python(steps, with_file, tmp_path_factory):
    path = None
    if with_file:  # drawn latencies: the Python's way (the compiled entry hands over)
        path = tmp_path_factory.mktemp("lat") / "latencies.txt"
        path.write_text("500 200\n900, 100\n")
        path = str(path)
    assert _entry(PaperVenue, steps, path) == _entry(PythonVenue, steps, path)


def test_an_unattached_venue_refuses_orders_and_cancels():
    venue = PaperVenue(PaperVenueConfig())
    for send in (
        lambda: venue.send_new_order(Order(1, SYM, Side.BUY, 1.0, 100.0)),
        lambda: venue.send_cancel(2, 1, SYM),
    ):
        with pytest.raises(ConnectionError, match="not attached"):
            send()
    assert (venue.orders_sent, venue.cancels_sent, venue._heap) == (0, 0, [])


@pytest.mark.skipif(
    _PaperCorePy in PaperVenue.__mro__, reason="the compiled paper core was not built (no C compiler)"
)
def test_the_usual_order_and_cancel_are_scheduled_by_the_compiled_core():
    """Not vacuous: no Python frame of the venue for an order or a cancel of an attached venue."""
    venue = PaperVenue(PaperVenueConfig())
    venue.attach(Reports())
    with python_calls("latentspeed_mock_exchange") as calls:
        venue.send_new_order(Order(1, SYM, Side.BUY, 1.0, 100.0))
        venue.send_cancel(2, 1, SYM)
    assert calls == [] and (venue.orders_sent, venue.cancels_sent, len(venue._heap)) == (1, 1, 2)

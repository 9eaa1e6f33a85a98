"""The engine's compiled order entry (``EngineCore.submit`` and ``cancel``) does what the Python does.

``submit`` runs in C for a limit order whose risk checks are all standard ones that pass, and calls
``core._EngineCorePy.submit`` for everything else; ``cancel`` runs in C for an open order of the
order manager's own type. Here two engines, one on each, get the same random steps (orders of every
kind, refusals by each check, a halted engine, a venue that is down or raises, a batching venue,
books that make an order a taker, positions, cancels of known, unknown and pending orders) and must
end in the same state: every order's every slot, what the venue was handed, the counters, refusals,
cancel ids and tick-to-trade samples.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from latentspeed_core.engine.core import Engine, _EngineCorePy
from latentspeed_core.engine.latency import Samples
from latentspeed_core.engine.orders import OrderState
from latentspeed_core.engine.risk import (
    LimitConfig,
    MaxLoss,
    MaxNotional,
    MaxOpenOrders,
    MaxOrderQty,
    MaxOrdersPerSecond,
    MaxPosition,
    PriceBand,
    RateConfig,
    RiskCheck,
    RiskEngine,
)
from latentspeed_core.engine.strategy import Strategy
from latentspeed_core.testing import python_calls
from latentspeed_core.types import OrdType, Side, TimeInForce
from latentspeed_core.venue import Venue

compiled = _EngineCorePy not in Engine.__mro__


class PythonEngine(*(() if not compiled else (_EngineCorePy,)), Engine):
    """The engine with its order entry in Python (the state stays in the compiled base's fields)."""


class Desk(Venue):
    """Takes orders and cancels and remembers them; can be down, or refuse the next send."""

    name = "DESK"

    def __init__(self) -> None:
        super().__init__(None)
        self.connected = True
        self.got: list[tuple] = []
        self.fail: type[Exception] | None = None

    async def run(self, listener) -> None:  # pragma: no cover - never run
        raise NotImplementedError

    def _maybe_fail(self) -> None:
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc("refused by the desk")

    def send_new_order(self, order) -> None:
        self._maybe_fail()
        self.got.append(("new", order.cl_ord_id, order.symbol, order.side, order.qty, order.price,
                         order.ord_type, order.tif))  # fmt: skip

    def send_cancel(self, cl_ord_id, orig_cl_ord_id, symbol) -> None:
        self._maybe_fail()
        self.got.append(("cancel", cl_ord_id, orig_cl_ord_id, symbol))


class BatchingDesk(Desk):
    """A venue that batches writes (cork/uncork): the engine stamps sent_ns when it uncorks."""

    def cork(self) -> None:
        self.got.append(("cork",))

    def uncork(self) -> None:
        self.got.append(("uncork",))


class Odd(RiskCheck):
    """A check that is not one of the standard set (the Python decides every order)."""

    name = "odd"

    def check(self, order, view, now_ns):
        return "odd quantity" if order.qty == 3.0 else None


class Quiet(Strategy):
    """No callbacks of its own: the script submits through its context."""


CHECKS = {
    "qty": lambda: ("max_order_qty", MaxOrderQty(LimitConfig(limit=2.5))),
    "band": lambda: ("price_band_bps", PriceBand(LimitConfig(limit=100))),
    "notional": lambda: ("max_notional", MaxNotional(LimitConfig(limit=250))),
    "position": lambda: ("max_position", MaxPosition(LimitConfig(limit=4))),
    "open": lambda: ("max_open_orders", MaxOpenOrders(RateConfig(limit=5))),
    "rate": lambda: ("max_orders_per_second", MaxOrdersPerSecond(RateConfig(limit=3))),
    "loss": lambda: ("max_loss", MaxLoss(LimitConfig(limit=50))),
    "odd": lambda: ("odd", Odd()),
}


def build(cls, checks: list[str], batching: bool):
    t = [1_000]

    def clock() -> int:
        t[0] += 300_000_000  # 0.3 s a reading: the rate check's one-second window moves
        return t[0]

    venue = BatchingDesk() if batching else Desk()
    risk = RiskEngine([CHECKS[c]() for c in checks])
    engine = cls(venue, risk, clock=clock)
    engine.orders._clock = lambda: t[0] / 1e9  # the retention clock: seconds, as time.monotonic
    engine.orders.retain_max = 3  # the cancel ids' forgetting step runs too
    engine.t2t = Samples(cap=3, seed=1)  # a full buffer: the reservoir's random replacement
    strategy = Quiet()
    engine.add_strategy("s", strategy, ["A", "B"])
    return engine, venue


symbols = st.sampled_from(["A", "B"])
steps = st.one_of(
    st.tuples(
        st.just("submit"),
        symbols,
        st.sampled_from([Side.BUY, Side.SELL]),
        st.sampled_from([1.0, 2.0, 3.0, 0.5, 2]),  # an int quantity: the Python decides
        st.sampled_from([100.0, 101.0, 99.0, 0.0, -1.0, math.nan, 150.0]),
        st.sampled_from([OrdType.LIMIT, OrdType.LIMIT, OrdType.MARKET, None]),  # None: defaults
        st.sampled_from(["book", "timer", "fill"]),  # what triggered it
    ),  # fmt: skip
    st.tuples(st.just("cancel"), st.integers(0, 9)),
    st.tuples(st.just("book"), symbols, st.sampled_from([None, 100.0, 100.5, 0.0]), st.booleans()),
    st.tuples(st.just("position"), symbols, st.sampled_from([0.0, 3.0, -3.0])),
    st.tuples(st.just("halt"), st.booleans()),
    st.tuples(st.just("venue"), st.sampled_from(["down", "up", "ConnectionError", "ValueError"])),
)


def run(cls, checks: list[str], batching: bool, script: list) -> list:
    engine, venue = build(cls, checks, batching)
    out = []
    for step in script:
        kind = step[0]
        if kind == "submit":
            _, sym, side, qty, price, ord_type, trigger = step
            engine._trigger = trigger
            engine._md_receipt_ns = 7
            args = (
                ("s", sym, side, qty)
                if ord_type is None
                else ("s", sym, side, qty, price, ord_type, TimeInForce.GTC)
            )
            if batching:
                engine._cork()
                engine._corked = True
            # (a market order by keyword: the way back to the Python takes keywords)
            kw = (
                {"price": args[4], "ord_type": args[5]}
                if len(args) > 4 and args[5] == OrdType.MARKET
                else None
            )
            res = engine.submit(*args[:4], **kw) if kw else engine.submit(*args)
            if batching:
                engine._flush()
            out.append(res.cl_ord_id if res is not None else (None, engine.last_reject))
        elif kind == "cancel":
            out.append(engine.cancel(step[1]))
        elif kind == "book":
            _, sym, mid, crossing = step
            if mid is None:
                engine.books.pop(sym, None)
                engine._mids.pop(sym, None)
            else:
                best = 99.0 if crossing else 101.0
                engine.books[sym] = {
                    "symbol": sym,
                    "midpoint": mid,
                    "bids": [[best - 2.0, 1.0]],
                    "asks": [[best, 1.0]],
                }
                engine._mids[sym] = mid
        elif kind == "position":
            pos = engine.portfolio.get(step[1])
            pos.qty, pos.avg_price, pos.mark = step[2], 100.0, 80.0
        elif kind == "halt":
            engine.trading_enabled = step[1]
            engine.halt_reason = None if step[1] else "test"
        else:
            what = step[1]
            venue.connected = what != "down"
            venue.fail = {"ConnectionError": ConnectionError, "ValueError": ValueError}.get(what)
    om = engine.orders
    states = {
        cid: tuple(_same(getattr(s, f)) for f in OrderState.__slots__) for cid, s in sorted(om.orders.items())
    }
    return [
        out, states, sorted(om.open), dict(om._cancels), [c for _t, c in om._cancels_sent], om._next_id,
        [dict(d) for d in om._open_qty], [dict(d) for d in om._open_n], [_same(x) for x in venue.got],
        engine.orders_sent, engine.cancels_sent, engine.blocked, engine.risk_rejects, engine.last_reject,
        dict(engine.risk.rejects), engine.t2t.data.tolist(), len(engine.t2t), engine._unsent,
    ]  # fmt: skip


def _same(v):
    """NaN equal to NaN (an order's price may be one), types kept."""
    if isinstance(v, tuple):
        return tuple(_same(x) for x in v)
    return ("nan", type(v)) if isinstance(v, float) and math.isnan(v) else (v, type(v))


check_sets = st.lists(st.sampled_from(sorted(CHECKS)), unique=True, max_size=4)


@settings(max_examples=400, deadline=None)
@given(checks=check_sets, batching=st.booleans(), script=st.lists(steps, max_size=30))
@example(  # the usual life: books, quotes on both sides, a requote (cancel, then new orders)
    checks=["qty", "band", "notional", "position"], batching=False,
    script=[("book", "A", 100.0, False), ("submit", "A", Side.BUY, 1.0, 99.0, OrdType.LIMIT, "book"),
            ("submit", "A", Side.SELL, 1.0, 101.0, OrdType.LIMIT, "book"), ("cancel", 1), ("cancel", 2),
            ("cancel", 1), ("submit", "A", Side.BUY, 1.0, 101.0, OrdType.LIMIT, "book")],
)  # fmt: skip
@example(  # every standard check refusing once, then the venue down and raising
    checks=["qty", "band", "notional", "position"], batching=False,
    script=[("book", "A", 100.0, True), ("submit", "A", Side.BUY, 3.0, 100.0, OrdType.LIMIT, "book"),
            ("submit", "A", Side.BUY, 1.0, 150.0, OrdType.LIMIT, "book"), ("position", "A", 3.0),
            ("submit", "A", Side.BUY, 2.0, 100.0, OrdType.LIMIT, "book"), ("venue", "down"),
            ("submit", "A", Side.SELL, 1.0, 100.0, None, "book"), ("venue", "ValueError"),
            ("submit", "A", Side.SELL, 1.0, 100.0, None, "book"), ("venue", "ConnectionError"),
            ("submit", "A", Side.SELL, 1.0, 100.0, None, "timer"), ("submit", "A", Side.SELL, 1.0, 100.0, None, "book"),
            ("venue", "ConnectionError"), ("cancel", 4), ("cancel", 4)],
)  # fmt: skip
@example(  # max_position counts the open orders on the order's side, and the position's sign
    checks=["position"], batching=False,
    script=[("book", "A", 100.0, False), ("submit", "A", Side.BUY, 3.0, 99.0, OrdType.LIMIT, "book"),
            ("submit", "A", Side.BUY, 2.0, 99.0, OrdType.LIMIT, "book"),
            ("submit", "A", Side.SELL, 3.0, 101.0, OrdType.LIMIT, "book"),
            ("submit", "A", Side.SELL, 2.0, 101.0, OrdType.LIMIT, "book"), ("cancel", 1),
            ("position", "A", -3.0), ("submit", "A", Side.SELL, 2.0, 101.0, OrdType.LIMIT, "book"),
            ("submit", "A", Side.BUY, 3.0, 99.0, OrdType.LIMIT, "book")],
)  # fmt: skip
@example(  # a zero mid: no band to measure a price (even a zero one) from
    checks=["band"], batching=False,
    script=[("book", "A", 0.0, False), ("submit", "A", Side.BUY, 1.0, 0.0, None, "book")],
)  # fmt: skip
@example(  # the rate and open-order limits, on a batching venue
    checks=["rate", "open"], batching=True,
    script=[("submit", "B", Side.BUY, 1.0, 99.0, OrdType.LIMIT, "book")] * 7,
)  # fmt: skip
def test_compiled_order_entry_ends_in_the_same_state_as_the_python(checks, batching, script):
    assert run(Engine, checks, batching, script) == run(PythonEngine, checks, batching, script)


@pytest.mark.skipif(not compiled, reason="the compiled engine core was not built (no C compiler)")
def test_the_usual_order_and_its_cancel_run_no_python_of_the_engine():
    """Not vacuous: a limit order passing the standard checks, and its cancel, are the C's."""
    engine, venue = build(Engine, ["qty", "band", "notional", "position", "open", "rate"], False)
    engine.books["A"] = {"symbol": "A", "midpoint": 100.0, "bids": [[99.0, 1.0]], "asks": [[101.0, 1.0]]}
    engine._mids["A"] = 100.0
    engine._trigger = "book"
    with python_calls("latentspeed_core") as calls:
        engine.submit("s", "A", Side.BUY, 1.0, 100.0, OrdType.LIMIT, TimeInForce.GTC)
    # the rate check's accept hook (through the risk engine) only: no submit, no check, no
    # OrderState.__init__, no OrderManager.add, no Samples.add (its buffer has room)
    assert calls == ["sent", "accepted"]
    assert venue.got[0][:6] == ("new", 1, "A", Side.BUY, 1.0, 100.0)
    st_ = engine.orders.orders[1]
    assert (st_.status_name, st_.taker, st_.sent_ns - st_.decision_ns, engine.orders_sent) == (
        "pending_new",
        False,
        300_000_000,
        1,
    )
    with python_calls("latentspeed_core") as calls:
        engine.cancel(1)
    assert calls == []  # (no new_cancel_id)
    assert venue.got[1] == ("cancel", 2, 1, "A") and st_.cancel_pending and engine.cancels_sent == 1


class OwnMid(Engine):
    """An engine whose risk view says something else: its checks must see it (the Python runs)."""

    def mid(self, symbol):
        return 1000.0


def test_an_engine_that_overrides_a_view_method_is_checked_through_it():
    engine, venue = build(OwnMid, ["band"], False)
    engine._mids["A"] = 100.0
    assert engine.submit("s", "A", Side.BUY, 1.0, 100.0) is None  # 100 is 90 % from OwnMid's mid
    assert engine.last_reject.startswith("price_band_bps: ") and not venue.got
    assert engine.submit("s", "A", Side.BUY, 1.0, 1000.0) is not None

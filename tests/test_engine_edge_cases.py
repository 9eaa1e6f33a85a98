"""Review: engine PnL/fees against a hand-computed example, order-state edge cases, risk boundaries."""

from __future__ import annotations

import pytest

from latentspeed_core.engine.core import Engine
from latentspeed_core.engine.orders import OrderManager, OrderState
from latentspeed_core.engine.risk import LimitConfig, MaxLoss, MaxNotional, MaxPosition, PriceBand, RiskEngine
from latentspeed_core.engine.strategy import Strategy
from latentspeed_core.types import (
    ExecType,
    ExecutionReport,
    Order,
    OrderStatus,
    OrdType,
    RejectReason,
    Side,
    TimeInForce,
)
from latentspeed_core.venue import Venue


class _Wire(Venue):
    """Stands in for the network only: records what the engine sends."""

    name = "WIRE"

    def __init__(self) -> None:
        super().__init__(None)
        self.connected = True
        self.sent: list[Order] = []
        self.cancels: list[int] = []

    async def run(self, listener) -> None:  # pragma: no cover - driven directly
        raise NotImplementedError

    def send_new_order(self, order) -> None:
        self.sent.append(order)

    def send_cancel(self, cl_ord_id, orig_cl_ord_id, symbol) -> None:
        self.cancels.append(orig_cl_ord_id)


def _book(bid: float, ask: float) -> dict:
    return {"symbol": "BTC-USD", "bids": [[bid, 5.0]], "asks": [[ask, 5.0]], "midpoint": (bid + ask) / 2,
            "receipt_timestamp_ns": 1}  # fmt: skip


def _fill(st: OrderState, cum: float, px: float, last: float) -> ExecutionReport:
    et = ExecType.FILL if cum >= st.qty else ExecType.PARTIAL_FILL
    return ExecutionReport(
        st.cl_ord_id, 7, 1, st.symbol, st.side, et, px, last, st.qty - cum, cum, RejectReason.NONE
    )


def test_pnl_and_fees_match_a_hand_computed_example():
    engine = Engine(_Wire(), RiskEngine([]), maker_bps=2.0, taker_bps=5.0)
    engine.add_strategy("s", Strategy(), ["BTC-USD"])
    engine.on_book(_book(99.5, 100.5))  # mid 100
    buy = engine.submit("s", "BTC-USD", Side.BUY, 2.0, 100.5)  # crosses the ask: taker
    assert buy is not None and buy.taker
    engine.on_execution_report(_fill(buy, 2.0, 100.5, 2.0))
    pos = engine.portfolio.get("BTC-USD")
    # Long 2 @ 100.5, marked at the mid already known (100): unrealized 2 x (100 - 100.5) = -1.
    assert pos.unrealized == pytest.approx(-1.0)
    assert pos.fees == pytest.approx(2 * 100.5 * 5e-4)
    sell = engine.submit("s", "BTC-USD", Side.SELL, 3.0, 101.0)  # above the bid: maker
    assert sell is not None and not sell.taker
    engine.on_execution_report(_fill(sell, 1.0, 101.0, 1.0))
    engine.on_execution_report(_fill(sell, 3.0, 101.0, 2.0))  # flips through zero
    assert pos.qty == pytest.approx(-1.0) and pos.avg_price == 101.0
    assert pos.realized == pytest.approx(2 * (101.0 - 100.5))
    fees = 2 * 100.5 * 5e-4 + 3 * 101.0 * 2e-4
    assert pos.fees == pytest.approx(fees)
    engine.on_book(_book(101.5, 102.5))  # mid 102: short 1 @ 101 loses 1
    assert engine.total_pnl() == pytest.approx(1.0 - 1.0 - fees)


def test_kill_switch_fires_on_the_fill_that_breaches_at_the_known_mid():
    engine = Engine(_Wire(), RiskEngine([("max_loss", MaxLoss(LimitConfig(limit=0.5)))]))
    engine.add_strategy("s", Strategy(), ["BTC-USD"])
    engine.on_book(_book(99.5, 100.5))
    st = engine.submit("s", "BTC-USD", Side.BUY, 1.0, 101.0)
    engine.on_execution_report(_fill(st, 1.0, 101.0, 1.0))  # 1 x (100 - 101) = -1 <= -0.5
    assert not engine.trading_enabled and "max_loss" in engine.halt_reason


def _order(om: OrderManager, qty: float = 1.0) -> OrderState:
    st = OrderState(om.next_id(), "BTC-USD", Side.BUY, qty, 100.0, OrdType.LIMIT, TimeInForce.GTC, "s", False,
                    "book", 1, 2)  # fmt: skip
    om.add(st)
    return st


def _rep(cid, et, cum=0.0, leaves=0.0, last=0.0):
    return ExecutionReport(cid, 7, 1, "BTC-USD", Side.BUY, et, 100.0, last, leaves, cum, RejectReason.NONE)


def test_a_fill_arriving_after_the_cancel_counts_but_leaves_nothing_open():
    om = OrderManager()
    st = _order(om)
    om.apply(_rep(st.cl_ord_id, ExecType.NEW, leaves=1.0), 1)
    # The CANCELED (cum 0.4) overtakes the partial fill it follows.
    om.apply(_rep(st.cl_ord_id, ExecType.CANCELED, cum=0.4), 2)
    out = om.apply(_rep(st.cl_ord_id, ExecType.PARTIAL_FILL, cum=0.4, leaves=0.6, last=0.4), 3)
    assert out.fill_qty == pytest.approx(0.4)
    assert st.status == OrderStatus.CANCELED and st.filled_qty == pytest.approx(0.4)
    assert st.leaves_qty == 0.0 and om.open_qty("BTC-USD", Side.BUY) == 0.0 and not om.open


def test_cancel_of_a_final_order_sends_nothing():
    venue = _Wire()
    engine = Engine(venue, RiskEngine([]))
    engine.add_strategy("s", Strategy(), ["BTC-USD"])
    st = engine.submit("s", "BTC-USD", Side.BUY, 1.0, 100.0)
    engine.on_execution_report(_fill(st, 1.0, 100.0, 1.0))
    assert st.status == OrderStatus.FILLED
    assert engine.cancel(st.cl_ord_id) is False and venue.cancels == []


def test_reports_that_change_nothing_are_counted_in_the_stats():
    engine = Engine(_Wire(), RiskEngine([]))
    engine.add_strategy("s", Strategy(), ["BTC-USD"])
    st = engine.submit("s", "BTC-USD", Side.BUY, 1.0, 100.0)
    engine.on_execution_report(_fill(st, 1.0, 100.0, 1.0))
    engine.on_execution_report(_fill(st, 1.0, 100.0, 1.0))  # the venue repeats itself
    stray = _fill(st, 1.0, 100.0, 1.0)
    stray.cl_ord_id = 999_999  # an id this session never sent
    engine.on_execution_report(stray)
    stats = engine.stats()
    assert engine.fills == 1
    assert (
        stats["duplicate_reports"] == 1 and stats["unmatched_reports"] == 1 and stats["cancel_rejects"] == 0
    )


def _o(qty: float, price: float) -> Order:
    return Order(1, "BTC-USD", Side.BUY, qty, price, OrdType.LIMIT)


class _Mid:
    def __init__(self, mid: float) -> None:
        self._mid = mid

    def mid(self, symbol):
        return self._mid


def test_exactly_at_the_limit_is_allowed_despite_float_rounding():
    # 0.07 x 100000 is 7000.000000000001 in floats: the documented rule is "refused when > limit".
    assert MaxNotional(LimitConfig(limit=7000)).check(_o(0.07, 100_000.0), _Mid(100_000.0), 0) is None
    assert MaxNotional(LimitConfig(limit=7000)).check(_o(0.0701, 100_000.0), _Mid(100_000.0), 0) is not None
    # 2264.42 is exactly 100 bps above 2242.0; the float difference is 22.420000000000073.
    band = PriceBand(LimitConfig(limit=100))
    assert band.check(_o(1.0, 2264.42), _Mid(2242.0), 0) is None
    assert band.check(_o(1.0, 2264.43), _Mid(2242.0), 0) is not None


class _Pos(_Mid):
    def __init__(self, pos: float, open_buy: float) -> None:
        super().__init__(1.0)
        self._pos, self._open = pos, open_buy

    def position(self, symbol):
        return self._pos

    def open_qty(self, symbol, side):
        return self._open if side == Side.BUY else 0.0


def test_max_position_exactly_at_a_large_limit_is_allowed():
    # 65909.898 + 27535.767 + 6554.335 == 100000 exactly, but sums to 100000.00000000001 in floats.
    check = MaxPosition(LimitConfig(limit=100_000))
    assert check.check(_o(6554.335, 1.0), _Pos(65909.898, 27535.767), 0) is None
    assert check.check(_o(6554.336, 1.0), _Pos(65909.898, 27535.767), 0) is not None


def test_cancel_racing_a_fill_leaves_the_order_filled():
    om = OrderManager()
    st = _order(om)
    om.apply(_rep(st.cl_ord_id, ExecType.NEW, leaves=1.0), 1)
    om.apply(_rep(st.cl_ord_id, ExecType.PARTIAL_FILL, cum=0.5, leaves=0.5, last=0.5), 2)
    ccid = om.new_cancel_id(st.cl_ord_id)
    st.cancel_pending = True
    om.apply(_rep(st.cl_ord_id, ExecType.FILL, cum=1.0, leaves=0.0, last=0.5), 3)  # filled first
    assert st.status == OrderStatus.FILLED and not st.cancel_pending
    # The venue refuses the cancel (under the order's id, as the mock does), or answers it late.
    out = om.apply(_rep(st.cl_ord_id, ExecType.REJECTED), 4)
    assert not out.status_changed and out.fill_qty == 0.0
    out = om.apply(_rep(ccid, ExecType.CANCELED, cum=1.0), 5)
    assert not out.status_changed and st.status == OrderStatus.FILLED
    assert st.filled_qty == 1.0 and st.leaves_qty == 0.0 and st.final_ns == 3


def test_a_fill_on_a_symbol_no_strategy_lists_is_marked_at_its_known_mid():
    engine = Engine(_Wire(), RiskEngine([("max_loss", MaxLoss(LimitConfig(limit=0.5)))]))
    engine.add_strategy("s", Strategy(), ["ETH-USD"])  # trades BTC-USD as a hedge, say
    engine.on_book(_book(99.5, 100.5))
    st = engine.submit("s", "BTC-USD", Side.BUY, 1.0, 101.0)
    engine.on_execution_report(_fill(st, 1.0, 101.0, 1.0))
    assert engine.portfolio.get("BTC-USD").unrealized == pytest.approx(-1.0)
    assert not engine.trading_enabled and "max_loss" in engine.halt_reason


class _Flaky(_Wire):
    """A venue that is down for the first ``fail`` orders it is handed (the network, not engine code)."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail

    def send_new_order(self, order) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("link down")
        super().send_new_order(order)


def test_an_order_the_venue_did_not_take_uses_no_rate_window_slot():
    from latentspeed_core.engine.risk import MaxOrdersPerSecond, RateConfig

    wire = _Flaky(fail=3)
    now = [1_000_000_000]
    engine = Engine(wire, RiskEngine([("max_orders_per_second", MaxOrdersPerSecond(RateConfig(limit=2)))]),
                    clock=lambda: now[0])  # fmt: skip
    engine.add_strategy("s", Strategy(), ["BTC-USD"])
    engine.on_book(_book(99.5, 100.5))
    for _ in range(3):  # the venue is down: nothing sent, nothing counted against the rate
        assert engine.submit("s", "BTC-USD", Side.BUY, 1.0, 99.0) is None
    assert engine.blocked == 3 and not wire.sent
    assert engine.submit("s", "BTC-USD", Side.BUY, 1.0, 99.0) is not None
    assert engine.submit("s", "BTC-USD", Side.BUY, 1.0, 99.0) is not None
    assert engine.submit("s", "BTC-USD", Side.BUY, 1.0, 99.0) is None  # the third in the same second
    assert "max_orders_per_second" in engine.last_reject and len(wire.sent) == 2

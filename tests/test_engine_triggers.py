"""What triggered an order, and from when its latency counts (issue 19).

An order decided on a fill or a timer has no tick to count from: before, it was stamped with the
last book's receipt and entered tick-to-trade (and ``analyze``'s market data → decision) with the
whole wait since that book. The engine runs here on the real mock venue, its connection replaced
by a recording link.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from latentspeed_core.datacollect.analysis import stage_values
from latentspeed_core.engine.core import Engine
from latentspeed_core.engine.risk import RiskEngine
from latentspeed_core.engine.strategy import Strategy
from latentspeed_core.types import ExecType, ExecutionReport, OrdType, RejectReason, Side, TimeInForce

P = pytest.importorskip("latentspeed_mock_exchange.protocol")
from latentspeed_mock_exchange.venue import MockVenue  # noqa: E402


class Link:
    seq_out = 0

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class OnEverything(Strategy):
    """Sends one order on a book, on a fill and on a timer."""

    def on_book(self, msg: dict) -> None:
        self.ctx.submit("BTC-USD", Side.BUY, 0.01, msg["asks"][0][0], OrdType.LIMIT, TimeInForce.IOC)

    def on_fill(self, fill) -> None:
        self.ctx.submit("BTC-USD", Side.SELL, 0.01, 70_000.0)

    def on_timer(self, now_ns: int) -> None:
        self.ctx.submit("BTC-USD", Side.SELL, 0.01, 71_000.0)


def engine_on_mock_venue() -> tuple[Engine, MockVenue, Link]:
    venue = MockVenue()
    engine = Engine(venue, RiskEngine([]))
    venue._link = link = Link()
    venue._listener = engine
    venue._ids, venue._names = {"BTC-USD": 1}, {1: "BTC-USD"}
    venue.connected = True
    engine.add_strategy("s", OnEverything(), ["BTC-USD"])
    return engine, venue, link


def book(receipt_ns: int) -> dict:
    return {"exchange": "MOCK", "symbol": "BTC-USD", "seq": 1, "timestamp_ns": receipt_ns,
            "receipt_timestamp_ns": receipt_ns, "bids": [[60_000.0, 1.0]], "asks": [[60_001.0, 1.0]],
            "midpoint": 60_000.5}  # fmt: skip


def test_fill_and_timer_orders_count_from_their_own_trigger_not_the_last_tick():
    engine, venue, link = engine_on_mock_venue()
    t_book = time.time_ns()
    engine.on_book(book(t_book))
    (first,) = engine.orders.orders.values()
    assert (first.trigger, first.md_receipt_ns) == ("book", t_book)
    assert len(engine.t2t) == 1

    t_fill = t_book + 5_000_000  # the fill arrives 5 ms after the book
    engine.on_execution_report(ExecutionReport(first.cl_ord_id, 9, 1, "BTC-USD", Side.BUY, ExecType.FILL,
                                               60_001.0, 0.01, 0.0, 0.01, RejectReason.NONE, t_fill, t_fill))  # fmt: skip
    t_timer = t_book + 9_000_000
    engine.on_timer(t_timer)
    by_trigger = {o.trigger: o for o in engine.orders.orders.values()}
    assert set(by_trigger) == {"book", "fill", "timer"}
    assert by_trigger["fill"].md_receipt_ns == t_fill
    assert by_trigger["timer"].md_receipt_ns == t_timer
    # Neither is a tick-to-trade sample: only the book's order is.
    assert len(engine.t2t) == 1
    # And the engine is back to the last tick for the next market-data decision.
    assert engine._md_receipt_ns == t_book and engine._trigger == "timer"
    assert len(link.written) == 3


def test_analyze_counts_market_data_stages_only_for_market_data_decisions():
    base = {"decision_ns": 2_000, "sent_ns": 3_000, "ack_ns": 4_000}
    records = [
        {**base, "md_receipt_ns": 1_000, "trigger": "book"},
        {**base, "md_receipt_ns": 1_500, "trigger": "trade"},
        {**base, "md_receipt_ns": 1_000},  # older records carry no trigger: market data
        {**base, "md_receipt_ns": -5_000_000, "trigger": "fill"},  # a stale tick must not count
        {**base, "md_receipt_ns": -9_000_000, "trigger": "timer"},
    ]
    values, negative = stage_values(records)
    assert np.allclose(sorted(values["md_to_decision"]), [0.5, 1.0, 1.0])
    assert np.allclose(sorted(values["tick_to_trade"]), [1.5, 2.0, 2.0])
    assert values["decision_to_sent"].size == 5 and values["order_to_ack"].size == 5
    assert not negative

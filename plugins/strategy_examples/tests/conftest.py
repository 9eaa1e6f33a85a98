"""A recording venue (a complete, if trivial, Venue implementation) and book-message builders."""

from __future__ import annotations

import time

import pytest

from latentspeed_core.engine.core import Engine
from latentspeed_core.engine.risk import RiskEngine
from latentspeed_core.types import ExecType, ExecutionReport, RejectReason
from latentspeed_core.venue import Venue


class RecordingVenue(Venue):
    """Accepts everything and remembers it; execution reports are injected by the test."""

    name = "REC"

    def __init__(self) -> None:
        super().__init__(None)
        self.connected = True
        self.orders = []
        self.cancels = []
        self.instruments = {}

    async def run(self, listener) -> None:  # pragma: no cover - not used: tests drive the engine directly
        raise NotImplementedError

    def send_new_order(self, order) -> None:
        self.orders.append(order)

    def send_cancel(self, cl_ord_id, orig_cl_ord_id, symbol) -> None:
        self.cancels.append(orig_cl_ord_id)


def book(symbol="BTC-USD", bid=99.0, ask=101.0, bq=1.0, aq=1.0, **features) -> dict:
    msg = {
        "exchange": "TEST",
        "symbol": symbol,
        "timestamp_ns": time.time_ns(),
        "receipt_timestamp_ns": time.time_ns(),
        "bids": [[bid, bq], [bid - 1, 1.0]],
        "asks": [[ask, aq], [ask + 1, 1.0]],
        "midpoint": (bid + ask) / 2,
        "imbalance_lvl1": (bq - aq) / (bq + aq),
        "ofi_rolling": 0.0,
    }
    msg.update(features)
    return msg


def fill(order, qty=None, px=None) -> ExecutionReport:
    qty = order.qty if qty is None else qty
    return ExecutionReport(
        order.cl_ord_id, 1, 1, order.symbol, order.side, ExecType.FILL, px or order.price, qty, 0.0, qty,
        RejectReason.NONE, 0, time.time_ns(),
    )  # fmt: skip


@pytest.fixture
def make_engine():
    def make(strategy, symbols=("BTC-USD",)):
        venue = RecordingVenue()
        engine = Engine(venue, RiskEngine([]))
        engine.add_strategy("s", strategy, list(symbols))
        engine.start()
        return engine, venue

    return make


@pytest.fixture
def md():
    """Builders: ``md.book(...)`` (a marketstream book message), ``md.fill(order)`` (a FILL report)."""
    from types import SimpleNamespace

    return SimpleNamespace(book=book, fill=fill)

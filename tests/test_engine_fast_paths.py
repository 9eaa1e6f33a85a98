"""The engine's speed-ups keep behaviour: snapshot books, O(1) open quantity, one write per callback."""

from __future__ import annotations

import random

import pytest

from latentspeed_core.book import L2Book, SnapshotBook
from latentspeed_core.engine.core import Engine
from latentspeed_core.engine.orders import OPEN, OrderManager, OrderState
from latentspeed_core.engine.risk import LimitConfig, MaxPosition, RiskEngine
from latentspeed_core.engine.strategy import Strategy
from latentspeed_core.types import ExecType, ExecutionReport, OrdType, RejectReason, Side, TimeInForce
from latentspeed_core.venue import Venue


def test_snapshot_book_reads_like_an_l2book_and_stays_one_after_updates():
    bids = [[100.0, 1.0], [99.5, 2.0], [99.0, 3.0]]
    asks = [[100.5, 1.5], [101.0, 2.5]]
    snap, ref = SnapshotBook("X"), L2Book("X")
    snap.load_sorted(bids, asks)
    ref.load_snapshot(bids, asks)
    assert isinstance(snap, L2Book)
    for n in (1, 2, 10):
        assert snap.top_bids(n) == ref.top_bids(n) and snap.top_asks(n) == ref.top_asks(n)
    assert (snap.best_bid(), snap.best_ask(), len(snap), snap.bid_levels) == (
        ref.best_bid(), ref.best_ask(), len(ref), ref.bid_levels,
    )  # fmt: skip
    # Incremental updates after a snapshot start from that snapshot.
    snap.set_bid(100.25, 4.0)
    ref.set_bid(100.25, 4.0)
    snap.update_asks([(100.5, 0.0)])
    ref.update_asks([(100.5, 0.0)])
    assert snap.top_bids(10) == ref.top_bids(10) and snap.top_asks(10) == ref.top_asks(10)
    snap.load_sorted([[1.0, 1.0]], [[2.0, 1.0]])  # a new snapshot replaces everything
    assert (snap.top_bids(5), snap.top_asks(5), len(snap)) == ([[1.0, 1.0]], [[2.0, 1.0]], 2)


def _report(st: OrderState, et: ExecType, cum: float, leaves: float, px: float = 100.0) -> ExecutionReport:
    return ExecutionReport(
        st.cl_ord_id, st.cl_ord_id, 1, st.symbol, st.side, et, px, 0.0, leaves, cum, RejectReason.NONE, 0, 1,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_open_qty_and_is_open_kept_incrementally_equal_what_they_summarise(seed):
    rng = random.Random(seed)
    om = OrderManager()
    symbols = ("BTC-USD", "ETH-USD")

    def brute(symbol, side):
        return sum(o.leaves_qty for o in om.open.values() if o.symbol == symbol and o.side == side)

    for step in range(300):
        r = rng.random()
        if r < 0.35 or not om.orders:
            cid = om.next_id()
            side = rng.choice((Side.BUY, Side.SELL))
            qty = rng.choice((0.1, 0.25, 1.0))
            om.add(OrderState(cid, rng.choice(symbols), side, qty, 100.0, OrdType.LIMIT, TimeInForce.GTC,
                              "s", False, "book", 0, 0))  # fmt: skip
        elif r < 0.40:
            om.discard(rng.choice(list(om.orders)))
        elif r < 0.43:
            om.mark_unknown(step)
        else:
            st = rng.choice(list(om.orders.values()))
            kind = rng.random()
            if kind < 0.3:
                om.apply(_report(st, ExecType.NEW, st.filled_qty, st.qty - st.filled_qty), step)
            elif kind < 0.6:  # a (possibly repeated or overtaken) partial fill
                cum = min(st.qty, rng.choice((st.filled_qty, st.filled_qty + 0.05, st.qty / 2)))
                om.apply(_report(st, ExecType.PARTIAL_FILL, cum, st.qty - cum), step)
            elif kind < 0.75:
                om.apply(_report(st, ExecType.FILL, st.qty, 0.0), step)
            elif kind < 0.9:
                om.apply(_report(st, ExecType.CANCELED, st.filled_qty, 0.0), step)
            else:
                om.apply(_report(st, ExecType.REJECTED, 0.0, 0.0), step)
        for sym in symbols:
            for side in (Side.BUY, Side.SELL):
                assert om.open_qty(sym, side) == pytest.approx(brute(sym, side), abs=1e-9), (step, sym, side)
        # is_open is an attribute kept with every status change (strategies read it on every book)
        assert all(o.is_open == (o.status in OPEN) for o in om.orders.values()), step


class _CorkVenue(Venue):
    """Records every write; supports cork/uncork like the mock venue."""

    name = "CORK"

    def __init__(self) -> None:
        super().__init__(None)
        self.connected = True
        self.corked = False
        self.held: list[str] = []
        self.writes: list[list[str]] = []

    async def run(self, listener) -> None:  # pragma: no cover - driven directly
        raise NotImplementedError

    def cork(self) -> None:
        self.corked = True

    def uncork(self) -> None:
        self.corked = False
        if self.held:
            self.writes.append(self.held)
            self.held = []

    def _send(self, what: str) -> None:
        if self.corked:
            self.held.append(what)
        else:
            self.writes.append([what])

    def send_new_order(self, order) -> None:
        self._send(f"new {order.cl_ord_id}")

    def send_cancel(self, cl_ord_id, orig_cl_ord_id, symbol) -> None:
        self._send(f"cancel {orig_cl_ord_id}")


class _Requoter(Strategy):
    def on_book(self, msg):
        for o in self.ctx.open_orders():
            self.ctx.cancel(o.cl_ord_id)
        mid = msg["midpoint"]
        self.ctx.submit("BTC-USD", Side.BUY, 0.1, mid - 1)
        self.ctx.submit("BTC-USD", Side.SELL, 0.1, mid + 1)

    def on_timer(self, now_ns):
        self.ctx.submit("BTC-USD", Side.BUY, 0.1, 1.0)


def _book(mid: float, receipt_ns: int) -> dict:
    return {
        "symbol": "BTC-USD", "bids": [[mid - 0.5, 1.0]], "asks": [[mid + 0.5, 1.0]], "midpoint": mid,
        "receipt_timestamp_ns": receipt_ns,
    }  # fmt: skip


def test_a_requote_is_one_write_and_every_order_is_stamped_after_it():
    ticks = iter(range(1_000, 10_000_000, 1_000))
    venue = _CorkVenue()
    engine = Engine(venue, RiskEngine([]), clock=lambda: next(ticks))
    engine.add_strategy("s", _Requoter(), ["BTC-USD"])
    engine.start()
    engine.on_book(_book(100.0, 500))
    engine.on_book(_book(101.0, 900_000))
    assert venue.writes == [["new 1", "new 2"], ["cancel 1", "cancel 2", "new 5", "new 6"]]  # in order
    second = [engine.orders.orders[5], engine.orders.orders[6]]
    # Decided one after the other (no write in between), sent together when the one write returned.
    assert second[0].decision_ns < second[1].decision_ns < second[0].sent_ns == second[1].sent_ns
    assert list(engine.t2t.data)[-2:] == [o.sent_ns - 900_000 for o in second]
    assert engine.orders_sent == 4 and engine.cancels_sent == 2
    engine.on_timer(0)  # outside market-data callbacks orders are written (and stamped) one by one
    assert venue.writes[-1] == ["new 7"] and engine.orders.orders[7].sent_ns > 0


def test_max_position_reads_the_engines_incremental_open_quantity():
    venue = _CorkVenue()
    engine = Engine(venue, RiskEngine([("max_position", MaxPosition(LimitConfig(limit=0.25)))]))
    engine.add_strategy("s", Strategy(), ["BTC-USD"])
    engine.on_book(_book(100.0, 1))
    assert engine.submit("s", "BTC-USD", Side.BUY, 0.1, 99.0) is not None
    assert engine.submit("s", "BTC-USD", Side.BUY, 0.1, 99.0) is not None
    assert engine.submit("s", "BTC-USD", Side.BUY, 0.1, 99.0) is None  # 0.3 > 0.25 with two open
    assert engine.submit("s", "BTC-USD", Side.SELL, 0.2, 101.0) is not None  # the other side is free
    first = engine.orders.orders[1]
    engine.on_execution_report(_report(first, ExecType.CANCELED, 0.0, 0.0))
    assert engine.open_qty("BTC-USD", Side.BUY) == pytest.approx(0.1)
    assert engine.submit("s", "BTC-USD", Side.BUY, 0.1, 99.0) is not None

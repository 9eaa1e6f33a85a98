"""The ``paper`` venue, driven event by event on simulated time: each fill rule of docs/simulation.md.

Times are in milliseconds of simulated time; latencies default to 1 ms in and 1 ms back.
"""

from __future__ import annotations

import pytest
from latentspeed_mock_exchange.config import PaperVenueConfig
from latentspeed_mock_exchange.matching import ProbabilisticQueue
from latentspeed_mock_exchange.paper import PaperVenue

from latentspeed_core.config import ConfigError, validate
from latentspeed_core.types import ExecType, Order, OrdType, RejectReason, Side, TimeInForce
from latentspeed_core.venue import SimulatedVenue

MS = 1_000_000
SYM = "BTC-USDT"
MAKER, TAKER = 1, 2


class Listener:
    def __init__(self) -> None:
        self.reports = []

    def on_execution_report(self, r) -> None:
        self.reports.append(r)

    def on_venue_connected(self) -> None:
        pass

    def on_venue_disconnected(self, reason: str) -> None:
        pass

    def fills(self, cl: int | None = None) -> list[tuple[float, float, int]]:
        return [
            (r.last_px, round(r.last_qty, 8), r.liquidity)
            for r in self.reports
            if r.exec_type in (ExecType.FILL, ExecType.PARTIAL_FILL) and (cl is None or r.cl_ord_id == cl)
        ]

    def types(self, cl: int) -> list[str]:
        return [r.exec_type.name for r in self.reports if r.cl_ord_id == cl]


class Sim:
    """A paper venue attached to a listener; helpers send market data and orders at given times."""

    def __init__(self, **cfg) -> None:
        self.venue = PaperVenue(PaperVenueConfig(**cfg))
        self.lst = Listener()
        self.venue.attach(self.lst)

    def book(self, t_ms: float, bids, asks) -> None:
        self.venue.on_book_message(
            {"symbol": SYM, "receipt_timestamp_ns": round(t_ms * MS), "bids": bids, "asks": asks}
        )

    def trade(self, t_ms: float, price: float, amount: float, side: str) -> None:
        self.venue.on_trade_message(
            {"symbol": SYM, "receipt_timestamp_ns": round(t_ms * MS), "price": price, "amount": amount, "side": side}
        )

    def order(self, t_ms: float, cl: int, side: Side, qty: float, price: float = 0.0, ord_type=OrdType.LIMIT,
              tif=TimeInForce.GTC) -> None:  # fmt: skip
        self.venue.advance(round(t_ms * MS))
        self.venue.send_new_order(Order(cl, SYM, side, qty, price, ord_type, tif))

    def cancel(self, t_ms: float, cl: int, orig: int) -> None:
        self.venue.advance(round(t_ms * MS))
        self.venue.send_cancel(cl, orig, SYM)

    def at(self, t_ms: float) -> None:
        self.venue.advance(round(t_ms * MS))


BIDS = [[100.0, 5.0], [99.0, 3.0]]
ASKS = [[101.0, 2.0], [102.0, 4.0]]


def test_it_is_a_simulated_venue():
    assert isinstance(PaperVenue(), SimulatedVenue)


def test_a_marketable_order_walks_the_book_at_taker_prices_and_consumes_it_until_the_next_update():
    s = Sim()
    s.book(0, BIDS, ASKS)
    s.order(0, 1, Side.BUY, 3.0, 102.0, tif=TimeInForce.IOC)  # takes 2 @ 101 and 1 @ 102
    s.order(0, 2, Side.BUY, 4.0, 102.0, tif=TimeInForce.IOC)  # only 3 left @ 102 in this update
    s.at(5)
    assert s.lst.fills(1) == [(101.0, 2.0, TAKER), (102.0, 1.0, TAKER)]
    assert s.lst.fills(2) == [(102.0, 3.0, TAKER)]
    assert s.lst.types(2) == ["NEW", "PARTIAL_FILL", "CANCELED"]  # the IOC remainder
    s.book(10, BIDS, ASKS)  # a new update: the liquidity is back
    s.order(10, 3, Side.BUY, 2.0, ord_type=OrdType.MARKET)
    s.at(15)
    assert s.lst.fills(3) == [(101.0, 2.0, TAKER)]


def test_a_resting_order_fills_as_maker_at_its_price_when_the_book_moves_through_it():
    s = Sim()
    s.book(0, BIDS, ASKS)
    s.order(0, 1, Side.BUY, 1.0, 100.5)  # inside the spread: rests, nothing ahead
    s.at(5)
    assert s.lst.types(1) == ["NEW"]
    s.book(10, [[100.0, 5.0]], [[100.4, 0.6], [100.5, 3.0]])  # asks come down through 100.5
    s.at(15)
    assert s.lst.fills(1) == [(100.5, 1.0, MAKER)]  # its own price, from the 0.6 + 0.4 that crossed it


def test_risk_averse_queue_only_trades_advance_and_fills_are_partial_by_trade_size():
    s = Sim(queue_model="risk_averse")
    s.book(0, BIDS, ASKS)
    s.order(0, 1, Side.BUY, 2.0, 100.0)  # joins behind the 5 visible at 100
    s.at(2)
    assert s.venue.queue_ahead(1) == pytest.approx(5.0)
    s.book(3, [[100.0, 4.0], [99.0, 3.0]], ASKS)  # 1 cancelled somewhere: risk averse assumes behind us
    assert s.venue.queue_ahead(1) == pytest.approx(4.0)  # capped at the level's size
    s.trade(4, 100.0, 3.0, "sell")  # 3 of the 4 ahead trade
    assert s.venue.queue_ahead(1) == pytest.approx(1.0) and not s.lst.fills(1)
    s.trade(5, 100.0, 1.5, "sell")  # 1 ahead, then 0.5 for us
    s.trade(6, 100.0, 0.25, "buy")  # a buyer's print does not touch bids
    s.at(10)
    assert s.lst.fills(1) == [(100.0, 0.5, MAKER)]
    s.trade(11, 99.5, 5.0, "sell")  # printed through our price: we were hit first
    s.at(15)
    assert s.lst.fills(1) == [(100.0, 0.5, MAKER), (100.0, 1.5, MAKER)]
    assert s.lst.types(1)[-1] == "FILL"


def test_probabilistic_queue_advances_on_decreases_by_rigtorps_estimator():
    q = ProbabilisticQueue(power=2.0)
    # front 2, back 6 (level 8 -> 4): p = 36/(4+36) = 0.9; front = 2 - 0.1*4 + min(6 - 3.6, 0) = 1.6
    assert q.depth(2.0, 8.0, 4.0) == pytest.approx(1.6)
    # with power 1: p = 6/8; front = 2 - 0.25*4 = 1.0
    assert ProbabilisticQueue(1.0).depth(2.0, 8.0, 4.0) == pytest.approx(1.0)
    assert q.depth(2.0, 8.0, 10.0) == 2.0  # growth joins behind us
    assert q.depth(5.0, 8.0, 1.0) <= 1.0  # never more ahead than the level holds
    s = Sim(queue_model="probabilistic", queue_power=2.0)
    s.book(0, [[100.0, 2.0]], ASKS)
    s.order(0, 1, Side.BUY, 1.0, 100.0)
    s.at(2)  # ahead 2; others join behind: level 8 (front 2, back 6)
    s.book(3, [[100.0, 8.0]], ASKS)
    s.book(4, [[100.0, 4.0]], ASKS)
    assert s.venue.queue_ahead(1) == pytest.approx(1.6)
    # A trade at our price moves us once: the level's later decrease by that trade is not a cancel
    # (hftbacktest's cum_trade_qty). 10 ahead, level 14, a sell of 3 at our price, level 11.
    t = Sim(queue_model="probabilistic", queue_power=2.0)
    t.book(0, [[100.0, 10.0]], ASKS)
    t.order(0, 1, Side.BUY, 1.0, 100.0)
    t.at(2)
    t.book(3, [[100.0, 14.0]], ASKS)
    t.trade(4, 100.0, 3.0, "sell")
    assert t.venue.queue_ahead(1) == pytest.approx(7.0)
    t.book(5, [[100.0, 11.0]], ASKS)
    assert t.venue.queue_ahead(1) == pytest.approx(7.0)
    assert q.depth(7.0, 14.0, 11.0, traded=3.0) == 7.0
    r = Sim(queue_model="risk_averse")  # the same book moves leave risk averse at 2
    r.book(0, [[100.0, 2.0]], ASKS)
    r.order(0, 1, Side.BUY, 1.0, 100.0)
    r.at(2)
    r.book(3, [[100.0, 8.0]], ASKS)
    r.book(4, [[100.0, 4.0]], ASKS)
    assert r.venue.queue_ahead(1) == pytest.approx(2.0)


def test_an_order_meets_the_book_as_it_is_when_it_arrives_not_when_it_was_sent():
    s = Sim(entry_latency_us=1000, response_latency_us=500)
    s.book(0, BIDS, ASKS)
    s.order(0, 1, Side.BUY, 1.0, 101.0, tif=TimeInForce.IOC)  # sent at 0, arrives at 1 ms
    s.book(0.5, BIDS, [[101.5, 2.0], [102.0, 4.0]])  # the ask at 101 is gone before it arrives
    s.at(5)
    assert s.lst.fills(1) == []
    assert s.lst.types(1) == ["NEW", "CANCELED"]
    new = s.lst.reports[0]
    assert new.timestamp_ns == 1 * MS and new.receipt_ns == 1.5 * MS  # acted at 1 ms, reported 0.5 ms later


def test_reports_wait_for_the_response_latency_and_keep_their_order():
    s = Sim(entry_latency_us=200, response_latency_us=3000)
    s.book(0, BIDS, ASKS)
    s.order(0, 1, Side.BUY, 1.0, 101.0)
    s.at(3.1)
    assert s.lst.reports == []  # acted at 0.2 ms, due at 3.2 ms
    s.at(3.2)
    assert s.lst.types(1) == ["NEW", "FILL"]


def test_a_post_only_order_rests_as_a_maker_or_is_rejected_when_it_would_take_on_arrival():
    s = Sim()
    s.book(0, BIDS, ASKS)
    s.order(0, 1, Side.BUY, 1.0, 100.0, tif=TimeInForce.POST_ONLY)  # joins the bid: rests
    s.order(0, 2, Side.BUY, 1.0, 101.0, tif=TimeInForce.POST_ONLY)  # reaches the ask: would take
    s.order(0, 3, Side.BUY, 1.0, 0.0, OrdType.MARKET, TimeInForce.POST_ONLY)  # a market cannot be post-only
    # sent while the ask is at 102, arriving after it moved to 100.5: the book it meets decides
    s.order(0.5, 4, Side.BUY, 1.0, 100.5, tif=TimeInForce.POST_ONLY)
    s.book(1.2, BIDS, [[100.5, 1.0], [102.0, 4.0]])
    s.at(5)
    assert s.lst.types(1) == ["NEW"] and s.lst.types(2) == s.lst.types(3) == s.lst.types(4) == ["REJECTED"]
    reasons = {r.cl_ord_id: r.reject_reason for r in s.lst.reports if r.exec_type == ExecType.REJECTED}
    assert reasons == {2: RejectReason.INVALID_PRICE, 3: RejectReason.RISK_OR_THROTTLE, 4: RejectReason.INVALID_PRICE}
    s.book(6, [[99.0, 3.0]], [[99.5, 1.0]])  # the book moves through the resting order: it fills as a maker
    s.at(10)
    assert s.lst.types(1) == ["NEW", "FILL"]
    assert [r.liquidity for r in s.lst.reports if r.cl_ord_id == 1 and r.exec_type == ExecType.FILL] == [1]


def test_cancel_arrives_after_the_entry_latency_and_an_unknown_one_is_rejected():
    s = Sim()
    s.book(0, BIDS, ASKS)
    s.order(0, 1, Side.SELL, 1.0, 105.0)
    s.cancel(2, 2, 1)
    s.cancel(2, 3, 99)
    s.at(10)
    assert s.lst.types(1) == ["NEW", "CANCELED"]
    assert [r.exec_type for r in s.lst.reports if r.cl_ord_id == 99] == [ExecType.REJECTED]
    stats = s.venue.matcher.stats  # the refused cancel counted as one (the compiled path), not as an order
    assert (stats["rejects"], stats["cancel_rejects"], stats["cancels"]) == (0, 1, 1)


def test_latency_file_draws_are_seeded(tmp_path):
    f = tmp_path / "lat.txt"
    f.write_text("# entry response (us)\n100 200\n5000 100\n300\n")

    def run(seed: int) -> list[int]:
        s = Sim(latency_file=str(f), seed=seed)
        s.book(0, BIDS, ASKS)
        for i in range(1, 20):
            s.order(i, i, Side.SELL, 1.0, 110.0)
        s.at(100)
        return [r.receipt_ns for r in s.lst.reports]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_no_fills_against_a_stale_book_after_a_feed_reset():
    s = Sim()
    s.book(0, BIDS, ASKS)
    s.order(0, 1, Side.BUY, 1.0, 100.0)  # rests
    s.at(2)
    s.venue.on_book_reset([SYM])  # the feed reconnected: the book is gone until the next one
    s.order(3, 2, Side.BUY, 1.0, 101.0, tif=TimeInForce.IOC)
    s.trade(5, 99.0, 10.0, "sell")  # a print through our bid, but our queue is unknown now
    s.at(10)
    assert s.lst.fills() == []
    s.book(20, [[100.0, 5.0]], [[100.0, 1.0], [101.0, 2.0]])  # fresh, and crossing our bid
    s.at(25)
    assert s.lst.fills(1) == [(100.0, 1.0, MAKER)]


def test_a_fresh_book_after_a_reset_lets_trades_fill_again():
    """The stale mark lasts until the symbol's next book, not longer: prints after it fill again."""
    s = Sim()
    s.book(0, BIDS, ASKS)
    s.order(0, 1, Side.BUY, 1.0, 100.0)  # rests behind the 100.0 level
    s.at(2)
    s.venue.on_book_reset([SYM])
    s.book(4, [[100.0, 2.0], [99.5, 2.0]], [[101.0, 1.0]])  # fresh, not crossing: 2 ahead of us now
    s.trade(6, 100.0, 5.0, "sell")  # through the queue ahead and our order
    s.at(10)
    assert s.lst.fills(1) == [(100.0, 1.0, MAKER)]


def test_instruments_give_the_grid_and_orders_off_it_are_rejected():
    s = Sim(instruments={"btc-usdt": {"tick_size": 0.5, "lot_size": 0.1}})
    s.book(0, BIDS, ASKS)
    assert s.venue.instruments[SYM].tick_size == 0.5
    s.order(0, 1, Side.BUY, 1.0, 100.25)
    s.order(0, 2, Side.BUY, 0.05, 100.0)
    s.at(5)
    reasons = {r.cl_ord_id: r.reject_reason.name for r in s.lst.reports}
    assert reasons[1] == "INVALID_PRICE" and reasons[2] == "INVALID_QUANTITY"


@pytest.mark.parametrize(
    ("cfg", "where"),
    [
        ({"queue_model": "fifo"}, "venue.queue_model"),
        ({"entry_latency_us": -1}, "venue.entry_latency_us"),
        ({"response_latency_us": 1e30}, "venue.response_latency_us"),  # overflowed the latency stats
        ({"queue_power": 0}, "venue.queue_power"),
        ({"latency_file": "/nonexistent/lat.txt"}, "venue.latency_file"),
        ({"instruments": {"BTC-USDT": {"tick_size": 0}}}, "venue.instruments"),
        ({"instruments": {"BTC-USDT": {"tick_size": 1e-12, "lot_size": 1}}}, "venue.instruments.BTC-USDT.tick_size"),
        ({"instruments": {"BTC-USDT": {"tick_size": 0.01, "lot_size": 1e30}}}, "venue.instruments.BTC-USDT.lot_size"),
        ({"fill_prob": 50}, "venue.fill_prob"),
    ],
)
def test_bad_config_values_are_clear_errors(cfg, where):
    with pytest.raises(ConfigError) as err:
        validate(PaperVenueConfig, cfg, "engine.yml", prefix="venue")
    assert where in str(err.value)


def test_a_latency_file_with_junk_names_the_line(tmp_path):
    f = tmp_path / "lat.txt"
    f.write_text("100\nfast\n")
    with pytest.raises(ConfigError, match="lat.txt:2: not a number"):
        validate(PaperVenueConfig, {"latency_file": str(f)}, "engine.yml", prefix="venue")


@pytest.mark.parametrize("line", ["-5", "nan", "inf", "1e30", "10 20 30"])
def test_a_latency_file_value_out_of_range_names_the_line(tmp_path, line):
    f = tmp_path / "lat.txt"
    f.write_text(f"100 200\n{line}\n")
    with pytest.raises(ConfigError, match="lat.txt:2: want one or two latencies from 0 to 3600000000"):
        validate(PaperVenueConfig, {"latency_file": str(f)}, "engine.yml", prefix="venue")

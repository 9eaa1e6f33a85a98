"""MockFeed (books and trades reach a sink; record/replay) and MockVenue (reports reach a listener)."""

from __future__ import annotations

import asyncio

import pytest
from latentspeed_mock_exchange.config import MockExchangeConfig, MockFeedConfig, MockVenueConfig
from latentspeed_mock_exchange.feed import MockFeed
from latentspeed_mock_exchange.server import MockExchange
from latentspeed_mock_exchange.venue import MockVenue

from latentspeed_core.config import ConfigError, validate
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import async_wait_for
from latentspeed_core.types import ExecType, Order, OrdType, RejectReason, Side, TimeInForce


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


class Sink:
    def __init__(self) -> None:
        self.books: list[tuple[str, float, float, int, int]] = []
        self.trades = []

    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        self.books.append((symbol, book.best_bid()[0], book.best_ask()[0], timestamp_ns, receipt_ns))

    def on_trade(self, feed, trade) -> None:
        self.trades.append(trade)


class FrameRecorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, object]] = []

    def write(self, feed, kind, receipt_ns, data) -> None:
        self.records.append((kind, data))


async def _exchange(**cfg) -> MockExchange:
    cfg.setdefault("port", 0)
    cfg.setdefault("seed", 3)
    return await MockExchange(MockExchangeConfig(**cfg)).start()


def test_feed_delivers_books_and_trades_and_replays_identically():
    async def main():
        ex = await _exchange(tick_rate=2, trade_prob=1.0, symbols=["BTC-USD", "ETH-USD", "SOL-USD"])
        feed = MockFeed(MockFeedConfig(port=ex.port, symbols=["BTC-USD", "SOL-USD"]))
        feed.recorder = rec = FrameRecorder()
        sink = Sink()
        task = asyncio.create_task(feed.run(sink))
        try:
            await async_wait_for(
                lambda: len(sink.books) >= 20 and len(sink.trades) >= 5, 10, "books and trades"
            )
        finally:
            task.cancel()
            await ex.stop()
        return feed, sink, rec

    feed, sink, rec = run(main())
    assert {b[0] for b in sink.books} == {"BTC-USD", "SOL-USD"}  # ETH-USD not subscribed
    assert all(bid < ask for _s, bid, ask, _t, _r in sink.books)
    assert all(r >= t > 0 for *_x, t, r in sink.books)
    t = sink.trades[0]
    assert (t.exchange, t.symbol in {"BTC-USD", "SOL-USD"}, t.side in {"buy", "sell"}) == ("MOCK", True, True)
    assert t.price > 0 and t.amount > 0 and t.trade_id.isdigit()
    assert feed.stats.books == len(sink.books) and feed.stats.errors == 0
    # The capture holds one complete message per frame; replaying it drives the same parser.
    assert rec.records[0][0] == "connect"
    frames = [d for k, d in rec.records if k == "frame"]
    assert all(isinstance(f, bytes) and len(f) == int.from_bytes(f[:2], "little") for f in frames)
    replay_sink = Sink()
    again = MockFeed(MockFeedConfig(symbols=["BTC-USD", "SOL-USD"]))
    again.sink = replay_sink
    for kind, data in rec.records:
        if kind == "connect":
            again.deliver_connect(1)
        else:
            again.deliver_frame(data, 1)
    assert [b[:4] for b in replay_sink.books] == [b[:4] for b in sink.books]
    assert len(replay_sink.trades) == len(sink.trades)


def test_feed_counts_bad_frames_and_survives():
    feed = MockFeed(MockFeedConfig())
    feed.sink = Sink()
    feed.deliver_frame(b"\x10\x00\x09\x00" + bytes(12), 1)  # unknown type
    feed.deliver_frame(b"abc", 1)  # not a whole message
    feed.deliver_frame("text", 1)
    assert feed.stats.errors == 3


def test_feed_config_keys_and_defaults():
    cfg = validate(MockFeedConfig, {"exchange": "mock"})
    assert (cfg.host, cfg.port, cfg.symbols) == ("127.0.0.1", 9000, [])
    with pytest.raises(ConfigError, match="unknown key"):
        validate(MockFeedConfig, {"exchange": "mock", "hots": "x"})


def test_plugin_registers_feed_venue_and_command():
    reg = load_registry("mock")
    assert reg.feeds["mock"].config_model is MockFeedConfig
    assert reg.venues["mock"].config_model is MockVenueConfig
    assert "mock-exchange" in reg.commands
    feed = reg.feeds["mock"].factory(validate(MockFeedConfig, {"exchange": "mock"}))
    venue = reg.venues["mock"].factory(validate(MockVenueConfig, {"exchange": "mock", "port": 9001}))
    assert (feed.exchange, venue.name, venue.config.port) == ("MOCK", "MOCK", 9001)


class Listener:
    def __init__(self) -> None:
        self.reports = []
        self.connects = 0
        self.disconnects: list[str] = []
        self.md: list[tuple] = []
        self.trades = []

    def on_execution_report(self, report) -> None:
        self.reports.append(report)

    def on_venue_connected(self) -> None:
        self.connects += 1

    def on_venue_disconnected(self, reason: str) -> None:
        self.disconnects.append(reason)

    def on_market_data(self, symbol, bids, asks, receipt_ns) -> None:
        self.md.append((symbol, bids, asks, receipt_ns))

    def on_venue_trade(self, trade) -> None:
        self.trades.append(trade)


def test_venue_orders_reports_market_data_and_reconnect():
    async def main():
        ex = await _exchange(fill_prob=100, tick_rate=5)
        venue = MockVenue(MockVenueConfig(port=ex.port, backoff_initial=0.05, backoff_max=0.2))
        lst = Listener()
        with pytest.raises(ConnectionError):
            venue.send_new_order(Order(1, "BTC-USD", Side.BUY, 0.01))
        task = asyncio.create_task(venue.run(lst))
        try:
            await async_wait_for(lambda: lst.connects == 1 and venue.connected, 5, "connected")
            assert venue.instruments["BTC-USD"].tick_size == 0.5
            venue.send_new_order(Order(1, "BTC-USD", Side.BUY, 0.01, 0.0, OrdType.MARKET, TimeInForce.IOC))
            venue.send_new_order(
                Order(2, "ETH-USD", Side.SELL, 0.001, 1_000_000.0, OrdType.LIMIT, TimeInForce.GTC)
            )
            venue.send_new_order(Order(3, "BTC-USD", Side.BUY, 0.00001, 50_000.0))  # below the lot
            await async_wait_for(lambda: len(lst.reports) >= 4, 5, "reports")
            venue.send_cancel(4, 2, "ETH-USD")
            await async_wait_for(lambda: len(lst.reports) >= 5, 5, "cancel report")
            with pytest.raises(ValueError, match="unknown symbol"):
                venue.send_new_order(Order(5, "DOGE-USD", Side.BUY, 1.0, 1.0))
            await async_wait_for(
                lambda: len(lst.md) >= 4 and lst.trades, 5, "market data and trade on the venue link"
            )
            # The exchange drops every client: the venue reports it and reconnects.
            for c in list(ex.clients):
                c.close("test drop")
            await async_wait_for(lambda: lst.connects == 2, 5, "reconnected")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await ex.stop()
        return lst

    lst = run(main())
    by = {}
    for r in lst.reports:
        by.setdefault(r.cl_ord_id, []).append(r)
    new, fill = by[1][0], by[1][-1]
    assert (new.exec_type, new.symbol, new.side, new.leaves_qty) == (ExecType.NEW, "BTC-USD", Side.BUY, 0.01)
    assert (fill.exec_type, fill.cum_qty, fill.leaves_qty) == (ExecType.FILL, 0.01, 0.0)
    assert fill.last_px > 40_000 and fill.receipt_ns >= fill.timestamp_ns > 0
    assert [r.exec_type for r in by[2]] == [ExecType.NEW, ExecType.CANCELED]
    assert (by[3][0].exec_type, by[3][0].reject_reason) == (ExecType.REJECTED, RejectReason.INVALID_QUANTITY)
    sym, bids, asks, receipt_ns = lst.md[0]
    assert sym in {"BTC-USD", "ETH-USD"} and bids[0][0] < asks[0][0] and len(bids) == 10 and receipt_ns > 0
    assert lst.trades[0].exchange == "MOCK"
    assert lst.disconnects[0] == "closed by the exchange"
    assert lst.disconnects[-1] == "stopped"


def test_venue_backs_off_while_the_exchange_is_down():
    from latentspeed_core.testing import free_port

    async def main():
        port = free_port()
        venue = MockVenue(MockVenueConfig(port=port, backoff_initial=0.05, backoff_max=0.1))
        lst = Listener()
        task = asyncio.create_task(venue.run(lst))
        await asyncio.sleep(0)
        ex = await _exchange(port=port)  # comes up after the venue started trying
        try:
            await async_wait_for(lambda: lst.connects == 1, 10, "connected after retries")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await ex.stop()

    run(main())


def test_loadgen_counts_every_order_final():
    from latentspeed_mock_exchange.loadgen import measure_orders_per_s

    async def main():
        ex = await _exchange(log_orders=False)
        try:
            rate = await measure_orders_per_s(port=ex.port, orders=3000, in_flight=100, timeout=20)
        finally:
            await ex.stop()
        return rate, ex.stats

    rate, stats = run(main())
    assert rate > 0
    assert stats["orders"] == 3000 and stats["rejects"] == 0
    assert stats["fills"] + stats["cancels"] >= 3000


def test_venue_listener_error_does_not_lose_the_other_reports():
    class Flaky(Listener):
        def on_execution_report(self, report) -> None:
            super().on_execution_report(report)
            if len(self.reports) == 1:
                raise RuntimeError("listener bug")

    async def main():
        ex = await _exchange(fill_prob=100, tick_rate=60_000)
        venue = MockVenue(MockVenueConfig(port=ex.port))
        lst = Flaky()
        task = asyncio.create_task(venue.run(lst))
        try:
            await async_wait_for(lambda: venue.connected, 5, "connected")
            # NEW + FILL arrive in one write; the first raises in the listener.
            venue.send_new_order(Order(1, "BTC-USD", Side.BUY, 0.01, 0.0, OrdType.MARKET, TimeInForce.IOC))
            await async_wait_for(lambda: len(lst.reports) >= 2, 5, "both reports")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await ex.stop()
        return lst

    lst = run(main())
    assert [r.exec_type for r in lst.reports] == [ExecType.NEW, ExecType.FILL]


def test_venue_heartbeats_keep_it_alive_and_a_silent_exchange_is_dropped():
    import struct
    import time

    async def main():
        # 1) A strict exchange (dead after 0.5 s, no ticks): only the venue's heartbeats keep the session.
        ex = await _exchange(tick_rate=60_000, heartbeat_interval=0.1, dead_after=0.5)
        venue = MockVenue(MockVenueConfig(port=ex.port, heartbeat_interval=0.1))
        lst = Listener()
        task = asyncio.create_task(venue.run(lst))
        try:
            await async_wait_for(lambda: venue.connected, 5, "connected")
            t0 = time.monotonic()
            await async_wait_for(lambda: time.monotonic() - t0 > 1.2 or lst.disconnects, 5, "1.2 s")
            assert not lst.disconnects and ex.stats["connections"] == 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await ex.stop()

        # 2) A peer that sends one heartbeat and then nothing is dead after dead_after.
        async def silent(reader, writer):
            writer.write(struct.pack("<HHIQ", 16, 5, 1, time.time_ns()))
            await reader.read()  # hold the connection open until the client drops it
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        venue = MockVenue(MockVenueConfig(port=port, dead_after=0.3, heartbeat_interval=0.1))
        lst = Listener()
        task = asyncio.create_task(venue.run(lst))
        try:
            await async_wait_for(lambda: lst.disconnects, 5, "dead exchange detected")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            server.close()
        return lst

    lst = run(main())
    assert lst.disconnects[0].startswith("exchange silent for")


def test_venue_drops_an_exchange_that_sends_a_zero_length_header(caplog):
    """Issue 18, defect 1, client side: the venue's decoder once looped forever on this frame.

    Dropping the stream and connecting again (a second connection arrives) shows the loop is free."""
    import logging
    import struct

    async def main():
        connections = []

        async def bad_exchange(reader, writer):
            connections.append(writer)
            writer.write(struct.pack("<HHIQ", 0, 1, 1, 0))
            await reader.read()
            writer.close()

        server = await asyncio.start_server(bad_exchange, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        venue = MockVenue(MockVenueConfig(port=port, backoff_initial=0.01, backoff_max=0.05))
        task = asyncio.create_task(venue.run(Listener()))
        try:
            await async_wait_for(lambda: len(connections) >= 2, 5, "the venue to drop the stream and reconnect")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            server.close()
        assert not venue.connected

    with caplog.at_level(logging.WARNING, logger="latentspeed_mock_exchange"):
        run(main())
    assert any("malformed frame from exchange: bad length 0" in r.getMessage() for r in caplog.records)


def test_venue_skips_and_counts_a_fill_report_no_exchange_could_send():
    """Found by fuzzing: a FILL with a price or size <= 0 reached the engine."""
    from latentspeed_mock_exchange import protocol as P

    venue = MockVenue(MockVenueConfig())
    lst = Listener()
    venue._listener = lst
    good = P.encode_execution_report(1, 0, 7, 1, 1, 1, 0, P.EXEC_FILL, 100 * P.SCALE, P.SCALE, 0, P.SCALE, 0)
    bad = P.encode_execution_report(2, 0, 8, 2, 2, 1, 0, P.EXEC_FILL, -5 * P.SCALE, P.SCALE, 0, P.SCALE, 0)
    venue._on_frames([(P.EXECUTION_REPORT, bad, 0), (P.EXECUTION_REPORT, good, 0)], 0)
    assert [r.cl_ord_id for r in lst.reports] == [7]
    assert venue.bad_messages == 1

"""The Binance feed's own rules against a loopback Binance playing scripted sessions built from recorded
frames: a session that streams in after the sync, a snapshot older than the buffered events, silence,
and the venue's ``serverShutdown`` notice.

What every feed must do (the book against the reference, a cut, a gap, malformed frames, impossible
levels and trades) is in test_binance_conformance.py.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from binance_testkit import SPEED, FakeBinance, expected_book, load_session, snapshot_at
from latentspeed_exchange_binance.config import BinanceConfig
from latentspeed_exchange_binance.feed import BinanceFeed

from latentspeed_core.config import validate
from latentspeed_core.testing import RecordingSink, async_wait_for, book_levels, running


def make_feed(srv: FakeBinance, market: str) -> BinanceFeed:
    """Spot on one ``/stream`` connection; USD-M on Binance's routes: depth ``/public``, trades ``/market``."""
    ws_url = srv.public_url if market == "usdm" else srv.ws_url
    cfg = validate(
        BinanceConfig,
        {"exchange": "binance", "market": market, "symbols": ["BTC-USDT"], "ws_url": ws_url,
         "rest_url": srv.rest_url, "depth_speed": SPEED[market]},
    )  # fmt: skip
    feed = BinanceFeed(cfg)
    feed.backoff_initial = 0.01
    feed.backoff_max = 0.05
    feed.snapshot_min_interval = 0.01
    feed.protocol_ping_interval = None
    return feed


def done_with(feed: BinanceFeed, expected) -> bool:
    return feed.synced("BTC-USDT") and feed._by_symbol["BTC-USDT"].last_u == expected.seq


def assert_book(feed: BinanceFeed, expected) -> None:
    assert book_levels(feed.book("BTC-USDT")) == expected.levels()  # level by level, best first


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_a_session_streaming_in_after_the_sync_publishes_every_update(market):
    """The first events are buffered, the snapshot lands, the rest streams in: one book per update."""
    s = load_session(market)
    expected = expected_book(s)
    split = s.depth_indices()[6]
    holder = {}

    async def script(conn):
        await conn.send_all(s.frames[:split])
        await async_wait_for(lambda: holder["feed"].synced("BTC-USDT"), 5, "sync on the first events")
        await conn.send_all(s.frames[split:])

    async def main():
        async with FakeBinance([script], [s.snapshot]) as srv:
            feed, sink = make_feed(srv, market), RecordingSink(depth=10)
            holder["feed"] = feed
            async with running(feed, sink):
                await async_wait_for(lambda: done_with(feed, expected), 10, "book synced to the last update")
                assert_book(feed, expected)
                assert feed.stats.errors == 0 and feed.stats.resyncs == 0 and feed.stats.reconnects == 0
                assert len(sink.books) > 50  # one publication per applied update once synced
                assert sink.last("BTC-USDT") == expected.levels(10)
                assert sink.violations == []

    asyncio.run(main())


def test_snapshot_older_than_first_buffered_event_is_refetched():
    s = load_session("spot")
    depth = s.depth_indices()
    full = expected_book(s)
    start = depth[3]  # the recorded snapshot predates this event: it must be refetched
    assert s.depth(start)["U"] > orjson.loads(s.snapshot)["lastUpdateId"]

    async def main():
        async with FakeBinance([s.frames[start:]], [s.snapshot, snapshot_at(s, depth[5])]) as srv:
            feed, sink = make_feed(srv, "spot"), RecordingSink(depth=10)
            async with running(feed, sink):
                await async_wait_for(lambda: done_with(feed, full), 10, "book")
                assert len(srv.rest_paths) == 2 and feed.stats.resyncs == 1
                assert_book(feed, full)

    asyncio.run(main())


def test_silence_reconnects():
    s = load_session("spot")
    depth = s.depth_indices()
    full = expected_book(s)
    stop = depth[30]

    async def first(conn):
        conn.server.serve_snapshots(s.snapshot)
        await conn.send_all(s.frames[:stop])  # then the connection stays up and nothing arrives

    async def second(conn):
        conn.server.serve_snapshots(snapshot_at(s, depth[32]))
        await conn.send_all(s.frames[stop:])

    async def main():
        async with FakeBinance([first, second]) as srv:
            feed, sink = make_feed(srv, "spot"), RecordingSink(depth=10)
            feed.silence_timeout = 0.3
            async with running(feed, sink):
                await async_wait_for(
                    lambda: feed.connections == 2 and done_with(feed, full), 10, "book after silence"
                )
                assert feed.last_reconnect_cause.startswith("silent for")
                assert_book(feed, full)

    asyncio.run(main())


def test_server_shutdown_event_moves_to_a_new_connection():
    s = load_session("spot")
    full = expected_book(s)

    async def shutdown(conn):  # a stream nobody subscribes to: sent as it is
        await conn.send_raw('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}')

    async def main():
        async with FakeBinance([shutdown, s.frames], [s.snapshot]) as srv:
            feed, sink = make_feed(srv, "spot"), RecordingSink(depth=10)
            async with running(feed, sink):
                await async_wait_for(lambda: feed.connections == 2 and done_with(feed, full), 10, "book")
                assert feed.last_reconnect_cause == "venue sent serverShutdown"
                assert_book(feed, full)

    asyncio.run(main())

"""The Binance feed against a loopback Binance playing scripted sessions built from recorded frames."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from binance_testkit import (
    FakeBinance,
    RecSink,
    book_levels,
    expected_book,
    load_session,
    run_feed,
    send_frames,
    snapshot_at,
)
from latentspeed_exchange_binance.config import BinanceConfig
from latentspeed_exchange_binance.feed import BinanceFeed

from latentspeed_core.config import validate
from latentspeed_core.testing import async_wait_for

SPEED = {"spot": "100ms", "usdm": "0ms"}  # the streams the recordings subscribed to


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


async def forever(*_):
    await asyncio.Future()


def done_with(feed: BinanceFeed, expected) -> bool:
    return feed.synced("BTC-USDT") and feed._by_symbol["BTC-USDT"].last_u == expected.last


def assert_book(feed: BinanceFeed, expected) -> None:
    bids, asks = book_levels(feed.book("BTC-USDT"))
    ebids, easks = expected.levels()
    assert len(bids) == len(ebids) and len(asks) == len(easks)
    assert bids == ebids  # level by level, best first
    assert asks == easks


@pytest.mark.parametrize("pace", ["burst", "live"])
@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_normal_session(market, pace):
    """burst: everything is buffered before the snapshot lands; live: the rest streams in after sync."""
    s = load_session(market)
    expected = expected_book(s)
    split = s.depth_indices()[6]
    holder = {}

    async def script(srv, n, ws, names):
        if pace == "burst":
            await send_frames(ws, s.frames, names)
        else:
            await send_frames(ws, s.frames[:split], names)
            await async_wait_for(lambda: holder["feed"].synced("BTC-USDT"), 5, "sync on the first events")
            await send_frames(ws, s.frames[split:], names)
        await forever()

    async def main():
        async with FakeBinance(script, [s.snapshot]) as srv:
            feed, sink = make_feed(srv, market), RecSink()
            holder["feed"] = feed

            async def body():
                await async_wait_for(lambda: done_with(feed, expected), 10, "book synced to the last update")
                assert_book(feed, expected)
                if market == "spot":  # one connection for depth and trades
                    assert srv.paths == ["/stream?streams=btcusdt@depth@100ms/btcusdt@trade"]
                    assert srv.market_paths == []
                else:  # USD-M: depth on /public, trades on /market
                    assert srv.paths == ["/public/stream?streams=btcusdt@depth@0ms"]
                    assert srv.market_paths == ["/market/stream?streams=btcusdt@trade"]
                assert (
                    srv.rest_paths[0]
                    == ("/api/v3/depth" if market == "spot" else "/fapi/v1/depth")
                    + "?symbol=BTCUSDT&limit=1000"
                )
                assert feed.stats.errors == 0 and feed.stats.resyncs == 0 and feed.stats.reconnects == 0
                await async_wait_for(
                    lambda: len(sink.trades) == (152 if market == "spot" else 153), 5, "trades"
                )
                if pace == "live":
                    assert len(sink.books) > 50  # one publication per applied update once synced
                assert sink.books and sink.books[-1][3] == [list(x) for x in expected.levels()[0][:10]]
                assert sink.books[-1][4] == [list(x) for x in expected.levels()[1][:10]]

            await run_feed(feed, sink, body)

    asyncio.run(main())


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_gap_triggers_resync_and_correct_book(market):
    s = load_session(market)
    depth = s.depth_indices()
    full = expected_book(s)
    # drop a depth update whose loss would change the final book (so the test can fail)
    gap = next(i for i in depth[10:] if expected_book(s, skip=i).levels() != full.levels())
    after = depth[depth.index(gap) + 3]  # the venue's snapshot for the resync is taken a little later
    frames = [f for i, f in enumerate(s.frames) if i != gap]

    async def script(srv, n, ws, names):
        await send_frames(ws, frames, names)
        await forever()

    async def main():
        async with FakeBinance(script, [s.snapshot, snapshot_at(s, after)]) as srv:
            feed, sink = make_feed(srv, market), RecSink()

            async def body():
                await async_wait_for(
                    lambda: done_with(feed, full) and len(srv.rest_paths) == 2, 10, "resynced book"
                )
                assert feed.stats.resyncs == 1
                assert_book(feed, full)

            await run_feed(feed, sink, body)

    asyncio.run(main())


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_connection_drop_reconnects_and_rebuilds(market):
    s = load_session(market)
    depth = s.depth_indices()
    full = expected_book(s)
    cut = depth[30]  # connection 1 ends after this frame
    resume = depth[40]  # connection 2 starts here (what was sent in between is lost)
    snaps = {1: s.snapshot, 2: snapshot_at(s, depth[42])}

    async def script(srv, n, ws, names):
        srv.snapshots[:] = [snaps[n]]
        if n == 1:
            await send_frames(ws, s.frames[: cut + 1], names)
            return  # drop the connection
        await send_frames(ws, s.frames[resume:], names)
        await forever()

    async def trades_stay_up(srv, n, ws, names):  # USD-M: the /market connection is not dropped
        await send_frames(ws, s.frames, names)
        await forever()

    async def main():
        async with FakeBinance(script, [s.snapshot], market_script=trades_stay_up) as srv:
            feed, sink = make_feed(srv, market), RecSink()

            async def body():
                await async_wait_for(
                    lambda: feed.connections == 2 and done_with(feed, full), 10, "rebuilt book"
                )
                assert feed.stats.reconnects == 1 and "closed" in feed.last_reconnect_cause
                if market == "usdm":  # the depth drop left the trades connection alone
                    assert feed.trades_connection.connections == 1 and srv.market_connections == 1
                assert len(srv.paths) == 2 and srv.paths[0] == srv.paths[1]  # resubscribed
                assert len(srv.rest_paths) == 2  # a fresh snapshot after the reconnect
                assert_book(feed, full)
                published_after = [b for b in sink.books if b[2] > feed_connected_at[2]]
                assert published_after  # publishing resumed, with the rebuilt book
                assert published_after[-1][3] == [list(x) for x in full.levels()[0][:10]]

            feed_connected_at: dict[int, int] = {}
            orig = feed.on_connect

            def on_connect():
                feed_connected_at[feed.connections] = time.time_ns()
                orig()

            feed.on_connect = on_connect
            await run_feed(feed, sink, body)

    asyncio.run(main())


def test_malformed_and_unknown_frames_counted_and_skipped():
    s = load_session("spot")
    full = expected_book(s)
    depth = s.depth_indices()
    junk = [
        b"not json at all",
        b'{"stream":"btcusdt@trade","data":{"e":"foo","s":"BTCUSDT"}}',
        b'{"code":2,"msg":"Invalid request: missing field `method`"}',
        b"[]",
    ]
    frames = s.frames[: depth[20]] + junk + s.frames[depth[20] :]

    async def script(srv, n, ws, names):
        for f in junk:  # also before anything is synchronised
            await ws.send(f.decode())
        await send_frames(ws, frames, names)
        await forever()

    async def main():
        async with FakeBinance(script, [s.snapshot]) as srv:
            feed, sink = make_feed(srv, "spot"), RecSink()

            async def body():
                await async_wait_for(lambda: done_with(feed, full), 10, "book")
                assert feed.stats.errors == 2 * len(junk)
                assert feed.stats.resyncs == 0 and feed.stats.reconnects == 0
                assert_book(feed, full)

            await run_feed(feed, sink, body)

    asyncio.run(main())


def test_malformed_level_resyncs_instead_of_publishing_a_half_applied_book():
    s = load_session("spot")
    full = expected_book(s)
    depth = s.depth_indices()
    bad_i = depth[20]
    ev = s.depth(bad_i)
    bad = dict(ev, a=ev["a"][:1] + [["oops", "1"]] + ev["a"][1:])  # breaks in the middle of the asks
    frames = list(s.frames)
    frames[bad_i] = orjson.dumps({"stream": "btcusdt@depth@100ms", "data": bad})

    async def script(srv, n, ws, names):
        await send_frames(ws, frames, names)
        await forever()

    async def main():
        async with FakeBinance(script, [s.snapshot, snapshot_at(s, depth[23])]) as srv:
            feed, sink = make_feed(srv, "spot"), RecSink()

            async def body():
                await async_wait_for(lambda: done_with(feed, full) and len(srv.rest_paths) == 2, 10, "book")
                assert feed.stats.errors == 1 and feed.stats.resyncs == 1
                assert_book(feed, full)

            await run_feed(feed, sink, body)

    asyncio.run(main())


def test_snapshot_older_than_first_buffered_event_is_refetched():
    s = load_session("spot")
    depth = s.depth_indices()
    full = expected_book(s)
    start = depth[3]  # the recorded snapshot predates this event: it must be refetched
    assert s.depth(start)["U"] > orjson.loads(s.snapshot)["lastUpdateId"]

    async def script(srv, n, ws, names):
        await send_frames(ws, s.frames[start:], names)
        await forever()

    async def main():
        async with FakeBinance(script, [s.snapshot, snapshot_at(s, depth[5])]) as srv:
            feed, sink = make_feed(srv, "spot"), RecSink()

            async def body():
                await async_wait_for(lambda: done_with(feed, full), 10, "book")
                assert len(srv.rest_paths) == 2 and feed.stats.resyncs == 1
                assert_book(feed, full)

            await run_feed(feed, sink, body)

    asyncio.run(main())


def test_silence_reconnects():
    s = load_session("spot")
    depth = s.depth_indices()
    full = expected_book(s)
    stop = depth[30]

    async def script(srv, n, ws, names):
        if n == 1:
            srv.snapshots[:] = [s.snapshot]
            await send_frames(ws, s.frames[:stop], names)
            await forever()  # connection stays up, nothing arrives
        srv.snapshots[:] = [snapshot_at(s, depth[32])]
        await send_frames(ws, s.frames[stop:], names)
        await forever()

    async def main():
        async with FakeBinance(script, [s.snapshot]) as srv:
            feed, sink = make_feed(srv, "spot"), RecSink()
            feed.silence_timeout = 0.3

            async def body():
                await async_wait_for(
                    lambda: feed.connections == 2 and done_with(feed, full), 10, "book after silence"
                )
                assert feed.last_reconnect_cause.startswith("silent for")
                assert_book(feed, full)

            await run_feed(feed, sink, body)

    asyncio.run(main())


def test_server_shutdown_event_moves_to_a_new_connection():
    s = load_session("spot")
    full = expected_book(s)

    async def script(srv, n, ws, names):
        if n == 1:
            await ws.send('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}')
            await forever()
        await send_frames(ws, s.frames, names)
        await forever()

    async def main():
        async with FakeBinance(script, [s.snapshot]) as srv:
            feed, sink = make_feed(srv, "spot"), RecSink()

            async def body():
                await async_wait_for(lambda: feed.connections == 2 and done_with(feed, full), 10, "book")
                assert feed.last_reconnect_cause == "venue sent serverShutdown"
                assert_book(feed, full)

            await run_feed(feed, sink, body)

    asyncio.run(main())

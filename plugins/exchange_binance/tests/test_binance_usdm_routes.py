"""USD-M market data on Binance's routed endpoints (Important WebSocket Change Notice, 2026-03-06).

Depth streams are served on ``/public``, trades on ``/market``: one feed, two connections. These tests
check the config (defaults, testnet, loopback, the refusals), and against the loopback Binance that depth
arrives over ``/public/stream`` and trades over ``/market/stream``, that the book is exact, that a capture
of both connections replays to the same output, and that losing only the trades connection (dropped, or
a ``serverShutdown`` on it) never touches the book while the trades resume.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
import pytest
from binance_testkit import FakeBinance, expected_book, load_session
from latentspeed_exchange_binance.config import BinanceConfig
from latentspeed_exchange_binance.feed import BinanceFeed
from latentspeed_exchange_binance.parsing import market_route_url, route, trade_streams

from latentspeed_core.capture import Recorder, read_capture
from latentspeed_core.config import ConfigError, validate
from latentspeed_core.testing import RecordingSink, async_wait_for, book_levels, running

USDM = {"exchange": "binance", "market": "usdm", "symbols": ["BTC-USDT"]}


def usdm(**kw) -> BinanceConfig:
    return validate(BinanceConfig, {**USDM, **kw}, "feeds.yml")


# -- config --------------------------------------------------------------------------------------------
def test_route_helpers():
    assert route("wss://fstream.binance.com/public/stream") == "public"
    assert route("wss://fstream.binance.com/stream") == "stream"
    assert (
        market_route_url("wss://fstream.binance.com/public/stream")
        == "wss://fstream.binance.com/market/stream"
    )
    assert market_route_url("ws://127.0.0.1:9/stream") == "ws://127.0.0.1:9/stream"  # no route: kept
    assert market_route_url("ws://h/public-proxy/stream") == "ws://h/public-proxy/stream"  # not the route
    assert trade_streams(["BTC-USDT", "ETH-USDT"], "aggTrade") == ["btcusdt@aggTrade", "ethusdt@aggTrade"]


def test_usdm_urls_default_to_the_routes_and_follow_ws_url():
    c = usdm()
    assert (c.ws_url, c.trades_ws_url) == (
        "wss://fstream.binance.com/public/stream", "wss://fstream.binance.com/market/stream"
    )  # fmt: skip
    c = usdm(ws_url="wss://fstream.binancefuture.com/public/stream")  # testnet: the same routes
    assert c.trades_ws_url == "wss://fstream.binancefuture.com/market/stream"
    c = usdm(ws_url="ws://127.0.0.1:9000/stream")  # a proxy or test server serving every stream on one path
    assert c.trades_ws_url == "ws://127.0.0.1:9000/stream"
    c = usdm(ws_url="ws://a/public/stream", trades_ws_url="ws://b/market/stream")  # explicit wins
    assert c.trades_ws_url == "ws://b/market/stream"
    spot = validate(BinanceConfig, {"exchange": "binance", "symbols": ["BTC-USDT"]})
    assert spot.trades_ws_url == ""  # spot: one connection, no trades URL
    assert spot.endpoint() == "wss://stream.binance.com:9443/stream"
    assert (
        usdm().endpoint()
        == "wss://fstream.binance.com/public/stream + wss://fstream.binance.com/market/stream"
    )
    with pytest.raises(ConfigError) as err:  # a bad ws_url is one error, not one more for the derived URL
        usdm(ws_url="http://x/public/stream")
    assert "ws_url" in str(err.value) and "trades_ws_url" not in str(err.value)


def test_each_feed_subscribes_its_streams_on_its_connections():
    feed = BinanceFeed(usdm(depth_speed="100ms", trade_channel="aggTrade"))
    assert feed.ws_url() == "wss://fstream.binance.com/public/stream?streams=btcusdt@depth@100ms"
    assert feed.trades_connection is not None
    assert (
        feed.trades_connection.ws_url() == "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade"
    )
    assert BinanceFeed(usdm(trades=False)).trades_connection is None
    spot = BinanceFeed(validate(BinanceConfig, {"exchange": "binance", "symbols": ["BTC-USDT"]}))
    assert spot.trades_connection is None
    assert spot.ws_url() == "wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms/btcusdt@trade"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"ws_url": "wss://fstream.binance.com/stream"}, ["ws_url", "/public", "wss://fstream.binance.com/public/stream"]),
        ({"ws_url": "wss://fstream.binance.com/market/stream"}, ["ws_url", "/public"]),
        ({"trades_ws_url": "wss://fstream.binance.com/public/stream"}, ["trades_ws_url", "/market"]),
        ({"trades_ws_url": "wss://fstream.binancefuture.com/stream"}, ["trades_ws_url", "binancefuture.com/market"]),
        ({"market": "spot", "trades_ws_url": "wss://x/market/stream"}, ["trades_ws_url", "usdm"]),
        ({"symbols": [f"S{i}-USDT" for i in range(1025)]}, ["1025 streams", "ws_url"]),
    ],
)  # fmt: skip
def test_refused(data, words):
    with pytest.raises(ConfigError) as err:
        usdm(**data)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_stream_limit_is_per_connection():
    many = [f"S{i}-USDT" for i in range(1024)]
    assert len(usdm(symbols=many).symbols) == 1024  # 1024 depth on /public, 1024 trades on /market
    with pytest.raises(ConfigError, match="2048 streams on the ws_url connection"):
        validate(BinanceConfig, {"exchange": "binance", "symbols": many})  # spot: both on one connection
    no_trades = usdm(trades=False, trades_ws_url="wss://fstream.binance.com/stream")
    assert no_trades.trades is False  # an unused trades URL is not checked


# -- loopback --------------------------------------------------------------------------------------------
S = load_session("usdm")
FULL = expected_book(S)
DEPTH = S.depth_indices()
TRADE_IDS = [str(orjson.loads(f)["data"]["t"]) for f in S.frames if S.stream(f) == "btcusdt@trade"]


def make_feed(srv: FakeBinance) -> BinanceFeed:
    """The feed given only the ``/public`` URL: its trades go to ``/market`` by the route swap."""
    feed = BinanceFeed(usdm(ws_url=srv.public_url, rest_url=srv.rest_url, depth_speed="0ms"))
    feed.backoff_initial = 0.01
    feed.backoff_max = 0.05
    feed.snapshot_min_interval = 0.01
    feed.protocol_ping_interval = None
    return feed


def done(feed: BinanceFeed, sink: RecordingSink) -> bool:
    st = feed._by_symbol["BTC-USDT"]
    return st.synced and st.last_u == FULL.seq and len(sink.trades) == len(TRADE_IDS)


def test_depth_over_public_trades_over_market_and_the_capture_replays(tmp_path):
    sent: dict[str, Counter] = {}
    capture = tmp_path / "usdm.jsonl"

    async def main() -> tuple[BinanceFeed, RecordingSink]:
        async with FakeBinance([S.frames], [S.snapshot]) as srv:
            feed, sink = make_feed(srv), RecordingSink(depth=10)
            feed.recorder = Recorder(capture, feeds=[feed.name])
            try:
                async with running(feed, sink):
                    await async_wait_for(lambda: done(feed, sink), 10, "book and trades")
                    assert srv.paths == ["/public/stream?streams=btcusdt@depth@0ms"]
                    assert srv.market_paths == ["/market/stream?streams=btcusdt@trade"]
            finally:
                feed.recorder.close()
            for conn in srv.connections:  # what each route carried
                sent[conn.path.split("?")[0]] = Counter(S.stream(f.encode()) for f in conn.sent)
            return feed, sink

    feed, sink = asyncio.run(main())
    # what each route carried: depth only on /public, trades only on /market
    assert sent == {
        "/public/stream": Counter({"btcusdt@depth@0ms": len(DEPTH)}),
        "/market/stream": Counter({"btcusdt@trade": len(TRADE_IDS)}),
    }
    assert book_levels(feed.book("BTC-USDT")) == FULL.levels()  # exact, level by level
    assert [t.trade_id for t in sink.trades] == TRADE_IDS  # every trade, in order, once
    s = feed.stats
    assert (s.errors, s.resyncs, s.reconnects, s.messages) == (0, 0, 0, len(DEPTH) + len(TRADE_IDS))
    assert feed.connections == 1 and feed.trades_connection.connections == 1

    # one capture holds both connections' frames (and one connect: the depth one's) and replays the same
    kinds = Counter(r["kind"] for r in read_capture(capture))
    assert kinds == {"connect": 1, "rest": 1, "frame": len(DEPTH) + len(TRADE_IDS)}
    again = BinanceFeed(usdm(depth_speed="0ms", replay=str(capture)))
    replayed = RecordingSink(depth=10)
    asyncio.run(again.run(replayed))
    assert replayed.books == sink.books and replayed.trades == sink.trades
    assert again.stats.as_dict() == {**feed.stats.as_dict(), "reconnects": 0}


@pytest.mark.parametrize("how", ["dropped", "serverShutdown"])
def test_losing_the_trades_connection_leaves_the_book_alone(how):
    mid = DEPTH[40]
    before = sum(1 for f in S.frames[:mid] if S.stream(f) == "btcusdt@trade")
    holder: dict[str, object] = {}

    async def public(conn):
        feed = holder["feed"]
        await conn.send_all(S.frames[:mid])
        # the rest of the depth only once the trades connection is back: the book lives through its loss
        await async_wait_for(lambda: feed.trades_connection.connections == 2, 10, "trades reconnected")
        await conn.send_all(S.frames[mid:])

    async def market_first(conn):
        feed, sink = holder["feed"], holder["sink"]
        await async_wait_for(lambda: feed.synced("BTC-USDT"), 10, "book synced")
        await conn.send_all(S.frames[:mid])
        await async_wait_for(lambda: len(sink.trades) == before, 10, "the first trades")
        holder["books_before"] = len(sink.books)
        if how == "dropped":
            await conn.close()  # the trades connection goes
        else:
            await conn.send_raw(
                '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}'
            )

    async def main():
        async with FakeBinance([public], [S.snapshot], market_scripts=[market_first, S.frames[mid:]]) as srv:
            feed, sink = make_feed(srv), RecordingSink(depth=10)
            holder.update(feed=feed, sink=sink)
            resets: list[list[str]] = []
            feed.reset_listener = resets.append
            async with running(feed, sink):
                await async_wait_for(lambda: done(feed, sink), 10, "book and every trade")
                trades = feed.trades_connection
                assert trades.connections == 2 and len(srv.market_connections) == 2
                cause = "closed" if how == "dropped" else "venue sent serverShutdown"
                assert cause in trades.last_reconnect_cause
                # the depth connection and the book never noticed
                assert feed.connections == 1 and len(srv.depth_connections) == 1
                assert feed.last_reconnect_cause is None
                assert len(srv.rest_paths) == 1  # no second snapshot
                assert feed.stats.resyncs == 0 and feed.stats.errors == 0
                assert resets == [["BTC-USDT"]]  # only at the depth connection's start
                assert feed.stats.reconnects == 1  # the trades connection's, counted in the feed's stats
                assert book_levels(feed.book("BTC-USDT")) == FULL.levels()
                assert len(sink.books) > holder["books_before"]  # publishing went on after the reconnect
                assert [t.trade_id for t in sink.trades] == TRADE_IDS  # trades resumed, none twice

    asyncio.run(main())

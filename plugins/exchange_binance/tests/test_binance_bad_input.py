"""Impossible levels and trades from a loopback Binance (issue 18, defects 2 and 3).

A depth event with a level whose price is not finite and > 0, or whose size is not finite and
>= 0, is malformed: counted, nothing of it applied or published, and the symbol resyncs at once
from a fresh REST snapshot; the book is then exact again. A trade whose price or quantity is not
finite and > 0 is counted and not published. Scripted sessions are the recorded spot / USD-M
frames with one event or trade replaced by the issue's inputs.
"""

from __future__ import annotations

import asyncio
import math

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
from latentspeed_core.testing import async_wait_for, fixtures_dir

SPEED = {"spot": "100ms", "usdm": "0ms"}
STREAM = {"spot": "btcusdt@depth@100ms", "usdm": "btcusdt@depth@0ms"}
TRADES = {"spot": 152, "usdm": 153}  # trades in each recorded session
INF = math.inf


class SaneSink(RecSink):
    """Records what was published and every violation of the invariants (never raises: an exception
    here would be counted by the feed as a bad frame and hide the failure)."""

    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []

    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        bids, asks = book.top_bids(len(book)), book.top_asks(len(book))
        bad = [lv for lv in bids + asks if not (0 < lv[0] < INF and 0 < lv[1] < INF)]
        if bad:
            self.violations.append(f"impossible levels published: {bad[:3]}")
        if bids and asks and bids[0][0] >= asks[0][0]:
            self.violations.append(f"crossed book published: {bids[0]} / {asks[0]}")
        self.books.append((symbol, timestamp_ns, receipt_ns, bids[:10], asks[:10]))

    def on_trade(self, feed, trade) -> None:
        if not (0 < trade.price < INF and 0 < trade.amount < INF):
            self.violations.append(f"impossible trade published: {trade}")
        self.trades.append(trade)


def make_feed(srv: FakeBinance, market: str) -> BinanceFeed:
    cfg = validate(
        BinanceConfig,
        {"exchange": "binance", "market": market, "symbols": ["BTC-USDT"], "ws_url": srv.ws_url,
         "rest_url": srv.rest_url, "depth_speed": SPEED[market]},
    )  # fmt: skip
    feed = BinanceFeed(cfg)
    feed.backoff_initial = 0.01
    feed.backoff_max = 0.05
    feed.snapshot_min_interval = 0.01
    feed.protocol_ping_interval = None
    return feed


async def forever(*_) -> None:
    await asyncio.Future()


def done_with(feed: BinanceFeed, expected) -> bool:
    return feed.synced("BTC-USDT") and feed._by_symbol["BTC-USDT"].last_u == expected.last


def assert_book(feed: BinanceFeed, expected) -> None:
    assert book_levels(feed.book("BTC-USDT")) == expected.levels()


def with_level(frame: bytes, side: str, price: str, qty: str) -> bytes:
    """The depth frame with one more level on ``side``, its numbers as raw JSON text (so bare ``1e999``
    and quoted ``"inf"`` both go out as the venue would write them)."""
    msg = orjson.loads(frame)
    msg["data"][side].append(["@P@", "@Q@"])
    return orjson.dumps(msg).replace(b'"@P@"', price.encode()).replace(b'"@Q@"', qty.encode())


def trade_frame(t: int, p: str, q: str) -> bytes:
    """The recorded spot trade frame with another trade id and the given price and quantity text."""
    msg = orjson.loads((fixtures_dir() / "binance" / "ws_spot_trade_combined_btcusdt_2024.json").read_bytes())
    msg["data"].update(t=t, p="@P@", q="@Q@")
    return orjson.dumps(msg).replace(b'"@P@"', p.encode()).replace(b'"@Q@"', q.encode())


# (side, price text, quantity text): the inputs, on either side of a real event
BAD_LEVELS = [
    ("b", '"61000.00"', '"inf"'),
    ("b", '"-5"', '"3"'),
    ("b", '"0"', '"3"'),
    ("a", '"inf"', '"3"'),
    ("a", '"1e999"', '"1"'),
    ("b", '"61000.00"', '"1e999"'),
    ("a", '"61900.00"', '"-2"'),
    ("a", '"61900.00"', '"NaN"'),
    ("b", "-5", "3"),  # bare JSON numbers
    ("a", "1e999", "1"),
]


@pytest.mark.parametrize(("side", "price", "qty"), BAD_LEVELS)
def test_impossible_level_is_counted_skipped_and_resynced(side, price, qty):
    _resync_session("spot", side, price, qty)


@pytest.mark.parametrize(("side", "price", "qty"), [("b", '"-3000"', '"1"'), ("a", '"61900.00"', '"inf"')])
def test_impossible_level_usdm(side, price, qty):
    _resync_session("usdm", side, price, qty)


def _resync_session(market: str, side: str, price: str, qty: str) -> None:
    s = load_session(market)
    full = expected_book(s)
    depth = s.depth_indices()
    bad_i = depth[20]
    frames = list(s.frames)
    frames[bad_i] = with_level(frames[bad_i], side, price, qty)

    async def script(srv, n, ws, names):
        await send_frames(ws, frames, names)
        await forever()

    async def main():
        # the second snapshot is the venue's state a little after the refused event
        async with FakeBinance(script, [s.snapshot, snapshot_at(s, depth[23])]) as srv:
            feed, sink = make_feed(srv, market), SaneSink()

            async def body():
                await async_wait_for(
                    lambda: done_with(feed, full) and len(srv.rest_paths) == 2, 10, "book resynced to the end"
                )
                assert feed.stats.errors == 1  # the malformed event
                assert feed.stats.resyncs == 1 and feed.stats.reconnects == 0
                assert len(srv.rest_paths) == 2 and srv.rest_paths[1] == srv.rest_paths[0]  # a fresh snapshot
                assert_book(feed, full)  # exact again
                assert sink.violations == []
                await async_wait_for(lambda: len(sink.trades) == TRADES[market], 5, "trades")

            await run_feed(feed, sink, body)

    asyncio.run(main())


def test_snapshot_with_an_impossible_level_is_refetched():
    s = load_session("spot")
    full = expected_book(s)
    snap = orjson.loads(s.snapshot)
    snap["asks"].insert(3, ["inf", "3"])
    snap["bids"].append(["0", "3"])
    bad = orjson.dumps(snap)

    async def script(srv, n, ws, names):
        await send_frames(ws, s.frames, names)
        await forever()

    async def main():
        async with FakeBinance(script, [bad, s.snapshot]) as srv:
            feed, sink = make_feed(srv, "spot"), SaneSink()

            async def body():
                await async_wait_for(lambda: done_with(feed, full), 10, "book synced on the second snapshot")
                assert len(srv.rest_paths) == 2
                assert feed.stats.errors == 1 and feed.stats.resyncs == 1
                assert_book(feed, full)
                assert sink.violations == []

            await run_feed(feed, sink, body)

    asyncio.run(main())


# the trades, and their relatives ("1e999" is inf; msgspec refuses it, the dict path reads it)
BAD_TRADES = [
    ('"NaN"', '"0.02"'),
    ('"inf"', '"0.02"'),
    ('"-5"', '"0.02"'),
    ('"0"', '"0.02"'),
    ('"61837.63"', '"-2"'),
    ('"61837.63"', '"0"'),
    ('"1e999"', '"0.02"'),
    ('"61837.63"', '"Infinity"'),
    ("-5", "0.02"),
]


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_impossible_trades_are_counted_and_not_published(market):
    s = load_session(market)
    full = expected_book(s)
    depth = s.depth_indices()
    stream = "btcusdt@trade"
    bad = [trade_frame(9_000_000_000 + i, p, q) for i, (p, q) in enumerate(BAD_TRADES)]
    # before the book is synchronised, and in the middle of the session
    frames = bad[:4] + s.frames[: depth[30]] + bad[4:] + s.frames[depth[30] :]
    assert all(orjson.loads(f)["stream"] == stream for f in bad)

    async def script(srv, n, ws, names):
        await send_frames(ws, frames, names)
        await forever()

    async def main():
        async with FakeBinance(script, [s.snapshot]) as srv:
            feed, sink = make_feed(srv, market), SaneSink()

            async def body():
                await async_wait_for(
                    lambda: done_with(feed, full) and len(sink.trades) == TRADES[market], 10, "session"
                )
                assert feed.stats.errors == len(BAD_TRADES)
                assert feed.stats.trades == TRADES[market]
                assert feed.stats.resyncs == 0 and feed.stats.reconnects == 0
                assert not any(t.trade_id.startswith("9000000") for t in sink.trades)
                assert sink.violations == []
                assert_book(feed, full)

            await run_feed(feed, sink, body)

    asyncio.run(main())

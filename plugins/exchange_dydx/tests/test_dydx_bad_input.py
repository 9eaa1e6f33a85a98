"""Impossible levels and trades from a local dYdX v4 indexer (issue 18, defects 2 and 3).

The issue found a bid at -3000 and an ask size of ``inf`` published, and trades at price 0. Now a
book message (or snapshot) with a level whose price is not finite and > 0, or whose size is not
finite and >= 0, changes nothing, is counted, and resubscribes that market (unsubscribe, then
subscribe: the indexer's only way to send a fresh snapshot); the next snapshot builds the exact
book. A trades message with an impossible trade is counted and publishes none of its trades.
Frames are the recorded ETH-USD snapshot, batch and trades, with one message changed.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math

import pytest
from latentspeed_exchange_dydx.config import DydxConfig
from latentspeed_exchange_dydx.feed import DydxFeed

from latentspeed_core.testing import async_wait_for

ETH = "ETH-USD"
INF = math.inf


def make(kit, url: str, **cfg):
    feed = DydxFeed(DydxConfig(**{"symbols": [ETH], "ws_url": url, "resubscribe_delay": 0.5, **cfg}))
    feed.protocol_ping_interval = None
    return feed, SaneSink(kit)


class SaneSink:
    """The kit's sink plus a record of every violation of the invariants (never raises: the feed
    would count an exception here as a bad frame and hide the failure)."""

    def __init__(self, kit) -> None:
        self.inner = kit.Sink()
        self.violations: list[str] = []

    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        bids, asks = book.top_bids(len(book)), book.top_asks(len(book))
        bad = [lv for lv in bids + asks if not (0 < lv[0] < INF and 0 < lv[1] < INF)]
        if bad:
            self.violations.append(f"impossible levels published: {bad[:3]}")
        if bids and asks and bids[0][0] >= asks[0][0]:
            self.violations.append(f"crossed book published: {bids[0]} / {asks[0]}")
        self.inner.on_book(feed, symbol, book, timestamp_ns, receipt_ns)

    def on_trade(self, feed, trade) -> None:
        if not (0 < trade.price < INF and 0 < trade.amount < INF):
            self.violations.append(f"impossible trade published: {trade}")
        self.inner.on_trade(feed, trade)


def with_raw(msg: dict, path: tuple, value: str) -> str:
    """``msg`` as JSON with the item at ``path`` replaced by raw JSON text (a bare 1e999 included)."""
    msg = copy.deepcopy(msg)
    node = msg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "@RAW@"
    return json.dumps(msg, separators=(",", ":")).replace('"@RAW@"', value)


def book_update(kit, message_id: int, contents_json: str, batch: bool = False) -> str:
    """A ``v4_orderbook`` data message for ETH-USD, built on the recorded batch frame's envelope."""
    env = kit.frame(kit.BATCH, type="channel_batch_data" if batch else "channel_data", message_id=message_id)
    return with_raw(env, ("contents",), contents_json)


# contents of one book message: the inputs, and relatives (one side valid, the other not)
BAD_UPDATES = [
    '{"bids":[["-3000","1"]]}',
    '{"asks":[["3393.7","inf"]]}',
    '{"bids":[["0","1"]]}',
    '{"asks":[["inf","1"]]}',
    '{"bids":[["3393.2","5"]],"asks":[["3393.7","-2"]]}',
    '{"bids":[["3393.2","NaN"]]}',
    '{"asks":[["1e999","1"]]}',
    '{"bids":[["3393.2","1e999"]]}',
    '{"bids":[[1e999,"1"]]}',  # a bare number: msgspec refuses it, orjson too (the dict path)
    '{"bids":[["3393.2","lots"],["-3000","1"]]}',
]


@pytest.mark.parametrize("contents", BAD_UPDATES)
@pytest.mark.parametrize("batch", [False, True])
def test_impossible_book_update_is_counted_skipped_and_resubscribed(kit, contents, batch):
    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url, trades=False, batched=batch)
            async with kit.running(feed, sink):
                conn = await srv.connection()
                await conn.subscriptions(1)
                await conn.send(kit.frame(kit.SNAPSHOT, message_id=1))
                await async_wait_for(lambda: sink.inner.count(ETH) == 1, 5, "snapshot")
                before = sink.inner.last(ETH)
                # in a batch, a valid content first: nothing of the batch may be applied either
                bad = f'[{{"bids":[["3393.2","99"]]}},{contents}]' if batch else contents
                await conn.ws.send(book_update(kit, 2, bad, batch))
                reqs = await conn.subscriptions(2, timeout=5)
                assert [(r["type"], r["channel"], r["id"]) for r in reqs] == [
                    ("unsubscribe", "v4_orderbook", ETH),
                    ("subscribe", "v4_orderbook", ETH),
                ]
                assert feed.stats.errors == 1 and feed.stats.resyncs == 1 and feed.stats.reconnects == 0
                assert sink.inner.count(ETH) == 1 and sink.inner.last(ETH) == before  # nothing published
                snap = kit.frame(kit.SNAPSHOT, message_id=3)
                await conn.send(snap)
                await async_wait_for(lambda: sink.inner.count(ETH) == 2, 5, "book after the resubscribe")
                ref = kit.RefBook()
                ref.apply(snap)
                assert sink.inner.last(ETH) == ref.levels()  # exact again
                assert sink.violations == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("contents", "bids", 0, "price"), '"-3000"'),
        (("contents", "asks", 5, "size"), '"inf"'),
        (("contents", "bids", 99, "price"), '"0"'),
        (("contents", "asks", 0, "price"), "1e999"),  # bare: the dict path
    ],
)
def test_impossible_snapshot_is_counted_and_resubscribed(kit, path, value):
    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url, trades=False)
            async with kit.running(feed, sink):
                conn = await srv.connection()
                await conn.subscriptions(1)
                snap = kit.frame(kit.SNAPSHOT, message_id=1, connection_id=conn.connection_id)
                await conn.ws.send(with_raw(snap, path, value))
                reqs = await conn.subscriptions(2, timeout=5)
                assert [(r["type"], r["channel"]) for r in reqs] == [
                    ("unsubscribe", "v4_orderbook"),
                    ("subscribe", "v4_orderbook"),
                ]
                assert feed.stats.errors == 1 and feed.stats.resyncs == 1
                assert sink.inner.count(ETH) == 0
                good = kit.frame(kit.SNAPSHOT, message_id=2)
                await conn.send(good)
                await async_wait_for(lambda: sink.inner.count(ETH) == 1, 5, "book after the resubscribe")
                ref = kit.RefBook()
                ref.apply(good)
                assert sink.inner.last(ETH) == ref.levels()
                assert sink.violations == []

    asyncio.run(scenario())


# (field, value text) of the second recorded trade: the price 0, and relatives
BAD_TRADES = [
    ("price", '"0"'),
    ("price", '"-5"'),
    ("price", '"NaN"'),
    ("price", '"inf"'),
    ("price", '"1e999"'),
    ("size", '"0"'),
    ("size", '"-2"'),
    ("size", '"Infinity"'),
    ("price", "1e999"),
]


def test_impossible_trades_are_counted_and_not_published(kit):
    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url)
            async with kit.running(feed, sink):
                conn = await srv.connection()
                await conn.subscriptions(2)
                await conn.send(kit.frame(kit.SNAPSHOT, message_id=1))
                trades = kit.load_frame(kit.TRADES)
                for i, (field, value) in enumerate(BAD_TRADES):
                    msg = dict(trades, message_id=10 + i, connection_id=conn.connection_id)
                    await conn.ws.send(with_raw(msg, ("contents", "trades", 1, field), value))
                batch = dict(
                    trades, type="channel_batch_data", message_id=30, connection_id=conn.connection_id
                )
                batch["contents"] = [trades["contents"], copy.deepcopy(trades["contents"])]
                await conn.ws.send(with_raw(batch, ("contents", 1, "trades", 0, "price"), '"0"'))
                await conn.send(dict(trades, message_id=40))
                await async_wait_for(lambda: len(sink.inner.trades) == 2, 5, "the good trades")
                assert feed.stats.errors == len(BAD_TRADES) + 1  # each bad message once, the batch whole
                assert feed.stats.trades == 2 and feed.stats.resyncs == 0
                assert [t.trade_id for t in sink.inner.trades] == [
                    t["id"] for t in trades["contents"]["trades"]
                ]
                assert sink.violations == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "bad", [(-3000.0, 1.0), (3393.7, INF), (0.0, 1.0), (3393.2, math.nan), (3393.2, -2.0)]
)
def test_offset_book_checks_the_whole_message_on_every_path(kit, bad):
    """In order, out of order, held before the snapshot, or a snapshot: nothing of a message with an
    impossible level is applied or held."""
    from latentspeed_exchange_dydx.book import OffsetBook

    book = OffsetBook(ETH)
    with pytest.raises(ValueError):
        book.apply([(3393.2, 5.0)], [bad], 3)  # before the snapshot: not held
    assert book.pending == []
    snap = kit.load_frame(kit.SNAPSHOT)["contents"]
    bids = [(float(lv["price"]), float(lv["size"])) for lv in snap["bids"]]
    asks = [(float(lv["price"]), float(lv["size"])) for lv in snap["asks"]]
    with pytest.raises(ValueError):
        book.snapshot(bids, [*asks, bad], 5)
    assert not book.ready and len(book.book) == 0
    book.snapshot(bids, asks, 5)
    before = (book.book.top_bids(1000), book.book.top_asks(1000), dict(book.bid_off), book.newest)
    for offset in (6, 4):  # in order (one call for both sides), and out of order (level by level)
        with pytest.raises(ValueError):
            book.apply([(3393.2, 5.0), (3300.0, 1.0)], [(3393.6, 1.0), bad], offset)
        assert (book.book.top_bids(1000), book.book.top_asks(1000), dict(book.bid_off), book.newest) == before


def test_a_snapshot_crossed_by_thousands_of_levels_is_garbage_not_a_long_uncross(kit):
    """Found by fuzzing: bids 2000.0, 2001.0, ... against asks 1000.00, 1000.01, ... took 16 s to
    uncross level by level at 200k levels. Beyond MAX_UNCROSS it is counted and resubscribed."""
    import time

    from latentspeed_exchange_dydx.book import MAX_UNCROSS

    n = 3 * MAX_UNCROSS
    snap = kit.frame(kit.SNAPSHOT, message_id=1)
    snap["contents"]["bids"] = [{"price": f"{2000 + i}.0", "size": "1.5"} for i in range(n)]
    snap["contents"]["asks"] = [{"price": f"{1000 + i / 100:.2f}", "size": "1.5"} for i in range(n)]

    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url, trades=False)
            async with kit.running(feed, sink):
                conn = await srv.connection()
                await conn.subscriptions(1)
                t0 = time.process_time()
                await conn.send({**snap, "connection_id": conn.connection_id})
                reqs = await conn.subscriptions(2, timeout=20)
                assert [r["type"] for r in reqs] == ["unsubscribe", "subscribe"]
                assert time.process_time() - t0 < 10  # bounded work, not minutes (CPU time: load-proof)
                assert feed.stats.errors == 1 and feed.stats.resyncs == 1
                assert sink.inner.count(ETH) == 0 and sink.violations == []
                good = kit.frame(kit.SNAPSHOT, message_id=2)
                await conn.send(good)
                await async_wait_for(lambda: sink.inner.count(ETH) == 1, 5, "book after the resubscribe")

    asyncio.run(scenario())

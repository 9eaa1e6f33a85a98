"""Impossible levels and trades from a local dYdX v4 indexer, where dYdX differs from every venue.

A book message (or snapshot) with a level no book can hold is counted, changes nothing, and
resubscribes that market; a trades message with an impossible trade is counted and publishes none of
its trades. The conformance suite (test_dydx_conformance.py) checks that for single messages; here:
a ``channel_batch_data`` with one bad content applies and publishes nothing of the batch, a trades
batch with one bad trade publishes none, the offset book refuses such a message on every path, and a
snapshot crossed by thousands of levels is garbage rather than a long uncross.
"""

from __future__ import annotations

import asyncio
import copy
import math

import pytest
from latentspeed_exchange_dydx.config import DydxConfig
from latentspeed_exchange_dydx.feed import DydxFeed

from latentspeed_core.testing import async_wait_for, with_raw

ETH = "ETH-USD"
INF = math.inf


def make(kit, url: str, **cfg):
    feed = DydxFeed(DydxConfig(**{"symbols": [ETH], "ws_url": url, "resubscribe_delay": 0.5, **cfg}))
    feed.protocol_ping_interval = None
    return feed, kit.Sink()


def book_update(kit, message_id: int, contents_json: str) -> str:
    """A ``channel_batch_data`` for ETH-USD's book, on the recorded batch frame's envelope."""
    env = kit.frame(kit.BATCH, message_id=message_id)
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
def test_a_batch_with_one_impossible_content_is_counted_skipped_and_resubscribed(kit, contents):
    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url, trades=False, batched=True)
            async with kit.running(feed, sink):
                conn = await srv.connection()
                await conn.subscriptions(1)
                await conn.send(kit.frame(kit.SNAPSHOT, message_id=1))
                await async_wait_for(lambda: sink.count(ETH) == 1, 5, "snapshot")
                before = sink.last(ETH)
                # a valid content first: nothing of the batch may be applied either
                await conn.send_raw(book_update(kit, 2, f'[{{"bids":[["3393.2","99"]]}},{contents}]'))
                reqs = await conn.subscriptions(2, timeout=5)
                assert [(r["type"], r["channel"], r["id"]) for r in reqs] == [
                    ("unsubscribe", "v4_orderbook", ETH),
                    ("subscribe", "v4_orderbook", ETH),
                ]
                assert feed.stats.errors == 1 and feed.stats.resyncs == 1 and feed.stats.reconnects == 0
                assert sink.count(ETH) == 1 and sink.last(ETH) == before  # nothing published
                snap = kit.frame(kit.SNAPSHOT, message_id=3)
                await conn.send(snap)
                await async_wait_for(lambda: sink.count(ETH) == 2, 5, "book after the resubscribe")
                ref = kit.RefBook()
                ref.apply_message(snap)
                assert sink.last(ETH) == ref.levels()  # exact again
                assert sink.violations == []

    asyncio.run(scenario())


def test_a_trades_batch_with_one_impossible_trade_publishes_none_of_it(kit):
    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url)
            async with kit.running(feed, sink):
                conn = await srv.connection()
                await conn.subscriptions(2)
                await conn.send(kit.frame(kit.SNAPSHOT, message_id=1))
                trades = kit.load_frame(kit.TRADES)
                batch = dict(
                    trades, type="channel_batch_data", message_id=30, connection_id=conn.connection_id
                )
                batch["contents"] = [trades["contents"], copy.deepcopy(trades["contents"])]
                await conn.send_raw(with_raw(batch, ("contents", 1, "trades", 0, "price"), '"0"'))
                await conn.send(dict(trades, message_id=40))
                await async_wait_for(lambda: len(sink.trades) == 2, 5, "the good trades")
                assert feed.stats.errors == 1  # the batch, whole
                assert feed.stats.trades == 2 and feed.stats.resyncs == 0
                assert [t.trade_id for t in sink.trades] == [t["id"] for t in trades["contents"]["trades"]]
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
                assert sink.count(ETH) == 0 and sink.violations == []
                good = kit.frame(kit.SNAPSHOT, message_id=2)
                await conn.send(good)
                await async_wait_for(lambda: sink.count(ETH) == 1, 5, "book after the resubscribe")

    asyncio.run(scenario())

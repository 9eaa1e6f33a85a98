"""Impossible levels and trades from a local Bybit v5 server (issue 18, defects 2 and 3).

The issue found that after a snapshot the deltas ``[["1.94","inf"]]``, ``[["-5","3"]]``,
``[["0","3"]]`` and asks ``[["inf","3"]]`` were all published with errors 0 and resyncs 0. Now such
a message is malformed: counted, nothing of it published, and the symbol resubscribed for a fresh
snapshot (Bybit's only way to rebuild a book), after which the book equals the reference again.
Trades with an impossible price or size are counted and not published. Sessions are the recorded
XRPUSDT orderbook.500 frames with one message replaced.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math

import pytest
from bybit_testkit import (
    AWAIT_RESUB,
    BybitServer,
    Collector,
    book_levels,
    load_frame,
    load_session,
    reference,
)
from latentspeed_exchange_bybit.config import BybitConfig
from latentspeed_exchange_bybit.feed import BybitFeed

from latentspeed_core.testing import async_wait_for

SYM = "XRP-USDT"
TOPIC = "orderbook.500.XRPUSDT"
FRAMES = load_session()
LAST_U = FRAMES[-1]["data"]["u"]
EXPECTED = reference(FRAMES).levels()
INF = math.inf


class SaneSink(Collector):
    """Records what was published and every violation of the invariants (never raises: the feed
    would count an exception here as a bad frame and hide the failure)."""

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
        super().on_book(feed, symbol, book, timestamp_ns, receipt_ns)

    def on_trade(self, feed, trade) -> None:
        if not (0 < trade.price < INF and 0 < trade.amount < INF):
            self.violations.append(f"impossible trade published: {trade}")
        super().on_trade(feed, trade)


def snapshot_at(i: int) -> dict:
    """The snapshot Bybit would send on resubscribe for the state after recorded frame ``i``."""
    return reference(FRAMES[: i + 1]).snapshot_frame(TOPIC, "XRPUSDT", FRAMES[i]["ts"])


def raw(frame: dict, side: str, levels: str) -> str:
    """``frame`` as sent, with ``data[side]`` replaced by raw JSON ``levels`` (bare 1e999 included)."""
    msg = copy.deepcopy(frame)
    msg["data"][side] = "@LEVELS@"
    return json.dumps(msg, separators=(",", ":")).replace('"@LEVELS@"', levels)


def xrp_trade() -> dict:
    """The recorded linear publicTrade frame (3 trades), moved to XRPUSDT for this session."""
    msg = load_frame("unattributed/ws_linear_publicTrade_btcusdt_3trades_2023-10-06_A.json")
    return json.loads(json.dumps(msg).replace("BTCUSDT", "XRPUSDT"))


async def run_feed(server: BybitServer, until, timeout: float = 10.0) -> tuple[BybitFeed, SaneSink]:
    config = BybitConfig.model_validate(
        {"exchange": "bybit", "symbols": [SYM], "depth": 500, "ws_url": server.url}
    )
    feed = BybitFeed(config)
    feed.backoff_initial = 0.05
    sink = SaneSink()
    task = asyncio.create_task(feed.run(sink))
    try:
        await async_wait_for(
            lambda: task.done() or until(feed, sink), timeout, "the scripted session to finish"
        )
        if task.done():
            task.result()  # surface a crash
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
    return feed, sink


def finished(feed: BybitFeed, sink: SaneSink) -> bool:
    return feed.books[SYM].last_u == LAST_U


# (side, levels): the deltas first; the other side keeps the recorded frame's real levels
BAD_DELTAS = [
    ("b", '[["1.94","inf"]]'),
    ("b", '[["-5","3"]]'),
    ("b", '[["0","3"]]'),
    ("a", '[["inf","3"]]'),
    ("a", '[["1.9600","10"],["1e999","3"]]'),
    ("b", '[["1.9500","1e999"]]'),
    ("b", '[["1.9500","-2"]]'),
    ("a", '[["1.9600","NaN"]]'),
    ("b", '[["1.9531","7"],[-5,3]]'),  # bare numbers
    ("a", "[[1e999,3]]"),
]


@pytest.mark.parametrize(("side", "levels"), BAD_DELTAS)
def test_impossible_delta_is_counted_skipped_and_resubscribed(side, levels):
    k = 10

    async def main():
        script = [*FRAMES[:k], raw(FRAMES[k], side, levels), AWAIT_RESUB, snapshot_at(k), *FRAMES[k + 1 :]]
        server = await BybitServer([script]).start()
        feed, sink = await run_feed(server, finished)
        assert feed.stats.errors == 1 and feed.stats.resyncs == 1 and feed.stats.reconnects == 0
        ops = [(m["op"], m.get("args")) for m in server.received[0] if m["op"] != "ping"]
        assert ops[-2:] == [("unsubscribe", [TOPIC]), ("subscribe", [TOPIC])]  # resubscribed
        assert sink.violations == []
        assert len(sink.books) == k + 1 + len(FRAMES[k + 1 :])  # nothing published from the bad delta
        assert book_levels(feed.books[SYM].book) == EXPECTED  # exact again

    asyncio.run(main())


@pytest.mark.parametrize("levels", ['[["inf","3"]]', '[["1.9532","10480"],["0","3"]]', "[[1e999,3]]"])
def test_impossible_snapshot_is_counted_and_resubscribed(levels):
    async def main():
        script = [raw(FRAMES[0], "a", levels), AWAIT_RESUB, *FRAMES]
        server = await BybitServer([script]).start()
        feed, sink = await run_feed(server, finished)
        assert feed.stats.errors == 1 and feed.stats.resyncs == 1
        assert sink.violations == []
        assert len(sink.books) == len(FRAMES)  # the refused snapshot was not published
        assert book_levels(feed.books[SYM].book) == EXPECTED

    asyncio.run(main())


# (field, value text) for the second trade of the recorded 3-trade frame: the inputs
BAD_TRADES = [
    ("p", '"NaN"'),
    ("p", '"inf"'),
    ("p", '"-5"'),
    ("p", '"0"'),
    ("p", '"1e999"'),
    ("v", '"-2"'),
    ("v", '"0"'),
    ("v", '"Infinity"'),
    ("p", "-5"),
]


def bad_trade_frame(field: str, value: str) -> str:
    msg = xrp_trade()
    msg["data"][1][field] = "@V@"
    return json.dumps(msg, separators=(",", ":")).replace('"@V@"', value)


def test_impossible_trades_are_counted_and_not_published():
    async def main():
        bad = [bad_trade_frame(f, v) for f, v in BAD_TRADES]
        server = await BybitServer([[*FRAMES[:5], *bad, *FRAMES[5:], xrp_trade()]]).start()
        feed, sink = await run_feed(server, lambda f, s: finished(f, s) and len(s.trades) == 3)
        assert feed.stats.errors == len(BAD_TRADES)  # each bad frame counted, none of its trades published
        assert feed.stats.trades == 3 and feed.stats.resyncs == 0
        assert sink.violations == []
        assert book_levels(feed.books[SYM].book) == EXPECTED

    asyncio.run(main())

"""The Bybit feed's own connection rules against a loopback Bybit, through ws_url as live: the
post-restart snapshot, keepalive pings and pongs, silence, spot's subscribe batching, a resubscribe
that brings no snapshot or is refused, and a recorded capture replaying.

What every feed must do (the book against the reference, a cut, a gap, malformed frames, impossible
levels and trades) is in test_bybit_conformance.py. Each scenario here is a scripted session built
from the recorded XRPUSDT orderbook.500 session: the final book must equal the reference, level by level.
"""

from __future__ import annotations

import asyncio
import copy
import json

from bybit_testkit import (
    BybitServer,
    load_frame,
    load_session,
    reference,
    snapshot_frame,
    xrp_trade,
)
from latentspeed_exchange_bybit.config import BybitConfig
from latentspeed_exchange_bybit.feed import BybitFeed

from latentspeed_core.testing import AWAIT_RESYNC, CUT, SILENT, RecordingSink, async_wait_for, book_levels

SYM = "XRP-USDT"
TOPIC = "orderbook.500.XRPUSDT"
FRAMES = load_session()
LAST_U = FRAMES[-1]["data"]["u"]
EXPECTED = reference(FRAMES).levels()


def snapshot_at(i: int, u: int | None = None) -> dict:
    """The snapshot Bybit would send for the state after recorded frame ``i``."""
    return snapshot_frame(reference(FRAMES[: i + 1]), TOPIC, "XRPUSDT", FRAMES[i]["ts"], u)


async def run_feed(
    server: BybitServer, until, timeout: float = 10.0, **cfg
) -> tuple[BybitFeed, RecordingSink]:
    config = BybitConfig.model_validate(
        {"exchange": "bybit", "symbols": [SYM], "depth": 500, "ws_url": server.url, **cfg}
    )
    feed = BybitFeed(config)
    feed.backoff_initial = 0.05  # reconnect fast in tests
    sink = RecordingSink()
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


def finished(feed: BybitFeed, sink: RecordingSink) -> bool:
    return feed.books[SYM].last_u == LAST_U


def scenario(coro):
    return asyncio.run(coro)


def test_u1_restart_snapshot_overwrites():
    async def main():
        renumbered = copy.deepcopy(FRAMES[11:])
        for i, f in enumerate(renumbered):
            f["data"]["u"] = 2 + i
        script = [*FRAMES[:6], snapshot_at(10, u=1), *renumbered]
        server = await BybitServer([script]).start()
        last = renumbered[-1]["data"]["u"]
        feed, _ = await run_feed(server, lambda f, s: f.books[SYM].last_u == last)
        assert feed.stats.resyncs == 0 and feed.stats.errors == 0
        assert book_levels(feed.books[SYM].book) == EXPECTED

    scenario(main())


def test_missed_pong_reconnects():
    async def main():
        first = [*FRAMES[:6], SILENT]  # the server goes quiet: no data, no pongs
        second = [snapshot_at(5), *FRAMES[6:]]
        server = await BybitServer([first, second]).start()
        feed, _ = await run_feed(server, finished, ping_interval=0.1, silence_timeout=30)
        assert "no pong" in feed.last_reconnect_cause
        assert feed.stats.reconnects == 1
        assert sum(m["op"] == "ping" for m in server.received[0]) >= 1
        assert book_levels(feed.books[SYM].book) == EXPECTED

    scenario(main())


def test_silent_connection_reconnects():
    async def main():
        first = [*FRAMES[:6], SILENT]
        second = [snapshot_at(5), *FRAMES[6:]]
        server = await BybitServer([first, second]).start()
        feed, _ = await run_feed(server, finished, ping_interval=30, silence_timeout=0.3)
        assert feed.last_reconnect_cause.startswith("silent for")
        assert feed.stats.reconnects == 1
        assert book_levels(feed.books[SYM].book) == EXPECTED

    scenario(main())


def test_pings_are_answered_and_keep_the_connection():
    async def main():
        server = await BybitServer([[*FRAMES[:3]]]).start()
        feed, _ = await run_feed(server, lambda f, s: f.pongs >= 3, ping_interval=0.05, silence_timeout=5)
        assert feed.stats.reconnects == 0 and feed.stats.errors == 0
        assert {m["op"] for m in server.received[0]} == {"subscribe", "ping"}

    scenario(main())


def test_spot_many_symbols_batched_within_args_limit():
    async def main():
        symbols = ["BTC-USDT"] + [f"C{i}-USDT" for i in range(11)]
        snap = load_frame("derived/tardis_spot_04_orderbook_50_BTCUSDT_snapshot.json")
        delta = load_frame("derived/tardis_spot_05_orderbook_50_BTCUSDT_delta.json")
        trade = load_frame("ws_spot_publicTrade_btcusdt_2023_bbgo.json")
        server = await BybitServer([[snap, delta, trade]], market="spot").start()
        config = BybitConfig(symbols=symbols, market="spot", ws_url=server.url)
        feed = BybitFeed(config)
        sink = RecordingSink()
        task = asyncio.create_task(feed.run(sink))
        try:
            await async_wait_for(lambda: len(sink.trades) == 1 and feed.books["BTC-USDT"].last_u == 59438061)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()
        subs = [m for m in server.received[0] if m["op"] == "subscribe"]
        assert [len(m["args"]) for m in subs] == [10, 10, 4]  # spot: at most 10 args per request
        assert feed.acks == 3 and feed.stats.errors == 0
        assert book_levels(feed.books["BTC-USDT"].book) == reference([snap, delta]).levels()
        assert sink.trades[0].side == "sell" and sink.trades[0].symbol == "BTC-USDT"

    scenario(main())


def test_spot_server_refuses_oversized_subscribe():
    """The local server enforces the spot limit, so the batching test above can fail."""

    async def main():
        server = await BybitServer([[]], market="spot").start()
        config = BybitConfig(symbols=[f"C{i}-USDT" for i in range(6)], market="spot", ws_url=server.url)
        feed = BybitFeed(config)
        feed.subscribe_messages = lambda: [
            json.dumps({"op": "subscribe", "args": [f"orderbook.50.C{i}USDT" for i in range(11)]})
        ]
        task = asyncio.create_task(feed.run(RecordingSink()))
        try:
            await async_wait_for(lambda: feed.stats.errors == 1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()

    scenario(main())


def test_recorded_capture_replays_to_the_same_books(tmp_path):
    """Record a live session with a gap and a dropped connection, then replay it offline."""
    from latentspeed_core.capture import Recorder

    async def main():
        first = [*FRAMES[:8], *FRAMES[9:11], AWAIT_RESYNC, snapshot_at(10), *FRAMES[11:16], CUT]
        second = [snapshot_at(15), *FRAMES[16:], xrp_trade()]
        server = await BybitServer([first, second]).start()
        path = tmp_path / "bybit.capture.gz"
        recorder = Recorder(path, feeds=["bybit"])
        config = BybitConfig(symbols=[SYM], depth=500, ws_url=server.url)
        live = BybitFeed(config)
        live.backoff_initial = 0.05
        live.recorder = recorder
        live_sink = RecordingSink()
        task = asyncio.create_task(live.run(live_sink))
        try:
            await async_wait_for(lambda: finished(live, live_sink) and len(live_sink.trades) == 3)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()
            recorder.close()
        assert live.stats.resyncs == 1 and live.stats.reconnects == 1
        assert len(server.connections) == 2

        replayed = BybitFeed(config.model_copy(update={"replay": str(path)}))
        sink = RecordingSink()
        await replayed.run(sink)  # returns at the end of the capture
        assert book_levels(replayed.books[SYM].book) == EXPECTED == book_levels(live.books[SYM].book)
        assert sink.books == live_sink.books  # same books, same timestamps, same receipt times
        assert [t.trade_id for t in sink.trades] == [t.trade_id for t in live_sink.trades]
        assert replayed.stats.resyncs == 1 and replayed.stats.errors == 0

    scenario(main())


def test_resubscribe_without_snapshot_reconnects():
    async def main():
        first = [*FRAMES[:6], *FRAMES[7:9]]  # gap at frame 6; the resubscribe brings no snapshot
        second = [snapshot_at(8), *FRAMES[9:]]
        server = await BybitServer([first, second]).start()
        feed, _ = await run_feed(server, finished, ping_interval=0.3, resync_timeout=0.2)
        assert feed.stats.resyncs == 1 and feed.stats.reconnects == 1
        assert feed.last_reconnect_cause.startswith("no snapshot for XRP-USDT")
        assert book_levels(feed.books[SYM].book) == EXPECTED

    scenario(main())


def test_refused_resubscribe_reconnects():
    async def main():
        first = [*FRAMES[:6], *FRAMES[7:9]]
        second = [snapshot_at(8), *FRAMES[9:]]
        server = await BybitServer([first, second], refuse_resubscribe=True).start()
        feed, _ = await run_feed(server, finished)
        assert feed.stats.resyncs == 1 and feed.stats.reconnects == 1
        assert feed.last_reconnect_cause.startswith("resubscribe refused for XRPUSDT")
        assert feed.stats.errors == 1  # the refusal itself
        assert book_levels(feed.books[SYM].book) == EXPECTED

    scenario(main())

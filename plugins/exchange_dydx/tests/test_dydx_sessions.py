"""The dYdX feed's own rules against a loopback indexer, through ``ws_url`` as against the venue: the
heartbeat, batched subscriptions, out-of-order ``subscribed``, the offsets rule, the indexer's error
messages, silence, and a recorded capture replaying.

What every feed must do (the book against the reference, a cut, malformed frames, impossible levels
and trades) is in test_dydx_conformance.py. Each scenario is a script on the server side, built from
the recorded frames; the feed runs its real connection and the assertions read what it published.
"""

from __future__ import annotations

import asyncio
import json

from latentspeed_exchange_dydx.config import DydxConfig
from latentspeed_exchange_dydx.feed import DydxFeed

from latentspeed_core.testing import async_wait_for

ETH = "ETH-USD"


def make(kit, url: str, **cfg):
    feed = DydxFeed(DydxConfig(**{"symbols": [ETH], "ws_url": url, "resubscribe_delay": 0.5, **cfg}))
    return feed, kit.Sink()


async def subscribe_all(conn, n: int = 2) -> dict[str, dict]:
    """Read the client's ``n`` subscribe requests, keyed by channel."""
    reqs = await conn.subscriptions(n)
    assert all(r["type"] == "subscribe" and r["id"] == ETH for r in reqs)
    return {r["channel"]: r for r in reqs}


def test_the_indexers_heartbeat_pings_are_answered(kit):
    """The indexer's heartbeat is a ping control frame every 30 s: unanswered, it drops the connection."""

    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url)
            async with running_feed(kit, feed, sink):
                conn = await srv.connection()
                subs = await subscribe_all(conn)
                assert subs["v4_orderbook"]["batched"] is False and set(subs) == {"v4_orderbook", "v4_trades"}
                pong = await conn.ws.ping()
                await asyncio.wait_for(pong, 5)
                assert feed.stats.reconnects == 0

    asyncio.run(scenario())


def test_batched_contents_make_one_emission_per_batch(kit):
    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url, batched=True, trades=False)
            async with running_feed(kit, feed, sink):
                conn = await srv.connection()
                subs = await subscribe_all(conn, 1)
                assert subs["v4_orderbook"]["batched"] is True
                ref = kit.RefBook()
                for msg in (kit.frame(kit.SNAPSHOT, message_id=1), kit.frame(kit.BATCH, message_id=2)):
                    await conn.send(msg)
                    ref.apply_message(msg)
                await async_wait_for(lambda: sink.count(ETH) == 2, 5, "snapshot + batch")
                await conn.send(kit.frame(kit.BATCH, message_id=3))  # the same batch again: idempotent sizes
                ref.apply_message(kit.frame(kit.BATCH, message_id=3))
                await async_wait_for(lambda: sink.count(ETH) == 3, 5, "second batch")
                assert sink.last(ETH) == ref.levels() and sink.violations == []

    asyncio.run(scenario())


def test_out_of_order_subscribed_keeps_newer_updates_and_drops_stale_ones(kit):
    """channel_data with message_id 7 and 2 arrive before the ``subscribed`` with id 5: the
    newer update applies on top of the snapshot, the older one is stale; nothing is published
    before the snapshot."""

    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url, trades=False)
            async with running_feed(kit, feed, sink):
                conn = await srv.connection()
                await subscribe_all(conn, 1)
                newer = kit.frame(kit.BATCH, type="channel_data", message_id=7,
                                  contents={"bids": [["3393.2", "0"]], "asks": [["3393.7", "1.5"]]})  # fmt: skip
                stale = kit.frame(kit.BATCH, type="channel_data", message_id=2,
                                  contents={"asks": [["3393.5", "0"]], "bids": [["3393.1", "99"]]})  # fmt: skip
                await conn.send(newer)
                await conn.send(stale)
                await conn.send(kit.frame(kit.SNAPSHOT, message_id=5))
                await async_wait_for(lambda: sink.count(ETH) == 1, 5, "snapshot")
                bids, asks = sink.last(ETH)
                assert bids[:2] == [(3393.1, 10.59), (3393.0, 20.189)]  # 3393.2 deleted by id 7
                assert asks[:3] == [(3393.5, 4.946), (3393.6, 7.856), (3393.7, 1.5)]
                assert len(bids) == 99 and len(asks) == 100
                assert feed.books[ETH].stale == 2  # both levels of the id-2 message

    asyncio.run(scenario())


def test_crossed_book_is_resolved_by_the_offsets_rule(kit):
    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url, trades=False)
            async with running_feed(kit, feed, sink):
                conn = await srv.connection()
                await subscribe_all(conn, 1)
                await conn.send(kit.frame(kit.SNAPSHOT, message_id=1))
                # a newer ask at 3393.1 crosses the older bids 3393.2 and 3393.1: those bids go
                await conn.send(kit.frame(kit.BATCH, type="channel_data", message_id=5,
                                          contents={"asks": [["3393.1", "0.5"]]}))  # fmt: skip
                await async_wait_for(lambda: sink.count(ETH) == 2, 5, "first cross")
                bids, asks = sink.last(ETH)
                assert bids[0] == (3393.0, 20.189) and asks[0] == (3393.1, 0.5)
                # a newer bid at 3393.6 crosses asks 3393.1 (id 5) .. 3393.6 (id 1): all go
                await conn.send(kit.frame(kit.BATCH, type="channel_data", message_id=6,
                                          contents={"bids": [["3393.6", "2"]]}))  # fmt: skip
                await async_wait_for(lambda: sink.count(ETH) == 3, 5, "second cross")
                bids, asks = sink.last(ETH)
                assert bids[0] == (3393.6, 2.0) and asks[0] == (3393.7, 30.983)
                assert sink.violations == [] and feed.books[ETH].uncrossed == 2 + 3

    asyncio.run(scenario())


def test_error_for_a_subscription_resubscribes(kit):
    """The recorded (older-format) error names only the channel; a current one names channel and id."""

    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url)
            async with running_feed(kit, feed, sink):
                conn = await srv.connection()
                await subscribe_all(conn)
                await conn.send(kit.frame(kit.ERROR, message_id=1))
                await conn.send({"type": "error", "message": "Internal error, could not fetch data for subscription: v4_trades.",
                                 "channel": "v4_trades", "id": ETH})  # fmt: skip
                again = await conn.subscriptions(2, timeout=5)
                assert {(r["type"], r["channel"], r["id"]) for r in again} == {
                    ("subscribe", "v4_orderbook", ETH), ("subscribe", "v4_trades", ETH),
                }  # fmt: skip
                await conn.send(kit.frame(kit.SNAPSHOT, message_id=None))
                await async_wait_for(lambda: sink.count(ETH) == 1, 5, "snapshot after resubscribe")
                assert feed.stats.reconnects == 0
                assert feed.subscriptions[("v4_orderbook", ETH)] == "subscribed"

    asyncio.run(scenario())


def test_silence_reconnects(kit):
    async def scenario():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url, trades=False, silence_timeout=0.4)
            async with running_feed(kit, feed, sink):
                conn = await srv.connection()
                await subscribe_all(conn, 1)
                await conn.send(kit.frame(kit.SNAPSHOT, message_id=1))
                # ... and then nothing: the feed must give up on this connection
                conn2 = await srv.connection(timeout=5)
                assert "silent" in feed.last_reconnect_cause and feed.stats.reconnects == 1
                await subscribe_all(conn2, 1)
                assert not feed.books[ETH].ready  # no stale book survives into the new connection
                await conn2.send(kit.frame(kit.SNAPSHOT, message_id=1))
                await async_wait_for(lambda: sink.count(ETH) == 2, 5, "book on the new connection")

    asyncio.run(scenario())


def running_feed(kit, feed, sink):
    feed.protocol_ping_interval = None
    return kit.running(feed, sink)


def test_subscribe_requests_are_json(kit):
    feed = DydxFeed(DydxConfig(symbols=[ETH]))
    assert all(json.loads(m)["type"] == "subscribe" for m in feed.subscribe_messages())


def test_a_recorded_capture_replays_to_the_same_books(kit, tmp_path):
    """Record a live session (with a reconnect in it), replay the capture: same books, same trades."""
    from latentspeed_core.capture import Recorder

    path = tmp_path / "dydx.jsonl.gz"

    async def live():
        async with kit.IndexerServer() as srv:
            feed, sink = make(kit, srv.url)
            feed.recorder = Recorder(path, feeds=[feed.name])
            async with running_feed(kit, feed, sink):
                conn = await srv.connection()
                await subscribe_all(conn)
                await conn.send(kit.frame(kit.SNAPSHOT, message_id=1))
                for msg in kit.unbatch(kit.load_frame(kit.BATCH), first_id=2)[:10]:
                    await conn.send(msg)
                await conn.send(kit.frame(kit.TRADES, message_id=50))
                await async_wait_for(
                    lambda: sink.count(ETH) == 11 and len(sink.trades) == 2, 5, "first connection"
                )
                await conn.close()
                conn2 = await srv.connection()
                await subscribe_all(conn2)
                for msg in kit.load_session()[1:]:
                    await conn2.send(msg)
                await async_wait_for(lambda: sink.count(ETH) == 13, 5, "second connection")
            feed.recorder.close()
            return sink

    recorded = asyncio.run(live())
    replay_feed = DydxFeed(DydxConfig(symbols=[ETH], replay=str(path)))
    replayed = kit.Sink()
    asyncio.run(replay_feed.run(replayed))
    assert replayed.books == recorded.books
    assert replayed.trades == recorded.trades
    assert replay_feed.stats.errors == 0

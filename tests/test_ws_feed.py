"""WsFeed against a real websockets server (and an HTTP server) on loopback: the core test kit's
LoopbackWsServer, playing a script per connection, and LoopbackRestServer."""

from __future__ import annotations

import asyncio
import time

from latentspeed_core.config import FeedConfig
from latentspeed_core.testing import LoopbackRestServer, LoopbackWsServer, async_wait_for
from latentspeed_core.ws import WsFeed


class WsTestConfig(FeedConfig):
    ws_url: str = ""


class RecFeed(WsFeed):
    exchange = "TEST"
    backoff_initial = 0.01
    backoff_max = 0.05
    protocol_ping_interval = None

    def __init__(self, config, subs=(), ping=None):
        super().__init__(config)
        self.subs = list(subs)
        self.ping = ping
        self.connects = 0
        self.frames: list[tuple[str, int]] = []
        self.rest: list[tuple[str, bytes]] = []

    def subscribe_messages(self):
        return list(self.subs)

    def ping_message(self):
        return self.ping

    def on_connect(self):
        self.connects += 1

    def on_frame(self, data, receipt_ns):
        if data == "boom":
            raise ValueError("bad frame")
        self.frames.append((data, receipt_ns))

    def on_rest(self, key, body, receipt_ns):
        self.rest.append((key, body))


async def run_feed(feed, body):
    task = asyncio.create_task(feed.run(sink=None))
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_subscribe_frames_and_reconnect_after_drop():
    async def script(conn):
        await async_wait_for(lambda: len(conn.received) >= 2, 5, "subscribes")
        await conn.send(f"hello{conn.number}")
        if conn.number == 1:
            await conn.send("boom")  # a bad frame is counted and skipped, not fatal
            await conn.close()  # the server drops the connection

    async def main():
        async with LoopbackWsServer(script) as srv:
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url), subs=["s1", "s2"])

            async def body():
                before = time.time_ns()
                await async_wait_for(lambda: [f for f, _ in feed.frames] == ["hello1", "hello2"], 5, "frames")
                assert feed.frames[0][1] >= before
                assert feed.connects == 2 and feed.connections == 2
                assert feed.stats.reconnects == 1
                assert feed.stats.errors == 1
                assert "closed" in feed.last_reconnect_cause
                assert [c.received for c in srv.connections] == [["s1", "s2"], ["s1", "s2"]]

            await run_feed(feed, body)

    asyncio.run(main())


def test_silence_timeout_reconnects():
    async def main():
        async with LoopbackWsServer([["only"]]) as srv:  # then silence, while the TCP connection stays up
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url))
            feed.silence_timeout = 0.2

            async def body():
                await async_wait_for(lambda: feed.connections >= 2, 5, "reconnect after silence")
                assert feed.stats.reconnects >= 1
                assert feed.last_reconnect_cause.startswith("silent for")

            await run_feed(feed, body)

    asyncio.run(main())


def test_app_ping_sent_and_rate_limited():
    async def main():
        async with LoopbackWsServer() as srv:
            feed = RecFeed(
                WsTestConfig(exchange="t", ws_url=srv.url), subs=[f"s{i}" for i in range(6)], ping="PING"
            )
            feed.ping_interval = 0.05
            feed.subscribe_rate = 20.0  # at most 20 messages in any second
            async def body():
                await async_wait_for(
                    lambda: srv.connections and srv.connections[0].received.count("PING") >= 2, 5, "pings"
                )
                assert srv.connections[0].received[:6] == [f"s{i}" for i in range(6)]

            await run_feed(feed, body)
            # 6 subscribes + 2 pings = 8 messages: within 20/s they all go out in the first window,
            # on one connection (the wait above bounds the time; no wall-clock assertion here)
            assert len(srv.connections) == 1

    asyncio.run(main())


def test_rate_limit_spreads_messages():
    async def main():
        async with LoopbackWsServer() as srv:
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url), subs=[f"s{i}" for i in range(9)])
            feed.subscribe_rate = 4.0  # at most 4 in any 1 s window

            async def body():
                await async_wait_for(
                    lambda: srv.connections and len(srv.connections[0].received) == 9, 10, "9 subscribes"
                )

            await run_feed(feed, body)
            t = srv.connections[0].received_at
            # the first burst goes out at once: far sooner than the 5th, which waits for the window
            # (an ordering check: evenly spread sends would make it 3/4 of that gap)
            assert t[3] - t[0] < (t[4] - t[0]) / 2
            assert t[4] - t[0] >= 0.9  # the 5th waits for the window
            assert t[8] - t[0] >= 1.9  # the 9th for the next one

    asyncio.run(main())


def test_max_lifetime_reconnects():
    async def script(conn):
        while True:
            await conn.send("tick")
            await asyncio.sleep(0.02)

    async def main():
        async with LoopbackWsServer(script) as srv:
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url))
            feed.max_lifetime = 0.2

            async def body():
                await async_wait_for(lambda: feed.connections >= 2, 5, "lifetime reconnect")
                assert "lifetime" in feed.last_reconnect_cause

            await run_feed(feed, body)

    asyncio.run(main())


def test_feed_requested_reconnect_and_connect_failure_backoff():
    async def script(conn):
        await conn.send(f"c{conn.number}")

    async def main():
        async with LoopbackWsServer(script) as srv:
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url))

            async def body():
                await async_wait_for(lambda: feed.frames, 5, "first frame")
                feed.reconnect("venue said serverShutdown")
                await async_wait_for(lambda: feed.connections == 2, 5, "second connection")
                assert feed.last_reconnect_cause == "venue said serverShutdown"
                assert feed.connects == 2

            await run_feed(feed, body)
        # nothing listens any more: attempts fail, are counted, and back off
        feed2 = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url))

        async def body2():
            await async_wait_for(lambda: feed2.stats.reconnects >= 3, 5, "failed attempts")
            assert feed2.connections == 0
            assert "failed" in feed2.last_reconnect_cause

        await run_feed(feed2, body2)

    asyncio.run(main())


def test_rest_delivered_with_retry():
    async def main():
        async with LoopbackRestServer() as rest, LoopbackWsServer() as srv:
            rest.serve("/api/v3/depth", (500, b""), (500, b""), b'{"lastUpdateId": 7}')
            rest_url = f"{rest.url}/api/v3/depth?symbol=BTCUSDT"
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url))
            feed.request_rest("BTCUSDT", rest_url)  # not live yet: no-op
            assert not feed.rest_pending("BTCUSDT")

            async def body():
                await async_wait_for(lambda: feed.connections == 1, 5, "connect")
                feed.request_rest("BTCUSDT", rest_url)
                await async_wait_for(lambda: feed.rest, 10, "REST body")
                assert feed.rest == [("BTCUSDT", b'{"lastUpdateId": 7}')]
                assert feed.stats.errors == 2  # two 500s, counted and retried
                assert len(rest.requests) == 3

            await run_feed(feed, body)

    asyncio.run(main())

"""WsFeed against a real websockets server (and an HTTP server) on loopback."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time

from websockets.asyncio.server import serve

from latentspeed_core.config import FeedConfig
from latentspeed_core.testing import async_wait_for
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


class Server:
    """A scripted websockets server: records what clients send, runs ``script`` per connection."""

    def __init__(self, script):
        self.script = script
        self.received: list[list[str]] = []
        self.connections = 0
        self.times: list[float] = []

    async def handler(self, ws):
        self.connections += 1
        inbox: list[str] = []
        self.received.append(inbox)

        async def reader():
            async for msg in ws:
                self.times.append(time.monotonic())
                inbox.append(msg)

        tasks = [asyncio.create_task(reader()), asyncio.create_task(self.script(self.connections, ws, inbox))]
        try:  # the script ends the connection by returning; a client close ends the script
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self):
        self._srv = await serve(self.handler, "127.0.0.1", 0)
        self.port = self._srv.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        return self

    async def __aexit__(self, *exc):
        self._srv.close()
        await self._srv.wait_closed()


async def run_feed(feed, body):
    task = asyncio.create_task(feed.run(sink=None))
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_subscribe_frames_and_reconnect_after_drop():
    async def script(n, ws, inbox):
        await async_wait_for(lambda: len(inbox) >= 2, 5, "subscribes")
        await ws.send(f"hello{n}")
        if n == 1:
            await ws.send("boom")  # a bad frame is counted and skipped, not fatal
            return  # the server drops the connection
        await asyncio.Future()

    async def main():
        async with Server(script) as srv:
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url), subs=["s1", "s2"])

            async def body():
                before = time.time_ns()
                await async_wait_for(lambda: [f for f, _ in feed.frames] == ["hello1", "hello2"], 5, "frames")
                assert feed.frames[0][1] >= before
                assert feed.connects == 2 and feed.connections == 2
                assert feed.stats.reconnects == 1
                assert feed.stats.errors == 1
                assert "closed" in feed.last_reconnect_cause
                assert srv.received[0] == ["s1", "s2"] and srv.received[1] == ["s1", "s2"]

            await run_feed(feed, body)

    asyncio.run(main())


def test_silence_timeout_reconnects():
    async def script(n, ws, inbox):
        await ws.send("only")
        await asyncio.Future()  # then silence, while the TCP connection stays up

    async def main():
        async with Server(script) as srv:
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url))
            feed.silence_timeout = 0.2

            async def body():
                await async_wait_for(lambda: feed.connections >= 2, 5, "reconnect after silence")
                assert feed.stats.reconnects >= 1
                assert feed.last_reconnect_cause.startswith("silent for")

            await run_feed(feed, body)

    asyncio.run(main())


def test_app_ping_sent_and_rate_limited():
    async def script(n, ws, inbox):
        await asyncio.Future()

    async def main():
        async with Server(script) as srv:
            feed = RecFeed(
                WsTestConfig(exchange="t", ws_url=srv.url), subs=[f"s{i}" for i in range(6)], ping="PING"
            )
            feed.ping_interval = 0.05
            feed.subscribe_rate = 20.0  # at most 20 messages in any second
            async def body():
                await async_wait_for(lambda: srv.received and srv.received[0].count("PING") >= 2, 5, "pings")
                assert srv.received[0][:6] == [f"s{i}" for i in range(6)]

            await run_feed(feed, body)
            # 6 subscribes + 2 pings = 8 messages: within 20/s they all go out in the first window,
            # on one connection (the wait above bounds the time; no wall-clock assertion here)
            assert srv.connections == 1

    asyncio.run(main())


def test_rate_limit_spreads_messages():
    async def script(n, ws, inbox):
        await asyncio.Future()

    async def main():
        async with Server(script) as srv:
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url), subs=[f"s{i}" for i in range(9)])
            feed.subscribe_rate = 4.0  # at most 4 in any 1 s window

            async def body():
                await async_wait_for(lambda: len(srv.times) == 9, 10, "9 subscribes")

            await run_feed(feed, body)
            t = srv.times
            # the first burst goes out at once: far sooner than the 5th, which waits for the window
            # (an ordering check: evenly spread sends would make it 3/4 of that gap)
            assert t[3] - t[0] < (t[4] - t[0]) / 2
            assert t[4] - t[0] >= 0.9  # the 5th waits for the window
            assert t[8] - t[0] >= 1.9  # the 9th for the next one

    asyncio.run(main())


def test_max_lifetime_reconnects():
    async def script(n, ws, inbox):
        while True:
            await ws.send("tick")
            await asyncio.sleep(0.02)

    async def main():
        async with Server(script) as srv:
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url))
            feed.max_lifetime = 0.2

            async def body():
                await async_wait_for(lambda: feed.connections >= 2, 5, "lifetime reconnect")
                assert "lifetime" in feed.last_reconnect_cause

            await run_feed(feed, body)

    asyncio.run(main())


def test_feed_requested_reconnect_and_connect_failure_backoff():
    async def script(n, ws, inbox):
        await ws.send(f"c{n}")
        await asyncio.Future()

    async def main():
        async with Server(script) as srv:
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


class _Handler(http.server.BaseHTTPRequestHandler):
    fail_first = 0
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        type(self).hits.append(self.path)
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(500)
            self.end_headers()
            return
        body = b'{"lastUpdateId": 7}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_rest_delivered_with_retry():
    _Handler.fail_first = 2
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    rest_url = f"http://127.0.0.1:{httpd.server_address[1]}/api/v3/depth?symbol=BTCUSDT"

    async def script(n, ws, inbox):
        await asyncio.Future()

    async def main():
        async with Server(script) as srv:
            feed = RecFeed(WsTestConfig(exchange="t", ws_url=srv.url))
            feed.request_rest("BTCUSDT", rest_url)  # not live yet: no-op
            assert not feed.rest_pending("BTCUSDT")

            async def body():
                await async_wait_for(lambda: feed.connections == 1, 5, "connect")
                feed.request_rest("BTCUSDT", rest_url)
                await async_wait_for(lambda: feed.rest, 10, "REST body")
                assert feed.rest == [("BTCUSDT", b'{"lastUpdateId": 7}')]
                assert feed.stats.errors == 2  # two 500s, counted and retried
                assert len(_Handler.hits) == 3

            await run_feed(feed, body)

    try:
        asyncio.run(main())
    finally:
        httpd.shutdown()
        httpd.server_close()

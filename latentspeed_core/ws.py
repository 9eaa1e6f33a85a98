"""WebSocket transport shared by the venue feeds: connection lifecycle around a sans-IO :class:`Feed`.

The venue logic (parse, books, sequence rules) lives in the feed's ``on_*`` methods;
this module owns everything that touches the network: connect, subscribe within the
venue's request-rate limit, app-level keepalive, silence detection, reconnect with
capped exponential backoff and jitter, a maximum connection lifetime, and REST GETs
run off the event loop. Every (re)connect calls :meth:`Feed.deliver_connect` so the
feed rebuilds its books from fresh snapshots; every frame is stamped with
``time.time_ns()`` the moment it is received, before any parsing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import urllib.request
from collections import deque

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .feed import Feed

log = logging.getLogger(__name__)


class WsFeed(Feed):
    """A Feed over one WebSocket connection: connect, subscribe (rate-limited), keepalive,
    silence detection, reconnect with capped exponential backoff + jitter (reset after a healthy
    period), fresh books after every reconnect (deliver_connect -> on_connect), optional max
    connection lifetime, REST requests delivered back through deliver_rest."""

    #: App-level keepalive period in seconds (Bybit 20); None sends none.
    ping_interval: float | None = None
    #: No frame for this long -> reconnect (cause "silent for Xs").
    silence_timeout: float = 30.0
    #: Proactive reconnect after this many seconds (Binance drops connections at 24 h).
    max_lifetime: float | None = None
    #: Max outgoing messages per second (subscribes and pings share the budget).
    subscribe_rate: float = 5.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    #: A connection that lived this long resets the backoff to ``backoff_initial``.
    healthy_after: float = 60.0
    #: Protocol-level pings sent by the websockets library (None disables them).
    protocol_ping_interval: float | None = 20.0
    open_timeout: float = 10.0
    close_timeout: float = 1.0
    rest_timeout: float = 10.0
    #: Largest accepted frame in bytes (full-depth snapshots can exceed the library's 1 MiB).
    max_size: int | None = 16 * 2**20
    #: None: no permessage-deflate; inflating every frame costs CPU on the hot path.
    compression: str | None = None

    def __init__(self, config, name: str | None = None) -> None:
        super().__init__(config, name)
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._stop: asyncio.Future[str] | None = None
        self._rest_tasks: dict[str, asyncio.Task] = {}
        self._live = False
        self._last_rx_ns = 0
        #: Successful connections so far (the first one is not a reconnect).
        self.connections = 0
        #: Cause of the last reconnect, for logs and tests.
        self.last_reconnect_cause: str | None = None

    # -- overridable -----------------------------------------------------------
    def ws_url(self) -> str:
        return self.config.ws_url

    def subscribe_messages(self) -> list[str]:
        """Messages sent after each connect, rate-limited (empty for URL-subscribed streams)."""
        return []

    def ping_message(self) -> str | None:
        """App-level ping payload sent every ``ping_interval`` s (Bybit ``{"op":"ping"}``)."""
        return None

    # -- services for subclasses ---------------------------------------------------
    def send(self, msg: str) -> None:
        """Queue ``msg`` on the live connection, within ``subscribe_rate``; no-op when not connected."""
        if self._outbox is not None:
            self._outbox.put_nowait(msg)

    def request_rest(self, key: str, url: str) -> None:
        """HTTP GET ``url`` in the background; the body arrives via ``deliver_rest(key, ...)``.

        A newer request with the same ``key`` supersedes a pending one. Failures are logged,
        counted and retried with backoff. No-op when not live (replay feeds recorded REST bodies).
        """
        if not self._live:
            return
        old = self._rest_tasks.pop(key, None)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._rest(key, url))
        self._rest_tasks[key] = task
        task.add_done_callback(lambda t, k=key: self._rest_done(k, t))

    def reconnect(self, reason: str) -> None:
        """Drop the live connection; the run loop reconnects (counted, logged with ``reason``)."""
        stop = self._stop
        if stop is not None and not stop.done():
            stop.set_result(reason)

    # -- run loop ----------------------------------------------------------------
    async def run_live(self) -> None:
        self._live = True
        backoff = self.backoff_initial
        try:
            while True:
                started = time.monotonic()
                cause = await self._session()
                if time.monotonic() - started >= self.healthy_after:
                    backoff = self.backoff_initial
                delay = backoff * random.uniform(0.5, 1.0)  # equal jitter: spread herds, keep a floor
                backoff = min(backoff * 2, self.backoff_max)
                self.stats.reconnects += 1
                self.last_reconnect_cause = cause
                log.warning("%s: reconnect #%d in %.2fs: %s", self.name, self.stats.reconnects, delay, cause)
                await asyncio.sleep(delay)
        finally:
            self._live = False
            for task in list(self._rest_tasks.values()):
                task.cancel()
            self._rest_tasks.clear()

    async def _session(self) -> str:
        """One connection from connect to drop; returns the cause of the drop."""
        url = self.ws_url()
        try:
            ws = await connect(
                url,
                open_timeout=self.open_timeout,
                close_timeout=self.close_timeout,
                ping_interval=self.protocol_ping_interval,
                ping_timeout=self.protocol_ping_interval,
                max_size=self.max_size,
                compression=self.compression,
            )
        except Exception as exc:
            return f"connect to {url} failed: {type(exc).__name__}: {exc}"
        loop = asyncio.get_running_loop()
        self.connections += 1
        log.info("%s: connected to %s", self.name, url)
        self._ws = ws
        self._stop = stop = loop.create_future()
        self._outbox = asyncio.Queue()
        self._last_rx_ns = time.time_ns()
        tasks: list[asyncio.Task] = []
        try:
            self.deliver_connect()
            for msg in self.subscribe_messages():
                self._outbox.put_nowait(msg)
            reader = loop.create_task(self._read(ws, stop))
            tasks = [reader, loop.create_task(self._write(ws, self._outbox)), loop.create_task(self._watch())]
            if self.ping_interval and self.ping_message() is not None:
                tasks.append(loop.create_task(self._ping()))
            await asyncio.wait((reader, stop), return_when=asyncio.FIRST_COMPLETED)
            if stop.done():
                return stop.result()
            return reader.result()
        except Exception as exc:  # a bug in a task must not end the feed: reconnect instead
            log.exception("%s: session failed", self.name)
            return f"session error: {type(exc).__name__}: {exc}"
        finally:
            self._ws = None
            self._outbox = None
            self._stop = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in list(self._rest_tasks.values()):  # answers for a dead connection are stale
                task.cancel()
            self._rest_tasks.clear()
            try:
                await asyncio.wait_for(ws.close(), self.close_timeout)
            except Exception:
                ws.transport.abort()

    async def _read(self, ws: ClientConnection, stop: asyncio.Future[str]) -> str:
        deliver = self.deliver_frame
        time_ns = time.time_ns
        try:
            while True:
                data = await ws.recv()
                receipt_ns = time_ns()  # stamped before parsing
                self._last_rx_ns = receipt_ns
                deliver(data, receipt_ns)
                if stop.done():  # the feed asked for a reconnect: do not parse buffered frames
                    return stop.result()
        except ConnectionClosed as exc:
            return f"connection closed: {exc}"

    async def _write(self, ws: ClientConnection, outbox: asyncio.Queue[str]) -> None:
        """Send queued messages, at most ``subscribe_rate`` in any window of one second."""
        burst = max(1, int(self.subscribe_rate))
        window = burst / self.subscribe_rate
        sent: deque[float] = deque(maxlen=burst)
        while True:
            msg = await outbox.get()
            if len(sent) == burst:
                wait = sent[0] + window - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            sent.append(time.monotonic())
            try:
                await ws.send(msg)
            except ConnectionClosed:
                return

    async def _watch(self) -> None:
        """Reconnect on silence or at the end of the connection's lifetime."""
        opened = time.monotonic()
        tick = min(1.0, self.silence_timeout / 4)
        while True:
            await asyncio.sleep(tick)
            silent = (time.time_ns() - self._last_rx_ns) / 1e9
            if silent >= self.silence_timeout:
                self.reconnect(f"silent for {silent:.1f}s")
                return
            if self.max_lifetime is not None and time.monotonic() - opened >= self.max_lifetime:
                self.reconnect(f"max connection lifetime {self.max_lifetime:g}s reached")
                return

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            msg = self.ping_message()
            if msg is not None:
                self.send(msg)

    # -- REST ----------------------------------------------------------------------
    async def _rest(self, key: str, url: str) -> None:
        delay = self.backoff_initial
        attempt = 0
        while True:
            attempt += 1
            try:
                body = await asyncio.to_thread(_http_get, url, self.rest_timeout)
            except Exception as exc:
                self.stats.errors += 1
                log.warning(
                    "%s: REST %s attempt %d failed (%s: %s); retry in %.2fs",
                    self.name, key, attempt, type(exc).__name__, exc, delay,
                )  # fmt: skip
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.backoff_max)
                continue
            self.deliver_rest(key, body, time.time_ns())
            return

    def _rest_done(self, key: str, task: asyncio.Task) -> None:
        if self._rest_tasks.get(key) is task:
            del self._rest_tasks[key]

    def rest_pending(self, key: str) -> bool:
        """True while a request for ``key`` is in flight (or waiting to retry)."""
        return key in self._rest_tasks


def _http_get(url: str, timeout: float) -> bytes:
    """Blocking GET (run in a thread); non-2xx statuses raise ``urllib.error.HTTPError``."""
    req = urllib.request.Request(url, headers={"User-Agent": "latentspeed", "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()

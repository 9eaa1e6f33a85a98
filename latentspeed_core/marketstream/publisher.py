"""ZeroMQ publishing: trades on ``tcp://host:port``, books on ``tcp://host:port+1``.

Each message is two frames, the topic then one orjson-serialised object. Sends never
wait: they use ``NOBLOCK`` and the sockets are XPUB with ``XPUB_NODROP`` so that, when a
subscriber's queue reaches the send high-water mark, ``send`` fails with ``EAGAIN``
instead of libzmq discarding the message silently (what a plain PUB does). The message is
then dropped *and counted* (``drops``; the pipeline adds it to the feed's
``publish_drops``), and the loop moves on. Subscribers see the gap in ``seq``.

XPUB also tells us when subscribers arrive, which lets ``--wait-subscribers`` hold the
feeds back until the first subscriber is connected (no lost first messages in tests and
benchmarks, no sleeping).
"""

from __future__ import annotations

import logging
import time

import orjson
import zmq

log = logging.getLogger(__name__)

DEFAULT_SNDHWM = 100_000

# Plain-int flags and pyzmq's compiled send: the Python ``Socket.send`` / ``send_multipart``
# layer (enum flag arithmetic, Frame checks, a loop) costs ~3 µs per two-frame message,
# more than libzmq itself; measured in docs/performance.md.
_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)
try:
    from zmq.backend import Socket as _BackendSocket

    _send = _BackendSocket.send
except (ImportError, AttributeError):  # pragma: no cover - other pyzmq builds
    _send = zmq.Socket.send


class Publisher:
    """Two XPUB sockets; ``publish_book`` / ``publish_trade`` are the pipeline's emitters."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5556,
        sndhwm: int = DEFAULT_SNDHWM,
        linger_ms: int = 1000,
        context: zmq.Context | None = None,
        io_cpus: list[int] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        if io_cpus:
            # Own context so its I/O thread (which does the actual socket writes) can be pinned
            # before it starts: keeps it off the core that runs the event loop.
            context = zmq.Context()
            for cpu in io_cpus:
                context.set(zmq.THREAD_AFFINITY_CPU_ADD, cpu)
        self._own_ctx = bool(io_cpus)
        self.ctx = context or zmq.Context.instance()
        self.linger_ms = linger_ms
        self.trades = self._socket(sndhwm, f"tcp://{host}:{port}")
        try:
            self.books = self._socket(sndhwm, f"tcp://{host}:{port + 1}")
        except zmq.ZMQError:
            self.trades.close(0)
            if self._own_ctx:
                self.ctx.term()
            raise
        #: Messages dropped at the high-water mark, per socket.
        self.book_drops = 0
        self.trade_drops = 0
        #: Messages handed to ZeroMQ, per socket.
        self.books_sent = 0
        self.trades_sent = 0
        self._topics: dict[str, bytes] = {}
        self._subscribers = {"trades": 0, "books": 0}
        self._closed = False
        self._last_drop_log = 0.0

    def _socket(self, sndhwm: int, endpoint: str) -> zmq.Socket:
        sock = self.ctx.socket(zmq.XPUB)
        try:
            sock.setsockopt(zmq.SNDHWM, sndhwm)
            sock.setsockopt(zmq.XPUB_NODROP, 1)
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscribe, for wait_subscribers()
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(endpoint)
        except zmq.ZMQError:
            sock.close(0)
            raise
        return sock

    @property
    def drops(self) -> int:
        return self.book_drops + self.trade_drops

    # -- hot path --------------------------------------------------------------
    def _topic(self, topic: str) -> bytes:
        b = self._topics.get(topic)
        if b is None:
            b = self._topics[topic] = topic.encode()
        return b

    def publish_book(self, topic: str, msg: dict) -> bool:
        """Send one book message; ``False`` when dropped at the high-water mark."""
        t = self._topics.get(topic) or self._topic(topic)
        sock = self.books
        try:
            # XPUB_NODROP decides on the first frame; the second of the same message is accepted
            _send(sock, t, _MORE, True, False)
            _send(sock, orjson.dumps(msg), _LAST, True, False)
        except zmq.Again:
            self.book_drops += 1
            self._dropped("books")
            return False
        self.books_sent += 1
        return True

    def publish_trade(self, topic: str, msg: dict) -> bool:
        t = self._topics.get(topic) or self._topic(topic)
        sock = self.trades
        try:
            _send(sock, t, _MORE, True, False)
            _send(sock, orjson.dumps(msg), _LAST, True, False)
        except zmq.Again:
            self.trade_drops += 1
            self._dropped("trades")
            return False
        self.trades_sent += 1
        return True

    def _dropped(self, socket_name: str) -> None:
        """Log drops at most once a second (the slow path only; counting is the caller's)."""
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:
            self._last_drop_log = now
            log.warning(
                "%s: a subscriber is too slow: messages dropped at the high-water mark"
                " (books %d, trades %d so far)",
                socket_name,
                self.book_drops,
                self.trade_drops,
            )

    # -- subscribers -----------------------------------------------------------
    def poll_subscriptions(self) -> dict[str, int]:
        """Read pending (un)subscribe notifications; returns current subscribe counts."""
        for name, sock in (("trades", self.trades), ("books", self.books)):
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if frame[:1] == b"\x01":
                    self._subscribers[name] += 1
                elif frame[:1] == b"\x00":
                    self._subscribers[name] = max(0, self._subscribers[name] - 1)
        return dict(self._subscribers)

    async def wait_subscribers(
        self, n: int, timeout: float | None = None, sockets: tuple[str, ...] = ("trades", "books")
    ) -> bool:
        """Wait until each of ``sockets`` has seen ``n`` subscriptions (or ``timeout`` s)."""
        import asyncio

        if n <= 0:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            counts = self.poll_subscriptions()
            if all(counts[s] >= n for s in sockets):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)

    def close(self) -> None:
        """Flush what is queued (up to ``linger_ms``), then close both sockets."""
        if self._closed:
            return
        self._closed = True
        for sock in (self.trades, self.books):
            sock.close(self.linger_ms)
        if self._own_ctx:
            self.ctx.term()

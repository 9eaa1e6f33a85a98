"""ZeroMQ publishing: trades on ``tcp://host:port``, books on ``tcp://host:port+1``.

Each message is two frames, the topic then one orjson-serialised object. Sends never
wait: they use ``NOBLOCK``. Each subscriber has a queue of at most ``sndhwm`` messages in
this process (the bound on the memory a subscriber that stops reading can cost us); what
happens to a message that meets a full queue is the ``slow_subscriber`` policy:

``isolate`` (default)
    The sockets are XPUB with ``XPUB_NODROP``, so a full queue makes ``send`` fail with
    ``EAGAIN`` instead of libzmq discarding silently (what a plain PUB does): the message is
    counted as dropped, then sent again without ``XPUB_NODROP``, which hands it to every
    subscriber with room and skips the full one. Only that subscriber misses it. libzmq then
    stops offering it messages until its queue has drained to half, and does not tell the
    publisher which it skipped meanwhile, so ``drops`` is a lower bound: the messages that
    found a queue full, not every message the slow subscriber missed (it sees those as
    gaps in ``seq``).
``drop_all``
    ``EAGAIN`` drops the message for every subscriber of the topic; ``drops`` is then exact
    (every message not published), at the price of one stalled subscriber costing the others
    the same messages.

Either way the caller gets ``False`` and the pipeline adds it to the feed's
``publish_drops``, and a warning is logged at most once a second.

XPUB also tells us when subscribers arrive, which lets ``--wait-subscribers`` hold the
feeds back until the first subscriber is connected (no lost first messages in tests and
benchmarks, no sleeping).

Sinks (config ``sinks:``, e.g. Redis Streams) get each message's topic and bytes too, before the
send, through one bounded-queue append each (:mod:`latentspeed_core.sink`): the same bytes,
whatever a slow ZeroMQ subscriber misses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import orjson
import zmq

from ..sink import Sink, fan_out

log = logging.getLogger(__name__)

#: Messages queued per subscriber and port before drops (libzmq's own default): ~1 MB of 1 kB book
#: messages is all one subscriber that stops reading can cost this process. It was 100,000 (~0.1 GB,
#: reached only after many minutes of linear growth). A live subscriber's pauses are absorbed
#: before this queue fills, by its own queue (its RCVHWM: 100,000 for ZmqSubscriber, filled by its
#: I/O thread whatever its event loop does) and by the kernel's socket buffers (megabytes).
DEFAULT_SNDHWM = 1_000
#: ``isolate``: a full queue costs only its subscriber; ``drop_all``: every subscriber (exact count).
SLOW_SUBSCRIBER_POLICIES = ("isolate", "drop_all")

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
        slow_subscriber: str = "isolate",
        sinks: Sequence[Sink] = (),
    ) -> None:
        if slow_subscriber not in SLOW_SUBSCRIBER_POLICIES:
            raise ValueError(
                f"slow_subscriber must be one of {SLOW_SUBSCRIBER_POLICIES}, not {slow_subscriber!r}"
            )
        self.isolate = slow_subscriber == "isolate"
        self.sndhwm = sndhwm
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
        #: Messages that found a subscriber's queue full (see the module docstring), per socket.
        self.book_drops = 0
        self.trade_drops = 0
        #: Messages queued for every subscriber, per socket.
        self.books_sent = 0
        self.trades_sent = 0
        self._topics: dict[str, bytes] = {}
        #: Every message's topic and bytes also go to the sinks (one O(1) queue append each).
        self.sinks = list(sinks)
        self._sink_put = fan_out(self.sinks)
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
        """Send one book message; ``False`` when a subscriber's queue was full (counted)."""
        t = self._topics.get(topic) or self._topic(topic)
        sock = self.books
        data = orjson.dumps(msg)
        if self._sink_put is not None:
            self._sink_put(t, data)
        try:
            # XPUB_NODROP decides on the first frame; the second of the same message is accepted
            _send(sock, t, _MORE, True, False)
            _send(sock, data, _LAST, True, False)
        except zmq.Again:
            self.book_drops += 1
            self._dropped("books", sock, t, data)
            return False
        self.books_sent += 1
        return True

    def publish_trade(self, topic: str, msg: dict) -> bool:
        """Send one trade message; ``False`` when a subscriber's queue was full (counted)."""
        t = self._topics.get(topic) or self._topic(topic)
        sock = self.trades
        data = orjson.dumps(msg)
        if self._sink_put is not None:
            self._sink_put(t, data)
        try:
            _send(sock, t, _MORE, True, False)
            _send(sock, data, _LAST, True, False)
        except zmq.Again:
            self.trade_drops += 1
            self._dropped("trades", sock, t, data)
            return False
        self.trades_sent += 1
        return True

    def _dropped(self, socket_name: str, sock: zmq.Socket, topic: bytes, data: bytes) -> None:
        """The slow path: hand the message to the subscribers with room (``isolate``), and log
        at most once a second (counting is the caller's)."""
        if self.isolate:
            # Without XPUB_NODROP libzmq writes to every matching queue with room and skips the
            # full ones; the option is read per send, so it can be switched for this one message.
            sock.setsockopt(zmq.XPUB_NODROP, 0)
            try:
                _send(sock, topic, _MORE, True, False)
                _send(sock, data, _LAST, True, False)
            finally:
                sock.setsockopt(zmq.XPUB_NODROP, 1)
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:
            self._last_drop_log = now
            log.warning(
                "%s: a subscriber is too slow: its queue of %d messages is full; messages dropped"
                " for %s (books %d, trades %d so far)",
                socket_name,
                self.sndhwm,
                "it" if self.isolate else "every subscriber",
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

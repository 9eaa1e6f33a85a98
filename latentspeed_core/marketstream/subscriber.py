"""ZeroMQ consumer of marketstream messages: the engine's ``zmq`` source and ``latentspeed tap``.

Connects SUB sockets to the trades port and the books port (``port + 1`` unless told),
subscribes to topic prefixes, and hands every message to ``on_book(topic, msg)`` or
``on_trade(topic, msg)`` as a plain dict. A callback given as ``None`` leaves that port
unconnected. Malformed messages are counted and skipped, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import orjson
import zmq
import zmq.asyncio

log = logging.getLogger(__name__)

Callback = Callable[[str, dict], None]


class ZmqSubscriber:
    def __init__(
        self,
        host: str,
        port: int,
        topics_prefixes: Iterable[str] = (),
        on_book: Callback | None = None,
        on_trade: Callback | None = None,
        books_port: int | None = None,
        rcvhwm: int = 100_000,
    ) -> None:
        self.host = host
        self.port = port
        self.books_port = books_port if books_port is not None else port + 1
        self.prefixes = [p.encode() for p in topics_prefixes] or [b""]
        self.on_book = on_book
        self.on_trade = on_trade
        self.rcvhwm = rcvhwm
        self.received = 0
        self.errors = 0
        #: When the message being handled was received (ns since epoch), before it was decoded.
        self.receipt_ns = 0
        self.last: tuple[bytes, Callback] | None = None
        self.ctx = zmq.asyncio.Context.instance()
        self._socks: list[tuple[zmq.asyncio.Socket, Callback]] = []
        self._opened = False

    def open(self) -> None:
        """Connect and subscribe now (``run`` does it too); lets callers subscribe early."""
        if self._opened:
            return
        self._opened = True
        for port, cb in ((self.port, self.on_trade), (self.books_port, self.on_book)):
            if cb is None:
                continue
            sock = self.ctx.socket(zmq.SUB)
            sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
            sock.setsockopt(zmq.LINGER, 0)
            for p in self.prefixes:
                sock.setsockopt(zmq.SUBSCRIBE, p)
            sock.connect(f"tcp://{self.host}:{port}")
            self._socks.append((sock, cb))

    async def run(self) -> None:
        """Receive until cancelled; closes the sockets on the way out."""
        self.open()
        try:
            poller = zmq.asyncio.Poller()
            drains = {}
            for sock, cb in self._socks:
                poller.register(sock, zmq.POLLIN)
                # a synchronous twin of the same socket drains what is ready in one go,
                # without a future per message
                drains[sock] = (zmq.Socket.shadow(sock.underlying), cb)
            while True:
                for sock, _ in await poller.poll():
                    sync, cb = drains[sock]
                    for _ in range(10_000):
                        try:
                            frames = sync.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._handle(frames, cb)
                    else:
                        await asyncio.sleep(0)  # let others run during a flood
        finally:
            self.close()

    def _handle(self, frames: list[bytes], cb: Callback) -> None:
        # Stamped on receipt, before decoding (the engine's tick-to-trade starts here).
        self.receipt_ns = time.time_ns()
        if len(frames) != 2:
            self.errors += 1
            return
        self.last = (frames[1], cb)  # as received: the engine's idle rehearsal decodes it again
        try:
            msg = orjson.loads(frames[1])
            topic = frames[0].decode()
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            self.errors += 1
            return
        self.received += 1
        try:
            cb(topic, msg)
        except Exception:  # a consumer bug must not kill the receive loop
            self.errors += 1
            log.exception("subscriber callback failed on %s", topic)

    def close(self) -> None:
        for sock, _ in self._socks:
            sock.close(0)
        self._socks.clear()
        self._opened = False

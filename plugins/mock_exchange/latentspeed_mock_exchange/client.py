"""The client side of one mock-exchange connection, shared by the feed and the venue.

:class:`ExchangeLink` owns a TCP connection: stream reassembly, inbound sequence
checks, outbound sequence numbers, heartbeats (one after ``heartbeat_interval``
without sending; a peer silent for ``dead_after`` is dead). :func:`maintain`
keeps a link up: connect, wait until it drops, back off (exponential, full
jitter, reset after a healthy minute), connect again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import struct
import time
from collections.abc import Callable

from . import protocol as P

log = logging.getLogger("latentspeed_mock_exchange.client")

#: Just the header's seq field (bytes 4..8): no 4-tuple with the timestamp per message.
_seq_of = struct.Struct("<4xI").unpack_from


class ExchangeLink(asyncio.Protocol):
    """One connection. ``handler(frames, receipt_ns)`` gets every batch of decoded messages."""

    def __init__(self, name: str, handler: Callable[[list, int], None], heartbeat_interval: float = 1.0,
                 dead_after: float = 5.0, closed: asyncio.Future[str] | None = None) -> None:  # fmt: skip
        self.name = name
        self.handler = handler
        self.heartbeat_interval = heartbeat_interval
        self.dead_after = dead_after
        self.transport: asyncio.Transport | None = None
        self.decoder = P.FrameDecoder()
        self.seq_out = 0
        self.seq_in = 0
        self.gaps = 0
        self.last_rx = self.last_tx = time.monotonic()
        self.closed: asyncio.Future[str] = closed if closed is not None else asyncio.get_running_loop().create_future()
        self._reason: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def keeping(cls, name: str) -> ExchangeLink:
        """A link connected to nothing that keeps its last write (``link.transport.data``): a venue's
        rehearsal twin sends through it (engine/rehearsal.py). Same class as a real link, so the
        venue's send code, which both run, sees one type and the interpreter's specialisation of it
        holds for the real tick (a separate class there cost the real tick ~1 us in process)."""
        link = cls(name, _no_frames, closed=_NEVER_CLOSED)
        link.transport = KeptWrites()  # type: ignore[assignment]
        return link

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        log.info("%s: connected to %s", self.name, f"{peer[0]}:{peer[1]}" if peer else "?")
        self.last_rx = self.last_tx = time.monotonic()
        self._arm()

    def data_received(self, data: bytes) -> None:
        receipt_ns = time.time_ns()  # stamped on read, before any decoding
        self.last_rx = time.monotonic()
        try:
            frames = self.decoder.feed(data)
        except P.ProtocolError as exc:
            self.close(f"malformed frame from exchange: {exc}")
            return
        if not frames:
            return
        # Sequence check: per connection and direction, first 1, then +1 (issue 4).
        expect = self.seq_in + 1
        for _t, buf, off in frames:
            (seq,) = _seq_of(buf, off)
            if seq != expect:
                self.gaps += 1
                if self.gaps <= 10 or not self.gaps % 1000:
                    log.warning(
                        "%s: inbound seq %d, expected %d (%d gaps)", self.name, seq, expect, self.gaps
                    )
            expect = seq + 1
        self.seq_in = expect - 1
        try:
            self.handler(frames, receipt_ns)
        except Exception:  # a consumer bug must not kill the connection silently
            log.exception("%s: handler failed", self.name)

    def connection_lost(self, exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.transport = None
        if self.decoder.pending() and self._reason is None:
            self._reason = f"connection closed inside a message ({self.decoder.pending()} bytes pending)"
        reason = self._reason or (f"connection lost: {exc}" if exc else "closed by the exchange")
        if not self.closed.done():
            self.closed.set_result(reason)

    # -- sending -------------------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq_out += 1
        return self.seq_out

    def write(self, data: bytes) -> None:
        """One ``transport.write`` per message: no awaiting, no extra buffering."""
        t = self.transport
        if t is None:
            raise ConnectionError(f"{self.name}: not connected")
        t.write(data)
        self.last_tx = time.monotonic()

    def close(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
            log.warning("%s: closing connection: %s", self.name, reason)
        if self.transport is not None:
            self.transport.abort()

    # -- heartbeats ----------------------------------------------------------------------
    def _arm(self) -> None:
        period = min(0.25, self.heartbeat_interval / 4)
        self._timer = asyncio.get_running_loop().call_later(period, self._beat)

    def _beat(self) -> None:
        self._timer = None
        if self.transport is None:
            return
        now = time.monotonic()
        if now - self.last_rx >= self.dead_after:
            self.close(f"exchange silent for {now - self.last_rx:.1f}s")
            return
        if now - self.last_tx >= self.heartbeat_interval:
            self.write(P.HEADER.pack(P.HEARTBEAT_SIZE, P.HEARTBEAT, self.next_seq(), time.time_ns()))
        self._arm()


class KeptWrites:
    """The transport of :meth:`ExchangeLink.keeping`: keeps the last write, sends nothing."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data = data


def _no_frames(frames: list, receipt_ns: int) -> None:
    return None


#: A keeping link's ``closed``: it never connects, so nothing waits on it (and no loop is needed).
_NEVER_CLOSED: asyncio.Future = concurrent.futures.Future()  # type: ignore[assignment]


async def maintain(
    name: str,
    config,
    handler: Callable[[list, int], None],
    on_up: Callable[[ExchangeLink], None],
    on_down: Callable[[ExchangeLink, str], None],
) -> None:
    """Keep a link to ``config.host:config.port`` up until cancelled.

    ``on_up(link)`` runs just before each connection attempt (the link's first
    messages can arrive before ``create_connection`` returns, so per-connection
    state is reset there), ``on_down(link, reason)`` when an established link drops. Backoff: ``backoff_initial`` doubling to ``backoff_max``, full
    jitter, reset once a connection stayed up for a minute.
    """
    loop = asyncio.get_running_loop()
    backoff = config.backoff_initial
    attempt = 0
    while True:
        attempt += 1
        link = ExchangeLink(name, handler, config.heartbeat_interval, config.dead_after)
        on_up(link)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives as the connection completes (gh-86296), leaving the task running.
            async with asyncio.timeout(config.connect_timeout):
                await loop.create_connection(lambda link=link: link, config.host, config.port)
        except (OSError, TimeoutError) as exc:
            delay = random.uniform(backoff / 2, backoff)
            log.warning("%s: cannot connect to %s:%d (attempt %d): %s; retrying in %.2fs", name, config.host,
                        config.port, attempt, exc or type(exc).__name__, delay)  # fmt: skip
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, config.backoff_max)
            continue
        up_at = time.monotonic()
        try:
            reason = await link.closed
        except asyncio.CancelledError:
            link._reason = "stopped"
            if link.transport is not None:
                link.transport.close()
            on_down(link, "stopped")
            raise
        on_down(link, reason)
        log.warning("%s: disconnected: %s", name, reason)
        if time.monotonic() - up_at >= 60.0:
            backoff = config.backoff_initial
            attempt = 0
        delay = random.uniform(backoff / 2, backoff)
        await asyncio.sleep(delay)
        backoff = min(backoff * 2, config.backoff_max)

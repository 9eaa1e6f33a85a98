"""A WebSocket client whose writes are synchronous: one ``transport.write`` per order, never an await.

The engine calls ``send_new_order`` from inside a strategy callback and must not wait, so the
order connection cannot go through an ``async send``. This is an ``asyncio.Protocol`` around the
sans-I/O ``websockets`` client (handshake, incoming frames, pings and close are the library's,
RFC 6455 as it implements it); outgoing text frames are built here (FIN + text opcode, the
client mask from a pre-drawn pool of ``os.urandom`` bytes, the payload masked in C by
``websockets.speedups.apply_mask``) and written straight to the transport.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

try:  # the C masking of websockets' speedups, as the library itself uses it; else its Python version
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a build without the extension
    from websockets.utils import apply_mask

log = logging.getLogger(__name__)

_H16 = struct.Struct("!BBH").pack
_H64 = struct.Struct("!BBQ").pack
_MASK_POOL = 4096
_TEXT = Opcode.TEXT
_CONT = Opcode.CONT
_CLOSE = Opcode.CLOSE
_time_ns = time.time_ns
_monotonic = time.monotonic


def frame_text(payload: bytes, mask: bytes) -> bytes:
    """One unfragmented, masked client text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = _H16(0x81, 0xFE, n)
    else:
        head = _H64(0x81, 0xFF, n)
    return head + mask + apply_mask(payload, mask)


class WsClient(asyncio.Protocol):
    """One client connection. ``on_text(data, receipt_ns)`` gets every text message (bytes)."""

    def __init__(
        self,
        url: str,
        on_text: Callable[[bytes, int], None],
        label: str | None = None,
        max_size: int | None = 16 * 2**20,
    ) -> None:
        self.url = url
        #: What logs and errors call this connection (a URL may hold a token, e.g. a listenKey).
        self.label = label or url
        self._proto = ClientProtocol(parse_uri(url), max_size=max_size)
        self._on_text = on_text
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        #: Result: why the connection ended.
        self.closed: asyncio.Future[str] = loop.create_future()
        self.last_rx = _monotonic()
        self._parts: list[bytes] | None = None
        self._masks = os.urandom(_MASK_POOL)
        self._mask_at = 0

    @classmethod
    async def connect(
        cls, url: str, on_text: Callable[[bytes, int], None], timeout: float = 10.0, label: str | None = None
    ) -> WsClient:
        """Open the TCP (and TLS for ``wss``) connection and complete the handshake within ``timeout``."""
        uri = parse_uri(url)
        loop = asyncio.get_running_loop()
        ctx = ssl.create_default_context() if uri.secure else None
        client = cls(url, on_text, label)
        async with asyncio.timeout(timeout):
            await loop.create_connection(
                lambda: client, uri.host, uri.port, ssl=ctx, server_hostname=uri.host if ctx else None
            )
            await client.opened
        return client

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:  # an order is one small write: never let Nagle hold it back
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        proto = self._proto
        proto.send_request(proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        receipt_ns = _time_ns()
        self.last_rx = _monotonic()
        proto = self._proto
        proto.receive_data(data)
        events = proto.events_received()
        self._flush()  # pongs, the close echo
        for ev in events:
            if isinstance(ev, Frame):
                op = ev.opcode
                if op is _TEXT:
                    if ev.fin:
                        self._deliver(ev.data, receipt_ns)
                    else:
                        self._parts = [ev.data]
                elif op is _CONT and self._parts is not None:
                    self._parts.append(ev.data)
                    if ev.fin:
                        data, self._parts = b"".join(self._parts), None
                        self._deliver(data, receipt_ns)
                elif op is _CLOSE:
                    rcvd = proto.close_rcvd
                    why = (
                        f"closed by the server ({rcvd.code} {rcvd.reason})".strip()
                        if rcvd
                        else "closed by the server"
                    )
                    self._end(why)
            elif isinstance(ev, Response) and not self.opened.done():
                if proto.handshake_exc is not None:
                    self.opened.set_exception(
                        ConnectionError(f"handshake with {self.label} failed: {proto.handshake_exc}")
                    )
                else:
                    self.opened.set_result(None)
        if proto.handshake_exc is not None and not self.opened.done():
            self.opened.set_exception(
                ConnectionError(f"handshake with {self.label} failed: {proto.handshake_exc}")
            )

    def eof_received(self) -> bool:
        self._proto.receive_eof()
        self._end("the server closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"connection lost: {exc}" if exc else "connection closed"
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"{self.label}: {why}"))
        if not self.closed.done():
            self.closed.set_result(why)
        self.transport = None

    # -- writing (hot path) ----------------------------------------------------------------------
    def mask(self) -> bytes:
        at = self._mask_at
        if at >= _MASK_POOL:
            self._masks = os.urandom(_MASK_POOL)
            at = 0
        self._mask_at = at + 4
        return self._masks[at : at + 4]

    def frame(self, payload: bytes) -> bytes:
        """``payload`` as a masked text frame, ready for :meth:`write` (the mask inlined: hot path)."""
        at = self._mask_at
        if at >= _MASK_POOL:
            self._masks = os.urandom(_MASK_POOL)
            at = 0
        self._mask_at = at + 4
        return frame_text(payload, self._masks[at : at + 4])

    def write(self, data: bytes) -> None:
        """Write already framed bytes (one or more frames); ``ConnectionError`` when closed."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionError(f"{self.label}: not connected")
        transport.write(data)

    def send_text(self, payload: bytes) -> None:
        self.write(frame_text(payload, self.mask()))

    # -- control ---------------------------------------------------------------------------------
    def ping(self) -> None:
        """A ping frame: the server's pong proves the path alive (``last_rx``)."""
        if self.transport is not None and not self.transport.is_closing():
            self._proto.send_ping(b"")
            self._flush()

    def close(self, reason: str = "closed by us") -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                self._proto.send_close(1000)
                self._flush()
            except Exception:  # already closing: nothing more to say
                pass
        self._end(reason)

    def _end(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self._proto.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()

    def _deliver(self, data: bytes, receipt_ns: int) -> None:
        try:
            self._on_text(data, receipt_ns)
        except Exception:  # one bad message must not take the connection down
            log.exception("handling a message from %s failed", self.label)

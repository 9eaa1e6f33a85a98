"""Loopback stand-ins for a venue: a WebSocket server that plays scripted frames per connection, and
an HTTP server that serves REST bodies (depth snapshots) in order.

Both bind 127.0.0.1 on a port the kernel picks, and record what clients send, so a test can run a
feed's real connection code against them. A venue's test kit subclasses :class:`LoopbackWsServer`
with the venue's protocol (acknowledgements, pongs, what counts as a request for a fresh snapshot,
envelope fields); everything else (connections, scripts, cuts) lives here once.

A script is a list of steps, one list per connection (the last repeats for later connections), or
a coroutine function ``script(conn)``. Steps are frames (``str``, ``bytes``, or a ``dict`` sent as
compact JSON) and the actions :data:`CUT`, :data:`CLOSE`, :data:`SILENT` and :data:`AWAIT_RESYNC`; a
callable step is called with the connection (and awaited if it returns an awaitable). Playing
starts once :meth:`LoopbackWsServer.ready` says the client has asked for what the script needs.
When a script ends the connection stays open until the client or the test closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class _Action:
    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.__doc__ = doc

    def __repr__(self) -> str:
        return self.name


#: Drop the TCP connection without a WebSocket close handshake (what a network cut looks like).
CUT = _Action("CUT", "drop the TCP connection without a close handshake")
#: Close the connection cleanly (close frame, code 1000).
CLOSE = _Action("CLOSE", "close the connection with a close handshake")
#: Stop sending and stop answering the client (the connection stays up): a venue gone quiet.
SILENT = _Action("SILENT", "stop sending and answering; the connection stays up")
#: Wait until the client asks for a fresh snapshot (:meth:`LoopbackWsServer.wants_snapshot`).
AWAIT_RESYNC = _Action("AWAIT_RESYNC", "wait for the client's request for a fresh snapshot")

Step = Any
Script = Sequence[Step] | Callable[["WsConnection"], Awaitable[None]]


class _LoopbackServer:
    """What both servers share: ``async with`` starts and stops them."""

    _server: asyncio.Server | None = None

    async def start(self):
        raise NotImplementedError

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


class WsConnection:
    """One client connection as a test sees it: what the client sent, and ways to answer, cut or close."""

    def __init__(self, server: LoopbackWsServer, ws: ServerConnection, number: int) -> None:
        self.server = server
        self.ws = ws
        #: 1-based, in the order clients connected.
        self.number = number
        #: The request path with its query (``/stream?streams=...``).
        self.path: str = ws.request.path if ws.request is not None else ""
        #: Every message the client sent, in order, and when (``time.monotonic()``) it arrived.
        self.received: list[str] = []
        self.received_at: list[float] = []
        #: Every frame sent to the client, in order (after :meth:`LoopbackWsServer.outgoing`).
        self.sent: list[str] = []
        #: Requests for a fresh snapshot seen and not yet consumed by an :data:`AWAIT_RESYNC` step.
        self.resync_requests = 0
        #: Set by :data:`SILENT`: nothing more is sent or answered.
        self.silent = False
        #: Per-connection state of the venue's protocol (subscriptions, message counters...).
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._changed = asyncio.Event()

    async def send(self, frame: str | bytes | dict) -> None:
        """Send a frame (through the server's :meth:`~LoopbackWsServer.outgoing`); a closed connection
        drops it quietly, as a venue's socket would."""
        out = self.server.outgoing(self, frame)
        if out is not None:
            await self.send_raw(out)

    async def send_all(self, frames) -> None:
        """:meth:`send` each of ``frames`` in order."""
        for frame in frames:
            await self.send(frame)

    async def send_raw(self, frame: str | bytes | dict) -> None:
        """Send a frame exactly as given (a dict as compact JSON; bytes as a text frame)."""
        if self.silent:
            return
        text = _text(frame)
        self.sent.append(text)
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(text)

    async def next_message(self, timeout: float = 5.0) -> str:
        """The client's next message not yet taken by this method."""
        return await asyncio.wait_for(self._inbox.get(), timeout)

    async def next_json(self, timeout: float = 5.0) -> Any:
        return json.loads(await self.next_message(timeout))

    async def cut(self) -> None:
        """Drop the TCP connection without a close handshake, once what was sent has left the server."""
        transport = self.ws.transport
        deadline = time.monotonic() + 5.0
        while transport.get_write_buffer_size() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        transport.abort()

    async def close(self) -> None:
        await self.ws.close()

    def _receive(self, message: str) -> None:
        self.received.append(message)
        self.received_at.append(time.monotonic())
        self._inbox.put_nowait(message)


class LoopbackWsServer(_LoopbackServer):
    """A WebSocket server on 127.0.0.1 that plays ``scripts`` (one per connection, the last repeating).

    Subclass it for a venue and override the protocol hooks: :meth:`greet` (sent on connect),
    :meth:`respond` (answer one client message), :meth:`ready` (may the script start?),
    :meth:`wants_snapshot` (is this message a request for a fresh snapshot?), :meth:`outgoing`
    (per-connection envelope or filter), :meth:`script_for` (which script plays a connection).
    Use as ``async with Server(...) as srv:``; ``srv.url`` is the address to give the feed.
    """

    #: Path part of :attr:`url`; the server answers any path.
    path = "/ws"
    #: What a connection is (a venue's kit may add its protocol's helpers in a subclass).
    connection_class: type[WsConnection] = WsConnection

    def __init__(self, scripts: Sequence[Script] | Script | None = None) -> None:
        if scripts is None:
            scripts = []
        elif callable(scripts):
            scripts = [scripts]
        self.scripts: list[Script] = list(scripts)
        self.connections: list[WsConnection] = []
        #: Exceptions raised by scripts (the connection was closed): a test should find none.
        self.errors: list[BaseException] = []
        self.port = 0
        self._new: asyncio.Queue[WsConnection] = asyncio.Queue()

    # -- the venue's protocol (override) -----------------------------------------------------
    async def greet(self, conn: WsConnection) -> None:
        """Sent as soon as a client connects (dYdX's ``connected``); nothing by default."""

    async def respond(self, conn: WsConnection, message: str) -> None:
        """Answer one client message as the venue would (acks, pongs); nothing by default."""

    def ready(self, conn: WsConnection, script: Sequence[Step]) -> bool:
        """True once the client has asked for everything ``script`` sends (its subscriptions)."""
        return True

    def wants_snapshot(self, conn: WsConnection, message: str) -> bool:
        """True if ``message`` asks for a fresh snapshot (a resubscribe); :data:`AWAIT_RESYNC` waits for
        it. Called before :meth:`respond`, with the protocol state as it was before the message."""
        return False

    def outgoing(self, conn: WsConnection, frame: str | bytes | dict) -> str | bytes | dict | None:
        """The frame as this connection gets it (an envelope stamped), or None to leave it out."""
        return frame

    def script_for(self, conn: WsConnection) -> Script | None:
        """The script this connection plays: ``scripts[number - 1]``, the last one repeating."""
        if not self.scripts:
            return None
        return self.scripts[min(conn.number, len(self.scripts)) - 1]

    # -- running ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    async def start(self, port: int = 0) -> LoopbackWsServer:
        """Listen on ``port`` (0: one the kernel picks)."""
        self._server = await serve(self._handle, "127.0.0.1", port, compression=None, max_size=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def connection(self, timeout: float = 5.0) -> WsConnection:
        """The next connection not yet taken by this method (waits for it)."""
        return await asyncio.wait_for(self._new.get(), timeout)

    async def _handle(self, ws: ServerConnection) -> None:
        conn = self.connection_class(self, ws, len(self.connections) + 1)
        self.connections.append(conn)
        await self.greet(conn)
        self._new.put_nowait(conn)
        player = asyncio.create_task(self._play(conn, self.script_for(conn)))
        try:
            async for message in ws:
                text = _text(message)
                conn._receive(text)
                if not conn.silent:
                    if self.wants_snapshot(conn, text):  # asked before the answer changes the state
                        conn.resync_requests += 1
                    await self.respond(conn, text)
                conn._changed.set()  # after the answer: a script waiting on the protocol state sees it
        except ConnectionClosed:
            pass
        finally:
            player.cancel()
            await asyncio.gather(player, return_exceptions=True)

    async def _play(self, conn: WsConnection, script: Script | None) -> None:
        try:
            if callable(script):
                await script(conn)
            elif script is not None:
                await self._play_steps(conn, script)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # kept for the test, which would otherwise only see a timeout
            self.errors.append(exc)
            await conn.close()

    async def _play_steps(self, conn: WsConnection, script: Sequence[Step]) -> None:
        while not self.ready(conn, script):
            await _changed(conn)
        for step in script:
            if step is CUT:
                await conn.cut()
                return
            if step is CLOSE:
                await conn.close()
                return
            if step is SILENT:
                conn.silent = True
                return
            if step is AWAIT_RESYNC:
                while conn.resync_requests == 0:
                    await _changed(conn)
                conn.resync_requests -= 1
                continue
            if callable(step):
                result = step(conn)
                if inspect.isawaitable(result):
                    await result
                continue
            await conn.send(step)


async def _changed(conn: WsConnection) -> None:
    conn._changed.clear()
    await conn._changed.wait()


def _text(frame: str | bytes | dict) -> str:
    if isinstance(frame, str):
        return frame
    if isinstance(frame, bytes | bytearray | memoryview):
        return bytes(frame).decode()
    return json.dumps(frame, separators=(",", ":"))


# -- REST ------------------------------------------------------------------------------------------
Response = bytes | str | tuple[int, bytes | str]


class LoopbackRestServer(_LoopbackServer):
    """An HTTP/1.1 server on 127.0.0.1 answering GETs with queued bodies, one queue per path.

    :meth:`serve` sets a path's answers: successive requests take them in order and the last one
    repeats. An answer is a body (status 200) or ``(status, body)``. Other paths get 404.
    """

    def __init__(self) -> None:
        #: Every request target (path and query), in arrival order.
        self.requests: list[str] = []
        self.port = 0
        self._routes: dict[str, list[tuple[int, bytes]]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, path: str, *answers: Response) -> None:
        """Answer GETs of ``path`` (the part before ``?``) with ``answers``, in order, the last repeating."""
        self._routes[path] = [_answer(a) for a in answers]

    async def start(self) -> LoopbackRestServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            self.requests.append(target)
            answers = self._routes.get(target.split("?", 1)[0])
            if not answers:
                status, body = 404, b'{"error":"not found"}'
            else:
                status, body = answers.pop(0) if len(answers) > 1 else answers[0]
            reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _answer(a: Response) -> tuple[int, bytes]:
    status, body = a if isinstance(a, tuple) else (200, a)
    return status, body.encode() if isinstance(body, str) else bytes(body)


def client_frame_text(data: bytes) -> bytes:
    """The payload of ``data``, one complete masked client text frame (RFC 6455 section 5.2), parsed
    as the websockets library (a server) reads it: what a venue would receive from our own framing."""
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=True, max_size=None)
    try:
        next(parser)
        raise AssertionError("the frame was incomplete")
    except StopIteration as done:
        frame = done.value
    assert frame.opcode == Opcode.TEXT and frame.fin, frame
    return frame.data

"""Test kit for the Binance plugin: recorded sessions, a naive reference book, and a loopback
Binance (combined-stream WebSocket server + REST depth endpoint) that plays scripted sessions.

The loopback server answers any path: ``/stream`` (spot, or every stream on one path), and the USD-M
routes ``/public/stream`` (depth) and ``/market/stream`` (trades), whose connections are counted apart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import orjson
from websockets.asyncio.server import serve

from latentspeed_core.testing import fixtures_dir

SESSIONS = {
    "spot": (
        "seq_spot_btcusdt_2024-08-08_hftbacktest_first1000.jsonl",
        "rest_spot_api_v3_depth_btcusdt_limit1000_2024.json",
    ),
    "usdm": (
        "seq_usdm_btcusdt_2024-08-08_hftbacktest_first1000.jsonl",
        "rest_usdm_fapi_v1_depth_btcusdt_2024.json",
    ),
}


@dataclass
class Session:
    """A recorded session: the WebSocket frames (the inline REST line removed) and the REST snapshot."""

    market: str
    frames: list[bytes]
    snapshot: bytes

    def stream(self, frame: bytes) -> str:
        return orjson.loads(frame).get("stream", "")

    def depth_indices(self) -> list[int]:
        """Frame indices of the depth updates."""
        return [i for i, f in enumerate(self.frames) if b'"depthUpdate"' in f]

    def depth(self, i: int) -> dict:
        return orjson.loads(self.frames[i])["data"]


def load_session(market: str) -> Session:
    seq, rest = SESSIONS[market]
    d = fixtures_dir() / "binance"
    lines = [ln for ln in (d / seq).read_bytes().splitlines() if ln.strip()]
    frames = [ln for ln in lines if not ln.startswith(b'{"lastUpdateId"')]
    return Session(market, frames, (d / rest).read_bytes())


class NaiveBook:
    """Reference book: two plain dicts, sorted only when read. Independent of L2Book."""

    def __init__(self, snapshot: bytes) -> None:
        snap = orjson.loads(snapshot)
        self.last = snap["lastUpdateId"]
        self.bids = {float(p): float(q) for p, q in snap["bids"] if float(q) > 0}
        self.asks = {float(p): float(q) for p, q in snap["asks"] if float(q) > 0}

    def apply(self, ev: dict) -> None:
        for side, key in ((self.bids, "b"), (self.asks, "a")):
            for p, q in ev[key]:
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
        self.last = ev["u"]

    def apply_newer(self, events: list[dict], market: str) -> None:
        """Apply the events a correct client applies on top of the snapshot."""
        start = self.last
        for ev in events:
            if ev["u"] > start or (market == "usdm" and ev["u"] == start):
                self.apply(ev)

    def levels(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())

    def body(self) -> bytes:
        """This state as a REST depth snapshot (a 'newer snapshot' the venue would serve)."""
        bids, asks = self.levels()
        return orjson.dumps(
            {
                "lastUpdateId": self.last,
                "bids": [[repr(p), repr(q)] for p, q in bids],
                "asks": [[repr(p), repr(q)] for p, q in asks],
            }
        )


def expected_book(session: Session, upto: int | None = None, skip: int | None = None) -> NaiveBook:
    """The book after applying the session's depth events (frame index < ``upto``) to the snapshot."""
    nb = NaiveBook(session.snapshot)
    events = [session.depth(i) for i in session.depth_indices() if (upto is None or i < upto) and i != skip]
    nb.apply_newer(events, session.market)
    return nb


def snapshot_at(session: Session, frame_index: int) -> bytes:
    """A venue snapshot taken right after depth frame ``frame_index`` (state and lastUpdateId)."""
    return expected_book(session, upto=frame_index + 1).body()


def book_levels(book) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    bids = [(p, book.bid_qty(p)) for p in book.bid_prices()]
    asks = [(p, book.ask_qty(p)) for p in book.ask_prices()]
    return bids, asks


class RecSink:
    """A FeedSink that records what the feed published."""

    def __init__(self) -> None:
        self.books: list[tuple[str, int, int, list, list]] = []
        self.trades: list = []

    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        self.books.append((symbol, timestamp_ns, receipt_ns, book.top_bids(10), book.top_asks(10)))
        assert not book.is_crossed()

    def on_trade(self, feed, trade) -> None:
        self.trades.append(trade)


Script = Callable[["FakeBinance", int, object, list[str]], Awaitable[None]]


@dataclass
class FakeBinance:
    """Loopback Binance: ``?streams=…`` WebSocket endpoints and the REST depth endpoint.

    ``script(server, n, ws, streams)`` plays connection ``n`` (1-based); returning closes it.
    Connections on the ``/market`` route (USD-M trades) are counted apart (``market_connections``,
    ``market_paths``) and played by ``market_script``, else by ``script`` with their own ``n``.
    ``snapshots`` are served in order to successive depth requests (the last one repeats).
    """

    script: Script
    snapshots: list[bytes] = field(default_factory=list)
    market_script: Script | None = None
    connections: int = 0
    paths: list[str] = field(default_factory=list)
    market_connections: int = 0
    market_paths: list[str] = field(default_factory=list)
    rest_paths: list[str] = field(default_factory=list)
    rest_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def _ws(self, ws) -> None:
        path = ws.request.path
        if urlparse(path).path.startswith("/market/"):
            self.market_connections += 1
            self.market_paths.append(path)
            n, script = self.market_connections, self.market_script or self.script
        else:
            self.connections += 1
            self.paths.append(path)
            n, script = self.connections, self.script
        names = parse_qs(urlparse(path).query).get("streams", [""])[0].split("/")
        play = asyncio.create_task(script(self, n, ws, names))
        closed = asyncio.create_task(ws.wait_closed())
        try:
            await asyncio.wait((play, closed), return_when=asyncio.FIRST_COMPLETED)
            if play.done():
                play.result()
        finally:
            play.cancel()
            closed.cancel()
            await asyncio.gather(play, closed, return_exceptions=True)

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            self.rest_paths.append(path)
            self.rest_event.set()
            if urlparse(path).path not in ("/api/v3/depth", "/fapi/v1/depth") or not self.snapshots:
                status, body = b"404 Not Found", b'{"code":-1121,"msg":"Invalid symbol."}'
            else:
                status, body = (
                    b"200 OK",
                    self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0],
                )
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> FakeBinance:
        self._wss = await serve(self._ws, "127.0.0.1", 0)
        self._https = await asyncio.start_server(self._http, "127.0.0.1", 0)
        base = f"ws://127.0.0.1:{self._wss.sockets[0].getsockname()[1]}"
        self.ws_url = f"{base}/stream"
        #: USD-M's routes: a feed given ``public_url`` derives ``market_url`` for its trades.
        self.public_url = f"{base}/public/stream"
        self.market_url = f"{base}/market/stream"
        self.rest_url = f"http://127.0.0.1:{self._https.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        self._wss.close()
        self._https.close()
        await self._wss.wait_closed()
        await self._https.wait_closed()


async def send_frames(ws, frames: list[bytes], names: list[str]) -> None:
    """Send the frames whose stream the client subscribed to, as text frames, like the venue."""
    wanted = set(names)
    for f in frames:
        try:
            stream = orjson.loads(f).get("stream")
        except (
            orjson.JSONDecodeError,
            AttributeError,
        ):  # junk frames in a scripted session go out as they are
            stream = None
        if stream is None or stream in wanted:
            await ws.send(f.decode())


async def run_feed(feed, sink, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(feed.run(sink))
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()

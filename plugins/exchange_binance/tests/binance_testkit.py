"""Binance's part of the venue test kit: recorded sessions, Binance's book rules read the obvious way,
and a loopback Binance (combined-stream WebSocket server + REST depth endpoint) on the core's servers.

The loopback server answers any path: ``/stream`` (spot, or every stream on one path), and the USD-M
routes ``/public/stream`` (depth) and ``/market/stream`` (trades), whose connections are numbered apart.
Each connection gets only the frames of the streams its URL subscribed (frames without a stream, junk
in a scripted session, go to every connection), as the venue would send them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import orjson

from latentspeed_core.testing import (
    BookUpdate,
    LoopbackRestServer,
    LoopbackWsServer,
    ReferenceBook,
    TradePrint,
    WsConnection,
    fixtures_dir,
    with_raw,
)

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
#: The depth snapshot endpoint of each market.
SNAPSHOT_PATH = {"spot": "/api/v3/depth", "usdm": "/fapi/v1/depth"}
#: The depth streams the recordings subscribed to.
SPEED = {"spot": "100ms", "usdm": "0ms"}
TRADE_FRAME = "ws_spot_trade_combined_btcusdt_2024.json"


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


# -- Binance's rules, read the obvious way ---------------------------------------------------------
def read(frame) -> BookUpdate | list[TradePrint] | None:
    """A REST depth snapshot, a combined-stream depth update (absolute sizes; ``seq`` its last id
    ``u``), the trades to publish (``m``, buyer is maker: the taker sold), or None."""
    msg = frame if isinstance(frame, dict) else orjson.loads(frame)
    if not isinstance(msg, dict):
        return None
    if "lastUpdateId" in msg:
        return BookUpdate(msg["bids"], msg["asks"], msg["lastUpdateId"], snapshot=True)
    data = msg.get("data")
    kind = data.get("e") if isinstance(data, dict) else None
    if kind == "depthUpdate":
        return BookUpdate(data["b"], data["a"], data["u"])
    if kind == "trade":
        return [
            TradePrint(float(data["p"]), float(data["q"]), "sell" if data["m"] else "buy", str(data["t"]))
        ]
    return None


def expected_book(session: Session, upto: int | None = None, skip: int | None = None) -> ReferenceBook:
    """The book after applying the session's depth events (frame index < ``upto``, but ``skip``) to its
    snapshot, as a correct client does: the events the snapshot already holds do not apply."""
    book = ReferenceBook()
    book.update(read(session.snapshot))
    for i in session.depth_indices():
        if (upto is None or i < upto) and i != skip:
            book.update(read(session.frames[i]))
    return book


def snapshot_body(book: ReferenceBook) -> bytes:
    """``book`` as a REST depth snapshot (``lastUpdateId``: the id of its last update)."""
    bids, asks = book.decimal_levels()
    return orjson.dumps(
        {
            "lastUpdateId": book.seq,
            "bids": [[str(p), str(q)] for p, q in bids],
            "asks": [[str(p), str(q)] for p, q in asks],
        }
    )


def snapshot_at(session: Session, frame_index: int) -> bytes:
    """A venue snapshot taken right after depth frame ``frame_index`` (state and lastUpdateId)."""
    return snapshot_body(expected_book(session, upto=frame_index + 1))


def trade_frame(t: int, p: str | None = None, q: str | None = None) -> str:
    """The recorded spot trade frame with trade id ``t`` and the given price and quantity texts."""
    frame = orjson.loads((fixtures_dir() / "binance" / TRADE_FRAME).read_bytes())
    frame["data"]["t"] = t
    out = orjson.dumps(frame).decode()
    for key, raw in (("p", p), ("q", q)):
        if raw is not None:
            out = with_raw(out, ("data", key), raw)
    return out


# -- the loopback Binance ----------------------------------------------------------------------------
class FakeBinance(LoopbackWsServer):
    """Loopback Binance: ``?streams=…`` WebSocket endpoints and the REST depth endpoints.

    ``scripts`` play the depth (or spot) connections, ``market_scripts`` (default: ``scripts``) the
    USD-M ``/market`` ones, each numbered from 1 on its own route. ``snapshots`` are the depth answers
    (in order, the last repeating) on ``rest``, a server of the caller's or one of its own.
    """

    path = "/stream"

    def __init__(self, scripts, snapshots=(), market_scripts=None, rest: LoopbackRestServer | None = None):
        super().__init__(scripts)
        self.market_scripts = self.scripts if market_scripts is None else list(market_scripts)
        self._own_rest = rest is None
        self.rest = rest if rest is not None else LoopbackRestServer()
        if snapshots:
            self.serve_snapshots(*snapshots)

    def serve_snapshots(self, *bodies) -> None:
        """Answer depth requests of either market with ``bodies``, in order, the last repeating."""
        for path in SNAPSHOT_PATH.values():
            self.rest.serve(path, *bodies)

    # routes
    @property
    def depth_connections(self) -> list[WsConnection]:
        return [c for c in self.connections if not _is_market(c)]

    @property
    def market_connections(self) -> list[WsConnection]:
        return [c for c in self.connections if _is_market(c)]

    @property
    def paths(self) -> list[str]:
        return [c.path for c in self.depth_connections]

    @property
    def market_paths(self) -> list[str]:
        return [c.path for c in self.market_connections]

    @property
    def rest_paths(self) -> list[str]:
        return self.rest.requests

    @property
    def ws_url(self) -> str:
        return self.url

    @property
    def public_url(self) -> str:
        """USD-M's depth route: a feed given it derives ``market_url`` for its trades."""
        return f"ws://127.0.0.1:{self.port}/public/stream"

    @property
    def market_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/market/stream"

    @property
    def rest_url(self) -> str:
        return self.rest.url

    def script_for(self, conn: WsConnection):
        scripts = self.market_scripts if _is_market(conn) else self.scripts
        if not scripts:
            return None
        n = sum(1 for c in self.connections[: conn.number] if _is_market(c) == _is_market(conn))
        conn.state["route_number"] = n
        return scripts[min(n, len(scripts)) - 1]

    def outgoing(self, conn: WsConnection, frame):
        """Only the streams this connection subscribed to; frames without a stream go as they are."""
        wanted = conn.state.get("streams")
        if wanted is None:
            wanted = conn.state["streams"] = set(
                parse_qs(urlparse(conn.path).query).get("streams", [""])[0].split("/")
            )
        try:
            stream = (frame if isinstance(frame, dict) else orjson.loads(frame)).get("stream")
        except (orjson.JSONDecodeError, AttributeError):
            stream = None
        return frame if stream is None or stream in wanted else None

    async def start(self) -> FakeBinance:
        if self._own_rest:
            await self.rest.start()
        await super().start()
        return self

    async def stop(self) -> None:
        await super().stop()
        if self._own_rest:
            await self.rest.stop()


def _is_market(conn: WsConnection) -> bool:
    return urlparse(conn.path).path.startswith("/market/")


def frames_only(scripts: list) -> list:
    """One script holding every frame of ``scripts`` in order, without their actions and steps: a
    connection that sees the whole session and is never cut (USD-M's trades, beside a cut depth)."""
    return [[s for script in scripts for s in script if isinstance(s, bytes | str | dict)]]

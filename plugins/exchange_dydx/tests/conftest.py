"""Test helpers for the dYdX adapter: recorded frames, an independent reference book, a
collecting sink, and a local WebSocket server speaking the v4 indexer protocol on loopback.

The server (:class:`IndexerServer`) sends ``connected`` on each connection (``message_id`` 0),
stamps ``connection_id`` and a per-connection ``message_id`` on what the test sends (unless the
test sets one, to reorder), and hands the client's requests to the test, which plays the
scenario from the recorded frames in ``fixtures/dydx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from latentspeed_core.testing import fixtures_dir

# pytest runs with --import-mode=importlib: make the uniquely named order-entry emulator importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

SNAPSHOT = "ws_v4_orderbook_subscribed_eth-usd_100x100_nautilus.json"
BATCH = "ws_v4_orderbook_channel_batch_data_eth-usd_41updates_nautilus.json"
TRADES = "ws_v4_trades_channel_data_eth-usd_nautilus.json"
TRADES_DELEVERAGED = "ws_v4_trades_channel_data_eth-usd_deleveraged_nautilus.json"
ERROR = "ws_error_internal_error_nautilus.json"
SEQ = "unattributed/seq_v4_orderbook_eth-usd_connected_subscribed_batch.jsonl"


# -- recorded frames ---------------------------------------------------------------------------
def fixture_path(rel: str) -> Path:
    return fixtures_dir() / "dydx" / rel


def load_frame(rel: str) -> dict:
    return json.loads(fixture_path(rel).read_text())


def load_session(rel: str = SEQ) -> list[dict]:
    return [json.loads(line) for line in fixture_path(rel).read_text().splitlines() if line.strip()]


def frame(rel: str, **changes: Any) -> dict:
    """A recorded frame with some envelope fields replaced (``message_id``, ``id``...)."""
    msg = load_frame(rel)
    msg.update(changes)
    return msg


def unbatch(batch: dict, first_id: int) -> list[dict]:
    """The unbatched equivalent of a ``channel_batch_data`` frame: one ``channel_data`` per content."""
    out = []
    for i, contents in enumerate(batch["contents"]):
        msg = {k: v for k, v in batch.items() if k != "contents"}
        msg.update(type="channel_data", message_id=first_id + i, contents=copy.deepcopy(contents))
        out.append(msg)
    return out


def trades_subscribed(channel_data: dict, message_id: int) -> dict:
    """A ``subscribed`` for v4_trades carrying ``channel_data``'s trades as its history."""
    return {
        "type": "subscribed",
        "connection_id": channel_data["connection_id"],
        "message_id": message_id,
        "channel": "v4_trades",
        "id": channel_data["id"],
        "contents": copy.deepcopy(channel_data["contents"]),
    }


# -- an independent reference book: Decimal strings, dicts, the docs' uncross loop -----------------
class RefBook:
    """The dYdX guide's algorithm, done the slow obvious way: levels are ``[size, offset]`` keyed by
    Decimal price, sorted in full after every message, uncrossed by the older offset."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, list] = {}
        self.asks: dict[Decimal, list] = {}

    def apply(self, msg: dict) -> None:
        off = msg["message_id"]
        if msg["type"] == "subscribed":
            self.bids, self.asks = {}, {}
        contents = msg["contents"] if msg["type"] == "channel_batch_data" else [msg["contents"]]
        for c in contents:
            for side, levels in ((self.bids, c.get("bids") or []), (self.asks, c.get("asks") or [])):
                for lvl in levels:
                    p, q = (lvl["price"], lvl["size"]) if isinstance(lvl, dict) else (lvl[0], lvl[1])
                    if Decimal(q) > 0:
                        side[Decimal(p)] = [Decimal(q), off]
                    else:
                        side.pop(Decimal(p), None)
        self.uncross()

    def uncross(self) -> None:
        while self.bids and self.asks:
            bp = max(self.bids)
            ap = min(self.asks)
            if bp < ap:
                return
            (bq, bo), (aq, ao) = self.bids[bp], self.asks[ap]
            if bo < ao:
                del self.bids[bp]
            elif bo > ao:
                del self.asks[ap]
            elif bq > aq:
                del self.asks[ap]
                self.bids[bp][0] = bq - aq
            elif bq < aq:
                del self.bids[bp]
                self.asks[ap][0] = aq - bq
            else:
                del self.bids[bp]
                del self.asks[ap]

    def levels(self) -> tuple[list[list[float]], list[list[float]]]:
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        return [[float(p), float(v[0])] for p, v in bids], [[float(p), float(v[0])] for p, v in asks]


# -- a sink that keeps copies of what was published ---------------------------------------------
class Sink:
    def __init__(self) -> None:
        self.books: list[tuple[str, list, list]] = []
        self.trades: list = []
        self.crossed = 0

    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        if book.is_crossed():
            self.crossed += 1
        self.books.append((symbol, book.top_bids(10_000), book.top_asks(10_000)))

    def on_trade(self, feed, trade) -> None:
        self.trades.append(trade)

    def last(self, symbol: str) -> tuple[list, list]:
        for sym, bids, asks in reversed(self.books):
            if sym == symbol:
                return bids, asks
        raise AssertionError(f"no book published for {symbol}")

    def count(self, symbol: str) -> int:
        return sum(1 for s, _, _ in self.books if s == symbol)


# -- the local indexer ---------------------------------------------------------------------------
class Conn:
    """One client connection as the test sees it."""

    def __init__(self, ws, number: int) -> None:
        self.ws = ws
        self.number = number
        self.connection_id = str(uuid.uuid4())
        self.next_id = 1
        self.requests: asyncio.Queue[dict] = asyncio.Queue()

    async def send(self, msg: dict | str) -> None:
        """Send a frame; dicts get this connection's id and, unless set, the next message_id."""
        if isinstance(msg, dict):
            msg = dict(msg)
            msg["connection_id"] = self.connection_id
            if msg.get("message_id") is None:
                msg["message_id"] = self.next_id
            self.next_id = max(self.next_id, msg["message_id"]) + 1
            msg = json.dumps(msg, separators=(",", ":"))
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(msg)

    async def request(self, timeout: float = 5.0) -> dict:
        """The client's next message (subscribe / unsubscribe)."""
        return await asyncio.wait_for(self.requests.get(), timeout)

    async def subscriptions(self, n: int, timeout: float = 5.0) -> list[dict]:
        return [await self.request(timeout) for _ in range(n)]

    async def close(self) -> None:
        await self.ws.close()


class IndexerServer:
    def __init__(self) -> None:
        self.conns: asyncio.Queue[Conn] = asyncio.Queue()
        self.count = 0

    async def _handler(self, ws) -> None:
        self.count += 1
        conn = Conn(ws, self.count)
        await ws.send(json.dumps({"type": "connected", "connection_id": conn.connection_id, "message_id": 0}))
        self.conns.put_nowait(conn)
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                conn.requests.put_nowait(json.loads(raw))

    async def connection(self, timeout: float = 5.0) -> Conn:
        return await asyncio.wait_for(self.conns.get(), timeout)

    async def __aenter__(self) -> IndexerServer:
        self._srv = await serve(self._handler, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._srv.sockets[0].getsockname()[1]}/v4/ws"
        return self

    async def __aexit__(self, *exc) -> None:
        self._srv.close()
        await self._srv.wait_closed()


@contextlib.asynccontextmanager
async def running(feed, sink):
    """Run ``feed`` into ``sink`` for the body of the block, then cancel it."""
    feed.backoff_initial = 0.01
    feed.backoff_max = 0.05
    task = asyncio.create_task(feed.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(scope="session")
def kit():
    """This module: tests reach the helpers as ``kit.RefBook`` etc. (conftest is not importable
    by name under ``--import-mode=importlib``, and a shared name would clash across plugins)."""
    return sys.modules[__name__]

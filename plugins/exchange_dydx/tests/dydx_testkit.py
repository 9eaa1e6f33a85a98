"""dYdX's part of the venue test kit: recorded frames, the indexer's book rules read the obvious way,
and a loopback indexer speaking the v4 protocol (on the core's ``LoopbackWsServer``).

The server (:class:`IndexerServer`) sends ``connected`` on each connection (``message_id`` 0), stamps
``connection_id`` and a per-connection ``message_id`` on the dict frames it sends (unless a frame sets
one, to reorder), starts a connection's script once every (channel, market) it sends is subscribed,
and counts a subscribe to a market the client had unsubscribed as the request for a fresh snapshot.
Tests reach this module as the ``kit`` fixture (conftest.py).
"""

from __future__ import annotations

import contextlib
import copy
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from latentspeed_core.testing import (
    BookUpdate,
    LoopbackWsServer,
    RecordingSink,
    ReferenceBook,
    TradePrint,
    WsConnection,
    fixtures_dir,
)
from latentspeed_core.testing import (
    running as run_feed,
)

SNAPSHOT = "ws_v4_orderbook_subscribed_eth-usd_100x100_nautilus.json"
BATCH = "ws_v4_orderbook_channel_batch_data_eth-usd_41updates_nautilus.json"
TRADES = "ws_v4_trades_channel_data_eth-usd_nautilus.json"
TRADES_DELEVERAGED = "ws_v4_trades_channel_data_eth-usd_deleveraged_nautilus.json"
ERROR = "ws_error_internal_error_nautilus.json"
SEQ = "unattributed/seq_v4_orderbook_eth-usd_connected_subscribed_batch.jsonl"

#: The sink the dYdX tests use: every level of every published book.
Sink = RecordingSink


# -- recorded frames ---------------------------------------------------------------------------------
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


# -- the indexer's rules, read the obvious way ---------------------------------------------------------
def read(msg: dict | str | bytes) -> BookUpdate | list[TradePrint] | None:
    """A ``v4_orderbook`` message (the ``subscribed`` snapshot, or data with absolute sizes; a batch's
    contents joined in order; ``seq``: its ``message_id``), the trades to publish (``DELEVERAGED`` ones
    are transfers, not prints), or None."""
    if not isinstance(msg, dict):
        msg = json.loads(msg)
        if not isinstance(msg, dict):
            return None
    kind, channel = msg.get("type"), msg.get("channel")
    if kind not in ("subscribed", "channel_data", "channel_batch_data"):
        return None
    if channel == "v4_orderbook":
        contents = msg["contents"] if kind == "channel_batch_data" else [msg["contents"]]
        bids = [_pair(lv) for c in contents for lv in c.get("bids") or ()]
        asks = [_pair(lv) for c in contents for lv in c.get("asks") or ()]
        return BookUpdate(bids, asks, msg.get("message_id"), snapshot=kind == "subscribed")
    if channel == "v4_trades" and kind != "subscribed":  # a subscribed's trades are history
        contents = msg["contents"] if kind == "channel_batch_data" else [msg["contents"]]
        return [
            TradePrint(float(t["price"]), float(t["size"]), t["side"].lower(), t["id"])
            for c in contents
            for t in c["trades"]
            if t.get("type") != "DELEVERAGED"
        ]
    return None


def _pair(level) -> tuple:
    return (level["price"], level["size"]) if isinstance(level, dict) else (level[0], level[1])


class IndexerBook(ReferenceBook):
    """The dYdX guide's book: every level remembers the ``message_id`` that set it, and a crossed book is
    uncrossed by removing the level with the older id (equal ids: the smaller size is netted off the
    larger), done the slow obvious way after every message."""

    def __init__(self) -> None:
        super().__init__()
        self.offsets: dict[tuple[bool, Decimal], int] = {}

    def load(self, bids, asks, seq: int | None = None) -> None:
        self.offsets.clear()
        super().load(bids, asks, seq)

    def apply(self, bids, asks, seq: int | None = None) -> None:
        super().apply(bids, asks, seq)
        for is_bid, side, levels in ((True, self.bids, bids), (False, self.asks, asks)):
            for price, _ in levels:
                key = (is_bid, Decimal(price))
                if key[1] in side:
                    self.offsets[key] = seq or 0
                else:
                    self.offsets.pop(key, None)
        self.uncross()

    def apply_message(self, msg: dict) -> None:
        """Apply one recorded or scripted ``v4_orderbook`` message."""
        update = read(msg)
        assert isinstance(update, BookUpdate), msg
        self.update(update)

    def uncross(self) -> None:
        while self.bids and self.asks:
            bp, ap = max(self.bids), min(self.asks)
            if bp < ap:
                return
            bq, aq = self.bids[bp], self.asks[ap]
            bo, ao = self.offsets.get((True, bp), 0), self.offsets.get((False, ap), 0)
            if bo < ao:
                self._drop(True, bp)
            elif bo > ao:
                self._drop(False, ap)
            elif bq > aq:
                self._drop(False, ap)
                self.bids[bp] = bq - aq
            elif bq < aq:
                self._drop(True, bp)
                self.asks[ap] = aq - bq
            else:
                self._drop(True, bp)
                self._drop(False, ap)

    def _drop(self, is_bid: bool, price: Decimal) -> None:
        (self.bids if is_bid else self.asks).pop(price, None)
        self.offsets.pop((is_bid, price), None)


#: The dYdX tests' name for the reference book.
RefBook = IndexerBook


def snapshot_frame(book: ReferenceBook, symbol: str = "ETH-USD") -> dict:
    """A ``subscribed`` snapshot of ``book`` (its ``message_id`` the book's ``seq``), as the indexer sends
    on (re)subscribe."""
    bids, asks = book.decimal_levels()
    return {
        "type": "subscribed",
        "message_id": book.seq,
        "channel": "v4_orderbook",
        "id": symbol,
        "contents": {
            "bids": [{"price": str(p), "size": str(q)} for p, q in bids],
            "asks": [{"price": str(p), "size": str(q)} for p, q in asks],
        },
    }


# -- the loopback indexer ----------------------------------------------------------------------------
class IndexerConnection(WsConnection):
    """One client connection of the indexer: its id, and the client's requests as JSON."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.connection_id = str(uuid.uuid4())
        self.next_id = 1

    async def request(self, timeout: float = 5.0) -> dict:
        """The client's next message (subscribe / unsubscribe)."""
        return await self.next_json(timeout)

    async def subscriptions(self, n: int, timeout: float = 5.0) -> list[dict]:
        return [await self.request(timeout) for _ in range(n)]


class IndexerServer(LoopbackWsServer):
    path = "/v4/ws"
    connection_class = IndexerConnection

    async def greet(self, conn: IndexerConnection) -> None:
        await conn.send_raw({"type": "connected", "connection_id": conn.connection_id, "message_id": 0})

    def outgoing(self, conn: IndexerConnection, msg):
        """Dicts get this connection's id and, unless set, the next message_id."""
        if isinstance(msg, dict):
            msg = dict(msg)
            msg["connection_id"] = conn.connection_id
            if msg.get("message_id") is None:
                msg["message_id"] = conn.next_id
            conn.next_id = max(conn.next_id, msg["message_id"]) + 1
        return msg

    def ready(self, conn: WsConnection, script) -> bool:
        needed = {(s["channel"], s["id"]) for s in script if isinstance(s, dict) and "channel" in s}
        return needed <= _subscribed(conn)

    def wants_snapshot(self, conn: WsConnection, message: str) -> bool:
        msg = json.loads(message)
        return msg.get("type") == "subscribe" and (msg.get("channel"), msg.get("id")) in conn.state.get(
            "unsubscribed", set()
        )

    async def respond(self, conn: WsConnection, message: str) -> None:
        msg = json.loads(message)
        key = (msg.get("channel"), msg.get("id"))
        unsubscribed = conn.state.setdefault("unsubscribed", set())
        if msg.get("type") == "subscribe":
            _subscribed(conn).add(key)
            unsubscribed.discard(key)
        elif msg.get("type") == "unsubscribe":
            _subscribed(conn).discard(key)
            unsubscribed.add(key)


def _subscribed(conn: WsConnection) -> set:
    return conn.state.setdefault("subscribed", set())


@contextlib.asynccontextmanager
async def running(feed, sink):
    """Run ``feed`` into ``sink`` for the body of the block (reconnecting fast), then cancel it."""
    feed.backoff_initial = 0.01
    feed.backoff_max = 0.05
    async with run_feed(feed, sink) as task:
        yield task

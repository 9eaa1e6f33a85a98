"""Pure functions over dYdX v4 indexer WebSocket frames: subscribe requests, levels, trades, errors.

Free of I/O and state so the recorded fixtures test them directly; the per-market
book state and the offsets rule live in book.py, the connection logic in feed.py.
Field names follow the indexer WebSocket docs
(https://docs.dydx.xyz/indexer-client/websockets, formerly
https://docs.dydx.exchange/api_integration-indexer/indexer_websocket).

The hot path decodes with msgspec: first the envelope with ``contents`` left raw (its shape
depends on ``type`` and ``channel``), then the contents into slotted structs whose quoted
prices and sizes become floats inside msgspec's C decoder (a Python ``float()`` per string
cost about as much as the rest of a level update). A frame that does not fit the typed shapes
is left to the dict path in feed.py, which owns every error rule.

Impossible numbers: msgspec and ``float()`` read ``"NaN"``, ``"inf"`` and ``"-3000"`` as floats, so
levels are checked where they enter the book (book.py, and :func:`snapshot_levels` for the dict
path) and trades here: a trade whose price or size is not finite and > 0 makes its message
malformed (``ValueError``).
"""

from __future__ import annotations

import calendar
import re
from typing import Any

import msgspec
import orjson

from latentspeed_core.book import check_levels
from latentspeed_core.types import Trade

EXCHANGE = "DYDX"
_INF = float("inf")
#: Production indexer endpoint ("For the deployment by DYDX token holders").
WS_URL = "wss://indexer.dydx.trade/v4/ws"
BOOK = "v4_orderbook"
TRADES = "v4_trades"

_SIDES = {"BUY": "buy", "SELL": "sell"}
#: Trade types that are not prints of the order book: deleveraging moves positions at the
#: bankruptcy price between accounts (see the recorded DELEVERAGED frame's off-market price).
DELEVERAGED = "DELEVERAGED"
#: The indexer's transient failure to build a subscription's initial response (socks
#: subscription.ts); the v4 web client and NautilusTrader answer it by subscribing again.
TRANSIENT_ERROR = "Internal error, could not fetch data for subscription"
_ERROR_CHANNEL = re.compile(r"subscription: (v4_[a-z_]+)")


class Envelope(msgspec.Struct, gc=False):
    """The fields every data message carries; ``contents`` is decoded once its shape is known."""

    type: str
    channel: str
    id: str
    message_id: int
    contents: msgspec.Raw


class BookContents(msgspec.Struct, gc=False):
    """``v4_orderbook`` ``channel_data`` contents: ``[price, size]`` pairs as floats (either side may be absent)."""

    bids: list[tuple[float, float]] | None = None
    asks: list[tuple[float, float]] | None = None


class PriceSize(msgspec.Struct, gc=False):
    price: float
    size: float


class SnapshotContents(msgspec.Struct, gc=False):
    """``v4_orderbook`` ``subscribed`` contents: ``{"price", "size"}`` objects."""

    bids: list[PriceSize] | None = None
    asks: list[PriceSize] | None = None


class TradeItem(msgspec.Struct, gc=False):
    id: str
    side: str
    size: float
    price: float
    createdAt: str  # noqa: N815 - the indexer's field name
    type: str | None = None


class TradeContents(msgspec.Struct, gc=False):
    trades: list[TradeItem]


_envelope = msgspec.json.Decoder(Envelope)
# strict=False: accept the indexer's quoted numbers ("3393.2") for float fields, converted in C.
_book = msgspec.json.Decoder(BookContents, strict=False)
_book_batch = msgspec.json.Decoder(list[BookContents], strict=False)
_snapshot = msgspec.json.Decoder(SnapshotContents, strict=False)
_trades = msgspec.json.Decoder(TradeContents, strict=False)
_trades_batch = msgspec.json.Decoder(list[TradeContents], strict=False)


def envelope(data: bytes | str) -> Envelope | None:
    """The envelope of a data message, or None (not one, or malformed: the dict path handles it)."""
    try:
        return _envelope.decode(data)
    except msgspec.DecodeError:  # includes ValidationError
        return None


def book_levels(env: Envelope) -> tuple[list, list] | None:
    """``(bids, asks)`` float pairs of a ``channel_data`` or ``channel_batch_data`` book message, in order.

    A batch shares one ``message_id``, so its contents are one message: concatenating each side
    keeps the per-price order (later wins) that applying them one by one would give.
    """
    try:
        if env.type == "channel_data":
            c = _book.decode(env.contents)
            return c.bids or [], c.asks or []
        bids: list = []
        asks: list = []
        for c in _book_batch.decode(env.contents):
            if c.bids:
                bids += c.bids
            if c.asks:
                asks += c.asks
        return bids, asks
    except msgspec.DecodeError:
        return None


def snapshot_contents(env: Envelope) -> tuple[list, list] | None:
    """``(bids, asks)`` float pairs of a ``subscribed`` book message, or None if it does not fit."""
    try:
        c = _snapshot.decode(env.contents)
    except msgspec.DecodeError:
        return None
    return [(lv.price, lv.size) for lv in c.bids or ()], [(lv.price, lv.size) for lv in c.asks or ()]


def trade_contents(env: Envelope) -> list[TradeContents] | None:
    """The trade contents of a ``v4_trades`` data message (one, or a batch's many), or None."""
    try:
        if env.type == "channel_data":
            return [_trades.decode(env.contents)]
        return _trades_batch.decode(env.contents)
    except msgspec.DecodeError:
        return None


def subscribe_message(channel: str, market: str, batched: bool) -> str:
    """``{"type":"subscribe","channel":"v4_orderbook","id":"BTC-USD","batched":false}``."""
    return orjson.dumps({"type": "subscribe", "channel": channel, "id": market, "batched": batched}).decode()


def unsubscribe_message(channel: str, market: str) -> str:
    return orjson.dumps({"type": "unsubscribe", "channel": channel, "id": market}).decode()


def snapshot_levels(levels: Any) -> list[tuple[float, float]]:
    """``subscribed`` levels: ``[{"price": "3393.2", "size": "7.795"}, ...]`` → ``[(price, size)]``.

    The pair form ``["price", "size"]`` of ``channel_data`` is accepted too. ``ValueError`` for a
    level no book can hold (a snapshot built on it would publish it).
    """
    if not levels:
        return []
    out = []
    for lvl in levels:
        if isinstance(lvl, dict):
            out.append((float(lvl["price"]), float(lvl["size"])))
        else:
            out.append((float(lvl[0]), float(lvl[1])))
    return check_levels(out)  # ValueError for a level no book can hold


def iso_to_ns(stamp: str, _cache: list = ["", 0]) -> int:  # noqa: B006 - one-entry cache of the second
    """``2024-07-24T19:12:35.705Z`` → ns since the epoch (UTC), without datetime objects.

    Trades of one block share their second, so the calendar arithmetic runs once per second.
    """
    head = stamp[:19]
    if head != _cache[0]:
        secs = calendar.timegm(
            (
                int(head[0:4]),
                int(head[5:7]),
                int(head[8:10]),
                int(head[11:13]),
                int(head[14:16]),
                int(head[17:19]),
            )
        )
        _cache[0] = head
        _cache[1] = secs * 1_000_000_000
    frac = stamp[20:].rstrip("Z") if len(stamp) > 20 else ""
    return _cache[1] + (int(frac[:9].ljust(9, "0")) if frac else 0)


def parse_trades(
    contents: Any, symbol: str, receipt_ns: int, deleveraged: bool = False, seen: set | None = None
) -> list[Trade]:
    """``{"trades": [...]}`` → trades in the order given. Side is the taker side (``BUY``/``SELL``).

    ``seen`` holds ids from the ``subscribed`` snapshot: those were printed before we subscribed.
    ``ValueError`` if a trade to publish has a price or size that is not finite and > 0.
    """
    out = []
    for t in contents["trades"]:
        if not deleveraged and t.get("type") == DELEVERAGED:
            continue
        tid = t["id"]
        if seen and tid in seen:
            continue
        price = float(t["price"])
        size = float(t["size"])
        if not (0.0 < price < _INF and 0.0 < size < _INF):
            raise _bad_trade(price, size)
        out.append(
            Trade(
                EXCHANGE,
                symbol,
                iso_to_ns(t["createdAt"]),
                receipt_ns,
                price,
                size,
                _SIDES[t["side"]],
                tid,
            )
        )
    return out


def _bad_trade(price: float, size: float) -> ValueError:
    """The error for a trade no venue prints (only built when one is found: the check stays two comparisons)."""
    return ValueError(f"impossible trade: price {price!r} size {size!r}")


def typed_trades(
    contents: TradeContents, symbol: str, receipt_ns: int, deleveraged: bool = False, seen: set | None = None
) -> list[Trade]:
    """:func:`parse_trades` for typed contents (numbers already converted)."""
    out = []
    for t in contents.trades:
        if not deleveraged and t.type == DELEVERAGED:
            continue
        tid = t.id
        if seen and tid in seen:
            continue
        price = t.price
        size = t.size
        if not (0.0 < price < _INF and 0.0 < size < _INF):
            raise _bad_trade(price, size)
        out.append(
            Trade(EXCHANGE, symbol, iso_to_ns(t.createdAt), receipt_ns, price, size, _SIDES[t.side], tid)
        )
    return out


def error_target(msg: dict) -> tuple[str | None, str | None]:
    """The (channel, id) an ``error`` message is about, as far as it says.

    Current indexers put ``channel`` and ``id`` on subscription errors; older ones
    (the recorded fixture) name only the channel inside the text.
    """
    channel = msg.get("channel")
    market = msg.get("id")
    if channel is None:
        m = _ERROR_CHANNEL.search(msg.get("message") or "")
        if m:
            channel = m.group(1)
    return channel, market

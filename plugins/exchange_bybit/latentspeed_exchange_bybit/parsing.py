"""Pure functions over Bybit v5 public WebSocket frames: symbols, topics, levels, trades, op replies.

Kept free of I/O and state so the recorded fixtures can test them directly; the
feed (feed.py) owns the per-symbol book state and the continuity rule.
Field names follow https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook
and https://bybit-exchange.github.io/docs/v5/websocket/public/trade.

The hot path (:func:`decode`) turns a topic frame into slotted msgspec structs: trade prices and
sizes become floats inside msgspec's C decoder, and a book's ``b``/``a`` level arrays stay raw JSON
(``msgspec.Raw``, a view of the frame) that the core book parses straight into itself
(``L2Book.apply_json``): a Python ``float()`` per string cost ~0.37 µs a level, two thirds of a
level update, and even msgspec's float-and-tuple objects per level were most of what was left. Anything that does not fit the typed
shape (op replies, unknown or malformed frames) is left to the dict path in feed.py, which
owns every error rule, so the typed path changes speed, not behaviour.

A level or trade no venue can send (NaN, inf, a price <= 0, a negative size, a trade of size 0)
makes its frame malformed: the parsers here raise ``ValueError``, like the core book does for raw
levels, so nothing of such a frame is published.
"""

from __future__ import annotations

from typing import Any

import msgspec

from latentspeed_core.book import check_levels
from latentspeed_core.types import Trade

EXCHANGE = "BYBIT"
_INF = float("inf")

#: Production public endpoints per market (https://bybit-exchange.github.io/docs/v5/ws/connect).
WS_URLS = {
    "spot": "wss://stream.bybit.com/v5/public/spot",
    "linear": "wss://stream.bybit.com/v5/public/linear",
    "inverse": "wss://stream.bybit.com/v5/public/inverse",
}

#: Orderbook depths each market offers. The current docs list 1/50/200/1000 for every market;
#: linear and inverse offered 500 until 2025 (the recorded XRPUSDT session uses orderbook.500).
DEPTHS = {
    "spot": (1, 50, 200, 1000),
    "linear": (1, 50, 200, 500, 1000),
    "inverse": (1, 50, 200, 500, 1000),
}

#: "Spot can input up to 10 args for each subscription request sent to one connection"
#: (connect page, "Public channel - Args limits"); futures have no count limit, only the
#: 21,000-character cap on the args of one connection.
SPOT_MAX_ARGS = 10
MAX_ARGS_CHARS = 21_000

PING = '{"op":"ping"}'


def to_venue_symbol(symbol: str) -> str:
    """``BTC-USDT`` → ``BTCUSDT`` (Bybit writes symbols without a separator)."""
    return symbol.replace("-", "").upper()


def book_topic(depth: int, venue_symbol: str) -> str:
    return f"orderbook.{depth}.{venue_symbol}"


def trade_topic(venue_symbol: str) -> str:
    return f"publicTrade.{venue_symbol}"


def batch_args(topics: list[str], max_args: int | None, max_chars: int = MAX_ARGS_CHARS) -> list[list[str]]:
    """Split topics into subscribe requests of at most ``max_args`` args and ``max_chars`` characters."""
    out: list[list[str]] = []
    current: list[str] = []
    chars = 0
    for topic in topics:
        cost = len(topic) + 3  # quotes and comma as serialised
        if current and ((max_args is not None and len(current) >= max_args) or chars + cost > max_chars):
            out.append(current)
            current, chars = [], 0
        current.append(topic)
        chars += cost
    if current:
        out.append(current)
    return out


class BookData(msgspec.Struct, gc=False):
    """``data`` of an ``orderbook.{depth}.{symbol}`` frame; ``b``/``a`` are raw ``[["price", "size"], ...]``."""

    b: msgspec.Raw
    a: msgspec.Raw
    #: As sent (lax decoding would turn ``"5"`` or ``5.0`` into 5): the feed rejects a non-int ``u``.
    u: int | float | str


class TradeData(msgspec.Struct, gc=False):
    """One entry of a ``publicTrade.{symbol}`` frame's ``data`` list."""

    T: int  # noqa: N815 - Bybit's field names
    S: str  # noqa: N815
    v: float
    p: float
    i: str


class Frame(msgspec.Struct, gc=False):
    """A topic frame: an order book (``data`` object) or a trade list (``data`` array)."""

    topic: str
    type: str
    ts: int | float | str  # as sent, like ``u``
    data: BookData | list[TradeData]


# strict=False: accept Bybit's quoted numbers ("1.9531") for float fields, converted in C.
_frame = msgspec.json.Decoder(Frame, strict=False)


def decode(data: bytes | str) -> Frame | None:
    """A topic frame in typed form, or None when the frame does not fit (the dict path handles it)."""
    try:
        return _frame.decode(data)
    except msgspec.DecodeError:  # includes ValidationError
        return None


def levels(raw: list[list[str]]) -> list[tuple[float, float]]:
    """``[["1.9531","6203"], ...]`` → ``[(1.9531, 6203.0), ...]`` (absolute sizes; 0 deletes).

    ``ValueError`` for a level the book must not hold (``"inf"``, ``"-5"``, ``"0"`` as a price...).
    """
    return check_levels([(float(p), float(q)) for p, q in raw])


def side(taker: str) -> str:
    """Trade side from ``S``: the taker's side, ``Buy`` or ``Sell``."""
    if taker == "Buy":
        return "buy"
    if taker == "Sell":
        return "sell"
    raise ValueError(f"unknown trade side {taker!r}")


def check_trade(price: float, size: float) -> None:
    """``ValueError`` unless price and size are finite and > 0: a frame with such a trade is malformed."""
    if not (0.0 < price < _INF and 0.0 < size < _INF):
        raise ValueError(f"impossible trade: price {price!r} size {size!r}")


def trades(msg: dict[str, Any], symbol: str, receipt_ns: int) -> list[Trade]:
    """The trades of one ``publicTrade.{symbol}`` frame (one frame may carry many); ``ValueError`` for
    the whole frame if any of them is malformed or impossible."""
    out = []
    for t in msg["data"]:
        price = float(t["p"])
        size = float(t["v"])
        check_trade(price, size)
        out.append(
            Trade(
                EXCHANGE,
                symbol,
                int(t["T"]) * 1_000_000,
                receipt_ns,
                price,
                size,
                side(t["S"]),
                str(t["i"]),
            )
        )
    return out


def typed_trades(items: list[TradeData], symbol: str, receipt_ns: int) -> list[Trade]:
    """:func:`trades` for a typed frame (numbers already converted; msgspec reads ``"NaN"`` and ``"inf"``
    as floats, so they are checked here)."""
    out = []
    for t in items:
        p = t.p
        v = t.v
        if not (0.0 < p < _INF and 0.0 < v < _INF):
            check_trade(p, v)  # raises
        out.append(Trade(EXCHANGE, symbol, t.T * 1_000_000, receipt_ns, p, v, side(t.S), t.i))
    return out


def op_kind(msg: dict[str, Any]) -> str:
    """Classify a non-topic frame: ``pong``, ``subscribe``, ``unsubscribe``, or ``unknown``.

    Public spot/linear/inverse answer a ping with ``{"success":true,"ret_msg":"pong","op":"ping"}``;
    option/private answer ``{"op":"pong","args":[...]}`` (both documented on the connect page).
    """
    op = msg.get("op")
    if op == "pong" or (op == "ping" and msg.get("ret_msg") == "pong"):
        return "pong"
    if op in ("subscribe", "unsubscribe"):
        return op
    return "unknown"

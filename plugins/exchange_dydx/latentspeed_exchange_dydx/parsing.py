"""Pure functions over dYdX v4 indexer WebSocket frames: subscribe requests, levels, trades, errors.

Free of I/O and state so the recorded fixtures test them directly; the per-market
book state and the offsets rule live in book.py, the connection logic in feed.py.
Field names follow the indexer WebSocket docs
(https://docs.dydx.xyz/indexer-client/websockets, formerly
https://docs.dydx.exchange/api_integration-indexer/indexer_websocket).
"""

from __future__ import annotations

import calendar
import re
from typing import Any

import orjson

from latentspeed_core.types import Trade

EXCHANGE = "DYDX"
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


def subscribe_message(channel: str, market: str, batched: bool) -> str:
    """``{"type":"subscribe","channel":"v4_orderbook","id":"BTC-USD","batched":false}``."""
    return orjson.dumps({"type": "subscribe", "channel": channel, "id": market, "batched": batched}).decode()


def unsubscribe_message(channel: str, market: str) -> str:
    return orjson.dumps({"type": "unsubscribe", "channel": channel, "id": market}).decode()


def snapshot_levels(levels: Any) -> list[tuple[float, float]]:
    """``subscribed`` levels: ``[{"price": "3393.2", "size": "7.795"}, ...]`` → ``[(price, size)]``.

    The pair form ``["price", "size"]`` of ``channel_data`` is accepted too.
    """
    if not levels:
        return []
    out = []
    for lvl in levels:
        if isinstance(lvl, dict):
            out.append((float(lvl["price"]), float(lvl["size"])))
        else:
            out.append((float(lvl[0]), float(lvl[1])))
    return out


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
    """
    out = []
    for t in contents["trades"]:
        if not deleveraged and t.get("type") == DELEVERAGED:
            continue
        tid = t["id"]
        if seen and tid in seen:
            continue
        out.append(
            Trade(
                EXCHANGE,
                symbol,
                iso_to_ns(t["createdAt"]),
                receipt_ns,
                float(t["price"]),
                float(t["size"]),
                _SIDES[t["side"]],
                tid,
            )
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

"""Pure Binance message parsing: frames in, plain values out; no I/O, no state.

The hot path decodes with msgspec into slotted structs; trade price/qty strings become floats
inside the C decoder (``strict=False`` accepts Binance's quoted numbers). A depth event's level
arrays stay raw JSON (``msgspec.Raw``, a view of the frame): the core book's ``apply_json``
parses them straight into the book, with no float or tuple object per level.
A frame that is not one of the expected events (request answers, errors, anything new)
falls back to orjson and a plain dict. A malformed depth event fails as a whole
(at decode, or in ``apply_json``, which checks both sides before changing anything), before any
of it can touch a book. A level or trade no venue can send (NaN, inf, a price <= 0, a negative
size, a trade of size 0) is malformed too: ``ValueError``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import msgspec
import orjson

from latentspeed_core.book import check_levels
from latentspeed_core.types import Trade

EXCHANGE = "BINANCE"
_INF = float("inf")

#: Production endpoints per market (combined-stream base URL, REST base URL, snapshot path).
#: USD-M: Binance split the streams by route (Important WebSocket Change Notice, 2026-03-06; legacy URLs
#: retired 2026-04-23): depth and bookTicker on ``/public``, trades (``aggTrade``), markPrice, kline… on
#: ``/market``, user data on ``/private``. So USD-M depth and trades need two connections.
WS_URLS = {"spot": "wss://stream.binance.com:9443/stream", "usdm": "wss://fstream.binance.com/public/stream"}
#: USD-M trades base (the ``/market`` route); spot carries trades on ``WS_URLS["spot"]``.
TRADES_WS_URLS = {"usdm": "wss://fstream.binance.com/market/stream"}
#: Binance's USD-M stream hosts (production, testnet), where the route decides which streams push data.
USDM_HOSTS = ("fstream.binance.com", "fstream.binancefuture.com")
REST_URLS = {"spot": "https://api.binance.com", "usdm": "https://fapi.binance.com"}
DEPTH_PATHS = {"spot": "/api/v3/depth", "usdm": "/fapi/v1/depth"}
#: Diff-depth update speeds offered per market (spot: 1000ms/100ms; USD-M: 250ms default, 500ms, 100ms,
#: and the 0ms stream the recorded USD-M session used).
DEPTH_SPEEDS = {"spot": ("100ms", "1000ms"), "usdm": ("0ms", "100ms", "250ms", "500ms")}
DEFAULT_SPEED = {"spot": "1000ms", "usdm": "250ms"}
#: Snapshot sizes: spot takes 1..5000; USD-M takes only these values.
USDM_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
#: Streams allowed on one connection (both markets' "Websocket Market Streams" pages: 1024).
MAX_STREAMS = {"spot": 1024, "usdm": 1024}

loads = orjson.loads


class Depth(msgspec.Struct, tag_field="e", tag="depthUpdate", gc=False):
    """A diff-depth event: levels ``b``/``a`` as raw JSON ``[["price", "qty"], ...]``, absolute sizes."""

    s: str
    U: int
    u: int
    b: msgspec.Raw
    a: msgspec.Raw
    E: int = 0
    T: int = 0
    pu: int = -1  # USD-M only: the previous event's u


class TradeEvent(msgspec.Struct, tag_field="e", tag="trade", gc=False):
    s: str
    t: int
    p: float
    q: float
    T: int
    m: bool  # buyer is the maker: the taker sold


class AggTradeEvent(msgspec.Struct, tag_field="e", tag="aggTrade", gc=False):
    s: str
    a: int
    p: float
    q: float
    T: int
    m: bool


class ServerShutdown(msgspec.Struct, tag_field="e", tag="serverShutdown", gc=False):
    E: int = 0


Event = Depth | TradeEvent | AggTradeEvent | ServerShutdown


class Combined(msgspec.Struct, gc=False):
    """The combined-stream wrapper ``{"stream": …, "data": …}``."""

    stream: str
    data: Event


class Snapshot(msgspec.Struct, gc=False):
    lastUpdateId: int  # noqa: N815 (Binance's field name)
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


class RawSnapshot(msgspec.Struct, gc=False):
    """A depth snapshot with its level arrays left as raw JSON, for the book's ``load_json_plain``."""

    lastUpdateId: int  # noqa: N815 (Binance's field name)
    bids: msgspec.Raw
    asks: msgspec.Raw


_combined = msgspec.json.Decoder(Combined, strict=False)
_event = msgspec.json.Decoder(Event, strict=False)
_snapshot = msgspec.json.Decoder(Snapshot, strict=False)

#: The fast path of a REST snapshot (``msgspec.DecodeError``, a ``ValueError``, if it is not one):
#: ``lastUpdateId`` read as :func:`parse_snapshot` reads it, the levels left raw. A book's
#: ``load_json_plain`` takes them when every number is a plain decimal (Binance sends nothing else):
#: exactly the floats :func:`parse_snapshot` gives, with no float or tuple object per level, and no
#: level checked in Python. Anything it refuses goes to :func:`parse_snapshot`, which decides.
decode_snapshot_raw = msgspec.json.Decoder(RawSnapshot, strict=False).decode


#: The hot path: a combined-stream frame → ``Combined`` (its ``.data`` is the typed event).
#: Raises ``msgspec.ValidationError`` for anything else (then use :func:`decode_other`).
decode_combined = _combined.decode
ValidationError = msgspec.ValidationError


def decode(data: bytes | str) -> Event | dict:
    """One frame → a typed event (combined wrapper or raw stream), else a plain dict (slow path).

    Raises ``ValueError`` for frames that are not JSON objects or that are malformed known events.
    """
    try:
        return decode_combined(data).data
    except ValidationError:
        return decode_other(data)


def decode_other(data: bytes | str) -> Event | dict:
    """A frame that is not a well-formed combined-stream event: a raw stream event, else a plain dict."""
    msg = parse_frame(data)
    if msg.get("e") in _KNOWN:  # a known event that does not validate: malformed
        try:
            return _event.decode(orjson.dumps(msg))
        except msgspec.ValidationError as exc:
            raise ValueError(f"malformed {msg.get('e')} event: {exc}") from None
    return msg


_KNOWN = ("depthUpdate", "trade", "aggTrade", "serverShutdown")


def venue_symbol(symbol: str) -> str:
    """``BTC-USDT`` → ``BTCUSDT`` (Binance symbols are the base and quote concatenated)."""
    return symbol.replace("-", "").upper()


def streams(
    symbols: list[str], depth_speed: str, trade_channel: str | None, market: str = "spot"
) -> list[str]:
    """Combined-stream names, e.g. ``btcusdt@depth@100ms`` and ``btcusdt@trade`` (lower case).

    The market's default speed has no suffix: spot ``@depth`` is 1000ms, USD-M ``@depth`` is 250ms.
    """
    out = []
    for s in symbols:
        v = venue_symbol(s).lower()
        out.append(f"{v}@depth" if depth_speed == DEFAULT_SPEED[market] else f"{v}@depth@{depth_speed}")
        if trade_channel:
            out.append(f"{v}@{trade_channel}")
    return out


def trade_streams(symbols: list[str], trade_channel: str) -> list[str]:
    """The trade streams alone (``btcusdt@trade``): what the USD-M ``/market`` connection subscribes."""
    return [f"{venue_symbol(s).lower()}@{trade_channel}" for s in symbols]


def route(url: str) -> str:
    """The first path segment of a WebSocket URL: ``public``, ``market``, ``private`` or ``stream`` (legacy)."""
    return urlsplit(url).path.lstrip("/").split("/", 1)[0]


def market_route_url(ws_url: str) -> str:
    """The trades base that goes with a USD-M depth base: its ``/public/`` route swapped for ``/market/``
    (production and testnet alike); a URL without that route (a proxy, a test server) is kept as it is."""
    parts = urlsplit(ws_url)
    if route(ws_url) != "public":
        return ws_url
    return urlunsplit(parts._replace(path=parts.path.replace("/public", "/market", 1)))


def combined_url(base: str, names: list[str]) -> str:
    """``wss://.../stream?streams=a/b``: subscriptions ride in the URL, so no SUBSCRIBE messages count
    against the 5-messages-per-second incoming limit, and every reconnect resubscribes."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}streams={'/'.join(names)}"


def snapshot_url(rest_url: str, market: str, symbol: str, limit: int) -> str:
    return f"{rest_url.rstrip('/')}{DEPTH_PATHS[market]}?symbol={venue_symbol(symbol)}&limit={limit}"


def unwrap(msg: dict) -> dict:
    """The event of a frame: the ``data`` of a combined-stream wrapper ``{"stream":…,"data":…}``, or the frame."""
    data = msg.get("data")
    return data if data is not None and "stream" in msg else msg


def parse_frame(data: bytes | str) -> dict:
    """Decode one frame and return its event payload (combined-stream wrapper removed)."""
    msg = loads(data)
    if type(msg) is not dict:
        raise ValueError(f"expected a JSON object, got {type(msg).__name__}")
    return unwrap(msg)


def parse_snapshot(body: bytes | str) -> tuple[int, list[tuple[float, float]], list[tuple[float, float]]]:
    """``GET /api/v3/depth`` or ``/fapi/v1/depth`` → ``(lastUpdateId, bids, asks)`` with float pairs.

    ``ValueError`` if it is not one, or if a level is impossible (the book must not be built on it).
    """
    try:
        snap = _snapshot.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(f"not a depth snapshot ({exc}): {_text(body)[:120]}") from None
    check_levels(snap.bids)
    check_levels(snap.asks)
    return snap.lastUpdateId, snap.bids, snap.asks


def _text(body: bytes | str) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def event_time_ns(event: Depth) -> int:
    """Venue time of a depth event in ns: the transaction time ``T`` where given (USD-M), else ``E``."""
    return (event.T or event.E) * 1_000_000


def parse_trade(event: TradeEvent | AggTradeEvent, symbol: str, receipt_ns: int) -> Trade:
    """A ``trade`` or ``aggTrade`` event → :class:`Trade`. ``m`` (buyer is maker) true means the taker sold.

    ``ValueError`` for a price or quantity that is not finite and > 0 (``"NaN"``, ``"inf"``, ``"-5"``,
    ``"0"``): msgspec reads those strings as floats, and no venue prints such a trade.
    """
    if not (0.0 < event.p < _INF and 0.0 < event.q < _INF):
        raise ValueError(f"impossible trade: price {event.p!r} quantity {event.q!r}")
    return Trade(
        EXCHANGE,
        symbol,
        event.T * 1_000_000,
        receipt_ns,
        event.p,
        event.q,
        "sell" if event.m else "buy",
        str(event.t if type(event) is TradeEvent else event.a),
    )

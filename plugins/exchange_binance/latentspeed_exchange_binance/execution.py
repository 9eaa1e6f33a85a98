"""The ``binance`` execution venue: signed order entry, own fills, limits and reconciliation.

Channels (plugin README, "Order entry"):

- **Orders and cancels** go over the WebSocket API (spot ``order.place`` / ``order.cancel`` on
  ``ws-api``, USD-M the same methods on ``ws-fapi``): one persistent connection, one signed text
  frame per request, written synchronously from ``send_new_order``; answers come back on it with
  the venue's ``rateLimits``.
- **Own fills**: spot subscribes the user data stream on that same connection
  (``userDataStream.subscribe.signature``, the listenKey REST endpoints are retired); USD-M opens a
  ``listenKey`` (REST) and reads ``ORDER_TRADE_UPDATE`` on the ``/private`` stream.
- **REST** for what is rare: server time, ``exchangeInfo``, and reconciliation (open orders, order
  status by ``origClientOrderId``, account trades), each call weighed against the IP budget.

Rules followed: requests signed as documented (:mod:`.signing`); ``timestamp`` from the server
clock (offset measured at every connect, re-measured after a -1021) with ``recvWindow``; orders
that break the symbol's filters refused before sending (a counted risk-style reject naming the
filter); order counts and request weight tracked from exchangeInfo limits and every answer
(headers ``X-MBX-USED-WEIGHT-*`` / ``X-MBX-ORDER-COUNT-*``, WebSocket ``rateLimits``) and never
exceeded; HTTP or WebSocket 429/418 stop all requests until ``Retry-After`` / ``retryAfter``.

After any drop (order connection or user stream) the engine is told (its open orders become
unknown); on reconnect, with the user stream already subscribed and its events held back, every
order not known final is looked up (open orders per symbol, else by ``origClientOrderId``, and its
trades when it filled more than we saw) and reported, so every order ends known; fills are keyed
by trade id, so one seen twice (stream and REST) counts once. Then the held events are applied.

Fees: every fill report carries the commission Binance charged for it valued in the quote asset
(:func:`commission_in_quote`), or None when it cannot be valued here (the engine then charges its
``fees`` config rate).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from latentspeed_core.live import Backoff, InstrumentRules, check_order, http_request
from latentspeed_core.logs import RateLimitedLog
from latentspeed_core.types import ExecType, ExecutionReport, Order, OrdType, RejectReason, Side, TimeInForce
from latentspeed_core.venue import Instrument, Venue, VenueListener

from .config import ENV_PREFIX, BinanceVenueConfig
from .signing import Signer, query_string, ws_payload
from .wsclient import WsClient

log = logging.getLogger("latentspeed_exchange_binance.execution")

_time_ns = time.time_ns
_monotonic = time.monotonic
_loads = orjson.loads
_MARKET = OrdType.MARKET
_SIDES = ("BUY", "SELL")
_SIDE_OF = {"BUY": Side.BUY, "SELL": Side.SELL}
_EPS = 1e-12
_NEW = ExecType.NEW
_PARTIAL = ExecType.PARTIAL_FILL
_FILL = ExecType.FILL
_CANCELED = ExecType.CANCELED
_REJECTED = ExecType.REJECTED
_NO_REASON = RejectReason.NONE
#: TimeInForce value -> Binance timeInForce; a POST_ONLY member, when the core has one, is post-only.
_TIF = {int(TimeInForce.GTC): "GTC", int(TimeInForce.IOC): "IOC"}
_POST_ONLY_TIF = int(getattr(TimeInForce, "POST_ONLY", -1))

#: REST paths per market (spot rest-api.md; USD-M "Trade", "Market Data", "User Data Streams").
PATHS = {
    "spot": {
        "time": "/api/v3/time",
        "exchange_info": "/api/v3/exchangeInfo",
        "open_orders": "/api/v3/openOrders",
        "order": "/api/v3/order",
        "trades": "/api/v3/myTrades",
    },
    "usdm": {
        "time": "/fapi/v1/time",
        "exchange_info": "/fapi/v1/exchangeInfo",
        "open_orders": "/fapi/v1/openOrders",
        "order": "/fapi/v1/order",
        "trades": "/fapi/v1/userTrades",
        "listen_key": "/fapi/v1/listenKey",
    },
}
#: Request weights as documented (spot: exchangeInfo 20, openOrders 6 per symbol, order 4, myTrades with
#: orderId 5; USD-M: exchangeInfo 1, openOrders 1, order 1, userTrades 5, listenKey 1).
WEIGHTS = {
    "spot": {"time": 1, "exchange_info": 20, "open_orders": 6, "order": 4, "trades": 5},
    "usdm": {"time": 1, "exchange_info": 1, "open_orders": 1, "order": 1, "trades": 5, "listen_key": 1},
}
#: Weight of one WebSocket API order.place / order.cancel (spot 1 and 1; USD-M 0 and 1).
WS_WEIGHTS = {"spot": (1, 1), "usdm": (0, 1)}
#: USD-M user data: the documented private route and the events this venue needs.
USDM_EVENTS = "ORDER_TRADE_UPDATE/ACCOUNT_UPDATE"
#: A listenKey lives 60 minutes unless a PUT extends it; extend it every 30.
LISTEN_KEY_KEEPALIVE_S = 30 * 60
#: "A single connection ... is only valid for 24 hours": reconnect on our terms a little before.
MAX_CONNECTION_S = 23 * 3600 + 50 * 60
#: Without a retryAfter: 429 waits this long; 418 (an IP ban) starts at 2 minutes per the docs.
DEFAULT_RETRY_AFTER_S = {429: 30.0, 418: 120.0}
#: Final orders are kept this long for late or repeated reports (as the engine's order manager does).
RETAIN_S = 60.0
RETAIN_MAX = 100_000

_INTERVAL_MS = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
_LETTER_MS = {"S": 1000, "M": 60_000, "H": 3_600_000, "D": 86_400_000}


class BinanceError(Exception):
    """An error answer from Binance: HTTP (or WebSocket API) status, Binance code and message."""

    def __init__(self, status: int, code: int, msg: str, retry_after_s: float | None = None) -> None:
        self.status = status
        self.code = code
        self.msg = msg
        self.retry_after_s = retry_after_s
        super().__init__(f"HTTP {status}, {code} {msg}".strip())


# ---------------------------------------------------------------------------------------------
# Request encoding (hot path): parameters in name order, which is the WebSocket API signing order.
# ---------------------------------------------------------------------------------------------
def encode_order_place(
    req_id: str,
    api_key: str,
    signer: Signer,
    *,
    symbol: str,
    side: str,
    order_type: str,
    quantity: str,
    client_id: str,
    recv_window: int,
    timestamp: int,
    price: str | None = None,
    time_in_force: str | None = None,
    reduce_only: bool = False,
    ack: bool = False,
) -> bytes:
    """One signed ``order.place`` request (a text frame's JSON).

    The signing payload is the parameters sorted by name as ``name=value&...`` (web-socket-api.md,
    "SIGNED request example (HMAC)"); it is written in that order directly (no sort, no dict), the
    optional parameters as empty pieces when absent, so each of the two strings is one f-string.
    """
    ack_p, ack_j = ("&newOrderRespType=ACK", ',"newOrderRespType":"ACK"') if ack else ("", "")
    px_p, px_j = ("&price=" + price, ',"price":"' + price + '"') if price is not None else ("", "")
    ro_p, ro_j = ("&reduceOnly=true", ',"reduceOnly":"true"') if reduce_only else ("", "")
    if time_in_force is not None:
        tif_p, tif_j = "&timeInForce=" + time_in_force, ',"timeInForce":"' + time_in_force + '"'
    else:
        tif_p = tif_j = ""
    sig = signer.sign(
        f"apiKey={api_key}&newClientOrderId={client_id}{ack_p}{px_p}&quantity={quantity}&recvWindow={recv_window}"
        f"{ro_p}&side={side}&symbol={symbol}{tif_p}&timestamp={timestamp}&type={order_type}".encode()
    )
    return (
        f'{{"id":"{req_id}","method":"order.place","params":{{"apiKey":"{api_key}","newClientOrderId":"{client_id}"'
        f'{ack_j}{px_j},"quantity":"{quantity}","recvWindow":{recv_window}{ro_j},"side":"{side}","symbol":"{symbol}"'
        f'{tif_j},"timestamp":{timestamp},"type":"{order_type}","signature":"{sig}"}}}}'
    ).encode()


def encode_order_cancel(
    req_id: str,
    api_key: str,
    signer: Signer,
    *,
    symbol: str,
    recv_window: int,
    timestamp: int,
    order_id: int = 0,
    orig_client_id: str | None = None,
    new_client_id: str | None = None,
) -> bytes:
    """One signed ``order.cancel``: by ``orderId`` when known ("always better when only orderId is
    sent", web-socket-api.md), else by ``origClientOrderId``."""
    p = "apiKey=" + api_key
    j = '"apiKey":"' + api_key + '"'
    if new_client_id is not None:
        p += "&newClientOrderId=" + new_client_id
        j += ',"newClientOrderId":"' + new_client_id + '"'
    if order_id:
        p += f"&orderId={order_id}"
        j += f',"orderId":{order_id}'
    else:
        p += "&origClientOrderId=" + str(orig_client_id)
        j += ',"origClientOrderId":"' + str(orig_client_id) + '"'
    p += f"&recvWindow={recv_window}&symbol={symbol}&timestamp={timestamp}"
    j += f',"recvWindow":{recv_window},"symbol":"{symbol}","timestamp":{timestamp}'
    sig = signer.sign(p.encode())
    return f'{{"id":"{req_id}","method":"order.cancel","params":{{{j},"signature":"{sig}"}}}}'.encode()


# ---------------------------------------------------------------------------------------------
# Instruments (exchangeInfo)
# ---------------------------------------------------------------------------------------------
def decimals(step: str) -> int:
    """Decimal places of a filter step written as Binance writes it (``"0.01000000"`` -> 2)."""
    s = step.rstrip("0")
    return len(s) - s.index(".") - 1 if "." in s else 0


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """A symbol's rules and how its prices and quantities are written (to the tick and step)."""

    rules: InstrumentRules
    price_fmt: str
    qty_fmt: str
    market_qty_fmt: str
    #: MIN_NOTIONAL ``applyToMarket`` / NOTIONAL ``applyMinToMarket`` (USD-M: always, at mark price).
    notional_on_market: bool
    #: ``baseAsset`` and ``quoteAsset``: which commissions can be valued in the quote currency.
    base: str = ""
    quote: str = ""


def parse_exchange_info(info: dict, market: str, wanted: set[str] | None = None) -> dict[str, SymbolSpec]:
    """``BASE-QUOTE`` -> :class:`SymbolSpec` for every TRADING symbol of an exchangeInfo answer.

    Filters read (filters.md; USD-M "Filters"): PRICE_FILTER ``tickSize``; LOT_SIZE ``stepSize``,
    ``minQty``, ``maxQty``; MARKET_LOT_SIZE ``stepSize`` (0 = use LOT_SIZE); MIN_NOTIONAL
    ``minNotional`` (USD-M ``notional``) or NOTIONAL ``minNotional``. USD-M contracts other than
    perpetuals are named ``BASE-QUOTE-<delivery>``.
    """
    out: dict[str, SymbolSpec] = {}
    for s in info.get("symbols", ()):
        if s.get("status", "TRADING") != "TRADING":
            continue
        vsym = s["symbol"]
        name = f"{s['baseAsset']}-{s['quoteAsset']}".upper()
        if market == "usdm" and s.get("contractType", "PERPETUAL") not in ("PERPETUAL", ""):
            name += "-" + vsym.rsplit("_", 1)[-1]
        if wanted is not None and name not in wanted:
            continue
        filters = {f.get("filterType"): f for f in s.get("filters", ())}
        price_f = filters.get("PRICE_FILTER", {})
        lot = filters.get("LOT_SIZE", {})
        mlot = filters.get("MARKET_LOT_SIZE", {})
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        tick_s = str(price_f.get("tickSize", "0"))
        step_s = str(lot.get("stepSize", "0"))
        mstep_s = str(mlot.get("stepSize", "0"))
        min_notional = float(notional.get("minNotional", notional.get("notional", 0)) or 0)
        on_market = bool(notional.get("applyToMarket", notional.get("applyMinToMarket", market == "usdm")))
        rules = InstrumentRules(
            symbol=name,
            venue_symbol=vsym,
            tick_size=float(tick_s),
            lot_size=float(step_s),
            min_qty=float(lot.get("minQty", 0) or 0),
            max_qty=float(lot.get("maxQty", 0) or 0),
            min_notional=min_notional,
            market_lot_size=float(mstep_s),
        )
        pd, qd = decimals(tick_s), decimals(step_s)
        md = decimals(mstep_s) if float(mstep_s) > 0 else qd
        out[name] = SymbolSpec(rules, f"%.{pd}f", f"%.{qd}f", f"%.{md}f", on_market,
                               str(s.get("baseAsset", "")).upper(), str(s.get("quoteAsset", "")).upper())  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------------------------
class _Window:
    __slots__ = ("kind", "name", "interval_ms", "limit", "window", "count")

    def __init__(self, kind: str, name: str, interval_ms: int, limit: int) -> None:
        self.kind = kind
        self.name = name
        self.interval_ms = interval_ms
        self.limit = limit
        self.window = -1
        self.count = 0


class RateLimits:
    """Binance's ORDERS and REQUEST_WEIGHT limits, and our use of them in the current intervals.

    Limits come from exchangeInfo ``rateLimits``; use is counted locally as requests leave and
    raised to what the venue reports (``X-MBX-ORDER-COUNT-10S``, ``X-MBX-USED-WEIGHT-1M``, the
    WebSocket ``rateLimits``), whichever is higher. Intervals are aligned as Binance counts them
    ("a 1 MINUTE interval starts every minute", "10 SECOND ... resets at 00, 10, 20...").
    """

    def __init__(self) -> None:
        self.orders: list[_Window] = []
        self.weight: list[_Window] = []

    def set_limits(self, rate_limits: list[dict]) -> None:
        orders, weight = [], []
        for rl in rate_limits:
            interval = _INTERVAL_MS.get(rl.get("interval", ""), 0) * int(rl.get("intervalNum", 1))
            if not interval:
                continue
            name = f"{rl.get('intervalNum', 1)}{rl['interval'][0]}"
            kind = rl.get("rateLimitType")
            if kind == "ORDERS":
                orders.append(_Window("ORDERS", name, interval, int(rl["limit"])))
            elif kind == "REQUEST_WEIGHT":
                weight.append(_Window("REQUEST_WEIGHT", name, interval, int(rl["limit"])))
        self.orders, self.weight = orders, weight

    def take(self, now_ms: int, orders: int, weight: int) -> str | None:
        """Count one request, or say which limit it would break (then nothing is counted).

        On the order hot path: two short loops, no allocation."""
        windows = self.orders if orders else ()
        for w in windows:
            wid = now_ms // w.interval_ms
            if wid != w.window:
                w.window = wid
                w.count = 0
            if w.count + orders > w.limit:
                return self._refusal(w)
        wwindows = self.weight if weight else ()
        for w in wwindows:
            wid = now_ms // w.interval_ms
            if wid != w.window:
                w.window = wid
                w.count = 0
            if w.count + weight > w.limit:
                return self._refusal(w)
        for w in windows:
            w.count += orders
        for w in wwindows:
            w.count += weight
        return None

    @staticmethod
    def _refusal(w: _Window) -> str:
        header = "ORDER-COUNT" if w.kind == "ORDERS" else "USED-WEIGHT"
        return (
            f"binance: {w.kind} limit {w.limit} per {w.name} reached "
            f"(X-MBX-{header}-{w.name}); waiting for the next interval"
        )

    def wait_s(self, now_ms: int, weight: int) -> float:
        """Seconds until a request of ``weight`` fits the weight budget (0: now)."""
        wait = 0.0
        for w in self.weight:
            wid = now_ms // w.interval_ms
            if wid == w.window and w.count + weight > w.limit:
                wait = max(wait, ((wid + 1) * w.interval_ms - now_ms) / 1000.0)
        return wait

    def observe(self, kind: str, name: str, count: int, now_ms: int) -> None:
        """The venue's count for one limit (a header or a ``rateLimits`` entry)."""
        for w in self.orders if kind == "ORDERS" else self.weight:
            if w.name == name:
                wid = now_ms // w.interval_ms
                if wid != w.window:
                    w.window, w.count = wid, count
                elif count > w.count:
                    w.count = count

    def observe_headers(self, headers: dict[str, str], now_ms: int) -> None:
        for k, v in headers.items():
            if k.startswith("x-mbx-used-weight-"):
                kind, name = "REQUEST_WEIGHT", k[18:].upper()
            elif k.startswith("x-mbx-order-count-"):
                kind, name = "ORDERS", k[18:].upper()
            else:
                continue
            try:
                self.observe(kind, name, int(v), now_ms)
            except ValueError:
                pass

    def observe_ws(self, rate_limits: list[dict], now_ms: int) -> None:
        for rl in rate_limits:
            interval = rl.get("interval", "")
            if interval:
                self.observe(rl.get("rateLimitType", ""), f"{rl.get('intervalNum', 1)}{interval[0]}",
                             int(rl.get("count", 0)), now_ms)  # fmt: skip


def reject_reason(code: int, msg: str) -> RejectReason:
    """The engine's reject category for a Binance error (errors.md, USD-M "Error Codes")."""
    if code == -1121:
        return RejectReason.UNKNOWN_SYMBOL
    if "PRICE_FILTER" in msg or "PERCENT_PRICE" in msg or code in (-4014, -4016, -4024):
        return RejectReason.INVALID_PRICE
    if "LOT_SIZE" in msg or "NOTIONAL" in msg or code in (-4003, -4005, -4023, -4164):
        return RejectReason.INVALID_QUANTITY
    if "Duplicate order" in msg:
        return RejectReason.DUPLICATE_CL_ORD_ID
    if code in (-2011, -2013) or "Unknown order" in msg:
        return RejectReason.UNKNOWN_ORDER
    return RejectReason.RISK_OR_THROTTLE


def commission_in_quote(
    amount: str | float | None, asset: str | None, price: float, base: str, quote: str
) -> float | None:
    """One trade's commission (``n``/``N``, ``commission``/``commissionAsset``) in the quote asset.

    Charged in the quote asset: as is; in the base asset (spot charges the asset received, so a buy
    pays in base): at the trade's ``price``. Any other asset (BNB) or no amount: None, as we have no
    price for it here and the engine's configured rate is the better guess. Zero is zero in any asset.
    """
    if amount is None or amount == "":
        return None
    try:
        value = float(amount)
    except (TypeError, ValueError):
        return None
    if value == 0.0:
        return 0.0
    if not asset:
        return None
    if asset == quote:
        return value
    if asset == base and price > 0.0:
        return value * price
    return None


def fee_for(fee: float | None, trade_qty: float, report_qty: float) -> float | None:
    """The fee of a report of ``report_qty`` built from a trade of ``trade_qty`` charged ``fee``.

    Equal: the fee. Less (the rest of the trade was already booked, e.g. at the order's average
    price while the trade list lagged): its share. More (the report also stands for trades we never
    saw, whose commissions we do not know): None.
    """
    if fee is None or trade_qty <= 0.0:
        return None
    tol = 1e-9 * trade_qty + _EPS
    if report_qty > trade_qty + tol:
        return None
    if report_qty < trade_qty - tol:
        return fee * (report_qty / trade_qty)
    return fee


@dataclass(slots=True)
class VenueFill:
    """A fill as Binance charged it; ``fee`` is what its report told the engine (None: not valued)."""

    cl_ord_id: int
    symbol: str
    side: Side
    price: float
    qty: float
    commission: float
    commission_asset: str
    maker: bool
    trade_id: int
    timestamp_ms: int
    fee: float | None = None


class _Tracked:
    """What the venue knows of one of our orders (the engine keeps the full state)."""

    __slots__ = ("cl", "cid", "symbol", "vsym", "side", "qty", "order_id", "cum", "acked", "final",
                 "trade_ids", "sent_ms", "unsure")  # fmt: skip

    def __init__(
        self, cl: int, cid: str, symbol: str, vsym: str, side: Side, qty: float, sent_ms: int
    ) -> None:
        self.cl = cl
        self.cid = cid
        self.symbol = symbol
        self.vsym = vsym
        self.side = side
        self.qty = qty
        self.order_id = 0
        self.cum = 0.0
        self.acked = False
        self.final = False
        #: Trade ids already booked (made on the first fill: most orders never fill).
        self.trade_ids: set[int] | None = None
        #: When it was sent (server clock, ms): no answer within ``request_timeout`` -> look it up.
        self.sent_ms = sent_ms
        #: The outcome of its request is unknown (timeout, 5xx, -1007): look it up by REST.
        self.unsure = False


def _session_prefix() -> str:
    """A per-process client id prefix: ids restart at 1 every session, Binance ids must not repeat."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    n = int.from_bytes(os.urandom(6), "big")
    out = ""
    for _ in range(8):
        n, r = divmod(n, 36)
        out += alphabet[r]
    return f"ls{out}_"


class BinanceVenue(Venue):
    """Spot or USD-M order entry on Binance (``market``), testnet unless ``testnet: false``."""

    name = "BINANCE"

    def __init__(self, config: BinanceVenueConfig) -> None:
        super().__init__(config)
        self.config: BinanceVenueConfig = config
        key, secret = config.credentials(ENV_PREFIX)
        self._api_key = key
        self._signer = Signer(secret)
        self.market = config.market
        self._paths = PATHS[self.market]
        self._weights = WEIGHTS[self.market]
        self._place_weight, self._cancel_weight = WS_WEIGHTS[self.market]
        self._rest_url, self._ws_url, self._user_ws_url = config.urls()
        self._recv_window = config.recv_window_ms
        self._post_only = config.post_only
        self._reduce_only = config.reduce_only
        self._spot = self.market == "spot"
        #: Symbol -> tick and lot size (``InstrumentVenue``), from exchangeInfo on every connect.
        self.instruments: dict[str, Instrument] = {}
        self._specs: dict[str, SymbolSpec] = {}
        self.limits = RateLimits()
        self._offset_ms = 0
        self._prefix = _session_prefix()
        self._orders: dict[int, _Tracked] = {}
        self._retired: deque[tuple[float, int]] = deque()
        self._ws: WsClient | None = None
        self._user: WsClient | None = None
        self._listener: VenueListener | None = None
        self._mid: Callable[[str], float | None] | None = None
        self._end: asyncio.Future[str] | None = None
        self._ban_until_ms = 0
        self._ban_why = ""
        self._corked = False
        self._pending: list[bytes] = []
        self._unsent: list[int] = []
        self._holding = False
        self._held: list[tuple[Callable, tuple]] = []
        self._waiters: dict[str, asyncio.Future] = {}
        self._req_n = 0
        self._tasks: set[asyncio.Task] = set()
        self._clock_task: asyncio.Task | None = None
        self._ever_connected = False
        self._rlog = RateLimitedLog(log)
        #: Fees as Binance charged them, per commission asset, and the last fills with their commission.
        self.commissions: dict[str, float] = {}
        self.fills: deque[VenueFill] = deque(maxlen=10_000)
        #: The venue's words for recent rejects: cl_ord_id -> "code message".
        self.reject_reasons: dict[int, str] = {}
        # Counters.
        self.orders_sent = 0
        self.cancels_sent = 0
        self.venue_rejects = 0
        self.rejects_by_code: dict[int, int] = {}
        self.duplicate_events = 0
        self.unmatched_events = 0
        self.reconciles = 0
        self.reconnects = 0
        self.bans = 0
        self.last_disconnect: str | None = None

    def __repr__(self) -> str:
        return (
            f"BinanceVenue(market={self.market!r}, testnet={self.config.testnet}, connected={self.connected})"
        )

    # -- running ---------------------------------------------------------------------------------
    async def run(self, listener: VenueListener) -> None:
        """Connect, reconcile, trade; on any drop tell the engine, back off, reconnect, reconcile.

        A first connection that fails (unreachable URL, refused key) raises at once with the
        reason: a live engine that cannot start must say so, not retry silently."""
        self._listener = listener
        self._mid = getattr(listener, "mid", None)
        cfg = self.config
        backoff = Backoff(cfg.backoff_initial, cfg.backoff_max)
        while True:
            started = _monotonic()
            reason = "stopped"
            try:
                reason = await self._session()
            except asyncio.CancelledError:
                reason = "stopped"
                raise
            except (OSError, TimeoutError, ConnectionError, BinanceError, ValueError, KeyError) as exc:
                reason = _describe(exc)
                if not self._ever_connected:
                    raise ConnectionError(f"binance {self.market}: {reason}") from None
            finally:
                self._teardown(reason)
            backoff.connected_for(_monotonic() - started)
            delay = max(backoff.delay(), self._ban_left_s())
            self.reconnects += 1
            log.warning("binance %s: reconnect #%d in %.2fs: %s", self.market, self.reconnects, delay, reason)
            await asyncio.sleep(delay)

    async def _session(self) -> str:
        """One connection from connect to drop; returns why it ended."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._end = loop.create_future()
        await self._wait_ban()
        await self._sync_clock()
        await self._load_instruments()
        if not self._spot and not self._ever_connected and self._specs:
            # USD-M signs nothing before the first order: prove the key and secret now, not then.
            vsym = next(iter(self._specs.values())).rules.venue_symbol
            await self._rest("GET", "open_orders", [("symbol", vsym)], signed=True)
        self._holding, self._held = True, []
        self._ws = await WsClient.connect(self._ws_url, self._on_api_text, cfg.connect_timeout,
                                          label=f"binance {self.market} WebSocket API")  # fmt: skip
        if self._spot:
            await self._subscribe_spot_user_stream()
        else:
            key = (await self._rest("POST", "listen_key", api_key=True))["listenKey"]
            url = f"{self._user_ws_url}/ws?listenKey={key}&events={USDM_EVENTS}"
            self._user = await WsClient.connect(url, self._on_user_text, cfg.connect_timeout,
                                                label="binance usdm user data stream")  # fmt: skip
            self._spawn(self._keepalive_listen_key(), "listenKey keepalive")
        await self._reconcile()
        self._release_held()
        self.connected = True
        self._ever_connected = True
        log.info("binance %s venue ready: %d symbols, clock offset %+d ms, %s",
                 self.market, len(self._specs), self._offset_ms, "testnet" if cfg.testnet else "LIVE")  # fmt: skip
        self._listener.on_venue_connected()
        self._spawn(self._watch(), "watchdog")
        waits = [self._end, self._ws.closed] + ([self._user.closed] if self._user is not None else [])
        done, _ = await asyncio.wait(waits, timeout=MAX_CONNECTION_S, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            return "24 h connection lifetime reached"
        first = next(iter(done))
        which = "user data stream" if self._user is not None and first is self._user.closed else "connection"
        return first.result() if first is self._end else f"{which}: {first.result()}"

    def _teardown(self, reason: str) -> None:
        self.last_disconnect = reason
        self._holding = False
        self._held = []
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        for w in self._waiters.values():
            if not w.done():
                w.set_exception(ConnectionError(reason))
        self._waiters.clear()
        for conn in (self._ws, self._user):
            if conn is not None:
                conn.close(reason)
        self._ws = self._user = None
        self._pending.clear()
        self._unsent.clear()
        if self.connected:
            self.connected = False
            if self._listener is not None:
                self._listener.on_venue_disconnected(reason)

    def end_session(self, reason: str) -> None:
        """Drop the connections; the run loop reconnects and reconciles (tests, operators)."""
        if self._end is not None and not self._end.done():
            self._end.set_result(reason)

    def _spawn(self, coro, what: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=f"binance {what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.warning("binance %s: %s failed: %s", self.market, task.get_name(), _describe(exc))
            self.end_session(f"{task.get_name()} failed: {_describe(exc)}")

    async def _watch(self) -> None:
        """Ping every ``ping_interval``; end the session after ``silence_timeout`` without a frame;
        look up orders whose answer did not come within ``request_timeout``."""
        cfg = self.config
        tick = min(1.0, cfg.ping_interval)
        last_ping = _monotonic()
        while True:
            await asyncio.sleep(tick)
            now = _monotonic()
            now_ms = self._now_ms()
            timeout_ms = cfg.request_timeout * 1000
            for conn in (self._ws, self._user):
                if conn is None:
                    continue
                if now - conn.last_rx > cfg.silence_timeout:
                    self.end_session(f"{conn.label}: silent for {now - conn.last_rx:.0f}s")
                    return
                if now - last_ping >= cfg.ping_interval:
                    conn.ping()
            if now - last_ping >= cfg.ping_interval:
                last_ping = now
            late = [t for t in self._orders.values()
                    if not t.final and (t.unsure or (not t.acked and now_ms - t.sent_ms > timeout_ms))]  # fmt: skip
            if late:
                for t in late:
                    t.unsure = False
                    t.sent_ms = now_ms
                try:
                    await self._reconcile(late, full=False)
                except (BinanceError, OSError, TimeoutError) as exc:  # try again on the next tick
                    log.warning(
                        "binance %s: looking up %d order(s) failed: %s",
                        self.market,
                        len(late),
                        _describe(exc),
                    )
                    for t in late:
                        t.unsure = not t.final

    # -- order entry (hot path) ------------------------------------------------------------------
    def cork(self) -> None:
        """Hold requests until :meth:`uncork`: a requote leaves in one write."""
        self._corked = True

    def uncork(self) -> None:
        self._corked = False
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        ws = self._ws
        try:
            if ws is None:
                raise ConnectionError("binance: not connected")
            ws.write(data)
        except ConnectionError:
            for cl in self._unsent:  # never left: the engine forgets them too
                self._orders.pop(cl, None)
            self._unsent.clear()
            raise
        self._unsent.clear()

    def send_new_order(self, order: Order) -> None:
        ws = self._ws
        if ws is None or not self.connected:
            raise ConnectionError("binance: not connected")
        spec = self._checked(order)
        now_ms = _time_ns() // 1_000_000 + self._offset_ms
        if now_ms < self._ban_until_ms:
            raise ValueError(self._ban_reason(now_ms))
        limited = self.limits.take(now_ms, 1, self._place_weight)
        if limited is not None:
            raise ValueError(limited)
        cl = order.cl_ord_id
        frame = ws.frame(self._encode_new(order, spec, now_ms))
        if self._corked:
            self._pending.append(frame)
            self._unsent.append(cl)
        else:
            ws.write(frame)
        self._orders[cl] = _Tracked(cl, self._prefix + str(cl), order.symbol, spec.rules.venue_symbol, order.side,
                                    order.qty, now_ms)  # fmt: skip
        self.orders_sent += 1

    def rehearse_new_order(self, order: Order) -> bytes | None:
        """The frame :meth:`send_new_order` would write (checked, signed), not sent, no weight used."""
        ws = self._ws
        if ws is None:
            return None
        return ws.frame(self._encode_new(order, self._checked(order), _time_ns() // 1_000_000 + self._offset_ms))

    def rehearse_market_data(self, on_market_data) -> None:
        """Market data comes from the feed, not this connection: nothing to repeat."""

    def rehearsal_twin(self) -> None:
        """None: the rehearsal uses :meth:`rehearse_new_order` (a twin would need its own session)."""
        return None

    def _checked(self, order: Order) -> SymbolSpec:
        """The symbol's filters, after checking ``order`` against them (``ValueError`` says why not)."""
        spec = self._specs.get(order.symbol)
        if spec is None:
            raise ValueError(f"binance: unknown symbol {order.symbol!r} (not in exchangeInfo)")
        is_market = order.ord_type == _MARKET
        mid = self._mid(order.symbol) if is_market and spec.notional_on_market and self._mid is not None else None
        reason = check_order(order, spec.rules, mid)
        if reason is not None:
            raise ValueError(reason)
        return spec

    def _encode_new(self, order: Order, spec: SymbolSpec, now_ms: int) -> bytes:
        """The signed ``order.place`` request for ``order``."""
        cl = order.cl_ord_id
        cid = self._prefix + str(cl)
        rules = spec.rules
        if order.ord_type == _MARKET:
            return encode_order_place(
                f"o{cl}", self._api_key, self._signer, symbol=rules.venue_symbol, side=_SIDES[order.side],
                order_type="MARKET", quantity=spec.market_qty_fmt % order.qty, client_id=cid,
                recv_window=self._recv_window, timestamp=now_ms, reduce_only=self._reduce_only, ack=self._spot,
            )  # fmt: skip
        tif = order.tif
        post_only = tif == _POST_ONLY_TIF or (self._post_only and tif == 0)
        if post_only and self._spot:  # spot post-only is its own type, without timeInForce
            otype, tif_s = "LIMIT_MAKER", None
        else:
            otype, tif_s = "LIMIT", "GTX" if post_only else _TIF[tif]
        return encode_order_place(
            f"o{cl}", self._api_key, self._signer, symbol=rules.venue_symbol, side=_SIDES[order.side],
            order_type=otype, quantity=spec.qty_fmt % order.qty, client_id=cid,
            recv_window=self._recv_window, timestamp=now_ms, price=spec.price_fmt % order.price,
            time_in_force=tif_s, reduce_only=self._reduce_only, ack=self._spot,
        )  # fmt: skip

    def send_cancel(self, cl_ord_id: int, orig_cl_ord_id: int, symbol: str) -> None:
        ws = self._ws
        if ws is None or not self.connected:
            raise ConnectionError("binance: not connected")
        spec = self._specs.get(symbol)
        if spec is None:
            raise ValueError(f"binance: unknown symbol {symbol!r}")
        now_ms = _time_ns() // 1_000_000 + self._offset_ms
        if now_ms < self._ban_until_ms:
            raise ValueError(self._ban_reason(now_ms))
        limited = self.limits.take(now_ms, 0, self._cancel_weight)
        if limited is not None:
            raise ValueError(limited)
        t = self._orders.get(orig_cl_ord_id)
        order_id = t.order_id if t is not None else 0
        data = encode_order_cancel(
            f"c{cl_ord_id}_{orig_cl_ord_id}", self._api_key, self._signer, symbol=spec.rules.venue_symbol,
            recv_window=self._recv_window, timestamp=now_ms, order_id=order_id,
            orig_client_id=None if order_id else self._prefix + str(orig_cl_ord_id),
            new_client_id=self._prefix + str(cl_ord_id) if self._spot else None,
        )  # fmt: skip
        frame = ws.frame(data)
        if self._corked:
            self._pending.append(frame)
        else:
            ws.write(frame)
        self.cancels_sent += 1

    # -- answers and events ----------------------------------------------------------------------
    def _on_api_text(self, data: bytes, receipt_ns: int) -> None:
        msg = _loads(data)
        rid = msg.get("id")
        if rid is not None:
            self._on_response(rid, msg, receipt_ns)
            return
        event = msg.get("event")
        if isinstance(event, dict):
            self._on_event(event, receipt_ns)

    def _on_user_text(self, data: bytes, receipt_ns: int) -> None:
        msg = _loads(data)
        if "data" in msg and "e" not in msg:  # stream mode wraps events
            msg = msg["data"]
        self._on_event(msg, receipt_ns)

    def _on_event(self, e: dict, receipt_ns: int) -> None:
        kind = e.get("e")
        if kind == "executionReport" or kind == "ORDER_TRADE_UPDATE":
            if self._holding:  # reconciliation in progress: apply after it, in order
                self._held.append((self._on_order_event, (e, receipt_ns)))
            else:
                self._on_order_event(e, receipt_ns)
        elif kind in ("eventStreamTerminated", "listenKeyExpired", "serverShutdown"):
            self.end_session(f"Binance sent {kind}")

    def _on_order_event(self, e: dict, receipt_ns: int) -> None:
        """A spot ``executionReport`` or a USD-M ``ORDER_TRADE_UPDATE`` (its ``o``): same letters."""
        o = e["o"] if e.get("e") == "ORDER_TRADE_UPDATE" else e
        x = o["x"]
        cid = o["c"]
        if x == "CANCELED" and o.get("C"):  # spot: c is the cancel request's id, C the order's
            cid = o["C"]
        t = self._tracked(cid)
        if t is None:
            self.unmatched_events += 1
            return
        if not t.order_id:
            t.order_id = int(o["i"])
        ts_ms = int(o.get("T") or e.get("E") or 0)
        if x == "TRADE" or x == "CALCULATED":
            # (USD-M leaves n out of a trade that cost nothing: "will not push if no commission")
            px, n, asset = float(o["L"]), o.get("n", "0"), o.get("N")
            self._fill(t, int(o["t"]), px, float(o["l"]), float(o["z"]), ts_ms, receipt_ns, bool(o.get("m")),
                       float(n or 0), asset or "", self._valued(t.symbol, n, asset, px))  # fmt: skip
        elif x == "NEW":
            self._status(t, "NEW", ts_ms, receipt_ns)
        elif x in ("CANCELED", "EXPIRED", "TRADE_PREVENTION"):
            self._status(t, "CANCELED", ts_ms, receipt_ns)
        elif x == "REJECTED":
            why = str(o.get("r") or "rejected")
            self._note_reject(t.cl, 0, why)
            self._status(t, "REJECTED", ts_ms, receipt_ns, reject_reason(0, why))

    def _on_response(self, rid, msg: dict, receipt_ns: int) -> None:
        now_ms = receipt_ns // 1_000_000 + self._offset_ms
        rate = msg.get("rateLimits")
        if rate:
            self.limits.observe_ws(rate, now_ms)
        rid = str(rid)
        status = int(msg.get("status", 0))
        err = msg.get("error") or {}
        if status in (429, 418):
            data = err.get("data") or {}
            retry_ms = data.get("retryAfter") if isinstance(data, dict) else None
            self._back_off(status, (retry_ms - now_ms) / 1000.0 if retry_ms else None, err.get("msg", ""))
        kind = rid[:1]
        if kind == "o":
            t = self._orders.get(int(rid[1:]))
            if t is None:
                return
            if status == 200:
                res = msg.get("result") or {}
                t.order_id = t.order_id or int(res.get("orderId") or 0)
                st = res.get("status", "NEW")  # spot ACK has none; fills themselves come as trade events
                self._status(t, "NEW" if st in ("FILLED", "PARTIALLY_FILLED") else st,
                             int(res.get("transactTime") or res.get("updateTime") or 0), receipt_ns)  # fmt: skip
            else:
                self._order_error(t, status, int(err.get("code", 0)), str(err.get("msg", "")), receipt_ns)
        elif kind == "c":
            ccid_s, _, orig_s = rid[1:].partition("_")
            t = self._orders.get(int(orig_s))
            if status == 200:
                res = msg.get("result") or {}
                if t is not None:
                    t.order_id = t.order_id or int(res.get("orderId") or 0)
                    st = res.get("status", "CANCELED")
                    self._status(t, "CANCELED" if st in ("CANCELED", "EXPIRED") else st,
                                 int(res.get("updateTime") or res.get("transactTime") or 0), receipt_ns)  # fmt: skip
            else:
                code, text = int(err.get("code", 0)), str(err.get("msg", ""))
                self._after_error(status, code, text)
                self._rlog("cancel_reject", logging.INFO, "binance: cancel of order %s refused: %d %s",
                           orig_s, code, text)  # fmt: skip
                if t is not None and status >= 500:
                    t.unsure = True
                side = t.side if t is not None else Side.BUY
                symbol = t.symbol if t is not None else ""
                self._listener.on_execution_report(ExecutionReport(
                    int(ccid_s), t.order_id if t is not None else 0, 0, symbol, side, _REJECTED, 0.0, 0.0, 0.0,
                    t.cum if t is not None else 0.0, reject_reason(code, text), now_ms * 1_000_000, receipt_ns,
                ))  # fmt: skip
        else:
            waiter = self._waiters.pop(rid, None)
            if waiter is not None and not waiter.done():
                if status == 200:
                    waiter.set_result(msg.get("result"))
                else:
                    waiter.set_exception(
                        BinanceError(status, int(err.get("code", 0)), str(err.get("msg", "")))
                    )

    def _order_error(self, t: _Tracked, status: int, code: int, text: str, receipt_ns: int) -> None:
        if status >= 500 or code in (-1006, -1007):
            # "execution status is UNKNOWN and could have been a success": look it up, do not guess.
            t.unsure = True
            self._rlog("unknown_status", logging.WARNING, "binance: order %d status unknown (%d %s); looking it up",
                       t.cl, code, text)  # fmt: skip
            return
        self._after_error(status, code, text)
        self._note_reject(t.cl, code, text)
        self._status(t, "REJECTED", 0, receipt_ns, reject_reason(code, text))

    def _after_error(self, status: int, code: int, text: str) -> None:
        """The documented reaction to an error answer beyond rejecting the request."""
        self.rejects_by_code[code] = self.rejects_by_code.get(code, 0) + 1
        if code == -1021:  # timestamp outside recvWindow / ahead of the server: re-measure the clock
            if self._clock_task is None or self._clock_task.done():
                self._clock_task = self._spawn(self._sync_clock(), "clock resync")
        elif code == -1022:
            self._rlog("bad_signature", logging.ERROR,
                       "binance: signature rejected (-1022): check that api_secret belongs to the api_key")  # fmt: skip
        elif code in (-2014, -2015):
            self._rlog("bad_key", logging.ERROR, "binance: API key refused (%d %s)", code, text)

    def _note_reject(self, cl: int, code: int, text: str) -> None:
        self.venue_rejects += 1
        reasons = self.reject_reasons
        reasons[cl] = f"{code} {text}".strip() if code else text
        if len(reasons) > 10_000:
            del reasons[next(iter(reasons))]
        self._rlog("venue_reject", logging.WARNING, "binance rejected order %d: %d %s", cl, code, text)

    # -- order state -------------------------------------------------------------------------------
    def _tracked(self, cid: str) -> _Tracked | None:
        prefix = self._prefix
        if not cid.startswith(prefix):
            return None  # another session's or another program's order
        try:
            return self._orders.get(int(cid[len(prefix) :]))
        except ValueError:
            return None

    def _emit(self, t: _Tracked, et: ExecType, px: float, qty: float, ts_ms: int, receipt_ns: int,
              reason: RejectReason = _NO_REASON, exec_id: int = 0, liquidity: int = 0,
              fee: float | None = None, fee_base: float = 0.0) -> None:  # fmt: skip
        self._listener.on_execution_report(ExecutionReport(
            t.cl, t.order_id, exec_id, t.symbol, t.side, et, px, qty,
            0.0 if et == _CANCELED or et == _REJECTED else max(t.qty - t.cum, 0.0), t.cum, reason,
            ts_ms * 1_000_000, receipt_ns or _time_ns(), liquidity, fee, fee_base,
        ))  # fmt: skip

    def _valued(
        self, symbol: str, amount: str | float | None, asset: str | None, price: float
    ) -> float | None:
        """A commission of ``symbol`` in its quote asset (:func:`commission_in_quote`)."""
        spec = self._specs.get(symbol)
        if spec is None:
            return None
        return commission_in_quote(amount, asset, price, spec.base, spec.quote)

    def _fill(self, t: _Tracked, trade_id: int, px: float, qty: float, cum: float | None, ts_ms: int,
              receipt_ns: int, maker: bool, commission: float, asset: str, fee: float | None) -> None:  # fmt: skip
        """One trade of ``t``; ``cum`` the venue's cumulative quantity after it (None: add ``qty``);
        ``fee`` its commission in the quote asset (None: not known or not valued)."""
        if trade_id >= 0:
            if t.trade_ids is None:
                t.trade_ids = set()
            elif trade_id in t.trade_ids:
                self.duplicate_events += 1
                return
            t.trade_ids.add(trade_id)
        prev = t.cum
        if cum is None:
            cum = prev + qty
        if cum <= prev + _EPS:
            self.duplicate_events += 1
            return
        t.cum = cum
        if commission:
            self.commissions[asset] = self.commissions.get(asset, 0.0) + commission
        last = cum - prev
        fee = fee_for(fee, qty, last)
        # a commission in the base asset is base the account never gets: the position moves by less
        spec = self._specs.get(t.symbol)
        kept = 0.0
        if fee is not None and commission > 0.0 and spec is not None and asset and asset == spec.base:
            kept = commission * (fee_for(1.0, qty, last) or 0.0)  # (its share, as the fee's)
        self.fills.append(
            VenueFill(t.cl, t.symbol, t.side, px, last, commission, asset, maker, trade_id, ts_ms, fee)
        )
        done = cum >= t.qty - _EPS
        t.acked = True
        self._emit(t, _FILL if done else _PARTIAL, px, last, ts_ms, receipt_ns, _NO_REASON, max(trade_id, 0),
                   1 if maker else 2, fee, kept)  # fmt: skip
        if done:
            self._finish(t)

    def _status(self, t: _Tracked, status: str, ts_ms: int, receipt_ns: int,
                reason: RejectReason = _NO_REASON, force: bool = False) -> None:  # fmt: skip
        """An order status from the venue; ``force`` reports it even if already said (reconciliation:
        the engine holds the order as unknown and needs a word on it)."""
        if t.final:
            return
        if status in ("NEW", "PARTIALLY_FILLED", "PENDING_NEW", "PENDING_CANCEL"):
            if force or not t.acked:
                self._emit(t, _PARTIAL if t.cum > _EPS else _NEW, 0.0, 0.0, ts_ms, receipt_ns)
            t.acked = True
        elif status == "FILLED":  # the fills themselves came first (trades); this only closes it
            self._emit(t, _FILL, 0.0, 0.0, ts_ms, receipt_ns)
            self._finish(t)
        elif status in ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH"):
            self._emit(t, _CANCELED, 0.0, 0.0, ts_ms, receipt_ns)
            self._finish(t)
        elif status == "REJECTED":
            self._emit(t, _REJECTED, 0.0, 0.0, ts_ms, receipt_ns, reason or RejectReason.RISK_OR_THROTTLE)
            self._finish(t)

    def _finish(self, t: _Tracked) -> None:
        t.final = True
        now = _monotonic()
        retired = self._retired
        retired.append((now, t.cl))
        horizon = now - RETAIN_S
        while retired and (retired[0][0] < horizon or len(retired) > RETAIN_MAX):
            self._orders.pop(retired.popleft()[1], None)

    # -- reconciliation ------------------------------------------------------------------------------
    async def _reconcile(self, trackers: list[_Tracked] | None = None, full: bool = True) -> None:
        """Learn and report the venue's state of every order not known final (see the module doc)."""
        todo = [t for t in (trackers if trackers is not None else list(self._orders.values())) if not t.final]
        if not todo:
            return
        self.reconciles += 1
        by_symbol: dict[str, list[_Tracked]] = {}
        for t in todo:
            by_symbol.setdefault(t.vsym, []).append(t)
        for vsym, ts in by_symbol.items():
            open_by_cid: dict[str, dict] = {}
            if full:
                for o in await self._rest("GET", "open_orders", [("symbol", vsym)], signed=True):
                    open_by_cid[o.get("clientOrderId", "")] = o
            for t in ts:
                if t.final:
                    continue
                o = open_by_cid.get(t.cid)
                if o is None:
                    try:
                        o = await self._rest("GET", "order", [("symbol", vsym), ("origClientOrderId", t.cid)],
                                             signed=True)  # fmt: skip
                    except BinanceError as exc:
                        if exc.code == -2013:  # "Order does not exist": the request never reached the book
                            self._note_reject(t.cl, exc.code, exc.msg)
                            self._status(t, "REJECTED", 0, 0, RejectReason.UNKNOWN_ORDER)
                            continue
                        raise
                await self._sync_order(t, o)
        log.info("binance %s: reconciled %d order(s)", self.market, len(todo))

    async def _sync_order(self, t: _Tracked, o: dict) -> None:
        t.order_id = t.order_id or int(o.get("orderId") or 0)
        executed = float(o.get("executedQty") or 0)
        ts_ms = int(o.get("updateTime") or o.get("time") or 0)
        if executed > t.cum + _EPS:
            trades = await self._rest(
                "GET", "trades", [("symbol", t.vsym), ("orderId", t.order_id)], signed=True
            )
            for tr in sorted(trades, key=lambda x: int(x["id"])):
                if int(tr.get("orderId", t.order_id)) != t.order_id:
                    continue
                maker = tr.get("isMaker", tr.get("maker", False))
                px, n, asset = float(tr["price"]), tr.get("commission"), tr.get("commissionAsset")
                self._fill(t, int(tr["id"]), px, float(tr["qty"]), None, int(tr.get("time", ts_ms)), 0, bool(maker),
                           float(n or 0), asset or "", self._valued(t.symbol, n, asset, px))  # fmt: skip
                if t.final:
                    break
            if executed > t.cum + _EPS and not t.final:
                # The trade list lags the order: book the rest at the order's average price, its
                # commission unknown (the engine charges its rate).
                avg = float(o.get("avgPrice") or 0) or float(o.get("cummulativeQuoteQty") or 0) / executed
                self._fill(t, -1, avg, executed - t.cum, executed, ts_ms, 0, False, 0.0, "", None)
        self._status(t, o.get("status", "NEW"), ts_ms, 0, RejectReason.RISK_OR_THROTTLE, force=True)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        self._holding = False
        for fn, args in held:
            fn(*args)

    # -- clock, instruments, user stream -------------------------------------------------------------
    async def _sync_clock(self) -> None:
        """Server time offset = serverTime - the local midpoint of the request (kept until the next)."""
        t0 = _time_ns()
        body = await self._rest("GET", "time")
        t1 = _time_ns()
        self._offset_ms = int(body["serverTime"]) - (t0 + t1) // 2_000_000

    async def _load_instruments(self) -> None:
        cfg = self.config
        params = None
        if cfg.symbols and self._spot:
            vs = ",".join(f'"{s.replace("-", "")}"' for s in cfg.symbols)
            params = [("symbols", f"[{vs}]")]
        info = await self._rest("GET", "exchange_info", params)
        self.limits.set_limits(info.get("rateLimits", []))
        specs = parse_exchange_info(info, self.market, set(cfg.symbols) or None)
        if cfg.symbols:
            missing = sorted(set(cfg.symbols) - set(specs))
            if missing:
                raise ValueError(f"symbols not trading on Binance {self.market}: {', '.join(missing)}")
        self._specs = specs
        self.instruments = {n: Instrument(i, n, s.rules.tick_size, s.rules.lot_size)
                            for i, (n, s) in enumerate(specs.items())}  # fmt: skip

    async def _subscribe_spot_user_stream(self) -> None:
        """``userDataStream.subscribe.signature``: works with HMAC keys, no session logon needed."""
        params = {"apiKey": self._api_key, "recvWindow": self._recv_window, "timestamp": self._now_ms()}
        params["signature"] = self._signer.sign(ws_payload(params).encode())
        await self._ws_request("userDataStream.subscribe.signature", params)

    async def _ws_request(self, method: str, params: dict) -> object:
        self._req_n += 1
        rid = f"r{self._req_n}"
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[rid] = waiter
        assert self._ws is not None
        self._ws.send_text(orjson.dumps({"id": rid, "method": method, "params": params}))
        try:
            async with asyncio.timeout(self.config.request_timeout):
                return await waiter
        finally:
            self._waiters.pop(rid, None)

    async def _keepalive_listen_key(self) -> None:
        while True:
            await asyncio.sleep(LISTEN_KEY_KEEPALIVE_S)
            await self._rest("PUT", "listen_key", api_key=True)

    # -- REST -----------------------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return _time_ns() // 1_000_000 + self._offset_ms

    async def _rest(self, method: str, what: str, params: list[tuple[str, object]] | None = None,
                    signed: bool = False, api_key: bool = False):  # fmt: skip
        """One REST call within the weight budget and outside any ban; the JSON answer or BinanceError."""
        path = self._paths[what]
        weight = self._weights.get(what, 1)
        await self._wait_ban()
        wait = self.limits.wait_s(self._now_ms(), weight)
        if wait > 0:
            log.info("binance %s: request weight budget used up; waiting %.1fs", self.market, wait)
            await asyncio.sleep(wait)
        self.limits.take(self._now_ms(), 0, weight)
        qs = ""
        headers = {}
        if signed:
            fields = [*(params or ()), ("recvWindow", self._recv_window), ("timestamp", self._now_ms())]
            qs = query_string(fields)
            qs += "&signature=" + self._signer.sign(qs.encode())
        elif params:
            qs = query_string(params)
        if signed or api_key:
            headers["X-MBX-APIKEY"] = self._api_key
        url = self._rest_url + path + ("?" + qs if qs else "")
        try:
            resp = await http_request(method, url, headers=headers, timeout=self.config.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot reach {self._rest_url}{path}: {_describe(exc)}") from None
        self.limits.observe_headers(resp.headers, self._now_ms())
        try:
            body = _loads(resp.body) if resp.body else {}
        except orjson.JSONDecodeError:
            body = {}
        if resp.status == 200:
            return body
        code = int(body.get("code", 0)) if isinstance(body, dict) else 0
        text = str(body.get("msg", "")) if isinstance(body, dict) else ""
        retry = None
        if resp.status in (429, 418):
            try:
                retry = float(resp.headers.get("retry-after", ""))
            except ValueError:
                retry = None
            self._back_off(resp.status, retry, text)
        else:
            self._after_error(resp.status, code, text)
        raise BinanceError(resp.status, code, text or f"{method} {path}", retry)

    # -- bans -----------------------------------------------------------------------------------------
    def _back_off(self, status: int, retry_after_s: float | None, text: str) -> None:
        """429: slow down until told; 418: banned until told. No request leaves before then."""
        secs = (
            retry_after_s if retry_after_s and retry_after_s > 0 else DEFAULT_RETRY_AFTER_S.get(status, 30.0)
        )
        until = self._now_ms() + int(secs * 1000)
        if until > self._ban_until_ms:
            self._ban_until_ms = until
            self._ban_why = f"HTTP {status}" + (f" ({text})" if text else "")
            self.bans += 1
            log.warning(
                "binance %s: %s: no requests for %.1fs (Retry-After)", self.market, self._ban_why, secs
            )

    def _ban_left_s(self) -> float:
        return max(0.0, (self._ban_until_ms - self._now_ms()) / 1000.0)

    def _ban_reason(self, now_ms: int) -> str:
        return f"binance: backing off after {self._ban_why} for {(self._ban_until_ms - now_ms) / 1000.0:.1f}s more"

    async def _wait_ban(self) -> None:
        left = self._ban_left_s()
        if left > 0:
            await asyncio.sleep(left)


def _describe(exc: BaseException) -> str:
    """One line for a log or an error: our own errors say it all; others get their type named."""
    text = str(exc)
    if (
        isinstance(exc, (BinanceError, ConnectionError))
        and text
        and type(exc) in (BinanceError, ConnectionError)
    ):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

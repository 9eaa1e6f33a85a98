"""The ``bybit`` execution venue: signed order entry on Bybit v5, own fills from the private stream.

Three connections per session (the venue rules they follow, with sources, are in the README):

- **Order entry**: WebSocket ``/v5/trade``, authenticated once (``auth``); each order is one
  ``order.create`` / ``order.cancel`` text frame carrying ``X-BAPI-TIMESTAMP`` and
  ``X-BAPI-RECV-WINDOW``. ``send_new_order`` builds the frame and hands it to the socket at once
  (no await, no per-order pydantic or logging); the ack comes back on the same connection.
- **Own fills**: WebSocket ``/v5/private`` subscribed to ``order.{category}`` and
  ``execution.{category}``. Fills are taken from ``execution`` only (one per ``execId``, counted
  once), order states (new, cancelled, rejected) from ``order``.
- **REST** (signed GETs, off the hot path): server time, ``instruments-info``, and after every
  reconnect the reconciliation: for each order not known to be final, its executions
  (``/v5/execution/list``) and its state (``/v5/order/realtime``, else ``/v5/order/history``), so
  every order the engine holds ends filled, cancelled, rejected or open, and fills missed while
  disconnected are applied once.

Our ``cl_ord_id`` travels as ``orderLinkId`` = session prefix + id: Bybit wants it unique for good,
and the engine's ids restart at 1 every run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import struct
import time
from collections import deque
from collections.abc import Iterator, Mapping
from decimal import Decimal
from math import isfinite
from typing import Any
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import apply_mask

from latentspeed_core.live import Backoff, InstrumentRules, check_order, http_request
from latentspeed_core.logs import RateLimitedLog
from latentspeed_core.types import (
    ExecType,
    ExecutionReport,
    Liquidity,
    Order,
    OrdType,
    RejectReason,
    Side,
    TimeInForce,
)
from latentspeed_core.venue import Instrument, Venue, VenueListener

from .config import ENV_PREFIX, BybitVenueConfig
from .signing import Signer

log = logging.getLogger("latentspeed_exchange_bybit.execution")
#: The WebSocket library logs every frame at DEBUG, the ``auth`` one (API key) included: our
#: connections get their own logger that never goes below WARNING.
_WS_LOG = logging.getLogger("latentspeed_exchange_bybit.ws")
_WS_LOG.setLevel(logging.WARNING)

#: Default per-UID order limits, per second (rate-limit page, "API Rate Limit Table", Trade:
#: /v5/order/create and /v5/order/cancel are 10/s on linear and inverse, 20/s on spot).
DEFAULT_ORDER_LIMITS = {"spot": 20, "linear": 10, "inverse": 10}
#: GET /v5/order/realtime, /v5/order/history, /v5/execution/list: 50/s (same table).
DEFAULT_GET_LIMIT = 50

#: retCodes that mean "too many requests": back off instead of hammering (error-code page:
#: 10006 rate limit; WS order entry 10429 system frequency protection, 10403 IP limit, 20003 session).
THROTTLED = frozenset((10006, 10429, 10403, 20003))
#: retCodes that mean the key pair is wrong or not allowed: retrying cannot help.
AUTH_FAILED = frozenset((10003, 10004, 10005, 10007, 10010, 33004, -2015))
#: The request's timestamp fell outside [server_time - recv_window, server_time + 1000).
EXPIRED = 10002

_EPS = 1e-9
_INF = float("inf")
_BUY = Side.BUY
_MARKET = OrdType.MARKET
_IOC = TimeInForce.IOC
_POST_ONLY = TimeInForce.POST_ONLY
_ET_NEW = ExecType.NEW
_ET_PARTIAL = ExecType.PARTIAL_FILL
_ET_FILL = ExecType.FILL
_ET_CANCELED = ExecType.CANCELED
_ET_REJECTED = ExecType.REJECTED
_FINAL_ET = frozenset((_ET_FILL, _ET_CANCELED, _ET_REJECTED))
_NO_REASON = RejectReason.NONE
_time_ns = time.time_ns
_monotonic = time.monotonic

#: ``orderStatus`` values (enum page, "orderStatus").
OPEN_STATUSES = frozenset(("New", "PartiallyFilled", "Untriggered", "Triggered"))
CANCELLED_STATUSES = frozenset(("Cancelled", "PartiallyFilledCanceled", "Deactivated"))
#: ``execType`` values that are fills of an order (Funding, Settle, Delivery are not).
FILL_EXEC_TYPES = frozenset(("Trade", "AdlTrade", "BustTrade", "BlockTrade", "MovePosition"))

#: How a refusal is classified for the engine (the venue's own words are logged and counted).
_CODE_REASONS = {
    **dict.fromkeys((170136, 170137, 170124, 170140, 170148, 110017, 110094), RejectReason.INVALID_QUANTITY),
    **dict.fromkeys((170132, 170133, 170134, 170193, 170194, 170218, 110003), RejectReason.INVALID_PRICE),
    **dict.fromkeys((10029, 110074), RejectReason.UNKNOWN_SYMBOL),
    **dict.fromkeys((110072, 170141), RejectReason.DUPLICATE_CL_ORD_ID),
    **dict.fromkeys((110001, 110008, 110010, 170139, 170213), RejectReason.UNKNOWN_ORDER),
}
#: ``rejectReason`` values of the order stream (enum page, "rejectReason") the engine can class.
_STATUS_REASONS = {
    **dict.fromkeys(("EC_OrigClOrdIDDoesNotExist", "EC_TooLateToCancel"), RejectReason.UNKNOWN_ORDER),
    "EC_InvalidSymbolStatus": RejectReason.UNKNOWN_SYMBOL,
    **dict.fromkeys(
        ("EC_QtyCannotBeZero", "EC_EcInvalidQty", "EC_InvalidAmount"), RejectReason.INVALID_QUANTITY
    ),
    **dict.fromkeys(("EC_LimitOrderInvalidPrice", "EC_InvalidPriceScale"), RejectReason.INVALID_PRICE),
    "EC_DuplicatedClOrdID": RejectReason.DUPLICATE_CL_ORD_ID,
}

#: The rule names of ``check_order``'s reasons, in Bybit's words (instruments-info fields).
_RULE_NAMES = {
    "linear": (
        ("(LOT_SIZE minQty)", "(lotSizeFilter.minOrderQty)"),
        ("(LOT_SIZE maxQty)", "(lotSizeFilter.maxOrderQty)"),
        ("(LOT_SIZE)", "(lotSizeFilter.qtyStep)"),
        ("(PRICE_FILTER)", "(priceFilter.tickSize)"),
        ("(MIN_NOTIONAL)", "(lotSizeFilter.minNotionalValue)"),
    ),
    "spot": (
        ("(LOT_SIZE maxQty)", "(lotSizeFilter.maxLimitOrderQty)"),
        ("(LOT_SIZE)", "(lotSizeFilter.basePrecision)"),
        ("(PRICE_FILTER)", "(priceFilter.tickSize)"),
        ("(MIN_NOTIONAL)", "(lotSizeFilter.minOrderAmt)"),
    ),
}
_RULE_NAMES["inverse"] = _RULE_NAMES["linear"]


class BybitError(Exception):
    """Bybit answered with a non-zero ``retCode`` (or something that is not its JSON)."""

    def __init__(self, code: int | None, message: str) -> None:
        self.code = code
        super().__init__(f"retCode {code}: {message}" if code is not None else message)


class BybitAuthError(BybitError):
    """The key pair was refused: a first connection gives up at once instead of retrying."""


# -- pure helpers (tested on their own) ------------------------------------------------------------
def session_prefix(now_ms: int | None = None, rand: int | None = None) -> str:
    """``orderLinkId`` prefix of this run: ``ls`` + the start time and 2 random chars, base 36.

    orderLinkId must be unique for good and at most 36 characters of ``[A-Za-z0-9_-]`` (Place
    Order, ``orderLinkId``); the engine's ids restart at 1 every run, so each run gets its own prefix.
    """
    now_ms = _time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = random.randrange(36 * 36) if rand is None else rand
    return f"ls{_base36(now_ms)}{_base36(rand).rjust(2, '0')}-"


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def parse_link(prefix: str, link: str) -> int | None:
    """Our ``cl_ord_id`` from an ``orderLinkId`` of this session, else None (another client's, or older)."""
    if not link.startswith(prefix):
        return None
    rest = link[len(prefix) :]
    return int(rest) if rest.isdigit() else None


def decimals(step: str) -> int:
    """Decimal places of a step as Bybit writes it (``"0.10"`` → 1, ``"1"`` → 0, ``"0.001"`` → 3)."""
    exp = Decimal(step).normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def _f(value: Any) -> float:
    """A Bybit number string (``""`` for none) as a float."""
    return float(value) if value not in (None, "") else 0.0


class Spec:
    """One symbol's rules and wire formats, computed once from ``instruments-info``."""

    __slots__ = ("symbol", "venue_symbol", "rules", "qty_fmt", "px_fmt", "instrument",
                 "min_price", "max_price", "max_market_qty", "templates", "base_coin", "quote_coin")  # fmt: skip

    def __init__(self, symbol: str, venue_symbol: str, rules: InstrumentRules, qty_dec: int, px_dec: int,
                 symbol_id: int, min_price: float = 0.0, max_price: float = 0.0, max_market_qty: float = 0.0,
                 base_coin: str = "", quote_coin: str = ""):  # fmt: skip
        self.symbol = symbol
        self.venue_symbol = venue_symbol
        self.rules = rules
        self.qty_fmt = f"%.{qty_dec}f"
        self.px_fmt = f"%.{px_dec}f"
        self.instrument = Instrument(symbol_id, symbol, rules.tick_size, rules.lot_size)
        self.min_price = min_price
        self.max_price = max_price or _INF  # 0: no bound stated
        self.max_market_qty = max_market_qty or _INF
        #: The coins a spot ``feeCurrency`` is compared with ("" when instruments-info did not say).
        self.base_coin = base_coin
        self.quote_coin = quote_coin
        #: ``order.create`` templates by ``side + 2 * ord_type + 4 * tif`` (:meth:`BybitVenue._prepare`).
        self.templates: list[str] = []


def spec_from_instrument(item: dict, market: str, index: int = 0) -> Spec:
    """A :class:`Spec` from one ``instruments-info`` entry (Get Instruments Info, response fields).

    linear/inverse: ``lotSizeFilter.qtyStep``, ``minOrderQty``, ``maxOrderQty``, ``maxMktOrderQty``,
    ``minNotionalValue``; spot: ``basePrecision`` is the quantity step, ``minOrderAmt`` the minimum
    notional (spot's ``minOrderQty`` is no longer checked by Bybit), ``maxLimitOrderQty`` /
    ``maxMarketOrderQty``. Inverse quantities are contracts (USD), so no quote notional applies.
    """
    vsym = item["symbol"]
    base, quote_coin = item.get("baseCoin", ""), item.get("quoteCoin", "")
    symbol = f"{base}-{quote_coin}" if base and vsym == base + quote_coin else vsym
    lot, price = item.get("lotSizeFilter") or {}, item.get("priceFilter") or {}
    tick_s = price.get("tickSize") or "0"
    if market == "spot":
        step_s = lot.get("basePrecision") or lot.get("qtyStep") or "0"
        min_qty = 0.0
        max_qty = _f(lot.get("maxLimitOrderQty") or lot.get("maxOrderQty"))
        max_mkt = _f(lot.get("maxMarketOrderQty"))
        min_notional = _f(lot.get("minOrderAmt"))
    else:
        step_s = lot.get("qtyStep") or "0"
        min_qty = _f(lot.get("minOrderQty"))
        max_qty = _f(lot.get("maxOrderQty"))
        max_mkt = _f(lot.get("maxMktOrderQty"))
        min_notional = _f(lot.get("minNotionalValue")) if market == "linear" else 0.0
    rules = InstrumentRules(symbol, vsym, float(tick_s), float(step_s), min_qty, max_qty, min_notional)
    return Spec(symbol, vsym, rules, decimals(step_s), decimals(tick_s), int(item.get("symbolId") or index),
                _f(price.get("minPrice")), _f(price.get("maxPrice")), max_mkt, base, quote_coin)  # fmt: skip


def quote_fee(item: Mapping[str, Any], category: str, base_coin: str, quote_coin: str) -> float | None:
    """One execution's ``execFee`` (negative: a rebate) in the quote coin, or None when it cannot be
    valued there (the engine then charges its ``fees`` config).

    linear: the fee is in the settle coin, which is the quote coin (``feeCurrency`` may be empty).
    Otherwise ``feeCurrency`` decides: spot fees are in the base or the quote coin by side, maker and
    the sign of the rate (Enums, "Spot Fee Currency Instruction"); a base-coin fee is valued at
    ``execPrice``; any other coin (e.g. MNT) cannot be valued here.
    """
    try:
        fee = float(item.get("execFee"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not isfinite(fee):
        return None
    if category == "linear":
        return fee
    coin = item.get("feeCurrency")
    if not coin:
        return None
    if coin == quote_coin:
        return fee
    if coin == base_coin:
        try:
            px = float(item.get("execPrice"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return fee * px if px > 0 and isfinite(px) else None
    return None


def order_template(category: str, spec: Spec, recv_window_ms: int, side: int, ord_type: int, tif: int,
                   post_only: bool = False, reduce_only: bool = False) -> str:  # fmt: skip
    """An ``order.create`` request (WebSocket Trade Guideline; fields of Place Order) with ``%``
    slots for reqId, timestamp, qty, price (limit orders only) and orderLinkId, in that order.

    Built once per symbol and kind, so an order costs one ``%``. Limit: ``timeInForce`` GTC, IOC,
    or ``PostOnly`` for a POST_ONLY order, and for a GTC one when ``post_only``. Market: always IOC (the docs: "Market order
    will always use IOC"), no price; on spot ``marketUnit: baseCoin`` so that ``qty`` is in the base
    coin for buys too (spot market buys default to the quote coin).
    """
    side_s = "Buy" if side == _BUY else "Sell"
    extra = ',"reduceOnly":true' if reduce_only else ""
    head = (
        f'{{"reqId":"%s","header":{{"X-BAPI-TIMESTAMP":"%d","X-BAPI-RECV-WINDOW":"{recv_window_ms}"}},'
        f'"op":"order.create","args":[{{"category":"{category}","symbol":"{spec.venue_symbol}","side":"{side_s}",'
    )
    if ord_type == _MARKET:
        if category == "spot":
            extra += ',"marketUnit":"baseCoin"'
        return f'{head}"orderType":"Market","qty":"{spec.qty_fmt}","timeInForce":"IOC","orderLinkId":"%s"{extra}}}]}}'
    tif_s = "IOC" if tif == _IOC else ("PostOnly" if post_only or tif == _POST_ONLY else "GTC")
    return (
        f'{head}"orderType":"Limit","qty":"{spec.qty_fmt}","price":"{spec.px_fmt}",'
        f'"timeInForce":"{tif_s}","orderLinkId":"%s"{extra}}}]}}'
    )


def create_message(req_id: str, timestamp_ms: int, recv_window_ms: int, category: str, spec: Spec,
                   order: Order, link: str, post_only: bool = False, reduce_only: bool = False) -> str:  # fmt: skip
    """One ``order.create`` request for ``order`` (what :meth:`BybitVenue.send_new_order` writes)."""
    tmpl = order_template(category, spec, recv_window_ms, order.side, order.ord_type, order.tif, post_only,
                          reduce_only)  # fmt: skip
    if order.ord_type == _MARKET:
        return tmpl % (req_id, timestamp_ms, order.qty, link)
    return tmpl % (req_id, timestamp_ms, order.qty, order.price, link)


def cancel_message(req_id: str, timestamp_ms: int, recv_window_ms: int, category: str, venue_symbol: str,
                   link: str) -> str:  # fmt: skip
    """An ``order.cancel`` request by ``orderLinkId`` (fields of Cancel Order)."""
    return (
        f'{{"reqId":"{req_id}","header":{{"X-BAPI-TIMESTAMP":"{timestamp_ms}","X-BAPI-RECV-WINDOW":"{recv_window_ms}"}},'
        f'"op":"order.cancel","args":[{{"category":"{category}","symbol":"{venue_symbol}","orderLinkId":"{link}"}}]}}'
    )


_HEAD1 = struct.Struct("!BB").pack
_HEAD2 = struct.Struct("!BBH").pack
_HEAD8 = struct.Struct("!BBQ").pack


def ws_text_frame(payload: bytes, mask: bytes) -> bytes:
    """One final, masked text frame (RFC 6455 §5.2; a client masks every frame it sends, §5.3)."""
    n = len(payload)
    if n < 126:
        head = _HEAD1(0x81, 0x80 | n)
    elif n < 65536:
        head = _HEAD2(0x81, 0xFE, n)
    else:
        head = _HEAD8(0x81, 0xFF, n)
    return head + mask + apply_mask(payload, mask)


def reject_reason(code: int | None) -> RejectReason:
    """The engine's class of a refusal with this ``retCode``."""
    return _CODE_REASONS.get(code, RejectReason.RISK_OR_THROTTLE)  # type: ignore[arg-type]


class RateWindow:
    """One Bybit per-UID limit: at most ``limit`` requests in any rolling second (rate-limit page:
    "rolling time window per second and UID"), plus a block after a throttling answer."""

    __slots__ = ("limit", "_times", "blocked_until")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: deque[float] = deque()
        self.blocked_until = 0.0

    def take(self, now: float) -> bool:
        """Use one request of the budget at monotonic time ``now``; False: none left."""
        if now < self.blocked_until:
            return False
        times = self._times
        while times and now - times[0] >= 1.0:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def wait(self, now: float) -> float:
        """Seconds until :meth:`take` can succeed."""
        if now < self.blocked_until:
            return self.blocked_until - now
        times = self._times
        if len(times) < self.limit or not times:
            return 0.0
        return max(0.0, times[0] + 1.0 - now)

    def block(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)

    def update(self, headers: Mapping[str, Any], now: float, offset_ms: int) -> None:
        """Follow ``X-Bapi-Limit`` / ``-Status`` / ``-Reset-Timestamp`` of an answer (keys any case):
        the venue's limit replaces ours, and none left blocks until the reset."""
        limit = remaining = reset = None
        for k, v in headers.items():
            lk = k.lower()
            if lk == "x-bapi-limit":
                limit = v
            elif lk == "x-bapi-limit-status":
                remaining = v
            elif lk == "x-bapi-limit-reset-timestamp":
                reset = v
        try:
            if limit is not None and int(limit) > 0:
                self.limit = int(limit)
            if remaining is not None and int(remaining) <= 0:
                wait = 1.0
                if reset is not None:  # server ms -> our monotonic clock
                    wait = (int(reset) - (_time_ns() // 1_000_000 + offset_ms)) / 1000.0
                self.block(now + min(max(wait, 0.05), 2.0))
        except ValueError:
            pass


class _Tracked:
    """What the venue knows of one order it sent: enough to report it and to reconcile it."""

    __slots__ = ("cid", "link", "symbol", "venue_symbol", "side", "qty", "price", "oid", "venue_order_id",
                 "acked", "state", "final", "unknown", "cum", "value", "exec_cum", "exec_ids", "spec")  # fmt: skip

    def __init__(self, cid: int, link: str, spec: Spec, order: Order) -> None:
        self.cid = cid
        self.link = link
        self.symbol = order.symbol
        self.venue_symbol = spec.venue_symbol
        self.side = order.side
        self.qty = order.qty
        self.price = order.price
        self.oid = 0  # an int for the engine (Bybit's orderId is a string)
        self.venue_order_id = ""
        self.acked = False
        #: 0 pending, 1 new, 2 partially filled, 3 final (as reported to the engine)
        self.state = 0
        self.final = False
        #: The engine was told the connection dropped and has not heard of this order since.
        self.unknown = False
        self.cum = 0.0  # reported to the engine
        self.value = 0.0  # sum of price x qty reported
        self.exec_cum = 0.0  # sum of the executions seen (by execId)
        self.exec_ids: set[str] | None = None  # made on the first execution (most quotes never fill)
        self.spec = spec  # its coins value the fees


class _Instruments(Mapping[str, Instrument]):
    """``instruments`` of the venue, keyed by the engine's symbols (``BTC-USDT``; the dash removed
    gives Bybit's ``BTCUSDT``, as the feed maps them)."""

    def __init__(self, venue: BybitVenue) -> None:
        self._venue = venue

    def __getitem__(self, symbol: str) -> Instrument:
        spec = self._venue._spec(symbol)
        if spec is None:
            raise KeyError(symbol)
        return spec.instrument

    def __iter__(self) -> Iterator[str]:
        return (s.symbol for s in self._venue._by_venue_symbol.values())

    def __len__(self) -> int:
        return len(self._venue._by_venue_symbol)


class BybitVenue(Venue):
    """Bybit v5 order entry (see the module docstring); implements ``BatchingVenue`` and ``InstrumentVenue``."""

    name = "BYBIT"

    def __init__(self, config: BybitVenueConfig) -> None:
        super().__init__(config)
        key, secret = config.credentials(ENV_PREFIX)
        self._signer = Signer(key, secret, config.recv_window_ms)
        self.rest_url, self.private_url, self.trade_url = config.urls()
        self.category = config.market
        self.instruments: Mapping[str, Instrument] = _Instruments(self)
        self._by_venue_symbol: dict[str, Spec] = {}
        self._specs: dict[str, Spec] = {}
        self._prefix = session_prefix()
        self._recv = config.recv_window_ms
        self._post_only = config.post_only
        self._reduce_only = config.reduce_only
        self._rule_names = _RULE_NAMES[config.market]
        limit = config.orders_per_second or DEFAULT_ORDER_LIMITS[config.market]
        self._create_rl = RateWindow(limit)
        self._cancel_rl = RateWindow(limit)
        self._get_rl: dict[str, RateWindow] = {}
        #: Server time minus local time, ms (measured at every connect, and again after a 10002).
        self.offset_ms = 0
        #: Orders sent and not heard of yet: the order itself (cheap to keep on the hot path)...
        self._sent: dict[int, Order] = {}
        #: ... and what is known of each once the venue said something (:meth:`_get` moves it here).
        self._orders: dict[int, _Tracked] = {}
        self._retired: deque[tuple[float, int]] = deque()
        self._cancels: dict[int, int] = {}
        self._oid_seq = 0  # the engine's int order_id for Bybit's string orderId, numbered as first seen
        self._exec_seq = 0
        self._listener: VenueListener | None = None
        self._mid = None
        self._write = None
        self._trade_ws: ClientConnection | None = None
        self._priv_ws: ClientConnection | None = None
        self._session_end: asyncio.Future[str] | None = None
        self._tasks: set[asyncio.Task] = set()
        self._ever_connected = False
        self.corked = False
        self._pending: list[bytes] = []
        #: Orders among ``_pending``: forgotten if the write cannot happen (the engine forgets them too).
        self._pending_orders: list[int] = []
        self._masks = os.urandom(4096)
        self._mask_at = 0
        self._rlog = RateLimitedLog(log)
        # Counters (tests, logs).
        self.orders_sent = 0
        self.cancels_sent = 0
        self.reports = 0
        self.venue_rejects = 0
        self.throttled = 0
        self.clock_resyncs = 0
        self.reconciliations = 0
        self.reconciled_orders = 0
        self.duplicate_executions = 0
        self.foreign_updates = 0
        self.sessions = 0
        #: Fees as Bybit charged them (``execFee`` per ``feeCurrency``), logged at the end of the run;
        #: the reports carry each fill's fee valued in the quote coin (:func:`quote_fee`).
        self.fees_charged: dict[str, float] = {}
        #: Each refusal reason in the venue's words, counted.
        self.reject_reasons: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"BybitVenue({self.category}, {self.rest_url}, connected={self.connected})"

    # -- running -----------------------------------------------------------------------------------
    async def run(self, listener: VenueListener) -> None:
        """Connect, reconcile, trade; on any drop tell the engine, reconnect with backoff, reconcile.

        A first connection that cannot reach Bybit, or whose key is refused, raises: the engine
        stops at once with one line, instead of retrying a setup that cannot work."""
        self._listener = listener
        self._mid = getattr(listener, "mid", None)
        cfg = self.config
        backoff = Backoff(cfg.backoff_initial, cfg.backoff_max)
        try:
            while True:
                started = _monotonic()
                try:
                    try:
                        reason = await self._session()
                    except BybitAuthError as exc:
                        if not self._ever_connected:
                            raise
                        reason = f"authentication refused: {exc}"
                    except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI, BybitError,
                            ValueError) as exc:  # fmt: skip
                        if not self._ever_connected:
                            raise ConnectionError(f"bybit: {_describe(exc)}") from None
                        reason = _describe(exc)
                    self._down(reason)  # the engine hears of it before the sockets are closed
                finally:
                    await self._teardown()
                backoff.connected_for(_monotonic() - started)
                delay = backoff.delay()
                log.warning("bybit: reconnect in %.2fs: %s", delay, reason)
                await asyncio.sleep(delay)
        finally:
            self._down("venue stopped")
            if self.fees_charged:
                log.info("bybit: fees charged by the venue: %s",
                         ", ".join(f"{v:.8g} {c}" for c, v in sorted(self.fees_charged.items())))  # fmt: skip

    async def _session(self) -> str:
        """One session: clock, instruments, private stream, order entry, reconciliation, then trade
        until a connection drops; returns why it ended."""
        cfg = self.config
        timeout = cfg.connect_timeout
        self.sessions += 1
        await self._sync_clock()
        await self._load_instruments()
        loop = asyncio.get_running_loop()
        self._session_end = end = loop.create_future()

        priv = await self._open(self.private_url)
        self._priv_ws = priv
        await priv.send(self._signer.ws_auth(self.server_ms() + 10_000))
        reply = await self._reply(priv, "auth", timeout)
        if not reply.get("success"):
            raise BybitAuthError(None, f"private stream auth refused: {reply.get('ret_msg') or reply}")
        topics = f'"order.{self.category}","execution.{self.category}"'
        await priv.send(f'{{"op":"subscribe","args":[{topics}]}}')
        reply = await self._reply(priv, "subscribe", timeout)
        if not reply.get("success"):
            raise BybitError(None, f"private stream subscribe refused: {reply.get('ret_msg') or reply}")

        trade = await self._open(self.trade_url)
        self._trade_ws = trade
        await trade.send(self._signer.ws_auth(self.server_ms() + 10_000))
        reply = await self._reply(trade, "auth", timeout)
        code = reply.get("retCode")
        if code != 0:
            raise BybitAuthError(code, f"order entry auth refused: {reply.get('retMsg')}")

        last_rx = {"private": _monotonic(), "trade": _monotonic()}
        tasks = [
            loop.create_task(self._read(priv, "private", self._on_private, last_rx)),
            loop.create_task(self._read(trade, "trade", self._on_trade_message, last_rx)),
            loop.create_task(self._keepalive(priv, "private", last_rx)),
            loop.create_task(self._keepalive(trade, "trade", last_rx)),
        ]
        self._tasks.update(tasks)
        transport = trade.transport
        self._write = transport.write
        reconciled = self.reconciled_orders
        reconcile = loop.create_task(self._reconcile())
        self._tasks.add(reconcile)
        done, _ = await asyncio.wait((*tasks, reconcile, end), return_when=asyncio.FIRST_COMPLETED)
        if reconcile in done:
            reconcile.result()  # a failed reconciliation ends the session: retried on the next one
            if not (done - {reconcile}):
                self.connected = True
                self._ever_connected = True
                log.info("bybit %s ready: %d instruments, server clock offset %+d ms%s", self.category,
                         len(self._by_venue_symbol), self.offset_ms,
                         f", {self.reconciled_orders - reconciled} order(s) reconciled" if self.sessions > 1 else "")  # fmt: skip
                self._listener.on_venue_connected()
                done, _ = await asyncio.wait((*tasks, end), return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is end:
                return end.result()
            if t is not reconcile:
                return t.result()
        return "session ended"

    async def _teardown(self) -> None:
        self._write = None
        self._pending.clear()
        self._pending_orders.clear()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.gather(*(_close(ws) for ws in (self._trade_ws, self._priv_ws) if ws is not None))
        self._trade_ws = self._priv_ws = None
        self._session_end = None

    def _down(self, reason: str) -> None:
        """Every connection is gone: the engine marks open orders unknown; we reconcile them later."""
        self._write = None
        self._cancels.clear()
        if not self.connected:
            return
        self.connected = False
        for cid in list(self._sent):
            self._get(cid)
        for tr in self._orders.values():
            if not tr.final:
                tr.unknown = True
        if self._listener is not None:
            self._listener.on_venue_disconnected(reason)

    def end_session(self, reason: str) -> None:
        """Drop the connections and reconnect (``10019``: the order-entry service restarts)."""
        end = self._session_end
        if end is not None and not end.done():
            end.set_result(reason)

    async def _open(self, url: str) -> ClientConnection:
        try:
            return await connect(
                url, open_timeout=self.config.connect_timeout, ping_interval=None, close_timeout=1.0,
                compression=None, max_size=2**24, logger=_WS_LOG,
            )  # fmt: skip
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectionError(f"cannot connect to {url}: {_describe(exc)}") from None

    async def _reply(self, ws: ClientConnection, op: str, timeout: float) -> dict:
        """The next message answering ``op`` (pongs and anything else before it are skipped)."""
        deadline = _monotonic() + timeout
        while True:
            left = deadline - _monotonic()
            if left <= 0:
                raise TimeoutError(f"no {op!r} answer within {timeout:g}s")
            raw = await asyncio.wait_for(ws.recv(), left)
            msg = orjson.loads(raw)
            if isinstance(msg, dict) and msg.get("op") == op:
                return msg

    async def _read(self, ws: ClientConnection, what: str, handle, last_rx: dict) -> str:
        try:
            async for raw in ws:
                now = _time_ns()
                last_rx[what] = _monotonic()
                try:
                    handle(raw, now)
                except Exception as exc:  # one bad message must not end the session
                    self._rlog(f"bad:{what}", logging.WARNING, "bybit %s: message skipped: %s: %s", what,
                               type(exc).__name__, exc)  # fmt: skip
        except ConnectionClosed as exc:
            return f"{what} connection closed: {exc}"
        return f"{what} connection closed"

    async def _keepalive(self, ws: ClientConnection, what: str, last_rx: dict) -> str:
        """``{"op":"ping"}`` every ``ping_interval`` (Connect, "How to Send the Heartbeat Packet");
        nothing heard for 2.5 intervals ends the session."""
        interval = self.config.ping_interval
        while True:
            await asyncio.sleep(interval)
            silent = _monotonic() - last_rx[what]
            if silent > 2.5 * interval:
                return f"{what} connection silent for {silent:.1f}s"
            try:
                await ws.send('{"op":"ping"}')
            except ConnectionClosed as exc:
                return f"{what} connection closed: {exc}"

    # -- clock, instruments, REST --------------------------------------------------------------------
    def server_ms(self) -> int:
        """Bybit's clock now, in ms (local clock plus the measured offset)."""
        return _time_ns() // 1_000_000 + self.offset_ms

    async def _sync_clock(self) -> None:
        """Measure the server time offset (Get Bybit Server Time): request timestamps must lie in
        [server_time - recv_window, server_time + 1000) (Integration Guidance)."""
        t0 = _time_ns()
        body = await self._public_get("/v5/market/time", "")
        t1 = _time_ns()
        result = body.get("result") or {}
        if result.get("timeNano"):
            server_ms = int(result["timeNano"]) // 1_000_000
        elif result.get("timeSecond"):
            server_ms = int(result["timeSecond"]) * 1000
        else:
            server_ms = int(body.get("time") or 0)
        if not server_ms:
            raise BybitError(None, "server time answer without a time")
        self.offset_ms = server_ms - (t0 + t1) // 2_000_000
        self.clock_resyncs += 1

    async def _load_instruments(self) -> None:
        """Every trading symbol of the category (``instruments-info``, paged by ``cursor``; spot has no paging)."""
        specs: dict[str, Spec] = {}
        cursor = ""
        for _page in range(20):
            query = f"category={self.category}" + ("" if self.category == "spot" else "&limit=1000")
            if cursor:
                query += f"&cursor={quote(cursor, safe='')}"
            body = await self._public_get("/v5/market/instruments-info", query)
            result = body.get("result") or {}
            for item in result.get("list") or ():
                try:
                    spec = spec_from_instrument(item, self.category, len(specs) + 1)
                except (KeyError, TypeError, ValueError) as exc:
                    self._rlog("instrument", logging.WARNING, "bybit: instrument skipped (%s): %s", exc, item)
                    continue
                self._prepare(spec)
                specs[spec.venue_symbol] = spec
            cursor = result.get("nextPageCursor") or ""
            if not cursor or self.category == "spot":
                break
        if not specs:
            raise BybitError(None, f"instruments-info listed no {self.category} symbol")
        self._by_venue_symbol = specs
        self._specs = {}

    def _prepare(self, spec: Spec) -> None:
        """The symbol's ``order.create`` templates for every side, type and time in force."""
        spec.templates = [
            order_template(
                self.category, spec, self._recv, side, ord_type, tif, self._post_only, self._reduce_only
            )
            for tif in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.POST_ONLY)
            for ord_type in (OrdType.LIMIT, OrdType.MARKET)
            for side in (Side.BUY, Side.SELL)
        ]

    def _spec(self, symbol: str) -> Spec | None:
        spec = self._specs.get(symbol)
        if spec is None:
            spec = self._by_venue_symbol.get(symbol.replace("-", "").upper())
            if spec is not None:
                self._specs[symbol] = spec
        return spec

    async def _public_get(self, path: str, query: str) -> dict:
        url = f"{self.rest_url}{path}" + (f"?{query}" if query else "")
        try:
            resp = await asyncio.wait_for(http_request("GET", url, timeout=self.config.connect_timeout),
                                          self.config.connect_timeout + 1)  # fmt: skip
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot reach {self.rest_url}{path}: {_describe(exc)}") from None
        body = _json(resp.body, path, resp.status)
        if body.get("retCode") not in (0, None):
            raise BybitError(body.get("retCode"), f"{path}: {body.get('retMsg')}")
        return body

    async def signed_get(self, path: str, params: dict[str, Any]) -> dict:
        """A signed GET (payload = the query string as sent), within the endpoint's rate limit.

        10006 (and HTTP 403/429) waits for the reset and retries; 10002 re-measures the clock and
        retries; a refused key raises :class:`BybitAuthError`."""
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
        rl = self._get_rl.get(path)
        if rl is None:
            rl = self._get_rl[path] = RateWindow(DEFAULT_GET_LIMIT)
        last = ""
        for _attempt in range(6):
            while not rl.take(_monotonic()):
                await asyncio.sleep(max(rl.wait(_monotonic()), 0.001))
            headers = self._signer.headers(self.server_ms(), query)
            try:
                resp = await asyncio.wait_for(
                    http_request("GET", f"{self.rest_url}{path}?{query}", headers=headers,
                                 timeout=self.config.connect_timeout),
                    self.config.connect_timeout + 1,
                )  # fmt: skip
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(f"{path}: {_describe(exc)}") from None
            rl.update(resp.headers, _monotonic(), self.offset_ms)
            if resp.status in (403, 429):
                self.throttled += 1
                rl.block(_monotonic() + 1.0)
                last = f"HTTP {resp.status}"
                continue
            body = _json(resp.body, path, resp.status)
            code = body.get("retCode")
            if code == 0:
                return body.get("result") or {}
            last = f"retCode {code}: {body.get('retMsg')}"
            if code in THROTTLED:
                self.throttled += 1
                rl.block(_monotonic() + 1.0)
                continue
            if code == EXPIRED:
                await self._sync_clock()
                continue
            if code in AUTH_FAILED:
                raise BybitAuthError(code, f"{path}: {body.get('retMsg')}")
            raise BybitError(code, f"{path}: {body.get('retMsg')}")
        raise BybitError(None, f"{path}: gave up after 6 attempts ({last})")

    async def _get_list(self, path: str, params: dict[str, Any], pages: int = 10) -> list[dict]:
        out: list[dict] = []
        cursor = ""
        for _ in range(pages):
            result = await self.signed_get(path, {**params, "cursor": cursor} if cursor else params)
            out.extend(result.get("list") or ())
            cursor = result.get("nextPageCursor") or ""
            if not cursor:
                break
        return out

    # -- reconciliation ------------------------------------------------------------------------------
    async def _reconcile(self) -> None:
        """Ask Bybit about every order not known to be final (after a reconnect: all the engine holds)."""
        for cid in list(self._sent):
            self._get(cid)
        todo = [tr for tr in self._orders.values() if not tr.final]
        if not todo:
            return
        self.reconciliations += 1
        for tr in todo:
            await self._resolve(tr)
            self.reconciled_orders += 1

    async def _resolve(self, tr: _Tracked) -> None:
        """One order's truth from REST: its executions first (fills, once each), then its state."""
        cat = self.category
        now = _time_ns()
        execs = await self._get_list(
            "/v5/execution/list", {"category": cat, "orderLinkId": tr.link, "limit": 100}
        )
        for item in sorted(execs, key=lambda e: (int(e.get("execTime") or 0), e.get("execId", ""))):
            self._on_execution(item, now)
        found = await self._get_list("/v5/order/realtime", {"category": cat, "orderLinkId": tr.link}, pages=1)
        if not found:
            found = await self._get_list(
                "/v5/order/history", {"category": cat, "orderLinkId": tr.link}, pages=1
            )
        item = next((o for o in found if o.get("orderLinkId") == tr.link), None)
        if item is not None:
            self._settle(tr, item, now)
        elif not tr.final or tr.unknown:
            if tr.acked:
                log.warning("bybit: order %d (%s) acknowledged before but unknown to Bybit now: cancelled",
                            tr.cid, tr.link)  # fmt: skip
                self._report(tr, _ET_CANCELED, 0.0, 0.0, now)
            else:  # the create never reached the matching engine (lost with the connection)
                self._count_reject("not received by Bybit (lost with the connection)")
                self._report(tr, _ET_REJECTED, 0.0, 0.0, now, reason=RejectReason.RISK_OR_THROTTLE)

    def _settle(self, tr: _Tracked, item: dict, now: int) -> None:
        """Apply an order's REST state: fills the execution list did not show (priced from
        ``avgPrice``), then its status, so the engine hears of it at least once."""
        venue_cum = _f(item.get("cumExecQty"))
        if venue_cum > tr.cum + _EPS * max(1.0, tr.qty):
            delta = venue_cum - tr.cum
            avg = _f(item.get("avgPrice")) or tr.price
            px = (avg * venue_cum - tr.value) / delta
            if not px > 0:
                px = avg
            self._fill(tr, px, delta, now, int(_f(item.get("updatedTime")) * 1_000_000), 0)
        self._on_order_update(item, now)

    # -- messages -------------------------------------------------------------------------------------
    def _on_private(self, raw: bytes | str, receipt_ns: int) -> None:
        msg = orjson.loads(raw)
        topic = msg.get("topic")
        if topic is None:
            return  # pong, late acks
        data = msg.get("data") or ()
        if topic.startswith("execution"):
            for item in data:
                self._on_execution(item, receipt_ns)
        elif topic.startswith("order"):
            for item in data:
                self._on_order_update(item, receipt_ns)

    def _tracked(self, item: dict) -> _Tracked | None:
        cid = parse_link(self._prefix, item.get("orderLinkId") or "")
        tr = self._get(cid) if cid is not None else None
        if tr is None:
            self.foreign_updates += 1
            return None
        oid = item.get("orderId")
        if oid and not tr.venue_order_id:
            tr.venue_order_id = oid
            self._oid_seq += 1
            tr.oid = self._oid_seq
        return tr

    def _on_execution(self, item: dict, receipt_ns: int) -> None:
        """A fill (``execution`` topic or ``/v5/execution/list``): counted once per ``execId``."""
        if item.get("execType", "Trade") not in FILL_EXEC_TYPES:
            return
        tr = self._tracked(item)
        if tr is None:
            return
        eid = item.get("execId") or ""
        ids = tr.exec_ids
        if ids is None:
            tr.exec_ids = ids = set()
        elif eid in ids:
            self.duplicate_executions += 1
            return
        ids.add(eid)
        tr.acked = True
        qty = _f(item.get("execQty"))
        fee = _f(item.get("execFee"))
        if fee:
            cur = item.get("feeCurrency") or "?"
            self.fees_charged[cur] = self.fees_charged.get(cur, 0.0) + fee
        tr.exec_cum += qty
        if tr.exec_cum <= tr.cum + _EPS * max(1.0, tr.qty):
            return  # already applied from the order's REST state during a reconciliation
        last = tr.exec_cum - tr.cum
        spec = tr.spec
        charged = quote_fee(item, self.category, spec.base_coin, spec.quote_coin)
        # a spot fee in the base coin is coin the account never gets (or gives up more of)
        kept = fee if charged is not None and self.category != "linear" and spec.base_coin and (
            item.get("feeCurrency") == spec.base_coin) else 0.0  # fmt: skip
        if charged is not None and last < qty - _EPS * max(1.0, tr.qty):
            charged *= last / qty  # part of it was applied from REST state: the report's share only
            kept *= last / qty
        liq = Liquidity.MAKER if item.get("isMaker") else Liquidity.TAKER
        self._fill(tr, _f(item.get("execPrice")), last, receipt_ns,
                   int(_f(item.get("execTime")) * 1_000_000), liq, charged, kept)  # fmt: skip

    def _fill(self, tr: _Tracked, px: float, qty: float, receipt_ns: int, ts_ns: int, liquidity: int,
              fee: float | None = None, fee_base: float = 0.0) -> None:  # fmt: skip
        """Report ``qty`` more filled; ``fee``: Bybit's charge for it in the quote coin (None: the
        engine's rate, e.g. a fill known only from the order's REST state); ``fee_base``: the part of
        it taken in the base coin, in base units."""
        tr.cum += qty
        tr.value += px * qty
        full = tr.cum >= tr.qty - _EPS * max(1.0, tr.qty)
        et = _ET_FILL if full and not tr.final else _ET_PARTIAL
        if tr.state < 2:
            tr.state = 2
        self._report(tr, et, px, qty, receipt_ns, ts_ns, liquidity, fee=fee, fee_base=fee_base)

    def _on_order_update(self, item: dict, receipt_ns: int) -> None:
        """An order state (``order`` topic or REST): new, cancelled, rejected. ``Filled`` waits for
        its executions, which carry the price, the size and maker/taker of each fill."""
        tr = self._tracked(item)
        if tr is None:
            return
        status = item.get("orderStatus", "")
        ts = int(_f(item.get("updatedTime")) * 1_000_000)
        if status in OPEN_STATUSES:
            tr.acked = True
            if tr.state == 0 or tr.unknown:
                tr.state = max(tr.state, 1)
                self._report(tr, _ET_PARTIAL if tr.cum > 0 else _ET_NEW, 0.0, 0.0, receipt_ns, ts)
        elif status == "Filled":
            tr.acked = True
            if tr.unknown and tr.cum >= tr.qty - _EPS * max(1.0, tr.qty):
                self._report(tr, _ET_FILL, 0.0, 0.0, receipt_ns, ts)
        elif status in CANCELLED_STATUSES:
            tr.acked = True
            if not tr.final or tr.unknown:
                self._report(tr, _ET_CANCELED, 0.0, 0.0, receipt_ns, ts)
        elif status == "Rejected":
            if not tr.final or tr.unknown:
                why = item.get("rejectReason") or "Rejected"
                self._count_reject(why, tr)
                self._report(tr, _ET_REJECTED, 0.0, 0.0, receipt_ns, ts,
                             reason=_STATUS_REASONS.get(why, RejectReason.RISK_OR_THROTTLE))  # fmt: skip

    def _on_trade_message(self, raw: bytes | str, receipt_ns: int) -> None:
        msg = orjson.loads(raw)
        op = msg.get("op")
        if op == "order.create" or op == "order.cancel":
            self._on_ack(msg, op, receipt_ns)

    def _on_ack(self, msg: dict, op: str, receipt_ns: int) -> None:
        """The order-entry answer: 0 = accepted (the private stream tells what became of it)."""
        code = msg.get("retCode")
        create = op == "order.create"
        rl = self._create_rl if create else self._cancel_rl
        header = msg.get("header")
        if header:
            rl.update(header, _monotonic(), self.offset_ms)
        cid = parse_link(self._prefix, msg.get("reqId") or "")
        if code == 0:
            if not create and cid is not None:
                self._cancels.pop(cid, None)
            return
        text = f"retCode {code}: {msg.get('retMsg')}"
        if code in THROTTLED:
            self.throttled += 1
            rl.block(_monotonic() + 1.0)
        elif code == EXPIRED:
            self._spawn(self._resync_clock())
        elif code == 10019:  # "ws trade service is restarting": a new connection is routed to a healthy one
            self.end_session("order entry service restarting (10019)")
        if cid is None:
            self._rlog("ack", logging.WARNING, "bybit %s refused (no reqId of ours): %s", op, text)
            return
        if create:
            tr = self._get(cid)
            if tr is None or tr.final:
                return
            if code == 10016 or code is None:  # "internal server error": the order may exist, ask
                self._spawn(self._resolve_later(tr))
                return
            self._count_reject(text, tr)
            self._report(tr, _ET_REJECTED, 0.0, 0.0, receipt_ns, reason=reject_reason(code))
        else:
            orig = self._cancels.pop(cid, None)
            tr = self._get(orig) if orig is not None else None
            self._rlog(
                "cancel_reject", logging.INFO, "bybit cancel %d of order %s refused: %s", cid, orig, text
            )
            if tr is not None and self._listener is not None:
                self.reports += 1
                self._listener.on_execution_report(ExecutionReport(
                    cid, tr.oid, self._next_exec(), tr.symbol, tr.side, _ET_REJECTED, 0.0, 0.0,
                    max(tr.qty - tr.cum, 0.0), tr.cum, reject_reason(code), 0, receipt_ns,
                ))  # fmt: skip

    async def _resync_clock(self) -> None:
        try:
            await self._sync_clock()
            log.warning(
                "bybit: request timestamp refused (10002): server clock offset now %+d ms", self.offset_ms
            )
        except Exception as exc:
            log.warning("bybit: clock resync failed: %s", _describe(exc))

    async def _resolve_later(self, tr: _Tracked) -> None:
        """After a ``10016`` the create may still be in Bybit's pipeline: give it a second, then ask."""
        try:
            await asyncio.sleep(1.0)
            await self._resolve(tr)
        except Exception as exc:
            log.warning("bybit: could not learn the state of order %d: %s", tr.cid, _describe(exc))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _count_reject(self, why: str, tr: _Tracked | None = None) -> None:
        self.venue_rejects += 1
        self.reject_reasons[why] = self.reject_reasons.get(why, 0) + 1
        self._rlog("reject", logging.WARNING, "bybit refused order %s: %s", tr.cid if tr else "-", why)

    def _next_exec(self) -> int:
        self._exec_seq += 1
        return self._exec_seq

    def _report(self, tr: _Tracked, et: ExecType, last_px: float, last_qty: float, receipt_ns: int,
                ts_ns: int = 0, liquidity: int = 0, reason: RejectReason = _NO_REASON,
                fee: float | None = None, fee_base: float = 0.0) -> None:  # fmt: skip
        tr.unknown = False
        final = et in _FINAL_ET
        if final:
            tr.state = 3
        leaves = 0.0 if final or tr.final else max(tr.qty - tr.cum, 0.0)
        if final and not tr.final:
            tr.final = True
            self._retire(tr.cid)
        self.reports += 1
        listener = self._listener
        if listener is not None:
            listener.on_execution_report(ExecutionReport(
                tr.cid, tr.oid, self._next_exec(), tr.symbol, tr.side, et, last_px, last_qty, leaves, tr.cum,
                reason, ts_ns, receipt_ns, liquidity, fee, fee_base,
            ))  # fmt: skip

    def _get(self, cid: int) -> _Tracked | None:
        """The tracked state of order ``cid``, made from the sent order the first time it is needed."""
        tr = self._orders.get(cid)
        if tr is None:
            order = self._sent.pop(cid, None)
            spec = self._spec(order.symbol) if order is not None else None
            if spec is None:
                return None
            tr = self._orders[cid] = _Tracked(cid, f"{self._prefix}{cid}", spec, order)
        return tr

    def _retire(self, cid: int) -> None:
        """Final orders stay known 2 minutes (late executions, duplicates), then are forgotten."""
        now = _monotonic()
        retired = self._retired
        retired.append((now, cid))
        while retired and now - retired[0][0] > 120.0:
            self._orders.pop(retired.popleft()[1], None)

    # -- order entry (hot path) -------------------------------------------------------------------------
    def cork(self) -> None:
        """Hold frames until :meth:`uncork` (one write for a whole requote)."""
        self.corked = True

    def uncork(self) -> None:
        self.corked = False
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        sent = self._pending_orders
        write = self._write
        if write is None:
            for cid in sent:
                self._sent.pop(cid, None)
            sent.clear()
            raise ConnectionError("bybit: not connected")
        sent.clear()
        write(data)

    def _mask(self) -> bytes:
        i = self._mask_at
        if i >= 4096:
            self._masks = os.urandom(4096)
            i = 0
        self._mask_at = i + 4
        return self._masks[i : i + 4]

    def send_new_order(self, order: Order) -> None:
        write = self._write
        if write is None or not self.connected:
            raise ConnectionError("bybit: not connected")
        spec = self._checked(order)
        now = _monotonic()
        if not self._create_rl.take(now):
            raise ValueError(self._limit_reason("order.create", self._create_rl, now))
        cid = order.cl_ord_id
        data = self._encode_new(order, spec)
        self._sent[cid] = order
        if self.corked:
            self._pending.append(data)
            self._pending_orders.append(cid)
        else:
            write(data)
        self.orders_sent += 1

    def rehearse_new_order(self, order: Order) -> bytes:
        """The frame :meth:`send_new_order` would write (checked, signed), not sent, no rate slot used."""
        return self._encode_new(order, self._checked(order))

    def rehearse_market_data(self, on_market_data) -> None:
        """Market data comes from the feed, not this connection: nothing to repeat."""

    def rehearsal_twin(self) -> None:
        """None: the rehearsal uses :meth:`rehearse_new_order` (a twin would need its own session)."""
        return None

    def _checked(self, order: Order) -> Spec:
        """The symbol's rules, after checking ``order`` against them (``ValueError`` says why not)."""
        spec = self._specs.get(order.symbol) or self._spec(order.symbol)
        if spec is None:
            raise ValueError(f"bybit: {order.symbol} is not a trading {self.category} symbol")
        market = order.ord_type == _MARKET
        if market:
            why = check_order(order, spec.rules, self._mid(order.symbol) if self._mid else None)
            if why is None and order.qty > spec.max_market_qty:
                why = self._bounds(order, spec, market)
        else:
            why = check_order(order, spec.rules)
            if why is None and not spec.min_price <= order.price <= spec.max_price:
                why = self._bounds(order, spec, market)
        if why is not None:
            for ours, theirs in self._rule_names:
                why = why.replace(ours, theirs)
            raise ValueError(why)
        return spec

    def _encode_new(self, order: Order, spec: Spec) -> bytes:
        """The signed-session ``order.create`` frame for ``order``."""
        link = f"{self._prefix}{order.cl_ord_id}"
        try:
            tmpl = spec.templates[order.side + 2 * order.ord_type + 4 * order.tif]
        except IndexError:
            raise ValueError(f"bybit: time in force {order.tif!r} is not supported") from None
        ts = _time_ns() // 1_000_000 + self.offset_ms
        if order.ord_type == _MARKET:
            msg = tmpl % (link, ts, order.qty, link)
        else:
            msg = tmpl % (link, ts, order.qty, order.price, link)
        return ws_text_frame(msg.encode(), self._mask())

    def send_cancel(self, cl_ord_id: int, orig_cl_ord_id: int, symbol: str) -> None:
        write = self._write
        if write is None or not self.connected:
            raise ConnectionError("bybit: not connected")
        tr = self._get(orig_cl_ord_id)
        if tr is None:
            raise ValueError(f"bybit: order {orig_cl_ord_id} was not sent here")
        now = _monotonic()
        if not self._cancel_rl.take(now):
            raise ValueError(self._limit_reason("order.cancel", self._cancel_rl, now))
        msg = cancel_message(f"{self._prefix}{cl_ord_id}", _time_ns() // 1_000_000 + self.offset_ms, self._recv,
                             self.category, tr.venue_symbol, tr.link)  # fmt: skip
        self._cancels[cl_ord_id] = orig_cl_ord_id
        data = ws_text_frame(msg.encode(), self._mask())
        if self.corked:
            self._pending.append(data)
        else:
            write(data)
        self.cancels_sent += 1

    @staticmethod
    def _bounds(order: Order, spec: Spec, market: bool) -> str:
        """Why an order is outside the symbol's price range or market-order size (the rule named)."""
        if market:
            return (f"{spec.symbol}: market quantity {order.qty:g} above the maximum "
                    f"{spec.max_market_qty:g} (lotSizeFilter.maxMktOrderQty)")  # fmt: skip
        if order.price < spec.min_price:
            return f"{spec.symbol}: price {order.price:g} below the minimum {spec.min_price:g} (priceFilter.minPrice)"
        return f"{spec.symbol}: price {order.price:g} above the maximum {spec.max_price:g} (priceFilter.maxPrice)"

    @staticmethod
    def _limit_reason(op: str, rl: RateWindow, now: float) -> str:
        if now < rl.blocked_until:
            return (
                f"bybit rate limit: {op} backing off {rl.blocked_until - now:.2f}s after a throttling answer"
            )
        return f"bybit rate limit: {op} at {rl.limit}/s (Bybit per-UID limit) reached"


async def _close(ws: ClientConnection) -> None:
    """Close politely, but not for long: a peer that vanished gets the socket aborted after 1 s."""
    try:
        await asyncio.wait_for(ws.close(), 1.0)
    except Exception:
        ws.transport.abort()


def _json(body: bytes, path: str, status: int) -> dict:
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BybitError(None, f"{path}: HTTP {status}, not JSON: {body[:120]!r}") from None
    if not isinstance(msg, dict):
        raise BybitError(None, f"{path}: HTTP {status}, unexpected answer")
    return msg


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (BybitError, ConnectionError)):
        return text
    return f"{type(exc).__name__}: {text}"

"""A loopback Binance private API (spot or USD-M), as the API documentation describes it.

Serves, on loopback only:

- REST (``rest_url``): ``time``, ``exchangeInfo``, ``openOrders``, ``order`` (query),
  ``myTrades`` / ``userTrades`` and, on USD-M, ``listenKey`` (POST/PUT/DELETE);
- the WebSocket API (``ws_url``): ``order.place``, ``order.cancel`` and, on spot,
  ``userDataStream.subscribe.signature`` (events pushed on that connection);
- on USD-M the user data stream (``user_ws_url``: ``/private/ws?listenKey=...&events=...``).

Every signed request is checked as Binance checks it: the API key, the HMAC-SHA256 signature
(REST: over the query string and body as received; WebSocket API: over the sorted parameters),
``timestamp`` against the server clock and ``recvWindow`` (-1021), filters (spot -1013
``Filter failure: ...``; USD-M -4014 / -4023 / -4164), order and weight rate limits (429 with
``retryAfter`` / ``Retry-After``), and answers carry ``rateLimits`` / ``X-MBX-*`` headers. Orders
match against a one-level book per symbol (``set_book``); resting orders fill when the test says
(:meth:`BinancePrivate.fill`). Knobs let a test inject answers (:meth:`inject`), shift the server
clock (``skew_ms``), refuse connections (``accepting``), drop them (:meth:`drop_connections`) and
repeat events (``repeat_events``).

Commissions are charged per trade at ``maker_rate`` / ``taker_rate`` of the notional and reported as
Binance reports them (spot ``n``/``N``, USD-M ``o.n``/``o.N``, trade look-ups ``commission``/
``commissionAsset``), in the asset ``fee_asset`` names (:meth:`BinancePrivate.commission`).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from hashlib import sha256
from urllib.parse import parse_qsl, urlparse

import orjson
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

API_KEY = "emuKey7xQ2mPz9LkW3vN8rT5yB1cD4fG6hJ0sA2uE7iO9pL3kM5nB8vC1xZ4qW6eR"
API_SECRET = "emuSecret4Hh9Jj2Kk7Ll5Zz8Xx3Cc6Vv1Bb0Nn4Mm7Qq2Ww9Ee5Rr8Tt3Yy6Uu1Ii"

D0 = Decimal(0)


@dataclass
class Rules:
    tick: str
    step: str
    min_qty: str
    max_qty: str
    min_notional: str
    market_step: str = "0"


DEFAULT_RULES = {
    "spot": {"BTCUSDT": Rules("0.01", "0.00001", "0.00001", "9000", "5")},
    "usdm": {"BTCUSDT": Rules("0.10", "0.001", "0.001", "1000", "100", "0.001")},
}
ASSETS = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}
#: Commission amounts are written to 8 decimals, as Binance writes them.
COMMISSION_STEP = Decimal("0.00000001")


@dataclass
class EmuOrder:
    order_id: int
    cid: str
    symbol: str
    side: str
    type: str
    tif: str
    price: Decimal
    qty: Decimal
    time: int
    executed: Decimal = D0
    quote: Decimal = D0
    status: str = "NEW"
    update_time: int = 0
    reduce_only: bool = False

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass
class Injection:
    """The next matching request gets this answer instead of being processed."""

    what: str  # "order.place", "order.cancel", a REST path such as "/api/v3/openOrders"
    status: int
    code: int
    msg: str
    retry_after_s: float | None = None


@dataclass
class Seen:
    """One request as received: when, what, and the answer's status."""

    at: float
    what: str
    status: int
    params: dict = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str, retry_after_ms: int | None = None) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.retry_after_ms = status, code, msg, retry_after_ms


class BinancePrivate:
    """The emulator; ``async with BinancePrivate("spot") as emu:`` starts it on free loopback ports."""

    def __init__(
        self,
        market: str = "spot",
        *,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        rules: dict[str, Rules] | None = None,
        order_limit: tuple[int, str, int] = (50, "SECOND", 10),
        weight_per_minute: int = 6000,
        fee_asset: str = "quote",
    ) -> None:
        self.market = market
        self.api_key = api_key
        self.api_secret = api_secret
        self.rules = {k: replace(v) for k, v in (rules or DEFAULT_RULES[market]).items()}  # each its own
        self.book: dict[str, tuple[Decimal, Decimal]] = {}
        #: (limit, interval, intervalNum) of the ORDERS rate limit, as exchangeInfo states it.
        self.order_limit = order_limit
        self._order_ms = {"SECOND": 1000, "MINUTE": 60_000, "DAY": 86_400_000}[order_limit[1]] * order_limit[
            2
        ]
        self.weight_per_minute = weight_per_minute
        #: Commission rates on a trade's notional.
        self.maker_rate = Decimal("0.0002")
        self.taker_rate = Decimal("0.0004")
        #: The asset commissions are charged in: "quote", "base", "received" (spot's rule: the asset
        #: the trade brings in, base on a buy and quote on a sell; USD-M charges its margin asset,
        #: the quote), or an asset's name such as "BNB" (converted at ``fee_asset_price`` quote).
        self.fee_asset = fee_asset
        self.fee_asset_price = Decimal("600")
        self.skew_ms = 0
        self.accepting = True
        self.repeat_events = False
        self.orders: dict[int, EmuOrder] = {}
        self.trades: list[dict] = []
        self.seen: list[Seen] = []
        self.injections: list[Injection] = []
        #: WebSocket API methods whose next request is processed but never answered / lost on the way.
        self.unanswered: list[str] = []
        self.lost: list[str] = []
        self._next_order_id = 1000
        self._next_trade_id = 5000
        self._order_windows: dict[int, int] = {}
        self._weight_windows: dict[int, int] = {}
        self._listen_keys: set[str] = set()
        self._subscribers: dict[object, int] = {}  # connection -> subscriptionId (spot) or 0 (USD-M)
        self._conns: set = set()
        self._sub_n = 0
        self.event_log: list[dict] = []

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> BinancePrivate:
        self._wss = await serve(self._ws, "127.0.0.1", 0, process_request=self._admit, compression=None)
        self._http = await asyncio.start_server(self._serve_http, "127.0.0.1", 0)
        ws_port = self._wss.sockets[0].getsockname()[1]
        self.rest_url = f"http://127.0.0.1:{self._http.sockets[0].getsockname()[1]}"
        path = "/ws-api/v3" if self.market == "spot" else "/ws-fapi/v1"
        self.ws_url = f"ws://127.0.0.1:{ws_port}{path}"
        self.user_ws_url = f"ws://127.0.0.1:{ws_port}/private"
        return self

    async def __aexit__(self, *exc) -> None:
        self._wss.close()
        self._http.close()
        await self._wss.wait_closed()
        await self._http.wait_closed()

    def venue_config(self, **extra) -> dict:
        """The ``venue:`` section of an engine config pointing at this emulator."""
        cfg = {
            "exchange": "binance",
            "market": self.market,
            "testnet": True,
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "api_key": self.api_key,
            "api_secret": self.api_secret,
            "backoff_initial": 0.01,
            "backoff_max": 0.05,
        }
        if self.market == "usdm":
            cfg["user_ws_url"] = self.user_ws_url
        cfg.update(extra)
        return cfg

    # -- controls --------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.skew_ms

    def set_book(self, symbol: str, bid: str | float, ask: str | float) -> None:
        self.book[symbol] = (Decimal(str(bid)), Decimal(str(ask)))

    def inject(self, what: str, status: int, code: int, msg: str, retry_after_s: float | None = None) -> None:
        self.injections.append(Injection(what, status, code, msg, retry_after_s))

    @property
    def user_streams(self) -> int:
        """Live user-data subscriptions (spot: subscribed WebSocket API connections)."""
        return len(self._subscribers)

    async def drop_connections(self) -> None:
        """Close every WebSocket connection (order entry and user data), as a network drop does."""
        for ws in list(self._conns):
            ws.transport.abort()
        self._subscribers.clear()

    def push_event(self, event: dict) -> None:
        """A connection event (``serverShutdown``; spot ``eventStreamTerminated``) to every subscriber."""
        for ws, sub in list(self._subscribers.items()):
            frame = {"subscriptionId": sub, "event": event} if self.market == "spot" else event
            asyncio.ensure_future(self._send(ws, orjson.dumps(frame).decode()))

    def open_orders(self, symbol: str | None = None) -> list[EmuOrder]:
        return [o for o in self.orders.values() if o.open and (symbol is None or o.symbol == symbol)]

    def order_by_cid(self, cid: str) -> EmuOrder | None:
        for o in self.orders.values():
            if o.cid == cid:
                return o
        return None

    def position(self, symbol: str) -> Decimal:
        """Signed base quantity traded (buys - sells) on ``symbol``."""
        pos = D0
        for t in self.trades:
            if t["symbol"] == symbol:
                pos += Decimal(t["qty"]) * (1 if t["side"] == "BUY" else -1)
        return pos

    def fill(
        self, order: EmuOrder, qty: str | Decimal | None = None, price: str | Decimal | None = None
    ) -> dict:
        """Execute a resting order (we are the maker) for ``qty`` (default: all that is left)."""
        assert order.open, f"order {order.cid} is {order.status}"
        q = Decimal(str(qty)) if qty is not None else order.qty - order.executed
        px = Decimal(str(price)) if price is not None else order.price
        return self._trade(order, q, px, maker=True)

    @staticmethod
    def assets(symbol: str) -> tuple[str, str]:
        """``(baseAsset, quoteAsset)`` of a symbol, as exchangeInfo states them."""
        return ASSETS.get(symbol, (symbol[:-4], symbol[-4:]))

    def commission(self, symbol: str, side: str, qty: Decimal, px: Decimal, maker: bool) -> tuple[Decimal, str]:
        """What one trade is charged, and in which asset (see ``fee_asset``)."""
        base, quote = self.assets(symbol)
        rate = self.maker_rate if maker else self.taker_rate
        asset = self.fee_asset
        if asset == "received":
            asset = "base" if side == "BUY" and self.market == "spot" else "quote"
        asset = {"quote": quote, "base": base}.get(asset, asset)
        if asset == base:
            amount = qty * rate
        elif asset == quote:
            amount = qty * px * rate
        else:
            amount = qty * px * rate / self.fee_asset_price
        return amount.quantize(COMMISSION_STEP), asset

    def cancel_by_venue(self, order: EmuOrder) -> None:
        """Binance cancels an order itself (e.g. an expiry): CANCELED/EXPIRED event."""
        order.status = "EXPIRED"
        order.update_time = self.now_ms()
        self._push(order, "EXPIRED")

    # -- matching --------------------------------------------------------------------------------
    def _trade(self, o: EmuOrder, qty: Decimal, px: Decimal, maker: bool) -> dict:
        now = self.now_ms()
        self._next_trade_id += 1
        o.executed += qty
        o.quote += qty * px
        o.status = "FILLED" if o.executed >= o.qty else "PARTIALLY_FILLED"
        o.update_time = now
        commission, asset = self.commission(o.symbol, o.side, qty, px, maker)
        trade = {
            "symbol": o.symbol, "id": self._next_trade_id, "orderId": o.order_id, "side": o.side,
            "price": str(px), "qty": str(qty), "quoteQty": str(qty * px), "commission": str(commission),
            "commissionAsset": asset, "time": now, "maker": maker,
        }  # fmt: skip
        self.trades.append(trade)
        self._push(o, "TRADE", trade)
        return trade

    def _place(self, p: dict) -> EmuOrder:
        sym = p.get("symbol", "")
        rules = self.rules.get(sym)
        if rules is None:
            raise ApiError(400, -1121, "Invalid symbol.")
        side, otype = p.get("side"), p.get("type")
        if side not in ("BUY", "SELL") or otype not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise ApiError(
                400, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed."
            )
        if otype == "LIMIT_MAKER" and self.market != "spot":
            raise ApiError(400, -1116, "Invalid orderType.")
        cid = p.get("newClientOrderId") or f"auto{self._next_order_id}"
        if any(o.cid == cid and o.open for o in self.orders.values()):
            if self.market == "spot":
                raise ApiError(400, -2010, "Duplicate order sent.")
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")
        qty = Decimal(str(p.get("quantity", "0")))
        price = Decimal(str(p.get("price", "0"))) if otype != "MARKET" else D0
        tif = p.get("timeInForce", "GTC" if otype != "MARKET" else "")
        self._check_filters(rules, otype, price, qty, sym)
        bid, ask = self.book.get(sym, (D0, D0))
        now = self.now_ms()
        self._next_order_id += 1
        o = EmuOrder(self._next_order_id, cid, sym, side, otype, tif, price, qty, now, update_time=now,
                     reduce_only=str(p.get("reduceOnly", "false")).lower() == "true")  # fmt: skip
        opp = ask if side == "BUY" else bid
        marketable = otype == "MARKET" or (opp > 0 and (price >= opp if side == "BUY" else price <= opp))
        if otype == "LIMIT_MAKER" and marketable:
            raise ApiError(400, -2010, "Order would immediately match and take.")
        self.orders[o.order_id] = o
        self._push(o, "NEW")
        if marketable and tif == "GTX":  # USD-M post-only: accepted, then expired instead of taking
            o.status = "EXPIRED"
            self._push(o, "EXPIRED")
        elif marketable:
            self._trade(o, qty, opp if opp > 0 else price, maker=False)
        elif tif == "IOC":
            o.status = "EXPIRED"
            self._push(o, "EXPIRED")
        return o

    def _check_filters(self, r: Rules, otype: str, price: Decimal, qty: Decimal, sym: str) -> None:
        spot = self.market == "spot"
        step = Decimal(r.market_step) if otype == "MARKET" and Decimal(r.market_step) > 0 else Decimal(r.step)
        if otype != "MARKET" and (price <= 0 or price % Decimal(r.tick) != 0):
            raise (
                ApiError(400, -1013, "Filter failure: PRICE_FILTER")
                if spot
                else ApiError(400, -4014, "Price not increased by tick size.")
            )
        if qty % step != 0:
            lot = "MARKET_LOT_SIZE" if otype == "MARKET" else "LOT_SIZE"
            raise (
                ApiError(400, -1013, f"Filter failure: {lot}")
                if spot
                else ApiError(400, -4023, "Qty not increased by step size.")
            )
        if qty < Decimal(r.min_qty) or qty > Decimal(r.max_qty):
            raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
        ref = price if otype != "MARKET" else sum(self.book.get(sym, (D0, D0))) / 2
        if ref * qty < Decimal(r.min_notional):
            if spot:
                raise ApiError(400, -1013, "Filter failure: NOTIONAL")
            raise ApiError(
                400,
                -4164,
                f"Order's notional must be no smaller than {r.min_notional} (unless you choose reduce only).",
            )

    def _cancel(self, p: dict) -> EmuOrder:
        o = None
        if p.get("orderId") not in (None, ""):
            o = self.orders.get(int(p["orderId"]))
        elif p.get("origClientOrderId"):
            o = self.order_by_cid(str(p["origClientOrderId"]))
        if o is None or not o.open or o.symbol != p.get("symbol"):
            raise ApiError(400, -2011, "Unknown order sent.")
        o.status = "CANCELED"
        o.update_time = self.now_ms()
        self._push(o, "CANCELED", cancel_cid=p.get("newClientOrderId"))
        return o

    # -- user data events ----------------------------------------------------------------------------
    def _push(self, o: EmuOrder, x: str, trade: dict | None = None, cancel_cid: str | None = None) -> None:
        now = self.now_ms()
        last_qty = trade["qty"] if trade else "0"
        last_px = trade["price"] if trade else "0"
        if self.market == "spot":
            ev = {
                "e": "executionReport", "E": now, "s": o.symbol,
                "c": (cancel_cid or f"cancel{o.order_id}") if x == "CANCELED" else o.cid,
                "S": o.side, "o": o.type, "f": o.tif or "GTC", "q": str(o.qty), "p": str(o.price), "P": "0", "F": "0",
                "g": -1, "C": o.cid if x == "CANCELED" else "", "x": x, "X": o.status, "r": "NONE", "i": o.order_id,
                "l": last_qty, "z": str(o.executed), "L": last_px,
                "n": trade["commission"] if trade else "0", "N": trade["commissionAsset"] if trade else None,
                "T": now, "t": trade["id"] if trade else -1, "I": now, "w": o.open, "m": bool(trade and trade["maker"]),
                "M": False, "O": o.time, "Z": str(o.quote), "Y": str(Decimal(last_qty) * Decimal(last_px)), "Q": "0",
            }  # fmt: skip
        else:
            ev = {
                "e": "ORDER_TRADE_UPDATE", "E": now, "T": now,
                "o": {
                    "s": o.symbol, "c": o.cid, "S": o.side, "o": o.type, "f": o.tif or "GTC", "q": str(o.qty),
                    "p": str(o.price), "ap": str(o.quote / o.executed if o.executed else 0), "sp": "0", "x": x,
                    "X": o.status, "i": o.order_id, "l": last_qty, "z": str(o.executed), "L": last_px,
                    "N": trade["commissionAsset"] if trade else self.assets(o.symbol)[1],
                    "n": trade["commission"] if trade else "0", "T": now, "t": trade["id"] if trade else 0,
                    "b": "0", "a": "0", "m": bool(trade and trade["maker"]), "R": o.reduce_only, "wt": "CONTRACT_PRICE",
                    "ot": o.type, "ps": "BOTH", "cp": False, "rp": "0", "pP": False, "si": 0, "ss": 0,
                    "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
                },
            }  # fmt: skip
        self.event_log.append(ev)
        for ws, sub in list(self._subscribers.items()):
            frame = orjson.dumps(
                {"subscriptionId": sub, "event": ev} if self.market == "spot" else ev
            ).decode()
            for _ in range(2 if self.repeat_events else 1):
                asyncio.ensure_future(self._send(ws, frame))

    async def _send(self, ws, text: str) -> None:
        try:
            await ws.send(text)
        except Exception:
            self._subscribers.pop(ws, None)

    # -- auth and limits ---------------------------------------------------------------------------------
    def _check_time(self, p: dict) -> None:
        try:
            ts = int(p["timestamp"])
            rw = int(float(p.get("recvWindow", 5000)))
        except (KeyError, ValueError):
            raise ApiError(
                400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            ) from None
        if rw > 60000:
            raise ApiError(
                400, -1102, "Mandatory parameter 'recvWindow' was not sent, was empty/null, or malformed."
            )
        server = self.now_ms()
        if ts >= server + 1000:
            raise ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server - ts > rw:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def _check_signature(self, payload: str, signature: str | None) -> None:
        want = hmac.new(self.api_secret.encode(), payload.encode(), sha256).hexdigest()
        if not signature or not hmac.compare_digest(want, str(signature).lower()):
            raise ApiError(400, -1022, "Signature for this request is not valid.")

    def _take_weight(self, w: int) -> int:
        win = self.now_ms() // 60_000
        used = self._weight_windows.get(win, 0) + w
        self._weight_windows[win] = used
        if used > self.weight_per_minute:
            retry = (win + 1) * 60_000
            raise ApiError(
                429,
                -1003,
                f"Too much request weight used; current limit is {self.weight_per_minute} request weight per 1 MINUTE.",
                retry,
            )
        return used

    def _take_order(self) -> int:
        limit, interval, num = self.order_limit
        win = self.now_ms() // self._order_ms
        n = self._order_windows.get(win, 0) + 1
        if n > limit:
            raise ApiError(429, -1015, f"Too many new orders; current limit is {limit} orders per {num} {interval}.",
                           (win + 1) * self._order_ms)  # fmt: skip
        self._order_windows[win] = n
        return n

    def _rate_limits(self, orders: bool) -> list[dict]:
        now = self.now_ms()
        out = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                "limit": self.weight_per_minute, "count": self._weight_windows.get(now // 60_000, 0)}]  # fmt: skip
        if orders:
            limit, interval, num = self.order_limit
            out.insert(0, {"rateLimitType": "ORDERS", "interval": interval, "intervalNum": num, "limit": limit,
                           "count": self._order_windows.get(now // self._order_ms, 0)})  # fmt: skip
        return out

    def _injected(self, what: str) -> Injection | None:
        for i, inj in enumerate(self.injections):
            if inj.what == what:
                return self.injections.pop(i)
        return None

    # -- WebSocket API and user stream ---------------------------------------------------------------------
    def _admit(self, connection, request):
        if not self.accepting:
            return Response(503, "Service Unavailable", Headers([("Content-Length", "0")]), b"")
        return None

    async def _ws(self, ws) -> None:
        self._conns.add(ws)
        try:
            path = urlparse(ws.request.path)
            if path.path.startswith("/private"):
                q = dict(parse_qsl(path.query))
                if q.get("listenKey") not in self._listen_keys or "ORDER_TRADE_UPDATE" not in q.get(
                    "events", ""
                ):
                    await ws.close(1008, "invalid listenKey or events")
                    return
                self._subscribers[ws] = 0
                await ws.wait_closed()
                return
            async for text in ws:
                await self._ws_request(ws, text)
        except Exception:
            pass
        finally:
            self._conns.discard(ws)
            self._subscribers.pop(ws, None)

    async def _ws_request(self, ws, text) -> None:
        msg = orjson.loads(text)
        rid, method, p = msg.get("id"), msg.get("method", ""), msg.get("params") or {}
        if method in self.lost:
            self.lost.remove(method)
            self.seen.append(Seen(time.monotonic(), method, 0, p))
            return
        orders = method == "order.place"
        answer: dict = {"id": rid}
        status = 200
        try:
            inj = self._injected(method)
            if inj is not None:
                retry = int(self.now_ms() + inj.retry_after_s * 1000) if inj.retry_after_s else None
                raise ApiError(inj.status, inj.code, inj.msg, retry)
            self._take_weight(1 if method != "order.place" or self.market == "spot" else 0)
            if method in ("order.place", "order.cancel", "userDataStream.subscribe.signature"):
                if p.get("apiKey") != self.api_key:
                    raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
                payload = "&".join(f"{k}={_text(p[k])}" for k in sorted(p) if k != "signature")
                self._check_signature(payload, p.get("signature"))
                self._check_time(p)
            if method == "order.place":
                self._take_order()
                o = self._place(p)
                result = self._order_json(o, ack=p.get("newOrderRespType") == "ACK")
            elif method == "order.cancel":
                result = self._order_json(self._cancel(p))
            elif method == "userDataStream.subscribe.signature":
                self._sub_n += 1
                self._subscribers[ws] = self._sub_n
                result = {"subscriptionId": self._sub_n}
            elif method == "time":
                result = {"serverTime": self.now_ms()}
            else:
                raise ApiError(400, -1102, f"Unknown method {method!r}")
            answer.update(status=200, result=result)
        except ApiError as exc:
            status = exc.status
            err: dict = {"code": exc.code, "msg": exc.msg}
            if exc.retry_after_ms:
                err["data"] = {"serverTime": self.now_ms(), "retryAfter": exc.retry_after_ms}
            answer.update(status=exc.status, error=err)
        answer["rateLimits"] = self._rate_limits(orders)
        self.seen.append(Seen(time.monotonic(), method, status, p))
        if method in self.unanswered:
            self.unanswered.remove(method)
            return
        await ws.send(orjson.dumps(answer).decode())

    def _order_json(self, o: EmuOrder, ack: bool = False) -> dict:
        base = {"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.cid}
        if ack:
            return {**base, "orderListId": -1, "transactTime": o.time}
        base.update(
            price=str(o.price), origQty=str(o.qty), executedQty=str(o.executed), status=o.status,
            timeInForce=o.tif, type=o.type, side=o.side, time=o.time, updateTime=o.update_time,
        )  # fmt: skip
        if self.market == "spot":
            base.update(cummulativeQuoteQty=str(o.quote), orderListId=-1, isWorking=o.open)
        else:
            base.update(avgPrice=str(o.quote / o.executed if o.executed else 0), cumQuote=str(o.quote),
                        reduceOnly=o.reduce_only, positionSide="BOTH", origType=o.type)  # fmt: skip
        return base

    # -- REST ---------------------------------------------------------------------------------------------------
    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", 0) or 0))
            status, payload, extra = self._rest(method, target, headers, body.decode())
            out = orjson.dumps(payload)
            hdrs = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(out)}\r\n{hdrs}"
                "Connection: close\r\n\r\n".encode()
                + out
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _rest(self, method: str, target: str, headers: dict, body: str) -> tuple[int, object, dict]:
        url = urlparse(target)
        path = url.path
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        extra: dict[str, str] = {}
        status = 200
        try:
            inj = self._injected(path)
            if inj is not None:
                if inj.retry_after_s:
                    extra["Retry-After"] = str(int(inj.retry_after_s))
                raise ApiError(inj.status, inj.code, inj.msg)
            extra["X-MBX-USED-WEIGHT-1M"] = str(self._take_weight(1))
            result = self._rest_call(method, path, url.query, body, headers, params)
        except ApiError as exc:
            status, result = exc.status, {"code": exc.code, "msg": exc.msg}
            if exc.retry_after_ms:
                extra["Retry-After"] = str(max(1, (exc.retry_after_ms - self.now_ms() + 999) // 1000))
        self.seen.append(Seen(time.monotonic(), f"{method} {path}", status, params))
        return status, result, extra

    def _rest_call(self, method: str, path: str, query: str, body: str, headers: dict, params: dict):
        short = path.rsplit("/", 1)[-1]
        if short == "time":
            return {"serverTime": self.now_ms()}
        if short == "exchangeInfo":
            return self._exchange_info(params.get("symbols"))
        if headers.get("x-mbx-apikey") != self.api_key:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if short == "listenKey":  # USER_STREAM: the API key only
            if method == "POST":
                key = f"lk{len(self._listen_keys) + 1}x{self.now_ms()}"
                self._listen_keys.add(key)
                return {"listenKey": key}
            if method == "PUT":
                if not self._listen_keys:
                    raise ApiError(400, -1125, "This listenKey does not exist.")
                return {}
            self._listen_keys.clear()
            return {}
        # SIGNED: query string concatenated with the body, the signature parameter excluded.
        parts = [kv for kv in query.split("&") if kv and not kv.startswith("signature=")]
        self._check_signature("&".join(parts) + body, params.get("signature"))
        self._check_time(params)
        sym = params.get("symbol", "")
        if short == "openOrders":
            return [self._order_json(o) for o in self.open_orders(sym or None)]
        if short == "order" and method == "GET":
            o = (
                self.orders.get(int(params["orderId"]))
                if params.get("orderId")
                else self.order_by_cid(params.get("origClientOrderId", ""))
            )
            if o is None or o.symbol != sym:
                raise ApiError(400, -2013, "Order does not exist.")
            return self._order_json(o)
        if short in ("myTrades", "userTrades"):
            oid = int(params["orderId"]) if params.get("orderId") else None
            out = []
            for t in self.trades:
                if t["symbol"] == sym and (oid is None or t["orderId"] == oid):
                    tr = {k: v for k, v in t.items() if k != "maker"}
                    if self.market == "spot":
                        tr.update(
                            isMaker=t["maker"], isBuyer=t["side"] == "BUY", isBestMatch=True, orderListId=-1
                        )
                    else:
                        tr.update(
                            maker=t["maker"], buyer=t["side"] == "BUY", realizedPnl="0", positionSide="BOTH"
                        )
                    out.append(tr)
            return out
        raise ApiError(404, -1000, f"no route {method} {path}")

    def _exchange_info(self, symbols_param: str | None) -> dict:
        wanted = None
        if symbols_param:
            wanted = orjson.loads(symbols_param)
            unknown = [s for s in wanted if s not in self.rules]
            if unknown:
                raise ApiError(400, -1121, "Invalid symbol.")
        syms = []
        for name, r in self.rules.items():
            if wanted is not None and name not in wanted:
                continue
            base, quote = self.assets(name)
            filters = [
                {"filterType": "PRICE_FILTER", "minPrice": r.tick, "maxPrice": "1000000", "tickSize": r.tick},
                {"filterType": "LOT_SIZE", "minQty": r.min_qty, "maxQty": r.max_qty, "stepSize": r.step},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0",
                    "maxQty": r.max_qty,
                    "stepSize": r.market_step,
                },
            ]
            if self.market == "spot":
                filters.append({"filterType": "NOTIONAL", "minNotional": r.min_notional, "applyMinToMarket": True,
                                "maxNotional": "9000000", "applyMaxToMarket": False, "avgPriceMins": 5})  # fmt: skip
            else:
                filters.append({"filterType": "MIN_NOTIONAL", "notional": r.min_notional})
            entry = {
                "symbol": name,
                "status": "TRADING",
                "baseAsset": base,
                "quoteAsset": quote,
                "filters": filters,
            }
            if self.market == "usdm":
                entry["contractType"] = "PERPETUAL"
            syms.append(entry)
        limits = [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_per_minute,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": self.order_limit[1],
                "intervalNum": self.order_limit[2],
                "limit": self.order_limit[0],
            },
        ]
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": limits,
            "exchangeFilters": [],
            "symbols": syms,
        }


def _text(v: object) -> str:
    """A JSON parameter value as the signature payload writes it."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)

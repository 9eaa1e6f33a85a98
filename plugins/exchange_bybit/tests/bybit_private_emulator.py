"""A loopback emulator of Bybit v5's private API, as the docs describe it, for the ``bybit`` venue's tests.

- REST (its own port): ``/v5/market/time``, ``/v5/market/instruments-info`` (paged), and the signed
  ``/v5/order/realtime``, ``/v5/order/history``, ``/v5/execution/list``, ``POST /v5/order/create``,
  ``POST /v5/order/cancel``. Every signed request is checked: ``X-BAPI-API-KEY`` (10003),
  ``X-BAPI-TIMESTAMP`` in ``[server_time - recv_window, server_time + 1000)`` (10002),
  ``X-BAPI-SIGN`` = HMAC-SHA256 of ``timestamp + key + recv_window + payload`` (10004); each
  endpoint has a per-second limit answered with 10006 and the ``X-Bapi-Limit*`` headers.
- WebSocket ``/v5/private``: ``auth`` (``GET/realtime{expires}``), ``subscribe`` to ``order`` /
  ``execution`` (all-in-one or ``.{category}``), ``ping``; pushes every order change and fill.
- WebSocket ``/v5/trade``: ``auth``, ``order.create`` / ``order.cancel`` with the timestamp and
  recv-window header, the same rate limits (shared with REST, as the docs say for batch orders),
  acks with ``X-Bapi-Limit*`` in ``header``.
- WebSocket ``/v5/public/{category}``: ``orderbook.{depth}.{symbol}`` snapshots of the emulator's book
  and ``publicTrade.{symbol}``, so an engine gets its market data from the same venue.

Matching is simple and stated: an incoming order first takes the emulator's book (the external
liquidity, at each level's price), then rests (GTC/PostOnly) or is cancelled (IOC, Market); a
PostOnly order that would take is cancelled with ``EC_PostOnlyWillTakeLiquidity``. Resting orders
fill when the test sends a taker (:meth:`BybitEmulator.trade`). Filters follow instruments-info.

Fees: ``maker_fee`` / ``taker_fee`` times the fill. linear: ``execFee`` in the settle coin (USDT);
spot: in the coin the Enums page's "Spot Fee Currency Instruction" names (a buy pays in the base
coin, a sell in the quote coin; with a negative maker rate a maker's rebate is in the other one).
``fee_coin`` makes every fee another coin (Bybit deducting fees in MNT).

Never the internet: everything binds to 127.0.0.1. The signature check is written here
independently (``hmac.new``), not with the plugin's signing module.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

LINEAR_BTC = {  # shaped like the docs' instruments-info example (linear BTCUSDT)
    "symbol": "BTCUSDT", "symbolId": 1, "contractType": "LinearPerpetual", "status": "Trading",
    "baseCoin": "BTC", "quoteCoin": "USDT", "settleCoin": "USDT", "priceScale": "2",
    "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
    "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                      "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000", "minNotionalValue": "5"},
}  # fmt: skip
LINEAR_ETH = {
    "symbol": "ETHUSDT", "symbolId": 2, "contractType": "LinearPerpetual", "status": "Trading",
    "baseCoin": "ETH", "quoteCoin": "USDT", "settleCoin": "USDT", "priceScale": "2",
    "priceFilter": {"minPrice": "0.01", "maxPrice": "199999.98", "tickSize": "0.01"},
    "lotSizeFilter": {"maxOrderQty": "7240.00", "minOrderQty": "0.01", "qtyStep": "0.01",
                      "postOnlyMaxOrderQty": "7240.00", "maxMktOrderQty": "1000.00", "minNotionalValue": "5"},
}  # fmt: skip
LINEAR_XRP = {  # the symbol of the recorded session in fixtures/bybit
    "symbol": "XRPUSDT", "symbolId": 3, "contractType": "LinearPerpetual", "status": "Trading",
    "baseCoin": "XRP", "quoteCoin": "USDT", "settleCoin": "USDT", "priceScale": "4",
    "priceFilter": {"minPrice": "0.0001", "maxPrice": "199.9998", "tickSize": "0.0001"},
    "lotSizeFilter": {"maxOrderQty": "1000000", "minOrderQty": "1", "qtyStep": "1",
                      "postOnlyMaxOrderQty": "1000000", "maxMktOrderQty": "300000", "minNotionalValue": "5"},
}  # fmt: skip
SPOT_BTC = {  # the docs' spot example
    "symbol": "BTCUSDT", "symbolId": 1, "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading",
    "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.0000001", "minOrderQty": "0.000011",
                      "maxOrderQty": "83", "minOrderAmt": "5", "maxOrderAmt": "8000000", "maxLimitOrderQty": "83",
                      "maxMarketOrderQty": "41.5", "postOnlyMaxLimitOrderSize": "60000"},
    "priceFilter": {"tickSize": "0.01"},
}  # fmt: skip

OPEN = ("New", "PartiallyFilled")
_QUIET = logging.getLogger("bybit_emulator")
_QUIET.setLevel(logging.WARNING)


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _dec(x: Any) -> Decimal:
    return Decimal(str(x))


def _s(d: Decimal) -> str:
    return format(d.normalize(), "f") if d else "0"


@dataclass
class EmuOrder:
    order_id: str
    link: str
    category: str
    symbol: str
    side: str
    order_type: str
    price: Decimal
    qty: Decimal
    tif: str
    reduce_only: bool
    created: int
    status: str = "New"
    cum: Decimal = Decimal(0)
    value: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    fee_coin: str = "USDT"
    reject_reason: str = "EC_NoError"
    cancel_type: str = "UNKNOWN"
    updated: int = 0

    def as_dict(self) -> dict:
        avg = self.value / self.cum if self.cum else None
        leaves = Decimal(0) if self.status not in OPEN else self.qty - self.cum
        return {
            "category": self.category, "orderId": self.order_id, "orderLinkId": self.link, "symbol": self.symbol,
            "price": _s(self.price), "qty": _s(self.qty), "side": self.side, "positionIdx": 0,
            "orderStatus": self.status, "cancelType": self.cancel_type, "rejectReason": self.reject_reason,
            "avgPrice": _s(avg) if avg is not None else "", "leavesQty": _s(leaves),
            "leavesValue": _s(leaves * self.price), "cumExecQty": _s(self.cum), "cumExecValue": _s(self.value),
            "cumExecFee": _s(self.fee), "timeInForce": self.tif, "orderType": self.order_type,
            "reduceOnly": self.reduce_only, "createdTime": str(self.created), "updatedTime": str(self.updated),
            "cumFeeDetail": {self.fee_coin: _s(self.fee)},
        }  # fmt: skip


@dataclass
class RateLimit:
    limit: int
    times: deque = field(default_factory=deque)

    def hit(self, now: float) -> tuple[bool, int]:
        """(allowed, remaining after this request) in the rolling second."""
        while self.times and now - self.times[0] >= 1.0:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False, 0
        self.times.append(now)
        return True, self.limit - len(self.times)

    def reset_ms(self, now: float) -> int:
        return _ms() + (int((self.times[0] + 1.0 - now) * 1000) if self.times else 0)


class BybitEmulator:
    """The private API of one Bybit account (one key pair), with a book per symbol."""

    def __init__(
        self,
        api_key: str = "emu-key-0001",
        api_secret: str = "emu-secret-0001",
        market: str = "linear",
        instruments: list[dict] | None = None,
        order_limit: int = 10,
        get_limit: int = 50,
        maker_fee: str = "0.0002",
        taker_fee: str = "0.00055",
        fee_coin: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.market = market
        # A copy: a test may change a filter of its emulator (Bybit changing a rule) without touching others.
        self.instruments = copy.deepcopy(
            instruments or ([SPOT_BTC] if market == "spot" else [LINEAR_BTC, LINEAR_ETH])
        )
        self.limits = {"order.create": order_limit, "order.cancel": order_limit}
        self.get_limit = get_limit
        self.maker_fee = Decimal(maker_fee)
        self.taker_fee = Decimal(taker_fee)
        #: Every fee in this coin instead (the quote-valued amount): one the venue cannot value.
        self.fee_coin = fee_coin
        #: Added to the server clock (ms): a venue whose clock is off by this much is refused (10002).
        self.skew_ms = 0
        #: Answer create/cancel on /v5/trade with this retCode instead (e.g. 10016), once per entry.
        self.fail_next: deque[tuple[int, str]] = deque()
        #: False: /v5/private connections are refused (the stream is "down").
        self.accept_private = True
        self.accept_trade = True
        #: True: ``order.create`` on /v5/trade is swallowed (no ack, no order): lost with the connection.
        self.black_hole = False
        #: True: /v5/private stops answering anything, pings included (a half-dead connection).
        self.mute_private = False
        #: At most this many instruments per instruments-info page (forces ``cursor`` paging).
        self.max_page = 1000
        self.books: dict[str, tuple[list[list[Decimal]], list[list[Decimal]]]] = {}
        self.orders: dict[str, EmuOrder] = {}  # by orderLinkId (or orderId when none)
        self.executions: list[dict] = []
        self.links_used: set[str] = set()
        self.requests: list[tuple[str, str, dict]] = []  # (transport, op or path, params)
        self.refusals: list[tuple[str, int, str]] = []  # (what, retCode, retMsg)
        self.private_conns: list[Any] = []
        self.trade_conns: list[Any] = []
        self.public_conns: list[Any] = []
        self.private_auths = 0
        self.trade_auths = 0
        self._subs: dict[Any, set[str]] = {}
        self._limits: dict[str, RateLimit] = {}
        self._u = itertools.count(1)
        self._seq = itertools.count(1000)
        self._http = None
        self._ws = None
        self.rest_port = 0
        self.ws_port = 0

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> BybitEmulator:
        from websockets.asyncio.server import serve

        self._http = await asyncio.start_server(self._http_conn, "127.0.0.1", 0)
        self.rest_port = self._http.sockets[0].getsockname()[1]
        # The emulator stands for Bybit's servers: what it logs is not ours (tests scan our logs for the key).
        self._ws = await serve(self._ws_conn, "127.0.0.1", 0, compression=None, process_request=self._gate,
                               logger=_QUIET)  # fmt: skip
        self.ws_port = self._ws.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for srv in (self._ws, self._http):
            if srv is not None:
                srv.close()
        if self._ws is not None:
            await self._ws.wait_closed()

    async def __aenter__(self) -> BybitEmulator:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def public_url(self) -> str:
        return f"{self.ws_url}/v5/public/{self.market}"

    def server_ms(self) -> int:
        return _ms() + self.skew_ms

    # -- test controls ------------------------------------------------------------------------------
    def set_book(self, symbol: str, bids: list, asks: list) -> None:
        """The external liquidity of ``symbol`` (``[[price, qty], ...]``, best first); published as a snapshot."""
        self.books[symbol] = ([[_dec(p), _dec(q)] for p, q in bids], [[_dec(p), _dec(q)] for p, q in asks])
        self._publish_book(symbol)

    def trade(self, symbol: str, taker_side: str, price: Any, qty: Any) -> Decimal:
        """An outside taker (``Buy`` lifts asks, ``Sell`` hits bids) at ``price`` or better: fills our
        resting orders first come first served; returns the quantity it filled. Published as a trade."""
        price, left = _dec(price), _dec(qty)
        filled = Decimal(0)
        resting = [o for o in self.orders.values() if o.symbol == symbol and o.status in OPEN
                   and o.side != taker_side and (o.price >= price if taker_side == "Sell" else o.price <= price)]  # fmt: skip
        resting.sort(key=lambda o: (-o.price if o.side == "Buy" else o.price, o.created))
        for o in resting:
            if left <= 0:
                break
            q = min(left, o.qty - o.cum)
            self._execute(o, o.price, q, maker=True)
            left -= q
            filled += q
        self._broadcast_public(f"publicTrade.{symbol}", "snapshot", [{
            "T": _ms(), "s": symbol, "S": taker_side, "v": _s(_dec(qty)), "p": _s(price), "L": "PlusTick",
            "i": str(uuid.uuid4()), "BT": False}])  # fmt: skip
        return filled

    def cancel_by_venue(self, link: str) -> None:
        """Bybit cancels an order by itself (e.g. a risk rule): a Cancelled push."""
        o = self.orders[link]
        o.status, o.cancel_type, o.updated = "Cancelled", "CancelByAdmin", self.server_ms()
        self._push_order(o)

    async def drop(self, which: str = "private") -> None:
        """Cut every ``private``, ``trade`` or ``public`` connection abruptly (no close frame)."""
        conns = {"private": self.private_conns, "trade": self.trade_conns, "public": self.public_conns}[which]
        for ws in list(conns):
            ws.transport.abort()

    def repush(self) -> None:
        """Send every order and execution again (a venue replaying after a glitch): duplicates."""
        for e in self.executions:
            self._push("execution", [e])
        for o in self.orders.values():
            self._push("order", [o.as_dict()])

    def position(self, symbol: str) -> Decimal:
        """Net filled quantity of our orders on ``symbol`` (buys positive)."""
        return sum((_dec(e["execQty"]) * (1 if e["side"] == "Buy" else -1) for e in self.executions
                    if e["symbol"] == symbol), Decimal(0))  # fmt: skip

    # -- checks the docs state ----------------------------------------------------------------------
    def _check_time(self, ts: Any, recv: Any) -> tuple[int, str] | None:
        """Integration Guidance: server_time - recv_window <= timestamp < server_time + 1000."""
        try:
            ts, recv = int(ts), int(recv)
        except (TypeError, ValueError):
            return 10001, "timestamp or recv_window missing"
        server = self.server_ms()
        if not server - recv <= ts < server + 1000:
            return EXPIRED_CODE, (f"invalid request, please check your server timestamp or recv_window param. "
                                  f"req_timestamp[{ts}],server_timestamp[{server}],recv_window[{recv}]")  # fmt: skip
        return None

    def _check_signed(self, headers: dict[str, str], payload: str) -> tuple[int, str] | None:
        key = headers.get("x-bapi-api-key")
        if key != self.api_key:
            return 10003, "API key is invalid."
        ts, recv = headers.get("x-bapi-timestamp"), headers.get("x-bapi-recv-window", "5000")
        bad = self._check_time(ts, recv)
        if bad:
            return bad
        expect = hmac.new(
            self.api_secret.encode(), f"{ts}{key}{recv}{payload}".encode(), hashlib.sha256
        ).hexdigest()
        if headers.get("x-bapi-sign") != expect:
            return 10004, "error sign! Error sign, please check your signature generation algorithm."
        return None

    def _check_ws_auth(self, args: Any) -> tuple[int, str] | None:
        try:
            key, expires, sig = args
            expires = int(expires)
        except (TypeError, ValueError):
            return 10001, "param error"
        if key != self.api_key:
            return 10003, "API key is invalid."
        if expires <= self.server_ms():
            return 10002, "request expired"
        expect = hmac.new(
            self.api_secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256
        ).hexdigest()
        if sig != expect:
            return 10004, "invalid sign"
        return None

    def _rate(self, kind: str, limit: int) -> tuple[bool, dict[str, str]]:
        rl = self._limits.get(kind)
        if rl is None or rl.limit != limit:
            rl = self._limits[kind] = RateLimit(limit)
        now = time.monotonic()
        ok, remaining = rl.hit(now)
        return ok, {"X-Bapi-Limit": str(rl.limit), "X-Bapi-Limit-Status": str(remaining),
                    "X-Bapi-Limit-Reset-Timestamp": str(rl.reset_ms(now) if not ok else _ms())}  # fmt: skip

    def _instrument(self, symbol: str) -> dict | None:
        return next((i for i in self.instruments if i["symbol"] == symbol), None)

    def _validate(self, a: dict) -> tuple[int, str] | None:
        """Place Order's parameter rules and the symbol's instruments-info filters."""
        if a.get("category") != self.market:
            return 10001, f"category {a.get('category')!r} is not supported here"
        inst = self._instrument(a.get("symbol", ""))
        if inst is None:
            return 10001, "params error: symbol invalid"
        if a.get("side") not in ("Buy", "Sell") or a.get("orderType") not in ("Limit", "Market"):
            return 10001, "params error: side or orderType invalid"
        link = a.get("orderLinkId") or ""
        if len(link) > 36 or any(not (c.isalnum() or c in "-_") for c in link):
            return 10001, "params error: orderLinkId invalid"
        if link and link in self.links_used:
            return 110072, "OrderLinkedID is duplicate"
        try:
            qty = _dec(a["qty"])
            price = _dec(a["price"]) if a.get("orderType") == "Limit" else None
        except Exception:
            return 10001, "params error: qty or price invalid"
        lot, pf = inst["lotSizeFilter"], inst["priceFilter"]
        spot = self.market == "spot"
        step = _dec(lot.get("basePrecision") if spot else lot["qtyStep"])
        if qty <= 0 or qty % step:
            return (170137, "Order volume decimal too long") if spot else (10001, "params error: Qty invalid")
        if not spot and qty < _dec(lot["minOrderQty"]):
            return 10001, "The number of contracts exceeds minimum limit allowed"
        if price is not None:
            if price <= 0 or price % _dec(pf["tickSize"]):
                return (
                    (170134, "Order price decimal too long")
                    if spot
                    else (10001, "params error: Price invalid")
                )
            notional = qty * price
            if spot and notional < _dec(lot["minOrderAmt"]):
                return 170140, "Order value exceeded lower limit"
            if not spot and notional < _dec(lot.get("minNotionalValue") or 0):
                return 110094, "Order notional value below the lower limit"
        if a.get("timeInForce", "GTC") not in ("GTC", "IOC", "FOK", "PostOnly"):
            return 10001, "params error: timeInForce invalid"
        if spot and a.get("reduceOnly"):
            return 10001, "params error: reduceOnly is not for spot"
        return None

    # -- orders and matching --------------------------------------------------------------------------
    def _create(self, a: dict) -> tuple[int, str, dict]:
        bad = self._validate(a)
        if bad:
            return bad[0], bad[1], {}
        link = a.get("orderLinkId") or ""
        now = self.server_ms()
        o = EmuOrder(str(uuid.uuid4()), link, self.market, a["symbol"], a["side"], a["orderType"],
                     _dec(a.get("price") or 0), _dec(a["qty"]), a.get("timeInForce", "GTC"),
                     bool(a.get("reduceOnly")), now, updated=now)  # fmt: skip
        if link:
            self.links_used.add(link)
        self.orders[link or o.order_id] = o
        asyncio.get_running_loop().call_soon(self._match_new, o)  # after the ack, as an asynchronous venue
        return 0, "OK", {"orderId": o.order_id, "orderLinkId": link}

    def _match_new(self, o: EmuOrder) -> None:
        book = self.books.get(o.symbol, ([], []))
        opp = book[1] if o.side == "Buy" else book[0]
        crosses = [lv for lv in opp if o.order_type == "Market"
                   or (lv[0] <= o.price if o.side == "Buy" else lv[0] >= o.price)]  # fmt: skip
        if o.tif == "PostOnly" and crosses:
            o.status, o.reject_reason, o.cancel_type = (
                "Cancelled",
                "EC_PostOnlyWillTakeLiquidity",
                "CancelByUser",
            )
            o.updated = self.server_ms()
            self._push_order(o)
            return
        self._push_order(o)  # New
        for lv in crosses:
            left = o.qty - o.cum
            if left <= 0:
                break
            q = min(left, lv[1])
            if q > 0:
                self._execute(o, lv[0], q, maker=False)
        if o.status in OPEN and (o.order_type == "Market" or o.tif in ("IOC", "FOK")):
            o.status = "PartiallyFilledCanceled" if self.market == "spot" and o.cum else "Cancelled"
            o.cancel_type, o.updated = "CancelByUser", self.server_ms()
            self._push_order(o)

    def _fee(self, o: EmuOrder, price: Decimal, qty: Decimal, maker: bool) -> tuple[Decimal, Decimal, str]:
        """(rate, execFee, feeCurrency) of one fill of ``o``."""
        rate = self.maker_fee if maker else self.taker_fee
        inst = self._instrument(o.symbol) or {}
        quote = inst.get("settleCoin") or inst.get("quoteCoin", "USDT")
        if self.fee_coin:
            return rate, price * qty * rate, self.fee_coin
        if self.market != "spot":
            return rate, price * qty * rate, quote
        # Spot Fee Currency Instruction: buys pay in the base coin, sells in the quote coin, except a
        # maker when makerFeeRate is negative (the rebate is in the other coin).
        in_base = (o.side == "Buy") != (maker and self.maker_fee < 0)
        if in_base:
            return rate, qty * rate, inst.get("baseCoin", "BTC")
        return rate, price * qty * rate, inst.get("quoteCoin", "USDT")

    def quote_fees(self) -> list[Decimal | None]:
        """Each execution's fee valued in the quote coin (a base-coin fee at its ``execPrice``), in
        order; None for a coin that is neither."""
        out: list[Decimal | None] = []
        for e in self.executions:
            inst = self._instrument(e["symbol"]) or {}
            fee, coin = _dec(e["execFee"]), e["feeCurrency"]
            if coin in (inst.get("quoteCoin"), inst.get("settleCoin")):
                out.append(fee)
            elif coin == inst.get("baseCoin"):
                out.append(fee * _dec(e["execPrice"]))
            else:
                out.append(None)
        return out

    def _execute(self, o: EmuOrder, price: Decimal, qty: Decimal, maker: bool) -> None:
        rate, fee, coin = self._fee(o, price, qty, maker)
        o.cum += qty
        o.value += price * qty
        o.fee += fee
        o.fee_coin = coin
        o.updated = self.server_ms()
        o.status = "Filled" if o.cum >= o.qty else "PartiallyFilled"
        e = {
            "category": self.market, "symbol": o.symbol, "execFee": _s(fee), "execId": str(uuid.uuid4()),
            "execPrice": _s(price), "execQty": _s(qty), "execType": "Trade", "execValue": _s(price * qty),
            "feeRate": _s(rate), "leavesQty": _s(o.qty - o.cum), "orderId": o.order_id, "orderLinkId": o.link,
            "orderPrice": _s(o.price), "orderQty": _s(o.qty), "orderType": o.order_type, "side": o.side,
            "execTime": str(o.updated), "isLeverage": "0", "isMaker": maker, "seq": next(self._seq),
            "feeCurrency": coin, "createType": "CreateByUser",
        }  # fmt: skip
        self.executions.append(e)
        self._push("execution", [e])
        self._push_order(o)

    def _cancel(self, a: dict) -> tuple[int, str, dict]:
        if a.get("category") != self.market:
            return 10001, "category invalid", {}
        key = a.get("orderLinkId") or ""
        o = (
            self.orders.get(key)
            if key
            else next((x for x in self.orders.values() if x.order_id == a.get("orderId")), None)
        )
        if o is None or o.symbol != a.get("symbol"):
            return 110001, "Order does not exist", {}
        if o.status not in OPEN:
            return 110001, "Order does not exist", {}  # Bybit answers so for filled/cancelled orders too
        o.status, o.cancel_type, o.updated = "Cancelled", "CancelByUser", self.server_ms()
        asyncio.get_running_loop().call_soon(self._push_order, o)
        return 0, "OK", {"orderId": o.order_id, "orderLinkId": o.link}

    # -- pushes ------------------------------------------------------------------------------------------
    def _push_order(self, o: EmuOrder) -> None:
        self._push("order", [o.as_dict()])

    def _push(self, topic: str, data: list[dict]) -> None:
        for ws, subs in list(self._subs.items()):
            name = (
                topic
                if topic in subs
                else f"{topic}.{self.market}"
                if f"{topic}.{self.market}" in subs
                else None
            )
            if name is None:
                continue
            msg = {"id": str(uuid.uuid4()), "topic": name, "creationTime": _ms(), "data": data}
            self._send_soon(ws, json.dumps(msg))

    def _send_soon(self, ws, text: str) -> None:
        asyncio.get_running_loop().create_task(self._safe_send(ws, text))

    @staticmethod
    async def _safe_send(ws, text: str) -> None:
        try:
            await ws.send(text)
        except Exception:
            pass

    def _book_frame(self, symbol: str, depth: int) -> dict:
        bids, asks = self.books.get(symbol, ([], []))
        return {"topic": f"orderbook.{depth}.{symbol}", "type": "snapshot", "ts": _ms(), "data": {
            "s": symbol, "b": [[_s(p), _s(q)] for p, q in bids[:depth]], "a": [[_s(p), _s(q)] for p, q in asks[:depth]],
            "u": next(self._u), "seq": next(self._seq)}, "cts": _ms()}  # fmt: skip

    def _publish_book(self, symbol: str) -> None:
        for ws in self.public_conns:
            for topic in self._subs.get(ws, ()):
                parts = topic.split(".")
                if parts[0] == "orderbook" and parts[2] == symbol:
                    self._send_soon(ws, json.dumps(self._book_frame(symbol, int(parts[1]))))

    def _broadcast_public(self, topic: str, kind: str, data: list) -> None:
        for ws in self.public_conns:
            if topic in self._subs.get(ws, ()):
                self._send_soon(ws, json.dumps({"topic": topic, "type": kind, "ts": _ms(), "data": data}))

    # -- REST ------------------------------------------------------------------------------------------
    async def _http_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, extra, payload = self._route(method, target, headers, body.decode())
                out = json.dumps(payload).encode()
                hdrs = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(out)}\r\n"
                             f"{hdrs}\r\n".encode() + out)  # fmt: skip
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def _answer(self, code: int, msg: str, result: dict | None = None) -> dict:
        return {"retCode": code, "retMsg": msg, "result": result if result is not None else {}, "retExtInfo": {},
                "time": self.server_ms()}  # fmt: skip

    def _route(self, method: str, target: str, headers: dict, body: str) -> tuple[int, dict, dict]:
        parts = urlsplit(target)
        path, query = parts.path, parts.query
        params = dict(parse_qsl(query))
        if path == "/v5/market/time":
            now = self.server_ms()
            return (
                200,
                {},
                self._answer(0, "OK", {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}),
            )
        if path == "/v5/market/instruments-info":
            if params.get("category") != self.market:
                return 200, {}, self._answer(0, "OK", {"category": params.get("category"), "list": []})
            items = [i for i in self.instruments if params.get("symbol") in (None, i["symbol"])]
            start = int(params.get("cursor") or 0)
            limit = min(int(params.get("limit") or 500), self.max_page)
            page = items[start : start + limit]
            cursor = str(start + limit) if start + limit < len(items) else ""
            return (
                200,
                {},
                self._answer(0, "OK", {"category": self.market, "list": page, "nextPageCursor": cursor}),
            )
        payload = query if method == "GET" else body
        self.requests.append(("rest", path, params if method == "GET" else json.loads(body or "{}")))
        bad = self._check_signed(headers, payload)
        if bad:
            self.refusals.append((path, *bad))
            return 200, {}, self._answer(*bad)
        kind = {"/v5/order/create": "order.create", "/v5/order/cancel": "order.cancel"}.get(path, path)
        ok, limit_headers = self._rate(kind, self.limits.get(kind, self.get_limit))
        if not ok:
            self.refusals.append((path, 10006, "Too many visits!"))
            return 200, limit_headers, self._answer(10006, "Too many visits!")
        if method == "POST" and path in ("/v5/order/create", "/v5/order/cancel"):
            code, msg, data = (self._create if path.endswith("create") else self._cancel)(json.loads(body))
            return 200, limit_headers, self._answer(code, msg, data)
        if path in ("/v5/order/realtime", "/v5/order/history"):
            return 200, limit_headers, self._answer(0, "OK", self._order_query(path, params))
        if path == "/v5/execution/list":
            return 200, limit_headers, self._answer(0, "OK", self._exec_query(params))
        return 404, {}, self._answer(10017, "Route not found.")

    def _order_query(self, path: str, p: dict) -> dict:
        """Get Open & Closed Orders / Get Order History: by orderLinkId or orderId any state (realtime:
        recent closed ones too), else realtime lists open orders (openOnly=0) or closed ones (1)."""
        items = [o for o in self.orders.values() if o.category == p.get("category")]
        if p.get("orderLinkId"):
            items = [o for o in items if o.link == p["orderLinkId"]]
        elif p.get("orderId"):
            items = [o for o in items if o.order_id == p["orderId"]]
        else:
            if p.get("symbol"):
                items = [o for o in items if o.symbol == p["symbol"]]
            if path.endswith("realtime"):
                want_open = p.get("openOnly", "0") == "0"
                items = [o for o in items if (o.status in OPEN) == want_open]
        items.sort(key=lambda o: -o.created)
        start, limit = int(p.get("cursor") or 0), int(p.get("limit") or 20)
        page = items[start : start + limit]
        return {"category": p.get("category"), "list": [o.as_dict() for o in page],
                "nextPageCursor": str(start + limit) if start + limit < len(items) else ""}  # fmt: skip

    def _exec_query(self, p: dict) -> dict:
        items = [e for e in self.executions if e["category"] == p.get("category")]
        if p.get("orderLinkId"):
            items = [e for e in items if e["orderLinkId"] == p["orderLinkId"]]
        elif p.get("orderId"):
            items = [e for e in items if e["orderId"] == p["orderId"]]
        elif p.get("symbol"):
            items = [e for e in items if e["symbol"] == p["symbol"]]
        if p.get("startTime"):
            items = [e for e in items if int(e["execTime"]) >= int(p["startTime"])]
        items = sorted(items, key=lambda e: -int(e["execTime"]))  # newest first, as documented
        start, limit = int(p.get("cursor") or 0), int(p.get("limit") or 50)
        return {"category": p.get("category"), "list": items[start : start + limit],
                "nextPageCursor": str(start + limit) if start + limit < len(items) else ""}  # fmt: skip

    # -- WebSocket -----------------------------------------------------------------------------------------
    def _gate(self, connection, request):
        """Refuse the handshake of a stream that is "down" (HTTP 503), as an unreachable endpoint."""
        path = request.path.split("?")[0]
        if (path == "/v5/private" and not self.accept_private) or (
            path == "/v5/trade" and not self.accept_trade
        ):
            return connection.respond(503, "stream down\n")
        return None

    async def _ws_conn(self, ws) -> None:
        path = ws.request.path.split("?")[0]
        if path == "/v5/private":
            conns, handler = self.private_conns, self._on_private
        elif path == "/v5/trade":
            conns, handler = self.trade_conns, self._on_trade
        elif path.startswith("/v5/public/"):
            conns, handler = self.public_conns, self._on_public
        else:
            await ws.close(1008, "unknown path")
            return
        conns.append(ws)
        state = {"authed": False}
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                await handler(ws, msg, state)
        except Exception:
            pass
        finally:
            conns.remove(ws)
            self._subs.pop(ws, None)

    async def _on_public(self, ws, msg: dict, state: dict) -> None:
        op, req_id = msg.get("op"), msg.get("req_id", "")
        if op == "ping":
            await ws.send(
                json.dumps(
                    {"success": True, "ret_msg": "pong", "conn_id": "emu", "req_id": req_id, "op": "ping"}
                )
            )
        elif op == "subscribe":
            subs = self._subs.setdefault(ws, set())
            subs.update(msg.get("args") or ())
            await ws.send(
                json.dumps(
                    {"success": True, "ret_msg": "", "conn_id": "emu", "req_id": req_id, "op": "subscribe"}
                )
            )
            for topic in msg.get("args") or ():
                parts = topic.split(".")
                if parts[0] == "orderbook" and parts[2] in self.books:
                    await ws.send(json.dumps(self._book_frame(parts[2], int(parts[1]))))

    async def _on_private(self, ws, msg: dict, state: dict) -> None:
        op, req_id = msg.get("op"), msg.get("req_id")
        self.requests.append(("private", op, msg))
        if self.mute_private:
            return
        base = {"conn_id": "emu-private"} | ({"req_id": req_id} if req_id else {})
        if op == "auth":
            bad = self._check_ws_auth(msg.get("args"))
            if bad:
                self.refusals.append(("private auth", *bad))
                await ws.send(
                    json.dumps({"success": False, "ret_msg": f"{bad[1]} ({bad[0]})", "op": "auth", **base})
                )
                return
            state["authed"] = True
            self.private_auths += 1
            await ws.send(json.dumps({"success": True, "ret_msg": "", "op": "auth", **base}))
        elif op == "subscribe":
            topics = msg.get("args") or []
            ok = state["authed"] and all(
                t.split(".")[0] in ("order", "execution", "position", "wallet") for t in topics
            )
            if ok:
                self._subs.setdefault(ws, set()).update(topics)
            await ws.send(json.dumps({"success": ok, "ret_msg": "" if ok else "Request not authorized",
                                      "op": "subscribe", **base}))  # fmt: skip
        elif op == "ping":
            await ws.send(json.dumps({"op": "pong", "args": [str(_ms())], **base}))

    async def _on_trade(self, ws, msg: dict, state: dict) -> None:
        op, req_id = msg.get("op"), msg.get("reqId")
        self.requests.append(("trade", op, msg))
        base = {"connId": "emu-trade"} | ({"reqId": req_id} if req_id else {})
        if op == "ping":
            await ws.send(
                json.dumps({"retCode": 0, "retMsg": "OK", "op": "pong", "data": [str(_ms())], **base})
            )
            return
        if op == "auth":
            bad = self._check_ws_auth(msg.get("args"))
            if bad:
                self.refusals.append(("trade auth", *bad))
                await ws.send(json.dumps({"retCode": bad[0], "retMsg": bad[1], "op": "auth", **base}))
                return
            state["authed"] = True
            self.trade_auths += 1
            await ws.send(json.dumps({"retCode": 0, "retMsg": "OK", "op": "auth", **base}))
            return
        if op not in ("order.create", "order.cancel"):
            await ws.send(json.dumps({"retCode": 10404, "retMsg": "op type is not found", "op": op, **base}))
            return
        if self.black_hole and op == "order.create":
            return
        if not state["authed"]:
            await ws.send(
                json.dumps({"retCode": 10003, "retMsg": "Request not authorized", "op": op, **base})
            )
            return
        header = msg.get("header") or {}
        bad = self._check_time(header.get("X-BAPI-TIMESTAMP"), header.get("X-BAPI-RECV-WINDOW", "5000"))
        limit_headers: dict[str, str] = {}
        if bad is None:
            ok, limit_headers = self._rate(op, self.limits[op])
            if not ok:
                bad = (10006, "Too many visits!")
        if bad is None and self.fail_next:
            bad = self.fail_next.popleft()
        if bad is None:
            args = (msg.get("args") or [{}])[0]
            code, text, data = (self._create if op == "order.create" else self._cancel)(args)
        else:
            code, text, data = bad[0], bad[1], {}
        if code:
            self.refusals.append((op, code, text))
        await ws.send(json.dumps({"retCode": code, "retMsg": text, "op": op, "data": data, "retExtInfo": {},
                                  "header": {**limit_headers, "Traceid": uuid.uuid4().hex, "Timenow": str(_ms())},
                                  **base}))  # fmt: skip


EXPIRED_CODE = 10002

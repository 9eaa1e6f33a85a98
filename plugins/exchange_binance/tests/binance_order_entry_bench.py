"""The ``binance`` section of ``benchmarks/order_entry.py``: decision to signed order on the socket.

Ours: the real engine (``Engine.submit``: risk checks, order state) and the real ``binance`` venue
(instrument rules, rate-limit bookkeeping, the server-clock timestamp, HMAC-SHA256 signing, the
WebSocket API ``order.place`` frame, the ``write`` on the connected socket), connected over loopback
to the emulator (spot). One decision at a time: each ``submit`` is timed alone (not corked), then
its acknowledgement and its cancel are awaited (untimed) with the loop spinning, as an engine with
``busy_poll: true`` runs.

The emulator runs in this process, on the same loop: a send then costs what a send to a remote
venue costs, not the wake-up of a second, sleeping local process that the kernel charges to the
sender (about 12 µs p50 on the 2-vCPU VM, ``benchmarks/loopback_send.py``; with the emulator in a
child process on that busy VM, the send with the wake-up measured 0.5-0.8 ms p50). On the engine's
loop (uvloop when installed) ``write`` queues the bytes and the send system call follows at the end
of the loop iteration (as the engine's cork does per callback); ``asyncio_send_*`` is the same run
on the plain asyncio loop, whose ``write`` sends at once: it includes the system call.

ccxt: ``ccxt.binance().create_order`` for the same order, its HTTP session pointed at a loopback
server with canned answers, timed by the shared ``ccxt_to_socket_us`` up to the request on the socket.
"""

from __future__ import annotations

import asyncio
import gc
import time

import orjson
from binance_private_emulator import API_KEY, API_SECRET, BinancePrivate

from latentspeed_core.config import validate
from latentspeed_core.engine.core import Engine
from latentspeed_core.engine.risk import build_risk
from latentspeed_core.plugins import load_registry
from latentspeed_core.runtime import run_async
from latentspeed_core.types import Side

MID = 61800.0
QTY = 0.001


async def _ours(n: int) -> list[int]:
    """``n`` decisions timed, the venue connected to an emulator on this loop."""
    async with BinancePrivate("spot", order_limit=(10**9, "SECOND", 10), weight_per_minute=10**9) as emu:
        emu.set_book("BTCUSDT", "61799.99", "61800.01")
        return await _timed(n, emu.venue_config(symbols=["BTC-USDT"]))


async def _timed(n: int, venue_section: dict) -> list[int]:
    registry = load_registry(None)
    comp = registry.get("venues", "binance")
    venue_cfg = validate(comp.config_model, venue_section)
    # the standard checks of config/trading_config.yml that never bind in this run
    limits = {"max_order_qty": 1.0, "max_notional": 100000, "price_band_bps": 100, "max_loss": 10000}
    checks = sorted(
        ((registry.get("risk_checks", k).priority, k, registry.get("risk_checks", k)) for k in limits),
        key=lambda c: (c[0], c[1]),
    )
    risk = build_risk([(k, c, validate(c.config_model, {"limit": limits[k]})) for _, k, c in checks])
    venue = comp.factory(venue_cfg)
    engine = Engine(venue, risk)
    task = asyncio.create_task(venue.run(engine))
    await _spin_until(lambda: venue.connected, "the venue to connect", timeout=20)
    now = time.time_ns()
    engine.on_book({"symbol": "BTC-USDT", "midpoint": MID, "bids": [[MID - 0.01, 1.0]],
                    "asks": [[MID + 0.01, 1.0]], "receipt_timestamp_ns": now}, now)  # fmt: skip
    clock = time.perf_counter_ns
    submit, cancel = engine.submit, engine.cancel
    out = []
    gc.collect()
    gc.freeze()
    try:
        for i in range(n):
            side, price = (
                (Side.BUY, MID - 10 - (i % 50) * 0.01) if i & 1 else (Side.SELL, MID + 10 + (i % 50) * 0.01)
            )
            t0 = clock()
            st = submit("bench", "BTC-USDT", side, QTY, price)
            t1 = clock()
            if st is None:
                raise RuntimeError(f"order refused: {engine.last_reject}")
            out.append(t1 - t0)
            # one decision at a time: its acknowledgement, then its cancel (untimed), as live
            await _spin_until(lambda st=st: st.status != 0, "the acknowledgement")  # noqa: B023
            cancel(st.cl_ord_id)
            await _spin_until(lambda st=st: not st.is_open, "the cancel")  # noqa: B023
    finally:
        gc.unfreeze()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return out


async def _spin_until(predicate, what: str, timeout: float = 5.0) -> None:
    """Run the loop without sleeping until ``predicate()`` (the engine's ``busy_poll: true``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0)


def _exchange_info() -> bytes:
    return orjson.dumps({
        "timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [], "exchangeFilters": [],
        "symbols": [{
            "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8,
            "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "icebergAllowed": True,
            "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
            "cancelReplaceAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.0", "stepSize": "0.00001"},
                {"filterType": "NOTIONAL", "minNotional": "5.0", "applyMinToMarket": True, "maxNotional": "9000000",
                 "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
        }],
    })  # fmt: skip


def _order_answer() -> bytes:
    return orjson.dumps({
        "symbol": "BTCUSDT", "orderId": 1, "orderListId": -1, "clientOrderId": "x", "transactTime": 1,
        "price": "61000.00", "origQty": "0.00100", "executedQty": "0", "cummulativeQuoteQty": "0", "status": "NEW",
        "timeInForce": "GTC", "type": "LIMIT", "side": "BUY", "workingTime": 1, "fills": [],
        "selfTradePreventionMode": "EXPIRE_MAKER",
    })  # fmt: skip


def _ccxt(n: int, ccxt_to_socket_us, LoopbackHttp) -> dict | None:
    try:
        import ccxt
    except ImportError:
        return None
    info, order = _exchange_info(), _order_answer()
    server = LoopbackHttp(
        lambda method, path: info if "exchangeInfo" in path else order if "/order" in path else b"{}"
    )
    try:
        ex = ccxt.binance({"apiKey": API_KEY, "secret": API_SECRET, "enableRateLimit": False})
        ex.options["fetchMarkets"] = {"types": ["spot"]}
        ex.options["fetchCurrencies"] = False
        for k, v in list(ex.urls["api"].items()):
            if isinstance(v, str):
                ex.urls["api"][k] = server.url + "/" + v.split("/", 3)[3]
        ex.load_markets()
        ex.create_order("BTC/USDT", "limit", "buy", QTY, 61000.0)  # warm: connection and caches
        return ccxt_to_socket_us(lambda: ex.create_order("BTC/USDT", "limit", "buy", QTY, 61000.0), n)
    finally:
        server.close()


def measure(args, ccxt_to_socket_us, LoopbackHttp, percentiles_us) -> dict:
    """``{"p50_us", "p90_us", "p99_us", "orders"}`` and, with ccxt installed, its figures and the ratio."""
    samples = run_async(_ours(args.orders))  # the engine's loop: uvloop when installed
    with_send = percentiles_us(asyncio.run(_ours(args.orders)))  # write sends at once
    ours = percentiles_us(samples)
    out = {"p50_us": ours["p50"], "p90_us": ours["p90"], "p99_us": ours["p99"], "orders": len(samples)}
    out.update(asyncio_send_p50_us=with_send["p50"], asyncio_send_p99_us=with_send["p99"])
    if not getattr(args, "no_ccxt", False):
        theirs = _ccxt(args.ccxt_orders, ccxt_to_socket_us, LoopbackHttp)
        if theirs is None:
            out["ccxt"] = "not installed (pip install -e '.[bench]')"
        else:
            out.update(ccxt_p50_us=theirs["p50"], ccxt_p99_us=theirs["p99"],
                       ccxt_over_ours_p50=round(theirs["p50"] / ours["p50"], 1))  # fmt: skip
    return out

"""The ``binance`` venue driven by the engine and the example market maker, against the loopback
private-API emulator (orders, fills, limits, reconnects) with market data from the loopback public
Binance playing the recorded 2024-08-08 BTCUSDT session. Spot and USD-M where they differ."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from binance_private_emulator import API_KEY, API_SECRET, BinancePrivate
from binance_testkit import FakeBinance, expected_book, load_session

from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.orders import OrderState
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import async_wait_for
from latentspeed_core.types import Liquidity, OrderStatus, RejectReason, Side, TimeInForce

pytest.importorskip("latentspeed_strategy_examples")

SPEED = {"spot": "100ms", "usdm": "0ms"}  # the streams the recordings subscribed to
QTY = {"spot": 0.001, "usdm": 0.002}
MARKETS = ["spot", "usdm"]
REGISTRY = load_registry(None)


@dataclass
class Live:
    runner: EngineRunner
    emu: BinancePrivate
    task: asyncio.Task
    market: str
    summary: dict = field(default_factory=dict)

    @property
    def engine(self):
        return self.runner.engine

    @property
    def venue(self):
        return self.runner.venue

    def order(self, side: Side) -> OrderState:
        """The engine's order whose venue twin rests on ``side``."""
        return next(st for st in self.engine.orders.orders.values() if st.side == side)

    def emu_order(self, st: OrderState):
        return self.emu.order_by_cid(self.venue._prefix + str(st.cl_ord_id))

    def submit(self, side: Side, qty: float, price: float) -> OrderState | None:
        """An order decided outside a strategy callback (written at once, not corked)."""
        return self.engine.submit("market_maker", "BTC-USDT", side, qty, price)


def engine_config(market: str, md: FakeBinance, emu: BinancePrivate, venue: dict, params: dict) -> dict:
    return {
        "market_data": {"startup_timeout": 20, "feeds": [
            {"exchange": "binance", "market": market, "symbols": ["BTC-USDT"], "ws_url": md.ws_url,
             "rest_url": md.rest_url, "depth_speed": SPEED[market]},
        ]},
        "venue": emu.venue_config(symbols=["BTC-USDT"], **venue),
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USDT"], "params": {
            "qty": QTY[market], "half_spread_bps": 10, "skew_bps": 0, "requote_bps": 10_000, "max_position": 1.0,
            **params}}],
        "risk": {"max_order_qty": 1.0, "price_band_bps": 300},
        "latency": {"file": None},
        "stats_interval": 60,
        "cancel_on_exit": True,
        "shutdown_timeout": 5,
    }  # fmt: skip


@asynccontextmanager
async def live_engine(
    market: str,
    venue: dict | None = None,
    params: dict | None = None,
    emu_kw: dict | None = None,
    latency_file: str | None = None,
    engine: dict | None = None,
):
    """The engine trading on the emulator; the public session starts once the venue is connected.
    ``engine``: top-level engine config keys to set (``fees``...)."""
    session = load_session(market)
    bids, asks = expected_book(session, upto=0).levels()  # the snapshot's book
    holder: dict = {}

    async def script(conn):
        await async_wait_for(
            lambda: "live" in holder and holder["live"].venue.connected, 20, "venue connected"
        )
        await conn.send_all(session.frames)

    async with (
        BinancePrivate(market, **(emu_kw or {})) as emu,
        FakeBinance([script], [session.snapshot]) as md,
    ):
        emu.set_book("BTCUSDT", repr(bids[0][0]), repr(asks[0][0]))
        data = engine_config(market, md, emu, venue or {}, params or {})
        data["latency"] = {"file": latency_file}
        data.update(engine or {})
        setup = resolve(data, REGISTRY)
        runner = EngineRunner(setup, REGISTRY)
        live = Live(runner, emu, asyncio.create_task(runner.run(install_signals=False)), market)
        holder["live"] = live
        try:
            yield live
        finally:
            runner.stop("test done")
            live.summary = await asyncio.wait_for(live.task, 30)


async def two_quotes(live: Live) -> tuple[OrderState, OrderState]:
    await async_wait_for(
        lambda: len(live.emu.open_orders()) == 2, 20, "the market maker's bid and ask resting"
    )
    await async_wait_for(lambda: len(live.engine.orders.open) == 2 and all(
        st.status == OrderStatus.NEW for st in live.engine.orders.open.values()), 10, "both acknowledged")  # fmt: skip
    return live.order(Side.BUY), live.order(Side.SELL)


def position(live: Live) -> float:
    return live.engine.position("BTC-USDT")


def emu_position(live: Live) -> float:
    return float(live.emu.position("BTCUSDT"))


# -- the normal path --------------------------------------------------------------------------------------
@pytest.mark.parametrize("market", MARKETS)
def test_quotes_are_accepted_filled_and_positions_match_the_venue(market):
    qty = QTY[market]
    half = Decimal(str(qty)) / 2

    async def main():
        async with live_engine(market) as live:
            bid, ask = await two_quotes(live)
            emu, eng = live.emu, live.engine
            ebid, eask = live.emu_order(bid), live.emu_order(ask)
            assert ebid.price == Decimal(str(bid.price)) and ebid.qty == Decimal(str(qty))
            emu.fill(ebid, half)
            await async_wait_for(lambda: bid.status == OrderStatus.PARTIALLY_FILLED, 10, "partial fill")
            emu.fill(ebid)
            emu.fill(eask, half)
            await async_wait_for(lambda: bid.status == OrderStatus.FILLED and eng.fills == 3, 10, "fills")
            assert ask.status == OrderStatus.PARTIALLY_FILLED and ask.filled_qty == pytest.approx(float(half))
            assert position(live) == pytest.approx(emu_position(live)) == pytest.approx(float(half))
            assert all(f.liquidity == Liquidity.MAKER for f in eng.recent_fills)
            # fees as charged: Binance's commission per asset, besides the engine's own fee model
            assert live.venue.commissions["USDT"] == pytest.approx(
                sum(float(t["commission"]) for t in emu.trades), rel=1e-9
            )
            assert [f.trade_id for f in live.venue.fills] == [t["id"] for t in emu.trades]
            if market == "usdm":
                assert any(s.what == "POST /fapi/v1/listenKey" for s in emu.seen)
            live.runner.stop("done")
            await asyncio.wait_for(asyncio.shield(live.task), 30)
            assert not emu.open_orders()  # cancel_on_exit: the ask was cancelled on the venue
            cancel = next(s for s in emu.seen if s.what == "order.cancel")
            assert cancel.params.get("orderId") == eask.order_id  # by orderId, the fast way
            assert ask.status == OrderStatus.CANCELED
        assert live.summary["error"] is None and live.summary["fills"] == 3
        assert live.summary["duplicate_reports"] == 0

    asyncio.run(main())


#: The engine's fee config in the tests of fees as charged: not what the emulator charges (2/4 bps),
#: so a fill booked at the configured rate instead of the commission is seen.
ENGINE_FEES = {"maker_bps": 7.0, "taker_bps": 11.0}


def charged_in_quote(trade: dict, base: str, quote: str) -> float | None:
    """What the emulator charged for one trade, in the quote asset (None: charged in another asset)."""
    amount, asset = float(trade["commission"]), trade["commissionAsset"]
    if asset == quote:
        return amount
    if asset == base:
        return amount * float(trade["price"])
    return None


@pytest.mark.parametrize(
    "market,stream_asset,gap_asset",
    [("spot", "received", "received"), ("spot", "BNB", "received"), ("usdm", "quote", "quote"),
     ("usdm", "BNB", "quote")],
)  # fmt: skip
def test_the_engine_books_the_commissions_binance_charged_not_its_fee_rate(market, stream_asset, gap_asset):
    """Fills from the user data stream (a buy and a sell) and one missed during a drop and found by
    the trade look-up after it: each engine fill's fee, and the position's fees, are the emulator's
    commissions valued in USDT (spot: a buy pays in BTC, valued at the trade price). A commission in
    BNB cannot be valued: the engine charges its configured rate for that fill."""
    qty = Decimal(str(QTY[market]))

    async def main():
        async with live_engine(market, emu_kw={"fee_asset": stream_asset}, engine={"fees": ENGINE_FEES}) as live:
            bid, ask = await two_quotes(live)
            emu, eng, venue = live.emu, live.engine, live.venue
            ebid, eask = live.emu_order(bid), live.emu_order(ask)
            emu.fill(ebid, qty / 2)
            emu.fill(eask, qty / 2)
            await async_wait_for(lambda: eng.fills == 2, 10, "two fills on the stream")
            emu.accepting = False
            await emu.drop_connections()
            await async_wait_for(lambda: not venue.connected and eng.unknown_orders == 2, 10, "dropped")
            emu.fee_asset = gap_asset
            emu.fill(ebid)  # nobody is subscribed: only the trade look-up will tell
            emu.accepting = True
            await async_wait_for(
                lambda: venue.connected and bid.status == OrderStatus.FILLED and eng.fills == 3, 15, "reconciled"
            )
            trades_path = "GET /api/v3/myTrades" if market == "spot" else "GET /fapi/v1/userTrades"
            assert any(s.what == trades_path for s in emu.seen)
            base, quote = emu.assets("BTCUSDT")
            fills = list(eng.recent_fills)
            assert len(fills) == len(emu.trades) == 3
            rate = ENGINE_FEES["maker_bps"] / 10_000
            total = 0.0
            for f, trade in zip(fills, emu.trades, strict=True):
                assert (f.qty, f.price) == (pytest.approx(float(trade["qty"])), pytest.approx(float(trade["price"])))
                assert f.liquidity == Liquidity.MAKER
                want = charged_in_quote(trade, base, quote)
                if want is None:
                    assert trade["commissionAsset"] == "BNB"
                    want = f.qty * f.price * rate
                assert f.fee == pytest.approx(want, rel=1e-9, abs=1e-12)
                total += want
            assert eng.portfolio.get("BTC-USDT").fees == pytest.approx(total, rel=1e-9)
            assert [t["commissionAsset"] for t in emu.trades] == {
                ("spot", "received"): ["BTC", "USDT", "BTC"],
                ("spot", "BNB"): ["BNB", "BNB", "BTC"],
                ("usdm", "quote"): ["USDT"] * 3,
                ("usdm", "BNB"): ["BNB", "BNB", "USDT"],
            }[market, stream_asset]
            # not the engine's rate: this test tells one from the other
            assert total != pytest.approx(sum(f.qty * f.price * rate for f in fills), rel=1e-6)
            # a commission in BTC is BTC the account never got: the position is the account's BTC
            held = sum((1 if t["side"] == "BUY" else -1) * float(t["qty"])
                       - (float(t["commission"]) if t["commissionAsset"] == base else 0.0) for t in emu.trades)
            assert eng.portfolio.get("BTC-USDT").qty == pytest.approx(held, abs=1e-12)

    asyncio.run(main())


@pytest.mark.parametrize("market", MARKETS)
def test_user_stream_dropped_mid_order_every_order_ends_known_and_fills_count_once(market):
    """Drop every connection with two quotes resting; while the venue cannot reconnect, the bid
    partly fills and the ask fills (those events are lost); on reconnect the venue reconciles by
    REST. Then events arrive twice (``repeat_events``): each fill is counted once."""
    qty = Decimal(str(QTY[market]))

    async def main():
        async with live_engine(market) as live:
            bid, ask = await two_quotes(live)
            emu, eng, venue = live.emu, live.engine, live.venue
            ebid, eask = live.emu_order(bid), live.emu_order(ask)
            emu.accepting = False
            await emu.drop_connections()
            await async_wait_for(
                lambda: not venue.connected and eng.unknown_orders == 2, 10, "orders unknown"
            )
            assert bid.status == ask.status == OrderStatus.UNKNOWN
            emu.fill(ebid, qty / 2)  # nobody is subscribed: these events are lost
            emu.fill(eask)
            emu.repeat_events = True
            emu.accepting = True
            await async_wait_for(lambda: venue.connected, 15, "reconnect")
            assert venue.reconciles >= 1
            assert not [st for st in eng.orders.orders.values() if st.status == OrderStatus.UNKNOWN]
            assert bid.status == OrderStatus.PARTIALLY_FILLED and bid.filled_qty == pytest.approx(
                float(qty / 2)
            )
            assert ask.status == OrderStatus.FILLED and eng.fills == 2
            assert position(live) == pytest.approx(emu_position(live))
            assert bid in eng.orders.open.values()  # reopened: it rests on the venue
            emu.fill(ebid)  # now every event comes twice
            await async_wait_for(lambda: bid.status == OrderStatus.FILLED, 10, "the rest of the bid")
            await async_wait_for(lambda: venue.duplicate_events >= 1, 5, "the repeat seen and dropped")
            assert eng.fills == 3 and position(live) == pytest.approx(emu_position(live)) == pytest.approx(
                0.0
            )
        assert live.summary["reconnects"] == 1 and live.summary["unknown_orders"] == 2

    asyncio.run(main())


@pytest.mark.parametrize(
    "market,event",
    [("spot", "serverShutdown"), ("spot", "eventStreamTerminated"), ("usdm", "listenKeyExpired")],
)
def test_a_venue_event_that_ends_the_stream_reconnects_and_reconciles(market, event):
    async def main():
        async with live_engine(market) as live:
            bid, ask = await two_quotes(live)
            live.emu.push_event({"e": event, "E": live.emu.now_ms()})
            await async_wait_for(
                lambda: live.venue.reconnects == 1 and live.venue.connected, 15, "reconnected"
            )
            assert live.venue.last_disconnect == f"Binance sent {event}"
            assert bid.status == ask.status == OrderStatus.NEW and live.engine.unknown_orders == 2

    asyncio.run(main())


def test_an_order_whose_answer_never_comes_is_looked_up():
    """No answer within ``request_timeout``: the venue asks Binance by ``origClientOrderId``. One that
    Binance has (its events tell) stays; one that never reached it (-2013) is reported rejected."""

    async def main():
        async with live_engine("spot", venue={"request_timeout": 0.3}) as live:
            bid, _ = await two_quotes(live)
            emu, venue = live.emu, live.venue
            emu.unanswered.append("order.place")
            quiet = live.submit(Side.BUY, QTY["spot"], bid.price - 1)
            await async_wait_for(lambda: quiet.status == OrderStatus.NEW, 10, "known from its NEW event")
            emu.lost.append("order.place")
            lost = live.submit(Side.BUY, QTY["spot"], bid.price - 2)
            await async_wait_for(lambda: lost.status == OrderStatus.REJECTED, 10, "looked up: never there")
            cid = venue._prefix + str(lost.cl_ord_id)
            lookups = [s for s in emu.seen if s.what == "GET /api/v3/order"]
            assert [s.params.get("origClientOrderId") for s in lookups] == [cid] and lookups[0].status == 400
            assert venue.reject_reasons[lost.cl_ord_id] == "-2013 Order does not exist."
            assert lost.reject_reason == RejectReason.UNKNOWN_ORDER

    asyncio.run(main())


# -- the documented reactions to errors ---------------------------------------------------------------------
def test_a_wrong_secret_stops_the_engine_at_start_with_the_venues_reason():
    for market in MARKETS:

        async def main(market=market):
            async with live_engine(market, venue={"api_secret": "not-the-secret"}) as live:
                await asyncio.wait_for(asyncio.shield(live.task), 30)
            return live.summary

        summary = asyncio.run(main())
        assert "-1022" in summary["error"] and "Signature for this request is not valid" in summary["error"]
        assert "not-the-secret" not in summary["error"]


@pytest.mark.parametrize("market", MARKETS)
def test_bad_signature_and_expired_timestamp_reject_the_order_and_the_clock_is_remeasured(market):
    async def main():
        async with live_engine(market) as live:
            bid, _ = await two_quotes(live)
            emu, eng, venue = live.emu, live.engine, live.venue
            emu.inject("order.place", 400, -1022, "Signature for this request is not valid.")
            bad = live.submit(Side.BUY, QTY[market], bid.price)
            await async_wait_for(lambda: bad.status == OrderStatus.REJECTED, 10, "-1022 reject")
            assert venue.rejects_by_code[-1022] == 1 and eng.venue_rejects == 1
            # the server clock jumps 30 s ahead: our timestamps fall outside recvWindow (5000 ms)
            emu.skew_ms = 30_000
            times = sum(1 for s in emu.seen if s.what.endswith("/time"))
            late = live.submit(Side.BUY, QTY[market], bid.price)
            await async_wait_for(lambda: late.status == OrderStatus.REJECTED, 10, "-1021 reject")
            assert venue.rejects_by_code[-1021] == 1
            await async_wait_for(
                lambda: sum(1 for s in emu.seen if s.what.endswith("/time")) > times, 10, "resync"
            )
            await async_wait_for(lambda: abs(venue._offset_ms - 30_000) < 1000, 10, "offset measured")
            ok = live.submit(Side.BUY, QTY[market], bid.price)
            await async_wait_for(lambda: ok.status == OrderStatus.NEW, 10, "accepted again")

    asyncio.run(main())


@pytest.mark.parametrize("market", MARKETS)
def test_filter_violations_are_refused_before_sending_or_rejected_by_the_venue(market):
    async def main():
        async with live_engine(market) as live:
            bid, _ = await two_quotes(live)
            emu, eng, venue = live.emu, live.engine, live.venue
            step, tick = {"spot": (0.00001, 0.01), "usdm": (0.001, 0.1)}[market]
            places = sum(1 for s in emu.seen if s.what == "order.place")
            assert live.submit(Side.BUY, QTY[market] + step / 2, bid.price) is None  # off the lot grid
            assert "LOT_SIZE" in eng.last_reject and eng.risk.rejects["venue"] == 1
            assert live.submit(Side.BUY, QTY[market], bid.price + tick * 0.3) is None
            assert "PRICE_FILTER" in eng.last_reject and eng.risk.rejects["venue"] == 2
            assert live.submit(Side.BUY, 0.00002 if market == "spot" else 0.001, bid.price) is None
            assert "MIN_NOTIONAL" in eng.last_reject and eng.risk.rejects["venue"] == 3
            assert sum(1 for s in emu.seen if s.what == "order.place") == places  # nothing reached Binance
            # rules changed on the venue since we loaded them: Binance's own filter answers
            emu.rules["BTCUSDT"].tick = "1.00"
            st = live.submit(Side.BUY, QTY[market], round(bid.price - 10, 0) + 0.1)
            await async_wait_for(lambda: st.status == OrderStatus.REJECTED, 10, "venue filter reject")
            assert st.reject_reason == RejectReason.INVALID_PRICE
            want = (
                "-1013 Filter failure: PRICE_FILTER"
                if market == "spot"
                else "-4014 Price not increased by tick size."
            )
            assert venue.reject_reasons[st.cl_ord_id] == want

    asyncio.run(main())


@pytest.mark.parametrize("status,code", [(429, -1015), (418, -1003)])
def test_a_429_or_418_answer_stops_orders_until_retry_after(status, code):
    async def main():
        async with live_engine("spot") as live:
            bid, _ = await two_quotes(live)
            emu, eng, venue = live.emu, live.engine, live.venue
            emu.inject(
                "order.place", status, code, "Too many new orders" if status == 429 else "IP banned", 1.0
            )
            first = live.submit(Side.BUY, QTY["spot"], bid.price)
            await async_wait_for(lambda: first.status == OrderStatus.REJECTED, 10, "limited")
            places = sum(1 for s in emu.seen if s.what == "order.place")
            for _ in range(5):  # not one of these is sent: the venue is backing off
                assert live.submit(Side.BUY, QTY["spot"], bid.price) is None
                assert f"backing off after HTTP {status}" in eng.last_reject
            assert sum(1 for s in emu.seen if s.what == "order.place") == places and venue.bans == 1
            await async_wait_for(lambda: venue._ban_left_s() == 0, 5, "Retry-After passed")
            again = live.submit(Side.BUY, QTY["spot"], bid.price)
            await async_wait_for(lambda: again.status == OrderStatus.NEW, 10, "accepted after the wait")

    asyncio.run(main())


def test_order_rate_limit_from_exchange_info_is_kept_locally():
    """exchangeInfo says 4 orders a day: the fifth is refused before it is sent (no 429 earned)."""

    async def main():
        async with live_engine("spot", emu_kw={"order_limit": (4, "DAY", 1)}) as live:
            bid, _ = await two_quotes(live)
            emu, eng = live.emu, live.engine
            assert live.submit(Side.BUY, QTY["spot"], bid.price - 1) is not None
            assert live.submit(Side.BUY, QTY["spot"], bid.price - 2) is not None
            assert live.submit(Side.BUY, QTY["spot"], bid.price - 3) is None
            assert "ORDERS limit 4 per 1D" in eng.last_reject
            assert not [s for s in emu.seen if s.status == 429]

    asyncio.run(main())


@pytest.mark.parametrize("status", [429, 418])
def test_rest_429_during_reconciliation_waits_retry_after(status):
    async def main():
        async with live_engine("spot") as live:
            await two_quotes(live)
            emu, venue = live.emu, live.venue
            emu.inject("/api/v3/openOrders", status, -1003, "Too much request weight used", retry_after_s=1)
            await emu.drop_connections()
            await async_wait_for(lambda: not venue.connected, 5, "drop")
            await async_wait_for(lambda: venue.connected, 20, "reconnect after the wait")
            calls = [s for s in emu.seen if s.what == "GET /api/v3/openOrders"]
            assert [c.status for c in calls[:2]] == [status, 200]
            assert calls[1].at - calls[0].at >= 0.95  # Retry-After: 1 second, honoured
            assert not [st for st in live.engine.orders.orders.values() if st.status == OrderStatus.UNKNOWN]

    asyncio.run(main())


# -- where spot and USD-M differ -------------------------------------------------------------------------------
@pytest.mark.parametrize("market", MARKETS)
def test_post_only_is_limit_maker_on_spot_and_gtx_on_usdm(market):
    async def main():
        async with live_engine(market, venue={"post_only": True}) as live:
            bid, ask = await two_quotes(live)
            emu = live.emu
            place = next(s for s in emu.seen if s.what == "order.place")
            if market == "spot":
                assert place.params["type"] == "LIMIT_MAKER" and "timeInForce" not in place.params
            else:
                assert place.params["type"] == "LIMIT" and place.params["timeInForce"] == "GTX"
            crossing = live.submit(Side.BUY, QTY[market], float(emu.book["BTCUSDT"][1]) + 5)
            if market == "spot":  # rejected: "Order would immediately match and take." (-2010)
                await async_wait_for(
                    lambda: crossing.status == OrderStatus.REJECTED, 10, "LIMIT_MAKER refused"
                )
                assert (
                    live.venue.reject_reasons[crossing.cl_ord_id]
                    == "-2010 Order would immediately match and take."
                )
            else:  # accepted, then EXPIRED instead of taking: the engine sees it cancelled, unfilled
                await async_wait_for(lambda: crossing.status == OrderStatus.CANCELED, 10, "GTX expired")
                assert crossing.filled_qty == 0

    asyncio.run(main())


@pytest.mark.parametrize("market", MARKETS)
def test_a_post_only_order_is_post_only_without_the_venue_setting(market):
    """``TimeInForce.POST_ONLY`` on one order: LIMIT_MAKER (spot) or GTX (USD-M) for it alone."""

    async def main():
        async with live_engine(market) as live:
            await two_quotes(live)
            emu = live.emu
            price = float(emu.book["BTCUSDT"][0]) - 50
            st = live.engine.submit("market_maker", "BTC-USDT", Side.BUY, QTY[market], price, tif=TimeInForce.POST_ONLY)
            await async_wait_for(lambda: st.status == OrderStatus.NEW, 10, "the post-only order resting")
            places = [s.params for s in emu.seen if s.what == "order.place"]
            if market == "spot":
                assert places[-1]["type"] == "LIMIT_MAKER" and "timeInForce" not in places[-1]
            else:
                assert places[-1]["type"] == "LIMIT" and places[-1]["timeInForce"] == "GTX"
            assert all(p["type"] == "LIMIT" and p["timeInForce"] == "GTC" for p in places[:-1])  # the quotes

    asyncio.run(main())


def test_reduce_only_on_usdm_is_sent_with_every_order():
    async def main():
        async with live_engine("usdm", venue={"reduce_only": True}) as live:
            await two_quotes(live)
            places = [s for s in live.emu.seen if s.what == "order.place"]
            assert places and all(s.params.get("reduceOnly") == "true" for s in places)
            assert all(o.reduce_only for o in live.emu.open_orders())

    asyncio.run(main())


# -- secrets ------------------------------------------------------------------------------------------------
def test_secrets_never_appear_in_logs_reprs_or_errors(caplog, tmp_path):
    caplog.set_level(logging.DEBUG)

    async def main():
        async with live_engine("spot", latency_file=str(tmp_path / "latency.jsonl")) as live:
            bid, ask = await two_quotes(live)
            live.emu.fill(live.emu_order(bid))
            live.emu.inject("order.place", 400, -1022, "Signature for this request is not valid.")
            st = live.submit(Side.SELL, QTY["spot"], ask.price + 1)
            await async_wait_for(lambda: st.status == OrderStatus.REJECTED, 10, "reject logged")
            await live.emu.drop_connections()
            await async_wait_for(
                lambda: live.venue.reconciles >= 1 and live.venue.connected, 15, "reconnect logged"
            )
            texts = [
                repr(live.venue),
                repr(live.venue.config),
                str(live.runner.setup.venue),
                live.engine.stats_line(),
            ]
        return live, texts

    live, texts = asyncio.run(main())
    records = (tmp_path / "latency.jsonl").read_text()
    assert '"type":"order"' in records.replace(" ", "")
    for text in [caplog.text, *texts, str(live.summary), records]:
        assert API_KEY not in text and API_SECRET not in text

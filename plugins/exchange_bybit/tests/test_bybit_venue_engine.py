"""The ``bybit`` venue driving the real engine against the loopback Bybit emulator.

Each test states what goes in (orders, fills, failures at the venue) and what the engine must end
with (order states, fills counted once, positions, counted refusals).
"""

from __future__ import annotations

import asyncio

import pytest
from bybit_engine_kit import BOOK, engine_config, engine_on, open_at_venue
from bybit_private_emulator import LINEAR_BTC, LINEAR_XRP, BybitEmulator
from bybit_testkit import BybitServer, load_session

from latentspeed_core.engine.orders import UNKNOWN
from latentspeed_core.testing import async_wait_for, free_port
from latentspeed_core.types import OrderStatus, OrdType, RejectReason, Side

pytest.importorskip("latentspeed_strategy_examples")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_market_maker_quotes_gets_filled_and_positions_follow_the_fills():
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            cfg = engine_config(emu, "market_maker", {"qty": 0.001, "half_spread_bps": 1.0, "skew_bps": 0,
                                                      "requote_bps": 50, "max_position": 0.01}, post_only=True)  # fmt: skip
            async with engine_on(emu, cfg) as runner:
                engine, venue = runner.engine, runner.venue
                await async_wait_for(
                    lambda: len(open_at_venue(emu)) == 2, 10, "a bid and an ask resting at Bybit"
                )
                bid = next(o for o in open_at_venue(emu) if o.side == "Buy")
                ask = next(o for o in open_at_venue(emu) if o.side == "Sell")
                assert (bid.tif, str(bid.price), str(ask.price)) == ("PostOnly", "59994.4", "60006.6")
                await async_wait_for(lambda: sum(o.status == OrderStatus.NEW for o in engine.orders.open.values()) == 2,
                                     5, "both quotes acknowledged (NEW)")  # fmt: skip
                emu.trade("BTCUSDT", "Sell", "59990", "0.001")  # an outside seller hits our bid
                await async_wait_for(lambda: engine.fills == 1, 5, "the fill reported")
                pos = engine.portfolio.get("BTC-USDT")
                assert pos.qty == pytest.approx(0.001) and pos.avg_price == pytest.approx(59994.4)
                assert engine.recent_fills[-1].liquidity == 1  # Bybit said isMaker: the maker fee applies
                assert pos.fees == pytest.approx(0.001 * 59994.4 * 2.0 / 10_000)
                assert venue.fees_charged == {"USDT": pytest.approx(0.001 * 59994.4 * 0.0002)}
            summary = runner.summary
            assert summary["fills"] == 1 and summary["positions"] == {"BTC-USDT": pytest.approx(0.001)}
            assert not open_at_venue(emu), "cancel_on_exit left an order resting at Bybit"
            assert emu.refusals == [] and summary["unknown_orders"] == 0
            assert float(emu.position("BTCUSDT")) == pytest.approx(0.001)
            # Every order went over the authenticated order-entry WebSocket, our id as orderLinkId.
            creates = [m for t, op, m in emu.requests if op == "order.create"]
            assert creates and all(m["args"][0]["orderLinkId"].startswith(venue._prefix) for m in creates)

    run(main())


@pytest.mark.parametrize("market", ["linear", "spot"])
def test_fills_book_the_fees_bybit_charged_not_the_configured_rates(market):
    """Bybit charges 1 bp maker, 7 bp taker; the engine's config says 2 and 5.5: every fill, live or
    reconciled after a drop, and the position must show Bybit's. Spot buys pay in BTC."""

    async def main():
        async with BybitEmulator(market=market, maker_fee="0.0001", taker_fee="0.0007") as emu:
            emu.set_book("BTCUSDT", *BOOK)
            async with engine_on(emu) as runner:
                engine, venue = runner.engine, runner.venue
                assert (engine.maker_fee, engine.taker_fee) == (pytest.approx(2e-4), pytest.approx(5.5e-4))
                taker = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, ord_type=OrdType.MARKET)
                await async_wait_for(lambda: taker.status == OrderStatus.FILLED, 5, "the market buy filled")
                ask = engine.submit("manual", "BTC-USDT", Side.SELL, 0.001, 60010.0)
                bid = engine.submit("manual", "BTC-USDT", Side.BUY, 0.002, 59990.0)
                await async_wait_for(lambda: ask.status == bid.status == OrderStatus.NEW, 5, "both resting")
                emu.trade("BTCUSDT", "Buy", "60010", "0.001")  # lifts our ask: a maker sell
                emu.trade("BTCUSDT", "Sell", "59990", "0.001")  # half our bid: a maker buy
                await async_wait_for(lambda: engine.fills == 3, 5, "three live fills")

                emu.accept_private = False  # the rest of the bid fills while the stream is down
                await emu.drop("private")
                await async_wait_for(lambda: bid.status == UNKNOWN, 5, "the bid unknown")
                emu.trade("BTCUSDT", "Sell", "59990", "0.001")
                emu.accept_private = True
                await async_wait_for(lambda: venue.connected and engine.fills == 4, 10, "the reconciled fill")
                assert any(path == "/v5/execution/list" for t, path, _ in emu.requests if t == "rest")

                expected = [0.001 * 60001 * 0.0007, 0.001 * 60010 * 0.0001, 0.001 * 59990 * 0.0001,
                            0.001 * 59990 * 0.0001]  # fmt: skip
                charged = [float(f) for f in emu.quote_fees()]
                assert charged == pytest.approx(expected)
                assert [f.fee for f in list(engine.recent_fills)[-4:]] == pytest.approx(charged)
                assert engine.portfolio.get("BTC-USDT").fees == pytest.approx(sum(charged))
                coins = [e["feeCurrency"] for e in emu.executions]
                assert coins == (["BTC", "USDT", "BTC", "BTC"] if market == "spot" else ["USDT"] * 4)
                assert set(venue.fees_charged) == set(coins)
                # a fee in BTC is BTC the account never got: the position is the account's BTC
                held = sum((1 if e["side"] == "Buy" else -1) * float(e["execQty"])
                           - (float(e["execFee"]) if e["feeCurrency"] == "BTC" else 0.0) for e in emu.executions)
                assert engine.portfolio.get("BTC-USDT").qty == pytest.approx(held, abs=1e-12)
                assert (held < 0.002) == (market == "spot")  # (spot: less than the 0.002 net bought)

    run(main())


def test_orders_breaking_instrument_rules_are_refused_before_sending_and_counted():
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            async with engine_on(emu) as runner:
                engine = runner.engine
                before = len(emu.requests)
                assert engine.submit("manual", "BTC-USDT", Side.BUY, 0.0015, 59990.0) is None  # qtyStep 0.001
                assert "lotSizeFilter.qtyStep" in engine.last_reject
                assert engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.05) is None  # tickSize 0.1
                assert "priceFilter.tickSize" in engine.last_reject
                assert engine.submit("manual", "BTC-USDT", Side.BUY, 0.0, 59990.0) is None
                assert engine.risk.rejects == {"venue": 3} and engine.risk_rejects == 3
                assert len(emu.requests) == before, "a refused order reached Bybit"

    run(main())


def test_a_filter_the_venue_changed_is_a_venue_reject_with_its_documented_code():
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            async with engine_on(emu) as runner:
                engine, venue = runner.engine, runner.venue
                # Bybit raised the minimum notional after we loaded instruments-info: 60 USDT is now too little.
                emu.instruments[0]["lotSizeFilter"]["minNotionalValue"] = "100"
                st = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.0)
                await async_wait_for(lambda: st.status == OrderStatus.REJECTED, 5, "the venue's reject")
                assert st.reject_reason == RejectReason.INVALID_QUANTITY
                assert engine.venue_rejects == 1
                assert venue.reject_reasons == {
                    "retCode 110094: Order notional value below the lower limit": 1
                }

    run(main())


def test_an_expired_timestamp_is_rejected_and_the_clock_offset_measured_again():
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            async with engine_on(emu) as runner:
                engine, venue = runner.engine, runner.venue
                resyncs = venue.clock_resyncs
                emu.skew_ms = 20_000  # Bybit's clock jumps 20 s ahead of ours: outside recv_window 5000
                st = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.0)
                await async_wait_for(lambda: st.status == OrderStatus.REJECTED, 5, "the 10002 reject")
                assert ("order.create", 10002) == emu.refusals[-1][:2]
                await async_wait_for(lambda: venue.clock_resyncs > resyncs, 5, "the offset measured again")
                assert venue.offset_ms == pytest.approx(20_000, abs=500)
                st2 = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.0)
                await async_wait_for(lambda: st2.status == OrderStatus.NEW, 5, "the next order accepted")

    run(main())


def test_rate_limit_answers_back_off_and_the_venue_limit_is_followed():
    async def main():
        async with BybitEmulator(order_limit=3) as emu:
            emu.set_book("BTCUSDT", *BOOK)
            cfg = engine_config(emu, orders_per_second=50)  # we believe 50/s; the account allows 3/s
            async with engine_on(emu, cfg) as runner:
                engine, venue = runner.engine, runner.venue
                sent = [engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.0 - i) for i in range(4)]
                await async_wait_for(lambda: sent[3].status == OrderStatus.REJECTED, 5, "the 10006 reject")
                await async_wait_for(
                    lambda: all(s.status == OrderStatus.NEW for s in sent[:3]), 5, "3 accepted"
                )
                assert ("order.create", 10006, "Too many visits!") == emu.refusals[-1]
                assert venue.throttled == 1 and venue._create_rl.limit == 3  # X-Bapi-Limit followed
                n = len(emu.requests)
                assert engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59980.0) is None  # backing off
                assert "bybit rate limit" in engine.last_reject and len(emu.requests) == n
                assert engine.venue_rejects == 1 and engine.risk.rejects["venue"] == 1

    run(main())


@pytest.mark.parametrize("which", ["private", "trade"])
def test_a_dropped_connection_is_reconciled_every_order_known_and_fills_counted_once(which):
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            async with engine_on(emu) as runner:
                engine, venue = runner.engine, runner.venue
                buy1 = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.0)
                buy2 = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59980.0)
                sell1 = engine.submit("manual", "BTC-USDT", Side.SELL, 0.002, 60010.0)
                sell2 = engine.submit("manual", "BTC-USDT", Side.SELL, 0.001, 60020.0)
                orders = [buy1, buy2, sell1, sell2]
                await async_wait_for(
                    lambda: all(o.status == OrderStatus.NEW for o in orders), 5, "4 orders NEW"
                )
                emu.trade("BTCUSDT", "Sell", "59990", "0.0005")  # a partial fill seen live
                await async_wait_for(lambda: engine.fills == 1, 5, "the live partial fill")

                emu.accept_private = emu.accept_trade = False  # down, and stays down for a while
                await emu.drop(which)
                await async_wait_for(lambda: engine.unknown_orders == 4, 5, "open orders marked unknown")
                assert all(o.status == UNKNOWN for o in orders)
                # While we are away: buy1 fills (rest), sell1 half fills, Bybit cancels buy2.
                emu.trade("BTCUSDT", "Sell", "59990", "0.0005")
                emu.trade("BTCUSDT", "Buy", "60010", "0.001")
                emu.cancel_by_venue(f"{venue._prefix}{buy2.cl_ord_id}")
                emu.accept_private = emu.accept_trade = True

                await async_wait_for(lambda: venue.connected, 10, "the reconnect")
                assert [o.status for o in orders] == [OrderStatus.FILLED, OrderStatus.CANCELED,
                                                      OrderStatus.PARTIALLY_FILLED, OrderStatus.NEW]  # fmt: skip
                assert (sell1.filled_qty, buy1.filled_qty) == (pytest.approx(0.001), pytest.approx(0.001))
                assert engine.fills == 3
                assert engine.portfolio.get("BTC-USDT").qty == pytest.approx(float(emu.position("BTCUSDT")))
                assert engine.portfolio.get("BTC-USDT").qty == pytest.approx(0.0)
                assert set(engine.orders.open) == {sell1.cl_ord_id, sell2.cl_ord_id}
                assert venue.reconciliations == 1

                emu.repush()  # Bybit sends everything again: nothing may count twice
                await async_wait_for(lambda: venue.duplicate_executions >= 3, 5, "the repeats handled")
                assert engine.fills == 3 and engine.portfolio.get("BTC-USDT").qty == pytest.approx(0.0)
                assert sell1.filled_qty == pytest.approx(0.001)
            assert runner.summary["fills"] == 3

    run(main())


def test_an_order_lost_with_the_connection_ends_rejected_not_unknown():
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            async with engine_on(emu) as runner:
                engine, venue = runner.engine, runner.venue
                emu.accept_trade = emu.accept_private = False
                emu.black_hole = True  # the next create never reaches the matching engine
                st = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.0)
                await async_wait_for(
                    lambda: any(op == "order.create" for _, op, _ in emu.requests), 5, "sent"
                )
                await emu.drop("trade")
                await async_wait_for(lambda: st.status == UNKNOWN, 5, "unknown after the drop")
                emu.black_hole = False
                emu.accept_trade = emu.accept_private = True
                await async_wait_for(lambda: venue.connected, 10, "the reconnect")
                assert st.status == OrderStatus.REJECTED
                assert venue.reject_reasons == {"not received by Bybit (lost with the connection)": 1}

    run(main())


def test_an_internal_error_answer_is_resolved_by_asking_bybit():
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            async with engine_on(emu) as runner:
                engine = runner.engine
                emu.fail_next.append((10016, "Server error."))  # the order's fate is not stated
                st = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.0)
                await async_wait_for(lambda: st.status == OrderStatus.REJECTED, 5, "resolved by REST")
                assert any(path == "/v5/order/realtime" for t, path, _ in emu.requests if t == "rest")

    run(main())


def test_a_cancel_of_an_order_that_already_filled_is_a_cancel_reject():
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            async with engine_on(emu) as runner:
                engine = runner.engine
                st = engine.submit("manual", "BTC-USDT", Side.BUY, 0.001, 59990.0)
                await async_wait_for(lambda: st.status == OrderStatus.NEW, 5, "NEW")
                emu.trade("BTCUSDT", "Sell", "59990", "0.001")
                assert engine.cancel(st.cl_ord_id)  # sent before the fill was heard
                await async_wait_for(lambda: engine.orders.cancel_rejects == 1, 5, "the cancel refused")
                await async_wait_for(lambda: st.status == OrderStatus.FILLED, 5, "the fill")
                assert engine.fills == 1 and engine.venue_rejects == 0

    run(main())


def test_spot_market_orders_are_in_the_base_coin_and_instruments_are_read_page_by_page():
    async def main():
        async with BybitEmulator(market="spot") as emu:
            emu.set_book("BTCUSDT", *BOOK)
            emu.max_page = 1
            async with engine_on(emu) as runner:
                engine = runner.engine
                assert engine.instrument("BTC-USDT") == (0.01, 0.000001)  # tickSize, basePrecision
                st = engine.submit("manual", "BTC-USDT", Side.BUY, 0.0002, ord_type=OrdType.MARKET)
                await async_wait_for(lambda: st.status == OrderStatus.FILLED, 5, "the market buy filled")
                # (a spot buy pays its fee in BTC: the position is what the account received)
                (e,) = emu.executions
                assert e["feeCurrency"] == "BTC" and float(e["execFee"]) > 0
                assert engine.portfolio.get("BTC-USDT").qty == pytest.approx(0.0002 - float(e["execFee"]))
                create = [m for t, op, m in emu.requests if op == "order.create"][-1]["args"][0]
                assert (create["marketUnit"], create["qty"], "price" in create) == (
                    "baseCoin",
                    "0.000200",
                    False,
                )
                assert engine.recent_fills[-1].price == 60001.0 and engine.recent_fills[-1].liquidity == 2

    run(main())


def test_linear_instruments_are_read_page_by_page():
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            emu.max_page = 1  # BTCUSDT on one page, ETHUSDT on the next (nextPageCursor)
            async with engine_on(emu) as runner:
                assert runner.engine.instrument("ETH-USDT") == (0.01, 0.01)
                assert sorted(runner.venue.instruments) == ["BTC-USDT", "ETH-USDT"]

    run(main())


def test_a_private_stream_gone_silent_is_replaced():
    async def main():
        async with BybitEmulator() as emu:
            emu.set_book("BTCUSDT", *BOOK)
            async with engine_on(emu, engine_config(emu, ping_interval=0.2)) as runner:
                venue = runner.venue
                emu.mute_private = True  # the socket stays open, nothing comes back, not even pongs
                await async_wait_for(lambda: runner.engine.disconnects == 1, 5, "the silence noticed")
                emu.mute_private = False
                await async_wait_for(lambda: venue.connected and venue.sessions == 2, 10, "a new session")

    run(main())


def test_the_market_maker_quotes_a_recorded_bybit_session_and_its_fill_is_counted():
    """Market data: the recorded XRPUSDT session played by the public-feed test kit; orders: the venue."""
    frames = load_session()  # a 500-level snapshot and 24 deltas, 2024-12-01

    async def main():
        port = free_port()
        async with BybitEmulator(instruments=[LINEAR_BTC, LINEAR_XRP]) as emu:
            cfg = engine_config(emu, "market_maker", {"qty": 10, "half_spread_bps": 5.0, "skew_bps": 0,
                                                      "requote_bps": 100, "max_position": 50}, post_only=True)  # fmt: skip
            cfg["strategies"][0]["symbols"] = ["XRP-USDT"]
            cfg["market_data"]["feeds"] = [{"exchange": "bybit", "market": "linear", "symbols": ["XRP-USDT"],
                                            "ws_url": f"ws://127.0.0.1:{port}/v5/public/linear", "depth": 500}]  # fmt: skip
            cfg["risk"].update(max_order_qty=100, max_position=100)
            async with engine_on(emu, cfg, wait_connected=False) as runner:
                engine = runner.engine
                await async_wait_for(lambda: runner.venue.connected, 10, "the venue")
                # The session plays once the venue is up: the feed's reconnect finds the server.
                server = await BybitServer([frames]).start(port)
                try:
                    await async_wait_for(lambda: engine.rx_packets >= 25, 15, "the recorded session")
                    await async_wait_for(lambda: len(open_at_venue(emu)) == 2, 5, "quotes resting at Bybit")
                    bid = next(o for o in open_at_venue(emu) if o.side == "Buy")
                    mid = engine.mid("XRP-USDT")
                    assert float(bid.price) < mid and str(bid.qty) == "10" and bid.tif == "PostOnly"
                    emu.trade("XRPUSDT", "Sell", bid.price, 10)
                    await async_wait_for(lambda: engine.fills == 1, 5, "the fill")
                    assert engine.portfolio.get("XRP-USDT").qty == 10.0
                finally:
                    await server.stop()
            assert runner.summary["positions"]["XRP-USDT"] == 10.0 and not open_at_venue(emu)

    run(main())

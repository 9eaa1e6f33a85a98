"""The example strategies' decisions, driven through the real engine with a recording venue."""

from __future__ import annotations

import pytest
from latentspeed_strategy_examples.market_maker import MarketMaker, MarketMakerParams
from latentspeed_strategy_examples.ofi_taker import OfiTaker, OfiTakerParams

from latentspeed_core.types import Side, TimeInForce


def test_market_maker_quotes_both_sides_around_mid(make_engine, md):
    mm = MarketMaker(MarketMakerParams(qty=0.5, half_spread_bps=100, requote_bps=50, skew_bps=0))
    engine, venue = make_engine(mm)
    engine.on_book(md.book(bid=99.0, ask=101.0))
    bid, ask = venue.orders
    assert (bid.side, bid.price, bid.qty) == (Side.BUY, pytest.approx(99.0), 0.5)
    assert (ask.side, ask.price, ask.qty) == (Side.SELL, pytest.approx(101.0), 0.5)
    engine.on_book(md.book(bid=99.1, ask=101.1))  # moved 10 bps < requote_bps: keep quotes
    assert len(venue.orders) == 2 and not venue.cancels
    engine.on_book(md.book(bid=100.0, ask=102.0))  # moved ~100 bps: cancel both, quote again
    assert sorted(venue.cancels) == sorted([bid.cl_ord_id, ask.cl_ord_id])
    assert [o.price for o in venue.orders[2:]] == [pytest.approx(99.99), pytest.approx(102.01)]


def test_market_maker_changes_nothing_while_not_ready_and_quotes_when_back(make_engine, md):
    """Venue down or trading halted: no order, no cancel, and the quotes are not moved in its mind
    either: once ready, the next book requotes from where it last quoted."""
    mm = MarketMaker(MarketMakerParams(qty=0.5, half_spread_bps=100, requote_bps=50, skew_bps=0))
    engine, venue = make_engine(mm)
    venue.connected = False
    engine.on_book(md.book(bid=99.0, ask=101.0))
    assert not venue.orders and not venue.cancels
    venue.connected = True
    engine.on_book(md.book(bid=99.0, ask=101.0))
    bid, ask = venue.orders
    venue.connected = False
    engine.on_book(md.book(bid=100.0, ask=102.0))  # moved ~100 bps, but the venue is down
    assert len(venue.orders) == 2 and not venue.cancels
    venue.connected = True
    engine.on_book(md.book(bid=100.0, ask=102.0))  # back: the move is seen now
    assert sorted(venue.cancels) == sorted([bid.cl_ord_id, ask.cl_ord_id])
    assert [o.price for o in venue.orders[2:]] == [pytest.approx(99.99), pytest.approx(102.01)]
    engine.trading_enabled = False  # halted (the kill switch's flag)
    engine.on_book(md.book(bid=110.0, ask=112.0))
    assert len(venue.orders) == 4 and len(venue.cancels) == 2


def test_market_maker_skews_against_inventory_and_respects_max_position(make_engine, md):
    mm = MarketMaker(
        MarketMakerParams(qty=1.0, half_spread_bps=100, requote_bps=10, skew_bps=50, max_position=1.0)
    )
    engine, venue = make_engine(mm)
    engine.on_book(md.book())
    bid, ask = venue.orders
    engine.on_execution_report(md.fill(bid))  # now long 1
    assert engine.portfolio.qty("BTC-USD") == 1.0
    engine.on_book(md.book(bid=98.0, ask=100.0))  # mid 99: requote, skewed down by 50 bps
    new = venue.orders[2:]
    # Long at max_position: no new bid, only an ask, 50 bps lower than unskewed (99 * 1.01).
    assert [o.side for o in new] == [Side.SELL]
    assert new[0].price == pytest.approx(99 * (1 + (100 - 50) / 1e4), abs=0.01)


def test_ofi_taker_buys_on_positive_flow_and_sells_on_negative(make_engine, md):
    taker = OfiTaker(
        OfiTakerParams(qty=0.1, ofi_threshold=1.0, imbalance_threshold=0.2, cooldown_ms=0, slippage_bps=0)
    )
    engine, venue = make_engine(taker)
    engine.on_book(md.book(ofi_rolling=0.5, bq=3, aq=1))  # flow too weak
    engine.on_book(md.book(ofi_rolling=2.0, bq=1, aq=3))  # flow and touch disagree
    assert venue.orders == []
    engine.on_book(md.book(ofi_rolling=2.0, bq=3, aq=1))
    (buy,) = venue.orders
    assert (buy.side, buy.price, buy.tif) == (Side.BUY, 101.0, TimeInForce.IOC)
    engine.on_execution_report(md.fill(buy))
    engine.on_book(md.book(ofi_rolling=-2.0, bq=1, aq=3))
    sell = venue.orders[1]
    assert (sell.side, sell.price) == (Side.SELL, 99.0)

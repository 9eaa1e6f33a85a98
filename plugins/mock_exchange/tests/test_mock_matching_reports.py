"""Review: matching across several levels, cum/leaves in every report, liquidity consumed within a tick."""

from __future__ import annotations

from mockx_raw_client import CANCELED, E8, FILL, NEW, PARTIAL

BUY, SELL = 0, 1
LIMIT, MARKET = 0, 1
GTC, IOC = 0, 1
BTC = 1


def _consistent(reports: list[dict], qty: int) -> None:
    """Every report: cum + leaves == qty while open, leaves 0 when final; cum only grows by last_qty."""
    cum = 0
    for r in reports:
        cum += r["last_qty"]
        assert r["cum_qty"] == cum, r
        if r["exec_type"] in (FILL, CANCELED):
            assert r["leaves_qty"] == 0, r
        else:
            assert r["cum_qty"] + r["leaves_qty"] == qty, r


def test_gtc_sweeps_two_levels_rests_the_rest_and_cancels_with_its_cum(exchange, client):
    ex = exchange(fill_prob=100, symbols=["BTC-USD"])
    c = client(ex.port)
    c.handshake()
    ex.call(ex.ex.set_book, "BTC-USD", [(99.0, 1.0)], [(100.0, 0.4), (100.5, 0.5), (101.0, 3.0)])
    c.new_order(1, BTC, BUY, LIMIT, GTC, 100.5, 2.0)
    ack, p1, p2 = c.reports(3)
    assert (ack["exec_type"], p1["exec_type"], p2["exec_type"]) == (NEW, PARTIAL, PARTIAL)
    assert (p1["last_px"], p1["last_qty"]) == (100 * E8, round(0.4 * E8))
    assert (p2["last_px"], p2["last_qty"]) == (round(100.5 * E8), round(0.5 * E8))
    vwap = (p1["last_px"] * p1["last_qty"] + p2["last_px"] * p2["last_qty"]) / p2["cum_qty"]
    assert abs(vwap / E8 - (100 * 0.4 + 100.5 * 0.5) / 0.9) < 1e-9
    assert ex.call(lambda: len(ex.ex.symbols["BTC-USD"].resting)) == 1  # the remainder rests
    c.cancel(2, 1, BTC)
    (cxl,) = c.reports(1)
    assert (cxl["exec_type"], cxl["cum_qty"], cxl["leaves_qty"]) == (CANCELED, round(0.9 * E8), 0)
    _consistent([ack, p1, p2, cxl], 2 * E8)


def test_liquidity_taken_by_one_order_is_gone_for_the_next_in_the_same_tick(exchange, client):
    ex = exchange(fill_prob=100, symbols=["BTC-USD"])
    c = client(ex.port)
    c.handshake()
    ex.call(ex.ex.set_book, "BTC-USD", [(99.0, 1.0)], [(100.0, 0.4), (101.0, 3.0)])
    c.new_order(1, BTC, BUY, LIMIT, IOC, 100.0, 0.3)
    c.new_order(2, BTC, BUY, LIMIT, IOC, 100.0, 0.3)  # only 0.1 left at 100
    first = c.reports(2, cl=1)
    second = c.reports(3, cl=2)
    assert [r["exec_type"] for r in first] == [NEW, FILL]
    assert [r["exec_type"] for r in second] == [NEW, PARTIAL, CANCELED]
    assert second[1]["last_qty"] == round(0.1 * E8)
    _consistent(first, round(0.3 * E8))
    _consistent(second, round(0.3 * E8))


def test_resting_sell_filled_by_a_crossing_book_reports_cum_and_leaves(exchange, client):
    ex = exchange(fill_prob=100, symbols=["BTC-USD"])
    c = client(ex.port)
    c.handshake()
    c.new_order(1, BTC, SELL, LIMIT, GTC, 200_000.0, 1.0)  # far above the walk: rests
    (ack,) = c.reports(1)
    # Bids through our price on two levels (0.3 + 0.2): one maker fill at our price for 0.5.
    ex.call(
        ex.ex.set_book, "BTC-USD", [(200_001.0, 0.3), (200_000.0, 0.2), (199_999.0, 5.0)], [(200_002.0, 1.0)]
    )
    ex.call(ex.ex.tick)
    (part,) = c.reports(1)
    assert (part["exec_type"], part["last_px"], part["last_qty"]) == (PARTIAL, 200_000 * E8, E8 // 2)
    ex.call(ex.ex.tick)  # liquidity restored: the rest fills
    (fill,) = c.reports(1)
    assert (fill["exec_type"], fill["last_qty"], fill["cum_qty"], fill["leaves_qty"]) == (
        FILL,
        E8 // 2,
        E8,
        0,
    )
    assert ex.call(lambda: ex.ex.symbols["BTC-USD"].resting) == {}
    _consistent([ack, part, fill], E8)

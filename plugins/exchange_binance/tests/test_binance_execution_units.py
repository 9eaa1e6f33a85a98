"""The venue's pure parts: its config, exchangeInfo rules, rate-limit bookkeeping, error mapping, and
how Binance's own-fill events and trade look-ups become reports (fees as charged)."""

from __future__ import annotations

import asyncio

import pytest
from latentspeed_exchange_binance.config import BinanceVenueConfig
from latentspeed_exchange_binance.execution import (
    BinanceVenue,
    RateLimits,
    _Tracked,
    decimals,
    parse_exchange_info,
    reject_reason,
)
from pydantic import ValidationError

from latentspeed_core.config import ConfigError, validate
from latentspeed_core.live import check_order
from latentspeed_core.types import ExecType, ExecutionReport, Order, OrdType, RejectReason, Side

KEY, SECRET = "cfgKey1234567890abcdef", "cfgSecret0987654321fedcba"


@pytest.fixture
def no_env_keys(monkeypatch):
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)


# -- config -----------------------------------------------------------------------------------------
def test_testnet_is_the_default_and_each_market_has_its_endpoints(no_env_keys):
    spot = validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET})
    assert spot.testnet and spot.market == "spot"
    assert spot.urls() == (
        "https://testnet.binance.vision",
        "wss://ws-api.testnet.binance.vision/ws-api/v3",
        "",
    )
    live = validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET, "testnet": False})
    assert live.urls()[:2] == ("https://api.binance.com", "wss://ws-api.binance.com:443/ws-api/v3")
    usdm = validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET, "market": "usdm"})
    assert usdm.urls() == (
        "https://testnet.binancefuture.com",
        "wss://testnet.binancefuture.com/ws-fapi/v1",
        "wss://fstream.binancefuture.com/private",
    )


def test_a_missing_key_is_refused_at_load_naming_the_environment_variable(no_env_keys):
    with pytest.raises(ConfigError) as err:
        validate(BinanceVenueConfig, {"market": "spot"}, "live.yml", prefix="venue")
    line = str(err.value)
    assert "\n" not in line and "BINANCE_API_KEY" in line and line.startswith("live.yml: venue")


def test_keys_come_from_the_environment_or_files(no_env_keys, monkeypatch, tmp_path):
    monkeypatch.setenv("BINANCE_API_KEY", KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    assert validate(BinanceVenueConfig, {}).credentials("BINANCE") == (KEY, SECRET)
    monkeypatch.delenv("BINANCE_API_KEY")
    monkeypatch.delenv("BINANCE_API_SECRET")
    (tmp_path / "k").write_text(KEY + "\n")
    (tmp_path / "s").write_text(SECRET + "\n")
    cfg = validate(
        BinanceVenueConfig, {"api_key_file": str(tmp_path / "k"), "api_secret_file": str(tmp_path / "s")}
    )
    assert cfg.credentials("BINANCE") == (KEY, SECRET)


def test_unknown_keys_and_bad_values_are_refused(no_env_keys):
    with pytest.raises(ConfigError, match="unknown key"):
        validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET, "recv_window": 5000})
    with pytest.raises(ConfigError, match="recv_window_ms"):
        validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET, "recv_window_ms": 60001})
    with pytest.raises(ConfigError, match="market"):
        validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET, "market": "coinm"})
    with pytest.raises(ConfigError, match="reduce_only applies to USD-M"):
        validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET, "reduce_only": True})


def test_secrets_never_appear_in_reprs_dumps_or_errors(no_env_keys):
    cfg = validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET})
    for text in (repr(cfg), str(cfg), cfg.model_dump_json(), str(cfg.model_dump())):
        assert KEY not in text and SECRET not in text
    with pytest.raises(ConfigError) as err:  # an error elsewhere in the section never echoes the input
        validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET, "testnet": "maybe"})
    assert KEY not in str(err.value) and SECRET not in str(err.value)
    with pytest.raises(ValidationError) as exc:  # pydantic's own message too
        BinanceVenueConfig.model_validate({"api_key": KEY, "api_secret": SECRET, "market": 3})
    assert KEY not in str(exc.value) and SECRET not in str(exc.value)


# -- exchangeInfo ---------------------------------------------------------------------------------------
SPOT_INFO = {
    "rateLimits": [],
    "symbols": [
        {
            "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "85.0", "stepSize": "0.00000000"},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
        },
        {"symbol": "OLDUSDT", "status": "BREAK", "baseAsset": "OLD", "quoteAsset": "USDT", "filters": []},
    ],
}  # fmt: skip
USDM_INFO = {
    "symbols": [
        {
            "symbol": "BTCUSDT", "status": "TRADING", "contractType": "PERPETUAL", "baseAsset": "BTC", "quoteAsset": "USDT",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "261.10", "maxPrice": "809484", "tickSize": "0.10"},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
                {"filterType": "MIN_NOTIONAL", "notional": "100"},
            ],
        },
        {"symbol": "BTCUSDT_250926", "status": "TRADING", "contractType": "CURRENT_QUARTER", "baseAsset": "BTC",
         "quoteAsset": "USDT", "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.1"}]},
    ],
}  # fmt: skip


def test_exchange_info_filters_become_rules_and_formats():
    spot = parse_exchange_info(SPOT_INFO, "spot")
    assert list(spot) == ["BTC-USDT"]  # a symbol not TRADING is left out
    s = spot["BTC-USDT"]
    r = s.rules
    assert (
        r.venue_symbol,
        r.tick_size,
        r.lot_size,
        r.min_qty,
        r.max_qty,
        r.min_notional,
        r.market_lot_size,
    ) == (
        "BTCUSDT",
        0.01,
        0.00001,
        0.00001,
        9000.0,
        5.0,
        0.0,
    )
    assert s.price_fmt % 61000.005 in ("61000.00", "61000.01") and s.qty_fmt % 0.001 == "0.00100"
    assert s.market_qty_fmt == s.qty_fmt and s.notional_on_market
    assert (s.base, s.quote) == ("BTC", "USDT")  # what a commission is valued against
    usdm = parse_exchange_info(USDM_INFO, "usdm")
    assert set(usdm) == {"BTC-USDT", "BTC-USDT-250926"}
    u = usdm["BTC-USDT"]
    assert (u.rules.tick_size, u.rules.lot_size, u.rules.min_notional, u.rules.market_lot_size) == (
        0.1,
        0.001,
        100.0,
        0.001,
    )
    assert u.price_fmt % 61800.1 == "61800.1"
    assert parse_exchange_info(USDM_INFO, "usdm", {"BTC-USDT"}).keys() == {"BTC-USDT"}


def test_decimals_of_a_step():
    assert [decimals(s) for s in ("0.01000000", "1.00000000", "0.10", "10", "0.00001000")] == [2, 0, 1, 0, 5]


@pytest.mark.parametrize(
    "qty,price,rule",
    [(0.000015, 61000.0, "LOT_SIZE"), (0.001, 61000.005, "PRICE_FILTER"), (0.00005, 61000.0, "MIN_NOTIONAL"),
     (0.000001, 61000.0, "LOT_SIZE")],
)  # fmt: skip
def test_an_order_that_breaks_a_filter_is_refused_naming_it(qty, price, rule):
    rules = parse_exchange_info(SPOT_INFO, "spot")["BTC-USDT"].rules
    reason = check_order(Order(1, "BTC-USDT", Side.BUY, qty, price), rules)
    assert reason is not None and rule in reason
    assert check_order(Order(1, "BTC-USDT", Side.BUY, 0.001, 61000.01), rules) is None
    assert check_order(Order(1, "BTC-USDT", Side.BUY, 0.001, 0.0, OrdType.MARKET), rules, 61000.0) is None


# -- rate limits ---------------------------------------------------------------------------------------
LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 3},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def test_order_count_is_refused_at_the_limit_and_resets_with_the_interval():
    rl = RateLimits()
    rl.set_limits(LIMITS)
    t0 = 1_700_000_000_000  # a multiple of 10 s
    assert [rl.take(t0 + i, 1, 1) for i in range(3)] == [None, None, None]
    refused = rl.take(t0 + 5, 1, 1)
    assert refused is not None and "ORDERS limit 3 per 10S" in refused and "X-MBX-ORDER-COUNT-10S" in refused
    assert rl.take(t0 + 10_000, 1, 1) is None  # the next 10-second interval


def test_the_venues_counts_raise_ours():
    rl = RateLimits()
    rl.set_limits(LIMITS)
    t0 = 1_700_000_000_000
    rl.observe_headers({"x-mbx-order-count-10s": "3", "x-mbx-used-weight-1m": "5999", "other": "1"}, t0)
    assert rl.take(t0, 1, 0) is not None  # the venue says 3 of 3 are used
    assert rl.wait_s(t0, 2) == pytest.approx(((t0 // 60_000 + 1) * 60_000 - t0) / 1000)  # the next minute
    rl.observe_ws(
        [{"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000, "count": 7}], t0
    )
    assert next(w for w in rl.orders if w.name == "1D").count == 7


def test_venue_errors_map_to_reject_reasons():
    assert reject_reason(-1013, "Filter failure: PRICE_FILTER") == RejectReason.INVALID_PRICE
    assert reject_reason(-1013, "Filter failure: LOT_SIZE") == RejectReason.INVALID_QUANTITY
    assert (
        reject_reason(-4164, "Order's notional must be no smaller than 100") == RejectReason.INVALID_QUANTITY
    )
    assert reject_reason(-2010, "Duplicate order sent.") == RejectReason.DUPLICATE_CL_ORD_ID
    assert reject_reason(-2011, "Unknown order sent.") == RejectReason.UNKNOWN_ORDER
    assert reject_reason(-1121, "Invalid symbol.") == RejectReason.UNKNOWN_SYMBOL
    assert (
        reject_reason(-1021, "Timestamp for this request is outside of the recvWindow.")
        == RejectReason.RISK_OR_THROTTLE
    )


# -- WebSocket framing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 125, 126, 400, 65535, 65536, 70_000])
def test_our_text_frames_parse_as_masked_client_frames(size):
    """RFC 6455 framing as the websockets library (a server) reads it, for each length encoding."""
    import os

    from latentspeed_exchange_binance.wsclient import frame_text

    from latentspeed_core.testing import client_frame_text

    payload = os.urandom(size)
    assert client_frame_text(frame_text(payload, os.urandom(4))) == payload


# -- own fills: fees as charged ------------------------------------------------------------------------
INFO = {"spot": SPOT_INFO, "usdm": USDM_INFO}
CL = 7
PX = 60_000.0


class Reports:
    """The engine's side of the venue: the reports it is given."""

    def __init__(self) -> None:
        self.reports: list[ExecutionReport] = []

    def on_execution_report(self, r: ExecutionReport) -> None:
        self.reports.append(r)


def venue_with_order(market: str, qty: float = 0.003) -> tuple[BinanceVenue, Reports, _Tracked]:
    """A venue that knows BTC-USDT from exchangeInfo and has our buy of ``qty`` resting (no network)."""
    venue = BinanceVenue(validate(BinanceVenueConfig, {"api_key": KEY, "api_secret": SECRET, "market": market}))
    venue._specs = parse_exchange_info(INFO[market], market)
    listener = Reports()
    venue._listener = listener  # type: ignore[assignment]
    t = _Tracked(CL, venue._prefix + str(CL), "BTC-USDT", "BTCUSDT", Side.BUY, qty, 0)
    t.order_id = 1001
    venue._orders[CL] = t
    return venue, listener, t


def trade_event(market: str, cid: str, trade_id: int, last: float, cum: float, px: float = PX, **commission) -> dict:
    """A TRADE as Binance pushes it: spot ``executionReport``, USD-M ``ORDER_TRADE_UPDATE`` (its ``o``).
    ``commission`` holds ``n``/``N`` as sent (left out: not pushed)."""
    o = {"s": "BTCUSDT", "c": cid, "S": "BUY", "o": "LIMIT", "x": "TRADE", "i": 1001, "l": repr(last),
         "z": repr(cum), "L": repr(px), "T": 1_700_000_000_000, "t": trade_id, "m": True, **commission}  # fmt: skip
    o["X"] = "PARTIALLY_FILLED"
    if market == "spot":
        return {"e": "executionReport", "E": 1_700_000_000_001, "C": "", **o}
    return {"e": "ORDER_TRADE_UPDATE", "E": 1_700_000_000_001, "T": 1_700_000_000_000, "o": o}


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_a_trade_reports_its_commission_in_quote_valued_if_in_base_and_none_if_in_bnb(no_env_keys, market):
    """n/N in the quote asset: the fee as is; in the base asset: valued at the trade's price L; in BNB
    (no price for it here): None, so the engine charges its configured rate."""
    venue, out, t = venue_with_order(market)
    venue._on_event(trade_event(market, t.cid, 5001, 0.001, 0.001, n="0.01200000", N="USDT"), 1)
    venue._on_event(trade_event(market, t.cid, 5002, 0.001, 0.002, px=60_010.0, n="0.00000020", N="BTC"), 2)
    venue._on_event(trade_event(market, t.cid, 5003, 0.001, 0.003, n="0.00002000", N="BNB"), 3)
    assert [r.exec_type for r in out.reports] == [ExecType.PARTIAL_FILL, ExecType.PARTIAL_FILL, ExecType.FILL]
    assert [r.last_qty for r in out.reports] == pytest.approx([0.001] * 3)
    fees = [r.fee for r in out.reports]
    assert fees[0] == pytest.approx(0.012, rel=1e-12)
    assert fees[1] == pytest.approx(0.0000002 * 60_010.0, rel=1e-12)
    assert fees[2] is None
    assert [f.fee for f in venue.fills] == fees  # what the engine was told, kept beside the commission
    # the bookkeeping per asset stays as charged
    assert venue.commissions == pytest.approx({"USDT": 0.012, "BTC": 0.0000002, "BNB": 0.00002})


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_a_zero_commission_is_a_zero_fee_and_so_is_a_missing_one(no_env_keys, market):
    venue, out, t = venue_with_order(market)
    # spot writes a trade that cost nothing as n "0" (its asset may be null): nothing to value
    venue._on_event(trade_event(market, t.cid, 5001, 0.001, 0.001, n="0", N=None), 1)
    # USD-M leaves n/N out when there is no commission ("will not push if no commission"): zero
    venue._on_event(trade_event(market, t.cid, 5002, 0.001, 0.002), 2)
    venue._on_event(trade_event(market, t.cid, 5003, 0.001, 0.003, n="0.012", N="USDT"), 3)
    assert [r.fee for r in out.reports] == [0.0, 0.0, pytest.approx(0.012)]


def test_a_report_standing_for_a_trade_never_seen_has_no_fee(no_env_keys):
    """z jumps past a trade whose event we never had: its commission is unknown, so the report's
    fee is too (the engine charges its rate for the whole report)."""
    venue, out, t = venue_with_order("spot")
    venue._on_event(trade_event("spot", t.cid, 5001, 0.001, 0.001, n="0.012", N="USDT"), 1)
    venue._on_event(trade_event("spot", t.cid, 5003, 0.001, 0.003, n="0.012", N="USDT"), 2)  # 5002 missed
    assert [(r.last_qty, r.fee) for r in out.reports] == [
        (pytest.approx(0.001), pytest.approx(0.012)),
        (pytest.approx(0.002), None),
    ]



def test_a_report_for_the_rest_of_a_trade_already_partly_booked_has_that_shares_fee(no_env_keys):
    """Half of trade 5002 was booked before its event came (at the order's average price, while the
    trade list lagged): the event's report is the other half, with half the trade's commission."""
    venue, out, t = venue_with_order("spot")
    t.cum = 0.0015
    venue._on_event(trade_event("spot", t.cid, 5002, 0.001, 0.002, n="0.012", N="USDT"), 1)
    assert [(r.last_qty, r.fee) for r in out.reports] == [(pytest.approx(0.0005), pytest.approx(0.006))]


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_trades_looked_up_by_rest_carry_their_commissions_valued_the_same_way(no_env_keys, market):
    """Reconciliation books the trades it finds (myTrades / userTrades ``commission`` and
    ``commissionAsset``) each with its own fee; the part the trade list does not show yet is booked
    at the order's average price with no fee (its commission is unknown)."""
    venue, out, t = venue_with_order(market, qty=0.004)
    maker = "isMaker" if market == "spot" else "maker"
    trades = [
        {"symbol": "BTCUSDT", "id": 5001, "orderId": 1001, "price": "60000.00", "qty": "0.001",
         "commission": "0.01200000", "commissionAsset": "USDT", "time": 1, maker: True},
        {"symbol": "BTCUSDT", "id": 5002, "orderId": 1001, "price": "60010.00", "qty": "0.001",
         "commission": "0.00000020", "commissionAsset": "BTC", "time": 2, maker: True},
        {"symbol": "BTCUSDT", "id": 5003, "orderId": 1001, "price": "60000.00", "qty": "0.001",
         "commission": "0.00002000", "commissionAsset": "BNB", "time": 3, maker: True},
    ]  # fmt: skip
    calls: list[str] = []

    async def rest(method: str, what: str, params=None, signed: bool = False, api_key: bool = False):
        calls.append(what)
        return trades

    venue._rest = rest  # type: ignore[method-assign]
    order = {"orderId": 1001, "status": "FILLED", "executedQty": "0.004", "updateTime": 4,
             "avgPrice": "60005.00", "cummulativeQuoteQty": "240020.0"}  # fmt: skip
    asyncio.run(venue._sync_order(t, order))
    assert calls == ["trades"]
    fills = [r for r in out.reports if r.last_qty > 0]
    assert [r.last_qty for r in fills] == pytest.approx([0.001] * 4)
    assert [r.fee for r in fills] == [pytest.approx(0.012), pytest.approx(0.0000002 * 60_010.0), None, None]
    assert venue.commissions == pytest.approx({"USDT": 0.012, "BTC": 0.0000002, "BNB": 0.00002})

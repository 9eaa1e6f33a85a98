"""The venue's pure parts: the venue config, order ids, instrument rules, the wire messages, rate windows,
and how private-stream messages become execution reports (fills once per execId, states by rank)."""

from __future__ import annotations

import json

import pytest
from bybit_private_emulator import LINEAR_BTC, SPOT_BTC
from latentspeed_exchange_bybit.config import BybitVenueConfig
from latentspeed_exchange_bybit.execution import (
    BybitVenue,
    RateWindow,
    cancel_message,
    create_message,
    decimals,
    parse_link,
    session_prefix,
    spec_from_instrument,
    ws_text_frame,
)
from pydantic import ValidationError
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from latentspeed_core.config import ConfigError, validate
from latentspeed_core.types import ExecType, Liquidity, Order, OrdType, Side, TimeInForce

KEYS = {"api_key": "k-1", "api_secret": "s-1"}


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch):
    monkeypatch.delenv("BYBIT_API_KEY", raising=False)
    monkeypatch.delenv("BYBIT_API_SECRET", raising=False)


# -- config ------------------------------------------------------------------------------------------
def test_config_defaults_to_the_testnet_and_mainnet_takes_testnet_false():
    cfg = BybitVenueConfig(**KEYS)
    assert (cfg.testnet, cfg.market, cfg.recv_window_ms) == (True, "linear", 5000)
    assert cfg.urls() == ("https://api-testnet.bybit.com", "wss://stream-testnet.bybit.com/v5/private",
                          "wss://stream-testnet.bybit.com/v5/trade")  # fmt: skip
    live = BybitVenueConfig(testnet=False, **KEYS)
    assert live.urls() == ("https://api.bybit.com", "wss://stream.bybit.com/v5/private",
                           "wss://stream.bybit.com/v5/trade")  # fmt: skip
    local = BybitVenueConfig(
        rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:2", trade_ws_url="ws://x:3/t", **KEYS
    )
    assert local.urls() == ("http://127.0.0.1:1", "ws://127.0.0.1:2/v5/private", "ws://x:3/t")


@pytest.mark.parametrize(
    ("extra", "where", "why"),
    [
        ({"colour": "red"}, "venue.colour", "unknown key"),
        ({"market": "usdm"}, "venue.market", "spot"),
        ({"ws_url": "wss://stream.bybit.com/v5/private"}, "venue.ws_url", "host only"),
        ({"rest_url": "ftp://x"}, "venue.rest_url", "http"),
        ({"recv_window_ms": 0}, "venue.recv_window_ms", "greater than 0"),
        ({"market": "spot", "reduce_only": True}, "venue", "derivatives"),
    ],
)
def test_config_mistakes_are_reported_with_their_key(extra, where, why):
    with pytest.raises(ConfigError) as err:
        validate(BybitVenueConfig, {"exchange": "bybit", **KEYS, **extra}, "live.yml", prefix="venue")
    assert f"live.yml: {where}: " in str(err.value) and why in str(err.value)


def test_keys_come_from_the_environment_or_files_and_a_missing_one_names_the_variable(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="venue: missing api_key: set BYBIT_API_KEY"):
        validate(BybitVenueConfig, {"exchange": "bybit"}, "live.yml", prefix="venue")
    with pytest.raises(ConfigError, match="missing api_secret: set BYBIT_API_SECRET"):
        validate(BybitVenueConfig, {"exchange": "bybit", "api_key": "k"}, "live.yml", prefix="venue")
    monkeypatch.setenv("BYBIT_API_KEY", "env-key")
    (tmp_path / "secret").write_text("file-secret\n")
    cfg = BybitVenueConfig(api_secret_file=tmp_path / "secret")
    assert cfg.credentials("BYBIT") == ("env-key", "file-secret")


@pytest.mark.parametrize(
    "given",
    [
        {"api_key": "KEY-must-not-leak", "api_secret": "SECRET-must-not-leak", "colour": "red"},
        {"api_key": "KEY-must-not-leak", "api_secret": "SECRET-must-not-leak", "recv_window_ms": "soon"},
        {"api_key": "KEY-must-not-leak"},  # the secret missing: the error names the variable, not the key
    ],
)
def test_a_validation_error_never_echoes_the_key_or_the_secret(given):
    """pydantic's own message too: code that builds the model directly gets no input echoed back."""
    with pytest.raises(ValidationError) as err:
        BybitVenueConfig(**given)
    assert "must-not-leak" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate(BybitVenueConfig, given, "live.yml", prefix="venue")
    assert "must-not-leak" not in str(err.value)


# -- ids, instruments, messages ----------------------------------------------------------------------
def test_order_link_ids_are_unique_per_run_within_bybits_36_characters():
    prefix = session_prefix(now_ms=1_900_000_000_000, rand=1295)
    assert prefix == "lso8uixypszz-" and len(f"{prefix}{2**53}") <= 36
    assert session_prefix(1_900_000_000_000, 0) != prefix  # two runs in the same ms differ
    assert parse_link(prefix, f"{prefix}42") == 42
    assert parse_link(prefix, "lso8uixyps00-42") is None  # another run's order
    assert parse_link(prefix, "spot-test-01") is None and parse_link(prefix, prefix) is None


def test_decimals_follow_the_step_as_bybit_writes_it():
    assert [decimals(s) for s in ("0.10", "0.001", "1", "0.000001", "5", "0.5")] == [1, 3, 0, 6, 0, 1]


def test_instrument_rules_from_the_documented_linear_and_spot_fields():
    spec = spec_from_instrument(LINEAR_BTC, "linear")
    r = spec.rules
    assert (spec.symbol, spec.venue_symbol) == ("BTC-USDT", "BTCUSDT")
    assert (r.tick_size, r.lot_size, r.min_qty, r.max_qty, r.min_notional) == (0.1, 0.001, 0.001, 1190.0, 5.0)
    assert (spec.max_market_qty, spec.min_price, spec.max_price, spec.qty_fmt, spec.px_fmt) == (
        500.0,
        0.1,
        1999999.8,
        "%.3f",
        "%.1f",
    )
    spot = spec_from_instrument(SPOT_BTC, "spot")
    assert (spot.rules.lot_size, spot.rules.min_qty, spot.rules.min_notional, spot.rules.max_qty) == (
        0.000001,
        0,
        5.0,
        83.0,
    )
    assert spot.max_market_qty == 41.5 and spot.qty_fmt == "%.6f" and spot.px_fmt == "%.2f"


def test_create_and_cancel_messages_are_the_documented_requests():
    spec = spec_from_instrument(LINEAR_BTC, "linear")
    limit = json.loads(create_message("p-7", 1711001595207, 8000, "linear", spec,
                                      Order(7, "BTC-USDT", Side.BUY, 0.002, 60000.1), "p-7", post_only=True))  # fmt: skip
    assert limit == {"reqId": "p-7", "header": {"X-BAPI-TIMESTAMP": "1711001595207", "X-BAPI-RECV-WINDOW": "8000"},
                     "op": "order.create", "args": [{"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                     "orderType": "Limit", "qty": "0.002", "price": "60000.1", "timeInForce": "PostOnly",
                     "orderLinkId": "p-7"}]}  # fmt: skip
    ioc = json.loads(create_message("p-8", 1, 5000, "linear", spec,
                                    Order(8, "BTC-USDT", Side.SELL, 0.3, 59000.0, tif=TimeInForce.IOC), "p-8",
                                    post_only=True, reduce_only=True))  # fmt: skip
    assert ioc["args"][0] == {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "orderType": "Limit",
                                   "qty": "0.300", "price": "59000.0", "timeInForce": "IOC", "orderLinkId": "p-8",
                                   "reduceOnly": True}  # fmt: skip
    one = json.loads(create_message("p-11", 1, 5000, "linear", spec,
                                    Order(11, "BTC-USDT", Side.BUY, 0.002, 60000.1, tif=TimeInForce.POST_ONLY), "p-11"))  # fmt: skip
    assert one["args"][0]["timeInForce"] == "PostOnly"  # one order post-only, the venue setting off
    spot = spec_from_instrument(SPOT_BTC, "spot")
    mkt = json.loads(create_message("p-9", 1, 5000, "spot", spot,
                                    Order(9, "BTC-USDT", Side.BUY, 0.0001, 0.0, OrdType.MARKET), "p-9"))  # fmt: skip
    assert mkt["args"][0] == {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
                              "qty": "0.000100", "timeInForce": "IOC", "orderLinkId": "p-9", "marketUnit": "baseCoin"}  # fmt: skip
    cancel = json.loads(cancel_message("p-10", 5, 5000, "linear", "BTCUSDT", "p-7"))
    assert cancel["op"] == "order.cancel" and cancel["args"] == [{"category": "linear", "symbol": "BTCUSDT",
                                                                  "orderLinkId": "p-7"}]  # fmt: skip


def unframe(data: bytes) -> list[bytes]:
    """The payloads of the client frames in ``data``, parsed by the websockets library (as a server would)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out = []
    while reader.buffer:
        gen = Frame.parse(reader.read_exact, mask=True)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            frame = stop.value
        assert (frame.opcode, frame.fin) == (Opcode.TEXT, True)
        out.append(frame.data)
    return out


@pytest.mark.parametrize("size", [5, 125, 126, 300, 65535, 65536, 70000])
def test_our_websocket_frames_parse_as_masked_text_frames(size):
    payload = json.dumps({"x": "y" * size}).encode()
    assert unframe(ws_text_frame(payload, b"\x01\x02\x03\x04")) == [payload]


def test_rate_window_keeps_a_rolling_second_and_follows_the_venues_headers():
    rl = RateWindow(2)
    assert rl.take(10.0) and rl.take(10.5) and not rl.take(10.9)
    assert rl.wait(10.9) == pytest.approx(0.1)
    assert rl.take(11.0)  # the request of 10.0 left the window
    rl.update({"X-Bapi-Limit": "5", "X-Bapi-Limit-Status": "3"}, 11.0, 0)
    assert rl.limit == 5 and rl.take(11.1)
    rl.update(
        {"x-bapi-limit": "5", "x-bapi-limit-status": "0"}, 11.2, 0
    )  # none left: blocked until the reset
    assert not rl.take(11.3) and rl.blocked_until > 11.2


# -- private stream -> execution reports ------------------------------------------------------------
class Listener:
    def __init__(self) -> None:
        self.reports = []

    def on_execution_report(self, r) -> None:
        self.reports.append(r)

    def on_venue_connected(self) -> None:
        pass

    def on_venue_disconnected(self, reason: str) -> None:
        pass


def venue_with_order(qty: float = 0.003, market: str = "linear"):
    v = BybitVenue(BybitVenueConfig(market=market, **KEYS))
    spec = spec_from_instrument(SPOT_BTC if market == "spot" else LINEAR_BTC, market)
    v._prepare(spec)
    v._by_venue_symbol = {"BTCUSDT": spec}
    v.connected = True
    sent: list[bytes] = []
    v._write = sent.append
    v._listener = listener = Listener()
    v.send_new_order(Order(1, "BTC-USDT", Side.BUY, qty, 60000.0))
    return v, listener, f"{v._prefix}1", sent


def order_msg(link: str, status: str, cum: str = "0", reason: str = "EC_NoError") -> bytes:
    return json.dumps({"topic": "order.linear", "id": "1", "creationTime": 1, "data": [{
        "category": "linear", "symbol": "BTCUSDT", "orderId": "oid-1", "orderLinkId": link, "side": "Buy",
        "orderStatus": status, "cumExecQty": cum, "rejectReason": reason, "updatedTime": "1700000000000"}]}).encode()  # fmt: skip


def exec_msg(link: str, exec_id: str, qty: str, price: str, maker: bool, fee: str = "0.01",
             fee_currency: str = "USDT", category: str = "linear") -> bytes:  # fmt: skip
    return json.dumps({"topic": f"execution.{category}", "id": "2", "creationTime": 1, "data": [{
        "category": category, "symbol": "BTCUSDT", "orderId": "oid-1", "orderLinkId": link, "side": "Buy",
        "execId": exec_id, "execPrice": price, "execQty": qty, "execType": "Trade", "execFee": fee,
        "feeCurrency": fee_currency, "isMaker": maker, "leavesQty": "0", "execTime": "1700000000001"}]}).encode()  # fmt: skip


def test_new_partial_fill_and_cancel_become_reports_with_cum_qty_and_liquidity():
    v, listener, link, sent = venue_with_order()
    [create] = unframe(sent[0])
    assert json.loads(create)["args"][0]["orderLinkId"] == link
    v._on_private(order_msg(link, "New"), 5)
    v._on_private(exec_msg(link, "e1", "0.001", "60000", maker=True), 6)
    v._on_private(exec_msg(link, "e1", "0.001", "60000", maker=True), 7)  # the same execution again
    v._on_private(order_msg(link, "PartiallyFilled", "0.001"), 8)
    v._on_private(order_msg(link, "Cancelled", "0.001"), 9)
    got = [
        (r.exec_type, r.cum_qty, r.last_qty, r.last_px, r.liquidity, r.receipt_ns) for r in listener.reports
    ]
    assert got == [
        (ExecType.NEW, 0.0, 0.0, 0.0, 0, 5),
        (ExecType.PARTIAL_FILL, 0.001, 0.001, 60000.0, Liquidity.MAKER, 6),
        (ExecType.CANCELED, 0.001, 0.0, 0.0, 0, 9),
    ]
    assert v.duplicate_executions == 1 and v.fees_charged == {"USDT": 0.01}
    assert {r.symbol for r in listener.reports} == {"BTC-USDT"} and listener.reports[0].order_id == 1


def test_a_fill_arriving_before_the_new_makes_no_late_new_and_the_last_fill_is_a_fill():
    v, listener, link, _ = venue_with_order(0.002)
    v._on_private(exec_msg(link, "e1", "0.001", "60000", maker=False), 1)
    v._on_private(exec_msg(link, "e2", "0.001", "59999", maker=False), 2)
    v._on_private(order_msg(link, "New"), 3)
    v._on_private(order_msg(link, "Filled", "0.002"), 4)
    assert [(r.exec_type, r.cum_qty, r.liquidity) for r in listener.reports] == [
        (ExecType.PARTIAL_FILL, 0.001, Liquidity.TAKER),
        (ExecType.FILL, 0.002, Liquidity.TAKER),
    ]


def test_a_rejected_order_carries_the_venues_reason_and_messages_of_others_are_ignored():
    v, listener, link, _ = venue_with_order()
    v._on_private(order_msg("someone-elses-order", "New"), 1)
    v._on_private(order_msg(link, "Rejected", reason="EC_PostOnlyWillTakeLiquidity"), 2)
    assert [r.exec_type for r in listener.reports] == [ExecType.REJECTED]
    assert v.foreign_updates == 1 and v.reject_reasons == {"EC_PostOnlyWillTakeLiquidity": 1}


def test_the_hot_path_refuses_without_a_connection_and_with_an_unknown_symbol():
    v, _, _, sent = venue_with_order()
    with pytest.raises(ValueError, match="ETH-BTC is not a trading linear symbol"):
        v.send_new_order(Order(2, "ETH-BTC", Side.BUY, 1, 1))
    v.connected = False
    with pytest.raises(ConnectionError):
        v.send_new_order(Order(3, "BTC-USDT", Side.BUY, 0.001, 60000.0))
    v.connected = True
    v.cork()
    v.send_new_order(Order(4, "BTC-USDT", Side.BUY, 0.001, 60000.0))
    v.send_cancel(5, 4, "BTC-USDT")
    assert len(sent) == 1  # held
    v.uncork()
    assert [json.loads(m)["op"] for m in unframe(sent[1])] == ["order.create", "order.cancel"]  # one write


# (market, execFee, feeCurrency, execPrice) of a 0.001 BTC fill -> the report's fee in USDT
FEE_CASES = [
    ("linear", "0.042007", "USDT", "60010", 0.042007),
    ("linear", "-0.006001", "", "60010", -0.006001),  # a maker rebate; trade history leaves feeCurrency empty
    ("spot", "0.060010", "USDT", "60010", 0.060010),
    ("spot", "0.000001", "BTC", "60010", 0.000001 * 60010),  # valued at the fill's price
    ("spot", "0.01", "MNT", "60010", None),  # a coin the venue cannot value: the engine's rate
    ("spot", "0.01", "", "60010", None),
    ("spot", "", "USDT", "60010", None),
    ("spot", "0.000001", "BTC", "", None),
]


def test_fills_carry_bybits_fee_in_the_quote_coin_or_none_when_it_cannot_be_valued():
    got = []
    for market, fee, coin, px, _ in FEE_CASES:
        v, listener, link, _ = venue_with_order(0.001, market)
        v._on_private(exec_msg(link, "e1", "0.001", px, maker=False, fee=fee, fee_currency=coin,
                               category=market), 1)  # fmt: skip
        [r] = listener.reports
        assert r.exec_type == ExecType.FILL and r.last_qty == 0.001
        got.append(r.fee)
    want = [case[-1] for case in FEE_CASES]
    assert [g is None for g in got] == [w is None for w in want], got
    assert [g for g in got if g is not None] == pytest.approx([w for w in want if w is not None], rel=1e-12)


def test_an_execution_partly_applied_from_rest_state_carries_the_fee_of_the_part_it_reports():
    """The order's REST state showed 0.001 filled (no fee known: the engine's rate); then an execution
    of 0.002 comes in of which 0.001 is new: its report carries half of that execution's fee."""
    v, listener, link, _ = venue_with_order(0.003)
    v._settle(v._get(1), {"orderLinkId": link, "orderId": "oid-1", "orderStatus": "PartiallyFilled",
                          "cumExecQty": "0.001", "avgPrice": "60000", "updatedTime": "1700000000000"}, 1)  # fmt: skip
    v._on_private(exec_msg(link, "e2", "0.002", "60000", maker=True, fee="0.024"), 2)
    assert [(r.cum_qty, r.last_qty, r.fee) for r in listener.reports] == [
        (0.001, 0.001, None),
        (pytest.approx(0.002), pytest.approx(0.001), pytest.approx(0.012)),
    ]
    assert v.fees_charged == {"USDT": 0.024}  # the venue's word, whole

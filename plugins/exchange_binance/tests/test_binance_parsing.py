"""Binance parsing and config on the recorded frames (no network)."""

from __future__ import annotations

import json

import pytest
from latentspeed_exchange_binance.config import BinanceConfig
from latentspeed_exchange_binance.feed import BinanceFeed
from latentspeed_exchange_binance.parsing import (
    Depth,
    ServerShutdown,
    combined_url,
    decode,
    parse_snapshot,
    parse_trade,
    snapshot_url,
    streams,
    venue_symbol,
)

from latentspeed_core.book import L2Book, parse_levels
from latentspeed_core.config import ConfigError, validate
from latentspeed_core.testing import RecordingSink, fixtures_dir

B = fixtures_dir() / "binance"


def test_trade_frames():
    ev = decode((B / "ws_spot_trade_combined_btcusdt_2024.json").read_bytes())
    t = parse_trade(ev, "BTC-USDT", 5)
    assert (t.exchange, t.symbol, t.price, t.amount, t.side, t.trade_id) == (
        "BINANCE", "BTC-USDT", 61837.63, 0.02, "sell", "3735683259"
    )  # fmt: skip
    assert t.timestamp_ns == 1723161255342 * 1_000_000 and t.receipt_ns == 5
    ev = decode((B / "ws_usdm_trade_combined_btcusdt_2024.json").read_bytes())
    t = parse_trade(ev, "BTC-USDT", 0)
    assert (t.price, t.amount, t.side, t.trade_id) == (61800.3, 0.006, "buy", "5266583935")
    legacy = parse_trade(
        decode((B / "ws_spot_trade_combined_ethusdt_2021_legacy_b_a_fields_nautilus.json").read_bytes()),
        "ETH-USDT",
        0,
    )
    assert (legacy.price, legacy.side, legacy.trade_id) == (4149.74, "sell", "705291099")
    agg = parse_trade(decode((B / "docs/ws_aggTrade_payload.json").read_bytes()), "BNB-BTC", 0)
    assert (agg.price, agg.amount, agg.side, agg.trade_id) == (0.001, 100.0, "sell", "12345")


def test_depth_and_snapshot_frames():
    ev = decode((B / "ws_spot_depthUpdate_100ms_combined_btcusdt_2024.json").read_bytes())
    assert type(ev) is Depth and ev.s == "BTCUSDT" and (ev.U, ev.u, ev.pu) == (50093239189, 50093239202, -1)
    assert parse_levels(ev.b)[0] == (61737.63, 0.0) and parse_levels(ev.a)[0] == (61837.64, 1.54698) and ev.E == 1723161255208
    ev = decode((B / "ws_usdm_depthUpdate_0ms_combined_btcusdt_2024.json").read_bytes())
    assert ev.pu == 5123107831937 and ev.T == 1723161256298
    raw = decode((B / "docs/ws_diff_depth_depthUpdate_payload.json").read_bytes())  # unwrapped form
    assert type(raw) is Depth and raw.s == "BNBBTC"
    old = decode((B / "ws_spot_depthUpdate_100ms_combined_btcusdt_2021_TRIMMED_cmp.json").read_bytes())
    assert type(old) is Depth
    assert type(decode((B / "docs/ws_serverShutdown_combined.json").read_bytes())) is ServerShutdown
    assert type(decode((B / "docs/ws_serverShutdown_raw.json").read_bytes())) is ServerShutdown
    assert decode((B / "docs/subscribe_response.json").read_bytes()) == {"result": None, "id": 1}
    for line in (B / "docs/ws_error_responses.jsonl").read_bytes().splitlines():
        assert "code" in decode(line)
    # a malformed level is rejected whole when the levels are applied, before the book changes
    ev = decode(
        b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","s":"BTCUSDT","U":1,"u":2,"b":[["1","2"]],"a":[["1","x"]]}}'
    )
    book = L2Book("BTC-USDT")
    with pytest.raises(ValueError):
        book.apply_json(ev.b, ev.a)
    assert len(book) == 0
    with pytest.raises(ValueError):
        decode(b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","s":"BTCUSDT","U":1,"u":2,"b":[]}}')
    lid, bids, asks = parse_snapshot((B / "rest_spot_api_v3_depth_btcusdt_limit1000_2024.json").read_bytes())
    assert lid == 50093239218 and len(bids) == len(asks) == 1000
    assert bids[0] == (61837.63, 3.78826) and bids[0][0] > bids[1][0] and asks[0][0] < asks[1][0]
    lid, bids, asks = parse_snapshot((B / "rest_usdm_fapi_v1_depth_btcusdt_2024.json").read_bytes())
    assert lid == 5123107852948 and bids[0] == (61800.2, 2.909)
    with pytest.raises(ValueError):
        parse_snapshot(b'{"code":-1121,"msg":"Invalid symbol."}')


def test_every_recorded_session_frame_parses():
    for name in (
        "seq_spot_btcusdt_2024-08-08_hftbacktest_first1000.jsonl",
        "seq_usdm_btcusdt_2024-08-08_hftbacktest_first1000.jsonl",
    ):
        for line in (B / name).read_bytes().splitlines():
            ev = decode(line)
            if isinstance(ev, dict):  # the inline REST answer and bookTicker frames take the slow path
                assert "lastUpdateId" in ev or ev["u"] > 0
            else:
                assert ev.s == "BTCUSDT"


def test_symbols_streams_urls():
    assert venue_symbol("BTC-USDT") == "BTCUSDT" and venue_symbol("blz-eth") == "BLZETH"
    assert streams(["BTC-USDT"], "100ms", "trade") == ["btcusdt@depth@100ms", "btcusdt@trade"]
    assert streams(["ETH-USDT"], "1000ms", None) == ["ethusdt@depth"]
    assert streams(["ETH-USDT"], "250ms", "aggTrade", "usdm") == ["ethusdt@depth", "ethusdt@aggTrade"]
    assert streams(["ETH-USDT"], "0ms", None, "usdm") == ["ethusdt@depth@0ms"]
    assert combined_url("wss://x/stream", ["a", "b"]) == "wss://x/stream?streams=a/b"
    assert snapshot_url("https://api.binance.com/", "spot", "BTC-USDT", 1000) == (
        "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000"
    )
    assert snapshot_url("https://fapi.binance.com", "usdm", "BTC-USDT", 500).startswith(
        "https://fapi.binance.com/fapi/v1/depth?"
    )


def test_config_defaults_and_errors():
    c = validate(BinanceConfig, {"exchange": "binance", "symbols": ["btc-usdt"]})
    assert (c.market, c.ws_url, c.rest_url, c.depth_speed) == (
        "spot", "wss://stream.binance.com:9443/stream", "https://api.binance.com", "100ms"
    )  # fmt: skip
    assert c.symbols == ["BTC-USDT"]
    c = validate(BinanceConfig, {"exchange": "binance", "market": "usdm", "symbols": ["BTC-USDT"]})
    assert (c.ws_url, c.trades_ws_url, c.rest_url) == (  # USD-M: the 2026 routes, depth and trades apart
        "wss://fstream.binance.com/public/stream", "wss://fstream.binance.com/market/stream",
        "https://fapi.binance.com",
    )  # fmt: skip
    for bad, where in (
        ({"exchange": "binance", "depht": 5}, "depht"),
        ({"exchange": "binance", "symbols": ["BTCUSDT"]}, "symbols"),
        ({"exchange": "binance", "market": "coinm"}, "market"),
        ({"exchange": "binance", "market": "usdm", "snapshot_limit": 999}, "snapshot_limit"),
        ({"exchange": "binance", "depth_speed": "250ms"}, "depth_speed"),
        ({"exchange": "binance", "ws_url": "http://x"}, "ws_url"),
    ):
        with pytest.raises(ConfigError) as err:
            validate(BinanceConfig, bad, "feeds.yml")
        assert where in str(err.value)


def test_sans_io_sync_from_recorded_session_and_bad_inputs():
    """Drive the feed as the replayer does: frames and the REST answer, no network."""
    feed = BinanceFeed(validate(BinanceConfig, {"exchange": "binance", "symbols": ["BTC-USDT"]}))
    feed.sink = sink = RecordingSink(depth=1)
    feed.deliver_connect(1)
    lines = (B / "seq_spot_btcusdt_2024-08-08_hftbacktest_first1000.jsonl").read_bytes().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(b'{"lastUpdateId"'):
            feed.deliver_rest("BTCUSDT", line, i)  # where the recording fetched it
        elif b"bookTicker" not in line:
            feed.deliver_frame(line, i)
    assert feed.synced("BTC-USDT") and feed.stats.errors == 0 and feed.stats.resyncs == 0
    assert len(sink.trades) == 152
    assert sink.books and sink.books[-1].bids[0][0] < sink.books[-1].asks[0][0] and sink.violations == []
    for bad in (b"not json", b"[1,2]", b'{"stream":"x@foo","data":{"e":"foo"}}', b'{"code":2,"msg":"Invalid request"}',
                json.dumps({"stream": "ethusdt@trade", "data": {"e": "trade", "s": "ETHUSDT"}}).encode()):  # fmt: skip
        feed.deliver_frame(bad, 0)
    assert feed.stats.errors == 5 and feed.synced("BTC-USDT")
    feed.deliver_frame(b'{"result":null,"id":1}', 0)  # a request's answer is not an error
    assert feed.stats.errors == 5

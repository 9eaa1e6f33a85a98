"""The pure parsers and the feed's frame handling on recorded dYdX v4 indexer frames."""

from __future__ import annotations

import json
from datetime import datetime

import orjson
import pytest
from latentspeed_exchange_dydx.config import DydxConfig
from latentspeed_exchange_dydx.feed import DydxFeed
from latentspeed_exchange_dydx.parsing import (
    WS_URL,
    error_target,
    iso_to_ns,
    parse_trades,
    snapshot_levels,
    subscribe_message,
)

from latentspeed_core.config import ConfigError, validate


def make_feed(kit, **cfg):
    feed = DydxFeed(DydxConfig(**{"symbols": ["ETH-USD"], **cfg}))
    sink = kit.Sink()
    feed.sink = sink
    feed.deliver_connect(1)
    return feed, sink


def test_subscribe_request_matches_the_documented_shape(kit):
    doc = json.loads(kit.fixture_path("docs/ws_subscribe_request_v4_trades_docs.json").read_text())
    msg = json.loads(subscribe_message("v4_trades", "BTC-USD", False))
    assert {k: msg[k] for k in doc} == doc
    assert msg["batched"] is False
    assert json.loads(subscribe_message("v4_orderbook", "ETH-USD", True)) == {
        "type": "subscribe", "channel": "v4_orderbook", "id": "ETH-USD", "batched": True,
    }  # fmt: skip


def test_config_defaults_and_strictness(kit):
    cfg = validate(DydxConfig, {"exchange": "dydx", "symbols": ["btc-usd"]})
    assert cfg.ws_url == WS_URL == "wss://indexer.dydx.trade/v4/ws"
    assert cfg.symbols == ["BTC-USD"] and cfg.batched is False and cfg.trades is True
    with pytest.raises(ConfigError, match="unknown key"):
        validate(DydxConfig, {"exchange": "dydx", "symbols": ["BTC-USD"], "depth": 10})
    with pytest.raises(ConfigError, match="ws_url"):
        validate(DydxConfig, {"exchange": "dydx", "ws_url": "http://x"})


def test_feed_subscribes_book_and_trades_per_market(kit):
    feed = DydxFeed(DydxConfig(symbols=["BTC-USD", "ETH-USD"], batched=True))
    subs = [json.loads(m) for m in feed.subscribe_messages()]
    assert {(s["channel"], s["id"], s["batched"]) for s in subs} == {
        (c, m, True) for c in ("v4_orderbook", "v4_trades") for m in ("BTC-USD", "ETH-USD")
    }
    no_trades = DydxFeed(DydxConfig(symbols=["BTC-USD"], trades=False))
    assert [json.loads(m)["channel"] for m in no_trades.subscribe_messages()] == ["v4_orderbook"]


def test_snapshot_levels_of_the_recorded_100x100_snapshot(kit):
    contents = kit.load_frame(kit.SNAPSHOT)["contents"]
    bids = snapshot_levels(contents["bids"])
    asks = snapshot_levels(contents["asks"])
    assert len(bids) == len(asks) == 100
    assert bids[0] == (3393.2, 7.795) and asks[0] == (3393.5, 4.946)
    assert bids[-1] == (3260.0, 0.15) and asks[-1] == (3564.8, 0.15)
    # the derived (tardis) snapshot uses the same object form
    grt = kit.load_frame("derived/tardis_02_v4_orderbook_subscribed_GRT-USD.json")["contents"]
    assert snapshot_levels(grt["bids"]) == [(0.1547, 35520.0)]
    assert snapshot_levels(None) == []


def test_iso_timestamps_to_ns(kit):
    for stamp in ("2024-07-24T19:12:35.705Z", "2024-08-22T23:59:58.855Z", "2024-12-02T18:45:33.548Z"):
        dt = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert iso_to_ns(stamp) == int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    assert iso_to_ns("2024-01-01T00:00:00Z") == 1704067200 * 1_000_000_000
    assert iso_to_ns("2024-01-01T00:00:00.123456789Z") == 1704067200_123456789


def test_trades_of_recorded_frames(kit):
    trades = parse_trades(kit.load_frame(kit.TRADES)["contents"], "ETH-USD", 42)
    assert [(t.price, t.amount, t.side, t.trade_id) for t in trades] == [
        (3392.9, 0.01, "buy", "014206cf0000000200000002"),
        (3392.9, 1.738, "buy", "014206cf000000020000000e"),
    ]
    assert trades[0].exchange == "DYDX" and trades[0].symbol == "ETH-USD" and trades[0].receipt_ns == 42
    assert trades[0].timestamp_ns == iso_to_ns("2024-07-24T19:12:35.705Z")
    # DELEVERAGED is an off-book transfer at the bankruptcy price: skipped unless asked for
    delev = kit.load_frame(kit.TRADES_DELEVERAGED)["contents"]
    assert [t.price for t in parse_trades(delev, "ETH-USD", 0)] == [2322.8, 2322.8]
    with_delev = parse_trades(delev, "ETH-USD", 0, deleveraged=True)
    assert with_delev[-1].side == "sell" and with_delev[-1].price == pytest.approx(2340.7442700369913)
    # LIQUIDATED trades are market prints: kept
    btc = parse_trades(
        kit.load_frame("derived/tardis_01_v4_trades_channel_data_BTC-USD.json")["contents"], "BTC-USD", 0
    )
    assert [(t.side, t.price) for t in btc] == [("buy", 60397.0), ("sell", 22.87)]
    # ids already in the subscribed history are not new
    assert (
        parse_trades(kit.load_frame(kit.TRADES)["contents"], "ETH-USD", 0, seen={"014206cf0000000200000002"})[
            0
        ].amount
        == 1.738
    )


def test_error_target_old_and_new_indexer_formats(kit):
    assert error_target(kit.load_frame(kit.ERROR)) == ("v4_orderbook", None)
    new = {"type": "error", "message": "Internal error, could not fetch data for subscription: v4_trades.",
           "channel": "v4_trades", "id": "BTC-USD"}  # fmt: skip
    assert error_target(new) == ("v4_trades", "BTC-USD")
    assert error_target({"type": "error", "message": "Invalid message type: foo"}) == (None, None)


def test_recorded_session_builds_the_reference_book(kit):
    """connected → subscribed → channel_batch_data (unattributed recording): one book per message."""
    feed, sink = make_feed(kit)
    ref = kit.RefBook()
    for msg in kit.load_session():
        feed.deliver_frame(orjson.dumps(msg), 5)
        if msg["type"] != "connected":
            ref.apply_message(msg)
    assert sink.count("ETH-USD") == 2  # the snapshot, then ONE emission for the 4-content batch
    assert sink.last("ETH-USD") == ref.levels()
    bids, asks = sink.last("ETH-USD")
    assert bids[0] == (3040.0, 0.658) and asks[0] == (3073.1, 0.022)
    assert 3102.1 not in [p for p, _ in asks] and (3101.4, 0.645) in asks
    assert feed.stats.errors == 0 and feed.connection_id == "9a75aff4-923a-4f43-9197-81eefceaacd1"


def test_batch_on_the_100x100_snapshot_uncrossed_by_offsets(kit):
    """The recorded batch (message_id 17) is from another moment than the snapshot (id 4): its
    asks cross every snapshot bid, and the offsets rule removes the older (snapshot) bids."""
    feed, sink = make_feed(kit)
    snap, batch = kit.load_frame(kit.SNAPSHOT), kit.load_frame(kit.BATCH)
    feed.deliver_frame(json.dumps(snap), 1)
    feed.deliver_frame(json.dumps(batch), 2)
    ref = kit.RefBook()
    ref.apply_message(snap)
    ref.apply_message(batch)
    assert sink.count("ETH-USD") == 2
    assert sink.last("ETH-USD") == ref.levels()
    assert sink.violations == []  # never a crossed book
    assert feed.books["ETH-USD"].uncrossed == 100
    bids, asks = sink.last("ETH-USD")
    assert bids[0][0] < asks[0][0] and bids[0][0] < 2400


def test_channel_data_single_update_from_docs_and_recordings(kit):
    feed, sink = make_feed(kit, symbols=["BTC-USD"])
    feed.deliver_frame(json.dumps({"type": "subscribed", "message_id": 1, "channel": "v4_orderbook", "id": "BTC-USD",
                                   "contents": {"bids": [{"price": "65920", "size": "1"}, {"price": "27773", "size": "3"}],
                                                "asks": [{"price": "66000", "size": "2"}]}}), 1)  # fmt: skip
    feed.deliver_frame(
        kit.fixture_path("docs/ws_v4_orderbook_channel_data_btc-usd_docs.json").read_bytes(), 2
    )
    feed.deliver_frame(kit.fixture_path("ws_v4_orderbook_channel_data_btc-usd_nautilus.json").read_bytes(), 3)
    assert sink.last("BTC-USD") == ([(27773.0, 1.986168516)], [(66000.0, 2.0)])
    assert sink.count("BTC-USD") == 3


def test_trades_flow_and_subscribed_history_is_not_published(kit):
    feed, sink = make_feed(kit)
    live = kit.load_frame(kit.TRADES)
    history = dict(live, type="subscribed", message_id=1)
    feed.deliver_frame(json.dumps(history), 1)
    assert sink.trades == []
    feed.deliver_frame(json.dumps(live), 2)  # the same ids again: already history
    assert sink.trades == []
    feed.deliver_frame(kit.fixture_path(kit.TRADES_DELEVERAGED).read_bytes(), 3)
    assert [t.trade_id for t in sink.trades] == ["015034b9000000020000000e", "015034b90000000200000011"]
    assert feed.stats.trades == 2


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "mystery"}',
        b'{"type": "channel_data", "channel": "v4_markets", "contents": {}}',
        b'{"type": "channel_data", "channel": "v4_orderbook", "id": "DOGE-USD", "message_id": 3, "contents": {}}',
        b'{"type": "channel_data", "channel": "v4_orderbook", "message_id": 3}',
    ],
)
def test_malformed_or_unknown_frames_are_counted_and_skipped(kit, raw):
    feed, sink = make_feed(kit)
    feed.deliver_frame(kit.fixture_path(kit.SNAPSHOT).read_bytes(), 1)
    before = sink.last("ETH-USD")
    feed.deliver_frame(raw, 2)
    assert feed.stats.errors == 1
    assert sink.count("ETH-USD") == 1 and sink.last("ETH-USD") == before
    feed.deliver_frame(
        kit.fixture_path("ws_v4_orderbook_channel_batch_data_eth-usd_41updates_nautilus.json").read_bytes(), 3
    )
    assert sink.count("ETH-USD") == 2  # still working


def test_malformed_levels_resync_the_book(kit):
    """A level that does not parse may leave the message half applied: the book is resubscribed."""
    feed, sink = make_feed(kit)
    feed.deliver_frame(kit.fixture_path(kit.SNAPSHOT).read_bytes(), 1)
    bad = {"type": "channel_data", "channel": "v4_orderbook", "id": "ETH-USD", "message_id": 9,
           "contents": {"bids": [["3393.2", "1"], ["abc", "1"]]}}  # fmt: skip
    feed.deliver_frame(json.dumps(bad), 2)
    assert feed.stats.errors == 1 and feed.stats.resyncs == 1
    assert not feed.books["ETH-USD"].ready and sink.count("ETH-USD") == 1
    feed.deliver_frame(json.dumps(dict(kit.load_frame(kit.SNAPSHOT), message_id=12)), 3)
    assert sink.count("ETH-USD") == 2 and sink.last("ETH-USD")[0][0] == (3393.2, 7.795)

"""Parsers and the sans-IO book logic of the Bybit feed, on the recorded frames in fixtures/bybit."""

from __future__ import annotations

import copy
import json

import orjson
import pytest
from bybit_testkit import (
    dumps,
    fixture_path,
    load_frame,
    load_session,
    reference,
    snapshot_frame,
)
from latentspeed_exchange_bybit import parsing
from latentspeed_exchange_bybit.config import BybitConfig
from latentspeed_exchange_bybit.feed import BybitFeed

from latentspeed_core.config import ConfigError, validate
from latentspeed_core.testing import RecordingSink, book_levels

XRP_TOPIC = "orderbook.500.XRPUSDT"


def make_feed(**overrides) -> tuple[BybitFeed, RecordingSink]:
    cfg = {"exchange": "bybit", "symbols": ["XRP-USDT"], "depth": 500, **overrides}
    feed = BybitFeed(BybitConfig.model_validate(cfg))
    sink = RecordingSink()
    feed.sink = sink
    feed.on_connect()
    return feed, sink


def feed_frames(feed: BybitFeed, frames) -> None:
    for i, f in enumerate(frames):
        feed.deliver_frame(f if isinstance(f, str | bytes) else dumps(f), 1_000 + i)


# -- pure parsers -----------------------------------------------------------------------------------
def test_symbol_and_topics():
    assert parsing.to_venue_symbol("BTC-USDT") == "BTCUSDT"
    assert parsing.to_venue_symbol("eth-usd") == "ETHUSD"
    assert parsing.book_topic(50, "BTCUSDT") == "orderbook.50.BTCUSDT"
    assert parsing.trade_topic("BTCUSDT") == "publicTrade.BTCUSDT"


def test_batch_args_respects_count_and_characters():
    topics = [f"orderbook.50.SYM{i}USDT" for i in range(23)]
    batches = parsing.batch_args(topics, 10)
    assert [len(b) for b in batches] == [10, 10, 3]
    assert [t for b in batches for t in b] == topics
    by_chars = parsing.batch_args(topics, None, max_chars=100)
    assert all(sum(len(t) + 3 for t in b) <= 100 for b in by_chars)
    assert [t for b in by_chars for t in b] == topics


def test_levels_parse_strings():
    snap = load_frame("ws_linear_orderbook500_snapshot_xrpusdt_2024-12-01_nautilus.json")
    bids = parsing.levels(snap["data"]["b"])
    assert bids[0] == (1.9531, 6203.0)
    assert len(bids) == 500
    assert all(bids[i][0] > bids[i + 1][0] for i in range(len(bids) - 1))  # venue sends best first


@pytest.mark.parametrize(
    "rel,symbol,count,first",
    [
        (
            "ws_spot_publicTrade_btcusdt_2023_bbgo.json",
            "BTC-USDT",
            1,
            (25816.27, 0.000083, "sell", "2290000000068683805"),
        ),
        (
            "docs/ws_publicTrade_btcusdt.json",
            "BTC-USDT",
            1,
            (16578.5, 0.001, "buy", "20f43950-d8dd-5b31-9112-a178eb6023af"),
        ),
        (
            "unattributed/ws_linear_publicTrade_btcusdt_3trades_2023-10-06_A.json",
            "BTC-USDT",
            3,
            (27473.3, 0.003, "buy", "5252c117-9258-5fc7-8b08-23998055be9e"),
        ),
        (
            "derived/tardis_spot_00_publicTrade_BTCUSDT_snapshot.json",
            "BTC-USDT",
            4,
            (28165.38, 0.041732, "sell", "2290000000050703789"),
        ),
        (
            "derived/tardis_linear_inverse_00_publicTrade_BTCUSD_snapshot.json",
            "BTC-USD",
            3,
            (28560.5, 5823.0, "buy", "0cbf2330-952d-5d03-a462-4bf826c867af"),
        ),
    ],
)
def test_trades_from_recorded_frames(rel, symbol, count, first):
    msg = load_frame(rel)
    trades = parsing.trades(msg, symbol, 42)
    assert len(trades) == count
    t = trades[0]
    assert (t.price, t.amount, t.side, t.trade_id) == first
    assert t.exchange == "BYBIT" and t.symbol == symbol and t.receipt_ns == 42
    assert t.timestamp_ns == msg["data"][0]["T"] * 1_000_000


@pytest.mark.parametrize(
    "rel,kind",
    [
        ("ws_public_pong_no_req_id_bbgo.json", "pong"),
        ("ws_public_pong_with_req_id_bbgo.json", "pong"),
        ("ws_private_pong_no_req_id_bbgo.json", "pong"),
        ("docs/ws_pong_public_spot.json", "pong"),
        ("docs/ws_pong_public_linear_inverse.json", "pong"),
        ("docs/ws_pong_public_option_spread.json", "pong"),
        ("unattributed/ws_linear_pong_B.json", "pong"),
        ("docs/ws_subscribe_response_public_spot.json", "subscribe"),
        ("docs/ws_subscribe_response_public_linear_inverse.json", "subscribe"),
        ("ws_spot_subscribe_response_bbgo.json", "subscribe"),
        ("unattributed/ws_linear_subscribe_error_already_subscribed_B.json", "subscribe"),
        ("docs/ws_auth_response_success.json", "unknown"),
    ],
)
def test_op_kinds(rel, kind):
    assert parsing.op_kind(load_frame(rel)) == kind


# -- config -------------------------------------------------------------------------------------------
def test_config_defaults_per_market():
    assert BybitConfig(symbols=["BTC-USDT"]).ws_url == "wss://stream.bybit.com/v5/public/linear"
    assert BybitConfig(symbols=["BTC-USDT"], market="spot").ws_url == "wss://stream.bybit.com/v5/public/spot"
    assert BybitConfig(market="inverse").ws_url == "wss://stream.bybit.com/v5/public/inverse"
    cfg = BybitConfig(symbols=["btc-usdt"], ws_url="ws://127.0.0.1:1/x")
    assert cfg.ws_url == "ws://127.0.0.1:1/x" and cfg.symbols == ["BTC-USDT"] and cfg.market == "linear"


@pytest.mark.parametrize(
    "data,path,reason",
    [
        ({"exchange": "bybit", "market": "spot", "depth": 500}, "feeds[0].depth", "not offered on spot"),
        ({"exchange": "bybit", "depth": 7}, "feeds[0].depth", "not offered on linear"),
        ({"exchange": "bybit", "market": "option"}, "feeds[0].market", ""),
        ({"exchange": "bybit", "ws_url": "http://x"}, "feeds[0].ws_url", "ws://"),
        ({"exchange": "bybit", "symbols": ["BTCUSDT"]}, "feeds[0].symbols", "BASE-QUOTE"),
        ({"exchange": "bybit", "market": "spot", "subscribe_batch": 11}, "feeds[0].subscribe_batch", "10"),
        ({"exchange": "bybit", "dept": 50}, "feeds[0].dept", "unknown key"),
    ],
)
def test_config_errors(data, path, reason):
    with pytest.raises(ConfigError) as err:
        validate(BybitConfig, data, "ms.yml", prefix="feeds[0]")
    assert err.value.path == path
    assert reason in err.value.reason


def test_subscribe_messages_batched_per_market():
    symbols = [f"S{i}-USDT" for i in range(8)]
    spot = BybitFeed(BybitConfig(symbols=symbols, market="spot"))
    msgs = [json.loads(m) for m in spot.subscribe_messages()]
    assert [len(m["args"]) for m in msgs] == [10, 6]
    assert all(m["op"] == "subscribe" for m in msgs)
    args = [a for m in msgs for a in m["args"]]
    assert args[:2] == ["orderbook.50.S0USDT", "publicTrade.S0USDT"] and len(set(args)) == 16
    linear = BybitFeed(BybitConfig(symbols=symbols, subscribe_batch=100, trades=False))
    assert [len(json.loads(m)["args"]) for m in linear.subscribe_messages()] == [8]
    assert linear.ping_message() == '{"op":"ping"}'


# -- books: the recorded 500-level session ------------------------------------------------------
def test_recorded_session_matches_reference_level_by_level():
    frames = load_session()
    feed, sink = make_feed()
    feed_frames(feed, frames)
    expected = reference(frames).levels()
    assert book_levels(feed.books["XRP-USDT"].book) == expected
    assert sink.last("XRP-USDT") == expected
    assert len(sink.books) == 25 and feed.stats.books == 25
    assert feed.stats.errors == 0 and feed.stats.resyncs == 0
    assert sink.books[-1].timestamp_ns == frames[-1]["ts"] * 1_000_000
    # every intermediate book too
    feed2, _ = make_feed()
    for i, f in enumerate(frames):
        feed2.deliver_frame(dumps(f), i)
        assert book_levels(feed2.books["XRP-USDT"].book) == reference(frames[: i + 1]).levels()


def test_single_frame_fixtures_agree_with_session():
    snap = load_frame("ws_linear_orderbook500_snapshot_xrpusdt_2024-12-01_nautilus.json")
    delta = load_frame("ws_linear_orderbook500_delta_xrpusdt_2024-12-01_nautilus.json")
    feed, _ = make_feed()
    feed_frames(feed, [snap, delta])
    assert feed.stats.errors == 0
    assert book_levels(feed.books["XRP-USDT"].book) == reference(load_session()[:2]).levels()


def test_level1_session_unattributed():
    frames = load_session(
        "unattributed/seq_linear_orderbook1_btcusdt_2023-10-06_snapshot_plus_4_deltas.jsonl"
    )
    feed, sink = make_feed(symbols=["BTC-USDT"], depth=1)
    feed_frames(feed, frames)
    assert book_levels(feed.books["BTC-USDT"].book) == reference(frames).levels()
    assert len(sink.books) == 5 and feed.stats.errors == 0


def test_derived_pairs_spot_and_linear():
    feed, _ = make_feed(symbols=["BTC-USDT"], depth=50, market="spot")
    snap = load_frame("derived/tardis_spot_04_orderbook_50_BTCUSDT_snapshot.json")
    delta = load_frame("derived/tardis_spot_05_orderbook_50_BTCUSDT_delta.json")
    feed_frames(feed, [snap, delta])
    assert book_levels(feed.books["BTC-USDT"].book) == reference([snap, delta]).levels()
    feed, _ = make_feed(symbols=["BTC-PERP"], depth=50)
    frames = [
        load_frame("derived/tardis_linear_inverse_04_orderbook_50_BTCPERP_snapshot.json"),
        load_frame("derived/tardis_linear_inverse_05_orderbook_50_BTCPERP_delta.json"),
    ]
    feed_frames(feed, frames)
    assert book_levels(feed.books["BTC-PERP"].book) == ([(28555.2, 0.677)], [(28555.3, 0.029)])
    assert feed.stats.errors == 0


def test_delta_before_snapshot_is_dropped():
    feed, sink = make_feed(symbols=["BTC-USDT"], depth=50, market="spot")
    feed_frames(feed, [fixture_path("ws_spot_orderbook50_delta_btcusdt_2023_bbgo.json").read_text()])
    assert feed.dropped_deltas == 1 and not sink.books and feed.stats.errors == 0


def test_zero_size_deletes_and_docs_delta():
    delta = load_frame("docs/ws_linear_orderbook50_delta_btcusdt.json")
    # a snapshot built around the documented delta: the levels it deletes exist first
    snap = {
        "topic": "orderbook.50.BTCUSDT",
        "type": "snapshot",
        "ts": delta["ts"] - 20,
        "data": {
            "s": "BTCUSDT",
            "b": [["30247.20", "1"], ["30240.00", "2"]],
            "a": [["30248.70", "3"], ["30249.60", "4"], ["30260.00", "5"]],
            "u": delta["data"]["u"] - 1,
            "seq": 1,
        },
    }
    feed, _ = make_feed(symbols=["BTC-USDT"], depth=50)
    feed_frames(feed, [snap, delta])
    book = feed.books["BTC-USDT"].book
    assert book.bid_qty(30240.0) == 0 and book.ask_qty(30248.7) == 0 and book.ask_qty(30249.6) == 0
    assert book_levels(book) == reference([snap, delta]).levels()
    assert book.best_ask() == (30249.3, 0.892)


# -- continuity rules ---------------------------------------------------------------------------------
def test_gap_triggers_resync_and_drops_until_snapshot():
    frames = load_session()
    feed, sink = make_feed()
    sent: list[str] = []
    feed.send = sent.append  # the transport is not under test here
    feed_frames(feed, frames[:5] + frames[6:9])  # frame 5 is lost
    assert feed.stats.resyncs == 1
    assert [json.loads(m)["op"] for m in sent] == ["unsubscribe", "subscribe"]
    assert all(json.loads(m)["args"] == [XRP_TOPIC] for m in sent)
    assert feed.dropped_deltas == 2 and len(sink.books) == 5
    assert len(feed.books["XRP-USDT"].book) == 0  # never publish a book with a hole in it
    # the fresh snapshot Bybit sends on resubscribe: state after frame 8
    fresh = snapshot_frame(reference(frames[:9]), XRP_TOPIC, "XRPUSDT", frames[8]["ts"])
    feed_frames(feed, [fresh, *frames[9:]])
    assert book_levels(feed.books["XRP-USDT"].book) == reference(frames).levels()
    assert feed.stats.resyncs == 1


def test_u1_is_a_restart_snapshot_even_typed_delta():
    frames = load_session()
    feed, sink = make_feed()
    feed_frames(feed, frames[:4])
    restart = snapshot_frame(reference(frames[:10]), XRP_TOPIC, "XRPUSDT", frames[9]["ts"], u=1)
    restart["type"] = "delta"  # u == 1 overwrites whatever the type says
    renumbered = copy.deepcopy(frames[10:])
    for i, f in enumerate(renumbered):
        f["data"]["u"] = 2 + i
    feed_frames(feed, [restart, *renumbered])
    assert feed.stats.resyncs == 0 and feed.stats.errors == 0
    assert book_levels(feed.books["XRP-USDT"].book) == reference(frames).levels()
    assert len(sink.books) == 4 + 1 + len(renumbered)


def test_seq_is_not_a_gap_detector():
    frames = copy.deepcopy(load_session())
    for f in frames[1:]:
        f["data"]["seq"] += 1_000  # seq jumps freely; only u matters
    feed, _ = make_feed()
    feed_frames(feed, frames)
    assert feed.stats.resyncs == 0


def test_stale_duplicate_is_skipped_and_counted():
    frames = load_session()
    feed, _ = make_feed()
    feed_frames(feed, frames[:4] + [frames[3]] + frames[4:])
    assert feed.stats.errors == 1 and feed.stats.resyncs == 0
    assert book_levels(feed.books["XRP-USDT"].book) == reference(frames).levels()


def test_crossed_book_is_never_published():
    frames = load_session()
    feed, sink = make_feed()
    sent: list[str] = []
    feed.send = sent.append
    feed_frames(feed, frames[:3])
    best_ask = feed.books["XRP-USDT"].book.best_ask()[0]
    bad = copy.deepcopy(frames[3])
    bad["data"]["b"] = [[str(best_ask + 0.001), "5"]]
    feed_frames(feed, [bad])
    assert feed.stats.resyncs == 1 and len(sink.books) == 3
    assert not any(bid >= ask for _, bid, ask, _, _ in sink.books if bid and ask)


# -- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "frame",
    [
        "not json{",
        "[1,2,3]",
        '{"foo":1}',
        dumps(load_frame("unattributed/ws_linear_tickers_delta_btcusdt_B.json")),
        dumps(load_frame("unattributed/ws_linear_subscribe_error_handler_not_found_B.json")),
        '{"topic":"orderbook.500.XRPUSDT","type":"delta","ts":1,"data":{"s":"XRPUSDT","b":[],"a":[]}}',
        '{"topic":"orderbook.500.XRPUSDT","type":"delta","ts":"x","data":{"s":"XRPUSDT","b":[],"a":[],"u":20254870}}',
        '{"topic":"orderbook.500.XRPUSDT","type":"weird","ts":1,"data":{"s":"XRPUSDT","b":[],"a":[],"u":20254870}}',
        '{"topic":"publicTrade.XRPUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"XRPUSDT","S":"Up","v":"1","p":"2","i":"x"}]}',
    ],
)
def test_bad_frames_counted_and_skipped(frame):
    frames = load_session()
    feed, sink = make_feed()
    feed_frames(feed, frames[:1])
    feed_frames(feed, [frame])
    feed_frames(feed, frames[1:])
    assert feed.stats.errors == 1
    assert not sink.trades
    assert book_levels(feed.books["XRP-USDT"].book) == reference(frames).levels()


def test_malformed_levels_resync_rather_than_corrupt():
    frames = load_session()
    feed, sink = make_feed()
    feed.send = lambda msg: None
    feed_frames(feed, frames[:2])
    bad = copy.deepcopy(frames[2])
    bad["data"]["a"].append(["oops", "1"])
    feed_frames(feed, [bad])
    assert feed.stats.errors == 1 and feed.stats.resyncs == 1 and len(sink.books) == 2


def test_trades_and_books_multi_symbol_independent():
    xrp = load_session()
    btc = load_session("unattributed/seq_linear_orderbook1_btcusdt_2023-10-06_snapshot_plus_4_deltas.jsonl")
    btc = [json.loads(json.dumps(f).replace("orderbook.1.BTCUSDT", "orderbook.500.BTCUSDT")) for f in btc]
    trade = load_frame("unattributed/ws_linear_publicTrade_btcusdt_3trades_2023-10-06_A.json")
    feed, sink = make_feed(symbols=["XRP-USDT", "BTC-USDT"])
    mixed = [x for pair in zip(xrp, btc + [None] * 30, strict=False) for x in pair if x is not None]
    feed_frames(feed, mixed[:7] + [trade] + mixed[7:])
    assert book_levels(feed.books["XRP-USDT"].book) == reference(xrp).levels()
    assert book_levels(feed.books["BTC-USDT"].book) == reference(btc).levels()
    assert [t.symbol for t in sink.trades] == ["BTC-USDT"] * 3 and feed.stats.trades == 3
    assert {s for s, *_ in sink.books} == {"XRP-USDT", "BTC-USDT"}


def test_pong_and_acks_are_not_errors():
    feed, _ = make_feed()
    for rel in (
        "docs/ws_pong_public_linear_inverse.json",
        "ws_public_pong_with_req_id_bbgo.json",
        "docs/ws_subscribe_response_public_linear_inverse.json",
    ):
        feed.deliver_frame(orjson.dumps(load_frame(rel)), 1)
    assert feed.stats.errors == 0 and feed.pongs == 2 and feed.acks == 1


def test_level1_repeated_snapshot_with_same_u():
    """Level 1: after 3 s without change Bybit re-pushes a snapshot with the previous u (docs)."""
    frames = load_session(
        "unattributed/seq_linear_orderbook1_btcusdt_2023-10-06_snapshot_plus_4_deltas.jsonl"
    )
    feed, sink = make_feed(symbols=["BTC-USDT"], depth=1)
    again = snapshot_frame(reference(frames[:3]), "orderbook.1.BTCUSDT", "BTCUSDT", frames[2]["ts"] + 3000)
    feed_frames(feed, [*frames[:3], again, *frames[3:]])
    assert feed.stats.errors == 0 and feed.stats.resyncs == 0 and len(sink.books) == 6
    assert book_levels(feed.books["BTC-USDT"].book) == reference(frames).levels()

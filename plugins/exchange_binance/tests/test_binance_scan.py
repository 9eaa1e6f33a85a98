"""The one-pass reader of depth and trade events (``scan_book_frame``) and the compiled route of the usual
frames (``BinanceFeed.frame_handler``) change speed, not behaviour: the feed with them and the feed without
them (msgspec's typed decoding alone) publish the same books and trades, count the same errors, resync and
buffer alike, on the recorded sessions and on frames mangled every way."""

from __future__ import annotations

import json
import re

import latentspeed_exchange_binance.feed as feed_mod
import pytest
from binance_testkit import SPEED, load_session
from hypothesis import given, settings
from hypothesis import strategies as st
from latentspeed_exchange_binance.config import BinanceConfig
from latentspeed_exchange_binance.feed import BinanceFeed
from latentspeed_exchange_binance.parsing import Depth, TradeEvent, ValidationError, decode_combined

from latentspeed_core.book import L2Book, scan_book_frame
from latentspeed_core.config import validate
from latentspeed_core.testing import RecordingSink, mangled

pytestmark = pytest.mark.skipif(scan_book_frame is None, reason="pure-Python build: no one-pass reader")

#: Frames delivered before the REST snapshot (buffered), and in all when one is mangled.
BEFORE, FRAMES = 3, 200


class _DecodedSnapshots(L2Book):
    """A book that leaves every REST snapshot to the feed's decoder (load_snapshot_json: "not taken")."""

    def load_snapshot_json(self, body, id_key, bids_key, asks_key):
        return None


def play(
    market: str, frames: list, snapshot: bytes, scan: bool | str, one_pass_snapshot: bool = True
) -> tuple:
    """The feed's outcome: with the reader (True), without it (False), or through its frame handler
    ("route", the reader too); with the REST snapshot read in one pass by the book, or decoded first."""
    old = feed_mod._scan
    feed_mod._scan = scan_book_frame if scan else None
    try:
        cfg = validate(
            BinanceConfig,
            {"exchange": "binance", "market": market, "symbols": ["BTC-USDT"], "depth_speed": SPEED[market]},
        )
        feed = BinanceFeed(cfg)
        feed.sink = RecordingSink()
        errors = []
        error = feed.error
        feed.error = lambda reason, data=None: (errors.append(reason), error(reason, data))
        if scan == "route":  # deliver_frame's own: the compiled handler
            assert type(feed.frame_handler()).__name__ == "FrameRoute"
        else:  # the reference: on_frame takes every frame
            feed.frame_fn = feed.on_frame
        if not one_pass_snapshot:
            for state in feed._syms.values():
                state.book = _DecodedSnapshots(state.symbol)
        feed.on_connect()
        for frame in frames[:BEFORE]:
            feed.deliver_frame(frame, 1)
        feed.deliver_rest("BTCUSDT", snapshot, 2)
        for i, frame in enumerate(frames[BEFORE:]):
            feed.deliver_frame(frame, 3 + i)
        s = feed._by_symbol["BTC-USDT"]
        return (
            feed.sink.books, feed.sink.trades, feed.stats.as_dict(), errors, s.synced, s.last_u, s.first,
            [(ev.s, ev.U, ev.u, bytes(ev.b), bytes(ev.a), ev.E, ev.T, ev.pu, rns) for ev, rns in s.buffer], s.book.top_bids(1000), s.book.top_asks(1000), len(s.book),
        )  # fmt: skip
    finally:
        feed_mod._scan = old


def same(market: str, frames: list, snapshot: bytes) -> tuple:
    """The outcome of the three ways, asserted equal."""
    with_scan = play(market, frames, snapshot, True)
    assert with_scan == play(market, frames, snapshot, False)
    if feed_mod._route is not None:
        assert play(market, frames, snapshot, "route") == with_scan
    return with_scan


@pytest.fixture(scope="module", params=["spot", "usdm"])
def session(request):
    s = load_session(request.param)
    return request.param, s.frames, s.snapshot


def test_the_recorded_sessions_read_the_same(session):
    market, frames, snapshot = session
    with_scan = same(market, frames, snapshot)
    assert with_scan[4] and len(with_scan[0]) > 50  # (the session's bookTicker frames are errors, in both)


def test_the_reader_takes_the_recorded_depth_events(session):
    _market, frames, _snapshot = session
    keys = ("e", "s", "U", "u", "E", "T", "pu")
    taken = [scan_book_frame(f, ("stream",), "data", keys, ("e", "depthUpdate")) for f in frames]
    assert [t is not None for t in taken] == [b'"depthUpdate"' in f for f in frames]


def test_the_feeds_reader_takes_depth_and_trade_events_with_msgspecs_values(session):
    _market, frames, _snapshot = session
    for f in frames:
        taken = feed_mod._scan(
            f, feed_mod._TOP_KEYS, "data", feed_mod._KEYS, feed_mod._TAGS, feed_mod._DECIMALS
        )
        try:
            kind = decode_combined(f).data
        except ValidationError:  # bookTicker: no event type
            kind = None
        assert (taken is not None) == (type(kind) in (Depth, TradeEvent))
        if type(kind) is TradeEvent:
            stream, e, s, *_, T, _pu, t, p, q, m, a, levels = taken
            assert (e, s, T, t, p, q, m, a, levels) == (
                "trade",
                kind.s,
                kind.T,
                kind.t,
                kind.p,
                kind.q,
                kind.m,
                None,
                None,
            )


def _small_depth_index(frames: list) -> list[int]:
    """The first frame, three depth events and two trades after the snapshot: the frames mangled."""
    depth = [i for i, f in enumerate(frames) if b'"depthUpdate"' in f and i >= BEFORE][:3]
    return depth + [i for i, f in enumerate(frames) if b'"e":"trade"' in f and i >= BEFORE][:2]


def as_agg_trade(frame: bytes) -> bytes:
    """A recorded trade event as the aggTrade event USD-M sends (its id in "a", first/last trade ids added)."""
    return frame.replace(b'"e":"trade"', b'"e":"aggTrade"').replace(b'"t":', b'"f":1,"l":2,"a":')


def test_aggregate_trades_read_the_same(session):
    market, frames, snapshot = session
    frames = [as_agg_trade(f) if b'"e":"trade"' in f else f for f in frames[:FRAMES]]
    with_scan = same(market, frames, snapshot)
    assert len(with_scan[1]) == sum(b'"aggTrade"' in f for f in frames) > 5


VARIANTS = [
    lambda s: s.replace(b",", b", ").replace(b":", b": "),
    lambda s: s.replace(b'"stream"', b'"x":1.5,"stream"'),
    lambda s: s.replace(b'"stream"', b'"x":{"y":[1]},"stream"'),
    lambda s: s.replace(b'"stream":"', b'"stream":"\\u0062'),
    lambda s: s.replace(b'"stream":', b'"stream":1,"x":'),
    lambda s: s.replace(b'"data":{', b'"data":{"x":null,'),
    lambda s: s.replace(b'"data":{', b'"data":{"U":1,'),
    lambda s: s.replace(b'"data":{', b'"data":{"b":[],'),
    lambda s: s.replace(b'"data":{', b'"data":{"pu":"7",'),
    lambda s: s.replace(b'"data":{', b'"data":{"T":0,'),
    lambda s: s.replace(b'"data":{', b'"data":{"E":-1,'),
    lambda s: s.replace(b'"e":"depthUpdate"', b'"e":"depthUpdat\\u0065"'),
    lambda s: s.replace(b'"e":"depthUpdate"', b'"e":"trade"'),
    lambda s: s.replace(b'"e":"depthUpdate",', b""),
    lambda s: s.replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"'),
    lambda s: s.replace(b'"U":', b'"U":"').replace(b',"u"', b'","u"', 1),
    lambda s: s.replace(b'"u":', b'"u":0'),
    lambda s: s.replace(b'"u":', b'"u":1.5e'),
    lambda s: s.replace(b'"U":', b'"U":99999999999999999999'),
    lambda s: s.replace(b'"b":[["', b'"b":[[" '),
    lambda s: s.replace(b'"b":[["', b'"b":[["+'),
    lambda s: s.replace(b'"b":[["', b'"b":[["nan","1"],["'),
    lambda s: s.replace(b'"a":[["', b'"a":[["1","inf"],["'),
    lambda s: s.replace(b'"a":[["', b'"a":[["-5","1"],["'),
    lambda s: s.replace(b'"a":[["', b'"a":[[1,1],["'),
    lambda s: s.replace(b'"a":[["', b'"a":[["1","1","1"],["'),
    lambda s: s.replace(b'"a":[["', b'"a":[["1\\u0030","1"],["'),
    lambda s: s[:-1],
    lambda s: s + b" ",
    lambda s: s + b"x",
    lambda s: s.decode(),
    lambda s: s.replace(b"BTCUSDT", "BTCUSDT\u00e9".encode()),
    # (trade events)
    lambda s: s.replace(b'"p":"', b'"p":').replace(b'","q"', b',"q"'),
    lambda s: s.replace(b'"p":"', b'"p":"nan","x":"'),
    lambda s: s.replace(b'"p":"', b'"p":"0","x":"'),
    lambda s: s.replace(b'"q":"', b'"q":"-1","x":"'),
    lambda s: s.replace(b'"q":"', b'"q":"1e5","x":"'),
    lambda s: s.replace(b'"q":"', b'"q":"01.5","x":"'),
    lambda s: s.replace(b'"p":"', b'"p":"1.","x":"'),
    lambda s: s.replace(b'"q":"', b'"q":"123456789012345678901234","x":"'),
    lambda s: s.replace(b'"m":true', b'"m":"true"').replace(b'"m":false', b'"m":"false"'),
    lambda s: s.replace(b'"m":true', b'"m":1').replace(b'"m":false', b'"m":0'),
    lambda s: s.replace(b'"m":', b'"m":null,"x":'),
    lambda s: s.replace(b'"t":', b'"t":"1","x":'),
    lambda s: s.replace(b'"t":', b'"x":'),
    lambda s: s.replace(b'"t":', b'"a":7,"t":'),
    lambda s: s.replace(b'"e":"trade"', b'"e":"aggTrade"'),
    lambda s: s.replace(b'"data":{', b'"data":{"b":[["1","1"]],"a":[["2","1"]],'),
    lambda s: s.replace(b'"data":{', b'"data":{"b":5,'),
    lambda s: s.replace(b'"data":{', b'"data":{"p":"1",'),
    lambda s: s.replace(b'"T":', b'"T":true,"x":'),
]


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_variants_read_the_same(session, variant):
    market, frames, snapshot = session
    frames = frames[:FRAMES]
    for i in [0, *_small_depth_index(frames)]:
        frames[i] = VARIANTS[variant](frames[i])
    same(market, frames, snapshot)


_ALPHABET = list(b'[]{}",:.-+eE0123456789 \n\tnaiftrulpx\\\x00\x01\xc3')


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, 5),
    edits=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 300), st.sampled_from(_ALPHABET)), max_size=4),
)
def test_mangled_frames_read_the_same(session, which, edits):
    market, frames, snapshot = session
    frames = frames[:FRAMES]
    i = [0, *_small_depth_index(frames)][which]
    frames[i] = mangled(bytes(frames[i]), edits)
    same(market, frames, snapshot)


@pytest.mark.parametrize("edit", ["drop", "repeat", "swap"])
def test_gaps_and_repeats_read_the_same(session, edit):
    """A lost depth event (a gap: resync), one delivered twice (ignored) and two out of order."""
    market, frames, snapshot = session
    frames = list(frames)
    i, j = [k for k, f in enumerate(frames) if b'"depthUpdate"' in f][20:22]  # well after the snapshot
    if edit == "drop":
        del frames[i]
    elif edit == "repeat":
        frames.insert(j + 1, frames[j])
    else:
        frames[i], frames[j] = frames[j], frames[i]
    out = same(market, frames, snapshot)
    # (a repeat is ignored on spot, u <= the book's; on USD-M its pu is not the previous u: a gap)
    assert (out[2]["resyncs"] > 0) == (edit != "repeat" or market == "usdm")


def test_a_snapshot_older_than_the_stream_reads_the_same(session):
    """The snapshot first, older than the first event after it: the first-event rule finds the gap."""
    market, frames, snapshot = session
    old = json.loads(snapshot)
    old["lastUpdateId"] -= 1_000_000
    depth = [f for f in frames if b'"depthUpdate"' in f]
    trades = [f for f in frames if b'"e":"trade"' in f]
    out = same(market, trades[:BEFORE] + depth[20:60], json.dumps(old).encode())  # nothing buffered
    assert out[2]["resyncs"] > 0


SNAPSHOT_VARIANTS = [
    lambda s: s,
    lambda s: s.replace(b",", b", ").replace(b":", b": "),
    lambda s: s.replace(b'{"lastUpdateId"', b'{"x":1,"y":"z","w":null,"lastUpdateId"'),
    lambda s: s.replace(b'{"lastUpdateId"', b'{"x":1.5,"lastUpdateId"'),
    lambda s: s.replace(b'{"lastUpdateId"', b'{"x":[1],"lastUpdateId"'),
    lambda s: s.replace(b'{"lastUpdateId"', b'{"lastUpdateId":1,"lastUpdateId"'),
    lambda s: s.replace(b'"lastUpdateId":', b'"lastUpdateId":-'),
    lambda s: s.replace(b'"lastUpdateId":', b'"lastUpdateId":"1",'),
    lambda s: re.sub(rb'"lastUpdateId":\d+', b'"lastUpdateId":"123"', s),
    lambda s: re.sub(rb'"lastUpdateId":\d+', b'"lastUpdateId":true', s),
    lambda s: s.replace(b'"lastUpdateId":', b'"lastUpdateId":99999999999999999999,"x":'),
    lambda s: s.replace(b'"bids":[["', b'"bids":[["1e2","1"],["'),
    lambda s: s.replace(b'"bids":[["', b'"bids":[["-1","1"],["'),
    lambda s: s.replace(b'"asks":[["', b'"asks":[[" 1","1"],["'),
    lambda s: s.replace(b'"asks":[["', b'"asks":[[1,1],["'),
    lambda s: s.replace(b'"asks":[["', b'"asks":[["1","0"],["'),
    lambda s: s.replace(b'"asks":', b'"asks":[],"x":'),
    lambda s: s.replace(b'"asks":', b'"bids":[],"asks":'),
    lambda s: s.replace(b'"lastUpdateId":', b'"lastUpdat\\u0065Id":'),
    lambda s: s + b" ",
    lambda s: s + b"x",
    lambda s: s.decode(),
    lambda s: s[:-1],
]


@pytest.mark.parametrize("variant", range(len(SNAPSHOT_VARIANTS)))
def test_snapshots_read_in_one_pass_load_the_same(session, variant):
    """load_snapshot_json changes speed, not behaviour: every snapshot it takes, it loads as the decoder
    and load_json_plain would; everything else (None), the decoder decides."""
    market, frames, snapshot = session
    body = SNAPSHOT_VARIANTS[variant](snapshot)
    one_pass = play(market, frames[:60], body, "route")
    assert one_pass == play(market, frames[:60], body, "route", one_pass_snapshot=False)
    if variant < 3:
        assert one_pass[4]  # synchronised


@settings(max_examples=200, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 400), st.sampled_from(_ALPHABET)), max_size=4)
)
def test_mangled_snapshots_load_the_same(session, edits):
    market, frames, snapshot = session
    body = mangled(bytes(snapshot), edits)
    assert play(market, frames[:40], body, "route") == play(
        market, frames[:40], body, "route", one_pass_snapshot=False
    )


def test_the_recorded_snapshots_are_read_in_one_pass(session):
    _market, _frames, snapshot = session
    book = L2Book("BTC-USDT")
    lid = book.load_snapshot_json(snapshot, "lastUpdateId", "bids", "asks")
    reference = L2Book("BTC-USDT")
    reference.load_json_plain(*(lambda s: (s.bids, s.asks))(feed_mod.decode_snapshot_raw(snapshot)))
    assert lid == feed_mod.decode_snapshot_raw(snapshot).lastUpdateId
    assert book.top_bids(5000) == reference.top_bids(5000) and book.top_asks(5000) == reference.top_asks(5000)
    assert len(book) == len(reference) > 100


class _SinkProperty(BinanceFeed):
    """A feed whose ``sink`` is a property (the compiled handler must go through it, not the slot)."""

    reads = 0

    @property
    def sink(self):
        type(self).reads += 1
        return self._sink

    @sink.setter
    def sink(self, value):
        self._sink = value


@pytest.mark.skipif(feed_mod._route is None, reason="the compiled route was not built")
@pytest.mark.parametrize("cls", [BinanceFeed, _SinkProperty])
def test_the_route_reads_the_feeds_attributes_as_they_are_at_each_frame(session, cls):
    """The compiled handler reads the feed's attributes at their slots: a sink swapped in the middle of
    the session gets the frames after the swap, a stats object replaced counts from then on, and a
    subclass whose attribute is a property is read through it."""
    market, frames, snapshot = session
    reference = play(market, frames, snapshot, "route")
    cfg = validate(
        BinanceConfig,
        {"exchange": "binance", "market": market, "symbols": ["BTC-USDT"], "depth_speed": SPEED[market]},
    )
    feed = cls(cfg)
    cls.reads = 0
    first, second = RecordingSink(), RecordingSink()
    feed.sink = first
    assert type(feed.frame_handler()).__name__ == "FrameRoute"
    feed.on_connect()
    for frame in frames[:BEFORE]:
        feed.deliver_frame(frame, 1)
    feed.deliver_rest("BTCUSDT", snapshot, 2)
    half = BEFORE + (len(frames) - BEFORE) // 2
    old_stats = feed.stats
    for i, frame in enumerate(frames[BEFORE:], start=BEFORE):
        if i == half:
            feed.sink = second
            feed.stats = type(old_stats)()
        feed.deliver_frame(frame, 3 + i - BEFORE)
    assert first.books and second.books
    assert (first.books + second.books, first.trades + second.trades) == (reference[0], reference[1])
    assert old_stats.books + feed.stats.books == reference[2]["books"]
    assert feed.stats.books == len(second.books)
    published = len(first.books + second.books + first.trades + second.trades)
    assert cls is BinanceFeed or cls.reads >= published  # each publication asked the property

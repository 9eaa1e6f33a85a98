"""Property tests: random valid Bybit streams keep the feed's book identical to the naive reference."""

from __future__ import annotations

from bybit_testkit import dumps, read
from hypothesis import given, settings
from hypothesis import strategies as st
from latentspeed_exchange_bybit.config import BybitConfig
from latentspeed_exchange_bybit.feed import BybitFeed

from latentspeed_core.testing import RecordingSink, ReferenceBook, book_levels

TOPIC = "orderbook.50.BTCUSDT"

# Valid input never crosses: bids live on ticks 1..60, asks on 61..120 (price = tick / 10).
bid_px = st.integers(1, 60).map(lambda t: f"{t / 10:.1f}")
ask_px = st.integers(61, 120).map(lambda t: f"{t / 10:.1f}")
size = st.sampled_from(["0", "0", "0.001", "1", "2.5", "10", "123.456"])
levels = lambda px: st.lists(st.tuples(px, size).map(list), max_size=12)  # noqa: E731

message = st.one_of(
    st.tuples(st.just("delta"), levels(bid_px), levels(ask_px)),
    st.tuples(st.just("delta"), levels(bid_px), levels(ask_px)),
    st.tuples(st.just("delta"), levels(bid_px), levels(ask_px)),
    st.tuples(st.just("snapshot"), levels(bid_px), levels(ask_px)),
    st.tuples(st.just("restart"), levels(bid_px), levels(ask_px)),
)


def frames_from(script) -> list[dict]:
    """Number the messages the way Bybit does: u continuous, reset to 1 by a restart."""
    out = []
    u = 1000
    for i, (kind, bids, asks) in enumerate(script):
        if kind == "restart":
            u = 1
            kind = "snapshot"
        else:
            u += 1
        if kind == "snapshot":  # a snapshot holds each price once
            bids = list({p: [p, q] for p, q in bids}.values())
            asks = list({p: [p, q] for p, q in asks}.values())
        data = {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": i}
        out.append({"topic": TOPIC, "type": kind, "ts": 1_700_000_000_000 + i, "data": data})
    return out


@settings(max_examples=150, deadline=None)
@given(
    first=st.tuples(st.just("snapshot"), levels(bid_px), levels(ask_px)), rest=st.lists(message, max_size=40)
)
def test_random_valid_streams_match_reference(first, rest):
    feed = BybitFeed(BybitConfig(symbols=["BTC-USDT"], depth=50))
    sink = RecordingSink()
    feed.sink = sink
    feed.on_connect()
    ref = ReferenceBook()
    for i, frame in enumerate(frames_from([first, *rest])):
        feed.deliver_frame(dumps(frame), i)
        ref.update(read(frame))
        assert book_levels(feed.books["BTC-USDT"].book) == ref.levels()
        assert not feed.books["BTC-USDT"].book.is_crossed()
    assert feed.stats.errors == 0 and feed.stats.resyncs == 0
    assert len(sink.books) == len(rest) + 1

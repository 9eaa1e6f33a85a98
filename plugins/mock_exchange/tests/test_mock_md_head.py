"""``market_data_head``: the mock feed's one-call check of a MARKET_DATA message changes speed, not
behaviour. Compiled and Python agree on every input; what it takes, ``check_frame`` takes with the same
header; and the feed with it and without it (the general path alone) publishes the same books and trades
and counts the same errors, on good and mangled messages alike."""

from __future__ import annotations

import latentspeed_mock_exchange.feed as feed_mod
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from latentspeed_mock_exchange import protocol as P
from latentspeed_mock_exchange.feed import MockFeed

from latentspeed_core.testing import RecordingSink, mangled

S = P.SCALE
BOOK = P.encode_market_data(7, 1_000, 1, [(100 * S, 2 * S), (99 * S, 1 * S)], [(101 * S, 3 * S)])
HEADS = [P._market_data_head_py] + ([P._fastproto.market_data_head] if P._fastproto is not None else [])


edits = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 80), st.integers(0, 255)), max_size=3)


@settings(max_examples=500, deadline=None)
@given(edits=edits)
def test_compiled_and_python_agree_and_check_frame_takes_what_they_take(edits):
    data = mangled(BOOK, edits)
    got = {head(data) for head in HEADS}
    assert len(got) == 1
    head = got.pop()
    if head is not None:
        assert P.check_frame(data, 0, len(data)) == len(data) and data[2] == P.MARKET_DATA
        h = P.MD_MSG_HEAD.unpack_from(data, 0)
        assert head == (h[3], h[4])


@pytest.mark.parametrize("head", HEADS)
def test_only_bytes_and_bytearray(head):
    assert head(BOOK) == (1_000, 1)
    assert head(bytearray(BOOK)) == (1_000, 1)
    assert head(memoryview(BOOK)) is None  # the general path reads those
    assert head(BOOK.decode("latin-1")) is None
    assert head(BOOK[:-1]) is None
    assert head(BOOK + b"\0") is None
    assert head(P.encode_heartbeat(1, 2)) is None


def play(frames: list, fast: bool) -> tuple:
    old = feed_mod._market_data_head
    feed_mod._market_data_head = old if fast else (lambda data: None)
    try:
        feed = MockFeed()
        feed.frame_fn = feed.on_frame  # (the compiled route would take the usual MARKET_DATA itself)
        feed.sink = RecordingSink()
        errors = []
        error = feed.error
        feed.error = lambda reason, data=None: (errors.append(reason), error(reason, data))
        feed.on_connect()
        for i, frame in enumerate(frames):
            feed.deliver_frame(frame, i)
        return feed.sink.books, feed.sink.trades, feed.stats.as_dict(), errors, feed._defined
    finally:
        feed_mod._market_data_head = old


@settings(max_examples=300, deadline=None)
@given(edits=edits, which=st.integers(0, 3))
def test_the_feed_reads_the_same_with_and_without_it(edits, which):
    frames = [
        P.encode_security_definition(1, 0, 1, S // 100, S // 1000, "BTC-USD"),
        BOOK,
        P.encode_trade(2, 2_000, 1, 100 * S, S, 1, 9),
        P.encode_market_data(3, 3_000, 1, [(100 * S, 1 * S)], [(102 * S, 3 * S)]),
        P.encode_market_data(4, 4_000, 2, [(100 * S, 1 * S)], [(102 * S, 3 * S)]),  # undefined symbol
        P.encode_market_data(5, 5_000, 1, [(103 * S, 1 * S)], [(102 * S, 3 * S)]),  # crossed: refused
    ]
    frames[[1, 3, 4, 5][which]] = mangled(frames[[1, 3, 4, 5][which]], edits)
    assert play(frames, True) == play(frames, False)

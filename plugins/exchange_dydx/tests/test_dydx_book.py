"""The offsets rule (dYdX guide "Watch orderbook"): per-level message ids, out-of-order snapshots,
uncrossing by the older offset, and a property test against the slow reference book."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from latentspeed_exchange_dydx.book import OffsetBook
from latentspeed_exchange_dydx.config import DydxConfig
from latentspeed_exchange_dydx.feed import DydxFeed


def levels(ob: OffsetBook):
    return ob.book.top_bids(1000), ob.book.top_asks(1000)


def test_updates_before_the_snapshot_are_held_and_only_newer_ones_replayed():
    ob = OffsetBook("ETH-USD")
    ob.update(True, 100.0, 0.0, 7)  # newer than the snapshot: deletes its 100 bid
    ob.update(False, 101.0, 9.0, 2)  # older than the snapshot: dropped
    ob.update(False, 103.0, 1.0, 8)  # newer: added
    assert not ob.ready and levels(ob) == ([], [])
    replayed = ob.snapshot([(100.0, 1.0), (99.0, 2.0)], [(101.0, 3.0), (102.0, 4.0)], offset=5)
    assert replayed == 2 and ob.stale == 1
    assert levels(ob) == ([[99.0, 2.0]], [[101.0, 3.0], [102.0, 4.0], [103.0, 1.0]])
    assert ob.bid_off == {99.0: 5} and ob.ask_off == {101.0: 5, 102.0: 5, 103.0: 8}


def test_an_update_older_than_the_level_is_ignored():
    ob = OffsetBook("X")
    ob.snapshot([(100.0, 1.0)], [(101.0, 1.0)], offset=10)
    ob.update(True, 100.0, 5.0, 9)
    ob.update(True, 100.0, 0.0, 8)
    assert levels(ob) == ([[100.0, 1.0]], [[101.0, 1.0]]) and ob.stale == 2
    ob.update(True, 100.0, 2.0, 11)
    assert levels(ob)[0] == [[100.0, 2.0]] and ob.bid_off[100.0] == 11


def test_a_late_snapshot_on_a_live_book_keeps_newer_levels_and_drops_older_absent_ones():
    ob = OffsetBook("X")
    ob.snapshot([(100.0, 1.0), (99.0, 1.0)], [(101.0, 1.0)], offset=3)
    ob.update(True, 98.0, 4.0, 12)  # newer than the next snapshot: survives it
    ob.update(False, 102.0, 5.0, 6)  # older and absent from it: removed
    ob.snapshot([(100.0, 2.0)], [(101.0, 7.0)], offset=10)
    assert levels(ob) == ([[100.0, 2.0], [98.0, 4.0]], [[101.0, 7.0]])


def test_uncross_removes_the_older_side():
    ob = OffsetBook("X")
    ob.snapshot([(100.0, 1.0), (99.0, 1.0)], [(101.0, 1.0), (102.0, 1.0)], offset=1)
    ob.update(False, 99.5, 2.0, 5)  # newer ask below two older bids
    assert ob.uncross() == 1
    assert levels(ob) == ([[99.0, 1.0]], [[99.5, 2.0], [101.0, 1.0], [102.0, 1.0]])
    ob.update(True, 101.0, 3.0, 6)  # newer bid through two older asks
    assert ob.uncross() == 2
    assert levels(ob) == ([[101.0, 3.0], [99.0, 1.0]], [[102.0, 1.0]])
    assert not ob.book.is_crossed()


def test_uncross_at_equal_offsets_nets_the_sizes():
    ob = OffsetBook("X")
    ob.snapshot([], [], offset=1)
    ob.update(True, 100.0, 5.0, 4)
    ob.update(False, 99.0, 2.0, 4)
    ob.update(False, 100.0, 1.0, 4)
    ob.uncross()
    assert levels(ob) == ([[100.0, 2.0]], [])
    ob.update(False, 100.0, 2.0, 4)  # locked at equal size: both go
    ob.uncross()
    assert levels(ob) == ([], [])
    ob.update(True, 100.5, 2.5, 5)
    ob.update(False, 100.0, 2.4, 5)
    ob.update(False, 100.5, 0.1, 5)
    ob.uncross()  # 2.5 - 2.4 is 0.10000000000000009 in floats: still "equal" to 0.1, no dust level left
    assert levels(ob) == ([], [])


def test_pending_updates_are_bounded():
    from latentspeed_exchange_dydx import book

    ob = OffsetBook("X")
    for i in range(book.MAX_PENDING + 10):
        ob.update(True, float(i), 1.0, i + 1)
    assert len(ob.pending) <= book.MAX_PENDING


# -- property: any valid stream gives the reference book, never a crossed one --------------------
PRICES = [f"{100 + i * 0.5:g}" for i in range(12)]
SIZES = ["0", "0", "0.1", "0.3", "1", "2.5"]
level = st.tuples(st.sampled_from(PRICES), st.sampled_from(SIZES))
content = st.fixed_dictionaries(
    {}, optional={"bids": st.lists(level, max_size=3), "asks": st.lists(level, max_size=3)}
)
message = st.tuples(st.booleans(), st.lists(content, min_size=1, max_size=4))


@settings(max_examples=150, deadline=None)
@given(
    snap_bids=st.lists(st.sampled_from(PRICES[:6]), unique=True, max_size=6),
    snap_asks=st.lists(st.sampled_from(PRICES[6:]), unique=True, max_size=6),
    stream=st.lists(message, max_size=25),
)
def test_random_streams_match_the_reference_and_never_cross(kit, snap_bids, snap_asks, stream):
    feed = DydxFeed(DydxConfig(symbols=["ETH-USD"]))
    sink = kit.Sink()
    feed.sink = sink
    feed.deliver_connect(1)
    ref = kit.RefBook()
    snap = {
        "type": "subscribed", "connection_id": "c", "message_id": 1, "channel": "v4_orderbook", "id": "ETH-USD",
        "contents": {"bids": [{"price": p, "size": "1"} for p in snap_bids],
                     "asks": [{"price": p, "size": "1"} for p in snap_asks]},
    }  # fmt: skip
    msgs = [snap]
    env = {"connection_id": "c", "channel": "v4_orderbook", "id": "ETH-USD"}
    for batched, contents in stream:
        contents = [{k: [list(lv) for lv in v] for k, v in c.items()} for c in contents]
        if batched:  # one message id for the whole batch
            msgs.append(
                {**env, "type": "channel_batch_data", "message_id": len(msgs) + 1, "contents": contents}
            )
        else:
            for c in contents:
                msgs.append({**env, "type": "channel_data", "message_id": len(msgs) + 1, "contents": c})
    for msg in msgs:
        feed.deliver_frame(json.dumps(msg), 1)
        ref.apply_message(msg)
        bids, asks = sink.last("ETH-USD")
        ref_bids, ref_asks = ref.levels()
        assert [p for p, _ in bids] == [p for p, _ in ref_bids]
        assert [p for p, _ in asks] == [p for p, _ in ref_asks]
        assert [q for _, q in bids] == pytest.approx([q for _, q in ref_bids])
        assert [q for _, q in asks] == pytest.approx([q for _, q in ref_asks])
    assert sink.violations == []  # never a crossed book
    assert sink.count("ETH-USD") == len(msgs)
    assert feed.stats.errors == 0

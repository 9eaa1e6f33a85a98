"""The one-pass reader of book frames (``scan_book_frame``) and the compiled route of the usual delta
(``BybitFeed.frame_handler``) change speed, not behaviour: the feed with them and the feed without them
(msgspec's typed path, then the dict path) publish the same books, count the same errors, resync and
resubscribe alike, on the recorded session and on frames mangled every way."""

from __future__ import annotations

import json

import latentspeed_exchange_bybit.feed as feed_mod
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from latentspeed_exchange_bybit.config import BybitConfig
from latentspeed_exchange_bybit.feed import BybitFeed

from latentspeed_core.book import scan_book_frame
from latentspeed_core.testing import RecordingSink, fixtures_dir, mangled

SESSION = "bybit/seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl"

pytestmark = pytest.mark.skipif(scan_book_frame is None, reason="pure-Python build: no one-pass reader")


def play(frames: list, scan: bool | str) -> tuple:
    """The feed's outcome: with the reader (True), without it (False), or through its frame handler
    ("route", the reader too)."""
    old = feed_mod._scan
    feed_mod._scan = scan_book_frame if scan else None
    try:
        feed = BybitFeed(BybitConfig(symbols=["XRP-USDT"], depth=500))
        feed.sink = RecordingSink()
        sent, errors = [], []
        feed.send = sent.append
        error = feed.error
        feed.error = lambda reason, data=None: (errors.append(reason), error(reason, data))
        if scan == "route":  # deliver_frame's own: the compiled handler
            assert type(feed.frame_handler()).__name__ == "FrameRoute"
        else:  # the reference: on_frame takes every frame
            feed.frame_fn = feed.on_frame
        feed.on_connect()
        for frame in frames:
            feed.deliver_frame(frame, 1)
        st_ = feed.books["XRP-USDT"]
        return (
            feed.sink.books, feed.sink.trades, feed.stats.as_dict(), errors, sent, feed.dropped_deltas,
            st_.last_u, st_.book.top_bids(1000), st_.book.top_asks(1000), len(st_.book), st_.awaiting_since is None,
        )  # fmt: skip
    finally:
        feed_mod._scan = old


def same(frames: list) -> tuple:
    """The outcome of the three ways, asserted equal."""
    with_scan = play(frames, True)
    assert with_scan == play(frames, False)
    if feed_mod._route is not None:
        assert play(frames, "route") == with_scan
    return with_scan


@pytest.fixture(scope="module")
def frames() -> list[str]:
    text = (fixtures_dir() / SESSION).read_text()
    return [line for line in text.splitlines() if line.strip()]


def small(frames: list[str]) -> list[str]:
    """The snapshot and two deltas with three levels a side: short frames a mangling often hits."""
    out = []
    for line in frames[:3]:
        msg = json.loads(line)
        msg["data"]["b"] = msg["data"]["b"][:3]
        msg["data"]["a"] = msg["data"]["a"][:3]
        out.append(json.dumps(msg, separators=(",", ":")))
    return out


def test_the_recorded_session_reads_the_same(frames):
    with_scan = same(frames)
    assert len(with_scan[0]) == len(frames) and with_scan[2]["errors"] == 0


def test_the_reader_takes_the_recorded_frames(frames):
    for line in frames:
        got = scan_book_frame(line, ("topic", "type", "ts"), "data", ("u",), None)
        msg = json.loads(line)
        assert got[:4] == (msg["topic"], msg["type"], msg["ts"], msg["data"]["u"])
        assert got[4] is not None


VARIANTS = [
    # whitespace, key order, unknown keys of every kind, escapes, numbers msgspec reads otherwise
    lambda s: s.replace(",", ", ").replace(":", ": "),
    lambda s: "\n" + s.replace("{", "{ ") + " \t",
    lambda s: s.replace('"topic"', '"x":1.5,"topic"'),
    lambda s: s.replace('"topic"', '"x":[1],"topic"'),
    lambda s: s.replace('"topic"', '"x":{"y":1},"topic"'),
    lambda s: s.replace('"topic"', '"x":true,"y":null,"z":false,"topic"'),
    lambda s: s.replace('"topic"', '"x":"\\u00e9","topic"'),
    lambda s: s.replace('"topic"', '"x":-1,"topic"'),
    lambda s: s.replace('"topic":"orderbook', '"topic":"order\\u0062ook'),
    lambda s: s.replace('"type"', '"ty\\u0070e"'),
    lambda s: s.replace('"data":{', '"data":{"u":1,'),
    lambda s: s.replace('"data":{', '"data":{"b":[],'),
    lambda s: s.replace('"data":{', '"data":{"a":[["1","1"]],'),
    lambda s: s.replace('"cts"', '"data":{},"cts"'),
    lambda s: s.replace('"ts":', '"ts":"').replace(',"data"', '","data"', 1),
    lambda s: s.replace('"ts":', '"ts":0'),
    lambda s: s.replace('"ts":1', '"ts":1.0e0+'),
    lambda s: s.replace('"u":', '"u":-'),
    lambda s: s.replace('"u":', '"u":1234567890123456789'),
    lambda s: s.replace('"u":2', '"u":2.0'),
    lambda s: s.replace('"u":', '"U":'),
    lambda s: s.replace('"b":', '"B":'),
    lambda s: s.replace('"a":[["', '"a":[[').replace('","', ",", 1),
    lambda s: s.replace('"b":[["', '"b":[[" '),
    lambda s: s.replace('"b":[["', '"b":[["+'),
    lambda s: s.replace('"b":[["', '"b":[["1e1'),
    lambda s: s.replace('"b":[["', '"b":[["nan"],["'),
    lambda s: s.replace('"b":[["', '"b":[["inf","1"],["'),
    lambda s: s.replace('"b":[["', '"b":[["-1","1"],["'),
    lambda s: s.replace('"b":[["', '"b":[["1","-1"],["'),
    lambda s: s.replace('"b":[["', '"b":[["1\\u0030","1"],["'),
    lambda s: s.replace('"type":"delta"', '"type":"snapshot"'),
    lambda s: s.replace('"type":"snapshot"', '"type":"delta"'),
    lambda s: s.replace('"type":"delta"', '"type":"other"'),
    lambda s: s.replace('"topic":"orderbook.500.XRPUSDT"', '"topic":"orderbook.500.BTCUSDT"'),
    lambda s: s[:-1],
    lambda s: s + "x",
    lambda s: s + "{}",
    lambda s: s.encode(),
    lambda s: s.replace("XRPUSDT", "XRPUSDT\u00e9"),
    lambda s: s.replace("XRPUSDT", "XRP\x01USDT"),
]


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
@pytest.mark.parametrize("which", [0, 1])
def test_variants_read_the_same(frames, variant, which):
    base = small(frames)
    base[which] = VARIANTS[variant](base[which])
    same(base)


_ALPHABET = '[]{}",:.-+eE0123456789 \n\tnaiftrul\\x\x00\x01\u00e9'


@settings(max_examples=400, deadline=None)
@given(
    which=st.integers(0, 2),
    edits=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 400), st.sampled_from(list(_ALPHABET))), max_size=4
    ),
)
def test_mangled_frames_read_the_same(frames, which, edits):
    base = small(frames)
    base[which] = mangled(base[which], edits)
    same(base)


def _with_u(line: str, u: int) -> str:
    msg = json.loads(line)
    msg["data"]["u"] = u
    return json.dumps(msg, separators=(",", ":"))


@pytest.mark.parametrize("edit", ["drop", "repeat", "swap", "before_snapshot", "u1", "u1_next", "crossed"])
def test_gaps_stale_and_crossed_deltas_read_the_same(frames, edit):
    """A lost delta (a gap: resubscribe), a repeat (stale), two out of order, deltas before the snapshot,
    a delta with u = 1 (the post-restart snapshot) and one that crosses the book."""
    frames = list(frames)
    if edit == "drop":
        del frames[5]
    elif edit == "repeat":
        frames.insert(6, frames[5])
    elif edit == "swap":
        frames[5], frames[6] = frames[6], frames[5]
    elif edit == "before_snapshot":
        frames = frames[1:6] + frames
    elif edit == "u1":
        frames[5] = _with_u(frames[5], 1)
    elif edit == "u1_next":  # u = 1 right after u = 0: still the post-restart snapshot, not the next delta
        frames[0], frames[1] = _with_u(frames[0], 0), _with_u(frames[1], 1)
    else:
        msg = json.loads(frames[5])
        msg["data"]["b"] = [["99", "1"]]  # far above every ask
        frames[5] = json.dumps(msg, separators=(",", ":"))
    out = same(frames)
    assert out[2]["resyncs"] + len(out[3]) + out[5] > 0 or edit in ("u1", "u1_next")

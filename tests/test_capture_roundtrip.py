"""Capture files: what Recorder writes is what replay_into delivers, in order, to the right feed."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import time

import orjson
import pytest

from latentspeed_core import capture as capture_module
from latentspeed_core.capture import CaptureError, Recorder, capture_feeds, read_capture, replay_into
from latentspeed_core.config import FeedConfig
from latentspeed_core.feed import Feed


class LogFeed(Feed):
    """Remembers every input it gets, as a live transport would have delivered it."""

    exchange = "LOG"

    def __init__(self, name="log", replay=None, speed="max"):
        super().__init__(FeedConfig(exchange="log", replay=replay, speed=speed), name)
        self.inputs: list[tuple] = []

    async def run_live(self):  # pragma: no cover
        raise NotImplementedError

    def on_connect(self):
        self.inputs.append(("connect",))

    def on_frame(self, data, receipt_ns):
        self.inputs.append(("frame", data, receipt_ns))

    def on_rest(self, key, body, receipt_ns):
        self.inputs.append(("rest", key, body, receipt_ns))


def record_session(path, feeds=("a",), names=None):
    """Drive feeds through deliver_* with a recorder attached, as a live run does."""
    rec = Recorder(path, feeds=names)
    fs = {n: LogFeed(n) for n in feeds}
    for f in fs.values():
        f.recorder = rec
    for f in fs.values():
        f.deliver_connect(1_000)
    for i, f in enumerate(fs.values()):
        f.deliver_rest("depth:BTC-USDT", '{"lastUpdateId": 7}', 2_000 + i)
        f.deliver_frame('{"e":"depthUpdate","u":8}', 3_000 + i)
        f.deliver_frame(b"\x01\x00\x10\x00\xff\x00binary", 4_000 + i)
        f.deliver_frame("ünïcode ✓", 5_000 + i)
    rec.close()
    return fs


def test_round_trip_is_exact(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    live = record_session(path)["a"]
    replayed = LogFeed("a")
    asyncio.run(replay_into(replayed, path))
    assert replayed.inputs == live.inputs
    assert isinstance(replayed.inputs[3][1], bytes)  # binary frames come back as bytes
    assert replayed.stats.messages == 3


def test_file_format_is_gzip_json_lines_with_header(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    record_session(path, names=["a"])
    lines = [orjson.loads(x) for x in gzip.decompress(path.read_bytes()).splitlines()]
    assert lines[0]["kind"] == "header" and lines[0]["format"] == "latentspeed-capture"
    assert lines[0]["version"] == 1 and lines[0]["feeds"] == ["a"]
    assert lines[1] == {"feed": "a", "kind": "connect", "receipt_ns": 1000}
    assert lines[2] == {
        "feed": "a", "kind": "rest", "receipt_ns": 2000, "data": {"key": "depth:BTC-USDT", "body": '{"lastUpdateId": 7}'}
    }  # fmt: skip
    assert lines[3] == {"feed": "a", "kind": "frame", "receipt_ns": 3000, "data": '{"e":"depthUpdate","u":8}'}
    assert lines[4]["b64"] is True and lines[4]["data"] == "AQAQAP8AYmluYXJ5"


def test_multi_feed_capture_replays_each_feed_its_own_records(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    live = record_session(path, feeds=("binance", "bybit"), names=["binance", "bybit"])
    assert capture_feeds(path) == ["binance", "bybit"]
    for name in ("binance", "bybit"):
        f = LogFeed(name)
        asyncio.run(replay_into(f, path))
        assert f.inputs == live[name].inputs
    # a feed with another name gets nothing from a multi-feed capture (and a warning)
    other = LogFeed("dydx")
    asyncio.run(replay_into(other, path))
    assert other.inputs == []


def test_single_feed_capture_replays_into_any_name_and_header_without_feeds(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    live = record_session(path, feeds=("mock",), names=None)
    assert capture_feeds(path) == ["mock"]
    f = LogFeed("mock#1")
    asyncio.run(replay_into(f, path))
    assert f.inputs == live["mock"].inputs


def test_feed_run_replays_when_config_says_so(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    live = record_session(path)["a"]
    f = LogFeed("a", replay=str(path))
    asyncio.run(f.run(sink=None))
    assert f.inputs == live.inputs


def test_speed_multiplier_follows_recorded_time(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    rec = Recorder(path)
    t0 = 1_700_000_000_000_000_000
    for i in range(5):
        rec.write("a", "frame", t0 + i * 100_000_000, f"f{i}")  # 0.4 s of recorded time
    rec.close()
    f = LogFeed("a")
    start = time.monotonic()
    asyncio.run(replay_into(f, path, speed=4.0))  # 0.1 s
    took = time.monotonic() - start
    assert [x[1] for x in f.inputs] == [f"f{i}" for i in range(5)]
    assert took >= 0.09  # paced: never faster than recorded time / 4 (slower is the machine's business)
    start = time.monotonic()
    asyncio.run(replay_into(LogFeed("a"), path, speed="max"))
    assert time.monotonic() - start < took  # unpaced is faster than paced: an ordering, not a bound


def test_restamp_uses_wall_clock(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    record_session(path)
    f = LogFeed("a")
    before = time.time_ns()
    asyncio.run(replay_into(f, path, restamp=True))
    assert all(x[-1] >= before for x in f.inputs if x[0] != "connect")


def test_truncated_capture_replays_what_is_there(tmp_path, caplog):
    path = tmp_path / "c.jsonl.gz"
    rec = Recorder(path)
    for i in range(2000):
        rec.write("a", "frame", i + 1, f"frame number {i} " + "x" * (i % 50))
    rec.close()
    data = path.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    caplog.set_level(logging.WARNING)
    f = LogFeed("a")
    asyncio.run(replay_into(f, cut))
    assert 100 < len(f.inputs) < 2000
    assert [x[1] for x in f.inputs] == [f"frame number {i} " + "x" * (i % 50) for i in range(len(f.inputs))]
    assert "ends early" in caplog.text


@pytest.fixture(params=["compiled", "isal", "gzip"])
def inflate(request, monkeypatch):
    """Captures read on the compiled reader's thread (the default: zlib), in this thread through
    ISA-L, and through the standard gzip module."""
    if request.param == "gzip":
        monkeypatch.setenv("LATENTSPEED_PURE_PYTHON", "1")
    else:
        monkeypatch.delenv("LATENTSPEED_PURE_PYTHON", raising=False)
    if request.param == "isal":
        monkeypatch.setattr(capture_module, "_Lines", None)
    elif request.param == "compiled" and capture_module._Lines is None:
        assert os.environ.get("LATENTSPEED_PURE_PYTHON"), "the compiled capture reader is not built"
        pytest.skip("LATENTSPEED_PURE_PYTHON: the compiled reader is switched off on purpose")
    return request.param


def _frames_capture(path, n=2000):
    rec = Recorder(path)
    for i in range(n):
        rec.write("a", "frame", i + 1, f"frame number {i} " + "x" * (i % 50))
    rec.close()


def test_both_inflaters_read_the_same_records(tmp_path, inflate):
    path = tmp_path / "c.jsonl.gz"
    _frames_capture(path)
    assert (capture_module._inflater().__name__ == "zlib") == (inflate == "gzip")
    recs = list(read_capture(path))
    assert [r["data"] for r in recs] == [f"frame number {i} " + "x" * (i % 50) for i in range(2000)]
    assert [r["receipt_ns"] for r in recs] == list(range(1, 2001))


def test_damaged_gzip_stream_replays_what_is_before_the_damage(tmp_path, caplog, inflate):
    """Bytes overwritten in the middle of the file: no traceback, the records before it, a warning.

    (gzip checks its CRC only at the end: what inflated after the damage may be garbage, which the
    feeds then count as bad frames.)"""
    path = tmp_path / "c.jsonl.gz"
    _frames_capture(path, 20000)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = b"\xff" * 64  # codes that do not inflate (zlib.error, IsalError)
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING)
    recs = list(read_capture(bad))
    assert 5000 < len(recs) < 20000
    assert [r["data"] for r in recs[:5000]] == [f"frame number {i} " + "x" * (i % 50) for i in range(5000)]
    assert "ends early" in caplog.text


def test_damaged_gzip_header_line_is_a_clear_error(tmp_path, inflate):
    path = tmp_path / "c.jsonl.gz"
    _frames_capture(path, 10)
    data = bytearray(path.read_bytes())
    data[12:40] = bytes(28)  # inside the first deflate block: the header line does not inflate
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match="not a readable capture|bad header"):
        list(read_capture(bad))


def test_recorded_with_either_deflater_is_standard_gzip(tmp_path, inflate):
    path = tmp_path / "c.jsonl.gz"
    _frames_capture(path, 3000)  # more than Recorder.BUFFER: written in several pieces
    with gzip.open(path, "rb") as f:  # the standard module reads what ISA-L wrote, and the reverse
        lines = f.read().splitlines()
    assert len(lines) == 3001
    assert [orjson.loads(x)["data"] for x in lines[1:]] == [
        f"frame number {i} " + "x" * (i % 50) for i in range(3000)
    ]


def test_flush_makes_every_recorded_line_readable_while_recording(tmp_path, inflate, caplog):
    path = tmp_path / "c.jsonl.gz"
    rec = Recorder(path)
    for i in range(10):
        rec.write("a", "frame", i + 1, f"f{i}")
    rec.flush()
    try:
        caplog.set_level(logging.WARNING)
        assert [r["data"] for r in read_capture(path)] == [f"f{i}" for i in range(10)]
        assert "ends early" in caplog.text  # (the gzip stream is not finished until close)
    finally:
        rec.close()
    assert len(list(read_capture(path))) == 10


def _stamped_capture(path, stamps):
    rec = Recorder(path)
    for i, t in enumerate(stamps):
        rec.write("a", "frame", t, f"f{i}")
    rec.close()


@pytest.mark.parametrize(
    ("stamps", "delivered"),
    [
        # a stamp far ahead of both neighbours (a damaged one): moved back to the one before it
        ([10, 20, 2**62, 30, 40], [10, 20, 20, 30, 40]),
        # one behind both (or negative): moved up to the one before it
        ([10, 20, -5, 30, 40], [10, 20, 20, 30, 40]),
        # the clock stepped back and stays back: nothing is delivered before what came earlier
        ([10, 20, 30, 15, 16, 40], [10, 20, 30, 30, 30, 40]),
        ([30, 10, 20], [30, 30, 30]),  # the very first one ahead: the others follow it
        ([10, 20, 20, 30], [10, 20, 20, 30]),  # equal times are in order
    ],
)
def test_receipt_times_never_go_back_and_nothing_is_dropped(tmp_path, caplog, stamps, delivered):
    path = tmp_path / "c.jsonl.gz"
    _stamped_capture(path, stamps)
    caplog.set_level(logging.WARNING)
    recs = list(read_capture(path))
    assert [r["data"] for r in recs] == [f"f{i}" for i in range(len(stamps))]
    assert [r["receipt_ns"] for r in recs] == delivered
    assert ("out of order" in caplog.text) == (delivered != stamps)


def test_a_rest_record_without_key_and_body_is_a_counted_bad_input(tmp_path, merge_impl):
    from latentspeed_core.capture import deliver, merged_records

    path = tmp_path / "c.jsonl.gz"
    rec = Recorder(path)
    rec.write("a", "frame", 1, "before")
    rec.write("a", "rest", 2, "not a dict")  # what no recorder writes for a REST answer
    rec.write("a", "frame", 3, "after")
    rec.close()
    for replay in ("replay_into", "deliver"):
        f = LogFeed("a")
        if replay == "replay_into":
            asyncio.run(replay_into(f, path))
        else:
            for t, _name, r in merged_records([("a", str(path))]):
                deliver(f, r, t)
        assert [x[1] for x in f.inputs] == ["before", "after"] and f.stats.errors == 1


def test_not_a_capture_is_a_clear_error(tmp_path):
    plain = tmp_path / "x.jsonl"
    plain.write_text('{"a": 1}\n')
    with pytest.raises(CaptureError, match="not a gzip capture|bad header"):
        list(read_capture(plain))
    gz = tmp_path / "y.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"a": 1}\n'))
    with pytest.raises(CaptureError, match="bad header"):
        list(read_capture(gz))


def test_plain_name_writes_plain_json_lines_that_replay_exactly(tmp_path):
    path = tmp_path / "c.jsonl"
    live = record_session(path, names=["a"])["a"]
    raw = path.read_bytes()
    assert not raw.startswith(b"\x1f\x8b")  # not gzip: jq and grep read it
    lines = [orjson.loads(x) for x in raw.splitlines()]
    assert lines[0]["format"] == "latentspeed-capture" and lines[1]["kind"] == "connect"
    replayed = LogFeed("a")
    asyncio.run(replay_into(replayed, path))
    assert replayed.inputs == live.inputs


def test_gz_name_writes_gzip_and_readers_go_by_content_not_name(tmp_path):
    gz = tmp_path / "c.jsonl.gz"
    live = record_session(gz)["a"]
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    plain = tmp_path / "c.jsonl"
    record_session(plain)
    renamed_gz = tmp_path / "gzip_named.jsonl"  # gzip content, plain name
    renamed_gz.write_bytes(gz.read_bytes())
    renamed_plain = tmp_path / "plain_named.jsonl.gz"  # plain content, .gz name
    renamed_plain.write_bytes(plain.read_bytes())
    for path in (renamed_gz, renamed_plain):
        replayed = LogFeed("a")
        asyncio.run(replay_into(replayed, path))
        assert replayed.inputs == live.inputs, path.name


def test_truncated_plain_capture_replays_complete_lines(tmp_path, caplog):
    path = tmp_path / "c.jsonl"
    rec = Recorder(path)
    for i in range(100):
        rec.write("a", "frame", i + 1, f"frame {i}")
    rec.close()
    data = path.read_bytes()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(data[: len(data) - 5])  # the last line loses its end
    caplog.set_level(logging.WARNING)
    f = LogFeed("a")
    asyncio.run(replay_into(f, cut))
    assert [x[1] for x in f.inputs] == [f"frame {i}" for i in range(99)]
    assert "unreadable capture line" in caplog.text


@pytest.fixture(params=["compiled", "python"])
def merge_impl(request, monkeypatch):
    """merged_records as built (compiled, ``_merge.c``) and in Python (``_merged_py``): the same."""
    from latentspeed_core import capture

    if request.param == "python":
        monkeypatch.setattr(capture, "_Merge", None)
    elif capture._Merge is None:
        assert os.environ.get("LATENTSPEED_PURE_PYTHON"), "the compiled merge is not built"
        pytest.skip("LATENTSPEED_PURE_PYTHON: the compiled merge is switched off on purpose")
    return request.param


def test_merged_records_read_a_shared_capture_once_and_give_each_feed_its_own(tmp_path, merge_impl):
    """Two feeds replaying one two-feed capture, and one feed on a one-feed capture: the merge
    keeps receipt order, each feed gets exactly its records, ties keep source then file order;
    the records of a feed nobody replays are left out."""
    from latentspeed_core.capture import merged_records

    both = tmp_path / "both.jsonl"
    with Recorder(both, feeds=["a", "b", "z"]) as rec:
        for i, (feed, t) in enumerate([("b", 5), ("a", 1), ("z", 2), ("a", 5), ("b", 7), ("a", 9), ("z", 9)]):
            rec.write(feed, "frame", t, f"{feed}{i}")
    solo = tmp_path / "solo.jsonl"
    with Recorder(solo, feeds=["x"]) as rec:
        for t in (2, 5, 8):
            rec.write("x", "frame", t, f"c{t}")
    got = [(t, name, r["data"]) for t, name, r in merged_records([("a", both), ("b", both), ("c", solo)])]
    assert got == [
        (1, "a", "a1"), (2, "c", "c2"), (5, "a", "a3"), (5, "b", "b0"), (5, "c", "c5"), (7, "b", "b4"),
        (8, "c", "c8"), (9, "a", "a5"),
    ]  # fmt: skip
    # a one-feed capture given to two feeds: each gets all of it
    twice = [(name, r["data"]) for _t, name, r in merged_records([("p", solo), ("q", solo)])]
    assert [d for n, d in twice if n == "p"] == [d for n, d in twice if n == "q"] == ["c2", "c5", "c8"]


def test_merged_records_order_is_heapq_merge_of_the_sources(tmp_path, merge_impl):
    """The merge is heapq.merge of the feeds' records as read_capture gives them (a feed's stamps
    that go back repaired: tested above), keyed by (receipt time, source index), also when stamps
    tie across feeds: random captures against that reference."""
    import heapq
    import random

    from latentspeed_core.capture import merged_records

    rng = random.Random(7)
    for trial in range(60):
        feeds = ["a", "b", "c"]
        shared = tmp_path / f"shared{trial}.jsonl"
        rows = [(rng.choice(feeds), rng.randint(0, 12)) for _ in range(rng.randint(0, 60))]
        with Recorder(shared, feeds=feeds) as rec:
            for i, (feed, t) in enumerate(rows):
                rec.write(feed, "frame", t, f"{feed}{i}")
        solo = tmp_path / f"solo{trial}.jsonl"
        solo_rows = [rng.randint(0, 12) for _ in range(rng.randint(0, 20))]
        with Recorder(solo, feeds=["x"]) as rec:
            for i, t in enumerate(solo_rows):
                rec.write("x", "frame", t, f"x{i}")
        sources = [("c", shared), ("x", solo), ("a", shared), ("b", shared)]
        streams = []
        for k, (name, path) in enumerate(sources):
            recs = [(r["receipt_ns"], r["data"]) for r in read_capture(path) if r["feed"] == name]
            if name == "x":
                written = [f"x{i}" for i in range(len(solo_rows))]
            else:
                written = [f"{f}{i}" for i, (f, _t) in enumerate(rows) if f == name]
            assert sorted(d for _t, d in recs) == sorted(written)  # nothing lost, each feed its own
            assert [t for t, _d in recs] == sorted(t for t, _d in recs)  # in time order per feed
            streams.append([(t, k, j, name, data) for j, (t, data) in enumerate(recs)])
        want = [(t, name, data) for t, _k, _j, name, data in heapq.merge(*streams)]
        got = [(t, name, r["data"]) for t, name, r in merged_records(sources)]
        assert got == want, trial


def test_lines_that_are_not_records_are_skipped_with_a_warning(tmp_path, merge_impl, caplog):
    """A line no recorder writes (not an object, a receipt time that is not integer ns) is skipped
    and logged where the capture is read, like an unreadable line; the merge goes on with the rest."""
    from latentspeed_core import capture
    from latentspeed_core.capture import merged_records

    bad = tmp_path / "bad.jsonl"
    with Recorder(bad, feeds=["a", "b"]) as rec:
        rec.write("a", "frame", 1, "a0")
        rec.write("b", "frame", "soon", "b1")
        rec.write("b", "frame", True, "b2")
        rec.write("a", "frame", 3, "a3")
    with bad.open("a") as f:
        f.write('[1, 2]\n{"feed": "b", "kind": "frame", "receipt_ns": 2.5, "data": "b4"}\n')
        f.write('{"feed": "b", "kind": "frame", "receipt_ns": 4, "data": "b5"}\n')
    got = [(t, name, r["data"]) for t, name, r in merged_records([("a", bad), ("b", bad)])]
    assert got == [(1, "a", "a0"), (3, "a", "a3"), (4, "b", "b5")]
    assert caplog.text.count("not a record") == 4
    if merge_impl == "compiled":  # the merge's own check, for records that come another way
        with pytest.raises(ValueError, match="receipt_ns is not an integer"):
            list(capture._Merge(["a"], [iter([{"receipt_ns": "soon"}])], [0], [False]))


def test_merge_frames_takes_the_usual_records_and_leaves_the_rest_next():
    """Merge.frames(): frames in [lo, stop) and <= hi, at most `most`, stopping after a fill; each
    advance(t), clock.now = t, then its source's function (data, t); whatever stops it stays next."""
    from latentspeed_core import capture

    if capture._Merge is None:
        assert os.environ.get("LATENTSPEED_PURE_PYTHON"), "the compiled merge is not built"
        pytest.skip("LATENTSPEED_PURE_PYTHON: the compiled merge is switched off on purpose")

    class Clock:
        __slots__ = ("now",)

    def frame(feed, t, data=b"x"):
        return {"feed": feed, "kind": "frame", "receipt_ns": t, "data": data}

    recs = [
        frame("a", 1), frame("b", 2), {"feed": "a", "kind": "frame", "receipt_ns": 3},  # no data: b""
        frame("a", 4), {"feed": "b", "kind": "connect", "receipt_ns": 5}, frame("a", 6), frame("b", 7),
        frame("a", 8), frame("b", 9), frame("a", 10),
    ]  # fmt: skip
    log, fills, clock = [], [], Clock()

    def fn(name):
        def deliver(data, t):
            log.append((name, data, t, clock.now))
            if t == 7:
                fills.append("fill")

        return deliver

    m = capture._Merge(["a", "b"], [iter(recs)], [0, 0], [True, True])
    fns = [fn("a"), fn("b")]
    adv = lambda t: log.append(("advance", t))  # noqa: E731
    big = 1 << 62
    assert m.frames(fns, adv, clock, fills, big, 0, big, 2) == (2, 2)  # at most 2
    assert m.frames(fns, adv, clock, fills, big, 0, big, 99) == (2, 4)  # up to the connect record
    assert next(m) == (5, "b", recs[4])  # left next, for the Python loop
    assert m.frames(fns, adv, clock, fills, big, 0, big, 99) == (2, 7)  # stops after the fill at 7
    assert m.frames(fns, adv, clock, fills, 9, 0, big, 99) == (1, 8)  # 9 is the next timer: stop
    assert m.frames(fns, adv, clock, fills, big, 10, big, 99) == (0, 0)  # before --from
    assert m.frames(fns, adv, clock, fills, big, 0, 8, 99) == (0, 0)  # after --to
    assert [r[0] for r in m] == [9, 10]
    assert log[:6] == [
        ("advance", 1), ("a", b"x", 1, 1), ("advance", 2), ("b", b"x", 2, 2), ("advance", 3), ("a", b"", 3, 3),
    ]  # fmt: skip
    assert [e[2] for e in log if e[0] != "advance"] == [1, 2, 3, 4, 6, 7, 8]


def test_merge_frames_with_a_sampler_samples_each_fill_and_runs_on_to_the_next_sample_or_timer():
    """Merge.frames(..., (curve, point, portfolio, timer_at, every)): a frame that fills appends
    point(t, portfolio) and the run goes on to min(timer_at, t + every); the last sample's time is
    returned third (-1: none)."""
    from latentspeed_core import capture

    if capture._Merge is None:
        assert os.environ.get("LATENTSPEED_PURE_PYTHON"), "the compiled merge is not built"
        pytest.skip("LATENTSPEED_PURE_PYTHON: the compiled merge is switched off on purpose")

    class Clock:
        __slots__ = ("now",)

    recs = [{"feed": "a", "kind": "frame", "receipt_ns": t, "data": b"x"} for t in (1, 2, 3, 6, 7, 8, 20, 21)]
    fills, clock, curve = [], Clock(), []

    def deliver(data, t):
        if t in (2, 3, 20):
            fills.append(t)

    def point(t, portfolio):
        return (t, portfolio, len(fills))

    m = capture._Merge(["a"], [iter(recs)], [0], [True])
    big = 1 << 62

    def frames(stop, timer_at, sampler=None):
        sampler = sampler or (curve, point, "P", timer_at, 4)
        return m.frames([deliver], lambda t: None, clock, fills, stop, 0, big, 99, sampler)

    # fills at 2 and 3: each sampled; after 3 the run goes on to 3 + 4 = 7 (the timer at 50 is later)
    assert frames(big, 50) == (4, 6, 3)
    assert curve == [(2, "P", 1), (3, "P", 2)]
    assert frames(8, 8) == (1, 7, -1)  # no fill: up to the stop given (the next timer, 8), no sample
    assert frames(big, 21) == (2, 20, 20)  # a fill at 20 with the timer at 21: sampled, then the timer
    assert curve[-1] == (20, "P", 3) and [r[0] for r in m] == [21]
    with pytest.raises(TypeError, match="curve"):
        frames(big, 1, ("not a list", point, "P", 1, 1))


EDGES = [
    0,
    1,
    2**30 - 1,
    2**30,
    2**60 - 1,
    2**60,
    2**62,
    2**63 - 1,
    -1,
    -(2**30),
    -(2**60),
    -(2**63) + 1,
    1_723_161_254_138_105_767,
]


def test_merged_records_order_stamps_of_every_size_as_python_does(tmp_path):
    """Stamps at each edge of the compiled merge's int conversion (one, two and three 30-bit digits,
    either sign, up to int64's ends): the same order as the Python merge."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from latentspeed_core import capture
    from latentspeed_core.capture import merged_records

    if capture._Merge is None:
        pytest.skip("LATENTSPEED_PURE_PYTHON: the compiled merge is switched off on purpose")
    stamps = st.one_of(st.sampled_from(EDGES), st.integers(-(2**63) + 1, 2**63 - 1))

    @settings(max_examples=60, deadline=None)
    @given(a=st.lists(stamps, max_size=12), b=st.lists(stamps, max_size=12))
    def check(a, b):
        paths = []
        for name, ts in (("a", a), ("b", b)):
            path = tmp_path / f"{name}.jsonl"
            with Recorder(path, feeds=[name]) as rec:
                for t in ts:
                    rec.write(name, "frame", t, str(t))
            paths.append((name, path))
        got = [(t, n, r["data"]) for t, n, r in merged_records(paths)]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(capture, "_Merge", None)
            want = [(t, n, r["data"]) for t, n, r in merged_records(paths)]
        assert got == want

    check()
    for beyond in (2**63, 2**64 - 1):  # past int64: refused, not taken for a negative time
        path = tmp_path / "beyond.jsonl"
        with Recorder(path, feeds=["a"]) as rec:
            rec.write("a", "frame", beyond, "x")
        with pytest.raises(ValueError, match="not an integer nanosecond time"):
            list(merged_records([("a", path)]))


def test_the_compiled_merge_reads_records_whatever_their_key_objects(tmp_path):
    """The compiled merge looks keys up with the decoder's own key objects once it has seen them (an
    identity match); records whose keys are other, equal strings (another decoder, records built in
    Python, a cache that changed) are read the same."""
    from latentspeed_core import capture

    if capture._Merge is None:
        pytest.skip("LATENTSPEED_PURE_PYTHON: the compiled merge is switched off on purpose")

    def fresh(text: str) -> str:  # an equal string that is not the same object
        return bytes(text, "ascii").decode()

    def records(name: str, n: int) -> list:
        out = []
        for i in range(n):
            if i % 3 == 0:  # a decoder's record
                out.append(
                    orjson.loads(
                        orjson.dumps({"feed": name, "kind": "frame", "receipt_ns": 10 * i, "data": i})
                    )
                )
            else:
                keys = (
                    [fresh(k) for k in ("feed", "kind", "receipt_ns", "data")]
                    if i % 3 == 1
                    else ["feed", "kind", "receipt_ns", "data"]
                )
                out.append(dict(zip(keys, (name, "frame", 10 * i + (name == "b"), i), strict=True)))
        return out

    a, b = records("a", 300), records("b", 300)
    got = [
        (t, n, r["data"])
        for t, n, r in capture._Merge(["a", "b"], [iter(a), iter(b)], [0, 1], [False, False])
    ]
    want = [
        (t, n, r["data"])
        for t, n, r in capture._merged_py(["a", "b"], [iter(a), iter(b)], [0, 1], [False, False])
    ]
    assert got == want and len(got) == 600
    both = sorted(a + b, key=lambda r: r["receipt_ns"])  # one shared reader: the owner read from "feed"
    got = [(n, r["data"]) for _t, n, r in capture._Merge(["a", "b"], [iter(both)], [0, 0], [True, True])]
    want = [(n, r["data"]) for _t, n, r in capture._merged_py(["a", "b"], [iter(both)], [0, 0], [True, True])]
    assert got == want and len(got) == 600

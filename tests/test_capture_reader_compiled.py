"""The compiled capture reader (``_capread.Lines``, a thread of its own) gives read_capture exactly
what reading in this thread gives: the same records, in the same order, with the same keys, the
same warnings, and the same end when the file is cut short or damaged."""

from __future__ import annotations

import gzip
import logging
import os

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentspeed_core import capture
from latentspeed_core.capture import Recorder, read_capture

pytestmark = pytest.mark.skipif(
    capture._Lines is None and bool(os.environ.get("LATENTSPEED_PURE_PYTHON")),
    reason="LATENTSPEED_PURE_PYTHON: the compiled reader is switched off on purpose",
)


def test_the_compiled_reader_is_built():
    assert capture._Lines is not None, (
        "latentspeed_core._capread did not build (a C compiler and zlib's headers)"
    )


def both(path, monkeypatch, caplog):
    """(records, warnings) of read_capture with the compiled reader, then reading in this thread
    with zlib (the same inflater, so a damaged stream ends at the same line)."""
    out = []
    for compiled in (True, False):
        caplog.clear()
        with monkeypatch.context() as mp:
            if not compiled:
                mp.setenv("LATENTSPEED_PURE_PYTHON", "1")
            try:
                recs = [list(r.items()) for r in read_capture(path)]
            except Exception as exc:  # noqa: BLE001 - the same exception either way is the test
                recs = [("raised", type(exc).__name__, str(exc))]
        out.append((recs, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]))
    return out


texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from('"\\/\b\f\n\r\t{}[],:'),
    max_size=40,
)
records = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "bin ance", 'q"x', "é", ""]),
        st.sampled_from(["frame", "frame", "frame", "connect", "rest", "other"]),
        st.one_of(st.integers(0, 2**63 - 1), st.integers(-5, 5), st.just(2**63), st.just(10**19)),
        st.one_of(texts, st.binary(max_size=40), st.none(), st.just({"key": "BTC", "body": "{}"})),
    ),
    max_size=30,
)
junk = st.lists(
    st.sampled_from(
        [
            b"",
            b"not json",
            b"[1, 2]",
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"x"}\r',
            b'{"feed":"a","kind":"frame","receipt_ns":007,"data":"x"}',
            b'{"feed":"a","kind":"frame","receipt_ns":7.0,"data":"x"}',
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"\\u0041\\ud83d\\ude00"}',
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"AAA","b64":true}',
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"A=AA","b64":true}',
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"QUI=","b64":true}',
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"QUJ=","b64":true}',
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"x","b64":false}',
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"x"} ',
            b'{"feed":"a", "kind":"frame","receipt_ns":7,"data":"x"}',
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"bad \\x escape"}',
            b'{"feed":"a","kind":"frame","receipt_ns":7,"data":"tab\there"}',
            b'{"feed":"a","kind":"frame","receipt_ns":9223372036854775807,"data":"max"}',
            b'{"feed":"a","kind":"frame","receipt_ns":9223372036854775808,"data":"past"}',
        ]
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=records, extra=junk, gz=st.booleans(), final_newline=st.booleans())
def test_any_capture_reads_the_same_either_way(tmp_path, monkeypatch, caplog, recs, extra, gz, final_newline):
    path = tmp_path / ("c.jsonl.gz" if gz else "c.jsonl")
    with Recorder(path, feeds=["a", "b"]) as rec:
        for feed, kind, t, data in recs:
            rec.write(feed, kind, t, data)
    if extra or not final_newline:
        raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
        raw += b"\n".join(extra) + (b"\n" if extra else b"")
        if not final_newline:
            raw = raw.rstrip(b"\n")
        path.write_bytes(gzip.compress(raw) if gz else raw)
    compiled, python = both(path, monkeypatch, caplog)
    assert compiled == python


def test_many_feeds_odd_feed_values_and_stamps_out_of_line_read_the_same_either_way(tmp_path, monkeypatch, caplog):
    """A hundred feeds interleaved, stamps going back within a feed (ahead of both neighbours, or
    behind), ties, stamps past int64, and feed values no recorder writes (a number, null, none at
    all): the same records and warnings either way, each feed's stamps never going back."""
    import random

    rng = random.Random(5)
    lines = [orjson.dumps({"format": capture.FORMAT, "version": capture.VERSION})]
    for i in range(3000):
        feed = rng.choice([f"f{k}" for k in range(100)] + [5, None, "missing"])
        t = rng.choice([i, i, i - rng.randint(0, 50), i + rng.randint(0, 50), 2**63 + i])
        rec = {"feed": feed, "kind": "frame", "receipt_ns": t, "data": f"d{i}"}
        if feed == "missing":
            del rec["feed"]
        lines.append(orjson.dumps(rec))
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    compiled, python = both(path, monkeypatch, caplog)
    assert compiled == python
    recs, warnings = compiled
    assert len(recs) == 3000 and any("out of receipt-time order in all" in w for w in warnings)
    by_feed: dict = {}
    for r in map(dict, recs):
        assert r["receipt_ns"] >= by_feed.get(r.get("feed"), r["receipt_ns"])  # never back, within a feed
        by_feed[r.get("feed")] = r["receipt_ns"]


def test_an_unhashable_feed_fails_alike(tmp_path, monkeypatch, caplog):
    path = tmp_path / "odd.jsonl"
    header = orjson.dumps({"format": capture.FORMAT, "version": capture.VERSION})
    path.write_bytes(header + b'\n{"feed":["a"],"kind":"frame","receipt_ns":1,"data":"x"}\n')
    compiled, python = both(path, monkeypatch, caplog)
    assert compiled == python and compiled[0][0][:2] == ("raised", "TypeError")


def test_recorded_frames_are_decoded_on_the_thread(tmp_path):
    """The usual record (a frame, text or bytes) arrives as a dict, keys in the file's order."""
    path = tmp_path / "c.jsonl.gz"
    with Recorder(path, feeds=["a"]) as rec:
        rec.write("a", "frame", 1723161253937085768, '{"e":"depthUpdate","b":[["1.5","2"]]}\\/\n\t')
        rec.write("a", "frame", 2, b"\x00\x01binary\xff")
        rec.write("a", "connect", 3, None)
    lines = list(capture._Lines(str(path)))
    assert type(lines[0]) is bytes  # the header
    assert list(lines[1].items()) == [
        ("feed", "a"), ("kind", "frame"), ("receipt_ns", 1723161253937085768),
        ("data", '{"e":"depthUpdate","b":[["1.5","2"]]}\\/\n\t'),
    ]  # fmt: skip
    assert list(lines[2].items()) == [
        ("feed", "a"), ("kind", "frame"), ("receipt_ns", 2), ("data", b"\x00\x01binary\xff"), ("b64", True),
    ]  # fmt: skip
    assert orjson.loads(lines[3]) == {"feed": "a", "kind": "connect", "receipt_ns": 3}
    assert lines[1]["feed"] is lines[2]["feed"]  # one str per feed


def _capture(path, n):
    with Recorder(path, feeds=["a"]) as rec:
        for i in range(n):
            rec.write("a", "frame", i + 1, f"frame number {i} " + "x" * (i % 50))
            if i % 7 == 0:
                rec.write("a", "frame", i + 1, bytes(range(i % 256)))


def test_cut_short_and_damaged_streams_end_alike(tmp_path, monkeypatch, caplog):
    """Cut anywhere, overwritten in the middle, or followed by padding, garbage or a second member:
    the same records before the point, the same warning after them."""
    path = tmp_path / "c.jsonl.gz"
    _capture(path, 30000)
    data = path.read_bytes()
    cases = {
        "cut": data[: len(data) // 2],
        "cut_in_trailer": data[:-3],
        "damaged": data[: len(data) // 2] + b"\xff" * 64 + data[len(data) // 2 + 64 :],
        "padded": data + bytes(100),
        "garbage_after": data + b"garbage",
        "two_members": data
        + gzip.compress(b'{"feed":"a","kind":"frame","receipt_ns":99999,"data":"more"}\n'),
        "padded_member": data
        + bytes(5)
        + gzip.compress(b'{"feed":"a","kind":"frame","receipt_ns":1,"data":"z"}\n'),
    }
    for name, raw in cases.items():
        bad = tmp_path / f"{name}.jsonl.gz"
        bad.write_bytes(raw)
        compiled, python = both(bad, monkeypatch, caplog)
        assert compiled == python, name
        assert len(compiled[0]) > 1000, name
        assert any("ends early" in w for w in compiled[1]) == (
            name in ("cut", "cut_in_trailer", "damaged", "garbage_after")
        ), name


def test_a_reader_let_go_early_stops_its_thread_and_closes_the_file(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    _capture(path, 50000)  # more than the blocks the thread reads ahead
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        lines = capture._Lines(str(path))
        for _i, _line in zip(range(3), lines, strict=False):
            pass
        del lines  # the thread waits for room; letting go must end it, not hang
    assert len(os.listdir("/proc/self/fd")) == fds
    assert sum(1 for _ in capture._Lines(str(path))) == 1 + 50000 + len(range(0, 50000, 7))


def test_a_missing_file_is_an_os_error_and_a_plain_file_reads(tmp_path):
    with pytest.raises(FileNotFoundError):
        capture._Lines(str(tmp_path / "nothing.jsonl"))
    plain = tmp_path / "c.jsonl"
    plain.write_bytes(
        b'{"kind":"header"}\n{"feed":"a","kind":"frame","receipt_ns":1,"data":"x"}'
    )  # no final newline
    assert list(capture._Lines(str(plain)))[1] == {"feed": "a", "kind": "frame", "receipt_ns": 1, "data": "x"}
    assert list(capture._Lines(str(tmp_path / "c.jsonl"))) == list(capture._Lines(plain))  # str or a path


def test_on_one_cpu_the_capture_is_read_in_this_thread(tmp_path, monkeypatch):
    """With one CPU the reading thread would only take turns with the backtest (and zlib inflates
    slower than ISA-L): the lines come from this thread then, the same records either way."""
    path = tmp_path / "c.jsonl.gz"
    _capture(path, 100)
    two = list(read_capture(path))
    assert type(capture._capture_lines(path)) is capture._Lines
    monkeypatch.setattr(capture.os, "sched_getaffinity", lambda pid: {0})
    assert type(capture._capture_lines(path)) is not capture._Lines
    assert list(read_capture(path)) == two


def test_a_stalled_pipe_lets_ctrl_c_through_and_the_reader_go(tmp_path):
    """Reading a pipe that stops giving (a capture still being written into a FIFO): a Ctrl-C is
    handled while the reader waits, and letting the reader go ends its thread at once, the pipe
    still open and silent."""
    import signal
    import threading
    import time

    fifo = tmp_path / "stalls.jsonl"
    os.mkfifo(fifo)
    release = threading.Event()
    line = b'{"feed":"a","kind":"frame","receipt_ns":1,"data":"' + b"x" * 200 + b'"}\n'

    def writer():
        with open(fifo, "wb") as f:
            f.write(b'{"kind":"header"}\n' + line * 100)  # more than the first 16 KiB read, then silence
            f.flush()
            release.wait(30)

    threading.Thread(target=writer, daemon=True).start()
    lines = capture._Lines(str(fifo))
    got = 0
    # the Ctrl-C once lines flow: it lands in the wait for the silent pipe (or, on a slow machine,
    # still among the lines of the first read: raised all the same)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    try:
        with pytest.raises(KeyboardInterrupt):
            for _line in lines:
                got += 1
                if got == 2:
                    timer.start()
    finally:
        timer.cancel()
    assert 2 <= got < 101  # lines of the first read came through before the wait
    t0 = time.monotonic()
    del lines  # the writer is still silent: the thread must end without it
    assert time.monotonic() - t0 < 5
    release.set()

"""`latentspeed marketstream` as a process on the mock feed: topics, fields, seq, features; record → replay.

Real processes: a mock exchange on a free port, the marketstream publishing on free
ports, and this test subscribing to both ports over loopback.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict

import orjson
import zmq

W = 5  # small window: the rolling sums wrap many times in one run
N = 4  # fewer levels than the mock's 10: truncation is checked too


class Collector:
    """SUB sockets on both ports; messages grouped by topic, in arrival order."""

    def __init__(self, port: int, prefix: bytes = b"MOCK-") -> None:
        self.ctx = zmq.Context()
        self.socks = []
        self.poller = zmq.Poller()
        for p in (port, port + 1):
            s = self.ctx.socket(zmq.SUB)
            s.setsockopt(zmq.SUBSCRIBE, prefix)
            s.setsockopt(zmq.RCVHWM, 0)
            s.connect(f"tcp://127.0.0.1:{p}")
            self.socks.append(s)
            self.poller.register(s, zmq.POLLIN)
        self.by_topic: dict[str, list[dict]] = defaultdict(list)
        self.books = 0
        self.trades = 0

    def pump_until(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {what}: books={self.books} trades={self.trades}")
            for s, _ in self.poller.poll(timeout=min(left, 0.5) * 1000):
                while True:
                    try:
                        topic, payload = s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    t = topic.decode()
                    self.by_topic[t].append(orjson.loads(payload))
                    if "-preprocessed_book-" in t:
                        self.books += 1
                    else:
                        self.trades += 1

    def close(self) -> None:
        for s in self.socks:
            s.close(0)
        self.ctx.term()


def write_config(path, port: int, feed: dict) -> None:
    path.write_text(
        orjson.dumps(
            {
                "zmq": {"host": "127.0.0.1", "port": port, "window_size": W, "depth_levels": N},
                "log": {"level": "info", "file": None},
                "stats_interval": 0.5,
                "feeds": [feed],
            }
        ).decode()
    )  # JSON is YAML


def published(stderr: str) -> tuple[int, int]:
    m = re.search(r"PUBLISHED books=(\d+) trades=(\d+) book_drops=0 trade_drops=0", stderr)
    assert m, stderr
    return int(m.group(1)), int(m.group(2))


def run_and_collect(procs, cfg, port, extra=(), until=None) -> tuple[Collector, str]:
    proc = procs.start("marketstream", str(cfg), "--wait-subscribers", "1", *extra)
    proc.wait_line("waiting for 1 subscriber")
    col = Collector(port)
    try:
        if until is not None:
            col.pump_until(lambda: until(col), 30, "enough messages")
            rc = proc.stop()
        else:  # a replay: the process ends by itself when the capture is done
            rc = proc.wait(60)
        err = proc.stderr
        assert rc == 0, err
        books, trades = published(err)
        # everything published before the sockets closed reaches us (LINGER flushes it)
        col.pump_until(lambda: col.books == books and col.trades == trades, 10, "all published messages")
    finally:
        col.close()
    return col, err


def enough(col: Collector) -> bool:
    topics = col.by_topic
    return (
        len(topics.get("MOCK-preprocessed_book-BTC-USD", ())) >= 300
        and len(topics.get("MOCK-preprocessed_book-ETH-USD", ())) >= 300
        and col.trades >= 8
    )


def test_live_run_then_replay_of_its_capture(procs, mock_exchange, tmp_path, ms_ref):
    port = procs.free_port_pair()
    cfg = tmp_path / "live.yml"
    write_config(cfg, port, {"exchange": "mock", "port": mock_exchange, "symbols": ["BTC-USD", "ETH-USD"]})
    capture = tmp_path / "cap.jsonl.gz"
    live, err = run_and_collect(procs, cfg, port, ("--record", str(capture)), until=enough)

    # topics: EXCHANGE upper case, normalised symbols, books and trades on their own ports
    book_topics = {t for t in live.by_topic if "-preprocessed_book-" in t}
    trade_topics = {t for t in live.by_topic if "-preprocessed_trades-" in t}
    assert book_topics == {"MOCK-preprocessed_book-BTC-USD", "MOCK-preprocessed_book-ETH-USD"}
    assert trade_topics and trade_topics <= {
        "MOCK-preprocessed_trades-BTC-USD",
        "MOCK-preprocessed_trades-ETH-USD",
    }
    for topic, msgs in live.by_topic.items():
        symbol = topic.rsplit("-", 2)[-2] + "-" + topic.rsplit("-", 1)[-1]
        assert {(m["exchange"], m["symbol"]) for m in msgs} == {("MOCK", symbol)}
        if topic in book_topics:
            ms_ref.check_books(msgs, W, N)  # every field, seq from 1 without gaps, every feature
            assert all(len(m["bids"]) == N and len(m["asks"]) == N for m in msgs)
        else:
            ms_ref.check_trades(msgs, W)
        assert all(m["receipt_timestamp_ns"] >= m["timestamp_ns"] - 10**9 for m in msgs)
    # per-feed stats: periodic and at shutdown
    stats = re.findall(
        r"STATS feed=mock messages=(\d+) books=(\d+) trades=(\d+) errors=(\d+) .*publish_drops=(\d+)", err
    )
    assert len(stats) >= 2, err
    assert stats[-1][3] == "0" and stats[-1][4] == "0"
    assert "marketstream stopped" in err

    # replay the capture through the same MockFeed code: the same messages, in the same order
    rcfg = tmp_path / "replay.yml"
    write_config(rcfg, port, {"exchange": "mock", "replay": str(capture), "speed": "max"})
    replay, _ = run_and_collect(procs, rcfg, port)
    assert set(replay.by_topic) == set(live.by_topic)
    for topic, msgs in live.by_topic.items():
        got = replay.by_topic[topic]
        assert len(got) == len(msgs), topic
        for a, b in zip(msgs, got, strict=True):
            assert a == b  # recorded receipt times are replayed too, so even timestamps agree


def test_bad_config_is_exit_2_with_key_path(procs, tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text(
        "zmq: {port: 5556}\nfeeds:\n  - {exchange: mock, symbols: [BTC-USD]}\n  - {exchange: mock, symbols: [BTCUSD]}\n"
    )
    p = procs.start("marketstream", str(cfg))
    assert p.wait() == 2
    err = p.stderr
    assert f"{cfg}: feeds[1].symbols" in err and "Traceback" not in err
    cfg.write_text("feeds:\n  - {exchange: nosuch}\n")
    p = procs.start("marketstream", str(cfg))
    assert p.wait() == 2
    err = p.stderr
    assert "feeds[0].exchange: unknown feed 'nosuch'; installed feeds:" in err and "mock" in err
    cfg.write_text("zmq: {port: 5556, colour: red}\nfeeds:\n  - {exchange: mock}\n")
    p = procs.start("marketstream", str(cfg))
    assert p.wait() == 2
    assert "zmq.colour: unknown key" in p.stderr  # (was an assignment that asserted nothing)
    # a log file that is a directory: refused with the config, not a traceback once logging starts
    cfg.write_text(f"log: {{file: {tmp_path}}}\nfeeds:\n  - {{exchange: mock, symbols: [BTC-USD]}}\n")
    p = procs.start("marketstream", str(cfg))
    assert p.wait() == 2
    assert f"log.file: {tmp_path}: is a directory" in p.stderr and "Traceback" not in p.stderr


def test_port_in_use_is_a_clear_error(procs, tmp_path):
    import socket

    port = procs.free_port_pair()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port + 1))  # the books port is taken
        busy.listen()
        cfg = tmp_path / "ms.yml"
        write_config(cfg, port, {"exchange": "mock", "port": 9})
        p = procs.start("marketstream", str(cfg))
        assert p.wait() == 2  # the config's to change: a config error (issue 17: one exit code scheme)
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith(f"latentspeed marketstream: error: {cfg}: zmq.port: cannot bind tcp://127.0.0.1:{port}")
    assert "Traceback" not in p.stderr


def test_marketstream_and_record_that_get_no_data_exit_1_naming_the_feed(run_cli, tmp_path):
    """Issue 17: a run that never received data must not look successful."""
    import yaml

    from latentspeed_core.testing import free_port

    port = free_port()  # nothing listens here
    cfg = tmp_path / "ms.yml"
    cfg.write_text(yaml.safe_dump({
        "zmq": {"port": free_port()},
        "startup_timeout": 1.5,
        "feeds": [{"exchange": "mock", "port": port, "symbols": ["BTC-USD"]}],
    }))  # fmt: skip
    proc = run_cli("marketstream", str(cfg), "--duration", "30", timeout=60)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"latentspeed marketstream: error: no market data from mock (127.0.0.1:{port}) within 1.5s (startup_timeout)"
    proc = run_cli("record", str(cfg), "--out", str(tmp_path / "c.jsonl"), "--duration", "1", timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("latentspeed record: error: no market data from mock")

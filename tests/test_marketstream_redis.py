"""`latentspeed marketstream` with `sinks: [{type: redis}]`, as real processes on loopback.

A mock exchange, the marketstream (mock feed) publishing on ZeroMQ and into a real redis-server,
this test subscribed on ZeroMQ. What must hold: each topic's stream holds exactly the bytes the
ZeroMQ subscriber got, in order; and when Redis is killed and restarted mid-run, ZeroMQ misses
nothing, the sink counts and logs its drops, and the stream resumes up to the last message.
"""

from __future__ import annotations

import re

import orjson
import pytest

from latentspeed_core.testing import ZmqCollector, redis_server_or_skip, wait_for

pytest.importorskip("latentspeed_sink_redis")
redis = pytest.importorskip("redis")


@pytest.fixture
def redis_srv(tmp_path):
    with redis_server_or_skip(tmp_path / "redis") as server:
        yield server


def write_config(path, port: int, mock_port: int, url: str, **sink) -> None:
    path.write_text(orjson.dumps({
        "zmq": {"host": "127.0.0.1", "port": port, "sndhwm": 100_000},
        "log": {"level": "info", "file": None},
        "stats_interval": 60,
        "feeds": [{"exchange": "mock", "port": mock_port, "symbols": ["BTC-USD", "ETH-USD"]}],
        "sinks": [{"type": "redis", "url": url, **sink}],
    }).decode())  # fmt: skip  (JSON is YAML)


def final_counts(stderr: str) -> tuple[int, int, dict[str, int]]:
    m = re.search(r"PUBLISHED books=(\d+) trades=(\d+) book_drops=0 trade_drops=0", stderr)
    assert m, stderr
    s = re.findall(r"SINK sink=redis (.*)", stderr)
    assert s, stderr
    sink = {k: int(v) for k, v in (kv.split("=") for kv in s[-1].split())}
    return int(m.group(1)), int(m.group(2)), sink


def test_each_stream_holds_what_zeromq_subscribers_got(procs, mock_exchange, tmp_path, redis_srv):
    port = procs.free_port_pair()
    cfg = tmp_path / "ms.yml"
    write_config(cfg, port, mock_exchange, redis_srv.url, batch=50)
    proc = procs.start("marketstream", str(cfg), "--wait-subscribers", "1")
    proc.wait_line("waiting for 1 subscriber")
    sub = ZmqCollector(port, b"MOCK-")
    try:
        sub.pump_until(1500)
        assert proc.stop() == 0, proc.stderr
        books, trades, sink = final_counts(proc.stderr)
        sub.pump_until(books + trades, 10)
    finally:
        sub.close()
    assert sink["written"] == books + trades and sink["dropped"] == sink["unsent"] == 0
    r = redis.Redis.from_url(redis_srv.url)
    topics = {t.decode() for t in r.keys("MOCK-*")}
    assert topics == set(sub.by_topic) and "MOCK-preprocessed_book-BTC-USD" in topics
    for topic, payloads in sub.by_topic.items():
        assert [f[b"data"] for _, f in r.xrange(topic)] == payloads  # complete, byte for byte, in order


def test_redis_killed_and_restarted_mid_run(procs, mock_exchange, tmp_path, redis_srv):
    port = procs.free_port_pair()
    cfg = tmp_path / "ms.yml"
    write_config(cfg, port, mock_exchange, redis_srv.url, buffer=50, batch=10)
    proc = procs.start("marketstream", str(cfg), "--wait-subscribers", "1")
    proc.wait_line("waiting for 1 subscriber")
    sub = ZmqCollector(port, b"MOCK-")
    try:
        sub.pump_until(200)
        redis_srv.kill()
        proc.wait_line("sink redis: lost redis://")
        sub.pump_until(sub.count + 400)  # the marketstream keeps publishing on ZeroMQ meanwhile
        proc.wait_line("messages dropped so far")
        redis_srv.start()
        wait_for(lambda: proc.stderr.count("sink redis: connected to") >= 2, 30, "the sink to reconnect")
        sub.pump_until(sub.count + 300)
        assert proc.stop() == 0, proc.stderr
        books, trades, sink = final_counts(proc.stderr)
        sub.pump_until(books + trades, 10)
    finally:
        sub.close()
    assert sink["dropped"] > 0 and sink["reconnects"] >= 1 and sink["unsent"] == 0
    r = redis.Redis.from_url(redis_srv.url)
    gaps = 0
    for topic, payloads in sub.by_topic.items():
        seqs = [orjson.loads(p)["seq"] for p in payloads]
        assert seqs == list(range(1, len(seqs) + 1)), topic  # ZeroMQ missed nothing
        stored = [f[b"data"] for _, f in r.xrange(topic)]  # since the restart (nothing was saved)
        if "-preprocessed_book-" in topic:  # books never pause; a trade may all fall in the outage
            assert stored and stored[-1] == payloads[-1], topic  # the stream resumed to the last message
        stored_seqs = [orjson.loads(p)["seq"] for p in stored]
        assert stored_seqs == sorted(stored_seqs)  # in order
        assert all(p == payloads[s - 1] for p, s in zip(stored, stored_seqs, strict=True))  # each complete
        gaps += sum(b - a - 1 for a, b in zip(stored_seqs, stored_seqs[1:], strict=False))
    assert gaps <= sink["dropped"]  # what the restarted Redis lacks was dropped (or went with the old one)

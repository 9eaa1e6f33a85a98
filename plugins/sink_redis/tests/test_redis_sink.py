"""The Redis sink behind the real ZeroMQ Publisher, against a real redis-server.

What goes in: book and trade messages published on three topics. What must come out: in each
topic's stream, field ``data`` holding exactly the bytes ZeroMQ subscribers received, in the same
order; and while Redis is away, ZeroMQ keeps getting everything, the sink buffers up to
``buffer`` messages and counts (and logs) the drops beyond it, then the stream resumes.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections import defaultdict

import orjson
import pytest
import redis
import zmq
from latentspeed_sink_redis.config import RedisSinkConfig
from latentspeed_sink_redis.sink import RedisSink

from latentspeed_core.marketstream.publisher import Publisher
from latentspeed_core.testing import ZmqCollector, free_port, wait_for

BOOK_A = "MOCK-preprocessed_book-BTC-USD"
BOOK_B = "MOCK-preprocessed_book-ETH-USD"
TRADES = "MOCK-preprocessed_trades-BTC-USD"


class Source:
    """Messages with a per-topic ``seq``, round-robin over three topics (books and trades)."""

    def __init__(self) -> None:
        self.seq: dict[str, int] = defaultdict(int)
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, pub: Publisher, n: int) -> None:
        for i in range(n):
            topic = (BOOK_A, BOOK_B, TRADES)[i % 3]
            self.seq[topic] += 1
            seq = self.seq[topic]
            if topic == TRADES:
                msg = {"exchange": "MOCK", "symbol": "BTC-USD", "price": 50_000.5 + seq, "amount": 0.25,
                       "side": "buy", "trade_id": f"t{seq}", "seq": seq, "schema_version": 1}  # fmt: skip
                assert pub.publish_trade(topic, msg)
            else:
                msg = {"exchange": "MOCK", "symbol": topic.rsplit("-", 2)[-2] + "-USD", "seq": seq,
                       "bids": [[100.0 + seq, 1.5]], "asks": [[101.0 + seq, 2.0]], "schema_version": 1}  # fmt: skip
                assert pub.publish_book(topic, msg)
            self.sent.append((topic, orjson.dumps(msg)))


def publisher(sinks) -> Publisher:
    for _ in range(20):
        port = free_port()
        try:
            # a queue big enough that a burst never drops for the test's subscriber
            return Publisher("127.0.0.1", port, sndhwm=100_000, sinks=sinks)
        except zmq.ZMQError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError("no free port pair")


def is_subsequence(part: list, whole: list) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def stream(r: redis.Redis, topic: str) -> list[bytes]:
    entries = r.xrange(topic)
    assert [set(fields) for _, fields in entries] == [{b"data"}] * len(entries)  # one field, `data`
    return [fields[b"data"] for _, fields in entries]


@pytest.fixture
def rig(redis_srv):
    """``rig(**sink_config) -> (sink, publisher, subscriber)``, all closed at the end."""
    made = []

    def build(**cfg):
        sink = RedisSink(RedisSinkConfig(type="redis", url=redis_srv.url, **cfg))
        sink.start()
        pub = publisher([sink])
        sub = ZmqCollector(pub.port)
        made.append((sink, pub, sub))
        assert asyncio.run(pub.wait_subscribers(1, timeout=10)), "subscriber did not connect"
        return sink, pub, sub

    yield build
    for sink, pub, sub in made:
        pub.close()
        sink.close(timeout=2)
        sub.close()


def test_every_message_reaches_its_stream_as_zeromq_subscribers_get_it(redis_srv, rig):
    sink, pub, sub = rig(batch=64)
    src = Source()
    src.publish(pub, 3000)
    sub.pump_until(3000)
    wait_for(lambda: sink.written == 3000, 20, "3000 messages written to Redis")
    r = redis.Redis.from_url(redis_srv.url)
    assert sorted(r.keys()) == sorted(t.encode() for t in (BOOK_A, BOOK_B, TRADES))
    for topic in (BOOK_A, BOOK_B, TRADES):
        got = stream(r, topic)
        assert got == sub.by_topic[topic]  # complete, byte for byte, in order
        assert [orjson.loads(m)["seq"] for m in got] == list(range(1, 1001))
    assert sink.stats() == {"written": 3000, "refused": 0, "dropped": 0, "buffered": 0, "unsent": 0,
                            "reconnects": 0, "connected": True}  # fmt: skip


def test_messages_redis_refuses_are_counted_and_the_others_stored(redis_srv, rig, caplog):
    r = redis.Redis.from_url(redis_srv.url)
    r.set(BOOK_B, "not a stream")  # XADD to this key fails: WRONGTYPE
    sink, pub, sub = rig(batch=30)
    Source().publish(pub, 300)
    wait_for(lambda: sink.written + sink.refused == 300, 20, "300 answered")
    assert (sink.written, sink.refused, sink.reconnects) == (200, 100, 0)
    assert r.xlen(BOOK_A) == 100 and r.xlen(TRADES) == 100
    assert "Redis refused" in caplog.text and "WRONGTYPE" in caplog.text


def test_maxlen_trims_each_stream_approximately(redis_srv, rig):
    sink, pub, sub = rig(maxlen=100, batch=50)
    src = Source()
    src.publish(pub, 3000)
    sub.pump_until(3000)
    wait_for(lambda: sink.written == 3000, 20, "3000 messages written")
    r = redis.Redis.from_url(redis_srv.url)
    for topic in (BOOK_A, BOOK_B, TRADES):
        n = r.xlen(topic)
        assert 100 <= n < 1000  # ~: Redis trims whole nodes, never below MAXLEN
        assert stream(r, topic) == sub.by_topic[topic][-n:]  # the newest kept


def test_redis_killed_and_restarted_publishing_goes_on_drops_are_counted_the_stream_resumes(
    redis_srv, rig, caplog
):
    caplog.set_level(logging.INFO, logger="latentspeed.sink")
    sink, pub, sub = rig(buffer=200, batch=50)
    src = Source()
    src.publish(pub, 150)  # fewer than `buffer`: none dropped
    wait_for(lambda: sink.written == 150, 20, "the first 150 written")

    redis_srv.kill()
    src.publish(pub, 1500)  # never waits for Redis: every message goes out on ZeroMQ meanwhile
    sub.pump_until(1650)
    wait_for(lambda: sink.reconnects >= 1, 20, "the sink to notice Redis is gone")
    assert pub.drops == 0 and sink.written == 150
    assert sink.dropped > 0 and sink.dropped + sink.buffered == 1500 and sink.buffered <= 200 + 50
    dropped = sink.dropped

    redis_srv.start()  # same port, empty: nothing was saved
    wait_for(lambda: sink.connected and sink.buffered == 0, 30, "the sink to reconnect and flush")
    src.publish(pub, 150)  # fewer than `buffer` again: none dropped
    sub.pump_until(1800)
    wait_for(lambda: sink.written == 150 + 1500 - dropped + 150, 20, "the rest written")

    # Redis (empty after the restart) holds what was buffered while it was away, then everything
    # published after it came back: in order, each message as on ZeroMQ, the dropped ones missing.
    outage, after = src.sent[150:1650], src.sent[1650:]
    r = redis.Redis.from_url(redis_srv.url)
    total = 0
    for topic in (BOOK_A, BOOK_B, TRADES):
        got = stream(r, topic)
        total += len(got)
        assert is_subsequence(got, [data for t, data in outage + after if t == topic])
        tail = [data for t, data in after if t == topic]
        assert got[-len(tail):] == tail == sub.by_topic[topic][-len(tail):]  # the stream resumed
    assert total == 1500 - dropped + 150
    assert sink.dropped == dropped and sink.stats()["reconnects"] >= 1
    wait_for(lambda: "messages dropped so far" in caplog.text, 10, "the drops logged")  # at once, then every 5 s
    sink.close()
    assert f"{dropped} messages dropped so far" in caplog.text  # and the total, on closing
    assert caplog.text.count("connected to") >= 2 and "lost redis://127.0.0.1" in caplog.text


def test_a_flushed_script_cache_is_reloaded_without_losing_a_message(redis_srv, rig):
    sink, pub, sub = rig(batch=10)
    src = Source()
    src.publish(pub, 30)
    wait_for(lambda: sink.written == 30, 20, "30 written")
    redis.Redis.from_url(redis_srv.url).script_flush()  # as after a failover to a fresh replica
    src.publish(pub, 30)
    wait_for(lambda: sink.written == 60, 20, "60 written")
    assert (sink.refused, sink.reconnects) == (0, 0)

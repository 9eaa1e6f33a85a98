"""ZeroMQ publishing and subscribing over loopback: frames, topics, prefixes, slow subscribers."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import pytest
import zmq

from latentspeed_core.config import FeedConfig
from latentspeed_core.feed import Feed
from latentspeed_core.marketstream.publisher import Publisher
from latentspeed_core.marketstream.subscriber import ZmqSubscriber
from latentspeed_core.testing import async_wait_for
from latentspeed_core.types import Trade


class TradeFeed(Feed):
    exchange = "TEST"

    def __init__(self):
        super().__init__(FeedConfig(exchange="test"))

    async def run_live(self):  # pragma: no cover
        raise NotImplementedError

    def on_frame(self, data, receipt_ns):  # pragma: no cover
        pass


@pytest.fixture
def publisher(procs):
    pub = Publisher("127.0.0.1", procs.free_port_pair(), sndhwm=100, linger_ms=0)
    yield pub
    pub.close()


def sub_socket(ctx, port, prefix=b"", rcvhwm=1000):
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, rcvhwm)
    s.setsockopt(zmq.SUBSCRIBE, prefix)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"tcp://127.0.0.1:{port}")
    return s


def test_two_frames_topic_then_json_on_separate_ports(publisher):
    ctx = zmq.Context()
    trades = sub_socket(ctx, publisher.port)
    books = sub_socket(ctx, publisher.port + 1)
    try:
        asyncio.run(asyncio.wait_for(publisher.wait_subscribers(1), 10))
        assert publisher.publish_trade("MOCK-preprocessed_trades-BTC-USD", {"seq": 1, "price": 1.5})
        assert publisher.publish_book("MOCK-preprocessed_book-BTC-USD", {"seq": 1, "bids": [[1.0, 2.0]]})
        assert trades.poll(5000)
        assert trades.recv_multipart() == [b"MOCK-preprocessed_trades-BTC-USD", b'{"seq":1,"price":1.5}']
        assert books.poll(5000)
        topic, payload = books.recv_multipart()
        assert topic == b"MOCK-preprocessed_book-BTC-USD" and orjson.loads(payload) == {
            "seq": 1,
            "bids": [[1.0, 2.0]],
        }
        assert not trades.poll(0) and not books.poll(0)  # nothing crossed over to the wrong port
        assert publisher.books_sent == 1 and publisher.trades_sent == 1 and publisher.drops == 0
    finally:
        trades.close()
        books.close()
        ctx.term()


def test_slow_subscriber_drops_are_counted_logged_and_never_block(publisher, caplog):
    from latentspeed_core.marketstream.features import STANDARD
    from latentspeed_core.marketstream.pipeline import Pipeline

    caplog.set_level(logging.WARNING)
    ctx = zmq.Context()
    slow = sub_socket(ctx, publisher.port, rcvhwm=10)  # connected, subscribed, never reading
    try:
        asyncio.run(asyncio.wait_for(publisher.wait_subscribers(1, sockets=("trades",)), 10))
        feed = TradeFeed()
        calcs = [c.factory(c.config_model(), 20, 10) for c in STANDARD]
        pipe = Pipeline(20, 10, calcs, publisher.publish_book, publisher.publish_trade)
        total = 50_000
        pad = "x" * 1000  # big trade ids fill the kernel buffers quickly
        start = time.monotonic()
        for i in range(total):
            pipe.on_trade(feed, Trade("TEST", "BTC-USD", i, i, 100.0 + (i % 7), 1.0, "buy", pad))
        took = time.monotonic() - start
        assert took < 20, f"publishing {total} messages took {took:.1f}s: the publisher waited"
        assert publisher.trade_drops > 0
        assert feed.stats.publish_drops == publisher.trade_drops
        assert publisher.trades_sent + publisher.trade_drops == total
        assert "too slow" in caplog.text
        # the slow subscriber, reading at last, sees gaps in seq where messages were dropped
        seqs = []
        while slow.poll(200):
            seqs.append(orjson.loads(slow.recv_multipart()[1])["seq"])
        assert seqs and seqs == sorted(seqs) and len(seqs) < total
        assert seqs[0] == 1 and any(b - a > 1 for a, b in zip(seqs, seqs[1:], strict=False))
    finally:
        slow.close()
        ctx.term()


def test_zmq_subscriber_filters_by_prefix_and_routes_by_port(publisher):
    got_books, got_trades = [], []

    async def main():
        sub = ZmqSubscriber(
            "127.0.0.1",
            publisher.port,
            ["MOCK-"],
            on_book=lambda t, m: got_books.append((t, m)),
            on_trade=lambda t, m: got_trades.append((t, m)),
        )
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(publisher.wait_subscribers(1), 10)
        publisher.publish_book("DYDX-preprocessed_book-BTC-USD", {"seq": 1})
        for i in range(1, 4):
            publisher.publish_book("MOCK-preprocessed_book-BTC-USD", {"seq": i})
            publisher.publish_trade("MOCK-preprocessed_trades-ETH-USD", {"seq": i})
        publisher.books.send_multipart([b"MOCK-preprocessed_book-BTC-USD", b"not json"])
        publisher.publish_book("MOCK-preprocessed_book-BTC-USD", {"seq": 4})
        await async_wait_for(lambda: len(got_books) >= 4 and len(got_trades) >= 3, 10, "books and trades")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return sub

    sub = asyncio.run(main())
    assert [m["seq"] for _, m in got_books] == [1, 2, 3, 4]
    assert {t for t, _ in got_books} == {"MOCK-preprocessed_book-BTC-USD"}
    assert [(t, m["seq"]) for t, m in got_trades] == [
        ("MOCK-preprocessed_trades-ETH-USD", i) for i in (1, 2, 3)
    ]
    assert sub.errors == 1  # the bad JSON was counted and skipped

"""The engine's Redis source: consumer groups on a real redis-server.

What must hold: each message handed to the engine once per group, in order; acknowledged ones
never again after a restart; given-but-unacknowledged ones given back first; a Redis that goes
away and comes back empty is reconnected to and its groups made again; and an engine wired with
``market_data.redis`` trades from a marketstream's streams and resumes exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno

import orjson
import pytest
import redis
import zmq
from latentspeed_sink_redis.config import RedisSinkConfig, RedisSourceConfig
from latentspeed_sink_redis.sink import RedisSink
from latentspeed_sink_redis.source import RedisSource

from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.marketstream.config import build_feeds, feed_names
from latentspeed_core.marketstream.features import build_calculators
from latentspeed_core.marketstream.pipeline import Pipeline
from latentspeed_core.marketstream.publisher import Publisher
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import async_wait_for, free_port

BOOKS = "MOCK-preprocessed_book-BTC-USD"
TRADES = "MOCK-preprocessed_trades-BTC-USD"


def add(r: redis.Redis, key: str, seqs) -> None:
    for seq in seqs:
        r.xadd(key, {"data": orjson.dumps({"symbol": "BTC-USD", "seq": seq})})


class Consumer:
    """A RedisSource on this event loop, recording the ``seq`` of what it hands over."""

    def __init__(self, url: str, **cfg) -> None:
        cfg.setdefault("streams", [BOOKS, TRADES])
        cfg.setdefault("group", "desk")
        cfg.setdefault("block_ms", 100)
        self.books: list[int] = []
        self.trades: list[int] = []
        self.source = RedisSource(RedisSourceConfig(url=url, **cfg),
                                  lambda m: self.books.append(m["seq"]), lambda m: self.trades.append(m["seq"]))  # fmt: skip
        self.task = asyncio.create_task(self.source.run())

    async def until(self, books: int, trades: int = 0, what: str = "messages") -> None:
        s = self.source
        await async_wait_for(lambda: len(self.books) >= books and len(self.trades) >= trades
                             and s.acked == len(self.books) + len(self.trades), 10, what)  # fmt: skip

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def test_a_restarted_consumer_resumes_after_what_it_acknowledged(redis_srv):
    r = redis.Redis.from_url(redis_srv.url)

    async def main():
        first = Consumer(redis_srv.url)
        await asyncio.wait_for(first.source.connected.wait(), 10)  # groups made at the end ("new")
        add(r, BOOKS, range(1, 11))
        add(r, TRADES, range(1, 4))
        await first.until(10, 3)
        await first.stop()
        assert (first.books, first.trades) == (list(range(1, 11)), [1, 2, 3])
        assert r.xpending(BOOKS, "desk")["pending"] == 0 and r.xpending(TRADES, "desk")["pending"] == 0

        add(r, BOOKS, range(11, 16))  # published while no engine reads
        second = Consumer(redis_srv.url)
        await second.until(5)
        add(r, BOOKS, [16])
        await second.until(6)
        await second.stop()
        assert second.books == list(range(11, 17)) and second.trades == []  # nothing handled twice
        assert second.source.stats()["redis"] == {"messages": 6, "acked": 6, "redelivered": 0, "errors": 0,
                                                  "reconnects": 0}  # fmt: skip

    asyncio.run(main())


def test_messages_given_but_not_acknowledged_are_given_back_first(redis_srv):
    r = redis.Redis.from_url(redis_srv.url)
    r.xgroup_create(BOOKS, "desk", id="0", mkstream=True)
    add(r, BOOKS, range(1, 6))
    # a previous run of this engine was given 1..3 and stopped before acknowledging them
    assert len(r.xreadgroup("desk", "engine", {BOOKS: ">"}, count=3)[0][1]) == 3

    async def main():
        c = Consumer(redis_srv.url, streams=[BOOKS])
        await c.until(5)
        await c.stop()
        assert c.books == [1, 2, 3, 4, 5] and c.source.redelivered == 3

    asyncio.run(main())
    assert r.xpending(BOOKS, "desk")["pending"] == 0


def test_a_group_that_does_not_exist_starts_at_the_end_or_with_start_all_at_the_beginning(redis_srv):
    r = redis.Redis.from_url(redis_srv.url)
    add(r, BOOKS, range(1, 4))

    async def main():
        new = Consumer(redis_srv.url, streams=[BOOKS], group="late")
        everything = Consumer(redis_srv.url, streams=[BOOKS], group="research", start="all")
        await asyncio.wait_for(new.source.connected.wait(), 10)
        add(r, BOOKS, [4])
        await new.until(1)
        await everything.until(4)
        await new.stop()
        await everything.stop()
        assert new.books == [4] and everything.books == [1, 2, 3, 4]  # two groups: each gets all

    asyncio.run(main())


def test_redis_gone_and_back_empty_the_consumer_reconnects_and_makes_its_groups_again(redis_srv):
    async def main():
        c = Consumer(redis_srv.url, streams=[BOOKS])
        await asyncio.wait_for(c.source.connected.wait(), 10)
        add(redis.Redis.from_url(redis_srv.url), BOOKS, [1, 2])
        await c.until(2)
        redis_srv.kill()
        await async_wait_for(lambda: c.source.reconnects >= 1 and not c.source.connected.is_set(), 10, "loss")
        await asyncio.to_thread(redis_srv.start)
        await asyncio.wait_for(c.source.connected.wait(), 20)
        r = redis.Redis.from_url(redis_srv.url)
        add(r, BOOKS, [3, 4])
        await c.until(4)
        r.delete(BOOKS)  # the stream deleted under a blocked read: made again, reading goes on
        await async_wait_for(lambda: r.exists(BOOKS) and r.xinfo_groups(BOOKS), 10, "the group made again")
        add(r, BOOKS, [5])
        await c.until(5)
        await c.stop()
        assert c.books == [1, 2, 3, 4, 5]

    asyncio.run(main())


def test_a_stop_always_ends_the_consumer_even_mid_read(redis_srv):
    """Stopped anywhere (connecting, reading, blocked), the source ends at once. redis-py's asyncio
    client can lose the cancellation of a blocking read (seen with 8.2, about 1 in 150 cancels):
    the source checks for it after each call instead of reading on forever."""
    import random

    rng = random.Random(7)

    async def main():
        for _ in range(100):
            c = Consumer(redis_srv.url, streams=[BOOKS], block_ms=2)  # short reads: many cancels land
            await asyncio.sleep(rng.uniform(0.0, 0.05))  # as one ends: connecting, reading, blocked
            await asyncio.wait_for(c.stop(), 2)  # a lost cancellation held a stop for seconds

    asyncio.run(main())


# -- an engine trading from a marketstream's streams ----------------------------------------
server = pytest.importorskip("latentspeed_mock_exchange.server")
from latentspeed_mock_exchange.config import MockExchangeConfig  # noqa: E402

REG = load_registry(["redis", "mock", "examples"])


async def marketstream(ex_port: int, redis_url: str):
    """The marketstream's parts in this loop: mock feed -> Pipeline -> Publisher + Redis sink."""
    from latentspeed_core.config import validate

    feed_cfg = validate(REG.feeds["mock"].config_model, {"exchange": "mock", "port": ex_port, "symbols": ["BTC-USD"]})
    (feed,) = build_feeds([feed_cfg], feed_names([feed_cfg]), REG)
    sink = RedisSink(RedisSinkConfig(type="redis", url=redis_url, batch=20))
    sink.start()
    for _ in range(20):
        try:
            pub = Publisher("127.0.0.1", free_port(), sinks=[sink])
            break
        except zmq.ZMQError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    pipeline = Pipeline(20, 10, build_calculators(REG, 20, 10), pub.publish_book, pub.publish_trade)
    return asyncio.create_task(feed.run(pipeline)), pub, sink


def engine_setup(ex_port: int, redis_url: str):
    return resolve({
        "market_data": {"redis": {"url": redis_url, "streams": [BOOKS, TRADES], "group": "desk", "block_ms": 100}},
        "venue": {"exchange": "mock", "port": ex_port},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USD"],
                        "params": {"qty": 0.01, "half_spread_bps": 1.0, "max_position": 0.1}}],
        "risk": {"max_order_qty": 1, "max_position": 1},
        "latency": {"file": None},
        "log": {"file": None},
        "output_dir": ".",
    }, REG)  # fmt: skip


def test_an_engine_trades_from_redis_and_resumes_where_it_stopped(redis_srv):
    async def run_engine(ex_port: int, books: int) -> tuple[list[int], dict]:
        seqs: list[int] = []
        runner = EngineRunner(engine_setup(ex_port, redis_srv.url), REG, book_listeners=[lambda m: seqs.append(m["seq"])])
        task = asyncio.create_task(runner.run(install_signals=False))
        try:
            await async_wait_for(lambda: len(seqs) >= books and runner.engine.orders_sent > 0, 20, "books")
        finally:
            runner.stop("test done")
            summary = await asyncio.wait_for(task, 10)
        return seqs, summary

    async def main():
        ex = await server.MockExchange(MockExchangeConfig(port=0, symbols=["BTC-USD"], seed=3, tick_rate=5.0)).start()
        feed_task, pub, sink = await marketstream(ex.port, redis_srv.url)
        r = redis.Redis.from_url(redis_srv.url)
        try:
            first, summary = await run_engine(ex.port, 30)
            assert summary["orders"] > 0 and summary["error"] is None
            assert summary["market_data"]["redis"]["messages"] >= 30
            # All it handled is acknowledged, also while stopping. A read the stop cancelled may have
            # been given messages it never handled: those stay pending (the next run gets them first).
            for p in r.xpending_range(BOOKS, "desk", "-", "+", 1000):
                ((_, fields),) = r.xrange(BOOKS, p["message_id"], p["message_id"])
                assert orjson.loads(fields[b"data"])["seq"] not in first, "handled but not acknowledged"
            # the marketstream goes on publishing while no engine runs
            await async_wait_for(lambda: r.xinfo_groups(BOOKS)[0]["lag"] >= 20, 20, "books while stopped")
            second, _ = await run_engine(ex.port, 40)
        finally:
            feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed_task
            pub.close()
            sink.close()
            await ex.stop()
        assert first == list(range(first[0], first[0] + len(first)))  # in order, none missing
        assert second == list(range(first[-1] + 1, first[-1] + 1 + len(second)))  # resumed, none twice

    asyncio.run(main())

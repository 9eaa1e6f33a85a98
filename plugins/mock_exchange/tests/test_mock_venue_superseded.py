"""Superseded snapshots (engine ``market_data.conflate``): two MARKET_DATA of one symbol in one read.

A scripted exchange on a free loopback port writes both snapshots with one ``write``; the
engine must run both through the Pipeline (book, features, seq) but call the strategy on the
last one only, or on both with ``conflate: false``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from latentspeed_mock_exchange import protocol as P

from latentspeed_core import hookimpl
from latentspeed_core.components import Component
from latentspeed_core.config import StrictModel
from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.engine.strategy import Strategy
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import async_wait_for, free_port


class _NoParams(StrictModel):
    pass


class _Recorder(Strategy):
    seen: list[dict] = []

    def on_book(self, msg: dict) -> None:
        _Recorder.seen.append(msg)


class _Plugin:
    __name__ = "superseded_test"

    @staticmethod
    @hookimpl
    def register_strategies(register):
        register(Component("recorder", _NoParams, _Recorder))


def _fx(x: float) -> int:
    return P.to_fixed(x)


def _md(seq: int, bid: float, ask: float) -> bytes:
    return P.encode_market_data(
        seq, time.time_ns(), 1, [(_fx(bid), _fx(1.0)), (_fx(bid - 1), _fx(2.0))],
        [(_fx(ask), _fx(1.5)), (_fx(ask + 1), _fx(2.5))],
    )  # fmt: skip


async def _scenario(conflate: bool) -> tuple[list[dict], EngineRunner]:
    _Recorder.seen = []
    sent = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(P.encode_security_definition(1, time.time_ns(), 1, _fx(0.5), _fx(0.001), "BTC-USD"))
        writer.write(_md(2, 100.0, 101.0))  # the first message after the definitions: session ready
        await writer.drain()
        await async_wait_for(lambda: _Recorder.seen, 5)  # the engine took the first on its own read
        writer.write(_md(3, 200.0, 201.0) + _md(4, 300.0, 301.0))  # one write: 3 is superseded by 4
        await writer.drain()
        sent.set()
        try:
            await reader.read()  # until the engine goes
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    registry = load_registry(["mock"], extra=[_Plugin()])
    data = {
        "market_data": {"from_venue": True, "conflate": conflate},
        "venue": {"exchange": "mock", "port": port},
        "strategies": [{"name": "recorder", "symbols": ["BTC-USD"]}],
        "stats_interval": 3600,
        "latency": {"file": None},
    }
    runner = EngineRunner(resolve(data, registry, "<test>"), registry)
    task = asyncio.create_task(runner.run(install_signals=False))
    try:
        await asyncio.wait_for(sent.wait(), 5)
        await async_wait_for(lambda: runner.engine.rx_packets >= 3, 5)
    finally:
        runner.stop("test done")
        await asyncio.wait_for(task, 10)
        server.close()
        await server.wait_closed()
    return _Recorder.seen, runner


@pytest.mark.parametrize("conflate", [True, False])
def test_superseded_snapshot_updates_book_and_features_but_strategy_acts_on_the_latest(conflate):
    seen, runner = asyncio.run(_scenario(conflate))
    engine = runner.engine
    asks = [m["asks"][0][0] for m in seen]
    if conflate:
        assert asks == [101.0, 301.0]
    else:
        assert asks == [101.0, 201.0, 301.0]
    # Every snapshot went through the Pipeline: the last message is the topic's third.
    assert seen[-1]["seq"] == 3
    assert engine.rx_packets == 3
    assert engine.books["BTC-USD"]["asks"][0][0] == 301.0
    assert engine.mid("BTC-USD") == pytest.approx(300.5)
    assert runner.source.feed.stats.messages == 3

"""Running the real engine against the Bybit emulator: configs, a do-nothing strategy, a session helper.

The engine's market data comes from the emulator's public stream through the ``bybit`` feed, and its
orders go through the ``bybit`` venue to the emulator's private API: the whole path of a live run,
on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bybit_private_emulator import BybitEmulator

from latentspeed_core import hookimpl
from latentspeed_core.components import Component
from latentspeed_core.config import StrictModel
from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.engine.strategy import Strategy
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import async_wait_for

BOOK = ([["60000.0", "5"]], [["60001.0", "5"]])


class NoParams(StrictModel):
    pass


class Manual(Strategy):
    """Does nothing by itself: the test decides every order (``engine.submit("manual", ...)``)."""


class KitPlugin:
    __name__ = "bybit_engine_kit"

    @staticmethod
    @hookimpl
    def register_strategies(register):
        register(Component("manual", NoParams, Manual))


def registry():
    return load_registry(["bybit", "examples"], extra=[KitPlugin()])


def engine_config(
    emu: BybitEmulator, strategy: str = "manual", params: dict | None = None, **venue: Any
) -> dict:
    return {
        "market_data": {"startup_timeout": 15, "feeds": [
            {"exchange": "bybit", "market": emu.market, "symbols": ["BTC-USDT"], "ws_url": emu.public_url,
             "depth": 1, "trades": True}]},
        "venue": {"exchange": "bybit", "market": emu.market, "testnet": True, "rest_url": emu.rest_url,
                  "ws_url": emu.ws_url, "api_key": emu.api_key, "api_secret": emu.api_secret,
                  "backoff_initial": 0.05, "backoff_max": 0.2, **venue},
        "strategies": [{"name": strategy, "symbols": ["BTC-USDT"], "params": params or {}}],
        "risk": {"max_order_qty": 0.05, "max_notional": 5000, "max_position": 0.05, "price_band_bps": 50,
                 "max_orders_per_second": 100, "max_open_orders": 20},
        "fees": {"maker_bps": 2.0, "taker_bps": 5.5},
        "latency": {"file": None},
        "stats_interval": 60,
        "shutdown_timeout": 5,
    }  # fmt: skip


@contextlib.asynccontextmanager
async def engine_on(emu: BybitEmulator, config: dict | None = None, wait_connected: bool = True,
                    record: str | None = None):  # fmt: skip
    """An ``EngineRunner`` running on ``emu`` (yielded once the venue is connected and a book arrived);
    stopped on exit, its summary in ``runner.summary``. ``record``: capture every feed input there
    (as ``latentspeed run --record`` does)."""
    reg = registry()
    setup = resolve(config or engine_config(emu), reg)
    runner = EngineRunner(setup, reg)
    recorder = None
    if record:
        from latentspeed_core.capture import Recorder, feed_config_record

        feeds = runner.source.feeds
        recorder = Recorder(record, feeds=[f.name for f in feeds],
                            feed_configs={f.name: feed_config_record(f.config) for f in feeds})  # fmt: skip
        for f in feeds:
            f.recorder = recorder
    task = asyncio.create_task(runner.run(install_signals=False))
    try:
        if wait_connected:
            await async_wait_for(
                lambda: runner.venue.connected or task.done(), 15, "the bybit venue to connect"
            )
            if task.done():
                task.result()
            # A book after the venue is up: strategies act on it (the first may have come before).
            emu.set_book("BTCUSDT", *BOOK)
            await async_wait_for(
                lambda: runner.engine.mid("BTC-USDT") is not None, 10, "a book at the engine"
            )
        yield runner
    finally:
        runner.stop("test done")
        try:
            await asyncio.wait_for(task, 20)
        finally:
            if recorder is not None:
                recorder.close()


def open_at_venue(emu: BybitEmulator) -> list:
    return [o for o in emu.orders.values() if o.status in ("New", "PartiallyFilled")]

"""The example plugin against a real mock exchange, in one process.

Runs with the plugin installed (``pip install -e examples[test]``) or from the repository
(the plugin module is then registered directly).
"""

from __future__ import annotations

import asyncio

import pytest

from latentspeed_core.config import ConfigError
from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import async_wait_for

mock = pytest.importorskip("latentspeed_mock_exchange.server")


def _registry():
    from latentspeed_example_momentum import plugin

    try:
        return load_registry(["mock", "momentum"])
    except Exception:  # not installed: register the module itself
        return load_registry(["mock"], extra=[plugin])


def _config(port: int, **params) -> dict:
    return {
        "market_data": {"feeds": [{"exchange": "mock", "port": port, "symbols": ["BTC-USD"]}]},
        "venue": {"exchange": "mock", "port": port},
        "strategies": [{"name": "momentum", "symbols": ["BTC-USD"], "params": params}],
        "risk": {"max_order_qty": 1, "price_band_bps": 200, "max_position": 1},
        "latency": {"file": None},
    }


def test_params_are_validated():
    with pytest.raises(ConfigError) as e:
        resolve(_config(9000, lookback=1), _registry())
    assert "strategies[0].params.lookback" in str(e.value)
    with pytest.raises(ConfigError) as e:
        resolve(_config(9000, qty=0.01, typo=1), _registry())
    assert "strategies[0].params.typo" in str(e.value)


def test_trades_on_the_mock_exchange():
    async def main():
        from latentspeed_mock_exchange.config import MockExchangeConfig

        ex = await mock.MockExchange(
            MockExchangeConfig(
                port=0, symbols=["BTC-USD"], seed=7, tick_rate=2, fill_prob=100, volatility_bps=3
            )
        ).start()
        try:
            reg = _registry()
            runner = EngineRunner(resolve(_config(ex.port, threshold_bps=1.0), reg), reg)
            task = asyncio.create_task(runner.run(install_signals=False))
            await async_wait_for(lambda: runner.engine.fills >= 3 or task.done(), 20, "three fills")
            runner.stop("test done")
            return await task, runner.engine.strategies["momentum"]
        finally:
            await ex.stop()

    summary, strategy = asyncio.run(main())
    assert summary["orders"] > 0 and summary["fills"] >= 3
    assert strategy.filled_qty > 0
    assert abs(sum(summary["positions"].values())) <= 0.05 + 1e-9  # max_position respected

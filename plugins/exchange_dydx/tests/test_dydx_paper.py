"""``latentspeed run --plugins dydx,mock``: the market maker paper-trades on a (loopback) dYdX indexer.

The default paper set-up (run.PAPER_DEFAULTS) with only the URL and the market changed: the
indexer plays the recorded ETH-USD book, then prints trades through our quotes, and the
``paper`` venue fills them (a trade printed through a resting order's price fills it first).
"""

from __future__ import annotations

import asyncio
from argparse import Namespace

import pytest

from latentspeed_core.testing import async_wait_for

pytest.importorskip("latentspeed_mock_exchange")
pytest.importorskip("latentspeed_strategy_examples")

ETH = "ETH-USD"


def test_run_plugins_dydx_mock_paper_trades_and_fills(kit):
    from latentspeed_core.commands import run as run_cmd
    from latentspeed_core.plugins import load_registry

    registry = load_registry(["dydx", "mock", "examples"])
    seen = {}

    async def main():
        async with kit.IndexerServer() as srv:
            feed = {**run_cmd.PAPER_DEFAULTS["dydx"], "symbols": [ETH], "ws_url": srv.url}
            data = run_cmd.paper_config(feed)
            data["strategies"][0]["params"]["qty"] = 0.1
            data["market_data"]["startup_timeout"] = 10
            args = Namespace(duration=None, embedded=True, config=None, plugins="dydx,mock", registry=registry,
                             record=None)  # fmt: skip

            def on_start(runner, exchange):
                seen["runner"] = runner

            task = asyncio.create_task(run_cmd._main(args, registry, data, False, on_start=on_start))
            conn = await srv.connection()
            await conn.subscriptions(2)
            await conn.send(kit.frame(kit.SNAPSHOT, message_id=1))
            engine = (await _wait(seen, "runner")).engine
            await async_wait_for(lambda: len(engine.orders.open) >= 2, 10, "two quotes resting on paper")
            quotes = {o.side.name: o.price for o in engine.orders.open.values()}
            trades = kit.load_frame(kit.TRADES)
            trades["message_id"] = 2
            # a seller prints below our bid, a buyer above our ask: both quotes are hit
            trades["contents"]["trades"] = [
                {**trades["contents"]["trades"][0], "id": "t1", "side": "SELL", "size": "5",
                 "price": str(round(quotes["BUY"] - 1, 1))},
                {**trades["contents"]["trades"][0], "id": "t2", "side": "BUY", "size": "5",
                 "price": str(round(quotes["SELL"] + 1, 1))},
            ]  # fmt: skip
            await conn.send(kit.trades_subscribed(trades, message_id=2) | {"type": "channel_data"})
            await async_wait_for(lambda: engine.fills >= 2, 10, "both quotes filled on paper")
            seen["runner"].stop("test done")
            return await task

    summary = asyncio.run(main())
    assert summary["error"] is None and summary["fills"] >= 2
    fills = list(seen["runner"].engine.recent_fills)
    assert {f.side.name for f in fills} == {"BUY", "SELL"}
    assert all(f.liquidity == 1 for f in fills)  # resting quotes: maker


async def _wait(holder: dict, key: str):
    await async_wait_for(lambda: key in holder, 10, key)
    return holder[key]

"""Paper trading on a (loopback) Binance, recorded, then backtested: the same fills.

``latentspeed run --plugins binance,mock --config paper.yml --record cap.jsonl.gz`` trades the
example market maker on the ``paper`` venue against the live book of a loopback Binance that
plays the recorded session; ``latentspeed backtest`` of that capture with the same config must
give exactly the fills the live session got.
"""

from __future__ import annotations

import asyncio
from argparse import Namespace
from collections import deque

import pytest
from binance_testkit import FakeBinance, load_session

from latentspeed_core.backtest import _fill_dict, backtest_setup, run_backtest
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import async_wait_for

pytest.importorskip("latentspeed_mock_exchange")
pytest.importorskip("latentspeed_strategy_examples")


def paper_config(ws_url: str, rest_url: str) -> dict:
    return {
        "market_data": {"startup_timeout": 10, "feeds": [
            {"exchange": "binance", "market": "spot", "symbols": ["BTC-USDT"], "ws_url": ws_url, "rest_url": rest_url,
             "depth_speed": "100ms"},
        ]},
        "venue": {"exchange": "paper", "queue_model": "risk_averse", "entry_latency_us": 1000,
                  "response_latency_us": 1000, "seed": 1,
                  "instruments": {"BTC-USDT": {"tick_size": 0.01, "lot_size": 0.00001}}},
        "strategies": [{"name": "market_maker", "symbols": ["BTC-USDT"],
                        "params": {"qty": 0.01, "half_spread_bps": 0, "skew_bps": 0, "requote_bps": 1,
                                   "max_position": 0.5}}],
        "risk": {"max_order_qty": 1.0, "price_band_bps": 100},
        "fees": {"maker_bps": -0.5, "taker_bps": 2.0},
        "latency": {"file": None},
        "cancel_on_exit": False,
    }  # fmt: skip


def test_a_recorded_paper_session_backtests_to_the_same_fills(tmp_path):
    from latentspeed_core.commands import run as run_cmd

    session = load_session("spot")
    registry = load_registry(None)
    capture = tmp_path / "paper.jsonl.gz"
    sent = asyncio.Event()
    seen = {}

    async def script(conn):
        for f in session.frames:
            await conn.send_raw(f)
            await asyncio.sleep(0.004)  # the venue's cadence: a few ms between frames, as live
        sent.set()

    async def main():
        async with FakeBinance([script], [session.snapshot]) as srv:
            data = paper_config(srv.ws_url, srv.rest_url)
            args = Namespace(duration=None, embedded=True, config="paper.yml", plugins="binance,mock",
                             registry=registry, record=str(capture))  # fmt: skip

            def on_start(runner, exchange):
                runner.engine.recent_fills = deque()  # every fill, not the dashboard's last 50
                seen["runner"] = runner

            task = asyncio.create_task(run_cmd._main(args, registry, data, False, on_start=on_start))
            await asyncio.wait_for(sent.wait(), 30)
            runner = seen["runner"]
            venue = runner.venue
            await async_wait_for(lambda: runner.engine.rx_packets >= 87 + 152, 10, "every book and trade handled")
            await async_wait_for(lambda: not venue._heap, 5, "orders and reports in flight")
            runner.stop("test done")
            return await task

    summary = asyncio.run(main())
    assert summary["error"] is None
    # The dashboard shows the book, our quotes with the queue ahead of each, fills and PnL.
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    Console(file=out, width=160).print(run_cmd._render(seen["runner"], 0.0))
    text = out.getvalue()
    for needle in ("BTC-USDT", "ahead", "Recent fills", "PnL"):
        assert needle in text, text
    live = [_fill_dict(f) for f in seen["runner"].engine.recent_fills]
    assert len(live) >= 5, "the session should trade"

    setup = backtest_setup(paper_config("wss://unused", "https://unused"), registry, None, str(capture))
    result = run_backtest(setup, registry)
    assert result.fills == live
    assert result.summary["orders"] == summary["orders"]

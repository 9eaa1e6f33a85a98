"""Engine + real mock exchange, end to end, in one event loop on a free loopback port.

Market data: the ``mock`` feed -> marketstream Pipeline -> engine; orders: the ``mock`` venue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest

from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.orders import TERMINAL
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import async_wait_for
from latentspeed_core.types import OrderStatus, Side

server = pytest.importorskip("latentspeed_mock_exchange.server")
from latentspeed_mock_exchange.config import MockExchangeConfig  # noqa: E402

REG = load_registry(["mock", "examples"])


def engine_config(port: int, latency_file=None, risk=None, fees=None, params=None, **extra) -> dict:
    return {
        "market_data": {"feeds": [{"exchange": "mock", "port": port, "symbols": ["BTC-USD"]}]},
        "venue": {"exchange": "mock", "port": port, "backoff_initial": 0.05, "backoff_max": 0.2},
        "strategies": [
            {
                "name": "market_maker",
                "symbols": ["BTC-USD"],
                "params": params
                or {"qty": 0.01, "half_spread_bps": 1.0, "requote_bps": 3, "max_position": 0.1},
            }
        ],
        "risk": risk
        if risk is not None
        else {"max_order_qty": 1, "max_position": 1, "price_band_bps": 100, "max_open_orders": 10},
        "fees": fees or {"maker_bps": 1.0, "taker_bps": 2.0},
        "latency": {"file": str(latency_file) if latency_file else None},
        "stats_interval": 0.5,
        "shutdown_timeout": 2.0,
        **extra,
    }


async def scenario(cfg_fn: Callable[[int], dict], body, **ex_kw):
    """Start an exchange and an engine; run ``body(ex, runner)``; stop both; return the summary."""
    kw = {
        "port": 0,
        "symbols": ["BTC-USD"],
        "seed": 42,
        "tick_rate": 2.0,
        "fill_prob": 100.0,
        "volatility_bps": 2.0,
    }
    kw.update(ex_kw)
    ex = await server.MockExchange(MockExchangeConfig(**kw)).start()
    try:
        runner = EngineRunner(resolve(cfg_fn(ex.port), REG), REG)
        task = asyncio.create_task(runner.run(install_signals=False))
        try:
            await body(ex, runner)
        finally:
            runner.stop("test done")
            summary = await asyncio.wait_for(task, 10)
        return summary, runner, ex
    finally:
        await ex.stop()


def test_trades_and_positions_agree_with_fills(tmp_path):
    lat = tmp_path / "latency.jsonl"

    async def body(ex, runner):
        e = runner.engine
        ticks = []
        runner.on_stats = ticks.append
        await async_wait_for(lambda: e.fills >= 20 and ticks, 20, "20 fills and a stats interval")

    summary, runner, ex = asyncio.run(scenario(lambda p: engine_config(p, lat), body))
    e = runner.engine
    assert summary["orders"] > 0 and summary["fills"] >= 20
    # Every order the engine sent reached the exchange, nothing else did.
    assert ex.stats["orders"] == e.orders_sent == summary["orders"]
    # Recompute position and PnL from the orders' fills, independently of Position.
    orders = [o for o in e.orders.orders.values()]
    qty = sum((o.filled_qty if o.side == Side.BUY else -o.filled_qty) for o in orders)
    cash = sum((-o.filled_qty * o.avg_px if o.side == Side.BUY else o.filled_qty * o.avg_px) for o in orders)
    fees = sum(o.filled_qty * o.avg_px * (2.0 if o.taker else 1.0) / 1e4 for o in orders)
    pos = e.portfolio.get("BTC-USD")
    assert pos.qty == pytest.approx(qty, abs=1e-9) == pytest.approx(summary["positions"]["BTC-USD"], abs=1e-9)
    assert pos.fees == pytest.approx(fees)
    assert e.portfolio.pnl == pytest.approx(cash + qty * pos.mark - fees, abs=1e-6)
    assert summary["pnl"] == pytest.approx(summary["realized_pnl"] + summary["unrealized_pnl"])
    # At shutdown every order is final (cancel_on_exit) and has exactly one latency record.
    assert all(o.status in TERMINAL for o in orders)
    recs = [orjson.loads(line) for line in lat.read_bytes().splitlines()]
    order_recs = [r for r in recs if r["type"] == "order"]
    assert sorted(r["cl_ord_id"] for r in order_recs) == sorted(o.cl_ord_id for o in orders)
    filled = [r for r in order_recs if r["status"] == "filled"]
    assert filled and all(
        r["first_fill_ns"] >= r["sent_ns"] >= r["decision_ns"] >= r["md_receipt_ns"] for r in filled
    )
    assert all(r["ack_ns"] is not None and r["ack_ns"] >= r["sent_ns"] for r in order_recs)
    assert sum(r["type"] == "stats" for r in recs) >= 1 and recs[-1]["type"] == "summary"
    assert recs[-1]["fills"] == summary["fills"]


def test_risk_refusals_never_reach_the_venue():
    async def body(ex, runner):
        e = runner.engine
        await async_wait_for(lambda: e.risk_rejects >= 10, 10, "risk refusals")

    # qty 0.01 > max_order_qty 0.005: every order refused before the venue.
    summary, runner, ex = asyncio.run(
        scenario(lambda p: engine_config(p, risk={"max_order_qty": 0.005, "price_band_bps": 100}), body)
    )
    assert summary["orders"] == 0 and ex.stats["orders"] == 0
    assert summary["rejects"] == summary["risk_rejects"] >= 10
    assert set(summary["rejects_by_check"]) == {"max_order_qty"}

    # max_open_orders 1: the bid goes out, the ask is refused while the bid rests.
    async def body2(ex, runner):
        e = runner.engine
        await async_wait_for(lambda: e.risk_rejects >= 5 and e.orders_sent >= 1, 10, "open-order refusals")
        assert len(e.orders.open) <= 1

    summary, runner, ex = asyncio.run(
        scenario(
            lambda p: engine_config(p, risk={"max_open_orders": 1, "price_band_bps": 100}), body2, fill_prob=0
        )
    )
    assert summary["rejects_by_check"].get("max_open_orders", 0) >= 5
    assert ex.stats["orders"] == summary["orders"]


def test_kill_switch_cancels_everything_and_stops_trading():
    async def body(ex, runner):
        e = runner.engine
        await async_wait_for(lambda: not e.trading_enabled, 20, "kill switch")
        await async_wait_for(lambda: not e.orders.open, 5, "open orders cancelled")
        sent, seen = e.orders_sent, e.rx_packets
        await async_wait_for(lambda: e.rx_packets >= seen + 100, 10, "more market data")
        assert e.orders_sent == sent and ex.stats["orders"] == sent

    # A 1% fee makes the first fill lose ~5 USD: past max_loss 1.
    summary, runner, ex = asyncio.run(
        scenario(
            lambda p: engine_config(
                p, risk={"max_loss": 1, "price_band_bps": 100}, fees={"maker_bps": 100, "taker_bps": 100}
            ),
            body,
        )
    )
    assert summary["halt_reason"].startswith("max_loss")
    assert summary["fills"] >= 1 and summary["pnl"] <= -1


def test_dropped_connection_is_recovered_and_every_order_accounted_for(tmp_path):
    lat = tmp_path / "latency.jsonl"
    state = {}

    async def body(ex, runner):
        e = runner.engine
        await async_wait_for(lambda: len(e.orders.open) >= 2 and e.fills >= 2, 20, "resting quotes")
        state["open_before"] = {o.cl_ord_id for o in e.orders.open.values()}
        state["cancel_sent"] = {o.cl_ord_id for o in e.orders.open.values() if o.cancel_pending}
        state["sent_before"] = e.orders_sent
        for c in list(ex.clients):  # the exchange drops every client (and their resting orders)
            c.close("test: drop")
        await async_wait_for(lambda: e.connects >= 2 and e.venue.connected, 10, "reconnect")
        await async_wait_for(lambda: e.orders_sent >= state["sent_before"] + 10, 10, "trading again")

    summary, runner, ex = asyncio.run(scenario(lambda p: engine_config(p, lat), body))
    e = runner.engine
    assert summary["reconnects"] >= 1
    lost = [e.orders.orders[c] for c in state["open_before"]]
    # A report the exchange sent before it closed the socket is still read: a fill, or the
    # ack of a cancel the strategy had already sent (a requote), ends that order FILLED or
    # CANCELED. Every other order open at the drop has no knowable fate and must say so.
    unknown = [o for o in lost if o.status == OrderStatus.UNKNOWN]
    def reported(o) -> bool:
        return o.status == OrderStatus.FILLED or (
            o.status == OrderStatus.CANCELED and o.cl_ord_id in state["cancel_sent"]
        )

    assert lost and all(o in unknown or reported(o) for o in lost), (lost, state["cancel_sent"])
    assert summary["unknown_orders"] >= len(unknown)
    # No order is lost: every order is final, or reported unknown.
    assert all(o.status in TERMINAL or o.status == OrderStatus.UNKNOWN for o in e.orders.orders.values())
    recs = [orjson.loads(line) for line in lat.read_bytes().splitlines()]
    statuses = {r["cl_ord_id"]: r["status"] for r in recs if r["type"] == "order"}
    assert set(statuses) == set(e.orders.orders)
    assert all(statuses[o.cl_ord_id] == o.status_name for o in lost)


def test_run_paper_trading_prices_the_embedded_exchange_from_another_feed():
    """``latentspeed run --config`` with a mock venue and a foreign feed: fills happen at the feed's prices."""
    from argparse import Namespace

    from latentspeed_mock_exchange.config import SymbolSpec

    from latentspeed_core.commands import run as run_cmd
    from latentspeed_core.testing import free_port

    seen = {}

    async def main():
        # The "live" venue: BTC-USD around 123, far from the embedded exchange's own 50,000 walk.
        live = await server.MockExchange(
            MockExchangeConfig(
                port=0, symbols=["BTC-USD"], seed=3, tick_rate=2.0, volatility_bps=5,
                specs={"BTC-USD": SymbolSpec(price=123.0, tick_size=0.01, lot_size=0.001, level_qty=5)},
            )
        ).start()  # fmt: skip
        try:
            data = engine_config(
                0, params={"qty": 0.1, "half_spread_bps": 2, "requote_bps": 5, "max_position": 1}
            )
            data["market_data"]["feeds"][0]["port"] = live.port
            data["venue"]["port"] = free_port()
            data["risk"] = {"price_band_bps": 100}
            args = Namespace(duration=None, embedded=True, config="paper.yml", plugins=None, registry=REG)

            def on_start(runner, exchange):
                seen["runner"], seen["exchange"] = runner, exchange

            task = asyncio.create_task(run_cmd._main(args, REG, data, False, on_start=on_start))
            await async_wait_for(
                lambda: "runner" in seen and seen["runner"].engine.fills >= 5, 20, "paper fills"
            )
            seen["runner"].stop("test done")
            return await task
        finally:
            await live.stop()

    summary = asyncio.run(main())
    fills = list(seen["runner"].engine.recent_fills)
    assert summary["fills"] >= 5 and fills
    assert all(abs(f.price - 123.0) < 5.0 for f in fills), [f.price for f in fills]
    assert seen["exchange"].port == seen["runner"].setup.venue.port


def test_dashboard_renders_books_orders_fills_positions_and_latency():
    from io import StringIO

    from rich.console import Console

    from latentspeed_core.commands.run import _render

    async def body(ex, runner):
        await async_wait_for(lambda: runner.engine.fills >= 2, 20, "fills")

    _, runner, _ = asyncio.run(scenario(lambda p: engine_config(p), body))
    out = StringIO()
    Console(file=out, width=140).print(_render(runner, 0.0))
    text = out.getvalue()
    for needle in ("BTC-USD", "Positions", "Open orders", "Recent fills", "tick-to-trade", "PnL"):
        assert needle in text, text


def test_ofi_taker_trades_on_the_mock_exchange():
    def cfg(port):
        c = engine_config(port)
        c["strategies"] = [{"name": "ofi_taker", "symbols": ["BTC-USD"], "params": {"cooldown_ms": 20}}]
        return c

    async def body(ex, runner):
        await async_wait_for(lambda: runner.engine.fills >= 3, 20, "ofi_taker fills")

    summary, runner, ex = asyncio.run(scenario(cfg, body))
    assert summary["orders"] >= 3 and summary["fills"] >= 3
    assert all(o.tif == 1 for o in runner.engine.orders.orders.values())  # IOC only: nothing rests


def test_dashboard_fits_80_columns_without_cutting_prices():
    """Issue 17: at 80 columns BTC prices were cut (``50,013…``); narrow terminals stack the tables."""
    import re
    from io import StringIO

    from rich.console import Console

    from latentspeed_core.commands.run import _render

    seen = {}

    async def body(ex, runner):
        e = runner.engine
        await async_wait_for(lambda: e.fills >= 1 and len(e.books) == 2 and e.orders.open, 20, "fills, books, quotes")
        out = StringIO()
        Console(file=out, width=80).print(_render(runner, 0.0, 80))  # while quotes are open
        seen["text"], seen["book"] = out.getvalue(), e.books["BTC-USD"]

    def two_symbols(port: int) -> dict:
        data = engine_config(port)
        data["market_data"]["feeds"][0]["symbols"] = ["BTC-USD", "ETH-USD"]
        data["strategies"][0]["symbols"] = ["BTC-USD", "ETH-USD"]
        return data

    asyncio.run(scenario(two_symbols, body, symbols=["BTC-USD", "ETH-USD"]))
    text, book = seen["text"], seen["book"]
    assert "…" not in text, text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert f"{book['bids'][0][0]:,.2f}" in text and f"{book['asks'][0][0]:,.2f}" in text
    assert re.search(r"rejects \d+ risk / \d+ venue / \d+ cancel", text)

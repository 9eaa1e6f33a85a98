"""Tick-to-trade, order round trip and mock-exchange throughput, on loopback (issue 4).

    python benchmarks/tick_to_trade.py [--orders 12000] [--tick-ms 0.5] [--throughput-orders 50000]
        [--[no-]busy-poll] [--[no-]exchange-busy-poll] [--md-source venue|feed] [--no-conflate]
    python benchmarks/tick_to_trade.py --tick-ms 1,10,100      # the cadences real venues send at

With several ``--tick-ms`` values, each cadence runs twice, busy polling and sleeping (engine and
exchange alike), with fewer orders where ticks are slow (``--cadence-orders``, at least 2,000),
and the result line gains ``by_cadence``: ``{"1": {"busy": {"p50", "p99", ...}, "sleep": {...}}, ...}``.

By default the engine runs as a low-latency deployment runs it, pinned to its own CPU and busy
polling (engine config ``busy_poll``), and the exchange, on the other CPU, spins too
(``mock-exchange --busy-poll``): on loopback, a write to a process asleep in ``epoll_wait`` makes the
writer pay that process's cross-CPU wake-up inside its ``send`` (~7 µs here), a cost of sharing one
machine with the venue that a send to a remote venue does not have. ``--no-exchange-busy-poll``
keeps that cost in; ``--no-busy-poll --no-exchange-busy-poll`` measures both sleeping (the default
with fewer than two CPUs). docs/performance.md gives all three.

Phase 1 runs the real engine (``EngineRunner`` from an engine config: mock feed ->
marketstream Pipeline with the standard features -> strategy callback -> the standard risk
checks -> order manager -> mock venue encoder) against a ``latentspeed mock-exchange``
process. The strategy sends one IOC order per book message, priced at the touch; the
exchange runs with ``--fill-prob 0`` so every order is acked (NEW) and then CANCELED.
Stamps come from the engine itself: MARKET_DATA received (the feed's read) -> NEW_ORDER
written (after ``transport.write`` returned) is tick-to-trade; NEW_ORDER written -> the ack
read is the round trip.

Phase 2 measures the mock exchange alone: one client pipelines IOC orders that cannot
fill (NEW + CANCELED each) in batches of 64 messages per write, with at most 4,096
outstanding, and counts reports; orders/s = orders / (last report - first write).

The last line of output is the JSON object the issue specifies.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from latentspeed_core import hookimpl
from latentspeed_core.components import Component
from latentspeed_core.config import StrictModel
from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.engine.strategy import Strategy
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import free_port
from latentspeed_core.types import OrdType, Side, TimeInForce

BIN = Path(sys.executable).parent
#: Engine config keys set from the command line (--warm-interval-us, --warm-before-tick-ms).
ENGINE_EXTRA: dict = {}
_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
#: (exchange CPU, engine CPU) when there are two CPUs to split, else ().
PIN = (_CPUS[0], _CPUS[1]) if len(_CPUS) >= 2 else ()


class TakerParams(StrictModel):
    qty: float = 0.001


_BUY = Side.BUY
_IOC = TimeInForce.IOC
_LIMIT = OrdType.LIMIT


class EveryTick(Strategy):
    """One IOC buy at the best ask per book message: the shortest honest decision (the ask is
    already on the tick grid, so it is sent as it is)."""

    def on_book(self, msg: dict) -> None:
        ctx = self.ctx
        if ctx.ready:
            ctx.submit(msg["symbol"], _BUY, self.params.qty, msg["asks"][0][0], _LIMIT, _IOC)


class BenchPlugin:
    __name__ = "tick_to_trade_bench"

    @staticmethod
    @hookimpl
    def register_strategies(register):
        register(Component("every_tick", TakerParams, EveryTick))


def start_exchange(port: int, tick_ms: float, busy_poll: bool = False) -> subprocess.Popen:
    cmd = [
        str(BIN / "latentspeed"), "mock-exchange", "--port", str(port), "--tick-rate", str(tick_ms),
        "--fill-prob", "0", "--symbols", "BTC-USD", "--seed", "1", "--no-log-orders", "--log-level", "warning",
    ]  # fmt: skip
    if busy_poll:
        cmd.append("--busy-poll")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if PIN:
        # The exchange on its own CPU: otherwise waking it (every NEW_ORDER written) can preempt
        # the engine on the same CPU, and the engine's stamps then include the exchange's work.
        os.sched_setaffinity(proc.pid, {PIN[0]})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("mock exchange did not start")


def pct(a: np.ndarray, q: float) -> float:
    return round(float(np.percentile(a, q)) / 1000.0, 2)


async def engine_phase(
    port: int, orders: int, registry, source: str, busy_poll: bool = False, conflate: bool = True
) -> tuple[np.ndarray, np.ndarray, dict]:
    if source == "venue":
        market_data = {"from_venue": True, "conflate": conflate}
    else:
        market_data = {"feeds": [{"exchange": "mock", "port": port, "symbols": ["BTC-USD"]}]}
    data = {
        "market_data": market_data,
        "venue": {"exchange": "mock", "port": port},
        "strategies": [{"name": "every_tick", "symbols": ["BTC-USD"]}],
        "risk": {
            "max_loss": 1e9,
            "max_orders_per_second": 1_000_000,
            "max_open_orders": 1000,
            "max_order_qty": 1,
            "price_band_bps": 500,
            "max_notional": 1e9,
            "max_position": 1e9,
        },
        "latency": {"file": os.environ.get("T2T_LATENCY_FILE")},
        "stats_interval": 3600,
        "cancel_on_exit": True,
        "busy_poll": busy_poll,
        **ENGINE_EXTRA,
    }
    runner = EngineRunner(resolve(data, registry, "<benchmark>"), registry)
    task = asyncio.create_task(runner.run(install_signals=False))
    e = runner.engine
    e.orders.retain_s = float("inf")  # keep every order: the stage figures read them at the end
    warmup = 500
    while e.orders_sent < warmup and not task.done():
        await asyncio.sleep(0.01)
    skip_t2t, skip_rt = len(e.t2t), len(e.round_trip)
    first_id = e.orders._next_id
    gc_pauses.clear()
    gc.callbacks.append(_gc_timer)
    try:
        while e.orders_sent < warmup + orders and not task.done():
            await asyncio.sleep(0.01)
    finally:
        gc.callbacks.remove(_gc_timer)
    runner.stop("benchmark done")
    summary = await task
    t2t = np.array(e.t2t.data, dtype=np.int64)[skip_t2t:]
    rt = np.array(e.round_trip.data, dtype=np.int64)[skip_rt:]
    measured = [
        o for o in e.orders.orders.values() if o.cl_ord_id >= first_id and o.sent_ns and o.trigger == "book"
    ]
    stages = {
        "md -> decision": np.array([o.decision_ns - o.md_receipt_ns for o in measured], dtype=np.int64),
        "decision -> written": np.array([o.sent_ns - o.decision_ns for o in measured], dtype=np.int64),
    }
    return t2t, rt, summary, stages


#: (generation, pause ns) of every garbage collection during the measured phase.
gc_pauses: list[tuple[int, int]] = []
_gc_start = [0]


def _gc_timer(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_start[0] = time.perf_counter_ns()
    else:
        gc_pauses.append((info["generation"], time.perf_counter_ns() - _gc_start[0]))


def throughput_phase(port: int, n: int) -> float:
    from latentspeed_mock_exchange import protocol as P

    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    dec = P.FrameDecoder()
    # Wait for the symbol definition (first message after connect).
    sid = None
    while sid is None:
        for t, buf, off in dec.feed(s.recv(65536)):
            if t == P.SECURITY_DEFINITION:
                sid = P.unpack_security_definition(buf, off)[4]
    # A buy far below the market: valid, never marketable, IOC -> NEW then CANCELED.
    px, qty = P.to_fixed(1000.0), P.to_fixed(0.001)
    pack = P.NEW_ORDER_MSG.pack
    s.setblocking(False)
    batch, window = 64, 4096
    sent = reports = 0
    seq = 0
    t0 = time.perf_counter()
    while reports < 2 * n:
        if sent < n and sent - reports // 2 < window:
            k = min(batch, n - sent)
            ts = time.time_ns()
            msg = b"".join(
                pack(P.NEW_ORDER_SIZE, P.NEW_ORDER, seq + i + 1, ts, sent + i + 1, sid, 0, 0, 1, px, qty)
                for i in range(k)
            )
            view = memoryview(msg)
            while view:
                try:
                    view = view[s.send(view) :]
                except BlockingIOError:
                    select.select([], [s], [], 0.01)
            seq += k
            sent += k
        r, _, _ = select.select([s], [], [], 0 if sent < n and sent - reports // 2 < window else 1.0)
        if r:
            data = s.recv(1 << 20)
            if not data:
                raise RuntimeError("exchange closed the connection")
            for t, _buf, _off in dec.feed(data):
                if t == P.EXECUTION_REPORT:
                    reports += 1
    elapsed = time.perf_counter() - t0
    s.close()
    return n / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=12_000, help="measured orders in phase 1 (>= 10,000)")
    ap.add_argument("--tick-ms", default="0.5",
                    help="mock exchange market-data period in ms; several (1,10,100) compare cadences")  # fmt: skip
    ap.add_argument("--cadence-orders", type=int, default=2_000,
                    help="measured orders per cadence and mode with several --tick-ms (at least 2,000)")  # fmt: skip
    ap.add_argument("--throughput-orders", type=int, default=50_000)
    ap.add_argument(
        "--md-source",
        choices=["venue", "feed"],
        default="venue",
        help="market data on the order connection (one socket; default) or a separate mock feed connection",
    )
    ap.add_argument(
        "--busy-poll",
        action=argparse.BooleanOptionalAction,
        default=bool(PIN),
        help="engine config busy_poll: spin the event loop on its own CPU, the low-latency set-up "
        "(default: on when there are two CPUs to pin the engine and the exchange apart)",
    )
    ap.add_argument(
        "--exchange-busy-poll",
        action=argparse.BooleanOptionalAction,
        default=bool(PIN),
        help="run the mock exchange with --busy-poll on the other CPU: the engine's write then wakes "
        "no sleeping process, as a send to a remote venue does not (default as --busy-poll)",
    )
    ap.add_argument(
        "--no-conflate",
        action="store_true",
        help="engine config market_data.conflate: false (the strategy also sees snapshots already "
        "superseded by a later one in the same read)",
    )
    ap.add_argument("--warm-interval-us", type=float, default=None,
                    help="engine config warm_interval_us (rehearse the hot path while idle; 0: off)")  # fmt: skip
    ap.add_argument("--warm-before-tick-ms", type=float, default=None,
                    help="engine config warm_before_tick_ms (sleeping engine; 0: sleep until woken)")  # fmt: skip
    args = ap.parse_args()
    if args.warm_interval_us is not None:
        ENGINE_EXTRA["warm_interval_us"] = args.warm_interval_us
    if args.warm_before_tick_ms is not None:
        ENGINE_EXTRA["warm_before_tick_ms"] = args.warm_before_tick_ms
    t_start = time.perf_counter()
    registry = load_registry(["mock"], extra=[BenchPlugin()])
    if PIN:
        os.sched_setaffinity(0, {PIN[1]})
    ticks = [float(x) for x in str(args.tick_ms).split(",") if x.strip()]
    args.tick_ms = ticks[0]
    by_cadence = by_cadence_runs(ticks, max(2_000, args.cadence_orders), registry, args) if len(ticks) > 1 else None

    port = free_port()
    ex = start_exchange(port, args.tick_ms, args.exchange_busy_poll)
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    try:
        with asyncio.Runner(loop_factory=factory) as r:
            t2t, rt, summary, stages = r.run(
                engine_phase(
                    port, args.orders, registry, args.md_source, args.busy_poll, not args.no_conflate
                )
            )
    finally:
        ex.terminate()
        ex.wait(10)
    print(
        f"market data source: {args.md_source}, busy poll: engine {args.busy_poll}, "
        f"exchange {args.exchange_busy_poll}, conflate: {not args.no_conflate}"
    )
    print(
        f"engine: {summary['orders']} orders in {summary['duration_s']}s, {summary['rx_packets']} market-data "
        f"messages, {summary['rejects']} rejects, measured {len(t2t)} tick-to-trade / {len(rt)} round-trip samples"
    )
    print(
        f"tick-to-trade us: p50 {pct(t2t, 50)} p90 {pct(t2t, 90)} p99 {pct(t2t, 99)} p99.9 {pct(t2t, 99.9)}"
    )
    print(f"round trip us:    p50 {pct(rt, 50)} p90 {pct(rt, 90)} p99 {pct(rt, 99)}")
    for name, a in stages.items():
        print(f"  {name + ' us:':24s} p50 {pct(a, 50)} p90 {pct(a, 90)} p99 {pct(a, 99)}")
    for g in range(3):
        p = [ns for gen, ns in gc_pauses if gen == g]
        if p:
            print(
                f"  gc gen{g}: {len(p)} collections, max {max(p) / 1000:.0f} us, total {sum(p) / 1e6:.1f} ms"
            )

    port = free_port()
    ex = start_exchange(port, 100.0)
    try:
        rate = throughput_phase(port, args.throughput_orders)
    finally:
        ex.terminate()
        ex.wait(10)
    print(f"mock exchange: {rate:,.0f} orders/s from one client ({args.throughput_orders} orders)")
    print(f"total {time.perf_counter() - t_start:.1f}s on {os.cpu_count()} CPUs")
    result = {
        "tick_to_trade_us": {"p50": pct(t2t, 50), "p99": pct(t2t, 99), "p999": pct(t2t, 99.9)},
        "round_trip_us": {"p50": pct(rt, 50), "p99": pct(rt, 99)},
        "mock_orders_per_s": round(rate),
        "orders": int(len(t2t)),
        # beyond the contract's keys: how this run was set up
        "setup": {"engine_busy_poll": args.busy_poll, "exchange_busy_poll": args.exchange_busy_poll,
                  "pinned": bool(PIN), "tick_ms": args.tick_ms},
    }  # fmt: skip
    if by_cadence is not None:
        result["by_cadence"] = by_cadence
    print(json.dumps(result))
    return 0


def one_run(tick_ms: float, orders: int, registry, args, busy: bool) -> dict:
    """Tick-to-trade at one cadence, engine and exchange both busy polling or both sleeping."""
    port = free_port()
    ex = start_exchange(port, tick_ms, busy and bool(PIN))
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    try:
        with asyncio.Runner(loop_factory=factory) as r:
            t2t, rt, _summary, stages = r.run(
                engine_phase(port, orders, registry, args.md_source, busy and bool(PIN), not args.no_conflate)
            )
    finally:
        ex.terminate()
        ex.wait(10)
    out = {"p50": pct(t2t, 50), "p90": pct(t2t, 90), "p99": pct(t2t, 99), "p999": pct(t2t, 99.9), "n": int(len(t2t)),
           "round_trip_p50": pct(rt, 50), "round_trip_p99": pct(rt, 99)}  # fmt: skip
    for name, a in stages.items():
        out[name.replace(" ", "")] = pct(a, 50)
    return out


def by_cadence_runs(ticks: list[float], orders: int, registry, args) -> dict:
    """``{"10": {"busy": {...}, "sleep": {...}}, ...}``: every cadence, busy polling and sleeping."""
    result: dict[str, dict] = {}
    for tick in ticks:
        # slow cadences get fewer orders (100 ms: 2,000 orders is already 200 s); fast ones more
        n = orders if tick >= 10 else max(orders, args.orders)
        key = f"{tick:g}"
        result[key] = {}
        for mode in ("busy", "sleep"):
            t0 = time.perf_counter()
            r = one_run(tick, n, registry, args, busy=(mode == "busy"))
            result[key][mode] = r
            print(f"cadence {key} ms {mode:5s}: tick-to-trade us p50 {r['p50']} p99 {r['p99']} p99.9 {r['p999']} "
                  f"(n={r['n']}, {time.perf_counter() - t0:.0f}s)", flush=True)  # fmt: skip
    return result


if __name__ == "__main__":
    sys.exit(main())

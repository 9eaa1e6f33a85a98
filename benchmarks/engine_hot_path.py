"""The engine's tick-to-trade path in process, warm, without sockets: where the Python time goes.

    python benchmarks/engine_hot_path.py [--ticks 4000] [--profile]

The real objects, built by ``EngineRunner`` from the same engine config as
``benchmarks/tick_to_trade.py`` (mock venue as the market-data source, the marketstream Pipeline
with every standard feature, the ``every_tick`` taker, the seven standard risk checks, the order
manager, the mock venue's encoder). Only the connection is replaced: MARKET_DATA frames (20
levels, a random walk) go straight into the venue's frame handler, and a stub link records when
the encoded NEW_ORDER is handed to ``write``. Each order then gets its NEW and CANCELED reports,
as the exchange would send them. Reports: receipt → order handed to write (p50, mean), the two
reports, and the cost of each stage on its own (timeit). ``--profile`` adds cProfile's view.

This is not the issue's tick-to-trade (no read, no write syscall, caches warm); it isolates the
Python work for profiling. The last line is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tick_to_trade as T  # noqa: E402 - the benchmark's strategy and config
from latentspeed_mock_exchange import protocol as P  # noqa: E402
from latentspeed_mock_exchange.client import ExchangeLink  # noqa: E402

from latentspeed_core.book import SnapshotBook  # noqa: E402
from latentspeed_core.engine.config import resolve  # noqa: E402
from latentspeed_core.engine.runner import EngineRunner  # noqa: E402
from latentspeed_core.marketstream.features import build_calculators  # noqa: E402
from latentspeed_core.marketstream.pipeline import Pipeline  # noqa: E402
from latentspeed_core.plugins import load_registry  # noqa: E402
from latentspeed_core.types import Order, OrdType, Side, TimeInForce  # noqa: E402


class StubTransport:
    """Stands in for the connection's transport: records when each write happens."""

    def __init__(self) -> None:
        self.written: list[int] = []

    def write(self, data: bytes) -> None:
        self.written.append(time.perf_counter_ns())


def build(latency_file: str):
    registry = load_registry(["mock"], extra=[T.BenchPlugin()])
    data = {
        "market_data": {"from_venue": True, "conflate": True},
        "venue": {"exchange": "mock", "port": 1},
        "strategies": [{"name": "every_tick", "symbols": ["BTC-USD"]}],
        "risk": {"max_loss": 1e9, "max_orders_per_second": 1_000_000, "max_open_orders": 1000,
                 "max_order_qty": 1, "price_band_bps": 500, "max_notional": 1e9, "max_position": 1e9},
        "latency": {"file": latency_file},
        "stats_interval": 3600,
    }  # fmt: skip
    runner = EngineRunner(resolve(data, registry, "<engine_hot_path>"), registry)
    engine, venue = runner.engine, runner.venue
    # A link of the real class (as a connection's), its transport recording the writes.
    link = ExchangeLink.keeping("bench")
    link.transport = transport = StubTransport()
    # What MockVenue.run and the connection would set up.
    venue._link = link
    venue._listener = engine
    venue._on_md = getattr(engine, "on_market_data", None)
    venue._on_stale_md = getattr(engine, "on_superseded_market_data", None)
    venue._on_trade = getattr(engine, "on_venue_trade", None)
    venue._ids, venue._names = {"BTC-USD": 1}, {1: "BTC-USD"}
    venue.connected = True
    engine.start()
    engine.on_venue_connected()
    build.runner = runner  # for benchmarks/idle_gap.py (its rehearsal needs the set-up)
    return registry, engine, venue, transport


def frames(n: int) -> list[bytes]:
    rnd = random.Random(1)
    mid, out = 60_000.0, []
    for i in range(n):
        mid += rnd.choice((-0.5, 0.5))
        bids = [(P.to_fixed(mid - 0.5 - k * 0.5), P.to_fixed(rnd.uniform(0.1, 3))) for k in range(10)]
        asks = [(P.to_fixed(mid + 0.5 + k * 0.5), P.to_fixed(rnd.uniform(0.1, 3))) for k in range(10)]
        out.append(P.encode_market_data(i + 1, time.time_ns(), 1, bids, asks))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=4000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        registry, engine, venue, link = build(str(Path(tmp) / "latency.jsonl"))
        seq = [0]

        def tick(buf: bytes) -> tuple[int, int]:
            link.written.clear()
            t0 = time.perf_counter_ns()
            venue._on_frames([(P.MARKET_DATA, buf, 0)], time.time_ns())
            t1 = link.written[0]
            cid = engine.orders._next_id - 1
            reports = []
            for exec_type, leaves in ((0, P.to_fixed(0.001)), (3, 0)):
                seq[0] += 1
                reports.append(P.encode_execution_report(seq[0], 0, cid, cid, seq[0], 1, 0, exec_type, 0, 0,
                                                         leaves, 0, 0))  # fmt: skip
            t2 = time.perf_counter_ns()
            for r in reports:
                venue._on_frames([(P.EXECUTION_REPORT, r, 0)], time.time_ns())
            return t1 - t0, time.perf_counter_ns() - t2

        fs = frames(args.ticks)
        gc.freeze()
        for f in fs[:500]:  # warm-up
            tick(f)
        samples = [tick(f) for f in fs]
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            for f in fs:
                tick(f)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        t2w = sorted(a for a, _ in samples)
        rep = sorted(b for _, b in samples)
        assert engine.risk_rejects == 0 and not engine.orders.open, (
            engine.last_reject,
            len(engine.orders.open),
        )

        # Each stage on its own (timeit, µs per call).
        n = 20_000
        f = fs[5]
        _, bids, asks = P.decode_book(f, 0)
        pipe = Pipeline(20, 10, build_calculators(registry, 20, 10), lambda t, m: None, lambda t, m: None)
        bare = Pipeline(20, 10, [], lambda t, m: None, lambda t, m: None)
        book = SnapshotBook("BTC-USD")

        class Feed:
            exchange = name = "MOCK"

        def run_pipe(p: Pipeline) -> None:
            book.load_sorted(bids, asks)
            p.on_book(Feed, "BTC-USD", book, 1, 1)

        order = Order(0, "BTC-USD", Side.BUY, 0.001, 60_000.5, OrdType.LIMIT, TimeInForce.IOC)
        stages = {
            "split_frames": timeit.timeit(lambda: P.FrameDecoder().feed(f), number=n),
            "decode_book": timeit.timeit(lambda: P.decode_book(f, 0), number=n),
            "load_sorted + pipeline (standard features)": timeit.timeit(lambda: run_pipe(pipe), number=n),
            "load_sorted + pipeline (no features)": timeit.timeit(lambda: run_pipe(bare), number=n),
            "risk checks": timeit.timeit(lambda: engine.risk.check(order, engine, 1), number=n),
        }
        result = {
            "receipt_to_write_us": {
                "p50": round(t2w[len(t2w) // 2] / 1000, 2),
                "mean": round(statistics.fmean(t2w) / 1000, 2),
            },
            "two_reports_us": round(rep[len(rep) // 2] / 1000, 2),
            "stages_us": {k: round(v / n * 1e6, 2) for k, v in stages.items()},
        }
    print(f"receipt -> order handed to write: p50 {result['receipt_to_write_us']['p50']} us, "
          f"mean {result['receipt_to_write_us']['mean']} us ({len(t2w)} ticks, warm, no syscalls)")  # fmt: skip
    print(f"the order's NEW + CANCELED reports: p50 {result['two_reports_us']} us")
    for k, v in result["stages_us"].items():
        print(f"  {k:44s} {v:6.2f} us")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Per-message cost of the Binance adapter: decode + sequence rules + book update + hand-off, on recorded frames.

Each case calls ``BinanceFeed.deliver_frame`` exactly as the live connection does (msgspec decode
with float levels, dispatch, the market's update-id rule, absolute-size level updates, crossed
check, one ``on_book`` / ``on_trade`` call into a sink), timing every call with ``perf_counter_ns``.
The book is re-seeded from the recorded REST snapshot, untimed, before each pass.

    .venv/bin/python benchmarks/adapters_binance.py [--iterations N] [--json]

Cases (fixtures/binance, 2024-08-08 BTCUSDT sessions):
- ``spot_depth``: the 88 spot ``depth@100ms`` updates (1-227 level changes, median 16) on the
  1000x1000 snapshot; sink does nothing.
- ``spot_depth_top10``: the same with a sink that reads the top 10 levels per side (what marketstream does).
- ``usdm_depth``: the 95 USD-M ``depth@0ms`` updates on the USD-M 1000x1000 snapshot.
- ``spot_trade`` / ``usdm_trade``: the recorded trade frames.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time

from latentspeed_exchange_binance.config import BinanceConfig
from latentspeed_exchange_binance.feed import BinanceFeed

from latentspeed_core.testing import fixtures_dir

SESSIONS = {
    "spot": (
        "seq_spot_btcusdt_2024-08-08_hftbacktest_first1000.jsonl",
        "rest_spot_api_v3_depth_btcusdt_limit1000_2024.json",
        "100ms",
    ),
    "usdm": (
        "seq_usdm_btcusdt_2024-08-08_hftbacktest_first1000.jsonl",
        "rest_usdm_fapi_v1_depth_btcusdt_2024.json",
        "0ms",
    ),
}


class NullSink:
    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        pass

    def on_trade(self, feed, trade) -> None:
        pass


class Top10Sink(NullSink):
    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        book.top_bids(10)
        book.top_asks(10)


def session(market: str) -> tuple[list[bytes], list[bytes], bytes, BinanceFeed]:
    seq, rest, speed = SESSIONS[market]
    d = fixtures_dir() / "binance"
    lines = (d / seq).read_bytes().splitlines()
    depth = [ln for ln in lines if b'"depthUpdate"' in ln]
    trades = [ln for ln in lines if b'"e":"trade"' in ln]
    feed = BinanceFeed(BinanceConfig(market=market, symbols=["BTC-USDT"], depth_speed=speed))
    return depth, trades, (d / rest).read_bytes(), feed


def timed(feed: BinanceFeed, frames: list[bytes], iterations: int, snapshot: bytes | None) -> list[int]:
    deliver = feed.deliver_frame
    clock = time.perf_counter_ns
    out: list[int] = []
    gc.disable()
    try:
        for _ in range(iterations):
            if snapshot is not None:
                feed.deliver_connect(1)
                feed.deliver_rest("BTCUSDT", snapshot, 1)
            for raw in frames:
                t0 = clock()
                deliver(raw, 1)
                out.append(clock() - t0)
    finally:
        gc.enable()
    return out


def bench(iterations: int) -> dict:
    results = {}
    for market in ("spot", "usdm"):
        depth, trades, snap, feed = session(market)
        for sink_name, sink in (("", NullSink()), ("_top10", Top10Sink())):
            if market == "usdm" and sink_name:
                continue
            feed.sink = sink
            results[f"{market}_depth{sink_name}"] = timed(feed, depth, iterations, snap)
            assert feed.stats.errors == 0 and feed.stats.resyncs == 0, feed.stats
        feed.sink = NullSink()
        results[f"{market}_trade"] = timed(feed, trades, iterations, None)
    return {name: summary(samples) for name, samples in results.items()}


def summary(samples: list[int]) -> dict:
    s = sorted(samples)

    def pick(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] / 1000

    return {
        "messages": len(s),
        "mean_us": round(statistics.fmean(s) / 1000, 2),
        "p50_us": round(pick(0.50), 2),
        "p99_us": round(pick(0.99), 2),
        "max_us": round(s[-1] / 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=300, help="passes over each case's frames")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    res = bench(args.iterations)
    if args.json:
        print(json.dumps({"venue": "binance", "python": platform.python_version(), "cases": res}, indent=2))
        return 0
    print(f"{'case':<20}{'messages':>10}{'mean us':>10}{'p50 us':>10}{'p99 us':>10}{'max us':>10}")
    for name, r in res.items():
        print(
            f"{name:<20}{r['messages']:>10}{r['mean_us']:>10}{r['p50_us']:>10}{r['p99_us']:>10}{r['max_us']:>10}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

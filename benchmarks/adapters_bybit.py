"""Per-message cost of the Bybit adapter: parse + continuity check + book update + hand-off, on recorded frames.

Each case calls ``BybitFeed.deliver_frame`` exactly as the live connection does (orjson parse,
topic dispatch, ``u`` continuity, absolute-size level updates, crossed check, one ``on_book`` /
``on_trade`` call into a sink that does nothing), timing every call with ``perf_counter_ns``.

    .venv/bin/python benchmarks/adapters_bybit.py [--iterations N] [--json]

Cases (fixtures/bybit):
- ``delta_500``: the 24 recorded deltas of the XRPUSDT orderbook.500 session (5-345 level
  changes each) on the recorded 500x500 snapshot; the snapshot is re-delivered, untimed,
  before each pass so every timed delta is a valid continuation.
- ``delta_1``: the 4 recorded deltas of the BTCUSDT orderbook.1 session.
- ``trades``: the recorded 3-trade linear ``publicTrade`` frame.
- ``snapshot_500``: the recorded 500x500 snapshot (a full rebuild).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time

from latentspeed_exchange_bybit.config import BybitConfig
from latentspeed_exchange_bybit.feed import BybitFeed

from latentspeed_core.testing import fixtures_dir


class NullSink:
    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        pass

    def on_trade(self, feed, trade) -> None:
        pass


def lines(name: str) -> list[bytes]:
    return [ln.encode() for ln in (fixtures_dir() / "bybit" / name).read_text().splitlines() if ln.strip()]


def make_feed(symbol: str, depth: int) -> BybitFeed:
    feed = BybitFeed(BybitConfig(symbols=[symbol], depth=depth))
    feed.sink = NullSink()
    feed.send = lambda msg: None  # no connection here
    feed.deliver_connect(1)
    return feed


def timed(feed: BybitFeed, frames: list[bytes], iterations: int, reset: bytes | None = None) -> list[int]:
    deliver = feed.deliver_frame
    clock = time.perf_counter_ns
    out = []
    gc.disable()
    try:
        for _ in range(iterations):
            if reset is not None:
                deliver(reset, 1)
            for raw in frames:
                t0 = clock()
                deliver(raw, 1)
                out.append(clock() - t0)
    finally:
        gc.enable()
    return out


def bench(iterations: int) -> dict:
    results = {}
    xrp = lines("seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl")
    feed = make_feed("XRP-USDT", 500)
    results["delta_500"] = timed(feed, xrp[1:], iterations, reset=xrp[0])
    assert feed.stats.errors == 0 and feed.stats.resyncs == 0

    btc = lines("unattributed/seq_linear_orderbook1_btcusdt_2023-10-06_snapshot_plus_4_deltas.jsonl")
    feed = make_feed("BTC-USDT", 1)
    results["delta_1"] = timed(feed, btc[1:], iterations * 4, reset=btc[0])
    assert feed.stats.errors == 0 and feed.stats.resyncs == 0

    trade = json.dumps(
        json.loads(
            (
                fixtures_dir() / "bybit/unattributed/ws_linear_publicTrade_btcusdt_3trades_2023-10-06_A.json"
            ).read_text()
        )
    ).encode()
    feed = make_feed("BTC-USDT", 1)
    results["trades"] = timed(feed, [trade], iterations * 10)
    assert feed.stats.errors == 0

    feed = make_feed("XRP-USDT", 500)
    results["snapshot_500"] = timed(feed, [xrp[0]], max(1, iterations // 4))
    assert feed.stats.errors == 0
    return {name: summary(samples) for name, samples in results.items()}


def summary(samples: list[int]) -> dict:
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] / 1000  # noqa: E731
    return {
        "messages": len(s),
        "mean_us": round(statistics.fmean(s) / 1000, 2),
        "p50_us": round(pick(0.50), 2),
        "p99_us": round(pick(0.99), 2),
        "max_us": round(s[-1] / 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000, help="passes over each case's frames")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    res = bench(args.iterations)
    if args.json:
        print(json.dumps({"venue": "bybit", "python": platform.python_version(), "cases": res}, indent=2))
        return 0
    print(f"Bybit adapter, per message (Python {platform.python_version()}, {platform.machine()})")
    print(f"{'case':<20}{'messages':>10}{'mean µs':>10}{'p50 µs':>10}{'p99 µs':>10}{'max µs':>10}")
    for name, r in res.items():
        print(
            f"{name:<20}{r['messages']:>10}{r['mean_us']:>10}{r['p50_us']:>10}{r['p99_us']:>10}{r['max_us']:>10}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

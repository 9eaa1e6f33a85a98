"""Per-message cost of the dYdX adapter: parse + book update (+ uncross check) + hand-off, on recorded frames.

Each case calls ``DydxFeed.deliver_frame`` exactly as the live connection does (orjson parse,
dispatch, level updates with offsets, crossed check, one ``on_book`` / ``on_trade`` call into
a sink that does nothing), timing every call with ``perf_counter_ns``.

    .venv/bin/python benchmarks/adapters_dydx.py [--iterations N] [--json]

Cases (fixtures/dydx):
- ``channel_data``: the 41 recorded updates of the ETH-USD batch, one per frame, on a book seeded
  with the recorded 100x100 ETH-USD snapshot moved onto the updates' price range (-997.0), so the
  updates land inside a realistic 200-level book.
- ``channel_batch_data``: the recorded 41-content batch as one frame (one book emission).
- ``trades``: the recorded two-trade ``v4_trades`` channel_data.
- ``subscribed``: the recorded 100x100 snapshot into an empty book (a full rebuild).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import statistics
import sys
import time

from latentspeed_exchange_dydx.config import DydxConfig
from latentspeed_exchange_dydx.feed import DydxFeed

from latentspeed_core.testing import fixtures_dir

SHIFT = -997.0


class NullSink:
    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        pass

    def on_trade(self, feed, trade) -> None:
        pass


def load(name: str) -> dict:
    return json.loads((fixtures_dir() / "dydx" / name).read_text())


def shifted_snapshot(message_id: int) -> bytes:
    snap = copy.deepcopy(load("ws_v4_orderbook_subscribed_eth-usd_100x100_nautilus.json"))
    for side in ("bids", "asks"):
        for lvl in snap["contents"][side]:
            lvl["price"] = f"{float(lvl['price']) + SHIFT:.1f}"
    snap["message_id"] = message_id
    return json.dumps(snap).encode()


def make_feed() -> DydxFeed:
    feed = DydxFeed(DydxConfig(symbols=["ETH-USD"]))
    feed.sink = NullSink()
    feed.deliver_connect(1)
    return feed


def timed(feed: DydxFeed, frames: list[bytes], iterations: int, fresh: bool = False) -> list[int]:
    """Time each delivery; ``fresh`` empties the book (untimed) first, as a new subscription does."""
    deliver = feed.deliver_frame
    clock = time.perf_counter_ns
    books = list(feed.books.values())
    out = []
    gc.disable()
    try:
        for _ in range(iterations):
            for raw in frames:
                if fresh:
                    for b in books:
                        b.reset()
                t0 = clock()
                deliver(raw, 1)
                out.append(clock() - t0)
    finally:
        gc.enable()
    return out


def bench(iterations: int) -> dict:
    batch = load("ws_v4_orderbook_channel_batch_data_eth-usd_41updates_nautilus.json")
    results = {}

    feed = make_feed()
    feed.deliver_frame(shifted_snapshot(1), 1)
    singles = []
    for i, contents in enumerate(batch["contents"]):
        msg = {k: v for k, v in batch.items() if k != "contents"}
        msg.update(type="channel_data", message_id=2 + i, contents=contents)
        singles.append(json.dumps(msg).encode())
    # Ids stay as recorded on every pass: sizes are absolute, so repeats are valid updates.
    results["channel_data"] = timed(feed, singles, iterations)
    assert feed.stats.errors == 0

    feed = make_feed()
    feed.deliver_frame(shifted_snapshot(1), 1)
    results["channel_batch_data"] = timed(feed, [json.dumps(batch).encode()], max(1, iterations))

    feed = make_feed()
    results["trades"] = timed(
        feed, [json.dumps(load("ws_v4_trades_channel_data_eth-usd_nautilus.json")).encode()], iterations * 10
    )

    feed = make_feed()
    results["subscribed"] = timed(feed, [shifted_snapshot(1)], max(1, iterations // 4), fresh=True)
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
        print(json.dumps({"venue": "dydx", "python": platform.python_version(), "cases": res}, indent=2))
        return 0
    print(f"dYdX adapter, per message (Python {platform.python_version()}, {platform.machine()})")
    print(f"{'case':<20}{'messages':>10}{'mean µs':>10}{'p50 µs':>10}{'p99 µs':>10}{'max µs':>10}")
    for name, r in res.items():
        print(
            f"{name:<20}{r['messages']:>10}{r['mean_us']:>10}{r['p50_us']:>10}{r['p99_us']:>10}{r['max_us']:>10}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

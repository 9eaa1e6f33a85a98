"""Per-message cost of the exchange adapters: parse + venue rules + book update + hand-off, on recorded frames.

Each case calls the venue feed's ``deliver_frame`` exactly as the live connection does (typed
decode, dispatch, the venue's sequence rule, absolute-size level updates, crossed check, one
``on_book`` / ``on_trade`` call into a sink), timing every call with ``perf_counter_ns``, GC off.

    .venv/bin/python benchmarks/adapters.py [--venue all|binance|bybit|dydx] [--iterations N] [--json]

``--iterations`` is the number of passes over each case's frames (default per venue: binance 300,
bybit 2000, dydx 2000). ``--json`` prints ``{"python", "machine", "venues": {venue: {"iterations",
"cases": {case: {"messages", "mean_us", "p50_us", "p99_us", "max_us"}}}}}``.

Cases (fixtures/<venue>):

binance (2024-08-08 BTCUSDT sessions; the book is re-seeded from the recorded REST snapshot,
untimed, before each pass):
- ``spot_depth``: the 88 spot ``depth@100ms`` updates (1-227 level changes, median 16) on the
  1000x1000 snapshot; sink does nothing.
- ``spot_depth_top10``: the same with a sink that reads the top 10 levels per side (what marketstream does).
- ``usdm_depth``: the 95 USD-M ``depth@0ms`` updates on the USD-M 1000x1000 snapshot.
- ``spot_trade`` / ``usdm_trade``: the recorded trade frames.

bybit:
- ``delta_500``: the 24 recorded deltas of the XRPUSDT orderbook.500 session (7-345 level
  changes each) on the recorded 500x500 snapshot; the snapshot is re-delivered, untimed,
  before each pass so every timed delta is a valid continuation.
- ``delta_1``: the 4 recorded deltas of the BTCUSDT orderbook.1 session (4x the passes).
- ``trades``: the recorded 3-trade linear ``publicTrade`` frame (10x the passes).
- ``snapshot_500``: the recorded 500x500 snapshot (a full rebuild; a quarter of the passes).

dydx:
- ``channel_data``: the 41 recorded updates of the ETH-USD batch, one per frame, on a book seeded
  with the recorded 100x100 ETH-USD snapshot moved onto the updates' price range (-997.0), so the
  updates land inside a realistic 200-level book.
- ``channel_batch_data``: the recorded 41-content batch as one frame (one book emission).
- ``trades``: the recorded two-trade ``v4_trades`` channel_data (10x the passes).
- ``subscribed``: the recorded 100x100 snapshot into an emptied book (a full rebuild; a quarter of the passes).
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
from collections.abc import Callable

from latentspeed_core.testing import fixtures_dir

VENUES = ("binance", "bybit", "dydx")
DEFAULT_ITERATIONS = {"binance": 300, "bybit": 2000, "dydx": 2000}
TITLES = {"binance": "Binance", "bybit": "Bybit", "dydx": "dYdX"}


class NullSink:
    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        pass

    def on_trade(self, feed, trade) -> None:
        pass


class Top10Sink(NullSink):
    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        book.top_bids(10)
        book.top_asks(10)


def timed(
    feed,
    frames: list[bytes],
    passes: int,
    before_pass: Callable[[], None] | None = None,
    before_each: Callable[[], None] | None = None,
) -> list[int]:
    """ns per ``deliver_frame`` call; ``before_pass`` / ``before_each`` run untimed (re-seeding a book)."""
    deliver = feed.deliver_frame
    clock = time.perf_counter_ns
    out: list[int] = []
    gc.disable()
    try:
        for _ in range(passes):
            if before_pass is not None:
                before_pass()
            for raw in frames:
                if before_each is not None:
                    before_each()
                t0 = clock()
                deliver(raw, 1)
                out.append(clock() - t0)
    finally:
        gc.enable()
    return out


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


# -- Binance ------------------------------------------------------------------------------------------
BINANCE_SESSIONS = {
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


def bench_binance(iterations: int) -> dict[str, list[int]]:
    from latentspeed_exchange_binance.config import BinanceConfig
    from latentspeed_exchange_binance.feed import BinanceFeed

    results = {}
    for market, (seq, rest, speed) in BINANCE_SESSIONS.items():
        d = fixtures_dir() / "binance"
        lines = (d / seq).read_bytes().splitlines()
        depth = [ln for ln in lines if b'"depthUpdate"' in ln]
        trades = [ln for ln in lines if b'"e":"trade"' in ln]
        snap = (d / rest).read_bytes()
        feed = BinanceFeed(BinanceConfig(market=market, symbols=["BTC-USDT"], depth_speed=speed))

        def reseed(feed=feed, snap=snap) -> None:
            feed.deliver_connect(1)
            feed.deliver_rest("BTCUSDT", snap, 1)

        for suffix, sink in (("", NullSink()), ("_top10", Top10Sink())):
            if market == "usdm" and suffix:
                continue
            feed.sink = sink
            results[f"{market}_depth{suffix}"] = timed(feed, depth, iterations, before_pass=reseed)
            assert feed.stats.errors == 0 and feed.stats.resyncs == 0, feed.stats
        feed.sink = NullSink()
        results[f"{market}_trade"] = timed(feed, trades, iterations)
    return results


# -- Bybit --------------------------------------------------------------------------------------------
def bench_bybit(iterations: int) -> dict[str, list[int]]:
    from latentspeed_exchange_bybit.config import BybitConfig
    from latentspeed_exchange_bybit.feed import BybitFeed

    def lines(name: str) -> list[bytes]:
        text = (fixtures_dir() / "bybit" / name).read_text()
        return [ln.encode() for ln in text.splitlines() if ln.strip()]

    def make_feed(symbol: str, depth: int) -> BybitFeed:
        feed = BybitFeed(BybitConfig(symbols=[symbol], depth=depth))
        feed.sink = NullSink()
        feed.send = lambda msg: None  # no connection here
        feed.deliver_connect(1)
        return feed

    results = {}
    xrp = lines("seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl")
    feed = make_feed("XRP-USDT", 500)
    results["delta_500"] = timed(feed, xrp[1:], iterations, before_pass=lambda: feed.deliver_frame(xrp[0], 1))
    assert feed.stats.errors == 0 and feed.stats.resyncs == 0, feed.stats

    btc = lines("unattributed/seq_linear_orderbook1_btcusdt_2023-10-06_snapshot_plus_4_deltas.jsonl")
    feed1 = make_feed("BTC-USDT", 1)
    results["delta_1"] = timed(
        feed1, btc[1:], iterations * 4, before_pass=lambda: feed1.deliver_frame(btc[0], 1)
    )
    assert feed1.stats.errors == 0 and feed1.stats.resyncs == 0, feed1.stats

    trade_path = fixtures_dir() / "bybit/unattributed/ws_linear_publicTrade_btcusdt_3trades_2023-10-06_A.json"
    trade = json.dumps(json.loads(trade_path.read_text())).encode()
    feed = make_feed("BTC-USDT", 1)
    results["trades"] = timed(feed, [trade], iterations * 10)
    assert feed.stats.errors == 0 and feed.stats.trades == 3 * iterations * 10, feed.stats

    feed = make_feed("XRP-USDT", 500)
    results["snapshot_500"] = timed(feed, [xrp[0]], max(1, iterations // 4))
    assert feed.stats.errors == 0, feed.stats
    return results


# -- dYdX ---------------------------------------------------------------------------------------------
DYDX_SHIFT = -997.0


def bench_dydx(iterations: int) -> dict[str, list[int]]:
    from latentspeed_exchange_dydx.config import DydxConfig
    from latentspeed_exchange_dydx.feed import DydxFeed

    def load(name: str) -> dict:
        return json.loads((fixtures_dir() / "dydx" / name).read_text())

    def shifted_snapshot(message_id: int) -> bytes:
        snap = copy.deepcopy(load("ws_v4_orderbook_subscribed_eth-usd_100x100_nautilus.json"))
        for side in ("bids", "asks"):
            for lvl in snap["contents"][side]:
                lvl["price"] = f"{float(lvl['price']) + DYDX_SHIFT:.1f}"
        snap["message_id"] = message_id
        return json.dumps(snap).encode()

    def make_feed() -> DydxFeed:
        feed = DydxFeed(DydxConfig(symbols=["ETH-USD"]))
        feed.sink = NullSink()
        feed.deliver_connect(1)
        return feed

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
    assert feed.stats.errors == 0, feed.stats

    feed = make_feed()
    feed.deliver_frame(shifted_snapshot(1), 1)
    results["channel_batch_data"] = timed(feed, [json.dumps(batch).encode()], max(1, iterations))
    assert feed.stats.errors == 0, feed.stats

    feed = make_feed()
    trades = json.dumps(load("ws_v4_trades_channel_data_eth-usd_nautilus.json")).encode()
    results["trades"] = timed(feed, [trades], iterations * 10)
    assert feed.stats.errors == 0 and feed.stats.trades == 2 * iterations * 10, feed.stats

    feed = make_feed()
    books = list(feed.books.values())

    def empty_books() -> None:  # a new subscription starts from an empty book
        for b in books:
            b.reset()

    results["subscribed"] = timed(
        feed, [shifted_snapshot(1)], max(1, iterations // 4), before_each=empty_books
    )
    assert feed.stats.errors == 0, feed.stats
    return results


BENCHES = {"binance": bench_binance, "bybit": bench_bybit, "dydx": bench_dydx}


def run(venues: list[str], iterations: int | None) -> dict:
    out = {}
    for venue in venues:
        n = iterations or DEFAULT_ITERATIONS[venue]
        samples = BENCHES[venue](n)
        out[venue] = {"iterations": n, "cases": {name: summary(s) for name, s in samples.items()}}
    return out


def print_table(venue: str, res: dict) -> None:
    print(f"{TITLES[venue]} adapter, per message, {res['iterations']} passes")
    print(f"{'case':<20}{'messages':>10}{'mean µs':>10}{'p50 µs':>10}{'p99 µs':>10}{'max µs':>10}")
    for name, r in res["cases"].items():
        print(
            f"{name:<20}{r['messages']:>10}{r['mean_us']:>10}{r['p50_us']:>10}{r['p99_us']:>10}{r['max_us']:>10}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venue", choices=("all", *VENUES), default="all", help="which adapter (default: all)")
    ap.add_argument("--iterations", type=int, default=None, help="passes over each case's frames")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = ap.parse_args(argv)
    venues = list(VENUES) if args.venue == "all" else [args.venue]
    res = run(venues, args.iterations)
    if args.json:
        doc = {"python": platform.python_version(), "machine": platform.machine(), "venues": res}
        print(json.dumps(doc, indent=2))
        return 0
    print(f"Python {platform.python_version()}, {platform.machine()}")
    for i, venue in enumerate(venues):
        if i:
            print()
        print_table(venue, res[venue])
    return 0


if __name__ == "__main__":
    sys.exit(main())

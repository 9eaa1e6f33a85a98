"""latentspeed vs cryptofeed on the same recorded Binance frames, side by side in one process run.

Both sides get the same depth frames (``fixtures/binance/seq_spot_btcusdt_…_first1000.jsonl``) and the
same REST snapshot (``rest_spot_api_v3_depth_btcusdt_limit1000_2024.json``); only the network is replaced.

- latentspeed: the ``binance`` plugin's feed, frames delivered through ``Feed.deliver_frame`` as the live
  WebSocket transport delivers them; a sink reads the top 10 levels per side on every published book.
- cryptofeed: ``Binance(...).message_handler(frame, conn, receipt_ts)``, the call its live connection makes,
  with the snapshot fetch (``http_conn.read``) answered from the fixture and an L2 callback reading the top
  10 bids and asks.

Each run makes many passes over the depth frames; the book is re-seeded from the snapshot between passes,
outside the timed region. Every frame is timed with ``perf_counter_ns``. Trades are measured separately:
cryptofeed's Binance spot feed only subscribes ``aggTrade``, so the recorded ``trade`` frames are rewritten to
the ``aggTrade`` shape for it (latentspeed parses them as recorded).

The last line of output is one JSON object (a contract; other programs read it).
Needs cryptofeed: ``pip install -e '.[bench]'`` (or ``pip install cryptofeed``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import orjson

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "binance"
FRAMES = FIXTURES / "seq_spot_btcusdt_2024-08-08_hftbacktest_first1000.jsonl"
SNAPSHOT = FIXTURES / "rest_spot_api_v3_depth_btcusdt_limit1000_2024.json"
TOP = 10
perf_counter_ns = time.perf_counter_ns


def load(frames_path: Path, snapshot_path: Path) -> tuple[list[str], list[str], str]:
    """Depth frames, trade frames (text, as the WebSocket delivers them) and the snapshot body."""
    depth, trades = [], []
    for line in frames_path.read_text().splitlines():
        if '"depthUpdate"' in line:
            depth.append(line)
        elif '"e":"trade"' in line:
            trades.append(line)
    return depth, trades, snapshot_path.read_text()


def as_agg_trade(frame: str) -> str:
    """A recorded ``trade`` frame rewritten to the ``aggTrade`` shape cryptofeed's Binance spot feed parses."""
    d = orjson.loads(frame)["data"]
    agg = {"e": "aggTrade", "E": d["E"], "s": d["s"], "a": d["t"], "p": d["p"], "q": d["q"],
           "f": d["t"], "l": d["t"], "T": d["T"], "m": d["m"], "M": d.get("M", True)}  # fmt: skip
    return orjson.dumps({"stream": d["s"].lower() + "@aggTrade", "data": agg}).decode()


def summarise(times_ns: list[int]) -> dict:
    times_ns = sorted(times_ns)
    n = len(times_ns)
    return {
        "frames_per_s": n / (sum(times_ns) / 1e9),
        "p50_us": times_ns[n // 2] / 1e3,
        "p99_us": times_ns[min(n - 1, int(n * 0.99))] / 1e3,
    }


# -- latentspeed --------------------------------------------------------------------------------------
class TopSink:
    """What marketstream needs from each book publication: the top N per side."""

    __slots__ = ("bids", "asks", "books", "trades")

    def __init__(self) -> None:
        self.bids: list = []
        self.asks: list = []
        self.books = 0
        self.trades = 0

    def on_book(self, feed, symbol, book, timestamp_ns, receipt_ns) -> None:
        self.bids = book.top_bids(TOP)
        self.asks = book.top_asks(TOP)
        self.books += 1

    def on_trade(self, feed, trade) -> None:
        self.trades += 1


class Latentspeed:
    name = "latentspeed"

    def __init__(self, snapshot: str) -> None:
        from latentspeed_exchange_binance.config import BinanceConfig
        from latentspeed_exchange_binance.feed import BinanceFeed

        from latentspeed_core.config import validate

        self.feed = BinanceFeed(validate(BinanceConfig, {"exchange": "binance", "symbols": ["BTC-USDT"]}))
        self.sink = TopSink()
        self.feed.sink = self.sink
        self.snapshot = snapshot

    def seed(self) -> None:
        """A fresh connection and its snapshot, as after a (re)connect."""
        self.feed.deliver_connect(time.time_ns())
        self.feed.deliver_rest("BTCUSDT", self.snapshot, time.time_ns())

    def run_pass(self, frames: list[str], out: list[int]) -> None:
        deliver = self.feed.deliver_frame
        receipt = time.time_ns()
        for frame in frames:
            t0 = perf_counter_ns()
            deliver(frame, receipt)
            out.append(perf_counter_ns() - t0)

    def top(self) -> tuple[list, list]:
        return [tuple(x) for x in self.sink.bids], [tuple(x) for x in self.sink.asks]

    def check(self) -> None:
        s = self.feed.stats
        if s.errors or s.resyncs:
            raise SystemExit(f"latentspeed side: errors={s.errors} resyncs={s.resyncs}")


# -- cryptofeed ---------------------------------------------------------------------------------------
class _SnapshotFromFixture:
    """Stands in for cryptofeed's ``HTTPAsyncConn``: answers the depth snapshot GET from the fixture."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.requests: list[str] = []

    async def read(self, address: str, *args, **kwargs) -> str:
        self.requests.append(address)
        return self.body

    async def close(self) -> None:
        pass


class Cryptofeed:
    name = "cryptofeed"

    def __init__(self, snapshot: str) -> None:
        from cryptofeed.defines import L2_BOOK, TRADES
        from cryptofeed.exchanges import Binance
        from cryptofeed.symbols import Symbols

        # the symbol table cryptofeed would download from /api/v3/exchangeInfo
        Symbols.set(
            Binance.id,
            {"BTC-USDT": "BTCUSDT"},
            {"tick_size": {"BTC-USDT": "0.01"}, "instrument_type": {"BTC-USDT": "spot"}},
        )
        self.bids: list = []
        self.asks: list = []
        self.trades = 0

        async def on_book(book, receipt_timestamp):
            bids, asks = book.book.bids, book.book.asks
            self.bids = [bids.index(i) for i in range(min(TOP, len(bids)))]
            self.asks = [asks.index(i) for i in range(min(TOP, len(asks)))]

        async def on_trade(trade, receipt_timestamp):
            self.trades += 1

        self.feed = Binance(
            symbols=["BTC-USDT"], channels=[L2_BOOK, TRADES], callbacks={L2_BOOK: on_book, TRADES: on_trade}
        )
        self.http = _SnapshotFromFixture(snapshot)
        self.feed.http_conn = self.http  # only the network is replaced
        self.loop = asyncio.new_event_loop()

    def seed(self) -> None:
        self.feed._reset()
        self.loop.run_until_complete(self.feed._snapshot("BTCUSDT"))

    def run_pass(self, frames: list[str], out: list[int]) -> None:
        self.loop.run_until_complete(self._run_pass(frames, out))

    async def _run_pass(self, frames: list[str], out: list[int]) -> None:
        handler = self.feed.message_handler
        receipt = time.time()
        for frame in frames:
            t0 = perf_counter_ns()
            await handler(frame, None, receipt)
            out.append(perf_counter_ns() - t0)

    def top(self) -> tuple[list, list]:
        return [(float(p), float(q)) for p, q in self.bids], [(float(p), float(q)) for p, q in self.asks]

    def check(self) -> None:
        if not self.feed._l2_book:
            raise SystemExit("cryptofeed side: book was reset (it detected a missing update)")


# -- driver -------------------------------------------------------------------------------------------
def measure(side, frames: list[str], passes: int, runs: int) -> tuple[list[dict], int]:
    results = []
    for _ in range(runs):
        times: list[int] = []
        gc.collect()
        for _ in range(passes):
            side.seed()  # outside the timed region
            side.run_pass(frames, times)
        side.check()
        results.append(summarise(times))
    return results, len(frames)


def median_of(results: list[dict]) -> dict:
    return {k: round(statistics.median(r[k] for r in results), 3) for k in results[0]}


def compare_books(a, b) -> bool:
    """Both sides' final top 10, level by level; print the first difference."""
    abids, aasks = a.top()
    bbids, basks = b.top()
    ok = True
    for side, x, y in (("bids", abids, bbids), ("asks", aasks, basks)):
        if len(x) != len(y) or len(x) < TOP:
            print(f"BOOKS DIFFER: {side} depth {len(x)} vs {len(y)}", file=sys.stderr)
            ok = False
        for i, (lx, ly) in enumerate(zip(x, y, strict=False)):
            if lx != ly:
                print(f"BOOKS DIFFER: {side}[{i}] {a.name} {lx} != {b.name} {ly}", file=sys.stderr)
                ok = False
                break
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=Path, default=FRAMES, help="recorded Binance session (JSON lines)")
    ap.add_argument("--snapshot", type=Path, default=SNAPSHOT, help="its REST depth snapshot")
    ap.add_argument("--passes", type=int, default=200, help="passes over the depth frames per run")
    ap.add_argument("--runs", type=int, default=5, help="runs per side (medians are reported); at least 3")
    args = ap.parse_args(argv)
    if args.runs < 3:
        ap.error("--runs must be at least 3")
    try:
        import cryptofeed  # noqa: F401
    except ImportError:
        print(
            "cryptofeed is not installed. Install the benchmark extra:  pip install -e '.[bench]'"
            "  (or: pip install 'cryptofeed>=2.4')",
            file=sys.stderr,
        )
        return 2

    try:
        import latentspeed_exchange_binance  # noqa: F401
    except ImportError:
        print(
            "the binance plugin is not installed:  pip install -e plugins/exchange_binance", file=sys.stderr
        )
        return 2

    depth, trades, snapshot = load(args.frames, args.snapshot)
    ls, cf = Latentspeed(snapshot), Cryptofeed(snapshot)

    # correctness first: one pass each from the snapshot, then the final top 10 must agree
    for side in (ls, cf):
        side.seed()
        side.run_pass(depth, [])
        side.check()
    books_equal = compare_books(ls, cf)

    ls_res, n = measure(ls, depth, args.passes, args.runs)
    cf_res, _ = measure(cf, depth, args.passes, args.runs)
    books_equal = books_equal and compare_books(ls, cf)  # and again after the timed passes
    lsm, cfm = median_of(ls_res), median_of(cf_res)
    ratio = lsm["frames_per_s"] / cfm["frames_per_s"]

    # trades, separately: latentspeed parses the recorded `trade` frames, cryptofeed the aggTrade rewrite
    agg = [as_agg_trade(f) for f in trades]
    tl, tc = [], []
    for _ in range(args.runs):
        tl_times: list[int] = []
        tc_times: list[int] = []
        for _ in range(max(1, args.passes // 3)):
            ls.run_pass(trades, tl_times)
            cf.run_pass(agg, tc_times)
        tl.append(summarise(tl_times))
        tc.append(summarise(tc_times))
    tlm, tcm = median_of(tl), median_of(tc)

    print(f"Binance spot BTCUSDT, {n} depth frames x {args.passes} passes x {args.runs} runs (medians); "
          f"top {TOP} read per book update")  # fmt: skip
    print(f"{'side':<13}{'depth frames/s':>16}{'p50 us':>10}{'p99 us':>10}   {'trades/s':>12}{'p50 us':>10}")
    for name, d, t in (("latentspeed", lsm, tlm), ("cryptofeed", cfm, tcm)):
        print(f"{name:<13}{d['frames_per_s']:>16,.0f}{d['p50_us']:>10.1f}{d['p99_us']:>10.1f}   "
              f"{t['frames_per_s']:>12,.0f}{t['p50_us']:>10.1f}")  # fmt: skip
    print(f"ratio (depth frames/s): {ratio:.2f}x   trades: {tlm['frames_per_s'] / tcm['frames_per_s']:.2f}x "
          f"(cryptofeed fed aggTrade rewrites of the trade frames)   books_equal: {books_equal}")  # fmt: skip
    if not books_equal:
        print("FAIL: the two sides ended with different books", file=sys.stderr)
    print(json.dumps({
        "latentspeed": {k: lsm[k] for k in ("frames_per_s", "p50_us", "p99_us")},
        "cryptofeed": {k: cfm[k] for k in ("frames_per_s", "p50_us", "p99_us")},
        "ratio": round(ratio, 3),
        "depth_frames": n,
        "books_equal": books_equal,
    }))  # fmt: skip
    return 0 if books_equal else 1


if __name__ == "__main__":
    sys.exit(main())

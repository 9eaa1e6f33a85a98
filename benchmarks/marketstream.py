"""Marketstream benchmark: replay a capture at max speed through the real hot path.

    python benchmarks/marketstream.py [--books 50000] [--trades 100000] [--source auto|mock|binance] [--profile]
    python benchmarks/marketstream.py --redis      # also: the Redis sink on (starts its own redis-server)

Path measured, per message: the capture replayer stamps each input with the wall clock
(``replay_into(..., restamp=True)``, exactly what a live transport does on receipt), then
the real feed plugin parses it (``deliver_frame``), updates its book, the real Pipeline
builds the message and runs the registered feature calculators, orjson serialises it and
the real Publisher sends both frames (NOBLOCK) on a loopback XPUB socket that a
subscriber in another process drains. Latency = receipt stamp → ``send`` of the last
frame returned. Throughput = messages published / wall time of the replay; the capture
is read and decompressed into memory before the clock starts, because no live feed
does that work.

Inputs: ``binance`` replays the recorded Binance spot session
(fixtures/binance/seq_spot_btcusdt_2024-08-08_hftbacktest_first1000.jsonl with its REST
snapshot) through the binance plugin, repeated to the requested size; ``mock`` replays a
synthetic mock-protocol session (10-level MARKET_DATA snapshots and TRADE prints)
through the mock plugin. ``auto`` picks binance when that plugin is installed.

The last line of output is one JSON object (a contract):
{"book": {"p50_us", "p99_us", "p999_us", "msgs_per_s"}, "trade": {"p50_us", "p99_us", "msgs_per_s"}}
With ``--redis`` it has one more key, "redis": {"p50_us_without", "p50_us_with", "p50_added_us",
"p99_us_without", "p99_us_with", "books_per_s", "backlog_at_end_max", "books_per_s_drain",
"books_per_s_busy", "drops", "rounds"}.

``--redis``: the book pass again, alternately without and with a Redis sink (``--rounds`` times
each, medians reported, so a load change on the machine hits both alike), on two publishers
with a subscriber each. The sink writes to a private ``redis-server`` (loopback, free port, no
persistence; on CPU 1 when pinned; the sink's writer thread stays in this process's CPU set)
with a buffer large enough that nothing is dropped. Latency is the same receipt → last frame sent, so the difference is
what the sink costs the ZeroMQ path (its ``put`` and the writer thread's share of the GIL);
books/s into Redis = books confirmed by Redis / time from the sink's first write to its last
(bounded by how fast the replay publishes); then once more with the writer held back until the
pass is over, timing the drain of the queued books alone (the sink's own capacity).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq

from latentspeed_core.capture import Recorder, read_capture, replay_records
from latentspeed_core.marketstream.features import build_calculators
from latentspeed_core.marketstream.pipeline import Pipeline
from latentspeed_core.marketstream.publisher import Publisher
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import fixtures_dir, free_port

WINDOW = 20
DEPTH = 10

SUBSCRIBER = r"""
import sys, json, zmq
host, port = sys.argv[1], int(sys.argv[2])
ctx = zmq.Context()
socks = []
for p in (port, port + 1):
    s = ctx.socket(zmq.SUB); s.setsockopt(zmq.RCVHWM, 0); s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(f"tcp://{host}:{p}"); socks.append(s)
poller = zmq.Poller()
for s in socks: poller.register(s, zmq.POLLIN)
counts = {"trades": 0, "books": 0}; names = {socks[0]: "trades", socks[1]: "books"}; ended = set()
while len(ended) < 2:
    for s, _ in poller.poll(30000) or [(None, None)]:
        if s is None: ended = {1, 2}; break
        topic, payload = s.recv_multipart()
        if topic == b"BENCH-END": ended.add(names[s])
        else: counts[names[s]] += 1
print(json.dumps(counts), flush=True)
"""


# -- captures -----------------------------------------------------------------------------
def mock_capture(path: Path, n_books: int, n_trades: int, seed: int = 1) -> None:
    """A mock-protocol session: definitions, then 10-level snapshots or trade prints."""
    from latentspeed_mock_exchange import protocol as P

    rng = random.Random(seed)
    rec = Recorder(path, feeds=["mock"])
    t = time.time_ns()
    rec.write("mock", "connect", t, None)
    seq = 0
    symbols = {1: ("BTC-USD", 50_000.0, 0.5), 2: ("ETH-USD", 3_000.0, 0.05)}
    for sid, (name, _, tick) in symbols.items():
        seq += 1
        rec.write(
            "mock",
            "frame",
            t,
            P.encode_security_definition(seq, t, sid, P.to_fixed(tick), P.to_fixed(0.001), name),
        )
    mids = {sid: px for sid, (_, px, _) in symbols.items()}
    for i in range(n_books):
        sid = 1 + (i & 1)
        tick = symbols[sid][2]
        mids[sid] += rng.choice((-tick, 0.0, tick))
        bid0 = mids[sid] - tick
        bids = [(P.to_fixed(bid0 - k * tick), P.to_fixed(rng.uniform(0.1, 2.0))) for k in range(DEPTH)]
        asks = [(P.to_fixed(bid0 + (k + 2) * tick), P.to_fixed(rng.uniform(0.1, 2.0))) for k in range(DEPTH)]
        seq += 1
        t += 1000
        rec.write("mock", "frame", t, P.encode_market_data(seq, t, sid, bids, asks))
    for i in range(n_trades):
        sid = 1 + (i & 1)
        seq += 1
        t += 1000
        px = P.to_fixed(mids[sid] + rng.uniform(-1, 1))
        rec.write(
            "mock",
            "frame",
            t,
            P.encode_trade(seq, t, sid, px, P.to_fixed(rng.uniform(0.001, 1.0)), i & 1, i + 1),
        )
    rec.close()


BINANCE_SEQ = "binance/seq_spot_btcusdt_2024-08-08_hftbacktest_first1000.jsonl"
BINANCE_REST = "binance/rest_spot_api_v3_depth_btcusdt_limit1000_2024.json"


def binance_capture(path: Path, want_books: int, want_trades: int) -> None:
    """The recorded Binance spot session, stretched to the requested size.

    Books: the recorded connection repeated: connect, the REST snapshot, then the recorded
    depth updates from the one that bridges the snapshot on (86 per connection). The book
    published when a snapshot is loaded (1,000 levels per side parsed) is a once-per-connection
    event: it is timed separately and left out of the book figures. Trades: the recorded
    trade frames, repeated. bookTicker frames are left out (the feed does not subscribe them).
    """
    fx = fixtures_dir()
    rec = Recorder(path, feeds=["binance"])
    t = time.time_ns()
    depth, trades = [], []
    for line in (fx / BINANCE_SEQ).read_text().splitlines():
        frame = json.loads(line)
        if "data" not in frame:
            continue  # the session file also holds a snapshot line; the REST fixture is used instead
        e = frame["data"].get("e")
        if e == "depthUpdate":
            depth.append(frame)
        elif e == "trade":
            trades.append(line)
    snapshot = (fx / BINANCE_REST).read_text()
    lid = json.loads(snapshot)["lastUpdateId"]
    if want_books:
        live = [f for f in depth if f["data"]["u"] > lid]
        assert live[0]["data"]["U"] <= lid + 1 <= live[0]["data"]["u"], "snapshot and updates do not line up"
        n = 0
        while n < want_books:
            # one recorded connection: (re)connect, the snapshot, the updates that follow it
            rec.write("binance", "connect", t, None)
            rec.write("binance", "rest", t, {"key": "BTCUSDT", "body": snapshot})
            for f in live:
                t += 1000
                rec.write("binance", "frame", t, json.dumps(f, separators=(",", ":")))
                n += 1
                if n >= want_books:
                    break
    if want_trades:
        rec.write("binance", "connect", t, None)
        rec.write("binance", "rest", t, {"key": "BTCUSDT", "body": snapshot})
        for i in range(want_trades):
            t += 1000
            rec.write("binance", "frame", t, trades[i % len(trades)])
    rec.close()


# -- one timed pass ---------------------------------------------------------------------
def run_pass(
    registry,
    feed_name: str,
    feed_config,
    capture: Path,
    publisher: Publisher,
    profile: bool = False,
    no_send: bool = False,
):
    comp = registry.get("feeds", feed_name)
    feed = comp.factory(comp.config_model.model_validate(feed_config))
    feed.name = feed_name
    clock = time.time_ns
    book_lat: list[int] = []
    trade_lat: list[int] = []
    snap_lat: list[int] = []
    in_rest = [False]
    deliver_rest = feed.deliver_rest

    def timed_rest(key, body, receipt_ns):  # books published from a REST snapshot are timed apart
        in_rest[0] = True
        t = time.perf_counter_ns()
        try:
            deliver_rest(key, body, receipt_ns)
        finally:
            in_rest[0] = False
            snap_time[0] += time.perf_counter_ns() - t

    snap_time = [0]
    feed.deliver_rest = timed_rest
    pub_book = publisher.publish_book
    pub_trade = publisher.publish_trade
    if no_send:  # diagnostic: everything but the ZeroMQ send
        import orjson

        def pub_book(topic: str, msg: dict, _d=orjson.dumps) -> bool:
            _d(msg)
            return True

        pub_trade = pub_book
    add_book = book_lat.append
    add_trade = trade_lat.append

    def emit_book(topic: str, msg: dict) -> bool:
        ok = pub_book(topic, msg)
        (snap_lat.append if in_rest[0] else add_book)(clock() - msg["receipt_timestamp_ns"])
        return ok

    def emit_trade(topic: str, msg: dict) -> bool:
        ok = pub_trade(topic, msg)
        add_trade(clock() - msg["receipt_timestamp_ns"])
        return ok

    calcs = build_calculators(registry, WINDOW, DEPTH)
    pipeline = Pipeline(WINDOW, DEPTH, calcs, emit_book, emit_trade)
    feed.sink = pipeline
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
    # Read and decompress the capture first: no live feed does that work, so it stays out
    # of the measured throughput (each input is still stamped on delivery, as live).
    records = list(read_capture(capture))
    gc.collect()
    gc.freeze()  # as marketstream does after start-up
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    asyncio.run(replay_records(feed, records, "max", restamp=True))
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    gc.unfreeze()
    return book_lat, trade_lat, wall - snap_time[0] / 1e9, feed, prof, snap_lat


def pct(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return 0.0
    i = min(len(sorted_ns) - 1, int(q * len(sorted_ns)))
    return sorted_ns[i] / 1000.0


def open_publisher(pin: bool, sinks=()) -> Publisher:
    """A Publisher on a free port pair (retried if another process took it meanwhile)."""
    for _ in range(20):
        try:
            return Publisher("127.0.0.1", free_port(), sndhwm=1_000_000, linger_ms=5000,
                             io_cpus=[1] if pin else None, sinks=sinks)  # fmt: skip
        except zmq.ZMQError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise RuntimeError("no free port pair for the publisher")


def redis_passes(args, registry, feed_name, feed_cfg, capture: Path, plain: Publisher, tmp: Path) -> dict:
    """The book pass without and with the Redis sink, alternately; medians of each.

    Each "with" round has a new sink, publisher and subscriber, so no sink thread exists during
    a "without" round."""
    import statistics

    from latentspeed_core.testing import redis_server

    if "redis" not in registry.sinks:
        raise SystemExit("--redis needs the redis plugin: pip install -e plugins/sink_redis")
    comp = registry.sinks["redis"]
    p50: dict[str, list[float]] = {"without": [], "with": []}
    p99: dict[str, list[float]] = {"without": [], "with": []}
    rates: list[float] = []
    backlog: list[int] = []
    drops = 0
    with redis_server(tmp / "redis") as server:
        if args.pin:
            os.sched_setaffinity(server.proc.pid, {1})
        cfg = comp.config_model.model_validate(
            {"type": "redis", "url": server.url, "batch": args.redis_batch, "buffer": 10 * args.books}
        )
        for _ in range(args.rounds):
            lat = run_pass(registry, feed_name, feed_cfg, capture, plain)[0]
            lat.sort()
            p50["without"].append(pct(lat, 0.5))
            p99["without"].append(pct(lat, 0.99))
            print(f"  without sink: book p50 {p50['without'][-1]:.2f} us, p99 {p99['without'][-1]:.1f} us")

            sink = comp.factory(cfg)
            busy: list[float] = []
            write = sink.write

            def timed_write(batch, _write=write, _busy=busy):  # first and last write: the sink's time
                if not _busy:
                    _busy.append(time.perf_counter())
                n = _write(batch)
                _busy[1:] = [time.perf_counter()]
                return n

            sink.write = timed_write
            sink.start()  # its writer thread shares this process's CPU (0 when pinned), as deployed
            pub = open_publisher(args.pin, [sink])
            sub = subprocess.Popen(
                [sys.executable, "-c", SUBSCRIBER, "127.0.0.1", str(pub.port)],
                stdout=subprocess.PIPE, text=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, {1})) if args.pin else None,
            )  # fmt: skip
            try:
                if not asyncio.run(pub.wait_subscribers(1, timeout=30)):
                    raise SystemExit("subscriber did not connect")
                lat = run_pass(registry, feed_name, feed_cfg, capture, pub)[0]
                backlog.append(sink.buffered)  # waiting when the replay ended: did the sink keep up?
                lat.sort()
                want = pub.books_sent + pub.book_drops
                deadline = time.monotonic() + 120
                while sink.written < want and time.monotonic() < deadline:
                    time.sleep(0.01)  # a benchmark waiting for the sink to drain, not a test
                for sock in (pub.trades, pub.books):
                    sock.send_multipart([b"BENCH-END", b"{}"])
                sub.communicate(timeout=60)
            finally:
                pub.close()
                sink.close()
                if sub.poll() is None:
                    sub.kill()
            p50["with"].append(pct(lat, 0.5))
            p99["with"].append(pct(lat, 0.99))
            rates.append(sink.written / (busy[1] - busy[0]) if len(busy) == 2 and busy[1] > busy[0] else 0.0)
            drops += sink.dropped + (want - sink.written)
            print(f"  with sink:    book p50 {p50['with'][-1]:.2f} us, p99 {p99['with'][-1]:.1f} us;"
                  f" {sink.written} books into Redis at {rates[-1]:,.0f}/s, drops {sink.dropped},"
                  f" {backlog[-1]} still queued when the replay ended")  # fmt: skip
        # Capacity: a pass with the writer held back (books only queued), then the drain timed alone.
        sink = comp.factory(cfg)
        pub = open_publisher(args.pin, [sink])
        try:
            run_pass(registry, feed_name, feed_cfg, capture, pub)
            queued = sink.buffered
            t0 = time.perf_counter()
            sink.start()
            while sink.written + sink.refused < queued:
                time.sleep(0.001)  # a benchmark timing a drain, not a test
            capacity = queued / (time.perf_counter() - t0)
        finally:
            pub.close()
            sink.close()
        print(f"  drain alone: {queued} queued books into Redis at {capacity:,.0f}/s")
        # The sink's own rate while the replay publishes: the writer starts once half the books are
        # queued, so it is not waiting for the replay (unless it catches up: then a floor).
        sink = comp.factory(cfg)
        pub = open_publisher(args.pin, [sink])
        started: list[float] = []

        def start_late(total: int = args.books // 2) -> None:
            while pub.books_sent < total and not done.is_set():
                time.sleep(0.001)  # a benchmark's trigger, not a test
            started.append(time.perf_counter())
            sink.start()

        done = threading.Event()
        trigger = threading.Thread(target=start_late, daemon=True)
        trigger.start()
        try:
            run_pass(registry, feed_name, feed_cfg, capture, pub)
            t_end, written, left = time.perf_counter(), sink.written, sink.buffered
            done.set()
            trigger.join(5)
        finally:
            pub.close()
            sink.close()
        busy_rate = written / (t_end - started[0]) if started and t_end > started[0] else 0.0
        print(f"  while publishing, never idle: {written} books into Redis at {busy_rate:,.0f}/s"
              f" ({left} still queued when the replay ended{'' if left else ': it caught up, so this is a floor'})")
    med = {k: statistics.median(v) for k, v in p50.items()}
    out = {
        "p50_us_without": round(med["without"], 2),
        "p50_us_with": round(med["with"], 2),
        "p50_added_us": round(med["with"] - med["without"], 2),
        "p99_us_without": round(statistics.median(p99["without"]), 2),
        "p99_us_with": round(statistics.median(p99["with"]), 2),
        "books_per_s": round(statistics.median(rates)),
        # books still queued when the replay ended (of ~60,000): small means the sink kept up and
        # books_per_s is the rate the replay published at, not the sink's limit
        "backlog_at_end_max": max(backlog),
        "books_per_s_drain": round(capacity),
        # the sink's rate while the replay publishes, the writer never idle (started behind a backlog)
        "books_per_s_busy": round(busy_rate),
        "drops": drops,
        "rounds": args.rounds,
    }
    print(
        f"redis sink (median of {args.rounds}): book p50 {out['p50_us_with']} us with, {out['p50_us_without']} us"
        f" without ({out['p50_added_us']:+} us); {out['books_per_s']:,} books/s into Redis while publishing"
        f" at full speed (as fast as the replay published), {out['books_per_s_busy']:,} with the writer"
        f" behind a backlog, {out['books_per_s_drain']:,} draining alone; drops {out['drops']}"
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--books", type=int, default=60_000, help="book messages to replay (default %(default)s)")
    ap.add_argument(
        "--trades", type=int, default=150_000, help="trade messages to replay (default %(default)s)"
    )
    ap.add_argument("--source", choices=["auto", "mock", "binance"], default="auto")
    ap.add_argument("--profile", action="store_true", help="cProfile each pass and print the top functions")
    ap.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin (default with CPUs 0 and 1 available: this event loop alone on CPU 0,"
        " ZeroMQ's I/O thread and the subscriber on CPU 1)",
    )
    ap.add_argument(
        "--no-send",
        action="store_true",
        help="diagnostic: serialise but do not send (isolates ZeroMQ's share)",
    )
    ap.add_argument("--redis", action="store_true", help="also run the book pass with a Redis sink on")
    ap.add_argument("--redis-batch", type=int, default=500, help="the sink's batch (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="--redis: passes with and without (default %(default)s)")
    args = ap.parse_args()
    args.pin = args.pin and {0, 1} <= os.sched_getaffinity(0)
    if args.pin:  # the event loop alone on CPU 0; ZeroMQ's I/O thread and the subscriber on CPU 1
        os.sched_setaffinity(0, {0})

    registry = load_registry()
    source = args.source
    if source == "auto":
        source = "binance" if "binance" in registry.feeds else "mock"
    tmp = Path(tempfile.mkdtemp(prefix="ls-bench-"))
    book_cap, trade_cap = tmp / "books.jsonl.gz", tmp / "trades.jsonl.gz"
    warm_cap = tmp / "warm.jsonl.gz"
    if source == "mock":
        mock_capture(book_cap, args.books, 0)
        mock_capture(trade_cap, 0, args.trades)
        mock_capture(warm_cap, 5000, 5000, seed=2)
        feed_name, feed_cfg = "mock", {"exchange": "mock"}
    else:
        binance_capture(book_cap, args.books, 0)
        binance_capture(trade_cap, 0, args.trades)
        binance_capture(warm_cap, 5000, 5000)
        feed_name, feed_cfg = "binance", {"exchange": "binance", "symbols": ["BTC-USDT"]}
    print(
        f"source: {source} (feed plugin {feed_name!r}); captures in {tmp};"
        f" {'pinned: loop CPU 0, ZeroMQ I/O + subscriber CPU 1' if args.pin else 'not pinned'}"
    )

    publisher = None
    for _ in range(20):  # the port pair was free a moment ago; retry if someone took it
        port = free_port()
        try:
            publisher = Publisher(
                "127.0.0.1", port, sndhwm=1_000_000, linger_ms=5000, io_cpus=[1] if args.pin else None
            )
            break
        except zmq.ZMQError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    if publisher is None:
        print("no free port pair for the publisher", file=sys.stderr)
        return 1
    sub = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, "127.0.0.1", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {1})) if args.pin else None,
    )
    try:
        ok = asyncio.run(publisher.wait_subscribers(1, timeout=30))
        if not ok:
            print("subscriber did not connect", file=sys.stderr)
            return 1
        run_pass(registry, feed_name, feed_cfg, warm_cap, publisher)  # warm caches, imports, sockets
        gc.freeze()
        results = {}
        sent_books = sent_trades = 0
        for kind, cap in (("book", book_cap), ("trade", trade_cap)):
            b0, t0 = publisher.books_sent, publisher.trades_sent
            book_lat, trade_lat, wall, feed, prof, snap_lat = run_pass(
                registry, feed_name, feed_cfg, cap, publisher, args.profile, args.no_send
            )
            lat = sorted(book_lat if kind == "book" else trade_lat)
            sent = (publisher.books_sent - b0) if kind == "book" else (publisher.trades_sent - t0)
            sent_books += publisher.books_sent - b0
            sent_trades += publisher.trades_sent - t0
            r = {"p50_us": round(pct(lat, 0.5), 2), "p99_us": round(pct(lat, 0.99), 2)}
            if kind == "book":
                r["p999_us"] = round(pct(lat, 0.999), 2)
            r["msgs_per_s"] = round(len(lat) / wall) if wall else 0
            results[kind] = r
            print(
                f"{kind}: {len(lat)} messages in {wall:.2f}s ({sent} sent, drops {publisher.drops}, feed errors"
                f" {feed.stats.errors}): p50 {pct(lat, 0.5):.1f} us, p99 {pct(lat, 0.99):.1f} us,"
                f" p99.9 {pct(lat, 0.999):.1f} us, max {lat[-1] / 1000 if lat else 0:.1f} us,"
                f" {r['msgs_per_s']:,} msgs/s; pipeline-only {len(lat) / (sum(lat) / 1e9) if lat else 0:,.0f} msgs/s"
            )
            if snap_lat:
                snap_lat.sort()
                print(
                    f"  (left out: {len(snap_lat)} books published on loading a REST snapshot, once per"
                    f" connection: p50 {pct(snap_lat, 0.5):.0f} us; their time is excluded from msgs/s)"
                )
            if prof is not None:
                import pstats

                pstats.Stats(prof).sort_stats("tottime").print_stats(18)
        if args.redis:
            results["redis"] = redis_passes(args, registry, feed_name, feed_cfg, book_cap, publisher, tmp)
        for sock in (publisher.trades, publisher.books):
            sock.send_multipart([b"BENCH-END", b"{}"])
        out, _ = sub.communicate(timeout=60)
        got = json.loads(out.strip().splitlines()[-1])
        print(
            f"subscriber received books {got['books']} / trades {got['trades']}"
            f" (published in the timed passes: {sent_books} / {sent_trades}, plus warm-up)"
        )
    finally:
        publisher.close()
        if sub.poll() is None:
            sub.kill()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

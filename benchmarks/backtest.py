"""Backtest benchmark: the example market maker backtested on a long capture, on simulated time (issue 13).

    python benchmarks/backtest.py [--repeat 400] [--mock-tick-ms 100] [--capture FILE] [--save FILE]
        [--config ENGINE.yml] [--runs 3] [--replay-runs 3] [--no-replay] [--no-zmq] [--no-file-run]
        [--profile cprofile|pyinstrument]

The capture (unless ``--capture`` names one) is built from three sources, each replayed through
its own feed plugin, merged by receipt time into one multi-feed capture (as ``latentspeed record``
writes one for several feeds):

- ``binance``: the recorded Binance spot BTC-USDT session (``fixtures/binance/seq_spot_btcusdt_…``,
  ``latentspeed_core.testing.binance_fixture_capture``): per repeat a reconnect, the 1,000-level
  REST snapshot, 87 depth updates and 152 trades over 8.8 s, with the recorded receipt stamps;
- ``bybit``: the recorded Bybit linear XRPUSDT ``orderbook.500`` session (``fixtures/bybit/seq_linear_…``):
  per repeat a reconnect, the 500-level snapshot and the 24 deltas (no trades were recorded),
  stamped at the frames' ``ts`` + 5 ms, repeated to cover the same span;
- ``mock``: the mock exchange's own market data (``MockExchange.tick()``, seed 1, BTC-USD and
  ETH-USD, 10-level snapshots and its random TRADE prints), run in-process on simulated time
  every ``--mock-tick-ms`` of the span, the frames it would send a client recorded as binary frames.

``--capture FILE`` takes a capture of any of these feeds (e.g. one from ``binance_fixture_capture``).
The engine config (``--config`` replaces it) has the capture's feeds with the default feature
calculators (all registered: features on), the ``paper`` venue (``risk_averse``, 1 ms entry and
response latency, seed 1, each symbol's tick and lot) and one example ``market_maker`` per symbol
with the parameters of ``config/paper_*.yml`` (half spread 1 bps, requote 2 bps).

Measured (1, 2 and 4 in this process, 3 in two more):

1. **backtest** (the figure), ``--runs`` times, the median run reported: ``backtest_setup`` +
   ``run_backtest``, exactly what ``latentspeed backtest`` runs, with one difference: the capture is
   read into memory before the clock starts (``latentspeed_core.capture.read_capture`` is pointed at
   the pre-read records), so gzip and the JSON decoding of capture lines stay out of the measured
   time. ``events`` = the report's ``events`` (frames delivered to feeds: book and trade frames; REST
   snapshots and connects are not counted), ``events_per_s`` = events / ``wall_s`` (the report's own
   wall time of the loop). ``cpu_s``: this thread's CPU time over the same call, steadier than wall
   time on a shared machine. Before each run a fixed pure-Python workload is timed
   (``host_reference_ms_runs``, ~25 ms on a quiet host) and the hypervisor's steal over the run read
   (``steal_ms_runs``, Linux), both in run order beside ``events_per_s_runs_in_order``: a run slow
   together with its reference was slowed by the host, not the code.
2. **backtest from the file** (``--no-file-run`` skips it): the same, reading the gzip capture as
   the command does; its ``fill_digest`` must equal the first one (determinism, checked). With two
   CPUs the file is read, inflated and decoded on a thread of its own (``_capread``), so this
   figure, unlike the first, has a second CPU's help; ``cpu_s_reading_file`` is this thread's CPU.
3. **replay, two processes** (the issue's comparison; ``--no-zmq`` or ``--no-replay`` skip it):
   today's path, ``latentspeed marketstream`` with every feed replaying the same capture file at
   ``speed: max`` and publishing on a free loopback port, and an engine process subscribed to it
   (``EngineRunner`` with ``market_data.zmq``, the same strategies, risk, fees and ``paper`` venue).
   The marketstream starts its feeds once the engine has subscribed (``--wait-subscribers 1``); both
   ZeroMQ queues are 10,000,000 deep and the publisher counts what it drops (``drop_all``: exact);
   the result says how many messages were published, received, dropped and lost. Events/s = the
   feeds' frames (the marketstream's STATS lines) / the engine's time from its first message to its
   last, ``--replay-runs`` times, each right after one of the backtests of 1 (the VM's speed drifts
   over minutes: both are measured in the same ones), the median run compared: ``vs_replay_speedup``
   = backtest events/s / that; ``replay`` holds the details (both processes' CPU time, orders,
   fills), ``replay_events_per_s_runs`` every run, ``vs_replay_speedup_pairs`` each backtest against
   the replay right after it.
4. **replay, in process** (``--no-replay`` skips it): ``EngineRunner`` with in-process feeds replaying
   the capture (``replay:``, ``speed: max``; ``replay_into`` reads the same pre-read records), the
   marketstream Pipeline with the same features, the engine, the ``paper`` venue on its live wall-clock
   timer. Wall time from the market-data task's start to the end of the replay (and the thread's CPU
   time): ``inprocess_replay_*``, ``vs_inprocess_replay_speedup`` (``_cpu``: by CPU time).

Neither replay does the same trading as the backtest: at ``speed: max`` the venue's wall-clock timer
runs pending arrivals and reports only when the loop gets to them (``replay.orders``,
``inprocess_replay_orders`` say how many orders each placed).

The pre-read records are frozen out of the garbage collector's sight (``gc.freeze()``) before
each run, as ``EngineRunner`` does for everything built before its loop starts.

``--profile cprofile|pyinstrument`` profiles one more backtest (in memory) and prints the top of
the profile on stderr. The last line of stdout is one JSON object (a contract):
``{"events": N, "events_per_s": X, "fills": K, "fill_digest": "...", ...}`` (more keys follow).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from latentspeed_core import backtest as bt
from latentspeed_core import capture as capture_mod
from latentspeed_core.capture import Recorder, capture_feeds, read_capture
from latentspeed_core.config import load_yaml
from latentspeed_core.engine.config import resolve
from latentspeed_core.engine.runner import EngineRunner
from latentspeed_core.plugins import load_registry
from latentspeed_core.testing import binance_fixture_capture, fixtures_dir

BYBIT_SESSION = "bybit/seq_linear_orderbook500_xrpusdt_2024-12-01_snapshot_plus_24_deltas.jsonl"
#: Bybit frames carry no receipt stamp: receipt = the frame's ``ts`` + this.
BYBIT_RECEIPT_DELAY_NS = 5_000_000
MOCK_SYMBOLS = ("BTC-USD", "ETH-USD")

TARGET_EVENTS_PER_S = 200_000
TARGET_SPEEDUP = 3.0

#: One market maker per symbol: (feed entry, symbol, tick, lot, params).
FEEDS = {
    "binance": {"exchange": "binance", "market": "spot", "symbols": ["BTC-USDT"]},
    "bybit": {
        "exchange": "bybit",
        "market": "linear",
        "depth": 500,
        "trades": False,
        "symbols": ["XRP-USDT"],
    },
    "mock": {"exchange": "mock", "symbols": list(MOCK_SYMBOLS)},
}
INSTRUMENTS = {
    "BTC-USDT": {"tick_size": 0.01, "lot_size": 0.00001},
    "XRP-USDT": {"tick_size": 0.0001, "lot_size": 1.0},
    "BTC-USD": {"tick_size": 0.5, "lot_size": 0.0001},
    "ETH-USD": {"tick_size": 0.05, "lot_size": 0.001},
}
#: Per symbol: qty, max_position, skew_bps (the skew is per unit of position: smaller for XRP's units).
QUOTES = {
    "BTC-USDT": (0.001, 0.01, 2.0),
    "XRP-USDT": (20.0, 200.0, 0.1),
    "BTC-USD": (0.001, 0.01, 2.0),
    "ETH-USD": (0.01, 0.1, 2.0),
}


# -- the capture --------------------------------------------------------------------------------
def _binance_records(repeat: int, tmp: Path) -> list[tuple[int, str, object]]:
    path = binance_fixture_capture(tmp / "binance.jsonl", repeat=repeat)
    out = [(r["receipt_ns"], r["kind"], r.get("data")) for r in read_capture(path)]
    path.unlink()
    return out


def _bybit_records(t0: int, t_end: int) -> list[tuple[int, str, object]]:
    """The recorded session repeated as reconnects (connect, snapshot, 24 deltas) from t0 to t_end."""
    lines = [ln for ln in (fixtures_dir() / BYBIT_SESSION).read_text().splitlines() if ln.strip()]
    stamps = [orjson.loads(ln)["ts"] * 1_000_000 + BYBIT_RECEIPT_DELAY_NS for ln in lines]
    span = stamps[-1] - stamps[0] + 100_000_000  # the next connection's snapshot: one interval later
    out = []
    shift = t0 - stamps[0] + 1
    while stamps[0] + shift < t_end:
        out.append((stamps[0] + shift - 1, "connect", None))
        out.extend((ts + shift, "frame", ln) for ln, ts in zip(lines, stamps, strict=True))
        shift += span
    return out


class _Tap:
    """Stands where the mock exchange expects a connected client: keeps the frames it is sent.

    The frames are stamped with the simulated time ``now`` (not the exchange's wall clock), so
    the capture is the same on every build."""

    def __init__(self) -> None:
        from latentspeed_mock_exchange import protocol as P

        self.P = P
        self.seq = 0
        self.now = 0
        self.frames: list[tuple[int, bytes]] = []

    def send_secdef(self, sym, _now: int) -> None:
        self.seq += 1
        core = sym.core
        self.frames.append(
            (
                self.now,
                self.P.encode_security_definition(self.seq, self.now, sym.sid, core.tick, core.lot, sym.name),
            )
        )

    def send_market_data(self, symbols, _now: int) -> None:
        P = self.P
        for sym in symbols:
            self.seq += 1
            self.frames.append(
                (self.now, P.encode_market_data(self.seq, self.now, sym.sid, sym.bids, sym.asks))
            )

    def send_trade(self, sid, px, qty, aggressor, trade_id, _now: int) -> None:
        self.seq += 1
        self.frames.append(
            (self.now, self.P.encode_trade(self.seq, self.now, sid, px, qty, aggressor, trade_id))
        )


def _mock_records(t0: int, t_end: int, tick_ms: float) -> list[tuple[int, str, object]]:
    """The mock exchange's random walk and prints, one tick every ``tick_ms`` of simulated time."""
    from latentspeed_mock_exchange.config import MockExchangeConfig
    from latentspeed_mock_exchange.server import MockExchange

    ex = MockExchange(MockExchangeConfig(seed=1, symbols=list(MOCK_SYMBOLS), log_orders=False))
    tap = _Tap()
    ex.clients.add(tap)  # type: ignore[arg-type]  # the client interface MockExchange calls
    tap.now = t0
    for sym in ex.symbols.values():
        tap.send_secdef(sym, t0)
    step = round(tick_ms * 1_000_000)
    t = t0
    while t < t_end:
        t += step
        tap.now = t
        ex.tick()
    out: list[tuple[int, str, object]] = [(t0, "connect", None)]
    out.extend((ts + 20_000, "frame", data) for ts, data in tap.frames)  # received 20 µs after sent
    return out


def build_capture(path: Path, repeat: int, mock_tick_ms: float) -> dict:
    """Write the three-feed capture; returns what is in it."""
    with tempfile.TemporaryDirectory() as d:
        binance = _binance_records(repeat, Path(d))
    t0, t_end = binance[0][0], binance[-1][0]
    sources = {
        "binance": binance,
        "bybit": _bybit_records(t0, t_end),
        "mock": _mock_records(t0, t_end, mock_tick_ms),
    }
    streams = [
        [(t, k, i, name, kind, data) for i, (t, kind, data) in enumerate(recs)]
        for k, (name, recs) in enumerate(sources.items())
    ]
    with Recorder(path, feeds=list(sources)) as rec:
        for t, _k, _i, name, kind, data in heapq.merge(*streams):
            rec.write(name, kind, t, data)
    return {
        "records": {name: len(recs) for name, recs in sources.items()},
        "span_s": round((t_end - t0) / 1e9, 1),
        "binance_repeats": repeat,
        "mock_tick_ms": mock_tick_ms,
    }


# -- the engine config ---------------------------------------------------------------------------
def engine_config(feeds: list[str]) -> dict:
    unknown = [f for f in feeds if f not in FEEDS]
    if unknown:
        raise SystemExit(f"capture holds feeds this benchmark has no config for: {unknown}; give --config")
    symbols = [s for f in feeds for s in FEEDS[f]["symbols"]]
    return {
        "market_data": {"window_size": 20, "depth_levels": 10, "feeds": [dict(FEEDS[f]) for f in feeds]},
        "venue": {
            "exchange": "paper",
            "queue_model": "risk_averse",
            "entry_latency_us": 1000,
            "response_latency_us": 1000,
            "seed": 1,
            "instruments": {s: INSTRUMENTS[s] for s in symbols},
        },
        "strategies": [
            {
                "name": "market_maker",
                "id": f"mm-{s}",
                "symbols": [s],
                "params": {
                    "qty": QUOTES[s][0],
                    "half_spread_bps": 1.0,
                    "skew_bps": QUOTES[s][2],
                    "requote_bps": 2,
                    "max_position": QUOTES[s][1],
                },
            }
            for s in symbols
        ],
        "risk": {"max_order_qty": 100, "max_notional": 100_000, "max_position": 1_000, "price_band_bps": 100},
        "fees": {"maker_bps": -0.5, "taker_bps": 2.0},
        "latency": {"file": None},
        "stats_interval": 3600,
    }


# -- the runs -----------------------------------------------------------------------------------
class InMemory:
    """Points the capture readers of the backtest and of the replayer at pre-read records.

    Both read captures through ``latentspeed_core.capture.read_capture`` (looked up at call time);
    a module that imported the name itself (``latentspeed_core.backtest``, in some versions) is
    patched too."""

    def __init__(self, path: str, records: list[dict]) -> None:
        self.path = path
        self.records = records
        self._saved: list[tuple[object, object]] = []

    def read(self, path):
        if str(path) == self.path:
            return iter(self.records)
        return read_capture(path)

    def __enter__(self):
        for mod in (capture_mod, bt):
            if hasattr(mod, "read_capture"):
                self._saved.append((mod, mod.read_capture))
                mod.read_capture = self.read
        return self

    def __exit__(self, *exc) -> None:
        for mod, fn in self._saved:
            mod.read_capture = fn
        self._saved = []


def host_reference_ms() -> float:
    """A fixed pure-Python workload (dict, float and call churn, like the loop's), in ms.

    Timed right before each backtest run: this VM's speed moves by ±20-30 % within a minute, and a
    run that is slow together with its reference was slowed by the host, not by the code."""
    t = time.perf_counter()
    d: dict[int, float] = {}
    get = d.get
    x = 0.0
    for i in range(200_000):
        k = i & 1023
        d[k] = v = get(k, 0.0) + i * 0.5
        x += v
    return (time.perf_counter() - t) * 1e3


def steal_ms() -> float | None:
    """CPU time the hypervisor gave other guests, all CPUs (Linux /proc/stat), in ms; None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        return int(fields[8]) * 1e3 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_backtest_once(data: dict, registry, capture: str, profiler=None) -> tuple[bt.BacktestResult, float]:
    """One backtest; returns its result and the CPU time of this thread during ``run_backtest``."""
    setup = bt.backtest_setup(data, registry, None, capture)
    gc.collect()
    gc.freeze()
    try:
        if profiler is not None:
            profiler.start()
        cpu = time.thread_time()
        result = bt.run_backtest(setup, registry)
        cpu = time.thread_time() - cpu
        if profiler is not None:
            profiler.stop()
    finally:
        gc.unfreeze()
    return result, cpu


def run_replay(data: dict, registry, capture: str) -> dict:
    """``EngineRunner``, in-process feeds replaying the capture at ``speed: max``, venue ``paper``."""
    d = dict(data)
    md = dict(d["market_data"])
    md["feeds"] = [{**f, "replay": capture, "speed": "max"} for f in md["feeds"]]
    md["startup_timeout"] = 3600
    d["market_data"] = md
    d["shutdown_timeout"] = 1.0
    setup = resolve(d, registry, None)
    out: dict = {}

    async def main() -> dict:
        runner = EngineRunner(setup, registry)
        source_run = runner.source.run

        async def timed() -> None:
            t0 = time.perf_counter()
            c0 = time.thread_time()  # the loop's thread runs everything: feeds, engine, venue timers
            try:
                await source_run()
            finally:
                out["wall_s"] = time.perf_counter() - t0
                out["cpu_s"] = time.thread_time() - c0
                runner.stop("replay finished")

        runner.source.run = timed  # type: ignore[method-assign]
        summary = await runner.run(None, install_signals=False)
        out["events"] = sum(f.stats.messages for f in runner.source.feeds)
        out["books"] = sum(f.stats.books for f in runner.source.feeds)
        out["fills"] = summary["fills"]
        out["orders"] = summary["orders"]
        return summary

    asyncio.run(main())
    out["events_per_s"] = out["events"] / out["wall_s"] if out["wall_s"] > 0 else 0.0
    return out


#: The two-process path: queues deep enough that no message is dropped (drops are counted anyway).
ZMQ_HWM = 10_000_000
#: The engine process stops once no message came for this long (after the first one).
ZMQ_IDLE_S = 3.0


def run_zmq_replay(data: dict, capture: str, tmp: Path) -> dict:
    """Today's two-process path: ``latentspeed marketstream`` replaying the capture at ``speed: max``
    and publishing on loopback ZeroMQ, an engine process subscribed to it (same strategies, ``paper``).

    The marketstream waits for the engine to subscribe to both ports (``--wait-subscribers 1``), so
    nothing is published into the void; both queues are ``ZMQ_HWM`` deep and the publisher counts
    exactly what it drops (``slow_subscriber: drop_all``). Events/s = the feeds' frames (the
    marketstream's STATS lines, the backtest's ``events``) / the engine's time from its first
    message to its last."""
    md = data["market_data"]
    port = _two_free_ports()
    log_file = tmp / "marketstream.log"
    ms_cfg = {
        "zmq": {
            "host": "127.0.0.1", "port": port, "window_size": md["window_size"], "depth_levels": md["depth_levels"],
            "sndhwm": ZMQ_HWM, "slow_subscriber": "drop_all",
        },
        "log": {"file": str(log_file)},
        "feeds": [{**f, "replay": capture, "speed": "max"} for f in md["feeds"]],
        "stats_interval": 3600,
        "startup_timeout": 600,
    }  # fmt: skip
    eng = dict(data)
    eng["market_data"] = {
        "window_size": md["window_size"], "depth_levels": md["depth_levels"],
        "zmq": {"host": "127.0.0.1", "port": port}, "startup_timeout": 600,
    }  # fmt: skip
    eng["shutdown_timeout"] = 1.0
    ms_path, eng_path, out_path = tmp / "marketstream.json", tmp / "engine.json", tmp / "engine-out.json"
    ms_path.write_text(json.dumps(ms_cfg))  # JSON is YAML
    eng_path.write_text(json.dumps(eng))
    engine = subprocess.Popen(
        [sys.executable, __file__, "--zmq-engine-child", str(eng_path), str(out_path)],
        stdout=subprocess.DEVNULL,
    )
    ms = subprocess.Popen(
        [str(Path(sys.executable).parent / "latentspeed"), "marketstream", str(ms_path), "--wait-subscribers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    usage = {}
    try:
        # Each process's CPU time comes with its exit status (wait4). One that ends early stops the
        # other: a marketstream that failed sends nothing, and one waits for a subscriber for ever.
        while len(usage) < 2:
            for proc, other in ((ms, engine), (engine, ms)):
                if proc in usage:
                    continue
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    usage[proc] = ru
                    failed = proc.returncode != 0 or (proc is engine and other.returncode is None)
                    if failed and other.returncode is None:
                        other.terminate()
            time.sleep(0.05)
        ms_usage, eng_usage = usage[ms], usage[engine]
    finally:
        for proc in (ms, engine):
            if proc.returncode is None:
                proc.kill()
                proc.wait()
    text = log_file.read_text() if log_file.exists() else ""
    if ms.returncode != 0:
        raise SystemExit(f"zmq replay: marketstream failed (exit {ms.returncode}):\n{text[-2000:]}")
    if engine.returncode != 0 or not out_path.exists():
        raise SystemExit(f"zmq replay: the engine process failed (exit {engine.returncode})")
    out = json.loads(out_path.read_text())
    frames = sum(int(m) for m in re.findall(r"STATS feed=\S+ messages=(\d+)", text))
    pub = re.search(r"PUBLISHED books=(\d+) trades=(\d+) book_drops=(\d+) trade_drops=(\d+)", text)
    if pub is None:
        raise SystemExit(f"zmq replay: no PUBLISHED line in the marketstream's log:\n{text[-2000:]}")
    books, trades, book_drops, trade_drops = (int(x) for x in pub.groups())
    out["events"] = frames
    out["published"] = books + trades
    out["publisher_drops"] = book_drops + trade_drops
    out["lost"] = out["published"] - out["received"]  # sent but never received (should be 0)
    out["events_per_s"] = frames / out["wall_s"] if out["wall_s"] > 0 else 0.0
    out["marketstream_cpu_s"] = ms_usage.ru_utime + ms_usage.ru_stime
    out["engine_process_cpu_s"] = eng_usage.ru_utime + eng_usage.ru_stime
    return out


def _two_free_ports() -> int:
    """A loopback port free together with the next one (marketstream: trades on it, books on +1)."""
    import socket

    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise SystemExit("zmq replay: no two consecutive free ports on 127.0.0.1")


def zmq_engine_child(cfg_path: str, out_path: str) -> None:
    """The engine process of :func:`run_zmq_replay`: EngineRunner on the ``zmq`` source."""
    registry = load_registry()
    setup = resolve(json.loads(Path(cfg_path).read_text()), registry, cfg_path)
    out: dict = {"received": 0}
    first = [0.0]
    last = [0.0]
    cpu0 = [0.0]

    async def main() -> dict:
        runner = EngineRunner(setup, registry)
        sub = runner.source.subscriber
        sub.rcvhwm = ZMQ_HWM  # the engine's own queue absorbs the replay's burst: nothing dropped
        on_book, on_trade = sub.on_book, sub.on_trade
        clock = time.perf_counter

        def book(topic: str, msg: dict) -> None:
            if not first[0]:
                first[0] = clock()
                cpu0[0] = time.thread_time()
            on_book(topic, msg)
            last[0] = clock()

        def trade(topic: str, msg: dict) -> None:
            if not first[0]:
                first[0] = clock()
                cpu0[0] = time.thread_time()
            on_trade(topic, msg)
            last[0] = clock()

        sub.on_book, sub.on_trade = book, trade

        async def idle_stop() -> None:
            while not first[0] or time.perf_counter() - last[0] < ZMQ_IDLE_S:
                await asyncio.sleep(0.2)
            out["cpu_s"] = time.thread_time() - cpu0[0]  # idle time costs no CPU
            runner.stop("no more market data")

        watch = asyncio.ensure_future(idle_stop())
        summary = await runner.run(None, install_signals=False)
        watch.cancel()
        out["received"] = sub.received
        out["errors"] = sub.errors
        out["orders"] = summary["orders"]
        out["fills"] = summary["fills"]
        return summary

    asyncio.run(main())
    out["wall_s"] = last[0] - first[0]
    Path(out_path).write_text(json.dumps(out))


def profile_backtest(data: dict, registry, capture: str, kind: str) -> None:
    if kind == "pyinstrument":
        try:
            import pyinstrument
        except ImportError:
            print("pyinstrument is not installed (pip install pyinstrument); using cProfile", file=sys.stderr)
            kind = "cprofile"
    if kind == "pyinstrument":
        prof = pyinstrument.Profiler(interval=0.0005)
        run_backtest_once(data, registry, capture, prof)
        print(prof.output_text(unicode=False, color=False), file=sys.stderr)
        return
    import cProfile
    import pstats

    class _CP:
        def __init__(self) -> None:
            self.p = cProfile.Profile()

        def start(self) -> None:
            self.p.enable()

        def stop(self) -> None:
            self.p.disable()

    cp = _CP()
    run_backtest_once(data, registry, capture, cp)
    st = pstats.Stats(cp.p, stream=sys.stderr)
    st.sort_stats("tottime").print_stats(30)
    st.sort_stats("cumulative").print_stats(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--repeat",
        type=int,
        default=400,
        help="repeats of the Binance session (8.8 s each); Bybit and mock cover the same span",
    )
    ap.add_argument("--mock-tick-ms", type=float, default=100.0, help="mock exchange tick period (simulated)")
    ap.add_argument("--capture", metavar="FILE", help="backtest this capture instead of building one")
    ap.add_argument("--save", metavar="FILE", help="keep the built capture here")
    ap.add_argument("--config", metavar="FILE", help="engine config (default: built for the capture's feeds)")
    ap.add_argument("--runs", type=int, default=3, help="in-memory backtests; the median is reported")
    ap.add_argument(
        "--no-replay", action="store_true", help="skip the replay comparisons (ZeroMQ two-process and in-process)"
    )
    ap.add_argument("--no-zmq", action="store_true", help="skip the two-process marketstream -> ZeroMQ -> engine replay")
    ap.add_argument(
        "--replay-runs", type=int, default=3, help="two-process replays; the median is compared (default 3)"
    )
    ap.add_argument("--zmq-engine-child", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--no-file-run", action="store_true", help="skip the backtest that reads the gzip file")
    ap.add_argument(
        "--profile", choices=("cprofile", "pyinstrument"), help="profile one more backtest (stderr)"
    )
    args = ap.parse_args()
    if args.zmq_engine_child:
        zmq_engine_child(*args.zmq_engine_child)
        return

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    registry = load_registry()
    tmpdir = None
    built = None
    if args.capture:
        capture = str(Path(args.capture))
    else:
        if args.save:
            capture = args.save
        else:
            tmpdir = tempfile.TemporaryDirectory()
            capture = str(Path(tmpdir.name) / "backtest-bench.jsonl.gz")
        t = time.perf_counter()
        built = build_capture(Path(capture), args.repeat, args.mock_tick_ms)
        say(f"capture {capture}: {built} ({time.perf_counter() - t:.1f}s to build)")
    try:
        feeds = capture_feeds(capture)
        data = load_yaml(args.config) if args.config else engine_config(feeds)
        t = time.perf_counter()
        records = list(read_capture(capture))
        say(f"read {len(records):,} records into memory in {time.perf_counter() - t:.1f}s (not measured)")

        runs = []
        host: list[tuple[float, float | None]] = []  # (host_reference_ms, steal ms) per run, in order
        zqs: list[dict] = []
        zmq_runs = 0 if args.no_replay or args.no_zmq else max(1, args.replay_runs)
        # The backtests and the two-process replays alternate: this VM's speed drifts by ±15 % over
        # minutes, and the ratio of the two is the figure, so both are measured in the same minutes.
        for i in range(max(1, args.runs, zmq_runs)):
            if i < max(1, args.runs):
                ref = host_reference_ms()
                st0 = steal_ms()
                with InMemory(capture, records):
                    res, cpu = run_backtest_once(data, registry, capture)
                st1 = steal_ms()
                host.append((round(ref, 1), round(st1 - st0, 1) if st0 is not None and st1 is not None else None))
                runs.append((res, cpu))
                say(
                    f"backtest {i + 1} (in memory): {res.events:,} events ({res.books:,} books, {res.trades:,} "
                    f"trades) in {res.wall_s:.2f}s = {res.events_per_s:,.0f} events/s "
                    f"({res.books / res.wall_s:,.0f} books/s; CPU {cpu:.2f}s = {res.events / cpu:,.0f} events/s), "
                    f"digest {res.fill_digest[:16]}; host reference {ref:.1f} ms, steal "
                    + (f"{host[-1][1]} ms" if host[-1][1] is not None else "n/a")
                )
            if i < zmq_runs:
                with tempfile.TemporaryDirectory() as d:
                    zqs.append(run_zmq_replay(data, capture, Path(d)))
                say(f"replay {i + 1} (two processes): {zqs[-1]['events_per_s']:,.0f} events/s")
        digests = {r.fill_digest for r, _ in runs}
        in_order = list(runs)  # (each paired with the replay run right after it)
        runs.sort(key=lambda rc: rc[0].wall_s)
        res, cpu = runs[len(runs) // 2]  # the median run by wall time
        rep = res.report()
        makers = sum(1 for f in res.fills if f["liquidity"] == "maker")
        say(f"  {rep['orders']:,} orders, {len(res.fills):,} fills ({makers:,} maker), pnl {rep['pnl']:.4f}")
        result: dict = {
            "events": res.events,
            "events_per_s": round(res.events_per_s, 1),
            "fills": len(res.fills),
            "fill_digest": res.fill_digest,
            "books": res.books,
            "trades": res.trades,
            "book_events_per_s": round(res.books / res.wall_s, 1) if res.wall_s else 0.0,
            "wall_s": round(res.wall_s, 3),
            "cpu_s": round(cpu, 3),
            "events_per_cpu_s": round(res.events / cpu, 1) if cpu else 0.0,
            "runs": len(runs),
            "events_per_s_runs": sorted(round(r.events_per_s, 1) for r, _ in runs),
            "events_per_cpu_s_best": round(max(r.events / c for r, c in runs if c), 1),
            # in run order, each with the host's reference time just before it and the steal during it
            "events_per_s_runs_in_order": [round(r.events_per_s, 1) for r, _ in in_order],
            "host_reference_ms_runs": [h[0] for h in host],
            "steal_ms_runs": [h[1] for h in host],
            "orders": rep["orders"],
            "maker_fills": makers,
            "pnl": round(rep["pnl"], 6),
            "feeds": feeds,
        }
        if built is not None:
            result["capture"] = built
        if not args.no_file_run:
            res2, cpu2 = run_backtest_once(data, registry, capture)
            digests.add(res2.fill_digest)
            say(
                f"backtest (reading the gzip file, as `latentspeed backtest`): {res2.events_per_s:,.0f} events/s "
                f"({res2.wall_s:.2f}s, CPU {cpu2:.2f}s), digest {res2.fill_digest[:16]}"
            )
            result["events_per_s_reading_file"] = round(res2.events_per_s, 1)
            result["cpu_s_reading_file"] = round(cpu2, 3)
        result["digest_repeatable"] = len(digests) == 1
        if zqs:
            # Two processes on two cores: the replay's time moves more between runs than the
            # backtest's, so the median run is compared, as the backtest's is.
            by_rate = sorted(zqs, key=lambda z: z["events_per_s"])
            zq = by_rate[len(by_rate) // 2]
            speedup = res.events_per_s / zq["events_per_s"] if zq["events_per_s"] else 0.0
            say(
                f"replay (marketstream -> ZeroMQ -> engine, two processes, speed: max): {zq['events']:,} events, "
                f"{zq['received']:,} of {zq['published']:,} messages received ({zq['publisher_drops']} dropped at the "
                f"publisher) in {zq['wall_s']:.2f}s from the first to the last = {zq['events_per_s']:,.0f} events/s "
                f"(engine CPU {zq['cpu_s']:.2f}s, marketstream process CPU {zq['marketstream_cpu_s']:.2f}s; "
                f"{zq['orders']:,} orders, {zq['fills']:,} fills); the backtest is {speedup:.2f}x faster"
            )
            result["vs_replay_speedup"] = round(speedup, 2)
            result["replay_events_per_s"] = round(zq["events_per_s"], 1)
            result["replay_events_per_s_runs"] = [round(z["events_per_s"], 1) for z in zqs]
            # each backtest against the replay run right after it (the same minute of the VM)
            pairs = zip(in_order, zqs, strict=False)  # (--runs and --replay-runs may differ)
            result["vs_replay_speedup_pairs"] = [
                round(r.events_per_s / z["events_per_s"], 2) for (r, _c), z in pairs if z["events_per_s"]
            ]
            result["replay"] = {
                "path": "marketstream (replay, speed: max) -> ZeroMQ loopback -> engine (paper)",
                "events": zq["events"],
                "wall_s": round(zq["wall_s"], 3),
                "published": zq["published"],
                "received": zq["received"],
                "publisher_drops": zq["publisher_drops"],
                "lost": zq["lost"],
                "engine_cpu_s": round(zq["cpu_s"], 3),
                "engine_process_cpu_s": round(zq["engine_process_cpu_s"], 3),
                "marketstream_process_cpu_s": round(zq["marketstream_cpu_s"], 3),
                "orders": zq["orders"],
                "fills": zq["fills"],
            }
        if not args.no_replay:
            with InMemory(capture, records):
                gc.collect()
                rp = run_replay(data, registry, capture)
            speedup = res.events_per_s / rp["events_per_s"] if rp["events_per_s"] else 0.0
            cpu_speedup = (res.events / cpu) / (rp["events"] / rp["cpu_s"]) if cpu and rp["cpu_s"] else 0.0
            say(
                f"replay (EngineRunner, in-process feeds, speed: max): {rp['events']:,} events in {rp['wall_s']:.2f}s "
                f"= {rp['events_per_s']:,.0f} events/s (CPU {rp['cpu_s']:.2f}s; {rp['orders']:,} orders, "
                f"{rp['fills']:,} fills); the backtest is {speedup:.2f}x faster ({cpu_speedup:.2f}x by CPU time)"
            )
            result["inprocess_replay_events_per_s"] = round(rp["events_per_s"], 1)
            result["inprocess_replay_wall_s"] = round(rp["wall_s"], 3)
            result["inprocess_replay_cpu_s"] = round(rp["cpu_s"], 3)
            result["inprocess_replay_orders"] = rp["orders"]
            result["inprocess_replay_fills"] = rp["fills"]
            result["vs_inprocess_replay_speedup"] = round(speedup, 2)
            result["vs_inprocess_replay_speedup_cpu"] = round(cpu_speedup, 2)
        result["targets"] = {"events_per_s": TARGET_EVENTS_PER_S, "vs_replay_speedup": TARGET_SPEEDUP}
        result["machine"] = {
            "python": platform.python_version(),
            # which build matters (docs/performance.md: PGO + LTO, libpython linked in, ~11 % faster)
            "python_executable": sys.executable,
            "python_compiler": platform.python_compiler(),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        }
        if args.profile:
            with InMemory(capture, records):
                profile_backtest(data, registry, capture, args.profile)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

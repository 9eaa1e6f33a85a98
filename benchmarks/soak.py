"""Soak: mock exchange + marketstream + engine for a long run, the exchange killed and restarted (issue 18).

    python benchmarks/soak.py [--minutes 30] [--restart-every 180] [--sample-every 10]
        [--slow-read-every 600] [--warmup 60] [--tick-ms 10] [--keep DIR]

Three real commands, each its own process, on loopback and free ports:
``latentspeed mock-exchange`` (orders and fills logged), ``latentspeed marketstream``
(its mock feed on the exchange, publishing over ZeroMQ) and ``latentspeed engine`` (market
data from the marketstream over ZeroMQ, the example market maker on BTC-USD and ETH-USD,
orders to the exchange). A slow subscriber, a ZeroMQ SUB on both marketstream ports in
this process, reads only once every ``--slow-read-every`` seconds (never, if longer than the
run), so the marketstream holds a full queue for it most of the time.

Every ``--restart-every`` seconds the exchange is killed with SIGKILL and started again on
the same port; the engine and the marketstream must reconnect by themselves. Every
``--sample-every`` seconds the RSS of each process is read from /proc.

At the end the engine is stopped first (SIGTERM: it cancels its open orders and writes its
records), then the exchange (SIGTERM: its last stats line), then the marketstream.

- ``orders``, ``fills``: the engine's (its summary record). The exchange's fills are counted
  from its per-fill log lines, summed over incarnations (a killed one prints no summary);
  both counts are on the line before the last, with the difference, and every exchange fill the
  engine's records lack is classed: on an order lost with a killed exchange (its report died
  with the process), or otherwise (a real loss; should be 0).
- ``orders_unknown_at_end``: orders whose last record is not final (filled, canceled,
  rejected), except those the engine marked unknown when an exchange it was connected to
  was killed: that exchange is gone with its memory, no venue can say what became of them.
- ``rss_slope_kb_per_min``: least-squares slope of RSS over time after ``--warmup`` seconds.
  For the exchange, one slope over all incarnations with an intercept each (fixed effects),
  using each incarnation's samples after its own first ``--warmup`` seconds: the growth rate
  within a life, which restarts would otherwise hide or fake. ``null`` with fewer than 3
  such samples.

Progress goes to stderr; the last line of stdout is the JSON object of the issue.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import yaml
import zmq

from latentspeed_core.datacollect.procfs import proc_sample
from latentspeed_core.testing import free_port

BIN = Path(sys.executable).parent
SYMBOLS = ["BTC-USD", "ETH-USD"]
FINAL = {"filled", "canceled", "rejected"}
#: An order marked unknown this soon after a kill was open on the killed exchange.
KILL_WINDOW_NS = 10_000_000_000


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port_pair() -> int:
    """A port P with P and P+1 free a moment ago (marketstream: trades on P, books on P+1)."""
    for _ in range(100):
        p = free_port()
        if p >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise RuntimeError("no free port pair")


class Proc:
    """A ``latentspeed`` process whose output lines go to a log file and to ``on_line``."""

    def __init__(self, name: str, args: list[str], log: Path, on_line: Callable[[str], None]) -> None:
        self.name = name
        self.on_line = on_line
        self.log = log.open("a", encoding="utf-8", buffering=1)  # line by line: tail -f works
        self.log.write(f"==== {name}: {' '.join(args)}\n")
        self.popen = subprocess.Popen(
            [str(BIN / "latentspeed"), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.pid = self.popen.pid
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.log.write(line)
            self.on_line(line)
        self.log.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Signal, wait for the exit and for the last output line to be read."""
        if self.alive():
            self.popen.send_signal(sig)
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            rc = self.popen.wait(10)
        self._reader.join(10)
        self.log.close()
        return rc


class Mock:
    """One exchange incarnation: counts its fills from the order log (a killed process says nothing else)."""

    _FILL = re.compile(r"\bfill conn=\d+ cl_ord_id=(\d+) .*\bcum=([0-9.eE+-]+)")
    _STOPPED = re.compile(r"stopped: .*\bfills=(\d+)")

    def __init__(
        self, port: int, seed: int, tick_ms: float, log: Path, n: int, fill_cums: dict[int, list[float]]
    ) -> None:
        self.fills = 0
        #: cl_ord_id -> cum_qty after each fill, shared by every incarnation (ids are the engine's).
        self.fill_cums = fill_cums
        self.stopped_fills: int | None = None
        self.listening = threading.Event()
        self.failed = False
        self.samples: list[tuple[float, int]] = []
        self.started = time.monotonic()
        args = [
            "mock-exchange", "--port", str(port), "--seed", str(seed), "--tick-rate", str(tick_ms),
            "--symbols", ",".join(SYMBOLS), "--log-level", "info",
        ]  # fmt: skip
        self.proc = Proc(f"mock#{n}", args, log, self._line)

    def _line(self, line: str) -> None:
        m = self._FILL.search(line)
        if m:
            self.fills += 1
            self.fill_cums.setdefault(int(m.group(1)), []).append(float(m.group(2)))
        elif "Listening on port" in line:
            self.listening.set()
        elif "cannot listen" in line:
            self.failed = True
            self.listening.set()
        else:
            m = self._STOPPED.search(line)
            if m:
                self.stopped_fills = int(m.group(1))


class Watch:
    """Counters from an engine's or marketstream's log lines (the lines themselves go to the log file)."""

    def __init__(self) -> None:
        self.lines = 0
        self.last_stats = ""
        self.connects = 0
        self.warnings = 0
        self.errors: list[str] = []
        self.published = ""

    def line(self, line: str) -> None:
        self.lines += 1
        if "STATS " in line:
            self.last_stats = line.strip()
        elif "Connected to exchange" in line:
            self.connects += 1
        elif "PUBLISHED " in line:
            self.published = line.strip()
        if " ERROR " in line or "Traceback" in line:
            if len(self.errors) < 20:
                self.errors.append(line.strip())
        elif " WARNING " in line:
            self.warnings += 1


class SlowSubscriber:
    """A SUB on both marketstream ports that reads everything only every ``every`` seconds.

    Counts what it received and what it missed (gaps in ``seq`` per topic).
    """

    def __init__(self, port: int) -> None:
        self.ctx = zmq.Context()
        self.socks = []
        for p in (port, port + 1):
            s = self.ctx.socket(zmq.SUB)
            # Small buffers on our side: the marketstream's queue for us (zmq.sndhwm) is full
            # within the first minute, so the slopes after it measure the steady state.
            s.setsockopt(zmq.RCVHWM, 100)
            s.setsockopt(zmq.RCVBUF, 4096)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.setsockopt(zmq.LINGER, 0)
            s.connect(f"tcp://127.0.0.1:{p}")
            self.socks.append(s)
        self.received = 0
        self.missed = 0
        self.reads = 0
        self._last: dict[bytes, int] = {}

    def drain(self, seconds: float = 3.0) -> int:
        """Read for ``seconds``: everything queued anywhere (its queue, the kernel's buffers, the
        marketstream's queue for it), then live data; returns how many messages."""
        n = 0
        poller = zmq.Poller()
        for s in self.socks:
            poller.register(s, zmq.POLLIN)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for s, _ in poller.poll(left * 1000):
                while True:
                    try:
                        topic, payload = s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    n += 1
                    seq = orjson.loads(payload).get("seq")
                    last = self._last.get(topic)
                    if isinstance(seq, int):
                        if last is not None and seq > last + 1:
                            self.missed += seq - last - 1
                        self._last[topic] = seq
        self.received += n
        self.reads += 1
        return n

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.ctx.term()


def slope_kb_per_min(series: list[list[tuple[float, int]]]) -> float | None:
    """Least-squares slope (kB/min) of RSS over time, one intercept per series (fixed effects)."""
    sxy = sxx = 0.0
    n = 0
    for pts in series:
        if len(pts) < 2:
            continue
        mt = sum(t for t, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        sxy += sum((t - mt) * (y - my) for t, y in pts)
        sxx += sum((t - mt) ** 2 for t, _ in pts)
        n += len(pts)
    if n < 3 or sxx == 0.0:
        return None
    return round(sxy / sxx * 60.0, 1)


def write_configs(work: Path, mock_port: int, ms_port: int) -> tuple[Path, Path]:
    ms = {
        "zmq": {"host": "127.0.0.1", "port": ms_port},
        "log": {"level": "info", "file": None},
        "stats_interval": 10.0,
        "feeds": [{"exchange": "mock", "host": "127.0.0.1", "port": mock_port, "symbols": SYMBOLS}],
    }
    engine = {
        "log": {"level": "info", "file": None},
        "market_data": {"zmq": {"host": "127.0.0.1", "port": ms_port}},
        "venue": {"exchange": "mock", "host": "127.0.0.1", "port": mock_port},
        "strategies": [
            {
                "name": "market_maker",
                "symbols": SYMBOLS,
                "params": {
                    "qty": 0.01,
                    "half_spread_bps": 1.5,
                    "skew_bps": 2,
                    "requote_bps": 3,
                    "max_position": 0.5,
                },
            }
        ],
        "risk": {
            "max_order_qty": 1.0,
            "max_notional": 100000,
            "max_position": 5,
            "price_band_bps": 100,
            "max_orders_per_second": 200,
            "max_open_orders": 50,
            "max_loss": 10000,
        },  # fmt: skip
        "latency": {"file": str(work / "latency.jsonl")},
        "stats_interval": 10.0,
        "cancel_on_exit": True,
    }
    ms_file, engine_file = work / "marketstream.yml", work / "engine.yml"
    ms_file.write_text(yaml.safe_dump(ms))
    engine_file.write_text(yaml.safe_dump(engine))
    return ms_file, engine_file


def start_mock(
    port: int, seed: int, tick_ms: float, log: Path, n: int, fill_cums: dict[int, list[float]]
) -> Mock:
    """Start an incarnation on ``port``; retried while the port is still being released."""
    for _ in range(50):
        m = Mock(port, seed + n, tick_ms, log, n, fill_cums)
        if m.listening.wait(30) and not m.failed:
            return m
        m.proc.stop(signal.SIGKILL)
        time.sleep(0.2)  # the port is held by the killed process's socket: try again shortly
    raise RuntimeError(f"mock exchange could not listen on port {port}")


def published_total(line: str) -> int | None:
    """Books + trades from the marketstream's ``PUBLISHED books=N trades=M ...`` line."""
    m = re.search(r"PUBLISHED books=(\d+) trades=(\d+)", line)
    return int(m.group(1)) + int(m.group(2)) if m else None


def read_records(path: Path) -> tuple[list[dict], dict | None]:
    orders, summary = [], None
    if path.exists():
        with path.open("rb") as f:
            for line in f:
                rec = orjson.loads(line)
                if rec.get("type") == "order":
                    orders.append(rec)
                elif rec.get("type") == "summary":
                    summary = rec
    return orders, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="run length (fractions allowed: 0.5)")
    ap.add_argument(
        "--restart-every",
        type=float,
        default=180.0,
        metavar="S",
        help="kill -9 and restart the exchange every S seconds",
    )
    ap.add_argument("--sample-every", type=float, default=10.0, metavar="S", help="RSS sampling period")
    ap.add_argument(
        "--slow-read-every",
        type=float,
        default=600.0,
        metavar="S",
        help="the slow subscriber reads its queue every S seconds",
    )
    ap.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        metavar="S",
        help="samples before this (per process life) are left out of the slopes",
    )
    ap.add_argument("--tick-ms", type=float, default=10.0, help="exchange market-data period")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--keep",
        metavar="DIR",
        help="write configs, logs and records here (default: a temporary directory, removed)",
    )
    args = ap.parse_args()  # fmt: skip

    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="soak-")
    work = Path(args.keep or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    mock_port, ms_port = free_port(), free_port_pair()
    ms_file, engine_file = write_configs(work, mock_port, ms_port)
    duration = args.minutes * 60.0
    say(f"soak: {args.minutes} min, exchange restarted every {args.restart_every}s, work dir {work}")

    mocks: list[Mock] = []
    fill_cums: dict[int, list[float]] = {}
    kills_ns: list[int] = []
    ms_watch, engine_watch = Watch(), Watch()
    samples: dict[str, list[tuple[float, int]]] = {"engine": [], "marketstream": []}
    slow = None
    procs: list[Proc] = []
    failure = None
    t0 = time.monotonic()
    wake = threading.Event()  # never set: its wait() is the loop's timed wait
    try:
        mocks.append(start_mock(mock_port, args.seed, args.tick_ms, work / "mock.log", 0, fill_cums))
        ms = Proc("marketstream", ["marketstream", str(ms_file)], work / "marketstream.log", ms_watch.line)
        procs.append(ms)
        slow = SlowSubscriber(ms_port)
        engine = Proc(
            "engine", ["engine", "--config", str(engine_file)], work / "engine.log", engine_watch.line
        )
        procs.append(engine)
        t0 = time.monotonic()
        next_sample = t0
        next_restart = t0 + args.restart_every
        next_read = t0 + args.slow_read_every
        end = t0 + duration
        while True:
            now = time.monotonic()
            if now >= end:
                break
            for p in procs:
                if not p.alive():
                    failure = f"{p.name} exited with code {p.popen.returncode}"
            if not mocks[-1].proc.alive():
                failure = f"mock#{len(mocks) - 1} exited with code {mocks[-1].proc.popen.returncode}"
            if failure:
                break
            if now >= next_restart:
                kills_ns.append(time.time_ns())
                mocks[-1].proc.stop(signal.SIGKILL)
                mocks.append(
                    start_mock(mock_port, args.seed, args.tick_ms, work / "mock.log", len(mocks), fill_cums)
                )
                say(f"[{now - t0:7.1f}s] exchange killed (-9) and restarted: incarnation {len(mocks) - 1}")
                next_restart = time.monotonic() + args.restart_every
            if now >= next_read:
                n = slow.drain()
                say(f"[{now - t0:7.1f}s] slow subscriber read {n} messages ({slow.missed} missed so far)")
                next_read = now + args.slow_read_every
            if now >= next_sample:
                t = now - t0
                for name, pid in (("engine", engine.pid), ("marketstream", ms.pid)):
                    s = proc_sample(pid)
                    if s is not None:
                        samples[name].append((t, s.rss_kb))
                m = mocks[-1]
                s = proc_sample(m.proc.pid)
                if s is not None:
                    m.samples.append((now - m.started, s.rss_kb))
                rss = " ".join(f"{k}={v[-1][1] / 1024:.1f}MB" for k, v in samples.items() if v)
                mock_rss = f"{m.samples[-1][1] / 1024:.1f}MB" if m.samples else "?"
                say(
                    f"[{t:7.1f}s] rss {rss} mock#{len(mocks) - 1}={mock_rss}; engine: "
                    f"{engine_watch.last_stats.partition('STATS ')[2][:90] or 'starting'}"
                )
                next_sample = max(next_sample + args.sample_every, time.monotonic())
            wake.wait(max(0.0, min(next_sample, next_restart, next_read, end) - time.monotonic()))
    except Exception as exc:  # report what was measured so far, then fail
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        elapsed = time.monotonic() - t0
        # Engine first: it cancels its open orders on the live exchange and writes its records.
        for p in procs:
            if p.name == "engine":
                p.stop(signal.SIGTERM, 60)
        if mocks:
            mocks[-1].proc.stop(signal.SIGTERM)
        for p in procs:
            if p.name == "marketstream":
                p.stop(signal.SIGTERM)
        if slow is not None:
            slow.drain(0.5)  # what the stopped marketstream flushed to it
            slow.close()

    orders, summary = read_records(work / "latency.jsonl")
    unknown_at_end = 0
    lost: set[int] = set()
    for rec in orders:
        if rec["status"] in FINAL:
            continue
        lost_with_exchange = rec["status"] == "unknown" and any(
            k <= rec["final_ns"] <= k + KILL_WINDOW_NS for k in kills_ns
        )
        if lost_with_exchange:
            lost.add(rec["cl_ord_id"])
        else:
            unknown_at_end += 1
    # Each exchange fill the engine never saw (its filled_qty is below that fill's cum), by whether
    # the order was lost with a killed exchange (the report died with it) or not (a real loss).
    filled = {rec["cl_ord_id"]: rec["filled_qty"] for rec in orders}
    missed_lost = missed_other = 0
    for cid, cums in fill_cums.items():
        n = sum(1 for c in cums if c > filled.get(cid, 0.0) + 1e-9)
        if cid in lost:
            missed_lost += n
        else:
            missed_other += n
    mock_fills = sum(m.fills for m in mocks)
    warm = args.warmup
    slopes = {
        "engine": slope_kb_per_min([[p for p in samples["engine"] if p[0] >= warm]]),
        "marketstream": slope_kb_per_min([[p for p in samples["marketstream"] if p[0] >= warm]]),
        "mock": slope_kb_per_min([[p for p in m.samples if p[0] >= warm] for m in mocks]),
    }
    engine_fills = summary["fills"] if summary else None
    detail = {
        "elapsed_s": round(elapsed, 1),
        "engine_fills": engine_fills,
        "mock_fills": mock_fills,
        "fills_difference": None if engine_fills is None else engine_fills - mock_fills,
        "last_mock_stopped_fills": mocks[-1].stopped_fills if mocks else None,
        "last_mock_logged_fills": mocks[-1].fills if mocks else None,
        "exchange_fills_missed_on_orders_lost_with_a_killed_exchange": missed_lost,
        "exchange_fills_missed_otherwise": missed_other,
        "order_records": len(orders),
        "orders_lost_with_a_killed_exchange": len(lost),
        "engine_unknown_orders": summary.get("unknown_orders") if summary else None,
        "engine_reconnects": summary.get("reconnects") if summary else None,
        "engine_connects_logged": engine_watch.connects,
        "engine_rx_packets": summary.get("rx_packets") if summary else None,
        "engine_errors": engine_watch.errors[:5],
        "marketstream_stats": ms_watch.last_stats,
        "marketstream_published": ms_watch.published,
        "marketstream_errors": ms_watch.errors[:5],
        # what the never/rarely reading subscriber got of what was published: the rest was dropped
        # for it (``missed_in_gaps`` only sees the drops followed by a message it read)
        "slow_subscriber": {
            "published": published_total(ms_watch.published),
            "received": slow.received if slow else 0,
            "missed_in_gaps": slow.missed if slow else 0,
            "reads": slow.reads if slow else 0,
        },
        "rss_kb": {
            "engine": [samples["engine"][0][1], samples["engine"][-1][1]] if samples["engine"] else None,
            "marketstream": [samples["marketstream"][0][1], samples["marketstream"][-1][1]]
            if samples["marketstream"]
            else None,
            "mock_last_life": [mocks[-1].samples[0][1], mocks[-1].samples[-1][1]]
            if mocks and mocks[-1].samples
            else None,
        },
        "failure": failure,
    }
    if failure:
        say(f"soak: FAILED: {failure}")
    say(f"soak: work dir {work}" + ("" if args.keep else " (removed; --keep DIR to keep it)"))
    print("detail: " + json.dumps(detail))
    result = {
        "minutes": round(elapsed / 60.0, 2),
        "orders": summary["orders"] if summary else None,
        "fills": engine_fills,
        "orders_unknown_at_end": unknown_at_end,
        "rss_slope_kb_per_min": slopes,
        "restarts": len(mocks) - 1,
    }
    print(json.dumps(result), flush=True)
    if tmp is not None:
        tmp.cleanup()
    return 1 if failure or summary is None else 0


if __name__ == "__main__":
    sys.exit(main())

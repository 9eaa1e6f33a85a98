"""Shared fixtures for the core's tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def latentspeed(
    *args: str, env: dict | None = None, timeout: float = 60, cwd=None
) -> subprocess.CompletedProcess:
    """Run the installed ``latentspeed`` command and capture its output."""
    return subprocess.run(
        [str(BIN / "latentspeed"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


_INDEX_PROBLEM: list[str | None] = []


def pytest_configure(config):
    """Tests stop child processes with SIGINT (and one sends it to this process). A suite started in
    the background of a non-interactive shell (`cmd &`, `nohup`) inherits SIGINT ignored, which every
    child it starts would inherit too (and Python raises no KeyboardInterrupt then): put it back."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_runtest_setup(item):
    """``needs_registry`` tests skip, with the reason, only when the package index is unreachable."""
    if item.get_closest_marker("needs_registry") is None:
        return
    if not _INDEX_PROBLEM:
        from latentspeed_core.testing import package_index_unreachable

        _INDEX_PROBLEM.append(package_index_unreachable())
    if _INDEX_PROBLEM[0]:
        pytest.skip(f"needs the package index: {_INDEX_PROBLEM[0]}")


@pytest.fixture
def run_cli():
    return latentspeed


# -- marketstream, capture and tap tests (issue 5) ------------------------------------
# ``ms_ref``: the issue-5 feature definitions implemented independently of
# latentspeed_core.marketstream.features, to check published messages against.
# ``procs``: start CLI processes (killed at teardown); ``mock_exchange``: a real
# ``latentspeed mock-exchange`` process on a free port.

import math  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from latentspeed_core.testing import free_port, two_free_ports  # noqa: E402

BOOK_KEYS = [
    "exchange", "symbol", "timestamp_ns", "receipt_timestamp_ns", "seq", "bids", "asks", "midpoint",
    "relative_spread", "breadth", "imbalance_lvl1", "bid_depth_n", "ask_depth_n", "depth_n",
    "volatility_mid", "ofi_rolling", "window_size", "schema_version",
]  # fmt: skip
TRADE_KEYS = [
    "exchange", "symbol", "timestamp_ns", "receipt_timestamp_ns", "price", "amount", "side", "trade_id",
    "seq", "transaction_price", "trading_volume", "volatility", "window_size", "schema_version",
]  # fmt: skip


def _approx(got: float, want: float, rel: float, abs_: float = 0.0) -> bool:
    return math.isclose(got, want, rel_tol=rel, abs_tol=abs_)


def stdev_logret(values: list[float], w: int) -> float:
    rets = [math.log(b / a) for a, b in zip(values, values[1:], strict=False)][-w:]
    return statistics.stdev(rets) if len(rets) >= 2 else 0.0


def ofi(tops: list[tuple[float, float, float, float]], w: int) -> float:
    es = [0.0]
    for (pb, pqb, pa, pqa), (b, qb, a, qa) in zip(tops, tops[1:], strict=False):
        es.append(qb * (b >= pb) - pqb * (b <= pb) - qa * (a <= pa) + pqa * (a >= pa))
    return sum(es[-w:])


def check_books(msgs: list[dict], w: int, n: int) -> None:
    """All book messages of ONE topic, in order: every field per the definitions."""
    mids, tops = [], []
    for i, m in enumerate(msgs, 1):
        assert list(m) == BOOK_KEYS, m
        assert m["seq"] == i, f"seq gap at message {i}: {m['seq']}"
        assert isinstance(m["timestamp_ns"], int) and isinstance(m["receipt_timestamp_ns"], int)
        bids, asks = m["bids"], m["asks"]
        assert 1 <= len(bids) <= n and 1 <= len(asks) <= n
        assert all(len(lv) == 2 and lv[1] > 0 for lv in bids + asks)
        assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
        assert [p for p, _ in asks] == sorted(p for p, _ in asks)
        (b, qb), (a, qa) = bids[0], asks[0]
        assert 0 < b < a
        mid = (b + a) / 2
        mids.append(mid)
        tops.append((b, qb, a, qa))
        assert _approx(m["midpoint"], mid, 1e-12)
        assert _approx(m["relative_spread"], (a - b) / mid, 1e-9)
        assert _approx(m["breadth"], b * qb + a * qa, 1e-12)
        assert _approx(m["imbalance_lvl1"], (qb - qa) / (qb + qa), 1e-9, 1e-12)
        bd = sum(p * q for p, q in bids)
        ad = sum(p * q for p, q in asks)
        assert _approx(m["bid_depth_n"], bd, 1e-12)
        assert _approx(m["ask_depth_n"], ad, 1e-12)
        assert _approx(m["depth_n"], bd + ad, 1e-12)
        assert _approx(m["volatility_mid"], stdev_logret(mids, w), 1e-6, 1e-12), (i, m["volatility_mid"])
        assert _approx(m["ofi_rolling"], ofi(tops, w), 1e-9, 1e-9), (i, m["ofi_rolling"], ofi(tops, w))
        assert m["window_size"] == w and m["schema_version"] == 1


def check_trades(msgs: list[dict], w: int) -> None:
    """All trade messages of ONE topic, in order."""
    prices = []
    for i, m in enumerate(msgs, 1):
        assert list(m) == TRADE_KEYS, m
        assert m["seq"] == i, f"seq gap at trade {i}: {m['seq']}"
        assert m["side"] in ("buy", "sell")
        assert isinstance(m["trade_id"], str)
        assert m["price"] > 0 and m["amount"] > 0
        prices.append(m["price"])
        assert m["transaction_price"] == m["price"]
        assert _approx(m["trading_volume"], m["price"] * m["amount"], 1e-12)
        assert _approx(m["volatility"], stdev_logret(prices, w), 1e-6, 1e-12)
        assert m["window_size"] == w and m["schema_version"] == 1


@pytest.fixture
def ms_ref():
    return SimpleNamespace(
        BOOK_KEYS=BOOK_KEYS,
        TRADE_KEYS=TRADE_KEYS,
        check_books=check_books,
        check_trades=check_trades,
        stdev_logret=stdev_logret,
        ofi=ofi,
    )


class Proc:
    """A ``latentspeed`` process whose stderr is read line by line by a thread."""

    def __init__(self, args: tuple[str, ...], cwd: str | Path | None = None) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            [str(BIN / "latentspeed"), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.out: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(self.popen.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stdout, self.out), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, f, into: list[str]) -> None:
        for line in f:
            with self._cond:
                into.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self.lines)

    @property
    def stdout(self) -> str:
        with self._cond:
            return "".join(self.out)

    def wait_line(self, needle: str, timeout: float = 20.0) -> str:
        """Wait until a stderr line contains ``needle``; returns that line."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if needle in line:
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._threads[0].is_alive()):
                    raise TimeoutError(
                        f"{needle!r} not seen within {timeout}s; stderr:\n{''.join(self.lines)}"
                    )
                self._cond.wait(min(left, 0.5))

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for exit (and for its output to be read); returns the exit code."""
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        for t in self._threads:
            t.join(5)
        return rc

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT, then wait for exit; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@pytest.fixture
def procs():
    """Start CLI processes: ``procs.start(*args) -> Proc``; any still running at teardown is killed."""
    started: list[Proc] = []

    def start(*args, cwd=None) -> Proc:
        p = Proc(args, cwd)
        started.append(p)
        return p

    yield SimpleNamespace(start=start, free_port_pair=two_free_ports)
    for p in started:
        p.kill()


@pytest.fixture
def mock_exchange(procs):
    """A mock exchange process on a free port (fast ticks, fixed seed); yields its port."""
    port = free_port()
    p = procs.start(
        "mock-exchange", "--port", str(port), "--tick-rate", "2", "--seed", "5", "--no-log-orders",
        "--symbols", "BTC-USD,ETH-USD",
    )  # fmt: skip
    p.wait_line(f"Listening on port {port}")
    return port

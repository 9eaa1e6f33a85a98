"""Helpers for tests of the core and of plugins: free ports, recorded fixtures, waiting on events,
running a feed, a real redis-server, and the venue test kit.

Importable by third-party plugin tests too. Nothing here sleeps for correctness: waiting always
polls a condition with a deadline. The venue test kit (documented in docs/plugins.md):

- :mod:`.loopback`: :class:`LoopbackWsServer` (scripted frames per connection, cuts, a venue's
  protocol in a subclass) and :class:`LoopbackRestServer` (REST answers in order);
- :mod:`.books`: :class:`ReferenceBook` (two plain dicts), :func:`book_levels`, :class:`RecordingSink`;
- :mod:`.conformance`: :class:`~.conformance.FeedConformance`, the checks every feed plugin passes on
  its recorded sessions (imported from there: it needs pytest).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from .books import BookUpdate, PublishedBook, RecordingSink, ReferenceBook, TradePrint, book_levels
from .loopback import (
    AWAIT_RESYNC,
    CLOSE,
    CUT,
    SILENT,
    LoopbackRestServer,
    LoopbackWsServer,
    WsConnection,
    client_frame_text,
)

__all__ = [
    "AWAIT_RESYNC",
    "CLOSE",
    "CUT",
    "SILENT",
    "BookUpdate",
    "LoopbackRestServer",
    "LoopbackWsServer",
    "PublishedBook",
    "RecordingSink",
    "RedisServer",
    "ReferenceBook",
    "TradePrint",
    "WsConnection",
    "async_wait_for",
    "binance_fixture_capture",
    "book_levels",
    "client_frame_text",
    "expect_compiled",
    "fixtures_dir",
    "free_port",
    "package_index_unreachable",
    "redis_server",
    "redis_server_missing",
    "redis_server_or_skip",
    "running",
    "two_free_ports",
    "wait_for",
    "with_raw",
    "ZmqCollector",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def two_free_ports(host: str = "127.0.0.1") -> int:
    """A port P that was free a moment ago with P + 1 free too (marketstream: trades on P, books on P + 1)."""
    for _ in range(100):
        port = free_port(host)
        if port >= 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def fixtures_dir() -> Path:
    """The recorded venue frames: ``$LATENTSPEED_FIXTURES`` or the repository's ``fixtures/``."""
    env = os.environ.get("LATENTSPEED_FIXTURES")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "fixtures"
        if (candidate / "README.md").exists() and (candidate / "binance").is_dir():
            return candidate
    raise FileNotFoundError("recorded fixtures not found; set LATENTSPEED_FIXTURES")


def with_raw(frame: Any, path: tuple, raw: str) -> str:
    """``frame`` (a dict, or JSON text) as compact JSON with the item at ``path`` replaced by ``raw``,
    raw JSON text: numbers as a venue could write them (a bare ``1e999``, a quoted ``"inf"``), which no
    JSON encoder writes. A list index one past the end appends."""
    msg = json.loads(frame if isinstance(frame, str | bytes) else json.dumps(frame))
    node = msg
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, list) and path[-1] == len(node):
        node.append(None)
    node[path[-1]] = "@RAW@"
    return json.dumps(msg, separators=(",", ":")).replace('"@RAW@"', raw)


def mangled(data: bytes | str, edits) -> bytes | str:
    """``data`` with edits applied, for fuzzing a parser with nearly valid input. Each edit
    ``(op, pos, x)`` replaces (op 0) or deletes (2) the item at ``pos``, inserts ``x`` there (1), or
    cuts everything from ``pos`` (3, or 0 and 2 at the end); ``pos`` is clamped to the length.
    ``x`` is a byte (an int) for bytes, a character for str."""
    out = list(data)
    for op, pos, x in edits:
        pos = min(pos, len(out))
        if op == 0 and pos < len(out):
            out[pos] = x
        elif op == 1:
            out.insert(pos, x)
        elif op == 2 and pos < len(out):
            del out[pos]
        else:
            del out[pos:]
    return bytes(out) if isinstance(data, bytes | bytearray) else "".join(out)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; raise ``TimeoutError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


async def async_wait_for(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    """:func:`wait_for` inside an event loop: the loop runs while it waits."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.002)


@asynccontextmanager
async def running(feed, sink) -> AsyncIterator[asyncio.Task]:
    """Run ``feed.run(sink)`` as a task for the body of the block (yielded), then cancel it. A feed
    that ended with an exception of its own re-raises it here."""
    task = asyncio.create_task(feed.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()


REDIS_SERVER = "redis-server"


def redis_server_missing() -> str | None:
    """Why a real ``redis-server`` cannot be started here (not on PATH), or None."""
    import shutil

    if shutil.which(REDIS_SERVER):
        return None
    return "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server; python3 dev.py test does it as root)"


class RedisServer:
    """A real ``redis-server`` on a free loopback port, in its own directory, without persistence.

    ``kill()`` and ``start()`` again on the same port stand for Redis going away and coming back
    (empty: nothing is saved), which is what sink and consumer tests need."""

    def __init__(self, workdir: str | Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start it and wait (polling, with a deadline) until it answers PING."""
        import subprocess

        missing = redis_server_missing()
        if missing:
            raise RuntimeError(missing)
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"]  # fmt: skip
        with open(self.workdir / "redis.log", "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} exited ({self.proc.returncode}): {log}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout}s")
            time.sleep(0.01)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: Redis vanishes mid-conversation, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def redis_server(workdir: str | Path) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` in ``workdir``, killed on exit."""
    missing = redis_server_missing()
    if missing:
        raise RuntimeError(missing)
    for attempt in range(5):  # the port was free a moment ago; another process may have taken it
        server = RedisServer(workdir)
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 4:
                raise
    try:
        yield server
    finally:
        server.kill()


def expect_compiled() -> bool:
    """Whether this install should have its C extensions: a compiler was there to build them and
    ``LATENTSPEED_PURE_PYTHON`` does not ask for the Python code. Tests use it to require the
    compiled path where it must exist, and the fallback where it must not, instead of skipping."""
    import shutil
    import sysconfig

    if os.environ.get("LATENTSPEED_PURE_PYTHON"):
        return False
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) is not None


BINANCE_SESSION = "binance/seq_spot_btcusdt_2024-08-08_hftbacktest_first1000"
BINANCE_SNAPSHOT = "binance/rest_spot_api_v3_depth_btcusdt_limit1000_2024.json"


def binance_fixture_capture(path: str | Path, repeat: int = 1) -> Path:
    """A capture of the recorded Binance BTC-USDT session (fixtures/binance), for replays and backtests.

    Receipt times come from the session's ``local_ts_ns`` file; the REST snapshot is placed
    where a live feed would have received it (after the first buffered depth updates).
    ``repeat`` > 1 appends the session again as a reconnect: a ``connect`` record, the frames
    shifted in time, the snapshot again, so a longer capture stays a valid session."""
    import orjson

    from ..capture import Recorder

    fx = fixtures_dir()
    lines = (fx / f"{BINANCE_SESSION}.jsonl").read_text().splitlines()
    stamps = [int(x) for x in (fx / f"{BINANCE_SESSION}.local_ts_ns.txt").read_text().split()]
    snapshot = (fx / BINANCE_SNAPSHOT).read_text()
    frames = []
    for line, ts in zip(lines, stamps, strict=True):
        frame = orjson.loads(line)
        if "data" in frame and frame["data"].get("e") in ("depthUpdate", "trade"):
            frames.append((line, ts, frame["data"]["e"]))  # not the inline snapshot or bookTicker
    span = stamps[-1] - stamps[0] + 1_000_000
    configs = {"binance": {"exchange": "binance", "market": "spot", "symbols": ["BTC-USDT"]}}
    with Recorder(path, feeds=["binance"], feed_configs=configs) as rec:
        for k in range(repeat):
            shift = k * span
            rec.write("binance", "connect", stamps[0] - 1 + shift, None)
            depth_seen = 0
            for line, ts, kind in frames:
                rec.write("binance", "frame", ts + shift, line)
                if kind == "depthUpdate":
                    depth_seen += 1
                    if depth_seen == 2:  # the snapshot the first buffered update asked for arrives here
                        rec.write("binance", "rest", ts + shift + 1, {"key": "BTCUSDT", "body": snapshot})
    return Path(path)


def package_index_unreachable(timeout: float = 5.0) -> str | None:
    """Why pip's package index cannot be reached (for tests that install from it), or None.

    Reads the index the way pip would be told (``PIP_INDEX_URL``, else ``pip config``), and
    tries a TCP connection to it: enough to tell an offline machine from a slow one."""
    import subprocess
    import sys
    from urllib.parse import urlparse

    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        try:
            out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
            url = out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            url = ""
    url = url or "https://pypi.org/simple"
    parsed = urlparse(url)
    host = parsed.hostname or "pypi.org"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"package index {url} unreachable ({exc})"


@contextmanager
def redis_server_or_skip(workdir: str | Path) -> Iterator[RedisServer]:
    """:func:`redis_server` for a pytest fixture: without ``redis-server`` the test is skipped,
    saying why, except in CI (``CI`` set), where .ci/run installs it and its absence fails."""
    import os

    import pytest

    missing = redis_server_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    with redis_server(workdir) as server:
        yield server


class ZmqCollector:
    """SUB sockets on a marketstream's two ports (trades on P, books on P + 1): raw payloads by
    topic, in arrival order, for comparing what ZeroMQ subscribers got with another copy."""

    def __init__(self, port: int, prefix: bytes = b"", host: str = "127.0.0.1") -> None:
        import zmq

        self._zmq = zmq
        self.ctx = zmq.Context()
        self.poller = zmq.Poller()
        self.socks = []
        for p in (port, port + 1):
            sock = self.ctx.socket(zmq.SUB)
            sock.setsockopt(zmq.RCVHWM, 0)
            sock.setsockopt(zmq.SUBSCRIBE, prefix)
            sock.connect(f"tcp://{host}:{p}")
            self.poller.register(sock, zmq.POLLIN)
            self.socks.append(sock)
        self.by_topic: defaultdict[str, list[bytes]] = defaultdict(list)
        self.count = 0

    def pump_until(self, n: int, timeout: float = 30.0) -> None:
        """Receive until ``n`` messages in all; ``TimeoutError`` saying how many came."""
        deadline = time.monotonic() + timeout
        again = self._zmq.Again
        while self.count < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"ZeroMQ: {self.count} of {n} messages")
            for sock, _ in self.poller.poll(min(left, 0.5) * 1000):
                while True:
                    try:
                        topic, payload = sock.recv_multipart(self._zmq.NOBLOCK)
                    except again:
                        break
                    self.by_topic[topic.decode()].append(payload)
                    self.count += 1

    def close(self) -> None:
        for sock in self.socks:
            sock.close(0)
        self.ctx.term()


@contextmanager
def python_calls(package: str) -> Iterator[list[str]]:
    """The names of the Python functions of ``package`` (a path fragment, e.g. ``latentspeed_core``)
    called inside the block, in order: how a test shows a compiled path runs no Python."""
    calls: list[str] = []

    def profile(frame, event, arg):
        name = frame.f_code.co_filename
        if event == "call" and package in name and name != __file__:  # (not this helper's own exit)
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(None)

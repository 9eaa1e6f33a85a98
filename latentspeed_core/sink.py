"""Sinks: every published book and trade message, also sent somewhere else (Redis, Kafka, ...).

The marketstream's publish path hands each message to every sink with :meth:`Sink.put`: one
length check and one ``deque.append`` of ``(topic, data)``, the topic and the JSON bytes exactly
as sent on ZeroMQ. Nothing else happens on the hot path. A thread of the sink's own takes the
messages off that queue in batches and writes them with the plugin's :meth:`Sink.write`, so a
slow or absent destination never delays the ZeroMQ publisher.

What every sink shares lives here, so a sink plugin only states how to connect and how to write
a batch: the bounded queue (``buffer`` messages; beyond it new messages are dropped *and
counted*, never blocking), batching (``batch``), reconnecting with capped exponential backoff
and jitter, retrying a batch the destination did not confirm, drop warnings at most every
few seconds, and a shutdown that flushes what it can within a deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from pydantic import Field

from .config import StrictModel
from .live import Backoff

log = logging.getLogger("latentspeed.sink")

#: How long the writer thread sleeps when the queue is empty. The publish path never signals it
#: (a wake-up per message would cost the hot path a lock and a syscall), so this bounds the extra
#: delay before a message reaches the destination.
IDLE_S = 0.001
#: At most one drop or connection warning per sink in this many seconds.
WARN_EVERY_S = 5.0


class SinkConfig(StrictModel):
    """Keys of every ``sinks`` entry; a sink plugin's model subclasses it with its own keys."""

    #: The sink plugin's registered name (``redis``).
    type: str
    #: Messages held in memory while the destination is slow or away; beyond it new messages
    #: are dropped and counted (memory: about ``buffer`` × message size, ~1 kB for 10-level books).
    buffer: int = Field(100_000, ge=1, le=100_000_000)
    #: Messages written per round trip to the destination.
    batch: int = Field(500, ge=1, le=100_000)


class Sink:
    """A destination fed from a bounded in-memory queue by a writer thread of its own.

    Subclasses implement :meth:`connect`, :meth:`write`, :meth:`disconnect` and
    :meth:`describe`; those run in the writer thread only. ``put`` is the only method the
    publish path calls.
    """

    def __init__(self, name: str, buffer: int, batch: int) -> None:
        self.name = name
        self.batch = batch
        self._bound = buffer
        self._queue: deque[tuple[bytes, bytes]] = deque()
        #: Messages refused because ``buffer`` were already waiting (counted on the publish path).
        self.dropped = 0
        #: Messages the destination stored.
        self.written = 0
        #: Messages the destination answered with an error (``write`` counts them; never retried).
        self.refused = 0
        #: Messages still queued when the sink was closed (destination away or too slow to flush).
        self.unsent = 0
        self.reconnects = 0
        self.connected = False
        self._pending: list[tuple[bytes, bytes]] = []
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None
        self._warned_at = 0.0
        self._drops_logged_at = 0.0
        self._drops_logged = 0

    # -- the publish path ---------------------------------------------------------------
    def put(self, topic: bytes, data: bytes) -> None:
        """Queue one message for the writer thread; never blocks, never raises."""
        q = self._queue
        if len(q) < self._bound:
            q.append((topic, data))
        else:
            self.dropped += 1

    # -- what a sink plugin implements (writer thread) ----------------------------------
    def connect(self) -> None:
        """Open the connection; raise on failure (retried with backoff)."""
        raise NotImplementedError

    def write(self, batch: list[tuple[bytes, bytes]]) -> int:
        """Write ``batch`` in order; return how many leading messages the destination answered for.

        Fewer than ``len(batch)`` (or an exception) means the connection is lost: the sink
        disconnects, reconnects with backoff and writes the rest again. Messages it answered
        with an error are added to ``refused`` here and not retried (they would fail again)."""
        raise NotImplementedError

    def disconnect(self) -> None:
        """Close the connection (best effort, never raises)."""

    def describe(self) -> str:
        """Where the messages go, without secrets (for logs)."""
        return self.name

    def extra_stats(self) -> dict[str, Any]:
        """Counters of the plugin's own, appended to :meth:`stats`."""
        return {}

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread (a daemon: a hung destination never holds the process)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"sink:{self.name}", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued for up to ``timeout`` seconds, then stop; the rest is ``unsent``."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 1.0)
            if self._thread.is_alive():  # stuck in a write: leave it, count what is left
                log.warning("sink %s: still writing after %.1fs; giving up", self.name, timeout)
                self.unsent = len(self._queue) + len(self._pending)
        else:
            self.unsent = len(self._queue)

    @property
    def buffered(self) -> int:
        return len(self._queue) + len(self._pending)

    def stats(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "refused": self.refused,
            "dropped": self.dropped,
            "buffered": self.buffered,
            "unsent": self.unsent,
            "reconnects": self.reconnects,
            "connected": self.connected,
            **self.extra_stats(),
        }

    def stats_line(self) -> str:
        return "SINK " + " ".join(
            [f"sink={self.name}"] + [f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in self.stats().items()]
        )

    # -- the writer thread --------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._write_loop()
        except Exception:  # a bug here must not pass unnoticed; the publisher goes on (drops counted)
            log.exception("sink %s: the writer thread stopped", self.name)
            self.connected = False

    def _write_loop(self) -> None:
        backoff = Backoff(initial=0.05, cap=5.0, healthy_after=10.0)
        queue = self._queue
        take = queue.popleft
        stop = self._stop
        connected_at = 0.0
        while True:
            if not self.connected:
                if stop.is_set():
                    break  # nothing more can be written
                try:
                    self.connect()
                except Exception as exc:  # any failure to connect is retried, never fatal
                    delay = backoff.delay()
                    self._warn(f"cannot connect to {self.describe()}: {exc}; retrying in {delay:.2f}s")
                    self._report_drops()
                    stop.wait(delay)
                    continue
                self.connected = True
                connected_at = time.monotonic()
                log.info("sink %s: connected to %s (%d buffered)", self.name, self.describe(), self.buffered)
            if not self._pending:
                n = min(len(queue), self.batch)
                if n == 0:
                    if stop.is_set():
                        break
                    self._report_drops()
                    stop.wait(IDLE_S)
                    continue
                self._pending = [take() for _ in range(n)]
            if stop.is_set() and time.monotonic() > self._deadline:
                break
            batch = self._pending
            refused = self.refused
            try:
                done = self.write(batch)
            except Exception as exc:
                done = 0
                self._warn(f"write to {self.describe()} failed: {type(exc).__name__}: {exc}")
            self.written += done - (self.refused - refused)
            if done >= len(batch):
                self._pending = []
                continue
            # The connection is lost: keep what was not confirmed (in order) for the next one.
            self._pending = batch[done:]
            self.connected = False
            self.reconnects += 1
            backoff.connected_for(time.monotonic() - connected_at)
            self._safe_disconnect()
            self._warn(f"lost {self.describe()}; reconnecting ({self.buffered} buffered)")
        self.unsent = self.buffered
        if self.connected:
            self._safe_disconnect()
            self.connected = False
        self._report_drops(force=True)

    def _safe_disconnect(self) -> None:
        try:
            self.disconnect()
        except Exception:  # best effort: the connection is being abandoned anyway
            log.debug("sink %s: error on disconnect", self.name, exc_info=True)

    def _warn(self, what: str) -> None:
        """A warning at most every WARN_EVERY_S (the rest at debug)."""
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("sink %s: %s", self.name, what)
        else:
            log.debug("sink %s: %s", self.name, what)

    def _report_drops(self, force: bool = False) -> None:
        """New drops: a warning at once, then at most every WARN_EVERY_S while they go on."""
        if self.dropped == self._drops_logged:
            return
        now = time.monotonic()
        if force or now - self._drops_logged_at >= WARN_EVERY_S:
            self._drops_logged_at = now
            self._drops_logged = self.dropped
            log.warning(
                "sink %s: %d messages dropped so far: %d were waiting for %s (buffer)",
                self.name, self.dropped, self._bound, self.describe(),
            )  # fmt: skip


def fan_out(sinks: list[Sink]):
    """The one callable the publisher calls per message: ``put`` itself for a single sink."""
    if not sinks:
        return None
    if len(sinks) == 1:
        return sinks[0].put
    puts = tuple(s.put for s in sinks)

    def put_all(topic: bytes, data: bytes) -> None:
        for put in puts:
            put(topic, data)

    return put_all

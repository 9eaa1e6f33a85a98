"""The feed contract: a market-data source that turns venue frames into books and trades.

A feed is written sans-IO at its heart: :meth:`Feed.on_frame` (and
:meth:`Feed.on_rest` for REST answers such as depth snapshots) parse one input
and push results into the :class:`FeedSink`. A transport delivers the inputs: the
live one (``latentspeed_core.ws.WsFeed`` for WebSocket venues, or the plugin's own)
or the capture replayer. Every input goes through :meth:`Feed.deliver_frame` /
:meth:`Feed.deliver_rest` / :meth:`Feed.deliver_connect`, which stamp and record
it, so a replayed capture drives exactly the code the live run drove.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .book import L2Book
    from .config import FeedConfig
    from .types import Trade

log = logging.getLogger(__name__)


class FeedSink(Protocol):
    """Where a feed delivers its output (the marketstream pipeline, or a test)."""

    def on_book(self, feed: Feed, symbol: str, book: L2Book, timestamp_ns: int, receipt_ns: int) -> None:
        """The book of ``symbol`` changed; called once per venue message (or batch)."""

    def on_trade(self, feed: Feed, trade: Trade) -> None:
        """A public trade."""


class Recorder(Protocol):
    def write(self, feed: str, kind: str, receipt_ns: int, data: Any) -> None: ...


@dataclass(slots=True)
class FeedStats:
    messages: int = 0
    books: int = 0
    trades: int = 0
    errors: int = 0
    resyncs: int = 0
    reconnects: int = 0
    publish_drops: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class Feed(ABC):
    """Base class of every feed. Subclasses implement :meth:`run_live` and :meth:`on_frame`."""

    # Slots for what compiled frame handlers read on every frame (at their offsets, not by name); a
    # subclass may add its own the same way. Every other attribute lives in the __dict__ as usual.
    __slots__ = ("sink", "stats", "__dict__", "__weakref__")

    #: Upper-case venue name used in topics and messages (``BINANCE``).
    exchange: str = ""

    def __init__(self, config: FeedConfig, name: str | None = None) -> None:
        self.config = config
        self.name = name or config.exchange
        self.stats = FeedStats()
        self.sink: FeedSink | None = None
        self.recorder: Recorder | None = None
        #: Told the symbols whose books can no longer be trusted (a reconnect, a resync) until
        #: their next book: a simulated venue must not fill against them meanwhile.
        self.reset_listener: Callable[[list[str]], None] | None = None
        #: What :meth:`deliver_frame` hands each frame to: :meth:`frame_handler`'s answer, asked for
        #: at the first frame (set it to ``self.on_frame`` to take every frame through the Python).
        self.frame_fn: Callable[[bytes | str, int], object] | None = None
        self._last_error_log = 0.0
        self._suppressed = 0

    # -- running ---------------------------------------------------------------
    async def run(self, sink: FeedSink) -> None:
        """Run until cancelled: replay the configured capture, or connect live."""
        self.sink = sink
        if self.config.replay:
            from .capture import replay_into

            await replay_into(self, self.config.replay, self.config.speed)
        else:
            await self.run_live()

    @abstractmethod
    async def run_live(self) -> None:
        """Connect, subscribe and deliver inputs until cancelled; reconnect on failure."""

    # -- inputs (called by transports) -----------------------------------------
    def deliver_connect(self, receipt_ns: int | None = None) -> None:
        """A (re)connection happened: every book must be rebuilt from a fresh snapshot."""
        receipt_ns = receipt_ns or time.time_ns()
        if self.recorder is not None:
            self.recorder.write(self.name, "connect", receipt_ns, None)
        if self.reset_listener is not None:
            # every symbol of the feed: the configured ones, or (none configured) those it has books of
            self.reset_listener(list(self.config.symbols) or list(getattr(self, "books", ())))
        self.on_connect()

    def deliver_frame(self, data: bytes | str, receipt_ns: int) -> None:
        if self.recorder is not None:
            self.recorder.write(self.name, "frame", receipt_ns, data)
        self.stats.messages += 1
        try:
            fn = self.frame_fn
            if fn is None:
                fn = self.frame_fn = self.frame_handler()
            fn(data, receipt_ns)
        except Exception as exc:  # bad input never kills the feed
            self.error(f"bad frame: {type(exc).__name__}: {exc}", data)

    def deliver_rest(self, key: str, body: bytes | str, receipt_ns: int) -> None:
        if self.recorder is not None:
            self.recorder.write(self.name, "rest", receipt_ns, {"key": key, "body": _text(body)})
        try:
            self.on_rest(key, body, receipt_ns)
        except Exception as exc:
            self.error(f"bad REST response for {key}: {type(exc).__name__}: {exc}", body)

    # -- venue logic (implemented by plugins) ----------------------------------
    def on_connect(self) -> None:  # noqa: B027 - optional hook
        """Reset per-connection state (books, sequence numbers)."""

    @abstractmethod
    def on_frame(self, data: bytes | str, receipt_ns: int) -> None:
        """Parse one frame; push books and trades to ``self.sink``."""

    def frame_handler(self) -> Callable[[bytes | str, int], object]:
        """What takes this feed's frames (:meth:`deliver_frame`, a backtest's merge): :meth:`on_frame`,
        or a compiled handler of the feed's usual frames that has the same effects and hands every
        other frame to :meth:`on_frame` before changing anything (no Python frame per usual message)."""
        return self.on_frame

    def on_rest(self, key: str, body: bytes | str, receipt_ns: int) -> None:  # noqa: B027 - optional hook
        """Handle a REST answer the feed asked for (e.g. a depth snapshot)."""

    def resync(self, symbol: str, reason: str) -> None:
        """Rebuild ``symbol``'s book from a fresh snapshot, in the venue's way."""
        self.stats.resyncs += 1
        if self.reset_listener is not None:
            self.reset_listener([symbol])
        log.warning("%s: resync %s: %s", self.name, symbol, reason)

    # -- errors ----------------------------------------------------------------
    def error(self, reason: str, data: Any = None) -> None:
        """Count and log (rate-limited to one line a second) a skipped input."""
        self.stats.errors += 1
        now = time.monotonic()
        if now - self._last_error_log >= 1.0:
            extra = f" (+{self._suppressed} similar)" if self._suppressed else ""
            snippet = _text(data)[:200] if data is not None else ""
            log.warning("%s: skipped input: %s%s %s", self.name, reason, extra, snippet)
            self._last_error_log = now
            self._suppressed = 0
        else:
            self._suppressed += 1


def _text(data: Any) -> str:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data).decode("utf-8", "replace")
    return data if isinstance(data, str) else repr(data)

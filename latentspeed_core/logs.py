"""Logging set-up shared by every command: levels, optional file, rich on a terminal."""

from __future__ import annotations

import logging
import sys
import time

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "info", file: str | None = None, rich: bool | None = None) -> None:
    """Configure the root logger once per process (safe to call again)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.setLevel(level.upper())
    if rich is None:
        rich = sys.stderr.isatty()
    if rich:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    if file:
        fh = logging.FileHandler(file)
        fh.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(fh)


class RateLimitedLog:
    """At most one line per ``interval`` seconds per kind; the rest are counted into the next line.

    For whatever a peer can make us log at will (malformed frames, connects, refusals): a
    flood of bad input must cost a counter, not gigabytes of log."""

    __slots__ = ("_log", "_interval", "_last", "_suppressed")

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self._log = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, kind: str, level: int, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -1e18) >= self._interval:
            n = self._suppressed.pop(kind, 0)
            if n:
                msg += f" (+{n} similar suppressed)"
            self._log.log(level, msg, *args)
            self._last[kind] = now
        else:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1

    def flush(self) -> None:
        """Log how many lines of each kind were held back since its last line (periodic summaries)."""
        for kind, n in list(self._suppressed.items()):
            self._log.log(logging.INFO, "%d more %r lines suppressed in the last interval", n, kind)
        self._suppressed.clear()

    @property
    def suppressed(self) -> int:
        """Lines held back and not yet summarised."""
        return sum(self._suppressed.values())

"""Logging set-up shared by every command: levels, optional file, rich on a terminal."""

from __future__ import annotations

import logging
import sys

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

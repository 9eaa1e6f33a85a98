"""``latentspeed export CAPTURE --out DIR [--format parquet]``: a capture as Parquet tables for research.

The capture replays through its feeds and the marketstream features (the feed configs come
from the capture's header, or ``--config``); ``books.parquet`` and ``trades.parquet`` hold
exactly the messages marketstream would publish (docs/capture.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..components import Command
from ..config import ConfigError
from .argtypes import int_in


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("capture", help="capture written by latentspeed record / marketstream --record / run --record")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for books.parquet and trades.parquet")
    p.add_argument("--format", choices=["parquet"], default="parquet", help="output format (default parquet)")
    p.add_argument("--config", metavar="FILE", help="marketstream or engine config naming the feeds (for captures "
                   "that do not record their feed configs)")  # fmt: skip
    p.add_argument("--window-size", type=int_in(2), default=None, help="feature window (default: the config's, else 20)")
    p.add_argument("--depth-levels", type=int_in(1), default=None, help="levels per side (default: the config's, else 10)")



def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from ..capture import CaptureError, capture_header
    from ..config import load_yaml
    from ..export import export_capture
    from ..logs import setup_logging

    setup_logging(args.log_level or "warning")
    if not Path(args.capture).is_file():
        raise ConfigError(None, "CAPTURE", f"{args.capture}: no such file")
    try:
        capture_header(args.capture)
    except CaptureError as exc:
        raise ConfigError(None, "CAPTURE", str(exc)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(None, "--out", f"{args.out}: exists and is not a directory")
    config = load_yaml(args.config) if args.config else None
    section = (config or {}).get("zmq") or (config or {}).get("market_data") or {}
    window = args.window_size or section.get("window_size") or 20
    depth = args.depth_levels or section.get("depth_levels") or 10
    kw = {"config": config, "file": args.config, "window_size": window, "depth_levels": depth}
    if sys.stderr.isatty():
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("export", total=None)
            res = export_capture(args.capture, args.out, args.registry,
                                 progress=lambda n: bar.update(task, description=f"export: {n:,} inputs"), **kw)  # fmt: skip
    else:
        res = export_capture(args.capture, args.out, args.registry, **kw)
    con = Console()
    con.print(f"{res.inputs:,} inputs -> {res.books:,} books, {res.trades:,} trades")
    for path in (res.books_path, res.trades_path):
        if path is not None:
            con.print(f"  {escape(str(path))}")
    if res.books == 0 and res.trades == 0:
        print(f"latentspeed export: error: no books or trades in {args.capture}", file=sys.stderr)
        return 1
    return 0


COMMAND = Command("export", "replay a capture through feeds and features into Parquet tables", _configure, _run)

"""``latentspeed record config.yml --out FILE``: capture every raw feed input for replay."""

from __future__ import annotations

import argparse
import sys

from ..components import Command
from .argtypes import float_above


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="marketstream config whose feeds to record")
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="capture file to write: JSON lines, gzip-compressed when FILE ends in .gz (e.g. session.jsonl.gz)",
    )
    p.add_argument("--duration", type=float_above(0), default=None, metavar="S", help="stop after S seconds")


def _run(args: argparse.Namespace) -> int:
    from ..logs import setup_logging
    from ..marketstream.app import NoMarketData, run_marketstream
    from ..marketstream.config import load_config
    from ..runtime import run_async
    from .marketstream import output_problem

    setup = load_config(args.config, args.registry)
    if problem := output_problem(args.out):
        print(f"latentspeed record: error: --out {args.out}: {problem}", file=sys.stderr)
        return 2
    log_cfg = setup.config.log
    setup_logging(args.log_level or log_cfg.level, log_cfg.file)
    # Frames are still parsed (the stats show errors at once) but nothing is published.
    try:
        return run_async(
            run_marketstream(setup, args.registry, publish=False, record=args.out, duration=args.duration)
        )
    except NoMarketData as exc:
        print(f"latentspeed record: error: {exc}", file=sys.stderr)
        return 1


COMMAND = Command(
    "record", "record every raw feed frame and REST response to a capture file", _configure, _run
)

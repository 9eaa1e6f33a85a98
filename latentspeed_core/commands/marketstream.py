"""``latentspeed marketstream config.yml``: feeds → books → features → ZeroMQ (issue 5)."""

from __future__ import annotations

import argparse
import sys

from ..components import Command
from ..config import ConfigError
from .argtypes import float_above, int_in


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config", nargs="?", default="config/config.yml", help="marketstream config (default: %(default)s)"
    )
    p.add_argument(
        "--record",
        metavar="FILE",
        help="also record every feed input to this capture (JSON lines; gzip when FILE ends in .gz)",
    )
    p.add_argument(
        "--wait-subscribers",
        type=int_in(0),
        default=0,
        metavar="N",
        help="start the feeds only once N subscribers are connected to each port",
    )
    p.add_argument("--duration", type=float_above(0), default=None, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--cpu-affinity", default=None, metavar="CPUS", help="pin marketstream to these CPUs, e.g. 0-3 or 2,3"
    )


def output_problem(path: str) -> str | None:
    """Why an output file (a capture, a report) cannot be created at ``path``, or None.

    Checked before any socket is bound, feed started or backtest run: found only at the end, the
    problem would cost the run."""
    from pathlib import Path

    if Path(path).is_dir():
        return "is a directory (give a file name)"
    if not Path(path).resolve().parent.is_dir():
        return "directory does not exist"
    return None


def _run(args: argparse.Namespace) -> int:
    import zmq

    from ..logs import setup_logging
    from ..marketstream.app import NoMarketData, run_marketstream
    from ..marketstream.config import load_config
    from ..runtime import parse_cpus, run_async, set_cpu_affinity

    setup = load_config(args.config, args.registry)
    try:
        cpus = parse_cpus(args.cpu_affinity) if args.cpu_affinity else None
        set_cpu_affinity(cpus)
    except (ValueError, OSError) as exc:
        print(f"latentspeed marketstream: error: --cpu-affinity {args.cpu_affinity}: {exc}", file=sys.stderr)
        return 2
    if args.record and (problem := output_problem(args.record)):
        print(f"latentspeed marketstream: error: --record {args.record}: {problem}", file=sys.stderr)
        return 2
    log_cfg = setup.config.log
    setup_logging(args.log_level or log_cfg.level, log_cfg.file)
    try:
        return run_async(
            run_marketstream(
                setup,
                args.registry,
                record=args.record,
                wait_subscribers=args.wait_subscribers,
                duration=args.duration,
            )
        )
    except NoMarketData as exc:
        print(f"latentspeed marketstream: error: {exc}", file=sys.stderr)
        return 1
    except zmq.ZMQError as exc:
        # (a port another process holds: the config's to change, so a config error, exit 2)
        z = setup.config.zmq
        raise ConfigError(
            setup.file, "zmq.port", f"cannot bind tcp://{z.host}:{z.port} / :{z.port + 1}: {exc} "
            "(another process listens there: choose free ports)",
        ) from None  # fmt: skip


COMMAND = Command(
    "marketstream", "run the market-data pipeline: feeds → books → features → ZeroMQ", _configure, _run
)

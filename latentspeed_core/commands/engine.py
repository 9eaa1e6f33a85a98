"""``latentspeed engine --config FILE``: the trading engine (also ``trading_engine_server``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..components import Command
from ..logs import setup_logging
from .argtypes import float_above

log = logging.getLogger("latentspeed.engine")


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="FILE", help="engine config (trading_config.yml)")
    p.add_argument("--duration", type=float_above(0), default=None, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--cpu-affinity",
        default=None,
        metavar="CPUS",
        help="pin the engine to these CPUs, e.g. 6,7 or 4-7 (overrides config cpu_affinity)",
    )


def _run(args: argparse.Namespace) -> int:
    from ..engine.config import load_config
    from ..engine.runner import run_engine
    from ..runtime import parse_cpus, set_cpu_affinity

    setup = load_config(args.config, args.registry)
    cfg = setup.config
    if setup.output_dir is not None:
        setup.output_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(args.log_level or cfg.log.level, setup.log_file)
    if setup.output_dir is not None:
        files = ", ".join(Path(f).name for f in (setup.log_file, setup.latency_file) if f)
        print(f"latentspeed engine: run outputs in {setup.output_dir}/ ({files})", file=sys.stderr, flush=True)
    cpus = parse_cpus(args.cpu_affinity) if args.cpu_affinity else cfg.cpu_affinity
    set_cpu_affinity(cpus)
    log.info(
        "engine starting: venue %s, %d strateg%s, %s market data",
        cfg.venue.exchange,
        len(setup.strategies),
        "y" if len(setup.strategies) == 1 else "ies",
        "zmq" if cfg.market_data.zmq else f"{len(setup.feeds)} in-process feed(s)",
    )
    summary = run_engine(setup, args.registry, args.duration)
    print_summary(summary)
    if setup.output_dir is not None:
        print(f"SUMMARY outputs: {setup.output_dir}/", flush=True)
    if summary.get("error"):
        print(f"latentspeed engine: error: {summary['error']}", file=sys.stderr)
        return 1
    return 0


def print_summary(summary: dict) -> None:
    """Plain summary lines on stdout (``latentspeed run`` draws a table instead)."""
    t2t = summary["t2t_us"]
    rt = summary["round_trip_us"]
    pos = ", ".join(f"{s}={q:g}" for s, q in summary["positions"].items()) or "none"
    print(
        f"SUMMARY duration_s={summary['duration_s']} rx_packets={summary['rx_packets']} "
        f"orders={summary['orders']} fills={summary['fills']} rejects={summary['rejects']} "
        f"cancel_rejects={summary['cancel_rejects']} "
        f"pnl={summary['pnl']:.2f} realized_pnl={summary['realized_pnl']:.2f} "
        f"unrealized_pnl={summary['unrealized_pnl']:.2f}",
        flush=True,
    )
    print(f"SUMMARY positions: {pos}", flush=True)
    print(
        f"SUMMARY tick_to_trade_us p50={t2t['p50']} p99={t2t['p99']} p999={t2t['p999']} (n={t2t['n']}); "
        f"round_trip_us p50={rt['p50']} p99={rt['p99']} (n={rt['n']})",
        flush=True,
    )
    if summary.get("halt_reason") and summary["halt_reason"] != "shutdown":
        print(f"SUMMARY trading was halted: {summary['halt_reason']}", flush=True)


COMMAND = Command(
    "engine",
    "trading engine: market data -> strategies -> risk -> venue (trading_engine_server)",
    _configure,
    _run,
)

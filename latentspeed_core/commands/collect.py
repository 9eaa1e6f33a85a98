"""``latentspeed collect``: run the engine against the mock exchange for a while and keep
everything a performance review needs (logs, latency, machine load), then analyse it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..components import Command
from ..config import ConfigError
from ..datacollect.runner import Collection, CollectOptions

log = logging.getLogger("latentspeed.collect")


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=300.0, metavar="S",
                   help="seconds to trade after the engine connects (default %(default)s: five minutes)")  # fmt: skip
    p.add_argument("--out", default="data", metavar="DIR",
                   help="where the timestamped run directory is made (default %(default)s/)")  # fmt: skip
    p.add_argument(
        "--network-core", type=int, metavar="N", help="pin the engine to this core (with --strategy-core)"
    )
    p.add_argument("--strategy-core", type=int, metavar="M", help="pin the engine to this core too")
    p.add_argument("--config", metavar="FILE",
                   help="engine config to use as the template (its venue/feed are pointed at the mock exchange); "
                        "default: a market maker on BTC-USD")  # fmt: skip
    p.add_argument("--tick-rate", type=float, default=10.0, metavar="MS",
                   help="mock exchange market-data period in ms (default %(default)s)")  # fmt: skip
    p.add_argument("--fill-prob", type=float, default=80.0, metavar="PCT",
                   help="mock exchange fill probability in percent (default %(default)s)")  # fmt: skip
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="monitor sampling period (default %(default)s)",
    )
    p.add_argument("--no-analyze", action="store_true", help="do not run latentspeed analyze at the end")
    p.add_argument("--no-plots", action="store_true", help="analyse without plots")


def print_steps(manifest: dict, run_dir: Path) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"verification: {escape(str(run_dir))}")
    for col in ("#", "step", "result", "detail"):
        table.add_column(col, overflow="fold")
    for s in manifest["verification"]:
        result = "[green]PASS[/]" if s["passed"] else "[bold red]FAIL[/]"
        table.add_row(str(s["step"]), escape(s["description"]), result, escape(str(s["detail"])))
    console.print(table)
    for note in manifest["notes"]:
        console.print(f"note: {escape(str(note))}")
    console.print(f"run directory: {escape(str(run_dir))}  (manifest.json)")


def _run(args: argparse.Namespace) -> int:
    if args.duration <= 0:
        raise ConfigError(None, "--duration", "must be > 0 seconds")
    if args.interval <= 0:
        raise ConfigError(None, "--interval", "must be > 0 seconds")
    if args.config is not None and not Path(args.config).is_file():
        raise ConfigError(args.config, "", "file not found")
    opts = CollectOptions(
        duration=args.duration,
        out=Path(args.out),
        network_core=args.network_core,
        strategy_core=args.strategy_core,
        config=Path(args.config) if args.config else None,
        tick_rate=args.tick_rate,
        fill_prob=args.fill_prob,
        interval=args.interval,
        analyze=not args.no_analyze,
        plots=not args.no_plots,
    )
    run_dir, manifest = Collection(opts, registry=getattr(args, "registry", None)).run()
    if manifest["report"]:
        from .analyze import print_report

        report = json.loads((run_dir / manifest["report"]).read_text())
        print_report(report, run_dir, run_dir / manifest["report"])
    print_steps(manifest, run_dir)
    return 0 if manifest["passed"] else 1


COMMAND = Command(
    "collect",
    "run the engine against the mock exchange, monitor the machine, collect logs and latency, analyse",
    _configure,
    _run,
)
